#include "pci/pci_function.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"

namespace irqlab {

const char* SignalResultName(SignalResult result) {
  switch (result) {
    case SignalResult::kSent:
      return "sent";
    case SignalResult::kPending:
      return "pending";
    case SignalResult::kBlocked:
      return "blocked";
    case SignalResult::kDisabled:
      return "disabled";
    case SignalResult::kInvalidVector:
      return "invalid-vector";
  }
  return "invalid";
}

namespace {

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

uint32_t BarRegister(int index) { return pci::kBar0 + 4 * index; }

const char* BarTypeName(BarType type) {
  switch (type) {
    case BarType::kMemory32:
      return "mem32";
    case BarType::kMemory64:
      return "mem64";
    case BarType::kIo:
      return "io";
  }
  return "?";
}

}  // namespace

PciFunction::PciFunction(std::string name, const Identity& identity)
    : name_(std::move(name)) {
  using namespace pci;
  config_.Set16(kVendorId, identity.vendor_id);
  config_.Set16(kDeviceId, identity.device_id);
  config_.Set8(kRevisionId, identity.revision);
  config_.Set8(kClassCode, identity.class_code & 0xFF);
  config_.Set16(kClassCode + 1, (identity.class_code >> 8) & 0xFFFF);
  config_.Set16(kSubsystemVendorId, identity.subsystem_vendor_id);
  config_.Set16(kSubsystemId, identity.subsystem_id);
  config_.Set8(kInterruptPin, identity.interrupt_pin <= 4 ? identity.interrupt_pin : 0);
  // 6.2.2 / 6.2.3 / 6.2.4 access masks.
  config_.SetWritable(kCommand, 2, kCommandWritableMask);
  config_.SetRw1c(kStatus, 2, kStatusRw1cMask);
  config_.SetWritable(kCacheLineSize, 1, 0xFF);
  config_.SetWritable(kLatencyTimer, 1, 0xFF);
  config_.SetWritable(kInterruptLine, 1, 0xFF);
}

PciFunction::~PciFunction() {
  // Leave no dangling handler in the address spaces.
  for (int i = 0; i < pci::kNumBars; ++i) {
    BarState& bar = bars_[i];
    if (!bar.mapped.has_value()) continue;
    AddressSpace* space =
        bar.spec->type == BarType::kIo ? context_.io : context_.memory;
    if (space != nullptr) (void)space->Unmap(*bar.mapped);
  }
}

// --- Construction. ---

absl::Status PciFunction::AddBar(int index, const BarSpec& spec) {
  if (attached_) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: BAR%d declared after attachment", name_, index));
  }
  const bool is64 = spec.type == BarType::kMemory64;
  if (index < 0 || index >= pci::kNumBars || (is64 && index + 1 >= pci::kNumBars)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: BAR index %d out of range for a %s BAR", name_, index,
        BarTypeName(spec.type)));
  }
  if (!IsPowerOfTwo(spec.size)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: BAR%d size 0x%x is not a power of two", name_, index, spec.size));
  }
  if (spec.type == BarType::kIo) {
    if (spec.size < pci::kMinIoBarSize || spec.size > pci::kMaxIoBarSize ||
        spec.prefetchable) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: I/O BAR%d size 0x%x must be 4..256 bytes and not prefetchable",
          name_, index, spec.size));
    }
  } else if (spec.size < pci::kMinMemBarSize ||
             (!is64 && spec.size > (uint64_t{1} << 31))) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: memory BAR%d size 0x%x out of range", name_, index, spec.size));
  }
  if (bars_[index].spec.has_value() || (is64 && bars_[index + 1].spec.has_value())) {
    return absl::AlreadyExistsError(
        absl::StrFormat("%s: BAR%d already declared", name_, index));
  }
  for (int i = 0; i < index; ++i) {
    if (bars_[i].spec.has_value() && bars_[i].spec->type == BarType::kMemory64 &&
        i + 1 == index) {
      return absl::AlreadyExistsError(absl::StrFormat(
          "%s: BAR%d is the upper half of 64-bit BAR%d", name_, index, i));
    }
  }
  const uint64_t size_mask = ~(spec.size - 1);
  const uint32_t reg = BarRegister(index);
  if (spec.type == BarType::kIo) {
    config_.Set32(reg, pci::kBarIoSpace);
    config_.SetWritable(reg, 4, static_cast<uint32_t>(size_mask) & ~pci::kBarIoFlagsMask);
  } else {
    uint32_t flags = (is64 ? pci::kBarMemType64 : 0) |
                     (spec.prefetchable ? pci::kBarPrefetchable : 0);
    config_.Set32(reg, flags);
    config_.SetWritable(reg, 4, static_cast<uint32_t>(size_mask) & ~pci::kBarMemFlagsMask);
    if (is64) {
      config_.Set32(reg + 4, 0);
      config_.SetWritable(reg + 4, 4, static_cast<uint32_t>(size_mask >> 32));
    }
  }
  bars_[index].spec = spec;
  bars_[index].window = std::make_unique<BarWindow>(this, index);
  return absl::OkStatus();
}

absl::StatusOr<uint16_t> PciFunction::AllocateCapability(uint8_t id,
                                                         uint8_t length,
                                                         uint16_t offset) {
  if (length < 2) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: capability 0x%02x length %u < 2", name_, id, length));
  }
  if (offset == 0) {
    offset = pci::kFirstCapabilityOffset;
    for (const PciCapability* cap : capabilities_) {
      uint16_t end = (cap->offset() + cap->length() + 3) & ~3;
      if (end > offset) offset = end;
    }
  }
  if ((offset & 3) != 0 || offset < pci::kFirstCapabilityOffset ||
      offset + length > pci::kConventionalConfigSize) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s: capability 0x%02x (%u bytes) at 0x%x does not fit in 0x40-0xFF "
        "dword aligned",
        name_, id, length, offset));
  }
  for (const PciCapability* cap : capabilities_) {
    if (cap->Overlaps(offset, length)) {
      return absl::AlreadyExistsError(absl::StrFormat(
          "%s: capability 0x%02x at 0x%x overlaps the one at 0x%x", name_, id,
          offset, cap->offset()));
    }
  }
  // Link: ID, Next = 0, and point the previous tail (or 0x34) at it (6.7).
  config_.Set8(offset, id);
  config_.Set8(offset + 1, 0);
  if (last_capability_ == 0) {
    config_.Set8(pci::kCapabilitiesPointer, static_cast<uint8_t>(offset));
  } else {
    config_.Set8(last_capability_ + 1, static_cast<uint8_t>(offset));
  }
  last_capability_ = offset;
  config_.Set16(pci::kStatus,
                config_.Get16(pci::kStatus) | pci::kStatusCapabilityList);
  return offset;
}

absl::StatusOr<MsiCapability*> PciFunction::AddMsiCapability(
    const MsiCapability::Options& options, uint16_t offset) {
  if (msi_ != nullptr) {
    return absl::AlreadyExistsError(absl::StrFormat("%s: MSI capability already present", name_));
  }
  if (!MsiCapability::Valid(options)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: MSI vectors %u must be a power of two in 1..32", name_,
        options.vectors));
  }
  uint16_t at;
  {
    absl::StatusOr<uint16_t> allocated =
        AllocateCapability(pci::kCapIdMsi, MsiCapability::Length(options), offset);
    if (!allocated.ok()) return allocated.status();
    at = *allocated;
  }
  msi_ = std::make_unique<MsiCapability>(this, at, options);
  capabilities_.push_back(msi_.get());
  return msi_.get();
}

absl::StatusOr<MsixCapability*> PciFunction::AddMsixCapability(
    const MsixCapability::Options& options, uint16_t offset) {
  if (msix_ != nullptr) {
    return absl::AlreadyExistsError(absl::StrFormat("%s: MSI-X capability already present", name_));
  }
  if (options.vectors < 1 || options.vectors > pci::kMsixMaxVectors) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: MSI-X table size %u not in 1..2048", name_, options.vectors));
  }
  struct Region {
    const char* what;
    int bar;
    uint64_t offset;
    uint64_t size;
  };
  const Region regions[2] = {
      {"table", options.table_bar, options.table_offset,
       MsixCapability::TableBytes(options.vectors)},
      {"PBA", options.pba_bar, options.pba_offset,
       MsixCapability::PbaBytes(options.vectors)}};
  for (const Region& r : regions) {
    if (r.bar < 0 || r.bar >= pci::kNumBars || !bars_[r.bar].spec.has_value() ||
        bars_[r.bar].spec->type == BarType::kIo) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: MSI-X %s BIR %d is not a declared memory BAR", name_, r.what, r.bar));
    }
    if ((r.offset & pci::kMsixBirMask) != 0 ||
        r.offset + r.size > bars_[r.bar].spec->size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: MSI-X %s at BAR%d+0x%x (0x%x bytes) is not QWORD aligned inside "
          "the BAR",
          name_, r.what, r.bar, r.offset, r.size));
    }
  }
  if (regions[0].bar == regions[1].bar &&
      regions[0].offset < regions[1].offset + regions[1].size &&
      regions[1].offset < regions[0].offset + regions[0].size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: MSI-X table and PBA overlap", name_));
  }
  uint16_t at;
  {
    absl::StatusOr<uint16_t> allocated =
        AllocateCapability(pci::kCapIdMsix, pci::kMsixCapLength, offset);
    if (!allocated.ok()) return allocated.status();
    at = *allocated;
  }
  msix_ = std::make_unique<MsixCapability>(this, at, options);
  capabilities_.push_back(msix_.get());
  return msix_.get();
}

void PciFunction::Attach(const PciBusContext& context, uint16_t requester_id) {
  context_ = context;
  requester_id_ = requester_id;
  attached_ = true;
  UpdateBars();
}

// --- Device-model side. ---

bool PciFunction::msi_enabled() const {
  return msi_ != nullptr && msi_->enabled();
}

bool PciFunction::msix_enabled() const {
  return msix_ != nullptr && msix_->enabled();
}

void PciFunction::SetIntxLevel(bool high) {
  intx_level_ = high;
  uint16_t status = config_.Get16(pci::kStatus);
  status = high ? (status | pci::kStatusInterrupt)
                : (status & ~pci::kStatusInterrupt);
  config_.Set16(pci::kStatus, status);
  UpdateIntx();
}

void PciFunction::UpdateIntx() {
  const bool line = intx_level_ && interrupt_pin() != 0 && !intx_disabled() &&
                    !msi_enabled() && !msix_enabled();
  if (line == intx_line_.level()) return;
  intx_line_.Set(line);
  if (tracing()) {
    const char* why = "";
    if (!line && intx_level_) {
      why = intx_disabled() ? " (Command.InterruptDisable)"
                            : " (MSI/MSI-X enabled)";
    }
    Trace(trace::PCI_INTX,
          absl::StrFormat("%s INT%c# %s%s", name_, 'A' + interrupt_pin() - 1,
                          line ? "asserted" : "deasserted", why));
  }
}

SignalResult PciFunction::SignalMsi(unsigned vector) {
  if (msi_ == nullptr || msix_enabled()) return SignalResult::kDisabled;
  return msi_->Signal(vector);
}

SignalResult PciFunction::SignalMsix(unsigned index) {
  if (msix_ == nullptr) return SignalResult::kDisabled;
  return msix_->Signal(index);
}

SignalResult PciFunction::DeliverMessage(const MsiMessage& message,
                                         std::string_view what) {
  if (!bus_master_enabled() || context_.dma == nullptr) {
    if (tracing()) {
      Trace(trace::PCI_BLOCKED,
            absl::StrFormat("%s %s dropped: %s", name_, std::string(what),
                            context_.dma == nullptr
                                ? "function not attached"
                                : "Command.BusMaster is clear"),
            -1, message.address, message.data);
    }
    return SignalResult::kBlocked;
  }
  uint8_t bytes[4];
  std::memcpy(bytes, &message.data, 4);
  absl::Status status =
      context_.dma->Write(requester_id_, message.address, absl::MakeConstSpan(bytes));
  if (!status.ok()) {
    if (absl::IsNotFound(status)) {
      config_.Set16(pci::kStatus, config_.Get16(pci::kStatus) |
                                      pci::kStatusReceivedMasterAbort);
    }
    if (tracing()) {
      Trace(trace::PCI_BLOCKED,
            absl::StrFormat("%s %s write failed: %s", name_, std::string(what),
                            std::string(status.message())),
            -1, message.address, message.data);
    }
    return SignalResult::kBlocked;
  }
  ++messages_sent_;
  return SignalResult::kSent;
}

absl::Status PciFunction::DmaWrite(uint64_t address,
                                   absl::Span<const uint8_t> data) {
  if (!bus_master_enabled() || context_.dma == nullptr) {
    const char* why = context_.dma == nullptr ? "function not attached"
                                              : "Command.BusMaster is clear";
    Trace(trace::PCI_BLOCKED,
          absl::StrFormat("%s DMA write of %u bytes dropped: %s", name_,
                          data.size(), why),
          -1, address, data.size());
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: DMA write at 0x%x: %s", name_, address, why));
  }
  absl::Status status = context_.dma->Write(requester_id_, address, data);
  if (absl::IsNotFound(status)) {
    config_.Set16(pci::kStatus, config_.Get16(pci::kStatus) |
                                    pci::kStatusReceivedMasterAbort);
  }
  return status;
}

absl::Status PciFunction::DmaRead(uint64_t address, absl::Span<uint8_t> out) {
  if (!bus_master_enabled() || context_.dma == nullptr) {
    const char* why = context_.dma == nullptr ? "function not attached"
                                              : "Command.BusMaster is clear";
    Trace(trace::PCI_BLOCKED,
          absl::StrFormat("%s DMA read of %u bytes dropped: %s", name_,
                          out.size(), why),
          -1, address, out.size());
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: DMA read at 0x%x: %s", name_, address, why));
  }
  absl::Status status = context_.dma->Read(requester_id_, address, out);
  if (absl::IsNotFound(status)) {
    config_.Set16(pci::kStatus, config_.Get16(pci::kStatus) |
                                    pci::kStatusReceivedMasterAbort);
  }
  return status;
}

// --- Bus side. ---

uint32_t PciFunction::ConfigRead(uint32_t offset, unsigned size) const {
  return config_.Read(offset, size);
}

void PciFunction::ConfigWrite(uint32_t offset, unsigned size, uint32_t value) {
  if (size == 0 || size > 4 || offset >= ConfigSpace::kSize) return;
  config_.GuestWrite(offset, size, value);
  const uint32_t end = offset + size;
  const bool touches_command = offset < pci::kCommand + 2 && end > pci::kCommand;
  const bool touches_bars =
      offset < pci::kBar0 + 4 * pci::kNumBars && end > pci::kBar0;
  if (touches_command || touches_bars) UpdateBars();
  for (PciCapability* cap : capabilities_) {
    if (cap->Overlaps(offset, size)) cap->AfterConfigWrite();
  }
  // Command.InterruptDisable and the MSI/MSI-X enables gate INTx.
  UpdateIntx();
  OnConfigWrite(offset, size);
}

const BarSpec* PciFunction::bar(int index) const {
  if (index < 0 || index >= pci::kNumBars || !bars_[index].spec.has_value()) {
    return nullptr;
  }
  return &*bars_[index].spec;
}

uint64_t PciFunction::BarAddress(int index) const {
  const BarSpec* spec = bar(index);
  if (spec == nullptr) return 0;
  const uint32_t lo = config_.Get32(BarRegister(index));
  switch (spec->type) {
    case BarType::kIo:
      return lo & ~pci::kBarIoFlagsMask;
    case BarType::kMemory32:
      return lo & ~pci::kBarMemFlagsMask;
    case BarType::kMemory64:
      return (lo & ~pci::kBarMemFlagsMask) |
             (uint64_t{config_.Get32(BarRegister(index + 1))} << 32);
  }
  return 0;
}

std::optional<uint64_t> PciFunction::BarMappedAt(int index) const {
  if (index < 0 || index >= pci::kNumBars) return std::nullopt;
  return bars_[index].mapped;
}

bool PciFunction::HasUndecodedBar() const {
  for (const BarState& bar : bars_) {
    if (bar.wanted.has_value() && !bar.mapped.has_value()) return true;
  }
  return false;
}

std::optional<uint64_t> PciFunction::DesiredBarBase(int index) const {
  const BarSpec* spec = bar(index);
  if (spec == nullptr) return std::nullopt;
  const bool io = spec->type == BarType::kIo;
  if (!(command() & (io ? pci::kCommandIoSpace : pci::kCommandMemorySpace))) {
    return std::nullopt;
  }
  const AddressSpace* space = io ? context_.io : context_.memory;
  if (space == nullptr) return std::nullopt;
  const uint64_t base = BarAddress(index);
  if (base == 0) return std::nullopt;  // unprogrammed
  const uint64_t last = base + spec->size - 1;
  if (last < base) return std::nullopt;  // wraps
  // A 32-bit BAR reaching 0xFFFFFFFF holds a sizing pattern (QEMU rule).
  if (spec->type == BarType::kMemory32 && last >= 0xFFFFFFFFull) {
    return std::nullopt;
  }
  if (last >= space->limit()) return std::nullopt;  // outside the space
  return base;
}

void PciFunction::UpdateBars() {
  if (!attached_) return;
  for (int i = 0; i < pci::kNumBars; ++i) {
    BarState& bar = bars_[i];
    if (!bar.spec.has_value()) continue;
    const std::optional<uint64_t> desired = DesiredBarBase(i);
    const bool changed = desired != bar.wanted;
    if (!changed && desired == bar.mapped) continue;
    AddressSpace* space =
        bar.spec->type == BarType::kIo ? context_.io : context_.memory;
    if (bar.mapped.has_value() && bar.mapped != desired) {
      (void)space->Unmap(*bar.mapped);
      if (tracing()) {
        Trace(trace::PCI_BAR,
              absl::StrFormat("%s BAR%d unmapped from %s", name_, i, space->name()),
              -1, *bar.mapped, bar.spec->size);
      }
      bar.mapped.reset();
    }
    bar.wanted = desired;
    if (!desired.has_value() || bar.mapped.has_value()) continue;
    absl::Status status =
        space->Map(*desired, bar.spec->size, bar.window.get(),
                   absl::StrFormat("%s BAR%d", name_, i));
    if (status.ok()) {
      bar.mapped = desired;
      if (tracing()) {
        Trace(trace::PCI_BAR,
              absl::StrFormat("%s BAR%d mapped in %s", name_, i, space->name()),
              -1, *desired, bar.spec->size);
      }
    } else if (changed && tracing()) {
      // Guest mistake: the BAR does not decode. Traced once per new address.
      Trace(trace::PCI_BAR,
            absl::StrFormat("%s BAR%d does not decode: %s", name_, i,
                            std::string(status.message())),
            -1, *desired, bar.spec->size);
    }
  }
}

void PciFunction::Trace(trace::Stage stage, std::string_view detail,
                        int vector, uint64_t address, uint64_t data) const {
  if (!tracing()) return;
  context_.tracer->Emit(Now(), stage, /*cpu=*/-1, detail, vector, address,
                        data, requester_id_);
}

// --- BAR windows. ---

uint64_t PciFunction::BarWindow::Read(const AccessOrigin& origin,
                                      uint64_t offset, unsigned size) {
  PciFunction* f = function_;
  if (f->msix_ != nullptr && f->msix_->Claims(index_, offset)) {
    return f->msix_->Read(index_, offset, size);
  }
  IoHandler* handler = f->bars_[index_].spec->handler;
  if (handler == nullptr) return 0;
  return handler->Read(origin, offset, size);
}

void PciFunction::BarWindow::Write(const AccessOrigin& origin, uint64_t offset,
                                   unsigned size, uint64_t value) {
  PciFunction* f = function_;
  if (f->msix_ != nullptr && f->msix_->Claims(index_, offset)) {
    f->msix_->Write(index_, offset, size, value);
    return;
  }
  IoHandler* handler = f->bars_[index_].spec->handler;
  if (handler == nullptr) return;
  handler->Write(origin, offset, size, value);
}

}  // namespace irqlab
