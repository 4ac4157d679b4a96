#include "model/qp/rx_demux.h"

#include <algorithm>
#include <cstddef>

#include "model/core/hot.h"
#include "model/wire/transport.h"

namespace rn::qp {

namespace w = rn::wire;
using Kind = w::OpInfo::Kind;

namespace {
// IBA 10.9.3 (rxe's pkey_match): two P_Keys match when their low 15 bits are equal and not zero,
// and at least one of them is a full member (bit 15).
bool pkey_match(uint16_t a, uint16_t b) {
  return (a & 0x7FFF) != 0 && (a & 0x7FFF) == (b & 0x7FFF) && ((a | b) & 0x8000) != 0;
}
}  // namespace

RxDemux::RxDemux(const NicEnv& env, QpTable& t, const PortFraming& framing, net::FramePool& pool,
                 RxBuffer& rxbuf, Requester& req, Responder& resp)
    : env_(env),
      t_(t),
      framing_(framing),
      pool_(pool),
      rxbuf_(rxbuf),
      req_(req),
      resp_(resp),
      model_parser_(env, framing),
      model_icrc_(env, framing, env.params.icrc_seal),
      parser_(&model_parser_),
      icrc_(&model_icrc_),
      stats_(env.sim.stats, env.name + ".rx", "receive demultiplexer: framing, parsing, routing"),
      frames_(stats_.counter("frames", "count", "frames received from the port")),
      bytes_(stats_.counter("bytes", "B", "frame bytes received")),
      drop_frame_(stats_.counter("drop_framing", "count", "dropped: bad Ethernet/IP/UDP or ICRC")),
      drop_parse_(
          stats_.counter("drop_transport", "count", "dropped: bad BTH or extension headers")),
      drop_no_qp_(stats_.counter("drop_no_qp", "count", "dropped: destination QP does not exist")),
      drop_source_(
          stats_.counter("drop_source", "count",
                         "dropped: an RC or UC packet from another IP address than the QP's peer")),
      drop_pkey_(stats_.counter("drop_pkey", "count",
                                "dropped: BTH P_Key does not match the QP's (P_Key violation)")),
      drop_unsupported_(stats_.counter("drop_unsupported", "count",
                                       "dropped: transport not modelled (UC, UD, CNP)")),
      requests_(stats_.counter("requests", "count", "request packets handed to the responder")),
      responses_(
          stats_.counter("responses", "count", "ACKs, NAKs and responses handed to the requester")),
      deferred_frames_(stats_.counter(
          "deferred", "count", "frames held for a stage that answered later than at once")) {}

RxDemux::~RxDemux() {
  env_.sim.stats.remove(&stats_);
  for (size_t i = deferred_head_; i < deferred_.size(); ++i) pool_.put(deferred_[i].p.f);
}

RN_HOT void RxDemux::receive(net::Frame* f) {
  ++frames_;
  bytes_ += f->len;
  if (!rxbuf_.admit(f->len)) return drop(f);
  Checked c;
  c.p.f = f;
  // The behavioural stages are called directly (final classes): no virtual call per frame.
  const HeaderParser::Result r =
      parser_ == &model_parser_ ? model_parser_.parse(*f, &c.p) : parser_->parse(*f, &c.p);
  c.at = r.ready;
  if (r.frame != w::FrameError::None) {
    c.verdict = Verdict::kBadFrame;
    c.fe = r.frame;
  } else {
    Tick icrc_at = 0;
    const bool icrc_ok = icrc_ == &model_icrc_ ? model_icrc_.check(*f, r.t_off, r.t_len, &icrc_at)
                                               : icrc_->check(*f, r.t_off, r.t_len, &icrc_at);
    c.at = std::max(c.at, icrc_at);
    if (!icrc_ok) {
      c.verdict = Verdict::kBadFrame;
      c.fe = w::FrameError::BadIcrc;
    } else if (r.transport != w::ParseError::None) {
      c.verdict = Verdict::kBadTransport;
      c.pe = r.transport;
    }
  }
  if (deferred_head_ == deferred_.size() && c.at <= env_.now()) return act(c);
  defer(c);
}

// A stage answers later (or an earlier frame waits): in order, each at its time.
RN_NOINLINE void RxDemux::defer(Checked c) {
  ++deferred_frames_;
  const bool first = deferred_head_ == deferred_.size();
  if (!first) c.at = std::max(c.at, deferred_.back().at);
  deferred_.push_back(c);
  if (first) env_.sim.eq.at(c.at, [this] { release_deferred(); });
}

void RxDemux::release_deferred() {
  while (deferred_head_ < deferred_.size() && deferred_[deferred_head_].at <= env_.now())
    act(deferred_[deferred_head_++]);
  if (deferred_head_ < deferred_.size()) {
    env_.sim.eq.at(deferred_[deferred_head_].at, [this] { release_deferred(); });
  } else {
    deferred_.clear();
    deferred_head_ = 0;
  }
}

RN_HOT void RxDemux::act(const Checked& c) {
  switch (c.verdict) {
    case Verdict::kBadFrame:
      ++drop_frame_;
      RN_LOG(env_.sim, LogCat::kError, env_.name, "drop frame ({} B): {}", c.p.f->len,
             w::to_string(c.fe));
      return drop(c.p.f);
    case Verdict::kBadTransport:
      ++drop_parse_;
      RN_LOG(env_.sim, LogCat::kError, env_.name, "drop packet: {}", w::to_string(c.pe));
      return drop(c.p.f);
    case Verdict::kGood:
      return route(c.p);
  }
}

RN_HOT void RxDemux::route(const RxPacket& p) {
  QpCtx* q = t_.qp(p.h.dest_qp);
  if (!q) {
    ++drop_no_qp_;
    RN_LOG(env_.sim, LogCat::kError, env_.name, "drop packet for QP {}: no such QP", p.h.dest_qp);
    return drop(p.f);
  }
  // A connected QP (RC, UC) takes packets from its peer only: the source IP address must be its
  // path's destination (rxe's check_addr; IBA checks a connected QP's source address). A QP that
  // has no address yet (before RTR) takes nothing anyway: its state drops the packet later.
  if (!q->ud() && q->path.dst_ip != 0) {
    const uint32_t src = w::load_be32(p.f->data + w::kOffIpv4 + offsetof(w::Ipv4Hdr, src));
    if (src != q->path.dst_ip) {
      ++drop_source_;
      RN_LOG(env_.sim, LogCat::kError, env_.name,
             "drop packet for QP {}: from {:#010x}, not the QP's peer {:#010x}", p.h.dest_qp, src,
             q->path.dst_ip);
      return drop(p.f);
    }
  }
  // Every QP has P_Key index 0 of a one-entry table: the default P_Key, 0xFFFF.
  if (!pkey_match(p.h.pkey, w::kDefaultPkey)) {
    ++drop_pkey_;
    RN_LOG(env_.sim, LogCat::kError, env_.name,
           "drop packet for QP {}: P_Key {:#06x} is not {:#06x}", p.h.dest_qp, p.h.pkey,
           w::kDefaultPkey);
    return drop(p.f);
  }
  const w::OpInfo& info = w::op_info(p.h.opcode);
  const w::Transport mine =
      q->uc() ? w::Transport::UC : (q->ud() ? w::Transport::UD : w::Transport::RC);
  if (info.transport != mine) {
    ++drop_unsupported_;  // another transport than the QP's (or CNP: not modelled)
    return drop(p.f);
  }
  switch (info.kind) {
    case Kind::Ack:
      ++responses_;
      req_.on_ack(*q, p.h);
      return drop(p.f);
    case Kind::ReadResp:
      ++responses_;
      req_.on_read_response(*q, p);
      return;
    case Kind::AtomicAck:
      ++responses_;
      req_.on_atomic_ack(*q, p);
      return;
    default:
      ++requests_;
      resp_.on_request(p);
      return;
  }
}

RN_HOT void RxDemux::on_the_way(const net::Frame* f) {
  if (!env_.params.prefetch_hints) return;
  // The same QP and key as the frame before: in the CPU cache already (a stream on few QPs pays
  // nothing for the hints).
  if (hint_qpn_) {
    const QpCtx* q = t_.qp_ptr(hint_qpn_);
    uint32_t key = hint_rkey_ ? hint_rkey_ : (q ? q->rs.w_rkey : 0);
    if (key && key != done_rkey_ && xlate_) xlate_->prefetch(key);
    done_rkey_ = key;
  }
  hint_qpn_ = hint_rkey_ = 0;
  const size_t hr = framing_.headroom();
  if (f->len < hr + w::kBthLen + w::kRethLen) return;
  const uint8_t* t = f->data + hr;
  hint_qpn_ = w::load_be24(t + offsetof(w::Bth, dest_qp));
  if (hint_qpn_ != done_qpn_)
    if (const QpCtx* q = t_.qp_ptr(hint_qpn_)) prefetch_ctx(q);
  done_qpn_ = hint_qpn_;
  const w::OpInfo& info = w::op_info(t[0]);
  if (info.valid && (info.ext_mask & w::kExtReth))
    hint_rkey_ = w::load_be32(t + w::kBthLen + offsetof(w::Reth, rkey));
}

}  // namespace rn::qp
