// fuzz_lapic: two local APICs on an APIC bus driven by a guest that can do
// anything: xAPIC page accesses of every offset/size through the bus's MMIO
// dispatch, every x2APIC MSR plus IA32_APIC_BASE / IA32_TSC_DEADLINE,
// interrupt messages (Accept, MSIs through the bus, LINT pins), the vCPU's
// INTA / NMI handshake and the virtual clock (timer) for a bounded time.
//
// Input: one config byte, then ops (see the switch below).
#include <cstddef>
#include <cstdint>
#include <memory>

#include "apic/apic_bus.h"
#include "apic/apic_regs.h"
#include "apic/local_apic.h"
#include "emu/core/event_queue.h"
#include "emu/core/msi.h"
#include "emu/core/trace.h"
#include "tests/fuzz/fuzz_util.h"

namespace irqlab {
namespace {

constexpr int kCpus = 2;
constexpr size_t kMaxEventSteps = 2000;  // per input, over all run ops

uint32_t PickMsr(fuzz::Reader& in) {
  const uint8_t sel = in.U8();
  const uint8_t low = in.U8();
  switch (sel % 8) {
    case 0: return apic::kMsrApicBase;
    case 1: return apic::kMsrTscDeadline;
    case 2: return in.U32();  // anything, mostly not an APIC MSR (#GP)
    default: return apic::kMsrX2apicFirst + low;
  }
}

void CheckApic(LocalApic& apic) {
  const int v = apic.PendingVector();
  FUZZ_CHECK(v >= -1 && v <= 255);
  if (v >= 0) FUZZ_CHECK(apic.irr(v));
  FUZZ_CHECK(apic.ppr() <= 0xFF);
  // The interrupt accounting's IRR bookkeeping (emu/core/irq_ledger.h): every
  // IRR bit set left through INTA or a reset, or is still pending.
  const LocalApic::IrrCounts& c = apic.irr_counts();
  FUZZ_CHECK(c.irr_set == c.acknowledged + c.irr_cleared_by_reset +
                              static_cast<uint64_t>(apic.irr_popcount()));
}

}  // namespace
}  // namespace irqlab

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace irqlab;
  fuzz::Reader in(data, size);
  const uint8_t cfg = in.U8();

  EventQueue events;
  Tracer tracer;
  fuzz::FormattingSink sink;
  if (cfg & 0x80) tracer.AddSink(&sink);
  ApicBus bus(&events, &tracer,
              ApicBusConfig{.extended_destination_id = (cfg & 0x40) != 0});
  uint64_t kicks = 0, eois = 0, inits = 0, sipis = 0;
  std::unique_ptr<LocalApic> apics[kCpus];
  for (int i = 0; i < kCpus; ++i) {
    LocalApicConfig c;
    c.cpu = i;
    c.apic_id = i;
    c.bsp = i == 0;
    c.x2apic = !(cfg & 1);
    c.tsc_deadline = !(cfg & 2);
    c.directed_eoi = !(cfg & 4);
    c.cmci = cfg & 8;
    c.phys_addr_bits = (cfg & 0x10) ? 46 : 36;
    LocalApicCallbacks cb;
    cb.kick = [&] { ++kicks; };
    cb.eoi_broadcast = [&](uint8_t) { ++eois; };
    cb.init = [&] { ++inits; };
    cb.startup = [&](uint8_t) { ++sipis; };
    apics[i] = std::make_unique<LocalApic>(c, &events, &events, &tracer, cb);
    bus.Attach(apics[i].get());
  }

  size_t steps = 0;
  while (!in.empty()) {
    const uint8_t op = in.U8();
    const int cpu = op >> 7;
    LocalApic& apic = *apics[cpu];
    switch (op & 0x0F) {
      case 0: {  // xAPIC page write through the bus
        const uint64_t base = apic.apic_base() & ~uint64_t{0xFFF};
        const uint64_t offset = in.U16() & 0xFFF;
        const unsigned sz = in.Size();
        const uint64_t value = in.U64();
        bus.MmioWrite(cpu, base + offset, sz, value);
        break;
      }
      case 1: {  // xAPIC page read
        const uint64_t base = apic.apic_base() & ~uint64_t{0xFFF};
        const uint64_t offset = in.U16() & 0xFFF;
        const unsigned sz = in.Size();
        std::optional<uint64_t> v = bus.MmioRead(cpu, base + offset, sz);
        if (v) FUZZ_CHECK(fuzz::FitsSize(*v, sz));
        break;
      }
      case 2: {  // dword write of a register (denser than case 0)
        const uint64_t base = apic.apic_base() & ~uint64_t{0xFFF};
        bus.MmioWrite(cpu, base + (in.U8() << 4), 4, in.U32());
        break;
      }
      case 3: {
        const uint32_t msr = PickMsr(in);
        const uint64_t value = in.U64();
        const bool ok = apic.WriteMsr(msr, value);
        if (!LocalApic::HandlesMsr(msr)) FUZZ_CHECK(!ok);
        break;
      }
      case 4: {
        const uint32_t msr = PickMsr(in);
        std::optional<uint64_t> v = apic.ReadMsr(msr);
        if (!LocalApic::HandlesMsr(msr)) FUZZ_CHECK(!v.has_value());
        break;
      }
      case 5: {  // an x2APIC register write with a 32-bit value (dense)
        apic.WriteMsr(apic::kMsrX2apicFirst + in.U8(), in.U32());
        break;
      }
      case 6: {
        const uint8_t vector = in.U8();
        const uint8_t flags = in.U8();
        const DeliveryMode mode = static_cast<DeliveryMode>(flags & 7);
        apic.Accept(vector, flags & 8, mode, in.U16());
        // Nothing vanishes: a legal fixed / lowest-priority vector accepted
        // by an enabled APIC is pending (new or coalesced) right after.
        if ((mode == DeliveryMode::kFixed || mode == DeliveryMode::kLowestPriority) &&
            vector >= 16 && apic.globally_enabled() && apic.software_enabled()) {
          FUZZ_CHECK(apic.irr(vector));
        }
        break;
      }
      case 7: {  // an MSI on the bus, in or near the window
        const uint32_t low = in.U32();
        const uint32_t data32 = in.U32();
        const uint64_t address = (low & 0x80000000)
                                     ? MsiMessage::kWindowBase | (low & 0xFFFFF)
                                     : uint64_t{low} | (uint64_t{in.U8()} << 32);
        bus.Signal(MsiMessage(address, data32, in.U16()));
        break;
      }
      case 8: {  // a remapped 32-bit destination
        const uint32_t low = in.U32();
        bus.SignalX2Apic(MsiMessage(MsiMessage::kWindowBase | (low & 0xFFFFF),
                                    in.U32(), 0),
                         in.U32());
        break;
      }
      case 9: apic.SetLint(in.U8() & 1, in.Bool()); break;
      case 10: {  // the vCPU takes the highest pending interrupt
        const int v = apic.PendingVector();
        if (v >= 0) apic.Acknowledge(v);
        apic.TakeNmi();
        break;
      }
      case 11: {  // the vCPU acknowledges some vector (maybe not pending)
        apic.Acknowledge(in.U8());
        break;
      }
      case 12: {  // time passes
        const uint64_t dt = uint64_t{in.U16()} << (in.U8() & 15);
        if (steps < kMaxEventSteps) {
          steps += fuzz::RunBounded(events, events.now() + dt,
                                    kMaxEventSteps - steps);
        }
        break;
      }
      case 13: apic.InitReset(); break;
      case 14: {  // EOI through whichever interface is live
        if (apic.x2apic_mode()) {
          apic.WriteMsr(apic::kMsrX2apicEoi, 0);
        } else {
          bus.MmioWrite(cpu, (apic.apic_base() & ~uint64_t{0xFFF}) + 0xB0, 4, 0);
        }
        break;
      }
      case 15: {  // IA32_APIC_BASE through the Status API
        (void)apic.WriteApicBase(in.U64());
        break;
      }
    }
    CheckApic(apic);
  }
  for (auto& a : apics) CheckApic(*a);
  return 0;
}
