/* KERNEL-DESCRIPTION: Benchmark guest: incq+EOI+iretq handler on 0x20-0xFF, exits 0 after count=N interrupts */
/*
 * irqloop: interrupt-rate benchmark guest. Every vector 0x20..0xFF goes
 * straight to a minimal handler (incq counter; EOI; iretq), bypassing
 * the runtime's frame/dispatch path, so the cost per interrupt is the
 * delivery itself. Waits until `count=N` (default 1000) interrupts arrived,
 * prints the count and exits 0.
 *
 * Waiting: by default cli; check; sti; hlt (the emulator can skip to the
 * next interrupt). spin=1 spins with pause and IF=1 instead; then
 * timeout=L (loop iterations, 0 = none, the default) ends the run with
 * exit code 1 if the count is not reached. selftest=K raises K software
 * interrupts (int $0x40) first, to check the handler without an injector.
 */
#include "runtime.h"

volatile uint64_t irqloop_count;

__asm__(
    ".pushsection .text\n"
    ".balign 16\n"
    ".globl irqloop_handler\n"
    "irqloop_handler:\n"
    "  incq irqloop_count(%rip)\n"
    "  push %rax\n"
    "  movabs $0xfee000b0, %rax\n" /* local APIC EOI register */
    "  movl $0, (%rax)\n"
    "  pop %rax\n"
    "  iretq\n"
    ".popsection\n");
void irqloop_handler(void);

int main(void) {
  uint64_t want = (uint64_t)cmdline_get_int("count", 1000);
  bool spin = cmdline_get_int("spin", 0) != 0;
  uint64_t timeout = (uint64_t)cmdline_get_int("timeout", 0);
  for (int v = 0x20; v <= 0xFF; v++) idt_set_gate(v, irqloop_handler, 0);
  printf("irqloop: waiting for %lu interrupts\n", want);
  for (int64_t i = cmdline_get_int("selftest", 0); i > 0; i--)
    __asm__ volatile("int $0x40");

  if (!spin) {
    for (;;) {
      cli();
      if (irqloop_count >= want) break;
      sti_hlt();
    }
  } else {
    sti();
    uint64_t i = 0;
    while (irqloop_count < want) {
      if (timeout && ++i > timeout) break;
      cpu_relax();
    }
    cli();
  }
  printf("irqloop: %lu interrupts\n", irqloop_count);
  return irqloop_count >= want ? 0 : 1;
}
