#include "devices/pc_devices.h"

#include <string_view>

#include "absl/strings/str_format.h"

namespace irqlab {

// ---------------------------------------------------------------------------
// Serial16550. Register map (offset from 0x3F8; DLAB = LCR bit 7):
//   0 RBR (read) / THR (write) / DLL (DLAB)   1 IER / DLM (DLAB)
//   2 IIR (read) / FCR (write)                3 LCR    4 MCR
//   5 LSR                                     6 MSR    7 SCR
// ---------------------------------------------------------------------------
namespace {
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kLsrThrEmpty = 0x20;      // THRE
constexpr uint8_t kLsrTransmitterEmpty = 0x40;  // TEMT
constexpr uint8_t kIirNoInterrupt = 0x01;
}  // namespace

uint64_t Serial16550::Read(const AccessOrigin&, uint64_t offset, unsigned size) {
  if (size != 1) return AllOnes(size);  // the UART has byte registers only
  const bool dlab = lcr_ & kLcrDlab;
  switch (offset) {
    case 0: return dlab ? dll_ : 0;       // no receive data
    case 1: return dlab ? dlm_ : ier_;
    case 2: return kIirNoInterrupt;
    case 3: return lcr_;
    case 4: return mcr_;
    case 5: return kLsrThrEmpty | kLsrTransmitterEmpty;
    case 6: return 0xB0;                  // DCD, DSR, CTS asserted
    case 7: return scr_;
  }
  return 0xFF;
}

void Serial16550::Write(const AccessOrigin& origin, uint64_t offset,
                        unsigned size, uint64_t value) {
  if (size != 1) return;
  const uint8_t v = static_cast<uint8_t>(value);
  const bool dlab = lcr_ & kLcrDlab;
  switch (offset) {
    case 0:
      if (dlab) dll_ = v; else Transmit(origin.cpu, v);
      break;
    case 1:
      if (dlab) dlm_ = v; else ier_ = v & 0x0F;
      break;
    case 3: lcr_ = v; break;
    case 4: mcr_ = v & 0x1F; break;
    case 7: scr_ = v; break;
    default: break;  // FCR, LSR, MSR writes: nothing to model
  }
}

void Serial16550::Transmit(int cpu, uint8_t byte) {
  const char c = static_cast<char>(byte);
  output_.push_back(c);
  if (on_output_) on_output_(c);
  if (c == '\n') {
    Flush();
  } else if (c != '\r') {
    if (line_.empty()) line_cpu_ = cpu;
    line_.push_back(c);
  }
}

void Serial16550::Flush() {
  if (line_.empty()) return;
  if (trace_.enabled()) {
    trace_.tracer->Emit(trace_.Now(), trace::SERIAL, line_cpu_, line_, -1,
                        kBase);
  }
  line_.clear();
}

// ---------------------------------------------------------------------------
// DebugExit
// ---------------------------------------------------------------------------
void DebugExit::Write(const AccessOrigin& origin, uint64_t, unsigned,
                      uint64_t value) {
  // QEMU's isa-debug-exit: exit((val << 1) | 1) for the value written.
  const int status = static_cast<int>(((value & 0xFFFFFFFF) << 1 | 1) & 0xFF);
  if (trace_.enabled()) {
    trace_.tracer->Emit(trace_.Now(), trace::DEBUG_EXIT, origin.cpu,
                        absl::StrFormat("status %d", status), -1, kBase,
                        value);
  }
  if (on_exit_) on_exit_(status);
}

// ---------------------------------------------------------------------------
// PcTestDevIrq
// ---------------------------------------------------------------------------
uint64_t PcTestDevIrq::Read(const AccessOrigin&, uint64_t offset,
                            unsigned size) {
  if (size != 1) return AllOnes(size);
  return lines_[offset].level() ? 1 : 0;
}

void PcTestDevIrq::Write(const AccessOrigin& origin, uint64_t offset,
                         unsigned size, uint64_t value) {
  if (size != 1) return;
  const bool high = (value & 0xFF) != 0;
  IrqLine& line = lines_[offset];
  if (trace_.enabled()) {
    trace_.tracer->Emit(trace_.Now(), trace::IRQ_LINE, origin.cpu,
                        absl::StrFormat("line %d %s%s", offset,
                                        high ? "raise" : "lower",
                                        line.connected() ? "" : " (unconnected)"),
                        -1, kBase + offset, high ? 1 : 0);
  }
  line.Set(high);
}

// ---------------------------------------------------------------------------
// FwCfg
// ---------------------------------------------------------------------------
FwCfg::FwCfg(uint16_t num_cpus) : num_cpus_(num_cpus) {}

std::vector<uint8_t> FwCfg::Item(uint16_t key) const {
  switch (key) {
    case kSignature: return {'Q', 'E', 'M', 'U'};
    case kId: return {1, 0, 0, 0};  // bit 0: traditional interface only
    case kNbCpus:
      return {static_cast<uint8_t>(num_cpus_), static_cast<uint8_t>(num_cpus_ >> 8)};
    default: return {};
  }
}

uint64_t FwCfg::Read(const AccessOrigin&, uint64_t offset, unsigned size) {
  if (offset != 1 || size != 1) return 0;  // QEMU: selector reads as 0
  // Bytes beyond an item (or of an unknown key) read as 0, like QEMU.
  const std::vector<uint8_t> item = Item(selector_);
  const uint8_t byte = offset_ < item.size() ? item[offset_] : 0;
  ++offset_;
  return byte;
}

void FwCfg::Write(const AccessOrigin&, uint64_t offset, unsigned size,
                  uint64_t value) {
  if (offset == 0 && size == 2) {
    selector_ = static_cast<uint16_t>(value);
    offset_ = 0;
  }
  // Data-port writes are ignored (QEMU ignores them since 2.4).
}

// ---------------------------------------------------------------------------
// PicStub
// ---------------------------------------------------------------------------
uint64_t PicStub::Read(const AccessOrigin&, uint64_t offset, unsigned size) {
  if (size != 1) return AllOnes(size);
  return offset == 1 ? imr_ : 0;  // IMR; IRR/ISR read as empty
}

void PicStub::Write(const AccessOrigin&, uint64_t offset, unsigned size,
                    uint64_t value) {
  if (size == 1 && offset == 1) imr_ = static_cast<uint8_t>(value);
}

}  // namespace irqlab
