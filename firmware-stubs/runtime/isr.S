/*
 * isr.S: the 256 interrupt/exception entry stubs and the common path that
 * builds a struct irq_frame (runtime.h) and calls irq_dispatch() in C.
 *
 * Stub v is at isr_stubs + 16 * v. Vectors for which the CPU pushes an
 * error code (8, 10-14, 17, 21, 29, 30) push only the vector; all others
 * push a dummy error code 0 first, so the frame layout is uniform. The C
 * handler may modify the frame (e.g. rip, or GPRs) and the changes take
 * effect at IRETQ.
 *
 * Stack alignment: the CPU aligns RSP to 16 before pushing SS..RIP (40
 * bytes); error code + vector (16) + 15 GPRs (120) makes 176, so RSP is
 * 16-byte aligned at the call, as the SysV ABI wants.
 */
#include "layout.h"

	.section .text
	.code64
	.balign 16
	.globl isr_stubs
isr_stubs:
	.set vec, 0
	.rept 256
	.org isr_stubs + 16 * vec, 0xcc  /* errors if a stub exceeds 16 bytes */
	.if !(vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 || vec == 30)
	pushq $0
	.endif
	pushq $vec
	jmp isr_common
	.set vec, vec + 1
	.endr
	.org isr_stubs + 16 * 256, 0xcc

isr_common:
	push %rax
	push %rbx
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %rbp
	push %r8
	push %r9
	push %r10
	push %r11
	push %r12
	push %r13
	push %r14
	push %r15
	cld
	mov %rsp, %rdi
	call irq_dispatch
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rbp
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rbx
	pop %rax
	add $16, %rsp              /* vector, error code */
	iretq

	.section .note.GNU-stack, "", @progbits
