/* KERNEL-DESCRIPTION: PCI from the guest: enumeration via 0xCF8/0xCFC, BARs, INTERRUPT_LINE, edu (MMIO, INTx, MSI) and irqlab-testdev (multi-message MSI, MSI masking, MSI-X table, masks, PBA) */
/*
 * pci: drives the PCI layer the way an OS does, through configuration
 * mechanism #1 (0xCF8/0xCFC) and the devices' BARs. Interrupts are counted
 * per (CPU, vector) by one handler (the runtime EOIs the local APIC).
 *
 * Tests (each prints PASS/FAIL: <name>; device tests SKIP when the device
 * is not attached):
 *   pci_enum              bus 0 scan; host bridge 8086:29C0 class 060000 at
 *                         00:00.0; byte/word config reads agree with dword
 *                         reads; an absent function reads all-ones
 *   pci_edu_config        edu 1234:11E8 found; BAR0 assigned, sized 1 MiB
 *                         (write all-ones, read back); Interrupt Pin 1 and
 *                         INTERRUPT_LINE = 16 + ((dev + pin - 1) % 4); the
 *                         firmware enabled memory decode but not bus master
 *   pci_edu_mmio          id 0x010000ED, liveness reads back ~written,
 *                         factorial 5 -> 120
 *   pci_edu_intx          RTE[INTERRUPT_LINE] level, active high, vector
 *                         0x50: raise (0x60) -> one interrupt; the handler
 *                         reads 0x24 and acks (0x64) before the EOI -> no
 *                         retrigger. Command.InterruptDisable holds INTx
 *                         back (Status.Interrupt still set), clearing it
 *                         delivers. INTx needs no bus master.
 *   pci_edu_msi_blocked   MSI enabled (vector 0x51) but bus master off: the
 *                         raise is dropped, and INTx stays quiet
 *   pci_edu_msi           bus master on: one raise per CPU with destination
 *                         APIC id k runs the handler on CPU k; 3 more to
 *                         CPU 0 -> exactly ncpus + 3 interrupts on 0x51
 *   pci_testdev_config    1337:0001; BAR0/1 32-bit memory, BAR2 64-bit
 *                         prefetchable, BAR4 I/O; the id register reads
 *                         0x54515249 through BAR0 and through BAR4;
 *                         INTERRUPT_LINE per the routing rule
 *   pci_testdev_intx      FIRE with neither MSI nor MSI-X enabled raises
 *                         INTx (mode 0, result 5) -> vector 0x52 once
 *   pci_testdev_msi_multi MSI MMC = 5 (32 vectors), 64-bit, per-vector
 *                         masking; MME 7 is clamped to 5; with MME = 5 and
 *                         data 0x60, FIRE n -> vector 0x60 + n for n = 0..31,
 *                         each exactly once; with MME = 3 FIRE 9 -> 0x61
 *   pci_testdev_msi_mask  Mask Bits bit 3: FIRE 3 -> no interrupt, result 1
 *                         (pending), Pending Bits bit 3 set; clearing the
 *                         mask bit delivers 0x63 and clears the pending bit
 *   pci_testdev_msix      MSI-X (MSI disabled): table size 64, table BAR1+0,
 *                         PBA BAR1+0x800; entries read back as programmed
 *                         and reset masked; entry i -> vector 0x80 + i on
 *                         APIC i % ncpus; FIRE i for all 64 -> each vector
 *                         once, on that CPU
 *   pci_testdev_msix_mask entry 5 masked: FIRE 5 -> PBA bit 5, nothing sent;
 *                         unmask -> delivered, PBA bit clear
 *   pci_testdev_msix_function_mask Function Mask: FIRE 6, 7, 8 (entry 8
 *                         also masked) -> PBA bits 6-8, nothing sent; clear
 *                         Function Mask -> 6 and 7 delivered, 8 still
 *                         pending; unmask entry 8 -> delivered
 *   pci_testdev_bus_master bus master off: FIRE -> result 2 (blocked),
 *                         nothing sent; the fire/sent counters agree with
 *                         what the guest saw
 *
 * Options: settle=L pause loops to wait when nothing may arrive (20000).
 */
#include "runtime.h"
#include "ioapic.h"
#include "irq_counter.h"
#include "pci.h"

static uint32_t sum_range(int lo, int hi) {
  uint32_t s = 0;
  for (int v = lo; v <= hi; v++) s += total[v];
  return s;
}

/* ---- pci_enum ---- */
static void test_enum(void) {
  bool ok = true;
  int found = 0;
  for (int dev = 0; dev < 32; dev++) {
    uint32_t id = pci_cfg_read32(0, dev, 0, PCI_VENDOR_ID);
    if (id == 0xFFFFFFFFu) continue;
    found++;
    uint32_t cls = pci_cfg_read32(0, dev, 0, PCI_CLASS_REVISION) >> 8;
    printf("pci 00:%02x.0 %04x:%04x class %06x irq pin %u line %u\n", dev,
           id & 0xFFFF, id >> 16, cls,
           pci_cfg_read8(0, dev, 0, PCI_INTERRUPT_PIN),
           pci_cfg_read8(0, dev, 0, PCI_INTERRUPT_LINE));
    if (pci_cfg_read16(0, dev, 0, PCI_VENDOR_ID) != (id & 0xFFFF) ||
        pci_cfg_read16(0, dev, 0, PCI_DEVICE_ID) != (id >> 16) ||
        pci_cfg_read8(0, dev, 0, 1) != ((id >> 8) & 0xFF) ||
        pci_cfg_read8(0, dev, 0, 3) != (id >> 24))
      ok = false;
  }
  uint32_t hb = pci_cfg_read32(0, 0, 0, PCI_VENDOR_ID);
  uint32_t hb_class = pci_cfg_read32(0, 0, 0, PCI_CLASS_REVISION) >> 8;
  uint32_t absent = pci_cfg_read32(0, 31, 7, PCI_VENDOR_ID);
  reportf("pci_enum",
          ok && hb == 0x29C08086u && hb_class == 0x060000 &&
              absent == 0xFFFFFFFFu && found >= 1,
          "host bridge %08x class %06x sub-dword-reads %s absent %08x", hb,
          hb_class, ok ? "ok" : "MISMATCH", absent);
}

/* Sizes a 32-bit BAR with memory/I-O decode off, restoring it. */
static uint32_t bar_size32(int dev, int bar) {
  uint16_t cmd = pci_cfg_read16(0, dev, 0, PCI_COMMAND);
  pci_cfg_write16(0, dev, 0, PCI_COMMAND,
                  cmd & ~(PCI_COMMAND_MEMORY | PCI_COMMAND_IO));
  int reg = PCI_BAR0 + 4 * bar;
  uint32_t old = pci_cfg_read32(0, dev, 0, reg);
  pci_cfg_write32(0, dev, 0, reg, 0xFFFFFFFFu);
  uint32_t mask = pci_cfg_read32(0, dev, 0, reg);
  pci_cfg_write32(0, dev, 0, reg, old);
  pci_cfg_write16(0, dev, 0, PCI_COMMAND, cmd);
  mask &= (old & 1) ? ~3u : ~0xFu;
  return ~mask + 1;
}

static int routed_line(int dev, int pin) { return 16 + ((dev + pin - 1) % 4); }

/* ---- edu ---- */
#define EDU_ID 0x00
#define EDU_LIVENESS 0x04
#define EDU_FACT 0x08
#define EDU_STATUS 0x20
#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define EDU_INTX_VEC 0x50
#define EDU_MSI_VEC 0x51
static uint64_t edu_bar;

static void edu_ack_hook(int v, uint32_t n, int cpu) {
  (void)v; (void)n; (void)cpu;
  uint32_t st = mmio_read32(edu_bar + EDU_IRQ_STATUS);
  mmio_write32(edu_bar + EDU_IRQ_ACK, st);
}

static void test_edu(void) {
  int devfn = pci_find_device(0x1234, 0x11E8);
  if (devfn < 0) {
    report_skip("pci_edu", "edu not attached (--device=edu)");
    return;
  }
  int dev = devfn >> 3;
  edu_bar = pci_bar_address(dev, 0, 0);
  uint32_t size = bar_size32(dev, 0);
  uint8_t ipin = pci_cfg_read8(0, dev, 0, PCI_INTERRUPT_PIN);
  uint8_t line = pci_cfg_read8(0, dev, 0, PCI_INTERRUPT_LINE);
  uint16_t cmd = pci_cfg_read16(0, dev, 0, PCI_COMMAND);
  printf("edu at 00:%02x.0 bar0 0x%lx size 0x%x pin %u line %u command 0x%x\n",
         dev, edu_bar, size, ipin, line, cmd);
  reportf("pci_edu_config",
          edu_bar != 0 && size == (1u << 20) && ipin == 1 &&
              line == routed_line(dev, ipin) && (cmd & PCI_COMMAND_MEMORY) &&
              !(cmd & PCI_COMMAND_MASTER),
          "bar0 0x%lx size 0x%x pin %u line %u command 0x%x", edu_bar, size,
          ipin, line, cmd);

  uint32_t id = mmio_read32(edu_bar + EDU_ID);
  mmio_write32(edu_bar + EDU_LIVENESS, 0x12345678);
  uint32_t live = mmio_read32(edu_bar + EDU_LIVENESS);
  mmio_write32(edu_bar + EDU_FACT, 5);
  for (int i = 0; i < WAIT_LOOPS && (mmio_read32(edu_bar + EDU_STATUS) & 1); i++)
    cpu_relax();
  uint32_t fact = mmio_read32(edu_bar + EDU_FACT);
  reportf("pci_edu_mmio", id == 0x010000ED && live == ~0x12345678u && fact == 120,
          "id 0x%x liveness 0x%x 5! = %u", id, live, fact);

  /* INTx: PCI INTx is level-sensitive; the PCI host drives the I/O APIC
     input high while INTA# is asserted (active high at the I/O APIC, as
     QEMU's q35 GSI links), so the RTE is level + active high. */
  hooks[EDU_INTX_VEC] = edu_ack_hook;
  ioapic_rte_set(line, 0, IOAPIC_RTE_LEVEL | EDU_INTX_VEC);
  mmio_write32(edu_bar + EDU_IRQ_RAISE, 1);
  bool got = wait_total(EDU_INTX_VEC, 1);
  settle();
  uint32_t after_first = total[EDU_INTX_VEC];
  uint32_t rte = ioapic_rte_lo(line);
  /* Interrupt Disable holds INTx back; Status.Interrupt still shows it. */
  pci_cfg_write16(0, dev, 0, PCI_COMMAND, cmd | PCI_COMMAND_INTX_DISABLE);
  mmio_write32(edu_bar + EDU_IRQ_RAISE, 2);
  settle();
  uint32_t while_disabled = total[EDU_INTX_VEC];
  uint16_t status = pci_cfg_read16(0, dev, 0, PCI_STATUS);
  pci_cfg_write16(0, dev, 0, PCI_COMMAND, cmd);
  bool got2 = wait_total(EDU_INTX_VEC, 2);
  settle();
  reportf("pci_edu_intx",
          got && after_first == 1 && !(rte & IOAPIC_RTE_REMOTE_IRR) &&
              while_disabled == 1 && (status & PCI_STATUS_INTERRUPT) && got2 &&
              total[EDU_INTX_VEC] == 2 &&
              mmio_read32(edu_bar + EDU_IRQ_STATUS) == 0,
          "first %u rte 0x%x while-disabled %u status 0x%x total %u",
          after_first, rte, while_disabled, status, total[EDU_INTX_VEC]);

  /* MSI, bus master still off: dropped. */
  int msi = pci_find_cap(dev, 0, PCI_CAP_ID_MSI);
  uint16_t mctl = msi ? pci_cfg_read16(0, dev, 0, msi + PCI_MSI_FLAGS) : 0;
  bool is64 = mctl & PCI_MSI_FLAGS_64BIT;
  hooks[EDU_MSI_VEC] = edu_ack_hook;
  pci_cfg_write32(0, dev, 0, msi + PCI_MSI_ADDRESS_LO, MSI_ADDR(0));
  if (is64) pci_cfg_write32(0, dev, 0, msi + PCI_MSI_ADDRESS_HI, 0);
  pci_cfg_write16(0, dev, 0, msi + PCI_MSI_DATA(is64), MSI_DATA_EDGE(EDU_MSI_VEC));
  pci_cfg_write16(0, dev, 0, msi + PCI_MSI_FLAGS, mctl | PCI_MSI_FLAGS_ENABLE);
  mmio_write32(edu_bar + EDU_IRQ_RAISE, 1);
  settle();
  uint32_t blocked_msi = total[EDU_MSI_VEC], blocked_intx = total[EDU_INTX_VEC];
  mmio_write32(edu_bar + EDU_IRQ_ACK, 0xFFFFFFFFu);
  reportf("pci_edu_msi_blocked",
          msi == 0x40 && is64 && ((mctl >> PCI_MSI_FLAGS_MMC_SHIFT) & 7) == 0 &&
              blocked_msi == 0 && blocked_intx == 2,
          "msi cap 0x%x control 0x%x msi %u intx %u", msi, mctl, blocked_msi,
          blocked_intx);

  /* MSI with bus master: one per CPU, then 3 more to CPU 0. */
  pci_cfg_write16(0, dev, 0, PCI_COMMAND, cmd | PCI_COMMAND_MASTER);
  bool ok = true;
  for (int cpu = 0; cpu < ncpus; cpu++) {
    pci_cfg_write32(0, dev, 0, msi + PCI_MSI_ADDRESS_LO, MSI_ADDR(cpu));
    mmio_write32(edu_bar + EDU_IRQ_RAISE, 1);
    if (!wait_total(EDU_MSI_VEC, (uint32_t)cpu + 1) ||
        hits[cpu][EDU_MSI_VEC] != 1)
      ok = false;
    printf("edu msi -> apic %d: ran on cpu %d %u time(s)\n", cpu, cpu,
           hits[cpu][EDU_MSI_VEC]);
  }
  pci_cfg_write32(0, dev, 0, msi + PCI_MSI_ADDRESS_LO, MSI_ADDR(0));
  for (int i = 0; i < 3; i++) {
    mmio_write32(edu_bar + EDU_IRQ_RAISE, 1);
    if (!wait_total(EDU_MSI_VEC, (uint32_t)ncpus + 1 + i)) ok = false;
  }
  settle();
  reportf("pci_edu_msi",
          ok && total[EDU_MSI_VEC] == (uint32_t)ncpus + 3 &&
              total[EDU_INTX_VEC] == 2,
          "msi total %u (want %d) intx %u", total[EDU_MSI_VEC], ncpus + 3,
          total[EDU_INTX_VEC]);
  pci_cfg_write16(0, dev, 0, msi + PCI_MSI_FLAGS, mctl);
  ioapic_mask(line);
}

/* ---- irqlab-testdev ---- */
#define TD_ID 0x00
#define TD_FIRE 0x04
#define TD_FIRE_COUNT 0x08
#define TD_SENT_COUNT 0x0C
#define TD_INTX 0x10
#define TD_MODE 0x14
#define TD_LAST_RESULT 0x18
#define TD_INTX_VEC 0x52
#define TD_MSI_BASE 0x60
#define TD_MSIX_BASE 0x80
#define TD_MSIX_N 64
static uint64_t td_bar0, td_bar1;
static int td_dev;

static void td_fire(uint32_t n) { mmio_write32(td_bar0 + TD_FIRE, n); }
static uint32_t td_reg(uint32_t r) { return mmio_read32(td_bar0 + r); }
static void td_intx_hook(int v, uint32_t n, int cpu) {
  (void)v; (void)n; (void)cpu;
  mmio_write32(td_bar0 + TD_INTX, 0);
}
static uint64_t msix_entry(int i) { return td_bar1 + (uint64_t)i * PCI_MSIX_ENTRY_SIZE; }

static void test_testdev(void) {
  int devfn = pci_find_device(0x1337, 0x0001);
  if (devfn < 0) {
    report_skip("pci_testdev", "irqlab-testdev not attached (--device=irqlab-testdev)");
    return;
  }
  int dev = td_dev = devfn >> 3;
  uint32_t b[6];
  for (int i = 0; i < 6; i++) b[i] = pci_cfg_read32(0, dev, 0, PCI_BAR0 + 4 * i);
  td_bar0 = pci_bar_address(dev, 0, 0);
  td_bar1 = pci_bar_address(dev, 0, 1);
  uint64_t bar2 = pci_bar_address(dev, 0, 2);
  uint16_t iobar = (uint16_t)pci_bar_address(dev, 0, 4);
  uint8_t ipin = pci_cfg_read8(0, dev, 0, PCI_INTERRUPT_PIN);
  uint8_t line = pci_cfg_read8(0, dev, 0, PCI_INTERRUPT_LINE);
  uint16_t cmd = pci_cfg_read16(0, dev, 0, PCI_COMMAND);
  uint32_t id_mem = td_reg(TD_ID), id_io = inl(iobar + TD_ID);
  printf("testdev at 00:%02x.0 bar0 0x%lx bar1 0x%lx bar2 0x%lx io 0x%x "
         "pin %u line %u\n", dev, td_bar0, td_bar1, bar2, iobar, ipin, line);
  reportf("pci_testdev_config",
          (b[0] & 0xF) == 0 && (b[1] & 0xF) == 0 && (b[2] & 0xF) == 0xC &&
              (b[4] & 3) == 1 && td_bar0 && td_bar1 && bar2 && iobar &&
              id_mem == 0x54515249 && id_io == 0x54515249 && ipin == 1 &&
              line == routed_line(dev, ipin) && !(cmd & PCI_COMMAND_MASTER),
          "bars %08x %08x %08x %08x %08x id %08x/%08x pin %u line %u cmd 0x%x",
          b[0], b[1], b[2], b[3], b[4], id_mem, id_io, ipin, line, cmd);

  /* INTx. */
  hooks[TD_INTX_VEC] = td_intx_hook;
  ioapic_rte_set(line, 0, IOAPIC_RTE_LEVEL | TD_INTX_VEC);
  td_fire(0);
  uint32_t mode0 = td_reg(TD_MODE), res0 = td_reg(TD_LAST_RESULT);
  bool got = wait_total(TD_INTX_VEC, 1);
  settle();
  reportf("pci_testdev_intx",
          got && total[TD_INTX_VEC] == 1 && mode0 == 0 && res0 == 5,
          "total %u mode %u result %u", total[TD_INTX_VEC], mode0, res0);
  ioapic_mask(line);

  pci_cfg_write16(0, dev, 0, PCI_COMMAND, cmd | PCI_COMMAND_MASTER);
  mmio_write32(td_bar0 + TD_FIRE_COUNT, 0);

  /* Multi-message MSI. */
  int msi = pci_find_cap(dev, 0, PCI_CAP_ID_MSI);
  uint16_t mctl = pci_cfg_read16(0, dev, 0, msi + PCI_MSI_FLAGS);
  unsigned mmc = (mctl >> PCI_MSI_FLAGS_MMC_SHIFT) & 7;
  bool is64 = mctl & PCI_MSI_FLAGS_64BIT, pvm = mctl & PCI_MSI_FLAGS_MASKBIT;
  for (int v = TD_MSI_BASE; v < TD_MSI_BASE + 32; v++) hooks[v] = NULL;
  pci_cfg_write32(0, dev, 0, msi + PCI_MSI_ADDRESS_LO, MSI_ADDR(0));
  pci_cfg_write32(0, dev, 0, msi + PCI_MSI_ADDRESS_HI, 0);
  pci_cfg_write16(0, dev, 0, msi + PCI_MSI_DATA(is64), TD_MSI_BASE);
  pci_cfg_write32(0, dev, 0, msi + PCI_MSI_MASK(is64), 0);
  pci_cfg_write16(0, dev, 0, msi + PCI_MSI_FLAGS,
                  (mctl & ~0x70) | (7 << PCI_MSI_FLAGS_MME_SHIFT));
  unsigned mme_clamped =
      (pci_cfg_read16(0, dev, 0, msi + PCI_MSI_FLAGS) >> PCI_MSI_FLAGS_MME_SHIFT) & 7;
  pci_cfg_write16(0, dev, 0, msi + PCI_MSI_FLAGS,
                  (mctl & ~0x70) | (5 << PCI_MSI_FLAGS_MME_SHIFT) |
                      PCI_MSI_FLAGS_ENABLE);
  uint32_t mode1 = td_reg(TD_MODE);
  bool ok = true;
  for (int n = 0; n < 32; n++) {
    td_fire((uint32_t)n);
    if (!wait_total(TD_MSI_BASE + n, 1)) ok = false;
  }
  settle();
  for (int n = 0; n < 32; n++)
    if (total[TD_MSI_BASE + n] != 1 || hits[0][TD_MSI_BASE + n] != 1) ok = false;
  /* 8 messages: vector 9 folds to 9 & 7 = 1. */
  pci_cfg_write16(0, dev, 0, msi + PCI_MSI_FLAGS,
                  (mctl & ~0x70) | (3 << PCI_MSI_FLAGS_MME_SHIFT) |
                      PCI_MSI_FLAGS_ENABLE);
  td_fire(9);
  bool folded = wait_total(TD_MSI_BASE + 1, 2);
  settle();
  reportf("pci_testdev_msi_multi",
          msi == 0x40 && mmc == 5 && is64 && pvm && mme_clamped == 5 &&
              mode1 == 1 && ok && folded && total[TD_MSI_BASE + 9] == 1 &&
              sum_range(TD_MSI_BASE, TD_MSI_BASE + 31) == 33,
          "cap 0x%x mmc %u 64bit %d pvm %d mme(7)->%u mode %u all-32-once %d "
          "fold %d sum %u",
          msi, mmc, is64, pvm, mme_clamped, mode1, ok, folded,
          sum_range(TD_MSI_BASE, TD_MSI_BASE + 31));

  /* Per-vector mask and pending bits. */
  pci_cfg_write16(0, dev, 0, msi + PCI_MSI_FLAGS,
                  (mctl & ~0x70) | (5 << PCI_MSI_FLAGS_MME_SHIFT) |
                      PCI_MSI_FLAGS_ENABLE);
  pci_cfg_write32(0, dev, 0, msi + PCI_MSI_MASK(is64), 1u << 3);
  td_fire(3);
  uint32_t res_masked = td_reg(TD_LAST_RESULT);
  settle();
  uint32_t while_masked = total[TD_MSI_BASE + 3];
  uint32_t pend = pci_cfg_read32(0, dev, 0, msi + PCI_MSI_PENDING(is64));
  pci_cfg_write32(0, dev, 0, msi + PCI_MSI_MASK(is64), 0);
  bool released = wait_total(TD_MSI_BASE + 3, 2);
  settle();
  uint32_t pend_after = pci_cfg_read32(0, dev, 0, msi + PCI_MSI_PENDING(is64));
  reportf("pci_testdev_msi_mask",
          res_masked == 1 && while_masked == 1 && pend == (1u << 3) && released &&
              total[TD_MSI_BASE + 3] == 2 && pend_after == 0,
          "result %u while-masked %u pending 0x%x after-unmask %u pending 0x%x",
          res_masked, while_masked, pend, total[TD_MSI_BASE + 3], pend_after);
  pci_cfg_write16(0, dev, 0, msi + PCI_MSI_FLAGS, mctl & ~PCI_MSI_FLAGS_ENABLE);

  /* MSI-X. */
  int msix = pci_find_cap(dev, 0, PCI_CAP_ID_MSIX);
  uint16_t xctl = pci_cfg_read16(0, dev, 0, msix + PCI_MSIX_FLAGS);
  uint32_t tbl = pci_cfg_read32(0, dev, 0, msix + PCI_MSIX_TABLE);
  uint32_t pba = pci_cfg_read32(0, dev, 0, msix + PCI_MSIX_PBA);
  unsigned nvec = (xctl & PCI_MSIX_FLAGS_QSIZE) + 1;
  uint64_t pba_addr = pci_bar_address(dev, 0, pba & 7) + (pba & ~7u);
  bool reset_masked = true, readback = true;
  for (int i = 0; i < TD_MSIX_N; i++) {
    uint64_t e = msix_entry(i);
    if (!(mmio_read32(e + PCI_MSIX_ENTRY_CTRL) & PCI_MSIX_ENTRY_CTRL_MASKBIT))
      reset_masked = false;
    mmio_write32(e + PCI_MSIX_ENTRY_ADDR_LO, MSI_ADDR(i % ncpus));
    mmio_write32(e + PCI_MSIX_ENTRY_ADDR_HI, 0);
    mmio_write32(e + PCI_MSIX_ENTRY_DATA, TD_MSIX_BASE + i);
    mmio_write32(e + PCI_MSIX_ENTRY_CTRL, 0);
    if (mmio_read32(e + PCI_MSIX_ENTRY_ADDR_LO) != MSI_ADDR(i % ncpus) ||
        mmio_read32(e + PCI_MSIX_ENTRY_DATA) != (uint32_t)(TD_MSIX_BASE + i) ||
        mmio_read32(e + PCI_MSIX_ENTRY_CTRL) != 0)
      readback = false;
  }
  pci_cfg_write16(0, dev, 0, msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE);
  uint32_t mode2 = td_reg(TD_MODE);
  ok = true;
  for (int i = 0; i < TD_MSIX_N; i++) {
    td_fire((uint32_t)i);
    if (!wait_total(TD_MSIX_BASE + i, 1)) ok = false;
  }
  settle();
  for (int i = 0; i < TD_MSIX_N; i++)
    if (total[TD_MSIX_BASE + i] != 1 || hits[i % ncpus][TD_MSIX_BASE + i] != 1)
      ok = false;
  reportf("pci_testdev_msix",
          msix == 0x58 && nvec == 64 && tbl == 1 && pba == (0x800 | 1) &&
              reset_masked && readback && mode2 == 2 && ok &&
              sum_range(TD_MSIX_BASE, TD_MSIX_BASE + 63) == 64,
          "cap 0x%x size %u table 0x%x pba 0x%x reset-masked %d readback %d "
          "mode %u each-once-on-its-cpu %d",
          msix, nvec, tbl, pba, reset_masked, readback, mode2, ok);

  /* Per-vector mask -> PBA -> unmask delivers. */
  uint64_t e5 = msix_entry(5);
  mmio_write32(e5 + PCI_MSIX_ENTRY_CTRL, PCI_MSIX_ENTRY_CTRL_MASKBIT);
  td_fire(5);
  uint32_t res5 = td_reg(TD_LAST_RESULT);
  settle();
  uint32_t masked5 = total[TD_MSIX_BASE + 5];
  uint64_t pba5 = mmio_read64(pba_addr);
  mmio_write32(e5 + PCI_MSIX_ENTRY_CTRL, 0);
  bool rel5 = wait_total(TD_MSIX_BASE + 5, 2);
  settle();
  uint64_t pba5_after = mmio_read64(pba_addr);
  reportf("pci_testdev_msix_mask",
          res5 == 1 && masked5 == 1 && pba5 == (1ull << 5) && rel5 &&
              total[TD_MSIX_BASE + 5] == 2 &&
              hits[5 % ncpus][TD_MSIX_BASE + 5] == 2 && pba5_after == 0,
          "result %u while-masked %u pba 0x%lx after %u pba 0x%lx", res5,
          masked5, pba5, total[TD_MSIX_BASE + 5], pba5_after);

  /* Function mask. */
  uint64_t e8 = msix_entry(8);
  mmio_write32(e8 + PCI_MSIX_ENTRY_CTRL, PCI_MSIX_ENTRY_CTRL_MASKBIT);
  pci_cfg_write16(0, dev, 0, msix + PCI_MSIX_FLAGS,
                  PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  td_fire(6);
  td_fire(7);
  td_fire(8);
  settle();
  uint32_t fm_sent = total[TD_MSIX_BASE + 6] + total[TD_MSIX_BASE + 7] +
                     total[TD_MSIX_BASE + 8];
  uint64_t fm_pba = mmio_read64(pba_addr);
  pci_cfg_write16(0, dev, 0, msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE);
  bool rel67 = wait_total(TD_MSIX_BASE + 6, 2) && wait_total(TD_MSIX_BASE + 7, 2);
  settle();
  uint64_t fm_pba2 = mmio_read64(pba_addr);
  uint32_t still8 = total[TD_MSIX_BASE + 8];
  mmio_write32(e8 + PCI_MSIX_ENTRY_CTRL, 0);
  bool rel8 = wait_total(TD_MSIX_BASE + 8, 2);
  settle();
  uint64_t fm_pba3 = mmio_read64(pba_addr);
  reportf("pci_testdev_msix_function_mask",
          fm_sent == 3 && fm_pba == (7ull << 6) && rel67 &&
              fm_pba2 == (1ull << 8) && still8 == 1 && rel8 && fm_pba3 == 0 &&
              sum_range(TD_MSIX_BASE, TD_MSIX_BASE + 63) == 64 + 4,
          "sent-while-masked %u pba 0x%lx -> 0x%lx (entry 8 %u) -> 0x%lx",
          fm_sent - 3, fm_pba, fm_pba2, still8, fm_pba3);

  /* Bus master off: blocked. */
  uint32_t fired = td_reg(TD_FIRE_COUNT), sent = td_reg(TD_SENT_COUNT);
  pci_cfg_write16(0, dev, 0, PCI_COMMAND, cmd & ~PCI_COMMAND_MASTER);
  td_fire(9);
  uint32_t res9 = td_reg(TD_LAST_RESULT);
  settle();
  uint32_t fired2 = td_reg(TD_FIRE_COUNT), sent2 = td_reg(TD_SENT_COUNT);
  /* Since the counter reset: 32 + 1 + 1 MSI fires (+1 released), 64 + 1 + 3
     MSI-X fires (+ 1 + 3 released) = fires 102, messages sent 105 - 3
     pending ones counted when released ... compare with what arrived. */
  uint32_t arrived = sum_range(TD_MSI_BASE, TD_MSI_BASE + 31) +
                     sum_range(TD_MSIX_BASE, TD_MSIX_BASE + 63);
  reportf("pci_testdev_bus_master",
          res9 == 2 && total[TD_MSIX_BASE + 9] == 1 && fired2 == fired + 1 &&
              sent2 == sent && sent == arrived,
          "result %u vector-9 %u fired %u->%u sent %u->%u arrived %u", res9,
          total[TD_MSIX_BASE + 9], fired, fired2, sent, sent2, arrived);
  printf("testdev: %u fires, %u messages sent, %u interrupts arrived\n",
         fired2, sent2, arrived);
  pci_cfg_write16(0, dev, 0, msix + PCI_MSIX_FLAGS, 0);
}

int main(void) {
  ncpus = fw_cfg_cpu_count();
  if (ncpus > NCPU_MAX) ncpus = NCPU_MAX;
  settle_loops = (uint64_t)cmdline_get_int("settle", 20000);
  for (int v = 0x50; v < 0xC0; v++) irq_set_handler(v, on_irq);
  if (ncpus > 1) {
    int up = smp_start_aps(ncpus, ap_main, 20000000);
    printf("pci: %d CPUs, %d APs up\n", ncpus, up);
    if (up != ncpus - 1) panic("only %d of %d APs started", up, ncpus - 1);
  } else {
    printf("pci: 1 CPU\n");
  }
  test_enum();
  test_edu();
  test_testdev();
  report_exit();
}
