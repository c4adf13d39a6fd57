// Campaigns (emu/run/campaign.h): records equal in-process runs of their
// seeds, fault counts come from the trace, failing expectations, crashing
// and hanging seeds are recorded (and summarized with replay commands), an
// invalid scenario stops the campaign.
#include "emu/run/campaign.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "emu/run/scenario.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_files.h"

namespace irqlab {
namespace {

using campaign::RunRecord;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

CampaignConfig HelloCampaign(SeedRange seeds, int jobs) {
  CampaignConfig c;
  c.scenario_file = "scenarios/hello.textproto";
  absl::StatusOr<scenario::Scenario> s = LoadScenarioFile(kHello);
  EXPECT_TRUE(s.ok());
  c.scenario = *s;
  c.seeds = seeds;
  c.jobs = jobs;
  c.worker_timeout_seconds = 60;
  return c;
}

// Rule: every record of a campaign equals what an in-process run of that
// seed gives (outcome, expectations, trace hash): nothing depends on the
// worker process.
TEST(CampaignTest, RecordsMatchInProcessRuns) {
  const CampaignConfig c = HelloCampaign(SeedRange{3, 6}, 2);
  std::vector<uint64_t> streamed;
  absl::StatusOr<std::vector<RunRecord>> records =
      RunCampaign(c, ScenarioSeedRunner(c.scenario, IRQLAB_SOURCE_DIR "/scenarios"),
                  [&](const RunRecord& r) { streamed.push_back(r.seed()); });
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_THAT(streamed, ElementsAre(3, 4, 5, 6));
  ASSERT_EQ(records->size(), 4u);
  for (const RunRecord& r : *records) {
    RunOptions o;
    o.seed = r.seed();
    o.base_dir = IRQLAB_SOURCE_DIR "/scenarios";
    absl::StatusOr<ScenarioReport> want = RunScenario(c.scenario, o);
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(r.scenario(), "hello");
    EXPECT_EQ(r.scenario_file(), "scenarios/hello.textproto");
    EXPECT_EQ(r.scenario_hash(), ScenarioHash(c.scenario));
    EXPECT_EQ(r.seeds(), "3..6");
    EXPECT_EQ(r.outcome(), "exit");
    EXPECT_EQ(r.exit_status(), 1);
    EXPECT_TRUE(r.passed());
    EXPECT_EQ(r.failed_size(), 0);
    EXPECT_EQ(r.trace_hash(), HashHex(TraceHash(want->trace_lines)));
    EXPECT_EQ(r.trace_events(), want->trace_lines.size());
    EXPECT_EQ(r.end_time(), want->run.time);
    EXPECT_EQ(r.faults(), 0u);
  }
}

// Rule: `faults` counts the remapping faults (IR_FAULT, DMA_FAULT events)
// of the run's trace, `injected` the FAULT_INJECT events.
TEST(CampaignTest, FaultCountsComeFromTheTrace) {
  CampaignConfig c;
  c.scenario_file = IRQLAB_SOURCE_DIR "/scenarios/vtd_ir_faults.textproto";
  absl::StatusOr<scenario::Scenario> s = LoadScenarioFile(c.scenario_file);
  ASSERT_TRUE(s.ok()) << s.status();
  c.scenario = *s;
  c.seeds = SeedRange{1, 1};
  absl::StatusOr<std::vector<RunRecord>> records =
      RunCampaign(c, ScenarioSeedRunner(c.scenario, IRQLAB_SOURCE_DIR "/scenarios"), nullptr);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 1u);
  RunOptions o;
  o.seed = 1;
  o.base_dir = IRQLAB_SOURCE_DIR "/scenarios";
  absl::StatusOr<ScenarioReport> want = RunScenario(c.scenario, o);
  ASSERT_TRUE(want.ok());
  uint64_t faults = 0, injected = 0;
  for (const std::string& line : want->trace_lines) {
    faults += absl::StrContains(line, " IR_FAULT ") || absl::StrContains(line, " DMA_FAULT ");
    injected += absl::StrContains(line, " FAULT_INJECT ");
  }
  EXPECT_GT(faults, 5u);  // every reason 0x20-0x26 at least once
  EXPECT_EQ((*records)[0].faults(), faults);
  EXPECT_EQ((*records)[0].injected(), injected);
  EXPECT_TRUE((*records)[0].passed());
}

// Rule: a failing expectation makes the record fail with the expectation
// named; the guest's exit status and the outcome are recorded.
TEST(CampaignTest, FailingExpectationsAreRecorded) {
  absl::StatusOr<scenario::Scenario> s = ParseScenario(
      "name: \"hello-wrong\" kernel { builtin: \"hello\" }"
      " expect { exit_status: 3 serial_contains: \"no such line\" }",
      "inline");
  ASSERT_TRUE(s.ok()) << s.status();
  CampaignConfig c;
  c.scenario = *s;
  c.scenario_file = "inline.textproto";
  c.seeds = SeedRange{1, 2};
  c.jobs = 2;
  absl::StatusOr<std::vector<RunRecord>> records =
      RunCampaign(c, ScenarioSeedRunner(*s, "."), nullptr);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 2u);
  const RunRecord& r = (*records)[0];
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.outcome(), "exit");
  EXPECT_EQ(r.exit_status(), 1);
  ASSERT_EQ(r.failed_size(), 2);
  EXPECT_EQ(r.failed(0), "exit status 3 (exit status was 1)");
  EXPECT_EQ(r.failed(1), "serial contains \"no such line\" (not in the serial output)");
}

// Rule: a seed whose worker crashes or hangs is recorded (crash with the
// signal, timeout) and the campaign goes on.
TEST(CampaignTest, CrashingAndHangingSeedsAreRecorded) {
  CampaignConfig c = HelloCampaign(SeedRange{1, 5}, 2);
  c.worker_timeout_seconds = 0.5;
  const SeedRunner runner = [](uint64_t seed) {
    if (seed == 2) abort();
    if (seed == 3) sleep(30);
    if (seed == 4) _exit(0);  // no result at all
    RunRecord r;
    r.set_outcome("exit");
    r.set_passed(true);
    r.set_trace_hash("00000000000000aa");
    return r;
  };
  absl::StatusOr<std::vector<RunRecord>> records = RunCampaign(c, runner, nullptr);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 5u);
  std::vector<std::string> outcomes;
  for (const RunRecord& r : *records) outcomes.push_back(r.outcome());
  EXPECT_THAT(outcomes, ElementsAre("exit", "crash", "timeout", "crash", "exit"));
  EXPECT_EQ((*records)[1].seed(), 2u);
  EXPECT_FALSE((*records)[1].passed());
  EXPECT_THAT((*records)[1].detail(), HasSubstr("SIGABRT"));
  ASSERT_EQ((*records)[1].failed_size(), 1);
  EXPECT_THAT((*records)[1].failed(0), HasSubstr("worker killed by SIGABRT"));
  EXPECT_THAT((*records)[2].detail(), HasSubstr("--worker_timeout"));
  EXPECT_THAT((*records)[3].detail(), HasSubstr("exited with status 0 without a result"));
  EXPECT_TRUE((*records)[4].passed());
  EXPECT_EQ((*records)[4].scenario(), "hello");  // common fields are filled in

  std::ostringstream summary;
  PrintCampaignSummary(*records, "irqlab", summary);
  EXPECT_THAT(summary.str(), HasSubstr("crash               2        0        2\n"));
  EXPECT_THAT(summary.str(), HasSubstr("timeout             1        0        1\n"));
  EXPECT_THAT(summary.str(), HasSubstr("total               5        2        3\n"));
  EXPECT_THAT(summary.str(), HasSubstr("3 failing seeds"));
  EXPECT_THAT(summary.str(),
              HasSubstr("irqlab run scenarios/hello.textproto --seed=2 "
                        "--trace=hello.seed-2.trace.txt\n"));
}

// Rule: a scenario that does not validate is an input error (it would fail
// for every seed): the campaign stops and reports it.
TEST(CampaignTest, InvalidScenarioStopsTheCampaign) {
  absl::StatusOr<scenario::Scenario> s =
      ParseScenario("name: \"bad\" machine { cpus: 0 } kernel { builtin: \"hello\" }", "bad");
  ASSERT_TRUE(s.ok());
  CampaignConfig c;
  c.scenario = *s;
  c.seeds = SeedRange{1, 50};
  c.jobs = 2;
  size_t streamed = 0;
  absl::StatusOr<std::vector<RunRecord>> records =
      RunCampaign(c, ScenarioSeedRunner(*s, "."), [&](const RunRecord&) { ++streamed; });
  ASSERT_FALSE(records.ok());
  EXPECT_THAT(std::string(records.status().message()), HasSubstr("machine.cpus"));
  EXPECT_EQ(streamed, 0u);
}

}  // namespace
}  // namespace irqlab
