/* KERNEL-DESCRIPTION: Local APIC timer on every fw_cfg CPU: one-shot, divider, periodic, TSC-deadline, masked, TMCCT, each checked against RDTSC at the handler */
/*
 * apic_timer: proves the local APIC timer (Intel SDM vol. 3, 11.5.4 "APIC
 * Timer", 11.5.4.1 "TSC-Deadline Mode") on the virtual clock. irqlab's
 * contract (apic/local_apic.h): the timer counts 1 tick per virtual tick
 * before the divider, and RDTSC returns the virtual time, so an expiry can
 * be predicted exactly: TMICT written at TSC t0 with divisor d and count c
 * expires at t0 + c * d. Each handler records RDTSC on entry; a case passes
 * if every interrupt arrived at or after its programmed expiry and at most
 * `tol` ticks later (the interrupt entry path — the runtime's stub and
 * irq_dispatch — is ~40 instructions; the machine delivers at the exact
 * virtual time ± one basic block).
 *
 * Cases (vector 0x40 + n on CPU 0; all of them run on the BSP):
 *   oneshot           divide 1, count 100000: one interrupt at t0 + 100000
 *   oneshot_div16     divide 16, count 10000: at t0 + 160000
 *   tmcct             divide 16, count 1000000: TMCCT decreases by
 *                     elapsed / 16 (±1), stays <= TMICT; TMICT = 0 stops the
 *                     timer (TMCCT 0, no interrupt)
 *   periodic          divide 2, count 25000 (period 50000), 5 interrupts at
 *                     t0 + k * 50000 (no drift), then TMICT = 0 from the 5th
 *                     handler: no 6th
 *   masked            masked one-shot: it expires (TMCCT 0) but delivers
 *                     nothing, and unmasking afterwards delivers nothing
 *   tsc_deadline      TSC-deadline mode, IA32_TSC_DEADLINE = now + 50000: one
 *                     interrupt at the deadline, the MSR reads 0 afterwards,
 *                     TMCCT reads 0; a deadline in the past fires at once
 *                     (tsc_deadline_past); writing 0 disarms
 *                     (tsc_deadline_disarm). Without CPUID TSC-deadline:
 *                     SKIP, and the MSR raises #GP (tsc_deadline_msr_gp)
 *   percpu (N > 1)    every CPU k arms its own one-shot (vector 0x50, count
 *                     (k + 1) * 40000) at once: one interrupt on each CPU,
 *                     in its own handler, at its own expiry
 *
 * cmdline: x2apic=1 switches every CPU to x2APIC mode first (the timer
 * registers are then MSRs 0x832/0x838/0x839/0x83E); tol=T tolerance in
 * ticks (default 200); timeout=L pause loops per wait (5,000,000).
 */
#include "runtime.h"

#define MAX_N 8
#define MAX_REC 16
#define TDCR_DIV1 0xB
#define TDCR_DIV2 0x0
#define TDCR_DIV16 0x3

static int ncpu;
static uint64_t tol, timeout_loops;

/* Per CPU, per vector: handler entries and their RDTSC. */
static volatile uint32_t hits[256][MAX_N];
static volatile uint64_t stamp[MAX_N][MAX_REC];
static volatile uint32_t nstamp[MAX_N];
static volatile uint32_t stop_after[MAX_N]; /* TMICT = 0 at this many hits */

static void on_timer(struct irq_frame *f) {
  uint64_t t = rdtsc();
  int cpu = this_cpu();
  uint32_t n = nstamp[cpu];
  if (n < MAX_REC) stamp[cpu][n] = t;
  nstamp[cpu] = n + 1;
  __atomic_add_fetch(&hits[f->vector & 0xFF][cpu], 1, __ATOMIC_SEQ_CST);
  if (stop_after[cpu] && n + 1 == stop_after[cpu]) lapic_reg_write(LAPIC_TMICT, 0);
}

static void reset_stamps(int cpu) {
  nstamp[cpu] = 0;
  stop_after[cpu] = 0;
}

static bool wait_count(int v, int cpu, uint32_t n) {
  for (uint64_t i = 0; i < timeout_loops; i++) {
    if (__atomic_load_n(&hits[v][cpu], __ATOMIC_SEQ_CST) >= n) return true;
    cpu_relax();
  }
  return hits[v][cpu] >= n;
}

/* Waits until the TSC passed `t` (IF as the caller left it). */
static void wait_until_tsc(uint64_t t) {
  while (rdtsc() < t) cpu_relax();
}

/* Late-ness of the interrupt recorded at `stamp` for `expiry`; prints and
 * returns false if early or later than tol. */
static bool on_time(uint64_t at, uint64_t expiry, int64_t *late) {
  *late = (int64_t)(at - expiry);
  return at >= expiry && at - expiry <= tol;
}

/* Arms a one-shot of `count` with divide `tdcr`; returns the TSC read just
 * before the TMICT write (the expiry is no earlier than t0 + count * div). */
static uint64_t arm_oneshot(int v, uint32_t tdcr, uint32_t count, uint32_t lvt_extra) {
  lapic_reg_write(LAPIC_TDCR, tdcr);
  lapic_reg_write(LAPIC_LVT_TIMER, LVT_TIMER_ONESHOT | lvt_extra | (uint32_t)v);
  uint64_t t0 = rdtsc();
  lapic_reg_write(LAPIC_TMICT, count);
  return t0;
}

static void case_oneshot(const char *name, int v, uint32_t tdcr, uint32_t div,
                         uint32_t count) {
  reset_stamps(0);
  sti();
  uint64_t t0 = arm_oneshot(v, tdcr, count, 0);
  bool got = wait_count(v, 0, 1);
  wait_until_tsc(t0 + 2ull * count * div); /* no second one */
  cli();
  int64_t late = 0;
  bool ok = got && hits[v][0] == 1 && on_time(stamp[0][0], t0 + (uint64_t)count * div, &late);
  printf("%s: expiry t0+%lu, handler at +%ld ticks\n", name,
         (uint64_t)count * div, late);
  reportf(name, ok && lapic_reg_read(LAPIC_TMCCT) == 0,
          "hits %u, late %ld (tol %lu), TMCCT %u", hits[v][0], late, tol,
          lapic_reg_read(LAPIC_TMCCT));
}

static void case_tmcct(void) {
  int v = 0x42;
  const uint32_t count = 1000000;
  uint64_t t0 = arm_oneshot(v, TDCR_DIV16, count, 0);
  uint32_t c1 = lapic_reg_read(LAPIC_TMCCT);
  uint64_t t1 = rdtsc();
  delay_loops(5000);
  uint32_t c2 = lapic_reg_read(LAPIC_TMCCT);
  uint64_t t2 = rdtsc();
  uint64_t want = (t2 - t1) / 16;
  uint64_t dec = c1 - c2;
  bool ok = c1 <= count && c2 < c1 && dec + 2 >= want && dec <= want + 2 &&
            c1 >= count - (t1 - t0) / 16 - 2 && lapic_reg_read(LAPIC_TMICT) == count;
  reportf("tmcct", ok, "c1 %u c2 %u over %lu ticks (expected -%lu)", c1, c2,
          t2 - t1, want);
  sti();
  lapic_reg_write(LAPIC_TMICT, 0);
  uint32_t c3 = lapic_reg_read(LAPIC_TMCCT);
  wait_until_tsc(t0 + 16ull * count + 1000);
  cli();
  reportf("tmict_zero_stops", c3 == 0 && hits[v][0] == 0, "TMCCT %u, hits %u", c3,
          hits[v][0]);
}

static void case_periodic(void) {
  int v = 0x43;
  const uint32_t count = 25000, div = 2, n = 5;
  const uint64_t period = (uint64_t)count * div;
  reset_stamps(0);
  stop_after[0] = n;
  lapic_reg_write(LAPIC_TDCR, TDCR_DIV2);
  lapic_reg_write(LAPIC_LVT_TIMER, LVT_TIMER_PERIODIC | (uint32_t)v);
  sti();
  uint64_t t0 = rdtsc();
  lapic_reg_write(LAPIC_TMICT, count);
  bool got = wait_count(v, 0, n);
  wait_until_tsc(t0 + (n + 3) * period);
  cli();
  bool ok = got && hits[v][0] == n;
  int64_t worst = 0;
  for (uint32_t k = 0; k < n && k < nstamp[0]; k++) {
    int64_t late;
    if (!on_time(stamp[0][k], t0 + (k + 1) * period, &late)) ok = false;
    if (late > worst || late < 0) worst = late;
  }
  printf("periodic: period %lu, worst lateness %ld ticks\n", period, worst);
  reportf("periodic", ok, "hits %u (want %u), worst late %ld (tol %lu)", hits[v][0],
          n, worst, tol);
}

static void case_masked(void) {
  int v = 0x44;
  sti();
  uint64_t t0 = arm_oneshot(v, TDCR_DIV1, 20000, LVT_MASKED);
  wait_until_tsc(t0 + 40000);
  uint32_t cur = lapic_reg_read(LAPIC_TMCCT);
  lapic_reg_write(LAPIC_LVT_TIMER, LVT_TIMER_ONESHOT | (uint32_t)v); /* unmask */
  delay_loops(10000);
  cli();
  reportf("masked", hits[v][0] == 0 && cur == 0, "hits %u, TMCCT after expiry %u",
          hits[v][0], cur);
}

static volatile uint32_t gp_count;
static void on_gp(struct irq_frame *f) {
  gp_count++;
  f->rip += 2; /* wrmsr/rdmsr are 2 bytes */
}

static void case_tsc_deadline(void) {
  if (!cpu_has_tsc_deadline()) {
    report_skip("tsc_deadline", "CPUID.1:ECX.TSC-Deadline is 0");
    irq_set_handler(13, on_gp);
    wrmsr(MSR_IA32_TSC_DEADLINE, rdtsc() + 1000);
    irq_set_handler(13, 0);
    reportf("tsc_deadline_msr_gp", gp_count == 1, "%u #GP", gp_count);
    return;
  }
  int v = 0x45;
  reset_stamps(0);
  lapic_reg_write(LAPIC_LVT_TIMER, LVT_TIMER_TSC_DEADLINE | (uint32_t)v);
  sti();
  uint64_t deadline = rdtsc() + 50000;
  wrmsr(MSR_IA32_TSC_DEADLINE, deadline);
  uint64_t armed = rdmsr(MSR_IA32_TSC_DEADLINE);
  uint32_t cur = lapic_reg_read(LAPIC_TMCCT);
  bool got = wait_count(v, 0, 1);
  wait_until_tsc(deadline + 50000);
  cli();
  int64_t late = 0;
  bool ok = got && hits[v][0] == 1 && on_time(stamp[0][0], deadline, &late);
  uint64_t after = rdmsr(MSR_IA32_TSC_DEADLINE);
  printf("tsc_deadline: handler at deadline +%ld ticks\n", late);
  reportf("tsc_deadline", ok && armed == deadline && after == 0 && cur == 0,
          "hits %u, late %ld (tol %lu), MSR 0x%lx then 0x%lx, TMCCT %u", hits[v][0],
          late, tol, armed, after, cur);

  int p = 0x46;
  reset_stamps(0);
  lapic_reg_write(LAPIC_LVT_TIMER, LVT_TIMER_TSC_DEADLINE | (uint32_t)p);
  sti();
  uint64_t t0 = rdtsc();
  wrmsr(MSR_IA32_TSC_DEADLINE, 1);
  got = wait_count(p, 0, 1);
  cli();
  reportf("tsc_deadline_past", got && stamp[0][0] - t0 <= tol,
          "hits %u, %ld ticks after the write", hits[p][0], (int64_t)(stamp[0][0] - t0));

  int d = 0x47;
  lapic_reg_write(LAPIC_LVT_TIMER, LVT_TIMER_TSC_DEADLINE | (uint32_t)d);
  sti();
  uint64_t dl = rdtsc() + 20000;
  wrmsr(MSR_IA32_TSC_DEADLINE, dl);
  wrmsr(MSR_IA32_TSC_DEADLINE, 0);
  wait_until_tsc(dl + 20000);
  cli();
  reportf("tsc_deadline_disarm", hits[d][0] == 0, "hits %u", hits[d][0]);
  lapic_reg_write(LAPIC_LVT_TIMER, LVT_MASKED);
}

/* ---- per-CPU timers ---- */
typedef void (*cmd_fn)(uint64_t arg);
static cmd_fn volatile cmd[MAX_CPUS];
static volatile uint64_t cmd_arg[MAX_CPUS];
static volatile uint64_t armed_at[MAX_N];

static void ap_main(int cpu) {
  sti();
  for (;;) {
    cmd_fn fn = __atomic_load_n(&cmd[cpu], __ATOMIC_ACQUIRE);
    if (fn) {
      __atomic_store_n(&cmd[cpu], (cmd_fn)0, __ATOMIC_RELAXED);
      fn(cmd_arg[cpu]);
    }
    cpu_relax();
  }
}

static volatile uint32_t x2_ok_count;
static void cmd_x2apic_check(uint64_t arg) {
  (void)arg;
  lapic_enable_x2apic();
  if (rdmsr(X2APIC_MSR(LAPIC_ID)) == (uint32_t)this_cpu())
    __atomic_add_fetch(&x2_ok_count, 1, __ATOMIC_SEQ_CST);
}
static void cmd_arm(uint64_t count) {
  int cpu = this_cpu();
  reset_stamps(cpu);
  armed_at[cpu] = arm_oneshot(0x50, TDCR_DIV1, (uint32_t)count, 0);
}

static void post(int cpu, cmd_fn fn, uint64_t arg) {
  cmd_arg[cpu] = arg;
  __atomic_store_n(&cmd[cpu], fn, __ATOMIC_RELEASE);
}

static void case_percpu(void) {
  for (int c = 1; c < ncpu; c++) post(c, cmd_arm, (uint64_t)(c + 1) * 40000);
  sti();
  cmd_arm(40000);
  bool ok = true;
  for (int c = 0; c < ncpu; c++)
    if (!wait_count(0x50, c, 1)) ok = false;
  delay_loops(50000);
  cli();
  for (int c = 0; c < ncpu; c++) {
    int64_t late = 0;
    bool mine = hits[0x50][c] == 1; /* counted by CPU c's own handler */
    bool in_time = armed_at[c] && on_time(stamp[c][0], armed_at[c] + (uint64_t)(c + 1) * 40000, &late);
    char name[32];
    snprintf(name, sizeof(name), "percpu_cpu%d", c);
    printf("%s: handler at expiry +%ld ticks\n", name, late);
    reportf(name, ok && mine && in_time, "hits %u, late %ld (tol %lu)", hits[0x50][c],
            late, tol);
  }
}

int main(void) {
  int reported = fw_cfg_cpu_count();
  ncpu = reported > MAX_N ? MAX_N : reported;
  tol = (uint64_t)cmdline_get_int("tol", 200);
  timeout_loops = (uint64_t)cmdline_get_int("timeout", 5000000);
  bool x2 = cmdline_get_int("x2apic", 0) != 0;
  printf("apic_timer: %d CPUs, %s mode, tolerance %lu ticks\n", ncpu,
         x2 ? "x2APIC" : "xAPIC", tol);
  for (int v = 0x40; v < 0x60; v++) irq_set_handler(v, on_timer);
  if (ncpu > 1 && smp_start_aps(ncpu, ap_main, 20000000) != ncpu - 1) {
    reportf("aps_started", false, "not all APs checked in");
    report_exit();
  }
  if (x2) {
    if (!cpu_has_x2apic()) {
      reportf("x2apic", false, "CPUID.1:ECX.x2APIC is 0");
      report_exit();
    }
    cmd_x2apic_check(0);
    for (int c = 1; c < ncpu; c++) post(c, cmd_x2apic_check, 0);
    for (uint64_t i = 0; x2_ok_count < (uint32_t)ncpu && i < timeout_loops; i++)
      cpu_relax();
    reportf("x2apic_mode", x2_ok_count == (uint32_t)ncpu, "%u of %d CPUs", x2_ok_count,
            ncpu);
  }

  case_oneshot("oneshot", 0x40, TDCR_DIV1, 1, 100000);
  case_oneshot("oneshot_div16", 0x41, TDCR_DIV16, 16, 10000);
  case_tmcct();
  case_periodic();
  case_masked();
  case_tsc_deadline();
  if (ncpu > 1) case_percpu();
  report_exit();
}
