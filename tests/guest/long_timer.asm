; long_timer: a multiboot v1 kernel (a.out kludge, flags bit 16) for
; `irqlab boot` that needs 2 s of virtual time: it arms the local APIC timer
; (divide by 1, one-shot, 2,000,000,000 ticks), halts until the timer
; interrupt and exits through isa-debug-exit with 0x2A (process exit status
; (0x2A << 1) | 1 = 85). `boot` has no virtual time limit by default, so it
; runs to its end (tests/cli_tests.cmake: cli.boot_no_time_limit_by_default).
bits 32
org 0x100000
MB_MAGIC equ 0x1BADB002
MB_FLAGS equ 0x00010000
header:
  dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
  dd header, header, image_end, image_end, start   ; header/load/load_end/bss_end/entry
start:
  cli
  lgdt [gdtr]
  jmp 0x08:reload
reload:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov esp, stack_top
  mov eax, handler                    ; IDT[0x40]: 32-bit interrupt gate
  mov [idt + 0x40*8], ax
  mov word [idt + 0x40*8 + 2], 0x08
  mov word [idt + 0x40*8 + 4], 0x8E00
  shr eax, 16
  mov [idt + 0x40*8 + 6], ax
  lidt [idtr]
  mov dword [0xFEE000F0], 0x1FF       ; SVR: software-enabled, spurious 0xFF
  mov dword [0xFEE003E0], 0xB         ; TDCR: divide by 1
  mov dword [0xFEE00320], 0x40        ; LVT timer: one-shot, vector 0x40
  mov dword [0xFEE00380], 2000000000  ; TMICT
  sti
wait_loop:
  hlt
  jmp wait_loop
handler:
  mov dx, 0xF4
  mov al, 0x2A
  out dx, al
  jmp $
align 8
gdt:
  dq 0, 0x00CF9A000000FFFF, 0x00CF92000000FFFF
gdtr:
  dw 23
  dd gdt
idtr:
  dw 0x41*8 - 1
  dd idt
align 8
idt:
  times 0x41 dq 0
  times 256 db 0
stack_top:
image_end:
