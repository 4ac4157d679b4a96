// Completion statuses by their cause, those the other system tests do not produce: REM_OP_ERR (the
// responder could not place a SEND) and LOC_QP_OP_ERR (a WQE of no known opcode). See also
// test_device.cpp (LOC_PROT_ERR, RNR_RETRY_EXC_ERR, WR_FLUSH_ERR), test_read.cpp and
// test_atomic.cpp (REM_INV_REQ_ERR, REM_ACCESS_ERR, LOC_LEN_ERR), and the frame-level qp.* tests
// (RETRY_EXC_ERR, BAD_RESP_ERR).
#include "testbench/system/device_bench.h"

using namespace rn;
using namespace rn::test;

TEST_CASE("A SEND into a receive buffer the responder cannot write completes with REM_OP_ERR",
          "[status]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    // The receive WQE names a bad lkey: the responder completes it with LOC_PROT_ERR, answers
    // NAK remote operational error, and both QPs enter ERR.
    drv::Sge sg{t.b.buf, 4096, t.b.mr.lkey + 0x100};
    drv::RecvWr rw;
    rw.wr_id = 77;
    rw.sg_list = &sg;
    rw.num_sge = 1;
    const drv::RecvWr* bad = nullptr;
    t.expect(t.b.d->post_recv(t.b.qp, &rw, &bad) == 0, "post_recv: " + t.b.d->last_error());
    t.post(t.a, WrOpcode::SEND, 1, 0, 1000, drv::kSendSignaled);
    auto w = t.poll(t.a, t.a.scq, 1);
    t.expect(w.size() == 1 && w[0].status == WcStatus::REM_OP_ERR && w[0].wr_id == 1,
             w.empty() ? "no send CQE" : wc_str(w[0]));
    auto r = t.poll(t.b, t.b.rcq, 1);
    t.expect(r.size() == 1 && r[0].status == WcStatus::LOC_PROT_ERR && r[0].wr_id == 77,
             r.empty() ? "no receive CQE" : wc_str(r[0]));
    t.expect(t.untouched(t.b, 0, 65536), "the refused SEND wrote memory");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "naks") == 1);
  t.report();
}

TEST_CASE("A WQE of no known opcode completes with LOC_QP_OP_ERR and sends nothing", "[status]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    t.post(t.a, static_cast<WrOpcode>(9), 1, 0, 64, drv::kSendSignaled);
    t.post(t.a, WrOpcode::RDMA_WRITE, 2, 0, 64, drv::kSendSignaled);
    auto w = t.poll(t.a, t.a.scq, 2);
    t.expect(w.size() == 2 && w[0].status == WcStatus::LOC_QP_OP_ERR && w[0].wr_id == 1 &&
                 w[0].vendor_err == 1 && w[1].status == WcStatus::WR_FLUSH_ERR,
             w.empty() ? "no CQE" : wc_str(w[0]));
    t.expect(t.untouched(t.b, 0, 65536), "something reached the peer");
  });
  CHECK(stat(t.stats, "host0.nic.req", "packets") == 0);
  t.report();
}
