// The completion engine: writes CQEs into CQ rings in host memory by DMA (with the phase bit),
// detects CQ overrun, and raises completion events (EQEs plus an MSI-X message) for armed CQs.
#pragma once
#include "bridge/pcie/pcie_bridge.h"
#include "model/core/stats.h"
#include "model/qp/qp_table.h"

namespace rn::qp {

struct CqeInfo {
  uint64_t wr_id = 0;
  uint32_t byte_len = 0;
  uint32_t imm = 0;
  uint32_t qpn = 0;
  uint32_t src_qp = 0;
  uint32_t wqe_counter = 0;
  dev::WcOpcode opcode = dev::WcOpcode::SEND;
  dev::WcStatus status = dev::WcStatus::SUCCESS;
  uint8_t flags = 0;
  uint8_t vendor_err = 0;
  bool solicited = false;
};

class Completion {
 public:
  Completion(const NicEnv& env, QpTable& t, pcie::DmaPort& dma);
  ~Completion();
  // Writes a CQE no earlier than `not_before` (after the data it reports, by PCIe ordering).
  void post_cqe(uint32_t cqn, const CqeInfo& c, Tick not_before);
  void post_eqe(dev::EqeType type, uint32_t obj, uint32_t data, Tick not_before);
  // Sends the MSI-X message if the EQ is armed and the vector unmasked; disarms the EQ.
  void interrupt(Tick not_before);

  // The event queue and MSI-X registers (the command processor's BAR0 writes and reads).
  uint64_t eq_addr() const { return eq_addr_; }
  void set_eq_addr(uint64_t a) { eq_addr_ = a; }
  uint8_t eq_log_size() const { return eq_log_size_; }
  // (Re)starts the event queue at index 0 with 2^log_size entries (0: no events), disarmed.
  void start_eq(uint8_t log_size);
  // A consumer index (free-running, 24 bits on the register) and the arm bit from EQ_DOORBELL.
  // Returns false (changing nothing) if the index is behind the last one or ahead of the
  // producer.
  bool eq_doorbell(uint32_t ci24, bool arm);
  uint64_t msix_addr = 0;
  uint32_t msix_data = 0;
  bool msix_masked = true;
  // EQ_MODERATION (CAPS.eq_moderation): an armed EQ holds its interrupt until `max_events` events
  // wait or `period` after the first; max_events 0 or 1 is no moderation (the reset value).
  void set_moderation(uint32_t max_events, Tick period);
  uint32_t moderation_events() const { return mod_max_; }
  Tick moderation_period() const { return mod_period_; }
  // STATUS.eq_overrun: an event was dropped since the EQ was last (re)started.
  bool eq_overrun() const { return eq_overrun_; }
  // Device reset: the event queue, MSI-X and moderation registers back to their reset values; a
  // moderation timer pending is cancelled.
  void reset();

 private:
  // An event was written with moderation on: interrupt now, or start the timer.
  void moderated(Tick not_before);
  void drop_eqe();
  const NicEnv& env_;
  QpTable& t_;
  pcie::DmaPort& dma_;
  uint64_t eq_addr_ = 0;
  uint8_t eq_log_size_ = 0;
  uint32_t eq_pi_ = 0, eq_ci_ = 0;
  bool eq_armed_ = false;
  bool eq_overrun_ = false;
  uint32_t mod_max_ = 0;    // EQ_MODERATION.max_events
  Tick mod_period_ = 0;     // EQ_MODERATION.period
  bool mod_timer_ = false;  // a moderation timer is pending
  uint64_t mod_gen_ = 0;    // a timer of an older generation does nothing
  stats::Group stats_;
  uint64_t& cqes_;
  uint64_t& error_cqes_;
  uint64_t& overruns_;
  uint64_t& eqes_;
  uint64_t& eq_overruns_;
  uint64_t& msis_;
};

}  // namespace rn::qp
