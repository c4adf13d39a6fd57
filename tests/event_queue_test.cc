// Tests of emu/core/event_queue.h: deterministic (time, priority, sequence) order.
#include "emu/core/event_queue.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace irqlab {
namespace {

using ::testing::ElementsAre;

// Events run in virtual-time order regardless of scheduling order.
TEST(EventQueueTest, EventsRunInTimeOrder) {
  EventQueue q;
  std::vector<std::string> log;
  q.Schedule(300, EventPriority::kDeviceCompletion, "c", [&] { log.push_back("c"); });
  q.Schedule(100, EventPriority::kDeviceCompletion, "a", [&] { log.push_back("a"); });
  q.Schedule(200, EventPriority::kDeviceCompletion, "b", [&] { log.push_back("b"); });
  EXPECT_EQ(q.RunUntil(1000), 3u);
  EXPECT_THAT(log, ElementsAre("a", "b", "c"));
}

// At equal time the lower EventPriority runs first: a device completion
// before the interrupt it raises is carried, before the vCPU wakes.
TEST(EventQueueTest, EqualTimeRunsByPriority) {
  EventQueue q;
  std::vector<std::string> log;
  q.Schedule(50, EventPriority::kObserver, "obs", [&] { log.push_back("obs"); });
  q.Schedule(50, EventPriority::kVcpuWake, "wake", [&] { log.push_back("wake"); });
  q.Schedule(50, EventPriority::kHostAction, "host", [&] { log.push_back("host"); });
  q.Schedule(50, EventPriority::kInterruptDelivery, "msi", [&] { log.push_back("msi"); });
  q.Schedule(50, EventPriority::kTimerExpiry, "timer", [&] { log.push_back("timer"); });
  q.Schedule(50, EventPriority::kDeviceCompletion, "dev", [&] { log.push_back("dev"); });
  q.Schedule(50, EventPriority::kScenarioAction, "act", [&] { log.push_back("act"); });
  q.RunUntil(50);
  EXPECT_THAT(log, ElementsAre("act", "dev", "timer", "msi", "host", "wake", "obs"));
}

// At equal time and priority, insertion (sequence) order decides.
TEST(EventQueueTest, EqualTimeAndPriorityRunsInInsertionOrder) {
  EventQueue q;
  std::vector<int> log;
  for (int i = 0; i < 10; ++i) {
    q.Schedule(7, EventPriority::kHostAction, "e", [&log, i] { log.push_back(i); });
  }
  q.RunUntil(7);
  EXPECT_THAT(log, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9));
}

// RunUntil(t) runs exactly the events with time <= t, sets now() to each
// event's time while it runs, and leaves now() at t.
TEST(EventQueueTest, RunUntilStopsAtTimeAndAdvancesNow) {
  EventQueue q;
  std::vector<uint64_t> seen_now;
  q.Schedule(10, EventPriority::kHostAction, "a", [&] { seen_now.push_back(q.now()); });
  q.Schedule(20, EventPriority::kHostAction, "b", [&] { seen_now.push_back(q.Now()); });
  q.Schedule(21, EventPriority::kHostAction, "c", [&] { seen_now.push_back(q.now()); });
  EXPECT_EQ(q.NextTime(), 10u);
  EXPECT_EQ(q.RunUntil(20), 2u);
  EXPECT_THAT(seen_now, ElementsAre(10u, 20u));
  EXPECT_EQ(q.now(), 20u);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.NextTime(), 21u);
  EXPECT_EQ(q.RunUntil(15), 0u);  // never goes back
  EXPECT_EQ(q.now(), 20u);
  EXPECT_EQ(q.RunUntil(100), 1u);
  EXPECT_EQ(q.now(), 100u);
  EXPECT_EQ(q.NextTime(), std::nullopt);
  EXPECT_TRUE(q.empty());
}

// Scheduling in the past clamps to now(): the event runs at the current time,
// not "before" it.
TEST(EventQueueTest, SchedulingInThePastClampsToNow) {
  EventQueue q;
  q.RunUntil(500);
  uint64_t ran_at = 0;
  q.Schedule(100, EventPriority::kHostAction, "late", [&] { ran_at = q.now(); });
  EXPECT_EQ(q.NextTime(), 500u);
  EXPECT_EQ(q.RunUntil(500), 1u);
  EXPECT_EQ(ran_at, 500u);
}

// A cancelled event never runs; Cancel reports whether it was pending.
TEST(EventQueueTest, CancelledEventDoesNotRun) {
  EventQueue q;
  std::vector<std::string> log;
  EventId a = q.Schedule(10, EventPriority::kHostAction, "a", [&] { log.push_back("a"); });
  EventId b = q.Schedule(10, EventPriority::kHostAction, "b", [&] { log.push_back("b"); });
  EXPECT_NE(a, b);
  EXPECT_NE(a, EventQueue::kInvalidEventId);
  EXPECT_TRUE(q.Cancel(a));
  EXPECT_FALSE(q.Cancel(a));  // already cancelled
  EXPECT_FALSE(q.Cancel(EventQueue::kInvalidEventId));
  EXPECT_EQ(q.size(), 1u);
  q.RunUntil(10);
  EXPECT_THAT(log, ElementsAre("b"));
  EXPECT_FALSE(q.Cancel(b));  // already ran
}

// Callbacks may schedule events at the current time (they run in this same
// RunUntil call, in (priority, sequence) order among what is left), later
// times <= the limit (also run), and beyond it (left pending); they may also
// cancel a pending event.
TEST(EventQueueTest, CallbacksMayScheduleAndCancelReentrantly) {
  EventQueue q;
  std::vector<std::string> log;
  EventId victim = 0;
  q.Schedule(10, EventPriority::kInterruptDelivery, "msi", [&] {
    log.push_back("msi@" + std::to_string(q.now()));
    q.Schedule(10, EventPriority::kVcpuWake, "wake",
               [&] { log.push_back("wake@" + std::to_string(q.now())); });
    q.Schedule(10, EventPriority::kDeviceCompletion, "dev",
               [&] { log.push_back("dev@" + std::to_string(q.now())); });
    q.Schedule(15, EventPriority::kHostAction, "later",
               [&] { log.push_back("later@" + std::to_string(q.now())); });
    q.Schedule(99, EventPriority::kHostAction, "beyond", [] {});
    EXPECT_TRUE(q.Cancel(victim));
  });
  q.Schedule(10, EventPriority::kHostAction, "host",
             [&] { log.push_back("host@" + std::to_string(q.now())); });
  victim = q.Schedule(12, EventPriority::kHostAction, "victim",
                      [&] { log.push_back("victim"); });
  EXPECT_EQ(q.RunUntil(20), 5u);
  // "dev" has a lower priority value than "host", so it runs next even
  // though it was scheduled later; "wake" runs after "host".
  EXPECT_THAT(log, ElementsAre("msi@10", "dev@10", "host@10", "wake@10", "later@15"));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.NextTime(), 99u);
}

// An event cancelling itself from its own callback gets false (it is no
// longer pending), and nested RunUntil from a callback does nothing.
TEST(EventQueueTest, SelfCancelAndNestedRunUntilAreHarmless) {
  EventQueue q;
  EventId self = 0;
  bool cancel_result = true;
  size_t nested = 99;
  q.Schedule(5, EventPriority::kHostAction, "other", [] {});
  self = q.Schedule(1, EventPriority::kHostAction, "self", [&] {
    cancel_result = q.Cancel(self);
    nested = q.RunUntil(100);
  });
  EXPECT_EQ(q.RunUntil(1), 1u);
  EXPECT_FALSE(cancel_result);
  EXPECT_EQ(nested, 0u);
  EXPECT_EQ(q.size(), 1u);  // "other" was not run by the nested call
}

// DebugString lists pending events in run order with their priority names.
TEST(EventQueueTest, DebugStringListsPendingEventsInOrder) {
  EventQueue q;
  q.Schedule(200, EventPriority::kVcpuWake, "cpu0: wake", [] {});
  q.Schedule(100, EventPriority::kDeviceCompletion, "edu: dma done", [] {});
  EXPECT_EQ(q.DebugString(),
            "t=0000000100 device-completion #2 edu: dma done\n"
            "t=0000000200 vcpu-wake #1 cpu0: wake\n");
}

constexpr EventPriority kAllPriorities[] = {
    EventPriority::kScenarioAction, EventPriority::kDeviceCompletion,
    EventPriority::kTimerExpiry,    EventPriority::kInterruptDelivery,
    EventPriority::kHostAction,     EventPriority::kVcpuWake,
    EventPriority::kObserver};

// The total order: a random schedule (fixed seed) with random cancellations
// runs exactly the surviving events, sorted by (time, priority, sequence).
TEST(EventQueueTest, RandomScheduleRunsInKeyOrder) {
  using Key = std::tuple<uint64_t, EventPriority, EventId>;
  EventQueue q;
  std::mt19937_64 rng(42);
  std::vector<Key> expected, order;
  std::vector<EventId> ids;
  for (int i = 0; i < 5000; ++i) {
    const uint64_t t = rng() % 300;
    const EventPriority p = kAllPriorities[rng() % 7];
    auto holder = std::make_shared<EventId>(0);
    *holder = q.Schedule(t, p, "e", [&order, t, p, holder] {
      order.emplace_back(t, p, *holder);
    });
    ids.push_back(*holder);
    expected.emplace_back(t, p, *holder);
  }
  for (int i = 0; i < 500; ++i) {
    const EventId id = ids[rng() % ids.size()];
    if (q.Cancel(id)) {
      std::erase_if(expected, [id](const Key& k) { return std::get<2>(k) == id; });
    }
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(q.RunUntil(~uint64_t{0}), expected.size());
  EXPECT_EQ(order, expected);
  EXPECT_GT(expected.size(), 4000u);
}

// Determinism: the same random workload (fixed seed), with callbacks that
// schedule more events and cancel pending ones, gives the same run log in two
// independent queues; virtual time never goes backwards.
TEST(EventQueueTest, ReentrantRandomWorkloadIsDeterministic) {
  const auto run = [](uint64_t seed) {
    EventQueue q;
    std::mt19937_64 rng(seed);
    std::vector<std::pair<uint64_t, std::string>> log;
    std::vector<EventId> ids;
    std::function<void(int, int)> schedule = [&](int depth, int n) {
      const uint64_t t = q.now() + rng() % 50;
      const EventPriority p = kAllPriorities[rng() % 7];
      const std::string name = absl::StrCat("e", depth, ".", n);
      ids.push_back(q.Schedule(t, p, name, [&, name, depth] {
        log.emplace_back(q.now(), name);
        if (depth < 4 && rng() % 2) schedule(depth + 1, rng() % 1000);
        if (rng() % 8 == 0) q.Cancel(ids[rng() % ids.size()]);
      }));
    };
    for (int i = 0; i < 2000; ++i) schedule(0, i);
    q.RunUntil(~uint64_t{0});
    return log;
  };
  const auto a = run(7), b = run(7);
  EXPECT_EQ(a, b);
  EXPECT_GT(a.size(), 2000u);
  for (size_t i = 1; i < a.size(); ++i) ASSERT_LE(a[i - 1].first, a[i].first);
}

}  // namespace
}  // namespace irqlab
