// The x86 page walk (Intel SDM vol. 3, 4.3 32-bit, 4.4 PAE and 4.5 4-level
// paging) with the access rights of SDM 4.6; what it does not model is listed
// in x86_paging.h.
#include "emu/cpu/x86_paging.h"

namespace irqlab {
namespace {

constexpr uint64_t kAddrMask = 0x000FFFFFFFFFF000ull;  // bits 51:12 of an entry
constexpr uint64_t kPresent = 1ull << 0;
constexpr uint64_t kPageSize = 1ull << 7;  // PS: this entry maps a page

}  // namespace

bool WalkPageTables(const PagingRegs& pg, uint64_t la, PhysLoad64 load,
                    TlbEntry* out) {
  bool rw = true, us = true, nx = false;
  const bool nxe = pg.efer & kEferNxe;
  auto perms = [&](uint64_t e, bool has_nx) {
    rw &= (e >> 1) & 1;
    us &= (e >> 2) & 1;
    if (has_nx) nx |= e >> 63;
  };
  auto done = [&](uint64_t phys) {
    *out = TlbEntry{la >> 12, phys >> 12, rw, us, nx};
    return true;
  };
  if (pg.efer & kEferLma) {  // 4-level: PML4, PDPT (1 GiB), PD (2 MiB), PT
    int64_t s = static_cast<int64_t>(la) >> 47;
    if (s != 0 && s != -1) return false;
    uint64_t table = pg.cr3 & kAddrMask;
    for (int level = 3; level >= 0; --level) {
      uint64_t e = load(table + ((la >> (12 + 9 * level)) & 511) * 8);
      if (!(e & kPresent)) return false;
      perms(e, nxe);
      if (level > 0 && level < 3 && (e & kPageSize)) {
        uint64_t mask = (1ull << (12 + 9 * level)) - 1;
        return done((e & kAddrMask & ~mask) | (la & mask));
      }
      table = e & kAddrMask;
    }
    return done(table | (la & 0xFFF));
  }
  la &= 0xFFFFFFFF;
  if (pg.cr4 & kCr4Pae) {  // PAE: PDPTE (no rights), PD (2 MiB), PT
    uint64_t pdpte = load((pg.cr3 & 0xFFFFFFE0) + ((la >> 30) & 3) * 8);
    if (!(pdpte & kPresent)) return false;
    uint64_t pde = load((pdpte & kAddrMask) + ((la >> 21) & 511) * 8);
    if (!(pde & kPresent)) return false;
    perms(pde, nxe);
    if (pde & kPageSize)
      return done((pde & 0x000FFFFFFFE00000ull) | (la & 0x1FFFFF));
    uint64_t pte = load((pde & kAddrMask) + ((la >> 12) & 511) * 8);
    if (!(pte & kPresent)) return false;
    perms(pte, nxe);
    return done((pte & kAddrMask) | (la & 0xFFF));
  }
  // 32-bit paging: 4-byte entries, read as half of an aligned 8-byte load.
  auto load32 = [&](uint64_t a) {
    return static_cast<uint32_t>(load(a & ~7ull) >> ((a & 4) * 8));
  };
  uint32_t pde = load32((pg.cr3 & 0xFFFFF000) + ((la >> 22) & 1023) * 4);
  if (!(pde & kPresent)) return false;
  perms(pde, false);  // 32-bit paging has no XD bit
  if ((pde & kPageSize) && (pg.cr4 & kCr4Pse))
    return done((pde & 0xFFC00000) | (la & 0x3FFFFF));
  uint32_t pte = load32((pde & 0xFFFFF000) + ((la >> 12) & 1023) * 4);
  if (!(pte & kPresent)) return false;
  perms(pte, false);
  return done((pte & 0xFFFFF000) | (la & 0xFFF));
}

}  // namespace irqlab
