// A null libibverbs for bench_capture_wrapper: the few verbs the benchmark calls, exported under
// rdma-core's version nodes (null_verbs.map) so that librnicsim_capture.so, preloaded, forwards to
// them as it would to the real library. Its fast path does nothing (post_send and post_recv
// accept, poll_cq finds a completion every other call), so that the time measured over it is
// capture's wrappers and the call through the ops table, nothing else.
#include <infiniband/verbs.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#undef ibv_reg_mr

namespace {

int null_post_send(ibv_qp*, ibv_send_wr*, ibv_send_wr**) { return 0; }
int null_post_recv(ibv_qp*, ibv_recv_wr*, ibv_recv_wr**) { return 0; }
int null_poll_cq(ibv_cq* cq, int, ibv_wc* wc) {
  // Every other call one successful SEND completion of QP 1; else nothing.
  static thread_local unsigned calls = 0;
  if (++calls % 2 != 0) return 0;
  std::memset(wc, 0, sizeof *wc);
  wc->wr_id = calls;
  wc->opcode = IBV_WC_SEND;
  wc->qp_num = 1;
  return 1;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) ibv_context* ibv_open_device(ibv_device* dev) {
  auto* c = static_cast<ibv_context*>(std::calloc(1, sizeof(ibv_context)));
  c->device = dev;
  c->ops.post_send = null_post_send;
  c->ops.post_recv = null_post_recv;
  c->ops.poll_cq = null_poll_cq;
  return c;
}

__attribute__((visibility("default"))) ibv_pd* ibv_alloc_pd(ibv_context* ctx) {
  auto* pd = static_cast<ibv_pd*>(std::calloc(1, sizeof(ibv_pd)));
  pd->context = ctx;
  return pd;
}

__attribute__((visibility("default"))) ibv_mr* ibv_reg_mr_iova2(ibv_pd* pd, void* addr, size_t len,
                                                                uint64_t, unsigned int) {
  auto* mr = static_cast<ibv_mr*>(std::calloc(1, sizeof(ibv_mr)));
  mr->context = pd->context;
  mr->pd = pd;
  mr->addr = addr;
  mr->length = len;
  mr->lkey = mr->rkey = 0x1234;
  return mr;
}

// As rdma-core's: through the exported ibv_reg_mr_iova2 (its PLT entry, which a preloaded
// librnicsim_capture.so takes), so that capture.nested sees capture record the call once.
__attribute__((visibility("default"))) ibv_mr* ibv_reg_mr(ibv_pd* pd, void* addr, size_t len,
                                                          int access) {
  return ibv_reg_mr_iova2(pd, addr, len, reinterpret_cast<uintptr_t>(addr),
                          static_cast<unsigned>(access));
}

__attribute__((visibility("default"))) ibv_cq* ibv_create_cq(ibv_context* ctx, int cqe, void*,
                                                             ibv_comp_channel*, int) {
  auto* cq = static_cast<ibv_cq*>(std::calloc(1, sizeof(ibv_cq)));
  cq->context = ctx;
  cq->cqe = cqe;
  return cq;
}

__attribute__((visibility("default"))) ibv_qp* ibv_create_qp(ibv_pd* pd, ibv_qp_init_attr* a) {
  auto* qp = static_cast<ibv_qp*>(std::calloc(1, sizeof(ibv_qp)));
  qp->context = pd->context;
  qp->pd = pd;
  qp->send_cq = a->send_cq;
  qp->recv_cq = a->recv_cq;
  qp->qp_type = a->qp_type;
  qp->qp_num = 1;
  return qp;
}

}  // extern "C"
