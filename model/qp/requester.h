// The RC requester: a round-robin scheduler over QPs with work, WQE prefetch by DMA, packet
// generation from (WQE, offset, PSN) at the moment a packet is sent (so a retransmission can
// regenerate it), payload gather by DMA through the translation stage, an in-order transmit
// pipeline of fixed depth, and ACK/NAK processing that completes WQEs.
#pragma once
#include <vector>

#include "model/qp/completion.h"
#include "model/qp/qp_context.h"

namespace rn::qp {

class Requester {
 public:
  explicit Requester(NicState& s);
  ~Requester();
  // New send producer index from a doorbell (already validated).
  void sq_doorbell(QpCtx& q, uint32_t new_pi);
  // An ACKNOWLEDGE packet (ACK, NAK or RNR NAK) for this QP.
  void on_ack(QpCtx& q, const wire::TransportHeader& h);
  // A READ response or ATOMIC ACKNOWLEDGE for this QP. None is ever expected yet (no READ or
  // atomic is outstanding): each is a ghost response, counted and discarded; the QP carries on.
  void on_response(QpCtx& q, const wire::TransportHeader& h);
  // The QP entered ERR: complete everything outstanding or posted with WR_FLUSH_ERR.
  void flush(QpCtx& q);
  // The QP went back to RESET.
  void reset(QpCtx& q);
  // Moves QP to ERR and flushes both queues (used by requester and responder). An error found
  // by the NIC (async_event) also reports QP_FATAL on the event queue; MODIFY_QP to ERR does not.
  void enter_error(QpCtx& q, bool async_event = true);
  // Puts the QP on the scheduler's list if it can send, and runs the scheduler.
  void schedule(QpCtx& q);

 private:
  struct Slot {
    net::Frame* f = nullptr;
    uint32_t tlen = 0;
    bool ready = false;
    wire::PathInfo path;
  };
  bool can_send(const QpCtx& q) const;
  void kick();
  void prefetch_upcoming() const;
  void drain();
  void maybe_fetch(QpCtx& q);
  bool start_wqe(QpCtx& q);
  void send_one(QpCtx& q);
  void retire(QpCtx& q);
  void local_error(QpCtx& q, dev::WcStatus st, uint8_t vendor_err);
  void complete(QpCtx& q, const Outstanding& e, dev::WcStatus st, uint8_t vendor_err, Tick when);
  void continue_flush(QpCtx& q);
  Tick now() const { return s_.now(); }

  NicState& s_;
  std::vector<uint32_t> ready_;  // ring of QPNs
  uint32_t ready_head_ = 0, ready_tail_ = 0;
  std::vector<Slot> ring_;  // transmit pipeline
  uint32_t tx_head_ = 0, tx_tail_ = 0;
  bool in_kick_ = false, kick_again_ = false, wake_pending_ = false;
  Tick backlog_limit_ = 0;

  stats::Group stats_;
  uint64_t& packets_;
  uint64_t& payload_bytes_;
  uint64_t& wqes_started_;
  uint64_t& wqes_completed_;
  uint64_t& wqe_fetches_;
  uint64_t& wqes_fetched_;
  uint64_t& acks_;
  uint64_t& naks_;
  uint64_t& stale_acks_;
  uint64_t& ghost_responses_;
  uint64_t& local_errors_;
  uint64_t& flushed_;
  uint64_t& stalls_window_;
  uint64_t& stalls_link_;
};

}  // namespace rn::qp
