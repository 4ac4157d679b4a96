// The simulation's calendar: a plain C++ priority queue of timed callbacks, driven by one
// SystemC method. Blocks compute completion times and schedule one callback at that time instead
// of ticking a clock, so a DMA of many TLPs or a frame's serialization costs one event.
#pragma once
#include <systemc>
#include <cstdint>
#include <vector>

#include "model/core/inplace_function.h"
#include "model/core/units.h"

namespace rn {

using Callback = InplaceFunction<void(), 48>;

class EventQueue : public sc_core::sc_module {
 public:
  explicit EventQueue(sc_core::sc_module_name name);

  // Current simulated time in picoseconds.
  Tick now() const { return static_cast<Tick>(sc_core::sc_time_stamp().value()); }

  // Runs `cb` at absolute time `when` (>= now). Callbacks at equal times run in scheduling order.
  void at(Tick when, Callback cb);
  void after(Tick delay, Callback cb) { at(now() + delay, std::move(cb)); }

  uint64_t events_executed() const { return executed_; }
  size_t pending() const { return heap_.size(); }
  // Removes every pending callback (end of a run).
  void clear();

 private:
  struct Entry {
    Tick when;
    uint64_t seq;
    uint32_t slot;
  };
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const {
      return a.when != b.when ? a.when > b.when : a.seq > b.seq;
    }
  };
  void run();
  void arm();

  sc_core::sc_event wake_;
  std::vector<Entry> heap_;
  std::vector<Callback> slots_;
  std::vector<uint32_t> free_slots_;
  uint64_t seq_ = 0;
  uint64_t executed_ = 0;
  Tick armed_for_ = kTickNever;
  bool in_run_ = false;
};

}  // namespace rn
