#include "emu/core/msi.h"

#include "absl/strings/str_format.h"
#include "emu/core/msi_sink.h"
#include "emu/core/trace.h"

namespace irqlab {

std::string_view MsiOutcomeName(MsiOutcome outcome) {
  switch (outcome) {
    case MsiOutcome::kAccepted: return "accepted";
    case MsiOutcome::kCoalesced: return "coalesced";
    case MsiOutcome::kPosted: return "posted";
    case MsiOutcome::kFaulted: return "faulted";
    case MsiOutcome::kDiscarded: return "discarded";
    case MsiOutcome::kInjectedDrop: return "dropped (injected)";
    case MsiOutcome::kLost: return "lost";
  }
  return "lost";
}

std::string_view DeliveryModeName(DeliveryMode mode) {
  switch (mode) {
    case DeliveryMode::kFixed:
      return "fixed";
    case DeliveryMode::kLowestPriority:
      return "lowest-priority";
    case DeliveryMode::kSmi:
      return "smi";
    case DeliveryMode::kReserved3:
      return "reserved-3";
    case DeliveryMode::kNmi:
      return "nmi";
    case DeliveryMode::kInit:
      return "init";
    case DeliveryMode::kReserved6:
      return "reserved-6";
    case DeliveryMode::kExtInt:
      return "extint";
  }
  return "invalid";
}

MsiMessage MsiMessage::Compat(uint32_t dest_apic_id, uint8_t vector,
                              uint16_t requester_id,
                              const MsiCompatOptions& options) {
  uint64_t address = kWindowBase | (uint64_t{dest_apic_id & 0xFF} << 12) |
                     (uint64_t{(dest_apic_id >> 8) & 0x7F} << 5) |
                     (uint64_t{options.redirection_hint} << 3) |
                     (uint64_t{options.logical} << 2);
  uint32_t data = vector |
                  (uint32_t{static_cast<uint8_t>(options.delivery_mode)} & 7)
                      << 8 |
                  uint32_t{options.level_assert} << 14 |
                  uint32_t{options.trigger_level} << 15;
  return MsiMessage(address, data, requester_id);
}

MsiMessage MsiMessage::Remappable(uint16_t handle, bool shv,
                                  uint16_t subhandle, uint16_t requester_id) {
  uint64_t address = kWindowBase | (uint64_t{handle & 0x7FFFu} << 5) |
                     (uint64_t{1} << 4) | (uint64_t{shv} << 3) |
                     (uint64_t{(handle >> 15) & 1u} << 2);
  return MsiMessage(address, shv ? subhandle : 0, requester_id);
}

std::string MsiMessage::ToString() const {
  std::string out = address <= 0xFFFFFFFF
                        ? absl::StrFormat("%08x", address)
                        : absl::StrFormat("%016x", address);
  absl::StrAppendFormat(&out, "/%08x rid=%s (", data,
                        FormatRequesterId(requester_id));
  if (!InMsiWindow()) {
    out += "not an interrupt";
  } else if (IsRemappable()) {
    absl::StrAppendFormat(&out, "remappable handle 0x%x", Handle());
    if (Shv() && Subhandle() != 0) {
      absl::StrAppendFormat(&out, " subhandle 0x%x index 0x%x", Subhandle(),
                            RemappedIndex());
    }
    if (RemappableReservedBits() != 0) {
      absl::StrAppendFormat(&out, " reserved 0x%x", RemappableReservedBits());
    }
  } else {
    if (ExtendedDestinationId() > 0xFF) {
      absl::StrAppendFormat(&out, "compat ext-dest 0x%x", ExtendedDestinationId());
    } else {
      absl::StrAppendFormat(&out, "compat dest 0x%x", DestinationId());
    }
    absl::StrAppendFormat(&out, " vec 0x%x %s %s %s", Vector(),
                          DeliveryModeName(DeliveryMode()),
                          DestinationModeLogical() ? "logical" : "physical",
                          TriggerLevel() ? "level" : "edge");
    if (LevelAssert()) out += " assert";
    if (RedirectionHint()) out += " rh";
  }
  out += ")";
  return out;
}

}  // namespace irqlab
