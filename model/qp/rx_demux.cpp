#include "model/qp/rx_demux.h"

#include <cstddef>

#include "model/wire/transport.h"

namespace rn::qp {

namespace w = rn::wire;
using Kind = w::OpInfo::Kind;

RxDemux::RxDemux(const NicEnv& env, QpTable& t, const PortFraming& framing, net::FramePool& pool,
                 RxBuffer& rxbuf, Requester& req, Responder& resp, const xlate::MrTable& mrs)
    : env_(env),
      t_(t),
      framing_(framing),
      pool_(pool),
      rxbuf_(rxbuf),
      req_(req),
      resp_(resp),
      mrs_(mrs),
      stats_(env.sim.stats, env.name + ".rx", "receive demultiplexer: framing, parsing, routing"),
      frames_(stats_.counter("frames", "count", "frames received from the port")),
      bytes_(stats_.counter("bytes", "B", "frame bytes received")),
      drop_frame_(stats_.counter("drop_framing", "count", "dropped: bad Ethernet/IP/UDP or ICRC")),
      drop_parse_(
          stats_.counter("drop_transport", "count", "dropped: bad BTH or extension headers")),
      drop_no_qp_(stats_.counter("drop_no_qp", "count", "dropped: destination QP does not exist")),
      drop_unsupported_(stats_.counter("drop_unsupported", "count",
                                       "dropped: transport not modelled (UC, UD, CNP)")),
      requests_(stats_.counter("requests", "count", "request packets handed to the responder")),
      responses_(stats_.counter("responses", "count",
                                "ACKs, NAKs and responses handed to the requester")) {}

RxDemux::~RxDemux() { env_.sim.stats.remove(&stats_); }

void RxDemux::receive(net::Frame* f) {
  ++frames_;
  bytes_ += f->len;
  if (!rxbuf_.admit(f->len)) return drop(f);
  RxPacket p;
  p.f = f;
  size_t toff = 0, tlen = 0;
  if (!f->icrc_sealed) f->materialize();  // the ICRC check reads every byte
  w::FrameError fe = framing_.unwrap(f->data, f->len, &toff, &tlen, nullptr, f->icrc_sealed);
  if (fe != w::FrameError::None) {
    ++drop_frame_;
    RN_LOG(env_.sim, LogCat::kError, env_.name, "drop frame ({} B): {}", f->len, w::to_string(fe));
    return drop(f);
  }
  size_t hl = 0, pl = 0;
  w::ParseError pe = w::decode_transport(f->data + toff, tlen, &p.h, &hl, &pl);
  if (pe != w::ParseError::None) {
    ++drop_parse_;
    RN_LOG(env_.sim, LogCat::kError, env_.name, "drop packet: {}", w::to_string(pe));
    return drop(f);
  }
  p.payload_off = static_cast<uint32_t>(toff + hl);
  p.plen = static_cast<uint32_t>(pl);
  QpCtx* q = t_.qp(p.h.dest_qp);
  if (!q) {
    ++drop_no_qp_;
    RN_LOG(env_.sim, LogCat::kError, env_.name, "drop packet for QP {}: no such QP", p.h.dest_qp);
    return drop(f);
  }
  const w::OpInfo& info = w::op_info(p.h.opcode);
  if (info.transport != w::Transport::RC) {
    ++drop_unsupported_;
    return drop(f);
  }
  switch (info.kind) {
    case Kind::Ack:
      ++responses_;
      req_.on_ack(*q, p.h);
      return drop(f);
    case Kind::ReadResp:
    case Kind::AtomicAck:
      ++responses_;
      req_.on_response(*q, p.h);
      return drop(f);
    default:
      ++requests_;
      resp_.on_request(p);
      return;
  }
}

void RxDemux::on_the_way(const net::Frame* f) {
  if (hint_qpn_) {
    const QpCtx* q = t_.qp_ptr(hint_qpn_);
    uint32_t key = hint_rkey_ ? hint_rkey_ : (q ? q->rs.w_rkey : 0);
    if (key) mrs_.prefetch(key);
  }
  hint_qpn_ = hint_rkey_ = 0;
  const size_t hr = framing_.headroom();
  if (f->len < hr + w::kBthLen + w::kRethLen) return;
  const uint8_t* t = f->data + hr;
  hint_qpn_ = w::load_be24(t + offsetof(w::Bth, dest_qp));
  if (const QpCtx* q = t_.qp_ptr(hint_qpn_)) prefetch_ctx(q);
  const w::OpInfo& info = w::op_info(t[0]);
  if (info.valid && (info.ext_mask & w::kExtReth))
    hint_rkey_ = w::load_be32(t + w::kBthLen + offsetof(w::Reth, rkey));
}

}  // namespace rn::qp
