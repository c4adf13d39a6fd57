// Scenario runner: parses a text-format Scenario (emu/run/scenario.proto),
// builds the machine it describes, schedules its host-side actions on the
// virtual clock, runs it and checks its expectations.
//
// Example (scenarios/inject.textproto):
//   name: "inject"
//   machine { cpus: 1 ram: "64M" }
//   kernel { builtin: "inject" cmdline: "count=2" }
//   actions { at: 200000 inject { cpu: 0 vector: 0x40 count: 2 } }
//   expect { exit_status: 1 serial_contains: "PASS: inject" }
#ifndef IRQLAB_EMU_RUN_SCENARIO_H_
#define IRQLAB_EMU_RUN_SCENARIO_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "emu/machine/machine.h"
#include "emu/run/scenario.pb.h"

namespace irqlab {

// Parses text-format protobuf. Syntax errors and unknown fields are
// InvalidArgument naming `source_name:line:column`.
absl::StatusOr<scenario::Scenario> ParseScenario(std::string_view text,
                                                 std::string_view source_name);
// Reads and parses a file; a missing file is NotFound naming the path.
absl::StatusOr<scenario::Scenario> LoadScenarioFile(const std::string& path);

// The directory a scenario file's relative kernel and module paths start at
// (RunOptions::base_dir): `path` up to its last '/', or "." if it has none.
std::string ScenarioBaseDir(const std::string& path);

// Parses "64M", "1G", "512K", "4096", "0x4000000" into bytes.
absl::StatusOr<uint64_t> ParseSize(std::string_view text);

struct RunOptions {
  std::optional<uint64_t> seed;     // overrides Scenario.seed
  std::string base_dir = ".";       // relative kernel/module paths start here
  std::string trace_path;           // text trace file ("" = none, "-" = stdout)
  std::string perfetto_path;        // Chrome/Perfetto JSON ("" = none)
  std::ostream* console = nullptr;  // guest serial echo (may be null)
};

struct ExpectationResult {
  std::string name;   // e.g. "serial contains \"PASS: hello\""
  bool passed = false;
  std::string detail; // what was seen when it failed
};

struct ScenarioReport {
  RunResult run;
  std::string serial;
  std::vector<std::string> trace_lines;  // the text trace, one per event
  std::vector<std::string> host_log;     // host kernel log (device assignment)
  // The scenario's expectations, then "interrupt accounting holds"
  // (emu/core/irq_ledger.h), which every run must pass.
  std::vector<ExpectationResult> expectations;
  std::string accounting;  // IrqLedger::Summary()
  bool passed() const;
  // "PASS: name" / "FAIL: name (detail)" lines and a summary.
  void Print(std::ostream& out) const;
};

// Validates `s` (errors name the field, e.g. "actions[2].inject.cpu: ..."),
// builds and runs the machine.
absl::StatusOr<ScenarioReport> RunScenario(const scenario::Scenario& s,
                                           const RunOptions& options);

// Resolves a scenario kernel/CLI kernel argument: a built-in name or a path.
absl::StatusOr<std::vector<uint8_t>> ReadKernelFile(const std::string& path);

}  // namespace irqlab

#endif  // IRQLAB_EMU_RUN_SCENARIO_H_
