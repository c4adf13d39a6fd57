// Tests of emu/machine/multiboot.h: the multiboot v1 loader (Multiboot 0.6.96,
// sections 3.1-3.3, as QEMU's -kernel implements them).
#include "emu/machine/multiboot.h"

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace irqlab {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kRamSize = 16 * kMiB;

void Put32(std::vector<uint8_t>& b, size_t off, uint32_t v) {
  if (b.size() < off + 4) b.resize(off + 4);
  std::memcpy(b.data() + off, &v, 4);
}

// Appends a multiboot header at `off` (4-aligned) with the given flags and a
// correct checksum (3.1.1), plus the a.out-kludge fields if given.
void PutMultibootHeader(std::vector<uint8_t>& b, size_t off, uint32_t flags,
                        const std::vector<uint32_t>& aout_fields = {}) {
  Put32(b, off, kMultibootHeaderMagic);
  Put32(b, off + 4, flags);
  Put32(b, off + 8, -(kMultibootHeaderMagic + flags));
  for (size_t i = 0; i < aout_fields.size(); ++i) {
    Put32(b, off + 12 + 4 * i, aout_fields[i]);
  }
}

struct SegmentSpec {
  uint32_t paddr;
  std::vector<uint8_t> bytes;  // p_filesz = bytes.size()
  uint32_t memsz;              // >= bytes.size(); the rest is BSS
  uint32_t vaddr = 0;          // 0: same as paddr
  uint32_t type = PT_LOAD;
  uint32_t flags = PF_R | PF_W | PF_X;
};

struct ElfLayout {
  std::vector<uint8_t> image;
  size_t phoff = 0;
  size_t header_offset = 0;
  std::vector<size_t> segment_offsets;
};

// An ELF32 EM_386 executable: Ehdr, Phdrs, the multiboot header, then each
// segment's file bytes (16-aligned). The last segment's bytes end the file.
ElfLayout BuildElf32(const std::vector<SegmentSpec>& segments, uint32_t entry,
                     uint32_t mb_flags = kMultibootPageAlign |
                                         kMultibootMemoryInfo) {
  ElfLayout out;
  std::vector<uint8_t>& b = out.image;
  Elf32_Ehdr eh = {};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS32;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_386;
  eh.e_version = EV_CURRENT;
  eh.e_entry = entry;
  eh.e_phoff = sizeof(Elf32_Ehdr);
  eh.e_ehsize = sizeof(Elf32_Ehdr);
  eh.e_phentsize = sizeof(Elf32_Phdr);
  eh.e_phnum = segments.size();
  out.phoff = eh.e_phoff;
  out.header_offset = eh.e_phoff + segments.size() * sizeof(Elf32_Phdr);
  size_t data = (out.header_offset + 12 + 15) & ~size_t{15};
  b.resize(data, 0);
  std::memcpy(b.data(), &eh, sizeof(eh));
  PutMultibootHeader(b, out.header_offset, mb_flags);
  for (size_t i = 0; i < segments.size(); ++i) {
    const SegmentSpec& s = segments[i];
    Elf32_Phdr ph = {};
    ph.p_type = s.type;
    ph.p_offset = data;
    ph.p_vaddr = s.vaddr ? s.vaddr : s.paddr;
    ph.p_paddr = s.paddr;
    ph.p_filesz = s.bytes.size();
    ph.p_memsz = s.memsz;
    ph.p_flags = s.flags;
    ph.p_align = 16;
    std::memcpy(b.data() + out.phoff + i * sizeof(ph), &ph, sizeof(ph));
    out.segment_offsets.push_back(data);
    b.insert(b.end(), s.bytes.begin(), s.bytes.end());
    data = (b.size() + 15) & ~size_t{15};
    if (i + 1 < segments.size()) b.resize(data, 0);
  }
  return out;
}

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

// A typical kernel: text at 1 MiB, data + BSS at 1 MiB + 8 KiB.
ElfLayout TypicalKernel() {
  return BuildElf32({{0x100000, Pattern(0x180, 1), 0x180},
                     {0x102000, Pattern(0x20, 9), 0x1000}},
                    0x100010);
}

std::unique_ptr<GuestRam> MakeRam(uint64_t size = kRamSize) {
  auto ram = GuestRam::Create(size);
  EXPECT_TRUE(ram.ok()) << ram.status();
  // Poison RAM so that "zeroed" is observable.
  std::memset((*ram)->data(), 0xAA, (*ram)->size());
  return std::move(*ram);
}

std::string ReadCString(const GuestRam& ram, uint32_t addr) {
  std::string s;
  while (addr < ram.size() && ram.data()[addr] != 0) s += ram.data()[addr++];
  return s;
}

// 3.1 with ELF: PT_LOAD segments land at p_paddr, [p_filesz, p_memsz) is
// zeroed, EIP = e_entry, EAX = 0x2BADB002 (3.2).
TEST(MultibootTest, ElfSegmentsLoadAtPhysicalAddressesWithBssZeroed) {
  auto ram = MakeRam();
  ElfLayout k = TypicalKernel();
  auto boot = LoadMultiboot(k.image, "", {}, ram.get());
  ASSERT_TRUE(boot.ok()) << boot.status();
  EXPECT_EQ(boot->entry, 0x100010u);
  EXPECT_EQ(boot->eax, 0x2BADB002u);
  EXPECT_FALSE(boot->aout_kludge);
  EXPECT_EQ(boot->header_offset, k.header_offset);
  EXPECT_EQ(boot->kernel_start, 0x100000u);
  EXPECT_EQ(boot->kernel_end, 0x103000u);
  EXPECT_EQ(std::vector<uint8_t>(ram->data() + 0x100000, ram->data() + 0x100180),
            Pattern(0x180, 1));
  EXPECT_EQ(std::vector<uint8_t>(ram->data() + 0x102000, ram->data() + 0x102020),
            Pattern(0x20, 9));
  for (uint64_t a = 0x102020; a < 0x103000; ++a) {
    ASSERT_EQ(ram->data()[a], 0) << std::hex << a;
  }
  // Bytes between segments are not touched.
  EXPECT_EQ(ram->data()[0x100180], 0xAA);
  EXPECT_EQ(ram->data()[0x101fff], 0xAA);
}

// Non-PT_LOAD and empty segments are skipped.
TEST(MultibootTest, NonLoadAndEmptySegmentsAreIgnored) {
  auto ram = MakeRam();
  ElfLayout k = BuildElf32({{0x200000, Pattern(16, 3), 16, 0, PT_NOTE},
                            {0x300000, {}, 0},
                            {0x100000, Pattern(16, 5), 16}},
                           0x100000);
  auto boot = LoadMultiboot(k.image, "", {}, ram.get());
  ASSERT_TRUE(boot.ok()) << boot.status();
  EXPECT_EQ(ram->data()[0x200000], 0xAA);
  EXPECT_EQ(boot->kernel_start, 0x100000u);
  EXPECT_EQ(boot->kernel_end, 0x100010u);
}

// Higher-half kernels: e_entry is virtual; like QEMU's load_elf the loader
// translates it through the executable segment whose vaddr != paddr.
TEST(MultibootTest, VirtualEntryIsTranslatedToPhysical) {
  auto ram = MakeRam();
  SegmentSpec text{0x100000, Pattern(0x100, 1), 0x100, 0xC0100000};
  ElfLayout k = BuildElf32({text}, 0xC0100020);
  auto boot = LoadMultiboot(k.image, "", {}, ram.get());
  ASSERT_TRUE(boot.ok()) << boot.status();
  EXPECT_EQ(boot->entry, 0x100020u);
}

// 3.3: the info structure (EBX) has flags 0 (mem), 2 (cmdline), 3 (mods),
// 6 (mmap) and 9 (loader name); mem_lower = 639, mem_upper = (RAM - 1 MiB) /
// 1 KiB; modules are page-aligned after the kernel with their strings; the
// memory map has the PC layout.
TEST(MultibootTest, InfoStructureDescribesMemoryCmdlineModulesAndMap) {
  auto ram = MakeRam();
  ElfLayout k = TypicalKernel();
  const std::vector<uint8_t> m0 = Pattern(100, 0x40), m1 = Pattern(5000, 0x80);
  std::vector<MultibootModule> modules = {{"initrd.img quiet", m0},
                                          {"firmware.bin", m1}};
  auto boot = LoadMultiboot(k.image, "kernel console=ttyS0", modules, ram.get());
  ASSERT_TRUE(boot.ok()) << boot.status();
  using L = MultibootInfoLayout;
  const uint32_t info = boot->ebx;
  EXPECT_EQ(info % 4096, 0u);
  EXPECT_EQ(ram->Load<uint32_t>(info + L::kFlags),
            (1u << 0) | (1u << 2) | (1u << 3) | (1u << 6) | (1u << 9));
  EXPECT_EQ(ram->Load<uint32_t>(info + L::kMemLower), 639u);
  EXPECT_EQ(ram->Load<uint32_t>(info + L::kMemUpper), (kRamSize - kMiB) / 1024);
  EXPECT_EQ(ReadCString(*ram, ram->Load<uint32_t>(info + L::kCmdline)),
            "kernel console=ttyS0");
  EXPECT_EQ(ReadCString(*ram, ram->Load<uint32_t>(info + L::kBootLoaderName)),
            "irqlab");

  // Modules: page-aligned, right after the kernel (kernel_end = 0x103000).
  ASSERT_EQ(ram->Load<uint32_t>(info + L::kModsCount), 2u);
  const uint32_t mods = ram->Load<uint32_t>(info + L::kModsAddr);
  const uint32_t m0_start = ram->Load<uint32_t>(mods + 0);
  const uint32_t m0_end = ram->Load<uint32_t>(mods + 4);
  const uint32_t m1_start = ram->Load<uint32_t>(mods + 16);
  const uint32_t m1_end = ram->Load<uint32_t>(mods + 20);
  EXPECT_EQ(m0_start, 0x103000u);
  EXPECT_EQ(m0_end, 0x103000u + 100);
  EXPECT_EQ(m1_start, 0x104000u);
  EXPECT_EQ(m1_end, 0x104000u + 5000);
  EXPECT_EQ(std::vector<uint8_t>(ram->data() + m0_start, ram->data() + m0_end), m0);
  EXPECT_EQ(std::vector<uint8_t>(ram->data() + m1_start, ram->data() + m1_end), m1);
  EXPECT_EQ(ReadCString(*ram, ram->Load<uint32_t>(mods + 8)), "initrd.img quiet");
  EXPECT_EQ(ReadCString(*ram, ram->Load<uint32_t>(mods + 24)), "firmware.bin");
  EXPECT_EQ(ram->Load<uint32_t>(mods + 12), 0u);  // reserved
  // The info block follows the last module, page-aligned.
  EXPECT_EQ(info, 0x106000u);
  EXPECT_GT(boot->loader_end, info);
  EXPECT_EQ(boot->loader_end % 4096, 0u);

  // Memory map: (size=20, base, length, type) records.
  const uint32_t mmap = ram->Load<uint32_t>(info + L::kMmapAddr);
  ASSERT_EQ(ram->Load<uint32_t>(info + L::kMmapLength), 4u * 24);
  struct Entry {
    uint64_t base, length;
    uint32_t type;
  };
  const Entry expected[] = {{0, 0x9FC00, 1},
                            {0x9FC00, 0x400, 2},
                            {0xF0000, 0x10000, 2},
                            {0x100000, kRamSize - 0x100000, 1}};
  for (int i = 0; i < 4; ++i) {
    const uint32_t e = mmap + 24 * i;
    EXPECT_EQ(ram->Load<uint32_t>(e), 20u) << i;
    EXPECT_EQ(ram->Load<uint64_t>(e + 4), expected[i].base) << i;
    EXPECT_EQ(ram->Load<uint64_t>(e + 12), expected[i].length) << i;
    EXPECT_EQ(ram->Load<uint32_t>(e + 20), expected[i].type) << i;
  }
  // Everything the loader wrote lies below loader_end.
  EXPECT_LE(mmap + 96u, boot->loader_end);
}

// Without modules, mods_count is 0 (flag 3 still set, as QEMU does) and the
// info block starts at the first page after the kernel.
TEST(MultibootTest, NoModulesGivesZeroModsCount) {
  auto ram = MakeRam();
  ElfLayout k = TypicalKernel();
  auto boot = LoadMultiboot(k.image, "", {}, ram.get());
  ASSERT_TRUE(boot.ok()) << boot.status();
  EXPECT_EQ(boot->ebx, 0x103000u);
  EXPECT_EQ(ram->Load<uint32_t>(boot->ebx + MultibootInfoLayout::kModsCount), 0u);
  EXPECT_EQ(ReadCString(*ram, ram->Load<uint32_t>(boot->ebx +
                                                  MultibootInfoLayout::kCmdline)),
            "");
}

// 3.1.3: with flag 16 the header's address fields say where to load the
// image (instead of the ELF headers), and BSS up to bss_end_addr is zeroed.
TEST(MultibootTest, AoutKludgeLoadsFromHeaderAddressFields) {
  auto ram = MakeRam();
  // A flat binary: header at file offset 0x40, linked so that file offset 0
  // is at 0x200000. load_end_addr 0 = up to the end of the file.
  std::vector<uint8_t> image = Pattern(0x400, 0x11);
  const uint32_t flags = kMultibootAoutKludge | kMultibootPageAlign;
  PutMultibootHeader(image, 0x40, flags,
                     {/*header_addr=*/0x200040, /*load_addr=*/0x200000,
                      /*load_end_addr=*/0, /*bss_end_addr=*/0x201000,
                      /*entry_addr=*/0x200100});
  auto boot = LoadMultiboot(image, "", {}, ram.get());
  ASSERT_TRUE(boot.ok()) << boot.status();
  EXPECT_TRUE(boot->aout_kludge);
  EXPECT_EQ(boot->entry, 0x200100u);
  EXPECT_EQ(boot->kernel_start, 0x200000u);
  EXPECT_EQ(boot->kernel_end, 0x201000u);
  EXPECT_EQ(std::memcmp(ram->data() + 0x200000, image.data(), image.size()), 0);
  EXPECT_EQ(ram->data()[0x200400], 0);  // BSS
  EXPECT_EQ(ram->data()[0x200fff], 0);
  EXPECT_EQ(boot->ebx, 0x201000u);
}

// The a.out kludge's addresses are checked like QEMU does: the text cannot
// start before the file, load_end cannot precede load_addr, and the loaded
// bytes must be in the file.
TEST(MultibootTest, InconsistentAoutKludgeFieldsAreRejected) {
  auto ram = MakeRam();
  const uint32_t flags = kMultibootAoutKludge;
  struct Case {
    std::vector<uint32_t> fields;
    const char* message;
  } cases[] = {
      {{0x200040, 0x200050, 0, 0, 0}, "above header_addr"},
      {{0x200040, 0x100000, 0, 0, 0}, "before the file"},
      {{0x200040, 0x200000, 0x1000, 0, 0}, "below load_addr"},
      {{0x200040, 0x200000, 0x300000, 0, 0}, "truncated image"},
      {{0x200040, 0x200000, 0x200100, 0x200080, 0}, "bss_end_addr"},
  };
  for (const Case& c : cases) {
    std::vector<uint8_t> image(0x400, 0);
    PutMultibootHeader(image, 0x40, flags, c.fields);
    auto boot = LoadMultiboot(image, "", {}, ram.get());
    EXPECT_EQ(boot.status().code(), absl::StatusCode::kInvalidArgument)
        << c.message;
    EXPECT_THAT(boot.status().message(), HasSubstr(c.message));
  }
  // Header address fields cut off by the end of the file.
  std::vector<uint8_t> image(0x4c, 0);
  PutMultibootHeader(image, 0x40, flags);
  EXPECT_THAT(LoadMultiboot(image, "", {}, ram.get()).status().message(),
              HasSubstr("truncated"));
}

// 3.1.1: no magic in the first 8192 bytes (4-aligned) -> not multiboot.
TEST(MultibootTest, MissingHeaderIsRejected) {
  auto ram = MakeRam();
  ElfLayout k = TypicalKernel();
  std::memset(k.image.data() + k.header_offset, 0, 12);
  auto boot = LoadMultiboot(k.image, "", {}, ram.get());
  EXPECT_EQ(boot.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(boot.status().message(), HasSubstr("no multiboot header"));
  EXPECT_FALSE(LoadMultiboot({}, "", {}, ram.get()).ok());
  // A header past the first 8192 bytes or misaligned does not count.
  std::vector<uint8_t> late(9000, 0);
  PutMultibootHeader(late, 8192, kMultibootAoutKludge);
  EXPECT_THAT(LoadMultiboot(late, "", {}, ram.get()).status().message(),
              HasSubstr("no multiboot header"));
  std::vector<uint8_t> odd(64, 0);
  PutMultibootHeader(odd, 6, 0);
  EXPECT_THAT(LoadMultiboot(odd, "", {}, ram.get()).status().message(),
              HasSubstr("no multiboot header"));
}

// 3.1.1: magic + flags + checksum must be 0 mod 2^32.
TEST(MultibootTest, BadChecksumIsRejectedWithOffset) {
  auto ram = MakeRam();
  ElfLayout k = TypicalKernel();
  Put32(k.image, k.header_offset + 8, 0x12345678);
  auto boot = LoadMultiboot(k.image, "", {}, ram.get());
  EXPECT_EQ(boot.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(boot.status().message(), HasSubstr("bad checksum"));
  EXPECT_THAT(boot.status().message(),
              HasSubstr(absl::StrFormat("offset 0x%x", k.header_offset)));
}

// 3.1.2: a required flag (bits 0-15) the loader does not know fails the
// load, naming the bit; bit 2 (video mode) is ignored as QEMU does, optional
// bits 17-31 are ignored.
TEST(MultibootTest, UnknownRequiredFlagIsRejectedNamingTheBit) {
  auto ram = MakeRam();
  ElfLayout bad = BuildElf32({{0x100000, Pattern(16, 1), 16}}, 0x100000,
                             kMultibootPageAlign | (1u << 5));
  auto boot = LoadMultiboot(bad.image, "", {}, ram.get());
  EXPECT_EQ(boot.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(boot.status().message(), HasSubstr("flag bit 5"));
  ElfLayout ok = BuildElf32({{0x100000, Pattern(16, 1), 16}}, 0x100000,
                            kMultibootVideoMode | (1u << 20));
  EXPECT_TRUE(LoadMultiboot(ok.image, "", {}, ram.get()).ok());
}

// ELF64 images are refused with advice (QEMU: "give a 32bit one").
TEST(MultibootTest, Elf64IsRejectedWithObjcopyAdvice) {
  auto ram = MakeRam();
  ElfLayout k = TypicalKernel();
  k.image[EI_CLASS] = ELFCLASS64;
  auto boot = LoadMultiboot(k.image, "", {}, ram.get());
  EXPECT_EQ(boot.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(boot.status().message(), HasSubstr("objcopy -O elf32-i386"));
}

// Without flag 16 the image must be ELF: a flat binary has no load address.
TEST(MultibootTest, FlatBinaryWithoutAoutKludgeIsRejected) {
  auto ram = MakeRam();
  std::vector<uint8_t> image(256, 0x90);
  PutMultibootHeader(image, 0, kMultibootPageAlign);
  auto boot = LoadMultiboot(image, "", {}, ram.get());
  EXPECT_THAT(boot.status().message(), HasSubstr("not an ELF image"));
}

// Truncation anywhere (ELF header, program headers, segment bytes) is an
// error, never an out-of-bounds read.
TEST(MultibootTest, TruncatedImageIsRejectedAtEveryLength) {
  auto ram = MakeRam();
  ElfLayout k = TypicalKernel();
  for (size_t len = 0; len < k.image.size(); ++len) {
    // A copy of exactly `len` bytes, so ASan would catch reads past it.
    std::vector<uint8_t> cut(k.image.begin(), k.image.begin() + len);
    auto boot = LoadMultiboot(cut, "", {}, ram.get());
    ASSERT_FALSE(boot.ok()) << "length " << len;
    ASSERT_EQ(boot.status().code(), absl::StatusCode::kInvalidArgument) << len;
  }
  EXPECT_TRUE(LoadMultiboot(k.image, "", {}, ram.get()).ok());
}

// Program headers or segment bytes pointing outside the file, absurd sizes
// and additions that would overflow 32 bits are errors.
TEST(MultibootTest, CorruptHeadersAreRejected) {
  auto ram = MakeRam();
  const auto with_phdr = [](auto mutate) {
    ElfLayout k = TypicalKernel();
    Elf32_Phdr ph;
    std::memcpy(&ph, k.image.data() + k.phoff, sizeof(ph));
    mutate(ph);
    std::memcpy(k.image.data() + k.phoff, &ph, sizeof(ph));
    return k.image;
  };
  const auto with_ehdr = [](auto mutate) {
    ElfLayout k = TypicalKernel();
    Elf32_Ehdr eh;
    std::memcpy(&eh, k.image.data(), sizeof(eh));
    mutate(eh);
    std::memcpy(k.image.data(), &eh, sizeof(eh));
    return k.image;
  };
  struct Case {
    const char* what;
    std::vector<uint8_t> image;
    const char* message;
  };
  const Case cases[] = {
      {"p_offset past the end",
       with_phdr([](Elf32_Phdr& p) { p.p_offset = 0x100000; }),
       "outside the"},
      {"p_offset + p_filesz overflows",
       with_phdr([](Elf32_Phdr& p) {
         p.p_offset = 0xFFFFFFF0;
         p.p_filesz = p.p_memsz = 0x20;
       }),
       "outside the"},
      {"p_filesz > p_memsz",
       with_phdr([](Elf32_Phdr& p) { p.p_filesz = p.p_memsz + 1; }),
       "exceeds p_memsz"},
      {"absurd p_memsz", with_phdr([](Elf32_Phdr& p) { p.p_memsz = 0xFFFFFFFF; }),
       "4 GiB"},
      {"p_paddr + p_memsz wraps 32 bits",
       with_phdr([](Elf32_Phdr& p) {
         p.p_paddr = 0xFFFFF000;
         p.p_memsz = 0x2000;
       }),
       "4 GiB"},
      {"phdrs past the end",
       with_ehdr([](Elf32_Ehdr& e) { e.e_phoff = 0xFFFFFFF0; }),
       "program headers"},
      {"absurd e_phnum", with_ehdr([](Elf32_Ehdr& e) { e.e_phnum = 0xFFFF; }),
       "program headers"},
      {"tiny e_phentsize",
       with_ehdr([](Elf32_Ehdr& e) { e.e_phentsize = 4; }), "e_phentsize"},
      {"no phdrs", with_ehdr([](Elf32_Ehdr& e) { e.e_phnum = 0; }),
       "no program headers"},
      {"wrong machine", with_ehdr([](Elf32_Ehdr& e) { e.e_machine = EM_ARM; }),
       "EM_386"},
  };
  for (const Case& c : cases) {
    auto boot = LoadMultiboot(c.image, "", {}, ram.get());
    ASSERT_FALSE(boot.ok()) << c.what;
    EXPECT_THAT(boot.status().message(), HasSubstr(c.message)) << c.what;
  }
}

// Overlapping PT_LOAD segments are refused (QEMU: "rom: requested regions
// overlap"), naming both ranges.
TEST(MultibootTest, OverlappingSegmentsAreRejected) {
  auto ram = MakeRam();
  ElfLayout k = BuildElf32({{0x100000, Pattern(16, 1), 0x2000},
                            {0x101000, Pattern(16, 2), 16}},
                           0x100000);
  auto boot = LoadMultiboot(k.image, "", {}, ram.get());
  EXPECT_EQ(boot.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(boot.status().message(),
              HasSubstr("[0x100000, 0x102000) and [0x101000, 0x101010) overlap"));
}

// Every segment must lie in RAM; the message names the segment and the RAM
// size.
TEST(MultibootTest, SegmentBeyondRamIsRejected) {
  auto ram = MakeRam();
  ElfLayout k = BuildElf32({{0x100000, Pattern(16, 1), 16},
                            {0xF00000, Pattern(16, 2), 0x200000}},
                           0x100000);
  auto boot = LoadMultiboot(k.image, "", {}, ram.get());
  EXPECT_EQ(boot.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(boot.status().message(),
            "RAM too small for the kernel: segment [0xf00000, 0x1100000) "
            "exceeds RAM size 16 MiB");
}

// Modules and the info block must fit in RAM after the kernel.
TEST(MultibootTest, RamTooSmallForModulesIsRejected) {
  auto ram = MakeRam(2 * kMiB);
  ElfLayout k = BuildElf32({{0x100000, Pattern(16, 1), 0x80000}}, 0x100000);
  const std::vector<uint8_t> big(0x90000, 1);
  auto boot = LoadMultiboot(k.image, "", {{"big.bin", big}}, ram.get());
  EXPECT_EQ(boot.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(boot.status().message(),
              HasSubstr("RAM too small for module 0 (\"big.bin\""));
  EXPECT_THAT(boot.status().message(), HasSubstr("2 MiB"));
  // A module that just fits leaves no room for the info block.
  const std::vector<uint8_t> fits(0x80000, 1);
  boot = LoadMultiboot(k.image, "", {{"fits.bin", fits}}, ram.get());
  EXPECT_EQ(boot.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(boot.status().message(), HasSubstr("multiboot information"));
}

// Random corruption (fixed seed) of a valid image never crashes: each result
// is either a successful load within RAM or an error.
TEST(MultibootTest, RandomCorruptionNeverCrashes) {
  auto ram = MakeRam();
  const ElfLayout k = TypicalKernel();
  std::mt19937 rng(1234);
  int ok = 0, failed = 0;
  for (int i = 0; i < 3000; ++i) {
    std::vector<uint8_t> image = k.image;
    const int flips = 1 + rng() % 4;
    for (int f = 0; f < flips; ++f) {
      // Corrupt mostly the headers, where the interesting fields are.
      const size_t at = rng() % std::min<size_t>(image.size(), 160);
      image[at] = rng();
    }
    image.resize(image.size() - rng() % 8);
    auto boot = LoadMultiboot(image, "x", {}, ram.get());
    if (boot.ok()) {
      ++ok;
      EXPECT_LE(boot->loader_end, ram->size());
      EXPECT_LE(boot->kernel_end, boot->ebx);
    } else {
      ++failed;
    }
  }
  EXPECT_GT(failed, 100);
}

}  // namespace
}  // namespace irqlab
