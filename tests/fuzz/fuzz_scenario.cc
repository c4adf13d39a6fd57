// fuzz_scenario: the scenario text (emu/run/scenario.h ParseScenario) and its
// validation (RunScenario's config checks), with any bytes as input. A
// scenario that parses is run, but cheaply:
//   * limits.max_time is capped at kMaxTime ticks (the guest barely boots);
//   * more than kMaxCpus vCPUs are reduced to kMaxCpus (each is a Unicorn
//     engine) after checking the count is one RunScenario accepts, so the
//     range check itself is still fuzzed;
//   * kernel/module paths resolve under a directory that does not exist
//     (absolute paths are made relative), so no file of this machine is
//     read: the "file not found" paths are fuzzed, the host filesystem not.
// ParseSize() also gets the raw input.
//
// Unicorn (the vCPUs) leaks a few bytes per engine; emu/cpu/vcpu.cc's LSan
// suppression (linked into this program) covers it, leak detection stays on.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "emu/run/scenario.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr uint64_t kMaxTime = 20000;
constexpr uint32_t kMaxCpus = 2;

void Relativize(std::string* path) {
  while (!path->empty() && (*path)[0] == '/') path->erase(0, 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace irqlab;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)ParseSize(text.substr(0, 64));

  absl::StatusOr<scenario::Scenario> parsed = ParseScenario(text, "fuzz.textproto");
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  scenario::Scenario s = std::move(*parsed);
  if (s.limits().max_time() == 0 || s.limits().max_time() > kMaxTime) {
    s.mutable_limits()->set_max_time(kMaxTime);
  }
  if (s.machine().has_cpus() && s.machine().cpus() > kMaxCpus &&
      s.machine().cpus() <= static_cast<uint32_t>(MachineConfig::kMaxCpus)) {
    s.mutable_machine()->set_cpus(kMaxCpus);
  }
  if (s.kernel().has_path()) Relativize(s.mutable_kernel()->mutable_path());
  for (auto& m : *s.mutable_kernel()->mutable_modules()) Relativize(m.mutable_path());

  RunOptions options;
  options.base_dir = "/nonexistent-irqlab-fuzz";
  absl::StatusOr<ScenarioReport> report = RunScenario(s, options);
  if (report.ok()) {
    FUZZ_CHECK(report->run.time <= kMaxTime + 1'000'000);
  } else {
    // Errors are one line naming the field.
    FUZZ_CHECK(!report.status().message().empty());
    FUZZ_CHECK(report.status().message().find('\n') == std::string_view::npos);
  }
  return 0;
}
