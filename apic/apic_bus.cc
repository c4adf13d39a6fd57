#include "apic/apic_bus.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace irqlab {

ApicBus::ApicBus(const Clock* clock, Tracer* tracer, ApicBusConfig config)
    : config_(config), clock_(clock), tracer_(tracer) {}

void ApicBus::Attach(LocalApic* apic) {
  apic->set_ipi_sink(this);
  auto it = std::lower_bound(
      apics_.begin(), apics_.end(), apic,
      [](const LocalApic* a, const LocalApic* b) { return a->cpu() < b->cpu(); });
  apics_.insert(it, apic);
  if (apic->cpu() >= 0) {
    const size_t cpu = static_cast<size_t>(apic->cpu());
    if (by_cpu_.size() <= cpu) by_cpu_.resize(cpu + 1, nullptr);
    by_cpu_[cpu] = apic;
  }
  physical_index_valid_ = false;
}

LocalApic* ApicBus::apic(int cpu) const {
  if (cpu >= 0 && static_cast<size_t>(cpu) < by_cpu_.size()) return by_cpu_[cpu];
  if (cpu >= 0) return nullptr;
  // Negative CPU indices are not indexed (none are used; kept for the
  // contract "the APIC of vCPU `cpu`, or nullptr").
  for (LocalApic* a : apics_) {
    if (a->cpu() == cpu) return a;
  }
  return nullptr;
}

void ApicBus::Trace(Stage stage, int cpu, const std::string& detail, int vector,
                    uint64_t address, uint64_t data, uint32_t rid) {
  if (tracer_ == nullptr || !tracer_->enabled()) return;
  tracer_->Emit(clock_->Now(), stage, cpu, detail, vector, address, data, rid);
}

// SDM 11.6.2.1 (physical), 11.6.2.2 (logical, flat/cluster DFR models),
// 11.12.10.2 (x2APIC logical: cluster + 16-bit mask). See the header.
bool ApicBus::Matches(const LocalApic& apic, const ApicDestination& dest) {
  const uint32_t broadcast = dest.wide ? 0xFFFFFFFF : 0xFF;
  if (dest.id == broadcast) return true;
  if (!dest.logical) return apic.id() == dest.id;
  const uint32_t ldr = apic.ldr();
  if (apic.x2apic_mode()) {
    const uint32_t cluster = dest.id >> 16;
    return (ldr >> 16) == cluster && (ldr & dest.id & 0xFFFF) != 0;
  }
  const uint32_t mda = dest.id & 0xFF;
  const uint32_t logical_id = ldr >> 24;
  if ((apic.dfr() >> 28) == 0xF) {  // flat model
    return (logical_id & mda) != 0;
  }
  // Cluster model: MDA[7:4] cluster (0xF = all clusters), MDA[3:0] members.
  const bool cluster_ok = (mda >> 4) == 0xF || (mda >> 4) == (logical_id >> 4);
  return cluster_ok && (logical_id & mda & 0xF) != 0;
}

void ApicBus::BuildIndexes() const {
  physical_index_.clear();
  x2apic_clusters_.clear();
  xapic_enabled_.clear();
  for (LocalApic* a : apics_) {
    if (!a->globally_enabled()) continue;
    physical_index_[a->id()].push_back(a);
    if (a->x2apic_mode()) {
      x2apic_clusters_[a->ldr() >> 16].push_back(
          ClusterMember{static_cast<uint16_t>(a->ldr() & 0xFFFF), a});
    } else {
      xapic_enabled_.push_back(a);
    }
  }
  physical_index_valid_ = true;
}

const ApicBus::ApicList& ApicBus::PhysicalMatches(uint32_t id) const {
  static const ApicList kNone;
  if (!physical_index_valid_) BuildIndexes();
  auto it = physical_index_.find(id);
  return it == physical_index_.end() ? kNone : it->second;
}

// A logical destination other than the broadcast. x2APIC-mode APICs can
// only match through their cluster (Matches(): LDR[31:16] == DEST[31:16],
// DEST[31:16] is 0 for an 8-bit destination), and their LDR is derived from
// the read-only x2APIC id (SDM 11.12.10.2), so only the APICs of that
// cluster are compared. xAPIC-mode APICs have guest-written LDR/DFR (flat or
// cluster model, cluster 0xF = all): they are all compared. The two lists
// are merged back into CPU order.
ApicBus::ApicList ApicBus::LogicalMatches(const ApicDestination& dest) const {
  static const std::vector<ClusterMember> kNone;
  if (!physical_index_valid_) BuildIndexes();
  auto it = x2apic_clusters_.find(dest.id >> 16);
  const std::vector<ClusterMember>& x2 =
      it == x2apic_clusters_.end() ? kNone : it->second;
  // Matches() for a member of the cluster: LDR[15:0] & DEST[15:0] != 0.
  const uint32_t members = dest.id & 0xFFFF;
  ApicList out;
  auto x2_it = x2.begin();
  for (LocalApic* a : xapic_enabled_) {
    if (!Matches(*a, dest)) continue;
    for (; x2_it != x2.end() && x2_it->apic->cpu() < a->cpu(); ++x2_it) {
      if (x2_it->ldr_bits & members) out.push_back(x2_it->apic);
    }
    out.push_back(a);
  }
  for (; x2_it != x2.end(); ++x2_it) {
    if (x2_it->ldr_bits & members) out.push_back(x2_it->apic);
  }
  return out;
}

ApicBus::ApicList ApicBus::Decode(const ApicDestination& dest) const {
  const uint32_t broadcast = dest.wide ? 0xFFFFFFFF : 0xFF;
  if (dest.id != broadcast) {
    return dest.logical ? LogicalMatches(dest) : PhysicalMatches(dest.id);
  }
  ApicList out;
  for (LocalApic* a : apics_) {
    if (a->globally_enabled() && Matches(*a, dest)) out.push_back(a);
  }
  return out;
}

LocalApic* ApicBus::ArbitrateLowestPriority(
    const ApicList& candidates, uint8_t vector) const {
  ApicList pool;
  for (LocalApic* a : candidates) {
    if (a->software_enabled()) pool.push_back(a);
  }
  if (pool.empty()) pool = candidates;  // the chosen APIC traces the drop
  // Focus processor (SDM 11.6.2.4): already servicing / holding the vector.
  for (LocalApic* a : pool) {
    if (!(a->svr() & apic::kSvrFocusDisable) && (a->irr(vector) || a->isr(vector))) {
      return a;
    }
  }
  return *std::min_element(pool.begin(), pool.end(),
                           [](const LocalApic* a, const LocalApic* b) {
                             return std::make_tuple(a->ppr(), a->id(), a->cpu()) <
                                    std::make_tuple(b->ppr(), b->id(), b->cpu());
                           });
}

std::string ApicBus::CpuList(const ApicList& targets) {
  std::string out;
  for (const LocalApic* a : targets) {
    absl::StrAppend(&out, out.empty() ? "" : ",", a->cpu());
  }
  return out;
}

bool ApicBus::Admissible(const MsiMessage& m) {
  const uint32_t rid = m.requester_id;
  if (!m.InMsiWindow()) {
    Trace(trace::MSI_DROPPED, -1,
          "not an interrupt: address outside 0xFEE00000-0xFEEFFFFF", -1,
          m.address, m.data, rid);
    return false;
  }
  if (m.IsRemappable()) {
    Trace(trace::MSI_DROPPED, -1,
          absl::StrFormat("remappable-format message (handle 0x%x) without "
                          "interrupt remapping: no destination",
                          m.Handle()),
          -1, m.address, m.data, rid);
    return false;
  }
  const DeliveryMode mode = m.DeliveryMode();
  if (mode == DeliveryMode::kReserved3 || mode == DeliveryMode::kReserved6) {
    Trace(trace::MSI_DROPPED, -1,
          absl::StrCat("reserved delivery mode ",
                       std::string(DeliveryModeName(mode))),
          m.Vector(), m.address, m.data, rid);
    return false;
  }
  return true;
}

MsiOutcome ApicBus::Signal(const MsiMessage& m) {
  if (!Admissible(m)) return MsiOutcome::kDiscarded;
  const bool logical = m.DestinationModeLogical();
  const bool ext = config_.extended_destination_id && !logical;
  // With extended ids, 0x1FF etc. are ids: only exactly 0xFF is broadcast.
  return Route(m, ApicDestination{ext ? m.ExtendedDestinationId() : m.DestinationId(), logical,
                           /*wide=*/false},
        /*ignored_bits=*/!ext && ((m.address >> 5) & 0x7F) != 0);
}

// The remapping unit's output in x2APIC mode (IRTE DST[31:0], VT-d 9.10): a
// 32-bit destination, 0xFFFFFFFF is the broadcast (SDM 11.12.9).
MsiOutcome ApicBus::SignalX2Apic(const MsiMessage& m, uint32_t destination) {
  if (!Admissible(m)) return MsiOutcome::kDiscarded;
  return Route(m, ApicDestination{destination, m.DestinationModeLogical(), /*wide=*/true},
        /*ignored_bits=*/false);
}

MsiOutcome ApicBus::Route(const MsiMessage& m, const ApicDestination& dest, bool ignored_bits) {
  const uint32_t rid = m.requester_id;
  const DeliveryMode mode = m.DeliveryMode();
  const bool logical = dest.logical;
  ApicList targets = Decode(dest);
  // Built only when traced: this is the MSI fast path.
  auto dest_text = [&] {
    return absl::StrFormat("%s destination 0x%x", logical ? "logical" : "physical",
                           dest.id);
  };
  if (targets.empty()) {
    Trace(trace::MSI_DROPPED, -1, absl::StrCat("no APIC matches ", dest_text()),
          m.Vector(), m.address, m.data, rid);
    return MsiOutcome::kDiscarded;
  }
  // SDM 11.11.1: RH=1 with logical destination mode selects the
  // lowest-priority processor among the destinations.
  const bool arbitrate = mode == DeliveryMode::kLowestPriority ||
                         (m.RedirectionHint() && logical);
  if (arbitrate) targets = {ArbitrateLowestPriority(targets, m.Vector())};
  if (tracer_ != nullptr && tracer_->enabled()) {
    Trace(trace::APIC_ROUTE, targets.size() == 1 ? targets[0]->cpu() : -1,
          absl::StrFormat("msi %s %s %s -> cpus %s%s%s", dest_text(),
                          DeliveryModeName(mode),
                          m.TriggerLevel() ? "level" : "edge", CpuList(targets),
                          arbitrate ? " (lowest-priority arbitration)" : "",
                          ignored_bits ? " (address bits 11:5 ignored)" : ""),
          m.Vector(), m.address, m.data, rid);
  }
  MsiOutcome outcome = MsiOutcome::kDiscarded;
  for (LocalApic* a : targets) {
    outcome = CombineOutcomes(outcome, a->Accept(m.Vector(), m.TriggerLevel(), mode, rid));
  }
  return outcome;
}

// SDM 11.6.1 / 11.6.2: shorthand first, then the destination field.
void ApicBus::SendIpi(const Ipi& ipi) {
  const apic::IcrValue& icr = ipi.icr;
  const DeliveryMode mode = icr.delivery_mode();
  ApicList targets;
  std::string dest_text;
  switch (icr.shorthand()) {
    case apic::Shorthand::kNone: {
      const ApicDestination dest{
          ipi.x2apic ? icr.destination : (icr.destination & 0xFF),
          icr.logical(), ipi.x2apic};
      dest_text = absl::StrFormat("%s destination 0x%x",
                                  dest.logical ? "logical" : "physical", dest.id);
      targets = Decode(dest);
      break;
    }
    case apic::Shorthand::kSelf:
      dest_text = "self";
      if (LocalApic* a = apic(ipi.source_cpu)) targets.push_back(a);
      break;
    case apic::Shorthand::kAllIncludingSelf:
    case apic::Shorthand::kAllExcludingSelf:
      dest_text = apic::ShorthandName(icr.shorthand());
      for (LocalApic* a : apics_) {
        if (!a->globally_enabled()) continue;
        if (icr.shorthand() == apic::Shorthand::kAllExcludingSelf &&
            a->cpu() == ipi.source_cpu) {
          continue;
        }
        targets.push_back(a);
      }
      break;
  }
  if (targets.empty()) {
    Trace(trace::IPI, ipi.source_cpu,
          absl::StrCat("lost: no APIC matches ", dest_text), icr.vector(), 0,
          (uint64_t{icr.destination} << 32) | icr.low, 0);
    return;
  }
  if (mode == DeliveryMode::kLowestPriority) {
    targets = {ArbitrateLowestPriority(targets, icr.vector())};
  }
  if (tracer_ != nullptr && tracer_->enabled()) {
    Trace(trace::APIC_ROUTE, ipi.source_cpu,
          absl::StrFormat("ipi from cpu %d %s %s -> cpus %s", ipi.source_cpu,
                          dest_text, apic::IcrDeliveryModeName(mode),
                          CpuList(targets)),
          icr.vector(), 0, (uint64_t{icr.destination} << 32) | icr.low, 0);
  }
  // IPIs are not counted by the interrupt accounting (it counts device,
  // IOAPIC and VMM messages); each target traces its own acceptance.
  for (LocalApic* a : targets) {
    static_cast<void>(a->Accept(icr.vector(), icr.trigger_level(), mode));
  }
}

std::optional<uint64_t> ApicBus::MmioRead(int cpu, uint64_t addr,
                                          unsigned size) {
  LocalApic* a = apic(cpu);
  if (a == nullptr || !a->DecodesMmio(addr)) return std::nullopt;
  return a->Read(AccessOrigin::Cpu(cpu), addr & (apic::kApicPageSize - 1), size);
}

bool ApicBus::MmioWrite(int cpu, uint64_t addr, unsigned size, uint64_t value) {
  LocalApic* a = apic(cpu);
  if (a == nullptr || !a->DecodesMmio(addr)) return false;
  a->Write(AccessOrigin::Cpu(cpu), addr & (apic::kApicPageSize - 1), size, value);
  return true;
}

}  // namespace irqlab
