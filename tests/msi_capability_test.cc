// Tests of pci/msi_capability.h: the MSI capability (PCI Local Bus 3.0,
// 6.8.1) in its 32-/64-bit and per-vector-masking layouts, multiple message
// enable, masking and pending bits, and the requester id on every message.
#include <cstdint>

#include "devices/irqlab_testdev.h"
#include "gtest/gtest.h"
#include "pci/msi_capability.h"
#include "pci/pci_function.h"
#include "pci/pci_regs.h"
#include "pci/pci_testing.h"

namespace irqlab {
namespace {

// A function with only an MSI capability of the given shape (at 0x40).
class MsiOnlyFunction : public PciFunction {
 public:
  explicit MsiOnlyFunction(const MsiCapability::Options& options)
      : PciFunction("msi-only", Identity{.vendor_id = 0x1337,
                                         .device_id = 0x00F0,
                                         .interrupt_pin = 1}) {
    EXPECT_TRUE(AddMsiCapability(options).ok());
  }
};

constexpr uint8_t kDev = 4;
constexpr uint16_t kCap = 0x40;

class MsiCapabilityTest : public ::testing::Test {
 protected:
  // Plugs `f` in at 00:04.0 with bus mastering on.
  void Plug(PciFunction* f) {
    ASSERT_TRUE(tb_.host.AddFunction(kDev, 0, f).ok());
    tb_.CfgWrite(kDev, 0, pci::kCommand, 2, pci::kCommandBusMaster);
  }
  uint32_t Cfg(uint16_t reg, unsigned size) { return tb_.CfgRead(kDev, 0, reg, size); }
  void SetCfg(uint16_t reg, unsigned size, uint32_t v) { tb_.CfgWrite(kDev, 0, reg, size, v); }

  PciTestbed tb_;
};

// 6.8.1.1-6.8.1.3: capability ID 05h, Message Control with MMC = log2(32) =
// 5, 64-bit capable (bit 7), per-vector masking capable (bit 8), linked from
// the Capabilities Pointer and on to the MSI-X capability (ID 11h).
TEST_F(MsiCapabilityTest, TestDevLayoutAdvertises32VectorsMaskable64Bit) {
  IrqlabTestDev dev;
  Plug(&dev);
  EXPECT_EQ(Cfg(pci::kCapabilitiesPointer, 1), 0x40u);
  EXPECT_EQ(Cfg(0x40, 1), pci::kCapIdMsi);
  EXPECT_EQ(Cfg(0x41, 1), 0x58u);
  EXPECT_EQ(Cfg(0x58, 1), pci::kCapIdMsix);
  EXPECT_EQ(Cfg(0x59, 1), 0u);
  EXPECT_EQ(Cfg(0x42, 2), (5u << 1) | pci::kMsiControl64Bit | pci::kMsiControlPerVectorMask);
  EXPECT_TRUE(Cfg(pci::kStatus, 2) & pci::kStatusCapabilityList);
}

// 6.8.1.4 / 6.8.1.6, 32-bit layout: Message Address at +4 (bits 1:0
// hardwired 0), Message Data at +8; the message is a DWORD write with data
// bits 31:16 zero, tagged with the function's requester id.
TEST_F(MsiCapabilityTest, ThirtyTwoBitAddressLayout) {
  MsiOnlyFunction f({.vectors = 1, .address64 = false, .per_vector_mask = false});
  Plug(&f);
  EXPECT_EQ(f.msi()->length(), 0x0A);
  EXPECT_EQ(Cfg(kCap + 2, 2), 0u);  // MMC 0, 32-bit, no masking
  SetCfg(kCap + 4, 4, 0xFEE0300F);
  EXPECT_EQ(Cfg(kCap + 4, 4), 0xFEE0300Cu);
  SetCfg(kCap + 8, 4, 0xFFFF0051);  // only 16 data bits exist
  EXPECT_EQ(Cfg(kCap + 8, 4), 0x0051u);
  SetCfg(kCap + 2, 2, pci::kMsiControlEnable);
  EXPECT_EQ(f.SignalMsi(0), SignalResult::kSent);
  ASSERT_EQ(tb_.msis.messages.size(), 1u);
  EXPECT_EQ(tb_.msis.messages[0], MsiMessage(0xFEE0300C, 0x51, 0x0020));
}

// 6.8.1.5, 64-bit layout: Message Upper Address at +8, data at +C. A
// message to an address outside 0xFEExxxxx is an ordinary memory write
// (here above RAM: master abort, Status bit 13, not an interrupt).
TEST_F(MsiCapabilityTest, SixtyFourBitAddressLayout) {
  MsiOnlyFunction f({.vectors = 1, .address64 = true, .per_vector_mask = false});
  Plug(&f);
  EXPECT_EQ(f.msi()->length(), 0x0E);
  SetCfg(kCap + 4, 4, 0xFEE00000);
  SetCfg(kCap + 8, 4, 0x00000000);
  SetCfg(kCap + 0xC, 2, 0x0061);
  SetCfg(kCap + 2, 2, pci::kMsiControlEnable);
  EXPECT_EQ(f.SignalMsi(0), SignalResult::kSent);
  SetCfg(kCap + 8, 4, 0x00000001);  // upper address: 0x1_FEE00000
  EXPECT_EQ(f.msi()->address(), 0x1FEE00000u);
  EXPECT_EQ(f.SignalMsi(0), SignalResult::kBlocked);
  ASSERT_EQ(tb_.msis.messages.size(), 1u);
  EXPECT_EQ(tb_.msis.messages[0], MsiMessage(0xFEE00000, 0x61, 0x0020));
  EXPECT_TRUE(Cfg(pci::kStatus, 2) & pci::kStatusReceivedMasterAbort);
}

// 6.8.1.3 / 6.8.1.6: with Multiple Message Enable = log2(m) the function
// sends vector n as data with its low log2(m) bits replaced by n. Vectors
// beyond the m granted fold into them (n & (m-1)); vectors beyond the 32
// implemented are refused.
TEST_F(MsiCapabilityTest, MultipleMessageEnableSelectsTheVectorInTheDataLowBits) {
  IrqlabTestDev dev;
  Plug(&dev);
  SetCfg(kCap + 4, 4, 0xFEE01000);
  SetCfg(kCap + 0xC, 2, 0x0040);
  SetCfg(kCap + 2, 2, (3u << pci::kMsiControlMmeShift) | pci::kMsiControlEnable);
  EXPECT_EQ(dev.msi()->enabled_vectors(), 8u);
  EXPECT_EQ(dev.SignalMsi(5), SignalResult::kSent);
  EXPECT_EQ(dev.SignalMsi(13), SignalResult::kSent);  // 13 & 7 = 5
  EXPECT_EQ(dev.SignalMsi(0), SignalResult::kSent);
  EXPECT_EQ(dev.SignalMsi(32), SignalResult::kInvalidVector);
  ASSERT_EQ(tb_.msis.messages.size(), 3u);
  EXPECT_EQ(tb_.msis.messages[0], MsiMessage(0xFEE01000, 0x45, 0x0020));
  EXPECT_EQ(tb_.msis.messages[1], MsiMessage(0xFEE01000, 0x45, 0x0020));
  EXPECT_EQ(tb_.msis.messages[2], MsiMessage(0xFEE01000, 0x40, 0x0020));
  EXPECT_EQ(tb_.msis.messages[0].Vector(), 0x45);
  // Misaligned data (spec violation by software): the low bits are replaced
  // (QEMU msi_prepare_message), not ORed.
  SetCfg(kCap + 0xC, 2, 0x0047);
  EXPECT_EQ(dev.SignalMsi(2), SignalResult::kSent);
  EXPECT_EQ(tb_.msis.messages.back().data, 0x42u);
}

// MME larger than MMC is clamped to MMC (QEMU msi_write_config); the RO
// fields (MMC, 64-bit, per-vector masking) ignore writes.
TEST_F(MsiCapabilityTest, MultipleMessageEnableIsClampedToCapable) {
  MsiOnlyFunction f({.vectors = 4, .address64 = false, .per_vector_mask = true});
  Plug(&f);
  SetCfg(kCap + 2, 2, 0xFFFF);
  EXPECT_EQ(Cfg(kCap + 2, 2), (2u << 1) | (2u << 4) | pci::kMsiControlEnable |
                                  pci::kMsiControlPerVectorMask);
  EXPECT_EQ(f.msi()->enabled_vectors(), 4u);
}

// 6.8.1.7: Mask Bits exist only for implemented vectors (4 here, 32-bit
// layout: mask at +C); 6.8.1.8: Pending Bits are read-only to software.
TEST_F(MsiCapabilityTest, MaskBitsOnlyForImplementedVectorsPendingReadOnly) {
  MsiOnlyFunction f({.vectors = 4, .address64 = false, .per_vector_mask = true});
  Plug(&f);
  EXPECT_EQ(f.msi()->length(), 0x14);
  SetCfg(kCap + 0xC, 4, 0xFFFFFFFF);
  EXPECT_EQ(Cfg(kCap + 0xC, 4), 0xFu);
  SetCfg(kCap + 0x10, 4, 0xFFFFFFFF);
  EXPECT_EQ(Cfg(kCap + 0x10, 4), 0u);
}

// 6.8.1.7/6.8.1.8: a masked vector is not sent; its Pending bit is set; when
// software clears the Mask bit the function sends the message — with the
// address/data current at that moment — and clears the Pending bit.
TEST_F(MsiCapabilityTest, MaskedVectorLatchesPendingAndFiresOnUnmask) {
  IrqlabTestDev dev;
  Plug(&dev);
  SetCfg(kCap + 4, 4, 0xFEE00000);
  SetCfg(kCap + 0xC, 2, 0x0050);
  SetCfg(kCap + 0x10, 4, 1u << 3);  // mask vector 3
  SetCfg(kCap + 2, 2, (2u << pci::kMsiControlMmeShift) | pci::kMsiControlEnable);
  EXPECT_EQ(dev.SignalMsi(3), SignalResult::kPending);
  EXPECT_EQ(dev.SignalMsi(2), SignalResult::kSent);
  ASSERT_EQ(tb_.msis.messages.size(), 1u);
  EXPECT_EQ(tb_.msis.messages[0].data, 0x52u);
  EXPECT_EQ(Cfg(kCap + 0x14, 4), 1u << 3);
  ASSERT_EQ(tb_.Events(trace::MSI_MASKED).size(), 1u);
  EXPECT_EQ(tb_.Events(trace::MSI_MASKED)[0].vector(), 0x53);
  // Retarget while masked; unmasking an unrelated vector sends nothing.
  SetCfg(kCap + 4, 4, 0xFEE02000);
  SetCfg(kCap + 0xC, 2, 0x0060);
  SetCfg(kCap + 0x10, 4, 1u << 3);
  EXPECT_EQ(tb_.msis.messages.size(), 1u);
  SetCfg(kCap + 0x10, 4, 0);
  ASSERT_EQ(tb_.msis.messages.size(), 2u);
  EXPECT_EQ(tb_.msis.messages[1], MsiMessage(0xFEE02000, 0x63, 0x0020));
  EXPECT_EQ(Cfg(kCap + 0x14, 4), 0u);
}

// Model choice: a pending bit survives MSI disable and is delivered when MSI
// is enabled again with the vector unmasked; while disabled nothing is sent
// (kDisabled) and nothing new is latched. ClearPending() retracts it.
TEST_F(MsiCapabilityTest, PendingIsDeliveredOnReEnableAndCanBeRetracted) {
  IrqlabTestDev dev;
  Plug(&dev);
  SetCfg(kCap + 4, 4, 0xFEE00000);
  SetCfg(kCap + 0xC, 2, 0x0070);
  SetCfg(kCap + 0x10, 4, 0x3);
  SetCfg(kCap + 2, 2, (1u << pci::kMsiControlMmeShift) | pci::kMsiControlEnable);
  EXPECT_EQ(dev.SignalMsi(0), SignalResult::kPending);
  EXPECT_EQ(dev.SignalMsi(1), SignalResult::kPending);
  SetCfg(kCap + 2, 2, 1u << pci::kMsiControlMmeShift);  // disable
  EXPECT_EQ(dev.SignalMsi(0), SignalResult::kDisabled);
  SetCfg(kCap + 0x10, 4, 0);  // unmask while disabled: nothing sent
  EXPECT_TRUE(tb_.msis.messages.empty());
  dev.msi()->ClearPending(1);
  SetCfg(kCap + 2, 2, (1u << pci::kMsiControlMmeShift) | pci::kMsiControlEnable);
  ASSERT_EQ(tb_.msis.messages.size(), 1u);
  EXPECT_EQ(tb_.msis.messages[0].data, 0x70u);
  EXPECT_EQ(dev.msi()->pending_bits(), 0u);
}

// Without per-vector masking (6.8.1.3 bit 8 = 0) there are no Mask/Pending
// registers: every signal while enabled is sent, and MSI disabled means the
// device must use INTx (kDisabled).
TEST_F(MsiCapabilityTest, WithoutPerVectorMaskingEverySignalIsSent) {
  MsiOnlyFunction f({.vectors = 2, .address64 = true, .per_vector_mask = false});
  Plug(&f);
  EXPECT_EQ(f.SignalMsi(0), SignalResult::kDisabled);
  SetCfg(kCap + 4, 4, 0xFEE00000);
  SetCfg(kCap + 0xC, 2, 0x0080);
  SetCfg(kCap + 2, 2, (1u << pci::kMsiControlMmeShift) | pci::kMsiControlEnable);
  EXPECT_EQ(f.SignalMsi(1), SignalResult::kSent);
  EXPECT_EQ(f.SignalMsi(2), SignalResult::kInvalidVector);
  ASSERT_EQ(tb_.msis.messages.size(), 1u);
  EXPECT_EQ(tb_.msis.messages[0].data, 0x81u);
  EXPECT_EQ(f.msi()->mask_bits(), 0u);
}

// Capability allocation (6.7): dword aligned in 0x40-0xFF, no overlap, at
// most one MSI capability; an invalid vector count is refused.
TEST(MsiCapabilityConstructionTest, AllocationRules) {
  PciFunction f("f", PciFunction::Identity{.vendor_id = 1, .device_id = 2});
  EXPECT_TRUE(absl::IsInvalidArgument(f.AddMsiCapability({.vectors = 3}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(f.AddMsiCapability({.vectors = 64}).status()));
  EXPECT_TRUE(absl::IsResourceExhausted(f.AddMsiCapability({.vectors = 1}, 0xF8).status()));
  EXPECT_TRUE(absl::IsResourceExhausted(f.AddMsiCapability({.vectors = 1}, 0x42).status()));
  ASSERT_TRUE(f.AddMsiCapability({.vectors = 1}, 0x80).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(f.AddMsiCapability({.vectors = 1}).status()));
  EXPECT_EQ(f.config().Get8(pci::kCapabilitiesPointer), 0x80);
  EXPECT_TRUE(absl::IsAlreadyExists(f.AllocateCapability(0x09, 8, 0x84).status()));
  EXPECT_EQ(f.AllocateCapability(0x09, 8).value(), 0x90);  // after 0x80+0x0E
  EXPECT_EQ(f.config().Get8(0x81), 0x90);
  // Not attached: nothing can be sent.
  f.config().Set16(0x82, f.config().Get16(0x82) | pci::kMsiControlEnable);
  EXPECT_EQ(f.SignalMsi(0), SignalResult::kBlocked);
}

}  // namespace
}  // namespace irqlab
