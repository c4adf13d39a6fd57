// Regression suites: `irqlab test DIR...` runs every scenario file found
// under its arguments, each in a worker process (emu/run/worker_pool.h), and
// reports the results as PASS/FAIL lines and, with --junit, as JUnit XML.
//
// A scenario passes when it loads, validates, runs and meets every
// expectation (campaign::TestCaseResult.passed). A scenario that does not
// load or validate has outcome "error"; a worker that dies has outcome
// "crash" (detail: the signal or exit, worker_stderr: its last stderr, e.g.
// a sanitizer report) and one that exceeds the worker timeout "timeout".
// None of these stops the suite.
//
// Thread-safety: RunSuite forks (see RunInWorkers); the other functions
// share no state.
#ifndef IRQLAB_EMU_RUN_SUITE_H_
#define IRQLAB_EMU_RUN_SUITE_H_

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "emu/run/campaign.pb.h"
#include "emu/run/worker_pool.h"

namespace irqlab {

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
// is found or a directory cannot be read.
absl::StatusOr<std::vector<SuiteCase>> FindSuiteCases(const std::vector<std::string>& paths);

// Loads and runs one scenario file (in a worker process); relative paths in
// it start at the file's directory. Never fails: a scenario that does not
// load or validate gives outcome "error" with the message in detail.
campaign::TestCaseResult RunSuiteCase(const std::string& path);

struct SuiteResult {
  SuiteCase test;
  campaign::TestCaseResult result;
  double seconds = 0;  // the worker's wall clock
};

// Runs each case with `runner` (RunSuiteCase, or a stand-in in tests) in a
// worker process; a worker that crashes or times out gives outcome "crash"
// (detail: the signal) or "timeout". Results in case order; `on_result`
// (may be null) is called with each as soon as it and all before it are
// known.
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
// of the serial output, <system-err> a dead worker's stderr). Write errors
// are left in the state of `out`.
void WriteJUnit(const std::vector<SuiteResult>& results, double total_seconds,
                std::ostream& out);

}  // namespace irqlab

#endif  // IRQLAB_EMU_RUN_SUITE_H_
