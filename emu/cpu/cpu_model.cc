#include "emu/cpu/cpu_model.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace irqlab {
namespace {

// CPUID.1:ECX / EDX bits irqlab computes (SDM vol. 2A, CPUID, table
// "Feature Information Returned in the ECX/EDX Register").
constexpr uint32_t kEcxX2apic = 1u << 21;
constexpr uint32_t kEcxTscDeadline = 1u << 24;
constexpr uint32_t kEdxApic = 1u << 9;
constexpr uint32_t kEdxHtt = 1u << 28;
// CPUID.1:EBX[15:8]: CLFLUSH line size in 8-byte units (64 bytes).
constexpr uint32_t kEbxClflush64 = 8u << 8;

// The virtual clock: 1 GHz (emu/core/clock.h). Leaf 0x15: TSC frequency =
// ECX * EBX / EAX (SDM vol. 3, 18.7.3); leaf 0x16: base, maximum and bus
// frequency in MHz.
constexpr uint32_t kVirtualHz = 1'000'000'000;
constexpr uint32_t kVirtualMhz = 1000;

// Every leaf of every model. Leaves not named in Cpuid() below return zeros
// up to the model's maximum (e.g. leaf 7: no extended features).
constexpr CpuModel kSkylake{
    .name = "skylake",
    .description =
        "GenuineIntel, QEMU Skylake-Client's signature (family 6 model 94 "
        "stepping 3), the features Unicorn executes (default)",
    .vendor = "GenuineIntel",
    .signature = 0x000506E3,
    .max_basic_leaf = 0x16,
    .max_extended_leaf = 0x80000008,
    // SSE3, CX16, hypervisor present.
    .leaf1_ecx = 0x80002001,
    // FPU DE PSE TSC MSR PAE MCE CX8 SEP MTRR PGE MCA CMOV PAT PSE36 CLFSH
    // MMX FXSR SSE SSE2: qemu64's set (APIC and HTT are computed).
    .leaf1_edx = 0x078bf9fd,
    .leaf2 = {0x00000001, 0, 0, 0x002c307d},
    // ARAT: the local APIC timer runs in every C-state (irqlab's never stops).
    .leaf6_eax = 1u << 2,
    .ext1_ecx = 0x00000001,  // LAHF/SAHF in 64-bit mode
    .ext1_edx = 0x20100800,  // SYSCALL, NX, LM
    .brand = "Intel Core Processor (Skylake, irqlab)",
    .ext5 = {0, 0, 0, 0},
    .ext6 = {0, 0, 0x02008140, 0},  // L2: 512 KiB, 64-byte lines
    .ext7_edx = 1u << 8,            // invariant TSC: the virtual TSC
    .ext8_eax = 0x3028,             // 40 physical, 48 linear address bits
    .vendor_in_ext0 = false,
};

constexpr CpuModel kQemu64{
    .name = "qemu64",
    .description =
        "AuthenticAMD, family 6 model 6 stepping 3: Unicorn's and QEMU's "
        "default model",
    .vendor = "AuthenticAMD",
    .signature = 0x00000663,
    .max_basic_leaf = 0xd,
    .max_extended_leaf = 0x8000000a,
    .leaf1_ecx = 0x80002001,
    .leaf1_edx = 0x078bf9fd,
    .leaf2 = {0x00000001, 0, 0, 0x002c307d},
    .leaf6_eax = 0,
    .ext1_ecx = 0x00000005,
    .ext1_edx = 0x2193fbfd,
    .brand = "QEMU Virtual CPU version 2.5+",
    .ext5 = {0x01ff01ff, 0x01ff01ff, 0x40020140, 0x40020140},
    .ext6 = {0, 0x42004200, 0x02008140, 0},
    .ext7_edx = 0,
    .ext8_eax = 0x3028,
    .vendor_in_ext0 = true,
};

// Four little-endian characters of `s` starting at `at` (zero-padded).
uint32_t Chars(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) {
    if (at + i < s.size()) v |= uint32_t{static_cast<uint8_t>(s[at + i])} << (8 * i);
  }
  return v;
}

bool IsIntel(const CpuModel& m) { return m.vendor == "GenuineIntel"; }

}  // namespace

CpuidRegs CpuModel::Cpuid(const CpuidInputs& in, uint32_t leaf, uint32_t subleaf) const {
  if (leaf >= 0x40000000 && leaf <= 0x4FFFFFFF) return {};
  const bool extended = leaf >= 0x80000000;
  if ((!extended && leaf > max_basic_leaf) || (extended && leaf > max_extended_leaf)) {
    if (!IsIntel(*this)) return {};
    leaf = max_basic_leaf;
  }
  switch (leaf) {
    case 0x0:
      return {max_basic_leaf, Chars(vendor, 0), Chars(vendor, 8), Chars(vendor, 4)};
    case 0x1: {
      const uint32_t n = static_cast<uint32_t>(std::clamp(in.num_cpus, 1, 255));
      CpuidRegs r{signature, kEbxClflush64 | (n << 16) | ((in.apic_id & 0xFF) << 24),
                  leaf1_ecx, leaf1_edx};
      if (in.x2apic) r.ecx |= kEcxX2apic;
      if (in.tsc_deadline) r.ecx |= kEcxTscDeadline;
      if (in.apic_enabled) r.edx |= kEdxApic;  // SDM 11.4.3
      if (n > 1) r.edx |= kEdxHtt;
      return r;
    }
    case 0x2:
      return {leaf2[0], leaf2[1], leaf2[2], leaf2[3]};
    case 0x6:
      return {leaf6_eax, 0, 0, 0};
    case 0xB: {
      // x2APIC topology (SDM vol. 3, 8.9.2): level 0 SMT (one thread per
      // core), level 1 core (all vCPUs in one package); EDX = x2APIC id.
      int bits = 0;
      while ((1 << bits) < in.num_cpus) ++bits;
      if (subleaf == 0) return {0, 1, (1u << 8) | 0, in.apic_id};
      if (subleaf == 1) {
        return {static_cast<uint32_t>(bits), static_cast<uint32_t>(in.num_cpus),
                (2u << 8) | 1, in.apic_id};
      }
      return {0, 0, subleaf & 0xFF, in.apic_id};
    }
    case 0x15:
      return {1, 1, kVirtualHz, 0};
    case 0x16:
      return {kVirtualMhz, kVirtualMhz, kVirtualMhz, 0};
    case 0x80000000:
      if (vendor_in_ext0) {
        return {max_extended_leaf, Chars(vendor, 0), Chars(vendor, 8), Chars(vendor, 4)};
      }
      return {max_extended_leaf, 0, 0, 0};
    case 0x80000001:
      return {IsIntel(*this) ? 0 : signature, 0, ext1_ecx, ext1_edx};
    case 0x80000002:
    case 0x80000003:
    case 0x80000004: {
      const size_t at = (leaf - 0x80000002) * 16;
      return {Chars(brand, at), Chars(brand, at + 4), Chars(brand, at + 8),
              Chars(brand, at + 12)};
    }
    case 0x80000005:
      return {ext5[0], ext5[1], ext5[2], ext5[3]};
    case 0x80000006:
      return {ext6[0], ext6[1], ext6[2], ext6[3]};
    case 0x80000007:
      return {0, 0, 0, ext7_edx};
    case 0x80000008:
      return {ext8_eax, 0, 0, 0};
    default:
      return {};
  }
}

const std::vector<const CpuModel*>& CpuModels() {
  static const auto* const kModels = new std::vector<const CpuModel*>{&kSkylake, &kQemu64};
  return *kModels;
}

const CpuModel* FindCpuModel(std::string_view name) {
  for (const CpuModel* m : CpuModels()) {
    if (m->name == name) return m;
  }
  return nullptr;
}

absl::StatusOr<CpuSpec> ParseCpuSpec(std::string_view text) {
  CpuSpec spec;
  spec.model = FindCpuModel(kDefaultCpuModel);
  const std::vector<std::string> items =
      absl::StrSplit(std::string(text), ',', absl::SkipEmpty());
  size_t first = 0;
  if (!items.empty() && items[0][0] != '+' && items[0][0] != '-') {
    spec.model = FindCpuModel(items[0]);
    if (spec.model == nullptr) {
      std::vector<std::string> names;
      for (const CpuModel* m : CpuModels()) names.emplace_back(m->name);
      return absl::InvalidArgumentError(absl::StrFormat(
          "unknown CPU model \"%s\" (known: %s; see irqlab cpus)", items[0],
          absl::StrJoin(names, ", ")));
    }
    first = 1;
  }
  for (size_t i = first; i < items.size(); ++i) {
    const std::string& item = items[i];
    if (item == "ignore-msrs" || item == "+ignore-msrs" || item == "-ignore-msrs") {
      spec.ignore_msrs = item[0] != '-';
      continue;
    }
    if (item[0] != '+' && item[0] != '-') {
      return absl::InvalidArgumentError(absl::StrFormat(
          "feature \"%s\": write +%s or -%s (the model comes first)", item, item, item));
    }
    const bool on = item[0] == '+';
    const std::string name = item.substr(1);
    if (name == "x2apic") {
      spec.x2apic = on;
    } else if (name == "tsc-deadline") {
      spec.tsc_deadline = on;
    } else {
      return absl::InvalidArgumentError(absl::StrFormat(
          "unknown feature \"%s\" (known: x2apic, tsc-deadline; policy: ignore-msrs)",
          item));
    }
  }
  return spec;
}

std::string DescribeCpuModels() {
  std::string out = "CPU models (--cpu=MODEL[,+feat,-feat]; machine.cpu_model):\n";
  for (const CpuModel* m : CpuModels()) {
    absl::StrAppendFormat(&out, "  %-8s %s\n", std::string(m->name), std::string(m->description));
  }
  absl::StrAppend(&out,
                  "Features: x2apic (CPUID.1:ECX[21], x2APIC mode), tsc-deadline "
                  "(CPUID.1:ECX[24], IA32_TSC_DEADLINE); both on by default.\n"
                  "Policy: ignore-msrs (an MSR the model does not imply reads 0 and drops "
                  "writes, traced, instead of #GP(0); KVM's ignore_msrs).\n"
                  "MSRs (emu/cpu/msr_file.h): Unicorn's (EFER, STAR/LSTAR/CSTAR/FMASK, "
                  "FS/GS/KERNEL_GS_BASE, PAT, SYSENTER_*), TSC, the APIC's (APIC_BASE, "
                  "TSC_DEADLINE, x2APIC 0x800-0x8FF), MTRRs (MTRRcap 0xFE, 0x200-0x20F, "
                  "fixed, MTRRdefType 0x2FF), machine check (MCG_CAP/STATUS/CTL, 10 banks "
                  "at 0x400); GenuineIntel: PLATFORM_ID 0x17, BIOS_SIGN_ID 0x8B, "
                  "PLATFORM_INFO 0xCE, MISC_ENABLE 0x1A0; AuthenticAMD: K7 PerfEvtSel/PerfCtr "
                  "0xC0010000-7. Any other MSR: #GP(0).\n"
                  "Every model: 1 GHz TSC and APIC timer clock (leaves 0x15/0x16 where "
                  "the model has them); CPUID.1:EDX.APIC follows IA32_APIC_BASE.EN.\n");
  return out;
}

}  // namespace irqlab
