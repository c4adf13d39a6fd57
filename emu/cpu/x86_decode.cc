#include "emu/cpu/x86_decode.h"

#include <capstone/capstone.h>

namespace irqlab {
namespace {

// Index of the opcode byte after any legacy prefixes (and REX if `rex`).
size_t SkipPrefixes(const uint8_t* b, size_t n, bool rex) {
  size_t i = 0;
  while (i < n && (b[i] == 0x66 || b[i] == 0x67 || b[i] == 0xF0 || b[i] == 0xF2 ||
                   b[i] == 0xF3 || b[i] == 0x2E || b[i] == 0x36 || b[i] == 0x3E ||
                   b[i] == 0x26 || b[i] == 0x64 || b[i] == 0x65 ||
                   (rex && (b[i] & 0xF0) == 0x40))) {
    ++i;
  }
  return i;
}

// MOV to a control register is 0F 22 /r after any prefixes (Capstone calls
// it plain MOV).
bool IsMovToCr(const uint8_t* b, size_t n, bool rex) {
  const size_t i = SkipPrefixes(b, n, rex);
  return i + 1 < n && b[i] == 0x0F && b[i + 1] == 0x22;
}

// MOV r/m, r and MOV r/m, imm (88/89/C6/C7) or MOV moffs, AL/eAX (A2/A3).
bool IsMovStoreOpcode(const uint8_t* b, size_t n, bool rex) {
  const size_t i = SkipPrefixes(b, n, rex);
  if (i >= n) return false;
  const uint8_t op = b[i];
  return op == 0x88 || op == 0x89 || op == 0xC6 || op == 0xC7 || op == 0xA2 || op == 0xA3;
}

// MOVS/CMPS/STOS/LODS/SCAS/INS/OUTS (one-byte opcodes A4-A7, AA-AF, 6C-6F).
bool IsStringOp(const uint8_t* b, size_t n, bool rex) {
  const size_t i = SkipPrefixes(b, n, rex);
  if (i >= n) return false;
  const uint8_t op = b[i];
  return (op >= 0xA4 && op <= 0xA7) || (op >= 0xAA && op <= 0xAF) ||
         (op >= 0x6C && op <= 0x6F);
}

// RAX..R15 (any width) -> 0..15 with the register's width in bits, or -1.
int GprNumber(unsigned reg, int* bits) {
  static constexpr unsigned k64[] = {X86_REG_RAX, X86_REG_RCX, X86_REG_RDX, X86_REG_RBX,
                                     X86_REG_RSP, X86_REG_RBP, X86_REG_RSI, X86_REG_RDI,
                                     X86_REG_R8,  X86_REG_R9,  X86_REG_R10, X86_REG_R11,
                                     X86_REG_R12, X86_REG_R13, X86_REG_R14, X86_REG_R15};
  static constexpr unsigned k32[] = {X86_REG_EAX, X86_REG_ECX, X86_REG_EDX, X86_REG_EBX,
                                     X86_REG_ESP, X86_REG_EBP, X86_REG_ESI, X86_REG_EDI,
                                     X86_REG_R8D, X86_REG_R9D, X86_REG_R10D, X86_REG_R11D,
                                     X86_REG_R12D, X86_REG_R13D, X86_REG_R14D, X86_REG_R15D};
  for (int i = 0; i < 16; ++i) {
    if (reg == k64[i]) return *bits = 64, i;
    if (reg == k32[i]) return *bits = 32, i;
  }
  return -1;
}

// Instructions whose memory accesses are implicit (the stack) or relative to
// an FS/GS base. (String instructions: IsStringOp.)
bool HasOpaqueMemoryAccess(const cs_insn& insn) {
  const cs_x86& x = insn.detail->x86;
  for (uint8_t i = 0; i < insn.detail->regs_read_count; ++i) {
    const unsigned r = insn.detail->regs_read[i];
    if (r == X86_REG_RSP || r == X86_REG_ESP || r == X86_REG_SP) return true;
  }
  for (uint8_t i = 0; i < insn.detail->regs_write_count; ++i) {
    const unsigned r = insn.detail->regs_write[i];
    if (r == X86_REG_RSP || r == X86_REG_ESP || r == X86_REG_SP) return true;
  }
  for (uint8_t i = 0; i < x.op_count; ++i) {
    if (x.operands[i].type != X86_OP_MEM) continue;
    const x86_op_mem& m = x.operands[i].mem;
    if (m.segment == X86_REG_FS || m.segment == X86_REG_GS) return true;
  }
  return false;
}

}  // namespace

X86Decoder::X86Decoder(int bits) : bits_(bits) {
  const cs_mode mode = bits == 64   ? CS_MODE_64
                       : bits == 32 ? CS_MODE_32
                                    : CS_MODE_16;
  csh h = 0;
  if (cs_open(CS_ARCH_X86, mode, &h) != CS_ERR_OK) return;
  handle_ = h;
  insn_ = cs_malloc(h);  // detail stays off: only ids and sizes are needed
}

X86Decoder::~X86Decoder() {
  if (insn_ != nullptr) cs_free(static_cast<cs_insn*>(insn_), 1);
  if (detail_insn_ != nullptr) cs_free(static_cast<cs_insn*>(detail_insn_), 1);
  if (detail_handle_ != 0) {
    csh h = detail_handle_;
    cs_close(&h);
  }
  if (handle_ != 0) {
    csh h = handle_;
    cs_close(&h);
  }
}

int X86Decoder::Length(const uint8_t* code, size_t n) {
  if (insn_ == nullptr) return 0;
  uint64_t address = 0;
  auto* insn = static_cast<cs_insn*>(insn_);
  if (!cs_disasm_iter(handle_, &code, &n, &address, insn)) return 0;
  return insn->size;
}

std::vector<CodeSite> X86Decoder::FindSites(const uint8_t* code, size_t n,
                                            uint64_t address) {
  std::vector<CodeSite> sites;
  if (insn_ == nullptr) return ScanSiteCandidates(code, n, address);
  auto* insn = static_cast<cs_insn*>(insn_);
  const uint8_t* p = code;
  size_t left = n;
  uint64_t at = address;
  while (left > 0 && cs_disasm_iter(handle_, &p, &left, &at, insn)) {
    CodeSiteKind kind;
    switch (insn->id) {
      case X86_INS_IN:
      case X86_INS_OUT: kind = CodeSiteKind::kPortIo; break;
      case X86_INS_RDMSR: kind = CodeSiteKind::kRdmsr; break;
      case X86_INS_WRMSR: kind = CodeSiteKind::kWrmsr; break;
      case X86_INS_RDTSC: kind = CodeSiteKind::kRdtsc; break;
      case X86_INS_RDTSCP: kind = CodeSiteKind::kRdtscp; break;
      case X86_INS_LMSW:
      case X86_INS_CLTS:
      case X86_INS_LGDT:
      case X86_INS_LIDT:
      case X86_INS_INVLPG:
      case X86_INS_INVPCID: kind = CodeSiteKind::kControl; break;
      case X86_INS_MOV:
        if (bits_ == 64 && DecodeCr8Move(insn->bytes, insn->size)) {
          kind = CodeSiteKind::kCr8;
        } else if (IsMovToCr(insn->bytes, insn->size, bits_ == 64)) {
          kind = CodeSiteKind::kControl;
        } else {
          continue;
        }
        break;
      default: continue;
    }
    sites.push_back(CodeSite{insn->address, static_cast<uint8_t>(insn->size), kind});
  }
  if (left > 0) {  // undecodable from here on
    for (const CodeSite& s : ScanSiteCandidates(p, left, at)) sites.push_back(s);
  }
  return sites;
}

BlockMemoryOperands X86Decoder::MemoryOperands(const uint8_t* code, size_t n,
                                               uint64_t address) {
  BlockMemoryOperands out;
  if (detail_handle_ == 0 && insn_ != nullptr) {
    const cs_mode mode = bits_ == 64 ? CS_MODE_64 : bits_ == 32 ? CS_MODE_32 : CS_MODE_16;
    csh h = 0;
    if (cs_open(CS_ARCH_X86, mode, &h) == CS_ERR_OK) {
      cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
      detail_handle_ = h;
      detail_insn_ = cs_malloc(h);
    }
  }
  if (detail_insn_ == nullptr || bits_ == 16) {
    out.complete = false;
    return out;
  }
  auto* insn = static_cast<cs_insn*>(detail_insn_);
  const uint8_t* p = code;
  size_t left = n;
  uint64_t at = address;
  while (left > 0 && cs_disasm_iter(detail_handle_, &p, &left, &at, insn)) {
    const cs_x86& x = insn->detail->x86;
    const bool rex = bits_ == 64;
    if (insn->id == X86_INS_LEA || insn->id == X86_INS_NOP) continue;  // no access
    if (HasOpaqueMemoryAccess(*insn) || IsStringOp(insn->bytes, insn->size, rex)) {
      out.complete = false;
      continue;
    }
    for (uint8_t i = 0; i < x.op_count; ++i) {
      const cs_x86_op& op = x.operands[i];
      if (op.type != X86_OP_MEM) continue;
      MemoryOperandInsn m{};
      m.address = insn->address;
      m.length = static_cast<uint8_t>(insn->size);
      m.size = op.size;
      m.reads = op.access & CS_AC_READ;
      m.writes = op.access & CS_AC_WRITE;
      m.mov_store = m.writes && !m.reads && IsMovStoreOpcode(insn->bytes, insn->size, rex);
      m.scale = static_cast<uint8_t>(op.mem.scale);
      m.disp = op.mem.disp;
      m.base = m.index = -1;
      m.address_bits = x.addr_size == 8 ? 64 : x.addr_size == 4 ? 32 : 16;
      int bits = 0;
      bool ok = m.address_bits != 16;
      if (op.mem.base == X86_REG_RIP) {
        m.rip_relative = true;
      } else if (op.mem.base != X86_REG_INVALID) {
        m.base = static_cast<int8_t>(GprNumber(op.mem.base, &bits));
        ok &= m.base >= 0;
      }
      if (op.mem.index != X86_REG_INVALID) {
        m.index = static_cast<int8_t>(GprNumber(op.mem.index, &bits));
        ok &= m.index >= 0;
      }
      if (!ok || (!m.reads && !m.writes)) {
        out.complete = false;
        continue;
      }
      out.insns.push_back(m);
    }
  }
  if (left > 0) out.complete = false;  // undecodable rest
  return out;
}

std::vector<CodeSite> ScanSiteCandidates(const uint8_t* code, size_t n,
                                         uint64_t address) {
  std::vector<CodeSite> sites;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t b = code[i];
    const uint8_t b1 = i + 1 < n ? code[i + 1] : 0;
    const uint64_t a = address + i;
    if (b >= 0xEC && b <= 0xEF) {  // IN/OUT with DX
      sites.push_back({a, 1, CodeSiteKind::kPortIo});
    } else if (b >= 0xE4 && b <= 0xE7) {  // IN/OUT with imm8
      sites.push_back({a, 2, CodeSiteKind::kPortIo});
    } else if (b == 0x0F && b1 == 0x30) {
      sites.push_back({a, 2, CodeSiteKind::kWrmsr});
    } else if (b == 0x0F && b1 == 0x32) {
      sites.push_back({a, 2, CodeSiteKind::kRdmsr});
    } else if (b == 0x0F && b1 == 0x31) {
      sites.push_back({a, 2, CodeSiteKind::kRdtsc});
    } else if (b == 0x0F && b1 == 0x01 && i + 2 < n && code[i + 2] == 0xF9) {
      sites.push_back({a, 3, CodeSiteKind::kRdtscp});
    } else if (b == 0x0F && (b1 == 0x22 || b1 == 0x06 || b1 == 0x01)) {
      sites.push_back({a, 2, CodeSiteKind::kControl});  // MOV CR, CLTS, group 7
    } else if (b == 0x0F && b1 == 0x38 && i + 2 < n && code[i + 2] == 0x82) {
      sites.push_back({a, 3, CodeSiteKind::kControl});  // INVPCID
    }
  }
  return sites;
}

std::optional<Cr8Move> DecodeCr8Move(const uint8_t* code, size_t n) {
  const size_t i = SkipPrefixes(code, n, /*rex=*/false);
  size_t j = i;
  uint8_t rex = 0;
  if (j < n && (code[j] & 0xF0) == 0x40) rex = code[j++];
  if (j + 3 > n) return std::nullopt;
  if (code[j] != 0x0F || (code[j + 1] != 0x22 && code[j + 1] != 0x20)) return std::nullopt;
  const uint8_t modrm = code[j + 2];
  // The ModRM.mod field is ignored: the operand is always a register.
  const int cr = ((rex & 4) ? 8 : 0) | ((modrm >> 3) & 7);
  if (cr != 8) return std::nullopt;
  return Cr8Move{.to_cr8 = code[j + 1] == 0x22,
                 .gpr = ((rex & 1) ? 8 : 0) | (modrm & 7),
                 .length = static_cast<int>(j + 3)};
}

int MovStoreLength(const uint8_t* code, size_t n, bool code64) {
  size_t i = 0;
  bool opsize = false, addr_prefix = false;
  for (; i < n; ++i) {
    const uint8_t b = code[i];
    if (b == 0x66) {
      opsize = true;
    } else if (b == 0x67) {
      addr_prefix = true;
    } else if (!(b == 0x26 || b == 0x2E || b == 0x36 || b == 0x3E ||
                 b == 0x64 || b == 0x65)) {
      break;  // not a segment override: REX or the opcode
    }
  }
  if (addr_prefix && !code64) return 0;  // 16-bit addressing
  bool rexw = false;
  if (code64 && i < n && (code[i] & 0xF0) == 0x40) rexw = code[i++] & 8;
  if (i >= n) return 0;
  const uint8_t op = code[i++];
  if (op == 0xA2 || op == 0xA3) {
    i += (code64 && !addr_prefix) ? 8 : 4;  // moffs: the address size
  } else {
    if (op != 0x88 && op != 0x89 && op != 0xC6 && op != 0xC7) return 0;
    if (i >= n) return 0;
    const uint8_t modrm = code[i++];
    const int mod = modrm >> 6, rm = modrm & 7;
    if (mod == 3) return 0;  // register destination
    if ((op == 0xC6 || op == 0xC7) && ((modrm >> 3) & 7) != 0) return 0;
    if (rm == 4) {  // SIB
      if (i >= n) return 0;
      const uint8_t sib = code[i++];
      if (mod == 0 && (sib & 7) == 5) i += 4;  // no base: disp32
    } else if (mod == 0 && rm == 5) {
      i += 4;  // disp32 (RIP-relative in 64-bit mode)
    }
    if (mod == 1) i += 1;
    if (mod == 2) i += 4;
    if (op == 0xC6) i += 1;
    if (op == 0xC7) i += (opsize && !rexw) ? 2 : 4;  // REX.W: imm32
  }
  return i <= n && i <= 15 ? static_cast<int>(i) : 0;
}

}  // namespace irqlab
