/* KERNEL-DESCRIPTION: ACPI from the guest: RSDP scan of 0xE0000-0xFFFFF, XSDT/RSDT checksums, MADT CPUs and I/O APIC, DMAR DRHD and I/O APIC scope (dmar=1), MCFG ECAM */
/*
 * acpi: finds and checks the ACPI tables the way an ACPI-aware kernel does
 * early in boot (runtime/acpi.h), and cross-checks them against the
 * hardware they describe.
 *
 * Tests (each prints PASS/FAIL: <name>):
 *   acpi_rsdp    an RSDP on a 16-byte boundary in 0xE0000-0xFFFFF (Linux's
 *                scan), revision 2, both checksums valid
 *   acpi_root    XSDT and RSDT valid, listing the same tables
 *   acpi_madt    LAPIC address 0xFEE00000; enabled CPUs == the fw_cfg CPU
 *                count, APIC ids 0..n-1 (the BSP's among them); one I/O
 *                APIC whose id, address and GSI base match the I/O APIC's
 *                own ID register at 0xFEC00000 (GSI base 0)
 *   acpi_dmar    (dmar=1) a DMAR with one DRHD covering all PCI devices
 *                (INCLUDE_PCI_ALL), segment 0, whose register page answers
 *                VER = 0x10, ECAP.IR == the DMAR INTR_REMAP flag, and an
 *                I/O APIC device scope naming the MADT's I/O APIC with
 *                source id F0:1F.0
 *   acpi_no_dmar (without dmar=1) no DMAR table
 *   acpi_mcfg    an MCFG whose ECAM window reads the same host bridge id
 *                at 00:00.0 as configuration mechanism #1
 *
 * Prints "acpi: madt N cpus ..." and, with a DMAR, "acpi: dmar drhd
 * 0x... ..." for scenarios to match.
 */
#include "runtime.h"
#include "acpi.h"
#include "ioapic.h"
#include "pci.h"

static struct acpi_madt_info madt_info;

static uint64_t test_rsdp(void) {
  uint64_t rsdp = acpi_find_rsdp();
  bool ok = rsdp != 0 && rsdp % 16 == 0 && rsdp >= ACPI_BIOS_AREA_START &&
            rsdp < ACPI_BIOS_AREA_END && acpi_rsdp_revision(rsdp) == 2 &&
            acpi_checksum_ok(rsdp, ACPI_RSDP_V1_SIZE) &&
            acpi_checksum_ok(rsdp, ACPI_RSDP_V2_SIZE);
  if (rsdp)
    printf("acpi: rsdp at 0x%lx revision %u oem '%.6s' rsdt 0x%x xsdt 0x%lx\n",
           (unsigned long)rsdp, acpi_rsdp_revision(rsdp),
           (const char *)(uintptr_t)(rsdp + 9), acpi_rsdp_rsdt(rsdp),
           (unsigned long)acpi_rsdp_xsdt(rsdp));
  reportf("acpi_rsdp", ok, "rsdp 0x%lx", (unsigned long)rsdp);
  return rsdp;
}

static void test_root(uint64_t rsdp) {
  uint64_t xsdt = acpi_rsdp_xsdt(rsdp), rsdt = acpi_rsdp_rsdt(rsdp);
  bool ok = acpi_table_valid(xsdt, "XSDT") && acpi_table_valid(rsdt, "RSDT");
  int n = ok ? acpi_root_count(xsdt, 8) : 0;
  if (ok && acpi_root_count(rsdt, 4) != n) ok = false;
  for (int i = 0; ok && i < n; i++) {
    uint64_t t = acpi_root_entry(xsdt, 8, i);
    if (t != acpi_root_entry(rsdt, 4, i) || !acpi_table_valid(t, NULL)) ok = false;
    else
      printf("acpi: table %.4s at 0x%lx length %u revision %u\n",
             (const char *)(uintptr_t)t, (unsigned long)t, acpi_table_length(t),
             acpi_table_revision(t));
  }
  reportf("acpi_root", ok, "xsdt 0x%lx rsdt 0x%lx, %d tables", (unsigned long)xsdt,
          (unsigned long)rsdt, n);
}

static void test_madt(void) {
  uint64_t madt = acpi_find_table("APIC");
  if (!madt) {
    reportf("acpi_madt", false, "no valid MADT");
    return;
  }
  struct acpi_madt_info *m = &madt_info;
  acpi_madt_parse(madt, m);
  int cpus = fw_cfg_cpu_count();
  bool ids_ok = m->cpus == cpus, bsp_found = false;
  for (int i = 0; i < m->cpus && i < ACPI_MADT_MAX_CPUS; i++) {
    if (m->apic_ids[i] != (uint32_t)i) ids_ok = false;
    if (m->apic_ids[i] == lapic_id()) bsp_found = true;
  }
  bool have_ioapic = m->ioapics == 1 && m->ioapic_address == IOAPIC_BASE;
  uint32_t hw_id = have_ioapic ? (ioapic_read(IOAPIC_REG_ID) >> 24) & 0xF : 0xFF;
  uint32_t pins = have_ioapic ? ((ioapic_read(IOAPIC_REG_VER) >> 16) & 0xFF) + 1 : 0;
  printf("acpi: madt %d cpus (%d x2apic), lapic 0x%x flags 0x%x, ioapic id %u at 0x%x "
         "gsi %u-%u, irq0 -> gsi %u\n",
         m->cpus, m->x2apic_entries, m->lapic_address, m->flags, m->ioapic_id,
         m->ioapic_address, m->ioapic_gsi_base, m->ioapic_gsi_base + pins - 1,
         m->isa_gsi[0]);
  reportf("acpi_madt",
          !m->malformed && m->lapic_address == LAPIC_BASE && ids_ok && bsp_found &&
              have_ioapic && m->ioapic_id == hw_id && m->ioapic_gsi_base == 0 &&
              pins == IOAPIC_NUM_PINS,
          "%d cpus (fw_cfg %d, ids %s, bsp %s), %d ioapics, id %u (register %u), "
          "%u pins%s",
          m->cpus, cpus, ids_ok ? "ok" : "WRONG", bsp_found ? "listed" : "MISSING",
          m->ioapics, m->ioapic_id, hw_id, pins, m->malformed ? ", MALFORMED" : "");
}

static void test_dmar(bool expected) {
  uint64_t dmar = acpi_find_table("DMAR");
  if (!expected) {
    reportf("acpi_no_dmar", dmar == 0, "a DMAR at 0x%lx", (unsigned long)dmar);
    return;
  }
  if (!dmar) {
    reportf("acpi_dmar", false, "no valid DMAR");
    return;
  }
  struct acpi_dmar_info d;
  acpi_dmar_parse(dmar, &d);
  bool ok = !d.malformed && d.drhd_count == 1 && d.drhd_base != 0 &&
            (d.drhd_flags & ACPI_DRHD_INCLUDE_PCI_ALL) && d.drhd_segment == 0 &&
            d.ioapic_scope && d.ioapic_path_len == 1 &&
            d.ioapic_id == madt_info.ioapic_id && d.ioapic_sid == 0xF0F8;
  uint32_t ver = 0;
  uint64_t ecap = 0;
  if (ok) {
    ver = mmio_read32(d.drhd_base + 0x00);
    ecap = mmio_read64(d.drhd_base + 0x10);
  }
  bool ecap_ir = (ecap >> 3) & 1, flag_ir = d.flags & ACPI_DMAR_INTR_REMAP;
  printf("acpi: dmar drhd 0x%lx flags 0x%x haw %u%s%s, ioapic scope id %u sid %02x:%02x.%x, "
         "ver 0x%x ecap 0x%lx\n",
         (unsigned long)d.drhd_base, d.drhd_flags, d.haw, flag_ir ? " intr_remap" : "",
         (d.flags & ACPI_DMAR_X2APIC_OPT_OUT) ? " x2apic_opt_out" : "", d.ioapic_id,
         d.ioapic_sid >> 8, (d.ioapic_sid >> 3) & 0x1F, d.ioapic_sid & 7, ver,
         (unsigned long)ecap);
  reportf("acpi_dmar", ok && ver == 0x10 && ecap_ir == flag_ir,
          "%d drhd, base 0x%lx flags 0x%x, scope %s id %u sid 0x%x, ver 0x%x, "
          "ECAP.IR %d vs INTR_REMAP %d%s",
          d.drhd_count, (unsigned long)d.drhd_base, d.drhd_flags,
          d.ioapic_scope ? "ioapic" : "MISSING", d.ioapic_id, d.ioapic_sid, ver, ecap_ir,
          flag_ir, d.malformed ? ", MALFORMED" : "");
}

static void test_mcfg(void) {
  uint64_t mcfg = acpi_find_table("MCFG"), base = 0;
  uint16_t seg = 0xFFFF;
  uint8_t start = 0xFF, end = 0;
  bool ok = mcfg && acpi_mcfg_first(mcfg, &base, &seg, &start, &end);
  uint32_t ecam_id = ok && start == 0 ? mmio_read32(base) : 0;  /* 00:00.0 offset 0 */
  uint32_t cf8_id = pci_cfg_read32(0, 0, 0, PCI_VENDOR_ID);
  printf("acpi: mcfg ecam 0x%lx segment %u buses %u-%u\n", (unsigned long)base, seg,
         start, end);
  reportf("acpi_mcfg", ok && seg == 0 && start == 0 && ecam_id == cf8_id,
          "ecam 0x%lx segment %u buses %u-%u, 00:00.0 id %08x via ECAM, %08x via 0xCF8",
          (unsigned long)base, seg, start, end, ecam_id, cf8_id);
}

int main(void) {
  uint64_t rsdp = test_rsdp();
  if (!rsdp) {
    report_skip("acpi_tables", "no RSDP");
    report_exit();
  }
  test_root(rsdp);
  test_madt();
  test_dmar(cmdline_get_int("dmar", 0) != 0);
  test_mcfg();
  report_exit();
}
