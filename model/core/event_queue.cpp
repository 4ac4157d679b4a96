#include "model/core/event_queue.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "model/core/hot.h"

namespace rn {

void use_picosecond_resolution() {
  static bool done = false;
  if (done) return;
  try {
    sc_core::sc_set_time_resolution(1, sc_core::SC_PS);
  } catch (const sc_core::sc_report&) {
    // Already fixed (an sc_time was made first): fine if it is 1 ps, checked below.
  }
  if (sc_core::sc_get_time_resolution() != sc_core::sc_time(1, sc_core::SC_PS))
    throw std::logic_error("SystemC's time resolution is " +
                           sc_core::sc_get_time_resolution().to_string() +
                           ", the model counts picoseconds: an sc_time was made before "
                           "rn::use_picosecond_resolution()");
  done = true;
}

EventQueue::EventQueue(sc_core::sc_module_name name)
    : sc_core::sc_module((use_picosecond_resolution(), name)) {
  heap_.reserve(4096);
  slots_.reserve(4096);
  free_slots_.reserve(4096);
  SC_HAS_PROCESS(EventQueue);
  SC_METHOD(run);
  sensitive << wake_;
  dont_initialize();
}

RN_HOT void EventQueue::check_time(Tick when) const {
  Tick t = now();
  if (!in_run_ && run_ahead_limit_ > 0 && when < last_time_) {
    throw std::logic_error("EventQueue::at: time " + std::to_string(when) +
                           " ps is before callbacks already run ahead (up to " +
                           std::to_string(last_time_) +
                           " ps): a callback woke a SystemC process without EventQueue::notify");
  }
  if (when < t) {
    throw std::logic_error("EventQueue::at: time " + std::to_string(when) +
                           " ps is in the past (now " + std::to_string(t) + " ps)");
  }
}

RN_HOT uint32_t EventQueue::put_slot(Callback cb) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
    slots_[slot] = std::move(cb);
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(std::move(cb));
  }
  return slot;
}

RN_HOT void EventQueue::at(Tick when, Callback cb) {
  check_time(when);
  heap_.push_back(Entry{when, seq_++, put_slot(std::move(cb))});
  std::push_heap(heap_.begin(), heap_.end(), Later{});
  if (!in_run_ && when < armed_for_) arm();
}

int EventQueue::new_lane() {
  lanes_.emplace_back();
  lanes_.back().ring.resize(64);
  return static_cast<int>(lanes_.size() - 1);
}

RN_HOT void EventQueue::at(int lane, Tick when, Callback cb) {
  Lane& l = lanes_.at(static_cast<size_t>(lane));
  if (l.count && when < l.last) {  // out of order for this lane: the heap keeps it right
    at(when, std::move(cb));
    return;
  }
  check_time(when);
  if (l.count == l.ring.size()) {  // full: double, oldest first
    std::vector<Entry> bigger(l.ring.size() * 2);
    for (size_t i = 0; i < l.count; ++i) bigger[i] = l.ring[(l.head + i) & (l.ring.size() - 1)];
    l.ring.swap(bigger);
    l.head = 0;
  }
  l.ring[(l.head + l.count) & (l.ring.size() - 1)] = Entry{when, seq_++, put_slot(std::move(cb))};
  ++l.count;
  l.last = when;
  if (!in_run_ && when < armed_for_) arm();
}

size_t EventQueue::pending() const {
  size_t n = heap_.size();
  for (const Lane& l : lanes_) n += l.count;
  return n;
}

Tick EventQueue::next_time() const {
  int src;
  const Entry* e;
  return earliest(&src, &e) ? e->when : kTickNever;
}

RN_HOT bool EventQueue::earliest(int* src, const Entry** e) const {
  *src = -2;
  *e = nullptr;
  if (!heap_.empty()) {
    *src = -1;
    *e = &heap_.front();
  }
  for (size_t i = 0; i < lanes_.size(); ++i) {
    const Lane& l = lanes_[i];
    if (l.count && (!*e || Later{}(**e, l.front()))) {
      *src = static_cast<int>(i);
      *e = &l.front();
    }
  }
  return *e != nullptr;
}

void EventQueue::arm() {
  int src;
  const Entry* e;
  if (!earliest(&src, &e)) {
    armed_for_ = kTickNever;
    return;
  }
  Tick when = e->when;
  Tick t = sc_now();
  armed_for_ = when;
  if (when <= t) {
    wake_.notify(sc_core::SC_ZERO_TIME);
  } else {
    wake_.notify(sc_core::sc_time::from_value(when - t));
  }
}

void EventQueue::start(Tick duration) {
  Tick t = sc_now();
  run_ahead_limit_ = duration > kTickNever - t ? kTickNever : t + duration;
  sc_core::sc_start(sc_core::sc_time::from_value(duration));
  run_ahead_limit_ = 0;
}

void EventQueue::notify(sc_core::sc_event& e) {
  horizon_known_ = false;  // SystemC has new activity: ask again
  Tick t = sc_now();
  Tick n = now();
  if (n <= t) {
    e.notify(sc_core::SC_ZERO_TIME);
  } else {
    e.notify(sc_core::sc_time::from_value(n - t));
  }
}

RN_HOT void EventQueue::run() {
  const Tick t = sc_now();
  armed_for_ = kTickNever;
  in_run_ = true;
  ++activations_;
  // Callbacks due now run in any case. Later ones run at once too, ahead of SystemC's clock,
  // as long as no other SystemC process has activity pending before them: nothing else in the
  // simulation can observe the difference, and each SystemC wake-up saved is worth several
  // callbacks. The horizon is asked again after a callback notified a SystemC event (a host
  // thread's wake-up): callbacks do that only through notify(), which forgets it.
  horizon_known_ = false;
  int src;
  const Entry* e;
  while (earliest(&src, &e)) {
    Tick when = e->when;
    if (when > t) {
      if (when >= run_ahead_limit_) break;
      if (!horizon_known_) {
        const Tick gap = static_cast<Tick>(sc_core::sc_time_to_pending_activity().value());
        horizon_ = gap > kTickNever - t ? kTickNever : t + gap;
        horizon_known_ = true;
      }
      if (when >= horizon_) break;
    }
    uint32_t slot = e->slot;
    if (src < 0) {
      std::pop_heap(heap_.begin(), heap_.end(), Later{});
      heap_.pop_back();
    } else {
      Lane& l = lanes_[static_cast<size_t>(src)];
      l.head = (l.head + 1) & (l.ring.size() - 1);
      --l.count;
    }
    Callback cb = std::move(slots_[slot]);
    free_slots_.push_back(slot);
    ++executed_;
    now_ = when;
    if (when > last_time_) last_time_ = when;
    cb();
  }
  in_run_ = false;
  arm();
}

void EventQueue::clear() {
  heap_.clear();
  for (Lane& l : lanes_) l.head = l.count = 0;
  slots_.clear();
  free_slots_.clear();
  wake_.cancel();
  armed_for_ = kTickNever;
}

}  // namespace rn
