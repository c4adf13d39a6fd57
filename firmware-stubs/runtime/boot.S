/*
 * boot.S: multiboot v1 header and entry, the switch from 32-bit protected
 * mode to long mode (BSP and APs), the boot page tables, the GDT and the
 * real-mode AP trampoline.
 *
 * BSP: the loader enters _start in 32-bit protected mode, paging off,
 * EAX=0x2BADB002, EBX=multiboot info, IF=0. We zero .bss, identity-map the
 * first 4 GiB with 2 MiB pages (the top GiB, which holds the IOAPIC, HPET
 * and local APIC MMIO windows, uncached), enable PAE + EFER.LME + paging and
 * far-jump to 64-bit code, which calls runtime_start(magic, info) in C.
 *
 * AP: INIT/SIPI starts the AP in real mode at AP_TRAMPOLINE_PHYS, where
 * smp.c copied ap_trampoline_start..ap_trampoline_end. The trampoline loads
 * the kernel GDT, sets CR0.PE and far-jumps to ap_entry32 in the kernel
 * image; from there it follows the BSP's path with the same page tables and
 * calls ap_start(cpu) on the stack smp.c published in ap_boot_stack.
 */
#include "layout.h"

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000002 /* bit 1: memory info wanted */

#define CR0_PE 0x00000001
#define CR0_WP 0x00010000
#define CR0_PG 0x80000000
#define CR4_PAE 0x00000020
#define MSR_EFER 0xC0000080
#define EFER_LME 0x00000100

#define PTE_P 0x001
#define PTE_W 0x002
#define PTE_PWT 0x008
#define PTE_PCD 0x010
#define PTE_PS 0x080

/* ---- Multiboot header: first section of the image (see link.ld). ---- */
	.section .multiboot, "a"
	.balign 4
multiboot_header:
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)

/* ---- 32-bit code ---- */
	.section .text.boot, "ax"
	.code32

/* Enables PAE paging with boot_pml4 and long mode, then jumps to target64. */
.macro ENTER_LONG_MODE target64
	mov %cr4, %eax
	or $CR4_PAE, %eax
	mov %eax, %cr4
	mov $boot_pml4, %eax
	mov %eax, %cr3
	mov $MSR_EFER, %ecx
	rdmsr
	or $EFER_LME, %eax
	wrmsr
	mov %cr0, %eax
	or $(CR0_PG | CR0_WP | CR0_PE), %eax
	mov %eax, %cr0
	ljmp $KERNEL_CS, $\target64
.endm

	.globl _start
	.type _start, @function
_start:
	cli
	cld
	mov %eax, %esi             /* multiboot magic */
	mov %ebx, %edx             /* multiboot info */
	/* Zero .bss (includes the page tables and the boot stack), a dword at
	 * a time: an emulator runs each iteration of a rep string instruction
	 * as its own block, so stosl costs a quarter of stosb. .bss starts
	 * aligned to its largest member (page-aligned tables) and link.ld ends
	 * it 16-byte aligned, so the dword count is exact. */
	mov $__bss_start, %edi
	mov $__bss_end, %ecx
	sub %edi, %ecx
	add $3, %ecx
	shr $2, %ecx
	xor %eax, %eax
	rep stosl
	mov %esi, boot_mb_magic
	mov %edx, boot_mb_info
	mov $bsp_stack_top, %esp

	lgdt gdt_descriptor
	mov $KERNEL_DS, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov %ax, %fs
	mov %ax, %gs
	ljmp $KERNEL_CS32, $1f
1:
	/* Long mode supported? */
	mov $0x80000000, %eax
	cpuid
	cmp $0x80000001, %eax
	jb no_long_mode
	mov $0x80000001, %eax
	cpuid
	bt $29, %edx
	jnc no_long_mode

	/* PML4[0] -> PDPT; PDPT[0..3] -> the four page directories. */
	mov $boot_pdpt, %eax
	or $(PTE_P | PTE_W), %eax
	mov %eax, boot_pml4
	mov $boot_pd, %eax
	or $(PTE_P | PTE_W), %eax
	xor %ecx, %ecx
2:	mov %eax, boot_pdpt(,%ecx,8)
	add $0x1000, %eax
	inc %ecx
	cmp $4, %ecx
	jb 2b
	/* 2048 2 MiB pages: PD entry i maps i << 21; >= 3 GiB uncached. */
	xor %ecx, %ecx
3:	mov %ecx, %eax
	shl $21, %eax
	or $(PTE_P | PTE_W | PTE_PS), %eax
	cmp $1536, %ecx
	jb 4f
	or $(PTE_PCD | PTE_PWT), %eax
4:	mov %eax, boot_pd(,%ecx,8)
	inc %ecx
	cmp $2048, %ecx
	jb 3b

	ENTER_LONG_MODE bsp_entry64

/* Prints a message on COM1 and exits through isa-debug-exit (status 5). */
no_long_mode:
	mov $no_lm_msg, %esi
	mov $0x3F8, %dx
5:	lodsb
	test %al, %al
	jz 6f
	out %al, %dx
	jmp 5b
6:	mov $0xF4, %dx
	mov $2, %eax
	out %eax, %dx
7:	hlt
	jmp 7b

/* AP: arrives here from the trampoline in 32-bit protected mode. */
	.globl ap_entry32
ap_entry32:
	mov $KERNEL_DS, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov %ax, %fs
	mov %ax, %gs
	ENTER_LONG_MODE ap_entry64

/* ---- 64-bit code ---- */
	.code64
bsp_entry64:
	mov $KERNEL_DS, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov %ax, %fs
	mov %ax, %gs
	mov $bsp_stack_top, %rsp
	xor %ebp, %ebp
	mov boot_mb_magic(%rip), %edi
	mov boot_mb_info(%rip), %esi
	call runtime_start
8:	cli
	hlt
	jmp 8b

ap_entry64:
	mov $KERNEL_DS, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov %ax, %fs
	mov %ax, %gs
	mov ap_boot_stack(%rip), %rsp
	mov ap_boot_cpu(%rip), %edi
	xor %ebp, %ebp
	call ap_start
9:	cli
	hlt
	jmp 9b

/*
 * ---- Real-mode AP trampoline: position independent, copied to
 * AP_TRAMPOLINE_PHYS; runs at CS = AP_SIPI_VECTOR << 8, IP = 0. ----
 */
	.code16
	.balign 16
	.globl ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
	cli
	cld
	lgdtl %cs:(ap_trampoline_gdtr - ap_trampoline_start)
	mov %cr0, %eax
	or $CR0_PE, %eax
	mov %eax, %cr0
	ljmpl $KERNEL_CS32, $ap_entry32
	.balign 4
ap_trampoline_gdtr:
	.word gdt_end - gdt - 1
	.long gdt
ap_trampoline_end:
	.code64

/* ---- Data ---- */
	.section .rodata
no_lm_msg:
	.asciz "irqlab guest: CPU has no long mode\n"

	.section .data
	.balign 16
	.globl gdt, gdt_end
gdt:
	.quad 0                       /* 0x00 null */
	.quad 0x00AF9A000000FFFF      /* 0x08 64-bit code, DPL 0 */
	.quad 0x00CF92000000FFFF      /* 0x10 flat data */
	.quad 0x00CF9A000000FFFF      /* 0x18 32-bit code */
	.fill MAX_CPUS * 2, 8, 0      /* 0x20 TSS descriptors, filled by desc.c */
gdt_end:
	.balign 8
	.globl gdt_descriptor
gdt_descriptor:
	.word gdt_end - gdt - 1
	.quad gdt

	.balign 8
	.globl boot_mb_magic, boot_mb_info, ap_boot_stack, ap_boot_cpu
boot_mb_magic: .long 0
boot_mb_info: .long 0
ap_boot_stack: .quad 0
ap_boot_cpu: .long 0

	.section .bss
	.balign 4096
	.globl boot_pml4, boot_pdpt, boot_pd
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd: .skip 4 * 4096         /* 4 page directories: 0..4 GiB */
	.balign 16
bsp_stack: .skip BSP_STACK_SIZE
	.globl bsp_stack_top
bsp_stack_top:

	.section .note.GNU-stack, "", @progbits
