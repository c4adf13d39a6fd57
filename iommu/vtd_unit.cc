// VtdUnit, the unit and its register page ([VT-d] ch. 11): construction
// and config validation (CAP/ECAP built from VtdConfig, 11.4.2/11.4.3), the
// 4 KiB register page with its access rules (11.2: aligned dwords and
// qwords; reserved bits read 0), GCMD -> GSTS (11.4.4), latching the root
// table pointer (SRTP, RTADDR 11.4.5) and the interrupt remapping table
// pointer (SIRTP, IRTA 11.4.10.1), register-based invalidation through
// CCMD/IOTLB_REG (6.5.1, 11.4.6, 11.4.8) handed to the DMA side, and the
// unit's trace helper. Interrupt remapping is in vtd_ir.cc, fault recording
// and the event interrupts in vtd_fault.cc, queued invalidation in
// vtd_qi.cc; the model and its contracts are in vtd_unit.h.
//
// Not modelled here: write-buffer flushing and advanced fault logging
// (CAP.RWBF=0, CAP.AFL=0: WBF, SFL and EAFL are ignored), protected memory
// regions (no PMEN/PLMBASE/... registers: they read 0), scalable mode
// (RTADDR.TTM is stored, not acted on), the page request queue, performance
// monitoring; commands complete at once (GSTS is final when the GCMD write
// returns).
#include "iommu/vtd_unit.h"

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace irqlab {

using vtd::Bit;
using vtd::EventControl;
using vtd::Field;
using vtd::Gcmd;
using vtd::Gsts;

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
    return ReadFaultRecordDword(offset);
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
      WriteFectl(value);
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
      if (qi) WriteIectl(value);
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

void VtdUnit::Trace(Stage stage, const std::string& detail, int vector,
                    uint64_t address, uint64_t data, uint32_t rid) {
  if (!tracing()) return;
  tracer_->Emit(clock_ != nullptr ? clock_->Now() : 0, stage, -1, detail,
                vector, address, data, rid);
}

}  // namespace irqlab
