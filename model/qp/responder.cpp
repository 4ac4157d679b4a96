#include "model/qp/responder.h"

#include <algorithm>
#include <cstring>

#include "model/qp/requester.h"
#include "model/wire/transport.h"

namespace rn::qp {

using dev::WcStatus;
namespace w = rn::wire;
using Kind = w::OpInfo::Kind;
using Pos = w::OpInfo::Pos;

namespace {
uint32_t max_rsge_for(uint8_t shift) {
  return ((1u << shift) - sizeof(dev::RecvWqe)) / sizeof(dev::Sge);
}
}  // namespace

Responder::Responder(NicState& s)
    : s_(s),
      stats_(s.sim.stats, s.name + ".resp", "RC responder and receive path"),
      frames_(stats_.counter("frames", "count", "frames received from the port")),
      bytes_(stats_.counter("bytes", "B", "frame bytes received")),
      drop_frame_(stats_.counter("drop_framing", "count", "dropped: bad Ethernet/IP/UDP or ICRC")),
      drop_parse_(
          stats_.counter("drop_transport", "count", "dropped: bad BTH or extension headers")),
      drop_no_qp_(stats_.counter("drop_no_qp", "count", "dropped: destination QP does not exist")),
      drop_state_(stats_.counter("drop_qp_state", "count", "dropped: QP not able to receive")),
      drop_unsupported_(stats_.counter("drop_unsupported", "count",
                                       "dropped: transport not modelled (UC, UD, CNP)")),
      duplicates_(stats_.counter("duplicates", "count", "duplicate requests (PSN behind)")),
      seq_naks_(stats_.counter("seq_naks", "count", "PSN sequence error NAKs sent")),
      naks_sent_(stats_.counter("naks", "count",
                                "error NAKs sent (invalid request, access, operational)")),
      rnr_naks_(stats_.counter("rnr_naks", "count", "RNR NAKs sent: no receive WQE posted")),
      acks_sent_(stats_.counter("acks", "count", "ACKs sent")),
      placed_bytes_(stats_.counter("placed_bytes", "B", "payload bytes written to host memory")),
      messages_(stats_.counter("messages", "count", "messages received completely")),
      stalls_(stats_.counter("stalls", "count",
                             "receive pipeline stalls waiting for a receive WQE fetch")),
      rwqe_fetches_(stats_.counter("rwqe_fetches", "count", "DMA reads of receive WQEs")),
      flushed_(stats_.counter("flushed", "count", "receive WQEs completed with WR_FLUSH_ERR")),
      unsupported_ops_(stats_.counter(
          "unsupported_requests", "count",
          "requests refused with NAK_INV_REQ: READ, atomics, SEND with invalidate (not modelled)")),
      rx_buffer_drops_(stats_.counter("rx_buffer_drops", "count",
                                      "frames dropped on arrival: the receive buffer was full")),
      rx_buffer_drop_bytes_(stats_.counter("rx_buffer_drop_bytes", "B",
                                           "bytes of the frames dropped for want of room")),
      rx_buffer_peak_(
          stats_.counter("rx_buffer_peak", "B", "most bytes held in the receive buffer at once")) {
  pending_.reserve(256);
  held_.resize(256);
}

void Responder::hold_until(Tick until, uint32_t bytes) {
  if (held_count_ == held_.size()) {  // grows while warming up; no allocation once large enough
    std::vector<Held> bigger(held_.size() * 2);
    for (size_t i = 0; i < held_count_; ++i)
      bigger[i] = held_[(held_head_ + i) & (held_.size() - 1)];
    held_.swap(bigger);
    held_head_ = 0;
  }
  // DMA writes land in issue order; max() keeps the ring in time order should one not.
  placed_until_ = std::max(placed_until_, until);
  held_[(held_head_ + held_count_++) & (held_.size() - 1)] = Held{placed_until_, bytes};
  rx_held_ += bytes;
  rx_buffer_peak_ = std::max(rx_buffer_peak_, rx_held_);
}

void Responder::stall_hold(const net::Frame* f) {
  rx_held_ += f->len;
  rx_buffer_peak_ = std::max(rx_buffer_peak_, rx_held_);
}

void Responder::release_landed() {
  const Tick t = now();
  while (held_count_ && held_[held_head_].until <= t) {
    rx_held_ -= held_[held_head_].bytes;
    held_head_ = (held_head_ + 1) & (held_.size() - 1);
    --held_count_;
  }
}

Responder::~Responder() { s_.sim.stats.remove(&stats_); }

void Responder::rq_doorbell(QpCtx& q, uint32_t new_pi) {
  q.rq_pi = new_pi;
  if (q.state == dev::QpState::ERR) {
    continue_flush(q);
    return;
  }
  maybe_fetch(q);
}

void Responder::maybe_fetch(QpCtx& q) {
  if (q.rq_fetching || q.rq_fetched == q.rq_pi) return;
  const uint32_t slots = static_cast<uint32_t>(q.rq_cache.size());
  uint32_t room = slots - (q.rq_fetched - q.rq_ci);
  if (room == 0) return;
  uint32_t pos = q.rq_fetched & (q.rq_size() - 1);
  uint32_t n = std::min({room, q.rq_pi - q.rq_fetched, q.rq_size() - pos});
  q.rq_fetching = true;
  ++rwqe_fetches_;
  uint64_t addr = q.rq_addr + (uint64_t(pos) << q.rq_shift);
  uint32_t qpn = q.qpn;
  uint32_t epoch = q.epoch;
  std::vector<uint8_t>* buf = s_.get_fetch_buf(size_t(n) << q.rq_shift);
  s_.dma.dma_read(addr, buf->data(), n << q.rq_shift, now(), [this, qpn, n, epoch, buf] {
    QpCtx* qq = s_.qp(qpn);
    if (!qq || qq->epoch != epoch) {  // destroyed or reset meanwhile: the WQEs are stale
      s_.put_fetch_buf(buf);
      if (stalled_) resume();
      return;
    }
    QpCtx& q2 = *qq;
    unpack_wqes<RecvWqeCache>(buf->data(), n, q2.rq_shift, q2.rq_cache, q2.rq_fetched,
                              max_rsge_for(q2.rq_shift));
    s_.put_fetch_buf(buf);
    q2.rq_fetched += n;
    q2.rq_fetching = false;
    if (q2.state == dev::QpState::ERR) {
      continue_flush(q2);
    } else {
      maybe_fetch(q2);
    }
    if (stalled_) resume();
  });
}

void Responder::receive(net::Frame* f) {
  ++frames_;
  bytes_ += f->len;
  release_landed();
  if (rx_held_ + f->len > s_.params.rx_buffer_bytes) {
    // No room: the frame is lost, as at a port without flow control (PFC comes later). RC
    // recovers from it only once retransmission is modelled; until then the sender's QP fails.
    ++rx_buffer_drops_;
    rx_buffer_drop_bytes_ += f->len;
    RN_LOG(s_.sim, LogCat::kError, s_.name, "receive buffer full ({} of {} B held): frame dropped",
           rx_held_, s_.params.rx_buffer_bytes);
    s_.pool.put(f);
    return;
  }
  if (stalled_) {
    stall_hold(f);
    pending_.push_back(f);
    return;
  }
  if (process(f) == Result::kStall) {
    stalled_ = true;
    ++stalls_;
    stall_hold(f);
    pending_.push_back(f);
  }
}

void Responder::resume() {
  stalled_ = false;
  while (pending_head_ < pending_.size()) {
    net::Frame* f = pending_[pending_head_];
    rx_held_ -= f->len;  // out of the stall queue (held again if its payload is placed)
    if (process(f) == Result::kStall) {
      stall_hold(f);
      stalled_ = true;
      return;
    }
    ++pending_head_;
  }
  pending_.clear();
  pending_head_ = 0;
}

void Responder::send_ack(QpCtx& q, uint8_t syndrome, uint32_t psn) {
  net::Frame* f = s_.pool.get();
  w::TransportHeader h{};
  h.opcode = w::to_u8(w::Opcode::RC_ACKNOWLEDGE);
  h.pkey = 0xFFFF;
  h.dest_qp = q.dest_qpn;
  h.psn = psn;
  h.aeth_syndrome = syndrome;
  h.aeth_msn = q.msn & 0xFFFFFF;
  size_t tl = w::encode_transport_header(h, f->data + s_.framing.headroom());
  s_.wrap(f, tl, q.path);
  RN_LOG(s_.sim, LogCat::kRx, s_.name, "qp {} send {} psn {} msn {}", q.qpn,
         w::aeth_syndrome_name(syndrome), psn, h.aeth_msn);
  s_.send_frame(f, now() + s_.params.rx_pipeline_latency);
}

void Responder::fail(QpCtx& q, uint8_t syn, uint32_t psn, const char* why) {
  RN_LOG(s_.sim, LogCat::kError, s_.name, "qp {} psn {}: {} -> {}", q.qpn, psn, why,
         w::aeth_syndrome_name(syn));
  ++naks_sent_;
  send_ack(q, syn, psn);
  s_.req->enter_error(q);
}

void Responder::recv_complete(QpCtx& q, WcStatus st, uint32_t byte_len, dev::WcOpcode op, bool imm,
                              uint32_t imm_data, bool solicited, Tick when) {
  const RecvWqeCache& c = q.rq_cache[q.rq_ci % q.rq_cache.size()];
  CqeInfo e;
  e.wr_id = c.hdr.wr_id;
  e.byte_len = byte_len;
  e.imm = imm_data;
  e.qpn = q.qpn;
  e.src_qp = q.dest_qpn;
  e.wqe_counter = q.rq_ci;
  e.opcode = op;
  e.status = st;
  e.flags = imm ? static_cast<uint8_t>(dev::CqeFlags::WITH_IMM) : 0;
  if (solicited) e.flags |= static_cast<uint8_t>(dev::CqeFlags::SOLICITED);
  e.solicited = solicited;
  s_.comp->post_cqe(q.recv_cqn, e, when);
  ++q.rq_ci;
  q.recv_active = false;
  maybe_fetch(q);
}

void Responder::on_the_way(const net::Frame* f) {
  if (hint_qpn_) {
    const QpCtx* q = s_.qp_ptr(hint_qpn_);
    uint32_t key = hint_rkey_ ? hint_rkey_ : (q ? q->w_rkey : 0);
    if (key) s_.mrs.prefetch(key);
  }
  hint_qpn_ = hint_rkey_ = 0;
  const size_t hr = s_.framing.headroom();
  if (f->len < hr + w::kBthLen + w::kRethLen) return;
  const uint8_t* t = f->data + hr;
  hint_qpn_ = w::load_be24(t + offsetof(w::Bth, dest_qp));
  if (const QpCtx* q = s_.qp_ptr(hint_qpn_)) prefetch_ctx(q);
  const w::OpInfo& info = w::op_info(t[0]);
  if (info.valid && (info.ext_mask & w::kExtReth))
    hint_rkey_ = w::load_be32(t + w::kBthLen + offsetof(w::Reth, rkey));
}

Responder::Result Responder::process(net::Frame* f) {
  size_t toff = 0, tlen = 0;
  if (!f->icrc_sealed) f->materialize();  // the ICRC check reads every byte
  w::FrameError fe = s_.framing.unwrap(f->data, f->len, &toff, &tlen, nullptr, f->icrc_sealed);
  if (fe != w::FrameError::None) {
    ++drop_frame_;
    RN_LOG(s_.sim, LogCat::kError, s_.name, "drop frame ({} B): {}", f->len, w::to_string(fe));
    s_.pool.put(f);
    return Result::kDone;
  }
  w::TransportHeader h;
  size_t hl = 0, pl = 0;
  w::ParseError pe = w::decode_transport(f->data + toff, tlen, &h, &hl, &pl);
  if (pe != w::ParseError::None) {
    ++drop_parse_;
    RN_LOG(s_.sim, LogCat::kError, s_.name, "drop packet: {}", w::to_string(pe));
    s_.pool.put(f);
    return Result::kDone;
  }
  QpCtx* qp = s_.qp(h.dest_qp);
  if (!qp) {
    ++drop_no_qp_;
    RN_LOG(s_.sim, LogCat::kError, s_.name, "drop packet for QP {}: no such QP", h.dest_qp);
    s_.pool.put(f);
    return Result::kDone;
  }
  QpCtx& q = *qp;
  const w::OpInfo& info = w::op_info(h.opcode);
  if (info.transport != w::Transport::RC) {
    ++drop_unsupported_;
    s_.pool.put(f);
    return Result::kDone;
  }
  if (info.kind == Kind::Ack) {
    s_.req->on_ack(q, h);
    s_.pool.put(f);
    return Result::kDone;
  }
  if (info.kind == Kind::ReadResp || info.kind == Kind::AtomicAck) {
    s_.req->on_response(q, h);  // a response, never a request: the requester's
    s_.pool.put(f);
    return Result::kDone;
  }
  if (q.state != dev::QpState::RTR && q.state != dev::QpState::RTS &&
      q.state != dev::QpState::SQD) {
    ++drop_state_;
    s_.pool.put(f);
    return Result::kDone;
  }
  const uint8_t* payload = f->data + toff + hl;
  const uint32_t plen = static_cast<uint32_t>(pl);
  const Tick when = now() + s_.params.rx_pipeline_latency;

  int32_t d = w::psn_cmp(h.psn, q.epsn);
  if (d < 0) {
    ++duplicates_;
    // Duplicates are acknowledged again (cumulatively, with the last PSN received), AckReq or not.
    send_ack(q, w::kAethSynAck, w::psn_add(q.epsn, 0xFFFFFF));
    s_.pool.put(f);
    return Result::kDone;
  }
  if (d > 0) {
    if (!q.seq_nak_sent) {
      q.seq_nak_sent = true;
      ++seq_naks_;
      send_ack(q, w::kAethSynNakPsnSeq, q.epsn);
    }
    s_.pool.put(f);
    return Result::kDone;
  }

  // Opcode sequence: a FIRST/ONLY starts a message, MIDDLE/LAST continue one of the same kind.
  const bool is_send = info.kind == Kind::Send;
  const bool is_write = info.kind == Kind::Write;
  if (!is_send && !is_write) {
    ++unsupported_ops_;
    fail(q, w::kAethSynNakInvReq, h.psn, "READ and atomic requests are not modelled yet");
    s_.pool.put(f);
    return Result::kDone;
  }
  if (info.has(w::kExtIeth)) {
    ++unsupported_ops_;
    fail(q, w::kAethSynNakInvReq, h.psn,
         "SEND with invalidate is not modelled yet (the rkey would stay valid)");
    s_.pool.put(f);
    return Result::kDone;
  }
  const RxOp want = is_send ? RxOp::kSend : RxOp::kWrite;
  if (info.is_first() ? q.rx_op != RxOp::kNone : q.rx_op != want) {
    fail(q, w::kAethSynNakInvReq, h.psn, "opcode out of sequence");
    s_.pool.put(f);
    return Result::kDone;
  }
  // Payload sizes: FIRST and MIDDLE carry exactly one MTU.
  if ((info.pos == Pos::First || info.pos == Pos::Middle) && plen != q.mtu) {
    fail(q, w::kAethSynNakInvReq, h.psn, "FIRST/MIDDLE payload is not one MTU");
    s_.pool.put(f);
    return Result::kDone;
  }
  if (plen > q.mtu) {
    fail(q, w::kAethSynNakInvReq, h.psn, "payload larger than the path MTU");
    s_.pool.put(f);
    return Result::kDone;
  }
  const bool has_imm = info.has(w::kExtImmDt);
  // Receive WQE needed now? (SEND FIRST/ONLY, WRITE with immediate at its last packet.)
  const bool needs_rwqe = (is_send && info.is_first()) || (is_write && has_imm);
  if (needs_rwqe && !(is_send && q.recv_active)) {
    if (q.rq_ci == q.rq_fetched) {
      if (q.rq_ci != q.rq_pi) {
        maybe_fetch(q);
        return Result::kStall;  // keep the frame; resumed when the fetch lands
      }
      ++rnr_naks_;
      RN_LOG(s_.sim, LogCat::kError, s_.name, "qp {} psn {}: no receive WQE -> RNR NAK", q.qpn,
             h.psn);
      send_ack(q, w::aeth_rnr_nak(q.min_rnr_timer), h.psn);
      s_.pool.put(f);
      return Result::kDone;
    }
  }

  xlate::SegList segs;
  if (is_send) {
    if (info.is_first()) {
      q.recv_active = true;
      q.rx_off = 0;
    }
    const RecvWqeCache& c = q.rq_cache[q.rq_ci % q.rq_cache.size()];
    uint32_t nsge = std::min<uint32_t>(c.hdr.num_sge, max_rsge_for(q.rq_shift));
    uint64_t total = 0;
    for (uint32_t i = 0; i < nsge; ++i) total += c.sge[i].length;
    if (c.hdr.num_sge > max_rsge_for(q.rq_shift)) {
      recv_complete(q, WcStatus::LOC_QP_OP_ERR, q.rx_off, dev::WcOpcode::RECV, false, 0, false,
                    when);
      fail(q, w::kAethSynNakRemOp, h.psn, "malformed receive WQE (too many SGEs)");
      s_.pool.put(f);
      return Result::kDone;
    }
    if (q.rx_off + uint64_t(plen) > total) {
      recv_complete(q, WcStatus::LOC_LEN_ERR, q.rx_off, dev::WcOpcode::RECV, false, 0, false, when);
      fail(q, w::kAethSynNakInvReq, h.psn, "SEND longer than the receive buffers");
      s_.pool.put(f);
      return Result::kDone;
    }
    // Scatter [rx_off, rx_off+plen) over the SGEs.
    uint64_t skip = q.rx_off;
    uint32_t left = plen;
    for (uint32_t i = 0; i < nsge && left > 0; ++i) {
      const dev::Sge& sg = c.sge[i];
      if (skip >= sg.length) {
        skip -= sg.length;
        continue;
      }
      uint32_t take = static_cast<uint32_t>(std::min<uint64_t>(sg.length - skip, left));
      xlate::Status st = s_.mrs.translate(sg.lkey, q.pdn, sg.addr + skip, take,
                                          static_cast<uint32_t>(dev::Access::LOCAL_WRITE), &segs);
      if (st != xlate::Status::kOk) {
        RN_LOG(s_.sim, LogCat::kError, s_.name, "qp {} receive lkey {:#x}: {}", q.qpn, sg.lkey,
               xlate::to_string(st));
        recv_complete(q, WcStatus::LOC_PROT_ERR, q.rx_off, dev::WcOpcode::RECV, false, 0, false,
                      when);
        fail(q, w::kAethSynNakRemOp, h.psn, "receive buffer not accessible");
        s_.pool.put(f);
        return Result::kDone;
      }
      skip = 0;
      left -= take;
    }
  } else {
    if (info.is_first()) {
      if (!(q.access & static_cast<uint32_t>(dev::Access::REMOTE_WRITE))) {
        fail(q, w::kAethSynNakInvReq, h.psn, "QP does not allow remote writes");
        s_.pool.put(f);
        return Result::kDone;
      }
      q.w_va = h.reth_va;
      q.w_rkey = h.reth_rkey;
      q.w_len = h.reth_len;
      q.rx_off = 0;
      if (q.w_len > 0) {
        xlate::Status st =
            s_.mrs.translate(q.w_rkey, q.pdn, q.w_va, q.w_len,
                             static_cast<uint32_t>(dev::Access::REMOTE_WRITE), nullptr);
        if (st != xlate::Status::kOk) {
          RN_LOG(s_.sim, LogCat::kError, s_.name, "qp {} WRITE rkey {:#x} va {:#x} len {}: {}",
                 q.qpn, q.w_rkey, q.w_va, q.w_len, xlate::to_string(st));
          fail(q, w::kAethSynNakRemAccess, h.psn, "rkey check failed");
          s_.pool.put(f);
          return Result::kDone;
        }
      }
    }
    bool len_ok =
        info.is_last() ? q.rx_off + uint64_t(plen) == q.w_len : q.rx_off + uint64_t(plen) < q.w_len;
    if (!len_ok) {
      fail(q, w::kAethSynNakInvReq, h.psn, "WRITE payload does not match the RETH length");
      s_.pool.put(f);
      return Result::kDone;
    }
    if (plen > 0) {
      xlate::Status st = s_.mrs.translate(q.w_rkey, q.pdn, q.w_va + q.rx_off, plen,
                                          static_cast<uint32_t>(dev::Access::REMOTE_WRITE), &segs);
      if (st != xlate::Status::kOk) {
        fail(q, w::kAethSynNakRemAccess, h.psn, "rkey check failed");
        s_.pool.put(f);
        return Result::kDone;
      }
    }
  }

  // Accepted: place the payload, advance the state, complete, acknowledge.
  bool frame_lent = false;
  if (plen > 0) {
    // The payload goes to host memory straight from the frame, which returns to the pool once
    // the write has landed.
    const Tick landed = s_.dma.dma_write_borrowed(
        reinterpret_cast<const pcie::SgEntry*>(segs.seg), segs.n, payload, when + s_.mrs.latency(),
        [this, f] { s_.pool.put(f); }, &f->payload_page);
    hold_until(landed, f->len);
    frame_lent = true;
    placed_bytes_ += plen;
  }
  q.rx_off += plen;
  q.epsn = w::psn_add(q.epsn, 1);
  q.seq_nak_sent = false;
  RN_LOG(s_.sim, LogCat::kRx, s_.name, "qp {} {} psn {} len {}", q.qpn, info.name, h.psn, plen);
  if (info.is_last()) {
    ++messages_;
    q.msn = (q.msn + 1) & 0xFFFFFF;
    if (is_send) {
      recv_complete(q, WcStatus::SUCCESS, q.rx_off, dev::WcOpcode::RECV, has_imm, h.imm, h.se,
                    when + s_.mrs.latency());
    } else if (has_imm) {
      recv_complete(q, WcStatus::SUCCESS, q.w_len, dev::WcOpcode::RECV_RDMA_WITH_IMM, true, h.imm,
                    h.se, when + s_.mrs.latency());
    }
    q.rx_op = RxOp::kNone;
  } else {
    q.rx_op = want;
  }
  if (h.ack_req) {
    ++acks_sent_;
    send_ack(q, w::kAethSynAck, h.psn);
  }
  if (!frame_lent) s_.pool.put(f);
  return Result::kDone;
}

void Responder::flush(QpCtx& q) { continue_flush(q); }

void Responder::continue_flush(QpCtx& q) {
  const Tick when = now();
  while (q.rq_ci != q.rq_fetched) {
    recv_complete(q, WcStatus::WR_FLUSH_ERR, 0, dev::WcOpcode::RECV, false, 0, false, when);
    ++flushed_;
  }
  maybe_fetch(q);
}

void Responder::reset(QpCtx& q) {
  q.rq_pi = q.rq_fetched = q.rq_ci = 0;
  q.rq_fetching = false;
  q.epsn = 0;
  q.msn = 0;
  q.seq_nak_sent = false;
  q.rx_op = RxOp::kNone;
  q.rx_off = 0;
  q.recv_active = false;
}

}  // namespace rn::qp
