// Tests of emu/core/trace.h: the text line format, the Perfetto/Chrome JSON writer
// and the Tracer fan-out.
#include "emu/core/trace.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace irqlab {
namespace {

using ::testing::HasSubstr;

// --- A minimal strict JSON parser (RFC 8259) for structural checks. ---
struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  bool boolean = false;
  std::string text;  // number literal or decoded string
  std::vector<Json> array;
  std::map<std::string, Json> object;

  const Json& at(const std::string& key) const {
    static const Json kMissing;
    auto it = object.find(key);
    return it == object.end() ? kMissing : it->second;
  }
  bool has(const std::string& key) const { return object.count(key) > 0; }
};

class JsonParser {
 public:
  explicit JsonParser(std::string_view s) : s_(s) {}

  // The whole input as one value, or nullopt with error() set.
  std::optional<Json> ParseDocument() {
    Json v;
    if (!Value(&v)) return std::nullopt;
    Ws();
    if (pos_ != s_.size()) return Fail("trailing characters");
    return v;
  }
  const std::string& error() const { return error_; }

 private:
  std::nullopt_t Fail(const std::string& why) {
    if (error_.empty()) error_ = why + " at offset " + std::to_string(pos_);
    return std::nullopt;
  }
  void Ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' ||
                                s_[pos_] == '\r' || s_[pos_] == '\t')) {
      ++pos_;
    }
  }
  bool Eat(char c) {
    Ws();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool Literal(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit) return false;
    pos_ += lit.size();
    return true;
  }
  bool Value(Json* v) {
    Ws();
    if (pos_ >= s_.size()) return Fail("unexpected end"), false;
    const char c = s_[pos_];
    if (c == '{') return Object(v);
    if (c == '[') return Array(v);
    if (c == '"') {
      v->kind = Json::kString;
      return String(&v->text);
    }
    if (Literal("true")) return v->kind = Json::kBool, v->boolean = true, true;
    if (Literal("false")) return v->kind = Json::kBool, true;
    if (Literal("null")) return v->kind = Json::kNull, true;
    return Number(v);
  }
  bool Number(Json* v) {
    const size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    const auto digits = [&] {
      const size_t d = pos_;
      while (pos_ < s_.size() && isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      return pos_ - d;
    };
    const size_t int_start = pos_;
    const size_t n = digits();
    if (n == 0 || (n > 1 && s_[int_start] == '0')) return Fail("bad number"), false;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) return Fail("bad fraction"), false;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) return Fail("bad exponent"), false;
    }
    v->kind = Json::kNumber;
    v->text = std::string(s_.substr(start, pos_ - start));
    return true;
  }
  bool String(std::string* out) {
    ++pos_;  // opening quote
    while (pos_ < s_.size()) {
      const unsigned char c = s_[pos_++];
      if (c == '"') return true;
      if (c < 0x20) return Fail("raw control character in string"), false;
      if (c != '\\') {
        *out += static_cast<char>(c);
        continue;
      }
      if (pos_ >= s_.size()) break;
      const char e = s_[pos_++];
      switch (e) {
        case '"': *out += '"'; break;
        case '\\': *out += '\\'; break;
        case '/': *out += '/'; break;
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'n': *out += '\n'; break;
        case 'r': *out += '\r'; break;
        case 't': *out += '\t'; break;
        case 'u': {
          if (pos_ + 4 > s_.size()) return Fail("short \\u"), false;
          unsigned cp = std::stoul(std::string(s_.substr(pos_, 4)), nullptr, 16);
          pos_ += 4;
          // Re-encode as UTF-8 (BMP only is enough for these tests).
          if (cp < 0x80) {
            *out += static_cast<char>(cp);
          } else if (cp < 0x800) {
            *out += static_cast<char>(0xC0 | (cp >> 6));
            *out += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            *out += static_cast<char>(0xE0 | (cp >> 12));
            *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            *out += static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default:
          return Fail("bad escape"), false;
      }
    }
    return Fail("unterminated string"), false;
  }
  bool Array(Json* v) {
    ++pos_;
    v->kind = Json::kArray;
    if (Eat(']')) return true;
    do {
      Json e;
      if (!Value(&e)) return false;
      v->array.push_back(std::move(e));
    } while (Eat(','));
    if (!Eat(']')) return Fail("expected ] or ,"), false;
    return true;
  }
  bool Object(Json* v) {
    ++pos_;
    v->kind = Json::kObject;
    if (Eat('}')) return true;
    do {
      Ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Fail("expected key"), false;
      std::string key;
      if (!String(&key)) return false;
      if (!Eat(':')) return Fail("expected :"), false;
      Json e;
      if (!Value(&e)) return false;
      if (v->object.count(key)) return Fail("duplicate key " + key), false;
      v->object.emplace(std::move(key), std::move(e));
    } while (Eat(','));
    if (!Eat('}')) return Fail("expected } or ,"), false;
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::string error_;
};

TraceEvent MakeEvent(uint64_t time, Stage stage, int cpu, int vector,
                     uint32_t rid, uint64_t address, uint64_t data,
                     std::string detail) {
  TraceEvent e;
  e.set_time(time);
  e.set_stage(stage);
  e.set_cpu(cpu);
  e.set_vector(vector);
  e.set_requester_id(rid);
  e.set_address(address);
  e.set_data(data);
  e.set_detail(std::move(detail));
  return e;
}

// The parser itself must reject what it is there to catch.
TEST(TraceTest, JsonCheckerRejectsInvalidDocuments) {
  for (std::string_view bad :
       {"{", "{\"a\":1,}", "[1 2]", "{\"a\":\"x\ny\"}", "{\"a\":01}",
        "{\"a\":1}{", "{\"a\":\"\\q\"}", "{\"a\":1,\"a\":2}"}) {
    EXPECT_FALSE(JsonParser(bad).ParseDocument().has_value()) << bad;
  }
  EXPECT_TRUE(JsonParser("{\"a\":[1.5,-2,\"\\u0041\",true,null]}")
                  .ParseDocument()
                  .has_value());
}

// The text format documented in trace.h: all fields, fixed order, 10-digit
// time, hex vector/addr/data, bb:dd.f requester id, " | detail".
TEST(TraceTest, TextLineHasDocumentedFormat) {
  EXPECT_EQ(FormatTraceEvent(MakeEvent(1234, trace::DELIVER, 0, 0x40, 0, 0, 0,
                                       "rip=0x100000")),
            "t=0000001234 DELIVER cpu=0 vec=0x40 rid=00:00.0 addr=0x0 data=0x0 "
            "| rip=0x100000");
  EXPECT_EQ(FormatTraceEvent(MakeEvent(7, trace::MSI_WRITE, -1, -1, 0x0200,
                                       0xfee00578, 0, "")),
            "t=0000000007 MSI_WRITE cpu=- vec=- rid=02:00.0 addr=0xfee00578 "
            "data=0x0");
}

// The line is greppable by stage, cpu and vector in that order
// (`grep 'DELIVER cpu=1 vec=0x41'`), and stays one line whatever the detail.
TEST(TraceTest, TextLineIsGreppableAndSingleLine) {
  std::ostringstream out;
  TextTraceWriter writer(&out);
  Tracer tracer;
  tracer.AddSink(&writer);
  tracer.Emit(99, trace::DELIVER, 1, "a\nb\rc\td", 0x41);
  tracer.Finish();
  EXPECT_EQ(out.str(),
            "t=0000000099 DELIVER cpu=1 vec=0x41 rid=00:00.0 addr=0x0 data=0x0 "
            "| a\\nb\\rc\\td\n");
  EXPECT_THAT(out.str(), HasSubstr("DELIVER cpu=1 vec=0x41"));
}

// Times past 10 digits widen rather than truncate.
TEST(TraceTest, LargeTimesAreNotTruncated) {
  EXPECT_THAT(FormatTraceEvent(MakeEvent(12345678901234, trace::HALT, 0, -1, 0,
                                         0, 0, "")),
              ::testing::StartsWith("t=12345678901234 HALT cpu=0"));
}

// Stage names drop the enum prefix; unknown values print their number.
TEST(TraceTest, StageNameAndRequesterIdFormatting) {
  EXPECT_EQ(StageName(trace::MMIO_UNMAPPED), "MMIO_UNMAPPED");
  EXPECT_EQ(StageName(static_cast<Stage>(9999)), "STAGE_9999");
  // bus[15:8] device[7:3] function[2:0].
  EXPECT_EQ(FormatRequesterId(0x0200), "02:00.0");
  EXPECT_EQ(FormatRequesterId(0xfffe), "ff:1f.6");
  EXPECT_EQ(FormatRequesterId(0x00f9), "00:1f.1");
}

// The convenience Emit fills every field; with no sink it does nothing.
TEST(TraceTest, TracerConvenienceEmitFillsEveryField) {
  Tracer tracer;
  EXPECT_FALSE(tracer.enabled());
  tracer.Emit(1, trace::INJECT, 0, "ignored");  // no sink: no-op
  TraceRecorder recorder;
  tracer.AddSink(&recorder);
  EXPECT_TRUE(tracer.enabled());
  tracer.Emit(5, trace::INJECT, 3, "irqfd", 0x31, 0xfee00000, 0x31, 0x0208);
  ASSERT_EQ(recorder.events().size(), 1u);
  const TraceEvent& e = recorder.events()[0];
  EXPECT_EQ(e.time(), 5u);
  EXPECT_EQ(e.stage(), trace::INJECT);
  EXPECT_EQ(e.cpu(), 3);
  EXPECT_EQ(e.vector(), 0x31);
  EXPECT_EQ(e.address(), 0xfee00000u);
  EXPECT_EQ(e.data(), 0x31u);
  EXPECT_EQ(e.requester_id(), 0x0208u);
  EXPECT_EQ(e.detail(), "irqfd");
}

std::string WritePerfetto(const std::vector<TraceEvent>& events) {
  std::ostringstream out;
  PerfettoTraceWriter writer(&out);
  for (const TraceEvent& e : events) writer.Emit(e);
  writer.Finish();
  writer.Finish();  // idempotent
  return out.str();
}

// The Perfetto output is one valid JSON document: instant events with
// microsecond ts (ticks are ns, printed exactly), pid 1, tid = cpu + 1, tid 0
// for events without a CPU, thread_name metadata per track, and every field
// in args. Details with quotes, backslashes, control characters and invalid
// UTF-8 are escaped.
TEST(TraceTest, PerfettoOutputIsValidJsonWithTracksAndArgs) {
  const std::string json = WritePerfetto({
      MakeEvent(1234567, trace::DELIVER, 1, 0x41, 0, 0x10, 0x20, "ok"),
      MakeEvent(5, trace::MSI_WRITE, -1, -1, 0x0200, 0xfee00578, 0,
                "quote\" back\\ nl\n ctl\x01 bad\xff utf8 \xc3\xa9"),
      MakeEvent(6, trace::DELIVER, 1, 0x42, 0, 0, 0, ""),
  });
  JsonParser parser(json);
  std::optional<Json> doc = parser.ParseDocument();
  ASSERT_TRUE(doc.has_value()) << parser.error() << "\n" << json;
  ASSERT_EQ(doc->kind, Json::kObject);
  EXPECT_EQ(doc->at("displayTimeUnit").text, "ns");
  const Json& events = doc->at("traceEvents");
  ASSERT_EQ(events.kind, Json::kArray);

  std::vector<const Json*> instants;
  std::map<std::string, std::string> thread_names;  // tid -> name
  for (const Json& e : events.array) {
    EXPECT_EQ(e.at("pid").text, "1");
    if (e.at("ph").text == "M") {
      if (e.at("name").text == "thread_name") {
        thread_names[e.at("tid").text] = e.at("args").at("name").text;
      }
      continue;
    }
    instants.push_back(&e);
  }
  EXPECT_EQ(thread_names, (std::map<std::string, std::string>{
                              {"0", "devices"}, {"2", "cpu 1"}}));
  ASSERT_EQ(instants.size(), 3u);
  const Json& first = *instants[0];
  EXPECT_EQ(first.at("name").text, "DELIVER");
  EXPECT_EQ(first.at("ph").text, "i");
  EXPECT_EQ(first.at("s").text, "t");
  EXPECT_EQ(first.at("ts").text, "1234.567");
  EXPECT_EQ(first.at("tid").text, "2");
  EXPECT_EQ(first.at("args").at("cpu").text, "1");
  EXPECT_EQ(first.at("args").at("vector").text, "0x41");
  EXPECT_EQ(first.at("args").at("address").text, "0x10");
  EXPECT_EQ(first.at("args").at("data").text, "0x20");
  EXPECT_EQ(first.at("args").at("detail").text, "ok");

  const Json& msi = *instants[1];
  EXPECT_EQ(msi.at("ts").text, "0.005");
  EXPECT_EQ(msi.at("tid").text, "0");
  EXPECT_EQ(msi.at("args").at("rid").text, "02:00.0");
  EXPECT_FALSE(msi.at("args").has("vector"));
  EXPECT_EQ(msi.at("args").at("detail").text,
            "quote\" back\\ nl\n ctl\x01 bad\xef\xbf\xbd utf8 \xc3\xa9");
}

// An empty trace is still a valid document.
TEST(TraceTest, EmptyPerfettoTraceIsValidJson) {
  const std::string json = WritePerfetto({});
  JsonParser parser(json);
  std::optional<Json> doc = parser.ParseDocument();
  ASSERT_TRUE(doc.has_value()) << parser.error() << "\n" << json;
  EXPECT_EQ(doc->at("traceEvents").kind, Json::kArray);
}

// Determinism: the same events give byte-identical output, text and JSON.
TEST(TraceTest, WritersAreDeterministic) {
  std::vector<TraceEvent> events;
  for (int i = 0; i < 50; ++i) {
    events.push_back(MakeEvent(i * 37, trace::INJECT, i % 3 - 1, i, i * 8,
                               i * 0x1000, i, "e" + std::to_string(i)));
  }
  EXPECT_EQ(WritePerfetto(events), WritePerfetto(events));
  std::ostringstream a, b;
  TextTraceWriter wa(&a), wb(&b);
  for (const TraceEvent& e : events) {
    wa.Emit(e);
    wb.Emit(e);
  }
  const std::string text = a.str();
  EXPECT_EQ(text, b.str());
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 50);
}

// JsonEscape keeps valid UTF-8 and replaces each invalid byte (overlong,
// surrogate, truncated sequence) with U+FFFD (RFC 3629, section 4).
TEST(TraceTest, JsonEscapeHandlesUtf8) {
  EXPECT_EQ(JsonEscape("\xe2\x86\x92"), "\xe2\x86\x92");          // U+2192
  EXPECT_EQ(JsonEscape("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80");  // U+1F600
  EXPECT_EQ(JsonEscape("\xc0\xaf"), "\\ufffd\\ufffd");            // overlong
  EXPECT_EQ(JsonEscape("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");  // surrogate
  EXPECT_EQ(JsonEscape("\xe2\x86"), "\\ufffd\\ufffd");            // truncated
  EXPECT_EQ(JsonEscape("a\"b\\c\x1f\x7f"), "a\\\"b\\\\c\\u001f\\u007f");
}

}  // namespace
// Tracer::Finish() detaches the sinks: events emitted afterwards (a machine
// being torn down frees host interrupts and traces it) must not reach a
// finished writer, which would corrupt a closed Perfetto JSON file.
TEST(TraceTest, FinishDetachesSinks) {
  std::ostringstream out;
  TextTraceWriter writer(&out);
  Tracer tracer;
  tracer.AddSink(&writer);
  tracer.Emit(1, trace::DELIVER, 0, "before", 0x41);
  tracer.Finish();
  EXPECT_FALSE(tracer.enabled());
  tracer.Emit(2, trace::DELIVER, 0, "after", 0x42);
  EXPECT_THAT(out.str(), HasSubstr("before"));
  EXPECT_THAT(out.str(), ::testing::Not(HasSubstr("after")));
}

}  // namespace irqlab
