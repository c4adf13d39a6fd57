// Tests of ioapic/ioapic.h: the 82093AA-style I/O APIC and its split-irqchip
// MSI route cache. Each test names the spec rule it checks:
//   [82093AA]  Intel 82093AA I/O APIC datasheet, section 3 (registers).
//   [PCH]      Intel ICH/PCH datasheets, "APIC direct registers" (EOIR).
//   [SDM]      Intel SDM vol. 3, chapter 11 (11.11: MSI address/data).
//   [VT-d]     Intel VT-d spec, 5.1.5.1 (remappable-format RTEs).
//   seed 003   ARCHITECTURE.md "The seed stories", the QEMU RTE-update ordering bug.
#include "ioapic/ioapic.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "emu/core/clock.h"
#include "emu/core/msi.h"
#include "emu/core/msi_sink.h"
#include "emu/core/trace.h"
#include "gtest/gtest.h"
#include "ioapic/ioapic_regs.h"

namespace irqlab {
namespace {

using ioapic::RedirectionEntry;

constexpr uint64_t kLevel = RedirectionEntry::kTriggerLevel;
constexpr uint64_t kMasked = RedirectionEntry::kMask;
constexpr uint64_t kActiveLow = RedirectionEntry::kPolarityLow;
constexpr uint64_t kLogical = RedirectionEntry::kDestModeLogical;
constexpr uint64_t kRemoteIrr = RedirectionEntry::kRemoteIrr;
constexpr uint64_t kDelivs = RedirectionEntry::kDeliveryStatus;
constexpr uint16_t kRid = ioapic::kDefaultRequesterId;

constexpr uint64_t Dest(uint8_t apic_id) { return uint64_t{apic_id} << 56; }
constexpr uint64_t Mode(DeliveryMode mode) {
  return uint64_t{static_cast<uint8_t>(mode)} << 8;
}

const AccessOrigin kCpu0 = AccessOrigin::Cpu(0);

class RecordingSink : public MsiSink {
 public:
  MsiOutcome Signal(const MsiMessage& message) override {
    messages.push_back(message);
    return MsiOutcome::kAccepted;
  }
  std::vector<MsiMessage> messages;
};

// An I/O APIC wired to a recording sink, a trace recorder and a manual
// clock, with guest-style register helpers (IOREGSEL then IOWIN, 32-bit).
class Harness {
 public:
  explicit Harness(IoApicConfig config = {}) {
    tracer_.AddSink(&trace);
    auto created = IoApic::Create(config, &sink, &tracer_, &clock);
    if (!created.ok()) {
      ADD_FAILURE() << created.status();
      config = IoApicConfig{};
      created = IoApic::Create(config, &sink, &tracer_, &clock);
    }
    ioapic = std::move(created).value();
  }

  void WriteIndex(uint8_t index, uint32_t value) {
    ioapic->Write(kCpu0, ioapic::kIoRegSel, 4, index);
    ioapic->Write(kCpu0, ioapic::kIoWin, 4, value);
  }
  uint32_t ReadIndex(uint8_t index) {
    ioapic->Write(kCpu0, ioapic::kIoRegSel, 4, index);
    return static_cast<uint32_t>(ioapic->Read(kCpu0, ioapic::kIoWin, 4));
  }
  static uint8_t LowIndex(int pin) { return 0x10 + 2 * pin; }
  static uint8_t HighIndex(int pin) { return 0x11 + 2 * pin; }
  void WriteRteLow(int pin, uint32_t value) { WriteIndex(LowIndex(pin), value); }
  void WriteRteHigh(int pin, uint32_t value) {
    WriteIndex(HighIndex(pin), value);
  }
  // The order Linux's ioapic_write_entry() uses: high dword, then low (the
  // low dword holds the mask, so the entry is complete when it unmasks).
  void ProgramRte(int pin, uint64_t rte) {
    WriteRteHigh(pin, static_cast<uint32_t>(rte >> 32));
    WriteRteLow(pin, static_cast<uint32_t>(rte));
  }
  uint64_t ReadRteMmio(int pin) {
    return uint64_t{ReadIndex(HighIndex(pin))} << 32 | ReadIndex(LowIndex(pin));
  }
  void WriteEoiRegister(uint32_t vector) {
    ioapic->Write(kCpu0, ioapic::kEoi, 4, vector);
  }
  std::vector<TraceEvent> EventsOf(Stage stage) const {
    std::vector<TraceEvent> out;
    for (const TraceEvent& e : trace.events()) {
      if (e.stage() == stage) out.push_back(e);
    }
    return out;
  }

  RecordingSink sink;
  TraceRecorder trace;
  ManualClock clock;
  std::unique_ptr<IoApic> ioapic;

 private:
  Tracer tracer_;
};

IoApicConfig WithOrder(RouteUpdateOrder order) {
  IoApicConfig config;
  config.route_update_order = order;
  return config;
}

// ---------------------------------------------------------------------------
// Configuration.

// A scenario can only ask for a modelled part: version 0x11 or 0x20, a
// 4-bit ID ([82093AA] 3.2.1), a 4 KiB-aligned 32-bit window.
TEST(IoApicTest, CreateRejectsInvalidConfigNamingTheField) {
  RecordingSink sink;
  IoApicConfig config;
  config.version = 0x12;
  auto r = IoApic::Create(config, &sink);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(r.status().message()).find("IoApicConfig.version"),
            std::string::npos);

  config = {};
  config.id = 16;
  r = IoApic::Create(config, &sink);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("IoApicConfig.id"),
            std::string::npos);

  config = {};
  config.base = 0xFEC00010;
  r = IoApic::Create(config, &sink);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("IoApicConfig.base"),
            std::string::npos);

  config = {};
  config.base = 0x1'0000'0000;
  EXPECT_FALSE(IoApic::Create(config, &sink).ok());

  config = {};
  config.route_update_order = static_cast<RouteUpdateOrder>(7);
  EXPECT_FALSE(IoApic::Create(config, &sink).ok());

  EXPECT_TRUE(IoApic::Create(IoApicConfig{}, nullptr).ok());
}

// ---------------------------------------------------------------------------
// ID, VER, ARB.

// [82093AA] 3.2.1: IOAPICID bits 27:24 are the R/W ID; bits 31:28 and 23:0
// are reserved (read 0).
TEST(IoApicTest, IdRegisterOnlyBits27To24AreWritable) {
  IoApicConfig config;
  config.id = 3;
  Harness h(config);
  EXPECT_EQ(h.ReadIndex(ioapic::kIndexId), 0x03000000u);
  h.WriteIndex(ioapic::kIndexId, 0xFFFFFFFF);
  EXPECT_EQ(h.ReadIndex(ioapic::kIndexId), 0x0F000000u);
  EXPECT_EQ(h.ioapic->id(), 0xF);
  h.WriteIndex(ioapic::kIndexId, 0x05ABCDEF);
  EXPECT_EQ(h.ReadIndex(ioapic::kIndexId), 0x05000000u);
  // Reset restores the configured ID.
  h.ioapic->Reset();
  EXPECT_EQ(h.ReadIndex(ioapic::kIndexId), 0x03000000u);
}

// [82093AA] 3.2.2: IOAPICVER is read-only: version in 7:0, maximum
// redirection entry (23 for 24 pins) in 23:16.
TEST(IoApicTest, VersionRegisterIsReadOnly) {
  Harness h;
  EXPECT_EQ(h.ReadIndex(ioapic::kIndexVer), 0x00170020u);
  h.WriteIndex(ioapic::kIndexVer, 0xFFFFFFFF);
  EXPECT_EQ(h.ReadIndex(ioapic::kIndexVer), 0x00170020u);

  IoApicConfig v11;
  v11.version = ioapic::kVersion11;
  Harness old(v11);
  EXPECT_EQ(old.ReadIndex(ioapic::kIndexVer), 0x00170011u);
}

// [82093AA] 3.2.3: IOAPICARB holds the 4-bit arbitration ID in 27:24 and is
// read-only; we model it as mirroring the ID (the APIC bus is not modelled).
TEST(IoApicTest, ArbitrationRegisterMirrorsIdAndIsReadOnly) {
  Harness h;
  h.WriteIndex(ioapic::kIndexId, 0x0A000000);
  EXPECT_EQ(h.ReadIndex(ioapic::kIndexArb), 0x0A000000u);
  h.WriteIndex(ioapic::kIndexArb, 0x01000000);
  EXPECT_EQ(h.ReadIndex(ioapic::kIndexArb), 0x0A000000u);
  EXPECT_EQ(h.ReadIndex(ioapic::kIndexId), 0x0A000000u);
}

// Indices other than 00h-02h and 10h-3Fh select nothing: they read 0 and
// ignore writes (no side effect on any real register).
TEST(IoApicTest, UnknownIndexReadsZeroAndIgnoresWrites) {
  Harness h;
  for (int index : {0x03, 0x0F, 0x40, 0x80, 0xFF}) {
    h.WriteIndex(index, 0xFFFFFFFF);
    EXPECT_EQ(h.ReadIndex(index), 0u) << "index " << index;
  }
  EXPECT_EQ(h.ReadIndex(ioapic::kIndexId), 0u);
  for (int pin = 0; pin < ioapic::kNumPins; ++pin) {
    EXPECT_EQ(h.ioapic->ReadRte(pin), kMasked);
  }
}

// ---------------------------------------------------------------------------
// Access sizes.

// [PCH] IND is an 8-bit register (a byte write is a complete index write;
// a dword write keeps bits 7:0, bits 31:8 reserved read 0); DAT (IOWIN) "can
// only be accessed in DW quantities". What we model: IOREGSEL takes 1- or
// 4-byte accesses at +0x00; everything else is no register: all-ones reads,
// ignored writes.
TEST(IoApicTest, AccessSizeRules) {
  Harness h;
  IoApic& io = *h.ioapic;
  io.Write(kCpu0, 0x00, 1, 0x01);  // byte write selects VER
  EXPECT_EQ(io.Read(kCpu0, 0x00, 1), 0x01u);
  EXPECT_EQ(io.Read(kCpu0, 0x10, 4), 0x00170020u);
  io.Write(kCpu0, 0x00, 4, 0xFFFFFF10);  // bits 31:8 dropped: index 0x10
  EXPECT_EQ(io.Read(kCpu0, 0x00, 4), 0x10u);
  EXPECT_EQ(io.io_regsel(), 0x10);

  // Word / qword IOREGSEL, bytes inside IOREGSEL: nothing there.
  io.Write(kCpu0, 0x00, 2, 0x0001);
  io.Write(kCpu0, 0x00, 8, 0x0001);
  io.Write(kCpu0, 0x01, 1, 0x01);
  EXPECT_EQ(io.io_regsel(), 0x10);
  EXPECT_EQ(io.Read(kCpu0, 0x00, 2), 0xFFFFu);
  EXPECT_EQ(io.Read(kCpu0, 0x00, 8), ~uint64_t{0});
  EXPECT_EQ(io.Read(kCpu0, 0x03, 1), 0xFFu);

  // IOWIN only as a dword: a byte write must not touch RTE 0.
  io.Write(kCpu0, 0x10, 1, 0x00);
  io.Write(kCpu0, 0x10, 2, 0x0000);
  io.Write(kCpu0, 0x10, 8, 0);
  io.Write(kCpu0, 0x11, 1, 0x00);
  EXPECT_EQ(io.ReadRte(0), kMasked);
  EXPECT_EQ(io.Read(kCpu0, 0x10, 1), 0xFFu);
  EXPECT_EQ(io.Read(kCpu0, 0x10, 2), 0xFFFFu);
  EXPECT_EQ(io.Read(kCpu0, 0x10, 8), ~uint64_t{0});

  // Unimplemented offsets in the 4 KiB window.
  for (uint64_t offset : {0x04, 0x08, 0x0C, 0x14, 0x20, 0x30, 0x44, 0xFFC}) {
    EXPECT_EQ(io.Read(kCpu0, offset, 4), 0xFFFFFFFFu) << offset;
    io.Write(kCpu0, offset, 4, 0);
  }
  EXPECT_EQ(io.ReadRte(0), kMasked);
  EXPECT_EQ(io.io_regsel(), 0x10);
}

// [PCH] EOIR (+0x40) exists on version-0x20 I/O APICs only; the 82093AA
// (version 0x11) has nothing there: writes are ignored and reads float.
TEST(IoApicTest, Version11HasNoEoiRegister) {
  IoApicConfig config;
  config.version = ioapic::kVersion11;
  Harness h(config);
  h.ProgramRte(3, Dest(0) | kLevel | 0x40);
  h.ioapic->SetLevel(3, true);
  ASSERT_EQ(h.sink.messages.size(), 1u);
  ASSERT_TRUE(h.ioapic->remote_irr(3));

  h.WriteEoiRegister(0x40);
  EXPECT_TRUE(h.ioapic->remote_irr(3));
  EXPECT_EQ(h.sink.messages.size(), 1u);
  EXPECT_EQ(h.ioapic->Read(kCpu0, ioapic::kEoi, 4), 0xFFFFFFFFu);

  // The LAPIC's EOI broadcast still works (it is an APIC-bus message, not a
  // register): it clears Remote IRR and re-delivers the asserted line.
  h.ioapic->EndOfInterrupt(0x40);
  EXPECT_EQ(h.sink.messages.size(), 2u);
}

// ---------------------------------------------------------------------------
// RTE read-back.

// [82093AA] 3.2.4: after reset every RTE is masked with all other bits 0;
// Delivery Status (12) and Remote IRR (14) are read-only; the other bits
// read back what was written (reserved bits are stored, they carry the
// remappable format's interrupt index, [VT-d] 5.1.5.1).
TEST(IoApicTest, RteReadBackKeepsReadOnlyBits) {
  Harness h;
  EXPECT_EQ(h.ReadRteMmio(5), kMasked);
  // All-ones includes active-low polarity: keep the wire high (deasserted)
  // so that Delivery Status (held level interrupt) stays 0.
  h.ioapic->SetLevel(5, true);
  h.WriteRteHigh(5, 0xFFFFFFFF);
  h.WriteRteLow(5, 0xFFFFFFFF);
  EXPECT_EQ(h.ReadRteMmio(5), ~(kRemoteIrr | kDelivs));
  EXPECT_EQ(h.ioapic->ReadRte(5), ~(kRemoteIrr | kDelivs));
  // Wire low = asserted, masked level: bit 12 now reads 1 (send pending).
  h.ioapic->SetLevel(5, false);
  EXPECT_EQ(h.ReadRteMmio(5), ~kRemoteIrr);

  // Remote IRR set by hardware survives a guest write of 0 to bit 14, and a
  // guest write of 1 does not set it.
  h.ProgramRte(6, Dest(1) | kLevel | 0x31);
  h.ioapic->SetLevel(6, true);
  ASSERT_EQ(h.ReadRteMmio(6), Dest(1) | kLevel | kRemoteIrr | 0x31);
  h.WriteRteLow(6, static_cast<uint32_t>(kLevel | 0x32));
  EXPECT_EQ(h.ReadRteMmio(6), Dest(1) | kLevel | kRemoteIrr | 0x32);
  h.ProgramRte(7, Dest(1) | kLevel | kRemoteIrr | kDelivs | 0x33);
  EXPECT_EQ(h.ReadRteMmio(7), Dest(1) | kLevel | 0x33);
  EXPECT_FALSE(h.ioapic->remote_irr(7));
}

// Each dword of an RTE is written on its own; writing one half leaves the
// other untouched ([82093AA] 3.2.4, 10h-3Fh: two 32-bit registers per
// entry).
TEST(IoApicTest, RteHalvesAreIndependent) {
  Harness h;
  h.WriteRteHigh(23, 0xAB000000);
  EXPECT_EQ(h.ReadRteMmio(23), Dest(0xAB) | kMasked);
  h.WriteRteLow(23, 0x00010041);
  EXPECT_EQ(h.ReadRteMmio(23), Dest(0xAB) | kMasked | 0x41);
  h.WriteRteHigh(23, 0x01000000);
  EXPECT_EQ(h.ReadRteMmio(23), Dest(0x01) | kMasked | 0x41);
  EXPECT_EQ(h.ReadRteMmio(22), kMasked);
}

// ---------------------------------------------------------------------------
// MSI conversion.

// [SDM] 11.11: the RTE becomes address 0xFEE00000 | dest << 12 | DM << 2
// and data vector | delivery mode << 8 | level assert << 14 | trigger << 15,
// with the I/O APIC's requester id.
TEST(IoApicTest, CompatibilityRteBecomesCompatibilityMsi) {
  Harness h;
  h.ProgramRte(1, Dest(0x0F) | kLogical | Mode(DeliveryMode::kLowestPriority) |
                      kLevel | 0x51);
  h.ioapic->SetLevel(1, true);
  ASSERT_EQ(h.sink.messages.size(), 1u);
  const MsiMessage& m = h.sink.messages[0];
  EXPECT_EQ(m, MsiMessage(0xFEE0F004, 0xC151, kRid));
  EXPECT_FALSE(m.IsRemappable());
  EXPECT_EQ(m.DestinationId(), 0x0F);
  EXPECT_TRUE(m.DestinationModeLogical());
  EXPECT_EQ(m.DeliveryMode(), DeliveryMode::kLowestPriority);
  EXPECT_TRUE(m.TriggerLevel());
  EXPECT_TRUE(m.LevelAssert());
  EXPECT_EQ(m.Vector(), 0x51);

  // Edge, fixed, physical: no trigger and no assert bit.
  h.ProgramRte(2, Dest(3) | 0x52);
  h.ioapic->SetLevel(2, true);
  ASSERT_EQ(h.sink.messages.size(), 2u);
  EXPECT_EQ(h.sink.messages[1], MsiMessage(0xFEE03000, 0x0052, kRid));
}

// The requester id of every message is the configured one (default F0:1F.0,
// the VT-d convention for the I/O APIC source-id).
TEST(IoApicTest, MessagesCarryConfiguredRequesterId) {
  IoApicConfig config;
  config.requester_id = 0x00F8;  // 00:1f.0
  Harness h(config);
  h.ProgramRte(0, Dest(0) | 0x30);
  h.ioapic->SetLevel(0, true);
  ASSERT_EQ(h.sink.messages.size(), 1u);
  EXPECT_EQ(h.sink.messages[0].requester_id, 0x00F8);

  Harness d;
  d.ProgramRte(0, Dest(0) | 0x30);
  d.ioapic->SetLevel(0, true);
  ASSERT_EQ(d.sink.messages.size(), 1u);
  EXPECT_EQ(d.sink.messages[0].requester_id, 0xF0F8);
  EXPECT_EQ(FormatRequesterId(d.sink.messages[0].requester_id), "f0:1f.0");
}

// [VT-d] 5.1.5.1: with bit 48 (interrupt format) set the RTE carries
// interrupt_index[15] in bit 11 and [14:0] in bits 63:49; the I/OxAPIC
// emits a remappable-format request (address bit 4 = 1, handle[14:0] in
// address 19:5, handle[15] in address bit 2, SHV = 0). The vector field is
// kept for EOI matching and the trigger mode for Remote IRR.
TEST(IoApicTest, RemappableRteEmitsRemappableMsiWithHandleAndRequesterId) {
  Harness h;
  const uint16_t index = 0x802B;  // exercises handle[15]
  const uint64_t rte = (uint64_t{index & 0x7FFF} << 49) |
                       RedirectionEntry::kRemappableFormat |
                       (uint64_t{index >> 15} << 11) | kLevel | 0x61;
  ASSERT_EQ(RedirectionEntry(rte).interrupt_index(), index);
  h.ProgramRte(9, rte);
  h.ioapic->SetLevel(9, true);
  ASSERT_EQ(h.sink.messages.size(), 1u);
  const MsiMessage& m = h.sink.messages[0];
  EXPECT_EQ(m, MsiMessage::Remappable(index, /*shv=*/false, 0, kRid));
  EXPECT_TRUE(m.IsRemappable());
  EXPECT_EQ(m.Handle(), index);
  EXPECT_FALSE(m.Shv());
  EXPECT_EQ(m.RemappedIndex(), index);
  EXPECT_EQ(m.RemappableReservedBits(), 0u);
  EXPECT_EQ(m.requester_id, kRid);
  EXPECT_EQ(m.address, 0xFEE00000u | (0x2Bu << 5) | (1u << 4) | (1u << 2));

  // Remote IRR still follows the trigger mode, and the RTE's vector field
  // matches the EOI.
  EXPECT_TRUE(h.ioapic->remote_irr(9));
  h.ioapic->EndOfInterrupt(0x61);
  EXPECT_EQ(h.sink.messages.size(), 2u);  // line still high: retrigger
}

// ---------------------------------------------------------------------------
// Edge-triggered.

// [82093AA] 3.2.4 bit 15 = 0 (edge): an unmasked pin delivers once per
// deasserted->asserted transition; holding or lowering the line sends
// nothing; Remote IRR is not used.
TEST(IoApicTest, EdgeDeliversOncePerRisingEdge) {
  Harness h;
  h.ProgramRte(4, Dest(1) | 0x34);
  h.ioapic->SetLevel(4, true);
  h.ioapic->SetLevel(4, true);  // no edge
  EXPECT_EQ(h.sink.messages.size(), 1u);
  h.ioapic->SetLevel(4, false);
  EXPECT_EQ(h.sink.messages.size(), 1u);
  h.ioapic->SetLevel(4, true);
  EXPECT_EQ(h.sink.messages.size(), 2u);
  EXPECT_FALSE(h.ioapic->remote_irr(4));
  for (const MsiMessage& m : h.sink.messages) {
    EXPECT_EQ(m, MsiMessage(0xFEE01000, 0x34, kRid));
  }
  EXPECT_EQ(h.ioapic->delivery_count(), 2u);
}

// [82093AA] 3.2.4 bit 16: "Edge-sensitive interrupts signaled on a masked
// interrupt pin are ignored (i.e., not delivered or held pending)." So the
// unmask that follows does not deliver it either.
TEST(IoApicTest, MaskedEdgeInterruptIsLost) {
  Harness h;
  h.ProgramRte(4, Dest(1) | kMasked | 0x34);
  h.ioapic->SetLevel(4, true);
  h.ioapic->SetLevel(4, false);
  h.ioapic->SetLevel(4, true);
  h.WriteRteLow(4, 0x34);  // unmask while the line is still high
  EXPECT_TRUE(h.sink.messages.empty());
  EXPECT_EQ(h.ReadRteMmio(4) & kDelivs, 0u);  // nothing pending
  EXPECT_EQ(h.EventsOf(trace::IOAPIC_MASKED).size(), 2u);
  // The next edge after the unmask is delivered.
  h.ioapic->SetLevel(4, false);
  h.ioapic->SetLevel(4, true);
  EXPECT_EQ(h.sink.messages.size(), 1u);
}

// [82093AA] 3.2.4: NMI and INIT are "treated as edge triggered, even if
// programmed as level"; SMI and ExtINT require edge. So a level-programmed
// NMI never sets Remote IRR (no EOI would clear it) and its message has
// the trigger bit clear.
TEST(IoApicTest, NmiProgrammedAsLevelIsTreatedAsEdge) {
  Harness h;
  h.ProgramRte(2, Dest(0) | Mode(DeliveryMode::kNmi) | kLevel);
  h.ioapic->SetLevel(2, true);
  h.ioapic->SetLevel(2, true);
  ASSERT_EQ(h.sink.messages.size(), 1u);
  EXPECT_EQ(h.sink.messages[0], MsiMessage(0xFEE00000, 0x0400, kRid));
  EXPECT_FALSE(h.ioapic->remote_irr(2));
  h.ioapic->SetLevel(2, false);
  h.ioapic->SetLevel(2, true);
  EXPECT_EQ(h.sink.messages.size(), 2u);
}

// ---------------------------------------------------------------------------
// Level-triggered, Remote IRR, EOI.

// [82093AA] 3.2.4 bit 14: Remote IRR "is set to 1 when local APIC(s) accept
// the level interrupt sent by the IOAPIC" and stays set until a matching
// EOI; while it is set the asserted line is not sent again (repeated
// raises coalesce).
TEST(IoApicTest, LevelDeliversOnceUntilEoi) {
  Harness h;
  h.ProgramRte(10, Dest(2) | kLevel | 0x41);
  h.ioapic->SetLevel(10, true);
  ASSERT_EQ(h.sink.messages.size(), 1u);
  EXPECT_EQ(h.sink.messages[0], MsiMessage(0xFEE02000, 0xC041, kRid));
  EXPECT_TRUE(h.ioapic->remote_irr(10));
  EXPECT_EQ(h.ReadRteMmio(10), Dest(2) | kLevel | kRemoteIrr | 0x41);
  for (int i = 0; i < 5; ++i) {
    h.ioapic->SetLevel(10, false);
    h.ioapic->SetLevel(10, true);
  }
  EXPECT_EQ(h.sink.messages.size(), 1u);
  // Deasserting does not clear Remote IRR; only the EOI does.
  h.ioapic->SetLevel(10, false);
  EXPECT_TRUE(h.ioapic->remote_irr(10));
  h.ioapic->EndOfInterrupt(0x41);
  EXPECT_FALSE(h.ioapic->remote_irr(10));
  EXPECT_EQ(h.sink.messages.size(), 1u);  // line low: nothing to resend
}

// [82093AA] 3.2.4: a level interrupt is delivered while the pin is asserted
// and Remote IRR is clear; after the EOI clears Remote IRR a still-asserted
// line is sent again at once (the device has not been serviced).
TEST(IoApicTest, EoiWithLineStillAssertedRedelivers) {
  Harness h;
  h.ProgramRte(10, Dest(2) | kLevel | 0x41);
  h.ioapic->SetLevel(10, true);
  h.ioapic->EndOfInterrupt(0x41);
  ASSERT_EQ(h.sink.messages.size(), 2u);
  EXPECT_EQ(h.sink.messages[1], h.sink.messages[0]);
  EXPECT_TRUE(h.ioapic->remote_irr(10));
  h.ioapic->EndOfInterrupt(0x41);
  EXPECT_EQ(h.sink.messages.size(), 3u);
}

// [PCH] EOIR: a write compares bits 7:0 with every entry's vector and
// clears Remote IRR on a match (bits 31:8 are reserved).
TEST(IoApicTest, EoiRegisterClearsRemoteIrr) {
  Harness h;
  h.ProgramRte(10, Dest(2) | kLevel | 0x41);
  h.ioapic->SetLevel(10, true);
  h.ioapic->SetLevel(10, false);
  h.WriteEoiRegister(0xFFFFFF41);
  EXPECT_FALSE(h.ioapic->remote_irr(10));
  EXPECT_EQ(h.ioapic->Read(kCpu0, ioapic::kEoi, 4), 0u);  // write-only
  // With the line asserted, the register EOI retriggers like a broadcast.
  h.ioapic->SetLevel(10, true);
  ASSERT_EQ(h.sink.messages.size(), 2u);
  h.WriteEoiRegister(0x41);
  EXPECT_EQ(h.sink.messages.size(), 3u);
  // Only dword writes reach EOIR.
  h.ioapic->Write(kCpu0, ioapic::kEoi, 1, 0x41);
  EXPECT_TRUE(h.ioapic->remote_irr(10));
  EXPECT_EQ(h.EventsOf(trace::IOAPIC_EOI).size(), 2u);
}

// SDM 11.8.5: the local APIC broadcasts the EOI of a level-triggered vector
// to all I/O APICs; every entry with that vector and Remote IRR set is
// cleared (two pins may share a vector).
TEST(IoApicTest, EoiBroadcastClearsEveryEntryWithThatVector) {
  Harness h;
  h.ProgramRte(16, Dest(0) | kLevel | 0x50);
  h.ProgramRte(17, Dest(1) | kLevel | 0x50);
  h.ProgramRte(18, Dest(1) | kLevel | 0x51);
  for (int pin : {16, 17, 18}) h.ioapic->SetLevel(pin, true);
  for (int pin : {16, 17, 18}) h.ioapic->SetLevel(pin, false);
  ASSERT_EQ(h.sink.messages.size(), 3u);
  h.ioapic->EndOfInterrupt(0x50);
  EXPECT_FALSE(h.ioapic->remote_irr(16));
  EXPECT_FALSE(h.ioapic->remote_irr(17));
  EXPECT_TRUE(h.ioapic->remote_irr(18));
  EXPECT_EQ(h.sink.messages.size(), 3u);
}

// [82093AA] 3.2.4 bit 14: only an EOI "with a matching interrupt vector"
// clears Remote IRR.
TEST(IoApicTest, EoiForDifferentVectorDoesNothing) {
  Harness h;
  h.ProgramRte(10, Dest(2) | kLevel | 0x41);
  h.ioapic->SetLevel(10, true);
  h.ioapic->EndOfInterrupt(0x42);
  h.WriteEoiRegister(0x40);
  EXPECT_TRUE(h.ioapic->remote_irr(10));
  EXPECT_EQ(h.sink.messages.size(), 1u);
  const auto eois = h.EventsOf(trace::IOAPIC_EOI);
  ASSERT_EQ(eois.size(), 2u);
  EXPECT_NE(eois[0].detail().find("no entry"), std::string::npos);
}

// [82093AA] 3.2.4 bit 16: assertions on a masked level pin are "ignored and
// have no side effects", but the level stays on the wire: when the entry is
// unmasked the asserted pin is delivered. Delivery Status (bit 12, what we
// model: "send pending") is 1 while the asserted level interrupt is held by
// the mask, 0 once sent or when the line drops.
TEST(IoApicTest, MaskedLevelInterruptIsDeliveredOnUnmask) {
  Harness h;
  h.ProgramRte(12, Dest(1) | kLevel | kMasked | 0x45);
  h.ioapic->SetLevel(12, true);
  EXPECT_TRUE(h.sink.messages.empty());
  EXPECT_FALSE(h.ioapic->remote_irr(12));
  EXPECT_EQ(h.ReadRteMmio(12), Dest(1) | kLevel | kMasked | kDelivs | 0x45);
  h.ioapic->SetLevel(12, false);
  EXPECT_EQ(h.ReadRteMmio(12) & kDelivs, 0u);
  h.ioapic->SetLevel(12, true);
  h.WriteRteLow(12, static_cast<uint32_t>(kLevel | 0x45));  // unmask
  ASSERT_EQ(h.sink.messages.size(), 1u);
  EXPECT_EQ(h.sink.messages[0], MsiMessage(0xFEE01000, 0xC045, kRid));
  EXPECT_TRUE(h.ioapic->remote_irr(12));
  EXPECT_EQ(h.ReadRteMmio(12), Dest(1) | kLevel | kRemoteIrr | 0x45);
}

// [82093AA] 3.2.4 bit 16: "Changing the mask bit from unmasked to masked
// after the interrupt is accepted by a local APIC has no effect on that
// interrupt": Remote IRR stays set, the EOI still clears it, and while
// masked the still-asserted line is not resent (it is pending instead).
TEST(IoApicTest, MaskAfterDeliveryKeepsRemoteIrrAndHoldsRetrigger) {
  Harness h;
  h.ProgramRte(12, Dest(1) | kLevel | 0x45);
  h.ioapic->SetLevel(12, true);
  h.WriteRteLow(12, static_cast<uint32_t>(kLevel | kMasked | 0x45));
  EXPECT_EQ(h.ReadRteMmio(12), Dest(1) | kLevel | kMasked | kRemoteIrr | 0x45);
  h.ioapic->EndOfInterrupt(0x45);
  EXPECT_EQ(h.sink.messages.size(), 1u);
  EXPECT_EQ(h.ReadRteMmio(12), Dest(1) | kLevel | kMasked | kDelivs | 0x45);
  h.WriteRteLow(12, static_cast<uint32_t>(kLevel | 0x45));
  EXPECT_EQ(h.sink.messages.size(), 2u);
}

// Remote IRR is meaningful for level entries only ([82093AA] 3.2.4 bit 14:
// "undefined for edge triggered interrupts"); rewriting a level entry as
// edge clears it. Linux's __eoi_ioapic_pin() relies on this to EOI
// version-0x11 parts without an EOI register: set edge, then level again.
TEST(IoApicTest, LevelToEdgeClearsRemoteIrr) {
  IoApicConfig config;
  config.version = ioapic::kVersion11;
  Harness h(config);
  h.ProgramRte(10, Dest(2) | kLevel | 0x41);
  h.ioapic->SetLevel(10, true);
  h.ioapic->SetLevel(10, false);
  ASSERT_TRUE(h.ioapic->remote_irr(10));
  // Linux: mask + edge, then restore level (unmasked).
  h.WriteRteLow(10, static_cast<uint32_t>(kMasked | 0x41));
  EXPECT_FALSE(h.ioapic->remote_irr(10));
  h.WriteRteLow(10, static_cast<uint32_t>(kLevel | 0x41));
  EXPECT_FALSE(h.ioapic->remote_irr(10));
  EXPECT_EQ(h.sink.messages.size(), 1u);
  // The next assertion is delivered again.
  h.ioapic->SetLevel(10, true);
  EXPECT_EQ(h.sink.messages.size(), 2u);

  // The same workaround with the line still asserted redelivers on the
  // level restore.
  h.WriteRteLow(10, static_cast<uint32_t>(kMasked | 0x41));
  h.WriteRteLow(10, static_cast<uint32_t>(kLevel | 0x41));
  EXPECT_EQ(h.sink.messages.size(), 3u);
  EXPECT_TRUE(h.ioapic->remote_irr(10));
}

// [82093AA] 3.2.4 bit 13 (Interrupt Input Pin Polarity): 1 = active low.
// We model the electrical level; the pin is asserted when level XOR
// polarity. A level entry on an idle-high active-low line (PCI INTx) is
// asserted by driving the wire low; an edge entry fires on the falling
// edge.
TEST(IoApicTest, ActiveLowPolarity) {
  Harness h;
  h.ioapic->SetLevel(16, true);  // wire idles high
  h.ProgramRte(16, Dest(0) | kActiveLow | kLevel | 0x60);
  EXPECT_FALSE(h.ioapic->asserted(16));
  EXPECT_TRUE(h.sink.messages.empty());
  h.ioapic->SetLevel(16, false);  // device pulls INTx# low
  ASSERT_EQ(h.sink.messages.size(), 1u);
  EXPECT_TRUE(h.ioapic->asserted(16));
  h.ioapic->SetLevel(16, true);  // released
  h.ioapic->EndOfInterrupt(0x60);
  EXPECT_EQ(h.sink.messages.size(), 1u);

  // Edge, active low: the falling edge is the rising edge of "asserted".
  h.ioapic->SetLevel(17, true);
  h.ProgramRte(17, Dest(0) | kActiveLow | 0x61);
  h.ioapic->SetLevel(17, false);
  h.ioapic->SetLevel(17, true);
  h.ioapic->SetLevel(17, false);
  ASSERT_EQ(h.sink.messages.size(), 3u);
  EXPECT_EQ(h.sink.messages[2].Vector(), 0x61);

  // A level entry whose polarity is flipped to match a wire that is
  // already at the new active level is asserted at once (level semantics
  // re-evaluate on RTE writes; an edge entry would not fire).
  h.ioapic->SetLevel(18, false);
  h.ProgramRte(18, Dest(0) | kLevel | 0x62);
  EXPECT_EQ(h.sink.messages.size(), 3u);
  h.WriteRteLow(18, static_cast<uint32_t>(kActiveLow | kLevel | 0x62));
  EXPECT_EQ(h.sink.messages.size(), 4u);
  h.ioapic->SetLevel(19, false);
  h.ProgramRte(19, Dest(0) | kActiveLow | 0x63);
  EXPECT_EQ(h.sink.messages.size(), 4u);
}

// Guest mistakes are device behaviour: pins outside 0..23 are ignored.
TEST(IoApicTest, OutOfRangePinsAreIgnored) {
  Harness h;
  for (int pin = 0; pin < ioapic::kNumPins; ++pin) {
    h.ProgramRte(pin, Dest(0) | 0x40);
  }
  for (int pin : {-1, 24, 255, 1 << 30}) h.ioapic->SetLevel(pin, true);
  EXPECT_TRUE(h.sink.messages.empty());
}

// Without a sink (not yet connected) deliveries are counted, traced and
// dropped; Remote IRR behaves as if sent.
TEST(IoApicTest, NoSinkDropsAndTraces) {
  Harness h;
  h.ioapic->set_sink(nullptr);
  h.ProgramRte(3, Dest(0) | kLevel | 0x40);
  h.ioapic->SetLevel(3, true);
  EXPECT_EQ(h.ioapic->delivery_count(), 1u);
  EXPECT_TRUE(h.ioapic->remote_irr(3));
  const auto delivers = h.EventsOf(trace::IOAPIC_DELIVER);
  ASSERT_EQ(delivers.size(), 1u);
  EXPECT_NE(delivers[0].detail().find("no sink"), std::string::npos);
}

// ---------------------------------------------------------------------------
// The route cache and seed 003.

// The split-irqchip routing table holds one MSI route per pin; it is
// refreshed from the RTEs of *unmasked* pins only (QEMU's
// ioapic_update_kvm_routes() skips masked entries), and every install gets
// a new generation.
TEST(IoApicTest, RouteCacheIsRefreshedForUnmaskedPinsOnly) {
  Harness h;
  EXPECT_EQ(h.ioapic->route(5).message, MsiMessage(0xFEE00000, 0, kRid));
  EXPECT_EQ(h.ioapic->route(5).generation, 0u);
  h.ProgramRte(5, Dest(3) | kMasked | 0x44);
  EXPECT_EQ(h.ioapic->route(5).message, MsiMessage(0xFEE00000, 0, kRid));
  EXPECT_EQ(h.ioapic->route_generation(), 0u);
  h.WriteRteLow(5, 0x44);  // unmask
  EXPECT_EQ(h.ioapic->route(5).message, MsiMessage(0xFEE03000, 0x44, kRid));
  EXPECT_EQ(h.ioapic->route(5).generation, 1u);
  // Rewriting the same value installs nothing new.
  h.WriteRteLow(5, 0x44);
  EXPECT_EQ(h.ioapic->route_generation(), 1u);
  const auto updates = h.EventsOf(trace::ROUTE_UPDATE);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].address(), 0xFEE03000u);
  EXPECT_EQ(updates[0].data(), 0x44u);
  EXPECT_EQ(updates[0].vector(), 0x44);
  EXPECT_EQ(updates[0].requester_id(), kRid);
  EXPECT_NE(updates[0].detail().find("pin=5 gen=1"), std::string::npos);
}

// Replays the register sequence of seed 003 (QEMU trace of a Linux guest
// migrating IRQ 11, vector 0x21, from CPU 2 to CPU 0; RTE 11 = indices
// 0x26/0x27) and returns the message the final unmask delivered.
//
//   ioapic_set_irq level 1 / set remote irr / trigger IRQ 11  -> APIC 2
//   write 0x26 = 0x18021                   mask
//   read  0x26 -> 0x1c021                  Remote IRR set, masked
//   EOI broadcast vector 33 -> clear remote irr (line still high, masked)
//   write 0x27 = 0x0                       new destination APIC 0 (masked)
//   write 0x26 = 0x18021                   still masked
//   write 0x26 = 0x8021                    unmask -> service -> deliver
void ReplaySeed003(Harness& h) {
  constexpr int kPin = 11;
  // Before the migration: unmasked, level, vector 0x21, APIC 2.
  h.WriteIndex(0x27, 0x02000000);
  h.WriteIndex(0x26, 0x00008021);
  EXPECT_EQ(h.ioapic->route(kPin).message,
            MsiMessage(0xFEE02000, 0xC021, kRid));
  h.clock.Set(100);
  h.ioapic->SetLevel(kPin, true);
  ASSERT_EQ(h.sink.messages.size(), 1u);
  EXPECT_EQ(h.sink.messages[0].DestinationId(), 2);

  // Linux's irq migration (ioapic_ack_level with moveit = 1): mask first.
  h.clock.Set(200);
  h.WriteIndex(0x26, 0x00018021);
  h.ioapic->SetLevel(kPin, true);  // the device keeps the line high
  EXPECT_EQ(h.ReadIndex(0x26), 0x0001C021u);  // exactly QEMU's read-back
  h.ioapic->EndOfInterrupt(0x21);
  EXPECT_FALSE(h.ioapic->remote_irr(kPin));
  EXPECT_EQ(h.sink.messages.size(), 1u);  // masked: held, not resent
  // QEMU read 0x18021 here; we also show Delivery Status = send pending.
  EXPECT_EQ(h.ReadIndex(0x26), 0x00019021u);

  // irq_do_set_affinity -> ioapic_set_affinity: write the new destination
  // while masked, rewrite the low dword, then unmask_ioapic_irq().
  h.clock.Set(300);
  h.WriteIndex(0x27, 0x00000000);
  h.WriteIndex(0x26, 0x00018021);
  // Masked: neither order has refreshed the route yet.
  EXPECT_EQ(h.ioapic->route(kPin).message,
            MsiMessage(0xFEE02000, 0xC021, kRid));
  h.clock.Set(400);
  h.WriteIndex(0x26, 0x00008021);
  ASSERT_EQ(h.sink.messages.size(), 2u);
  EXPECT_TRUE(h.ioapic->remote_irr(kPin));
  // Whatever the order, the route is correct once the write completes.
  EXPECT_EQ(h.ioapic->route(kPin).message,
            MsiMessage(0xFEE00000, 0xC021, kRid));
}

// Seed 003, pre-fix order: the unmask write services the pending level
// interrupt through the cached route *before* the routes are refreshed from
// the new RTE, so it is misdelivered to the old destination, APIC 2.
TEST(IoApicTest, Seed003StaleRouteMisdeliversToOldDestination) {
  Harness h(WithOrder(RouteUpdateOrder::kStaleBeforeService));
  ReplaySeed003(h);
  ASSERT_EQ(h.sink.messages.size(), 2u);
  EXPECT_EQ(h.sink.messages[1], MsiMessage(0xFEE02000, 0xC021, kRid));
  EXPECT_EQ(h.sink.messages[1].DestinationId(), 2);

  // The trace shows the delivery through the stale route, then the update.
  const auto& events = h.trace.events();
  int deliver = -1, update = -1;
  for (int i = 0; i < static_cast<int>(events.size()); ++i) {
    if (events[i].time() != 400) continue;
    if (events[i].stage() == trace::IOAPIC_DELIVER) deliver = i;
    if (events[i].stage() == trace::ROUTE_UPDATE) update = i;
  }
  ASSERT_GE(deliver, 0);
  ASSERT_GE(update, 0);
  EXPECT_LT(deliver, update);
  EXPECT_EQ(events[deliver].address(), 0xFEE02000u);
  EXPECT_EQ(events[deliver].vector(), 0x21);
  EXPECT_EQ(events[deliver].requester_id(), kRid);
  EXPECT_NE(events[deliver].detail().find("pin=11 gen=1 level STALE-ROUTE "
                                          "rte-says=fee00000/0000c021"),
            std::string::npos)
      << events[deliver].detail();
  EXPECT_EQ(events[update].address(), 0xFEE00000u);
  EXPECT_NE(events[update].detail().find("pin=11 gen=2"), std::string::npos);
}

// Seed 003, fixed order ("Update KVM routes before redelivering IRQ, on RTE
// update"): the unmask write refreshes the route first, so the pending
// interrupt reaches the new destination, APIC 0.
TEST(IoApicTest, Seed003UpdatedRouteDeliversToNewDestination) {
  Harness h(WithOrder(RouteUpdateOrder::kUpdateBeforeService));
  ReplaySeed003(h);
  ASSERT_EQ(h.sink.messages.size(), 2u);
  EXPECT_EQ(h.sink.messages[1], MsiMessage(0xFEE00000, 0xC021, kRid));
  EXPECT_EQ(h.sink.messages[1].DestinationId(), 0);

  const auto& events = h.trace.events();
  int deliver = -1, update = -1;
  for (int i = 0; i < static_cast<int>(events.size()); ++i) {
    if (events[i].time() != 400) continue;
    if (events[i].stage() == trace::IOAPIC_DELIVER) deliver = i;
    if (events[i].stage() == trace::ROUTE_UPDATE) update = i;
  }
  ASSERT_GE(deliver, 0);
  ASSERT_GE(update, 0);
  EXPECT_LT(update, deliver);
  EXPECT_EQ(events[deliver].address(), 0xFEE00000u);
  EXPECT_EQ(events[deliver].detail().find("STALE"), std::string::npos);
}

// Seed 003's note on the alternative fix ("refresh routes even when
// masked"): that only helps for the high dword. A vector change written in
// the same low-dword write as the unmask is still sent stale by the
// pre-fix order (old vector), and correctly by the fixed order.
TEST(IoApicTest, LowDwordChangeWithUnmaskIsStaleOnlyInPreFixOrder) {
  for (RouteUpdateOrder order : {RouteUpdateOrder::kStaleBeforeService,
                                 RouteUpdateOrder::kUpdateBeforeService}) {
    SCOPED_TRACE(std::string(RouteUpdateOrderName(order)));
    Harness h(WithOrder(order));
    h.ProgramRte(7, Dest(1) | kLevel | 0x30);  // route: vector 0x30
    h.WriteRteLow(7, static_cast<uint32_t>(kLevel | kMasked | 0x30));
    h.ioapic->SetLevel(7, true);  // pending while masked
    h.WriteRteLow(7, static_cast<uint32_t>(kLevel | 0x31));  // new vec+unmask
    ASSERT_EQ(h.sink.messages.size(), 1u);
    EXPECT_EQ(h.sink.messages[0].Vector(),
              order == RouteUpdateOrder::kStaleBeforeService ? 0x30 : 0x31);
    // Remote IRR was set for the RTE's (new) vector: only its EOI clears it.
    h.ioapic->EndOfInterrupt(0x30);
    EXPECT_TRUE(h.ioapic->remote_irr(7));
    h.ioapic->EndOfInterrupt(0x31);
    EXPECT_EQ(h.sink.messages.size(), 2u);
    EXPECT_EQ(h.sink.messages[1].Vector(), 0x31);
  }
}

// Fault injection (stale_route_order): OverrideNextRteWriteOrder(n) makes
// the next n RTE writes of a fixed-order I/O APIC use the pre-fix order, so
// seed 003 misdelivers exactly as with kStaleBeforeService; IOREGSEL and
// EOI-register writes do not use up the count, and afterwards the
// configured order is back.
TEST(IoApicTest, OverrideNextRteWriteOrderIsOneShot) {
  Harness h(WithOrder(RouteUpdateOrder::kUpdateBeforeService));
  h.ioapic->OverrideNextRteWriteOrder(1);
  h.ioapic->Write(kCpu0, ioapic::kIoRegSel, 4, 0x26);
  h.WriteEoiRegister(0x99);
  EXPECT_EQ(h.ioapic->stale_rte_writes_left(), 1u);
  h.ioapic->OverrideNextRteWriteOrder(2);  // counts add up: 3
  ReplaySeed003(h);  // 6 RTE writes: the first 3 stale, the unmask fixed
  EXPECT_EQ(h.ioapic->stale_rte_writes_left(), 0u);
  ASSERT_EQ(h.sink.messages.size(), 2u);
  EXPECT_EQ(h.sink.messages[1].DestinationId(), 0);  // the unmask: fixed

  // Now override exactly the unmask write: the seed-003 misdelivery.
  Harness s(WithOrder(RouteUpdateOrder::kUpdateBeforeService));
  constexpr int kPin = 11;
  s.WriteIndex(0x27, 0x02000000);
  s.WriteIndex(0x26, 0x00008021);
  s.ioapic->SetLevel(kPin, true);
  s.WriteIndex(0x26, 0x00018021);  // mask
  s.ioapic->EndOfInterrupt(0x21);  // line high: pending while masked
  s.WriteIndex(0x27, 0x00000000);  // new destination, masked: no refresh
  s.ioapic->OverrideNextRteWriteOrder(1);
  s.WriteIndex(0x26, 0x00008021);  // unmask: serviced through the old route
  ASSERT_EQ(s.sink.messages.size(), 2u);
  EXPECT_EQ(s.sink.messages[1].DestinationId(), 2);
  EXPECT_EQ(s.ioapic->stale_rte_writes_left(), 0u);
  // The refresh at the end of the overridden write says so in its trace,
  // and the route is correct afterwards.
  const std::vector<TraceEvent> updates = s.EventsOf(trace::ROUTE_UPDATE);
  ASSERT_FALSE(updates.empty());
  EXPECT_NE(updates.back().detail().find("order=stale-before-service"), std::string::npos)
      << updates.back().detail();
  EXPECT_EQ(s.ioapic->route(kPin).message.DestinationId(), 0);
  // The next EOI redelivers (line still high) through the new route, in the
  // configured order again.
  s.ioapic->EndOfInterrupt(0x21);
  ASSERT_EQ(s.sink.messages.size(), 3u);
  EXPECT_EQ(s.sink.messages[2].DestinationId(), 0);
  s.WriteIndex(0x27, 0x01000000);
  EXPECT_NE(s.EventsOf(trace::ROUTE_UPDATE).back().detail().find("order=update-before-service"),
            std::string::npos);
}

// Trace events carry the virtual time of the clock and the I/O APIC's
// requester id; RTE writes record the index and the new value.
TEST(IoApicTest, RteWritesAreTraced) {
  Harness h;
  h.clock.Set(1234);
  h.WriteIndex(0x13, 0x05000000);
  const auto rtes = h.EventsOf(trace::IOAPIC_RTE);
  ASSERT_EQ(rtes.size(), 1u);
  EXPECT_EQ(rtes[0].time(), 1234u);
  EXPECT_EQ(rtes[0].address(), 0x13u);
  EXPECT_EQ(rtes[0].data(), Dest(5) | kMasked);
  EXPECT_EQ(rtes[0].cpu(), -1);
  EXPECT_EQ(FormatTraceEvent(rtes[0]),
            "t=0000001234 IOAPIC_RTE cpu=- vec=0x0 rid=f0:1f.0 addr=0x13 "
            "data=0x500000000010000 | pin=1 high rte=0x0500000000010000 (was "
            "0x0000000000010000) masked");
}

// Reset ([82093AA] 3.2.4): all entries masked again, Remote IRR cleared,
// routes reinstalled from the reset RTEs; the input wires keep their level.
TEST(IoApicTest, ResetMasksEverythingAndKeepsInputLevels) {
  Harness h;
  h.ProgramRte(10, Dest(2) | kLevel | 0x41);
  h.ioapic->SetLevel(10, true);
  ASSERT_TRUE(h.ioapic->remote_irr(10));
  h.ioapic->Reset();
  EXPECT_EQ(h.ioapic->ReadRte(10) & ~kDelivs, kMasked);
  EXPECT_FALSE(h.ioapic->remote_irr(10));
  EXPECT_TRUE(h.ioapic->input_level(10));
  EXPECT_EQ(h.ioapic->route(10).message, MsiMessage(0xFEE00000, 0, kRid));
  EXPECT_EQ(h.ioapic->route_generation(), 0u);
  EXPECT_EQ(h.ioapic->io_regsel(), 0);
}

// ---------------------------------------------------------------------------
// Fuzz.

// Checks every message at the moment it is sent: it is the route cache
// entry of the pin the IOAPIC_DELIVER trace event names, the pin is
// unmasked, and in the fixed order the route matches the RTE (no stale
// delivery is possible).
class CheckingSink : public MsiSink {
 public:
  CheckingSink(const TraceRecorder* trace, RouteUpdateOrder order)
      : trace_(trace), order_(order) {}
  void set_ioapic(const IoApic* ioapic) { ioapic_ = ioapic; }
  MsiOutcome Signal(const MsiMessage& m) override {
    Check(m);
    return MsiOutcome::kAccepted;
  }
  uint64_t count = 0;
  uint64_t stale = 0;

 private:
  void Check(const MsiMessage& m) {
    ++count;
    ASSERT_NE(ioapic_, nullptr);
    ASSERT_FALSE(trace_->events().empty());
    const TraceEvent& e = trace_->events().back();
    ASSERT_EQ(e.stage(), trace::IOAPIC_DELIVER);
    int pin = -1;
    ASSERT_EQ(std::sscanf(e.detail().c_str(), "pin=%d", &pin), 1);
    ASSERT_GE(pin, 0);
    ASSERT_LT(pin, ioapic::kNumPins);
    EXPECT_EQ(m, ioapic_->route(pin).message);
    EXPECT_EQ(e.address(), m.address);
    EXPECT_EQ(e.data(), m.data);
    EXPECT_EQ(m.requester_id, ioapic_->config().requester_id);
    EXPECT_EQ(ioapic_->ReadRte(pin) & kMasked, 0u);
    EXPECT_TRUE(ioapic_->asserted(pin));
    if (order_ == RouteUpdateOrder::kUpdateBeforeService) {
      EXPECT_EQ(m, ioapic_->RteMessage(pin));
    } else if (m != ioapic_->RteMessage(pin)) {
      ++stale;
    }
  }

  const TraceRecorder* trace_;
  const IoApic* ioapic_ = nullptr;
  RouteUpdateOrder order_;
};

// Random register traffic of every offset/size/value, line changes and
// EOIs (fixed seeds). Invariants after every step ([82093AA] 3.2.4):
//   * no crash, and the sink saw exactly delivery_count() messages;
//   * Remote IRR is only ever set on (effective) level entries;
//   * no lost level interrupt: an unmasked, asserted level entry always has
//     Remote IRR set (it was delivered);
//   * Delivery Status is set exactly when a level interrupt is held by the
//     mask;
//   * between MMIO writes, the route of every unmasked pin matches its RTE
//     (both orders refresh by the end of the write).
void Fuzz(uint64_t seed, RouteUpdateOrder order, uint8_t version) {
  SCOPED_TRACE(testing::Message() << "seed " << seed << " order "
                                  << RouteUpdateOrderName(order) << " version "
                                  << int{version});
  TraceRecorder trace;
  Tracer tracer;
  tracer.AddSink(&trace);
  ManualClock clock;
  CheckingSink sink(&trace, order);
  IoApicConfig config;
  config.route_update_order = order;
  config.version = version;
  auto created = IoApic::Create(config, &sink, &tracer, &clock);
  ASSERT_TRUE(created.ok());
  std::unique_ptr<IoApic> io = std::move(created).value();
  sink.set_ioapic(io.get());

  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return rng() % n; };
  const uint8_t vectors[] = {0x00, 0x20, 0x21, 0x30, 0x41, 0xFF};
  auto random_rte_low = [&]() -> uint32_t {
    if (pick(4) == 0) return static_cast<uint32_t>(rng());
    uint32_t v = vectors[pick(6)];
    v |= static_cast<uint32_t>(pick(8)) << 8;  // delivery mode
    if (pick(2)) v |= kLevel;
    if (pick(3) == 0) v |= kMasked;
    if (pick(4) == 0) v |= kActiveLow;
    if (pick(4) == 0) v |= kLogical;
    if (pick(8) == 0) v |= kRemoteIrr | kDelivs;
    return v;
  };
  auto random_rte_high = [&]() -> uint32_t {
    uint32_t v = static_cast<uint32_t>(pick(4)) << 24;
    if (pick(4) == 0) v |= 1u << 16;                                 // format
    if (pick(4) == 0) v |= static_cast<uint32_t>(rng()) & 0xFFFE0000;  // index
    if (pick(8) == 0) v = static_cast<uint32_t>(rng());
    return v;
  };

  for (int step = 0; step < 20000; ++step) {
    clock.Advance(1);
    const AccessOrigin origin = AccessOrigin::Cpu(static_cast<int>(pick(4)));
    switch (pick(10)) {
      case 0:
      case 1: {  // select an RTE (mostly) and write it
        uint8_t index = pick(8) == 0 ? static_cast<uint8_t>(rng())
                                     : 0x10 + static_cast<uint8_t>(pick(48));
        io->Write(origin, ioapic::kIoRegSel, pick(2) ? 4 : 1, index);
        uint32_t value = (index & 1) ? random_rte_high() : random_rte_low();
        io->Write(origin, ioapic::kIoWin, 4, value);
        break;
      }
      case 2: {  // arbitrary access anywhere, any size
        const uint64_t offsets[] = {0x00, 0x01, 0x03, 0x10, 0x11, 0x14,
                                    0x20, 0x40, 0x41, 0x44, 0xFFC,
                                    rng() % ioapic::kMmioSize, rng()};
        uint64_t offset = offsets[pick(13)];
        const unsigned sizes[] = {0, 1, 2, 3, 4, 8, 16};
        unsigned size = sizes[pick(7)];
        if (pick(2)) {
          io->Write(origin, offset, size, rng());
        } else {
          uint64_t v = io->Read(origin, offset, size);
          if (size <= 8) {
            EXPECT_EQ(v & ~AllOnes(size), 0u);
          }
        }
        break;
      }
      case 3: {  // read some register
        io->Write(origin, ioapic::kIoRegSel, 4, rng() & 0xFF);
        io->Read(origin, ioapic::kIoWin, 4);
        break;
      }
      case 4:
      case 5:
      case 6:
        io->SetLevel(pick(16) == 0 ? static_cast<int>(rng() % 64) - 20
                                   : static_cast<int>(pick(ioapic::kNumPins)),
                     pick(2));
        break;
      case 7:
        io->EndOfInterrupt(pick(4) ? vectors[pick(6)]
                                   : static_cast<uint8_t>(rng()));
        break;
      case 8:
        io->Write(origin, ioapic::kEoi, 4,
                  pick(4) ? vectors[pick(6)] : static_cast<uint32_t>(rng()));
        break;
      case 9:
        if (pick(200) == 0) {
          io->Reset();
        } else {
          io->Write(origin, ioapic::kIoRegSel, 1, pick(3));
          io->Write(origin, ioapic::kIoWin, 4, static_cast<uint32_t>(rng()));
        }
        break;
    }
    if (testing::Test::HasFatalFailure()) return;

    ASSERT_EQ(sink.count, io->delivery_count()) << "step " << step;
    for (int pin = 0; pin < ioapic::kNumPins; ++pin) {
      const uint64_t raw = io->ReadRte(pin);
      const RedirectionEntry rte(raw);
      if (io->remote_irr(pin)) {
        ASSERT_TRUE(rte.effective_level()) << "step " << step << " pin " << pin;
      }
      ASSERT_EQ(rte.remote_irr(), io->remote_irr(pin));
      if (rte.effective_level() && !rte.masked() && io->asserted(pin)) {
        ASSERT_TRUE(io->remote_irr(pin))
            << "lost level interrupt, step " << step << " pin " << pin;
      }
      ASSERT_EQ(rte.delivery_status(), rte.effective_level() && rte.masked() &&
                                           !io->remote_irr(pin) &&
                                           io->asserted(pin));
      if (!rte.masked()) {
        ASSERT_EQ(io->route(pin).message, io->RteMessage(pin))
            << "step " << step << " pin " << pin;
      }
    }
  }
  EXPECT_GT(sink.count, 100u);  // the loop really exercised delivery
  // The fixed order never sends a stale route; random traffic does hit the
  // seed-003 window in the pre-fix order (unmask of a pending level entry
  // whose RTE changed while masked).
  if (order == RouteUpdateOrder::kUpdateBeforeService) {
    EXPECT_EQ(sink.stale, 0u);
  } else {
    EXPECT_GT(sink.stale, 0u);
  }
}

TEST(IoApicTest, FuzzRegistersLinesAndEoisKeepInvariants) {
  for (uint64_t seed : {1, 2, 3}) {
    for (RouteUpdateOrder order : {RouteUpdateOrder::kStaleBeforeService,
                                   RouteUpdateOrder::kUpdateBeforeService}) {
      for (uint8_t version : {ioapic::kVersion20, ioapic::kVersion11}) {
        Fuzz(seed, order, version);
        if (HasFatalFailure()) return;
      }
    }
  }
}

}  // namespace
}  // namespace irqlab
