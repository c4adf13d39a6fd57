// Campaign results: the records of campaign.proto (campaign::RunRecord for
// `irqlab campaign`, campaign::TestCaseResult for `irqlab test`) as filled
// from a run or from a dead worker, and results files — JSON Lines of
// RunRecord, sorted by seed — written, read back and merged across shards
// (`irqlab merge`).
//
// A results-file line is compact proto3 JSON with the proto field names and
// every field printed (emu/run/campaign.proto has an example). A record
// holds nothing that depends on the host, the wall clock or the shard, so
// merging the shards of a campaign gives, byte for byte, the file one
// process writes.
//
// Errors are absl::Status values naming the file (and line): NotFound, a
// results file that cannot be opened for reading; InvalidArgument, a line
// that is not a record, records that cannot be merged, a file that cannot be
// created or renamed into place; DataLoss, a read error or a failed write of
// the temporary file. Thread-safety: the functions share no state; two writers of the same
// results file race (each writes "<path>.tmp", then renames it).
#ifndef IRQLAB_EMU_RUN_RESULTS_H_
#define IRQLAB_EMU_RUN_RESULTS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "emu/run/campaign.pb.h"
#include "emu/run/scenario.h"
#include "emu/run/worker_pool.h"
#include "google/protobuf/message_lite.h"

namespace irqlab {

// ----------------------------------------------------------- records --

// Sets the fields RunRecord and TestCaseResult share from a finished run:
// outcome, exit status (outcome "exit" only), passed and the failing
// expectations ("name (detail)").
template <typename Result>
void SetRunFields(const ScenarioReport& report, Result* r) {
  r->set_outcome(OutcomeName(report.run.outcome));
  if (report.run.outcome == RunResult::Outcome::kExit) r->set_exit_status(report.run.exit_status);
  r->set_passed(report.passed());
  for (const ExpectationResult& e : report.expectations) {
    if (!e.passed) r->add_failed(absl::StrCat(e.name, " (", e.detail, ")"));
  }
}

// What a record says of a work item whose worker gave no valid result.
struct WorkerFailure {
  std::string outcome;  // "timeout" (killed after the timeout) or "crash"
  std::string detail;   // "worker " and what happened, e.g. "worker killed by SIGSEGV (...)"
};
// Parses the serialized message (RunRecord, TestCaseResult) a worker sent
// into `*message` and returns nullopt. For a worker that gave no valid
// result (`w` is not ok(), or its payload does not parse), clears
// `*message` and returns what to record instead; `timeout_seconds` is the
// pool's, for the message.
std::optional<WorkerFailure> ParseWorkerPayload(const WorkerResult& w, double timeout_seconds,
                                                google::protobuf::MessageLite* message);

// ------------------------------------------------------- results files --

// One results-file line (no newline): compact proto3 JSON, proto field
// names, every field printed.
std::string RecordToJsonLine(const campaign::RunRecord& r);
// Reads a results file (blank lines are skipped); errors name path:line.
absl::StatusOr<std::vector<campaign::RunRecord>> ReadResultsFile(const std::string& path);

// Writes records (JSON Lines) to `path` atomically (temporary file
// "<path>.tmp" + rename); on error `path` is untouched and the temporary
// file removed.
absl::Status WriteResultsFile(const std::string& path,
                              const std::vector<campaign::RunRecord>& records);

// --------------------------------------------------------------- merge --

// Seeds of the merged records' ranges (RunRecord.seeds) that no record has.
struct MergeGaps {
  uint64_t count = 0;
  std::vector<uint64_t> first;  // the first (at most 10) of them
};

// Merges results files: sorted by seed; identical duplicates are kept once;
// a seed with different records in two files, or records of different
// scenarios (name or scenario_hash), is an InvalidArgument naming the files.
// `gaps` (may be null) receives the seeds missing from the merged ranges.
absl::StatusOr<std::vector<campaign::RunRecord>> MergeResultsFiles(
    const std::vector<std::string>& paths, MergeGaps* gaps = nullptr);

}  // namespace irqlab

#endif  // IRQLAB_EMU_RUN_RESULTS_H_
