#include "pci/pci_host.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"

namespace irqlab {

HostBridge::HostBridge()
    : PciFunction("host-bridge",
                  Identity{.vendor_id = kVendorId,
                           .device_id = kDeviceId,
                           .class_code = kClassCode,
                           .revision = 0,
                           .subsystem_vendor_id = 0x1AF4,  // as QEMU's q35
                           .subsystem_id = 0x1100,
                           .interrupt_pin = 0}) {}

PciHost::PciHost(const Platform& platform, const Options& options)
    : platform_(platform), options_(options) {
  // Cannot fail: 00:00.0 is free and in range.
  (void)AddFunction(0, 0, &host_bridge_);
}

int PciHost::IntxGsi(uint8_t device, uint8_t pin) {
  if (pin < 1 || pin > 4) return -1;
  return 16 + ((device + pin - 1) % 4);
}

absl::Status PciHost::MapConfigAccess() {
  if (platform_.io != nullptr) {
    absl::Status s = platform_.io->Map(pci::kConfigAddressPort,
                                       pci::kConfigPortsSize, &config_io_,
                                       "pci-config");
    if (!s.ok()) return s;
  }
  if (platform_.memory != nullptr) {
    if (options_.ecam_buses < 1 || options_.ecam_buses > 256) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "pci: ecam_buses %u not in 1..256", options_.ecam_buses));
    }
    absl::Status s = platform_.memory->Map(options_.ecam_base, ecam_size(),
                                           &ecam_, "pci-ecam");
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status PciHost::AddFunction(uint8_t device, uint8_t fn,
                                  PciFunction* function) {
  if (device >= kDevicesPerBus || fn >= kFunctionsPerDevice || function == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "pci: cannot add function at 00:%02x.%x (device < 32, function < 8, "
        "non-null)",
        device, fn));
  }
  if (function->attached()) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "pci: \"%s\" is already plugged in", function->name()));
  }
  const int devfn = DevFn(device, fn);
  if (auto it = functions_.find(devfn); it != functions_.end()) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "pci: 00:%02x.%x is taken by \"%s\"", device, fn, it->second->name()));
  }
  functions_[devfn] = function;
  function->Attach(PciBusContext{platform_.memory, platform_.io, platform_.dma,
                                 platform_.tracer, platform_.clock},
                   pci::MakeRequesterId(0, device, fn));
  const uint8_t pin = function->interrupt_pin();
  if (pin != 0) function->intx_line().Connect(&intx_router_, devfn);
  // Multi-function devices (PCI 3.0 6.2.1, Header Type bit 7).
  auto mark = [](PciFunction* f) {
    ConfigSpace& cs = f->config();
    cs.Set8(pci::kHeaderType, cs.Get8(pci::kHeaderType) | pci::kHeaderTypeMultiFunction);
  };
  if (fn != 0) {
    if (PciFunction* f0 = Find(0, device, 0); f0 != nullptr) mark(f0);
  } else {
    for (int f = 1; f < kFunctionsPerDevice; ++f) {
      if (Find(0, device, f) != nullptr) {
        mark(function);
        break;
      }
    }
  }
  return absl::OkStatus();
}

PciFunction* PciHost::Find(uint8_t bus, uint8_t device, uint8_t fn) const {
  if (bus != 0 || device >= kDevicesPerBus || fn >= kFunctionsPerDevice) return nullptr;
  auto it = functions_.find(DevFn(device, fn));
  return it == functions_.end() ? nullptr : it->second;
}

uint32_t PciHost::ConfigRead(uint8_t bus, uint8_t device, uint8_t fn,
                             uint16_t reg, unsigned size, int cpu) {
  (void)cpu;
  PciFunction* f = Find(bus, device, fn);
  if (f == nullptr || reg >= ConfigSpace::kSize) {
    return static_cast<uint32_t>(AllOnes(size > 4 ? 4 : size));
  }
  return f->ConfigRead(reg, size);
}

void PciHost::Trace(trace::Stage stage, int cpu, const std::string& detail,
                    uint64_t address, uint64_t data, uint32_t rid) {
  platform_.tracer->Emit(platform_.clock != nullptr ? platform_.clock->Now() : 0, stage,
                         cpu, detail, -1, address, data, rid);
}

void PciHost::ConfigWrite(uint8_t bus, uint8_t device, uint8_t fn,
                          uint16_t reg, unsigned size, uint32_t value,
                          int cpu) {
  PciFunction* f = Find(bus, device, fn);
  if (tracing()) {
    Trace(trace::PCI_CONFIG, cpu,
          absl::StrFormat("%02x:%02x.%x write size=%u%s", bus, device, fn, size,
                          f == nullptr ? ": no function, dropped"
                                       : std::string(" ") + f->name()),
          reg, value, pci::MakeRequesterId(bus, device, fn));
  }
  if (f == nullptr || reg >= ConfigSpace::kSize) return;
  f->ConfigWrite(reg, size, value);
  // A BAR that could not decode (overlap) may be able to now that another
  // one moved or stopped decoding: retry them all (silently).
  bool retry = false;
  for (const auto& [devfn, other] : functions_) retry |= other->HasUndecodedBar();
  if (retry) {
    for (const auto& [devfn, other] : functions_) other->UpdateBars();
  }
}

void PciHost::IntxRouter::SetLevel(int devfn, bool high) {
  PciFunction* f = host_->Find(0, devfn >> 3, devfn & 7);
  if (f == nullptr) return;
  const int gsi = IntxGsi(devfn >> 3, f->interrupt_pin());
  if (gsi < 0) return;
  asserted_[devfn] = high;
  bool any = false;
  for (const auto& [other, level] : asserted_) {
    if (!level) continue;
    PciFunction* g = host_->Find(0, other >> 3, other & 7);
    if (g != nullptr && IntxGsi(other >> 3, g->interrupt_pin()) == gsi) {
      any = true;
      break;
    }
  }
  bool& sent = gsi_level_[gsi];
  if (any == sent) return;
  sent = any;
  if (host_->platform_.intx_target != nullptr) {
    host_->platform_.intx_target->SetLevel(gsi, any);
  }
}

// --- Mechanism #1. ---

uint64_t PciHost::ConfigIo::Read(const AccessOrigin& origin, uint64_t offset,
                                 unsigned size) {
  if (offset < 4) {
    if (offset == 0 && size == 4) return address_;
    return AllOnes(size);
  }
  if (!(address_ & pci::kConfigAddressEnable) || size > 4) return AllOnes(size);
  const uint8_t bus = (address_ >> 16) & 0xFF;
  const uint8_t dev = (address_ >> 11) & 0x1F;
  const uint8_t fn = (address_ >> 8) & 0x7;
  return host_->ConfigRead(bus, dev, fn, Register(offset), size, origin.cpu);
}

// The register CONFIG_DATA port `offset` (4..7) selects.
uint16_t PciHost::ConfigIo::Register(uint64_t offset) const {
  // PCI 3.0 3.2.2.3.2: bits 1:0 of CONFIG_ADDRESS are 0, the byte comes from
  // the data port; QEMU ORs the bits it kept (pci_host_data_read).
  if (host_->options_.compat == CompatProfile::kQemu) {
    return static_cast<uint16_t>((address_ & 0xFF) | (offset & 3));
  }
  return static_cast<uint16_t>((address_ & 0xFC) + (offset & 3));
}

void PciHost::ConfigIo::Write(const AccessOrigin& origin, uint64_t offset,
                              unsigned size, uint64_t value) {
  if (offset < 4) {
    if (offset != 0 || size != 4) return;
    address_ = static_cast<uint32_t>(value);
    if (host_->options_.compat == CompatProfile::kQemu || (address_ & 3) == 0) return;
    address_ &= ~3u;  // PCI 3.0 3.2.2.3.2: bits 1:0 read as 0
    if ((value & pci::kConfigAddressEnable) && host_->tracing()) {
      host_->Trace(trace::COMPAT, origin.cpu,
                   absl::StrFormat("CONFIG_ADDRESS written with bits 1:0 = %u: ignored "
                                   "(PCI 3.0 3.2.2.3.2); QEMU adds them to the register "
                                   "offset (--compat=qemu)",
                                   static_cast<unsigned>(value & 3)),
                   0xCF8, value, 0);
    }
    return;
  }
  if (!(address_ & pci::kConfigAddressEnable) || size > 4) return;
  const uint8_t bus = (address_ >> 16) & 0xFF;
  const uint8_t dev = (address_ >> 11) & 0x1F;
  const uint8_t fn = (address_ >> 8) & 0x7;
  host_->ConfigWrite(bus, dev, fn, Register(offset), size, static_cast<uint32_t>(value),
                     origin.cpu);
}

// --- ECAM. ---

uint64_t PciHost::Ecam::Read(const AccessOrigin& origin, uint64_t offset,
                             unsigned size) {
  const uint16_t reg = offset & 0xFFF;
  if (size > 4 || (reg & 3) + size > 4) return AllOnes(size);
  return host_->ConfigRead((offset >> 20) & 0xFF, (offset >> 15) & 0x1F,
                           (offset >> 12) & 0x7, reg, size, origin.cpu);
}

void PciHost::Ecam::Write(const AccessOrigin& origin, uint64_t offset,
                          unsigned size, uint64_t value) {
  const uint16_t reg = offset & 0xFFF;
  if (size > 4 || (reg & 3) + size > 4) return;
  host_->ConfigWrite((offset >> 20) & 0xFF, (offset >> 15) & 0x1F,
                     (offset >> 12) & 0x7, reg, size,
                     static_cast<uint32_t>(value), origin.cpu);
}

// --- Firmware-role resource assignment. ---

absl::Status PciHost::AssignResources() {
  struct Request {
    int devfn;
    int bar;
    uint64_t size;
    bool io;
    bool is64;
  };
  std::vector<Request> requests;
  for (const auto& [devfn, f] : functions_) {
    const uint8_t dev = devfn >> 3, fn = devfn & 7;
    // Decode off while sizing (as SeaBIOS/Linux do).
    const uint16_t command = static_cast<uint16_t>(ConfigRead(0, dev, fn, pci::kCommand, 2));
    ConfigWrite(0, dev, fn, pci::kCommand, 2,
                command & ~(pci::kCommandIoSpace | pci::kCommandMemorySpace));
    for (int i = 0; i < pci::kNumBars; ++i) {
      const uint16_t reg = pci::kBar0 + 4 * i;
      const uint32_t old = ConfigRead(0, dev, fn, reg, 4);
      ConfigWrite(0, dev, fn, reg, 4, 0xFFFFFFFF);
      const uint32_t lo = ConfigRead(0, dev, fn, reg, 4);
      ConfigWrite(0, dev, fn, reg, 4, old);
      if (lo == 0) continue;  // unimplemented BAR
      if (lo & pci::kBarIoSpace) {
        // I/O BAR: the upper 16 bits may be hardwired 0 on some devices.
        uint32_t mask = lo & ~pci::kBarIoFlagsMask;
        mask |= 0xFFFF0000;
        requests.push_back({devfn, i, uint64_t{~mask} + 1, true, false});
        continue;
      }
      uint64_t mask = lo & ~pci::kBarMemFlagsMask;
      const bool is64 = (lo & 0x6) == pci::kBarMemType64;
      if (is64 && i + 1 < pci::kNumBars) {
        const uint16_t hreg = reg + 4;
        const uint32_t hold = ConfigRead(0, dev, fn, hreg, 4);
        ConfigWrite(0, dev, fn, hreg, 4, 0xFFFFFFFF);
        mask |= uint64_t{ConfigRead(0, dev, fn, hreg, 4)} << 32;
        ConfigWrite(0, dev, fn, hreg, 4, hold);
      } else {
        mask |= 0xFFFFFFFF00000000ull;
      }
      requests.push_back({devfn, i, ~mask + 1, false, is64});
      if (is64) ++i;
    }
  }
  // Largest first, then bus/dev/fn, then BAR index: deterministic packing.
  std::stable_sort(requests.begin(), requests.end(),
                   [](const Request& a, const Request& b) {
                     if (a.size != b.size) return a.size > b.size;
                     if (a.devfn != b.devfn) return a.devfn < b.devfn;
                     return a.bar < b.bar;
                   });
  uint64_t mmio_next = options_.mmio_window_base;
  uint64_t io_next = options_.io_window_base;
  for (const Request& r : requests) {
    uint64_t& next = r.io ? io_next : mmio_next;
    const uint64_t end = r.io ? options_.io_window_end : options_.mmio_window_end;
    const uint64_t base = (next + r.size - 1) & ~(r.size - 1);
    const uint8_t dev = r.devfn >> 3, fn = r.devfn & 7;
    if (r.size == 0 || base < next || base > end || r.size > end - base) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "pci: 00:%02x.%x \"%s\" BAR%d (0x%x bytes) does not fit in the %s "
          "window [0x%x, 0x%x)",
          dev, fn, functions_.at(r.devfn)->name(), r.bar, r.size,
          r.io ? "I/O" : "MMIO", r.io ? options_.io_window_base : options_.mmio_window_base,
          end));
    }
    next = base + r.size;
    const uint16_t reg = pci::kBar0 + 4 * r.bar;
    ConfigWrite(0, dev, fn, reg, 4, static_cast<uint32_t>(base));
    if (r.is64) ConfigWrite(0, dev, fn, reg + 4, 4, static_cast<uint32_t>(base >> 32));
  }
  for (const auto& [devfn, f] : functions_) {
    const uint8_t dev = devfn >> 3, fn = devfn & 7;
    uint16_t command = static_cast<uint16_t>(ConfigRead(0, dev, fn, pci::kCommand, 2));
    command |= pci::kCommandIoSpace | pci::kCommandMemorySpace;
    if (options_.firmware_enables_bus_master) command |= pci::kCommandBusMaster;
    ConfigWrite(0, dev, fn, pci::kCommand, 2, command);
    const uint8_t pin = static_cast<uint8_t>(ConfigRead(0, dev, fn, pci::kInterruptPin, 1));
    if (pin >= 1 && pin <= 4) {
      ConfigWrite(0, dev, fn, pci::kInterruptLine, 1,
                  static_cast<uint32_t>(IntxGsi(dev, pin)));
    }
  }
  for (const auto& [devfn, f] : functions_) {
    for (int i = 0; i < pci::kNumBars; ++i) {
      const BarSpec* spec = f->bar(i);
      if (spec == nullptr || f->BarMappedAt(i).has_value()) continue;
      // Without the matching space nothing can decode; not an error.
      if ((spec->type == BarType::kIo ? platform_.io : platform_.memory) != nullptr) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "pci: 00:%02x.%x \"%s\" BAR%d assigned at 0x%x could not be mapped "
            "(overlaps another range?)",
            devfn >> 3, devfn & 7, f->name(), i, f->BarAddress(i)));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace irqlab
