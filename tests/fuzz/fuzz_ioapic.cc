// fuzz_ioapic: an I/O APIC driven by a hostile guest and hostile wires:
// IOREGSEL/IOWIN/EOI accesses of any offset and size, indirect register
// sequences, pin level changes (also of pins that do not exist), EOI
// broadcasts, route refreshes and resets.
//
// Input: one config byte, then ops (see the switch below).
#include <cstddef>
#include <cstdint>
#include <memory>

#include "emu/core/clock.h"
#include "emu/core/msi.h"
#include "emu/core/msi_sink.h"
#include "emu/core/trace.h"
#include "ioapic/ioapic.h"
#include "ioapic/ioapic_regs.h"
#include "tests/fuzz/fuzz_util.h"

namespace irqlab {
namespace {

// Counts what the I/O APIC sends; every message must carry its requester id
// and, for a compatibility RTE, be an interrupt-window write.
class CheckingSink : public MsiSink {
 public:
  explicit CheckingSink(uint16_t rid) : rid_(rid) {}
  MsiOutcome Signal(const MsiMessage& m) override {
    FUZZ_CHECK(m.requester_id == rid_);
    FUZZ_CHECK(m.InMsiWindow());
    ++count_;
    return MsiOutcome::kAccepted;
  }
  uint64_t count() const { return count_; }

 private:
  uint16_t rid_;
  uint64_t count_ = 0;
};

}  // namespace
}  // namespace irqlab

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace irqlab;
  fuzz::Reader in(data, size);
  const uint8_t cfg = in.U8();

  ManualClock clock;
  Tracer tracer;
  fuzz::FormattingSink trace_sink;
  if (cfg & 0x80) tracer.AddSink(&trace_sink);
  IoApicConfig config;
  config.version = (cfg & 1) ? ioapic::kVersion11 : ioapic::kVersion20;
  config.route_update_order = (cfg & 2) ? RouteUpdateOrder::kStaleBeforeService
                                        : RouteUpdateOrder::kUpdateBeforeService;
  config.id = (cfg >> 2) & 0xF;
  CheckingSink sink(config.requester_id);
  absl::StatusOr<std::unique_ptr<IoApic>> created =
      IoApic::Create(config, (cfg & 0x40) ? nullptr : &sink, &tracer, &clock);
  FUZZ_CHECK(created.ok());
  IoApic& io = **created;
  const AccessOrigin cpu = AccessOrigin::Cpu(0);

  while (!in.empty()) {
    const uint8_t op = in.U8();
    switch (op % 10) {
      case 0: {  // any MMIO write
        const uint64_t offset = in.U16() % ioapic::kMmioSize;
        const unsigned sz = in.Size();
        if (offset + sz > ioapic::kMmioSize) break;  // the bus never does this
        io.Write(cpu, offset, sz, in.U64());
        break;
      }
      case 1: {  // any MMIO read
        const uint64_t offset = in.U16() % ioapic::kMmioSize;
        const unsigned sz = in.Size();
        if (offset + sz > ioapic::kMmioSize) break;
        FUZZ_CHECK(fuzz::FitsSize(io.Read(cpu, offset, sz), sz));
        break;
      }
      case 2: {  // indirect register write: IOREGSEL, then IOWIN
        io.Write(cpu, ioapic::kIoRegSel, 4, in.U8());
        io.Write(cpu, ioapic::kIoWin, 4, in.U32());
        break;
      }
      case 3: {  // indirect register read
        io.Write(cpu, ioapic::kIoRegSel, 1, in.U8());
        FUZZ_CHECK(fuzz::FitsSize(io.Read(cpu, ioapic::kIoWin, 4), 4));
        break;
      }
      case 4: {  // an RTE written the way Linux does: high dword, then low
        const int pin = in.U8() % ioapic::kNumPins;
        io.Write(cpu, ioapic::kIoRegSel, 4, ioapic::kIndexRedirBase + 2 * pin + 1);
        io.Write(cpu, ioapic::kIoWin, 4, in.U32());
        io.Write(cpu, ioapic::kIoRegSel, 4, ioapic::kIndexRedirBase + 2 * pin);
        io.Write(cpu, ioapic::kIoWin, 4, in.U32());
        break;
      }
      case 5: {  // a wire changes level (pins beyond 23 must be ignored)
        const uint8_t b = in.U8();
        io.SetLevel(static_cast<int8_t>(b & 0xBF), b & 0x40);
        break;
      }
      case 6: io.EndOfInterrupt(in.U8()); break;
      case 7: io.Write(cpu, ioapic::kEoi, 4, in.U32()); break;
      case 8: io.RefreshRoutes(); break;
      case 9:
        if (in.U8() == 0x5A) io.Reset();
        clock.Advance(in.U8());
        break;
    }
    // No lost level interrupt: an unmasked level entry whose pin is
    // asserted has been delivered and waits for its EOI (Remote IRR).
    for (int pin = 0; pin < ioapic::kNumPins; ++pin) {
      const ioapic::RedirectionEntry rte{io.ReadRte(pin)};
      if (rte.effective_level() && !rte.masked() && io.asserted(pin)) {
        FUZZ_CHECK(io.remote_irr(pin));
      }
    }
  }
  for (int pin = 0; pin < ioapic::kNumPins; ++pin) {
    (void)io.ReadRte(pin);
    (void)io.RteMessage(pin);
    FUZZ_CHECK(io.route(pin).generation <= io.route_generation());
  }
  if (!(cfg & 0x40)) FUZZ_CHECK(sink.count() == io.delivery_count());
  return 0;
}
