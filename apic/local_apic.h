// LocalApic: one CPU's local APIC (Intel SDM vol. 3, chapter 11), as a pure
// state machine. It knows nothing of Unicorn: the vCPU asks it what is
// pending (InterruptSource), the machine routes the CPU's APIC-page MMIO and
// APIC MSRs to it, and the APIC bus (apic/apic_bus.h) carries its IPIs and
// the MSIs addressed to it.
//
// Modelled:
//   - xAPIC register page (11.4.1, Table 11-1) through IoHandler, and the
//     x2APIC MSRs 0x800-0x8FF (11.12.1.2, Table 11-6) with their #GP rules;
//   - IA32_APIC_BASE (11.4.4) and the disabled/xAPIC/x2APIC state machine
//     (11.12.5); relocation of the xAPIC page (DecodesMmio());
//   - IRR/ISR/TMR, TPR/PPR/APR, priority classes (11.8.3.1, 11.8.4) and EOI
//     with level-triggered EOI broadcast / directed-EOI suppression (11.8.5);
//   - the error status register with write-then-read semantics and the
//     error LVT (11.5.3);
//   - the software enable in the SVR and its forced LVT masking (11.4.7.2);
//   - the ICR / SELF_IPI (11.6.1, 11.12.9, 11.12.11), sent through IpiSink;
//   - the APIC timer: one-shot, periodic, TSC-deadline (11.5.4, 11.5.4.1)
//     on the virtual clock through the EventQueue;
//   - LINT0/LINT1 inputs per their LVT (11.5.1), including virtual-wire
//     pass-through (LINT1 -> NMI) while the APIC is globally disabled.
//
// Decisions (documented where they are implemented, summarised here):
//   - Timer input clock: 1 virtual tick (1 ns at the model's 1 GHz) per
//     timer clock before the divider; TDCR divides it by 1..128. TMCCT is
//     computed from the clock on every read, never decremented by polling.
//   - The TSC counts virtual ticks (emu/cpu/vcpu.h), so IA32_TSC_DEADLINE is
//     compared against Clock::Now().
//   - Max LVT entry (version[23:16]) is 5 (timer, thermal, PMC, LINT0,
//     LINT1, error) unless LocalApicConfig::cmci adds LVT CMCI (then 6).
//   - Timer mode 11b (reserved) runs as one-shot.
//   - The xAPIC ID register is writable (as on P6/Pentium 4; SDM 11.4.6 says
//     model specific); the x2APIC ID is read-only.
//   - Fixed/lowest-priority interrupts arriving while the APIC is software
//     disabled are dropped (and traced); INIT, NMI, SMI, SIPI are accepted
//     (11.4.7.2). Pending IRR/ISR bits stay and remain deliverable.
//   - INIT resets the APIC to its power-up state except the APIC ID,
//     IA32_APIC_BASE and the mode (11.4.7.3); entering the disabled state
//     (EN=0) resets the registers (11.12.5.1).
//   - Accesses of another size than 4 bytes, or not 16-byte aligned, read 0
//     and writes are ignored. A 32-bit aligned access to an unimplemented
//     offset of the page sets ESR bit 7 (illegal register address).
//
// Not modelled: SMI/SMM (SMIs are traced and ignored), ExtINT with an 8259
// behind the APIC (traced, dropped), remote read (RRD reads 0), delivery
// status (always idle), checksum/accept errors of the P6 serial APIC bus,
// thermal/PMC/CMCI sources (their LVTs are registers only).
//
// Thread-safety: none; the machine runs on one host thread. Callbacks are
// invoked synchronously from inside the call that caused them (they may call
// back into this LocalApic, e.g. PendingVector(), but must not destroy it).
#ifndef IRQLAB_APIC_LOCAL_APIC_H_
#define IRQLAB_APIC_LOCAL_APIC_H_

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "apic/apic_regs.h"
#include "emu/core/clock.h"
#include "emu/core/event_queue.h"
#include "emu/core/interrupt_source.h"
#include "emu/core/io.h"
#include "emu/core/msi.h"
#include "emu/core/msi_sink.h"
#include "emu/core/trace.h"

namespace irqlab {

// An IPI as the sender's ICR describes it, handed to the APIC bus.
struct Ipi {
  int source_cpu = 0;
  apic::IcrValue icr;
  // The sender is in x2APIC mode: the destination is 32 bits wide and
  // 0xFFFFFFFF is the broadcast id; otherwise 8 bits and 0xFF.
  bool x2apic = false;
};

// Where a LocalApic sends its non-self IPIs (the ApicBus).
class IpiSink {
 public:
  virtual ~IpiSink() = default;
  // Decodes the destination (shorthand, physical, logical), arbitrates
  // lowest priority, and Accept()s the IPI at each destination. Never fails:
  // an IPI with no destination is traced and lost, as on hardware.
  virtual void SendIpi(const Ipi& ipi) = 0;
  // The APIC's id, its IA32_APIC_BASE (enable, mode) or its x2APIC-mode
  // LDR changed: physical and logical (x2APIC cluster) destination lookups
  // cached by the bus are stale. (xAPIC-mode LDR/DFR writes are not
  // reported: the bus does not cache xAPIC logical destinations.)
  virtual void PhysicalIdChanged() {}
};

struct LocalApicConfig {
  int cpu = 0;                 // vCPU index: traces and the bus's routing
  uint32_t apic_id = 0;        // initial APIC id (CPUID.1:EBX[31:24] / 0xB)
  bool bsp = false;            // IA32_APIC_BASE.BSP
  bool x2apic = true;          // CPUID.1:ECX.x2APIC: EXTD may be set
  bool tsc_deadline = true;    // CPUID.1:ECX.TSC-Deadline: timer mode 10b
  bool directed_eoi = true;    // version bit 24 / SVR bit 12 supported
  bool cmci = false;           // LVT CMCI exists (max LVT entry 6, not 5)
  int phys_addr_bits = 36;     // MAXPHYADDR: APIC base bits above are reserved
};

struct LocalApicCallbacks {
  // Something may have become deliverable (a new highest deliverable vector,
  // an NMI, INIT or SIPI): the vCPU re-checks at the next instruction
  // boundary and wakes from HLT. Typically Vcpu::Kick().
  std::function<void()> kick;
  // EOI of a level-triggered vector, to be broadcast to every IOAPIC
  // (11.8.5), unless SVR bit 12 suppresses it.
  std::function<void(uint8_t vector)> eoi_broadcast;
  // INIT accepted (after the APIC's own INIT reset). Typically Vcpu::Init().
  std::function<void()> init;
  // Start-up IPI accepted with `vector`. Typically Vcpu::Sipi(vector).
  std::function<void(uint8_t vector)> startup;
};

class LocalApic : public InterruptSource, public IoHandler {
 public:
  // `clock` gives the current virtual time (inside a vCPU slice the machine
  // clock includes the running vCPU's progress); `events` schedules the
  // timer (kTimerExpiry). `tracer` may be null. None are owned; all must
  // outlive the LocalApic.
  LocalApic(const LocalApicConfig& config, const Clock* clock,
            EventQueue* events, Tracer* tracer, LocalApicCallbacks callbacks);
  ~LocalApic() override;
  LocalApic(const LocalApic&) = delete;
  LocalApic& operator=(const LocalApic&) = delete;

  // The bus for non-self IPIs (not owned). Without one such IPIs are traced
  // and lost. ApicBus::Attach() sets it.
  void set_ipi_sink(IpiSink* sink) { ipi_sink_ = sink; }

  // ---- InterruptSource (called by the vCPU). ----
  // Highest IRR vector whose priority class (vector[7:4]) is above
  // PPR[7:4] (11.8.3.1 / 11.8.4), or -1. Always -1 while globally disabled.
  int PendingVector() override;
  // INTA: moves `vector` from IRR to ISR (no-op if it is not in IRR).
  void Acknowledge(int vector) override;
  bool TakeNmi() override;

  // ---- xAPIC page (IoHandler). `offset` is within the 4 KiB page; the
  // caller routes only accesses of this CPU with DecodesMmio() true.
  // The origin is not used (the page is per CPU).
  uint64_t Read(const AccessOrigin& origin, uint64_t offset,
                unsigned size) override;
  void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
             uint64_t value) override;

  // True iff physical address `addr` lies in this CPU's xAPIC page and the
  // page is decoded: IA32_APIC_BASE.EN = 1 and not x2APIC mode (11.4.4,
  // 11.12.1: "in x2APIC mode the memory-mapped interface is not available").
  bool DecodesMmio(uint64_t addr) const;

  // ---- MSRs: IA32_APIC_BASE, IA32_TSC_DEADLINE, 0x800-0x8FF. ----
  // True for the MSR numbers this class handles.
  static bool HandlesMsr(uint32_t msr);
  // nullopt means #GP(0) (includes MSRs not handled here).
  std::optional<uint64_t> ReadMsr(uint32_t msr);
  // false means #GP(0) (includes MSRs not handled here).
  bool WriteMsr(uint32_t msr, uint64_t value);

  // IA32_APIC_BASE write with the transition rules of 11.12.5 (Figure
  // 11-28): disabled <-> xAPIC <-> x2APIC, x2APIC -> disabled. Returns
  // InvalidArgument for reserved bits (bits 7:0, 9, MAXPHYADDR and above,
  // EXTD without x2APIC support) and FailedPrecondition for an illegal
  // transition (x2APIC -> xAPIC, disabled -> x2APIC, EN=0 with EXTD=1); the
  // register is unchanged then and the vCPU raises #GP(0). The BSP flag is
  // read-only (writes of it are ignored).
  absl::Status WriteApicBase(uint64_t value);
  uint64_t apic_base() const { return apic_base_; }

  // ---- Inputs. ----
  // An interrupt message from the APIC bus (MSI, IPI, IOAPIC) or local
  // source (11.6 / 11.11): fixed and lowest priority set IRR (and TMR if
  // level), NMI makes an NMI pending, INIT resets the APIC and calls
  // `init`, StartUp calls `startup`, SMI is ignored, ExtINT is rejected
  // (both traced). Vectors 0-15 of fixed/lowest-priority messages are
  // illegal: ESR bit 6, not delivered (11.5.3). `requester_id` only labels
  // the trace. Returns kAccepted (a new IRR bit, NMI, INIT, start-up),
  // kCoalesced (the vector was already in the IRR, SDM 11.8.4) or
  // kDiscarded (rejected, traced with the rule).
  MsiOutcome Accept(uint8_t vector, bool trigger_level, DeliveryMode mode,
                    uint32_t requester_id = 0);
  // Level of input pin LINT0 (n = 0) or LINT1 (n = 1), delivered per its LVT
  // (11.5.1): edge-triggered entries fire on the rising (active) edge;
  // level-triggered fixed entries set Remote IRR and fire again after the
  // EOI if the line is still active. NMI fires on the active edge.
  void SetLint(int n, bool level);

  // INIT reset of the APIC (11.4.7.3): everything to power-up values except
  // the APIC ID, IA32_APIC_BASE and the x2APIC mode. Called by Accept(INIT).
  void InitReset();

  // ---- State, for the bus, the machine and tests. ----
  int cpu() const { return config_.cpu; }
  const LocalApicConfig& config() const { return config_; }
  bool globally_enabled() const { return apic_base_ & apic::kApicBaseEn; }
  bool x2apic_mode() const {
    return globally_enabled() && (apic_base_ & apic::kApicBaseExtd);
  }
  bool software_enabled() const { return svr_ & apic::kSvrEnable; }
  // Current APIC id: x2APIC id in x2APIC mode, else the 8-bit xAPIC id.
  uint32_t id() const { return id_; }
  // LDR as read: xAPIC logical id in 31:24; x2APIC cluster/bit derived.
  uint32_t ldr() const { return ldr_; }
  uint32_t dfr() const { return dfr_; }
  uint32_t svr() const { return svr_; }
  uint8_t tpr() const { return tpr_; }
  // Writes TPR and re-evaluates what is pending (the register write, the
  // x2APIC MSR and MOV to CR8 all end here; SDM 11.8.3.1, 10.8.6.1).
  void SetTpr(uint8_t tpr);
  uint8_t ppr() const;
  uint8_t apr() const;
  bool irr(int vector) const { return irr_.Test(vector); }
  bool isr(int vector) const { return isr_.Test(vector); }
  bool tmr(int vector) const { return tmr_.Test(vector); }
  // The ESR as software would read it after a write (pending errors
  // included), for tests and traces; does not change the register.
  uint32_t esr_pending() const { return esr_pending_; }
  uint32_t lvt(apic::Lvt lvt) const { return lvt_[static_cast<int>(lvt)]; }
  bool nmi_pending() const { return nmi_pending_; }
  // The virtual time the timer fires next, if armed.
  std::optional<uint64_t> timer_deadline() const;
  uint32_t version() const;

  // IRR bookkeeping for the interrupt accounting (emu/core/irq_ledger.h): every
  // IRR bit that was set leaves only through an INTA (Acknowledge) or a
  // reset, so at any time
  //   irr_set == acknowledged + irr_cleared_by_reset + popcount(IRR).
  struct IrrCounts {
    uint64_t irr_set = 0;               // vector accepted into an empty IRR bit
    uint64_t coalesced = 0;             // accepted while already in the IRR
    uint64_t acknowledged = 0;          // IRR -> ISR (INTA)
    uint64_t irr_cleared_by_reset = 0;  // IRR bits dropped by INIT / disable
  };
  const IrrCounts& irr_counts() const { return irr_counts_; }
  int irr_popcount() const { return irr_.Count(); }

 private:
  // 256-bit vector set (IRR/ISR/TMR).
  class VectorSet {
   public:
    void Set(int v) { w_[v >> 6] |= 1ull << (v & 63); }
    void Clear(int v) { w_[v >> 6] &= ~(1ull << (v & 63)); }
    bool Test(int v) const { return (w_[v >> 6] >> (v & 63)) & 1; }
    int Highest() const;  // -1 if empty
    uint32_t Word32(int i) const {
      return static_cast<uint32_t>(w_[i >> 1] >> (32 * (i & 1)));
    }
    void Reset() { w_ = {}; }
    int Count() const {
      int n = 0;
      for (uint64_t w : w_) n += __builtin_popcountll(w);
      return n;
    }

   private:
    std::array<uint64_t, 4> w_{};
  };

  // Register access shared by the xAPIC page and the x2APIC MSRs. Read
  // returns nullopt for a register that does not exist in the current mode.
  std::optional<uint32_t> ReadRegister(uint32_t offset);
  // xAPIC: write of a 32-bit aligned register.
  void WriteXapic(uint32_t offset, uint32_t value);
  // x2APIC: false means #GP. `value` is the full 64-bit WRMSR operand.
  bool WriteX2apic(uint32_t msr, uint64_t value);

  void ResetRegisters();  // power-up values, except id_, apic_base_
  uint32_t SvrWritableMask() const;
  void SetSvr(uint32_t value);
  uint32_t LvtWritableMask(apic::Lvt lvt) const;
  void WriteLvt(apic::Lvt lvt, uint32_t value);
  void WriteEsr();
  void Eoi();
  void SendIcr(const apic::IcrValue& icr, bool self_ipi_register);
  // Records `esr_bits` in the pending ESR and fires the error LVT.
  void RecordError(uint32_t esr_bits, std::string_view why, int vector = -1);
  // Accept() with a source label for the trace.
  MsiOutcome AcceptFrom(uint8_t vector, bool trigger_level, DeliveryMode mode,
                  uint32_t requester_id, std::string_view source);
  void EvaluateLint(int n);

  // Timer.
  apic::TimerMode timer_mode() const;
  uint32_t divisor() const;
  uint32_t CurrentCount() const;
  void WriteTmict(uint32_t value);
  void WriteTdcr(uint32_t value);
  void StartTimer(uint32_t count, uint64_t now);
  void StopTimer();
  void ScheduleTimer(uint64_t when);
  void OnTimer();
  void SetTscDeadline(uint64_t deadline);

  // Recompute the highest deliverable vector; trace and kick on change.
  void Update();
  void Kick();
  bool tracing() const;
  void Trace(Stage stage, std::string_view detail, int vector = -1,
             uint64_t address = 0, uint64_t data = 0, uint32_t rid = 0);
  uint64_t Now() const { return clock_->Now(); }

  // Static configuration.
  const LocalApicConfig config_;

  // Runtime glue.
  const Clock* clock_;
  EventQueue* events_;
  Tracer* tracer_;
  LocalApicCallbacks callbacks_;
  IpiSink* ipi_sink_ = nullptr;

  // Volatile state: architectural registers.
  uint64_t apic_base_;
  uint32_t id_;
  uint8_t tpr_ = 0;
  uint32_t ldr_ = 0;
  uint32_t dfr_ = apic::kDfrFlat;
  uint32_t svr_ = apic::kSvrReset;
  VectorSet irr_, isr_, tmr_;
  IrrCounts irr_counts_;
  uint32_t esr_ = 0;          // visible ESR (latched by the last write)
  uint32_t esr_pending_ = 0;  // errors since the last ESR write
  uint32_t icr_low_ = 0;
  uint32_t icr_high_ = 0;     // xAPIC: dest in 31:24; x2APIC: 32-bit dest
  std::array<uint32_t, apic::kNumLvts> lvt_{};
  uint32_t tmict_ = 0;
  uint32_t tdcr_ = 0;
  uint64_t tsc_deadline_ = 0;
  bool nmi_pending_ = false;

  // Volatile state: model bookkeeping.
  // Timer: counting since timer_base_time_ from timer_base_count_ (down).
  bool timer_running_ = false;
  uint64_t timer_base_time_ = 0;
  uint32_t timer_base_count_ = 0;
  uint64_t timer_next_ = 0;  // next expiry (valid while an event is queued)
  EventId timer_event_ = EventQueue::kInvalidEventId;
  std::array<bool, 2> lint_level_{};
  int last_deliverable_ = -1;
  bool in_error_lvt_ = false;  // guards error-LVT recursion
};

}  // namespace irqlab

#endif  // IRQLAB_APIC_LOCAL_APIC_H_
