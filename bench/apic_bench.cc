// Device MSI -> APIC bus -> local APIC accept, without a vCPU: the cost of
// destination decode and IRR update per interrupt, for 1 to 4096 CPUs whose
// local APICs are in x2APIC mode (ids 0..N-1, target N/2). Target: < 30 ns,
// flat in the number of CPUs.
//
// Second argument `dest`, the destination form the bus decodes:
//   0  compatibility-format MSI, physical 8-bit destination (ApicBus::Signal;
//      a device MSI without interrupt remapping; at most 256 CPUs)
//   1  physical 32-bit x2APIC destination (ApicBus::SignalX2Apic), what the
//      VT-d unit sends with IRTA.EIME=1 (vtd_bench measures the unit too)
//   2  logical 32-bit x2APIC destination, cluster (id >> 4) << 16 | bit
//      1 << (id & 15) (SDM 11.12.10.2): Linux's default x2apic_cluster mode
//      writes such destinations into its IRTEs
//
//   BM_MsiToLapicAccept       accept only (IRR set; drained untimed)
//   BM_MsiAcceptAckEoi        accept + acknowledge (IRR -> ISR) + EOI
//   BM_ApicBusMmioDispatch    what every guest MMIO access of the last CPU
//                             costs in the APIC bus before it reaches a
//                             device (Machine::MmioWrite asks
//                             ApicBus::MmioWrite first; the address is not
//                             an APIC page, the APIC is in x2APIC mode)
//
//   build/bench/apic_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "bench/x2apic_platform.h"
#include "emu/core/msi.h"

namespace irqlab {
namespace {

constexpr int kFirstVector = 0x20;
constexpr int kVectors = 256 - kFirstVector;

struct Platform : X2ApicPlatform {
  using X2ApicPlatform::X2ApicPlatform;
  // Takes every pending vector of `cpu` through ISR and EOI (IRR empty again).
  void Drain(int cpu) {
    LocalApic& a = *apics[cpu];
    for (int v = a.PendingVector(); v >= 0; v = a.PendingVector()) {
      a.Acknowledge(v);
      a.WriteMsr(0x80B, 0);  // EOI
    }
  }
};

enum Dest { kCompat8 = 0, kPhysical32 = 1, kLogical32 = 2 };

// Sends vector `v` to APIC id `target` in the form `dest`.
class Sender {
 public:
  Sender(Platform& p, int target, Dest dest) : bus_(*p.bus), dest_(dest) {
    x2_dest_ = dest == kLogical32
                   ? (static_cast<uint32_t>(target >> 4) << 16) | (1u << (target & 15))
                   : static_cast<uint32_t>(target);
    for (int v = kFirstVector; v < 256; ++v) {
      // For the 32-bit forms only the vector and modes matter (the bus
      // takes the destination from `x2_dest_`).
      msgs_.push_back(MsiMessage::Compat(static_cast<uint32_t>(target & 0xFF),
                                         static_cast<uint8_t>(v), /*requester_id=*/0x0300,
                                         {.logical = dest == kLogical32}));
    }
  }
  void Send(int v) {
    const MsiMessage& m = msgs_[v - kFirstVector];
    if (dest_ == kCompat8) {
      bus_.Signal(m);
    } else {
      bus_.SignalX2Apic(m, x2_dest_);
    }
  }

 private:
  ApicBus& bus_;
  const Dest dest_;
  uint32_t x2_dest_ = 0;
  std::vector<MsiMessage> msgs_;
};

const char* DestLabel(Dest d) {
  return d == kCompat8      ? "compat MSI, physical 8-bit"
         : d == kPhysical32 ? "x2APIC physical 32-bit"
                            : "x2APIC logical cluster";
}

void BM_MsiToLapicAccept(benchmark::State& state) {
  const int cpus = static_cast<int>(state.range(0));
  const Dest dest = static_cast<Dest>(state.range(1));
  Platform p(cpus);
  const int target = cpus / 2;
  Sender s(p, target, dest);
  int i = 0;
  for (auto _ : state) {
    s.Send(kFirstVector + i);  // a new vector each time: a real IRR update
    if (++i == kVectors) {
      state.PauseTiming();
      i = 0;
      p.Drain(target);
      state.ResumeTiming();
    }
  }
  if (!p.apics[target]->irr(kFirstVector) && i > 0) state.SkipWithError("MSI not accepted");
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(DestLabel(dest));
}
BENCHMARK(BM_MsiToLapicAccept)
    ->ArgNames({"cpus", "dest"})
    ->Args({1, kCompat8})
    ->Args({8, kCompat8})
    ->Args({256, kCompat8})
    ->Args({1, kPhysical32})
    ->Args({8, kPhysical32})
    ->Args({256, kPhysical32})
    ->Args({4096, kPhysical32})
    ->Args({1, kLogical32})
    ->Args({8, kLogical32})
    ->Args({256, kLogical32})
    ->Args({4096, kLogical32});

// The whole LAPIC round trip a vCPU adds: accept, acknowledge (IRR -> ISR),
// EOI.
void BM_MsiAcceptAckEoi(benchmark::State& state) {
  const int cpus = static_cast<int>(state.range(0));
  const Dest dest = static_cast<Dest>(state.range(1));
  Platform p(cpus);
  const int target = cpus / 2;
  Sender s(p, target, dest);
  LocalApic& a = *p.apics[target];
  uint64_t taken = 0;
  for (auto _ : state) {
    s.Send(0x40);
    const int v = a.PendingVector();
    taken += v == 0x40;
    a.Acknowledge(v);
    a.WriteMsr(0x80B, 0);
  }
  if (taken != static_cast<uint64_t>(state.iterations())) state.SkipWithError("MSI not accepted");
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(DestLabel(dest));
}
BENCHMARK(BM_MsiAcceptAckEoi)
    ->ArgNames({"cpus", "dest"})
    ->Args({1, kCompat8})
    ->Args({8, kCompat8})
    ->Args({256, kCompat8})
    ->Args({256, kPhysical32})
    ->Args({4096, kPhysical32})
    ->Args({4096, kLogical32});

void BM_ApicBusMmioDispatch(benchmark::State& state) {
  const int cpus = static_cast<int>(state.range(0));
  Platform p(cpus);
  const int cpu = cpus - 1;
  uint64_t claimed = 0;
  for (auto _ : state) {
    claimed += p.bus->MmioWrite(cpu, 0xC0000060, 4, 1);  // edu's raise register
  }
  if (claimed != 0) state.SkipWithError("the APIC bus claimed a device address");
  state.SetItemsProcessed(state.iterations());
}
// 64: MachineConfig::kMaxCpus today.
BENCHMARK(BM_ApicBusMmioDispatch)->ArgName("cpus")->Arg(1)->Arg(8)->Arg(64)->Arg(256)->Arg(4096);

}  // namespace
}  // namespace irqlab
