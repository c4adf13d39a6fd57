/* KERNEL-DESCRIPTION: Benchmark guest: raise -> interrupt 0x40 -> incq+EOI+iretq round trips from an edu MSI (optionally through VT-d interrupt remapping set up as Linux does) or a self IPI (xAPIC ICR / x2APIC SELF_IPI), virtual ticks per interrupt */
/*
 * irqbench: the interrupt round-trip benchmark guest of
 * bench/machine_bench.cc (BM_IrqRoundTrip). It is eduloop's loop (raise,
 * then spin with IF=1 until a minimal raw handler has counted the
 * interrupt) with more sources and APIC modes; eduloop itself stays as it
 * is because golden traces (tests/golden/vfio.*) record its exact
 * instruction stream.
 *
 * Sources (vector 0x40 on the BSP, the handler bypasses the runtime's
 * dispatch: incq count; [edu ack]; EOI; iretq):
 *   source=edu  (default; needs --device=edu) edu's raise register (0x60):
 *               one MSI write per raise. Memory decode and bus master on,
 *               MSI capability with 1 message. The handler acks the edu
 *               interrupt status (0x64) unless ack=0.
 *   source=ipi  a self IPI: in xAPIC mode an ICR low write with the self
 *               shorthand (fixed, edge, SDM 11.6.1); in x2APIC mode a write
 *               of the SELF_IPI MSR 0x83F (SDM 11.12.11).
 *
 * Options:
 *   ir=1       (source=edu; needs --device=intel-iommu) the edu MSI goes
 *              through VT-d interrupt remapping, programmed the way Linux
 *              does (drivers/iommu/intel/dmar.c, irq_remapping.c): queued
 *              invalidation (IQA, IQT=0, QIE), IRTA + SIRTP, global IEC
 *              invalidation (qi_flush_iec, with a wait descriptor), IRE.
 *              Then IRTE 0 = vector 0x40, fixed, edge, physical destination
 *              = the BSP's APIC id, SVT=01b with the edu requester id
 *              (SQ=0), an index-selective IEC invalidation of it, and the
 *              MSI in remappable format (address 0xFEE00010 | SHV, handle
 *              0; data 0 = subhandle). IRTA.EIME follows ECAP.EIM (x2APIC
 *              32-bit destinations, as Linux with x2APIC) unless eim=0.
 *              After the loop FSTS must read 0 (no fault recorded).
 *   eim=0      with ir=1: IRTA.EIME=0 (xAPIC-format IRTE) even if ECAP.EIM.
 *   x2apic=1   the BSP switches to x2APIC mode (needs CPUID x2APIC): the
 *              handler EOIs with WRMSR 0x80B instead of the xAPIC page;
 *              source=ipi sends through SELF_IPI.
 *   fixmap=0   use the xAPIC page through the identity map (0xFEE00000)
 *              instead of the default Linux-style fixmap page
 *              (runtime/fixmap.h: FIXMAP_LAPIC_VA); the difference is
 *              Unicorn's TLB slot sharing described there.
 *   ack=0      (source=edu) handler without the edu ack write.
 *   count=N    round trips (1000).
 *   start=T    before the loop, spin (IF=0) until RDTSC >= T, so a host can
 *              boot the guest up to T outside a timed region; prints
 *              "irqbench: ready" first; FAIL if T had already passed.
 *   timeout=L  pause iterations to wait for one interrupt (10000000).
 *
 * Prints "irqbench: N interrupts in T ticks (P ticks/interrupt)" (RDTSC;
 * one tick is one virtual ns) and exits 0 iff all N arrived (and, with the
 * edu ack, the interrupt status is 0 again; with ir=1, no VT-d fault).
 */
#include "runtime.h"
#include "pci.h"
#include "vtd.h"
#include "fixmap.h"

#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define IRQBENCH_VECTOR 0x40

volatile uint64_t irqbench_count;
uint64_t irqbench_ack_addr; /* edu BAR0 + 0x64, read by the ack handlers */
uint64_t irqbench_eoi_addr; /* the xAPIC EOI register's virtual address */

/* Four raw handlers: {edu ack, no ack} x {xAPIC EOI (MMIO), x2APIC EOI
 * (WRMSR 0x80B)}. */
__asm__(
    ".pushsection .text\n"
    ".balign 16\n"
    ".globl irqbench_h_ack_mmio\n"
    "irqbench_h_ack_mmio:\n"
    "  incq irqbench_count(%rip)\n"
    "  push %rax\n"
    "  movq irqbench_ack_addr(%rip), %rax\n"
    "  movl $1, (%rax)\n"
    "  movq irqbench_eoi_addr(%rip), %rax\n"
    "  movl $0, (%rax)\n"
    "  pop %rax\n"
    "  iretq\n"
    ".balign 16\n"
    ".globl irqbench_h_noack_mmio\n"
    "irqbench_h_noack_mmio:\n"
    "  incq irqbench_count(%rip)\n"
    "  push %rax\n"
    "  movq irqbench_eoi_addr(%rip), %rax\n"
    "  movl $0, (%rax)\n"
    "  pop %rax\n"
    "  iretq\n"
    ".balign 16\n"
    ".globl irqbench_h_ack_msr\n"
    "irqbench_h_ack_msr:\n"
    "  incq irqbench_count(%rip)\n"
    "  push %rax\n"
    "  push %rcx\n"
    "  push %rdx\n"
    "  movq irqbench_ack_addr(%rip), %rax\n"
    "  movl $1, (%rax)\n"
    "  movl $0x80b, %ecx\n"
    "  xorl %eax, %eax\n"
    "  xorl %edx, %edx\n"
    "  wrmsr\n"
    "  pop %rdx\n"
    "  pop %rcx\n"
    "  pop %rax\n"
    "  iretq\n"
    ".balign 16\n"
    ".globl irqbench_h_noack_msr\n"
    "irqbench_h_noack_msr:\n"
    "  incq irqbench_count(%rip)\n"
    "  push %rax\n"
    "  push %rcx\n"
    "  push %rdx\n"
    "  movl $0x80b, %ecx\n"
    "  xorl %eax, %eax\n"
    "  xorl %edx, %edx\n"
    "  wrmsr\n"
    "  pop %rdx\n"
    "  pop %rcx\n"
    "  pop %rax\n"
    "  iretq\n"
    ".popsection\n");
void irqbench_h_ack_mmio(void);
void irqbench_h_noack_mmio(void);
void irqbench_h_ack_msr(void);
void irqbench_h_noack_msr(void);

enum raise_kind { RAISE_EDU, RAISE_ICR_SELF, RAISE_SELF_IPI_MSR };

/* The measured loop, specialised per source (always inlined with a
 * constant `kind`, so the loop body has no dispatch). Returns the number of
 * round trips that completed before a timeout. */
static inline __attribute__((always_inline)) uint64_t
round_trips(enum raise_kind kind, volatile uint32_t *raise, uint64_t want,
            uint64_t timeout) {
  for (uint64_t i = 1; i <= want; i++) {
    if (kind == RAISE_EDU) {
      *raise = 1;
    } else if (kind == RAISE_ICR_SELF) {
      *raise = ICR_SELF | ICR_FIXED | IRQBENCH_VECTOR;
    } else {
      wrmsr(MSR_X2APIC_SELF_IPI, IRQBENCH_VECTOR);
    }
    uint64_t spins = 0;
    while (irqbench_count < i) {
      if (++spins > timeout) return i - 1;
      cpu_relax();
    }
  }
  return want;
}

/* Linux's order (dmar_enable_qi, iommu_set_irq_remapping, qi_global_iec,
 * iommu_enable_irq_remapping), then IRTE 0 for the edu MSI and its IEC
 * flush (modify_irte -> qi_flush_iec). False (printed) on any failure. */
static bool ir_setup(uint16_t sid, uint32_t dest, bool eim_want, bool *eime_out) {
  uint32_t ver = vtd_read32(VTD_VER);
  if (ver == 0 || ver == 0xFFFFFFFFu) {
    printf("FAIL: irqbench (ir=1: no VT-d unit at 0x%lx, --device=intel-iommu)\n",
           (uint64_t)VTD_BASE);
    return false;
  }
  uint64_t cap = vtd_read64(VTD_CAP), ecap = vtd_read64(VTD_ECAP);
  vtd_fro = VTD_CAP_FRO(cap);
  if (!(ecap & VTD_ECAP_IR) || !(ecap & VTD_ECAP_QI)) {
    printf("FAIL: irqbench (ir=1: ECAP 0x%lx has no IR/QI, intremap=on)\n", ecap);
    return false;
  }
  bool eime = eim_want && (ecap & VTD_ECAP_EIM);
  uint32_t g1 = vtd_qi_enable();
  uint32_t g2 = vtd_set_irta((uint64_t)(uintptr_t)vtd_irt, eime);
  bool iec = vtd_iec_global();
  uint32_t g3 = vtd_command(VTD_GCMD_IRE, true);
  struct vtd_irte_fields f = {.vector = IRQBENCH_VECTOR, .dest = dest, .sid = sid,
                              .sq = VTD_SQ_ALL, .svt = VTD_SVT_SID};
  vtd_irte_set(0, &f);
  bool iec0 = vtd_iec_index(0, 0);
  printf("irqbench: VT-d IR on: GSTS 0x%08x, IRTA 0x%lx (EIME %d), IRTE 0 = 0x%lx_%016lx "
         "(vector 0x%x -> APIC %u, SID %02x:%02x.%d)\n",
         g3, vtd_read64(VTD_IRTA), eime, vtd_irt[0].hi, vtd_irt[0].lo, IRQBENCH_VECTOR,
         dest, sid >> 8, (sid >> 3) & 0x1F, sid & 7);
  if (!(g1 & VTD_GSTS_QIES) || !(g2 & VTD_GSTS_IRTPS) || !iec || !iec0 ||
      !(g3 & VTD_GSTS_IRES) || vtd_read32(VTD_FSTS) != 0) {
    printf("FAIL: irqbench (VT-d bring-up: GSTS 0x%x 0x%x 0x%x, IEC flush %d/%d, "
           "FSTS 0x%x)\n",
           g1, g2, g3, iec, iec0, vtd_read32(VTD_FSTS));
    return false;
  }
  *eime_out = eime;
  return true;
}

int main(void) {
  char source[8] = "edu";
  cmdline_get_str("source", source, sizeof(source));
  uint64_t want = (uint64_t)cmdline_get_int("count", 1000);
  bool ack = cmdline_get_int("ack", 1) != 0;
  bool ir = cmdline_get_int("ir", 0) != 0;
  bool eim_want = cmdline_get_int("eim", 1) != 0;
  bool x2 = cmdline_get_int("x2apic", 0) != 0;
  bool fixmap = cmdline_get_int("fixmap", 1) != 0;
  uint64_t start = (uint64_t)cmdline_get_int("start", 0);
  uint64_t timeout = (uint64_t)cmdline_get_int("timeout", 10000000);
  bool edu = strcmp(source, "edu") == 0;
  if (!edu && strcmp(source, "ipi") != 0) {
    printf("FAIL: irqbench (source=%s: want edu or ipi)\n", source);
    return 1;
  }
  if (!edu && ir) {
    printf("FAIL: irqbench (ir=1 needs source=edu: IPIs are not remapped)\n");
    return 1;
  }
  if (!edu) ack = false;

  if (x2) {
    if (!cpu_has_x2apic()) {
      printf("FAIL: irqbench (x2apic=1 but CPUID reports no x2APIC)\n");
      return 1;
    }
    lapic_enable_x2apic();
  }
  const uint64_t lapic_va = fixmap ? lapic_fixmap() : LAPIC_BASE;
  irqbench_eoi_addr = lapic_va + LAPIC_EOI;
  uint32_t apic_id = x2 ? (uint32_t)rdmsr(X2APIC_MSR(LAPIC_ID)) : lapic_id();
  void (*handler)(void) = ack ? (x2 ? irqbench_h_ack_msr : irqbench_h_ack_mmio)
                              : (x2 ? irqbench_h_noack_msr : irqbench_h_noack_mmio);

  int dev = -1, fn = 0, msi = 0;
  uint16_t cmd = 0, mctl = 0;
  uint64_t bar = 0;
  bool eime = false;
  enum raise_kind kind;
  volatile uint32_t *raise;
  if (edu) {
    int devfn = pci_find_device(0x1234, 0x11E8);
    if (devfn < 0) {
      printf("FAIL: irqbench (edu not attached, --device=edu)\n");
      return 1;
    }
    dev = devfn >> 3;
    fn = devfn & 7;
    bar = pci_bar_address(dev, fn, 0);
    msi = pci_find_cap(dev, fn, PCI_CAP_ID_MSI);
    if (bar == 0 || msi == 0) {
      printf("FAIL: irqbench (bar0 0x%lx msi cap 0x%x)\n", bar, msi);
      return 1;
    }
    uint32_t addr = MSI_ADDR(apic_id), data = MSI_DATA_EDGE(IRQBENCH_VECTOR);
    if (ir) {
      if (!ir_setup(VTD_SID(0, dev, fn), apic_id, eim_want, &eime)) return 1;
      addr = VTD_MSI_ADDR_REMAP(0, true); /* handle 0, SHV */
      data = 0;                           /* subhandle 0 */
    }
    irqbench_ack_addr = bar + EDU_IRQ_ACK;
    cmd = pci_cfg_read16(0, dev, fn, PCI_COMMAND);
    pci_cfg_write16(0, dev, fn, PCI_COMMAND,
                    cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    mctl = pci_cfg_read16(0, dev, fn, msi + PCI_MSI_FLAGS);
    bool is64 = mctl & PCI_MSI_FLAGS_64BIT;
    pci_cfg_write32(0, dev, fn, msi + PCI_MSI_ADDRESS_LO, addr);
    if (is64) pci_cfg_write32(0, dev, fn, msi + PCI_MSI_ADDRESS_HI, 0);
    pci_cfg_write16(0, dev, fn, msi + PCI_MSI_DATA(is64), (uint16_t)data);
    pci_cfg_write16(0, dev, fn, msi + PCI_MSI_FLAGS,
                    (mctl & ~0x70) | PCI_MSI_FLAGS_ENABLE); /* 1 message */
    kind = RAISE_EDU;
    raise = (volatile uint32_t *)(uintptr_t)(bar + EDU_IRQ_RAISE);
    printf("irqbench: edu at 00:%02x.%d bar0 0x%lx, MSI 0x%08x/0x%04x (%s), vector "
           "0x%x, %s EOI%s, %lu round trips, ack %d\n",
           dev, fn, bar, addr, data,
           ir ? (eime ? "remappable, VT-d IR EIME=1" : "remappable, VT-d IR EIME=0")
              : "compatibility",
           IRQBENCH_VECTOR, x2 ? "x2APIC" : "xAPIC",
           x2 ? "" : (fixmap ? " (fixmap page)" : " (identity-mapped page)"), want, ack);
  } else {
    kind = x2 ? RAISE_SELF_IPI_MSR : RAISE_ICR_SELF;
    raise = (volatile uint32_t *)(uintptr_t)(lapic_va + LAPIC_ICR_LO);
    printf("irqbench: self IPI through %s, vector 0x%x, %s EOI%s, %lu round trips\n",
           x2 ? "the x2APIC SELF_IPI MSR 0x83F" : "the xAPIC ICR (self shorthand)",
           IRQBENCH_VECTOR, x2 ? "x2APIC" : "xAPIC",
           x2 ? "" : (fixmap ? " (fixmap page)" : " (identity-mapped page)"), want);
  }
  idt_set_gate(IRQBENCH_VECTOR, handler, 0);

  if (start) {
    uint64_t now = rdtsc();
    printf("irqbench: ready at %lu, start at %lu\n", now, start);
    if (now >= start) {
      printf("FAIL: irqbench (booted past start=%lu)\n", start);
      return 1;
    }
    while (rdtsc() < start) cpu_relax();
  }

  sti();
  uint64_t t0 = rdtsc(), done;
  switch (kind) {
    case RAISE_EDU: done = round_trips(RAISE_EDU, raise, want, timeout); break;
    case RAISE_ICR_SELF: done = round_trips(RAISE_ICR_SELF, raise, want, timeout); break;
    default: done = round_trips(RAISE_SELF_IPI_MSR, raise, want, timeout); break;
  }
  uint64_t t1 = rdtsc();
  cli();

  uint64_t got = irqbench_count, ticks = t1 - t0;
  printf("irqbench: %lu interrupts in %lu ticks (%lu ticks/interrupt)\n", got,
         ticks, got ? ticks / got : 0);
  bool ok = done == want && got == want;
  if (edu) {
    if (ack && mmio_read32(bar + EDU_IRQ_STATUS) != 0) {
      printf("FAIL: irqbench (edu interrupt status 0x%x after the loop)\n",
             mmio_read32(bar + EDU_IRQ_STATUS));
      ok = false;
    }
    if (ir && vtd_read32(VTD_FSTS) != 0) {
      struct vtd_fault f = vtd_read_fault();
      printf("FAIL: irqbench (VT-d FSTS 0x%x: reason 0x%x index 0x%x: %s)\n",
             f.fsts, f.reason, f.index, vtd_fault_reason_string(f.reason));
      ok = false;
    }
    pci_cfg_write16(0, dev, fn, msi + PCI_MSI_FLAGS, mctl);
    pci_cfg_write16(0, dev, fn, PCI_COMMAND, cmd);
  }
  if (!ok) {
    printf("FAIL: irqbench (%lu of %lu interrupts)\n", got, want);
    return 1;
  }
  printf("PASS: irqbench\n");
  return 0;
}
