#include "emu/machine/multiboot.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "emu/core/status_macros.h"

namespace irqlab {
namespace {

constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t k4GiB = uint64_t{1} << 32;
// Size of the a.out-kludge header: magic .. entry_addr (3.1.1).
constexpr uint64_t kAoutHeaderSize = 32;
// The PC memory map holes (Multiboot 3.3 "mmap"; the EBDA below 640 KiB and
// the BIOS area below 1 MiB, as QEMU's e820 reports them).
constexpr uint64_t kEbdaStart = 0x9FC00;
constexpr uint64_t kLowMemEnd = 0xA0000;
constexpr uint64_t kBiosStart = 0xF0000;
constexpr uint64_t kHighMemStart = 0x100000;
constexpr char kBootLoaderName[] = "irqlab";

// x rounded up to a page. REQUIRES: x < 2^63 (all callers pass <= 2^33).
uint64_t PageAlign(uint64_t x) { return (x + kPageSize - 1) & ~(kPageSize - 1); }

// True iff [offset, offset+len) lies inside a buffer of `size` bytes.
bool Fits(uint64_t size, uint64_t offset, uint64_t len) {
  return offset <= size && len <= size - offset;
}

// Little-endian loads. REQUIRES: Fits(image.size(), offset, sizeof(T)).
uint32_t Load32(absl::Span<const uint8_t> image, uint64_t offset) {
  uint32_t v;
  std::memcpy(&v, image.data() + offset, sizeof(v));  // x86 host: LE
  return v;
}

std::string FormatRamSize(uint64_t size) {
  if (size % kMiB == 0) return absl::StrFormat("%d MiB", size / kMiB);
  return absl::StrFormat("%d bytes", size);
}

// ResourceExhausted unless [start, start+len) lies in RAM and below 4 GiB.
absl::Status CheckFitsInRam(const GuestRam& ram, uint64_t start, uint64_t len,
                            std::string_view what) {
  const uint64_t end = start + len;  // start, len <= 2^33: no overflow
  if (end > k4GiB) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s [0x%x, 0x%x) reaches beyond 4 GiB, which multiboot cannot address",
        what, start, end));
  }
  if (!ram.Contains(start, len)) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("RAM too small for %s [0x%x, 0x%x) exceeds RAM size %s",
                        what, start, end, FormatRamSize(ram.size())));
  }
  return absl::OkStatus();
}

struct Header {
  uint32_t offset;
  uint32_t flags;
};

// Multiboot 3.1.1: the header is 32-bit aligned within the first 8192 bytes;
// magic + flags + checksum == 0 (mod 2^32).
absl::StatusOr<Header> FindHeader(absl::Span<const uint8_t> image) {
  const uint64_t limit = std::min<uint64_t>(image.size(), kMultibootSearchLimit);
  std::optional<uint32_t> bad_checksum_at;
  for (uint64_t off = 0; off + 12 <= limit; off += 4) {
    if (Load32(image, off) != kMultibootHeaderMagic) continue;
    const uint32_t flags = Load32(image, off + 4);
    const uint32_t checksum = Load32(image, off + 8);
    if (static_cast<uint32_t>(kMultibootHeaderMagic + flags + checksum) == 0) {
      return Header{static_cast<uint32_t>(off), flags};
    }
    if (!bad_checksum_at) bad_checksum_at = static_cast<uint32_t>(off);
  }
  if (bad_checksum_at) {
    const uint32_t off = *bad_checksum_at;
    return absl::InvalidArgumentError(absl::StrFormat(
        "multiboot header at offset 0x%x has a bad checksum: magic 0x%08x + "
        "flags 0x%08x + checksum 0x%08x != 0 (mod 2^32)",
        off, kMultibootHeaderMagic, Load32(image, off + 4),
        Load32(image, off + 8)));
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "no multiboot header (magic 0x%08x, 4-byte aligned, with checksum) in "
      "the first %d bytes of the %d-byte image; is this a multiboot v1 kernel?",
      kMultibootHeaderMagic, kMultibootSearchLimit, image.size()));
}

// Multiboot 3.1.2: bits 0-15 are requirements the loader must understand.
absl::Status CheckRequiredFlags(uint32_t flags) {
  const uint32_t supported =
      kMultibootPageAlign | kMultibootMemoryInfo | kMultibootVideoMode;
  const uint32_t unsupported = flags & 0xFFFF & ~supported;
  if (unsupported == 0) return absl::OkStatus();
  std::vector<int> bits;
  for (int bit = 0; bit < 16; ++bit) {
    if (unsupported & (1u << bit)) bits.push_back(bit);
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "multiboot header flags 0x%08x require flag bit%s %s, which this loader "
      "does not support (only bits 0, 1 and 2 of the required bits 0-15 are "
      "known; Multiboot 0.6.96, 3.1.2)",
      flags, bits.size() > 1 ? "s" : "", absl::StrJoin(bits, ", ")));
}

// A piece of the kernel to place in RAM.
struct Segment {
  uint64_t dest;         // guest physical address
  uint64_t file_offset;  // where its bytes start in the image
  uint64_t filesz;       // bytes copied from the image
  uint64_t memsz;        // bytes occupied in RAM; [filesz, memsz) zeroed
};

struct KernelLayout {
  std::vector<Segment> segments;
  uint32_t entry = 0;
};

bool IsElf(absl::Span<const uint8_t> image) {
  return image.size() >= SELFMAG && std::memcmp(image.data(), ELFMAG, SELFMAG) == 0;
}

absl::StatusOr<KernelLayout> ParseElf32(absl::Span<const uint8_t> image) {
  if (image.size() < EI_NIDENT) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "truncated ELF image: %d bytes, less than e_ident", image.size()));
  }
  const uint8_t elf_class = image[EI_CLASS];
  if (elf_class == ELFCLASS64) {
    return absl::InvalidArgumentError(
        "ELF64 kernel: multiboot v1 loads 32-bit ELF images only (as QEMU "
        "-kernel does); convert it with `objcopy -O elf32-i386 kernel "
        "kernel32` or add the a.out kludge (header flag 16)");
  }
  if (elf_class != ELFCLASS32) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ELF image has unknown class %d", elf_class));
  }
  if (image[EI_DATA] != ELFDATA2LSB) {
    return absl::InvalidArgumentError(
        "ELF image is not little-endian (EI_DATA != ELFDATA2LSB)");
  }
  Elf32_Ehdr ehdr;
  if (image.size() < sizeof(ehdr)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "truncated ELF image: %d bytes, less than the %d-byte ELF header",
        image.size(), sizeof(ehdr)));
  }
  std::memcpy(&ehdr, image.data(), sizeof(ehdr));
  if (ehdr.e_machine != EM_386) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ELF machine %d is not EM_386 (%d)", ehdr.e_machine, EM_386));
  }
  if (ehdr.e_phnum == 0) {
    return absl::InvalidArgumentError("ELF image has no program headers");
  }
  if (ehdr.e_phentsize < sizeof(Elf32_Phdr)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ELF e_phentsize %d is smaller than Elf32_Phdr (%d bytes)",
        ehdr.e_phentsize, sizeof(Elf32_Phdr)));
  }
  const uint64_t ph_table_size = uint64_t{ehdr.e_phnum} * ehdr.e_phentsize;
  if (!Fits(image.size(), ehdr.e_phoff, ph_table_size)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ELF program headers [0x%x, 0x%x) lie outside the %d-byte image",
        ehdr.e_phoff, uint64_t{ehdr.e_phoff} + ph_table_size, image.size()));
  }

  KernelLayout layout;
  layout.entry = ehdr.e_entry;
  std::vector<Elf32_Phdr> loaded;
  for (int i = 0; i < ehdr.e_phnum; ++i) {
    Elf32_Phdr ph;
    std::memcpy(&ph, image.data() + ehdr.e_phoff + static_cast<uint64_t>(i) * ehdr.e_phentsize,
                sizeof(ph));
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    if (ph.p_filesz > ph.p_memsz) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "ELF segment %d: p_filesz 0x%x exceeds p_memsz 0x%x", i, ph.p_filesz,
          ph.p_memsz));
    }
    if (!Fits(image.size(), ph.p_offset, ph.p_filesz)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "truncated ELF image: segment %d's file bytes [0x%x, 0x%x) lie "
          "outside the %d-byte image",
          i, ph.p_offset, uint64_t{ph.p_offset} + ph.p_filesz, image.size()));
    }
    layout.segments.push_back(
        Segment{ph.p_paddr, ph.p_offset, ph.p_filesz, ph.p_memsz});
    loaded.push_back(ph);
  }
  if (layout.segments.empty()) {
    return absl::InvalidArgumentError("ELF image has no PT_LOAD segment");
  }
  // e_entry is a virtual address; QEMU's load_elf (include/hw/elf_ops.h)
  // translates it to physical when it lies in the file part of an executable
  // segment linked at a different virtual address (higher-half kernels).
  for (const Elf32_Phdr& ph : loaded) {
    if ((ph.p_flags & PF_X) && ph.p_vaddr != ph.p_paddr &&
        ehdr.e_entry >= ph.p_vaddr &&
        uint64_t{ehdr.e_entry} < uint64_t{ph.p_vaddr} + ph.p_filesz) {
      layout.entry = ehdr.e_entry - ph.p_vaddr + ph.p_paddr;
    }
  }
  return layout;
}

// Multiboot 3.1.3 (the "a.out kludge"), checked as QEMU's multiboot.c does.
absl::StatusOr<KernelLayout> ParseAoutKludge(absl::Span<const uint8_t> image,
                                             const Header& header) {
  const uint64_t off = header.offset;
  if (off + kAoutHeaderSize > kMultibootSearchLimit) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "multiboot header at offset 0x%x with the a.out kludge (flag 16) ends "
        "past the first %d bytes",
        off, kMultibootSearchLimit));
  }
  if (!Fits(image.size(), off, kAoutHeaderSize)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "truncated image: the multiboot header at offset 0x%x needs %d bytes "
        "for the a.out kludge address fields but the image has %d",
        off, kAoutHeaderSize, image.size()));
  }
  const uint64_t header_addr = Load32(image, off + 12);
  const uint64_t load_addr = Load32(image, off + 16);
  const uint64_t load_end_addr = Load32(image, off + 20);
  const uint64_t bss_end_addr = Load32(image, off + 24);
  const uint32_t entry_addr = Load32(image, off + 28);
  if (header_addr < load_addr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "multiboot load_addr 0x%x is above header_addr 0x%x", load_addr,
        header_addr));
  }
  if (header_addr - load_addr > off) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "multiboot header_addr 0x%x - load_addr 0x%x exceeds the header's "
        "file offset 0x%x: the text would start before the file",
        header_addr, load_addr, off));
  }
  const uint64_t text_offset = off - (header_addr - load_addr);
  uint64_t load_size;
  if (load_end_addr != 0) {
    if (load_end_addr < load_addr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "multiboot load_end_addr 0x%x is below load_addr 0x%x",
          load_end_addr, load_addr));
    }
    load_size = load_end_addr - load_addr;
  } else {
    load_size = image.size() - text_offset;  // text_offset <= off < size
  }
  if (!Fits(image.size(), text_offset, load_size)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "truncated image: the a.out kludge loads file bytes [0x%x, 0x%x) but "
        "the image has %d bytes",
        text_offset, text_offset + load_size, image.size()));
  }
  uint64_t mem_size = load_size;
  if (bss_end_addr != 0) {
    if (bss_end_addr < load_addr + load_size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "multiboot bss_end_addr 0x%x is below the end of the loaded text "
          "0x%x",
          bss_end_addr, load_addr + load_size));
    }
    mem_size = bss_end_addr - load_addr;
  }
  KernelLayout layout;
  layout.entry = entry_addr;
  if (mem_size > 0) {
    layout.segments.push_back(
        Segment{load_addr, text_offset, load_size, mem_size});
  }
  return layout;
}

// Little-endian builder for the info block.
class Block {
 public:
  uint64_t size() const { return bytes_.size(); }
  void Reserve(uint64_t n) { bytes_.resize(bytes_.size() + n, 0); }
  void AlignTo(uint64_t alignment) {
    bytes_.resize((bytes_.size() + alignment - 1) / alignment * alignment, 0);
  }
  void Put32(uint64_t offset, uint32_t v) {
    std::memcpy(bytes_.data() + offset, &v, sizeof(v));
  }
  void Put64(uint64_t offset, uint64_t v) {
    std::memcpy(bytes_.data() + offset, &v, sizeof(v));
  }
  // Appends a NUL-terminated string; returns its offset.
  uint64_t AppendString(std::string_view s) {
    const uint64_t offset = bytes_.size();
    bytes_.insert(bytes_.end(), s.begin(), s.end());
    bytes_.push_back(0);
    return offset;
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

}  // namespace

absl::StatusOr<MultibootBoot> LoadMultiboot(
    absl::Span<const uint8_t> image, std::string_view cmdline,
    const std::vector<MultibootModule>& modules, GuestRam* ram) {
  if (ram->size() < kHighMemStart) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "RAM too small for multiboot: %s, need at least 1 MiB",
        FormatRamSize(ram->size())));
  }
  ASSIGN_OR_RETURN(const Header header, FindHeader(image));
  RETURN_IF_ERROR(CheckRequiredFlags(header.flags));

  MultibootBoot boot;
  boot.header_offset = header.offset;
  boot.header_flags = header.flags;
  KernelLayout layout;
  if (header.flags & kMultibootAoutKludge) {
    boot.aout_kludge = true;
    ASSIGN_OR_RETURN(layout, ParseAoutKludge(image, header));
  } else if (IsElf(image)) {
    ASSIGN_OR_RETURN(layout, ParseElf32(image));
  } else {
    return absl::InvalidArgumentError(
        "kernel is not an ELF image and its multiboot header has no a.out "
        "kludge (flag 16): nothing says where to load it");
  }

  // Every segment must fit, and no two may overlap (QEMU refuses overlapping
  // ROM blobs: "rom: requested regions overlap").
  std::vector<Segment> sorted = layout.segments;
  std::sort(sorted.begin(), sorted.end(),
            [](const Segment& a, const Segment& b) { return a.dest < b.dest; });
  for (size_t i = 0; i < sorted.size(); ++i) {
    const Segment& s = sorted[i];
    RETURN_IF_ERROR(CheckFitsInRam(*ram, s.dest, s.memsz, "the kernel: segment"));
    if (i > 0 && sorted[i - 1].dest + sorted[i - 1].memsz > s.dest) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "kernel segments [0x%x, 0x%x) and [0x%x, 0x%x) overlap",
          sorted[i - 1].dest, sorted[i - 1].dest + sorted[i - 1].memsz, s.dest,
          s.dest + s.memsz));
    }
  }
  uint64_t kernel_start = k4GiB, kernel_end = 0;
  for (const Segment& s : layout.segments) {
    std::memcpy(ram->data() + s.dest, image.data() + s.file_offset, s.filesz);
    std::memset(ram->data() + s.dest + s.filesz, 0, s.memsz - s.filesz);
    kernel_start = std::min(kernel_start, s.dest);
    kernel_end = std::max(kernel_end, s.dest + s.memsz);
  }
  if (layout.segments.empty()) {  // a.out kludge with nothing to load
    kernel_start = kernel_end = layout.entry;
  }
  boot.entry = layout.entry;
  boot.kernel_start = kernel_start;
  boot.kernel_end = kernel_end;

  // Modules: page-aligned after the kernel (header flag 0 asks for it; we
  // always do it, as QEMU does).
  uint64_t cursor = PageAlign(kernel_end);
  std::vector<std::pair<uint64_t, uint64_t>> module_ranges;
  for (size_t i = 0; i < modules.size(); ++i) {
    const MultibootModule& module = modules[i];
    const uint64_t start = cursor;
    RETURN_IF_ERROR(CheckFitsInRam(
        *ram, start, module.bytes.size(),
        absl::StrFormat("module %d (\"%s\", %d bytes):", i, module.cmdline,
                        module.bytes.size())));
    if (!module.bytes.empty()) {
      std::memcpy(ram->data() + start, module.bytes.data(), module.bytes.size());
    }
    module_ranges.emplace_back(start, start + module.bytes.size());
    cursor = PageAlign(start + module.bytes.size());
  }

  // The info block: multiboot_info, module list, strings, memory map.
  const uint64_t info_addr = cursor;
  using L = MultibootInfoLayout;
  Block block;
  block.Reserve(L::kSize);
  const uint64_t mods_offset = block.size();
  block.Reserve(uint64_t{L::kModuleEntrySize} * modules.size());
  const uint64_t cmdline_offset = block.AppendString(cmdline);
  std::vector<uint64_t> module_string_offsets;
  for (const MultibootModule& module : modules) {
    module_string_offsets.push_back(block.AppendString(module.cmdline));
  }
  const uint64_t loader_name_offset = block.AppendString(kBootLoaderName);
  block.AlignTo(8);
  const uint64_t mmap_offset = block.size();
  const uint64_t ram_size = ram->size();
  struct MmapEntry {
    uint64_t base, length;
    uint32_t type;
  };
  std::vector<MmapEntry> mmap = {
      {0, kEbdaStart, 1},
      {kEbdaStart, kLowMemEnd - kEbdaStart, 2},
      {kBiosStart, kHighMemStart - kBiosStart, 2},
  };
  if (ram_size > kHighMemStart) {
    mmap.push_back({kHighMemStart, ram_size - kHighMemStart, 1});
  }
  block.Reserve(uint64_t{L::kMmapEntrySize} * mmap.size());

  RETURN_IF_ERROR(CheckFitsInRam(*ram, info_addr, block.size(),
                                 "the multiboot information:"));
  const auto addr = [&](uint64_t offset) {
    return static_cast<uint32_t>(info_addr + offset);
  };
  // multiboot_info (3.3).
  block.Put32(L::kFlags, kMultibootInfoMemory | kMultibootInfoCmdline |
                             kMultibootInfoMods | kMultibootInfoMmap |
                             kMultibootInfoBootLoaderName);
  block.Put32(L::kMemLower, 639);  // KiB below 640 KiB (EBDA excluded)
  // KiB from 1 MiB up to the first hole; RAM above 4 GiB is not counted.
  block.Put32(L::kMemUpper, static_cast<uint32_t>(
                                (std::min(ram_size, k4GiB) - kHighMemStart) / 1024));
  block.Put32(L::kCmdline, addr(cmdline_offset));
  block.Put32(L::kModsCount, static_cast<uint32_t>(modules.size()));
  block.Put32(L::kModsAddr, addr(mods_offset));
  block.Put32(L::kMmapLength,
              static_cast<uint32_t>(uint64_t{L::kMmapEntrySize} * mmap.size()));
  block.Put32(L::kMmapAddr, addr(mmap_offset));
  block.Put32(L::kBootLoaderName, addr(loader_name_offset));
  for (size_t i = 0; i < modules.size(); ++i) {
    const uint64_t entry = mods_offset + uint64_t{L::kModuleEntrySize} * i;
    block.Put32(entry + 0, static_cast<uint32_t>(module_ranges[i].first));
    block.Put32(entry + 4, static_cast<uint32_t>(module_ranges[i].second));
    block.Put32(entry + 8, addr(module_string_offsets[i]));
    block.Put32(entry + 12, 0);
  }
  for (size_t i = 0; i < mmap.size(); ++i) {
    const uint64_t entry = mmap_offset + uint64_t{L::kMmapEntrySize} * i;
    block.Put32(entry + 0, L::kMmapEntrySize - 4);  // size excludes itself
    block.Put64(entry + 4, mmap[i].base);
    block.Put64(entry + 12, mmap[i].length);
    block.Put32(entry + 20, mmap[i].type);
  }
  std::memcpy(ram->data() + info_addr, block.bytes().data(), block.size());

  boot.ebx = static_cast<uint32_t>(info_addr);
  boot.loader_end = PageAlign(info_addr + block.size());
  return boot;
}

}  // namespace irqlab
