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
// Not modelled: MSI-X, INTx, ROM, I/O BARs, config-space quirks beyond the
// MSI capability, migration.
#ifndef IRQLAB_PCI_ASSIGNED_DEVICE_H_
#define IRQLAB_PCI_ASSIGNED_DEVICE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "emu/msi.h"
#include "emu/msi_sink.h"
#include "emu/trace.h"
#include "iommu/vtd_unit.h"
#include "pci/pci_function.h"
#include "pci/vfio.h"

namespace irqlab {

struct IrqRouteStats {
  uint64_t fast = 0;         // delivered from a cached route
  uint64_t slow = 0;         // translated at delivery time
  uint64_t faulted = 0;      // slow path: the vIOMMU blocked it
  uint64_t invalidated = 0;  // cached translations dropped by invalidations
};

class IrqRouteTable {
 public:
  // `apic_bus` is the guest's APIC bus; `viommu` the guest's VT-d or null.
  // Not owned. With a vIOMMU, installs its IEC listener.
  IrqRouteTable(MsiSink* apic_bus, VtdUnit* viommu, Tracer* tracer,
                const Clock* clock);
  IrqRouteTable(const IrqRouteTable&) = delete;
  IrqRouteTable& operator=(const IrqRouteTable&) = delete;

  // Adds a route for guest message `message`; returns its gsi.
  int AddRoute(const MsiMessage& message, std::string name);
  // Replaces the message (drops the cached translation).
  void UpdateRoute(int gsi, const MsiMessage& message);
  void RemoveRoute(int gsi);
  // The host event of `gsi` fired (irqfd): inject into the guest.
  void Fire(int gsi);
  // Drops cached translations whose cookie (guest IRTE index) is in the
  // invalidated range; O(k) in the routes dropped.
  void Invalidate(bool global, uint32_t index, uint8_t mask);

  const IrqRouteStats& stats() const { return stats_; }
  size_t size() const { return routes_.size(); }
  bool cached(int gsi) const;

 private:
  struct Route {
    MsiMessage message{0, 0, 0};
    std::string name;
    bool cached = false;
    VtdUnit::RemapResult translation;  // valid when cached
    std::multimap<uint32_t, int>::iterator cookie;
  };
  void Drop(Route& route);
  void Trace(const Route& r, int gsi, const std::string& detail, int vector = -1,
             uint64_t address = 0, uint64_t data = 0);

  MsiSink* const apic_bus_;
  VtdUnit* const viommu_;
  Tracer* const tracer_;
  const Clock* const clock_;
  std::map<int, Route> routes_;
  std::multimap<uint32_t, int> by_cookie_;  // guest IRTE index -> gsi
  int next_gsi_ = 32;
  IrqRouteStats stats_;
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
};

class AssignedPciDevice : public PciFunction {
 public:
  // `vfio` and `routes` are not owned and outlive this object.
  static absl::StatusOr<std::unique_ptr<AssignedPciDevice>> Create(
      VfioPciDevice* vfio, IrqRouteTable* routes,
      const AssignmentOptions& options);
  ~AssignedPciDevice() override;

  uint64_t quirk_rewrites() const { return quirk_rewrites_; }
  unsigned routes_installed() const { return static_cast<unsigned>(msi_gsis_.size()); }

 protected:
  void OnConfigWrite(uint32_t offset, unsigned size) override;

 private:
  class BarPassthrough;
  AssignedPciDevice(VfioPciDevice* vfio, IrqRouteTable* routes,
                    const AssignmentOptions& options, const Identity& identity);
  absl::Status Init();
  void UpdateMsi();
  void DisableMsi();
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
};

}  // namespace irqlab

#endif  // IRQLAB_PCI_ASSIGNED_DEVICE_H_
