#include "emu/x86_decode.h"

#include <capstone/capstone.h>

namespace irqlab {
namespace {

// MOV to a control register is 0F 22 /r after any prefixes (Capstone calls
// it plain MOV).
bool IsMovToCr(const uint8_t* b, size_t n, bool rex) {
  size_t i = 0;
  while (i < n && (b[i] == 0x66 || b[i] == 0x67 || b[i] == 0xF0 || b[i] == 0xF2 ||
                   b[i] == 0xF3 || b[i] == 0x2E || b[i] == 0x36 || b[i] == 0x3E ||
                   b[i] == 0x26 || b[i] == 0x64 || b[i] == 0x65 ||
                   (rex && (b[i] & 0xF0) == 0x40))) {
    ++i;
  }
  return i + 1 < n && b[i] == 0x0F && b[i + 1] == 0x22;
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
        if (!IsMovToCr(insn->bytes, insn->size, bits_ == 64)) continue;
        kind = CodeSiteKind::kControl;
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

}  // namespace irqlab
