/* KERNEL-DESCRIPTION: CR8 is the local APIC's TPR: reads and writes both ways, masking by priority class, the interrupt a CR8 write unmasks taken right after it, #GP on reserved bits */
/*
 * cr8: proves SDM vol. 3, 10.8.6.1 ("Interaction of Task Priorities between
 * CR8 and APIC"; 11.8.6.1 in newer editions) on the BSP, in 64-bit mode:
 *   cr8_write_sets_tpr   MOV CR8 = 2 makes TPR (MMIO 0x80) 0x20 (TPR[3:0] = 0)
 *   tpr_write_reads_cr8  TPR = 0x37 through MMIO reads back as CR8 = 3
 *   cr8_masks_class      with CR8 = 2, a self-IPI of vector 0x25 (class 2)
 *                        stays pending in the IRR with IF = 1 (SDM 11.8.3.1:
 *                        delivered only if its class > PPR's class)
 *   cr8_unmask_delivers  MOV CR8 = 0 delivers it before the next instruction
 *                        completes (the handler ran when the instruction
 *                        after the MOV reads the counter)
 *   cr8_reserved_gp      MOV CR8 with bit 4 set raises #GP(0) and leaves TPR
 * The xAPIC registers are used through MMIO (the runtime's default mode).
 */
#include "runtime.h"

#define CR8_VECTOR 0x25

static volatile uint64_t irq_count;
static volatile uint64_t gp_count;

static void on_irq(struct irq_frame *f) {
  (void)f;
  irq_count++;
}

/* #GP from the 4-byte `mov %rax, %cr8` below: skip it. */
static void on_gp(struct irq_frame *f) {
  gp_count++;
  f->rip += 4;
}

static inline uint64_t read_cr8(void) {
  uint64_t v;
  __asm__ volatile("mov %%cr8, %0" : "=r"(v));
  return v;
}

static inline void write_cr8(uint64_t v) {
  __asm__ volatile("mov %0, %%cr8" : : "r"(v) : "memory");
}

int main(void) {
  lapic_enable();
  irq_set_handler(CR8_VECTOR, on_irq);

  write_cr8(2);
  uint32_t tpr = lapic_read(LAPIC_TPR);
  reportf("cr8_write_sets_tpr", tpr == 0x20 && read_cr8() == 2, "TPR 0x%x, CR8 %lu", tpr,
          read_cr8());

  lapic_write(LAPIC_TPR, 0x37);
  uint64_t cr8 = read_cr8();
  reportf("tpr_write_reads_cr8", cr8 == 3, "CR8 %lu after TPR 0x37", cr8);

  write_cr8(2);
  sti();
  lapic_write(LAPIC_ICR_LO, (1u << 18) | CR8_VECTOR); /* self IPI, fixed */
  for (int i = 0; i < 1000; i++) cpu_relax();
  uint32_t irr = lapic_read(LAPIC_IRR + 0x10 * (CR8_VECTOR / 32));
  bool pending = irr & (1u << (CR8_VECTOR % 32));
  reportf("cr8_masks_class", irq_count == 0 && pending, "%lu interrupts, IRR bit %d",
          irq_count, pending);

  /* The interrupt is taken at the boundary right after the MOV to CR8: the
     load of irq_count that follows it already sees the handler's count. */
  uint64_t after;
  __asm__ volatile("mov %1, %%cr8\n\tmov %2, %0"
                   : "=r"(after)
                   : "r"((uint64_t)0), "m"(irq_count)
                   : "memory");
  reportf("cr8_unmask_delivers", after == 1, "count %lu right after MOV CR8 = 0", after);
  cli();

  irq_set_handler(13, on_gp);
  write_cr8(1);
  __asm__ volatile(".byte 0x44, 0x0f, 0x22, 0xc0" /* mov %rax, %cr8 */
                   : : "a"((uint64_t)0x10) : "memory");
  irq_set_handler(13, NULL);
  tpr = lapic_read(LAPIC_TPR);
  reportf("cr8_reserved_gp", gp_count == 1 && tpr == 0x10, "%lu #GP, TPR 0x%x", gp_count,
          tpr);
  write_cr8(0);
  report_exit();
}
