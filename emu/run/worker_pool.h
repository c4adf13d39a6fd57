// A pool of forked worker processes, one per work item: what runs
// `irqlab campaign` seeds and `irqlab test` scenarios, so that a crash
// (signal, sanitizer abort, exit) or a hang of one item is recorded and the
// others go on.
//
// The contract of RunInWorkers(n, options, work, done):
//   - work(i) runs in a fork()ed child, at most `options.jobs` at a time,
//     with stdin and stdout on /dev/null and stderr captured (its last
//     WorkerResult::kStderrTail bytes are kept). The string it returns is
//     sent back to the parent through a pipe, with a length trailer, and the
//     child leaves with _exit(0) (no atexit handlers, no flushing of the
//     parent's buffers; the parent flushes std::cout, std::cerr and stdio
//     before each fork, so nothing buffered is written twice).
//   - A child that dies by a signal is kSignaled; one that exits before its
//     result arrived whole (exit(), _exit(), a truncated result) is kExited
//     without a result (has_result false); one that runs past
//     `options.timeout_seconds` of wall clock is killed with SIGKILL and is
//     kTimedOut. A pipe or fork that fails gives kExited with exit_code -1
//     ("could not be started") and the error in stderr_tail. Nothing is an
//     error of the pool itself: every item gets exactly one WorkerResult.
//   - done(i, result) is called in the parent in index order (0, 1, 2, ...),
//     each as soon as its item and all before it are complete, whatever the
//     order the children finish in. If it returns false, no more items start,
//     the running children are killed (SIGKILL) and reaped, and `done` is not
//     called again.
//   - options.progress (if set) is called in the parent after each item
//     completes, in completion order.
// While it runs, SIGCHLD has its default disposition (children are reaped
// with waitpid()); the previous disposition is restored on return.
//
// Thread-safety: call RunInWorkers from one thread of a process that is
// otherwise single-threaded (fork() copies only the calling thread, so a
// lock another thread holds stays held in the child; the SIGCHLD disposition
// is process-wide). `work`, `done` and `progress` are never called
// concurrently.
#ifndef IRQLAB_EMU_RUN_WORKER_POOL_H_
#define IRQLAB_EMU_RUN_WORKER_POOL_H_

#include <cstddef>
#include <functional>
#include <string>

namespace irqlab {

struct WorkerResult {
  enum class Kind {
    kExited,    // exited with `exit_code`
    kSignaled,  // killed by `signal`
    kTimedOut,  // exceeded the timeout, killed by SIGKILL
  };
  Kind kind = Kind::kExited;
  int exit_code = 0;
  int signal = 0;
  bool has_result = false;  // the work function returned and its result arrived whole
  std::string payload;      // what the work function returned (if has_result)
  std::string stderr_tail;  // the last kStderrTail bytes the child wrote to stderr
  double wall_seconds = 0;

  static constexpr size_t kStderrTail = 4096;
  bool ok() const { return kind == Kind::kExited && exit_code == 0 && has_result; }
  // "killed by SIGSEGV (Segmentation fault)", "exited with status 3 without
  // a result", "killed after 60 s wall clock (--worker_timeout)"; "" if ok().
  // Deaths other than a timeout end with ": " and the last line the child
  // wrote to stderr, if any.
  std::string Describe(double timeout_seconds) const;
};

struct WorkerPoolOptions {
  int jobs = 1;                   // worker processes at a time (< 1 counts as 1)
  double timeout_seconds = 0;     // wall clock per item; 0 = none
  // Called in the parent after each item completes (any order).
  std::function<void(size_t completed, size_t total)> progress;
};

// Runs work(i) for i in [0, n), each in a fork()ed child process with stdin
// and stdout on /dev/null and stderr captured; the string work(i) returns is
// sent back to the parent. `done` is called in the parent in index order
// (0, 1, 2, ...), as soon as the item and all before it are complete; if it
// returns false, no more items start and the running ones are killed. See
// the contract above.
// REQUIRES: `work` and `done` are callable.
void RunInWorkers(size_t n, const WorkerPoolOptions& options,
                  const std::function<std::string(size_t)>& work,
                  const std::function<bool(size_t, WorkerResult)>& done);

}  // namespace irqlab

#endif  // IRQLAB_EMU_RUN_WORKER_POOL_H_
