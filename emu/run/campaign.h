// Campaigns and regression suites: the machinery behind `irqlab campaign`,
// `irqlab merge` and `irqlab test` (see `irqlab --help`).
//
//   - Seed ranges ("A..B") and sharding by the environment of the engine the
//     campaign runs on (GoogleTest/CTest, Kubernetes indexed jobs, Slurm job
//     arrays).
//   - A pool of forked worker processes: each work item runs in its own
//     child, so a crash (signal, sanitizer abort) or a hang of one item is
//     recorded and the others go on; a child that exceeds its wall-clock
//     timeout is killed with SIGKILL.
//   - Results files: JSON Lines of campaign::RunRecord (emu/run/campaign.proto),
//     sorted by seed, and their merge.
//   - JUnit XML for `irqlab test`.
//
// Everything that decides a record's content runs on the virtual clock, so a
// record depends only on (scenario, seed) — never on the worker, the shard,
// the host or the number of jobs.
#ifndef IRQLAB_EMU_RUN_CAMPAIGN_H_
#define IRQLAB_EMU_RUN_CAMPAIGN_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "emu/run/campaign.pb.h"
#include "emu/run/scenario.pb.h"

namespace irqlab {

// ---------------------------------------------------------------- hashing --

// 64-bit FNV-1a; `h` continues a previous hash. Stable across processes,
// builds and hosts (unlike absl::Hash).
inline constexpr uint64_t kFnv1a64Offset = 0xcbf29ce484222325ull;
uint64_t Fnv1a64(absl::string_view data, uint64_t h = kFnv1a64Offset);
// FNV-1a 64 of the text trace as `--trace` writes it: every line followed by
// '\n'.
uint64_t TraceHash(const std::vector<std::string>& trace_lines);
// 16 lowercase hex digits.
std::string HashHex(uint64_t h);
// FNV-1a 64 of the scenario in canonical text format, as HashHex.
std::string ScenarioHash(const scenario::Scenario& s);

// ------------------------------------------------------ seeds and shards --

struct SeedRange {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
  uint64_t size() const { return last - first + 1; }
  std::string ToString() const;  // "A..B"
};
// "A..B" (A <= B) or "N" (= N..N); decimal. At most kMaxSeeds seeds.
inline constexpr uint64_t kMaxSeeds = 1'000'000'000;
absl::StatusOr<SeedRange> ParseSeedRange(absl::string_view text);

struct Shard {
  uint64_t index = 0;
  uint64_t count = 1;
  std::string source;  // where index/count came from ("" = not sharded)
  std::string ToString() const;  // "shard 2 of 4 (GTEST_SHARD_INDEX/...)"
};

// Returns an environment variable's value, or nullopt when it is unset.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;
EnvLookup ProcessEnv();

// Picks the shard of this process. The first source that sets an index wins:
//   1. GTEST_SHARD_INDEX of GTEST_TOTAL_SHARDS (CTest, Bazel, gtest-parallel)
//   2. JOB_COMPLETION_INDEX (Kubernetes indexed Job) of the count given by
//      `shards_flag` (--shards=N) or else IRQLAB_TOTAL_SHARDS
//   3. SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT; the index is
//      (ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP (MIN 0 and STEP 1
//      when unset)
//   4. none: shard 0 of 1.
// A count from --shards/IRQLAB_TOTAL_SHARDS must agree with the count of the
// source in use (and without an index source it is an error). Errors
// (InvalidArgument, naming the variables): an index without its count or
// the reverse, a value that is not a decimal number, count 0, index >= count.
// Empty variables count as unset.
absl::StatusOr<Shard> ResolveShard(const EnvLookup& env, std::optional<uint64_t> shards_flag);

// The seeds of `shard`: those with (seed - range.first) % count == index,
// ascending; how many there are; the i-th of them.
std::vector<uint64_t> ShardSeeds(const SeedRange& range, const Shard& shard);
uint64_t ShardSize(const SeedRange& range, const Shard& shard);
uint64_t ShardSeed(const SeedRange& range, const Shard& shard, uint64_t i);

// ---------------------------------------------------------- worker pool --

struct WorkerResult {
  enum class Kind {
    kExited,    // exited with `exit_code`
    kSignaled,  // killed by `signal`
    kTimedOut,  // exceeded the timeout, killed by SIGKILL
  };
  Kind kind = Kind::kExited;
  int exit_code = 0;
  int signal = 0;
  bool has_result = false;  // the work function returned and its result arrived whole
  std::string payload;      // what the work function returned (if has_result)
  std::string stderr_tail;  // the last kStderrTail bytes the child wrote to stderr
  double wall_seconds = 0;

  static constexpr size_t kStderrTail = 4096;
  bool ok() const { return kind == Kind::kExited && exit_code == 0 && has_result; }
  // "killed by SIGSEGV (Segmentation fault)", "exited with status 3 without
  // a result", "killed after 60 s wall clock (--worker_timeout)"; "" if ok().
  std::string Describe(double timeout_seconds) const;
};

struct WorkerPoolOptions {
  int jobs = 1;                   // worker processes at a time (>= 1)
  double timeout_seconds = 0;     // wall clock per item; 0 = none
  // Called in the parent after each item completes (any order).
  std::function<void(size_t completed, size_t total)> progress;
};

// Runs work(i) for i in [0, n), each in a fork()ed child process with stdin
// and stdout on /dev/null and stderr captured; the string work(i) returns is
// sent back to the parent. `done` is called in the parent in index order
// (0, 1, 2, ...), as soon as the item and all before it are complete; if it
// returns false, no more items start and the running ones are killed.
void RunInWorkers(size_t n, const WorkerPoolOptions& options,
                  const std::function<std::string(size_t)>& work,
                  const std::function<bool(size_t, WorkerResult)>& done);

// ----------------------------------------------------------- campaigns --

// Runs one seed of a scenario (in a worker process) and fills the record's
// per-run fields (seed ... detail). A scenario that does not validate gives
// outcome "error" with the message in detail.
using SeedRunner = std::function<campaign::RunRecord(uint64_t seed)>;
SeedRunner ScenarioSeedRunner(const scenario::Scenario& s, const std::string& base_dir);

struct CampaignConfig {
  std::string scenario_file;
  scenario::Scenario scenario;
  SeedRange seeds;
  Shard shard;
  int jobs = 1;
  double worker_timeout_seconds = 60;
  bool progress_bar = false;  // draw a progress bar with ETA on stderr
};

// Runs the shard's seeds of the campaign in worker processes; calls
// `on_record` with each record in seed order as soon as it is known. Returns
// InvalidArgument (and stops) when a run reports outcome "error" (the
// scenario is bad, whatever the seed).
absl::StatusOr<std::vector<campaign::RunRecord>> RunCampaign(
    const CampaignConfig& config, const SeedRunner& runner,
    const std::function<void(const campaign::RunRecord&)>& on_record);

// One results-file line (no newline): compact proto3 JSON, proto field
// names, every field printed.
std::string RecordToJsonLine(const campaign::RunRecord& r);
// Reads a results file; errors name path:line.
absl::StatusOr<std::vector<campaign::RunRecord>> ReadResultsFile(const std::string& path);

// Seeds of the merged records' ranges (RunRecord.seeds) that no record has.
struct MergeGaps {
  uint64_t count = 0;
  std::vector<uint64_t> first;  // the first (at most 10) of them
};

// Merges results files: sorted by seed; identical duplicates are kept once;
// a seed with different records in two files, or records of different
// scenarios (name or scenario_hash), is an InvalidArgument naming the files.
absl::StatusOr<std::vector<campaign::RunRecord>> MergeResultsFiles(
    const std::vector<std::string>& paths, MergeGaps* gaps = nullptr);

// Writes records (JSON Lines) to `path` atomically (temporary file + rename).
absl::Status WriteResultsFile(const std::string& path,
                              const std::vector<campaign::RunRecord>& records);

// The summary table (runs / passed / failed per outcome and in total) and
// the failing seeds, each with the command that replays it (at most
// `max_listed`). `program` is how irqlab was invoked (argv[0]).
void PrintCampaignSummary(const std::vector<campaign::RunRecord>& records,
                          const std::string& program, std::ostream& out,
                          size_t max_listed = 20);

// ---------------------------------------------------------- test suites --

// A scenario file of a suite: `path` as given/found, `classname` the JUnit
// class (the suite directory's name, then its subdirectories, '/'-joined),
// `name` the file name without ".textproto".
struct SuiteCase {
  std::string path;
  std::string classname;
  std::string name;
};
// Finds every *.textproto under each argument (a directory, searched
// recursively, or a file), sorted by path within each directory argument.
// NotFound naming the path if it does not exist; InvalidArgument if nothing
// is found.
absl::StatusOr<std::vector<SuiteCase>> FindSuiteCases(const std::vector<std::string>& paths);

// Loads and runs one scenario file (in a worker process).
campaign::TestCaseResult RunSuiteCase(const std::string& path);

struct SuiteResult {
  SuiteCase test;
  campaign::TestCaseResult result;
  double seconds = 0;
};

// Runs each case with `runner` (RunSuiteCase, or a stand-in in tests) in a
// worker process; a worker that crashes or times out gives outcome "crash"
// (detail: the signal) or "timeout". Results in case order; `on_result` is
// called with each as soon as it and all before it are known.
std::vector<SuiteResult> RunSuite(
    const std::vector<SuiteCase>& cases, const WorkerPoolOptions& pool,
    const std::function<campaign::TestCaseResult(const std::string& path)>& runner,
    const std::function<void(const SuiteResult&)>& on_result);

// `s` as XML 1.0 character data: & < > escaped, CR as &#13;, characters XML
// cannot hold (controls other than tab/LF/CR, U+FFFE/FFFF) and invalid
// UTF-8 bytes replaced by U+FFFD. With `attribute`, also " ' and tab/LF as
// character references (attribute-value normalization would turn them into
// spaces).
std::string XmlEscape(absl::string_view s, bool attribute = false);
// JUnit XML: <testsuites> with one <testsuite> per classname, one
// <testcase> per scenario (<failure> for failed expectations, <error> for
// crashes, timeouts and scenarios that do not load; <system-out> the tail
// of the serial output, <system-err> a dead worker's stderr).
void WriteJUnit(const std::vector<SuiteResult>& results, double total_seconds,
                std::ostream& out);

// -------------------------------------------------------- the commands --

struct CampaignCommand {
  std::string program = "irqlab";  // argv[0], for replay commands
  std::vector<std::string> args;   // positional arguments after the command
  std::string seeds;
  int jobs = 0;                    // 0 = one per CPU
  std::string results;             // "" = <scenario>.campaign[.shard-K-of-N].jsonl
  std::optional<uint64_t> shards;
  double worker_timeout = 60;
  std::string junit;               // test
};

// Exit codes: 0 every run passed, 1 some failed (or crashed, timed out), 2
// bad input. Output on stdout, errors and the progress bar on stderr.
int CampaignMain(const CampaignCommand& c, const EnvLookup& env);
int MergeMain(const CampaignCommand& c);
int TestMain(const CampaignCommand& c);

}  // namespace irqlab

#endif  // IRQLAB_EMU_RUN_CAMPAIGN_H_
