// Results files and their merge (emu/run/results.h): one JSON record per
// line that reads back, atomic writes, errors naming path:line; merging
// sorts by seed, keeps identical duplicates once, reports gaps and rejects
// conflicts and records of other scenarios.
#include "emu/run/results.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "emu/run/shard.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_files.h"

namespace irqlab {
namespace {

using campaign::RunRecord;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

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

}  // namespace
}  // namespace irqlab
