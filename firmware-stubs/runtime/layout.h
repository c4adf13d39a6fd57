/*
 * layout.h: memory layout and descriptor constants shared by the guest
 * runtime's assembly (boot.S, isr.S) and C code. Plain #defines only, so it
 * can be included from both.
 */
#ifndef IRQLAB_GUEST_LAYOUT_H_
#define IRQLAB_GUEST_LAYOUT_H_

/* The kernel is linked and loaded at 4 MiB (see link.ld). */
#define KERNEL_LOAD_ADDR 0x400000

/* GDT selectors (gdt in boot.S). */
#define KERNEL_CS 0x08   /* 64-bit code */
#define KERNEL_DS 0x10   /* flat data (used in 32- and 64-bit mode) */
#define KERNEL_CS32 0x18 /* 32-bit code, used while switching to long mode */
#define TSS_SEL_BASE 0x20 /* TSS descriptor of CPU i at TSS_SEL_BASE + 16*i */

/* Maximum CPUs (APIC ids 0..MAX_CPUS-1) the runtime has stacks/TSSs for. */
#define MAX_CPUS 64

/* Stacks (all in .bss). */
#define BSP_STACK_SIZE 16384
#define AP_STACK_SIZE 8192
#define IST_STACK_SIZE 4096

/* IST slots (1-based, as in the IDT gate). */
#define IST_DF 1  /* #DF */
#define IST_NMI 2 /* NMI and #MC */

/*
 * AP start-up: the real-mode trampoline is copied to this page; the SIPI
 * vector is its page number (CS = vector << 8, IP = 0).
 */
#define AP_TRAMPOLINE_PHYS 0x8000
#define AP_SIPI_VECTOR (AP_TRAMPOLINE_PHYS >> 12)

#endif /* IRQLAB_GUEST_LAYOUT_H_ */
