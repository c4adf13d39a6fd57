// Tests of pci/msix_capability.h: the MSI-X capability, table and Pending Bit
// Array (PCI Local Bus 3.0, 6.8.2), with the masking/pending semantics of
// cloud-hypervisor's pci/src/msix.rs. Driven through irqlab-testdev (64
// entries, table at BAR1+0, PBA at BAR1+0x800).
#include <cstdint>

#include "devices/irqlab_testdev.h"
#include "gtest/gtest.h"
#include "pci/pci_regs.h"
#include "pci/pci_testing.h"

namespace irqlab {
namespace {

constexpr uint8_t kDev = 4;
constexpr uint16_t kCap = IrqlabTestDev::kMsixCapOffset;
constexpr AccessOrigin kCpu0 = {0, 0};

class MsixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tb_.host.AddFunction(kDev, 0, &dev_).ok());
    ASSERT_TRUE(tb_.host.AssignResources().ok());
    tb_.CfgWrite(kDev, 0, pci::kCommand, 2,
                 pci::kCommandMemorySpace | pci::kCommandBusMaster);
    table_ = dev_.BarAddress(1) + IrqlabTestDev::kMsixTableOffset;
    pba_ = dev_.BarAddress(1) + IrqlabTestDev::kMsixPbaOffset;
  }
  uint64_t Entry(unsigned i, unsigned field) const { return table_ + 16 * i + field; }
  // Programs entry i with address/data; leaves its mask bit as it is.
  void Program(unsigned i, uint64_t address, uint32_t data) {
    tb_.mem.Write(kCpu0, Entry(i, 0), 8, address);
    tb_.mem.Write(kCpu0, Entry(i, 8), 4, data);
  }
  void SetMask(unsigned i, bool masked) {
    tb_.mem.Write(kCpu0, Entry(i, 12), 4, masked ? 1 : 0);
  }
  void SetControl(uint16_t control) {
    tb_.CfgWrite(kDev, 0, kCap + pci::kMsixControl, 2, control);
  }
  uint64_t Pba() { return tb_.mem.Read(kCpu0, pba_, 8); }

  PciTestbed tb_;
  IrqlabTestDev dev_;
  uint64_t table_ = 0;
  uint64_t pba_ = 0;
};

// 6.8.2.1-6.8.2.5: ID 11h, Table Size N-1 = 63 (RO), Table Offset/BIR =
// 0x0|1, PBA Offset/BIR = 0x800|1 (RO); only Function Mask and Enable are
// writable.
TEST_F(MsixTest, CapabilityRegistersDescribeTableAndPba) {
  EXPECT_EQ(tb_.CfgRead(kDev, 0, kCap, 1), pci::kCapIdMsix);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, kCap + 2, 2), 63u);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, kCap + 4, 4), 0x00000001u);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, kCap + 8, 4), 0x00000801u);
  tb_.CfgWrite(kDev, 0, kCap + 2, 2, 0xFFFF);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, kCap + 2, 2), 0xC000u | 63u);
  tb_.CfgWrite(kDev, 0, kCap + 4, 4, 0x12345678);
  EXPECT_EQ(tb_.CfgRead(kDev, 0, kCap + 4, 4), 0x00000001u);
}

// 6.8.2.9: every entry's Mask bit is 1 after reset; reserved Vector Control
// bits read 0. 6.8.2: aligned DWORD and QWORD accesses work; other sizes
// are undefined (here: reads 0, writes ignored). Address bits 1:0 read 0.
TEST_F(MsixTest, TableResetValuesAndAccessSizes) {
  for (unsigned i : {0u, 17u, 63u}) {
    EXPECT_EQ(tb_.mem.Read(kCpu0, Entry(i, 12), 4), 1u) << i;
  }
  tb_.mem.Write(kCpu0, Entry(5, 0), 4, 0xFEE0100F);
  tb_.mem.Write(kCpu0, Entry(5, 4), 4, 0x00000002);
  tb_.mem.Write(kCpu0, Entry(5, 8), 8, 0xFFFFFFFE00000033ull);  // data + control
  EXPECT_EQ(tb_.mem.Read(kCpu0, Entry(5, 0), 8), 0x00000002FEE0100Cull);
  EXPECT_EQ(tb_.mem.Read(kCpu0, Entry(5, 8), 4), 0x33u);
  EXPECT_EQ(tb_.mem.Read(kCpu0, Entry(5, 12), 4), 0u);  // only bit 0 kept
  tb_.mem.Write(kCpu0, Entry(5, 8), 2, 0xAAAA);          // ignored
  tb_.mem.Write(kCpu0, Entry(5, 10), 4, 0xBBBBBBBB);     // misaligned: ignored
  EXPECT_EQ(tb_.mem.Read(kCpu0, Entry(5, 8), 4), 0x33u);
  EXPECT_EQ(tb_.mem.Read(kCpu0, Entry(5, 8), 1), 0u);
  EXPECT_EQ(tb_.mem.Read(kCpu0, Entry(5, 4), 8), 0u);    // misaligned QWORD
}

// 6.8.3.5: an unmasked entry of an enabled function sends its message
// (address, data) tagged with the requester id.
TEST_F(MsixTest, UnmaskedEntrySendsItsMessage) {
  SetControl(pci::kMsixControlEnable);
  Program(7, 0xFEE03000, 0x4077);
  SetMask(7, false);
  EXPECT_EQ(dev_.SignalMsix(7), SignalResult::kSent);
  ASSERT_EQ(tb_.msis.messages.size(), 1u);
  EXPECT_EQ(tb_.msis.messages[0], MsiMessage(0xFEE03000, 0x4077, 0x0020));
  EXPECT_EQ(dev_.SignalMsix(64), SignalResult::kInvalidVector);
}

// 6.8.3.5 / cloud-hypervisor write_table(): a masked entry sets its PBA bit
// instead of sending; clearing the Mask bit sends the pending message with
// the entry's *current* address/data and clears the PBA bit.
TEST_F(MsixTest, VectorMaskSetsPbaAndUnmaskSendsCurrentMessage) {
  SetControl(pci::kMsixControlEnable);
  Program(9, 0xFEE00000, 0x0031);
  EXPECT_EQ(dev_.SignalMsix(9), SignalResult::kPending);  // masked at reset
  EXPECT_TRUE(tb_.msis.messages.empty());
  EXPECT_EQ(Pba(), uint64_t{1} << 9);
  EXPECT_EQ(tb_.mem.Read(kCpu0, pba_, 4), 1u << 9);
  ASSERT_EQ(tb_.Events(trace::MSIX_PENDING).size(), 1u);
  Program(9, 0xFEE05000, 0x0039);  // retarget while masked
  SetMask(9, false);
  ASSERT_EQ(tb_.msis.messages.size(), 1u);
  EXPECT_EQ(tb_.msis.messages[0], MsiMessage(0xFEE05000, 0x0039, 0x0020));
  EXPECT_EQ(Pba(), 0u);
  SetMask(9, true);
  SetMask(9, false);  // no pending bit: nothing sent
  EXPECT_EQ(tb_.msis.messages.size(), 1u);
}

// 6.8.2.3 Function Mask: every entry behaves as masked (PBA bits set);
// clearing it sends every pending entry whose own Mask bit is clear, in
// index order (cloud-hypervisor set_msg_ctl()); vector-masked ones stay
// pending.
TEST_F(MsixTest, FunctionMaskLatchesAndReleasesPendingEntries) {
  SetControl(pci::kMsixControlEnable | pci::kMsixControlFunctionMask);
  for (unsigned i : {1u, 40u, 63u}) {
    Program(i, 0xFEE00000, 0x50 + i);
    SetMask(i, i == 63);
  }
  EXPECT_EQ(dev_.SignalMsix(40), SignalResult::kPending);
  EXPECT_EQ(dev_.SignalMsix(1), SignalResult::kPending);
  EXPECT_EQ(dev_.SignalMsix(63), SignalResult::kPending);
  EXPECT_EQ(Pba(), (uint64_t{1} << 1) | (uint64_t{1} << 40) | (uint64_t{1} << 63));
  SetMask(40, false);  // vector unmask under function mask: still held
  EXPECT_TRUE(tb_.msis.messages.empty());
  SetControl(pci::kMsixControlEnable);
  ASSERT_EQ(tb_.msis.messages.size(), 2u);
  EXPECT_EQ(tb_.msis.messages[0].data, 0x51u);
  EXPECT_EQ(tb_.msis.messages[1].data, 0x50u + 40);
  EXPECT_EQ(Pba(), uint64_t{1} << 63);
  SetMask(63, false);
  ASSERT_EQ(tb_.msis.messages.size(), 3u);
  EXPECT_EQ(Pba(), 0u);
}

// 6.8.2.10: the PBA is read-only; writes are ignored.
TEST_F(MsixTest, PbaIsReadOnly) {
  SetControl(pci::kMsixControlEnable);
  EXPECT_EQ(dev_.SignalMsix(2), SignalResult::kPending);
  tb_.mem.Write(kCpu0, pba_, 8, 0);
  tb_.mem.Write(kCpu0, pba_ + 4, 4, 0xFFFFFFFF);
  EXPECT_EQ(Pba(), uint64_t{1} << 2);
}

// 6.8.2.3: with MSI-X disabled the function uses INTx (or MSI): signals are
// kDisabled and latch nothing; MSI-X enabled takes priority over MSI
// (SignalMsi refused, testdev fires MSI-X) and INTx is deasserted while it
// is enabled.
TEST_F(MsixTest, EnableSemanticsAndPriorityOverMsiAndIntx) {
  EXPECT_EQ(dev_.SignalMsix(0), SignalResult::kDisabled);
  EXPECT_EQ(Pba(), 0u);
  dev_.SetIntxLevel(true);
  EXPECT_TRUE(tb_.intx.level(16));
  SetControl(pci::kMsixControlEnable);
  EXPECT_FALSE(tb_.intx.level(16));
  EXPECT_TRUE(tb_.CfgRead(kDev, 0, pci::kStatus, 2) & pci::kStatusInterrupt);
  tb_.CfgWrite(kDev, 0, IrqlabTestDev::kMsiCapOffset + pci::kMsiControl, 2,
               pci::kMsiControlEnable);
  EXPECT_EQ(dev_.SignalMsi(0), SignalResult::kDisabled);
  EXPECT_EQ(dev_.mode(), IrqlabTestDev::kModeMsix);
  SetControl(0);
  EXPECT_EQ(dev_.mode(), IrqlabTestDev::kModeMsi);
  EXPECT_FALSE(tb_.intx.level(16));  // MSI still enabled
  tb_.CfgWrite(kDev, 0, IrqlabTestDev::kMsiCapOffset + pci::kMsiControl, 2, 0);
  EXPECT_TRUE(tb_.intx.level(16));
}

// Our extension of cloud-hypervisor's rule: entries left pending across a
// disable are sent when MSI-X is enabled again (unmasked), so a latched event
// is never stranded. Bus Master off drops (kBlocked) without latching.
TEST_F(MsixTest, PendingSurvivesDisableAndBusMasterOffDrops) {
  SetControl(pci::kMsixControlEnable | pci::kMsixControlFunctionMask);
  Program(3, 0xFEE00000, 0x0043);
  SetMask(3, false);
  EXPECT_EQ(dev_.SignalMsix(3), SignalResult::kPending);
  SetControl(0);
  EXPECT_TRUE(tb_.msis.messages.empty());
  SetControl(pci::kMsixControlEnable);
  ASSERT_EQ(tb_.msis.messages.size(), 1u);
  EXPECT_EQ(Pba(), 0u);
  tb_.CfgWrite(kDev, 0, pci::kCommand, 2, pci::kCommandMemorySpace);
  EXPECT_EQ(dev_.SignalMsix(3), SignalResult::kBlocked);
  EXPECT_EQ(Pba(), 0u);
  EXPECT_EQ(tb_.msis.messages.size(), 1u);
}

// The MSI-X table is reachable only through the BAR that holds it: moving
// BAR1 moves the table (table state is kept).
TEST_F(MsixTest, TableMovesWithItsBar) {
  Program(0, 0xFEE00000, 0x0021);
  tb_.CfgWrite(kDev, 0, 0x14, 4, 0xD0000000);
  EXPECT_EQ(tb_.mem.Read(kCpu0, 0xD0000008, 4), 0x21u);
  EXPECT_EQ(tb_.mem.Read(kCpu0, table_ + 8, 4), 0xFFFFFFFFu);  // old: unmapped
}

}  // namespace
}  // namespace irqlab
