#include "emu/core/irq_ledger.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace irqlab {

std::string_view IrqSourceName(IrqSource source) {
  switch (source) {
    case IrqSource::kDevice: return "device";
    case IrqSource::kIoApic: return "ioapic";
    case IrqSource::kVmmRoute: return "vmm-route";
    case IrqSource::kPostedPir: return "posted-pir";
    case IrqSource::kHostDevice: return "host-device";
    case IrqSource::kFaultInjection: return "injected";
  }
  return "?";
}

void IrqLedger::AddViolation(std::string_view what) {
  ++violation_count_;
  if (violations_.size() < kMaxKeptViolations) {
    violations_.push_back(absl::StrFormat("t=%010d %s", clock_->Now(), what));
  }
}

void IrqLedger::RecordLost(IrqSource source, std::string_view what) {
  ++counts_[static_cast<int>(source)][static_cast<int>(MsiOutcome::kLost)];
  AddViolation(absl::StrCat(std::string(IrqSourceName(source)), " ", std::string(what),
                            " vanished: no stage of the delivery chain took it, "
                            "faulted it or discarded it"));
}

uint64_t IrqLedger::raised() const {
  uint64_t n = 0;
  for (const auto& per_source : counts_) {
    for (uint64_t c : per_source) n += c;
  }
  return n;
}

std::string IrqLedger::Summary() const {
  std::string out = absl::StrCat(raised(), " raised");
  bool first_source = true;
  for (int s = 0; s < kNumIrqSources; ++s) {
    uint64_t total = 0;
    for (uint64_t c : counts_[s]) total += c;
    if (total == 0) continue;
    absl::StrAppend(&out, first_source ? ": " : ", ",
                    std::string(IrqSourceName(static_cast<IrqSource>(s))), " ", total, " (");
    first_source = false;
    bool first_outcome = true;
    for (int o = 0; o < kNumMsiOutcomes; ++o) {
      if (counts_[s][o] == 0) continue;
      absl::StrAppend(&out, first_outcome ? "" : ", ",
                      std::string(MsiOutcomeName(static_cast<MsiOutcome>(o))), " ", counts_[s][o]);
      first_outcome = false;
    }
    out += ")";
  }
  if (holds()) return absl::StrCat(out, "; accounting holds");
  return absl::StrCat(out, "; accounting violated: ", violation_count_,
                      violation_count_ == 1 ? " violation" : " violations",
                      ", first: ", violations_.front());
}

}  // namespace irqlab
