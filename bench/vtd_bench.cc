// Intel VT-d fast paths, without a vCPU:
//
// Interrupt remapping ([VT-d] 5.1.4): a remappable-format MSI through the
// VtdUnit (IRE=1, IRTE present) -> ApicBus -> LocalApic accept (IRR set),
// ns per interrupt, for 1 to 4096 CPUs (local APICs in x2APIC mode, ids
// 0..N-1, target N/2). Arguments:
//   cpus     number of local APICs on the bus
//   irta_s   IRTA.S: the table has 2^(S+1) entries (7: 256, 11: 4,096,
//            15: 65,536); the 224 IRTEs used are spread evenly over it
//            (index 2^(S+1)/256 * i), so a large table is really touched
//   eime     IRTA.EIME: 0 = xAPIC-format IRTEs (8-bit DST[15:8], at most
//            256 CPUs), 1 = x2APIC format (32-bit DST, the unit calls
//            ApicBus::SignalX2Apic), as Linux with x2APIC
//   logical  (EIME=1 only) IRTE DM=1 with an x2APIC cluster destination
//            (id >> 4) << 16 | 1 << (id & 15), as Linux's default
//            x2apic_cluster mode writes; 0 = physical destination
//   BM_IrRemapIecHit             IRTE decoded once, then from the interrupt
//                                entry cache — the hit cost must not
//                                depend on the table size or the number of
//                                CPUs
//   BM_IrRemapIecMiss            IEC capacity 0: the IRTE is read from guest
//                                memory and decoded on every interrupt
//   BM_IrRemapIecInvalidateEach  an index-selective IEC invalidation
//                                descriptor (IQT write, queue processing)
//                                before every interrupt, both timed: the
//                                cost a guest pays to make a miss
//   BM_DirectApicAccept          no IOMMU: the same compatibility MSI straight
//                                into ApicBus (as apic_bench's
//                                BM_MsiToLapicAccept)
// Every iteration uses the next of 224 vectors (0x20..0xFF, the i-th IRTE
// -> vector 0x20 + i) so each is a real IRR update; the target's IRR is
// drained outside the timed region every 224 interrupts (as apic_bench.cc).
//
// DMA remapping ([VT-d] 3.4.2, 6.2.4): DmaRemapper::Translate of a 4 KiB
// page of a 3-level (AW 39) mapping, requester 00:03.0, cycling over 64
// mapped pages:
//   BM_DmaTranslate/0  IOTLB hit (context-cache hit too)
//   BM_DmaTranslate/1  IOTLB miss: IOTLB capacity 0, every request walks the
//                      three levels in guest RAM (context cache still hits)
//   BM_DmaTranslate/2  global IOTLB invalidation before every request, both
//                      timed (miss + refill + flush)
//
//   build/bench/vtd_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "bench/x2apic_platform.h"
#include "emu/core/guest_ram.h"
#include "emu/core/msi.h"
#include "emu/core/trace.h"
#include "iommu/dma_remap.h"
#include "iommu/vtd_regs.h"
#include "iommu/vtd_unit.h"

namespace irqlab {
namespace {

constexpr int kFirstVector = 0x20;
constexpr int kVectors = 256 - kFirstVector;
constexpr uint16_t kDevRid = 0x0018;  // 00:03.0

// ---------------------------------------------------------------------------
// Interrupt remapping.

constexpr uint64_t kRamSize = 4 << 20;
constexpr uint64_t kQueue = 0x10000;  // invalidation queue, 4 KiB
constexpr uint64_t kIrt = 0x100000;   // up to 65,536 * 16 bytes = 1 MiB
const AccessOrigin kCpu = AccessOrigin::Cpu(0);

// Index of the i-th IRTE in use (i < 224) in a table of 2^(irta_s+1).
uint16_t IrteIndex(unsigned irta_s, int i) {
  return static_cast<uint16_t>(((2u << irta_s) / 256) * static_cast<unsigned>(i));
}

struct Platform : X2ApicPlatform {
  std::unique_ptr<GuestRam> ram;
  std::unique_ptr<VtdUnit> unit;
  uint32_t tail = 0;
  int target = 0;

  explicit Platform(int cpus) : X2ApicPlatform(cpus), target(cpus / 2) {}

  // The unit with IR enabled the way Linux does it: QI, IRTA + SIRTP,
  // global IEC invalidation, IRE. IRTE IrteIndex(irta_s, i) (i < 224) ->
  // vector 0x20 + i on the target (see the file comment for `eime` and
  // `logical`). Returns false if the unit did not come up.
  bool InitUnit(unsigned irta_s, uint32_t iec_capacity, bool eime = false,
                bool logical = false) {
    if (!eime && (target > 0xFF || logical)) return false;  // not expressible
    auto r = GuestRam::Create(kRamSize);
    if (!r.ok()) return false;
    ram = std::move(*r);
    VtdConfig vc;
    vc.iec_capacity = iec_capacity;
    auto u = VtdUnit::Create(vc, bus.get(), ram.get(), &events, &tracer);
    if (!u.ok()) return false;
    unit = std::move(*u);
    const uint32_t dest =
        logical ? (static_cast<uint32_t>(target >> 4) << 16) | (1u << (target & 15))
                : static_cast<uint32_t>(target);
    for (int i = 0; i < kVectors; ++i) {
      const vtd::Irte e = vtd::Irte::Remapped({.vector = static_cast<uint8_t>(kFirstVector + i),
                                               .destination = dest,
                                               .eime = eime,
                                               .dest_logical = logical});
      const uint64_t at = kIrt + 16 * uint64_t{IrteIndex(irta_s, i)};
      ram->Store<uint64_t>(at, e.lo);
      ram->Store<uint64_t>(at + 8, e.hi);
    }
    unit->Write(kCpu, vtd::kIqaReg, 8, kQueue);
    unit->Write(kCpu, vtd::kIqtReg, 8, 0);
    Command(vtd::Gcmd::kQie);
    unit->Write(kCpu, vtd::kIrtaReg, 8, kIrt | irta_s | (eime ? vtd::Irta::kEime : 0));
    Command(vtd::Gcmd::kSirtp);
    Submit(vtd::qi::IecGlobal());
    Command(vtd::Gcmd::kIre);
    return unit->interrupt_remapping_enabled() &&
           unit->irta().entries() == (2u << irta_s) && unit->irta().eime() == eime;
  }
  void Command(uint32_t bit) {
    const uint32_t status =
        unit->Read(kCpu, vtd::kGstsReg, 4) & ~vtd::Gcmd::kOneShot;
    unit->Write(kCpu, vtd::kGcmdReg, 4, status | bit);
  }
  void Submit(uint64_t qw0, uint64_t qw1 = 0) {
    ram->Store<uint64_t>(kQueue + tail, qw0);
    ram->Store<uint64_t>(kQueue + tail + 8, qw1);
    tail = (tail + 16) % 4096;
    unit->Write(kCpu, vtd::kIqtReg, 8, tail);
  }
  // Takes every pending vector of the target through ISR and EOI.
  void Drain() {
    LocalApic& a = *apics[target];
    for (int v = a.PendingVector(); v >= 0; v = a.PendingVector()) {
      a.Acknowledge(v);
      a.WriteMsr(0x80B, 0);  // EOI
    }
  }
};

std::vector<MsiMessage> RemappableMessages(unsigned irta_s = 7) {
  std::vector<MsiMessage> msgs;
  for (int i = 0; i < kVectors; ++i) {
    msgs.push_back(MsiMessage::Remappable(IrteIndex(irta_s, i), /*shv=*/false, 0, kDevRid));
  }
  return msgs;
}

// Common loop: Signal msgs[i] through `sink`, optionally preceded by an
// index-selective IEC invalidation of index i (irta_s 7: IRTE index == i).
void RunRemap(benchmark::State& state, Platform& p, MsiSink* sink,
              const std::vector<MsiMessage>& msgs, bool invalidate_each) {
  int i = 0;
  for (auto _ : state) {
    if (invalidate_each) p.Submit(vtd::qi::IecIndex(static_cast<uint16_t>(i), 0));
    sink->Signal(msgs[i]);
    if (++i == kVectors) {
      state.PauseTiming();
      i = 0;
      p.Drain();
      state.ResumeTiming();
    }
  }
  if (i > 0 && !p.apics[p.target]->irr(kFirstVector)) {
    state.SkipWithError("interrupt not accepted");
  }
  state.SetItemsProcessed(state.iterations());
}

void ReportUnit(benchmark::State& state, const VtdUnit& unit) {
  const VtdStats& s = unit.stats();
  if (s.faults != 0) state.SkipWithError("interrupt-remapping fault");
  state.counters["iec_hit_%"] =
      s.remapped ? 100.0 * static_cast<double>(s.iec_hits) /
                       static_cast<double>(s.remapped)
                 : 0.0;
}

void BM_IrRemapIecHit(benchmark::State& state) {
  Platform p(static_cast<int>(state.range(0)));
  const unsigned irta_s = static_cast<unsigned>(state.range(1));
  if (!p.InitUnit(irta_s, 65536, state.range(2) != 0, state.range(3) != 0)) {
    state.SkipWithError("VT-d unit set-up failed");
    return;
  }
  const std::vector<MsiMessage> msgs = RemappableMessages(irta_s);
  for (const MsiMessage& m : msgs) p.unit->Signal(m);  // warm the IEC
  p.Drain();
  RunRemap(state, p, p.unit.get(), msgs, false);
  ReportUnit(state, *p.unit);
}
// Rows 1-4: xAPIC-format IRTEs (EIME=0). Then the CPU sweep 1 -> 4096 with
// x2APIC IRTEs and physical destinations, the table sweep 256 -> 65,536
// at 4096 CPUs, and the CPU sweep with logical (cluster) destinations.
BENCHMARK(BM_IrRemapIecHit)
    ->ArgNames({"cpus", "irta_s", "eime", "logical"})
    ->Args({1, 7, 0, 0})
    ->Args({256, 7, 0, 0})
    ->Args({1, 15, 0, 0})
    ->Args({256, 15, 0, 0})
    ->Args({1, 7, 1, 0})
    ->Args({8, 7, 1, 0})
    ->Args({256, 7, 1, 0})
    ->Args({4096, 7, 1, 0})
    ->Args({4096, 11, 1, 0})
    ->Args({4096, 15, 1, 0})
    ->Args({1, 7, 1, 1})
    ->Args({8, 7, 1, 1})
    ->Args({256, 7, 1, 1})
    ->Args({4096, 7, 1, 1});

void BM_IrRemapIecMiss(benchmark::State& state) {
  Platform p(static_cast<int>(state.range(0)));
  if (!p.InitUnit(7, /*iec_capacity=*/0, state.range(1) != 0)) {
    state.SkipWithError("VT-d unit set-up failed");
    return;
  }
  RunRemap(state, p, p.unit.get(), RemappableMessages(), false);
  ReportUnit(state, *p.unit);
}
BENCHMARK(BM_IrRemapIecMiss)
    ->ArgNames({"cpus", "eime"})
    ->Args({1, 0})
    ->Args({256, 0})
    ->Args({4096, 1});

void BM_IrRemapIecInvalidateEach(benchmark::State& state) {
  Platform p(static_cast<int>(state.range(0)));
  if (!p.InitUnit(7, 65536, state.range(1) != 0)) {
    state.SkipWithError("VT-d unit set-up failed");
    return;
  }
  RunRemap(state, p, p.unit.get(), RemappableMessages(), true);
  ReportUnit(state, *p.unit);
  if (p.unit->stats().iec_hits != 0) state.SkipWithError("IEC hit after invalidation");
}
BENCHMARK(BM_IrRemapIecInvalidateEach)
    ->ArgNames({"cpus", "eime"})
    ->Args({1, 0})
    ->Args({256, 0})
    ->Args({4096, 1});

void BM_DirectApicAccept(benchmark::State& state) {
  Platform p(static_cast<int>(state.range(0)));
  std::vector<MsiMessage> msgs;
  for (int v = kFirstVector; v < 256; ++v) {
    msgs.push_back(MsiMessage::Compat(static_cast<uint32_t>(p.target),
                                      static_cast<uint8_t>(v), kDevRid));
  }
  RunRemap(state, p, p.bus.get(), msgs, false);
}
BENCHMARK(BM_DirectApicAccept)->ArgName("cpus")->Arg(1)->Arg(256);

// ---------------------------------------------------------------------------
// DMA remapping.

constexpr uint64_t kRoot = 0x1000, kCtx = 0x2000, kL3 = 0x3000, kL2 = 0x4000,
                   kL1 = 0x5000, kTarget = 0x200000;
constexpr int kPages = 64;

void BM_DmaTranslate(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  auto r = GuestRam::Create(kRamSize);
  if (!r.ok()) {
    state.SkipWithError("RAM");
    return;
  }
  std::unique_ptr<GuestRam> ram = std::move(*r);
  // Root entry for bus 0 -> context table; context entry 00:03.0: P, TT=00,
  // SLPTPTR = L3; AW 39-bit (1), domain 1. Level 3/2/1 tables, 4 KiB leaves
  // IOVA i*4K -> kTarget + i*4K (R/W).
  ram->Store<uint64_t>(kRoot, kCtx | 1);
  ram->Store<uint64_t>(kCtx + 16 * (kDevRid & 0xFF), kL3 | 1);
  ram->Store<uint64_t>(kCtx + 16 * (kDevRid & 0xFF) + 8, (1u << 8) | 1);
  ram->Store<uint64_t>(kL3, kL2 | 3);
  ram->Store<uint64_t>(kL2, kL1 | 3);
  for (int i = 0; i < kPages; ++i) {
    ram->Store<uint64_t>(kL1 + 8 * i, (kTarget + 4096ull * i) | 3);
  }
  vtd::DmaRemapOptions o;
  if (mode == 1) o.iotlb_capacity = 0;
  vtd::DmaRemapper remap(ram.get(), o);
  remap.SetRootTableAddress(kRoot);
  // Warm the context cache (and the IOTLB in mode 0).
  for (int i = 0; i < kPages; ++i) {
    if (!remap.Translate(kDevRid, 4096ull * i + 0x40, true).ok) {
      state.SkipWithError("translation failed in set-up");
      return;
    }
  }
  remap.ResetStats();
  int i = 0;
  uint64_t sum = 0;
  for (auto _ : state) {
    if (mode == 2) remap.InvalidateIotlbGlobal();
    const vtd::TranslateResult t =
        remap.Translate(kDevRid, 4096ull * i + 0x40, /*write=*/true);
    sum += t.hpa;
    if (++i == kPages) i = 0;
  }
  benchmark::DoNotOptimize(sum);
  const vtd::DmaRemapStats& s = remap.stats();
  if (s.faults != 0) state.SkipWithError("DMA fault");
  if (mode == 0 && s.iotlb_misses != 0) state.SkipWithError("IOTLB miss in hit mode");
  if (mode != 0 && s.iotlb_hits != 0) state.SkipWithError("IOTLB hit in miss mode");
  state.counters["walks"] = benchmark::Counter(
      static_cast<double>(s.page_walks), benchmark::Counter::kAvgIterations);
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(mode == 0 ? "iotlb hit" : mode == 1 ? "iotlb miss (no IOTLB)"
                                                     : "global invalidation + miss");
}
BENCHMARK(BM_DmaTranslate)->ArgName("mode")->Arg(0)->Arg(1)->Arg(2);

}  // namespace
}  // namespace irqlab
