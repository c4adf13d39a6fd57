/*
 * runtime.h: the irqlab guest runtime API. Programs include only this file.
 *
 * A program defines `int main(void)`; the runtime boots (multiboot -> long
 * mode, GDT/TSS/IDT, serial, cmdline), calls main() on the BSP and exits
 * with its return value through isa-debug-exit (exit(v) -> status
 * (v << 1) | 1, so returning 0 gives status 1 = success).
 *
 * Everything here runs in ring 0 with an identity map of the first 4 GiB.
 */
#ifndef IRQLAB_GUEST_RUNTIME_H_
#define IRQLAB_GUEST_RUNTIME_H_

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "x86.h"

/* ---- Console (COM1, polled) and test reporting ---- */

/* Formats like printf: %d %i %u %x %X %s %c %p %%, flags '-' '0', a width
   (or *), a precision for %s (.N or .*) and the length modifiers l, ll, z.
   Serialized across CPUs. */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void puts_raw(const char *s); /* no newline added */

/* Prints "PASS: name" or "FAIL: name" and counts failures. */
void report(const char *name, bool ok);
/* Prints "PASS: name" or "FAIL: name (why...)" with a formatted reason. */
void reportf(const char *name, bool ok, const char *why_fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints "SKIP: name (why)"; not counted as a test. */
void report_skip(const char *name, const char *why);
int report_failures(void);
/* Prints "SUMMARY: N tests, M failures" and exits 0 iff M == 0. */
__attribute__((noreturn)) void report_exit(void);

/* Ends the run through isa-debug-exit (port 0xF4): status (code << 1) | 1.
   If no such device exists, halts forever. */
__attribute__((noreturn)) void exit(int code);
/* Prints "PANIC: ..." and exits with code 2. */
__attribute__((noreturn, format(printf, 1, 2))) void panic(const char *fmt, ...);

/* ---- Boot information ---- */

struct boot_info {
  uint32_t mb_magic;     /* EAX at entry; 0x2BADB002 under multiboot */
  uint32_t mb_flags;     /* multiboot info flags (0 if no info) */
  uint32_t mem_lower_kb; /* valid if mb_flags bit 0 */
  uint32_t mem_upper_kb;
  uint32_t mods_count;   /* bit 3 */
  uint32_t mods_addr;
  uint32_t mmap_length;  /* bit 6 */
  uint32_t mmap_addr;
};
extern struct boot_info boot_info;

/* The multiboot command line (copied at boot; "" if none). Under QEMU it
   starts with the kernel file name. */
const char *cmdline(void);
/* Value of the first "key=value" token; decimal or 0x-hex; `def` if absent
   or malformed. */
int64_t cmdline_get_int(const char *key, int64_t def);
/* Copies the value of "key=value" into buf (NUL-terminated); false if absent. */
bool cmdline_get_str(const char *key, char *buf, size_t size);
/* True if the token "key" or "key=..." is present. */
bool cmdline_has(const char *key);

/* ---- fw_cfg (ports 0x510 selector, 0x511 data) ---- */

#define FW_CFG_SIGNATURE 0x0000
#define FW_CFG_NB_CPUS 0x0005
bool fw_cfg_present(void);                       /* key 0 reads "QEMU" */
void fw_cfg_read(uint16_t key, void *buf, size_t len);
int fw_cfg_cpu_count(void);                      /* 1 if no fw_cfg */

/* ---- Interrupts and exceptions ---- */

/* Saved state on interrupt/exception entry (isr.S builds it). Handlers may
   change any field; rip/rsp/rflags and GPRs take effect at IRETQ. */
struct irq_frame {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
  uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
  uint64_t vector;
  uint64_t error_code; /* 0 for vectors without an error code */
  uint64_t rip, cs, rflags, rsp, ss;
};
_Static_assert(sizeof(struct irq_frame) == 176, "frame layout (isr.S)");

typedef void (*irq_handler_t)(struct irq_frame *frame);

/* Installs fn for `vector` (NULL restores the default, which for any
   vector reports an unexpected exception/interrupt and exits with code 2).
   The IDT gate stays the runtime's stub: an interrupt gate, so IF=0 in fn. */
void irq_set_handler(int vector, irq_handler_t fn);
/* Points the IDT gate of `vector` at raw code (which must end in IRETQ),
   bypassing the frame/dispatch path. ist = 0 for the current stack. */
void idt_set_gate(int vector, void (*entry)(void), int ist);
/* Restores the runtime stub for `vector`. */
void idt_restore_gate(int vector);
const char *exception_name(int vector);

/* Kernel image bounds (linker symbols). */
extern char __kernel_start[], _etext[], _end[];
static inline bool addr_in_kernel_text(uint64_t a) {
  return a >= (uint64_t)__kernel_start && a < (uint64_t)_etext;
}

/* Boot page tables: boot_pd[i] maps 2 MiB page i (i < 2048) of the first
   4 GiB. Programs may edit them (then invlpg/flush_tlb). */
extern uint64_t boot_pml4[512], boot_pdpt[512], boot_pd[2048];
#define PTE_P 0x001ull
#define PTE_W 0x002ull
#define PTE_U 0x004ull
#define PTE_PWT 0x008ull
#define PTE_PCD 0x010ull
#define PTE_PS 0x080ull

/* ---- Local APIC (xAPIC MMIO) ---- */

#define LAPIC_BASE 0xFEE00000ull
#define LAPIC_ID 0x020
#define LAPIC_EOI 0x0B0
#define LAPIC_SVR 0x0F0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define ICR_INIT 0x00004500u
#define ICR_STARTUP 0x00004600u

static inline uint32_t lapic_read(uint32_t reg) {
  return mmio_read32(LAPIC_BASE + reg);
}
static inline void lapic_write(uint32_t reg, uint32_t v) {
  mmio_write32(LAPIC_BASE + reg, v);
}
static inline uint32_t lapic_id(void) { return lapic_read(LAPIC_ID) >> 24; }
/* Spurious-interrupt vector programmed by lapic_enable(); never EOI'd. */
#define LAPIC_SPURIOUS_VECTOR 0xFF
/* Software-enables this CPU's local APIC (SVR bit 8, SDM 11.4.7.1): a
 * local APIC powers up software-disabled and drops fixed interrupts. */
static inline void lapic_enable(void) {
  lapic_write(LAPIC_SVR, 0x100 | LAPIC_SPURIOUS_VECTOR);
}
/* More register offsets of the xAPIC page (SDM Table 11-1). */
#define LAPIC_VERSION 0x030
#define LAPIC_TPR 0x080
#define LAPIC_APR 0x090
#define LAPIC_PPR 0x0A0
#define LAPIC_LDR 0x0D0
#define LAPIC_DFR 0x0E0
#define LAPIC_ISR 0x100 /* + 0x10 * (vector / 32), bit vector % 32 */
#define LAPIC_TMR 0x180
#define LAPIC_IRR 0x200
#define LAPIC_ESR 0x280
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_THERMAL 0x330
#define LAPIC_LVT_PMC 0x340
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERROR 0x370
#define LAPIC_TMICT 0x380
#define LAPIC_TMCCT 0x390
#define LAPIC_TDCR 0x3E0
/* ICR low fields (SDM 11.6.1). */
#define ICR_FIXED 0x00000000u
#define ICR_LOWEST 0x00000100u
#define ICR_NMI 0x00000400u
#define ICR_LOGICAL 0x00000800u
#define ICR_ASSERT 0x00004000u
#define ICR_LEVEL 0x00008000u
#define ICR_SELF 0x00040000u
#define ICR_ALL_INCL 0x00080000u
#define ICR_ALL_EXCL 0x000C0000u
/* LVT fields (SDM 11.5.1). */
#define LVT_MASKED 0x00010000u
#define LVT_TIMER_ONESHOT 0x00000000u
#define LVT_TIMER_PERIODIC 0x00020000u
#define LVT_TIMER_TSC_DEADLINE 0x00040000u
/* DFR models (SDM 11.6.2.2). */
#define DFR_FLAT 0xFFFFFFFFu
#define DFR_CLUSTER 0x0FFFFFFFu

/* MSRs (SDM 11.4.4, 11.5.4.1, 11.12.1.2). */
#define MSR_IA32_APIC_BASE 0x1B
#define APIC_BASE_BSP (1ull << 8)
#define APIC_BASE_EXTD (1ull << 10)
#define APIC_BASE_EN (1ull << 11)
#define MSR_IA32_TSC_DEADLINE 0x6E0
/* x2APIC MSR of an xAPIC register offset: 0x800 + offset / 16. */
#define X2APIC_MSR(reg) (0x800u + ((uint32_t)(reg) >> 4))
#define MSR_X2APIC_ICR 0x830   /* 64-bit: destination in 63:32 */
#define MSR_X2APIC_SELF_IPI 0x83F

/* Index of the calling CPU, from its task register (each CPU loads the TSS
 * selector TSS_SEL_BASE + 16 * cpu in cpu_init_descriptors()). */
static inline int this_cpu(void) {
  uint16_t tr;
  __asm__ volatile("str %0" : "=r"(tr));
  return (tr - TSS_SEL_BASE) / 16;
}
/* CPUID.1:ECX bit 21 (x2APIC) and bit 24 (TSC-deadline timer). */
static inline bool cpu_has_x2apic(void) {
  uint32_t a, b, c, d;
  cpuid(1, &a, &b, &c, &d);
  return (c >> 21) & 1;
}
static inline bool cpu_has_tsc_deadline(void) {
  uint32_t a, b, c, d;
  cpuid(1, &a, &b, &c, &d);
  return (c >> 24) & 1;
}
/* Bit i set: CPU i switched its APIC to x2APIC mode with
 * lapic_enable_x2apic() (the xAPIC page is not decoded then, SDM 11.12.1;
 * the mode-aware helpers below use the MSRs instead). */
extern volatile uint64_t lapic_x2apic_cpus;
static inline bool lapic_in_x2apic(void) {
  return lapic_x2apic_cpus && ((lapic_x2apic_cpus >> this_cpu()) & 1);
}
/* xAPIC -> x2APIC (IA32_APIC_BASE.EXTD = 1, SDM 11.12.5) on the calling
 * CPU. The wrmsr raises #GP without CPUID x2APIC support: check
 * cpu_has_x2apic() first. */
void lapic_enable_x2apic(void);
/* Register access in the calling CPU's current mode: the xAPIC page, or
 * the x2APIC MSR 0x800 + reg / 16 (32-bit registers; not the ICR). */
static inline uint32_t lapic_reg_read(uint32_t reg) {
  if (lapic_in_x2apic()) return (uint32_t)rdmsr(X2APIC_MSR(reg));
  return lapic_read(reg);
}
static inline void lapic_reg_write(uint32_t reg, uint32_t v) {
  if (lapic_in_x2apic()) wrmsr(X2APIC_MSR(reg), v);
  else lapic_write(reg, v);
}
/* End of interrupt (SDM 11.8.5) in the calling CPU's mode. irq_dispatch()
 * does this for every external vector (>= 32, except the spurious one)
 * after its handler. */
static inline void lapic_eoi(void) {
  if (lapic_in_x2apic()) wrmsr(X2APIC_MSR(LAPIC_EOI), 0);
  else lapic_write(LAPIC_EOI, 0);
}
/* Writes ICR high (destination in bits 31:24), then ICR low (sends).
 * xAPIC mode only. */
void lapic_send_ipi(uint32_t dest_apic_id, uint32_t icr_lo);
/* Sends an IPI in the calling CPU's mode: xAPIC ICR high/low (dest 8 bits)
 * or the x2APIC ICR MSR (dest 32 bits). */
void lapic_send_ipi_any(uint32_t dest, uint32_t icr_lo);

/* ---- SMP ---- */

typedef void (*ap_main_fn)(int cpu);
/* Starts CPUs 1..ncpus-1 (APIC id == CPU index) one at a time: copies the
   trampoline to AP_TRAMPOLINE_PHYS, sends INIT, SIPI (and a second SIPI if
   the AP has not checked in after half the timeout) and waits up to
   `timeout_loops` pause-loop iterations per AP for it to check in. Each AP
   loads the IDT and its own TSS, then runs fn(cpu) on its own stack and
   afterwards sits in a cli; hlt loop. Returns the number of APs that
   checked in. ncpus is clamped to MAX_CPUS. */
int smp_start_aps(int ncpus, ap_main_fn fn, uint64_t timeout_loops);
/* Per-CPU descriptors: loads the IDT and TSS of `cpu` on the calling CPU. */
void cpu_init_descriptors(int cpu);

/* Busy-waits `loops` pause instructions (no timer yet). */
static inline void delay_loops(uint64_t loops) {
  for (uint64_t i = 0; i < loops; i++) cpu_relax();
}

/* ---- Minimal libc ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
/* For a comma-separated selection such as "cases=remap,msi" (read with
   cmdline_get_str into `list`): true if `list` names `name`, or if `list`
   is empty (nothing selected means everything). */
static inline bool cmdline_list_wants(const char *list, const char *name) {
  if (!list[0]) return true;
  size_t n = strlen(name);
  for (const char *p = list; *p;) {
    if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == 0)) return true;
    while (*p && *p != ',') p++;
    if (*p == ',') p++;
  }
  return false;
}

/* Simple test-and-set spinlock. */
typedef struct { volatile uint32_t locked; } spinlock_t;
static inline void spin_lock(spinlock_t *l) {
  while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE)) {
    while (l->locked) cpu_relax();
  }
}
static inline void spin_unlock(spinlock_t *l) {
  __atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

int main(void);

#endif /* IRQLAB_GUEST_RUNTIME_H_ */
