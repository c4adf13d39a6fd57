// The vCPU's own MSRs (emu/cpu/msr_file.h): which exist for which CPU model
// (KVM's rule: implied by the advertised CPUID), reset values, and write
// semantics (#GP on reserved bits and read-only MSRs).
#include "emu/cpu/msr_file.h"

#include "gtest/gtest.h"

namespace irqlab {
namespace {

using R = MsrFile::WriteResult;

const CpuModel* Skylake() { return FindCpuModel("skylake"); }
const CpuModel* Qemu64() { return FindCpuModel("qemu64"); }

// SDM 12.11.2.1: MTRRcap is read-only: 8 variable ranges, fixed ranges, WC.
TEST(MsrFileTest, MtrrCapAndDefaultTypeAtReset) {
  MsrFile m(Skylake());
  EXPECT_EQ(m.Read(0xFE), 0x508u);
  EXPECT_EQ(m.Write(0xFE, 0), R::kGp);
  EXPECT_EQ(m.Read(0x2FF), 0u);  // MTRRs disabled at reset
  EXPECT_EQ(m.Write(0x2FF, 0xC06), R::kOk);  // E, FE, default WB
  EXPECT_EQ(m.Read(0x2FF), 0xC06u);
  EXPECT_EQ(m.Write(0x2FF, 0x1006), R::kGp);  // reserved bit 12
  EXPECT_EQ(m.Write(0x2FF, 0xC02), R::kGp);   // type 2 is reserved
  EXPECT_EQ(m.Read(0x2FF), 0xC06u);           // unchanged by the #GPs
}

// SDM 12.11.2.3: PHYSBASE holds a memory type, PHYSMASK the valid bit;
// address bits above MAXPHYADDR (40) are reserved.
TEST(MsrFileTest, VariableAndFixedMtrrs) {
  MsrFile m(Skylake());
  EXPECT_EQ(m.Write(0x200, 0xC0000000 | 6), R::kOk);
  EXPECT_EQ(m.Write(0x201, 0xFFC0000000 | 0x800), R::kOk);
  EXPECT_EQ(m.Read(0x201), 0xFFC0000800u);
  EXPECT_EQ(m.Write(0x201, 0x10000000000 | 0x800), R::kGp);  // bit 40
  EXPECT_EQ(m.Write(0x20E, 7), R::kGp);  // base 7: invalid type
  EXPECT_EQ(m.Write(0x210, 0), R::kNotHere);  // only 8 pairs
  EXPECT_EQ(m.Write(0x250, 0x0606060606060606), R::kOk);
  EXPECT_EQ(m.Write(0x26F, 0x0606060606060603), R::kGp);  // byte 0 type 3
  EXPECT_EQ(m.Read(0x268), 0u);
  EXPECT_FALSE(m.Read(0x251).has_value());  // not a fixed-range MTRR
}

// SDM 16.3.1 / 16.3.2: MCG_CAP read-only (10 banks, MCG_CTL_P); CTL is 0 or
// all-ones (KVM); software may only clear MCi_STATUS.
TEST(MsrFileTest, MachineCheckBanks) {
  MsrFile m(Skylake());
  EXPECT_EQ(m.Read(0x179), 0x10Au);
  EXPECT_EQ(m.Write(0x179, 0), R::kGp);
  EXPECT_EQ(m.Write(0x17B, ~uint64_t{0}), R::kOk);
  EXPECT_EQ(m.Write(0x17B, 1), R::kGp);
  EXPECT_EQ(m.Write(0x400 + 4 * 9, ~uint64_t{0}), R::kOk);  // MC9_CTL
  EXPECT_EQ(m.Write(0x401, 0), R::kOk);                      // MC0_STATUS
  EXPECT_EQ(m.Write(0x401, 1), R::kGp);
  EXPECT_EQ(m.Write(0x402, 0x1234), R::kOk);                 // MC0_ADDR
  EXPECT_EQ(m.Read(0x402), 0x1234u);
  EXPECT_FALSE(m.Read(0x400 + 4 * 10).has_value());          // bank 10: none
  EXPECT_EQ(m.Write(0x17A, 0x10), R::kGp);                   // MCG_STATUS reserved
}

// Intel-only MSRs that kernels read unconditionally on GenuineIntel (as KVM
// implements them), and K7 performance counters only on AuthenticAMD.
TEST(MsrFileTest, VendorMsrsFollowTheModel) {
  MsrFile intel(Skylake());
  EXPECT_EQ(intel.Read(0x17), 0u);                      // PLATFORM_ID
  EXPECT_EQ(intel.Read(0x8B), uint64_t{1} << 32);       // BIOS_SIGN_ID
  EXPECT_EQ(intel.Write(0x8B, 0), R::kOk);              // ignored
  EXPECT_EQ(intel.Read(0x8B), uint64_t{1} << 32);
  EXPECT_EQ(intel.Read(0xCE), 0xA00u);                  // PLATFORM_INFO
  EXPECT_EQ(intel.Write(0xCE, 0), R::kGp);
  EXPECT_EQ(intel.Read(0x1A0), 0x1801u);                // MISC_ENABLE
  EXPECT_EQ(intel.Write(0x1A0, 0), R::kOk);
  EXPECT_EQ(intel.Read(0x1A0), 0x1800u);                // BTS/PEBS stay read-only
  EXPECT_FALSE(intel.Read(0xC0010000).has_value());
  EXPECT_EQ(intel.Write(0xC0010004, 1), R::kNotHere);

  MsrFile amd(Qemu64());
  EXPECT_FALSE(amd.Read(0x1A0).has_value());
  EXPECT_EQ(amd.Read(0xC0010000), 0u);                  // PerfEvtSel0
  EXPECT_EQ(amd.Write(0xC0010004, ~uint64_t{0}), R::kOk);  // PerfCtr0
  EXPECT_EQ(amd.Read(0xC0010004), (uint64_t{1} << 48) - 1);  // 48-bit counter
  EXPECT_EQ(amd.Read(0xFE), 0x508u);                    // MTRRs: both vendors
}

}  // namespace
}  // namespace irqlab
