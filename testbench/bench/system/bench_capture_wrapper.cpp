// Capture's wrappers alone (bench_capture.sh): over the null libibverbs (null_verbs.cpp), whose
// post and poll do nothing, it times N calls each of ibv_post_send (one RDMA WRITE of SIZE bytes,
// one SGE in a registered MR), ibv_post_recv, and ibv_poll_cq (every other call finds one
// completion), and prints the nanoseconds per call:
//   post_send_ns=... post_recv_ns=... poll_cq_ns=...
// Without librnicsim_capture.so preloaded that is the call through the ops table; with it, the
// difference is what capture adds per call (the record encoded into its buffer, its share of the
// buffer's write()).
// Usage: bench_capture_wrapper N SIZE
#include <infiniband/verbs.h>
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

uint64_t now() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: bench_capture_wrapper N SIZE\n");
    return 2;
  }
  const long n = std::atol(argv[1]);
  const size_t size = static_cast<size_t>(std::atol(argv[2]));
  ibv_device dev{};
  std::snprintf(dev.name, sizeof dev.name, "null0");
  ibv_context* ctx = ibv_open_device(&dev);
  ibv_pd* pd = ibv_alloc_pd(ctx);
  std::vector<uint8_t> buf(size, 0x5a);
  ibv_mr* mr = ibv_reg_mr(pd, buf.data(), size, IBV_ACCESS_LOCAL_WRITE);
  ibv_cq* cq = ibv_create_cq(ctx, 256, nullptr, nullptr, 0);
  ibv_qp_init_attr qa{};
  qa.send_cq = qa.recv_cq = cq;
  qa.qp_type = IBV_QPT_RC;
  ibv_qp* qp = ibv_create_qp(pd, &qa);
  if (ctx == nullptr || pd == nullptr || mr == nullptr || cq == nullptr || qp == nullptr) {
    std::fprintf(stderr, "bench_capture_wrapper: the null libibverbs failed\n");
    return 1;
  }
  ibv_sge sge{reinterpret_cast<uint64_t>(buf.data()), static_cast<uint32_t>(size), mr->lkey};
  ibv_send_wr wr{};
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_RDMA_WRITE;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.rdma.remote_addr = 0x10000;
  wr.wr.rdma.rkey = 0x99;
  ibv_send_wr* bad = nullptr;
  uint64_t t0 = now();
  for (long i = 0; i < n; ++i) {
    wr.wr_id = static_cast<uint64_t>(i);
    ibv_post_send(qp, &wr, &bad);
  }
  uint64_t t1 = now();
  ibv_recv_wr rwr{};
  rwr.sg_list = &sge;
  rwr.num_sge = 1;
  ibv_recv_wr* rbad = nullptr;
  for (long i = 0; i < n; ++i) {
    rwr.wr_id = static_cast<uint64_t>(i);
    ibv_post_recv(qp, &rwr, &rbad);
  }
  uint64_t t2 = now();
  ibv_wc wc[4];
  long found = 0;
  for (long i = 0; i < n; ++i) found += ibv_poll_cq(cq, 4, wc);
  uint64_t t3 = now();
  auto per = [n](uint64_t d) { return static_cast<double>(d) / static_cast<double>(n); };
  std::printf("post_send_ns=%.1f post_recv_ns=%.1f poll_cq_ns=%.1f completions=%ld\n", per(t1 - t0),
              per(t2 - t1), per(t3 - t2), found);
  return 0;
}
