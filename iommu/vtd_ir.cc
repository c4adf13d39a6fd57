// VtdUnit, interrupt remapping ([VT-d] ch. 5, 9.10-9.12): Signal() and its
// untraced fast path, Remap() / DeliverRemapped(), the IRTE fetch, decode
// and checks (5.1.4; fault reasons 0x20-0x27 and FPD, 7.1.3), the interrupt
// entry cache (6.2.5; the invalidations the queue asks for, 6.5.2.7),
// posting into the posted-interrupt descriptor (5.2.3, 9.11, 9.12),
// guest-owned MSI (not in the spec; set_guest_owned()) and the hand-off to
// the downstream sink. The hot path, Signal() -> IEC lookup ->
// SendDownstream(), stays in this translation unit: nothing on it is a call
// into another one. A detected fault is recorded by vtd_fault.cc; the
// registers are in vtd_unit.cc, the queue in vtd_qi.cc; the model and its
// contracts are in vtd_unit.h.
//
// Not modelled here: scalable-mode IRTEs and PASID-granular posting;
// interrupt virtualization beyond posting (the vCPU side reads the
// descriptor); non-coherent table reads (ECAP.C=1: an IRTE is read from
// guest RAM on an IEC miss, the posted-interrupt descriptor at each post).
#include "iommu/vtd_unit.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"

namespace irqlab {

using vtd::Bit;
using vtd::Gsts;
namespace fault = vtd::fault;

namespace {

// Builds the compatibility-format message a remapped interrupt becomes
// (SDM 11.11.1/11.11.2 fields taken from the IRTE, [VT-d] 5.1.4).
MsiMessage CompatMessage(uint32_t destination, uint8_t vector,
                         uint8_t delivery_mode, bool logical,
                         bool redirection_hint, bool level,
                         uint16_t requester_id) {
  const uint64_t address = MsiMessage::kWindowBase |
                           (uint64_t{destination & 0xFF} << 12) |
                           (redirection_hint ? Bit(3) : 0) |
                           (logical ? Bit(2) : 0);
  const uint32_t data = vector | (uint32_t{delivery_mode & 7u} << 8) |
                        (level ? (1u << 15) | (1u << 14) : 0);
  return MsiMessage(address, data, requester_id);
}

// 5.1.4 / 9.10 SVT: source-id verification of requester `rid` against the
// IRTE (SVT=01b: SID under the SQ mask; SVT=10b: bus within
// [SID[15:8], SID[7:0]]; 00b: none).
inline bool SourceIdVerified(const vtd::Irte& irte, uint16_t rid) {
  switch (irte.svt()) {
    case vtd::Irte::kSvtRequesterId:
      return ((rid ^ irte.sid()) & vtd::SourceIdMask(irte.sq())) == 0;
    case vtd::Irte::kSvtBusRange: {
      const unsigned bus = rid >> 8;
      return bus >= (irte.sid() >> 8) && bus <= (irte.sid() & 0xFFu);
    }
    default:
      return true;
  }
}

std::string DestinationText(uint32_t destination, bool wide, bool logical) {
  return absl::StrFormat("%s%s 0x%x", wide ? "x2apic " : "",
                         logical ? "logical" : "dest", destination);
}

}  // namespace

// ---------------------------------------------------------------------------
// Interrupt remapping (5.1.4).
// ---------------------------------------------------------------------------

RemapResult VtdUnit::Remap(const MsiMessage& message) {
  RemapResult result;
  if (!(gsts_ & Gsts::kIres) || !message.InMsiWindow()) {
    // 5.1.4: with IRES=0 interrupts are processed as if no remapping
    // hardware existed (a remappable message then reaches the APIC bus,
    // which drops it).
    ++stats_.passed_through;
    if (tracing()) {
      Trace(trace::IR_REMAP,
            message.InMsiWindow()
                ? "pass-through: interrupt remapping disabled (IRES=0)"
                : "pass-through: not an interrupt address",
            -1, message.address, message.data, message.requester_id);
    }
    result.kind = RemapResult::kPassThrough;
    result.message = message;
    return result;
  }
  uint32_t index = 0;
  const auto owned = message.IsRemappable() ? guest_owned_.end()
                                            : guest_owned_.find(message.requester_id);
  if (owned != guest_owned_.end()) {
    // Guest-owned MSI (not in the VT-d spec; see set_guest_owned()): the
    // compatibility-format request is looked up at base + vector.
    index = owned->second + message.Vector();
    if (tracing()) {
      Trace(trace::IR_REMAP,
            absl::StrFormat("guest-owned: compatibility vec 0x%x -> index 0x%x",
                            message.Vector(), index),
            message.Vector(), message.address, message.data, message.requester_id);
    }
  } else if (!message.IsRemappable()) {
    // 5.1.2.1 / 11.4.4.1 CFI: compatibility format bypasses remapping only
    // with CFIS=1 and EIME=0; otherwise it is blocked with fault 0x25.
    if ((gsts_ & Gsts::kCfis) && !irta_latched_.eime()) {
      ++stats_.passed_through;
      if (tracing()) {
        Trace(trace::IR_REMAP, "pass-through: compatibility format (CFIS=1)",
              message.Vector(), message.address, message.data,
              message.requester_id);
      }
      result.kind = RemapResult::kPassThrough;
      result.message = message;
      return result;
    }
    InterruptFault(message, fault::kIrCompatBlocked, 0, false);
    return result;
  }
  if (owned == guest_owned_.end()) {
    index = message.RemappedIndex();
    if (message.RemappableReservedBits() != 0) {
      InterruptFault(message, fault::kIrRequestReserved,
                     static_cast<uint16_t>(index), false);
      result.index = index;
      return result;
    }
  }
  result.index = index;
  if (index >= irta_latched_.entries()) {
    InterruptFault(message, fault::kIrIndexOutOfRange,
                   static_cast<uint16_t>(index), false);
    return result;
  }
  bool hit = false;
  CachedIrte fetched;
  const CachedIrte* cached = &fetched;
  if (config_.iec_capacity > 0 && index < iec_.size() && iec_[index].valid) {
    cached = &iec_[index];  // no copy on the hot path
    hit = true;
    ++stats_.iec_hits;
  } else if (!FetchIrte(message, index, &fetched)) {
    return result;  // faulted
  }
  const CachedIrte& entry = *cached;
  const vtd::Irte& irte = entry.irte;
  if (!SourceIdVerified(irte, message.requester_id) &&
      !(config_.compat == CompatProfile::kQemu &&
        message.requester_id == config_.ioapic_source_id)) {
    if (message.requester_id == config_.ioapic_source_id && tracing()) {
      Trace(trace::COMPAT,
            absl::StrFormat("IOAPIC interrupt blocked by IRTE 0x%x SID %s (SVT %u): QEMU's "
                            "IOAPIC sends no requester id and skips this check "
                            "(--compat=qemu)",
                            index, FormatRequesterId(irte.sid()), irte.svt()),
            -1, message.address, message.data, message.requester_id);
    }
    InterruptFault(message, fault::kIrSourceId, static_cast<uint16_t>(index),
                   irte.fpd());
    return result;
  }
  if (irte.posted()) {
    Post(message, entry, index);
    result.kind = RemapResult::kPosted;
    return result;
  }
  ++stats_.remapped;
  const MsiMessage out = RemappedMessage(entry, message);
  if (tracing()) {
    Trace(trace::IR_REMAP,
          absl::StrFormat(
              "index 0x%x -> %s vec 0x%x %s %s%s [iec %s]", index,
              DestinationText(entry.destination, entry.eime,
                              irte.dest_logical()),
              irte.vector(),
              DeliveryModeName(static_cast<DeliveryMode>(irte.delivery_mode())),
              irte.trigger_level() ? "level" : "edge",
              irte.redirection_hint() ? " rh" : "", hit ? "hit" : "miss"),
          irte.vector(), out.address, out.data, message.requester_id);
  }
  result.kind = RemapResult::kRemapped;
  result.message = out;
  result.destination = entry.destination;
  result.wide = entry.eime;
  return result;
}

MsiOutcome VtdUnit::Signal(const MsiMessage& message) {
  // Fast path, equivalent to DeliverRemapped(Remap(message)) for its case:
  // tracing off, a well-formed remappable request (5.1.4: IRES=1, no
  // reserved data bits, index within the table) whose IRTE is cached in
  // the IEC in remapped format (IM=0) and passes source-id verification.
  // It updates the same statistics and sends the same message without
  // building a RemapResult. Everything else (misses, faults, posting,
  // pass-through, traced runs) takes the general path below.
  if ((gsts_ & Gsts::kIres) && message.InMsiWindow() &&
      message.IsRemappable() && message.RemappableReservedBits() == 0 &&
      !tracing()) {
    const uint32_t index = message.RemappedIndex();
    if (index < iec_slots_ && index < irta_latched_.entries()) {
      const CachedIrte& e = iec_[index];
      if (e.valid && !e.irte.posted() &&
          SourceIdVerified(e.irte, message.requester_id)) {
        ++stats_.iec_hits;
        ++stats_.remapped;
        return SendDownstream(RemappedMessage(e, message), e.destination,
                              e.eime);
      }
    }
  }
  return DeliverRemapped(Remap(message));
}

MsiOutcome VtdUnit::DeliverRemapped(const RemapResult& result) {
  switch (result.kind) {
    case RemapResult::kPassThrough:
      return downstream_->Signal(result.message);
    case RemapResult::kRemapped:
      return SendDownstream(result.message, result.destination, result.wide);
    case RemapResult::kPosted:
      return MsiOutcome::kPosted;
    case RemapResult::kFaulted:
      return MsiOutcome::kFaulted;
  }
  return MsiOutcome::kLost;
}

bool VtdUnit::FetchIrte(const MsiMessage& message, uint32_t index,
                        CachedIrte* out) {
  ++stats_.iec_misses;
  const uint64_t base = irta_latched_.base();
  const uint64_t addr = base + uint64_t{index} * 16;
  if (addr < base || !ram_->Contains(addr, 16) || Unreadable(addr, 16)) {
    // 0x23: the fetch of the IRTE failed (table outside memory).
    InterruptFault(message, fault::kIrTableAccess,
                   static_cast<uint16_t>(index), false);
    return false;
  }
  vtd::Irte irte;
  irte.lo = ram_->Load<uint64_t>(addr);
  irte.hi = ram_->Load<uint64_t>(addr + 8);
  if (!irte.present()) {
    InterruptFault(message, fault::kIrEntryNotPresent,
                   static_cast<uint16_t>(index), irte.fpd());
    return false;
  }
  if (irte.HasReservedBits(irta_latched_.eime(), cap_.pi())) {
    InterruptFault(message, fault::kIrEntryReserved,
                   static_cast<uint16_t>(index), irte.fpd());
    return false;
  }
  *out = Decode(irte);
  if (config_.iec_capacity > 0) IecInsert(index, *out);
  return true;
}

VtdUnit::CachedIrte VtdUnit::Decode(const vtd::Irte& irte) const {
  CachedIrte c;
  c.valid = true;
  c.irte = irte;
  c.eime = irta_latched_.eime();
  c.destination = irte.destination(c.eime);
  const MsiMessage m =
      CompatMessage(c.destination, irte.vector(), irte.delivery_mode(),
                    irte.dest_logical(), irte.redirection_hint(),
                    irte.trigger_level(), 0);
  c.address = m.address;
  c.data = m.data;
  return c;
}

void VtdUnit::InterruptFault(const MsiMessage& message, uint8_t reason,
                             uint16_t index, bool fpd) {
  ++stats_.faults;
  const vtd::FaultRecord record =
      vtd::FaultRecord::Interrupt(message.requester_id, index, reason);
  if (fpd && vtd::IsQualifiedInterruptFault(reason)) {
    ++stats_.faults_suppressed_fpd;
    if (tracing()) {
      Trace(trace::IR_FAULT,
            vtd::LinuxFaultLine(record) + " [not recorded: FPD=1]", -1,
            message.address, message.data, message.requester_id);
    }
    return;
  }
  int slot = -1;
  const bool recorded = Record(record, &slot);
  if (tracing()) {
    Trace(trace::IR_FAULT,
          vtd::LinuxFaultLine(record) +
              (recorded ? absl::StrFormat(" [FRCD %d]", slot)
                        : std::string(" [not recorded: primary fault "
                                      "overflow]")),
          -1, message.address, message.data, message.requester_id);
  }
}

// ---------------------------------------------------------------------------
// Interrupt entry cache (6.2.5, 6.5.2.7).
// ---------------------------------------------------------------------------

// The IEC keeps FIFO order in iec_order_ with lazy deletion: invalidation
// only clears `valid` (O(entries invalidated)); stale order entries (their
// sequence number no longer matches) are skipped at eviction and dropped
// when the queue is compacted.
void VtdUnit::IecInsert(uint32_t index, const CachedIrte& entry) {
  if (iec_.size() <= index) {
    iec_.resize(std::max<size_t>(index + 1, 256));
    iec_slots_ = static_cast<uint32_t>(iec_.size());
  }
  const bool was_valid = iec_[index].valid;
  const uint64_t seq = was_valid ? iec_[index].seq : ++iec_seq_;
  if (!was_valid) {
    while (iec_count_ >= config_.iec_capacity && !iec_order_.empty()) {
      const auto [victim, victim_seq] = iec_order_.front();
      iec_order_.pop_front();
      if (iec_[victim].valid && iec_[victim].seq == victim_seq) {
        iec_[victim].valid = false;
        --iec_count_;
        ++stats_.iec_evictions;
      }
    }
    iec_order_.push_back({index, seq});
    ++iec_count_;
  }
  iec_[index] = entry;
  iec_[index].seq = seq;
  // Compact when stale order entries dominate (amortized O(1) per insert).
  if (iec_order_.size() > 2 * iec_count_ + 64) {
    std::deque<std::pair<uint32_t, uint64_t>> kept;
    for (const auto& [i, sq] : iec_order_) {
      if (iec_[i].valid && iec_[i].seq == sq) kept.push_back({i, sq});
    }
    iec_order_.swap(kept);
  }
}

size_t VtdUnit::IecInvalidateGlobal() {
  if (iec_listener_) iec_listener_(true, 0, 0);
  const size_t n = iec_count_;
  for (const auto& [i, sq] : iec_order_) iec_[i].valid = false;
  iec_order_.clear();
  iec_count_ = 0;
  return n;
}

size_t VtdUnit::IecInvalidateIndex(uint32_t index, uint8_t mask) {
  // 6.5.2.7: index-selective invalidation covers the 2^IM entries whose
  // index matches IIDX in all bits above IM.
  if (mask >= 17) return IecInvalidateGlobal();
  if (iec_listener_) iec_listener_(false, index, mask);
  const uint64_t first = uint64_t{index >> mask} << mask;
  const uint64_t last = std::min<uint64_t>(first + (uint64_t{1} << mask), iec_.size());
  size_t n = 0;
  for (uint64_t i = first; i < last; ++i) {
    if (iec_[i].valid) {
      iec_[i].valid = false;
      --iec_count_;
      ++n;
    }
  }
  return n;
}

// ---------------------------------------------------------------------------
// Posting (5.2.3, 9.11, 9.12) and the hand-off downstream.
// ---------------------------------------------------------------------------

void VtdUnit::Post(const MsiMessage& message, const CachedIrte& entry,
                   uint32_t index) {
  // 5.2.3: post the virtual vector into the descriptor's PIR and send a
  // notification event when ON goes 0->1 and (URG=1 or SN=0).
  const vtd::Irte& irte = entry.irte;
  const uint64_t pda = irte.pda();
  if (!ram_->Contains(pda, vtd::PostedDescriptor::kSize) ||
      Unreadable(pda, vtd::PostedDescriptor::kSize)) {
    InterruptFault(message, fault::kIrPostedDescriptorAccess,
                   static_cast<uint16_t>(index), irte.fpd());
    return;
  }
  const uint8_t vv = irte.vector();
  // The descriptor is 64-byte aligned (PDA bits 5:0 do not exist) and guest
  // RAM is page aligned, so these qwords are naturally aligned.
  uint64_t* pir = reinterpret_cast<uint64_t*>(ram_->data() + pda) + vv / 64;
  uint64_t* control = reinterpret_cast<uint64_t*>(
      ram_->data() + pda + vtd::PostedDescriptor::kControlOffset);
  std::atomic_ref<uint64_t>(*pir).fetch_or(uint64_t{1} << (vv % 64));
  std::atomic_ref<uint64_t> ctl(*control);
  uint64_t c = ctl.load();
  bool notify = false;
  if (irte.urgent() || !(c & vtd::PostedDescriptor::kSn)) {
    const uint64_t old = ctl.fetch_or(vtd::PostedDescriptor::kOn);
    notify = !(old & vtd::PostedDescriptor::kOn);
    c = old | vtd::PostedDescriptor::kOn;
  }
  ++stats_.posted;
  const uint8_t nv = vtd::PostedDescriptor::Nv(c);
  const uint32_t ndst = vtd::PostedDescriptor::Ndst(c);
  const bool eime = entry.eime;
  const uint32_t dest = eime ? ndst : (ndst >> 8) & 0xFF;
  if (tracing()) {
    Trace(trace::POSTED,
          absl::StrFormat("index 0x%x posted vv 0x%x to PID %#x%s%s", index,
                          vv, pda,
                          (c & vtd::PostedDescriptor::kSn) ? " SN" : "",
                          notify ? absl::StrFormat(
                                       ": notification nv 0x%x -> %s", nv,
                                       DestinationText(dest, eime, false))
                                 : " (no notification: ON already set or "
                                   "suppressed)"),
          vv, pda, c, message.requester_id);
  }
  if (notify) {
    ++stats_.notifications;
    const MsiMessage out =
        CompatMessage(dest, nv, 0, false, false, false, message.requester_id);
    // The notification is the unit's own message, not the posted request:
    // the request's outcome is kPosted whatever becomes of it (traced).
    static_cast<void>(SendDownstream(out, dest, eime));
  }
}

MsiOutcome VtdUnit::SendDownstream(const MsiMessage& message, uint32_t destination,
                                   bool wide) {
  return wide ? downstream_->SignalX2Apic(message, destination)
              : downstream_->Signal(message);
}

}  // namespace irqlab
