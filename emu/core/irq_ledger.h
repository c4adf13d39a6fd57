// Interrupt accounting: the run's ledger of every interrupt message a
// device, the IOAPIC, the VMM or the scenario raised, and what became of
// it. The invariant, checked at the end of every run (Machine::Run):
//
//   every raised interrupt was accepted by a local APIC, coalesced by a
//   documented rule, posted, blocked by a recorded fault, discarded by an
//   architectural rule or dropped by an injected fault -- nothing vanished.
//
// Each message's outcome comes back up the delivery chain (MsiSink::Signal
// returns an MsiOutcome, emu/core/msi_sink.h); the chain's entry points record it
// here, through an AccountingMsiSink in front of the chain or directly.
// A kLost outcome, or an end-of-run check that fails (Machine adds those:
// an accepted interrupt that a halted vCPU was never woken for, a local
// APIC whose IRR bits do not add up), is a violation with the event that
// was lost; the scenario runner turns violations into a failed expectation.
//
// Example (what `irqlab run` prints):
//
//   interrupts: 2003 raised: device 2001 (accepted 1990, coalesced 11),
//   ioapic 2 (accepted 2); accounting holds
//
// Deterministic: counts and violations depend only on the run.
#ifndef IRQLAB_EMU_CORE_IRQ_LEDGER_H_
#define IRQLAB_EMU_CORE_IRQ_LEDGER_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "emu/core/clock.h"
#include "emu/core/msi.h"
#include "emu/core/msi_sink.h"

namespace irqlab {

// Who raised an interrupt message.
enum class IrqSource : uint8_t {
  kDevice,          // a PCI function's MSI / MSI-X write (guest platform)
  kIoApic,          // an IOAPIC pin's redirection entry
  kVmmRoute,        // the VMM's MSI route (irqfd) for an assigned device
  kPostedPir,       // a PIR bit moved into a vCPU's APIC by posted-interrupt processing
  kHostDevice,      // a physical device's MSI on the host (device assignment)
  kFaultInjection,  // a hostile message the scenario injected
};
inline constexpr int kNumIrqSources = 6;
// "device", "ioapic", "vmm-route", "posted-pir", "host-device", "injected".
std::string_view IrqSourceName(IrqSource source);

class IrqLedger {
 public:
  // At most this many violations are kept with their text (all are counted).
  static constexpr size_t kMaxKeptViolations = 16;

  // `clock` timestamps violations; not owned, must outlive the ledger.
  explicit IrqLedger(const Clock* clock) : clock_(clock) {}

  // Records one raised message and its outcome. A kLost outcome is a
  // violation naming the message.
  void Record(IrqSource source, MsiOutcome outcome, const MsiMessage& message) {
    if (outcome == MsiOutcome::kLost) [[unlikely]] {
      RecordLost(source, absl::StrCat("interrupt ", message.ToString()));
    } else {
      RecordOutcome(source, outcome);
    }
  }
  // Records one raised interrupt whose outcome is not kLost.
  void RecordOutcome(IrqSource source, MsiOutcome outcome) {
    ++counts_[static_cast<int>(source)][static_cast<int>(outcome)];
  }
  // Records one raised interrupt that vanished, described by `what` (e.g.
  // "interrupt for gsi 40 (no route installed)"): a kLost count and a
  // violation "<source> <what> vanished: ...".
  void RecordLost(IrqSource source, std::string_view what);
  // A violation found by an end-of-run check ("what", without the time).
  void AddViolation(std::string_view what);

  uint64_t count(IrqSource source, MsiOutcome outcome) const {
    return counts_[static_cast<int>(source)][static_cast<int>(outcome)];
  }
  uint64_t raised() const;
  uint64_t violation_count() const { return violation_count_; }
  bool holds() const { return violation_count_ == 0; }
  // "t=0000001234 <what>" for the first kMaxKeptViolations violations.
  const std::vector<std::string>& violations() const { return violations_; }
  // One line: "N raised: SOURCE n (OUTCOME k, ...), ...; accounting holds"
  // or "...; accounting violated: V violations, first: ...". Sources and
  // outcomes with zero counts are left out.
  std::string Summary() const;

 private:

  const Clock* clock_;
  std::array<std::array<uint64_t, kNumMsiOutcomes>, kNumIrqSources> counts_{};
  uint64_t violation_count_ = 0;
  std::vector<std::string> violations_;
};

// An MsiSink decorator at a chain entry: forwards every message to `next`
// and records the outcome as raised by `source`. A null `next` loses the
// message (recorded as kLost: an unwired chain is an emulator defect).
class AccountingMsiSink : public MsiSink {
 public:
  // Neither is owned; both must outlive this sink's use.
  AccountingMsiSink(MsiSink* next, IrqLedger* ledger, IrqSource source)
      : next_(next), ledger_(ledger), source_(source) {}
  void set_next(MsiSink* next) { next_ = next; }
  // The accounting's self-test (fault kind `vanish`): the next `n` messages
  // are swallowed here without an outcome, as a defective stage would.
  void LoseNext(uint32_t n) { lose_ += n; }

  MsiOutcome Signal(const MsiMessage& message) override {
    const MsiOutcome o = Forwarding() ? next_->Signal(message) : MsiOutcome::kLost;
    ledger_->Record(source_, o, message);
    return o;
  }
  MsiOutcome SignalX2Apic(const MsiMessage& message, uint32_t destination) override {
    const MsiOutcome o =
        Forwarding() ? next_->SignalX2Apic(message, destination) : MsiOutcome::kLost;
    ledger_->Record(source_, o, message);
    return o;
  }

 private:
  bool Forwarding() {
    if (lose_ > 0) [[unlikely]] {
      --lose_;
      return false;
    }
    return next_ != nullptr;
  }

  uint32_t lose_ = 0;
  MsiSink* next_;
  IrqLedger* const ledger_;
  const IrqSource source_;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CORE_IRQ_LEDGER_H_
