/* KERNEL-DESCRIPTION: Counts host-injected interrupts on vectors 0x20-0xFF until count=N (default 3) or a timeout */
/*
 * inject: counts external interrupts injected by the host into the BSP.
 *
 * Installs a counting handler on vectors 0x20..0xFF, enables interrupts
 * and waits until `count=N` interrupts (default 3) arrived or `timeout=L`
 * loop iterations (default 10,000,000, about 1.3 s under QEMU TCG) passed. The handler also checks
 * that IF=0 inside it (interrupt gate), that the interrupted RIP lies in
 * the kernel text and that CS is the kernel's.
 *
 * Prints "vector 0xNN: K" per vector seen and "irq total: N", reports
 * `inject` PASS iff the total equals count and the handler checks held.
 *
 * Options: hlt=1 waits with sti;hlt instead of a pause spin (no timeout
 * then: only interrupts wake the CPU); selftest=K raises K software
 * interrupts (int $0x40 + i) to test the handler without an injector.
 */
#include "runtime.h"

static volatile uint64_t counts[256];
static volatile uint64_t total;
static volatile uint64_t bad_if, bad_rip, bad_cs;

static void on_irq(struct irq_frame *f) {
  if (read_rflags() & RFLAGS_IF) bad_if++;
  if (!addr_in_kernel_text(f->rip)) bad_rip++;
  if (f->cs != KERNEL_CS) bad_cs++;
  counts[f->vector & 0xFF]++;
  total++;
}

/* Software interrupts to vector 0x40 + (i % 4). */
static void selftest(int64_t k) {
  for (int64_t i = 0; i < k; i++) {
    switch (i % 4) {
      case 0: __asm__ volatile("int $0x40"); break;
      case 1: __asm__ volatile("int $0x41"); break;
      case 2: __asm__ volatile("int $0x42"); break;
      default: __asm__ volatile("int $0xfe"); break;
    }
  }
}

int main(void) {
  uint64_t want = (uint64_t)cmdline_get_int("count", 3);
  uint64_t timeout = (uint64_t)cmdline_get_int("timeout", 10000000);
  bool use_hlt = cmdline_get_int("hlt", 0) != 0;
  for (int v = 0x20; v <= 0xFF; v++) irq_set_handler(v, on_irq);

  printf("inject: waiting for %lu interrupts (%s)\n", want,
         use_hlt ? "hlt" : "spin");
  selftest(cmdline_get_int("selftest", 0));

  bool timed_out = false;
  if (use_hlt) {
    for (;;) {
      cli();
      if (total >= want) break;
      sti_hlt();
    }
  } else {
    sti();
    uint64_t i = 0;
    while (total < want) {
      if (++i > timeout) {
        timed_out = true;
        break;
      }
      cpu_relax();
    }
    cli();
  }

  uint64_t sum = 0;
  for (int v = 0; v < 256; v++) {
    if (counts[v]) printf("vector 0x%02x: %lu\n", v, counts[v]);
    sum += counts[v];
  }
  printf("irq total: %lu\n", sum);
  if (timed_out) printf("inject: timed out after %lu loops\n", timeout);
  reportf("inject", sum == want && !bad_if && !bad_rip && !bad_cs,
          "got %lu of %lu; IF set in handler %lu, rip outside kernel %lu, "
          "bad cs %lu", sum, want, bad_if, bad_rip, bad_cs);
  report_exit();
}
