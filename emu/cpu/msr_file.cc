#include "emu/cpu/msr_file.h"

namespace irqlab {
namespace {

// MSR numbers (SDM vol. 4, table 2-2).
constexpr uint32_t kPlatformId = 0x17;
constexpr uint32_t kBiosSignId = 0x8B;
constexpr uint32_t kPlatformInfo = 0xCE;
constexpr uint32_t kMtrrCap = 0xFE;
constexpr uint32_t kMcgCap = 0x179;
constexpr uint32_t kMcgStatus = 0x17A;
constexpr uint32_t kMcgCtl = 0x17B;
constexpr uint32_t kMiscEnable = 0x1A0;
constexpr uint32_t kMtrrPhysBase0 = 0x200;
constexpr uint32_t kMtrrDefType = 0x2FF;
constexpr uint32_t kMc0Ctl = 0x400;
constexpr uint32_t kK7PerfEvtSel0 = 0xC0010000;

// CPUID.1:EDX feature bits that imply MSRs.
constexpr uint32_t kEdxMce = 1u << 7;
constexpr uint32_t kEdxMtrr = 1u << 12;
constexpr uint32_t kEdxMca = 1u << 14;

// MTRRcap: VCNT = 8, FIX (bit 8), WC (bit 10) (SDM 12.11.2.1).
constexpr uint64_t kMtrrCapValue = (uint64_t{1} << 10) | (uint64_t{1} << 8) | 8;
// MCG_CAP: Count = 10 banks, MCG_CTL_P (bit 8) (SDM 16.3.1.1).
constexpr uint64_t kMcgCapValue = (uint64_t{1} << 8) | MsrFile::kMceBanks;
// MISC_ENABLE at reset (as KVM): fast strings (bit 0), BTS unavailable
// (bit 11), PEBS unavailable (bit 12); bits 11 and 12 are read-only.
constexpr uint64_t kMiscEnableReset = (1u << 0) | (1u << 11) | (1u << 12);
constexpr uint64_t kMiscEnableReadOnly = (1u << 11) | (1u << 12);
// PLATFORM_INFO: maximum non-turbo ratio (bits 15:8) = 1 GHz / 100 MHz.
constexpr uint64_t kPlatformInfoValue = uint64_t{10} << 8;
// BIOS_SIGN_ID: microcode update revision 1 in bits 63:32 (KVM's default).
constexpr uint64_t kBiosSignIdValue = uint64_t{1} << 32;
// Physical-address bits (CPUID.80000008h:EAX[7:0] of every model).
constexpr int kMaxPhysAddr = 40;
constexpr uint64_t kPhysMask = ((uint64_t{1} << kMaxPhysAddr) - 1) & ~uint64_t{0xFFF};
// K7 performance counters are 48 bits wide (AMD APM vol. 2, 13.2.1).
constexpr uint64_t kK7CounterMask = (uint64_t{1} << 48) - 1;

// Every MSR of this file is below 0x800 or one of the eight K7 counters, so
// one compare sends the x2APIC range (the EOI WRMSR of every interrupt) and
// everything else on to the platform.
bool InRange(uint32_t msr) {
  return msr < 0x800 || (msr >= kK7PerfEvtSel0 && msr < kK7PerfEvtSel0 + 8);
}

// SDM 12.11.2: UC 0, WC 1, WT 4, WP 5, WB 6; 2, 3 and 7+ are reserved.
bool ValidMemoryType(uint64_t type) {
  return type == 0 || type == 1 || type == 4 || type == 5 || type == 6;
}

// Index into MsrFile's fixed-range array for 0x250, 0x258, 0x259,
// 0x268-0x26F, or -1.
int FixedMtrrIndex(uint32_t msr) {
  if (msr == 0x250) return 0;
  if (msr == 0x258 || msr == 0x259) return 1 + static_cast<int>(msr - 0x258);
  if (msr >= 0x268 && msr <= 0x26F) return 3 + static_cast<int>(msr - 0x268);
  return -1;
}

}  // namespace

MsrFile::MsrFile(const CpuModel* model)
    : mtrr_(model->leaf1_edx & kEdxMtrr),
      mca_((model->leaf1_edx & kEdxMce) && (model->leaf1_edx & kEdxMca)),
      intel_(model->vendor == "GenuineIntel"),
      amd_(model->vendor == "AuthenticAMD"),
      misc_enable_(kMiscEnableReset) {}

std::optional<uint64_t> MsrFile::Read(uint32_t msr) const {
  if (!InRange(msr)) return std::nullopt;
  if (mtrr_) {
    if (msr == kMtrrCap) return kMtrrCapValue;
    if (msr == kMtrrDefType) return mtrr_def_type_;
    if (msr >= kMtrrPhysBase0 && msr < kMtrrPhysBase0 + 2 * kVariableMtrrs) {
      return mtrr_var_[msr - kMtrrPhysBase0];
    }
    if (const int i = FixedMtrrIndex(msr); i >= 0) return mtrr_fixed_[i];
  }
  if (mca_) {
    if (msr == kMcgCap) return kMcgCapValue;
    if (msr == kMcgStatus) return mcg_status_;
    if (msr == kMcgCtl) return mcg_ctl_;
    if (msr >= kMc0Ctl && msr < kMc0Ctl + 4 * kMceBanks) return mc_banks_[msr - kMc0Ctl];
  }
  if (intel_) {
    if (msr == kPlatformId) return 0;
    if (msr == kBiosSignId) return kBiosSignIdValue;
    if (msr == kPlatformInfo) return kPlatformInfoValue;
    if (msr == kMiscEnable) return misc_enable_;
  }
  if (amd_ && msr >= kK7PerfEvtSel0 && msr < kK7PerfEvtSel0 + 8) {
    return k7_perf_[msr - kK7PerfEvtSel0];
  }
  return std::nullopt;
}

MsrFile::WriteResult MsrFile::Write(uint32_t msr, uint64_t value) {
  using R = WriteResult;
  if (!InRange(msr)) return R::kNotHere;
  if (mtrr_) {
    if (msr == kMtrrCap) return R::kGp;  // read-only
    if (msr == kMtrrDefType) {
      // Bits 7:0 type, 10 FE, 11 E; the rest reserved (SDM 12.11.2.1).
      if ((value & ~uint64_t{0xCFF}) || !ValidMemoryType(value & 0xFF)) return R::kGp;
      mtrr_def_type_ = value;
      return R::kOk;
    }
    if (msr >= kMtrrPhysBase0 && msr < kMtrrPhysBase0 + 2 * kVariableMtrrs) {
      const bool is_mask = (msr - kMtrrPhysBase0) & 1;
      // PHYSBASE: type 7:0, base 39:12; PHYSMASK: V bit 11, mask 39:12
      // (SDM 12.11.2.3); bits above MAXPHYADDR and the rest are reserved.
      const uint64_t allowed = kPhysMask | (is_mask ? 0x800 : 0xFF);
      if ((value & ~allowed) || (!is_mask && !ValidMemoryType(value & 0xFF))) {
        return R::kGp;
      }
      mtrr_var_[msr - kMtrrPhysBase0] = value;
      return R::kOk;
    }
    if (const int i = FixedMtrrIndex(msr); i >= 0) {
      for (int b = 0; b < 8; ++b) {
        if (!ValidMemoryType((value >> (8 * b)) & 0xFF)) return R::kGp;
      }
      mtrr_fixed_[i] = value;
      return R::kOk;
    }
  }
  if (mca_) {
    if (msr == kMcgCap) return R::kGp;
    if (msr == kMcgStatus) {
      // RIPV, EIPV, MCIP, LMCE_S (bits 3:0); the rest reserved.
      if (value & ~uint64_t{0xF}) return R::kGp;
      mcg_status_ = value;
      return R::kOk;
    }
    if (msr == kMcgCtl || (msr >= kMc0Ctl && msr < kMc0Ctl + 4 * kMceBanks)) {
      const uint32_t reg = msr == kMcgCtl ? 0 : (msr - kMc0Ctl) % 4;
      // CTL: all-ones or 0 (KVM); STATUS: only 0 (software clears a logged
      // error; a non-zero write is #GP, SDM 16.3.2.2); ADDR, MISC: any.
      if (reg == 0 && value != 0 && value != ~uint64_t{0}) return R::kGp;
      if (reg == 1 && value != 0) return R::kGp;
      (msr == kMcgCtl ? mcg_ctl_ : mc_banks_[msr - kMc0Ctl]) = value;
      return R::kOk;
    }
  }
  if (intel_) {
    if (msr == kPlatformId || msr == kPlatformInfo) return R::kGp;  // read-only
    if (msr == kBiosSignId) return R::kOk;  // a microcode-update trigger: ignored
    if (msr == kMiscEnable) {
      misc_enable_ = (value & ~kMiscEnableReadOnly) | (kMiscEnableReset & kMiscEnableReadOnly);
      return R::kOk;
    }
  }
  if (amd_ && msr >= kK7PerfEvtSel0 && msr < kK7PerfEvtSel0 + 8) {
    const bool counter = msr >= kK7PerfEvtSel0 + 4;
    k7_perf_[msr - kK7PerfEvtSel0] = counter ? value & kK7CounterMask : value;
    return R::kOk;
  }
  return R::kNotHere;
}

}  // namespace irqlab
