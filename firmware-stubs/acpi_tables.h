// ACPI tables for the irqlab PC, written by the host into guest RAM the way
// a BIOS leaves them for the OS: an RSDP in the BIOS area that an ACPI-aware
// kernel scans (0xE0000-0xFFFFF, 16-byte boundaries: ACPI 6.5 5.2.5.1), an
// XSDT and an RSDT pointing at
//   - the MADT ("APIC", ACPI 6.5 5.2.12): the local APICs, the I/O APIC,
//     the ISA IRQ0 -> GSI 2 override and the LINT1 NMI,
//   - the DMAR (Intel VT-d 4.x chapter 8), only with `dmar`: one DRHD that
//     covers every PCI device (INCLUDE_PCI_ALL) with the I/O APIC in its
//     device scope,
//   - the MCFG (PCI Firmware 3.2 4.1.2) for the ECAM window, unless
//     ecam_base is 0.
// There is no FADT/DSDT: enough for a kernel's early table parsing (Linux
// reads the MADT in acpi_boot_init() and the DMAR in detect_intel_iommu()
// before the AML interpreter), not for ACPI power management.
//
// Layout: everything lives in one block at kAcpiTablesBase (0xF0000, the
// range the multiboot memory map reports as reserved BIOS area), RSDP first,
// each table 16-byte aligned. WriteAcpiTables overwrites [0xF0000, end of
// the block) and nothing else.
#ifndef IRQLAB_FIRMWARE_STUBS_ACPI_TABLES_H_
#define IRQLAB_FIRMWARE_STUBS_ACPI_TABLES_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "emu/core/guest_ram.h"

namespace irqlab {

// Where the tables go, and the window an OS scans for the RSDP.
inline constexpr uint64_t kAcpiTablesBase = 0xF0000;
inline constexpr uint64_t kAcpiBiosAreaStart = 0xE0000;
inline constexpr uint64_t kAcpiBiosAreaEnd = 0x100000;  // exclusive

struct AcpiConfig {
  // Number of CPUs (>= 1). CPU i has ACPI processor UID i and APIC id
  // apic_ids[i], or i when apic_ids is empty (the irqlab machine).
  int cpus = 1;
  std::vector<uint32_t> apic_ids = {};
  // The I/O APIC: its id, MMIO base, first GSI and the requester id its
  // MSIs carry (bus 15:8, device 7:3, function 2:0; F0:1F.0 by default).
  uint32_t ioapic_id = 0;
  uint64_t ioapic_base = 0xFEC00000;
  uint32_t ioapic_gsi_base = 0;
  uint16_t ioapic_rid = 0xF0F8;
  // MADT: ISA IRQ0 (the PIT) -> GSI 2, as QEMU and real chipsets report it.
  // irqlab has no PIT, so no device uses it; it only keeps an OS's ISA IRQ
  // numbering identical to QEMU's (pc-testdev line n stays GSI n either way).
  bool isa_irq0_override = true;
  // DMAR: emitted only when `dmar` (the machine has --device=intel-iommu).
  bool dmar = false;
  uint64_t dmar_base = 0xFED90000;
  bool intremap = true;          // DMAR flags bit 0 INTR_REMAP
  bool x2apic_opt_out = false;   // DMAR flags bit 1 X2APIC_OPT_OUT
  // Host address width in bits (N): the maximum DMA physical address width.
  // The table stores N - 1 (VT-d 8.1). 39 matches DmaRemapOptions::haw,
  // above which the remapper treats table addresses as reserved.
  uint8_t host_address_width = 39;
  // MCFG: the ECAM window for PCI segment 0, buses ecam_start_bus..
  // ecam_end_bus (no MCFG when ecam_base is 0).
  uint64_t ecam_base = 0xB0000000;
  uint8_t ecam_start_bus = 0;
  uint8_t ecam_end_bus = 255;
};

// Writes the RSDP, XSDT, RSDT, MADT, DMAR (if config.dmar) and MCFG into
// `ram` at kAcpiTablesBase. Errors: RAM smaller than 1 MiB (names
// machine.ram), or a configuration the tables cannot express (names the
// AcpiConfig field).
absl::Status WriteAcpiTables(const AcpiConfig& config, GuestRam* ram);

}  // namespace irqlab

#endif  // IRQLAB_FIRMWARE_STUBS_ACPI_TABLES_H_
