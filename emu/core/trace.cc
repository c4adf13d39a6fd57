#include "emu/core/trace.h"

#include <string>

#include "absl/strings/str_format.h"

namespace irqlab {

void Tracer::Emit(uint64_t time, Stage stage, int cpu, std::string_view detail,
                  int vector, uint64_t address, uint64_t data,
                  uint32_t requester_id) {
  if (!enabled()) return;
  TraceEvent event;
  event.set_time(time);
  event.set_stage(stage);
  event.set_cpu(cpu);
  event.set_requester_id(requester_id);
  event.set_address(address);
  event.set_data(data);
  event.set_vector(vector);
  event.set_detail(std::string(detail));
  Emit(event);
}

std::string StageName(Stage stage) {
  if (trace::Stage_IsValid(stage)) return trace::Stage_Name(stage);
  return absl::StrFormat("STAGE_%d", static_cast<int>(stage));
}

std::string FormatRequesterId(uint32_t rid) {
  return absl::StrFormat("%02x:%02x.%x", (rid >> 8) & 0xFF, (rid >> 3) & 0x1F,
                         rid & 7);
}

namespace {

// Detail text with the characters that would break a line escaped.
std::string OneLine(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Length of the valid UTF-8 sequence at the start of `s` (RFC 3629, section
// 4: no overlongs, no surrogates, at most U+10FFFF), or 0 if invalid.
size_t Utf8SequenceLength(std::string_view s) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t b0 = byte(0);
  size_t len;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() < len) return 0;
  if (byte(1) < lo || byte(1) > hi) return 0;
  for (size_t i = 2; i < len; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return len;
}

// Virtual ticks (ns) as exact decimal microseconds: 1234567 -> "1234.567".
std::string Microseconds(uint64_t ticks) {
  return absl::StrFormat("%d.%03d", ticks / 1000, ticks % 1000);
}

}  // namespace

std::string JsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    const uint8_t u = static_cast<uint8_t>(c);
    if (u >= 0x80) {
      const size_t len = Utf8SequenceLength(s.substr(i));
      if (len == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(s.substr(i, len));
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (u < 0x20 || u == 0x7F) {
          absl::StrAppendFormat(&out, "\\u%04x", u);
        } else {
          out += c;
        }
    }
    ++i;
  }
  return out;
}

std::string FormatTraceEvent(const TraceEvent& event) {
  std::string out = absl::StrFormat("t=%010d %s ", event.time(),
                                    StageName(event.stage()));
  if (event.cpu() >= 0) {
    absl::StrAppendFormat(&out, "cpu=%d", event.cpu());
  } else {
    out += "cpu=-";
  }
  if (event.vector() >= 0) {
    absl::StrAppendFormat(&out, " vec=0x%x", event.vector());
  } else {
    out += " vec=-";
  }
  absl::StrAppendFormat(&out, " rid=%s addr=0x%x data=0x%x",
                        FormatRequesterId(event.requester_id()),
                        event.address(), event.data());
  if (!event.detail().empty()) {
    out += " | ";
    out += OneLine(event.detail());
  }
  return out;
}

void TextTraceWriter::Emit(const TraceEvent& event) {
  *out_ << FormatTraceEvent(event) << '\n';
}

void TextTraceWriter::Finish() { out_->flush(); }

void PerfettoTraceWriter::Begin() {
  *out_ << "{\"traceEvents\":[\n"
        << "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,"
           "\"args\":{\"name\":\"irqlab\"}}";
  first_ = false;
}

void PerfettoTraceWriter::Emit(const TraceEvent& event) {
  if (finished_) return;
  if (first_) Begin();
  const int tid = event.cpu() >= 0 ? event.cpu() + 1 : 0;
  if (static_cast<size_t>(tid) >= named_tids_.size()) {
    named_tids_.resize(tid + 1, false);
  }
  if (!named_tids_[tid]) {
    named_tids_[tid] = true;
    const std::string thread =
        tid == 0 ? "devices" : absl::StrFormat("cpu %d", tid - 1);
    *out_ << absl::StrFormat(
        ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%d,"
        "\"args\":{\"name\":\"%s\"}}",
        tid, thread);
  }
  std::string line = absl::StrFormat(
      ",\n{\"name\":\"%s\",\"ph\":\"i\",\"s\":\"t\",\"ts\":%s,\"pid\":1,"
      "\"tid\":%d,\"args\":{\"time\":%d,\"cpu\":%d",
      JsonEscape(StageName(event.stage())), Microseconds(event.time()), tid,
      event.time(), event.cpu());
  if (event.vector() >= 0) {
    absl::StrAppendFormat(&line, ",\"vector\":\"0x%x\"", event.vector());
  }
  absl::StrAppendFormat(
      &line,
      ",\"rid\":\"%s\",\"address\":\"0x%x\",\"data\":\"0x%x\","
      "\"detail\":\"%s\"}}",
      FormatRequesterId(event.requester_id()), event.address(), event.data(),
      JsonEscape(event.detail()));
  *out_ << line;
}

void PerfettoTraceWriter::Finish() {
  if (finished_) return;
  if (first_) Begin();
  *out_ << "\n],\"displayTimeUnit\":\"ns\"}\n";
  out_->flush();
  finished_ = true;
}

}  // namespace irqlab
