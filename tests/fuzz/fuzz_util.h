// Shared helpers of the libFuzzer targets (tests/fuzz/*.cc).
//
// Every target reads its input front to back as a sequence of operations
// (an op byte followed by its operands, little-endian) so that hand-made
// seeds are easy to write (tests/fuzz/make_seeds.py) and a crash input can
// be read as a script. An exhausted input reads as zeros.
//
// FUZZ_CHECK(cond) turns a broken documented contract ("a read returns what
// hardware would", "never a vector out of range") into a crash libFuzzer
// records, like a sanitizer report.
#ifndef IRQLAB_TESTS_FUZZ_FUZZ_UTIL_H_
#define IRQLAB_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "absl/types/span.h"
#include "emu/core/event_queue.h"
#include "emu/core/trace.h"

#define FUZZ_CHECK(cond)                                                  \
  do {                                                                    \
    if (!(cond)) {                                                        \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__,    \
                   __LINE__, #cond);                                      \
      std::abort();                                                       \
    }                                                                     \
  } while (0)

namespace irqlab::fuzz {

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  size_t remaining() const { return empty() ? 0 : size_ - pos_; }

  uint8_t U8() {
    if (empty()) return 0;
    return data_[pos_++];
  }
  uint16_t U16() { return static_cast<uint16_t>(Le(2)); }
  uint32_t U32() { return static_cast<uint32_t>(Le(4)); }
  uint64_t U64() { return Le(8); }
  bool Bool() { return U8() & 1; }
  // An access size: 1, 2, 4 or 8 from the low two bits of a byte.
  unsigned Size() { return 1u << (U8() & 3); }
  // Up to `n` bytes (fewer at the end of the input).
  absl::Span<const uint8_t> Bytes(size_t n) {
    if (n > remaining()) n = remaining();
    absl::Span<const uint8_t> s(data_ + pos_, n);
    pos_ += n;
    return s;
  }

 private:
  uint64_t Le(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t{U8()} << (8 * i);
    return v;
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// A trace sink that formats every event as the text writer would and
// throws the text away: the formatting code (fault lines, message decoding)
// runs on fuzzed values too. With IRQLAB_FUZZ_TRACE=1 in the environment the
// lines go to stderr (to read what a reproducer does).
class FormattingSink : public TraceSink {
 public:
  void Emit(const TraceEvent& event) override {
    std::string line = FormatTraceEvent(event);
    bytes_ += line.size();
    if (print_) std::fprintf(stderr, "%s\n", line.c_str());
  }
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_ = 0;
  const bool print_ = std::getenv("IRQLAB_FUZZ_TRACE") != nullptr;
};

// Runs the events of `events` up to virtual time `until`, but at most
// `max_events` of them (one RunUntil per distinct event time), so a timer
// programmed to fire every tick cannot make one input run for long. Returns
// the number of RunUntil steps taken.
inline size_t RunBounded(EventQueue& events, uint64_t until, size_t max_steps) {
  size_t steps = 0;
  while (steps < max_steps) {
    std::optional<uint64_t> next = events.NextTime();
    if (!next || *next > until) break;
    events.RunUntil(*next);
    ++steps;
  }
  if (steps < max_steps && events.now() < until) events.RunUntil(until);
  return steps;
}

// True iff `value` fits in an access of `size` bytes.
inline bool FitsSize(uint64_t value, unsigned size) {
  return size >= 8 || (value >> (8 * size)) == 0;
}

}  // namespace irqlab::fuzz

#endif  // IRQLAB_TESTS_FUZZ_FUZZ_UTIL_H_
