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

 private:
  const NicEnv& env_;
  QpTable& t_;
  pcie::DmaPort& dma_;
  uint64_t eq_addr_ = 0;
  uint8_t eq_log_size_ = 0;
  uint32_t eq_pi_ = 0, eq_ci_ = 0;
  bool eq_armed_ = false;
  stats::Group stats_;
  uint64_t& cqes_;
  uint64_t& error_cqes_;
  uint64_t& overruns_;
  uint64_t& eqes_;
  uint64_t& eq_overruns_;
  uint64_t& msis_;
};

}  // namespace rn::qp
