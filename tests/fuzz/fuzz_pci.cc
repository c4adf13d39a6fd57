// fuzz_pci: a host-only PCI platform (PciTestbed: RAM, memory and port
// spaces, root complex, PciHost with mechanism #1 and ECAM) with an
// irqlab-testdev (MSI with 32 vectors and per-vector masking, MSI-X with 64
// entries in BAR1, 64-bit BAR, I/O BAR) at 00:03.0 and an edu (MSI, DMA,
// timers) at 00:04.0, after firmware resource assignment. The guest then
// does anything: configuration reads/writes of every register and size
// (directly, through 0xCF8/0xCFC and through ECAM), BAR sizing and moving
// (also onto each other), Command toggles, MSI-X table/PBA and register
// accesses through the mapped BARs, and the devices signal vectors, do DMA
// and run their timers for a bounded virtual time.
//
// Input: ops (see the switch below).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>

#include "devices/edu.h"
#include "devices/irqlab_testdev.h"
#include "emu/core/io.h"
#include "pci/pci_function.h"
#include "pci/pci_regs.h"
#include "pci/pci_testing.h"
#include "tests/fuzz/fuzz_util.h"

namespace irqlab {
namespace {

constexpr size_t kMaxEventSteps = 500;

// Where BAR `bar` of `f` is (or would be): mapped address, else programmed.
uint64_t BarBase(const PciFunction& f, int bar) {
  std::optional<uint64_t> at = f.BarMappedAt(bar);
  return at ? *at : f.BarAddress(bar);
}

// "A latched event is never stranded" (pci/msix_capability.h,
// pci/msi_capability.h): while a vector can be delivered (capability
// enabled, vector and function unmasked) its pending bit is clear, since
// whatever made it deliverable released the pending message.
void CheckNoStrandedPending(PciFunction& f) {
  if (MsixCapability* x = f.msix(); x != nullptr && x->enabled() && !x->function_masked()) {
    for (unsigned i = 0; i < x->vectors(); ++i) {
      if (!x->vector_masked(i)) FUZZ_CHECK(!x->pending(i));
    }
  }
  if (MsiCapability* m = f.msi(); m != nullptr && m->enabled()) {
    const uint32_t live = m->enabled_vectors() >= 32 ? ~0u : (1u << m->enabled_vectors()) - 1;
    FUZZ_CHECK((m->pending_bits() & ~m->mask_bits() & live) == 0);
  }
}

}  // namespace
}  // namespace irqlab

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace irqlab;
  fuzz::Reader in(data, size);
  const uint8_t cfg = in.U8();

  PciHost::Options options;
  options.firmware_enables_bus_master = cfg & 1;
  PciTestbed tb(options);
  fuzz::FormattingSink trace_sink;
  if (cfg & 0x80) tb.tracer.AddSink(&trace_sink);
  IrqlabTestDev testdev;
  Edu edu(&tb.events);
  FUZZ_CHECK(tb.host.AddFunction(3, 0, &testdev).ok());
  FUZZ_CHECK(tb.host.AddFunction(4, 0, &edu).ok());
  FUZZ_CHECK(tb.host.AssignResources().ok());
  PciFunction* fns[2] = {&testdev, &edu};
  const uint8_t devs[2] = {3, 4};
  const AccessOrigin cpu = AccessOrigin::Cpu(0);
  size_t steps = 0;

  while (!in.empty()) {
    const uint8_t op = in.U8();
    const int which = (op >> 7) & 1;
    PciFunction& f = *fns[which];
    const uint8_t dev = devs[which];
    switch (op & 0x0F) {
      case 0: {  // config write, any register of the 4 KiB space
        const uint16_t reg = in.U16() & 0xFFF;
        const unsigned sz = 1u << (in.U8() % 3);
        const uint32_t value = in.U32();
        if ((reg & 3) + sz > 4) break;  // never crosses a dword on the bus
        tb.host.ConfigWrite(0, dev, 0, reg, sz, value);
        break;
      }
      case 1: {  // config read
        const uint16_t reg = in.U16() & 0xFFF;
        const unsigned sz = 1u << (in.U8() % 3);
        if ((reg & 3) + sz > 4) break;
        FUZZ_CHECK(fuzz::FitsSize(tb.host.ConfigRead(0, dev, 0, reg, sz), sz));
        break;
      }
      case 2: {  // config write of the capability area (dense), mechanism #1
        const uint16_t reg = 0x40 + (in.U8() % 0x40);
        const unsigned sz = 1u << (in.U8() % 3);
        const uint32_t value = in.U32();
        tb.CfgWrite(dev, 0, reg, sz, value);
        break;
      }
      case 3: {  // raw port I/O on 0xCF8-0xCFF (and around)
        const uint64_t port = 0xCF4 + in.U8() % 16;
        const unsigned sz = in.Size();
        if (in.Bool()) {
          tb.io.Write(cpu, port, sz, in.U32());
        } else {
          (void)tb.io.Read(cpu, port, sz);
        }
        break;
      }
      case 4: {  // ECAM access of any bus/dev/fn/register
        const uint64_t addr = tb.host.options().ecam_base + (in.U32() & 0x0FFFFFFF);
        const unsigned sz = in.Size();
        if (in.Bool()) {
          tb.mem.Write(cpu, addr, sz, in.U32());
        } else {
          (void)tb.mem.Read(cpu, addr, sz);
        }
        break;
      }
      case 5: {  // MMIO write inside a BAR (MSI-X table/PBA, registers)
        const int bar = in.U8() % pci::kNumBars;
        const uint64_t offset = in.U16() & 0x3FFF;
        const unsigned sz = in.Size();
        const uint64_t value = in.U64();
        tb.mem.Write(cpu, BarBase(f, bar) + offset, sz, value);
        if (f.bar(bar) && f.bar(bar)->type == BarType::kIo) {
          tb.io.Write(cpu, BarBase(f, bar) + (offset & 0x1F), sz, value);
        }
        break;
      }
      case 6: {  // MMIO read inside a BAR
        const int bar = in.U8() % pci::kNumBars;
        const uint64_t offset = in.U16() & 0x3FFF;
        const unsigned sz = in.Size();
        const uint64_t v = tb.mem.Read(cpu, BarBase(f, bar) + offset, sz);
        FUZZ_CHECK(fuzz::FitsSize(v, sz));
        break;
      }
      case 7: {  // MSI-X table entry dword (dense): BAR1 + 16*entry + field
        const uint64_t offset = (in.U8() % 80) * 16 + (in.U8() & 0xC);
        tb.mem.Write(cpu, BarBase(testdev, 1) + offset, 4, in.U32());
        break;
      }
      case 8: {  // the device signals
        const unsigned n = in.U8();
        if (in.Bool()) {
          (void)f.SignalMsix(n);
        } else {
          (void)f.SignalMsi(n);
        }
        break;
      }
      case 9: {  // testdev FIRE / edu interrupt raise through the BAR
        if (which == 0) {
          tb.mem.Write(cpu, BarBase(testdev, 0) + IrqlabTestDev::kRegFire, 4, in.U8());
        } else {
          tb.mem.Write(cpu, BarBase(edu, 0) + 0x60, 4, in.U32());
        }
        break;
      }
      case 10: {  // BAR sizing, then a new address (maybe someone else's)
        const int bar = in.U8() % pci::kNumBars;
        const uint16_t reg = pci::kBar0 + 4 * bar;
        tb.host.ConfigWrite(0, dev, 0, reg, 4, 0xFFFFFFFF);
        const uint32_t mask = tb.host.ConfigRead(0, dev, 0, reg, 4);
        uint32_t addr = in.U32();
        if (in.Bool()) {  // collide with a BAR of the other function
          addr = static_cast<uint32_t>(BarBase(*fns[1 - which], in.U8() % pci::kNumBars));
        }
        tb.host.ConfigWrite(0, dev, 0, reg, 4, addr & mask);
        break;
      }
      case 11: {  // Command register
        tb.host.ConfigWrite(0, dev, 0, pci::kCommand, 2, in.U16() & 0x0507);
        break;
      }
      case 12: {  // the device's INTx level, MSI-X pending retraction
        f.SetIntxLevel(in.Bool());
        if (f.msix() != nullptr) f.msix()->ClearPending(in.U8());
        if (f.msi() != nullptr) f.msi()->ClearPending(in.U8());
        break;
      }
      case 13: {  // device DMA anywhere
        uint8_t buf[32];
        const uint64_t addr = in.U64() >> (in.U8() & 63);
        const size_t len = 1 + in.U8() % sizeof(buf);
        std::memset(buf, 0xA5, sizeof(buf));
        if (in.Bool()) {
          (void)f.DmaWrite(addr, absl::MakeSpan(buf, len));
        } else {
          (void)f.DmaRead(addr, absl::MakeSpan(buf, len));
        }
        break;
      }
      case 14: {  // edu registers (factorial, DMA) dense
        static constexpr uint64_t kRegs[] = {0x04, 0x08, 0x20, 0x60, 0x64,
                                             0x80, 0x88, 0x90, 0x98};
        const uint64_t reg = kRegs[in.U8() % 9];
        tb.mem.Write(cpu, BarBase(edu, 0) + reg, reg >= 0x80 ? 8 : 4, in.U64());
        break;
      }
      case 15: {  // time passes (edu factorial / DMA completions)
        const uint64_t dt = uint64_t{in.U16()} << (in.U8() % 24);
        if (steps < kMaxEventSteps) {
          steps += fuzz::RunBounded(tb.events, tb.events.now() + dt,
                                    kMaxEventSteps - steps);
        }
        break;
      }
    }
    CheckNoStrandedPending(testdev);
    CheckNoStrandedPending(edu);
  }
  return 0;
}
