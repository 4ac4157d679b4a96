// The RC responder: receives every frame from the port, checks framing and ICRC, the PSN and the
// opcode sequence, consumes receive WQEs (prefetched by DMA), checks rkeys and places WRITE data
// through the translation stage, scatters SEND data into receive buffers, writes receive
// completions, generates ACKs (for AckReq packets) and NAKs, and hands ACKs to the requester.
// When a SEND needs a receive WQE that is posted but not yet fetched, the receive pipeline stalls
// (head of line) until the fetch completes.
#pragma once
#include <vector>

#include "model/qp/completion.h"
#include "model/qp/qp_context.h"

namespace rn::qp {

class Responder : public net::FrameSink {
 public:
  explicit Responder(NicState& s);
  ~Responder() override;
  void receive(net::Frame* f) override;
  // Prefetch hints for a frame on its way here (net::FrameSink::on_the_way): this frame's QP
  // context now; the memory region of the previous hinted frame, whose context is cached by now.
  void on_the_way(const net::Frame* f) override;
  void rq_doorbell(QpCtx& q, uint32_t new_pi);
  void flush(QpCtx& q);
  void reset(QpCtx& q);

 private:
  enum class Result { kDone, kStall };
  // The receive buffer: frames count from their arrival until their payload is in host memory
  // (or until they are processed, for frames without payload to place).
  struct Held {
    Tick until;  // the payload's DMA write lands
    uint32_t bytes;
  };
  void hold_until(Tick until, uint32_t bytes);
  void stall_hold(const net::Frame* f);
  void release_landed();
  Result process(net::Frame* f);
  void resume();
  void maybe_fetch(QpCtx& q);
  void send_ack(QpCtx& q, uint8_t syndrome, uint32_t psn);
  void fail(QpCtx& q, uint8_t nak_syndrome, uint32_t psn, const char* why);
  void recv_complete(QpCtx& q, dev::WcStatus st, uint32_t byte_len, dev::WcOpcode op, bool imm,
                     uint32_t imm_data, bool solicited, Tick when);
  void continue_flush(QpCtx& q);
  Tick now() const { return s_.now(); }

  NicState& s_;
  uint32_t hint_qpn_ = 0, hint_rkey_ = 0;  // the previous hinted frame's QP and RETH rkey (or 0)
  std::vector<net::Frame*> pending_;       // frames waiting behind a stall, in arrival order
  size_t pending_head_ = 0;
  bool stalled_ = false;
  uint64_t rx_held_ = 0;    // bytes of the receive buffer in use
  std::vector<Held> held_;  // frames whose payload is on its way to memory: a ring of 2^k
  size_t held_head_ = 0, held_count_ = 0;
  Tick placed_until_ = 0;  // the last hold's landing time

  stats::Group stats_;
  uint64_t& frames_;
  uint64_t& bytes_;
  uint64_t& drop_frame_;
  uint64_t& drop_parse_;
  uint64_t& drop_no_qp_;
  uint64_t& drop_state_;
  uint64_t& drop_unsupported_;
  uint64_t& duplicates_;
  uint64_t& seq_naks_;
  uint64_t& naks_sent_;
  uint64_t& rnr_naks_;
  uint64_t& acks_sent_;
  uint64_t& placed_bytes_;
  uint64_t& messages_;
  uint64_t& stalls_;
  uint64_t& rwqe_fetches_;
  uint64_t& flushed_;
  uint64_t& unsupported_ops_;
  uint64_t& rx_buffer_drops_;
  uint64_t& rx_buffer_drop_bytes_;
  uint64_t& rx_buffer_peak_;
};

}  // namespace rn::qp
