// Campaigns, shards, merges and suites (emu/run/campaign.h, shard.h,
// worker_pool.h, results.h, suite.h): seed ranges and shard selection from
// the environment, the forked worker pool (crashes, timeouts and early stops
// are recorded, never fatal), results files and their merge, JUnit XML.
#include "emu/run/campaign.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "emu/run/results.h"
#include "emu/run/scenario.h"
#include "emu/run/shard.h"
#include "emu/run/suite.h"
#include "emu/run/worker_pool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace irqlab {
namespace {

using campaign::RunRecord;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kHello[] = IRQLAB_SOURCE_DIR "/scenarios/hello.textproto";

std::string TempDir() {
  std::string tmpl = testing::TempDir() + "/campaign_test.XXXXXX";
  const char* d = mkdtemp(tmpl.data());
  EXPECT_NE(d, nullptr);
  return tmpl;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// ------------------------------------------------------------- hashing --

// Rule: the trace hash is 64-bit FNV-1a (the published test vectors), so it
// is the same in every process, build and host.
TEST(HashTest, Fnv1a64MatchesReferenceVectors) {
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ull);
  EXPECT_EQ(Fnv1a64("bar", Fnv1a64("foo")), Fnv1a64("foobar"));
  EXPECT_EQ(HashHex(0xaf63dc4c8601ec8cull), "af63dc4c8601ec8c");
  EXPECT_EQ(HashHex(1), "0000000000000001");
}

// Rule: a record's trace hash is the FNV-1a of the file `--trace` writes, so
// a replay can be checked against the record with any FNV tool.
TEST(HashTest, TraceHashIsTheHashOfTheTraceFile) {
  absl::StatusOr<scenario::Scenario> s = LoadScenarioFile(kHello);
  ASSERT_TRUE(s.ok()) << s.status();
  RunOptions o;
  o.base_dir = IRQLAB_SOURCE_DIR "/scenarios";
  o.seed = 7;
  o.trace_path = TempDir() + "/trace.txt";
  absl::StatusOr<ScenarioReport> r = RunScenario(*s, o);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_GT(r->trace_lines.size(), 5u);
  const std::string file = ReadAll(o.trace_path);
  EXPECT_EQ(TraceHash(r->trace_lines), Fnv1a64(file));
  std::vector<std::string> changed = r->trace_lines;
  changed.back() += " ";
  EXPECT_NE(TraceHash(changed), TraceHash(r->trace_lines));
}

// Rule: the scenario hash ignores comments and layout but not content.
TEST(HashTest, ScenarioHashIgnoresLayoutNotContent) {
  absl::StatusOr<scenario::Scenario> a =
      ParseScenario("name: \"x\"\nkernel { builtin: \"hello\" }", "a");
  absl::StatusOr<scenario::Scenario> b =
      ParseScenario("# comment\nname:   \"x\"   kernel{builtin:\"hello\"}\n", "b");
  absl::StatusOr<scenario::Scenario> c =
      ParseScenario("name: \"x\"\nkernel { builtin: \"hello\" cmdline: \"y\" }", "c");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(ScenarioHash(*a), ScenarioHash(*b));
  EXPECT_NE(ScenarioHash(*a), ScenarioHash(*c));
}

// ---------------------------------------------------------- seed ranges --

TEST(SeedRangeTest, ParsesRangesAndSingleSeeds) {
  absl::StatusOr<SeedRange> r = ParseSeedRange("1..10000");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->first, 1u);
  EXPECT_EQ(r->last, 10000u);
  EXPECT_EQ(r->size(), 10000u);
  EXPECT_EQ(r->ToString(), "1..10000");
  r = ParseSeedRange("42");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->first, 42u);
  EXPECT_EQ(r->last, 42u);
  r = ParseSeedRange("0..0");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), 1u);
}

TEST(SeedRangeTest, RejectsMalformedAndEmptyRanges) {
  for (const char* bad : {"5..2", "x", "", "1..", "..3", "1..2..3", "-1..3", "1...3", "1..x",
                          " 1..2", "0x10..0x20", "1..99999999999999999999", "0..1000000000"}) {
    absl::StatusOr<SeedRange> r = ParseSeedRange(bad);
    EXPECT_FALSE(r.ok()) << "\"" << bad << "\" parsed as " << r->ToString();
  }
  EXPECT_THAT(std::string(ParseSeedRange("5..2").status().message()), HasSubstr("5 > 2"));
}

// --------------------------------------------------------------- shards --

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ShardTest, NoEnvironmentMeansOneShard) {
  absl::StatusOr<Shard> s = ResolveShard(FakeEnv({}), std::nullopt);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->index, 0u);
  EXPECT_EQ(s->count, 1u);
  EXPECT_EQ(s->source, "");
}

TEST(ShardTest, EachEngineSetsIndexAndCount) {
  absl::StatusOr<Shard> s =
      ResolveShard(FakeEnv({{"GTEST_TOTAL_SHARDS", "4"}, {"GTEST_SHARD_INDEX", "3"}}), std::nullopt);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->index, 3u);
  EXPECT_EQ(s->count, 4u);
  EXPECT_THAT(s->source, HasSubstr("GTEST"));

  s = ResolveShard(FakeEnv({{"JOB_COMPLETION_INDEX", "2"}}), 5);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->index, 2u);
  EXPECT_EQ(s->count, 5u);
  s = ResolveShard(FakeEnv({{"JOB_COMPLETION_INDEX", "2"}, {"IRQLAB_TOTAL_SHARDS", "3"}}),
                   std::nullopt);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->count, 3u);

  s = ResolveShard(FakeEnv({{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_COUNT", "2"}}),
                   std::nullopt);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->index, 1u);
  EXPECT_EQ(s->count, 2u);
  // --array=1-8: IDs 1..8, MIN 1.
  s = ResolveShard(FakeEnv({{"SLURM_ARRAY_TASK_ID", "8"},
                            {"SLURM_ARRAY_TASK_COUNT", "8"},
                            {"SLURM_ARRAY_TASK_MIN", "1"}}),
                   std::nullopt);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->index, 7u);
  // --array=10-40:10: IDs 10, 20, 30, 40.
  s = ResolveShard(FakeEnv({{"SLURM_ARRAY_TASK_ID", "30"},
                            {"SLURM_ARRAY_TASK_COUNT", "4"},
                            {"SLURM_ARRAY_TASK_MIN", "10"},
                            {"SLURM_ARRAY_TASK_STEP", "10"}}),
                   std::nullopt);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->index, 2u);
}

// Rule: GTEST_* wins over JOB_COMPLETION_INDEX, which wins over Slurm.
TEST(ShardTest, PrecedenceIsGtestThenKubernetesThenSlurm) {
  const std::map<std::string, std::string> all = {
      {"GTEST_TOTAL_SHARDS", "4"},     {"GTEST_SHARD_INDEX", "1"},
      {"JOB_COMPLETION_INDEX", "2"},   {"IRQLAB_TOTAL_SHARDS", "4"},
      {"SLURM_ARRAY_TASK_ID", "3"},    {"SLURM_ARRAY_TASK_COUNT", "4"}};
  absl::StatusOr<Shard> s = ResolveShard(FakeEnv(all), std::nullopt);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->index, 1u);
  auto no_gtest = all;
  no_gtest.erase("GTEST_TOTAL_SHARDS");
  no_gtest.erase("GTEST_SHARD_INDEX");
  s = ResolveShard(FakeEnv(no_gtest), std::nullopt);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->index, 2u);
  auto slurm_only = no_gtest;
  slurm_only.erase("JOB_COMPLETION_INDEX");
  slurm_only.erase("IRQLAB_TOTAL_SHARDS");
  s = ResolveShard(FakeEnv(slurm_only), std::nullopt);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->index, 3u);
  // An empty variable is unset.
  auto empty_gtest = all;
  empty_gtest["GTEST_TOTAL_SHARDS"] = "";
  empty_gtest["GTEST_SHARD_INDEX"] = "";
  s = ResolveShard(FakeEnv(empty_gtest), std::nullopt);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->index, 2u);
}

TEST(ShardTest, ContradictionsAreErrorsNamingTheVariables) {
  struct Case {
    std::map<std::string, std::string> env;
    std::optional<uint64_t> flag;
    const char* message;
  };
  const Case cases[] = {
      {{{"GTEST_TOTAL_SHARDS", "4"}, {"GTEST_SHARD_INDEX", "4"}}, {}, "GTEST_SHARD_INDEX=4"},
      {{{"GTEST_TOTAL_SHARDS", "0"}, {"GTEST_SHARD_INDEX", "0"}}, {}, "GTEST_TOTAL_SHARDS=0"},
      {{{"GTEST_TOTAL_SHARDS", "4"}}, {}, "without GTEST_SHARD_INDEX"},
      {{{"GTEST_SHARD_INDEX", "1"}}, {}, "without GTEST_TOTAL_SHARDS"},
      {{{"GTEST_TOTAL_SHARDS", "four"}, {"GTEST_SHARD_INDEX", "1"}}, {}, "GTEST_TOTAL_SHARDS=four"},
      {{{"GTEST_TOTAL_SHARDS", "4"}, {"GTEST_SHARD_INDEX", "-1"}}, {}, "GTEST_SHARD_INDEX=-1"},
      {{{"GTEST_TOTAL_SHARDS", "4"}, {"GTEST_SHARD_INDEX", "1"}}, 3, "--shards=3"},
      {{{"JOB_COMPLETION_INDEX", "1"}}, {}, "JOB_COMPLETION_INDEX=1 needs the shard count"},
      {{{"JOB_COMPLETION_INDEX", "3"}}, 3, "JOB_COMPLETION_INDEX=3"},
      {{{"JOB_COMPLETION_INDEX", "1"}, {"IRQLAB_TOTAL_SHARDS", "2"}}, 3, "contradicts"},
      {{}, 4, "--shards=4 needs a shard index"},
      {{{"IRQLAB_TOTAL_SHARDS", "4"}}, {}, "IRQLAB_TOTAL_SHARDS=4 needs a shard index"},
      {{{"SLURM_ARRAY_TASK_ID", "4"}, {"SLURM_ARRAY_TASK_COUNT", "4"}}, {}, "SLURM_ARRAY_TASK_ID=4"},
      {{{"SLURM_ARRAY_TASK_ID", "0"},
        {"SLURM_ARRAY_TASK_COUNT", "4"},
        {"SLURM_ARRAY_TASK_MIN", "1"}},
       {},
       "SLURM_ARRAY_TASK_MIN=1"},
      {{{"SLURM_ARRAY_TASK_ID", "5"},
        {"SLURM_ARRAY_TASK_COUNT", "4"},
        {"SLURM_ARRAY_TASK_STEP", "2"}},
       {},
       "SLURM_ARRAY_TASK_STEP=2"},
      {{{"SLURM_ARRAY_TASK_COUNT", "4"}}, {}, "without SLURM_ARRAY_TASK_ID"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Shard> s = ResolveShard(FakeEnv(c.env), c.flag);
    ASSERT_FALSE(s.ok()) << c.message << " resolved to " << s->ToString();
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.message));
  }
}

// Rule: shard k of n runs the seeds with (seed - A) % n == k; the shards
// partition the range.
TEST(ShardTest, ShardsPartitionTheSeedRange) {
  const SeedRange range{5, 44};
  std::multiset<uint64_t> all;
  for (uint64_t k = 0; k < 4; ++k) {
    const std::vector<uint64_t> seeds = ShardSeeds(range, Shard{k, 4, "test"});
    EXPECT_EQ(seeds.size(), 10u);
    EXPECT_TRUE(std::is_sorted(seeds.begin(), seeds.end()));
    for (uint64_t s : seeds) {
      EXPECT_EQ((s - range.first) % 4, k);
      all.insert(s);
    }
  }
  ASSERT_EQ(all.size(), 40u);
  uint64_t expect = 5;
  for (uint64_t s : all) EXPECT_EQ(s, expect++);
  EXPECT_THAT(ShardSeeds(SeedRange{1, 10}, Shard{2, 3, "t"}), ElementsAre(3, 6, 9));
  EXPECT_THAT(ShardSeeds(SeedRange{1, 10}, Shard{0, 3, "t"}), ElementsAre(1, 4, 7, 10));
  EXPECT_THAT(ShardSeeds(SeedRange{1, 2}, Shard{3, 4, "t"}), ElementsAre());
  // Large campaigns are not materialized: size and i-th seed by arithmetic.
  EXPECT_EQ(ShardSize(SeedRange{0, 999'999'999}, Shard{5, 1000, "t"}), 1'000'000u);
  EXPECT_EQ(ShardSeed(SeedRange{0, 999'999'999}, Shard{5, 1000, "t"}, 999'999), 999'999'005u);
  EXPECT_THAT(ShardSeeds(SeedRange{1, 3}, Shard{}), ElementsAre(1, 2, 3));
}

// ---------------------------------------------------------- worker pool --

TEST(WorkerPoolTest, ResultsArriveInIndexOrderFromSeparateProcesses) {
  std::vector<std::pair<size_t, std::string>> got;
  WorkerPoolOptions o;
  o.jobs = 3;
  size_t progress_calls = 0;
  o.progress = [&](size_t done, size_t total) {
    ++progress_calls;
    EXPECT_LE(done, total);
  };
  const pid_t parent = getpid();
  RunInWorkers(
      10, o,
      [&](size_t i) {
        // Later items finish first: delivery must still be in order.
        usleep(static_cast<useconds_t>((10 - i) * 2000));
        return absl::StrCat("item ", i, " pid-differs ", getpid() != parent);
      },
      [&](size_t i, WorkerResult r) {
        EXPECT_TRUE(r.ok()) << r.Describe(0);
        got.emplace_back(i, r.payload);
        return true;
      });
  ASSERT_EQ(got.size(), 10u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].first, i);
    EXPECT_EQ(got[i].second, absl::StrCat("item ", i, " pid-differs 1"));
  }
  EXPECT_EQ(progress_calls, 10u);
}

// Rule: a worker that dies (signal, abort, exit without a result) or hangs
// is recorded; the items around it still run.
TEST(WorkerPoolTest, CrashesExitsAndTimeoutsAreRecordedAndTheRestGoesOn) {
  WorkerPoolOptions o;
  o.jobs = 2;
  o.timeout_seconds = 0.5;
  std::vector<WorkerResult> got(6);
  std::vector<bool> seen(6, false);
  const auto start = std::chrono::steady_clock::now();
  RunInWorkers(
      6, o,
      [](size_t i) -> std::string {
        switch (i) {
          case 1:
            kill(getpid(), SIGKILL);
            break;
          case 2:
            fprintf(stderr, "about to abort\n");
            abort();
          case 3:
            fprintf(stderr, "first line\nlast words\n");
            _exit(3);
          case 4:
            sleep(30);
            break;
          default:
            break;
        }
        return absl::StrCat("ok ", i);
      },
      [&](size_t i, WorkerResult r) {
        seen[i] = true;
        got[i] = std::move(r);
        return true;
      });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 10.0);  // the sleeping worker was killed
  for (size_t i = 0; i < 6; ++i) EXPECT_TRUE(seen[i]) << i;
  EXPECT_TRUE(got[0].ok());
  EXPECT_EQ(got[0].payload, "ok 0");
  EXPECT_TRUE(got[5].ok());
  EXPECT_EQ(got[5].payload, "ok 5");

  EXPECT_EQ(got[1].kind, WorkerResult::Kind::kSignaled);
  EXPECT_EQ(got[1].signal, SIGKILL);
  EXPECT_THAT(got[1].Describe(0.5), HasSubstr("killed by SIGKILL"));

  EXPECT_EQ(got[2].kind, WorkerResult::Kind::kSignaled);
  EXPECT_EQ(got[2].signal, SIGABRT);
  EXPECT_THAT(got[2].Describe(0.5), HasSubstr("SIGABRT"));
  EXPECT_THAT(got[2].Describe(0.5), HasSubstr("about to abort"));

  EXPECT_EQ(got[3].kind, WorkerResult::Kind::kExited);
  EXPECT_EQ(got[3].exit_code, 3);
  EXPECT_EQ(got[3].payload, "");
  EXPECT_THAT(got[3].stderr_tail, HasSubstr("first line\nlast words\n"));
  EXPECT_EQ(got[3].Describe(0.5), "exited with status 3 without a result: last words");

  EXPECT_EQ(got[4].kind, WorkerResult::Kind::kTimedOut);
  EXPECT_GE(got[4].wall_seconds, 0.5);
  EXPECT_THAT(got[4].Describe(0.5), HasSubstr("killed after 0.5 s wall clock"));
}

// Rule: `done` returning false stops the pool: nothing new starts, running
// workers are killed, nothing more is delivered.
TEST(WorkerPoolTest, StoppingKillsTheRunningWorkers) {
  WorkerPoolOptions o;
  o.jobs = 2;
  std::vector<size_t> delivered;
  const auto start = std::chrono::steady_clock::now();
  RunInWorkers(
      20, o,
      [](size_t i) -> std::string {
        if (i != 0) sleep(30);
        return "x";
      },
      [&](size_t i, WorkerResult) {
        delivered.push_back(i);
        return false;
      });
  EXPECT_THAT(delivered, ElementsAre(0u));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
            10.0);
}

// Rule: the worker's stdout does not reach the runner's stdout (only the
// result does), and large results arrive whole.
TEST(WorkerPoolTest, LargeResultsArriveWhole) {
  WorkerPoolOptions o;
  o.jobs = 2;
  std::vector<std::string> got;
  RunInWorkers(
      3, o,
      [](size_t i) {
        printf("noise on stdout\n");
        return std::string(300000 + i, static_cast<char>('a' + i));
      },
      [&](size_t, WorkerResult r) {
        got.push_back(r.payload);
        return true;
      });
  ASSERT_EQ(got.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(got[i], std::string(300000 + i, static_cast<char>('a' + i)));
  }
}

// ------------------------------------------------------------ campaigns --

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

// ------------------------------------------------------- results files --

RunRecord Record(const std::string& scenario, uint64_t seed, bool passed) {
  RunRecord r;
  r.set_scenario(scenario);
  r.set_scenario_file(scenario + ".textproto");
  r.set_scenario_hash(scenario == "a" ? "00000000000000a1" : "00000000000000b2");
  r.set_seeds("1..6");
  r.set_seed(seed);
  r.set_outcome("exit");
  r.set_exit_status(1);
  r.set_passed(passed);
  if (!passed) r.add_failed("exit status 3 (exit status was 1)");
  r.set_trace_hash(HashHex(seed));
  r.set_trace_events(10 + seed);
  return r;
}

TEST(ResultsFileTest, OneCompleteJsonObjectPerLineThatReadsBack) {
  const RunRecord r = Record("a", 7, false);
  const std::string line = RecordToJsonLine(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_THAT(line, HasSubstr("\"seed\":\"7\""));
  EXPECT_THAT(line, HasSubstr("\"passed\":false"));  // defaults are printed too
  EXPECT_THAT(line, HasSubstr("\"faults\":\"0\""));
  EXPECT_THAT(line, HasSubstr("\"failed\":[\"exit status 3 (exit status was 1)\"]"));
  const std::string dir = TempDir();
  ASSERT_TRUE(WriteResultsFile(dir + "/r.jsonl", {r, Record("a", 8, true)}).ok());
  absl::StatusOr<std::vector<RunRecord>> back = ReadResultsFile(dir + "/r.jsonl");
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].DebugString(), r.DebugString());
  EXPECT_FALSE(std::filesystem::exists(dir + "/r.jsonl.tmp"));

  WriteFile(dir + "/bad.jsonl", RecordToJsonLine(r) + "\n{\"seed\": \"x\"\n");
  back = ReadResultsFile(dir + "/bad.jsonl");
  ASSERT_FALSE(back.ok());
  EXPECT_THAT(std::string(back.status().message()), HasSubstr("bad.jsonl:2: not a campaign record"));
  EXPECT_EQ(ReadResultsFile(dir + "/none.jsonl").status().code(), absl::StatusCode::kNotFound);
}

std::string WriteRecords(const std::string& path, const std::vector<RunRecord>& records) {
  std::string text;
  for (const RunRecord& r : records) text += RecordToJsonLine(r) + "\n";
  WriteFile(path, text);
  return path;
}

TEST(MergeTest, SortsBySeedKeepsIdenticalDuplicatesOnceAndReportsGaps) {
  const std::string dir = TempDir();
  const std::string f1 = WriteRecords(dir + "/1.jsonl", {Record("a", 5, true), Record("a", 1, true)});
  const std::string f2 =
      WriteRecords(dir + "/2.jsonl", {Record("a", 2, false), Record("a", 5, true)});
  MergeGaps gaps;
  absl::StatusOr<std::vector<RunRecord>> merged = MergeResultsFiles({f1, f2}, &gaps);
  ASSERT_TRUE(merged.ok()) << merged.status();
  std::vector<uint64_t> seeds;
  for (const RunRecord& r : *merged) seeds.push_back(r.seed());
  EXPECT_THAT(seeds, ElementsAre(1, 2, 5));
  EXPECT_FALSE((*merged)[1].passed());
  EXPECT_EQ(gaps.count, 3u);  // 3, 4, 6 of 1..6
  EXPECT_THAT(gaps.first, ElementsAre(3, 4, 6));

  const std::string f3 = WriteRecords(
      dir + "/3.jsonl", {Record("a", 3, true), Record("a", 4, true), Record("a", 6, true)});
  merged = MergeResultsFiles({f1, f2, f3}, &gaps);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->size(), 6u);
  EXPECT_EQ(gaps.count, 0u);
}

TEST(MergeTest, ConflictingDuplicatesAndOtherScenariosAreRejected) {
  const std::string dir = TempDir();
  const std::string f1 = WriteRecords(dir + "/1.jsonl", {Record("a", 1, true), Record("a", 3, true)});
  const std::string f2 = WriteRecords(dir + "/2.jsonl", {Record("a", 3, false)});
  absl::StatusOr<std::vector<RunRecord>> merged = MergeResultsFiles({f1, f2});
  ASSERT_FALSE(merged.ok());
  EXPECT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(merged.status().message()),
              HasSubstr("seed 3 has conflicting records in " + f1 + " and " + f2));
  EXPECT_THAT(std::string(merged.status().message()), HasSubstr("passed"));

  const std::string f3 = WriteRecords(dir + "/3.jsonl", {Record("b", 2, true)});
  merged = MergeResultsFiles({f1, f3});
  ASSERT_FALSE(merged.ok());
  EXPECT_THAT(std::string(merged.status().message()), HasSubstr("different scenarios"));
  EXPECT_THAT(std::string(merged.status().message()), HasSubstr(f3));

  // Same name, different content (hash).
  RunRecord other = Record("a", 2, true);
  other.set_scenario_hash("00000000000000ff");
  const std::string f4 = WriteRecords(dir + "/4.jsonl", {other});
  merged = MergeResultsFiles({f1, f4});
  ASSERT_FALSE(merged.ok());
  EXPECT_THAT(std::string(merged.status().message()), HasSubstr("00000000000000ff"));
}

// ---------------------------------------------------------- test suites --

TEST(SuiteTest, FindsScenarioFilesRecursivelySortedWithClassnames) {
  const std::string dir = TempDir() + "/suite";
  WriteFile(dir + "/zeta.textproto", "");
  WriteFile(dir + "/alpha.textproto", "");
  WriteFile(dir + "/vtd/ir.textproto", "");
  WriteFile(dir + "/vtd/deeper/x.textproto", "");
  WriteFile(dir + "/notes.txt", "");
  absl::StatusOr<std::vector<SuiteCase>> cases = FindSuiteCases({dir});
  ASSERT_TRUE(cases.ok()) << cases.status();
  std::vector<std::string> got;
  for (const SuiteCase& c : *cases) {
    got.push_back(absl::StrCat(c.path.substr(dir.size()), " ", c.classname, " ", c.name));
  }
  EXPECT_THAT(got, ElementsAre("/alpha.textproto suite alpha",
                               "/vtd/deeper/x.textproto suite/vtd/deeper x",
                               "/vtd/ir.textproto suite/vtd ir",
                               "/zeta.textproto suite zeta"));
  EXPECT_EQ(FindSuiteCases({dir + "/nope"}).status().code(), absl::StatusCode::kNotFound);
  std::filesystem::create_directories(dir + "/empty");
  EXPECT_EQ(FindSuiteCases({dir + "/empty"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SuiteTest, RunSuiteCaseReportsPassFailAndLoadErrors) {
  campaign::TestCaseResult r = RunSuiteCase(kHello);
  EXPECT_TRUE(r.passed());
  EXPECT_EQ(r.outcome(), "exit");
  EXPECT_THAT(r.serial_tail(), HasSubstr("PASS: hello"));

  const std::string dir = TempDir();
  WriteFile(dir + "/syntax.textproto", "name: {");
  r = RunSuiteCase(dir + "/syntax.textproto");
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.outcome(), "error");
  EXPECT_THAT(r.detail(), HasSubstr("syntax.textproto:1:"));
}

// Rule: a scenario whose worker crashes is a failure with the signal named
// (and the worker's stderr kept); the suite goes on.
TEST(SuiteTest, CrashingScenarioIsAFailureNamingTheSignal) {
  const std::vector<SuiteCase> cases = {
      {"s/ok.textproto", "s", "ok"},
      {"s/segv.textproto", "s", "segv"},
      {"s/sanitizer.textproto", "s", "sanitizer"},
      {"s/ok2.textproto", "s", "ok2"}};
  WorkerPoolOptions pool;
  pool.jobs = 2;
  std::vector<std::string> streamed;
  const std::vector<SuiteResult> results = RunSuite(
      cases, pool,
      [](const std::string& path) {
        if (absl::StrContains(path, "segv")) kill(getpid(), SIGILL);  // not caught by ASan
        if (absl::StrContains(path, "sanitizer")) {
          fprintf(stderr, "==1==ERROR: AddressSanitizer: heap-use-after-free\n");
          _exit(1);
        }
        campaign::TestCaseResult r;
        r.set_outcome("exit");
        r.set_passed(true);
        return r;
      },
      [&](const SuiteResult& r) { streamed.push_back(r.test.name); });
  EXPECT_THAT(streamed, ElementsAre("ok", "segv", "sanitizer", "ok2"));
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].result.passed());
  EXPECT_TRUE(results[3].result.passed());
  EXPECT_FALSE(results[1].result.passed());
  EXPECT_EQ(results[1].result.outcome(), "crash");
  EXPECT_THAT(results[1].result.detail(), HasSubstr("killed by SIGILL (Illegal instruction)"));
  EXPECT_EQ(results[2].result.outcome(), "crash");
  EXPECT_THAT(results[2].result.detail(), HasSubstr("exited with status 1 without a result"));
  EXPECT_THAT(results[2].result.worker_stderr(), HasSubstr("AddressSanitizer"));
  std::ostringstream xml;
  WriteJUnit(results, 1, xml);
  EXPECT_THAT(xml.str(), HasSubstr("errors=\"2\""));
  EXPECT_THAT(xml.str(), HasSubstr("<system-err>==1==ERROR: AddressSanitizer"));
}

TEST(XmlTest, EscapesMarkupControlsAndInvalidUtf8) {
  EXPECT_EQ(XmlEscape("a<b>&c\"d'e"), "a&lt;b&gt;&amp;c\"d'e");
  EXPECT_EQ(XmlEscape("a\"b'c", true), "a&quot;b&apos;c");
  EXPECT_EQ(XmlEscape("l1\nl2\tx\ry"), "l1\nl2\tx&#13;y");
  EXPECT_EQ(XmlEscape("l1\nl2\t", true), "l1&#10;l2&#9;");
  EXPECT_EQ(XmlEscape(std::string("nul\0bell\x07", 9)), "nul\xEF\xBF\xBD" "bell\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");  // valid UTF-8 kept
  EXPECT_EQ(XmlEscape("\xFF"), "\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape("\xC3"), "\xEF\xBF\xBD");                 // truncated
  EXPECT_EQ(XmlEscape("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
  EXPECT_EQ(XmlEscape("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(XmlEscape("\xEF\xBF\xBE"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // U+FFFE
}

TEST(XmlTest, JUnitHasOneSuitePerClassnameWithFailuresAndErrors) {
  std::vector<SuiteResult> results(3);
  results[0].test = {"s/a.textproto", "s", "a"};
  results[0].result.set_passed(true);
  results[0].result.set_outcome("exit");
  results[0].seconds = 0.25;
  results[1].test = {"s/sub/b.textproto", "s/sub", "b"};
  results[1].result.set_outcome("exit");
  results[1].result.add_failed("serial contains \"<x>\" (not in the serial output)");
  results[1].result.add_failed("exit status 1 (exit status was 3)");
  results[1].result.set_serial_tail("boot\nFAIL & done\n");
  results[2].test = {"s/c.textproto", "s", "c"};
  results[2].result.set_outcome("crash");
  results[2].result.set_detail("worker killed by SIGSEGV (Segmentation fault)");
  std::ostringstream xml;
  WriteJUnit(results, 1.5, xml);
  const std::string x = xml.str();
  EXPECT_THAT(x, HasSubstr("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
  EXPECT_THAT(x, HasSubstr("<testsuites name=\"irqlab\" tests=\"3\" failures=\"1\" errors=\"1\" "
                           "time=\"1.500\">"));
  EXPECT_THAT(x, HasSubstr("<testsuite name=\"s\" tests=\"2\" failures=\"0\" errors=\"1\""));
  EXPECT_THAT(x, HasSubstr("<testsuite name=\"s/sub\" tests=\"1\" failures=\"1\" errors=\"0\""));
  EXPECT_THAT(x, HasSubstr("<testcase name=\"a\" classname=\"s\" file=\"s/a.textproto\" "
                           "time=\"0.250\"/>"));
  EXPECT_THAT(x, HasSubstr("<failure message=\"serial contains &quot;&lt;x&gt;&quot; (not in the "
                           "serial output); exit status 1 (exit status was 3)\" "
                           "type=\"expectation\">"));
  EXPECT_THAT(x, HasSubstr("<system-out>boot\nFAIL &amp; done\n</system-out>"));
  EXPECT_THAT(x, HasSubstr("<error message=\"worker killed by SIGSEGV (Segmentation fault)\" "
                           "type=\"crash\">"));
  EXPECT_TRUE(absl::EndsWith(x, "</testsuites>\n"));
  // Balanced: every opened element is closed.
  for (const char* tag : {"testsuites", "testsuite", "failure", "error", "system-out"}) {
    size_t open = 0, close = 0;
    for (size_t p = 0; (p = x.find(absl::StrCat("<", tag, " "), p)) != std::string::npos; ++p) ++open;
    for (size_t p = 0; (p = x.find(absl::StrCat("<", tag, ">"), p)) != std::string::npos; ++p) ++open;
    for (size_t p = 0; (p = x.find(absl::StrCat("</", tag, ">"), p)) != std::string::npos; ++p) ++close;
    EXPECT_EQ(open, close) << tag;
  }
}

}  // namespace
}  // namespace irqlab
