// fuzz_wcn6855 / fuzz_wcn6855_fw: the synthetic WCN6855 on a host-only PCI
// platform (PciTestbed), driven by a hostile driver: BAR0 accesses of any
// offset and size (control block, the PCI window with the interrupt-source
// MSI pairs, unmapped space), doorbells with any command and argument,
// configuration writes (Command, the MSI capability), and the EventQueue run
// for a bounded virtual time so the firmware runs and fires.
//
// fuzz_wcn6855_fw (built from this file with IRQLAB_FUZZ_FW_FROM_INPUT)
// takes the firmware ROM image itself from the input: a 16-bit length, the
// image bytes, then the same ops. A hostile or broken image must be
// contained by FirmwareCpu (crash/hang states), never reach the host. The
// run budget is small (so a spinning image costs little) and also fuzzed.
//
// Unicorn leaks a few bytes per engine (see emu/cpu/fw_cpu.cc); the weak LSan
// suppression in fw_cpu.cc covers these programs, so leak detection stays
// on.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "devices/wcn6855.h"
#include "devices/wcn6855_regs.h"
#include "emu/core/io.h"
#include "pci/pci_regs.h"
#include "pci/pci_testing.h"
#include "tests/fuzz/fuzz_util.h"

namespace irqlab {
namespace {

constexpr size_t kMaxEventSteps = 64;  // firmware runs are the costly part

}  // namespace
}  // namespace irqlab

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace irqlab;
  fuzz::Reader in(data, size);
  const uint8_t cfg = in.U8();

  PciHost::Options host_options;
  host_options.firmware_enables_bus_master = !(cfg & 1);
  PciTestbed tb(host_options);
  fuzz::FormattingSink trace_sink;
  if (cfg & 0x80) tb.tracer.AddSink(&trace_sink);

  Wcn6855::Options options;
  options.doorbell_latency = 1 + (cfg & 0x0E) * 100;
#ifdef IRQLAB_FUZZ_FW_FROM_INPUT
  const size_t image_len = in.U16();
  absl::Span<const uint8_t> image = in.Bytes(image_len);
  options.firmware = image;
  options.run_budget = 1 + in.U16() % 20000;
#else
  options.run_budget = (cfg & 0x10) ? 200 : 1'000'000;
#endif
  absl::StatusOr<std::unique_ptr<Wcn6855>> created = Wcn6855::Create(&tb.events, options);
#ifdef IRQLAB_FUZZ_FW_FROM_INPUT
  if (!created.ok()) return 0;  // an unusable image is refused, fine
#else
  FUZZ_CHECK(created.ok());
#endif
  Wcn6855& wcn = **created;
  FUZZ_CHECK(tb.host.AddFunction(5, 0, &wcn).ok());
  FUZZ_CHECK(tb.host.AssignResources().ok());
  // The driver's usual start: bus master, MSI enabled at the guest pair.
  if (!(cfg & 0x20)) {
    tb.host.ConfigWrite(0, 5, 0, pci::kCommand, 2, 0x0006);
    tb.host.ConfigWrite(0, 5, 0, Wcn6855::kMsiCapOffset + 4, 4, 0xFEE00000);
    tb.host.ConfigWrite(0, 5, 0, Wcn6855::kMsiCapOffset + 8, 2, 0x0020);
    tb.host.ConfigWrite(0, 5, 0, Wcn6855::kMsiCapOffset + 2, 2, 0x0001);
  }
  const AccessOrigin cpu = AccessOrigin::Cpu(0);
  size_t steps = 0;

  while (!in.empty()) {
    const uint8_t op = in.U8();
    switch (op % 10) {
      case 0: {  // BAR0 write anywhere
        const uint64_t offset = in.U32() % Wcn6855::kBar0Size;
        const unsigned sz = in.Size();
        const uint64_t value = in.U64();
        if (offset + sz <= Wcn6855::kBar0Size) wcn.Write(cpu, offset, sz, value);
        break;
      }
      case 1: {  // BAR0 read anywhere
        const uint64_t offset = in.U32() % Wcn6855::kBar0Size;
        const unsigned sz = in.Size();
        if (offset + sz > Wcn6855::kBar0Size) break;
        FUZZ_CHECK(fuzz::FitsSize(wcn.Read(cpu, offset, sz), sz));
        break;
      }
      case 2: {  // control block dword (dense)
        wcn.Write(cpu, (in.U8() & 0xFF) * 4, 4, in.U32());
        break;
      }
      case 3: {  // an interrupt source's MSI pair (the ath11k driver's copy)
        const unsigned src = in.U8() % Wcn6855::kNumSources;
        const uint32_t off = Wcn6855::kSourceOffsets[src];
        const uint8_t f = in.U8();
        const uint32_t addr = (f & 1) ? in.U32() : (0xFEE00000u | (in.U16() << 4));
        wcn.Write(cpu, off + WCN_SRC_ADDR_LO, 4, addr);
        wcn.Write(cpu, off + WCN_SRC_ADDR_HI, 4, (f & 2) ? in.U32() : 0);
        wcn.Write(cpu, off + WCN_SRC_DATA, 4, in.U16());
        break;
      }
      case 4: {  // a doorbell: argument, then the command
        const uint8_t c = in.U8();
        wcn.Write(cpu, WCN_REG_CMD_ARG, 4, (c & 0x80) ? in.U32() : in.U8());
        wcn.Write(cpu, WCN_REG_DOORBELL, 4, (c & 0x40) ? in.U32() : 1 + c % 6);
        break;
      }
      case 5: {  // time passes: the firmware runs
        const uint64_t dt = uint64_t{in.U16()} << (in.U8() % 20);
        if (steps < kMaxEventSteps) {
          steps += fuzz::RunBounded(tb.events, tb.events.now() + dt,
                                    kMaxEventSteps - steps);
        }
        break;
      }
      case 6: {  // config space write (Command, MSI capability, anything)
        const uint16_t reg = (in.Bool() ? Wcn6855::kMsiCapOffset : 0) + (in.U8() & 0x3C);
        tb.host.ConfigWrite(0, 5, 0, reg, 4, in.U32());
        break;
      }
      case 7: {  // the driver acknowledges interrupts (IRQ_STATUS RW1C)
        wcn.Write(cpu, WCN_REG_IRQ_STATUS, 4, in.U32());
        break;
      }
      case 8: {  // through the memory bus: BAR0 mapped (or moved) address
        std::optional<uint64_t> at = wcn.BarMappedAt(0);
        const uint64_t offset = in.U32() % Wcn6855::kBar0Size;
        const unsigned sz = in.Size();
        const uint64_t value = in.U64();
        if (at) tb.mem.Write(cpu, *at + offset, sz, value);
        break;
      }
      case 9: {  // window bytes (RAM-like storage, any alignment)
        const uint64_t offset = WCN_WINDOW_BASE + in.U32() % WCN_WINDOW_SIZE;
        const unsigned sz = in.Size();
        wcn.Write(cpu, offset, sz, in.U64());
        break;
      }
    }
  }
  (void)wcn.firmware_hung();
  (void)wcn.firmware_crashed();
  return 0;
}
