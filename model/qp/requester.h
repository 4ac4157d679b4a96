// The RC requester: a round-robin scheduler over QPs with work, WQE prefetch by DMA, packet
// generation from (WQE, offset, PSN) at the moment a packet is sent (so a retransmission can
// regenerate it), payload gather by DMA through the translation stage into the transmit port's
// pipeline, and ACK/NAK processing that completes WQEs. It is one source of the transmit port.
#pragma once
#include <vector>

#include "bridge/pcie/pcie_bridge.h"
#include "model/qp/completion.h"
#include "model/qp/qp_table.h"
#include "model/qp/rx_buffer.h"
#include "model/qp/stages.h"
#include "model/qp/tx_port.h"
#include "model/translation/mr_table.h"
#include "model/wire/transport.h"

namespace rn::qp {

class Requester : public TxPort::Source {
 public:
  Requester(const NicEnv& env, QpTable& t, pcie::DmaPort& dma, TxPort& port, Completion& comp,
            RxBuffer& rxbuf, net::FramePool& pool);
  ~Requester() override;
  void bind(QpLife& life) { life_ = &life; }
  // The translation stage (before traffic): lkeys of the payload to send.
  void use_translation(xlate::Stage& s);

  // New send producer index from a doorbell (already validated).
  void sq_doorbell(QpCtx& q, uint32_t new_pi);
  // A doorbell that came with the WQE at new_pi - 1 (len bytes at wqe, validated by the device:
  // the header and every byte the WQE uses, as unpack_wqes reads them, are there, within the
  // QP's stride). If the cache is in step (every earlier WQE fetched,
  // no fetch in flight, room), the WQE goes into it as if fetched; else it is an ordinary
  // doorbell, and the WQE is fetched from host memory.
  void sq_doorbell_wqe(QpCtx& q, uint32_t new_pi, const uint8_t* wqe, uint32_t len);
  // An ACKNOWLEDGE packet (ACK, NAK or RNR NAK) for this QP.
  void on_ack(QpCtx& q, const wire::TransportHeader& h);
  // A READ response for this QP (the requester owns its frame from here): placed in the READ's
  // buffers. One for no outstanding READ is a ghost, counted and discarded; the QP carries on.
  void on_read_response(QpCtx& q, const RxPacket& p);
  // An ATOMIC ACKNOWLEDGE for this QP. None is ever expected yet (atomics are not modelled):
  // each is a ghost response, counted and discarded; the QP carries on.
  void on_atomic_ack(QpCtx& q, const RxPacket& p);
  // The QP entered RTS (or may send again): puts it on the ready list and starts the port.
  void schedule(QpCtx& q);
  // In SQD, once nothing started is outstanding: drained (and SQ_DRAINED posted if asked).
  void check_drained(QpCtx& q);
  // The QP entered ERR: complete everything outstanding or posted with WR_FLUSH_ERR.
  void flush(QpCtx& q);
  // The QP went back to RESET.
  void reset(QpCtx& q);

  // TxPort::Source: one turn of the next ready QP (up to nic.sched_quantum packets).
  bool has_work() const override { return ready_head_ != ready_tail_; }
  void produce() override;
  void sent() override;
  // SQE -> RTS (UC): the send queue takes work again.
  void resume_after_error(QpCtx& q);

 private:
  bool can_send(const QpCtx& q) const;
  void prefetch_upcoming() const;
  void maybe_fetch(QpCtx& q);
  bool start_wqe(QpCtx& q);
  void send_one(QpCtx& q);
  // A UD packet's opcode, DETH and destination (from the WQE's UdSeg): the path it goes on.
  const wire::PathInfo* ud_datagram(const QpCtx& q, bool imm, wire::TransportHeader& th);
  wire::PathInfo ud_path_;  // the last UD packet's (claim() copies it into its slot)
  void on_translation_ready();
  bool read_blocked(const QpCtx& q) const;
  void send_read_request(QpCtx& q);
  void go_back_for_read(QpCtx& q, const ReadCtx& r);
  // The shared steps of READ responses and atomic acknowledgements.
  ReadCtx* expected_response(QpCtx& q, const RxPacket& p);
  void response_taken(QpCtx& q, ReadCtx& r);
  void read_done(QpCtx& q, const ReadCtx& r, uint32_t psn, Tick when, Tick landed);
  void send_atomic_request(QpCtx& q);
  // Writes a response's len data bytes (in frame f from data_off) to where the READ or atomic r
  // puts them, from r.off on; the frame goes back to the pool. False if it could not (the QP went
  // back to ask again, or failed locally): the frame is released.
  bool place_response(QpCtx& q, ReadCtx& r, net::Frame* f, uint32_t data_off, uint32_t len,
                      Tick when, Tick* landed);
  // The outstanding entry of WQE idx (null if it is not outstanding).
  static Outstanding* entry(QpCtx& q, uint32_t idx);
  void complete_acked(QpCtx& q, uint32_t psn, bool inclusive, Tick when);
  // Completes the oldest outstanding WQE with st (or its own local error) and errs the QP.
  void fail_head(QpCtx& q, dev::WcStatus st, uint8_t vendor_err);
  // Goes back (or forward, past what was acknowledged) to send from `psn` on: the WQE holding it
  // is fetched again and restarted at that PSN's offset; the WQEs after it start again.
  void restart_at(QpCtx& q, uint32_t psn);  // reposition, then fetch and schedule
  void skip_acknowledged(QpCtx& q);
  void reposition(QpCtx& q, uint32_t psn);
  static Tick ack_timeout(const QpCtx& q);
  void arm_ack_timer(QpCtx& q);
  void ack_timed_out(QpCtx& q);
  void retire(QpCtx& q);
  void local_error(QpCtx& q, dev::WcStatus st, uint8_t vendor_err);  // the current WQE
  // WQE idx fails (st, vendor_err): the send queue stops, the QP goes to ERR once it is the
  // oldest outstanding WQE.
  void fail_wqe(QpCtx& q, uint32_t idx, dev::WcStatus st, uint8_t vendor_err);
  // A packet's payload could not be read (its DMA read failed): the packet is dropped, WQE idx
  // fails with LOC_PROT_ERR (DMA_READ_FAULT).
  void payload_failed(uint32_t slot, uint32_t qpn, uint32_t epoch, uint32_t idx);
  void complete(QpCtx& q, const Outstanding& e, dev::WcStatus st, uint8_t vendor_err, Tick when);
  void continue_flush(QpCtx& q);
  Tick now() const { return env_.now(); }

  const NicEnv& env_;
  QpTable& t_;
  pcie::DmaPort& dma_;
  xlate::StageHandle xl_;                // the translation stage
  std::vector<uint32_t> xlate_waiters_;  // QPs whose lookup answered kPending
  std::vector<uint32_t> waking_;         // those being woken (on_translation_ready)
  TxPort& port_;
  Completion& comp_;
  RxBuffer& rxbuf_;
  net::FramePool& pool_;
  QpLife* life_ = nullptr;
  // UC WQEs whose last packet is in the transmit pipeline, in order (completed by sent()).
  struct UcSent {
    uint32_t qpn, epoch, idx;
  };
  std::vector<UcSent> uc_sent_;
  size_t uc_sent_head_ = 0;
  std::vector<uint32_t> ready_;  // ring of QPNs, 2^k entries (indexed by mask)
  uint32_t ready_mask_ = 0;
  uint32_t ready_head_ = 0, ready_tail_ = 0;
  // The QPs' booked ACK timers, in time order (every QP with the same timeout books them in
  // order), behind one calendar event at the earliest: a thousand armed timers cost the
  // calendar one entry, not a thousand in its heap. A time out of order goes to the calendar.
  struct BookedTimer {
    Tick at;
    uint32_t qpn, epoch;
  };
  std::vector<BookedTimer> timers_;  // a ring of 2^k
  size_t timers_head_ = 0, timers_count_ = 0;
  bool timers_event_ = false;  // the calendar event for the earliest is booked
  void book_timer(const BookedTimer& b);
  void run_timers();
  void ack_timer_fired(uint32_t qpn, uint32_t epoch);

  stats::Group stats_;
  uint64_t& packets_;
  uint64_t& payload_bytes_;
  uint64_t& wqes_started_;
  uint64_t& wqes_completed_;
  uint64_t& wqe_fetches_;
  uint64_t& wqes_fetched_;
  uint64_t& wqes_with_doorbell_;
  uint64_t& wqe_doorbell_fallbacks_;
  uint64_t& inline_wqes_;
  uint64_t& acks_;
  uint64_t& naks_;
  uint64_t& stale_acks_;
  uint64_t& ghost_responses_;
  uint64_t& local_errors_;
  uint64_t& dma_read_errors_;
  uint64_t& flushed_;
  uint64_t& stalls_window_;
  uint64_t& stalls_xlate_;
  uint64_t& retransmitted_;
  uint64_t& seq_retries_;
  uint64_t& naks_ignored_;
  uint64_t& rnr_retries_;
  uint64_t& timeouts_;
  uint64_t& wqe_fetch_faults_;
  uint64_t& read_requests_;
  uint64_t& read_responses_;
  uint64_t& duplicate_responses_;
  uint64_t& implied_naks_;
  uint64_t& atomic_requests_;
  uint64_t& atomic_responses_;
};

}  // namespace rn::qp
