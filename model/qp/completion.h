// The completion engine: writes CQEs into CQ rings in host memory by DMA (with the phase bit),
// detects CQ overrun, and raises completion events (EQEs plus an MSI-X message) for armed CQs.
#pragma once
#include "model/qp/qp_context.h"

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
  explicit Completion(NicState& s);
  ~Completion();
  // Writes a CQE no earlier than `not_before` (after the data it reports, by PCIe ordering).
  void post_cqe(uint32_t cqn, const CqeInfo& c, Tick not_before);
  void post_eqe(dev::EqeType type, uint32_t obj, uint32_t data, Tick not_before);
  // Sends the MSI-X message if the EQ is armed and the vector unmasked; disarms the EQ.
  void interrupt(Tick not_before);

  // Event queue registers.
  uint64_t eq_addr = 0;
  uint8_t eq_log_size = 0;
  uint32_t eq_pi = 0, eq_ci = 0;
  bool eq_armed = false;
  uint64_t msix_addr = 0;
  uint32_t msix_data = 0;
  bool msix_masked = true;

 private:
  NicState& s_;
  stats::Group stats_;
  uint64_t& cqes_;
  uint64_t& error_cqes_;
  uint64_t& overruns_;
  uint64_t& eqes_;
  uint64_t& eq_overruns_;
  uint64_t& msis_;
};

}  // namespace rn::qp
