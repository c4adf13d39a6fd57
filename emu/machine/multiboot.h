// Multiboot v1 loader: loads a kernel image, its modules and the boot
// information into guest RAM, the way QEMU's `-kernel` does for a multiboot
// image (hw/i386/multiboot.c), following the Multiboot Specification 0.6.96:
//   3.1 OS image format: the header (magic 0x1BADB002, flags, checksum with
//       magic + flags + checksum == 0) lies 32-bit aligned within the first
//       8192 bytes of the image. Flag bits 0-15 are requirements: bit 0
//       (page-align modules) and bit 1 (memory information) are always
//       honoured, bit 2 (video mode) is ignored as QEMU does, any other set
//       bit in 0-15 makes the load fail (3.1.2). Bits 16-31 are optional;
//       bit 16 (the "a.out kludge") means the header's address fields
//       (3.1.3) say where to load the image, *instead of* its executable
//       header, so it takes precedence over ELF (as in QEMU).
//   Without bit 16 the image must be ELF32 (ELFCLASS32, little-endian,
//       EM_386): every PT_LOAD segment is loaded at its physical address
//       p_paddr, the [p_filesz, p_memsz) tail zeroed (BSS). The entry point is
//       e_entry, translated from virtual to physical when it lies inside an
//       executable segment whose p_vaddr != p_paddr (QEMU's load_elf does
//       this). ELF64 images are refused: rebuild or `objcopy -O elf32-i386`.
//   3.2 Machine state: the caller starts the BSP in 32-bit protected mode,
//       paging off, IF=0, with EAX = MultibootBoot::eax (0x2BADB002) and
//       EBX = MultibootBoot::ebx, at MultibootBoot::entry.
//   3.3 Boot information: placed after the kernel (below).
//
// Guest RAM layout the loader produces (every start page-aligned):
//
//   [kernel_start, kernel_end)   the kernel's segments (incl. BSS)
//   module 0, module 1, ...      each page-aligned, after the kernel
//   info block (ebx):            multiboot_info (116 bytes), module list
//                                (16 bytes each), strings (kernel cmdline,
//                                module strings, "irqlab"), memory map
//   loader_end                   first page after the info block
//
// multiboot_info flags set: 0 (mem_lower/mem_upper), 2 (cmdline, always; ""
// if none), 3 (mods, also when mods_count is 0), 6 (mmap), 9 (boot loader
// name "irqlab"). mem_lower = 639 KiB, mem_upper = (RAM size - 1 MiB) / 1024
// KiB. The memory map (entries of size=20, base_addr, length, type):
//   [0, 0x9FC00) available (1), [0x9FC00, 0xA0000) reserved (2, EBDA),
//   [0xF0000, 0x100000) reserved (2, BIOS), [0x100000, RAM size) available.
//
// Every value read from the image is bounds- and overflow-checked: a
// truncated or corrupt image is an error (InvalidArgument), never a crash or
// an out-of-bounds access. Things that do not fit in RAM (or below 4 GiB,
// where multiboot's 32-bit addresses reach) are ResourceExhausted.
//
// Not supported: multiboot 2, the a.out symbol table / ELF section header
// info (flags bits 4/5), drives, APM, VBE/framebuffer information.
#ifndef IRQLAB_EMU_MACHINE_MULTIBOOT_H_
#define IRQLAB_EMU_MACHINE_MULTIBOOT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "emu/core/guest_ram.h"

namespace irqlab {

// Multiboot 0.6.96, 3.1.1 / 3.2.
inline constexpr uint32_t kMultibootHeaderMagic = 0x1BADB002;
inline constexpr uint32_t kMultibootBootloaderMagic = 0x2BADB002;
// The header must lie within the first 8192 bytes (3.1.1).
inline constexpr size_t kMultibootSearchLimit = 8192;

// Header flag bits (3.1.2).
inline constexpr uint32_t kMultibootPageAlign = 1u << 0;
inline constexpr uint32_t kMultibootMemoryInfo = 1u << 1;
inline constexpr uint32_t kMultibootVideoMode = 1u << 2;
inline constexpr uint32_t kMultibootAoutKludge = 1u << 16;

// multiboot_info flag bits (3.3).
inline constexpr uint32_t kMultibootInfoMemory = 1u << 0;
inline constexpr uint32_t kMultibootInfoCmdline = 1u << 2;
inline constexpr uint32_t kMultibootInfoMods = 1u << 3;
inline constexpr uint32_t kMultibootInfoMmap = 1u << 6;
inline constexpr uint32_t kMultibootInfoBootLoaderName = 1u << 9;

// multiboot_info field offsets (3.3) and record sizes.
struct MultibootInfoLayout {
  static constexpr uint32_t kFlags = 0;
  static constexpr uint32_t kMemLower = 4;
  static constexpr uint32_t kMemUpper = 8;
  static constexpr uint32_t kBootDevice = 12;
  static constexpr uint32_t kCmdline = 16;
  static constexpr uint32_t kModsCount = 20;
  static constexpr uint32_t kModsAddr = 24;
  static constexpr uint32_t kMmapLength = 44;
  static constexpr uint32_t kMmapAddr = 48;
  static constexpr uint32_t kBootLoaderName = 64;
  static constexpr uint32_t kSize = 116;  // through the framebuffer fields
  // One module entry: mod_start, mod_end, string, reserved.
  static constexpr uint32_t kModuleEntrySize = 16;
  // One memory map entry: size (= 20, not counting itself), base_addr (u64),
  // length (u64), type.
  static constexpr uint32_t kMmapEntrySize = 24;
};

// A boot module (3.3 "mods"): its bytes and its string (GRUB/QEMU pass the
// module's file name followed by its arguments). Owns its bytes, so
// `MultibootModule{name, std::move(file_bytes)}` is safe to keep around.
struct MultibootModule {
  std::string cmdline;
  std::vector<uint8_t> bytes;
};

// Result of a successful load: the BSP's start state and where things went.
struct MultibootBoot {
  uint32_t entry = 0;                          // EIP
  uint32_t eax = kMultibootBootloaderMagic;    // EAX at entry
  uint32_t ebx = 0;                            // EBX: multiboot_info address
  uint64_t kernel_start = 0;  // lowest address loaded (incl. BSS)
  uint64_t kernel_end = 0;    // one past the highest address loaded
  uint64_t loader_end = 0;    // one past the info block, page-aligned: the
                              // first RAM the loader did not use (<= 4 GiB)
  bool aout_kludge = false;   // loaded through header flag 16's fields
  uint32_t header_offset = 0;  // file offset of the multiboot header
  uint32_t header_flags = 0;
};

// Loads `image` (a multiboot v1 kernel) with `cmdline` and `modules` into
// `ram` and builds the boot information (see the file comment).
// On success returns where to start the BSP. On failure returns
//   InvalidArgument    no/invalid header, unsupported required flag (the
//                      message names the bit), not ELF32 and no a.out kludge,
//                      ELF64, truncated or inconsistent image;
//   ResourceExhausted  a segment, module or the info block does not fit in
//                      RAM (or below 4 GiB); the message names the range
//                      and the RAM size, e.g. "RAM too small for the kernel:
//                      segment [0x100000, 0x2100000) exceeds RAM size 16 MiB".
// RAM may have been partially written on failure.
absl::StatusOr<MultibootBoot> LoadMultiboot(
    absl::Span<const uint8_t> image, std::string_view cmdline,
    const std::vector<MultibootModule>& modules, GuestRam* ram);

}  // namespace irqlab

#endif  // IRQLAB_EMU_MACHINE_MULTIBOOT_H_
