#include "pci/msix_capability.h"

#include "absl/strings/str_format.h"
#include "pci/pci_function.h"

namespace irqlab {

MsixCapability::MsixCapability(PciFunction* function, uint16_t offset,
                               const Options& options)
    : PciCapability(offset, pci::kMsixCapLength),
      function_(function),
      options_(options),
      table_(options.vectors),
      pba_((options.vectors + 63) / 64, 0) {
  ConfigSpace& cs = function_->config();
  cs.Set16(offset + pci::kMsixControl,
           static_cast<uint16_t>((options_.vectors - 1) & pci::kMsixControlTableSizeMask));
  cs.SetWritable(offset + pci::kMsixControl, 2,
                 pci::kMsixControlFunctionMask | pci::kMsixControlEnable);
  cs.Set32(offset + pci::kMsixTableOffsetBir,
           options_.table_offset | static_cast<uint32_t>(options_.table_bar));
  cs.Set32(offset + pci::kMsixPbaOffsetBir,
           options_.pba_offset | static_cast<uint32_t>(options_.pba_bar));
}

uint16_t MsixCapability::control() const {
  return function_->config().Get16(offset() + pci::kMsixControl);
}

bool MsixCapability::vector_masked(unsigned index) const {
  return index < table_.size() &&
         (table_[index].vector_control & pci::kMsixVectorControlMask);
}

bool MsixCapability::pending(unsigned index) const {
  return index < table_.size() && ((pba_[index / 64] >> (index % 64)) & 1);
}

void MsixCapability::SetPending(unsigned index, bool pending) {
  if (index >= table_.size()) return;
  const uint64_t bit = uint64_t{1} << (index % 64);
  if (pending) {
    pba_[index / 64] |= bit;
  } else {
    pba_[index / 64] &= ~bit;
  }
}

MsiMessage MsixCapability::MessageFor(unsigned index) const {
  const Entry& e = table_.at(index);
  return MsiMessage((uint64_t{e.address_hi} << 32) | e.address_lo, e.data,
                    function_->requester_id());
}

SignalResult MsixCapability::Signal(unsigned index) {
  if (index >= table_.size()) {
    function_->Trace(trace::PCI_BLOCKED,
                     absl::StrFormat("%s MSI-X entry %u beyond the table (%u)",
                                     function_->name(), index, vectors()));
    return SignalResult::kInvalidVector;
  }
  if (!enabled()) return SignalResult::kDisabled;
  if (function_masked() || vector_masked(index)) {
    SetPending(index, true);
    if (function_->tracing()) {
      const MsiMessage m = MessageFor(index);
      function_->Trace(
          trace::MSIX_PENDING,
          absl::StrFormat("%s MSI-X entry %u masked (%s): PBA bit set",
                          function_->name(), index,
                          function_masked() ? "function mask" : "vector mask"),
          m.Vector(), m.address, m.data);
    }
    return SignalResult::kPending;
  }
  return Send(index, "MSI-X");
}

SignalResult MsixCapability::Send(unsigned index, const char* what) {
  if (delivery_hook_) return delivery_hook_(index);
  return function_->DeliverMessage(MessageFor(index), what);
}

void MsixCapability::ClearPending(unsigned index) { SetPending(index, false); }

void MsixCapability::DeliverAndClear(unsigned index) {
  // cloud-hypervisor inject_msix_and_clear_pba(): send with the entry's
  // current address/data, then clear the PBA bit (6.8.2.10).
  SetPending(index, false);
  // A blocked message is traced by Send(); the PBA bit is clear either way.
  static_cast<void>(Send(index, "MSI-X (pending, unmasked)"));
}

void MsixCapability::AfterConfigWrite() {
  const bool now_enabled = enabled();
  const bool now_masked = function_masked();
  const bool was_deliverable = last_enabled_ && !last_function_masked_;
  last_enabled_ = now_enabled;
  last_function_masked_ = now_masked;
  if (!now_enabled || now_masked || was_deliverable) return;
  // Became deliverable: Function Mask 1->0 or Enable 0->1 (file comment).
  for (unsigned i = 0; i < table_.size(); ++i) {
    if (!vector_masked(i) && pending(i)) DeliverAndClear(i);
  }
}

// --- Table and PBA. ---

bool MsixCapability::InTable(int bar, uint64_t offset) const {
  return bar == options_.table_bar && offset >= options_.table_offset &&
         offset - options_.table_offset < TableBytes(options_.vectors);
}

bool MsixCapability::InPba(int bar, uint64_t offset) const {
  return bar == options_.pba_bar && offset >= options_.pba_offset &&
         offset - options_.pba_offset < PbaBytes(options_.vectors);
}

bool MsixCapability::Claims(int bar, uint64_t offset) const {
  return InTable(bar, offset) || InPba(bar, offset);
}

uint32_t MsixCapability::ReadTableDword(uint64_t table_offset) const {
  const Entry& e = table_[table_offset / pci::kMsixEntrySize];
  switch (table_offset % pci::kMsixEntrySize) {
    case pci::kMsixEntryAddressLo:
      return e.address_lo;
    case pci::kMsixEntryAddressHi:
      return e.address_hi;
    case pci::kMsixEntryData:
      return e.data;
    default:
      return e.vector_control;
  }
}

void MsixCapability::WriteTableDword(uint64_t table_offset, uint32_t value) {
  const unsigned index = static_cast<unsigned>(table_offset / pci::kMsixEntrySize);
  Entry& e = table_[index];
  switch (table_offset % pci::kMsixEntrySize) {
    case pci::kMsixEntryAddressLo:
      e.address_lo = value & ~3u;  // 6.8.2.6: bits 1:0 hardwired 0 here
      return;
    case pci::kMsixEntryAddressHi:
      e.address_hi = value;
      return;
    case pci::kMsixEntryData:
      e.data = value;
      return;
    default: {
      const bool was_masked = vector_masked(index);
      // Only the Mask bit is implemented; reserved bits read 0 (6.8.2.9).
      e.vector_control = value & pci::kMsixVectorControlMask;
      // cloud-hypervisor write_table(): a 1->0 Mask transition with the
      // PBA bit set delivers, if the function is enabled and not masked.
      if (was_masked && !vector_masked(index) && enabled() &&
          !function_masked() && pending(index)) {
        DeliverAndClear(index);
      }
      return;
    }
  }
}

uint64_t MsixCapability::Read(int bar, uint64_t offset, unsigned size) const {
  if ((size != 4 && size != 8) || offset % size != 0) return 0;  // undefined
  if (InTable(bar, offset)) {
    const uint64_t t = offset - options_.table_offset;
    uint64_t v = ReadTableDword(t);
    if (size == 8) v |= uint64_t{ReadTableDword(t + 4)} << 32;
    return v;
  }
  if (InPba(bar, offset)) {
    const uint64_t p = offset - options_.pba_offset;
    const uint64_t qword = pba_[p / 8];
    if (size == 8) return qword;
    return (p % 8 == 0) ? (qword & 0xFFFFFFFF) : (qword >> 32);
  }
  return 0;
}

void MsixCapability::Write(int bar, uint64_t offset, unsigned size,
                           uint64_t value) {
  if ((size != 4 && size != 8) || offset % size != 0) return;  // undefined
  if (!InTable(bar, offset)) return;  // PBA is read-only (6.8.2.10)
  const uint64_t t = offset - options_.table_offset;
  const unsigned index = static_cast<unsigned>(t / pci::kMsixEntrySize);
  // The hook runs after each DWORD, so a QWORD write of data + Vector
  // Control updates the VMM's route before the unmask releases a pending
  // message through it.
  WriteTableDword(t, static_cast<uint32_t>(value));
  if (table_write_hook_) table_write_hook_(index);
  if (size == 8) {
    WriteTableDword(t + 4, static_cast<uint32_t>(value >> 32));
    if (table_write_hook_) table_write_hook_(index);
  }
}

}  // namespace irqlab
