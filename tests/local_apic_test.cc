// Tests of apic/local_apic.h: one local APIC as a state machine (Intel SDM
// vol. 3, chapter 11). Each test names the behaviour it proves and the SDM
// rule it checks.
#include "apic/local_apic.h"

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "apic/apic_regs.h"
#include "emu/core/event_queue.h"
#include "emu/core/trace.h"
#include "gtest/gtest.h"

namespace irqlab {
namespace {

using apic::Lvt;

constexpr uint64_t kEn = apic::kApicBaseEn;
constexpr uint64_t kExtd = apic::kApicBaseExtd;
constexpr uint64_t kBase = apic::kDefaultApicBase;

// Records IPIs the APIC hands to the bus.
class FakeIpiSink : public IpiSink {
 public:
  void SendIpi(const Ipi& ipi) override { ipis.push_back(ipi); }
  std::vector<Ipi> ipis;
};

class LocalApicTest : public ::testing::Test {
 protected:
  LocalApicTest() { Make(LocalApicConfig{.cpu = 0, .apic_id = 0, .bsp = true}); }

  void Make(const LocalApicConfig& config) {
    apic_.reset();
    tracer_ = Tracer();
    tracer_.AddSink(&recorder_);
    recorder_.Clear();
    LocalApicCallbacks cb;
    cb.kick = [this] { ++kicks_; };
    cb.eoi_broadcast = [this](uint8_t v) { eoi_broadcasts_.push_back(v); };
    cb.init = [this] { ++inits_; };
    cb.startup = [this](uint8_t v) { sipis_.push_back(v); };
    apic_ = std::make_unique<LocalApic>(config, &q_, &q_, &tracer_, cb);
    apic_->set_ipi_sink(&sink_);
  }

  uint32_t R(uint32_t offset) {
    return static_cast<uint32_t>(apic_->Read(AccessOrigin::Cpu(0), offset, 4));
  }
  void W(uint32_t offset, uint32_t value) {
    apic_->Write(AccessOrigin::Cpu(0), offset, 4, value);
  }
  // Software-enables the APIC (SVR[8], SDM 11.4.7.2), spurious vector 0xFF.
  void Enable() { W(apic::kRegSvr, 0x1FF); }
  void ToX2apic() {
    ASSERT_TRUE(apic_->WriteApicBase(kBase | kEn | kExtd).ok());
  }
  // ESR as software reads it: write, then read (SDM 11.5.3).
  uint32_t ReadEsr() {
    W(apic::kRegEsr, 0);
    return R(apic::kRegEsr);
  }
  // Bit `v` of the 256-bit register at `base` (ISR/TMR/IRR), through MMIO.
  bool Bit(uint32_t base, int v) {
    return (R(base + 0x10 * (v / 32)) >> (v % 32)) & 1;
  }
  // Delivers the pending vector like the vCPU would; returns it or -1.
  int Deliver() {
    const int v = apic_->PendingVector();
    if (v >= 0) apic_->Acknowledge(v);
    return v;
  }
  int CountStage(Stage stage) {
    int n = 0;
    for (const auto& e : recorder_.events()) n += e.stage() == stage;
    return n;
  }
  std::optional<TraceEvent> LastOf(Stage stage) {
    std::optional<TraceEvent> out;
    for (const auto& e : recorder_.events()) {
      if (e.stage() == stage) out = e;
    }
    return out;
  }

  EventQueue q_;
  TraceRecorder recorder_;
  Tracer tracer_;
  FakeIpiSink sink_;
  std::unique_ptr<LocalApic> apic_;
  int kicks_ = 0;
  int inits_ = 0;
  std::vector<uint8_t> eoi_broadcasts_;
  std::vector<uint8_t> sipis_;
};

// ---------------------------------------------------------------------------
// Reset state and register file.

// SDM 11.4.7.1 power-up state: SVR 0xFF (software disabled), LVTs masked,
// DFR all ones; 11.4.4: IA32_APIC_BASE = 0xFEE00000 | EN | BSP; 11.4.8:
// version 0x14, max LVT entry 5 (no CMCI), bit 24 directed EOI.
TEST_F(LocalApicTest, PowerUpStateIsSoftwareDisabledXapicAtDefaultBase) {
  EXPECT_EQ(apic_->apic_base(), 0xFEE00900u);
  EXPECT_EQ(R(apic::kRegSvr), 0xFFu);
  EXPECT_EQ(R(apic::kRegVersion), 0x01050014u);
  EXPECT_EQ(R(apic::kRegDfr), 0xFFFFFFFFu);
  for (uint32_t off = apic::kRegLvtTimer; off <= apic::kRegLvtError; off += 0x10) {
    EXPECT_EQ(R(off), 0x10000u) << std::hex << off;
  }
  EXPECT_EQ(R(apic::kRegTpr), 0u);
  EXPECT_EQ(R(apic::kRegPpr), 0u);
  EXPECT_FALSE(apic_->software_enabled());
}

// 11.4.8: with CMCI the max LVT entry is 6 and 0x2F0 is implemented;
// without directed-EOI support bit 24 is clear.
TEST_F(LocalApicTest, VersionReflectsCmciAndDirectedEoiConfig) {
  Make({.cpu = 0, .apic_id = 3, .directed_eoi = false, .cmci = true});
  EXPECT_EQ(R(apic::kRegVersion), 0x00060014u);
  W(apic::kRegLvtCmci, 0x42);
  EXPECT_EQ(R(apic::kRegLvtCmci), 0x10042u);  // software disabled: masked
  EXPECT_EQ(ReadEsr(), 0u);
}

// 11.4.6: the xAPIC ID is in bits 31:24.
TEST_F(LocalApicTest, XapicIdIsInBits31To24) {
  Make({.cpu = 2, .apic_id = 7});
  EXPECT_EQ(R(apic::kRegId), 0x07000000u);
  EXPECT_EQ(apic_->id(), 7u);
}

// 11.5.3 bit 7: a 32-bit access to an unimplemented register sets "Illegal
// Register Address"; 11.4.1: other sizes/alignments are not register
// accesses (read 0, write ignored, no error).
TEST_F(LocalApicTest, UnimplementedRegisterSetsIllegalRegisterAddress) {
  EXPECT_EQ(R(0x2F0), 0u);  // LVT CMCI absent (max LVT 5)
  EXPECT_EQ(ReadEsr(), apic::kEsrIllegalRegisterAddress);
  EXPECT_EQ(apic_->Read(AccessOrigin::Cpu(0), 0x24, 4), 0u);
  EXPECT_EQ(apic_->Read(AccessOrigin::Cpu(0), 0x20, 1), 0u);
  apic_->Write(AccessOrigin::Cpu(0), 0x80, 2, 0xFF);  // wrong size: ignored
  EXPECT_EQ(R(apic::kRegTpr), 0u);
  EXPECT_EQ(ReadEsr(), 0u);
  W(0x3F0, 1);  // SELF_IPI does not exist in xAPIC mode
  EXPECT_EQ(ReadEsr(), apic::kEsrIllegalRegisterAddress);
}

// 11.5.3: "This write clears any previously logged errors and updates the
// ESR with any errors detected since the last write to the ESR."
TEST_F(LocalApicTest, EsrIsLatchedByWriteThenRead) {
  Enable();
  apic_->Accept(5, false, DeliveryMode::kFixed);
  EXPECT_EQ(R(apic::kRegEsr), 0u);  // not visible before a write
  W(apic::kRegEsr, 0);
  EXPECT_EQ(R(apic::kRegEsr), apic::kEsrReceiveIllegalVector);
  W(apic::kRegEsr, 0);
  EXPECT_EQ(R(apic::kRegEsr), 0u);
}

// ---------------------------------------------------------------------------
// Priorities (11.8.3.1) and acceptance (11.8.4).

// An interrupt is delivered only if its class (vector[7:4]) is above
// PPR[7:4]; with no interrupt in service PPR = TPR.
TEST_F(LocalApicTest, TprMasksInterruptsOfItsClassAndBelow) {
  Enable();
  apic_->Accept(0x45, false, DeliveryMode::kFixed);
  EXPECT_TRUE(Bit(apic::kRegIrr0, 0x45));
  W(apic::kRegTpr, 0x40);
  EXPECT_EQ(R(apic::kRegPpr), 0x40u);
  EXPECT_EQ(apic_->PendingVector(), -1);
  W(apic::kRegTpr, 0x4F);
  EXPECT_EQ(apic_->PendingVector(), -1);
  W(apic::kRegTpr, 0x3F);
  EXPECT_EQ(R(apic::kRegPpr), 0x3Fu);
  EXPECT_EQ(apic_->PendingVector(), 0x45);
}

// PPR = TPR if TPR[7:4] >= ISRV[7:4], else ISRV[7:4]:0 (11.8.3.1).
TEST_F(LocalApicTest, PprIsMaxOfTprAndInServiceClass) {
  Enable();
  apic_->Accept(0x65, false, DeliveryMode::kFixed);
  EXPECT_EQ(Deliver(), 0x65);
  EXPECT_EQ(R(apic::kRegPpr), 0x60u);
  W(apic::kRegTpr, 0x3A);
  EXPECT_EQ(R(apic::kRegPpr), 0x60u);
  // APR (Figure 11-15): max of the TPR, ISRV and IRRV classes here.
  EXPECT_EQ(R(apic::kRegApr), 0x60u);
  W(apic::kRegTpr, 0x6A);
  EXPECT_EQ(R(apic::kRegPpr), 0x6Au);
  W(apic::kRegTpr, 0x7A);
  EXPECT_EQ(R(apic::kRegPpr), 0x7Au);
  EXPECT_EQ(R(apic::kRegApr), 0x7Au);
}

// A vector of the same class as the one in service waits (11.8.3.1); a
// higher class nests: the ISR stacks, and each EOI retires the highest ISR
// bit (11.8.5), so EOIs complete in reverse order of delivery.
TEST_F(LocalApicTest, IsrStacksAndEoiRetiresHighestFirst) {
  Enable();
  apic_->Accept(0x31, false, DeliveryMode::kFixed);
  EXPECT_EQ(Deliver(), 0x31);
  apic_->Accept(0x3F, false, DeliveryMode::kFixed);  // same class: waits
  EXPECT_EQ(apic_->PendingVector(), -1);
  apic_->Accept(0x80, false, DeliveryMode::kFixed);  // higher: nests
  EXPECT_EQ(Deliver(), 0x80);
  EXPECT_TRUE(Bit(apic::kRegIsr0, 0x31));
  EXPECT_TRUE(Bit(apic::kRegIsr0, 0x80));
  EXPECT_EQ(R(apic::kRegPpr), 0x80u);
  W(apic::kRegEoi, 0);
  EXPECT_FALSE(Bit(apic::kRegIsr0, 0x80));
  EXPECT_TRUE(Bit(apic::kRegIsr0, 0x31));
  EXPECT_EQ(apic_->PendingVector(), -1);  // 0x3F still blocked by 0x31
  W(apic::kRegEoi, 0);
  EXPECT_FALSE(Bit(apic::kRegIsr0, 0x31));
  EXPECT_EQ(Deliver(), 0x3F);
  auto eoi = LastOf(trace::APIC_EOI);
  ASSERT_TRUE(eoi.has_value());
  EXPECT_EQ(eoi->vector(), 0x31);
}

// Among pending vectors the highest is delivered first (11.8.4), and a
// second acceptance of a pending vector coalesces (one IRR bit).
TEST_F(LocalApicTest, HighestIrrVectorFirstAndPendingVectorsCoalesce) {
  Enable();
  apic_->Accept(0x50, false, DeliveryMode::kFixed);
  apic_->Accept(0x90, false, DeliveryMode::kFixed);
  apic_->Accept(0x90, false, DeliveryMode::kLowestPriority);
  EXPECT_EQ(Deliver(), 0x90);
  W(apic::kRegEoi, 0);
  EXPECT_EQ(Deliver(), 0x50);
  W(apic::kRegEoi, 0);
  EXPECT_EQ(Deliver(), -1);
}

// The vCPU is kicked when something becomes deliverable, not when a
// blocked vector is accepted.
TEST_F(LocalApicTest, KicksOnlyWhenANewVectorBecomesDeliverable) {
  Enable();
  W(apic::kRegTpr, 0x50);
  kicks_ = 0;
  apic_->Accept(0x42, false, DeliveryMode::kFixed);
  EXPECT_EQ(kicks_, 0);
  W(apic::kRegTpr, 0);
  EXPECT_EQ(kicks_, 1);
  auto d = LastOf(trace::APIC_DELIVERABLE);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->vector(), 0x42);
}

// 11.8.5: EOI of a level-triggered vector (TMR set at acceptance, 11.8.4)
// is broadcast to the IOAPICs; an edge-triggered one is not.
TEST_F(LocalApicTest, LevelTriggeredEoiIsBroadcastEdgeIsNot) {
  Enable();
  apic_->Accept(0x51, true, DeliveryMode::kFixed);
  apic_->Accept(0x41, false, DeliveryMode::kFixed);
  EXPECT_TRUE(Bit(apic::kRegTmr0, 0x51));
  EXPECT_FALSE(Bit(apic::kRegTmr0, 0x41));
  EXPECT_EQ(Deliver(), 0x51);
  W(apic::kRegEoi, 0);
  EXPECT_EQ(eoi_broadcasts_, std::vector<uint8_t>{0x51});
  EXPECT_EQ(Deliver(), 0x41);
  W(apic::kRegEoi, 0);
  EXPECT_EQ(eoi_broadcasts_, std::vector<uint8_t>{0x51});
}

// 11.8.5: with SVR[12] (suppress EOI broadcast) set, a level EOI is not
// broadcast (directed EOI to the IOAPIC is expected instead).
TEST_F(LocalApicTest, SvrBit12SuppressesEoiBroadcast) {
  W(apic::kRegSvr, 0x11FF);
  EXPECT_EQ(R(apic::kRegSvr), 0x11FFu);
  apic_->Accept(0x51, true, DeliveryMode::kFixed);
  EXPECT_EQ(Deliver(), 0x51);
  W(apic::kRegEoi, 0);
  EXPECT_TRUE(eoi_broadcasts_.empty());
  EXPECT_FALSE(Bit(apic::kRegIsr0, 0x51));
  auto eoi = LastOf(trace::APIC_EOI);
  ASSERT_TRUE(eoi.has_value());
  EXPECT_NE(eoi->detail().find("suppressed"), std::string::npos);
}

// 11.8.5 / 11.4.8: without directed-EOI support SVR[12] is reserved (reads
// 0) and the broadcast happens.
TEST_F(LocalApicTest, SvrBit12IsReservedWithoutDirectedEoi) {
  Make({.cpu = 0, .directed_eoi = false});
  W(apic::kRegSvr, 0x11FF);
  EXPECT_EQ(R(apic::kRegSvr), 0x1FFu);
  apic_->Accept(0x51, true, DeliveryMode::kFixed);
  Deliver();
  W(apic::kRegEoi, 0);
  EXPECT_EQ(eoi_broadcasts_, std::vector<uint8_t>{0x51});
}

// 11.5.3 bit 6: a received vector 0-15 is illegal: recorded, not delivered.
TEST_F(LocalApicTest, ReceivedIllegalVectorSetsEsrBit6AndIsNotDelivered) {
  Enable();
  for (int v = 0; v < 16; ++v) apic_->Accept(v, false, DeliveryMode::kFixed);
  EXPECT_EQ(apic_->PendingVector(), -1);
  EXPECT_EQ(R(apic::kRegIrr0), 0u);
  EXPECT_EQ(ReadEsr(), apic::kEsrReceiveIllegalVector);
  apic_->Accept(16, false, DeliveryMode::kFixed);  // 16 is legal
  EXPECT_EQ(apic_->PendingVector(), 16);
}

// 11.5.3 bit 5: sending an IPI with vector 0-15 is illegal: nothing sent.
TEST_F(LocalApicTest, SentIllegalVectorSetsEsrBit5AndSendsNothing) {
  Enable();
  W(apic::kRegIcrHigh, 1u << 24);
  W(apic::kRegIcrLow, 0x0000000A);
  EXPECT_TRUE(sink_.ipis.empty());
  EXPECT_EQ(ReadEsr(), apic::kEsrSendIllegalVector);
}

// 11.5.3: an error fires the LVT error vector when unmasked; an illegal
// error vector is recorded without recursing.
TEST_F(LocalApicTest, ErrorLvtFiresOnError) {
  Enable();
  W(apic::kRegLvtError, 0xE3);
  apic_->Accept(3, false, DeliveryMode::kFixed);
  EXPECT_EQ(apic_->PendingVector(), 0xE3);
  W(apic::kRegLvtError, 0x05);  // illegal error vector
  apic_->Accept(3, false, DeliveryMode::kFixed);
  EXPECT_EQ(ReadEsr(), apic::kEsrReceiveIllegalVector);
  EXPECT_FALSE(Bit(apic::kRegIrr0, 5));
}

// ---------------------------------------------------------------------------
// Software enable (11.4.7.2).

// "The mask bits for all the LVT entries are set; attempts to reset these
// bits will be ignored." Fixed interrupts are not accepted; NMI is.
TEST_F(LocalApicTest, SoftwareDisabledApicForcesLvtMasks) {
  Enable();
  W(apic::kRegLvtTimer, 0x30);
  W(apic::kRegLvtLint0, 0x700);
  EXPECT_EQ(R(apic::kRegLvtTimer), 0x30u);
  W(apic::kRegSvr, 0xFF);
  EXPECT_EQ(R(apic::kRegLvtTimer), 0x10030u);
  EXPECT_EQ(R(apic::kRegLvtLint0), 0x10700u);
  W(apic::kRegLvtTimer, 0x40);
  EXPECT_EQ(R(apic::kRegLvtTimer), 0x10040u);
  apic_->Accept(0x40, false, DeliveryMode::kFixed);
  EXPECT_FALSE(apic_->irr(0x40));
  EXPECT_EQ(CountStage(trace::APIC_DROPPED), 1);
  apic_->Accept(0, false, DeliveryMode::kNmi);
  EXPECT_TRUE(apic_->TakeNmi());
  EXPECT_FALSE(apic_->TakeNmi());
  // "The software-disable has no effect on the local APIC's ability to send
  // IPIs."
  W(apic::kRegIcrHigh, 1u << 24);
  W(apic::kRegIcrLow, 0x4041);
  EXPECT_EQ(sink_.ipis.size(), 1u);
  Enable();  // re-enabling leaves the masks set
  EXPECT_EQ(R(apic::kRegLvtTimer), 0x10040u);
}

// ---------------------------------------------------------------------------
// IA32_APIC_BASE (11.4.4, 11.12.5).

enum class Mode { kDisabled, kXapic, kX2apic, kInvalid };
uint64_t BaseFor(Mode m) {
  switch (m) {
    case Mode::kDisabled:
      return kBase;
    case Mode::kXapic:
      return kBase | kEn;
    case Mode::kX2apic:
      return kBase | kEn | kExtd;
    case Mode::kInvalid:
      return kBase | kExtd;
  }
  return 0;
}

// Figure 11-28 "Local x2APIC State Transitions": every (from, to) pair.
TEST_F(LocalApicTest, ApicBaseTransitionsFollowTheStateDiagram) {
  struct Case {
    Mode from, to;
    bool legal;
  };
  const Case cases[] = {
      {Mode::kXapic, Mode::kXapic, true},
      {Mode::kXapic, Mode::kX2apic, true},
      {Mode::kXapic, Mode::kDisabled, true},
      {Mode::kXapic, Mode::kInvalid, false},
      {Mode::kX2apic, Mode::kX2apic, true},
      {Mode::kX2apic, Mode::kXapic, false},  // must go through disabled
      {Mode::kX2apic, Mode::kDisabled, true},
      {Mode::kX2apic, Mode::kInvalid, false},
      {Mode::kDisabled, Mode::kDisabled, true},
      {Mode::kDisabled, Mode::kXapic, true},
      {Mode::kDisabled, Mode::kX2apic, false},  // must go through xAPIC
      {Mode::kDisabled, Mode::kInvalid, false},
  };
  for (const Case& c : cases) {
    Make({.cpu = 0, .apic_id = 1});
    // Reach `from` legally.
    if (c.from != Mode::kXapic) {
      ASSERT_TRUE(apic_->WriteApicBase(BaseFor(c.from)).ok());
    }
    const uint64_t before = apic_->apic_base();
    const absl::Status s = apic_->WriteApicBase(BaseFor(c.to));
    EXPECT_EQ(s.ok(), c.legal) << static_cast<int>(c.from) << "->" << static_cast<int>(c.to);
    EXPECT_EQ(apic_->WriteMsr(apic::kMsrApicBase, BaseFor(c.to)), c.legal);
    EXPECT_EQ(apic_->apic_base(), c.legal ? BaseFor(c.to) : before);
  }
}

// 11.4.4: bits 7:0, 9 and MAXPHYADDR..63 are reserved; EXTD is reserved
// without x2APIC support; the BSP flag is not changed by software here.
TEST_F(LocalApicTest, ApicBaseReservedBitsAreRejected) {
  EXPECT_EQ(apic_->WriteApicBase(kBase | kEn | 1).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(apic_->WriteApicBase(kBase | kEn | (1u << 9)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(apic_->WriteApicBase((1ull << 36) | kEn).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrApicBase, kBase | kEn | 0x80));
  EXPECT_TRUE(apic_->WriteApicBase(kBase | kEn).ok());  // BSP bit dropped...
  EXPECT_EQ(apic_->apic_base(), kBase | kEn | apic::kApicBaseBsp);  // ...but kept
  Make({.cpu = 1, .x2apic = false});
  EXPECT_EQ(apic_->WriteApicBase(kBase | kEn | kExtd).code(),
            absl::StatusCode::kInvalidArgument);
}

// 11.4.5: the xAPIC page moves with IA32_APIC_BASE[35:12]; it is not
// decoded while EN=0 or in x2APIC mode (11.12.1).
TEST_F(LocalApicTest, MmioIsDecodedOnlyInXapicModeAtTheCurrentBase) {
  EXPECT_TRUE(apic_->DecodesMmio(0xFEE00020));
  EXPECT_TRUE(apic_->DecodesMmio(0xFEE00FFF));
  EXPECT_FALSE(apic_->DecodesMmio(0xFEE01000));
  ASSERT_TRUE(apic_->WriteApicBase(0xFED00000 | kEn).ok());
  EXPECT_FALSE(apic_->DecodesMmio(0xFEE00020));
  EXPECT_TRUE(apic_->DecodesMmio(0xFED00020));
  ASSERT_TRUE(apic_->WriteApicBase(kBase | kEn | kExtd).ok());
  EXPECT_FALSE(apic_->DecodesMmio(0xFEE00020));
  EXPECT_EQ(apic_->Read(AccessOrigin::Cpu(0), apic::kRegVersion, 4), 0xFFFFFFFFu);
  ASSERT_TRUE(apic_->WriteApicBase(kBase).ok());
  EXPECT_FALSE(apic_->DecodesMmio(0xFEE00020));
  EXPECT_EQ(apic_->Read(AccessOrigin::Cpu(0), apic::kRegVersion, 4), 0xFFFFFFFFu);
}

// 11.12.5.1: entering the disabled state resets the APIC (back in xAPIC
// mode, SVR is 0xFF again and IRR is empty).
TEST_F(LocalApicTest, DisablingTheApicResetsItsState) {
  Enable();
  apic_->Accept(0x40, false, DeliveryMode::kFixed);
  ASSERT_TRUE(apic_->WriteApicBase(kBase).ok());
  EXPECT_EQ(apic_->PendingVector(), -1);
  ASSERT_TRUE(apic_->WriteApicBase(kBase | kEn).ok());
  EXPECT_EQ(R(apic::kRegSvr), 0xFFu);
  EXPECT_FALSE(apic_->irr(0x40));
}

// ---------------------------------------------------------------------------
// x2APIC (11.12).

// 11.12.10.2: LDR = ID[19:4] << 16 | 1 << ID[3:0], read-only; 11.12.5.1:
// the x2APIC ID is the full initial APIC id.
TEST_F(LocalApicTest, X2apicLdrIsDerivedFromTheId) {
  Make({.cpu = 0, .apic_id = 0x35});
  ToX2apic();
  EXPECT_EQ(apic_->ReadMsr(apic::kMsrX2apicId), 0x35u);
  EXPECT_EQ(apic_->ReadMsr(apic::kMsrX2apicLdr), 0x00030020u);
  Make({.cpu = 0, .apic_id = 0x1234F});
  EXPECT_EQ(apic_->id(), 0x4Fu);  // xAPIC view: 8 bits
  ToX2apic();
  EXPECT_EQ(apic_->ReadMsr(apic::kMsrX2apicId), 0x1234Fu);
  EXPECT_EQ(apic_->ReadMsr(apic::kMsrX2apicLdr), 0x12348000u);
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicLdr, 0));
  // INIT reset keeps the derived LDR (it cannot be cleared in x2APIC mode).
  apic_->InitReset();
  EXPECT_EQ(apic_->ReadMsr(apic::kMsrX2apicLdr), 0x12348000u);
}

// 11.12.1.2: x2APIC MSRs #GP outside x2APIC mode; in x2APIC mode, reads of
// write-only or absent registers, writes of read-only or absent registers
// and writes with reserved bits set (11.12.1.3) #GP.
TEST_F(LocalApicTest, X2apicMsrGeneralProtectionCases) {
  Make({.cpu = 0, .apic_id = 9});
  EXPECT_FALSE(apic_->ReadMsr(apic::kMsrX2apicId).has_value());  // xAPIC mode
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicTpr, 0));
  ToX2apic();
  // Readable.
  EXPECT_EQ(apic_->ReadMsr(apic::kMsrX2apicVersion), 0x01050014u);
  EXPECT_EQ(apic_->ReadMsr(apic::kMsrX2apicSvr), 0xFFu);
  // Absent in x2APIC mode.
  EXPECT_FALSE(apic_->ReadMsr(apic::kMsrX2apicDfr).has_value());
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicDfr, 0xFFFFFFFF));
  EXPECT_FALSE(apic_->ReadMsr(0x831).has_value());  // ICR high
  EXPECT_FALSE(apic_->WriteMsr(0x831, 0));
  EXPECT_FALSE(apic_->ReadMsr(0x809).has_value());  // APR
  EXPECT_FALSE(apic_->ReadMsr(0x80C).has_value());  // RRD
  EXPECT_FALSE(apic_->ReadMsr(apic::kMsrX2apicLvtCmci).has_value());  // no CMCI
  EXPECT_FALSE(apic_->ReadMsr(0x8FF).has_value());
  // Write-only.
  EXPECT_FALSE(apic_->ReadMsr(apic::kMsrX2apicEoi).has_value());
  EXPECT_FALSE(apic_->ReadMsr(apic::kMsrX2apicSelfIpi).has_value());
  // Read-only.
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicId, 9));
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicVersion, 0));
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicPpr, 0));
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicIrr0, 0));
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicTmcct, 0));
  // Reserved bits.
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicEoi, 1));
  EXPECT_TRUE(apic_->WriteMsr(apic::kMsrX2apicEoi, 0));
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicTpr, 0x100));
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicTpr, 1ull << 32));
  EXPECT_TRUE(apic_->WriteMsr(apic::kMsrX2apicTpr, 0x20));
  EXPECT_EQ(apic_->ReadMsr(apic::kMsrX2apicTpr), 0x20u);
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicEsr, 1));
  EXPECT_TRUE(apic_->WriteMsr(apic::kMsrX2apicEsr, 0));
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicSelfIpi, 0x100));
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicTdcr, 0x4));
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicLvtTimer, 1u << 20));
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicIcr, 1u << 12));  // delivery status
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrX2apicSvr, 1u << 13));
  // Read-only LVT bits read back are accepted (read-modify-write).
  EXPECT_TRUE(apic_->WriteMsr(apic::kMsrX2apicLvtLint0, 0x15000));
  // TSC deadline exists when configured; not without.
  EXPECT_TRUE(apic_->ReadMsr(apic::kMsrTscDeadline).has_value());
  Make({.cpu = 0, .tsc_deadline = false});
  EXPECT_FALSE(apic_->ReadMsr(apic::kMsrTscDeadline).has_value());
  EXPECT_FALSE(apic_->WriteMsr(apic::kMsrTscDeadline, 1));
  EXPECT_FALSE(apic_->ReadMsr(0x10).has_value());  // not an APIC MSR
}

// 11.12.9: the x2APIC ICR is one 64-bit MSR with the destination in 63:32.
TEST_F(LocalApicTest, X2apicIcrCarriesA32BitDestination) {
  ToX2apic();
  ASSERT_TRUE(apic_->WriteMsr(apic::kMsrX2apicIcr, (0x12345ull << 32) | 0x4041));
  ASSERT_EQ(sink_.ipis.size(), 1u);
  EXPECT_EQ(sink_.ipis[0].icr.destination, 0x12345u);
  EXPECT_EQ(sink_.ipis[0].icr.vector(), 0x41);
  EXPECT_TRUE(sink_.ipis[0].x2apic);
  EXPECT_EQ(apic_->ReadMsr(apic::kMsrX2apicIcr), (0x12345ull << 32) | 0x4041);
}

// 11.12.11: SELF_IPI sends a fixed edge interrupt to this APIC.
TEST_F(LocalApicTest, SelfIpiMsrSetsIrr) {
  ToX2apic();
  ASSERT_TRUE(apic_->WriteMsr(apic::kMsrX2apicSvr, 0x1FF));
  ASSERT_TRUE(apic_->WriteMsr(apic::kMsrX2apicSelfIpi, 0x55));
  EXPECT_TRUE(apic_->irr(0x55));
  EXPECT_FALSE(apic_->tmr(0x55));
  EXPECT_TRUE(sink_.ipis.empty());
}

// ---------------------------------------------------------------------------
// ICR (11.6.1).

// xAPIC ICR: delivery status (bit 12) always reads idle; ICR high keeps only
// the destination field 31:24; writing ICR low sends.
TEST_F(LocalApicTest, XapicIcrSendsOnLowWriteAndReadsIdle) {
  Enable();
  W(apic::kRegIcrHigh, 0x03FFFFFF);
  EXPECT_EQ(R(apic::kRegIcrHigh), 0x03000000u);
  W(apic::kRegIcrLow, 0x000C4F41 & ~0xC0000u);  // fixed, logical, assert
  ASSERT_EQ(sink_.ipis.size(), 1u);
  EXPECT_EQ(sink_.ipis[0].icr.destination, 3u);
  EXPECT_TRUE(sink_.ipis[0].icr.logical());
  EXPECT_FALSE(sink_.ipis[0].x2apic);
  EXPECT_EQ(R(apic::kRegIcrLow) & apic::kIcrDeliveryStatus, 0u);
}

// Self shorthand stays local and is valid with fixed delivery only; INIT
// level de-assert is a no-op (11.6.1).
TEST_F(LocalApicTest, SelfShorthandIsLocalAndFixedOnly) {
  Enable();
  W(apic::kRegIcrLow, (1u << 18) | 0x61);
  EXPECT_TRUE(apic_->irr(0x61));
  EXPECT_TRUE(sink_.ipis.empty());
  W(apic::kRegIcrLow, (1u << 18) | 0x400);  // NMI to self: invalid
  EXPECT_FALSE(apic_->TakeNmi());
  W(apic::kRegIcrLow, 0x8500);  // INIT, level, de-assert
  EXPECT_TRUE(sink_.ipis.empty());
  W(apic::kRegIcrLow, 0xC500);  // INIT, level, assert: sent
  EXPECT_EQ(sink_.ipis.size(), 1u);
}

// ---------------------------------------------------------------------------
// Other delivery modes (11.6.1, 11.11.2).

// NMI becomes pending (TakeNmi), INIT resets the APIC (11.4.7.3) and calls
// `init`, StartUp calls `startup` with the vector; SMI/ExtINT are traced.
TEST_F(LocalApicTest, NmiInitStartupSmiExtIntAcceptance) {
  Enable();
  W(apic::kRegTpr, 0x20);
  apic_->Accept(0x41, false, DeliveryMode::kFixed);
  apic_->Accept(2, false, DeliveryMode::kNmi);
  EXPECT_TRUE(apic_->TakeNmi());
  apic_->Accept(0, false, DeliveryMode::kInit);
  EXPECT_EQ(inits_, 1);
  EXPECT_EQ(R(apic::kRegSvr), 0xFFu);
  EXPECT_EQ(R(apic::kRegTpr), 0u);
  EXPECT_FALSE(apic_->irr(0x41));
  EXPECT_EQ(apic_->apic_base(), 0xFEE00900u);  // kept
  apic_->Accept(0x9A, false, apic::kStartUp);
  EXPECT_EQ(sipis_, std::vector<uint8_t>{0x9A});
  const int dropped = CountStage(trace::APIC_DROPPED);
  apic_->Accept(0x41, false, DeliveryMode::kSmi);
  apic_->Accept(0x41, false, DeliveryMode::kExtInt);
  EXPECT_EQ(CountStage(trace::APIC_DROPPED), dropped + 2);
  EXPECT_EQ(apic_->PendingVector(), -1);
}

// ---------------------------------------------------------------------------
// LINT0/LINT1 (11.5.1).

// LINT1 programmed as NMI: the active edge makes an NMI pending.
TEST_F(LocalApicTest, Lint1NmiOnRisingEdge) {
  Enable();
  W(apic::kRegLvtLint1, 0x400);
  apic_->SetLint(1, true);
  EXPECT_TRUE(apic_->TakeNmi());
  apic_->SetLint(1, true);  // no edge
  EXPECT_FALSE(apic_->TakeNmi());
}

// A level-triggered fixed LINT0 sets Remote IRR when accepted and is
// delivered again after EOI while the line stays active.
TEST_F(LocalApicTest, LevelLint0RedeliversAfterEoiWhileActive) {
  Enable();
  W(apic::kRegLvtLint0, 0x8000 | 0x70);  // fixed, level, active high
  apic_->SetLint(0, true);
  EXPECT_TRUE(apic_->irr(0x70));
  EXPECT_TRUE(apic_->tmr(0x70));
  EXPECT_TRUE(R(apic::kRegLvtLint0) & apic::kLvtRemoteIrr);
  EXPECT_EQ(Deliver(), 0x70);
  W(apic::kRegEoi, 0);
  EXPECT_TRUE(apic_->irr(0x70));  // still active: again
  EXPECT_EQ(Deliver(), 0x70);
  apic_->SetLint(0, false);
  W(apic::kRegEoi, 0);
  EXPECT_FALSE(apic_->irr(0x70));
  EXPECT_FALSE(R(apic::kRegLvtLint0) & apic::kLvtRemoteIrr);
}

// ExtINT on LINT0 with no 8259 is traced and dropped; with the APIC
// globally disabled LINT1 is the NMI pin (virtual wire, 11.4.3).
TEST_F(LocalApicTest, Lint0ExtIntDroppedAndVirtualWireNmi) {
  Enable();
  W(apic::kRegLvtLint0, 0x700);
  apic_->SetLint(0, true);
  EXPECT_EQ(apic_->PendingVector(), -1);
  EXPECT_EQ(CountStage(trace::APIC_DROPPED), 1);
  ASSERT_TRUE(apic_->WriteApicBase(kBase).ok());
  apic_->SetLint(1, true);
  EXPECT_TRUE(apic_->TakeNmi());
}

// ---------------------------------------------------------------------------
// Timer (11.5.4). Timer clock = 1 virtual tick before the divider.

// One-shot: TMICT=100, divide by 16 -> fires 1600 ticks after the write;
// TMCCT counts down once per 16 ticks and stays 0 after expiry.
TEST_F(LocalApicTest, OneShotTimerFiresAtCountTimesDivisor) {
  Enable();
  q_.RunUntil(1000);
  W(apic::kRegTimerDivide, 0x3);  // 0011b: divide by 16
  W(apic::kRegLvtTimer, 0x30);
  W(apic::kRegTimerInitialCount, 100);
  EXPECT_EQ(apic_->timer_deadline(), 2600u);
  q_.RunUntil(1800);
  EXPECT_EQ(R(apic::kRegTimerCurrentCount), 50u);
  q_.RunUntil(2599);
  EXPECT_FALSE(apic_->irr(0x30));
  EXPECT_EQ(R(apic::kRegTimerCurrentCount), 1u);
  q_.RunUntil(2600);
  EXPECT_TRUE(apic_->irr(0x30));
  EXPECT_EQ(R(apic::kRegTimerCurrentCount), 0u);
  EXPECT_EQ(R(apic::kRegTimerInitialCount), 100u);
  auto t = LastOf(trace::APIC_TIMER);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->time(), 2600u);
  EXPECT_EQ(t->vector(), 0x30);
  EXPECT_FALSE(apic_->timer_deadline().has_value());
  q_.RunUntil(100000);
  EXPECT_EQ(Deliver(), 0x30);
  EXPECT_EQ(Deliver(), -1);  // one-shot: once
}

// Every TDCR encoding (Figure 11-10): 1011b = 1, 0000b = 2 ... 1010b = 128.
TEST_F(LocalApicTest, DivideConfigurationEncodings) {
  const struct {
    uint32_t tdcr, divisor;
  } cases[] = {{0xB, 1}, {0x0, 2}, {0x1, 4}, {0x2, 8},
               {0x3, 16}, {0x8, 32}, {0x9, 64}, {0xA, 128}};
  Enable();
  W(apic::kRegLvtTimer, 0x30);
  for (const auto& c : cases) {
    W(apic::kRegTimerDivide, c.tdcr);
    EXPECT_EQ(R(apic::kRegTimerDivide), c.tdcr);
    const uint64_t t0 = q_.now();
    W(apic::kRegTimerInitialCount, 10);
    EXPECT_EQ(apic_->timer_deadline(), t0 + 10 * c.divisor) << c.tdcr;
    q_.RunUntil(*apic_->timer_deadline());
  }
}

// Periodic: reloads TMICT at zero; fire times t0 + k * count * divisor, no
// drift; TMCCT reads the reloaded count within each period.
TEST_F(LocalApicTest, PeriodicTimerFiresEveryPeriod) {
  Enable();
  W(apic::kRegTimerDivide, 0x0);         // divide by 2
  W(apic::kRegLvtTimer, (1u << 17) | 0x31);  // periodic
  W(apic::kRegTimerInitialCount, 50);    // period 100 ticks
  std::vector<uint64_t> fires;
  for (int i = 0; i < 4; ++i) {
    q_.RunUntil(*q_.NextTime());
    fires.push_back(q_.now());
    EXPECT_EQ(Deliver(), 0x31);
    W(apic::kRegEoi, 0);
  }
  EXPECT_EQ(fires, (std::vector<uint64_t>{100, 200, 300, 400}));
  q_.RunUntil(430);
  EXPECT_EQ(R(apic::kRegTimerCurrentCount), 35u);
  W(apic::kRegTimerInitialCount, 0);  // 11.5.4: writing 0 stops the timer
  EXPECT_FALSE(apic_->timer_deadline().has_value());
  EXPECT_EQ(R(apic::kRegTimerCurrentCount), 0u);
  q_.RunUntil(1000);
  EXPECT_FALSE(apic_->irr(0x31));
}

// 11.5.4: a masked timer keeps counting but delivers nothing.
TEST_F(LocalApicTest, MaskedTimerCountsButDoesNotDeliver) {
  Enable();
  W(apic::kRegTimerDivide, 0xB);
  W(apic::kRegLvtTimer, apic::kLvtMasked | (1u << 17) | 0x32);
  W(apic::kRegTimerInitialCount, 40);
  q_.RunUntil(50);
  EXPECT_EQ(R(apic::kRegTimerCurrentCount), 30u);  // reloaded at 40
  EXPECT_FALSE(apic_->irr(0x32));
  W(apic::kRegLvtTimer, (1u << 17) | 0x32);  // unmask: next expiry delivers
  q_.RunUntil(80);
  EXPECT_TRUE(apic_->irr(0x32));
}

// 11.5.4.1: TSC-deadline mode fires when the TSC (= virtual ticks) reaches
// IA32_TSC_DEADLINE, then clears it; TMICT writes are ignored and TMCCT
// reads 0; a deadline already passed fires at once; writing 0 disarms.
TEST_F(LocalApicTest, TscDeadlineTimer) {
  Enable();
  EXPECT_TRUE(apic_->WriteMsr(apic::kMsrTscDeadline, 500));  // one-shot mode:
  EXPECT_EQ(apic_->ReadMsr(apic::kMsrTscDeadline), 0u);      // ignored, reads 0
  EXPECT_FALSE(apic_->timer_deadline().has_value());
  W(apic::kRegLvtTimer, (2u << 17) | 0x33);
  W(apic::kRegTimerInitialCount, 10);  // ignored
  EXPECT_EQ(R(apic::kRegTimerInitialCount), 0u);
  ASSERT_TRUE(apic_->WriteMsr(apic::kMsrTscDeadline, 500));
  EXPECT_EQ(apic_->ReadMsr(apic::kMsrTscDeadline), 500u);
  EXPECT_EQ(R(apic::kRegTimerCurrentCount), 0u);
  q_.RunUntil(499);
  EXPECT_FALSE(apic_->irr(0x33));
  q_.RunUntil(500);
  EXPECT_TRUE(apic_->irr(0x33));
  EXPECT_EQ(apic_->ReadMsr(apic::kMsrTscDeadline), 0u);
  EXPECT_EQ(Deliver(), 0x33);
  W(apic::kRegEoi, 0);
  ASSERT_TRUE(apic_->WriteMsr(apic::kMsrTscDeadline, 100));  // in the past
  EXPECT_TRUE(apic_->irr(0x33));
  EXPECT_EQ(Deliver(), 0x33);
  W(apic::kRegEoi, 0);
  ASSERT_TRUE(apic_->WriteMsr(apic::kMsrTscDeadline, 900));
  ASSERT_TRUE(apic_->WriteMsr(apic::kMsrTscDeadline, 0));  // disarm
  q_.RunUntil(2000);
  EXPECT_FALSE(apic_->irr(0x33));
}

// 11.5.4.1: switching out of TSC-deadline mode disarms the timer.
TEST_F(LocalApicTest, LeavingTscDeadlineModeDisarms) {
  Enable();
  W(apic::kRegLvtTimer, (2u << 17) | 0x33);
  ASSERT_TRUE(apic_->WriteMsr(apic::kMsrTscDeadline, 500));
  W(apic::kRegLvtTimer, 0x33);  // one-shot
  EXPECT_FALSE(apic_->timer_deadline().has_value());
  q_.RunUntil(1000);
  EXPECT_FALSE(apic_->irr(0x33));
}

// Without the TSC-deadline feature, LVT timer bit 18 is reserved.
TEST_F(LocalApicTest, TscDeadlineModeBitReservedWithoutFeature) {
  Make({.cpu = 0, .tsc_deadline = false});
  Enable();
  W(apic::kRegLvtTimer, (2u << 17) | 0x33);
  EXPECT_EQ(R(apic::kRegLvtTimer), 0x33u);
}

// Changing the divider mid-count continues the remaining count at the new
// rate (documented model choice).
TEST_F(LocalApicTest, DivideChangeMidCountRescalesTheRemainder) {
  Enable();
  W(apic::kRegLvtTimer, 0x30);
  W(apic::kRegTimerDivide, 0xB);
  W(apic::kRegTimerInitialCount, 100);
  q_.RunUntil(40);  // 60 left
  W(apic::kRegTimerDivide, 0x1);  // divide by 4
  EXPECT_EQ(apic_->timer_deadline(), 40u + 60 * 4);
}

// ---------------------------------------------------------------------------
// Fuzz: random writes to every offset and x2APIC MSR never crash and keep
// the architectural invariants.

void CheckInvariants(LocalApic& a) {
  // 11.8.3.1: PPR from TPR and the highest ISR vector.
  int isrv = 0;
  for (int v = 255; v >= 0; --v) {
    if (a.isr(v)) {
      isrv = v;
      break;
    }
  }
  const uint8_t tpr = a.tpr();
  const uint8_t want = (tpr >> 4) >= (isrv >> 4) ? tpr : (isrv & 0xF0);
  ASSERT_EQ(a.ppr(), want);
  const int p = a.PendingVector();
  if (p >= 0) {
    ASSERT_TRUE(a.irr(p));
    ASSERT_GT(p >> 4, a.ppr() >> 4);
  }
  for (int v = 0; v < 16; ++v) ASSERT_FALSE(a.irr(v)) << v;
  if (!a.software_enabled() && a.globally_enabled()) {
    for (int i = 0; i < apic::kNumLvts; ++i) {
      ASSERT_TRUE(a.lvt(static_cast<Lvt>(i)) & apic::kLvtMasked);
    }
  }
}

TEST_F(LocalApicTest, RandomRegisterWritesKeepInvariants) {
  std::mt19937_64 rng(20240611);
  Make({.cpu = 0, .apic_id = 1, .cmci = true});
  for (int iter = 0; iter < 20000; ++iter) {
    const uint64_t r = rng();
    const uint64_t value = rng();
    switch (r % 8) {
      case 0:
      case 1:
      case 2: {  // MMIO write, mostly aligned 32-bit
        const uint32_t off = (r >> 8) % 0x1000 & ((r >> 20) % 8 ? ~0xFu : ~0u);
        const unsigned size = (r >> 24) % 8 ? 4 : 1u << ((r >> 28) % 4);
        if (off + size <= 0x1000) {
          apic_->Write(AccessOrigin::Cpu(0), off, size, value);
          apic_->Read(AccessOrigin::Cpu(0), off, size);
        }
        break;
      }
      case 3: {  // x2APIC MSR
        const uint32_t msr = 0x800 + (r >> 8) % 0x100;
        apic_->WriteMsr(msr, (r >> 40) % 2 ? value : value & 0xFFFFFFFF);
        apic_->ReadMsr(msr);
        break;
      }
      case 4:  // mode changes (legal or not)
        apic_->WriteMsr(apic::kMsrApicBase,
                        kBase | (value & (kEn | kExtd | ((r >> 12) % 16 == 0 ? 1 : 0))));
        break;
      case 5:
        apic_->Accept(value & 0xFF, (value >> 8) & 1,
                      static_cast<DeliveryMode>((value >> 9) % 8));
        break;
      case 6:
        Deliver();
        if ((value & 3) == 0) apic_->TakeNmi();
        apic_->SetLint((value >> 4) & 1, (value >> 5) & 1);
        break;
      case 7:
        apic_->WriteMsr(apic::kMsrTscDeadline, q_.now() + value % 5000);
        q_.RunUntil(q_.now() + value % 3000);
        break;
    }
    CheckInvariants(*apic_);
    if (HasFatalFailure()) {
      FAIL() << "iteration " << iter;
    }
    // xAPIC ICR delivery status always idle; DFR low bits always ones.
    if (apic_->globally_enabled() && !apic_->x2apic_mode()) {
      ASSERT_EQ(R(apic::kRegIcrLow) & apic::kIcrDeliveryStatus, 0u);
      ASSERT_EQ(R(apic::kRegDfr) & 0x0FFFFFFFu, 0x0FFFFFFFu);
      ASSERT_EQ(R(apic::kRegVersion), 0x01060014u);
      ASSERT_LE(R(apic::kRegTimerCurrentCount), R(apic::kRegTimerInitialCount));
    }
  }
}

}  // namespace
}  // namespace irqlab
