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
/* End of interrupt (SDM 11.8.5). irq_dispatch() does this for every
 * external vector (>= 32, except the spurious one) after its handler. */
static inline void lapic_eoi(void) { lapic_write(LAPIC_EOI, 0); }
/* Writes ICR high (destination in bits 31:24), then ICR low (sends). */
void lapic_send_ipi(uint32_t dest_apic_id, uint32_t icr_lo);

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
