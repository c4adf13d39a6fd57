// The PC platform's small devices, with the same guest contract as QEMU's PC
// machine for test kernels (so kernels written for QEMU run unmodified):
//
//   Serial16550   16550 UART at 0x3F8 (8 ports). Polled transmit only: LSR
//                 always reports THR empty; no receive, no UART interrupts.
//   DebugExit     QEMU isa-debug-exit at 0xF4 (4 ports): writing v ends the
//                 run with exit status (v << 1) | 1.
//   PcTestDevIrq  QEMU pc-testdev IRQ lines at 0x2000 + n: a byte write of 0/1
//                 lowers/raises line n.
//   FwCfg         QEMU fw_cfg legacy I/O interface, selector 0x510 (16-bit),
//                 data 0x511 (8-bit): signature (key 0x0000), id (0x0001),
//                 CPU count (0x0005). No DMA interface, no file directory.
//   PicStub       legacy 8259 PIC ports 0x20/0x21/0xA0/0xA1: writes accepted,
//                 the mask registers read back, nothing is ever delivered.
#ifndef IRQLAB_DEVICES_PC_DEVICES_H_
#define IRQLAB_DEVICES_PC_DEVICES_H_

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "emu/core/clock.h"
#include "emu/core/io.h"
#include "emu/core/irq_line.h"
#include "emu/core/trace.h"

namespace irqlab {

// Where the small devices trace to. Both pointers may be null.
struct DeviceTraceContext {
  Tracer* tracer = nullptr;
  const Clock* clock = nullptr;
  uint64_t Now() const { return clock != nullptr ? clock->Now() : 0; }
  bool enabled() const { return tracer != nullptr && tracer->enabled(); }
};

class Serial16550 : public IoHandler {
 public:
  static constexpr uint16_t kBase = 0x3F8;
  static constexpr uint64_t kSize = 8;
  // `on_output` (optional) receives every transmitted byte as it is written.
  Serial16550(DeviceTraceContext trace, std::function<void(char)> on_output)
      : trace_(trace), on_output_(std::move(on_output)) {}

  uint64_t Read(const AccessOrigin& origin, uint64_t offset, unsigned size) override;
  void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
             uint64_t value) override;

  // Everything transmitted so far.
  const std::string& output() const { return output_; }
  // Emits a trace event for a partial last line (call at end of run).
  void Flush();

 private:
  void Transmit(int cpu, uint8_t byte);

  DeviceTraceContext trace_;
  std::function<void(char)> on_output_;
  std::string output_;
  std::string line_;  // current line, traced when complete
  int line_cpu_ = -1;
  // Register state (16550 data sheet register map).
  uint8_t ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, dll_ = 0x0C, dlm_ = 0;
};

class DebugExit : public IoHandler {
 public:
  static constexpr uint16_t kBase = 0xF4;
  static constexpr uint64_t kSize = 4;
  // `on_exit` receives the exit status (v << 1) | 1.
  DebugExit(DeviceTraceContext trace, std::function<void(int)> on_exit)
      : trace_(trace), on_exit_(std::move(on_exit)) {}
  uint64_t Read(const AccessOrigin&, uint64_t, unsigned) override { return 0; }
  void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
             uint64_t value) override;

 private:
  DeviceTraceContext trace_;
  std::function<void(int)> on_exit_;
};

class PcTestDevIrq : public IoHandler {
 public:
  static constexpr uint16_t kBase = 0x2000;
  static constexpr int kNumLines = 24;
  static constexpr uint64_t kSize = kNumLines;
  explicit PcTestDevIrq(DeviceTraceContext trace) : trace_(trace) {}

  uint64_t Read(const AccessOrigin& origin, uint64_t offset, unsigned size) override;
  void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
             uint64_t value) override;
  IrqLine& line(int n) { return lines_[n]; }

 private:
  DeviceTraceContext trace_;
  std::array<IrqLine, kNumLines> lines_;
};

class FwCfg : public IoHandler {
 public:
  static constexpr uint16_t kBase = 0x510;
  static constexpr uint64_t kSize = 2;  // selector 0x510-0x511 overlaps data
  static constexpr uint16_t kSignature = 0x0000;
  static constexpr uint16_t kId = 0x0001;
  static constexpr uint16_t kNbCpus = 0x0005;
  explicit FwCfg(uint16_t num_cpus);

  uint64_t Read(const AccessOrigin& origin, uint64_t offset, unsigned size) override;
  void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
             uint64_t value) override;

 private:
  std::vector<uint8_t> Item(uint16_t key) const;
  uint16_t num_cpus_;
  uint16_t selector_ = 0;
  uint32_t offset_ = 0;
};

class PicStub : public IoHandler {
 public:
  // Mapped twice: master at 0x20, slave at 0xA0, 2 ports each.
  static constexpr uint64_t kSize = 2;
  uint64_t Read(const AccessOrigin& origin, uint64_t offset, unsigned size) override;
  void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
             uint64_t value) override;

 private:
  uint8_t imr_ = 0xFF;
};

}  // namespace irqlab

#endif  // IRQLAB_DEVICES_PC_DEVICES_H_
