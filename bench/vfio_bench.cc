// Device-assignment interrupt paths (pci/assigned_device.h, pci/vfio.h,
// emu/machine/host_platform.h), without a vCPU, tracing off. ns per interrupt.
//
// Guest side: N local APICs in x2APIC mode (ids 0..N-1, target N/2) on the
// guest ApicBus, optionally a guest VT-d (vIOMMU) with interrupt remapping
// on (IRTA.S=7, EIME=0; IRTE i -> vector 0x20+i on the target), and the
// VMM's IrqRouteTable with one route per vector. Every iteration uses the
// next of 224 vectors so each delivery is a real IRR update; the target's
// IRR is drained outside the timed region every 224 interrupts (as
// apic_bench.cc).
//
//   BM_GuestApicDirect/cpus         baseline: ApicBus::Signal of the guest
//                                   message (no routing table)
//   BM_RouteFastPath/cpus/viommu    IrqRouteTable::Fire on a route that is
//                                   cached (viommu=1: the cached vIOMMU
//                                   translation) -> ApicBus -> LAPIC accept.
//                                   Target (seed 003 issue): < 60 ns.
//   BM_RouteSlowPath/cpus/mode      invalidate + Fire every iteration, both
//                                   timed: the route is re-translated by the
//                                   vIOMMU's Remap() and re-installed.
//                                   mode 0: IrqRouteTable::Invalidate of the
//                                   cookie only (the vIOMMU's IEC still
//                                   hits); mode 1: the guest's IEC
//                                   invalidation descriptor through the
//                                   vIOMMU's queue (IQT write), which drops
//                                   the vIOMMU IEC entry and, through the IEC
//                                   listener, the route (the IRTE is re-read
//                                   from guest RAM). Target: < 500 ns.
//   BM_RouteInvalidate/k/n          Invalidate(index, mask) dropping k cached
//                                   routes in a table of n (k = 2^mask; one
//                                   call per iteration; the dropped routes
//                                   are re-cached outside the timed region
//                                   after every sweep of the table). The cost
//                                   must follow k, not n.
//   BM_HostPathToGuest/viommu/route the whole two-level path: the physical
//                                   IrqlabTestDev sends MSI vector i (32
//                                   vectors, host message from SET_IRQS) ->
//                                   host RootComplex -> host VT-d (IEC hit)
//                                   -> host ApicBus -> host LAPIC -> host
//                                   event (EventQueue::RunUntil) -> host CPU
//                                   acknowledges, runs the vfio handler,
//                                   EOIs -> trigger -> IrqRouteTable::Fire
//                                   (fast path) -> guest LAPIC accept.
//                                   route=0: the trigger does nothing (the
//                                   host half alone).
//
//   BM_PostedPath/notify            guest-owned MSI posted by the host VT-d
//                                   (see the benchmark).
//
//   build/bench/vfio_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "bench/x2apic_platform.h"
#include "devices/irqlab_testdev.h"
#include "emu/core/guest_ram.h"
#include "emu/machine/host_platform.h"
#include "emu/core/msi.h"
#include "iommu/vtd_regs.h"
#include "iommu/vtd_unit.h"
#include "pci/assigned_device.h"
#include "pci/vfio.h"

namespace irqlab {
namespace {

constexpr int kFirstVector = 0x20;
constexpr int kVectors = 256 - kFirstVector;
constexpr uint16_t kGuestRid = 0x0020;  // 00:04.0
constexpr uint16_t kHostRid = 0x0200;   // 02:00.0
constexpr uint64_t kRamSize = 4 << 20;
constexpr uint64_t kQueue = 0x10000;  // invalidation queue, 4 KiB
constexpr uint64_t kIrt = 0x100000;   // up to 65,536 * 16 bytes
const AccessOrigin kCpu = AccessOrigin::Cpu(0);

// The guest: APICs (X2ApicPlatform), optional vIOMMU, routing table with
// `routes` routes, route j on IRTE j (vIOMMU) / straight to vector
// 0x20 + j % 224 (no vIOMMU).
struct Guest : X2ApicPlatform {
  std::unique_ptr<GuestRam> ram;
  std::unique_ptr<VtdUnit> viommu;
  std::unique_ptr<IrqRouteTable> table;
  std::vector<int> gsis;
  uint32_t tail = 0;
  int target = 0;
  bool ok = false;

  Guest(int cpus, bool with_viommu, int routes = kVectors, unsigned irta_s = 7)
      : X2ApicPlatform(cpus), target(cpus / 2) {
    auto r = GuestRam::Create(kRamSize);
    if (!r.ok()) return;
    ram = std::move(*r);
    if (with_viommu) {
      VtdConfig vc;
      auto u = VtdUnit::Create(vc, bus.get(), ram.get(), &events, &tracer);
      if (!u.ok()) return;
      viommu = std::move(*u);
      for (int j = 0; j < routes; ++j) SetIrte(j, static_cast<uint8_t>(kFirstVector + j % kVectors));
      // The guest kernel's bring-up: QI, IRTA + SIRTP, global IEC, IRE.
      viommu->Write(kCpu, vtd::kIqaReg, 8, kQueue);
      viommu->Write(kCpu, vtd::kIqtReg, 8, 0);
      Command(vtd::Gcmd::kQie);
      viommu->Write(kCpu, vtd::kIrtaReg, 8, kIrt | irta_s);
      Command(vtd::Gcmd::kSirtp);
      Submit(vtd::qi::IecGlobal());
      Command(vtd::Gcmd::kIre);
      if (!viommu->interrupt_remapping_enabled()) return;
    }
    table = std::make_unique<IrqRouteTable>(bus.get(), viommu.get(), &tracer, &events);
    for (int j = 0; j < routes; ++j) gsis.push_back(table->AddRoute(Message(j), "bench"));
    ok = true;
  }
  MsiMessage Message(int j) const {
    if (viommu) return MsiMessage::Remappable(static_cast<uint16_t>(j), false, 0, kGuestRid);
    return MsiMessage::Compat(static_cast<uint32_t>(target),
                              static_cast<uint8_t>(kFirstVector + j % kVectors), kGuestRid);
  }
  void SetIrte(int j, uint8_t vector) {
    const vtd::Irte e = vtd::Irte::Remapped(
        {.vector = vector, .destination = static_cast<uint32_t>(target)});
    ram->Store<uint64_t>(kIrt + 16 * j, e.lo);
    ram->Store<uint64_t>(kIrt + 16 * j + 8, e.hi);
  }
  void Command(uint32_t bit) {
    const uint32_t status = viommu->Read(kCpu, vtd::kGstsReg, 4) & ~vtd::Gcmd::kOneShot;
    viommu->Write(kCpu, vtd::kGcmdReg, 4, status | bit);
  }
  void Submit(uint64_t qw0) {
    ram->Store<uint64_t>(kQueue + tail, qw0);
    ram->Store<uint64_t>(kQueue + tail + 8, 0);
    tail = (tail + 16) % 4096;
    viommu->Write(kCpu, vtd::kIqtReg, 8, tail);
  }
  // Takes every pending vector of the target through ISR and EOI.
  void Drain() {
    LocalApic& a = *apics[target];
    for (int v = a.PendingVector(); v >= 0; v = a.PendingVector()) {
      a.Acknowledge(v);
      a.WriteMsr(0x80B, 0);  // EOI
    }
  }
  // Fires every route once (slow path with a vIOMMU: caches them).
  void Warm() {
    for (int g : gsis) table->Fire(g);
    Drain();
  }
};

void Check(benchmark::State& state, Guest& g, int fired_in_loop) {
  if (fired_in_loop > 0 && !g.apics[g.target]->irr(kFirstVector)) {
    state.SkipWithError("interrupt not accepted");
  }
  if (g.table->stats().faulted != 0) state.SkipWithError("route faulted");
  if (g.viommu && g.viommu->stats().faults != 0) state.SkipWithError("vIOMMU fault");
  state.SetItemsProcessed(state.iterations());
}

void BM_GuestApicDirect(benchmark::State& state) {
  Guest g(static_cast<int>(state.range(0)), false);
  if (!g.ok) return state.SkipWithError("set-up failed");
  std::vector<MsiMessage> msgs;
  for (int j = 0; j < kVectors; ++j) msgs.push_back(g.Message(j));
  int i = 0;
  for (auto _ : state) {
    g.bus->Signal(msgs[i]);
    if (++i == kVectors) {
      state.PauseTiming();
      i = 0;
      g.Drain();
      state.ResumeTiming();
    }
  }
  Check(state, g, i);
}
BENCHMARK(BM_GuestApicDirect)->ArgName("cpus")->Arg(1)->Arg(8);

void BM_RouteFastPath(benchmark::State& state) {
  const bool viommu = state.range(1) != 0;
  Guest g(static_cast<int>(state.range(0)), viommu);
  if (!g.ok) return state.SkipWithError("set-up failed");
  g.Warm();
  const IrqRouteStats before = g.table->stats();
  int i = 0;
  for (auto _ : state) {
    g.table->Fire(g.gsis[i]);
    if (++i == kVectors) {
      state.PauseTiming();
      i = 0;
      g.Drain();
      state.ResumeTiming();
    }
  }
  if (g.table->stats().slow != before.slow) state.SkipWithError("slow path in the fast-path loop");
  Check(state, g, i);
}
BENCHMARK(BM_RouteFastPath)->ArgNames({"cpus", "viommu"})->Args({1, 0})->Args({1, 1})
    ->Args({8, 0})->Args({8, 1});

void BM_RouteSlowPath(benchmark::State& state) {
  const bool through_viommu_queue = state.range(1) != 0;
  Guest g(static_cast<int>(state.range(0)), true);
  if (!g.ok) return state.SkipWithError("set-up failed");
  g.Warm();
  const uint64_t slow_before = g.table->stats().slow;
  const uint64_t misses_before = g.viommu->stats().iec_misses;
  int i = 0;
  for (auto _ : state) {
    if (through_viommu_queue) {
      g.Submit(vtd::qi::IecIndex(static_cast<uint16_t>(i), 0));
    } else {
      g.table->Invalidate(false, static_cast<uint32_t>(i), 0);
    }
    g.table->Fire(g.gsis[i]);
    if (++i == kVectors) {
      state.PauseTiming();
      i = 0;
      g.Drain();
      state.ResumeTiming();
    }
  }
  if (g.table->stats().slow - slow_before != static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("not every Fire took the slow path");
  }
  const uint64_t misses = g.viommu->stats().iec_misses - misses_before;
  if (misses != (through_viommu_queue ? static_cast<uint64_t>(state.iterations()) : 0)) {
    state.SkipWithError("unexpected vIOMMU IEC misses");
  }
  state.SetLabel(through_viommu_queue ? "guest IEC descriptor + Fire" : "route Invalidate + Fire");
  Check(state, g, i);
}
BENCHMARK(BM_RouteSlowPath)->ArgNames({"cpus", "viommu_queue"})->Args({1, 0})->Args({1, 1});

void BM_RouteInvalidate(benchmark::State& state) {
  const int k = static_cast<int>(state.range(0));
  const int n = static_cast<int>(state.range(1));
  uint8_t mask = 0;
  while ((1 << mask) < k) ++mask;
  unsigned irta_s = 7;
  while ((2 << irta_s) < n) ++irta_s;
  Guest g(1, true, n, irta_s);
  if (!g.ok) return state.SkipWithError("set-up failed");
  g.Warm();
  const uint64_t dropped_before = g.table->stats().invalidated;
  uint32_t base = 0;
  for (auto _ : state) {
    g.table->Invalidate(false, base, mask);
    base += static_cast<uint32_t>(k);
    if (base >= static_cast<uint32_t>(n)) {
      // Every route was dropped: re-cache them all, untimed.
      state.PauseTiming();
      base = 0;
      g.Warm();
      state.ResumeTiming();
    }
  }
  const uint64_t dropped = g.table->stats().invalidated - dropped_before;
  if (dropped != static_cast<uint64_t>(state.iterations()) * static_cast<uint64_t>(k)) {
    state.SkipWithError("an invalidation did not drop k routes");
  }
  state.counters["dropped/op"] = benchmark::Counter(static_cast<double>(dropped),
                                                    benchmark::Counter::kAvgIterations);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RouteInvalidate)->ArgNames({"k", "n"})->Args({1, 16})->Args({1, 4096})
    ->Args({16, 4096})->Args({256, 4096})->Args({4096, 4096});

// The host and the guest, joined by vfio and the routing table.
struct TwoLevel {
  Guest guest;
  std::unique_ptr<GuestRam> device_ram;
  std::unique_ptr<HostPlatform> host;
  std::unique_ptr<IrqlabTestDev> phys;
  std::unique_ptr<VfioPciDevice> vfio;
  bool ok = false;
  static constexpr int kMsiVectors = 32;

  TwoLevel(bool viommu, bool route) : guest(1, viommu, kMsiVectors) {
    if (!guest.ok) return;
    auto r = GuestRam::Create(kRamSize);
    if (!r.ok()) return;
    device_ram = std::move(*r);
    HostConfig hc;
    auto h = HostPlatform::Create(hc, device_ram.get(), &guest.events, &guest.events,
                                  &guest.tracer);
    if (!h.ok()) return;
    host = std::move(*h);
    phys = std::make_unique<IrqlabTestDev>();
    if (!host->AddDevice(phys.get(), kHostRid).ok()) return;
    vfio = std::make_unique<VfioPciDevice>(phys.get(), &host->memory(), host.get(),
                                           &guest.tracer, &guest.events);
    std::vector<std::function<void()>> triggers;
    for (int i = 0; i < kMsiVectors; ++i) {
      if (route) {
        triggers.push_back([this, i] { guest.table->Fire(guest.gsis[i]); });
      } else {
        triggers.push_back([] {});
      }
    }
    if (!vfio->SetMsiIrqs(std::move(triggers)).ok()) return;
    ok = true;
  }
  ~TwoLevel() {
    vfio.reset();
    phys.reset();
  }
};

void BM_HostPathToGuest(benchmark::State& state) {
  const bool viommu = state.range(0) != 0;
  const bool route = state.range(1) != 0;
  TwoLevel p(viommu, route);
  if (!p.ok) return state.SkipWithError("set-up failed");
  p.guest.Warm();
  // Warm the host VT-d IEC and the routes through the real path once.
  for (int i = 0; i < TwoLevel::kMsiVectors; ++i) {
    p.phys->SignalMsi(static_cast<unsigned>(i));
    p.guest.events.RunUntil(p.guest.events.now());
  }
  p.guest.Drain();
  const uint64_t handled_before = p.host->irqs_handled();
  int i = 0;
  for (auto _ : state) {
    p.phys->SignalMsi(static_cast<unsigned>(i));
    p.guest.events.RunUntil(p.guest.events.now());
    if (++i == TwoLevel::kMsiVectors) {
      state.PauseTiming();
      i = 0;
      p.guest.Drain();
      state.ResumeTiming();
    }
  }
  if (p.host->irqs_handled() - handled_before != static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("a host interrupt was not handled");
  }
  if (!p.host->log().empty()) state.SkipWithError("host DMAR fault");
  if (route) {
    if (p.guest.table->stats().slow != (viommu ? TwoLevel::kMsiVectors : 0)) {
      state.SkipWithError("slow path in the loop");
    }
    Check(state, p.guest, i);
  } else {
    state.SetItemsProcessed(state.iterations());
  }
}
BENCHMARK(BM_HostPathToGuest)->ArgNames({"viommu", "route"})->Args({0, 0})->Args({0, 1})
    ->Args({1, 1});

// Guest-owned MSI, posted by the host VT-d (seed 000 fix (c)): the device's
// compatibility message for guest vector 0x20+i (32 vectors, each a posted
// IRTE keyed by (requester id, vector), PID of vCPU 0 = the guest target).
//   notify=0  VtdUnit::Signal only, with the descriptor's ON already set (a
//             running vCPU that has not yet processed its notification): the
//             post itself (IEC hit, PIR bit, ON test) — target < 40 ns
//   notify=1  ON clear every time: post + notification MSI -> host LAPIC ->
//             host event -> posted-interrupt processing -> guest LAPIC accept
void BM_PostedPath(benchmark::State& state) {
  const bool notify = state.range(0) != 0;
  Guest guest(1, /*viommu=*/false, /*routes=*/1);
  if (!guest.ok) return state.SkipWithError("set-up failed");
  auto r = GuestRam::Create(kRamSize);
  if (!r.ok()) return state.SkipWithError("set-up failed");
  HostConfig hc;
  auto h = HostPlatform::Create(hc, r->get(), &guest.events, &guest.events, &guest.tracer);
  if (!h.ok()) return state.SkipWithError("set-up failed");
  HostPlatform& host = **h;
  LocalApic& target = *guest.apics[guest.target];
  host.set_vcpu_interrupt_sink([&target](int, uint8_t v) {
    target.Accept(v, /*trigger_level=*/false, DeliveryMode::kFixed);
  });
  std::vector<MsiMessage> msgs;
  for (int i = 0; i < 32; ++i) {
    const uint8_t v = static_cast<uint8_t>(kFirstVector + i);
    if (!host.MapGuestVector(kHostRid, v, 0).ok()) return state.SkipWithError("map failed");
    msgs.push_back(MsiMessage::Compat(0, v, kHostRid));
  }
  for (const MsiMessage& m : msgs) host.iommu().Signal(m);  // warm the IEC
  guest.events.RunUntil(guest.events.now());
  guest.Drain();
  const uint64_t posted_before = host.iommu().stats().posted;
  int i = 0;
  for (auto _ : state) {
    host.iommu().Signal(msgs[i]);
    if (notify) guest.events.RunUntil(guest.events.now());
    if (++i == 32) {
      state.PauseTiming();
      i = 0;
      guest.Drain();
      state.ResumeTiming();
    }
  }
  if (host.iommu().stats().posted - posted_before != static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("not every interrupt was posted");
  }
  if (notify && host.iommu().stats().notifications < static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("a notification was missing");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PostedPath)->ArgNames({"notify"})->Arg(0)->Arg(1);

}  // namespace
}  // namespace irqlab
