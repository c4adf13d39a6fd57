#include "emu/run/campaign.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "emu/run/results.h"
#include "emu/run/scenario.h"
#include "emu/run/suite.h"
#include "emu/run/worker_pool.h"

namespace irqlab {

using campaign::RunRecord;
using campaign::TestCaseResult;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Quotes `s` for a POSIX shell if it needs it.
std::string ShellQuote(const std::string& s) {
  const bool safe = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
           std::strchr("_./+-=:,@%", c) != nullptr;
  });
  if (safe) return s;
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'");
}

// Counts trace events by stage: remapping faults and injected faults.
struct FaultCounts {
  uint64_t faults = 0;
  uint64_t injected = 0;
};
FaultCounts CountFaults(const std::vector<std::string>& trace_lines) {
  FaultCounts n;
  for (const std::string& line : trace_lines) {
    // "t=0000001234 STAGE cpu=..." — the stage is the second field.
    const size_t a = line.find(' ');
    if (a == std::string::npos) continue;
    const size_t b = line.find(' ', a + 1);
    const absl::string_view stage = absl::string_view(line).substr(a + 1, b - a - 1);
    n.faults += (stage == "IR_FAULT" || stage == "DMA_FAULT") ? 1 : 0;
    n.injected += stage == "FAULT_INJECT" ? 1 : 0;
  }
  return n;
}

// Progress bar with ETA on stderr (only when asked; callers decide from
// isatty and the environment). Redrawn at most ten times a second.
class ProgressBar {
 public:
  ProgressBar(size_t total, bool enabled) : total_(total), enabled_(enabled && total > 0) {}
  void Update(size_t done) {
    if (!enabled_) return;
    const double now = Now();
    if (done < total_ && now - last_draw_ < 0.1) return;
    last_draw_ = now;
    const double elapsed = now - start_;
    const double rate = elapsed > 0 ? done / elapsed : 0;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(kWidth * done / total_);
    std::string eta = "--:--";
    if (rate > 0) {
      const auto s = static_cast<uint64_t>(std::llround((total_ - done) / rate));
      eta = s >= 3600 ? absl::StrFormat("%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                      : absl::StrFormat("%d:%02d", s / 60, s % 60);
    }
    std::cerr << absl::StrFormat("\r\033[K[%s%s] %d/%d %3d%% %.1f runs/s ETA %s",
                                 std::string(filled, '#'), std::string(kWidth - filled, '.'),
                                 done, total_, static_cast<int>(100 * done / total_), rate, eta)
              << std::flush;
    drawn_ = true;
  }
  void Finish() {
    if (drawn_) std::cerr << "\r\033[K" << std::flush;
    drawn_ = false;
  }

 private:
  size_t total_;
  bool enabled_;
  bool drawn_ = false;
  double start_ = Now();
  double last_draw_ = 0;
};

}  // namespace

// ----------------------------------------------------------- campaigns --

SeedRunner ScenarioSeedRunner(const scenario::Scenario& s, const std::string& base_dir) {
  return [s, base_dir](uint64_t seed) {
    RunRecord r;
    r.set_seed(seed);
    RunOptions o;
    o.seed = seed;
    o.base_dir = base_dir;
    absl::StatusOr<ScenarioReport> report = RunScenario(s, o);
    if (!report.ok()) {
      r.set_outcome("error");
      r.set_detail(std::string(report.status().message()));
      return r;
    }
    SetRunFields(*report, &r);
    r.set_trace_hash(HashHex(TraceHash(report->trace_lines)));
    r.set_trace_events(report->trace_lines.size());
    const FaultCounts counts = CountFaults(report->trace_lines);
    r.set_faults(counts.faults);
    r.set_injected(counts.injected);
    r.set_end_time(report->run.time);
    r.set_detail(report->run.detail);
    r.set_accounting(report->accounting);
    return r;
  };
}

absl::StatusOr<std::vector<RunRecord>> RunCampaign(
    const CampaignConfig& config, const SeedRunner& runner,
    const std::function<void(const RunRecord&)>& on_record) {
  const uint64_t runs = ShardSize(config.seeds, config.shard);
  auto seed_at = [&](size_t i) { return ShardSeed(config.seeds, config.shard, i); };
  RunRecord common;
  common.set_scenario(config.scenario.name());
  common.set_scenario_file(config.scenario_file);
  common.set_scenario_hash(ScenarioHash(config.scenario));
  common.set_seeds(config.seeds.ToString());

  ProgressBar bar(runs, config.progress_bar);
  std::vector<RunRecord> records;
  absl::Status error;
  WorkerPoolOptions pool;
  pool.jobs = config.jobs;
  pool.timeout_seconds = config.worker_timeout_seconds;
  pool.progress = [&bar](size_t completed, size_t) { bar.Update(completed); };
  RunInWorkers(
      runs, pool,
      [&](size_t i) { return runner(seed_at(i)).SerializeAsString(); },
      [&](size_t i, WorkerResult w) {
        RunRecord r;
        if (const std::optional<WorkerFailure> failure =
                ParseWorkerPayload(w, config.worker_timeout_seconds, &r)) {
          r.set_outcome(failure->outcome);
          r.add_failed(failure->detail);
          r.set_detail(failure->detail);
        }
        r.set_seed(seed_at(i));
        if (r.outcome() == "error") {
          error = absl::InvalidArgumentError(r.detail());
          return false;
        }
        RunRecord full = common;
        full.MergeFrom(r);
        if (on_record) on_record(full);
        records.push_back(std::move(full));
        return true;
      });
  bar.Finish();
  if (!error.ok()) return error;
  return records;
}

void PrintCampaignSummary(const std::vector<RunRecord>& records, const std::string& program,
                          std::ostream& out, size_t max_listed) {
  struct Counts {
    uint64_t runs = 0, passed = 0;
  };
  static const char* const kOrder[] = {"exit", "hang", "time_limit", "shutdown", "crash",
                                       "timeout"};
  std::map<std::string, Counts> by_outcome;
  Counts total;
  std::set<std::string> hashes;
  std::vector<const RunRecord*> failing;
  for (const RunRecord& r : records) {
    Counts& c = by_outcome[r.outcome()];
    ++c.runs;
    ++total.runs;
    c.passed += r.passed() ? 1 : 0;
    total.passed += r.passed() ? 1 : 0;
    if (!r.trace_hash().empty()) hashes.insert(r.trace_hash());
    if (!r.passed()) failing.push_back(&r);
  }
  auto row = [&](const std::string& name, const Counts& c) {
    out << absl::StrFormat("%-12s %8d %8d %8d\n", name, c.runs, c.passed, c.runs - c.passed);
  };
  out << absl::StrFormat("%-12s %8s %8s %8s\n", "outcome", "runs", "passed", "failed");
  for (const char* name : kOrder) {
    if (auto it = by_outcome.find(name); it != by_outcome.end()) row(name, it->second);
  }
  for (const auto& [name, c] : by_outcome) {
    if (std::find_if(std::begin(kOrder), std::end(kOrder),
                     [&name = name](const char* k) { return name == k; }) == std::end(kOrder)) {
      row(name, c);
    }
  }
  row("total", total);
  out << "distinct trace hashes: " << hashes.size() << "\n";
  if (failing.empty()) {
    out << (total.runs == 0 ? "no runs\n" : absl::StrFormat("all %d runs passed\n", total.runs));
    return;
  }
  out << absl::StrFormat("%d failing seed%s; replay one with its trace:\n", failing.size(),
                         failing.size() == 1 ? "" : "s");
  for (size_t i = 0; i < failing.size() && i < max_listed; ++i) {
    const RunRecord& r = *failing[i];
    std::string stem = std::filesystem::path(r.scenario_file()).stem().string();
    if (stem.empty()) stem = "scenario";
    out << absl::StrFormat("  seed %d: %s: %s\n    %s run %s --seed=%d --trace=%s\n", r.seed(),
                           r.outcome(), r.failed_size() > 0 ? r.failed(0) : r.detail(),
                           ShellQuote(program), ShellQuote(r.scenario_file()), r.seed(),
                           ShellQuote(absl::StrCat(stem, ".seed-", r.seed(), ".trace.txt")));
  }
  if (failing.size() > max_listed) {
    out << absl::StrFormat("  ... and %d more (see the results file)\n",
                           failing.size() - max_listed);
  }
}

// -------------------------------------------------------- the commands --

namespace {

// Exit codes of the three commands (campaign.h).
constexpr int kOk = 0, kFailed = 1, kUsage = 2;

// --jobs, 0 = the CPUs this process may run on (its affinity mask, which
// container CPU sets restrict).
int Jobs(int flag) {
  if (flag > 0) return flag;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

bool ProgressBarWanted(const EnvLookup& env) {
  if (!isatty(STDERR_FILENO)) return false;
  // CI systems that give the job a terminal still set CI=true.
  if (std::optional<std::string> ci = env("CI"); ci.has_value() && !ci->empty()) return false;
  std::optional<std::string> term = env("TERM");
  return !(term.has_value() && *term == "dumb");
}

// Checks --jobs and --worker_timeout (campaign, test); prints what is wrong
// after `me` on stderr and returns false if either is bad.
bool PoolFlagsValid(const std::string& me, const CampaignCommand& c) {
  if (c.jobs < 0) {
    std::cerr << me << ": --jobs=" << c.jobs << ": must be >= 1 (or 0: one per CPU)\n";
    return false;
  }
  if (!(c.worker_timeout >= 0)) {
    std::cerr << me << ": --worker_timeout=" << c.worker_timeout
              << ": must be >= 0 seconds (0: none)\n";
    return false;
  }
  return true;
}

// <scenario file stem>.campaign[.shard-K-of-N].jsonl
std::string DefaultResultsPath(const std::string& scenario_file, const Shard& shard) {
  std::string path = std::filesystem::path(scenario_file).stem().string() + ".campaign";
  if (!shard.source.empty()) path += absl::StrFormat(".shard-%d-of-%d", shard.index, shard.count);
  return path + ".jsonl";
}

int ExitCode(const std::vector<RunRecord>& records) {
  const bool all_passed = std::all_of(records.begin(), records.end(),
                                      [](const RunRecord& r) { return r.passed(); });
  return all_passed ? kOk : kFailed;
}

}  // namespace

int CampaignMain(const CampaignCommand& c, const EnvLookup& env) {
  const std::string me = "irqlab campaign";
  if (c.args.size() != 1) {
    std::cerr << me << ": give exactly one scenario file (irqlab campaign FILE --seeds=A..B)\n";
    return kUsage;
  }
  if (c.seeds.empty()) {
    std::cerr << me << ": --seeds=A..B is required (e.g. --seeds=1..1000)\n";
    return kUsage;
  }
  absl::StatusOr<SeedRange> range = ParseSeedRange(c.seeds);
  if (!range.ok()) {
    std::cerr << me << ": --seeds=" << c.seeds << ": " << range.status().message() << "\n";
    return kUsage;
  }
  if (!PoolFlagsValid(me, c)) return kUsage;
  const std::string& file = c.args[0];
  absl::StatusOr<scenario::Scenario> s = LoadScenarioFile(file);
  if (!s.ok()) {
    std::cerr << me << ": " << s.status().message() << "\n";
    return kUsage;
  }
  absl::StatusOr<Shard> shard = ResolveShard(env, c.shards);
  if (!shard.ok()) {
    std::cerr << me << ": " << shard.status().message() << "\n";
    return kUsage;
  }
  // GoogleTest's sharding protocol: a runner that honours GTEST_* sharding
  // creates GTEST_SHARD_STATUS_FILE when it is set (Bazel fails sharded
  // tests that do not).
  if (const std::optional<std::string> status = env("GTEST_SHARD_STATUS_FILE");
      status && !status->empty()) {
    std::ofstream touch(*status, std::ios::binary | std::ios::app);
    if (!touch) {
      std::cerr << me << ": GTEST_SHARD_STATUS_FILE=" << *status << ": cannot create\n";
      return kUsage;
    }
  }
  const std::string results = c.results.empty() ? DefaultResultsPath(file, *shard) : c.results;
  std::ofstream out(results, std::ios::binary | std::ios::trunc);
  if (!out) {
    std::cerr << me << ": --results=" << results << ": cannot write\n";
    return kUsage;
  }

  CampaignConfig config;
  config.scenario_file = file;
  config.scenario = *s;
  config.seeds = *range;
  config.shard = *shard;
  config.jobs = Jobs(c.jobs);
  config.worker_timeout_seconds = c.worker_timeout;
  config.progress_bar = ProgressBarWanted(env);
  const uint64_t runs = ShardSize(config.seeds, config.shard);
  std::cout << absl::StrFormat("== campaign \"%s\" (%s), seeds %s, %s: %d runs, %d jobs\n",
                               s->name(), file, range->ToString(), shard->ToString(), runs,
                               config.jobs)
            << std::flush;

  const double start = Now();
  absl::StatusOr<std::vector<RunRecord>> records =
      RunCampaign(config, ScenarioSeedRunner(*s, ScenarioBaseDir(file)), [&](const RunRecord& r) {
        out << RecordToJsonLine(r) << '\n';
        out.flush();
      });
  const double seconds = Now() - start;
  out.close();
  if (!records.ok()) {
    std::remove(results.c_str());
    std::cerr << me << ": " << file << ": " << records.status().message() << "\n";
    return kUsage;
  }
  if (!out) {
    std::cerr << me << ": --results=" << results << ": write error\n";
    return kUsage;
  }
  PrintCampaignSummary(*records, c.program, std::cout);
  std::cout << absl::StrFormat("%d runs in %.2f s (%.1f runs/s), %d jobs; results: %s\n",
                               records->size(), seconds,
                               seconds > 0 ? records->size() / seconds : 0.0, config.jobs,
                               results);
  return ExitCode(*records);
}

int MergeMain(const CampaignCommand& c) {
  const std::string me = "irqlab merge";
  if (c.args.size() < 2) {
    std::cerr << me << ": give the output file and at least one results file "
                 "(irqlab merge OUT IN1 IN2 ...)\n";
    return kUsage;
  }
  const std::vector<std::string> inputs(c.args.begin() + 1, c.args.end());
  MergeGaps gaps;
  absl::StatusOr<std::vector<RunRecord>> merged = MergeResultsFiles(inputs, &gaps);
  if (!merged.ok()) {
    std::cerr << me << ": " << merged.status().message() << "\n";
    return kUsage;
  }
  if (absl::Status st = WriteResultsFile(c.args[0], *merged); !st.ok()) {
    std::cerr << me << ": " << st.message() << "\n";
    return kUsage;
  }
  std::set<std::string> ranges;
  for (const RunRecord& r : *merged) ranges.insert(r.seeds());
  std::cout << absl::StrFormat(
      "== merge of %d file%s into %s: %d runs of scenario \"%s\", seeds %s\n", inputs.size(),
      inputs.size() == 1 ? "" : "s", c.args[0], merged->size(),
      merged->empty() ? "" : merged->front().scenario(), absl::StrJoin(ranges, ", "));
  if (gaps.count > 0) {
    const std::string msg = absl::StrFormat(
        "%d seed%s of the campaign ha%s no record (a shard missing?): %s%s", gaps.count,
        gaps.count == 1 ? "" : "s", gaps.count == 1 ? "s" : "ve", absl::StrJoin(gaps.first, ", "),
        gaps.count > gaps.first.size() ? ", ..." : "");
    std::cerr << me << ": warning: " << msg << "\n";
    std::cout << "incomplete: " << msg << "\n";
  }
  PrintCampaignSummary(*merged, c.program, std::cout);
  return ExitCode(*merged);
}

int TestMain(const CampaignCommand& c) {
  const std::string me = "irqlab test";
  if (c.args.empty()) {
    std::cerr << me << ": give a directory of scenario files (irqlab test DIR)\n";
    return kUsage;
  }
  if (!PoolFlagsValid(me, c)) return kUsage;
  absl::StatusOr<std::vector<SuiteCase>> cases = FindSuiteCases(c.args);
  if (!cases.ok()) {
    std::cerr << me << ": " << cases.status().message() << "\n";
    return kUsage;
  }
  std::ofstream junit;
  if (!c.junit.empty()) {
    junit.open(c.junit, std::ios::binary | std::ios::trunc);
    if (!junit) {
      std::cerr << me << ": --junit=" << c.junit << ": cannot write\n";
      return kUsage;
    }
  }
  const int jobs = Jobs(c.jobs);
  size_t passed = 0;
  const double start = Now();
  WorkerPoolOptions pool;
  pool.jobs = jobs;
  pool.timeout_seconds = c.worker_timeout;
  const std::vector<SuiteResult> results =
      RunSuite(*cases, pool, RunSuiteCase, [&](const SuiteResult& s) {
        const TestCaseResult& r = s.result;
        if (r.passed()) {
          ++passed;
          std::cout << "PASS  " << s.test.path << "\n";
        } else {
          std::cout << "FAIL  " << s.test.path << "\n";
          if (r.failed_size() == 0) std::cout << "      " << r.outcome() << ": " << r.detail() << "\n";
          for (const std::string& f : r.failed()) std::cout << "      " << f << "\n";
        }
        std::cout.flush();
      });
  const double seconds = Now() - start;
  std::cout << absl::StrFormat("%d scenario%s: %d passed, %d failed (%.2f s, %d jobs)\n",
                               results.size(), results.size() == 1 ? "" : "s", passed,
                               results.size() - passed, seconds, jobs);
  if (junit.is_open()) {
    WriteJUnit(results, seconds, junit);
    junit.close();
    if (!junit) {
      std::cerr << me << ": --junit=" << c.junit << ": write error\n";
      return kUsage;
    }
  }
  return passed == results.size() ? kOk : kFailed;
}

}  // namespace irqlab
