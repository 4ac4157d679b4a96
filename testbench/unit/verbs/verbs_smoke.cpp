// One process, both NICs of a running `rnicsim serve` (RNICSIM_SERVE names it; RNICSIM_HOST
// unset): exercises what perftest and the pingpongs do not reach through our libibverbs. RC QPs
// from host0 to host1 over the simulated wire; inline SEND from a stack buffer; a completion
// event through a channel (blocking ibv_get_cq_event); the ibv_wr_* API (RDMA WRITE with
// immediate and inline data, fetch-and-add); extended CQ polling; an unknown destination GID
// refused with EINVAL; a remote access error and its QP_FATAL async event (and, with --fatal,
// IBV_EVENT_DEVICE_FATAL when serve goes). Prints PASS, or FAIL
// with the step, and exits non-zero.
#include <arpa/inet.h>
#include <infiniband/verbs.h>
#include <poll.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

[[noreturn]] void fail(const char* what) {
  std::printf("FAIL: %s (errno %d: %s)\n", what, errno, std::strerror(errno));
  std::exit(1);
}
void need(bool ok, const char* what) {
  if (!ok) fail(what);
}

struct End {
  ibv_context* ctx = nullptr;
  ibv_pd* pd = nullptr;
  ibv_comp_channel* ch = nullptr;
  ibv_cq_ex* cq = nullptr;
  ibv_qp* qp = nullptr;
  ibv_qp_ex* qx = nullptr;
  ibv_mr* mr = nullptr;
  alignas(64) uint8_t buf[8192] = {};
  ibv_gid gid{};
};

void open_end(ibv_device* dev, End* e) {
  e->ctx = ibv_open_device(dev);
  need(e->ctx, "ibv_open_device");
  e->pd = ibv_alloc_pd(e->ctx);
  need(e->pd, "ibv_alloc_pd");
  e->ch = ibv_create_comp_channel(e->ctx);
  need(e->ch, "ibv_create_comp_channel");
  ibv_cq_init_attr_ex ca{};
  ca.cqe = 64;
  ca.channel = e->ch;
  ca.wc_flags = IBV_WC_EX_WITH_BYTE_LEN | IBV_WC_EX_WITH_IMM | IBV_WC_EX_WITH_QP_NUM;
  e->cq = ibv_create_cq_ex(e->ctx, &ca);
  need(e->cq, "ibv_create_cq_ex");
  ibv_qp_init_attr_ex qa{};
  qa.send_cq = qa.recv_cq = ibv_cq_ex_to_cq(e->cq);
  qa.qp_type = IBV_QPT_RC;
  qa.cap.max_send_wr = qa.cap.max_recv_wr = 16;
  qa.cap.max_send_sge = qa.cap.max_recv_sge = 1;
  qa.cap.max_inline_data = 64;
  qa.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
  qa.pd = e->pd;
  qa.send_ops_flags = IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM |
                      IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD;
  e->qp = ibv_create_qp_ex(e->ctx, &qa);
  need(e->qp, "ibv_create_qp_ex (RC, send ops, 64 bytes inline)");
  e->qx = ibv_qp_to_qp_ex(e->qp);
  need(e->qx, "ibv_qp_to_qp_ex");
  e->mr = ibv_reg_mr(e->pd, e->buf, sizeof e->buf,
                     IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC);
  need(e->mr, "ibv_reg_mr");
  need(ibv_query_gid(e->ctx, 1, 0, &e->gid) == 0, "ibv_query_gid");
}

int to_rts(End* e, const End& peer, const ibv_gid& dgid) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC;
  if (int r = ibv_modify_qp(e->qp, &a,
                            IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
    return r;
  a = {};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = IBV_MTU_1024;
  a.dest_qp_num = peer.qp->qp_num;
  a.rq_psn = 0;
  a.max_dest_rd_atomic = 1;
  a.min_rnr_timer = 12;
  a.ah_attr.is_global = 1;
  a.ah_attr.grh.dgid = dgid;
  a.ah_attr.grh.hop_limit = 64;
  a.ah_attr.port_num = 1;
  if (int r = ibv_modify_qp(e->qp, &a,
                            IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                                IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
    return r;
  a = {};
  a.qp_state = IBV_QPS_RTS;
  a.timeout = 14;
  a.retry_cnt = 7;
  a.rnr_retry = 7;
  a.sq_psn = 0;
  a.max_rd_atomic = 1;
  return ibv_modify_qp(e->qp, &a,
                       IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                           IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
}

void post_recv(End* e, uint64_t wr_id, uint32_t off, uint32_t len) {
  ibv_sge s{reinterpret_cast<uint64_t>(e->buf + off), len, e->mr->lkey};
  ibv_recv_wr w{};
  w.wr_id = wr_id;
  w.sg_list = &s;
  w.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  need(ibv_post_recv(e->qp, &w, &bad) == 0, "ibv_post_recv");
}

// Polls one completion with the extended API (start_poll/end_poll), up to ~10 s.
struct Done {
  uint64_t wr_id;
  ibv_wc_status status;
  ibv_wc_opcode opcode;
  uint32_t byte_len, imm, wc_flags;
};
Done poll_one(End* e, const char* what) {
  ibv_poll_cq_attr pa{};
  for (long i = 0; i < 10'000'000; ++i) {
    if (ibv_start_poll(e->cq, &pa) == 0) {
      Done d{e->cq->wr_id,
             e->cq->status,
             ibv_wc_read_opcode(e->cq),
             ibv_wc_read_byte_len(e->cq),
             ntohl(ibv_wc_read_imm_data(e->cq)),
             ibv_wc_read_wc_flags(e->cq)};
      ibv_end_poll(e->cq);
      if (d.status != IBV_WC_SUCCESS) {
        std::printf("FAIL: %s: completion status %s\n", what, ibv_wc_status_str(d.status));
        std::exit(1);
      }
      return d;
    }
  }
  fail(what);
}

}  // namespace

// --fatal: opens host0's NIC, says "ready", and waits for serve to go: IBV_EVENT_DEVICE_FATAL
// must arrive on async_fd, and the PD must still be freed cleanly.
int fatal_mode() {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  need(list && n >= 1, "a device");
  ibv_context* ctx = ibv_open_device(list[0]);
  need(ctx, "ibv_open_device");
  ibv_free_device_list(list);
  ibv_pd* pd = ibv_alloc_pd(ctx);
  need(pd, "ibv_alloc_pd");
  std::printf("ready\n");
  std::fflush(stdout);
  pollfd p{ctx->async_fd, POLLIN, 0};
  need(poll(&p, 1, 60000) == 1, "async_fd readable once serve is gone");
  ibv_async_event ev{};
  need(ibv_get_async_event(ctx, &ev) == 0 && ev.event_type == IBV_EVENT_DEVICE_FATAL,
       "IBV_EVENT_DEVICE_FATAL");
  ibv_ack_async_event(&ev);
  need(ibv_dealloc_pd(pd) == 0, "ibv_dealloc_pd after the device went");
  need(ibv_close_device(ctx) == 0, "ibv_close_device after the device went");
  std::printf("PASS\n");
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--fatal") return fatal_mode();
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  need(list && n >= 2, "two devices (serve running, RNICSIM_HOST unset)");
  ibv_device *d0 = nullptr, *d1 = nullptr;
  for (int i = 0; i < n; ++i) {
    if (std::string(ibv_get_device_name(list[i])) == "rnsim_host0") d0 = list[i];
    if (std::string(ibv_get_device_name(list[i])) == "rnsim_host1") d1 = list[i];
  }
  need(d0 && d1, "rnsim_host0 and rnsim_host1 listed");
  static End a, b;
  open_end(d0, &a);
  open_end(d1, &b);
  ibv_free_device_list(list);

  // An address no simulated host has: refused.
  ibv_gid unknown{};
  unknown.raw[10] = unknown.raw[11] = 0xff;
  unknown.raw[12] = 10, unknown.raw[13] = 9, unknown.raw[14] = 9, unknown.raw[15] = 9;
  need(to_rts(&a, b, unknown) == EINVAL, "RTR to ::ffff:10.9.9.9 refused with EINVAL");
  ibv_qp_attr reset{};
  reset.qp_state = IBV_QPS_RESET;
  need(ibv_modify_qp(a.qp, &reset, IBV_QP_STATE) == 0, "back to RESET");
  need(to_rts(&a, b, b.gid) == 0, "host0's QP to RTS");
  need(to_rts(&b, a, a.gid) == 0, "host1's QP to RTS");
  ibv_qp_attr qa{};
  ibv_qp_init_attr qi{};
  need(ibv_query_qp(a.qp, &qa, IBV_QP_STATE, &qi) == 0 && qa.qp_state == IBV_QPS_RTS &&
           qa.dest_qp_num == b.qp->qp_num,
       "ibv_query_qp: RTS, its destination");

  // 1. Inline SEND from a stack buffer (no lkey), its completion announced on host1's channel.
  post_recv(&b, 100, 0, 256);
  need(ibv_req_notify_cq(ibv_cq_ex_to_cq(b.cq), 0) == 0, "ibv_req_notify_cq");
  char msg[48];
  std::snprintf(msg, sizeof msg, "inline hello from host0");
  ibv_sge s{reinterpret_cast<uint64_t>(msg), sizeof msg, 0};
  ibv_send_wr w{};
  w.wr_id = 1;
  w.sg_list = &s;
  w.num_sge = 1;
  w.opcode = IBV_WR_SEND;
  w.send_flags = IBV_SEND_SIGNALED | IBV_SEND_INLINE;
  ibv_send_wr* bad = nullptr;
  need(ibv_post_send(a.qp, &w, &bad) == 0, "ibv_post_send (inline SEND)");
  std::memset(msg, 0, sizeof msg);  // inline: the data was copied at post time
  pollfd p{b.ch->fd, POLLIN, 0};
  need(poll(&p, 1, 10000) == 1, "completion channel fd readable");
  ibv_cq* ev_cq = nullptr;
  void* ev_ctx = nullptr;
  need(ibv_get_cq_event(b.ch, &ev_cq, &ev_ctx) == 0 && ev_cq == ibv_cq_ex_to_cq(b.cq),
       "ibv_get_cq_event gives host1's CQ");
  ibv_ack_cq_events(ev_cq, 1);
  Done r = poll_one(&b, "receive of the inline SEND");
  need(r.wr_id == 100 && r.opcode == IBV_WC_RECV && r.byte_len == sizeof msg, "RECV completion");
  need(std::strcmp(reinterpret_cast<char*>(b.buf), "inline hello from host0") == 0,
       "the inline payload arrived");
  Done sdone = poll_one(&a, "the inline SEND");
  need(sdone.wr_id == 1 && sdone.opcode == IBV_WC_SEND, "SEND completion");

  // 2. ibv_wr_*: RDMA WRITE with immediate and inline data into host1's buffer at 1024.
  post_recv(&b, 101, 0, 0);
  const char payload[] = "written by ibv_wr_rdma_write_imm";
  ibv_wr_start(a.qx);
  a.qx->wr_id = 2;
  a.qx->wr_flags = IBV_SEND_SIGNALED;
  ibv_wr_rdma_write_imm(a.qx, b.mr->rkey, reinterpret_cast<uint64_t>(b.buf + 1024),
                        htonl(0x12345678));
  ibv_wr_set_inline_data(a.qx, const_cast<char*>(payload), sizeof payload);
  need(ibv_wr_complete(a.qx) == 0, "ibv_wr_complete (WRITE_WITH_IMM, inline)");
  r = poll_one(&b, "receive of the WRITE with immediate");
  need(r.wr_id == 101 && r.opcode == IBV_WC_RECV_RDMA_WITH_IMM && r.imm == 0x12345678 &&
           (r.wc_flags & IBV_WC_WITH_IMM),
       "RECV_RDMA_WITH_IMM with its immediate");
  need(std::memcmp(b.buf + 1024, payload, sizeof payload) == 0, "the written data arrived");
  sdone = poll_one(&a, "the WRITE with immediate");
  need(sdone.wr_id == 2 && sdone.opcode == IBV_WC_RDMA_WRITE, "RDMA_WRITE completion");

  // 3. ibv_wr_atomic_fetch_add on host1's 8 bytes at 4096; the old value lands at host0's 4096.
  uint64_t init = 40;
  std::memcpy(b.buf + 4096, &init, 8);
  ibv_wr_start(a.qx);
  a.qx->wr_id = 3;
  a.qx->wr_flags = IBV_SEND_SIGNALED;
  ibv_wr_atomic_fetch_add(a.qx, b.mr->rkey, reinterpret_cast<uint64_t>(b.buf + 4096), 2);
  ibv_wr_set_sge(a.qx, a.mr->lkey, reinterpret_cast<uint64_t>(a.buf + 4096), 8);
  need(ibv_wr_complete(a.qx) == 0, "ibv_wr_complete (FETCH_AND_ADD)");
  sdone = poll_one(&a, "the fetch-and-add");
  uint64_t old = 0, now = 0;
  std::memcpy(&old, a.buf + 4096, 8);
  std::memcpy(&now, b.buf + 4096, 8);
  need(sdone.opcode == IBV_WC_FETCH_ADD && old == 40 && now == 42, "fetch-and-add: 40 -> 42");

  // 4. A WR the builder does not model fails at wr_complete, nothing posted.
  ibv_wr_start(a.qx);
  ibv_wr_local_inv(a.qx, 1);
  need(ibv_wr_complete(a.qx) == EOPNOTSUPP, "ibv_wr_local_inv refused at wr_complete");

  // 5. An RDMA WRITE with a wrong rkey: the requester's completion is REM_ACCESS_ERR, the QP
  // goes to ERR, and IBV_EVENT_QP_FATAL arrives on host0's async_fd.
  ibv_sge ws{reinterpret_cast<uint64_t>(a.buf), 64, a.mr->lkey};
  ibv_send_wr bw{};
  bw.wr_id = 5;
  bw.sg_list = &ws;
  bw.num_sge = 1;
  bw.opcode = IBV_WR_RDMA_WRITE;
  bw.send_flags = IBV_SEND_SIGNALED;
  bw.wr.rdma.remote_addr = reinterpret_cast<uint64_t>(b.buf);
  bw.wr.rdma.rkey = b.mr->rkey ^ 0x5500;
  need(ibv_post_send(a.qp, &bw, &bad) == 0, "ibv_post_send (WRITE with a wrong rkey)");
  ibv_wc wc{};
  int got = 0;
  for (long i = 0; i < 10'000'000 && got == 0; ++i)
    got = ibv_poll_cq(ibv_cq_ex_to_cq(a.cq), 1, &wc);
  need(got == 1 && wc.wr_id == 5 && wc.status == IBV_WC_REM_ACCESS_ERR,
       "the bad WRITE completes with REM_ACCESS_ERR (ibv_poll_cq)");
  pollfd ap{a.ctx->async_fd, POLLIN, 0};
  need(poll(&ap, 1, 10000) == 1, "async_fd readable");
  ibv_async_event ev{};
  need(ibv_get_async_event(a.ctx, &ev) == 0 && ev.event_type == IBV_EVENT_QP_FATAL &&
           ev.element.qp == a.qp,
       "IBV_EVENT_QP_FATAL for host0's QP");
  ibv_ack_async_event(&ev);

  for (End* e : {&a, &b}) {
    need(ibv_destroy_qp(e->qp) == 0, "ibv_destroy_qp");
    need(ibv_dereg_mr(e->mr) == 0, "ibv_dereg_mr");
    need(ibv_destroy_cq(ibv_cq_ex_to_cq(e->cq)) == 0, "ibv_destroy_cq");
    need(ibv_destroy_comp_channel(e->ch) == 0, "ibv_destroy_comp_channel");
    need(ibv_dealloc_pd(e->pd) == 0, "ibv_dealloc_pd");
    need(ibv_close_device(e->ctx) == 0, "ibv_close_device");
  }
  std::printf("PASS\n");
  return 0;
}
