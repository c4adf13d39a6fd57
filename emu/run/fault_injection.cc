#include "emu/run/fault_injection.h"

#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "devices/wcn6855.h"
#include "ioapic/ioapic.h"

namespace irqlab {

namespace {

// A fault's `count`: how many times it applies; 0 (unset) means once.
uint32_t Times(uint32_t count) { return count == 0 ? 1 : count; }

absl::Status FaultError(int i, std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrFormat("faults[%d]%s: %s", i, field, what));
}

// The WCN6855 the firmware_fire fault drives: the machine's own or an
// assigned physical one.
Wcn6855* FindWcn(Machine* m) {
  if (m->wcn6855() != nullptr) return m->wcn6855();
  for (int i = 0; i < m->num_assigned(); ++i) {
    if (auto* w = dynamic_cast<Wcn6855*>(m->physical_device(i))) return w;
  }
  return nullptr;
}
}  // namespace

FaultInjector::FaultInjector(Machine* machine, uint64_t seed) : machine_(machine) {
  (void)seed;
}

absl::StatusOr<std::unique_ptr<FaultInjector>> FaultInjector::Create(
    const google::protobuf::RepeatedPtrField<scenario::Fault>& faults, uint64_t seed,
    Machine* m) {
  std::unique_ptr<FaultInjector> inj(new FaultInjector(m, seed));
  for (int i = 0; i < faults.size(); ++i) {
    const scenario::Fault& f = faults[i];
    using F = scenario::Fault;
    switch (f.kind_case()) {
      case F::KIND_NOT_SET:
        return FaultError(i, "", "set one fault kind (msi, irte, rte, drop_routed, ...)");
      case F::kIrte:
      case F::kSkipIecInvalidation:
      case F::kUnreadable:
      case F::kDropInvalidation:
      case F::kDelayInvalidation:
      case F::kReorderInvalidation:
        if (m->iommu() == nullptr) {
          return FaultError(i, "", "needs a guest VT-d (machine.devices intel-iommu)");
        }
        if (f.has_irte() && f.irte().index() >= 65536) {
          return FaultError(i, ".irte.index", "must be below 65536");
        }
        if (f.has_delay_invalidation() && f.delay_invalidation().ticks() == 0) {
          return FaultError(i, ".delay_invalidation.ticks", "must be > 0");
        }
        if (f.has_reorder_invalidation() && f.reorder_invalidation().count() > 1) {
          return FaultError(i, ".reorder_invalidation.count",
                            "must be 0 or 1 (one reorder per fault)");
        }
        break;
      case F::kRte:
        if (f.rte().pin() >= 24) return FaultError(i, ".rte.pin", "must be 0..23");
        break;
      case F::kDropRouted:
      case F::kDuplicateRouted:
        if (m->irq_routes() == nullptr) {
          return FaultError(i, "", "needs device assignment (machine.host)");
        }
        break;
      case F::kSpurious:
        if (f.spurious().cpu() >= static_cast<uint32_t>(m->num_cpus())) {
          return FaultError(i, ".spurious.cpu", "no such vCPU");
        }
        if (f.spurious().vector() < 16 || f.spurious().vector() > 255) {
          return FaultError(i, ".spurious.vector", "must be 16..255");
        }
        break;
      case F::kFirmwareFire:
        if (FindWcn(m) == nullptr) return FaultError(i, "", "needs a WCN6855 (bare or assigned)");
        if (f.firmware_fire().source() >= WCN_NUM_SOURCES) {
          return FaultError(i, ".firmware_fire.source", "must be 0..12");
        }
        break;
      case F::kMsixEntry: {
        const scenario::MsixEntryFault& x = f.msix_entry();
        if (x.slot() >= static_cast<uint32_t>(PciHost::kDevicesPerBus)) {
          return FaultError(i, ".msix_entry.slot", "must be 0..31");
        }
        PciFunction* fn = m->pci().Find(0, static_cast<uint8_t>(x.slot()), 0);
        if (fn == nullptr) {
          return FaultError(i, ".msix_entry.slot",
                            absl::StrFormat("no PCI function at 00:%02x.0", x.slot()));
        }
        if (fn->msix() == nullptr) {
          return FaultError(i, ".msix_entry.slot",
                            absl::StrFormat("00:%02x.0 (%s) has no MSI-X capability", x.slot(),
                                            fn->name()));
        }
        if (x.index() >= fn->msix()->vectors()) {
          return FaultError(i, ".msix_entry.index",
                            absl::StrFormat("must be below the table size %u of 00:%02x.0",
                                            fn->msix()->vectors(), x.slot()));
        }
        break;
      }
      case F::kDelayEoi:
        if (f.delay_eoi().ticks() == 0) return FaultError(i, ".delay_eoi.ticks", "must be > 0");
        break;
      case F::kMsi:
      case F::kVanish:
      case F::kStaleRouteOrder:
        break;
    }
    if (f.has_on()) {
      if (f.on().contains().empty()) return FaultError(i, ".on.contains", "required");
      if (f.on().probability() < 0 || f.on().probability() > 1) {
        return FaultError(i, ".on.probability", "must be in [0, 1]");
      }
    }
    Entry e;
    e.fault = f;
    e.rng.seed(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i) + 1);
    inj->entries_.push_back(std::move(e));
  }
  for (int i = 0; i < static_cast<int>(inj->entries_.size()); ++i) {
    const scenario::Fault& f = inj->entries_[i].fault;
    if (!f.has_on()) {
      FaultInjector* self = inj.get();
      m->events().Schedule(f.at(), EventPriority::kScenarioAction,
                           absl::StrFormat("faults[%d]", i), [self, i] { self->Apply(i); });
    }
  }
  return inj;
}

bool FaultInjector::has_trace_triggers() const {
  for (const Entry& e : entries_) {
    if (e.fault.has_on()) return true;
  }
  return false;
}

void FaultInjector::Emit(const TraceEvent& event) {
  if (in_emit_) return;  // our own FAULT_INJECT lines never trigger faults
  in_emit_ = true;
  std::string line;
  for (int i = 0; i < static_cast<int>(entries_.size()); ++i) {
    Entry& e = entries_[i];
    if (!e.fault.has_on()) continue;
    const scenario::TraceTrigger& on = e.fault.on();
    if (line.empty()) line = FormatTraceEvent(event);
    bool all = true;
    for (const std::string& c : on.contains()) all = all && absl::StrContains(line, c);
    if (!all) continue;
    ++e.seen;
    bool fire;
    if (on.probability() > 0) {
      const double u = static_cast<double>(e.rng() >> 11) * 0x1.0p-53;
      fire = u < on.probability() && (on.max_times() == 0 || e.fired < on.max_times());
    } else {
      fire = e.seen == (on.occurrence() == 0 ? 1 : on.occurrence());
    }
    if (fire) {
      ++e.fired;
      Schedule(i);
    }
  }
  in_emit_ = false;
}

void FaultInjector::Schedule(int index) {
  machine_->events().Schedule(machine_->Now(), EventPriority::kScenarioAction,
                              absl::StrFormat("faults[%d]", index),
                              [this, index] { Apply(index); });
}

void FaultInjector::Note(int index, const std::string& what) {
  ++applied_;
  Tracer* t = machine_->tracer();
  if (t != nullptr && t->enabled()) {
    in_emit_ = true;
    t->Emit(machine_->Now(), trace::FAULT_INJECT, -1, absl::StrFormat("fault[%d]: %s", index, what));
    in_emit_ = false;
  }
}

void FaultInjector::Apply(int index) {
  const scenario::Fault& f = entries_[index].fault;
  Machine* m = machine_;
  using F = scenario::Fault;
  switch (f.kind_case()) {
    case F::kMsi: {
      const MsiMessage msg(f.msi().address(), f.msi().data(),
                           static_cast<uint16_t>(f.msi().requester_id()));
      Note(index, absl::StrCat("MSI ", msg.ToString()));
      // injected_msi_entry() is an AccountingMsiSink: the ledger records it.
      static_cast<void>(m->injected_msi_entry()->Signal(msg));
      break;
    }
    case F::kIrte: {
      const uint64_t addr = m->iommu()->irta().base() + uint64_t{f.irte().index()} * 16;
      if (!m->ram().Contains(addr, 16)) {
        Note(index, absl::StrFormat("IRTE 0x%x outside guest RAM: nothing written", f.irte().index()));
        break;
      }
      uint64_t lo = m->ram().Load<uint64_t>(addr), hi = m->ram().Load<uint64_t>(addr + 8);
      const uint32_t v = f.irte().value();
      switch (f.irte().field()) {
        case scenario::IrteFault::CLEAR: lo = hi = 0; break;
        case scenario::IrteFault::VECTOR: lo = (lo & ~(uint64_t{0xFF} << 16)) | (uint64_t{v & 0xFF} << 16); break;
        case scenario::IrteFault::NOT_PRESENT: lo &= ~uint64_t{1}; break;
        case scenario::IrteFault::SID: hi = (hi & ~uint64_t{0xFFFF}) | (v & 0xFFFF); break;
        case scenario::IrteFault::DESTINATION:
          lo = m->iommu()->irta().eime()
                   ? (lo & 0xFFFFFFFFull) | (uint64_t{v} << 32)
                   : (lo & ~(uint64_t{0xFF} << 40)) | (uint64_t{v & 0xFF} << 40);
          break;
        default: break;
      }
      m->ram().Store<uint64_t>(addr, lo);
      m->ram().Store<uint64_t>(addr + 8, hi);
      Note(index, absl::StrFormat("guest IRTE 0x%x %s := 0x%x (no invalidation): %016x_%016x",
                                  f.irte().index(), scenario::IrteFault::Field_Name(f.irte().field()),
                                  v, hi, lo));
      break;
    }
    case F::kRte: {
      const uint32_t pin = f.rte().pin();
      IoApic& io = m->ioapic();
      const AccessOrigin o = AccessOrigin::Cpu(0);
      if (f.rte().has_high()) {
        io.Write(o, 0x00, 4, 0x11 + 2 * pin);
        io.Write(o, 0x10, 4, f.rte().high());
      }
      if (f.rte().has_low()) {
        io.Write(o, 0x00, 4, 0x10 + 2 * pin);
        io.Write(o, 0x10, 4, f.rte().low());
      }
      Note(index, absl::StrFormat("IOAPIC RTE %u rewritten", pin));
      break;
    }
    case F::kDropRouted: {
      const uint32_t n = Times(f.drop_routed().count());
      m->irq_routes()->InjectDrop(n);
      Note(index, absl::StrFormat("the VMM drops the next %u routed interrupt(s)", n));
      break;
    }
    case F::kDuplicateRouted: {
      const uint32_t n = Times(f.duplicate_routed().count());
      m->irq_routes()->InjectDuplicate(n);
      Note(index, absl::StrFormat("the VMM duplicates the next %u routed interrupt(s)", n));
      break;
    }
    case F::kSkipIecInvalidation: {
      const uint32_t n = Times(f.skip_iec_invalidation().count());
      m->iommu()->SkipIecInvalidations(n);
      Note(index, absl::StrFormat("the guest vIOMMU skips the next %u IEC invalidation(s)", n));
      break;
    }
    case F::kDropInvalidation: {
      const scenario::InvalidationFault& d = f.drop_invalidation();
      const uint32_t n = Times(d.count());
      using T = VtdUnit::InvalidationType;
      static constexpr T kTypes[] = {T::kAny, T::kContextCache, T::kIotlb, T::kIec,
                                     T::kDeviceTlb};
      const int t = static_cast<int>(d.type());
      m->iommu()->DropInvalidations(t >= 0 && t < 5 ? kTypes[t] : T::kAny, n);
      Note(index, absl::StrFormat("the guest vIOMMU drops the next %u %s invalidation "
                                  "descriptor(s)",
                                  n, scenario::InvalidationFault::Type_Name(d.type())));
      break;
    }
    case F::kDelayInvalidation: {
      const uint32_t n = Times(f.delay_invalidation().count());
      const uint64_t ticks = f.delay_invalidation().ticks();
      const bool ok = m->iommu()->DelayInvalidations(ticks, n);
      Note(index, ok ? absl::StrFormat("the guest vIOMMU's invalidation queue stalls %u "
                                       "ticks before each of the next %u descriptor(s)",
                                       ticks, n)
                     : std::string("invalidation delay ignored: the vIOMMU has no event queue"));
      break;
    }
    case F::kReorderInvalidation:
      m->iommu()->ReorderInvalidations();
      Note(index, "the guest vIOMMU swaps the next two pending non-wait invalidation "
                  "descriptors");
      break;
    case F::kSpurious:
      Note(index, absl::StrFormat("spurious vector 0x%x on cpu %u", f.spurious().vector(),
                                  f.spurious().cpu()));
      m->InjectInterrupt(static_cast<int>(f.spurious().cpu()),
                         static_cast<int>(f.spurious().vector()));
      break;
    case F::kFirmwareFire: {
      Wcn6855* w = FindWcn(m);
      Note(index, absl::StrFormat("WCN6855 firmware told to fire source %u",
                                  f.firmware_fire().source()));
      const AccessOrigin o = AccessOrigin::Cpu(0);
      w->Write(o, WCN_REG_CMD_ARG, 4, f.firmware_fire().source());
      w->Write(o, WCN_REG_DOORBELL, 4, WCN_CMD_FIRE);
      break;
    }
    case F::kUnreadable:
      m->iommu()->SetUnreadable(f.unreadable().base(), f.unreadable().size());
      Note(index, absl::StrFormat("guest memory 0x%x+0x%x unreadable for the vIOMMU",
                                  f.unreadable().base(), f.unreadable().size()));
      break;
    case F::kVanish: {
      const uint32_t n = Times(f.vanish().count());
      m->device_msi_entry().LoseNext(n);
      Note(index, absl::StrFormat("the next %u device MSI(s) vanish (accounting self-test)", n));
      break;
    }
    case F::kMsixEntry: {
      // Validated in Create(): the function exists, has MSI-X, index fits.
      const scenario::MsixEntryFault& x = f.msix_entry();
      PciFunction* fn = m->pci().Find(0, static_cast<uint8_t>(x.slot()), 0);
      MsixCapability* cap = fn->msix();
      const int bar = cap->options().table_bar;
      const uint64_t entry = cap->options().table_offset + uint64_t{x.index()} * pci::kMsixEntrySize;
      const std::string what = absl::StrFormat(
          "MSI-X entry %u of 00:%02x.0 %s", x.index(), x.slot(),
          scenario::MsixEntryFault::Field_Name(x.field()));
      const std::optional<uint64_t> base = fn->BarMappedAt(bar);
      if (!base) {
        Note(index, absl::StrFormat("%s: table BAR%d does not decode: nothing written", what, bar));
        break;
      }
      uint32_t offset = 0;
      switch (x.field()) {
        case scenario::MsixEntryFault::ADDRESS_HI: offset = pci::kMsixEntryAddressHi; break;
        case scenario::MsixEntryFault::DATA: offset = pci::kMsixEntryData; break;
        case scenario::MsixEntryFault::VECTOR_CONTROL: offset = pci::kMsixEntryVectorControl; break;
        default: offset = pci::kMsixEntryAddressLo; break;
      }
      const uint64_t addr = *base + entry + offset;
      // Traced before the write: its side effects (an unmask releasing a
      // pending message) follow the FAULT_INJECT line.
      const AccessOrigin o = AccessOrigin::Cpu(0);
      if (x.field() == scenario::MsixEntryFault::CLEAR) {
        Note(index, absl::StrFormat("%s: stray writes of 0 at 0x%x..0x%x (was %08x %08x %08x %08x)",
                                    what, *base + entry, *base + entry + 15,
                                    cap->Read(bar, entry, 4), cap->Read(bar, entry + 4, 4),
                                    cap->Read(bar, entry + 8, 4), cap->Read(bar, entry + 12, 4)));
        for (uint32_t dw = 0; dw < pci::kMsixEntrySize; dw += 4) m->mmio().Write(o, *base + entry + dw, 4, 0);
      } else {
        Note(index, absl::StrFormat("%s := 0x%x: stray write at 0x%x (was 0x%x)", what, x.value(), addr,
                                    cap->Read(bar, entry + offset, 4)));
        m->mmio().Write(o, addr, 4, x.value());
      }
      break;
    }
    case F::kDelayEoi: {
      const uint32_t n = Times(f.delay_eoi().count());
      Note(index, absl::StrFormat("the next %u EOI broadcast(s) to the IOAPIC delayed by %u ticks", n,
                                  f.delay_eoi().ticks()));
      m->DelayEoiBroadcasts(f.delay_eoi().ticks(), n, absl::StrFormat("fault[%d]", index));
      break;
    }
    case F::kStaleRouteOrder: {
      const uint32_t n = Times(f.stale_route_order().count());
      m->ioapic().OverrideNextRteWriteOrder(n);
      Note(index, absl::StrFormat("the next %u IOAPIC RTE write(s) use the order %s", n,
                                  RouteUpdateOrderName(RouteUpdateOrder::kStaleBeforeService)));
      break;
    }
    case F::KIND_NOT_SET:
      break;
  }
}

}  // namespace irqlab
