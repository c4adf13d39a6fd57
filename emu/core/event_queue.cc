#include "emu/core/event_queue.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"

namespace irqlab {

std::string_view EventPriorityName(EventPriority priority) {
  switch (priority) {
    case EventPriority::kScenarioAction:
      return "scenario-action";
    case EventPriority::kDeviceCompletion:
      return "device-completion";
    case EventPriority::kTimerExpiry:
      return "timer-expiry";
    case EventPriority::kInterruptDelivery:
      return "interrupt-delivery";
    case EventPriority::kHostAction:
      return "host-action";
    case EventPriority::kVcpuWake:
      return "vcpu-wake";
    case EventPriority::kObserver:
      return "observer";
  }
  return "unknown";
}

EventId EventQueue::Schedule(uint64_t time, EventPriority priority,
                             std::string name,
                             std::function<void()> callback) {
  const EventId id = next_id_++;
  const Key key{std::max(time, now_), priority, id};
  events_.emplace(key, Event{std::move(name), std::move(callback)});
  pending_.emplace(id, key);
  return id;
}

bool EventQueue::Cancel(EventId id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return false;
  events_.erase(it->second);
  pending_.erase(it);
  return true;
}

std::optional<uint64_t> EventQueue::NextTime() const {
  if (events_.empty()) return std::nullopt;
  return std::get<0>(events_.begin()->first);
}

size_t EventQueue::RunUntil(uint64_t time) {
  if (running_) return 0;
  running_ = true;
  size_t ran = 0;
  while (!events_.empty()) {
    auto it = events_.begin();
    const uint64_t event_time = std::get<0>(it->first);
    if (event_time > time) break;
    // Take the event out before running it, so the callback may schedule,
    // cancel (itself: returns false) and see an accurate size().
    std::function<void()> callback = std::move(it->second.callback);
    pending_.erase(std::get<2>(it->first));
    events_.erase(it);
    now_ = event_time;  // >= now_: Schedule() clamps to now_.
    if (callback) callback();
    ++ran;
  }
  now_ = std::max(now_, time);
  running_ = false;
  return ran;
}

std::string EventQueue::DebugString() const {
  std::string out;
  for (const auto& [key, event] : events_) {
    absl::StrAppendFormat(&out, "t=%010d %s #%d %s\n", std::get<0>(key),
                          EventPriorityName(std::get<1>(key)),
                          std::get<2>(key), event.name);
  }
  return out;
}

}  // namespace irqlab
