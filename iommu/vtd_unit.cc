// VtdUnit: see vtd_unit.h for the model and the spec sections it follows.
#include "iommu/vtd_unit.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace irqlab {

using vtd::Bit;
using vtd::Field;
using vtd::Gcmd;
using vtd::Gsts;
using vtd::Fsts;
using vtd::EventControl;
namespace fault = vtd::fault;
namespace qi = vtd::qi;

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
// Construction.
// ---------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<VtdUnit>> VtdUnit::Create(
    const VtdConfig& config, MsiSink* downstream, GuestRam* ram,
    const Clock* clock, Tracer* tracer) {
  if (downstream == nullptr) {
    return absl::InvalidArgumentError("vtd: downstream MsiSink is null");
  }
  if (ram == nullptr) {
    return absl::InvalidArgumentError("vtd: guest RAM is null");
  }
  if (config.base % vtd::kRegisterFileSize != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vtd: base %#x is not 4 KiB aligned", config.base));
  }
  if (config.num_fault_records < 1 ||
      config.num_fault_records > vtd::kMaxFaultRecords) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vtd: num_fault_records %d is outside 1..%d", config.num_fault_records,
        vtd::kMaxFaultRecords));
  }
  if (config.nd > 6) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vtd: nd %d is outside 0..6", config.nd));
  }
  if (config.mgaw < 30 || config.mgaw > 64) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vtd: mgaw %d is outside 30..64", config.mgaw));
  }
  if ((config.sagaw & ~0x0Eu) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vtd: sagaw %#x has bits other than 39/48/57-bit (0x2/0x4/0x8)",
        config.sagaw));
  }
  if (config.sllps > 3) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vtd: sllps %#x has bits other than 0x1/0x2",
                        config.sllps));
  }
  if (config.interrupt_remapping && !config.queued_invalidation) {
    return absl::InvalidArgumentError(
        "vtd: interrupt_remapping requires queued_invalidation (VT-d 6.5.2: "
        "the interrupt entry cache is invalidated only through the queue)");
  }
  if (!config.interrupt_remapping &&
      (config.extended_interrupt_mode || config.posted_interrupts ||
       config.enhanced_sirtp)) {
    return absl::InvalidArgumentError(
        "vtd: extended_interrupt_mode / posted_interrupts / enhanced_sirtp "
        "require interrupt_remapping");
  }
  if (config.iec_capacity > 65536) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vtd: iec_capacity %u exceeds the largest table (65536 entries)",
        config.iec_capacity));
  }
  return std::unique_ptr<VtdUnit>(
      new VtdUnit(config, downstream, ram, clock, tracer));
}

VtdUnit::VtdUnit(const VtdConfig& config, MsiSink* downstream, GuestRam* ram,
                 const Clock* clock, Tracer* tracer)
    : config_(config),
      downstream_(downstream),
      ram_(ram),
      clock_(clock),
      tracer_(tracer),
      fault_regs_(config.num_fault_records) {
  using vtd::Cap;
  using vtd::Ecap;
  cap_.raw = uint64_t{config.nd} | (uint64_t{config.sagaw} << Cap::kSagawShift) |
             (uint64_t(config.mgaw - 1) << Cap::kMgawShift) |
             ((vtd::kFaultRecordsOffset / 16) << Cap::kFroShift) |
             (uint64_t{config.sllps} << Cap::kSllpsShift) | Cap::kPsi |
             (uint64_t(config.num_fault_records - 1) << Cap::kNfrShift) |
             (uint64_t{18} << Cap::kMamvShift) | Cap::kDwd | Cap::kDrd |
             (config.posted_interrupts ? Cap::kPi : 0) |
             (config.enhanced_sirtp ? Cap::kEsirtps : 0);
  ecap_.raw = Ecap::kC | (config.queued_invalidation ? Ecap::kQi : 0) |
              (config.interrupt_remapping ? Ecap::kIr : 0) |
              (config.extended_interrupt_mode ? Ecap::kEim : 0) |
              (config.pass_through ? Ecap::kPt : 0) |
              (config.device_tlb != VtdConfig::DeviceTlb::kNone ? Ecap::kDt : 0) |
              ((vtd::kIotlbRegsOffset / 16) << Ecap::kIroShift) |
              (config.interrupt_remapping ? uint64_t{0xF} << Ecap::kMhmvShift
                                          : 0);
}

// ---------------------------------------------------------------------------
// Register file.
// ---------------------------------------------------------------------------

uint64_t VtdUnit::Read(const AccessOrigin& /*origin*/, uint64_t offset,
                       unsigned size) {
  if (offset < vtd::kRegisterFileSize && size == 4 && offset % 4 == 0) {
    return ReadDword(offset);
  }
  if (offset < vtd::kRegisterFileSize && size == 8 && offset % 8 == 0) {
    return ReadDword(offset) | (uint64_t{ReadDword(offset + 4)} << 32);
  }
  Trace(trace::VTD_COMMAND,
        absl::StrFormat("unsupported register read: offset %#x size %u "
                        "(VT-d 11.2: aligned dword/qword only), reads 0",
                        offset, size),
        -1, config_.base + offset, 0);
  return 0;
}

void VtdUnit::Write(const AccessOrigin& /*origin*/, uint64_t offset,
                    unsigned size, uint64_t value) {
  if (offset < vtd::kRegisterFileSize && size == 4 && offset % 4 == 0) {
    WriteDword(offset, static_cast<uint32_t>(value));
    return;
  }
  if (offset < vtd::kRegisterFileSize && size == 8 && offset % 8 == 0) {
    WriteDword(offset, static_cast<uint32_t>(value));
    WriteDword(offset + 4, static_cast<uint32_t>(value >> 32));
    return;
  }
  Trace(trace::VTD_COMMAND,
        absl::StrFormat("unsupported register write dropped: offset %#x "
                        "size %u (VT-d 11.2: aligned dword/qword only)",
                        offset, size),
        -1, config_.base + offset, value);
}

uint32_t VtdUnit::fsts() const {
  return fsts_ | (pending_faults_ != 0 ? Fsts::kPpf : 0) |
         (pending_faults_ != 0 ? fri_ << Fsts::kFriShift : 0);
}

uint32_t VtdUnit::ReadDword(uint64_t offset) const {
  const bool qi = ecap_.qi();
  const bool ir = ecap_.ir();
  const auto lo = [](uint64_t v) { return static_cast<uint32_t>(v); };
  const auto hi = [](uint64_t v) { return static_cast<uint32_t>(v >> 32); };
  switch (offset) {
    case vtd::kVerReg:
      return vtd::kVersion;
    case vtd::kCapReg:
      return lo(cap_.raw);
    case vtd::kCapReg + 4:
      return hi(cap_.raw);
    case vtd::kEcapReg:
      return lo(ecap_.raw);
    case vtd::kEcapReg + 4:
      return hi(ecap_.raw);
    case vtd::kGcmdReg:
      return 0;  // write-only
    case vtd::kGstsReg:
      return gsts_;
    case vtd::kRtaddrReg:
      return lo(rtaddr_reg_);
    case vtd::kRtaddrReg + 4:
      return hi(rtaddr_reg_);
    case vtd::kCcmdReg:
      return lo(ccmd_);
    case vtd::kCcmdReg + 4:
      return hi(ccmd_);
    case vtd::kFstsReg:
      return fsts();
    case vtd::kFectlReg:
      return (fectl_im_ ? EventControl::kIm : 0) |
             (fectl_ip_ ? EventControl::kIp : 0);
    case vtd::kFedataReg:
      return fedata_;
    case vtd::kFeaddrReg:
      return feaddr_;
    case vtd::kFeuaddrReg:
      return feuaddr_;
    case vtd::kIqhReg:
      return qi ? lo(iqh_) : 0;
    case vtd::kIqtReg:
      return qi ? lo(iqt_) : 0;
    case vtd::kIqaReg:
      return qi ? lo(iqa_.raw) : 0;
    case vtd::kIqaReg + 4:
      return qi ? hi(iqa_.raw) : 0;
    case vtd::kIcsReg:
      return qi ? ics_ : 0;
    case vtd::kIectlReg:
      return qi ? (iectl_im_ ? EventControl::kIm : 0) |
                      (iectl_ip_ ? EventControl::kIp : 0)
                : 0;
    case vtd::kIedataReg:
      return qi ? iedata_ : 0;
    case vtd::kIeaddrReg:
      return qi ? ieaddr_ : 0;
    case vtd::kIeuaddrReg:
      return qi ? ieuaddr_ : 0;
    case vtd::kIqercdReg:
      return qi ? lo(iqercd_) : 0;
    case vtd::kIqercdReg + 4:
      return qi ? hi(iqercd_) : 0;
    case vtd::kIrtaReg:
      return ir ? lo(irta_reg_.raw) : 0;
    case vtd::kIrtaReg + 4:
      return ir ? hi(irta_reg_.raw) : 0;
    case vtd::kIvaReg:
      return lo(iva_);
    case vtd::kIvaReg + 4:
      return hi(iva_);
    case vtd::kIotlbReg:
      return lo(iotlb_reg_);
    case vtd::kIotlbReg + 4:
      return hi(iotlb_reg_);
    default:
      break;
  }
  if (offset >= vtd::kFaultRecordsOffset) {
    const uint64_t rel = offset - vtd::kFaultRecordsOffset;
    const uint64_t n = rel / vtd::kFaultRecordSize;
    if (n < fault_regs_.size()) {
      const FaultRegister& r = fault_regs_[n];
      switch (rel % vtd::kFaultRecordSize) {
        case 0:
          return lo(r.lo);
        case 4:
          return hi(r.lo);
        case 8:
          return lo(r.hi);
        case 12:
          return hi(r.hi);
      }
    }
  }
  return 0;  // reserved / unimplemented: reads 0
}

void VtdUnit::WriteDword(uint64_t offset, uint32_t value) {
  const bool qi = ecap_.qi();
  const bool ir = ecap_.ir();
  switch (offset) {
    case vtd::kGcmdReg:
      WriteGcmd(value);
      return;
    case vtd::kRtaddrReg:
      rtaddr_reg_ = SetLow(rtaddr_reg_, value) & vtd::kRtaddrWritable;
      return;
    case vtd::kRtaddrReg + 4:
      rtaddr_reg_ = SetHigh(rtaddr_reg_, value) & vtd::kRtaddrWritable;
      return;
    case vtd::kCcmdReg:
      ccmd_ = SetLow(ccmd_, value) & vtd::Ccmd::kWritable;
      return;
    case vtd::kCcmdReg + 4:
      WriteCcmdHigh(value);
      return;
    case vtd::kFstsReg:
      WriteFsts(value);
      return;
    case vtd::kFectlReg:
      fectl_im_ = value & EventControl::kIm;
      if (!fectl_im_ && fectl_ip_) {
        // 11.4.7.2: clearing IM with IP set issues the held message.
        fectl_ip_ = false;
        SendFaultEvent();
      }
      return;
    case vtd::kFedataReg:
      fedata_ = value & vtd::kEventDataWritable;
      return;
    case vtd::kFeaddrReg:
      feaddr_ = value & vtd::kEventAddrWritable;
      return;
    case vtd::kFeuaddrReg:
      feuaddr_ = ecap_.eim() ? value : 0;
      return;
    case vtd::kIqtReg:
      if (!qi) return;
      iqt_ = value & vtd::kIqOffsetMask;
      ProcessQueue();
      return;
    case vtd::kIqaReg:
      if (qi) iqa_.raw = SetLow(iqa_.raw, value) & vtd::Iqa::kWritable;
      return;
    case vtd::kIqaReg + 4:
      if (qi) iqa_.raw = SetHigh(iqa_.raw, value) & vtd::Iqa::kWritable;
      return;
    case vtd::kIcsReg:
      if (qi && (value & vtd::kIcsIwc) && (ics_ & vtd::kIcsIwc)) {
        ics_ &= ~vtd::kIcsIwc;
        // Servicing IWC clears a held invalidation-event interrupt.
        iectl_ip_ = false;
      }
      return;
    case vtd::kIectlReg:
      if (!qi) return;
      iectl_im_ = value & EventControl::kIm;
      if (!iectl_im_ && iectl_ip_) {
        iectl_ip_ = false;
        SendInvalidationEvent();
      }
      return;
    case vtd::kIedataReg:
      if (qi) iedata_ = value & vtd::kEventDataWritable;
      return;
    case vtd::kIeaddrReg:
      if (qi) ieaddr_ = value & vtd::kEventAddrWritable;
      return;
    case vtd::kIeuaddrReg:
      if (qi) ieuaddr_ = ecap_.eim() ? value : 0;
      return;
    case vtd::kIrtaReg:
    case vtd::kIrtaReg + 4: {
      if (!ir) return;
      uint64_t raw = offset == vtd::kIrtaReg ? SetLow(irta_reg_.raw, value)
                                             : SetHigh(irta_reg_.raw, value);
      raw &= vtd::Irta::kWritable;
      if (!ecap_.eim()) raw &= ~vtd::Irta::kEime;
      irta_reg_.raw = raw;
      return;
    }
    case vtd::kIvaReg:
      iva_ = SetLow(iva_, value) & vtd::IvaReg::kWritable;
      return;
    case vtd::kIvaReg + 4:
      iva_ = SetHigh(iva_, value) & vtd::IvaReg::kWritable;
      return;
    case vtd::kIotlbReg:
      iotlb_reg_ = SetLow(iotlb_reg_, value) & vtd::IotlbReg::kWritable;
      return;
    case vtd::kIotlbReg + 4:
      WriteIotlbHigh(value);
      return;
    default:
      break;
  }
  if (offset >= vtd::kFaultRecordsOffset) {
    WriteFaultRecordDword(offset, value);
  }
  // Everything else is read-only or reserved: writes ignored.
}

void VtdUnit::WriteGcmd(uint32_t value) {
  const uint32_t v = value & Gcmd::kAll;
  const bool ir = ecap_.ir();
  const bool qi = ecap_.qi();
  int serviced = 0;
  std::string done;
  const auto note = [&](std::string_view what) {
    ++serviced;
    if (!done.empty()) done += ", ";
    done += what;
  };

  if (v & Gcmd::kSrtp) {
    // 11.4.4.1 SRTP: latch RTADDR_REG; RTPS reports completion.
    rtaddr_latched_ = rtaddr_reg_;
    gsts_ |= Gsts::kRtps;
    note(absl::StrFormat("SRTP: root table %#x", rtaddr_latched_));
    if (hooks_.root_table_pointer) hooks_.root_table_pointer(rtaddr_latched_);
  }
  if ((v & Gcmd::kSirtp) && ir) {
    // 11.4.4.1 SIRTP: latch IRTA_REG; IRTPS reports completion. Software
    // must then invalidate the IEC globally, unless CAP.ESIRTPS.
    irta_latched_ = irta_reg_;
    gsts_ |= Gsts::kIrtps;
    std::string flushed;
    if (cap_.esirtps()) {
      flushed = absl::StrFormat(", IEC flushed (%d entries, ESIRTPS)",
                                IecInvalidateGlobal());
    }
    note(absl::StrFormat("SIRTP: table %#x, %u entries, %s%s",
                         irta_latched_.base(), irta_latched_.entries(),
                         irta_latched_.eime() ? "x2APIC (EIME=1)" : "xAPIC",
                         flushed));
  }
  if (qi && ((v ^ gsts_) & Gcmd::kQie)) {
    if (v & Gcmd::kQie) {
      gsts_ |= Gsts::kQies;
      note("QIE=1: queued invalidation enabled");
    } else {
      gsts_ &= ~Gsts::kQies;
      iqh_ = 0;  // 11.4.9.1: IQH resets when QI is disabled
      reorder_active_ = false;
      qi_stall_released_ = false;
      note("QIE=0: queued invalidation disabled, IQH reset");
    }
  }
  if (ir && ((v ^ gsts_) & Gcmd::kIre)) {
    gsts_ ^= Gsts::kIres;
    note((gsts_ & Gsts::kIres) ? "IRE=1: interrupt remapping enabled"
                               : "IRE=0: interrupt remapping disabled");
  }
  if (ir && ((v ^ gsts_) & Gcmd::kCfi)) {
    gsts_ ^= Gsts::kCfis;
    note((gsts_ & Gsts::kCfis)
             ? "CFI=1: compatibility format interrupts pass through"
             : "CFI=0: compatibility format interrupts blocked");
  }
  if ((v ^ gsts_) & Gcmd::kTe) {
    gsts_ ^= Gsts::kTes;
    const bool on = gsts_ & Gsts::kTes;
    note(on ? "TE=1: DMA remapping enabled" : "TE=0: DMA remapping disabled");
    if (hooks_.translation_enable) hooks_.translation_enable(on);
  }
  if (serviced > 0) {
    Trace(trace::VTD_COMMAND,
          absl::StrFormat("GCMD %#010x -> GSTS %#010x: %s%s", value, gsts_,
                          done,
                          serviced > 1 ? " (multiple commands in one write; "
                                         "VT-d 11.4.4.1 says one per write)"
                                       : ""),
          -1, config_.base + vtd::kGcmdReg, value);
  }
  if (gsts_ & Gsts::kQies) ProcessQueue();
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

void VtdUnit::WriteCcmdHigh(uint32_t value) {
  ccmd_ = SetHigh(ccmd_, value) & vtd::Ccmd::kWritable;
  if (!(ccmd_ & vtd::Ccmd::kIcc)) return;
  const uint8_t cirg = Field(ccmd_, 62, 61);
  ccmd_ &= ~(vtd::Ccmd::kIcc | vtd::BitRange(60, 59));
  if (gsts_ & Gsts::kQies) {
    // 6.5.2: register-based invalidation must not be used with QI enabled.
    Trace(trace::VTD_COMMAND,
          "CCMD invalidation ignored: queued invalidation is enabled",
          -1, config_.base + vtd::kCcmdReg, ccmd_);
    return;
  }
  if (cirg == 0) {
    // CAIG=00b: request not performed (reserved granularity).
    Trace(trace::VTD_COMMAND,
          "CCMD invalidation with reserved granularity CIRG=00 ignored", -1,
          config_.base + vtd::kCcmdReg, ccmd_);
    return;
  }
  ccmd_ |= uint64_t{cirg} << vtd::Ccmd::kCaigShift;
  ContextCacheInvalidation inv;
  inv.granularity = static_cast<ContextCacheInvalidation::Granularity>(cirg);
  inv.domain_id = Field(ccmd_, 15, 0);
  inv.source_id = Field(ccmd_, 31, 16);
  inv.function_mask = Field(ccmd_, 33, 32);
  InvalidateContextCache(inv);
}

void VtdUnit::WriteIotlbHigh(uint32_t value) {
  iotlb_reg_ = SetHigh(iotlb_reg_, value) & vtd::IotlbReg::kWritable;
  if (!(iotlb_reg_ & vtd::IotlbReg::kIvt)) return;
  const uint8_t iirg = Field(iotlb_reg_, 61, 60);
  iotlb_reg_ &= ~(vtd::IotlbReg::kIvt | vtd::BitRange(58, 57));
  if (gsts_ & Gsts::kQies) {
    Trace(trace::VTD_COMMAND,
          "IOTLB invalidation ignored: queued invalidation is enabled", -1,
          config_.base + vtd::kIotlbReg, iotlb_reg_);
    return;
  }
  if (iirg == 0) {
    Trace(trace::VTD_COMMAND,
          "IOTLB invalidation with reserved granularity IIRG=00 ignored", -1,
          config_.base + vtd::kIotlbReg, iotlb_reg_);
    return;
  }
  iotlb_reg_ |= uint64_t{iirg} << vtd::IotlbReg::kIaigShift;
  IotlbInvalidation inv;
  inv.granularity = static_cast<IotlbInvalidation::Granularity>(iirg);
  inv.domain_id = Field(iotlb_reg_, 47, 32);
  inv.drain_reads = iotlb_reg_ & vtd::IotlbReg::kDr;
  inv.drain_writes = iotlb_reg_ & vtd::IotlbReg::kDw;
  inv.address = iva_ & vtd::BitRange(63, 12);
  inv.address_mask = Field(iva_, 5, 0);
  inv.invalidation_hint = iva_ & Bit(6);
  InvalidateIotlb(inv);
}

void VtdUnit::InvalidateContextCache(const ContextCacheInvalidation& inv) {
  static constexpr const char* kNames[] = {"reserved", "global", "domain",
                                           "device"};
  Trace(trace::VTD_COMMAND,
        absl::StrFormat("%s context-cache invalidation: %s did %u sid %s fm %u",
                        inv.queued ? "queued" : "register",
                        kNames[static_cast<int>(inv.granularity) & 3],
                        inv.domain_id, FormatRequesterId(inv.source_id),
                        inv.function_mask));
  if (hooks_.context_cache) hooks_.context_cache(inv);
}

void VtdUnit::InvalidateIotlb(const IotlbInvalidation& inv) {
  static constexpr const char* kNames[] = {"reserved", "global", "domain",
                                           "page"};
  Trace(trace::VTD_COMMAND,
        absl::StrFormat("%s IOTLB invalidation: %s did %u addr %#x am %u%s",
                        inv.queued ? "queued" : "register",
                        kNames[static_cast<int>(inv.granularity) & 3],
                        inv.domain_id, inv.address, inv.address_mask,
                        inv.invalidation_hint ? " ih" : ""));
  if (hooks_.iotlb) hooks_.iotlb(inv);
}

// ---------------------------------------------------------------------------
// Interrupt remapping.
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
  if (!SourceIdVerified(irte, message.requester_id)) {
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
// Fault recording and the event interrupts (ch. 7).
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

void VtdUnit::Trace(Stage stage, const std::string& detail, int vector,
                    uint64_t address, uint64_t data, uint32_t rid) {
  if (!tracing()) return;
  tracer_->Emit(clock_ != nullptr ? clock_->Now() : 0, stage, -1, detail,
                vector, address, data, rid);
}

}  // namespace irqlab
