// Intel VT-d DMA remapping, legacy mode: root table -> context table ->
// second-level page tables, with a context-cache and an IOTLB that are real
// caches (stale until invalidated), and a DmaSink decorator that puts the
// translation into a device's DMA path.
//
// Spec: Intel Virtualization Technology for Directed I/O, rev. 4.x.
//   3.4.2  legacy-mode address translation (root/context/second-level walk)
//   3.6/3.7 second-level translation, 3/4/5-level, 4 KiB / 2 MiB / 1 GiB
//          pages, access rights accumulated over every level
//   3.14   "Handling Requests to Interrupt Address Range": requests to
//          0xFEEx_xxxx are interrupt requests, never DMA-translated
//   6.2.2  context-cache, 6.2.4 IOTLB; 6.5.1 register-based invalidation
//          (CCMD_REG CIRG/FM/SID/DID, IOTLB_REG IIRG/DID + IVA_REG
//          ADDR/AM/IH) — the queued-invalidation descriptors (6.5.2.1
//          context-cache, 6.5.2.3 IOTLB) have the same granularities
//   7      non-recoverable DMA-remapping fault reasons 1h-Dh (legacy mode),
//          qualified faults and FPD
//   9.1    root entry, 9.3 context entry, 9.8 second-level paging entries
// (Section numbers from rev. 4.x as recalled; titles given where a number
// might have moved between revisions.)
//
// Not modelled: scalable mode (RTADDR.TTM != 00b, PASID tables, first-level
// and nested translation), ATS Translation Requests and page requests,
// caching mode (CAP.CM: not-present entries are never cached here),
// paging-structure caches (an IOTLB miss re-reads every level, so the
// invalidation hint IH has no observable effect — permitted, since hardware
// may always invalidate more than asked), snoop control (SL-PTE bit 11 is
// reserved: ECAP.SC=0), execute requests, memory types (EMT/IPAT ignored),
// Accessed/Dirty bits (never written back).
//
// Thread-compatible: the machine is single-threaded.
#ifndef IRQLAB_IOMMU_DMA_REMAP_H_
#define IRQLAB_IOMMU_DMA_REMAP_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "emu/core/clock.h"
#include "emu/core/dma_sink.h"
#include "emu/core/guest_ram.h"
#include "emu/core/trace.h"
#include "iommu/vtd_unit.h"

namespace irqlab {
namespace vtd {

// ---------------------------------------------------------------------------
// Fault reasons (VT-d ch. 7, non-recoverable faults of legacy-mode DMA
// remapping). The comment is the spec's condition; DmaFaultReasonString()
// gives Linux's text (drivers/iommu/intel/dmar.c, dma_remap_fault_reasons).
// "Qualified" faults (those found after the context entry was read) are
// suppressed by the context entry's FPD; the others are always reported.
enum class DmaFaultReason : uint8_t {
  // P field of the root entry is 0. Not qualified.
  kRootNotPresent = 0x1,
  // P field of the context entry is 0. Qualified (FPD is evaluated even when
  // P=0, 9.3).
  kContextNotPresent = 0x2,
  // Invalid programming of the context entry: AW not in CAP.SAGAW, TT not
  // supported (01b without ECAP.DT, 10b without ECAP.PT, 11b), or the access
  // to the top second-level table referenced by SLPTPTR failed.
  kContextInvalid = 0x3,
  // Input address above 2^X - 1, X = min(MGAW, AW of the context entry).
  kAddressBeyondAw = 0x4,
  // Write request without write permission (some level has W=0, including
  // a not-present entry R=W=0).
  kWriteDenied = 0x5,
  // Read request without read permission (likewise R=0).
  kReadDenied = 0x6,
  // Access to a second-level paging entry referenced through the ADDR field
  // of a preceding entry failed (table outside memory).
  kPagingEntryAccess = 0x7,
  // Access to the root entry through RTADDR failed. Not qualified.
  kRootTableAccess = 0x8,
  // Access to the context entry through the root entry's CTP failed. Not
  // qualified.
  kContextTableAccess = 0x9,
  // Non-zero reserved field in a present root entry. Not qualified.
  kRootReserved = 0xA,
  // Non-zero reserved field in a present context entry.
  kContextReserved = 0xB,
  // Non-zero reserved field in a second-level paging entry with R or W set
  // (includes PS=1 where the page size is not supported / not allowed).
  kPagingEntryReserved = 0xC,
  // A Translated Request (AT=10b) through a context entry whose TT does not
  // allow it (TT != 01b).
  kTranslatedBlocked = 0xD,
};

// Linux's string for a DMA-remapping fault reason ("Unknown" beyond 0xD).
const char* DmaFaultReasonString(uint8_t reason);

// One DMA-remapping fault: what a fault recording register holds (11.4.14:
// SID, FI = address, T = read/write, FR = reason).
struct DmaFault {
  DmaFaultReason reason = DmaFaultReason::kRootNotPresent;
  uint16_t rid = 0;      // source id (requester id) of the request
  uint64_t address = 0;  // the request's input address (not page-aligned;
                         // FRCD.FI keeps bits 63:12)
  bool write = false;    // FRCD.T: false = read request
};

// Linux's log line for `fault`, as current kernels print it (dmar.c,
// dmar_fault_do_one), e.g.
//   DMAR: [DMA Read NO_PASID] Request device [02:00.0] fault addr 0x5000
//   [fault reason 0x06] PTE Read access is not set
// (one line; the address is page-aligned as FRCD.FI is).
std::string FormatDmaFaultLog(const DmaFault& fault);

// PCIe Address Type of a memory request (PCIe 2.2.4.1).
enum class AddressType : uint8_t {
  kUntranslated = 0,  // AT=00b: an IOVA, translated by the second level
  kTranslated = 2,    // AT=10b: already a host address (device-TLB hit)
};

// Result of one translation.
struct [[nodiscard]] TranslateResult {
  bool ok = false;
  uint64_t hpa = 0;  // valid iff ok
  // Size of the mapping containing the address (4 KiB, 2 MiB, 1 GiB); for
  // pass-through and translated requests 4 KiB. Valid iff ok.
  uint64_t page_size = 0;
  DmaFault fault;  // valid iff !ok
  // !ok only: the context entry had FPD=1 — the request is blocked but the
  // fault must not be recorded or reported (7.1.1, 9.3).
  bool fpd = false;
  // Domain id of the context entry used (valid once the entry was decoded).
  uint16_t domain_id = 0;
  bool pass_through = false;  // ok via TT=10b (or a translated request)
  // Cache behaviour of this lookup (for traces and tests).
  bool context_cache_hit = false;
  bool iotlb_hit = false;
};

// Hardware capabilities that change translation (CAP/ECAP, 11.4.2-11.4.3).
struct DmaRemapOptions {
  // CAP.SAGAW: bit 1 = 39-bit (3-level), bit 2 = 48-bit (4-level), bit 3 =
  // 57-bit (5-level). The context entry's AW must name a supported width.
  uint8_t sagaw = 0b0110;
  // CAP.MGAW + 1: maximum guest (input) address width, 30..57.
  int mgaw = 48;
  // Host address width (DMAR table HAW): address bits at and above it in
  // root/context/paging entries are reserved.
  int haw = 39;
  // CAP.SLLPS: bit 0 = 2 MiB pages, bit 1 = 1 GiB pages.
  uint8_t sllps = 0b11;
  // Implemented domain-id bits (CAP.ND: 4 + 2*ND). DID bits above are
  // reserved (9.3).
  int domain_id_bits = 16;
  bool pass_through = true;  // ECAP.PT: TT=10b allowed
  bool device_tlb = false;   // ECAP.DT: TT=01b allowed, SL-PTE TM not reserved
  // Capacities; 0 = no cache (every request re-reads the tables, as emulators
  // that do not model the caches). When an insertion would exceed the
  // capacity the whole cache is flushed (simple and deterministic; hardware
  // may drop cached entries at any time).
  size_t context_cache_capacity = 1024;
  size_t iotlb_capacity = 4096;
};

// The options that make translation enforce what the unit reports in its
// CAP/ECAP registers (11.4.2/11.4.3): SAGAW, MGAW, SLLPS, ND (4 + 2*ND
// domain-id bits), ECAP.PT and ECAP.DT. `haw` and the cache capacities are
// not in CAP and keep their defaults. A machine wiring a DmaRemapper behind
// a VtdUnit should use DmaRemapOptionsFromCap(unit.cap().raw,
// unit.ecap().raw) so a guest that trusts CAP is never surprised.
DmaRemapOptions DmaRemapOptionsFromCap(uint64_t cap, uint64_t ecap);

struct DmaRemapStats {
  uint64_t context_cache_hits = 0;
  uint64_t context_cache_misses = 0;
  uint64_t iotlb_hits = 0;
  uint64_t iotlb_misses = 0;
  uint64_t page_walks = 0;  // completed walks (each fills one IOTLB entry)
  uint64_t faults = 0;      // every fault, FPD or not
  uint64_t context_invalidations = 0;  // calls of Invalidate*Context*
  uint64_t iotlb_invalidations = 0;    // calls of Invalidate*Iotlb*
};

// ---------------------------------------------------------------------------
// DmaRemapper: the translation engine of one remapping unit. Reads root,
// context and paging entries from guest RAM on cache misses; a table that
// lies (partly) outside RAM is the matching "error accessing" fault, never
// a crash.
//
// Example (the unit after SRTP and the invalidations software must issue):
//
//   DmaRemapper remap(ram, DmaRemapOptions());
//   remap.SetRootTableAddress(rtaddr);            // GCMD.SRTP
//   remap.InvalidateContextCacheGlobal();         // CCMD.ICC, CIRG=01b
//   remap.InvalidateIotlbGlobal();                // IOTLB_REG.IVT, IIRG=01b
//   TranslateResult r = remap.Translate(0x0200, 0x1000, /*write=*/true);
//   if (!r.ok && !r.fpd) RecordFault(r.fault);
//
// The caches are never flushed implicitly (not by SetRootTableAddress
// either): software must invalidate, as on hardware (10.4.4 SRTP note).
class DmaRemapper {
 public:
  // `ram` is not owned and may be null (every table access then faults).
  DmaRemapper(const GuestRam* ram, const DmaRemapOptions& options);

  const DmaRemapOptions& options() const { return options_; }

  // RTADDR.RTA (bits 63:12 of the register; low bits are ignored here — the
  // unit validates RTADDR.TTM). Takes effect for context-cache misses.
  void SetRootTableAddress(uint64_t rtaddr);
  uint64_t root_table_address() const { return rta_; }

  // Translates one request of `rid` at `address` (a DMA of at most one page;
  // callers split at page boundaries). Fills caches on success.
  TranslateResult Translate(uint16_t rid, uint64_t address, bool write,
                            AddressType at = AddressType::kUntranslated);

  // --- Context-cache invalidation (6.5.1.1 CCMD.CIRG / 6.5.2.1) ---
  void InvalidateContextCacheGlobal();
  // Entries tagged with domain `did`.
  void InvalidateContextCacheDomain(uint16_t did);
  // Entries of domain `did` whose source id matches `sid` with the low
  // `function_mask` bits of the function number ignored: FM 00b none,
  // 01b bit 2, 10b bits 2:1, 11b bits 2:0 (CCMD.FM).
  void InvalidateContextCacheDevice(uint16_t did, uint16_t sid,
                                    uint8_t function_mask);

  // --- IOTLB invalidation (6.5.1.2 IOTLB_REG.IIRG + IVA_REG / 6.5.2.3) ---
  void InvalidateIotlbGlobal();
  void InvalidateIotlbDomain(uint16_t did);
  // Page-selective-within-domain: every entry of `did` overlapping the
  // naturally aligned 2^(12+am)-byte region containing `address` (IVA.ADDR,
  // IVA.AM; a cached large page overlapping it is invalidated too).
  // `invalidation_hint` (IVA.IH) would preserve paging-structure caches;
  // none are modelled, so it has no effect.
  void InvalidateIotlbPages(uint16_t did, uint64_t address, uint8_t am,
                            bool invalidation_hint);

  const DmaRemapStats& stats() const { return stats_; }
  void ResetStats() { stats_ = DmaRemapStats(); }
  size_t context_cache_size() const { return context_cache_.size(); }
  size_t iotlb_size() const { return iotlb_.size(); }

 private:
  // Decoded, validated present context entry (what the context-cache holds).
  struct Context {
    uint16_t did = 0;
    uint8_t tt = 0;      // 00b, 01b or 10b
    uint8_t levels = 0;  // 3, 4 or 5
    int aw = 0;          // 39, 48 or 57
    bool fpd = false;
    uint64_t slptptr = 0;
  };
  // A cached leaf translation (6.2.4): tags (did, page) in the key.
  struct IotlbEntry {
    uint64_t hpa_base = 0;
    uint16_t did = 0;
    uint8_t level = 1;  // 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB
    bool read = false;
    bool write = false;
  };

  // Root + context lookup; on failure fills `out` (fault, fpd) and returns
  // false.
  bool LookupContext(uint16_t rid, uint64_t address, bool write, Context* ctx,
                     TranslateResult* out);
  // Second-level walk; on success inserts into the IOTLB and returns it.
  bool Walk(const Context& ctx, uint16_t rid, uint64_t address, bool write,
            IotlbEntry* entry, TranslateResult* out);
  const IotlbEntry* IotlbLookup(uint16_t did, uint64_t address) const;
  void IotlbInsert(uint64_t address, const IotlbEntry& e);
  void Fail(TranslateResult* out, DmaFaultReason reason, uint16_t rid,
            uint64_t address, bool write, bool fpd);

  static uint64_t IotlbKey(uint16_t did, int level, uint64_t address) {
    const int shift = 12 + 9 * (level - 1);
    return ((address >> shift) << 18) | (static_cast<uint64_t>(level) << 16) |
           did;
  }

  // --- static config ---
  const GuestRam* ram_;
  const DmaRemapOptions options_;
  uint64_t haw_mask_;  // bits haw-1:12
  // --- volatile state ---
  uint64_t rta_ = 0;
  absl::flat_hash_map<uint16_t, Context> context_cache_;
  absl::flat_hash_map<uint64_t, IotlbEntry> iotlb_;
  size_t iotlb_count_by_level_[4] = {0, 0, 0, 0};  // index = level
  DmaRemapStats stats_;
};

// ---------------------------------------------------------------------------
// RemappingDmaSink: the DMA-remapping decorator on a device's DmaSink chain.
//
//   device --Write(rid, iova)--> RemappingDmaSink --Write(rid, hpa)--> next
//                                   | fault (not FPD)
//                                   v
//                                on_fault(DmaFault)  (the unit's FRCD)
//
// With translation disabled (GSTS.TE=0, the default) requests pass unchanged.
// Requests touching 0xFEE00000-0xFEEFFFFF are interrupt requests (3.14) and
// are forwarded untranslated (interrupt remapping sits behind `next`).
// A transfer is split at page boundaries (the mapping size) and every piece
// is translated before anything is forwarded, so a fault writes nothing.
// (A later piece failing in `next`, e.g. a master abort, can leave earlier
// pieces of a write written; reads leave `out` unchanged on any failure.)
class RemappingDmaSink : public DmaSink {
 public:
  using FaultCallback = std::function<void(const DmaFault&)>;

  // None owned. `remapper` and `next` must be non-null; `on_fault`, `tracer`
  // and `clock` may be empty/null.
  RemappingDmaSink(DmaRemapper* remapper, DmaSink* next, FaultCallback on_fault,
                   Tracer* tracer = nullptr, const Clock* clock = nullptr);

  // GSTS.TE.
  void set_translation_enabled(bool enabled) { enabled_ = enabled; }
  bool translation_enabled() const { return enabled_; }

  // On success as `next`. A DMA-remapping fault returns PermissionDenied
  // (whether or not FPD suppressed its recording) and nothing is forwarded.
  absl::Status Write(uint16_t requester_id, uint64_t address,
                     absl::Span<const uint8_t> data) override;
  absl::Status Read(uint16_t requester_id, uint64_t address,
                    absl::Span<uint8_t> out) override;

 private:
  struct Piece {
    uint64_t hpa;
    uint64_t len;
  };
  // Translates [address, address+len) into pieces; on a fault reports it and
  // returns PermissionDenied.
  absl::Status TranslateRange(uint16_t rid, uint64_t address, uint64_t len,
                              bool write);
  void TraceEvent(trace::Stage stage, uint16_t rid, uint64_t address,
                  uint64_t data, const std::string& detail);

  DmaRemapper* remapper_;
  DmaSink* next_;
  FaultCallback on_fault_;
  Tracer* tracer_;
  const Clock* clock_;
  bool enabled_ = false;
  std::vector<Piece> pieces_;  // scratch, reused
};

// The VT-d unit's DMA-side hooks driving `remap` and `sink`: SRTP sets
// the root table, TE enables translation, context-cache and IOTLB
// invalidations (register-based or queued) reach the remapper's caches.
// Neither pointer is owned; both must outlive the unit's use of the hooks.
VtdDmaHooks MakeDmaHooks(DmaRemapper* remap, RemappingDmaSink* sink);

}  // namespace vtd
}  // namespace irqlab

#endif  // IRQLAB_IOMMU_DMA_REMAP_H_
