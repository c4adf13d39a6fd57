// The PC machine: guest RAM, N vCPUs, the physical address and port spaces,
// the PC platform devices, the event queue and the virtual clock, and the
// run loop that steps the vCPUs deterministically on one host thread.
//
// Run loop (deterministic by construction): virtual time advances in slices
// of `slice_ticks`, shortened so that a slice never crosses the next queued
// event. In each slice every runnable vCPU runs, in index order, for the
// slice length in retired instructions (block-granular). Events due at the
// slice end run after it. When no vCPU can run, time jumps to the next event;
// with no event left the run ends as a hang.
//
// Until the local APIC exists (next issue), each vCPU's interrupt source is a
// host-side stand-in (PendingVectors) fed by scenario actions, and INIT/SIPI
// are decoded by devices/ApicIcrStandIn.
#ifndef IRQLAB_EMU_MACHINE_H_
#define IRQLAB_EMU_MACHINE_H_

#include <bitset>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "devices/pc_devices.h"
#include "emu/address_space.h"
#include "emu/clock.h"
#include "emu/event_queue.h"
#include "emu/guest_ram.h"
#include "emu/multiboot.h"
#include "emu/trace.h"
#include "emu/vcpu.h"

namespace irqlab {

struct MachineConfig {
  int cpus = 1;
  uint64_t ram_bytes = 64ull << 20;
  bool x2apic = true;
  bool tsc_deadline = true;
  uint64_t slice_ticks = 10000;
  // Echo guest serial output to this stream as it is written (may be null).
  std::ostream* console = nullptr;

  static constexpr int kMaxCpus = 64;
};

// Host-side stand-in for a local APIC's IRR: vectors made pending by the host
// are delivered highest first. No ISR, no EOI, no priorities.
class PendingVectors : public InterruptSource {
 public:
  void Set(int vector) { irr_.set(vector); }
  void SetNmi() { nmi_ = true; }
  int PendingVector() override;
  void Acknowledge(int vector) override { irr_.reset(vector); }
  bool TakeNmi() override {
    const bool n = nmi_;
    nmi_ = false;
    return n;
  }

 private:
  std::bitset<256> irr_;
  bool nmi_ = false;
};

struct RunResult {
  enum class Outcome { kExit, kHang, kTimeLimit, kShutdown };
  Outcome outcome = Outcome::kHang;
  int exit_status = 0;  // valid for kExit
  uint64_t time = 0;    // virtual time at the end
  std::string detail;   // human-readable reason
};
// "exit", "hang", "time_limit", "shutdown".
std::string OutcomeName(RunResult::Outcome outcome);

class Machine : public VcpuHost, public Clock {
 public:
  // Builds RAM, vCPUs and the PC devices. Errors name the bad setting.
  static absl::StatusOr<std::unique_ptr<Machine>> Create(
      const MachineConfig& config, Tracer* tracer);
  ~Machine() override;

  // Loads a multiboot kernel (and modules) and points the BSP at its entry.
  absl::Status LoadKernel(absl::Span<const uint8_t> image,
                          std::string_view cmdline,
                          const std::vector<MultibootModule>& modules);

  // Runs until the guest exits, hangs, shuts down, or virtual time reaches
  // `max_time`.
  RunResult Run(uint64_t max_time);

  // Host-side actions (scenario runner, tests, benchmarks).
  void InjectInterrupt(int cpu, int vector);
  void InjectNmi(int cpu);
  void SetIrqLine(int line, bool high);

  const MachineConfig& config() const { return config_; }
  EventQueue& events() { return events_; }
  AddressSpace& mmio() { return mmio_; }
  AddressSpace& ports() { return ports_; }
  GuestRam& ram() { return *ram_; }
  Vcpu& vcpu(int i) { return *vcpus_[i]; }
  int num_cpus() const { return static_cast<int>(vcpus_.size()); }
  const std::string& serial_output() const { return serial_->output(); }
  Tracer* tracer() { return tracer_; }

  // Clock: virtual time, including the running vCPU's progress in its slice.
  uint64_t Now() const override;

  // VcpuHost.
  uint64_t MmioRead(int cpu, uint64_t addr, unsigned size) override;
  void MmioWrite(int cpu, uint64_t addr, unsigned size, uint64_t value) override;
  uint64_t PortRead(int cpu, uint16_t port, unsigned size) override;
  void PortWrite(int cpu, uint16_t port, unsigned size, uint64_t value) override;
  std::optional<uint64_t> ReadMsr(int cpu, uint32_t msr) override;
  bool WriteMsr(int cpu, uint32_t msr, uint64_t value) override;
  uint64_t SliceStartTime() const override { return slice_start_time_; }

 private:
  explicit Machine(const MachineConfig& config, Tracer* tracer);
  absl::Status Init();
  void RequestExit(int status);
  void StopAllVcpus();
  void Trace(Stage stage, int cpu, std::string_view detail, int vector = -1,
             uint64_t address = 0, uint64_t data = 0);
  std::string DescribeIdleCpus() const;

  // Static configuration.
  const MachineConfig config_;
  Tracer* tracer_;
  Tracer null_tracer_;  // used when no tracer is given

  // Runtime glue.
  EventQueue events_;
  AddressSpace mmio_;
  AddressSpace ports_;
  std::unique_ptr<GuestRam> ram_;
  std::vector<std::unique_ptr<PendingVectors>> pending_;
  std::vector<std::unique_ptr<Vcpu>> vcpus_;
  std::unique_ptr<Serial16550> serial_;
  std::unique_ptr<DebugExit> debug_exit_;
  std::unique_ptr<PcTestDevIrq> testdev_;
  std::unique_ptr<FwCfg> fw_cfg_;
  std::unique_ptr<PicStub> pic_master_, pic_slave_;
  std::unique_ptr<ApicIcrStandIn> apic_standin_;

  // Volatile state.
  uint64_t now_ = 0;                 // time at the start of the current slice
  uint64_t slice_start_time_ = 0;
  int running_cpu_ = -1;             // vCPU inside Run(), or -1
  uint64_t running_start_instr_ = 0;
  std::optional<int> exit_status_;
  bool kernel_loaded_ = false;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_MACHINE_H_
