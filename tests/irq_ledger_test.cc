// The interrupt accounting (emu/core/irq_ledger.h): the ledger's counts and
// summary, the accounting entry sink, the outcomes the APIC bus and local
// APIC return (SDM 11.8.4 coalescing, discards), the local APIC's IRR
// bookkeeping, and the VMM route table's outcomes. Whole-run accounting is
// covered by tests/accounting_tests.cmake.
#include "emu/core/irq_ledger.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "apic/apic_bus.h"
#include "apic/apic_regs.h"
#include "apic/local_apic.h"
#include "emu/core/clock.h"
#include "emu/core/event_queue.h"
#include "emu/core/msi.h"
#include "gtest/gtest.h"
#include "pci/assigned_device.h"

namespace irqlab {
namespace {

constexpr uint16_t kRid = 0x0018;  // 00:03.0

// A sink that always answers `outcome` and counts messages.
class FixedSink : public MsiSink {
 public:
  explicit FixedSink(MsiOutcome outcome) : outcome_(outcome) {}
  MsiOutcome Signal(const MsiMessage&) override {
    ++count;
    return outcome_;
  }
  int count = 0;

 private:
  MsiOutcome outcome_;
};

TEST(IrqLedgerTest, CountsPerSourceAndOutcomeAndSummarizes) {
  ManualClock clock;
  IrqLedger ledger(&clock);
  EXPECT_EQ(ledger.Summary(), "0 raised; accounting holds");
  const MsiMessage m = MsiMessage::Compat(0, 0x40, kRid);
  for (int i = 0; i < 3; ++i) ledger.Record(IrqSource::kDevice, MsiOutcome::kAccepted, m);
  ledger.Record(IrqSource::kDevice, MsiOutcome::kCoalesced, m);
  ledger.Record(IrqSource::kIoApic, MsiOutcome::kFaulted, m);
  ledger.Record(IrqSource::kVmmRoute, MsiOutcome::kInjectedDrop, m);
  EXPECT_EQ(ledger.raised(), 6u);
  EXPECT_EQ(ledger.count(IrqSource::kDevice, MsiOutcome::kAccepted), 3u);
  EXPECT_EQ(ledger.count(IrqSource::kDevice, MsiOutcome::kCoalesced), 1u);
  EXPECT_TRUE(ledger.holds());
  EXPECT_EQ(ledger.Summary(),
            "6 raised: device 4 (accepted 3, coalesced 1), ioapic 1 (faulted 1), "
            "vmm-route 1 (dropped (injected) 1); accounting holds");
}

TEST(IrqLedgerTest, LostMessageIsAViolationNamingItAndTheTime) {
  ManualClock clock;
  clock.Set(1234);
  IrqLedger ledger(&clock);
  ledger.Record(IrqSource::kDevice, MsiOutcome::kLost, MsiMessage::Compat(1, 0x41, kRid));
  EXPECT_FALSE(ledger.holds());
  ASSERT_EQ(ledger.violations().size(), 1u);
  EXPECT_EQ(ledger.violations()[0],
            "t=0000001234 device interrupt fee01000/00000041 rid=00:03.0 (compat dest 0x1 "
            "vec 0x41 fixed physical edge) vanished: no stage of the delivery chain took "
            "it, faulted it or discarded it");
  EXPECT_NE(ledger.Summary().find("1 raised: device 1 (lost 1); accounting violated: "
                                  "1 violation, first: t=0000001234 device interrupt"),
            std::string::npos)
      << ledger.Summary();
}

TEST(IrqLedgerTest, KeepsTheFirstViolationsAndCountsThemAll) {
  ManualClock clock;
  IrqLedger ledger(&clock);
  for (int i = 0; i < 40; ++i) ledger.AddViolation("x");
  EXPECT_EQ(ledger.violation_count(), 40u);
  EXPECT_EQ(ledger.violations().size(), IrqLedger::kMaxKeptViolations);
}

TEST(AccountingMsiSinkTest, RecordsTheDownstreamOutcome) {
  ManualClock clock;
  IrqLedger ledger(&clock);
  FixedSink coalescing(MsiOutcome::kCoalesced);
  AccountingMsiSink entry(&coalescing, &ledger, IrqSource::kIoApic);
  EXPECT_EQ(entry.Signal(MsiMessage::Compat(0, 0x50, kRid)), MsiOutcome::kCoalesced);
  EXPECT_EQ(entry.SignalX2Apic(MsiMessage::Compat(0, 0x50, kRid), 0x100),
            MsiOutcome::kCoalesced);
  EXPECT_EQ(coalescing.count, 2);
  EXPECT_EQ(ledger.count(IrqSource::kIoApic, MsiOutcome::kCoalesced), 2u);
  EXPECT_TRUE(ledger.holds());
}

TEST(AccountingMsiSinkTest, AnUnwiredEntryLosesTheMessage) {
  ManualClock clock;
  IrqLedger ledger(&clock);
  AccountingMsiSink entry(nullptr, &ledger, IrqSource::kDevice);
  EXPECT_EQ(entry.Signal(MsiMessage::Compat(0, 0x40, kRid)), MsiOutcome::kLost);
  EXPECT_EQ(ledger.violation_count(), 1u);
}

TEST(AccountingMsiSinkTest, LoseNextSwallowsExactlyThatManyMessages) {
  ManualClock clock;
  IrqLedger ledger(&clock);
  FixedSink apic(MsiOutcome::kAccepted);
  AccountingMsiSink entry(&apic, &ledger, IrqSource::kDevice);
  entry.LoseNext(2);
  for (int i = 0; i < 5; ++i) entry.Signal(MsiMessage::Compat(0, 0x40, kRid));
  EXPECT_EQ(apic.count, 3);
  EXPECT_EQ(ledger.count(IrqSource::kDevice, MsiOutcome::kLost), 2u);
  EXPECT_EQ(ledger.count(IrqSource::kDevice, MsiOutcome::kAccepted), 3u);
  EXPECT_EQ(ledger.violation_count(), 2u);
}

TEST(MsiOutcomeTest, CombineKeepsTheBestOutcome) {
  EXPECT_EQ(CombineOutcomes(MsiOutcome::kDiscarded, MsiOutcome::kCoalesced),
            MsiOutcome::kCoalesced);
  EXPECT_EQ(CombineOutcomes(MsiOutcome::kCoalesced, MsiOutcome::kAccepted),
            MsiOutcome::kAccepted);
  EXPECT_EQ(CombineOutcomes(MsiOutcome::kDiscarded, MsiOutcome::kDiscarded),
            MsiOutcome::kDiscarded);
}

// Two enabled local APICs (ids 0 and 1) on a bus.
class ApicOutcomeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bus_ = std::make_unique<ApicBus>(&q_, nullptr);
    for (int cpu = 0; cpu < 2; ++cpu) {
      apics_.push_back(std::make_unique<LocalApic>(
          LocalApicConfig{.cpu = cpu, .apic_id = static_cast<uint32_t>(cpu), .bsp = cpu == 0},
          &q_, &q_, nullptr, LocalApicCallbacks{}));
      bus_->Attach(apics_.back().get());
      ASSERT_TRUE(bus_->MmioWrite(cpu, apic::kDefaultApicBase + apic::kRegSvr, 4, 0x1FF));
    }
  }
  LocalApic& A(int cpu) { return *apics_[cpu]; }
  // IRR bits in and out add up (LocalApic::IrrCounts).
  static void ExpectIrrAddsUp(const LocalApic& a) {
    const LocalApic::IrrCounts& c = a.irr_counts();
    EXPECT_EQ(c.irr_set, c.acknowledged + c.irr_cleared_by_reset +
                             static_cast<uint64_t>(a.irr_popcount()));
  }

  EventQueue q_;
  std::unique_ptr<ApicBus> bus_;
  std::vector<std::unique_ptr<LocalApic>> apics_;
};

TEST_F(ApicOutcomeTest, AcceptedThenCoalescedWhileInTheIrr) {
  const MsiMessage m = MsiMessage::Compat(1, 0x40, kRid);
  EXPECT_EQ(bus_->Signal(m), MsiOutcome::kAccepted);
  EXPECT_EQ(bus_->Signal(m), MsiOutcome::kCoalesced);  // SDM 11.8.4
  A(1).Acknowledge(0x40);                               // IRR -> ISR
  EXPECT_EQ(bus_->Signal(m), MsiOutcome::kAccepted);    // one in ISR, one in IRR
  EXPECT_EQ(A(1).irr_counts().irr_set, 2u);
  EXPECT_EQ(A(1).irr_counts().coalesced, 1u);
  EXPECT_EQ(A(1).irr_counts().acknowledged, 1u);
  ExpectIrrAddsUp(A(1));
}

TEST_F(ApicOutcomeTest, BroadcastIsAcceptedIfAnyTargetAccepts) {
  EXPECT_EQ(bus_->Signal(MsiMessage::Compat(0, 0x41, kRid)), MsiOutcome::kAccepted);
  // CPU 0 already holds 0x41, CPU 1 takes it: accepted.
  EXPECT_EQ(bus_->Signal(MsiMessage::Compat(0xFF, 0x41, kRid)), MsiOutcome::kAccepted);
  // Both hold it now: coalesced.
  EXPECT_EQ(bus_->Signal(MsiMessage::Compat(0xFF, 0x41, kRid)), MsiOutcome::kCoalesced);
}

TEST_F(ApicOutcomeTest, ArchitecturalDiscards) {
  // No APIC with id 7.
  EXPECT_EQ(bus_->Signal(MsiMessage::Compat(7, 0x40, kRid)), MsiOutcome::kDiscarded);
  // Outside the interrupt window.
  EXPECT_EQ(bus_->Signal(MsiMessage(0xFED00000, 0x40, kRid)), MsiOutcome::kDiscarded);
  // Remappable format without a remapping unit.
  EXPECT_EQ(bus_->Signal(MsiMessage::Remappable(3, false, 0, kRid)), MsiOutcome::kDiscarded);
  // Illegal vector (ESR bit 6, SDM 11.5.3).
  EXPECT_EQ(bus_->Signal(MsiMessage::Compat(0, 0x05, kRid)), MsiOutcome::kDiscarded);
  // Software-disabled APIC (SDM 11.4.7.2).
  ASSERT_TRUE(bus_->MmioWrite(1, apic::kDefaultApicBase + apic::kRegSvr, 4, 0xFF));
  EXPECT_EQ(bus_->Signal(MsiMessage::Compat(1, 0x40, kRid)), MsiOutcome::kDiscarded);
  EXPECT_EQ(A(1).irr_counts().irr_set, 0u);
}

TEST_F(ApicOutcomeTest, InitResetCountsTheIrrBitsItClears) {
  for (uint8_t v : {0x40, 0x50, 0x60}) bus_->Signal(MsiMessage::Compat(0, v, kRid));
  A(0).Acknowledge(0x60);
  EXPECT_EQ(A(0).Accept(0, false, DeliveryMode::kInit), MsiOutcome::kAccepted);
  EXPECT_EQ(A(0).irr_counts().irr_set, 3u);
  EXPECT_EQ(A(0).irr_counts().acknowledged, 1u);
  EXPECT_EQ(A(0).irr_counts().irr_cleared_by_reset, 2u);
  EXPECT_EQ(A(0).irr_popcount(), 0);
  ExpectIrrAddsUp(A(0));
}

TEST(IrqRouteTableAccountingTest, OutcomesOfRoutedInterrupts) {
  EventQueue q;
  IrqLedger ledger(&q);
  FixedSink guest_apic(MsiOutcome::kAccepted);
  IrqRouteTable routes(&guest_apic, nullptr, nullptr, &q);
  routes.set_ledger(&ledger);
  const int gsi = routes.AddRoute(MsiMessage::Compat(0, 0x25, kRid), "test");
  routes.Fire(gsi);
  routes.InjectDrop(1);
  routes.Fire(gsi);
  routes.InjectDuplicate(1);
  routes.Fire(gsi);  // the injected copy and the original: two messages
  EXPECT_EQ(ledger.count(IrqSource::kVmmRoute, MsiOutcome::kAccepted), 3u);
  EXPECT_EQ(ledger.count(IrqSource::kVmmRoute, MsiOutcome::kInjectedDrop), 1u);
  EXPECT_EQ(guest_apic.count, 3);
  EXPECT_TRUE(ledger.holds());
  // An interrupt for a gsi without a route vanishes: a VMM defect.
  routes.Fire(gsi + 100);
  EXPECT_EQ(ledger.count(IrqSource::kVmmRoute, MsiOutcome::kLost), 1u);
  ASSERT_EQ(ledger.violations().size(), 1u);
  EXPECT_NE(ledger.violations()[0].find(absl::StrCat("vmm-route interrupt for gsi ", gsi + 100,
                                                    " (no route installed) vanished: ")),
            std::string::npos)
      << ledger.violations()[0];
}

}  // namespace
}  // namespace irqlab
