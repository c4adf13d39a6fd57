#include "emu/run/worker_pool.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "emu/core/check.h"

namespace irqlab {
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

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

struct Worker {
  // Closes the worker's pipes and pidfd (in the parent: output left unread
  // is not needed; in a child: they belong to its siblings).
  void CloseFds() {
    CloseFd(&result_fd);
    CloseFd(&err_fd);
    CloseFd(&pid_fd);
  }

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

}  // namespace

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

void RunInWorkers(size_t n, const WorkerPoolOptions& options,
                  const std::function<std::string(size_t)>& work,
                  const std::function<bool(size_t, WorkerResult)>& done) {
  IRQLAB_DCHECK(work != nullptr && done != nullptr);
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

  // An item whose worker could not be started: `what` failed with `err`.
  auto not_started = [&](size_t index, const char* what, int err) {
    WorkerResult r;
    r.exit_code = -1;
    r.stderr_tail = absl::StrCat(what, ": ", std::strerror(err));
    complete(index, std::move(r));
  };

  auto spawn = [&](size_t index) {
    int result_pipe[2], err_pipe[2];
    if (pipe2(result_pipe, O_CLOEXEC) != 0) {
      not_started(index, "pipe", errno);
      return;
    }
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
      const int err = errno;
      close(result_pipe[0]);
      close(result_pipe[1]);
      not_started(index, "pipe", err);
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
      for (Worker& w : running) w.CloseFds();
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
    if (pid < 0) {
      const int err = errno;
      for (int fd : {result_pipe[0], result_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
      not_started(index, "fork", err);
      return;
    }
    close(result_pipe[1]);
    close(err_pipe[1]);
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
      w.CloseFds();
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
    w.CloseFds();
    int status = 0;
    while (waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  sigaction(SIGCHLD, &old_chld, nullptr);
}

}  // namespace irqlab
