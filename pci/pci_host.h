// PciHost: a Q35-like PCI host: bus 0 with the host bridge at 00:00.0
// (8086:29C0, the 82G33/Q35 DRAM controller QEMU's q35 machine shows), the
// two configuration access methods, INTx wiring, and the firmware-role
// resource assignment a BIOS does before the OS boots.
//
// Configuration access:
//   * Mechanism #1 (PCI 3.0, 3.2.2.3.2): config_io() is an IoHandler for the
//     8 ports 0xCF8-0xCFF. CONFIG_ADDRESS (0xCF8) is accessed as a DWORD only:
//     bit 31 enable, 23:16 bus, 15:11 device, 10:8 function, 7:2 register,
//     1:0 read 0; bits 30:24 are stored and ignored. Non-DWORD accesses to
//     0xCF8-0xCFB read all-ones and are dropped (the 0xCF9 reset register is
//     not modelled). CONFIG_DATA (0xCFC-0xCFF) accesses register
//     (CONFIG_ADDRESS & 0xFC) + (port & 3) with the access size (1, 2, 4);
//     with the enable bit clear they read all-ones and writes are dropped.
//     Compatibility profile kQemu (emu/core/compat.h): CONFIG_ADDRESS keeps
//     bits 1:0 as written and CONFIG_DATA accesses register
//     (CONFIG_ADDRESS & 0xFF) | (port & 3), as QEMU does; under kSpec a
//     write with bits 1:0 set and the enable bit set is traced as COMPAT.
//   * ECAM / MMCONFIG (PCIe 7.2.2): ecam() is an IoHandler for
//     [ecam_base, ecam_base + 1 MiB * buses), address = bus << 20 | dev << 15
//     | fn << 12 | register, full 4 KiB space per function. Accesses of 1, 2,
//     4 bytes that stay inside one DWORD; others (8 bytes, DWORD-crossing:
//     "undefined" per PCIe 7.2.2) read all-ones and writes are dropped.
//   * Absent functions (and every bus but 0) read all-ones; writes are
//     dropped (a master abort on the configuration cycle, PCI 3.0 6.1).
//   Config writes are traced as PCI_CONFIG (addr = register, data = value).
//
// INTx routing rule (documented contract between AddFunction(), the
// IrqLine and AssignResources()): a function on bus 0 at device d with
// Interrupt Pin p (1 = INTA#) drives IOAPIC input
//     IntxGsi(d, p) = 16 + ((d + p - 1) % 4)
// — the standard PCI-to-PCI-bridge INTx swizzle (PCI-to-PCI Bridge Spec 1.2,
// table 9-1) onto the four PIRQ lines that QEMU's q35 routes to GSIs 16-23,
// approximated as PIRQA-D = GSI 16-19 with no PIRQ router programming.
// AddFunction() connects the function's IrqLine to the host's INTx router,
// which drives `intx_target` pin IntxGsi(d, p), and AssignResources() writes
// the same number into INTERRUPT_LINE, so what the guest reads is what the
// device drives. PCI INTx lines are shared, level-sensitive wired-OR signals
// (PCI 3.0 2.2.6): the router asserts a GSI while at least one function
// routed to it asserts its line, and deasserts it when the last one lets go.
//
// Firmware resource assignment (AssignResources(), as SeaBIOS's pciinit.c
// does): BARs are sized through config space (write all-ones, read back),
// then all BARs of all functions are placed largest first (ties: bus/dev/fn
// order, then BAR index), naturally aligned, memory BARs (32-, 64-bit and
// prefetchable alike) upward from mmio_window_base, I/O BARs upward from
// io_window_base; Command gets I/O + Memory space enabled (Bus Master only if
// Options::firmware_enables_bus_master — SeaBIOS leaves it to the OS driver);
// INTERRUPT_LINE = IntxGsi(). Deterministic: the same functions give the same
// addresses. Fails (machine-build error) when a window is exhausted or a BAR
// could not be mapped (the window overlaps something else).
//
// Not modelled: bridges / buses other than 0, the 0xCF9 reset register,
// hot-plug, MCFG/ACPI tables (the firmware stubs describe ecam_base).
//
// Example:
//
//   RootComplex rc(ram, &apic_bus, &tracer, &events);
//   PciHost host({&mem, &io, &rc, &ioapic, &tracer, &events});
//   RETURN_IF_ERROR(host.MapConfigAccess());     // 0xCF8 + ECAM
//   Edu edu(&events);
//   RETURN_IF_ERROR(host.AddFunction(3, 0, &edu));  // 00:03.0, INTA -> GSI 19
//   RETURN_IF_ERROR(host.AssignResources());
//
// Thread-compatible.
#ifndef IRQLAB_PCI_PCI_HOST_H_
#define IRQLAB_PCI_PCI_HOST_H_

#include <cstdint>
#include <map>
#include <memory>

#include "absl/status/status.h"
#include "emu/core/address_space.h"
#include "emu/core/compat.h"
#include "emu/core/clock.h"
#include "emu/core/io.h"
#include "emu/core/irq_line.h"
#include "emu/core/trace.h"
#include "pci/pci_function.h"
#include "pci/root_complex.h"

namespace irqlab {

// 00:00.0, the host bridge: identity only (no BARs, no capabilities).
class HostBridge : public PciFunction {
 public:
  static constexpr uint16_t kVendorId = 0x8086;
  static constexpr uint16_t kDeviceId = 0x29C0;
  static constexpr uint32_t kClassCode = 0x060000;  // bridge, host bridge
  HostBridge();
};

class PciHost {
 public:
  // Devices per bus (PCI 3.0 3.2.2.3.2: 5-bit device number).
  static constexpr int kDevicesPerBus = 32;
  static constexpr int kFunctionsPerDevice = 8;

  struct Options {
    uint64_t ecam_base = 0xB0000000;
    unsigned ecam_buses = 256;  // 1..256; ECAM size = buses MiB
    uint64_t mmio_window_base = 0xC0000000;
    uint64_t mmio_window_end = 0xFEC00000;  // exclusive; IOAPIC above
    uint64_t io_window_base = 0xC000;
    uint64_t io_window_end = 0x10000;       // exclusive
    bool firmware_enables_bus_master = false;
    // CONFIG_ADDRESS bits 1:0 (emu/core/compat.h).
    CompatProfile compat = CompatProfile::kSpec;
  };
  // Not owned; may be null (no memory/io space: no BARs decode; no dma:
  // functions cannot master; no intx_target: INTx lines unconnected).
  struct Platform {
    AddressSpace* memory = nullptr;
    AddressSpace* io = nullptr;
    DmaSink* dma = nullptr;
    IrqLineTarget* intx_target = nullptr;
    Tracer* tracer = nullptr;
    const Clock* clock = nullptr;
  };

  PciHost(const Platform& platform, const Options& options);
  explicit PciHost(const Platform& platform) : PciHost(platform, Options{}) {}
  PciHost(const PciHost&) = delete;
  PciHost& operator=(const PciHost&) = delete;

  // The INTx routing rule (file comment). `pin` 1..4; 0 returns -1.
  static int IntxGsi(uint8_t device, uint8_t pin);

  // Maps config_io() at 0xCF8 (8 ports) in `io` and ecam() at ecam_base in
  // `memory` (either skipped when the space is null).
  absl::Status MapConfigAccess();

  // Plugs `function` (not owned; must outlive the host's use of it) in at
  // 00:device.fn, attaches it (requester id 00:dd.f) and wires its INTx.
  // InvalidArgument for device >= 32 / fn >= 8, AlreadyExists if occupied
  // (00:00.0 is the host bridge). Setting a non-zero function marks function
  // 0 of the device multi-function (header type bit 7) when it exists.
  absl::Status AddFunction(uint8_t device, uint8_t fn, PciFunction* function);

  // Firmware-role enumeration (file comment).
  absl::Status AssignResources();

  // The function at bus:device.fn, or nullptr.
  PciFunction* Find(uint8_t bus, uint8_t device, uint8_t fn) const;

  // Configuration cycles as the chipset issues them (both access methods
  // end here; tests and firmware code may call them directly). Absent
  // function: reads all-ones, writes dropped. `size` 1, 2 or 4.
  uint32_t ConfigRead(uint8_t bus, uint8_t device, uint8_t fn,
                      uint16_t reg, unsigned size, int cpu = -1);
  void ConfigWrite(uint8_t bus, uint8_t device, uint8_t fn, uint16_t reg,
                   unsigned size, uint32_t value, int cpu = -1);

  IoHandler& config_io() { return config_io_; }
  IoHandler& ecam() { return ecam_; }
  uint64_t ecam_size() const { return uint64_t{options_.ecam_buses} << 20; }
  HostBridge& host_bridge() { return host_bridge_; }
  const Options& options() const { return options_; }
  uint32_t config_address() const { return config_io_.config_address(); }

 private:
  class ConfigIo : public IoHandler {
   public:
    explicit ConfigIo(PciHost* host) : host_(host) {}
    uint64_t Read(const AccessOrigin& origin, uint64_t offset,
                  unsigned size) override;
    void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
               uint64_t value) override;
    uint32_t config_address() const { return address_; }

   private:
    uint16_t Register(uint64_t offset) const;
    PciHost* host_;
    uint32_t address_ = 0;
  };
  // Wired-OR of the INTx lines of all functions per GSI. Each function's
  // IrqLine is connected with pin = its devfn.
  class IntxRouter : public IrqLineTarget {
   public:
    explicit IntxRouter(PciHost* host) : host_(host) {}
    void SetLevel(int devfn, bool high) override;

   private:
    PciHost* host_;
    std::map<int, bool> asserted_;    // devfn -> line level
    std::map<int, bool> gsi_level_;   // GSI -> level sent to the target
  };
  class Ecam : public IoHandler {
   public:
    explicit Ecam(PciHost* host) : host_(host) {}
    uint64_t Read(const AccessOrigin& origin, uint64_t offset,
                  unsigned size) override;
    void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
               uint64_t value) override;

   private:
    PciHost* host_;
  };

  static int DevFn(uint8_t device, uint8_t fn) { return device << 3 | fn; }
  bool tracing() const {
    return platform_.tracer != nullptr && platform_.tracer->enabled();
  }
  // REQUIRES: tracing() (callers build `detail` only when tracing).
  void Trace(trace::Stage stage, int cpu, const std::string& detail, uint64_t address,
             uint64_t data, uint32_t rid);

  // Static configuration.
  const Platform platform_;
  const Options options_;

  // Volatile state.
  ConfigIo config_io_{this};
  Ecam ecam_{this};
  IntxRouter intx_router_{this};
  HostBridge host_bridge_;
  std::map<int, PciFunction*> functions_;  // bus 0, keyed by devfn
};

}  // namespace irqlab

#endif  // IRQLAB_PCI_PCI_HOST_H_
