#include "pci/msi_capability.h"

#include <bit>

#include "absl/strings/str_format.h"
#include "pci/pci_function.h"

namespace irqlab {

uint8_t MsiCapability::Length(const Options& options) {
  if (options.per_vector_mask) return options.address64 ? 0x18 : 0x14;
  return options.address64 ? 0x0E : 0x0A;
}

bool MsiCapability::Valid(const Options& options) {
  return options.vectors >= 1 && options.vectors <= 32 &&
         std::has_single_bit(options.vectors);
}

MsiCapability::MsiCapability(PciFunction* function, uint16_t offset,
                             const Options& options)
    : PciCapability(offset, Length(options)),
      function_(function),
      options_(options) {
  ConfigSpace& cs = function_->config();
  const unsigned mmc = std::countr_zero(options_.vectors);
  uint16_t control = static_cast<uint16_t>(mmc << pci::kMsiControlMmcShift);
  if (options_.address64) control |= pci::kMsiControl64Bit;
  if (options_.per_vector_mask) control |= pci::kMsiControlPerVectorMask;
  cs.Set16(offset + pci::kMsiControl, control);
  cs.SetWritable(offset + pci::kMsiControl, 2,
                 pci::kMsiControlEnable | pci::kMsiControlMmeMask);
  cs.SetWritable(offset + pci::kMsiAddressLo, 4, 0xFFFFFFFC);  // 6.8.1.4
  if (options_.address64) cs.SetWritable(offset + pci::kMsiAddressHi, 4, 0xFFFFFFFF);
  cs.SetWritable(data_offset(), 2, 0xFFFF);
  if (options_.per_vector_mask) {
    const uint32_t implemented =
        options_.vectors == 32 ? 0xFFFFFFFFu : (1u << options_.vectors) - 1;
    cs.SetWritable(mask_offset(), 4, implemented);  // 6.8.1.7
    // Pending Bits are read-only (6.8.1.8): default mask.
  }
}

uint16_t MsiCapability::data_offset() const {
  return offset() + (options_.address64 ? pci::kMsiData64 : pci::kMsiData32);
}
uint16_t MsiCapability::mask_offset() const {
  return offset() + (options_.address64 ? pci::kMsiMask64 : pci::kMsiMask32);
}
uint16_t MsiCapability::pending_offset() const {
  return offset() + (options_.address64 ? pci::kMsiPending64 : pci::kMsiPending32);
}

uint16_t MsiCapability::control() const {
  return function_->config().Get16(offset() + pci::kMsiControl);
}

unsigned MsiCapability::enabled_vectors() const {
  const unsigned mme = (control() & pci::kMsiControlMmeMask) >> pci::kMsiControlMmeShift;
  return 1u << mme;  // clamped to MMC on write
}

uint64_t MsiCapability::address() const {
  const ConfigSpace& cs = function_->config();
  uint64_t addr = cs.Get32(offset() + pci::kMsiAddressLo);
  if (options_.address64) addr |= uint64_t{cs.Get32(offset() + pci::kMsiAddressHi)} << 32;
  return addr;
}

uint16_t MsiCapability::data() const { return function_->config().Get16(data_offset()); }

uint32_t MsiCapability::mask_bits() const {
  return options_.per_vector_mask ? function_->config().Get32(mask_offset()) : 0;
}

uint32_t MsiCapability::pending_bits() const {
  return options_.per_vector_mask ? function_->config().Get32(pending_offset()) : 0;
}

void MsiCapability::SetPendingBits(uint32_t bits) {
  if (options_.per_vector_mask) function_->config().Set32(pending_offset(), bits);
}

MsiMessage MsiCapability::MessageFor(unsigned vector) const {
  const uint32_t granted = enabled_vectors() - 1;
  const uint32_t data = (uint32_t{this->data()} & ~granted) | (vector & granted);
  return MsiMessage(address(), data, function_->requester_id());
}

SignalResult MsiCapability::Signal(unsigned vector) {
  if (vector >= options_.vectors) {
    function_->Trace(trace::PCI_BLOCKED,
                     absl::StrFormat("%s MSI vector %u beyond the %u implemented",
                                     function_->name(), vector, options_.vectors));
    return SignalResult::kInvalidVector;
  }
  if (!enabled()) return SignalResult::kDisabled;
  const unsigned v = vector & (enabled_vectors() - 1);
  if (mask_bits() & (1u << v)) {
    SetPendingBits(pending_bits() | (1u << v));
    if (function_->tracing()) {
      const MsiMessage m = MessageFor(v);
      function_->Trace(trace::MSI_MASKED,
                       absl::StrFormat("%s MSI vector %u masked: pending bit set",
                                       function_->name(), v),
                       m.Vector(), m.address, m.data);
    }
    return SignalResult::kPending;
  }
  return function_->DeliverMessage(MessageFor(v), "MSI");
}

void MsiCapability::ClearPending(unsigned vector) {
  if (vector < 32) SetPendingBits(pending_bits() & ~(1u << vector));
}

void MsiCapability::DeliverPending() {
  const uint32_t ready = pending_bits() & ~mask_bits();
  if (ready == 0) return;
  for (unsigned v = 0; v < options_.vectors; ++v) {
    if (!(ready & (1u << v))) continue;
    // 6.8.1.8: "the function must ... clear the pending bit as soon as the
    // message has been sent". The message uses the current address/data.
    SetPendingBits(pending_bits() & ~(1u << v));
    // A blocked message is traced by DeliverMessage (PCI_BLOCKED); nothing
    // more to do here (the pending bit is cleared either way, 6.8.1.8).
    static_cast<void>(
        function_->DeliverMessage(MessageFor(v), "MSI (pending, unmasked)"));
  }
}

void MsiCapability::AfterConfigWrite() {
  ConfigSpace& cs = function_->config();
  // Clamp MME to MMC (QEMU msi_write_config()).
  uint16_t control = cs.Get16(offset() + pci::kMsiControl);
  const unsigned mmc = std::countr_zero(options_.vectors);
  const unsigned mme = (control & pci::kMsiControlMmeMask) >> pci::kMsiControlMmeShift;
  if (mme > mmc) {
    control = static_cast<uint16_t>((control & ~pci::kMsiControlMmeMask) |
                                    (mmc << pci::kMsiControlMmeShift));
    cs.Set16(offset() + pci::kMsiControl, control);
  }
  const bool now_enabled = enabled();
  const uint32_t now_mask = mask_bits();
  const bool enabled_rose = now_enabled && !last_enabled_;
  const bool unmasked = (last_mask_ & ~now_mask) != 0;
  last_enabled_ = now_enabled;
  last_mask_ = now_mask;
  if (now_enabled && (enabled_rose || unmasked)) DeliverPending();
}

}  // namespace irqlab
