// Tests of iommu/vtd_unit.h, interrupt-remapping faults and fault
// reporting (iommu/vtd_ir.cc, iommu/vtd_fault.cc): every fault reason
// 0x20-0x26 with its exact fault record and FSTS (0x27 is with posting in
// vtd_ir_test.cc), FPD, the fault recording ring and primary fault
// overflow, and the fault-event interrupt. The shared fixture is
// tests/vtd_testing.h. Each test names the spec rule it checks ([VT-d] =
// Intel VT-d spec rev 4.x/5.x, section numbers as cited in
// iommu/vtd_regs.h).
#include "iommu/vtd_unit.h"

#include <cstdint>
#include <string>

#include "emu/core/msi.h"
#include "emu/core/trace.h"
#include "gtest/gtest.h"
#include "iommu/vtd_regs.h"
#include "tests/vtd_testing.h"

namespace irqlab::vtd_testing {
namespace {

using vtd::Bit;
using vtd::Irte;

// ---------------------------------------------------------------------------
// Fault reasons 0x20-0x26, with the exact fault record and FSTS (0x27,
// the posted-interrupt descriptor: vtd_ir_test.cc, posted interrupts).
// ---------------------------------------------------------------------------

// [VT-d] 5.1.4.1 / 7.1.3 reason 0x20: data bits 31:16 of a remappable
// request are reserved.
TEST_F(VtdIrTest, Fault20ReservedFieldsInRequest) {
  EnableIr();
  SetIrte(4, Irte::Remapped({.vector = 0x41}));
  MsiMessage m = MsiMessage::Remappable(4, false, 0, kDev);
  m.data |= 0x10000;
  unit_->Signal(m);
  EXPECT_TRUE(Interrupts().empty());
  ExpectFault(0, kDev, 4, 0x20);
  EXPECT_EQ(Fsts(), vtd::Fsts::kPpf);  // FRI = 0
}

// Reason 0x21: interrupt_index >= 2^(S+1).
TEST_F(VtdIrTest, Fault21IndexBeyondTable) {
  EnableIr(/*s=*/4);  // 32 entries
  unit_->Signal(MsiMessage::Remappable(31, false, 0, kDev));  // not present
  unit_->Signal(MsiMessage::Remappable(32, false, 0, kDev));
  unit_->Signal(MsiMessage::Remappable(30, true, 3, kDev));  // 30+3 = 33
  EXPECT_TRUE(Interrupts().empty());
  ExpectFault(0, kDev, 31, 0x22);
  ExpectFault(1, kDev, 32, 0x21);
  ExpectFault(2, kDev, 33, 0x21);
}

// Reason 0x22: P=0. FPD=1 in the (non-present) entry suppresses recording
// of this qualified fault; the interrupt is blocked either way.
TEST_F(VtdIrTest, Fault22NotPresentAndFpd) {
  EnableIr();
  unit_->Signal(MsiMessage::Remappable(7, false, 0, kDev));
  ExpectFault(0, kDev, 7, 0x22);
  Irte fpd_only;
  fpd_only.lo = Bit(1);  // FPD=1, P=0
  SetIrte(8, fpd_only);
  unit_->Signal(MsiMessage::Remappable(8, false, 0, kDev));
  EXPECT_EQ(FrcdHi(1), 0u);  // nothing recorded
  EXPECT_EQ(unit_->stats().faults_suppressed_fpd, 1u);
  EXPECT_TRUE(Interrupts().empty());
  EXPECT_NE(Details(trace::IR_FAULT).back().find("not recorded: FPD=1"),
            std::string::npos);
}

// Reason 0x23: the IRTE fetch fails (table outside memory). Not qualified.
TEST_F(VtdIrTest, Fault23TableOutsideMemory) {
  EnableIr();
  W64(vtd::kIrtaReg, (kRamSize - 0x1000) | 8);  // 512 entries, 256 in RAM
  Command(vtd::Gcmd::kSirtp);
  unit_->Signal(MsiMessage::Remappable(300, false, 0, kDev));
  EXPECT_TRUE(Interrupts().empty());
  ExpectFault(0, kDev, 300, 0x23);
  // A table at the top of the address space does not wrap around into RAM.
  W64(vtd::kIrtaReg, 0xFFFFFFFFFFFFF000 | 7);
  Command(vtd::Gcmd::kSirtp);
  unit_->Signal(MsiMessage::Remappable(255, false, 0, kDev));
  ExpectFault(1, kDev, 255, 0x23);
}

// Reason 0x24: reserved IRTE fields (9.10), including DST bits outside
// DST[15:8] in xAPIC mode, SVT=11b, and IM=1 without posting support.
TEST_F(VtdIrTest, Fault24ReservedFieldsInIrte) {
  EnableIr();
  Irte e = Irte::Remapped({.vector = 0x41, .destination = 1});
  Irte r1 = e;
  r1.lo |= Bit(12);
  Irte r2 = Irte::Remapped({.vector = 0x41, .destination = 0x10001, .eime = true});
  Irte r3 = e;
  r3.hi |= uint64_t{3} << 18;
  Irte r4 = Irte::Posted(0x30, kPid);
  SetIrte(1, r1);
  SetIrte(2, r2);
  SetIrte(3, r3);
  SetIrte(4, r4);
  for (uint16_t i = 1; i <= 4; ++i) {
    unit_->Signal(MsiMessage::Remappable(i, false, 0, kDev));
  }
  EXPECT_TRUE(Interrupts().empty());
  for (int i = 0; i < 4; ++i) ExpectFault(i, kDev, i + 1, 0x24);
  // FPD suppresses it (qualified).
  r1.lo |= Bit(1);
  SetIrte(5, r1);
  unit_->Signal(MsiMessage::Remappable(5, false, 0, kDev));
  EXPECT_EQ(FrcdHi(4), 0u);
  EXPECT_EQ(unit_->stats().faults_suppressed_fpd, 1u);
}

// Reason 0x25: compatibility format blocked unless CFIS=1 (5.1.2.1). The
// fault index is 0; Linux prints exactly this line.
TEST_F(VtdIrTest, Fault25CompatibilityFormatBlocked) {
  // IR off: everything passes.
  unit_->Signal(MsiMessage::Compat(0, 0x20, kDev));
  EXPECT_EQ(Interrupts().size(), 1u);
  EnableIr();
  unit_->Signal(MsiMessage::Compat(0, 0x20, kDev));
  EXPECT_EQ(Interrupts().size(), 1u);
  ExpectFault(0, kDev, 0, 0x25);
  EXPECT_EQ(Details(trace::IR_FAULT).back(),
            "DMAR: [INTR-REMAP] Request device [02:00.0] fault index 0x0 "
            "[fault reason 0x25] Blocked a compatibility format interrupt "
            "request [FRCD 0]");
  const auto& ev = trace_.events().back();
  EXPECT_EQ(ev.stage(), trace::IR_FAULT);
  EXPECT_EQ(ev.requester_id(), kDev);
  EXPECT_EQ(ev.address(), 0xFEE00000u);
  EXPECT_EQ(ev.data(), 0x20u);
}

// 11.4.4.1 CFI: with CFIS=1 compatibility format passes unchanged — but
// only while EIME=0.
TEST_F(VtdIrTest, CfiPassesCompatibilityFormatOnlyWithoutEime) {
  EnableIr(4, /*eime=*/false, /*cfi=*/true);
  MsiMessage m = MsiMessage::Compat(1, 0x31, kDev);
  unit_->Signal(m);
  ASSERT_EQ(Interrupts().size(), 1u);
  EXPECT_EQ(Interrupts()[0].message, m);
  EXPECT_EQ(Fsts(), 0u);
  W64(vtd::kIrtaReg, kIrt | vtd::Irta::kEime | 4);
  Command(vtd::Gcmd::kSirtp);
  unit_->Signal(m);
  EXPECT_EQ(Interrupts().size(), 1u);
  ExpectFault(0, kDev, 0, 0x25);
}

// Reason 0x26, SVT=01b: SID compared under the SQ mask. The IOAPIC's
// remappable RTEs arrive with source id F0:1F.0 (5.1.5.1).
TEST_F(VtdIrTest, Fault26SourceIdWithQualifier) {
  EnableIr();
  SetIrte(2, Irte::Remapped({.vector = 0x33, .destination = 0,
                             .sid = kIoApic, .sq = 0, .svt = 1}));
  unit_->Signal(MsiMessage::Remappable(2, false, 0, kIoApic));
  EXPECT_EQ(Interrupts().size(), 1u);
  unit_->Signal(MsiMessage::Remappable(2, false, 0, kDev));
  unit_->Signal(MsiMessage::Remappable(2, false, 0, kIoApic | 4));  // fn 4
  EXPECT_EQ(Interrupts().size(), 1u);
  ExpectFault(0, kDev, 2, 0x26);
  ExpectFault(1, kIoApic | 4, 2, 0x26);
  // SQ=11b ignores function bits 2:0; SQ=01b ignores only bit 2.
  SetIrte(3, Irte::Remapped({.vector = 0x34, .sid = kIoApic, .sq = 3, .svt = 1}));
  SetIrte(4, Irte::Remapped({.vector = 0x35, .sid = kIoApic, .sq = 1, .svt = 1}));
  unit_->Signal(MsiMessage::Remappable(3, false, 0, kIoApic | 7));
  unit_->Signal(MsiMessage::Remappable(4, false, 0, kIoApic | 4));
  EXPECT_EQ(Interrupts().size(), 3u);
  unit_->Signal(MsiMessage::Remappable(4, false, 0, kIoApic | 2));
  EXPECT_EQ(Interrupts().size(), 3u);
  ExpectFault(2, kIoApic | 2, 4, 0x26);
}

// QEMU's IOAPIC sends no requester id, so guests written for QEMU put a
// PCI device's SID into the IOAPIC's IRTEs. On hardware (the default,
// CompatProfile::kSpec) the IOAPIC's request carries F0:1F.0 and faults
// 0x26 (5.1.4), and a COMPAT trace line says why a QEMU guest would be
// surprised. Under CompatProfile::kQemu requests from the IOAPIC's source id
// skip source-id verification; other requesters are still checked.
TEST_F(VtdIrTest, IoApicSourceIdFollowsTheCompatProfile) {
  EnableIr();
  SetIrte(2, Irte::Remapped({.vector = 0x33, .sid = kDev, .sq = 0, .svt = 1}));
  unit_->Signal(MsiMessage::Remappable(2, false, 0, kIoApic));
  EXPECT_TRUE(Interrupts().empty());
  ExpectFault(0, kIoApic, 2, 0x26);
  ASSERT_EQ(Details(trace::COMPAT).size(), 1u);
  EXPECT_NE(Details(trace::COMPAT)[0].find("--compat=qemu"), std::string::npos);

  Init(VtdConfig{.ioapic_source_id = kIoApic, .compat = CompatProfile::kQemu});
  EnableIr();
  SetIrte(2, Irte::Remapped({.vector = 0x33, .sid = kDev, .sq = 0, .svt = 1}));
  unit_->Signal(MsiMessage::Remappable(2, false, 0, kIoApic));
  ASSERT_EQ(Interrupts().size(), 1u);
  EXPECT_EQ(Interrupts()[0].message.Vector(), 0x33);
  unit_->Signal(MsiMessage::Remappable(2, false, 0, kDev | 1));  // another function
  EXPECT_EQ(Interrupts().size(), 1u);
  ExpectFault(0, kDev | 1, 2, 0x26);
}

// Reason 0x26, SVT=10b: the requester's bus must lie in [SID[15:8],
// SID[7:0]]. FPD suppresses recording.
TEST_F(VtdIrTest, Fault26BusRange) {
  EnableIr();
  SetIrte(6, Irte::Remapped({.vector = 0x36, .sid = 0x0204, .svt = 2}));
  unit_->Signal(MsiMessage::Remappable(6, false, 0, 0x0200));
  unit_->Signal(MsiMessage::Remappable(6, false, 0, 0x04F8));
  EXPECT_EQ(Interrupts().size(), 2u);
  unit_->Signal(MsiMessage::Remappable(6, false, 0, 0x0100));
  unit_->Signal(MsiMessage::Remappable(6, false, 0, 0x0500));
  EXPECT_EQ(Interrupts().size(), 2u);
  ExpectFault(0, 0x0100, 6, 0x26);
  ExpectFault(1, 0x0500, 6, 0x26);
  SetIrte(7, Irte::Remapped({.vector = 0x37, .fpd = true, .sid = 0x0204, .svt = 2}));
  unit_->Signal(MsiMessage::Remappable(7, false, 0, 0x0900));
  EXPECT_EQ(FrcdHi(2), 0u);
  EXPECT_EQ(Interrupts().size(), 2u);
}

// ---------------------------------------------------------------------------
// Fault recording and the fault event (ch. 7).
// ---------------------------------------------------------------------------

// 7.3 / 11.4.7.2: the fault-event MSI (FEDATA/FEADDR, not remapped) fires
// once when PPF goes 0->1; more faults while PPF is set raise no new event;
// after software clears the records a new fault fires again.
TEST_F(VtdIrTest, FaultEventFiresOncePerCondition) {
  EnableIr();
  ProgramFaultEvent();
  unit_->Signal(MsiMessage::Compat(0, 0x20, kDev));
  unit_->Signal(MsiMessage::Compat(0, 0x21, kDev));
  ASSERT_EQ(sink_.got.size(), 1u);
  const MsiMessage& ev = sink_.got[0].message;
  EXPECT_EQ(ev.address, 0xFEE00000u);
  EXPECT_EQ(ev.data, 0xEFu);
  EXPECT_EQ(ev.requester_id, kUnitRid);
  EXPECT_EQ(Fsts(), vtd::Fsts::kPpf);
  ClearFrcd(0);
  EXPECT_EQ(Fsts(), vtd::Fsts::kPpf);  // FRI stays 0 until PPF drops
  ClearFrcd(1);
  EXPECT_EQ(Fsts(), 0u);
  unit_->Signal(MsiMessage::Compat(0, 0x22, kDev));
  EXPECT_EQ(sink_.got.size(), 2u);
  EXPECT_EQ(Fsts(), vtd::Fsts::kPpf | (2u << 8));  // FRI = 2
  EXPECT_EQ(unit_->stats().fault_events, 2u);
}

// 11.4.7.2: with IM=1 the message is held (IP=1) and sent when IM is
// cleared; if software services the faults first, IP clears and nothing is
// sent.
TEST_F(VtdIrTest, MaskedFaultEventIsHeldThenSentOnUnmask) {
  EnableIr();
  EXPECT_EQ(R32(vtd::kFectlReg), vtd::EventControl::kIm);  // reset value
  ProgramFaultEvent(/*masked=*/true);
  unit_->Signal(MsiMessage::Compat(0, 0x20, kDev));
  EXPECT_TRUE(sink_.got.empty());
  EXPECT_EQ(R32(vtd::kFectlReg), vtd::EventControl::kIm | vtd::EventControl::kIp);
  W32(vtd::kFectlReg, 0);
  ASSERT_EQ(sink_.got.size(), 1u);
  EXPECT_EQ(sink_.got[0].message.data, 0xEFu);
  EXPECT_EQ(R32(vtd::kFectlReg), 0u);

  ClearFrcd(0);
  W32(vtd::kFectlReg, vtd::EventControl::kIm);
  unit_->Signal(MsiMessage::Compat(0, 0x20, kDev));
  EXPECT_EQ(R32(vtd::kFectlReg), vtd::EventControl::kIm | vtd::EventControl::kIp);
  ClearFrcd(1);  // serviced while masked
  EXPECT_EQ(R32(vtd::kFectlReg), vtd::EventControl::kIm);
  W32(vtd::kFectlReg, 0);
  EXPECT_EQ(sink_.got.size(), 1u);
}

// With ECAP.EIM, FEUADDR carries x2APIC destination bits 31:8.
TEST_F(VtdIrTest, FaultEventToX2ApicDestination) {
  EnableIr();
  W32(vtd::kFedataReg, 0xEE);
  W32(vtd::kFeaddrReg, 0xFEE34000);
  W32(vtd::kFeuaddrReg, 0x00001200);
  W32(vtd::kFectlReg, 0);
  unit_->Signal(MsiMessage::Compat(0, 0x20, kDev));
  ASSERT_EQ(sink_.got.size(), 1u);
  EXPECT_TRUE(sink_.got[0].wide);
  EXPECT_EQ(sink_.got[0].destination, 0x1234u);
}

// 7.2.1: the records are a ring; when the next register still holds an
// unserviced fault the new one is dropped and PFO set; while PFO is set
// nothing is recorded; RW1C on PFO resumes recording.
TEST_F(VtdIrTest, PrimaryFaultOverflow) {
  Init({.num_fault_records = 2});
  EnableIr();
  for (uint16_t i = 0; i < 3; ++i) {
    unit_->Signal(MsiMessage::Remappable(i + 40, false, 0, kDev));
  }
  ExpectFault(0, kDev, 40, 0x21);
  ExpectFault(1, kDev, 41, 0x21);
  EXPECT_EQ(Fsts(), vtd::Fsts::kPpf | vtd::Fsts::kPfo);
  EXPECT_EQ(unit_->stats().faults_dropped_overflow, 1u);
  EXPECT_NE(Details(trace::IR_FAULT).back().find("primary fault overflow"),
            std::string::npos);
  ClearFrcd(0);
  unit_->Signal(MsiMessage::Remappable(43, false, 0, kDev));  // PFO still set
  EXPECT_FALSE(FrcdHi(0) & vtd::FaultRecord::kF);
  EXPECT_EQ(unit_->stats().faults_dropped_overflow, 2u);
  W32(vtd::kFstsReg, vtd::Fsts::kPfo);
  unit_->Signal(MsiMessage::Remappable(44, false, 0, kDev));
  ExpectFault(0, kDev, 44, 0x21);  // ring index wrapped to 0
  // PPF never dropped (record 1 is still pending), so FRI keeps the index
  // latched when PPF was set (11.4.7.1); Linux scans forward from it.
  EXPECT_EQ(Fsts(), vtd::Fsts::kPpf);
}

// The DMA side records its faults through RecordFault (same registers).
TEST_F(VtdIrTest, RecordFaultFromDmaSide) {
  ProgramFaultEvent();
  EXPECT_TRUE(unit_->RecordFault(vtd::FaultRecord::Dma(0x18, 0x5123, true, 6)));
  EXPECT_EQ(FrcdLo(0), 0x5000u);
  EXPECT_EQ(FrcdHi(0),
            vtd::FaultRecord::kF | Bit(62) | (uint64_t{6} << 32) | 0x18);
  EXPECT_EQ(sink_.got.size(), 1u);
}

}  // namespace
}  // namespace irqlab::vtd_testing
