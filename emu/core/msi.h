// MsiMessage: one message-signalled interrupt as it travels from a device to
// the interrupt remapping unit / APIC bus: a 32-bit (DWORD) memory write of
// `data` to `address`, tagged with the requester id of the device that
// issued it.
//
// Two address/data formats share the 0xFEExxxxx window, told apart by address
// bit 4 ("Interrupt Format"):
//
// Compatibility format (Intel SDM vol. 3, 11.11.1 "Message Address Register
// Format" and 11.11.2 "Message Data Register Format"; VT-d spec 5.1.2.1):
//   address 31:20  0xFEE
//           19:12  destination APIC id
//           11:5   reserved by the SDM; see ExtendedDestinationId()
//           4      interrupt format = 0
//           3      redirection hint (RH)
//           2      destination mode (DM): 0 physical, 1 logical
//           1:0    don't care
//   data    15     trigger mode: 0 edge, 1 level
//           14     level: 1 assert (meaningful for level trigger only)
//           13:11  reserved
//           10:8   delivery mode
//           7:0    vector
//
// Remappable format (VT-d spec 5.1.2.2 "Interrupt Requests in Remappable
// Format", programmed per 5.1.5.2 "MSI and MSI-X Register Programming"):
//   address 31:20  0xFEE
//           19:5   handle[14:0]
//           4      interrupt format = 1
//           3      SHV (subhandle valid)
//           2      handle[15]
//           1:0    don't care
//   data    31:16  reserved (must be 0)
//           15:0   subhandle (used only when SHV = 1)
//   interrupt_index = handle + (SHV ? subhandle : 0)
//
// Not modelled here: what happens to the message (IOMMU, APIC bus); this is a
// value type with decoders and builders only.
//
// Example:
//
//   MsiMessage guest = MsiMessage::Compat(/*dest_apic_id=*/0, 0x20, rid);
//   MsiMessage host = MsiMessage::Remappable(/*handle=*/0x2b, /*shv=*/true,
//                                            /*subhandle=*/0, rid);
//   host.ToString();  // "fee00578/00000000 rid=02:00.0 (remappable handle 0x2b)"
#ifndef IRQLAB_EMU_CORE_MSI_H_
#define IRQLAB_EMU_CORE_MSI_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace irqlab {

// Delivery mode encoding shared by MSI data bits 10:8, IOAPIC RTE bits 10:8
// and the ICR (SDM vol. 3, 11.6.1 and 11.11.2). StartUp (110b) exists only in
// the ICR; in an MSI it is reserved.
enum class DeliveryMode : uint8_t {
  kFixed = 0,
  kLowestPriority = 1,
  kSmi = 2,
  kReserved3 = 3,
  kNmi = 4,
  kInit = 5,
  kReserved6 = 6,  // StartUp in the ICR; reserved for MSI/RTE.
  kExtInt = 7,
};

// "fixed", "lowest-priority", "smi", "reserved-3", "nmi", "init",
// "reserved-6", "extint".
std::string_view DeliveryModeName(DeliveryMode mode);

// Optional fields of a compatibility-format message (the defaults give a
// fixed, physical, edge-triggered interrupt, as Linux programs one).
struct MsiCompatOptions {
  DeliveryMode delivery_mode = DeliveryMode::kFixed;
  bool logical = false;           // address bit 2
  bool redirection_hint = false;  // address bit 3
  bool trigger_level = false;     // data bit 15
  bool level_assert = false;      // data bit 14
};

struct MsiMessage {
  // Address-window constants (SDM vol. 3, 11.11.1).
  static constexpr uint64_t kWindowBase = 0xFEE00000;
  static constexpr uint64_t kWindowSize = 0x100000;
  // Data bits 31:16, reserved in the remappable format (VT-d 5.1.2.2); set
  // bits there fault with reason 0x20.
  static constexpr uint32_t kRemappableDataReservedMask = 0xFFFF0000;

  // The requester id is mandatory: there is no default constructor.
  constexpr MsiMessage(uint64_t address, uint32_t data, uint16_t requester_id)
      : address(address), data(data), requester_id(requester_id) {}

  // Builds a compatibility-format message to APIC id `dest_apic_id`.
  // Ids 0..0xFF go in address bits 19:12; for ids 0x100..0x7FFF bits 14:8
  // also go in address bits 11:5 (the extended destination id convention,
  // see ExtendedDestinationId()). Id bits above 14 are dropped.
  static MsiMessage Compat(uint32_t dest_apic_id, uint8_t vector,
                           uint16_t requester_id,
                           const MsiCompatOptions& options = {});
  // Builds a remappable-format message (VT-d 5.1.5.2).
  static MsiMessage Remappable(uint16_t handle, bool shv, uint16_t subhandle,
                               uint16_t requester_id);

  // --- Both formats. ---
  // True iff the write targets the interrupt window 0xFEE00000-0xFEEFFFFF:
  // address bits 63:20 == 0xFEE (a 64-bit address with any upper bit set is
  // a DMA write, not an interrupt).
  bool InMsiWindow() const { return (address >> 20) == 0xFEE; }
  // Address bit 4, Interrupt Format (VT-d 5.1.2): 1 = remappable.
  bool IsRemappable() const { return (address >> 4) & 1; }

  // --- Compatibility format (SDM 11.11). ---
  // Address bits 19:12.
  uint8_t DestinationId() const { return (address >> 12) & 0xFF; }
  // The 15-bit destination of the non-architectural "extended destination
  // ID" convention (used by KVM/Hyper-V/Xen guests with >255 CPUs and no
  // interrupt remapping; Linux's "x86/apic: Support 15 bits of APIC ID in
  // MSI"): address bits 11:5 are APIC id bits 14:8, bits 19:12 are id bits
  // 7:0. Architecturally bits 11:5 are reserved (SDM 11.11.1) and real
  // hardware ignores them; the APIC bus chooses whether to honour this.
  uint32_t ExtendedDestinationId() const {
    return DestinationId() | (((address >> 5) & 0x7F) << 8);
  }
  // Address bit 2: logical destination mode.
  bool DestinationModeLogical() const { return (address >> 2) & 1; }
  // Address bit 3: redirection hint (lowest-priority among destinations).
  bool RedirectionHint() const { return (address >> 3) & 1; }
  // Data bits 7:0.
  uint8_t Vector() const { return data & 0xFF; }
  // Data bits 10:8.
  irqlab::DeliveryMode DeliveryMode() const {
    return static_cast<irqlab::DeliveryMode>((data >> 8) & 7);
  }
  // Data bit 14: assert (1) / deassert (0).
  bool LevelAssert() const { return (data >> 14) & 1; }
  // Data bit 15: level (1) / edge (0) triggered.
  bool TriggerLevel() const { return (data >> 15) & 1; }

  // --- Remappable format (VT-d 5.1.2.2). ---
  // handle[14:0] = address bits 19:5, handle[15] = address bit 2.
  uint16_t Handle() const {
    return static_cast<uint16_t>(((address >> 5) & 0x7FFF) |
                                 (((address >> 2) & 1) << 15));
  }
  // Address bit 3: subhandle valid.
  bool Shv() const { return (address >> 3) & 1; }
  // Data bits 15:0.
  uint16_t Subhandle() const { return data & 0xFFFF; }
  // The IRTE index: handle + subhandle if SHV, else handle (VT-d 5.1.2.2).
  // May exceed 16 bits (up to 0x1FFFE); the IOMMU checks it against the
  // table size (fault 0x21).
  uint32_t RemappedIndex() const {
    return uint32_t{Handle()} + (Shv() ? uint32_t{Subhandle()} : 0);
  }
  // Reserved bits that are set in a remappable-format request: data bits
  // 31:16 (VT-d 5.1.2.2). Address bits 1:0 are "don't care", not reserved,
  // and address bits 63:32 are covered by InMsiWindow(). Non-zero means the
  // remapping unit faults with reason 0x20 (VT-d 5.1.4.1, "Detected reserved
  // fields in the decoded interrupt-remapped request").
  uint32_t RemappableReservedBits() const {
    return data & kRemappableDataReservedMask;
  }

  // "fee00578/00000000 rid=02:00.0 (remappable handle 0x2b)". The address is
  // printed with 8 hex digits, or 16 if it does not fit in 32 bits. The
  // parenthesis decodes the format:
  //   (compat dest 0x1 vec 0x41 fixed physical edge)
  //   (compat dest 0x1 vec 0x41 lowest-priority logical level assert rh)
  //   (compat ext-dest 0x101 vec 0x41 fixed physical edge) bits 11:5 != 0
  //   (remappable handle 0x2b subhandle 0x3 index 0x2e)   SHV=1, subhandle!=0
  //   (remappable handle 0x2b reserved 0xffff0000)        reserved bits set
  //   (not an interrupt)                                  outside the window
  std::string ToString() const;

  friend bool operator==(const MsiMessage&, const MsiMessage&) = default;

  uint64_t address;
  uint32_t data;
  uint16_t requester_id;  // PCI bus[15:8] device[7:3] function[2:0]
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CORE_MSI_H_
