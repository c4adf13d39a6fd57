// Benchmark fixture shared by the APIC and VT-d benchmarks: N local APICs
// (APIC id == CPU index) on one ApicBus, each in x2APIC mode and software
// enabled, with tracing off. Not a test double: the real models.
#ifndef IRQLAB_BENCH_X2APIC_PLATFORM_H_
#define IRQLAB_BENCH_X2APIC_PLATFORM_H_

#include <memory>
#include <vector>

#include "apic/apic_bus.h"
#include "apic/apic_regs.h"
#include "apic/local_apic.h"
#include "emu/core/event_queue.h"
#include "emu/core/trace.h"

namespace irqlab {

struct X2ApicPlatform {
  EventQueue events;
  Tracer tracer;  // no sinks: tracing off, as in a benchmark run
  std::unique_ptr<ApicBus> bus;
  std::vector<std::unique_ptr<LocalApic>> apics;

  explicit X2ApicPlatform(int cpus) {
    bus = std::make_unique<ApicBus>(&events, &tracer);
    for (int i = 0; i < cpus; ++i) {
      LocalApicConfig c;
      c.cpu = i;
      c.apic_id = static_cast<uint32_t>(i);
      c.bsp = i == 0;
      apics.push_back(std::make_unique<LocalApic>(c, &events, &events, &tracer,
                                                  LocalApicCallbacks{}));
      bus->Attach(apics.back().get());
      LocalApic& a = *apics.back();
      (void)a.WriteApicBase(a.apic_base() | apic::kApicBaseExtd);  // x2APIC
      a.WriteMsr(0x80F, 0x1FF);  // SVR: software enable
    }
  }
};

}  // namespace irqlab

#endif  // IRQLAB_BENCH_X2APIC_PLATFORM_H_
