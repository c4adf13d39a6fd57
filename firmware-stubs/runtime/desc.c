/*
 * desc.c: descriptor tables and interrupt dispatch: per-CPU TSS (IST1 for
 * #DF, IST2 for NMI and #MC) and its GDT descriptor, the 256-entry IDT
 * pointing at the isr.S stubs, the C handler table and the default
 * handler that reports an unexpected exception or interrupt and exits.
 */
#include "runtime.h"

struct __attribute__((packed)) tss64 {
  uint32_t reserved0;
  uint64_t rsp[3];
  uint64_t reserved1;
  uint64_t ist[7];
  uint64_t reserved2;
  uint16_t reserved3;
  uint16_t iomap_base;
};
_Static_assert(sizeof(struct tss64) == 104, "TSS layout");

struct __attribute__((packed)) idt_gate {
  uint16_t offset_lo;
  uint16_t selector;
  uint8_t ist;
  uint8_t type_attr; /* 0x8E: present, DPL 0, 64-bit interrupt gate */
  uint16_t offset_mid;
  uint32_t offset_hi;
  uint32_t reserved;
};
_Static_assert(sizeof(struct idt_gate) == 16, "IDT gate layout");

extern uint64_t gdt[];
extern char isr_stubs[];

static struct tss64 tss[MAX_CPUS] __attribute__((aligned(128)));
static uint8_t ist_stacks[MAX_CPUS][2][IST_STACK_SIZE] __attribute__((aligned(16)));
static struct idt_gate idt[256] __attribute__((aligned(16)));
static irq_handler_t handlers[256];

static const char *const kExceptionNames[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint",
    "#OF overflow", "#BR bound range", "#UD invalid opcode",
    "#NM device not available", "#DF double fault", "coprocessor overrun",
    "#TS invalid TSS", "#NP segment not present", "#SS stack fault",
    "#GP general protection", "#PF page fault", "reserved 15",
    "#MF x87 error", "#AC alignment check", "#MC machine check",
    "#XM SIMD error", "#VE virtualization", "#CP control protection",
    "reserved 22", "reserved 23", "reserved 24", "reserved 25",
    "reserved 26", "reserved 27", "#HV hypervisor injection",
    "#VC VMM communication", "#SX security", "reserved 31"};

const char *exception_name(int vector) {
  return vector >= 0 && vector < 32 ? kExceptionNames[vector] : "interrupt";
}

static void set_gate(int vector, uint64_t entry, int ist) {
  struct idt_gate *g = &idt[vector];
  g->offset_lo = (uint16_t)entry;
  g->selector = KERNEL_CS;
  g->ist = (uint8_t)ist;
  g->type_attr = 0x8E;
  g->offset_mid = (uint16_t)(entry >> 16);
  g->offset_hi = (uint32_t)(entry >> 32);
  g->reserved = 0;
}

static int default_ist(int vector) {
  if (vector == 8) return IST_DF;
  if (vector == 2 || vector == 18) return IST_NMI;
  return 0;
}

void idt_restore_gate(int vector) {
  set_gate(vector, (uint64_t)isr_stubs + 16 * (uint64_t)vector,
           default_ist(vector));
}

void idt_set_gate(int vector, void (*entry)(void), int ist) {
  set_gate(vector, (uint64_t)entry, ist);
}

void irq_set_handler(int vector, irq_handler_t fn) {
  handlers[vector & 0xFF] = fn;
}

void idt_init(void) {
  for (int v = 0; v < 256; v++) idt_restore_gate(v);
}

void cpu_init_descriptors(int cpu) {
  struct tss64 *t = &tss[cpu];
  memset(t, 0, sizeof(*t));
  t->ist[IST_DF - 1] = (uint64_t)&ist_stacks[cpu][0][IST_STACK_SIZE];
  t->ist[IST_NMI - 1] = (uint64_t)&ist_stacks[cpu][1][IST_STACK_SIZE];
  t->iomap_base = sizeof(*t); /* no I/O bitmap */

  /* 16-byte system descriptor: available 64-bit TSS (type 9), present. */
  uint64_t base = (uint64_t)t;
  uint64_t limit = sizeof(*t) - 1;
  int slot = (TSS_SEL_BASE >> 3) + 2 * cpu;
  gdt[slot] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89ull << 40) |
              (((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56);
  gdt[slot + 1] = base >> 32;

  struct dtr idtr = {sizeof(idt) - 1, (uint64_t)idt};
  lidt(&idtr);
  ltr((uint16_t)(TSS_SEL_BASE + 16 * cpu));
}

static __attribute__((noreturn)) void unexpected(struct irq_frame *f) {
  uint64_t cr2 = read_cr2();
  panic("unexpected %s (vector 0x%lx) on cpu %u: error code 0x%lx\n"
        "  rip=0x%lx cs=0x%lx rflags=0x%lx rsp=0x%lx ss=0x%lx cr2=0x%lx\n"
        "  rax=0x%lx rbx=0x%lx rcx=0x%lx rdx=0x%lx rsi=0x%lx rdi=0x%lx\n",
        exception_name((int)f->vector), f->vector, cpuid_apic_id(),
        f->error_code, f->rip, f->cs, f->rflags, f->rsp, f->ss, cr2, f->rax,
        f->rbx, f->rcx, f->rdx, f->rsi, f->rdi);
}

/* Called from isr_common (isr.S) with interrupts disabled. */
void irq_dispatch(struct irq_frame *f) {
  irq_handler_t h = handlers[f->vector & 0xFF];
  if (!h) unexpected(f);
  h(f);
  /* External interrupts are retired here, so handlers never EOI. */
  if (f->vector >= 32 && f->vector != LAPIC_SPURIOUS_VECTOR) lapic_eoi();
}
