// Instruction boundaries of guest x86 code, for the vCPU's narrow code hooks
// (emu/cpu/vcpu.cc). Decoding uses Capstone (Debian's libcapstone-dev).
//
// Why: Unicorn has no instruction hook for RDMSR/WRMSR/RDTSC(P), and an
// interrupt made pending by port I/O or an MMIO load must be taken at the
// next instruction boundary, so the vCPU puts a UC_HOOK_CODE on those exact
// addresses. Every call of any code hook makes Unicorn walk its whole list
// of code hooks, so a hook on an address that is not one of these sites
// (e.g. the `89 e5` of `mov %esp,%ebp` read as an IN opcode by a byte scan)
// costs every time that instruction runs, and makes every other hook
// slower.
#ifndef IRQLAB_EMU_CPU_X86_DECODE_H_
#define IRQLAB_EMU_CPU_X86_DECODE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace irqlab {

enum class CodeSiteKind : uint8_t {
  kPortIo,
  kRdmsr,
  kWrmsr,
  kRdtsc,
  kRdtscp,
  // Changes paging or descriptor-table state the vCPU caches: MOV to CRn,
  // LMSW, CLTS, LGDT, LIDT, INVLPG, INVPCID.
  kControl,
  // MOV to or from CR8 in 64-bit mode: the local APIC's TPR (DecodeCr8Move).
  kCr8,
};

// A MOV to or from CR8 (64-bit mode: REX.R selects CR8, 0F 22 /r writes it,
// 0F 20 /r reads it; SDM vol. 3, 10.8.6.1 / 11.8.6.1).
struct Cr8Move {
  bool to_cr8;  // MOV CR8, r64 (else MOV r64, CR8)
  int gpr;      // 0 = RAX ... 15 = R15 (ModRM.rm + REX.B)
  int length;   // bytes
};
// The CR8 move at `code` (n bytes available, 64-bit code), or nullopt.
std::optional<Cr8Move> DecodeCr8Move(const uint8_t* code, size_t n);

struct CodeSite {
  uint64_t address;  // of the instruction
  uint8_t length;    // bytes
  CodeSiteKind kind;
  bool operator==(const CodeSite&) const = default;
};

// An instruction's explicit memory operand, so that the instruction that
// made a given memory access can be found among a block's (emu/cpu/vcpu.cc:
// an MMIO callback knows the address, not the instruction).
// Effective address = base + index * scale + disp, truncated to
// address_bits; or address + length + disp if rip_relative.
struct MemoryOperandInsn {
  uint64_t address;  // of the instruction
  uint8_t length;
  uint8_t size;      // operand bytes
  bool reads, writes;
  int8_t base, index;  // general register 0-15 (RAX..R15), -1 if none
  uint8_t scale;
  uint8_t address_bits;  // 64 or 32
  bool rip_relative;
  int64_t disp;
  // A plain MOV store (88/89/C6/C7/A2/A3): the store is its only effect.
  bool mov_store;
};
struct BlockMemoryOperands {
  std::vector<MemoryOperandInsn> insns;
  // False if the block has a memory access the entries cannot describe
  // (string and stack instructions, FS/GS, 16-bit addressing, bytes that do
  // not decode): then no access can be attributed with certainty.
  bool complete = true;
};

// Decodes x86 instructions of one operand/address-size mode.
// Not thread-safe (one per vCPU).
class X86Decoder {
 public:
  // `bits`: 16, 32 or 64 (the code segment's default size, CS.L / CS.D).
  explicit X86Decoder(int bits);
  ~X86Decoder();
  X86Decoder(const X86Decoder&) = delete;
  X86Decoder& operator=(const X86Decoder&) = delete;

  // Length of the instruction at `code` (n bytes available), 0 if the bytes
  // are not a valid instruction.
  int Length(const uint8_t* code, size_t n);

  // The IN/OUT (not string I/O), RDMSR, WRMSR, RDTSC, RDTSCP and kControl
  // instructions of `code`, n bytes of consecutive instructions starting at
  // linear address `address` (a translation block). If the bytes stop
  // decoding before n (not code, or code of another mode), the rest is
  // scanned byte by byte for those opcodes (every candidate reported, false
  // positives included), as a conservative fallback.
  std::vector<CodeSite> FindSites(const uint8_t* code, size_t n,
                                  uint64_t address);

  // The explicit memory operands of `code` (n bytes of consecutive
  // instructions at `address`).
  BlockMemoryOperands MemoryOperands(const uint8_t* code, size_t n,
                                     uint64_t address);

 private:
  int bits_;
  size_t handle_ = 0;  // Capstone's csh; 0 if cs_open failed
  void* insn_ = nullptr;  // cs_insn* for cs_disasm_iter
  size_t detail_handle_ = 0;  // with CS_OPT_DETAIL, opened on first use
  void* detail_insn_ = nullptr;
};

// The byte-scan fallback of X86Decoder::FindSites on its own (exposed for
// tests): every offset whose bytes could begin one of the sites.
std::vector<CodeSite> ScanSiteCandidates(const uint8_t* code, size_t n,
                                         uint64_t address);

// If the instruction at `code` (n bytes available) is a plain MOV store to
// memory, returns its length in bytes; else 0. Plain MOV stores: 88 and 89
// (MOV r/m, reg) and C6 /0 and C7 /0 (MOV r/m, imm) with a memory operand,
// A2 and A3 (MOV moffs, AL/eAX) (SDM vol. 2, "MOV"). A byte decoder without
// Capstone: the vCPU (emu/cpu/vcpu_delivery.cc: PageFaultErrorCode) uses it
// to tell a faulting store from a load, which Unicorn does not report.
// `code64`: 64-bit mode (REX prefixes; 8-byte moffs unless 67). Otherwise
// the code segment is taken to be 32-bit: an address-size prefix (67) there
// means 16-bit addressing, which is not decoded (0). Operand-size (66) and
// segment prefixes are accepted; any other prefix (LOCK, REP) gives 0.
// Also 0 if the instruction does not fit in n bytes or in 15.
int MovStoreLength(const uint8_t* code, size_t n, bool code64);

}  // namespace irqlab

#endif  // IRQLAB_EMU_CPU_X86_DECODE_H_
