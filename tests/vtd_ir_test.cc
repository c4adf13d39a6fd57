// Tests of iommu/vtd_unit.h, the register file and interrupt remapping
// (iommu/vtd_unit.cc, iommu/vtd_ir.cc): capabilities, register access
// rules, GCMD/GSTS, remapping to compatibility and x2APIC messages, the
// interrupt entry cache, posted interrupts, and the robustness and
// fast-path differential tests. Fault reasons and fault recording are in
// vtd_ir_fault_test.cc, queued invalidation in vtd_qi_test.cc; the shared
// fixture is tests/vtd_testing.h. Each test names the spec rule it checks
// ([VT-d] = Intel VT-d spec rev 4.x/5.x, section numbers as cited in
// iommu/vtd_regs.h).
#include "iommu/vtd_unit.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "emu/core/clock.h"
#include "emu/core/guest_ram.h"
#include "emu/core/msi.h"
#include "emu/core/msi_sink.h"
#include "emu/core/trace.h"
#include "gtest/gtest.h"
#include "iommu/vtd_regs.h"
#include "tests/vtd_testing.h"

namespace irqlab::vtd_testing {
namespace {

using vtd::Bit;
using vtd::Irte;

// ---------------------------------------------------------------------------
// Register file.
// ---------------------------------------------------------------------------

// [VT-d] 11.4.1-11.4.3: VER, CAP and ECAP report the configuration; FRO
// and IRO locate the fault recording and IOTLB registers.
TEST_F(VtdIrTest, CapabilitiesReportConfiguration) {
  EXPECT_EQ(R32(vtd::kVerReg), 0x10u);
  vtd::Cap cap{R64(vtd::kCapReg)};
  vtd::Ecap ecap{R64(vtd::kEcapReg)};
  EXPECT_EQ(cap.num_fault_records(), 8);
  EXPECT_EQ(cap.fault_records_offset(), vtd::kFaultRecordsOffset);
  EXPECT_EQ(cap.sagaw(), vtd::Cap::kSagaw39 | vtd::Cap::kSagaw48);
  EXPECT_EQ(cap.mgaw(), 48);
  EXPECT_EQ(cap.nd(), 2);
  EXPECT_FALSE(cap.pi());
  EXPECT_TRUE(ecap.qi());
  EXPECT_TRUE(ecap.ir());
  EXPECT_TRUE(ecap.eim());
  EXPECT_EQ(ecap.iotlb_regs_offset(), vtd::kIotlbRegsOffset);
  // The 64-bit registers read the same as two dwords.
  EXPECT_EQ(R32(vtd::kCapReg + 4), static_cast<uint32_t>(cap.raw >> 32));

  Init({.num_fault_records = 3, .posted_interrupts = true});
  cap = vtd::Cap{R64(vtd::kCapReg)};
  EXPECT_EQ(cap.num_fault_records(), 3);
  EXPECT_TRUE(cap.pi());
}

// Inconsistent configurations are errors naming the field, not crashes.
TEST_F(VtdIrTest, BadConfigurationsAreRejected) {
  RecordingSink sink;
  auto ram = GuestRam::Create(4096);
  ASSERT_TRUE(ram.ok());
  EXPECT_FALSE(VtdUnit::Create({.num_fault_records = 0}, &sink, ram->get(),
                               nullptr, nullptr).ok());
  EXPECT_FALSE(VtdUnit::Create({.num_fault_records = 193}, &sink, ram->get(),
                               nullptr, nullptr).ok());
  EXPECT_FALSE(VtdUnit::Create({.base = 0xFED90010}, &sink, ram->get(),
                               nullptr, nullptr).ok());
  auto no_qi = VtdUnit::Create({.queued_invalidation = false}, &sink,
                               ram->get(), nullptr, nullptr);
  ASSERT_FALSE(no_qi.ok());
  EXPECT_NE(no_qi.status().message().find("queued_invalidation"),
            std::string::npos);
  EXPECT_FALSE(VtdUnit::Create({}, nullptr, ram->get(), nullptr, nullptr).ok());
  EXPECT_TRUE(VtdUnit::Create({}, &sink, ram->get(), nullptr, nullptr).ok());
}

// [VT-d] 11.4: reserved bits read 0 and ignore writes; IRTA.EIME is
// reserved without ECAP.EIM; FEUADDR likewise.
TEST_F(VtdIrTest, ReservedBitsReadZero) {
  W64(vtd::kIrtaReg, ~uint64_t{0});
  EXPECT_EQ(R64(vtd::kIrtaReg), vtd::Irta::kWritable);
  W64(vtd::kIqaReg, ~uint64_t{0});
  EXPECT_EQ(R64(vtd::kIqaReg), vtd::Iqa::kWritable);
  W64(vtd::kRtaddrReg, ~uint64_t{0});
  EXPECT_EQ(R64(vtd::kRtaddrReg), vtd::kRtaddrWritable);
  W32(vtd::kFeaddrReg, 0xFFFFFFFF);
  EXPECT_EQ(R32(vtd::kFeaddrReg), 0xFFFFFFFCu);
  W32(vtd::kFedataReg, 0xFFFFFFFF);
  EXPECT_EQ(R32(vtd::kFedataReg), 0xFFFFu);
  W32(vtd::kGstsReg, 0xFFFFFFFF);  // read-only
  EXPECT_EQ(R32(vtd::kGstsReg), 0u);
  W32(vtd::kFstsReg, 0xFFFFFFFF);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(R32(0x300), 0u);  // hole between IOTLB and fault records

  Init({.extended_interrupt_mode = false});
  W64(vtd::kIrtaReg, ~uint64_t{0});
  EXPECT_EQ(R64(vtd::kIrtaReg), vtd::Irta::kWritable & ~vtd::Irta::kEime);
  W32(vtd::kFeuaddrReg, 0xFFFFFFFF);
  EXPECT_EQ(R32(vtd::kFeuaddrReg), 0u);
}

// [VT-d] 11.2: only aligned dword/qword accesses; others read 0, drop the
// write and are traced (never a host error).
TEST_F(VtdIrTest, UnsupportedAccessSizesAreHarmless) {
  W64(vtd::kIrtaReg, 0x12345000);
  EXPECT_EQ(unit_->Read(kCpu, vtd::kIrtaReg, 1), 0u);
  EXPECT_EQ(unit_->Read(kCpu, vtd::kIrtaReg, 2), 0u);
  EXPECT_EQ(unit_->Read(kCpu, vtd::kIrtaReg + 4, 8), 0u);  // misaligned qword
  unit_->Write(kCpu, vtd::kIrtaReg, 2, 0xFFFF);
  unit_->Write(kCpu, vtd::kIrtaReg + 2, 4, 0xFFFF);
  unit_->Write(kCpu, 0x5000, 4, 1);  // beyond the page
  EXPECT_EQ(R64(vtd::kIrtaReg), 0x12345000u);
  EXPECT_FALSE(Details(trace::VTD_COMMAND).empty());
}

// [VT-d] 11.4.4: each GCMD command is reflected in GSTS; one-shot SIRTP
// and SRTP leave their status set, the enable bits follow the command;
// GCMD reads 0.
TEST_F(VtdIrTest, GlobalCommandSequencing) {
  uint64_t latched_root = 0;
  bool te = false;
  unit_->SetDmaHooks({.root_table_pointer = [&](uint64_t v) { latched_root = v; },
                      .translation_enable = [&](bool on) { te = on; }});
  EXPECT_EQ(R32(vtd::kGstsReg), 0u);
  Command(vtd::Gcmd::kQie);
  EXPECT_EQ(R32(vtd::kGstsReg), vtd::Gsts::kQies);
  W64(vtd::kIrtaReg, kIrt | 7);
  Command(vtd::Gcmd::kSirtp);
  EXPECT_EQ(R32(vtd::kGstsReg), vtd::Gsts::kQies | vtd::Gsts::kIrtps);
  EXPECT_EQ(unit_->irta().entries(), 256u);
  Command(vtd::Gcmd::kIre);
  EXPECT_EQ(R32(vtd::kGstsReg),
            vtd::Gsts::kQies | vtd::Gsts::kIrtps | vtd::Gsts::kIres);
  Command(vtd::Gcmd::kCfi);
  EXPECT_TRUE(R32(vtd::kGstsReg) & vtd::Gsts::kCfis);
  Command(vtd::Gcmd::kCfi, false);
  EXPECT_FALSE(R32(vtd::kGstsReg) & vtd::Gsts::kCfis);
  EXPECT_TRUE(R32(vtd::kGstsReg) & vtd::Gsts::kIres);  // untouched
  W64(vtd::kRtaddrReg, 0x7000);
  Command(vtd::Gcmd::kSrtp);
  EXPECT_TRUE(R32(vtd::kGstsReg) & vtd::Gsts::kRtps);
  EXPECT_EQ(latched_root, 0x7000u);
  EXPECT_EQ(unit_->root_table_address(), 0x7000u);
  Command(vtd::Gcmd::kTe);
  EXPECT_TRUE(te);
  EXPECT_TRUE(unit_->translation_enabled());
  EXPECT_EQ(R32(vtd::kGcmdReg), 0u);
  Command(vtd::Gcmd::kIre, false);
  EXPECT_FALSE(unit_->interrupt_remapping_enabled());
  EXPECT_TRUE(unit_->translation_enabled());
}

// [VT-d] 11.4.4.1: "software must not change more than one field per
// write". The model services every changed field and traces the violation.
TEST_F(VtdIrTest, MultipleCommandsInOneWriteAreServicedAndTraced) {
  W32(vtd::kGcmdReg, vtd::Gcmd::kQie | vtd::Gcmd::kSirtp | vtd::Gcmd::kIre);
  EXPECT_EQ(R32(vtd::kGstsReg),
            vtd::Gsts::kQies | vtd::Gsts::kIrtps | vtd::Gsts::kIres);
  auto details = Details(trace::VTD_COMMAND);
  ASSERT_FALSE(details.empty());
  EXPECT_NE(details.back().find("multiple commands"), std::string::npos);
}

// [VT-d] 11.4.9.1: IQH resets to 0 when queued invalidation is disabled.
TEST_F(VtdIrTest, DisablingQiResetsHead) {
  EnableIr();
  Submit(vtd::qi::Wait(false, false, 0));
  EXPECT_EQ(R64(vtd::kIqhReg), 32u);
  Command(vtd::Gcmd::kQie, false);
  EXPECT_EQ(R64(vtd::kIqhReg), 0u);
}

// [VT-d] 11.4.10.1 / 11.4.4.1: IRTA_REG takes effect only on SIRTP.
TEST_F(VtdIrTest, IrtaIsLatchedOnlyBySirtp) {
  EnableIr(/*s=*/0);  // 2 entries
  W64(vtd::kIrtaReg, kIrt | 7);
  unit_->Signal(MsiMessage::Remappable(5, false, 0, kDev));
  ExpectFault(0, kDev, 5, vtd::fault::kIrIndexOutOfRange);
  Command(vtd::Gcmd::kSirtp);
  EXPECT_EQ(unit_->irta().entries(), 256u);
}

// ---------------------------------------------------------------------------
// Remapping.
// ---------------------------------------------------------------------------

// [VT-d] 5.1.4, 9.10: the IRTE's fields become a compatibility-format
// message (xAPIC destination DST[15:8]); the requester id is kept.
TEST_F(VtdIrTest, RemapsToCompatibilityMessage) {
  EnableIr();
  SetIrte(3, Irte::Remapped({.vector = 0x41,
                             .destination = 0x2,
                             .delivery_mode = 1,
                             .dest_logical = true,
                             .redirection_hint = true,
                             .trigger_level = true}));
  unit_->Signal(MsiMessage::Remappable(3, false, 0, kDev));
  ASSERT_EQ(sink_.got.size(), 1u);
  const MsiMessage& m = sink_.got[0].message;
  EXPECT_FALSE(sink_.got[0].wide);
  EXPECT_FALSE(m.IsRemappable());
  EXPECT_EQ(m.DestinationId(), 2);
  EXPECT_EQ(m.Vector(), 0x41);
  EXPECT_EQ(m.DeliveryMode(), DeliveryMode::kLowestPriority);
  EXPECT_TRUE(m.DestinationModeLogical());
  EXPECT_TRUE(m.RedirectionHint());
  EXPECT_TRUE(m.TriggerLevel());
  EXPECT_TRUE(m.LevelAssert());
  EXPECT_EQ(m.requester_id, kDev);
  EXPECT_EQ(unit_->stats().remapped, 1u);
  // Handle + subhandle (SHV=1) selects the entry (5.1.2.2).
  SetIrte(5, Irte::Remapped({.vector = 0x45, .destination = 1}));
  unit_->Signal(MsiMessage::Remappable(3, true, 2, kDev));
  ASSERT_EQ(sink_.got.size(), 2u);
  EXPECT_EQ(sink_.got[1].message.Vector(), 0x45);
  EXPECT_EQ(Details(trace::IR_REMAP).back(),
            "index 0x5 -> dest 0x1 vec 0x45 fixed edge [iec miss]");
}

// [VT-d] 9.10 with IRTA.EIME=1: the 32-bit DST is an x2APIC id; it goes
// downstream through SignalX2Apic with the full id.
TEST_F(VtdIrTest, X2ApicDestinationWithEime) {
  EnableIr(4, /*eime=*/true);
  SetIrte(1, Irte::Remapped({.vector = 0x50, .destination = 0x12345, .eime = true}));
  unit_->Signal(MsiMessage::Remappable(1, false, 0, kDev));
  ASSERT_EQ(sink_.got.size(), 1u);
  EXPECT_TRUE(sink_.got[0].wide);
  EXPECT_EQ(sink_.got[0].destination, 0x12345u);
  EXPECT_EQ(sink_.got[0].message.DestinationId(), 0x45);
  EXPECT_EQ(sink_.got[0].message.Vector(), 0x50);
}

// MsiSink's default SignalX2Apic folds ids up to 0x7FFF into the extended
// destination id convention (address bits 11:5).
TEST(MsiSinkTest, DefaultSignalX2ApicUsesExtendedDestinationId) {
  struct Plain : MsiSink {
    MsiOutcome Signal(const MsiMessage& m) override {
      got.push_back(m);
      return MsiOutcome::kAccepted;
    }
    std::vector<MsiMessage> got;
  } plain;
  plain.SignalX2Apic(MsiMessage::Compat(0x23, 0x41, kDev), 0x123);
  ASSERT_EQ(plain.got.size(), 1u);
  EXPECT_EQ(plain.got[0].ExtendedDestinationId(), 0x123u);
  EXPECT_EQ(plain.got[0].Vector(), 0x41);
}

// ---------------------------------------------------------------------------
// Interrupt entry cache (6.2.5, 6.5.2.7).
// ---------------------------------------------------------------------------

// An IRTE rewritten in memory without invalidation keeps translating to the
// old entry; a global IEC invalidation makes the new one visible.
TEST_F(VtdIrTest, IecKeepsStaleEntryUntilGlobalInvalidation) {
  EnableIr();
  SetIrte(9, Irte::Remapped({.vector = 0x41, .destination = 1}));
  unit_->Signal(MsiMessage::Remappable(9, false, 0, kDev));
  SetIrte(9, Irte::Remapped({.vector = 0x42, .destination = 2}));
  unit_->Signal(MsiMessage::Remappable(9, false, 0, kDev));
  ASSERT_EQ(sink_.got.size(), 2u);
  EXPECT_EQ(sink_.got[1].message.Vector(), 0x41);  // stale
  EXPECT_EQ(sink_.got[1].message.DestinationId(), 1);
  Submit(vtd::qi::IecGlobal());
  unit_->Signal(MsiMessage::Remappable(9, false, 0, kDev));
  EXPECT_EQ(sink_.got[2].message.Vector(), 0x42);
  EXPECT_EQ(sink_.got[2].message.DestinationId(), 2);
  EXPECT_EQ(unit_->stats().iec_hits, 1u);
  EXPECT_EQ(unit_->stats().iec_misses, 2u);
  EXPECT_EQ(Details(trace::IEC_INVALIDATE).back(),
            "IEC global invalidate: 1 cached dropped");
}

// Index-selective invalidation drops the 2^IM entries sharing IIDX's upper
// bits, and only those.
TEST_F(VtdIrTest, IecIndexSelectiveInvalidationWithMask) {
  EnableIr();
  for (uint32_t i = 4; i < 8; ++i) {
    SetIrte(i, Irte::Remapped({.vector = static_cast<uint8_t>(0x40 + i)}));
    unit_->Signal(MsiMessage::Remappable(i, false, 0, kDev));
  }
  for (uint32_t i = 4; i < 8; ++i) {
    SetIrte(i, Irte::Remapped({.vector = static_cast<uint8_t>(0x80 + i)}));
  }
  const auto vector_of = [&](uint16_t i) {
    unit_->Signal(MsiMessage::Remappable(i, false, 0, kDev));
    return sink_.got.back().message.Vector();
  };
  Submit(vtd::qi::IecIndex(5, 0));  // just 5
  EXPECT_EQ(vector_of(4), 0x44);
  EXPECT_EQ(vector_of(5), 0x85);
  EXPECT_EQ(vector_of(6), 0x46);
  Submit(vtd::qi::IecIndex(6, 1));  // 6 and 7
  EXPECT_EQ(vector_of(4), 0x44);
  EXPECT_EQ(vector_of(6), 0x86);
  EXPECT_EQ(vector_of(7), 0x87);
  EXPECT_EQ(unit_->iec_size(), 4u);
}

// iec_capacity=0 mimics emulators without an IEC: every interrupt re-reads
// the IRTE, so a change is visible at once.
TEST_F(VtdIrTest, NoCacheRereadsEveryTime) {
  Init({.iec_capacity = 0});
  EnableIr();
  SetIrte(1, Irte::Remapped({.vector = 0x41}));
  unit_->Signal(MsiMessage::Remappable(1, false, 0, kDev));
  SetIrte(1, Irte::Remapped({.vector = 0x42}));
  unit_->Signal(MsiMessage::Remappable(1, false, 0, kDev));
  EXPECT_EQ(sink_.got.back().message.Vector(), 0x42);
  EXPECT_EQ(unit_->iec_size(), 0u);
}

// A bounded IEC evicts first-in entries (deterministically).
TEST_F(VtdIrTest, BoundedIecEvictsOldest) {
  Init({.iec_capacity = 2});
  EnableIr();
  for (uint32_t i = 0; i < 3; ++i) {
    SetIrte(i, Irte::Remapped({.vector = static_cast<uint8_t>(0x40 + i)}));
    unit_->Signal(MsiMessage::Remappable(i, false, 0, kDev));
  }
  EXPECT_EQ(unit_->iec_size(), 2u);
  EXPECT_EQ(unit_->stats().iec_evictions, 1u);
  SetIrte(0, Irte::Remapped({.vector = 0x90}));
  unit_->Signal(MsiMessage::Remappable(0, false, 0, kDev));  // was evicted
  EXPECT_EQ(sink_.got.back().message.Vector(), 0x90);
}

// Non-present entries are not cached: making an entry present needs no
// invalidation.
TEST_F(VtdIrTest, NotPresentEntriesAreNotCached) {
  EnableIr();
  unit_->Signal(MsiMessage::Remappable(3, false, 0, kDev));
  ExpectFault(0, kDev, 3, 0x22);
  SetIrte(3, Irte::Remapped({.vector = 0x43}));
  unit_->Signal(MsiMessage::Remappable(3, false, 0, kDev));
  ASSERT_EQ(Interrupts().size(), 1u);
  EXPECT_EQ(Interrupts()[0].message.Vector(), 0x43);
}

// 11.4.4.1 SIRTP: software must invalidate the IEC after it; without
// CAP.ESIRTPS the old table's entries stay cached.
TEST_F(VtdIrTest, SirtpDoesNotFlushIecUnlessEsirtps) {
  for (bool esirtps : {false, true}) {
    SCOPED_TRACE(esirtps);
    Init({.enhanced_sirtp = esirtps});
    tail_ = 0;
    EnableIr();
    SetIrte(1, Irte::Remapped({.vector = 0x41}));
    unit_->Signal(MsiMessage::Remappable(1, false, 0, kDev));
    // A second table at kIrt + 0x1000 with a different entry 1.
    ram_->Store<uint64_t>(kIrt + 0x1000 + 16,
                          Irte::Remapped({.vector = 0x51}).lo);
    W64(vtd::kIrtaReg, (kIrt + 0x1000) | 4);
    Command(vtd::Gcmd::kSirtp);
    unit_->Signal(MsiMessage::Remappable(1, false, 0, kDev));
    EXPECT_EQ(sink_.got.back().message.Vector(), esirtps ? 0x51 : 0x41);
    sink_.got.clear();
  }
}

// ---------------------------------------------------------------------------
// Posted interrupts (5.2.3, 9.11, 9.12).
// ---------------------------------------------------------------------------

class VtdPostedTest : public VtdIrTest {
 protected:
  void SetUp() override {
    Init({.posted_interrupts = true});
    EnableIr();
    // PID: NV 0xF2, NDST = APIC 3 in xAPIC form (NDST[15:8]).
    ram_->Store<uint64_t>(kPid + 32, (uint64_t{0xF2} << 16) |
                                         (uint64_t{3 << 8} << 32));
  }
  bool PirBit(uint8_t v) {
    return (ram_->Load<uint64_t>(kPid + 8 * (v / 64)) >> (v % 64)) & 1;
  }
  uint64_t Control() { return ram_->Load<uint64_t>(kPid + 32); }
};

// Posting sets the PIR bit, sets ON and sends the notification (NV to
// NDST) only on ON 0->1.
TEST_F(VtdPostedTest, PostsAndNotifiesOnce) {
  SetIrte(2, Irte::Posted(0x55, kPid));
  SetIrte(3, Irte::Posted(0x99, kPid));
  unit_->Signal(MsiMessage::Remappable(2, false, 0, kDev));
  EXPECT_TRUE(PirBit(0x55));
  EXPECT_TRUE(Control() & vtd::PostedDescriptor::kOn);
  ASSERT_EQ(sink_.got.size(), 1u);
  EXPECT_EQ(sink_.got[0].message.Vector(), 0xF2);
  EXPECT_EQ(sink_.got[0].message.DestinationId(), 3);
  unit_->Signal(MsiMessage::Remappable(3, false, 0, kDev));
  EXPECT_TRUE(PirBit(0x99));
  EXPECT_EQ(sink_.got.size(), 1u);  // ON was already set
  EXPECT_EQ(unit_->stats().posted, 2u);
  EXPECT_EQ(unit_->stats().notifications, 1u);
}

// SN=1 suppresses notification (ON stays clear) unless the IRTE is urgent.
TEST_F(VtdPostedTest, SuppressNotificationUnlessUrgent) {
  ram_->Store<uint64_t>(kPid + 32, Control() | vtd::PostedDescriptor::kSn);
  SetIrte(2, Irte::Posted(0x55, kPid));
  SetIrte(3, Irte::Posted(0x56, kPid, /*urgent=*/true));
  unit_->Signal(MsiMessage::Remappable(2, false, 0, kDev));
  EXPECT_TRUE(PirBit(0x55));
  EXPECT_FALSE(Control() & vtd::PostedDescriptor::kOn);
  EXPECT_TRUE(sink_.got.empty());
  unit_->Signal(MsiMessage::Remappable(3, false, 0, kDev));
  EXPECT_TRUE(Control() & vtd::PostedDescriptor::kOn);
  EXPECT_EQ(sink_.got.size(), 1u);
}

// A descriptor outside memory is fault 0x27 (rev 4.x); nothing delivered.
TEST_F(VtdPostedTest, Fault27DescriptorOutsideMemory) {
  SetIrte(4, Irte::Posted(0x55, 0x100000000ull));
  unit_->Signal(MsiMessage::Remappable(4, false, 0, kDev));
  EXPECT_TRUE(sink_.got.empty());
  ExpectFault(0, kDev, 4, 0x27);
}

// ---------------------------------------------------------------------------
// Robustness.
// ---------------------------------------------------------------------------

// Guest mistakes are never host crashes: random register writes (any
// offset/size/value), random IRTE bytes, random descriptors and random
// messages. Invariants: a faulted interrupt is never delivered, and each
// Signal() ends in exactly one of pass-through / remap / post / fault.
TEST_F(VtdIrTest, FuzzNeverCrashesAndNeverDeliversFaults) {
  Init({.num_fault_records = 4, .posted_interrupts = true, .iec_capacity = 16});
  std::mt19937_64 rng(0x5eed1234);
  const auto pick = [&](uint64_t n) { return rng() % n; };
  constexpr unsigned kSizes[] = {1, 2, 4, 8, 3};
  for (int iter = 0; iter < 20000; ++iter) {
    if (iter % 500 == 0) {
      // Recover to a working setup now and then (as a guest driver's
      // re-init would), so remapping, the IEC and posting keep being
      // exercised: clear the faults, rebuild QI + IRTA, enable IR.
      for (int i = 0; i < 4; ++i) ClearFrcd(i);
      W32(vtd::kFstsReg, 0xFFFFFFFF);
      Command(vtd::Gcmd::kIre, false);
      Command(vtd::Gcmd::kQie, false);
      tail_ = 0;
      EnableIr(/*s=*/5, /*eime=*/pick(2) == 0, /*cfi=*/pick(2) == 0);
      W32(vtd::kFectlReg, static_cast<uint32_t>(pick(2)) << 31);
    }
    switch (pick(24) < 2 ? 0 : 1 + pick(7)) {
      case 0: {  // register write
        uint64_t off = pick(10) < 7 ? pick(0xC0) & ~uint64_t{3} : pick(0x1000);
        if (pick(4) == 0) off = vtd::kFaultRecordsOffset + pick(64);
        if (pick(6) == 0) off = vtd::kGcmdReg;
        uint64_t value = rng();
        if (pick(2)) value &= 0xFFFFF;  // addresses inside RAM
        unit_->Write(kCpu, off, kSizes[pick(5)], value);
        break;
      }
      case 1:  // register read
        (void)unit_->Read(kCpu, pick(0x1100), kSizes[pick(5)]);
        break;
      case 2: {  // random IRTE / PID / queue bytes
        const uint64_t regions[] = {kIrt, kQueue, kPid, 0};
        uint64_t addr = regions[pick(4)] + (pick(0x800) & ~uint64_t{7});
        ram_->Store<uint64_t>(addr, rng());
        break;
      }
      case 3:  // a well-formed IRTE (remapped or posted) now and then
        if (pick(4) == 0) {
          SetIrte(pick(64), Irte::Posted(static_cast<uint8_t>(rng()),
                                         kPid + 64 * pick(4), pick(2)));
        } else {
          SetIrte(pick(64),
                  Irte::Remapped({.vector = static_cast<uint8_t>(rng()),
                                  .destination = static_cast<uint32_t>(pick(4)),
                                  .fpd = pick(8) == 0,
                                  .sid = static_cast<uint16_t>(0x0100 + pick(0x400)),
                                  .sq = static_cast<uint8_t>(pick(4)),
                                  .svt = static_cast<uint8_t>(pick(6) == 0 ? 1 + pick(2) : 0)}));
        }
        break;
      case 4:  // an invalidation descriptor now and then
        Submit(pick(2) ? vtd::qi::IecGlobal()
                       : vtd::qi::IecIndex(static_cast<uint16_t>(pick(64)),
                                           static_cast<uint8_t>(pick(4))));
        break;
      default: {  // a message
        const uint16_t rid = static_cast<uint16_t>(0x0100 + pick(0x400));
        MsiMessage m(0, 0, rid);
        switch (pick(4)) {
          case 0:
            m = MsiMessage::Compat(pick(256), static_cast<uint8_t>(rng()), rid);
            break;
          case 1:
            m = MsiMessage(rng(), static_cast<uint32_t>(rng()), rid);
            break;
          default:
            m = MsiMessage::Remappable(static_cast<uint16_t>(pick(80)),
                                       pick(2), static_cast<uint16_t>(pick(4)),
                                       rid);
            if (pick(8) == 0) m.data |= 0x10000;
        }
        const VtdStats before = unit_->stats();
        const size_t delivered_before = sink_.interrupts;
        unit_->Signal(m);
        const VtdStats& after = unit_->stats();
        const uint64_t faults = after.faults - before.faults;
        const uint64_t outcomes = faults +
                                  (after.remapped - before.remapped) +
                                  (after.posted - before.posted) +
                                  (after.passed_through - before.passed_through);
        ASSERT_EQ(outcomes, 1u) << "iter " << iter << " " << m.ToString();
        const size_t delivered = sink_.interrupts - delivered_before;
        if (faults != 0) {
          ASSERT_EQ(delivered, 0u)
              << "faulted interrupt delivered, iter " << iter << " "
              << m.ToString();
        } else {
          ASSERT_LE(delivered, 1u);
        }
        break;
      }
    }
  }
  // Every recorded fault is one of the interrupt-remapping reasons.
  for (int i = 0; i < 4; ++i) {
    const uint64_t hi = FrcdHi(i);
    if (hi & vtd::FaultRecord::kF) {
      const uint8_t reason = (hi >> 32) & 0xFF;
      EXPECT_GE(reason, 0x20);
      EXPECT_LE(reason, 0x27);
    }
  }
  EXPECT_GT(unit_->stats().faults, 0u);
  EXPECT_GT(unit_->stats().remapped + unit_->stats().passed_through, 0u);
  // The fixed seed exercises every path (coverage guard).
  EXPECT_GT(unit_->stats().remapped, 0u);
  EXPECT_GT(unit_->stats().posted, 0u);
  EXPECT_GT(unit_->stats().iec_hits, 0u);
  EXPECT_GT(unit_->stats().faults_suppressed_fpd, 0u);
  EXPECT_GT(unit_->stats().faults_dropped_overflow, 0u);
}

// VtdUnit::Signal() has a fast path for untraced IEC hits. Differential
// test: the same random script (IRTEs of every kind, SVT checks that pass
// and fail, posting, IEC invalidations, IRE/EIME changes, malformed and
// compatibility requests) on a traced and an untraced unit must deliver the
// same messages, write the same memory and count the same statistics.
TEST(VtdFastPathTest, UntracedSignalMatchesTracedSignal) {
  struct Rig {
    explicit Rig(bool traced) {
      ram = std::move(GuestRam::Create(kRamSize)).value();
      if (traced) tracer.AddSink(&recorder);
      VtdConfig c;
      c.requester_id = kUnitRid;
      c.posted_interrupts = true;
      c.iec_capacity = 48;  // smaller than the 64 entries used: evictions
      unit = std::move(VtdUnit::Create(c, &sink, ram.get(), &clock,
                                       traced ? &tracer : nullptr))
                 .value();
    }
    void W64(uint64_t off, uint64_t v) { unit->Write(kCpu, off, 8, v); }
    void Command(uint32_t bit, bool set) {
      const uint32_t st = static_cast<uint32_t>(unit->Read(kCpu, vtd::kGstsReg, 4)) &
                          ~vtd::Gcmd::kOneShot;
      unit->Write(kCpu, vtd::kGcmdReg, 4, set ? st | bit : st & ~bit);
    }
    void Submit(uint64_t qw0) {
      ram->Store<uint64_t>(kQueue + tail, qw0);
      ram->Store<uint64_t>(kQueue + tail + 8, 0);
      tail = (tail + 16) % 4096;
      W64(vtd::kIqtReg, tail);
    }
    RecordingSink sink;
    ManualClock clock;
    Tracer tracer;
    TraceRecorder recorder;
    std::unique_ptr<GuestRam> ram;
    std::unique_ptr<VtdUnit> unit;
    uint64_t tail = 0;
  };
  Rig traced(true), plain(false);
  Rig* rigs[] = {&traced, &plain};
  for (Rig* r : rigs) {
    r->W64(vtd::kIqaReg, kQueue);
    r->Command(vtd::Gcmd::kQie, true);
    r->W64(vtd::kIrtaReg, kIrt | 5);  // 64 entries
    r->Command(vtd::Gcmd::kSirtp, true);
    r->Submit(vtd::qi::IecGlobal());
    r->Command(vtd::Gcmd::kIre, true);
  }
  std::mt19937_64 rng(0xFA57);
  const auto pick = [&](uint64_t n) { return rng() % n; };
  size_t hits_untraced = 0;
  for (int iter = 0; iter < 30000; ++iter) {
    const uint64_t op = pick(100);
    if (op < 8) {  // rewrite an IRTE (without invalidating: stale IEC)
      const uint32_t idx = static_cast<uint32_t>(pick(64));
      Irte e;
      if (pick(5) == 0) {
        e = Irte::Posted(static_cast<uint8_t>(rng()), kPid + 64 * pick(4),
                         pick(2), static_cast<uint16_t>(0x0100 + pick(8)),
                         static_cast<uint8_t>(pick(4)),
                         static_cast<uint8_t>(pick(3)));
      } else if (pick(10) == 0) {
        e.lo = rng();
        e.hi = rng();
      } else {
        e = Irte::Remapped({.vector = static_cast<uint8_t>(0x20 + pick(0xE0)),
                            .destination = static_cast<uint32_t>(pick(4)),
                            .fpd = pick(8) == 0,
                            .sid = static_cast<uint16_t>(0x0100 + pick(8)),
                            .sq = static_cast<uint8_t>(pick(4)),
                            .svt = static_cast<uint8_t>(pick(3))});
      }
      for (Rig* r : rigs) {
        r->ram->Store<uint64_t>(kIrt + 16 * idx, e.lo);
        r->ram->Store<uint64_t>(kIrt + 16 * idx + 8, e.hi);
      }
    } else if (op < 12) {  // IEC invalidation
      const uint64_t d = pick(3) == 0
                             ? vtd::qi::IecGlobal()
                             : vtd::qi::IecIndex(static_cast<uint16_t>(pick(64)),
                                                 static_cast<uint8_t>(pick(3)));
      for (Rig* r : rigs) r->Submit(d);
    } else if (op < 13) {  // IRE off/on, EIME flip (+ the flush software owes)
      const bool eime = pick(2);
      const bool ire = pick(4) != 0;
      for (Rig* r : rigs) {
        r->W64(vtd::kIrtaReg, kIrt | 5 | (eime ? vtd::Irta::kEime : 0));
        r->Command(vtd::Gcmd::kSirtp, true);
        r->Submit(vtd::qi::IecGlobal());
        r->Command(vtd::Gcmd::kIre, ire);
      }
    } else {  // a message
      const uint16_t rid = static_cast<uint16_t>(0x0100 + pick(8));
      MsiMessage m = MsiMessage::Remappable(static_cast<uint16_t>(pick(70)),
                                            pick(2), static_cast<uint16_t>(pick(3)),
                                            rid);
      if (pick(20) == 0) m.data |= 0x10000;
      if (pick(20) == 0) m = MsiMessage::Compat(pick(4), 0x40, rid);
      const uint64_t hits_before = plain.unit->stats().iec_hits;
      const MsiOutcome a = traced.unit->Signal(m);
      const MsiOutcome b = plain.unit->Signal(m);
      hits_untraced += plain.unit->stats().iec_hits - hits_before;
      ASSERT_EQ(a, b) << "iteration " << iter;
    }
    ASSERT_EQ(traced.sink.got.size(), plain.sink.got.size()) << "iteration " << iter;
  }
  for (size_t i = 0; i < traced.sink.got.size(); ++i) {
    EXPECT_EQ(traced.sink.got[i].message, plain.sink.got[i].message) << i;
    EXPECT_EQ(traced.sink.got[i].destination, plain.sink.got[i].destination) << i;
    EXPECT_EQ(traced.sink.got[i].wide, plain.sink.got[i].wide) << i;
  }
  const VtdStats& x = traced.unit->stats();
  const VtdStats& y = plain.unit->stats();
  EXPECT_EQ(x.passed_through, y.passed_through);
  EXPECT_EQ(x.remapped, y.remapped);
  EXPECT_EQ(x.posted, y.posted);
  EXPECT_EQ(x.notifications, y.notifications);
  EXPECT_EQ(x.faults, y.faults);
  EXPECT_EQ(x.faults_recorded, y.faults_recorded);
  EXPECT_EQ(x.faults_suppressed_fpd, y.faults_suppressed_fpd);
  EXPECT_EQ(x.faults_dropped_overflow, y.faults_dropped_overflow);
  EXPECT_EQ(x.iec_hits, y.iec_hits);
  EXPECT_EQ(x.iec_misses, y.iec_misses);
  EXPECT_EQ(x.iec_evictions, y.iec_evictions);
  EXPECT_EQ(x.fault_events, y.fault_events);
  EXPECT_EQ(0, std::memcmp(traced.ram->data(), plain.ram->data(), kRamSize));
  // The script exercises the fast path, remapping and faults alike.
  EXPECT_GT(hits_untraced, 3000u);
  EXPECT_GT(y.remapped, 3000u);
  EXPECT_GT(y.faults, 1000u);
  EXPECT_GT(y.posted, 100u);
}

}  // namespace
}  // namespace irqlab::vtd_testing
