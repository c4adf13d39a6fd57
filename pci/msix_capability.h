// MsixCapability: the MSI-X capability of a PCI function (PCI Local Bus
// Specification 3.0, 6.8.2 "MSI-X Capability and Table Structures", 6.8.3.x
// "MSI-X operation"), with its table and Pending Bit Array living in memory
// BARs at any offset (Table/PBA Offset + BIR, 6.8.2.4/6.8.2.5).
//
// Config space (offsets from the capability):
//   +2 Message Control: bits 10:0 Table Size N-1 (RO), bit 14 Function Mask
//      (RW), bit 15 MSI-X Enable (RW).
//   +4 Table Offset/BIR, +8 PBA Offset/BIR (RO).
// Table entry i (16 bytes at table offset + 16 i, 6.8.2.6-6.8.2.9): Message
// Address (bits 1:0 hardwired 0), Message Upper Address, Message Data, Vector
// Control (bit 0 Mask; other bits reserved, read 0). Every entry's mask bit
// is set at reset (6.8.2.9). PBA: one RO bit per entry, QWORDs.
//
// Table/PBA accesses (6.8.2: "software must use aligned full DWORD or aligned
// full QWORD transactions; otherwise the result is undefined"): aligned 4- and
// 8-byte accesses work; other sizes/alignments read 0 and writes are ignored
// (cloud-hypervisor msix.rs read_table/write_table do the same). PBA writes
// are ignored (6.8.2.10: "read-only").
//
// Masking and pending bits — the semantics of cloud-hypervisor's
// pci/src/msix.rs (MsixConfig::set_msg_ctl / write_table / trigger), which
// follow 6.8.3.5 ("Per-vector Masking and Function Masking"):
//   * Signal(i) while MSI-X is enabled and entry i is masked (its Mask bit or
//     the Function Mask): PBA bit i is set, nothing is sent.
//   * Signal(i) while enabled and unmasked: the message (current address and
//     data of entry i) goes upstream through the function (bus master gate,
//     DmaSink).
//   * A Vector Control write that clears entry i's Mask bit while the
//     function is enabled and not function-masked, with PBA bit i set: the
//     pending message is sent with the entry's *current* address/data and the
//     PBA bit is cleared.
//   * A Message Control write that makes the function deliverable (Function
//     Mask 1->0 while enabled — cloud-hypervisor's rule — or Enable 0->1
//     while unmasked — our extension, so a latched event is never stranded):
//     every unmasked entry with its PBA bit set is sent and its bit cleared,
//     in index order.
//   * Signal(i) while MSI-X is disabled: kDisabled (INTx/MSI instead); PBA
//     bits are kept across disable.
// Pending bits latch events (the source is not re-checked at unmask); a
// device retracts one with ClearPending().
//
// Not modelled: Steering Tags in Vector Control, MSI-X table in I/O BARs
// (forbidden by the spec), the 4 KiB isolation recommendation.
#ifndef IRQLAB_PCI_MSIX_CAPABILITY_H_
#define IRQLAB_PCI_MSIX_CAPABILITY_H_

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "emu/core/msi.h"
#include "pci/pci_capability.h"
#include "pci/pci_regs.h"

namespace irqlab {

class PciFunction;

class MsixCapability : public PciCapability {
 public:
  struct Options {
    unsigned vectors = 1;       // table size N, 1..2048
    int table_bar = 0;          // BIR
    uint32_t table_offset = 0;  // QWORD aligned
    int pba_bar = 0;
    uint32_t pba_offset = 0;    // QWORD aligned
  };

  // Bytes the table / PBA occupy.
  static uint64_t TableBytes(unsigned vectors) {
    return uint64_t{vectors} * pci::kMsixEntrySize;
  }
  static uint64_t PbaBytes(unsigned vectors) {
    return (uint64_t{vectors} + 63) / 64 * 8;
  }

  // REQUIRES: options validated by PciFunction::AddMsixCapability.
  MsixCapability(PciFunction* function, uint16_t offset, const Options& options);

  // Sends entry `index` (see the file comment).
  SignalResult Signal(unsigned index);
  void ClearPending(unsigned index);

  // BAR-side accesses, `offset` relative to the BAR. Claims() is true iff the
  // offset lies in this BAR's table or PBA; then Read/Write handle it.
  bool Claims(int bar, uint64_t offset) const;
  uint64_t Read(int bar, uint64_t offset, unsigned size) const;
  void Write(int bar, uint64_t offset, unsigned size, uint64_t value);

  // State views.
  uint16_t control() const;
  bool enabled() const { return control() & pci::kMsixControlEnable; }
  bool function_masked() const {
    return control() & pci::kMsixControlFunctionMask;
  }
  unsigned vectors() const { return options_.vectors; }
  bool vector_masked(unsigned index) const;
  bool pending(unsigned index) const;
  MsiMessage MessageFor(unsigned index) const;
  const Options& options() const { return options_; }

  // --- VMM hooks (pci/assigned_device.h: an emulated capability whose
  // vectors are backed by a physical device through vfio). ---
  // Runs after every table DWORD written to entry `index` (address, data or
  // Vector Control; a QWORD write runs it twice), after that DWORD's own
  // side effects (a pending entry unmasked has already been sent).
  void set_table_write_hook(std::function<void(unsigned index)> hook) {
    table_write_hook_ = std::move(hook);
  }
  // Replaces the upstream write of entry `index`'s message — Signal() of an
  // unmasked entry and pending entries released by an unmask — with
  // `hook(index)` (e.g. the VMM's interrupt route); the masking and PBA
  // rules above are unchanged.
  void set_delivery_hook(std::function<SignalResult(unsigned index)> hook) {
    delivery_hook_ = std::move(hook);
  }

  void AfterConfigWrite() override;

 private:
  struct Entry {
    uint32_t address_lo = 0;
    uint32_t address_hi = 0;
    uint32_t data = 0;
    uint32_t vector_control = pci::kMsixVectorControlMask;  // 6.8.2.9 reset
  };

  bool InTable(int bar, uint64_t offset) const;
  bool InPba(int bar, uint64_t offset) const;
  uint32_t ReadTableDword(uint64_t table_offset) const;
  void WriteTableDword(uint64_t table_offset, uint32_t value);
  void SetPending(unsigned index, bool pending);
  // Sends `index` now and clears its PBA bit.
  void DeliverAndClear(unsigned index);
  // The upstream write of entry `index` (or the delivery hook).
  SignalResult Send(unsigned index, const char* what);

  PciFunction* const function_;
  const Options options_;
  std::vector<Entry> table_;
  std::vector<uint64_t> pba_;
  bool last_enabled_ = false;
  bool last_function_masked_ = false;
  std::function<void(unsigned)> table_write_hook_;
  std::function<SignalResult(unsigned)> delivery_hook_;
};

}  // namespace irqlab

#endif  // IRQLAB_PCI_MSIX_CAPABILITY_H_
