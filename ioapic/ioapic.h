// IoApic: an 82093AA-style I/O APIC (24 pins) as a pure state machine, with
// the hypervisor's MSI route cache of a "split irqchip" VMM in front of its
// output.
//
// Hardware followed: Intel 82093AA datasheet section 3 (registers, RTE
// semantics), the ICH/PCH "APIC direct registers" for the version-0x20 EOI
// register, Intel SDM vol. 3 ch. 11 (11.11: the message the RTE becomes),
// VT-d 5.1.5.1 (remappable-format RTEs). Register layouts: ioapic_regs.h.
//
// What it does:
//   * MMIO: IOREGSEL (+0x00), IOWIN (+0x10), EOI (+0x40, version 0x20
//     only). Indirect registers ID (0x00), VER (0x01), ARB (0x02), RTEs
//     (0x10-0x3F).
//   * Pins are electrical inputs (IrqLineTarget::SetLevel). A pin is
//     asserted when level XOR (RTE polarity == active low).
//   * Edge entries deliver once per deasserted->asserted transition while
//     unmasked. Masked edges are lost, not latched ([82093AA] 3.2.4, bit 16:
//     "Edge-sensitive interrupts signaled on a masked interrupt pin are
//     ignored (i.e., not delivered or held pending)").
//   * Level entries deliver while asserted, unmasked and Remote IRR clear,
//     and set Remote IRR on delivery ([82093AA] 3.2.4, bit 14). An EOI
//     (LAPIC broadcast via EndOfInterrupt(), or the EOI register) for the
//     entry's vector clears Remote IRR; if the pin is still asserted and
//     unmasked the interrupt is delivered again at once. Unmasking an
//     asserted level entry delivers it. Rewriting an entry as edge clears
//     its Remote IRR (what Linux's io_apic.c relies on for version-0x11
//     parts without an EOI register).
//   * Output: every interrupt is an MsiMessage carrying the I/O APIC's
//     requester id, sent to an MsiSink (the APIC bus, or the IOMMU
//     decorator). Compatibility RTEs become compatibility-format messages
//     (SDM 11.11); remappable RTEs become remappable-format messages with
//     SHV = 0 (VT-d 5.1.5.1).
//
// The route cache (seed 003, ARCHITECTURE.md). A userspace I/O APIC under a split
// irqchip does not send its messages itself: each pin (GSI) has an MSI route
// in the hypervisor's routing table and the I/O APIC triggers "GSI n", which
// the hypervisor delivers with whatever message the route holds. We model
// that table as route_cache_[pin]:
//   * RefreshRoutes() recomputes the route of every *unmasked* pin from its
//     RTE (QEMU's ioapic_update_kvm_routes(): masked entries are skipped,
//     their route stays as it was). Changed entries get a new generation
//     number and a ROUTE_UPDATE trace event.
//   * Every delivery sends route_cache_[pin].message, never the RTE.
//   * On an RTE write the order of "refresh routes" and "service the pin"
//     is RouteUpdateOrder:
//       kStaleBeforeService  the pre-fix QEMU order: the RTE write services
//                            the pin first (delivering a pending level
//                            interrupt through the old route) and routes
//                            are refreshed at the end of the MMIO write
//                            (QEMU called ioapic_update_kvm_routes() at the
//                            end of every ioapic_mem_write()).
//       kUpdateBeforeService the fix (QEMU commit "hw/intc/ioapic: Update
//                            KVM routes before redelivering IRQ, on RTE
//                            update"): routes are refreshed right before the
//                            RTE write services the pin.
//     The seed-003 sequence: a level interrupt routed to APIC 2 is pending
//     while masked; the guest writes destination 0 into the high dword
//     (masked: the route is *not* refreshed, in either order), then clears
//     the mask in the low dword. That unmask write services the pin: in
//     kStaleBeforeService the route still says APIC 2 and the interrupt is
//     misdelivered there; in kUpdateBeforeService the refresh (now that the
//     pin is unmasked) installs APIC 0 first.
//
// Delivery status (RTE bit 12, RO). The datasheet defines it as "Send
// Pending: the interrupt has been injected but its delivery is temporarily
// held up". Our message send is instantaneous and never held up, so we use
// the bit to expose the one case where an interrupt is held: a level entry
// whose pin is asserted while the entry is masked and Remote IRR is clear
// (i.e. an interrupt that will be sent as soon as the entry is unmasked).
// It reads 0 in every other case, including while Remote IRR is set (the
// interrupt was sent; that matches the RTE value 0x1c021 in seed 003's
// trace).
//
// Not modelled: the APIC serial bus and its arbitration (ARB just mirrors
// the ID), the pin assertion register (PRQ = 0 in VER), the "extended
// destination id" in RTE bits 55:49 (compatibility bits 55:17 are stored
// but ignored), edge detection caused by a polarity change in an RTE write
// (polarity changes re-evaluate level entries but never create an edge).
//
// Thread-safety: none; the machine runs on one host thread.
#ifndef IRQLAB_IOAPIC_IOAPIC_H_
#define IRQLAB_IOAPIC_IOAPIC_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "emu/core/check.h"
#include "emu/core/clock.h"
#include "emu/core/io.h"
#include "emu/core/irq_line.h"
#include "emu/core/msi.h"
#include "emu/core/msi_sink.h"
#include "emu/core/trace.h"
#include "ioapic/ioapic_regs.h"

namespace irqlab {

// Order of "refresh the cached MSI routes" and "service the pin" on an RTE
// write (see the file comment and seed 003).
enum class RouteUpdateOrder {
  kStaleBeforeService,   // pre-fix QEMU: misdelivers to the old route
  kUpdateBeforeService,  // fixed
};
// "stale-before-service" / "update-before-service".
std::string_view RouteUpdateOrderName(RouteUpdateOrder order);

struct IoApicConfig {
  // Where the machine maps the 4 KiB register window (ioapic::kMmioSize).
  // The IoApic itself only sees offsets. Must be 4 KiB aligned and below
  // 4 GiB.
  uint64_t base = ioapic::kDefaultBase;
  // 0x20 (EOI register at +0x40) or 0x11 (82093AA: no EOI register).
  uint8_t version = ioapic::kVersion20;
  // Initial (reset) value of the 4-bit ID, 0..15.
  uint8_t id = 0;
  // Requester id of every message this I/O APIC sends.
  uint16_t requester_id = ioapic::kDefaultRequesterId;
  RouteUpdateOrder route_update_order = RouteUpdateOrder::kUpdateBeforeService;
};

// OK, or InvalidArgument naming the offending field.
absl::Status ValidateIoApicConfig(const IoApicConfig& config);

// One entry of the hypervisor's routing table for a pin (GSI).
struct IoApicRoute {
  // What a delivery on this pin sends.
  MsiMessage message{MsiMessage::kWindowBase, 0, 0};
  // Value of the route generation counter when this entry was installed;
  // 0 = the initial entry installed at construction/reset.
  uint64_t generation = 0;
};

// Example:
//
//   ASSIGN_OR_RETURN(std::unique_ptr<IoApic> ioapic,
//                    IoApic::Create(IoApicConfig{}, &apic_bus, &tracer,
//                                   &clock));
//   RETURN_IF_ERROR(mmio.Map(ioapic->config().base, ioapic::kMmioSize,
//                            ioapic.get(), "ioapic"));
//   testdev_line.Connect(ioapic.get(), /*pin=*/4);   // line 0x2004 -> pin 4
//   callbacks.eoi_broadcast = [io = ioapic.get()](uint8_t v) {
//     io->EndOfInterrupt(v);                          // LocalApicCallbacks
//   };
class IoApic : public IoHandler, public IrqLineTarget {
 public:
  // Returns InvalidArgument for a config that fails ValidateIoApicConfig().
  // `sink`, `tracer` and `clock` are not owned and may be null (no sink:
  // deliveries are traced and dropped; no tracer: no trace; no clock:
  // events at time 0). Non-null ones must outlive the IoApic.
  // REQUIRES: the sink does not call back into this IoApic from Signal()
  // (an EOI comes later, when the guest handler runs; a synchronous EOI of a
  // still-asserted level line would recurse).
  static absl::StatusOr<std::unique_ptr<IoApic>> Create(
      const IoApicConfig& config, MsiSink* sink, Tracer* tracer = nullptr,
      const Clock* clock = nullptr);

  IoApic(const IoApic&) = delete;
  IoApic& operator=(const IoApic&) = delete;

  // Power-on reset: ID from the config, IOREGSEL 0, every RTE masked with
  // all other bits 0, Remote IRR clear, routes reinitialised from the RTEs
  // (generation counter restarts). Input levels are wires outside the chip
  // and are kept.
  void Reset();

  // Inserts a decorator (e.g. the IOMMU) or reconnects the output later.
  void set_sink(MsiSink* sink) { sink_ = sink; }

  // --- IoHandler: the MMIO window (offsets from `base`). ---
  // Access rules (what we model):
  //   +0x00 IOREGSEL  1- or 4-byte access. Bits 7:0 are the index (the
  //                   PCH datasheets define it as an 8-bit register, so a
  //                   byte write is a complete write); bits 31:8 are
  //                   reserved: read 0, ignored on write.
  //   +0x10 IOWIN     4-byte access only ("can only be accessed in DW
  //                   quantities", PCH DAT).
  //   +0x40 EOI       version 0x20: 4-byte write of the vector in bits 7:0
  //                   (31:8 ignored); write-only, reads 0. Version 0x11:
  //                   nothing there.
  //   Anything else (other offsets, other sizes, 8-byte accesses) reads
  //   all-ones and ignores writes. Unknown indices read 0 / ignore writes.
  uint64_t Read(const AccessOrigin& origin, uint64_t offset,
                unsigned size) override;
  void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
             uint64_t value) override;

  // --- IrqLineTarget: electrical level of input pin `pin` (0..23). ---
  // Pins outside 0..23 are ignored.
  void SetLevel(int pin, bool high) override;

  // --- EOI broadcast from a local APIC (SDM 11.8.5: a level-triggered
  // vector's EOI is broadcast to the I/O APICs). Clears Remote IRR of every
  // entry whose vector is `vector` and whose Remote IRR is set, then
  // re-delivers those still asserted and unmasked.
  void EndOfInterrupt(uint8_t vector);

  // --- Accessors (tests, debugging, the machine). ---
  // REQUIRES for all `pin` arguments: 0 <= pin < ioapic::kNumPins.
  // The RTE as the guest reads it (including computed RO bits 12 and 14).
  uint64_t ReadRte(int pin) const;
  bool remote_irr(int pin) const {
    IRQLAB_DCHECK(pin >= 0 && pin < ioapic::kNumPins);
    return pins_[pin].remote_irr;
  }
  bool input_level(int pin) const {
    IRQLAB_DCHECK(pin >= 0 && pin < ioapic::kNumPins);
    return pins_[pin].input_high;
  }
  // Level XOR active-low polarity.
  bool asserted(int pin) const;
  const IoApicRoute& route(int pin) const {
    IRQLAB_DCHECK(pin >= 0 && pin < ioapic::kNumPins);
    return route_cache_[pin];
  }
  // The message the pin's RTE describes right now (what a fresh route
  // would hold).
  MsiMessage RteMessage(int pin) const;
  // Number of route entries installed since reset (the last generation).
  uint64_t route_generation() const { return route_generation_; }
  uint8_t id() const { return id_; }
  uint8_t io_regsel() const { return io_regsel_; }
  const IoApicConfig& config() const { return config_; }
  // Messages handed to the sink (or dropped for lack of one) since
  // construction.
  uint64_t delivery_count() const { return delivery_count_; }

  // Refreshes the route of every unmasked pin from its RTE (see the file
  // comment). Public so the machine can model other refresh points.
  void RefreshRoutes();

  // Fault injection (emu/run/fault_injection.h, stale_route_order): the next
  // `count` RTE writes (IOWIN writes while IOREGSEL selects an RTE dword)
  // use RouteUpdateOrder::kStaleBeforeService -- service the pin, refresh
  // the routes at the end of that MMIO write -- whatever the configured
  // order; their ROUTE_UPDATE lines say order=stale-before-service. Other
  // writes, and RTE writes once the count is used up, keep the configured
  // order. Calls add to the remaining count. No effect on a machine
  // configured with kStaleBeforeService.
  void OverrideNextRteWriteOrder(uint32_t count) { stale_rte_writes_ += count; }
  uint32_t stale_rte_writes_left() const { return stale_rte_writes_; }

 private:
  IoApic(const IoApicConfig& config, MsiSink* sink, Tracer* tracer,
         const Clock* clock);

  struct Pin {
    // Guest-written bits; the RO bits 12 and 14 are always 0 here.
    ioapic::RedirectionEntry rte;
    bool remote_irr = false;
    bool input_high = false;  // electrical level of the input wire
  };

  uint32_t ReadIndirect(uint8_t index) const;
  void WriteIndirect(uint8_t index, uint32_t value);
  void WriteRte(int pin, bool high_dword, uint32_t value);
  // Clears Remote IRR for `vector`; `source` names the EOI path for traces.
  void Eoi(uint8_t vector, std::string_view source);
  // Delivers the pin if it is a level entry that is asserted, unmasked and
  // has Remote IRR clear. Edge entries are never delivered here: they only
  // deliver on an input edge.
  void ServiceLevel(int pin);
  // Sends route_cache_[pin] and, for level entries, sets Remote IRR.
  void Deliver(int pin);
  void Trace(Stage stage, std::string_view detail, int vector = -1,
             uint64_t address = 0, uint64_t data = 0) const;
  bool tracing() const { return tracer_ != nullptr && tracer_->enabled(); }

  // --- Static configuration. ---
  const IoApicConfig config_;

  // --- Runtime glue (not owned). ---
  MsiSink* sink_;
  Tracer* tracer_;
  const Clock* clock_;

  // --- Volatile state. ---
  uint8_t id_ = 0;
  uint8_t io_regsel_ = 0;
  std::array<Pin, ioapic::kNumPins> pins_;
  // The hypervisor routing table (one MSI route per GSI = pin).
  std::array<IoApicRoute, ioapic::kNumPins> route_cache_;
  uint64_t route_generation_ = 0;
  uint64_t delivery_count_ = 0;
  // OverrideNextRteWriteOrder(): RTE writes left to run in the stale order,
  // and the order of the MMIO write in progress (the configured one outside
  // an overridden write).
  uint32_t stale_rte_writes_ = 0;
  RouteUpdateOrder order_;
};

}  // namespace irqlab

#endif  // IRQLAB_IOAPIC_IOAPIC_H_
