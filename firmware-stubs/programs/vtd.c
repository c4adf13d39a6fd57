/* KERNEL-DESCRIPTION: Intel VT-d interrupt remapping from the guest: Linux bring-up (QI, IRTA+SIRTP, IEC flush, IRE), remapped IOAPIC and testdev MSI, every IR fault reason 0x20-0x26 with fault records, FPD, CFI, stale IEC, fault event */
/*
 * vtd: drives the Intel VT-d unit at 0xFED90000 (`--device=intel-iommu`)
 * the way Linux's intel_irq_remapping does, then proves interrupt
 * remapping end to end: IOAPIC pins (pc-testdev lines) and irqlab-testdev
 * MSI/MSI-X go through the unit; interrupts are counted per (CPU, vector)
 * by one handler (irq_counter.h); the fault recording registers are read
 * back and cleared from the guest. Helpers: runtime/vtd.h.
 *
 * Fixed ids: IOAPIC source id F0:1F.0 (0xf0f8); irqlab-testdev 00:04.0
 * (its devfn is looked up). Fault events: FEDATA = 0xE0, FEADDR = APIC 0.
 * The remapping table has 256 entries (IRTA.S = 7); EIME = 0 (xAPIC ids).
 *
 * Always:
 *   vtd_caps       VER 0x10; CAP.NFR = 8 records at CAP.FRO = 0x400;
 *                  ECAP.IRO = 0x200; ECAP.IR, ECAP.QI set; ECAP.EIM ==
 *                  cmdline eim (0/1, default 1); CAP.PI clear
 *   vtd_bringup    Linux order: IQA/IQT, QIE -> GSTS.QIES, IQH 0; IRTA +
 *                  SIRTP -> GSTS.IRTPS, IRTA reads back; IEC global
 *                  invalidation + wait descriptor (status written, IQH ==
 *                  IQT); IRE -> GSTS == QIES|IRES|IRTPS (0x07000000),
 *                  FSTS 0; fault event unmasked (FECTL 0)
 * cases=remap (IOAPIC, needs 4 vCPUs for the CPU checks):
 *   vtd_remap_ioapic        pin 10, RTE remappable (bit 48, index 5),
 *                           IRTE 5: vector 0x41 -> APIC 2, SVT=1 SID
 *                           f0:1f.0: two edges -> 0x41 twice on CPU 2
 *                           (IEC miss, then hit); the RTE's own vector
 *                           (0x4f) never arrives
 *   vtd_remap_ioapic_level  pin 11 level, IRTE 7: 0x43 TM=1 -> APIC 1; the
 *                           handler lowers the line, the EOI broadcast
 *                           clears Remote IRR: exactly one interrupt
 *   vtd_remap_index15       pin 12 with interrupt_index 0x80 through RTE
 *                           bits 63:49 -> IRTE 0x80: 0x44 on APIC 3
 * cases=msi (irqlab-testdev):
 *   vtd_remap_msi           MSI address 0xFEE00010 | handle 8 << 5 | SHV,
 *                           data 0 (subhandle): FIRE 0 -> IRTE 8: 0x51 on
 *                           APIC 2 (SVT=1 SID 00:04.0)
 *   vtd_remap_msi_noshv     SHV = 0 with data 5: subhandle ignored -> IRTE
 *                           8 again (0x51 on APIC 2)
 *   vtd_remap_msi_multi     handle 16, SHV, MME = 2 (4 messages): FIRE n ->
 *                           subhandle n -> IRTE 16+n: 0x54+n on APIC n
 * cases=faults (each: not delivered, FSTS.PPF, the record at FSTS.FRI has
 * F, the reason, source id and index; cleared by writing 1 to F, then FSTS
 * reads 0; one fault event interrupt per recorded fault; the guest prints
 * the record in Linux's format, "DMAR: [INTR-REMAP] Request device ..."):
 *   vtd_fault_20_msix_reserved_data  MSI-X entry 0 remappable (handle 9,
 *                           SHV) with data 0x00010000 -> 0x20, 00:04.0,
 *                           index 9 (MSI data is only 16 bits wide; MSI-X
 *                           data is 32)
 *   vtd_fault_21_index      RTE index 0x123 >= 256 entries -> 0x21
 *   vtd_fault_21_index_bit15 RTE bit 11 = interrupt_index[15]: index
 *                           0x8005 -> 0x21 index 0x8005
 *   vtd_fault_21_msi_handle15 MSI address bit 2 = handle[15]: 0x8008 ->
 *                           0x21, 00:04.0
 *   vtd_fault_22_not_present IRTE 20 all zero -> 0x22 index 0x14
 *   vtd_fault_23_irta       IRTA -> 0x80000000 (no RAM) + SIRTP + IEC
 *                           flush; RTE index 3 -> 0x23 index 3; IRTA back
 *                           (vtd_remap_after_23: index 5 remaps again)
 *   vtd_fault_24_reserved   IRTE 21 with bit 12 (reserved 14:12) -> 0x24;
 *                           IRTE 29 with DST bit 32 (reserved with EIME=0)
 *                           -> 0x24; IRTE 28 with IM=1 (posted) while CAP.PI
 *                           = 0 -> 0x24
 *   vtd_fault_25_compat_ioapic  compatibility RTE (vector 0x46) -> 0x25,
 *                           f0:1f.0, index 0
 *   vtd_fault_25_compat_msi compatibility MSI from testdev -> 0x25, 00:04.0
 *   vtd_fault_26_sid        IRTE 22 SVT=1 SID f0:1f.1 SQ=0 -> 0x26
 *   vtd_fault_26_bus        IRTE 23 SVT=2 buses [0x00, 0x10] -> 0x26
 *   vtd_sid_ok              IRTE 24 SVT=1 SID f0:1f.3 SQ=3 (ignore 2:0) and
 *                           IRTE 25 SVT=2 buses [0xf0, 0xf0] deliver
 *   vtd_fpd                 IRTE 26 P=0 FPD=1 and IRTE 27 FPD=1 with a
 *                           wrong SID: nothing recorded (FSTS 0, no fault
 *                           event), nothing delivered
 *   vtd_fault_event_count   fault events == recorded faults
 *   vtd_fault_event_masked  FECTL.IM=1: fault -> FECTL IM|IP, no interrupt;
 *                           IM=0 -> the held event is sent; again with
 *                           IM=1, clearing F clears IP, no event on unmask
 *   vtd_fault_overflow      IM=1, NFR+1 faults without clearing: all NFR
 *                           records hold 0x22, FSTS.PFO|PPF, FECTL IM|IP;
 *                           clearing every F leaves PFO; clearing PFO ->
 *                           FSTS 0, IP cleared, no fault event
 * cases=iec:
 *   vtd_iec_stale           IRTE 30 (pin 13) 0x60 -> APIC 1: delivered;
 *                           IRTE rewritten to 0x61 in memory, no
 *                           invalidation -> 0x60 again; index-selective
 *                           invalidation (30, mask 0) -> 0x61
 *   vtd_iec_selective       rewritten to 0x62: invalidating index 31 keeps
 *                           0x61; index 31 with mask 1 (30-31) -> 0x62
 *   vtd_iec_global          rewritten to 0x63 -> APIC 2: global
 *                           invalidation -> 0x63 on CPU 2
 * cases=cfi:
 *   vtd_cfi_blocked         compatibility RTE pin 14 (0x70 -> APIC 1) with
 *                           CFI=0 -> 0x25
 *   vtd_cfi_pass            GCMD.CFI=1 -> GSTS.CFIS; the same RTE delivers
 *                           0x70 on CPU 1, a compatibility testdev MSI 0x71
 *                           on CPU 3; remappable still remapped (0x41, CPU 2)
 *   vtd_cfi_eime            (only with ECAP.EIM) IRTA.EIME=1: CFI is
 *                           ignored (11.4.4.1) -> 0x25 although CFIS=1
 *   vtd_cfi_off             CFI=0 -> GSTS.CFIS clear, 0x25 again
 *
 * cases=msistale (irqlab-testdev; run it with the testdev assigned through
 * vfio to see the VMM's route cache behave like the IEC, seed 003):
 *   vtd_msi_stale           IRTE 40: 0x64 -> APIC 1, testdev MSI handle 40:
 *                           delivered; IRTE rewritten to 0x65 without
 *                           invalidation -> 0x64 again; index-selective
 *                           invalidation -> 0x65
 *   vtd_msi_fault_at_delivery  IRTE 40 cleared (P=0) + invalidation: the
 *                           next MSI faults 0x22 index 40 (source = the
 *                           testdev), nothing delivered
 *   vtd_msi_restored        IRTE 40 -> 0x66 + invalidation: delivered
 *
 * Options: cases=remap,msi,faults,iec,cfi,msistale (default all); eim=0|1 (what
 * ECAP.EIM must say; default 1); settle=L pause loops (20000).
 */
#include "runtime.h"
#include "ioapic.h"
#include "irq_counter.h"
#include "pci.h"
#include "vtd.h"

#define FE_VEC 0xE0
static char cases_buf[96];
static int fe_expected;  /* fault events the unit must have sent */
static int n_recorded;   /* faults recorded (and cleared) so far */
static uint16_t td_sid;  /* testdev requester id, 0 if absent */
static int td_dev = -1;
static uint64_t td_bar0, td_bar1;
static int td_msi, td_msix;

static bool want(const char *name) { return cmdline_list_wants(cases_buf, name); }
static int cpu_or0(int cpu) { return cpu < ncpus ? cpu : 0; }

static void pulse(int pin) {
  pc_testdev_line(pin, true);
  pc_testdev_line(pin, false);
}
static void rte_remap(int pin, uint16_t index, uint8_t rte_vector, bool level) {
  ioapic_write(IOAPIC_REG_RTE_HI(pin), VTD_RTE_HI_REMAP(index));
  ioapic_write(IOAPIC_REG_RTE_LO(pin), VTD_RTE_LO_REMAP(index, rte_vector) |
                                           (level ? IOAPIC_RTE_LEVEL : 0));
}
static void irte(int index, uint8_t vector, uint32_t dest, uint16_t sid,
                 uint8_t sq, uint8_t svt) {
  struct vtd_irte_fields f = {.vector = vector, .dest = dest, .sid = sid,
                              .sq = sq, .svt = svt};
  vtd_irte_set(index, &f);
}

/* Reads the fault at FSTS.FRI, prints it as Linux does, checks it, clears
 * it and checks FSTS went back to 0. Waits for its fault event first. */
static bool expect_fault(const char *name, uint8_t reason, uint16_t sid,
                         uint16_t index) {
  fe_expected++;
  bool fe = wait_total(FE_VEC, (uint32_t)fe_expected);
  struct vtd_fault f = vtd_read_fault();
  if (f.valid) {
    printf("DMAR: [INTR-REMAP] Request device [%02x:%02x.%d] fault index 0x%x "
           "[fault reason 0x%02x] %s\n",
           f.sid >> 8, (f.sid >> 3) & 0x1F, f.sid & 7, f.index, f.reason,
           vtd_fault_reason_string(f.reason));
    vtd_clear_fault(f.slot);
    n_recorded++;
  }
  uint32_t after = vtd_read32(VTD_FSTS);
  bool ok = fe && f.valid && (f.fsts & VTD_FSTS_PPF) && f.reason == reason &&
            f.sid == sid && f.index == index && after == 0;
  reportf(name, ok,
          "fault event %d, FSTS 0x%x, record %d F=%d reason 0x%x sid 0x%x "
          "index 0x%x (want 0x%x 0x%x 0x%x), FSTS after clear 0x%x",
          fe, f.fsts, f.slot, f.valid, f.reason, f.sid, f.index, reason, sid,
          index, after);
  return ok;
}

/* ---- bring-up ---- */
static void bringup(void) {
  int eim_want = (int)cmdline_get_int("eim", 1);
  uint32_t ver = vtd_read32(VTD_VER);
  if (ver == 0 || ver == 0xFFFFFFFFu) {
    reportf("vtd_caps", false, "no VT-d unit at 0x%lx (VER reads 0x%x; boot "
            "with --device=intel-iommu)", (uint64_t)VTD_BASE, ver);
    report_exit();
  }
  uint64_t cap = vtd_read64(VTD_CAP), ecap = vtd_read64(VTD_ECAP);
  vtd_fro = VTD_CAP_FRO(cap);
  printf("vtd: ver 0x%x cap 0x%lx ecap 0x%lx: %d fault records at 0x%x, "
         "IOTLB regs at 0x%x, IR %d QI %d EIM %d PI %d\n",
         ver, cap, ecap, VTD_CAP_NFR(cap), vtd_fro, VTD_ECAP_IRO(ecap),
         !!(ecap & VTD_ECAP_IR), !!(ecap & VTD_ECAP_QI),
         !!(ecap & VTD_ECAP_EIM), !!(cap & VTD_CAP_PI));
  reportf("vtd_caps",
          ver == 0x10 && VTD_CAP_NFR(cap) == 8 && vtd_fro == 0x400 &&
              VTD_ECAP_IRO(ecap) == 0x200 && (ecap & VTD_ECAP_IR) &&
              (ecap & VTD_ECAP_QI) && !!(ecap & VTD_ECAP_EIM) == !!eim_want &&
              !(cap & VTD_CAP_PI),
          "ver 0x%x nfr %d fro 0x%x iro 0x%x ecap 0x%lx (want EIM %d)", ver,
          VTD_CAP_NFR(cap), vtd_fro, VTD_ECAP_IRO(ecap), ecap, eim_want);

  uint32_t g0 = vtd_read32(VTD_GSTS);
  /* 1. Queued invalidation (Linux dmar_enable_qi). */
  uint32_t g1 = vtd_qi_enable();
  uint64_t iqh1 = vtd_read64(VTD_IQH);
  /* 2. Interrupt remapping table pointer. */
  uint32_t g2 = vtd_set_irta((uint64_t)(uintptr_t)vtd_irt, false);
  uint64_t irta = vtd_read64(VTD_IRTA);
  /* 3. Global interrupt entry cache invalidation (qi_flush_iec). */
  bool iec = vtd_iec_global();
  uint64_t iqh = vtd_read64(VTD_IQH), iqt = vtd_read64(VTD_IQT);
  /* 4. Enable remapping. */
  uint32_t g3 = vtd_command(VTD_GCMD_IRE, true);
  uint32_t fsts = vtd_read32(VTD_FSTS);
  printf("vtd: GSTS 0x%08x -> QIE 0x%08x -> SIRTP 0x%08x -> IRE 0x%08x; IRTA "
         "0x%lx; IEC flush wait status %u, IQH 0x%lx IQT 0x%lx\n",
         g0, g1, g2, g3, irta, vtd_wait_status, iqh, iqt);
  /* Fault event interrupt (Linux dmar_set_interrupt): vector FE_VEC on
   * APIC 0, unmasked. */
  vtd_write32(VTD_FEDATA, FE_VEC);
  vtd_write32(VTD_FEADDR, MSI_ADDR(0));
  vtd_write32(VTD_FEUADDR, 0);
  vtd_write32(VTD_FECTL, 0);
  uint32_t fectl = vtd_read32(VTD_FECTL);
  reportf("vtd_bringup",
          g0 == 0 && g1 == VTD_GSTS_QIES && iqh1 == 0 &&
              g2 == (VTD_GSTS_QIES | VTD_GSTS_IRTPS) &&
              irta == ((uint64_t)(uintptr_t)vtd_irt | VTD_IRT_S) && iec &&
              iqh == 32 && iqt == 32 &&
              g3 == (VTD_GSTS_QIES | VTD_GSTS_IRES | VTD_GSTS_IRTPS) &&
              fsts == 0 && fectl == 0,
          "gsts 0x%x 0x%x 0x%x 0x%x iqh0 0x%lx irta 0x%lx iec %d iqh 0x%lx "
          "iqt 0x%lx fsts 0x%x fectl 0x%x",
          g0, g1, g2, g3, iqh1, irta, iec, iqh, iqt, fsts, fectl);
}

/* ---- cases=remap ---- */
static void level11_hook(int v, uint32_t n, int cpu) {
  (void)v; (void)n; (void)cpu;
  pc_testdev_line(11, false);
}
static void test_remap(void) {
  const int c2 = cpu_or0(2), c1 = cpu_or0(1), c3 = cpu_or0(3);
  /* Edge: pin 10 -> index 5 -> 0x41 on APIC 2. The RTE's vector field
   * (0x4f) is not what arrives. */
  irte(5, 0x41, c2, VTD_SID_IOAPIC, VTD_SQ_ALL, VTD_SVT_SID);
  rte_remap(10, 5, 0x4F, false);
  pulse(10);
  bool a = wait_total(0x41, 1);
  pulse(10);
  bool b = wait_total(0x41, 2);
  settle();
  reportf("vtd_remap_ioapic",
          a && b && total[0x41] == 2 && hits[c2][0x41] == 2 &&
              total[0x4F] == 0 && vtd_read32(VTD_FSTS) == 0,
          "0x41 total %u on cpu %d %u, 0x4f %u, FSTS 0x%x", total[0x41], c2,
          hits[c2][0x41], total[0x4F], vtd_read32(VTD_FSTS));
  printf("vtd_remap_ioapic: pin 10 index 5 -> vector 0x41 ran on cpu %d %u "
         "time(s)\n", c2, hits[c2][0x41]);

  /* Level: pin 11 -> index 7 -> 0x43 TM=1 on APIC 1. */
  struct vtd_irte_fields f = {.vector = 0x43, .dest = (uint32_t)c1,
                              .level = true, .sid = VTD_SID_IOAPIC,
                              .svt = VTD_SVT_SID};
  vtd_irte_set(7, &f);
  hooks[0x43] = level11_hook;
  rte_remap(11, 7, 0x43, true);
  pc_testdev_line(11, true);
  bool l = wait_total(0x43, 1);
  settle();
  uint32_t rte = ioapic_rte_lo(11);
  reportf("vtd_remap_ioapic_level",
          l && total[0x43] == 1 && hits[c1][0x43] == 1 &&
              !(rte & IOAPIC_RTE_REMOTE_IRR),
          "0x43 total %u on cpu %d %u, rte 0x%x", total[0x43], c1,
          hits[c1][0x43], rte);
  ioapic_mask(11);

  /* interrupt_index 0x80: bits 63:49 carry index[14:0]. */
  irte(0x80, 0x44, c3, 0, 0, VTD_SVT_NONE);
  rte_remap(12, 0x80, 0x44, false);
  pulse(12);
  bool c = wait_total(0x44, 1);
  settle();
  reportf("vtd_remap_index15", c && total[0x44] == 1 && hits[c3][0x44] == 1,
          "0x44 total %u on cpu %d %u", total[0x44], c3, hits[c3][0x44]);
  ioapic_mask(12);
  ioapic_mask(10);
}

/* ---- irqlab-testdev ---- */
#define TD_FIRE 0x04
#define TD_LAST_RESULT 0x18
static bool testdev_setup(void) {
  if (td_dev >= 0) return true;
  int devfn = pci_find_device(0x1337, 0x0001);
  if (devfn < 0) return false;
  td_dev = devfn >> 3;
  td_sid = (uint16_t)devfn; /* bus 0 */
  td_bar0 = pci_bar_address(td_dev, 0, 0);
  td_bar1 = pci_bar_address(td_dev, 0, 1);
  td_msi = pci_find_cap(td_dev, 0, PCI_CAP_ID_MSI);
  td_msix = pci_find_cap(td_dev, 0, PCI_CAP_ID_MSIX);
  uint16_t cmd = pci_cfg_read16(0, td_dev, 0, PCI_COMMAND);
  pci_cfg_write16(0, td_dev, 0, PCI_COMMAND,
                  cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  printf("vtd: irqlab-testdev at 00:%02x.0 (source id 0x%04x), MSI cap 0x%x, "
         "MSI-X cap 0x%x\n", td_dev, td_sid, td_msi, td_msix);
  return true;
}
static void td_fire(uint32_t n) { mmio_write32(td_bar0 + TD_FIRE, n); }
/* MSI (64-bit capability) with `mme` messages enabled. */
static void td_msi_program(uint32_t addr, uint16_t data, unsigned mme) {
  uint16_t ctl = pci_cfg_read16(0, td_dev, 0, td_msi + PCI_MSI_FLAGS);
  bool is64 = ctl & PCI_MSI_FLAGS_64BIT;
  pci_cfg_write16(0, td_dev, 0, td_msi + PCI_MSI_FLAGS,
                  ctl & ~(PCI_MSI_FLAGS_ENABLE | 0x70));
  pci_cfg_write32(0, td_dev, 0, td_msi + PCI_MSI_ADDRESS_LO, addr);
  if (is64) pci_cfg_write32(0, td_dev, 0, td_msi + PCI_MSI_ADDRESS_HI, 0);
  pci_cfg_write16(0, td_dev, 0, td_msi + PCI_MSI_DATA(is64), data);
  if (ctl & PCI_MSI_FLAGS_MASKBIT)
    pci_cfg_write32(0, td_dev, 0, td_msi + PCI_MSI_MASK(is64), 0);
  pci_cfg_write16(0, td_dev, 0, td_msi + PCI_MSI_FLAGS,
                  (ctl & ~0x70) | (uint16_t)(mme << PCI_MSI_FLAGS_MME_SHIFT) |
                      PCI_MSI_FLAGS_ENABLE);
}
static void td_msi_off(void) {
  uint16_t ctl = pci_cfg_read16(0, td_dev, 0, td_msi + PCI_MSI_FLAGS);
  pci_cfg_write16(0, td_dev, 0, td_msi + PCI_MSI_FLAGS,
                  ctl & ~PCI_MSI_FLAGS_ENABLE);
}

/* ---- cases=msi ---- */
static void test_msi(void) {
  if (!testdev_setup()) {
    report_skip("vtd_remap_msi", "irqlab-testdev not attached");
    return;
  }
  const int c2 = cpu_or0(2);
  irte(8, 0x51, c2, td_sid, VTD_SQ_ALL, VTD_SVT_SID);
  uint32_t addr = VTD_MSI_ADDR_REMAP(8, true);
  td_msi_program(addr, 0, 0);
  uint32_t rd = pci_cfg_read32(0, td_dev, 0, td_msi + PCI_MSI_ADDRESS_LO);
  td_fire(0);
  uint32_t res = mmio_read32(td_bar0 + TD_LAST_RESULT);
  bool got = wait_total(0x51, 1);
  settle();
  reportf("vtd_remap_msi",
          rd == addr && res == 0 && got && total[0x51] == 1 &&
              hits[c2][0x51] == 1 && vtd_read32(VTD_FSTS) == 0,
          "address 0x%x (read 0x%x) result %u 0x51 total %u on cpu %d %u "
          "FSTS 0x%x",
          addr, rd, res, total[0x51], c2, hits[c2][0x51],
          vtd_read32(VTD_FSTS));
  printf("vtd_remap_msi: address 0x%x data 0x0 -> index 8 -> vector 0x51 ran "
         "on cpu %d %u time(s)\n", addr, c2, hits[c2][0x51]);

  /* SHV = 0: the data (subhandle) is not added (5.1.2.2): index 8 again. */
  td_msi_program(VTD_MSI_ADDR_REMAP(8, false), 5, 0);
  td_fire(0);
  bool noshv = wait_total(0x51, 2);
  settle();
  reportf("vtd_remap_msi_noshv",
          noshv && total[0x51] == 2 && hits[c2][0x51] == 2 && total[0x56] == 0 &&
              vtd_read32(VTD_FSTS) == 0,
          "0x51 total %u FSTS 0x%x", total[0x51], vtd_read32(VTD_FSTS));

  /* Multi-message MSI: the device puts the message number in the low data
   * bits, i.e. the subhandle; index = handle + subhandle (5.1.2.2). */
  for (int n = 0; n < 4; n++)
    irte(16 + n, (uint8_t)(0x54 + n), cpu_or0(n), td_sid, VTD_SQ_ALL,
         VTD_SVT_SID);
  td_msi_program(VTD_MSI_ADDR_REMAP(16, true), 0, 2);
  bool ok = true;
  for (int n = 0; n < 4; n++) {
    td_fire((uint32_t)n);
    if (!wait_total(0x54 + n, 1)) ok = false;
  }
  settle();
  for (int n = 0; n < 4; n++) {
    if (total[0x54 + n] != 1 || hits[cpu_or0(n)][0x54 + n] != 1) ok = false;
    printf("vtd_remap_msi_multi: message %d -> index %d -> vector 0x%x ran on "
           "cpu %d %u time(s)\n", n, 16 + n, 0x54 + n, cpu_or0(n),
           hits[cpu_or0(n)][0x54 + n]);
  }
  reportf("vtd_remap_msi_multi", ok && vtd_read32(VTD_FSTS) == 0,
          "per-message counts wrong");
  td_msi_off();
}

/* ---- cases=faults ---- */
static void ioapic_fault(const char *name, int pin, uint16_t index,
                         uint8_t reason) {
  rte_remap(pin, index, 0x4E, false);
  pulse(pin);
  expect_fault(name, reason, VTD_SID_IOAPIC, index);
  ioapic_mask(pin);
}
static void test_faults(void) {
  const int pin = 15;
  uint32_t t0 = 0;
  for (int v = 0x40; v < 0xE0; v++) t0 += total[v];

  /* 0x20: MSI-X data bits 31:16 (MSI capability data is 16 bits wide). */
  if (testdev_setup() && td_msix) {
    irte(9, 0x58, 0, td_sid, VTD_SQ_ALL, VTD_SVT_SID);
    td_msi_off();
    uint64_t e0 = td_bar1; /* table entry 0 */
    mmio_write32(e0 + PCI_MSIX_ENTRY_ADDR_LO, VTD_MSI_ADDR_REMAP(9, true));
    mmio_write32(e0 + PCI_MSIX_ENTRY_ADDR_HI, 0);
    mmio_write32(e0 + PCI_MSIX_ENTRY_DATA, 0x00010000);
    mmio_write32(e0 + PCI_MSIX_ENTRY_CTRL, 0);
    uint32_t drd = mmio_read32(e0 + PCI_MSIX_ENTRY_DATA);
    pci_cfg_write16(0, td_dev, 0, td_msix + PCI_MSIX_FLAGS,
                    PCI_MSIX_FLAGS_ENABLE);
    td_fire(0);
    printf("vtd: MSI-X entry 0 data reads back 0x%x\n", drd);
    expect_fault("vtd_fault_20_msix_reserved_data", VTD_FR_REQ_RESERVED,
                 td_sid, 9);
    pci_cfg_write16(0, td_dev, 0, td_msix + PCI_MSIX_FLAGS, 0);
  } else {
    report_skip("vtd_fault_20_msix_reserved_data", "irqlab-testdev not attached");
  }

  /* 0x21: index beyond 2^(S+1) = 256. */
  ioapic_fault("vtd_fault_21_index", pin, 0x123, VTD_FR_INDEX_RANGE);
  /* interrupt_index[15] from RTE bit 11 and from MSI address bit 2. */
  ioapic_fault("vtd_fault_21_index_bit15", pin, 0x8005, VTD_FR_INDEX_RANGE);
  if (testdev_setup()) {
    td_msi_program(VTD_MSI_ADDR_REMAP(0x8008, true), 0, 0);
    td_fire(0);
    expect_fault("vtd_fault_21_msi_handle15", VTD_FR_INDEX_RANGE, td_sid,
                 0x8008);
    td_msi_off();
  }
  /* 0x22: not present. */
  vtd_irte_set_raw(20, 0, 0);
  ioapic_fault("vtd_fault_22_not_present", pin, 20, VTD_FR_NOT_PRESENT);

  /* 0x23: the table is not in memory. */
  vtd_set_irta(0x80000000ull, false);
  bool flushed = vtd_iec_global();
  irte(3, 0x4D, 0, 0, 0, 0); /* a valid entry, but in the real table */
  ioapic_fault("vtd_fault_23_irta", pin, 3, VTD_FR_TABLE_ACCESS);
  uint32_t g = vtd_set_irta((uint64_t)(uintptr_t)vtd_irt, false);
  flushed = vtd_iec_global() && flushed;
  irte(5, 0x41, cpu_or0(2), VTD_SID_IOAPIC, VTD_SQ_ALL, VTD_SVT_SID);
  uint32_t before = total[0x41];
  rte_remap(pin, 5, 0x4F, false);
  pulse(pin);
  bool again = wait_total(0x41, before + 1);
  ioapic_mask(pin);
  reportf("vtd_remap_after_23", flushed && again && (g & VTD_GSTS_IRES),
          "flush %d delivered %d gsts 0x%x", flushed, again, g);

  /* 0x24: reserved IRTE bits. */
  {
    struct vtd_irte_fields f = {.vector = 0x4C, .dest = 0};
    uint64_t lo, hi;
    vtd_irte_encode(&f, &lo, &hi);
    vtd_irte_set_raw(21, lo | (1ull << 12), hi);
    ioapic_fault("vtd_fault_24_reserved", pin, 21, VTD_FR_IRTE_RESERVED);
    vtd_irte_set_raw(29, lo | (1ull << 32), hi); /* DST 39:32, EIME=0 */
    ioapic_fault("vtd_fault_24_reserved_dst", pin, 29, VTD_FR_IRTE_RESERVED);
    vtd_irte_set_raw(28, lo | (1ull << 15), hi); /* IM=1, CAP.PI = 0 */
    ioapic_fault("vtd_fault_24_posted_without_pi", pin, 28,
                 VTD_FR_IRTE_RESERVED);
  }

  /* 0x25: compatibility format while IRE=1, CFI=0. */
  ioapic_rte_set(pin, 0, 0x46);
  pulse(pin);
  expect_fault("vtd_fault_25_compat_ioapic", VTD_FR_COMPAT_BLOCKED,
               VTD_SID_IOAPIC, 0);
  ioapic_mask(pin);
  if (testdev_setup()) {
    td_msi_program(MSI_ADDR(0), 0x47, 0);
    td_fire(0);
    expect_fault("vtd_fault_25_compat_msi", VTD_FR_COMPAT_BLOCKED, td_sid, 0);
    td_msi_off();
  }

  /* 0x26: source-id verification. */
  irte(22, 0x4B, 0, VTD_SID(0xF0, 0x1F, 1), VTD_SQ_ALL, VTD_SVT_SID);
  ioapic_fault("vtd_fault_26_sid", pin, 22, VTD_FR_SID);
  irte(23, 0x4B, 0, 0x0010 /* buses 0x00..0x10 */, 0, VTD_SVT_BUS);
  ioapic_fault("vtd_fault_26_bus", pin, 23, VTD_FR_SID);
  /* ...and what passes it: SQ=3 ignores function bits 2:0; bus range. */
  irte(24, 0x49, 0, VTD_SID(0xF0, 0x1F, 3), 3, VTD_SVT_SID);
  irte(25, 0x4A, 0, 0xF0F0, 0, VTD_SVT_BUS);
  rte_remap(pin, 24, 0x49, false);
  pulse(pin);
  bool s1 = wait_total(0x49, 1);
  rte_remap(pin, 25, 0x4A, false);
  pulse(pin);
  bool s2 = wait_total(0x4A, 1);
  ioapic_mask(pin);
  reportf("vtd_sid_ok", s1 && s2 && vtd_read32(VTD_FSTS) == 0,
          "sq=3 %d bus range %d FSTS 0x%x", s1, s2, vtd_read32(VTD_FSTS));

  /* FPD: qualified faults (0x22, 0x26) are not recorded. */
  vtd_irte_set_raw(26, 2 /* FPD, P=0 */, 0);
  {
    struct vtd_irte_fields f = {.vector = 0x48, .dest = 0, .fpd = true,
                                .sid = VTD_SID(0xF0, 0x1F, 1),
                                .svt = VTD_SVT_SID};
    vtd_irte_set(27, &f);
  }
  rte_remap(pin, 26, 0x48, false);
  pulse(pin);
  rte_remap(pin, 27, 0x48, false);
  pulse(pin);
  settle();
  ioapic_mask(pin);
  uint32_t fsts = vtd_read32(VTD_FSTS);
  reportf("vtd_fpd",
          fsts == 0 && total[0x48] == 0 && total[FE_VEC] == (uint32_t)fe_expected,
          "FSTS 0x%x 0x48 %u fault events %u (want %d)", fsts, total[0x48],
          total[FE_VEC], fe_expected);

  /* Nothing that faulted was delivered: only the three good deliveries. */
  uint32_t t1 = 0;
  for (int v = 0x40; v < 0xE0; v++) t1 += total[v];
  reportf("vtd_fault_event_count",
          total[FE_VEC] == (uint32_t)n_recorded && t1 - t0 == 3,
          "fault events %u recorded %d other interrupts %u (want 3)",
          total[FE_VEC], n_recorded, t1 - t0);
  printf("vtd: %d faults recorded, %u fault events\n", n_recorded,
         total[FE_VEC]);

  /* FECTL.IM: held while masked, sent on unmask; serviced while masked ->
   * IP cleared, nothing sent. */
  vtd_write32(VTD_FECTL, VTD_FECTL_IM);
  rte_remap(pin, 20, 0x4E, false);
  pulse(pin);
  settle();
  uint32_t fectl1 = vtd_read32(VTD_FECTL), fe1 = total[FE_VEC];
  vtd_write32(VTD_FECTL, 0);
  fe_expected++;
  bool sent = wait_total(FE_VEC, (uint32_t)fe_expected);
  struct vtd_fault f1 = vtd_read_fault();
  vtd_clear_fault(f1.slot);
  vtd_write32(VTD_FECTL, VTD_FECTL_IM);
  pulse(pin);
  uint32_t fectl2 = vtd_read32(VTD_FECTL);
  struct vtd_fault f2 = vtd_read_fault();
  vtd_clear_fault(f2.slot);
  uint32_t fectl3 = vtd_read32(VTD_FECTL);
  vtd_write32(VTD_FECTL, 0);
  settle();
  ioapic_mask(pin);
  reportf("vtd_fault_event_masked",
          fectl1 == (VTD_FECTL_IM | VTD_FECTL_IP) && fe1 == (uint32_t)fe_expected - 1 &&
              sent && f1.valid && f1.reason == VTD_FR_NOT_PRESENT &&
              fectl2 == (VTD_FECTL_IM | VTD_FECTL_IP) && f2.valid &&
              fectl3 == VTD_FECTL_IM && total[FE_VEC] == (uint32_t)fe_expected &&
              vtd_read32(VTD_FSTS) == 0,
          "fectl 0x%x events %u sent-on-unmask %d; fectl 0x%x -> 0x%x after "
          "clear, events %u (want %d)",
          fectl1, fe1, sent, fectl2, fectl3, total[FE_VEC], fe_expected);

  /* 7.2.1: with every record full the next fault sets PFO and is lost.
   * Events masked; servicing every status clears IP without a message. */
  vtd_write32(VTD_FECTL, VTD_FECTL_IM);
  int nfr = VTD_CAP_NFR(vtd_read64(VTD_CAP));
  rte_remap(pin, 20, 0x4E, false);
  for (int i = 0; i <= nfr; i++) pulse(pin);
  ioapic_mask(pin);
  uint32_t fs_full = vtd_read32(VTD_FSTS), fectl_full = vtd_read32(VTD_FECTL);
  int full = 0;
  for (int i = 0; i < nfr; i++) {
    uint64_t hi = vtd_read64(vtd_fro + 16 * i + 8);
    if ((hi >> 63) && (uint8_t)(hi >> 32) == VTD_FR_NOT_PRESENT) full++;
    vtd_clear_fault(i);
  }
  uint32_t fs_cleared = vtd_read32(VTD_FSTS);
  vtd_write32(VTD_FSTS, VTD_FSTS_PFO);
  uint32_t fs_end = vtd_read32(VTD_FSTS), fectl_end = vtd_read32(VTD_FECTL);
  vtd_write32(VTD_FECTL, 0);
  settle();
  reportf("vtd_fault_overflow",
          (fs_full & (VTD_FSTS_PFO | VTD_FSTS_PPF)) ==
                  (VTD_FSTS_PFO | VTD_FSTS_PPF) &&
              fectl_full == (VTD_FECTL_IM | VTD_FECTL_IP) && full == nfr &&
              fs_cleared == VTD_FSTS_PFO && fs_end == 0 &&
              fectl_end == VTD_FECTL_IM && total[FE_VEC] == (uint32_t)fe_expected,
          "FSTS 0x%x FECTL 0x%x records %d/%d, after F cleared 0x%x, after "
          "PFO cleared 0x%x FECTL 0x%x, events %u (want %d)",
          fs_full, fectl_full, full, nfr, fs_cleared, fs_end, fectl_end,
          total[FE_VEC], fe_expected);
}

/* ---- cases=iec ---- */
static void test_iec(void) {
  const int pin = 13, idx = 30, c1 = cpu_or0(1), c2 = cpu_or0(2);
  irte(idx, 0x60, c1, VTD_SID_IOAPIC, VTD_SQ_ALL, VTD_SVT_SID);
  rte_remap(pin, idx, 0x60, false);
  pulse(pin);
  bool a = wait_total(0x60, 1);
  /* Rewrite the vector in memory only. */
  irte(idx, 0x61, c1, VTD_SID_IOAPIC, VTD_SQ_ALL, VTD_SVT_SID);
  pulse(pin);
  bool b = wait_total(0x60, 2);
  settle();
  uint32_t stale61 = total[0x61];
  bool inv = vtd_iec_index(idx, 0);
  pulse(pin);
  bool c = wait_total(0x61, 1);
  settle();
  reportf("vtd_iec_stale",
          a && b && stale61 == 0 && inv && c && total[0x60] == 2 &&
              total[0x61] == 1 && hits[c1][0x60] == 2 && hits[c1][0x61] == 1,
          "0x60 %u (want 2, stale) 0x61 before invalidation %u after %u",
          total[0x60], stale61, total[0x61]);
  printf("vtd_iec_stale: IRTE %d rewritten 0x60 -> 0x61 without invalidation: "
         "0x60 delivered %u time(s); after index-selective invalidation: 0x61 "
         "%u time(s)\n", idx, total[0x60], total[0x61]);

  /* Index-selective with a mask: index 31 mask 0 misses 30; mask 1 hits. */
  irte(idx, 0x62, c1, VTD_SID_IOAPIC, VTD_SQ_ALL, VTD_SVT_SID);
  bool i31 = vtd_iec_index(31, 0);
  pulse(pin);
  bool d = wait_total(0x61, 2);
  bool i31m = vtd_iec_index(31, 1);
  pulse(pin);
  bool e = wait_total(0x62, 1);
  settle();
  reportf("vtd_iec_selective",
          i31 && d && i31m && e && total[0x61] == 2 && total[0x62] == 1,
          "0x61 %u (want 2) 0x62 %u (want 1)", total[0x61], total[0x62]);

  /* Global, with a new destination too. */
  irte(idx, 0x63, c2, VTD_SID_IOAPIC, VTD_SQ_ALL, VTD_SVT_SID);
  pulse(pin);
  bool f = wait_total(0x62, 2);
  bool gl = vtd_iec_global();
  pulse(pin);
  bool g = wait_total(0x63, 1);
  settle();
  ioapic_mask(pin);
  reportf("vtd_iec_global",
          f && gl && g && hits[c1][0x62] == 2 && total[0x63] == 1 &&
              hits[c2][0x63] == 1 && vtd_read32(VTD_FSTS) == 0,
          "0x62 on cpu %d %u (want 2) 0x63 on cpu %d %u (want 1)", c1,
          hits[c1][0x62], c2, hits[c2][0x63]);
}

/* ---- cases=msistale ---- */
static void test_msi_stale(void) {
  if (!testdev_setup()) {
    report_skip("vtd_msi_stale", "irqlab-testdev not attached");
    return;
  }
  const int idx = 40, c1 = cpu_or0(1);
  irte(idx, 0x64, c1, td_sid, VTD_SQ_ALL, VTD_SVT_SID);
  vtd_iec_index(idx, 0);
  td_msi_program(VTD_MSI_ADDR_REMAP(idx, true), 0, 0);
  td_fire(0);
  bool a = wait_total(0x64, 1);
  irte(idx, 0x65, c1, td_sid, VTD_SQ_ALL, VTD_SVT_SID); /* memory only */
  td_fire(0);
  bool b = wait_total(0x64, 2);
  settle();
  uint32_t stale65 = total[0x65];
  bool inv = vtd_iec_index(idx, 0);
  td_fire(0);
  bool c = wait_total(0x65, 1);
  settle();
  reportf("vtd_msi_stale",
          a && b && stale65 == 0 && inv && c && total[0x64] == 2 &&
              total[0x65] == 1 && hits[c1][0x65] == 1,
          "0x64 %u (want 2, stale) 0x65 before invalidation %u after %u",
          total[0x64], stale65, total[0x65]);
  printf("vtd_msi_stale: IRTE %d rewritten 0x64 -> 0x65 without invalidation: "
         "0x64 delivered %u time(s); after index-selective invalidation: 0x65 "
         "%u time(s)\n", idx, total[0x64], total[0x65]);

  vtd_irt[idx].lo = 0; /* not present */
  vtd_irt[idx].hi = 0;
  __asm__ volatile("" ::: "memory");
  vtd_iec_index(idx, 0);
  td_fire(0);
  expect_fault("vtd_msi_fault_at_delivery", VTD_FR_NOT_PRESENT, td_sid,
               (uint16_t)idx);

  irte(idx, 0x66, c1, td_sid, VTD_SQ_ALL, VTD_SVT_SID);
  vtd_iec_index(idx, 0);
  td_fire(0);
  bool d = wait_total(0x66, 1);
  settle();
  reportf("vtd_msi_restored",
          d && total[0x65] == 1 && total[0x66] == 1 && vtd_read32(VTD_FSTS) == 0,
          "0x65 %u 0x66 %u FSTS 0x%x", total[0x65], total[0x66],
          vtd_read32(VTD_FSTS));
  td_msi_off();
}

/* ---- cases=cfi ---- */
static void test_cfi(void) {
  const int pin = 14, c1 = cpu_or0(1), c2 = cpu_or0(2), c3 = cpu_or0(3);
  ioapic_rte_set(pin, (uint32_t)c1, 0x70);
  pulse(pin);
  expect_fault("vtd_cfi_blocked", VTD_FR_COMPAT_BLOCKED, VTD_SID_IOAPIC, 0);

  uint32_t g = vtd_command(VTD_GCMD_CFI, true);
  pulse(pin);
  bool a = wait_total(0x70, 1);
  bool b = true;
  if (testdev_setup()) {
    td_msi_program(MSI_ADDR(c3), 0x71, 0);
    td_fire(0);
    b = wait_total(0x71, 1) && hits[c3][0x71] == 1;
    td_msi_off();
  }
  irte(5, 0x41, c2, VTD_SID_IOAPIC, VTD_SQ_ALL, VTD_SVT_SID);
  uint32_t before = hits[c2][0x41];
  rte_remap(10, 5, 0x4F, false);
  pulse(10);
  bool r = wait_total(0x41, total[0x41] + 1) && hits[c2][0x41] == before + 1;
  ioapic_mask(10);
  settle();
  reportf("vtd_cfi_pass",
          (g & VTD_GSTS_CFIS) && (g & VTD_GSTS_IRES) && a &&
              hits[c1][0x70] == 1 && b && r && vtd_read32(VTD_FSTS) == 0,
          "gsts 0x%x 0x70 on cpu %d %u compat msi %d remapped %d FSTS 0x%x", g,
          c1, hits[c1][0x70], b, r, vtd_read32(VTD_FSTS));

  if (vtd_read64(VTD_ECAP) & VTD_ECAP_EIM) {
    /* 11.4.4.1: CFI has no effect while IRTA.EIME = 1. */
    vtd_set_irta((uint64_t)(uintptr_t)vtd_irt, true);
    vtd_iec_global();
    uint32_t ge = vtd_read32(VTD_GSTS);
    pulse(pin);
    bool ok = expect_fault("vtd_cfi_eime_fault", VTD_FR_COMPAT_BLOCKED,
                           VTD_SID_IOAPIC, 0);
    vtd_set_irta((uint64_t)(uintptr_t)vtd_irt, false);
    vtd_iec_global();
    reportf("vtd_cfi_eime", ok && (ge & VTD_GSTS_CFIS) && total[0x70] == 1,
            "gsts 0x%x 0x70 %u", ge, total[0x70]);
  } else {
    report_skip("vtd_cfi_eime", "ECAP.EIM = 0");
  }

  uint32_t g2 = vtd_command(VTD_GCMD_CFI, false);
  pulse(pin);
  bool off = expect_fault("vtd_cfi_off_fault", VTD_FR_COMPAT_BLOCKED,
                          VTD_SID_IOAPIC, 0);
  settle();
  ioapic_mask(pin);
  reportf("vtd_cfi_off", off && !(g2 & VTD_GSTS_CFIS) && total[0x70] == 1,
          "gsts 0x%x 0x70 %u", g2, total[0x70]);
}

int main(void) {
  ncpus = fw_cfg_cpu_count();
  if (ncpus > NCPU_MAX) ncpus = NCPU_MAX;
  settle_loops = (uint64_t)cmdline_get_int("settle", 20000);
  cmdline_get_str("cases", cases_buf, sizeof(cases_buf));
  for (int v = 0x40; v <= 0xEF; v++) irq_set_handler(v, on_irq);
  if (ncpus > 1) {
    int up = smp_start_aps(ncpus, ap_main, 20000000);
    printf("vtd: %d CPUs, %d APs up\n", ncpus, up);
    if (up != ncpus - 1) panic("only %d of %d APs started", up, ncpus - 1);
  } else {
    printf("vtd: 1 CPU\n");
  }
  bringup();
  if (want("remap")) test_remap();
  if (want("msi")) test_msi();
  if (want("faults")) test_faults();
  if (want("iec")) test_iec();
  if (want("cfi")) test_cfi();
  if (want("msistale")) test_msi_stale();
  report_exit();
}
