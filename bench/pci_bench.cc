// MSI-X through its table, without a vCPU: a PCI function with an MSI-X
// capability of N entries (PCI 3.0 6.8.2; pci/msix_capability.h) signals
// entry i (PciFunction::SignalMsix: Enable/mask checks, the entry's current
// address/data, the bus-master gate, RootComplex interrupt-window write),
// the message goes on to the APIC bus and a local APIC (IRR set), and the
// APIC model takes it as a vCPU would (acknowledge IRR -> ISR, EOI; about
// 20 ns of the total, see apic_bench's BM_MsiAcceptAckEoi). ns per
// interrupt; it must not depend on N.
//
//   BM_MsixSignal/vectors:N/ir:0  entry i holds a compatibility-format
//                                 message (APIC 0, vector 0x20 + i % 224)
//   BM_MsixSignal/vectors:N/ir:1  entry i holds a remappable-format message
//                                 (handle i, SHV, subhandle 0, as Linux
//                                 programs MSI-X under interrupt remapping)
//                                 through a VT-d unit (IRTA.EIME=1, 2048
//                                 IRTEs, IRTE i -> vector 0x20 + i % 224 on
//                                 APIC 0, SVT=01b with the function's
//                                 requester id; IEC warm)
//
// Set-up as a guest driver does it, through the memory space: the function
// (00:04.0, one 64 KiB memory BAR: table at 0, PBA at 0x8000, BAR assigned
// by PciHost::AssignResources) gets Memory + Bus Master, every entry is
// written (address, data) and unmasked, then MSI-X Enable. The timed loop
// signals entries 0, 1, ..., N-1, 0, ... so the whole table is used, and
// checks that the entry's vector is the one the APIC acknowledges (each
// interrupt is a real IRR update). One local APIC (x2APIC mode), tracing
// off.
//
//   build/bench/pci_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <string>

#include "bench/x2apic_platform.h"
#include "emu/core/address_space.h"
#include "emu/core/guest_ram.h"
#include "emu/core/irq_line.h"
#include "emu/core/msi.h"
#include "iommu/vtd_regs.h"
#include "iommu/vtd_unit.h"
#include "pci/pci_function.h"
#include "pci/pci_host.h"
#include "pci/pci_regs.h"
#include "pci/root_complex.h"

namespace irqlab {
namespace {

constexpr int kFirstVector = 0x20;
constexpr int kVectors = 256 - kFirstVector;
constexpr uint8_t kDev = 4;  // 00:04.0
constexpr uint64_t kBarSize = 0x10000;
constexpr uint32_t kPbaOffset = 0x8000;
constexpr uint64_t kRamSize = 4 << 20;
constexpr uint64_t kQueue = 0x10000;  // VT-d invalidation queue
constexpr uint64_t kIrt = 0x100000;   // 2048 IRTEs = 32 KiB
constexpr unsigned kIrtaS = 10;       // 2^(10+1) = 2048 entries
const AccessOrigin kCpu = AccessOrigin::Cpu(0);

class NullIrqTarget : public IrqLineTarget {
 public:
  void SetLevel(int, bool) override {}
};

// A function that is nothing but an MSI-X table of `vectors` entries.
class MsixFunction : public PciFunction {
 public:
  explicit MsixFunction(unsigned vectors)
      : PciFunction("msix-bench", Identity{.vendor_id = 0x1234, .device_id = 0x5A5A,
                                           .class_code = 0xFF0000}) {
    ok_ = AddBar(0, BarSpec{.type = BarType::kMemory32, .size = kBarSize}).ok();
    auto cap = AddMsixCapability({.vectors = vectors, .table_bar = 0, .table_offset = 0,
                                  .pba_bar = 0, .pba_offset = kPbaOffset});
    ok_ = ok_ && cap.ok();
    if (cap.ok()) cap_offset_ = (*cap)->offset();
  }
  bool ok() const { return ok_; }
  uint16_t cap_offset() const { return cap_offset_; }

 private:
  bool ok_ = false;
  uint16_t cap_offset_ = 0;
};

// Memory and port spaces, the root complex and the host bridge in front of
// an X2ApicPlatform, optionally with a VT-d unit between the root complex
// and the APIC bus. Members in construction order; the function is
// destroyed before the host and the spaces it is mapped into.
struct Platform : X2ApicPlatform {
  std::unique_ptr<GuestRam> ram;
  AddressSpace mem{"mem", AddressSpace::kPhysicalSpaceLimit, trace::MMIO_UNMAPPED, &tracer,
                   &events};
  AddressSpace io{"io", AddressSpace::kPortSpaceLimit, trace::PORT_UNMAPPED, &tracer, &events};
  NullIrqTarget intx;
  std::unique_ptr<RootComplex> root;
  std::unique_ptr<PciHost> host;
  std::unique_ptr<VtdUnit> unit;
  std::unique_ptr<MsixFunction> fn;
  uint32_t tail = 0;

  Platform() : X2ApicPlatform(1) {}

  // Returns an error text, or "" when the function is up with `vectors`
  // entries programmed, unmasked and enabled.
  std::string Init(unsigned vectors, bool ir) {
    auto r = GuestRam::Create(kRamSize);
    if (!r.ok()) return "RAM";
    ram = std::move(*r);
    root = std::make_unique<RootComplex>(ram.get(), bus.get(), &tracer, &events);
    if (ir) {
      auto u = VtdUnit::Create(VtdConfig{}, bus.get(), ram.get(), &events, &tracer);
      if (!u.ok()) return "VT-d unit";
      unit = std::move(*u);
      root->set_msi_sink(unit.get());
    }
    host = std::make_unique<PciHost>(
        PciHost::Platform{&mem, &io, root.get(), &intx, &tracer, &events});
    fn = std::make_unique<MsixFunction>(vectors);
    if (!fn->ok()) return "MSI-X capability";
    if (!host->MapConfigAccess().ok() || !host->AddFunction(kDev, 0, fn.get()).ok() ||
        !host->AssignResources().ok()) {
      return "PCI host";
    }
    fn->ConfigWrite(pci::kCommand, 2, pci::kCommandMemorySpace | pci::kCommandBusMaster);
    const uint64_t table = fn->BarAddress(0);
    if (ir && !InitUnit(vectors)) return "VT-d bring-up";
    for (unsigned i = 0; i < vectors; ++i) {
      const uint8_t v = static_cast<uint8_t>(kFirstVector + i % kVectors);
      const MsiMessage m =
          ir ? MsiMessage::Remappable(static_cast<uint16_t>(i), /*shv=*/true, 0, 0)
             : MsiMessage::Compat(0, v, 0);
      const uint64_t e = table + uint64_t{pci::kMsixEntrySize} * i;
      mem.Write(kCpu, e + pci::kMsixEntryAddressLo, 8, m.address);
      mem.Write(kCpu, e + pci::kMsixEntryData, 4, m.data);
      mem.Write(kCpu, e + pci::kMsixEntryVectorControl, 4, 0);  // unmask
    }
    fn->ConfigWrite(fn->cap_offset() + pci::kMsixControl, 2, pci::kMsixControlEnable);
    if (!fn->msix_enabled()) return "MSI-X enable";
    return "";
  }

  // Linux's order: QI, IRTA (EIME=1) + SIRTP, global IEC invalidation, IRE.
  // IRTE i -> vector 0x20 + i % 224 on APIC 0, source-id checked.
  bool InitUnit(unsigned vectors) {
    for (unsigned i = 0; i < vectors; ++i) {
      const vtd::Irte e = vtd::Irte::Remapped(
          {.vector = static_cast<uint8_t>(kFirstVector + i % kVectors),
           .destination = 0,
           .eime = true,
           .sid = fn->requester_id(),
           .svt = vtd::Irte::kSvtRequesterId});
      ram->Store<uint64_t>(kIrt + 16 * i, e.lo);
      ram->Store<uint64_t>(kIrt + 16 * i + 8, e.hi);
    }
    unit->Write(kCpu, vtd::kIqaReg, 8, kQueue);
    unit->Write(kCpu, vtd::kIqtReg, 8, 0);
    Command(vtd::Gcmd::kQie);
    unit->Write(kCpu, vtd::kIrtaReg, 8, kIrt | kIrtaS | vtd::Irta::kEime);
    Command(vtd::Gcmd::kSirtp);
    ram->Store<uint64_t>(kQueue, vtd::qi::IecGlobal());
    ram->Store<uint64_t>(kQueue + 8, 0);
    unit->Write(kCpu, vtd::kIqtReg, 8, 16);
    Command(vtd::Gcmd::kIre);
    return unit->interrupt_remapping_enabled() && unit->irta().eime();
  }
  void Command(uint32_t bit) {
    const uint32_t status = unit->Read(kCpu, vtd::kGstsReg, 4) & ~vtd::Gcmd::kOneShot;
    unit->Write(kCpu, vtd::kGcmdReg, 4, status | bit);
  }
  void Drain() {
    LocalApic& a = *apics[0];
    for (int v = a.PendingVector(); v >= 0; v = a.PendingVector()) {
      a.Acknowledge(v);
      a.WriteMsr(0x80B, 0);  // EOI
    }
  }
};

void BM_MsixSignal(benchmark::State& state) {
  const unsigned n = static_cast<unsigned>(state.range(0));
  const bool ir = state.range(1) != 0;
  Platform p;
  if (const std::string err = p.Init(n, ir); !err.empty()) {
    state.SkipWithError(("set-up failed: " + err).c_str());
    return;
  }
  if (ir) {  // warm the IEC with every entry
    for (unsigned i = 0; i < n; ++i) {
      p.fn->SignalMsix(i);
      if (i % kVectors == kVectors - 1) p.Drain();
    }
    p.Drain();
  }
  LocalApic& a = *p.apics[0];
  unsigned i = 0;
  uint64_t taken = 0;
  for (auto _ : state) {
    p.fn->SignalMsix(i);
    const int v = a.PendingVector();
    if (v == kFirstVector + static_cast<int>(i % kVectors)) {
      ++taken;
      a.Acknowledge(v);
      a.WriteMsr(0x80B, 0);  // EOI
    }
    if (++i == n) i = 0;
  }
  if (taken != static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("MSI-X interrupt not delivered");
  }
  if (p.unit != nullptr) {
    const VtdStats& s = p.unit->stats();
    if (s.faults != 0) state.SkipWithError("interrupt-remapping fault");
    state.counters["iec_hit_%"] =
        s.remapped ? 100.0 * static_cast<double>(s.iec_hits) / static_cast<double>(s.remapped)
                   : 0.0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MsixSignal)
    ->ArgNames({"vectors", "ir"})
    ->Args({1, 0})
    ->Args({32, 0})
    ->Args({256, 0})
    ->Args({2048, 0})
    ->Args({1, 1})
    ->Args({256, 1})
    ->Args({2048, 1});

}  // namespace
}  // namespace irqlab
