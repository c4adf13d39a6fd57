/*
 * x86.h: inline helpers for privileged x86 instructions: port I/O, MMIO,
 * MSRs, control registers, CPUID, TSC, interrupt flag, descriptor tables.
 */
#ifndef IRQLAB_GUEST_X86_H_
#define IRQLAB_GUEST_X86_H_

#include <stdbool.h>
#include <stdint.h>

#define RFLAGS_IF 0x200ull

static inline void outb(uint16_t port, uint8_t v) {
  __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t v) {
  __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v) {
  __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port) {
  uint8_t v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline uint16_t inw(uint16_t port) {
  uint16_t v;
  __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline uint32_t inl(uint16_t port) {
  uint32_t v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

static inline uint32_t mmio_read32(uint64_t addr) {
  return *(volatile uint32_t *)addr;
}
static inline void mmio_write32(uint64_t addr, uint32_t v) {
  *(volatile uint32_t *)addr = v;
}
static inline uint64_t mmio_read64(uint64_t addr) {
  return *(volatile uint64_t *)addr;
}
static inline void mmio_write64(uint64_t addr, uint64_t v) {
  *(volatile uint64_t *)addr = v;
}

static inline uint64_t rdmsr(uint32_t msr) {
  uint32_t lo, hi;
  __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v) {
  __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v),
                   "d"((uint32_t)(v >> 32)) : "memory");
}

static inline void cpuid_count(uint32_t leaf, uint32_t sub, uint32_t *a,
                               uint32_t *b, uint32_t *c, uint32_t *d) {
  __asm__ volatile("cpuid"
                   : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d)
                   : "a"(leaf), "c"(sub));
}
static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c,
                         uint32_t *d) {
  cpuid_count(leaf, 0, a, b, c, d);
}
/* Initial APIC id from CPUID leaf 1 EBX[31:24]. */
static inline uint32_t cpuid_apic_id(void) {
  uint32_t a, b, c, d;
  cpuid(1, &a, &b, &c, &d);
  return b >> 24;
}

/* True if CPUID reports the hypervisor vendor signature `sig` (12 chars),
   e.g. "TCGTCGTCGTCG" under QEMU TCG. */
static inline bool cpuid_hypervisor_is(const char *sig) {
  uint32_t a, b, c, d, s[3];
  cpuid(1, &a, &b, &c, &d);
  if (!(c & (1u << 31))) return false;
  cpuid(0x40000000, &a, &s[0], &s[1], &s[2]);
  const char *p = (const char *)s;
  for (int i = 0; i < 12; i++)
    if (p[i] != sig[i]) return false;
  return true;
}

static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}

#define DEFINE_CR(n)                                            \
  static inline uint64_t read_cr##n(void) {                     \
    uint64_t v;                                                 \
    __asm__ volatile("mov %%cr" #n ", %0" : "=r"(v));           \
    return v;                                                   \
  }                                                             \
  static inline void write_cr##n(uint64_t v) {                  \
    __asm__ volatile("mov %0, %%cr" #n : : "r"(v) : "memory");  \
  }
DEFINE_CR(0)
DEFINE_CR(2)
DEFINE_CR(3)
DEFINE_CR(4)
#undef DEFINE_CR

static inline void invlpg(uint64_t addr) {
  __asm__ volatile("invlpg (%0)" : : "r"(addr) : "memory");
}
static inline void flush_tlb(void) { write_cr3(read_cr3()); }

static inline uint64_t read_rflags(void) {
  uint64_t f;
  __asm__ volatile("pushfq; popq %0" : "=r"(f));
  return f;
}
static inline void cli(void) { __asm__ volatile("cli" : : : "memory"); }
static inline void sti(void) { __asm__ volatile("sti" : : : "memory"); }
static inline void hlt(void) { __asm__ volatile("hlt" : : : "memory"); }
/* sti; hlt back to back: an interrupt pending at the sti is taken only
   after the hlt starts (STI shadow), so no wake-up is lost. */
static inline void sti_hlt(void) {
  __asm__ volatile("sti; hlt" : : : "memory");
}
static inline void cpu_relax(void) { __asm__ volatile("pause" : : : "memory"); }
static inline void barrier(void) { __asm__ volatile("" : : : "memory"); }

struct __attribute__((packed)) dtr {
  uint16_t limit;
  uint64_t base;
};
static inline void lidt(const struct dtr *d) {
  __asm__ volatile("lidt %0" : : "m"(*d));
}
static inline void lgdt(const struct dtr *d) {
  __asm__ volatile("lgdt %0" : : "m"(*d));
}
static inline void ltr(uint16_t sel) { __asm__ volatile("ltr %0" : : "r"(sel)); }

#endif /* IRQLAB_GUEST_X86_H_ */
