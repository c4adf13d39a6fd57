/*
 * irq_counter.h: per-CPU, per-vector interrupt counting shared by the
 * device test programs (ioapic, pci). Header-only; include it once, from
 * the program's .c file, after runtime.h.
 *
 *   irq_set_handler(v, on_irq);        count vector v (per CPU in hits[][])
 *   hooks[v] = fn;                     also call fn(v, nth, cpu) in the handler
 *   wait_total(v, n)                   wait (IF=1) until total[v] >= n
 *   settle()                           let anything in flight arrive
 *   ap_main                            AP body for smp_start_aps: sti; hlt
 */
#ifndef IRQLAB_GUEST_IRQ_COUNTER_H_
#define IRQLAB_GUEST_IRQ_COUNTER_H_

#include "runtime.h"

#define NCPU_MAX 8
#define WAIT_LOOPS 2000000

static volatile uint32_t hits[NCPU_MAX][256];
static volatile uint32_t total[256];
typedef void (*hook_fn)(int vector, uint32_t nth, int cpu);
static hook_fn hooks[256];
static int ncpus = 1;
static uint64_t settle_loops = 20000;

static void on_irq(struct irq_frame *f) {
  int v = (int)(f->vector & 0xFF);
  int cpu = (int)lapic_id();
  if (cpu < NCPU_MAX) hits[cpu][v]++;
  uint32_t n = __atomic_add_fetch(&total[v], 1, __ATOMIC_SEQ_CST);
  if (hooks[v]) hooks[v](v, n, cpu);
}

static void ap_main(int cpu) {
  (void)cpu;
  for (;;) sti_hlt();
}

/* Waits with IF=1 until total[v] >= want; false on timeout. */
static bool wait_total(int v, uint32_t want) {
  sti();
  for (uint64_t i = 0; i < WAIT_LOOPS && total[v] < want; i++) cpu_relax();
  cli();
  return total[v] >= want;
}
/* Gives anything in flight time to arrive (IF=1). */
static void settle(void) {
  sti();
  delay_loops(settle_loops);
  cli();
}

#endif  /* IRQLAB_GUEST_IRQ_COUNTER_H_ */
