// The receive demultiplexer: every frame from the port arrives here. It takes the frame into the
// receive buffer (or drops it when full), has the header parser and the ICRC engine check it
// (swappable stages, model/qp/stages.h), finds the QP, and hands requests to the responder and
// responses (ACK, NAK, READ response, atomic acknowledgement) to the requester, so an ACK never
// waits behind a stalled request. A stage that answers later than now holds its frame, and the
// frames behind it, until then: frames leave the demultiplexer in arrival order.
#pragma once
#include <vector>

#include "model/core/stats.h"
#include "model/net/frame.h"
#include "model/net/link.h"
#include "model/qp/qp_table.h"
#include "model/qp/requester.h"
#include "model/qp/responder.h"
#include "model/qp/rx_buffer.h"
#include "model/qp/stages.h"
#include "model/translation/stage.h"

namespace rn::qp {

class RxDemux : public net::FrameSink {
 public:
  RxDemux(const NicEnv& env, QpTable& t, const PortFraming& framing, net::FramePool& pool,
          RxBuffer& rxbuf, Requester& req, Responder& resp);
  ~RxDemux() override;
  // The stages (not owned; the behavioural models by default). Set before traffic.
  void use_parser(HeaderParser& p) { parser_ = &p; }
  void use_icrc(IcrcEngine& e) { icrc_ = &e; }
  void use_translation(const xlate::Stage& s) { xlate_ = &s; }
  void receive(net::Frame* f) override;
  // Prefetch hints for a frame on its way here (net::FrameSink::on_the_way): this frame's QP
  // context now; the memory region of the previous hinted frame, whose context is cached by now.
  // Hints for the simulator's speed (nic.prefetch_hints, sim.prefetch_hints); they change nothing.
  void on_the_way(const net::Frame* f) override;

 private:
  enum class Verdict : uint8_t { kGood, kBadFrame, kBadTransport };
  struct Checked {
    RxPacket p;
    Verdict verdict = Verdict::kGood;
    wire::FrameError fe = wire::FrameError::None;
    wire::ParseError pe = wire::ParseError::None;
    Tick at = 0;  // when the stages' answers are known
  };
  void act(const Checked& c);
  void defer(Checked c);  // out of the hot path: c waits for a stage, or behind a frame that does
  void route(const RxPacket& p);
  void release_deferred();
  void drop(net::Frame* f) { pool_.put(f); }

  const NicEnv& env_;
  QpTable& t_;
  const PortFraming& framing_;
  net::FramePool& pool_;
  RxBuffer& rxbuf_;
  Requester& req_;
  Responder& resp_;
  ModelParser model_parser_;
  ModelIcrc model_icrc_;
  HeaderParser* parser_;
  IcrcEngine* icrc_;
  const xlate::Stage* xlate_ = nullptr;
  std::vector<Checked> deferred_;  // frames waiting for a stage's answer, in arrival order
  size_t deferred_head_ = 0;
  uint32_t hint_qpn_ = 0, hint_rkey_ = 0;  // the previous hinted frame's QP and RETH rkey (or 0)
  uint32_t done_qpn_ = 0, done_rkey_ = 0;  // the last QP context and key prefetched

  stats::Group stats_;
  uint64_t& frames_;
  uint64_t& bytes_;
  uint64_t& drop_frame_;
  uint64_t& drop_parse_;
  uint64_t& drop_no_qp_;
  uint64_t& drop_source_;
  uint64_t& drop_pkey_;
  uint64_t& drop_unsupported_;
  uint64_t& requests_;
  uint64_t& responses_;
  uint64_t& deferred_frames_;
};

}  // namespace rn::qp
