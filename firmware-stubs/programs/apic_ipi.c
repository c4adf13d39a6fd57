/* KERNEL-DESCRIPTION: Local APIC IPIs on every fw_cfg CPU in xAPIC then x2APIC mode: self, fixed, broadcast, logical flat/cluster, lowest priority, TPR/PPR masking and nesting, illegal-vector ESR */
/*
 * apic_ipi: proves the local APIC's interrupt-command paths (Intel SDM vol.
 * 3, 11.6 "Issuing Interprocessor Interrupts", 11.8 "Handling Interrupts",
 * 11.12 "x2APIC") on N = fw_cfg CPUs (1..8; APIC id == CPU index).
 *
 * The BSP starts the APs (INIT/SIPI); each AP then sits with IF=1 in a
 * command loop (run_on()) so the BSP can make it change its TPR, LDR/DFR,
 * switch to x2APIC or send an IPI. One handler on every test vector counts
 * (vector, CPU of the APIC id register), checks the vector is in the ISR
 * and records the PPR and the order of entry; the runtime EOIs afterwards.
 * Every case checks the exact per-CPU distribution after a settle delay.
 *
 * The cases run first in xAPIC mode (suffix _xapic, vectors 0x41..0x76),
 * then, if CPUID advertises x2APIC, every CPU switches IA32_APIC_BASE to
 * x2APIC mode and they run again through the MSRs (suffix _x2apic, the same
 * vectors + 0x40):
 *   self_ipi         3 self IPIs (xAPIC: ICR shorthand self; x2APIC: twice
 *                    SELF_IPI MSR 0x83F, once ICR MSR 0x830 shorthand self),
 *                    each pending in IRR while IF=0, taken once IF=1, on CPU 0
 *   fixed_ipi        physical fixed IPI to each CPU k (0x42): 1 hit on k only
 *   fixed_ipi_from_ap  CPU N-1 sends 0x43 to CPU 0 (N > 1)
 *   broadcast_all_incl / broadcast_all_excl  shorthands (0x44 / 0x45)
 *   broadcast_dest   physical destination 0xFF (xAPIC) / 0xFFFFFFFF (x2APIC)
 *                    reaches every CPU (0x46)
 *   logical_flat     xAPIC: DFR flat, LDR = 1 << (24 + k); MDA = the odd
 *                    CPUs (CPU 0 if N == 1) (0x47). x2APIC: logical cluster 0
 *                    with the same bit mask (0x87)
 *   logical_cluster  xAPIC cluster model, CPU k in cluster 1 + k/2 with bit
 *                    k%2: MDA 0x21 -> CPU 2, 0x13 -> CPUs 0,1, 0xF1 (all
 *                    clusters) -> CPUs 0,2 (0x48, 0x49, 0x4A)
 *   x2apic_ldr       x2APIC LDR derived from the id: (id >> 4) << 16 |
 *                    1 << (id & 15) on every CPU; cluster 1 (0x10001) matches
 *                    nobody (0x8B); physical 0xFF is not a broadcast (0x8C)
 *   lowest_priority  TPRs {0x40,0x30,0x10,0x20}: the lowest TPR (CPU 2 on 4
 *                    CPUs) gets 0x5A; lowest_priority_tie with TPRs
 *                    {0x30,0x10,0x10,0x10}: the lowest APIC id among the
 *                    tied (CPU 1) gets 0x5B (apic_bus.h arbitration rule)
 *   tpr_blocks       TPR 0x50: self IPI 0x55 stays in IRR with IF=1, PPR 0x50;
 *   tpr_higher_class 0x65 is taken at once; tpr_lower_releases: TPR 0
 *                    releases 0x55
 *   ppr_nesting      in the handler of 0x66 (PPR 0x60) with IF=1, a self IPI
 *                    0x56 is held and 0x76 nests; after the EOI of 0x66, 0x56
 *                    is taken: entry order 0x66, 0x76, 0x56
 *   esr_illegal      self IPI with vector 5 -> ESR 0x60 (send + receive
 *                    illegal vector); to another APIC vector 3 -> 0x20; the
 *                    ESR is latched by writes; esr_lvt_error: with LVT error
 *                    = 0x4E an illegal IPI raises 0x4E on the sender
 * Mode checks: x2apic_mode (x2APIC id MSR 0x802 == CPU index on every CPU,
 * the xAPIC page no longer decodes the id), x2apic_to_xapic_gp (EXTD=1 ->
 * EXTD=0 with EN=1 is an illegal transition: #GP, mode kept). Without
 * CPUID x2APIC: x2apic_unsupported_gp (setting EXTD raises #GP) and the
 * x2APIC cases are skipped.
 *
 *   fixed_ipi_latency  RDTSC before the send -> RDTSC in the handler on each
 *                    CPU, printed; 0 <= latency <= ipi_latency (see case_fixed)
 *
 * cmdline: timeout=L pause loops per wait (2,000,000), settle=L pause loops
 * after a case before counting (20,000), x2apic=0 skips the x2APIC pass,
 * ipi_latency=T bound of fixed_ipi_latency in ticks (200).
 */
#include "runtime.h"

#define MAX_N 8 /* xAPIC flat logical mode addresses 8 CPUs */
#define X2_OFFSET 0x40

static int ncpu;
static bool x2; /* current pass */
static uint64_t timeout_loops, settle_loops;
static int64_t ipi_latency;

/* ---- per-vector bookkeeping (written by the handler) ---- */
static volatile uint32_t hits[256][MAX_CPUS];
static volatile uint32_t order_of[256]; /* 1-based global entry order */
static volatile uint32_t entry_seq;
static volatile uint32_t ppr_at[256];
static volatile uint64_t tsc_at[256][MAX_CPUS]; /* RDTSC at the last entry */
static volatile uint32_t isr_missing; /* handler ran without its ISR bit */
static volatile uint32_t id_mismatch; /* APIC id register != CPU index */
static void (*volatile hook[256])(void);

static uint32_t apic_id_reg(void) {
  return lapic_in_x2apic() ? (uint32_t)rdmsr(X2APIC_MSR(LAPIC_ID))
                           : lapic_read(LAPIC_ID) >> 24;
}

static bool reg_bit(uint32_t base, int v) {
  return (lapic_reg_read(base + 0x10 * (uint32_t)(v / 32)) >> (v % 32)) & 1;
}

static void on_irq(struct irq_frame *f) {
  uint64_t now = rdtsc();
  int v = (int)f->vector;
  int cpu = this_cpu();
  tsc_at[v][cpu] = now;
  if (apic_id_reg() != (uint32_t)cpu)
    __atomic_add_fetch(&id_mismatch, 1, __ATOMIC_SEQ_CST);
  if (!reg_bit(LAPIC_ISR, v)) __atomic_add_fetch(&isr_missing, 1, __ATOMIC_SEQ_CST);
  ppr_at[v] = lapic_reg_read(LAPIC_PPR);
  order_of[v] = __atomic_add_fetch(&entry_seq, 1, __ATOMIC_SEQ_CST);
  __atomic_add_fetch(&hits[v][cpu], 1, __ATOMIC_SEQ_CST);
  void (*h)(void) = hook[v];
  if (h) h();
}

static uint32_t hits_of(int v, int cpu) {
  return __atomic_load_n(&hits[v][cpu], __ATOMIC_SEQ_CST);
}

/* Waits (IF as the caller left it) until CPU `cpu` counted `n` of `v`. */
static bool wait_hits(int v, int cpu, uint32_t n) {
  for (uint64_t i = 0; i < timeout_loops; i++) {
    if (hits_of(v, cpu) >= n) return true;
    cpu_relax();
  }
  return hits_of(v, cpu) >= n;
}

/* ---- AP command loop ---- */
typedef void (*cmd_fn)(uint64_t arg);
static cmd_fn volatile cmd[MAX_CPUS];
static volatile uint64_t cmd_arg[MAX_CPUS];
static volatile uint32_t cmd_done[MAX_CPUS];

static void ap_main(int cpu) {
  sti();
  for (;;) {
    cmd_fn fn = __atomic_load_n(&cmd[cpu], __ATOMIC_ACQUIRE);
    if (fn) {
      fn(cmd_arg[cpu]);
      __atomic_store_n(&cmd[cpu], (cmd_fn)0, __ATOMIC_RELAXED);
      __atomic_store_n(&cmd_done[cpu], 1, __ATOMIC_RELEASE);
    }
    cpu_relax();
  }
}

/* Runs fn(arg) on `cpu` (directly on the BSP) and waits for it. */
static bool run_on(int cpu, cmd_fn fn, uint64_t arg) {
  if (cpu == 0) {
    fn(arg);
    return true;
  }
  cmd_arg[cpu] = arg;
  __atomic_store_n(&cmd_done[cpu], 0, __ATOMIC_RELAXED);
  __atomic_store_n(&cmd[cpu], fn, __ATOMIC_RELEASE);
  for (uint64_t i = 0; i < timeout_loops; i++) {
    if (__atomic_load_n(&cmd_done[cpu], __ATOMIC_ACQUIRE)) return true;
    cpu_relax();
  }
  printf("apic_ipi: cpu %d did not run its command\n", cpu);
  return false;
}

static void cmd_set_tpr(uint64_t tpr) { lapic_reg_write(LAPIC_TPR, (uint32_t)tpr); }
static void cmd_set_logical(uint64_t arg) { /* ldr | dfr << 32 */
  lapic_write(LAPIC_DFR, (uint32_t)(arg >> 32));
  lapic_write(LAPIC_LDR, (uint32_t)arg);
}
static void cmd_send(uint64_t arg) { /* icr_lo | dest << 32 */
  lapic_send_ipi_any((uint32_t)(arg >> 32), (uint32_t)arg);
}
static void cmd_x2apic(uint64_t arg) {
  (void)arg;
  lapic_enable_x2apic();
}
static volatile uint32_t probe_id[MAX_CPUS], probe_ldr[MAX_CPUS];
static volatile uint32_t probe_mmio_id[MAX_CPUS];
static void cmd_probe(uint64_t arg) {
  (void)arg;
  int cpu = this_cpu();
  probe_id[cpu] = apic_id_reg();
  probe_ldr[cpu] = lapic_reg_read(LAPIC_LDR);
  probe_mmio_id[cpu] = lapic_read(LAPIC_ID);
}

/* ---- helpers ---- */
static const char *name(const char *base) {
  static char buf[8][64];
  static int next;
  char *b = buf[next++ % 8];
  snprintf(b, 64, "%s_%s", base, x2 ? "x2apic" : "xapic");
  return b;
}

static int V(int v) { return x2 ? v + X2_OFFSET : v; }

static void send(uint32_t dest, uint32_t icr_lo) { lapic_send_ipi_any(dest, icr_lo); }
static uint32_t broadcast_dest(void) { return x2 ? 0xFFFFFFFFu : 0xFFu; }

/* After sending `v`: waits for every CPU in `expect_mask` to count
 * `per_cpu`, settles, then checks the exact distribution. */
static void check_dist(const char *case_name, int v, uint32_t expect_mask,
                       uint32_t per_cpu) {
  for (int c = 0; c < ncpu; c++)
    if (expect_mask >> c & 1) wait_hits(v, c, per_cpu);
  delay_loops(settle_loops);
  bool ok = true;
  char got[96];
  int pos = 0;
  got[0] = '\0';
  for (int c = 0; c < ncpu; c++) {
    uint32_t want = (expect_mask >> c & 1) ? per_cpu : 0;
    uint32_t h = hits_of(v, c);
    if (h != want) ok = false;
    pos += snprintf(got + pos, sizeof(got) - (size_t)pos, "%s%u", c ? "," : "", h);
  }
  reportf(case_name, ok, "vector 0x%x: hits per cpu [%s], expected mask 0x%x x%u",
          v, got, expect_mask, per_cpu);
}

static uint32_t all_mask(void) { return (1u << ncpu) - 1; }

/* ---- cases ---- */

static void case_self_ipi(void) {
  int v = V(0x41);
  bool ok = true;
  int bad_step = -1;
  for (int i = 0; i < 3; i++) {
    cli();
    if (!x2) send(0, ICR_SELF | ICR_FIXED | (uint32_t)v);
    else if (i < 2) wrmsr(MSR_X2APIC_SELF_IPI, (uint64_t)v);
    else wrmsr(MSR_X2APIC_ICR, ICR_SELF | ICR_FIXED | (uint32_t)v);
    /* IF=0: pending in IRR, not taken. */
    bool pending = reg_bit(LAPIC_IRR, v) && hits_of(v, 0) == (uint32_t)i;
    sti();
    bool taken = wait_hits(v, 0, (uint32_t)i + 1);
    if ((!pending || !taken) && ok) {
      ok = false;
      bad_step = i;
    }
  }
  delay_loops(settle_loops);
  reportf(name("self_ipi"), ok && hits_of(v, 0) == 3 && !reg_bit(LAPIC_IRR, v),
          "step %d, hits %u on cpu0", bad_step, hits_of(v, 0));
}

static void case_fixed(void) {
  int v = V(0x42);
  int64_t lat[MAX_N];
  bool lat_ok = true;
  for (int c = 0; c < ncpu; c++) {
    uint64_t t = rdtsc();
    send((uint32_t)c, ICR_FIXED | (uint32_t)v);
    wait_hits(v, c, 1);
    lat[c] = (int64_t)(tsc_at[v][c] - t);
    /* Sender TSC before the ICR write -> RDTSC in the receiver's handler:
       the interrupt entry path, ~70-90 ticks on every CPU (the machine
       never lets a receiver take an IPI before it was sent, and ends the
       sender's slice at the send). Asserted: 0 <= latency <= ipi_latency. */
    if (lat[c] > ipi_latency || lat[c] < 0) lat_ok = false;
  }
  printf("%s latency (ticks, send -> handler) per cpu:", name("fixed_ipi"));
  for (int c = 0; c < ncpu; c++) printf(" %ld", lat[c]);
  printf("\n");
  check_dist(name("fixed_ipi"), v, all_mask(), 1);
  reportf(name("fixed_ipi_latency"), lat_ok, "a latency outside [0, %ld] ticks", ipi_latency);
  if (ncpu > 1) {
    int w = V(0x43);
    run_on(ncpu - 1, cmd_send, ((uint64_t)0 << 32) | ICR_FIXED | (uint32_t)w);
    check_dist(name("fixed_ipi_from_ap"), w, 1u, 1);
  }
}

static void case_broadcast(void) {
  send(0, ICR_ALL_INCL | ICR_FIXED | (uint32_t)V(0x44));
  check_dist(name("broadcast_all_incl"), V(0x44), all_mask(), 1);
  send(0, ICR_ALL_EXCL | ICR_FIXED | (uint32_t)V(0x45));
  check_dist(name("broadcast_all_excl"), V(0x45), all_mask() & ~1u, 1);
  send(broadcast_dest(), ICR_FIXED | (uint32_t)V(0x46));
  check_dist(name("broadcast_dest"), V(0x46), all_mask(), 1);
}

static uint32_t odd_cpus(void) {
  if (ncpu == 1) return 1;
  uint32_t m = 0;
  for (int c = 1; c < ncpu; c += 2) m |= 1u << c;
  return m;
}

static void set_logical_all(uint32_t dfr, uint32_t (*ldr_of)(int)) {
  for (int c = 0; c < ncpu; c++)
    run_on(c, cmd_set_logical, ((uint64_t)dfr << 32) | ldr_of(c));
}
static uint32_t ldr_flat(int c) { return 1u << (24 + c); }
static uint32_t ldr_cluster(int c) {
  return ((uint32_t)(1 + c / 2) << 28) | (1u << (24 + c % 2));
}
static uint32_t ldr_zero(int c) { (void)c; return 0; }

static void case_logical_xapic(void) {
  set_logical_all(DFR_FLAT, ldr_flat);
  bool ldr_ok = lapic_read(LAPIC_LDR) == ldr_flat(0) && lapic_read(LAPIC_DFR) == DFR_FLAT;
  uint32_t mda = odd_cpus();
  send(mda, ICR_LOGICAL | ICR_FIXED | 0x47);
  check_dist(ldr_ok ? "logical_flat_xapic" : "logical_flat_xapic (LDR/DFR readback)",
             0x47, mda, 1);

  set_logical_all(DFR_CLUSTER, ldr_cluster);
  static const struct { uint8_t mda; int v; } sends[] = {
      {0x21, 0x48}, {0x13, 0x49}, {0xF1, 0x4A}};
  for (unsigned i = 0; i < sizeof(sends) / sizeof(sends[0]); i++) {
    uint32_t expect = 0;
    for (int c = 0; c < ncpu; c++) {
      uint32_t l = ldr_cluster(c) >> 24;
      bool cluster = (sends[i].mda >> 4) == 0xF || (sends[i].mda >> 4) == (l >> 4);
      if (cluster && (sends[i].mda & l & 0xF)) expect |= 1u << c;
    }
    send(sends[i].mda, ICR_LOGICAL | ICR_FIXED | (uint32_t)sends[i].v);
    char n[64];
    snprintf(n, sizeof(n), "logical_cluster_xapic_mda_0x%02x", sends[i].mda);
    check_dist(n, sends[i].v, expect, 1);
  }
  /* Back to the power-up logical setup for the rest. */
  set_logical_all(DFR_FLAT, ldr_zero);
}

static void case_logical_x2apic(void) {
  bool ok = true;
  for (int c = 0; c < ncpu; c++) {
    run_on(c, cmd_probe, 0);
    uint32_t want = ((uint32_t)(c >> 4) << 16) | (1u << (c & 15));
    if (probe_ldr[c] != want) ok = false;
  }
  reportf("x2apic_ldr", ok, "cpu0 LDR 0x%x", probe_ldr[0]);
  uint32_t mask = odd_cpus();
  send(mask, ICR_LOGICAL | ICR_FIXED | 0x87); /* cluster 0 */
  check_dist("logical_cluster0_x2apic", 0x87, mask, 1);
  send(0x10001, ICR_LOGICAL | ICR_FIXED | 0x8B); /* cluster 1: nobody */
  check_dist("logical_cluster1_nobody_x2apic", 0x8B, 0, 1);
  send(0xFF, ICR_FIXED | 0x8C); /* 0xFF is an id, not broadcast, in x2APIC */
  check_dist("x2apic_dest_ff_not_broadcast", 0x8C, 0, 1);
}

static void lowest_priority(const char *n, int v, const uint8_t tprs[4]) {
  /* The documented rule (apic_bus.h): lowest PPR (= TPR here, nothing in
     service), ties to the lowest APIC id. CPUs beyond 4 get 0x50. */
  int winner = 0;
  uint8_t best = 0xFF;
  for (int c = 0; c < ncpu; c++) {
    uint8_t t = c < 4 ? tprs[c] : 0x50;
    run_on(c, cmd_set_tpr, t);
    if (t < best) {
      best = t;
      winner = c;
    }
  }
  if (x2) {
    send(all_mask(), ICR_LOGICAL | ICR_LOWEST | (uint32_t)v);
  } else {
    set_logical_all(DFR_FLAT, ldr_flat);
    send(all_mask(), ICR_LOGICAL | ICR_LOWEST | (uint32_t)v);
  }
  check_dist(n, v, 1u << winner, 1);
  for (int c = 0; c < ncpu; c++) run_on(c, cmd_set_tpr, 0);
  if (!x2) set_logical_all(DFR_FLAT, ldr_zero);
}

static void case_lowest_priority(void) {
  static const uint8_t distinct[4] = {0x40, 0x30, 0x10, 0x20};
  static const uint8_t tie[4] = {0x30, 0x10, 0x10, 0x10};
  lowest_priority(name("lowest_priority"), V(0x5A), distinct);
  lowest_priority(name("lowest_priority_tie"), V(0x5B), tie);
}

/* Nesting: the handler of the outer vector runs with IF=1. */
static volatile bool nest_low_held;
static volatile uint32_t nest_ppr;
static void nest_hook(void) {
  int low = V(0x56), high = V(0x76);
  nest_ppr = lapic_reg_read(LAPIC_PPR);
  sti();
  send(0, ICR_SELF | (uint32_t)low);
  delay_loops(1000);
  nest_low_held = hits_of(low, 0) == 0 && reg_bit(LAPIC_IRR, low);
  if (x2) wrmsr(MSR_X2APIC_SELF_IPI, (uint64_t)high);
  else send(0, ICR_SELF | (uint32_t)high);
  wait_hits(high, 0, 1);
  cli();
}

static void case_tpr(void) {
  uint32_t tpr = (uint32_t)V(0x50);
  int held = V(0x55), higher = V(0x65);
  lapic_reg_write(LAPIC_TPR, tpr);
  sti();
  send(0, ICR_SELF | (uint32_t)held);
  delay_loops(2000);
  uint32_t ppr = lapic_reg_read(LAPIC_PPR);
  reportf(name("tpr_blocks"),
          hits_of(held, 0) == 0 && reg_bit(LAPIC_IRR, held) && ppr == tpr &&
              lapic_reg_read(LAPIC_TPR) == tpr,
          "hits %u, irr %d, ppr 0x%x", hits_of(held, 0), reg_bit(LAPIC_IRR, held), ppr);
  send(0, ICR_SELF | (uint32_t)higher);
  bool got = wait_hits(higher, 0, 1);
  reportf(name("tpr_higher_class"), got && hits_of(held, 0) == 0,
          "0x%x hits %u, 0x%x hits %u", higher, hits_of(higher, 0), held,
          hits_of(held, 0));
  lapic_reg_write(LAPIC_TPR, 0);
  got = wait_hits(held, 0, 1);
  reportf(name("tpr_lower_releases"), got && order_of[held] > order_of[higher],
          "hits %u", hits_of(held, 0));

  int outer = V(0x66), low = V(0x56), high = V(0x76);
  hook[outer] = nest_hook;
  send(0, ICR_SELF | (uint32_t)outer);
  bool all = wait_hits(outer, 0, 1) && wait_hits(low, 0, 1);
  delay_loops(settle_loops);
  hook[outer] = 0;
  bool ordered = order_of[outer] < order_of[high] && order_of[high] < order_of[low];
  reportf(name("ppr_nesting"),
          all && nest_low_held && ordered && nest_ppr == (uint32_t)(outer & 0xF0) &&
              ppr_at[high] == (uint32_t)(high & 0xF0) && hits_of(low, 0) == 1 &&
              hits_of(high, 0) == 1,
          "held %d, order %u/%u/%u, ppr in outer 0x%x, in inner 0x%x", nest_low_held,
          order_of[outer], order_of[high], order_of[low], nest_ppr, ppr_at[high]);
}

static uint32_t read_esr(void) {
  lapic_reg_write(LAPIC_ESR, 0);
  return lapic_reg_read(LAPIC_ESR);
}

static void case_esr(void) {
  read_esr();
  read_esr(); /* now clear */
  if (x2) wrmsr(MSR_X2APIC_SELF_IPI, 5);
  else send(0, ICR_SELF | 5);
  uint32_t self_esr = read_esr();
  uint32_t cleared = read_esr();
  send(ncpu > 1 ? 1 : 0, ICR_FIXED | 3);
  uint32_t send_esr = read_esr();
  reportf(name("esr_illegal"),
          self_esr == 0x60 && cleared == 0 && send_esr == 0x20,
          "self 0x%x, then 0x%x, other 0x%x", self_esr, cleared, send_esr);

  int ev = V(0x4E);
  lapic_reg_write(LAPIC_LVT_ERROR, (uint32_t)ev);
  send(0, ICR_SELF | 7);
  bool got = wait_hits(ev, 0, 1);
  lapic_reg_write(LAPIC_LVT_ERROR, LVT_MASKED);
  uint32_t e = read_esr();
  reportf(name("esr_lvt_error"), got && hits_of(ev, 0) == 1 && e == 0x60,
          "hits %u, esr 0x%x", hits_of(ev, 0), e);
}

static void run_pass(void) {
  case_self_ipi();
  case_fixed();
  case_broadcast();
  if (x2) case_logical_x2apic();
  else case_logical_xapic();
  case_lowest_priority();
  case_tpr();
  case_esr();
}

/* ---- #GP probes ---- */
static volatile uint32_t gp_count;
static void on_gp(struct irq_frame *f) {
  gp_count++;
  f->rip += 2; /* skip the wrmsr (0F 30) */
}
static bool wrmsr_faults(uint32_t msr, uint64_t v) {
  uint32_t before = gp_count;
  irq_set_handler(13, on_gp);
  wrmsr(msr, v);
  irq_set_handler(13, 0);
  return gp_count != before;
}

int main(void) {
  int reported = fw_cfg_cpu_count();
  ncpu = reported > MAX_N ? MAX_N : reported;
  timeout_loops = (uint64_t)cmdline_get_int("timeout", 2000000);
  settle_loops = (uint64_t)cmdline_get_int("settle", 20000);
  ipi_latency = cmdline_get_int("ipi_latency", 200);
  bool want_x2 = cmdline_get_int("x2apic", 1) != 0;
  printf("apic_ipi: %d CPUs (fw_cfg %d), x2APIC %s\n", ncpu, reported,
         cpu_has_x2apic() ? "supported" : "not supported");
  for (int v = 0x40; v < 0xC0; v++) irq_set_handler(v, on_irq);

  if (ncpu > 1) {
    int started = smp_start_aps(ncpu, ap_main, 20000000);
    if (started != ncpu - 1) {
      reportf("aps_started", false, "%d of %d", started, ncpu - 1);
      report_exit();
    }
  }

  x2 = false;
  run_pass();

  if (!cpu_has_x2apic()) {
    uint64_t base = rdmsr(MSR_IA32_APIC_BASE);
    bool gp = wrmsr_faults(MSR_IA32_APIC_BASE, base | APIC_BASE_EXTD);
    reportf("x2apic_unsupported_gp", gp && rdmsr(MSR_IA32_APIC_BASE) == base,
            "no #GP or base changed");
    report_skip("x2apic", "CPUID.1:ECX.x2APIC is 0");
  } else if (!want_x2) {
    report_skip("x2apic", "x2apic=0");
  } else {
    for (int c = 0; c < ncpu; c++) run_on(c, cmd_x2apic, 0);
    x2 = true;
    bool ok = true;
    for (int c = 0; c < ncpu; c++) {
      run_on(c, cmd_probe, 0);
      /* The page is not decoded: the id read goes elsewhere. */
      if (probe_id[c] != (uint32_t)c || probe_mmio_id[c] == (uint32_t)c << 24) ok = false;
    }
    reportf("x2apic_mode", ok && lapic_x2apic_cpus == all_mask(),
            "cpu0 id %u, mmio id 0x%x", probe_id[0], probe_mmio_id[0]);
    uint64_t base = rdmsr(MSR_IA32_APIC_BASE);
    bool gp = wrmsr_faults(MSR_IA32_APIC_BASE, base & ~APIC_BASE_EXTD);
    reportf("x2apic_to_xapic_gp", gp && rdmsr(MSR_IA32_APIC_BASE) == base,
            "no #GP or base changed (0x%lx)", base);
    run_pass();
  }
  reportf("handler_checks", isr_missing == 0 && id_mismatch == 0,
          "%u entries without ISR bit, %u id mismatches", isr_missing, id_mismatch);
  report_exit();
}
