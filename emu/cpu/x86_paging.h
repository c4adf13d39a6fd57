// x86 linear-to-physical translation as the vCPU does it itself, for the
// guest memory it touches on the guest's behalf (IDT gates, descriptors, TSS
// stack pointers and frames during event delivery, code bytes for the
// decoders, MMIO attribution). Unicorn walks the tables for the guest's own
// accesses; this is the vCPU's second walker. Pure: no Unicorn, no host
// state; guest physical memory is read through a function parameter.
//
// Hardware modelled (Intel SDM vol. 3, chapter 4 "Paging"):
//   4.3     32-bit paging: 4 KiB pages, 4 MiB pages when CR4.PSE=1.
//   4.4     PAE paging: 4 PDPTEs at CR3[31:5], 2 MiB and 4 KiB pages.
//   4.5     4-level paging (EFER.LMA=1): 1 GiB, 2 MiB and 4 KiB pages; the
//           linear address must be canonical (bits 63:47 equal).
//   4.6     access rights: R/W and U/S combined over every level (a page is
//           writable / user-accessible only if every entry says so), XD when
//           EFER.NXE=1 (execute-disable if any entry says so); CR0.WP decides
//           whether supervisor writes honour R/W.
//   4.7     page-fault error code bits P, W/R, U/S and I/D.
//   4.10.4  a TLB: a translation stays cached after the guest writes the
//           paging structures, until it is flushed.
// NOT modelled: accessed/dirty flag updates; reserved-bit checks (and the
// RSVD error-code bit: with EFER.NXE=0 bit 63 is ignored, not reserved);
// SMEP, SMAP, protection keys, 5-level paging, PCIDs and global pages (a
// flush drops every entry); PSE-36 (4 MiB pages above 4 GiB); PAT and
// memory types. PAE PDPTEs are read at each walk, not loaded with CR3
// (SDM 4.4.1). A non-canonical address fails like a not-present entry
// (hardware raises #GP or #SS, not #PF). The TLB holds the 4 KiB piece of a
// large page that was used, and caches only successful walks.
#ifndef IRQLAB_EMU_CPU_X86_PAGING_H_
#define IRQLAB_EMU_CPU_X86_PAGING_H_

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/functional/function_ref.h"
#include "emu/core/guest_ram.h"

namespace irqlab {

// Control-register and EFER bits this file and the vCPU test.
inline constexpr uint64_t kCr0Pe = 1ull << 0;    // protected mode
inline constexpr uint64_t kCr0Wp = 1ull << 16;   // write protect (SDM 4.6.1)
inline constexpr uint64_t kCr0Pg = 1ull << 31;   // paging
inline constexpr uint64_t kCr4Pse = 1ull << 4;   // 4 MiB pages, 32-bit paging
inline constexpr uint64_t kCr4Pae = 1ull << 5;   // PAE paging
inline constexpr uint64_t kEferLma = 1ull << 10; // IA-32e mode active
inline constexpr uint64_t kEferNxe = 1ull << 11; // execute-disable enable

// Page-fault error code bits (SDM 4.7).
inline constexpr uint32_t kPfPresent = 1u << 0;  // 0: not present
inline constexpr uint32_t kPfWrite = 1u << 1;
inline constexpr uint32_t kPfUser = 1u << 2;
inline constexpr uint32_t kPfFetch = 1u << 4;  // only with EFER.NXE=1

// The registers that select the paging mode and its rules.
struct PagingRegs {
  uint64_t cr0, cr3, cr4, efer;
};

// The result of one walk: the 4 KiB page of a linear address and the access
// rights combined over every level (SDM 4.6).
struct TlbEntry {
  uint64_t la_page = ~0ull;  // linear address >> 12; ~0: empty
  uint64_t pa_page = 0;
  bool rw = false, us = false, nx = false;
};

// Reads the 8 bytes of guest physical memory at `pa` (8-byte aligned: a
// paging-structure entry). Returns 0, a not-present entry, where there is no
// memory.
using PhysLoad64 = absl::FunctionRef<uint64_t(uint64_t pa)>;

// The 8 bytes of `ram` at `pa`, or 0 if they are not all inside RAM.
inline uint64_t LoadRam64(const GuestRam& ram, uint64_t pa) {
  return ram.Contains(pa, 8) ? ram.Load<uint64_t>(pa) : 0;
}

// Walks the paging structures of `pg` for `la` (SDM 4.3/4.4/4.5, chosen by
// EFER.LMA and CR4.PAE): stores the 4 KiB page of `la` and the combined
// rights in *out and returns true. Returns false, *out unchanged, if an
// entry on the way is not present or `la` is not canonical (4-level paging).
// No permission check (TranslateLinear does that). REQUIRES: CR0.PG=1 in
// `pg`.
bool WalkPageTables(const PagingRegs& pg, uint64_t la, PhysLoad64 load,
                    TlbEntry* out);

inline constexpr size_t kTlbSize = 64;  // entries; a power of two

// A direct-mapped TLB of WalkPageTables results (SDM 4.10.2): filled by
// TranslateLinear, flushed only as a whole. Like hardware, an entry outlives
// a write to the paging structures until Flush() (SDM 4.10.4). Its entries
// are valid only for the PagingRegs they were walked with: flush whenever
// CR0, CR3, CR4 or EFER change.
class Tlb {
 public:
  // The slot `la` maps to; it may hold another page or nothing.
  TlbEntry& Slot(uint64_t la) { return entries_[(la >> 12) & (kTlbSize - 1)]; }
  // The cached translation of `la`'s page, or nullptr.
  const TlbEntry* Lookup(uint64_t la) const {
    const TlbEntry& e = entries_[(la >> 12) & (kTlbSize - 1)];
    return e.la_page == la >> 12 ? &e : nullptr;
  }
  void Flush() { entries_.fill(TlbEntry{}); }

 private:
  std::array<TlbEntry, kTlbSize> entries_{};
};

// Translates `la` for an access of the given kind (`write`; `user`: CPL 3;
// `fetch`: instruction fetch) under `pg`. With paging off the linear address
// is the physical one (its low 32 bits outside IA-32e mode). Otherwise the
// translation comes from `tlb` if it holds `la`'s page, else from a walk
// that fills `tlb`'s slot (a failed walk empties it); tlb == nullptr always
// walks. Returns true and *pa on success; on a fault returns false and the
// #PF error code in *pf_err (SDM 4.7: P=0 not present, P=1 protection
// violation: user access to a supervisor page, write to a read-only page by
// a user or with CR0.WP=1, fetch from an execute-disabled page).
// `load`: any callable uint64_t(uint64_t pa) with PhysLoad64's contract; it
// becomes a PhysLoad64 only on a TLB miss (inline and a template: the TLB
// hit is the interrupt-delivery fast path, and building the FunctionRef
// there cost about 3 instructions per translation).
// REQUIRES: `tlb` holds only translations walked under `pg`.
template <typename Load>
inline bool TranslateLinear(const PagingRegs& pg, Tlb* tlb, uint64_t la,
                            bool write, bool user, bool fetch,
                            const Load& load, uint64_t* pa,
                            uint32_t* pf_err) {
  if (!(pg.cr0 & kCr0Pg)) {
    *pa = (pg.efer & kEferLma) ? la : (la & 0xFFFFFFFF);
    return true;
  }
  const bool nxe = pg.efer & kEferNxe;
  const uint32_t base_err = (write ? kPfWrite : 0) | (user ? kPfUser : 0) |
                            ((fetch && nxe) ? kPfFetch : 0);
  TlbEntry local;
  TlbEntry* slot = tlb != nullptr ? &tlb->Slot(la) : &local;
  if (tlb == nullptr || slot->la_page != la >> 12) {
    if (!WalkPageTables(pg, la, PhysLoad64(load), slot)) {
      slot->la_page = ~0ull;
      *pf_err = base_err;  // not present
      return false;
    }
  }
  // Fields read in place: copying the entry first stalled store forwarding.
  const TlbEntry& walk = *slot;
  const bool wp = pg.cr0 & kCr0Wp;
  if ((user && !walk.us) || (write && !walk.rw && (user || wp)) ||
      (fetch && walk.nx)) {
    *pf_err = base_err | kPfPresent;  // protection violation
    return false;
  }
  *pa = (walk.pa_page << 12) | (la & 0xFFF);
  return true;
}

}  // namespace irqlab

#endif  // IRQLAB_EMU_CPU_X86_PAGING_H_
