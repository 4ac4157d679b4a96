// The per-run simulation context handed to every block: the calendar, the statistics registry and
// the logger. There is no global simulator state besides SystemC's own kernel.
#pragma once
#include "model/core/event_queue.h"
#include "model/core/log.h"
#include "model/core/stats.h"

namespace rn {

struct Sim {
  explicit Sim(EventQueue& q) : eq(q) {}
  EventQueue& eq;
  stats::Registry stats;
  Logger log;
  Tick now() const { return eq.now(); }
};

}  // namespace rn
