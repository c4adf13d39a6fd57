// FirmwareCpu (emu/cpu/fw_cpu.h): the device's ARM Thumb core on Unicorn. The
// snippets are hand-encoded Thumb-2 (checked with arm-none-eabi-as; the
// assembly is in the comments); each image starts with the Cortex-M vector
// table {initial SP, reset PC | 1} and code at 0x08.
#include "emu/cpu/fw_cpu.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace irqlab {
namespace {

using ::testing::HasSubstr;
using Stop = FirmwareCpu::Stop;
using State = FirmwareCpu::State;

constexpr uint32_t kStackTop = FirmwareCpu::kRamBase + FirmwareCpu::kRamSize;
constexpr uint32_t kEntry = 0x08;

// Vector table {sp, entry | thumb} followed by the Thumb halfwords.
std::vector<uint8_t> Image(std::initializer_list<uint16_t> code,
                           uint32_t entry = kEntry | 1, uint32_t sp = kStackTop) {
  std::vector<uint8_t> image;
  for (uint32_t w : {sp, entry}) {
    for (int i = 0; i < 4; ++i) image.push_back(static_cast<uint8_t>(w >> (8 * i)));
  }
  for (uint16_t h : code) {
    image.push_back(static_cast<uint8_t>(h));
    image.push_back(static_cast<uint8_t>(h >> 8));
  }
  return image;
}

// Records accesses; reads return `read_value`.
class RecordingHandler : public IoHandler {
 public:
  struct Access {
    bool write;
    uint64_t offset;
    unsigned size;
    uint64_t value;
    bool operator==(const Access&) const = default;
  };
  uint64_t Read(const AccessOrigin& origin, uint64_t offset, unsigned size) override {
    EXPECT_EQ(origin.cpu, AccessOrigin::kNoCpu);
    accesses.push_back({false, offset, size, read_value});
    return read_value;
  }
  void Write(const AccessOrigin&, uint64_t offset, unsigned size, uint64_t value) override {
    accesses.push_back({true, offset, size, value});
  }
  uint64_t read_value = 0;
  std::vector<Access> accesses;
};

class FwCpuTest : public ::testing::Test {
 protected:
  std::unique_ptr<FirmwareCpu> Make(const std::vector<uint8_t>& image) {
    auto cpu = FirmwareCpu::Create(image, &devregs_, &outbound_);
    EXPECT_TRUE(cpu.ok()) << cpu.status();
    return cpu.ok() ? *std::move(cpu) : nullptr;
  }
  RecordingHandler devregs_;
  RecordingHandler outbound_;
};

// Rule: Run() executes until WFI, counts the instructions retired (WFI
// included) and leaves the core waiting with PC after the WFI; the next
// Run() continues from there.
TEST_F(FwCpuTest, RunsToWfiAndCountsInstructions) {
  auto cpu = Make(Image({
      0x2001,  // movs r0, #1
      0x3001,  // adds r0, #1
      0x3001,  // adds r0, #1
      0xBF30,  // wfi
      0x2007,  // movs r0, #7
      0xF3AF, 0x8003,  // wfi.w
      0xE7FE,  // b .
  }));
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->state(), State::kRunnable);
  FirmwareCpu::RunResult r = cpu->Run(1000);
  EXPECT_EQ(r.stop, Stop::kWfi);
  EXPECT_EQ(r.instructions, 4u);
  EXPECT_EQ(cpu->state(), State::kWaiting);
  EXPECT_EQ(cpu->reg(0), 3u);
  EXPECT_EQ(cpu->pc(), kEntry + 8);
  // The 32-bit WFI encoding is a WFI too.
  r = cpu->Run(1000);
  EXPECT_EQ(r.stop, Stop::kWfi);
  EXPECT_EQ(r.instructions, 2u);
  EXPECT_EQ(cpu->reg(0), 7u);
  EXPECT_EQ(cpu->instructions(), 6u);
  EXPECT_EQ(cpu->crash_reason(), "");
}

// Rule: reset loads SP from ROM word 0 and PC from ROM word 1 (Cortex-M
// vector table), clears RAM and registers; a crashed core runs again.
TEST_F(FwCpuTest, ResetLoadsVectorTableAndClearsRam) {
  auto cpu = Make(Image(
      {
          0xF04F, 0x5400,  // mov.w r4, #0x20000000
          0x6064,          // str r4, [r4, #4]
          0x2105,          // movs r1, #5
          0xDE00,          // udf #0
      },
      kEntry | 1, 0x20003FF0));
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->reg(13), 0x20003FF0u);
  EXPECT_EQ(cpu->pc(), kEntry);
  EXPECT_EQ(cpu->reg(14), 0xFFFFFFFFu);
  EXPECT_EQ(cpu->Run(100).stop, Stop::kCrashed);
  EXPECT_EQ(cpu->ram()[4], 0x00);
  EXPECT_EQ(cpu->ram()[7], 0x20);
  EXPECT_EQ(cpu->reg(1), 5u);
  cpu->Reset();
  EXPECT_EQ(cpu->state(), State::kRunnable);
  EXPECT_EQ(cpu->crash_reason(), "");
  EXPECT_EQ(cpu->pc(), kEntry);
  EXPECT_EQ(cpu->reg(1), 0u);
  EXPECT_EQ(cpu->ram()[7], 0x00);
  EXPECT_EQ(cpu->Run(100).stop, Stop::kCrashed);  // the same program again
}

// Rule: accesses to [DEVREGS, +2 MiB) and [OUTBOUND, +4 KiB) reach the
// handlers with offsets relative to the region and the access size; RAM is
// plain memory.
TEST_F(FwCpuTest, RoutesMmioToHandlers) {
  auto cpu = Make(Image({
      0xF04F, 0x4180,  // mov.w r1, #0x40000000
      0x202A,          // movs r0, #42
      0xF8C1, 0x0100,  // str.w r0, [r1, #0x100]
      0xF8D1, 0x2108,  // ldr.w r2, [r1, #0x108]
      0xF04F, 0x43A0,  // mov.w r3, #0x50000000
      0x60DA,          // str r2, [r3, #12]
      0x70C8,          // strb r0, [r1, #3]
      0xF04F, 0x5400,  // mov.w r4, #0x20000000
      0x6062,          // str r2, [r4, #4]
      0x6865,          // ldr r5, [r4, #4]
      0xBF30,          // wfi
  }));
  ASSERT_NE(cpu, nullptr);
  devregs_.read_value = 0xCAFEF00D;
  EXPECT_EQ(cpu->Run(1000).stop, Stop::kWfi);
  using A = RecordingHandler::Access;
  EXPECT_THAT(devregs_.accesses, ::testing::ElementsAre(A{true, 0x100, 4, 42},
                                                        A{false, 0x108, 4, 0xCAFEF00D},
                                                        A{true, 3, 1, 42}));
  EXPECT_THAT(outbound_.accesses, ::testing::ElementsAre(A{true, 0xC, 4, 0xCAFEF00D}));
  EXPECT_EQ(cpu->reg(5), 0xCAFEF00Du);
  EXPECT_EQ(cpu->ram()[4], 0x0D);
  EXPECT_EQ(cpu->ram()[7], 0xCA);
}

// Rule: a fault stops the core in kCrashed with a reason; it is not an
// error of the host, and a crashed core does not run until Reset().
TEST_F(FwCpuTest, UnmappedReadCrashesTheCoreNotTheHost) {
  auto cpu = Make(Image({
      0xF04F, 0x41C0,  // mov.w r1, #0x60000000
      0x6808,          // ldr r0, [r1]
      0xBF30,          // wfi
  }));
  ASSERT_NE(cpu, nullptr);
  FirmwareCpu::RunResult r = cpu->Run(1000);
  EXPECT_EQ(r.stop, Stop::kCrashed);
  EXPECT_EQ(cpu->state(), State::kCrashed);
  EXPECT_THAT(cpu->crash_reason(), HasSubstr("read of unmapped address 0x60000000"));
  r = cpu->Run(1000);
  EXPECT_EQ(r.stop, Stop::kCrashed);
  EXPECT_EQ(r.instructions, 0u);
}

TEST_F(FwCpuTest, UndefinedInstructionCrashes) {
  auto cpu = Make(Image({0xBF00 /* nop */, 0xDE00 /* udf #0 */}));
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->Run(1000).stop, Stop::kCrashed);
  EXPECT_EQ(cpu->crash_reason(), "undefined instruction at pc=0x0000000a");
}

TEST_F(FwCpuTest, SvcCrashes) {
  auto cpu = Make(Image({0xDF01 /* svc #1 */}));
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->Run(1000).stop, Stop::kCrashed);
  EXPECT_THAT(cpu->crash_reason(), HasSubstr("SVC"));
}

TEST_F(FwCpuTest, WriteToRomCrashes) {
  auto cpu = Make(Image({0x2180 /* movs r1, #0x80 */, 0x6008 /* str r0, [r1] */}));
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->Run(1000).stop, Stop::kCrashed);
  EXPECT_THAT(cpu->crash_reason(), HasSubstr("write to read-only address 0x00000080"));
}

// Rule: RAM is not executable: a jump there is a fault, not a host problem.
TEST_F(FwCpuTest, JumpToRamCrashes) {
  auto cpu = Make(Image({
      0xF04F, 0x5000,  // mov.w r0, #0x20000000
      0xF040, 0x0001,  // orr r0, r0, #1
      0x4700,          // bx r0
  }));
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->Run(1000).stop, Stop::kCrashed);
  EXPECT_THAT(cpu->crash_reason(), HasSubstr("0x20000000"));
}

// Rule: returning from the reset handler (LR = 0xFFFFFFFF, an EXC_RETURN
// value with no exception active) is a fault, not a host problem.
TEST_F(FwCpuTest, ReturnFromResetCrashes) {
  auto cpu = Make(Image({0x4770 /* bx lr */}));
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->Run(1000).stop, Stop::kCrashed);
  EXPECT_THAT(cpu->crash_reason(), HasSubstr("exception return"));
}

// Rule: a reset vector without the Thumb bit locks the core up at reset.
TEST_F(FwCpuTest, ResetVectorWithoutThumbBitCrashes) {
  auto cpu = Make(Image({0xBF30}, /*entry=*/kEntry));
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->state(), State::kCrashed);
  EXPECT_THAT(cpu->crash_reason(), HasSubstr("Thumb bit"));
  EXPECT_EQ(cpu->Run(1000).instructions, 0u);
}

// Rule: the budget stops a firmware that never sleeps at the first block
// boundary at or after it (a one-instruction loop: exactly the budget); the
// core stays runnable and continues on the next Run().
TEST_F(FwCpuTest, BudgetStopsASpinLoop) {
  auto cpu = Make(Image({0xE7FE /* b . */}));
  ASSERT_NE(cpu, nullptr);
  FirmwareCpu::RunResult r = cpu->Run(1000);
  EXPECT_EQ(r.stop, Stop::kBudget);
  EXPECT_EQ(r.instructions, 1000u);
  EXPECT_EQ(cpu->state(), State::kRunnable);
  EXPECT_EQ(cpu->pc(), kEntry);
  r = cpu->Run(500);
  EXPECT_EQ(r.stop, Stop::kBudget);
  EXPECT_EQ(cpu->instructions(), 1500u);
  EXPECT_EQ(cpu->Run(0).instructions, 0u);
}

TEST_F(FwCpuTest, RejectsImagesThatDoNotFit) {
  EXPECT_EQ(FirmwareCpu::Create(std::vector<uint8_t>(4), &devregs_, &outbound_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FirmwareCpu::Create(std::vector<uint8_t>(FirmwareCpu::kRomSize + 1), &devregs_,
                                &outbound_)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      FirmwareCpu::Create(std::vector<uint8_t>(FirmwareCpu::kRomSize), &devregs_, &outbound_)
          .ok());
}

// Not a rule: prints the core's speed on a register loop (40 M
// instructions), and checks the count is exact for a loop of 4-instruction
// blocks.
TEST_F(FwCpuTest, SpeedOfARegisterLoop) {
  auto cpu = Make(Image({
      0xF249, 0x6080,  // movw r0, #0x9680
      0xF2C0, 0x0098,  // movt r0, #0x98      (10,000,000 iterations)
      0x3201,          // 1: adds r2, #1
      0x3302,          //    adds r3, #2
      0x3801,          //    subs r0, #1
      0xD1FB,          //    bne 1b
      0xBF30,          // wfi
  }));
  ASSERT_NE(cpu, nullptr);
  const auto start = std::chrono::steady_clock::now();
  FirmwareCpu::RunResult r = cpu->Run(100'000'000);
  const double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.stop, Stop::kWfi);
  EXPECT_EQ(r.instructions, 40'000'003u);
  std::printf("firmware core: %.0f M instructions/s (%.3f s for %llu)\n",
              r.instructions / s / 1e6, s, static_cast<unsigned long long>(r.instructions));
}

}  // namespace
}  // namespace irqlab
