// Seeds, shards and hashes (emu/run/shard.h): FNV-1a reference vectors and
// the trace/scenario hashes, seed ranges, shard selection from the
// environment (GoogleTest, Kubernetes, Slurm) and how shards partition a
// range.
#include "emu/run/shard.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "emu/run/scenario.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_files.h"

namespace irqlab {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

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

}  // namespace
}  // namespace irqlab
