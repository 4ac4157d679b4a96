#include "model/qp/responder.h"

#include <algorithm>
#include <cstring>

#include "model/core/hot.h"
#include "model/qp/scatter.h"
#include "model/wire/transport.h"

namespace rn::qp {

using dev::WcStatus;
namespace w = rn::wire;
using Kind = w::OpInfo::Kind;
using Pos = w::OpInfo::Pos;

Responder::Responder(const NicEnv& env, QpTable& t, pcie::DmaPort& dma, TxPort& port,
                     Completion& comp, RxBuffer& rxbuf, net::FramePool& pool)
    : env_(env),
      t_(t),
      dma_(dma),
      port_(port),
      comp_(comp),
      rxbuf_(rxbuf),
      pool_(pool),
      stats_(env.sim.stats, env.name + ".resp", "RC responder: requests, receive WQEs, ACKs"),
      drop_qp_gone_(stats_.counter("drop_qp_gone", "count",
                                   "dropped: the QP was destroyed while the request waited")),
      drop_state_(stats_.counter("drop_qp_state", "count", "dropped: QP not able to receive")),
      duplicates_(stats_.counter("duplicates", "count", "duplicate requests (PSN behind)")),
      seq_naks_(stats_.counter("seq_naks", "count", "PSN sequence error NAKs sent")),
      naks_sent_(stats_.counter("naks", "count",
                                "error NAKs sent (invalid request, access, operational)")),
      read_dma_errors_(stats_.counter("read_dma_errors", "count",
                                      "READ response packets whose payload's DMA read failed "
                                      "(not sent: NAK remote operational error)")),
      rnr_naks_(stats_.counter("rnr_naks", "count", "RNR NAKs sent: no receive WQE posted")),
      acks_sent_(stats_.counter("acks", "count", "ACKs sent")),
      placed_bytes_(stats_.counter("placed_bytes", "B", "payload bytes written to host memory")),
      messages_(stats_.counter("messages", "count", "messages received completely")),
      stalls_(stats_.counter("stalls", "count",
                             "request pipeline stalls waiting for a receive WQE fetch")),
      stalls_xlate_(stats_.counter("stalls_translation", "count",
                                   "request pipeline stalls waiting for the translation stage")),
      rwqe_fetches_(stats_.counter("rwqe_fetches", "count", "DMA reads of receive WQEs")),
      srq_fetches_(stats_.counter("srq_wqe_fetches", "count",
                                  "DMA reads of shared receive queue (SRQ) WQEs")),
      srq_taken_(stats_.counter("srq_wqes_taken", "count", "receive WQEs QPs took from SRQs")),
      srq_limit_events_(stats_.counter("srq_limit_events", "count",
                                       "SRQ_LIMIT_REACHED events: an SRQ fell below its limit")),
      last_wqe_events_(
          stats_.counter("last_wqe_events", "count",
                         "QP_LAST_WQE_REACHED events: a QP attached to an SRQ entered ERR")),
      flushed_(stats_.counter("flushed", "count", "receive WQEs completed with WR_FLUSH_ERR")),
      unsupported_ops_(
          stats_.counter("unsupported_requests", "count",
                         "requests refused with NAK_INV_REQ: SEND with invalidate (not modelled)")),
      read_requests_(stats_.counter("read_requests", "count", "RDMA READ requests executed")),
      read_dups_(stats_.counter("read_duplicates", "count",
                                "duplicate READ requests executed again (after a loss)")),
      read_packets_(stats_.counter("read_responses", "count", "READ response packets sent")),
      read_bytes_(stats_.counter("read_bytes", "B", "bytes read from host memory for responses")),
      atomics_(stats_.counter("atomics", "count", "atomic requests executed")),
      atomic_replays_(stats_.counter(
          "atomic_replays", "count",
          "duplicate atomic requests answered from the QP's results, not executed again")),
      acks_coalesced_(stats_.counter(
          "acks_coalesced", "count",
          "AckReqs answered by a later ACK (nic.ack_coalesce), not by one of their own")),
      uc_dropped_(stats_.counter(
          "uc_dropped", "count",
          "UC messages dropped: a packet lost (PSN gap), no receive WQE, or a check failed")),
      uc_skipped_(stats_.counter("uc_skipped", "count",
                                 "UC packets skipped while waiting for a FIRST or ONLY")),
      ud_qkey_drops_(stats_.counter("ud_qkey_drops", "count",
                                    "UD datagrams dropped: their DETH Q_Key is not the QP's")),
      ud_no_wqe_drops_(
          stats_.counter("ud_no_wqe_drops", "count",
                         "UD datagrams dropped: no receive WQE posted (no RNR in UD)")),
      ud_dropped_(stats_.counter(
          "ud_dropped", "count",
          "UD datagrams dropped after taking a receive WQE, completed in error: the buffer holds "
          "less than the payload + 40 (LOC_LEN_ERR), a bad receive WQE or lkey")),
      atomic_dups_lost_(stats_.counter(
          "atomic_duplicates_dropped", "count",
          "duplicate atomic requests older than the results kept (max_dest_rd_atomic): dropped")) {
  pending_.reserve(256);
  replies_.reserve(64);
  port_.add_source(this);
}

Responder::~Responder() {
  env_.sim.stats.remove(&stats_);
  for (size_t i = pending_head_; i < pending_.size(); ++i) pool_.put(pending_[i].f);
}

void Responder::use_translation(xlate::Stage& s) {
  xl_.use(s);
  s.add_waker([this] {
    if (pipe_ == Pipe::kStalled) resume();
    if (replies_wait_ == ReplyWait::kTranslation) {
      replies_wait_ = ReplyWait::kNone;
      port_.kick();
    }
  });
}

RN_HOT xlate::Status Responder::lookup(uint32_t key, uint32_t pdn, uint64_t va, uint64_t len,
                                       uint32_t need, Placement& pl, bool place) {
  Tick at = 0;
  const xlate::Status st = xl_.lookup(key, pdn, va, len, need, place ? &pl.segs : nullptr, &at);
  if (st == xlate::Status::kOk) pl.ready = std::max(pl.ready, at);
  return st;
}

void Responder::rq_doorbell(QpCtx& q, uint32_t new_pi) {
  q.rq.pi = new_pi;
  if (q.state == dev::QpState::ERR) {
    continue_flush(q);
    return;
  }
  maybe_fetch(q);
}

void Responder::maybe_fetch(QpCtx& q) {
  if (q.rq.fetch == WqeFetch::kInFlight || q.rq.fetched == q.rq.pi) return;
  const uint32_t slots = static_cast<uint32_t>(q.rq.cache.size());
  uint32_t room = slots - (q.rq.fetched - q.rq.ci);
  if (room == 0) return;
  uint32_t pos = q.rq.fetched & (q.rq_size() - 1);
  uint32_t n = std::min({room, q.rq.pi - q.rq.fetched, q.rq_size() - pos});
  q.rq.fetch = WqeFetch::kInFlight;
  ++rwqe_fetches_;
  uint64_t addr = q.rq_addr + (uint64_t(pos) << q.rq_shift);
  uint32_t qpn = q.qpn;
  uint32_t epoch = q.epoch;
  std::vector<uint8_t>* buf = t_.get_fetch_buf(size_t(n) << q.rq_shift);
  dma_.dma_read(addr, buf->data(), n << q.rq_shift, now(), [this, qpn, n, epoch, buf] {
    QpCtx* qq = t_.qp(qpn);
    if (!qq || qq->epoch != epoch) {  // destroyed or reset meanwhile: the WQEs are stale
      t_.put_fetch_buf(buf);
      if (pipe_ == Pipe::kStalled) resume();
      return;
    }
    QpCtx& q2 = *qq;
    unpack_wqes<RecvWqeCache>(buf->data(), n, q2.rq_shift, q2.rq.cache, q2.rq.fetched,
                              dev::max_recv_sge(q2.rq_shift));
    t_.put_fetch_buf(buf);
    q2.rq.fetched += n;
    q2.rq.fetch = WqeFetch::kIdle;
    if (q2.state == dev::QpState::ERR) {
      continue_flush(q2);
    } else {
      maybe_fetch(q2);
    }
    if (pipe_ == Pipe::kStalled) resume();
  });
}

void Responder::srq_doorbell(SrqCtx& s, uint32_t new_pi) {
  s.pi = new_pi;
  maybe_fetch_srq(s);
}

void Responder::maybe_fetch_srq(SrqCtx& s) {
  if (s.fetch == WqeFetch::kInFlight || s.fetched == s.pi) return;
  const uint32_t slots = static_cast<uint32_t>(s.cache.size());
  const uint32_t room = slots - (s.fetched - s.taken);
  if (room == 0) return;
  const uint32_t pos = s.fetched & (s.size() - 1);
  const uint32_t n = std::min({room, s.pi - s.fetched, s.size() - pos});
  s.fetch = WqeFetch::kInFlight;
  ++srq_fetches_;
  const uint64_t addr = s.ring + (uint64_t(pos) << s.shift);
  const uint32_t srqn = s.srqn, epoch = s.epoch;
  std::vector<uint8_t>* buf = t_.get_fetch_buf(size_t(n) << s.shift);
  dma_.dma_read(addr, buf->data(), n << s.shift, now(), [this, srqn, n, epoch, buf] {
    SrqCtx* ss = t_.srq(srqn);
    if (ss && ss->epoch == epoch) {  // else destroyed meanwhile: the WQEs are stale
      unpack_wqes<RecvWqeCache>(buf->data(), n, ss->shift, ss->cache, ss->fetched,
                                dev::max_recv_sge(ss->shift));
      ss->fetched += n;
      ss->fetch = WqeFetch::kIdle;
      maybe_fetch_srq(*ss);
    }
    t_.put_fetch_buf(buf);
    if (pipe_ == Pipe::kStalled) resume();
  });
}

Responder::Outcome Responder::srq_take(QpCtx& q) {
  SrqCtx& s = *t_.srq(q.srqn);  // it exists: DESTROY_SRQ is refused while a QP uses it
  if (s.taken == s.fetched) {
    if (s.taken == s.pi) return Outcome::kDone;
    maybe_fetch_srq(s);
    return Outcome::kStall;  // keep the packet; resumed when the fetch lands
  }
  // The WQE becomes the QP's: its header and the entries it uses go to the QP's one slot.
  const RecvWqeCache& c = s.cache[s.taken % s.cache.size()];
  RecvWqeCache& mine = q.rq.cache[0];
  mine.hdr = c.hdr;
  const uint32_t ns = std::min<uint32_t>(c.hdr.num_sge, dev::max_recv_sge(s.shift));
  std::copy(c.sge, c.sge + ns, mine.sge);
  q.rq.srq_idx = s.taken;
  ++s.taken;
  ++q.rq.pi;
  ++q.rq.fetched;
  ++srq_taken_;
  RN_LOG(env_.sim, LogCat::kRx, env_.name, "qp {} takes WQE {} of SRQ {} ({} left)", q.qpn,
         q.rq.srq_idx, s.srqn, s.pi - s.taken);
  if (s.limit != 0 && s.pi - s.taken < s.limit) {
    ++srq_limit_events_;
    RN_LOG(env_.sim, LogCat::kError, env_.name, "SRQ {}: {} WQEs left, below its limit {}", s.srqn,
           s.pi - s.taken, s.limit);
    comp_.post_eqe(dev::EqeType::SRQ_LIMIT_REACHED, s.srqn, s.limit, now());
    s.limit = 0;  // disarmed: MODIFY_SRQ arms it again
  }
  maybe_fetch_srq(s);
  return Outcome::kGo;
}

Responder::Outcome Responder::no_receive_wqe(QpCtx& q, uint32_t psn) {
  if (q.uc()) return fail(q, 0, psn, "no receive WQE");
  ++rnr_naks_;
  RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} psn {}: no receive WQE -> RNR NAK", q.qpn,
         psn);
  send_ack(q, w::aeth_rnr_nak(q.min_rnr_timer), psn);
  return Outcome::kDone;
}

RN_HOT void Responder::on_request(const RxPacket& p) {
  if (pipe_ == Pipe::kStalled) {
    rxbuf_.hold(p.f->len);
    pending_.push_back(p);
    return;
  }
  const Outcome o = process(p);
  if (o == Outcome::kStall || o == Outcome::kWait) {
    pipe_ = Pipe::kStalled;
    ++(o == Outcome::kStall ? stalls_ : stalls_xlate_);
    rxbuf_.hold(p.f->len);
    pending_.push_back(p);
    return;
  }
  finish(p, o);
}

void Responder::finish(const RxPacket& p, Outcome o) {
  if (o != Outcome::kLent) pool_.put(p.f);
}

void Responder::resume() {
  pipe_ = Pipe::kFlowing;
  while (pending_head_ < pending_.size()) {
    const RxPacket p = pending_[pending_head_];
    rxbuf_.unhold(p.f->len);  // out of the stall queue (held again if its payload is placed)
    const Outcome o = process(p);
    if (o == Outcome::kStall || o == Outcome::kWait) {
      rxbuf_.hold(p.f->len);
      pipe_ = Pipe::kStalled;
      return;
    }
    finish(p, o);
    ++pending_head_;
  }
  pending_.clear();
  pending_head_ = 0;
}

void Responder::owe_ack(QpCtx& q, uint32_t psn) {
  if (q.rs.ack_owed) ++acks_coalesced_;  // the ACK owed already will answer this one too
  q.rs.ack_owed = true;
  q.rs.ack_psn = psn;
  if (q.rs.ack_booked) return;
  q.rs.ack_booked = true;
  const uint32_t qpn = q.qpn, epoch = q.epoch;
  env_.sim.eq.after(env_.params.ack_coalesce, [this, qpn, epoch] {
    QpCtx* qq = t_.qp(qpn);
    if (!qq || qq->epoch != epoch) return;
    qq->rs.ack_booked = false;
    if (!qq->rs.ack_owed || !qq->receives()) return;
    ++acks_sent_;
    send_ack(*qq, w::kAethSynAck, qq->rs.ack_psn);
  });
}

Responder::Reply& Responder::queue_reply(const QpCtx& q, Reply::Kind kind, uint32_t psn) {
  Reply r{};
  r.kind = kind;
  r.qpn = q.qpn;
  r.epoch = q.epoch;
  r.psn = psn;
  r.msn = q.rs.msn;
  replies_.push_back(r);
  return replies_.back();
}

RN_HOT void Responder::send_ack(QpCtx& q, uint8_t syndrome, uint32_t psn) {
  q.rs.ack_owed = false;  // what is sent now acknowledges a PSN at or after the one owed
  if (reply_head_ < replies_.size() || unsent_ > 0) {  // behind responses owed: never ahead
    queue_reply(q, Reply::Kind::kAck, psn).syndrome = syndrome;
    return;
  }
  net::Frame* f = port_.new_frame();
  w::TransportHeader h{};
  h.opcode = w::to_u8(w::Opcode::RC_ACKNOWLEDGE);
  h.pkey = 0xFFFF;
  h.dest_qp = q.dest_qpn;
  h.psn = psn;
  h.aeth_syndrome = syndrome;
  h.aeth_msn = q.rs.msn & 0xFFFFFF;
  size_t tl = w::encode_transport_header(h, f->data + port_.headroom());
  RN_LOG(env_.sim, LogCat::kRx, env_.name, "qp {} send {} psn {} msn {}", q.qpn,
         w::aeth_syndrome_name(syndrome), psn, h.aeth_msn);
  port_.send_control(f, tl, q.path, now() + env_.params.rx_pipeline_latency);
}

Responder::Outcome Responder::fail(QpCtx& q, uint8_t syn, uint32_t psn, const char* why) {
  if (q.uc()) {  // UC: no NAK, the QP stays: the message is dropped, the rest of it too
    ++uc_dropped_;
    RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} psn {}: {}: UC message dropped", q.qpn, psn,
           why);
    q.rs.msg = RxMsg::kNone;
    q.rs.uc_dropping = true;
    return Outcome::kDone;
  }
  RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} psn {}: {} -> {}", q.qpn, psn, why,
         w::aeth_syndrome_name(syn));
  ++naks_sent_;
  send_ack(q, syn, psn);
  life_->fail(q);
  return Outcome::kDone;
}

void Responder::recv_complete(QpCtx& q, WcStatus st, uint32_t byte_len, dev::WcOpcode op, bool imm,
                              uint32_t imm_data, bool solicited, Tick when,
                              const w::TransportHeader* ud) {
  const RecvWqeCache& c = q.rq.cache[q.rq.ci % q.rq.cache.size()];
  CqeInfo e;
  e.wr_id = c.hdr.wr_id;
  e.byte_len = byte_len;
  e.imm = imm_data;
  e.qpn = q.qpn;
  e.src_qp = ud ? ud->deth_src_qp : q.dest_qpn;
  e.wqe_counter = q.srqn != 0 ? q.rq.srq_idx : q.rq.ci;  // an SRQ's WQE: its index there
  e.opcode = op;
  e.status = st;
  e.flags = imm ? static_cast<uint8_t>(dev::CqeFlags::WITH_IMM) : 0;
  if (solicited) e.flags |= static_cast<uint8_t>(dev::CqeFlags::SOLICITED);
  if (ud && st == WcStatus::SUCCESS) e.flags |= static_cast<uint8_t>(dev::CqeFlags::GRH);
  e.solicited = solicited;
  comp_.post_cqe(q.recv_cqn, e, when);
  ++q.rq.ci;
  maybe_fetch(q);
}

RN_HOT Responder::Outcome Responder::check_psn(QpCtx& q, const RxPacket& p) {
  if (q.uc()) return check_psn_uc(q, p);
  const int32_t d = w::psn_cmp(p.h.psn, q.rs.epsn);
  if (d < 0 && p.h.opcode == w::to_u8(w::Opcode::RC_RDMA_READ_REQUEST)) {
    ++duplicates_;
    return read_request(q, p, true);
  }
  if (d < 0 && w::op_info(p.h.opcode).has(w::kExtAtomicEth)) {
    ++duplicates_;
    return atomic_duplicate(q, p);
  }
  if (d < 0) {
    ++duplicates_;
    // Duplicates are acknowledged again (cumulatively, with the last PSN received), AckReq or not.
    send_ack(q, w::kAethSynAck, w::psn_add(q.rs.epsn, 0xFFFFFF));
    return Outcome::kDone;
  }
  if (d > 0) {
    if (q.rs.nak == SeqNak::kNone) {  // one NAK per sequence error
      q.rs.nak = SeqNak::kSent;
      ++seq_naks_;
      send_ack(q, w::kAethSynNakPsnSeq, q.rs.epsn);
    }
    return Outcome::kDone;
  }
  return Outcome::kGo;
}

Responder::Outcome Responder::check_psn_uc(QpCtx& q, const RxPacket& p) {
  // UC: any PSN is taken; one that is not the expected one means packets were lost, and the
  // message they belonged to is dropped (its receive WQE stays for the next SEND). Packets are
  // then dropped until a FIRST or ONLY starts a new message.
  const w::OpInfo& info = w::op_info(p.h.opcode);
  if (p.h.psn != q.rs.epsn) {
    if (q.rs.msg != RxMsg::kNone) ++uc_dropped_;
    q.rs.msg = RxMsg::kNone;
    q.rs.uc_dropping = true;
    q.rs.epsn = p.h.psn;
  }
  if (info.is_first()) q.rs.uc_dropping = false;
  if (q.rs.uc_dropping) {
    q.rs.epsn = w::psn_add(p.h.psn, 1);
    ++uc_skipped_;
    return Outcome::kDone;
  }
  return Outcome::kGo;
}

RN_HOT Responder::Outcome Responder::process(const RxPacket& p) {
  const w::TransportHeader& h = p.h;
  QpCtx* qp = t_.qp(h.dest_qp);
  if (!qp) {  // destroyed while the packet waited behind a stall
    ++drop_qp_gone_;
    return Outcome::kDone;
  }
  QpCtx& q = *qp;
  if (!q.receives()) {
    ++drop_state_;
    return Outcome::kDone;
  }
  const Tick when = now() + env_.params.rx_pipeline_latency;
  if (q.ud()) return ud_request(q, p, when);
  if (Outcome o = check_psn(q, p); o != Outcome::kGo) return o;

  // Opcode sequence: a FIRST/ONLY starts a message, MIDDLE/LAST continue one of the same kind.
  const w::OpInfo& info = w::op_info(h.opcode);
  const bool is_send = info.kind == Kind::Send;
  const bool is_write = info.kind == Kind::Write;
  if (info.kind == Kind::ReadReq) {
    if (q.rs.msg != RxMsg::kNone)
      return fail(q, w::kAethSynNakInvReq, h.psn, "opcode out of sequence");
    return read_request(q, p, false);
  }
  if (info.kind == Kind::CmpSwap || info.kind == Kind::FetchAdd) {
    if (q.rs.msg != RxMsg::kNone)
      return fail(q, w::kAethSynNakInvReq, h.psn, "opcode out of sequence");
    return atomic_request(q, p);
  }
  if (!is_send && !is_write) {
    ++unsupported_ops_;
    return fail(q, w::kAethSynNakInvReq, h.psn, "not a request opcode");
  }
  if (info.has(w::kExtIeth)) {
    ++unsupported_ops_;
    return fail(q, w::kAethSynNakInvReq, h.psn,
                "SEND with invalidate is not modelled yet (the rkey would stay valid)");
  }
  const RxMsg want = is_send ? RxMsg::kSend : RxMsg::kWrite;
  if (info.is_first() ? q.rs.msg != RxMsg::kNone : q.rs.msg != want)
    return fail(q, w::kAethSynNakInvReq, h.psn, "opcode out of sequence");
  // Payload sizes: FIRST and MIDDLE carry exactly one MTU.
  if ((info.pos == Pos::First || info.pos == Pos::Middle) && p.plen != q.mtu)
    return fail(q, w::kAethSynNakInvReq, h.psn, "FIRST/MIDDLE payload is not one MTU");
  if (p.plen > q.mtu)
    return fail(q, w::kAethSynNakInvReq, h.psn, "payload larger than the path MTU");
  // A receive WQE is needed now for a SEND's first packet and a WRITE with immediate's last.
  if ((is_send && info.is_first()) || (is_write && info.has(w::kExtImmDt))) {
    if (q.rq.ci == q.rq.fetched) {
      if (q.srqn != 0) {  // a QP attached to an SRQ takes the SRQ's next WQE
        const Outcome o = srq_take(q);
        if (o == Outcome::kStall) return o;
        if (o != Outcome::kGo) return no_receive_wqe(q, h.psn);
      } else if (q.rq.ci != q.rq.pi) {
        maybe_fetch(q);
        return Outcome::kStall;  // keep the packet; resumed when the fetch lands
      } else {
        return no_receive_wqe(q, h.psn);
      }
    }
  }
  Placement pl;
  pl.ready = now();
  const Outcome o = is_send ? send_packet(q, p, pl, when) : write_packet(q, p, pl);
  if (o != Outcome::kGo) return o;
  return accept(q, p, pl, when);
}

RN_NOINLINE Responder::Outcome Responder::ud_request(QpCtx& q, const RxPacket& p, Tick when) {
  // The demultiplexer sent only UD SEND_ONLY (with immediate) here, with its DETH. Any PSN is
  // taken (nothing orders datagrams); nothing is ever sent back.
  const w::TransportHeader& h = p.h;
  if (h.deth_qkey != q.qkey) {
    ++ud_qkey_drops_;
    RN_LOG(env_.sim, LogCat::kError, env_.name,
           "qp {} UD from qp {}: Q_Key {:#x} is not the QP's {:#x}: dropped", q.qpn, h.deth_src_qp,
           h.deth_qkey, q.qkey);
    return Outcome::kDone;
  }
  if (p.plen > q.mtu) {
    ++ud_dropped_;
    RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} UD of {} bytes > MTU {}: dropped", q.qpn,
           p.plen, q.mtu);
    return Outcome::kDone;
  }
  if (q.rq.ci == q.rq.fetched) {
    Outcome o = Outcome::kDone;
    if (q.srqn != 0) {  // a QP attached to an SRQ takes the SRQ's next WQE
      o = srq_take(q);
    } else if (q.rq.ci != q.rq.pi) {
      maybe_fetch(q);
      o = Outcome::kStall;
    }
    if (o == Outcome::kStall) return o;  // keep the packet; resumed when the fetch lands
    if (o != Outcome::kGo) {
      ++ud_no_wqe_drops_;  // no RNR in UD: the datagram is lost
      RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} UD psn {}: no receive WQE: dropped", q.qpn,
             h.psn);
      return Outcome::kDone;
    }
  }
  const bool has_imm = w::op_info(h.opcode).has(w::kExtImmDt);
  // The buffer gets the 40-byte GRH area, then the payload. For RoCEv2 over IPv4 (as rxe and
  // rdma-core lay it out) the area's last 20 bytes are the packet's IPv4 header; its first 20
  // are left as they are. So [20, 40 + plen) of the buffer is written.
  const RecvWqeCache& c = q.rq.cache[q.rq.ci % q.rq.cache.size()];
  const uint32_t nsge = std::min<uint32_t>(c.hdr.num_sge, dev::max_recv_sge(q.rq_shift));
  uint64_t total = 0;
  for (uint32_t i = 0; i < nsge; ++i) total += c.sge[i].length;
  if (c.hdr.num_sge > dev::max_recv_sge(q.rq_shift) || total < kUdGrhBytes + uint64_t(p.plen)) {
    const bool malformed = c.hdr.num_sge > dev::max_recv_sge(q.rq_shift);
    ++ud_dropped_;
    RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} UD psn {} len {}: {}", q.qpn, h.psn, p.plen,
           malformed ? "malformed receive WQE (too many SGEs)"
                     : "receive buffers hold less than the payload + 40");
    recv_complete(q, malformed ? WcStatus::LOC_QP_OP_ERR : WcStatus::LOC_LEN_ERR, 0,
                  dev::WcOpcode::RECV, false, 0, false, when, &h);
    return Outcome::kDone;
  }
  Placement pl;
  pl.ready = now();
  // [20, 40 + plen) of the buffer: the IPv4 header, then the payload.
  uint32_t lkey = 0;
  const xlate::Status st =
      scatter(xl_, c.sge, nsge, q.pdn, kUdGrhBytes - w::kIpv4HdrLen,
              static_cast<uint32_t>(w::kIpv4HdrLen) + p.plen, &pl.segs, &pl.ready, &lkey);
  if (st == xlate::Status::kPending) return Outcome::kWait;  // nothing changed yet
  if (st != xlate::Status::kOk) {
    ++ud_dropped_;
    RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} UD receive lkey {:#x}: {}", q.qpn, lkey,
           xlate::to_string(st));
    env_.driver_error(DriverError::kRecvAccess, q.qpn, "QP {} receive WQE: lkey {:#x}: {}", q.qpn,
                      lkey, xlate::to_string(st));
    recv_complete(q, WcStatus::LOC_PROT_ERR, 0, dev::WcOpcode::RECV, false, 0, false, when, &h);
    return Outcome::kDone;
  }
  // The IPv4 header goes right in front of the payload, over the UDP header, BTH and DETH
  // (already decoded): one DMA write from the frame places the header and the payload.
  net::Frame* f = p.f;
  f->unseal();  // a payload kept by page reference comes into the frame: 20 more bytes go
  const uint32_t off = p.payload_off - static_cast<uint32_t>(w::kIpv4HdrLen);
  std::memcpy(f->data + off, f->data + w::kEthHdrLen, w::kIpv4HdrLen);
  const Tick place_at = when + (pl.ready - now());
  rxbuf_.place(dma_, pl.segs, f, off, static_cast<uint32_t>(w::kIpv4HdrLen) + p.plen, place_at,
               pool_);
  placed_bytes_ += p.plen;
  ++messages_;
  q.rs.epsn = w::psn_add(h.psn, 1);
  RN_LOG(env_.sim, LogCat::kRx, env_.name, "qp {} {} psn {} len {} from qp {}", q.qpn,
         w::op_info(h.opcode).name, h.psn, p.plen, h.deth_src_qp);
  recv_complete(q, WcStatus::SUCCESS, kUdGrhBytes + p.plen, dev::WcOpcode::RECV, has_imm, h.imm,
                h.se, place_at, &h);
  return Outcome::kLent;
}

Responder::Outcome Responder::send_packet(QpCtx& q, const RxPacket& p, Placement& pl, Tick when) {
  const w::TransportHeader& h = p.h;
  if (w::op_info(h.opcode).is_first()) q.rs.rx_off = 0;
  const RecvWqeCache& c = q.rq.cache[q.rq.ci % q.rq.cache.size()];
  const uint32_t nsge = std::min<uint32_t>(c.hdr.num_sge, dev::max_recv_sge(q.rq_shift));
  uint64_t total = 0;
  for (uint32_t i = 0; i < nsge; ++i) total += c.sge[i].length;
  if (c.hdr.num_sge > dev::max_recv_sge(q.rq_shift)) {
    recv_complete(q, WcStatus::LOC_QP_OP_ERR, q.rs.rx_off, dev::WcOpcode::RECV, false, 0, false,
                  when);
    return fail(q, w::kAethSynNakRemOp, h.psn, "malformed receive WQE (too many SGEs)");
  }
  if (q.rs.rx_off + uint64_t(p.plen) > total) {
    recv_complete(q, WcStatus::LOC_LEN_ERR, q.rs.rx_off, dev::WcOpcode::RECV, false, 0, false,
                  when);
    return fail(q, w::kAethSynNakInvReq, h.psn, "SEND longer than the receive buffers");
  }
  // Scatter [rx_off, rx_off+plen) over the SGEs.
  uint32_t lkey = 0;
  const xlate::Status st =
      scatter(xl_, c.sge, nsge, q.pdn, q.rs.rx_off, p.plen, &pl.segs, &pl.ready, &lkey);
  if (st == xlate::Status::kPending) return Outcome::kWait;
  if (st != xlate::Status::kOk) {
    RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} receive lkey {:#x}: {}", q.qpn, lkey,
           xlate::to_string(st));
    env_.driver_error(DriverError::kRecvAccess, q.qpn, "QP {} receive WQE: lkey {:#x}: {}", q.qpn,
                      lkey, xlate::to_string(st));
    recv_complete(q, WcStatus::LOC_PROT_ERR, q.rs.rx_off, dev::WcOpcode::RECV, false, 0, false,
                  when);
    return fail(q, w::kAethSynNakRemOp, h.psn, "receive buffer not accessible");
  }
  return Outcome::kGo;
}

RN_HOT Responder::Outcome Responder::write_packet(QpCtx& q, const RxPacket& p, Placement& pl) {
  const w::TransportHeader& h = p.h;
  const w::OpInfo& info = w::op_info(h.opcode);
  const uint32_t rw = static_cast<uint32_t>(dev::Access::REMOTE_WRITE);
  // An rkey violation: NAK remote access error, the QP to ERR. An RC WRITE with immediate has
  // taken its receive WQE (process()): it completes with LOC_ACCESS_ERR, as IBA and the verbs say
  // (a protection error on a local buffer during an RDMA WRITE with immediate from the remote).
  // UC drops the message and keeps the WQE (fail()).
  auto refuse = [&] {
    if (info.has(w::kExtImmDt) && !q.uc())
      recv_complete(q, WcStatus::LOC_ACCESS_ERR, 0, dev::WcOpcode::RECV_RDMA_WITH_IMM, false, 0,
                    false, now() + env_.params.rx_pipeline_latency);
    return fail(q, w::kAethSynNakRemAccess, h.psn, "rkey check failed");
  };
  if (info.is_first()) {
    if (!(q.access & rw))
      return fail(q, w::kAethSynNakInvReq, h.psn, "QP does not allow remote writes");
    q.rs.w_va = h.reth_va;
    q.rs.w_rkey = h.reth_rkey;
    q.rs.w_len = h.reth_len;
    q.rs.rx_off = 0;
    if (q.rs.w_len > 0) {
      xlate::Status st = lookup(q.rs.w_rkey, q.pdn, q.rs.w_va, q.rs.w_len, rw, pl, false);
      if (st == xlate::Status::kPending) return Outcome::kWait;
      if (st != xlate::Status::kOk) {
        RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} WRITE rkey {:#x} va {:#x} len {}: {}",
               q.qpn, q.rs.w_rkey, q.rs.w_va, q.rs.w_len, xlate::to_string(st));
        return refuse();
      }
    }
  }
  const uint64_t end = q.rs.rx_off + uint64_t(p.plen);
  if (info.is_last() ? end != q.rs.w_len : end >= q.rs.w_len)
    return fail(q, w::kAethSynNakInvReq, h.psn, "WRITE payload does not match the RETH length");
  if (p.plen > 0) {
    xlate::Status st = lookup(q.rs.w_rkey, q.pdn, q.rs.w_va + q.rs.rx_off, p.plen, rw, pl, true);
    if (st == xlate::Status::kPending) return Outcome::kWait;
    if (st != xlate::Status::kOk) return refuse();
  }
  return Outcome::kGo;
}

RN_HOT RN_INLINE Responder::Outcome Responder::accept(QpCtx& q, const RxPacket& p,
                                                      const Placement& pl, Tick when) {
  // The payload is placed, and the message completed, once the translation is known.
  const Tick place_at = when + (pl.ready - now());
  const w::TransportHeader& h = p.h;
  const w::OpInfo& info = w::op_info(h.opcode);
  Outcome o = Outcome::kDone;
  if (p.plen > 0) {
    // The payload goes to host memory straight from the frame, which returns to the pool once
    // the write has landed.
    rxbuf_.place(dma_, pl.segs, p.f, p.payload_off, p.plen, place_at, pool_);
    o = Outcome::kLent;
    placed_bytes_ += p.plen;
  }
  q.rs.rx_off += p.plen;
  q.rs.epsn = w::psn_add(q.rs.epsn, 1);
  q.rs.nak = SeqNak::kNone;
  RN_LOG(env_.sim, LogCat::kRx, env_.name, "qp {} {} psn {} len {}", q.qpn, info.name, h.psn,
         p.plen);
  const bool is_send = info.kind == Kind::Send;
  const bool has_imm = info.has(w::kExtImmDt);
  if (info.is_last()) {
    ++messages_;
    q.rs.msn = (q.rs.msn + 1) & 0xFFFFFF;
    if (is_send) {
      recv_complete(q, WcStatus::SUCCESS, q.rs.rx_off, dev::WcOpcode::RECV, has_imm, h.imm, h.se,
                    place_at);
    } else if (has_imm) {
      recv_complete(q, WcStatus::SUCCESS, q.rs.w_len, dev::WcOpcode::RECV_RDMA_WITH_IMM, true,
                    h.imm, h.se, place_at);
    }
    q.rs.msg = RxMsg::kNone;
  } else {
    q.rs.msg = is_send ? RxMsg::kSend : RxMsg::kWrite;
  }
  if (h.ack_req && !q.uc()) {
    if (env_.params.ack_coalesce == 0) {
      ++acks_sent_;
      send_ack(q, w::kAethSynAck, h.psn);
    } else {
      owe_ack(q, h.psn);
    }
  }
  return o;
}

Responder::Outcome Responder::read_request(QpCtx& q, const RxPacket& p, bool duplicate) {
  const w::TransportHeader& h = p.h;
  const uint32_t rr = static_cast<uint32_t>(dev::Access::REMOTE_READ);
  if (!(q.access & rr))
    return fail(q, w::kAethSynNakInvReq, h.psn, "QP does not allow remote reads");
  if (h.reth_len > 0x80000000u)
    return fail(q, w::kAethSynNakInvReq, h.psn, "READ longer than 2 GiB");
  if (!duplicate &&
      q.rs.reads_queued - q.rs.dups_queued >= std::max<uint32_t>(1, q.max_dest_rd_atomic))
    return fail(q, w::kAethSynNakInvReq, h.psn, "more READs outstanding than max_dest_rd_atomic");
  if (h.reth_len > 0) {
    Placement pl;
    const xlate::Status st = lookup(h.reth_rkey, q.pdn, h.reth_va, h.reth_len, rr, pl, false);
    if (st == xlate::Status::kPending) return Outcome::kWait;
    if (st != xlate::Status::kOk) {
      RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} READ rkey {:#x} va {:#x} len {}: {}",
             q.qpn, h.reth_rkey, h.reth_va, h.reth_len, xlate::to_string(st));
      return fail(q, w::kAethSynNakRemAccess, h.psn, "rkey check failed");
    }
  }
  const uint32_t n = h.reth_len == 0 ? 1 : (h.reth_len + q.mtu - 1) / q.mtu;
  if (duplicate) {
    ++read_dups_;
  } else {
    ++read_requests_;
    ++messages_;
    q.rs.epsn = w::psn_add(q.rs.epsn, n);
    q.rs.msn = (q.rs.msn + 1) & 0xFFFFFF;
    q.rs.nak = SeqNak::kNone;
  }
  RN_LOG(env_.sim, LogCat::kRx, env_.name, "qp {} RDMA_READ_REQUEST psn {} len {}{}", q.qpn, h.psn,
         h.reth_len, duplicate ? " (again)" : "");
  Reply& r = queue_reply(q, Reply::Kind::kRead, h.psn);
  r.va = h.reth_va;
  r.rkey = h.reth_rkey;
  r.len = h.reth_len;
  r.dup = duplicate;
  ++q.rs.reads_queued;
  q.rs.dups_queued += duplicate;
  q.rs.ack_owed = false;  // the responses acknowledge what came before
  port_.kick();
  return Outcome::kDone;
}

Responder::Outcome Responder::atomic_request(QpCtx& q, const RxPacket& p) {
  const w::TransportHeader& h = p.h;
  const uint32_t ra = static_cast<uint32_t>(dev::Access::REMOTE_ATOMIC);
  if (!(q.access & ra))
    return fail(q, w::kAethSynNakInvReq, h.psn, "QP does not allow remote atomics");
  if (h.atomic_va % 8 != 0)
    return fail(q, w::kAethSynNakInvReq, h.psn, "atomic address not 8-byte aligned");
  if (q.rs.reads_queued - q.rs.dups_queued >= std::max<uint32_t>(1, q.max_dest_rd_atomic))
    return fail(q, w::kAethSynNakInvReq, h.psn,
                "more READs and atomics outstanding than max_dest_rd_atomic");
  Placement pl;
  pl.ready = now();
  const xlate::Status st = lookup(h.atomic_rkey, q.pdn, h.atomic_va, 8, ra, pl, true);
  if (st == xlate::Status::kPending) return Outcome::kWait;
  if (st != xlate::Status::kOk) {
    RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} atomic rkey {:#x} va {:#x}: {}", q.qpn,
           h.atomic_rkey, h.atomic_va, xlate::to_string(st));
    return fail(q, w::kAethSynNakRemAccess, h.psn, "rkey check failed");
  }
  ++atomics_;
  ++messages_;
  q.rs.epsn = w::psn_add(q.rs.epsn, 1);
  q.rs.msn = (q.rs.msn + 1) & 0xFFFFFF;
  q.rs.nak = SeqNak::kNone;
  // Its result is kept in the QP's ring for a duplicate (sized once, at the largest allowed).
  if (q.rs.atomics.empty()) q.rs.atomics.resize(16);
  const uint32_t slot = q.rs.atomics_next++ % std::max<uint32_t>(1, q.max_dest_rd_atomic);
  q.rs.atomics[slot] = AtomicResult{h.psn, 0, false, true};
  const bool cas = h.opcode == w::to_u8(w::Opcode::RC_COMPARE_SWAP);
  RN_LOG(env_.sim, LogCat::kRx, env_.name, "qp {} {} psn {} va {:#x}", q.qpn,
         w::op_info(h.opcode).name, h.psn, h.atomic_va);
  queue_reply(q, Reply::Kind::kAtomic, h.psn);
  ++q.rs.reads_queued;
  q.rs.ack_owed = false;  // its acknowledgement acknowledges what came before
  AtomicOp op{};
  op.bus = pl.segs.seg[0].addr;
  op.cas = cas;
  op.compare = h.atomic_compare;
  op.swap_add = h.atomic_swap_add;
  op.ready = env_.now() + env_.params.rx_pipeline_latency + (pl.ready - now());
  op.reply = replies_.size() - 1;
  op.qpn = q.qpn;
  op.epoch = q.epoch;
  op.slot = slot;
  atomic_ops_.push_back(op);
  atomic_start();
  return Outcome::kDone;
}

Responder::Outcome Responder::atomic_duplicate(QpCtx& q, const RxPacket& p) {
  // Never executed twice: the result kept for that PSN goes back again, behind the replies owed.
  for (const AtomicResult& a : q.rs.atomics) {
    if (!a.valid || a.psn != p.h.psn) continue;
    if (!a.done) return Outcome::kDone;  // still executing: its acknowledgement is on its way
    ++atomic_replays_;
    RN_LOG(env_.sim, LogCat::kRx, env_.name, "qp {} {} psn {} again: replayed", q.qpn,
           w::op_info(p.h.opcode).name, p.h.psn);
    Reply& r = queue_reply(q, Reply::Kind::kAtomic, p.h.psn);
    r.ready = true;
    r.va = a.orig;
    r.dup = true;
    ++q.rs.reads_queued;
    ++q.rs.dups_queued;
    port_.kick();
    return Outcome::kDone;
  }
  ++atomic_dups_lost_;
  RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} {} psn {} again: no result kept, dropped",
         q.qpn, w::op_info(p.h.opcode).name, p.h.psn);
  return Outcome::kDone;
}

void Responder::atomic_start() {
  if (atomic_busy_ || atomic_head_ == atomic_ops_.size()) return;
  atomic_busy_ = true;
  const AtomicOp& op = atomic_ops_[atomic_head_];
  dma_.dma_read(op.bus, atomic_buf_, sizeof atomic_buf_, std::max(now(), op.ready),
                [this] { atomic_read_done(); });
}

void Responder::atomic_read_done() {
  const AtomicOp& op = atomic_ops_[atomic_head_];
  uint64_t orig;
  std::memcpy(&orig, atomic_buf_, sizeof orig);                // host order
  if (op.cas && orig != op.compare) return atomic_done(orig);  // nothing to write
  const uint64_t v = op.cas ? op.swap_add : orig + op.swap_add;
  dma_.dma_write(op.bus, reinterpret_cast<const uint8_t*>(&v), sizeof v, now(),
                 [this, orig] { atomic_done(orig); });
}

void Responder::atomic_done(uint64_t orig) {
  const AtomicOp op = atomic_ops_[atomic_head_];
  if (++atomic_head_ == atomic_ops_.size()) {
    atomic_ops_.clear();  // keeps its capacity
    atomic_head_ = 0;
  }
  atomic_busy_ = false;
  Reply& r = replies_[op.reply];
  r.ready = true;
  r.va = orig;
  QpCtx* q = t_.qp(op.qpn);
  if (q && q->epoch == op.epoch) {
    AtomicResult& a = q->rs.atomics[op.slot];
    if (a.valid && a.psn == r.psn) {
      a.orig = orig;
      a.done = true;
    }
  }
  atomic_start();
  port_.kick();
}

void Responder::pop_reply() {
  if (++reply_head_ == replies_.size()) {
    replies_.clear();  // keeps its capacity: no allocation once warm
    reply_head_ = 0;
  }
}

void Responder::produce() {
  Reply& r = replies_[reply_head_];
  QpCtx* qp = t_.qp(r.qpn);
  if (!qp || qp->epoch != r.epoch) return pop_reply();  // destroyed or reset meanwhile
  QpCtx& q = *qp;
  net::Frame* f = port_.new_frame();
  uint8_t* t = f->data + port_.headroom();
  w::TransportHeader h{};
  h.pkey = 0xFFFF;
  h.dest_qp = q.dest_qpn;
  h.psn = r.psn;
  h.aeth_msn = r.msn & 0xFFFFFF;
  if (r.kind == Reply::Kind::kAck) {
    h.opcode = w::to_u8(w::Opcode::RC_ACKNOWLEDGE);
    h.aeth_syndrome = r.syndrome;
    const size_t tl = w::encode_transport_header(h, t);
    port_.claim(f, static_cast<uint32_t>(tl), q.path, true, this);
    ++unsent_;
    pop_reply();
    return port_.drain();
  }
  if (!q.receives()) {  // the QP failed: its responses are not sent
    pool_.put(f);
    --q.rs.reads_queued;
    q.rs.dups_queued -= r.dup;
    return pop_reply();
  }
  if (r.kind == Reply::Kind::kAtomic) {
    h.opcode = w::to_u8(w::Opcode::RC_ATOMIC_ACKNOWLEDGE);
    h.aeth_syndrome = w::kAethSynAck;
    h.atomic_ack_orig = r.va;
    const size_t tl = w::encode_transport_header(h, t);
    port_.claim(f, static_cast<uint32_t>(tl), q.path, true, this);
    ++unsent_;
    --q.rs.reads_queued;
    q.rs.dups_queued -= r.dup;
    RN_LOG(env_.sim, LogCat::kRx, env_.name, "qp {} ATOMIC_ACKNOWLEDGE psn {} orig {:#x}", q.qpn,
           h.psn, r.va);
    pop_reply();
    return port_.drain();
  }
  const uint32_t plen = std::min(q.mtu, r.len - r.off);
  const bool first = r.off == 0;
  const bool last = r.off + plen == r.len;
  xlate::SegList segs;
  Tick ready = now();
  if (plen > 0) {
    const xlate::Status st =
        xl_.lookup(r.rkey, q.pdn, r.va + r.off, plen,
                   static_cast<uint32_t>(dev::Access::REMOTE_READ), &segs, &ready);
    if (st == xlate::Status::kPending) {
      pool_.put(f);
      replies_wait_ = ReplyWait::kTranslation;
      return;
    }
    if (st != xlate::Status::kOk) {  // deregistered since the request was checked
      pool_.put(f);
      --q.rs.reads_queued;
      q.rs.dups_queued -= r.dup;
      const uint32_t psn = r.psn;
      pop_reply();
      ++naks_sent_;
      send_ack(q, w::kAethSynNakRemAccess, psn);
      return life_->fail(q);
    }
  }
  using O = w::Opcode;
  h.opcode = w::to_u8(first && last ? O::RC_RDMA_READ_RESPONSE_ONLY
                      : first       ? O::RC_RDMA_READ_RESPONSE_FIRST
                      : last        ? O::RC_RDMA_READ_RESPONSE_LAST
                                    : O::RC_RDMA_READ_RESPONSE_MIDDLE);
  h.aeth_syndrome = w::kAethSynAck;
  h.pad_cnt = w::pad_for(plen);
  const size_t hl = w::encode_transport_header(h, t);
  std::memset(t + hl + plen, 0, h.pad_cnt);
  const uint32_t slot =
      port_.claim(f, static_cast<uint32_t>(hl + plen + h.pad_cnt), q.path, plen == 0, this);
  ++unsent_;
  ++read_packets_;
  read_bytes_ += plen;
  RN_LOG(env_.sim, LogCat::kRx, env_.name, "qp {} {} psn {} len {}", q.qpn,
         w::op_info(h.opcode).name, h.psn, plen);
  r.off += plen;
  r.psn = w::psn_add(r.psn, 1);
  if (last) {
    --q.rs.reads_queued;
    q.rs.dups_queued -= r.dup;
    pop_reply();
  }
  if (plen > 0) {
    dma_.dma_read(
        reinterpret_cast<const pcie::SgEntry*>(segs.seg), segs.n, t + hl, ready,
        [this, slot, qpn = q.qpn, epoch = q.epoch, psn = h.psn] {
          if (dma_.read_failed()) return read_failed(slot, qpn, epoch, psn);
          port_.landed(slot);
        },
        &f->payload_page);
  } else {
    port_.drain();
  }
}

// The payload of a READ response could not be read from host memory (the host's IOMMU found no
// mapping): the packet is not sent, and the responder answers the request with NAK remote
// operational error (IBA: an error local to the responder prevented it from completing the
// request) and moves the QP to ERR. Response packets before it may have left.
RN_NOINLINE void Responder::read_failed(uint32_t slot, uint32_t qpn, uint32_t epoch, uint32_t psn) {
  port_.dropped(slot);
  ++read_dma_errors_;
  QpCtx* q = t_.qp(qpn);
  if (!q || q->epoch != epoch || q->state == dev::QpState::ERR) return;
  fail(*q, w::kAethSynNakRemOp, psn, "a READ response's DMA read failed (IOMMU fault)");
}

void Responder::flush(QpCtx& q) {
  continue_flush(q);
  if (q.srqn != 0) {  // the SRQ's WQEs are not the QP's: only the one it had taken was flushed
    ++last_wqe_events_;
    comp_.post_eqe(dev::EqeType::QP_LAST_WQE_REACHED, q.qpn, q.srqn, now());
  }
}

void Responder::continue_flush(QpCtx& q) {
  const Tick when = now();
  while (q.rq.ci != q.rq.fetched) {
    recv_complete(q, WcStatus::WR_FLUSH_ERR, 0, dev::WcOpcode::RECV, false, 0, false, when);
    ++flushed_;
  }
  maybe_fetch(q);
}

void Responder::reset(QpCtx& q) {
  q.rq.pi = q.rq.fetched = q.rq.ci = 0;
  q.rq.fetch = WqeFetch::kIdle;
  q.rs = RespState{};  // replies queued for the QP are dropped: its epoch changes
}

}  // namespace rn::qp
