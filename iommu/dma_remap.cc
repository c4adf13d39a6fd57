// VT-d legacy-mode DMA remapping: see dma_remap.h for the spec sections.
#include "iommu/dma_remap.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "emu/core/msi.h"
#include "emu/core/status_macros.h"
#include "iommu/vtd_regs.h"

namespace irqlab {
namespace vtd {
namespace {

constexpr uint64_t kPageSize = 4096;

// Root entry, legacy mode (9.1).
constexpr uint64_t kRootPresent = 1ull << 0;
constexpr uint64_t kRootLoReservedLow = 0xFFEull;  // bits 11:1

// Context entry, legacy mode (9.3).
constexpr uint64_t kCtxPresent = 1ull << 0;
constexpr uint64_t kCtxFpd = 1ull << 1;
constexpr int kCtxTtShift = 2;                    // bits 3:2
constexpr uint64_t kCtxLoReservedLow = 0xFF0ull;  // bits 11:4
constexpr uint64_t kCtxHiAwMask = 0x7;            // bits 66:64
constexpr uint64_t kCtxHiReserved71 = 1ull << 7;  // bit 71 (70:67 ignored)
constexpr int kCtxHiDidShift = 8;                 // bits 87:72
constexpr uint64_t kCtxHiReservedHigh = ~((1ull << 24) - 1);  // bits 127:88

constexpr uint8_t kTtUntranslated = 0b00;
constexpr uint8_t kTtDeviceTlb = 0b01;
constexpr uint8_t kTtPassThrough = 0b10;

// Second-level paging entries (9.8).
constexpr uint64_t kSlRead = 1ull << 0;
constexpr uint64_t kSlWrite = 1ull << 1;
constexpr uint64_t kSlPageSize = 1ull << 7;
constexpr uint64_t kSlSnoop = 1ull << 11;  // reserved: ECAP.SC=0
constexpr uint64_t kSlTm = 1ull << 62;     // leaf: reserved unless ECAP.DT
constexpr uint64_t kSlAddrField = 0x000FFFFFFFFFF000ull;  // bits 51:12


int LevelShift(int level) { return 12 + 9 * (level - 1); }

}  // namespace

const char* DmaFaultReasonString(uint8_t reason) {
  // One table of Linux's strings for the whole unit (vtd_regs.cc); the
  // literals are NUL-terminated.
  if (IsLinuxInterruptRemapReason(reason)) return "Unknown";
  return LinuxFaultReasonString(reason).data();
}

std::string FormatDmaFaultLog(const DmaFault& fault) {
  const uint8_t reason = static_cast<uint8_t>(fault.reason);
  return absl::StrFormat(
      "DMAR: [%s NO_PASID] Request device [%02x:%02x.%d] fault addr 0x%x "
      "[fault reason 0x%02x] %s",
      fault.write ? "DMA Write" : "DMA Read", fault.rid >> 8,
      (fault.rid >> 3) & 0x1F, fault.rid & 7, fault.address & ~0xFFFull, reason,
      DmaFaultReasonString(reason));
}

DmaRemapOptions DmaRemapOptionsFromCap(uint64_t cap, uint64_t ecap) {
  DmaRemapOptions o;
  o.sagaw = static_cast<uint8_t>((cap >> 8) & 0x1F);          // CAP 12:8
  o.mgaw = static_cast<int>((cap >> 16) & 0x3F) + 1;           // CAP 21:16
  o.sllps = static_cast<uint8_t>((cap >> 34) & 0xF);          // CAP 37:34
  o.domain_id_bits = std::min(4 + 2 * static_cast<int>(cap & 7), 16);  // ND
  o.pass_through = (ecap >> 6) & 1;                            // ECAP.PT
  o.device_tlb = (ecap >> 2) & 1;                              // ECAP.DT
  return o;
}

// ---------------------------------------------------------------------------
// DmaRemapper

DmaRemapper::DmaRemapper(const GuestRam* ram, const DmaRemapOptions& options)
    : ram_(ram), options_(options) {
  const int haw = std::clamp(options_.haw, 13, 52);
  haw_mask_ = ((1ull << haw) - 1) & ~(kPageSize - 1);
}

void DmaRemapper::SetRootTableAddress(uint64_t rtaddr) {
  rta_ = rtaddr & ~(kPageSize - 1);
}

void DmaRemapper::Fail(TranslateResult* out, DmaFaultReason reason,
                       uint16_t rid, uint64_t address, bool write, bool fpd) {
  out->ok = false;
  out->fault = DmaFault{reason, rid, address, write};
  out->fpd = fpd;
  ++stats_.faults;
}

bool DmaRemapper::LookupContext(uint16_t rid, uint64_t address, bool write,
                                Context* ctx, TranslateResult* out) {
  if (options_.context_cache_capacity > 0) {
    auto it = context_cache_.find(rid);
    if (it != context_cache_.end()) {
      ++stats_.context_cache_hits;
      out->context_cache_hit = true;
      *ctx = it->second;
      return true;
    }
  }
  ++stats_.context_cache_misses;

  // Root entry: RTA + bus * 16 (3.4.2). Root faults are not qualified: no
  // context entry, hence no FPD, is known yet.
  const uint64_t root_addr = rta_ + (static_cast<uint64_t>(rid >> 8) << 4);
  if (ram_ == nullptr || !ram_->Contains(root_addr, 16)) {
    Fail(out, DmaFaultReason::kRootTableAccess, rid, address, write, false);
    return false;
  }
  const uint64_t root_lo = ram_->Load<uint64_t>(root_addr);
  const uint64_t root_hi = ram_->Load<uint64_t>(root_addr + 8);
  if ((root_lo & kRootPresent) == 0) {
    Fail(out, DmaFaultReason::kRootNotPresent, rid, address, write, false);
    return false;
  }
  // Reserved: bits 11:1, 63:HAW, 127:64 (the upper half is scalable-mode
  // only).
  if ((root_lo & (kRootLoReservedLow | ~(haw_mask_ | 0xFFFull))) != 0 ||
      root_hi != 0) {
    Fail(out, DmaFaultReason::kRootReserved, rid, address, write, false);
    return false;
  }

  // Context entry: CTP + devfn * 16.
  const uint64_t ctx_addr = (root_lo & haw_mask_) + ((rid & 0xFFull) << 4);
  if (!ram_->Contains(ctx_addr, 16)) {
    Fail(out, DmaFaultReason::kContextTableAccess, rid, address, write, false);
    return false;
  }
  const uint64_t lo = ram_->Load<uint64_t>(ctx_addr);
  const uint64_t hi = ram_->Load<uint64_t>(ctx_addr + 8);
  // FPD is evaluated whatever P says (9.3), so every fault from here on is
  // qualified.
  const bool fpd = (lo & kCtxFpd) != 0;
  if ((lo & kCtxPresent) == 0) {
    Fail(out, DmaFaultReason::kContextNotPresent, rid, address, write, fpd);
    return false;
  }
  const uint8_t tt = (lo >> kCtxTtShift) & 3;
  const uint16_t did = static_cast<uint16_t>(hi >> kCtxHiDidShift);
  out->domain_id = did;
  uint64_t reserved_lo = lo & kCtxLoReservedLow;
  // SLPTPTR bits 63:HAW are reserved, unless pass-through ignores the field.
  if (tt != kTtPassThrough) reserved_lo |= lo & ~(haw_mask_ | 0xFFFull);
  const uint64_t reserved_hi = hi & (kCtxHiReserved71 | kCtxHiReservedHigh);
  // DID bits beyond CAP.ND are reserved (9.3).
  const int did_bits = std::clamp(options_.domain_id_bits, 4, 16);
  const bool did_reserved = did_bits < 16 && (did >> did_bits) != 0;
  if (reserved_lo != 0 || reserved_hi != 0 || did_reserved) {
    Fail(out, DmaFaultReason::kContextReserved, rid, address, write, fpd);
    return false;
  }
  // Invalid programming (3h): TT not supported by this unit, AW not in
  // SAGAW. (AW 000b, the old 30-bit 2-level width, is not supported.)
  const bool tt_ok = tt == kTtUntranslated ||
                     (tt == kTtDeviceTlb && options_.device_tlb) ||
                     (tt == kTtPassThrough && options_.pass_through);
  const uint8_t aw_code = hi & kCtxHiAwMask;
  const bool aw_ok =
      aw_code >= 1 && aw_code <= 3 && (options_.sagaw >> aw_code) & 1;
  if (!tt_ok || !aw_ok) {
    Fail(out, DmaFaultReason::kContextInvalid, rid, address, write, fpd);
    return false;
  }

  ctx->did = did;
  ctx->tt = tt;
  ctx->levels = static_cast<uint8_t>(aw_code + 2);
  ctx->aw = 30 + 9 * aw_code;
  ctx->fpd = fpd;
  ctx->slptptr = lo & haw_mask_;
  if (options_.context_cache_capacity > 0) {
    if (context_cache_.size() >= options_.context_cache_capacity) {
      context_cache_.clear();
    }
    context_cache_[rid] = *ctx;
  }
  return true;
}

const DmaRemapper::IotlbEntry* DmaRemapper::IotlbLookup(
    uint16_t did, uint64_t address) const {
  for (int level = 1; level <= 3; ++level) {
    if (iotlb_count_by_level_[level] == 0) continue;
    auto it = iotlb_.find(IotlbKey(did, level, address));
    if (it != iotlb_.end()) return &it->second;
  }
  return nullptr;
}

void DmaRemapper::IotlbInsert(uint64_t address, const IotlbEntry& e) {
  if (options_.iotlb_capacity == 0) return;
  if (iotlb_.size() >= options_.iotlb_capacity) {
    iotlb_.clear();
    std::fill(std::begin(iotlb_count_by_level_),
              std::end(iotlb_count_by_level_), 0);
  }
  auto [it, inserted] =
      iotlb_.try_emplace(IotlbKey(e.did, e.level, address), e);
  if (inserted) {
    ++iotlb_count_by_level_[e.level];
  } else {
    it->second = e;
  }
}

bool DmaRemapper::Walk(const Context& ctx, uint16_t rid, uint64_t address,
                       bool write, IotlbEntry* entry, TranslateResult* out) {
  // Reserved in every present entry: bit 11 (SNP, ECAP.SC=0) and address bits
  // 51:HAW (9.8).
  const uint64_t common_reserved = kSlSnoop | (kSlAddrField & ~haw_mask_);
  uint64_t table = ctx.slptptr;
  bool read_ok = true;
  bool write_ok = true;
  for (int level = ctx.levels; level >= 1; --level) {
    const int shift = LevelShift(level);
    const uint64_t pte_addr = table + (((address >> shift) & 0x1FF) << 3);
    if (ram_ == nullptr || !ram_->Contains(pte_addr, 8)) {
      // The top table is referenced by the context entry's SLPTPTR: an
      // access error there is "invalid programming of a context entry" (3h);
      // below it the entry is referenced by a preceding entry's ADDR (7h).
      Fail(out,
           level == ctx.levels ? DmaFaultReason::kContextInvalid
                               : DmaFaultReason::kPagingEntryAccess,
           rid, address, write, ctx.fpd);
      return false;
    }
    const uint64_t pte = ram_->Load<uint64_t>(pte_addr);
    if ((pte & (kSlRead | kSlWrite)) == 0) {
      // Not present: the access lacks the permission it needs (3.7).
      Fail(out,
           write ? DmaFaultReason::kWriteDenied : DmaFaultReason::kReadDenied,
           rid, address, write, ctx.fpd);
      return false;
    }
    const bool ps = (pte & kSlPageSize) != 0;
    bool leaf = level == 1;
    uint64_t reserved = pte & common_reserved;
    if (level >= 2 && ps) {
      // PS=1: a 2 MiB (SL-PDE) or 1 GiB (SL-PDPE) page when CAP.SLLPS says
      // so; in an SL-PML4E/SL-PML5E, or for an unsupported size, reserved.
      const bool supported = (level == 2 && (options_.sllps & 1)) ||
                             (level == 3 && (options_.sllps & 2));
      if (!supported) {
        reserved |= kSlPageSize;
      } else {
        leaf = true;
        // Bits shift-1:12 of a large-page entry are reserved.
        reserved |= pte & ((1ull << shift) - 1) & ~0xFFFull;
      }
    }
    // TM: reserved in non-leaf entries; in leaves unless ECAP.DT.
    if (!leaf || !options_.device_tlb) reserved |= pte & kSlTm;
    if (reserved != 0) {
      Fail(out, DmaFaultReason::kPagingEntryReserved, rid, address, write,
           ctx.fpd);
      return false;
    }
    read_ok = read_ok && (pte & kSlRead) != 0;
    write_ok = write_ok && (pte & kSlWrite) != 0;
    if (leaf) {
      entry->hpa_base = pte & haw_mask_ & ~((1ull << shift) - 1);
      entry->did = ctx.did;
      entry->level = static_cast<uint8_t>(level);
      entry->read = read_ok;
      entry->write = write_ok;
      ++stats_.page_walks;
      IotlbInsert(address, *entry);
      return true;
    }
    table = pte & haw_mask_;
  }
  return false;  // unreachable: level 1 is always a leaf
}

TranslateResult DmaRemapper::Translate(uint16_t rid, uint64_t address,
                                       bool write, AddressType at) {
  TranslateResult out;
  Context ctx;
  if (!LookupContext(rid, address, write, &ctx, &out)) return out;
  out.domain_id = ctx.did;

  if (at == AddressType::kTranslated) {
    // Translated requests (device-TLB hits, ch. 4) pass only through
    // TT=01b and are otherwise blocked (Dh, 9.3 TT).
    if (ctx.tt != kTtDeviceTlb) {
      Fail(&out, DmaFaultReason::kTranslatedBlocked, rid, address, write,
           ctx.fpd);
      return out;
    }
    out.ok = true;
    out.hpa = address;
    out.page_size = kPageSize;
    out.pass_through = true;
    return out;
  }

  // 4h: input address above 2^X - 1, X = min(MGAW, AW).
  const int x = std::min(options_.mgaw, ctx.aw);
  if (x < 64 && (address >> x) != 0) {
    Fail(&out, DmaFaultReason::kAddressBeyondAw, rid, address, write, ctx.fpd);
    return out;
  }

  if (ctx.tt == kTtPassThrough) {
    out.ok = true;
    out.hpa = address;
    out.page_size = kPageSize;
    out.pass_through = true;
    return out;
  }

  IotlbEntry walked;
  const IotlbEntry* e =
      options_.iotlb_capacity > 0 ? IotlbLookup(ctx.did, address) : nullptr;
  if (e != nullptr) {
    ++stats_.iotlb_hits;
    out.iotlb_hit = true;
  } else {
    ++stats_.iotlb_misses;
    if (!Walk(ctx, rid, address, write, &walked, &out)) return out;
    e = &walked;
  }
  // Access rights accumulated over every level (3.7).
  if (write ? !e->write : !e->read) {
    Fail(&out,
         write ? DmaFaultReason::kWriteDenied : DmaFaultReason::kReadDenied,
         rid, address, write, ctx.fpd);
    return out;
  }
  const uint64_t size = 1ull << LevelShift(e->level);
  out.ok = true;
  out.hpa = e->hpa_base | (address & (size - 1));
  out.page_size = size;
  return out;
}

// --- Context-cache invalidation ---

void DmaRemapper::InvalidateContextCacheGlobal() {
  ++stats_.context_invalidations;
  context_cache_.clear();
}

void DmaRemapper::InvalidateContextCacheDomain(uint16_t did) {
  ++stats_.context_invalidations;
  for (auto it = context_cache_.begin(); it != context_cache_.end();) {
    if (it->second.did == did) {
      context_cache_.erase(it++);
    } else {
      ++it;
    }
  }
}

void DmaRemapper::InvalidateContextCacheDevice(uint16_t did, uint16_t sid,
                                               uint8_t function_mask) {
  ++stats_.context_invalidations;
  // FM masks the most significant function-number bits: 01b bit 2, 10b bits
  // 2:1, 11b bits 2:0.
  static constexpr uint16_t kFmMask[4] = {0x0, 0x4, 0x6, 0x7};
  const uint16_t ignore = kFmMask[function_mask & 3];
  for (auto it = context_cache_.begin(); it != context_cache_.end();) {
    if (it->second.did == did && (it->first & ~ignore) == (sid & ~ignore)) {
      context_cache_.erase(it++);
    } else {
      ++it;
    }
  }
}

// --- IOTLB invalidation ---

void DmaRemapper::InvalidateIotlbGlobal() {
  ++stats_.iotlb_invalidations;
  iotlb_.clear();
  std::fill(std::begin(iotlb_count_by_level_), std::end(iotlb_count_by_level_),
            0);
}

void DmaRemapper::InvalidateIotlbDomain(uint16_t did) {
  ++stats_.iotlb_invalidations;
  for (auto it = iotlb_.begin(); it != iotlb_.end();) {
    if (it->second.did == did) {
      --iotlb_count_by_level_[it->second.level];
      iotlb_.erase(it++);
    } else {
      ++it;
    }
  }
}

void DmaRemapper::InvalidateIotlbPages(uint16_t did, uint64_t address,
                                       uint8_t am, bool invalidation_hint) {
  (void)invalidation_hint;  // only paging-structure caches care; none here
  const unsigned region_shift = 12u + am;
  if (region_shift >= 64) {
    InvalidateIotlbDomain(did);
    return;
  }
  ++stats_.iotlb_invalidations;
  const uint64_t first = address & ~((1ull << region_shift) - 1);
  const uint64_t last = first + ((1ull << region_shift) - 1);
  for (auto it = iotlb_.begin(); it != iotlb_.end();) {
    const IotlbEntry& e = it->second;
    const int shift = LevelShift(e.level);
    const uint64_t e_first = (it->first >> 18) << shift;
    const uint64_t e_last = e_first + ((1ull << shift) - 1);
    if (e.did == did && e_first <= last && first <= e_last) {
      --iotlb_count_by_level_[e.level];
      iotlb_.erase(it++);
    } else {
      ++it;
    }
  }
}

// ---------------------------------------------------------------------------
// RemappingDmaSink

RemappingDmaSink::RemappingDmaSink(DmaRemapper* remapper, DmaSink* next,
                                   FaultCallback on_fault, Tracer* tracer,
                                   const Clock* clock)
    : remapper_(remapper),
      next_(next),
      on_fault_(std::move(on_fault)),
      tracer_(tracer),
      clock_(clock) {}

void RemappingDmaSink::TraceEvent(trace::Stage stage, uint16_t rid,
                                  uint64_t address, uint64_t data,
                                  const std::string& detail) {
  tracer_->Emit(clock_ != nullptr ? clock_->Now() : 0, stage, /*cpu=*/-1,
                detail, /*vector=*/-1, address, data, rid);
}

absl::Status RemappingDmaSink::TranslateRange(uint16_t rid, uint64_t address,
                                              uint64_t len, bool write) {
  pieces_.clear();
  const bool tracing = tracer_ != nullptr && tracer_->enabled();
  uint64_t iova = address;
  uint64_t remaining = len;
  do {
    const TranslateResult r = remapper_->Translate(rid, iova, write);
    if (!r.ok) {
      if (tracing) {
        std::string detail = FormatDmaFaultLog(r.fault);
        if (r.fpd) detail += " (FPD: not recorded)";
        TraceEvent(trace::DMA_FAULT, rid, iova,
                   static_cast<uint64_t>(r.fault.reason), detail);
      }
      if (!r.fpd && on_fault_) on_fault_(r.fault);
      return absl::PermissionDeniedError(absl::StrFormat(
          "rid %s: DMA %s at 0x%x blocked by DMA remapping: fault reason "
          "0x%02x (%s)%s",
          FormatRequesterId(rid), write ? "write" : "read", iova,
          static_cast<int>(r.fault.reason),
          DmaFaultReasonString(static_cast<uint8_t>(r.fault.reason)),
          r.fpd ? ", not recorded (FPD)" : ""));
    }
    const uint64_t in_page = r.page_size - (iova & (r.page_size - 1));
    const uint64_t chunk = std::min(remaining, in_page);
    pieces_.push_back(Piece{r.hpa, chunk});
    if (tracing) {
      TraceEvent(trace::DMA_REMAP, rid, iova, r.hpa,
                 absl::StrFormat("%s %u bytes did %u %s%s",
                                 write ? "write" : "read", chunk, r.domain_id,
                                 r.pass_through ? "pass-through"
                                 : r.iotlb_hit  ? "iotlb hit"
                                                : "iotlb miss",
                                 r.context_cache_hit ? "" : " (context miss)"));
    }
    iova += chunk;
    remaining -= chunk;
  } while (remaining > 0);
  return absl::OkStatus();
}

absl::Status RemappingDmaSink::Write(uint16_t requester_id, uint64_t address,
                                     absl::Span<const uint8_t> data) {
  if (!enabled_ || TouchesMsiWindow(address, data.size())) {
    return next_->Write(requester_id, address, data);
  }
  RETURN_IF_ERROR(TranslateRange(requester_id, address, data.size(), true));
  uint64_t offset = 0;
  for (const Piece& p : pieces_) {
    RETURN_IF_ERROR(
        next_->Write(requester_id, p.hpa, data.subspan(offset, p.len)));
    offset += p.len;
  }
  return absl::OkStatus();
}

absl::Status RemappingDmaSink::Read(uint16_t requester_id, uint64_t address,
                                    absl::Span<uint8_t> out) {
  if (!enabled_ || TouchesMsiWindow(address, out.size())) {
    return next_->Read(requester_id, address, out);
  }
  RETURN_IF_ERROR(TranslateRange(requester_id, address, out.size(), false));
  if (pieces_.size() == 1)
    return next_->Read(requester_id, pieces_[0].hpa, out);
  // Several pieces: gather into a scratch buffer so `out` stays unchanged if
  // a later piece fails.
  std::vector<uint8_t> buffer(out.size());
  uint64_t offset = 0;
  for (const Piece& p : pieces_) {
    RETURN_IF_ERROR(next_->Read(requester_id, p.hpa,
                                absl::MakeSpan(buffer).subspan(offset, p.len)));
    offset += p.len;
  }
  std::memcpy(out.data(), buffer.data(), buffer.size());
  return absl::OkStatus();
}

VtdDmaHooks MakeDmaHooks(DmaRemapper* remap, RemappingDmaSink* sink) {
  VtdDmaHooks hooks;
  hooks.root_table_pointer = [remap](uint64_t rtaddr) { remap->SetRootTableAddress(rtaddr); };
  hooks.translation_enable = [sink](bool on) { sink->set_translation_enabled(on); };
  hooks.context_cache = [remap](const ContextCacheInvalidation& inv) {
    using G = ContextCacheInvalidation::Granularity;
    switch (inv.granularity) {
      case G::kGlobal: remap->InvalidateContextCacheGlobal(); break;
      case G::kDomain: remap->InvalidateContextCacheDomain(inv.domain_id); break;
      case G::kDevice:
        remap->InvalidateContextCacheDevice(inv.domain_id, inv.source_id, inv.function_mask);
        break;
    }
  };
  hooks.iotlb = [remap](const IotlbInvalidation& inv) {
    using G = IotlbInvalidation::Granularity;
    switch (inv.granularity) {
      case G::kGlobal: remap->InvalidateIotlbGlobal(); break;
      case G::kDomain: remap->InvalidateIotlbDomain(inv.domain_id); break;
      case G::kPage:
        remap->InvalidateIotlbPages(inv.domain_id, inv.address, inv.address_mask,
                                    inv.invalidation_hint);
        break;
    }
  };
  return hooks;
}

}  // namespace vtd
}  // namespace irqlab
