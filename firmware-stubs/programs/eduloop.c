/* KERNEL-DESCRIPTION: Benchmark guest: edu raise (0x60) -> MSI vector 0x40 -> incq+ack+EOI+iretq handler, count=N round trips, virtual ticks per interrupt */
/*
 * eduloop: end-to-end device interrupt benchmark with QEMU's edu device
 * (needs --device=edu). Finds edu (1234:11E8) on bus 0, enables memory
 * decode and bus master, programs its MSI capability (address 0xFEE00000,
 * destination APIC id 0, fixed, edge, vector 0x40, enable) and points vector
 * 0x40 straight at a minimal handler that bypasses the runtime's dispatch:
 *
 *   incq count; movl $1, edu+0x64 (ack); movl $0, LAPIC EOI; iretq
 *
 * The ack (QEMU's edu drivers write the interrupt status back to 0x64) is
 * not needed for MSI delivery here (every raise signals) but keeps the
 * device's interrupt status clean, as a real driver does; ack=0 drops it.
 *
 * Then, with IF=1, `count=N` times (default 1000): write 1 to the raise
 * register (0x60) and spin (pause) until the handler has run. Prints
 * "eduloop: N interrupts in T ticks (P ticks/interrupt)" (RDTSC; one tick
 * is one virtual ns) and exits 0 iff all N arrived.
 *
 * Options:
 *   count=N    round trips (1000)
 *   ack=0      handler without the edu ack write
 *   start=T    before the loop, spin (IF=0) until RDTSC >= T, so a host
 *              can boot the guest up to T outside a timed region; the guest
 *              prints "eduloop: ready" before spinning and reports FAIL if
 *              T had already passed (exit 1)
 *   timeout=L  pause iterations to wait for one interrupt (10000000);
 *              a lost interrupt ends the run with exit code 1
 */
#include "runtime.h"
#include "pci.h"

#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define EDULOOP_VECTOR 0x40

volatile uint64_t eduloop_count;
uint64_t eduloop_ack_addr; /* edu BAR0 + 0x64, read by the handler */

__asm__(
    ".pushsection .text\n"
    ".balign 16\n"
    ".globl eduloop_handler\n"
    "eduloop_handler:\n"
    "  incq eduloop_count(%rip)\n"
    "  push %rax\n"
    "  movq eduloop_ack_addr(%rip), %rax\n"
    "  movl $1, (%rax)\n"              /* edu interrupt acknowledge */
    "  movabs $0xfee000b0, %rax\n"     /* local APIC EOI register */
    "  movl $0, (%rax)\n"
    "  pop %rax\n"
    "  iretq\n"
    ".balign 16\n"
    ".globl eduloop_handler_noack\n"
    "eduloop_handler_noack:\n"
    "  incq eduloop_count(%rip)\n"
    "  push %rax\n"
    "  movabs $0xfee000b0, %rax\n"
    "  movl $0, (%rax)\n"
    "  pop %rax\n"
    "  iretq\n"
    ".popsection\n");
void eduloop_handler(void);
void eduloop_handler_noack(void);

int main(void) {
  uint64_t want = (uint64_t)cmdline_get_int("count", 1000);
  bool ack = cmdline_get_int("ack", 1) != 0;
  uint64_t start = (uint64_t)cmdline_get_int("start", 0);
  uint64_t timeout = (uint64_t)cmdline_get_int("timeout", 10000000);

  int devfn = pci_find_device(0x1234, 0x11E8);
  if (devfn < 0) {
    printf("FAIL: eduloop (edu not attached, --device=edu)\n");
    return 1;
  }
  int dev = devfn >> 3, fn = devfn & 7;
  uint64_t bar = pci_bar_address(dev, fn, 0);
  int msi = pci_find_cap(dev, fn, PCI_CAP_ID_MSI);
  if (bar == 0 || msi == 0) {
    printf("FAIL: eduloop (bar0 0x%lx msi cap 0x%x)\n", bar, msi);
    return 1;
  }
  eduloop_ack_addr = bar + EDU_IRQ_ACK;
  idt_set_gate(EDULOOP_VECTOR, ack ? eduloop_handler : eduloop_handler_noack, 0);

  uint16_t cmd = pci_cfg_read16(0, dev, fn, PCI_COMMAND);
  pci_cfg_write16(0, dev, fn, PCI_COMMAND,
                  cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  uint16_t mctl = pci_cfg_read16(0, dev, fn, msi + PCI_MSI_FLAGS);
  bool is64 = mctl & PCI_MSI_FLAGS_64BIT;
  pci_cfg_write32(0, dev, fn, msi + PCI_MSI_ADDRESS_LO, MSI_ADDR(0));
  if (is64) pci_cfg_write32(0, dev, fn, msi + PCI_MSI_ADDRESS_HI, 0);
  pci_cfg_write16(0, dev, fn, msi + PCI_MSI_DATA(is64),
                  MSI_DATA_EDGE(EDULOOP_VECTOR));
  pci_cfg_write16(0, dev, fn, msi + PCI_MSI_FLAGS,
                  (mctl & ~0x70) | PCI_MSI_FLAGS_ENABLE); /* 1 message */

  printf("eduloop: edu at 00:%02x.%d bar0 0x%lx, MSI vector 0x%x, %lu round "
         "trips, ack %d\n",
         dev, fn, bar, EDULOOP_VECTOR, want, ack);
  if (start) {
    uint64_t now = rdtsc();
    printf("eduloop: ready at %lu, start at %lu\n", now, start);
    if (now >= start) {
      printf("FAIL: eduloop (booted past start=%lu)\n", start);
      return 1;
    }
    while (rdtsc() < start) cpu_relax();
  }

  volatile uint32_t *raise = (volatile uint32_t *)(uintptr_t)(bar + EDU_IRQ_RAISE);
  bool lost = false;
  sti();
  uint64_t t0 = rdtsc();
  for (uint64_t i = 1; i <= want; i++) {
    *raise = 1;
    uint64_t spins = 0;
    while (eduloop_count < i) {
      if (++spins > timeout) break;
      cpu_relax();
    }
    if (eduloop_count < i) {
      lost = true;
      break;
    }
  }
  uint64_t t1 = rdtsc();
  cli();

  uint64_t got = eduloop_count, ticks = t1 - t0;
  printf("eduloop: %lu interrupts in %lu ticks (%lu ticks/interrupt)\n", got,
         ticks, got ? ticks / got : 0);
  if (ack && mmio_read32(bar + EDU_IRQ_STATUS) != 0) {
    printf("FAIL: eduloop (interrupt status 0x%x after the loop)\n",
           mmio_read32(bar + EDU_IRQ_STATUS));
    return 1;
  }
  pci_cfg_write16(0, dev, fn, msi + PCI_MSI_FLAGS, mctl);
  pci_cfg_write16(0, dev, fn, PCI_COMMAND, cmd);
  if (lost || got != want) {
    printf("FAIL: eduloop (%lu of %lu interrupts)\n", got, want);
    return 1;
  }
  printf("PASS: eduloop\n");
  return 0;
}
