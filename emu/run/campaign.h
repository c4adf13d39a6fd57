// Campaigns: `irqlab campaign FILE --seeds=A..B` runs a scenario once per
// seed of its shard (emu/run/shard.h), each run in a worker process
// (emu/run/worker_pool.h), and streams one record per seed, in seed order,
// to a results file (emu/run/results.h). Also the three command mains:
// `irqlab campaign`, `irqlab merge` (results of several shards into one
// file, emu/run/results.h) and `irqlab test` (regression suites,
// emu/run/suite.h); they check flags and call those pieces.
//
// Everything that decides a record's content runs on the virtual clock, so a
// record depends only on (scenario, seed) — never on the worker, the shard,
// the host or the number of jobs. A worker that crashes or hangs gives a
// record with outcome "crash" or "timeout" and the campaign goes on; a
// scenario that does not validate stops it (it would fail for every seed).
//
// Thread-safety: RunCampaign and the mains fork worker processes (see
// RunInWorkers): call them from a single-threaded process.
#ifndef IRQLAB_EMU_RUN_CAMPAIGN_H_
#define IRQLAB_EMU_RUN_CAMPAIGN_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "emu/run/campaign.pb.h"
#include "emu/run/scenario.pb.h"
#include "emu/run/shard.h"

namespace irqlab {

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
// `on_record` (may be null) with each record in seed order as soon as it is
// known. Returns
// InvalidArgument (and stops) when a run reports outcome "error" (the
// scenario is bad, whatever the seed).
absl::StatusOr<std::vector<campaign::RunRecord>> RunCampaign(
    const CampaignConfig& config, const SeedRunner& runner,
    const std::function<void(const campaign::RunRecord&)>& on_record);

// The summary table (runs / passed / failed per outcome and in total) and
// the failing seeds, each with the command that replays it (at most
// `max_listed`). `program` is how irqlab was invoked (argv[0]).
void PrintCampaignSummary(const std::vector<campaign::RunRecord>& records,
                          const std::string& program, std::ostream& out,
                          size_t max_listed = 20);

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
