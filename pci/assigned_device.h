// The VMM side of device assignment (QEMU hw/vfio/pci.c + KVM irqfd
// routing, as a C++ model): the guest-visible PCI function that stands for
// a physical device reached through vfio (pci/vfio.h), and the routing
// table that turns host interrupts into guest interrupts.
//
//   host irq --trigger--> IrqRouteTable::Fire(gsi)
//      fast path: cached translation --> guest APIC bus
//      slow path: guest vIOMMU Remap() (faults at delivery time) --> APIC
//                 bus, and the translation is cached again (seed 003)
//
// IrqRouteTable (KVM's MSI routes + irqfd; seed 003's "route table is a
// cache keyed by an invalidation cookie"): each route holds the guest's MSI
// message. Without a guest vIOMMU the message itself is the route. With
// one, the first delivery translates it through the vIOMMU (Remap(): faults
// are raised then, when an interrupt is actually delivered) and caches the
// translation under the cookie = the guest IRTE index; the vIOMMU's IEC
// invalidations (global or index/mask) drop the routes with matching
// cookies in O(k) (std::multimap range), and the next delivery takes the
// slow path again. A guest that changes an IRTE without invalidating keeps
// getting the old vector, exactly as with the vIOMMU's own IEC.
//
// AssignedPciDevice: identity, BAR sizes and the MSI capability layout are
// copied from the physical function. Config space is the VMM's: the guest
// reads back what it wrote (MSI address/data are virtualized); Command
// writes are forwarded to the device (memory decode, bus master); an MSI
// enable / MME / message change becomes SET_IRQS(MSI) + routes. BAR
// accesses go to the device through vfio, with the assignment's fix:
//   kNone         pass through unchanged (seed 000's failure: the firmware
//                 fires the guest's compatibility-format pair, the host
//                 VT-d blocks it with fault 0x25);
//   kNovirtQuirk  needs vfio's NOVIRT feature: traps BAR0 writes in the
//                 device's interrupt-source registers; an address write
//                 equal to the guest MSI address becomes the host address,
//                 and the data write 8 bytes later becomes the host data
//                 plus the vector offset (guest data - guest base data);
//   kIms          traps the interrupt-source registers and gives each
//                 source its own host interrupt (vfio SetSourceIrq) routed
//                 to the message the guest wrote for it; the guest reads
//                 back its own values;
//   kGuestOwned   (seed 000 fix (c)) BAR writes pass unchanged and the
//                 guest's MSI message is programmed into the device as is
//                 (vfio SetMsiGuestOwned); the host IOMMU translates it by
//                 (requester id, vector) and posts it to the vCPU whose APIC
//                 id the message names — no routing table involved.
//
// MSI-X (seed 004): see "MSI-X" below AssignmentOptions.
//
// Not modelled: INTx, ROM, I/O BARs, config-space quirks beyond the
// MSI/MSI-X capabilities, migration.
#ifndef IRQLAB_PCI_ASSIGNED_DEVICE_H_
#define IRQLAB_PCI_ASSIGNED_DEVICE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "emu/core/msi.h"
#include "emu/core/interrupt_remapper.h"
#include "emu/core/irq_ledger.h"
#include "emu/core/msi_sink.h"
#include "emu/core/trace.h"
#include "pci/pci_function.h"
#include "pci/vfio.h"

namespace irqlab {

struct IrqRouteStats {
  uint64_t fast = 0;         // delivered from a cached route
  uint64_t slow = 0;         // translated at delivery time
  uint64_t faulted = 0;      // slow path: the vIOMMU blocked it
  uint64_t invalidated = 0;  // cached translations dropped by invalidations
  uint64_t dropped_by_fault = 0;     // fault injection (InjectDrop)
  uint64_t duplicated_by_fault = 0;  // fault injection (InjectDuplicate)
};

class IrqRouteTable {
 public:
  // `apic_bus` is the guest's APIC bus; `viommu` the guest's VT-d or null.
  // Not owned. With a vIOMMU, installs its IEC listener.
  IrqRouteTable(MsiSink* apic_bus, InterruptRemapper* viommu, Tracer* tracer,
                const Clock* clock);
  IrqRouteTable(const IrqRouteTable&) = delete;
  IrqRouteTable& operator=(const IrqRouteTable&) = delete;

  // Adds a route for guest message `message`; returns its gsi.
  int AddRoute(const MsiMessage& message, std::string name);
  // Replaces the message (drops the cached translation).
  void UpdateRoute(int gsi, const MsiMessage& message);
  void RemoveRoute(int gsi);
  // The host event of `gsi` fired (irqfd): inject into the guest, and
  // record the outcome in the ledger (if set) as a kVmmRoute interrupt. A
  // gsi without a route loses the interrupt (kLost: a VMM defect).
  void Fire(int gsi);
  // Interrupt accounting (emu/core/irq_ledger.h); not owned, may be null.
  void set_ledger(IrqLedger* ledger) { ledger_ = ledger; }
  // Drops cached translations whose cookie (guest IRTE index) is in the
  // invalidated range; O(k) in the routes dropped.
  void Invalidate(bool global, uint32_t index, uint8_t mask);

  // Fault injection: the next `n` Fire() calls deliver nothing / deliver
  // twice (traced as FAULT_INJECT).
  void InjectDrop(uint32_t n) { fault_drop_ += n; }
  void InjectDuplicate(uint32_t n) { fault_duplicate_ += n; }

  const IrqRouteStats& stats() const { return stats_; }
  size_t size() const { return routes_.size(); }
  bool cached(int gsi) const;

 private:
  struct Route {
    MsiMessage message{0, 0, 0};
    std::string name;
    bool cached = false;
    RemapResult translation;  // valid when cached
    std::multimap<uint32_t, int>::iterator cookie;
  };
  MsiOutcome Deliver(int gsi);  // Fire() without the accounting
  void Drop(Route& route);
  void Trace(const Route& r, int gsi, const std::string& detail, int vector = -1,
             uint64_t address = 0, uint64_t data = 0);

  MsiSink* const apic_bus_;
  InterruptRemapper* const viommu_;
  Tracer* const tracer_;
  const Clock* const clock_;
  std::map<int, Route> routes_;
  std::multimap<uint32_t, int> by_cookie_;  // guest IRTE index -> gsi
  int next_gsi_ = 32;
  IrqRouteStats stats_;
  uint32_t fault_drop_ = 0;
  uint32_t fault_duplicate_ = 0;
  IrqLedger* ledger_ = nullptr;
};

struct AssignmentOptions {
  enum class Fix { kNone, kNovirtQuirk, kIms, kGuestOwned };
  Fix fix = Fix::kNone;
  // BAR0 offsets of the device's interrupt-source registers (address at
  // +0/+4, data at +8): what IMS traps.
  std::vector<uint64_t> source_offsets;
  // BAR0 range the quirk watches (the device's "PCI window").
  uint64_t window_base = 0;
  uint64_t window_size = 0;

  // Seed 004: when the VMM enables MSI-X on the physical function, and for
  // which table entries (see "MSI-X" below).
  enum class MsixPolicy { kLazy, kDataHint, kSingleVector, kAllVectors };
  MsixPolicy msix_policy = MsixPolicy::kLazy;
};

// "lazy", "data-hint", "single-vector", "all-vectors".
const char* MsixPolicyName(AssignmentOptions::MsixPolicy policy);

// MSI-X (seed 004). When the physical function has MSI-X, the guest-visible
// function gets an emulated MSI-X capability of the same size at the same
// config offset, with its table and PBA at the same BAR/offsets. Those BAR
// ranges are the VMM's (PciFunction sends them to the emulated capability),
// not passed through — so vfio's MSIX_MAPPABLE (letting the guest mmap the
// table page, seed 002) is not needed here; the rest of the BAR still is.
// Guest MSI-X Message Control writes never reach the physical function:
// its MSI-X state follows from SET_IRQS(MSIX) (VfioPciDevice::SetMsixIrqs).
//
// Which entries get a host vector (the set only grows while the guest keeps
// MSI-X enabled, as in QEMU; the guest disabling MSI-X frees them all):
//   * always: every entry the guest unmasks while MSI-X is enabled and not
//     function-masked (QEMU's vector_use on unmask), at that moment;
//   * in addition, at a guest "enable event" — a Message Control write that
//     sets Enable, or changes Function Mask while enabled (what qemu-kvm's
//     pci-assign re-evaluated on) — by policy:
//       kLazy          nothing: the physical function has MSI-X enabled
//                      only once some vector is unmasked. A device whose
//                      PF/firmware channel depends on the host MSI-X state
//                      breaks while the guest driver probes with every
//                      vector masked (the bug of seed 004);
//       kDataHint      entries whose Message Data is non-zero (qemu-kvm's
//                      assigned_dev_msix_skipped(), the 2012 stable fix):
//                      works for Linux, which fills the table before it
//                      enables, not for a guest that enables MSI-X with an
//                      empty table and fills it later (FreeBSD): nothing has
//                      data yet, so it degrades to lazy;
//       kSingleVector  entry 0, even while everything is masked (QEMU's
//                      vfio_msix_enable today): MSI-X is on at the host as
//                      soon as the guest turns it on, with one host vector;
//       kAllVectors    every table entry (costs one host vector and IRTE
//                      per entry whether the guest uses it or not).
// Each entry with a host vector has a route (IrqRouteTable) to the guest
// message of that entry, updated whenever the guest rewrites the entry's
// address or data. The VMM emulates masking with cloud-hypervisor's
// pci/src/msix.rs semantics (MsixCapability): a host interrupt for an entry
// the guest masked (vector or function mask) sets the guest PBA bit; the
// unmask delivers it through the route with the entry's current message.
// The physical entries stay unmasked while they have a host vector.

class AssignedPciDevice : public PciFunction {
 public:
  // `vfio` and `routes` are not owned and outlive this object.
  static absl::StatusOr<std::unique_ptr<AssignedPciDevice>> Create(
      VfioPciDevice* vfio, IrqRouteTable* routes,
      const AssignmentOptions& options);
  ~AssignedPciDevice() override;

  uint64_t quirk_rewrites() const { return quirk_rewrites_; }
  unsigned routes_installed() const { return static_cast<unsigned>(msi_gsis_.size()); }
  // MSI-X (seed 004): guest entries with a host vector (and a route), and
  // host interrupts that found their guest entry masked (PBA bit set).
  unsigned msix_host_vectors() const { return static_cast<unsigned>(msix_gsis_.size()); }
  uint64_t msix_masked_host_irqs() const { return msix_masked_host_irqs_; }
  AssignmentOptions::MsixPolicy msix_policy() const { return options_.msix_policy; }

 protected:
  void OnConfigWrite(uint32_t offset, unsigned size) override;

 private:
  class BarPassthrough;
  AssignedPciDevice(VfioPciDevice* vfio, IrqRouteTable* routes,
                    const AssignmentOptions& options, const Identity& identity);
  absl::Status Init();
  void UpdateMsi();
  void DisableMsi();
  // MSI-X (seed 004).
  void UpdateMsix();                       // after a Message Control write
  void OnMsixTableWrite(unsigned index);   // after a guest table write
  void OnHostMsix(unsigned index);         // host interrupt of an entry
  SignalResult DeliverMsix(unsigned index);  // through the entry's route
  // Gives exactly the entries in `want` a host vector (SET_IRQS MSIX).
  void ApplyMsix(const std::vector<unsigned>& want, const std::string& why);
  void DisableMsix();
  // BAR0 write as the VMM handles it (fix-specific traps).
  void BarWrite(int bar, uint64_t offset, unsigned size, uint64_t value);
  uint64_t BarRead(int bar, uint64_t offset, unsigned size);
  // Index of the source whose registers contain `offset`, or -1.
  int SourceAt(uint64_t offset) const;
  MsiMessage GuestMessage(unsigned vector);
  void TraceVmm(const std::string& detail, uint64_t address = 0, uint64_t data = 0);

  VfioPciDevice* const vfio_;
  IrqRouteTable* const routes_;
  const AssignmentOptions options_;
  std::vector<std::unique_ptr<BarPassthrough>> bars_;

  // MSI state as last applied.
  bool msi_on_ = false;
  unsigned msi_count_ = 0;
  std::vector<int> msi_gsis_;
  // kNovirtQuirk: the data register expected after a rewritten address.
  std::optional<uint64_t> quirk_data_offset_;
  uint64_t quirk_rewrites_ = 0;
  // kIms: what the guest wrote into each source (addr lo, addr hi, data).
  struct Source {
    uint32_t addr_lo = 0, addr_hi = 0, data = 0;
    int gsi = -1;
  };
  std::vector<Source> sources_;

  // MSI-X (seed 004): guest state as last seen, and entry -> route gsi of
  // the entries with a host vector.
  bool msix_on_ = false;
  bool msix_function_masked_ = false;
  std::map<unsigned, int> msix_gsis_;
  uint64_t msix_masked_host_irqs_ = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_PCI_ASSIGNED_DEVICE_H_
