// Tests of iommu/vtd_unit.h, invalidation (iommu/vtd_qi.cc, and the
// register-based invalidation of iommu/vtd_unit.cc): the invalidation
// queue and its wait descriptor, IQE and IQERCD, the device-TLB completion
// errors ICE/ITE, the DMA side's invalidation hooks, and the fault
// injection on the queue (drop, delay, reorder). The shared fixture is
// tests/vtd_testing.h. Each test names the spec rule it checks ([VT-d] =
// Intel VT-d spec rev 4.x/5.x, section numbers as cited in
// iommu/vtd_regs.h).
#include "iommu/vtd_unit.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "emu/core/event_queue.h"
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
// Queued invalidation (6.5.2).
// ---------------------------------------------------------------------------

// 6.5.2.8: the wait descriptor writes its status data (SW) and, with IF,
// sets ICS.IWC and sends the invalidation-event interrupt (IECTL, IM/IP as
// for faults).
TEST_F(VtdIrTest, WaitDescriptorWritesStatusAndInterrupts) {
  EnableIr();
  ram_->Store<uint32_t>(kStatus, 0);
  Submit(vtd::qi::Wait(true, false, 0x1234), kStatus);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x1234u);
  EXPECT_EQ(R64(vtd::kIqhReg), R64(vtd::kIqtReg));
  EXPECT_EQ(R32(vtd::kIcsReg), 0u);

  W32(vtd::kIedataReg, 0xEC);
  W32(vtd::kIeaddrReg, 0xFEE01000);
  EXPECT_EQ(R32(vtd::kIectlReg), vtd::EventControl::kIm);
  Submit(vtd::qi::Wait(false, true, 0));
  EXPECT_EQ(R32(vtd::kIcsReg), vtd::kIcsIwc);
  EXPECT_EQ(R32(vtd::kIectlReg), vtd::EventControl::kIm | vtd::EventControl::kIp);
  EXPECT_TRUE(sink_.got.empty());
  W32(vtd::kIectlReg, 0);  // unmask: the held message goes out
  ASSERT_EQ(sink_.got.size(), 1u);
  EXPECT_EQ(sink_.got[0].message.data, 0xECu);
  EXPECT_EQ(sink_.got[0].message.DestinationId(), 1);
  W32(vtd::kIcsReg, vtd::kIcsIwc);
  EXPECT_EQ(R32(vtd::kIcsReg), 0u);
  Submit(vtd::qi::Wait(false, true, 0));  // IWC 0->1 again, unmasked
  EXPECT_EQ(sink_.got.size(), 2u);
}

// 6.5.2.10: an invalid descriptor sets FSTS.IQE, IQH stays on it, later
// descriptors are not processed; the fault event fires; after software
// fixes the slot and clears IQE the queue resumes.
TEST_F(VtdIrTest, InvalidDescriptorStopsQueueWithIqe) {
  EnableIr();
  ProgramFaultEvent();
  const uint64_t bad_slot = tail_;
  ram_->Store<uint32_t>(kStatus, 0);
  ram_->Store<uint64_t>(kQueue + tail_, 0x7);  // type 7: PASID cache (scalable)
  ram_->Store<uint64_t>(kQueue + tail_ + 8, 0);
  ram_->Store<uint64_t>(kQueue + tail_ + 16, vtd::qi::Wait(true, false, 0xAA));
  ram_->Store<uint64_t>(kQueue + tail_ + 24, kStatus);
  tail_ += 32;
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqhReg), bad_slot);
  EXPECT_EQ(R64(vtd::kIqercdReg), static_cast<uint64_t>(vtd::Iqei::kInvalidType));
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0u);
  ASSERT_EQ(sink_.got.size(), 1u);  // fault event
  // Linux's qi_check_fault(): overwrite the bad slot with the wait, clear IQE.
  ram_->Store<uint64_t>(kQueue + bad_slot, vtd::qi::Wait(true, false, 0xBB));
  ram_->Store<uint64_t>(kQueue + bad_slot + 8, kStatus + 4);
  W32(vtd::kFstsReg, vtd::Fsts::kIqe);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(R64(vtd::kIqhReg), tail_);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus + 4), 0xBBu);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0xAAu);
}

// Reserved bits in a descriptor (here an IEC descriptor's bit 20) are an
// IQE too; so is IQT[4]=1 with 256-bit descriptors.
TEST_F(VtdIrTest, ReservedBitsAndMisalignedTailAreIqe) {
  EnableIr();
  Submit(vtd::qi::IecGlobal() | Bit(20));
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), static_cast<uint64_t>(vtd::Iqei::kReservedField));

  Init();
  Command(vtd::Gcmd::kQie);  // IQH 0
  W64(vtd::kIqaReg, kQueue | vtd::Iqa::kDw);
  W64(vtd::kIqtReg, 0x10);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), static_cast<uint64_t>(vtd::Iqei::kTailMisaligned));
}

// 256-bit descriptors (IQA.DW=1): a legacy descriptor in the low half.
TEST_F(VtdIrTest, WideDescriptorsAreProcessed) {
  W64(vtd::kIqaReg, kQueue | vtd::Iqa::kDw);
  Command(vtd::Gcmd::kQie);
  ram_->Store<uint64_t>(kQueue, vtd::qi::Wait(true, false, 0x77));
  ram_->Store<uint64_t>(kQueue + 8, kStatus);
  W64(vtd::kIqtReg, 0x20);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x77u);
  EXPECT_EQ(R64(vtd::kIqhReg), 0x20u);
  EXPECT_EQ(Fsts(), 0u);
}

// 11.4.9.9 IQEI: each IQE cause reads back with the spec's encoding
// (numbers, not the enum, so a wrong table fails): 1 invalid tail pointer,
// 2 descriptor fetch error, 3 invalid descriptor type, 4 reserved field,
// 6 queue tail misaligned with 256-bit descriptors, 7 invalid wait
// descriptor. Clearing IQE clears IQEI.
TEST_F(VtdIrTest, IqercdReportsTheSpecEncodingOfEachIqeCause) {
  // Invalid descriptor type (type 15).
  EnableIr();
  Submit(0xF);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), 3u) << "invalid type";
  // Linux's qi_check_fault(): replace the bad slot, clear IQE; IQEI reads 0.
  ram_->Store<uint64_t>(kQueue + tail_ - 16, vtd::qi::IecGlobal());
  W32(vtd::kFstsReg, vtd::Fsts::kIqe);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(R64(vtd::kIqercdReg), 0u) << "IQEI valid only while IQE=1";

  // Reserved field in a valid type (IEC descriptor bit 20).
  Init();
  EnableIr();
  Submit(vtd::qi::IecGlobal() | Bit(20));
  EXPECT_EQ(R64(vtd::kIqercdReg), 4u) << "reserved field";

  // Invalid wait descriptor: status address outside memory.
  Init();
  EnableIr();
  Submit(vtd::qi::Wait(true, false, 1), kRamSize + 0x1000);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), 7u) << "invalid wait descriptor";

  // Tail beyond the 4 KiB queue (IQA.QS=0).
  Init();
  EnableIr();
  W64(vtd::kIqtReg, 0x2000);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), 1u) << "invalid tail pointer";

  // The queue itself outside memory: the descriptor fetch fails.
  Init();
  W64(vtd::kIqaReg, kRamSize);  // the first page above RAM
  Command(vtd::Gcmd::kQie);
  W64(vtd::kIqtReg, 0x10);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), 2u) << "descriptor fetch error";

  // IQA.DW=1 with IQT[4]=1.
  Init();
  W64(vtd::kIqaReg, kQueue | vtd::Iqa::kDw);
  Command(vtd::Gcmd::kQie);
  W64(vtd::kIqtReg, 0x10);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), 6u) << "queue tail misaligned";
}

// ---------------------------------------------------------------------------
// Device-TLB invalidation completion errors (ECAP.DT=1): ICE and ITE
// (6.5.2.5, 11.4.7.1, 11.4.9.9).
// ---------------------------------------------------------------------------

class VtdDeviceTlbTest : public VtdIrTest {
 protected:
  void InitDt(VtdConfig::DeviceTlb mode) {
    VtdConfig c;
    c.device_tlb = mode;
    Init(c);
    EnableIr();
    ProgramFaultEvent();
    ram_->Store<uint32_t>(kStatus, 0);
    ram_->Store<uint32_t>(kStatus + 4, 0);
  }
  // Writes a descriptor without moving IQT.
  void Put(uint64_t qw0, uint64_t qw1 = 0) {
    ram_->Store<uint64_t>(kQueue + tail_, qw0);
    ram_->Store<uint64_t>(kQueue + tail_ + 8, qw1);
    tail_ = (tail_ + 16) % 4096;
  }
  size_t FaultEvents() {
    size_t n = 0;
    for (const auto& d : sink_.got) n += d.message.data == 0xEF;
    return n;
  }
  static constexpr uint16_t kSid = 0x0018;  // 00:03.0
};

// Without ECAP.DT the descriptor is accepted and completes; ICE/ITE stay 0.
TEST_F(VtdDeviceTlbTest, WithoutDeviceTlbsTheDescriptorIsAccepted) {
  InitDt(VtdConfig::DeviceTlb::kNone);
  EXPECT_FALSE(R64(vtd::kEcapReg) & vtd::Ecap::kDt);
  Put(vtd::qi::DeviceTlb(kSid));
  Put(vtd::qi::Wait(true, false, 0x11), kStatus);
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x11u);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(R64(vtd::kIqhReg), tail_);
}

// ECAP.DT=1 and an endpoint that answers: the wait completes.
TEST_F(VtdDeviceTlbTest, AnsweredInvalidationCompletes) {
  InitDt(VtdConfig::DeviceTlb::kAnswer);
  EXPECT_TRUE(R64(vtd::kEcapReg) & vtd::Ecap::kDt);
  Put(vtd::qi::DeviceTlb(kSid, 5), 0x5000);
  Put(vtd::qi::Wait(true, false, 0x12), kStatus);
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x12u);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(FaultEvents(), 0u);
}

// 6.5.2.5: reserved fields of a device-TLB descriptor (qw0 31:21, qw1 11:1)
// are an IQE (IQEI 4) once the unit supports device-TLBs.
TEST_F(VtdDeviceTlbTest, ReservedBitsInDeviceTlbDescriptorAreIqe) {
  InitDt(VtdConfig::DeviceTlb::kAnswer);
  Submit(vtd::qi::DeviceTlb(kSid) | Bit(24));
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), 4u);
  InitDt(VtdConfig::DeviceTlb::kAnswer);
  Submit(vtd::qi::DeviceTlb(kSid), Bit(3));
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
}

// ITE: no completion arrives. The wait descriptor behind the invalidation
// is aborted (no status write, no ICS.IWC, no invalidation event), IQH
// points past it, FSTS.ITE with IQERCD.ITESID = the SID, one fault event;
// nothing more is fetched until software clears ITE (RW1C), then the queue
// resumes at IQH and ITESID reads 0.
TEST_F(VtdDeviceTlbTest, TimeoutSetsIteAbortsTheWaitAndStopsTheQueue) {
  InitDt(VtdConfig::DeviceTlb::kNoAnswer);
  W32(vtd::kIedataReg, 0xEC);
  W32(vtd::kIeaddrReg, 0xFEE00000);
  W32(vtd::kIectlReg, 0);
  const uint64_t start = tail_;
  Put(vtd::qi::DeviceTlb(kSid));
  Put(vtd::qi::Wait(true, true, 0x21), kStatus);
  Put(vtd::qi::Wait(true, false, 0x22), kStatus + 4);
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIte);
  EXPECT_EQ(R64(vtd::kIqercdReg), uint64_t{kSid} << 32);  // ITESID 47:32
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0u) << "aborted wait wrote status";
  EXPECT_EQ(R32(vtd::kIcsReg), 0u) << "aborted wait set IWC";
  EXPECT_EQ(R64(vtd::kIqhReg), start + 32) << "IQH past the aborted wait";
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus + 4), 0u) << "fetched after ITE";
  EXPECT_EQ(FaultEvents(), 1u);
  EXPECT_EQ(sink_.got.size(), 1u) << "no invalidation event";
  EXPECT_EQ(unit_->stats().invalidation_timeouts, 1u);

  // Still stopped: more tail writes fetch nothing.
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(R64(vtd::kIqhReg), start + 32);
  W32(vtd::kFstsReg, 0);  // writing 0 does not clear (RW1C)
  EXPECT_EQ(Fsts(), vtd::Fsts::kIte);

  W32(vtd::kFstsReg, vtd::Fsts::kIte);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(R64(vtd::kIqercdReg), 0u);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus + 4), 0x22u);
  EXPECT_EQ(R64(vtd::kIqhReg), tail_);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0u) << "aborted wait is not redone";
}

// The time-out elapses even with no wait descriptor behind the
// invalidation: ITE, IQH where fetching stopped (== IQT). A second ITE
// while the first is set is no new fault-event condition.
TEST_F(VtdDeviceTlbTest, TimeoutWithoutWaitStillSetsIte) {
  InitDt(VtdConfig::DeviceTlb::kNoAnswer);
  Submit(vtd::qi::DeviceTlb(kSid));
  EXPECT_EQ(Fsts(), vtd::Fsts::kIte);
  EXPECT_EQ(R64(vtd::kIqhReg), tail_);
  EXPECT_EQ(R64(vtd::kIqercdReg) >> 32, kSid);
  EXPECT_EQ(FaultEvents(), 1u);
  // ITE and IQE together: the queue resumes only when both are clear.
  W32(vtd::kFstsReg, vtd::Fsts::kIte);
  Submit(0xF);  // invalid type -> IQE
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(FaultEvents(), 2u);
}

// ICE: an invalid completion (wrong requester id: sid ^ 7) is discarded and
// sets FSTS.ICE with IQERCD.ICESID = its requester id, one fault event;
// the queue does not stop and the wait completes. A second ICE keeps the
// first ICESID and is no new event. RW1C clears ICE and ICESID.
TEST_F(VtdDeviceTlbTest, InvalidCompletionSetsIceAndTheQueueGoesOn) {
  InitDt(VtdConfig::DeviceTlb::kBadCompletion);
  Put(vtd::qi::DeviceTlb(kSid));
  Put(vtd::qi::Wait(true, false, 0x31), kStatus);
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIce);
  EXPECT_EQ(R64(vtd::kIqercdReg), uint64_t{kSid ^ 7} << 48);  // ICESID 63:48
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x31u);
  EXPECT_EQ(R64(vtd::kIqhReg), tail_);
  EXPECT_EQ(FaultEvents(), 1u);
  Put(vtd::qi::DeviceTlb(0x0100));
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(R64(vtd::kIqercdReg), uint64_t{kSid ^ 7} << 48);
  EXPECT_EQ(FaultEvents(), 1u);
  EXPECT_EQ(unit_->stats().invalidation_completion_errors, 2u);
  W32(vtd::kFstsReg, vtd::Fsts::kIce);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(R64(vtd::kIqercdReg), 0u);
}

// ICE with the fault event masked: held (FECTL.IP) and dropped without a
// message once software clears ICE (11.4.7.2).
TEST_F(VtdDeviceTlbTest, MaskedIceIsHeldAndClearedWithTheStatus) {
  InitDt(VtdConfig::DeviceTlb::kBadCompletion);
  W32(vtd::kFectlReg, vtd::EventControl::kIm);
  Submit(vtd::qi::DeviceTlb(kSid));
  EXPECT_EQ(R32(vtd::kFectlReg), vtd::EventControl::kIm | vtd::EventControl::kIp);
  W32(vtd::kFstsReg, vtd::Fsts::kIce);
  EXPECT_EQ(R32(vtd::kFectlReg), vtd::EventControl::kIm);
  W32(vtd::kFectlReg, 0);
  EXPECT_EQ(FaultEvents(), 0u);
}

// ---------------------------------------------------------------------------
// Context-cache and IOTLB invalidation for the DMA side (6.5.1, 6.5.2.1,
// 6.5.2.3).
// ---------------------------------------------------------------------------

// Context-cache and IOTLB invalidations reach the DMA side's hooks, from
// the queue (6.5.2.1/6.5.2.3) and from CCMD/IOTLB_REG when QI is off
// (6.5.1; ICC/IVT clear and CAIG/IAIG report the granularity). With QI on,
// register-based invalidation is ignored.
TEST_F(VtdIrTest, DmaInvalidationHooks) {
  std::vector<ContextCacheInvalidation> cc;
  std::vector<IotlbInvalidation> tlb;
  unit_->SetDmaHooks({.context_cache = [&](const auto& i) { cc.push_back(i); },
                      .iotlb = [&](const auto& i) { tlb.push_back(i); }});
  // Register-based, QI off.
  W64(vtd::kCcmdReg, vtd::Ccmd::kIcc | (uint64_t{3} << 61) |
                         (uint64_t{2} << 32) | (uint64_t{0x0200} << 16) | 7);
  EXPECT_EQ(R64(vtd::kCcmdReg) >> 59, 3u << 2 | 3u);  // ICC=0 CIRG=3 CAIG=3
  ASSERT_EQ(cc.size(), 1u);
  EXPECT_EQ(cc[0].granularity, ContextCacheInvalidation::Granularity::kDevice);
  EXPECT_EQ(cc[0].domain_id, 7);
  EXPECT_EQ(cc[0].source_id, 0x0200);
  EXPECT_EQ(cc[0].function_mask, 2);
  EXPECT_FALSE(cc[0].queued);
  W64(vtd::kIvaReg, 0x123000 | Bit(6) | 2);
  W64(vtd::kIotlbReg, vtd::IotlbReg::kIvt | (uint64_t{3} << 60) |
                          (uint64_t{9} << 32));
  EXPECT_FALSE(R64(vtd::kIotlbReg) & vtd::IotlbReg::kIvt);
  EXPECT_EQ(vtd::Field(R64(vtd::kIotlbReg), 58, 57), 3u);
  ASSERT_EQ(tlb.size(), 1u);
  EXPECT_EQ(tlb[0].granularity, IotlbInvalidation::Granularity::kPage);
  EXPECT_EQ(tlb[0].domain_id, 9);
  EXPECT_EQ(tlb[0].address, 0x123000u);
  EXPECT_EQ(tlb[0].address_mask, 2);
  EXPECT_TRUE(tlb[0].invalidation_hint);
  // Queued.
  EnableIr();
  Submit(vtd::qi::ContextCache(1, 0, 0, 0));
  Submit(vtd::qi::Iotlb(2, 5, true, true));
  ASSERT_EQ(cc.size(), 2u);
  EXPECT_TRUE(cc[1].queued);
  EXPECT_EQ(cc[1].granularity, ContextCacheInvalidation::Granularity::kGlobal);
  ASSERT_EQ(tlb.size(), 2u);
  EXPECT_EQ(tlb[1].granularity, IotlbInvalidation::Granularity::kDomain);
  EXPECT_EQ(tlb[1].domain_id, 5);
  EXPECT_TRUE(tlb[1].drain_reads);
  // Register-based with QI on: ignored.
  W64(vtd::kCcmdReg, vtd::Ccmd::kIcc | (uint64_t{1} << 61));
  EXPECT_EQ(cc.size(), 2u);
  EXPECT_FALSE(R64(vtd::kCcmdReg) & vtd::Ccmd::kIcc);
}

// ---------------------------------------------------------------------------
// Fault injection on the invalidation queue.
// ---------------------------------------------------------------------------

// DropInvalidations: the next n descriptors of the type complete (the
// wait behind them writes its status) without reaching the DMA hooks or
// the IEC; other types and waits are untouched; kAny matches any type.
TEST_F(VtdIrTest, DroppedInvalidationsCompleteWithoutInvalidating) {
  std::vector<ContextCacheInvalidation> cc;
  std::vector<IotlbInvalidation> tlb;
  std::vector<DeviceTlbInvalidation> dev;
  unit_->SetDmaHooks({.context_cache = [&](const auto& i) { cc.push_back(i); },
                      .iotlb = [&](const auto& i) { tlb.push_back(i); },
                      .device_tlb = [&](const auto& i) { dev.push_back(i); }});
  EnableIr();
  using T = VtdUnit::InvalidationType;
  unit_->DropInvalidations(T::kIotlb, 2);
  Submit(vtd::qi::ContextCache(1, 0, 0, 0));  // not an IOTLB one: done
  Submit(vtd::qi::Iotlb(2, 5, false, false));
  Submit(vtd::qi::Wait(true, false, 0x77), kStatus);
  Submit(vtd::qi::Iotlb(1, 0, false, false));
  Submit(vtd::qi::Iotlb(1, 0, false, false));  // the third one is done
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x77u);
  EXPECT_EQ(cc.size(), 1u);
  EXPECT_EQ(tlb.size(), 1u);
  EXPECT_EQ(R64(vtd::kIqhReg), R64(vtd::kIqtReg));
  EXPECT_EQ(Fsts(), 0u);
  std::vector<std::string> inj = Details(trace::FAULT_INJECT);
  ASSERT_EQ(inj.size(), 2u);
  EXPECT_EQ(inj[0], "IOTLB invalidation skipped (injected): domain did 5");
  EXPECT_EQ(inj[1], "IOTLB invalidation skipped (injected): global");

  // kAny: the next descriptor whatever its type, never a wait.
  unit_->DropInvalidations(T::kAny, 1);
  Submit(vtd::qi::Wait(true, false, 0x78), kStatus);
  Submit(vtd::qi::DeviceTlb(0x0018));
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x78u);
  EXPECT_TRUE(dev.empty());
  EXPECT_EQ(Details(trace::FAULT_INJECT).back(),
            "device-TLB invalidation skipped (injected): sid 00:03.0");
  Submit(vtd::qi::DeviceTlb(0x0018));
  EXPECT_EQ(dev.size(), 1u);

  // IEC (SkipIecInvalidations is the same hook): the stale entry stays.
  SetIrte(9, Irte::Remapped({.vector = 0x41}));
  unit_->Signal(MsiMessage::Remappable(9, false, 0, kDev));
  SetIrte(9, Irte::Remapped({.vector = 0x42}));
  unit_->DropInvalidations(T::kContextCache, 1);
  unit_->SkipIecInvalidations(1);
  Submit(vtd::qi::IecIndex(9, 0));
  unit_->Signal(MsiMessage::Remappable(9, false, 0, kDev));
  EXPECT_EQ(sink_.got.back().message.Vector(), 0x41);
  EXPECT_EQ(Details(trace::FAULT_INJECT).back(),
            "IEC invalidation skipped (injected): index 0x9 mask 0");
  EXPECT_EQ(Details(trace::QI_DESCRIPTOR).back(), "IEC invalidation skipped (injected)");
  Submit(vtd::qi::ContextCache(3, 1, 0x18, 0));
  EXPECT_EQ(cc.size(), 1u);
  EXPECT_EQ(Details(trace::FAULT_INJECT).back(),
            "context-cache invalidation skipped (injected): device did 1 sid 00:03.0 fm 0");
  Submit(vtd::qi::IecGlobal());
  unit_->Signal(MsiMessage::Remappable(9, false, 0, kDev));
  EXPECT_EQ(sink_.got.back().message.Vector(), 0x42);
}

// A malformed descriptor is still an IQE under a drop fault (the drop
// applies to descriptors that pass the checks) and does not use it up.
TEST_F(VtdIrTest, DropFaultDoesNotHideQueueErrors) {
  EnableIr();
  unit_->DropInvalidations(VtdUnit::InvalidationType::kIec, 1);
  Submit(vtd::qi::IecGlobal() | Bit(63));  // reserved bit
  EXPECT_TRUE(Fsts() & vtd::Fsts::kIqe);
  EXPECT_TRUE(Details(trace::FAULT_INJECT).empty());
}

// DelayInvalidations: the queue stalls before each of the next n
// descriptors; IQH stays put, IQT writes are latched, and the resume event
// (on the event queue, `ticks` later) processes them; the wait status is
// written only then.
TEST_F(VtdIrTest, DelayedQueueStallsAndResumesFromTheEventQueue) {
  EnableIr();
  EventQueue events;
  EXPECT_FALSE(unit_->DelayInvalidations(100, 1));  // no event queue yet
  unit_->set_event_queue(&events);
  ASSERT_TRUE(unit_->DelayInvalidations(1000, 2));
  clock_.Set(5000);
  ram_->Store<uint32_t>(kStatus, 0);
  const uint64_t head = R64(vtd::kIqhReg);
  Submit(vtd::qi::IecGlobal());
  Submit(vtd::qi::Wait(true, false, 0x55), kStatus);
  EXPECT_TRUE(unit_->queue_stalled());
  EXPECT_EQ(R64(vtd::kIqhReg), head);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0u);
  ASSERT_EQ(events.NextTime(), std::optional<uint64_t>(6000));
  clock_.Set(6000);
  events.RunUntil(6000);
  // The IEC descriptor ran; the wait is the second delayed descriptor.
  EXPECT_TRUE(unit_->queue_stalled());
  EXPECT_EQ(R64(vtd::kIqhReg), head + 16);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0u);
  ASSERT_EQ(events.NextTime(), std::optional<uint64_t>(7000));
  clock_.Set(7000);
  events.RunUntil(7000);
  EXPECT_FALSE(unit_->queue_stalled());
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x55u);
  EXPECT_EQ(R64(vtd::kIqhReg), R64(vtd::kIqtReg));
  std::vector<std::string> inj = Details(trace::FAULT_INJECT);
  ASSERT_EQ(inj.size(), 4u);
  EXPECT_EQ(inj[0], absl::StrFormat("invalidation queue stalled at IQH %#x (IQT %#x) for 1000 "
                                    "ticks (injected), 1 more stall(s) to come",
                                    head, head + 16));
  EXPECT_EQ(inj[1], absl::StrFormat("invalidation queue resumes at IQH %#x (IQT %#x) "
                                    "(injected delay over)",
                                    head, head + 32));
  // Spent: the next submission runs at once.
  Submit(vtd::qi::Wait(true, false, 0x56), kStatus);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x56u);
  EXPECT_TRUE(events.empty());

  // A delay past the end of time saturates (TimeAfter) instead of wrapping
  // into the past: the queue stays stalled.
  ASSERT_TRUE(unit_->DelayInvalidations(~uint64_t{0}, 1));
  Submit(vtd::qi::Wait(true, false, 0x57), kStatus);
  EXPECT_TRUE(unit_->queue_stalled());
  ASSERT_EQ(events.NextTime(), std::optional<uint64_t>(~uint64_t{0}));
  events.RunUntil(uint64_t{1} << 62);
  EXPECT_TRUE(unit_->queue_stalled());
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x56u);
}

// ReorderInvalidations: the first two pending non-wait descriptors are
// processed in swapped order (an IEC invalidation overtakes an IOTLB one;
// the wait between them stays in place); with fewer than two pending the
// fault is a traced no-op and is spent.
TEST_F(VtdIrTest, ReorderSwapsTheFirstTwoPendingNonWaitDescriptors) {
  std::vector<std::string> order;
  unit_->SetDmaHooks({.iotlb = [&](const auto&) { order.push_back("iotlb"); }});
  unit_->set_iec_listener([&](bool, uint32_t, uint8_t) { order.push_back("iec"); });
  EnableIr();
  order.clear();
  unit_->ReorderInvalidations();
  // Batch: IOTLB, wait, IEC, wait — one IQT write.
  const uint64_t head = tail_;
  const auto put = [&](uint64_t qw0, uint64_t qw1) {
    ram_->Store<uint64_t>(kQueue + tail_, qw0);
    ram_->Store<uint64_t>(kQueue + tail_ + 8, qw1);
    tail_ = (tail_ + 16) % 4096;
  };
  put(vtd::qi::Iotlb(1, 0, false, false), 0);
  put(vtd::qi::Wait(true, false, 1), kStatus);
  put(vtd::qi::IecGlobal(), 0);
  put(vtd::qi::Wait(true, false, 2), kStatus + 4);
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(order, (std::vector<std::string>{"iec", "iotlb"}));
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 1u);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus + 4), 2u);
  EXPECT_EQ(R64(vtd::kIqhReg), tail_);
  EXPECT_EQ(Details(trace::FAULT_INJECT),
            (std::vector<std::string>{absl::StrFormat(
                "reorder: descriptor at IQH %#x (IOTLB) and at %#x (IEC) processed in "
                "swapped order (injected)",
                head, head + 32)}));
  // Guest memory is untouched.
  EXPECT_EQ(ram_->Load<uint64_t>(kQueue + head), vtd::qi::Iotlb(1, 0, false, false));
  // Fewer than two: noted, spent.
  order.clear();
  unit_->ReorderInvalidations();
  Submit(vtd::qi::IecGlobal());
  Submit(vtd::qi::Iotlb(1, 0, false, false));
  EXPECT_EQ(order, (std::vector<std::string>{"iec", "iotlb"}));
  EXPECT_EQ(Details(trace::FAULT_INJECT).back(),
            absl::StrFormat("reorder: 1 non-wait descriptor(s) pending between IQH %#x and "
                            "IQT %#x: nothing reordered (injected)",
                            head + 64, head + 80));
}

}  // namespace
}  // namespace irqlab::vtd_testing
