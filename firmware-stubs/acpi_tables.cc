#include "firmware-stubs/acpi_tables.h"

#include <cstring>
#include <set>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "emu/core/status_macros.h"

namespace irqlab {
namespace {

constexpr uint64_t k4GiB = uint64_t{1} << 32;

// Common fields of every system description table (ACPI 6.5 5.2.6).
constexpr size_t kChecksumOffset = 9;
constexpr char kOemId[] = "IRQLAB";        // 6 bytes
constexpr char kOemTableId[] = "IRQLAB  ";  // 8 bytes
constexpr uint32_t kOemRevision = 1;
constexpr char kCreatorId[] = "IRQL";       // 4 bytes
constexpr uint32_t kCreatorRevision = 1;

// RSDP (ACPI 6.5 5.2.5.3).
constexpr size_t kRsdpSize = 36;
constexpr size_t kRsdpV1Size = 20;  // the part the first checksum covers

// MADT (ACPI 6.5 5.2.12).
constexpr uint32_t kLocalApicAddress = 0xFEE00000;
// Flags bit 0 PCAT_COMPAT: the PC has dual 8259s (irqlab's PIC stubs at
// 0x20/0xA0 take the mask writes), which an OS must mask before using the
// APICs. Set as QEMU and every PC BIOS do.
constexpr uint32_t kMadtPcatCompat = 1;
constexpr uint8_t kMadtLocalApic = 0;        // 5.2.12.2, 8 bytes
constexpr uint8_t kMadtIoApic = 1;           // 5.2.12.3, 12 bytes
constexpr uint8_t kMadtIntSrcOverride = 2;   // 5.2.12.5, 10 bytes
constexpr uint8_t kMadtLocalApicNmi = 4;     // 5.2.12.7, 6 bytes
constexpr uint8_t kMadtLocalX2Apic = 9;      // 5.2.12.12, 16 bytes
constexpr uint8_t kMadtLocalX2ApicNmi = 10;  // 5.2.12.13, 12 bytes
constexpr uint32_t kMadtEnabled = 1;         // Local (x2)APIC flags bit 0
constexpr int kLint1 = 1;                    // the PC wires NMI to LINT1

// DMAR (VT-d 4.x 8.1-8.3).
constexpr uint8_t kDmarIntrRemap = 1 << 0;
constexpr uint8_t kDmarX2ApicOptOut = 1 << 1;
constexpr uint16_t kDmarDrhd = 0;
constexpr uint8_t kDrhdIncludePciAll = 1 << 0;
constexpr uint8_t kScopeIoApic = 3;

// A little-endian byte image of the table block, addressed by guest
// physical address.
class Block {
 public:
  explicit Block(uint64_t base) : base_(base) {}
  uint64_t base() const { return base_; }
  uint64_t end() const { return base_ + bytes_.size(); }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

  // Pads to a multiple of `align` bytes (relative to a 16-aligned base).
  void Align(size_t align) {
    bytes_.resize((bytes_.size() + align - 1) / align * align, 0);
  }
  void U8(uint64_t v) { bytes_.push_back(static_cast<uint8_t>(v)); }
  void U16(uint64_t v) { Le(v, 2); }
  void U32(uint64_t v) { Le(v, 4); }
  void U64(uint64_t v) { Le(v, 8); }
  void Chars(std::string_view s) { bytes_.insert(bytes_.end(), s.begin(), s.end()); }
  void Put16(uint64_t addr, uint64_t v) { PutLe(addr, v, 2); }
  void Put32(uint64_t addr, uint64_t v) { PutLe(addr, v, 4); }
  void Put8(uint64_t addr, uint8_t v) { bytes_[addr - base_] = v; }
  // Sets the byte at `checksum_addr` so that [start, start+len) sums to 0.
  void Checksum(uint64_t start, size_t len, uint64_t checksum_addr) {
    Put8(checksum_addr, 0);
    uint8_t sum = 0;
    for (size_t i = 0; i < len; ++i) sum += bytes_[start - base_ + i];
    Put8(checksum_addr, static_cast<uint8_t>(-sum));
  }

 private:
  void Le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void PutLe(uint64_t addr, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) Put8(addr + i, static_cast<uint8_t>(v >> (8 * i)));
  }
  uint64_t base_;
  std::vector<uint8_t> bytes_;
};

// Starts a table at a 16-byte boundary with its 36-byte header (length and
// checksum patched by EndTable); returns its address.
uint64_t BeginTable(Block& b, std::string_view signature, uint8_t revision) {
  b.Align(16);
  const uint64_t start = b.end();
  b.Chars(signature);
  b.U32(0);  // length, patched
  b.U8(revision);
  b.U8(0);   // checksum, patched
  b.Chars(std::string_view(kOemId, 6));
  b.Chars(std::string_view(kOemTableId, 8));
  b.U32(kOemRevision);
  b.Chars(std::string_view(kCreatorId, 4));
  b.U32(kCreatorRevision);
  return start;
}
void EndTable(Block& b, uint64_t start) {
  const size_t len = b.end() - start;
  b.Put32(start + 4, len);
  b.Checksum(start, len, start + kChecksumOffset);
}

absl::Status CheckConfig(const AcpiConfig& c) {
  if (c.cpus < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("AcpiConfig.cpus: must be at least 1, got %d", c.cpus));
  }
  if (!c.apic_ids.empty()) {
    if (c.apic_ids.size() != static_cast<size_t>(c.cpus)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "AcpiConfig.apic_ids: %d ids for %d cpus", c.apic_ids.size(), c.cpus));
    }
    std::set<uint32_t> seen;
    for (uint32_t id : c.apic_ids) {
      if (id == 0xFFFFFFFF || !seen.insert(id).second) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "AcpiConfig.apic_ids: APIC id 0x%x is %s", id,
            id == 0xFFFFFFFF ? "the x2APIC broadcast id" : "listed twice"));
      }
    }
  }
  if (c.ioapic_id > 0xFF) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "AcpiConfig.ioapic_id: the MADT and DMAR hold 8 bits, got %d", c.ioapic_id));
  }
  if (c.ioapic_base >= k4GiB) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "AcpiConfig.ioapic_base: the MADT holds a 32-bit address, got 0x%x",
        c.ioapic_base));
  }
  if (c.dmar) {
    if (c.dmar_base % 0x1000 != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "AcpiConfig.dmar_base: must be 4 KiB aligned (VT-d 8.3), got 0x%x", c.dmar_base));
    }
    if (c.host_address_width < 12 || c.host_address_width > 64) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "AcpiConfig.host_address_width: must be 12..64 bits, got %d",
          c.host_address_width));
    }
  }
  if (c.ecam_base != 0 && c.ecam_start_bus > c.ecam_end_bus) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "AcpiConfig.ecam_start_bus: %d is above ecam_end_bus %d", c.ecam_start_bus,
        c.ecam_end_bus));
  }
  return absl::OkStatus();
}

uint64_t BuildMadt(const AcpiConfig& c, Block& b) {
  const uint64_t start = BeginTable(b, "APIC", /*revision=*/5);  // ACPI 6.3+
  b.U32(kLocalApicAddress);
  b.U32(kMadtPcatCompat);
  bool any_xapic = false, any_x2apic = false;
  for (int i = 0; i < c.cpus; ++i) {
    const uint32_t apic_id = c.apic_ids.empty() ? static_cast<uint32_t>(i) : c.apic_ids[i];
    const uint32_t uid = static_cast<uint32_t>(i);
    // 5.2.12.12: APIC ids of 255 and above need the x2APIC structure (0xFF
    // is the xAPIC broadcast id); so does a UID beyond 8 bits.
    if (apic_id <= 254 && uid <= 255) {
      any_xapic = true;
      b.U8(kMadtLocalApic);
      b.U8(8);
      b.U8(uid);
      b.U8(apic_id);
      b.U32(kMadtEnabled);
    } else {
      any_x2apic = true;
      b.U8(kMadtLocalX2Apic);
      b.U8(16);
      b.U16(0);  // reserved
      b.U32(apic_id);
      b.U32(kMadtEnabled);
      b.U32(uid);
    }
  }
  b.U8(kMadtIoApic);
  b.U8(12);
  b.U8(c.ioapic_id);
  b.U8(0);  // reserved
  b.U32(c.ioapic_base);
  b.U32(c.ioapic_gsi_base);
  if (c.isa_irq0_override) {
    b.U8(kMadtIntSrcOverride);
    b.U8(10);
    b.U8(0);   // bus: ISA
    b.U8(0);   // source: IRQ0
    b.U32(2);  // GSI 2
    b.U16(0);  // MPS INTI flags: conforms to the bus (edge, active high)
  }
  // LINT1 of every processor is the NMI input (as QEMU reports it).
  if (any_xapic) {
    b.U8(kMadtLocalApicNmi);
    b.U8(6);
    b.U8(0xFF);  // all processors
    b.U16(0);    // flags: conforms to the bus
    b.U8(kLint1);
  }
  if (any_x2apic) {
    b.U8(kMadtLocalX2ApicNmi);
    b.U8(12);
    b.U16(0);           // flags
    b.U32(0xFFFFFFFF);  // all processors
    b.U8(kLint1);
    b.U8(0);
    b.U16(0);  // reserved
  }
  EndTable(b, start);
  return start;
}

uint64_t BuildDmar(const AcpiConfig& c, Block& b) {
  const uint64_t start = BeginTable(b, "DMAR", /*revision=*/1);
  b.U8(c.host_address_width - 1);  // HAW: N - 1 (8.1)
  b.U8((c.intremap ? kDmarIntrRemap : 0) | (c.x2apic_opt_out ? kDmarX2ApicOptOut : 0));
  for (int i = 0; i < 10; ++i) b.U8(0);  // reserved
  // One DRHD (8.3) for segment 0 covering every PCI device; its device
  // scope lists only the I/O APIC (INCLUDE_PCI_ALL scopes hold just I/O
  // APICs and HPETs).
  const uint64_t drhd = b.end();
  b.U16(kDmarDrhd);
  b.U16(0);  // length, patched
  b.U8(kDrhdIncludePciAll);
  b.U8(0);   // size: 2^0 4 KiB pages of registers
  b.U16(0);  // segment
  b.U64(c.dmar_base);
  // Device scope (8.3.1): type 3 I/O APIC, enumeration id = its APIC id,
  // start bus and one path entry (device, function) of its requester id.
  b.U8(kScopeIoApic);
  b.U8(8);   // 6 + 2 * one path entry
  b.U16(0);  // reserved
  b.U8(c.ioapic_id);
  b.U8(c.ioapic_rid >> 8);
  b.U8((c.ioapic_rid >> 3) & 0x1F);
  b.U8(c.ioapic_rid & 0x7);
  b.Put16(drhd + 2, b.end() - drhd);
  EndTable(b, start);
  return start;
}

uint64_t BuildMcfg(const AcpiConfig& c, Block& b) {
  const uint64_t start = BeginTable(b, "MCFG", /*revision=*/1);
  b.U64(0);  // reserved
  // Configuration space base address allocation structure (PCI Firmware
  // 3.2 Table 4-3): the address of bus 0 even when start_bus > 0.
  b.U64(c.ecam_base);
  b.U16(0);  // segment
  b.U8(c.ecam_start_bus);
  b.U8(c.ecam_end_bus);
  b.U32(0);  // reserved
  EndTable(b, start);
  return start;
}

}  // namespace

absl::Status WriteAcpiTables(const AcpiConfig& config, GuestRam* ram) {
  if (!ram->Contains(kAcpiBiosAreaStart, kAcpiBiosAreaEnd - kAcpiBiosAreaStart)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "machine.ram: the ACPI tables go in the BIOS area 0xE0000-0xFFFFF, which needs "
        "at least 1 MiB of RAM, got %d bytes",
        ram->size()));
  }
  RETURN_IF_ERROR(CheckConfig(config));

  Block b(kAcpiTablesBase);
  // RSDP first (16-byte aligned as the block base); addresses patched below.
  const uint64_t rsdp = b.end();
  b.Chars("RSD PTR ");
  b.U8(0);  // checksum
  b.Chars(std::string_view(kOemId, 6));
  b.U8(2);   // revision: ACPI 2.0+ (XSDT present)
  b.U32(0);  // RSDT address, patched
  b.U32(kRsdpSize);
  b.U64(0);  // XSDT address, patched
  b.U8(0);   // extended checksum
  b.U8(0);
  b.U16(0);  // reserved

  std::vector<uint64_t> tables;
  tables.push_back(BuildMadt(config, b));
  if (config.dmar) tables.push_back(BuildDmar(config, b));
  if (config.ecam_base != 0) tables.push_back(BuildMcfg(config, b));

  const uint64_t xsdt = BeginTable(b, "XSDT", /*revision=*/1);
  for (uint64_t t : tables) b.U64(t);
  EndTable(b, xsdt);
  const uint64_t rsdt = BeginTable(b, "RSDT", /*revision=*/1);
  for (uint64_t t : tables) b.U32(t);  // all below 1 MiB
  EndTable(b, rsdt);

  b.Put32(rsdp + 16, rsdt);
  for (int i = 0; i < 8; ++i) b.Put8(rsdp + 24 + i, static_cast<uint8_t>(xsdt >> (8 * i)));
  b.Checksum(rsdp, kRsdpV1Size, rsdp + 8);
  b.Checksum(rsdp, kRsdpSize, rsdp + 32);

  if (b.end() > kAcpiBiosAreaEnd) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "AcpiConfig.cpus: the ACPI tables for %d cpus need %d bytes, more than the "
        "BIOS area from 0x%x holds",
        config.cpus, b.bytes().size(), kAcpiTablesBase));
  }
  std::memcpy(ram->Slice(b.base(), b.bytes().size()).data(), b.bytes().data(),
              b.bytes().size());
  return absl::OkStatus();
}

}  // namespace irqlab
