/*
 * ioapic.h: guest-side helpers for the I/O APIC (82093AA register
 * interface, plus the version-0x20 EOI register) and the pc-testdev IRQ
 * lines. Header-only (static inline), additive to runtime.h: include it
 * after runtime.h.
 *
 * Register access goes through the shared IOREGSEL/IOWIN pair, so every
 * indirect access is done under ioapic_lock with interrupts disabled on
 * the calling CPU (a handler on the same CPU could otherwise deadlock on
 * the lock, or another CPU could move IOREGSEL between the two accesses).
 */
#ifndef IRQLAB_GUEST_IOAPIC_H_
#define IRQLAB_GUEST_IOAPIC_H_

#include "runtime.h"

#define IOAPIC_BASE 0xFEC00000ull
#define IOAPIC_REGSEL 0x00
#define IOAPIC_WIN 0x10
#define IOAPIC_EOIR 0x40 /* version 0x20 only: write the vector */
#define IOAPIC_REG_ID 0x00
#define IOAPIC_REG_VER 0x01
#define IOAPIC_REG_ARB 0x02
#define IOAPIC_REG_RTE_LO(pin) (0x10 + 2 * (pin))
#define IOAPIC_REG_RTE_HI(pin) (0x11 + 2 * (pin))
#define IOAPIC_NUM_PINS 24

/* Redirection entry fields ([82093AA] 3.2.4), low dword. */
#define IOAPIC_RTE_VECTOR_MASK 0x000000FFu
#define IOAPIC_RTE_DM_LOWEST 0x00000100u
#define IOAPIC_RTE_LOGICAL 0x00000800u
#define IOAPIC_RTE_DELIVS 0x00001000u     /* RO: send pending */
#define IOAPIC_RTE_ACTIVE_LOW 0x00002000u
#define IOAPIC_RTE_REMOTE_IRR 0x00004000u /* RO */
#define IOAPIC_RTE_LEVEL 0x00008000u
#define IOAPIC_RTE_MASKED 0x00010000u
/* High dword: destination APIC id in bits 31:24 (bits 63:56 of the RTE). */
#define IOAPIC_RTE_DEST(apic_id) ((uint32_t)(apic_id) << 24)

/* pc-testdev IRQ lines: a byte write of 0/1 to port 0x2000 + n lowers/raises
 * line n, which drives I/O APIC pin n. */
#define PC_TESTDEV_IRQ_PORT 0x2000

static spinlock_t ioapic_lock;

static inline uint64_t ioapic_irq_save(void) {
  uint64_t flags = read_rflags();
  cli();
  return flags;
}
static inline void ioapic_irq_restore(uint64_t flags) {
  if (flags & 0x200) sti();
}

static inline uint32_t ioapic_read(uint8_t index) {
  uint64_t flags = ioapic_irq_save();
  spin_lock(&ioapic_lock);
  mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, index);
  uint32_t v = mmio_read32(IOAPIC_BASE + IOAPIC_WIN);
  spin_unlock(&ioapic_lock);
  ioapic_irq_restore(flags);
  return v;
}
static inline void ioapic_write(uint8_t index, uint32_t value) {
  uint64_t flags = ioapic_irq_save();
  spin_lock(&ioapic_lock);
  mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, index);
  mmio_write32(IOAPIC_BASE + IOAPIC_WIN, value);
  spin_unlock(&ioapic_lock);
  ioapic_irq_restore(flags);
}

static inline uint32_t ioapic_rte_lo(int pin) {
  return ioapic_read(IOAPIC_REG_RTE_LO(pin));
}
static inline uint32_t ioapic_rte_hi(int pin) {
  return ioapic_read(IOAPIC_REG_RTE_HI(pin));
}
/* Programs a whole entry the way Linux does: high dword (destination)
 * first, then the low dword (vector, mode, mask). The low write is the one
 * that services the pin. */
static inline void ioapic_rte_set(int pin, uint32_t dest_apic_id,
                                  uint32_t low) {
  ioapic_write(IOAPIC_REG_RTE_HI(pin), IOAPIC_RTE_DEST(dest_apic_id));
  ioapic_write(IOAPIC_REG_RTE_LO(pin), low);
}
static inline void ioapic_mask(int pin) {
  ioapic_write(IOAPIC_REG_RTE_LO(pin),
               ioapic_rte_lo(pin) | IOAPIC_RTE_MASKED);
}
static inline void ioapic_unmask(int pin) {
  ioapic_write(IOAPIC_REG_RTE_LO(pin),
               ioapic_rte_lo(pin) & ~IOAPIC_RTE_MASKED);
}
/* The directed-EOI path: clears Remote IRR of the entries with `vector`. */
static inline void ioapic_eoi(uint8_t vector) {
  mmio_write32(IOAPIC_BASE + IOAPIC_EOIR, vector);
}

static inline void pc_testdev_line(int line, bool high) {
  outb(PC_TESTDEV_IRQ_PORT + line, high ? 1 : 0);
}

#endif /* IRQLAB_GUEST_IOAPIC_H_ */
