#include "pci/assigned_device.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "emu/core/status_macros.h"
#include "pci/pci_regs.h"

namespace irqlab {

// ---------------------------------------------------------------------------
// IrqRouteTable
// ---------------------------------------------------------------------------

IrqRouteTable::IrqRouteTable(MsiSink* apic_bus, InterruptRemapper* viommu, Tracer* tracer,
                             const Clock* clock)
    : apic_bus_(apic_bus), viommu_(viommu), tracer_(tracer), clock_(clock) {
  if (viommu_ != nullptr) {
    viommu_->set_iec_listener(
        [this](bool global, uint32_t index, uint8_t mask) { Invalidate(global, index, mask); });
  }
}

int IrqRouteTable::AddRoute(const MsiMessage& message, std::string name) {
  const int gsi = next_gsi_++;
  Route& r = routes_[gsi];
  r.message = message;
  r.name = std::move(name);
  Trace(r, gsi, absl::StrCat("route installed: guest message ", message.ToString()),
        message.Vector(), message.address, message.data);
  return gsi;
}

void IrqRouteTable::UpdateRoute(int gsi, const MsiMessage& message) {
  auto it = routes_.find(gsi);
  if (it == routes_.end()) return;
  if (it->second.message.address == message.address &&
      it->second.message.data == message.data) {
    return;
  }
  if (it->second.cached) Drop(it->second);
  it->second.message = message;
  Trace(it->second, gsi, absl::StrCat("route updated: guest message ", message.ToString()),
        message.Vector(), message.address, message.data);
}

void IrqRouteTable::RemoveRoute(int gsi) {
  auto it = routes_.find(gsi);
  if (it == routes_.end()) return;
  if (it->second.cached) by_cookie_.erase(it->second.cookie);
  routes_.erase(it);
}

bool IrqRouteTable::cached(int gsi) const {
  auto it = routes_.find(gsi);
  return it != routes_.end() && it->second.cached;
}

void IrqRouteTable::Fire(int gsi) {
  const MsiOutcome o = Deliver(gsi);
  if (ledger_ == nullptr) return;
  if (o == MsiOutcome::kLost) {  // Deliver() loses only a gsi without a route
    ledger_->RecordLost(IrqSource::kVmmRoute,
                        absl::StrFormat("interrupt for gsi %d (no route installed)", gsi));
  } else {
    ledger_->RecordOutcome(IrqSource::kVmmRoute, o);
  }
}

MsiOutcome IrqRouteTable::Deliver(int gsi) {
  if (fault_drop_ > 0 || fault_duplicate_ > 0) [[unlikely]] {
    if (fault_drop_ > 0) {
      --fault_drop_;
      ++stats_.dropped_by_fault;
      if (tracer_ != nullptr && tracer_->enabled()) {
        tracer_->Emit(clock_->Now(), trace::FAULT_INJECT, -1,
                      absl::StrFormat("vmm: gsi %d: routed interrupt dropped (injected)", gsi));
      }
      return MsiOutcome::kInjectedDrop;
    }
    --fault_duplicate_;
    ++stats_.duplicated_by_fault;
    if (tracer_ != nullptr && tracer_->enabled()) {
      tracer_->Emit(clock_->Now(), trace::FAULT_INJECT, -1,
                    absl::StrFormat("vmm: gsi %d: routed interrupt delivered twice (injected)", gsi));
    }
    Fire(gsi);  // the injected copy, accounted as its own message; the original below
  }
  auto it = routes_.find(gsi);
  if (it == routes_.end()) return MsiOutcome::kLost;
  Route& r = it->second;
  // Trace details are built only when tracing (a formatted std::string per
  // interrupt would cost more than the whole fast path).
  const bool tracing = tracer_ != nullptr && tracer_->enabled();
  if (viommu_ == nullptr) {
    // KVM MSI route: the guest message is delivered as is.
    ++stats_.fast;
    if (tracing) Trace(r, gsi, "fast path", r.message.Vector(), r.message.address, r.message.data);
    return apic_bus_->Signal(r.message);
  }
  if (r.cached) {
    ++stats_.fast;
    const RemapResult& t = r.translation;
    if (tracing) {
      Trace(r, gsi, absl::StrFormat("fast path (cached guest IRTE 0x%x)", t.index),
            t.message.Vector(), t.message.address, t.message.data);
    }
    return t.wide ? apic_bus_->SignalX2Apic(t.message, t.destination)
                  : apic_bus_->Signal(t.message);
  }
  // Slow path: translate now, through the guest's vIOMMU (faults happen
  // here, at delivery time), then re-install the fast path.
  ++stats_.slow;
  const RemapResult t = viommu_->Remap(r.message);
  switch (t.kind) {
    case RemapResult::kRemapped:
      r.translation = t;
      r.cached = true;
      r.cookie = by_cookie_.emplace(t.index, gsi);
      if (tracing) {
        Trace(r, gsi,
              absl::StrFormat("slow path: translated by guest IRTE 0x%x, route re-installed",
                              t.index),
              t.message.Vector(), t.message.address, t.message.data);
      }
      return viommu_->DeliverRemapped(t);
    case RemapResult::kPassThrough:
      if (tracing) Trace(r, gsi, "slow path: passed through by the guest vIOMMU (not cached)",
            t.message.Vector(), t.message.address, t.message.data);
      return viommu_->DeliverRemapped(t);
    case RemapResult::kPosted:
      if (tracing) Trace(r, gsi, "slow path: posted by the guest vIOMMU");
      return MsiOutcome::kPosted;
    case RemapResult::kFaulted:
      ++stats_.faulted;
      if (tracing) Trace(r, gsi, "slow path: blocked by the guest vIOMMU (fault raised)", -1,
            r.message.address, r.message.data);
      return MsiOutcome::kFaulted;
  }
  return MsiOutcome::kLost;
}

void IrqRouteTable::Invalidate(bool global, uint32_t index, uint8_t mask) {
  auto first = by_cookie_.begin();
  auto last = by_cookie_.end();
  if (!global) {
    const uint32_t lo = mask >= 32 ? 0 : (index >> mask) << mask;
    const uint64_t hi = uint64_t{lo} + (uint64_t{1} << std::min<uint8_t>(mask, 32)) - 1;
    first = by_cookie_.lower_bound(lo);
    last = hi >= 0xFFFFFFFFull ? by_cookie_.end()
                               : by_cookie_.upper_bound(static_cast<uint32_t>(hi));
  }
  std::vector<int> gsis;
  for (auto it = first; it != last; ++it) gsis.push_back(it->second);
  for (int gsi : gsis) Drop(routes_[gsi]);
  if (!gsis.empty() && tracer_ != nullptr && tracer_->enabled()) {
    tracer_->Emit(clock_->Now(), trace::IRQ_ROUTE, -1,
                  absl::StrFormat("vmm: guest IEC invalidation (%s) dropped %d cached route(s)",
                                  global ? "global" : absl::StrFormat("index 0x%x mask %u", index, mask),
                                  gsis.size()));
  }
}

void IrqRouteTable::Drop(Route& r) {
  by_cookie_.erase(r.cookie);
  r.cached = false;
  ++stats_.invalidated;
}

void IrqRouteTable::Trace(const Route& r, int gsi, const std::string& detail, int vector,
                          uint64_t address, uint64_t data) {
  if (tracer_ == nullptr || !tracer_->enabled()) return;
  tracer_->Emit(clock_->Now(), trace::IRQ_ROUTE, -1,
                absl::StrFormat("vmm: gsi %d (%s) %s", gsi, r.name, detail), vector, address,
                data, r.message.requester_id);
}

// ---------------------------------------------------------------------------
// AssignedPciDevice
// ---------------------------------------------------------------------------

class AssignedPciDevice::BarPassthrough : public IoHandler {
 public:
  BarPassthrough(AssignedPciDevice* owner, int bar) : owner_(owner), bar_(bar) {}
  uint64_t Read(const AccessOrigin&, uint64_t offset, unsigned size) override {
    return owner_->BarRead(bar_, offset, size);
  }
  void Write(const AccessOrigin&, uint64_t offset, unsigned size, uint64_t value) override {
    owner_->BarWrite(bar_, offset, size, value);
  }

 private:
  AssignedPciDevice* owner_;
  int bar_;
};

absl::StatusOr<std::unique_ptr<AssignedPciDevice>> AssignedPciDevice::Create(
    VfioPciDevice* vfio, IrqRouteTable* routes, const AssignmentOptions& options) {
  Identity id;
  id.vendor_id = static_cast<uint16_t>(vfio->ConfigRead(pci::kVendorId, 2));
  id.device_id = static_cast<uint16_t>(vfio->ConfigRead(pci::kDeviceId, 2));
  const uint32_t class_rev = vfio->ConfigRead(pci::kRevisionId, 4);
  id.revision = static_cast<uint8_t>(class_rev);
  id.class_code = class_rev >> 8;
  id.subsystem_vendor_id = static_cast<uint16_t>(vfio->ConfigRead(pci::kSubsystemVendorId, 2));
  id.subsystem_id = static_cast<uint16_t>(vfio->ConfigRead(pci::kSubsystemId, 2));
  id.interrupt_pin = 0;  // INTx is not assigned in this model
  std::unique_ptr<AssignedPciDevice> d(new AssignedPciDevice(vfio, routes, options, id));
  RETURN_IF_ERROR(d->Init());
  return d;
}

AssignedPciDevice::AssignedPciDevice(VfioPciDevice* vfio, IrqRouteTable* routes,
                                     const AssignmentOptions& options, const Identity& identity)
    : PciFunction(vfio->device().name() + "-vfio", identity),
      vfio_(vfio),
      routes_(routes),
      options_(options),
      sources_(options.source_offsets.size()) {}

AssignedPciDevice::~AssignedPciDevice() {
  DisableMsix();
  DisableMsi();
}

absl::Status AssignedPciDevice::Init() {
  PciFunction& phys = vfio_->device();
  for (int i = 0; i < pci::kNumBars; ++i) {
    const BarSpec* b = phys.bar(i);
    if (b == nullptr || b->type == BarType::kIo) continue;
    bars_.push_back(std::make_unique<BarPassthrough>(this, i));
    BarSpec spec = *b;
    spec.handler = bars_.back().get();
    RETURN_IF_ERROR(AddBar(i, spec));
  }
  if (MsiCapability* msi = phys.msi()) {
    RETURN_IF_ERROR(AddMsiCapability(msi->options(), msi->offset()).status());
  }
  if (MsixCapability* x = phys.msix()) {
    // Seed 004: emulated, same size and table/PBA places (header comment).
    absl::StatusOr<MsixCapability*> gx = AddMsixCapability(x->options(), x->offset());
    if (!gx.ok()) return gx.status();
    (*gx)->set_table_write_hook([this](unsigned index) { OnMsixTableWrite(index); });
    (*gx)->set_delivery_hook([this](unsigned index) { return DeliverMsix(index); });
  }
  return absl::OkStatus();
}

MsiMessage AssignedPciDevice::GuestMessage(unsigned vector) {
  return msi()->MessageFor(vector);
}

void AssignedPciDevice::OnConfigWrite(uint32_t offset, unsigned size) {
  if (offset < pci::kCommand + 2u && offset + size > pci::kCommand) {
    // Command: memory decode and bus mastering reach the device.
    vfio_->ConfigWrite(pci::kCommand, 2, command());
  }
  MsiCapability* m = msi();
  if (m != nullptr && m->Overlaps(offset, size)) {
    // What QEMU does: the write also goes to vfio (which shadows it), and
    // the VMM reacts to the new capability state.
    for (unsigned i = 0; i < size; ++i) {
      vfio_->ConfigWrite(offset + i, 1, ConfigRead(offset + i, 1));
    }
    UpdateMsi();
  }
  if (MsixCapability* x = msix(); x != nullptr && x->Overlaps(offset, size)) {
    UpdateMsix();
  }
}

void AssignedPciDevice::UpdateMsi() {
  MsiCapability* m = msi();
  const bool on = m->enabled();
  if (!on) {
    if (msi_on_) DisableMsi();
    return;
  }
  const unsigned count = m->enabled_vectors();
  if (options_.fix == AssignmentOptions::Fix::kGuestOwned) {
    // The guest's own message goes to the device; each vector is posted to
    // the vCPU its destination names (physical destination = APIC id =
    // vCPU index in this machine).
    std::vector<int> vcpus(count, static_cast<int>((m->address() >> 12) & 0xFF));
    msi_on_ = true;
    msi_count_ = count;
    const absl::Status s = vfio_->SetMsiGuestOwned(m->address(), m->data(), vcpus);
    TraceVmm(s.ok() ? absl::StrFormat("MSI enabled by the guest: %u vector(s), guest-owned "
                                      "(posted by the host IOMMU)", count)
                    : absl::StrCat("guest-owned MSI failed: ", s.ToString()));
    return;
  }
  if (msi_on_ && count == msi_count_) {
    for (unsigned i = 0; i < count; ++i) routes_->UpdateRoute(msi_gsis_[i], GuestMessage(i));
    return;
  }
  DisableMsi();
  std::vector<std::function<void()>> triggers;
  for (unsigned i = 0; i < count; ++i) {
    const int gsi = routes_->AddRoute(GuestMessage(i), absl::StrFormat("%s msi %u", name(), i));
    msi_gsis_.push_back(gsi);
    triggers.push_back([this, gsi] { routes_->Fire(gsi); });
  }
  msi_on_ = true;
  msi_count_ = count;
  const absl::Status s = vfio_->SetMsiIrqs(std::move(triggers));
  TraceVmm(s.ok() ? absl::StrFormat("MSI enabled by the guest: %u vector(s), SET_IRQS done", count)
                  : absl::StrCat("MSI enable failed: ", s.ToString()));
}

void AssignedPciDevice::DisableMsi() {
  if (!msi_on_) return;
  if (options_.fix == AssignmentOptions::Fix::kGuestOwned) {
    (void)vfio_->SetMsiGuestOwned(0, 0, {});
  } else {
    (void)vfio_->SetMsiIrqs({});
  }
  for (int gsi : msi_gsis_) routes_->RemoveRoute(gsi);
  msi_gsis_.clear();
  msi_on_ = false;
  msi_count_ = 0;
}

// ---------------------------------------------------------------------------
// AssignedPciDevice: MSI-X (seed 004)
// ---------------------------------------------------------------------------

const char* MsixPolicyName(AssignmentOptions::MsixPolicy policy) {
  switch (policy) {
    case AssignmentOptions::MsixPolicy::kLazy: return "lazy";
    case AssignmentOptions::MsixPolicy::kDataHint: return "data-hint";
    case AssignmentOptions::MsixPolicy::kSingleVector: return "single-vector";
    case AssignmentOptions::MsixPolicy::kAllVectors: return "all-vectors";
  }
  return "?";
}

void AssignedPciDevice::UpdateMsix() {
  MsixCapability* x = msix();
  const bool on = x->enabled();
  const bool fmask = x->function_masked();
  const bool was_on = msix_on_;
  const bool was_fmask = msix_function_masked_;
  msix_on_ = on;
  msix_function_masked_ = fmask;
  if (!on) {
    if (was_on) {
      DisableMsix();
      TraceVmm(absl::StrFormat("MSI-X disabled by the guest: host vectors freed"));
    }
    return;
  }
  if (was_on && fmask == was_fmask) return;  // no enable event
  using Policy = AssignmentOptions::MsixPolicy;
  std::vector<unsigned> want;
  for (unsigned i = 0; i < x->vectors(); ++i) {
    bool take = msix_gsis_.count(i) != 0 || (!fmask && !x->vector_masked(i));
    switch (options_.msix_policy) {
      case Policy::kLazy: break;
      case Policy::kDataHint: take = take || x->MessageFor(i).data != 0; break;
      case Policy::kSingleVector: take = take || i == 0; break;
      case Policy::kAllVectors: take = true; break;
    }
    if (take) want.push_back(i);
  }
  const std::string event =
      !was_on ? absl::StrFormat("guest enabled MSI-X%s", fmask ? " (function masked)" : "")
              : absl::StrFormat("guest %s the function mask", fmask ? "set" : "cleared");
  if (want.empty()) {
    TraceVmm(absl::StrFormat("MSI-X policy %s: %s with every vector masked: physical MSI-X "
                             "stays disabled",
                             MsixPolicyName(options_.msix_policy), event));
    return;
  }
  ApplyMsix(want, event);
}

void AssignedPciDevice::OnMsixTableWrite(unsigned index) {
  MsixCapability* x = msix();
  auto it = msix_gsis_.find(index);
  if (it != msix_gsis_.end()) routes_->UpdateRoute(it->second, x->MessageFor(index));
  if (it != msix_gsis_.end() || !msix_on_ || x->function_masked() ||
      x->vector_masked(index)) {
    return;
  }
  // The guest unmasked an entry without a host vector: give it one now.
  std::vector<unsigned> want;
  for (const auto& [i, gsi] : msix_gsis_) want.push_back(i);
  want.push_back(index);
  std::sort(want.begin(), want.end());
  ApplyMsix(want, absl::StrFormat("guest unmasked entry %u", index));
}

void AssignedPciDevice::ApplyMsix(const std::vector<unsigned>& want, const std::string& why) {
  MsixCapability* x = msix();
  if (want.size() == msix_gsis_.size() &&
      std::all_of(want.begin(), want.end(), [this](unsigned i) { return msix_gsis_.count(i); })) {
    return;  // nothing changes (e.g. the function mask cleared after enable)
  }
  std::map<unsigned, std::function<void()>> vectors;
  for (unsigned i : want) {
    if (!msix_gsis_.count(i)) {
      msix_gsis_[i] = routes_->AddRoute(x->MessageFor(i), absl::StrFormat("%s msix %u", name(), i));
    }
    vectors[i] = [this, i] { OnHostMsix(i); };
  }
  for (auto it = msix_gsis_.begin(); it != msix_gsis_.end();) {
    if (vectors.count(it->first)) {
      ++it;
    } else {
      routes_->RemoveRoute(it->second);
      it = msix_gsis_.erase(it);
    }
  }
  std::vector<std::string> list;
  for (unsigned i : want) list.push_back(absl::StrCat(i));
  TraceVmm(absl::StrFormat("MSI-X policy %s: %s: host vectors for entries %s",
                           MsixPolicyName(options_.msix_policy), why,
                           absl::StrJoin(list, ",")));
  const absl::Status s = vfio_->SetMsixIrqs(std::move(vectors));
  if (!s.ok()) TraceVmm(absl::StrCat("MSI-X SET_IRQS failed: ", s.ToString()));
}

void AssignedPciDevice::OnHostMsix(unsigned index) {
  // Masking is the VMM's (header comment): a masked entry latches its PBA
  // bit; an unmasked one is delivered through its route (DeliverMsix).
  if (msix()->Signal(index) == SignalResult::kPending) ++msix_masked_host_irqs_;
}

SignalResult AssignedPciDevice::DeliverMsix(unsigned index) {
  auto it = msix_gsis_.find(index);
  if (it == msix_gsis_.end()) return SignalResult::kBlocked;  // no host vector, no route
  routes_->Fire(it->second);
  return SignalResult::kSent;
}

void AssignedPciDevice::DisableMsix() {
  if (msix_gsis_.empty()) return;
  (void)vfio_->SetMsixIrqs({});
  for (const auto& [i, gsi] : msix_gsis_) routes_->RemoveRoute(gsi);
  msix_gsis_.clear();
}

int AssignedPciDevice::SourceAt(uint64_t offset) const {
  for (size_t i = 0; i < options_.source_offsets.size(); ++i) {
    const uint64_t s = options_.source_offsets[i];
    if (offset >= s && offset < s + 12) return static_cast<int>(i);
  }
  return -1;
}

uint64_t AssignedPciDevice::BarRead(int bar, uint64_t offset, unsigned size) {
  if (bar == 0 && options_.fix == AssignmentOptions::Fix::kIms && size == 4) {
    const int s = SourceAt(offset);
    if (s >= 0) {
      // The guest reads back what it wrote, not the host message.
      const Source& src = sources_[s];
      switch (offset - options_.source_offsets[s]) {
        case 0: return src.addr_lo;
        case 4: return src.addr_hi;
        case 8: return src.data;
      }
    }
  }
  return vfio_->BarRead(bar, offset, size);
}

void AssignedPciDevice::BarWrite(int bar, uint64_t offset, unsigned size, uint64_t value) {
  using Fix = AssignmentOptions::Fix;
  if (bar != 0 || size != 4 || options_.fix == Fix::kNone || options_.fix == Fix::kGuestOwned) {
    vfio_->BarWrite(bar, offset, size, value);
    return;
  }
  const uint32_t v = static_cast<uint32_t>(value);
  if (options_.fix == Fix::kNovirtQuirk) {
    const bool in_window = offset >= options_.window_base &&
                           offset < options_.window_base + options_.window_size;
    MsiCapability* m = msi();
    if (!in_window || m == nullptr || !msi_on_) {
      vfio_->BarWrite(bar, offset, size, value);
      return;
    }
    const uint16_t msi_off = m->offset();
    const bool is64 = m->options().address64;
    const uint32_t data_reg = msi_off + (is64 ? 0x0C : 0x08);
    if (v == static_cast<uint32_t>(m->address())) {
      // The host address: readable only with vfio's NOVIRT feature.
      const uint32_t host_addr = vfio_->ConfigRead(msi_off + 4, 4);
      if (!vfio_->msi_novirt()) {
        TraceVmm(absl::StrFormat(
                     "quirk: window write 0x%x matches the guest MSI address but vfio "
                     "virtualizes the host one (NOVIRT off): passed unchanged",
                     offset),
                 offset, v);
        vfio_->BarWrite(bar, offset, size, value);
        return;
      }
      quirk_data_offset_ = offset + 8;
      ++quirk_rewrites_;
      TraceVmm(absl::StrFormat("quirk: window 0x%x address 0x%08x -> host 0x%08x", offset, v,
                               host_addr),
               offset, host_addr);
      vfio_->BarWrite(bar, offset, size, host_addr);
      return;
    }
    if (quirk_data_offset_ && *quirk_data_offset_ == offset) {
      quirk_data_offset_.reset();
      const uint32_t guest_base = m->data();
      const uint32_t host_data = vfio_->ConfigRead(data_reg, 2);
      if (v >= guest_base && v - guest_base < msi_count_) {
        const uint32_t out = host_data + (v - guest_base);
        ++quirk_rewrites_;
        TraceVmm(absl::StrFormat("quirk: window 0x%x data 0x%04x -> host 0x%04x (vector offset %u)",
                                 offset, v, out, v - guest_base),
                 offset, out);
        vfio_->BarWrite(bar, offset, size, out);
        return;
      }
    }
    vfio_->BarWrite(bar, offset, size, value);
    return;
  }
  // Fix::kIms
  const int s = SourceAt(offset);
  if (s < 0) {
    vfio_->BarWrite(bar, offset, size, value);
    return;
  }
  Source& src = sources_[s];
  const uint64_t base = options_.source_offsets[s];
  switch (offset - base) {
    case 0: src.addr_lo = v; return;
    case 4: src.addr_hi = v; return;
    case 8: break;
    default: return;
  }
  src.data = v;
  // The source's message is complete: route it, and give the source its
  // own host interrupt (once).
  const MsiMessage guest((uint64_t{src.addr_hi} << 32) | src.addr_lo, v, requester_id());
  const std::string label = absl::StrFormat("%s source %d", name(), s);
  if (src.gsi >= 0) {
    routes_->UpdateRoute(src.gsi, guest);
    return;
  }
  src.gsi = routes_->AddRoute(guest, label);
  const int gsi = src.gsi;
  absl::StatusOr<MsiMessage> host =
      vfio_->SetSourceIrq(static_cast<unsigned>(s), [this, gsi] { routes_->Fire(gsi); });
  if (!host.ok()) {
    TraceVmm(absl::StrCat("IMS: ", label, ": ", host.status().ToString()));
    return;
  }
  vfio_->BarWrite(bar, base + 0, 4, static_cast<uint32_t>(host->address));
  vfio_->BarWrite(bar, base + 4, 4, static_cast<uint32_t>(host->address >> 32));
  vfio_->BarWrite(bar, base + 8, 4, host->data);
  TraceVmm(absl::StrFormat("IMS: %s: guest %s -> host %s", label, guest.ToString(),
                           host->ToString()),
           host->address, host->data);
}

void AssignedPciDevice::TraceVmm(const std::string& detail, uint64_t address, uint64_t data) {
  if (!tracing()) return;
  Trace(trace::VFIO, absl::StrCat("vmm: ", detail), -1, address, data);
}

}  // namespace irqlab
