/* KERNEL-DESCRIPTION: ath11k-like driver for the synthetic WCN6855 (17cb:1103): MSI (1/16/32 vectors) read back from config space and copied into the PCI-window interrupt sources, firmware boot, HTT connect (CE2), data-path events counted per source and vector */
/*
 * ath11k: the guest half of seed 000 (ARCHITECTURE.md). Drives the
 * synthetic WCN6855 (devices/wcn6855_regs.h) the way Linux's ath11k_pci
 * does, so that the MSI-copy problem of device assignment shows up exactly
 * as on real hardware:
 *
 *   probe    find 17cb:1103 on bus 0 (any slot: bare metal 00:05.0, or a
 *            vfio-assigned device at its guest BDF), decode BAR0 (2 MiB,
 *            64-bit memory), enable memory decode + bus master
 *   msi      MSI capability: MMC checked, address 0xFEE00000 | dest << 12,
 *            data = base vector (0x20 rounded up to the vector count), MME,
 *            enable -- as pci_alloc_irq_vectors() + msi_write_msg() do
 *   readback the MSI address/data are read BACK from config space (under
 *            vfio the VMM returns the guest's own values, not the host's)
 *            and copied into every interrupt source of the PCI window
 *            (WCN_SOURCE_OFFSETS: address low, high, then the data 8 bytes
 *            after the address; 4-byte writes only). Source i gets
 *            data + (i % N) with N vectors (the Windows driver's
 *            multi-vector layout), all sources share data with N = 1 (Linux)
 *   boot     WCN_CMD_BOOT, poll WCN_REG_STATE for WCN_STATE_READY
 *   htt      WCN_CMD_HTT_CONNECT, wait (IF=1, hlt) for the CE2 interrupt;
 *            on timeout "ath11k_pci <bdf>: failed to connect to HTT: -110"
 *   events   WCN_CMD_EVENTS(N), wait for N data-path (CE0..DP3) interrupts,
 *            then one "ath11k: src <name> vector 0xVV count C" line per
 *            (source, vector) that fired; every source must arrive on
 *            base + (i % N) (base for N = 1) and on the msi_dest CPU
 *
 * The handler (all vectors 0x20..0xEE) reads WCN_REG_IRQ_STATUS, writes it
 * back (RW1C) and counts each set bit as one interrupt of that source on the
 * vector (and CPU) the handler runs on; the runtime EOIs after it
 * (irq_dispatch), so the handler does not.
 *
 * Waiting: sti; hlt with the local APIC timer in TSC-deadline mode (vector
 * 0xEF) as the wake-up: at the deadline when waiting for an interrupt,
 * every `poll` ticks when polling the firmware state; a pause loop without
 * CPUID TSC-deadline or with wait=pause. Timeouts are virtual time (RDTSC,
 * one tick = one virtual ns).
 *
 * Tests (PASS/FAIL lines, then SUMMARY; exit 0 iff none failed = status 1;
 * a failed probe/MSI/boot/HTT step ends the run at once, status 3):
 *   ath11k_probe          17cb:1103 found, class 028000, BAR0 64-bit memory,
 *                         SOC_ID 0x68550101, memory decode + bus master on
 *   ath11k_msi            MME and enable read back as written
 *   ath11k_msi_readback   config space returns the programmed pair
 *   ath11k_boot           STATE = READY within the timeout, RESPONSE = BOOT ok
 *   ath11k_htt_connect    the CE2 interrupt arrived, STATE = HTT_CONNECTED
 *   ath11k_events         N data-path source events handled, the device's
 *                         EVENTS counter advanced by N, RESPONSE = EVENTS ok
 *   ath11k_event_sources  per-source counts: mhi 1, ce2 1 + its events, the
 *                         stream cycling ce0..dp3 from ce0; each interrupt
 *                         carried exactly one source bit (no source was only
 *                         seen through another one's interrupt), no unknown
 *                         IRQ_STATUS bits, no interrupt with IRQ_STATUS 0
 *   ath11k_vectors        every source on base + (i % N), on msi_dest
 *
 * Options:
 *   msi_vectors=1|2|4|8|16|32  MSI vectors to enable (1; 16/32 = the
 *                              Windows-like profile)
 *   msi_dest=ID                destination APIC id (0); with more vCPUs the
 *                              APs wait in sti; hlt and take the interrupts
 *   timeout=T                  ticks per wait (5000000); the events wait gets
 *                              T + N * WCN_EVENT_INTERVAL
 *   events=N                   data-path events to request (24)
 *   poll=T                     hlt wake-up interval while polling the
 *                              firmware state (5000); interrupt waits
 *                              sleep until an interrupt or the timeout
 *   wait=hlt|pause             how to wait (hlt)
 */
#include "runtime.h"
#include "pci.h"

#include "../../devices/wcn6855_regs.h"

#define ATH_VEC_FIRST 0x20
#define ATH_VEC_LAST 0xEE
#define ATH_TIMER_VEC 0xEF
#define ATH_MAX_CPUS 8

static const uint32_t src_offsets[WCN_NUM_SOURCES] = WCN_SOURCE_OFFSETS;
static const char *const src_names[WCN_NUM_SOURCES] = {
    "mhi", "ce0", "ce1", "ce2", "ce3", "ce4", "ce5",
    "ce6", "ce7", "dp0", "dp1", "dp2", "dp3"};

static char bdf[16];        /* "0000:BB:DD.F" */
static uint64_t bar0;

/* Written by the handler (any CPU), read by the BSP. */
static volatile uint32_t src_count[WCN_NUM_SOURCES];
static volatile uint32_t src_vec[WCN_NUM_SOURCES][256];
static volatile uint32_t src_cpu_wrong[WCN_NUM_SOURCES];
static volatile uint32_t vec_irqs[256];
static volatile uint32_t vec_bits[256];  /* source bits claimed */
static volatile uint32_t vec_empty[256]; /* interrupts with IRQ_STATUS 0 */
static volatile uint32_t datapath_count; /* CE0..DP3 bits handled */
static volatile uint32_t unknown_bits;   /* IRQ_STATUS bits >= 13 */
static volatile uint32_t timer_ticks;
static uint32_t expect_cpu;

static bool use_hlt;
static uint64_t poll_ticks;

static void ath11k_irq(struct irq_frame *f) {
  int v = (int)(f->vector & 0xFF);
  __atomic_add_fetch(&vec_irqs[v], 1, __ATOMIC_SEQ_CST);
  uint32_t st = mmio_read32(bar0 + WCN_REG_IRQ_STATUS);
  if (!st) {
    __atomic_add_fetch(&vec_empty[v], 1, __ATOMIC_SEQ_CST);
    return;
  }
  mmio_write32(bar0 + WCN_REG_IRQ_STATUS, st); /* RW1C */
  uint32_t cpu = lapic_id();
  for (unsigned i = 0; i < WCN_NUM_SOURCES; i++) {
    if (!(st & (1u << i))) continue;
    __atomic_add_fetch(&src_vec[i][v], 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&vec_bits[v], 1, __ATOMIC_SEQ_CST);
    if (cpu != expect_cpu)
      __atomic_add_fetch(&src_cpu_wrong[i], 1, __ATOMIC_SEQ_CST);
    if (i >= WCN_SRC_CE0)
      __atomic_add_fetch(&datapath_count, 1, __ATOMIC_SEQ_CST);
    /* Last: the BSP waits on src_count. */
    __atomic_add_fetch(&src_count[i], 1, __ATOMIC_SEQ_CST);
  }
  if (st >> WCN_NUM_SOURCES)
    __atomic_or_fetch(&unknown_bits, st >> WCN_NUM_SOURCES, __ATOMIC_SEQ_CST);
}

static void timer_irq(struct irq_frame *f) {
  (void)f;
  timer_ticks++;
}

static void ap_main(int cpu) {
  (void)cpu;
  for (;;) sti_hlt();
}

/* Waits (IF=1) until cond() holds or `timeout` ticks passed; true if it
 * holds. Interrupts are taken during the wait; IF=0 on return. A `polled`
 * condition (a device register) is re-checked every `poll` ticks; one that
 * only an interrupt can change sleeps until an interrupt or the deadline,
 * as wait_event_timeout() does. */
static bool wait_for_polled(bool (*cond)(void), uint64_t timeout, bool polled) {
  uint64_t deadline = rdtsc() + timeout;
  bool ok;
  for (;;) {
    cli();
    if ((ok = cond())) break;
    uint64_t now = rdtsc();
    if (now >= deadline) break;
    if (use_hlt) {
      uint64_t wake = polled ? now + poll_ticks : deadline;
      wrmsr(MSR_IA32_TSC_DEADLINE, wake < deadline ? wake : deadline);
      sti_hlt(); /* an interrupt or the deadline timer */
    } else {
      sti();
      cpu_relax();
    }
  }
  if (use_hlt) wrmsr(MSR_IA32_TSC_DEADLINE, 0);
  cli();
  return ok || cond();
}

static bool wait_for(bool (*cond)(void), uint64_t timeout) {
  return wait_for_polled(cond, timeout, false);
}

static bool fw_ready(void) {
  return mmio_read32(bar0 + WCN_REG_STATE) == WCN_STATE_READY;
}
static bool ce2_seen(void) { return src_count[WCN_SRC_CE2] > 0; }
static uint32_t events_want, events_from;
static bool events_done(void) {
  return datapath_count - events_from >= events_want;
}
static bool never(void) { return false; }

static void fw_command(uint32_t cmd, uint32_t arg) {
  mmio_write32(bar0 + WCN_REG_CMD_ARG, arg);
  mmio_write32(bar0 + WCN_REG_DOORBELL, cmd);
}

/* Maps a BAR above 4 GiB (below 512 GiB) with one 2 MiB page; the boot
 * page tables identity-map only the first 4 GiB. */
static uint64_t high_pd[512] __attribute__((aligned(4096)));
static bool map_bar(uint64_t addr) {
  if (addr + WCN_BAR0_SIZE <= (4ull << 30)) return true;
  if (addr >= (512ull << 30) || (addr & (WCN_BAR0_SIZE - 1))) return false;
  unsigned pdpt = (unsigned)(addr >> 30);
  if (!(boot_pdpt[pdpt] & PTE_P))
    boot_pdpt[pdpt] = (uint64_t)(uintptr_t)high_pd | PTE_P | PTE_W;
  uint64_t *pd = (uint64_t *)(uintptr_t)(boot_pdpt[pdpt] & ~0xFFFull);
  pd[(addr >> 21) & 511] =
      (addr & ~0x1FFFFFull) | PTE_P | PTE_W | PTE_PS | PTE_PCD | PTE_PWT;
  flush_tlb();
  return true;
}

static int log2_exact(uint32_t n) {
  for (int k = 0; k <= 5; k++)
    if ((1u << k) == n) return k;
  return -1;
}

int main(void) {
  uint32_t nvec = (uint32_t)cmdline_get_int("msi_vectors", 1);
  uint32_t dest = (uint32_t)cmdline_get_int("msi_dest", 0);
  uint64_t timeout = (uint64_t)cmdline_get_int("timeout", 5000000);
  uint32_t nevents = (uint32_t)cmdline_get_int("events", 24);
  poll_ticks = (uint64_t)cmdline_get_int("poll", 5000);
  if (poll_ticks == 0) poll_ticks = 1;
  char wait_mode[8] = "hlt";
  cmdline_get_str("wait", wait_mode, sizeof(wait_mode));
  use_hlt = strcmp(wait_mode, "pause") != 0 && cpu_has_tsc_deadline();
  expect_cpu = dest;

  int mme = log2_exact(nvec);
  if (mme < 0) {
    printf("ath11k_pci: msi_vectors=%u: must be 1, 2, 4, 8, 16 or 32\n", nvec);
    report("ath11k_probe", false);
    report_exit();
  }

  for (int v = ATH_VEC_FIRST; v <= ATH_VEC_LAST; v++)
    irq_set_handler(v, ath11k_irq);
  irq_set_handler(ATH_TIMER_VEC, timer_irq);
  if (use_hlt)
    lapic_write(LAPIC_LVT_TIMER, LVT_TIMER_TSC_DEADLINE | ATH_TIMER_VEC);

  int ncpus = fw_cfg_cpu_count();
  if (ncpus > ATH_MAX_CPUS) ncpus = ATH_MAX_CPUS;
  if (ncpus > 1) {
    int up = smp_start_aps(ncpus, ap_main, 20000000);
    if (up != ncpus - 1) panic("only %d of %d APs started", up, ncpus - 1);
  }
  if (dest >= (uint32_t)ncpus) {
    printf("ath11k_pci: msi_dest=%u but only %d CPU(s)\n", dest, ncpus);
    report("ath11k_probe", false);
    report_exit();
  }

  /* ---- probe ---- */
  int devfn = pci_find_device(WCN_VENDOR_ID, WCN_DEVICE_ID);
  if (devfn < 0) {
    printf("ath11k_pci: no WCN6855 (17cb:1103) found\n");
    report("ath11k_probe", false);
    report_exit();
  }
  int dev = devfn >> 3, fn = devfn & 7;
  snprintf(bdf, sizeof(bdf), "0000:%02x:%02x.%x", 0, dev, fn);
  uint32_t class_rev = pci_cfg_read32(0, dev, fn, PCI_CLASS_REVISION);
  uint32_t bar_lo = pci_cfg_read32(0, dev, fn, PCI_BAR0);
  bar0 = pci_bar_address(dev, fn, 0);
  bool bar64 = ((bar_lo >> 1) & 3) == 2;
  printf("ath11k_pci %s: 17cb:1103 class %06x rev %02x\n", bdf,
         class_rev >> 8, class_rev & 0xFF);
  printf("ath11k_pci %s: BAR 0: assigned [mem 0x%08lx-0x%08lx%s]\n", bdf,
         bar0, bar0 + WCN_BAR0_SIZE - 1, bar64 ? " 64bit" : "");
  if ((bar_lo & 1) || bar0 == 0 || !map_bar(bar0)) {
    printf("ath11k_pci %s: BAR 0 unusable (0x%08x, address 0x%lx)\n", bdf,
           bar_lo, bar0);
    report("ath11k_probe", false);
    report_exit();
  }
  uint16_t cmd = pci_cfg_read16(0, dev, fn, PCI_COMMAND);
  uint16_t ncmd = cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
  if (ncmd != cmd) {
    printf("ath11k_pci %s: enabling device (%04x -> %04x)\n", bdf, cmd, ncmd);
    pci_cfg_write16(0, dev, fn, PCI_COMMAND, ncmd);
  }
  uint32_t soc = mmio_read32(bar0 + WCN_REG_SOC_ID);
  printf("ath11k_pci %s: soc id 0x%08x\n", bdf, soc);
  reportf("ath11k_probe",
          (class_rev >> 8) == WCN_CLASS_CODE && bar64 && soc == WCN_SOC_ID &&
              (pci_cfg_read16(0, dev, fn, PCI_COMMAND) & 6) == 6,
          "class %06x bar0 0x%08x soc id 0x%08x command 0x%04x",
          class_rev >> 8, bar_lo, soc, pci_cfg_read16(0, dev, fn, PCI_COMMAND));

  /* ---- MSI ---- */
  int msi = pci_find_cap(dev, fn, PCI_CAP_ID_MSI);
  if (!msi) {
    printf("ath11k_pci %s: no MSI capability\n", bdf);
    report("ath11k_msi", false);
    report_exit();
  }
  uint16_t mctl = pci_cfg_read16(0, dev, fn, msi + PCI_MSI_FLAGS);
  bool is64 = mctl & PCI_MSI_FLAGS_64BIT;
  uint32_t mmc = (mctl >> PCI_MSI_FLAGS_MMC_SHIFT) & 7;
  printf("ath11k_pci %s: MSI cap 0x%02x, %s, capable of %u vector(s), "
         "requesting %u\n", bdf, msi, is64 ? "64-bit" : "32-bit", 1u << mmc,
         nvec);
  if ((uint32_t)mme > mmc) {
    printf("ath11k_pci %s: failed to get %u MSI vectors, only %u available\n",
           bdf, nvec, 1u << mmc);
    report("ath11k_msi", false);
    report_exit();
  }
  uint32_t base = (ATH_VEC_FIRST + nvec - 1) & ~(nvec - 1);
  uint32_t addr_lo = MSI_ADDR(dest);
  pci_cfg_write16(0, dev, fn, msi + PCI_MSI_FLAGS, mctl & ~PCI_MSI_FLAGS_ENABLE);
  pci_cfg_write32(0, dev, fn, msi + PCI_MSI_ADDRESS_LO, addr_lo);
  if (is64) pci_cfg_write32(0, dev, fn, msi + PCI_MSI_ADDRESS_HI, 0);
  pci_cfg_write16(0, dev, fn, msi + PCI_MSI_DATA(is64), (uint16_t)base);
  uint16_t mctl_on = (uint16_t)((mctl & ~0x70 & ~PCI_MSI_FLAGS_ENABLE) |
                                ((uint32_t)mme << PCI_MSI_FLAGS_MME_SHIFT));
  pci_cfg_write16(0, dev, fn, msi + PCI_MSI_FLAGS, mctl_on);
  pci_cfg_write16(0, dev, fn, msi + PCI_MSI_FLAGS,
                  mctl_on | PCI_MSI_FLAGS_ENABLE);
  uint16_t mctl_rb = pci_cfg_read16(0, dev, fn, msi + PCI_MSI_FLAGS);
  reportf("ath11k_msi",
          (mctl_rb & PCI_MSI_FLAGS_ENABLE) &&
              ((mctl_rb >> PCI_MSI_FLAGS_MME_SHIFT) & 7) == (uint32_t)mme,
          "control 0x%04x after writing 0x%04x", mctl_rb,
          mctl_on | PCI_MSI_FLAGS_ENABLE);

  /* ---- read the pair back, as ath11k_pci_get_msi_address() does ---- */
  uint32_t rb_lo = pci_cfg_read32(0, dev, fn, msi + PCI_MSI_ADDRESS_LO);
  uint32_t rb_hi = is64 ? pci_cfg_read32(0, dev, fn, msi + PCI_MSI_ADDRESS_HI) : 0;
  uint32_t rb_data = pci_cfg_read16(0, dev, fn, msi + PCI_MSI_DATA(is64));
  if (rb_hi)
    printf("ath11k_pci %s: MSI addr 0x%08x%08x data 0x%04x\n", bdf, rb_hi,
           rb_lo, rb_data);
  else
    printf("ath11k_pci %s: MSI addr 0x%08x data 0x%04x\n", bdf, rb_lo,
           rb_data);
  reportf("ath11k_msi_readback",
          rb_lo == addr_lo && rb_hi == 0 && rb_data == base,
          "read 0x%08x%08x/0x%04x, programmed 0x%08x/0x%04x", rb_hi, rb_lo,
          rb_data, addr_lo, base);

  /* Copy into the interrupt sources: address low, high, data (+8). */
  mmio_write32(bar0 + WCN_REG_IRQ_STATUS, 0xFFFFFFFFu);
  for (unsigned i = 0; i < WCN_NUM_SOURCES; i++) {
    uint64_t r = bar0 + src_offsets[i];
    uint32_t data = rb_data + (i % nvec);
    mmio_write32(r + WCN_SRC_ADDR_LO, rb_lo);
    mmio_write32(r + WCN_SRC_ADDR_HI, rb_hi);
    mmio_write32(r + WCN_SRC_DATA, data);
    printf("ath11k_pci %s: src %s at 0x%05x: addr 0x%08x data 0x%04x\n", bdf,
           src_names[i], src_offsets[i], rb_lo, data);
  }

  /* ---- boot ---- */
  fw_command(WCN_CMD_BOOT, 0);
  uint64_t t0 = rdtsc();
  bool ready = wait_for_polled(fw_ready, timeout, true);
  uint64_t t1 = rdtsc();
  uint32_t state = mmio_read32(bar0 + WCN_REG_STATE);
  if (!ready) {
    printf("ath11k_pci %s: failed to boot firmware: -110 (state %u)\n", bdf,
           state);
    reportf("ath11k_boot", false, "state %u after %lu ticks", state, t1 - t0);
    report_exit();
  }
  uint32_t resp = mmio_read32(bar0 + WCN_REG_RESPONSE);
  printf("ath11k_pci %s: firmware ready after %lu ticks\n", bdf, t1 - t0);
  reportf("ath11k_boot", resp == WCN_CMD_BOOT, "response 0x%04x", resp);

  /* ---- HTT connect: the CE2 interrupt is the response ---- */
  fw_command(WCN_CMD_HTT_CONNECT, 0);
  t0 = rdtsc();
  bool htt = wait_for(ce2_seen, timeout);
  t1 = rdtsc();
  if (!htt) {
    printf("ath11k_pci %s: failed to connect to HTT: -110\n", bdf);
    reportf("ath11k_htt_connect", false,
            "no CE2 interrupt in %lu ticks, state %u, %u interrupt(s)",
            t1 - t0, mmio_read32(bar0 + WCN_REG_STATE),
            src_count[WCN_SRC_MHI] + datapath_count);
    report_exit();
  }
  state = mmio_read32(bar0 + WCN_REG_STATE);
  resp = mmio_read32(bar0 + WCN_REG_RESPONSE);
  printf("ath11k_pci %s: htt connected\n", bdf);
  reportf("ath11k_htt_connect",
          state == WCN_STATE_HTT_CONNECTED && resp == WCN_CMD_HTT_CONNECT,
          "state %u response 0x%04x", state, resp);

  /* ---- data-path events ---- */
  events_want = nevents;
  events_from = datapath_count;
  uint32_t fired0 = mmio_read32(bar0 + WCN_REG_EVENTS); /* counts every fire */
  fw_command(WCN_CMD_EVENTS, nevents);
  bool got = wait_for(events_done,
                      timeout + (uint64_t)nevents * WCN_EVENT_INTERVAL);
  wait_for(never, 2 * WCN_EVENT_INTERVAL); /* anything extra arrives now */
  uint32_t handled = datapath_count - events_from;
  uint32_t fired = mmio_read32(bar0 + WCN_REG_EVENTS) - fired0;
  resp = mmio_read32(bar0 + WCN_REG_RESPONSE);
  if (!got)
    printf("ath11k_pci %s: timed out waiting for events: got %u of %u\n", bdf,
           handled, nevents);
  reportf("ath11k_events",
          got && handled == nevents && fired == nevents &&
              resp == WCN_CMD_EVENTS,
          "handled %u, device fired %u, requested %u, response 0x%04x",
          handled, fired, nevents, resp);

  /* Per-source summary and the vector/CPU check. */
  bool vec_ok = true, cnt_ok = true;
  for (unsigned i = 0; i < WCN_NUM_SOURCES; i++) {
    uint32_t want_vec = base + (i % nvec);
    for (int v = 0; v < 256; v++) {
      if (!src_vec[i][v]) continue;
      printf("ath11k: src %s vector 0x%02x count %u\n", src_names[i], v,
             src_vec[i][v]);
      if ((uint32_t)v != want_vec) {
        printf("ath11k: src %s: wrong vector: expected 0x%02x, got 0x%02x "
               "(%u time(s))\n", src_names[i], want_vec, v, src_vec[i][v]);
        vec_ok = false;
      }
    }
    if (src_cpu_wrong[i]) {
      printf("ath11k: src %s: %u interrupt(s) not on APIC id %u\n",
             src_names[i], src_cpu_wrong[i], dest);
      vec_ok = false;
    }
    /* Expected: MHI once (boot), CE2 once (HTT) + the events, which cycle
       over CE0..DP3 starting at CE0. */
    uint32_t want = 0;
    if (i == WCN_SRC_MHI) want = 1;
    if (i >= WCN_SRC_CE0) {
      uint32_t k = i - WCN_SRC_CE0, nds = WCN_NUM_SOURCES - WCN_SRC_CE0;
      want = nevents / nds + (k < nevents % nds ? 1 : 0);
    }
    if (i == WCN_SRC_CE2) want++;
    if (src_count[i] != want) {
      printf("ath11k: src %s: count %u, expected %u\n", src_names[i],
             src_count[i], want);
      cnt_ok = false;
    }
  }
  /* Events are WCN_EVENT_INTERVAL apart, so every interrupt must carry
     exactly one new source bit: more bits than interrupts means some source
     never sent its own MSI (its bit was only seen from another source's
     interrupt on a shared vector). */
  uint32_t empty = 0;
  bool one_each = true;
  for (int v = 0; v < 256; v++) {
    empty += vec_empty[v];
    if (vec_bits[v] != vec_irqs[v] - vec_empty[v]) {
      printf("ath11k: vector 0x%02x: %u interrupt(s) for %u source event(s)\n",
             v, vec_irqs[v] - vec_empty[v], vec_bits[v]);
      one_each = false;
    }
  }
  if (empty) printf("ath11k: %u interrupt(s) with IRQ_STATUS clear\n", empty);
  if (unknown_bits)
    printf("ath11k: unknown IRQ_STATUS bits 0x%x\n",
           unknown_bits << WCN_NUM_SOURCES);
  reportf("ath11k_event_sources",
          cnt_ok && one_each && !unknown_bits && empty == 0,
          "per-source counts %s, one source per interrupt %s, unknown status "
          "bits 0x%x, %u empty", cnt_ok ? "ok" : "WRONG",
          one_each ? "ok" : "NO", unknown_bits << WCN_NUM_SOURCES, empty);
  reportf("ath11k_vectors", vec_ok,
          "a source arrived on a vector other than 0x%02x + (source %% %u) "
          "or not on APIC id %u", base, nvec, dest);
  report_exit();
}
