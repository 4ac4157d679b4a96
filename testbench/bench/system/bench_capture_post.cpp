// The cost of capture per posted WQE (bench_capture.sh): one process on both NICs of a running
// `rnicsim serve` (RNICSIM_SERVE names it), an RC QP from host0 to host1, N RDMA WRITEs of SIZE
// bytes posted one ibv_post_send each (one in 32 signaled, at most 96 outstanding), their
// completions polled. It times the posting thread's CPU over the ibv_post_send calls alone (in
// batches of 32, so the clock reads cost little) and the wall time of the whole loop, and prints
//   posts=N post_cpu_ns=... wall_ns=... polls=...
// Run it with and without librnicsim_capture.so preloaded: the difference is capture's cost.
// Usage: bench_capture_post N SIZE
#include <infiniband/verbs.h>
#include <time.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "FAIL: %s (errno %d: %s)\n", what, errno, std::strerror(errno));
  std::exit(1);
}
void need(bool ok, const char* what) {
  if (!ok) fail(what);
}

uint64_t ns(clockid_t c) {
  timespec t;
  clock_gettime(c, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

constexpr int kDepth = 128, kSignalEvery = 32, kMaxOutstanding = 96;

struct End {
  ibv_context* ctx = nullptr;
  ibv_pd* pd = nullptr;
  ibv_cq* cq = nullptr;
  ibv_qp* qp = nullptr;
  ibv_mr* mr = nullptr;
  std::vector<uint8_t> buf;
  ibv_gid gid{};
};

void open_end(ibv_device* dev, End* e, size_t size) {
  e->ctx = ibv_open_device(dev);
  need(e->ctx, "ibv_open_device");
  e->pd = ibv_alloc_pd(e->ctx);
  need(e->pd, "ibv_alloc_pd");
  e->cq = ibv_create_cq(e->ctx, 2 * kDepth, nullptr, nullptr, 0);
  need(e->cq, "ibv_create_cq");
  ibv_qp_init_attr qa{};
  qa.send_cq = qa.recv_cq = e->cq;
  qa.qp_type = IBV_QPT_RC;
  qa.cap.max_send_wr = qa.cap.max_recv_wr = kDepth;
  qa.cap.max_send_sge = qa.cap.max_recv_sge = 1;
  e->qp = ibv_create_qp(e->pd, &qa);
  need(e->qp, "ibv_create_qp");
  e->buf.assign(size, 0x5a);
  e->mr = ibv_reg_mr(e->pd, e->buf.data(), size, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
  need(e->mr, "ibv_reg_mr");
  need(ibv_query_gid(e->ctx, 1, 0, &e->gid) == 0, "ibv_query_gid");
}

void to_rts(End* e, const End& peer) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE;
  need(ibv_modify_qp(e->qp, &a,
                     IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS) == 0,
       "INIT");
  a = {};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = IBV_MTU_4096;
  a.dest_qp_num = peer.qp->qp_num;
  a.max_dest_rd_atomic = 1;
  a.min_rnr_timer = 12;
  a.ah_attr.is_global = 1;
  a.ah_attr.grh.dgid = peer.gid;
  a.ah_attr.grh.hop_limit = 64;
  a.ah_attr.port_num = 1;
  need(ibv_modify_qp(e->qp, &a,
                     IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                         IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER) == 0,
       "RTR");
  a = {};
  a.qp_state = IBV_QPS_RTS;
  a.timeout = 14;
  a.retry_cnt = 7;
  a.rnr_retry = 7;
  a.max_rd_atomic = 1;
  need(ibv_modify_qp(e->qp, &a,
                     IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                         IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC) == 0,
       "RTS");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: bench_capture_post N SIZE\n");
    return 2;
  }
  const long n = std::atol(argv[1]);
  const size_t size = static_cast<size_t>(std::atol(argv[2]));
  int count = 0;
  ibv_device** devs = ibv_get_device_list(&count);
  need(devs != nullptr && count >= 2, "two devices (a serve with two hosts)");
  End a, b;
  open_end(devs[0], &a, size);
  open_end(devs[1], &b, size);
  to_rts(&a, b);
  to_rts(&b, a);

  ibv_sge sge{reinterpret_cast<uint64_t>(a.buf.data()), static_cast<uint32_t>(size), a.mr->lkey};
  ibv_send_wr wr{};
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_RDMA_WRITE;
  wr.wr.rdma.remote_addr = reinterpret_cast<uint64_t>(b.buf.data());
  wr.wr.rdma.rkey = b.mr->rkey;
  uint64_t post_cpu = 0, polls = 0;
  long posted = 0, outstanding = 0;
  ibv_wc wc[16];
  const uint64_t wall0 = ns(CLOCK_MONOTONIC);
  while (posted < n) {
    const uint64_t c0 = ns(CLOCK_THREAD_CPUTIME_ID);
    for (int i = 0; i < kSignalEvery && posted < n; ++i, ++posted, ++outstanding) {
      wr.wr_id = static_cast<uint64_t>(posted);
      wr.send_flags = (posted + 1) % kSignalEvery == 0 || posted + 1 == n ? IBV_SEND_SIGNALED : 0;
      ibv_send_wr* bad = nullptr;
      need(ibv_post_send(a.qp, &wr, &bad) == 0, "ibv_post_send");
    }
    post_cpu += ns(CLOCK_THREAD_CPUTIME_ID) - c0;
    // Each completion retires the signaled WR and the unsignaled ones before it.
    while (outstanding >= kMaxOutstanding || (posted == n && outstanding > 0)) {
      int got = ibv_poll_cq(a.cq, 16, wc);
      ++polls;
      need(got >= 0, "ibv_poll_cq");
      for (int i = 0; i < got; ++i) {
        need(wc[i].status == IBV_WC_SUCCESS, "a WRITE completed in error");
        outstanding -= static_cast<long>(wc[i].wr_id % kSignalEvery) + 1;
      }
    }
  }
  const uint64_t wall = ns(CLOCK_MONOTONIC) - wall0;
  std::printf("posts=%ld post_cpu_ns=%.1f wall_ns=%.1f polls=%llu\n", n,
              static_cast<double>(post_cpu) / static_cast<double>(n),
              static_cast<double>(wall) / static_cast<double>(n),
              static_cast<unsigned long long>(polls));
  for (End* e : {&a, &b}) {
    ibv_destroy_qp(e->qp);
    ibv_dereg_mr(e->mr);
    ibv_destroy_cq(e->cq);
    ibv_dealloc_pd(e->pd);
    ibv_close_device(e->ctx);
  }
  ibv_free_device_list(devs);
  return 0;
}
