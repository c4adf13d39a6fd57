// HostPlatform: the physical machine under a VM, for device assignment
// (ARCHITECTURE.md, "The walk of one MSI"). Everything here is a C++ model;
// no host code runs in Unicorn.
//
//   physical PCI device --DmaSink--> host RootComplex
//        MSI window --> host VT-d (interrupt remapping on; compatibility
//                       format blocked unless `compat_format`)
//                         --> host ApicBus --> host LocalApic (physical CPU)
//                               --> host kernel: IRQ handler for the vector
//                                   (vfio's eventfd trigger, DMAR fault
//                                   handler), then EOI
//
// The host kernel model (what Linux does at boot and in its IRQ core):
//   * enables the VT-d unit like intel_irq_remapping.c: IRT in host memory
//     (IRTA, SIRTP), queued invalidation, a global IEC invalidation, IRE; CFI
//     only when `compat_format` (Linux sets it only without x2APIC);
//   * AllocateIrqs(): one host vector per interrupt (from 0x30, host CPUs
//     round robin) and a block of IRTEs (from `first_irte`: the indices
//     below are taken by other host devices — with the default 43 the first
//     device gets `fee00578/0000`, the host message of seed 000), each IRTE
//     remapped to its vector with source-id verification (SVT=01b, SID =
//     the device), written to host memory and invalidated with an
//     index-selective IEC descriptor;
//   * guest-owned MSI (MapGuestVector): a 256-entry IRTE block per
//     requester id, registered with the unit (VtdUnit::set_guest_owned);
//     the IRTE for a guest vector is posted format (VV = the guest vector,
//     PDA = the vCPU's posted-interrupt descriptor, NV = 0xF2, NDST = the
//     host CPU running the vCPU); the notification is handled by posted-
//     interrupt processing into the vCPU's APIC (set_vcpu_interrupt_sink);
//   * handles the DMAR fault event (host vector 0x22 on CPU 0) like
//     dmar_fault(): prints "DMAR: DRHD: handling fault status reg %x" and
//     one "DMAR: [INTR-REMAP] ..." / "DMAR: [DMA Read ...]" line per fault
//     record, clears the records — these lines are the host log (HOST_LOG
//     trace events, host_log(), and the console with a "[host] " prefix).
//
// A host interrupt is handled as a host-side event at the tick it is
// accepted (EventPriority::kHostAction): the host CPU acknowledges the
// highest pending vector, runs its handler, and EOIs, until none is left.
//
// Host memory: `ram_bytes` of host-private memory hold the IRT and the
// invalidation queue. Physical devices' DMA goes to the memory given to
// Create() (the VM's RAM: vfio maps guest-physical = IOVA = host-physical
// in this model).
//
// Trace lines of the host side carry "host: " at the start of their detail.
#ifndef IRQLAB_EMU_MACHINE_HOST_PLATFORM_H_
#define IRQLAB_EMU_MACHINE_HOST_PLATFORM_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "apic/apic_bus.h"
#include "apic/local_apic.h"
#include "emu/core/address_space.h"
#include "emu/core/clock.h"
#include "emu/core/event_queue.h"
#include "emu/core/guest_ram.h"
#include "emu/core/irq_ledger.h"
#include "emu/core/trace.h"
#include "iommu/vtd_unit.h"
#include "pci/root_complex.h"
#include "pci/vfio.h"

namespace irqlab {

struct HostConfig {
  int cpus = 4;                         // physical CPUs (LAPIC models)
  uint64_t ram_bytes = 4ull << 20;      // host-private memory (IRT, queue)
  bool compat_format = false;           // GCMD.CFI: let compat MSIs through
  bool posted_interrupts = true;        // CAP.PI of the host VT-d
  uint32_t first_irte = 43;             // first IRTE index for devices
  std::ostream* console = nullptr;      // host log echo ("[host] ..."), may be null
};

class HostPlatform : public HostIrqAllocator {
 public:
  static constexpr uint8_t kFirstDeviceVector = 0x30;
  static constexpr uint8_t kLastDeviceVector = 0xEF;
  static constexpr uint8_t kDmarFaultVector = 0x22;
  static constexpr uint8_t kPostedNotificationVector = 0xF2;  // Linux's POSTED_INTR_VECTOR
  static constexpr uint32_t kIrtEntries = 1024;  // IRTA.S = 9
  static constexpr int kMaxVcpus = 64;           // posted-interrupt descriptors
  // The physical MMIO window where the host firmware maps device BARs.
  static constexpr uint64_t kBarWindow = 0xE0000000;

  // `device_memory` is where physical devices' DMA lands (not owned).
  // `clock`, `events`, `tracer` are the machine's (not owned).
  static absl::StatusOr<std::unique_ptr<HostPlatform>> Create(
      const HostConfig& config, GuestRam* device_memory, const Clock* clock,
      EventQueue* events, Tracer* tracer);
  ~HostPlatform() override;

  // Attaches a physical PCI function at host `bus:dev.fn` (its requester
  // id), maps its memory BARs in the host window and enables memory decode.
  // Its memory writes go to `dma` (e.g. a vfio container translating
  // IOVAs), by default straight to the host root complex.
  absl::Status AddDevice(PciFunction* function, uint16_t rid, DmaSink* dma = nullptr);
  // Appends a line to the host kernel log (also traced and echoed).
  void Log(const std::string& line);

  // HostIrqAllocator.
  absl::StatusOr<HostIrqBlock> AllocateIrqs(
      uint16_t rid, unsigned count, std::string_view name,
      std::function<void(unsigned)> handler) override;
  void FreeIrqs(const HostIrqBlock& block) override;
  absl::Status MapGuestVector(uint16_t rid, uint8_t vector, int vcpu) override;
  void ReleaseGuestMsi(uint16_t rid) override;

  // Where posted interrupts go when a host CPU processes its posted-
  // interrupt notification: vector `vector` becomes pending in vCPU
  // `vcpu`'s (virtual) local APIC. Set by the machine.
  void set_vcpu_interrupt_sink(std::function<void(int vcpu, uint8_t vector)> sink) {
    vcpu_sink_ = std::move(sink);
  }
  // Host physical address of vCPU `vcpu`'s posted-interrupt descriptor.
  static uint64_t PidAddress(int vcpu);
  // The host CPU that runs vCPU `vcpu` (its notification destination).
  int HostCpuOf(int vcpu) const { return vcpu % config_.cpus; }

  const HostConfig& config() const { return config_; }
  VtdUnit& iommu() { return *vtd_; }
  LocalApic& cpu(int i) { return *lapics_[i]; }
  ApicBus& apic_bus() { return *bus_; }
  AddressSpace& memory() { return memory_; }
  DmaSink* upstream() { return root_complex_.get(); }
  // Interrupt accounting: physical devices' MSIs are recorded in `ledger`
  // (not owned) as IrqSource::kHostDevice.
  void AccountDeviceInterrupts(IrqLedger* ledger);
  // Host kernel log lines so far (DMAR fault lines).
  const std::vector<std::string>& log() const { return log_; }
  // Host interrupts handled, and those that arrived on a vector with no
  // handler (a guest can never make an unallocated host vector fire).
  uint64_t irqs_handled() const { return irqs_handled_; }
  uint64_t spurious_irqs() const { return spurious_irqs_; }

 private:
  HostPlatform(const HostConfig& config, GuestRam* device_memory,
               const Clock* clock, EventQueue* events, Tracer* tracer);
  absl::Status Init();
  void EnableInterruptRemapping();
  // Writes a 128-bit invalidation descriptor and runs the queue.
  void Invalidate(uint64_t qw0, uint64_t qw1);
  void WriteIrte(uint32_t index, uint64_t lo, uint64_t hi);
  void RegWrite32(uint64_t reg, uint32_t value);
  void RegWrite64(uint64_t reg, uint64_t value);
  uint32_t RegRead32(uint64_t reg);
  // Host CPU `cpu` has something deliverable: handle it as a host event.
  void KickCpu(int cpu);
  void RunCpu(int cpu);
  void HandleDmarFault();
  // Posted-interrupt processing on host CPU `cpu` (SDM 29.6 for VMX; here
  // for the vCPUs this CPU runs): clear ON, take the PIR, make each vector
  // pending in the vCPU's APIC.
  void ProcessPostedInterrupts(int cpu);
  // Finds a free, `count`-aligned run of IRTEs; -1 if none.
  int FindIrtes(unsigned count, unsigned align) const;
  void Trace(Stage stage, int cpu, const std::string& detail, int vector = -1,
             uint64_t address = 0, uint64_t data = 0, uint32_t rid = 0);

  // Static configuration.
  const HostConfig config_;
  GuestRam* const device_memory_;
  const Clock* const clock_;
  EventQueue* const events_;
  Tracer* const tracer_;

  // Runtime glue: the trace goes through a sink that prefixes "host: ".
  class PrefixSink;
  std::unique_ptr<PrefixSink> prefix_sink_;
  Tracer host_tracer_;
  std::unique_ptr<GuestRam> ram_;
  AddressSpace memory_;
  std::unique_ptr<ApicBus> bus_;
  std::vector<std::unique_ptr<LocalApic>> lapics_;
  std::unique_ptr<VtdUnit> vtd_;
  std::unique_ptr<RootComplex> root_complex_;
  std::unique_ptr<AccountingMsiSink> device_entry_;  // root complex -> VT-d

  // Volatile state.
  struct VectorOwner {
    // Shared so that taking a copy per interrupt (the handler may free or
    // re-allocate vectors) costs a reference count, not an allocation.
    std::shared_ptr<const std::function<void(unsigned)>> handler;
    unsigned sub = 0;
    std::string name;
  };
  // (cpu, vector) -> owner.
  std::map<std::pair<int, uint8_t>, VectorOwner> vectors_;
  std::vector<bool> irte_used_;
  struct Block {
    HostIrqBlock block;
    std::vector<std::pair<int, uint8_t>> vectors;
  };
  std::map<int, Block> blocks_;
  int next_block_id_ = 0;
  int next_cpu_ = 0;
  uint64_t iq_tail_ = 0;
  std::vector<bool> cpu_kicked_;
  std::vector<std::string> cpu_event_names_;  // "host cpuN: interrupt"
  uint64_t next_bar_ = kBarWindow;
  std::vector<std::string> log_;
  std::function<void(int, uint8_t)> vcpu_sink_;
  std::map<uint16_t, uint32_t> guest_owned_;  // rid -> IRTE block base (256)
  std::vector<bool> pid_ready_;
  uint64_t irqs_handled_ = 0;
  uint64_t spurious_irqs_ = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_MACHINE_HOST_PLATFORM_H_
