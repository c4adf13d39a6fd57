// The virtual clock. Time is in ticks; one tick is one retired guest
// instruction (a virtual nanosecond at the model's 1 GHz). Wall-clock time
// never enters the machine.
#ifndef IRQLAB_EMU_CORE_CLOCK_H_
#define IRQLAB_EMU_CORE_CLOCK_H_

#include <cstdint>
#include <limits>

namespace irqlab {

// The virtual time `ticks` after `now`, saturating at the end of time (the
// largest uint64_t: never reached by a run), so a huge delay never wraps
// around into the past.
constexpr uint64_t TimeAfter(uint64_t now, uint64_t ticks) {
  return ticks > std::numeric_limits<uint64_t>::max() - now
             ? std::numeric_limits<uint64_t>::max()
             : now + ticks;
}

class Clock {
 public:
  virtual ~Clock() = default;
  // Current virtual time. Inside a vCPU slice this includes the instructions
  // that vCPU has retired so far in the slice.
  virtual uint64_t Now() const = 0;
};

// A clock set by hand, for tests and host-only models.
class ManualClock : public Clock {
 public:
  uint64_t Now() const override { return now_; }
  void Set(uint64_t t) { now_ = t; }
  void Advance(uint64_t dt) { now_ += dt; }

 private:
  uint64_t now_ = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CORE_CLOCK_H_
