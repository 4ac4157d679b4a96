// The extended verbs API of our libibverbs.so.1, reached through verbs_context and the per-object
// tables: ibv_query_device_ex, ibv_create_cq_ex with start_poll/next_poll/end_poll and the read_*
// ops, ibv_create_qp_ex with the ibv_wr_* ops (collected, then posted by Driver::post_send at
// wr_complete), ibv_create_srq_ex for basic SRQs.
#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "bridge/verbs/verbs_internal.h"

namespace rn::verbs {

int query_device_ex(ibv_context* context, const ibv_query_device_ex_input* input,
                    ibv_device_attr_ex* attr, size_t attr_size) {
  if (!context || !attr || (input && input->comp_mask) || attr_size < sizeof(ibv_device_attr))
    return EINVAL;
  ibv_device_attr_ex a;
  std::memset(&a, 0, sizeof a);
  if (int e = ibv_query_device(context, &a.orig_attr)) return e;
  a.device_cap_flags_ex = a.orig_attr.device_cap_flags;
  a.phys_port_cnt_ex = 1;
  std::memcpy(attr, &a, std::min(attr_size, sizeof a));
  return 0;
}

// ---- Extended CQ: one completion at a time, under the context's mutex from start to end ----

namespace {

int poll_one(Cq* c) {
  int got = 0;
  try {
    got = c->ctx->drv->poll_cq(c->cq, 1, &c->cur);
  } catch (...) {
    got = 0;
  }
  if (got != 1) return ENOENT;
  c->ex.wr_id = c->cur.wr_id;
  c->ex.status = static_cast<ibv_wc_status>(c->cur.status);
  return 0;
}

int cq_start_poll(ibv_cq_ex* cq, ibv_poll_cq_attr* attr) {
  if (attr && attr->comp_mask) return EINVAL;
  Cq* c = cq_of(cq);
  c->ctx->mu.lock();
  if (int e = poll_one(c)) {
    c->ctx->mu.unlock();  // ENOENT: the application does not call end_poll
    return e;
  }
  return 0;
}
int cq_next_poll(ibv_cq_ex* cq) { return poll_one(cq_of(cq)); }
void cq_end_poll(ibv_cq_ex* cq) { cq_of(cq)->ctx->mu.unlock(); }

ibv_wc_opcode cq_read_opcode(ibv_cq_ex* cq) {
  return static_cast<ibv_wc_opcode>(cq_of(cq)->cur.opcode);
}
uint32_t cq_read_vendor_err(ibv_cq_ex* cq) { return cq_of(cq)->cur.vendor_err; }
uint32_t cq_read_byte_len(ibv_cq_ex* cq) { return cq_of(cq)->cur.byte_len; }
__be32 cq_read_imm_data(ibv_cq_ex* cq) { return htonl(cq_of(cq)->cur.imm_data); }
uint32_t cq_read_qp_num(ibv_cq_ex* cq) { return cq_of(cq)->cur.qp_num; }
uint32_t cq_read_src_qp(ibv_cq_ex* cq) { return cq_of(cq)->cur.src_qp; }
unsigned int cq_read_wc_flags(ibv_cq_ex* cq) { return cq_of(cq)->cur.wc_flags; }
uint32_t cq_read_slid(ibv_cq_ex*) { return 0; }  // RoCE: no LIDs
uint8_t cq_read_sl(ibv_cq_ex*) { return 0; }
uint8_t cq_read_dlid_path_bits(ibv_cq_ex*) { return 0; }
uint64_t cq_read_zero64(ibv_cq_ex*) { return 0; }
uint16_t cq_read_cvlan(ibv_cq_ex*) { return 0; }
uint32_t cq_read_flow_tag(ibv_cq_ex*) { return 0; }
void cq_read_tm_info(ibv_cq_ex*, ibv_wc_tm_info* tm) {
  if (tm) std::memset(tm, 0, sizeof *tm);
}

}  // namespace

void set_cq_ex_ops(Cq* c) {
  ibv_cq_ex& x = c->ex;
  x.start_poll = cq_start_poll;
  x.next_poll = cq_next_poll;
  x.end_poll = cq_end_poll;
  x.read_opcode = cq_read_opcode;
  x.read_vendor_err = cq_read_vendor_err;
  x.read_byte_len = cq_read_byte_len;
  x.read_imm_data = cq_read_imm_data;
  x.read_qp_num = cq_read_qp_num;
  x.read_src_qp = cq_read_src_qp;
  x.read_wc_flags = cq_read_wc_flags;
  x.read_slid = cq_read_slid;
  x.read_sl = cq_read_sl;
  x.read_dlid_path_bits = cq_read_dlid_path_bits;
  x.read_completion_ts = cq_read_zero64;
  x.read_cvlan = cq_read_cvlan;
  x.read_flow_tag = cq_read_flow_tag;
  x.read_tm_info = cq_read_tm_info;
  x.read_completion_wallclock_ns = cq_read_zero64;
}

ibv_cq_ex* create_cq_ex(ibv_context* context, ibv_cq_init_attr_ex* attr) {
  // What a completion can tell: the standard fields (no timestamps, VLANs, flow tags, TM).
  constexpr uint64_t kWcFlags =
      IBV_WC_EX_WITH_BYTE_LEN | IBV_WC_EX_WITH_IMM | IBV_WC_EX_WITH_QP_NUM | IBV_WC_EX_WITH_SRC_QP |
      IBV_WC_EX_WITH_SLID | IBV_WC_EX_WITH_SL | IBV_WC_EX_WITH_DLID_PATH_BITS;
  if (!context || !attr || attr->comp_vector != 0 ||
      (attr->comp_mask & ~uint32_t(IBV_CQ_INIT_ATTR_MASK_FLAGS))) {
    errno = attr && (attr->comp_mask & IBV_CQ_INIT_ATTR_MASK_PD) ? EOPNOTSUPP : EINVAL;
    return nullptr;
  }
  if (attr->wc_flags & ~kWcFlags) {
    if (debug_enabled())
      std::fprintf(stderr,
                   "rnicsim verbs: ibv_create_cq_ex: wc_flags %#llx not modelled (timestamps, "
                   "VLAN, flow tag, TM)\n",
                   static_cast<unsigned long long>(attr->wc_flags & ~kWcFlags));
    errno = EOPNOTSUPP;
    return nullptr;
  }
  ibv_cq* cq = make_cq(context, static_cast<int>(attr->cqe), attr->cq_context, attr->channel);
  if (!cq) return nullptr;
  Cq* c = cq_of(cq);
  set_cq_ex_ops(c);
  return &c->ex;
}

// ---- Extended QP: the ibv_wr_* builder ----

namespace {

Qp::Pending* add_wr(ibv_qp_ex* qx, dev::WrOpcode op) {
  Qp* q = qp_of(qx);
  Qp::Pending p;
  p.wr.wr_id = qx->wr_id;
  p.wr.opcode = op;
  p.wr.send_flags = qx->wr_flags & (IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED);
  q->pending.push_back(p);
  return &q->pending.back();
}
// The WR the setters apply to: the last one started (none: an error at wr_complete).
Qp::Pending* last_wr(ibv_qp_ex* qx) {
  Qp* q = qp_of(qx);
  if (q->pending.empty()) {
    q->pending_err = EINVAL;
    return nullptr;
  }
  return &q->pending.back();
}
void refuse(ibv_qp_ex* qx) { qp_of(qx)->pending_err = EOPNOTSUPP; }

void wr_start(ibv_qp_ex* qx) {
  Qp* q = qp_of(qx);
  q->pending.clear();
  q->pending_sges.clear();
  q->pending_inline.clear();
  q->pending_err = 0;
}
void wr_abort(ibv_qp_ex* qx) { wr_start(qx); }

int wr_complete(ibv_qp_ex* qx) {
  Qp* q = qp_of(qx);
  int e = q->pending_err;
  if (!e && !q->pending.empty()) {
    for (size_t i = 0; i < q->pending.size(); ++i) {
      Qp::Pending& p = q->pending[i];
      p.wr.sg_list = p.sge_count ? &q->pending_sges[p.sge_first] : nullptr;
      p.wr.num_sge = static_cast<int>(p.sge_count);
      if (p.inline_data) p.wr.send_flags |= drv::kSendInline;
      p.wr.next = i + 1 < q->pending.size() ? &q->pending[i + 1].wr : nullptr;
    }
    std::lock_guard<std::recursive_mutex> lk(q->ctx->mu);
    const drv::SendWr* bad = nullptr;
    try {
      e = q->ctx->drv->post_send(q->qp, &q->pending[0].wr, &bad);
    } catch (...) {
      e = EFAULT;
    }
    if (e) debug(q->ctx, "ibv_wr_complete", e);
  }
  wr_start(qx);
  return e;
}

void wr_rdma_write(ibv_qp_ex* qx, uint32_t rkey, uint64_t addr) {
  auto* p = add_wr(qx, dev::WrOpcode::RDMA_WRITE);
  p->wr.rkey = rkey;
  p->wr.remote_addr = addr;
}
void wr_rdma_write_imm(ibv_qp_ex* qx, uint32_t rkey, uint64_t addr, __be32 imm) {
  auto* p = add_wr(qx, dev::WrOpcode::RDMA_WRITE_WITH_IMM);
  p->wr.rkey = rkey;
  p->wr.remote_addr = addr;
  p->wr.imm_data = ntohl(imm);
}
void wr_rdma_read(ibv_qp_ex* qx, uint32_t rkey, uint64_t addr) {
  auto* p = add_wr(qx, dev::WrOpcode::RDMA_READ);
  p->wr.rkey = rkey;
  p->wr.remote_addr = addr;
}
void wr_send(ibv_qp_ex* qx) { add_wr(qx, dev::WrOpcode::SEND); }
void wr_send_imm(ibv_qp_ex* qx, __be32 imm) {
  add_wr(qx, dev::WrOpcode::SEND_WITH_IMM)->wr.imm_data = ntohl(imm);
}
void wr_atomic_cmp_swp(ibv_qp_ex* qx, uint32_t rkey, uint64_t addr, uint64_t compare,
                       uint64_t swap) {
  auto* p = add_wr(qx, dev::WrOpcode::ATOMIC_CMP_AND_SWP);
  p->wr.rkey = rkey;
  p->wr.remote_addr = addr;
  p->wr.compare_add = compare;
  p->wr.swap = swap;
}
void wr_atomic_fetch_add(ibv_qp_ex* qx, uint32_t rkey, uint64_t addr, uint64_t add) {
  auto* p = add_wr(qx, dev::WrOpcode::ATOMIC_FETCH_AND_ADD);
  p->wr.rkey = rkey;
  p->wr.remote_addr = addr;
  p->wr.compare_add = add;
}
void wr_set_ud_addr(ibv_qp_ex* qx, ibv_ah* ah, uint32_t remote_qpn, uint32_t remote_qkey) {
  if (auto* p = last_wr(qx)) {
    p->wr.ah = ah ? reinterpret_cast<Ah*>(ah)->a : nullptr;
    p->wr.remote_qpn = remote_qpn;
    p->wr.remote_qkey = remote_qkey;
  }
}
void wr_set_sge(ibv_qp_ex* qx, uint32_t lkey, uint64_t addr, uint32_t length) {
  Qp* q = qp_of(qx);
  if (auto* p = last_wr(qx)) {
    p->sge_first = q->pending_sges.size();
    p->sge_count = 1;
    p->inline_data = false;
    q->pending_sges.push_back(drv::Sge{addr, length, lkey});
  }
}
void wr_set_sge_list(ibv_qp_ex* qx, size_t n, const ibv_sge* list) {
  Qp* q = qp_of(qx);
  if (auto* p = last_wr(qx)) {
    p->sge_first = q->pending_sges.size();
    p->sge_count = n;
    p->inline_data = false;
    for (size_t i = 0; i < n; ++i)
      q->pending_sges.push_back(drv::Sge{list[i].addr, list[i].length, list[i].lkey});
  }
}
// Inline payloads are copied now (the application may reuse its buffers at once), into one
// buffer the WR's single SGE points at.
void set_inline(ibv_qp_ex* qx, size_t n, const ibv_data_buf* bufs) {
  Qp* q = qp_of(qx);
  auto* p = last_wr(qx);
  if (!p) return;
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) total += bufs[i].length;
  std::unique_ptr<uint8_t[]> copy(new uint8_t[std::max<size_t>(1, total)]);
  size_t at = 0;
  for (size_t i = 0; i < n; ++i) {
    if (bufs[i].length) std::memcpy(copy.get() + at, bufs[i].addr, bufs[i].length);
    at += bufs[i].length;
  }
  p->sge_first = q->pending_sges.size();
  p->sge_count = 1;
  p->inline_data = true;
  q->pending_sges.push_back(
      drv::Sge{reinterpret_cast<uint64_t>(copy.get()), static_cast<uint32_t>(total), 0});
  q->pending_inline.push_back(std::move(copy));
}
void wr_set_inline_data(ibv_qp_ex* qx, void* addr, size_t length) {
  const ibv_data_buf b{addr, length};
  set_inline(qx, 1, &b);
}
void wr_set_inline_data_list(ibv_qp_ex* qx, size_t n, const ibv_data_buf* bufs) {
  set_inline(qx, n, bufs);
}
// Not modelled: the WR list is refused at wr_complete.
void wr_bind_mw(ibv_qp_ex* qx, ibv_mw*, uint32_t, const ibv_mw_bind_info*) { refuse(qx); }
void wr_local_inv(ibv_qp_ex* qx, uint32_t) { refuse(qx); }
void wr_send_inv(ibv_qp_ex* qx, uint32_t) { refuse(qx); }
void wr_send_tso(ibv_qp_ex* qx, void*, uint16_t, uint16_t) { refuse(qx); }
void wr_set_xrc_srqn(ibv_qp_ex* qx, uint32_t) { refuse(qx); }
void wr_atomic_write(ibv_qp_ex* qx, uint32_t, uint64_t, const void*) { refuse(qx); }

}  // namespace

void set_qp_ex_ops(Qp* q) {
  ibv_qp_ex& x = q->ex;
  x.wr_atomic_cmp_swp = wr_atomic_cmp_swp;
  x.wr_atomic_fetch_add = wr_atomic_fetch_add;
  x.wr_bind_mw = wr_bind_mw;
  x.wr_local_inv = wr_local_inv;
  x.wr_rdma_read = wr_rdma_read;
  x.wr_rdma_write = wr_rdma_write;
  x.wr_rdma_write_imm = wr_rdma_write_imm;
  x.wr_send = wr_send;
  x.wr_send_imm = wr_send_imm;
  x.wr_send_inv = wr_send_inv;
  x.wr_send_tso = wr_send_tso;
  x.wr_set_ud_addr = wr_set_ud_addr;
  x.wr_set_xrc_srqn = wr_set_xrc_srqn;
  x.wr_set_inline_data = wr_set_inline_data;
  x.wr_set_inline_data_list = wr_set_inline_data_list;
  x.wr_set_sge = wr_set_sge;
  x.wr_set_sge_list = wr_set_sge_list;
  x.wr_start = wr_start;
  x.wr_complete = wr_complete;
  x.wr_abort = wr_abort;
  x.wr_atomic_write = wr_atomic_write;
}

ibv_qp* create_qp_ex(ibv_context* context, ibv_qp_init_attr_ex* attr) {
  constexpr uint32_t kMask =
      IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_CREATE_FLAGS | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
  constexpr uint64_t kOps = IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM |
                            IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_SEND_WITH_IMM |
                            IBV_QP_EX_WITH_RDMA_READ | IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP |
                            IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD;
  if (!context || !attr || !(attr->comp_mask & IBV_QP_INIT_ATTR_PD) || !attr->pd ||
      attr->pd->context != context) {
    errno = EINVAL;
    return nullptr;
  }
  const bool with_ops = attr->comp_mask & IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
  if ((attr->comp_mask & ~kMask) ||
      ((attr->comp_mask & IBV_QP_INIT_ATTR_CREATE_FLAGS) && attr->create_flags) ||
      (with_ops && (attr->send_ops_flags & ~kOps))) {
    if (debug_enabled())
      std::fprintf(stderr,
                   "rnicsim verbs: ibv_create_qp_ex: comp_mask %#x, create_flags %#x, "
                   "send_ops_flags %#llx: only PD and the RDMA/SEND/atomic send ops are "
                   "modelled\n",
                   attr->comp_mask, attr->create_flags,
                   static_cast<unsigned long long>(attr->send_ops_flags));
    errno = EOPNOTSUPP;
    return nullptr;
  }
  ibv_qp_init_attr base{};
  base.qp_context = attr->qp_context;
  base.send_cq = attr->send_cq;
  base.recv_cq = attr->recv_cq;
  base.srq = attr->srq;
  base.cap = attr->cap;
  base.qp_type = attr->qp_type;
  base.sq_sig_all = attr->sq_sig_all;
  ibv_qp* qp = make_qp(attr->pd, base, with_ops);
  if (qp) granted_caps(qp, &attr->cap);
  return qp;
}

ibv_srq* create_srq_ex(ibv_context* context, ibv_srq_init_attr_ex* attr) {
  constexpr uint32_t kMask = IBV_SRQ_INIT_ATTR_TYPE | IBV_SRQ_INIT_ATTR_PD;
  if (!context || !attr || !(attr->comp_mask & IBV_SRQ_INIT_ATTR_PD) || !attr->pd) {
    errno = EINVAL;
    return nullptr;
  }
  if ((attr->comp_mask & ~kMask) ||
      ((attr->comp_mask & IBV_SRQ_INIT_ATTR_TYPE) && attr->srq_type != IBV_SRQT_BASIC)) {
    errno = EOPNOTSUPP;  // XRC and tag-matching SRQs are not modelled
    return nullptr;
  }
  return make_srq(attr->pd, attr->srq_context, &attr->attr);
}

}  // namespace rn::verbs
