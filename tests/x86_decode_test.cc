#include "emu/cpu/x86_decode.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace irqlab {
namespace {

using K = CodeSiteKind;

// Code of the irqbench loop (64-bit) that a byte scan misread: `cmp %r13,%rbp`
// is 4C 39 ED, and ED is IN eax,dx; `mov %rsp,%rbp` is 48 89 E5, and E5 is
// IN eax,imm8. Neither is port I/O.
TEST(X86DecodeTest, OpcodeBytesInsideOtherInstructionsAreNotSites) {
  const uint8_t code[] = {0x4C, 0x39, 0xED,                    // cmp rbp, r13
                          0x48, 0x89, 0xE5,                    // mov rbp, rsp
                          0x0F, 0x82, 0x74, 0x03, 0x00, 0x00,  // jb
                          0xC7, 0x01, 0x01, 0x00, 0x00, 0x00}; // mov dword [rcx], 1
  X86Decoder d(64);
  EXPECT_TRUE(d.FindSites(code, sizeof(code), 0x403373).empty());
  // The byte scan finds both false candidates (that is what it is for).
  EXPECT_EQ(ScanSiteCandidates(code, sizeof(code), 0x403373),
            (std::vector<CodeSite>{{0x403375, 1, K::kPortIo}, {0x403378, 2, K::kPortIo}}));
}

TEST(X86DecodeTest, FindsEverySiteWithItsAddressAndLength) {
  const uint8_t code[] = {0x0F, 0x30,        // wrmsr          +0
                          0xE6, 0x80,        // out 0x80, al   +2
                          0x90,              // nop            +4
                          0xEC,              // in al, dx      +5
                          0x66, 0xED,        // in ax, dx      +6
                          0x0F, 0x32,        // rdmsr          +8
                          0x0F, 0x31,        // rdtsc          +10
                          0x0F, 0x01, 0xF9,  // rdtscp         +12
                          0xC3};             // ret            +15
  X86Decoder d(64);
  EXPECT_EQ(d.FindSites(code, sizeof(code), 0x1000),
            (std::vector<CodeSite>{{0x1000, 2, K::kWrmsr},
                                   {0x1002, 2, K::kPortIo},
                                   {0x1005, 1, K::kPortIo},
                                   {0x1006, 2, K::kPortIo},
                                   {0x1008, 2, K::kRdmsr},
                                   {0x100A, 2, K::kRdtsc},
                                   {0x100C, 3, K::kRdtscp}}));
}

// The same bytes mean different instructions per mode: in 64-bit code 48 is
// a REX prefix (48 E5 10 = in eax, 0x10 with REX.W), in 32-bit code it is
// DEC EAX followed by IN.
TEST(X86DecodeTest, DecodesInTheCodeSegmentsMode) {
  const uint8_t code[] = {0x48, 0xE5, 0x10};
  EXPECT_EQ(X86Decoder(64).FindSites(code, 3, 0x100),
            (std::vector<CodeSite>{{0x100, 3, K::kPortIo}}));
  EXPECT_EQ(X86Decoder(32).FindSites(code, 3, 0x100),
            (std::vector<CodeSite>{{0x101, 2, K::kPortIo}}));
  // 16-bit: 66 B8 imm32 (mov eax, imm32) is 6 bytes; E4 hides in its imm.
  const uint8_t real[] = {0x66, 0xB8, 0xE4, 0x00, 0x00, 0x00, 0xE6, 0x80};
  EXPECT_EQ(X86Decoder(16).FindSites(real, sizeof(real), 0x7C00),
            (std::vector<CodeSite>{{0x7C06, 2, K::kPortIo}}));
}

// Instructions that change what the vCPU caches (paging, GDTR/IDTR) are
// sites; reads of control registers and other group-7 instructions are not.
TEST(X86DecodeTest, ControlStateWritesAreSites) {
  const uint8_t code[] = {0x0F, 0x22, 0xD8,                    // mov cr3, rax   +0
                          0x0F, 0x20, 0xD8,                    // mov rax, cr3   +3
                          0x44, 0x0F, 0x22, 0xC0,              // mov cr8, rax   +6
                          0x0F, 0x01, 0x38,                    // invlpg [rax]   +10
                          0x0F, 0x01, 0x10,                    // lgdt [rax]     +13
                          0x0F, 0x01, 0x18,                    // lidt [rax]     +16
                          0x0F, 0x01, 0x00,                    // sgdt [rax]     +19
                          0x0F, 0x01, 0xF0,                    // lmsw ax        +22
                          0x0F, 0x06,                          // clts           +25
                          0x66, 0x0F, 0x38, 0x82, 0x00,        // invpcid rax, [rax] +27
                          0xC3};                               // ret            +32
  EXPECT_EQ(X86Decoder(64).FindSites(code, sizeof(code), 0),
            (std::vector<CodeSite>{{0, 3, K::kControl},
                                   {6, 4, K::kCr8},  // the APIC's TPR
                                   {10, 3, K::kControl},
                                   {13, 3, K::kControl},
                                   {16, 3, K::kControl},
                                   {22, 3, K::kControl},
                                   {25, 2, K::kControl},
                                   {27, 5, K::kControl}}));
}

TEST(X86DecodeTest, UndecodableRestFallsBackToTheByteScan) {
  // nop, then 0F 04 (an undefined opcode): decoding stops there and the
  // rest is scanned.
  const uint8_t code[] = {0x90, 0x0F, 0x04, 0xEC, 0x0F, 0x30};
  EXPECT_EQ(X86Decoder(64).FindSites(code, sizeof(code), 0x2000),
            (std::vector<CodeSite>{{0x2003, 1, K::kPortIo}, {0x2004, 2, K::kWrmsr}}));
}

// Explicit memory operands, evaluated by the vCPU to find which instruction
// made an MMIO access: direction, size, base/index/scale/disp, RIP-relative.
TEST(X86DecodeTest, MemoryOperandsOfABlock) {
  const uint8_t code[] = {0xC7, 0x03, 0x01, 0x00, 0x00, 0x00,        // mov dword [rbx], 1   +0
                          0x48, 0x8B, 0x05, 0x10, 0x00, 0x00, 0x00,  // mov rax, [rip+0x10] +6
                          0x01, 0x44, 0x8B, 0x08,                    // add [rbx+rcx*4+8], eax +13
                          0x48, 0x8D, 0x04, 0x03,                    // lea rax, [rbx+rax]  +17
                          0x67, 0x8B, 0x06};                         // mov eax, [esi]      +21
  BlockMemoryOperands ops = X86Decoder(64).MemoryOperands(code, sizeof(code), 0x1000);
  EXPECT_TRUE(ops.complete);
  ASSERT_EQ(ops.insns.size(), 4u) << "lea makes no access";
  const MemoryOperandInsn& st = ops.insns[0];
  EXPECT_EQ(st.address, 0x1000u);
  EXPECT_EQ(st.length, 6);
  EXPECT_EQ(st.size, 4);
  EXPECT_TRUE(st.writes);
  EXPECT_FALSE(st.reads);
  EXPECT_EQ(st.base, 3) << "rbx";
  EXPECT_EQ(st.index, -1);
  EXPECT_TRUE(st.mov_store) << "C7 /0: the store is its only effect";
  const MemoryOperandInsn& rel = ops.insns[1];
  EXPECT_TRUE(rel.rip_relative);
  EXPECT_EQ(rel.disp, 0x10);
  EXPECT_EQ(rel.size, 8);
  EXPECT_TRUE(rel.reads);
  EXPECT_FALSE(rel.writes);
  const MemoryOperandInsn& rmw = ops.insns[2];
  EXPECT_TRUE(rmw.reads && rmw.writes);
  EXPECT_EQ(rmw.base, 3);
  EXPECT_EQ(rmw.index, 1) << "rcx";
  EXPECT_EQ(rmw.scale, 4);
  EXPECT_EQ(rmw.disp, 8);
  EXPECT_FALSE(rmw.mov_store) << "ADD also writes the flags";
  EXPECT_FALSE(rel.mov_store);
  EXPECT_EQ(ops.insns[3].address_bits, 32) << "0x67: 32-bit addressing";
  EXPECT_EQ(ops.insns[3].base, 6) << "esi";
  EXPECT_EQ(ops.insns[0].address_bits, 64);
}

// Accesses the entries cannot describe make the block incomplete, so no
// access in it is attributed: stack (push), string (movsd), FS/GS bases.
TEST(X86DecodeTest, OpaqueMemoryAccessesMakeTheBlockIncomplete) {
  const uint8_t push[] = {0x50, 0x89, 0x03};              // push rax; mov [rbx], eax
  EXPECT_FALSE(X86Decoder(64).MemoryOperands(push, sizeof(push), 0).complete);
  const uint8_t movs[] = {0xA5, 0x89, 0x03};              // movsd; mov [rbx], eax
  EXPECT_FALSE(X86Decoder(64).MemoryOperands(movs, sizeof(movs), 0).complete);
  const uint8_t fs[] = {0x64, 0x8B, 0x03};                // mov eax, fs:[rbx]
  EXPECT_FALSE(X86Decoder(64).MemoryOperands(fs, sizeof(fs), 0).complete);
  const uint8_t plain[] = {0x89, 0x03, 0x90};             // mov [rbx], eax; nop
  EXPECT_TRUE(X86Decoder(64).MemoryOperands(plain, sizeof(plain), 0).complete);
}

TEST(X86DecodeTest, LengthOfOneInstruction) {
  X86Decoder d64(64), d32(32);
  const uint8_t load[] = {0x8B, 0x03, 0x89, 0xE5};               // mov eax, [rbx]
  EXPECT_EQ(d64.Length(load, sizeof(load)), 2);
  const uint8_t rex_load[] = {0x48, 0x8B, 0x05, 1, 2, 3, 4};     // mov rax, [rip+d32]
  EXPECT_EQ(d64.Length(rex_load, sizeof(rex_load)), 7);
  EXPECT_EQ(d32.Length(rex_load, sizeof(rex_load)), 1);          // dec eax
  const uint8_t truncated[] = {0x48, 0x8B, 0x05, 1};
  EXPECT_EQ(d64.Length(truncated, sizeof(truncated)), 0);
  EXPECT_EQ(d64.Length(load, 0), 0);
}

// MovStoreLength (the vCPU's store-or-load guess for a #PF error code,
// SDM vol. 3, 4.7 W/R): every plain MOV store (SDM vol. 2, "MOV": 88, 89,
// C6 /0, C7 /0 to memory, A2, A3) has the length Capstone decodes for it,
// in 64-bit and 32-bit code.
TEST(X86DecodeTest, MovStoreLengthMatchesCapstoneOnStores) {
  const std::vector<std::vector<uint8_t>> stores64 = {
      {0x89, 0x07},                                // mov [rdi], eax
      {0x48, 0x89, 0x04, 0x24},                    // mov [rsp], rax (SIB)
      {0x88, 0x45, 0xF8},                          // mov [rbp-8], al
      {0x89, 0x05, 1, 2, 3, 4},                    // mov [rip+d32], eax
      {0x66, 0x89, 0x03},                          // mov [rbx], ax
      {0x2E, 0x89, 0x07},                          // cs: mov [rdi], eax
      {0xC7, 0x01, 1, 0, 0, 0},                    // mov dword [rcx], 1
      {0x66, 0xC7, 0x01, 0x34, 0x12},              // mov word [rcx], 0x1234
      {0x66, 0x48, 0xC7, 0x00, 1, 0, 0, 0},        // mov qword [rax], 1 (REX.W wins)
      {0x48, 0xC7, 0x80, 0, 1, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF},  // [rax+0x100]
      {0xC6, 0x44, 0x24, 0x08, 0x7F},              // mov byte [rsp+8], 0x7F
      {0xC7, 0x04, 0x25, 0, 0x10, 0, 0, 1, 0, 0, 0},  // mov dword [0x1000], 1
      {0xA3, 1, 2, 3, 4, 5, 6, 7, 8},              // movabs [moffs64], eax
      {0x48, 0xA3, 1, 2, 3, 4, 5, 6, 7, 8},        // movabs [moffs64], rax
      {0x67, 0xA3, 1, 2, 3, 4},                    // mov [moffs32], eax
  };
  X86Decoder d64(64), d32(32);
  for (const std::vector<uint8_t>& c : stores64) {
    SCOPED_TRACE(testing::PrintToString(c));
    EXPECT_EQ(MovStoreLength(c.data(), c.size(), true), static_cast<int>(c.size()));
    EXPECT_EQ(d64.Length(c.data(), c.size()), static_cast<int>(c.size()));
  }
  const std::vector<std::vector<uint8_t>> stores32 = {
      {0x89, 0x07},                                // mov [edi], eax
      {0xC7, 0x05, 0, 0x10, 0, 0, 1, 0, 0, 0},     // mov dword [0x1000], 1
      {0xA3, 1, 2, 3, 4},                          // mov [moffs32], eax
      {0x66, 0xC7, 0x43, 0x10, 0x34, 0x12},        // mov word [ebx+0x10], 0x1234
  };
  for (const std::vector<uint8_t>& c : stores32) {
    SCOPED_TRACE(testing::PrintToString(c));
    EXPECT_EQ(MovStoreLength(c.data(), c.size(), false), static_cast<int>(c.size()));
    EXPECT_EQ(d32.Length(c.data(), c.size()), static_cast<int>(c.size()));
  }
}

// Everything else is 0: loads, register destinations, other /r of C6/C7,
// read-modify-write stores, LOCK/REP prefixes, 16-bit addressing, and an
// instruction cut off before its end.
TEST(X86DecodeTest, MovStoreLengthIsZeroForEverythingElse) {
  const std::vector<std::vector<uint8_t>> others64 = {
      {0x8B, 0x07},                  // mov eax, [rdi]
      {0x89, 0xC7},                  // mov edi, eax
      {0xC7, 0xC0, 1, 0, 0, 0},      // mov eax, 1
      {0xC7, 0x08, 1, 0, 0, 0},      // C7 /1: not MOV
      {0x01, 0x07},                  // add [rdi], eax
      {0xA1, 1, 2, 3, 4, 5, 6, 7, 8},  // movabs eax, [moffs64]
      {0xF3, 0x89, 0x07},            // rep prefix
      {0xC7, 0x05, 1, 2},            // truncated disp32 and imm32
      {0x89},                        // truncated ModRM
  };
  for (const std::vector<uint8_t>& c : others64) {
    SCOPED_TRACE(testing::PrintToString(c));
    EXPECT_EQ(MovStoreLength(c.data(), c.size(), true), 0);
  }
  const uint8_t addr16[] = {0x67, 0x89, 0x07};  // mov [bx], ax in 32-bit code
  EXPECT_EQ(MovStoreLength(addr16, sizeof(addr16), false), 0);
  const uint8_t dec_eax[] = {0x48, 0x89, 0x07};  // 32-bit: dec eax first
  EXPECT_EQ(MovStoreLength(dec_eax, sizeof(dec_eax), false), 0);
  EXPECT_EQ(MovStoreLength(dec_eax, sizeof(dec_eax), true), 3);
}

// SDM vol. 3, 10.8.6.1: in 64-bit mode REX.R selects CR8 with 0F 22 (MOV to
// CR) / 0F 20 (MOV from CR); the vCPU emulates those as the APIC's TPR. A
// 64-bit block classifies them as kCr8 (not kControl), other CRn as kControl.
TEST(X86DecodeTest, Cr8MovesAreDecodedWithRegisterAndLength) {
  const uint8_t to_cr8_rax[] = {0x44, 0x0F, 0x22, 0xC0};    // mov cr8, rax
  const uint8_t from_cr8_r11[] = {0x4D, 0x0F, 0x20, 0xC3};  // mov r11, cr8
  const uint8_t to_cr3[] = {0x0F, 0x22, 0xD8};              // mov cr3, rax
  std::optional<Cr8Move> m = DecodeCr8Move(to_cr8_rax, sizeof(to_cr8_rax));
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(m->to_cr8);
  EXPECT_EQ(m->gpr, 0);
  EXPECT_EQ(m->length, 4);
  m = DecodeCr8Move(from_cr8_r11, sizeof(from_cr8_r11));
  ASSERT_TRUE(m.has_value());
  EXPECT_FALSE(m->to_cr8);
  EXPECT_EQ(m->gpr, 11);
  EXPECT_FALSE(DecodeCr8Move(to_cr3, sizeof(to_cr3)).has_value());
  EXPECT_FALSE(DecodeCr8Move(to_cr8_rax, 3).has_value());  // truncated

  X86Decoder d(64);
  std::vector<uint8_t> block(to_cr8_rax, to_cr8_rax + 4);
  block.insert(block.end(), to_cr3, to_cr3 + 3);
  const std::vector<CodeSite> sites = d.FindSites(block.data(), block.size(), 0x1000);
  ASSERT_EQ(sites.size(), 2u);
  EXPECT_EQ(sites[0], (CodeSite{0x1000, 4, CodeSiteKind::kCr8}));
  EXPECT_EQ(sites[1], (CodeSite{0x1004, 3, CodeSiteKind::kControl}));
}

}  // namespace
}  // namespace irqlab
