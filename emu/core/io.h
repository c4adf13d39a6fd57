// Register-access contract shared by every device model: memory-mapped I/O
// (physical address space) and port I/O use the same interface.
#ifndef IRQLAB_EMU_CORE_IO_H_
#define IRQLAB_EMU_CORE_IO_H_

#include <cstdint>

namespace irqlab {

// Who performs an access. CPUs access MMIO/ports; devices (bus masters)
// access memory with a PCI requester id.
struct AccessOrigin {
  static constexpr int kNoCpu = -1;
  int cpu = kNoCpu;              // vCPU index, or kNoCpu for a device.
  uint16_t requester_id = 0;     // PCI bus:dev.fn when cpu == kNoCpu.

  static AccessOrigin Cpu(int index) { return {index, 0}; }
  static AccessOrigin Device(uint16_t rid) { return {kNoCpu, rid}; }
};

// A device register block. Offsets are relative to the start of the range the
// handler was mapped at; `size` is 1, 2, 4 or 8 and the access lies entirely
// inside the range (the bus guarantees it).
//
// Contract: guest mistakes are device behaviour, never host errors. A read
// returns what hardware would (all-ones for nothing there), a write the
// device does not implement is ignored. Implementations never throw or abort
// on any offset/size/value combination.
class IoHandler {
 public:
  virtual ~IoHandler() = default;
  virtual uint64_t Read(const AccessOrigin& origin, uint64_t offset,
                        unsigned size) = 0;
  virtual void Write(const AccessOrigin& origin, uint64_t offset,
                     unsigned size, uint64_t value) = 0;
};

// All-ones of the given access size (1, 2, 4 or 8 bytes).
inline uint64_t AllOnes(unsigned size) {
  return size >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * size)) - 1;
}

}  // namespace irqlab

#endif  // IRQLAB_EMU_CORE_IO_H_
