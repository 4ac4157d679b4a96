#include "model/core/event_queue.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace rn {

EventQueue::EventQueue(sc_core::sc_module_name name) : sc_core::sc_module(name) {
  heap_.reserve(4096);
  slots_.reserve(4096);
  free_slots_.reserve(4096);
  SC_HAS_PROCESS(EventQueue);
  SC_METHOD(run);
  sensitive << wake_;
  dont_initialize();
}

void EventQueue::at(Tick when, Callback cb) {
  Tick t = now();
  if (when < t) {
    throw std::logic_error("EventQueue::at: time " + std::to_string(when) + " ps is in the past (now " +
                           std::to_string(t) + " ps)");
  }
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
    slots_[slot] = std::move(cb);
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(std::move(cb));
  }
  heap_.push_back(Entry{when, seq_++, slot});
  std::push_heap(heap_.begin(), heap_.end(), Later{});
  if (!in_run_ && when < armed_for_) arm();
}

void EventQueue::arm() {
  if (heap_.empty()) {
    armed_for_ = kTickNever;
    return;
  }
  Tick when = heap_.front().when;
  Tick t = now();
  armed_for_ = when;
  if (when == t) {
    wake_.notify(sc_core::SC_ZERO_TIME);
  } else {
    wake_.notify(sc_core::sc_time::from_value(when - t));
  }
}

void EventQueue::run() {
  Tick t = now();
  armed_for_ = kTickNever;
  in_run_ = true;
  while (!heap_.empty() && heap_.front().when <= t) {
    std::pop_heap(heap_.begin(), heap_.end(), Later{});
    uint32_t slot = heap_.back().slot;
    heap_.pop_back();
    Callback cb = std::move(slots_[slot]);
    free_slots_.push_back(slot);
    ++executed_;
    cb();
  }
  in_run_ = false;
  arm();
}

void EventQueue::clear() {
  heap_.clear();
  slots_.clear();
  free_slots_.clear();
  wake_.cancel();
  armed_for_ = kTickNever;
}

}  // namespace rn
