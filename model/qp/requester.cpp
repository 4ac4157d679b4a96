#include "model/qp/requester.h"

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "model/core/hot.h"
#include "model/qp/scatter.h"
#include "model/wire/transport.h"

namespace rn::qp {

using dev::WcStatus;
using dev::WrOpcode;
namespace w = rn::wire;

namespace {

static_assert(sizeof(xlate::Segment) == sizeof(pcie::SgEntry) &&
                  offsetof(xlate::Segment, len) == offsetof(pcie::SgEntry, len),
              "translation segments are handed to the DMA engine as they are");
static_assert(xlate::SegList::kMax <= pcie::DmaPort::kMaxSg,
              "every segment of a packet fits in one DMA request");

// vendor_err of a LOC_PROT_ERR is the translation's Status, and of an error after a NAK the NAK's
// AETH syndrome: the device interface names each value (dev::VendorErr).
template <typename A, typename B>
constexpr bool same_value(A a, B b) {
  return static_cast<uint32_t>(a) == static_cast<uint32_t>(b);
}
static_assert(same_value(xlate::Status::kBadKey, dev::VendorErr::XLATE_BAD_KEY) &&
                  same_value(xlate::Status::kPdMismatch, dev::VendorErr::XLATE_PD_MISMATCH) &&
                  same_value(xlate::Status::kAccess, dev::VendorErr::XLATE_ACCESS) &&
                  same_value(xlate::Status::kBounds, dev::VendorErr::XLATE_BOUNDS) &&
                  same_value(xlate::Status::kTooManySegments,
                             dev::VendorErr::XLATE_TOO_MANY_SEGMENTS),
              "vendor_err of a translation failure: dev::VendorErr::XLATE_*");
static_assert(same_value(w::kAethSynNakPsnSeq, dev::VendorErr::NAK_PSN_SEQ) &&
                  same_value(w::kAethSynNakInvReq, dev::VendorErr::NAK_INV_REQ) &&
                  same_value(w::kAethSynNakRemAccess, dev::VendorErr::NAK_REM_ACCESS) &&
                  same_value(w::kAethSynNakRemOp, dev::VendorErr::NAK_REM_OP) &&
                  same_value(w::kAethSynNakInvRdReq, dev::VendorErr::NAK_INV_RD_REQ),
              "vendor_err after a NAK: its syndrome, dev::VendorErr::NAK_*");

dev::WcOpcode wc_opcode_of(uint8_t wr_opcode) {
  switch (static_cast<WrOpcode>(wr_opcode)) {
    case WrOpcode::RDMA_WRITE:
    case WrOpcode::RDMA_WRITE_WITH_IMM:
      return dev::WcOpcode::RDMA_WRITE;
    case WrOpcode::RDMA_READ:
      return dev::WcOpcode::RDMA_READ;
    case WrOpcode::ATOMIC_CMP_AND_SWP:
      return dev::WcOpcode::COMP_SWAP;
    case WrOpcode::ATOMIC_FETCH_AND_ADD:
      return dev::WcOpcode::FETCH_ADD;
    default:
      return dev::WcOpcode::SEND;
  }
}

uint32_t packets_for(uint64_t len, uint32_t mtu) {
  return len == 0 ? 1 : static_cast<uint32_t>((len + mtu - 1) / mtu);
}
}  // namespace

uint32_t mtu_bytes(uint8_t code) { return (code >= 1 && code <= 5) ? (128u << code) : 0; }

Requester::Requester(const NicEnv& env, QpTable& t, pcie::DmaPort& dma, TxPort& port,
                     Completion& comp, RxBuffer& rxbuf, net::FramePool& pool)
    : env_(env),
      t_(t),
      dma_(dma),
      port_(port),
      comp_(comp),
      rxbuf_(rxbuf),
      pool_(pool),
      stats_(env.sim.stats, env.name + ".req",
             "RC requester: scheduler, WQE fetch, packet generation, ACKs"),
      packets_(stats_.counter("packets", "count", "request packets sent")),
      payload_bytes_(stats_.counter("payload_bytes", "B", "payload bytes sent")),
      wqes_started_(stats_.counter("wqes_started", "count", "send WQEs started")),
      wqes_completed_(
          stats_.counter("wqes_completed", "count", "send WQEs completed successfully")),
      wqe_fetches_(stats_.counter("wqe_fetches", "count", "DMA reads of send WQEs")),
      wqes_fetched_(stats_.counter("wqes_fetched", "count", "send WQEs fetched")),
      wqes_with_doorbell_(stats_.counter(
          "wqes_with_doorbell", "count",
          "send WQEs taken from their WQE_DOORBELL write into the cache (not fetched)")),
      wqe_doorbell_fallbacks_(stats_.counter(
          "wqe_doorbell_fallbacks", "count",
          "WQE_DOORBELL writes whose WQE was fetched from host memory instead: the cache was not "
          "in step (fetch in flight, WQEs not yet fetched, no room, or not the next index)")),
      inline_wqes_(stats_.counter("inline_wqes", "count",
                                  "send WQEs started with their payload inline (no payload DMA)")),
      acks_(stats_.counter("acks", "count", "ACKs received")),
      naks_(stats_.counter("naks", "count", "NAKs and RNR NAKs received")),
      stale_acks_(stats_.counter("stale_acks", "count", "ACKs for no outstanding PSN, ignored")),
      ghost_responses_(stats_.counter(
          "ghost_responses", "count",
          "READ responses and atomic acknowledgements for nothing outstanding, discarded")),
      local_errors_(stats_.counter("local_errors", "count", "WQEs failed locally (bad WQE, lkey)")),
      dma_read_errors_(stats_.counter("dma_read_errors", "count",
                                      "packets whose payload's DMA read failed (not sent)")),
      flushed_(stats_.counter("flushed", "count", "send WQEs completed with WR_FLUSH_ERR")),
      stalls_window_(stats_.counter("stalls_window", "count", "scheduler skips: PSN window full")),
      stalls_xlate_(stats_.counter("stalls_translation", "count",
                                   "packets held back: the translation stage answered later")),
      retransmitted_(stats_.counter("retransmitted", "count", "request packets sent again")),
      seq_retries_(stats_.counter("seq_retries", "count",
                                  "PSN sequence NAKs answered by going back (go-back-N)")),
      naks_ignored_(
          stats_.counter("naks_ignored", "count",
                         "sequence NAKs ignored: sent before the resend they would ask for")),
      rnr_retries_(
          stats_.counter("rnr_retries", "count", "RNR NAKs answered by waiting and retrying")),
      timeouts_(stats_.counter("timeouts", "count", "local ACK timeouts")),
      wqe_fetch_faults_(stats_.counter("wqe_fetch_faults", "count",
                                       "send WQE fetches whose DMA read failed (IOMMU)")),
      read_requests_(stats_.counter("read_requests", "count", "RDMA READ requests sent")),
      read_responses_(stats_.counter("read_responses", "count", "READ response packets placed")),
      duplicate_responses_(
          stats_.counter("duplicate_responses", "count", "READ responses already had, discarded")),
      implied_naks_(stats_.counter(
          "implied_naks", "count",
          "READ responses found missing (a later response or ACK came first): asked again")),
      atomic_requests_(stats_.counter("atomic_requests", "count", "atomic requests sent")),
      atomic_responses_(stats_.counter("atomic_responses", "count",
                                       "ATOMIC ACKNOWLEDGEs whose original value was placed")) {
  ready_.assign(pow2_ceil(env.params.max_qps + 2u), 0);
  ready_mask_ = static_cast<uint32_t>(ready_.size() - 1);
  timers_.resize(64);
  port_.add_source(this);
}

Requester::~Requester() { env_.sim.stats.remove(&stats_); }

RN_HOT bool Requester::can_send(const QpCtx& q) const {
  if (!q.sends() || q.sq.phase == SqPhase::kStopped || q.sq.wait != SqWait::kNone) return false;
  if (q.sq.phase != SqPhase::kInMessage) {
    if (q.sq.next == q.sq.fetched || read_blocked(q)) return false;
    // SQD: no WQE is started that had not been (going back, started ones are sent again).
    if (q.state == dev::QpState::SQD && static_cast<int32_t>(q.sq.next - q.sq.high_started) >= 0)
      return false;
  }
  return q.unreliable() || static_cast<uint32_t>(w::psn_diff(q.sq.psn, q.sq.unacked_psn)) <
                               env_.params.max_unacked_psn;
}

RN_HOT void Requester::schedule(QpCtx& q) {
  if (!q.sq.scheduled && can_send(q)) {
    q.sq.scheduled = true;
    ready_[ready_tail_++ & ready_mask_] = q.qpn;
  }
  port_.kick();
}

void Requester::sq_doorbell(QpCtx& q, uint32_t new_pi) {
  q.sq.pi = new_pi;
  if (q.sq_flushing()) {
    continue_flush(q);
    return;
  }
  maybe_fetch(q);
}

void Requester::sq_doorbell_wqe(QpCtx& q, uint32_t new_pi, const uint8_t* wqe, uint32_t len) {
  const uint32_t slots = static_cast<uint32_t>(q.sq.cache.size());
  const bool in_step = !q.sq_flushing() && q.sq.fetch == WqeFetch::kIdle &&
                       q.sq.fetched == q.sq.pi && new_pi == q.sq.pi + 1 &&
                       q.sq.fetched - q.sq.next < slots;
  if (!in_step) {
    ++wqe_doorbell_fallbacks_;
    RN_LOG(env_.sim, LogCat::kWqe, env_.name,
           "qp {} send WQE {} came with its doorbell out of step: fetched instead", q.qpn,
           new_pi - 1);
    return sq_doorbell(q, new_pi);
  }
  // Straight from the write: the device checked that every byte unpacking reads is in it.
  (void)len;
  unpack_wqes<SendWqeCache>(wqe, 1, q.sq_shift, q.sq.cache, q.sq.fetched,
                            dev::max_send_sge(q.sq_shift), q.ud());
  q.sq.pi = q.sq.fetched = new_pi;
  ++wqes_with_doorbell_;
  RN_LOG(env_.sim, LogCat::kWqe, env_.name, "qp {} send WQE {} came with its doorbell", q.qpn,
         new_pi - 1);
  schedule(q);
}

RN_HOT void Requester::maybe_fetch(QpCtx& q) {
  if (q.sq.fetch == WqeFetch::kInFlight || q.sq.fetched == q.sq.pi) return;
  const uint32_t slots = static_cast<uint32_t>(q.sq.cache.size());
  uint32_t room = slots - (q.sq.fetched - q.sq.next);
  if (room == 0) return;
  uint32_t pos = q.sq.fetched & (q.sq_size() - 1);
  uint32_t n = std::min({room, q.sq.pi - q.sq.fetched, q.sq_size() - pos});
  q.sq.fetch = WqeFetch::kInFlight;
  ++wqe_fetches_;
  uint64_t addr = q.sq_addr + (uint64_t(pos) << q.sq_shift);
  uint32_t bytes = n << q.sq_shift;
  uint32_t qpn = q.qpn;
  RN_LOG(env_.sim, LogCat::kWqe, env_.name, "qp {} fetch {} send WQEs from index {}", qpn, n,
         q.sq.fetched);
  const uint32_t epoch = q.epoch, gen = q.sq.fetch_gen;
  std::vector<uint8_t>* buf = t_.get_fetch_buf(bytes);
  dma_.dma_read(addr, buf->data(), bytes, now(), [this, qpn, n, epoch, gen, buf] {
    QpCtx* qq = t_.qp(qpn);
    if (!qq || qq->epoch != epoch) {  // destroyed or reset meanwhile: stale WQEs
      t_.put_fetch_buf(buf);
      return;
    }
    QpCtx& q2 = *qq;
    if (q2.sq.fetch_gen != gen) {  // the queue went back meanwhile: fetch again from there
      t_.put_fetch_buf(buf);
      q2.sq.fetch = WqeFetch::kIdle;
      maybe_fetch(q2);
      return;
    }
    unpack_wqes<SendWqeCache>(buf->data(), n, q2.sq_shift, q2.sq.cache, q2.sq.fetched,
                              dev::max_send_sge(q2.sq_shift), q2.ud());
    if (dma_.read_failed()) {  // each WQE fails when it starts (LOC_QP_OP_ERR, DMA_READ_FAULT)
      ++wqe_fetch_faults_;
      for (uint32_t i = 0; i < n; ++i)
        q2.sq.cache[(q2.sq.fetched + i) % q2.sq.cache.size()].fetch_failed = true;
    }
    t_.put_fetch_buf(buf);
    q2.sq.fetched += n;
    wqes_fetched_ += n;
    q2.sq.fetch = WqeFetch::kIdle;
    if (q2.sq_flushing()) {
      continue_flush(q2);
      return;
    }
    maybe_fetch(q2);
    schedule(q2);
  });
}

void Requester::use_translation(xlate::Stage& s) {
  xl_.use(s);
  s.add_waker([this] { on_translation_ready(); });
}

void Requester::on_translation_ready() {
  waking_.swap(xlate_waiters_);  // both keep their capacity: no allocation per fill
  for (uint32_t qpn : waking_) {
    QpCtx* q = t_.qp(qpn);
    if (!q) continue;
    if (q->sq.wait == SqWait::kTranslation) {
      q->sq.wait = SqWait::kNone;
      schedule(*q);
    } else if (q->sq.wait == SqWait::kResponseTranslation) {
      q->sq.wait = SqWait::kNone;
      restart_at(*q, q->sq.back_psn);
    }
  }
  waking_.clear();
}

RN_HOT void Requester::produce() {
  const uint32_t qpn = ready_[ready_head_++ & ready_mask_];
  if (env_.params.prefetch_hints) prefetch_upcoming();
  QpCtx* q = t_.qp(qpn);
  if (!q) return;
  q->sq.scheduled = false;
  for (uint32_t k = 0; k < env_.params.sched_quantum && port_.has_room() && can_send(*q); ++k)
    send_one(*q);
  if (can_send(*q)) {
    q->sq.scheduled = true;
    ready_[ready_tail_++ & ready_mask_] = q->qpn;
  } else if (q->sends() && q->sq.phase != SqPhase::kStopped && q->sq.wait == SqWait::kNone &&
             (q->sq.phase == SqPhase::kInMessage || q->sq.next != q->sq.fetched)) {
    ++stalls_window_;  // rescheduled by the ACK that opens the window
  }
}

RN_HOT void Requester::prefetch_upcoming() const {
  // The QP after next: its context. The next one (its context prefetched one turn ago): the memory
  // region its next packet reads from. Hints for the simulator's speed with many QPs; they read
  // the model's state and change nothing.
  if (ready_tail_ - ready_head_ >= 2)
    if (const QpCtx* q2 = t_.qp_ptr(ready_[(ready_head_ + 1) & ready_mask_])) prefetch_ctx(q2);
  if (ready_tail_ == ready_head_) return;
  const QpCtx* q = t_.qp_ptr(ready_[ready_head_ & ready_mask_]);
  if (!q) return;
  if (q->sq.phase == SqPhase::kInMessage && q->sq.cur_sge < q->sq.cur.hdr.num_sge) {
    xl_.prefetch(q->sq.cur.sge[q->sq.cur_sge].lkey);
  } else if (q->sq.next != q->sq.fetched && !q->sq.cache.empty()) {
    const SendWqeCache& c = q->sq.cache[q->sq.next % q->sq.cache.size()];
    if (c.hdr.num_sge > 0) xl_.prefetch(c.sge[0].lkey);
  }
}

Outstanding* Requester::entry(QpCtx& q, uint32_t idx) {
  // Entries are kept for every started WQE not yet complete, in index order.
  if (q.sq.out_head == q.sq.out_tail) return nullptr;
  const uint32_t osize = static_cast<uint32_t>(q.sq.outstanding.size());
  const uint32_t d = idx - q.sq.outstanding[q.sq.out_head % osize].idx;
  if (d >= q.sq.out_tail - q.sq.out_head) return nullptr;
  return &q.sq.outstanding[(q.sq.out_head + d) % osize];
}

RN_HOT bool Requester::start_wqe(QpCtx& q) {
  const SendWqeCache& c = q.sq.cache[q.sq.next % q.sq.cache.size()];
  const bool restart = q.sq.phase == SqPhase::kRestart;
  q.sq.cur_idx = q.sq.next;
  ++q.sq.next;
  maybe_fetch(q);
  const auto& h = c.hdr;
  auto op = static_cast<WrOpcode>(h.opcode);
  const bool is_write = op == WrOpcode::RDMA_WRITE || op == WrOpcode::RDMA_WRITE_WITH_IMM;
  const bool is_send = op == WrOpcode::SEND || op == WrOpcode::SEND_WITH_IMM;
  const bool is_read = op == WrOpcode::RDMA_READ;
  const bool atomic = is_atomic(h.opcode);
  const bool inl = is_inline(h);
  uint64_t total = 0;
  WcStatus err = WcStatus::SUCCESS;
  uint8_t verr = 0;
  // A UD WQE's UdSeg takes the first entries of the stride (before SGEs or inline bytes).
  const uint32_t seg_entries = q.ud() ? kUdSegEntries : 0;
  if (c.fetch_failed) {
    err = WcStatus::LOC_QP_OP_ERR;  // the WQE never arrived: what the cache holds is all ones
    verr = static_cast<uint8_t>(dev::VendorErr::DMA_READ_FAULT);
  } else if ((!is_write && !is_send && !is_read && !atomic) || (q.uc() && (is_read || atomic)) ||
             (q.ud() && !is_send)) {
    err = WcStatus::LOC_QP_OP_ERR;  // an unknown opcode, or one UC (UD) does not have
    verr = static_cast<uint8_t>(dev::VendorErr::BAD_OPCODE);
  } else if (inl) {
    if (q.no_inline) {
      err = WcStatus::LOC_QP_OP_ERR;  // a version-1 driver's QP has no inline data
      verr = static_cast<uint8_t>(dev::VendorErr::INLINE_V1);
    } else if (!is_write && !is_send) {
      err = WcStatus::LOC_QP_OP_ERR;  // inline data with a READ or an atomic
      verr = static_cast<uint8_t>(dev::VendorErr::INLINE_OPCODE);
    } else if (h.num_sge != 0) {
      err = WcStatus::LOC_QP_OP_ERR;  // inline data and SGEs
      verr = static_cast<uint8_t>(dev::VendorErr::INLINE_WITH_SGES);
    } else if (h.inline_len + seg_entries * sizeof(dev::Sge) > dev::max_send_inline(q.sq_shift)) {
      err = WcStatus::LOC_LEN_ERR;  // more inline bytes than the stride holds
      verr = static_cast<uint8_t>(dev::VendorErr::INLINE_TOO_LONG);
    }
    total = h.inline_len;
  } else if (h.num_sge + seg_entries > dev::max_send_sge(q.sq_shift) - (atomic ? 1 : 0)) {
    err = WcStatus::LOC_QP_OP_ERR;  // more SGEs than the stride holds
    verr = static_cast<uint8_t>(dev::VendorErr::TOO_MANY_SGES);
  } else {
    for (uint32_t i = 0; i < h.num_sge; ++i) total += c.sge[i].length;
    if (total > 0x80000000ull) {
      err = WcStatus::LOC_LEN_ERR;
      verr = static_cast<uint8_t>(dev::VendorErr::MSG_TOO_LONG);
    } else if (atomic && (h.num_sge != 1 || total != 8)) {
      err = WcStatus::LOC_LEN_ERR;  // an atomic returns 8 bytes into one SGE
      verr = static_cast<uint8_t>(dev::VendorErr::ATOMIC_SGE);
    }
  }
  if (q.ud() && err == WcStatus::SUCCESS) {
    if (total > q.mtu) {
      err = WcStatus::LOC_LEN_ERR;  // a UD message is one packet: at most the MTU
      verr = static_cast<uint8_t>(dev::VendorErr::UD_TOO_LONG);
    } else if (c.ud.remote_qpn > 0xFFFFFF || c.ud.dest_ipv4 == 0 || (c.ud.dest_mac[0] & 1)) {
      err = WcStatus::LOC_QP_OP_ERR;  // no unicast address in the WQE's UdSeg
      verr = static_cast<uint8_t>(dev::VendorErr::UD_NO_ADDRESS);
    }
  }
  const uint32_t npkts = packets_for(total, q.mtu);
  Outstanding* e = nullptr;
  if (static_cast<int32_t>(q.sq.cur_idx - q.sq.high_started) < 0) {
    // Started before (the queue went back): its entry is still outstanding.
    e = entry(q, q.sq.cur_idx);
    if (!e || e->status != WcStatus::SUCCESS || err != WcStatus::SUCCESS) {
      q.sq.phase = SqPhase::kStopped;
      retire(q);
      return false;
    }
  } else {
    ++wqes_started_;
    if (inl) ++inline_wqes_;
    q.sq.high_started = q.sq.cur_idx + 1;
    e = &q.sq.outstanding[q.sq.out_tail++ % q.sq.outstanding.size()];
    *e = Outstanding{};
    e->idx = q.sq.cur_idx;
    e->wr_id = h.wr_id;
    e->signaled = q.sig_all || (h.flags & static_cast<uint8_t>(dev::WqeFlags::SIGNALED));
    e->status = WcStatus::SUCCESS;
    e->wc_opcode = static_cast<uint8_t>(wc_opcode_of(h.opcode));
    e->read = is_read || atomic;
    e->byte_len = static_cast<uint32_t>(std::min<uint64_t>(total, 0xFFFFFFFFu));
    e->first_psn = q.sq.psn;
    if (err != WcStatus::SUCCESS) {
      e->status = err;
      e->vendor_err = verr;
      e->last_psn = w::psn_add(e->first_psn, 0xFFFFFF);  // consumes no PSN
      ++local_errors_;
      RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} WQE {} refused: {} (vendor_err {})", q.qpn,
             q.sq.cur_idx, dev::to_string(err), verr);
      env_.driver_error(DriverError::kWqe, q.qpn,
                        "QP {} send WQE {} (opcode {}, {} SGEs) refused: {}, vendor_err {}", q.qpn,
                        q.sq.cur_idx, h.opcode, h.num_sge, dev::to_string(err), verr);
      q.sq.phase = SqPhase::kStopped;
      retire(q);
      return false;
    }
    e->last_psn = w::psn_add(e->first_psn, npkts - 1);
    if (is_read || atomic) {  // a slot of max_rd_atomic (can_send saw one free) keeps where the
                              // data goes
      ReadCtx& r = q.sq.reads[q.sq.rd_tail++ % q.sq.reads.size()];
      r.idx = e->idx;
      r.atomic = atomic;
      r.first_psn = r.next_psn = e->first_psn;
      r.last_psn = e->last_psn;
      r.len = static_cast<uint32_t>(total);
      r.off = 0;
      r.num_sge = h.num_sge;
      std::memcpy(r.sge, c.sge, h.num_sge * sizeof(dev::Sge));
    }
  }
  // Copy the WQE out of the prefetch cache, which refills behind it.
  std::memcpy(&q.sq.cur.hdr, &h, sizeof h);
  if (inl) {
    std::memcpy(q.sq.cur.inline_data, c.inline_data, h.inline_len);
  } else {
    std::memcpy(q.sq.cur.sge, c.sge, h.num_sge * sizeof(dev::Sge));
  }
  if (atomic) q.sq.cur.atomic = c.atomic;
  if (q.ud()) q.sq.cur.ud = c.ud;
  q.sq.phase = SqPhase::kInMessage;
  q.sq.cur_len = static_cast<uint32_t>(total);
  q.sq.cur_off = 0;
  q.sq.cur_sge = 0;
  q.sq.cur_sge_off = 0;
  q.sq.psn = e->first_psn;
  if (restart) {  // going back into the middle of this WQE: skip what was acknowledged
    q.sq.psn = q.sq.resume_psn;
    q.sq.cur_off = static_cast<uint32_t>(w::psn_diff(q.sq.resume_psn, e->first_psn)) * q.mtu;
    uint32_t skip = q.sq.cur_off;
    while (skip > 0 && q.sq.cur_sge < h.num_sge) {
      const uint32_t len = q.sq.cur.sge[q.sq.cur_sge].length;
      if (skip < len) {
        q.sq.cur_sge_off = skip;
        break;
      }
      skip -= len;
      ++q.sq.cur_sge;
    }
  }
  RN_LOG(env_.sim, LogCat::kTx, env_.name, "qp {} {} WQE {} {} len {} psn {}..{}", q.qpn,
         restart ? "restart" : "start", q.sq.cur_idx, dev::to_string(op), total, q.sq.psn,
         e->last_psn);
  return true;
}

RN_HOT void Requester::send_one(QpCtx& q) {
  if (q.sq.phase != SqPhase::kInMessage && !start_wqe(q)) return;
  const auto& h = q.sq.cur.hdr;
  if (h.opcode == static_cast<uint8_t>(WrOpcode::RDMA_READ)) return send_read_request(q);
  if (is_atomic(h.opcode)) return send_atomic_request(q);
  const uint32_t off = q.sq.cur_off;
  const uint32_t plen = std::min(q.mtu, q.sq.cur_len - off);
  const bool first = off == 0;
  const bool last = off + plen == q.sq.cur_len;
  auto op = static_cast<WrOpcode>(h.opcode);
  const bool imm = op == WrOpcode::RDMA_WRITE_WITH_IMM || op == WrOpcode::SEND_WITH_IMM;
  const bool write = op == WrOpcode::RDMA_WRITE || op == WrOpcode::RDMA_WRITE_WITH_IMM;

  // Gather the payload's bus segments through the translation stage. Nothing changes in the QP
  // until every piece is translated: a lookup that answers later leaves the packet to be built
  // again, from the same place, when the stage wakes the requester. An inline payload is in the
  // WQE already: nothing to translate or read.
  const bool inl = is_inline(h);
  const bool read_payload = plen > 0 && !inl;
  xlate::SegList segs;
  uint32_t sge = q.sq.cur_sge, sge_off = q.sq.cur_sge_off;
  Tick ready = now();
  uint32_t need = read_payload ? plen : 0;
  while (need > 0) {
    const dev::Sge& sg = q.sq.cur.sge[sge];
    uint32_t avail = sg.length - sge_off;
    if (avail == 0) {
      ++sge;
      sge_off = 0;
      continue;
    }
    uint32_t take = std::min(avail, need);
    Tick at = 0;
    xlate::Status st = xl_.lookup(sg.lkey, q.pdn, sg.addr + sge_off, take, 0, &segs, &at);
    if (st == xlate::Status::kPending) {
      ++stalls_xlate_;
      q.sq.wait = SqWait::kTranslation;
      xlate_waiters_.push_back(q.qpn);
      return;
    }
    if (st != xlate::Status::kOk) {
      RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} WQE {} lkey {:#x} addr {:#x} len {}: {}",
             q.qpn, q.sq.cur_idx, sg.lkey, sg.addr + sge_off, take, xlate::to_string(st));
      env_.driver_error(DriverError::kLocalAccess, q.qpn,
                        "QP {} send WQE {}: lkey {:#x} addr {:#x} len {}: {}", q.qpn, q.sq.cur_idx,
                        sg.lkey, sg.addr + sge_off, take, xlate::to_string(st));
      local_error(q, WcStatus::LOC_PROT_ERR, static_cast<uint8_t>(st));
      return;
    }
    ready = std::max(ready, at);
    sge_off += take;
    need -= take;
  }
  q.sq.cur_sge = sge;
  q.sq.cur_sge_off = sge_off;

  w::TransportHeader th{};
  if (write) {
    th.opcode = w::to_u8(first && last ? (imm ? w::Opcode::RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE
                                              : w::Opcode::RC_RDMA_WRITE_ONLY)
                         : first       ? w::Opcode::RC_RDMA_WRITE_FIRST
                         : last        ? (imm ? w::Opcode::RC_RDMA_WRITE_LAST_WITH_IMMEDIATE
                                              : w::Opcode::RC_RDMA_WRITE_LAST)
                                       : w::Opcode::RC_RDMA_WRITE_MIDDLE);
  } else {
    th.opcode = w::to_u8(
        first && last ? (imm ? w::Opcode::RC_SEND_ONLY_WITH_IMMEDIATE : w::Opcode::RC_SEND_ONLY)
        : first       ? w::Opcode::RC_SEND_FIRST
        : last        ? (imm ? w::Opcode::RC_SEND_LAST_WITH_IMMEDIATE : w::Opcode::RC_SEND_LAST)
                      : w::Opcode::RC_SEND_MIDDLE);
  }
  if (q.uc()) th.opcode += w::kUcOpcodeBase;  // the same opcodes, UC's range
  th.se = last && (h.flags & static_cast<uint8_t>(dev::WqeFlags::SOLICITED));
  th.pad_cnt = w::pad_for(plen);
  th.pkey = 0xFFFF;
  th.dest_qp = q.dest_qpn;
  th.psn = q.sq.psn;
  const wire::PathInfo* path = q.ud() ? ud_datagram(q, imm, th) : &q.path;
  ++q.sq.since_ackreq;
  // AckReq on a message's last packet, every ack_req_every packets, and on the packet that fills
  // the PSN window: without it, a window smaller than both the message and ack_req_every would
  // fill with packets that ask for no ACK, and the QP would wait forever.
  const bool fills_window = static_cast<uint32_t>(w::psn_diff(q.sq.psn, q.sq.unacked_psn)) + 1 >=
                            env_.params.max_unacked_psn;
  th.ack_req =
      !q.unreliable() && (last || q.sq.since_ackreq >= env_.params.ack_req_every || fills_window);
  if (th.ack_req) q.sq.since_ackreq = 0;
  if (write && first) {
    th.reth_va = h.remote_addr;
    th.reth_rkey = h.rkey;
    th.reth_len = q.sq.cur_len;
  }
  if (imm && last) th.imm = h.imm_data;

  net::Frame* f = port_.new_frame();
  uint8_t* t = f->data + port_.headroom();
  size_t hl = w::encode_transport_header(th, t);
  uint8_t* payload = t + hl;
  std::memset(payload + plen, 0, th.pad_cnt);
  if (inl) std::memcpy(payload, q.sq.cur.inline_data + off, plen);
  // UC, UD: the WQE completes when its last packet has left (Requester::sent); nothing is
  // acknowledged.
  const bool uc_last = q.unreliable() && last;
  if (uc_last) uc_sent_.push_back(UcSent{q.qpn, q.epoch, q.sq.cur_idx});
  const uint32_t slot = port_.claim(f, static_cast<uint32_t>(hl + plen + th.pad_cnt), *path,
                                    !read_payload, uc_last ? this : nullptr);
  ++packets_;
  payload_bytes_ += plen;
  RN_LOG(env_.sim, LogCat::kTx, env_.name, "qp {} {} psn {} len {}{}", q.qpn,
         w::op_info(th.opcode).name, th.psn, plen, th.ack_req ? " AckReq" : "");

  if (w::psn_cmp(th.psn, q.sq.max_psn) < 0) {
    ++retransmitted_;
  } else {
    q.sq.max_psn = w::psn_add(th.psn, 1);
  }
  q.sq.psn = w::psn_add(q.sq.psn, 1);
  q.sq.cur_off += plen;
  if (!q.unreliable()) arm_ack_timer(q);
  if (last) q.sq.phase = SqPhase::kIdle;

  if (read_payload) {
    dma_.dma_read(
        reinterpret_cast<const pcie::SgEntry*>(segs.seg), segs.n, payload, ready,
        [this, slot, qpn = q.qpn, epoch = q.epoch, idx = q.sq.cur_idx] {
          if (dma_.read_failed()) return payload_failed(slot, qpn, epoch, idx);
          port_.landed(slot);
        },
        &f->payload_page);
  } else {
    port_.drain();
  }
}

// The payload of a packet of WQE `idx` could not be read from host memory (the host's IOMMU found
// no mapping): the packet is not sent, and the WQE fails with LOC_PROT_ERR (DMA_READ_FAULT), the
// QP going to ERR once it is the oldest outstanding (as a local protection error found before
// sending).
RN_NOINLINE void Requester::payload_failed(uint32_t slot, uint32_t qpn, uint32_t epoch,
                                           uint32_t idx) {
  port_.dropped(slot);
  ++dma_read_errors_;
  QpCtx* q = t_.qp(qpn);
  if (!q || q->epoch != epoch || q->state == dev::QpState::ERR) return;
  RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} WQE {}: the payload's DMA read failed", qpn,
         idx);
  fail_wqe(*q, idx, WcStatus::LOC_PROT_ERR, static_cast<uint8_t>(dev::VendorErr::DMA_READ_FAULT));
}

RN_NOINLINE const wire::PathInfo* Requester::ud_datagram(const QpCtx& q, bool imm,
                                                         w::TransportHeader& th) {
  // UD: one SEND_ONLY (with immediate) to the WQE's address, with a DETH: its Q_Key (the QP's
  // when the WQE's has bit 31 set, as IBA says) and the source QP. The path is the QP's source
  // half and the WQE's destination, in a member (no per-packet construction on RC's path).
  const dev::UdSeg& u = q.sq.cur.ud;
  th.opcode = w::to_u8(imm ? w::Opcode::UD_SEND_ONLY_WITH_IMMEDIATE : w::Opcode::UD_SEND_ONLY);
  th.dest_qp = u.remote_qpn;
  th.deth_qkey = (u.remote_qkey & 0x80000000u) ? q.qkey : u.remote_qkey;
  th.deth_src_qp = q.qpn;
  ud_path_ = q.path;
  std::memcpy(ud_path_.dst_mac.data(), u.dest_mac, 6);
  ud_path_.dst_ip = u.dest_ipv4;
  ud_path_.tos = u.traffic_class;
  ud_path_.ttl = u.hop_limit ? u.hop_limit : 64;
  return &ud_path_;
}

void Requester::complete(QpCtx& q, const Outstanding& e, WcStatus st, uint8_t vendor_err,
                         Tick when) {
  if (st == WcStatus::SUCCESS && !e.signaled) return;
  CqeInfo c;
  c.wr_id = e.wr_id;
  c.byte_len = e.byte_len;
  c.qpn = q.qpn;
  c.src_qp = q.dest_qpn;
  c.wqe_counter = e.idx;
  c.opcode = static_cast<dev::WcOpcode>(e.wc_opcode);
  c.status = st;
  c.vendor_err = vendor_err;
  comp_.post_cqe(q.send_cqn, c, when);
}

// Completes, oldest first, the outstanding WQEs wholly acknowledged: whose last PSN is before
// `psn` (or is `psn`, if inclusive), at `when`. Stops at a WQE that failed locally.
RN_HOT void Requester::complete_acked(QpCtx& q, uint32_t psn, bool inclusive, Tick when) {
  const uint32_t osize = static_cast<uint32_t>(q.sq.outstanding.size());
  while (q.sq.out_head != q.sq.out_tail) {
    Outstanding& e = q.sq.outstanding[q.sq.out_head % osize];
    const int32_t d = w::psn_cmp(e.last_psn, psn);
    if (e.status != WcStatus::SUCCESS || d > 0 || (d == 0 && !inclusive)) break;
    if (e.read && !e.read_done) break;  // a READ completes with its last response
    complete(q, e, WcStatus::SUCCESS, 0, e.read ? std::max(when, e.done_at) : when);
    ++wqes_completed_;
    ++q.sq.out_head;
    ++q.sq.done;
  }
}

RN_HOT void Requester::on_ack(QpCtx& q, const w::TransportHeader& h) {
  if (q.state != dev::QpState::RTS && q.state != dev::QpState::SQD) return;
  uint8_t syn = h.aeth_syndrome;
  const uint32_t psn = h.psn;
  // The ACK must acknowledge a PSN that was sent and is not yet acknowledged. (After going back,
  // PSNs up to the highest ever sent count: the responder may have them.)
  if (w::psn_cmp(psn, q.sq.unacked_psn) < 0 || w::psn_cmp(psn, q.sq.max_psn) >= 0) {
    ++stale_acks_;
    return;
  }
  const Tick when = now() + env_.params.rx_pipeline_latency;
  if (w::aeth_is_ack(syn)) {
    ++acks_;
    complete_acked(q, psn, true, when);
    q.sq.unacked_psn = w::psn_add(psn, 1);
    if (q.sq.rd_head != q.sq.rd_tail) {
      // A READ still waits for responses: nothing from it on is acknowledged. An ACK beyond it
      // means its responses were lost (implied NAK): ask for the rest again.
      const ReadCtx& r = q.sq.reads[q.sq.rd_head % q.sq.reads.size()];
      if (w::psn_cmp(q.sq.unacked_psn, r.next_psn) > 0) q.sq.unacked_psn = r.next_psn;
      if (w::psn_cmp(psn, r.last_psn) >= 0 && q.sends()) {
        ++implied_naks_;
        return go_back_for_read(q, r);
      }
    }
    q.sq.retry_left = q.retry_cnt;  // progress
    q.sq.gone_back = false;
    q.sq.rnr_left = q.rnr_retry;
    q.sq.ack_deadline = q.sq.unacked_psn == q.sq.max_psn ? 0 : now() + ack_timeout(q);
    retire(q);
    skip_acknowledged(q);
    schedule(q);
    return;
  }
  ++naks_;
  // Everything before the NAK's PSN is acknowledged: progress, if that is more than before.
  complete_acked(q, psn, false, when);
  // Except a READ or atomic still waiting for responses: the responder executed it, its
  // responses were lost (implied NAK, as for an ACK beyond it). The go-back starts there.
  uint32_t back = psn;
  if (q.sq.rd_head != q.sq.rd_tail) {
    const ReadCtx& r = q.sq.reads[q.sq.rd_head % q.sq.reads.size()];
    if (w::psn_cmp(psn, r.next_psn) > 0) back = r.next_psn;
  }
  if (w::psn_cmp(back, q.sq.unacked_psn) > 0) {
    q.sq.retry_left = q.retry_cnt;
    q.sq.gone_back = false;
    q.sq.rnr_left = q.rnr_retry;
  }
  q.sq.unacked_psn = back;
  if (syn == w::kAethSynNakPsnSeq && q.sq.gone_back && q.sq.back_psn == back) {
    // Gone back there already, with no progress since. A NAK no further than the last one
    // answers packets sent before the resend: ignored (the ACK timer still runs). A NAK further
    // on says the responder got further meanwhile (packets of before the go-back, reordered):
    // go back again, without spending a retry (each such NAK is further: this cannot repeat
    // for ever).
    if (w::psn_cmp(psn, q.sq.nak_psn) <= 0) {
      ++naks_ignored_;
      return;
    }
    q.sq.nak_psn = psn;
    ++seq_retries_;
    RN_LOG(env_.sim, LogCat::kTx, env_.name,
           "qp {} sequence NAK psn {}: going back to {} again (no retry spent)", q.qpn, psn, back);
    restart_at(q, back);
    return;
  }
  if (w::aeth_is_rnr_nak(syn) || syn == w::kAethSynNakPsnSeq) {
    const bool rnr = w::aeth_is_rnr_nak(syn);
    uint8_t& left = rnr ? q.sq.rnr_left : q.sq.retry_left;
    if (left > 0) {
      if (!(rnr && q.rnr_retry == 7)) --left;  // an RNR retry count of 7 means forever
      q.sq.ack_deadline = 0;
      if (!rnr) {
        q.sq.gone_back = true;
        q.sq.back_psn = back;
        q.sq.nak_psn = psn;
        ++seq_retries_;
        RN_LOG(env_.sim, LogCat::kTx, env_.name, "qp {} sequence NAK psn {}: going back to {}",
               q.qpn, psn, back);
        restart_at(q, back);
        return;
      }
      ++rnr_retries_;
      const uint32_t qpn = q.qpn, epoch = q.epoch;
      q.sq.wait = SqWait::kRnrTimer;
      const Tick wait = w::rnr_timer_ns(w::aeth_value(syn)) * kNs;
      RN_LOG(env_.sim, LogCat::kTx, env_.name, "qp {} RNR NAK psn {}: again in {} ns", q.qpn, psn,
             wait / kNs);
      env_.sim.eq.after(wait, [this, qpn, epoch, back] {
        QpCtx* qq = t_.qp(qpn);
        if (!qq || qq->epoch != epoch || qq->sq.wait != SqWait::kRnrTimer) return;
        qq->sq.wait = SqWait::kNone;
        if (!qq->sends()) return;
        restart_at(*qq, back);
      });
      return;
    }
  }
  WcStatus st = WcStatus::REM_OP_ERR;
  if (w::aeth_is_rnr_nak(syn)) {
    st = WcStatus::RNR_RETRY_EXC_ERR;
  } else {
    switch (syn) {
      case w::kAethSynNakPsnSeq:
        st = WcStatus::RETRY_EXC_ERR;
        break;
      case w::kAethSynNakInvReq:
        st = WcStatus::REM_INV_REQ_ERR;
        break;
      case w::kAethSynNakRemAccess:
        st = WcStatus::REM_ACCESS_ERR;
        break;
      default:
        st = WcStatus::REM_OP_ERR;
        break;
    }
  }
  fail_head(q, st, syn);
}

void Requester::fail_head(QpCtx& q, WcStatus st, uint8_t vendor_err) {
  RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} psn {}: WQE fails with {}", q.qpn,
         q.sq.unacked_psn, dev::to_string(st));
  if (q.sq.out_head != q.sq.out_tail) {
    Outstanding& e = q.sq.outstanding[q.sq.out_head % q.sq.outstanding.size()];
    if (e.status != WcStatus::SUCCESS) {  // it had already failed locally: keep that status
      st = e.status;
      vendor_err = e.vendor_err;
    }
    complete(q, e, st, vendor_err, now() + env_.params.rx_pipeline_latency);
    ++q.sq.out_head;
    ++q.sq.done;
  }
  life_->fail(q);
}

Tick Requester::ack_timeout(const QpCtx& q) {
  // 4.096 us x 2^timeout; 0: no timeout.
  return q.timeout ? (Tick(4096) * kNs) << q.timeout : 0;
}

RN_INLINE void Requester::arm_ack_timer(QpCtx& q) {
  const Tick t = ack_timeout(q);
  if (t == 0) return;
  if (q.sq.ack_deadline == 0) q.sq.ack_deadline = now() + t;
  if (q.sq.ack_timer == AckTimer::kBooked) return;
  q.sq.ack_timer = AckTimer::kBooked;
  book_timer(BookedTimer{q.sq.ack_deadline, q.qpn, q.epoch});
}

void Requester::book_timer(const BookedTimer& b) {
  const size_t mask = timers_.size() - 1;
  if (timers_count_ && b.at < timers_[(timers_head_ + timers_count_ - 1) & mask].at) {
    env_.sim.eq.at(b.at, [this, b] { ack_timer_fired(b.qpn, b.epoch); });  // out of order
    return;
  }
  if (timers_count_ == timers_.size()) {  // grows with the QPs armed at once, then stays
    std::vector<BookedTimer> bigger(timers_.size() * 2);
    for (size_t i = 0; i < timers_count_; ++i) bigger[i] = timers_[(timers_head_ + i) & mask];
    timers_.swap(bigger);
    timers_head_ = 0;
  }
  timers_[(timers_head_ + timers_count_++) & (timers_.size() - 1)] = b;
  if (!timers_event_) {
    timers_event_ = true;
    env_.sim.eq.at(timers_[timers_head_].at, [this] { run_timers(); });
  }
}

void Requester::run_timers() {
  // timers_event_ stays set while they run: timers booked meanwhile wait for the event below.
  while (timers_count_ && timers_[timers_head_].at <= now()) {
    const BookedTimer b = timers_[timers_head_];
    timers_head_ = (timers_head_ + 1) & (timers_.size() - 1);
    --timers_count_;
    ack_timer_fired(b.qpn, b.epoch);
  }
  timers_event_ = timers_count_ > 0;
  if (timers_event_) env_.sim.eq.at(timers_[timers_head_].at, [this] { run_timers(); });
}

void Requester::ack_timer_fired(uint32_t qpn, uint32_t epoch) {
  QpCtx* qq = t_.qp(qpn);
  if (!qq || qq->epoch != epoch) return;
  QpCtx& q = *qq;
  q.sq.ack_timer = AckTimer::kOff;
  if (!q.sends() || q.sq.ack_deadline == 0) return;
  if (now() < q.sq.ack_deadline) return arm_ack_timer(q);  // progress moved it on
  ack_timed_out(q);
}

void Requester::ack_timed_out(QpCtx& q) {
  ++timeouts_;
  q.sq.ack_deadline = 0;
  q.sq.gone_back = false;  // the timeout resends: a response missing after it goes back again
  RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} local ACK timeout at psn {} ({} retries left)",
         q.qpn, q.sq.unacked_psn, q.sq.retry_left);
  if (q.sq.retry_left == 0)
    return fail_head(q, WcStatus::RETRY_EXC_ERR, static_cast<uint8_t>(dev::VendorErr::NONE));
  --q.sq.retry_left;
  restart_at(q, q.sq.unacked_psn);
}

void Requester::skip_acknowledged(QpCtx& q) {
  // Acknowledged beyond where a restart is resending (by an ACK or a response that was on its way
  // when the queue went back): go on from there instead. Sending from behind the acknowledged
  // PSN would resend what the responder has, and the window (PSNs from the acknowledged one on)
  // would never open.
  if (q.sends() && w::psn_cmp(q.sq.unacked_psn, q.sq.psn) > 0) restart_at(q, q.sq.unacked_psn);
}

void Requester::restart_at(QpCtx& q, uint32_t psn) {
  reposition(q, psn);
  maybe_fetch(q);
  schedule(q);
}

void Requester::reposition(QpCtx& q, uint32_t psn) {
  // The outstanding WQE that holds `psn`: it starts again there, and the WQEs after it follow
  // (their entries stay: they are not started twice). If every started WQE is acknowledged below
  // `psn`, the queue goes on with the first WQE never started.
  const uint32_t osize = static_cast<uint32_t>(q.sq.outstanding.size());
  uint32_t k = q.sq.out_head;
  while (k != q.sq.out_tail && w::psn_cmp(q.sq.outstanding[k % osize].last_psn, psn) < 0) ++k;
  const bool within = k != q.sq.out_tail;
  const uint32_t idx = within ? q.sq.outstanding[k % osize].idx : q.sq.high_started;
  if (q.sq.next != idx || q.sq.phase == SqPhase::kInMessage) {
    q.sq.next = q.sq.fetched = idx;
    ++q.sq.fetch_gen;  // the cache refills from host memory; a fetch on its way is stale
  }
  if (within) {
    q.sq.phase = SqPhase::kRestart;
    q.sq.resume_first_psn = q.sq.outstanding[k % osize].first_psn;
    q.sq.resume_psn = psn;
  } else if (q.sq.phase != SqPhase::kStopped) {
    q.sq.phase = SqPhase::kIdle;
  }
  q.sq.psn = psn;
  q.sq.since_ackreq = 0;
  RN_LOG(env_.sim, LogCat::kTx, env_.name, "qp {} resumes at psn {}: WQE {}{}", q.qpn, psn, idx,
         within ? " (started before)" : " (never started)");
}

bool Requester::read_blocked(const QpCtx& q) const {
  // The next WQE, started for the first time, is a READ or atomic while max_rd_atomic of them
  // are outstanding, or is fenced while any is.
  const SendWqeCache& c = q.sq.cache[q.sq.next % q.sq.cache.size()];
  if (static_cast<int32_t>(q.sq.next - q.sq.high_started) < 0) return false;
  const uint32_t reads = q.sq.rd_tail - q.sq.rd_head;
  if (reads > 0 && (c.hdr.flags & static_cast<uint8_t>(dev::WqeFlags::FENCE))) return true;
  return (c.hdr.opcode == static_cast<uint8_t>(WrOpcode::RDMA_READ) || is_atomic(c.hdr.opcode)) &&
         reads >= q.sq.reads.size();
}

void Requester::send_read_request(QpCtx& q) {
  // One request for the rest of the READ (all of it, or from where its responses stopped); it
  // takes a PSN for each response packet it asks for.
  const auto& h = q.sq.cur.hdr;
  const uint32_t off = q.sq.cur_off;
  w::TransportHeader th{};
  th.opcode = w::to_u8(w::Opcode::RC_RDMA_READ_REQUEST);
  th.pkey = 0xFFFF;
  th.dest_qp = q.dest_qpn;
  th.psn = q.sq.psn;
  th.ack_req = true;
  th.reth_va = h.remote_addr + off;
  th.reth_rkey = h.rkey;
  th.reth_len = q.sq.cur_len - off;
  net::Frame* f = port_.new_frame();
  const size_t hl = w::encode_transport_header(th, f->data + port_.headroom());
  port_.claim(f, static_cast<uint32_t>(hl), q.path, true);
  ++packets_;
  ++read_requests_;
  RN_LOG(env_.sim, LogCat::kTx, env_.name, "qp {} RDMA_READ_REQUEST psn {} va {:#x} len {}", q.qpn,
         th.psn, th.reth_va, th.reth_len);
  const uint32_t n = packets_for(th.reth_len, q.mtu);
  const uint32_t end = w::psn_add(th.psn, n);
  if (w::psn_cmp(th.psn, q.sq.max_psn) < 0) ++retransmitted_;
  if (w::psn_cmp(end, q.sq.max_psn) > 0) q.sq.max_psn = end;
  q.sq.psn = end;
  q.sq.since_ackreq = 0;
  q.sq.cur_off = q.sq.cur_len;
  q.sq.phase = SqPhase::kIdle;
  arm_ack_timer(q);
  port_.drain();
}

void Requester::send_atomic_request(QpCtx& q) {
  // One packet, one PSN; the original value comes back in an ATOMIC ACKNOWLEDGE.
  const auto& h = q.sq.cur.hdr;
  const bool cas = h.opcode == static_cast<uint8_t>(WrOpcode::ATOMIC_CMP_AND_SWP);
  w::TransportHeader th{};
  th.opcode = w::to_u8(cas ? w::Opcode::RC_COMPARE_SWAP : w::Opcode::RC_FETCH_ADD);
  th.pkey = 0xFFFF;
  th.dest_qp = q.dest_qpn;
  th.psn = q.sq.psn;
  th.ack_req = true;
  th.atomic_va = h.remote_addr;
  th.atomic_rkey = h.rkey;
  th.atomic_swap_add = cas ? q.sq.cur.atomic.swap : q.sq.cur.atomic.compare_add;
  th.atomic_compare = cas ? q.sq.cur.atomic.compare_add : 0;
  net::Frame* f = port_.new_frame();
  const size_t hl = w::encode_transport_header(th, f->data + port_.headroom());
  port_.claim(f, static_cast<uint32_t>(hl), q.path, true);
  ++packets_;
  ++atomic_requests_;
  RN_LOG(env_.sim, LogCat::kTx, env_.name, "qp {} {} psn {} va {:#x}", q.qpn,
         w::op_info(th.opcode).name, th.psn, th.atomic_va);
  if (w::psn_cmp(th.psn, q.sq.max_psn) < 0) {
    ++retransmitted_;
  } else {
    q.sq.max_psn = w::psn_add(th.psn, 1);
  }
  q.sq.psn = w::psn_add(th.psn, 1);
  q.sq.since_ackreq = 0;
  q.sq.cur_off = q.sq.cur_len;
  q.sq.phase = SqPhase::kIdle;
  arm_ack_timer(q);
  port_.drain();
}

ReadCtx* Requester::expected_response(QpCtx& q, const RxPacket& p) {
  // A READ response or atomic acknowledgement answers the oldest READ or atomic outstanding and
  // carries the PSN it expects next. Anything else releases the frame: nothing outstanding (a
  // ghost), behind (a duplicate, answering a request sent again) or ahead (a response missing:
  // an implied NAK, go back for it).
  const w::TransportHeader& h = p.h;
  if ((q.state != dev::QpState::RTS && q.state != dev::QpState::SQD) ||
      q.sq.rd_head == q.sq.rd_tail) {
    ++ghost_responses_;
    RN_LOG(env_.sim, LogCat::kError, env_.name,
           "qp {} {} psn {}: no READ or atomic outstanding, discarded", q.qpn,
           w::op_info(h.opcode).name, h.psn);
    pool_.put(p.f);
    return nullptr;
  }
  ReadCtx& r = q.sq.reads[q.sq.rd_head % q.sq.reads.size()];
  const int32_t d = w::psn_cmp(h.psn, r.next_psn);
  if (d < 0) {
    ++duplicate_responses_;
    pool_.put(p.f);
    return nullptr;
  }
  if (d > 0) {
    ++implied_naks_;
    pool_.put(p.f);
    go_back_for_read(q, r);
    return nullptr;
  }
  return &r;
}

void Requester::response_taken(QpCtx& q, ReadCtx& r) {
  // Progress: the response's PSN and everything before it are acknowledged.
  r.next_psn = w::psn_add(r.next_psn, 1);
  q.sq.unacked_psn = r.next_psn;
  q.sq.retry_left = q.retry_cnt;
  q.sq.gone_back = false;
  q.sq.rnr_left = q.rnr_retry;
  q.sq.ack_deadline = q.sq.unacked_psn == q.sq.max_psn ? 0 : now() + ack_timeout(q);
  skip_acknowledged(q);
}

void Requester::read_done(QpCtx& q, const ReadCtx& r, uint32_t psn, Tick when, Tick landed) {
  // The last response of a READ, or an atomic's acknowledgement: the WQE completes once its data
  // has landed, with every one before it, and its slot of max_rd_atomic is free.
  if (Outstanding* e = entry(q, r.idx)) {
    e->read_done = true;
    e->done_at = landed;
  }
  ++q.sq.rd_head;
  complete_acked(q, psn, true, when);
  retire(q);
  schedule(q);
}

void Requester::on_read_response(QpCtx& q, const RxPacket& p) {
  const w::TransportHeader& h = p.h;
  ReadCtx* rp = expected_response(q, p);
  if (!rp) return;
  ReadCtx& r = *rp;
  const w::OpInfo& info = w::op_info(h.opcode);
  const bool last = w::psn_cmp(h.psn, r.last_psn) == 0;
  const uint32_t left = r.len - r.off;
  if (r.atomic || info.is_last() != last || (last ? p.plen != left : p.plen != q.mtu) ||
      (info.has(w::kExtAeth) && !w::aeth_is_ack(h.aeth_syndrome))) {
    RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} {} psn {} len {}: not the response expected",
           q.qpn, info.name, h.psn, p.plen);
    pool_.put(p.f);
    return fail_head(q, WcStatus::BAD_RESP_ERR, h.opcode);
  }
  const Tick when = now() + env_.params.rx_pipeline_latency;
  // Everything before this response is acknowledged by it.
  complete_acked(q, h.psn, false, when);
  Tick landed = when;
  if (!place_response(q, r, p.f, p.payload_off, p.plen, when, &landed)) return;
  ++read_responses_;
  r.off += p.plen;
  response_taken(q, r);
  if (last) read_done(q, r, h.psn, when, landed);
}

void Requester::go_back_for_read(QpCtx& q, const ReadCtx& r) {
  // Gone back here already, with no progress since: one retry per loss, not one per response
  // that was in flight behind it.
  if (q.sq.gone_back && q.sq.back_psn == r.next_psn) return;
  if (q.sq.retry_left == 0)
    return fail_head(q, WcStatus::RETRY_EXC_ERR, static_cast<uint8_t>(dev::VendorErr::NONE));
  --q.sq.retry_left;
  q.sq.gone_back = true;
  q.sq.back_psn = q.sq.nak_psn = r.next_psn;
  restart_at(q, r.next_psn);
}

bool Requester::place_response(QpCtx& q, ReadCtx& r, net::Frame* f, uint32_t data_off, uint32_t len,
                               Tick when, Tick* landed) {
  if (len == 0) {
    pool_.put(f);
    return true;
  }
  // Scatter [r.off, r.off + len) over the READ's (or the atomic's one) SGEs.
  xlate::SegList segs;
  Tick ready = now();
  uint32_t lkey = 0;
  const xlate::Status st = scatter(xl_, r.sge, r.num_sge, q.pdn, r.off, len, &segs, &ready, &lkey);
  if (st == xlate::Status::kPending) {  // dropped; asked for again once the stage knows
    ++stalls_xlate_;
    pool_.put(f);
    if (q.sq.wait != SqWait::kResponseTranslation) {
      q.sq.wait = SqWait::kResponseTranslation;
      // The responses behind it are dropped too, without going back again for each.
      q.sq.gone_back = true;
      q.sq.back_psn = q.sq.nak_psn = r.next_psn;
      xlate_waiters_.push_back(q.qpn);
    }
    return false;
  }
  if (st != xlate::Status::kOk) {
    RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} response into lkey {:#x}: {}", q.qpn, lkey,
           xlate::to_string(st));
    pool_.put(f);
    if (Outstanding* e = entry(q, r.idx)) {
      e->status = WcStatus::LOC_PROT_ERR;
      e->vendor_err = static_cast<uint8_t>(st);
    }
    ++local_errors_;
    q.sq.phase = SqPhase::kStopped;
    retire(q);
    return false;
  }
  *landed = rxbuf_.place(dma_, segs, f, data_off, len, when + (ready - now()), pool_);
  return true;
}

void Requester::on_atomic_ack(QpCtx& q, const RxPacket& p) {
  const w::TransportHeader& h = p.h;
  ReadCtx* rp = expected_response(q, p);
  if (!rp) return;
  ReadCtx& r = *rp;
  if (!r.atomic || !w::aeth_is_ack(h.aeth_syndrome)) {
    RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} {} psn {}: not the response expected", q.qpn,
           w::op_info(h.opcode).name, h.psn);
    pool_.put(p.f);
    return fail_head(q, WcStatus::BAD_RESP_ERR, h.opcode);
  }
  const Tick when = now() + env_.params.rx_pipeline_latency;
  complete_acked(q, h.psn, false, when);
  // The original value goes to the WQE's SGE in host order, from the frame (past its headers).
  const uint64_t orig = h.atomic_ack_orig;
  std::memcpy(p.f->data + p.payload_off, &orig, sizeof orig);
  Tick landed = when;
  if (!place_response(q, r, p.f, p.payload_off, sizeof orig, when, &landed)) return;
  ++atomic_responses_;
  r.off = sizeof orig;
  response_taken(q, r);
  read_done(q, r, h.psn, when, landed);
}

void Requester::local_error(QpCtx& q, WcStatus st, uint8_t vendor_err) {
  fail_wqe(q, q.sq.cur_idx, st, vendor_err);
}

void Requester::fail_wqe(QpCtx& q, uint32_t idx, WcStatus st, uint8_t vendor_err) {
  // Mark the WQE's entry failed. Packets of it already sent are acknowledged normally first; the
  // failure is reported when it reaches the head.
  if (Outstanding* e = entry(q, idx)) {
    e->status = st;
    e->vendor_err = vendor_err;
  }
  q.sq.phase = SqPhase::kStopped;
  ++local_errors_;
  retire(q);
}

void Requester::retire(QpCtx& q) {
  const uint32_t osize = static_cast<uint32_t>(q.sq.outstanding.size());
  if (q.sq.out_head == q.sq.out_tail) return check_drained(q);
  Outstanding& e = q.sq.outstanding[q.sq.out_head % osize];
  if (e.status == WcStatus::SUCCESS) return;
  // A failed WQE at the head: every earlier one is complete. Packets of it that were sent are
  // still unacknowledged, which no longer matters: the QP goes to ERR.
  complete(q, e, e.status, e.vendor_err, now());
  ++q.sq.out_head;
  ++q.sq.done;
  life_->fail(q);
}

void Requester::sent() {
  // The last packet of a UC WQE left: it completes, with every earlier one (in order).
  const UcSent u = uc_sent_[uc_sent_head_];
  if (++uc_sent_head_ == uc_sent_.size()) {
    uc_sent_.clear();  // keeps its capacity
    uc_sent_head_ = 0;
  }
  QpCtx* q = t_.qp(u.qpn);
  if (!q || q->epoch != u.epoch || !q->sends()) return;
  const uint32_t osize = static_cast<uint32_t>(q->sq.outstanding.size());
  while (q->sq.out_head != q->sq.out_tail) {
    Outstanding& e = q->sq.outstanding[q->sq.out_head % osize];
    if (static_cast<int32_t>(e.idx - u.idx) > 0 || e.status != WcStatus::SUCCESS) break;
    complete(*q, e, WcStatus::SUCCESS, 0, now());
    ++wqes_completed_;
    ++q->sq.out_head;
    ++q->sq.done;
  }
  q->sq.unacked_psn = q->sq.psn;  // nothing waits for an acknowledgement
  retire(*q);
}

void Requester::resume_after_error(QpCtx& q) {
  // SQE -> RTS: the queue was flushed; it takes new WQEs from where the flush left it.
  q.sq.phase = SqPhase::kIdle;
  q.sq.wait = SqWait::kNone;
}

void Requester::check_drained(QpCtx& q) {
  if (q.state != dev::QpState::SQD || q.sq.drain == SqDrain::kDrained) return;
  if (q.sq.out_head != q.sq.out_tail || q.sq.phase == SqPhase::kInMessage) return;
  q.sq.drain = SqDrain::kDrained;
  RN_LOG(env_.sim, LogCat::kWqe, env_.name, "qp {} send queue drained (SQD)", q.qpn);
  if (q.sq.drain_event) comp_.post_eqe(dev::EqeType::SQ_DRAINED, q.qpn, 0, now());
}

void Requester::flush(QpCtx& q) {
  if (q.sq.phase == SqPhase::kInMessage) q.sq.phase = SqPhase::kIdle;
  continue_flush(q);
}

void Requester::continue_flush(QpCtx& q) {
  const uint32_t osize = static_cast<uint32_t>(q.sq.outstanding.size());
  const Tick when = now();
  while (q.sq.out_head != q.sq.out_tail) {
    Outstanding& e = q.sq.outstanding[q.sq.out_head % osize];
    complete(q, e, WcStatus::WR_FLUSH_ERR, 0, when);
    ++flushed_;
    ++q.sq.out_head;
    ++q.sq.done;
  }
  q.sq.rd_head = q.sq.rd_tail;
  // Cached, never started WQEs (after going back, the cache may hold WQEs started before, whose
  // entries were flushed above: skip past them).
  if (static_cast<int32_t>(q.sq.high_started - q.sq.next) > 0) {
    if (static_cast<int32_t>(q.sq.high_started - q.sq.fetched) > 0) {
      q.sq.fetched = q.sq.high_started;
      ++q.sq.fetch_gen;
    }
    q.sq.next = q.sq.high_started;
  }
  while (q.sq.next != q.sq.fetched) {
    const SendWqeCache& c = q.sq.cache[q.sq.next % q.sq.cache.size()];
    Outstanding e{};
    e.idx = q.sq.next;
    e.wr_id = c.hdr.wr_id;
    e.wc_opcode = static_cast<uint8_t>(wc_opcode_of(c.hdr.opcode));
    complete(q, e, WcStatus::WR_FLUSH_ERR, 0, when);
    ++flushed_;
    ++q.sq.next;
    ++q.sq.done;
  }
  // Posted but not yet fetched: fetch them to learn their wr_id.
  maybe_fetch(q);
}

void Requester::reset(QpCtx& q) {
  q.sq.pi = q.sq.fetched = q.sq.next = q.sq.done = 0;
  q.sq.fetch = WqeFetch::kIdle;
  q.sq.phase = SqPhase::kIdle;
  q.sq.wait = SqWait::kNone;
  q.sq.high_started = 0;
  q.sq.ack_deadline = 0;
  q.sq.rd_head = q.sq.rd_tail = 0;
  q.sq.gone_back = false;
  q.sq.out_head = q.sq.out_tail = 0;
  q.sq.since_ackreq = 0;
}

}  // namespace rn::qp
