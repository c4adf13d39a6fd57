#include "emu/run/campaign.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "emu/machine/machine.h"
#include "emu/run/scenario.h"
#include "emu/core/status_macros.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"

namespace irqlab {

using campaign::RunRecord;
using campaign::TestCaseResult;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The last line of `text` that is not blank, at most 200 bytes.
std::string LastLine(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  if (lines.empty()) return "";
  std::string last(absl::StripAsciiWhitespace(lines.back()));
  if (last.size() > 200) last = last.substr(0, 200) + "...";
  return last;
}

// The last `n` bytes of `text`, starting at a line.
// The fields RunRecord and TestCaseResult share, from a finished run:
// outcome, exit status, passed and the failing expectations.
template <typename Result>
void SetRunFields(const ScenarioReport& report, Result* r) {
  r->set_outcome(OutcomeName(report.run.outcome));
  if (report.run.outcome == RunResult::Outcome::kExit) r->set_exit_status(report.run.exit_status);
  r->set_passed(report.passed());
  for (const ExpectationResult& e : report.expectations) {
    if (!e.passed) r->add_failed(absl::StrCat(e.name, " (", e.detail, ")"));
  }
}

std::string TailLines(const std::string& text, size_t n) {
  if (text.size() <= n) return text;
  size_t start = text.size() - n;
  const size_t nl = text.find('\n', start);
  if (nl != std::string::npos && nl + 1 < text.size()) start = nl + 1;
  return absl::StrCat("[... ", start, " bytes before]\n", text.substr(start));
}

bool IsDecimal(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
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

// ---------------------------------------------------------------- hashing --

uint64_t Fnv1a64(absl::string_view data, uint64_t h) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t TraceHash(const std::vector<std::string>& trace_lines) {
  uint64_t h = kFnv1a64Offset;
  for (const std::string& line : trace_lines) h = Fnv1a64("\n", Fnv1a64(line, h));
  return h;
}

std::string HashHex(uint64_t h) { return absl::StrFormat("%016x", h); }

std::string ScenarioHash(const scenario::Scenario& s) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(s, &text);
  return HashHex(Fnv1a64(text));
}

// ------------------------------------------------------ seeds and shards --

std::string SeedRange::ToString() const { return absl::StrCat(first, "..", last); }

absl::StatusOr<SeedRange> ParseSeedRange(absl::string_view text) {
  const std::vector<absl::string_view> parts = absl::StrSplit(text, "..");
  SeedRange r;
  if (parts.size() > 2 || !IsDecimal(parts[0]) || !absl::SimpleAtoi(parts[0], &r.first) ||
      (parts.size() == 2 &&
       (!IsDecimal(parts[1]) || !absl::SimpleAtoi(parts[1], &r.last)))) {
    return absl::InvalidArgumentError(
        "not a seed range (write A..B with decimal A <= B, e.g. 1..1000, or one seed N)");
  }
  if (parts.size() == 1) r.last = r.first;
  if (r.last < r.first) {
    return absl::InvalidArgumentError(
        absl::StrFormat("empty seed range: %d > %d (write A..B with A <= B)", r.first, r.last));
  }
  if (r.last - r.first >= kMaxSeeds) {
    return absl::InvalidArgumentError(
        absl::StrFormat("more than %d seeds in one campaign; split it into shards", kMaxSeeds));
  }
  return r;
}

std::string Shard::ToString() const {
  if (source.empty()) return "not sharded";
  return absl::StrFormat("shard %d of %d (%s)", index, count, source);
}

EnvLookup ProcessEnv() {
  return [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

absl::StatusOr<Shard> ResolveShard(const EnvLookup& env, std::optional<uint64_t> shards_flag) {
  auto get = [&](const char* name) -> std::optional<std::string> {
    std::optional<std::string> v = env(name);
    if (v.has_value() && v->empty()) return std::nullopt;
    return v;
  };
  auto number = [](const std::string& what, const std::string& v) -> absl::StatusOr<uint64_t> {
    uint64_t n = 0;
    if (!IsDecimal(v) || !absl::SimpleAtoi(v, &n)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s=%s: not a non-negative decimal number", what, v));
    }
    return n;
  };

  // A shard count given for JOB_COMPLETION_INDEX.
  std::optional<uint64_t> given;
  std::string given_name;
  if (shards_flag.has_value()) {
    given = *shards_flag;
    given_name = absl::StrCat("--shards=", *shards_flag);
  }
  if (std::optional<std::string> t = get("IRQLAB_TOTAL_SHARDS")) {
    ASSIGN_OR_RETURN(uint64_t n, number("IRQLAB_TOTAL_SHARDS", *t));
    if (given.has_value() && *given != n) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s contradicts IRQLAB_TOTAL_SHARDS=%d", given_name, n));
    }
    if (!given.has_value()) {
      given = n;
      given_name = absl::StrCat("IRQLAB_TOTAL_SHARDS=", n);
    }
  }

  Shard s;
  std::string index_name, count_name;  // "VAR=value" for messages
  const std::optional<std::string> gtest_index = get("GTEST_SHARD_INDEX");
  const std::optional<std::string> gtest_total = get("GTEST_TOTAL_SHARDS");
  const std::optional<std::string> job_index = get("JOB_COMPLETION_INDEX");
  const std::optional<std::string> slurm_id = get("SLURM_ARRAY_TASK_ID");
  const std::optional<std::string> slurm_count = get("SLURM_ARRAY_TASK_COUNT");
  bool count_from_given = false;
  if (gtest_index.has_value() || gtest_total.has_value()) {
    if (!gtest_index.has_value() || !gtest_total.has_value()) {
      return absl::InvalidArgumentError(
          gtest_index.has_value()
              ? absl::StrCat("GTEST_SHARD_INDEX=", *gtest_index, " is set without GTEST_TOTAL_SHARDS")
              : absl::StrCat("GTEST_TOTAL_SHARDS=", *gtest_total, " is set without GTEST_SHARD_INDEX"));
    }
    ASSIGN_OR_RETURN(s.index, number("GTEST_SHARD_INDEX", *gtest_index));
    ASSIGN_OR_RETURN(s.count, number("GTEST_TOTAL_SHARDS", *gtest_total));
    s.source = "GTEST_SHARD_INDEX/GTEST_TOTAL_SHARDS";
    index_name = absl::StrCat("GTEST_SHARD_INDEX=", *gtest_index);
    count_name = absl::StrCat("GTEST_TOTAL_SHARDS=", *gtest_total);
  } else if (job_index.has_value()) {
    if (!given.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "JOB_COMPLETION_INDEX=", *job_index,
          " needs the shard count (the Job's completions): --shards=N or IRQLAB_TOTAL_SHARDS=N"));
    }
    ASSIGN_OR_RETURN(s.index, number("JOB_COMPLETION_INDEX", *job_index));
    s.count = *given;
    count_from_given = true;
    s.source = absl::StrCat("JOB_COMPLETION_INDEX/",
                            shards_flag.has_value() ? "--shards" : "IRQLAB_TOTAL_SHARDS");
    index_name = absl::StrCat("JOB_COMPLETION_INDEX=", *job_index);
    count_name = given_name;
  } else if (slurm_id.has_value() || slurm_count.has_value()) {
    if (!slurm_id.has_value() || !slurm_count.has_value()) {
      return absl::InvalidArgumentError(
          slurm_id.has_value()
              ? absl::StrCat("SLURM_ARRAY_TASK_ID=", *slurm_id, " is set without SLURM_ARRAY_TASK_COUNT")
              : absl::StrCat("SLURM_ARRAY_TASK_COUNT=", *slurm_count,
                             " is set without SLURM_ARRAY_TASK_ID"));
    }
    ASSIGN_OR_RETURN(const uint64_t id, number("SLURM_ARRAY_TASK_ID", *slurm_id));
    ASSIGN_OR_RETURN(s.count, number("SLURM_ARRAY_TASK_COUNT", *slurm_count));
    uint64_t min = 0, step = 1;
    if (std::optional<std::string> m = get("SLURM_ARRAY_TASK_MIN")) {
      ASSIGN_OR_RETURN(min, number("SLURM_ARRAY_TASK_MIN", *m));
    }
    if (std::optional<std::string> st = get("SLURM_ARRAY_TASK_STEP")) {
      ASSIGN_OR_RETURN(step, number("SLURM_ARRAY_TASK_STEP", *st));
      if (step == 0) return absl::InvalidArgumentError("SLURM_ARRAY_TASK_STEP=0: must be >= 1");
    }
    if (id < min || (id - min) % step != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "SLURM_ARRAY_TASK_ID=%d is not SLURM_ARRAY_TASK_MIN=%d plus a multiple of "
          "SLURM_ARRAY_TASK_STEP=%d (use a contiguous --array=A-B[:S])",
          id, min, step));
    }
    s.index = (id - min) / step;
    s.source = "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT";
    index_name = min == 0 && step == 1
                     ? absl::StrCat("SLURM_ARRAY_TASK_ID=", id)
                     : absl::StrFormat("SLURM_ARRAY_TASK_ID=%d (index %d with SLURM_ARRAY_TASK_MIN=%d, "
                                       "SLURM_ARRAY_TASK_STEP=%d)",
                                       id, s.index, min, step);
    count_name = absl::StrCat("SLURM_ARRAY_TASK_COUNT=", *slurm_count);
  } else if (given.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        given_name,
        " needs a shard index in the environment: JOB_COMPLETION_INDEX (or GTEST_SHARD_INDEX, "
        "SLURM_ARRAY_TASK_ID)"));
  } else {
    return Shard{};
  }
  if (s.count == 0) return absl::InvalidArgumentError(absl::StrCat(count_name, ": no shards"));
  if (s.index >= s.count) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_name, " is not below the shard count ", count_name));
  }
  if (given.has_value() && !count_from_given && *given != s.count) {
    return absl::InvalidArgumentError(absl::StrCat(given_name, " contradicts ", count_name));
  }
  return s;
}

uint64_t ShardSize(const SeedRange& range, const Shard& shard) {
  const uint64_t n = range.size();
  if (shard.count == 0 || shard.index >= n) return 0;
  return (n - shard.index - 1) / shard.count + 1;
}

uint64_t ShardSeed(const SeedRange& range, const Shard& shard, uint64_t i) {
  return range.first + shard.index + i * shard.count;
}

std::vector<uint64_t> ShardSeeds(const SeedRange& range, const Shard& shard) {
  std::vector<uint64_t> seeds(ShardSize(range, shard));
  for (uint64_t i = 0; i < seeds.size(); ++i) seeds[i] = ShardSeed(range, shard, i);
  return seeds;
}

// ---------------------------------------------------------- worker pool --

std::string WorkerResult::Describe(double timeout_seconds) const {
  std::string what;
  switch (kind) {
    case Kind::kExited:
      if (ok()) return "";
      what = exit_code < 0 ? "could not be started"
                           : absl::StrFormat("exited with status %d without a result", exit_code);
      break;
    case Kind::kSignaled: {
      const char* abbrev = sigabbrev_np(signal);
      const char* descr = sigdescr_np(signal);
      what = absl::StrFormat("killed by %s (%s)",
                             abbrev != nullptr ? absl::StrCat("SIG", abbrev)
                                               : absl::StrCat("signal ", signal),
                             descr != nullptr ? descr : "unknown signal");
      break;
    }
    case Kind::kTimedOut:
      return absl::StrFormat("killed after %g s wall clock (--worker_timeout)", timeout_seconds);
  }
  const std::string last = LastLine(stderr_tail);
  return last.empty() ? what : absl::StrCat(what, ": ", last);
}

namespace {

struct Worker {
  size_t index = 0;
  pid_t pid = -1;
  int result_fd = -1;
  int err_fd = -1;
  int pid_fd = -1;  // readable once the worker has exited (-1: no pidfd)
  double start = 0;
  bool timed_out = false;
  std::string payload;
  std::string err;
};

// Reads what is available; closes the descriptor at EOF or on error.
void Drain(int* fd, std::string* into, size_t keep_tail) {
  char buf[1 << 16];
  const ssize_t n = read(*fd, buf, sizeof buf);
  if (n > 0) {
    into->append(buf, static_cast<size_t>(n));
    if (keep_tail != 0 && into->size() > 2 * keep_tail) into->erase(0, into->size() - keep_tail);
    return;
  }
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  close(*fd);
  *fd = -1;
}

void WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

}  // namespace

void RunInWorkers(size_t n, const WorkerPoolOptions& options,
                  const std::function<std::string(size_t)>& work,
                  const std::function<bool(size_t, WorkerResult)>& done) {
  const size_t jobs = static_cast<size_t>(std::max(1, options.jobs));
  // Workers are reaped with waitpid(): SIGCHLD must not be ignored (a
  // parent process may have left it so), or they would vanish unreaped.
  struct sigaction old_chld;
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGCHLD, &dfl, &old_chld);
  std::vector<Worker> running;
  std::map<size_t, WorkerResult> finished;  // completed, not yet handed to `done`
  size_t next = 0, next_done = 0, completed = 0;
  bool stop = false;

  auto complete = [&](size_t index, WorkerResult r) {
    finished.emplace(index, std::move(r));
    ++completed;
    if (options.progress) options.progress(completed, n);
  };

  auto spawn = [&](size_t index) {
    int result_pipe[2], err_pipe[2];
    if (pipe2(result_pipe, O_CLOEXEC) != 0) {
      WorkerResult r;
      r.exit_code = -1;
      r.stderr_tail = absl::StrCat("pipe: ", std::strerror(errno));
      complete(index, std::move(r));
      return;
    }
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
      close(result_pipe[0]);
      close(result_pipe[1]);
      WorkerResult r;
      r.exit_code = -1;
      r.stderr_tail = absl::StrCat("pipe: ", std::strerror(errno));
      complete(index, std::move(r));
      return;
    }
    // Nothing buffered may be written twice (by the parent and the child).
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    const double start = Now();
    const pid_t pid = fork();
    if (pid == 0) {
      // The worker: only its result pipe and stderr stay open.
      for (Worker& w : running) {
        CloseFd(&w.result_fd);
        CloseFd(&w.err_fd);
        CloseFd(&w.pid_fd);
      }
      close(result_pipe[0]);
      close(err_pipe[0]);
      const int devnull = open("/dev/null", O_RDWR);
      if (devnull >= 0) {
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
      }
      dup2(err_pipe[1], STDERR_FILENO);
      std::string out = work(index);
      // Trailer: the result's length, so a worker that exits early (or
      // dies while writing) is told apart from one with an empty result.
      const uint64_t size = out.size();
      out.append(reinterpret_cast<const char*>(&size), sizeof size);
      WriteAll(result_pipe[1], out);
      _exit(0);  // no atexit handlers, no flushing of the parent's buffers
    }
    close(result_pipe[1]);
    close(err_pipe[1]);
    if (pid < 0) {
      close(result_pipe[0]);
      close(err_pipe[0]);
      WorkerResult r;
      r.exit_code = -1;
      r.stderr_tail = absl::StrCat("fork: ", std::strerror(errno));
      complete(index, std::move(r));
      return;
    }
    Worker w;
    w.index = index;
    w.pid = pid;
    w.result_fd = result_pipe[0];
    w.err_fd = err_pipe[0];
    w.pid_fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (w.pid_fd >= 0) fcntl(w.pid_fd, F_SETFD, FD_CLOEXEC);
    w.start = start;
    running.push_back(std::move(w));
  };

  while (true) {
    while (!stop && running.size() < jobs && next < n) spawn(next++);
    while (!stop && !finished.empty() && finished.begin()->first == next_done) {
      auto node = finished.extract(finished.begin());
      ++next_done;
      if (!done(node.key(), std::move(node.mapped()))) stop = true;
    }
    if (stop || (running.empty() && next >= n && finished.empty())) break;
    if (running.empty()) continue;

    // Wait for output, an exit or the next deadline (at most 100 ms, so
    // workers whose pipes are closed get reaped promptly).
    std::vector<pollfd> fds;
    std::vector<std::pair<Worker*, bool>> owners;  // (worker, is result fd)
    int timeout_ms = 100;
    const double now = Now();
    for (Worker& w : running) {
      if (w.result_fd >= 0) {
        fds.push_back({w.result_fd, POLLIN, 0});
        owners.emplace_back(&w, true);
      }
      if (w.err_fd >= 0) {
        fds.push_back({w.err_fd, POLLIN, 0});
        owners.emplace_back(&w, false);
      }
      // Output complete: wait for the exit itself.
      if (w.result_fd < 0 && w.err_fd < 0 && w.pid_fd >= 0) {
        fds.push_back({w.pid_fd, POLLIN, 0});
        owners.emplace_back(nullptr, false);
      }
      if (options.timeout_seconds > 0 && !w.timed_out) {
        const double left = w.start + options.timeout_seconds - now;
        timeout_ms = std::min(timeout_ms, std::max(0, static_cast<int>(std::ceil(left * 1000))));
      }
    }
    if (poll(fds.data(), fds.size(), timeout_ms) > 0) {
      for (size_t i = 0; i < fds.size(); ++i) {
        Worker* w = owners[i].first;
        if (fds[i].revents == 0 || w == nullptr) continue;
        if (owners[i].second) {
          Drain(&w->result_fd, &w->payload, 0);
        } else {
          Drain(&w->err_fd, &w->err, WorkerResult::kStderrTail);
        }
      }
    }
    // Wall-clock timeouts.
    if (options.timeout_seconds > 0) {
      const double t = Now();
      for (Worker& w : running) {
        // A worker whose output is complete has finished its work in time.
        const bool finished_work = w.result_fd < 0 && w.err_fd < 0;
        if (!w.timed_out && !finished_work && t >= w.start + options.timeout_seconds) {
          kill(w.pid, SIGKILL);
          w.timed_out = true;
        }
      }
    }
    // Reap the workers that are gone.
    for (auto it = running.begin(); it != running.end();) {
      Worker& w = *it;
      int status = 0;
      if ((w.result_fd >= 0 || w.err_fd >= 0) && !w.timed_out) {
        ++it;
        continue;
      }
      if (waitpid(w.pid, &status, WNOHANG) != w.pid) {
        ++it;
        continue;
      }
      // A killed worker may leave unread output behind; it is not needed.
      CloseFd(&w.result_fd);
      CloseFd(&w.err_fd);
      CloseFd(&w.pid_fd);
      WorkerResult r;
      r.wall_seconds = Now() - w.start;
      if (w.timed_out) {
        r.kind = WorkerResult::Kind::kTimedOut;
        r.signal = SIGKILL;
      } else if (WIFSIGNALED(status)) {
        r.kind = WorkerResult::Kind::kSignaled;
        r.signal = WTERMSIG(status);
      } else {
        r.kind = WorkerResult::Kind::kExited;
        r.exit_code = WEXITSTATUS(status);
      }
      if (r.kind == WorkerResult::Kind::kExited && w.payload.size() >= sizeof(uint64_t)) {
        uint64_t size = 0;
        std::memcpy(&size, w.payload.data() + w.payload.size() - sizeof size, sizeof size);
        if (size == w.payload.size() - sizeof size) {
          w.payload.resize(size);
          r.payload = std::move(w.payload);
          r.has_result = true;
        }
      }
      r.stderr_tail = w.err.size() > WorkerResult::kStderrTail
                          ? w.err.substr(w.err.size() - WorkerResult::kStderrTail)
                          : std::move(w.err);
      complete(w.index, std::move(r));
      it = running.erase(it);
    }
  }
  // Stopped early: the running workers are not needed any more.
  for (Worker& w : running) {
    kill(w.pid, SIGKILL);
    CloseFd(&w.result_fd);
    CloseFd(&w.err_fd);
    CloseFd(&w.pid_fd);
    int status = 0;
    while (waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  sigaction(SIGCHLD, &old_chld, nullptr);
}

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
        if (!w.ok() || !r.ParseFromString(w.payload)) {
          const std::string what = w.ok() ? "exited without a valid result"
                                           : w.Describe(config.worker_timeout_seconds);
          r.Clear();
          r.set_outcome(w.kind == WorkerResult::Kind::kTimedOut ? "timeout" : "crash");
          r.add_failed(absl::StrCat("worker ", what));
          r.set_detail(absl::StrCat("worker ", what));
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

std::string RecordToJsonLine(const RunRecord& r) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = false;
  o.always_print_primitive_fields = true;
  o.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(r, &out, o);
  return out;
}

absl::StatusOr<std::vector<RunRecord>> ReadResultsFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrFormat("%s: cannot open results file", path));
  std::vector<RunRecord> records;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    RunRecord r;
    const auto st = google::protobuf::util::JsonStringToMessage(line, &r);
    if (!st.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s:%d: not a campaign record: %s", path, n,
          LastLine(std::string(st.message()).substr(0, std::string(st.message()).find('\n')))));
    }
    records.push_back(std::move(r));
  }
  if (in.bad()) return absl::DataLossError(absl::StrFormat("%s: read error", path));
  return records;
}

absl::StatusOr<std::vector<RunRecord>> MergeResultsFiles(const std::vector<std::string>& paths,
                                                         MergeGaps* gaps) {
  std::map<uint64_t, std::pair<RunRecord, std::string>> by_seed;  // seed -> (record, file)
  std::optional<std::pair<std::string, std::string>> ref;  // (scenario, hash) of the first record
  std::string ref_path;
  std::set<std::pair<uint64_t, uint64_t>> ranges;
  for (const std::string& path : paths) {
    ASSIGN_OR_RETURN(std::vector<RunRecord> records, ReadResultsFile(path));
    for (RunRecord& r : records) {
      if (!ref.has_value()) {
        ref.emplace(r.scenario(), r.scenario_hash());
        ref_path = path;
      } else if (r.scenario() != ref->first || r.scenario_hash() != ref->second) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s has results of scenario \"%s\" (hash %s) but %s of scenario \"%s\" (hash %s): "
            "results of different scenarios cannot be merged",
            path, r.scenario(), r.scenario_hash(), ref_path, ref->first, ref->second));
      }
      if (auto it = by_seed.find(r.seed()); it != by_seed.end()) {
        std::string diff;
        bool same = false;
        {  // the report is complete when the differencer is gone
          google::protobuf::util::MessageDifferencer d;
          // proto3: an unset field is its default ("modified: passed: true -> false").
          d.set_message_field_comparison(
              google::protobuf::util::MessageDifferencer::EQUIVALENT);
          d.ReportDifferencesToString(&diff);
          same = d.Compare(it->second.first, r);
        }
        if (!same) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "seed %d has conflicting records in %s and %s (%s)", r.seed(), it->second.second,
              path, absl::StripAsciiWhitespace(diff.substr(0, diff.find('\n')))));
        }
      }
      if (absl::StatusOr<SeedRange> range = ParseSeedRange(r.seeds()); range.ok()) {
        ranges.emplace(range->first, range->last);
      }
      const uint64_t seed = r.seed();
      by_seed.try_emplace(seed, std::move(r), path);
    }
  }
  if (gaps != nullptr) {
    *gaps = MergeGaps{};
    // Union of the ranges, then the seeds in it without a record.
    std::vector<std::pair<uint64_t, uint64_t>> merged;
    for (const auto& r : ranges) {
      if (!merged.empty() && r.first <= merged.back().second + 1) {
        merged.back().second = std::max(merged.back().second, r.second);
      } else {
        merged.push_back(r);
      }
    }
    auto note = [&](uint64_t a, uint64_t b) {  // seeds a..b are missing
      gaps->count += b - a + 1;
      for (uint64_t s = a; gaps->first.size() < 10; ++s) {
        gaps->first.push_back(s);
        if (s == b) break;
      }
    };
    for (const auto& [a, b] : merged) {
      uint64_t s = a;
      for (auto it = by_seed.lower_bound(a); s <= b; ++it) {
        if (it == by_seed.end() || it->first > b) {
          note(s, b);
          break;
        }
        if (it->first > s) note(s, it->first - 1);
        if (it->first == b) break;
        s = it->first + 1;
      }
    }
  }
  std::vector<RunRecord> out;
  out.reserve(by_seed.size());
  for (auto& [seed, rec] : by_seed) out.push_back(std::move(rec.first));
  return out;
}

absl::Status WriteResultsFile(const std::string& path, const std::vector<RunRecord>& records) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InvalidArgumentError(absl::StrFormat("%s: cannot write", path));
    for (const RunRecord& r : records) out << RecordToJsonLine(r) << '\n';
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      return absl::DataLossError(absl::StrFormat("%s: write error", tmp));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: cannot write: %s", path, std::strerror(errno)));
  }
  return absl::OkStatus();
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

// ---------------------------------------------------------- test suites --

absl::StatusOr<std::vector<SuiteCase>> FindSuiteCases(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<SuiteCase> cases;
  auto dir_name = [](const fs::path& p) {
    fs::path abs = fs::absolute(p).lexically_normal();
    if (!abs.has_filename()) abs = abs.parent_path();
    std::string name = abs.filename().string();
    return name.empty() ? abs.string() : name;
  };
  for (const std::string& arg : paths) {
    std::error_code ec;
    const fs::file_status st = fs::status(arg, ec);
    if (ec || !fs::exists(st)) {
      return absl::NotFoundError(absl::StrFormat("%s: no such file or directory", arg));
    }
    if (!fs::is_directory(st)) {
      const fs::path p(arg);
      cases.push_back({arg, dir_name(p.has_parent_path() ? p.parent_path() : fs::path(".")),
                       p.stem().string()});
      continue;
    }
    std::vector<fs::path> found;
    fs::recursive_directory_iterator it(arg, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().extension() == ".textproto" && it->is_regular_file(ec)) {
        found.push_back(it->path().lexically_relative(arg));
      }
    }
    if (ec) return absl::InvalidArgumentError(absl::StrFormat("%s: %s", arg, ec.message()));
    std::sort(found.begin(), found.end(), [](const fs::path& a, const fs::path& b) {
      return a.generic_string() < b.generic_string();
    });
    const std::string top = dir_name(arg);
    for (const fs::path& rel : found) {
      const std::string sub = rel.parent_path().generic_string();
      cases.push_back({(fs::path(arg) / rel).string(), sub.empty() ? top : top + "/" + sub,
                       rel.stem().string()});
    }
  }
  if (cases.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("no *.textproto scenario files in %s", absl::StrJoin(paths, ", ")));
  }
  return cases;
}

TestCaseResult RunSuiteCase(const std::string& path) {
  TestCaseResult t;
  absl::StatusOr<scenario::Scenario> s = LoadScenarioFile(path);
  if (!s.ok()) {
    t.set_outcome("error");
    t.set_detail(std::string(s.status().message()));
    return t;
  }
  RunOptions o;
  o.base_dir = ScenarioBaseDir(path);
  absl::StatusOr<ScenarioReport> report = RunScenario(*s, o);
  if (!report.ok()) {
    t.set_outcome("error");
    t.set_detail(std::string(report.status().message()));
    return t;
  }
  SetRunFields(*report, &t);
  t.set_serial_tail(TailLines(report->serial, 4096));
  t.set_detail(report->run.detail);
  return t;
}

std::vector<SuiteResult> RunSuite(const std::vector<SuiteCase>& cases,
                                  const WorkerPoolOptions& pool,
                                  const std::function<TestCaseResult(const std::string&)>& runner,
                                  const std::function<void(const SuiteResult&)>& on_result) {
  std::vector<SuiteResult> results;
  results.reserve(cases.size());
  RunInWorkers(
      cases.size(), pool, [&](size_t i) { return runner(cases[i].path).SerializeAsString(); },
      [&](size_t i, WorkerResult w) {
        TestCaseResult r;
        if (!w.ok() || !r.ParseFromString(w.payload)) {
          r.Clear();
          r.set_outcome(w.kind == WorkerResult::Kind::kTimedOut ? "timeout" : "crash");
          r.set_detail(absl::StrCat("worker ", w.ok() ? "exited without a valid result"
                                                      : w.Describe(pool.timeout_seconds)));
          r.set_worker_stderr(w.stderr_tail);
        }
        results.push_back({cases[i], std::move(r), w.wall_seconds});
        if (on_result) on_result(results.back());
        return true;
      });
  return results;
}

std::string XmlEscape(absl::string_view s, bool attribute) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += attribute ? "&quot;" : "\""; break;
        case '\'': out += attribute ? "&apos;" : "'"; break;
        case '\t': out += attribute ? "&#9;" : "\t"; break;
        case '\n': out += attribute ? "&#10;" : "\n"; break;
        case '\r': out += "&#13;"; break;  // a raw CR would be normalized away
        default:
          if (c < 0x20) {
            out += kReplacement;
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence: its length, the smallest code point it may encode.
    size_t len = 0;
    uint32_t cp = 0, min = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07, min = 0x10000;
    }
    bool ok = len != 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3F);
    }
    ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF) && cp != 0xFFFE &&
         cp != 0xFFFF;
    if (ok) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out += kReplacement;
      ++i;
    }
  }
  return out;
}

void WriteJUnit(const std::vector<SuiteResult>& results, double total_seconds, std::ostream& out) {
  auto is_error = [](const TestCaseResult& r) {
    return r.outcome() == "error" || r.outcome() == "crash" || r.outcome() == "timeout";
  };
  std::map<std::string, std::vector<const SuiteResult*>> suites;
  size_t failures = 0, errors = 0;
  for (const SuiteResult& r : results) {
    suites[r.test.classname].push_back(&r);
    if (is_error(r.result)) {
      ++errors;
    } else if (!r.result.passed()) {
      ++failures;
    }
  }
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out << absl::StrFormat(
      "<testsuites name=\"irqlab\" tests=\"%d\" failures=\"%d\" errors=\"%d\" time=\"%.3f\">\n",
      results.size(), failures, errors, total_seconds);
  for (const auto& [classname, cases] : suites) {
    size_t f = 0, e = 0;
    double t = 0;
    for (const SuiteResult* r : cases) {
      t += r->seconds;
      if (is_error(r->result)) {
        ++e;
      } else if (!r->result.passed()) {
        ++f;
      }
    }
    out << absl::StrFormat(
        "  <testsuite name=\"%s\" tests=\"%d\" failures=\"%d\" errors=\"%d\" skipped=\"0\" "
        "time=\"%.3f\">\n",
        XmlEscape(classname, true), cases.size(), f, e, t);
    for (const SuiteResult* r : cases) {
      out << absl::StrFormat("    <testcase name=\"%s\" classname=\"%s\" file=\"%s\" time=\"%.3f\"",
                             XmlEscape(r->test.name, true), XmlEscape(classname, true),
                             XmlEscape(r->test.path, true), r->seconds);
      const TestCaseResult& res = r->result;
      if (res.passed() && res.serial_tail().empty() && res.worker_stderr().empty()) {
        out << "/>\n";
        continue;
      }
      out << ">\n";
      if (is_error(res)) {
        out << absl::StrFormat("      <error message=\"%s\" type=\"%s\">%s</error>\n",
                               XmlEscape(res.detail(), true), XmlEscape(res.outcome(), true),
                               XmlEscape(res.detail()));
      } else if (!res.passed()) {
        const std::string all = absl::StrJoin(res.failed(), "\n");
        out << absl::StrFormat(
            "      <failure message=\"%s\" type=\"expectation\">%s</failure>\n",
            XmlEscape(absl::StrJoin(res.failed(), "; "), true), XmlEscape(all));
      }
      if (!res.serial_tail().empty()) {
        out << "      <system-out>" << XmlEscape(res.serial_tail()) << "</system-out>\n";
      }
      if (!res.worker_stderr().empty()) {
        out << "      <system-err>" << XmlEscape(res.worker_stderr()) << "</system-err>\n";
      }
      out << "    </testcase>\n";
    }
    out << "  </testsuite>\n";
  }
  out << "</testsuites>\n";
}

// -------------------------------------------------------- the commands --

namespace {

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

}  // namespace

int CampaignMain(const CampaignCommand& c, const EnvLookup& env) {
  constexpr int kOk = 0, kFailed = 1, kUsage = 2;
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
  if (c.jobs < 0) {
    std::cerr << me << ": --jobs=" << c.jobs << ": must be >= 1 (or 0: one per CPU)\n";
    return kUsage;
  }
  if (!(c.worker_timeout >= 0)) {
    std::cerr << me << ": --worker_timeout=" << c.worker_timeout
              << ": must be >= 0 seconds (0: none)\n";
    return kUsage;
  }
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
  std::string results = c.results;
  if (results.empty()) {
    results = std::filesystem::path(file).stem().string() + ".campaign";
    if (!shard->source.empty()) {
      results += absl::StrFormat(".shard-%d-of-%d", shard->index, shard->count);
    }
    results += ".jsonl";
  }
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
  const bool all_passed = std::all_of(records->begin(), records->end(),
                                      [](const RunRecord& r) { return r.passed(); });
  return all_passed ? kOk : kFailed;
}

int MergeMain(const CampaignCommand& c) {
  constexpr int kOk = 0, kFailed = 1, kUsage = 2;
  if (c.args.size() < 2) {
    std::cerr << "irqlab merge: give the output file and at least one results file "
                 "(irqlab merge OUT IN1 IN2 ...)\n";
    return kUsage;
  }
  const std::vector<std::string> inputs(c.args.begin() + 1, c.args.end());
  MergeGaps gaps;
  absl::StatusOr<std::vector<RunRecord>> merged = MergeResultsFiles(inputs, &gaps);
  if (!merged.ok()) {
    std::cerr << "irqlab merge: " << merged.status().message() << "\n";
    return kUsage;
  }
  if (absl::Status st = WriteResultsFile(c.args[0], *merged); !st.ok()) {
    std::cerr << "irqlab merge: " << st.message() << "\n";
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
    std::cerr << "irqlab merge: warning: " << msg << "\n";
    std::cout << "incomplete: " << msg << "\n";
  }
  PrintCampaignSummary(*merged, c.program, std::cout);
  const bool all_passed = std::all_of(merged->begin(), merged->end(),
                                      [](const RunRecord& r) { return r.passed(); });
  return all_passed ? kOk : kFailed;
}

int TestMain(const CampaignCommand& c) {
  constexpr int kOk = 0, kFailed = 1, kUsage = 2;
  if (c.args.empty()) {
    std::cerr << "irqlab test: give a directory of scenario files (irqlab test DIR)\n";
    return kUsage;
  }
  if (c.jobs < 0) {
    std::cerr << "irqlab test: --jobs=" << c.jobs << ": must be >= 1 (or 0: one per CPU)\n";
    return kUsage;
  }
  if (!(c.worker_timeout >= 0)) {
    std::cerr << "irqlab test: --worker_timeout=" << c.worker_timeout
              << ": must be >= 0 seconds (0: none)\n";
    return kUsage;
  }
  absl::StatusOr<std::vector<SuiteCase>> cases = FindSuiteCases(c.args);
  if (!cases.ok()) {
    std::cerr << "irqlab test: " << cases.status().message() << "\n";
    return kUsage;
  }
  std::ofstream junit;
  if (!c.junit.empty()) {
    junit.open(c.junit, std::ios::binary | std::ios::trunc);
    if (!junit) {
      std::cerr << "irqlab test: --junit=" << c.junit << ": cannot write\n";
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
      std::cerr << "irqlab test: --junit=" << c.junit << ": write error\n";
      return kUsage;
    }
  }
  return passed == results.size() ? kOk : kFailed;
}

}  // namespace irqlab
