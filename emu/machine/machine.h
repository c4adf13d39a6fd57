// The PC machine: guest RAM, N vCPUs, the physical address and port spaces,
// the PC platform devices, the event queue and the virtual clock, and the
// run loop that steps the vCPUs deterministically on one host thread.
//
// Run loop (deterministic by construction): virtual time advances in slices
// of `slice_ticks`, shortened so that a slice never crosses the next queued
// event. In each slice every runnable vCPU runs, in index order, for the
// slice length in retired instructions (block-granular). An event that a
// running vCPU schedules inside the slice (e.g. by arming its APIC timer)
// shortens the slice for it and for the vCPUs after it in the round; vCPUs
// earlier in the round have already run to the old end (a skew of at most
// one slice). Events due at the slice end run after it. When no vCPU can
// run, time jumps to the next event; with no event left the run ends as a
// hang.
//
// Interrupt controllers: one LocalApic per vCPU (its interrupt source), all
// attached to one ApicBus (the MSI sink and IPI router); the IOAPIC at
// 0xFEC00000 with pc-testdev line n wired to pin n and its messages going to
// the bus; level-triggered EOIs broadcast from the LAPICs to the IOAPIC.
// PCI: a host bridge (config mechanism #1 at 0xCF8, ECAM at 0xB0000000), a
// root complex that sends device MSIs to the bus and DMA to RAM, INTx wired
// to IOAPIC pins, and the optional devices of MachineConfig::devices.
#ifndef IRQLAB_EMU_MACHINE_MACHINE_H_
#define IRQLAB_EMU_MACHINE_MACHINE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "apic/apic_bus.h"
#include "apic/local_apic.h"
#include "devices/edu.h"
#include "devices/irqlab_testdev.h"
#include "devices/pc_devices.h"
#include "devices/sriov_nic.h"
#include "devices/wcn6855.h"
#include "iommu/dma_remap.h"
#include "iommu/vtd_unit.h"
#include "ioapic/ioapic.h"
#include "emu/machine/host_platform.h"
#include "pci/assigned_device.h"
#include "pci/pci_host.h"
#include "pci/vfio.h"
#include "pci/vfio_container.h"
#include "pci/root_complex.h"
#include "emu/core/address_space.h"
#include "emu/core/clock.h"
#include "emu/core/event_queue.h"
#include "emu/core/guest_ram.h"
#include "emu/core/irq_ledger.h"
#include "emu/machine/multiboot.h"
#include "emu/core/trace.h"
#include "emu/cpu/vcpu.h"

namespace irqlab {

struct MachineConfig {
  int cpus = 1;
  uint64_t ram_bytes = 64ull << 20;
  bool x2apic = true;
  bool tsc_deadline = true;
  // CPUID identity (emu/cpu/cpu_model.h); null: the default model.
  const CpuModel* cpu_model = nullptr;
  // KVM's ignore_msrs (emu/cpu/vcpu.h: VcpuConfig::ignore_msrs).
  bool ignore_msrs = false;
  uint64_t slice_ticks = 10000;
  // Echo guest serial output to this stream as it is written (may be null).
  std::ostream* console = nullptr;
  // IOAPIC route-cache ordering (seed 003); the fixed order by default.
  RouteUpdateOrder ioapic_route_update = RouteUpdateOrder::kUpdateBeforeService;
  // Where QEMU departs from the specs (emu/core/compat.h).
  CompatProfile compat = CompatProfile::kSpec;
  // IOAPIC version register: 0x20 (with the EOI register) or 0x11.
  uint8_t ioapic_version = 0x20;
  // APIC bus: honour the extended destination ID MSI convention.
  bool extended_destination_id = false;
  // Optional devices: "edu" (00:03.0), "irqlab-testdev" (00:04.0),
  // "wcn6855" (00:05.0, devices/wcn6855.h), "irqlab-nic" (00:06.0,
  // devices/sriov_nic.h) and "intel-iommu" (VT-d at
  // 0xFED90000 in front of every PCI device and the IOAPIC; options
  // intremap, eim, posted = on|off; cfi = on|off, the guest VT-d library
  // sets GCMD.CFI after IRE (passed as irqlab.vtd_cfi=1|0 on the kernel
  // command line); devtlb = off|on|noanswer|badcompletion, ECAP.DT and how
  // endpoints answer device-TLB invalidations, VtdConfig::DeviceTlb).
  struct Device {
    std::string name;
    std::map<std::string, std::string> options;
  };
  std::vector<Device> devices;

  // Device assignment (emu/machine/host_platform.h, pci/vfio.h,
  // pci/assigned_device.h): the physical host under this VM and the
  // devices it assigns. Absent: the machine is the whole world.
  struct Assigned {
    std::string device;        // physical device model: "wcn6855", "edu"
    uint8_t host_bus = 2;      // host requester id bus:00.0
    int guest_slot = 5;        // guest 00:slot.0
    AssignmentOptions::Fix fix = AssignmentOptions::Fix::kNone;
    bool msi_novirt = false;   // vfio NOVIRT feature
    // Seed 004: the VMM's MSI-X enable policy.
    AssignmentOptions::MsixPolicy msix_policy = AssignmentOptions::MsixPolicy::kLazy;
    std::map<std::string, std::string> options;
  };
  struct Host {
    HostConfig config;
    std::vector<Assigned> assigned;
    // Seed 001: non-zero = MSI writes are translated (ARM/SMMU-like) and
    // this is the doorbell IOVA range; see VfioContainer.
    uint64_t msi_doorbell_iova = 0;
    bool doorbell_auto_map = true;
  };
  std::optional<Host> host;

  static constexpr int kMaxCpus = 64;
  // RAM ends below the PCI ECAM window at 0xB0000000.
  static constexpr uint64_t kMaxRam = 0xB0000000;
};

// The optional devices MachineConfig::devices accepts.
std::vector<std::string> KnownDevices();
// Parses "NAME[,key=value...]" (the --device syntax).
absl::StatusOr<MachineConfig::Device> ParseDeviceSpec(std::string_view text);

struct [[nodiscard]] RunResult {
  enum class Outcome { kExit, kHang, kTimeLimit, kShutdown };
  Outcome outcome = Outcome::kHang;
  int exit_status = 0;  // valid for kExit
  uint64_t time = 0;    // virtual time at the end
  std::string detail;   // human-readable reason
};
// "exit", "hang", "time_limit", "shutdown".
std::string OutcomeName(RunResult::Outcome outcome);

class Machine : public VcpuHost, public Clock {
 public:
  // Builds RAM, vCPUs and the PC devices. Errors name the bad setting.
  static absl::StatusOr<std::unique_ptr<Machine>> Create(
      const MachineConfig& config, Tracer* tracer);
  ~Machine() override;

  // Loads a multiboot kernel (and modules) and points the BSP at its entry.
  absl::Status LoadKernel(absl::Span<const uint8_t> image,
                          std::string_view cmdline,
                          const std::vector<MultibootModule>& modules);

  // Runs until the guest exits, hangs, shuts down, virtual time reaches
  // `max_time` (kNoTimeLimit: never), or — if `wall_seconds` > 0 — that much
  // wall-clock time has passed (kTimeLimit; checked between slices, so the
  // run ends within one slice after it). A wall-clock limit is the only
  // thing that can make a run depend on the host's speed.
  static constexpr uint64_t kNoTimeLimit = ~uint64_t{0};
  RunResult Run(uint64_t max_time, double wall_seconds = 0);

  // Host-side actions (scenario runner, tests, benchmarks). An injected
  // vector is accepted by the CPU's local APIC as a fixed, edge-triggered
  // interrupt (IRR), as if it arrived on the APIC bus.
  void InjectInterrupt(int cpu, int vector);
  void InjectNmi(int cpu);
  void SetIrqLine(int line, bool high);
  // Fault injection (emu/run/fault_injection.h, delay_eoi): the next `count`
  // EOI broadcasts from the local APICs reach the IOAPIC `ticks` later (an
  // event at kInterruptDelivery) instead of at once. Each delayed EOI is
  // traced as FAULT_INJECT "`label`: ..."; until it arrives the entry's
  // Remote IRR stays set. Calls add to the remaining count (the latest
  // `ticks` applies).
  void DelayEoiBroadcasts(uint64_t ticks, uint32_t count, std::string label);

  const MachineConfig& config() const { return config_; }
  EventQueue& events() { return events_; }
  AddressSpace& mmio() { return mmio_; }
  AddressSpace& ports() { return ports_; }
  GuestRam& ram() { return *ram_; }
  Vcpu& vcpu(int i) { return *vcpus_[i]; }
  int num_cpus() const { return static_cast<int>(vcpus_.size()); }
  const std::string& serial_output() const { return serial_->output(); }
  LocalApic& lapic(int i) { return *lapics_[i]; }
  ApicBus& apic_bus() { return *apic_bus_; }
  IoApic& ioapic() { return *ioapic_; }
  PciHost& pci() { return *pci_host_; }
  // Optional devices (nullptr unless configured).
  Edu* edu() { return edu_.get(); }
  IrqlabTestDev* testdev() { return irqlab_testdev_.get(); }
  SriovNic* nic() { return nic_.get(); }  // "irqlab-nic" (00:06.0)
  Wcn6855* wcn6855() { return wcn6855_.get(); }
  VtdUnit* iommu() { return vtd_.get(); }
  // Where device MSIs enter the guest platform: the VT-d unit if present,
  // else the APIC bus.
  MsiSink* msi_entry() {
    return vtd_ != nullptr ? static_cast<MsiSink*>(vtd_.get()) : apic_bus_.get();
  }
  // msi_entry() for messages the scenario injects (emu/run/fault_injection.h):
  // accounted as IrqSource::kFaultInjection.
  MsiSink* injected_msi_entry() { return &injected_entry_; }
  // Where the root complex's MSIs (every guest PCI device's) enter.
  AccountingMsiSink& device_msi_entry() { return device_entry_; }
  // The run's interrupt accounting (emu/core/irq_ledger.h). Run() adds the
  // end-of-run checks before it returns.
  const IrqLedger& ledger() const { return ledger_; }
  // Device assignment (nullptr / empty without MachineConfig::host).
  HostPlatform* host() { return host_.get(); }
  IrqRouteTable* irq_routes() { return irq_routes_.get(); }
  VfioContainer* vfio_container() { return container_.get(); }
  AssignedPciDevice* assigned(int i) { return assigned_[i].guest.get(); }
  PciFunction* physical_device(int i) { return assigned_[i].physical.get(); }
  VfioPciDevice* vfio(int i) { return assigned_[i].vfio.get(); }
  int num_assigned() const { return static_cast<int>(assigned_.size()); }
  Tracer* tracer() { return tracer_; }

  // Clock: virtual time, including the running vCPU's progress in its slice.
  uint64_t Now() const override;

  // VcpuHost.
  uint64_t MmioRead(int cpu, uint64_t addr, unsigned size) override;
  void MmioWrite(int cpu, uint64_t addr, unsigned size, uint64_t value) override;
  uint64_t PortRead(int cpu, uint16_t port, unsigned size) override;
  void PortWrite(int cpu, uint16_t port, unsigned size, uint64_t value) override;
  std::optional<uint64_t> ReadMsr(int cpu, uint32_t msr) override;
  bool WriteMsr(int cpu, uint32_t msr, uint64_t value) override;
  uint8_t ReadTpr(int cpu) override { return lapics_[cpu]->tpr(); }
  void WriteTpr(int cpu, uint8_t tpr) override { lapics_[cpu]->SetTpr(tpr); }
  uint64_t SliceStartTime() const override { return slice_start_time_; }

 private:
  explicit Machine(const MachineConfig& config, Tracer* tracer);
  absl::Status Init();
  absl::Status InitIommu(const MachineConfig::Device& spec);
  absl::Status InitPci();
  absl::Status InitHost();
  void RequestExit(int status);
  void StopAllVcpus();
  void Trace(Stage stage, int cpu, std::string_view detail, int vector = -1,
             uint64_t address = 0, uint64_t data = 0);
  std::string DescribeIdleCpus() const;
  // End-of-run interrupt accounting checks (violations go to ledger_):
  // every local APIC's IRR adds up (LocalApic::IrrCounts), and on a hang no
  // halted vCPU with interrupts enabled has a deliverable vector pending
  // (an accepted interrupt it was never woken for).
  void CheckAccounting(const RunResult& result);
  // After a device or MSR access by the running vCPU: if it scheduled an
  // event inside the running slice (a LAPIC timer, a device completion),
  // end the slice there so the event fires on time (± one basic block).
  void FitSliceToEvents();
  // The local APIC of `cpu` has something new to deliver.
  void KickCpu(int cpu);
  // A level-triggered EOI broadcast by the local APIC of `cpu`: to the
  // IOAPIC now, or later (DelayEoiBroadcasts).
  void EoiBroadcast(int cpu, uint8_t vector);

  // Static configuration.
  const MachineConfig config_;
  Tracer* tracer_;
  Tracer null_tracer_;  // used when no tracer is given
  // Interrupt accounting and the chain entries that record into it: device
  // MSIs (root complex), the IOAPIC's messages, injected messages.
  IrqLedger ledger_{this};
  AccountingMsiSink device_entry_{nullptr, &ledger_, IrqSource::kDevice};
  AccountingMsiSink ioapic_entry_{nullptr, &ledger_, IrqSource::kIoApic};
  AccountingMsiSink injected_entry_{nullptr, &ledger_, IrqSource::kFaultInjection};

  // Runtime glue.
  EventQueue events_;
  AddressSpace mmio_;
  AddressSpace ports_;
  std::unique_ptr<GuestRam> ram_;
  std::unique_ptr<ApicBus> apic_bus_;
  std::vector<std::unique_ptr<LocalApic>> lapics_;
  std::unique_ptr<IoApic> ioapic_;
  std::vector<std::unique_ptr<Vcpu>> vcpus_;
  std::unique_ptr<RootComplex> root_complex_;
  // VT-d (optional): the unit sits between the IOAPIC / root complex and
  // the APIC bus for interrupts, and in front of the root complex for DMA.
  std::unique_ptr<VtdUnit> vtd_;
  std::unique_ptr<vtd::DmaRemapper> dma_remapper_;
  std::unique_ptr<vtd::RemappingDmaSink> remapping_dma_;
  std::unique_ptr<PciHost> pci_host_;
  // PCI functions unmap their BARs when destroyed: declared after the
  // address spaces and the host so they go first.
  std::unique_ptr<Edu> edu_;
  std::unique_ptr<IrqlabTestDev> irqlab_testdev_;
  std::unique_ptr<SriovNic> nic_;
  std::unique_ptr<Wcn6855> wcn6855_;
  // Device assignment: the host, the routing table, and per assigned device
  // the physical function (on the host), vfio, and the guest function
  // (destroyed in reverse order: guest function, vfio, physical, then the
  // routes and the host).
  std::unique_ptr<HostPlatform> host_;
  std::unique_ptr<IrqRouteTable> irq_routes_;
  std::unique_ptr<VfioContainer> container_;
  struct AssignedSlot {
    std::unique_ptr<PciFunction> physical;
    std::unique_ptr<VfioPciDevice> vfio;
    std::unique_ptr<AssignedPciDevice> guest;
  };
  std::vector<AssignedSlot> assigned_;
  std::unique_ptr<Serial16550> serial_;
  std::unique_ptr<DebugExit> debug_exit_;
  std::unique_ptr<PcTestDevIrq> testdev_;
  std::unique_ptr<FwCfg> fw_cfg_;
  std::unique_ptr<PicStub> pic_master_, pic_slave_;

  // Volatile state.
  uint64_t now_ = 0;                 // time at the start of the current slice
  uint64_t slice_start_time_ = 0;
  uint64_t slice_end_ = 0;           // end of the current round of slices
  uint64_t fitted_generation_ = 0;   // events_.schedule_generation() when
                                     // slice_end_ last accounted for events
  int running_cpu_ = -1;             // vCPU inside Run(), or -1
  uint64_t running_start_instr_ = 0;
  std::optional<int> exit_status_;
  bool kernel_loaded_ = false;
  // DelayEoiBroadcasts(): EOIs still to delay, by how much, trace label.
  uint32_t eoi_delays_left_ = 0;
  uint64_t eoi_delay_ticks_ = 0;
  std::string eoi_delay_label_;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_MACHINE_MACHINE_H_
