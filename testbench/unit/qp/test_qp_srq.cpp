// The responder with a shared receive queue, frame by frame (qp_bench.h): the DUT's QP is
// attached to an SRQ. What goes on the wire when the SRQ is empty, and what a QP in ERR does with
// the SRQ WQE it holds for a message in progress.
#include "testbench/unit/qp/qp_bench.h"

namespace rn::test {
namespace {

using wire::Opcode;

// The Bench's objects, then the DUT's QP replaced by one on a new SRQ (8 WQEs, 2 SGEs each),
// both sides connected.
bool setup_srq(QpBench& t, drv::Srq** srq) {
  if (!t.create()) return false;
  drv::Driver& d = *t.b.d;
  drv::SrqAttr sa;
  sa.max_wr = 8;
  sa.max_sge = 2;
  drv::QpCap cap;
  cap.srq = nullptr;
  if (d.create_srq(t.b.pdn, sa, srq)) {
    t.failures.push_back("create_srq: " + d.last_error());
    return false;
  }
  cap.srq = *srq;
  if (d.destroy_qp(t.b.qp) || d.create_qp(t.b.pdn, t.b.scq, t.b.rcq, cap, false, &t.b.qp)) {
    t.failures.push_back("create_qp with an SRQ: " + d.last_error());
    return false;
  }
  return t.connect(t.a, t.b, kLW | kRW) && t.connect(t.b, t.a, kLW | kRW);
}

int post_srq(QpBench& t, drv::Srq* srq, uint64_t wr_id, uint64_t off, uint32_t len) {
  drv::Sge sg{t.b.buf + off, len, t.b.mr.lkey};
  drv::RecvWr wr;
  wr.wr_id = wr_id;
  wr.sg_list = &sg;
  wr.num_sge = 1;
  const drv::RecvWr* bad = nullptr;
  return t.b.d->post_srq_recv(srq, &wr, &bad);
}

}  // namespace

TEST_CASE("An empty SRQ: RNR NAK on the wire for the SEND, then an ACK once a WQE is posted",
          "[qp][srq][rnr]") {
  QpBench t;
  t.attr.min_rnr_timer = 3;
  t.run([&] {
    drv::Srq* srq = nullptr;
    if (!setup_srq(t, &srq)) return;
    Peer& d = t.dut();
    t.inject(QpBench::req(Opcode::RC_SEND_ONLY, 100), bytes(100, 1));
    t.wait(3 * kUs);
    auto s = t.with_psn(100);
    t.expect(s.size() == 1 && s[0]->h.opcode == wire::to_u8(Opcode::RC_ACKNOWLEDGE) &&
                 s[0]->h.aeth_syndrome == wire::aeth_rnr_nak(3),
             "an RNR NAK (timer 3) for PSN 100:" + t.wire_log());
    t.expect(t.untouched(d, 0, 4096), "nothing placed");
    // A WQE posted to the SRQ: the SEND sent again is taken in, and ACKed.
    post_srq(t, srq, 42, 1024, 512);
    t.wait(3 * kUs);
    t.inject(QpBench::req(Opcode::RC_SEND_ONLY, 100), bytes(100, 1));
    auto r = t.poll(d, d.rcq, 1);
    t.expect(r.size() == 1 && r[0].wr_id == 42 && r[0].byte_len == 100 &&
                 r[0].status == WcStatus::SUCCESS && r[0].qp_num == d.qp->qpn,
             r.empty() ? "no receive CQE" : wc_str(r[0]));
    t.expect(t.mem(d, 1024, 100) == bytes(100, 1), "SEND data in the SRQ WQE's buffer");
    s = t.with_psn(100);
    t.expect(s.size() == 2 && s[1]->h.opcode == wire::to_u8(Opcode::RC_ACKNOWLEDGE) &&
                 s[1]->h.aeth_syndrome == wire::kAethSynAck,
             "then an ACK for PSN 100:" + t.wire_log());
  });
  CHECK(stat(t.stats, "host1.nic.resp", "rnr_naks") == 1);
  CHECK(stat(t.stats, "host1.nic.resp", "srq_wqes_taken") == 1);
  t.report();
}

TEST_CASE("A QP of an SRQ moved to ERR mid-SEND flushes the WQE it took, and only that one",
          "[qp][srq]") {
  QpBench t;
  t.attr.path_mtu = dev::Mtu::MTU_256;
  t.run([&] {
    drv::Srq* srq = nullptr;
    if (!setup_srq(t, &srq)) return;
    Peer& d = t.dut();
    for (uint32_t k = 0; k < 3; ++k) post_srq(t, srq, 10 + k, 1024 * k, 1024);
    t.wait(3 * kUs);
    // A SEND's FIRST packet takes WQE 10; its LAST never comes.
    t.inject(QpBench::req(Opcode::RC_SEND_FIRST, 100, false), bytes(256, 2));
    t.wait(3 * kUs);
    drv::QpAttr at;
    at.qp_state = dev::QpState::ERR;
    t.expect(d.d->modify_qp(d.qp, at, mask({dev::QpAttr::STATE})) == 0,
             "modify_qp ERR: " + d.d->last_error());
    auto r = t.poll(d, d.rcq, 3);
    t.expect(
        r.size() == 1 && r[0].wr_id == 10 && r[0].status == WcStatus::WR_FLUSH_ERR,
        r.empty() ? "no flush CQE" : fmt::format("{} CQEs, the first {}", r.size(), wc_str(r[0])));
    drv::Driver::AsyncEvent e{};
    t.expect(d.d->get_async_event(&e, 20 * kUs) == 0 &&
                 e.type == dev::EqeType::QP_LAST_WQE_REACHED && e.obj == d.qp->qpn,
             fmt::format("event {} obj {}", dev::to_string(e.type), e.obj));
    // The SRQ still holds WQEs 11 and 12, taken by no one.
    drv::SrqAttr qa;
    t.expect(d.d->query_srq(srq, &qa) == 0, "query_srq: " + d.d->last_error());
    const qp::SrqCtx* s = d.n->nic->table().srq(srq->srqn);
    t.expect(s && s->pi == 3 && s->taken == 1,
             s ? fmt::format("SRQ pi {} taken {}", s->pi, s->taken) : "no SRQ");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "flushed") == 1);
  CHECK(stat(t.stats, "host1.nic.resp", "last_wqe_events") == 1);
  t.report();
}

}  // namespace rn::test
