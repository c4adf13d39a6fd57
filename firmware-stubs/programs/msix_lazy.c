/* KERNEL-DESCRIPTION: Seed 004: a NIC driver probes its PF/firmware mailbox with MSI-X enabled but every vector masked (irqlab-nic), Linux or FreeBSD enable order (profile=linux or freebsd) */
/*
 * msix_lazy: the driver side of seed 004 ("lazy MSI-X enabling in device
 * assignment"). The device is irqlab-nic (1337:0010, devices/sriov_nic.h),
 * bare metal or assigned through vfio: its firmware answers a mailbox
 * request (and signals MSI-X entry 0) only while MSI-X is enabled on the
 * function it sees — through vfio, the HOST's physical function. A VMM that
 * enables MSI-X on the host lazily, only when the guest unmasks a vector,
 * makes the probe-time mailbox request vanish.
 *
 * The driver asks for 3 vectors (entry 0 = mailbox/other causes, 1-2 =
 * queues): entry i -> vector 0x60 + i, fixed, edge, APIC id 0.
 *
 * profile=linux (Linux 3.x msix_capability_init, as in the seed's time):
 *   MSI-X disabled; entries 0-2 get their address/data while masked (reset
 *   state); Message Control = Enable | Function Mask; every entry's Mask
 *   bit written set again (msix_program_entries); Function Mask cleared.
 * profile=freebsd (pci_alloc_msix_method + later bus_setup_intr): every
 *   entry masked; Message Control = Enable with the table still empty
 *   (data 0); then, later, entries 0-2 get their address/data (masked).
 *
 * Then, in both profiles, with every vector still masked (the driver needs
 * its PF mailbox during probe, before request_irq unmasks anything):
 *   1. print what the device sees ("device sees MSI-X enabled=0|1", the
 *      NIC's STATUS register, which vfio passes through from the host);
 *   2. msix_lazy_probe_mailbox: write MBX_REQ 0x00010001, poll MBX_STATUS
 *      DONE with a timeout: "msix_lazy: mailbox answered (0x80010001)" or
 *      "msix_lazy: mailbox timeout"; when answered, the mailbox vector was
 *      masked, so its PBA bit must be set (checked in the same test);
 *   3. msix_lazy_pending_on_unmask (SKIP when nothing was answered): unmask
 *      entry 0 -> exactly one interrupt on 0x60 (the pending answer);
 *   4. msix_lazy_mailbox_after_unmask: with entry 0 unmasked (a lazy VMM
 *      enables host MSI-X now), a second request 0x00010002 is answered and
 *      raises exactly one interrupt on 0x60;
 *   5. MSI-X disabled again (the driver's remove path).
 * Exit status 1 iff every test passed (3 when some failed).
 *
 * Options: profile=linux|freebsd (linux), timeout=L poll iterations for a
 * mailbox answer (200000).
 */
#include "runtime.h"
#include "irq_counter.h"
#include "pci.h"

#define NIC_VENDOR 0x1337
#define NIC_DEVICE 0x0010
#define NIC_STATUS 0x0008
#define NIC_STATUS_MSIX 0x1
#define NIC_MBX_REQ 0x0C00
#define NIC_MBX_STATUS 0x0C04
#define NIC_MBX_DONE 0x2
#define NIC_MBX_RESP 0x0C08
#define NIC_EICR 0x1580
#define NIC_MBX_ACK 0x80000000u

#define NVEC 3
#define VECTOR0 0x60

static int dev;
static int msix;
static uint64_t bar0, table, pba;
static uint32_t tsize;
static uint64_t timeout;

static uint64_t entry(uint32_t i) { return table + (uint64_t)i * PCI_MSIX_ENTRY_SIZE; }
static void ctrl_write(uint16_t v) { pci_cfg_write16(0, dev, 0, msix + PCI_MSIX_FLAGS, v); }
static void mask_entry(uint32_t i, bool masked) {
  mmio_write32(entry(i) + PCI_MSIX_ENTRY_CTRL, masked ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0);
}
static void program_entry(uint32_t i) {
  mmio_write32(entry(i) + PCI_MSIX_ENTRY_ADDR_LO, MSI_ADDR(0));
  mmio_write32(entry(i) + PCI_MSIX_ENTRY_ADDR_HI, 0);
  mmio_write32(entry(i) + PCI_MSIX_ENTRY_DATA, MSI_DATA_EDGE(VECTOR0 + i));
}

/* Sends a mailbox request and polls for the answer; returns the response
 * or 0 on timeout. */
static uint32_t mailbox(uint32_t request) {
  mmio_write32(bar0 + NIC_MBX_REQ, request);
  for (uint64_t i = 0; i < timeout; i++) {
    if (mmio_read32(bar0 + NIC_MBX_STATUS) & NIC_MBX_DONE) {
      uint32_t resp = mmio_read32(bar0 + NIC_MBX_RESP);
      mmio_write32(bar0 + NIC_MBX_STATUS, NIC_MBX_DONE);
      mmio_write32(bar0 + NIC_EICR, 1);
      return resp;
    }
    cpu_relax();
  }
  return 0;
}

static void enable_linux(void) {
  ctrl_write(0);
  for (uint32_t i = 0; i < NVEC; i++) program_entry(i);
  ctrl_write(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  for (uint32_t i = 0; i < tsize; i++) mask_entry(i, true);
  ctrl_write(PCI_MSIX_FLAGS_ENABLE);
}

static void enable_freebsd(void) {
  for (uint32_t i = 0; i < tsize; i++) mask_entry(i, true);
  ctrl_write(PCI_MSIX_FLAGS_ENABLE);
  /* ... later, bus_setup_intr: the messages, entries still masked. */
  for (uint32_t i = 0; i < NVEC; i++) program_entry(i);
}

int main(void) {
  char profile[16] = "linux";
  cmdline_get_str("profile", profile, sizeof(profile));
  bool freebsd = strcmp(profile, "freebsd") == 0;
  if (!freebsd && strcmp(profile, "linux") != 0) {
    printf("msix_lazy: unknown profile %s (linux|freebsd)\n", profile);
    return 1;
  }
  timeout = (uint64_t)cmdline_get_int("timeout", 200000);
  (void)ap_main; /* irq_counter.h's SMP helpers: one CPU here */
  (void)ncpus;
  for (int v = VECTOR0; v < VECTOR0 + NVEC; v++) irq_set_handler(v, on_irq);

  int devfn = pci_find_device(NIC_VENDOR, NIC_DEVICE);
  if (devfn < 0 || (devfn & 7) != 0) {
    report("msix_lazy_find_nic", false);
    report_exit();
  }
  dev = devfn >> 3;
  msix = pci_find_cap(dev, 0, PCI_CAP_ID_MSIX);
  if (msix == 0) {
    report("msix_lazy_find_nic", false);
    report_exit();
  }
  tsize = (pci_cfg_read16(0, dev, 0, msix + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_QSIZE) + 1;
  uint32_t tbl = pci_cfg_read32(0, dev, 0, msix + PCI_MSIX_TABLE);
  uint32_t pb = pci_cfg_read32(0, dev, 0, msix + PCI_MSIX_PBA);
  bar0 = pci_bar_address(dev, 0, 0);
  table = pci_bar_address(dev, 0, tbl & 7) + (tbl & ~7u);
  pba = pci_bar_address(dev, 0, pb & 7) + (pb & ~7u);
  pci_cfg_write16(0, dev, 0, PCI_COMMAND,
                  pci_cfg_read16(0, dev, 0, PCI_COMMAND) | PCI_COMMAND_MEMORY |
                      PCI_COMMAND_MASTER);
  printf("msix_lazy: irqlab-nic at 00:%02x.0, MSI-X cap 0x%x, %u entries, table BAR%u+0x%x, "
         "PBA BAR%u+0x%x, profile %s\n",
         dev, msix, tsize, tbl & 7, tbl & ~7u, pb & 7, pb & ~7u, freebsd ? "freebsd" : "linux");
  report("msix_lazy_find_nic", tsize >= NVEC);

  if (freebsd) {
    enable_freebsd();
  } else {
    enable_linux();
  }
  printf("msix_lazy: MSI-X enabled, every vector masked; device sees MSI-X enabled=%u\n",
         mmio_read32(bar0 + NIC_STATUS) & NIC_STATUS_MSIX);

  /* 2. The probe-time mailbox request. */
  uint32_t resp = mailbox(0x00010001);
  bool answered = resp == (0x00010001 | NIC_MBX_ACK);
  if (answered) {
    printf("msix_lazy: mailbox answered (0x%08x)\n", resp);
  } else {
    printf("msix_lazy: mailbox timeout\n");
  }
  uint32_t pba0 = mmio_read32(pba) & 1;
  reportf("msix_lazy_probe_mailbox", answered && pba0 == 1,
          "response 0x%08x, PBA bit 0 = %u", resp, pba0);

  /* 3. request_irq: unmask the mailbox vector. */
  mask_entry(0, false);
  if (answered) {
    settle();
    printf("msix_lazy: %u interrupt(s) on 0x%x after unmask\n", total[VECTOR0], VECTOR0);
    reportf("msix_lazy_pending_on_unmask",
            total[VECTOR0] == 1 && (mmio_read32(pba) & 1) == 0,
            "%u interrupt(s) on 0x%x, PBA bit 0 = %u", total[VECTOR0], VECTOR0,
            mmio_read32(pba) & 1);
  } else {
    report_skip("msix_lazy_pending_on_unmask", "no mailbox answer pending");
  }

  /* 4. Normal operation: the mailbox with its vector unmasked. */
  uint32_t before = total[VECTOR0];
  uint32_t resp2 = mailbox(0x00010002);
  bool got = wait_total(VECTOR0, before + 1);
  settle();
  printf("msix_lazy: mailbox after unmask %s, %u interrupt(s)\n",
         resp2 == (0x00010002 | NIC_MBX_ACK) ? "answered" : "timeout",
         total[VECTOR0] - before);
  reportf("msix_lazy_mailbox_after_unmask",
          resp2 == (0x00010002 | NIC_MBX_ACK) && got && total[VECTOR0] == before + 1,
          "response 0x%08x, %u interrupt(s)", resp2, total[VECTOR0] - before);

  /* 5. Remove: MSI-X off. */
  ctrl_write(0);
  report_exit();
}
