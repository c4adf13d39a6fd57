/* KERNEL-DESCRIPTION: Starts all fw_cfg CPUs with INIT/SIPI, each AP counts in with lock xadd and reports its APIC id */
/*
 * smp: starts every AP and checks each came up with its own APIC id.
 *
 * Reads the CPU count N from fw_cfg, starts CPUs 1..N-1 with INIT/SIPI
 * through the xAPIC ICR (runtime smp_start_aps). Each AP records its APIC
 * id from CPUID leaf 1 EBX[31:24], prints "cpu K up (apic id K)" and
 * increments a shared counter with lock xadd, then halts (cli; hlt). The
 * BSP waits for the counter to reach N-1 (timeout=L pause loops per AP,
 * default 20,000,000) and reports `smp` PASS iff all N-1 APs came up with
 * distinct APIC ids that differ from the BSP's.
 */
#include "runtime.h"

static volatile uint32_t arrived;
static volatile uint32_t apic_ids[MAX_CPUS];
static volatile uint32_t arrival_order[MAX_CPUS];

static void ap_main(int cpu) {
  uint32_t id = cpuid_apic_id();
  apic_ids[cpu] = id;
  printf("cpu %d up (apic id %u)\n", cpu, id);
  uint32_t slot = 1;
  __asm__ volatile("lock xaddl %0, %1" : "+r"(slot), "+m"(arrived) : : "memory");
  arrival_order[cpu] = slot + 1;
}

int main(void) {
  int reported = fw_cfg_cpu_count();
  int n = reported > MAX_CPUS ? MAX_CPUS : reported;
  uint64_t timeout = (uint64_t)cmdline_get_int("timeout", 20000000);
  uint32_t bsp_id = cpuid_apic_id();
  printf("smp: %d CPUs (fw_cfg), using %d, bsp apic id %u\n", reported, n,
         bsp_id);

  int started = smp_start_aps(n, ap_main, timeout);
  /* Each AP checks in before running ap_main; wait for all to finish. */
  for (uint64_t i = 0; __atomic_load_n(&arrived, __ATOMIC_ACQUIRE) <
                           (uint32_t)(n - 1) && i < timeout; i++)
    cpu_relax();

  uint32_t got = __atomic_load_n(&arrived, __ATOMIC_ACQUIRE);
  bool distinct = true;
  for (int a = 1; a < n; a++) {
    if (!arrival_order[a]) continue;
    if (apic_ids[a] == bsp_id) distinct = false;
    for (int b = 1; b < a; b++)
      if (arrival_order[b] && apic_ids[a] == apic_ids[b]) distinct = false;
  }
  printf("smp: %d started, %u checked in\n", started, got);
  reportf("smp", got == (uint32_t)(n - 1) && started == n - 1 && distinct,
          "%u of %d APs, ids %s", got, n - 1, distinct ? "distinct" : "NOT distinct");
  report_exit();
}
