#include "emu/machine/machine.h"

#include <algorithm>
#include <chrono>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "emu/core/status_macros.h"
#include "firmware-stubs/acpi_tables.h"

namespace irqlab {

std::vector<std::string> KnownDevices() {
  return {"edu", "intel-iommu", "irqlab-nic", "irqlab-testdev", "wcn6855"};
}

absl::StatusOr<MachineConfig::Device> ParseDeviceSpec(std::string_view text) {
  const std::vector<std::string> parts = absl::StrSplit(std::string(text), ',');
  MachineConfig::Device d;
  d.name = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    const size_t eq = parts[i].find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "\"%s\": expected key=value after the device name, got \"%s\"", std::string(text),
          parts[i]));
    }
    d.options[parts[i].substr(0, eq)] = parts[i].substr(eq + 1);
  }
  return d;
}

namespace {
// Option `key` of a device as on/off; `fallback` when absent.
absl::StatusOr<bool> OnOffOption(const MachineConfig::Device& d, int index, const std::string& key,
                                 bool fallback) {
  auto it = d.options.find(key);
  if (it == d.options.end()) return fallback;
  if (it->second == "on") return true;
  if (it->second == "off") return false;
  return absl::InvalidArgumentError(
      absl::StrFormat("machine.devices[%d]: %s option %s must be on or off, got \"%s\"", index,
                      d.name, key, it->second));
}
}  // namespace

std::string OutcomeName(RunResult::Outcome outcome) {
  switch (outcome) {
    case RunResult::Outcome::kExit: return "exit";
    case RunResult::Outcome::kHang: return "hang";
    case RunResult::Outcome::kTimeLimit: return "time_limit";
    case RunResult::Outcome::kShutdown: return "shutdown";
  }
  return "unknown";
}

Machine::Machine(const MachineConfig& config, Tracer* tracer)
    : config_(config),
      tracer_(tracer != nullptr ? tracer : &null_tracer_),
      mmio_("memory", AddressSpace::kPhysicalSpaceLimit, trace::MMIO_UNMAPPED, tracer_, this),
      ports_("ports", AddressSpace::kPortSpaceLimit, trace::PORT_UNMAPPED, tracer_, this) {}

Machine::~Machine() = default;

absl::StatusOr<std::unique_ptr<Machine>> Machine::Create(
    const MachineConfig& config, Tracer* tracer) {
  if (config.cpus < 1 || config.cpus > MachineConfig::kMaxCpus) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "machine.cpus: must be between 1 and %d, got %d",
        MachineConfig::kMaxCpus, config.cpus));
  }
  if (config.ram_bytes < (2ull << 20) || config.ram_bytes % 4096 != 0 ||
      config.ram_bytes > MachineConfig::kMaxRam) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "machine.ram: must be a multiple of 4 KiB between 2 MiB and %d MiB "
        "(RAM ends below the PCI ECAM window at 0xB0000000), got %d bytes",
        MachineConfig::kMaxRam >> 20, config.ram_bytes));
  }
  const std::vector<std::string> known = KnownDevices();
  for (size_t i = 0; i < config.devices.size(); ++i) {
    const MachineConfig::Device& d = config.devices[i];
    if (std::find(known.begin(), known.end(), d.name) == known.end()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "machine.devices[%d]: unknown device \"%s\" (known: %s)", i, d.name,
          absl::StrJoin(known, ", ")));
    }
    for (size_t j = 0; j < i; ++j) {
      if (config.devices[j].name == d.name) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "machine.devices[%d]: device \"%s\" given twice", i, d.name));
      }
    }
    for (const auto& [key, value] : d.options) {
      const bool known_option = d.name == "intel-iommu" &&
                                (key == "intremap" || key == "eim" || key == "posted" ||
                                 key == "cfi" || key == "devtlb");
      if (!known_option) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "machine.devices[%d]: device \"%s\" has no option \"%s\"%s", i, d.name, key,
            d.name == "intel-iommu" ? " (options: intremap, eim, posted, cfi, devtlb)" : ""));
      }
    }
  }
  if (config.slice_ticks == 0) {
    return absl::InvalidArgumentError("machine.slice_ticks: must be > 0");
  }
  std::unique_ptr<Machine> m(new Machine(config, tracer));
  RETURN_IF_ERROR(m->Init());
  return m;
}

absl::Status Machine::Init() {
  ASSIGN_OR_RETURN(ram_, GuestRam::Create(config_.ram_bytes));
  const DeviceTraceContext tc{tracer_, this};

  // PC platform devices (QEMU PC machine contract, see devices/pc_devices.h).
  serial_ = std::make_unique<Serial16550>(tc, [this](char c) {
    if (config_.console != nullptr) config_.console->put(c);
  });
  debug_exit_ = std::make_unique<DebugExit>(tc, [this](int s) { RequestExit(s); });
  testdev_ = std::make_unique<PcTestDevIrq>(tc);
  fw_cfg_ = std::make_unique<FwCfg>(static_cast<uint16_t>(config_.cpus));
  pic_master_ = std::make_unique<PicStub>();
  pic_slave_ = std::make_unique<PicStub>();
  RETURN_IF_ERROR(ports_.Map(Serial16550::kBase, Serial16550::kSize, serial_.get(), "serial"));
  RETURN_IF_ERROR(ports_.Map(DebugExit::kBase, DebugExit::kSize, debug_exit_.get(), "isa-debug-exit"));
  RETURN_IF_ERROR(ports_.Map(PcTestDevIrq::kBase, PcTestDevIrq::kSize, testdev_.get(), "pc-testdev-irq"));
  RETURN_IF_ERROR(ports_.Map(FwCfg::kBase, FwCfg::kSize, fw_cfg_.get(), "fw_cfg"));
  RETURN_IF_ERROR(ports_.Map(0x20, PicStub::kSize, pic_master_.get(), "pic-master"));
  RETURN_IF_ERROR(ports_.Map(0xA0, PicStub::kSize, pic_slave_.get(), "pic-slave"));

  // Interrupt controllers (SDM vol. 3 ch. 11; 82093AA).
  ApicBusConfig bus_config;
  bus_config.extended_destination_id = config_.extended_destination_id;
  apic_bus_ = std::make_unique<ApicBus>(this, tracer_, bus_config);
  IoApicConfig ioc;
  ioc.route_update_order = config_.ioapic_route_update;
  ioc.version = config_.ioapic_version;
  for (AccountingMsiSink* entry : {&device_entry_, &ioapic_entry_, &injected_entry_}) {
    entry->set_next(apic_bus_.get());
  }
  ASSIGN_OR_RETURN(ioapic_, IoApic::Create(ioc, &ioapic_entry_, tracer_, this));
  RETURN_IF_ERROR(mmio_.Map(ioc.base, ioapic::kMmioSize, ioapic_.get(), "ioapic"));
  for (int n = 0; n < PcTestDevIrq::kNumLines; ++n) testdev_->line(n).Connect(ioapic_.get(), n);
  for (int i = 0; i < config_.cpus; ++i) {
    LocalApicConfig lc;
    lc.cpu = i;
    lc.apic_id = static_cast<uint32_t>(i);
    lc.bsp = i == 0;
    lc.x2apic = config_.x2apic;
    lc.tsc_deadline = config_.tsc_deadline;
    // The callbacks reach vCPU i, which is created after its APIC.
    LocalApicCallbacks cb;
    cb.kick = [this, i] { KickCpu(i); };
    cb.eoi_broadcast = [this, i](uint8_t vector) { EoiBroadcast(i, vector); };
    cb.init = [this, i] {
      // INIT to the BSP would reset it to the firmware: not modelled.
      if (i != 0) vcpus_[i]->Init();
    };
    cb.startup = [this, i](uint8_t vector) { vcpus_[i]->Sipi(vector); };
    lapics_.push_back(std::make_unique<LocalApic>(lc, this, &events_, tracer_, std::move(cb)));
    apic_bus_->Attach(lapics_.back().get());
  }

  for (int i = 0; i < config_.cpus; ++i) {
    VcpuConfig vc;
    vc.index = i;
    vc.apic_id = static_cast<uint32_t>(i);
    vc.num_cpus = config_.cpus;
    vc.x2apic = config_.x2apic;
    vc.tsc_deadline = config_.tsc_deadline;
    vc.cpu_model = config_.cpu_model;
    vc.ignore_msrs = config_.ignore_msrs;
    ASSIGN_OR_RETURN(std::unique_ptr<Vcpu> vcpu,
                     Vcpu::Create(vc, ram_.get(), this, lapics_[i].get(), tracer_));
    vcpus_.push_back(std::move(vcpu));
  }
  return InitPci();
}

absl::Status Machine::InitIommu(const MachineConfig::Device& spec) {
  const int index = static_cast<int>(&spec - config_.devices.data());
  VtdConfig vc;
  vc.ioapic_source_id = ioapic_->config().requester_id;
  vc.compat = config_.compat;
  ASSIGN_OR_RETURN(vc.interrupt_remapping, OnOffOption(spec, index, "intremap", true));
  ASSIGN_OR_RETURN(vc.extended_interrupt_mode, OnOffOption(spec, index, "eim", true));
  ASSIGN_OR_RETURN(vc.posted_interrupts, OnOffOption(spec, index, "posted", false));
  // cfi: guest software policy (GCMD.CFI is a command, not a capability),
  // passed on the kernel command line by LoadKernel(); validated here.
  RETURN_IF_ERROR(OnOffOption(spec, index, "cfi", false).status());
  // devtlb: ECAP.DT and how endpoints answer device-TLB invalidations.
  if (auto it = spec.options.find("devtlb"); it != spec.options.end()) {
    using DeviceTlb = VtdConfig::DeviceTlb;
    static const std::map<std::string, DeviceTlb> kModes = {
        {"off", DeviceTlb::kNone},
        {"on", DeviceTlb::kAnswer},
        {"noanswer", DeviceTlb::kNoAnswer},
        {"badcompletion", DeviceTlb::kBadCompletion}};
    auto mode = kModes.find(it->second);
    if (mode == kModes.end()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "machine.devices[%d]: intel-iommu option devtlb must be off, on, noanswer or "
          "badcompletion, got \"%s\"",
          index, it->second));
    }
    vc.device_tlb = mode->second;
  }
  ASSIGN_OR_RETURN(vtd_, VtdUnit::Create(vc, apic_bus_.get(), ram_.get(), this, tracer_));
  vtd_->set_event_queue(&events_);  // resumes an injected invalidation delay
  RETURN_IF_ERROR(mmio_.Map(vc.base, vtd::kRegisterFileSize, vtd_.get(), "intel-iommu"));
  // Interrupts: the IOAPIC's and the root complex's MSIs go through the unit.
  for (AccountingMsiSink* entry : {&device_entry_, &ioapic_entry_, &injected_entry_}) {
    entry->set_next(vtd_.get());
  }
  // DMA: translated by the remapper, faults recorded by the unit (7.2).
  // The remapper supports what the unit advertises in CAP/ECAP (ND, SAGAW, ...).
  dma_remapper_ = std::make_unique<vtd::DmaRemapper>(
      ram_.get(), vtd::DmaRemapOptionsFromCap(vtd_->cap().raw, vtd_->ecap().raw));
  remapping_dma_ = std::make_unique<vtd::RemappingDmaSink>(
      dma_remapper_.get(), root_complex_.get(),
      [this](const vtd::DmaFault& f) {
        vtd_->RecordFault(vtd::FaultRecord::Dma(f.rid, f.address, /*read=*/!f.write,
                                                static_cast<uint8_t>(f.reason)));
      },
      tracer_, this);
  vtd_->SetDmaHooks(vtd::MakeDmaHooks(dma_remapper_.get(), remapping_dma_.get()));
  return absl::OkStatus();
}

absl::Status Machine::InitPci() {
  root_complex_ = std::make_unique<RootComplex>(ram_.get(), &device_entry_, tracer_, this);
  DmaSink* dma = root_complex_.get();
  for (const MachineConfig::Device& d : config_.devices) {
    if (d.name == "intel-iommu") {
      RETURN_IF_ERROR(InitIommu(d));
      dma = remapping_dma_.get();
    }
  }
  pci_host_ = std::make_unique<PciHost>(PciHost::Platform{
      .memory = &mmio_,
      .io = &ports_,
      .dma = dma,
      .intx_target = ioapic_.get(),
      .tracer = tracer_,
      .clock = this,
  }, PciHost::Options{.compat = config_.compat});
  RETURN_IF_ERROR(pci_host_->MapConfigAccess());
  for (const MachineConfig::Device& d : config_.devices) {
    if (d.name == "edu") {
      edu_ = std::make_unique<Edu>(&events_);
      RETURN_IF_ERROR(pci_host_->AddFunction(3, 0, edu_.get()));
    } else if (d.name == "irqlab-testdev") {
      irqlab_testdev_ = std::make_unique<IrqlabTestDev>();
      RETURN_IF_ERROR(pci_host_->AddFunction(4, 0, irqlab_testdev_.get()));
    } else if (d.name == "irqlab-nic") {
      nic_ = std::make_unique<SriovNic>(&events_);  // seed 004, bare metal
      RETURN_IF_ERROR(pci_host_->AddFunction(6, 0, nic_.get()));
    } else if (d.name == "wcn6855") {
      ASSIGN_OR_RETURN(wcn6855_, Wcn6855::Create(&events_, Wcn6855::Options{}));
      RETURN_IF_ERROR(pci_host_->AddFunction(5, 0, wcn6855_.get()));
    }
  }
  if (config_.host) RETURN_IF_ERROR(InitHost());
  // The firmware step: BARs and INTERRUPT_LINE, as a BIOS would.
  return pci_host_->AssignResources();
}

namespace {
constexpr uint64_t kWcnSourceOffsets[] = WCN_SOURCE_OFFSETS;
}  // namespace

absl::Status Machine::InitHost() {
  HostConfig hc = config_.host->config;
  if (hc.console == nullptr) hc.console = config_.console;
  ASSIGN_OR_RETURN(host_, HostPlatform::Create(hc, ram_.get(), this, &events_, tracer_));
  host_->AccountDeviceInterrupts(&ledger_);
  irq_routes_ = std::make_unique<IrqRouteTable>(apic_bus_.get(), vtd_.get(), tracer_, this);
  irq_routes_->set_ledger(&ledger_);
  // Posted interrupts (guest-owned MSI) land in the vCPU's local APIC.
  host_->set_vcpu_interrupt_sink([this](int vcpu, uint8_t vector) {
    if (vcpu < 0 || vcpu >= num_cpus()) {
      ledger_.RecordLost(IrqSource::kPostedPir,
                         absl::StrFormat("interrupt 0x%02x for vCPU %d (no such vCPU)", vector, vcpu));
      return;
    }
    ledger_.RecordOutcome(IrqSource::kPostedPir,
                          lapics_[vcpu]->Accept(vector, /*trigger_level=*/false,
                                                DeliveryMode::kFixed));
  });
  // The VM's IOMMU domain (vfio type1 container): guest RAM mapped IOVA =
  // guest-physical, as QEMU maps all guest memory for assigned devices.
  VfioContainer::Options co;
  co.msi_bypass = config_.host->msi_doorbell_iova == 0;
  co.doorbell_base = config_.host->msi_doorbell_iova;
  container_ = std::make_unique<VfioContainer>(co, host_->upstream(), tracer_, this,
                                               [this](const std::string& l) { host_->Log(l); });
  container_->set_ledger(&ledger_);
  if (absl::Status s = container_->MapDma(0, config_.ram_bytes, 0); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(co.msi_bypass ? "machine.ram: " : "machine.host.msi_doorbell_iova: ",
                     s.message()));
  }
  for (const VfioContainer::Range& r : container_->ReservedRanges()) {
    Trace(trace::VFIO, -1,
          absl::StrFormat("host: vfio: reserved IOVA range 0x%x-0x%x (%s)", r.start, r.end,
                          r.kind),
          -1, r.start, r.end);
  }
  for (size_t i = 0; i < config_.host->assigned.size(); ++i) {
    const MachineConfig::Assigned& a = config_.host->assigned[i];
    const std::string field = absl::StrFormat("machine.host.assigned[%d]", i);
    AssignedSlot slot;
    AssignmentOptions options;
    options.fix = a.fix;
    options.msix_policy = a.msix_policy;
    if (a.device == "edu") {
      slot.physical = std::make_unique<Edu>(&events_);
    } else if (a.device == "irqlab-testdev") {
      slot.physical = std::make_unique<IrqlabTestDev>();
    } else if (a.device == "wcn6855") {
      ASSIGN_OR_RETURN(slot.physical, Wcn6855::Create(&events_, Wcn6855::Options{}));
      // What the VMM's quirk / IMS trap: the device's interrupt-source
      // registers in its PCI window (devices/wcn6855_regs.h).
      options.source_offsets.assign(std::begin(kWcnSourceOffsets), std::end(kWcnSourceOffsets));
      options.window_base = WCN_WINDOW_BASE;
      options.window_size = WCN_WINDOW_SIZE;
    } else if (a.device == "irqlab-nic") {
      slot.physical = std::make_unique<SriovNic>(&events_);  // seed 004
    } else {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s.device: unknown physical device \"%s\" (known: edu, irqlab-nic, irqlab-testdev, "
          "wcn6855)",
          field, a.device));
    }
    RETURN_IF_ERROR(
        host_->AddDevice(slot.physical.get(), uint16_t{a.host_bus} << 8, container_.get()));
    slot.vfio = std::make_unique<VfioPciDevice>(slot.physical.get(), &host_->memory(), host_.get(),
                                                tracer_, this);
    slot.vfio->set_container(container_.get(), config_.host->doorbell_auto_map);
    slot.vfio->set_msi_novirt(a.msi_novirt);
    ASSIGN_OR_RETURN(slot.guest,
                     AssignedPciDevice::Create(slot.vfio.get(), irq_routes_.get(), options));
    absl::Status added = pci_host_->AddFunction(a.guest_slot, 0, slot.guest.get());
    if (!added.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s.guest_slot: %s", field, added.message()));
    }
    assigned_.push_back(std::move(slot));
  }
  return absl::OkStatus();
}

absl::Status Machine::LoadKernel(absl::Span<const uint8_t> image,
                                 std::string_view cmdline,
                                 const std::vector<MultibootModule>& modules) {
  // --device=intel-iommu,cfi=on|off: tell the guest's VT-d library whether
  // to set GCMD.CFI after enabling interrupt remapping (irqlab.vtd_cfi=1|0).
  std::string full_cmdline(cmdline);
  for (const MachineConfig::Device& d : config_.devices) {
    auto it = d.options.find("cfi");
    if (d.name != "intel-iommu" || it == d.options.end()) continue;
    absl::StrAppend(&full_cmdline, full_cmdline.empty() ? "" : " ",
                    "irqlab.vtd_cfi=", it->second == "on" ? "1" : "0");
  }
  ASSIGN_OR_RETURN(MultibootBoot boot,
                   LoadMultiboot(image, full_cmdline, modules, ram_.get()));
  RETURN_IF_ERROR(vcpus_[0]->SetMultibootEntry(boot.entry, boot.eax, boot.ebx));
  // ACPI RSDP/XSDT/MADT/MCFG (+ DMAR with the IOMMU) in the BIOS area, where
  // an ACPI-aware kernel looks for them.
  AcpiConfig acpi{.cpus = config_.cpus,
                  .ioapic_rid = ioapic::kDefaultRequesterId,
                  .dmar = vtd_ != nullptr};
  if (vtd_) {
    acpi.dmar_base = vtd_->config().base;
    acpi.intremap = vtd_->config().interrupt_remapping;
  }
  RETURN_IF_ERROR(WriteAcpiTables(acpi, ram_.get()));
  kernel_loaded_ = true;
  Trace(trace::MACHINE, 0,
        absl::StrFormat("multiboot kernel loaded, entry 0x%x, info 0x%x, %d cpus, %d MiB RAM",
                        boot.entry, boot.ebx, config_.cpus, config_.ram_bytes >> 20),
        -1, boot.entry, boot.ebx);
  return absl::OkStatus();
}

uint64_t Machine::Now() const {
  if (running_cpu_ < 0) return now_;
  return slice_start_time_ +
         (vcpus_[running_cpu_]->instructions_retired() - running_start_instr_);
}

void Machine::Trace(Stage stage, int cpu, std::string_view detail, int vector,
                    uint64_t address, uint64_t data) {
  if (tracer_->enabled()) tracer_->Emit(Now(), stage, cpu, detail, vector, address, data);
}

void Machine::RequestExit(int status) {
  if (!exit_status_) exit_status_ = status;
  StopAllVcpus();
}

void Machine::StopAllVcpus() {
  for (auto& v : vcpus_) v->RequestStop();
}

namespace {
bool InterruptsEnabled(const Vcpu& v) {
  absl::StatusOr<uint64_t> rflags = v.ReadRegister("rflags");
  return rflags.ok() && (*rflags & (1u << 9)) != 0;  // RFLAGS.IF
}
}  // namespace

std::string Machine::DescribeIdleCpus() const {
  std::vector<std::string> parts;
  for (const auto& v : vcpus_) {
    switch (v->state()) {
      case Vcpu::State::kHalted:
        parts.push_back(absl::StrFormat("cpu %d halted with interrupts %s", v->index(),
                                        InterruptsEnabled(*v) ? "enabled (nothing to wake it)"
                                                            : "disabled"));
        break;
      case Vcpu::State::kWaitForSipi:
        parts.push_back(absl::StrFormat("cpu %d waiting for SIPI", v->index()));
        break;
      case Vcpu::State::kShutdown:
        parts.push_back(absl::StrFormat("cpu %d shut down (%s)", v->index(), v->stop_reason()));
        break;
      case Vcpu::State::kRunnable:
        parts.push_back(absl::StrFormat("cpu %d runnable", v->index()));
        break;
    }
  }
  return absl::StrJoin(parts, "; ");
}

RunResult Machine::Run(uint64_t max_time, double wall_seconds) {
  RunResult result;
  using WallClock = std::chrono::steady_clock;
  const WallClock::time_point wall_start = WallClock::now();
  if (!kernel_loaded_) {
    result.outcome = RunResult::Outcome::kShutdown;
    result.detail = "no kernel loaded";
    return result;
  }
  while (true) {
    events_.RunUntil(now_);
    if (exit_status_) {
      result.outcome = RunResult::Outcome::kExit;
      result.exit_status = *exit_status_;
      result.detail = absl::StrFormat("guest wrote debug-exit, status %d", *exit_status_);
      break;
    }
    if (vcpus_[0]->state() == Vcpu::State::kShutdown) {
      result.outcome = RunResult::Outcome::kShutdown;
      result.detail = absl::StrCat("cpu 0 shut down: ", vcpus_[0]->stop_reason());
      break;
    }
    if (now_ >= max_time) {
      result.outcome = RunResult::Outcome::kTimeLimit;
      result.detail = absl::StrFormat("virtual time limit %d reached", max_time);
      break;
    }
    if (wall_seconds > 0 &&
        std::chrono::duration<double>(WallClock::now() - wall_start).count() >= wall_seconds) {
      result.outcome = RunResult::Outcome::kTimeLimit;
      result.detail = absl::StrFormat("wall-clock timeout of %g s reached at virtual time %d",
                                      wall_seconds, now_);
      break;
    }
    uint64_t end = std::min(now_ + config_.slice_ticks, max_time);
    if (std::optional<uint64_t> next = events_.NextTime(); next && *next < end) {
      end = std::max(*next, now_ + 1);
    }

    slice_end_ = end;
    fitted_generation_ = events_.schedule_generation();
    bool progressed = false;
    for (auto& vcpu : vcpus_) {
      if (vcpu->state() == Vcpu::State::kWaitForSipi ||
          vcpu->state() == Vcpu::State::kShutdown) {
        continue;
      }
      running_cpu_ = vcpu->index();
      slice_start_time_ = now_;
      running_start_instr_ = vcpu->instructions_retired();
      if (slice_end_ > now_) vcpu->Run(slice_end_ - now_);
      const uint64_t retired = vcpu->instructions_retired() - running_start_instr_;
      running_cpu_ = -1;
      progressed |= retired != 0;
      if (exit_status_) {
        // The run ends where the exiting vCPU stopped.
        now_ += retired;
        break;
      }
    }
    if (exit_status_) continue;
    if (progressed) {
      now_ = slice_end_;
      continue;
    }
    // No vCPU could run: jump to the next event, or report the hang.
    if (std::optional<uint64_t> next = events_.NextTime()) {
      now_ = std::max(now_, std::min(*next, max_time));
      if (*next >= max_time) now_ = max_time;
      continue;
    }
    result.outcome = RunResult::Outcome::kHang;
    result.detail = absl::StrCat("no vCPU can run and no event is pending: ",
                                 DescribeIdleCpus());
    break;
  }
  result.time = now_;
  CheckAccounting(result);
  serial_->Flush();
  Trace(trace::MACHINE, -1, absl::StrCat("run ended: ", OutcomeName(result.outcome),
                                         ": ", result.detail));
  return result;
}

void Machine::CheckAccounting(const RunResult& result) {
  auto check_irr = [this](const LocalApic& a, std::string_view who) {
    const LocalApic::IrrCounts& c = a.irr_counts();
    const uint64_t left = c.acknowledged + c.irr_cleared_by_reset + a.irr_popcount();
    if (c.irr_set != left) {
      ledger_.AddViolation(absl::StrFormat(
          "%s: %d interrupts entered the IRR but %d left it (%d acknowledged, %d "
          "cleared by reset) or are pending (%d)",
          who, c.irr_set, left, c.acknowledged, c.irr_cleared_by_reset, a.irr_popcount()));
    }
  };
  for (int i = 0; i < num_cpus(); ++i) {
    check_irr(*lapics_[i], absl::StrFormat("cpu %d local APIC", i));
  }
  if (host_ != nullptr) {
    for (int i = 0; i < host_->config().cpus; ++i) {
      check_irr(host_->cpu(i), absl::StrFormat("host cpu %d local APIC", i));
    }
  }
  // A hang means no vCPU could run and no event was pending: a halted vCPU
  // with IF=1 and a deliverable vector would have been woken (SDM 11.8.4).
  if (result.outcome != RunResult::Outcome::kHang) return;
  for (int i = 0; i < num_cpus(); ++i) {
    const int v = lapics_[i]->PendingVector();
    if (vcpus_[i]->state() == Vcpu::State::kHalted && InterruptsEnabled(*vcpus_[i]) &&
        v >= 0) {
      ledger_.AddViolation(absl::StrFormat(
          "cpu %d: vector 0x%02x is deliverable (IRR, above PPR) but the halted vCPU "
          "with interrupts enabled was never woken",
          i, v));
    }
  }
}

void Machine::InjectInterrupt(int cpu, int vector) {
  Trace(trace::INJECT, cpu, "host inject", vector);
  // Host injection is not an interrupt message: the ledger does not count
  // it; the APIC traces what it did with it.
  static_cast<void>(lapics_[cpu]->Accept(static_cast<uint8_t>(vector),
                                         /*trigger_level=*/false,
                                         DeliveryMode::kFixed));
}

void Machine::DelayEoiBroadcasts(uint64_t ticks, uint32_t count, std::string label) {
  eoi_delays_left_ += count;
  eoi_delay_ticks_ = ticks;
  eoi_delay_label_ = std::move(label);
}

void Machine::EoiBroadcast(int cpu, uint8_t vector) {
  if (eoi_delays_left_ == 0) {
    ioapic_->EndOfInterrupt(vector);
    return;
  }
  --eoi_delays_left_;
  const uint64_t when = TimeAfter(Now(), eoi_delay_ticks_);
  Trace(trace::FAULT_INJECT, cpu,
        absl::StrFormat("%s: EOI broadcast of vector 0x%x from cpu %d delayed to t=%d",
                        eoi_delay_label_, vector, cpu, when),
        vector);
  events_.Schedule(when, EventPriority::kInterruptDelivery,
                   absl::StrFormat("cpu%d: delayed EOI 0x%x", cpu, vector),
                   [this, vector] { ioapic_->EndOfInterrupt(vector); });
}

void Machine::InjectNmi(int cpu) {
  Trace(trace::NMI, cpu, "host NMI", 2);
  static_cast<void>(
      lapics_[cpu]->Accept(2, /*trigger_level=*/false, DeliveryMode::kNmi));
}

void Machine::SetIrqLine(int line, bool high) {
  testdev_->line(line).Set(high);
}

// A CPU's own xAPIC page shadows whatever else is at that address (SDM
// 11.4.1); it is per CPU, so it is not in the shared address space.
uint64_t Machine::MmioRead(int cpu, uint64_t addr, unsigned size) {
  if (std::optional<uint64_t> v = apic_bus_->MmioRead(cpu, addr, size)) return *v;
  return mmio_.Read(AccessOrigin::Cpu(cpu), addr, size);
}
void Machine::MmioWrite(int cpu, uint64_t addr, unsigned size, uint64_t value) {
  if (!apic_bus_->MmioWrite(cpu, addr, size, value)) {
    mmio_.Write(AccessOrigin::Cpu(cpu), addr, size, value);
  }
  FitSliceToEvents();
}
uint64_t Machine::PortRead(int cpu, uint16_t port, unsigned size) {
  return ports_.Read(AccessOrigin::Cpu(cpu), port, size);
}
void Machine::PortWrite(int cpu, uint16_t port, unsigned size, uint64_t value) {
  ports_.Write(AccessOrigin::Cpu(cpu), port, size, value);
  FitSliceToEvents();
}

void Machine::KickCpu(int cpu) {
  if (cpu >= static_cast<int>(vcpus_.size())) return;  // during construction
  if (running_cpu_ < 0 || running_cpu_ == cpu) {
    vcpus_[cpu]->Kick();
    return;
  }
  // Sent by the running vCPU to another one: not before now, and end the
  // sender's slice here so the receiver gets it with little delay.
  const uint64_t now = Now();
  vcpus_[cpu]->KickNotBefore(now);
  if (slice_end_ > now + 1) {
    vcpus_[running_cpu_]->ShortenSlice(1);
    slice_end_ = now + 1;
  }
}

void Machine::FitSliceToEvents() {
  if (running_cpu_ < 0) return;
  // Nothing scheduled since the slice was fitted: every event is still at or
  // after slice_end_ (which only ever moves earlier within a round).
  if (events_.schedule_generation() == fitted_generation_) return;
  fitted_generation_ = events_.schedule_generation();
  const std::optional<uint64_t> next = events_.NextTime();
  if (!next || *next >= slice_end_) return;
  const uint64_t now = Now();
  const uint64_t target = std::max(*next, now + 1);
  vcpus_[running_cpu_]->ShortenSlice(target - now);
  slice_end_ = target;
}

std::optional<uint64_t> Machine::ReadMsr(int cpu, uint32_t msr) {
  // Anything else: no such MSR; the vCPU traces what it does about it
  // (#GP, or ignore-msrs).
  if (LocalApic::HandlesMsr(msr)) return lapics_[cpu]->ReadMsr(msr);
  return std::nullopt;
}

bool Machine::WriteMsr(int cpu, uint32_t msr, uint64_t value) {
  if (LocalApic::HandlesMsr(msr)) {
    const bool ok = lapics_[cpu]->WriteMsr(msr, value);
    FitSliceToEvents();
    return ok;
  }
  return false;  // no such MSR (the vCPU traces it)
}

}  // namespace irqlab
