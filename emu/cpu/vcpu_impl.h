// PRIVATE implementation header of Vcpu (emu/cpu/vcpu.h): class Vcpu::Impl,
// the state of one x86 logical processor kept around its Unicorn engine.
// Only emu/cpu/vcpu*.cc include it; everything else uses vcpu.h.
//
// The implementation is split by hardware behaviour:
//   vcpu.cc           engine set-up, the ROM trampoline, INIT/SIPI, Run and
//                     HLT, the block and code hooks (instruction counting,
//                     the STI/MOV SS shadow, SDM vol. 3, 6.8.3), RDMSR/WRMSR,
//                     RDTSC(P), CPUID, port I/O and MMIO attribution.
//   vcpu_delivery.cc  accepting an NMI or external interrupt and delivering
//                     events through the guest IDT (SDM vol. 3, 6.7.1, 6.8.1,
//                     6.12, 6.14, 6.15, table 6-5), exception classification.
//   x86_paging.h      the page walk and TLB this class keeps (SDM vol. 3,
//                     chapter 4).
// What is not modelled is listed at the top of each .cc file.
//
// Inlining: the interrupt fast path (block hook -> TryInterrupt -> Deliver ->
// guest memory through the TLB, and the code hooks) was compiled as one
// translation unit. Helpers it used inline are defined in this class body
// when both .cc files use them; members declared `inline` below are defined
// in the one .cc that uses them, so that the compiler may still inline them
// there. Do not call those from the other .cc file.
#ifndef IRQLAB_EMU_CPU_VCPU_IMPL_H_
#define IRQLAB_EMU_CPU_VCPU_IMPL_H_

#include <unicorn/unicorn.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "emu/core/guest_ram.h"
#include "emu/core/interrupt_source.h"
#include "emu/core/trace.h"
#include "emu/cpu/msr_file.h"
#include "emu/cpu/vcpu.h"
#include "emu/cpu/x86_decode.h"
#include "emu/cpu/x86_paging.h"

namespace irqlab {

class Vcpu::Impl {
 public:
  // The host ROM (vcpu.cc: the boot/SIPI trampoline and the shutdown park).
  static constexpr uint64_t kRomBase = 0xFFFF0000;
  static constexpr uint64_t kRomSize = 0x10000;
  // RFLAGS bits.
  static constexpr uint64_t kIF = 1u << 9, kTF = 1u << 8, kNT = 1u << 14,
                            kRF = 1u << 16, kVM = 1u << 17;

  // A translation block as the block hook sees it.
  struct BlockKey {
    uint64_t addr;
    uint32_t size;
    bool operator==(const BlockKey& o) const {
      return addr == o.addr && size == o.size;
    }
    template <typename H>
    friend H AbslHashValue(H h, const BlockKey& k) {
      return H::combine(std::move(h), k.addr, k.size);
    }
  };
  struct BlockInfo {
    uint32_t icount;
    bool ends_with_shadow;  // last instruction is STI / MOV SS / POP SS
  };
  // What the code hook at a site emulates (x86_decode.h: CodeSiteKind).
  enum class Special : uint8_t { kRdmsr, kWrmsr, kRdtsc, kRdtscp, kControl, kCr8 };
  // A fault raised while delivering an event (SDM 6.14/6.15); vector -1:
  // delivery is not modelled in this mode (real mode).
  struct Fault {
    int vector;
    uint32_t error;
    bool has_error;
    uint64_t cr2 = 0;
  };
  // The kinds of event delivery tells apart (SDM 6.12.1.1: the DPL check
  // applies to software interrupts only; EXT in error codes, 6.13).
  enum class Kind { kExternal, kNmi, kSoftware, kException };

  Impl(const VcpuConfig& config, GuestRam* ram, VcpuHost* host,
       InterruptSource* irq, Tracer* tracer)
      : config_(config),
        model_(config.cpu_model != nullptr ? config.cpu_model
                                           : FindCpuModel(kDefaultCpuModel)),
        ram_(ram), host_(host), irq_(irq), tracer_(tracer) {}
  ~Impl();

  // ---- Engine set-up and public operations (vcpu.cc) -------------------
  // Maps the ROM and opens the first engine.
  absl::Status Init0();
  // Opens a fresh engine (a fresh CPU): maps RAM, ROM and MMIO, installs the
  // hooks, resets every translation-derived cache.
  absl::Status OpenEngine();
  void CloseEngine();
  absl::Status SetMultibootEntry(uint32_t entry, uint32_t eax, uint32_t ebx);
  void Init();
  void Sipi(uint8_t vector);
  Exit Run(uint64_t budget);
  // A halted vCPU may resume: an NMI (then latched in nmi_pending_) or a
  // pending interrupt with RFLAGS.IF=1.
  inline bool WakeCondition();
  // Enters kShutdown with `why` (stop_reason()) and parks the engine.
  void Shutdown(const std::string& why);
  // Clears Unicorn's "exception in flight" after this file delivered one
  // (vcpu.cc, "Exceptions").
  void ResetUnicornExceptionState();

  void Kick() { check_irq_ = true; }
  void KickNotBefore(uint64_t time) {
    check_irq_ = true;
    kick_not_before_ = std::max(kick_not_before_, time);
  }
  // True once this vCPU's own virtual time has reached the latest
  // KickNotBefore() time (cross-CPU interrupts are never taken before they
  // were sent).
  bool KickDue() const { return VirtualTsc() >= kick_not_before_; }
  void RequestStop() { stop_requested_ = true; }
  void ShortenSlice(uint64_t remaining) {
    budget_end_ = std::min(budget_end_, retired_ + remaining);
  }

  // ---- Registers -------------------------------------------------------
  uint64_t Reg(int id) const {
    uint64_t v = 0;
    uc_reg_read(uc_, id, &v);
    return v;
  }
  void SetReg(int id, uint64_t v) { uc_reg_write(uc_, id, &v); }
  uint64_t Efer() const;

  // ---- Cached control state ---------------------------------------------
  // CR0, CR3, CR4, EFER, IDTR and GDTR, and a small TLB of this class's own
  // page walks (emu/cpu/x86_paging.h), as of the last read. They change only
  // through instructions that are all hooked (CodeSiteKind::kControl: MOV to
  // CRn, LMSW, CLTS, LGDT, LIDT, INVLPG, INVPCID; and WRMSR of EFER), which
  // invalidate the cache before they run, and through what vcpu.cc does not
  // hook: the ROM trampoline (each of its blocks invalidates) and a new
  // engine. Like a hardware TLB, a cached translation outlives a page-table
  // write until the guest invalidates it (SDM 4.10.4); Unicorn's own TLB may
  // drop it sooner. Not noticed: hardware task switches (JMP/CALL to a TSS,
  // IRET with NT=1), which load CR3 and are not modelled otherwise either.
  struct ControlState {
    PagingRegs pg{};
    uc_x86_mmr idtr{}, gdtr{};
  };
  const ControlState& Control() {
    if (!control_valid_) {
      uc_x86_msr efer{0xC0000080, 0};
      ControlState& c = control_;
      int ids[] = {UC_X86_REG_CR0, UC_X86_REG_CR3,  UC_X86_REG_CR4,
                   UC_X86_REG_MSR, UC_X86_REG_IDTR, UC_X86_REG_GDTR};
      void* vals[] = {&c.pg.cr0, &c.pg.cr3, &c.pg.cr4, &efer, &c.idtr, &c.gdtr};
      uc_reg_read_batch(uc_, ids, vals, 6);  // one call: ~3 ns less per register
      c.pg.efer = efer.value;
      tlb_.Flush();
      control_valid_ = true;
    }
    return control_;
  }
  void InvalidateControl() { control_valid_ = false; }
  const PagingRegs& ReadPaging() { return Control().pg; }

  // ---- Guest memory through the vCPU's paging ---------------------------
  // Guest physical RAM or the ROM; 0 (a not-present entry) elsewhere.
  uint64_t LoadPhys64(uint64_t pa) const {
    if (ram_->Contains(pa, 8)) return ram_->Load<uint64_t>(pa);
    if (pa >= kRomBase && pa + 8 <= kRomBase + kRomSize) {
      uint64_t v;
      std::memcpy(&v, rom_ + (pa - kRomBase), 8);
      return v;
    }
    return 0;  // not present
  }
  // TranslateLinear (x86_paging.h) of `la`. With the cached control state's
  // `pg` (ReadPaging()) it uses and fills tlb_; with any other PagingRegs (a
  // copy) it always walks the tables. Returns false and a #PF error code on
  // failure.
  bool Translate(const PagingRegs& pg, uint64_t la, bool write, bool user,
                 bool fetch, uint64_t* pa, uint32_t* pf_err) {
    const bool cached = control_valid_ && &pg == &control_.pg;
    return TranslateLinear(
        pg, cached ? &tlb_ : nullptr, la, write, user, fetch,
        [this](uint64_t a) { return LoadPhys64(a); }, pa, pf_err);
  }
  // memcpy of a run-time size, kept a library call: inlined, GCC made these
  // 3-40 byte copies (gates, descriptors, frames, code) a `rep movsq`, whose
  // start-up cost was half of each guest memory access of interrupt delivery.
  [[gnu::noinline]] static void CopyBytes(void* dst, const void* src,
                                          size_t n) {
    std::memcpy(dst, src, n);
  }
  // Copies `len` bytes between `buf` and guest linear `la` (RAM, ROM, or
  // byte-wise MMIO), checking the rights of a `write` / `user` access.
  // Returns the #PF to raise if a page does not translate (bytes before it
  // are copied already), else nullopt. (vcpu_delivery.cc)
  std::optional<Fault> AccessLinear(const PagingRegs& pg, uint64_t la,
                                    void* buf, size_t len, bool write,
                                    bool user);
  // Best-effort code read (no permission checks, RAM and ROM only): returns
  // the number of bytes read, short at the first page that does not
  // translate. (vcpu.cc)
  size_t ReadCode(const PagingRegs& pg, uint64_t la, uint8_t* buf, size_t len);

  // ---- Event delivery through the IDT (vcpu_delivery.cc) ----------------
  // The registers event delivery reads, in one uc_reg_read_batch() (the
  // reads have no side effects; separate calls cost ~3 ns more per
  // register). Delivery writes registers only once it succeeded, so one read
  // serves every attempt of a Deliver() (CR2 is not among them).
  struct DeliveryRegs {
    const ControlState* control;
    uint64_t rsp = 0, rflags = 0, cs = 0, ss = 0;
  };
  // `rflags`: RFLAGS if the caller has read it already, else nullopt.
  inline DeliveryRegs ReadDeliveryRegs(std::optional<uint64_t> rflags);
  // One attempt to deliver `vector` through the IDT from the state `regs`.
  // On success sets RSP, RFLAGS, CS, SS and RIP to the handler's and returns
  // nullopt; else returns the fault the attempt raised (no register
  // written). always_inline: Deliver's loop is its only caller; GCC 12
  // inlined it there while vcpu.cc was one class body, not after the split.
  [[gnu::always_inline]] inline std::optional<Fault> TryDeliver(
      const DeliveryRegs& regs, int vector, Kind kind, bool has_err,
      uint32_t err, uint64_t ret_rip);
  // Delivers an event, resolving faults during delivery per SDM table 6-5
  // (#DF, triple fault). Returns false if the vCPU shut down.
  // `rflags`: as in ReadDeliveryRegs().
  bool Deliver(int vector, Kind kind, bool has_err, uint32_t err,
               uint64_t ret_rip, std::optional<uint64_t> rflags = std::nullopt);
  // At instruction boundary `boundary_rip`: delivers a pending NMI, or the
  // highest pending interrupt if RFLAGS.IF=1. Returns true if an event was
  // delivered (RIP now at its handler).
  bool TryInterrupt(uint64_t boundary_rip);
  // UC_HOOK_INTR: an exception or software interrupt Unicorn raised.
  void Intr(uint32_t intno);
  // The #PF error code Unicorn does not report, recomputed for the fault at
  // `rip` (SDM 4.7).
  uint32_t PageFaultErrorCode(uint64_t rip);

  // ---- Hooks (vcpu.cc) --------------------------------------------------
  static void OnBlock(uc_engine*, uint64_t addr, uint32_t size, void* ud);
  void Block(uint64_t addr, uint32_t size);
  // Scans a block seen for the first time; returns false if it was restarted
  // to pick up new code hooks.
  bool FirstSight(uint64_t addr, uint32_t size);
  // Takes back the credit of a block's instructions from `addr` to its end
  // when execution leaves the block there.
  void UncreditRestOfBlock(uint64_t addr);
  // Ends uc_emu_start() with the guest at instruction boundary `addr`.
  inline void StopAt(uint64_t addr);

  // Narrow code hooks: at most kMaxCodeHooks stay installed (vcpu.cc:
  // EvictColdHooks).
  static constexpr size_t kMaxCodeHooks = 16;
  struct CodeHook {
    uc_hook handle;
    uint64_t last_fired;     // hook_clock_ at the last call
    uint64_t mmio_access;    // the learned MMIO access (AfterMmio), or ~0
  };
  // Hooks [begin, end]. `mmio_access`: see CodeHook. Returns false if
  // `begin` is hooked already.
  bool AddHook(uint64_t begin, uint64_t end, uint64_t mmio_access = ~0ull);
  // Removes the least recently fired hooks beyond kMaxCodeHooks, except
  // those in [keep_begin, keep_end).
  void EvictColdHooks(uint64_t keep_begin, uint64_t keep_end);
  static void OnCode(uc_engine*, uint64_t addr, uint32_t, void* ud);
  void Code(uint64_t addr);

  // ---- MSRs, RDTSC, CPUID (vcpu.cc) ------------------------------------
  uint64_t VirtualTsc() const {
    return host_->SliceStartTime() + (retired_ - slice_start_retired_);
  }
  // MSRs Unicorn's own RDMSR/WRMSR implement.
  inline static bool UnicornOwnsMsr(uint32_t msr);
  inline bool Cpl0() const;
  // Delivers #GP(0) for the instruction at `rip`.
  void RaiseGp0(uint64_t rip);
  void EmulateRdmsr(uint64_t addr);
  void EmulateWrmsr(uint64_t addr);
  inline void EmulateRdtsc(uint64_t addr, int len, bool p);
  void EmulateCr8(uint64_t addr);
  static int OnCpuid(uc_engine*, void* ud);
  bool Cpuid();

  // ---- Other engine callbacks (vcpu.cc) ---------------------------------
  static void OnIntr(uc_engine*, uint32_t intno, void* ud);
  static bool OnInvalid(uc_engine*, void*);
  static bool OnBadAccess(uc_engine*, uc_mem_type type, uint64_t addr, int,
                          int64_t, void* ud);
  static uint32_t OnIn(uc_engine*, uint32_t port, int size, void* ud);
  static void OnOut(uc_engine*, uint32_t port, int size, uint32_t value,
                    void* ud);

  // ---- MMIO and its attribution (vcpu.cc) -------------------------------
  static uint64_t MmioReadLow(uc_engine*, uint64_t off, unsigned size,
                              void* ud);
  static void MmioWriteLow(uc_engine*, uint64_t off, unsigned size,
                           uint64_t value, void* ud);
  static uint64_t MmioReadHigh(uc_engine*, uint64_t off, unsigned size,
                               void* ud);
  static void MmioWriteHigh(uc_engine*, uint64_t off, unsigned size,
                            uint64_t value, void* ud);
  // After a device access of `size` bytes at physical `pa`: if it made an
  // interrupt (possibly) pending, arrange delivery at the next instruction
  // boundary.
  void AfterMmio(bool write, uint64_t pa, unsigned size);
  // The instruction of the running block that made the MMIO access, or
  // nullopt if it cannot be told with certainty.
  std::optional<MemoryOperandInsn> FindAccess(uint64_t pa, unsigned size,
                                              bool write);
  // CS's GDT descriptor (protected mode); false if it cannot be read.
  inline bool ReadCodeDescriptor(const PagingRegs& pg, uint8_t d[8]);
  // The current code segment's default operand size: 16, 32 or 64.
  inline int CodeBits(const PagingRegs& pg);
  // CS's base.
  inline uint64_t CodeSegmentBase(const PagingRegs& pg);
  // The decoder for the current code segment's mode.
  inline X86Decoder& Decoder(const PagingRegs& pg);

  // ---- Trace -------------------------------------------------------------
  bool tracing() const { return tracer_ != nullptr && tracer_->enabled(); }
  void Trace(Stage stage, const std::string& detail, int vector = -1,
             uint64_t address = 0, uint64_t data = 0) {
    if (!tracing()) return;
    tracer_->Emit(host_->SliceStartTime() + (retired_ - slice_start_retired_),
                  stage, config_.index, detail, vector, address, data);
  }

  // Static configuration.
  const VcpuConfig config_;
  const CpuModel* const model_;  // never null
  MsrFile msrs_{model_};          // the MSRs the model implies (msr_file.h)
  GuestRam* const ram_;
  VcpuHost* const host_;
  InterruptSource* const irq_;
  Tracer* const tracer_;
  uint8_t* rom_ = nullptr;

  // Engine and translation-derived caches (reset with the engine).
  uc_engine* uc_ = nullptr;
  uc_context* ctx_ = nullptr;
  absl::flat_hash_map<BlockKey, BlockInfo> blocks_;
  struct BlockCacheEntry {
    uint64_t addr = ~uint64_t{0};
    uint32_t size = 0;
    BlockInfo info{};
  };
  static constexpr size_t kBlockCacheSize = 4096;  // power of two
  static size_t BlockCacheIndex(uint64_t addr) {
    return (addr ^ (addr >> 12)) & (kBlockCacheSize - 1);
  }
  std::array<BlockCacheEntry, kBlockCacheSize> block_cache_{};
  absl::flat_hash_map<uint64_t, CodeHook> hooked_;  // by first address
  // Hooked address -> the blocks whose scan found its site (EvictColdHooks).
  absl::flat_hash_map<uint64_t, std::vector<BlockKey>> site_blocks_;
  uint64_t hook_clock_ = 0;
  uint64_t hooks_evicted_ = 0;
  X86Decoder decode16_{16}, decode32_{32}, decode64_{64};
  ControlState control_;
  bool control_valid_ = false;
  Tlb tlb_;
  absl::flat_hash_set<uint64_t> mmio_learned_;
  // FindAccess: the decoded memory operands of blocks that made an MMIO
  // access while an interrupt was (possibly) pending, with their bytes.
  struct BlockOperands {
    std::vector<uint8_t> code;
    BlockMemoryOperands operands;
  };
  absl::flat_hash_map<BlockKey, BlockOperands> block_operands_;
  std::vector<uint8_t> code_scratch_;
  absl::flat_hash_map<uint64_t, Special> special_;
  std::vector<std::pair<uint64_t, uint64_t>> pending_flush_;

  // Volatile CPU state around the engine.
  State state_ = State::kRunnable;
  std::string stop_reason_;
  uint64_t retired_ = 0;
  uint64_t slice_start_retired_ = 0;
  uint64_t budget_end_ = 0;
  Exit exit_ = Exit::kHalted;
  bool stop_by_hook_ = false;
  bool stop_requested_ = false;
  bool check_irq_ = false;
  uint64_t kick_not_before_ = 0;  // virtual time; see KickNotBefore()
  bool nmi_blocked_ = false;
  bool nmi_pending_ = false;
  uint64_t nmi_return_rip_ = 0;
  uint64_t nmi_return_rsp_ = 0;
  bool last_block_shadow_ = false;
  // The block being executed (set when it is credited), for
  // UncreditRestOfBlock().
  uint64_t block_start_ = 0, block_end_ = 0;
  uint32_t block_icount_ = 0;
  uint32_t block_size_ = 0;  // of the running block (block_start_); 0: none
  absl::flat_hash_map<uint64_t, uint32_t> rest_icount_;
  bool deferred_last_ = false;
  uint64_t inhibit_at_ = ~0ull;
  bool bad_access_ = false;
  bool bad_access_write_ = false;
  bool bad_access_fetch_ = false;
  uint64_t bad_access_addr_ = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CPU_VCPU_IMPL_H_
