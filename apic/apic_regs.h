// Register layouts of the local APIC (Intel SDM vol. 3, chapter 11
// "Advanced Programmable Interrupt Controller (APIC)"), in one place, as
// constants and small value types. No behaviour lives here.
//
// Sections cited:
//   11.4.1  "The Local APIC Block Diagram": xAPIC register offsets (Table 11-1)
//   11.4.4  "Local APIC Status and Location": IA32_APIC_BASE
//   11.4.8  "Local APIC Version Register"
//   11.5.1  "Local Vector Table": LVT layouts (Figure 11-8)
//   11.5.3  "Error Handling": ESR bits (Figure 11-9)
//   11.5.4  "APIC Timer": divide configuration (Figure 11-10)
//   11.6.1  "Interrupt Command Register (ICR)" (Figure 11-12)
//   11.9    "Spurious Interrupt": SVR (Figure 11-23)
//   11.12.1.2 "x2APIC Register Address Space": MSR map (Table 11-6)
#ifndef IRQLAB_APIC_APIC_REGS_H_
#define IRQLAB_APIC_APIC_REGS_H_

#include <cstdint>

#include "emu/core/msi.h"

namespace irqlab::apic {

// --- IA32_APIC_BASE (MSR 0x1B), SDM 11.4.4 / 11.12.1. ---
inline constexpr uint32_t kMsrApicBase = 0x1B;
inline constexpr uint64_t kApicBaseBsp = 1ull << 8;    // read-only here
inline constexpr uint64_t kApicBaseExtd = 1ull << 10;  // x2APIC enable
inline constexpr uint64_t kApicBaseEn = 1ull << 11;    // global enable
inline constexpr uint64_t kDefaultApicBase = 0xFEE00000;
inline constexpr uint64_t kApicPageSize = 0x1000;

// --- IA32_TSC_DEADLINE (MSR 0x6E0), SDM 11.5.4.1. ---
inline constexpr uint32_t kMsrTscDeadline = 0x6E0;

// --- x2APIC MSR range, SDM 11.12.1.2: MSR = 0x800 + (xAPIC offset >> 4). ---
inline constexpr uint32_t kMsrX2apicFirst = 0x800;
inline constexpr uint32_t kMsrX2apicLast = 0x8FF;
inline constexpr uint32_t X2apicMsrForOffset(uint32_t offset) {
  return kMsrX2apicFirst + (offset >> 4);
}
inline constexpr uint32_t OffsetForX2apicMsr(uint32_t msr) {
  return (msr - kMsrX2apicFirst) << 4;
}

// --- Register offsets in the 4 KiB xAPIC page (SDM Table 11-1). ---
enum RegOffset : uint32_t {
  kRegId = 0x020,
  kRegVersion = 0x030,
  kRegTpr = 0x080,
  kRegApr = 0x090,
  kRegPpr = 0x0A0,
  kRegEoi = 0x0B0,
  kRegRrd = 0x0C0,
  kRegLdr = 0x0D0,
  kRegDfr = 0x0E0,
  kRegSvr = 0x0F0,
  kRegIsr0 = 0x100,  // ISR 0x100..0x170, 8 x 32 bits
  kRegTmr0 = 0x180,  // TMR 0x180..0x1F0
  kRegIrr0 = 0x200,  // IRR 0x200..0x270
  kRegEsr = 0x280,
  kRegLvtCmci = 0x2F0,
  kRegIcrLow = 0x300,
  kRegIcrHigh = 0x310,
  kRegLvtTimer = 0x320,
  kRegLvtThermal = 0x330,
  kRegLvtPmc = 0x340,
  kRegLvtLint0 = 0x350,
  kRegLvtLint1 = 0x360,
  kRegLvtError = 0x370,
  kRegTimerInitialCount = 0x380,
  kRegTimerCurrentCount = 0x390,
  kRegTimerDivide = 0x3E0,
  kRegSelfIpi = 0x3F0,  // x2APIC only (MSR 0x83F)
};

// x2APIC MSR numbers used by name (SDM Table 11-6).
inline constexpr uint32_t kMsrX2apicId = X2apicMsrForOffset(kRegId);        // 0x802
inline constexpr uint32_t kMsrX2apicVersion = X2apicMsrForOffset(kRegVersion);  // 0x803
inline constexpr uint32_t kMsrX2apicTpr = X2apicMsrForOffset(kRegTpr);      // 0x808
inline constexpr uint32_t kMsrX2apicPpr = X2apicMsrForOffset(kRegPpr);      // 0x80A
inline constexpr uint32_t kMsrX2apicEoi = X2apicMsrForOffset(kRegEoi);      // 0x80B
inline constexpr uint32_t kMsrX2apicLdr = X2apicMsrForOffset(kRegLdr);      // 0x80D
inline constexpr uint32_t kMsrX2apicDfr = X2apicMsrForOffset(kRegDfr);      // 0x80E (#GP)
inline constexpr uint32_t kMsrX2apicSvr = X2apicMsrForOffset(kRegSvr);      // 0x80F
inline constexpr uint32_t kMsrX2apicIsr0 = X2apicMsrForOffset(kRegIsr0);    // 0x810
inline constexpr uint32_t kMsrX2apicTmr0 = X2apicMsrForOffset(kRegTmr0);    // 0x818
inline constexpr uint32_t kMsrX2apicIrr0 = X2apicMsrForOffset(kRegIrr0);    // 0x820
inline constexpr uint32_t kMsrX2apicEsr = X2apicMsrForOffset(kRegEsr);      // 0x828
inline constexpr uint32_t kMsrX2apicLvtCmci = X2apicMsrForOffset(kRegLvtCmci);  // 0x82F
inline constexpr uint32_t kMsrX2apicIcr = X2apicMsrForOffset(kRegIcrLow);   // 0x830
inline constexpr uint32_t kMsrX2apicLvtTimer = X2apicMsrForOffset(kRegLvtTimer);  // 0x832
inline constexpr uint32_t kMsrX2apicLvtLint0 = X2apicMsrForOffset(kRegLvtLint0);  // 0x835
inline constexpr uint32_t kMsrX2apicLvtError = X2apicMsrForOffset(kRegLvtError);  // 0x837
inline constexpr uint32_t kMsrX2apicTmict = X2apicMsrForOffset(kRegTimerInitialCount);  // 0x838
inline constexpr uint32_t kMsrX2apicTmcct = X2apicMsrForOffset(kRegTimerCurrentCount);  // 0x839
inline constexpr uint32_t kMsrX2apicTdcr = X2apicMsrForOffset(kRegTimerDivide);  // 0x83E
inline constexpr uint32_t kMsrX2apicSelfIpi = X2apicMsrForOffset(kRegSelfIpi);   // 0x83F
static_assert(kMsrX2apicIcr == 0x830 && kMsrX2apicSelfIpi == 0x83F &&
              kMsrX2apicEsr == 0x828 && kMsrX2apicTdcr == 0x83E);

// --- Version register (SDM 11.4.8). ---
inline constexpr uint32_t kApicVersion = 0x14;  // integrated APIC (xAPIC)
inline constexpr uint32_t kVersionDirectedEoi = 1u << 24;  // "suppress EOI broadcast" supported

// --- Spurious-interrupt vector register (SDM 11.9, Figure 11-23). ---
inline constexpr uint32_t kSvrVector = 0xFF;
inline constexpr uint32_t kSvrEnable = 1u << 8;        // APIC software enable
inline constexpr uint32_t kSvrFocusDisable = 1u << 9;  // 1 = focus checking off
inline constexpr uint32_t kSvrSuppressEoiBroadcast = 1u << 12;
inline constexpr uint32_t kSvrReset = 0xFF;  // SDM 11.4.7.1: software-disabled

// --- Destination format register (SDM 11.6.2.2). ---
inline constexpr uint32_t kDfrFlat = 0xFFFFFFFF;     // model 1111b
inline constexpr uint32_t kDfrCluster = 0x0FFFFFFF;  // model 0000b
inline constexpr uint32_t kDfrReservedOnes = 0x0FFFFFFF;

// --- Error status register bits (SDM 11.5.3, Figure 11-9). ---
enum EsrBit : uint32_t {
  kEsrSendChecksum = 1u << 0,       // not modelled (P6/Pentium only)
  kEsrReceiveChecksum = 1u << 1,    // not modelled
  kEsrSendAccept = 1u << 2,         // not modelled
  kEsrReceiveAccept = 1u << 3,      // not modelled
  kEsrRedirectableIpi = 1u << 4,    // lowest-priority IPI not supported
  kEsrSendIllegalVector = 1u << 5,
  kEsrReceiveIllegalVector = 1u << 6,
  kEsrIllegalRegisterAddress = 1u << 7,
};

// --- Local vector table (SDM 11.5.1, Figure 11-8). ---
enum class Lvt : int {
  kCmci = 0,
  kTimer,
  kThermal,
  kPmc,
  kLint0,
  kLint1,
  kError,
};
inline constexpr int kNumLvts = 7;

inline constexpr uint32_t kLvtVector = 0xFF;
inline constexpr uint32_t kLvtDeliveryModeMask = 0x700;  // 10:8 (not timer/error)
inline constexpr uint32_t kLvtDeliveryStatus = 1u << 12;  // read-only, always idle here
inline constexpr uint32_t kLvtPolarityLow = 1u << 13;     // LINT0/1 only
inline constexpr uint32_t kLvtRemoteIrr = 1u << 14;       // LINT0/1 only, read-only
inline constexpr uint32_t kLvtTriggerLevel = 1u << 15;    // LINT0/1 only
inline constexpr uint32_t kLvtMasked = 1u << 16;
inline constexpr uint32_t kLvtTimerModeMask = 3u << 17;   // timer only
inline constexpr uint32_t kLvtReset = kLvtMasked;         // SDM 11.4.7.1

// Writable bits of each LVT (SDM Figure 11-8). The timer's mode field has
// bit 18 only when TSC-deadline mode is supported (LocalApic masks it).
inline constexpr uint32_t LvtWritableMask(Lvt lvt) {
  switch (lvt) {
    case Lvt::kTimer:
      return kLvtVector | kLvtMasked | kLvtTimerModeMask;
    case Lvt::kError:
      return kLvtVector | kLvtMasked;
    case Lvt::kLint0:
    case Lvt::kLint1:
      return kLvtVector | kLvtDeliveryModeMask | kLvtPolarityLow |
             kLvtTriggerLevel | kLvtMasked;
    case Lvt::kCmci:
    case Lvt::kThermal:
    case Lvt::kPmc:
      return kLvtVector | kLvtDeliveryModeMask | kLvtMasked;
  }
  return 0;
}
// Read-only bits a read-modify-write may carry back (accepted, ignored).
inline constexpr uint32_t LvtReadOnlyMask(Lvt lvt) {
  return kLvtDeliveryStatus |
         ((lvt == Lvt::kLint0 || lvt == Lvt::kLint1) ? kLvtRemoteIrr : 0);
}

// Timer modes, LVT timer bits 18:17 (SDM 11.5.4). 11b is reserved; this
// model runs it as one-shot.
enum class TimerMode : uint32_t {
  kOneShot = 0,
  kPeriodic = 1,
  kTscDeadline = 2,
  kReserved = 3,
};

// Divide configuration register bits 3,1:0 (SDM Figure 11-10):
// 000b=2, 001b=4, 010b=8, 011b=16, 100b=32, 101b=64, 110b=128, 111b=1,
// where the 3-bit value is {bit3, bit1, bit0}.
inline constexpr uint32_t kTdcrMask = 0xB;
inline constexpr uint32_t TimerDivisor(uint32_t tdcr) {
  const uint32_t v = ((tdcr >> 1) & 4) | (tdcr & 3);
  return 1u << ((v + 1) & 7);
}
static_assert(TimerDivisor(0x0) == 2 && TimerDivisor(0x3) == 16 &&
              TimerDivisor(0x8) == 32 && TimerDivisor(0xA) == 128 &&
              TimerDivisor(0xB) == 1);

// --- Interrupt command register (SDM 11.6.1, Figure 11-12). ---
// StartUp has no name in the shared DeliveryMode enum (it is reserved for
// MSI/RTE): ICR delivery mode 110b.
inline constexpr DeliveryMode kStartUp = DeliveryMode::kReserved6;

enum class Shorthand : uint32_t {
  kNone = 0,
  kSelf = 1,
  kAllIncludingSelf = 2,
  kAllExcludingSelf = 3,
};

inline constexpr uint32_t kIcrDeliveryStatus = 1u << 12;  // xAPIC: reads 0 (idle)
// Writable bits of ICR low: vector 7:0, delivery mode 10:8, destination mode
// 11, level 14, trigger mode 15, shorthand 19:18. In x2APIC mode every other
// bit of 31:0 is reserved (bit 12 included, SDM 11.12.9).
inline constexpr uint32_t kIcrLowWritable = 0x000CCFFF;
inline constexpr uint32_t kXapicIcrHighWritable = 0xFF000000;  // dest 31:24

// One decoded ICR value, as the sender hands it to the APIC bus.
struct IcrValue {
  uint32_t low = 0;
  uint32_t destination = 0;  // xAPIC: ICR[63:56]; x2APIC: ICR[63:32]

  uint8_t vector() const { return low & 0xFF; }
  DeliveryMode delivery_mode() const {
    return static_cast<DeliveryMode>((low >> 8) & 7);
  }
  bool logical() const { return (low >> 11) & 1; }
  bool level_assert() const { return (low >> 14) & 1; }
  bool trigger_level() const { return (low >> 15) & 1; }
  Shorthand shorthand() const { return static_cast<Shorthand>((low >> 18) & 3); }
};

// "none", "self", "all-including-self", "all-excluding-self".
const char* ShorthandName(Shorthand s);
// DeliveryModeName() but with "startup" for 110b (ICR meaning).
const char* IcrDeliveryModeName(DeliveryMode mode);

}  // namespace irqlab::apic

#endif  // IRQLAB_APIC_APIC_REGS_H_
