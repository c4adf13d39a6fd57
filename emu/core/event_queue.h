// EventQueue: the machine's single deterministic event queue (after gem5's
// src/sim/eventq.hh).
//
// Events run in the total order (time, priority, sequence number): earlier
// virtual time first; at equal time the lower EventPriority first; at equal
// time and priority, the one scheduled first. Nothing else (pointer values,
// hash order, wall-clock) influences the order, so a run replays exactly.
//
// Time is in ticks (see emu/core/clock.h). now() only moves forward: it becomes
// the time of the event being run, and RunUntil(t) leaves it at t.
//
// Example:
//
//   EventQueue q;
//   q.Schedule(100, EventPriority::kDeviceCompletion, "edu: dma done",
//              [&] { edu.CompleteDma(); });
//   q.Schedule(100, EventPriority::kVcpuWake, "cpu0: wake", [&] { ... });
//   q.RunUntil(*q.NextTime());  // runs the DMA completion, then the wake
//
// Not thread-safe (the machine runs on one host thread).
#ifndef IRQLAB_EMU_CORE_EVENT_QUEUE_H_
#define IRQLAB_EMU_CORE_EVENT_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "emu/core/clock.h"

namespace irqlab {

// Tie-breaker between events at the same virtual time. Lower runs first.
// Values are spaced so stages can be inserted later without renumbering;
// they never appear in traces, only their order matters.
//
// The order follows the interrupt path (ARCHITECTURE.md): state changes first,
// then interrupts are signalled and carried, then the hosts/vCPUs that react
// to them, then observers. An interrupt raised at tick t thus reaches a vCPU
// woken at tick t, and a vCPU never wakes for half of a tick's interrupts.
enum class EventPriority : int {
  // Scripted scenario actions and fault injection (register pokes, IRTE
  // corruption, dropped invalidations). First, so everything else at the
  // same tick sees the injected state, as the scenario author expects.
  kScenarioAction = 10,
  // A device finishes work (DMA done, firmware step) and updates its
  // registers / raises its interrupt source. Before any delivery at the same
  // tick so delivery sees the device's final state.
  kDeviceCompletion = 20,
  // A LAPIC timer expires (sets IRR like a device completion). After device
  // completions only by convention, so two same-tick sources have one fixed
  // order.
  kTimerExpiry = 30,
  // An interrupt in transit: MSI write through the IOMMU, IOAPIC (re)delivery
  // to the APIC bus. After the sources above so one tick's sources are all
  // signalled before they are carried.
  kInterruptDelivery = 40,
  // Host-side reactions to host interrupts delivered this tick (vfio/VMM
  // eventfd/irqfd injection, route cache updates). After delivery because
  // they consume it.
  kHostAction = 50,
  // Wake halted vCPUs / let vCPUs pick up pending interrupts. After every
  // interrupt of the tick is pending, so the vCPU sees all of them and
  // chooses by priority, not by arrival order inside one tick.
  kVcpuWake = 60,
  // End of tick: stop conditions, statistics, invariant checks. Last, so they
  // observe the complete state of the tick.
  kObserver = 70,
};

// "scenario-action", "device-completion", ... (for debug listings).
std::string_view EventPriorityName(EventPriority priority);

using EventId = uint64_t;

class EventQueue : public Clock {
 public:
  // An id no event ever has (Cancel() of it returns false).
  static constexpr EventId kInvalidEventId = 0;

  EventQueue() = default;
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;

  // Schedules `callback` to run at virtual time `time`. A time in the past
  // (time < now()) is clamped to now(): the event runs at the current tick,
  // ordered by (priority, sequence) among the events still pending there
  // (so from inside a callback, an event of lower priority than the running
  // one runs next, not in the past).
  // `name` labels the event in DebugString(). May be called from a callback.
  // Returns the event's id (never kInvalidEventId; ids are never reused).
  EventId Schedule(uint64_t time, EventPriority priority, std::string name,
                   std::function<void()> callback);

  // Removes a pending event. Returns true iff it was pending; false if it
  // already ran (or is running), was cancelled, or never existed.
  bool Cancel(EventId id);

  // Time of the earliest pending event, or nullopt if none.
  std::optional<uint64_t> NextTime() const;

  // Runs, in order, every event with time <= `time`, including events that
  // callbacks schedule at or before `time` while this runs. Before each
  // callback now() is set to its event's time; on return now() is
  // max(now(), time). Returns the number of events run.
  // REQUIRES: not called from inside a callback (such a call does nothing
  // and returns 0).
  size_t RunUntil(uint64_t time);

  // Current virtual time.
  uint64_t now() const { return now_; }
  // Clock interface: same as now().
  uint64_t Now() const override { return now_; }

  // Number of pending events.
  size_t size() const { return events_.size(); }
  // Changes whenever an event is scheduled (a generation count), so a
  // caller can tell that NextTime() cannot have moved earlier.
  uint64_t schedule_generation() const { return next_id_; }
  bool empty() const { return events_.empty(); }

  // Pending events in run order, one per line:
  // "t=0000000100 device-completion #3 edu: dma done".
  std::string DebugString() const;

 private:
  // (time, priority, sequence); the sequence number is also the EventId.
  using Key = std::tuple<uint64_t, EventPriority, EventId>;
  struct Event {
    std::string name;
    std::function<void()> callback;
  };

  uint64_t now_ = 0;
  EventId next_id_ = 1;
  bool running_ = false;
  std::map<Key, Event> events_;
  // Pending event id -> its key in events_, for Cancel().
  absl::flat_hash_map<EventId, Key> pending_;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CORE_EVENT_QUEUE_H_
