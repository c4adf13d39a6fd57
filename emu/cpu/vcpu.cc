// One x86-64 vCPU on a Unicorn 2.1.1 engine: everything an x86 CPU does
// around instructions that Unicorn does not (ARCHITECTURE.md, "Unicorn as a vCPU").
// This file: the engine, the run loop, the hooks and the instructions the
// vCPU emulates. Event delivery through the guest IDT is vcpu_delivery.cc,
// the vCPU's own page walk and TLB x86_paging.{h,cc}, class Vcpu::Impl
// vcpu_impl.h.
//
// Hardware modelled (Intel SDM vol. 3):
//   6.12 / 6.14  interrupt and exception delivery: vcpu_delivery.cc, taken
//                at the instruction boundaries this file finds (below).
//   6.8.3        STI / MOV SS interrupt shadow (one block, see below).
//   6.7.1        NMI blocking until the next IRET (the IRET is seen here).
//   9.1 / 9.4    INIT -> wait-for-SIPI; SIPI -> real mode at CS = vector<<8.
//   CPUID leaves 1 and 0xB; RDMSR/WRMSR routing; RDTSC(P) = virtual time.
// NOT modelled: SMI, #MC, debug exceptions and single-step, SYSCALL/SYSENTER
// (Unicorn leaves them to hooks we do not install), TSC writes (ignored);
// for delivery see vcpu_delivery.cc.
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
// * Exceptions: UC_HOOK_INTR reports them; vcpu_delivery.cc delivers them
//   through the guest IDT. Unicorn never clears its "exception in flight" field, so a
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
// * Paging and descriptor tables: CR0/3/4, EFER, IDTR, GDTR and the vCPU's
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
#include "absl/strings/str_format.h"
#include "emu/core/guest_ram.h"
#include "emu/core/trace.h"
#include "emu/cpu/vcpu_impl.h"
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
constexpr uint64_t kUntilNever = ~0ull;  // non-canonical: never executed

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
// Unicorn's ids of the general registers in encoding order (RAX = 0 ...
// R15 = 15: ModRM.reg/rm with REX.R/REX.B).
constexpr int kGpr[16] = {
    UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RBX,
    UC_X86_REG_RSP, UC_X86_REG_RBP, UC_X86_REG_RSI, UC_X86_REG_RDI,
    UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10, UC_X86_REG_R11,
    UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15};

// ROM+0x200: "cli; hlt; jmp $-2" where a shut-down vCPU parks.
constexpr uint64_t kRomParkOffset = 0x200;

// Facts about Unicorn measured once per process with a scratch engine.
struct Calibration {
  int old_exception_offset = -1;  // in the uc_context blob, or -1
  size_t context_size = 0;
};

const Calibration& GetCalibration() {
  static const Calibration* cal = [] {
    auto* c = new Calibration;
    uc_engine* uc = nullptr;
    if (uc_open(UC_ARCH_X86, UC_MODE_64, &uc) != UC_ERR_OK) return c;
    static uint8_t page[0x2000] __attribute__((aligned(4096)));
    // 0x0: xor edx,edx; div edx   0x4: hlt
    const uint8_t code[] = {0x31, 0xD2, 0xF7, 0xF2, 0xF4};
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
    uc_context_free(ctx);
    uc_close(uc);
    return c;
  }();
  return *cal;
}

}  // namespace

// ---- Engine set-up, INIT and SIPI ------------------------------------------
Vcpu::Impl::~Impl() {
  CloseEngine();
  if (rom_) munmap(rom_, kRomSize);
}

absl::Status Vcpu::Impl::Init0() {
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

absl::Status Vcpu::Impl::OpenEngine() {
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

void Vcpu::Impl::CloseEngine() {
  if (ctx_ != nullptr) uc_context_free(ctx_);
  ctx_ = nullptr;
  if (uc_ != nullptr) uc_close(uc_);
  uc_ = nullptr;
}

absl::Status Vcpu::Impl::SetMultibootEntry(uint32_t entry, uint32_t eax,
                                           uint32_t ebx) {
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

void Vcpu::Impl::Init() {
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

void Vcpu::Impl::Sipi(uint8_t vector) {
  if (state_ != State::kWaitForSipi || uc_ == nullptr) return;
  rom_[kRomMode] = 1;
  uint16_t seg = static_cast<uint16_t>(vector) << 8;
  std::memcpy(rom_ + kRomSipiSeg, &seg, 2);
  uint32_t edx = model_->signature;  // processor signature (SDM 9.1.4)
  std::memcpy(rom_ + kRomSipiEdx, &edx, 4);
  uc_ctl_remove_cache(uc_, kRomBase, kRomBase + 0x1000);
  uint64_t rip = kRomBase;
  uc_reg_write(uc_, UC_X86_REG_RIP, &rip);
  state_ = State::kRunnable;
  Trace(trace::CPU_START, absl::StrFormat("SIPI vector=%#x", vector),
        vector);
}

// ---- Run loop, HLT and shutdown --------------------------------------------
bool Vcpu::Impl::WakeCondition() {
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

Vcpu::Exit Vcpu::Impl::Run(uint64_t budget) {
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

void Vcpu::Impl::Shutdown(const std::string& why) {
  state_ = State::kShutdown;
  stop_reason_ = why;
  Trace(trace::MACHINE, "shutdown: " + why);
  if (uc_ != nullptr) {
    // Park in the ROM's "cli; hlt" so the engine stops without uc_emu_stop.
    SetReg(UC_X86_REG_RIP, kRomBase + kRomParkOffset);
  }
}

void Vcpu::Impl::ResetUnicornExceptionState() {
  const Calibration& cal = GetCalibration();
  if (cal.old_exception_offset < 0) return;
  if (ctx_ == nullptr && uc_context_alloc(uc_, &ctx_) != UC_ERR_OK) return;
  if (uc_context_save(uc_, ctx_) != UC_ERR_OK) return;
  int32_t none = -1;
  std::memcpy(reinterpret_cast<uint8_t*>(ctx_) + cal.old_exception_offset,
              &none, 4);
  uc_context_restore(uc_, ctx_);
}

uint64_t Vcpu::Impl::Efer() const {
  uc_x86_msr m{0xC0000080, 0};
  uc_reg_read(uc_, UC_X86_REG_MSR, &m);
  return m.value;
}

// ---- Guest code bytes ------------------------------------------------------
size_t Vcpu::Impl::ReadCode(const PagingRegs& pg, uint64_t la, uint8_t* buf,
                            size_t len) {
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

// ---- Block hook: instruction counting, interrupt windows -------------------
void Vcpu::Impl::OnBlock(uc_engine*, uint64_t addr, uint32_t size, void* ud) {
  static_cast<Impl*>(ud)->Block(addr, size);
}

void Vcpu::Impl::Block(uint64_t addr, uint32_t size) {
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

bool Vcpu::Impl::FirstSight(uint64_t addr, uint32_t size) {
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
      case CodeSiteKind::kCr8: special_[site.address] = Special::kCr8; break;
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
void Vcpu::Impl::UncreditRestOfBlock(uint64_t addr) {
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
void Vcpu::Impl::StopAt(uint64_t addr) {
  stop_by_hook_ = true;
  SetReg(UC_X86_REG_RIP, addr);
  uc_emu_stop(uc_);
}

// ---- Narrow code hooks -----------------------------------------------------
// Every call of any UC_HOOK_CODE hook makes Unicorn walk its whole list of
// code hooks (~2.8 ns per hook here), so at most kMaxCodeHooks stay
// installed: adding one beyond that (in FirstSight) removes the least
// recently fired ones, with the translations that call them and this
// file's record of the blocks containing their sites, so the next
// execution of such a block is seen first again and hooked again before
// it runs (an MMIO access is learned again). A site costs a
// retranslation only when it comes back after kMaxCodeHooks others.

bool Vcpu::Impl::AddHook(uint64_t begin, uint64_t end, uint64_t mmio_access) {
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
void Vcpu::Impl::EvictColdHooks(uint64_t keep_begin, uint64_t keep_end) {
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

void Vcpu::Impl::OnCode(uc_engine*, uint64_t addr, uint32_t, void* ud) {
  static_cast<Impl*>(ud)->Code(addr);
}

void Vcpu::Impl::Code(uint64_t addr) {
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
  if (it->second == Special::kCr8) {
    EmulateCr8(addr);
    return;
  }
  const PagingRegs& pg = ReadPaging();
  uint8_t b[3] = {};
  ReadCode(pg, addr, b, 3);
  switch (it->second) {
    case Special::kControl:
    case Special::kCr8:
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

// ---- RDMSR, WRMSR, RDTSC(P), CPUID -----------------------------------------
bool Vcpu::Impl::UnicornOwnsMsr(uint32_t msr) {
  switch (msr) {
    case 0xC0000080: case 0xC0000081: case 0xC0000082: case 0xC0000083:
    case 0xC0000084: case 0xC0000100: case 0xC0000101: case 0xC0000102:
    case 0xC0000103: case 0x277: case 0x174: case 0x175: case 0x176:
      return true;
    default:
      return false;
  }
}

bool Vcpu::Impl::Cpl0() const { return (Reg(UC_X86_REG_CS) & 3) == 0; }

void Vcpu::Impl::RaiseGp0(uint64_t rip) {
  if (!Deliver(13, Kind::kException, true, 0, rip)) return;
  ResetUnicornExceptionState();
}

void Vcpu::Impl::EmulateRdmsr(uint64_t addr) {
  uint32_t msr = static_cast<uint32_t>(Reg(UC_X86_REG_RCX));
  if (UnicornOwnsMsr(msr)) return;  // Unicorn executes it
  std::optional<uint64_t> v;
  bool ignored = false;
  if (!Cpl0()) {
    v = std::nullopt;
  } else if (msr == 0x10) {
    v = VirtualTsc();
  } else if (v = msrs_.Read(msr); !v) {
    v = host_->ReadMsr(config_.index, msr);
    if (!v && config_.ignore_msrs) v = 0, ignored = true;
  }
  if (tracing()) {  // the string only when traced: APIC MSR fast path
    Trace(trace::MSR,
          absl::StrFormat("rdmsr %#x%s", msr,
                          ignored ? ": no such MSR, reads 0 (ignore-msrs)" : v ? "" : " #GP"),
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

void Vcpu::Impl::EmulateWrmsr(uint64_t addr) {
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
  bool ok = false, ignored = false;
  if ((cs & 3) == 0) {
    switch (msr == 0x10 ? MsrFile::WriteResult::kOk : msrs_.Write(msr, value)) {
      case MsrFile::WriteResult::kOk: ok = true; break;
      case MsrFile::WriteResult::kGp: break;
      case MsrFile::WriteResult::kNotHere:
        ok = host_->WriteMsr(config_.index, msr, value);
        if (!ok && config_.ignore_msrs) ok = ignored = true;
        break;
    }
  }
  if (tracing()) {  // the string only when traced: APIC MSR fast path
    Trace(trace::MSR,
          absl::StrFormat("wrmsr %#x%s", msr,
                          ignored ? ": no such MSR, dropped (ignore-msrs)" : ok ? "" : " #GP"),
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

// MOV to/from CR8 is the local APIC's TPR (SDM vol. 3, 10.8.6.1 "Interaction
// of Task Priorities between CR8 and APIC"): CR8[3:0] = TPR[7:4]; a write
// sets TPR[3:0] to 0, and an interrupt it unmasks is taken right after the
// instruction (the RIP write ends the block; the APIC's update kicks the
// vCPU). Bits 63:4 of a written value are reserved: #GP(0). At CPL > 0 the
// instruction runs in Unicorn, which raises #GP(0) itself. Unicorn has no
// APIC: without this its CR8 reads 0 and writes vanish.
void Vcpu::Impl::EmulateCr8(uint64_t addr) {
  if (!Cpl0()) return;
  uint8_t code[16] = {};
  const size_t n = ReadCode(ReadPaging(), addr, code, sizeof(code));
  const std::optional<Cr8Move> m = DecodeCr8Move(code, n);
  if (!m) return;
  const int reg = kGpr[m->gpr];
  if (m->to_cr8) {
    const uint64_t value = Reg(reg);
    if (value >> 4) {
      RaiseGp0(addr);
      return;
    }
    host_->WriteTpr(config_.index, static_cast<uint8_t>(value << 4));
  } else {
    SetReg(reg, host_->ReadTpr(config_.index) >> 4);
  }
  SetReg(UC_X86_REG_RIP, addr + m->length);
}

void Vcpu::Impl::EmulateRdtsc(uint64_t addr, int len, bool p) {
  uint64_t t = VirtualTsc();
  SetReg(UC_X86_REG_RAX, t & 0xFFFFFFFF);
  SetReg(UC_X86_REG_RDX, t >> 32);
  if (p) SetReg(UC_X86_REG_RCX, config_.apic_id);  // TSC_AUX := APIC id
  SetReg(UC_X86_REG_RIP, addr + len);
}

int Vcpu::Impl::OnCpuid(uc_engine*, void* ud) {
  return static_cast<Impl*>(ud)->Cpuid() ? 1 : 0;
}

// Every leaf comes from the CPU model's table (emu/cpu/cpu_model.h);
// Unicorn's own model never answers.
bool Vcpu::Impl::Cpuid() {
  const uint32_t leaf = static_cast<uint32_t>(Reg(UC_X86_REG_RAX));
  const uint32_t sub = static_cast<uint32_t>(Reg(UC_X86_REG_RCX));
  CpuidInputs in;
  in.apic_id = config_.apic_id;
  in.num_cpus = config_.num_cpus;
  in.x2apic = config_.x2apic;
  in.tsc_deadline = config_.tsc_deadline;
  if (leaf == 1) {
    // SDM 11.4.3: CPUID.1:EDX.APIC reads 0 while IA32_APIC_BASE.EN is 0.
    const std::optional<uint64_t> base = host_->ReadMsr(config_.index, 0x1B);
    in.apic_enabled = !base || (*base & (1u << 11));
  }
  const CpuidRegs r = model_->Cpuid(in, leaf, sub);
  SetReg(UC_X86_REG_RAX, r.eax);
  SetReg(UC_X86_REG_RBX, r.ebx);
  SetReg(UC_X86_REG_RCX, r.ecx);
  SetReg(UC_X86_REG_RDX, r.edx);
  return true;
}

// ---- Other engine callbacks: exceptions, port I/O --------------------------
void Vcpu::Impl::OnIntr(uc_engine*, uint32_t intno, void* ud) {
  static_cast<Impl*>(ud)->Intr(intno);
}

bool Vcpu::Impl::OnInvalid(uc_engine*, void*) {
  return true;  // Unicorn then reports vector 6 through UC_HOOK_INTR
}

bool Vcpu::Impl::OnBadAccess(uc_engine*, uc_mem_type type, uint64_t addr, int,
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

uint32_t Vcpu::Impl::OnIn(uc_engine*, uint32_t port, int size, void* ud) {
  auto* self = static_cast<Impl*>(ud);
  return static_cast<uint32_t>(self->host_->PortRead(
      self->config_.index, static_cast<uint16_t>(port), size));
}

void Vcpu::Impl::OnOut(uc_engine*, uint32_t port, int size, uint32_t value,
                       void* ud) {
  auto* self = static_cast<Impl*>(ud);
  self->host_->PortWrite(self->config_.index, static_cast<uint16_t>(port),
                         size, value);
}

// ---- MMIO and its attribution to an instruction ----------------------------
uint64_t Vcpu::Impl::MmioReadLow(uc_engine*, uint64_t off, unsigned size,
                                 void* ud) {
  auto* self = static_cast<Impl*>(ud);
  uint64_t v = self->host_->MmioRead(self->config_.index,
                                     self->ram_->size() + off, size);
  self->AfterMmio(false, self->ram_->size() + off, size);
  return v;
}

void Vcpu::Impl::MmioWriteLow(uc_engine*, uint64_t off, unsigned size,
                              uint64_t value, void* ud) {
  auto* self = static_cast<Impl*>(ud);
  self->host_->MmioWrite(self->config_.index, self->ram_->size() + off, size,
                         value);
  self->AfterMmio(true, self->ram_->size() + off, size);
}

uint64_t Vcpu::Impl::MmioReadHigh(uc_engine*, uint64_t off, unsigned size,
                                  void* ud) {
  auto* self = static_cast<Impl*>(ud);
  uint64_t v = self->host_->MmioRead(self->config_.index, k4GiB + off, size);
  self->AfterMmio(false, k4GiB + off, size);
  return v;
}

void Vcpu::Impl::MmioWriteHigh(uc_engine*, uint64_t off, unsigned size,
                               uint64_t value, void* ud) {
  auto* self = static_cast<Impl*>(ud);
  self->host_->MmioWrite(self->config_.index, k4GiB + off, size, value);
  self->AfterMmio(true, k4GiB + off, size);
}

void Vcpu::Impl::AfterMmio(bool write, uint64_t pa, unsigned size) {
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
std::optional<MemoryOperandInsn> Vcpu::Impl::FindAccess(
    uint64_t pa, unsigned size, bool write) {
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

bool Vcpu::Impl::ReadCodeDescriptor(const PagingRegs& pg, uint8_t d[8]) {
  const uint16_t cs = static_cast<uint16_t>(Reg(UC_X86_REG_CS));
  return !AccessLinear(pg, Control().gdtr.base + (cs & ~7u), d, 8, false, false);
}

// The current code segment's default operand size: 16 (real mode or
// CS.D=0), 32, or 64 (IA-32e mode and CS.L=1). An unreadable descriptor
// counts as the mode's usual one (64 in IA-32e mode, else 32).
int Vcpu::Impl::CodeBits(const PagingRegs& pg) {
  if (!(pg.cr0 & 1)) return 16;
  const bool lma = pg.efer & (1 << 10);
  uint8_t d[8] = {};
  if (!ReadCodeDescriptor(pg, d)) return lma ? 64 : 32;
  if (lma && (d[6] & 0x20)) return 64;
  return (d[6] & 0x40) ? 32 : 16;
}

// CS's base: selector << 4 in real mode, 0 in 64-bit mode, else the GDT
// descriptor's (0 if unreadable).
uint64_t Vcpu::Impl::CodeSegmentBase(const PagingRegs& pg) {
  if (!(pg.cr0 & 1)) return uint64_t{static_cast<uint16_t>(Reg(UC_X86_REG_CS))} << 4;
  uint8_t d[8] = {};
  if (!ReadCodeDescriptor(pg, d)) return 0;
  if ((pg.efer & (1 << 10)) && (d[6] & 0x20)) return 0;  // 64-bit code
  return d[2] | (d[3] << 8) | (d[4] << 16) | (static_cast<uint64_t>(d[7]) << 24);
}

X86Decoder& Vcpu::Impl::Decoder(const PagingRegs& pg) {
  switch (CodeBits(pg)) {
    case 64: return decode64_;
    case 32: return decode32_;
    default: return decode16_;
  }
}

// ---- Vcpu ------------------------------------------------------------------

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
  return impl_->uc_ != nullptr && (impl_->Reg(UC_X86_REG_RFLAGS) & Impl::kIF);
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
