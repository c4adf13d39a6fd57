// MsrFile: the model-specific registers the vCPU implements itself, chosen
// the way KVM chooses them: an MSR exists when the CPU model's CPUID
// advertises the feature that implies it (emu/cpu/cpu_model.h); any other
// MSR raises #GP(0), unless the `ignore-msrs` policy (KVM's ignore_msrs)
// makes it read 0 and drop writes.
//
// Spec: Intel SDM vol. 4 (MSRs), vol. 3 ch. 12 (MTRRs, 12.11), ch. 16
// (machine-check architecture, 16.3); AMD APM vol. 2, 13.2 (K7 performance
// counters).
//
//   implied by                  MSRs (reset value)
//   CPUID.1:EDX.MTRR            MTRRcap 0xFE (RO: 8 variable, fixed, WC =
//                               0x508), MTRRdefType 0x2FF, PHYSBASE/PHYSMASK
//                               0x200-0x20F, fixed 0x250 0x258 0x259
//                               0x268-0x26F (all 0 at reset)
//   CPUID.1:EDX.MCE + MCA       MCG_CAP 0x179 (RO: 10 banks, MCG_CTL_P),
//                               MCG_STATUS 0x17A, MCG_CTL 0x17B,
//                               MCi_CTL/STATUS/ADDR/MISC 0x400 + 4i, i < 10
//   GenuineIntel                PLATFORM_ID 0x17 (RO 0), BIOS_SIGN_ID 0x8B
//                               (microcode revision 1 in bits 63:32, writes
//                               ignored, as KVM), PLATFORM_INFO 0xCE (RO:
//                               non-turbo ratio 10 = 1 GHz / 100 MHz),
//                               MISC_ENABLE 0x1A0 (fast strings; BTS and
//                               PEBS unavailable, read-only)
//   AuthenticAMD                K7 PerfEvtSel0-3 0xC0010000-3, PerfCtr0-3
//                               0xC0010004-7 (48-bit counters that never
//                               count)
//
// Write semantics: reserved bits set, read-only MSRs, MTRR memory types
// other than UC/WC/WT/WP/WB, MCG_CTL / MCi_CTL values other than 0 or
// all-ones, and a non-zero MCi_STATUS raise #GP(0) (SDM 12.11.2, 16.3.2;
// KVM's rules for the last three).
//
// Not here: MSRs Unicorn executes itself (EFER, STAR, LSTAR, CSTAR, FMASK,
// FS/GS/KERNEL_GS_BASE, PAT, SYSENTER_*), the TSC (the vCPU's virtual
// clock), and the platform's (IA32_APIC_BASE, TSC_DEADLINE, the x2APIC
// range: VcpuHost). MTRRs do not change memory types (irqlab has no caches).
// Not thread-safe; one per vCPU.
#ifndef IRQLAB_EMU_CPU_MSR_FILE_H_
#define IRQLAB_EMU_CPU_MSR_FILE_H_

#include <array>
#include <cstdint>
#include <optional>

#include "emu/cpu/cpu_model.h"

namespace irqlab {

class MsrFile {
 public:
  static constexpr int kMceBanks = 10;
  static constexpr int kVariableMtrrs = 8;

  // REQUIRES: `model` non-null.
  explicit MsrFile(const CpuModel* model);

  // The value of `msr`, or nullopt if this file does not implement it
  // (the caller then asks the platform, and finally raises #GP).
  std::optional<uint64_t> Read(uint32_t msr) const;
  // kNotHere: not implemented here; kOk: written; kGp: implemented, but the
  // value is not allowed (or the MSR is read-only): #GP(0).
  enum class WriteResult { kNotHere, kOk, kGp };
  WriteResult Write(uint32_t msr, uint64_t value);

 private:
  // --- static configuration (what the model implies; computed once: the
  // x2APIC EOI WRMSR passes through Write() on every interrupt) ---
  const bool mtrr_;
  const bool mca_;
  const bool intel_;
  const bool amd_;
  // --- volatile state (power-up values) ---
  uint64_t mtrr_def_type_ = 0;
  std::array<uint64_t, 2 * kVariableMtrrs> mtrr_var_{};  // base, mask pairs
  std::array<uint64_t, 11> mtrr_fixed_{};  // 0x250, 0x258, 0x259, 0x268-0x26F
  uint64_t mcg_status_ = 0;
  uint64_t mcg_ctl_ = 0;
  std::array<uint64_t, 4 * kMceBanks> mc_banks_{};  // CTL, STATUS, ADDR, MISC
  uint64_t misc_enable_;
  std::array<uint64_t, 8> k7_perf_{};  // PerfEvtSel0-3, PerfCtr0-3
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CPU_MSR_FILE_H_
