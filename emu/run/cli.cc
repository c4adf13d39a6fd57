#include "emu/run/cli.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "emu/run/bench_runner.h"
#include "emu/run/campaign.h"
#include "emu/cpu/cpu_model.h"
#include "emu/machine/machine.h"
#include "emu/run/scenario.h"
#include "emu/run/shard.h"
#include "firmware-stubs/builtin_kernels.h"

ABSL_FLAG(std::string, trace, "",
          "write the text trace (one line per event) to this file; '-' for stdout");
ABSL_FLAG(std::string, perfetto, "",
          "write a Chrome/Perfetto trace-event JSON file (open in ui.perfetto.dev)");
ABSL_FLAG(int64_t, seed, -1, "override the scenario's seed (run)");
ABSL_FLAG(int32_t, cpus, 1, "number of vCPUs (boot)");
ABSL_FLAG(std::string, ram, "64M", "guest RAM size, e.g. 64M, 1G (boot)");
ABSL_FLAG(std::string, append, "", "kernel command line (boot)");
ABSL_FLAG(std::string, initrd, "", "file loaded as multiboot module 0 (boot)");
ABSL_FLAG(int64_t, max_time, 0,
          "virtual time limit in ticks (1 tick = 1 guest instruction = 1 virtual ns); "
          "0 = none, as QEMU (boot)");
ABSL_FLAG(std::string, compat, "spec",
          "spec (default) or qemu: QEMU's departures from the specs that guests written "
          "for QEMU rely on (boot)");
ABSL_FLAG(double, timeout, 0,
          "wall-clock limit in seconds, exit 124 when reached; 0 = none (boot)");
ABSL_FLAG(std::string, filter, "", "benchmark name regex (bench)");
ABSL_FLAG(std::string, json, "", "merged Google Benchmark JSON output file (bench)");
ABSL_FLAG(double, min_time, 0, "minimum seconds per benchmark, 0 = default (bench)");
ABSL_FLAG(bool, quiet, false, "do not echo the guest's serial output");
ABSL_FLAG(std::string, cpu, "",
          "CPU model and features, QEMU style: MODEL[,+feat,-feat], e.g. "
          "qemu64,-x2apic; models and features: irqlab cpus (boot)");
ABSL_FLAG(std::string, seeds, "", "seed range A..B (or one seed N) to run (campaign)");
ABSL_FLAG(int32_t, jobs, 0, "worker processes at a time; 0 = one per CPU (campaign, test)");
ABSL_FLAG(std::string, results, "",
          "results file, JSON Lines, one record per run; default "
          "<scenario>.campaign[.shard-K-of-N].jsonl (campaign)");
ABSL_FLAG(int64_t, shards, -1,
          "shard count for JOB_COMPLETION_INDEX (Kubernetes indexed Job); -1 = not given "
          "(campaign)");
ABSL_FLAG(double, worker_timeout, 60,
          "wall-clock seconds a worker may take before it is killed and recorded as a "
          "timeout; 0 = no limit (campaign, test)");
ABSL_FLAG(std::string, junit, "", "write JUnit XML of the suite to this file (test)");

namespace irqlab {
namespace {

constexpr char kUsage[] = R"(an x86 full-system emulator of the interrupt path.

Usage:
  irqlab                         run the built-in default scenario (ath11k under vfio, fault 0x25)
  irqlab run FILE.textproto...   run scenario files, check their expectations
      [--trace=out.txt] [--perfetto=out.json] [--seed=N] [--quiet]
  irqlab boot KERNEL             boot a multiboot kernel (file or built-in name),
      [--cpus=N] [--ram=SIZE]    QEMU -kernel style, on the PC platform; exits
      [--append=CMDLINE]         with the guest's debug-exit status
      [--initrd=FILE] [--device=NAME[,key=value...]]...
      [--cpu=MODEL[,+feat,-feat]]  CPU identity (default skylake: GenuineIntel)
      [--compat=qemu]            QEMU's departures from the specs (default: spec,
                                 with a COMPAT trace line where a guest relies on one)
      [--trace=...] [--max_time=T] [--timeout=S]   no limit by default;
                                 devices: edu, irqlab-testdev, wcn6855,
                                 irqlab-nic, intel-iommu[,intremap=on|off][,eim=on|off]
                                 [,posted=on|off][,cfi=on|off]
                                 [,devtlb=off|on|noanswer|badcompletion]
      intel-iommu options: intremap = ECAP.IR + DMAR INTR_REMAP (default on);
        eim = ECAP.EIM, x2APIC ids (on); posted = CAP.PI (off); cfi = the
        guest's VT-d library sets GCMD.CFI after IRE, so compatibility-format
        MSIs/RTEs pass instead of faulting 0x25 (only while IRTA.EIME=0;
        passed as irqlab.vtd_cfi=1|0 on the kernel command line to guests
        using vtd_ir_enable(), e.g. vtd_qi; absent or off: CFI stays clear,
        as Linux); devtlb = ECAP.DT and how endpoints
        answer device-TLB invalidations: off (DT=0, accepted), on (completed),
        noanswer (time-out: FSTS.ITE), badcompletion (FSTS.ICE)
  irqlab kernels                 list the built-in guest kernels
  irqlab cpus                    list the CPU models (every CPUID leaf: emu/cpu/cpu_model.cc)
  irqlab test DIR...             run every *.textproto under DIR (recursively,
      [--junit=out.xml]          sorted) as a regression suite: PASS/FAIL per
      [--jobs=N]                 scenario with the failing expectations, a
      [--worker_timeout=S]       summary, JUnit XML; one worker process each
  irqlab campaign FILE --seeds=A..B   run the scenario once per seed in worker
      [--jobs=N] [--results=F.jsonl]  processes (a crash, hang or timeout is
      [--worker_timeout=S]       recorded, the campaign goes on); one JSON record
      [--shards=N]               per run sorted by seed (seed, outcome, passed,
                                 failed expectations, trace hash, ...), a summary
                                 and the command replaying each failing seed
  irqlab merge OUT IN...         merge campaign results files (shards) into OUT,
                                 sorted by seed; print the summary
  irqlab bench                   run the benchmark programs (bench/*_bench next
      [--filter=REGEX]           to this binary) and show their tables; --json
      [--min_time=S]             writes all results as one Google Benchmark JSON
      [--json=out.json]          file (compare across commits with compare.py)

Sharding (campaign): shard k of n runs the seeds with (seed - A) % n == k. The
first of these sets k and n:
  GTEST_SHARD_INDEX, GTEST_TOTAL_SHARDS            (CTest, Bazel, gtest-parallel)
  JOB_COMPLETION_INDEX with --shards=N or IRQLAB_TOTAL_SHARDS=N  (Kubernetes)
  SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT      (Slurm; minus
      SLURM_ARRAY_TASK_MIN, divided by SLURM_ARRAY_TASK_STEP when set)
An index >= the count, half a pair or a count contradicting --shards is an error.

Each flag belongs to the commands shown with it; a flag given to another
command is an error (exit 2). --helpfull lists every flag (Abseil's format).

Exit codes: run: 0 all expectations passed, 1 one failed; test, campaign,
merge: 0 every scenario/run passed, 1 one failed (crashed, timed out); boot: the
guest's debug-exit status (v << 1) | 1; 2 bad input (flag, scenario, file);
3 emulator or host failure (e.g. the vCPU engine cannot allocate memory);
124 virtual time limit; 125 hang (no vCPU can run, nothing pending); 126 vCPU
shutdown (triple fault).)";

// Which commands take each flag ("" = no command: the default scenario).
// IrqlabMain rejects a flag given to any other command.
struct FlagScope {
  std::string_view flag;
  std::vector<std::string_view> commands;
};
const std::vector<FlagScope>& FlagScopes() {
  static const auto* const kScopes = new std::vector<FlagScope>{
      {"trace", {"", "run", "boot"}},
      {"perfetto", {"", "run", "boot"}},
      {"quiet", {"", "run", "boot"}},
      {"seed", {"", "run"}},
      {"cpus", {"boot"}},
      {"ram", {"boot"}},
      {"append", {"boot"}},
      {"initrd", {"boot"}},
      {"max_time", {"boot"}},
      {"timeout", {"boot"}},
      {"compat", {"boot"}},
      {"cpu", {"boot"}},
      {"device", {"boot"}},
      {"filter", {"bench"}},
      {"json", {"bench"}},
      {"min_time", {"bench"}},
      {"seeds", {"campaign"}},
      {"results", {"campaign"}},
      {"shards", {"campaign"}},
      {"jobs", {"campaign", "test"}},
      {"worker_timeout", {"campaign", "test"}},
      {"junit", {"test"}},
  };
  return *kScopes;
}

// "" if `command` takes `flag`, else the one-line error.
std::string CheckFlagScope(std::string_view command, std::string_view flag) {
  for (const FlagScope& scope : FlagScopes()) {
    if (scope.flag != flag) continue;
    if (std::find(scope.commands.begin(), scope.commands.end(), command) !=
        scope.commands.end()) {
      return "";
    }
    std::vector<std::string> takers;
    for (std::string_view c : scope.commands) {
      takers.push_back(c.empty() ? "irqlab (no command)" : "irqlab " + std::string(c));
    }
    return absl::StrFormat("%s: --%s is not a flag of this command (it is taken by %s)",
                           command.empty() ? "irqlab" : "irqlab " + std::string(command),
                           std::string(flag), absl::StrJoin(takers, ", "));
  }
  return "";  // Abseil's own flags (--helpfull, --flagfile, ...)
}

// Maps an error of a command to its exit code: the user's input (a flag, a
// scenario field, a file) is 2; the emulator or the host failing (the vCPU
// engine, memory) is 3.
int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kAborted:
      return kExitHostError;
    default:
      return kExitUsage;
  }
}

// Prints a command's error as one line and returns its exit code.
int ReportError(const std::string& prefix, const absl::Status& status) {
  const int rc = ExitCodeFor(status);
  std::cerr << prefix << (rc == kExitHostError ? "emulator failure: " : "")
            << status.message() << "\n";
  return rc;
}

// Set while a command runs. Unicorn (QEMU's TCG underneath) calls exit(1)
// when it cannot set up an engine (e.g. "Could not allocate dynamic
// translator buffer"); in `boot`, 1 would read as "the guest passed". The
// handler turns any exit() during a command into exit status 3 with a line
// saying so (irqlab's own code returns from IrqlabMain instead of exiting).
std::atomic<bool> g_command_running{false};

void OnExitDuringCommand() {
  if (!g_command_running.load()) return;
  std::fflush(stdout);
  std::fprintf(stderr,
               "irqlab: emulator failure: a library ended the process during the run "
               "(its message is above); exit status %d\n",
               kExitHostError);
  std::fflush(stderr);
  std::_Exit(kExitHostError);
}

int ReportRun(const RunResult& r) {
  switch (r.outcome) {
    case RunResult::Outcome::kExit: return r.exit_status;
    case RunResult::Outcome::kTimeLimit:
      std::cerr << "irqlab: " << r.detail << "\n";
      return kExitTimeLimit;
    case RunResult::Outcome::kHang:
      std::cerr << "irqlab: guest hang: " << r.detail << "\n";
      return kExitHang;
    case RunResult::Outcome::kShutdown:
      std::cerr << "irqlab: " << r.detail << "\n";
      return kExitShutdown;
  }
  return kExitShutdown;
}

RunOptions CommonOptions() {
  RunOptions o;
  o.trace_path = absl::GetFlag(FLAGS_trace);
  o.perfetto_path = absl::GetFlag(FLAGS_perfetto);
  if (absl::GetFlag(FLAGS_seed) >= 0) o.seed = absl::GetFlag(FLAGS_seed);
  if (!absl::GetFlag(FLAGS_quiet)) o.console = &std::cout;
  return o;
}

// Runs one parsed scenario. `label` names where it came from (a file path):
// every error line starts with it unless the message already does
// (syntax errors carry file:line:col).
int RunParsed(const absl::StatusOr<scenario::Scenario>& s, RunOptions options,
              const std::string& label) {
  auto report_error = [&label](const absl::Status& status) {
    std::string prefix = "irqlab: ";
    if (!absl::StrContains(status.message(), label)) absl::StrAppend(&prefix, label, ": ");
    return ReportError(prefix, status);
  };
  if (!s.ok()) return report_error(s.status());
  absl::StatusOr<ScenarioReport> report = RunScenario(*s, options);
  if (!report.ok()) return report_error(report.status());
  std::cout.flush();
  std::cout << "== scenario " << (s->name().empty() ? "(unnamed)" : s->name()) << "\n";
  report->Print(std::cout);
  // The same hash `irqlab campaign` records, to check a replay.
  std::cout << "trace: " << report->trace_lines.size() << " events, hash "
            << HashHex(TraceHash(report->trace_lines)) << "\n";
  return report->passed() ? kExitOk : kExitExpectationFailed;
}

int CmdRun(const std::vector<std::string>& files) {
  if (files.empty()) {
    std::cerr << "irqlab run: give at least one scenario file\n";
    return kExitUsage;
  }
  int worst = kExitOk;
  for (const std::string& f : files) {
    RunOptions o = CommonOptions();
    o.base_dir = ScenarioBaseDir(f);
    const int rc = RunParsed(LoadScenarioFile(f), o, f);
    worst = std::max(worst, rc);
  }
  return worst;
}

int CmdBoot(const std::vector<std::string>& args, const std::vector<std::string>& devices) {
  if (args.size() != 1) {
    std::cerr << "irqlab boot: give exactly one kernel (a file or a built-in name)\n";
    return kExitUsage;
  }
  if (const int64_t t = absl::GetFlag(FLAGS_max_time); t < 0) {
    std::cerr << "irqlab boot: --max_time: must be >= 0 ticks (0 = no limit), got " << t
              << "\n";
    return kExitUsage;
  }
  if (const double t = absl::GetFlag(FLAGS_timeout); !(t >= 0)) {
    std::cerr << "irqlab boot: --timeout: must be >= 0 seconds (0 = no limit), got " << t
              << "\n";
    return kExitUsage;
  }
  absl::StatusOr<uint64_t> ram = ParseSize(absl::GetFlag(FLAGS_ram));
  if (!ram.ok()) {
    std::cerr << "irqlab boot: --ram: " << ram.status().message() << "\n";
    return kExitUsage;
  }
  MachineConfig mc;
  mc.cpus = absl::GetFlag(FLAGS_cpus);
  if (mc.cpus < 1 || mc.cpus > MachineConfig::kMaxCpus) {
    std::cerr << "irqlab boot: --cpus: must be between 1 and " << MachineConfig::kMaxCpus
              << ", got " << mc.cpus << "\n";
    return kExitUsage;
  }
  mc.ram_bytes = *ram;
  if (!absl::GetFlag(FLAGS_quiet)) mc.console = &std::cout;
  absl::StatusOr<CpuSpec> cpu = ParseCpuSpec(absl::GetFlag(FLAGS_cpu));
  if (!cpu.ok()) {
    std::cerr << "irqlab boot: --cpu: " << cpu.status().message() << "\n";
    return kExitUsage;
  }
  if (const std::string c = absl::GetFlag(FLAGS_compat); c == "qemu") {
    mc.compat = CompatProfile::kQemu;
  } else if (c != "spec") {
    std::cerr << "irqlab boot: --compat: must be spec or qemu, got \"" << c << "\"\n";
    return kExitUsage;
  }
  mc.cpu_model = cpu->model;
  mc.x2apic = cpu->x2apic;
  mc.tsc_deadline = cpu->tsc_deadline;
  mc.ignore_msrs = cpu->ignore_msrs;
  for (const std::string& d : devices) {
    absl::StatusOr<MachineConfig::Device> spec = ParseDeviceSpec(d);
    if (!spec.ok()) {
      std::cerr << "irqlab boot: --device=" << d << ": " << spec.status().message() << "\n";
      return kExitUsage;
    }
    mc.devices.push_back(*spec);
  }

  std::vector<uint8_t> bytes;
  absl::Span<const uint8_t> kernel;
  if (const BuiltinKernel* k = FindBuiltinKernel(args[0]); k != nullptr) {
    kernel = k->elf;
  } else {
    absl::StatusOr<std::vector<uint8_t>> file = ReadKernelFile(args[0]);
    if (!file.ok()) {
      std::cerr << "irqlab boot: " << file.status().message() << "\n";
      return kExitUsage;
    }
    bytes = std::move(*file);
    kernel = bytes;
  }
  std::vector<MultibootModule> modules;
  if (const std::string initrd = absl::GetFlag(FLAGS_initrd); !initrd.empty()) {
    absl::StatusOr<std::vector<uint8_t>> file = ReadKernelFile(initrd);
    if (!file.ok()) {
      std::cerr << "irqlab boot: --initrd: " << file.status().message() << "\n";
      return kExitUsage;
    }
    modules.push_back(MultibootModule{initrd, std::move(*file)});
  }

  Tracer tracer;
  std::ofstream trace_file, perfetto_file;
  std::unique_ptr<TextTraceWriter> text;
  std::unique_ptr<PerfettoTraceWriter> perfetto;
  if (const std::string p = absl::GetFlag(FLAGS_trace); !p.empty()) {
    std::ostream* out = &std::cout;
    if (p != "-") {
      trace_file.open(p);
      if (!trace_file) {
        std::cerr << "irqlab boot: --trace: cannot write \"" << p << "\"\n";
        return kExitUsage;
      }
      out = &trace_file;
    }
    text = std::make_unique<TextTraceWriter>(out);
    tracer.AddSink(text.get());
  }
  if (const std::string p = absl::GetFlag(FLAGS_perfetto); !p.empty()) {
    perfetto_file.open(p);
    if (!perfetto_file) {
      std::cerr << "irqlab boot: --perfetto: cannot write \"" << p << "\"\n";
      return kExitUsage;
    }
    perfetto = std::make_unique<PerfettoTraceWriter>(&perfetto_file);
    tracer.AddSink(perfetto.get());
  }

  absl::StatusOr<std::unique_ptr<Machine>> machine = Machine::Create(mc, &tracer);
  if (!machine.ok()) {
    // Machine errors name scenario fields; on this command line they are flags.
    std::string msg(machine.status().message());
    if (absl::StartsWith(msg, "machine.devices")) msg = "--device: " + msg.substr(msg.find(':') + 2);
    if (absl::StartsWith(msg, "machine.ram")) msg = "--ram: " + msg.substr(msg.find(':') + 2);
    return ReportError("irqlab boot: ", absl::Status(machine.status().code(), msg));
  }
  if (absl::Status st = (*machine)->LoadKernel(kernel, absl::GetFlag(FLAGS_append), modules);
      !st.ok()) {
    std::cerr << "irqlab boot: " << args[0] << ": " << st.message() << "\n";
    return kExitUsage;
  }
  const int64_t max_time = absl::GetFlag(FLAGS_max_time);
  RunResult r = (*machine)->Run(
      max_time == 0 ? Machine::kNoTimeLimit : static_cast<uint64_t>(max_time),
      absl::GetFlag(FLAGS_timeout));
  tracer.Finish();
  std::cout.flush();
  return ReportRun(r);
}

int CmdKernels() {
  for (const BuiltinKernel& k : BuiltinKernels()) {
    std::cout << absl::StrFormat("%-12s %s\n", k.name, k.description);
  }
  return kExitOk;
}

// Abseil exits with status 1 on an unknown flag or a bad flag value; irqlab's
// contract for bad input is a one-line error and status 2. So check every
// flag (up to "--") against the registry first, and collect the names of the
// irqlab flags given into `names` (for CheckFlagScope). Returns "" if all are
// fine, else the one-line error.
std::string CheckFlags(const std::vector<char*>& argv, std::vector<std::string>* names) {
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    if (a.size() < 2 || a[0] != '-') continue;
    const std::string body = a.substr(a[1] == '-' ? 2 : 1);
    const size_t eq = body.find('=');
    const std::string name = body.substr(0, eq);
    // Abseil's own flags (usage and flag files), handled by ParseCommandLine.
    static const char* const kAbseilFlags[] = {
        "help",    "helpfull",   "helpshort", "helppackage", "helpon",  "helpmatch",
        "version", "only_check_args", "flagfile", "fromenv", "tryfromenv", "undefok"};
    if (std::find(std::begin(kAbseilFlags), std::end(kAbseilFlags), name) !=
        std::end(kAbseilFlags)) {
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no") && eq == std::string::npos) {
      absl::CommandLineFlag* positive = absl::FindCommandLineFlag(name.substr(2));
      if (positive != nullptr && positive->IsOfType<bool>()) {
        names->push_back(name.substr(2));
        continue;
      }
    }
    if (flag == nullptr) return absl::StrCat("unknown flag --", name, "; see irqlab --help");
    names->push_back(name);
    if (flag->IsOfType<bool>() && eq == std::string::npos) continue;
    std::string value;
    if (eq != std::string::npos) {
      value = body.substr(eq + 1);
    } else if (i + 1 < argv.size()) {
      value = argv[++i];
    } else {
      return absl::StrCat("flag --", name, " needs a value (--", name, "=VALUE)");
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::StrCat("--", name, "=", value, ": ", error);
    }
  }
  return "";
}

CampaignCommand CampaignFlags(const char* program, std::vector<std::string> args) {
  CampaignCommand c;
  c.program = program;
  c.args = std::move(args);
  c.seeds = absl::GetFlag(FLAGS_seeds);
  c.jobs = absl::GetFlag(FLAGS_jobs);
  c.results = absl::GetFlag(FLAGS_results);
  if (const int64_t n = absl::GetFlag(FLAGS_shards); n != -1) {
    c.shards = static_cast<uint64_t>(n);
  }
  c.worker_timeout = absl::GetFlag(FLAGS_worker_timeout);
  c.junit = absl::GetFlag(FLAGS_junit);
  return c;
}

// True for the ways people ask for help: -h, --help, -help, --helpshort
// (before "--"). --helpfull stays Abseil's complete flag list.
bool AsksForHelp(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--") return false;
    if (a == "-h" || a == "--help" || a == "-help" || a == "--helpshort" || a == "-helpshort") {
      return true;
    }
  }
  return false;
}

// Runs one command (after flag parsing); "" is the default scenario.
int RunCommand(const char* program, const std::string& cmd, std::vector<std::string> args,
               const std::vector<std::string>& devices) {
  if (cmd.empty()) {
    RunOptions o = CommonOptions();
    return RunParsed(ParseScenario(kDefaultScenario, "<built-in default scenario>"), o,
                     "<built-in default scenario>");
  }
  if (cmd == "run") return CmdRun(args);
  if (cmd == "boot") return CmdBoot(args, devices);
  if (cmd == "kernels") return CmdKernels();
  if (cmd == "cpus") {
    std::cout << DescribeCpuModels();
    return kExitOk;
  }
  if (cmd == "test") return TestMain(CampaignFlags(program, args));
  if (cmd == "campaign") {
    if (const int64_t n = absl::GetFlag(FLAGS_shards); n < -1) {
      std::cerr << "irqlab campaign: --shards=" << n << ": must be >= 1\n";
      return kExitUsage;
    }
    return CampaignMain(CampaignFlags(program, args), ProcessEnv());
  }
  if (cmd == "merge") return MergeMain(CampaignFlags(program, args));
  if (cmd == "bench") {
    if (!args.empty()) {
      std::cerr << "irqlab bench: unexpected argument \"" << args[0] << "\"\n";
      return kExitUsage;
    }
    const std::string filter = absl::GetFlag(FLAGS_filter);
    try {
      // Google Benchmark compiles --benchmark_filter as a POSIX extended
      // regex (std::regex::extended); check it once here.
      std::regex re(filter, std::regex::extended);
    } catch (const std::regex_error& e) {
      std::cerr << "irqlab bench: --filter=" << filter << ": not a regular expression ("
                << e.what() << ")\n";
      return kExitUsage;
    }
    return BenchMain(BenchCommand{.filter = filter,
                                  .json = absl::GetFlag(FLAGS_json),
                                  .min_time = absl::GetFlag(FLAGS_min_time)});
  }
  return kExitUsage;  // not reached: IrqlabMain accepts only IsCommand(cmd)
}

bool IsCommand(std::string_view cmd) {
  for (std::string_view c :
       {"run", "boot", "kernels", "cpus", "test", "campaign", "merge", "bench"}) {
    if (c == cmd) return true;
  }
  return false;
}

}  // namespace

int IrqlabMain(int argc, char** argv) {
  if (AsksForHelp(argc, argv) || (argc >= 2 && std::string_view(argv[1]) == "help")) {
    std::cout << "irqlab: " << kUsage << "\n";
    return kExitOk;
  }
  absl::SetProgramUsageMessage(kUsage);
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "emu/run/cli.cc");
  };
  config.version_string = [] { return std::string("irqlab 0.1\n"); };
  absl::SetFlagsUsageConfig(config);

  // --device may repeat and contains commas (NAME,key=value,...), which a
  // vector<string> Abseil flag would split; take it out before parsing.
  std::vector<std::string> devices;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (i > 0 && absl::StartsWith(a, "--device=")) {
      devices.emplace_back(a.substr(9));
    } else if (i > 0 && a == "--device") {
      if (i + 1 >= argc) {
        std::cerr << "irqlab: flag --device needs a value (--device=NAME[,key=value...])\n";
        return kExitUsage;
      }
      devices.emplace_back(argv[++i]);
    } else {
      rest.push_back(argv[i]);
    }
  }
  std::vector<std::string> flags_given;
  if (!devices.empty()) flags_given.push_back("device");
  if (const std::string error = CheckFlags(rest, &flags_given); !error.empty()) {
    std::cerr << "irqlab: " << error << "\n";
    return kExitUsage;
  }
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(rest.size()), rest.data());
  std::vector<std::string> args(positional.begin() + 1, positional.end());
  std::string cmd;
  if (!args.empty()) {
    cmd = args[0];
    args.erase(args.begin());
  }
  if (!cmd.empty() && !IsCommand(cmd)) {
    std::cerr << "irqlab: unknown command \"" << cmd << "\"; see irqlab --help\n";
    return kExitUsage;
  }
  for (const std::string& flag : flags_given) {
    if (const std::string error = CheckFlagScope(cmd, flag); !error.empty()) {
      std::cerr << error << "\n";
      return kExitUsage;
    }
  }

  std::atexit(OnExitDuringCommand);
  g_command_running.store(true);
  const int rc = RunCommand(argv[0], cmd, std::move(args), devices);
  g_command_running.store(false);
  return rc;
}

}  // namespace irqlab
