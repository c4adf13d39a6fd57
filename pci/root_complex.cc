#include "pci/root_complex.h"

#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "emu/core/msi.h"

namespace irqlab {

void RootComplex::Trace(trace::Stage stage, uint16_t rid, uint64_t address,
                        uint64_t data, int vector, std::string_view detail) {
  if (tracer_ == nullptr || !tracer_->enabled()) return;
  tracer_->Emit(clock_ != nullptr ? clock_->Now() : 0, stage, /*cpu=*/-1,
                detail, vector, address, data, rid);
}

absl::Status RootComplex::Write(uint16_t requester_id, uint64_t address,
                                absl::Span<const uint8_t> data) {
  if (TouchesMsiWindow(address, data.size())) {
    // An interrupt request is exactly one DWORD write into the window
    // (PCI 3.0, 6.8.1.6/6.8.2: "a DWORD memory write transaction").
    if (data.size() != 4 || (address >> 20) != 0xFEE ||
        ((address + 3) >> 20) != 0xFEE) {
      Trace(trace::MSI_WRITE, requester_id, address, 0, -1,
            absl::StrFormat("malformed interrupt-window write of %u bytes: "
                            "dropped", data.size()));
      return absl::InvalidArgumentError(absl::StrFormat(
          "rid %s: write of %u bytes at 0x%x into the MSI window is not a "
          "DWORD interrupt request",
          FormatRequesterId(requester_id), data.size(), address));
    }
    uint32_t value;
    std::memcpy(&value, data.data(), 4);
    const MsiMessage message(address, value, requester_id);
    ++msi_writes_;
    if (msi_ == nullptr) {
      Trace(trace::MSI_WRITE, requester_id, address, value, message.Vector(),
            "no MSI sink: dropped");
      return absl::OkStatus();
    }
    if (tracer_ != nullptr && tracer_->enabled()) {
      Trace(trace::MSI_WRITE, requester_id, address, value,
            message.IsRemappable() ? -1 : message.Vector(),
            message.ToString());
    }
    // A posted write: the device gets no completion, whatever the outcome.
    // The machine counts it in an AccountingMsiSink (emu/core/irq_ledger.h)
    // in front of msi_.
    static_cast<void>(msi_->Signal(message));
    return absl::OkStatus();
  }
  if (ram_ == nullptr || !ram_->Contains(address, data.size())) {
    Trace(trace::DMA, requester_id, address, data.size(), -1,
          absl::StrFormat("write of %u bytes: master abort (no RAM)",
                          data.size()));
    return absl::NotFoundError(absl::StrFormat(
        "rid %s: DMA write of %u bytes at 0x%x hits no RAM (master abort)",
        FormatRequesterId(requester_id), data.size(), address));
  }
  if (!data.empty()) std::memcpy(ram_->data() + address, data.data(), data.size());
  dma_bytes_ += data.size();
  Trace(trace::DMA, requester_id, address, data.size(), -1,
        absl::StrFormat("write of %u bytes", data.size()));
  return absl::OkStatus();
}

absl::Status RootComplex::Read(uint16_t requester_id, uint64_t address,
                               absl::Span<uint8_t> out) {
  if (TouchesMsiWindow(address, out.size())) {
    Trace(trace::DMA, requester_id, address, out.size(), -1,
          "read of the MSI window: unsupported request");
    return absl::InvalidArgumentError(absl::StrFormat(
        "rid %s: DMA read of %u bytes at 0x%x targets the MSI window",
        FormatRequesterId(requester_id), out.size(), address));
  }
  if (ram_ == nullptr || !ram_->Contains(address, out.size())) {
    Trace(trace::DMA, requester_id, address, out.size(), -1,
          absl::StrFormat("read of %u bytes: master abort (no RAM)",
                          out.size()));
    return absl::NotFoundError(absl::StrFormat(
        "rid %s: DMA read of %u bytes at 0x%x hits no RAM (master abort)",
        FormatRequesterId(requester_id), out.size(), address));
  }
  if (!out.empty()) std::memcpy(out.data(), ram_->data() + address, out.size());
  dma_bytes_ += out.size();
  Trace(trace::DMA, requester_id, address, out.size(), -1,
        absl::StrFormat("read of %u bytes", out.size()));
  return absl::OkStatus();
}

}  // namespace irqlab
