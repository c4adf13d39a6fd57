// End-to-end benchmark through the whole machine: the event queue injects a
// vector into vCPU 0 every `interval` virtual ticks; the built-in `irqloop`
// guest handles each one (incq counter; iretq) and exits after N.
// Reports interrupts per second of wall time and of virtual time.
//
//   build/bench/machine_bench --benchmark_repetitions=3
#include <benchmark/benchmark.h>

#include "absl/strings/str_cat.h"
#include "emu/machine.h"
#include "firmware-stubs/builtin_kernels.h"

namespace irqlab {
namespace {

void BM_MachineInjectedInterrupts(benchmark::State& state) {
  const int64_t count = 20000;
  const uint64_t interval = static_cast<uint64_t>(state.range(0));
  const BuiltinKernel* k = FindBuiltinKernel("irqloop");
  if (k == nullptr) {
    state.SkipWithError("no built-in irqloop kernel");
    return;
  }
  for (auto _ : state) {
    state.PauseTiming();
    MachineConfig mc;
    auto m = Machine::Create(mc, nullptr);
    if (!m.ok() || !(*m)->LoadKernel(k->elf, absl::StrCat("count=", count), {}).ok()) {
      state.SkipWithError("machine set-up failed");
      return;
    }
    Machine* machine = m->get();
    // Start after the guest has booted and installed its handlers.
    const uint64_t start = 2'000'000;
    for (int64_t i = 0; i < count; ++i) {
      machine->events().Schedule(start + i * interval, EventPriority::kScenarioAction, "inject",
                                 [machine] { machine->InjectInterrupt(0, 0x40); });
    }
    // Boot the guest up to the first injection outside the timed region.
    RunResult booted = machine->Run(start);
    if (booted.outcome != RunResult::Outcome::kTimeLimit) {
      state.SkipWithError(("guest did not boot: " + booted.detail).c_str());
      return;
    }
    state.ResumeTiming();
    RunResult r = machine->Run(start + (count + 1000) * interval);
    if (r.outcome != RunResult::Outcome::kExit || r.exit_status != 1) {
      state.SkipWithError(("guest did not finish: " + r.detail).c_str());
      return;
    }
  }
  state.SetItemsProcessed(state.iterations() * count);
  // One interrupt every `interval` ticks (virtual ns).
  state.counters["irq_per_virtual_s"] = 1e9 / static_cast<double>(interval);
}
BENCHMARK(BM_MachineInjectedInterrupts)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace irqlab
