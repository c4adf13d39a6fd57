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
// BM_IrqRoundTrip: the same loop in the built-in `irqbench` guest
// (firmware-stubs/programs/irqbench.c), 20,000 round trips on 1 vCPU, with
// the interrupt source and the APIC mode as arguments,
// and fixmap:1 (the guest's default) for the xAPIC page through a 4 KiB
// Linux-style fixmap page, fixmap:0 through the identity map
// (firmware-stubs/runtime/fixmap.h explains the Unicorn TLB slot that an
// identity-mapped LAPIC shares with edu's 1 MiB-aligned BAR; x2APIC EOI
// does not touch the page, so x2apic:1 runs only with fixmap:1):
//   src:0 ir:0 x2apic:0   edu MSI, compatibility format (eduloop's case)
//   src:0 ir:1 x2apic:0   edu MSI through VT-d interrupt remapping
//                         (--device=intel-iommu; the guest enables QI,
//                         IRTA+SIRTP with EIME=1, global IEC flush, IRE as
//                         Linux does, writes IRTE 0 and flushes it, and
//                         programs the MSI in remappable format: handle 0,
//                         SHV); EOI through the xAPIC page
//   src:0 ir:1 x2apic:1   the same with the BSP in x2APIC mode (EOI = WRMSR
//                         0x80B), as a Linux guest with IR runs
//   src:1 ir:0 x2apic:0   self IPI through the xAPIC ICR (self shorthand)
//   src:1 ir:0 x2apic:1   self IPI through the x2APIC SELF_IPI MSR 0x83F
// The edu handler acks the device (0x64) as eduloop's ack=1 does.
//
// BM_Wcn6855Events: see its comment below.
//
//   build/bench/machine_bench --benchmark_repetitions=3
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "emu/machine/machine.h"
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
// boots, configures the source (and VT-d), prints "<guest>: ready", and spins
// (IF=0) until RDTSC (= virtual time) reaches T. The untimed Run(T) covers
// all of that; the timed Run covers the `count` round trips plus the guest's
// final report line and debug exit (a few thousand ticks, < 1% here).
// items_per_second: interrupts per wall second of the timed Run (UseRealTime).
// irq_per_virtual_s: 1e9 / (the guest's RDTSC ticks per interrupt, measured
// around its loop only; 1 tick = 1 virtual ns).
// The guest must report exactly `count` interrupts ("<guest>: N interrupts
// in T ticks") and exit 0, or the benchmark fails (SkipWithError).
void RunGuestLoop(benchmark::State& state, const char* guest,
                  const std::vector<MachineConfig::Device>& devices, const std::string& options,
                  int64_t count) {
  const BuiltinKernel* k = FindBuiltinKernel(guest);
  if (k == nullptr) {
    state.SkipWithError(absl::StrCat("no built-in ", guest, " kernel").c_str());
    return;
  }
  const std::string ready = absl::StrCat(guest, ": ready");
  const std::string report = absl::StrCat(guest, ": %llu interrupts in %llu ticks");
  const uint64_t start = 2'000'000;
  uint64_t loop_ticks = 0, interrupts = 0;
  for (auto _ : state) {
    state.PauseTiming();
    MachineConfig mc;
    mc.devices = devices;
    auto m = Machine::Create(mc, nullptr);
    if (!m.ok() ||
        !(*m)->LoadKernel(k->elf, absl::StrCat("count=", count, " start=", start, " ", options),
                          {})
             .ok()) {
      state.SkipWithError("machine set-up failed");
      return;
    }
    Machine* machine = m->get();
    RunResult booted = machine->Run(start);
    if (booted.outcome != RunResult::Outcome::kTimeLimit ||
        machine->serial_output().find(ready) == std::string::npos) {
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
    const size_t at = out.find(absl::StrCat(guest, ": "), out.find(ready) + 1);
    unsigned long long got = 0, ticks = 0;
    if (r.outcome != RunResult::Outcome::kExit || r.exit_status != 1 || at == std::string::npos ||
        std::sscanf(out.c_str() + at, report.c_str(), &got, &ticks) != 2 ||
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

void BM_EduMsiEndToEnd(benchmark::State& state) {
  const bool ack = state.range(1) != 0;
  RunGuestLoop(state, "eduloop", {{.name = "edu", .options = {}}},
               absl::StrCat("ack=", ack ? 1 : 0), state.range(0));
}
BENCHMARK(BM_EduMsiEndToEnd)
    ->ArgNames({"count", "ack"})
    ->Args({20000, 1})
    ->Args({20000, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_IrqRoundTrip(benchmark::State& state) {
  const bool ipi = state.range(0) != 0;
  const bool ir = state.range(1) != 0;
  const bool x2apic = state.range(2) != 0;
  const bool fixmap = state.range(3) != 0;
  std::vector<MachineConfig::Device> devices;
  if (!ipi) devices.push_back({.name = "edu", .options = {}});
  if (ir) devices.push_back({.name = "intel-iommu", .options = {{"intremap", "on"}, {"eim", "on"}}});
  RunGuestLoop(state, "irqbench", devices,
               absl::StrCat("source=", ipi ? "ipi" : "edu", " ir=", ir ? 1 : 0,
                            " x2apic=", x2apic ? 1 : 0, " fixmap=", fixmap ? 1 : 0),
               20000);
  state.SetLabel(absl::StrCat(ipi ? (x2apic ? "x2APIC SELF_IPI" : "xAPIC ICR self IPI")
                                  : (ir ? "edu MSI via VT-d IR" : "edu MSI"),
                              x2apic ? ", x2APIC EOI"
                                     : (fixmap ? ", xAPIC EOI (fixmap page)"
                                               : ", xAPIC EOI (identity-mapped page)")));
}
BENCHMARK(BM_IrqRoundTrip)
    ->ArgNames({"src", "ir", "x2apic", "fixmap"})
    ->Args({0, 0, 0, 0})
    ->Args({0, 0, 0, 1})
    ->Args({0, 1, 0, 0})
    ->Args({0, 1, 0, 1})
    ->Args({0, 1, 1, 1})
    ->Args({1, 0, 0, 0})
    ->Args({1, 0, 0, 1})
    ->Args({1, 0, 1, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// BM_Wcn6855Events: the WCN6855 story end to end. The built-in `ath11k`
// driver probes the synthetic WCN6855 (17cb:1103), copies its MSI into the
// 13 interrupt sources, boots the ARM firmware, connects HTT and then asks
// for `events` data-path events; each is a firmware run on the device's ARM
// core, an MSI, the guest handler and EOI. assigned:0 is bare metal
// (--device=wcn6855); assigned:1 is the device assigned through vfio with
// the NOVIRT quirk (host VT-d IR, host CPU, eventfd, VMM route). The whole
// run is timed, boot included (about 1,300 ticks of firmware boot and the
// probe; well under 1% at 20,000 events). items_per_second: events per wall
// second. The guest must exit 0 with "PASS: ath11k_events".
void BM_Wcn6855Events(benchmark::State& state) {
  const int64_t events = state.range(0);
  const bool assigned = state.range(1) != 0;
  const BuiltinKernel* k = FindBuiltinKernel("ath11k");
  if (k == nullptr) {
    state.SkipWithError("no built-in ath11k kernel");
    return;
  }
  for (auto _ : state) {
    state.PauseTiming();
    MachineConfig mc;
    if (assigned) {
      MachineConfig::Host host;
      MachineConfig::Assigned a;
      a.device = "wcn6855";
      a.fix = AssignmentOptions::Fix::kNovirtQuirk;
      a.msi_novirt = true;
      host.assigned.push_back(a);
      mc.host = host;
    } else {
      mc.devices.push_back({.name = "wcn6855", .options = {}});
    }
    auto m = Machine::Create(mc, nullptr);
    if (!m.ok() ||
        !(*m)->LoadKernel(k->elf, absl::StrCat("events=", events, " timeout=1000000000"), {})
             .ok()) {
      state.SkipWithError("machine set-up failed");
      return;
    }
    state.ResumeTiming();
    RunResult r = (*m)->Run(20'000'000'000);
    state.PauseTiming();
    if (r.outcome != RunResult::Outcome::kExit || r.exit_status != 1 ||
        (*m)->serial_output().find("PASS: ath11k_events") == std::string::npos) {
      state.SkipWithError(("ath11k did not finish: " + r.detail + "\n" + (*m)->serial_output())
                              .c_str());
      return;
    }
    m->reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * events);
  state.SetLabel(assigned ? "assigned through vfio (NOVIRT quirk)" : "bare metal");
}
BENCHMARK(BM_Wcn6855Events)
    ->ArgNames({"events", "assigned"})
    ->Args({20000, 0})
    ->Args({20000, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace irqlab
