// Tests of apic/apic_bus.h: destination decode, lowest-priority
// arbitration, IPI routing and MSI acceptance (Intel SDM vol. 3, 11.6.2,
// 11.11, 11.12.10). Each test names the behaviour and the rule it checks.
#include "apic/apic_bus.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "apic/apic_regs.h"
#include "apic/local_apic.h"
#include "emu/core/event_queue.h"
#include "emu/core/msi.h"
#include "emu/core/trace.h"
#include "gtest/gtest.h"

namespace irqlab {
namespace {

constexpr uint64_t kBase = apic::kDefaultApicBase;
constexpr uint64_t kEn = apic::kApicBaseEn;
constexpr uint64_t kExtd = apic::kApicBaseExtd;
constexpr uint16_t kRid = 0x0210;  // 02:02.0

class ApicBusTest : public ::testing::Test {
 protected:
  // CPUs 0..n-1 with the given APIC ids, all software enabled.
  ApicBusTest() { tracer_.AddSink(&recorder_); }

  void Make(std::vector<uint32_t> ids, ApicBusConfig config = {}) {
    bus_ = std::make_unique<ApicBus>(&q_, &tracer_, config);
    for (size_t i = 0; i < ids.size(); ++i) {
      const int cpu = static_cast<int>(i);
      LocalApicCallbacks cb;
      cb.init = [this, cpu] { inits_.push_back(cpu); };
      cb.startup = [this, cpu](uint8_t v) { sipis_.push_back({cpu, v}); };
      cb.eoi_broadcast = [this](uint8_t v) { eois_.push_back(v); };
      apics_.push_back(std::make_unique<LocalApic>(
          LocalApicConfig{.cpu = cpu, .apic_id = ids[i], .bsp = i == 0}, &q_,
          &q_, &tracer_, cb));
      bus_->Attach(apics_.back().get());
      W(cpu, apic::kRegSvr, 0x3FF);  // enabled, focus checking off
    }
  }
  void SetUp() override { Make({0, 1, 2, 3}); }
  void Remake(std::vector<uint32_t> ids, ApicBusConfig config = {}) {
    apics_.clear();
    bus_.reset();
    recorder_.Clear();
    Make(std::move(ids), config);
  }

  LocalApic& A(int cpu) { return *apics_[cpu]; }
  void W(int cpu, uint32_t off, uint32_t v) {
    ASSERT_TRUE(bus_->MmioWrite(cpu, kBase + off, 4, v));
  }
  void ToX2apic(int cpu) {
    ASSERT_TRUE(A(cpu).WriteApicBase(kBase | kEn | kExtd).ok());
  }
  // xAPIC IPI from `cpu`: ICR high then low (SDM 11.6.1).
  void SendXapic(int cpu, uint8_t dest, uint32_t low) {
    W(cpu, apic::kRegIcrHigh, uint32_t{dest} << 24);
    W(cpu, apic::kRegIcrLow, low);
  }
  // CPUs with `vector` in IRR.
  std::vector<int> WithIrr(int vector) {
    std::vector<int> out;
    for (auto& a : apics_) {
      if (a->irr(vector)) out.push_back(a->cpu());
    }
    return out;
  }
  std::vector<TraceEvent> Events(Stage stage) {
    std::vector<TraceEvent> out;
    for (const auto& e : recorder_.events()) {
      if (e.stage() == stage) out.push_back(e);
    }
    return out;
  }

  EventQueue q_;
  TraceRecorder recorder_;
  Tracer tracer_;
  std::unique_ptr<ApicBus> bus_;
  std::vector<std::unique_ptr<LocalApic>> apics_;
  std::vector<int> inits_;
  std::vector<std::pair<int, uint8_t>> sipis_;
  std::vector<uint8_t> eois_;
};

// ---------------------------------------------------------------------------
// IPIs (11.6.1, 11.6.2).

// Physical destination mode: the IPI reaches the APIC whose id matches.
TEST_F(ApicBusTest, FixedIpiReachesTheAddressedCpuOnly) {
  SendXapic(0, 2, 0x4040);
  EXPECT_EQ(WithIrr(0x40), std::vector<int>{2});
  EXPECT_EQ(A(2).PendingVector(), 0x40);
  auto route = Events(trace::APIC_ROUTE);
  ASSERT_EQ(route.size(), 1u);
  EXPECT_EQ(route[0].cpu(), 0);
  EXPECT_EQ(route[0].vector(), 0x40);
}

// Physical ids need not equal CPU indices.
TEST_F(ApicBusTest, PhysicalDestinationIsTheApicIdNotTheCpuIndex) {
  Remake({4, 6, 8});
  SendXapic(0, 6, 0x4041);
  EXPECT_EQ(WithIrr(0x41), std::vector<int>{1});
  SendXapic(0, 1, 0x4042);  // no APIC id 1
  EXPECT_TRUE(WithIrr(0x42).empty());
  auto ipi = Events(trace::IPI);
  ASSERT_FALSE(ipi.empty());
  EXPECT_NE(ipi.back().detail().find("lost: no APIC matches"), std::string::npos);
}

// Shorthands (Figure 11-12 bits 19:18): self, all including self, all
// excluding self; the destination field is ignored.
TEST_F(ApicBusTest, ShorthandsSelectSelfAllAndAllButSelf) {
  SendXapic(1, 3, (1u << 18) | 0x50);
  EXPECT_EQ(WithIrr(0x50), std::vector<int>{1});
  SendXapic(1, 3, (2u << 18) | 0x51);
  EXPECT_EQ(WithIrr(0x51), (std::vector<int>{0, 1, 2, 3}));
  SendXapic(1, 3, (3u << 18) | 0x52);
  EXPECT_EQ(WithIrr(0x52), (std::vector<int>{0, 2, 3}));
}

// 11.6.2.1: physical destination 0xFF is broadcast (xAPIC); 11.12.9:
// 0xFFFFFFFF in x2APIC mode.
TEST_F(ApicBusTest, PhysicalBroadcastIds) {
  SendXapic(0, 0xFF, 0x53);
  EXPECT_EQ(WithIrr(0x53), (std::vector<int>{0, 1, 2, 3}));
  for (int i = 0; i < 4; ++i) ToX2apic(i);
  ASSERT_TRUE(A(0).WriteMsr(apic::kMsrX2apicIcr, (0xFFull << 32) | 0x54));
  EXPECT_TRUE(WithIrr(0x54).empty());  // 0xFF is just an id in x2APIC IPIs
  ASSERT_TRUE(A(0).WriteMsr(apic::kMsrX2apicIcr, (0xFFFFFFFFull << 32) | 0x55));
  EXPECT_EQ(WithIrr(0x55), (std::vector<int>{0, 1, 2, 3}));
}

// 11.6.2.2 flat model: LDR[31:24] & MDA != 0.
TEST_F(ApicBusTest, LogicalFlatDestination) {
  for (int i = 0; i < 4; ++i) W(i, apic::kRegLdr, (1u << i) << 24);
  SendXapic(0, 0x05, (1u << 11) | 0x60);
  EXPECT_EQ(WithIrr(0x60), (std::vector<int>{0, 2}));
  SendXapic(0, 0x10, (1u << 11) | 0x61);
  EXPECT_TRUE(WithIrr(0x61).empty());
}

// 11.6.2.2 cluster model (DFR 0x0FFFFFFF): MDA[7:4] selects the cluster,
// MDA[3:0] the members; cluster 0xF addresses every cluster.
TEST_F(ApicBusTest, LogicalClusterDestinationXapic) {
  const uint32_t ldr[] = {0x11, 0x12, 0x21, 0x22};
  for (int i = 0; i < 4; ++i) {
    W(i, apic::kRegDfr, apic::kDfrCluster);
    W(i, apic::kRegLdr, ldr[i] << 24);
  }
  SendXapic(0, 0x23, (1u << 11) | 0x62);
  EXPECT_EQ(WithIrr(0x62), (std::vector<int>{2, 3}));
  SendXapic(0, 0x12, (1u << 11) | 0x63);
  EXPECT_EQ(WithIrr(0x63), std::vector<int>{1});
  SendXapic(0, 0xF1, (1u << 11) | 0x64);
  EXPECT_EQ(WithIrr(0x64), (std::vector<int>{0, 2}));
}

// 11.12.10.2 x2APIC logical: destination cluster [31:16] and 16-bit member
// mask [15:0] against the derived LDR.
TEST_F(ApicBusTest, LogicalClusterDestinationX2apic) {
  Remake({0x00, 0x01, 0x10, 0x1F});
  for (int i = 0; i < 4; ++i) ToX2apic(i);
  ASSERT_TRUE(A(0).WriteMsr(apic::kMsrX2apicIcr, (0x1ull << 48) | (0x8001ull << 32) | 0x865));
  EXPECT_EQ(WithIrr(0x65), (std::vector<int>{2, 3}));
  ASSERT_TRUE(A(0).WriteMsr(apic::kMsrX2apicIcr, (0x0002ull << 32) | 0x866));
  EXPECT_EQ(WithIrr(0x66), std::vector<int>{1});
}

// x2APIC ids above 255 are reachable by x2APIC IPIs (32-bit destination).
TEST_F(ApicBusTest, X2apicIpiReachesIdAbove255) {
  Remake({0, 0x100, 0x2345});
  for (int i = 0; i < 3; ++i) ToX2apic(i);
  ASSERT_TRUE(A(0).WriteMsr(apic::kMsrX2apicIcr, (0x2345ull << 32) | 0x70));
  EXPECT_EQ(WithIrr(0x70), std::vector<int>{2});
}

// Lowest priority (11.6.2.4, arbitration rule in apic_bus.h): lowest PPR,
// ties to the lowest APIC id; the same state always picks the same CPU.
TEST_F(ApicBusTest, LowestPriorityArbitrationIsDeterministic) {
  Remake({7, 5, 3, 9});
  const uint32_t tpr[] = {0x20, 0x10, 0x10, 0x30};
  for (int i = 0; i < 4; ++i) {
    W(i, apic::kRegTpr, tpr[i]);
    W(i, apic::kRegLdr, 0x01000000);
  }
  for (int round = 0; round < 3; ++round) {
    const uint8_t v = 0x80 + round;
    SendXapic(0, 0x01, (1u << 11) | 0x100 | v);  // logical, lowest priority
    EXPECT_EQ(WithIrr(v), std::vector<int>{2}) << round;  // PPR 0x10, id 3 < 5
  }
  W(2, apic::kRegTpr, 0x40);
  SendXapic(0, 0x01, (1u << 11) | 0x100 | 0x90);
  EXPECT_EQ(WithIrr(0x90), std::vector<int>{1});
  // An in-service interrupt raises PPR: CPU 1 busy at class 0xA.
  A(1).Accept(0xA0, false, DeliveryMode::kFixed);
  A(1).Acknowledge(0xA0);
  SendXapic(0, 0x01, (1u << 11) | 0x100 | 0x91);
  EXPECT_EQ(WithIrr(0x91), std::vector<int>{0});  // PPR 0x20
}

// 11.6.2.4 focus processor: with focus checking enabled (SVR[9]=0), an APIC
// already holding the vector wins the arbitration.
TEST_F(ApicBusTest, FocusProcessorWinsLowestPriority) {
  for (int i = 0; i < 4; ++i) W(i, apic::kRegLdr, 0x01000000);
  W(3, apic::kRegTpr, 0x70);
  W(3, apic::kRegSvr, 0x1FF);  // focus checking on
  A(3).Accept(0x91, false, DeliveryMode::kFixed);
  A(3).Acknowledge(0x91);  // in service on CPU 3
  SendXapic(0, 0x01, (1u << 11) | 0x100 | 0x91);
  EXPECT_EQ(WithIrr(0x91), std::vector<int>{3});
}

// NMI IPIs make an NMI pending at the destination (11.6.1).
TEST_F(ApicBusTest, NmiIpi) {
  SendXapic(0, 3, 0x4400);
  EXPECT_TRUE(A(3).TakeNmi());
  EXPECT_FALSE(A(2).TakeNmi());
}

// The MP start-up sequence (SDM vol. 3, 9.4.4.1): INIT assert, INIT level
// de-assert (no-op), SIPI with the start page.
TEST_F(ApicBusTest, InitAndStartupCallbacks) {
  SendXapic(0, 1, 0xC500);  // INIT, level, assert
  SendXapic(0, 1, 0x8500);  // INIT level de-assert
  EXPECT_EQ(inits_, std::vector<int>{1});
  EXPECT_EQ(A(1).svr(), 0xFFu);  // INIT reset (11.4.7.3)
  SendXapic(0, 1, 0x4600 | 0x9A);
  ASSERT_EQ(sipis_.size(), 1u);
  EXPECT_EQ(sipis_[0], (std::pair<int, uint8_t>{1, 0x9A}));
  SendXapic(0, 0, (3u << 18) | 0x4500);  // INIT all-excluding-self
  EXPECT_EQ(inits_, (std::vector<int>{1, 1, 2, 3}));
}

// A globally disabled APIC (EN=0) is not on the bus.
TEST_F(ApicBusTest, DisabledApicReceivesNothing) {
  ASSERT_TRUE(A(2).WriteApicBase(kBase).ok());
  SendXapic(0, 0xFF, 0x57);
  EXPECT_EQ(WithIrr(0x57), (std::vector<int>{0, 1, 3}));
  SendXapic(0, 2, 0x4400);
  EXPECT_FALSE(A(2).TakeNmi());
}

// ---------------------------------------------------------------------------
// MSIs (11.11).

// VT-d 9.10 / SDM 11.12.9: in x2APIC mode the remapping unit hands the bus
// a 32-bit destination: APIC id 0x1234 is reachable (no 8-bit MSI field can
// name it), 0xFF is an ordinary id and 0xFFFFFFFF is the broadcast.
TEST_F(ApicBusTest, X2ApicDestinationsFromTheRemappingUnit) {
  Remake({0, 0xFF, 0x1234, 3});
  for (int cpu = 0; cpu < 4; ++cpu) ToX2apic(cpu);
  const MsiMessage m = MsiMessage::Compat(0, 0x61, kRid);
  bus_->SignalX2Apic(m, 0x1234);
  EXPECT_EQ(WithIrr(0x61), std::vector<int>{2});
  bus_->SignalX2Apic(MsiMessage::Compat(0, 0x62, kRid), 0xFF);
  EXPECT_EQ(WithIrr(0x62), std::vector<int>{1});
  bus_->SignalX2Apic(MsiMessage::Compat(0, 0x63, kRid), 0xFFFFFFFF);
  EXPECT_EQ(WithIrr(0x63), (std::vector<int>{0, 1, 2, 3}));
  bus_->SignalX2Apic(MsiMessage::Compat(0, 0x64, kRid), 0x999);
  EXPECT_TRUE(WithIrr(0x64).empty());
  EXPECT_EQ(Events(trace::MSI_DROPPED).size(), 1u);
}

// The bus caches physical-id lookups; an xAPIC ID write (11.4.6: the ID
// register is writable in xAPIC mode) and a global disable (11.4.3: a
// disabled APIC accepts nothing) must take effect for the very next MSI.
TEST_F(ApicBusTest, MsiFollowsApicIdChangesAndGlobalDisable) {
  bus_->Signal(MsiMessage::Compat(1, 0x50, kRid));  // fills the lookup cache
  EXPECT_EQ(WithIrr(0x50), std::vector<int>{1});
  W(1, apic::kRegId, 5u << 24);
  bus_->Signal(MsiMessage::Compat(5, 0x51, kRid));
  EXPECT_EQ(WithIrr(0x51), std::vector<int>{1});
  bus_->Signal(MsiMessage::Compat(1, 0x52, kRid));
  EXPECT_TRUE(WithIrr(0x52).empty());
  ASSERT_TRUE(A(2).WriteApicBase(kBase).ok());  // EN=0
  bus_->Signal(MsiMessage::Compat(2, 0x53, kRid));
  EXPECT_TRUE(WithIrr(0x53).empty());
  EXPECT_EQ(Events(trace::MSI_DROPPED).size(), 2u);
}

// 11.11.1: address bits 19:12 are the physical destination id; 11.11.2:
// data carries vector, delivery mode and trigger mode.
TEST_F(ApicBusTest, MsiPhysicalDestination) {
  bus_->Signal(MsiMessage::Compat(3, 0x44, kRid));
  EXPECT_EQ(WithIrr(0x44), std::vector<int>{3});
  auto route = Events(trace::APIC_ROUTE);
  ASSERT_EQ(route.size(), 1u);
  EXPECT_EQ(route[0].requester_id(), kRid);
  EXPECT_EQ(route[0].cpu(), 3);
  auto accept = Events(trace::APIC_ACCEPT);
  ASSERT_EQ(accept.size(), 1u);
  EXPECT_EQ(accept[0].requester_id(), kRid);
}

// 0xFF in an MSI's 8-bit destination is broadcast.
TEST_F(ApicBusTest, MsiBroadcast) {
  bus_->Signal(MsiMessage::Compat(0xFF, 0x45, kRid));
  EXPECT_EQ(WithIrr(0x45), (std::vector<int>{0, 1, 2, 3}));
}

// 11.11.1 DM=1: logical destination against each LDR/DFR.
TEST_F(ApicBusTest, MsiLogicalDestination) {
  for (int i = 0; i < 4; ++i) W(i, apic::kRegLdr, (1u << i) << 24);
  bus_->Signal(MsiMessage::Compat(0x0A, 0x46, kRid, {.logical = true}));
  EXPECT_EQ(WithIrr(0x46), (std::vector<int>{1, 3}));
}

// 11.11.1: RH=1 with logical mode delivers to the lowest-priority
// destination only; delivery mode lowest priority arbitrates too.
TEST_F(ApicBusTest, MsiRedirectionHintAndLowestPriorityArbitrate) {
  for (int i = 0; i < 4; ++i) W(i, apic::kRegLdr, 0x0F000000);
  W(0, apic::kRegTpr, 0x30);
  bus_->Signal(MsiMessage::Compat(0x0F, 0x47, kRid,
                                  {.logical = true, .redirection_hint = true}));
  EXPECT_EQ(WithIrr(0x47), std::vector<int>{1});
  bus_->Signal(MsiMessage::Compat(
      0x0F, 0x48, kRid,
      {.delivery_mode = DeliveryMode::kLowestPriority, .logical = true}));
  EXPECT_EQ(WithIrr(0x48), std::vector<int>{1});
  bus_->Signal(MsiMessage::Compat(0x0F, 0x49, kRid, {.logical = true}));
  EXPECT_EQ(WithIrr(0x49), (std::vector<int>{0, 1, 2, 3}));  // RH=0: all
}

// A level-triggered MSI sets TMR, and its EOI is broadcast (11.8.5).
TEST_F(ApicBusTest, MsiLevelTriggerSetsTmrAndBroadcastsEoi) {
  bus_->Signal(MsiMessage::Compat(1, 0x4A, kRid,
                                  {.trigger_level = true, .level_assert = true}));
  EXPECT_TRUE(A(1).tmr(0x4A));
  ASSERT_EQ(A(1).PendingVector(), 0x4A);
  A(1).Acknowledge(0x4A);
  W(1, apic::kRegEoi, 0);
  EXPECT_EQ(eois_, std::vector<uint8_t>{0x4A});
}

// A lost interrupt is a bug: an MSI that matches no APIC is traced as
// dropped, with the requester id and the reason.
TEST_F(ApicBusTest, MsiMatchingNoCpuIsTracedAsDropped) {
  bus_->Signal(MsiMessage::Compat(9, 0x4B, kRid));
  EXPECT_TRUE(WithIrr(0x4B).empty());
  auto dropped = Events(trace::MSI_DROPPED);
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].requester_id(), kRid);
  EXPECT_EQ(dropped[0].vector(), 0x4B);
  EXPECT_EQ(dropped[0].detail(), "no APIC matches physical destination 0x9");
}

// VT-d 5.1.2.2: a remappable-format message has a handle, not a
// destination; without an IOMMU it is dropped (and traced).
TEST_F(ApicBusTest, RemappableFormatMsiIsDroppedWithoutIommu) {
  bus_->Signal(MsiMessage::Remappable(0x2b, true, 0, kRid));
  for (int v = 0; v < 256; ++v) EXPECT_TRUE(WithIrr(v).empty());
  auto dropped = Events(trace::MSI_DROPPED);
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_NE(dropped[0].detail().find("remappable-format"), std::string::npos);
  EXPECT_EQ(dropped[0].address(), 0xfee00578u);
}

// A write outside 0xFEE00000-0xFEEFFFFF is not an interrupt; reserved
// delivery modes are dropped.
TEST_F(ApicBusTest, NonInterruptAndReservedModeMsisAreDropped) {
  bus_->Signal(MsiMessage(0xFED00000, 0x41, kRid));
  bus_->Signal(MsiMessage(0xFEE01000, 0x341, kRid));  // mode 011b
  bus_->Signal(MsiMessage(0xFEE01000, 0x641, kRid));  // mode 110b
  EXPECT_TRUE(WithIrr(0x41).empty());
  EXPECT_EQ(Events(trace::MSI_DROPPED).size(), 3u);
}

// ExtINT via MSI is rejected and SMI ignored by the destination APIC, both
// traced; an NMI MSI makes an NMI pending.
TEST_F(ApicBusTest, MsiExtIntSmiNmi) {
  bus_->Signal(MsiMessage::Compat(1, 0x41, kRid, {.delivery_mode = DeliveryMode::kExtInt}));
  bus_->Signal(MsiMessage::Compat(1, 0x41, kRid, {.delivery_mode = DeliveryMode::kSmi}));
  EXPECT_TRUE(WithIrr(0x41).empty());
  auto dropped = Events(trace::APIC_DROPPED);
  ASSERT_EQ(dropped.size(), 2u);
  EXPECT_EQ(dropped[0].cpu(), 1);
  EXPECT_NE(dropped[0].detail().find("ExtINT"), std::string::npos);
  EXPECT_NE(dropped[1].detail().find("SMI"), std::string::npos);
  bus_->Signal(MsiMessage::Compat(1, 0, kRid, {.delivery_mode = DeliveryMode::kNmi}));
  EXPECT_TRUE(A(1).TakeNmi());
}

// Extended destination id off (default): address bits 11:5 are reserved and
// ignored, as hardware does, so id 0x101 aliases to 0x01. On: they are id
// bits 14:8, reaching x2APIC id 0x101.
TEST_F(ApicBusTest, ExtendedDestinationIdOption) {
  Remake({0, 1, 0x101});
  for (int i = 0; i < 3; ++i) ToX2apic(i);
  const MsiMessage m = MsiMessage::Compat(0x101, 0x4C, kRid);
  ASSERT_EQ((m.address >> 5) & 0x7F, 1u);
  bus_->Signal(m);
  EXPECT_EQ(WithIrr(0x4C), std::vector<int>{1});
  Remake({0, 1, 0x101}, ApicBusConfig{.extended_destination_id = true});
  for (int i = 0; i < 3; ++i) ToX2apic(i);
  bus_->Signal(m);
  EXPECT_EQ(WithIrr(0x4C), std::vector<int>{2});
  bus_->Signal(MsiMessage::Compat(0x1FF, 0x4D, kRid));  // an id, not broadcast
  EXPECT_TRUE(WithIrr(0x4D).empty());
  EXPECT_EQ(Events(trace::MSI_DROPPED).size(), 1u);
}

// Without the option (or interrupt remapping) ids above 255 are not
// reachable by MSI.
TEST_F(ApicBusTest, IdsAbove255UnreachableByMsiWithoutExtendedDestination) {
  Remake({0x100, 0x200});
  for (int i = 0; i < 2; ++i) ToX2apic(i);
  bus_->Signal(MsiMessage::Compat(0x100, 0x4E, kRid));
  EXPECT_TRUE(WithIrr(0x4E).empty());
  EXPECT_EQ(Events(trace::MSI_DROPPED).size(), 1u);
}

// ---------------------------------------------------------------------------
// MMIO routing (11.4.1, 11.4.5, 11.12.1).

// Each CPU reaches its own APIC page; not decoded after relocation (old
// address), in x2APIC mode, or while disabled.
TEST_F(ApicBusTest, MmioRoutingIsPerCpuAndFollowsTheApicBase) {
  EXPECT_EQ(bus_->MmioRead(2, kBase + apic::kRegId, 4), 0x02000000u);
  EXPECT_EQ(bus_->MmioRead(3, kBase + apic::kRegId, 4), 0x03000000u);
  EXPECT_FALSE(bus_->MmioRead(7, kBase + apic::kRegId, 4).has_value());
  ASSERT_TRUE(A(2).WriteApicBase(0xFEC00000 | kEn).ok());
  EXPECT_FALSE(bus_->MmioRead(2, kBase + apic::kRegId, 4).has_value());
  EXPECT_EQ(bus_->MmioRead(2, 0xFEC00000 + apic::kRegId, 4), 0x02000000u);
  ToX2apic(3);
  EXPECT_FALSE(bus_->MmioRead(3, kBase + apic::kRegId, 4).has_value());
  EXPECT_FALSE(bus_->MmioWrite(3, kBase + apic::kRegTpr, 4, 0x20));
  ASSERT_TRUE(A(1).WriteApicBase(kBase).ok());
  EXPECT_FALSE(bus_->MmioRead(1, kBase + apic::kRegId, 4).has_value());
}

// apic(cpu) is an index by CPU number: every attached CPU, nothing else.
TEST_F(ApicBusTest, ApicByCpuIndex) {
  Remake({7, 3, 9, 1, 0x20});
  for (int cpu = 0; cpu < 5; ++cpu) EXPECT_EQ(bus_->apic(cpu), &A(cpu));
  EXPECT_EQ(bus_->apic(5), nullptr);
  EXPECT_EQ(bus_->apic(4096), nullptr);
  EXPECT_EQ(bus_->apic(-1), nullptr);
}

// The bus indexes x2APIC-mode APICs by logical cluster (11.12.10.2). The
// index is built by the first logical message and must follow later mode
// and enable changes: an APIC switched xAPIC -> x2APIC afterwards receives
// its x2APIC logical interrupts (and no longer matches as an xAPIC flat
// APIC with the LDR it had), a globally disabled APIC receives nothing, and
// an APIC re-enabled in xAPIC mode matches by its (reset) xAPIC LDR again.
TEST_F(ApicBusTest, LogicalIndexFollowsModeAndEnableChanges) {
  Remake({0x00, 0x01, 0x12, 0x13});
  for (int cpu : {0, 2, 3}) ToX2apic(cpu);
  W(1, apic::kRegLdr, 0x01000000);  // xAPIC flat, logical id bit 0
  // Builds the index: cluster 0 bit 0 (CPU 0) and the flat CPU 1.
  bus_->SignalX2Apic(MsiMessage::Compat(0, 0x40, kRid,
                                        {.logical = true}), 0x00000001);
  EXPECT_EQ(WithIrr(0x40), (std::vector<int>{0, 1}));
  // CPU 1 -> x2APIC: LDR = cluster 0, bit 1 << 1.
  ToX2apic(1);
  bus_->SignalX2Apic(MsiMessage::Compat(0, 0x41, kRid, {.logical = true}),
                     0x00000002);
  EXPECT_EQ(WithIrr(0x41), std::vector<int>{1});
  bus_->SignalX2Apic(MsiMessage::Compat(0, 0x42, kRid, {.logical = true}),
                     0x00000001);
  EXPECT_EQ(WithIrr(0x42), std::vector<int>{0});
  // Cluster 1: CPUs 2 (bit 2) and 3 (bit 3); then CPU 2 disabled.
  bus_->SignalX2Apic(MsiMessage::Compat(0, 0x43, kRid, {.logical = true}),
                     0x0001000C);
  EXPECT_EQ(WithIrr(0x43), (std::vector<int>{2, 3}));
  ASSERT_TRUE(A(2).WriteApicBase(kBase).ok());  // x2APIC -> disabled
  bus_->SignalX2Apic(MsiMessage::Compat(0, 0x44, kRid, {.logical = true}),
                     0x0001000C);
  EXPECT_EQ(WithIrr(0x44), std::vector<int>{3});
  // Re-enabled in xAPIC mode: LDR reset to 0, then written (flat, bit 2).
  ASSERT_TRUE(A(2).WriteApicBase(kBase | kEn).ok());
  W(2, apic::kRegSvr, 0x3FF);
  bus_->SignalX2Apic(MsiMessage::Compat(0, 0x45, kRid, {.logical = true}),
                     0x0001000C);
  EXPECT_EQ(WithIrr(0x45), std::vector<int>{3});
  W(2, apic::kRegLdr, 0x04000000);
  bus_->SignalX2Apic(MsiMessage::Compat(0, 0x46, kRid, {.logical = true}),
                     0x0001000C);
  EXPECT_EQ(WithIrr(0x46), (std::vector<int>{2, 3}));
}

// An 8-bit logical MSI with xAPIC- and x2APIC-mode APICs on the bus: both
// kinds match (x2APIC ones as cluster 0) and are delivered and traced in
// CPU order, as a scan of every APIC would.
TEST_F(ApicBusTest, LogicalMatchesOfBothModesStayInCpuOrder) {
  Remake({0x00, 0x01, 0x02, 0x03, 0x10});
  for (int cpu : {1, 3, 4}) ToX2apic(cpu);
  W(0, apic::kRegLdr, 0x0A000000);  // flat: bits 1 and 3
  W(2, apic::kRegLdr, 0x08000000);  // flat: bit 3
  // MDA 0x0A: CPU 0 (flat), CPU 1 (x2APIC cluster 0 bit 1), CPU 2 (flat),
  // CPU 3 (x2APIC bit 3); CPU 4 is in cluster 1.
  bus_->Signal(MsiMessage::Compat(0x0A, 0x50, kRid, {.logical = true}));
  EXPECT_EQ(WithIrr(0x50), (std::vector<int>{0, 1, 2, 3}));
  auto route = Events(trace::APIC_ROUTE);
  ASSERT_EQ(route.size(), 1u);
  EXPECT_NE(route[0].detail().find("-> cpus 0,1,2,3"), std::string::npos)
      << route[0].detail();
  // A 32-bit logical destination in cluster 1 reaches CPU 4 only among the
  // x2APIC APICs, and the flat xAPIC APICs compare its low 8 bits.
  bus_->SignalX2Apic(MsiMessage::Compat(0, 0x51, kRid, {.logical = true}),
                     0x00010001);
  EXPECT_EQ(WithIrr(0x51), std::vector<int>{4});
  bus_->SignalX2Apic(MsiMessage::Compat(0, 0x52, kRid, {.logical = true}),
                     0x00010008);
  EXPECT_EQ(WithIrr(0x52), (std::vector<int>{0, 2}));
}

// Destination matching in isolation (no shorthand): the rules in
// apic_bus.h, for an xAPIC flat, xAPIC cluster and x2APIC target.
TEST_F(ApicBusTest, MatchesTable) {
  W(0, apic::kRegLdr, 0x24000000);  // flat: bits 2 and 5
  EXPECT_TRUE(ApicBus::Matches(A(0), {0x20, true, false}));
  EXPECT_FALSE(ApicBus::Matches(A(0), {0x40, true, false}));
  EXPECT_TRUE(ApicBus::Matches(A(0), {0xFF, true, false}));
  W(0, apic::kRegDfr, apic::kDfrCluster);  // cluster 2, members 0100b
  EXPECT_TRUE(ApicBus::Matches(A(0), {0x24, true, false}));
  EXPECT_FALSE(ApicBus::Matches(A(0), {0x34, true, false}));
  EXPECT_FALSE(ApicBus::Matches(A(0), {0x21, true, false}));
  EXPECT_TRUE(ApicBus::Matches(A(0), {0xF4, true, false}));
  EXPECT_TRUE(ApicBus::Matches(A(0), {0, false, false}));  // physical id 0
  EXPECT_FALSE(ApicBus::Matches(A(0), {1, false, false}));
}

}  // namespace
}  // namespace irqlab
