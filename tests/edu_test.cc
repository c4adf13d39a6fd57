// Tests of devices/edu.h (QEMU's edu device, docs/specs/edu.rst and
// hw/misc/edu.c) and devices/irqlab_testdev.h, on the host-only PCI testbed.
// Virtual time comes from the EventQueue: completions run at
// EventPriority::kDeviceCompletion after the documented delays.
#include <cstdint>
#include <cstring>

#include "devices/edu.h"
#include "devices/irqlab_testdev.h"
#include "gtest/gtest.h"
#include "pci/pci_regs.h"
#include "pci/pci_testing.h"

namespace irqlab {
namespace {

constexpr uint8_t kDev = 3;  // 00:03.0: INTA# -> GSI 16 + (3 + 1 - 1) % 4 = 19
constexpr int kGsi = 19;
constexpr uint16_t kRid = 0x0018;
constexpr AccessOrigin kCpu0 = {0, 0};

class EduTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tb_.host.AddFunction(kDev, 0, &edu_).ok());
    ASSERT_TRUE(tb_.host.AssignResources().ok());
    bar_ = edu_.BarAddress(0);
  }
  uint64_t Rd(uint64_t reg, unsigned size = 4) { return tb_.mem.Read(kCpu0, bar_ + reg, size); }
  void Wr(uint64_t reg, uint64_t v, unsigned size = 4) { tb_.mem.Write(kCpu0, bar_ + reg, size, v); }
  void EnableBusMaster() {
    tb_.CfgWrite(kDev, 0, pci::kCommand, 2,
                 pci::kCommandMemorySpace | pci::kCommandBusMaster);
  }
  void EnableMsi(uint32_t address, uint16_t data) {
    tb_.CfgWrite(kDev, 0, Edu::kMsiCapOffset + pci::kMsiAddressLo, 4, address);
    tb_.CfgWrite(kDev, 0, Edu::kMsiCapOffset + pci::kMsiData64, 2, data);
    tb_.CfgWrite(kDev, 0, Edu::kMsiCapOffset + pci::kMsiControl, 2,
                 pci::kMsiControlEnable);
  }
  void Advance(uint64_t ticks) { tb_.events.RunUntil(tb_.events.now() + ticks); }

  PciTestbed tb_;
  Edu edu_{&tb_.events};
  uint64_t bar_ = 0;
};

// edu.rst: PCI 1234:11e8, class 00ff00, revision 0x10, INTA#, BAR0 1 MiB
// 32-bit memory, one MSI capability (64-bit, 1 vector, no masking) at 0x40.
TEST_F(EduTest, PciIdentityAndCapabilities) {
  EXPECT_EQ(tb_.CfgRead(kDev, 0, 0, 4), 0x11E81234u);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, 0x08, 4), 0x00FF0010u);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, pci::kInterruptPin, 1), 1u);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, pci::kInterruptLine, 1), uint32_t{kGsi});
  EXPECT_EQ(tb_.CfgRead(kDev, 0, pci::kCapabilitiesPointer, 1), 0x40u);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, 0x40, 1), pci::kCapIdMsi);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, 0x41, 1), 0u);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, 0x42, 2), uint32_t{pci::kMsiControl64Bit});
  EXPECT_EQ(edu_.bar(0)->size, Edu::kBar0Size);
  EXPECT_EQ(edu_.bar(0)->type, BarType::kMemory32);
}

// edu.rst 0x00 / 0x04: identification 0x010000ED; liveness returns the
// inverse of the value written. Only 4-byte accesses below 0x80 (QEMU
// edu_mmio_read/write): other sizes read all-ones and are ignored.
TEST_F(EduTest, IdentificationAndLiveness) {
  EXPECT_EQ(Rd(Edu::kRegId), 0x010000EDu);
  Wr(Edu::kRegLiveness, 0x12345678);
  EXPECT_EQ(Rd(Edu::kRegLiveness), 0xEDCBA987u);
  Wr(Edu::kRegLiveness, 0, 2);
  EXPECT_EQ(Rd(Edu::kRegLiveness), 0xEDCBA987u);
  EXPECT_EQ(Rd(Edu::kRegId, 2), 0xFFFFu);
  EXPECT_EQ(Rd(Edu::kRegId, 8), ~uint64_t{0});
  EXPECT_EQ(Rd(0x30), 0xFFFFFFFFu);  // unknown register
}

// edu.rst 0x08 / 0x20: writing n starts the computation (status bit 0);
// reading 0x08 meanwhile returns n; factorial_delay ticks later it holds n!
// and bit 0 clears. Writes during the computation are ignored. 13! mod 2^32
// as QEMU's 32-bit arithmetic gives; 34! and above are 0 mod 2^32.
TEST_F(EduTest, FactorialCompletesAfterTheVirtualDelay) {
  Wr(Edu::kRegFactorial, 5);
  EXPECT_EQ(Rd(Edu::kRegStatus) & Edu::kStatusComputing, 1u);
  Wr(Edu::kRegFactorial, 7);  // ignored
  Advance(Edu::Options().factorial_delay - 1);
  EXPECT_EQ(Rd(Edu::kRegStatus) & Edu::kStatusComputing, 1u);
  EXPECT_EQ(Rd(Edu::kRegFactorial), 5u);
  Advance(1);
  EXPECT_EQ(Rd(Edu::kRegStatus), 0u);
  EXPECT_EQ(Rd(Edu::kRegFactorial), 120u);
  Wr(Edu::kRegFactorial, 13);
  Advance(Edu::Options().factorial_delay);
  EXPECT_EQ(Rd(Edu::kRegFactorial), 1932053504u);  // 13! mod 2^32
  Wr(Edu::kRegFactorial, 0xFFFFFFFF);
  Advance(Edu::Options().factorial_delay);
  EXPECT_EQ(Rd(Edu::kRegFactorial), 0u);
  EXPECT_EQ(tb_.intx.history.size(), 0u);  // no interrupt without bit 7
}

// edu.rst 0x20 bit 7: raise interrupt 0x01 after the factorial; with MSI
// disabled that is INTx (INTA# -> GSI 19); 0x64 acknowledges it and the line
// drops when the status reaches 0.
TEST_F(EduTest, FactorialInterruptOnIntxAndAcknowledge) {
  Wr(Edu::kRegStatus, Edu::kStatusIrqFact);
  EXPECT_EQ(Rd(Edu::kRegStatus), Edu::kStatusIrqFact);
  Wr(Edu::kRegFactorial, 4);
  Advance(Edu::Options().factorial_delay);
  EXPECT_EQ(Rd(Edu::kRegFactorial), 24u);
  EXPECT_EQ(Rd(Edu::kRegIrqStatus), Edu::kFactIrq);
  EXPECT_TRUE(tb_.intx.level(kGsi));
  EXPECT_TRUE(tb_.CfgRead(kDev, 0, pci::kStatus, 2) & pci::kStatusInterrupt);
  Wr(Edu::kRegIrqAck, Edu::kFactIrq);
  EXPECT_EQ(Rd(Edu::kRegIrqStatus), 0u);
  EXPECT_FALSE(tb_.intx.level(kGsi));
}

// edu.rst 0x60 / 0x64: raise ORs into the interrupt status; acknowledge
// clears bits, INTx deasserts only when no bit is left.
TEST_F(EduTest, RaiseAndAcknowledgeWithIntx) {
  Wr(Edu::kRegIrqRaise, 0x10);
  Wr(Edu::kRegIrqRaise, 0x02);
  EXPECT_EQ(Rd(Edu::kRegIrqStatus), 0x12u);
  EXPECT_TRUE(tb_.intx.level(kGsi));
  Wr(Edu::kRegIrqAck, 0x10);
  EXPECT_TRUE(tb_.intx.level(kGsi));
  Wr(Edu::kRegIrqAck, 0x02);
  EXPECT_FALSE(tb_.intx.level(kGsi));
  EXPECT_TRUE(tb_.msis.messages.empty());
}

// With MSI enabled, a raise sends MSI vector 0 (every raise while the
// status is non-zero sends once more, QEMU edu_raise_irq); INTx stays low.
// Without Bus Master Enable the message is dropped.
TEST_F(EduTest, RaiseWithMsiSendsAMessagePerRaise) {
  EnableMsi(0xFEE01000, 0x0031);
  Wr(Edu::kRegIrqRaise, 0x1);
  EXPECT_TRUE(tb_.msis.messages.empty());  // bus master still off
  EXPECT_EQ(tb_.Events(trace::PCI_BLOCKED).size(), 1u);
  EnableBusMaster();
  Wr(Edu::kRegIrqRaise, 0x1);
  Wr(Edu::kRegIrqRaise, 0x4);
  ASSERT_EQ(tb_.msis.messages.size(), 2u);
  EXPECT_EQ(tb_.msis.messages[0], MsiMessage(0xFEE01000, 0x31, kRid));
  EXPECT_FALSE(tb_.intx.level(kGsi));
  Wr(Edu::kRegIrqAck, 0x5);
  EXPECT_EQ(Rd(Edu::kRegIrqStatus), 0u);
  EXPECT_EQ(tb_.msis.messages.size(), 2u);
}

// edu.rst DMA: direction 0 copies RAM -> buffer (at device address 0x40000),
// direction 1 buffer -> RAM; bit 2 raises interrupt 0x100 on completion; the
// transfer happens dma_delay ticks after the start; bit 0 reads 1 until then.
TEST_F(EduTest, DmaRoundTripWithCompletionInterrupt) {
  EnableBusMaster();
  EnableMsi(0xFEE00000, 0x0042);
  const char kText[] = "irqlab edu dma";
  std::memcpy(tb_.ram->data() + 0x10000, kText, sizeof(kText));
  Wr(Edu::kRegDmaSrc, 0x10000);
  Wr(Edu::kRegDmaDst, Edu::kDmaBufferAddress + 0x100, 8);
  Wr(Edu::kRegDmaCount, sizeof(kText));
  Wr(Edu::kRegDmaCmd, Edu::kDmaRun | Edu::kDmaIrqOnDone);
  Advance(Edu::Options().dma_delay - 1);
  EXPECT_EQ(Rd(Edu::kRegDmaCmd) & Edu::kDmaRun, 1u);
  EXPECT_EQ(edu_.dma_buffer()[0x100], 0);
  Advance(1);
  EXPECT_EQ(Rd(Edu::kRegDmaCmd) & Edu::kDmaRun, 0u);
  EXPECT_EQ(std::memcmp(edu_.dma_buffer().data() + 0x100, kText, sizeof(kText)), 0);
  EXPECT_EQ(Rd(Edu::kRegIrqStatus), Edu::kDmaIrq);
  ASSERT_EQ(tb_.msis.messages.size(), 1u);
  EXPECT_EQ(tb_.msis.messages[0], MsiMessage(0xFEE00000, 0x42, kRid));
  Wr(Edu::kRegIrqAck, Edu::kDmaIrq);
  // Back to RAM at another address.
  Wr(Edu::kRegDmaSrc, Edu::kDmaBufferAddress + 0x100);
  Wr(Edu::kRegDmaDst, 0x20000);
  Wr(Edu::kRegDmaCmd, Edu::kDmaRun | Edu::kDmaToRam | Edu::kDmaIrqOnDone);
  Advance(Edu::Options().dma_delay);
  EXPECT_EQ(std::memcmp(tb_.ram->data() + 0x20000, kText, sizeof(kText)), 0);
  EXPECT_EQ(tb_.msis.messages.size(), 2u);
  bool saw_dma_trace = false;
  for (const TraceEvent& e : tb_.Events(trace::DMA)) {
    saw_dma_trace |= e.requester_id() == kRid && e.address() == 0x20000;
  }
  EXPECT_TRUE(saw_dma_trace);
}

// Guest mistakes never crash (QEMU edu_check_range / dma_rw): a buffer range
// outside [0x40000, 0x41000) or overflowing transfers nothing but the command
// completes (interrupt 0x100 if asked); registers are read-only while a
// transfer runs; a command write without bit 0 does nothing; RAM addresses
// are clamped to the 28-bit DMA mask.
TEST_F(EduTest, DmaBoundsAndBusyRules) {
  EnableBusMaster();
  Wr(Edu::kRegDmaSrc, 0x1000);
  Wr(Edu::kRegDmaDst, Edu::kDmaBufferAddress + 0xF00, 8);
  Wr(Edu::kRegDmaCount, 0x200);  // runs past the buffer end
  Wr(Edu::kRegDmaCmd, Edu::kDmaRun | Edu::kDmaIrqOnDone);
  Wr(Edu::kRegDmaCount, 0x10);  // ignored: busy
  EXPECT_EQ(Rd(Edu::kRegDmaCount, 8), 0x200u);
  Advance(Edu::Options().dma_delay);
  EXPECT_EQ(Rd(Edu::kRegDmaCmd) & Edu::kDmaRun, 0u);
  EXPECT_EQ(Rd(Edu::kRegIrqStatus), Edu::kDmaIrq);
  EXPECT_TRUE(tb_.intx.level(kGsi));
  Wr(Edu::kRegIrqAck, Edu::kDmaIrq);
  // Overflowing count.
  Wr(Edu::kRegDmaCount, ~uint64_t{0}, 8);
  Wr(Edu::kRegDmaCmd, Edu::kDmaRun | Edu::kDmaToRam);
  Advance(Edu::Options().dma_delay);
  EXPECT_EQ(Rd(Edu::kRegDmaCmd) & Edu::kDmaRun, 0u);
  // No start bit: nothing scheduled.
  Wr(Edu::kRegDmaCmd, Edu::kDmaToRam);
  EXPECT_TRUE(tb_.events.empty());
  // Clamp: 0x1_0000_3000 & (2^28 - 1) = 0x3000.
  edu_.mutable_dma_buffer()[0] = 0xAB;
  Wr(Edu::kRegDmaSrc, Edu::kDmaBufferAddress, 8);
  Wr(Edu::kRegDmaDst, 0x100003000ull, 8);
  Wr(Edu::kRegDmaCount, 1);
  Wr(Edu::kRegDmaCmd, Edu::kDmaRun | Edu::kDmaToRam);
  Advance(Edu::Options().dma_delay);
  EXPECT_EQ(tb_.ram->Load<uint8_t>(0x3000), 0xAB);
  // Beyond RAM (16 MiB) but inside the mask: master abort, no crash.
  Wr(Edu::kRegDmaDst, 0x0FFFFFF0, 8);
  Wr(Edu::kRegDmaCount, 0x100);
  Wr(Edu::kRegDmaCmd, Edu::kDmaRun | Edu::kDmaToRam);
  Advance(Edu::Options().dma_delay);
  EXPECT_TRUE(tb_.CfgRead(kDev, 0, pci::kStatus, 2) & pci::kStatusReceivedMasterAbort);
}

// PCI 3.0 6.2.2 bit 2: without Bus Master Enable the DMA is dropped by the
// PCI layer (traced), the command still completes.
TEST_F(EduTest, DmaWithoutBusMasterTransfersNothing) {
  tb_.ram->Store<uint32_t>(0x5000, 0xCAFEF00D);
  Wr(Edu::kRegDmaSrc, 0x5000);
  Wr(Edu::kRegDmaDst, Edu::kDmaBufferAddress);
  Wr(Edu::kRegDmaCount, 4);
  Wr(Edu::kRegDmaCmd, Edu::kDmaRun);
  Advance(Edu::Options().dma_delay);
  EXPECT_EQ(edu_.dma_buffer()[0], 0);
  EXPECT_EQ(Rd(Edu::kRegDmaCmd) & Edu::kDmaRun, 0u);
  EXPECT_EQ(tb_.Events(trace::PCI_BLOCKED).size(), 1u);
}

// Destroying the device cancels its pending completions (no callback into
// a dead object).
TEST(EduLifetimeTest, DestructionCancelsPendingEvents) {
  PciTestbed tb;
  {
    Edu edu(&tb.events, Edu::Options{.factorial_delay = 5, .dma_delay = 7});
    ASSERT_TRUE(tb.host.AddFunction(3, 0, &edu).ok());
    edu.Write(kCpu0, Edu::kRegFactorial, 4, 3);
    edu.Write(kCpu0, Edu::kRegDmaCmd, 4, Edu::kDmaRun);
    EXPECT_EQ(tb.events.size(), 2u);
  }
  EXPECT_TRUE(tb.events.empty());
}

// --- irqlab-testdev. ---

class TestDevTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tb_.host.AddFunction(4, 0, &dev_).ok());
    ASSERT_TRUE(tb_.host.AssignResources().ok());
    tb_.CfgWrite(4, 0, pci::kCommand, 2,
                 pci::kCommandMemorySpace | pci::kCommandIoSpace | pci::kCommandBusMaster);
    regs_ = dev_.BarAddress(0);
  }
  uint32_t Rd(uint64_t reg) { return tb_.mem.Read(kCpu0, regs_ + reg, 4); }
  void Wr(uint64_t reg, uint32_t v) { tb_.mem.Write(kCpu0, regs_ + reg, 4, v); }

  PciTestbed tb_;
  IrqlabTestDev dev_;
  uint64_t regs_ = 0;
};

// FIRE with neither MSI nor MSI-X enabled raises INTx (INTA# of device 4 ->
// GSI 16); the INTX register lowers it. The I/O BAR mirrors the registers.
TEST_F(TestDevTest, FireWithoutMessagesRaisesIntx) {
  EXPECT_EQ(Rd(IrqlabTestDev::kRegId), IrqlabTestDev::kId);
  EXPECT_EQ(tb_.io.Read(kCpu0, dev_.BarAddress(4), 4), IrqlabTestDev::kId);
  EXPECT_EQ(Rd(IrqlabTestDev::kRegMode), IrqlabTestDev::kModeIntx);
  Wr(IrqlabTestDev::kRegFire, 0);
  EXPECT_TRUE(tb_.intx.level(16));
  EXPECT_EQ(Rd(IrqlabTestDev::kRegLastResult), IrqlabTestDev::kResultIntxRaised);
  EXPECT_EQ(Rd(IrqlabTestDev::kRegIntx), 1u);
  tb_.io.Write(kCpu0, dev_.BarAddress(4) + IrqlabTestDev::kRegIntx, 4, 0);
  EXPECT_FALSE(tb_.intx.level(16));
  EXPECT_EQ(Rd(IrqlabTestDev::kRegFireCount), 1u);
}

// Multi-message MSI from the guest's point of view: 16 vectors granted,
// FIRE n sends data | n; a masked vector reports "pending" (1) and is sent
// on unmask; the sent counter counts messages accepted upstream.
TEST_F(TestDevTest, FireWithMultiMessageMsi) {
  const uint16_t cap = IrqlabTestDev::kMsiCapOffset;
  tb_.CfgWrite(4, 0, cap + pci::kMsiAddressLo, 4, 0xFEE00000);
  tb_.CfgWrite(4, 0, cap + pci::kMsiData64, 2, 0x0060);
  tb_.CfgWrite(4, 0, cap + pci::kMsiMask64, 4, 1u << 9);
  tb_.CfgWrite(4, 0, cap + pci::kMsiControl, 2,
               (4u << pci::kMsiControlMmeShift) | pci::kMsiControlEnable);
  EXPECT_EQ(Rd(IrqlabTestDev::kRegMode), IrqlabTestDev::kModeMsi);
  for (uint32_t n : {0u, 5u, 15u}) Wr(IrqlabTestDev::kRegFire, n);
  Wr(IrqlabTestDev::kRegFire, 9);
  EXPECT_EQ(Rd(IrqlabTestDev::kRegLastResult), static_cast<uint32_t>(SignalResult::kPending));
  ASSERT_EQ(tb_.msis.messages.size(), 3u);
  EXPECT_EQ(tb_.msis.messages[0].Vector(), 0x60);
  EXPECT_EQ(tb_.msis.messages[1].Vector(), 0x65);
  EXPECT_EQ(tb_.msis.messages[2].Vector(), 0x6F);
  tb_.CfgWrite(4, 0, cap + pci::kMsiMask64, 4, 0);
  ASSERT_EQ(tb_.msis.messages.size(), 4u);
  EXPECT_EQ(tb_.msis.messages[3].Vector(), 0x69);
  EXPECT_EQ(Rd(IrqlabTestDev::kRegFireCount), 4u);
  EXPECT_EQ(Rd(IrqlabTestDev::kRegSentCount), 4u);
  Wr(IrqlabTestDev::kRegFireCount, 0);
  EXPECT_EQ(Rd(IrqlabTestDev::kRegSentCount), 0u);
  for (const MsiMessage& m : tb_.msis.messages) EXPECT_EQ(m.requester_id, 0x0020);
}

// MSI-X from the guest's point of view: FIRE n sends table entry n; with the
// function mask set it reports pending and the PBA shows it.
TEST_F(TestDevTest, FireWithMsix) {
  const uint64_t table = dev_.BarAddress(1);
  tb_.mem.Write(kCpu0, table + 16 * 33, 8, 0xFEE02000);
  tb_.mem.Write(kCpu0, table + 16 * 33 + 8, 4, 0x0077);
  tb_.mem.Write(kCpu0, table + 16 * 33 + 12, 4, 0);
  tb_.CfgWrite(4, 0, IrqlabTestDev::kMsixCapOffset + pci::kMsixControl, 2,
               pci::kMsixControlEnable | pci::kMsixControlFunctionMask);
  EXPECT_EQ(Rd(IrqlabTestDev::kRegMode), IrqlabTestDev::kModeMsix);
  Wr(IrqlabTestDev::kRegFire, 33);
  EXPECT_EQ(Rd(IrqlabTestDev::kRegLastResult), static_cast<uint32_t>(SignalResult::kPending));
  EXPECT_EQ(tb_.mem.Read(kCpu0, table + 0x800, 8), uint64_t{1} << 33);
  tb_.CfgWrite(4, 0, IrqlabTestDev::kMsixCapOffset + pci::kMsixControl, 2,
               pci::kMsixControlEnable);
  ASSERT_EQ(tb_.msis.messages.size(), 1u);
  EXPECT_EQ(tb_.msis.messages[0], MsiMessage(0xFEE02000, 0x77, 0x0020));
  Wr(IrqlabTestDev::kRegFire, 64);
  EXPECT_EQ(Rd(IrqlabTestDev::kRegLastResult),
            static_cast<uint32_t>(SignalResult::kInvalidVector));
  // BAR2 scratch: 64-bit prefetchable memory reads back.
  tb_.mem.Write(kCpu0, dev_.BarAddress(2) + 0x3FF8, 8, 0x0102030405060708);
  EXPECT_EQ(tb_.mem.Read(kCpu0, dev_.BarAddress(2) + 0x3FF8, 8), 0x0102030405060708u);
}

}  // namespace
}  // namespace irqlab
