// The simulation's calendar: a plain C++ priority queue of timed callbacks, driven by one
// SystemC method. Blocks compute completion times and schedule one callback at that time instead
// of ticking a clock, so a DMA of many TLPs or a frame's serialization costs one event.
#pragma once
#include <cstdint>
#include <systemc>
#include <vector>

#include "model/core/inplace_function.h"
#include "model/core/units.h"

namespace rn {

using Callback = InplaceFunction<void(), 48>;

// Sets SystemC's time resolution to 1 ps (one Tick), once per process, before any sc_time is
// made; throws std::logic_error if SystemC's resolution is another one (an sc_time was made
// before with another resolution). EventQueue's constructor calls it.
void use_picosecond_resolution();

class EventQueue : public sc_core::sc_module {
 public:
  explicit EventQueue(sc_core::sc_module_name name);

  // Current simulated time in picoseconds: the time of the callback being run, or SystemC's time
  // outside callbacks. While no other SystemC process has anything to do before the next
  // callback, the queue runs callbacks ahead of SystemC's clock instead of waking SystemC for
  // each of them (see run()); model code must read time through now(), never sc_time_stamp().
  Tick now() const { return in_run_ ? now_ : sc_now(); }
  static Tick sc_now() { return static_cast<Tick>(sc_core::sc_time_stamp().value()); }

  // Runs the simulation for `duration` (sc_start), letting callbacks run ahead of SystemC's clock
  // up to its end. With a plain sc_start() the queue never runs ahead: SystemC does not say
  // where a run will stop.
  void start(Tick duration);

  // Notifies a SystemC event at now() (from a callback that may run ahead of SystemC's clock).
  // Callbacks must notify SystemC events through this, never directly: the queue then knows how
  // far it may run ahead.
  void notify(sc_core::sc_event& e);
  // Latest time a callback has run at (may be ahead of SystemC's time at the end of a run).
  Tick last_time() const { return last_time_; }

  // Runs `cb` at absolute time `when` (>= now). Callbacks at equal times run in scheduling order.
  void at(Tick when, Callback cb);
  // Lanes: for a source whose callbacks come in time order (a FIFO link's arrivals, a DMA
  // engine's completions). at(lane, ...) keeps them in a ring instead of the heap: cheaper, same
  // order of execution as at() (by time, then scheduling order). A time earlier than the lane's
  // last one goes to the heap instead, so any order stays correct.
  int new_lane();
  void at(int lane, Tick when, Callback cb);
  void after(Tick delay, Callback cb) { at(now() + delay, std::move(cb)); }

  uint64_t events_executed() const { return executed_; }
  size_t pending() const;
  // Time of the earliest pending callback, kTickNever if there is none.
  Tick next_time() const;
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
  void check_time(Tick when) const;  // throws if `when` is in the past
  uint32_t put_slot(Callback cb);
  struct Lane {
    std::vector<Entry> ring;  // power-of-two capacity
    size_t head = 0, count = 0;
    Tick last = 0;
    const Entry& front() const { return ring[head]; }
  };
  std::vector<Lane> lanes_;
  // The earliest pending entry: -1 for the heap's top, else a lane; false if none.
  bool earliest(int* src, const Entry** e) const;

  sc_core::sc_event wake_;
  std::vector<Entry> heap_;
  std::vector<Callback> slots_;
  std::vector<uint32_t> free_slots_;
  uint64_t seq_ = 0;
  uint64_t executed_ = 0;
  Tick armed_for_ = kTickNever;
  bool in_run_ = false;
  Tick now_ = 0;
  Tick last_time_ = 0;
  Tick run_ahead_limit_ = 0;  // callbacks at or after this time wait for SystemC's clock
  // Time of SystemC's next activity other than this queue's, as last asked (valid while
  // horizon_known_). Only notify() can bring it closer while callbacks run.
  Tick horizon_ = 0;
  bool horizon_known_ = false;
  uint64_t activations_ = 0;

 public:
  // SystemC activations of the queue (each may run many callbacks).
  uint64_t activations() const { return activations_; }
};

}  // namespace rn
