// End-to-end benchmark through the whole machine: the event queue injects a
// vector into vCPU 0 every `interval` virtual ticks; the built-in `irqloop`
// guest handles each one (incq counter; iretq) and exits after N.
// Reports interrupts per second of wall time and of virtual time.
//
// BM_EduMsiEndToEnd: the device path end to end. The built-in `eduloop`
// guest writes edu's raise register (0x60), edu sends its MSI through the
// PCI root complex to the APIC bus, vCPU 0 takes vector 0x40 in a raw
// handler (incq; edu ack 0x64; EOI; iretq), and the guest spins (IF=1) until
// the handler ran before the next raise.
//
//   build/bench/machine_bench --benchmark_repetitions=3
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>

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

// Boot is kept out of the timed region by the guest's start=T option: it
// boots, configures edu and MSI, prints "eduloop: ready", and spins (IF=0)
// until RDTSC (= virtual time) reaches T. The untimed Run(T) covers all of
// that; the timed Run covers the `count` round trips plus the guest's final
// report line and debug exit (a few thousand ticks, < 1% here).
// items_per_second: interrupts per wall second of the timed Run (UseRealTime).
// irq_per_virtual_s: 1e9 / (the guest's RDTSC ticks per interrupt, measured
// around its loop only; 1 tick = 1 virtual ns).
void BM_EduMsiEndToEnd(benchmark::State& state) {
  const int64_t count = state.range(0);
  const bool ack = state.range(1) != 0;
  const BuiltinKernel* k = FindBuiltinKernel("eduloop");
  if (k == nullptr) {
    state.SkipWithError("no built-in eduloop kernel");
    return;
  }
  const uint64_t start = 2'000'000;
  uint64_t loop_ticks = 0, interrupts = 0;
  for (auto _ : state) {
    state.PauseTiming();
    MachineConfig mc;
    mc.devices = {{.name = "edu", .options = {}}};
    auto m = Machine::Create(mc, nullptr);
    if (!m.ok() ||
        !(*m)->LoadKernel(k->elf,
                          absl::StrCat("count=", count, " start=", start, " ack=", ack ? 1 : 0),
                          {})
             .ok()) {
      state.SkipWithError("machine set-up failed");
      return;
    }
    Machine* machine = m->get();
    RunResult booted = machine->Run(start);
    if (booted.outcome != RunResult::Outcome::kTimeLimit ||
        machine->serial_output().find("eduloop: ready") == std::string::npos) {
      state.SkipWithError(("guest not ready at start: " + booted.detail + "\n" +
                           machine->serial_output())
                              .c_str());
      return;
    }
    state.ResumeTiming();
    // Generous limit: a round trip takes well under 10^4 ticks.
    RunResult r = machine->Run(start + count * 10'000 + 10'000'000);
    state.PauseTiming();
    const std::string& out = machine->serial_output();
    const size_t at = out.find("eduloop: ", out.find("eduloop: ready") + 1);
    unsigned long long got = 0, ticks = 0;
    if (r.outcome != RunResult::Outcome::kExit || r.exit_status != 1 || at == std::string::npos ||
        std::sscanf(out.c_str() + at, "eduloop: %llu interrupts in %llu ticks", &got, &ticks) !=
            2 ||
        got != static_cast<unsigned long long>(count)) {
      state.SkipWithError(("guest did not finish: " + r.detail + "\n" + out).c_str());
      return;
    }
    loop_ticks += ticks;
    interrupts += got;
    m->reset();  // tear-down outside the timed region
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * count);
  state.counters["irq_per_virtual_s"] =
      loop_ticks ? 1e9 * static_cast<double>(interrupts) / static_cast<double>(loop_ticks) : 0;
  state.counters["ticks_per_irq"] =
      interrupts ? static_cast<double>(loop_ticks) / static_cast<double>(interrupts) : 0;
}
BENCHMARK(BM_EduMsiEndToEnd)
    ->ArgNames({"count", "ack"})
    ->Args({20000, 1})
    ->Args({20000, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace irqlab
