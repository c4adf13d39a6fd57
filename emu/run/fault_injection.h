// Fault injection for scenarios (Scenario.faults, emu/run/scenario.proto): what
// a fault-injection campaign perturbs, applied to a built Machine.
//
// Triggers: a virtual time (`at`), the N-th trace line that contains given
// strings, or a seeded probability per matching trace line. A triggered
// fault is applied as a scenario action at the tick of the matching line
// (EventPriority::kScenarioAction), never inside the stage that emitted it,
// so the interrupt path is never re-entered. Probabilities draw from a
// std::mt19937_64 seeded with (seed, fault index), converted to [0, 1) by
// the top 53 bits (no implementation-defined distribution), so the same
// scenario and seed inject the same faults — and replay the same trace.
//
// Faults (each traced as FAULT_INJECT, "fault[i]: ..."): an arbitrary MSI
// at the machine's MSI entry (wrong requester id, wrong handle,
// compatibility format, outside the window); a guest IRTE rewritten in
// memory without invalidation (cleared, vector, present, SID,
// destination); an IOAPIC RTE rewritten; routed interrupts dropped or
// duplicated by the VMM; IEC invalidations skipped by the guest vIOMMU;
// invalidation descriptors dropped (by type), delayed (the queue stalls)
// or reordered by the guest vIOMMU (iommu/vtd_unit.h); a
// spurious interrupt; the WCN6855 firmware firing a source (e.g. before
// the driver is ready); guest memory holding the tables becoming
// unreadable for the vIOMMU; device MSIs vanishing (`vanish`: the
// self-test of the interrupt accounting, emu/core/irq_ledger.h); a stray write
// to a guest PCI function's MSI-X table entry (through its table BAR);
// EOI broadcasts to the IOAPIC delayed (Machine::DelayEoiBroadcasts);
// IOAPIC RTE writes in the seed-003 pre-fix route order
// (IoApic::OverrideNextRteWriteOrder).
#ifndef IRQLAB_EMU_RUN_FAULT_INJECTION_H_
#define IRQLAB_EMU_RUN_FAULT_INJECTION_H_

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "emu/machine/machine.h"
#include "emu/run/scenario.pb.h"
#include "emu/core/trace.h"

namespace irqlab {

class FaultInjector : public TraceSink {
 public:
  // Validates the faults against `machine` (InvalidArgument naming
  // "faults[i]...": a fault that needs a part the machine lacks, an index
  // out of range) and schedules the time-triggered ones. The caller adds
  // the injector to the machine's tracer when has_trace_triggers().
  static absl::StatusOr<std::unique_ptr<FaultInjector>> Create(
      const google::protobuf::RepeatedPtrField<scenario::Fault>& faults,
      uint64_t seed, Machine* machine);

  bool has_trace_triggers() const;
  // TraceSink: matches trace-triggered faults.
  void Emit(const TraceEvent& event) override;
  // Faults applied so far.
  uint64_t applied() const { return applied_; }

 private:
  FaultInjector(Machine* machine, uint64_t seed);
  void Schedule(int index);
  void Apply(int index);
  void Note(int index, const std::string& what);

  struct Entry {
    scenario::Fault fault;
    uint32_t seen = 0;    // matching lines so far
    uint32_t fired = 0;   // times triggered
    std::mt19937_64 rng;
  };
  Machine* const machine_;
  std::vector<Entry> entries_;
  uint64_t applied_ = 0;
  bool in_emit_ = false;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_RUN_FAULT_INJECTION_H_
