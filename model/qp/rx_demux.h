// The receive demultiplexer: every frame from the port arrives here. It takes the frame into the
// receive buffer (or drops it when full), checks framing and ICRC, parses the transport headers,
// finds the QP, and hands requests to the responder and responses (ACK, NAK, READ response,
// atomic acknowledgement) to the requester, so an ACK never waits behind a stalled request.
#pragma once
#include "model/core/stats.h"
#include "model/net/frame.h"
#include "model/net/link.h"
#include "model/qp/qp_table.h"
#include "model/qp/requester.h"
#include "model/qp/responder.h"
#include "model/qp/rx_buffer.h"
#include "model/translation/mr_table.h"
#include "model/wire/framing.h"

namespace rn::qp {

class RxDemux : public net::FrameSink {
 public:
  RxDemux(const NicEnv& env, QpTable& t, const PortFraming& framing, net::FramePool& pool,
          RxBuffer& rxbuf, Requester& req, Responder& resp, const xlate::MrTable& mrs);
  ~RxDemux() override;
  void receive(net::Frame* f) override;
  // Prefetch hints for a frame on its way here (net::FrameSink::on_the_way): this frame's QP
  // context now; the memory region of the previous hinted frame, whose context is cached by now.
  // Hints for the simulator's speed; they change nothing.
  void on_the_way(const net::Frame* f) override;

 private:
  void drop(net::Frame* f) { pool_.put(f); }
  const NicEnv& env_;
  QpTable& t_;
  const PortFraming& framing_;
  net::FramePool& pool_;
  RxBuffer& rxbuf_;
  Requester& req_;
  Responder& resp_;
  const xlate::MrTable& mrs_;
  uint32_t hint_qpn_ = 0, hint_rkey_ = 0;  // the previous hinted frame's QP and RETH rkey (or 0)

  stats::Group stats_;
  uint64_t& frames_;
  uint64_t& bytes_;
  uint64_t& drop_frame_;
  uint64_t& drop_parse_;
  uint64_t& drop_no_qp_;
  uint64_t& drop_unsupported_;
  uint64_t& requests_;
  uint64_t& responses_;
};

}  // namespace rn::qp
