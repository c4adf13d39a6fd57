// The host kernel's side of device assignment, modelled on Linux vfio-pci
// (drivers/vfio/pci/vfio_pci_config.c, vfio_pci_intrs.c): the physical PCI
// function stays on the host; user space (the VMM) reaches it through
// "regions" (config space, BARs) and asks for interrupts with SET_IRQS.
//
//   physical device --MSI (remappable host message)--> host VT-d --> host
//   LAPIC --> host kernel IRQ handler --> trigger (the eventfd) --> VMM
//
// What vfio-pci does here, as Linux does:
//   * Config region: reads and writes reach the physical function, except
//     the MSI capability's message address and data, which are virtualized:
//     writes land in a per-device shadow, reads return the shadow (the
//     guest reads back what it wrote; the device holds the host's values).
//     With the NOVIRT device feature (the fix proposed in seed 000, a
//     "PCI_MSI_NOVIRT"-style flag) reads of address/data return the
//     physical values instead, so the VMM can learn the host message.
//     Message Control enable/MME writes are also shadowed: interrupts are
//     configured only through SET_IRQS.
//   * SET_IRQS(MSI, count): count=0 disables MSI on the device and frees
//     the host interrupts; otherwise `count` host interrupts are allocated
//     from the host kernel (vectors + one IRTE block, HostIrqAllocator) and
//     the physical MSI capability is programmed with the remappable-format
//     host message (handle = first IRTE, SHV=1, subhandle 0; the device adds
//     the vector number to the data, which selects IRTE first+i), MME and
//     enable. Trigger i runs when host interrupt i fires.
//   * SetSourceIrq (the "IMS" way, seed 000 fix (b), seed 002): one host
//     interrupt for an arbitrary device-specific interrupt source; returns
//     the host message the caller programs into that source.
//   * BAR regions: accesses are forwarded to the physical function's BAR
//     (which the host firmware mapped at a host physical address).
//
//   * SetMsixIrqs (seed 004): MSI-X, see the section below.
//
// Not modelled: INTx, error/req
// interrupts, resets, power states, the vfio container/group plumbing.
//
// Thread-compatible (one host thread).
#ifndef IRQLAB_PCI_VFIO_H_
#define IRQLAB_PCI_VFIO_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "emu/core/address_space.h"
#include "emu/core/msi.h"
#include "emu/core/trace.h"
#include "pci/pci_function.h"
#include "pci/vfio_container.h"

namespace irqlab {

// A block of host interrupts: IRTEs first_index .. first_index+count-1, each
// with its own host vector. `message` is the remappable-format message of
// sub-vector 0 (message i = message.data + i).
struct HostIrqBlock {
  int id = -1;
  uint32_t first_index = 0;
  unsigned count = 0;
  MsiMessage message{0, 0, 0};
};

// What the host kernel gives vfio-pci: interrupt allocation with interrupt
// remapping. Implemented by HostPlatform (emu/machine/host_platform.h).
class HostIrqAllocator {
 public:
  virtual ~HostIrqAllocator() = default;
  // Allocates `count` (1..32) host interrupts for requester `rid`, named
  // `name` in traces, with `handler(i)` run when interrupt i fires on a host
  // CPU. ResourceExhausted when host vectors or IRTEs run out.
  virtual absl::StatusOr<HostIrqBlock> AllocateIrqs(
      uint16_t rid, unsigned count, std::string_view name,
      std::function<void(unsigned)> handler) = 0;
  // Frees a block (IRTEs cleared and invalidated, vectors released).
  virtual void FreeIrqs(const HostIrqBlock& block) = 0;

  // Guest-owned MSI (seed 000 fix (c), VtdUnit::set_guest_owned): the
  // device sends the guest's own compatibility-format messages; the host
  // IOMMU translates them by (requester id, vector) into posted IRTEs that
  // post straight into vCPU `vcpu`'s posted-interrupt descriptor.
  // MapGuestVector() reserves the requester's IRTE block on first use.
  virtual absl::Status MapGuestVector(uint16_t rid, uint8_t vector, int vcpu) = 0;
  // Unmaps every vector of `rid` (IRTEs not present, block released).
  virtual void ReleaseGuestMsi(uint16_t rid) = 0;
};

class VfioPciDevice {
 public:
  // `device` is the physical function, attached to the host bus with its
  // BARs decoding in `host_memory`. None owned; all outlive this object.
  VfioPciDevice(PciFunction* device, AddressSpace* host_memory,
                HostIrqAllocator* host, Tracer* tracer, const Clock* clock);
  ~VfioPciDevice();
  VfioPciDevice(const VfioPciDevice&) = delete;
  VfioPciDevice& operator=(const VfioPciDevice&) = delete;

  // Config region (see the file comment for what is virtualized).
  uint32_t ConfigRead(uint32_t offset, unsigned size) const;
  void ConfigWrite(uint32_t offset, unsigned size, uint32_t value);

  // BAR region `bar` (offset within the BAR). All-ones / dropped when the
  // BAR does not exist or is not mapped on the host.
  uint64_t BarRead(int bar, uint64_t offset, unsigned size);
  void BarWrite(int bar, uint64_t offset, unsigned size, uint64_t value);

  // SET_IRQS for the MSI index. `triggers.size()` = count: 0 disables.
  // InvalidArgument for a count the capability cannot grant (not a power of
  // two, above the capable vectors, no MSI capability).
  absl::Status SetMsiIrqs(std::vector<std::function<void()>> triggers);
  // Guest-owned MSI: programs the physical capability with the guest's own
  // message (`address`, `data`, `count` vectors) and maps each vector i to
  // vCPU vcpus[i] through posted IRTEs. count 0 (empty `vcpus`) disables.
  absl::Status SetMsiGuestOwned(uint64_t address, uint16_t data,
                                const std::vector<int>& vcpus);
  // Host interrupts currently enabled for MSI.
  unsigned msi_irq_count() const { return msi_block_ ? msi_block_->count : 0; }

  // IMS-style per-source host interrupt (file comment). Re-allocates if the
  // source already has one. Returns the host message to program.
  absl::StatusOr<MsiMessage> SetSourceIrq(unsigned source,
                                          std::function<void()> trigger);
  unsigned source_irq_count() const { return source_blocks_.size(); }

  // --- MSI-X (seed 004) ----------------------------------------------------
  // SET_IRQS for the MSI-X index, as Linux vfio-pci with dynamic MSI-X
  // (vfio_msi_set_vector_signal, Linux >= 6.5: vectors are added and removed
  // while MSI-X stays enabled). `vectors` is the complete set of table
  // entries that get a host interrupt, each with the trigger (the eventfd)
  // to run when it fires:
  //   * an entry in `vectors` without a host interrupt gets one: one host
  //     vector and one IRTE (Linux allocates one irq per MSI-X descriptor),
  //     and the physical table entry is written through the host memory
  //     space at the table BAR's host address, as pci_msix_write_msg does:
  //     Mask set, address/data = the remappable host message, Mask cleared;
  //   * an entry that has a host interrupt but is not in `vectors` is masked
  //     in the physical table and its host interrupt freed; entries that
  //     stay keep their host interrupt (only the trigger is replaced);
  //   * the first non-empty set enables MSI-X on the physical function as
  //     msix_capability_init does (Enable + Function Mask, entries
  //     programmed, Function Mask cleared) and turns bus mastering on;
  //   * an empty set masks every physical entry, clears Enable and frees
  //     every host interrupt.
  // Sparse sets are allowed (pre-6.5 kernels allocate entries 0..max and the
  // VMM disables/re-enables MSI-X to grow; not modelled). Every call traces
  // "SET_IRQS MSIX ...: host vectors N" with N = host interrupts held after
  // it. The VMM never forwards guest MSI-X capability writes to the config
  // region: the physical MSI-X state changes only here.
  // InvalidArgument: no MSI-X capability, an index beyond the table;
  // FailedPrecondition: the table BAR is not mapped on the host; host
  // allocation errors as AllocateIrqs (entries set up so far stay).
  absl::Status SetMsixIrqs(std::map<unsigned, std::function<void()>> vectors);
  // Host interrupts held for MSI-X now, and allocated since creation.
  unsigned msix_irq_count() const { return static_cast<unsigned>(msix_irqs_.size()); }
  uint64_t msix_irqs_allocated() const { return msix_irqs_allocated_; }
  bool msix_host_vector(unsigned index) const { return msix_irqs_.count(index) != 0; }

  // The container (IOMMU domain) the device's writes go through. With a
  // non-bypassing platform (seed 001) the host message's address becomes
  // the doorbell IOVA, and SET_IRQS maps the doorbell (unless
  // `auto_map_doorbell` is false: then the MSI faults as a DMA fault); MSI
  // disable unmaps it. Not owned; may be null (x86 without a container).
  void set_container(VfioContainer* container, bool auto_map_doorbell) {
    container_ = container;
    auto_map_doorbell_ = auto_map_doorbell;
  }

  // The NOVIRT device feature: MSI address/data reads show physical values.
  void set_msi_novirt(bool on) { msi_novirt_ = on; }
  bool msi_novirt() const { return msi_novirt_; }

  PciFunction& device() { return *device_; }
  uint16_t requester_id() const { return device_->requester_id(); }

 private:
  // Offsets of the MSI capability's virtualized registers, if any.
  bool InMsiShadow(uint32_t offset) const;
  void FreeMsi();
  // Writes the physical MSI capability: message, MME for `count` vectors,
  // enable; and Bus Master Enable.
  void ProgramPhysicalMsi(uint64_t address, uint16_t data, unsigned count);
  void Trace(std::string_view detail, uint64_t address = 0, uint64_t data = 0);

  PciFunction* const device_;
  AddressSpace* const host_memory_;
  HostIrqAllocator* const host_;
  Tracer* const tracer_;
  const Clock* const clock_;

  // Shadow of the MSI capability (control, address lo/hi, data), by offset.
  std::vector<uint8_t> msi_shadow_;
  uint16_t msi_offset_ = 0;
  bool msi_novirt_ = false;
  std::optional<HostIrqBlock> msi_block_;
  bool guest_owned_ = false;
  VfioContainer* container_ = nullptr;
  bool auto_map_doorbell_ = true;
  std::vector<std::function<void()>> msi_triggers_;
  struct SourceIrq {
    HostIrqBlock block;
    std::function<void()> trigger;
  };
  std::map<unsigned, SourceIrq> source_blocks_;  // by source index

  // MSI-X (seed 004).
  // Writes one DWORD of physical table entry `index` (host memory space).
  void WriteMsixEntry(unsigned index, uint32_t field, uint32_t value);
  void FreeMsix();
  struct MsixIrq {
    HostIrqBlock block;
    std::function<void()> trigger;
  };
  std::map<unsigned, MsixIrq> msix_irqs_;  // by table entry
  uint64_t msix_irqs_allocated_ = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_PCI_VFIO_H_
