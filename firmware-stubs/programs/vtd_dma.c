/* KERNEL-DESCRIPTION: Intel VT-d DMA remapping from the guest with edu DMA: root/context tables + 3-level second-level paging, SRTP, context-cache and IOTLB invalidation, TE, mapped, unmapped (5h, 6h) and read-only (5h) IOVAs with fault records, stale IOTLB until page/domain invalidation, stale context cache, pass-through, TE=0 */
/*
 * vtd_dma: drives the DMA-remapping half of the Intel VT-d unit at
 * 0xFED90000 (`--device=intel-iommu`, `--device=edu`) the way Linux's
 * intel-iommu driver does in legacy mode, and checks every transfer the edu
 * device makes (QEMU edu DMA: 0x80 src, 0x88 dst, 0x90 count, 0x98 cmd bit 0
 * start, bit 1 device -> RAM; its 4 KiB buffer is at device address
 * 0x40000; the guest polls cmd bit 0 until the transfer is done).
 * Helpers: runtime/vtd.h.
 *
 * Fixed ids: edu is 00:03.0 (source id 0x0018, looked up). Domain 1,
 * context AW = 39-bit (3-level tables). Tables and buffers are page-aligned
 * in BSS (identity-mapped: virtual == physical).
 *
 * Mappings (second-level, 4 KiB pages):
 *   IOVA 0x10000 -> buf_a (R/W)      IOVA 0x20000 -> buf_ro (R only)
 *   everything else not present (IOVA 0x30000: PTE 0; 0x200000: PDE 0)
 *
 * Tests (PASS/FAIL lines; each fault: the record at FSTS.FRI has F, reason,
 * source id 00:03.0, page address and type; printed in Linux's format
 * "DMAR: [DMA Write NO_PASID] Request device [00:03.0] fault addr ...";
 * cleared by writing 1 to F, then FSTS reads 0; FECTL stays masked):
 *   vtd_dma_caps        CAP.SAGAW has 39-bit, CAP.PSI, MGAW >= 39; reports
 *                       ECAP.QI (QI descriptors used, else registers) and
 *                       ECAP.PT
 *   vtd_dma_te_off      TE=0 at reset: a RAM -> device DMA from the
 *                       physical address of the pattern fills edu's buffer
 *                       untranslated
 *   vtd_dma_bringup     RTADDR + SRTP -> GSTS.RTPS; global context-cache +
 *                       global IOTLB invalidation; TE=1 -> GSTS.TES
 *   vtd_dma_map         device -> RAM, 64 bytes to IOVA 0x10100: the bytes
 *                       land at buf_a + 0x100, nothing else in buf_a changes
 *   vtd_dma_read_ro     RAM -> device from IOVA 0x20000 (read-only
 *                       mapping) reads buf_ro (checked by copying it back
 *                       to IOVA 0x10200)
 *   vtd_dma_unmapped    device -> RAM to IOVA 0x30000 (PTE not present) ->
 *                       fault 5h, write, addr 0x30000, nothing written
 *                       (physical 0x30000 unchanged)
 *   vtd_dma_unmapped_pde  device -> RAM to IOVA 0x200040 (PDE not present)
 *                       -> 5h, addr 0x200000
 *   vtd_dma_unmapped_read RAM -> device from IOVA 0x30000 -> 6h, read,
 *                       edu buffer unchanged
 *   vtd_dma_readonly    device -> RAM to IOVA 0x20000 (R only) -> 5h,
 *                       buf_ro unchanged
 *   vtd_dma_iotlb_stale PTE of 0x10000 rewritten to buf_b without an
 *                       invalidation: the DMA still lands in buf_a (IOTLB)
 *   vtd_dma_iotlb_psi   page-selective IOTLB invalidation (did 1, 0x10000,
 *                       AM 0) -> the DMA lands in buf_b
 *   vtd_dma_iotlb_domain PTE back to buf_a: domain 2 invalidation keeps
 *                       buf_b; domain 1 invalidation -> buf_a
 *   vtd_dma_ctx_stale   (ECAP.PT) context entry rewritten to TT=10
 *                       (pass-through) without invalidation: IOVA 0x10000
 *                       still translated (to buf_a)
 *   vtd_dma_passthrough device-selective context-cache invalidation (did 1,
 *                       00:03.0) + domain IOTLB invalidation: DMA to the
 *                       physical address of buf_c lands there
 *   vtd_dma_te_clear    TE=0 -> GSTS.TES clear; DMA to the physical address
 *                       of buf_d lands there untranslated
 *
 * Options: regs=1 forces register-based invalidation even with ECAP.QI;
 * did=N domain id of the context entry (1).
 */
#include "runtime.h"
#include "pci.h"
#include "vtd.h"

#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_DMA_RUN 1u
#define EDU_DMA_TO_RAM 2u
#define EDU_BUF ((uint64_t)0x40000)

static uint16_t DID = 1; /* did=N */
#define IOVA_RW ((uint64_t)0x10000)
#define IOVA_RO ((uint64_t)0x20000)
#define IOVA_HOLE ((uint64_t)0x30000)
#define IOVA_HOLE_PDE ((uint64_t)0x200000)

static struct vtd_root_entry root_table[256] __attribute__((aligned(4096)));
static struct vtd_context_entry ctx_table[256] __attribute__((aligned(4096)));
static volatile uint64_t sl_l3[512] __attribute__((aligned(4096)));
static volatile uint64_t sl_l2[512] __attribute__((aligned(4096)));
static volatile uint64_t sl_l1[512] __attribute__((aligned(4096)));
static volatile uint8_t buf_a[4096] __attribute__((aligned(4096)));
static volatile uint8_t buf_b[4096] __attribute__((aligned(4096)));
static volatile uint8_t buf_c[4096] __attribute__((aligned(4096)));
static volatile uint8_t buf_d[4096] __attribute__((aligned(4096)));
static volatile uint8_t buf_ro[4096] __attribute__((aligned(4096)));
static uint8_t pattern[4096] __attribute__((aligned(4096)));

static uint64_t edu_bar;
static uint16_t edu_sid;
static bool use_qi;
static uint32_t iro;

static uint64_t pa(const volatile void *p) { return (uint64_t)(uintptr_t)p; }

/* One edu transfer; true iff it completed (cmd bit 0 cleared). */
static bool edu_dma(uint64_t src, uint64_t dst, uint32_t count, bool to_ram) {
  mmio_write64(edu_bar + EDU_DMA_SRC, src);
  mmio_write64(edu_bar + EDU_DMA_DST, dst);
  mmio_write64(edu_bar + EDU_DMA_COUNT, count);
  mmio_write64(edu_bar + EDU_DMA_CMD, EDU_DMA_RUN | (to_ram ? EDU_DMA_TO_RAM : 0));
  for (int i = 0; i < 10000000; i++) {
    if (!(mmio_read64(edu_bar + EDU_DMA_CMD) & EDU_DMA_RUN)) return true;
    cpu_relax();
  }
  return false;
}
/* Device buffer [off, off+n) -> RAM at `iova`. */
static bool to_ram(uint32_t off, uint64_t iova, uint32_t n) {
  return edu_dma(EDU_BUF + off, iova, n, true);
}
static bool from_ram(uint64_t iova, uint32_t off, uint32_t n) {
  return edu_dma(iova, EDU_BUF + off, n, false);
}

static bool bytes_are(const volatile uint8_t *p, const uint8_t *want, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != want[i]) return false;
  return true;
}
static bool all_byte(const volatile uint8_t *p, uint8_t v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != v) return false;
  return true;
}

/* Invalidation per ECAP: queued (Linux qi_flush_*) or register-based. */
static bool inv_cc_global(void) {
  return use_qi ? vtd_qi_cc_global() : vtd_reg_cc_global();
}
static bool inv_cc_device(uint16_t did, uint16_t sid) {
  if (use_qi) return vtd_qi_cc_device(did, sid, 0);
  vtd_write64(VTD_CCMD, 1ull << 63 | 3ull << 61 | (uint64_t)sid << 16 | did);
  for (int i = 0; i < 100000; i++)
    if (!(vtd_read64(VTD_CCMD) >> 63)) return true;
  return false;
}
static bool inv_iotlb(unsigned g, uint16_t did, uint64_t addr) {
  if (use_qi) {
    return g == 1 ? vtd_qi_iotlb_global()
           : g == 2 ? vtd_qi_iotlb_domain(did)
                    : vtd_qi_iotlb_page(did, addr, 0);
  }
  return vtd_reg_iotlb(iro, g, did, addr, 0);
}

/* Reads the DMA fault at FSTS.FRI, prints it as Linux does, checks it,
 * clears it and checks FSTS went back to 0. */
static bool expect_dma_fault(const char *name, bool done, uint8_t reason,
                             uint64_t addr, bool read, bool nothing_written) {
  struct vtd_fault f = vtd_read_fault();
  if (f.valid) {
    printf("DMAR: [%s NO_PASID] Request device [%02x:%02x.%d] fault addr "
           "0x%lx [fault reason 0x%02x] %s\n",
           f.read ? "DMA Read" : "DMA Write", f.sid >> 8, (f.sid >> 3) & 0x1F,
           f.sid & 7, f.addr, f.reason, vtd_dma_fault_reason_string(f.reason));
    vtd_clear_fault(f.slot);
  }
  uint32_t after = vtd_read32(VTD_FSTS);
  bool ok = done && f.valid && (f.fsts & VTD_FSTS_PPF) && f.reason == reason &&
            f.sid == edu_sid && f.addr == addr && f.read == read &&
            nothing_written && after == 0;
  reportf(name, ok,
          "dma done %d, FSTS 0x%x, record %d F=%d reason 0x%x sid 0x%x addr "
          "0x%lx read %d (want 0x%x 0x%x 0x%lx %d), nothing written %d, FSTS "
          "after clear 0x%x",
          done, f.fsts, f.slot, f.valid, f.reason, f.sid, f.addr, f.read,
          reason, edu_sid, addr, read, nothing_written, after);
  return ok;
}

static void clear_bufs(void) {
  for (int i = 0; i < 4096; i++) buf_a[i] = buf_b[i] = buf_c[i] = buf_d[i] = 0;
}

int main(void) {
  for (int i = 0; i < 4096; i++) {
    pattern[i] = (uint8_t)(i * 7 + 0x11);
    buf_ro[i] = (uint8_t)(0xC0 ^ i);
  }
  clear_bufs();

  uint32_t ver = vtd_read32(VTD_VER);
  if (ver == 0 || ver == 0xFFFFFFFFu) {
    reportf("vtd_dma_caps", false, "no VT-d unit at 0x%lx (VER 0x%x; boot "
            "with --device=intel-iommu)", (uint64_t)VTD_BASE, ver);
    report_exit();
  }
  int devfn = pci_find_device(0x1234, 0x11E8);
  if (devfn < 0) {
    reportf("vtd_dma_caps", false, "edu not found (--device=edu)");
    report_exit();
  }
  edu_sid = (uint16_t)devfn; /* bus 0 */
  edu_bar = pci_bar_address(devfn >> 3, devfn & 7, 0);
  uint16_t cmd = pci_cfg_read16(0, devfn >> 3, devfn & 7, PCI_COMMAND);
  pci_cfg_write16(0, devfn >> 3, devfn & 7, PCI_COMMAND,
                  cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

  uint64_t cap = vtd_read64(VTD_CAP), ecap = vtd_read64(VTD_ECAP);
  vtd_fro = VTD_CAP_FRO(cap);
  iro = VTD_ECAP_IRO(ecap);
  use_qi = (ecap & VTD_ECAP_QI) && !cmdline_get_int("regs", 0);
  DID = (uint16_t)cmdline_get_int("did", 1);
  bool has_pt = ecap & VTD_ECAP_PT;
  printf("vtd_dma: edu 00:%02x.%d (source id 0x%04x) bar0 0x%lx; cap 0x%lx "
         "ecap 0x%lx (domain id %u): SAGAW 0x%x MGAW %d ND %d PSI %d, QI %d PT %d, FRCD at "
         "0x%x, IOTLB regs at 0x%x; invalidation by %s\n",
         devfn >> 3, devfn & 7, edu_sid, edu_bar, cap, ecap, DID, VTD_CAP_SAGAW(cap),
         VTD_CAP_MGAW(cap), VTD_CAP_ND(cap), !!(cap & VTD_CAP_PSI),
         !!(ecap & VTD_ECAP_QI), has_pt, vtd_fro, iro,
         use_qi ? "queued descriptors" : "registers");
  reportf("vtd_dma_caps",
          (VTD_CAP_SAGAW(cap) & 2) && (cap & VTD_CAP_PSI) &&
              VTD_CAP_MGAW(cap) >= 39 && vtd_fro == 0x400 && iro == 0x200,
          "sagaw 0x%x psi %d mgaw %d fro 0x%x iro 0x%x", VTD_CAP_SAGAW(cap),
          !!(cap & VTD_CAP_PSI), VTD_CAP_MGAW(cap), vtd_fro, iro);

  /* TE=0 (reset): untranslated. Fill edu's buffer from the pattern. */
  uint32_t g0 = vtd_read32(VTD_GSTS);
  bool d0 = from_ram(pa(pattern), 0, 4096);
  /* Read it back to buf_d through physical addresses to check it arrived. */
  bool d1 = to_ram(0, pa(buf_d), 4096);
  reportf("vtd_dma_te_off",
          !(g0 & VTD_GSTS_TES) && d0 && d1 && bytes_are(buf_d, pattern, 4096),
          "gsts 0x%x dma %d %d, buf_d %s pattern", g0, d0, d1,
          bytes_are(buf_d, pattern, 4096) ? "==" : "!=");
  clear_bufs();

  /* Tables: root[0] -> ctx_table; ctx[devfn] -> 3-level SL tables. */
  root_table[0].hi = 0;
  root_table[0].lo = pa(ctx_table) | 1;
  vtd_context_set(&ctx_table[devfn], pa(sl_l3), VTD_CTX_TT_UNTRANSLATED,
                  VTD_CTX_AW_39, DID);
  sl_l3[0] = pa(sl_l2) | VTD_SL_R | VTD_SL_W;
  sl_l2[0] = pa(sl_l1) | VTD_SL_R | VTD_SL_W;
  sl_l1[IOVA_RW >> 12] = pa(buf_a) | VTD_SL_R | VTD_SL_W;
  sl_l1[IOVA_RO >> 12] = pa(buf_ro) | VTD_SL_R;

  /* Bring-up (Linux iommu_set_root_entry, flush_context/iotlb global,
   * iommu_enable_translation). */
  if (use_qi) {
    vtd_qtail = 0;
    vtd_write64(VTD_IQT, 0);
    vtd_write64(VTD_IQA, pa(vtd_queue));
    vtd_command(VTD_GCMD_QIE, true);
  }
  vtd_write64(VTD_RTADDR, pa(root_table));
  uint32_t g1 = vtd_command(VTD_GCMD_SRTP, true);
  uint64_t rta = vtd_read64(VTD_RTADDR);
  bool icc = inv_cc_global();
  bool iotlb = inv_iotlb(1, 0, 0);
  uint32_t g2 = vtd_command(VTD_GCMD_TE, true);
  printf("vtd_dma: root table 0x%lx, context table 0x%lx, SL tables 0x%lx "
         "0x%lx 0x%lx; buf_a 0x%lx buf_b 0x%lx buf_ro 0x%lx; GSTS SRTP 0x%08x "
         "TE 0x%08x\n",
         pa(root_table), pa(ctx_table), pa(sl_l3), pa(sl_l2), pa(sl_l1),
         pa(buf_a), pa(buf_b), pa(buf_ro), g1, g2);
  reportf("vtd_dma_bringup",
          (g1 & VTD_GSTS_RTPS) && rta == pa(root_table) && icc && iotlb &&
              (g2 & VTD_GSTS_TES) && vtd_read32(VTD_FSTS) == 0,
          "gsts 0x%x 0x%x rtaddr 0x%lx cc %d iotlb %d fsts 0x%x", g1, g2, rta,
          icc, iotlb, vtd_read32(VTD_FSTS));

  /* Mapped: 64 bytes of the pattern (offset 0x100) -> IOVA 0x10100. */
  bool d = to_ram(0x100, IOVA_RW + 0x100, 64);
  bool rest_clean = all_byte(buf_a, 0, 0x100) &&
                    all_byte(buf_a + 0x140, 0, 4096 - 0x140);
  reportf("vtd_dma_map",
          d && bytes_are(buf_a + 0x100, pattern + 0x100, 64) && rest_clean &&
              all_byte(buf_b, 0, 4096),
          "dma %d, buf_a+0x100 %s pattern, rest clean %d", d,
          bytes_are(buf_a + 0x100, pattern + 0x100, 64) ? "==" : "!=",
          rest_clean);
  printf("vtd_dma_map: IOVA 0x%lx -> 0x%lx: %02x %02x %02x %02x ...\n",
         IOVA_RW + 0x100, pa(buf_a) + 0x100, buf_a[0x100], buf_a[0x101],
         buf_a[0x102], buf_a[0x103]);

  /* Read through the read-only mapping: buf_ro -> edu[0x800..], then back
   * to IOVA 0x10200. */
  d = from_ram(IOVA_RO, 0x800, 64);
  bool d2 = to_ram(0x800, IOVA_RW + 0x200, 64);
  reportf("vtd_dma_read_ro",
          d && d2 && bytes_are(buf_a + 0x200, (const uint8_t *)buf_ro, 64) &&
              vtd_read32(VTD_FSTS) == 0,
          "dma %d %d, buf_a+0x200 %s buf_ro, fsts 0x%x", d, d2,
          bytes_are(buf_a + 0x200, (const uint8_t *)buf_ro, 64) ? "==" : "!=",
          vtd_read32(VTD_FSTS));

  /* Unmapped (PTE 0): write -> 5h, nothing at physical 0x30000 either. */
  volatile uint8_t *phys_hole = (volatile uint8_t *)(uintptr_t)IOVA_HOLE;
  uint8_t before[64];
  for (int i = 0; i < 64; i++) before[i] = phys_hole[i];
  uint8_t a_snap[64];
  for (int i = 0; i < 64; i++) a_snap[i] = buf_a[0x100 + i];
  d = to_ram(0, IOVA_HOLE, 64);
  expect_dma_fault("vtd_dma_unmapped", d, VTD_FR_DMA_WRITE, IOVA_HOLE, false,
                   bytes_are(phys_hole, before, 64) &&
                       bytes_are(buf_a + 0x100, a_snap, 64));
  d = to_ram(0, IOVA_HOLE_PDE + 0x40, 64);
  expect_dma_fault("vtd_dma_unmapped_pde", d, VTD_FR_DMA_WRITE, IOVA_HOLE_PDE,
                   false, true);
  /* Read from the hole into edu[0x400..]: 6h, the buffer keeps the pattern
   * (checked by copying it out to IOVA 0x10400). */
  d = from_ram(IOVA_HOLE, 0x400, 64);
  bool rd_fault = expect_dma_fault("vtd_dma_unmapped_read", d, VTD_FR_DMA_READ,
                                   IOVA_HOLE, true, true);
  d2 = to_ram(0x400, IOVA_RW + 0x400, 64);
  if (rd_fault && !(d2 && bytes_are(buf_a + 0x400, pattern + 0x400, 64)))
    reportf("vtd_dma_unmapped_read_buffer", false,
            "edu buffer changed by a faulted read");

  /* Read-only: write -> 5h, buf_ro untouched. */
  uint8_t ro_snap[64];
  for (int i = 0; i < 64; i++) ro_snap[i] = buf_ro[i];
  d = to_ram(0, IOVA_RO, 64);
  expect_dma_fault("vtd_dma_readonly", d, VTD_FR_DMA_WRITE, IOVA_RO, false,
                   bytes_are(buf_ro, ro_snap, 64));

  /* IOTLB staleness: remap IOVA 0x10000 -> buf_b in memory only. */
  clear_bufs();
  sl_l1[IOVA_RW >> 12] = pa(buf_b) | VTD_SL_R | VTD_SL_W;
  d = to_ram(0x600, IOVA_RW + 0x600, 32);
  bool stale = bytes_are(buf_a + 0x600, pattern + 0x600, 32) &&
               all_byte(buf_b, 0, 4096);
  reportf("vtd_dma_iotlb_stale", d && stale,
          "dma %d, PTE -> buf_b without invalidation: buf_a %s, buf_b %s", d,
          bytes_are(buf_a + 0x600, pattern + 0x600, 32) ? "written" : "not written",
          all_byte(buf_b, 0, 4096) ? "clean" : "written");
  printf("vtd_dma_iotlb_stale: PTE for IOVA 0x10000 now -> buf_b, DMA went "
         "to %s\n", stale ? "buf_a (stale IOTLB entry)" : "buf_b");

  clear_bufs();
  bool inv = inv_iotlb(3, DID, IOVA_RW);
  d = to_ram(0x600, IOVA_RW + 0x600, 32);
  reportf("vtd_dma_iotlb_psi",
          inv && d && bytes_are(buf_b + 0x600, pattern + 0x600, 32) &&
              all_byte(buf_a, 0, 4096),
          "inv %d dma %d, buf_b %s, buf_a %s", inv, d,
          bytes_are(buf_b + 0x600, pattern + 0x600, 32) ? "written" : "not written",
          all_byte(buf_a, 0, 4096) ? "clean" : "written");

  /* Domain-selective: the wrong domain keeps the stale entry. */
  clear_bufs();
  sl_l1[IOVA_RW >> 12] = pa(buf_a) | VTD_SL_R | VTD_SL_W;
  bool inv2 = inv_iotlb(2, DID + 1, 0);
  d = to_ram(0x700, IOVA_RW + 0x700, 32);
  bool kept = bytes_are(buf_b + 0x700, pattern + 0x700, 32) && all_byte(buf_a, 0, 4096);
  clear_bufs();
  bool inv1 = inv_iotlb(2, DID, 0);
  d2 = to_ram(0x700, IOVA_RW + 0x700, 32);
  bool fresh = bytes_are(buf_a + 0x700, pattern + 0x700, 32) && all_byte(buf_b, 0, 4096);
  reportf("vtd_dma_iotlb_domain", inv2 && inv1 && d && d2 && kept && fresh,
          "domain %d inv %d -> stale buf_b %d; domain %d inv %d -> buf_a %d",
          DID + 1, inv2, kept, DID, inv1, fresh);

  /* Pass-through (TT=10b). */
  if (!has_pt) {
    report_skip("vtd_dma_ctx_stale", "ECAP.PT clear");
    report_skip("vtd_dma_passthrough", "ECAP.PT clear");
  } else {
    clear_bufs();
    vtd_context_set(&ctx_table[devfn], 0, VTD_CTX_TT_PASS_THROUGH,
                    VTD_CTX_AW_39, DID);
    d = to_ram(0x800, IOVA_RW + 0x800, 32);
    reportf("vtd_dma_ctx_stale",
            d && bytes_are(buf_a + 0x800, (const uint8_t *)buf_ro, 32),
            "context entry now TT=10 without invalidation: IOVA 0x10800 %s",
            bytes_are(buf_a + 0x800, (const uint8_t *)buf_ro, 32)
                ? "still translated to buf_a"
                : "not translated");
    clear_bufs();
    bool c = inv_cc_device(DID, edu_sid);
    bool t = inv_iotlb(2, DID, 0);
    d = to_ram(0x900, pa(buf_c) + 0x900, 32);
    reportf("vtd_dma_passthrough",
            c && t && d && bytes_are(buf_c + 0x900, pattern + 0x900, 32) &&
                vtd_read32(VTD_FSTS) == 0,
            "cc %d iotlb %d dma %d -> 0x%lx %s, fsts 0x%x", c, t, d,
            pa(buf_c) + 0x900,
            bytes_are(buf_c + 0x900, pattern + 0x900, 32) ? "landed" : "missing",
            vtd_read32(VTD_FSTS));
  }

  /* TE=0: untranslated again (the context entry no longer matters). */
  uint32_t g3 = vtd_command(VTD_GCMD_TE, false);
  clear_bufs();
  d = to_ram(0xA00, pa(buf_d) + 0xA00, 32);
  reportf("vtd_dma_te_clear",
          !(g3 & VTD_GSTS_TES) && d &&
              bytes_are(buf_d + 0xA00, pattern + 0xA00, 32) &&
              vtd_read32(VTD_FSTS) == 0,
          "gsts 0x%x dma %d buf_d %s", g3, d,
          bytes_are(buf_d + 0xA00, pattern + 0xA00, 32) ? "landed" : "missing");
  report_exit();
}
