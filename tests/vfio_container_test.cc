// VfioContainer (pci/vfio_container.h): the vfio type1 IOMMU domain of
// assigned devices — MAP_DMA with reserved ranges, IOVA translation of every
// device write, MSI doorbells on a platform that does not bypass MSIs
// (seed 001). Isolation: an assigned device reaches only what is mapped.
#include "pci/vfio_container.h"

#include <cstdint>
#include <string>
#include <vector>

#include "emu/core/event_queue.h"
#include "emu/core/trace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace irqlab {
namespace {

using ::testing::HasSubstr;

// Records what reaches the host side of the container.
class RecordingSink : public DmaSink {
 public:
  struct Record {
    uint16_t rid;
    uint64_t address;
    size_t size;
  };
  absl::Status Write(uint16_t rid, uint64_t address, absl::Span<const uint8_t> data) override {
    writes.push_back({rid, address, data.size()});
    return absl::OkStatus();
  }
  absl::Status Read(uint16_t, uint64_t address, absl::Span<uint8_t> out) override {
    reads.push_back(address);
    for (uint8_t& b : out) b = 0xAB;
    return absl::OkStatus();
  }
  std::vector<Record> writes;
  std::vector<uint64_t> reads;
};

constexpr uint16_t kRid = 0x0200;
const uint8_t kDword[4] = {1, 2, 3, 4};

class VfioContainerTest : public ::testing::Test {
 protected:
  VfioContainer Make(bool bypass, uint64_t doorbell = 0) {
    return VfioContainer({.msi_bypass = bypass, .doorbell_base = doorbell}, &sink_, &tracer_,
                         &events_, [this](const std::string& l) { log_.push_back(l); });
  }
  RecordingSink sink_;
  Tracer tracer_;
  EventQueue events_;
  std::vector<std::string> log_;
};

// x86: the interrupt window is implicitly reserved; DMA mappings may not
// overlap it, and MSI writes pass untranslated.
TEST_F(VfioContainerTest, X86ReservesTheInterruptWindowAndBypassesMsi) {
  VfioContainer c = Make(/*bypass=*/true);
  ASSERT_EQ(c.ReservedRanges().size(), 1u);
  EXPECT_EQ(c.ReservedRanges()[0].start, 0xFEE00000u);
  EXPECT_EQ(c.ReservedRanges()[0].end, 0xFEEFFFFFu);
  EXPECT_EQ(c.ReservedRanges()[0].kind, "msi");
  absl::Status s = c.MapDma(0xFEC00000, 0x400000, 0x1000000);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("overlaps the reserved msi range"));
  ASSERT_TRUE(c.Write(kRid, 0xFEE00578, kDword).ok());
  ASSERT_EQ(sink_.writes.size(), 1u);
  EXPECT_EQ(sink_.writes[0].address, 0xFEE00578u);
}

// Isolation: DMA is translated through the mappings; anything else faults
// (logged, nothing written) — an assigned device cannot reach memory
// outside its domain's mappings.
TEST_F(VfioContainerTest, DmaOutsideTheMappingsFaultsAndWritesNothing) {
  VfioContainer c = Make(true);
  ASSERT_TRUE(c.MapDma(0x10000, 0x2000, 0x800000).ok());
  ASSERT_TRUE(c.Write(kRid, 0x10FFC, kDword).ok());
  ASSERT_EQ(sink_.writes.size(), 1u);
  EXPECT_EQ(sink_.writes[0].address, 0x800FFCu);
  // Crossing the end of the mapping, and an unmapped IOVA: faults.
  EXPECT_EQ(c.Write(kRid, 0x11FFE, kDword).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(c.Write(kRid, 0x40000, kDword).code(), absl::StatusCode::kPermissionDenied);
  uint8_t buf[4];
  EXPECT_EQ(c.Read(kRid, 0x9000, buf).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(sink_.writes.size(), 1u);
  EXPECT_TRUE(sink_.reads.empty());
  EXPECT_EQ(c.faults(), 3u);
  ASSERT_EQ(log_.size(), 3u);
  EXPECT_EQ(log_[1], "iommu: DMA fault: device 02:00.0 write to unmapped IOVA 0x40000");
  EXPECT_EQ(log_[2], "iommu: DMA fault: device 02:00.0 read from unmapped IOVA 0x9000");
  // After UNMAP_DMA the IOVA faults too.
  ASSERT_TRUE(c.UnmapDma(0x10000).ok());
  EXPECT_EQ(c.Write(kRid, 0x10000, kDword).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(c.UnmapDma(0x10000).code(), absl::StatusCode::kNotFound);
}

// MAP_DMA refuses overlapping mappings.
TEST_F(VfioContainerTest, OverlappingMappingsAreRejected) {
  VfioContainer c = Make(true);
  ASSERT_TRUE(c.MapDma(0x10000, 0x2000, 0).ok());
  EXPECT_EQ(c.MapDma(0x11000, 0x1000, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.MapDma(0xF000, 0x2000, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(c.MapDma(0x12000, 0x1000, 0).ok());
  EXPECT_EQ(c.MapDma(0x20000, 0, 0).code(), absl::StatusCode::kInvalidArgument);
}

// Seed 001: without MSI bypass the doorbell range is reserved; until it is
// mapped an MSI write to it is a DMA fault; mapped, it reaches the interrupt
// window at the same offset; unmapped again on MSI disable.
TEST_F(VfioContainerTest, DoorbellMustBeMappedWhenMsiIsNotBypassed) {
  VfioContainer c = Make(/*bypass=*/false, /*doorbell=*/0x8000000);
  ASSERT_EQ(c.ReservedRanges().size(), 1u);
  EXPECT_EQ(c.ReservedRanges()[0].kind, "msi-doorbell");
  EXPECT_EQ(c.DoorbellAddress(0xFEE00578), 0x8000578u);
  EXPECT_EQ(c.MapDma(0x7F00000, 0x200000, 0).code(), absl::StatusCode::kInvalidArgument);
  // Without bypass, even the interrupt window itself is just an IOVA.
  EXPECT_EQ(c.Write(kRid, 0xFEE00578, kDword).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(c.Write(kRid, 0x8000578, kDword).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(log_.back(), HasSubstr("(MSI doorbell not mapped)"));
  ASSERT_TRUE(c.MapDoorbell().ok());
  EXPECT_TRUE(c.doorbell_mapped());
  ASSERT_TRUE(c.Write(kRid, 0x8000578, kDword).ok());
  ASSERT_EQ(sink_.writes.size(), 1u);
  EXPECT_EQ(sink_.writes[0].address, 0xFEE00578u);
  // The doorbell is not a DMA mapping: UNMAP_DMA cannot remove it.
  EXPECT_EQ(c.UnmapDma(0x8000000).code(), absl::StatusCode::kNotFound);
  c.UnmapDoorbell();
  EXPECT_FALSE(c.doorbell_mapped());
  EXPECT_EQ(c.Write(kRid, 0x8000578, kDword).code(), absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace irqlab
