#include "apic/local_apic.h"

#include <algorithm>
#include <bit>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace irqlab {

using apic::Lvt;
using apic::TimerMode;

namespace apic {

const char* ShorthandName(Shorthand s) {
  switch (s) {
    case Shorthand::kNone:
      return "none";
    case Shorthand::kSelf:
      return "self";
    case Shorthand::kAllIncludingSelf:
      return "all-including-self";
    case Shorthand::kAllExcludingSelf:
      return "all-excluding-self";
  }
  return "?";
}

const char* IcrDeliveryModeName(DeliveryMode mode) {
  if (mode == kStartUp) return "startup";
  // DeliveryModeName() returns views of string literals.
  return DeliveryModeName(mode).data();
}

}  // namespace apic

namespace {

constexpr int kIllegalVectorLimit = 16;  // vectors 0-15 (SDM 11.5.2, 11.5.3)

int LvtIndex(Lvt lvt) { return static_cast<int>(lvt); }

const char* LvtName(Lvt lvt) {
  switch (lvt) {
    case Lvt::kCmci:
      return "LVT CMCI";
    case Lvt::kTimer:
      return "LVT timer";
    case Lvt::kThermal:
      return "LVT thermal";
    case Lvt::kPmc:
      return "LVT PMC";
    case Lvt::kLint0:
      return "LINT0";
    case Lvt::kLint1:
      return "LINT1";
    case Lvt::kError:
      return "LVT error";
  }
  return "LVT ?";
}

// xAPIC offset -> LVT, for the LVT registers.
std::optional<Lvt> LvtForOffset(uint32_t offset) {
  switch (offset) {
    case apic::kRegLvtCmci:
      return Lvt::kCmci;
    case apic::kRegLvtTimer:
      return Lvt::kTimer;
    case apic::kRegLvtThermal:
      return Lvt::kThermal;
    case apic::kRegLvtPmc:
      return Lvt::kPmc;
    case apic::kRegLvtLint0:
      return Lvt::kLint0;
    case apic::kRegLvtLint1:
      return Lvt::kLint1;
    case apic::kRegLvtError:
      return Lvt::kError;
    default:
      return std::nullopt;
  }
}

// x2APIC logical id (SDM 11.12.10.2): cluster ID[19:4] in LDR[31:16],
// member bit 1 << ID[3:0] in LDR[15:0].
uint32_t X2apicLdr(uint32_t id) {
  return ((id >> 4) << 16) | (1u << (id & 0xF));
}

const char* ModeName(bool en, bool extd) {
  if (!en) return extd ? "invalid" : "disabled";
  return extd ? "x2APIC" : "xAPIC";
}

}  // namespace

int LocalApic::VectorSet::Highest() const {
  for (int i = 3; i >= 0; --i) {
    if (w_[i] != 0) return i * 64 + 63 - std::countl_zero(w_[i]);
  }
  return -1;
}

LocalApic::LocalApic(const LocalApicConfig& config, const Clock* clock,
                     EventQueue* events, Tracer* tracer,
                     LocalApicCallbacks callbacks)
    : config_(config),
      clock_(clock),
      events_(events),
      tracer_(tracer),
      callbacks_(std::move(callbacks)),
      // Power-up: globally enabled xAPIC at the default base (SDM 11.4.4).
      apic_base_(apic::kDefaultApicBase | apic::kApicBaseEn |
                 (config.bsp ? apic::kApicBaseBsp : 0)),
      // In xAPIC mode the id is 8 bits; a CPU with a larger initial id must
      // be switched to x2APIC mode before it is addressable.
      id_(config.apic_id & 0xFF) {
  ResetRegisters();
}

LocalApic::~LocalApic() { StopTimer(); }

// ---------------------------------------------------------------------------
// Reset.

// Power-up / INIT values (SDM 11.4.7.1 and 11.4.7.3): IRR, ISR, TMR, ICR,
// LDR, TPR, timer counts, divide configuration cleared; DFR all ones; LVTs
// masked; SVR 0xFF (software disabled). In x2APIC mode the LDR is derived
// from the x2APIC ID and cannot be cleared.
void LocalApic::ResetRegisters() {
  irr_counts_.irr_cleared_by_reset += irr_.Count();
  StopTimer();
  irr_.Reset();
  isr_.Reset();
  tmr_.Reset();
  tpr_ = 0;
  // In x2APIC mode this is the LDR it already has (derived from the fixed
  // x2APIC id); the bus indexes x2APIC LDRs, so report any change anyway.
  const uint32_t ldr = x2apic_mode() ? X2apicLdr(id_) : 0;
  if (x2apic_mode() && ldr != ldr_ && ipi_sink_ != nullptr) {
    ipi_sink_->PhysicalIdChanged();
  }
  ldr_ = ldr;
  dfr_ = apic::kDfrFlat;
  svr_ = apic::kSvrReset;
  esr_ = 0;
  esr_pending_ = 0;
  icr_low_ = 0;
  icr_high_ = 0;
  lvt_.fill(apic::kLvtReset);
  tmict_ = 0;
  tdcr_ = 0;
  tsc_deadline_ = 0;
  last_deliverable_ = -1;
}

void LocalApic::InitReset() {
  ResetRegisters();
  Trace(trace::APIC_STATE, "INIT reset: registers to power-up values, APIC software disabled");
  Update();
}

// ---------------------------------------------------------------------------
// Priorities (SDM 11.8.3.1 "Task and Processor Priorities").

// PPR: if TPR[7:4] >= ISRV[7:4] then PPR = TPR else PPR = ISRV[7:4] << 4,
// where ISRV is the highest in-service vector (0 if none).
uint8_t LocalApic::ppr() const {
  const int isrv = std::max(isr_.Highest(), 0);
  if ((tpr_ >> 4) >= (isrv >> 4)) return tpr_;
  return static_cast<uint8_t>(isrv & 0xF0);
}

// APR (SDM 11.6.2.4 / Figure 11-15, P6-family definition): if
// TPR[7:4] >= IRRV[7:4] and TPR[7:4] > ISRV[7:4] then APR = TPR, else
// APR[7:4] = max(TPR[7:4], ISRV[7:4], IRRV[7:4]) and APR[3:0] = 0.
uint8_t LocalApic::apr() const {
  const int isrv = std::max(isr_.Highest(), 0);
  const int irrv = std::max(irr_.Highest(), 0);
  if ((tpr_ >> 4) >= (irrv >> 4) && (tpr_ >> 4) > (isrv >> 4)) return tpr_;
  return static_cast<uint8_t>(std::max({tpr_ & 0xF0, isrv & 0xF0, irrv & 0xF0}));
}

uint32_t LocalApic::version() const {
  const uint32_t max_lvt = config_.cmci ? 6 : 5;
  return apic::kApicVersion | (max_lvt << 16) |
         (config_.directed_eoi ? apic::kVersionDirectedEoi : 0);
}

// ---------------------------------------------------------------------------
// InterruptSource.

// SDM 11.8.4 "Interrupt Acceptance for Fixed Interrupts": the processor is
// interrupted by the highest IRR vector only if its priority class is above
// the processor priority class PPR[7:4]. A globally disabled APIC (EN=0)
// delivers nothing.
int LocalApic::PendingVector() {
  if (!globally_enabled()) return -1;
  const int v = irr_.Highest();
  if (v < 0) return -1;
  return (v >> 4) > (ppr() >> 4) ? v : -1;
}

// INTA cycle (SDM 11.8.4): the vector moves from IRR to ISR; the TMR bit
// keeps the trigger mode recorded at acceptance.
void LocalApic::Acknowledge(int vector) {
  if (vector < 0 || vector > 255 || !irr_.Test(vector)) return;
  irr_.Clear(vector);
  isr_.Set(vector);
  ++irr_counts_.acknowledged;
  Update();
}

bool LocalApic::TakeNmi() {
  const bool n = nmi_pending_;
  nmi_pending_ = false;
  return n;
}

void LocalApic::Update() {
  const int d = PendingVector();
  if (d == last_deliverable_) return;
  last_deliverable_ = d;
  if (d < 0) return;
  if (tracing()) {
    Trace(trace::APIC_DELIVERABLE, absl::StrFormat("ppr=0x%02x", ppr()), d);
  }
  Kick();
}

void LocalApic::Kick() {
  if (callbacks_.kick) callbacks_.kick();
}

bool LocalApic::tracing() const {
  return tracer_ != nullptr && tracer_->enabled();
}

void LocalApic::Trace(Stage stage, std::string_view detail, int vector,
                      uint64_t address, uint64_t data, uint32_t rid) {
  if (!tracing()) return;
  tracer_->Emit(Now(), stage, config_.cpu, detail, vector, address, data, rid);
}

// ---------------------------------------------------------------------------
// Acceptance (SDM 11.6.2 / 11.8.4 / 11.11.2).

MsiOutcome LocalApic::Accept(uint8_t vector, bool trigger_level, DeliveryMode mode,
                             uint32_t requester_id) {
  return AcceptFrom(vector, trigger_level, mode, requester_id, "message");
}

MsiOutcome LocalApic::AcceptFrom(uint8_t vector, bool trigger_level,
                           DeliveryMode mode, uint32_t rid,
                           std::string_view source) {
  if (!globally_enabled()) {
    Trace(trace::APIC_DROPPED,
          absl::StrCat(std::string(source),
                       " dropped: APIC globally disabled (IA32_APIC_BASE.EN=0)"),
          vector, 0, 0, rid);
    return MsiOutcome::kDiscarded;
  }
  switch (mode) {
    case DeliveryMode::kFixed:
    case DeliveryMode::kLowestPriority: {
      if (vector < kIllegalVectorLimit) {
        // SDM 11.5.3, ESR bit 6: "Received Illegal Vector".
        RecordError(apic::kEsrReceiveIllegalVector,
                    absl::StrCat(std::string(source), " with illegal vector"),
                    vector);
        return MsiOutcome::kDiscarded;
      }
      if (!software_enabled()) {
        // SDM 11.4.7.2; see the header: fixed interrupts are not accepted.
        Trace(trace::APIC_DROPPED,
              absl::StrCat(std::string(source),
                           " dropped: APIC software disabled (SVR[8]=0)"),
              vector, 0, 0, rid);
        return MsiOutcome::kDiscarded;
      }
      const bool coalesced = irr_.Test(vector);
      irr_.Set(vector);
      ++(coalesced ? irr_counts_.coalesced : irr_counts_.irr_set);
      if (trigger_level) {
        tmr_.Set(vector);
      } else {
        tmr_.Clear(vector);
      }
      if (tracing()) {
        Trace(trace::APIC_ACCEPT,
              absl::StrFormat("%s %s %s%s", source, DeliveryModeName(mode),
                              trigger_level ? "level" : "edge",
                              coalesced ? " (coalesced: already in IRR)" : ""),
              vector, 0, 0, rid);
      }
      Update();
      return coalesced ? MsiOutcome::kCoalesced : MsiOutcome::kAccepted;
    }
    case DeliveryMode::kNmi:
      nmi_pending_ = true;
      Trace(trace::APIC_ACCEPT, absl::StrCat(std::string(source), " NMI"), 2, 0,
            0, rid);
      Kick();
      return MsiOutcome::kAccepted;
    case DeliveryMode::kInit:
      Trace(trace::APIC_ACCEPT, absl::StrCat(std::string(source), " INIT"), -1,
            0, 0, rid);
      InitReset();
      if (callbacks_.init) callbacks_.init();
      Kick();
      return MsiOutcome::kAccepted;
    case apic::kStartUp:
      Trace(trace::APIC_ACCEPT,
            absl::StrFormat("%s start-up, entry 0x%x", source, vector << 12),
            vector, 0, 0, rid);
      if (callbacks_.startup) callbacks_.startup(vector);
      Kick();
      return MsiOutcome::kAccepted;
    case DeliveryMode::kSmi:
      Trace(trace::APIC_DROPPED,
            absl::StrCat(std::string(source), " SMI ignored: SMM not modelled"),
            -1, 0, 0, rid);
      return MsiOutcome::kDiscarded;
    case DeliveryMode::kExtInt:
      Trace(trace::APIC_DROPPED,
            absl::StrCat(std::string(source),
                         " ExtINT rejected: no 8259 PIC behind this APIC"),
            -1, 0, 0, rid);
      return MsiOutcome::kDiscarded;
    case DeliveryMode::kReserved3:
      break;
  }
  Trace(trace::APIC_DROPPED,
        absl::StrCat(std::string(source), " dropped: reserved delivery mode"),
        vector, 0, 0, rid);
  return MsiOutcome::kDiscarded;
}

// SDM 11.5.3: errors are recorded in an internal register, made visible by
// the next ESR write, and signalled through the LVT error entry if unmasked.
void LocalApic::RecordError(uint32_t esr_bits, std::string_view why,
                            int vector) {
  esr_pending_ |= esr_bits;
  if (tracing()) {
    Trace(trace::APIC_ERROR,
          absl::StrFormat("ESR |= 0x%02x: %s", esr_bits, why), vector);
  }
  const uint32_t lvt = lvt_[LvtIndex(Lvt::kError)];
  // An error raised by delivering the error interrupt itself (an illegal
  // error vector) is recorded but does not fire the error LVT again.
  if ((lvt & apic::kLvtMasked) || in_error_lvt_) return;
  in_error_lvt_ = true;
  // Local interrupts are not messages: the interrupt accounting does not
  // count them, and an illegal vector is reported through the ESR.
  static_cast<void>(AcceptFrom(lvt & apic::kLvtVector, false,
                               DeliveryMode::kFixed, 0, "LVT error"));
  in_error_lvt_ = false;
}

// ---------------------------------------------------------------------------
// xAPIC page.

bool LocalApic::DecodesMmio(uint64_t addr) const {
  if (!globally_enabled() || x2apic_mode()) return false;
  const uint64_t base = apic_base_ & ~uint64_t{0xFFF} & ~(~uint64_t{0} << 52);
  return (addr & ~uint64_t{0xFFF}) == base;
}

uint64_t LocalApic::Read(const AccessOrigin& /*origin*/, uint64_t offset,
                         unsigned size) {
  // Not decoded: nothing answers (the bus would read all-ones).
  if (!globally_enabled() || x2apic_mode()) return AllOnes(size);
  // SDM 11.4.1: registers are 32 bits wide, on 128-bit boundaries, and must
  // be accessed with 32-bit aligned loads; anything else reads 0 here.
  if (size != 4 || (offset & 0xF) != 0 || offset >= apic::kApicPageSize) {
    return 0;
  }
  const std::optional<uint32_t> value =
      ReadRegister(static_cast<uint32_t>(offset));
  if (!value.has_value()) {
    RecordError(apic::kEsrIllegalRegisterAddress,
                absl::StrFormat("read of unimplemented register 0x%03x", offset));
    return 0;
  }
  return *value;
}

void LocalApic::Write(const AccessOrigin& /*origin*/, uint64_t offset,
                      unsigned size, uint64_t value) {
  if (!globally_enabled() || x2apic_mode()) return;
  if (size != 4 || (offset & 0xF) != 0 || offset >= apic::kApicPageSize) {
    return;
  }
  WriteXapic(static_cast<uint32_t>(offset), static_cast<uint32_t>(value));
}

std::optional<uint32_t> LocalApic::ReadRegister(uint32_t offset) {
  const bool x2 = x2apic_mode();
  if (offset >= apic::kRegIsr0 && offset <= apic::kRegIrr0 + 0x70) {
    const int word = static_cast<int>((offset - apic::kRegIsr0) >> 4);
    if (word < 8) return isr_.Word32(word);
    if (word < 16) return tmr_.Word32(word - 8);
    return irr_.Word32(word - 16);
  }
  if (std::optional<Lvt> lvt = LvtForOffset(offset)) {
    if (*lvt == Lvt::kCmci && !config_.cmci) return std::nullopt;
    return lvt_[LvtIndex(*lvt)];
  }
  switch (offset) {
    case apic::kRegId:
      // xAPIC: id in bits 31:24 (SDM 11.4.6); x2APIC: 32-bit id (11.12.5).
      return x2 ? id_ : id_ << 24;
    case apic::kRegVersion:
      return version();
    case apic::kRegTpr:
      return tpr_;
    case apic::kRegApr:
      if (x2) return std::nullopt;  // no APR in x2APIC mode (Table 11-6)
      return apr();
    case apic::kRegPpr:
      return ppr();
    case apic::kRegEoi:
      if (x2) return std::nullopt;  // write-only MSR: RDMSR #GP
      return 0;
    case apic::kRegRrd:
      if (x2) return std::nullopt;
      return 0;  // remote read not supported
    case apic::kRegLdr:
      return ldr_;
    case apic::kRegDfr:
      if (x2) return std::nullopt;  // no DFR in x2APIC mode (11.12.1.2)
      return dfr_;
    case apic::kRegSvr:
      return svr_;
    case apic::kRegEsr:
      return esr_;
    case apic::kRegIcrLow:
      return icr_low_;  // delivery status (bit 12) always idle
    case apic::kRegIcrHigh:
      if (x2) return std::nullopt;  // the 64-bit ICR is one MSR (0x830)
      return icr_high_;
    case apic::kRegTimerInitialCount:
      return tmict_;
    case apic::kRegTimerCurrentCount:
      return CurrentCount();
    case apic::kRegTimerDivide:
      return tdcr_;
    default:
      // Includes SELF_IPI (x2APIC only, write-only).
      return std::nullopt;
  }
}

void LocalApic::WriteXapic(uint32_t offset, uint32_t value) {
  if (offset == apic::kRegEoi) {  // the hot path, before the LVT lookup
    Eoi();  // any value (SDM 11.8.5)
    return;
  }
  if (std::optional<Lvt> lvt = LvtForOffset(offset)) {
    if (*lvt != Lvt::kCmci || config_.cmci) {
      WriteLvt(*lvt, value);
      return;
    }
  }
  switch (offset) {
    case apic::kRegId:
      id_ = value >> 24;  // writable in xAPIC mode (see header)
      if (ipi_sink_ != nullptr) ipi_sink_->PhysicalIdChanged();
      return;
    case apic::kRegTpr:
      SetTpr(value & 0xFF);
      return;
    case apic::kRegLdr:
      ldr_ = value & 0xFF000000;  // logical id in 31:24 (SDM 11.6.2.2)
      return;
    case apic::kRegDfr:
      dfr_ = value | apic::kDfrReservedOnes;  // bits 27:0 read as ones
      return;
    case apic::kRegSvr:
      SetSvr(value);
      return;
    case apic::kRegEsr:
      WriteEsr();
      return;
    case apic::kRegIcrLow:
      // SDM 11.6.1: writing the low doubleword sends the IPI.
      icr_low_ = value & apic::kIcrLowWritable;
      SendIcr(apic::IcrValue{icr_low_, icr_high_ >> 24}, false);
      return;
    case apic::kRegIcrHigh:
      icr_high_ = value & apic::kXapicIcrHighWritable;
      return;
    case apic::kRegTimerInitialCount:
      WriteTmict(value);
      return;
    case apic::kRegTimerDivide:
      WriteTdcr(value);
      return;
    // Read-only registers: writes are ignored.
    case apic::kRegVersion:
    case apic::kRegApr:
    case apic::kRegPpr:
    case apic::kRegRrd:
    case apic::kRegTimerCurrentCount:
      return;
    default:
      if (offset >= apic::kRegIsr0 && offset <= apic::kRegIrr0 + 0x70) return;
      RecordError(apic::kEsrIllegalRegisterAddress,
                  absl::StrFormat("write of unimplemented register 0x%03x", offset));
      return;
  }
}

// ---------------------------------------------------------------------------
// Registers with behaviour.

void LocalApic::SetTpr(uint8_t tpr) {
  tpr_ = tpr;
  Update();
}

// SDM 11.9 / 11.4.7.2: bits 7:0 vector, 8 software enable, 9 focus checking
// disable, 12 EOI-broadcast suppression (only if the version register
// advertises it). Clearing bit 8 masks every LVT.
uint32_t LocalApic::SvrWritableMask() const {
  return apic::kSvrVector | apic::kSvrEnable | apic::kSvrFocusDisable |
         (config_.directed_eoi ? apic::kSvrSuppressEoiBroadcast : 0);
}

void LocalApic::SetSvr(uint32_t value) {
  const bool was_enabled = software_enabled();
  svr_ = value & SvrWritableMask();
  if (was_enabled && !software_enabled()) {
    for (uint32_t& lvt : lvt_) lvt |= apic::kLvtMasked;
    Trace(trace::APIC_STATE, "software disabled (SVR[8]=0): all LVTs masked");
  } else if (!was_enabled && software_enabled()) {
    Trace(trace::APIC_STATE, "software enabled (SVR[8]=1)");
  }
  Update();
}

uint32_t LocalApic::LvtWritableMask(Lvt lvt) const {
  uint32_t mask = apic::LvtWritableMask(lvt);
  // Bit 18 (TSC-deadline) is reserved without the feature (SDM 11.5.4.1).
  if (lvt == Lvt::kTimer && !config_.tsc_deadline) mask &= ~(1u << 18);
  return mask;
}

void LocalApic::WriteLvt(Lvt lvt, uint32_t value) {
  const int i = LvtIndex(lvt);
  const uint32_t old = lvt_[i];
  uint32_t v = value & LvtWritableMask(lvt);
  // SDM 11.4.7.2: while software disabled, the mask bits stay set.
  if (!software_enabled()) v |= apic::kLvtMasked;
  v |= old & apic::kLvtRemoteIrr;  // read-only, kept
  if (lvt == Lvt::kTimer) {
    const auto mode_of = [](uint32_t x) {
      return static_cast<TimerMode>((x >> 17) & 3);
    };
    const bool was_deadline = mode_of(old) == TimerMode::kTscDeadline;
    const bool is_deadline = mode_of(v) == TimerMode::kTscDeadline;
    lvt_[i] = v;
    // SDM 11.5.4.1: switching into or out of TSC-deadline mode disarms the
    // timer (TMICT and IA32_TSC_DEADLINE are cleared). One-shot <-> periodic
    // switches keep counting; the new mode applies at the next expiry.
    if (was_deadline != is_deadline) {
      StopTimer();
      tmict_ = 0;
      tsc_deadline_ = 0;
      Trace(trace::APIC_TIMER,
            is_deadline ? "mode -> TSC-deadline: timer disarmed"
                        : "mode TSC-deadline -> count: timer disarmed");
    }
    return;
  }
  lvt_[i] = v;
  if (lvt == Lvt::kLint0) EvaluateLint(0);
  if (lvt == Lvt::kLint1) EvaluateLint(1);
}

void LocalApic::WriteEsr() {
  esr_ = esr_pending_;
  esr_pending_ = 0;
}

// SDM 11.8.5 "Signaling Interrupt Servicing Completion": the EOI retires the
// highest-priority in-service vector. For a level-triggered vector (TMR set)
// the EOI is broadcast to all IOAPICs, unless SVR bit 12 suppresses the
// broadcast (software then EOIs the IOAPIC directly, 11.8.5 "directed EOI").
void LocalApic::Eoi() {
  const int v = isr_.Highest();
  if (v < 0) {
    Trace(trace::APIC_EOI, "EOI with no interrupt in service: ignored");
    return;
  }
  isr_.Clear(v);
  const bool level = tmr_.Test(v);
  const bool suppress =
      config_.directed_eoi && (svr_ & apic::kSvrSuppressEoiBroadcast);
  if (tracing()) {
    Trace(trace::APIC_EOI,
          !level     ? "edge"
          : suppress ? "level: broadcast suppressed (SVR[12]), directed EOI expected"
                     : "level: EOI broadcast to IOAPICs",
          v);
  }
  // A level-triggered LINT input waits for this EOI (Remote IRR, 11.5.1).
  for (int n = 0; n < 2; ++n) {
    uint32_t& lvt = lvt_[LvtIndex(n == 0 ? Lvt::kLint0 : Lvt::kLint1)];
    if ((lvt & apic::kLvtRemoteIrr) && (lvt & apic::kLvtVector) == uint32_t(v)) {
      lvt &= ~apic::kLvtRemoteIrr;
    }
  }
  Update();
  if (level && !suppress && callbacks_.eoi_broadcast) {
    callbacks_.eoi_broadcast(static_cast<uint8_t>(v));
  }
  EvaluateLint(0);
  EvaluateLint(1);
}

// SDM 11.6.1 "Interrupt Command Register": validity rules follow Table 11-?
// ("Valid Combinations for the Pentium 4 and Intel Xeon Processors' Local
// xAPIC Interrupt Command Register"): the self shorthand is valid with fixed
// delivery only; lowest priority is invalid with the broadcast shorthands;
// INIT level de-assert is accepted and does nothing.
void LocalApic::SendIcr(const apic::IcrValue& icr, bool self_ipi_register) {
  const DeliveryMode mode = icr.delivery_mode();
  const apic::Shorthand sh =
      self_ipi_register ? apic::Shorthand::kSelf : icr.shorthand();
  const bool self = sh == apic::Shorthand::kSelf;
  if (tracing()) {
    Trace(trace::IPI,
          absl::StrFormat("send %s %s dest 0x%x %s shorthand %s%s",
                          apic::IcrDeliveryModeName(mode),
                          icr.trigger_level() ? "level" : "edge",
                          icr.destination,
                          icr.logical() ? "logical" : "physical",
                          apic::ShorthandName(sh),
                          self_ipi_register ? " (SELF_IPI)" : ""),
          icr.vector(), 0, (uint64_t{icr.destination} << 32) | icr.low);
  }
  if (mode == DeliveryMode::kInit && icr.trigger_level() &&
      !icr.level_assert()) {
    Trace(trace::IPI, "INIT level de-assert: no-op (not supported since Pentium 4)");
    return;
  }
  const bool fixed_like = mode == DeliveryMode::kFixed ||
                          mode == DeliveryMode::kLowestPriority;
  if (fixed_like && icr.vector() < kIllegalVectorLimit) {
    // SDM 11.5.3 bit 5 "Send Illegal Vector"; bit 6 also covers an illegal
    // vector "generated ... via a self IPI".
    RecordError(apic::kEsrSendIllegalVector |
                    (self ? uint32_t{apic::kEsrReceiveIllegalVector} : 0u),
                "IPI with illegal vector not sent", icr.vector());
    return;
  }
  if (mode == DeliveryMode::kReserved3) {
    Trace(trace::IPI, "dropped: reserved delivery mode 011b", icr.vector());
    return;
  }
  if (self && mode != DeliveryMode::kFixed) {
    Trace(trace::IPI, "dropped: self shorthand is valid with fixed delivery only",
          icr.vector());
    return;
  }
  if (mode == DeliveryMode::kLowestPriority && sh != apic::Shorthand::kNone) {
    Trace(trace::IPI, "dropped: lowest priority is invalid with a broadcast shorthand",
          icr.vector());
    return;
  }
  if (self) {
    // Self IPIs never leave the APIC (and are not counted as messages).
    static_cast<void>(
        AcceptFrom(icr.vector(), icr.trigger_level(), mode, 0, "self IPI"));
    return;
  }
  if (ipi_sink_ == nullptr) {
    Trace(trace::IPI, "lost: no APIC bus attached", icr.vector());
    return;
  }
  ipi_sink_->SendIpi(Ipi{config_.cpu, icr, x2apic_mode()});
}

// ---------------------------------------------------------------------------
// Timer (SDM 11.5.4). Input clock: one virtual tick per timer clock before
// the divider (the APIC timer runs at the model's 1 GHz "bus" clock).

TimerMode LocalApic::timer_mode() const {
  const auto m = static_cast<TimerMode>(
      (lvt_[LvtIndex(Lvt::kTimer)] >> 17) & 3);
  return m == TimerMode::kReserved ? TimerMode::kOneShot : m;
}

uint32_t LocalApic::divisor() const { return apic::TimerDivisor(tdcr_); }

// TMCCT from the virtual clock: counts down once per `divisor` ticks from
// timer_base_count_ at timer_base_time_; a periodic timer reloads TMICT at
// zero, a one-shot timer stays at 0. TSC-deadline mode reads 0 (11.5.4.1).
uint32_t LocalApic::CurrentCount() const {
  if (!timer_running_ || timer_mode() == TimerMode::kTscDeadline) return 0;
  const uint64_t now = Now();
  const uint64_t elapsed =
      now > timer_base_time_ ? (now - timer_base_time_) / divisor() : 0;
  if (elapsed < timer_base_count_) {
    return static_cast<uint32_t>(timer_base_count_ - elapsed);
  }
  if (timer_mode() == TimerMode::kPeriodic && tmict_ != 0) {
    return tmict_ - static_cast<uint32_t>((elapsed - timer_base_count_) % tmict_);
  }
  return 0;
}

void LocalApic::StartTimer(uint32_t count, uint64_t now) {
  StopTimer();
  timer_running_ = true;
  timer_base_time_ = now;
  timer_base_count_ = count;
  ScheduleTimer(now + uint64_t{count} * divisor());
}

void LocalApic::StopTimer() {
  if (timer_event_ != EventQueue::kInvalidEventId) {
    events_->Cancel(timer_event_);
    timer_event_ = EventQueue::kInvalidEventId;
  }
  timer_running_ = false;
}

void LocalApic::ScheduleTimer(uint64_t when) {
  timer_next_ = when;
  timer_event_ = events_->Schedule(
      when, EventPriority::kTimerExpiry,
      absl::StrFormat("cpu%d: lapic timer", config_.cpu), [this] {
        timer_event_ = EventQueue::kInvalidEventId;
        OnTimer();
      });
}

std::optional<uint64_t> LocalApic::timer_deadline() const {
  if (timer_event_ == EventQueue::kInvalidEventId) return std::nullopt;
  return timer_next_;
}

void LocalApic::WriteTmict(uint32_t value) {
  // SDM 11.5.4.1: in TSC-deadline mode writes to TMICT are ignored.
  if (timer_mode() == TimerMode::kTscDeadline) return;
  tmict_ = value;
  if (value == 0) {
    // SDM 11.5.4: "A write of 0 to the initial-count register effectively
    // stops the local APIC timer, in both one-shot and periodic mode."
    StopTimer();
    Trace(trace::APIC_TIMER, "stopped (TMICT=0)");
    return;
  }
  StartTimer(value, Now());
  if (tracing()) {
    Trace(trace::APIC_TIMER,
          absl::StrFormat("armed %s count %u divide %u: expires t=%d",
                          timer_mode() == TimerMode::kPeriodic ? "periodic"
                                                               : "one-shot",
                          value, divisor(), timer_next_),
          lvt_[LvtIndex(Lvt::kTimer)] & apic::kLvtVector);
  }
}

// A divide change while counting continues the remaining count at the new
// rate from now (the partial timer clock in progress is dropped).
void LocalApic::WriteTdcr(uint32_t value) {
  const uint32_t old_divisor = divisor();
  const uint32_t remaining = CurrentCount();
  tdcr_ = value & apic::kTdcrMask;
  if (timer_running_ && timer_mode() != TimerMode::kTscDeadline &&
      divisor() != old_divisor && remaining != 0) {
    StartTimer(remaining, Now());
  }
}

void LocalApic::SetTscDeadline(uint64_t deadline) {
  StopTimer();
  tsc_deadline_ = deadline;
  if (deadline == 0) {
    Trace(trace::APIC_TIMER, "TSC deadline disarmed");
    return;
  }
  timer_running_ = true;
  if (tracing()) {
    Trace(trace::APIC_TIMER, absl::StrFormat("TSC deadline armed: t=%d", deadline),
          lvt_[LvtIndex(Lvt::kTimer)] & apic::kLvtVector);
  }
  // SDM 11.5.4.1: a deadline at or before the current TSC fires at once.
  if (deadline <= Now()) {
    OnTimer();
    return;
  }
  ScheduleTimer(deadline);
}

void LocalApic::OnTimer() {
  const TimerMode mode = timer_mode();
  if (mode == TimerMode::kTscDeadline) {
    tsc_deadline_ = 0;  // SDM 11.5.4.1: the MSR is cleared when it fires
    timer_running_ = false;
  } else if (mode == TimerMode::kPeriodic && tmict_ != 0) {
    // Reload from the expiry time, not from now: no drift.
    timer_base_time_ = timer_next_;
    timer_base_count_ = tmict_;
    ScheduleTimer(timer_next_ + uint64_t{tmict_} * divisor());
  } else {
    timer_running_ = false;  // one-shot: TMCCT stays 0
  }
  const uint32_t lvt = lvt_[LvtIndex(Lvt::kTimer)];
  if (lvt & apic::kLvtMasked) {
    // SDM 11.5.4: the timer counts while masked; it just delivers nothing.
    Trace(trace::APIC_TIMER, "expired (masked: not delivered)",
          lvt & apic::kLvtVector);
    return;
  }
  Trace(trace::APIC_TIMER, "expired", lvt & apic::kLvtVector);
  // A local interrupt, not a message: not counted by the accounting.
  static_cast<void>(AcceptFrom(lvt & apic::kLvtVector, false,
                               DeliveryMode::kFixed, 0, "LVT timer"));
}

// ---------------------------------------------------------------------------
// LINT0 / LINT1 (SDM 11.5.1).

void LocalApic::SetLint(int n, bool level) {
  if (n != 0 && n != 1) return;
  const bool old_level = lint_level_[n];
  lint_level_[n] = level;
  if (!globally_enabled()) {
    // SDM 11.4.3: with the APIC disabled the pins are the processor's INTR
    // (LINT0) and NMI (LINT1) inputs ("virtual wire").
    if (level && !old_level) {
      if (n == 1) {
        nmi_pending_ = true;
        Trace(trace::APIC_ACCEPT, "LINT1 NMI (APIC disabled: NMI pin)", 2);
        Kick();
      } else {
        Trace(trace::APIC_DROPPED, "LINT0 INTR with APIC disabled: no 8259 PIC");
      }
    }
    return;
  }
  const Lvt which = n == 0 ? Lvt::kLint0 : Lvt::kLint1;
  const uint32_t lvt = lvt_[LvtIndex(which)];
  const bool low = lvt & apic::kLvtPolarityLow;
  const bool active = level != low;
  const bool rising = active && !(old_level != low);
  if (lvt & apic::kLvtMasked) return;
  const auto mode = static_cast<DeliveryMode>((lvt >> 8) & 7);
  switch (mode) {
    case DeliveryMode::kFixed:
      // LINT1 supports edge only (SDM 11.5.1: "level-sensitive interrupts
      // are not supported for LINT1").
      if ((lvt & apic::kLvtTriggerLevel) && n == 0) {
        EvaluateLint(n);
      } else if (rising) {
        // A local interrupt, not a message: not counted by the accounting.
        static_cast<void>(AcceptFrom(lvt & apic::kLvtVector, false,
                                     DeliveryMode::kFixed, 0, LvtName(which)));
      }
      return;
    case DeliveryMode::kNmi:  // always edge (11.5.1)
      if (rising) {
        nmi_pending_ = true;
        Trace(trace::APIC_ACCEPT, absl::StrCat(LvtName(which), " NMI"), 2);
        Kick();
      }
      return;
    case DeliveryMode::kInit:
      if (rising) {
        static_cast<void>(
            AcceptFrom(0, false, DeliveryMode::kInit, 0, LvtName(which)));
      }
      return;
    case DeliveryMode::kExtInt:
      if (rising) {
        Trace(trace::APIC_DROPPED,
              absl::StrCat(LvtName(which), " ExtINT dropped: no 8259 PIC"));
      }
      return;
    case DeliveryMode::kSmi:
      if (rising) {
        Trace(trace::APIC_DROPPED,
              absl::StrCat(LvtName(which), " SMI ignored: SMM not modelled"));
      }
      return;
    default:
      return;
  }
}

// Level-triggered fixed LINT0: deliver while active and Remote IRR is clear;
// Remote IRR is set on acceptance and cleared by the EOI of its vector.
void LocalApic::EvaluateLint(int n) {
  if (n != 0 || !globally_enabled()) return;  // LINT1 is edge-only
  uint32_t& lvt = lvt_[LvtIndex(Lvt::kLint0)];
  if ((lvt & apic::kLvtMasked) || !(lvt & apic::kLvtTriggerLevel) ||
      ((lvt >> 8) & 7) != 0 || (lvt & apic::kLvtRemoteIrr)) {
    return;
  }
  const bool active = lint_level_[0] != bool(lvt & apic::kLvtPolarityLow);
  if (!active) return;
  const MsiOutcome o = AcceptFrom(lvt & apic::kLvtVector, true, DeliveryMode::kFixed, 0,
                                 "LINT0");
  if (o == MsiOutcome::kAccepted || o == MsiOutcome::kCoalesced) {
    lvt |= apic::kLvtRemoteIrr;
  }
}

// ---------------------------------------------------------------------------
// MSRs.

bool LocalApic::HandlesMsr(uint32_t msr) {
  return msr == apic::kMsrApicBase || msr == apic::kMsrTscDeadline ||
         (msr >= apic::kMsrX2apicFirst && msr <= apic::kMsrX2apicLast);
}

// SDM 11.12.5 "x2APIC State Transitions", Figure 11-28: states (EN, EXTD)
// disabled (0,0), xAPIC (1,0), x2APIC (1,1); (0,1) is invalid. Legal:
// disabled->xAPIC, xAPIC->disabled, xAPIC->x2APIC, x2APIC->disabled, and any
// state to itself. Illegal (#GP): x2APIC->xAPIC, disabled->x2APIC, ->(0,1).
absl::Status LocalApic::WriteApicBase(uint64_t value) {
  uint64_t reserved = 0xFF | (1ull << 9);
  if (config_.phys_addr_bits < 64) reserved |= ~uint64_t{0} << config_.phys_addr_bits;
  if (!config_.x2apic) reserved |= apic::kApicBaseExtd;
  if (value & reserved) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "IA32_APIC_BASE write 0x%x sets reserved bits 0x%x", value,
        value & reserved));
  }
  const bool old_en = apic_base_ & apic::kApicBaseEn;
  const bool old_extd = apic_base_ & apic::kApicBaseExtd;
  const bool en = value & apic::kApicBaseEn;
  const bool extd = value & apic::kApicBaseExtd;
  const std::string transition =
      absl::StrCat(ModeName(old_en, old_extd), " -> ", ModeName(en, extd));
  if (!en && extd) {
    return absl::FailedPreconditionError(
        absl::StrCat("IA32_APIC_BASE: EN=0 with EXTD=1 is invalid (", transition, ")"));
  }
  if (old_en && old_extd && en && !extd) {
    return absl::FailedPreconditionError(absl::StrCat(
        "IA32_APIC_BASE: x2APIC -> xAPIC is illegal; disable first (", transition, ")"));
  }
  if (!old_en && en && extd) {
    return absl::FailedPreconditionError(absl::StrCat(
        "IA32_APIC_BASE: disabled -> x2APIC is illegal; enable xAPIC first (",
        transition, ")"));
  }
  const uint64_t old = apic_base_;
  apic_base_ = (value & ~apic::kApicBaseBsp) | (old & apic::kApicBaseBsp);
  if (ipi_sink_ != nullptr) ipi_sink_->PhysicalIdChanged();
  if (old_en && !en) {
    // SDM 11.12.5.1: entering the disabled state resets the APIC; the id
    // returns to the (8-bit xAPIC view of the) initial APIC id.
    id_ = config_.apic_id & 0xFF;
    ResetRegisters();
  } else if (!old_extd && extd) {
    // SDM 11.12.5.1: xAPIC -> x2APIC keeps the register state except that
    // the x2APIC ID is the initial APIC id and the LDR is derived from it.
    id_ = config_.apic_id;
    ldr_ = X2apicLdr(id_);
    icr_high_ = 0;
  }
  if (old != apic_base_ && tracing()) {
    Trace(trace::APIC_STATE,
          absl::StrFormat("IA32_APIC_BASE 0x%x -> 0x%x (%s)", old, apic_base_,
                          transition),
          -1, apic::kMsrApicBase, apic_base_);
  }
  Update();
  return absl::OkStatus();
}

std::optional<uint64_t> LocalApic::ReadMsr(uint32_t msr) {
  if (msr == apic::kMsrApicBase) return apic_base_;
  if (msr == apic::kMsrTscDeadline) {
    if (!config_.tsc_deadline) return std::nullopt;
    // SDM 11.5.4.1: reads 0 outside TSC-deadline mode.
    return timer_mode() == TimerMode::kTscDeadline ? tsc_deadline_ : 0;
  }
  if (msr < apic::kMsrX2apicFirst || msr > apic::kMsrX2apicLast) {
    return std::nullopt;
  }
  // SDM 11.12.1.2: the x2APIC MSRs #GP unless in x2APIC mode.
  if (!x2apic_mode()) {
    Trace(trace::MSR,
          absl::StrFormat("rdmsr 0x%x: x2APIC MSR outside x2APIC mode, #GP", msr),
          -1, msr);
    return std::nullopt;
  }
  if (msr == apic::kMsrX2apicIcr) {
    return (uint64_t{icr_high_} << 32) | icr_low_;
  }
  const std::optional<uint32_t> value = ReadRegister(apic::OffsetForX2apicMsr(msr));
  if (!value.has_value()) {
    Trace(trace::MSR, absl::StrFormat("rdmsr 0x%x: no such x2APIC register, #GP", msr),
          -1, msr);
    return std::nullopt;
  }
  return *value;
}

bool LocalApic::WriteMsr(uint32_t msr, uint64_t value) {
  if (msr == apic::kMsrApicBase) {
    const absl::Status status = WriteApicBase(value);
    if (!status.ok()) {
      Trace(trace::MSR, absl::StrCat("wrmsr 0x1b #GP: ", std::string(status.message())),
            -1, msr, value);
    }
    return status.ok();
  }
  if (msr == apic::kMsrTscDeadline) {
    if (!config_.tsc_deadline) return false;
    // SDM 11.5.4.1: writes outside TSC-deadline mode are ignored.
    if (timer_mode() == TimerMode::kTscDeadline) SetTscDeadline(value);
    return true;
  }
  if (msr < apic::kMsrX2apicFirst || msr > apic::kMsrX2apicLast) return false;
  if (!x2apic_mode()) {
    Trace(trace::MSR,
          absl::StrFormat("wrmsr 0x%x: x2APIC MSR outside x2APIC mode, #GP", msr),
          -1, msr, value);
    return false;
  }
  if (!WriteX2apic(msr, value)) {
    Trace(trace::MSR,
          absl::StrFormat("wrmsr 0x%x value 0x%x: read-only, reserved bits or no "
                          "such x2APIC register, #GP", msr, value),
          -1, msr, value);
    return false;
  }
  return true;
}

// SDM 11.12.1.2 (Table 11-6) and 11.12.1.3 "Reserved Bit Checking": WRMSR
// with a reserved bit set, to a read-only register, or to an MSR that does
// not exist #GPs. The upper 32 bits of every x2APIC MSR except the ICR are
// reserved. Read-only bits an LVT reads back (delivery status, Remote IRR)
// are accepted and ignored so read-modify-write works.
bool LocalApic::WriteX2apic(uint32_t msr, uint64_t value) {
  if (msr != apic::kMsrX2apicIcr && (value >> 32) != 0) return false;
  const uint32_t v = static_cast<uint32_t>(value);
  const uint32_t offset = apic::OffsetForX2apicMsr(msr);
  if (std::optional<Lvt> lvt = LvtForOffset(offset)) {
    if (*lvt == Lvt::kCmci && !config_.cmci) return false;
    if (v & ~(LvtWritableMask(*lvt) | apic::LvtReadOnlyMask(*lvt))) return false;
    WriteLvt(*lvt, v);
    return true;
  }
  switch (offset) {
    case apic::kRegTpr:
      if (v & ~0xFFu) return false;
      SetTpr(static_cast<uint8_t>(v));
      return true;
    case apic::kRegEoi:
      if (v != 0) return false;  // SDM 11.12.1.2: non-zero EOI #GPs
      Eoi();
      return true;
    case apic::kRegSvr:
      if (v & ~SvrWritableMask()) return false;
      SetSvr(v);
      return true;
    case apic::kRegEsr:
      if (v != 0) return false;  // SDM 11.5.3: only 0 in x2APIC mode
      WriteEsr();
      return true;
    case apic::kRegIcrLow: {
      const uint32_t low = v;
      if (low & ~apic::kIcrLowWritable) return false;
      icr_low_ = low;
      icr_high_ = static_cast<uint32_t>(value >> 32);
      SendIcr(apic::IcrValue{icr_low_, icr_high_}, false);
      return true;
    }
    case apic::kRegTimerInitialCount:
      WriteTmict(v);
      return true;
    case apic::kRegTimerDivide:
      if (v & ~apic::kTdcrMask) return false;
      WriteTdcr(v);
      return true;
    case apic::kRegSelfIpi:
      // SDM 11.12.11: vector in 7:0, fixed, edge, to self.
      if (v & ~0xFFu) return false;
      SendIcr(apic::IcrValue{v & 0xFF, 0}, true);
      return true;
    default:
      // Read-only (ID, version, PPR, LDR, ISR/TMR/IRR, TMCCT) and absent
      // (APR, RRD, DFR, ICR high, reserved) registers.
      return false;
  }
}

}  // namespace irqlab
