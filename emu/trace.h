// Trace: the stream of TraceEvents a run produces, and its writers.
//
// Tracer fans each event out to the attached sinks. With no sink attached
// enabled() is false and callers on hot paths skip building the event.
//
// Writers:
//   TextTraceWriter     one greppable line per event, e.g.
//     "t=0000001234 DELIVER cpu=0 vec=0x40 rid=00:00.0 addr=0x0 data=0x0 rip"
//   PerfettoTraceWriter Chrome trace-event JSON ("traceEvents" array of
//     instant events, one track per CPU), loads in ui.perfetto.dev.
//   TraceRecorder       keeps events in memory (tests, expectations).
//
// Determinism: events carry virtual time only, so the same scenario and seed
// produce byte-identical output.
#ifndef IRQLAB_EMU_TRACE_H_
#define IRQLAB_EMU_TRACE_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "emu/trace.pb.h"

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
  void Finish() {
    for (TraceSink* s : sinks_) s->Finish();
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
  void Finish() override;  // closes the JSON document

 private:
  std::ostream* out_;
  bool first_ = true;
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

#endif  // IRQLAB_EMU_TRACE_H_
