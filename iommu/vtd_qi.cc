// VtdUnit, queued invalidation ([VT-d] 6.5.2): fetching and executing the
// invalidation descriptors, the queue errors (IQE, and the device-TLB
// completion errors ICE/ITE), and the queue's fault-injection hooks. The
// register file is in vtd_unit.cc, interrupt remapping and the interrupt
// entry cache in vtd_ir.cc, fault recording and the event interrupts in
// vtd_fault.cc; the model and its contracts are in vtd_unit.h.
//
// Not modelled here: scalable-mode descriptors (PASID-based IOTLB and
// device-TLB, PASID cache, page group response: an invalid type, IQE),
// page requests (the wait descriptor's PD bit is reserved), asynchronous
// processing except through the injected delay.
#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"
#include "iommu/vtd_unit.h"

namespace irqlab {

using vtd::Bit;
using vtd::Field;
using vtd::Fsts;
using vtd::Gsts;
namespace qi = vtd::qi;

namespace {

// Descriptor type names for the queue's fault-injection traces.
const char* QiTypeName(uint8_t type) {
  switch (type) {
    case qi::kContextCache: return "context-cache";
    case qi::kIotlb: return "IOTLB";
    case qi::kDeviceTlb: return "device-TLB";
    case qi::kIec: return "IEC";
    case qi::kWait: return "invalidation wait";
    default: return "invalid type";
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Queued invalidation (6.5.2).
// ---------------------------------------------------------------------------

bool VtdUnit::DelayInvalidations(uint64_t ticks, uint32_t n) {
  if (events_ == nullptr || n == 0) return false;
  fault_delay_ticks_ = ticks;
  fault_delay_count_ += n;
  return true;
}

bool VtdUnit::TakeDrop(InvalidationType type) {
  for (InvalidationType t : {type, InvalidationType::kAny}) {
    uint32_t& n = fault_drop_[static_cast<int>(t)];
    if (n > 0) {
      --n;
      return true;
    }
  }
  return false;
}

void VtdUnit::ArmReorder(uint64_t tail) {
  fault_reorder_armed_ = false;
  const uint64_t qbytes = iqa_.size_bytes();
  const uint64_t dsz = iqa_.descriptor_bytes();
  uint64_t found[2] = {0, 0};
  uint8_t types[2] = {0, 0};
  int n = 0;
  // IQH and IQT are in range and aligned here (ProcessQueue checked).
  for (uint64_t off = iqh_; off != tail && n < 2; off = (off + dsz) % qbytes) {
    const uint64_t a = iqa_.base() + off;
    if (a < iqa_.base() || !ram_->Contains(a, 8)) break;
    const uint8_t type = qi::Type(ram_->Load<uint64_t>(a));
    if (type == qi::kWait) continue;
    types[n] = type;
    found[n++] = off;
  }
  if (n < 2) {
    Trace(trace::FAULT_INJECT,
          absl::StrFormat("reorder: %d non-wait descriptor(s) pending between "
                          "IQH %#x and IQT %#x: nothing reordered (injected)",
                          n, iqh_, tail),
          -1, iqa_.base() + iqh_, n);
    return;
  }
  reorder_active_ = true;
  reorder_a_ = found[0];
  reorder_b_ = found[1];
  Trace(trace::FAULT_INJECT,
        absl::StrFormat("reorder: descriptor at IQH %#x (%s) and at %#x (%s) "
                        "processed in swapped order (injected)",
                        found[0], QiTypeName(types[0]), found[1],
                        QiTypeName(types[1])),
        -1, iqa_.base() + found[0], iqa_.base() + found[1]);
}

void VtdUnit::ProcessQueue() {
  // 6.5.2.10: no descriptor is fetched while IQE or ITE is set (nor while
  // an injected delay holds the queue).
  if (processing_queue_ || qi_stalled_ || !(gsts_ & Gsts::kQies) ||
      (fsts_ & (Fsts::kIqe | Fsts::kIte))) {
    return;
  }
  processing_queue_ = true;
  const uint64_t qbytes = iqa_.size_bytes();
  const uint64_t dsz = iqa_.descriptor_bytes();
  // At most one pass over the queue per IQT write (a guest cannot make the
  // host loop forever).
  uint64_t budget = qbytes / dsz + 1;
  while (budget-- > 0) {
    const uint64_t tail = iqt_ & vtd::kIqOffsetMask;
    if (iqh_ == tail) break;
    if (fault_delay_count_ > 0 && !qi_stall_released_ && events_ != nullptr) {
      // Fault injection: the queue stalls before this descriptor.
      --fault_delay_count_;
      qi_stalled_ = true;
      const uint64_t resume =
          TimeAfter(clock_ != nullptr ? clock_->Now() : 0, fault_delay_ticks_);
      Trace(trace::FAULT_INJECT,
            absl::StrFormat("invalidation queue stalled at IQH %#x (IQT %#x) for "
                            "%u ticks (injected), %u more stall(s) to come",
                            iqh_, tail, fault_delay_ticks_, fault_delay_count_),
            -1, iqa_.base() + iqh_, fault_delay_ticks_);
      events_->Schedule(resume, EventPriority::kDeviceCompletion,
                        "vtd: invalidation queue resumes", [this] {
                          qi_stalled_ = false;
                          if (!(gsts_ & Gsts::kQies)) return;
                          qi_stall_released_ = true;
                          Trace(trace::FAULT_INJECT,
                                absl::StrFormat("invalidation queue resumes at IQH "
                                                "%#x (IQT %#x) (injected delay over)",
                                                iqh_, iqt_ & vtd::kIqOffsetMask),
                                -1, iqa_.base() + iqh_, 0);
                          ProcessQueue();
                        });
      break;
    }
    if (iqa_.dw() && (tail & 0x10)) {
      RaiseIqe(vtd::Iqei::kTailMisaligned, 0, 0,
               "IQT[4]=1 with 256-bit descriptors (IQA.DW=1)");
      break;
    }
    if (tail >= qbytes || iqh_ >= qbytes || iqh_ % dsz != 0) {
      RaiseIqe(vtd::Iqei::kInvalidTail, 0, 0,
               absl::StrFormat("IQT %#x / IQH %#x outside the %#x-byte queue "
                               "or misaligned",
                               tail, iqh_, qbytes));
      break;
    }
    if (fault_reorder_armed_ && !reorder_active_) ArmReorder(tail);
    // An injected reorder fetches the two swapped slots from each other.
    uint64_t slot = iqh_;
    if (reorder_active_ && iqh_ == reorder_a_) slot = reorder_b_;
    if (reorder_active_ && iqh_ == reorder_b_) slot = reorder_a_;
    const uint64_t addr = iqa_.base() + slot;
    if (addr < iqa_.base() || !ram_->Contains(addr, dsz)) {
      RaiseIqe(vtd::Iqei::kDescriptorFetch, addr, 0,
               "descriptor outside guest memory");
      break;
    }
    uint64_t qw[4] = {ram_->Load<uint64_t>(addr),
                      ram_->Load<uint64_t>(addr + 8), 0, 0};
    if (dsz == 32) {
      qw[2] = ram_->Load<uint64_t>(addr + 16);
      qw[3] = ram_->Load<uint64_t>(addr + 24);
    }
    vtd::Iqei why = vtd::Iqei::kInfoNotAvailable;
    std::string detail;
    if (!ExecuteDescriptor(addr, qw, &why, &detail)) {
      RaiseIqe(why, addr, qw[0], detail);
      break;
    }
    if (reorder_active_ && iqh_ == reorder_b_) reorder_active_ = false;
    qi_stall_released_ = false;
    iqh_ = (iqh_ + dsz) % qbytes;
    if (wait_aborted_) {
      // The wait descriptor is consumed (IQH moves past it) but aborted.
      wait_aborted_ = false;
      RaiseIte(true, addr, qw[0]);
      break;
    }
    ++stats_.descriptors;
  }
  // A timed-out device-TLB invalidation with no wait descriptor after it:
  // the time-out still elapses (IQH stays where fetching stopped) — unless
  // an injected stall holds the queue (a wait may still follow).
  if (devtlb_pending_ && !qi_stalled_) RaiseIte(false, 0, 0);
  processing_queue_ = false;
}

void VtdUnit::RaiseIqe(vtd::Iqei why, uint64_t descriptor_address,
                       uint64_t qw0, const std::string& what) {
  const bool was_pending = AnyStatusPending();
  fsts_ |= Fsts::kIqe;
  reorder_active_ = false;  // an injected reorder ends at a queue error
  iqercd_ = (iqercd_ & ~vtd::Iqercd::kIqeiMask) | static_cast<uint64_t>(why);
  Trace(trace::QI_DESCRIPTOR,
        absl::StrFormat("IQE: %s; queue stopped at IQH %#x", what, iqh_), -1,
        descriptor_address, qw0);
  RaiseFaultCondition(was_pending);
}

void VtdUnit::RaiseIte(bool wait_aborted, uint64_t wait_address,
                       uint64_t wait_qw0) {
  // 11.4.7.1 ITE, 11.4.9.9 ITESID (the first time-out's source id).
  const uint16_t sid = devtlb_pending_sid_;
  devtlb_pending_ = false;
  const bool was_pending = AnyStatusPending();
  if (!(fsts_ & Fsts::kIte)) {
    fsts_ |= Fsts::kIte;
    iqercd_ = (iqercd_ & ~vtd::Iqercd::kItesidMask) |
              (uint64_t{sid} << vtd::Iqercd::kItesidShift);
  }
  ++stats_.invalidation_timeouts;
  Trace(trace::QI_DESCRIPTOR,
        absl::StrFormat(
            "ITE: device-TLB invalidation of sid %s timed out (no "
            "completion)%s; queue stopped at IQH %#x",
            FormatRequesterId(sid),
            wait_aborted
                ? absl::StrFormat(", invalidation wait at %#x aborted",
                                  wait_address)
                : std::string(),
            iqh_),
        -1, wait_address, wait_qw0, sid);
  RaiseFaultCondition(was_pending);
}

void VtdUnit::RaiseIce(uint16_t completion_sid, uint16_t sid) {
  // 11.4.7.1 ICE, 11.4.9.9 ICESID (kept from the first error until ICE is
  // cleared).
  const bool was_pending = AnyStatusPending();
  if (!(fsts_ & Fsts::kIce)) {
    fsts_ |= Fsts::kIce;
    iqercd_ = (iqercd_ & ~vtd::Iqercd::kIcesidMask) |
              (uint64_t{completion_sid} << vtd::Iqercd::kIcesidShift);
  }
  ++stats_.invalidation_completion_errors;
  Trace(trace::QI_DESCRIPTOR,
        absl::StrFormat("ICE: invalid device-TLB invalidation completion "
                        "from %s (invalidated sid %s), discarded",
                        FormatRequesterId(completion_sid),
                        FormatRequesterId(sid)),
        -1, 0, 0, completion_sid);
  RaiseFaultCondition(was_pending);
}

bool VtdUnit::ExecuteDescriptor(uint64_t desc_addr, const uint64_t qw[4],
                                vtd::Iqei* why, std::string* detail) {
  const uint8_t type = qi::Type(qw[0]);
  const auto reserved = [&](const char* name) {
    *why = vtd::Iqei::kReservedField;
    *detail = absl::StrFormat("%s descriptor %#018x %#018x has reserved bits "
                              "set",
                              name, qw[0], qw[1]);
    return false;
  };
  const auto done = [&](const std::string& what) {
    Trace(trace::QI_DESCRIPTOR, what, -1, desc_addr, qw[0]);
    return true;
  };
  // Fault injection (DropInvalidations): the checked descriptor completes
  // without invalidating anything.
  const auto dropped = [&](const char* name, const std::string& what,
                           uint64_t address, uint64_t data) {
    Trace(trace::FAULT_INJECT,
          absl::StrFormat("%s invalidation skipped (injected): %s", name, what),
          -1, address, data);
    return done(absl::StrFormat("%s invalidation skipped (injected)", name));
  };
  if (qw[2] != 0 || qw[3] != 0) {
    // 256-bit slots: legacy descriptors leave bits 255:128 reserved.
    return reserved("256-bit");
  }
  switch (type) {
    case qi::kContextCache: {
      const uint8_t g = Field(qw[0], 5, 4);
      if ((qw[0] & qi::kCcReserved0) || qw[1] != 0 || g == 0) {
        return reserved("context-cache");
      }
      ContextCacheInvalidation inv;
      inv.granularity = static_cast<ContextCacheInvalidation::Granularity>(g);
      inv.domain_id = Field(qw[0], 31, 16);
      inv.source_id = Field(qw[0], 47, 32);
      inv.function_mask = Field(qw[0], 49, 48);
      inv.queued = true;
      if (TakeDrop(InvalidationType::kContextCache)) {
        return dropped(
            "context-cache",
            g == 1 ? std::string("global")
            : g == 2 ? absl::StrFormat("domain did %u", inv.domain_id)
                     : absl::StrFormat("device did %u sid %s fm %u", inv.domain_id,
                                       FormatRequesterId(inv.source_id),
                                       inv.function_mask),
            inv.source_id, inv.domain_id);
      }
      InvalidateContextCache(inv);
      return done("context-cache invalidate");
    }
    case qi::kIotlb: {
      const uint8_t g = Field(qw[0], 5, 4);
      if ((qw[0] & qi::kIotlbReserved0) || (qw[1] & qi::kIotlbReserved1) ||
          g == 0) {
        return reserved("IOTLB");
      }
      IotlbInvalidation inv;
      inv.granularity = static_cast<IotlbInvalidation::Granularity>(g);
      inv.domain_id = Field(qw[0], 31, 16);
      inv.drain_writes = qw[0] & Bit(6);
      inv.drain_reads = qw[0] & Bit(7);
      inv.address = qw[1] & vtd::BitRange(63, 12);
      inv.invalidation_hint = qw[1] & Bit(6);
      inv.address_mask = Field(qw[1], 5, 0);
      inv.queued = true;
      if (TakeDrop(InvalidationType::kIotlb)) {
        return dropped(
            "IOTLB",
            g == 1 ? std::string("global")
            : g == 2 ? absl::StrFormat("domain did %u", inv.domain_id)
                     : absl::StrFormat("page did %u addr %#x am %u", inv.domain_id,
                                       inv.address, inv.address_mask),
            inv.address, inv.domain_id);
      }
      InvalidateIotlb(inv);
      return done("IOTLB invalidate");
    }
    case qi::kDeviceTlb: {
      DeviceTlbInvalidation inv;
      inv.source_id = Field(qw[0], 47, 32);
      inv.address = qw[1] & vtd::BitRange(63, 12);
      inv.size = qw[1] & 1;
      using DeviceTlb = VtdConfig::DeviceTlb;
      const auto drop_devtlb = [&] {
        return dropped("device-TLB",
                       absl::StrFormat("sid %s", FormatRequesterId(inv.source_id)),
                       inv.address, inv.source_id);
      };
      if (config_.device_tlb == DeviceTlb::kNone) {
        if (TakeDrop(InvalidationType::kDeviceTlb)) return drop_devtlb();
        // Accepted (ECAP.DT=0: no device-TLBs behind this unit to wait for).
        if (hooks_.device_tlb) hooks_.device_tlb(inv);
        return done(absl::StrFormat("device-TLB invalidate sid %s (accepted)",
                                    FormatRequesterId(inv.source_id)));
      }
      // 6.5.2.5 (legacy layout): qw0 63:52 PFSID[15:4], 51:48 reserved,
      // 47:32 SID, 31:21 reserved, 20:16 MIP, 15:12 PFSID[3:0], 8:4
      // reserved; qw1 63:12 ADDR, 11:1 reserved, 0 S.
      if ((qw[0] & qi::kDevTlbReserved0) || (qw[1] & qi::kDevTlbReserved1)) {
        return reserved("device-TLB");
      }
      // Dropped: no ATS Invalidate Request is sent (so no ICE/ITE either).
      if (TakeDrop(InvalidationType::kDeviceTlb)) return drop_devtlb();
      if (hooks_.device_tlb) hooks_.device_tlb(inv);
      switch (config_.device_tlb) {
        case DeviceTlb::kNoAnswer:
          // Sent; nothing comes back. Hardware goes on fetching; the
          // time-out surfaces at the next wait descriptor (or the end).
          if (!devtlb_pending_) {
            devtlb_pending_ = true;
            devtlb_pending_sid_ = inv.source_id;
          }
          return done(absl::StrFormat(
              "device-TLB invalidate sid %s sent (no completion yet)",
              FormatRequesterId(inv.source_id)));
        case DeviceTlb::kBadCompletion:
          RaiseIce(static_cast<uint16_t>(inv.source_id ^ 7), inv.source_id);
          break;
        default:
          break;
      }
      return done(absl::StrFormat("device-TLB invalidate sid %s completed",
                                  FormatRequesterId(inv.source_id)));
    }
    case qi::kIec: {
      if (!ecap_.ir()) break;  // invalid type without interrupt remapping
      if ((qw[0] & qi::kIecReserved0) || qw[1] != 0) return reserved("IEC");
      const bool index_selective = qw[0] & Bit(4);
      const uint8_t im = Field(qw[0], 31, 27);
      const uint16_t iidx = Field(qw[0], 47, 32);
      if (TakeDrop(InvalidationType::kIec)) {
        return dropped("IEC",
                       index_selective
                           ? absl::StrFormat("index 0x%x mask %u", iidx, im)
                           : std::string("global"),
                       index_selective ? iidx : 0, im);
      }
      size_t n;
      std::string what;
      if (index_selective) {
        n = IecInvalidateIndex(iidx, im);
        what = absl::StrFormat("IEC index-selective invalidate: index 0x%x "
                               "mask %u (%u entries), %d cached dropped",
                               iidx, im, im >= 17 ? 65536u : 1u << im, n);
      } else {
        n = IecInvalidateGlobal();
        what = absl::StrFormat("IEC global invalidate: %d cached dropped", n);
      }
      Trace(trace::IEC_INVALIDATE, what, -1, index_selective ? iidx : 0, im);
      return done(what);
    }
    case qi::kWait: {
      if ((qw[0] & qi::kWaitReserved0) || (qw[1] & qi::kWaitReserved1)) {
        return reserved("invalidation wait");
      }
      if (devtlb_pending_) {
        // Waits for a device-TLB invalidation that never completes: the
        // time-out aborts it (ProcessQueue raises ITE).
        wait_aborted_ = true;
        return true;
      }
      std::string what = "invalidation wait";
      if (qw[0] & qi::kWaitSw) {
        const uint64_t status_addr = qw[1] & ~uint64_t{3};
        if (!ram_->Contains(status_addr, 4)) {
          *why = vtd::Iqei::kInvalidWait;
          *detail = absl::StrFormat(
              "invalidation wait status address %#x outside guest memory",
              status_addr);
          return false;
        }
        const uint32_t status = static_cast<uint32_t>(qw[0] >> 32);
        ram_->Store<uint32_t>(status_addr, status);
        absl::StrAppendFormat(&what, ": status %#x written to %#x", status,
                              status_addr);
      }
      if (qw[0] & qi::kWaitFn) what += " (fence)";
      Trace(trace::QI_DESCRIPTOR, what, -1, desc_addr, qw[0]);
      if (qw[0] & qi::kWaitIf) {
        // 6.5.2.8 / 11.4.9.4: IF sets ICS.IWC; a 0->1 transition is an
        // invalidation-event interrupt condition.
        const bool was = ics_ & vtd::kIcsIwc;
        ics_ |= vtd::kIcsIwc;
        if (!was) {
          if (iectl_im_) {
            iectl_ip_ = true;
            Trace(trace::FAULT_EVENT,
                  "invalidation event held pending (IECTL.IM=1)", -1, ieaddr_,
                  iedata_, config_.requester_id);
          } else {
            SendInvalidationEvent();
          }
        }
      }
      return true;
    }
    default:
      break;
  }
  *why = vtd::Iqei::kInvalidType;
  *detail = absl::StrFormat("invalid descriptor type %u (qw0 %#018x)", type,
                            qw[0]);
  return false;
}

}  // namespace irqlab
