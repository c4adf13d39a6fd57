#include "pci/vfio.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "emu/core/status_macros.h"
#include "pci/pci_regs.h"

namespace irqlab {

VfioPciDevice::VfioPciDevice(PciFunction* device, AddressSpace* host_memory,
                             HostIrqAllocator* host, Tracer* tracer,
                             const Clock* clock)
    : device_(device),
      host_memory_(host_memory),
      host_(host),
      tracer_(tracer),
      clock_(clock) {
  if (MsiCapability* msi = device_->msi()) {
    msi_offset_ = msi->offset();
    // The shadow starts as the device's power-on values (enable 0, address
    // and data 0); it covers Message Control through the data register. The
    // per-vector Mask/Pending Bits (the last 8 bytes of a masking
    // capability) are not virtualized, as in Linux (NO_VIRT).
    msi_shadow_.resize(msi->options().per_vector_mask ? msi->length() - 8u : msi->length());
    for (uint32_t i = 2; i < msi_shadow_.size(); ++i) {
      msi_shadow_[i] = static_cast<uint8_t>(device_->ConfigRead(msi_offset_ + i, 1));
    }
  }
}

VfioPciDevice::~VfioPciDevice() {
  FreeMsix();
  FreeMsi();
  for (auto& [source, irq] : source_blocks_) host_->FreeIrqs(irq.block);
}

bool VfioPciDevice::InMsiShadow(uint32_t offset) const {
  return !msi_shadow_.empty() && offset >= msi_offset_ + 2u &&
         offset < msi_offset_ + msi_shadow_.size();
}

uint32_t VfioPciDevice::ConfigRead(uint32_t offset, unsigned size) const {
  uint32_t value = 0;
  for (unsigned i = 0; i < size; ++i) {
    const uint32_t o = offset + i;
    uint8_t b;
    // Message Control (offset +2/+3) always comes from the shadow; the
    // address/data come from the device with NOVIRT.
    const bool control = o < msi_offset_ + 4u;
    if (InMsiShadow(o) && (control || !msi_novirt_)) {
      b = msi_shadow_[o - msi_offset_];
    } else {
      b = static_cast<uint8_t>(device_->ConfigRead(o, 1));
    }
    value |= uint32_t{b} << (8 * i);
  }
  return value;
}

void VfioPciDevice::ConfigWrite(uint32_t offset, unsigned size, uint32_t value) {
  if (!InMsiShadow(offset) && !InMsiShadow(offset + size - 1)) {
    device_->ConfigWrite(offset, size, value);
    return;
  }
  for (unsigned i = 0; i < size; ++i) {
    const uint32_t o = offset + i;
    const uint8_t b = static_cast<uint8_t>(value >> (8 * i));
    if (!InMsiShadow(o)) {
      device_->ConfigWrite(o, 1, b);
      continue;
    }
    uint8_t& s = msi_shadow_[o - msi_offset_];
    if (o == msi_offset_ + 2u) {
      // Message Control low byte: enable (bit 0) and MME (6:4) are writable;
      // MMC (3:1) and 64-bit (7) are read-only.
      s = static_cast<uint8_t>((s & 0x8E) | (b & 0x71));
    } else if (o == msi_offset_ + 3u) {
      // Per-vector masking (bit 8) is read-only; the rest is reserved.
    } else {
      s = b;
    }
  }
}

uint64_t VfioPciDevice::BarRead(int bar, uint64_t offset, unsigned size) {
  const std::optional<uint64_t> base = device_->BarMappedAt(bar);
  if (!base) return AllOnes(size);
  return host_memory_->Read(AccessOrigin::Cpu(0), *base + offset, size);
}

void VfioPciDevice::BarWrite(int bar, uint64_t offset, unsigned size,
                             uint64_t value) {
  const std::optional<uint64_t> base = device_->BarMappedAt(bar);
  if (!base) return;
  host_memory_->Write(AccessOrigin::Cpu(0), *base + offset, size, value);
}

void VfioPciDevice::FreeMsi() {
  if (!guest_owned_ && !msi_block_) return;
  // Disable MSI on the device first, then release what the host allocated.
  const uint16_t control = device_->config().Get16(msi_offset_ + pci::kMsiControl);
  device_->ConfigWrite(msi_offset_ + pci::kMsiControl, 2,
                       control & ~(pci::kMsiControlEnable | pci::kMsiControlMmeMask));
  if (guest_owned_) {
    host_->ReleaseGuestMsi(device_->requester_id());
    guest_owned_ = false;
  }
  if (msi_block_) {
    host_->FreeIrqs(*msi_block_);
    msi_block_.reset();
    if (container_ != nullptr) container_->UnmapDoorbell();
  }
  msi_triggers_.clear();
}

absl::Status VfioPciDevice::SetMsiIrqs(std::vector<std::function<void()>> triggers) {
  MsiCapability* msi = device_->msi();
  if (msi == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vfio %s: SET_IRQS(MSI): the device has no MSI capability", device_->name()));
  }
  const unsigned count = static_cast<unsigned>(triggers.size());
  if (count != 0 && ((count & (count - 1)) != 0 || count > msi->capable_vectors())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vfio %s: SET_IRQS(MSI): count %u is not a power of two <= %u",
        device_->name(), count, msi->capable_vectors()));
  }
  FreeMsi();
  if (count == 0) {
    Trace("SET_IRQS MSI count 0: MSI disabled, host interrupts freed");
    return absl::OkStatus();
  }
  msi_triggers_ = std::move(triggers);
  absl::StatusOr<HostIrqBlock> block = host_->AllocateIrqs(
      device_->requester_id(), count, device_->name() + "-msi",
      [this](unsigned i) {
        if (i < msi_triggers_.size() && msi_triggers_[i]) msi_triggers_[i]();
      });
  if (!block.ok()) {
    msi_triggers_.clear();
    return block.status();
  }
  msi_block_ = *block;
  // Program the physical capability with the host message (vfio-pci via
  // pci_alloc_irq_vectors + the IR irq_domain writing remappable format).
  MsiMessage m = block->message;
  if (container_ != nullptr && !container_->msi_bypass()) {
    // The MSI write is translated like DMA: the device must target the
    // doorbell IOVA, which vfio maps onto the interrupt window (seed 001).
    m.address = container_->DoorbellAddress(m.address);
    if (auto_map_doorbell_) {
      if (absl::Status s = container_->MapDoorbell(); !s.ok()) {
        Trace(absl::StrCat("SET_IRQS MSI: doorbell mapping failed: ", s.ToString()));
      }
    }
  }
  ProgramPhysicalMsi(m.address, static_cast<uint16_t>(m.data), count);
  Trace(absl::StrFormat("SET_IRQS MSI count %u: physical MSI programmed %s (IRTE 0x%x..0x%x)",
                        count, m.ToString(), block->first_index,
                        block->first_index + count - 1),
        m.address, m.data);
  return absl::OkStatus();
}

void VfioPciDevice::ProgramPhysicalMsi(uint64_t address, uint16_t data, unsigned count) {
  const bool is64 = device_->msi()->options().address64;
  device_->ConfigWrite(msi_offset_ + 4, 4, static_cast<uint32_t>(address));
  if (is64) device_->ConfigWrite(msi_offset_ + 8, 4, static_cast<uint32_t>(address >> 32));
  device_->ConfigWrite(msi_offset_ + (is64 ? 0x0C : 0x08), 2, data);
  unsigned mme = 0;
  while ((1u << mme) < count) ++mme;
  const uint16_t control = device_->config().Get16(msi_offset_ + pci::kMsiControl);
  device_->ConfigWrite(
      msi_offset_ + pci::kMsiControl, 2,
      (control & ~pci::kMsiControlMmeMask) | (mme << pci::kMsiControlMmeShift) |
          pci::kMsiControlEnable);
  // Bus mastering is needed for the device to send anything upstream.
  const uint16_t command = device_->command();
  if (!(command & pci::kCommandBusMaster)) {
    device_->ConfigWrite(pci::kCommand, 2, command | pci::kCommandBusMaster);
  }
}

absl::Status VfioPciDevice::SetMsiGuestOwned(uint64_t address, uint16_t data,
                                             const std::vector<int>& vcpus) {
  MsiCapability* msi = device_->msi();
  const unsigned count = static_cast<unsigned>(vcpus.size());
  if (msi == nullptr || (count & (count - 1)) != 0 || count > msi->capable_vectors()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vfio %s: guest-owned MSI: bad vector count %u", device_->name(), count));
  }
  FreeMsi();
  if (count == 0) return absl::OkStatus();
  guest_owned_ = true;
  for (unsigned i = 0; i < count; ++i) {
    const uint8_t vector = static_cast<uint8_t>(((data & ~(count - 1)) | i) & 0xFF);
    RETURN_IF_ERROR(host_->MapGuestVector(device_->requester_id(), vector, vcpus[i]));
  }
  ProgramPhysicalMsi(address, data, count);
  Trace(absl::StrFormat("guest-owned MSI: physical MSI = the guest's %08x/%04x, %u vector(s) "
                        "posted to vCPU(s)",
                        address, data, count),
        address, data);
  return absl::OkStatus();
}

absl::StatusOr<MsiMessage> VfioPciDevice::SetSourceIrq(unsigned source,
                                                       std::function<void()> trigger) {
  if (auto it = source_blocks_.find(source); it != source_blocks_.end()) {
    host_->FreeIrqs(it->second.block);
    source_blocks_.erase(it);
  }
  SourceIrq& irq = source_blocks_[source];
  irq.trigger = std::move(trigger);
  absl::StatusOr<HostIrqBlock> block = host_->AllocateIrqs(
      device_->requester_id(), 1, absl::StrFormat("%s-src%u", device_->name(), source),
      [this, source](unsigned) {
        auto it = source_blocks_.find(source);
        if (it != source_blocks_.end() && it->second.trigger) it->second.trigger();
      });
  if (!block.ok()) {
    source_blocks_.erase(source);
    return block.status();
  }
  irq.block = *block;
  const uint16_t command = device_->command();
  if (!(command & pci::kCommandBusMaster)) {
    device_->ConfigWrite(pci::kCommand, 2, command | pci::kCommandBusMaster);
  }
  Trace(absl::StrFormat("IMS source %u: host interrupt %s (IRTE 0x%x)", source,
                        block->message.ToString(), block->first_index),
        block->message.address, block->message.data);
  return block->message;
}

// ---------------------------------------------------------------------------
// MSI-X (seed 004)
// ---------------------------------------------------------------------------

void VfioPciDevice::WriteMsixEntry(unsigned index, uint32_t field, uint32_t value) {
  MsixCapability* x = device_->msix();
  const std::optional<uint64_t> base = device_->BarMappedAt(x->options().table_bar);
  if (!base) return;
  host_memory_->Write(AccessOrigin::Cpu(0),
                      *base + x->options().table_offset +
                          uint64_t{index} * pci::kMsixEntrySize + field,
                      4, value);
}

void VfioPciDevice::FreeMsix() {
  MsixCapability* x = device_->msix();
  if (x == nullptr || (msix_irqs_.empty() && !x->enabled())) return;
  // pci_disable_msix: every entry masked, Enable cleared, then the host
  // interrupts are released.
  for (unsigned i = 0; i < x->vectors(); ++i) {
    WriteMsixEntry(i, pci::kMsixEntryVectorControl, pci::kMsixVectorControlMask);
  }
  const uint16_t control = device_->config().Get16(x->offset() + pci::kMsixControl);
  device_->ConfigWrite(x->offset() + pci::kMsixControl, 2,
                       control & ~(pci::kMsixControlEnable | pci::kMsixControlFunctionMask));
  for (auto& [index, irq] : msix_irqs_) host_->FreeIrqs(irq.block);
  msix_irqs_.clear();
  if (container_ != nullptr && !container_->msi_bypass()) container_->UnmapDoorbell();
}

absl::Status VfioPciDevice::SetMsixIrqs(std::map<unsigned, std::function<void()>> vectors) {
  MsixCapability* x = device_->msix();
  if (x == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vfio %s: SET_IRQS(MSIX): the device has no MSI-X capability", device_->name()));
  }
  for (const auto& [index, trigger] : vectors) {
    if (index >= x->vectors()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "vfio %s: SET_IRQS(MSIX): vector %u beyond the table (%u entries)", device_->name(),
          index, x->vectors()));
    }
  }
  if (vectors.empty()) {
    FreeMsix();
    Trace("SET_IRQS MSIX count 0: MSI-X disabled, host interrupts freed: host vectors 0");
    return absl::OkStatus();
  }
  if (!device_->BarMappedAt(x->options().table_bar)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "vfio %s: SET_IRQS(MSIX): the MSI-X table BAR%d is not mapped on the host",
        device_->name(), x->options().table_bar));
  }
  const uint16_t cap = x->offset();
  const bool was_enabled = x->enabled();
  if (!was_enabled) {
    // msix_capability_init: enable with every vector function-masked while
    // the entries are programmed.
    const uint16_t control = device_->config().Get16(cap + pci::kMsixControl);
    device_->ConfigWrite(cap + pci::kMsixControl, 2,
                         control | pci::kMsixControlEnable | pci::kMsixControlFunctionMask);
  }
  // Entries that lose their host interrupt: masked, then freed.
  unsigned freed = 0;
  for (auto it = msix_irqs_.begin(); it != msix_irqs_.end();) {
    if (vectors.count(it->first)) {
      ++it;
      continue;
    }
    WriteMsixEntry(it->first, pci::kMsixEntryVectorControl, pci::kMsixVectorControlMask);
    host_->FreeIrqs(it->second.block);
    it = msix_irqs_.erase(it);
    ++freed;
  }
  unsigned added = 0;
  absl::Status status = absl::OkStatus();
  for (auto& [index, trigger] : vectors) {
    auto have = msix_irqs_.find(index);
    if (have != msix_irqs_.end()) {
      have->second.trigger = std::move(trigger);
      continue;
    }
    absl::StatusOr<HostIrqBlock> block = host_->AllocateIrqs(
        device_->requester_id(), 1, absl::StrFormat("%s-msix%u", device_->name(), index),
        [this, i = index](unsigned) {
          auto it = msix_irqs_.find(i);
          if (it != msix_irqs_.end() && it->second.trigger) it->second.trigger();
        });
    if (!block.ok()) {
      status = block.status();
      break;
    }
    MsixIrq& irq = msix_irqs_[index];
    irq.block = *block;
    irq.trigger = std::move(trigger);
    ++added;
    ++msix_irqs_allocated_;
    MsiMessage m = block->message;
    if (container_ != nullptr && !container_->msi_bypass()) {
      // Seed 001: the device must target the doorbell IOVA.
      m.address = container_->DoorbellAddress(m.address);
      if (auto_map_doorbell_ && !container_->doorbell_mapped()) {
        if (absl::Status s = container_->MapDoorbell(); !s.ok()) {
          Trace(absl::StrCat("SET_IRQS MSIX: doorbell mapping failed: ", s.ToString()));
        }
      }
    }
    // pci_msix_write_msg on a masked entry, then the unmask of request_irq.
    WriteMsixEntry(index, pci::kMsixEntryVectorControl, pci::kMsixVectorControlMask);
    WriteMsixEntry(index, pci::kMsixEntryAddressLo, static_cast<uint32_t>(m.address));
    WriteMsixEntry(index, pci::kMsixEntryAddressHi, static_cast<uint32_t>(m.address >> 32));
    WriteMsixEntry(index, pci::kMsixEntryData, m.data);
    WriteMsixEntry(index, pci::kMsixEntryVectorControl, 0);
    Trace(absl::StrFormat("MSI-X entry %u: physical entry programmed %s (IRTE 0x%x)", index,
                          m.ToString(), block->first_index),
          m.address, m.data);
  }
  const uint16_t command = device_->command();
  if (!(command & pci::kCommandBusMaster)) {
    device_->ConfigWrite(pci::kCommand, 2, command | pci::kCommandBusMaster);
  }
  const uint16_t control = device_->config().Get16(cap + pci::kMsixControl);
  if (control & pci::kMsixControlFunctionMask) {
    device_->ConfigWrite(cap + pci::kMsixControl, 2,
                         control & ~pci::kMsixControlFunctionMask);
  }
  std::vector<std::string> list;
  for (const auto& [index, irq] : msix_irqs_) list.push_back(absl::StrCat(index));
  Trace(absl::StrFormat("SET_IRQS MSIX vectors %s: host vectors %u (%u allocated, %u freed), "
                        "physical MSI-X %s",
                        absl::StrJoin(list, ","), msix_irq_count(), added, freed,
                        was_enabled ? "stays enabled" : "enabled"));
  return status;
}

void VfioPciDevice::Trace(std::string_view detail, uint64_t address, uint64_t data) {
  if (tracer_ == nullptr || !tracer_->enabled()) return;
  tracer_->Emit(clock_ != nullptr ? clock_->Now() : 0, trace::VFIO, -1,
                absl::StrCat("host: vfio-pci ", FormatRequesterId(device_->requester_id()), " ",
                             std::string(detail)),
                -1, address, data, device_->requester_id());
}

}  // namespace irqlab
