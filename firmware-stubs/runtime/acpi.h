/*
 * acpi.h: guest-side ACPI table discovery and parsing, as an ACPI-aware
 * kernel does it early in boot: find the RSDP (ACPI 6.5 5.2.5.1: the first
 * KiB of the EBDA, then 0xE0000-0xFFFFF, on 16-byte boundaries), follow
 * the XSDT (or the RSDT of a revision-0 RSDP), and decode the MADT
 * (5.2.12), the DMAR (Intel VT-d 4.x chapter 8) and the MCFG (PCI
 * Firmware 3.2 4.1.2). Every table's checksum is verified before use.
 *
 * Header-only (static inline) and self-contained: it needs only stdint/
 * stdbool/stddef, not runtime.h, and compiles as C and C++, so the host
 * unit test (tests/acpi_tables_test.cc) runs this very parser over tables
 * the emulator wrote. Physical memory is read through ACPI_PHYS(pa); the
 * default is the runtime's identity map of the first 4 GiB, and addresses
 * at or above ACPI_PHYS_LIMIT are never dereferenced. Define both before
 * including this file to parse a memory image instead.
 *
 * All results are physical addresses (0 = not found) or plain structs.
 */
#ifndef IRQLAB_GUEST_ACPI_H_
#define IRQLAB_GUEST_ACPI_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef ACPI_PHYS
/* The pointer goes through an empty asm so GCC does not treat the small
 * constant addresses of the BIOS data area (0x40E) as offsets from NULL. */
static inline const volatile uint8_t *acpi_phys(uint64_t pa) {
  const volatile uint8_t *p = (const volatile uint8_t *)(uintptr_t)pa;
  __asm__("" : "+r"(p));
  return p;
}
#define ACPI_PHYS(pa) acpi_phys(pa)
#endif
#ifndef ACPI_PHYS_LIMIT
#define ACPI_PHYS_LIMIT 0x100000000ull
#endif

/* Where an OS looks for the RSDP (5.2.5.1). */
#define ACPI_EBDA_PTR 0x40E /* BDA word: EBDA segment */
#define ACPI_BIOS_AREA_START 0xE0000ull
#define ACPI_BIOS_AREA_END 0x100000ull /* exclusive */

#define ACPI_HEADER_SIZE 36 /* 5.2.6 */
#define ACPI_RSDP_V1_SIZE 20
#define ACPI_RSDP_V2_SIZE 36

/* MADT structure types (5.2.12, Table 5.21). */
#define ACPI_MADT_LOCAL_APIC 0
#define ACPI_MADT_IO_APIC 1
#define ACPI_MADT_INT_SRC_OVERRIDE 2
#define ACPI_MADT_LOCAL_APIC_NMI 4
#define ACPI_MADT_LOCAL_X2APIC 9
#define ACPI_MADT_LOCAL_X2APIC_NMI 10
#define ACPI_MADT_ENABLED 0x1        /* Local (x2)APIC flags bit 0 */
#define ACPI_MADT_PCAT_COMPAT 0x1    /* MADT flags bit 0 */
#define ACPI_MADT_MAX_CPUS 256       /* apic_ids[] kept by acpi_madt_parse */

/* DMAR (VT-d 8.1-8.3). */
#define ACPI_DMAR_INTR_REMAP 0x1
#define ACPI_DMAR_X2APIC_OPT_OUT 0x2
#define ACPI_DMAR_TYPE_DRHD 0
#define ACPI_DRHD_INCLUDE_PCI_ALL 0x1
#define ACPI_DMAR_SCOPE_IOAPIC 3

/* ---- Raw access ---- */

static inline bool acpi_readable(uint64_t pa, uint64_t len) {
  return pa < ACPI_PHYS_LIMIT && len <= ACPI_PHYS_LIMIT - pa;
}
static inline uint8_t acpi_u8(uint64_t pa) { return ACPI_PHYS(pa)[0]; }
static inline uint16_t acpi_u16(uint64_t pa) {
  return (uint16_t)(acpi_u8(pa) | (uint16_t)acpi_u8(pa + 1) << 8);
}
static inline uint32_t acpi_u32(uint64_t pa) {
  return (uint32_t)acpi_u16(pa) | (uint32_t)acpi_u16(pa + 2) << 16;
}
static inline uint64_t acpi_u64(uint64_t pa) {
  return (uint64_t)acpi_u32(pa) | (uint64_t)acpi_u32(pa + 4) << 32;
}
/* True iff the n bytes at pa equal s[0..n). */
static inline bool acpi_bytes_eq(uint64_t pa, const char *s, int n) {
  for (int i = 0; i < n; i++)
    if (acpi_u8(pa + i) != (uint8_t)s[i]) return false;
  return true;
}
/* True iff the len bytes at pa sum to 0 (mod 256). */
static inline bool acpi_checksum_ok(uint64_t pa, uint32_t len) {
  uint8_t sum = 0;
  for (uint32_t i = 0; i < len; i++) sum = (uint8_t)(sum + acpi_u8(pa + i));
  return sum == 0;
}

/* ---- RSDP (5.2.5.3) ---- */

/* A valid RSDP at pa: signature, checksum of the first 20 bytes and, for
 * revision >= 2, a sane length and the extended checksum over it. */
static inline bool acpi_rsdp_valid(uint64_t pa) {
  if (!acpi_readable(pa, ACPI_RSDP_V1_SIZE) || !acpi_bytes_eq(pa, "RSD PTR ", 8) ||
      !acpi_checksum_ok(pa, ACPI_RSDP_V1_SIZE))
    return false;
  if (acpi_u8(pa + 15) < 2) return true;
  uint32_t len = acpi_u32(pa + 20);
  return len >= ACPI_RSDP_V2_SIZE && len <= 4096 && acpi_readable(pa, len) &&
         acpi_checksum_ok(pa, len);
}
/* First valid RSDP in [start, start+len) on 16-byte boundaries, or 0. */
static inline uint64_t acpi_scan_rsdp(uint64_t start, uint64_t len) {
  for (uint64_t pa = (start + 15) & ~15ull; pa + ACPI_RSDP_V1_SIZE <= start + len;
       pa += 16)
    if (acpi_rsdp_valid(pa)) return pa;
  return 0;
}
/* The RSDP's physical address, found as Linux/ACPICA do
 * (acpi_find_root_pointer): the first KiB of the EBDA (segment in the BDA
 * word at 0x40E, used only if above 0x400), then the BIOS area. 0 if none. */
static inline uint64_t acpi_find_rsdp(void) {
  uint64_t ebda = (uint64_t)acpi_u16(ACPI_EBDA_PTR) << 4;
  if (ebda > 0x400 && ebda < ACPI_BIOS_AREA_START) {
    uint64_t pa = acpi_scan_rsdp(ebda, 1024);
    if (pa) return pa;
  }
  return acpi_scan_rsdp(ACPI_BIOS_AREA_START, ACPI_BIOS_AREA_END - ACPI_BIOS_AREA_START);
}
static inline uint8_t acpi_rsdp_revision(uint64_t rsdp) { return acpi_u8(rsdp + 15); }
static inline uint32_t acpi_rsdp_rsdt(uint64_t rsdp) { return acpi_u32(rsdp + 16); }
static inline uint64_t acpi_rsdp_xsdt(uint64_t rsdp) {
  return acpi_rsdp_revision(rsdp) >= 2 ? acpi_u64(rsdp + 24) : 0;
}

/* ---- System description tables (5.2.6) ---- */

static inline uint32_t acpi_table_length(uint64_t pa) { return acpi_u32(pa + 4); }
static inline uint8_t acpi_table_revision(uint64_t pa) { return acpi_u8(pa + 8); }
/* A table at pa that lies in readable memory, is at least a header long
 * and sums to 0 (and has signature sig, unless sig is NULL). */
static inline bool acpi_table_valid(uint64_t pa, const char *sig) {
  if (!pa || !acpi_readable(pa, ACPI_HEADER_SIZE)) return false;
  if (sig && !acpi_bytes_eq(pa, sig, 4)) return false;
  uint32_t len = acpi_table_length(pa);
  return len >= ACPI_HEADER_SIZE && acpi_readable(pa, len) && acpi_checksum_ok(pa, len);
}
/* The root table an OS uses: the XSDT when the RSDP (revision >= 2) names
 * a valid one, else the RSDT. 0 if neither is valid. *entry_size is 8 for
 * the XSDT, 4 for the RSDT. */
static inline uint64_t acpi_root_table(uint64_t rsdp, int *entry_size) {
  uint64_t xsdt = acpi_rsdp_xsdt(rsdp);
  if (acpi_table_valid(xsdt, "XSDT")) {
    *entry_size = 8;
    return xsdt;
  }
  uint64_t rsdt = acpi_rsdp_rsdt(rsdp);
  if (acpi_table_valid(rsdt, "RSDT")) {
    *entry_size = 4;
    return rsdt;
  }
  return 0;
}
/* Number of entries of a root table, and entry i. */
static inline int acpi_root_count(uint64_t root, int entry_size) {
  return (int)((acpi_table_length(root) - ACPI_HEADER_SIZE) / (uint32_t)entry_size);
}
static inline uint64_t acpi_root_entry(uint64_t root, int entry_size, int i) {
  uint64_t pa = root + ACPI_HEADER_SIZE + (uint64_t)i * (uint64_t)entry_size;
  return entry_size == 8 ? acpi_u64(pa) : acpi_u32(pa);
}
/* The first table with signature sig (4 chars, e.g. "DMAR") listed by the
 * root table of the RSDP, with a valid checksum; 0 if none. */
static inline uint64_t acpi_find_table(const char *sig) {
  uint64_t rsdp = acpi_find_rsdp();
  if (!rsdp) return 0;
  int es = 0;
  uint64_t root = acpi_root_table(rsdp, &es);
  if (!root) return 0;
  for (int i = 0; i < acpi_root_count(root, es); i++) {
    uint64_t t = acpi_root_entry(root, es, i);
    if (acpi_table_valid(t, sig)) return t;
  }
  return 0;
}

/* ---- MADT (5.2.12) ---- */

struct acpi_madt_info {
  uint32_t lapic_address;
  uint32_t flags;                 /* ACPI_MADT_PCAT_COMPAT */
  int cpus;                       /* enabled Local APIC + Local x2APIC entries */
  int x2apic_entries;             /* of which Local x2APIC (type 9) */
  uint32_t apic_ids[ACPI_MADT_MAX_CPUS]; /* first ACPI_MADT_MAX_CPUS, in order */
  int ioapics;                    /* I/O APIC entries; the first one: */
  uint8_t ioapic_id;
  uint32_t ioapic_address;
  uint32_t ioapic_gsi_base;
  int overrides;                  /* Interrupt Source Override entries */
  uint32_t isa_gsi[16];           /* ISA IRQ -> GSI (identity unless overridden) */
  uint16_t isa_flags[16];         /* MPS INTI flags of the override (0 if none) */
  int nmi_entries;                /* Local (x2)APIC NMI entries */
  bool malformed;                 /* a structure with a bad length */
};

/* Decodes the MADT at pa (checksum already checked by acpi_find_table). */
static inline void acpi_madt_parse(uint64_t madt, struct acpi_madt_info *m) {
  uint8_t *z = (uint8_t *)m;
  for (size_t i = 0; i < sizeof(*m); i++) z[i] = 0;
  for (int i = 0; i < 16; i++) m->isa_gsi[i] = (uint32_t)i;
  m->lapic_address = acpi_u32(madt + 36);
  m->flags = acpi_u32(madt + 40);
  uint64_t end = madt + acpi_table_length(madt);
  for (uint64_t p = madt + 44; p < end;) {
    uint8_t type = acpi_u8(p), len = p + 2 <= end ? acpi_u8(p + 1) : 0;
    if (len < 2 || p + len > end) {
      m->malformed = true;
      return;
    }
    uint32_t id = 0, flags = 0;
    bool cpu = false;
    if (type == ACPI_MADT_LOCAL_APIC && len >= 8) {
      cpu = true;
      id = acpi_u8(p + 3);
      flags = acpi_u32(p + 4);
    } else if (type == ACPI_MADT_LOCAL_X2APIC && len >= 16) {
      cpu = true;
      id = acpi_u32(p + 4);
      flags = acpi_u32(p + 8);
      m->x2apic_entries++;
    } else if (type == ACPI_MADT_IO_APIC && len >= 12) {
      if (m->ioapics++ == 0) {
        m->ioapic_id = acpi_u8(p + 2);
        m->ioapic_address = acpi_u32(p + 4);
        m->ioapic_gsi_base = acpi_u32(p + 8);
      }
    } else if (type == ACPI_MADT_INT_SRC_OVERRIDE && len >= 10) {
      m->overrides++;
      uint8_t bus = acpi_u8(p + 2), irq = acpi_u8(p + 3);
      if (bus == 0 && irq < 16) {
        m->isa_gsi[irq] = acpi_u32(p + 4);
        m->isa_flags[irq] = acpi_u16(p + 8);
      }
    } else if (type == ACPI_MADT_LOCAL_APIC_NMI || type == ACPI_MADT_LOCAL_X2APIC_NMI) {
      m->nmi_entries++;
    }
    if (cpu && (flags & ACPI_MADT_ENABLED)) {
      if (m->cpus < ACPI_MADT_MAX_CPUS) m->apic_ids[m->cpus] = id;
      m->cpus++;
    }
    p += len;
  }
}

/* ---- DMAR (VT-d 8.1-8.3) ---- */

struct acpi_dmar_info {
  uint8_t haw;            /* host address width in bits (table field + 1) */
  uint8_t flags;          /* ACPI_DMAR_INTR_REMAP, ACPI_DMAR_X2APIC_OPT_OUT */
  int drhd_count;
  /* The first DRHD: */
  uint64_t drhd_base;     /* register base address */
  uint8_t drhd_flags;     /* ACPI_DRHD_INCLUDE_PCI_ALL */
  uint16_t drhd_segment;
  /* Its first I/O APIC device scope (type 3): */
  bool ioapic_scope;
  uint8_t ioapic_id;      /* enumeration id = the I/O APIC's id */
  uint16_t ioapic_sid;    /* source id bus:dev.fn = start bus << 8 | dev << 3 | fn */
  int ioapic_path_len;    /* path entries; sid is exact only for 1 (no bridges) */
  bool malformed;         /* a structure or scope with a bad length */
};

/* Walks the DMAR at pa: its remapping structures and, in the first DRHD,
 * the device scope entries. Like Linux's ir_parse_one_ioapic_scope() the
 * source id comes from the last path entry; a multi-entry path goes
 * through bridges whose secondary bus numbers this parser does not read. */
static inline void acpi_dmar_parse(uint64_t dmar, struct acpi_dmar_info *d) {
  uint8_t *z = (uint8_t *)d;
  for (size_t i = 0; i < sizeof(*d); i++) z[i] = 0;
  d->haw = (uint8_t)(acpi_u8(dmar + 36) + 1);
  d->flags = acpi_u8(dmar + 37);
  uint64_t end = dmar + acpi_table_length(dmar);
  for (uint64_t p = dmar + 48; p < end;) {
    uint16_t type = p + 4 <= end ? acpi_u16(p) : 0;
    uint16_t len = p + 4 <= end ? acpi_u16(p + 2) : 0;
    if (len < 4 || p + len > end) {
      d->malformed = true;
      return;
    }
    if (type == ACPI_DMAR_TYPE_DRHD && len >= 16 && d->drhd_count++ == 0) {
      d->drhd_flags = acpi_u8(p + 4);
      d->drhd_segment = acpi_u16(p + 6);
      d->drhd_base = acpi_u64(p + 8);
      for (uint64_t s = p + 16; s < p + len;) {
        uint8_t stype = acpi_u8(s), slen = s + 2 <= p + len ? acpi_u8(s + 1) : 0;
        if (slen < 8 || (slen - 6) % 2 || s + slen > p + len) {
          d->malformed = true;
          return;
        }
        if (stype == ACPI_DMAR_SCOPE_IOAPIC && !d->ioapic_scope) {
          int n = (slen - 6) / 2;
          uint64_t last = s + 6 + 2 * (uint64_t)(n - 1);
          d->ioapic_scope = true;
          d->ioapic_id = acpi_u8(s + 4);
          d->ioapic_path_len = n;
          d->ioapic_sid = (uint16_t)(acpi_u8(s + 5) << 8 | (acpi_u8(last) & 0x1F) << 3 |
                                     (acpi_u8(last + 1) & 0x7));
        }
        s += slen;
      }
    }
    p += len;
  }
}

/* ---- MCFG (PCI Firmware 3.2 4.1.2) ---- */

/* The first ECAM allocation of the MCFG at pa; false if it has none. */
static inline bool acpi_mcfg_first(uint64_t mcfg, uint64_t *base, uint16_t *segment,
                                   uint8_t *start_bus, uint8_t *end_bus) {
  if (acpi_table_length(mcfg) < 44 + 16) return false;
  *base = acpi_u64(mcfg + 44);
  *segment = acpi_u16(mcfg + 52);
  *start_bus = acpi_u8(mcfg + 54);
  *end_bus = acpi_u8(mcfg + 55);
  return true;
}

#endif /* IRQLAB_GUEST_ACPI_H_ */
