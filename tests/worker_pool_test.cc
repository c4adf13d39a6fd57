// The forked worker pool (emu/run/worker_pool.h): results in index order from
// separate processes; crashes, exits without a result and timeouts recorded
// while the other items go on; stopping early; large results.
#include "emu/run/worker_pool.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace irqlab {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(WorkerPoolTest, ResultsArriveInIndexOrderFromSeparateProcesses) {
  std::vector<std::pair<size_t, std::string>> got;
  WorkerPoolOptions o;
  o.jobs = 3;
  size_t progress_calls = 0;
  o.progress = [&](size_t done, size_t total) {
    ++progress_calls;
    EXPECT_LE(done, total);
  };
  const pid_t parent = getpid();
  RunInWorkers(
      10, o,
      [&](size_t i) {
        // Later items finish first: delivery must still be in order.
        usleep(static_cast<useconds_t>((10 - i) * 2000));
        return absl::StrCat("item ", i, " pid-differs ", getpid() != parent);
      },
      [&](size_t i, WorkerResult r) {
        EXPECT_TRUE(r.ok()) << r.Describe(0);
        got.emplace_back(i, r.payload);
        return true;
      });
  ASSERT_EQ(got.size(), 10u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].first, i);
    EXPECT_EQ(got[i].second, absl::StrCat("item ", i, " pid-differs 1"));
  }
  EXPECT_EQ(progress_calls, 10u);
}

// Rule: a worker that dies (signal, abort, exit without a result) or hangs
// is recorded; the items around it still run.
TEST(WorkerPoolTest, CrashesExitsAndTimeoutsAreRecordedAndTheRestGoesOn) {
  WorkerPoolOptions o;
  o.jobs = 2;
  o.timeout_seconds = 0.5;
  std::vector<WorkerResult> got(6);
  std::vector<bool> seen(6, false);
  const auto start = std::chrono::steady_clock::now();
  RunInWorkers(
      6, o,
      [](size_t i) -> std::string {
        switch (i) {
          case 1:
            kill(getpid(), SIGKILL);
            break;
          case 2:
            fprintf(stderr, "about to abort\n");
            abort();
          case 3:
            fprintf(stderr, "first line\nlast words\n");
            _exit(3);
          case 4:
            sleep(30);
            break;
          default:
            break;
        }
        return absl::StrCat("ok ", i);
      },
      [&](size_t i, WorkerResult r) {
        seen[i] = true;
        got[i] = std::move(r);
        return true;
      });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 10.0);  // the sleeping worker was killed
  for (size_t i = 0; i < 6; ++i) EXPECT_TRUE(seen[i]) << i;
  EXPECT_TRUE(got[0].ok());
  EXPECT_EQ(got[0].payload, "ok 0");
  EXPECT_TRUE(got[5].ok());
  EXPECT_EQ(got[5].payload, "ok 5");

  EXPECT_EQ(got[1].kind, WorkerResult::Kind::kSignaled);
  EXPECT_EQ(got[1].signal, SIGKILL);
  EXPECT_THAT(got[1].Describe(0.5), HasSubstr("killed by SIGKILL"));

  EXPECT_EQ(got[2].kind, WorkerResult::Kind::kSignaled);
  EXPECT_EQ(got[2].signal, SIGABRT);
  EXPECT_THAT(got[2].Describe(0.5), HasSubstr("SIGABRT"));
  EXPECT_THAT(got[2].Describe(0.5), HasSubstr("about to abort"));

  EXPECT_EQ(got[3].kind, WorkerResult::Kind::kExited);
  EXPECT_EQ(got[3].exit_code, 3);
  EXPECT_EQ(got[3].payload, "");
  EXPECT_THAT(got[3].stderr_tail, HasSubstr("first line\nlast words\n"));
  EXPECT_EQ(got[3].Describe(0.5), "exited with status 3 without a result: last words");

  EXPECT_EQ(got[4].kind, WorkerResult::Kind::kTimedOut);
  EXPECT_GE(got[4].wall_seconds, 0.5);
  EXPECT_THAT(got[4].Describe(0.5), HasSubstr("killed after 0.5 s wall clock"));
}

// Rule: `done` returning false stops the pool: nothing new starts, running
// workers are killed, nothing more is delivered.
TEST(WorkerPoolTest, StoppingKillsTheRunningWorkers) {
  WorkerPoolOptions o;
  o.jobs = 2;
  std::vector<size_t> delivered;
  const auto start = std::chrono::steady_clock::now();
  RunInWorkers(
      20, o,
      [](size_t i) -> std::string {
        if (i != 0) sleep(30);
        return "x";
      },
      [&](size_t i, WorkerResult) {
        delivered.push_back(i);
        return false;
      });
  EXPECT_THAT(delivered, ElementsAre(0u));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
            10.0);
}

// Rule: the worker's stdout does not reach the runner's stdout (only the
// result does), and large results arrive whole.
TEST(WorkerPoolTest, LargeResultsArriveWhole) {
  WorkerPoolOptions o;
  o.jobs = 2;
  std::vector<std::string> got;
  RunInWorkers(
      3, o,
      [](size_t i) {
        printf("noise on stdout\n");
        return std::string(300000 + i, static_cast<char>('a' + i));
      },
      [&](size_t, WorkerResult r) {
        got.push_back(r.payload);
        return true;
      });
  ASSERT_EQ(got.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(got[i], std::string(300000 + i, static_cast<char>('a' + i)));
  }
}

}  // namespace
}  // namespace irqlab
