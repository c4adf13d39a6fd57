#include "emu/machine/host_platform.h"

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "emu/core/status_macros.h"
#include "iommu/vtd_regs.h"
#include "pci/pci_regs.h"

namespace irqlab {

namespace {
// Host-private memory layout.
constexpr uint64_t kIrtBase = 0x100000;    // 1024 IRTEs = 16 KiB
constexpr uint64_t kQueueBase = 0x200000;  // 256 descriptors of 128 bits
constexpr uint64_t kQueueEntries = 256;
constexpr uint64_t kPidBase = 0x300000;    // 64-byte posted-interrupt descriptors
constexpr unsigned kIrtaS = 9;             // 2^(9+1) = 1024 entries
static_assert((2u << kIrtaS) == HostPlatform::kIrtEntries);
constexpr uint64_t kApicEoi = 0xB0;
constexpr uint64_t kApicSvr = 0xF0;
}  // namespace

// Forwards host-side trace events to the machine's tracer with "host: "
// in front of the detail, so one trace holds both levels.
class HostPlatform::PrefixSink : public TraceSink {
 public:
  explicit PrefixSink(Tracer* out) : out_(out) {}
  void Emit(const TraceEvent& event) override {
    TraceEvent e = event;
    e.set_detail(absl::StrCat("host: ", event.detail()));
    out_->Emit(e);
  }

 private:
  Tracer* out_;
};

HostPlatform::HostPlatform(const HostConfig& config, GuestRam* device_memory,
                           const Clock* clock, EventQueue* events, Tracer* tracer)
    : config_(config),
      device_memory_(device_memory),
      clock_(clock),
      events_(events),
      tracer_(tracer),
      memory_("host-memory", uint64_t{1} << 40, trace::MMIO_UNMAPPED, &host_tracer_, clock) {}

HostPlatform::~HostPlatform() = default;

absl::StatusOr<std::unique_ptr<HostPlatform>> HostPlatform::Create(
    const HostConfig& config, GuestRam* device_memory, const Clock* clock,
    EventQueue* events, Tracer* tracer) {
  if (config.cpus < 1 || config.cpus > 64) {
    return absl::InvalidArgumentError(
        absl::StrFormat("host.cpus: %d is out of range 1..64", config.cpus));
  }
  if (config.first_irte >= kIrtEntries) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "host.first_irte: %u is beyond the host IRT (%u entries)", config.first_irte,
        kIrtEntries));
  }
  std::unique_ptr<HostPlatform> host(
      new HostPlatform(config, device_memory, clock, events, tracer));
  RETURN_IF_ERROR(host->Init());
  return host;
}

absl::Status HostPlatform::Init() {
  if (tracer_ != nullptr && tracer_->enabled()) {
    prefix_sink_ = std::make_unique<PrefixSink>(tracer_);
    host_tracer_.AddSink(prefix_sink_.get());
  }
  ASSIGN_OR_RETURN(ram_, GuestRam::Create(config_.ram_bytes));
  bus_ = std::make_unique<ApicBus>(clock_, &host_tracer_);
  cpu_kicked_.assign(config_.cpus, false);
  for (int i = 0; i < config_.cpus; ++i) {
    cpu_event_names_.push_back(absl::StrFormat("host cpu%d: interrupt", i));
  }
  for (int i = 0; i < config_.cpus; ++i) {
    LocalApicConfig c;
    c.cpu = i;
    c.apic_id = static_cast<uint32_t>(i);
    c.bsp = i == 0;
    c.x2apic = false;
    LocalApicCallbacks cb;
    cb.kick = [this, i] { KickCpu(i); };
    lapics_.push_back(std::make_unique<LocalApic>(c, clock_, events_, &host_tracer_, cb));
    bus_->Attach(lapics_.back().get());
    // The host kernel enabled its APIC (SVR.APIC software enable, 0xFF
    // spurious vector).
    lapics_.back()->Write(AccessOrigin::Cpu(i), kApicSvr, 4, 0x1FF);
  }
  VtdConfig vc;
  vc.posted_interrupts = config_.posted_interrupts;
  vc.extended_interrupt_mode = false;  // the host runs its APICs in xAPIC mode
  ASSIGN_OR_RETURN(vtd_, VtdUnit::Create(vc, bus_.get(), ram_.get(), clock_, &host_tracer_));
  root_complex_ = std::make_unique<RootComplex>(device_memory_, vtd_.get(), &host_tracer_, clock_);
  irte_used_.assign(kIrtEntries, false);
  for (uint32_t i = 0; i < config_.first_irte; ++i) irte_used_[i] = true;
  // The DMAR fault handler.
  vectors_[{0, kDmarFaultVector}] =
      VectorOwner{std::make_shared<const std::function<void(unsigned)>>(
                      [this](unsigned) { HandleDmarFault(); }),
                  0, "dmar_fault"};
  for (int c = 0; c < config_.cpus; ++c) {
    vectors_[{c, kPostedNotificationVector}] = VectorOwner{
        std::make_shared<const std::function<void(unsigned)>>(
            [this, c](unsigned) { ProcessPostedInterrupts(c); }),
        0, "posted-intr-notification"};
  }
  pid_ready_.assign(kMaxVcpus, false);
  EnableInterruptRemapping();
  return absl::OkStatus();
}

void HostPlatform::AccountDeviceInterrupts(IrqLedger* ledger) {
  device_entry_ = std::make_unique<AccountingMsiSink>(vtd_.get(), ledger,
                                                      IrqSource::kHostDevice);
  root_complex_->set_msi_sink(device_entry_.get());
}

void HostPlatform::RegWrite32(uint64_t reg, uint32_t value) {
  vtd_->Write(AccessOrigin::Cpu(0), reg, 4, value);
}
void HostPlatform::RegWrite64(uint64_t reg, uint64_t value) {
  vtd_->Write(AccessOrigin::Cpu(0), reg, 8, value);
}
uint32_t HostPlatform::RegRead32(uint64_t reg) {
  return static_cast<uint32_t>(vtd_->Read(AccessOrigin::Cpu(0), reg, 4));
}

void HostPlatform::EnableInterruptRemapping() {
  using vtd::Gcmd;
  // Fault event: host vector kDmarFaultVector on CPU 0, unmasked.
  RegWrite32(vtd::kFedataReg, kDmarFaultVector);
  RegWrite32(vtd::kFeaddrReg, 0xFEE00000);
  RegWrite32(vtd::kFectlReg, 0);
  // intel_setup_irq_remapping(): table, SIRTP, QI, global IEC flush, IRE.
  RegWrite64(vtd::kIrtaReg, kIrtBase | kIrtaS);
  uint32_t persistent = 0;
  RegWrite32(vtd::kGcmdReg, persistent | Gcmd::kSirtp);
  RegWrite64(vtd::kIqaReg, kQueueBase);  // QS=0: 256 x 128-bit descriptors
  RegWrite64(vtd::kIqtReg, 0);
  persistent |= Gcmd::kQie;
  RegWrite32(vtd::kGcmdReg, persistent);
  Invalidate(vtd::qi::IecGlobal(), 0);
  persistent |= Gcmd::kIre;
  RegWrite32(vtd::kGcmdReg, persistent);
  if (config_.compat_format) {
    persistent |= Gcmd::kCfi;
    RegWrite32(vtd::kGcmdReg, persistent);
  }
}

void HostPlatform::Invalidate(uint64_t qw0, uint64_t qw1) {
  const uint64_t slot = kQueueBase + (iq_tail_ % kQueueEntries) * 16;
  ram_->Store<uint64_t>(slot, qw0);
  ram_->Store<uint64_t>(slot + 8, qw1);
  iq_tail_ = (iq_tail_ + 1) % kQueueEntries;
  RegWrite64(vtd::kIqtReg, iq_tail_ * 16);
}

void HostPlatform::WriteIrte(uint32_t index, uint64_t lo, uint64_t hi) {
  ram_->Store<uint64_t>(kIrtBase + uint64_t{index} * 16, lo);
  ram_->Store<uint64_t>(kIrtBase + uint64_t{index} * 16 + 8, hi);
  // Index-selective IEC invalidation (6.5.2.7).
  Invalidate(vtd::qi::IecIndex(static_cast<uint16_t>(index), 0), 0);
}

absl::Status HostPlatform::AddDevice(PciFunction* function, uint16_t rid, DmaSink* dma) {
  function->Attach(PciBusContext{.memory = &memory_,
                                 .io = nullptr,
                                 .dma = dma != nullptr ? dma : root_complex_.get(),
                                 .tracer = &host_tracer_,
                                 .clock = clock_},
                   rid);
  // Host firmware: memory BARs at naturally aligned addresses in the window.
  for (int i = 0; i < pci::kNumBars; ++i) {
    const BarSpec* bar = function->bar(i);
    if (bar == nullptr || bar->type == BarType::kIo) continue;
    next_bar_ = (next_bar_ + bar->size - 1) & ~(bar->size - 1);
    const uint32_t reg = pci::kBar0 + 4 * i;
    function->ConfigWrite(reg, 4, static_cast<uint32_t>(next_bar_));
    if (bar->type == BarType::kMemory64) {
      function->ConfigWrite(reg + 4, 4, static_cast<uint32_t>(next_bar_ >> 32));
    }
    next_bar_ += bar->size;
  }
  function->ConfigWrite(pci::kCommand, 2, function->command() | pci::kCommandMemorySpace);
  function->UpdateBars();
  if (function->HasUndecodedBar()) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "host: %s: a BAR could not be mapped in the host window", function->name()));
  }
  return absl::OkStatus();
}

absl::StatusOr<HostIrqBlock> HostPlatform::AllocateIrqs(
    uint16_t rid, unsigned count, std::string_view name,
    std::function<void(unsigned)> handler) {
  if (count == 0 || count > 32) {
    return absl::InvalidArgumentError(
        absl::StrFormat("host: %s: cannot allocate %u interrupts", name, count));
  }
  // A contiguous IRTE block (the device adds the vector number to the
  // subhandle: index = handle + subhandle, 5.1.2.2).
  const int found = FindIrtes(count, 1);
  if (found < 0) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("host: %s: no %u free IRTEs", name, count));
  }
  const uint32_t first = static_cast<uint32_t>(found);
  Block b;
  b.block.id = next_block_id_++;
  b.block.first_index = first;
  b.block.count = count;
  b.block.message = MsiMessage::Remappable(static_cast<uint16_t>(first), /*shv=*/true,
                                           /*subhandle=*/0, rid);
  auto shared = std::make_shared<const std::function<void(unsigned)>>(std::move(handler));
  for (unsigned i = 0; i < count; ++i) {
    // Lowest free vector on the next CPU (round robin), as a simple
    // deterministic stand-in for Linux's matrix allocator.
    int cpu = -1;
    uint8_t vector = 0;
    for (int tries = 0; tries < config_.cpus && cpu < 0; ++tries) {
      const int c = (next_cpu_ + tries) % config_.cpus;
      for (int v = kFirstDeviceVector; v <= kLastDeviceVector; ++v) {
        if (!vectors_.count({c, static_cast<uint8_t>(v)})) {
          cpu = c;
          vector = static_cast<uint8_t>(v);
          break;
        }
      }
    }
    if (cpu < 0) {
      for (auto& cv : b.vectors) vectors_.erase(cv);
      return absl::ResourceExhaustedError(
          absl::StrFormat("host: %s: out of host vectors", name));
    }
    next_cpu_ = (cpu + 1) % config_.cpus;
    vectors_[{cpu, vector}] = VectorOwner{
        shared, i,
        count == 1 ? std::string(name) : absl::StrFormat("%s:%u", name, i)};
    b.vectors.push_back({cpu, vector});
  }
  for (unsigned i = 0; i < count; ++i) {
    irte_used_[first + i] = true;
    const vtd::Irte irte = vtd::Irte::Remapped(
        {.vector = b.vectors[i].second,
         .destination = static_cast<uint32_t>(b.vectors[i].first),
         .sid = rid,
         .svt = vtd::Irte::kSvtRequesterId});
    WriteIrte(first + i, irte.lo, irte.hi);
    Trace(trace::HOST_IRQ, b.vectors[i].first,
          absl::StrFormat("irq allocated for %s: IRTE 0x%x -> cpu %d vector 0x%x",
                          vectors_[b.vectors[i]].name, first + i, b.vectors[i].first,
                          b.vectors[i].second),
          b.vectors[i].second, 0, 0, rid);
  }
  HostIrqBlock out = b.block;
  blocks_[out.id] = std::move(b);
  return out;
}

void HostPlatform::FreeIrqs(const HostIrqBlock& block) {
  auto it = blocks_.find(block.id);
  if (it == blocks_.end()) return;
  for (unsigned i = 0; i < it->second.block.count; ++i) {
    const uint32_t index = it->second.block.first_index + i;
    WriteIrte(index, 0, 0);  // not present
    irte_used_[index] = false;
  }
  for (auto& cv : it->second.vectors) vectors_.erase(cv);
  blocks_.erase(it);
}

int HostPlatform::FindIrtes(unsigned count, unsigned align) const {
  for (uint32_t first = 0; first + count <= kIrtEntries; first += align) {
    bool free = true;
    for (uint32_t i = first; i < first + count && free; ++i) free = !irte_used_[i];
    if (free) return static_cast<int>(first);
  }
  return -1;
}

uint64_t HostPlatform::PidAddress(int vcpu) { return kPidBase + 64 * uint64_t(vcpu); }

absl::Status HostPlatform::MapGuestVector(uint16_t rid, uint8_t vector, int vcpu) {
  if (vcpu < 0 || vcpu >= kMaxVcpus) {
    return absl::InvalidArgumentError(
        absl::StrFormat("host: guest-owned MSI: vCPU %d out of range", vcpu));
  }
  auto owned = guest_owned_.find(rid);
  if (owned == guest_owned_.end()) {
    const int base = FindIrtes(256, 256);
    if (base < 0) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "host: guest-owned MSI for %s: no free 256-entry IRTE block",
          FormatRequesterId(rid)));
    }
    for (uint32_t i = 0; i < 256; ++i) irte_used_[base + i] = true;
    owned = guest_owned_.emplace(rid, static_cast<uint32_t>(base)).first;
    vtd_->set_guest_owned(rid, static_cast<uint32_t>(base));
  }
  if (!pid_ready_[vcpu]) {
    // PID: PIR 0, ON/SN 0, NV, NDST = the host CPU's xAPIC id in 15:8 (9.12).
    const uint64_t pid = PidAddress(vcpu);
    for (int q = 0; q < 8; ++q) ram_->Store<uint64_t>(pid + 8 * q, 0);
    const uint64_t control = (uint64_t{kPostedNotificationVector} << 16) |
                             (uint64_t(HostCpuOf(vcpu)) << 40);
    ram_->Store<uint64_t>(pid + vtd::PostedDescriptor::kControlOffset, control);
    pid_ready_[vcpu] = true;
  }
  const uint32_t index = owned->second + vector;
  const vtd::Irte irte = vtd::Irte::Posted(vector, PidAddress(vcpu), /*urgent=*/false, rid,
                                           /*sq=*/0, vtd::Irte::kSvtRequesterId);
  WriteIrte(index, irte.lo, irte.hi);
  Trace(trace::HOST_IRQ, HostCpuOf(vcpu),
        absl::StrFormat("guest-owned MSI %s vector 0x%x: posted IRTE 0x%x -> vCPU %d PID %#x",
                        FormatRequesterId(rid), vector, index, vcpu, PidAddress(vcpu)),
        vector, 0, 0, rid);
  return absl::OkStatus();
}

void HostPlatform::ReleaseGuestMsi(uint16_t rid) {
  auto owned = guest_owned_.find(rid);
  if (owned == guest_owned_.end()) return;
  vtd_->clear_guest_owned(rid);
  for (uint32_t i = 0; i < 256; ++i) {
    const uint32_t index = owned->second + i;
    ram_->Store<uint64_t>(kIrtBase + uint64_t{index} * 16, 0);
    ram_->Store<uint64_t>(kIrtBase + uint64_t{index} * 16 + 8, 0);
    irte_used_[index] = false;
  }
  // One invalidation for the whole block (IM = 8: 256 entries).
  Invalidate(vtd::qi::IecIndex(static_cast<uint16_t>(owned->second), 8), 0);
  guest_owned_.erase(owned);
}

void HostPlatform::ProcessPostedInterrupts(int cpu) {
  for (int vcpu = cpu; vcpu < kMaxVcpus; vcpu += config_.cpus) {
    if (!pid_ready_[vcpu]) continue;
    const uint64_t pid = PidAddress(vcpu);
    uint64_t* words = reinterpret_cast<uint64_t*>(ram_->data() + pid);
    std::atomic_ref<uint64_t>(words[vtd::PostedDescriptor::kControlOffset / 8])
        .fetch_and(~vtd::PostedDescriptor::kOn);
    for (int w = 0; w < 4; ++w) {
      uint64_t bits = std::atomic_ref<uint64_t>(words[w]).exchange(0);
      while (bits != 0) {
        const int bit = __builtin_ctzll(bits);
        bits &= bits - 1;
        const uint8_t vector = static_cast<uint8_t>(64 * w + bit);
        Trace(trace::HOST_IRQ, cpu,
              absl::StrFormat("posted-interrupt processing: PIR vector 0x%x -> vCPU %d", vector,
                              vcpu),
              vector);
        if (vcpu_sink_) vcpu_sink_(vcpu, vector);
      }
    }
  }
}

void HostPlatform::KickCpu(int cpu) {
  if (cpu_kicked_[cpu]) return;
  cpu_kicked_[cpu] = true;
  events_->Schedule(clock_->Now(), EventPriority::kHostAction, cpu_event_names_[cpu],
                    [this, cpu] { RunCpu(cpu); });
}

void HostPlatform::RunCpu(int cpu) {
  cpu_kicked_[cpu] = false;
  LocalApic& apic = *lapics_[cpu];
  for (int vector = apic.PendingVector(); vector >= 0; vector = apic.PendingVector()) {
    apic.Acknowledge(vector);
    auto it = vectors_.find({cpu, static_cast<uint8_t>(vector)});
    if (it == vectors_.end()) {
      ++spurious_irqs_;
      Trace(trace::HOST_IRQ, cpu, "unexpected host interrupt (no handler)", vector);
    } else {
      ++irqs_handled_;
      if (host_tracer_.enabled()) {
        Trace(trace::HOST_IRQ, cpu, absl::StrCat("irq ", it->second.name), vector);
      }
      // Hold the handler: it may free or re-allocate vectors.
      const auto handler = it->second.handler;
      (*handler)(it->second.sub);
    }
    apic.Write(AccessOrigin::Cpu(cpu), kApicEoi, 4, 0);
  }
}

void HostPlatform::HandleDmarFault() {
  // dmar_fault(): read FSTS, walk the fault recording registers from FRI,
  // print each, clear F (RW1C), then clear the summary bits.
  const uint32_t fsts = RegRead32(vtd::kFstsReg);
  Log(absl::StrFormat("DMAR: DRHD: handling fault status reg %x", fsts));
  const int n = vtd_->cap().num_fault_records();
  int index = (fsts >> 8) & 0xFF;
  for (int k = 0; k < n; ++k, index = (index + 1) % n) {
    const uint64_t reg = vtd::kFaultRecordsOffset + 16 * index;
    const uint64_t lo = vtd_->Read(AccessOrigin::Cpu(0), reg, 8);
    const uint64_t hi = vtd_->Read(AccessOrigin::Cpu(0), reg + 8, 8);
    if (!(hi & vtd::FaultRecord::kF)) break;
    vtd::FaultRecord r;
    r.fault_info = lo;
    r.source_id = static_cast<uint16_t>(hi & 0xFFFF);
    r.reason = static_cast<uint8_t>((hi >> 32) & 0xFF);
    r.read = (hi >> 62) & 1;
    Log(vtd::LinuxFaultLine(r));
    vtd_->Write(AccessOrigin::Cpu(0), reg + 12, 4, 0x80000000u);  // clear F
  }
  RegWrite32(vtd::kFstsReg, fsts & 0x1);  // PFO (RW1C); PPF follows the F bits
}

void HostPlatform::Log(const std::string& line) {
  log_.push_back(line);
  if (config_.console != nullptr) *config_.console << "[host] " << line << "\n";
  Trace(trace::HOST_LOG, -1, line);
}

void HostPlatform::Trace(Stage stage, int cpu, const std::string& detail, int vector,
                         uint64_t address, uint64_t data, uint32_t rid) {
  if (host_tracer_.enabled()) {
    host_tracer_.Emit(clock_->Now(), stage, cpu, detail, vector, address, data, rid);
  }
}

}  // namespace irqlab
