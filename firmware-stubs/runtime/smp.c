/*
 * smp.c: application processor bring-up. Copies the real-mode trampoline
 * (boot.S) to AP_TRAMPOLINE_PHYS and starts each AP with INIT + SIPI
 * through the xAPIC ICR, one AP at a time: the BSP publishes the AP's
 * stack and CPU index in ap_boot_stack/ap_boot_cpu (read by ap_entry64)
 * and waits until the AP checks in from ap_start() before starting the
 * next one. Timeouts are pause-loop counts (no timer is assumed).
 */
#include "runtime.h"

extern char ap_trampoline_start[], ap_trampoline_end[];
extern volatile uint64_t ap_boot_stack;
extern volatile uint32_t ap_boot_cpu;

static uint8_t ap_stacks[MAX_CPUS][AP_STACK_SIZE] __attribute__((aligned(16)));
static volatile int ap_checked_in;
static ap_main_fn ap_fn;

/* Called from ap_entry64 (boot.S) on the AP's own stack, IF=0. */
void ap_start(int cpu) {
  cpu_init_descriptors(cpu);
  lapic_enable();
  ap_main_fn fn = ap_fn;
  __atomic_store_n(&ap_checked_in, 1, __ATOMIC_RELEASE);
  fn(cpu);
  for (;;) {
    cli();
    hlt();
  }
}

static bool wait_check_in(uint64_t loops) {
  for (uint64_t i = 0; i < loops; i++) {
    if (__atomic_load_n(&ap_checked_in, __ATOMIC_ACQUIRE)) return true;
    cpu_relax();
  }
  return __atomic_load_n(&ap_checked_in, __ATOMIC_ACQUIRE) != 0;
}

int smp_start_aps(int ncpus, ap_main_fn fn, uint64_t timeout_loops) {
  if (ncpus > MAX_CPUS) {
    printf("smp: %d CPUs, the runtime supports %d\n", ncpus, MAX_CPUS);
    ncpus = MAX_CPUS;
  }
  size_t size = (size_t)(ap_trampoline_end - ap_trampoline_start);
  memcpy((void *)(uint64_t)AP_TRAMPOLINE_PHYS, ap_trampoline_start, size);
  ap_fn = fn;
  int started = 0;
  for (int cpu = 1; cpu < ncpus; cpu++) {
    ap_boot_cpu = (uint32_t)cpu;
    ap_boot_stack = (uint64_t)&ap_stacks[cpu][AP_STACK_SIZE];
    __atomic_store_n(&ap_checked_in, 0, __ATOMIC_RELEASE);
    lapic_send_ipi((uint32_t)cpu, ICR_INIT);
    delay_loops(10000);
    lapic_send_ipi((uint32_t)cpu, ICR_STARTUP | AP_SIPI_VECTOR);
    bool ok = wait_check_in(timeout_loops / 2);
    if (!ok) {
      /* The MP spec sends a second SIPI; an AP that already left
         wait-for-SIPI ignores it, so only send it if needed. */
      lapic_send_ipi((uint32_t)cpu, ICR_STARTUP | AP_SIPI_VECTOR);
      ok = wait_check_in(timeout_loops - timeout_loops / 2);
    }
    if (ok) {
      started++;
    } else {
      printf("smp: cpu %d did not start\n", cpu);
    }
  }
  return started;
}
