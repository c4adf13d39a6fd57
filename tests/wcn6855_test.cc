// Tests of devices/wcn6855.h (the synthetic WCN6855 with its firmware on an
// ARM core) on the host-only PCI testbed, driven the way an ath11k-like
// driver does: copy MSI address/data into the window, ring the doorbell,
// let virtual time pass, look at what the root complex received.
#include "devices/wcn6855.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "devices/wcn6855_regs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pci/pci_regs.h"
#include "pci/pci_testing.h"

namespace irqlab {
namespace {

using ::testing::HasSubstr;

constexpr uint8_t kDev = 5;        // 00:05.0, as in the machine
constexpr uint16_t kRid = 5 << 3;  // 00:05.0
constexpr AccessOrigin kCpu0 = {0, 0};
constexpr uint64_t kLatency = 1000;  // Options::doorbell_latency default
constexpr uint32_t kSeedAddress = 0xFEE00000;  // seed 000's guest pair
constexpr uint32_t kSeedData = 0x0020;

struct Fired {
  uint64_t time;
  std::string detail;
  uint64_t address;
  uint64_t data;
};

// True iff a trace event of `stage` on `tb` whose detail contains `text`.
bool Traced(const PciTestbed& tb, trace::Stage stage, const std::string& text) {
  for (const TraceEvent& e : tb.Events(stage)) {
    if (e.detail().find(text) != std::string::npos) return true;
  }
  return false;
}

class Wcn6855Test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto wcn = Wcn6855::Create(&tb_.events, Wcn6855::Options{});
    ASSERT_TRUE(wcn.ok()) << wcn.status();
    wcn_ = *std::move(wcn);
    ASSERT_TRUE(tb_.host.AddFunction(kDev, 0, wcn_.get()).ok());
    ASSERT_TRUE(tb_.host.AssignResources().ok());
    bar_ = wcn_->BarAddress(0);
  }
  uint64_t Rd(uint64_t reg, unsigned size = 4) { return tb_.mem.Read(kCpu0, bar_ + reg, size); }
  void Wr(uint64_t reg, uint64_t v, unsigned size = 4) {
    tb_.mem.Write(kCpu0, bar_ + reg, size, v);
  }
  void EnableBusMaster() {
    tb_.CfgWrite(kDev, 0, pci::kCommand, 2, pci::kCommandMemorySpace | pci::kCommandBusMaster);
  }
  // What the driver does for source `s`: address low, high, data 8 bytes on.
  void CopyPair(unsigned s, uint64_t address, uint32_t data) {
    const uint32_t off = Wcn6855::kSourceOffsets[s];
    Wr(off + WCN_SRC_ADDR_LO, static_cast<uint32_t>(address));
    Wr(off + WCN_SRC_ADDR_HI, address >> 32);
    Wr(off + WCN_SRC_DATA, data);
  }
  void Doorbell(uint32_t command, uint32_t arg = 0) {
    Wr(WCN_REG_CMD_ARG, arg);
    Wr(WCN_REG_DOORBELL, command);
  }
  void Advance(uint64_t ticks) { tb_.events.RunUntil(tb_.events.now() + ticks); }
  // Rings the doorbell and lets the firmware serve it.
  void Command(uint32_t command, uint32_t arg = 0) {
    Doorbell(command, arg);
    Advance(kLatency);
  }
  // DEVICE trace events of fired sources, in order.
  std::vector<Fired> FiredSources() const {
    std::vector<Fired> out;
    for (const TraceEvent& e : tb_.Events(trace::DEVICE)) {
      if (e.detail().find("fired source") == std::string::npos) continue;
      out.push_back({e.time(), e.detail(), e.address(), e.data()});
      EXPECT_EQ(e.requester_id(), kRid);
    }
    return out;
  }

  PciTestbed tb_;
  std::unique_ptr<Wcn6855> wcn_;  // after the testbed: unmaps its BAR first
  uint64_t bar_ = 0;
};

// wcn6855_regs.h: 17cb:1103, class 028000, no INTx, 32-bit MSI capability at
// 0x50 with 32 vectors (MMC = 5) and no per-vector masking, BAR0 2 MiB
// 64-bit memory.
TEST_F(Wcn6855Test, PciIdentityAndMsiCapability) {
  EXPECT_EQ(tb_.CfgRead(kDev, 0, 0, 4), 0x110317CBu);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, 0x08, 4), 0x02800001u);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, pci::kInterruptPin, 1), 0u);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, pci::kCapabilitiesPointer, 1), WCN_MSI_CAP_OFFSET);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, WCN_MSI_CAP_OFFSET, 1), pci::kCapIdMsi);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, WCN_MSI_CAP_OFFSET + 1, 1), 0u);  // last
  EXPECT_EQ(tb_.CfgRead(kDev, 0, WCN_MSI_CAP_OFFSET + pci::kMsiControl, 2),
            5u << pci::kMsiControlMmcShift);  // 32 vectors, 32-bit, no masking
  ASSERT_NE(wcn_->bar(0), nullptr);
  EXPECT_EQ(wcn_->bar(0)->type, BarType::kMemory64);
  EXPECT_EQ(wcn_->bar(0)->size, uint64_t{WCN_BAR0_SIZE});
  EXPECT_EQ(tb_.CfgRead(kDev, 0, pci::kBar0, 4) & 0xF, 0x4u);  // 64-bit memory
  // PciHost::AssignResources placed it, naturally aligned, and it decodes.
  EXPECT_NE(bar_, 0u);
  EXPECT_EQ(bar_ % WCN_BAR0_SIZE, 0u);
  EXPECT_EQ(wcn_->BarMappedAt(0), bar_);
  EXPECT_EQ(Rd(WCN_REG_SOC_ID), WCN_SOC_ID);
  EXPECT_EQ(Rd(WCN_REG_STATE), WCN_STATE_RESET);
}

// The driver's pair is stored verbatim in the window; the window is
// byte-addressable storage for any access size. Control registers written
// by the firmware are read-only to the driver, IRQ_STATUS is RW1C, the
// firmware-only registers read 0, sub-dword writes to the control block are
// ignored, and sub-dword reads see the register's bytes.
TEST_F(Wcn6855Test, RegisterAccessRules) {
  Wr(0x80048, kSeedAddress);
  Wr(0x80050, kSeedData);
  EXPECT_EQ(Rd(0x80048), kSeedAddress);
  EXPECT_EQ(Rd(0x8004A, 2), 0xFEE0u);
  EXPECT_EQ(Rd(0x80048, 8), uint64_t{kSeedAddress});
  Wr(0xBFFF8, 0x1122334455667788, 8);
  EXPECT_EQ(Rd(0xBFFFC), 0x11223344u);
  EXPECT_EQ(Rd(0xBFFFF, 1), 0x11u);
  Wr(0x90001, 0xAB, 1);
  EXPECT_EQ(Rd(0x90000), 0xAB00u);

  Wr(WCN_REG_STATE, 7);
  Wr(WCN_REG_EVENTS, 7);
  Wr(WCN_REG_RESPONSE, 7);
  Wr(WCN_REG_SOC_ID, 7);
  EXPECT_EQ(Rd(WCN_REG_STATE), 0u);
  EXPECT_EQ(Rd(WCN_REG_EVENTS), 0u);
  EXPECT_EQ(Rd(WCN_REG_RESPONSE), 0u);
  EXPECT_EQ(Rd(WCN_REG_SOC_ID), WCN_SOC_ID);
  EXPECT_EQ(Rd(WCN_REG_SOC_ID + 2, 2), WCN_SOC_ID >> 16);
  Wr(WCN_REG_CMD_ARG, 0x1234);
  Wr(WCN_REG_CMD_ARG, 0xFF, 1);  // ignored
  EXPECT_EQ(Rd(WCN_REG_CMD_ARG), 0x1234u);
  Wr(WCN_REG_FW_SCRATCH + 0xFC, 0x5A5A);
  EXPECT_EQ(Rd(WCN_REG_FW_SCRATCH + 0xFC), 0x5A5Au);
  EXPECT_EQ(Rd(0x0300), 0u);      // reserved
  EXPECT_EQ(Rd(0x100000), 0u);    // rest of BAR0

  Doorbell(WCN_CMD_BOOT);
  EXPECT_EQ(Rd(WCN_REG_DOORBELL), 0u);  // write-only
  EXPECT_EQ(Rd(WCN_REG_FW_CMD), 0u);    // firmware-only
  Advance(kLatency);
  EXPECT_EQ(Rd(WCN_REG_IRQ_STATUS), 1u << WCN_SRC_MHI);
  Wr(WCN_REG_IRQ_STATUS, 0x2);  // other bits: no effect
  EXPECT_EQ(Rd(WCN_REG_IRQ_STATUS), 1u);
  Wr(WCN_REG_IRQ_STATUS, 0x1);
  EXPECT_EQ(Rd(WCN_REG_IRQ_STATUS), 0u);
}

// Seed 000: the driver copies its MSI pair into the window and boots the
// firmware; doorbell_latency ticks later the firmware fires source MHI as a
// memory write of exactly that address/data with the device's requester id
// (the MSI capability need not even be enabled: the device does not use
// it). STATE/RESPONSE are updated before the interrupt.
TEST_F(Wcn6855Test, BootFiresMhiWithTheCopiedPairAfterTheLatency) {
  EnableBusMaster();
  for (unsigned s = 0; s < Wcn6855::kNumSources; ++s) {
    CopyPair(s, kSeedAddress | (s << 12), kSeedData + s);
  }
  const uint64_t t0 = tb_.events.now();
  Doorbell(WCN_CMD_BOOT);
  tb_.events.RunUntil(t0 + kLatency - 1);
  EXPECT_TRUE(tb_.msis.messages.empty());
  EXPECT_EQ(Rd(WCN_REG_STATE), WCN_STATE_RESET);
  tb_.events.RunUntil(t0 + kLatency);
  ASSERT_EQ(tb_.msis.messages.size(), 1u);
  EXPECT_EQ(tb_.msis.messages[0].address, kSeedAddress);
  EXPECT_EQ(tb_.msis.messages[0].data, kSeedData);
  EXPECT_EQ(tb_.msis.messages[0].requester_id, kRid);
  EXPECT_EQ(Rd(WCN_REG_STATE), WCN_STATE_READY);
  EXPECT_EQ(Rd(WCN_REG_RESPONSE), WCN_CMD_BOOT | WCN_STATUS_OK << 8);
  EXPECT_EQ(Rd(WCN_REG_EVENTS), 1u);
  EXPECT_EQ(Rd(WCN_REG_IRQ_STATUS), 1u << WCN_SRC_MHI);
  EXPECT_EQ(wcn_->fired(WCN_SRC_MHI), 1u);
  EXPECT_EQ(wcn_->firmware_runs(), 1u);
  EXPECT_GT(wcn_->firmware_instructions(), 0u);
  std::vector<Fired> fired = FiredSources();
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0].time, t0 + kLatency);
  EXPECT_THAT(fired[0].detail, HasSubstr("source 0 (mhi)"));
  EXPECT_EQ(fired[0].address, kSeedAddress);
  EXPECT_EQ(fired[0].data, kSeedData);
  EXPECT_TRUE(tb_.events.empty());  // asleep, no timer
}

// HTT_CONNECT after BOOT fires CE2 (the connect response) once; before BOOT
// it is refused with BAD_STATE and fires nothing.
TEST_F(Wcn6855Test, HttConnectFiresCe2) {
  EnableBusMaster();
  CopyPair(WCN_SRC_MHI, kSeedAddress, kSeedData);
  CopyPair(WCN_SRC_CE2, 0xFEE01000, 0x0031);
  Command(WCN_CMD_HTT_CONNECT);
  EXPECT_EQ(Rd(WCN_REG_RESPONSE), WCN_CMD_HTT_CONNECT | WCN_STATUS_BAD_STATE << 8);
  EXPECT_TRUE(tb_.msis.messages.empty());
  Command(WCN_CMD_BOOT);
  Command(WCN_CMD_HTT_CONNECT);
  ASSERT_EQ(tb_.msis.messages.size(), 2u);
  EXPECT_EQ(tb_.msis.messages[1].address, 0xFEE01000u);
  EXPECT_EQ(tb_.msis.messages[1].data, 0x0031u);
  EXPECT_EQ(tb_.msis.messages[1].requester_id, kRid);
  EXPECT_EQ(Rd(WCN_REG_STATE), WCN_STATE_HTT_CONNECTED);
  EXPECT_EQ(Rd(WCN_REG_RESPONSE), WCN_CMD_HTT_CONNECT | WCN_STATUS_OK << 8);
  EXPECT_EQ(Rd(WCN_REG_IRQ_STATUS), (1u << WCN_SRC_MHI) | (1u << WCN_SRC_CE2));
  EXPECT_EQ(wcn_->fired(WCN_SRC_CE2), 1u);
}

// EVENTS(24): 24 interrupts over sources 1..12 (each twice, in order), the
// first when the firmware takes the command, then one every
// WCN_EVENT_INTERVAL ticks; afterwards the firmware sleeps with no timer.
TEST_F(Wcn6855Test, EventsStreamCyclesSources1To12AtTheInterval) {
  EnableBusMaster();
  for (unsigned s = 0; s < Wcn6855::kNumSources; ++s) {
    CopyPair(s, kSeedAddress, 0x40 + s);
  }
  Command(WCN_CMD_BOOT);
  const uint64_t t1 = tb_.events.now();
  Doorbell(WCN_CMD_EVENTS, 24);
  tb_.events.RunUntil(t1 + kLatency + 23 * WCN_EVENT_INTERVAL + 100000);
  std::vector<Fired> fired = FiredSources();
  ASSERT_EQ(fired.size(), 25u);  // MHI + 24
  for (unsigned k = 0; k < 24; ++k) {
    const unsigned source = 1 + k % 12;
    SCOPED_TRACE(k);
    EXPECT_EQ(fired[1 + k].time, t1 + kLatency + k * WCN_EVENT_INTERVAL);
    EXPECT_THAT(fired[1 + k].detail,
                HasSubstr(std::string("(") + std::string(Wcn6855::SourceName(source)) + ")"));
    EXPECT_EQ(tb_.msis.messages[1 + k].data, 0x40 + source);
    EXPECT_EQ(tb_.msis.messages[1 + k].address, kSeedAddress);
  }
  for (unsigned s = 1; s <= 12; ++s) EXPECT_EQ(wcn_->fired(s), 2u);
  EXPECT_EQ(Rd(WCN_REG_EVENTS), 25u);
  EXPECT_EQ(Rd(WCN_REG_RESPONSE), WCN_CMD_EVENTS);
  EXPECT_EQ(wcn_->firmware_runs(), 1u + 24u);  // boot + one run per event
  EXPECT_TRUE(tb_.events.empty());
}

// A RESET during the stream stops it: STATE=RESET, EVENTS=0, no timer left.
TEST_F(Wcn6855Test, ResetStopsTheStream) {
  EnableBusMaster();
  Command(WCN_CMD_BOOT);
  Doorbell(WCN_CMD_EVENTS, 100);
  Advance(kLatency + 2 * WCN_EVENT_INTERVAL);  // 3 events
  EXPECT_EQ(Rd(WCN_REG_EVENTS), 4u);
  Command(WCN_CMD_RESET);
  EXPECT_EQ(Rd(WCN_REG_STATE), WCN_STATE_RESET);
  EXPECT_EQ(Rd(WCN_REG_EVENTS), 0u);
  EXPECT_EQ(Rd(WCN_REG_RESPONSE), WCN_CMD_RESET);
  EXPECT_TRUE(tb_.events.empty());
  const size_t sent = tb_.msis.messages.size();
  Advance(10 * WCN_EVENT_INTERVAL);
  EXPECT_EQ(tb_.msis.messages.size(), sent);
}

// Windows guests use 16 MSI vectors: the driver programs data | vector per
// source. The firmware fires each pair verbatim (it neither reads the MSI
// capability nor folds vectors).
TEST_F(Wcn6855Test, SixteenVectorsDistinctDataAreFiredVerbatim) {
  EnableBusMaster();
  tb_.CfgWrite(kDev, 0, WCN_MSI_CAP_OFFSET + pci::kMsiAddressLo, 4, kSeedAddress);
  tb_.CfgWrite(kDev, 0, WCN_MSI_CAP_OFFSET + pci::kMsiData32, 2, 0x0050);
  tb_.CfgWrite(kDev, 0, WCN_MSI_CAP_OFFSET + pci::kMsiControl, 2,
               pci::kMsiControlEnable | 4 << pci::kMsiControlMmeShift);
  for (unsigned s = 0; s < Wcn6855::kNumSources; ++s) CopyPair(s, kSeedAddress, 0x0050 | s);
  for (unsigned s = 0; s < Wcn6855::kNumSources; ++s) Command(WCN_CMD_FIRE, s);
  ASSERT_EQ(tb_.msis.messages.size(), Wcn6855::kNumSources);
  for (unsigned s = 0; s < Wcn6855::kNumSources; ++s) {
    EXPECT_EQ(tb_.msis.messages[s].address, kSeedAddress);
    EXPECT_EQ(tb_.msis.messages[s].data, 0x0050u | s);
    EXPECT_EQ(tb_.msis.messages[s].requester_id, kRid);
    EXPECT_EQ(wcn_->fired(s), 1u);
  }
  Command(WCN_CMD_FIRE, WCN_NUM_SOURCES);
  EXPECT_EQ(Rd(WCN_REG_RESPONSE), WCN_CMD_FIRE | WCN_STATUS_BAD_ARG << 8);
  Command(0x77);
  EXPECT_EQ(Rd(WCN_REG_RESPONSE), 0x77 | WCN_STATUS_UNKNOWN << 8);
  EXPECT_EQ(tb_.msis.messages.size(), Wcn6855::kNumSources);
}

// PCI 3.0 6.2.2: without Bus Master Enable the write never leaves the
// device (PCI_BLOCKED); the firmware still did its part.
TEST_F(Wcn6855Test, BusMasterOffDropsTheInterrupt) {
  CopyPair(WCN_SRC_MHI, kSeedAddress, kSeedData);
  Command(WCN_CMD_BOOT);
  EXPECT_TRUE(tb_.msis.messages.empty());
  EXPECT_FALSE(tb_.Events(trace::PCI_BLOCKED).empty());
  EXPECT_EQ(Rd(WCN_REG_STATE), WCN_STATE_READY);
  EXPECT_EQ(wcn_->fired(WCN_SRC_MHI), 1u);
}

// A source the driver never programmed still fires: a 4-byte DMA write of
// 0 at address 0 (plain memory here), not an MSI.
TEST_F(Wcn6855Test, UnprogrammedSourceWritesZeroToAddressZero) {
  EnableBusMaster();
  uint8_t* ram = tb_.ram->data();
  for (int i = 0; i < 5; ++i) ram[i] = 0xAA;
  Command(WCN_CMD_FIRE, 7);
  EXPECT_TRUE(tb_.msis.messages.empty());
  EXPECT_EQ(std::vector<uint8_t>(ram, ram + 5), (std::vector<uint8_t>{0, 0, 0, 0, 0xAA}));
  EXPECT_EQ(wcn_->fired(7), 1u);
}

// A second doorbell before the firmware took the first overwrites it
// (one-command latch): only the last command is served.
TEST_F(Wcn6855Test, DoorbellLatchHoldsTheLastCommand) {
  EnableBusMaster();
  Doorbell(WCN_CMD_BOOT);
  Doorbell(WCN_CMD_FIRE, WCN_SRC_CE0);
  Advance(kLatency);
  EXPECT_EQ(wcn_->doorbells(), 2u);
  EXPECT_EQ(wcn_->doorbells_overwritten(), 1u);
  EXPECT_EQ(Rd(WCN_REG_STATE), WCN_STATE_RESET);  // BOOT was lost
  EXPECT_EQ(wcn_->fired(WCN_SRC_CE0), 1u);
  EXPECT_TRUE(Traced(tb_, trace::DEVICE, "overwrites command 0x1"));
  Wr(WCN_REG_DOORBELL, 0);  // not a command
  EXPECT_EQ(wcn_->doorbells(), 2u);
  EXPECT_TRUE(tb_.events.empty());
}

// The device works stand-alone, with no bus and no interrupt consumer: the
// writes fail upstream (not attached) and nothing else happens.
TEST(Wcn6855StandaloneTest, WorksWithoutABus) {
  EventQueue events;
  auto wcn = Wcn6855::Create(&events, Wcn6855::Options{});
  ASSERT_TRUE(wcn.ok()) << wcn.status();
  (*wcn)->Write(kCpu0, WCN_REG_DOORBELL, 4, WCN_CMD_BOOT);
  events.RunUntil(10 * kLatency);
  EXPECT_EQ((*wcn)->Read(kCpu0, WCN_REG_STATE, 4), WCN_STATE_READY);
  EXPECT_EQ((*wcn)->fired(WCN_SRC_MHI), 1u);
}

// Thumb images that misbehave, each with the vector table {SP, 0x09}.
std::vector<uint8_t> BadImage(uint16_t instruction) {
  return {0x00, 0x40, 0x00, 0x20, 0x09, 0x00, 0x00, 0x00,
          static_cast<uint8_t>(instruction), static_cast<uint8_t>(instruction >> 8)};
}

// A firmware fault stops the core (traced), never the host; doorbells are
// then latched but not served, except RESET, which resets the core first.
TEST(Wcn6855FirmwareFaultTest, CrashingFirmwareIsContained) {
  PciTestbed tb;
  const std::vector<uint8_t> image = BadImage(0xDE00);  // udf #0
  auto created = Wcn6855::Create(&tb.events, Wcn6855::Options{.firmware = image});
  ASSERT_TRUE(created.ok()) << created.status();
  Wcn6855& wcn = **created;
  ASSERT_TRUE(tb.host.AddFunction(kDev, 0, &wcn).ok());
  wcn.Write(kCpu0, WCN_REG_DOORBELL, 4, WCN_CMD_BOOT);
  tb.events.RunUntil(kLatency);
  EXPECT_TRUE(wcn.firmware_crashed());
  EXPECT_THAT(wcn.firmware().crash_reason(), HasSubstr("undefined instruction"));
  EXPECT_TRUE(Traced(tb, trace::DEVICE, "firmware crashed: undefined instruction"));
  wcn.Write(kCpu0, WCN_REG_DOORBELL, 4, WCN_CMD_BOOT);
  EXPECT_TRUE(tb.events.empty());  // not served
  EXPECT_TRUE(Traced(tb, trace::DEVICE, "not serviced: firmware crashed"));
  EXPECT_EQ(wcn.firmware_runs(), 1u);
  wcn.Write(kCpu0, WCN_REG_DOORBELL, 4, WCN_CMD_RESET);
  tb.events.RunUntil(tb.events.now() + kLatency);
  EXPECT_EQ(wcn.firmware_runs(), 2u);  // reset, ran, crashed again
  EXPECT_TRUE(wcn.firmware_crashed());
  EXPECT_TRUE(tb.msis.messages.empty());
}

// A firmware that never executes WFI is stopped after run_budget
// instructions (traced "hung") instead of looping forever.
TEST(Wcn6855FirmwareFaultTest, SpinningFirmwareIsStopped) {
  PciTestbed tb;
  const std::vector<uint8_t> image = BadImage(0xE7FE);  // b .
  auto created = Wcn6855::Create(&tb.events,
                                 Wcn6855::Options{.run_budget = 10000, .firmware = image});
  ASSERT_TRUE(created.ok()) << created.status();
  Wcn6855& wcn = **created;
  ASSERT_TRUE(tb.host.AddFunction(kDev, 0, &wcn).ok());
  wcn.Write(kCpu0, WCN_REG_DOORBELL, 4, WCN_CMD_BOOT);
  tb.events.RunUntil(kLatency);
  EXPECT_TRUE(wcn.firmware_hung());
  EXPECT_FALSE(wcn.firmware_crashed());
  EXPECT_EQ(wcn.firmware_instructions(), 10000u);
  EXPECT_TRUE(Traced(tb, trace::DEVICE, "did not reach WFI within 10000 instructions"));
  EXPECT_TRUE(tb.events.empty());
  wcn.Write(kCpu0, WCN_REG_DOORBELL, 4, WCN_CMD_BOOT);
  EXPECT_TRUE(tb.events.empty());
  EXPECT_TRUE(Traced(tb, trace::DEVICE, "not serviced: firmware hung"));
}

// An image that does not fit the ROM is a creation error, not a device.
TEST(Wcn6855FirmwareFaultTest, RejectsAnImageThatDoesNotFit) {
  EventQueue events;
  const std::vector<uint8_t> image(WCN_FW_ROM_SIZE + 4);
  EXPECT_EQ(Wcn6855::Create(&events, Wcn6855::Options{.firmware = image}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Not a rule: prints what the built-in firmware costs (instructions per
// run, host time per run) while streaming events.
TEST_F(Wcn6855Test, FirmwareSpeed) {
  EnableBusMaster();
  for (unsigned s = 0; s < Wcn6855::kNumSources; ++s) CopyPair(s, kSeedAddress, 0x40 + s);
  Command(WCN_CMD_BOOT);
  const uint64_t runs0 = wcn_->firmware_runs();
  const uint64_t insns0 = wcn_->firmware_instructions();
  const auto start = std::chrono::steady_clock::now();
  constexpr uint32_t kEvents = 20000;
  Doorbell(WCN_CMD_EVENTS, kEvents);
  tb_.events.RunUntil(tb_.events.now() + kLatency + uint64_t{kEvents} * WCN_EVENT_INTERVAL);
  const double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const uint64_t runs = wcn_->firmware_runs() - runs0;
  const uint64_t insns = wcn_->firmware_instructions() - insns0;
  EXPECT_EQ(Rd(WCN_REG_EVENTS), 1u + kEvents);
  std::printf("wcn6855 firmware: %llu runs, %.1f instructions/run, %.2f us/run "
              "(whole event incl. MSI), %.1f M firmware instructions/s\n",
              static_cast<unsigned long long>(runs), static_cast<double>(insns) / runs,
              s * 1e6 / runs, insns / s / 1e6);
}

}  // namespace
}  // namespace irqlab
