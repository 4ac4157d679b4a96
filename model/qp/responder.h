// The RC responder: takes the request packets the receive demultiplexer hands it, checks the PSN
// and the opcode sequence, consumes receive WQEs (prefetched by DMA), checks rkeys and places
// WRITE data through the translation stage, scatters SEND data into receive buffers, writes
// receive completions, and sends ACKs (for AckReq packets) and NAKs through the transmit port.
// When a SEND needs a receive WQE that is posted but not yet fetched, the request pipeline stalls
// (head of line) until the fetch completes; responses and ACKs for the requester do not wait.
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

class Responder : public TxPort::Source {
 public:
  Responder(const NicEnv& env, QpTable& t, pcie::DmaPort& dma, TxPort& port, Completion& comp,
            RxBuffer& rxbuf, net::FramePool& pool);
  ~Responder() override;
  void bind(QpLife& life) { life_ = &life; }
  // The translation stage (before traffic): rkeys of placed data, lkeys of receive buffers.
  void use_translation(xlate::Stage& s);
  // A request packet (SEND, WRITE, READ, atomic) for QP p.h.dest_qp: processed now, or queued
  // behind a stall. The responder owns the frame from here.
  void on_request(const RxPacket& p);
  void rq_doorbell(QpCtx& q, uint32_t new_pi);
  // An SRQ's producer index moved on (checked by the device).
  void srq_doorbell(SrqCtx& s, uint32_t new_pi);
  // The QP entered ERR: flush the receive WQEs (of a QP attached to an SRQ, only the one it had
  // taken; then QP_LAST_WQE_REACHED).
  void flush(QpCtx& q);
  // A READ response's payload could not be read (its DMA read failed): NAK remote operational
  // error, the QP to ERR.
  void read_failed(uint32_t slot, uint32_t qpn, uint32_t epoch, uint32_t psn);
  // The QP went back to RESET.
  void reset(QpCtx& q);

  // TxPort::Source: the next packet of the responses owed (READ responses, and ACKs and NAKs
  // queued behind them so that they never overtake a response).
  bool has_work() const override {
    if (reply_head_ == replies_.size() || replies_wait_ != ReplyWait::kNone) return false;
    const Reply& r = replies_[reply_head_];
    return r.kind != Reply::Kind::kAtomic || r.ready;
  }
  void produce() override;
  void sent() override { --unsent_; }

 private:
  // What became of a packet: done (its frame is free), lent to a DMA write (the frame returns to
  // the pool when the write has landed), or stalled (kept, to be processed again) behind a receive
  // WQE fetch (kStall) or a translation that answers later (kWait). kGo: checks passed, go on.
  enum class Outcome { kDone, kLent, kStall, kWait, kGo };
  // The request pipeline: flowing, or stalled behind a receive WQE fetch.
  enum class Pipe : uint8_t { kFlowing, kStalled };
  // What the responder owes a requester, in order: a READ's response packets, an ATOMIC
  // ACKNOWLEDGE (sent once the atomic has executed), or an ACK/NAK.
  struct Reply {
    enum class Kind : uint8_t { kRead, kAtomic, kAck } kind;
    uint8_t syndrome;  // kAck
    bool ready;        // kAtomic: executed, `va` is the original value
    bool dup;          // kRead, kAtomic: a duplicate request's (RespState::dups_queued)
    uint32_t qpn, epoch;
    uint32_t psn;  // of the next packet
    uint32_t msn;
    uint64_t va;  // kRead: what is left to send; kAtomic: the original value
    uint32_t rkey, len, off;
  };
  // An atomic waiting for (or in) the NIC's atomic unit, which executes one at a time: the
  // 8-byte read, the new value computed, its write landed, before the next begins. So atomics
  // are atomic with respect to each other on this NIC, whatever QP or requester they come from.
  struct AtomicOp {
    uint64_t bus;  // the 8 bytes' bus address
    bool cas;
    uint64_t compare, swap_add;
    Tick ready;    // translation known
    size_t reply;  // its Reply in replies_ (which cannot drain past it before it is ready)
    uint32_t qpn, epoch, slot;  // its AtomicResult in the QP's ring
  };
  // The reply queue waits for nothing, or for the translation stage to wake it.
  enum class ReplyWait : uint8_t { kNone, kTranslation };
  void pop_reply();
  // A reply queued behind those owed, with the QP's fields filled in.
  Reply& queue_reply(const QpCtx& q, Reply::Kind kind, uint32_t psn);
  Outcome process(const RxPacket& p);
  // An RDMA READ request (duplicate: one already executed, asked again after a loss).
  Outcome read_request(QpCtx& q, const RxPacket& p, bool duplicate);
  // A COMPARE_SWAP or FETCH_ADD request, and a duplicate of one (answered from the QP's ring).
  Outcome atomic_request(QpCtx& q, const RxPacket& p);
  Outcome atomic_duplicate(QpCtx& q, const RxPacket& p);
  void atomic_start();
  void atomic_read_done();
  void atomic_done(uint64_t orig);
  Outcome check_psn(QpCtx& q, const RxPacket& p);
  Outcome check_psn_uc(QpCtx& q, const RxPacket& p);
  // A UD SEND (with immediate): one packet, one message, no PSN check, no ACK or NAK.
  Outcome ud_request(QpCtx& q, const RxPacket& p, Tick when);
  // Translated placement of a packet's payload: its bus segments, and when they are known.
  struct Placement {
    xlate::SegList segs;
    Tick ready = 0;
  };
  Outcome send_packet(QpCtx& q, const RxPacket& p, Placement& pl, Tick when);
  Outcome write_packet(QpCtx& q, const RxPacket& p, Placement& pl);
  Outcome accept(QpCtx& q, const RxPacket& p, const Placement& pl, Tick when);
  // Looks up a range through the translation stage into pl (segs null: check only).
  xlate::Status lookup(uint32_t key, uint32_t pdn, uint64_t va, uint64_t len, uint32_t need,
                       Placement& pl, bool place);
  void finish(const RxPacket& p, Outcome o);
  void resume();
  void maybe_fetch(QpCtx& q);
  void maybe_fetch_srq(SrqCtx& s);
  // A QP attached to an SRQ takes the SRQ's next WQE: kGo (taken), kStall (posted, not yet
  // fetched: a fetch is under way) or kDone (the SRQ is empty).
  Outcome srq_take(QpCtx& q);
  // A request needing a receive WQE and none posted: RNR NAK (RC), or the QP fails (UC).
  Outcome no_receive_wqe(QpCtx& q, uint32_t psn);
  void send_ack(QpCtx& q, uint8_t syndrome, uint32_t psn);
  // An ACK for psn, held nic.ack_coalesce for later AckReqs of the QP to share it.
  void owe_ack(QpCtx& q, uint32_t psn);
  // Refuses the packet with a NAK and moves the QP to ERR.
  Outcome fail(QpCtx& q, uint8_t nak_syndrome, uint32_t psn, const char* why);
  // ud: the UD packet completed (its source QP goes in the CQE, and the GRH flag).
  void recv_complete(QpCtx& q, dev::WcStatus st, uint32_t byte_len, dev::WcOpcode op, bool imm,
                     uint32_t imm_data, bool solicited, Tick when,
                     const wire::TransportHeader* ud = nullptr);
  void continue_flush(QpCtx& q);
  Tick now() const { return env_.now(); }

  const NicEnv& env_;
  QpTable& t_;
  pcie::DmaPort& dma_;
  xlate::StageHandle xl_;  // the translation stage
  TxPort& port_;
  Completion& comp_;
  RxBuffer& rxbuf_;
  net::FramePool& pool_;
  QpLife* life_ = nullptr;
  Pipe pipe_ = Pipe::kFlowing;
  std::vector<RxPacket> pending_;  // packets waiting behind a stall, in arrival order
  size_t pending_head_ = 0;
  std::vector<Reply> replies_;  // owed, in order (one queue for the port)
  size_t reply_head_ = 0;
  ReplyWait replies_wait_ = ReplyWait::kNone;
  uint32_t unsent_ = 0;  // replies' packets in the transmit pipeline, not yet on the wire
  std::vector<AtomicOp> atomic_ops_;  // the atomic unit's queue, in order
  size_t atomic_head_ = 0;
  bool atomic_busy_ = false;
  uint8_t atomic_buf_[8] = {};  // the value read

  stats::Group stats_;
  uint64_t& drop_qp_gone_;
  uint64_t& drop_state_;
  uint64_t& duplicates_;
  uint64_t& seq_naks_;
  uint64_t& naks_sent_;
  uint64_t& read_dma_errors_;
  uint64_t& rnr_naks_;
  uint64_t& acks_sent_;
  uint64_t& placed_bytes_;
  uint64_t& messages_;
  uint64_t& stalls_;
  uint64_t& stalls_xlate_;
  uint64_t& rwqe_fetches_;
  uint64_t& srq_fetches_;
  uint64_t& srq_taken_;
  uint64_t& srq_limit_events_;
  uint64_t& last_wqe_events_;
  uint64_t& flushed_;
  uint64_t& unsupported_ops_;
  uint64_t& read_requests_;
  uint64_t& read_dups_;
  uint64_t& read_packets_;
  uint64_t& read_bytes_;
  uint64_t& atomics_;
  uint64_t& atomic_replays_;
  uint64_t& acks_coalesced_;
  uint64_t& uc_dropped_;
  uint64_t& uc_skipped_;
  uint64_t& ud_qkey_drops_;
  uint64_t& ud_no_wqe_drops_;
  uint64_t& ud_dropped_;
  uint64_t& atomic_dups_lost_;
};

}  // namespace rn::qp
