/* KERNEL-DESCRIPTION: Intel VT-d bring-up through the guest library (vtd_ir_enable, the cfi= boot option: compatibility MSI delivered or fault 0x25) and device-TLB invalidation completion errors (ITE time-out, ICE invalid completion) */
/*
 * vtd_qi: brings the VT-d unit at 0xFED90000 up the way Linux does, with
 * the guest library's vtd_ir_enable() (runtime/vtd.h), which applies the
 * `--device=intel-iommu,cfi=on|off` option (irqlab.vtd_cfi=1|0 on the
 * command line: GCMD.CFI set right after GCMD.IRE, or left clear as
 * Linux's iommu_set_irq_remapping() does). One vCPU; xAPIC (IRTA.EIME=0).
 * Fault events: FEDATA = 0xE0 to APIC 0. Helpers: runtime/vtd.h.
 *
 * Always:
 *   vtd_qi_bringup   QIE, IRTA + SIRTP, global IEC invalidation, IRE (+ CFI
 *                    with irqlab.vtd_cfi=1): GSTS == QIES|IRES|IRTPS
 *                    (|CFIS), FSTS 0
 * cases=compat (needs irqlab-testdev): a compatibility-format MSI (address
 * 0xFEE00000, vector 0x71) from the testdev:
 *   vtd_compat_msi_delivered  with CFIS=1 (11.4.4.1): 0x71 on CPU 0 once,
 *                    FSTS 0, no fault event
 *   vtd_compat_msi_blocked    with CFIS=0 (5.1.4): fault 0x25, the testdev's
 *                    source id, index 0, one fault event, printed as Linux
 *                    does; nothing delivered
 * cases=devtlb: a device-TLB invalidation descriptor for 00:03.0 followed
 * by an invalidation wait (Linux's qi_flush_dev_iotlb + qi_submit_sync);
 * `devtlb=` on the command line says how the unit was configured:
 *   off            vtd_devtlb_accepted   ECAP.DT=0: the wait completes,
 *                  FSTS 0
 *   on             vtd_devtlb_completed  ECAP.DT=1: the wait completes,
 *                  FSTS 0
 *   noanswer       vtd_devtlb_ite        ECAP.DT=1, no completion: FSTS ==
 *                  ITE, IQERCD.ITESID == 00:03.0, the wait aborted (status
 *                  not written, ICS.IWC clear), IQH == IQT (past the wait),
 *                  one fault event; Linux's qi_dump_fault() lines
 *                  vtd_devtlb_ite_resume a wait queued while ITE is set is
 *                  not fetched (IQH unchanged, status not written); writing
 *                  1 to FSTS.ITE resumes the queue: the wait completes,
 *                  FSTS 0, IQERCD 0
 *   badcompletion  vtd_devtlb_ice        ECAP.DT=1, a completion from the
 *                  wrong function: the wait completes, FSTS == ICE,
 *                  IQERCD.ICESID == 00:03.7, one fault event; ICE cleared
 *                  -> FSTS 0
 *
 * Options: cases=compat,devtlb (default both); devtlb=off|on|noanswer|
 * badcompletion (default off).
 */
#include "runtime.h"
#include "irq_counter.h"
#include "pci.h"
#include "vtd.h"

#define FE_VEC 0xE0
static char cases_buf[64];

static bool want(const char *name) { return cmdline_list_wants(cases_buf, name); }

static void bringup(void) {
  uint32_t ver = vtd_read32(VTD_VER);
  if (ver == 0 || ver == 0xFFFFFFFFu) {
    reportf("vtd_qi_bringup", false, "no VT-d unit at 0x%lx (VER reads 0x%x; "
            "boot with --device=intel-iommu)", (uint64_t)VTD_BASE, ver);
    report_exit();
  }
  vtd_fro = VTD_CAP_FRO(vtd_read64(VTD_CAP));
  uint32_t g1 = vtd_qi_enable();
  uint32_t g2 = vtd_set_irta((uint64_t)(uintptr_t)vtd_irt, false);
  bool iec = vtd_iec_global();
  uint32_t g3 = vtd_ir_enable();
  vtd_write32(VTD_FEDATA, FE_VEC);
  vtd_write32(VTD_FEADDR, MSI_ADDR(0));
  vtd_write32(VTD_FEUADDR, 0);
  vtd_write32(VTD_FECTL, 0);
  bool cfi = cmdline_get_int("irqlab.vtd_cfi", 0) != 0;
  uint32_t want_gsts = VTD_GSTS_QIES | VTD_GSTS_IRES | VTD_GSTS_IRTPS |
                       (cfi ? VTD_GSTS_CFIS : 0);
  uint32_t fsts = vtd_read32(VTD_FSTS);
  printf("vtd_qi: GSTS 0x%08x after IRE (irqlab.vtd_cfi=%d), ECAP 0x%lx\n", g3,
         cfi, vtd_read64(VTD_ECAP));
  reportf("vtd_qi_bringup",
          g1 == VTD_GSTS_QIES && (g2 & VTD_GSTS_IRTPS) && iec &&
              g3 == want_gsts && fsts == 0,
          "gsts 0x%x 0x%x 0x%x (want 0x%x) iec %d fsts 0x%x", g1, g2, g3,
          want_gsts, iec, fsts);
}

/* ---- cases=compat ---- */
#define TD_FIRE 0x04
static void test_compat(void) {
  int devfn = pci_find_device(0x1337, 0x0001);
  if (devfn < 0) {
    report_skip("vtd_compat_msi", "irqlab-testdev not attached");
    return;
  }
  int dev = devfn >> 3;
  uint16_t sid = (uint16_t)devfn; /* bus 0 */
  uint64_t bar0 = pci_bar_address(dev, 0, 0);
  int msi = pci_find_cap(dev, 0, PCI_CAP_ID_MSI);
  uint16_t cmd = pci_cfg_read16(0, dev, 0, PCI_COMMAND);
  pci_cfg_write16(0, dev, 0, PCI_COMMAND,
                  cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  uint16_t ctl = pci_cfg_read16(0, dev, 0, msi + PCI_MSI_FLAGS);
  bool is64 = ctl & PCI_MSI_FLAGS_64BIT;
  pci_cfg_write32(0, dev, 0, msi + PCI_MSI_ADDRESS_LO, MSI_ADDR(0));
  if (is64) pci_cfg_write32(0, dev, 0, msi + PCI_MSI_ADDRESS_HI, 0);
  pci_cfg_write16(0, dev, 0, msi + PCI_MSI_DATA(is64), 0x71);
  if (ctl & PCI_MSI_FLAGS_MASKBIT)
    pci_cfg_write32(0, dev, 0, msi + PCI_MSI_MASK(is64), 0);
  pci_cfg_write16(0, dev, 0, msi + PCI_MSI_FLAGS,
                  (ctl & ~0x70) | PCI_MSI_FLAGS_ENABLE);

  uint32_t gsts = vtd_read32(VTD_GSTS);
  mmio_write32(bar0 + TD_FIRE, 0);
  if (gsts & VTD_GSTS_CFIS) {
    bool got = wait_total(0x71, 1);
    settle();
    uint32_t fsts = vtd_read32(VTD_FSTS);
    printf("vtd_qi: compatibility MSI 0xfee00000/0x71 from %02x:%02x.%d with "
           "CFIS=1: vector 0x71 ran %u time(s) on cpu 0\n",
           sid >> 8, (sid >> 3) & 0x1F, sid & 7, hits[0][0x71]);
    reportf("vtd_compat_msi_delivered",
            got && total[0x71] == 1 && hits[0][0x71] == 1 && fsts == 0 &&
                total[FE_VEC] == 0,
            "0x71 %u fsts 0x%x fault events %u", total[0x71], fsts,
            total[FE_VEC]);
  } else {
    bool fe = wait_total(FE_VEC, 1);
    struct vtd_fault f = vtd_read_fault();
    if (f.valid) {
      vtd_print_ir_fault(&f);
      vtd_clear_fault(f.slot);
    }
    settle();
    uint32_t after = vtd_read32(VTD_FSTS);
    reportf("vtd_compat_msi_blocked",
            fe && f.valid && f.reason == VTD_FR_COMPAT_BLOCKED && f.sid == sid &&
                f.index == 0 && after == 0 && total[0x71] == 0 &&
                total[FE_VEC] == 1,
            "fault event %d record F=%d reason 0x%x sid 0x%x index 0x%x, FSTS "
            "after clear 0x%x, 0x71 %u", fe, f.valid, f.reason, f.sid,
            f.index, after, total[0x71]);
  }
  pci_cfg_write16(0, dev, 0, msi + PCI_MSI_FLAGS, ctl & ~PCI_MSI_FLAGS_ENABLE);
}

/* ---- cases=devtlb ---- */
static volatile uint32_t resume_status __attribute__((aligned(8)));
static void test_devtlb(void) {
  char mode[16] = "off";
  cmdline_get_str("devtlb", mode, sizeof(mode));
  const uint16_t sid = VTD_SID(0, 3, 0);
  bool dt = (vtd_read64(VTD_ECAP) & VTD_ECAP_DT) != 0;
  uint32_t fe0 = total[FE_VEC];
  bool ok = vtd_qi_devtlb(sid);
  uint32_t fsts = vtd_read32(VTD_FSTS);
  uint64_t iqer = vtd_read64(VTD_IQERCD);
  uint64_t iqh = vtd_read64(VTD_IQH), iqt = vtd_read64(VTD_IQT);
  uint32_t ics = vtd_read32(VTD_ICS);
  uint32_t status = vtd_wait_status, seq = vtd_wait_seq;
  if (fsts & (VTD_FSTS_IQE | VTD_FSTS_ITE | VTD_FSTS_ICE))
    vtd_qi_dump_fault(fsts);
  bool fe = wait_total(FE_VEC, fe0 + 1);
  settle();
  uint32_t events = total[FE_VEC] - fe0;

  if (strcmp(mode, "noanswer") == 0) {
    reportf("vtd_devtlb_ite",
            dt && !ok && fsts == VTD_FSTS_ITE && VTD_IQER_ITESID(iqer) == sid &&
                status == 0 && ics == 0 && iqh == iqt && fe && events == 1,
            "ECAP.DT %d submit %d FSTS 0x%x IQERCD 0x%lx wait status %u (seq "
            "%u) ICS 0x%x IQH 0x%lx IQT 0x%lx fault events %u",
            dt, ok, fsts, iqer, status, seq, ics, iqh, iqt, events);
    /* While ITE is set no descriptor is fetched (6.5.2.10). */
    resume_status = 0;
    vtd_qi_put(VTD_QI_WAIT_SW(0x5E), (uint64_t)(uintptr_t)&resume_status);
    __asm__ volatile("" ::: "memory");
    vtd_write64(VTD_IQT, vtd_qtail);
    settle();
    uint64_t iqh_held = vtd_read64(VTD_IQH);
    uint32_t held = resume_status;
    /* Linux's qi_check_fault(): clear ITE; the queue resumes at IQH. */
    vtd_write32(VTD_FSTS, VTD_FSTS_ITE);
    printf("DMAR: Invalidation Time-out Error (ITE) cleared\n");
    for (int i = 0; i < 100000 && resume_status != 0x5E; i++) cpu_relax();
    uint32_t fsts2 = vtd_read32(VTD_FSTS);
    uint64_t iqer2 = vtd_read64(VTD_IQERCD);
    uint64_t iqh2 = vtd_read64(VTD_IQH);
    reportf("vtd_devtlb_ite_resume",
            held == 0 && iqh_held == iqh && resume_status == 0x5E &&
                fsts2 == 0 && iqer2 == 0 && iqh2 == vtd_qtail,
            "while ITE: IQH 0x%lx status 0x%x; after clearing: status 0x%x "
            "FSTS 0x%x IQERCD 0x%lx IQH 0x%lx (IQT 0x%x)",
            iqh_held, held, resume_status, fsts2, iqer2, iqh2, vtd_qtail);
  } else if (strcmp(mode, "badcompletion") == 0) {
    const uint16_t bad = VTD_SID(0, 3, 7);
    vtd_write32(VTD_FSTS, VTD_FSTS_ICE);
    printf("DMAR: Invalidation Completion Error (ICE) cleared\n");
    uint32_t fsts2 = vtd_read32(VTD_FSTS);
    reportf("vtd_devtlb_ice",
            dt && ok && fsts == VTD_FSTS_ICE && VTD_IQER_ICESID(iqer) == bad &&
                status == seq && iqh == iqt && fe && events == 1 &&
                fsts2 == 0 && vtd_read64(VTD_IQERCD) == 0,
            "ECAP.DT %d submit %d FSTS 0x%x IQERCD 0x%lx wait status %u "
            "(seq %u) fault events %u, FSTS after clear 0x%x",
            dt, ok, fsts, iqer, status, seq, events, fsts2);
  } else {
    const bool on = strcmp(mode, "on") == 0;
    reportf(on ? "vtd_devtlb_completed" : "vtd_devtlb_accepted",
            dt == on && ok && fsts == 0 && status == seq && iqh == iqt &&
                events == 0,
            "ECAP.DT %d submit %d FSTS 0x%x wait status %u (seq %u) fault "
            "events %u", dt, ok, fsts, status, seq, events);
  }
}

int main(void) {
  ncpus = 1;
  (void)ap_main; /* one vCPU: no APs to park */
  settle_loops = (uint64_t)cmdline_get_int("settle", 20000);
  cmdline_get_str("cases", cases_buf, sizeof(cases_buf));
  for (int v = 0x40; v <= 0xEF; v++) irq_set_handler(v, on_irq);
  bringup();
  if (want("compat")) test_compat();
  if (want("devtlb")) test_devtlb();
  report_exit();
}
