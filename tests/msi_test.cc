// Tests of emu/core/msi.h: MSI address/data decoding in compatibility (SDM vol. 3,
// 11.11) and remappable (VT-d 5.1.2.2) format.
#include "emu/core/msi.h"

#include <cstdint>
#include <random>
#include <type_traits>

#include "gtest/gtest.h"

namespace irqlab {
namespace {

// The requester id is mandatory: MsiMessage cannot be default-constructed.
static_assert(!std::is_default_constructible_v<MsiMessage>);

// Seed 000: the guest's pair fee00000/0020 is compatibility format, physical
// destination APIC 0, vector 0x20, fixed, edge (SDM 11.11.1/11.11.2).
TEST(MsiTest, GuestPairOfSeed000DecodesAsCompatFixedEdge) {
  MsiMessage m(0xfee00000, 0x0020, 0x0200);
  EXPECT_TRUE(m.InMsiWindow());
  EXPECT_FALSE(m.IsRemappable());
  EXPECT_EQ(m.DestinationId(), 0);
  EXPECT_FALSE(m.DestinationModeLogical());
  EXPECT_FALSE(m.RedirectionHint());
  EXPECT_EQ(m.Vector(), 0x20);
  EXPECT_EQ(m.DeliveryMode(), DeliveryMode::kFixed);
  EXPECT_FALSE(m.TriggerLevel());
  EXPECT_FALSE(m.LevelAssert());
  EXPECT_EQ(m.ToString(),
            "fee00000/00000020 rid=02:00.0 (compat dest 0x0 vec 0x20 fixed "
            "physical edge)");
}

// Seed 000: the host programmed fee00578/0000, a remappable-format handle:
// address bits 19:5 = 0x2b, bit 4 (format) = 1, bit 3 (SHV) = 1, bit 2
// (handle[15]) = 0; index = handle + subhandle 0 (VT-d 5.1.2.2).
TEST(MsiTest, HostPairOfSeed000DecodesAsRemappableHandle) {
  MsiMessage m(0xfee00578, 0x0000, 0x0200);
  EXPECT_TRUE(m.InMsiWindow());
  EXPECT_TRUE(m.IsRemappable());
  EXPECT_EQ(m.Handle(), 0x2b);
  EXPECT_TRUE(m.Shv());
  EXPECT_EQ(m.Subhandle(), 0);
  EXPECT_EQ(m.RemappedIndex(), 0x2bu);
  EXPECT_EQ(m.RemappableReservedBits(), 0u);
  EXPECT_EQ(m.ToString(), "fee00578/00000000 rid=02:00.0 (remappable handle 0x2b)");
  EXPECT_EQ(MsiMessage::Remappable(0x2b, true, 0, 0x0200), m);
}

// Compatibility address fields: bits 19:12 destination, bit 3 RH, bit 2 DM;
// data bits 10:8 delivery mode, 14 level, 15 trigger (SDM 11.11.1-2).
TEST(MsiTest, CompatFieldsDecodeFromTheirBits) {
  MsiMessage m(0xfee0300c, 0xc141, 0x00f8);
  EXPECT_EQ(m.DestinationId(), 0x03);
  EXPECT_TRUE(m.RedirectionHint());
  EXPECT_TRUE(m.DestinationModeLogical());
  EXPECT_EQ(m.Vector(), 0x41);
  EXPECT_EQ(m.DeliveryMode(), DeliveryMode::kLowestPriority);
  EXPECT_TRUE(m.LevelAssert());
  EXPECT_TRUE(m.TriggerLevel());
  EXPECT_EQ(m.ToString(),
            "fee0300c/0000c141 rid=00:1f.0 (compat dest 0x3 vec 0x41 "
            "lowest-priority logical level assert rh)");
}

// Data bits 10:8 encode the delivery mode; 011b and 110b are reserved in an
// MSI (SDM 11.11.2).
TEST(MsiTest, EveryDeliveryModeEncodingDecodes) {
  const DeliveryMode expected[] = {
      DeliveryMode::kFixed,     DeliveryMode::kLowestPriority,
      DeliveryMode::kSmi,       DeliveryMode::kReserved3,
      DeliveryMode::kNmi,       DeliveryMode::kInit,
      DeliveryMode::kReserved6, DeliveryMode::kExtInt};
  for (uint32_t mode = 0; mode < 8; ++mode) {
    MsiMessage m(0xfee00000, mode << 8, 0);
    EXPECT_EQ(m.DeliveryMode(), expected[mode]) << mode;
  }
  EXPECT_EQ(DeliveryModeName(DeliveryMode::kExtInt), "extint");
  EXPECT_EQ(DeliveryModeName(DeliveryMode::kReserved3), "reserved-3");
}

// The extended destination ID convention: address bits 11:5 carry APIC id
// bits 14:8 (non-architectural; the SDM reserves bits 11:4).
TEST(MsiTest, ExtendedDestinationIdUsesAddressBits11To5) {
  MsiMessage m = MsiMessage::Compat(0x1234, 0x30, 0);
  EXPECT_EQ(m.address, 0xfee34000u | (0x12u << 5));
  EXPECT_EQ(m.DestinationId(), 0x34);
  EXPECT_EQ(m.ExtendedDestinationId(), 0x1234u);
  EXPECT_FALSE(m.IsRemappable());  // bit 4 stays 0
  EXPECT_EQ(MsiMessage::Compat(0x7fff, 0, 0).ExtendedDestinationId(), 0x7fffu);
  EXPECT_EQ(MsiMessage::Compat(0x12, 0, 0).ExtendedDestinationId(), 0x12u);
  EXPECT_NE(m.ToString().find("compat ext-dest 0x1234 vec 0x30"),
            std::string::npos)
      << m.ToString();
}

// Handle bit 15 lives in address bit 2 (VT-d 5.1.2.2), not next to bits 14:0.
TEST(MsiTest, HandleBit15IsAddressBit2) {
  MsiMessage m = MsiMessage::Remappable(0x8001, false, 0, 0);
  EXPECT_EQ(m.address, 0xfee00000u | (1u << 5) | (1u << 4) | (1u << 2));
  EXPECT_EQ(m.Handle(), 0x8001);
  EXPECT_FALSE(m.Shv());
  EXPECT_EQ(m.RemappedIndex(), 0x8001u);
}

// With SHV=1 the interrupt index is handle + subhandle (data 15:0); with
// SHV=0 the data is ignored (VT-d 5.1.2.2). The sum may exceed 16 bits.
TEST(MsiTest, RemappedIndexAddsSubhandleOnlyWhenShv) {
  MsiMessage with = MsiMessage::Remappable(0x100, true, 3, 0x0208);
  EXPECT_EQ(with.Subhandle(), 3);
  EXPECT_EQ(with.RemappedIndex(), 0x103u);
  EXPECT_EQ(with.ToString(),
            "fee02018/00000003 rid=02:01.0 (remappable handle 0x100 subhandle "
            "0x3 index 0x103)");
  MsiMessage without(0xfee02010, 0x0003, 0);
  EXPECT_EQ(without.RemappedIndex(), 0x100u);
  EXPECT_EQ(MsiMessage(0xfeeffffc, 0xffff, 0).RemappedIndex(), 0x1fffeu);
}

// Data bits 31:16 are reserved in the remappable format; set bits there are
// the cause of fault 0x20 (VT-d 5.1.2.2, 5.1.4.1). Address bits 1:0 are
// "don't care", not reserved.
TEST(MsiTest, RemappableReservedBitsAreDataBits31To16) {
  MsiMessage bad(0xfee00018, 0x00010000, 0);
  EXPECT_EQ(bad.RemappableReservedBits(), 0x00010000u);
  EXPECT_NE(bad.ToString().find("reserved 0x10000"), std::string::npos);
  MsiMessage dont_care(0xfee0001b, 0x0000ffff, 0);
  EXPECT_EQ(dont_care.RemappableReservedBits(), 0u);
}

// The window is 0xFEE00000-0xFEEFFFFF with address bits 63:20 == 0xFEE: a
// write above 4 GiB with the same low bits is DMA, not an interrupt.
TEST(MsiTest, InMsiWindowRequiresUpperAddressBitsZero) {
  EXPECT_TRUE(MsiMessage(0xfeefffff, 0, 0).InMsiWindow());
  EXPECT_FALSE(MsiMessage(0xfef00000, 0, 0).InMsiWindow());
  EXPECT_FALSE(MsiMessage(0xfedfffff, 0, 0).InMsiWindow());
  MsiMessage high(0x1fee00000, 0x20, 0x0100);
  EXPECT_FALSE(high.InMsiWindow());
  EXPECT_EQ(high.ToString(), "00000001fee00000/00000020 rid=01:00.0 (not an interrupt)");
}

// The builders round-trip through the decoders (compat options included).
TEST(MsiTest, CompatBuilderRoundTripsOptions) {
  MsiCompatOptions opts;
  opts.delivery_mode = DeliveryMode::kNmi;
  opts.logical = true;
  opts.redirection_hint = true;
  opts.trigger_level = true;
  opts.level_assert = true;
  MsiMessage m = MsiMessage::Compat(0xab, 0x02, 0x0010, opts);
  EXPECT_EQ(m.address, 0xfeeab00cu);
  EXPECT_EQ(m.data, 0xc402u);
  EXPECT_EQ(m.requester_id, 0x0010);
  EXPECT_EQ(m.DeliveryMode(), DeliveryMode::kNmi);
}

// Fuzz (fixed seed): for random fields, the builders produce messages whose
// decoders return the same fields, and decoding never depends on bits the
// format does not define.
TEST(MsiTest, RandomFieldsRoundTripThroughBuildersAndDecoders) {
  std::mt19937_64 rng(0x5eed);
  for (int i = 0; i < 100000; ++i) {
    const uint16_t rid = rng();
    const uint16_t handle = rng();
    const bool shv = rng() & 1;
    const uint16_t sub = rng();
    MsiMessage r = MsiMessage::Remappable(handle, shv, sub, rid);
    ASSERT_TRUE(r.InMsiWindow());
    ASSERT_TRUE(r.IsRemappable());
    ASSERT_EQ(r.Handle(), handle);
    ASSERT_EQ(r.Shv(), shv);
    ASSERT_EQ(r.RemappedIndex(), uint32_t{handle} + (shv ? sub : 0));
    ASSERT_EQ(r.RemappableReservedBits(), 0u);
    ASSERT_EQ(r.requester_id, rid);
    // Address bits 1:0 are don't-care: flipping them changes no field.
    MsiMessage r2(r.address | (rng() & 3), r.data, rid);
    ASSERT_EQ(r2.Handle(), handle);
    ASSERT_EQ(r2.RemappedIndex(), r.RemappedIndex());

    const uint32_t dest = rng() & 0x7fff;
    const uint8_t vector = rng();
    MsiCompatOptions o;
    o.delivery_mode = static_cast<DeliveryMode>(rng() & 7);
    o.logical = rng() & 1;
    o.redirection_hint = rng() & 1;
    o.trigger_level = rng() & 1;
    o.level_assert = rng() & 1;
    MsiMessage c = MsiMessage::Compat(dest, vector, rid, o);
    ASSERT_TRUE(c.InMsiWindow());
    ASSERT_FALSE(c.IsRemappable());
    ASSERT_EQ(c.ExtendedDestinationId(), dest);
    ASSERT_EQ(c.DestinationId(), dest & 0xff);
    ASSERT_EQ(c.Vector(), vector);
    ASSERT_EQ(c.DeliveryMode(), o.delivery_mode);
    ASSERT_EQ(c.DestinationModeLogical(), o.logical);
    ASSERT_EQ(c.RedirectionHint(), o.redirection_hint);
    ASSERT_EQ(c.TriggerLevel(), o.trigger_level);
    ASSERT_EQ(c.LevelAssert(), o.level_assert);
    // ToString never throws and always names the requester and format.
    const std::string s = MsiMessage(rng(), static_cast<uint32_t>(rng()), rid)
                              .ToString();
    ASSERT_NE(s.find(" rid="), std::string::npos);
    ASSERT_EQ(s.back(), ')');
  }
}

}  // namespace
}  // namespace irqlab
