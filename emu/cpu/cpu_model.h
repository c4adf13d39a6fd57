// The vCPU's identity: every CPUID leaf irqlab returns, per CPU model, in one
// table (cpu_model.cc), like QEMU's `-cpu MODEL[,+feat,-feat]`.
//
// Spec: Intel SDM vol. 2A, CPUID ("Information Returned by CPUID
// Instruction"); SDM vol. 3, 11.4.3 (CPUID.1:EDX.APIC follows
// IA32_APIC_BASE.EN), 11.12.8 / 8.9 (leaf 0xB x2APIC topology), 18.7.3
// (leaf 0x15 TSC / crystal clock ratio).
//
// irqlab's virtual CPU runs at 1 GHz: one tick per retired instruction, the
// TSC counts ticks and the local APIC timer counts ticks before its divider.
// Leaves 0x15/0x16 say so, so a kernel need not calibrate against a PIT.
//
// Models:
//   skylake (default)  vendor GenuineIntel with QEMU's Skylake-Client
//                      signature (family 6, model 94, stepping 3), but only
//                      the features Unicorn's TCG executes and irqlab models
//                      (the qemu64 feature set + x2APIC + TSC-deadline).
//   qemu64             Unicorn's / QEMU's default model: vendor AuthenticAMD,
//                      family 6 model 6; kernels written for QEMU then take
//                      AMD paths (e.g. the K7 PMU MSRs).
// Features (+name / -name): x2apic, tsc-deadline (both on by default).
// Policy: ignore-msrs (KVM's ignore_msrs; emu/cpu/msr_file.h).
//
// Not modelled: leaves 4 (deterministic cache parameters: type 0, so kernels
// use leaf 2), 0xA (no architectural PMU), 0xD (no XSAVE), 0x40000000-
// 0x4FFFFFFF (no hypervisor interface: zeros).
#ifndef IRQLAB_EMU_CPU_CPU_MODEL_H_
#define IRQLAB_EMU_CPU_CPU_MODEL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace irqlab {

struct CpuidRegs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
  bool operator==(const CpuidRegs&) const = default;
};

// What the dynamic CPUID bits depend on, for one vCPU at one moment.
struct CpuidInputs {
  uint32_t apic_id = 0;       // initial APIC id: 1:EBX[31:24], 0xB:EDX
  int num_cpus = 1;           // 1:EBX[23:16] and EDX.HTT, 0xB topology
  bool apic_enabled = true;   // IA32_APIC_BASE.EN -> 1:EDX.APIC (SDM 11.4.3)
  bool x2apic = true;         // feature x2apic: 1:ECX[21]
  bool tsc_deadline = true;   // feature tsc-deadline: 1:ECX[24]
};

// One CPU model's static identity. The table is in cpu_model.cc.
struct CpuModel {
  std::string_view name;
  std::string_view description;
  std::string_view vendor;       // 12 characters, CPUID.0:EBX-EDX-ECX
  uint32_t signature;            // CPUID.1:EAX (family/model/stepping)
  uint32_t max_basic_leaf;
  uint32_t max_extended_leaf;
  uint32_t leaf1_ecx;            // without x2APIC / TSC-deadline (features)
  uint32_t leaf1_edx;            // without APIC (dynamic) and HTT
  uint32_t leaf2[4];             // cache/TLB descriptors
  uint32_t leaf6_eax;            // thermal and power management
  uint32_t ext1_ecx, ext1_edx;   // CPUID.80000001h
  std::string_view brand;        // CPUID.80000002h-80000004h, <= 48 chars
  uint32_t ext5[4];              // CPUID.80000005h (L1 caches; AMD only)
  uint32_t ext6[4];              // CPUID.80000006h (L2 cache)
  uint32_t ext7_edx;             // CPUID.80000007h: invariant TSC (bit 8)
  uint32_t ext8_eax;             // CPUID.80000008h: address sizes
  bool vendor_in_ext0;           // AMD repeats the vendor in 80000000h

  // The registers CPUID(leaf, subleaf) returns on a vCPU in state `in`.
  // A leaf above the maximum of its range returns the highest basic leaf,
  // as Intel processors do (SDM vol. 2A, CPUID: "If a value entered for
  // CPUID.EAX is higher than the maximum input value ... the data for the
  // highest basic information leaf is returned"); 0x40000000-0x4FFFFFFF
  // return zeros (no hypervisor interface).
  CpuidRegs Cpuid(const CpuidInputs& in, uint32_t leaf, uint32_t subleaf) const;
};

// The model named `name`, or nullptr.
const CpuModel* FindCpuModel(std::string_view name);
// Every model, the default first.
const std::vector<const CpuModel*>& CpuModels();
inline constexpr std::string_view kDefaultCpuModel = "skylake";

// A parsed --cpu=MODEL[,+feat,-feat...] (QEMU's -cpu syntax). The model may
// be left out ("+x2apic,-tsc-deadline" keeps the default model).
struct CpuSpec {
  const CpuModel* model = nullptr;  // never null after ParseCpuSpec
  bool x2apic = true;
  bool tsc_deadline = true;
  bool ignore_msrs = false;  // "ignore-msrs" (KVM's ignore_msrs)
};
// Returns InvalidArgument naming the unknown model or feature, or a feature
// written without its + or -.
absl::StatusOr<CpuSpec> ParseCpuSpec(std::string_view text);

// The models and features as `irqlab cpus` prints them.
std::string DescribeCpuModels();

}  // namespace irqlab

#endif  // IRQLAB_EMU_CPU_CPU_MODEL_H_
