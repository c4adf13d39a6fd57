; Guest test suite for tests/vcpu_test.cc. Loaded at physical 0x100000 and
; entered through Vcpu::SetMultibootEntry (32-bit protected mode, paging off).
; It switches to long mode itself, builds a GDT/TSS/IDT, then runs the
; scenario whose number the host stored at SCENARIO. Results go to RESULTS.
; Ports: 0x80 "device" (the host may raise an interrupt on it), 0xE9 done.
bits 32
org 0x100000
SCENARIO equ 0x5100
RES      equ 0x6000          ; results area (qwords)
COUNT    equ 0x6800          ; handler counter
FRAME    equ 0x6900          ; last interrupt frame (6 qwords) + rflags in handler
PML4     equ 0x10000
IDT      equ 0x20000
TSS      equ 0x30000
MMIO     equ 0x02000000          ; above 16 MiB of RAM, inside the 1 GiB map

start32:
  mov esp, 0x80000             ; multiboot leaves ESP undefined
  mov [RES+0x00], eax        ; multiboot magic
  mov [RES+0x08], ebx        ; info pointer
  mov ecx, cr0
  mov [RES+0x10], ecx        ; CR0 at entry
  pushfd
  pop ecx
  mov [RES+0x18], ecx        ; EFLAGS at entry
  mov [RES+0x20], cs
  ; identity map 1 GiB with 2 MiB pages (PD at 0x12000), plus 1 GiB..2 GiB
  ; left not present for #PF tests.
  mov edi, PML4
  mov ecx, 3*1024
  xor eax, eax
  rep stosd
  mov dword [PML4], 0x11000 | 3
  mov dword [0x11000], 0x12000 | 3
  mov edi, 0x12000
  mov eax, 0x83
  mov ecx, 512
.pd:
  mov [edi], eax
  mov dword [edi+4], 0
  add eax, 0x200000
  add edi, 8
  loop .pd
  mov eax, cr4
  or eax, 0x20
  mov cr4, eax
  mov eax, PML4
  mov cr3, eax
  mov ecx, 0xC0000080
  rdmsr
  or eax, 0x100
  wrmsr
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  lgdt [gdtptr]
  jmp 0x08:start64

bits 64
start64:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov fs, ax
  mov gs, ax
  mov rsp, 0x80000
  ; TSS descriptor (base TSS, limit 0x67) at GDT 0x28
  mov rax, TSS
  mov rdx, 0x0000890000000067
  mov rcx, rax
  and rcx, 0xFFFF
  shl rcx, 16
  or rdx, rcx
  mov rcx, rax
  shr rcx, 16
  and rcx, 0xFF
  shl rcx, 32
  or rdx, rcx
  mov rcx, rax
  shr rcx, 24
  shl rcx, 56
  or rdx, rcx
  mov [gdt+0x28], rdx
  mov qword [gdt+0x30], 0
  mov qword [TSS+0x04], 0x70000      ; RSP0
  mov qword [TSS+0x24], 0x60000      ; IST1
  mov ax, 0x28
  ltr ax
  ; every vector -> default_isr (interrupt gate)
  xor edi, edi
.idt:
  mov rsi, default_isr
  mov edx, 0x8E00
  call set_gate
  inc edi
  cmp edi, 256
  jb .idt
  lidt [idtptr]
  mov qword [COUNT], 0
  mov eax, [SCENARIO]
  jmp [scenarios + rax*8]

; set_gate(edi=vector, rsi=handler, edx=type/attr<<8 | ist)
set_gate:
  push rax
  push rbx
  mov rbx, rdi
  shl rbx, 4
  add rbx, IDT
  mov rax, rsi
  mov [rbx], ax
  mov word [rbx+2], 0x08
  mov [rbx+4], dx
  shr rax, 16
  mov [rbx+6], ax
  shr rax, 16
  mov [rbx+8], eax
  mov dword [rbx+12], 0
  pop rbx
  pop rax
  ret

default_isr:
  mov qword [RES+0x300], 0xDEAD
  hlt
  jmp default_isr

; Records the frame (no error code) and RFLAGS inside the handler.
record_isr:
  push rax
  mov rax, [rsp+8]
  mov [FRAME+0x00], rax       ; RIP
  mov rax, [rsp+16]
  mov [FRAME+0x08], rax       ; CS
  mov rax, [rsp+24]
  mov [FRAME+0x10], rax       ; RFLAGS
  mov rax, [rsp+32]
  mov [FRAME+0x18], rax       ; RSP
  mov rax, [rsp+40]
  mov [FRAME+0x20], rax       ; SS
  pushfq
  pop rax
  mov [FRAME+0x28], rax       ; RFLAGS inside the handler
  lea rax, [rsp+8]
  mov [FRAME+0x30], rax       ; handler RSP at entry
  inc qword [COUNT]
  pop rax
  iretq

; Exception handler with error code: records vector-specific data and skips
; the faulting instruction by RES+0x100 bytes (set by the scenario).
fault_isr:
  push rax
  mov rax, [rsp+8]
  mov [FRAME+0x40], rax       ; error code
  mov rax, [rsp+16]
  mov [FRAME+0x48], rax       ; RIP
  mov rax, cr2
  mov [FRAME+0x50], rax
  mov rax, [RES+0x100]
  add [rsp+16], rax
  inc qword [COUNT]
  pop rax
  add rsp, 8
  iretq
; Same without error code.
fault_noerr_isr:
  push rax
  mov rax, [rsp+8]
  mov [FRAME+0x48], rax       ; RIP
  mov rax, [RES+0x100]
  add [rsp+8], rax
  inc qword [COUNT]
  pop rax
  iretq

done:
  mov al, 1
  out 0xE9, al
  hlt
  jmp done

scenarios:
  dq sc_boot, sc_out_nop, sc_mmio_nop, sc_trap_gate, sc_ist, sc_sti_shadow
  dq sc_if0, sc_hlt, sc_nmi, sc_exceptions, sc_msr, sc_cpuid, sc_rdtsc
  dq sc_loop, sc_irq_spin, sc_reg_loop, sc_out_loop, sc_pf_wp
  dq sc_mmio_load, sc_stack_remap, sc_x2apic_eoi, sc_many_msr_sites
  dq sc_mmio_unattributed

; 0: boot state recorded; report EFER via host.
sc_boot:
  mov r15, 0x64
  jmp done

; 1: OUT raises vector 0x40 (host), next instruction is the nop.
sc_out_nop:
  mov edi, 0x40
  mov rsi, record_isr
  mov edx, 0x8E00
  call set_gate
  mov rax, .after
  mov [RES+0x30], rax
  mov [RES+0x38], rsp
  sti
  mov dx, 0x80
  xor eax, eax
  cmp eax, eax                 ; ZF=1 must survive the interrupt
  out dx, al
.after:
  nop
  setz bl
  mov [RES+0x40], bl
  mov rax, [COUNT]
  mov [RES+0x48], rax
  cli
  jmp done

; 2: MMIO write raises vector 0x40; next instruction is the nop. Twice.
sc_mmio_nop:
  mov edi, 0x40
  mov rsi, record_isr
  mov edx, 0x8E00
  call set_gate
  mov rax, .after
  mov [RES+0x30], rax
  sti
  mov rbx, MMIO
  mov ecx, 2
.again:
  mov dword [rbx], 0x40
.after:
  nop
  mov rax, [COUNT]
  mov [RES+0x48+rcx*8], rax    ; count seen right after, per iteration
  loop .again
  cli
  jmp done

; 3: trap gate keeps IF.
sc_trap_gate:
  mov edi, 0x41
  mov rsi, record_isr
  mov edx, 0x8F00
  call set_gate
  sti
  mov dx, 0x80
  out dx, al
  nop
  cli
  jmp done

; 4: IST1 stack.
sc_ist:
  mov edi, 0x42
  mov rsi, record_isr
  mov edx, 0x8E01
  call set_gate
  sti
  mov dx, 0x80
  out dx, al
  nop
  cli
  jmp done

; 5: STI shadow: vector already pending with IF=0.
sc_sti_shadow:
  mov edi, 0x40
  mov rsi, record_isr
  mov edx, 0x8E00
  call set_gate
  mov rax, .shadow
  mov [RES+0x30], rax
  mov rax, .next
  mov [RES+0x38], rax
  mov dx, 0x80
  out dx, al                   ; host makes 0x40 pending (IF=0)
  nop
  sti
.shadow:
  nop
  jmp .next
.next:
  cli
  jmp done

; 6: IF=0 holds the vector pending until STI.
sc_if0:
  mov edi, 0x40
  mov rsi, record_isr
  mov edx, 0x8E00
  call set_gate
  mov dx, 0x80
  out dx, al
  nop
  nop
  mov rax, [COUNT]
  mov [RES+0x40], rax          ; 0: not taken with IF=0
  mov rax, .next
  mov [RES+0x38], rax
  sti
  nop
  jmp .next
.next:
  cli
  jmp done

; 7: HLT, woken by Kick.
sc_hlt:
  mov edi, 0x40
  mov rsi, record_isr
  mov edx, 0x8E00
  call set_gate
  mov rax, .after
  mov [RES+0x30], rax
  sti
  hlt
.after:
  cli
  jmp done

; 8: NMI with IF=0, second NMI blocked until IRET.
sc_nmi:
  mov edi, 2
  mov rsi, nmi_isr
  mov edx, 0x8E00
  call set_gate
  cli
  mov dx, 0x80
  out dx, al                   ; host makes an NMI pending
  nop
  nop
  jmp done
nmi_isr:
  inc qword [COUNT]
  mov rbx, [COUNT]
  shl rbx, 4
  mov rax, [COUNT]
  mov [RES+0x200+rbx], rax     ; count at entry of invocation n
  mov dx, 0x80
  out dx, al                   ; host makes a second NMI pending: blocked
  nop
  nop
  mov rax, [COUNT]
  mov [RES+0x208+rbx], rax     ; count before this invocation's IRETQ
  iretq

; 9: exceptions through the guest IDT.
sc_exceptions:
  mov edi, 6
  mov rsi, fault_noerr_isr
  mov edx, 0x8E00
  call set_gate
  mov edi, 0
  call set_gate
  mov edi, 3
  call set_gate
  mov edi, 13
  mov rsi, fault_isr
  call set_gate
  mov edi, 14
  call set_gate
  ; #UD
  mov qword [RES+0x100], 2
  ud2
  mov rax, [FRAME+0x48]
  mov [RES+0x30], rax
  ; #DE
  xor edx, edx
  xor ecx, ecx
  mov eax, 1
.div:
  div ecx                      ; 2 bytes
  mov rax, [FRAME+0x48]
  mov [RES+0x38], rax
  mov rax, .div
  mov [RES+0x40], rax
  ; #BP: INT3 is a trap, the frame RIP is after it
  mov qword [RES+0x100], 0
  int3
.bp_after:
  mov rax, [FRAME+0x48]
  mov [RES+0x48], rax
  mov rax, .bp_after
  mov [RES+0x50], rax
  ; #GP(0) from RDMSR of an unknown MSR
  mov qword [RES+0x100], 2
  mov ecx, 0x12345
.gp:
  rdmsr
  mov rax, [FRAME+0x40]
  mov [RES+0x58], rax
  mov rax, [FRAME+0x48]
  mov [RES+0x60], rax
  mov rax, .gp
  mov [RES+0x68], rax
  ; #PF: read of not-present 0x40001000, then a write
  mov qword [RES+0x100], 3
  mov rbx, 0x40001000
.pf1:
  mov rax, [rbx]               ; 3 bytes
  nop
  mov rax, [FRAME+0x40]
  mov [RES+0x70], rax
  mov rax, [FRAME+0x50]
  mov [RES+0x78], rax
  mov qword [RES+0x100], 3
.pf2:
  mov [rbx+8], eax             ; 3 bytes
  mov rax, [FRAME+0x40]
  mov [RES+0x80], rax
  mov rax, [FRAME+0x50]
  mov [RES+0x88], rax
  mov rax, [COUNT]
  mov [RES+0x90], rax
  jmp done

; 10: APIC MSRs reach the host.
sc_msr:
  mov ecx, 0x1B
  rdmsr
  mov [RES+0x30], eax
  mov [RES+0x34], edx
  mov ecx, 0x808
  mov eax, 0x12345678
  mov edx, 0x9
  wrmsr
  mov ecx, 0x10
  rdmsr
  mov [RES+0x38], eax
  mov [RES+0x3C], edx
  jmp done

; 11: CPUID leaf 1 and 0xB.
sc_cpuid:
  mov eax, 1
  cpuid
  mov [RES+0x30], ebx
  mov [RES+0x34], ecx
  mov [RES+0x38], edx
  mov eax, 0x80000001
  cpuid
  mov [RES+0x3C], edx          ; long mode bit stays
  mov eax, 0xB
  xor ecx, ecx
  cpuid
  mov [RES+0x40], edx
  jmp done

; 12: RDTSC is virtual time: monotonic.
sc_rdtsc:
  rdtsc
  mov [RES+0x30], eax
  mov [RES+0x34], edx
  mov ecx, 100
.spin:
  loop .spin
  rdtsc
  mov [RES+0x38], eax
  mov [RES+0x3C], edx
  rdtscp
  mov [RES+0x40], eax
  mov [RES+0x44], edx
  mov [RES+0x48], ecx
  jmp done

; 13: benchmark / determinism loop: sti; spin forever counting in rbx, with an
; OUT every 64 iterations (host may raise interrupts).
sc_loop:
  mov edi, 0x40
  mov rsi, count_isr
  mov edx, 0x8E00
  call set_gate
  xor ebx, ebx
  sti
.l:
  inc rbx
  test bl, 63
  jnz .l
  mov dx, 0x80
  out dx, al
  jmp .l
count_isr:
  inc qword [COUNT]
  iretq

; 14: benchmark: spin with IF=1 while the host keeps a vector pending.
sc_irq_spin:
  mov edi, 0x40
  mov rsi, count_isr
  mov edx, 0x8E00
  call set_gate
  sti
.l:
  jmp .l

; 15: benchmark: register-only loop.
sc_reg_loop:
  mov ecx, 1000000
.l:
  add rax, rcx
  xor rdx, rax
  dec rcx
  jnz .l
  jmp sc_reg_loop

; 16: benchmark: one OUT per iteration.
sc_out_loop:
  mov dx, 0x80
.l:
  out dx, al
  jmp .l

; 17: #PF on writes with CR0.WP=1: a present read-only page (error 0x3),
; a not-present page (0x2), another read-only page (0x3). The handler has
; the shape of a C runtime's: stub pushes the vector, common code saves 15
; GPRs and CALLs a dispatcher (which records error code, CR2 and frame RIP
; at RES+0x400+32*n and skips RES+0x100 bytes), then pops and IRETQs.
PF_PT  equ 0x13000             ; PT for VA 0x40000000 (4 KiB pages)
PF_PD  equ 0x14000             ; PD for VA 0x40000000..0x7FFFFFFF
sc_pf_wp:
  mov edi, PF_PT
  mov ecx, 2*1024
  xor eax, eax
  rep stosd
  mov qword [PF_PT+8], 0x1000 | 1      ; 0x40001000: present, read-only
  mov qword [PF_PT+16], 0x2000 | 1     ; 0x40002000: present, read-only
  mov qword [PF_PD], PF_PT | 3
  mov qword [0x11000+8], PF_PD | 3     ; PDPT[1]
  mov rax, cr3
  mov cr3, rax
  mov rax, cr0
  or eax, 0x10000                      ; CR0.WP
  mov cr0, rax
  mov edi, 14
  mov rsi, pf_stub
  mov edx, 0x8E00
  call set_gate
  mov qword [COUNT], 0
  mov qword [RES+0x100], 7             ; mov qword [rbx], imm32: 7 bytes
  mov [RES+0x30], rsp
  mov rbx, 0x40001010
.w1:
  mov qword [rbx], 1
  mov rbx, 0x40000008
.w2:
  mov qword [rbx], 2
  mov rbx, 0x40002020
.w3:
  mov qword [rbx], 3
  mov [RES+0x38], rsp                  ; RSP unchanged by the three faults
  mov rax, [0x40001000]                ; reads of a read-only page still work
  mov [RES+0x40], rax
  mov rax, .w1
  mov [RES+0x48], rax
  mov rax, .w2
  mov [RES+0x50], rax
  mov rax, .w3
  mov [RES+0x58], rax
  mov rax, [COUNT]
  mov [RES+0x60], rax
  mov r14, 0x600D                      ; the guest carried on normally
  jmp done
pf_stub:
  push 14                              ; vector (the CPU pushed the error)
  jmp pf_common
pf_common:
  push rax
  push rbx
  push rcx
  push rdx
  push rsi
  push rdi
  push rbp
  push r8
  push r9
  push r10
  push r11
  push r12
  push r13
  push r14
  push r15
  mov rdi, rsp
  call pf_dispatch
  pop r15
  pop r14
  pop r13
  pop r12
  pop r11
  pop r10
  pop r9
  pop r8
  pop rbp
  pop rdi
  pop rsi
  pop rdx
  pop rcx
  pop rbx
  pop rax
  add rsp, 16                          ; vector, error code
  iretq
; rdi = saved GPRs; [rdi+120] vector, [rdi+128] error, [rdi+136] RIP
pf_dispatch:
  mov rcx, [COUNT]
  cmp rcx, 3
  jae .skip_record
  shl rcx, 5
  mov rax, [rdi+128]
  mov [RES+0x400+rcx], rax
  mov rax, cr2
  mov [RES+0x408+rcx], rax
  mov rax, [rdi+136]
  mov [RES+0x410+rcx], rax
.skip_record:
  mov rax, [RES+0x100]
  add [rdi+136], rax
  inc qword [COUNT]
  ret

align 16
gdt:
  dq 0
  dq 0x00AF9A000000FFFF        ; 0x08 code64
  dq 0x00CF92000000FFFF        ; 0x10 data
  dq 0x00CFF2000000FFFF        ; 0x18 user data
  dq 0x00AFFA000000FFFF        ; 0x20 user code64
  dq 0, 0                      ; 0x28 TSS
gdt_end:
gdtptr:
  dw gdt_end - gdt - 1
  dd gdt
idtptr:
  dw 256*16 - 1
  dq IDT

; 18: an MMIO load raises vector 0x40 (host) three times. The vCPU learns the
; load on its first execution (delivered at the next block boundary) and
; from then on takes the interrupt right after the load, before the
; `mov ebp, esp` (89 E5: IN's opcode byte E5 inside it) and the nop.
sc_mmio_load:
  mov edi, 0x40
  mov rsi, record_isr
  mov edx, 0x8E00
  call set_gate
  mov rax, .after
  mov [RES+0x30], rax
  sti
  mov rbx, MMIO
  mov ecx, 3
.again:
  mov eax, [rbx]
.after:
  mov ebp, esp
  nop
  mov rax, [COUNT]
  mov [RES+0x48+rcx*8], rax    ; count seen right after, per iteration
  loop .again
  cli
  jmp done

; 19: the interrupted code's stack page is remapped under the vCPU's own
; page walks (it pushes interrupt frames itself). VA 0x40000000 (tables of
; scenario 17) maps PA 0x40000, RSP = 0x40000800, an OUT raises 0x40; then
; the PTE points to PA 0x41000 followed by INVLPG, another OUT; then to PA
; 0x42000 followed by a CR3 reload, a third OUT. Each frame must land in
; the page mapped at that time. RES+0x30/0x38/0x40: the return RIPs.
sc_stack_remap:
  mov edi, PF_PT
  mov ecx, 2*1024
  xor eax, eax
  rep stosd
  mov qword [PF_PT], 0x40000 | 3
  mov qword [PF_PD], PF_PT | 3
  mov qword [0x11000+8], PF_PD | 3     ; PDPT[1]
  mov rax, cr3
  mov cr3, rax
  mov edi, 0x40
  mov rsi, record_isr
  mov edx, 0x8E00
  call set_gate
  mov rbp, rsp
  mov rsp, 0x40000800
  mov dx, 0x80
  sti
  out dx, al
.r1:
  mov qword [PF_PT], 0x41000 | 3
  invlpg [0x40000000]
  out dx, al
.r2:
  mov qword [PF_PT], 0x42000 | 3
  mov rax, cr3
  mov cr3, rax
  out dx, al
.r3:
  cli
  mov rsp, rbp
  mov rax, .r1
  mov [RES+0x30], rax
  mov rax, .r2
  mov [RES+0x38], rax
  mov rax, .r3
  mov [RES+0x40], rax
  jmp done

; 20: two x2APIC EOI writes (WRMSR 0x80B) with IF=1. The host makes vector
; 0x40 pending on the first: it is taken right after that WRMSR (RES+0x48:
; COUNT seen by the next instructions). The second changes nothing and the
; code goes on (RES+0x50, RES+0x58 = 0x5A5A: the instructions after it ran).
sc_x2apic_eoi:
  mov edi, 0x40
  mov rsi, record_isr
  mov edx, 0x8E00
  call set_gate
  mov rax, .after
  mov [RES+0x30], rax
  sti
  mov ecx, 0x80B
  xor eax, eax
  xor edx, edx
  wrmsr
.after:
  nop
  mov rax, [COUNT]
  mov [RES+0x48], rax
  xor eax, eax
  wrmsr
  mov rax, [COUNT]
  mov [RES+0x50], rax
  mov qword [RES+0x58], 0x5A5A
  cli
  jmp done

; 21: 40 RDMSR sites, each in a block of its own (the JMP ends it), run
; three times: more sites than the vCPU keeps hooked, so their hooks are
; evicted and installed again. Every RDMSR must still be emulated: RES+0x100
; + 8*i = the value the host returned for MSR 0x800+i in the last round;
; RES+0x30 = rounds done.
sc_many_msr_sites:
  mov r8d, 3
.round:
%assign i 0
%rep 40
  mov ecx, 0x800 + i
  rdmsr
  mov [RES+0x100+i*8], eax
  jmp .n %+ i
.n %+ i:
%assign i i+1
%endrep
  inc qword [RES+0x30]
  dec r8d
  jnz .round
  jmp done

; 22: MMIO stores the vCPU cannot attribute to one instruction (it finds the
; accessing instruction by evaluating the block's memory operands): two
; stores to the same device register in one block, then a store in a block
; with a PUSH (an access it does not evaluate). Each raises vector 0x40;
; the interrupt is then taken at the block's end, and every instruction runs
; exactly once (R12 counts them).
sc_mmio_unattributed:
  mov edi, 0x40
  mov rsi, record_isr
  mov edx, 0x8E00
  call set_gate
  mov rbx, MMIO
  xor r12, r12
  sti
  jmp .b1
.b1:
  mov dword [rbx], 0x40
  mov dword [rbx], 0x40
  inc r12
  mov rax, [COUNT]
  mov [RES+0x48], rax          ; inside the block: not yet taken
  jmp .b2
.b2:
  mov rax, [COUNT]
  mov [RES+0x50], rax          ; taken at the block boundary
  push rax
  mov dword [rbx], 0x40
  inc r12
  mov rax, [COUNT]
  mov [RES+0x58], rax
  pop rax
  jmp .b3
.b3:
  mov rax, [COUNT]
  mov [RES+0x60], rax
  mov [RES+0x68], r12
  cli
  jmp done
