// One x86-64 vCPU on a Unicorn engine. The only code in irqlab that includes
// <unicorn/unicorn.h> lives in emu/ (this file's .cc and helpers).
//
// Unicorn provides instruction execution and paging; everything an x86 CPU
// does *around* instructions is done here, because Unicorn lacks it (see
// ARCHITECTURE.md, "Unicorn as a vCPU"): external interrupt and NMI delivery through the
// guest IDT (SDM vol. 3, 6.12 "Exception and interrupt handling"), exception
// delivery through the guest IDT, the STI/MOV-SS interrupt shadow, HLT as a
// wait, RDMSR/WRMSR interception for the APIC MSRs, CPUID leaves 1 and 0xB,
// RDTSC from virtual time, INIT/SIPI (wait-for-SIPI, real-mode start at
// vector * 4096).
//
// Virtual time: 1 tick per retired guest instruction (the virtual CPU runs at
// 1 GHz, so a tick is a virtual nanosecond and the TSC counts ticks).
// Not thread-safe: all vCPUs of a machine are stepped on one host thread.
#ifndef IRQLAB_EMU_CPU_VCPU_H_
#define IRQLAB_EMU_CPU_VCPU_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "emu/core/interrupt_source.h"
#include "emu/cpu/cpu_model.h"

namespace irqlab {

class GuestRam;
class Tracer;

// What a vCPU asks of the rest of the machine. Implemented by Machine.
class VcpuHost {
 public:
  virtual ~VcpuHost() = default;
  // Physical accesses that do not hit RAM, and port I/O, made by vCPU `cpu`.
  // Never fail: unmapped reads are all-ones, unmapped writes are dropped.
  virtual uint64_t MmioRead(int cpu, uint64_t addr, unsigned size) = 0;
  virtual void MmioWrite(int cpu, uint64_t addr, unsigned size,
                         uint64_t value) = 0;
  virtual uint64_t PortRead(int cpu, uint16_t port, unsigned size) = 0;
  virtual void PortWrite(int cpu, uint16_t port, unsigned size,
                         uint64_t value) = 0;
  // MSRs the vCPU does not implement itself (the APIC range: 0x1B,
  // 0x6E0, 0x800-0x8FF, and anything else not architectural in Unicorn).
  // nullopt / false means "no such MSR": the vCPU raises #GP(0).
  virtual std::optional<uint64_t> ReadMsr(int cpu, uint32_t msr) = 0;
  virtual bool WriteMsr(int cpu, uint32_t msr, uint64_t value) = 0;
  // The local APIC's task priority register (SDM 11.8.3.1), which MOV
  // to/from CR8 reads and writes (CR8[3:0] = TPR[7:4]). A write re-evaluates
  // what is pending (and kicks the vCPU if something became deliverable).
  virtual uint8_t ReadTpr(int cpu) = 0;
  virtual void WriteTpr(int cpu, uint8_t tpr) = 0;
  // Current virtual time in ticks at the start of the running slice.
  virtual uint64_t SliceStartTime() const = 0;
};

struct VcpuConfig {
  int index = 0;             // 0 is the bootstrap processor.
  uint32_t apic_id = 0;      // reported by CPUID leaf 1 / 0xB.
  int num_cpus = 1;          // CPUID logical processor count.
  bool x2apic = true;        // CPUID.1:ECX.x2APIC[21]
  bool tsc_deadline = true;  // CPUID.1:ECX.TSC-Deadline[24]
  // Every CPUID leaf (emu/cpu/cpu_model.h); null: the default model. Not
  // owned (the models are static).
  const CpuModel* cpu_model = nullptr;
  // KVM's ignore_msrs: an MSR nobody implements reads 0 and drops writes
  // (traced) instead of raising #GP(0).
  bool ignore_msrs = false;
};

class Vcpu {
 public:
  enum class State {
    kRunnable,     // executing instructions
    kHalted,       // HLT: waits for an interrupt or NMI
    kWaitForSipi,  // application processor before INIT+SIPI
    kShutdown,     // triple fault or fatal engine error; see stop_reason()
  };
  enum class Exit {
    kBudget,     // retired the requested instructions (block-granular)
    kHalted,     // executed HLT (or already halted, nothing to wake it)
    kStopped,    // RequestStop() was called
    kNotRunnable,  // wait-for-SIPI or shutdown
  };

  // Creates the engine, maps `ram` at guest physical 0 and everything from the
  // end of RAM up to 4 GiB as MMIO routed to `host`. The BSP (index 0) starts
  // kRunnable with no entry point (call SetMultibootEntry); APs start in
  // kWaitForSipi.
  static absl::StatusOr<std::unique_ptr<Vcpu>> Create(const VcpuConfig& config,
                                                      GuestRam* ram,
                                                      VcpuHost* host,
                                                      InterruptSource* irq,
                                                      Tracer* tracer);
  ~Vcpu();

  // Multiboot v1 hand-off (Multiboot spec 3.2 "Machine state"): 32-bit
  // protected mode, paging off, flat 4 GiB CS/DS/ES/FS/GS/SS, EFLAGS.IF=0,
  // EAX = magic, EBX = info address, execution at `entry`.
  absl::Status SetMultibootEntry(uint32_t entry, uint32_t eax, uint32_t ebx);

  // INIT puts an AP into wait-for-SIPI; a SIPI to a waiting AP starts it in
  // real mode at CS = vector << 8, IP = 0 (SDM vol. 3, 9.4.4). A SIPI to a CPU
  // not waiting for one is ignored (SDM: SIPIs are not latched).
  void Init();
  void Sipi(uint8_t vector);

  // Runs until about `budget` more instructions have retired (the slice ends
  // at the first block boundary at or after it), HLT, or RequestStop().
  // Delivers pending interrupts at instruction boundaries when RFLAGS.IF=1.
  Exit Run(uint64_t budget);

  // The interrupt source's state changed (something may be pending): re-check
  // at the next instruction boundary, and wake from HLT. Cheap; call freely.
  void Kick();
  // Kick() for an interrupt sent at virtual time `time` by another vCPU
  // running in the same round of slices: this vCPU takes it (or wakes from
  // HLT) only once its own virtual time has reached `time`, so an effect
  // never precedes its cause in the trace.
  void KickNotBefore(uint64_t time);
  // Ends the current Run() at the next block boundary. Safe from device
  // callbacks (never calls uc_emu_stop from inside an access).
  void RequestStop();
  // Ends the current Run() at the first block boundary at or after
  // `remaining` more retired instructions, if that is sooner than its budget
  // (an event was scheduled inside the running slice). Safe from callbacks.
  void ShortenSlice(uint64_t remaining);

  State state() const;
  uint64_t instructions_retired() const;
  // Narrow code hooks (MSR, RDTSC, port-I/O and MMIO-load sites) removed so
  // far to keep the installed ones within a small limit (vcpu.cc:
  // EvictColdHooks), for tests and benchmarks.
  uint64_t code_hooks_evicted() const;
  int index() const;
  // Why the vCPU is in kShutdown (triple fault, engine error), for the report.
  const std::string& stop_reason() const;
  // RFLAGS.IF. A kHalted vCPU with IF=0 and no NMI pending can never wake;
  // the machine reports that as a hang. (Addition to the original API.)
  bool interrupts_enabled() const;

  // Register access for tests and the scenario runner (X86 names: "rip",
  // "rax", ...). Returns NotFound for an unknown name.
  absl::StatusOr<uint64_t> ReadRegister(const std::string& name) const;

  class Impl;

 private:
  explicit Vcpu(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CPU_VCPU_H_
