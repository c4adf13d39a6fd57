; AP start-up code: copied to physical 0x8000 (SIPI vector 0x08). Real mode ->
; protected mode -> long mode, then writes 0xA9 to 0x7F00 and halts.
bits 16
org 0x8000
  cli
  mov ax, cs
  mov [0x7F10], ax              ; CS as seen in real mode (DS = 0 after SIPI)
  mov word [0x7F12], 0x1234
  lgdt [gdtptr]
  mov eax, cr0
  or eax, 1
  mov cr0, eax
  jmp dword 0x08:pm32
bits 32
pm32:
  mov ax, 0x10
  mov ds, ax
  mov ss, ax
  mov eax, cr4
  or eax, 0x20
  mov cr4, eax
  mov eax, 0x10000              ; the BSP's page tables
  mov cr3, eax
  mov ecx, 0xC0000080
  rdmsr
  or eax, 0x100
  wrmsr
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  jmp 0x18:lm64
bits 64
lm64:
  mov qword [0x7F00], 0xA9
  hlt
  jmp lm64
align 8
gdt:
  dq 0
  dq 0x00CF9A000000FFFF          ; 0x08 code32
  dq 0x00CF92000000FFFF          ; 0x10 data
  dq 0x00AF9A000000FFFF          ; 0x18 code64
gdt_end:
gdtptr:
  dw gdt_end - gdt - 1
  dd gdt
