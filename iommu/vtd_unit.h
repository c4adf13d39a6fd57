// VtdUnit: one Intel VT-d remapping hardware unit (DRHD) — its 4 KiB
// register file, interrupt remapping with a real interrupt entry cache,
// interrupt posting, queued invalidation and fault recording/reporting.
//
// Spec: Intel Virtualization Technology for Directed I/O, rev. 4.x/5.x
// ([VT-d]); register layouts and data structures in vtd_regs.h.
//
// Place in the machine (ARCHITECTURE.md, "The walk of one MSI"): a decorator on the MSI delivery chain.
//
//   device / IOAPIC --Signal()--> VtdUnit --Signal()/SignalX2Apic()--> ApicBus
//                                   | fault: FRCD + FSTS + fault-event MSI
//                                   v (fault-event / invalidation-event MSIs
//                                      go straight to the downstream sink)
//
// Interrupt remapping ([VT-d] 5.1.4), per Signal(message):
//   * GSTS.IRES=0 (or an address outside 0xFEExxxxx): passed on unchanged.
//   * Compatibility format (address bit 4 = 0): passed on unchanged iff
//     GSTS.CFIS=1 and IRTA.EIME=0 (11.4.4.1 CFI: "effective only when
//     interrupt-remapping is enabled and Extended Interrupt Mode is not
//     enabled"); otherwise fault 0x25 (fault index 0).
//   * Remappable format, checked in this order: data bits 31:16 set → 0x20;
//     interrupt_index = handle + (SHV ? subhandle : 0) beyond 2^(S+1) →
//     0x21; IRTE fetch from IRTA + 16*index outside guest RAM → 0x23; P=0 →
//     0x22; reserved IRTE bits (incl. IM=1 without CAP.PI, SVT=11b, DST
//     bits 39:32/63:48 with EIME=0) → 0x24; source-id check (SVT=01b: SID
//     vs requester id under the SQ mask; SVT=10b: requester bus within
//     [SID[15:8], SID[7:0]]) → 0x26. IM=1 with CAP.PI: posted (5.2.3); a
//     descriptor outside RAM → 0x27.
//   * FPD=1 in the IRTE suppresses recording of the "qualified" faults
//     (0x22, 0x24, 0x26, 0x27; 7.1.3). A faulted interrupt is never
//     delivered, recorded or not.
//   * The remapped interrupt goes on as a compatibility-format MsiMessage
//     (same requester id) carrying the IRTE's vector, delivery mode,
//     destination mode, redirection hint and trigger mode (level => the
//     assert bit 14 is set). With EIME=0 the destination is DST[15:8] in
//     address bits 19:12 (Signal()); with EIME=1 the destination is the
//     32-bit DST, delivered through MsiSink::SignalX2Apic() (address bits
//     19:12 hold its low byte).
//
// Interrupt entry cache (IEC, [VT-d] 6.2.5/6.5.2.7): decoded IRTEs are
// cached per index on first use and used until an IEC invalidation
// descriptor (global, or index-selective with index mask) drops them — a
// guest that rewrites an IRTE without invalidating keeps getting the old
// translation. Only present, well-formed entries are cached (a not-present
// or malformed entry is re-read every time, as not-present context entries
// are with CAP.CM=0). SIRTP does not flush it unless CAP.ESIRTPS is
// reported (config `enhanced_sirtp`). Capacity `iec_capacity` entries (FIFO
// eviction, deterministic); 0 = no cache (re-read every interrupt, as QEMU).
// There is no register-based IEC invalidation: interrupt remapping requires
// queued invalidation (6.5.2; Create() rejects IR without QI).
//
// GCMD → GSTS ([VT-d] 11.4.4): a GCMD write is compared with GSTS; every
// enable bit (TE, QIE, IRE, CFI) whose value differs is serviced, every
// one-shot bit (SRTP, SIRTP) written as 1 is serviced, and GSTS reflects the
// result when the write returns (the model completes commands at once).
// SFL/EAFL/WBF are ignored (CAP.AFL=0, CAP.RWBF=0), as are the IR/QI bits
// when ECAP does not report the feature. The spec says software must change
// one field per write; when a write changes several, this model services all
// of them in the order SRTP, SIRTP, QIE, IRE, CFI, TE and traces the
// violation (VTD_COMMAND "multiple commands in one write").
//   SRTP  latches RTADDR, sets RTPS (calls hooks.root_table_pointer).
//   SIRTP latches IRTA (base, S, EIME), sets IRTPS.
//   QIE=0 resets IQH to 0 (11.4.9.1).
//
// Queued invalidation ([VT-d] 6.5.2): with GSTS.QIES=1 a write of IQT
// processes descriptors from IQH up to IQT synchronously (the queue is
// empty again when the write returns; only an injected delay, below, holds
// it). Descriptors: context-cache and IOTLB
// (passed to the DMA side through VtdDmaHooks), device-TLB (accepted,
// hooked), IEC (global / index-selective), invalidation wait (status write
// and/or invalidation-event interrupt through IECTL/IEDATA/IEADDR; FN is
// trivially honoured). An invalid type, a reserved bit, a status address or
// queue slot outside RAM, or IQT[4]=1 with 256-bit descriptors sets
// FSTS.IQE (IQERCD.IQEI says why), leaves IQH at the offending descriptor
// and stops; clearing IQE resumes from IQH.
//
// Device-TLB invalidation completion errors (6.5.2.5, 11.4.7.1, 11.4.9.9;
// only with ECAP.DT=1, config `device_tlb`): the descriptor sends an ATS
// Invalidate Request to its SID and hardware goes on fetching; a later
// invalidation wait descriptor waits for the completion. An invalid
// completion (wrong requester id) sets FSTS.ICE with IQERCD.ICESID and is
// discarded; the queue goes on. No completion at all is a time-out (it
// elapses at once here): FSTS.ITE with IQERCD.ITESID = the SID, the pending
// invalidation wait descriptor is aborted (no status write, no ICS.IWC, no
// invalidation event), IQH points past it — the next descriptor to fetch,
// as Linux's qi_check_fault() expects — and no descriptor is fetched until
// software clears ITE. ICE and ITE are fault-event conditions like IQE.
//
// Fault injection on the queue (the vIOMMU misbehaving; emu/run/fault_injection.h):
//   * DropInvalidations(type, n): the next n descriptors of `type`
//     (context-cache, IOTLB, IEC, device-TLB or any of them; waits never)
//     are decoded and checked as usual, then complete without invalidating
//     anything (no DMA hook, no IEC drop, no listener call, no ATS request
//     so no ICE/ITE); traced as FAULT_INJECT "<type> invalidation skipped
//     (injected): ..." and QI_DESCRIPTOR "<type> invalidation skipped
//     (injected)". SkipIecInvalidations(n) is DropInvalidations(kIec, n).
//   * DelayInvalidations(ticks, n): before each of the next n descriptors
//     (waits included) the queue stalls for `ticks`: nothing is fetched,
//     IQH stays at the descriptor, IQT writes are latched, and fetching
//     resumes `ticks` later from the event queue (set_event_queue();
//     EventPriority::kDeviceCompletion), as slow hardware that processes
//     the queue asynchronously (6.5.2: software polls the wait status). A
//     guest waiting on a wait descriptor behind it sees the status write
//     that much later. Traced as FAULT_INJECT at the stall and the resume.
//   * ReorderInvalidations(): one-shot, decided at the next queue pass that
//     has anything to fetch: if at least two descriptors that are not waits
//     are pending between IQH and IQT, the first two are processed in
//     swapped order (each fetched from the other's slot; guest memory is
//     untouched; a wait between them stays in place). With fewer, nothing
//     is reordered and the fault is spent (FAULT_INJECT "... nothing
//     reordered"); it does not wait for later submissions.
//
// With QIES=0, CCMD and
// IOTLB_REG perform register-based invalidation (6.5.1); with QIES=1 they
// are ignored and traced (software must not use them then).
//
// Fault recording ([VT-d] 7.2, 7.3): N fault recording registers used as a
// ring (next index increments after each record, wraps). A fault is
// dropped and FSTS.PFO set if PFO is already set or the register at the
// next index still has F=1. FSTS.PPF = OR of the F bits; FSTS.FRI is the
// index recorded when PPF went 0→1. A new "interrupt condition" (a fault
// recorded, IQE/ICE/ITE set) with none of PFO/PPF/IQE/ICE/ITE already set
// sets FECTL.IP; with IM=0 the fault-event MSI (FEDATA/FEADDR, FEUADDR for
// x2APIC ids with EIM) is sent at once and IP cleared; with IM=1 it is held
// and sent when IM is cleared. IP is cleared without a message when software
// services every status (F bits, IQE, ICE, ITE). The invalidation-event
// interrupt (IECTL/ICS.IWC) works the same way. Faults that are not
// recorded (FPD, overflow) are counted in stats() and traced.
//
// Every remap, fault, invalidation and event is a trace event (stages
// IR_REMAP, IR_FAULT, IEC_INVALIDATE, QI_DESCRIPTOR, FAULT_EVENT, POSTED,
// VTD_COMMAND); fault details carry Linux's log line (vtd::LinuxFaultLine).
//
// Register access: 4-byte accesses at 4-byte aligned offsets and 8-byte
// accesses at 8-byte aligned offsets (11.2: software accesses 64-bit
// registers as aligned quadwords or doublewords). An 8-byte access is two
// dword accesses, low dword first. Reserved bits read 0 and ignore writes;
// anything else (other sizes, misaligned) reads 0, drops the write and is
// traced. No register value, table content or descriptor can crash the host.
//
// Not modelled: DMA translation itself (iommu/dma_remap.h, driven through
// VtdDmaHooks), advanced fault logging, PMRs, scalable mode, page requests,
// ATS itself (device-TLBs are not modelled in the devices; `device_tlb`
// says how the endpoints answer), fault collapsing of identical faults, interrupt virtualization beyond posting.
//
// Implementation, one file per spec chapter: vtd_unit.cc (construction,
// the register page, GCMD/GSTS, the root-table and IRTA pointers; ch. 11),
// vtd_ir.cc (interrupt remapping with the IEC, posting, guest-owned MSI;
// ch. 5, 9.10-9.12), vtd_fault.cc (fault recording, FSTS, the fault and
// invalidation events; ch. 7), vtd_qi.cc (queued invalidation; 6.5.2).
//
// Thread-compatible (the machine runs on one host thread); no locks. The
// posted-interrupt descriptor's PIR bit and ON are set with atomic RMWs so a
// vCPU thread reading the descriptor never sees a torn update.
#ifndef IRQLAB_IOMMU_VTD_UNIT_H_
#define IRQLAB_IOMMU_VTD_UNIT_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "emu/core/clock.h"
#include "emu/core/compat.h"
#include "emu/core/event_queue.h"
#include "emu/core/guest_ram.h"
#include "emu/core/interrupt_remapper.h"
#include "emu/core/io.h"
#include "emu/core/msi.h"
#include "emu/core/msi_sink.h"
#include "emu/core/trace.h"
#include "iommu/vtd_regs.h"

namespace irqlab {

struct VtdConfig {
  // Physical base of the register page (the machine maps it; only used in
  // traces here). 4 KiB aligned.
  uint64_t base = vtd::kDefaultBase;
  // CAP.NFR + 1: fault recording registers, 1..vtd::kMaxFaultRecords.
  int num_fault_records = 8;
  bool interrupt_remapping = true;       // ECAP.IR
  bool extended_interrupt_mode = true;   // ECAP.EIM (x2APIC, IRTA.EIME)
  bool posted_interrupts = false;        // CAP.PI
  bool queued_invalidation = true;       // ECAP.QI (required by IR)
  bool pass_through = true;              // ECAP.PT
  bool enhanced_sirtp = false;           // CAP.ESIRTPS: SIRTP flushes IEC
  uint8_t sagaw = vtd::Cap::kSagaw39 | vtd::Cap::kSagaw48;  // CAP.SAGAW
  int mgaw = 48;                         // CAP.MGAW + 1, 30..64
  uint8_t nd = 2;                        // CAP.ND (0..6): 2 = 256 domains
  uint8_t sllps = vtd::Cap::kSllps2M | vtd::Cap::kSllps1G;  // CAP.SLLPS
  // Interrupt entry cache capacity in entries; 0 = no cache.
  uint32_t iec_capacity = 65536;
  // Requester id on the unit's own fault-event / invalidation-event MSIs.
  uint16_t requester_id = 0x0000;
  // The IOAPIC's source id (its DMAR device scope; IOAPIC-originated
  // remappable interrupts carry it, 5.1.5.1) and the compatibility profile
  // (emu/core/compat.h). QEMU's IOAPIC sends no requester id, so guests
  // written for QEMU put a PCI device's SID into the IOAPIC's IRTEs (SVT=01b)
  // and get fault 0x26 here, as on hardware; under CompatProfile::kQemu
  // requests from `ioapic_source_id` skip source-id verification, and under
  // kSpec such a fault is also traced as COMPAT.
  uint16_t ioapic_source_id = 0xF0F8;
  CompatProfile compat = CompatProfile::kSpec;

  // Device-TLBs (ECAP.DT) and what the endpoints behind the unit do with a
  // device-TLB invalidation descriptor (6.5.2.5: the unit sends a PCIe ATS
  // Invalidate Request and waits for the Invalidation Completion). None of
  // the device models implements ATS, so this is a machine knob.
  enum class DeviceTlb : uint8_t {
    // ECAP.DT=0: no device-TLBs; the descriptor is accepted and completes
    // at once (nothing to wait for). ICE/ITE are then RsvdZ (11.4.7.1).
    kNone,
    // ECAP.DT=1: every invalidation gets its valid completion.
    kAnswer,
    // ECAP.DT=1: no completion ever arrives; the invalidation times out
    // (FSTS.ITE, IQERCD.ITESID, 11.4.7.1 / 11.4.9.9).
    kNoAnswer,
    // ECAP.DT=1: a completion carrying the wrong requester id (the
    // invalidated source id with its function bits inverted, sid ^ 7: a
    // device answering from another function) arrives before the valid
    // one: FSTS.ICE, IQERCD.ICESID = that requester id.
    kBadCompletion,
  };
  DeviceTlb device_tlb = DeviceTlb::kNone;
};

// Invalidation requests for the DMA side (register-based or queued).
struct ContextCacheInvalidation {
  enum class Granularity : uint8_t { kGlobal = 1, kDomain = 2, kDevice = 3 };
  Granularity granularity = Granularity::kGlobal;
  uint16_t domain_id = 0;
  uint16_t source_id = 0;
  uint8_t function_mask = 0;  // FM
  bool queued = false;        // from a QI descriptor (else CCMD_REG)
};
struct IotlbInvalidation {
  enum class Granularity : uint8_t { kGlobal = 1, kDomain = 2, kPage = 3 };
  Granularity granularity = Granularity::kGlobal;
  uint16_t domain_id = 0;
  uint64_t address = 0;      // page-selective: ADDR (4 KiB aligned)
  uint8_t address_mask = 0;  // AM
  bool invalidation_hint = false;  // IH
  bool drain_reads = false;
  bool drain_writes = false;
  bool queued = false;
};
struct DeviceTlbInvalidation {
  uint16_t source_id = 0;
  uint64_t address = 0;
  bool size = false;  // S
};

// Callbacks the DMA-remapping side implements. Any may be empty.
struct VtdDmaHooks {
  std::function<void(const ContextCacheInvalidation&)> context_cache = {};
  std::function<void(const IotlbInvalidation&)> iotlb = {};
  std::function<void(const DeviceTlbInvalidation&)> device_tlb = {};
  // GCMD.SRTP serviced: the latched RTADDR_REG value (RTA | TTM).
  std::function<void(uint64_t rtaddr)> root_table_pointer = {};
  // GSTS.TES changed.
  std::function<void(bool enabled)> translation_enable = {};
};

struct VtdStats {
  uint64_t passed_through = 0;    // IRES=0, or compat with CFIS=1
  uint64_t remapped = 0;
  uint64_t posted = 0;
  uint64_t notifications = 0;     // posted-interrupt notification events
  uint64_t faults = 0;            // every interrupt/DMA fault detected
  uint64_t faults_recorded = 0;
  uint64_t faults_suppressed_fpd = 0;
  uint64_t faults_dropped_overflow = 0;
  uint64_t iec_hits = 0;
  uint64_t iec_misses = 0;
  uint64_t iec_evictions = 0;
  uint64_t descriptors = 0;       // QI descriptors completed
  uint64_t invalidation_timeouts = 0;           // ITE conditions
  uint64_t invalidation_completion_errors = 0;  // ICE conditions
  uint64_t fault_events = 0;      // fault-event MSIs sent
  uint64_t invalidation_events = 0;
};

class VtdUnit final : public IoHandler, public MsiSink, public InterruptRemapper {
 public:
  // `downstream` (the APIC bus) and `ram` must be non-null; `tracer` may be
  // null. None owned; all must outlive the unit. Returns InvalidArgument
  // naming the field for an inconsistent config.
  static absl::StatusOr<std::unique_ptr<VtdUnit>> Create(
      const VtdConfig& config, MsiSink* downstream, GuestRam* ram,
      const Clock* clock, Tracer* tracer);

  VtdUnit(const VtdUnit&) = delete;
  VtdUnit& operator=(const VtdUnit&) = delete;

  // IoHandler: the register page; `offset` relative to config().base.
  uint64_t Read(const AccessOrigin& origin, uint64_t offset,
                unsigned size) override;
  void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
             uint64_t value) override;

  // MsiSink: interrupt remapping (file comment): Remap() + delivery.
  // kFaulted / kPosted, or the downstream sink's outcome.
  MsiOutcome Signal(const MsiMessage& message) override;

  // InterruptRemapper (emu/core/interrupt_remapper.h). Interrupt remapping without the delivery, for a hypervisor that caches
  // translated routes (seed 003): faults are raised, recorded and traced
  // and posting is performed exactly as by Signal(), but a pass-through or
  // remapped message is returned instead of being sent downstream.
  // DeliverRemapped(result) then sends it (Signal = Remap + DeliverRemapped).
  RemapResult Remap(const MsiMessage& message) override;
  // kFaulted / kPosted for those results, else the downstream's outcome.
  MsiOutcome DeliverRemapped(const RemapResult& result) override;

  // Guest-owned MSI (seed 000, fix (c); a proposal, NOT part of the VT-d
  // spec): compatibility-format requests from `requester_id` are not
  // blocked but translated through IRTE `irte_base` + vector (data bits
  // 7:0), with every check of a remappable request after the index
  // computation (0x21 beyond the table, 0x22 not present, 0x24, SVT 0x26,
  // posting). The host points those IRTEs (posted format) at the vCPU's
  // posted-interrupt descriptor, so the guest's own message reaches the
  // vCPU without the VMM; a vector the host did not map faults 0x22.
  void set_guest_owned(uint16_t requester_id, uint32_t irte_base) {
    guest_owned_[requester_id] = irte_base;
  }
  void clear_guest_owned(uint16_t requester_id) {
    guest_owned_.erase(requester_id);
  }

  // Fault injection on the invalidation queue (file comment).
  // Descriptor types DropInvalidations() matches.
  enum class InvalidationType : uint8_t {
    kAny, kContextCache, kIotlb, kIec, kDeviceTlb,
  };
  // The next `n` descriptors of `type` complete without invalidating
  // anything (kAny: of any type but waits). Requests of different types
  // accumulate independently; a descriptor uses its own type's count first.
  void DropInvalidations(InvalidationType type, uint32_t n) {
    fault_drop_[static_cast<int>(type)] += n;
  }
  // The next `n` IEC invalidation descriptors complete without
  // invalidating anything (traced as FAULT_INJECT).
  void SkipIecInvalidations(uint32_t n) {
    DropInvalidations(InvalidationType::kIec, n);
  }
  // The queue stalls for `ticks` before each of the next `n` descriptors
  // (n adds to the stalls still to come; `ticks` replaces the previous
  // length). Needs set_event_queue(); returns false (and does nothing)
  // without one or with n == 0.
  bool DelayInvalidations(uint64_t ticks, uint32_t n);
  // The next queue pass swaps its first two pending non-wait descriptors
  // (or notes that fewer than two are pending).
  void ReorderInvalidations() { fault_reorder_armed_ = true; }
  // Where DelayInvalidations() schedules the resume (the machine's event
  // queue). Not owned; must outlive the unit's pending events.
  void set_event_queue(EventQueue* events) { events_ = events; }
  // True while a delay fault holds the queue.
  bool queue_stalled() const { return qi_stalled_; }
  // Guest memory [base, base+size) becomes unreadable for the unit's
  // interrupt-remapping reads (IRTEs -> fault 0x23, posted descriptors ->
  // 0x27), as if the memory holding the tables had failed.
  void SetUnreadable(uint64_t base, uint64_t size) {
    unreadable_base_ = base;
    unreadable_size_ = size;
  }

  // Called after every interrupt entry cache invalidation (6.5.2.7) with
  // the invalidated range: all entries (`global`) or the 2^`mask` entries
  // whose index matches `index` above bit `mask` — so a hypervisor can drop
  // the routes it cached from those entries. May be empty.
  void set_iec_listener(IecListener listener) override {
    iec_listener_ = std::move(listener);
  }
  MsiOutcome SignalX2Apic(const MsiMessage& message, uint32_t destination) override {
    // A device cannot produce a 32-bit destination; treat as its message.
    (void)destination;
    return Signal(message);
  }

  // Records a fault detected elsewhere (the DMA side's DMA-remapping
  // faults): applies the ring/PFO rules of 7.2.1 and raises the fault event
  // (7.3). Returns true iff the fault was written into a fault recording
  // register. The caller has already applied FPD (it does not call for
  // suppressed faults) and traced the detection (DMA_FAULT); the unit
  // traces only a fault dropped by overflow (FAULT_EVENT).
  //
  //   on_fault = [&](const vtd::DmaFault& f) {
  //     unit.RecordFault(vtd::FaultRecord::Dma(
  //         f.rid, f.address, /*read=*/!f.write,
  //         static_cast<uint8_t>(f.reason)));
  //   };
  bool RecordFault(const vtd::FaultRecord& record);

  void SetDmaHooks(VtdDmaHooks hooks) { hooks_ = std::move(hooks); }

  // --- Observers (tests, machine integration). ---
  const VtdConfig& config() const { return config_; }
  vtd::Cap cap() const { return cap_; }
  vtd::Ecap ecap() const { return ecap_; }
  uint32_t gsts() const { return gsts_; }
  bool translation_enabled() const { return gsts_ & vtd::Gsts::kTes; }
  bool interrupt_remapping_enabled() const { return gsts_ & vtd::Gsts::kIres; }
  uint64_t root_table_address() const { return rtaddr_latched_; }
  vtd::Irta irta() const { return irta_latched_; }
  uint32_t fsts() const;
  const VtdStats& stats() const { return stats_; }
  // Entries currently in the interrupt entry cache.
  size_t iec_size() const { return iec_count_; }

 private:
  VtdUnit(const VtdConfig& config, MsiSink* downstream, GuestRam* ram,
          const Clock* clock, Tracer* tracer);

  // A decoded IRTE as the IEC holds it, with the outgoing message built.
  struct CachedIrte {
    bool valid = false;
    vtd::Irte irte;
    uint64_t address = 0;      // remapped: compat MSI address
    uint32_t data = 0;         // remapped: compat MSI data
    uint32_t destination = 0;  // remapped: full destination id
    bool eime = false;         // decoded under EIME (x2APIC destination)
    uint64_t seq = 0;          // insertion number (IEC FIFO order)
  };
  struct FaultRegister {
    uint64_t lo = 0;
    uint64_t hi = 0;  // bit 63 = F
  };

  // Register file (vtd_unit.cc).
  uint32_t ReadDword(uint64_t offset) const;
  void WriteDword(uint64_t offset, uint32_t value);
  void WriteGcmd(uint32_t value);
  void WriteCcmdHigh(uint32_t value);
  void WriteIotlbHigh(uint32_t value);
  static uint64_t SetLow(uint64_t reg, uint32_t v) {
    return (reg & ~uint64_t{0xFFFFFFFF}) | v;
  }
  static uint64_t SetHigh(uint64_t reg, uint32_t v) {
    return (reg & 0xFFFFFFFF) | (uint64_t{v} << 32);
  }
  // Context-cache / IOTLB invalidation for the DMA side (register-based
  // and queued).
  void InvalidateContextCache(const ContextCacheInvalidation& inv);
  void InvalidateIotlb(const IotlbInvalidation& inv);

  // Interrupt remapping (vtd_ir.cc).
  // Blocks `message` with `reason`; `fpd` = the IRTE's FPD (honoured for
  // qualified faults only).
  void InterruptFault(const MsiMessage& message, uint8_t reason,
                      uint16_t index, bool fpd);
  // IEC miss: reads and checks IRTE `index` from the table and caches it.
  // Returns false after raising the fault (0x23, 0x22, 0x24).
  bool FetchIrte(const MsiMessage& message, uint32_t index, CachedIrte* out);
  CachedIrte Decode(const vtd::Irte& irte) const;
  // The compatibility-format message a request becomes through `entry`
  // (remapped format): the IRTE's address/data, the request's requester id.
  // One place for Remap() and the Signal() fast path.
  static MsiMessage RemappedMessage(const CachedIrte& entry,
                                    const MsiMessage& request) {
    return MsiMessage(entry.address, entry.data, request.requester_id);
  }
  void IecInsert(uint32_t index, const CachedIrte& entry);
  // Drops cached entries; returns how many.
  size_t IecInvalidateGlobal();
  size_t IecInvalidateIndex(uint32_t index, uint8_t mask);
  void Post(const MsiMessage& message, const CachedIrte& entry,
            uint32_t index);
  MsiOutcome SendDownstream(const MsiMessage& message, uint32_t destination,
                            bool wide);

  // Fault recording and the event interrupts (vtd_fault.cc). Record()
  // writes a fault register (or sets PFO) and raises the fault event;
  // *slot = register index when recorded.
  uint32_t ReadFaultRecordDword(uint64_t offset) const;
  void WriteFaultRecordDword(uint64_t offset, uint32_t value);
  void WriteFsts(uint32_t value);
  void WriteFectl(uint32_t value);
  void WriteIectl(uint32_t value);
  bool Record(const vtd::FaultRecord& record, int* slot);
  bool AnyStatusPending() const;
  void RaiseFaultCondition(bool was_pending);
  void MaybeClearFaultPending();
  void SendFaultEvent();
  void SendInvalidationEvent();

  // Queued invalidation (vtd_qi.cc).
  void ProcessQueue();
  // Executes one descriptor; returns false (with *why set) if invalid.
  bool ExecuteDescriptor(uint64_t desc_addr, const uint64_t qw[4],
                         vtd::Iqei* why, std::string* detail);
  // Queue errors: an invalid descriptor or queue state (IQE).
  void RaiseIqe(vtd::Iqei why, uint64_t descriptor_address, uint64_t qw0,
                const std::string& what);
  // Device-TLB invalidation time-out (ITE) of the pending invalidation;
  // `wait_aborted`: the wait descriptor at `wait_address` was aborted.
  void RaiseIte(bool wait_aborted, uint64_t wait_address, uint64_t wait_qw0);
  // Invalid device-TLB invalidation completion (ICE).
  void RaiseIce(uint16_t completion_sid, uint16_t sid);

  bool tracing() const { return tracer_ != nullptr && tracer_->enabled(); }
  void Trace(Stage stage, const std::string& detail, int vector = -1,
             uint64_t address = 0, uint64_t data = 0, uint32_t rid = 0);

  // --- static config ---
  const VtdConfig config_;
  vtd::Cap cap_;
  vtd::Ecap ecap_;
  MsiSink* const downstream_;
  GuestRam* const ram_;
  const Clock* const clock_;
  Tracer* const tracer_;
  VtdDmaHooks hooks_;
  IecListener iec_listener_;
  // Fault injection state.
  EventQueue* events_ = nullptr;
  uint32_t fault_drop_[5] = {};  // by InvalidationType
  uint64_t fault_delay_ticks_ = 0;
  uint32_t fault_delay_count_ = 0;  // stalls still to come
  bool qi_stalled_ = false;         // waiting for the resume event
  bool qi_stall_released_ = false;  // the descriptor at IQH already waited
  bool fault_reorder_armed_ = false;
  // Active reorder: queue offsets of the two swapped slots (valid while
  // reorder_active_; cleared once IQH passes reorder_b_, on IQE or QIE=0).
  bool reorder_active_ = false;
  uint64_t reorder_a_ = 0, reorder_b_ = 0;
  // Consumes a drop request for descriptor `type`; true if the descriptor
  // is to be dropped.
  bool TakeDrop(InvalidationType type);
  // The reorder decision of a queue pass (ProcessQueue).
  void ArmReorder(uint64_t tail);
  uint64_t unreadable_base_ = 0, unreadable_size_ = 0;
  bool Unreadable(uint64_t addr, uint64_t len) const {
    return unreadable_size_ != 0 && addr < unreadable_base_ + unreadable_size_ &&
           addr + len > unreadable_base_;
  }
  std::map<uint16_t, uint32_t> guest_owned_;  // requester id -> IRTE base

  // --- volatile state: registers ---
  uint32_t gsts_ = 0;
  uint64_t rtaddr_reg_ = 0;
  uint64_t rtaddr_latched_ = 0;
  uint64_t ccmd_ = 0;
  uint32_t fsts_ = 0;     // PFO/IQE/ICE/ITE (PPF and FRI computed)
  uint32_t fri_ = 0;
  bool fectl_im_ = true;  // reset value IM=1 (11.4.7.2)
  bool fectl_ip_ = false;
  uint32_t fedata_ = 0, feaddr_ = 0, feuaddr_ = 0;
  uint64_t iqh_ = 0, iqt_ = 0;
  vtd::Iqa iqa_;
  uint32_t ics_ = 0;
  bool iectl_im_ = true;
  bool iectl_ip_ = false;
  uint32_t iedata_ = 0, ieaddr_ = 0, ieuaddr_ = 0;
  uint64_t iqercd_ = 0;
  vtd::Irta irta_reg_;
  vtd::Irta irta_latched_;
  uint64_t iva_ = 0, iotlb_reg_ = 0;
  std::vector<FaultRegister> fault_regs_;
  uint32_t next_fault_index_ = 0;
  uint32_t pending_faults_ = 0;  // number of F bits set (PPF = != 0)
  bool processing_queue_ = false;
  // A device-TLB invalidation that will time out (DeviceTlb::kNoAnswer)
  // was sent during this ProcessQueue(); its source id.
  bool devtlb_pending_ = false;
  uint16_t devtlb_pending_sid_ = 0;
  bool wait_aborted_ = false;  // the last wait descriptor was aborted

  // --- volatile state: interrupt entry cache ---
  std::vector<CachedIrte> iec_;      // by index, sized on first insert
  uint32_t iec_slots_ = 0;           // iec_.size(), for the Signal() fast path
  // (index, seq) in insertion order; entries whose seq no longer matches
  // (invalidated or re-inserted) are stale and skipped (IecInsert).
  std::deque<std::pair<uint32_t, uint64_t>> iec_order_;
  size_t iec_count_ = 0;   // valid entries
  uint64_t iec_seq_ = 0;

  VtdStats stats_;
};

}  // namespace irqlab

#endif  // IRQLAB_IOMMU_VTD_UNIT_H_
