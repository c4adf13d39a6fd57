#include "ioapic/ioapic.h"

#include <string>

#include "absl/strings/str_format.h"

namespace irqlab {

using ioapic::RedirectionEntry;

std::string_view RouteUpdateOrderName(RouteUpdateOrder order) {
  switch (order) {
    case RouteUpdateOrder::kStaleBeforeService:
      return "stale-before-service";
    case RouteUpdateOrder::kUpdateBeforeService:
      return "update-before-service";
  }
  return "invalid";
}

absl::Status ValidateIoApicConfig(const IoApicConfig& config) {
  if (config.version != ioapic::kVersion11 &&
      config.version != ioapic::kVersion20) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "IoApicConfig.version: 0x%x is not a modelled I/O APIC version "
        "(0x11 = 82093AA without EOI register, 0x20 = with EOI register)",
        config.version));
  }
  if (config.id > 0xF) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "IoApicConfig.id: %u does not fit the 4-bit I/O APIC ID (0..15)",
        config.id));
  }
  if (config.base % ioapic::kMmioSize != 0 ||
      config.base > (uint64_t{1} << 32) - ioapic::kMmioSize) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "IoApicConfig.base: 0x%x must be 4 KiB aligned and the 4 KiB "
        "register window must lie below 4 GiB",
        config.base));
  }
  switch (config.route_update_order) {
    case RouteUpdateOrder::kStaleBeforeService:
    case RouteUpdateOrder::kUpdateBeforeService:
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "IoApicConfig.route_update_order: %d is not a RouteUpdateOrder",
      static_cast<int>(config.route_update_order)));
}

absl::StatusOr<std::unique_ptr<IoApic>> IoApic::Create(
    const IoApicConfig& config, MsiSink* sink, Tracer* tracer,
    const Clock* clock) {
  absl::Status status = ValidateIoApicConfig(config);
  if (!status.ok()) return status;
  return std::unique_ptr<IoApic>(new IoApic(config, sink, tracer, clock));
}

IoApic::IoApic(const IoApicConfig& config, MsiSink* sink, Tracer* tracer,
               const Clock* clock)
    : config_(config),
      sink_(sink),
      tracer_(tracer),
      clock_(clock),
      order_(config.route_update_order) {
  Reset();
}

void IoApic::Reset() {
  id_ = config_.id & 0xF;
  io_regsel_ = 0;
  for (Pin& p : pins_) {
    p.rte = RedirectionEntry(RedirectionEntry::kResetValue);
    p.remote_irr = false;
  }
  // The hypervisor creates one route per GSI when the I/O APIC is realized
  // (QEMU's ioapic_realize() adds an MSI route for every pin); we fill it
  // from the reset RTEs: fee00000/00000000, i.e. vector 0 to APIC 0.
  route_generation_ = 0;
  for (int pin = 0; pin < ioapic::kNumPins; ++pin) {
    route_cache_[pin] = IoApicRoute{RteMessage(pin), 0};
  }
}

// --- Register access. ---

uint64_t IoApic::Read(const AccessOrigin& /*origin*/, uint64_t offset,
                      unsigned size) {
  if (offset == ioapic::kIoRegSel && (size == 1 || size == 4)) {
    return io_regsel_;
  }
  if (offset == ioapic::kIoWin && size == 4) return ReadIndirect(io_regsel_);
  if (offset == ioapic::kEoi && size == 4 &&
      config_.version == ioapic::kVersion20) {
    return 0;  // EOIR is write-only.
  }
  return AllOnes(size);
}

void IoApic::Write(const AccessOrigin& /*origin*/, uint64_t offset,
                   unsigned size, uint64_t value) {
  // The order of this MMIO write: the configured one, unless it is an RTE
  // write that OverrideNextRteWriteOrder() turned stale.
  order_ = config_.route_update_order;
  if (stale_rte_writes_ > 0 && offset == ioapic::kIoWin && size == 4 &&
      io_regsel_ >= ioapic::kIndexRedirBase &&
      io_regsel_ <= ioapic::kIndexRedirLast) {
    --stale_rte_writes_;
    order_ = RouteUpdateOrder::kStaleBeforeService;
  }
  if (offset == ioapic::kIoRegSel && (size == 1 || size == 4)) {
    io_regsel_ = value & 0xFF;
  } else if (offset == ioapic::kIoWin && size == 4) {
    WriteIndirect(io_regsel_, static_cast<uint32_t>(value));
  } else if (offset == ioapic::kEoi && size == 4 &&
             config_.version == ioapic::kVersion20) {
    // [PCH] EOIR: "the I/O APIC will check the lower 8 bits written to this
    // register, and compare it with the vector field for each entry ...
    // When a match is found, the Remote_IRR bit ... will be cleared".
    Eoi(value & 0xFF, "register");
  }
  // Anything else: no register there, the write is ignored.

  // Pre-fix QEMU refreshed the routes at the end of every ioapic_mem_write(),
  // i.e. *after* an RTE write had already serviced the pin (seed 003).
  if (order_ == RouteUpdateOrder::kStaleBeforeService) {
    RefreshRoutes();
  }
  order_ = config_.route_update_order;
}

uint32_t IoApic::ReadIndirect(uint8_t index) const {
  switch (index) {
    case ioapic::kIndexId:
    case ioapic::kIndexArb:  // Arbitration id mirrors the ID (not modelled).
      return uint32_t{id_} << ioapic::kIdShift;
    case ioapic::kIndexVer:
      return ioapic::VersionRegister(config_.version);
    default:
      break;
  }
  if (index >= ioapic::kIndexRedirBase && index <= ioapic::kIndexRedirLast) {
    int pin = (index - ioapic::kIndexRedirBase) / 2;
    bool high = (index - ioapic::kIndexRedirBase) & 1;
    return static_cast<uint32_t>(ReadRte(pin) >> (high ? 32 : 0));
  }
  return 0;  // Unknown index.
}

void IoApic::WriteIndirect(uint8_t index, uint32_t value) {
  if (index == ioapic::kIndexId) {
    // [82093AA] 3.2.1: bits 27:24 R/W, the rest reserved.
    id_ = (value & ioapic::kIdMask) >> ioapic::kIdShift;
    return;
  }
  if (index >= ioapic::kIndexRedirBase && index <= ioapic::kIndexRedirLast) {
    int pin = (index - ioapic::kIndexRedirBase) / 2;
    bool high = (index - ioapic::kIndexRedirBase) & 1;
    WriteRte(pin, high, value);
  }
  // VER and ARB are read-only; unknown indices ignore writes.
}

void IoApic::WriteRte(int pin, bool high_dword, uint32_t value) {
  Pin& p = pins_[pin];
  const uint64_t old_raw = ReadRte(pin);
  uint64_t raw = p.rte.raw();
  if (high_dword) {
    raw = (raw & 0x00000000FFFFFFFFull) | (uint64_t{value} << 32);
  } else {
    raw = (raw & 0xFFFFFFFF00000000ull) | value;
  }
  // [82093AA] 3.2.4: Delivery Status and Remote IRR are read-only.
  p.rte = RedirectionEntry(raw & ~RedirectionEntry::kReadOnlyBits);
  // Remote IRR is defined for level entries only; rewriting an entry as
  // edge clears it. Linux relies on this to "EOI" version-0x11 I/O APICs
  // that have no EOI register (io_apic.c, __eoi_ioapic_pin(): set edge,
  // then restore level); QEMU does the same (ioapic_fix_edge_remote_irr()).
  if (!p.rte.effective_level()) p.remote_irr = false;

  if (tracing()) {
    Trace(trace::IOAPIC_RTE,
          absl::StrFormat("pin=%d %s rte=0x%016x (was 0x%016x)%s", pin,
                          high_dword ? "high" : "low", ReadRte(pin), old_raw,
                          p.rte.masked() ? " masked" : ""),
          p.rte.vector(),
          ioapic::kIndexRedirBase + 2 * pin + (high_dword ? 1 : 0),
          ReadRte(pin));
  }

  // THE ORDERING (seed 003). An RTE write services the pin it changed: an
  // asserted, unmasked level entry with Remote IRR clear is delivered now
  // (this is how an unmask re-evaluates a pending level interrupt). The
  // delivery goes through route_cache_[pin]. In the fixed order the cache is
  // refreshed from the new RTE contents first. In the pre-fix order it is
  // refreshed only at the end of the MMIO write (see Write()), so the unmask
  // that follows a masked destination change delivers with the route that
  // was installed before the entry was masked: the old CPU.
  if (order_ == RouteUpdateOrder::kUpdateBeforeService) {
    RefreshRoutes();
  }
  ServiceLevel(pin);
}

// --- Interrupt logic. ---

bool IoApic::asserted(int pin) const {
  const Pin& p = pins_[pin];
  return p.input_high != p.rte.active_low();
}

uint64_t IoApic::ReadRte(int pin) const {
  const Pin& p = pins_[pin];
  uint64_t raw = p.rte.raw();
  if (p.remote_irr) raw |= RedirectionEntry::kRemoteIrr;
  // Delivery status: "send pending" for an asserted level interrupt held
  // back by the mask (see the file comment in ioapic.h).
  if (p.rte.effective_level() && p.rte.masked() && !p.remote_irr &&
      asserted(pin)) {
    raw |= RedirectionEntry::kDeliveryStatus;
  }
  return raw;
}

MsiMessage IoApic::RteMessage(int pin) const {
  const RedirectionEntry e = pins_[pin].rte;
  if (e.remappable()) {
    // VT-d 5.1.5.1: the I/OxAPIC sends a remappable-format request whose
    // handle is the RTE's interrupt_index (bits 63:49 -> address 19:5,
    // bit 11 -> address bit 2) with SHV = 0, so the data (subhandle) is
    // unused and sent as 0. Vector and trigger mode stay in the I/O APIC
    // (EOI matching and Remote IRR); the IRTE supplies the real ones.
    return MsiMessage::Remappable(e.interrupt_index(), /*shv=*/false,
                                  /*subhandle=*/0, config_.requester_id);
  }
  // SDM 11.11: address 0xFEE00000 | dest << 12 | dest_mode << 2; data
  // vector | delivery_mode << 8 | level_assert << 14 | trigger << 15.
  MsiCompatOptions options;
  options.delivery_mode = e.delivery_mode();
  options.logical = e.logical();
  options.trigger_level = e.effective_level();
  options.level_assert = e.effective_level();
  return MsiMessage::Compat(e.destination(), e.vector(), config_.requester_id,
                            options);
}

void IoApic::RefreshRoutes() {
  for (int pin = 0; pin < ioapic::kNumPins; ++pin) {
    // Masked entries are skipped, as in QEMU's ioapic_update_kvm_routes():
    // a masked pin is never delivered, so its route is left as it was. That
    // is what makes the seed-003 ordering observable: the destination
    // change written while masked reaches the route only at the next
    // refresh after the unmask.
    if (pins_[pin].rte.masked()) continue;
    MsiMessage message = RteMessage(pin);
    IoApicRoute& route = route_cache_[pin];
    if (message == route.message) continue;
    route.message = message;
    route.generation = ++route_generation_;
    if (tracing()) {
      Trace(trace::ROUTE_UPDATE,
            absl::StrFormat("pin=%d gen=%d order=%s %s", pin,
                            route.generation,
                            std::string(RouteUpdateOrderName(order_)),
                            message.ToString()),
            pins_[pin].rte.vector(), message.address, message.data);
    }
  }
}

void IoApic::SetLevel(int pin, bool high) {
  if (pin < 0 || pin >= ioapic::kNumPins) return;
  Pin& p = pins_[pin];
  const bool was_asserted = asserted(pin);
  p.input_high = high;
  const bool now_asserted = asserted(pin);

  if (p.rte.effective_level()) {
    // [82093AA] 3.2.4 bit 16: "Level-asserts or negates occurring on a
    // masked level-sensitive pin are also ignored and have no side effects"
    // -- but the level stays on the wire and is seen when unmasked.
    if (now_asserted && !was_asserted && p.rte.masked() && tracing()) {
      Trace(trace::IOAPIC_MASKED,
            absl::StrFormat("pin=%d level asserted while masked: pending",
                            pin),
            p.rte.vector());
    }
    // Re-asserting while Remote IRR is set does nothing (coalescing).
    ServiceLevel(pin);
    return;
  }
  if (!now_asserted || was_asserted) return;  // not a rising edge
  if (p.rte.masked()) {
    // [82093AA] 3.2.4 bit 16: "Edge-sensitive interrupts signaled on a
    // masked interrupt pin are ignored (i.e., not delivered or held
    // pending)".
    if (tracing()) {
      Trace(trace::IOAPIC_MASKED,
            absl::StrFormat("pin=%d edge while masked: lost", pin),
            p.rte.vector());
    }
    return;
  }
  Deliver(pin);
}

void IoApic::EndOfInterrupt(uint8_t vector) { Eoi(vector, "broadcast"); }

void IoApic::Eoi(uint8_t vector, std::string_view source) {
  bool matched = false;
  for (int pin = 0; pin < ioapic::kNumPins; ++pin) {
    Pin& p = pins_[pin];
    if (!p.remote_irr || p.rte.vector() != vector) continue;
    matched = true;
    // [82093AA] 3.2.4 bit 14: "The Remote IRR bit is set to 0 when an EOI
    // message with a matching interrupt vector is received".
    p.remote_irr = false;
    if (tracing()) {
      Trace(trace::IOAPIC_EOI,
            absl::StrFormat("pin=%d source=%s remote-irr cleared%s", pin,
                            std::string(source),
                            asserted(pin) ? ", line still asserted" : ""),
            vector);
    }
    // Still asserted and unmasked: deliver again.
    ServiceLevel(pin);
  }
  if (!matched && tracing()) {
    Trace(trace::IOAPIC_EOI,
          absl::StrFormat("source=%s no entry with this vector has Remote IRR",
                          std::string(source)),
          vector);
  }
}

void IoApic::ServiceLevel(int pin) {
  const Pin& p = pins_[pin];
  if (p.rte.effective_level() && !p.rte.masked() && !p.remote_irr &&
      asserted(pin)) {
    Deliver(pin);
  }
}

void IoApic::Deliver(int pin) {
  Pin& p = pins_[pin];
  // [82093AA] 3.2.4 bit 14: Remote IRR is set when the local APIC accepts
  // the level interrupt. Our message is a posted write with no acceptance
  // reply, so it is set on send (also when an IOMMU later blocks it: the
  // guest then sees a stuck Remote IRR, as on hardware with a lost message).
  // Set before Signal() so the state is consistent if the sink inspects it.
  if (p.rte.effective_level()) p.remote_irr = true;
  ++delivery_count_;
  const IoApicRoute& route = route_cache_[pin];
  // Copy: the sink may not call back, but the message must not alias state.
  const MsiMessage message = route.message;
  if (tracing()) {
    std::string detail = absl::StrFormat(
        "pin=%d gen=%d %s%s", pin, route.generation,
        p.rte.effective_level() ? "level" : "edge",
        sink_ == nullptr ? " no sink: dropped" : "");
    const MsiMessage fresh = RteMessage(pin);
    if (fresh != message) {
      // The delivery used a route that no longer matches the RTE: exactly
      // the seed-003 misdelivery. Say so in the trace.
      absl::StrAppendFormat(&detail, " STALE-ROUTE rte-says=%08x/%08x",
                            fresh.address, fresh.data);
    }
    Trace(trace::IOAPIC_DELIVER, detail, p.rte.vector(), message.address,
          message.data);
  }
  // The outcome is the accounting's business: the machine puts an
  // AccountingMsiSink (emu/core/irq_ledger.h) in front of sink_.
  if (sink_ != nullptr) static_cast<void>(sink_->Signal(message));
}

void IoApic::Trace(Stage stage, std::string_view detail, int vector,
                   uint64_t address, uint64_t data) const {
  tracer_->Emit(clock_ != nullptr ? clock_->Now() : 0, stage, /*cpu=*/-1,
                detail, vector, address, data, config_.requester_id);
}

}  // namespace irqlab
