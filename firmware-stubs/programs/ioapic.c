/* KERNEL-DESCRIPTION: I/O APIC via pc-testdev lines: edge, masked edge, level, coalescing, Remote IRR, retrigger after EOI, unmask, EOI register, destinations, IRQ migration (migrate=1) */
/*
 * ioapic: the I/O APIC as a guest sees it, driven through the pc-testdev
 * IRQ lines (byte write 0/1 to port 0x2000 + n lowers/raises pin n).
 *
 * Every interrupt lands in one handler that counts it per (CPU, vector)
 * and then runs an optional per-vector hook (lower the line, read the RTE,
 * ...). The runtime EOIs the local APIC after the handler, which for a
 * level-triggered vector broadcasts the EOI to the I/O APIC.
 *
 * Tests (each prints PASS/FAIL: <name>):
 *   ioapic_regs          VER = 0x00170020 (24 entries, version 0x20); ID
 *                        bits 27:24 writable; RTEs reset masked
 *   ioapic_edge          pin 1 edge: one interrupt per rising edge; writing
 *                        "high" again while high is no edge; Remote IRR
 *                        never set for an edge entry
 *   ioapic_edge_masked   a rising edge while masked is lost, not latched:
 *                        nothing on unmask; the next edge is delivered
 *   ioapic_level         pin 2 level: one interrupt; the handler sees Remote
 *                        IRR set in the RTE and lowers the line before the
 *                        EOI -> no retrigger, Remote IRR clear afterwards
 *   ioapic_level_coalesce pin 3: inside the handler (Remote IRR set) the
 *                        line is lowered, raised again and lowered: the
 *                        I/O APIC must not send again (local APIC IRR bit
 *                        stays clear, exactly one interrupt in total)
 *   ioapic_level_retrigger pin 4: the handler leaves the line high twice:
 *                        each EOI redelivers at once; lowered in the 3rd
 *                        handler -> exactly 3 interrupts
 *   ioapic_level_masked  pin 5: asserted while masked -> nothing, RTE
 *                        shows Delivery Status (send pending) and no
 *                        Remote IRR; unmask delivers exactly once
 *   ioapic_eoi_register  pin 6: with EOI-broadcast suppression (SVR bit 12)
 *                        the local APIC EOI leaves Remote IRR set; a new
 *                        assertion is then blocked; the I/O APIC EOI
 *                        register (+0x40) clears Remote IRR and, the line
 *                        being high, redelivers
 *   ioapic_dest          (>= 2 CPUs) pin 7 edge routed to every APIC id in
 *                        turn: the handler runs on that CPU; pin 8 level to
 *                        the last CPU: its EOI broadcast clears Remote IRR
 *
 *   migrate=1 runs only the IRQ-migration sequence of seed 003 (needs >= 3
 *   CPUs): pin 11 level, vector 0x41, routed to APIC 2. The line is raised;
 *   CPU 2's handler masks the entry before its EOI (Linux's
 *   ioapic_ack_level() "moveit" path), so the still-high line stays
 *   pending. The BSP then writes destination 0 into the high dword and
 *   clears the mask in the low dword. The redelivered interrupt must run on
 *   CPU 0:
 *     ioapic_migrate        PASS iff it ran on CPU 0; otherwise FAIL and the
 *                           line "misdelivered to cpu K" (K = 2 with the
 *                           pre-fix STALE_BEFORE_SERVICE route order)
 *     ioapic_migrate_after  one more assertion afterwards goes to CPU 0 in
 *                           both orders (the route was refreshed after the
 *                           write that misdelivered)
 *   Per-CPU counters are printed as "vector 0x41 on cpu K: N".
 *
 * Options: migrate=1; settle=L pause loops to wait when nothing may
 * arrive (default 20000).
 */
#include "runtime.h"
#include "ioapic.h"
#include "irq_counter.h"

#ifndef LAPIC_VERSION
#define LAPIC_VERSION 0x030
#endif
#ifndef LAPIC_IRR
#define LAPIC_IRR 0x200
#endif
#define LAPIC_VERSION_DIRECTED_EOI (1u << 24)
#define LAPIC_SVR_SUPPRESS_EOI_BROADCAST (1u << 12)


static uint32_t lapic_irr_bit(int v) {
  return (lapic_read(LAPIC_IRR + 0x10 * (v / 32)) >> (v % 32)) & 1;
}

/* ---- ioapic_regs ---- */
static void test_regs(void) {
  uint32_t ver = ioapic_read(IOAPIC_REG_VER);
  uint32_t id0 = ioapic_read(IOAPIC_REG_ID);
  ioapic_write(IOAPIC_REG_ID, 0x0A000000u | 0x00FFFFFFu);
  uint32_t id1 = ioapic_read(IOAPIC_REG_ID);
  ioapic_write(IOAPIC_REG_ID, id0);
  bool all_masked = true;
  for (int pin = 0; pin < IOAPIC_NUM_PINS; pin++)
    if (!(ioapic_rte_lo(pin) & IOAPIC_RTE_MASKED)) all_masked = false;
  reportf("ioapic_regs", ver == 0x00170020 && id1 == 0x0A000000u && all_masked,
          "ver=0x%x id-after-write=0x%x all-masked=%d", ver, id1, all_masked);
}

/* ---- ioapic_edge / ioapic_edge_masked (pin 1, vector 0x31) ---- */
static void test_edge(void) {
  const int pin = 1, v = 0x31;
  ioapic_rte_set(pin, 0, v);  /* edge, active high, fixed, unmasked */
  pc_testdev_line(pin, true);
  bool first = wait_total(v, 1);
  pc_testdev_line(pin, true);  /* still high: no edge */
  settle();
  uint32_t after_high_again = total[v];
  uint32_t rte = ioapic_rte_lo(pin);
  pc_testdev_line(pin, false);
  pc_testdev_line(pin, true);
  bool second = wait_total(v, 2);
  pc_testdev_line(pin, false);
  settle();
  reportf("ioapic_edge",
          first && after_high_again == 1 && second && total[v] == 2 &&
              !(rte & IOAPIC_RTE_REMOTE_IRR),
          "first=%d after-high-again=%u second=%d total=%u rte=0x%x", first,
          after_high_again, second, total[v], rte);

  /* Masked: the edge is lost. */
  ioapic_mask(pin);
  pc_testdev_line(pin, true);
  settle();
  pc_testdev_line(pin, false);
  ioapic_unmask(pin);
  settle();
  uint32_t after_unmask = total[v];
  pc_testdev_line(pin, true);
  bool third = wait_total(v, 3);
  pc_testdev_line(pin, false);
  settle();
  ioapic_mask(pin);
  reportf("ioapic_edge_masked", after_unmask == 2 && third && total[v] == 3,
          "after-unmask=%u (want 2) total=%u (want 3)", after_unmask, total[v]);
}

/* ---- ioapic_level (pin 2, vector 0x32) ---- */
static volatile uint32_t level_rte_in_handler;
static void level_hook(int v, uint32_t n, int cpu) {
  (void)v; (void)n; (void)cpu;
  level_rte_in_handler = ioapic_rte_lo(2);
  pc_testdev_line(2, false);  /* device deasserts before the EOI */
}
static void test_level(void) {
  const int pin = 2, v = 0x32;
  hooks[v] = level_hook;
  ioapic_rte_set(pin, 0, IOAPIC_RTE_LEVEL | v);
  pc_testdev_line(pin, true);
  bool got = wait_total(v, 1);
  settle();
  uint32_t rte_after = ioapic_rte_lo(pin);
  reportf("ioapic_level",
          got && total[v] == 1 &&
              (level_rte_in_handler & IOAPIC_RTE_REMOTE_IRR) &&
              !(rte_after & IOAPIC_RTE_REMOTE_IRR),
          "total=%u rte-in-handler=0x%x rte-after=0x%x", total[v],
          level_rte_in_handler, rte_after);
  printf("ioapic_level: rte in handler 0x%x (Remote IRR %u), after EOI 0x%x "
         "(Remote IRR %u)\n",
         level_rte_in_handler, (level_rte_in_handler >> 14) & 1, rte_after,
         (rte_after >> 14) & 1);
  ioapic_mask(pin);
}

/* ---- ioapic_level_coalesce (pin 3, vector 0x33) ---- */
static volatile uint32_t coalesce_irr_in_handler = 0xFF;
static void coalesce_hook(int v, uint32_t n, int cpu) {
  (void)cpu;
  if (n != 1) return;
  pc_testdev_line(3, false);
  pc_testdev_line(3, true);   /* Remote IRR set: must not be sent */
  coalesce_irr_in_handler = lapic_irr_bit(v);
  pc_testdev_line(3, false);  /* deasserted before the EOI */
}
static void test_level_coalesce(void) {
  const int pin = 3, v = 0x33;
  hooks[v] = coalesce_hook;
  ioapic_rte_set(pin, 0, IOAPIC_RTE_LEVEL | v);
  pc_testdev_line(pin, true);
  bool got = wait_total(v, 1);
  settle();
  reportf("ioapic_level_coalesce",
          got && total[v] == 1 && coalesce_irr_in_handler == 0,
          "total=%u (want 1) lapic-irr-in-handler=%u", total[v],
          coalesce_irr_in_handler);
  ioapic_mask(pin);
}

/* ---- ioapic_level_retrigger (pin 4, vector 0x34) ---- */
static void retrigger_hook(int v, uint32_t n, int cpu) {
  (void)v; (void)cpu;
  if (n >= 3) pc_testdev_line(4, false);
}
static void test_level_retrigger(void) {
  const int pin = 4, v = 0x34;
  hooks[v] = retrigger_hook;
  ioapic_rte_set(pin, 0, IOAPIC_RTE_LEVEL | v);
  pc_testdev_line(pin, true);
  bool got = wait_total(v, 3);
  settle();
  reportf("ioapic_level_retrigger", got && total[v] == 3,
          "total=%u (want 3)", total[v]);
  ioapic_mask(pin);
}

/* ---- ioapic_level_masked (pin 5, vector 0x35) ---- */
static void lower5_hook(int v, uint32_t n, int cpu) {
  (void)v; (void)n; (void)cpu;
  pc_testdev_line(5, false);
}
static void test_level_masked(void) {
  const int pin = 5, v = 0x35;
  hooks[v] = lower5_hook;
  ioapic_rte_set(pin, 0, IOAPIC_RTE_MASKED | IOAPIC_RTE_LEVEL | v);
  pc_testdev_line(pin, true);
  settle();
  uint32_t while_masked = total[v];
  uint32_t rte = ioapic_rte_lo(pin);
  ioapic_unmask(pin);
  bool got = wait_total(v, 1);
  settle();
  reportf("ioapic_level_masked",
          while_masked == 0 && (rte & IOAPIC_RTE_DELIVS) &&
              !(rte & IOAPIC_RTE_REMOTE_IRR) && got && total[v] == 1,
          "while-masked=%u rte=0x%x total=%u", while_masked, rte, total[v]);
  ioapic_mask(pin);
}

/* ---- ioapic_eoi_register (pin 6, vector 0x36) ---- */
static void lower6_hook(int v, uint32_t n, int cpu) {
  (void)v; (void)n; (void)cpu;
  pc_testdev_line(6, false);
}
static void test_eoi_register(void) {
  const int pin = 6, v = 0x36;
  if (!(lapic_read(LAPIC_VERSION) & LAPIC_VERSION_DIRECTED_EOI)) {
    report_skip("ioapic_eoi_register", "local APIC cannot suppress EOI broadcast");
    return;
  }
  uint32_t svr = lapic_read(LAPIC_SVR);
  lapic_write(LAPIC_SVR, svr | LAPIC_SVR_SUPPRESS_EOI_BROADCAST);
  hooks[v] = lower6_hook;
  ioapic_rte_set(pin, 0, IOAPIC_RTE_LEVEL | v);
  pc_testdev_line(pin, true);
  bool got1 = wait_total(v, 1);
  settle();
  uint32_t rte1 = ioapic_rte_lo(pin);  /* LAPIC EOI not broadcast: IRR set */
  pc_testdev_line(pin, true);          /* blocked by Remote IRR */
  settle();
  uint32_t blocked = total[v];
  ioapic_eoi(v);                       /* clears Remote IRR, line high */
  bool got2 = wait_total(v, 2);
  settle();
  uint32_t rte2 = ioapic_rte_lo(pin);
  ioapic_eoi(v);
  uint32_t rte3 = ioapic_rte_lo(pin);
  lapic_write(LAPIC_SVR, svr);
  reportf("ioapic_eoi_register",
          got1 && (rte1 & IOAPIC_RTE_REMOTE_IRR) && blocked == 1 && got2 &&
              total[v] == 2 && (rte2 & IOAPIC_RTE_REMOTE_IRR) &&
              !(rte3 & IOAPIC_RTE_REMOTE_IRR),
          "rte-after-lapic-eoi=0x%x blocked-total=%u total=%u rte2=0x%x "
          "rte-after-eoir=0x%x",
          rte1, blocked, total[v], rte2, rte3);
  ioapic_mask(pin);
}

/* ---- ioapic_dest (pins 7 and 8, vectors 0x37, 0x38) ---- */
static void lower8_hook(int v, uint32_t n, int cpu) {
  (void)v; (void)n; (void)cpu;
  pc_testdev_line(8, false);
}
static void test_dest(void) {
  if (ncpus < 2) {
    report_skip("ioapic_dest", "needs >= 2 CPUs");
    return;
  }
  const int pin = 7, v = 0x37;
  bool ok = true;
  for (int cpu = 0; cpu < ncpus && cpu < NCPU_MAX; cpu++) {
    ioapic_rte_set(pin, (uint32_t)cpu, v);
    pc_testdev_line(pin, true);
    bool got = wait_total(v, (uint32_t)cpu + 1);
    pc_testdev_line(pin, false);
    if (!got || hits[cpu][v] != 1) ok = false;
    printf("ioapic_dest: pin %d -> apic %d: ran on cpu %d %u time(s)\n", pin,
           cpu, cpu, hits[cpu][v]);
  }
  ioapic_mask(pin);
  const int lpin = 8, lv = 0x38, last = ncpus - 1;
  hooks[lv] = lower8_hook;
  ioapic_rte_set(lpin, (uint32_t)last, IOAPIC_RTE_LEVEL | lv);
  pc_testdev_line(lpin, true);
  bool got = wait_total(lv, 1);
  settle();
  uint32_t rte = ioapic_rte_lo(lpin);
  reportf("ioapic_dest",
          ok && total[v] == (uint32_t)ncpus && got && hits[last][lv] == 1 &&
              !(rte & IOAPIC_RTE_REMOTE_IRR),
          "edge total=%u level on cpu %d: %u rte=0x%x", total[v], last,
          hits[last][lv], rte);
  ioapic_mask(lpin);
}

/* ---- migrate=1: seed 003 (pin 11, vector 0x41, APIC 2 -> APIC 0) ---- */
#define MIG_PIN 11
#define MIG_VEC 0x41
#define MIG_FROM 2
#define MIG_TO 0
static volatile int mig_cpu[4] = {-1, -1, -1, -1};
static void migrate_hook(int v, uint32_t n, int cpu) {
  (void)v;
  if (n <= 3) mig_cpu[n] = cpu;
  if (n == 1) {
    /* Linux ioapic_ack_level() with a move pending: mask the entry, then
       EOI (the runtime does it after this hook). The line stays high. */
    ioapic_mask(MIG_PIN);
  } else {
    pc_testdev_line(MIG_PIN, false);  /* the device is serviced */
  }
}
static int run_migrate(void) {
  if (ncpus <= MIG_FROM) {
    reportf("ioapic_migrate", false, "needs >= %d CPUs, have %d", MIG_FROM + 1,
            ncpus);
    report_exit();
  }
  hooks[MIG_VEC] = migrate_hook;
  ioapic_rte_set(MIG_PIN, MIG_FROM, IOAPIC_RTE_LEVEL | MIG_VEC);
  pc_testdev_line(MIG_PIN, true);
  bool first = wait_total(MIG_VEC, 1);
  /* Wait for CPU 2's EOI: Remote IRR clear, masked, line high -> pending. */
  uint32_t rte = 0;
  for (int i = 0; i < WAIT_LOOPS; i++) {
    rte = ioapic_rte_lo(MIG_PIN);
    if (!(rte & IOAPIC_RTE_REMOTE_IRR)) break;
    cpu_relax();
  }
  printf("ioapic_migrate: irq on cpu %d, rte 0x%08x hi 0x%08x "
         "(masked, pending); moving it to cpu %d\n",
         mig_cpu[1], rte, ioapic_rte_hi(MIG_PIN), MIG_TO);
  report("ioapic_migrate_setup",
         first && mig_cpu[1] == MIG_FROM && (rte & IOAPIC_RTE_MASKED) &&
             !(rte & IOAPIC_RTE_REMOTE_IRR));
  /* The move (Linux ioapic_set_affinity() + unmask_ioapic_irq()): the new
     destination in the high dword, then unmask in the low dword. */
  ioapic_write(IOAPIC_REG_RTE_HI(MIG_PIN), IOAPIC_RTE_DEST(MIG_TO));
  ioapic_write(IOAPIC_REG_RTE_LO(MIG_PIN), IOAPIC_RTE_LEVEL | MIG_VEC);
  bool second = wait_total(MIG_VEC, 2);
  settle();
  int where = mig_cpu[2];
  printf("ioapic_migrate: redelivered interrupt ran on cpu %d\n", where);
  if (second && where != MIG_TO)
    printf("ioapic_migrate: misdelivered to cpu %d (RTE says cpu %d)\n", where,
           MIG_TO);
  reportf("ioapic_migrate", second && where == MIG_TO && total[MIG_VEC] == 2,
          "misdelivered to cpu %d, want cpu %d", where, MIG_TO);

  /* Once the write is over the route is current in both orders. */
  pc_testdev_line(MIG_PIN, true);
  bool third = wait_total(MIG_VEC, 3);
  settle();
  reportf("ioapic_migrate_after", third && mig_cpu[3] == MIG_TO,
          "next interrupt on cpu %d, want cpu %d", mig_cpu[3], MIG_TO);
  for (int cpu = 0; cpu < ncpus && cpu < NCPU_MAX; cpu++)
    printf("vector 0x%x on cpu %d: %u\n", MIG_VEC, cpu, hits[cpu][MIG_VEC]);
  ioapic_mask(MIG_PIN);
  report_exit();
}

int main(void) {
  ncpus = fw_cfg_cpu_count();
  if (ncpus > NCPU_MAX) ncpus = NCPU_MAX;
  settle_loops = (uint64_t)cmdline_get_int("settle", 20000);
  for (int v = 0x30; v < 0x50; v++) irq_set_handler(v, on_irq);
  if (ncpus > 1) {
    int up = smp_start_aps(ncpus, ap_main, 20000000);
    printf("ioapic: %d CPUs, %d APs up\n", ncpus, up);
    if (up != ncpus - 1) panic("only %d of %d APs started", up, ncpus - 1);
  } else {
    printf("ioapic: 1 CPU\n");
  }
  if (cmdline_get_int("migrate", 0)) return run_migrate();

  test_regs();
  test_edge();
  test_level();
  test_level_coalesce();
  test_level_retrigger();
  test_level_masked();
  test_eoi_register();
  test_dest();
  report_exit();
}
