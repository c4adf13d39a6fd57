#include "pci/vfio_container.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace irqlab {

VfioContainer::VfioContainer(const Options& options, DmaSink* downstream, Tracer* tracer,
                             const Clock* clock, std::function<void(const std::string&)> log)
    : options_(options),
      downstream_(downstream),
      tracer_(tracer),
      clock_(clock),
      log_(std::move(log)) {}

std::vector<VfioContainer::Range> VfioContainer::ReservedRanges() const {
  if (options_.msi_bypass) return {{kMsiWindow, kMsiWindow + kMsiWindowSize - 1, "msi"}};
  return {{options_.doorbell_base, options_.doorbell_base + kMsiWindowSize - 1, "msi-doorbell"}};
}

absl::Status VfioContainer::Insert(uint64_t iova, uint64_t size, uint64_t target,
                                   bool doorbell) {
  if (size == 0 || iova + size < iova) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vfio MAP_DMA: bad range 0x%x size 0x%x", iova, size));
  }
  const uint64_t last = iova + size - 1;
  if (!doorbell) {
    for (const Range& r : ReservedRanges()) {
      if (iova <= r.end && last >= r.start) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "vfio MAP_DMA: IOVA 0x%x-0x%x overlaps the reserved %s range 0x%x-0x%x", iova,
            last, r.kind, r.start, r.end));
      }
    }
  }
  auto next = mappings_.lower_bound(iova);
  if (next != mappings_.end() && next->first <= last) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vfio MAP_DMA: IOVA 0x%x-0x%x overlaps the mapping at 0x%x", iova, last, next->first));
  }
  if (next != mappings_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.size > iova) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "vfio MAP_DMA: IOVA 0x%x-0x%x overlaps the mapping at 0x%x", iova, last, prev->first));
    }
  }
  mappings_[iova] = Mapping{size, target, doorbell};
  return absl::OkStatus();
}

absl::Status VfioContainer::MapDma(uint64_t iova, uint64_t size, uint64_t target) {
  return Insert(iova, size, target, /*doorbell=*/false);
}

absl::Status VfioContainer::UnmapDma(uint64_t iova) {
  auto it = mappings_.find(iova);
  if (it == mappings_.end() || it->second.doorbell) {
    return absl::NotFoundError(absl::StrFormat("vfio UNMAP_DMA: no mapping at 0x%x", iova));
  }
  mappings_.erase(it);
  return absl::OkStatus();
}

absl::Status VfioContainer::MapDoorbell() {
  if (options_.msi_bypass || doorbell_mapped_) return absl::OkStatus();
  absl::Status s = Insert(options_.doorbell_base, kMsiWindowSize, kMsiWindow, /*doorbell=*/true);
  if (!s.ok()) return s;
  doorbell_mapped_ = true;
  if (tracer_ != nullptr && tracer_->enabled()) {
    tracer_->Emit(clock_->Now(), trace::VFIO, -1,
                  absl::StrFormat("host: vfio: MSI doorbell mapped: IOVA 0x%x-0x%x -> 0x%x",
                                  options_.doorbell_base,
                                  options_.doorbell_base + kMsiWindowSize - 1, kMsiWindow),
                  -1, options_.doorbell_base, kMsiWindow);
  }
  return absl::OkStatus();
}

void VfioContainer::UnmapDoorbell() {
  if (!doorbell_mapped_) return;
  mappings_.erase(options_.doorbell_base);
  doorbell_mapped_ = false;
  if (tracer_ != nullptr && tracer_->enabled()) {
    tracer_->Emit(clock_->Now(), trace::VFIO, -1,
                  absl::StrFormat("host: vfio: MSI doorbell unmapped (IOVA 0x%x)",
                                  options_.doorbell_base),
                  -1, options_.doorbell_base);
  }
}

std::optional<uint64_t> VfioContainer::Translate(uint64_t address, uint64_t len) const {
  auto it = mappings_.upper_bound(address);
  if (it == mappings_.begin()) return std::nullopt;
  --it;
  const uint64_t off = address - it->first;
  if (off + len > it->second.size || off + len < off) return std::nullopt;
  return it->second.target + off;
}

absl::Status VfioContainer::Fault(uint16_t rid, uint64_t address, bool write) {
  ++faults_;
  const std::string line = absl::StrFormat(
      "iommu: DMA fault: device %s %s unmapped IOVA 0x%x%s", FormatRequesterId(rid),
      write ? "write to" : "read from", address,
      !options_.msi_bypass && address >= options_.doorbell_base &&
              address < options_.doorbell_base + kMsiWindowSize
          ? " (MSI doorbell not mapped)"
          : "");
  if (tracer_ != nullptr && tracer_->enabled()) {
    tracer_->Emit(clock_->Now(), trace::DMA_FAULT, -1, absl::StrCat("host: ", line), -1,
                  address, 0, rid);
  }
  if (log_) log_(line);
  return absl::PermissionDeniedError(line);
}

absl::Status VfioContainer::Write(uint16_t requester_id, uint64_t address,
                                  absl::Span<const uint8_t> data) {
  if (options_.msi_bypass && TouchesMsiWindow(address, data.size())) {
    return downstream_->Write(requester_id, address, data);
  }
  const std::optional<uint64_t> t = Translate(address, data.size());
  if (!t) {
    if (ledger_ != nullptr && !options_.msi_bypass && data.size() == 4 &&
        address >= options_.doorbell_base &&
        address < options_.doorbell_base + kMsiWindowSize) {
      uint32_t value;
      std::memcpy(&value, data.data(), 4);
      ledger_->Record(IrqSource::kHostDevice, MsiOutcome::kFaulted,
                      MsiMessage(address, value, requester_id));
    }
    return Fault(requester_id, address, /*write=*/true);
  }
  return downstream_->Write(requester_id, *t, data);
}

absl::Status VfioContainer::Read(uint16_t requester_id, uint64_t address,
                                 absl::Span<uint8_t> out) {
  if (options_.msi_bypass && TouchesMsiWindow(address, out.size())) {
    return downstream_->Read(requester_id, address, out);
  }
  const std::optional<uint64_t> t = Translate(address, out.size());
  if (!t) return Fault(requester_id, address, /*write=*/false);
  return downstream_->Read(requester_id, *t, out);
}

}  // namespace irqlab
