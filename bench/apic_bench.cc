// Device MSI -> APIC bus -> local APIC accept, without a vCPU: the cost of
// destination decode and IRR update per interrupt, for 1, 8 and 256 CPUs
// whose local APICs are in x2APIC mode (ids 0..N-1). Target: < 30 ns.
//
//   build/bench/apic_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "bench/x2apic_platform.h"
#include "emu/msi.h"

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

void BM_MsiToLapicAccept(benchmark::State& state) {
  const int cpus = static_cast<int>(state.range(0));
  Platform p(cpus);
  const int target = cpus / 2;
  std::vector<MsiMessage> msgs;
  for (int v = kFirstVector; v < 256; ++v) {
    msgs.push_back(MsiMessage::Compat(static_cast<uint32_t>(target), static_cast<uint8_t>(v),
                                      /*requester_id=*/0x0300));
  }
  int i = 0;
  for (auto _ : state) {
    p.bus->Signal(msgs[i]);  // a new vector each time: a real IRR update
    if (++i == kVectors) {
      state.PauseTiming();
      i = 0;
      p.Drain(target);
      state.ResumeTiming();
    }
  }
  if (!p.apics[target]->irr(kFirstVector) && i > 0) state.SkipWithError("MSI not accepted");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MsiToLapicAccept)->Arg(1)->Arg(8)->Arg(256);

// The whole LAPIC round trip a vCPU adds: accept, acknowledge (IRR -> ISR),
// EOI.
void BM_MsiAcceptAckEoi(benchmark::State& state) {
  const int cpus = static_cast<int>(state.range(0));
  Platform p(cpus);
  const int target = cpus / 2;
  const MsiMessage msg = MsiMessage::Compat(static_cast<uint32_t>(target), 0x40, 0x0300);
  LocalApic& a = *p.apics[target];
  for (auto _ : state) {
    p.bus->Signal(msg);
    a.Acknowledge(a.PendingVector());
    a.WriteMsr(0x80B, 0);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MsiAcceptAckEoi)->Arg(1)->Arg(8)->Arg(256);

}  // namespace
}  // namespace irqlab
