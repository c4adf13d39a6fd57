// The delivery chain for message-signalled interrupts. Every stage that can
// receive an MSI (the interrupt remapping unit, the APIC bus, a host-side
// vfio model) is an MsiSink; decorators such as VT-d interrupt remapping wrap
// the next sink:
//
//   device --Signal()--> [IOMMU decorator] --Signal()--> ApicBus --> LocalApic
#ifndef IRQLAB_EMU_CORE_MSI_SINK_H_
#define IRQLAB_EMU_CORE_MSI_SINK_H_

#include <string_view>

#include "emu/core/msi.h"

namespace irqlab {

// What became of one interrupt message, returned by every stage of the
// delivery chain so that the interrupt accounting (emu/core/irq_ledger.h) can
// prove nothing vanished. Every stage that ends a message's journey picks
// exactly one; a stage that forwards the message returns its downstream's.
enum class [[nodiscard]] MsiOutcome : uint8_t {
  // A local APIC took it: a new IRR bit, or an NMI / INIT / start-up.
  kAccepted,
  // Every target already held the vector in its IRR: the IRR holds one
  // interrupt per vector, later ones collapse into it (SDM 11.8.4).
  kCoalesced,
  // Written to a posted-interrupt descriptor's PIR (VT-d 5.2.3); the
  // notification event (if any) is its own message.
  kPosted,
  // Blocked by interrupt remapping with a fault (VT-d 5.1.4.1, 7.1): recorded
  // in the fault recording registers, or counted as an overflow (PFO), or
  // not recorded because the IRTE says FPD; always traced as IR_FAULT. Also
  // a write to an MSI doorbell the IOMMU does not map, where MSI writes are
  // translated (pci/vfio_container.h; a DMA fault, traced as DMA_FAULT).
  kFaulted,
  // Discarded by an architectural rule, traced with the rule: outside the
  // 0xFEExxxxx window, remappable format without remapping, reserved delivery
  // mode, no APIC matches the destination, the target APIC is disabled,
  // illegal vector 0-15 (ESR), SMI / ExtINT.
  kDiscarded,
  // Dropped by a fault the scenario injected (FAULT_INJECT in the trace).
  kInjectedDrop,
  // None of the above: the message vanished. Always an emulator defect;
  // the interrupt accounting reports it as a violation.
  kLost,
};
inline constexpr int kNumMsiOutcomes = 7;

// "accepted", "coalesced", "posted", "faulted", "discarded",
// "dropped (injected)", "lost".
std::string_view MsiOutcomeName(MsiOutcome outcome);

// The outcome of a message that reached several local APICs: the best one.
constexpr MsiOutcome CombineOutcomes(MsiOutcome a, MsiOutcome b) {
  return static_cast<uint8_t>(a) < static_cast<uint8_t>(b) ? a : b;
}

class MsiSink {
 public:
  virtual ~MsiSink() = default;
  // Delivers one interrupt message (a posted memory write: no completion is
  // returned to the device). Never fails from the caller's point of view:
  // a message that cannot be delivered is faulted or dropped by the sink and
  // traced with the reason. The result says which (devices ignore it; the
  // interrupt accounting records it).
  virtual MsiOutcome Signal(const MsiMessage& message) = 0;

  // Delivers an interrupt whose destination is a full 32-bit x2APIC id, as
  // the VT-d interrupt remapping unit produces with IRTA_REG.EIME=1 (VT-d
  // 5.1.4, 9.10: IRTE DST[31:0]); a compatibility-format MSI can only carry
  // 8 bits (SDM 11.11.1). `message` is a compatibility-format message with
  // every field set (vector, delivery/destination/trigger mode, redirection
  // hint) and destination[7:0] in address bits 19:12; `destination` is the
  // whole id. In x2APIC mode 0xFF is APIC id 255, not a broadcast; a logical
  // destination is cluster[31:16] | bitmap[15:0] (SDM 11.12.10).
  //
  // Sinks that understand 32-bit destinations (the APIC bus) override this.
  // The default folds the id into the "extended destination ID" convention
  // (address bits 11:5 = id bits 14:8, see MsiMessage) when it fits in 15
  // bits and is physical, and otherwise passes `message` on unchanged (only
  // the low 8 bits survive): callers trace the full id before calling.
  virtual MsiOutcome SignalX2Apic(const MsiMessage& message, uint32_t destination) {
    MsiMessage folded = message;
    if (!message.DestinationModeLogical() && destination <= 0x7FFF) {
      folded.address = (message.address & ~uint64_t{0xFFFE0}) |
                       (uint64_t{destination & 0xFF} << 12) |
                       (uint64_t{(destination >> 8) & 0x7F} << 5);
    }
    return Signal(folded);
  }
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CORE_MSI_SINK_H_
