/*
 * vtd.h: guest-side helpers for an Intel VT-d remapping hardware unit
 * (interrupt remapping only), driven the way Linux's
 * drivers/iommu/intel/irq_remapping.c and dmar.c drive it. Header-only
 * (static inline + static state), additive to runtime.h: include it once,
 * from the program's .c file, after runtime.h.
 *
 * Spec: Intel Virtualization Technology for Directed I/O ([VT-d]) rev. 4.x/5.x:
 *   11.4     registers (offsets below; FRCD and IOTLB registers are at the
 *            implementation offsets CAP.FRO / ECAP.IRO report: 0x400 / 0x200
 *            on irqlab)
 *   11.4.4   GCMD/GSTS: one command per write, software writes
 *            (GSTS & 0x96FFFFFF) | command
 *   6.5.2    invalidation queue; legacy 128-bit descriptors
 *   9.10     IRTE (remapped format)
 *   5.1.5    programming the IOAPIC RTE / MSI in remappable format
 *   7.2/7.3  fault recording registers, fault event interrupt
 *
 * The interrupt remapping table and the invalidation queue live in this
 * program's BSS (identity-mapped: virtual == physical).
 */
#ifndef IRQLAB_GUEST_VTD_H_
#define IRQLAB_GUEST_VTD_H_

#include "runtime.h"

#define VTD_BASE 0xFED90000ull

/* Registers ([VT-d] 11.4). */
#define VTD_VER 0x00
#define VTD_CAP 0x08
#define VTD_ECAP 0x10
#define VTD_GCMD 0x18
#define VTD_GSTS 0x1C
#define VTD_FSTS 0x34
#define VTD_FECTL 0x38
#define VTD_FEDATA 0x3C
#define VTD_FEADDR 0x40
#define VTD_FEUADDR 0x44
#define VTD_IQH 0x80
#define VTD_IQT 0x88
#define VTD_IQA 0x90
#define VTD_ICS 0x9C
#define VTD_IQERCD 0xB0
#define VTD_IRTA 0xB8

/* GCMD / GSTS bits (11.4.4). */
#define VTD_GCMD_TE (1u << 31)
#define VTD_GCMD_QIE (1u << 26)
#define VTD_GCMD_IRE (1u << 25)
#define VTD_GCMD_SIRTP (1u << 24)
#define VTD_GCMD_CFI (1u << 23)
#define VTD_GSTS_QIES VTD_GCMD_QIE
#define VTD_GSTS_IRES VTD_GCMD_IRE
#define VTD_GSTS_IRTPS VTD_GCMD_SIRTP
#define VTD_GSTS_CFIS VTD_GCMD_CFI
#define VTD_GCMD_ONESHOT_MASK 0x96FFFFFFu

/* CAP (11.4.2) and ECAP (11.4.3) fields. */
#define VTD_CAP_FRO(c) ((uint32_t)(((c) >> 24) & 0x3FF) * 16)
#define VTD_CAP_NFR(c) ((int)(((c) >> 40) & 0xFF) + 1)
#define VTD_CAP_PI (1ull << 59)
#define VTD_ECAP_QI (1ull << 1)
#define VTD_ECAP_DT (1ull << 2)
#define VTD_ECAP_IR (1ull << 3)
#define VTD_ECAP_EIM (1ull << 4)
#define VTD_ECAP_IRO(e) ((uint32_t)(((e) >> 8) & 0x3FF) * 16)

/* FSTS (11.4.7.1), FECTL (11.4.7.2). */
#define VTD_FSTS_PFO (1u << 0)
#define VTD_FSTS_PPF (1u << 1)
#define VTD_FSTS_IQE (1u << 4)
#define VTD_FSTS_ICE (1u << 5)
#define VTD_FSTS_ITE (1u << 6)
#define VTD_FSTS_FRI(f) (((f) >> 8) & 0xFF)
/* IQERCD (11.4.9.9): IQEI 3:0, ITESID 47:32, ICESID 63:48 (Linux's
 * DMAR_IQER_REG_IQEI/ITESID/ICESID). */
#define VTD_IQER_IQEI(r) ((unsigned)((r) & 0xF))
#define VTD_IQER_ITESID(r) ((uint16_t)((r) >> 32))
#define VTD_IQER_ICESID(r) ((uint16_t)((r) >> 48))
#define VTD_FECTL_IM (1u << 31)
#define VTD_FECTL_IP (1u << 30)

/* IRTA (11.4.10.1): base | EIME (bit 11) | S (2^(S+1) entries). */
#define VTD_IRTA_EIME (1ull << 11)

/* Source ids as the unit sees them (bus << 8 | dev << 3 | fn). */
#define VTD_SID(bus, dev, fn) ((uint16_t)((bus) << 8 | (dev) << 3 | (fn)))
#define VTD_SID_IOAPIC VTD_SID(0xF0, 0x1F, 0) /* F0:1F.0 */

/* IRTE source validation (9.10 SVT/SQ). */
#define VTD_SVT_NONE 0
#define VTD_SVT_SID 1
#define VTD_SVT_BUS 2
#define VTD_SQ_ALL 0

/* Fault reasons (7.1.3), interrupt remapping. */
#define VTD_FR_REQ_RESERVED 0x20
#define VTD_FR_INDEX_RANGE 0x21
#define VTD_FR_NOT_PRESENT 0x22
#define VTD_FR_TABLE_ACCESS 0x23
#define VTD_FR_IRTE_RESERVED 0x24
#define VTD_FR_COMPAT_BLOCKED 0x25
#define VTD_FR_SID 0x26

static inline uint32_t vtd_read32(uint32_t reg) { return mmio_read32(VTD_BASE + reg); }
static inline uint64_t vtd_read64(uint32_t reg) { return mmio_read64(VTD_BASE + reg); }
static inline void vtd_write32(uint32_t reg, uint32_t v) { mmio_write32(VTD_BASE + reg, v); }
static inline void vtd_write64(uint32_t reg, uint64_t v) { mmio_write64(VTD_BASE + reg, v); }

/* 11.4.4.1: set or clear one command on top of the current status, then
 * wait for GSTS to reflect it (Linux's IOMMU_WAIT_OP). For the one-shot
 * SIRTP the status bit is the completion flag. Returns GSTS. */
static inline uint32_t vtd_command(uint32_t bit, bool on) {
  uint32_t v = vtd_read32(VTD_GSTS) & VTD_GCMD_ONESHOT_MASK;
  v = on ? (v | bit) : (v & ~bit);
  vtd_write32(VTD_GCMD, v);
  uint32_t s = 0;
  for (int i = 0; i < 100000; i++) {
    s = vtd_read32(VTD_GSTS);
    if (((s & bit) != 0) == on) break;
    cpu_relax();
  }
  return s;
}

/* ---- Interrupt remapping table (256 entries, 4 KiB) ---- */
#define VTD_IRT_S 7 /* 2^(7+1) = 256 entries */
#define VTD_IRT_ENTRIES 256
struct vtd_irte {
  volatile uint64_t lo, hi;
};
static struct vtd_irte vtd_irt[VTD_IRT_ENTRIES] __attribute__((aligned(4096)));
static bool vtd_eime; /* IRTA.EIME latched by the last SIRTP */

struct vtd_irte_fields {
  uint8_t vector;
  uint32_t dest; /* APIC id */
  bool level;
  bool fpd;
  uint16_t sid;
  uint8_t sq, svt;
};
/* 9.10 remapped format: P, FPD, TM, V, DST (xAPIC: bits 47:40), SID/SQ/SVT. */
static inline void vtd_irte_encode(const struct vtd_irte_fields *f,
                                   uint64_t *lo, uint64_t *hi) {
  uint64_t dst = vtd_eime ? (uint64_t)f->dest : (uint64_t)(f->dest & 0xFF) << 8;
  *lo = 1ull | (f->fpd ? 2ull : 0) | (f->level ? 1ull << 4 : 0) |
        (uint64_t)f->vector << 16 | dst << 32;
  *hi = (uint64_t)f->sid | (uint64_t)(f->sq & 3) << 16 |
        (uint64_t)(f->svt & 3) << 18;
}
/* Writes entry `index` (high qword first, so P appears last). Without an
 * IEC invalidation the unit may keep using what it cached before. */
static inline void vtd_irte_set_raw(int index, uint64_t lo, uint64_t hi) {
  vtd_irt[index].lo = 0;
  __asm__ volatile("" ::: "memory");
  vtd_irt[index].hi = hi;
  __asm__ volatile("" ::: "memory");
  vtd_irt[index].lo = lo;
  __asm__ volatile("" ::: "memory");
}
static inline void vtd_irte_set(int index, const struct vtd_irte_fields *f) {
  uint64_t lo, hi;
  vtd_irte_encode(f, &lo, &hi);
  vtd_irte_set_raw(index, lo, hi);
}

/* ---- Invalidation queue (4 KiB, 256 legacy descriptors) ---- */
static volatile uint64_t vtd_queue[512] __attribute__((aligned(4096)));
static uint32_t vtd_qtail; /* byte offset of the next free slot */
static volatile uint32_t vtd_wait_status __attribute__((aligned(8)));
static uint32_t vtd_wait_seq;

#define VTD_QI_IEC 0x4ull
#define VTD_QI_IEC_INDEX(idx, im) \
  (VTD_QI_IEC | (1ull << 4) | (uint64_t)((im) & 0x1F) << 27 | (uint64_t)(idx) << 32)
#define VTD_QI_WAIT_SW(data) (0x5ull | (1ull << 5) | (uint64_t)(data) << 32)

static inline void vtd_qi_put(uint64_t qw0, uint64_t qw1) {
  vtd_queue[vtd_qtail / 8] = qw0;
  vtd_queue[vtd_qtail / 8 + 1] = qw1;
  vtd_qtail = (vtd_qtail + 16) % sizeof(vtd_queue);
}
/* 6.5.2.5 device-TLB invalidation of `sid` (Linux qi_flush_dev_iotlb):
 * SID 47:32, MIP/QDEP 20:16; qw1 = ADDR | S (0: one page). */
#define VTD_QI_DEVTLB(sid, qdep) \
  (0x3ull | (uint64_t)((qdep) & 0x1F) << 16 | (uint64_t)(uint16_t)(sid) << 32)

/* Linux's qi_type_string() (dmar.c). */
static inline const char *vtd_qi_type_string(uint8_t type) {
  switch (type) {
    case 1: return "Context-cache Invalidation";
    case 2: return "IOTLB Invalidation";
    case 3: return "Device-TLB Invalidation";
    case 4: return "Interrupt Entry Cache Invalidation";
    case 5: return "Invalidation Wait";
    case 6: return "PASID-based IOTLB Invalidation";
    case 7: return "PASID-cache Invalidation";
    case 8: return "PASID-based Device-TLB Invalidation";
    case 9: return "Page Group Response";
    default: return "UNKNOWN";
  }
}
/* Linux's qi_dump_fault(): what FSTS.IQE/ITE/ICE and IQERCD say, and the
 * descriptors at IQH and before it. */
static inline void vtd_qi_dump_fault(uint32_t fsts) {
  uint32_t head = (uint32_t)vtd_read64(VTD_IQH);
  uint64_t iqer = vtd_read64(VTD_IQERCD);
  if (fsts & VTD_FSTS_IQE)
    printf("DMAR: VT-d detected Invalidation Queue Error: Reason %x\n",
           VTD_IQER_IQEI(iqer));
  if (fsts & VTD_FSTS_ITE)
    printf("DMAR: VT-d detected Invalidation Time-out Error: SID %x\n",
           VTD_IQER_ITESID(iqer));
  if (fsts & VTD_FSTS_ICE)
    printf("DMAR: VT-d detected Invalidation Completion Error: SID %x\n",
           VTD_IQER_ICESID(iqer));
  uint32_t n = sizeof(vtd_queue) / 16;
  uint32_t prior = (head / 16 + n - 1) % n;
  printf("DMAR: QI HEAD: %s qw0 = 0x%lx, qw1 = 0x%lx\n",
         vtd_qi_type_string((uint8_t)(vtd_queue[head / 8] & 0xF)),
         vtd_queue[head / 8], vtd_queue[head / 8 + 1]);
  printf("DMAR: QI PRIOR: %s qw0 = 0x%lx, qw1 = 0x%lx\n",
         vtd_qi_type_string((uint8_t)(vtd_queue[prior * 2] & 0xF)),
         vtd_queue[prior * 2], vtd_queue[prior * 2 + 1]);
}

/* Linux's qi_submit_sync(): the descriptor, then an invalidation wait with
 * a status write; advance IQT; poll the status. False on IQE, ITE or
 * timeout (the caller reads FSTS/IQERCD; Linux's qi_check_fault()). */
static inline bool vtd_qi_submit(uint64_t qw0, uint64_t qw1) {
  uint32_t seq = ++vtd_wait_seq;
  vtd_wait_status = 0;
  vtd_qi_put(qw0, qw1);
  vtd_qi_put(VTD_QI_WAIT_SW(seq), (uint64_t)(uintptr_t)&vtd_wait_status);
  __asm__ volatile("" ::: "memory");
  vtd_write64(VTD_IQT, vtd_qtail);
  for (int i = 0; i < 1000000 && vtd_wait_status != seq; i++) {
    if (vtd_read32(VTD_FSTS) & (VTD_FSTS_IQE | VTD_FSTS_ITE)) return false;
    cpu_relax();
  }
  return vtd_wait_status == seq;
}
static inline bool vtd_qi_devtlb(uint16_t sid) {
  return vtd_qi_submit(VTD_QI_DEVTLB(sid, 0), 0);
}
static inline bool vtd_iec_global(void) { return vtd_qi_submit(VTD_QI_IEC, 0); }
static inline bool vtd_iec_index(uint16_t index, uint8_t mask) {
  return vtd_qi_submit(VTD_QI_IEC_INDEX(index, mask), 0);
}

/* Queued invalidation on, as Linux's dmar_enable_qi(): the queue at
 * vtd_queue (IQA.QS = 0: 4 KiB, 256 descriptors), IQT = 0, GCMD.QIE.
 * Returns GSTS. */
static inline uint32_t vtd_qi_enable(void) {
  vtd_qtail = 0;
  vtd_write64(VTD_IQT, 0);
  vtd_write64(VTD_IQA, (uint64_t)(uintptr_t)vtd_queue); /* QS = 0: 4 KiB */
  return vtd_command(VTD_GCMD_QIE, true);
}

/* Points IRTA at `base` (S, EIME) and latches it with SIRTP. */
static inline uint32_t vtd_set_irta(uint64_t base, bool eime) {
  vtd_write64(VTD_IRTA, base | (eime ? VTD_IRTA_EIME : 0) | VTD_IRT_S);
  uint32_t s = vtd_command(VTD_GCMD_SIRTP, true);
  vtd_eime = eime;
  return s;
}

/* Enables interrupt remapping (GCMD.IRE) and then applies the CFI policy,
 * as Linux's iommu_set_irq_remapping() does: `irqlab.vtd_cfi=1` on the
 * command line (`--device=intel-iommu,cfi=on`) sets GCMD.CFI, so
 * compatibility-format interrupts pass unremapped (11.4.4.1, effective only
 * while IRTA.EIME=0); otherwise CFI is cleared if it was set (Linux: "Block
 * compatibility-format MSIs"). Returns GSTS. */
static inline uint32_t vtd_ir_enable(void) {
  uint32_t s = vtd_command(VTD_GCMD_IRE, true);
  if (cmdline_get_int("irqlab.vtd_cfi", 0))
    s = vtd_command(VTD_GCMD_CFI, true);
  else if (s & VTD_GSTS_CFIS)
    s = vtd_command(VTD_GCMD_CFI, false);
  return s;
}

/* ---- Fault recording registers (7.2, 11.4.7.6) ---- */
/* One fault record, decoded both ways: interrupt-remapping faults carry the
 * interrupt index in FI[63:48]; DMA-remapping faults (11.4.14) carry the
 * page address in FI[63:12] and the request type in T (bit 126, 1 = read). */
struct vtd_fault {
  bool valid;     /* F */
  int slot;       /* FRCD register number (FSTS.FRI) */
  uint8_t reason; /* FR, bits 103:96 */
  uint16_t sid;   /* bits 79:64 */
  uint16_t index; /* FI[63:48]: interrupt_index (IR faults) */
  uint64_t addr;  /* FI[63:12] << 12 (DMA faults) */
  bool read;      /* T (DMA faults) */
  uint32_t fsts;  /* FSTS when read */
};
static uint32_t vtd_fro = 0x400;

static inline struct vtd_fault vtd_read_fault(void) {
  struct vtd_fault f = {0};
  f.fsts = vtd_read32(VTD_FSTS);
  if (!(f.fsts & VTD_FSTS_PPF)) return f;
  f.slot = (int)VTD_FSTS_FRI(f.fsts);
  uint64_t lo = vtd_read64(vtd_fro + 16 * f.slot);
  uint64_t hi = vtd_read64(vtd_fro + 16 * f.slot + 8);
  f.valid = hi >> 63;
  f.reason = (uint8_t)(hi >> 32);
  f.sid = (uint16_t)hi;
  f.index = (uint16_t)(lo >> 48);
  f.addr = lo & ~0xFFFull;
  f.read = (hi >> 62) & 1;
  return f;
}
/* F is RW1C (bit 127 = bit 31 of the record's last dword). */
static inline void vtd_clear_fault(int slot) {
  vtd_write32(vtd_fro + 16 * slot + 12, 0x80000000u);
}

/* Linux's dmar_get_fault_reason() strings for 0x20-0x26. */
static inline const char *vtd_fault_reason_string(uint8_t r) {
  static const char *const s[] = {
      "Detected reserved fields in the decoded interrupt-remapped request",
      "Interrupt index exceeded the interrupt-remapping table size",
      "Present field in the IRTE entry is clear",
      "Error accessing interrupt-remapping table pointed by IRTA_REG",
      "Detected reserved fields in the IRTE entry",
      "Blocked a compatibility format interrupt request",
      "Blocked an interrupt request due to source-id verification failure",
  };
  return r >= 0x20 && r <= 0x26 ? s[r - 0x20] : "Unknown";
}

/* Prints an interrupt-remapping fault record as Linux's dmar_fault() does:
 * "DMAR: [INTR-REMAP] Request device [bb:dd.f] fault index 0x.. [fault
 * reason 0x..] <reason string>". (vtd.c prints its own copy: its exact
 * instruction stream is recorded in golden traces.) */
static inline void vtd_print_ir_fault(const struct vtd_fault *f) {
  printf("DMAR: [INTR-REMAP] Request device [%02x:%02x.%d] fault index 0x%x "
         "[fault reason 0x%02x] %s\n",
         f->sid >> 8, (f->sid >> 3) & 0x1F, f->sid & 7, f->index, f->reason,
         vtd_fault_reason_string(f->reason));
}

/* ---- IOAPIC RTE in remappable format ([VT-d] 5.1.5.1) ----
 * bit 48 = 1, interrupt_index[14:0] in 63:49, interrupt_index[15] in bit 11;
 * vector/trigger stay in the RTE for EOI matching (Linux mirrors the IRTE's). */
#define VTD_RTE_HI_REMAP(index) ((1u << 16) | ((uint32_t)((index) & 0x7FFF) << 17))
#define VTD_RTE_LO_REMAP(index, vector) \
  ((uint32_t)(vector) | ((((uint32_t)(index) >> 15) & 1) << 11))

/* ---- MSI address/data in remappable format ([VT-d] 5.1.5.2) ----
 * address 0xFEE | handle[14:0] << 5 | 1 << 4 (format) | SHV << 3 |
 * handle[15] << 2; data = subhandle (bits 31:16 reserved, 0). */
#define VTD_MSI_ADDR_REMAP(handle, shv)                                  \
  (0xFEE00010u | ((uint32_t)((handle) & 0x7FFF) << 5) | ((shv) ? 8u : 0) | \
   ((((uint32_t)(handle) >> 15) & 1) << 2))


/* ==== DMA remapping (legacy mode) helpers, additive ====
 * [VT-d] 3.4.2 root/context tables, 9.1 root entry, 9.3 context entry,
 * 9.8 second-level paging entries, 11.4.5 RTADDR, 11.4.6 CCMD, 11.4.8
 * IOTLB registers (at ECAP.IRO), 6.5.2.1/6.5.2.3 context-cache / IOTLB
 * invalidation descriptors, 7.1.3 DMA-remapping fault reasons 1h-Dh. */
#define VTD_RTADDR 0x20
#define VTD_CCMD 0x28
#define VTD_GCMD_SRTP (1u << 30)
#define VTD_GSTS_TES VTD_GCMD_TE
#define VTD_GSTS_RTPS VTD_GCMD_SRTP
#define VTD_CAP_ND(c) ((int)((c) & 7))                /* 4 + 2*ND DID bits */
#define VTD_CAP_SAGAW(c) ((uint32_t)(((c) >> 8) & 0x1F))
#define VTD_CAP_MGAW(c) ((int)(((c) >> 16) & 0x3F) + 1)
#define VTD_CAP_PSI (1ull << 39)
#define VTD_ECAP_PT (1ull << 6)

/* Root entry (9.1): CTP | P. Context entry (9.3): lo = SLPTPTR | TT << 2 |
 * FPD << 1 | P; hi = DID << 8 | AW (1 = 39-bit 3-level, 2 = 48-bit). */
#define VTD_CTX_TT_UNTRANSLATED 0
#define VTD_CTX_TT_PASS_THROUGH 2
#define VTD_CTX_AW_39 1
#define VTD_CTX_AW_48 2
struct vtd_root_entry {
  volatile uint64_t lo, hi;
};
struct vtd_context_entry {
  volatile uint64_t lo, hi;
};
static inline void vtd_context_set(struct vtd_context_entry *c, uint64_t slptptr,
                                   unsigned tt, unsigned aw, uint16_t did) {
  c->lo = 0;
  __asm__ volatile("" ::: "memory");
  c->hi = (uint64_t)did << 8 | (aw & 7);
  __asm__ volatile("" ::: "memory");
  c->lo = (slptptr & ~0xFFFull) | (uint64_t)(tt & 3) << 2 | 1ull;
  __asm__ volatile("" ::: "memory");
}
/* Second-level paging entry (9.8): ADDR | R (bit 0) | W (bit 1). */
#define VTD_SL_R 1ull
#define VTD_SL_W 2ull

/* Queued invalidation descriptors (6.5.2.1 context-cache, 6.5.2.3 IOTLB).
 * Granularity G in bits 5:4: 1 global, 2 domain, 3 device / page. */
#define VTD_QI_CC(g, did, sid, fm)                                     \
  (0x1ull | (uint64_t)((g) & 3) << 4 | (uint64_t)(uint16_t)(did) << 16 | \
   (uint64_t)(uint16_t)(sid) << 32 | (uint64_t)((fm) & 3) << 48)
#define VTD_QI_IOTLB(g, did) \
  (0x2ull | (uint64_t)((g) & 3) << 4 | 3ull << 6 /* DR|DW */ | (uint64_t)(uint16_t)(did) << 16)
#define VTD_QI_IOTLB_ADDR(addr, ih, am) \
  (((uint64_t)(addr) & ~0xFFFull) | ((ih) ? 1ull << 6 : 0) | ((am) & 0x3F))
static inline bool vtd_qi_cc_global(void) { return vtd_qi_submit(VTD_QI_CC(1, 0, 0, 0), 0); }
static inline bool vtd_qi_cc_device(uint16_t did, uint16_t sid, uint8_t fm) {
  return vtd_qi_submit(VTD_QI_CC(3, did, sid, fm), 0);
}
static inline bool vtd_qi_iotlb_global(void) { return vtd_qi_submit(VTD_QI_IOTLB(1, 0), 0); }
static inline bool vtd_qi_iotlb_domain(uint16_t did) {
  return vtd_qi_submit(VTD_QI_IOTLB(2, did), 0);
}
static inline bool vtd_qi_iotlb_page(uint16_t did, uint64_t addr, uint8_t am) {
  return vtd_qi_submit(VTD_QI_IOTLB(3, did), VTD_QI_IOTLB_ADDR(addr, 0, am));
}

/* Register-based invalidation (6.5.1, only with QI disabled). CCMD: ICC
 * bit 63, CIRG 62:61; IOTLB_REG (IRO + 8): IVT bit 63, IIRG 61:60, DR 49,
 * DW 48, DID 47:32; IVA (IRO): ADDR | IH | AM. Poll ICC/IVT to clear. */
static inline bool vtd_reg_cc_global(void) {
  vtd_write64(VTD_CCMD, 1ull << 63 | 1ull << 61);
  for (int i = 0; i < 100000; i++)
    if (!(vtd_read64(VTD_CCMD) >> 63)) return true;
  return false;
}
static inline bool vtd_reg_iotlb(uint32_t iro, unsigned g, uint16_t did,
                                 uint64_t addr, uint8_t am) {
  if (g == 3) vtd_write64(iro, VTD_QI_IOTLB_ADDR(addr, 0, am));
  vtd_write64(iro + 8, 1ull << 63 | (uint64_t)(g & 3) << 60 | 3ull << 48 |
                           (uint64_t)did << 32);
  for (int i = 0; i < 100000; i++)
    if (!(vtd_read64(iro + 8) >> 63)) return true;
  return false;
}

/* Linux's dma_remap_fault_reasons[] (dmar.c) for 0x0-0xD. */
static inline const char *vtd_dma_fault_reason_string(uint8_t r) {
  static const char *const s[] = {
      "Software",
      "Present bit in root entry is clear",
      "Present bit in context entry is clear",
      "Invalid context entry",
      "Access beyond MGAW",
      "PTE Write access is not set",
      "PTE Read access is not set",
      "Next page table ptr is invalid",
      "Root table address invalid",
      "Context table ptr is invalid",
      "non-zero reserved fields in RTP",
      "non-zero reserved fields in CTP",
      "non-zero reserved fields in PTE",
      "PCE for translation request specifies blocking",
  };
  return r <= 0xD ? s[r] : "Unknown";
}
#define VTD_FR_DMA_WRITE 0x5
#define VTD_FR_DMA_READ 0x6

#endif /* IRQLAB_GUEST_VTD_H_ */
