// IRQLAB_DCHECK (emu/core/check.h): active in the sanitizer and fuzz builds
// (IRQLAB_DCHECK_ENABLED), compiled out otherwise.
#include "emu/core/check.h"

#include "emu/core/guest_ram.h"
#include "gtest/gtest.h"

namespace irqlab {
namespace {

#if defined(IRQLAB_DCHECK_ENABLED)
// A broken REQUIRES: contract stops the run and names the condition.
TEST(CheckDeathTest, BrokenContractAbortsNamingTheCondition) {
  EXPECT_DEATH(IRQLAB_DCHECK(1 + 1 == 3), "IRQLAB_DCHECK failed: 1 \\+ 1 == 3");
}

// GuestRam's host-side accessors check REQUIRES: Contains(addr, len).
TEST(CheckDeathTest, GuestRamLoadOutsideRamAborts) {
  auto ram = GuestRam::Create(4096);
  ASSERT_TRUE(ram.ok());
  EXPECT_DEATH((void)(*ram)->Load<uint32_t>(4094), "Contains");
}
#else
// Compiled out: the condition is not even evaluated.
TEST(CheckTest, ConditionIsNotEvaluatedWhenDisabled) {
  int evaluated = 0;
  IRQLAB_DCHECK(++evaluated == 5);
  EXPECT_EQ(evaluated, 0);
}
#endif

// Holding contracts never stop anything, in either build.
TEST(CheckTest, HoldingContractPasses) {
  int evaluated = 0;
  IRQLAB_DCHECK(++evaluated >= 0);
  SUCCEED();
}

}  // namespace
}  // namespace irqlab
