#include "model/qp/qp_engine.h"

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "model/wire/framing.h"

namespace rn::qp {

using dev::CmdStatus;
using dev::QpAttr;
using dev::QpState;

namespace {
constexpr uint32_t bit(QpAttr a) { return static_cast<uint32_t>(a); }

struct Transition {
  QpState from, to;
  uint32_t required, optional;
};
const uint32_t kAv = bit(QpAttr::AV);
const Transition kRc[] = {
    {QpState::RESET, QpState::INIT,
     bit(QpAttr::PKEY_INDEX) | bit(QpAttr::PORT) | bit(QpAttr::ACCESS_FLAGS), 0},
    {QpState::INIT, QpState::INIT, 0,
     bit(QpAttr::PKEY_INDEX) | bit(QpAttr::PORT) | bit(QpAttr::ACCESS_FLAGS)},
    {QpState::INIT, QpState::RTR,
     kAv | bit(QpAttr::PATH_MTU) | bit(QpAttr::DEST_QPN) | bit(QpAttr::RQ_PSN) |
         bit(QpAttr::MAX_DEST_RD_ATOMIC) | bit(QpAttr::MIN_RNR_TIMER),
     bit(QpAttr::ALT_PATH) | bit(QpAttr::ACCESS_FLAGS) | bit(QpAttr::PKEY_INDEX)},
    {QpState::RTR, QpState::RTS,
     bit(QpAttr::SQ_PSN) | bit(QpAttr::TIMEOUT) | bit(QpAttr::RETRY_CNT) | bit(QpAttr::RNR_RETRY) |
         bit(QpAttr::MAX_QP_RD_ATOMIC),
     bit(QpAttr::CUR_STATE) | bit(QpAttr::ACCESS_FLAGS) | bit(QpAttr::MIN_RNR_TIMER) |
         bit(QpAttr::ALT_PATH) | bit(QpAttr::PATH_MIG_STATE)},
    {QpState::RTS, QpState::RTS, 0,
     bit(QpAttr::CUR_STATE) | bit(QpAttr::ACCESS_FLAGS) | bit(QpAttr::MIN_RNR_TIMER) |
         bit(QpAttr::ALT_PATH) | bit(QpAttr::PATH_MIG_STATE)},
    {QpState::RTS, QpState::SQD, 0, bit(QpAttr::EN_SQD_ASYNC_NOTIFY)},
    {QpState::SQD, QpState::RTS, 0,
     bit(QpAttr::CUR_STATE) | bit(QpAttr::ACCESS_FLAGS) | bit(QpAttr::MIN_RNR_TIMER) |
         bit(QpAttr::ALT_PATH) | bit(QpAttr::PATH_MIG_STATE)},
    // Only once drained (the path and limits change under no message in flight).
    {QpState::SQD, QpState::SQD, 0,
     bit(QpAttr::PORT) | kAv | bit(QpAttr::PATH_MTU) | bit(QpAttr::TIMEOUT) |
         bit(QpAttr::RETRY_CNT) | bit(QpAttr::RNR_RETRY) | bit(QpAttr::MAX_QP_RD_ATOMIC) |
         bit(QpAttr::MAX_DEST_RD_ATOMIC) | bit(QpAttr::ALT_PATH) | bit(QpAttr::ACCESS_FLAGS) |
         bit(QpAttr::PKEY_INDEX) | bit(QpAttr::MIN_RNR_TIMER) | bit(QpAttr::PATH_MIG_STATE)},
};

// UC: no READ/atomic limits, timeouts or retries (nothing is acknowledged); SQE after a send
// error, back to RTS by MODIFY_QP.
const Transition kUc[] = {
    {QpState::RESET, QpState::INIT,
     bit(QpAttr::PKEY_INDEX) | bit(QpAttr::PORT) | bit(QpAttr::ACCESS_FLAGS), 0},
    {QpState::INIT, QpState::INIT, 0,
     bit(QpAttr::PKEY_INDEX) | bit(QpAttr::PORT) | bit(QpAttr::ACCESS_FLAGS)},
    {QpState::INIT, QpState::RTR,
     kAv | bit(QpAttr::PATH_MTU) | bit(QpAttr::DEST_QPN) | bit(QpAttr::RQ_PSN),
     bit(QpAttr::ALT_PATH) | bit(QpAttr::ACCESS_FLAGS) | bit(QpAttr::PKEY_INDEX)},
    {QpState::RTR, QpState::RTS, bit(QpAttr::SQ_PSN),
     bit(QpAttr::CUR_STATE) | bit(QpAttr::ACCESS_FLAGS) | bit(QpAttr::ALT_PATH) |
         bit(QpAttr::PATH_MIG_STATE)},
    {QpState::RTS, QpState::RTS, 0,
     bit(QpAttr::CUR_STATE) | bit(QpAttr::ACCESS_FLAGS) | bit(QpAttr::ALT_PATH) |
         bit(QpAttr::PATH_MIG_STATE)},
    {QpState::RTS, QpState::SQD, 0, bit(QpAttr::EN_SQD_ASYNC_NOTIFY)},
    {QpState::SQD, QpState::RTS, 0,
     bit(QpAttr::CUR_STATE) | bit(QpAttr::ACCESS_FLAGS) | bit(QpAttr::ALT_PATH) |
         bit(QpAttr::PATH_MIG_STATE)},
    {QpState::SQD, QpState::SQD, 0,
     kAv | bit(QpAttr::ALT_PATH) | bit(QpAttr::ACCESS_FLAGS) | bit(QpAttr::PKEY_INDEX) |
         bit(QpAttr::PATH_MIG_STATE)},
    {QpState::SQE, QpState::RTS, 0, bit(QpAttr::CUR_STATE) | bit(QpAttr::ACCESS_FLAGS)},
};

// UD (the kernel's ib_modify_qp_is_ok table): a Q_Key from INIT on, no address vector, MTU,
// destination, receive PSN or access flags (the address is in each WQE: UdSeg; the MTU is the
// port's); SQE after a send error, back to RTS by MODIFY_QP.
const uint32_t kQkey = bit(QpAttr::QKEY);
const Transition kUd[] = {
    {QpState::RESET, QpState::INIT, bit(QpAttr::PKEY_INDEX) | bit(QpAttr::PORT) | kQkey, 0},
    {QpState::INIT, QpState::INIT, 0, bit(QpAttr::PKEY_INDEX) | bit(QpAttr::PORT) | kQkey},
    {QpState::INIT, QpState::RTR, 0, bit(QpAttr::PKEY_INDEX) | kQkey},
    {QpState::RTR, QpState::RTS, bit(QpAttr::SQ_PSN), bit(QpAttr::CUR_STATE) | kQkey},
    {QpState::RTS, QpState::RTS, 0, bit(QpAttr::CUR_STATE) | kQkey},
    {QpState::RTS, QpState::SQD, 0, bit(QpAttr::EN_SQD_ASYNC_NOTIFY)},
    {QpState::SQD, QpState::RTS, 0, bit(QpAttr::CUR_STATE) | kQkey},
    {QpState::SQD, QpState::SQD, 0, bit(QpAttr::PKEY_INDEX) | kQkey},
    {QpState::SQE, QpState::RTS, 0, bit(QpAttr::CUR_STATE) | kQkey},
};

uint32_t log2_floor(uint64_t v) { return v ? 63 - static_cast<uint32_t>(__builtin_clzll(v)) : 0; }
}  // namespace

QpEngine::QpEngine(const NicEnv& env, QpTable& t, Requester& req, Responder& resp, Completion& comp)
    : env_(env), t_(t), req_(req), resp_(resp), comp_(comp) {}

CmdResult QpEngine::create(const dev::CreateQpIn& a, uint32_t* qpn_out) {
  using Q = dev::CreateQpIn;
  const auto& p = env_.params;
  if (a.qp_type != static_cast<uint8_t>(dev::QpType::RC) &&
      a.qp_type != static_cast<uint8_t>(dev::QpType::UC) &&
      a.qp_type != static_cast<uint8_t>(dev::QpType::UD))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(Q, qp_type)};
  if (a.sq_sig_all > 1) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(Q, sq_sig_all)};
  const uint32_t max_log = log2_floor(p.max_qp_wr);
  if (a.log_sq_size < 1 || a.log_sq_size > std::min<uint32_t>(15, max_log))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(Q, log_sq_size)};
  // With an SRQ the QP has no receive queue of its own: no size, stride or ring.
  const SrqCtx* srq = a.srqn != 0 ? t_.srq(a.srqn) : nullptr;
  if (a.srqn != 0 && !srq) return {CmdStatus::BAD_HANDLE, RN_FIELD_OFF(Q, srqn)};
  if (srq ? a.log_rq_size != 0
          : (a.log_rq_size < 1 || a.log_rq_size > std::min<uint32_t>(15, max_log)))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(Q, log_rq_size)};
  if (!dev::valid_send_wqe_shift(a.sq_wqe_shift))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(Q, sq_wqe_shift)};
  if (!srq && !dev::valid_recv_wqe_shift(a.rq_wqe_shift))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(Q, rq_wqe_shift)};
  if (!t_.pd_valid(a.pdn)) return {CmdStatus::BAD_HANDLE, RN_FIELD_OFF(Q, pdn)};
  if (srq && srq->pdn != a.pdn)  // its WQEs' buffers are checked in the QP's PD
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(Q, srqn)};
  if (!t_.cq(a.send_cqn)) return {CmdStatus::BAD_HANDLE, RN_FIELD_OFF(Q, send_cqn)};
  if (!t_.cq(a.recv_cqn)) return {CmdStatus::BAD_HANDLE, RN_FIELD_OFF(Q, recv_cqn)};
  if (a.sq_addr == 0 || (a.sq_addr & 63) ||
      !pcie::in_address_space(a.sq_addr, uint64_t(1) << (a.log_sq_size + a.sq_wqe_shift)))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(Q, sq_addr)};
  if (!srq && (a.rq_addr == 0 || (a.rq_addr & 63) ||
               !pcie::in_address_space(a.rq_addr, uint64_t(1) << (a.log_rq_size + a.rq_wqe_shift))))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(Q, rq_addr)};
  uint32_t qpn = take_oldest(free_qps_);
  if (qpn == 0) {
    uint32_t n = static_cast<uint32_t>(std::max<size_t>(2, t_.qps.size()));
    if (n >= p.max_qps + 2 || n >= dev::kMaxQpDoorbells) return {CmdStatus::NO_RESOURCES, 0};
    t_.qps.resize(n + 1);
    qpn = n;
  }
  auto q = std::make_unique<QpCtx>();
  q->valid = true;
  q->qpn = qpn;
  q->epoch = ++t_.epochs;  // a reused QPN must not accept the old QP's DMA completions
  q->type = a.qp_type;
  q->pdn = a.pdn;
  q->send_cqn = a.send_cqn;
  q->recv_cqn = a.recv_cqn;
  q->sig_all = a.sq_sig_all;
  q->sq_addr = a.sq_addr;
  q->rq_addr = srq ? 0 : a.rq_addr;
  q->srqn = a.srqn;
  q->log_sq = a.log_sq_size;
  q->log_rq = a.log_rq_size;
  q->sq_shift = a.sq_wqe_shift;
  q->rq_shift = srq ? srq->shift : a.rq_wqe_shift;
  uint32_t sp = std::max<uint32_t>(1, std::min(p.wqe_prefetch, q->sq_size()));
  // With an SRQ: one slot, for the WQE taken from the SRQ.
  uint32_t rp = srq ? 1 : std::max<uint32_t>(1, std::min(p.rq_prefetch, q->rq_size()));
  q->sq.cache.resize(sp);
  q->rq.cache.resize(rp);
  q->sq.outstanding.resize(q->sq_size());
  q->sq.reads.resize(1);
  if (q->ud()) {
    // UD: the source of every datagram is known now; the destination comes with each WQE. The
    // MTU is the port's (QUERY_PORT active_mtu), as no PATH_MTU is given to a UD QP.
    q->path.src_mac = env_.params.mac;
    q->path.src_ip = env_.params.ipv4;
    q->path.udp_sport = wire::roce_udp_sport(qpn);
  }
  t_.qps[qpn] = std::move(q);
  t_.cqs[a.send_cqn].users++;
  t_.cqs[a.recv_cqn].users++;
  t_.pd_users[a.pdn]++;
  if (srq) t_.srqs[a.srqn].users++;
  *qpn_out = qpn;
  return {};
}

CmdResult QpEngine::destroy(uint32_t qpn) {
  QpCtx* q = t_.qp(qpn);
  if (!q) return {CmdStatus::BAD_HANDLE, RN_FIELD_OFF(dev::HandleIn, handle)};
  t_.cqs[q->send_cqn].users--;
  t_.cqs[q->recv_cqn].users--;
  t_.pd_users[q->pdn]--;
  if (q->srqn != 0) t_.srqs[q->srqn].users--;
  t_.qps[qpn].reset();
  free_qps_.push_back(qpn);
  return {};
}

CmdResult QpEngine::query(uint32_t qpn, dev::QueryQpOut* out) {
  QpCtx* q = t_.qp(qpn);
  if (!q) return {CmdStatus::BAD_HANDLE, RN_FIELD_OFF(dev::HandleIn, handle)};
  dev::QueryQpOut& r = *out;
  r = dev::QueryQpOut{};
  r.qp_state = static_cast<uint8_t>(q->state);
  r.path_mtu = q->mtu_code;
  r.qp_type = q->type;
  r.access_flags = q->access;
  r.dest_qpn = q->dest_qpn;
  r.rq_psn = q->rs.epsn;
  r.sq_psn = q->sq.psn;
  r.dest_ipv4 = q->dest_ipv4;
  r.sq_pi = static_cast<uint16_t>(q->sq.pi);
  r.sq_ci = static_cast<uint16_t>(q->sq.done);
  r.rq_pi = static_cast<uint16_t>(q->rq.pi);
  r.rq_ci = static_cast<uint16_t>(q->rq.ci);
  r.qkey = q->qkey;
  return {};
}

CmdResult QpEngine::modify(const dev::ModifyQpIn& a) {
  using M = dev::ModifyQpIn;
  QpCtx* qq = t_.qp(a.qpn);
  if (!qq) return {CmdStatus::BAD_HANDLE, RN_FIELD_OFF(M, qpn)};
  QpCtx& q = *qq;
  const uint32_t mask = a.attr_mask;
  const uint32_t known = (bit(QpAttr::DEST_QPN) << 1) - 1;
  if (mask & ~known) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, attr_mask)};
  QpState cur = q.state;
  if (mask & bit(QpAttr::CUR_STATE)) {
    if (a.cur_qp_state > 6) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, cur_qp_state)};
    if (static_cast<QpState>(a.cur_qp_state) != cur)
      return {CmdStatus::BAD_STATE, RN_FIELD_OFF(M, cur_qp_state)};
  }
  QpState to = cur;
  if (mask & bit(QpAttr::STATE)) {
    if (a.qp_state > 6) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, qp_state)};
    to = static_cast<QpState>(a.qp_state);
  }
  const uint32_t attrs = mask & ~(bit(QpAttr::STATE) | bit(QpAttr::CUR_STATE));
  if (to == QpState::RESET || to == QpState::ERR) {
    if (to == QpState::ERR && cur == QpState::RESET)
      return {CmdStatus::BAD_STATE, RN_FIELD_OFF(M, qp_state)};
    if (attrs) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, attr_mask)};
    if (to == QpState::ERR) {
      enter_error(q, false);
    } else {
      reset(q);
    }
    return {};
  }
  const Transition* t = nullptr;
  if (q.uc()) {
    for (const auto& tr : kUc)
      if (tr.from == cur && tr.to == to) t = &tr;
  } else if (q.ud()) {
    for (const auto& tr : kUd)
      if (tr.from == cur && tr.to == to) t = &tr;
  } else {
    for (const auto& tr : kRc)
      if (tr.from == cur && tr.to == to) t = &tr;
  }
  if (!t) return {CmdStatus::BAD_STATE, RN_FIELD_OFF(M, qp_state)};
  if ((attrs & t->required) != t->required)
    return {CmdStatus::BAD_STATE, RN_FIELD_OFF(M, attr_mask)};
  if (attrs & ~(t->required | t->optional))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, attr_mask)};
  if (cur == QpState::SQD && to == QpState::SQD && q.sq.drain != SqDrain::kDrained)
    return {CmdStatus::BAD_STATE, RN_FIELD_OFF(M, qp_state)};  // not drained yet

  // Validate every attribute given before changing anything.
  if ((attrs & bit(QpAttr::ACCESS_FLAGS)) && (a.access_flags & ~kKnownAccess))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, access_flags)};
  if ((attrs & bit(QpAttr::PORT)) && a.port_num != 1)
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, port_num)};
  if ((attrs & bit(QpAttr::PKEY_INDEX)) && a.pkey_index != 0)
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, pkey_index)};
  if ((attrs & bit(QpAttr::PATH_MTU)) && mtu_bytes(a.path_mtu) == 0)
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, path_mtu)};
  if ((attrs & bit(QpAttr::DEST_QPN)) && a.dest_qpn > 0xFFFFFF)
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, dest_qpn)};
  if ((attrs & bit(QpAttr::RQ_PSN)) && a.rq_psn > 0xFFFFFF)
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, rq_psn)};
  if ((attrs & bit(QpAttr::SQ_PSN)) && a.sq_psn > 0xFFFFFF)
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, sq_psn)};
  if ((attrs & bit(QpAttr::TIMEOUT)) && a.timeout > 31)
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, timeout)};
  if ((attrs & bit(QpAttr::RETRY_CNT)) && a.retry_cnt > 7)
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, retry_cnt)};
  if ((attrs & bit(QpAttr::RNR_RETRY)) && a.rnr_retry > 7)
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, rnr_retry)};
  if ((attrs & bit(QpAttr::MIN_RNR_TIMER)) && a.min_rnr_timer > 31)
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, min_rnr_timer)};
  if ((attrs & bit(QpAttr::MAX_QP_RD_ATOMIC)) && a.max_rd_atomic > 16)
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, max_rd_atomic)};
  if ((attrs & bit(QpAttr::MAX_DEST_RD_ATOMIC)) && a.max_dest_rd_atomic > 16)
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, max_dest_rd_atomic)};
  if ((attrs & kAv) && (a.dest_mac[0] & 1))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, dest_mac)};
  if ((attrs & kAv) && a.dest_ipv4 == 0) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, dest_ipv4)};

  if (attrs & bit(QpAttr::ACCESS_FLAGS)) q.access = a.access_flags;
  if (attrs & kQkey) q.qkey = a.qkey;
  if (attrs & bit(QpAttr::PATH_MTU)) {
    q.mtu_code = a.path_mtu;
    q.mtu = mtu_bytes(a.path_mtu);
  }
  if (attrs & bit(QpAttr::DEST_QPN)) q.dest_qpn = a.dest_qpn;
  if (attrs & bit(QpAttr::RQ_PSN)) q.rs.epsn = a.rq_psn;
  if (attrs & bit(QpAttr::SQ_PSN)) q.sq.psn = q.sq.unacked_psn = q.sq.max_psn = a.sq_psn;
  if (attrs & bit(QpAttr::TIMEOUT)) q.timeout = a.timeout;
  if (attrs & bit(QpAttr::RETRY_CNT)) q.retry_cnt = q.sq.retry_left = a.retry_cnt;
  if (attrs & bit(QpAttr::RNR_RETRY)) q.rnr_retry = q.sq.rnr_left = a.rnr_retry;
  if (attrs & bit(QpAttr::MIN_RNR_TIMER)) q.min_rnr_timer = a.min_rnr_timer;
  if (attrs & bit(QpAttr::MAX_QP_RD_ATOMIC)) {
    q.max_rd_atomic = a.max_rd_atomic;
    if (q.sq.rd_head == q.sq.rd_tail) q.sq.reads.resize(std::max<uint8_t>(1, a.max_rd_atomic));
  }
  if (attrs & bit(QpAttr::MAX_DEST_RD_ATOMIC)) q.max_dest_rd_atomic = a.max_dest_rd_atomic;
  if (attrs & kAv) {
    q.dest_ipv4 = a.dest_ipv4;
    std::memcpy(q.dest_mac.data(), a.dest_mac, 6);
    q.tos = a.traffic_class;
    q.ttl = a.hop_limit ? a.hop_limit : 64;
    q.path.src_mac = env_.params.mac;
    q.path.dst_mac = q.dest_mac;
    q.path.src_ip = env_.params.ipv4;
    q.path.dst_ip = q.dest_ipv4;
    q.path.tos = q.tos;
    q.path.ttl = q.ttl;
    q.path.udp_sport = wire::roce_udp_sport(q.qpn);
  }
  const QpState from = q.state;
  q.state = to;
  if (to == QpState::SQD && from == QpState::RTS) {
    q.sq.drain = SqDrain::kDraining;
    q.sq.drain_event = (mask & bit(QpAttr::EN_SQD_ASYNC_NOTIFY)) != 0;
    req_.check_drained(q);  // perhaps already
  }
  if (from == QpState::SQE) req_.resume_after_error(q);
  if (to == QpState::RTS) req_.schedule(q);
  return {};
}

void QpEngine::fail(QpCtx& q) {
  if (q.unreliable() && q.sends()) return enter_sq_error(q);
  enter_error(q, true);
}

void QpEngine::enter_sq_error(QpCtx& q) {
  RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} enters SQE", q.qpn);
  q.state = QpState::SQE;
  req_.flush(q);
}

void QpEngine::enter_error(QpCtx& q, bool async_event) {
  if (q.state == QpState::ERR) return;
  RN_LOG(env_.sim, LogCat::kError, env_.name, "qp {} enters ERR", q.qpn);
  q.state = QpState::ERR;
  if (async_event) comp_.post_eqe(dev::EqeType::QP_FATAL, q.qpn, 0, env_.now());
  req_.flush(q);
  resp_.flush(q);
}

void QpEngine::reset(QpCtx& q) {
  q.epoch = ++t_.epochs;
  req_.reset(q);
  resp_.reset(q);
  q.state = QpState::RESET;
  q.sq.psn = q.sq.unacked_psn = q.sq.max_psn = 0;
}

}  // namespace rn::qp
