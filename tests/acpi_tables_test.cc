// ACPI tables (firmware-stubs/acpi_tables.h) as an OS finds them: the RSDP
// by scanning the BIOS area on 16-byte boundaries (ACPI 6.5 5.2.5.1), every
// checksum, the XSDT/RSDT, the MADT (5.2.12), the DMAR (VT-d 4.x chapter 8)
// and the MCFG. The tables are decoded twice: by the independent byte-level
// reader in this file, and by the guest's own parser
// (firmware-stubs/runtime/acpi.h, compiled here over the RAM image).
#include "firmware-stubs/acpi_tables.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "emu/core/guest_ram.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// The guest parser reads "physical memory" through ACPI_PHYS: point it at
// the test's GuestRam.
namespace {
const irqlab::GuestRam* g_parser_ram = nullptr;
}  // namespace
#define ACPI_PHYS(pa) (g_parser_ram->data() + (pa))
#define ACPI_PHYS_LIMIT (g_parser_ram->size())
#include "firmware-stubs/runtime/acpi.h"

namespace irqlab {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr uint64_t kRamSize = 2ull << 20;

struct Entry {  // one MADT / DMAR structure
  uint64_t addr;
  uint16_t type;
  uint16_t length;
};

class AcpiTablesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ram = GuestRam::Create(kRamSize);
    ASSERT_TRUE(ram.ok()) << ram.status();
    ram_ = std::move(*ram);
    g_parser_ram = ram_.get();
  }
  void TearDown() override { g_parser_ram = nullptr; }

  void Write(const AcpiConfig& config) {
    absl::Status s = WriteAcpiTables(config, ram_.get());
    ASSERT_TRUE(s.ok()) << s;
  }

  uint8_t U8(uint64_t a) const { return ram_->Load<uint8_t>(a); }
  uint16_t U16(uint64_t a) const { return ram_->Load<uint16_t>(a); }
  uint32_t U32(uint64_t a) const { return ram_->Load<uint32_t>(a); }
  uint64_t U64(uint64_t a) const { return ram_->Load<uint64_t>(a); }
  std::string Str(uint64_t a, size_t n) const {
    return std::string(reinterpret_cast<const char*>(ram_->data() + a), n);
  }
  uint8_t Sum(uint64_t a, size_t n) const {
    uint8_t s = 0;
    for (size_t i = 0; i < n; ++i) s += U8(a + i);
    return s;
  }

  // Linux (acpi_find_root_pointer): "RSD PTR " on a 16-byte boundary in
  // 0xE0000-0xFFFFF whose first 20 bytes sum to 0. Every such candidate.
  std::vector<uint64_t> ScanRsdp() const {
    std::vector<uint64_t> found;
    for (uint64_t a = 0xE0000; a < 0x100000; a += 16) {
      if (Str(a, 8) == "RSD PTR " && Sum(a, 20) == 0) found.push_back(a);
    }
    return found;
  }
  uint64_t Rsdp() const {
    std::vector<uint64_t> r = ScanRsdp();
    EXPECT_EQ(r.size(), 1u);
    return r.empty() ? 0 : r[0];
  }
  // Table addresses listed by the XSDT (or the RSDT when !xsdt).
  std::vector<uint64_t> RootEntries(bool xsdt) const {
    const uint64_t rsdp = Rsdp();
    const uint64_t root = xsdt ? U64(rsdp + 24) : U32(rsdp + 16);
    const size_t es = xsdt ? 8 : 4;
    std::vector<uint64_t> out;
    for (uint64_t a = root + 36; a < root + U32(root + 4); a += es) {
      out.push_back(xsdt ? U64(a) : U32(a));
    }
    return out;
  }
  // Address of the table `sig` in the XSDT, or 0.
  uint64_t Find(const std::string& sig) const {
    for (uint64_t t : RootEntries(true)) {
      if (Str(t, 4) == sig) return t;
    }
    return 0;
  }
  // Structures of the MADT (from offset 44) or DMAR (from 48); DMAR
  // structures have 16-bit type and length.
  std::vector<Entry> Structures(uint64_t table, uint64_t first, bool wide) const {
    std::vector<Entry> out;
    const uint64_t end = table + U32(table + 4);
    for (uint64_t p = table + first; p < end;) {
      Entry e{p, static_cast<uint16_t>(wide ? U16(p) : U8(p)),
              static_cast<uint16_t>(wide ? U16(p + 2) : U8(p + 1))};
      EXPECT_GE(e.length, 2) << "structure at 0x" << std::hex << p;
      if (e.length < 2) break;
      out.push_back(e);
      p += e.length;
    }
    EXPECT_EQ(out.empty() ? table + first : out.back().addr + out.back().length, end)
        << "structures do not end at the table length";
    return out;
  }

  std::unique_ptr<GuestRam> ram_;
};

// RSDP (5.2.5.3): revision 2 with RSDT and XSDT, both checksums, in the
// BIOS area on a 16-byte boundary; exactly one candidate there.
TEST_F(AcpiTablesTest, RsdpIsFoundByTheLinuxScanWithBothChecksums) {
  Write({.cpus = 1});
  const uint64_t rsdp = Rsdp();
  ASSERT_NE(rsdp, 0u);
  EXPECT_EQ(rsdp % 16, 0u);
  EXPECT_GE(rsdp, 0xE0000u);
  EXPECT_LT(rsdp + 36, 0x100000u);
  EXPECT_EQ(Str(rsdp + 9, 6), "IRQLAB");
  EXPECT_EQ(U8(rsdp + 15), 2);    // revision
  EXPECT_EQ(U32(rsdp + 20), 36u);  // length
  EXPECT_EQ(Sum(rsdp, 20), 0);
  EXPECT_EQ(Sum(rsdp, 36), 0);
  EXPECT_NE(U32(rsdp + 16), 0u);
  EXPECT_NE(U64(rsdp + 24), 0u);
}

// Every table (5.2.6): signature, length, checksum over length, OEM id
// "IRQLAB"; the XSDT and RSDT list the same tables.
TEST_F(AcpiTablesTest, EveryTableChecksumsAndXsdtMatchesRsdt) {
  Write({.cpus = 4, .dmar = true});
  const uint64_t rsdp = Rsdp();
  for (uint64_t root : {U64(rsdp + 24), uint64_t{U32(rsdp + 16)}}) {
    SCOPED_TRACE(Str(root, 4));
    EXPECT_THAT(Str(root, 4), ::testing::AnyOf("XSDT", "RSDT"));
    EXPECT_EQ(Sum(root, U32(root + 4)), 0);
    EXPECT_EQ(U8(root + 8), 1);  // revision
  }
  EXPECT_EQ(Str(U64(rsdp + 24), 4), "XSDT");
  EXPECT_EQ(Str(U32(rsdp + 16), 4), "RSDT");
  const std::vector<uint64_t> tables = RootEntries(true);
  EXPECT_EQ(tables, RootEntries(false));
  std::vector<std::string> sigs;
  for (uint64_t t : tables) {
    sigs.push_back(Str(t, 4));
    SCOPED_TRACE(sigs.back());
    EXPECT_GE(t, 0xE0000u);
    EXPECT_LE(t + U32(t + 4), 0x100000u);
    EXPECT_GE(U32(t + 4), 36u);
    EXPECT_EQ(Sum(t, U32(t + 4)), 0);
    EXPECT_EQ(Str(t + 10, 6), "IRQLAB");
  }
  EXPECT_THAT(sigs, UnorderedElementsAre("APIC", "DMAR", "MCFG"));
}

// MADT (5.2.12): LAPIC address, PCAT_COMPAT, one enabled Processor Local
// APIC per CPU (UID i, APIC id i), the I/O APIC, IRQ0 -> GSI 2, LINT1 NMI.
TEST_F(AcpiTablesTest, MadtListsEveryCpuTheIoApicTheIrq0OverrideAndNmi) {
  Write({.cpus = 4});
  const uint64_t madt = Find("APIC");
  ASSERT_NE(madt, 0u);
  EXPECT_EQ(U32(madt + 36), 0xFEE00000u);
  EXPECT_EQ(U32(madt + 40), 1u);  // PCAT_COMPAT
  std::vector<uint32_t> apic_ids, uids;
  int ioapics = 0, overrides = 0, nmis = 0;
  for (const Entry& e : Structures(madt, 44, false)) {
    switch (e.type) {
      case 0:
        ASSERT_EQ(e.length, 8);
        uids.push_back(U8(e.addr + 2));
        apic_ids.push_back(U8(e.addr + 3));
        EXPECT_EQ(U32(e.addr + 4), 1u);  // enabled
        break;
      case 1:
        ASSERT_EQ(e.length, 12);
        ++ioapics;
        EXPECT_EQ(U8(e.addr + 2), 0);
        EXPECT_EQ(U32(e.addr + 4), 0xFEC00000u);
        EXPECT_EQ(U32(e.addr + 8), 0u);
        break;
      case 2:
        ASSERT_EQ(e.length, 10);
        ++overrides;
        EXPECT_EQ(U8(e.addr + 2), 0);   // ISA
        EXPECT_EQ(U8(e.addr + 3), 0);   // IRQ0
        EXPECT_EQ(U32(e.addr + 4), 2u);  // GSI 2
        EXPECT_EQ(U16(e.addr + 8), 0);  // conforms to the bus
        break;
      case 4:
        ASSERT_EQ(e.length, 6);
        ++nmis;
        EXPECT_EQ(U8(e.addr + 2), 0xFF);  // all processors
        EXPECT_EQ(U8(e.addr + 5), 1);     // LINT1
        break;
      default:
        ADD_FAILURE() << "unexpected MADT structure type " << e.type;
    }
  }
  EXPECT_THAT(apic_ids, ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(uids, ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(ioapics, 1);
  EXPECT_EQ(overrides, 1);
  EXPECT_EQ(nmis, 1);
}

TEST_F(AcpiTablesTest, MadtFollowsTheIoApicConfigAndCanOmitTheOverride) {
  Write({.cpus = 1, .ioapic_id = 8, .ioapic_base = 0xFEC01000, .ioapic_gsi_base = 24,
         .isa_irq0_override = false});
  int ioapics = 0;
  for (const Entry& e : Structures(Find("APIC"), 44, false)) {
    EXPECT_NE(e.type, 2) << "no Interrupt Source Override";
    if (e.type != 1) continue;
    ++ioapics;
    EXPECT_EQ(U8(e.addr + 2), 8);
    EXPECT_EQ(U32(e.addr + 4), 0xFEC01000u);
    EXPECT_EQ(U32(e.addr + 8), 24u);
  }
  EXPECT_EQ(ioapics, 1);
}

// 5.2.12.12: APIC ids >= 255 need Processor Local x2APIC structures (and
// the x2APIC NMI structure); ids up to 254 keep type 0.
TEST_F(AcpiTablesTest, MadtUsesX2ApicEntriesForApicIdsAbove254) {
  Write({.cpus = 4, .apic_ids = {0, 254, 255, 0x1000}});
  std::vector<uint32_t> xapic, x2apic, x2apic_uids;
  int nmi = 0, x2nmi = 0;
  for (const Entry& e : Structures(Find("APIC"), 44, false)) {
    if (e.type == 0) xapic.push_back(U8(e.addr + 3));
    if (e.type == 9) {
      ASSERT_EQ(e.length, 16);
      x2apic.push_back(U32(e.addr + 4));
      EXPECT_EQ(U32(e.addr + 8), 1u);
      x2apic_uids.push_back(U32(e.addr + 12));
    }
    if (e.type == 4) ++nmi;
    if (e.type == 10) {
      ASSERT_EQ(e.length, 12);
      ++x2nmi;
      EXPECT_EQ(U32(e.addr + 4), 0xFFFFFFFFu);
      EXPECT_EQ(U8(e.addr + 8), 1);
    }
  }
  EXPECT_THAT(xapic, ElementsAre(0, 254));
  EXPECT_THAT(x2apic, ElementsAre(255, 0x1000));
  EXPECT_THAT(x2apic_uids, ElementsAre(2, 3));
  EXPECT_EQ(nmi, 1);
  EXPECT_EQ(x2nmi, 1);
}

// DMAR (VT-d 8.1): revision 1, HAW = N - 1, INTR_REMAP; one DRHD (8.3)
// with INCLUDE_PCI_ALL, segment 0, the register base, and one I/O APIC
// device scope (8.3.1): enumeration id = I/O APIC id, bus F0, path 1F.0.
TEST_F(AcpiTablesTest, DmarDescribesTheRemappingUnitAndTheIoApicScope) {
  Write({.cpus = 2, .dmar = true});
  const uint64_t dmar = Find("DMAR");
  ASSERT_NE(dmar, 0u);
  EXPECT_EQ(U8(dmar + 8), 1);    // revision
  EXPECT_EQ(U8(dmar + 36), 38);  // 39-bit host address width
  EXPECT_EQ(U8(dmar + 37), 1);   // INTR_REMAP
  for (int i = 38; i < 48; ++i) EXPECT_EQ(U8(dmar + i), 0) << "reserved byte " << i;
  const std::vector<Entry> s = Structures(dmar, 48, true);
  ASSERT_EQ(s.size(), 1u);
  const uint64_t drhd = s[0].addr;
  EXPECT_EQ(s[0].type, 0);
  EXPECT_EQ(s[0].length, 24);
  EXPECT_EQ(U8(drhd + 4), 1);  // INCLUDE_PCI_ALL
  EXPECT_EQ(U8(drhd + 5), 0);  // size: one 4 KiB page
  EXPECT_EQ(U16(drhd + 6), 0);  // segment
  EXPECT_EQ(U64(drhd + 8), 0xFED90000u);
  const uint64_t scope = drhd + 16;
  EXPECT_EQ(U8(scope), 3);      // I/O APIC
  EXPECT_EQ(U8(scope + 1), 8);  // length
  EXPECT_EQ(U16(scope + 2), 0);
  EXPECT_EQ(U8(scope + 4), 0);     // enumeration id = I/O APIC id
  EXPECT_EQ(U8(scope + 5), 0xF0);  // start bus
  EXPECT_EQ(U8(scope + 6), 0x1F);  // device
  EXPECT_EQ(U8(scope + 7), 0);     // function
}

TEST_F(AcpiTablesTest, DmarFollowsTheConfig) {
  Write({.cpus = 1, .ioapic_id = 2, .ioapic_rid = 0x00A5, .dmar = true,
         .dmar_base = 0xFED91000, .intremap = false, .x2apic_opt_out = true,
         .host_address_width = 48});
  const uint64_t dmar = Find("DMAR");
  ASSERT_NE(dmar, 0u);
  EXPECT_EQ(U8(dmar + 36), 47);
  EXPECT_EQ(U8(dmar + 37), 2);  // X2APIC_OPT_OUT only
  const uint64_t drhd = dmar + 48;
  EXPECT_EQ(U64(drhd + 8), 0xFED91000u);
  EXPECT_EQ(U8(drhd + 16 + 4), 2);     // enumeration id
  EXPECT_EQ(U8(drhd + 16 + 5), 0x00);  // bus
  EXPECT_EQ(U8(drhd + 16 + 6), 0x14);  // 0xA5 >> 3
  EXPECT_EQ(U8(drhd + 16 + 7), 5);     // 0xA5 & 7
}

// Without the VT-d unit there is no DMAR anywhere (an OS must not find a
// remapping unit that is not there).
TEST_F(AcpiTablesTest, NoDmarWithoutTheIommu) {
  Write({.cpus = 2});
  EXPECT_EQ(Find("DMAR"), 0u);
  for (uint64_t a = 0xE0000; a + 4 <= 0x100000; ++a) {
    ASSERT_NE(Str(a, 4), "DMAR") << "at 0x" << std::hex << a;
  }
  EXPECT_NE(Find("APIC"), 0u);
}

// MCFG (PCI Firmware 3.2 4.1.2): the ECAM window, segment 0, buses 0-255.
TEST_F(AcpiTablesTest, McfgDescribesTheEcamWindow) {
  Write({.cpus = 1});
  const uint64_t mcfg = Find("MCFG");
  ASSERT_NE(mcfg, 0u);
  EXPECT_EQ(U32(mcfg + 4), 60u);
  EXPECT_EQ(U64(mcfg + 44), 0xB0000000u);
  EXPECT_EQ(U16(mcfg + 52), 0);
  EXPECT_EQ(U8(mcfg + 54), 0);
  EXPECT_EQ(U8(mcfg + 55), 255);
}

TEST_F(AcpiTablesTest, NoMcfgWithoutEcam) {
  Write({.cpus = 1, .ecam_base = 0});
  EXPECT_EQ(Find("MCFG"), 0u);
}

// The tables occupy [0xF0000, 1 MiB) only: the rest of RAM is untouched.
TEST_F(AcpiTablesTest, WritesOnlyTheBiosArea) {
  std::memset(ram_->data(), 0xA5, ram_->size());
  Write({.cpus = 64, .dmar = true});
  for (uint64_t a = 0; a < kAcpiTablesBase; ++a) ASSERT_EQ(U8(a), 0xA5) << a;
  for (uint64_t a = 0x100000; a < ram_->size(); ++a) ASSERT_EQ(U8(a), 0xA5) << a;
  EXPECT_EQ(Rsdp(), kAcpiTablesBase);
  int lapics = 0;
  for (const Entry& e : Structures(Find("APIC"), 44, false)) lapics += e.type == 0;
  EXPECT_EQ(lapics, 64);
}

TEST_F(AcpiTablesTest, RamBelowOneMiBIsAnErrorNamingMachineRam) {
  auto small = GuestRam::Create(512 << 10);
  ASSERT_TRUE(small.ok());
  absl::Status s = WriteAcpiTables({.cpus = 1}, small->get());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("machine.ram"));
  EXPECT_THAT(s.message(), HasSubstr("1 MiB"));
}

TEST_F(AcpiTablesTest, ConfigurationsTheTablesCannotHoldAreErrors) {
  struct Case {
    AcpiConfig config;
    const char* field;
  };
  const Case cases[] = {
      {{.cpus = 0}, "AcpiConfig.cpus"},
      {{.cpus = 2, .apic_ids = {1}}, "AcpiConfig.apic_ids"},
      {{.cpus = 2, .apic_ids = {3, 3}}, "AcpiConfig.apic_ids"},
      {{.cpus = 1, .ioapic_id = 256}, "AcpiConfig.ioapic_id"},
      {{.cpus = 1, .ioapic_base = 1ull << 32}, "AcpiConfig.ioapic_base"},
      {{.cpus = 1, .dmar = true, .dmar_base = 0xFED90800}, "AcpiConfig.dmar_base"},
      {{.cpus = 1, .dmar = true, .host_address_width = 0}, "AcpiConfig.host_address_width"},
      {{.cpus = 1, .ecam_start_bus = 8, .ecam_end_bus = 7}, "AcpiConfig.ecam_start_bus"},
      {{.cpus = 5000}, "AcpiConfig.cpus"},  // does not fit below 1 MiB
  };
  for (const Case& c : cases) {
    absl::Status s = WriteAcpiTables(c.config, ram_.get());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(s.message(), HasSubstr(c.field));
  }
}

// ---- The guest parser (runtime/acpi.h) over the same RAM ----

TEST_F(AcpiTablesTest, GuestParserFindsTheTablesAndDecodesMadtAndDmar) {
  Write({.cpus = 4, .dmar = true});
  const uint64_t rsdp = acpi_find_rsdp();
  EXPECT_EQ(rsdp, Rsdp());
  EXPECT_EQ(acpi_rsdp_revision(rsdp), 2);
  int es = 0;
  EXPECT_EQ(acpi_root_table(rsdp, &es), U64(rsdp + 24));
  EXPECT_EQ(es, 8);
  EXPECT_EQ(acpi_find_table("APIC"), Find("APIC"));
  EXPECT_EQ(acpi_find_table("DMAR"), Find("DMAR"));
  EXPECT_EQ(acpi_find_table("MCFG"), Find("MCFG"));
  EXPECT_EQ(acpi_find_table("HPET"), 0u);

  auto m = std::make_unique<acpi_madt_info>();
  acpi_madt_parse(acpi_find_table("APIC"), m.get());
  EXPECT_FALSE(m->malformed);
  EXPECT_EQ(m->lapic_address, 0xFEE00000u);
  EXPECT_EQ(m->flags, 1u);
  EXPECT_EQ(m->cpus, 4);
  EXPECT_EQ(m->x2apic_entries, 0);
  EXPECT_THAT(std::vector<uint32_t>(m->apic_ids, m->apic_ids + 4), ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(m->ioapics, 1);
  EXPECT_EQ(m->ioapic_id, 0);
  EXPECT_EQ(m->ioapic_address, 0xFEC00000u);
  EXPECT_EQ(m->ioapic_gsi_base, 0u);
  EXPECT_EQ(m->overrides, 1);
  EXPECT_EQ(m->isa_gsi[0], 2u);
  EXPECT_EQ(m->isa_gsi[1], 1u);
  EXPECT_EQ(m->nmi_entries, 1);

  acpi_dmar_info d;
  acpi_dmar_parse(acpi_find_table("DMAR"), &d);
  EXPECT_FALSE(d.malformed);
  EXPECT_EQ(d.haw, 39);
  EXPECT_EQ(d.flags, ACPI_DMAR_INTR_REMAP);
  EXPECT_EQ(d.drhd_count, 1);
  EXPECT_EQ(d.drhd_base, 0xFED90000u);
  EXPECT_EQ(d.drhd_flags, ACPI_DRHD_INCLUDE_PCI_ALL);
  EXPECT_EQ(d.drhd_segment, 0);
  EXPECT_TRUE(d.ioapic_scope);
  EXPECT_EQ(d.ioapic_id, 0);
  EXPECT_EQ(d.ioapic_sid, 0xF0F8);  // F0:1F.0
  EXPECT_EQ(d.ioapic_path_len, 1);

  uint64_t base = 0;
  uint16_t seg = 1;
  uint8_t start = 1, end = 0;
  ASSERT_TRUE(acpi_mcfg_first(acpi_find_table("MCFG"), &base, &seg, &start, &end));
  EXPECT_EQ(base, 0xB0000000u);
  EXPECT_EQ(seg, 0);
  EXPECT_EQ(start, 0);
  EXPECT_EQ(end, 255);
}

TEST_F(AcpiTablesTest, GuestParserCountsX2ApicEntriesAndSeesNoDmar) {
  Write({.cpus = 3, .apic_ids = {0, 2, 300}});
  auto m = std::make_unique<acpi_madt_info>();
  acpi_madt_parse(acpi_find_table("APIC"), m.get());
  EXPECT_EQ(m->cpus, 3);
  EXPECT_EQ(m->x2apic_entries, 1);
  EXPECT_THAT(std::vector<uint32_t>(m->apic_ids, m->apic_ids + 3), ElementsAre(0, 2, 300));
  EXPECT_EQ(m->nmi_entries, 2);
  EXPECT_EQ(acpi_find_table("DMAR"), 0u);
}

// The guest parser checks what an OS checks: a table with a bad checksum is
// not returned; an RSDP with a bad extended checksum is not found; with an
// invalid XSDT it falls back to the RSDT.
TEST_F(AcpiTablesTest, GuestParserRejectsBadChecksums) {
  Write({.cpus = 2, .dmar = true});
  const uint64_t rsdp = Rsdp();
  const uint64_t dmar = Find("DMAR");
  ram_->Store<uint8_t>(dmar + 40, 0x5A);  // reserved byte: sum != 0
  EXPECT_EQ(acpi_find_table("DMAR"), 0u);
  EXPECT_NE(acpi_find_table("APIC"), 0u);

  const uint64_t xsdt = U64(rsdp + 24);
  ram_->Store<uint8_t>(xsdt + 20, U8(xsdt + 20) ^ 1);  // corrupt the XSDT
  int es = 0;
  EXPECT_EQ(acpi_root_table(rsdp, &es), U32(rsdp + 16));
  EXPECT_EQ(es, 4);
  EXPECT_EQ(acpi_find_table("APIC"), Find("APIC"));

  ram_->Store<uint8_t>(rsdp + 35, 1);  // reserved byte: extended checksum off
  EXPECT_EQ(acpi_find_rsdp(), 0u);
}

}  // namespace
}  // namespace irqlab
