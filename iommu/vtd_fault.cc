// VtdUnit, fault recording and reporting ([VT-d] ch. 7): the fault
// recording registers used as a ring, with the primary fault overflow rule
// (7.2.1; RecordFault() for the DMA side's faults, Record() for the
// interrupt-remapping ones), the fault status register (FSTS, 11.4.7.1: PPF
// and FRI computed from the F bits, PFO, and the queue's IQE/ICE/ITE), and
// the two event interrupts with their IM/IP rules (11.4.7.2): the fault
// event (7.3, FECTL/FEDATA/FEADDR/FEUADDR) and the invalidation event
// (6.5.2.8, IECTL/IEDATA/IEADDR/IEUADDR). Faults are detected where they
// arise (vtd_ir.cc, the queue's errors in vtd_qi.cc, DMA remapping in
// dma_remap.cc); the register page that dispatches here is vtd_unit.cc;
// the model and its contracts are in vtd_unit.h.
//
// Not modelled here: advanced fault logging (CAP.AFL=0: no fault log; SFL
// and EAFL are ignored), fault collapsing of identical faults (each fault
// takes its own record), page request overflow and status (no page request
// queue), extended message data in FEDATA/IEDATA (bits 31:16 read 0).
#include "iommu/vtd_unit.h"

#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"

namespace irqlab {

using vtd::EventControl;
using vtd::Fsts;

// ---------------------------------------------------------------------------
// Fault recording registers and FSTS (7.2.1, 11.4.7.1).
// ---------------------------------------------------------------------------

uint32_t VtdUnit::fsts() const {
  return fsts_ | (pending_faults_ != 0 ? Fsts::kPpf : 0) |
         (pending_faults_ != 0 ? fri_ << Fsts::kFriShift : 0);
}

uint32_t VtdUnit::ReadFaultRecordDword(uint64_t offset) const {
  const uint64_t rel = offset - vtd::kFaultRecordsOffset;
  const uint64_t n = rel / vtd::kFaultRecordSize;
  if (n >= fault_regs_.size()) return 0;
  const FaultRegister& r = fault_regs_[n];
  switch (rel % vtd::kFaultRecordSize) {
    case 0:
      return static_cast<uint32_t>(r.lo);
    case 4:
      return static_cast<uint32_t>(r.lo >> 32);
    case 8:
      return static_cast<uint32_t>(r.hi);
    case 12:
      return static_cast<uint32_t>(r.hi >> 32);
  }
  return 0;
}

void VtdUnit::WriteFsts(uint32_t value) {
  const uint32_t clear = value & fsts_ & Fsts::kRw1c;
  if (clear == 0) return;
  fsts_ &= ~clear;
  // 11.4.9.9: each IQERCD field is valid only while its FSTS bit is set.
  if (clear & Fsts::kIqe) iqercd_ &= ~vtd::Iqercd::kIqeiMask;
  if (clear & Fsts::kIte) iqercd_ &= ~vtd::Iqercd::kItesidMask;
  if (clear & Fsts::kIce) iqercd_ &= ~vtd::Iqercd::kIcesidMask;
  MaybeClearFaultPending();
  // IQE and ITE stop descriptor fetching (6.5.2.10); once both are clear
  // hardware resumes at IQH. ICE does not stop the queue.
  if (clear & (Fsts::kIqe | Fsts::kIte)) ProcessQueue();
}

void VtdUnit::WriteFaultRecordDword(uint64_t offset, uint32_t value) {
  const uint64_t rel = offset - vtd::kFaultRecordsOffset;
  const uint64_t n = rel / vtd::kFaultRecordSize;
  if (n >= fault_regs_.size() || rel % vtd::kFaultRecordSize != 12) return;
  FaultRegister& r = fault_regs_[n];
  // Bit 127 F is RW1C; everything else is RO.
  if ((value & (1u << 31)) && (r.hi & vtd::FaultRecord::kF)) {
    r.hi &= ~vtd::FaultRecord::kF;
    --pending_faults_;
    MaybeClearFaultPending();
  }
}

// ---------------------------------------------------------------------------
// Recording a fault (7.2.1).
// ---------------------------------------------------------------------------

bool VtdUnit::RecordFault(const vtd::FaultRecord& record) {
  ++stats_.faults;
  int slot = -1;
  const bool recorded = Record(record, &slot);
  if (!recorded) {
    Trace(trace::FAULT_EVENT,
          vtd::LinuxFaultLine(record) +
              " [not recorded: primary fault overflow]",
          -1, record.Low(), record.reason, record.source_id);
  }
  return recorded;
}

bool VtdUnit::Record(const vtd::FaultRecord& record, int* slot) {
  const bool was_pending = AnyStatusPending();
  FaultRegister& r = fault_regs_[next_fault_index_];
  if ((fsts_ & Fsts::kPfo) || (r.hi & vtd::FaultRecord::kF)) {
    // 7.2.1: no free register (or overflow not yet cleared): the fault is
    // dropped and PFO set. PFO is not itself an interrupt condition.
    fsts_ |= Fsts::kPfo;
    ++stats_.faults_dropped_overflow;
    return false;
  }
  r.lo = record.Low();
  r.hi = record.High() | vtd::FaultRecord::kF;
  if (pending_faults_++ == 0) fri_ = next_fault_index_;
  *slot = static_cast<int>(next_fault_index_);
  next_fault_index_ = (next_fault_index_ + 1) % fault_regs_.size();
  ++stats_.faults_recorded;
  RaiseFaultCondition(was_pending);
  return true;
}

bool VtdUnit::AnyStatusPending() const {
  return pending_faults_ != 0 ||
         (fsts_ & (Fsts::kPfo | Fsts::kIqe | Fsts::kIce | Fsts::kIte));
}

// ---------------------------------------------------------------------------
// The fault event and the invalidation event (7.3, 6.5.2.8, 11.4.7.2).
// ---------------------------------------------------------------------------

void VtdUnit::RaiseFaultCondition(bool was_pending) {
  // 11.4.7.2 IP: a status set while another was already set is not a new
  // interrupt condition.
  if (was_pending) return;
  if (fectl_im_) {
    fectl_ip_ = true;
    Trace(trace::FAULT_EVENT, "fault event held pending (FECTL.IM=1)", -1,
          feaddr_, fedata_, config_.requester_id);
    return;
  }
  SendFaultEvent();
}

void VtdUnit::MaybeClearFaultPending() {
  if (fectl_ip_ && pending_faults_ == 0 &&
      !(fsts_ & (Fsts::kIqe | Fsts::kIce | Fsts::kIte))) {
    fectl_ip_ = false;
    Trace(trace::FAULT_EVENT,
          "pending fault event cleared: software serviced every status", -1,
          feaddr_, fedata_, config_.requester_id);
  }
}

void VtdUnit::WriteFectl(uint32_t value) {
  fectl_im_ = value & EventControl::kIm;
  if (!fectl_im_ && fectl_ip_) {
    // 11.4.7.2: clearing IM with IP set issues the held message.
    fectl_ip_ = false;
    SendFaultEvent();
  }
}

void VtdUnit::WriteIectl(uint32_t value) {
  iectl_im_ = value & EventControl::kIm;
  if (!iectl_im_ && iectl_ip_) {
    iectl_ip_ = false;
    SendInvalidationEvent();
  }
}

void VtdUnit::SendFaultEvent() {
  ++stats_.fault_events;
  const uint32_t upper = ecap_.eim() ? feuaddr_ & 0xFFFFFF00u : 0;
  const uint32_t dest = ((feaddr_ >> 12) & 0xFF) | upper;
  const MsiMessage m(feaddr_, fedata_, config_.requester_id);
  Trace(trace::FAULT_EVENT,
        absl::StrFormat("fault event interrupt sent (FSTS %#x)", fsts()),
        m.Vector(), m.address, m.data, config_.requester_id);
  // Not remapped: the unit's own interrupts go straight to the APIC bus.
  // Not a device interrupt: the accounting does not count it (traced).
  static_cast<void>(SendDownstream(m, dest, upper != 0));
}

void VtdUnit::SendInvalidationEvent() {
  ++stats_.invalidation_events;
  const uint32_t upper = ecap_.eim() ? ieuaddr_ & 0xFFFFFF00u : 0;
  const uint32_t dest = ((ieaddr_ >> 12) & 0xFF) | upper;
  const MsiMessage m(ieaddr_, iedata_, config_.requester_id);
  Trace(trace::FAULT_EVENT, "invalidation event interrupt sent", m.Vector(),
        m.address, m.data, config_.requester_id);
  static_cast<void>(SendDownstream(m, dest, upper != 0));  // as above
}

}  // namespace irqlab
