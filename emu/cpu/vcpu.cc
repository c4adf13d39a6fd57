// One x86-64 vCPU on a Unicorn 2.1.1 engine: everything an x86 CPU does
// around instructions that Unicorn does not (ARCHITECTURE.md, "Unicorn as a vCPU").
//
// Hardware modelled (Intel SDM vol. 3):
//   6.12 / 6.14  interrupt and exception delivery through the guest IDT: 8-byte
//                (protected mode) and 16-byte (IA-32e) interrupt/trap gates,
//                IST stacks, CPL change via TSS.RSPn / SS0:ESP0, 16-byte RSP
//                alignment, error codes, #GP/#NP/#TS/#SS/#PF during delivery,
//                #DF per table 6-5 and triple fault -> shutdown.
//   6.8.3        STI / MOV SS interrupt shadow (one block, see below).
//   6.7.1        NMI blocking until the next IRET.
//   9.1 / 9.4    INIT -> wait-for-SIPI; SIPI -> real mode at CS = vector<<8.
//   CPUID leaves 1 and 0xB; RDMSR/WRMSR routing; RDTSC(P) = virtual time.
// NOT modelled: task gates, 16-bit gates, interrupts/exceptions in real mode
// (the vCPU shuts down with a stop_reason), LDT-based handler CS, SMI, #MC,
// debug exceptions and single-step, SYSCALL/SYSENTER (Unicorn leaves them to
// hooks we do not install), exact error codes of #GP/#TS/#NP/#SS that
// *Unicorn* raises (0 is pushed; faults raised by our own delivery code carry
// the exact SDM error code), TSC writes (ignored).
//
// Design decisions (measured on Unicorn 2.1.1, this machine):
//
// * Instruction counting: a full-range UC_HOOK_BLOCK credits each block with
//   its instruction count, obtained once per (address, size) with
//   uc_ctl_request_cache() (uc_tb.icount) and kept in a flat_hash_map. This
//   costs one hash lookup per block; uc_emu_start(count) would add a helper
//   call per instruction (~20x slower) and flush the TB cache on every change.
//   Blocks are credited on entry, so a block cut short (fault, or delivery at
//   an interior boundary) is over-credited by its remaining instructions; the
//   count is still a pure function of the guest's execution, i.e.
//   deterministic. ROM (host firmware) blocks are not counted.
//
// * Interrupt timing: an interrupt raised by a device access must be taken at
//   the next instruction boundary. Unicorn gives no precise exit from an
//   I/O callback (writing RIP there takes effect only at the next memory-op
//   exit check, and RIP read there is stale). So:
//     - port I/O: every new block is decoded (Capstone, emu/cpu/x86_decode.h, in
//       the code segment's mode) and a narrow UC_HOOK_CODE is placed on the
//       instruction after each IN/OUT; the block is retranslated at once
//       (uc_ctl_remove_cache + restart) so even its first execution is
//       hooked. The hook delivers right there. Only bytes that do not decode
//       are scanned for opcode bytes; such false positives never fire or
//       fire at a real boundary, where delivering is equally correct. (They
//       are not free: every code hook call walks Unicorn's whole hook list,
//       and a byte scan finds IN in e.g. every `mov %rsp,%rbp`, 48 89 E5.)
//     - MMIO: the callback finds the accessing instruction X itself
//       (FindAccess): RIP is stale there, but the general registers are
//       current, so the running block's explicit memory operands are
//       evaluated and the one covering the accessed address is X (a
//       UC_HOOK_MEM_* hook would make Unicorn sync RIP, at ~27 ns on every
//       guest RAM access). For a plain MOV store (88/89/C6/C7/A2/A3) the
//       callback writes RIP = X + length: Unicorn's exit check right after
//       the store ends the TB there (no replay: the store is the last
//       effect), and the block hook at X+len delivers. For other accesses
//       (loads, read-modify-write) a code hook on the next instruction X+len
//       is installed (precise from the next execution on); the first
//       execution delivers at the block boundary, as does any access that
//       cannot be attributed to exactly one instruction.
//
// * Exceptions: UC_HOOK_INTR reports them; this file delivers them through the
//   guest IDT. Unicorn never clears its "exception in flight" field, so a
//   second contributory fault would come back as #DF: after each delivery we
//   reset it through a context save/patch/restore (the field's offset in the
//   context blob is found once per process by a calibration run).
//
// * Boot / AP start: the engine is always UC_MODE_64. A 64 KiB host ROM at
//   0xFFFF0000 holds a trampoline that leaves Unicorn's initial 64-bit state
//   via compat mode (paging on over a ROM identity map, then off, which
//   clears EFER.LMA), clears EFER.LME and either jumps to the multiboot entry
//   in 32-bit protected mode or drops to real mode and far-jumps to
//   vector<<8:0000. INIT recreates the engine (a fresh CPU).
//
// * MSRs: RDMSR/WRMSR/RDTSC/RDTSCP are found by the same block decode and
//   emulated in a narrow UC_HOOK_CODE (RIP += length). Architectural MSRs
//   Unicorn implements are left to it; 0x10 (TSC) is virtual time.
//
// * Cost of code hooks: each hooked instruction makes Unicorn walk its whole
//   list of code hooks, so at most kMaxCodeHooks stay installed; cold ones
//   are evicted and re-installed when their blocks next run
//   (EvictColdHooks).
//
// * Paging and descriptor tables: CR0/3/4, EFER, IDTR, GDTR and this file's
//   page walks (emu/cpu/x86_paging.h, a TLB of its own) are cached until the
//   guest runs an instruction that can change them, each of which is a
//   hooked site (see ControlState).
#include "emu/cpu/vcpu.h"

#include <sys/mman.h>
#include <unicorn/unicorn.h>

#include <array>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "emu/core/guest_ram.h"
#include "emu/core/trace.h"
#include "emu/cpu/x86_decode.h"
#include "emu/cpu/x86_paging.h"

namespace irqlab {
namespace {

constexpr uint64_t k4GiB = 1ull << 32;
// Physical addresses [4 GiB, kHighMmioEnd) are MMIO too (reads all-ones unless
// the host maps something). Unicorn builds per-page structures for a mapping,
// so a mapping up to 2^40+ takes minutes; accesses beyond 64 GiB shut the vCPU
// down with a clear stop_reason instead.
constexpr uint64_t kHighMmioEnd = 1ull << 36;
constexpr uint64_t kRomBase = 0xFFFF0000;
constexpr uint64_t kRomSize = 0x10000;
constexpr uint64_t kUntilNever = ~0ull;  // non-canonical: never executed

constexpr uint64_t kIF = 1u << 9, kTF = 1u << 8, kNT = 1u << 14,
                   kRF = 1u << 16, kVM = 1u << 17;

// ROM trampoline, assembled with nasm from this source (offsets in []):
//   bits 64                      ; [0x000] entry, Unicorn's initial state
//   lgdt [rel gdtr]; jmp far dword [rel ptr32]        ; -> 0x08:compat32
//   gdt: null, 0x08 code32 flat, 0x10 data32 flat,
//        0x18 code16 base 0xFFFF0000 limit 0xFFFF, 0x20 data16 base 0
//   bits 32  compat32:
//   cr4.PAE=1; cr3=pml4(ROM+0x1000); cr0.PG=1; cr0.PG=0   ; LMA := 0
//   rdmsr EFER; LME=0; wrmsr; cr3=cr4=0; ds..ss=0x10; esp=0
//   if byte [mode] == 0:  eax=[mb_eax]; ebx=[mb_ebx]; other GPRs 0;
//                         jmp 0x08:[mb_entry]          ; [0x0C1] imm32
//   else: jmp 0x18:real16; bits 16: ds..ss=0x20; cr0=0x60000010 (PE=0);
//         ds..ss=0; GPRs 0; edx=[sipi_edx] [0x0FE]; jmp far [sipi_seg]:0
//         ([0x111] imm16)
//   mode [0x118], mb_eax [0x11C], mb_ebx [0x120]
//   ROM+0x1000 PML4 -> +0x2000 PDPT[3] -> +0x3000 PD[511] = 2 MiB page at
//   0xFFE00000 (A/D preset so the walker never writes the ROM).
constexpr uint8_t kRomCode[] = {
    0x0f, 0x01, 0x15, 0x11, 0x00, 0x00, 0x00, 0xff, 0x2d, 0x03, 0x00, 0x00,
    0x00, 0x90, 0x90, 0x90, 0x58, 0x00, 0xff, 0xff, 0x08, 0x00, 0x90, 0x90,
    0x27, 0x00, 0x30, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x90, 0x90,
    0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x9b, 0xcf, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x93, 0xcf, 0x00,
    0xff, 0xff, 0x00, 0x00, 0xff, 0x9b, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x93, 0x00, 0x00, 0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x20, 0x0f, 0x22,
    0xe0, 0xb8, 0x00, 0x10, 0xff, 0xff, 0x0f, 0x22, 0xd8, 0x0f, 0x20, 0xc0,
    0x0d, 0x00, 0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0, 0x25, 0xff, 0xff, 0xff,
    0x7f, 0x0f, 0x22, 0xc0, 0xb9, 0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32, 0x25,
    0xff, 0xfe, 0xff, 0xff, 0x0f, 0x30, 0x31, 0xc0, 0x0f, 0x22, 0xd8, 0x0f,
    0x22, 0xe0, 0x66, 0xb8, 0x10, 0x00, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xe0,
    0x8e, 0xe8, 0x8e, 0xd0, 0x31, 0xe4, 0xa0, 0x18, 0x01, 0xff, 0xff, 0x84,
    0xc0, 0x75, 0x1c, 0xa1, 0x1c, 0x01, 0xff, 0xff, 0x8b, 0x1d, 0x20, 0x01,
    0xff, 0xff, 0x31, 0xc9, 0x31, 0xd2, 0x31, 0xf6, 0x31, 0xff, 0x31, 0xed,
    0xea, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0xea, 0xce, 0x00, 0x00, 0x00,
    0x18, 0x00, 0xb8, 0x20, 0x00, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xe0, 0x8e,
    0xe8, 0x8e, 0xd0, 0x0f, 0x20, 0xc0, 0x66, 0xb8, 0x10, 0x00, 0x00, 0x60,
    0x0f, 0x22, 0xc0, 0x31, 0xc0, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xe0, 0x8e,
    0xe8, 0x8e, 0xd0, 0x66, 0x31, 0xc0, 0x66, 0x31, 0xdb, 0x66, 0x31, 0xc9,
    0x66, 0xba, 0x00, 0x00, 0x00, 0x00, 0x66, 0x31, 0xf6, 0x66, 0x31, 0xff,
    0x66, 0x31, 0xed, 0x66, 0x31, 0xe4, 0xea, 0x00, 0x00, 0x00, 0x00, 0x90,
    0x90, 0x90, 0x90, 0x90, 0x00, 0x90, 0x90, 0x90, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
};
constexpr uint64_t kRomMbEntry = 0x0C1, kRomSipiEdx = 0x0FE,
                   kRomSipiSeg = 0x111, kRomMode = 0x118, kRomMbEax = 0x11C,
                   kRomMbEbx = 0x120;
// ROM+0x200: "cli; hlt; jmp $-2" where a shut-down vCPU parks.
constexpr uint64_t kRomParkOffset = 0x200;

bool IsContributory(int v) { return v == 0 || (v >= 10 && v <= 13); }

// Facts about Unicorn measured once per process with a scratch engine.
struct Calibration {
  int old_exception_offset = -1;  // in the uc_context blob, or -1
  size_t context_size = 0;
  uint32_t cpuid1[4] = {};  // Unicorn's default leaf 1 (eax, ebx, ecx, edx)
};

const Calibration& GetCalibration() {
  static const Calibration* cal = [] {
    auto* c = new Calibration;
    uc_engine* uc = nullptr;
    if (uc_open(UC_ARCH_X86, UC_MODE_64, &uc) != UC_ERR_OK) return c;
    static uint8_t page[0x2000] __attribute__((aligned(4096)));
    // 0x0: xor edx,edx; div edx   0x4: mov eax,1; cpuid; hlt
    const uint8_t code[] = {0x31, 0xD2, 0xF7, 0xF2, 0xB8, 0x01, 0x00,
                            0x00, 0x00, 0x0F, 0xA2, 0xF4};
    std::memcpy(page, code, sizeof(code));
    uc_mem_map_ptr(uc, 0, sizeof(page), UC_PROT_ALL, page);
    uint64_t rsp = 0x1F00;
    uc_reg_write(uc, UC_X86_REG_RSP, &rsp);
    c->context_size = uc_context_size(uc);
    uc_context* ctx = nullptr;
    uc_context_alloc(uc, &ctx);
    uc_context_save(uc, ctx);
    std::vector<uint8_t> before(reinterpret_cast<uint8_t*>(ctx),
                                reinterpret_cast<uint8_t*>(ctx) +
                                    c->context_size);
    struct Probe {
      uc_context* ctx;
      const std::vector<uint8_t>* before;
      Calibration* cal;
    } probe{ctx, &before, c};
    uc_hook h;
    uc_hook_add(
        uc, &h, UC_HOOK_INTR,
        reinterpret_cast<void*>(+[](uc_engine* uc, uint32_t intno, void* ud) {
          auto* p = static_cast<Probe*>(ud);
          uc_context_save(uc, p->ctx);
          const uint8_t* now = reinterpret_cast<const uint8_t*>(p->ctx);
          int found = -1, n = 0;
          for (size_t i = 0; i + 4 <= p->cal->context_size; i += 4) {
            int32_t a, b;
            std::memcpy(&a, p->before->data() + i, 4);
            std::memcpy(&b, now + i, 4);
            if (a == -1 && b == static_cast<int32_t>(intno)) found = i, ++n;
          }
          if (n == 1) p->cal->old_exception_offset = found;
          uint64_t rip = 4;
          uc_reg_write(uc, UC_X86_REG_RIP, &rip);
        }),
        &probe, 1, 0);
    uc_emu_start(uc, 0, kUntilNever, 0, 0);
    int regs[4] = {UC_X86_REG_EAX, UC_X86_REG_EBX, UC_X86_REG_ECX,
                   UC_X86_REG_EDX};
    for (int i = 0; i < 4; ++i) {
      uint64_t v = 0;
      uc_reg_read(uc, regs[i], &v);
      c->cpuid1[i] = static_cast<uint32_t>(v);
    }
    uc_context_free(ctx);
    uc_close(uc);
    return c;
  }();
  return *cal;
}

// memcpy of a run-time size, kept a library call: inlined, GCC made these
// 3-40 byte copies (gates, descriptors, frames, code) a `rep movsq`, whose
// start-up cost was half of each guest memory access of interrupt delivery.
[[gnu::noinline]] void CopyBytes(void* dst, const void* src, size_t n) {
  std::memcpy(dst, src, n);
}

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

enum class Special : uint8_t { kRdmsr, kWrmsr, kRdtsc, kRdtscp, kControl };

// A fault raised while delivering an event (SDM 6.14/6.15).
struct Fault {
  int vector;
  uint32_t error;
  bool has_error;
  uint64_t cr2 = 0;
};

}  // namespace

class Vcpu::Impl {
 public:
  Impl(const VcpuConfig& config, GuestRam* ram, VcpuHost* host,
       InterruptSource* irq, Tracer* tracer)
      : config_(config), ram_(ram), host_(host), irq_(irq), tracer_(tracer) {}
  ~Impl() {
    CloseEngine();
    if (rom_) munmap(rom_, kRomSize);
  }

  absl::Status Init0() {
    GetCalibration();
    void* p = mmap(nullptr, kRomSize, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return absl::ResourceExhaustedError("ROM mmap failed");
    rom_ = static_cast<uint8_t*>(p);
    std::memcpy(rom_, kRomCode, sizeof(kRomCode));
    const uint8_t park[] = {0xFA, 0xF4, 0xEB, 0xFC};
    std::memcpy(rom_ + kRomParkOffset, park, sizeof(park));
    auto put64 = [&](uint64_t off, uint64_t v) { std::memcpy(rom_ + off, &v, 8); };
    put64(0x1000, kRomBase + 0x2000 + 0x23);
    put64(0x2000 + 3 * 8, kRomBase + 0x3000 + 0x23);
    put64(0x3000 + 511 * 8, 0xFFE00000ull + 0xE3);
    if (ram_->size() > kRomBase) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "guest RAM of %#x bytes overlaps the vCPU ROM at %#x", ram_->size(),
          kRomBase));
    }
    state_ = config_.index == 0 ? State::kRunnable : State::kWaitForSipi;
    return OpenEngine();
  }

  // ---- Engine set-up --------------------------------------------------
  absl::Status OpenEngine() {
    CloseEngine();
    uc_err e = uc_open(UC_ARCH_X86, UC_MODE_64, &uc_);
    if (e != UC_ERR_OK) {
      uc_ = nullptr;
      return absl::InternalError(
          absl::StrFormat("uc_open(X86, MODE_64) for vCPU %d failed: %s",
                          config_.index, uc_strerror(e)));
    }
    auto check = [&](uc_err err, const char* what) -> absl::Status {
      if (err == UC_ERR_OK) return absl::OkStatus();
      return absl::InternalError(absl::StrFormat(
          "vCPU %d: %s failed: %s", config_.index, what, uc_strerror(err)));
    };
    absl::Status s;
    // Exits mode with no exit address: uc_emu_start ignores `until`. With an
    // `until` address, every return from uc_emu_start invalidates the TB at
    // that address, whose translation (an unmapped, non-canonical address)
    // raises a #PF outside cpu_exec: never delivered, but it leaves
    // CPUX86State.old_exception = 14, so the guest's next #PF or
    // contributory fault would be escalated to #DF by the engine.
    s = check(uc_ctl_exits_enable(uc_), "uc_ctl_exits_enable");
    if (!s.ok()) return s;
    s = check(uc_mem_map_ptr(uc_, 0, ram_->size(), UC_PROT_ALL, ram_->data()),
              "mapping guest RAM");
    if (!s.ok()) return s;
    s = check(uc_mem_map_ptr(uc_, kRomBase, kRomSize,
                             UC_PROT_READ | UC_PROT_EXEC, rom_),
              "mapping the ROM");
    if (!s.ok()) return s;
    s = check(uc_mmio_map(uc_, ram_->size(), kRomBase - ram_->size(),
                          &Impl::MmioReadLow, this, &Impl::MmioWriteLow, this),
              "mapping MMIO below 4 GiB");
    if (!s.ok()) return s;
    s = check(uc_mmio_map(uc_, k4GiB, kHighMmioEnd - k4GiB, &Impl::MmioReadHigh,
                          this, &Impl::MmioWriteHigh, this),
              "mapping MMIO above 4 GiB");
    if (!s.ok()) return s;
    uc_hook h;
    s = check(uc_hook_add(uc_, &h, UC_HOOK_BLOCK,
                          reinterpret_cast<void*>(&Impl::OnBlock), this, 1, 0),
              "block hook");
    if (!s.ok()) return s;
    s = check(uc_hook_add(uc_, &h, UC_HOOK_INTR,
                          reinterpret_cast<void*>(&Impl::OnIntr), this, 1, 0),
              "interrupt hook");
    if (!s.ok()) return s;
    s = check(uc_hook_add(uc_, &h, UC_HOOK_INSN_INVALID,
                          reinterpret_cast<void*>(&Impl::OnInvalid), this, 1,
                          0),
              "invalid-instruction hook");
    if (!s.ok()) return s;
    s = check(uc_hook_add(uc_, &h, UC_HOOK_INSN,
                          reinterpret_cast<void*>(&Impl::OnIn), this, 1, 0,
                          UC_X86_INS_IN),
              "IN hook");
    if (!s.ok()) return s;
    s = check(uc_hook_add(uc_, &h, UC_HOOK_INSN,
                          reinterpret_cast<void*>(&Impl::OnOut), this, 1, 0,
                          UC_X86_INS_OUT),
              "OUT hook");
    if (!s.ok()) return s;
    s = check(uc_hook_add(uc_, &h, UC_HOOK_INSN,
                          reinterpret_cast<void*>(&Impl::OnCpuid), this, 1, 0,
                          UC_X86_INS_CPUID),
              "CPUID hook");
    if (!s.ok()) return s;
    s = check(uc_hook_add(uc_, &h, UC_HOOK_MEM_UNMAPPED | UC_HOOK_MEM_PROT,
                          reinterpret_cast<void*>(&Impl::OnBadAccess), this, 1,
                          0),
              "unmapped-access hook");
    if (!s.ok()) return s;
    blocks_.clear();
    block_operands_.clear();
    block_size_ = 0;
    InvalidateControl();  // a new engine is a new CPU
    block_cache_.fill(BlockCacheEntry{});
    hooked_.clear();
    site_blocks_.clear();
    mmio_learned_.clear();
    special_.clear();
    uint64_t rip = kRomBase + kRomParkOffset;  // until an entry point is set
    uc_reg_write(uc_, UC_X86_REG_RIP, &rip);
    return absl::OkStatus();
  }

  void CloseEngine() {
    if (ctx_ != nullptr) uc_context_free(ctx_);
    ctx_ = nullptr;
    if (uc_ != nullptr) uc_close(uc_);
    uc_ = nullptr;
  }

  // ---- Public operations ---------------------------------------------
  absl::Status SetMultibootEntry(uint32_t entry, uint32_t eax, uint32_t ebx) {
    if (uc_ == nullptr) return absl::FailedPreconditionError("no engine");
    rom_[kRomMode] = 0;
    std::memcpy(rom_ + kRomMbEntry, &entry, 4);
    std::memcpy(rom_ + kRomMbEax, &eax, 4);
    std::memcpy(rom_ + kRomMbEbx, &ebx, 4);
    uc_ctl_remove_cache(uc_, kRomBase, kRomBase + 0x1000);
    uint64_t rip = kRomBase;
    uc_reg_write(uc_, UC_X86_REG_RIP, &rip);
    state_ = State::kRunnable;
    Trace(trace::MACHINE, absl::StrFormat("multiboot entry=%#x", entry));
    return absl::OkStatus();
  }

  void Init() {
    // INIT resets the processor: a fresh engine is a fresh CPU.
    absl::Status s = OpenEngine();
    if (!s.ok()) {
      Shutdown(std::string(s.message()));
      return;
    }
    state_ = State::kWaitForSipi;
    nmi_blocked_ = nmi_pending_ = false;
    check_irq_ = false;
    last_block_shadow_ = deferred_last_ = false;
    Trace(trace::CPU_START, "INIT");
  }

  void Sipi(uint8_t vector) {
    if (state_ != State::kWaitForSipi || uc_ == nullptr) return;
    rom_[kRomMode] = 1;
    uint16_t seg = static_cast<uint16_t>(vector) << 8;
    std::memcpy(rom_ + kRomSipiSeg, &seg, 2);
    uint32_t edx = GetCalibration().cpuid1[0];  // processor signature (SDM 9.1.4)
    std::memcpy(rom_ + kRomSipiEdx, &edx, 4);
    uc_ctl_remove_cache(uc_, kRomBase, kRomBase + 0x1000);
    uint64_t rip = kRomBase;
    uc_reg_write(uc_, UC_X86_REG_RIP, &rip);
    state_ = State::kRunnable;
    Trace(trace::CPU_START, absl::StrFormat("SIPI vector=%#x", vector),
          vector);
  }

  Exit Run(uint64_t budget) {
    if (state_ == State::kWaitForSipi || state_ == State::kShutdown) {
      return Exit::kNotRunnable;
    }
    if (state_ == State::kHalted) {
      if (!check_irq_ || !KickDue() || !WakeCondition()) return Exit::kHalted;
      state_ = State::kRunnable;
      Trace(trace::WAKE, "");
    }
    slice_start_retired_ = retired_;
    budget_end_ = retired_ + budget;
    exit_ = Exit::kHalted;
    stop_by_hook_ = false;
    if (stop_requested_) {
      stop_requested_ = false;
      return Exit::kStopped;
    }
    uint64_t rip = 0;
    uc_reg_read(uc_, UC_X86_REG_RIP, &rip);
    uc_err err = uc_emu_start(uc_, rip, kUntilNever, 0, 0);
    if (state_ == State::kShutdown) return Exit::kNotRunnable;
    if (err != UC_ERR_OK) {
      uint64_t at = 0;
      uc_reg_read(uc_, UC_X86_REG_RIP, &at);
      std::string why = absl::StrFormat("engine error %s at rip %#x",
                                        uc_strerror(err), at);
      if (bad_access_) {
        why = absl::StrFormat(
            "%s to unmapped/protected physical address %#x at rip %#x "
            "(no memory or MMIO there: above %#x)",
            bad_access_write_ ? "write" : (bad_access_fetch_ ? "fetch" : "read"),
            bad_access_addr_, at, kHighMmioEnd);
      }
      Shutdown(why);
      return Exit::kNotRunnable;
    }
    if (stop_by_hook_) return exit_;
    // Returned without our stop: HLT (Unicorn leaves RIP after it).
    state_ = State::kHalted;
    uint64_t r = 0;
    uc_reg_read(uc_, UC_X86_REG_RIP, &r);
    Trace(trace::HALT, absl::StrFormat("rip=%#x", r));
    return Exit::kHalted;
  }

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

  // ---- Register helpers ------------------------------------------------
  uint64_t Reg(int id) const {
    uint64_t v = 0;
    uc_reg_read(uc_, id, &v);
    return v;
  }
  void SetReg(int id, uint64_t v) { uc_reg_write(uc_, id, &v); }
  uint64_t Efer() const {
    uc_x86_msr m{0xC0000080, 0};
    uc_reg_read(uc_, UC_X86_REG_MSR, &m);
    return m.value;
  }

  // ---- Cached control state ---------------------------------------------
  // CR0, CR3, CR4, EFER, IDTR and GDTR, and a small TLB of this file's own
  // page walks (emu/cpu/x86_paging.h), as of the last read. They change only
  // through instructions that are all hooked (CodeSiteKind::kControl: MOV to
  // CRn, LMSW, CLTS, LGDT, LIDT, INVLPG, INVPCID; and WRMSR of EFER), which
  // invalidate the cache before they run, and through what this file does
  // not hook: the ROM trampoline (each of its blocks invalidates) and a new
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

  // Linear-address copy helpers for delivery; on a translation failure return
  // the #PF to raise.
  std::optional<Fault> AccessLinear(const PagingRegs& pg, uint64_t la, void* buf,
                                    size_t len, bool write, bool user) {
    uint8_t* b = static_cast<uint8_t*>(buf);
    while (len > 0) {
      size_t chunk = std::min<uint64_t>(len, 4096 - (la & 0xFFF));
      uint64_t pa;
      uint32_t err;
      if (!Translate(pg, la, write, user, false, &pa, &err)) {
        return Fault{14, err, true, la};
      }
      if (ram_->Contains(pa, chunk)) {
        if (write) CopyBytes(ram_->data() + pa, b, chunk);
        else CopyBytes(b, ram_->data() + pa, chunk);
      } else if (pa >= kRomBase && pa + chunk <= kRomBase + kRomSize) {
        if (!write) std::memcpy(b, rom_ + (pa - kRomBase), chunk);
      } else {
        for (size_t i = 0; i < chunk; ++i) {
          if (write) host_->MmioWrite(config_.index, pa + i, 1, b[i]);
          else b[i] = static_cast<uint8_t>(host_->MmioRead(config_.index, pa + i, 1));
        }
      }
      la += chunk;
      b += chunk;
      len -= chunk;
    }
    return std::nullopt;
  }
  // Best-effort code read (no permission checks); returns bytes read.
  size_t ReadCode(const PagingRegs& pg, uint64_t la, uint8_t* buf, size_t len) {
    size_t done = 0;
    while (done < len) {
      size_t chunk = std::min<uint64_t>(len - done, 4096 - (la & 0xFFF));
      uint64_t pa;
      uint32_t err;
      if (!Translate(pg, la, false, false, false, &pa, &err)) break;
      if (ram_->Contains(pa, chunk)) {
        CopyBytes(buf + done, ram_->data() + pa, chunk);
      } else if (pa >= kRomBase && pa + chunk <= kRomBase + kRomSize) {
        std::memcpy(buf + done, rom_ + (pa - kRomBase), chunk);
      } else {
        break;
      }
      la += chunk;
      done += chunk;
    }
    return done;
  }

  // ---- Event delivery through the IDT (SDM 6.12, 6.14) -----------------
  enum class Kind { kExternal, kNmi, kSoftware, kException };

  // The registers event delivery reads, in one uc_reg_read_batch() (the
  // reads have no side effects; separate calls cost ~3 ns more per
  // register). Delivery writes registers only once it succeeded, so one read
  // serves every attempt of a Deliver() (CR2 is not among them).
  struct DeliveryRegs {
    const ControlState* control;
    uint64_t rsp = 0, rflags = 0, cs = 0, ss = 0;
  };
  // `rflags`: RFLAGS if the caller has read it already, else nullopt.
  DeliveryRegs ReadDeliveryRegs(std::optional<uint64_t> rflags) {
    DeliveryRegs r{&Control()};
    int ids[] = {UC_X86_REG_RSP, UC_X86_REG_CS, UC_X86_REG_SS, UC_X86_REG_RFLAGS};
    void* vals[] = {&r.rsp, &r.cs, &r.ss, &r.rflags};
    static_assert(std::size(ids) == std::size(vals));
    const int n = static_cast<int>(std::size(ids)) - (rflags ? 1 : 0);
    uc_reg_read_batch(uc_, ids, vals, n);
    if (rflags) r.rflags = *rflags;
    return r;
  }

  std::optional<Fault> TryDeliver(const DeliveryRegs& regs, int vector,
                                  Kind kind, bool has_err, uint32_t err,
                                  uint64_t ret_rip) {
    const PagingRegs& pg = regs.control->pg;
    const uint64_t rsp = regs.rsp, rflags = regs.rflags, cs64 = regs.cs,
                   ss64 = regs.ss;
    const uc_x86_mmr &idtr = regs.control->idtr, &gdtr = regs.control->gdtr;
    uc_x86_mmr tr{};
    const uint32_t ext =
        (kind == Kind::kExternal || kind == Kind::kNmi) ? 1 : 0;
    if (!(pg.cr0 & 1)) {
      return Fault{-1, 0, false};  // real mode: not modelled
    }
    const bool lm = pg.efer & (1 << 10);
    uint16_t cs = static_cast<uint16_t>(cs64);
    uint16_t ss = static_cast<uint16_t>(ss64);
    int cpl = cs & 3;
    const uint32_t gate_size = lm ? 16 : 8;
    const uint32_t idt_err = static_cast<uint32_t>(vector) * 8 + 2 + ext;
    if (static_cast<uint64_t>(vector) * gate_size + gate_size - 1 >
        idtr.limit) {
      return Fault{13, idt_err, true};
    }
    uint8_t gate[16] = {};
    if (auto f = AccessLinear(pg, idtr.base + vector * gate_size, gate,
                              gate_size, false, false)) {
      return f;
    }
    const int type = gate[5] & 0xF, dpl = (gate[5] >> 5) & 3;
    const bool present = gate[5] & 0x80;
    const bool type_ok = type == 0xE || type == 0xF;  // task/16-bit: no
    if (!type_ok) return Fault{13, idt_err, true};
    if (kind == Kind::kSoftware && dpl < cpl) return Fault{13, idt_err, true};
    if (!present) return Fault{11, idt_err, true};
    uint16_t sel = gate[2] | (gate[3] << 8);
    uint64_t offset = gate[0] | (gate[1] << 8) | (gate[6] << 16) |
                      (static_cast<uint64_t>(gate[7]) << 24);
    if (lm) {
      uint32_t hi;
      std::memcpy(&hi, gate + 8, 4);
      offset |= static_cast<uint64_t>(hi) << 32;
    }
    const int ist = lm ? (gate[4] & 7) : 0;
    // Handler code segment.
    const uint32_t sel_err = (sel & 0xFFFC) | ext;
    if ((sel & 0xFFFC) == 0 || (sel & 4)) return Fault{13, sel_err, true};
    if ((sel | 7u) > gdtr.limit) return Fault{13, sel_err, true};
    uint8_t desc[8];
    if (auto f = AccessLinear(pg, gdtr.base + (sel & ~7u), desc, 8, false,
                              false)) {
      return f;
    }
    const bool is_code = (desc[5] & 0x18) == 0x18;
    const int cs_dpl = (desc[5] >> 5) & 3;
    if (!is_code || cs_dpl > cpl || (lm && !(desc[6] & 0x20))) {
      return Fault{13, sel_err, true};
    }
    if (!(desc[5] & 0x80)) return Fault{11, sel_err, true};
    const int new_cpl = (desc[5] & 4) ? cpl : cs_dpl;  // conforming keeps CPL
    uint16_t new_ss = ss;
    uint64_t new_rsp = rsp;
    const bool priv_change = new_cpl < cpl;
    if (ist || priv_change) uc_reg_read(uc_, UC_X86_REG_TR, &tr);
    // TR's selector (used only where `tr` was read). Not Reg(UC_X86_REG_TR):
    // Unicorn stores a whole uc_x86_mmr through the pointer.
    const uint32_t ts_err = (tr.selector & 0xFFFC) | ext;
    if (lm) {
      uint32_t tss_off = ist ? 0x24 + (ist - 1) * 8
                             : (priv_change ? 4 + new_cpl * 8 : 0);
      if (ist || priv_change) {
        if (tss_off + 7 > tr.limit) return Fault{10, ts_err, true};
        if (auto f = AccessLinear(pg, tr.base + tss_off, &new_rsp, 8, false,
                                  false)) {
          return f;
        }
      }
      if (priv_change) new_ss = static_cast<uint16_t>(new_cpl);
      new_rsp &= ~0xFull;
      int64_t s = static_cast<int64_t>(new_rsp - 1) >> 47;
      if (s != 0 && s != -1) return Fault{12, ext, true};
      uint64_t frame[6];
      int n = 0;
      if (has_err) frame[n++] = err;
      frame[n++] = ret_rip;
      frame[n++] = cs;
      frame[n++] = rflags;
      frame[n++] = rsp;
      frame[n++] = ss;
      new_rsp -= n * 8;
      if (auto f = AccessLinear(pg, new_rsp, frame, n * 8, true,
                                new_cpl == 3)) {
        return f;
      }
    } else {
      uint64_t ss_base = 0;
      if (priv_change) {
        uint32_t esp0 = 0;
        uint16_t ss0 = 0;
        uint32_t off = 4 + new_cpl * 8;
        if (off + 5 > tr.limit) return Fault{10, ts_err, true};
        if (auto f = AccessLinear(pg, tr.base + off, &esp0, 4, false, false))
          return f;
        if (auto f = AccessLinear(pg, tr.base + off + 4, &ss0, 2, false, false))
          return f;
        new_ss = ss0;
        new_rsp = esp0;
      }
      // Stack segment base from its GDT descriptor (flat stacks are the norm).
      if ((new_ss & 0xFFFC) != 0 && !(new_ss & 4) && (new_ss | 7u) <= gdtr.limit) {
        uint8_t sd[8];
        if (!AccessLinear(pg, gdtr.base + (new_ss & ~7u), sd, 8, false, false)) {
          ss_base = sd[2] | (sd[3] << 8) | (sd[4] << 16) |
                    (static_cast<uint64_t>(sd[7]) << 24);
        }
      }
      uint32_t frame[6];
      int n = 0;
      if (has_err) frame[n++] = err;
      frame[n++] = static_cast<uint32_t>(ret_rip);
      frame[n++] = cs;
      frame[n++] = static_cast<uint32_t>(rflags);
      if (priv_change) {
        frame[n++] = static_cast<uint32_t>(rsp);
        frame[n++] = ss;
      }
      new_rsp = static_cast<uint32_t>(new_rsp - n * 4);
      if (auto f = AccessLinear(pg, (ss_base + new_rsp) & 0xFFFFFFFF, frame,
                                n * 4, true, new_cpl == 3)) {
        if (f->vector == 14) f->vector = 14;
        return f;
      }
    }
    uint64_t new_flags = rflags & ~(kTF | kNT | kRF | kVM);
    if (type == 0xE) new_flags &= ~kIF;
    // The same writes in the same order as separate uc_reg_write() calls,
    // in one uc_reg_write_batch().
    uint64_t sel64 = sel, new_ss64 = new_ss;
    // (Filled, not zero-initialized: `= {...}` on these became a `rep stos`,
    // 1/5 of Deliver's time.)
    int ids[5];
    void* vals[5];
    int n = 0;
    ids[n] = UC_X86_REG_RSP, vals[n++] = &new_rsp;
    ids[n] = UC_X86_REG_RFLAGS, vals[n++] = &new_flags;
    if (sel != cs) ids[n] = UC_X86_REG_CS, vals[n++] = &sel64;
    if (new_ss != ss) ids[n] = UC_X86_REG_SS, vals[n++] = &new_ss64;
    ids[n] = UC_X86_REG_RIP, vals[n++] = &offset;
    uc_reg_write_batch(uc_, ids, vals, n);
    return std::nullopt;
  }

  // Delivers an event, resolving faults during delivery per SDM table 6-5.
  // Returns false if the vCPU shut down.
  // `rflags`: as in ReadDeliveryRegs().
  bool Deliver(int vector, Kind kind, bool has_err, uint32_t err,
               uint64_t ret_rip, std::optional<uint64_t> rflags = std::nullopt) {
    const DeliveryRegs regs = ReadDeliveryRegs(rflags);
    int first = vector;
    for (int depth = 0; depth < 4; ++depth) {
      std::optional<Fault> f =
          TryDeliver(regs, vector, kind, has_err, err, ret_rip);
      if (!f) return true;
      if (f->vector < 0) {
        Shutdown(absl::StrFormat(
            "vector %#x raised in real mode at rip %#x (real-mode delivery is "
            "not modelled)", vector, ret_rip));
        return false;
      }
      if (f->vector == 14) SetReg(UC_X86_REG_CR2, f->cr2);
      if (vector == 8) {
        Shutdown(absl::StrFormat(
            "triple fault: vector %d (error %#x) while delivering #DF at rip "
            "%#x", f->vector, f->error, ret_rip));
        return false;
      }
      bool c1 = IsContributory(vector), p1 = vector == 14;
      bool c2 = IsContributory(f->vector), p2 = f->vector == 14;
      if ((c1 && c2) || (p1 && (c2 || p2))) {
        Trace(trace::EXCEPTION,
              absl::StrFormat("#DF: vector %d while delivering %d", f->vector,
                              vector), 8);
        vector = 8, has_err = true, err = 0;
      } else {
        vector = f->vector, has_err = f->has_error, err = f->error;
      }
      kind = Kind::kException;
    }
    Shutdown(absl::StrFormat("unresolvable fault nesting delivering %d", first));
    return false;
  }

  void ResetUnicornExceptionState() {
    const Calibration& cal = GetCalibration();
    if (cal.old_exception_offset < 0) return;
    if (ctx_ == nullptr && uc_context_alloc(uc_, &ctx_) != UC_ERR_OK) return;
    if (uc_context_save(uc_, ctx_) != UC_ERR_OK) return;
    int32_t none = -1;
    std::memcpy(reinterpret_cast<uint8_t*>(ctx_) + cal.old_exception_offset,
                &none, 4);
    uc_context_restore(uc_, ctx_);
  }

  void Shutdown(const std::string& why) {
    state_ = State::kShutdown;
    stop_reason_ = why;
    Trace(trace::MACHINE, "shutdown: " + why);
    if (uc_ != nullptr) {
      // Park in the ROM's "cli; hlt" so the engine stops without uc_emu_stop.
      SetReg(UC_X86_REG_RIP, kRomBase + kRomParkOffset);
    }
  }

  // ---- Pending interrupt check at an instruction boundary -------------
  // Returns true if an event was delivered (RIP now at its handler).
  bool TryInterrupt(uint64_t boundary_rip) {
    if (!nmi_blocked_ && (nmi_pending_ || irq_->TakeNmi())) {
      nmi_pending_ = false;
      nmi_blocked_ = true;
      nmi_return_rip_ = boundary_rip;
      nmi_return_rsp_ = Reg(UC_X86_REG_RSP);
      Trace(trace::NMI, absl::StrFormat("rip=%#x", boundary_rip), 2);
      Deliver(2, Kind::kNmi, false, 0, boundary_rip);
      return true;
    }
    int v = irq_->PendingVector();
    if (v < 0) {
      check_irq_ = false;
      return false;
    }
    const uint64_t rflags = Reg(UC_X86_REG_RFLAGS);
    if (!(rflags & kIF)) return false;  // waits for IF
    irq_->Acknowledge(v);
    if (tracer_ != nullptr && tracer_->enabled()) {
      Trace(trace::DELIVER, absl::StrFormat("rip=%#x", boundary_rip), v,
            boundary_rip);
    }
    Deliver(v, Kind::kExternal, false, 0, boundary_rip, rflags);
    return true;  // check_irq_ stays set: more may be pending
  }

  bool WakeCondition() {
    if (!nmi_blocked_ && (nmi_pending_ || irq_->TakeNmi())) {
      nmi_pending_ = true;
      return true;
    }
    int v = irq_->PendingVector();
    if (v < 0) {
      check_irq_ = false;
      return false;
    }
    return Reg(UC_X86_REG_RFLAGS) & kIF;
  }

  // ---- Hooks ----------------------------------------------------------
  static void OnBlock(uc_engine*, uint64_t addr, uint32_t size, void* ud) {
    static_cast<Impl*>(ud)->Block(addr, size);
  }
  void Block(uint64_t addr, uint32_t size) {
    if (addr >= kRomBase && addr < kRomBase + kRomSize) {  // firmware
      InvalidateControl();  // its CR/EFER writes are not hooked
      return;
    }
    if (nmi_blocked_ && addr == nmi_return_rip_ &&
        Reg(UC_X86_REG_RSP) == nmi_return_rsp_) {
      nmi_blocked_ = false;  // IRET back to the interrupted context
      check_irq_ = true;
    }
    // Direct-mapped cache in front of blocks_ (the hash lookup was the
    // largest cost of this hook, which runs for every guest block).
    BlockCacheEntry& ce = block_cache_[BlockCacheIndex(addr)];
    if (ce.addr != addr || ce.size != size) [[unlikely]] {
      auto it = blocks_.find(BlockKey{addr, size});
      if (it == blocks_.end()) {
        if (!FirstSight(addr, size)) return;  // restarted with new hooks
        it = blocks_.find(BlockKey{addr, size});
      }
      ce = BlockCacheEntry{addr, size, it->second};
    }
    const BlockInfo& info = ce.info;
    if (!pending_flush_.empty()) {
      for (auto [a, b] : pending_flush_) uc_ctl_remove_cache(uc_, a, b);
      pending_flush_.clear();
    }
    const bool in_shadow = last_block_shadow_ && !deferred_last_;
    deferred_last_ = false;
    inhibit_at_ = ~0ull;
    if (check_irq_ && KickDue()) {
      if (in_shadow) {
        deferred_last_ = true;
        inhibit_at_ = addr;
      } else if (TryInterrupt(addr)) {
        last_block_shadow_ = false;
        return;  // this block did not run; the handler's block follows
      }
    }
    if (stop_requested_ || retired_ >= budget_end_) {
      exit_ = stop_requested_ ? Exit::kStopped : Exit::kBudget;
      stop_requested_ = false;
      StopAt(addr);
      return;
    }
    retired_ += info.icount;
    block_start_ = addr;
    block_size_ = size;
    block_end_ = addr + size;
    block_icount_ = info.icount;
    last_block_shadow_ = info.ends_with_shadow;
  }

  // Scans a block seen for the first time; returns false if it was restarted
  // to pick up new code hooks.
  bool FirstSight(uint64_t addr, uint32_t size) {
    const PagingRegs& pg = ReadPaging();
    std::vector<uint8_t> code(size + 2);
    size_t n = ReadCode(pg, addr, code.data(), size);
    bool added = false;
    for (const CodeSite& site : Decoder(pg).FindSites(code.data(), n, addr)) {
      const uint64_t at = site.kind == CodeSiteKind::kPortIo
                              ? site.address + site.length  // right after it
                              : site.address;
      std::vector<BlockKey>& blocks = site_blocks_[at];
      if (blocks.empty() || !(blocks.back() == BlockKey{addr, size})) {
        blocks.push_back(BlockKey{addr, size});
      }
      switch (site.kind) {
        case CodeSiteKind::kPortIo:  // deliver right after the access
          added |= AddHook(at, at);
          continue;
        case CodeSiteKind::kRdmsr: special_[site.address] = Special::kRdmsr; break;
        case CodeSiteKind::kWrmsr: special_[site.address] = Special::kWrmsr; break;
        case CodeSiteKind::kRdtsc: special_[site.address] = Special::kRdtsc; break;
        case CodeSiteKind::kRdtscp: special_[site.address] = Special::kRdtscp; break;
        case CodeSiteKind::kControl: special_[site.address] = Special::kControl; break;
      }
      added |= AddHook(site.address, site.address);
    }
    if (added) {
      EvictColdHooks(addr, addr + size);
      uc_ctl_remove_cache(uc_, addr, addr + size);
      // Restart: the first run is hooked too. `addr` is linear; RIP is not
      // in real mode (CS base = selector << 4), e.g. an AP's SIPI code.
      SetReg(UC_X86_REG_RIP, addr - CodeSegmentBase(pg));
      return false;
    }
    uc_tb tb{};
    uint32_t icount = 1;
    if (uc_ctl_request_cache(uc_, addr, &tb) == UC_ERR_OK && tb.icount > 0) {
      icount = tb.icount;
    }
    bool shadow = false;
    if (n == size && size >= 1) {
      uint8_t last = code[size - 1];
      shadow = last == 0xFB || last == 0x17;  // STI, POP SS
      if (size >= 2 && code[size - 2] == 0x8E && (last & 0xF8) == 0xD0) {
        shadow = true;  // MOV SS, r16
      }
    }
    blocks_[BlockKey{addr, size}] = BlockInfo{icount, shadow};
    return true;
  }

  // Blocks are credited in full when entered. When execution leaves a block
  // at `addr` in its middle (interrupt delivered or run stopped after a
  // device access), the instructions from `addr` to the block end never
  // retire: take them back so virtual time stays exactly "retired
  // instructions". The count comes from the TB Unicorn would translate at
  // `addr`, which ends where the current block ends.
  void UncreditRestOfBlock(uint64_t addr) {
    if (addr <= block_start_ || addr >= block_end_) return;
    auto it = rest_icount_.find(addr);
    if (it == rest_icount_.end()) {
      // Exact only when the TB at `addr` ends where this block ends (blocks
      // end at branches, so real code always matches). Otherwise (code
      // running into translation limits, e.g. zero-filled memory) keep the
      // full credit: an over-count, but a deterministic one.
      uc_tb tb{};
      uint32_t n = 0;
      if (uc_ctl_request_cache(uc_, addr, &tb) == UC_ERR_OK &&
          tb.pc + tb.size == block_end_) {
        n = tb.icount;
      }
      it = rest_icount_.emplace(addr, n).first;
    }
    const uint64_t rest = std::min<uint64_t>(it->second, block_icount_ - 1);
    retired_ -= rest;
    block_end_ = addr;  // uncredit at most once per block entry
  }

  // Ends uc_emu_start() with the guest at instruction boundary `addr`.
  // uc_emu_stop() alone is not enough in a UC_HOOK_BLOCK callback: when the
  // block was entered through a chained (goto_tb) jump, Unicorn 2.1.1 has
  // not stored the new RIP yet, and on a stop request it skips restoring RIP
  // from the TB. RIP is then left at the last instruction that synced it
  // (e.g. a CALL, whose push precedes its jump), and the next Run()
  // re-executes that instruction although its effects are done: a second
  // return address is pushed, the guest's stack is off by 8 and its IRETQ
  // pops the error code as RIP. Writing RIP makes the stop exact.
  void StopAt(uint64_t addr) {
    stop_by_hook_ = true;
    SetReg(UC_X86_REG_RIP, addr);
    uc_emu_stop(uc_);
  }

  // ---- Narrow code hooks ------------------------------------------------
  // Every call of any UC_HOOK_CODE hook makes Unicorn walk its whole list of
  // code hooks (~2.8 ns per hook here), so at most kMaxCodeHooks stay
  // installed: adding one beyond that (in FirstSight) removes the least
  // recently fired ones, with the translations that call them and this
  // file's record of the blocks containing their sites, so the next
  // execution of such a block is seen first again and hooked again before
  // it runs (an MMIO access is learned again). A site costs a
  // retranslation only when it comes back after kMaxCodeHooks others.
  static constexpr size_t kMaxCodeHooks = 16;
  struct CodeHook {
    uc_hook handle;
    uint64_t last_fired;     // hook_clock_ at the last call
    uint64_t mmio_access;    // the learned MMIO access (AfterMmio), or ~0
  };
  // `mmio_access`: see CodeHook. Returns false if `begin` is hooked already.
  bool AddHook(uint64_t begin, uint64_t end, uint64_t mmio_access = ~0ull) {
    if (hooked_.contains(begin)) return false;
    uc_hook h;
    uc_hook_add(uc_, &h, UC_HOOK_CODE, reinterpret_cast<void*>(&Impl::OnCode),
                this, begin, end);
    hooked_.emplace(begin, CodeHook{h, ++hook_clock_, mmio_access});
    return true;
  }
  // Removes the least recently fired hooks beyond kMaxCodeHooks, except
  // those in [keep_begin, keep_end) (the block being scanned). Called from
  // the block hook only: the removed hooks' translations must be gone
  // before any of them can run again.
  void EvictColdHooks(uint64_t keep_begin, uint64_t keep_end) {
    while (hooked_.size() > kMaxCodeHooks) {
      auto victim = hooked_.end();
      for (auto it = hooked_.begin(); it != hooked_.end(); ++it) {
        if (it->first >= keep_begin && it->first < keep_end) continue;
        if (victim == hooked_.end() ||
            it->second.last_fired < victim->second.last_fired) {
          victim = it;
        }
      }
      if (victim == hooked_.end()) return;
      const uint64_t begin = victim->first;
      const CodeHook hook = victim->second;
      hooked_.erase(victim);
      uc_hook_del(uc_, hook.handle);
      uc_ctl_remove_cache(uc_, begin, begin + 1);
      if (auto b = site_blocks_.find(begin); b != site_blocks_.end()) {
        for (const BlockKey& key : b->second) {
          blocks_.erase(key);
          BlockCacheEntry& ce = block_cache_[BlockCacheIndex(key.addr)];
          if (ce.addr == key.addr && ce.size == key.size) ce = BlockCacheEntry{};
          uc_ctl_remove_cache(uc_, key.addr, key.addr + key.size);
        }
        site_blocks_.erase(b);
      }
      if (hook.mmio_access != ~0ull) mmio_learned_.erase(hook.mmio_access);
      ++hooks_evicted_;
    }
  }

  static void OnCode(uc_engine*, uint64_t addr, uint32_t, void* ud) {
    static_cast<Impl*>(ud)->Code(addr);
  }
  void Code(uint64_t addr) {
    if (state_ == State::kShutdown) return;
    // A device access earlier in this block asked to end the run (e.g.
    // debug-exit): stop at this instruction boundary, like hardware.
    if (stop_requested_) {
      UncreditRestOfBlock(addr);
      exit_ = Exit::kStopped;
      stop_requested_ = false;
      StopAt(addr);
      return;
    }
    if (check_irq_ && addr != inhibit_at_ && KickDue() && TryInterrupt(addr)) {
      UncreditRestOfBlock(addr);
      return;
    }
    if (auto h = hooked_.find(addr); h != hooked_.end()) {
      h->second.last_fired = ++hook_clock_;
    }
    auto it = special_.find(addr);
    if (it == special_.end()) return;
    if (it->second == Special::kControl) {
      InvalidateControl();  // runs before the instruction
      return;
    }
    const PagingRegs& pg = ReadPaging();
    uint8_t b[3] = {};
    ReadCode(pg, addr, b, 3);
    switch (it->second) {
      case Special::kControl:
        break;
      case Special::kRdmsr:
        if (b[0] == 0x0F && b[1] == 0x32) EmulateRdmsr(addr);
        break;
      case Special::kWrmsr:
        if (b[0] == 0x0F && b[1] == 0x30) EmulateWrmsr(addr);
        break;
      case Special::kRdtsc:
        if (b[0] == 0x0F && b[1] == 0x31) EmulateRdtsc(addr, 2, false);
        break;
      case Special::kRdtscp:
        if (b[0] == 0x0F && b[1] == 0x01 && b[2] == 0xF9)
          EmulateRdtsc(addr, 3, true);
        break;
    }
  }

  uint64_t VirtualTsc() const {
    return host_->SliceStartTime() + (retired_ - slice_start_retired_);
  }

  static bool UnicornOwnsMsr(uint32_t msr) {
    switch (msr) {
      case 0xC0000080: case 0xC0000081: case 0xC0000082: case 0xC0000083:
      case 0xC0000084: case 0xC0000100: case 0xC0000101: case 0xC0000102:
      case 0xC0000103: case 0x277: case 0x174: case 0x175: case 0x176:
        return true;
      default:
        return false;
    }
  }
  bool Cpl0() const { return (Reg(UC_X86_REG_CS) & 3) == 0; }

  void RaiseGp0(uint64_t rip) {
    if (!Deliver(13, Kind::kException, true, 0, rip)) return;
    ResetUnicornExceptionState();
  }

  void EmulateRdmsr(uint64_t addr) {
    uint32_t msr = static_cast<uint32_t>(Reg(UC_X86_REG_RCX));
    if (UnicornOwnsMsr(msr)) return;  // Unicorn executes it
    std::optional<uint64_t> v;
    if (!Cpl0()) {
      v = std::nullopt;
    } else if (msr == 0x10) {
      v = VirtualTsc();
    } else {
      v = host_->ReadMsr(config_.index, msr);
    }
    if (tracing()) {  // the string only when traced: APIC MSR fast path
      Trace(trace::MSR, absl::StrFormat("rdmsr %#x%s", msr, v ? "" : " #GP"),
            -1, msr, v.value_or(0));
    }
    if (!v) {
      RaiseGp0(addr);
      return;
    }
    SetReg(UC_X86_REG_RAX, *v & 0xFFFFFFFF);
    SetReg(UC_X86_REG_RDX, *v >> 32);
    SetReg(UC_X86_REG_RIP, addr + 2);
  }
  void EmulateWrmsr(uint64_t addr) {
    uint64_t rcx = 0, rax = 0, rdx = 0, cs = 0;
    {
      int ids[] = {UC_X86_REG_RCX, UC_X86_REG_RAX, UC_X86_REG_RDX, UC_X86_REG_CS};
      void* vals[] = {&rcx, &rax, &rdx, &cs};
      uc_reg_read_batch(uc_, ids, vals, 4);
    }
    const uint32_t msr = static_cast<uint32_t>(rcx);
    if (UnicornOwnsMsr(msr)) {
      if (msr == 0xC0000080) InvalidateControl();  // EFER, written next
      return;
    }
    const uint64_t value = (rax & 0xFFFFFFFF) | (rdx << 32);
    const uint64_t budget_before = budget_end_;
    const bool ok = (cs & 3) == 0 &&
                    (msr == 0x10 || host_->WriteMsr(config_.index, msr, value));
    if (tracing()) {  // the string only when traced: APIC MSR fast path
      Trace(trace::MSR, absl::StrFormat("wrmsr %#x%s", msr, ok ? "" : " #GP"),
            -1, msr, value);
    }
    if (!ok) {
      RaiseGp0(addr);
      return;
    }
    // Unicorn implements no x2APIC MSR (SDM 11.12.1.2): its own WRMSR, which
    // runs when this hook returns, ignores them. So unless the write made an
    // interrupt deliverable or ended the slice (both are taken at the
    // boundary right after the WRMSR), the block goes on without the exit a
    // RIP write costs (an x2APIC EOI with nothing else pending).
    if (msr >= 0x800 && msr <= 0x8FF && !check_irq_ && !stop_requested_ &&
        budget_end_ == budget_before) {
      return;
    }
    SetReg(UC_X86_REG_RIP, addr + 2);
  }
  void EmulateRdtsc(uint64_t addr, int len, bool p) {
    uint64_t t = VirtualTsc();
    SetReg(UC_X86_REG_RAX, t & 0xFFFFFFFF);
    SetReg(UC_X86_REG_RDX, t >> 32);
    if (p) SetReg(UC_X86_REG_RCX, config_.apic_id);  // TSC_AUX := APIC id
    SetReg(UC_X86_REG_RIP, addr + len);
  }

  static void OnIntr(uc_engine*, uint32_t intno, void* ud) {
    static_cast<Impl*>(ud)->Intr(intno);
  }
  void Intr(uint32_t intno) {
    if (state_ == State::kShutdown) return;
    uint64_t rip = Reg(UC_X86_REG_RIP);
    if (intno > 255) {
      Shutdown(absl::StrFormat("unexpected engine event %#x at rip %#x", intno,
                               rip));
      return;
    }
    int v = static_cast<int>(intno);
    // INT n (n >= 32), INT3 and INTO are software events: RIP is already past
    // the instruction. Everything else is a fault (RIP at the instruction).
    Kind kind = (v >= 32 || v == 3 || v == 4) ? Kind::kSoftware
                                                 : Kind::kException;
    bool has_err = v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21;
    uint32_t err = 0;
    if (v == 14) err = PageFaultErrorCode(rip);
    Trace(trace::EXCEPTION,
          absl::StrFormat("vector %d err %#x rip %#x", v, err, rip), v, rip,
          err);
    if (!Deliver(v, kind, has_err, err, rip)) return;
    ResetUnicornExceptionState();
  }

  // Unicorn does not expose the #PF error code (SDM 4.7); recompute it from
  // CR2 by walking the guest tables. The access type is inferred: a fetch if
  // CR2 lies in the faulting instruction, a write if the page is present
  // (reads of present pages do not fault for these privileges) or the
  // instruction is a store, else a read.
  uint32_t PageFaultErrorCode(uint64_t rip) {
    PagingRegs pg = ReadPaging();  // a copy: Translate() walks, bypassing tlb_
    uint64_t cr2 = Reg(UC_X86_REG_CR2);
    bool user = (Reg(UC_X86_REG_CS) & 3) == 3;
    bool fetch = cr2 >= rip && cr2 < rip + 16;
    uint64_t pa;
    uint32_t e = 0;
    if (fetch) {
      if (!Translate(pg, cr2, false, user, true, &pa, &e)) return e;
    }
    if (!Translate(pg, cr2, false, user, false, &pa, &e)) {
      // Not present (or U/S): decide read vs write from the instruction.
      uint8_t code[16] = {};
      ReadCode(pg, rip, code, 16);
      bool code64 = pg.efer & (1 << 10);
      bool store = MovStoreLength(code, 16, code64) > 0;
      uint64_t rsp = Reg(UC_X86_REG_RSP);
      if (cr2 < rsp && cr2 + 64 >= rsp) store = true;  // push/call
      return e | (store ? 2 : 0);
    }
    // Present and readable: it must have been a write.
    Translate(pg, cr2, true, user, false, &pa, &e);
    return e | 2;
  }

  static bool OnInvalid(uc_engine*, void*) {
    return true;  // Unicorn then reports vector 6 through UC_HOOK_INTR
  }

  static bool OnBadAccess(uc_engine*, uc_mem_type type, uint64_t addr, int,
                          int64_t, void* ud) {
    auto* self = static_cast<Impl*>(ud);
    self->bad_access_ = true;
    self->bad_access_addr_ = addr;
    self->bad_access_write_ =
        type == UC_MEM_WRITE_UNMAPPED || type == UC_MEM_WRITE_PROT;
    self->bad_access_fetch_ =
        type == UC_MEM_FETCH_UNMAPPED || type == UC_MEM_FETCH_PROT;
    return false;
  }
  static uint32_t OnIn(uc_engine*, uint32_t port, int size, void* ud) {
    auto* self = static_cast<Impl*>(ud);
    return static_cast<uint32_t>(self->host_->PortRead(
        self->config_.index, static_cast<uint16_t>(port), size));
  }
  static void OnOut(uc_engine*, uint32_t port, int size, uint32_t value,
                    void* ud) {
    auto* self = static_cast<Impl*>(ud);
    self->host_->PortWrite(self->config_.index, static_cast<uint16_t>(port),
                           size, value);
  }

  static uint64_t MmioReadLow(uc_engine*, uint64_t off, unsigned size,
                              void* ud) {
    auto* self = static_cast<Impl*>(ud);
    uint64_t v = self->host_->MmioRead(self->config_.index,
                                       self->ram_->size() + off, size);
    self->AfterMmio(false, self->ram_->size() + off, size);
    return v;
  }
  static void MmioWriteLow(uc_engine*, uint64_t off, unsigned size,
                           uint64_t value, void* ud) {
    auto* self = static_cast<Impl*>(ud);
    self->host_->MmioWrite(self->config_.index, self->ram_->size() + off, size,
                           value);
    self->AfterMmio(true, self->ram_->size() + off, size);
  }
  static uint64_t MmioReadHigh(uc_engine*, uint64_t off, unsigned size,
                               void* ud) {
    auto* self = static_cast<Impl*>(ud);
    uint64_t v = self->host_->MmioRead(self->config_.index, k4GiB + off, size);
    self->AfterMmio(false, k4GiB + off, size);
    return v;
  }
  static void MmioWriteHigh(uc_engine*, uint64_t off, unsigned size,
                            uint64_t value, void* ud) {
    auto* self = static_cast<Impl*>(ud);
    self->host_->MmioWrite(self->config_.index, k4GiB + off, size, value);
    self->AfterMmio(true, k4GiB + off, size);
  }

  // After a device access of `size` bytes at physical `pa`: if it made an
  // interrupt (possibly) pending, arrange delivery at the next instruction
  // boundary (see file comment).
  void AfterMmio(bool write, uint64_t pa, unsigned size) {
    if (!check_irq_) return;
    const std::optional<MemoryOperandInsn> found = FindAccess(pa, size, write);
    if (!found) return;  // taken at the next block boundary
    const uint64_t x = found->address;
    if (write && found->mov_store) {
      SetReg(UC_X86_REG_RIP, x + found->length);  // TB exits right after the store
      return;
    }
    if (mmio_learned_.insert(x).second) {
      // A hook on the next instruction (precise from the next execution on).
      AddHook(x + found->length, x + found->length, x);
      pending_flush_.push_back({x, x + 16});
    }
  }

  // Which instruction of the running block made the MMIO access? Unicorn
  // does not say: RIP in an MMIO callback is stale (a UC_HOOK_MEM_* hook
  // would make Unicorn sync it, but any such hook makes Unicorn translate
  // every guest RAM access as a slow helper call, ~27 ns each:
  // bench/vcpu_bench BM_BareUnicornRamAccess). The general registers are
  // current there (TCG saves them before a softmmu slow-path call), so the
  // block's explicit memory operands are evaluated and the one whose address
  // covers `pa` is the access. Nothing if not exactly one matches, or if the
  // block has accesses that cannot be evaluated (stack, string, FS/GS).
  std::optional<MemoryOperandInsn> FindAccess(uint64_t pa, unsigned size, bool write) {
    if (block_size_ == 0) return std::nullopt;
    const PagingRegs& pg = ReadPaging();
    std::vector<uint8_t>& code = code_scratch_;  // no allocation per access
    code.resize(block_size_);
    const size_t n = ReadCode(pg, block_start_, code.data(), block_size_);
    if (n != block_size_) return std::nullopt;
    BlockOperands& ops = block_operands_[BlockKey{block_start_, block_size_}];
    if (ops.code != code) {  // first time, or the code changed
      ops.code = code;
      ops.operands = Decoder(pg).MemoryOperands(code.data(), n, block_start_);
    }
    if (!ops.operands.complete) return std::nullopt;
    static constexpr int kGpr[16] = {
        UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RBX,
        UC_X86_REG_RSP, UC_X86_REG_RBP, UC_X86_REG_RSI, UC_X86_REG_RDI,
        UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10, UC_X86_REG_R11,
        UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15};
    uint64_t gpr[16] = {};
    {
      int ids[16];
      void* vals[16];
      int count = 0;
      uint32_t needed = 0;
      for (const MemoryOperandInsn& m : ops.operands.insns) {
        if (m.base >= 0) needed |= 1u << m.base;
        if (m.index >= 0) needed |= 1u << m.index;
      }
      for (int r = 0; r < 16; ++r) {
        if (needed & (1u << r)) ids[count] = kGpr[r], vals[count++] = &gpr[r];
      }
      if (count > 0) uc_reg_read_batch(uc_, ids, vals, count);
    }
    std::optional<MemoryOperandInsn> match;
    for (const MemoryOperandInsn& m : ops.operands.insns) {
      if (!(write ? m.writes : m.reads) || m.size < size) continue;
      uint64_t ea = m.rip_relative ? m.address + m.length : 0;
      if (m.base >= 0) ea += gpr[m.base];
      if (m.index >= 0) ea += gpr[m.index] * m.scale;
      ea += static_cast<uint64_t>(m.disp);
      if (m.address_bits == 32) ea &= 0xFFFFFFFF;
      uint64_t ea_pa = 0;
      uint32_t err = 0;
      if (!Translate(pg, ea, false, false, false, &ea_pa, &err)) continue;
      if (pa < ea_pa || pa + size > ea_pa + m.size) continue;  // also a split half
      if (match && match->address != m.address) return std::nullopt;  // ambiguous
      match = m;
    }
    return match;
  }
  // CS's GDT descriptor (protected mode); false if it cannot be read.
  bool ReadCodeDescriptor(const PagingRegs& pg, uint8_t d[8]) {
    const uint16_t cs = static_cast<uint16_t>(Reg(UC_X86_REG_CS));
    return !AccessLinear(pg, Control().gdtr.base + (cs & ~7u), d, 8, false, false);
  }
  // The current code segment's default operand size: 16 (real mode or
  // CS.D=0), 32, or 64 (IA-32e mode and CS.L=1). An unreadable descriptor
  // counts as the mode's usual one (64 in IA-32e mode, else 32).
  int CodeBits(const PagingRegs& pg) {
    if (!(pg.cr0 & 1)) return 16;
    const bool lma = pg.efer & (1 << 10);
    uint8_t d[8] = {};
    if (!ReadCodeDescriptor(pg, d)) return lma ? 64 : 32;
    if (lma && (d[6] & 0x20)) return 64;
    return (d[6] & 0x40) ? 32 : 16;
  }
  // CS's base: selector << 4 in real mode, 0 in 64-bit mode, else the GDT
  // descriptor's (0 if unreadable).
  uint64_t CodeSegmentBase(const PagingRegs& pg) {
    if (!(pg.cr0 & 1)) return uint64_t{static_cast<uint16_t>(Reg(UC_X86_REG_CS))} << 4;
    uint8_t d[8] = {};
    if (!ReadCodeDescriptor(pg, d)) return 0;
    if ((pg.efer & (1 << 10)) && (d[6] & 0x20)) return 0;  // 64-bit code
    return d[2] | (d[3] << 8) | (d[4] << 16) | (static_cast<uint64_t>(d[7]) << 24);
  }
  X86Decoder& Decoder(const PagingRegs& pg) {
    switch (CodeBits(pg)) {
      case 64: return decode64_;
      case 32: return decode32_;
      default: return decode16_;
    }
  }

  static int OnCpuid(uc_engine*, void* ud) {
    return static_cast<Impl*>(ud)->Cpuid() ? 1 : 0;
  }
  bool Cpuid() {
    uint32_t leaf = static_cast<uint32_t>(Reg(UC_X86_REG_RAX));
    uint32_t sub = static_cast<uint32_t>(Reg(UC_X86_REG_RCX));
    uint32_t a, b, c, d;
    if (leaf == 1) {
      const Calibration& cal = GetCalibration();
      a = cal.cpuid1[0];
      b = (cal.cpuid1[1] & 0x0000FFFF) | ((config_.apic_id & 0xFF) << 24) |
          ((static_cast<uint32_t>(config_.num_cpus) & 0xFF) << 16);
      c = cal.cpuid1[2] & ~((1u << 21) | (1u << 24));
      if (config_.x2apic) c |= 1u << 21;
      if (config_.tsc_deadline) c |= 1u << 24;
      d = cal.cpuid1[3] | (1u << 9) | (config_.num_cpus > 1 ? (1u << 28) : 0);
    } else if (leaf == 0xB) {
      int bits = 0;
      while ((1 << bits) < config_.num_cpus) ++bits;
      d = config_.apic_id;
      if (sub == 0) {
        a = 0, b = 1, c = (1u << 8) | 0;
      } else if (sub == 1) {
        a = bits, b = config_.num_cpus, c = (2u << 8) | 1;
      } else {
        a = 0, b = 0, c = sub & 0xFF;
      }
    } else {
      return false;  // Unicorn's model answers
    }
    SetReg(UC_X86_REG_RAX, a);
    SetReg(UC_X86_REG_RBX, b);
    SetReg(UC_X86_REG_RCX, c);
    SetReg(UC_X86_REG_RDX, d);
    return true;
  }

  bool tracing() const { return tracer_ != nullptr && tracer_->enabled(); }
  void Trace(Stage stage, const std::string& detail, int vector = -1,
             uint64_t address = 0, uint64_t data = 0) {
    if (!tracing()) return;
    tracer_->Emit(host_->SliceStartTime() + (retired_ - slice_start_retired_),
                  stage, config_.index, detail, vector, address, data);
  }

  // Static configuration.
  const VcpuConfig config_;
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

// ---- Vcpu ---------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Vcpu>> Vcpu::Create(const VcpuConfig& config,
                                                   GuestRam* ram,
                                                   VcpuHost* host,
                                                   InterruptSource* irq,
                                                   Tracer* tracer) {
  if (ram == nullptr || host == nullptr || irq == nullptr) {
    return absl::InvalidArgumentError(
        "Vcpu::Create needs non-null ram, host and interrupt source");
  }
  auto impl = std::make_unique<Impl>(config, ram, host, irq, tracer);
  absl::Status s = impl->Init0();
  if (!s.ok()) return s;
  return std::unique_ptr<Vcpu>(new Vcpu(std::move(impl)));
}

Vcpu::Vcpu(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Vcpu::~Vcpu() = default;

absl::Status Vcpu::SetMultibootEntry(uint32_t entry, uint32_t eax,
                                     uint32_t ebx) {
  return impl_->SetMultibootEntry(entry, eax, ebx);
}
void Vcpu::Init() { impl_->Init(); }
void Vcpu::Sipi(uint8_t vector) { impl_->Sipi(vector); }
Vcpu::Exit Vcpu::Run(uint64_t budget) { return impl_->Run(budget); }
void Vcpu::ShortenSlice(uint64_t remaining) { impl_->ShortenSlice(remaining); }
void Vcpu::KickNotBefore(uint64_t time) { impl_->KickNotBefore(time); }
void Vcpu::Kick() { impl_->Kick(); }
void Vcpu::RequestStop() { impl_->RequestStop(); }
Vcpu::State Vcpu::state() const { return impl_->state_; }
uint64_t Vcpu::instructions_retired() const { return impl_->retired_; }
uint64_t Vcpu::code_hooks_evicted() const { return impl_->hooks_evicted_; }
int Vcpu::index() const { return impl_->config_.index; }
const std::string& Vcpu::stop_reason() const { return impl_->stop_reason_; }
bool Vcpu::interrupts_enabled() const {
  return impl_->uc_ != nullptr && (impl_->Reg(UC_X86_REG_RFLAGS) & kIF);
}

absl::StatusOr<uint64_t> Vcpu::ReadRegister(const std::string& name) const {
  static const auto* kRegs = new absl::flat_hash_map<std::string, int>{
      {"rax", UC_X86_REG_RAX}, {"rbx", UC_X86_REG_RBX},
      {"rcx", UC_X86_REG_RCX}, {"rdx", UC_X86_REG_RDX},
      {"rsi", UC_X86_REG_RSI}, {"rdi", UC_X86_REG_RDI},
      {"rbp", UC_X86_REG_RBP}, {"rsp", UC_X86_REG_RSP},
      {"r8", UC_X86_REG_R8},   {"r9", UC_X86_REG_R9},
      {"r10", UC_X86_REG_R10}, {"r11", UC_X86_REG_R11},
      {"r12", UC_X86_REG_R12}, {"r13", UC_X86_REG_R13},
      {"r14", UC_X86_REG_R14}, {"r15", UC_X86_REG_R15},
      {"rip", UC_X86_REG_RIP}, {"rflags", UC_X86_REG_RFLAGS},
      {"cs", UC_X86_REG_CS},   {"ds", UC_X86_REG_DS},
      {"ss", UC_X86_REG_SS},   {"es", UC_X86_REG_ES},
      {"fs", UC_X86_REG_FS},   {"gs", UC_X86_REG_GS},
      {"cr0", UC_X86_REG_CR0}, {"cr2", UC_X86_REG_CR2},
      {"cr3", UC_X86_REG_CR3}, {"cr4", UC_X86_REG_CR4},
  };
  if (impl_->uc_ == nullptr) return absl::FailedPreconditionError("no engine");
  if (name == "efer") return impl_->Efer();
  auto it = kRegs->find(name);
  if (it == kRegs->end()) {
    return absl::NotFoundError(absl::StrFormat("unknown register '%s'", name));
  }
  return impl_->Reg(it->second);
}

}  // namespace irqlab

// GCC defines __SANITIZE_ADDRESS__ under -fsanitize=address; clang (14)
// does not and answers __has_feature(address_sanitizer) instead.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IRQLAB_LSAN_HOOKS 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(IRQLAB_LSAN_HOOKS)
// Unicorn 2.1.1 leaks 32 bytes per uc_mmio_map() (uc_close does not free the
// callback record; reproduced with a 4-line uc_open/uc_mmio_map/uc_close
// program). Suppress leaks whose allocation is inside libunicorn so that the
// -DIRQLAB_SANITIZE=address,undefined build passes. Only one definition of
// this hook may exist per program.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libunicorn.so\n";
}
// Keep stderr clean (the CLI tests read it): don't list used suppressions.
extern "C" const char* __lsan_default_options() {
  return "print_suppressions=0";
}
#endif
