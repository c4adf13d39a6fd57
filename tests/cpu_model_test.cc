// The CPU model table (emu/cpu/cpu_model.h): CPUID leaves per model, the
// dynamic bits, and --cpu=MODEL[,+feat,-feat] parsing.
#include "emu/cpu/cpu_model.h"

#include <string>

#include "gtest/gtest.h"

namespace irqlab {
namespace {

std::string Vendor(const CpuidRegs& r) {
  std::string s(12, '\0');
  for (int i = 0; i < 4; ++i) {
    s[i] = static_cast<char>(r.ebx >> (8 * i));
    s[4 + i] = static_cast<char>(r.edx >> (8 * i));
    s[8 + i] = static_cast<char>(r.ecx >> (8 * i));
  }
  return s;
}

const CpuModel& Default() { return *FindCpuModel(kDefaultCpuModel); }

// Kernels written for QEMU/KVM choose Intel or AMD paths by the vendor
// string (CPUID.0:EBX-EDX-ECX); the default must be GenuineIntel.
TEST(CpuModelTest, DefaultModelIsGenuineIntel) {
  const CpuidRegs r = Default().Cpuid(CpuidInputs{}, 0, 0);
  EXPECT_EQ(Vendor(r), "GenuineIntel");
  EXPECT_EQ(r.eax, 0x16u);  // up to the frequency leaf
  EXPECT_EQ(Default().Cpuid(CpuidInputs{}, 1, 0).eax, 0x000506E3u);  // family 6 model 94
}

TEST(CpuModelTest, Qemu64KeepsUnicornsAmdIdentity) {
  const CpuModel* m = FindCpuModel("qemu64");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(Vendor(m->Cpuid(CpuidInputs{}, 0, 0)), "AuthenticAMD");
  EXPECT_EQ(Vendor(m->Cpuid(CpuidInputs{}, 0x80000000, 0)), "AuthenticAMD");
  EXPECT_EQ(m->Cpuid(CpuidInputs{}, 1, 0).eax, 0x663u);
}

// SDM vol. 2A CPUID leaf 1: EBX[31:24] initial APIC id, EBX[23:16] logical
// processors, EDX.HTT when there is more than one.
TEST(CpuModelTest, Leaf1CarriesApicIdAndCpuCount) {
  CpuidInputs in;
  in.apic_id = 5;
  in.num_cpus = 8;
  const CpuidRegs r = Default().Cpuid(in, 1, 0);
  EXPECT_EQ(r.ebx >> 24, 5u);
  EXPECT_EQ((r.ebx >> 16) & 0xFF, 8u);
  EXPECT_EQ((r.ebx >> 8) & 0xFF, 8u);  // CLFLUSH: 64 bytes
  EXPECT_TRUE(r.edx & (1u << 28));
  in.num_cpus = 1;
  EXPECT_FALSE(Default().Cpuid(in, 1, 0).edx & (1u << 28));
}

// SDM vol. 3, 11.4.3: clearing IA32_APIC_BASE.EN makes CPUID.1:EDX.APIC 0.
TEST(CpuModelTest, ApicBitFollowsApicBaseEnable) {
  CpuidInputs in;
  EXPECT_TRUE(Default().Cpuid(in, 1, 0).edx & (1u << 9));
  in.apic_enabled = false;
  EXPECT_FALSE(Default().Cpuid(in, 1, 0).edx & (1u << 9));
}

TEST(CpuModelTest, FeaturesSetTheirBits) {
  CpuidInputs in;
  EXPECT_EQ(Default().Cpuid(in, 1, 0).ecx & ((1u << 21) | (1u << 24)), (1u << 21) | (1u << 24));
  in.x2apic = false;
  in.tsc_deadline = false;
  EXPECT_EQ(Default().Cpuid(in, 1, 0).ecx & ((1u << 21) | (1u << 24)), 0u);
}

// Leaf 0x15: TSC = crystal * EBX / EAX = 1 GHz, the virtual clock (one tick
// per instruction); leaf 0x16 in MHz. Kernels need not calibrate.
TEST(CpuModelTest, FrequencyLeavesSayOneGigahertz) {
  const CpuidRegs l15 = Default().Cpuid(CpuidInputs{}, 0x15, 0);
  ASSERT_NE(l15.eax, 0u);
  EXPECT_EQ(uint64_t{l15.ecx} * l15.ebx / l15.eax, 1'000'000'000u);
  EXPECT_EQ(Default().Cpuid(CpuidInputs{}, 0x16, 0), (CpuidRegs{1000, 1000, 1000, 0}));
  EXPECT_TRUE(Default().Cpuid(CpuidInputs{}, 0x80000007, 0).edx & (1u << 8));  // invariant TSC
}

// SDM vol. 3, 8.9.2: leaf 0xB enumerates SMT then core levels, EDX = x2APIC id.
TEST(CpuModelTest, Leaf0BTopologyMatchesCpuCount) {
  CpuidInputs in;
  in.apic_id = 3;
  in.num_cpus = 6;
  EXPECT_EQ(Default().Cpuid(in, 0xB, 0), (CpuidRegs{0, 1, 0x100, 3}));
  EXPECT_EQ(Default().Cpuid(in, 0xB, 1), (CpuidRegs{3, 6, 0x201, 3}));  // 2^3 >= 6
  EXPECT_EQ(Default().Cpuid(in, 0xB, 2), (CpuidRegs{0, 0, 2, 3}));      // invalid level
}

// SDM vol. 2A: a leaf above the maximum returns the highest basic leaf on
// Intel; the hypervisor range returns zeros (no hypervisor interface).
TEST(CpuModelTest, LeavesOutOfRange) {
  const CpuidRegs top = Default().Cpuid(CpuidInputs{}, 0x16, 0);
  EXPECT_EQ(Default().Cpuid(CpuidInputs{}, 0x17, 0), top);
  EXPECT_EQ(Default().Cpuid(CpuidInputs{}, 0x80000009, 0), top);
  EXPECT_EQ(Default().Cpuid(CpuidInputs{}, 0x40000000, 0), CpuidRegs{});
  EXPECT_EQ(FindCpuModel("qemu64")->Cpuid(CpuidInputs{}, 0x20, 0), CpuidRegs{});
}

TEST(CpuModelTest, BrandStringIsNulTerminatedText) {
  std::string brand;
  for (uint32_t leaf = 0x80000002; leaf <= 0x80000004; ++leaf) {
    const CpuidRegs r = Default().Cpuid(CpuidInputs{}, leaf, 0);
    for (uint32_t v : {r.eax, r.ebx, r.ecx, r.edx}) {
      for (int i = 0; i < 4; ++i) brand.push_back(static_cast<char>(v >> (8 * i)));
    }
  }
  EXPECT_EQ(std::string(brand.c_str()), "Intel Core Processor (Skylake, irqlab)");
  EXPECT_EQ(Default().Cpuid(CpuidInputs{}, 0x80000000, 0).eax, 0x80000008u);
  // Intel: SYSCALL, NX, LM; no AMD-only bits.
  EXPECT_EQ(Default().Cpuid(CpuidInputs{}, 0x80000001, 0).edx, 0x20100800u);
}

TEST(CpuModelTest, ParsesQemuStyleSpecs) {
  absl::StatusOr<CpuSpec> s = ParseCpuSpec("");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->model->name, "skylake");
  EXPECT_TRUE(s->x2apic && s->tsc_deadline);
  s = ParseCpuSpec("qemu64,-x2apic");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->model->name, "qemu64");
  EXPECT_FALSE(s->x2apic);
  EXPECT_TRUE(s->tsc_deadline);
  s = ParseCpuSpec("-tsc-deadline");  // the model may be left out
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->model->name, "skylake");
  EXPECT_FALSE(s->tsc_deadline);
  EXPECT_EQ(ParseCpuSpec("pentium").status().message(),
            "unknown CPU model \"pentium\" (known: skylake, qemu64; see irqlab cpus)");
  EXPECT_EQ(ParseCpuSpec("skylake,+avx512").status().message(),
            "unknown feature \"+avx512\" (known: x2apic, tsc-deadline; policy: ignore-msrs)");
  s = ParseCpuSpec("qemu64,ignore-msrs");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->ignore_msrs);
  EXPECT_FALSE(ParseCpuSpec("").value().ignore_msrs);
  EXPECT_FALSE(ParseCpuSpec("skylake,x2apic").ok());
}

}  // namespace
}  // namespace irqlab
