// Scenario runner tests: parsing and validation errors name the position or
// field; runs are deterministic; actions and expectations behave as written.
#include "emu/run/scenario.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace irqlab {
namespace {

using ::testing::HasSubstr;

scenario::Scenario Parse(std::string_view text) {
  absl::StatusOr<scenario::Scenario> s = ParseScenario(text, "test");
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : scenario::Scenario();
}

TEST(ScenarioParseTest, SyntaxErrorNamesLineAndColumn) {
  absl::StatusOr<scenario::Scenario> s =
      ParseScenario("name: \"x\"\nmachine { cpus: }\n", "f.textproto");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("f.textproto:2:"));
}

TEST(ScenarioParseTest, UnknownFieldIsAnError) {
  absl::StatusOr<scenario::Scenario> s = ParseScenario("machine { vcpus: 2 }", "f");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("vcpus"));
}

TEST(ScenarioParseTest, MissingFileIsNotFoundNamingThePath) {
  absl::StatusOr<scenario::Scenario> s = LoadScenarioFile("/nonexistent/s.textproto");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("/nonexistent/s.textproto"));
}

TEST(ParseSizeTest, SuffixesAndHex) {
  EXPECT_EQ(*ParseSize("64M"), 64ull << 20);
  EXPECT_EQ(*ParseSize("1g"), 1ull << 30);
  EXPECT_EQ(*ParseSize("512K"), 512ull << 10);
  EXPECT_EQ(*ParseSize("0x4000000"), 64ull << 20);
  EXPECT_EQ(*ParseSize("4096"), 4096u);
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_FALSE(ParseSize("lots").ok());
  EXPECT_FALSE(ParseSize("0").ok());
  EXPECT_FALSE(ParseSize("99999999999999999999G").ok());
}

TEST(ScenarioValidateTest, ErrorsNameTheField) {
  struct Case {
    const char* text;
    const char* field;
  } cases[] = {
      {"machine { cpus: 0 } kernel { builtin: \"hello\" }", "machine.cpus"},
      {"machine { cpus: 65 } kernel { builtin: \"hello\" }", "machine.cpus"},
      {"machine { ram: \"12Q\" } kernel { builtin: \"hello\" }", "machine.ram"},
      {"machine { ram: \"1M\" } kernel { builtin: \"hello\" }", "machine.ram"},
      {"kernel { }", "kernel"},
      {"kernel { builtin: \"nope\" }", "kernel.builtin"},
      {"kernel { path: \"/nonexistent/k.elf\" }", "/nonexistent/k.elf"},
      {"kernel { builtin: \"hello\" modules { path: \"/nonexistent/m\" } }",
       "kernel.modules[0].path"},
      {"kernel { builtin: \"hello\" } actions { at: 1 inject { cpu: 1 vector: 64 } }",
       "actions[0].inject.cpu"},
      {"kernel { builtin: \"hello\" } actions { at: 1 inject { cpu: 0 vector: 3 } }",
       "actions[0].inject.vector"},
      {"kernel { builtin: \"hello\" } actions { at: 1 }", "actions[0]"},
      {"kernel { builtin: \"hello\" } actions { at: 1 irq_line { line: 24 } }",
       "actions[0].irq_line.line"},
      {"machine { devices { name: \"flux\" } } kernel { builtin: \"hello\" }",
       "machine.devices[0]"},
      {"machine { devices { name: \"edu\" options { key: \"x\" value: \"1\" } } } "
       "kernel { builtin: \"hello\" }",
       "machine.devices[0]: device \"edu\" has no option \"x\""},
      {"machine { ioapic_version: 0x17 } kernel { builtin: \"hello\" }",
       "machine.ioapic_version"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ScenarioReport> r = RunScenario(Parse(c.text), RunOptions());
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.field)) << c.text;
  }
}

// Fault kinds that name a PCI function or a delay are checked at load time.
TEST(ScenarioValidateTest, FaultErrorsNameTheField) {
  struct Case {
    const char* text;
    const char* message;
  } cases[] = {
      {"kernel { builtin: \"hello\" } faults { at: 1 msix_entry { slot: 32 } }",
       "faults[0].msix_entry.slot: must be 0..31"},
      {"kernel { builtin: \"hello\" } faults { at: 1 msix_entry { slot: 4 } }",
       "faults[0].msix_entry.slot: no PCI function at 00:04.0"},
      {"machine { devices { name: \"edu\" } } kernel { builtin: \"hello\" } "
       "faults { at: 1 msix_entry { slot: 3 } }",
       "faults[0].msix_entry.slot: 00:03.0 (edu) has no MSI-X capability"},
      {"machine { devices { name: \"irqlab-testdev\" } } kernel { builtin: \"hello\" } "
       "faults { at: 1 msix_entry { slot: 4 index: 64 } }",
       "faults[0].msix_entry.index: must be below the table size 64 of 00:04.0"},
      {"kernel { builtin: \"hello\" } faults { at: 1 delay_eoi { count: 1 } }",
       "faults[0].delay_eoi.ticks: must be > 0"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ScenarioReport> r = RunScenario(Parse(c.text), RunOptions());
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.message)) << c.text;
  }
}

constexpr char kInject[] = R"(
  name: "inject"
  kernel { builtin: "inject" cmdline: "count=3" }
  actions { at: 2000000 inject { cpu: 0 vector: 0x40 count: 2 interval: 7000 } }
  actions { at: 2030000 inject { cpu: 0 vector: 0x90 } }
  expect {
    exit_status: 1
    serial_contains: "PASS: inject"
    trace { contains: " DELIVER cpu=0 vec=0x40" count: 2 }
  }
)";

// The same scenario and seed give the same trace, byte for byte.
TEST(ScenarioRunTest, SameScenarioTwiceGivesIdenticalTrace) {
  const scenario::Scenario s = Parse(kInject);
  absl::StatusOr<ScenarioReport> a = RunScenario(s, RunOptions());
  absl::StatusOr<ScenarioReport> b = RunScenario(s, RunOptions());
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(a->passed()) << absl::StrJoin(a->trace_lines, "\n");
  ASSERT_GT(a->trace_lines.size(), 5u);
  EXPECT_EQ(absl::StrJoin(a->trace_lines, "\n"), absl::StrJoin(b->trace_lines, "\n"));
  EXPECT_EQ(a->run.time, b->run.time);
}

// A failing expectation makes the report fail and says what was seen.
TEST(ScenarioRunTest, UnmetExpectationFails) {
  scenario::Scenario s = Parse(kInject);
  s.mutable_expect()->add_serial_contains("this is never printed");
  s.mutable_expect()->set_exit_status(3);
  absl::StatusOr<ScenarioReport> r = RunScenario(s, RunOptions());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->passed());
  int failed = 0;
  for (const auto& e : r->expectations) failed += e.passed ? 0 : 1;
  EXPECT_EQ(failed, 2);
}

// Rule (Inject in emu/run/scenario.proto: up to 1,000,000 injections per
// action): injections are scheduled one at a time per action, so a scenario
// of 64 such actions costs 64 pending events, not 64 million (found by
// tests/fuzz/fuzz_scenario: it used to take gigabytes before the run
// started). The series still injects on time: the guest gets its 3
// interrupts from the first action at 2.0M, 2.1M and 2.2M ticks and exits;
// the 63 other series are still waiting for their first tick.
TEST(ScenarioRunTest, MillionsOfInjectionsAreScheduledLazily) {
  std::string text = R"(
    kernel { builtin: "inject" cmdline: "count=3" }
    actions { at: 2000000 inject { cpu: 0 vector: 0x40 count: 1000000 interval: 100000 } }
    expect { exit_status: 1 serial_contains: "PASS: inject"
             trace { contains: "INJECT" contains: "vec=0x40" count: 3 } })";
  for (int i = 0; i < 63; ++i) {
    text += "actions { at: " + std::to_string(900000000 + i) +
            " inject { cpu: 0 vector: 0x41 count: 1000000 interval: 1000 } }\n";
  }
  absl::StatusOr<ScenarioReport> r = RunScenario(Parse(text), RunOptions());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->passed()) << r->run.detail << "\n" << absl::StrJoin(r->trace_lines, "\n");
  EXPECT_GT(r->run.time, 2200000u);
  EXPECT_LT(r->run.time, 2300000u);
}

// With no injections the guest waits in HLT with IF=1 and nothing can wake
// it: the run is reported as a hang, not a spin to the time limit.
TEST(ScenarioRunTest, GuestWaitingForever) {
  scenario::Scenario s = Parse(R"(
    kernel { builtin: "inject" cmdline: "count=1 hlt=1" }
    limits { max_time: 5000000000 }
    expect { outcome: "hang" })");
  absl::StatusOr<ScenarioReport> r = RunScenario(s, RunOptions());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->run.outcome, RunResult::Outcome::kHang) << r->run.detail;
  EXPECT_THAT(r->run.detail, HasSubstr("cpu 0 halted with interrupts enabled"));
}

}  // namespace
}  // namespace irqlab
