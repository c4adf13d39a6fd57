// Test helpers for the PCI layer (header-only, no gtest dependency): a
// recording MsiSink, a recording IrqLineTarget, and PciTestbed — a complete
// host-only PCI platform (RAM, memory and port AddressSpaces, EventQueue as
// the clock, tracer with a recorder, RootComplex, PciHost with config ports
// and ECAM mapped) with helpers that issue configuration cycles the way a
// guest does (mechanism #1 port I/O, or ECAM MMIO).
//
// Example:
//
//   PciTestbed tb;
//   Edu edu(&tb.events);
//   ASSERT_TRUE(tb.host.AddFunction(3, 0, &edu).ok());
//   ASSERT_TRUE(tb.host.AssignResources().ok());
//   tb.CfgWrite(3, 0, pci::kCommand, 2, 0x0006);     // memory + bus master
//   tb.mem.Write(AccessOrigin::Cpu(0), edu.BarAddress(0) + 0x60, 4, 1);
//   EXPECT_EQ(tb.msis.messages.size(), 1u);
#ifndef IRQLAB_PCI_PCI_TESTING_H_
#define IRQLAB_PCI_PCI_TESTING_H_

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "emu/core/address_space.h"
#include "emu/core/event_queue.h"
#include "emu/core/guest_ram.h"
#include "emu/core/irq_line.h"
#include "emu/core/msi.h"
#include "emu/core/msi_sink.h"
#include "emu/core/trace.h"
#include "pci/pci_host.h"
#include "pci/pci_regs.h"
#include "pci/root_complex.h"

namespace irqlab {

class RecordingMsiSink : public MsiSink {
 public:
  MsiOutcome Signal(const MsiMessage& message) override {
    messages.push_back(message);
    return MsiOutcome::kAccepted;
  }
  std::vector<MsiMessage> messages;
};

class RecordingIrqTarget : public IrqLineTarget {
 public:
  void SetLevel(int pin, bool high) override {
    levels[pin] = high;
    history.emplace_back(pin, high);
  }
  bool level(int pin) const {
    auto it = levels.find(pin);
    return it != levels.end() && it->second;
  }
  std::map<int, bool> levels;
  std::vector<std::pair<int, bool>> history;
};

struct PciTestbed {
  static constexpr uint64_t kRamSize = 16 << 20;

  explicit PciTestbed(const PciHost::Options& options = PciHost::Options())
      : ram(std::move(GuestRam::Create(kRamSize)).value()),
        mem("mem", AddressSpace::kPhysicalSpaceLimit, trace::MMIO_UNMAPPED,
            &tracer, &events),
        io("io", AddressSpace::kPortSpaceLimit, trace::PORT_UNMAPPED, &tracer,
           &events),
        root(ram.get(), &msis, &tracer, &events),
        host(PciHost::Platform{&mem, &io, &root, &intx, &tracer, &events},
             options) {
    tracer.AddSink(&recorder);
    (void)host.MapConfigAccess();
  }

  // Mechanism #1: CONFIG_ADDRESS then CONFIG_DATA + (reg & 3).
  uint32_t CfgRead(uint8_t dev, uint8_t fn, uint16_t reg, unsigned size,
                   uint8_t bus = 0) {
    io.Write(AccessOrigin::Cpu(0), pci::kConfigAddressPort, 4, Cf8(bus, dev, fn, reg));
    return static_cast<uint32_t>(
        io.Read(AccessOrigin::Cpu(0), pci::kConfigDataPort + (reg & 3), size));
  }
  void CfgWrite(uint8_t dev, uint8_t fn, uint16_t reg, unsigned size,
                uint32_t value, uint8_t bus = 0) {
    io.Write(AccessOrigin::Cpu(0), pci::kConfigAddressPort, 4, Cf8(bus, dev, fn, reg));
    io.Write(AccessOrigin::Cpu(0), pci::kConfigDataPort + (reg & 3), size, value);
  }
  static uint32_t Cf8(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t reg) {
    return pci::kConfigAddressEnable | uint32_t{bus} << 16 |
           uint32_t{dev & 0x1Fu} << 11 | uint32_t{fn & 7u} << 8 | (reg & 0xFC);
  }
  // ECAM address of a register.
  uint64_t EcamAddress(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t reg) const {
    return host.options().ecam_base | uint64_t{bus} << 20 | uint64_t{dev} << 15 |
           uint64_t{fn} << 12 | reg;
  }
  // Events of one stage recorded so far.
  std::vector<TraceEvent> Events(trace::Stage stage) const {
    std::vector<TraceEvent> out;
    for (const TraceEvent& e : recorder.events()) {
      if (e.stage() == stage) out.push_back(e);
    }
    return out;
  }

  // Declaration order = construction order; the host (and the functions the
  // tests declare after the testbed) go before the spaces they map into.
  Tracer tracer;
  TraceRecorder recorder;
  EventQueue events;
  std::unique_ptr<GuestRam> ram;
  AddressSpace mem;
  AddressSpace io;
  RecordingMsiSink msis;
  RecordingIrqTarget intx;
  RootComplex root;
  PciHost host;
};

}  // namespace irqlab

#endif  // IRQLAB_PCI_PCI_TESTING_H_
