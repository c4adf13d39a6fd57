// Trace: the stream of TraceEvents a run produces, and its writers.
//
// Tracer fans each event out to the attached sinks. With no sink attached
// enabled() is false and callers on hot paths skip building the event.
//
// Writers:
//   TextTraceWriter     one greppable line per event (format below).
//   PerfettoTraceWriter Chrome trace-event JSON ("traceEvents" array of
//     instant events, one track per CPU), loads in ui.perfetto.dev.
//   TraceRecorder       keeps events in memory (tests, expectations).
//
// Text format (stable; golden traces and scripts depend on it). Every field
// is always present, in this order, separated by one space:
//
//   t=0000001234 DELIVER cpu=0 vec=0x40 rid=00:00.0 addr=0x0 data=0x0 | detail
//
//   t=      virtual time in ticks, decimal, zero-padded to 10 digits (wider
//           only past 10^10 ticks), so lines sort with `sort`.
//   STAGE   StageName(stage): the enum name without prefix.
//   cpu=    decimal vCPU index, or "-" when not tied to a CPU (cpu < 0).
//   vec=    0x-prefixed lowercase hex vector, or "-" when not an interrupt
//           (vector < 0).
//   rid=    PCI requester id as bb:dd.f (lowercase hex), 00:00.0 if none.
//   addr=   0x-prefixed lowercase hex, no padding.
//   data=   0x-prefixed lowercase hex, no padding.
//   | detail  only if detail is non-empty; newlines/CR/tabs in it are written
//           as \n, \r, \t so one event is always one line.
//
// So `grep 'DELIVER cpu=1 vec=0x41'` finds deliveries of 0x41 on CPU 1 and
// `grep ' rid=02:00.0 '` everything device 02:00.0 did.
//
// Perfetto JSON: {"traceEvents":[...],"displayTimeUnit":"ns"}; pid 1; tid =
// cpu + 1, tid 0 ("devices") for events without a CPU; a thread_name
// metadata event precedes the first event of each track; each event is
// {"name":STAGE,"ph":"i","s":"t","ts":<time/1000 as exact decimal us>,
//  "pid":1,"tid":N,"args":{"time":<ticks>,"cpu":N,"vector":"0x..",
//  "rid":"bb:dd.f","address":"0x..","data":"0x..","detail":".."}}
// ("vector" only when >= 0; address/data as hex strings because JSON numbers
// lose precision above 2^53).
//
// Determinism: events carry virtual time only, so the same scenario and seed
// produce byte-identical output.
#ifndef IRQLAB_EMU_CORE_TRACE_H_
#define IRQLAB_EMU_CORE_TRACE_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "emu/core/trace.pb.h"

namespace irqlab {

using trace::Stage;
using trace::TraceEvent;

class TraceSink {
 public:
  virtual ~TraceSink() = default;
  virtual void Emit(const TraceEvent& event) = 0;
  // Called once at the end of the run (writers close their output).
  virtual void Finish() {}
};

class Tracer {
 public:
  // Sinks are not owned and must outlive the Tracer's use.
  void AddSink(TraceSink* sink) { sinks_.push_back(sink); }
  bool enabled() const { return !sinks_.empty(); }
  void Emit(const TraceEvent& event) {
    for (TraceSink* s : sinks_) s->Emit(event);
  }
  // Convenience: builds and emits an event (no-op when !enabled()).
  void Emit(uint64_t time, Stage stage, int cpu, std::string_view detail,
            int vector = -1, uint64_t address = 0, uint64_t data = 0,
            uint32_t requester_id = 0);
  // Finishes every sink and detaches them: events emitted afterwards (e.g.
  // while the machine is torn down) go nowhere, so finished outputs stay
  // well-formed and sinks may be destroyed.
  void Finish() {
    for (TraceSink* s : sinks_) s->Finish();
    sinks_.clear();
  }

 private:
  std::vector<TraceSink*> sinks_;
};

// Stage name without the enum prefix, e.g. "DELIVER".
std::string StageName(Stage stage);
// Formats one event as the text writer does (no trailing newline).
std::string FormatTraceEvent(const TraceEvent& event);
// "bb:dd.f" for a PCI requester id.
std::string FormatRequesterId(uint32_t rid);
// `s` as the contents of a JSON string (RFC 8259, section 7): quote,
// backslash and control characters escaped, valid UTF-8 kept, each byte of
// invalid UTF-8 replaced by U+FFFD. Without the surrounding quotes.
std::string JsonEscape(std::string_view s);

class TextTraceWriter : public TraceSink {
 public:
  explicit TextTraceWriter(std::ostream* out) : out_(out) {}
  void Emit(const TraceEvent& event) override;
  void Finish() override;

 private:
  std::ostream* out_;
};

class PerfettoTraceWriter : public TraceSink {
 public:
  explicit PerfettoTraceWriter(std::ostream* out) : out_(out) {}
  void Emit(const TraceEvent& event) override;
  void Finish() override;  // closes the JSON document; later calls no-ops

 private:
  void Begin();
  std::ostream* out_;
  bool first_ = true;
  bool finished_ = false;
  // Tracks that already have their thread_name metadata event (index = tid).
  std::vector<bool> named_tids_;
};

class TraceRecorder : public TraceSink {
 public:
  void Emit(const TraceEvent& event) override { events_.push_back(event); }
  const std::vector<TraceEvent>& events() const { return events_; }
  void Clear() { events_.clear(); }

 private:
  std::vector<TraceEvent> events_;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CORE_TRACE_H_
