#include "model/qp/completion.h"

#include <algorithm>
#include <cstring>

namespace rn::qp {

Completion::Completion(const NicEnv& env, QpTable& t, pcie::DmaPort& dma)
    : env_(env),
      t_(t),
      dma_(dma),
      stats_(env.sim.stats, env.name + ".cq", "completion and event queues"),
      cqes_(stats_.counter("cqes", "count", "CQEs written")),
      error_cqes_(stats_.counter("error_cqes", "count", "CQEs with a status other than SUCCESS")),
      overruns_(stats_.counter("cq_overruns", "count", "CQEs dropped: CQ full")),
      eqes_(stats_.counter("eqes", "count", "EQEs written")),
      eq_overruns_(stats_.counter("eq_overruns", "count",
                                  "EQEs dropped: EQ full, not set up, or past the end of memory")),
      msis_(stats_.counter("interrupts", "count", "MSI-X messages sent")) {}

Completion::~Completion() { env_.sim.stats.remove(&stats_); }

void Completion::post_cqe(uint32_t cqn, const CqeInfo& c, Tick not_before) {
  CqCtx* cq = t_.cq(cqn);
  if (!cq) return;
  const uint32_t size = 1u << cq->log_size;
  if (cq->pi - cq->ci >= size) {
    ++overruns_;
    if (!cq->overrun) {
      cq->overrun = true;
      env_.driver_error(DriverError::kCqOverrun, cqn,
                        "CQ {} overrun: {} CQEs not consumed, a CQE dropped (CQ_ERROR event)", cqn,
                        size);
      post_eqe(dev::EqeType::CQ_ERROR, cqn, 0, not_before);
    }
    return;
  }
  dev::Cqe e{};
  e.wr_id = c.wr_id;
  e.byte_len = c.byte_len;
  e.imm_data = c.imm;
  e.qpn = c.qpn;
  e.src_qp = c.src_qp;
  e.wqe_counter = static_cast<uint16_t>(c.wqe_counter);
  e.opcode = static_cast<uint8_t>(c.opcode);
  e.status = static_cast<uint8_t>(c.status);
  e.flags = c.flags;
  e.vendor_err = c.vendor_err;
  e.owner = static_cast<uint8_t>(((cq->pi >> cq->log_size) & 1) ^ 1);
  uint64_t addr = cq->ring + uint64_t(cq->pi & (size - 1)) * sizeof(dev::Cqe);
  ++cq->pi;
  ++cqes_;
  if (c.status != dev::WcStatus::SUCCESS) ++error_cqes_;
  dma_.dma_write(addr, reinterpret_cast<const uint8_t*>(&e), sizeof e, not_before, {});
  RN_LOG(env_.sim, LogCat::kCqe, env_.name, "CQE cq {} qp {} wr_id {} op {} status {} len {}", cqn,
         c.qpn, c.wr_id, dev::to_string(c.opcode), dev::to_string(c.status), c.byte_len);
  bool err = c.status != dev::WcStatus::SUCCESS;
  if (cq->armed && (!cq->solicited_only || c.solicited || err)) {
    cq->armed = false;
    post_eqe(dev::EqeType::COMPLETION, cqn, 0, not_before);
  }
}

void Completion::post_eqe(dev::EqeType type, uint32_t obj, uint32_t data, Tick not_before) {
  const uint32_t size = 1u << eq_log_size_;
  // Not set up, or its ring moved past the end of the address space since EQ_LOG_SIZE was set.
  if (eq_log_size_ == 0 || !pcie::in_address_space(eq_addr_, uint64_t(size) * sizeof(dev::Eqe)))
    return drop_eqe();
  if (eq_pi_ - eq_ci_ >= size) return drop_eqe();
  dev::Eqe e{};
  e.type = static_cast<uint8_t>(type);
  e.obj = obj;
  e.data = data;
  e.owner = static_cast<uint8_t>(((eq_pi_ >> eq_log_size_) & 1) ^ 1);
  uint64_t addr = eq_addr_ + uint64_t(eq_pi_ & (size - 1)) * sizeof(dev::Eqe);
  ++eq_pi_;
  ++eqes_;
  // Posted writes stay in order: the EQE lands after the CQE, the MSI-X after the EQE.
  dma_.dma_write(addr, reinterpret_cast<const uint8_t*>(&e), sizeof e, not_before, {});
  if (mod_max_ <= 1) return interrupt(not_before);
  moderated(not_before);
}

void Completion::drop_eqe() {
  // No EQE, no interrupt: the loss shows in STATUS.eq_overrun until the EQ is restarted.
  ++eq_overruns_;
  eq_overrun_ = true;
}

void Completion::moderated(Tick not_before) {
  if (!eq_armed_ || msix_masked) return;
  if (eq_pi_ - eq_ci_ >= mod_max_) return interrupt(not_before);
  if (mod_timer_) return;  // the first event held has its timer running
  mod_timer_ = true;
  const uint64_t gen = ++mod_gen_;
  env_.sim.eq.at(std::max(env_.now(), not_before) + mod_period_, [this, gen] {
    if (gen != mod_gen_) return;
    mod_timer_ = false;
    interrupt(env_.now());
  });
}

void Completion::set_moderation(uint32_t max_events, Tick period) {
  mod_max_ = max_events;
  mod_period_ = period;
  mod_timer_ = false;  // a timer pending is forgotten: the next event decides afresh
  ++mod_gen_;
}

void Completion::reset() {
  eq_addr_ = 0;
  start_eq(0);
  msix_addr = 0;
  msix_data = 0;
  msix_masked = true;
  set_moderation(0, 0);
}

void Completion::start_eq(uint8_t log_size) {
  eq_log_size_ = log_size;
  eq_pi_ = eq_ci_ = 0;
  eq_armed_ = false;
  eq_overrun_ = false;
  if (mod_timer_) {
    mod_timer_ = false;
    ++mod_gen_;
  }
}

bool Completion::eq_doorbell(uint32_t ci24, bool arm) {
  const uint32_t ci = eq_ci_ + ((ci24 - eq_ci_) & dev::EqDoorbellBits::kCiMax);
  if (ci - eq_ci_ > eq_pi_ - eq_ci_) return false;
  eq_ci_ = ci;
  if (arm) {
    eq_armed_ = true;
    if (eq_pi_ != eq_ci_) interrupt(env_.now());  // events already waiting: interrupt now
  }
  return true;
}

void Completion::interrupt(Tick not_before) {
  if (eq_armed_ && !msix_masked) {
    eq_armed_ = false;
    if (mod_timer_) {  // the interrupt the timer was holding goes now
      mod_timer_ = false;
      ++mod_gen_;
    }
    ++msis_;
    dma_.msi(msix_addr, msix_data, not_before);
  }
}

}  // namespace rn::qp
