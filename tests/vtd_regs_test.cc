// Tests of iommu/vtd_regs.h: value types for VT-d registers and data
// structures, and Linux's fault strings. Each test names the rule it checks
// ([VT-d] = Intel VT-d spec rev 4.x/5.x; Linux = drivers/iommu/intel/dmar.c).
#include "iommu/vtd_regs.h"

#include "gtest/gtest.h"

namespace irqlab::vtd {
namespace {

// [VT-d] 9.10: the remapped-format IRTE layout, xAPIC destination in
// DST[15:8] (bits 47:40), x2APIC destination in bits 63:32.
TEST(VtdIrteTest, RemappedFieldsDecode) {
  Irte e = Irte::Remapped({.vector = 0x41,
                           .destination = 0x3,
                           .delivery_mode = 1,
                           .dest_logical = true,
                           .redirection_hint = true,
                           .trigger_level = true,
                           .fpd = true,
                           .sid = 0xF0F8,
                           .sq = 3,
                           .svt = 1});
  EXPECT_TRUE(e.present());
  EXPECT_TRUE(e.fpd());
  EXPECT_TRUE(e.dest_logical());
  EXPECT_TRUE(e.redirection_hint());
  EXPECT_TRUE(e.trigger_level());
  EXPECT_EQ(e.delivery_mode(), 1);
  EXPECT_EQ(e.vector(), 0x41);
  EXPECT_EQ(e.destination(/*eime=*/false), 3u);
  EXPECT_EQ(Field(e.lo, 47, 40), 3u);
  EXPECT_EQ(e.sid(), 0xF0F8);
  EXPECT_EQ(e.sq(), 3);
  EXPECT_EQ(e.svt(), 1);
  EXPECT_FALSE(e.HasReservedBits(false, false));

  Irte x = Irte::Remapped({.vector = 0x30, .destination = 0x12345, .eime = true});
  EXPECT_EQ(x.destination(/*eime=*/true), 0x12345u);
  // The same entry read in xAPIC mode has reserved DST bits set (9.10).
  EXPECT_TRUE(x.HasReservedBits(/*eime=*/false, false));
  EXPECT_FALSE(x.HasReservedBits(/*eime=*/true, false));
}

// [VT-d] 9.10/9.11: reserved fields of both formats; IM=1 is reserved when
// posting is not supported; SVT=11b is reserved.
TEST(VtdIrteTest, ReservedBits) {
  Irte e = Irte::Remapped({.vector = 0x41, .destination = 1});
  Irte bad = e;
  bad.lo |= Bit(13);
  EXPECT_TRUE(bad.HasReservedBits(false, false));
  bad = e;
  bad.lo |= Bit(24);
  EXPECT_TRUE(bad.HasReservedBits(false, false));
  bad = e;
  bad.hi |= Bit(84 - 64);  // bits 127:84 reserved
  EXPECT_TRUE(bad.HasReservedBits(true, true));
  bad = e;
  bad.hi |= uint64_t{3} << 18;  // SVT=11b
  EXPECT_TRUE(bad.HasReservedBits(false, false));
  bad = e;
  bad.lo |= Bit(11) | Bit(8);  // AVAIL is software's
  EXPECT_FALSE(bad.HasReservedBits(false, false));

  Irte p = Irte::Posted(0x55, 0x40000);
  EXPECT_TRUE(p.posted());
  EXPECT_EQ(p.pda(), 0x40000u);
  EXPECT_TRUE(p.HasReservedBits(false, /*posting_supported=*/false));
  EXPECT_FALSE(p.HasReservedBits(false, /*posting_supported=*/true));
  p.lo |= Bit(30);  // bits 37:24 reserved in the posted format
  EXPECT_TRUE(p.HasReservedBits(false, true));
}

// [VT-d] 9.10 SQ: which requester-id bits SVT=01b compares.
TEST(VtdIrteTest, SourceQualifierMasks) {
  EXPECT_EQ(SourceIdMask(0), 0xFFFF);
  EXPECT_EQ(SourceIdMask(1), 0xFFFB);  // ignore function bit 2
  EXPECT_EQ(SourceIdMask(2), 0xFFF9);  // ignore bits 2:1
  EXPECT_EQ(SourceIdMask(3), 0xFFF8);  // ignore bits 2:0
}

// [VT-d] 11.4.7.6: fault record layout; FI[63:48] = interrupt index.
TEST(VtdFaultRecordTest, Layout) {
  FaultRecord r = FaultRecord::Interrupt(0x0200, 0x2b, 0x25);
  EXPECT_EQ(r.Low(), uint64_t{0x2b} << 48);
  EXPECT_EQ(r.High(), (uint64_t{0x25} << 32) | 0x0200);
  EXPECT_EQ(r.interrupt_index(), 0x2b);
  FaultRecord d = FaultRecord::Dma(0x0018, 0x12345678, /*read=*/true, 6);
  EXPECT_EQ(d.Low(), 0x12345000u);
  EXPECT_EQ(d.High(), Bit(62) | (uint64_t{6} << 32) | 0x18);
}

// Linux dmar_fault_do_one(): the INTR-REMAP line and reason strings.
TEST(VtdFaultRecordTest, LinuxLines) {
  EXPECT_EQ(LinuxFaultLine(FaultRecord::Interrupt(0x0200, 0, 0x25)),
            "DMAR: [INTR-REMAP] Request device [02:00.0] fault index 0x0 "
            "[fault reason 0x25] Blocked a compatibility format interrupt "
            "request");
  EXPECT_EQ(LinuxFaultLine(FaultRecord::Interrupt(0xF0F8, 0x1f, 0x26)),
            "DMAR: [INTR-REMAP] Request device [f0:1f.0] fault index 0x1f "
            "[fault reason 0x26] Blocked an interrupt request due to "
            "source-id verification failure");
  EXPECT_EQ(LinuxFaultLine(FaultRecord::Dma(0x0018, 0x5123, true, 6)),
            "DMAR: [DMA Read NO_PASID] Request device [00:03.0] fault addr "
            "0x5000 [fault reason 0x06] PTE Read access is not set");
  EXPECT_EQ(LinuxFaultReasonString(0x20),
            "Detected reserved fields in the decoded interrupt-remapped "
            "request");
  EXPECT_EQ(LinuxFaultReasonString(0x24),
            "Detected reserved fields in the IRTE entry");
  EXPECT_EQ(LinuxFaultReasonString(0x27), "Unknown");
}

// [VT-d] 7.1.3, the interrupt-remapping fault table's "Qualified" column:
// only faults found with a fetched IRTE (22h P=0, 24h reserved IRTE bits,
// 26h source-id, 27h posted descriptor access) can be suppressed by
// IRTE.FPD; 20h, 21h, 23h and 25h are always recorded.
TEST(VtdRegsTest, QualifiedInterruptFaultsAreThoseWithAnIrte) {
  const bool want[8] = {false, false, true, false, true, false, true, true};
  for (uint8_t r = 0x20; r <= 0x27; ++r) {
    EXPECT_EQ(IsQualifiedInterruptFault(r), want[r - 0x20]) << std::hex << int{r};
  }
}

// 0x27 (posted-descriptor access error) has no string in Linux's
// irq_remap_fault_reasons[] (0x20-0x26): dmar_get_fault_reason() returns
// "Unknown" with fault type UNKNOWN, so dmar_fault_do_one() takes the DMA
// branch: "[DMA Write NO_PASID]" (T=0), "fault addr" = the record's low
// qword page-masked (FI[63:48] holds the interrupt index).
TEST(VtdRegsTest, PostedDescriptorFaultPrintsAsLinuxUnknownReason) {
  EXPECT_EQ(LinuxFaultLine(FaultRecord::Interrupt(0x0200, 4, 0x27)),
            "DMAR: [DMA Write NO_PASID] Request device [02:00.0] fault addr "
            "0x4000000000000 [fault reason 0x27] Unknown");
  EXPECT_FALSE(IsLinuxInterruptRemapReason(0x27));
}

// [VT-d] 11.4.9.9: IQERCD field positions and the IQEI table, in the spec's
// order (Linux: DMAR_IQER_REG_IQEI 3:0, ITESID 47:32, ICESID 63:48).
TEST(VtdRegsTest, IqercdLayoutAndIqeiEncodings) {
  EXPECT_EQ(Iqercd::kIqeiMask, 0xFull);
  EXPECT_EQ(Iqercd::kItesidMask, 0x0000FFFF00000000ull);
  EXPECT_EQ(Iqercd::kIcesidMask, 0xFFFF000000000000ull);
  EXPECT_EQ(static_cast<int>(Iqei::kInfoNotAvailable), 0);
  EXPECT_EQ(static_cast<int>(Iqei::kInvalidTail), 1);
  EXPECT_EQ(static_cast<int>(Iqei::kDescriptorFetch), 2);
  EXPECT_EQ(static_cast<int>(Iqei::kInvalidType), 3);
  EXPECT_EQ(static_cast<int>(Iqei::kReservedField), 4);
  EXPECT_EQ(static_cast<int>(Iqei::kInvalidWidth), 5);
  EXPECT_EQ(static_cast<int>(Iqei::kTailMisaligned), 6);
  EXPECT_EQ(static_cast<int>(Iqei::kInvalidWait), 7);
}

// [VT-d] 11.4.4.1: the one-shot mask software applies (0x96FFFFFF).
TEST(VtdRegsTest, OneShotMask) {
  EXPECT_EQ(~Gcmd::kOneShot, 0x96FFFFFFu);
  EXPECT_EQ(Irta{0x12345000 | Irta::kEime | 7}.entries(), 256u);
  EXPECT_TRUE(Irta{Irta::kEime}.eime());
  EXPECT_EQ(Iqa{0x2000 | 2}.size_bytes(), 0x4000u);
  EXPECT_EQ(qi::Type(qi::Wait(true, false, 1)), qi::kWait);
  EXPECT_EQ(qi::Type(uint64_t{1} << 9 | 4), 0x14);  // type[6:4] in bits 11:9
}

}  // namespace
}  // namespace irqlab::vtd
