#include "pci/assigned_device.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "emu/status_macros.h"
#include "pci/pci_regs.h"

namespace irqlab {

// ---------------------------------------------------------------------------
// IrqRouteTable
// ---------------------------------------------------------------------------

IrqRouteTable::IrqRouteTable(MsiSink* apic_bus, VtdUnit* viommu, Tracer* tracer,
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
  auto it = routes_.find(gsi);
  if (it == routes_.end()) return;
  Route& r = it->second;
  if (viommu_ == nullptr) {
    // KVM MSI route: the guest message is delivered as is.
    ++stats_.fast;
    Trace(r, gsi, "fast path", r.message.Vector(), r.message.address, r.message.data);
    apic_bus_->Signal(r.message);
    return;
  }
  if (r.cached) {
    ++stats_.fast;
    const VtdUnit::RemapResult& t = r.translation;
    Trace(r, gsi, absl::StrFormat("fast path (cached guest IRTE 0x%x)", t.index),
          t.message.Vector(), t.message.address, t.message.data);
    if (t.wide) {
      apic_bus_->SignalX2Apic(t.message, t.destination);
    } else {
      apic_bus_->Signal(t.message);
    }
    return;
  }
  // Slow path: translate now, through the guest's vIOMMU (faults happen
  // here, at delivery time), then re-install the fast path.
  ++stats_.slow;
  const VtdUnit::RemapResult t = viommu_->Remap(r.message);
  switch (t.kind) {
    case VtdUnit::RemapResult::kRemapped:
      r.translation = t;
      r.cached = true;
      r.cookie = by_cookie_.emplace(t.index, gsi);
      Trace(r, gsi,
            absl::StrFormat("slow path: translated by guest IRTE 0x%x, route re-installed",
                            t.index),
            t.message.Vector(), t.message.address, t.message.data);
      viommu_->DeliverRemapped(t);
      break;
    case VtdUnit::RemapResult::kPassThrough:
      Trace(r, gsi, "slow path: passed through by the guest vIOMMU (not cached)",
            t.message.Vector(), t.message.address, t.message.data);
      viommu_->DeliverRemapped(t);
      break;
    case VtdUnit::RemapResult::kPosted:
      Trace(r, gsi, "slow path: posted by the guest vIOMMU");
      break;
    case VtdUnit::RemapResult::kFaulted:
      ++stats_.faulted;
      Trace(r, gsi, "slow path: blocked by the guest vIOMMU (fault raised)", -1,
            r.message.address, r.message.data);
      break;
  }
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

AssignedPciDevice::~AssignedPciDevice() { DisableMsi(); }

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
