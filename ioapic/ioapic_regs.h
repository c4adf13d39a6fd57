// Register layout of the I/O APIC: MMIO offsets, indirect register indices
// and the redirection table entry (RTE), in one place.
//
// Sources:
//   [82093AA]  Intel 82093AA I/O Advanced Programmable Interrupt Controller
//              (IOAPIC) datasheet, order no. 290566-001, section 3
//              ("Register Description"): IOREGSEL, IOWIN, IOAPICID,
//              IOAPICVER, IOAPICARB, IOREDTBL[0:23].
//   [ICH/PCH]  Intel I/O Controller Hub / PCH datasheets, "APIC Direct
//              Registers": IND (8-bit index), DAT (32-bit, DW access only),
//              EOIR at +0x40 (version 0x20 I/O APICs).
//   [VT-d]     Intel Virtualization Technology for Directed I/O, 5.1.5.1
//              "I/OxAPIC Programming": the remappable-format RTE.
//
// Only value types and constants live here; behaviour is in ioapic.h.
#ifndef IRQLAB_IOAPIC_IOAPIC_REGS_H_
#define IRQLAB_IOAPIC_IOAPIC_REGS_H_

#include <cstdint>

#include "emu/core/msi.h"

namespace irqlab::ioapic {

// --- Direct (MMIO) registers, offsets from the I/O APIC base. ---
inline constexpr uint64_t kDefaultBase = 0xFEC00000;
// Each I/O APIC decodes a 4 KiB window (the next one, if any, sits at
// base + 0x1000 on PC chipsets); only the offsets below are registers.
inline constexpr uint64_t kMmioSize = 0x1000;
inline constexpr uint64_t kIoRegSel = 0x00;  // [82093AA] 3.1.1 / [PCH] IND
inline constexpr uint64_t kIoWin = 0x10;     // [82093AA] 3.1.2 / [PCH] DAT
inline constexpr uint64_t kEoi = 0x40;       // [PCH] EOIR, version 0x20 only

// --- Indirect registers, selected by IOREGSEL bits 7:0. ---
inline constexpr uint8_t kIndexId = 0x00;   // IOAPICID, bits 27:24 R/W
inline constexpr uint8_t kIndexVer = 0x01;  // IOAPICVER, read-only
inline constexpr uint8_t kIndexArb = 0x02;  // IOAPICARB, read-only
inline constexpr uint8_t kIndexRedirBase = 0x10;  // RTE n: 0x10+2n low,
                                                  //        0x11+2n high

inline constexpr int kNumPins = 24;
inline constexpr uint8_t kIndexRedirLast = kIndexRedirBase + 2 * kNumPins - 1;
static_assert(kIndexRedirLast == 0x3F, "[82093AA] IOREDTBL0..23 = 10h..3Fh");

// IOAPICID / IOAPICARB: the 4-bit id lives in bits 27:24 ([82093AA] 3.2.1,
// 3.2.3); every other bit is reserved and reads 0.
inline constexpr uint32_t kIdMask = 0x0F000000;
inline constexpr int kIdShift = 24;

// IOAPICVER ([82093AA] 3.2.2): bits 7:0 version, 23:16 maximum redirection
// entry (number of pins - 1).
inline constexpr uint8_t kVersion11 = 0x11;  // 82093AA: no EOI register
inline constexpr uint8_t kVersion20 = 0x20;  // ICH/PCH: EOI register at +0x40
inline constexpr uint32_t VersionRegister(uint8_t version) {
  return uint32_t{version} | (uint32_t{kNumPins - 1} << 16);
}
static_assert(VersionRegister(kVersion20) == 0x00170020);

// PCI requester id the I/O APIC uses for its interrupt messages. VT-d
// platforms describe the I/O APIC in the DMAR table's device scope; F0:1F.0
// is the convention QEMU and most firmware use (the "source-id" the
// interrupt remapping unit validates, VT-d 9.3 and 5.1.5.1).
inline constexpr uint16_t kDefaultRequesterId =
    (0xF0 << 8) | (0x1F << 3) | 0;  // F0:1F.0 = 0xF0F8
static_assert(kDefaultRequesterId == 0xF0F8);

// One 64-bit redirection table entry ([82093AA] 3.2.4, Table 3.2.4;
// [VT-d] 5.1.5.1 Figure 5-11 for the remappable format).
//
//   bit      compatibility format          remappable format (bit 48 = 1)
//   7:0      vector                        vector (must match the IRTE's,
//                                            used only for EOI matching)
//   10:8     delivery mode                 000b
//   11       destination mode (1 logical)  interrupt_index[15]
//   12       delivery status (RO)          delivery status (RO)
//   13       polarity (1 = active low)     polarity
//   14       Remote IRR (RO)               Remote IRR (RO)
//   15       trigger mode (1 = level)      trigger mode (must match IRTE)
//   16       mask                          mask
//   47:17    reserved                      reserved
//   48       reserved (0)                  interrupt format = 1
//   55:49    reserved                      interrupt_index[6:0]
//   63:56    destination (APIC id, or      interrupt_index[14:7]
//              logical set)
//
// The value type only names bits; whether bits 12/14 are stored or computed
// is up to the I/O APIC (it computes them, see IoApic::ReadRte()).
class RedirectionEntry {
 public:
  static constexpr uint64_t kVectorMask = 0xFF;
  static constexpr int kDeliveryModeShift = 8;
  static constexpr uint64_t kDestModeLogical = uint64_t{1} << 11;
  static constexpr uint64_t kDeliveryStatus = uint64_t{1} << 12;
  static constexpr uint64_t kPolarityLow = uint64_t{1} << 13;
  static constexpr uint64_t kRemoteIrr = uint64_t{1} << 14;
  static constexpr uint64_t kTriggerLevel = uint64_t{1} << 15;
  static constexpr uint64_t kMask = uint64_t{1} << 16;
  static constexpr uint64_t kRemappableFormat = uint64_t{1} << 48;
  static constexpr int kIndexLowShift = 49;  // interrupt_index[14:0]
  static constexpr int kDestinationShift = 56;
  // Bits the guest cannot write ([82093AA] 3.2.4: DELIVS and Remote IRR
  // are RO).
  static constexpr uint64_t kReadOnlyBits = kDeliveryStatus | kRemoteIrr;
  // Power-on value: masked, everything else 0 ([82093AA] 3.2.4, "the mask
  // bit is set after reset").
  static constexpr uint64_t kResetValue = kMask;

  constexpr RedirectionEntry() = default;
  constexpr explicit RedirectionEntry(uint64_t raw) : raw_(raw) {}

  constexpr uint64_t raw() const { return raw_; }
  constexpr uint8_t vector() const { return raw_ & kVectorMask; }
  constexpr irqlab::DeliveryMode delivery_mode() const {
    return static_cast<irqlab::DeliveryMode>((raw_ >> kDeliveryModeShift) & 7);
  }
  constexpr bool logical() const { return raw_ & kDestModeLogical; }
  constexpr bool delivery_status() const { return raw_ & kDeliveryStatus; }
  constexpr bool active_low() const { return raw_ & kPolarityLow; }
  constexpr bool remote_irr() const { return raw_ & kRemoteIrr; }
  constexpr bool trigger_level() const { return raw_ & kTriggerLevel; }
  constexpr bool masked() const { return raw_ & kMask; }
  constexpr bool remappable() const { return raw_ & kRemappableFormat; }
  constexpr uint8_t destination() const { return raw_ >> kDestinationShift; }
  // [VT-d] 5.1.5.1: interrupt_index[15] = bit 11, [14:0] = bits 63:49.
  constexpr uint16_t interrupt_index() const {
    return static_cast<uint16_t>(((raw_ >> kIndexLowShift) & 0x7FFF) |
                                 (((raw_ >> 11) & 1) << 15));
  }

  // Whether the entry behaves as level-triggered (Remote IRR, EOI). The
  // trigger-mode bit is honoured for fixed, lowest-priority and remappable
  // entries only: [82093AA] 3.2.4 says SMI and ExtINT "require" edge
  // trigger and NMI and INIT are "treated as edge triggered, even if
  // programmed as level triggered". We treat all four as edge so that a
  // guest that programs e.g. NMI+level cannot wedge the pin behind a
  // Remote IRR that no EOI will ever clear (NMIs are not EOI'd). The
  // reserved modes 011b/110b are treated as edge for the same reason.
  constexpr bool effective_level() const {
    if (!trigger_level()) return false;
    if (remappable()) return true;
    auto mode = delivery_mode();
    return mode == irqlab::DeliveryMode::kFixed ||
           mode == irqlab::DeliveryMode::kLowestPriority;
  }

  friend constexpr bool operator==(RedirectionEntry, RedirectionEntry) =
      default;

 private:
  uint64_t raw_ = kResetValue;
};

static_assert(RedirectionEntry(0x0200000000018021).destination() == 2);
static_assert(RedirectionEntry(0x0200000000018021).vector() == 0x21);
static_assert(RedirectionEntry(0x0200000000018021).trigger_level());
static_assert(RedirectionEntry(0x0200000000018021).masked());
static_assert(RedirectionEntry(0xFFFE000000000800).interrupt_index() == 0xFFFF);

}  // namespace irqlab::ioapic

#endif  // IRQLAB_IOAPIC_IOAPIC_REGS_H_
