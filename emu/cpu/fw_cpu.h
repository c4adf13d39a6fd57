// FirmwareCpu: the small ARM core inside a device (the WCN6855's firmware
// CPU), a Cortex-M3-like Thumb-2 core on its own Unicorn engine.
//
// Address map (devices/wcn6855_regs.h, WCN_FW_*):
//   [WCN_FW_ROM, +64 KiB)       ROM, read/execute: the firmware image
//   [WCN_FW_RAM, +16 KiB)       RAM, read/write (not executable), zeroed at
//                               Reset()
//   [WCN_FW_DEVREGS, +2 MiB)    -> `devregs` IoHandler (offset from the base)
//   [WCN_FW_OUTBOUND, +4 KiB)   -> `outbound` IoHandler
// Everything else is unmapped. Handler accesses carry AccessOrigin::Device(0)
// (the core is inside the device) and have size 1, 2 or 4 (Unicorn splits
// LDRD/LDM into 4-byte accesses).
//
// Reset (Cortex-M, ARMv7-M ARM B1.5.5): SP = ROM word 0, PC = ROM word 1;
// r0-r12 = 0, LR = 0xFFFFFFFF, xPSR = Thumb, PRIMASK/FAULTMASK/BASEPRI/
// CONTROL = 0. A reset vector without the Thumb bit (bit 0) leaves the core
// crashed, as an INVSTATE fault at reset locks up a real Cortex-M.
//
// Execution: Run() executes until the firmware executes WFI (state kWaiting:
// the firmware sleeps until the device wakes it with the next Run()), until
// `max_instructions` are exhausted (state stays kRunnable; the next Run()
// continues), or until a fault (state kCrashed, crash_reason() says what:
// unmapped or write-protected access, undefined instruction, SVC/BKPT or any
// other exception). A crashed core stays crashed until Reset(); faults never
// reach the host. The core has no NVIC: interrupts and exception handlers
// are not modelled (the firmware polls its registers after WFI).
//
// Instruction counting: instructions are credited per translation block on
// entry (the block's Thumb instructions are decoded from ROM), so a budget
// stop happens at the first block boundary at or after `max_instructions`
// (overshoot < one translation block: at most 511 instructions, a handful
// in real code) and a faulting block is credited in full. The
// count is a pure function of the firmware's execution: deterministic.
//
// Virtual time is not this class's business: Run() takes no time; the
// device decides what a run costs.
//
// Not thread-safe. Only this file's .cc and emu/cpu/vcpu.cc include Unicorn.
#ifndef IRQLAB_EMU_CPU_FW_CPU_H_
#define IRQLAB_EMU_CPU_FW_CPU_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "emu/core/io.h"

namespace irqlab {

class FirmwareCpu {
 public:
  enum class State {
    kRunnable,  // after Reset() or a budget stop
    kWaiting,   // executed WFI; the next Run() wakes it
    kCrashed,   // faulted; see crash_reason(); Reset() revives it
  };
  enum class Stop {
    kWfi,       // executed WFI (state kWaiting)
    kBudget,    // max_instructions reached (state kRunnable)
    kCrashed,   // faulted in this run, or was already crashed (no execution)
  };
  struct [[nodiscard]] RunResult {
    Stop stop = Stop::kCrashed;
    uint64_t instructions = 0;  // retired in this run
  };

  static constexpr uint32_t kRomBase = 0x00000000;
  static constexpr uint32_t kRomSize = 0x10000;
  static constexpr uint32_t kRamBase = 0x20000000;
  static constexpr uint32_t kRamSize = 0x4000;
  static constexpr uint32_t kDevRegsBase = 0x40000000;
  static constexpr uint32_t kDevRegsSize = 0x200000;
  static constexpr uint32_t kOutboundBase = 0x50000000;
  static constexpr uint32_t kOutboundSize = 0x1000;

  // Creates the core with `image` at the start of ROM (8 bytes .. 64 KiB:
  // InvalidArgument otherwise) and resets it. The handlers are not owned
  // and must outlive the core; they must not call back into it.
  // Internal if Unicorn fails to set up the engine.
  static absl::StatusOr<std::unique_ptr<FirmwareCpu>> Create(
      absl::Span<const uint8_t> image, IoHandler* devregs,
      IoHandler* outbound);
  ~FirmwareCpu();
  FirmwareCpu(const FirmwareCpu&) = delete;
  FirmwareCpu& operator=(const FirmwareCpu&) = delete;

  // Cortex-M reset (file comment). RAM is cleared; counters are kept.
  void Reset();

  // Runs from the current PC (file comment). A crashed core returns
  // {kCrashed, 0} at once. Never called from inside a handler callback.
  RunResult Run(uint64_t max_instructions);

  State state() const { return state_; }
  // Why the core crashed ("" unless kCrashed), e.g.
  // "read of unmapped address 0x60000000 (4 bytes) at pc=0x00000022".
  const std::string& crash_reason() const { return crash_reason_; }
  // Instructions retired since Create() (across resets).
  uint64_t instructions() const { return instructions_; }
  uint32_t pc() const;
  // r0..r15 (13 = SP, 14 = LR, 15 = PC); 0 for other indices.
  uint32_t reg(int index) const;
  // Host view of the RAM (tests, debugging).
  absl::Span<const uint8_t> ram() const { return ram_; }

 private:
  struct Engine;  // Unicorn state, in the .cc
  FirmwareCpu();
  absl::Status Init(absl::Span<const uint8_t> image, IoHandler* devregs,
                    IoHandler* outbound);
  void Crash(std::string reason);

  std::unique_ptr<Engine> engine_;
  // Host memory behind the ROM and RAM mappings.
  std::unique_ptr<uint8_t[]> rom_buffer_;
  std::unique_ptr<uint8_t[]> ram_buffer_;
  absl::Span<uint8_t> ram_;

  State state_ = State::kRunnable;
  std::string crash_reason_;
  uint64_t instructions_ = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CPU_FW_CPU_H_
