#include "emu/run/scenario.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>

#include <sys/stat.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "emu/cpu/cpu_model.h"
#include "emu/run/fault_injection.h"
#include "emu/core/status_macros.h"
#include "firmware-stubs/builtin_kernels.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace irqlab {
namespace {

constexpr uint64_t kDefaultMaxTime = 1'000'000'000;  // one virtual second
constexpr uint64_t kDefaultInjectInterval = 1000;
// Largest files read whole: a scenario (text) and a kernel or initrd image.
constexpr uint64_t kMaxScenarioBytes = uint64_t{16} << 20;
constexpr uint64_t kMaxKernelBytes = uint64_t{1} << 30;

// Collects the first text-format error with its position (1-based).
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (error_.empty()) error_ = absl::StrFormat("%d:%d: %s", line + 1, column + 1, message);
  }
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

// Reads a whole file of at most `max_bytes` (a scenario, a kernel, an
// initrd). A directory, a file that cannot be opened or one that is larger
// (e.g. /dev/zero, which never ends) is an error naming `what` and the path.
absl::StatusOr<std::string> ReadFile(const std::string& path, std::string_view what,
                                     uint64_t max_bytes) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: \"%s\" is a directory%s", what, path,
        what == "scenario" ? " (irqlab test DIR runs every scenario under it)" : ""));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrFormat("%s: cannot open \"%s\": %s", what, path, std::strerror(errno)));
  }
  std::string bytes;
  char chunk[1 << 16];
  while (in.read(chunk, sizeof(chunk)) || in.gcount() > 0) {
    bytes.append(chunk, static_cast<size_t>(in.gcount()));
    if (bytes.size() > max_bytes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: \"%s\" is larger than %d MiB", what, path, max_bytes >> 20));
    }
  }
  if (in.bad()) {
    return absl::DataLossError(
        absl::StrFormat("%s: cannot read \"%s\": %s", what, path, std::strerror(errno)));
  }
  return bytes;
}

std::string ResolvePath(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return absl::StrCat(base_dir, "/", path);
}

std::string KnownKernels() {
  std::vector<std::string> names;
  for (const BuiltinKernel& k : BuiltinKernels()) names.emplace_back(k.name);
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

// A sink that turns events into text lines for the expectations.
class LineRecorder : public TraceSink {
 public:
  void Emit(const TraceEvent& e) override { lines_.push_back(FormatTraceEvent(e)); }
  std::vector<std::string>& lines() { return lines_; }

 private:
  std::vector<std::string> lines_;
};

absl::Status ValidateActions(const scenario::Scenario& s, int cpus) {
  for (int i = 0; i < s.actions_size(); ++i) {
    const scenario::Action& a = s.actions(i);
    const std::string field = absl::StrFormat("actions[%d]", i);
    switch (a.kind_case()) {
      case scenario::Action::kInject: {
        const auto& inj = a.inject();
        if (inj.cpu() >= static_cast<uint32_t>(cpus)) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "%s.inject.cpu: no cpu %d (the machine has %d)", field, inj.cpu(), cpus));
        }
        if (inj.vector() < 16 || inj.vector() > 255) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "%s.inject.vector: must be 16..255 (0-15 are reserved), got %d", field,
              inj.vector()));
        }
        if (inj.count() > 1'000'000) {
          return absl::InvalidArgumentError(
              absl::StrFormat("%s.inject.count: at most 1000000, got %d", field, inj.count()));
        }
        break;
      }
      case scenario::Action::kNmi:
        if (a.nmi().cpu() >= static_cast<uint32_t>(cpus)) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "%s.nmi.cpu: no cpu %d (the machine has %d)", field, a.nmi().cpu(), cpus));
        }
        break;
      case scenario::Action::kIrqLine:
        if (a.irq_line().line() >= static_cast<uint32_t>(PcTestDevIrq::kNumLines)) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "%s.irq_line.line: must be 0..%d, got %d", field, PcTestDevIrq::kNumLines - 1,
              a.irq_line().line()));
        }
        break;
      case scenario::Action::KIND_NOT_SET:
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": set one of inject, nmi, irq_line"));
    }
  }
  return absl::OkStatus();
}

// The `count` injections of one inject action, one pending event at a time:
// each injection schedules the next. (Scheduling them all up front cost an
// event per injection before the run started: 64 actions of the allowed
// 1,000,000 injections each took gigabytes — found by tests/fuzz/
// fuzz_scenario.) An injection whose time would pass 2^64 ends the series.
struct InjectSeries {
  Machine* m;
  int cpu;
  int vector;
  uint32_t count;
  uint64_t interval;
  std::string name;

  void Schedule(uint64_t at, uint32_t k) const {
    m->events().Schedule(at, EventPriority::kScenarioAction, name, [s = *this, at, k] {
      s.m->InjectInterrupt(s.cpu, s.vector);
      if (k + 1 < s.count && at <= ~uint64_t{0} - s.interval) s.Schedule(at + s.interval, k + 1);
    });
  }
};

void ScheduleActions(const scenario::Scenario& s, Machine* m) {
  for (int i = 0; i < s.actions_size(); ++i) {
    const scenario::Action& a = s.actions(i);
    const std::string name = absl::StrFormat("actions[%d]", i);
    switch (a.kind_case()) {
      case scenario::Action::kInject: {
        const auto& inj = a.inject();
        const InjectSeries series{m,
                                  static_cast<int>(inj.cpu()),
                                  static_cast<int>(inj.vector()),
                                  inj.count() == 0 ? 1 : inj.count(),
                                  inj.interval() == 0 ? kDefaultInjectInterval : inj.interval(),
                                  name};
        series.Schedule(a.at(), 0);
        break;
      }
      case scenario::Action::kNmi: {
        const int cpu = static_cast<int>(a.nmi().cpu());
        m->events().Schedule(a.at(), EventPriority::kScenarioAction, name,
                             [m, cpu] { m->InjectNmi(cpu); });
        break;
      }
      case scenario::Action::kIrqLine: {
        const int line = static_cast<int>(a.irq_line().line());
        const bool high = a.irq_line().high();
        m->events().Schedule(a.at(), EventPriority::kScenarioAction, name,
                             [m, line, high] { m->SetIrqLine(line, high); });
        break;
      }
      case scenario::Action::KIND_NOT_SET:
        break;
    }
  }
}

// Counts the `lines` that contain every string of `t`, against its count /
// min_count (default: at least one).
ExpectationResult CountLines(std::string_view what_lines, const scenario::TraceExpectation& t,
                             const std::vector<std::string>& lines) {
  uint64_t n = 0;
  for (const std::string& line : lines) {
    bool all = true;
    for (const std::string& c : t.contains()) all = all && absl::StrContains(line, c);
    n += all ? 1 : 0;
  }
  const std::string what = absl::StrCat("\"", absl::StrJoin(t.contains(), "\" & \""), "\"");
  if (t.has_count()) {
    return {absl::StrFormat("%s has %d lines with %s", what_lines, t.count(), what),
            n == t.count(), absl::StrFormat("found %d", n)};
  }
  const uint64_t min = t.has_min_count() ? t.min_count() : 1;
  return {absl::StrFormat("%s has >= %d lines with %s", what_lines, min, what), n >= min,
          absl::StrFormat("found %d", n)};
}

std::vector<ExpectationResult> CheckExpectations(const scenario::Expectations& e,
                                                 const ScenarioReport& r) {
  std::vector<ExpectationResult> out;
  std::string outcome = e.outcome();
  if (outcome.empty() && e.has_exit_status()) outcome = "exit";
  if (!outcome.empty()) {
    const std::string seen = OutcomeName(r.run.outcome);
    out.push_back({absl::StrCat("outcome is ", outcome), seen == outcome,
                   absl::StrCat("outcome was ", seen, ": ", r.run.detail)});
  }
  if (e.has_exit_status()) {
    const bool ok = r.run.outcome == RunResult::Outcome::kExit &&
                    r.run.exit_status == e.exit_status();
    out.push_back({absl::StrFormat("exit status %d", e.exit_status()), ok,
                   r.run.outcome == RunResult::Outcome::kExit
                       ? absl::StrFormat("exit status was %d", r.run.exit_status)
                       : absl::StrCat("no exit: ", r.run.detail)});
  }
  for (const std::string& want : e.serial_contains()) {
    out.push_back({absl::StrCat("serial contains \"", want, "\""),
                   absl::StrContains(r.serial, want), "not in the serial output"});
  }
  for (const std::string& bad : e.serial_not_contains()) {
    out.push_back({absl::StrCat("serial does not contain \"", bad, "\""),
                   !absl::StrContains(r.serial, bad), "found in the serial output"});
  }
  for (const scenario::TraceExpectation& t : e.trace()) {
    out.push_back(CountLines("trace", t, r.trace_lines));
  }
  for (const std::string& want : e.host_log_contains()) {
    bool found = false;
    for (const std::string& line : r.host_log) found = found || absl::StrContains(line, want);
    out.push_back({absl::StrCat("host log contains \"", want, "\""), found,
                   absl::StrFormat("not in the host log (%d lines)", r.host_log.size())});
  }
  for (const scenario::TraceExpectation& t : e.host_log()) {
    out.push_back(CountLines("host log", t, r.host_log));
  }
  return out;
}

}  // namespace

absl::StatusOr<scenario::Scenario> ParseScenario(std::string_view text,
                                                 std::string_view source_name) {
  scenario::Scenario s;
  google::protobuf::TextFormat::Parser parser;
  FirstErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &s)) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(source_name), ":", errors.error()));
  }
  // expect.outcome is a string in the schema (kept for compatibility);
  // an unknown one is an error now, not a failed expectation after the run.
  if (const std::string& o = s.expect().outcome(); !o.empty()) {
    bool known = false;
    for (RunResult::Outcome k : {RunResult::Outcome::kExit, RunResult::Outcome::kHang,
                                 RunResult::Outcome::kTimeLimit, RunResult::Outcome::kShutdown}) {
      known |= OutcomeName(k) == o;
    }
    if (!known) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: expect.outcome: unknown outcome \"%s\" (known: exit, hang, time_limit, "
          "shutdown)",
          std::string(source_name), o));
    }
  }
  return s;
}

absl::StatusOr<scenario::Scenario> LoadScenarioFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path, "scenario", kMaxScenarioBytes));
  return ParseScenario(text, path);
}

std::string ScenarioBaseDir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

absl::StatusOr<uint64_t> ParseSize(std::string_view text) {
  std::string t(absl::StripAsciiWhitespace(std::string(text)));
  uint64_t mult = 1;
  if (!t.empty()) {
    switch (absl::ascii_toupper(t.back())) {
      case 'K': mult = 1ull << 10; break;
      case 'M': mult = 1ull << 20; break;
      case 'G': mult = 1ull << 30; break;
      case 'T': mult = 1ull << 40; break;
      default: break;
    }
    if (mult != 1) t.pop_back();
  }
  uint64_t v = 0;
  bool ok = absl::StartsWithIgnoreCase(t, "0x") ? absl::SimpleHexAtoi(t.substr(2), &v)
                                                : absl::SimpleAtoi(t, &v);
  if (!ok || v == 0 || v > (~uint64_t{0}) / mult) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bad size \"%s\" (examples: 64M, 1G, 512K, 0x4000000)", text));
  }
  return v * mult;
}

absl::StatusOr<std::vector<uint8_t>> ReadKernelFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, "kernel", kMaxKernelBytes));
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

bool ScenarioReport::passed() const {
  for (const auto& e : expectations) {
    if (!e.passed) return false;
  }
  return true;
}

void ScenarioReport::Print(std::ostream& out) const {
  out << "run: " << OutcomeName(run.outcome) << " at t=" << run.time << " (" << run.detail
      << ")\n";
  out << "interrupts: " << accounting << "\n";
  int failed = 0;
  for (const auto& e : expectations) {
    if (e.passed) {
      out << "PASS: " << e.name << "\n";
    } else {
      ++failed;
      out << "FAIL: " << e.name << " (" << e.detail << ")\n";
    }
  }
  out << expectations.size() - failed << " passed, " << failed << " failed\n";
}

namespace {
// machine.host -> MachineConfig::host. Errors name the field.
absl::Status HostConfigFromSpec(const scenario::HostSpec& h, MachineConfig* mc) {
  MachineConfig::Host host;
  if (h.has_cpus()) {
    if (h.cpus() < 1 || h.cpus() > 64) {
      return absl::InvalidArgumentError(
          absl::StrFormat("machine.host.cpus: must be between 1 and 64, got %d", h.cpus()));
    }
    host.config.cpus = static_cast<int>(h.cpus());
  }
  host.config.compat_format = h.compat_format();
  if (h.has_first_irte()) {
    if (h.first_irte() >= HostPlatform::kIrtEntries) {
      return absl::InvalidArgumentError(
          absl::StrFormat("machine.host.first_irte: must be below %d, got %d",
                          HostPlatform::kIrtEntries, h.first_irte()));
    }
    host.config.first_irte = h.first_irte();
  }
  if (h.msi_doorbell_iova() != 0) {
    if (h.msi_doorbell_iova() % VfioContainer::kMsiWindowSize != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "machine.host.msi_doorbell_iova: 0x%x is not 1 MiB aligned", h.msi_doorbell_iova()));
    }
    host.msi_doorbell_iova = h.msi_doorbell_iova();
  }
  host.doorbell_auto_map = !h.has_doorbell_auto_map() || h.doorbell_auto_map();
  std::set<int> slots, buses;
  for (int i = 0; i < h.assigned_size(); ++i) {
    const scenario::AssignedDeviceSpec& a = h.assigned(i);
    const std::string field = absl::StrFormat("machine.host.assigned[%d]", i);
    MachineConfig::Assigned out;
    out.device = a.device();
    if (out.device.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".device: required"));
    }
    if (a.has_host_bus()) {
      if (a.host_bus() < 1 || a.host_bus() > 255) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s.host_bus: must be 1..255, got %d", field, a.host_bus()));
      }
      out.host_bus = static_cast<uint8_t>(a.host_bus());
    }
    if (a.has_guest_slot()) {
      if (a.guest_slot() < 1 || a.guest_slot() > 31) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s.guest_slot: must be 1..31, got %d", field, a.guest_slot()));
      }
      out.guest_slot = static_cast<int>(a.guest_slot());
    }
    if (!slots.insert(out.guest_slot).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s.guest_slot: slot %d is used twice", field, out.guest_slot));
    }
    if (!buses.insert(out.host_bus).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s.host_bus: bus %d is used twice", field, out.host_bus));
    }
    switch (a.fix()) {
      case scenario::NOVIRT_QUIRK: out.fix = AssignmentOptions::Fix::kNovirtQuirk; break;
      case scenario::IMS: out.fix = AssignmentOptions::Fix::kIms; break;
      case scenario::GUEST_OWNED: out.fix = AssignmentOptions::Fix::kGuestOwned; break;
      default: out.fix = AssignmentOptions::Fix::kNone; break;
    }
    out.msi_novirt = a.msi_novirt();
    switch (a.msix_policy()) {
      case scenario::DATA_HINT: out.msix_policy = AssignmentOptions::MsixPolicy::kDataHint; break;
      case scenario::SINGLE_VECTOR:
        out.msix_policy = AssignmentOptions::MsixPolicy::kSingleVector;
        break;
      case scenario::ALL_VECTORS: out.msix_policy = AssignmentOptions::MsixPolicy::kAllVectors; break;
      default: out.msix_policy = AssignmentOptions::MsixPolicy::kLazy; break;
    }
    out.options.insert(a.options().begin(), a.options().end());
    host.assigned.push_back(std::move(out));
  }
  mc->host = std::move(host);
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<ScenarioReport> RunScenario(const scenario::Scenario& s,
                                           const RunOptions& options) {
  // --- Validate and build the machine configuration. ---
  MachineConfig mc;
  if (s.machine().has_cpus()) {
    if (s.machine().cpus() < 1 || s.machine().cpus() > MachineConfig::kMaxCpus) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "machine.cpus: must be between 1 and %d, got %d", MachineConfig::kMaxCpus,
          s.machine().cpus()));
    }
    mc.cpus = static_cast<int>(s.machine().cpus());
  }
  if (s.machine().has_x2apic()) mc.x2apic = s.machine().x2apic();
  if (s.machine().has_tsc_deadline()) mc.tsc_deadline = s.machine().tsc_deadline();
  if (!s.machine().cpu_model().empty()) {
    mc.cpu_model = FindCpuModel(s.machine().cpu_model());
    if (mc.cpu_model == nullptr) {
      absl::StatusOr<CpuSpec> spec = ParseCpuSpec(s.machine().cpu_model());
      return absl::InvalidArgumentError(absl::StrCat(
          "machine.cpu_model: ", spec.ok() ? "give a model name only" : spec.status().message()));
    }
  }
  if (s.machine().slice_ticks() != 0) mc.slice_ticks = s.machine().slice_ticks();
  if (!s.machine().ram().empty()) {
    absl::StatusOr<uint64_t> ram = ParseSize(s.machine().ram());
    if (!ram.ok()) return absl::InvalidArgumentError(absl::StrCat("machine.ram: ", ram.status().message()));
    mc.ram_bytes = *ram;
  }
  mc.ioapic_route_update = s.machine().ioapic_route_update() == scenario::STALE_BEFORE_SERVICE
                               ? RouteUpdateOrder::kStaleBeforeService
                               : RouteUpdateOrder::kUpdateBeforeService;
  mc.extended_destination_id = s.machine().extended_destination_id();
  mc.ignore_msrs = s.machine().ignore_msrs();
  mc.compat = s.machine().compat() == scenario::QEMU ? CompatProfile::kQemu : CompatProfile::kSpec;
  if (s.machine().ioapic_version() != 0) {
    if (s.machine().ioapic_version() != 0x20 && s.machine().ioapic_version() != 0x11) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "machine.ioapic_version: must be 0x20 or 0x11, got 0x%x", s.machine().ioapic_version()));
    }
    mc.ioapic_version = static_cast<uint8_t>(s.machine().ioapic_version());
  }
  for (int i = 0; i < s.machine().devices_size(); ++i) {
    const scenario::DeviceSpec& d = s.machine().devices(i);
    MachineConfig::Device device;
    device.name = d.name();
    device.options.insert(d.options().begin(), d.options().end());
    mc.devices.push_back(std::move(device));
  }
  if (s.machine().has_host()) RETURN_IF_ERROR(HostConfigFromSpec(s.machine().host(), &mc));
  mc.console = options.console;
  RETURN_IF_ERROR(ValidateActions(s, mc.cpus));

  std::vector<uint8_t> kernel_bytes;
  absl::Span<const uint8_t> kernel;
  switch (s.kernel().source_case()) {
    case scenario::KernelSpec::kBuiltin: {
      const BuiltinKernel* k = FindBuiltinKernel(s.kernel().builtin());
      if (k == nullptr) {
        return absl::NotFoundError(absl::StrFormat(
            "kernel.builtin: no built-in kernel \"%s\" (known: %s)", s.kernel().builtin(),
            KnownKernels()));
      }
      kernel = k->elf;
      break;
    }
    case scenario::KernelSpec::kPath: {
      ASSIGN_OR_RETURN(kernel_bytes,
                       ReadKernelFile(ResolvePath(options.base_dir, s.kernel().path())));
      kernel = kernel_bytes;
      break;
    }
    case scenario::KernelSpec::SOURCE_NOT_SET:
      return absl::InvalidArgumentError("kernel: set kernel.builtin or kernel.path");
  }
  std::vector<MultibootModule> modules;
  for (int i = 0; i < s.kernel().modules_size(); ++i) {
    const auto& spec = s.kernel().modules(i);
    absl::StatusOr<std::vector<uint8_t>> bytes =
        ReadKernelFile(ResolvePath(options.base_dir, spec.path()));
    if (!bytes.ok()) {
      return absl::NotFoundError(absl::StrFormat("kernel.modules[%d].path: %s", i,
                                                 bytes.status().message()));
    }
    modules.push_back(MultibootModule{spec.cmdline(), std::move(*bytes)});
  }

  // --- Trace sinks. ---
  Tracer tracer;
  LineRecorder recorder;
  tracer.AddSink(&recorder);
  std::unique_ptr<std::ofstream> trace_file, perfetto_file;
  std::unique_ptr<TextTraceWriter> text_writer;
  std::unique_ptr<PerfettoTraceWriter> perfetto_writer;
  if (!options.trace_path.empty() && options.trace_path != "-") {
    trace_file = std::make_unique<std::ofstream>(options.trace_path);
    if (!*trace_file) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--trace: cannot write \"%s\"", options.trace_path));
    }
  }
  if (!options.trace_path.empty()) {
    text_writer = std::make_unique<TextTraceWriter>(
        trace_file ? static_cast<std::ostream*>(trace_file.get()) : &std::cout);
    tracer.AddSink(text_writer.get());
  }
  if (!options.perfetto_path.empty()) {
    perfetto_file = std::make_unique<std::ofstream>(options.perfetto_path);
    if (!*perfetto_file) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--perfetto: cannot write \"%s\"", options.perfetto_path));
    }
    perfetto_writer = std::make_unique<PerfettoTraceWriter>(perfetto_file.get());
    tracer.AddSink(perfetto_writer.get());
  }

  // --- Build, load, schedule, run. ---
  ASSIGN_OR_RETURN(std::unique_ptr<Machine> machine, Machine::Create(mc, &tracer));
  {
    absl::Status st = machine->LoadKernel(kernel, s.kernel().cmdline(), modules);
    if (!st.ok()) return absl::Status(st.code(), absl::StrCat("kernel: ", st.message()));
  }
  const uint64_t seed = options.seed.value_or(s.seed());
  tracer.Emit(0, trace::MACHINE, -1,
              absl::StrFormat("scenario \"%s\" seed %d", s.name(), seed));
  ScheduleActions(s, machine.get());
  std::unique_ptr<FaultInjector> faults;
  if (s.faults_size() > 0) {
    ASSIGN_OR_RETURN(faults, FaultInjector::Create(s.faults(), seed, machine.get()));
    if (faults->has_trace_triggers()) tracer.AddSink(faults.get());
  }
  const uint64_t max_time = s.limits().max_time() != 0 ? s.limits().max_time() : kDefaultMaxTime;

  ScenarioReport report;
  report.run = machine->Run(max_time);
  tracer.Finish();
  report.serial = machine->serial_output();
  if (machine->host() != nullptr) report.host_log = machine->host()->log();
  report.trace_lines = std::move(recorder.lines());
  report.expectations = CheckExpectations(s.expect(), report);
  if (report.expectations.empty()) {
    // A scenario without expectations still must not end badly.
    report.expectations.push_back(
        {"run ends with a guest exit", report.run.outcome == RunResult::Outcome::kExit,
         absl::StrCat("outcome was ", OutcomeName(report.run.outcome), ": ",
                      report.run.detail)});
  }
  const IrqLedger& ledger = machine->ledger();
  report.accounting = ledger.Summary();
  report.expectations.push_back(
      {"interrupt accounting holds", ledger.holds(),
       absl::StrCat(ledger.violation_count(), " violated: ",
                    absl::StrJoin(ledger.violations(), "; "))});
  return report;
}

}  // namespace irqlab
