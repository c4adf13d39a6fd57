// FirmwareCpu on Unicorn 2.1.1. Facts measured on this machine with small
// probes (Thumb snippets assembled by arm-none-eabi-gcc):
//
// * Mode: UC_ARCH_ARM with UC_MODE_THUMB | UC_MODE_MCLASS opens and runs on
//   2.1.1, and uc_ctl_set_cpu_model(UC_CPU_ARM_CORTEX_M3) is accepted; that
//   is what we use (plain UC_MODE_THUMB behaves the same for every probe
//   below). uc_emu_start() takes the Thumb address (bit 0 set).
// * WFI: uc_emu_start() returns UC_ERR_OK with PC just after the WFI (both
//   the 16-bit BF30 and the 32-bit F3AF 8003 encodings); no UC_HOOK_INTR
//   fires, and the next uc_emu_start() simply continues. WFI always ends a
//   translation block. So "returned OK without a stop request" means WFI; we
//   confirm it by decoding the last block entered: its last instruction is a
//   WFI and PC is the block's end. (WFE and YIELD end emulation with
//   UC_ERR_INSN_INVALID on 2.1.1: treated as undefined instructions.)
// * Faults: unmapped or write-protected data accesses and unmapped fetches
//   reach UC_HOOK_MEM_UNMAPPED|UC_HOOK_MEM_PROT (returning false ends the
//   run with UC_ERR_*_UNMAPPED / UC_ERR_WRITE_PROT); PC read there is the
//   start of the block, not the faulting instruction. UDF goes to
//   UC_HOOK_INSN_INVALID (PC exact), SVC and BKPT to UC_HOOK_INTR (intno 2
//   and 7, PC after the instruction); with MCLASS no exception is taken
//   through a vector table. We record the reason and stop.
// * Stopping: uc_emu_stop() from a UC_HOOK_BLOCK callback stops before that
//   block executes (measured: a counting loop does not advance), which is
//   how the instruction budget is enforced.
// * MMIO (uc_mmio_map): offsets relative to the region, sizes 1/2/4; LDM and
//   unaligned LDR become aligned 4-byte callbacks.
// * Speed: a register loop runs at ~1,300 M instructions/s under an empty
//   block hook; with this file's per-block decode ~530 M instructions/s
//   (tests/fw_cpu_test.cc prints it). Each Run() costs a uc_emu_start().
// * Unicorn 2.1.1 leaks 32 bytes per uc_mmio_map() (uc_close does not free
//   them); see the LSan hook at the end.
#include "emu/cpu/fw_cpu.h"

#include <unicorn/unicorn.h>

#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace irqlab {

namespace {

// Thumb-2: a halfword whose top five bits are 0b11101, 0b11110 or 0b11111
// starts a 32-bit instruction (ARMv7-M ARM A5.1).
bool IsThumb32(uint16_t first) { return (first >> 11) >= 0x1D; }

uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

uint32_t Load32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 |
         uint32_t{p[3]} << 24;
}

const char* ExceptionName(uint32_t intno) {
  // QEMU target/arm EXCP_* numbers.
  switch (intno) {
    case 1:
      return "undefined instruction";
    case 2:
      return "SVC";
    case 3:
      return "prefetch abort";
    case 4:
      return "data abort";
    case 5:
      return "IRQ";
    case 6:
      return "FIQ";
    case 7:
      return "BKPT";
    case 8:
      return "exception return with no exception active";
    default:
      return "exception";
  }
}

const char* AccessName(uc_mem_type type) {
  switch (type) {
    case UC_MEM_READ_UNMAPPED:
      return "read of unmapped address";
    case UC_MEM_WRITE_UNMAPPED:
      return "write to unmapped address";
    case UC_MEM_FETCH_UNMAPPED:
      return "instruction fetch from unmapped address";
    case UC_MEM_WRITE_PROT:
      return "write to read-only address";
    case UC_MEM_READ_PROT:
      return "read of unreadable address";
    case UC_MEM_FETCH_PROT:
      return "instruction fetch from non-executable address";
    default:
      return "bad access to address";
  }
}

}  // namespace

struct FirmwareCpu::Engine {
  uc_engine* uc = nullptr;
  IoHandler* devregs = nullptr;
  IoHandler* outbound = nullptr;
  const uint8_t* rom = nullptr;

  // Per-Run() bookkeeping (written by the hooks).
  uint64_t budget = 0;
  uint64_t retired = 0;       // credited in this run
  bool budget_stop = false;
  std::string fault;          // set by a fault hook
  uint64_t last_block = 0;    // last block entered and its size in bytes
  uint32_t last_block_size = 0;

  ~Engine() {
    if (uc != nullptr) uc_close(uc);
  }

  // Instructions in the ROM block [address, address + size), and whether
  // the last one is WFI. Blocks outside ROM (impossible: RAM is not
  // executable) count one instruction per halfword.
  std::pair<uint32_t, bool> Decode(uint64_t address, uint32_t size) const {
    if (address >= kRomSize || size > kRomSize - address) return {size / 2, false};
    uint32_t count = 0;
    bool wfi = false;
    for (uint32_t at = 0; at + 2 <= size;) {
      const uint16_t first = Load16(rom + address + at);
      if (IsThumb32(first) && at + 4 <= size) {
        wfi = first == 0xF3AF && Load16(rom + address + at + 2) == 0x8003;
        at += 4;
      } else {
        wfi = first == 0xBF30;
        at += 2;
      }
      ++count;
    }
    return {count, wfi};
  }

  uint32_t Pc() const {
    uint32_t pc = 0;
    uc_reg_read(uc, UC_ARM_REG_PC, &pc);
    return pc;
  }

  static void OnBlock(uc_engine* uc, uint64_t address, uint32_t size, void* user) {
    auto* e = static_cast<Engine*>(user);
    if (e->retired >= e->budget) {
      e->budget_stop = true;
      uc_emu_stop(uc);
      return;
    }
    e->retired += e->Decode(address, size).first;
    e->last_block = address;
    e->last_block_size = size;
  }

  static bool OnBadAccess(uc_engine*, uc_mem_type type, uint64_t address,
                          int size, int64_t, void* user) {
    auto* e = static_cast<Engine*>(user);
    e->fault = absl::StrFormat("%s 0x%08x (%d bytes) in the block at pc=0x%08x",
                               AccessName(type), address, size, e->last_block);
    return false;
  }

  static bool OnInvalid(uc_engine*, void* user) {
    auto* e = static_cast<Engine*>(user);
    e->fault = absl::StrFormat("undefined instruction at pc=0x%08x", e->Pc());
    return false;
  }

  static void OnInterrupt(uc_engine* uc, uint32_t intno, void* user) {
    auto* e = static_cast<Engine*>(user);
    e->fault = absl::StrFormat("%s (exception %u) before pc=0x%08x",
                               ExceptionName(intno), intno, e->Pc());
    uc_emu_stop(uc);
  }

  static uint64_t DevRegsRead(uc_engine*, uint64_t offset, unsigned size, void* user) {
    return static_cast<Engine*>(user)->devregs->Read(AccessOrigin::Device(0), offset, size);
  }
  static void DevRegsWrite(uc_engine*, uint64_t offset, unsigned size, uint64_t value,
                           void* user) {
    static_cast<Engine*>(user)->devregs->Write(AccessOrigin::Device(0), offset, size, value);
  }
  static uint64_t OutboundRead(uc_engine*, uint64_t offset, unsigned size, void* user) {
    return static_cast<Engine*>(user)->outbound->Read(AccessOrigin::Device(0), offset, size);
  }
  static void OutboundWrite(uc_engine*, uint64_t offset, unsigned size, uint64_t value,
                            void* user) {
    static_cast<Engine*>(user)->outbound->Write(AccessOrigin::Device(0), offset, size, value);
  }
};

FirmwareCpu::FirmwareCpu() = default;

FirmwareCpu::~FirmwareCpu() = default;

absl::StatusOr<std::unique_ptr<FirmwareCpu>> FirmwareCpu::Create(
    absl::Span<const uint8_t> image, IoHandler* devregs, IoHandler* outbound) {
  if (image.size() < 8 || image.size() > kRomSize) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "firmware image of %u bytes: must hold the vector table (8 bytes) "
        "and fit the %u-byte ROM",
        image.size(), kRomSize));
  }
  if (devregs == nullptr || outbound == nullptr) {
    return absl::InvalidArgumentError("firmware CPU needs both register handlers");
  }
  std::unique_ptr<FirmwareCpu> cpu(new FirmwareCpu());
  absl::Status s = cpu->Init(image, devregs, outbound);
  if (!s.ok()) return s;
  cpu->Reset();
  return cpu;
}

absl::Status FirmwareCpu::Init(absl::Span<const uint8_t> image, IoHandler* devregs,
                               IoHandler* outbound) {
  rom_buffer_ = std::make_unique<uint8_t[]>(kRomSize);  // zero-filled
  std::memcpy(rom_buffer_.get(), image.data(), image.size());
  ram_buffer_ = std::make_unique<uint8_t[]>(kRamSize);
  ram_ = absl::MakeSpan(ram_buffer_.get(), kRamSize);

  engine_ = std::make_unique<Engine>();
  Engine& e = *engine_;
  e.devregs = devregs;
  e.outbound = outbound;
  e.rom = rom_buffer_.get();
  auto check = [](uc_err err, const char* what) -> absl::Status {
    if (err == UC_ERR_OK) return absl::OkStatus();
    return absl::InternalError(
        absl::StrFormat("firmware CPU: %s failed: %s", what, uc_strerror(err)));
  };
  const auto mode = static_cast<uc_mode>(UC_MODE_THUMB | UC_MODE_MCLASS);
  absl::Status s = check(uc_open(UC_ARCH_ARM, mode, &e.uc), "uc_open(ARM, THUMB|MCLASS)");
  if (!s.ok()) {
    e.uc = nullptr;
    return s;
  }
  uc_engine* uc = e.uc;
  const std::pair<uc_err, const char*> steps[] = {
      {uc_ctl_set_cpu_model(uc, UC_CPU_ARM_CORTEX_M3), "selecting Cortex-M3"},
      // No exit addresses: uc_emu_start ignores `until`.
      {uc_ctl_exits_enable(uc), "uc_ctl_exits_enable"},
      {uc_mem_map_ptr(uc, kRomBase, kRomSize, UC_PROT_READ | UC_PROT_EXEC,
                      rom_buffer_.get()),
       "mapping ROM"},
      {uc_mem_map_ptr(uc, kRamBase, kRamSize, UC_PROT_READ | UC_PROT_WRITE,
                      ram_buffer_.get()),
       "mapping RAM"},
      {uc_mmio_map(uc, kDevRegsBase, kDevRegsSize, &Engine::DevRegsRead, &e,
                   &Engine::DevRegsWrite, &e),
       "mapping the device registers"},
      {uc_mmio_map(uc, kOutboundBase, kOutboundSize, &Engine::OutboundRead, &e,
                   &Engine::OutboundWrite, &e),
       "mapping the outbound engine"},
  };
  for (const auto& [err, what] : steps) {
    s = check(err, what);
    if (!s.ok()) return s;
  }
  uc_hook h;
  s = check(uc_hook_add(uc, &h, UC_HOOK_BLOCK, reinterpret_cast<void*>(&Engine::OnBlock),
                        &e, 1, 0),
            "block hook");
  if (!s.ok()) return s;
  s = check(uc_hook_add(uc, &h, UC_HOOK_MEM_UNMAPPED | UC_HOOK_MEM_PROT,
                        reinterpret_cast<void*>(&Engine::OnBadAccess), &e, 1, 0),
            "bad-access hook");
  if (!s.ok()) return s;
  s = check(uc_hook_add(uc, &h, UC_HOOK_INSN_INVALID,
                        reinterpret_cast<void*>(&Engine::OnInvalid), &e, 1, 0),
            "invalid-instruction hook");
  if (!s.ok()) return s;
  return check(uc_hook_add(uc, &h, UC_HOOK_INTR,
                           reinterpret_cast<void*>(&Engine::OnInterrupt), &e, 1, 0),
               "interrupt hook");
}

void FirmwareCpu::Reset() {
  std::memset(ram_buffer_.get(), 0, kRamSize);
  uc_engine* uc = engine_->uc;
  const uint32_t zero = 0;
  for (int r = UC_ARM_REG_R0; r <= UC_ARM_REG_R12; ++r) uc_reg_write(uc, r, &zero);
  for (int r : {UC_ARM_REG_PRIMASK, UC_ARM_REG_FAULTMASK, UC_ARM_REG_BASEPRI,
                UC_ARM_REG_CONTROL}) {
    uc_reg_write(uc, r, &zero);
  }
  const uint32_t lr = 0xFFFFFFFF;
  const uint32_t xpsr = 1u << 24;  // T bit
  const uint32_t sp = Load32(rom_buffer_.get()) & ~3u;
  const uint32_t entry = Load32(rom_buffer_.get() + 4);
  const uint32_t pc = entry & ~1u;
  uc_reg_write(uc, UC_ARM_REG_LR, &lr);
  uc_reg_write(uc, UC_ARM_REG_XPSR, &xpsr);
  uc_reg_write(uc, UC_ARM_REG_SP, &sp);
  uc_reg_write(uc, UC_ARM_REG_PC, &pc);
  state_ = State::kRunnable;
  crash_reason_.clear();
  if (!(entry & 1)) {
    Crash(absl::StrFormat("reset vector 0x%08x lacks the Thumb bit (INVSTATE lockup)",
                          entry));
  }
}

void FirmwareCpu::Crash(std::string reason) {
  state_ = State::kCrashed;
  crash_reason_ = std::move(reason);
}

FirmwareCpu::RunResult FirmwareCpu::Run(uint64_t max_instructions) {
  if (state_ == State::kCrashed) return {Stop::kCrashed, 0};
  Engine& e = *engine_;
  e.budget = max_instructions;
  e.retired = 0;
  e.budget_stop = false;
  e.fault.clear();
  e.last_block = e.Pc();
  e.last_block_size = 0;
  const uc_err err = uc_emu_start(e.uc, e.Pc() | 1, 0, 0, 0);
  instructions_ += e.retired;
  RunResult result{Stop::kCrashed, e.retired};
  if (!e.fault.empty()) {
    Crash(e.fault);
  } else if (err != UC_ERR_OK) {
    Crash(absl::StrFormat("%s in the block at pc=0x%08x", uc_strerror(err), e.last_block));
  } else if (e.budget_stop) {
    state_ = State::kRunnable;
    result.stop = Stop::kBudget;
  } else if (e.Decode(e.last_block, e.last_block_size).second &&
             e.Pc() == e.last_block + e.last_block_size) {
    state_ = State::kWaiting;
    result.stop = Stop::kWfi;
  } else {
    Crash(absl::StrFormat("emulation stopped unexpectedly at pc=0x%08x", e.Pc()));
  }
  return result;
}

uint32_t FirmwareCpu::pc() const { return engine_->Pc(); }

uint32_t FirmwareCpu::reg(int index) const {
  if (index < 0 || index > 15) return 0;
  int id = UC_ARM_REG_R0 + index;
  if (index == 13) id = UC_ARM_REG_SP;
  if (index == 14) id = UC_ARM_REG_LR;
  if (index == 15) id = UC_ARM_REG_PC;
  uint32_t v = 0;
  uc_reg_read(engine_->uc, id, &v);
  return v;
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
// callback record). emu/cpu/vcpu.cc defines these LSan hooks strongly, but a
// program that uses only FirmwareCpu does not link vcpu.o; these weak copies
// (same contents) cover it, and the linker picks vcpu.cc's when both exist.
extern "C" __attribute__((weak)) const char* __lsan_default_suppressions() {
  return "leak:libunicorn.so\n";
}
extern "C" __attribute__((weak)) const char* __lsan_default_options() {
  return "print_suppressions=0";
}
#endif
