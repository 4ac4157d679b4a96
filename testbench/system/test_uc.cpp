// UC (unreliable connected) QPs: SEND and WRITE without acknowledgements, a lost packet losing
// its message (and only it), no RNR, SQE after a send error and back to RTS.
#include "testbench/system/device_bench.h"

using namespace rn;
using namespace rn::test;

namespace {
using A = dev::QpAttr;
dev::QpState state_of(Peer& p) {
  dev::QueryQpOut q{};
  p.d->query_qp(p.qp, &q);
  return static_cast<dev::QpState>(q.qp_state);
}
}  // namespace

TEST_CASE("UC WRITE and SEND deliver their data and complete when sent, with no ACK", "[uc]") {
  Bench t;
  t.qp_type = dev::QpType::UC;
  t.attr.path_mtu = dev::Mtu::MTU_1024;
  t.run([&] {
    if (!t.setup(kLW | kRW, kLW | kRW, 16, 2, 262144)) return;
    t.fill(t.a, 0, 100000, 8);
    for (uint64_t i = 0; i < 3; ++i) t.recv(t.b, 10 + i, 100000 + i * 10000, 10000);
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 50000, drv::kSendSignaled, 0, 0, 0);
    t.post(t.a, WrOpcode::RDMA_WRITE_WITH_IMM, 2, 50000, 3000, drv::kSendSignaled, 0x77, 0, 50000);
    t.post(t.a, WrOpcode::SEND, 3, 60000, 5000, drv::kSendSignaled);
    t.post(t.a, WrOpcode::SEND_WITH_IMM, 4, 70000, 0, drv::kSendSignaled, 0x99);
    auto w = t.poll(t.a, t.a.scq, 4);
    t.expect(w.size() == 4, fmt::format("{} send CQEs of 4", w.size()));
    for (size_t i = 0; i < w.size(); ++i)
      t.expect(w[i].status == WcStatus::SUCCESS && w[i].wr_id == i + 1, wc_str(w[i]));
    auto r = t.poll(t.b, t.b.rcq, 3);
    t.expect(r.size() == 3, fmt::format("{} receive CQEs of 3", r.size()));
    if (r.size() == 3) {
      t.expect(r[0].opcode == WcOpcode::RECV_RDMA_WITH_IMM && r[0].imm_data == 0x77, wc_str(r[0]));
      t.expect(r[1].opcode == WcOpcode::RECV && r[1].byte_len == 5000, wc_str(r[1]));
      t.expect(r[2].byte_len == 0 && r[2].imm_data == 0x99, wc_str(r[2]));
    }
    t.b.h->cpu(5 * kUs);
    t.expect(t.same(t.a, 0, t.b, 0, 53000), "WRITE data");
    t.expect(t.same(t.a, 60000, t.b, 110000, 5000), "SEND data (second receive WQE)");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "acks") == 0);
  CHECK(stat(t.stats, "host1.nic.tx", "control_frames") == 0);
  CHECK(stat(t.stats, "host1.nic.resp", "messages") == 4);
  t.report();
}

TEST_CASE("A lost UC packet loses its message only, and its receive WQE takes the next", "[uc]") {
  // The MIDDLE packet of the first 3-packet SEND is dropped by the link.
  Bench t({"link.rule=action=drop side=0 opcode=UC_SEND_MIDDLE count=1"});
  t.qp_type = dev::QpType::UC;
  t.attr.path_mtu = dev::Mtu::MTU_1024;
  t.run([&] {
    if (!t.setup(kLW | kRW, kLW | kRW)) return;
    t.fill(t.a, 0, 9000, 4);
    for (uint64_t i = 0; i < 3; ++i) t.recv(t.b, 10 + i, 20000 + i * 4000, 4000);
    for (uint64_t i = 0; i < 3; ++i)
      t.post(t.a, WrOpcode::SEND, i + 1, i * 3000, 3000, drv::kSendSignaled);
    auto w = t.poll(t.a, t.a.scq, 3);
    t.expect(w.size() == 3, fmt::format("{} send CQEs: the sender does not know", w.size()));
    auto r = t.poll(t.b, t.b.rcq, 3);
    t.expect(r.size() == 2, fmt::format("{} receive CQEs of 2", r.size()));
    if (r.size() == 2)
      t.expect(r[0].wr_id == 10 && r[1].wr_id == 11 && r[0].byte_len == 3000,
               wc_str(r[0]) + " / " + wc_str(r[1]));
    t.b.h->cpu(5 * kUs);
    t.expect(t.same(t.a, 3000, t.b, 20000, 3000), "message 2 in the first receive WQE");
    t.expect(t.same(t.a, 6000, t.b, 24000, 3000), "message 3 in the second");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "uc_dropped") == 1);
  CHECK(stat(t.stats, "host1.nic.resp", "uc_skipped") == 1);  // the LAST after the gap
  t.report();
}

TEST_CASE("A UC SEND with no receive WQE is dropped, without RNR", "[uc]") {
  Bench t;
  t.qp_type = dev::QpType::UC;
  t.run([&] {
    if (!t.setup(kLW | kRW, kLW | kRW)) return;
    t.fill(t.a, 0, 1000, 2);
    t.post(t.a, WrOpcode::SEND, 1, 0, 100, drv::kSendSignaled);
    auto w = t.poll(t.a, t.a.scq, 1);
    t.expect(w.size() == 1 && w[0].status == WcStatus::SUCCESS, "the sender completes");
    t.recv(t.b, 5, 0, 1000);
    t.post(t.a, WrOpcode::SEND, 2, 500, 100, drv::kSendSignaled);
    auto r = t.poll(t.b, t.b.rcq, 1);
    t.expect(r.size() == 1 && r[0].wr_id == 5 && r[0].byte_len == 100, "the second SEND");
    t.b.h->cpu(5 * kUs);
    t.expect(t.same(t.a, 500, t.b, 0, 100), "the second SEND's data");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "rnr_naks") == 0);
  CHECK(stat(t.stats, "host1.nic.resp", "uc_dropped") == 1);
  t.report();
}

TEST_CASE("A UC send error moves the QP to SQE: its sends flush, it still receives, RTS again",
          "[uc]") {
  Bench t;
  t.qp_type = dev::QpType::UC;
  t.run([&] {
    if (!t.setup(kLW | kRW, kLW | kRW)) return;
    t.fill(t.a, 0, 8192, 6);
    t.fill(t.b, 8192, 4096, 7);
    // A READ: UC has none: LOC_QP_OP_ERR, then the WRITE behind it is flushed.
    t.post(t.a, WrOpcode::RDMA_READ, 1, 0, 64, drv::kSendSignaled);
    t.post(t.a, WrOpcode::RDMA_WRITE, 2, 0, 64, drv::kSendSignaled);
    auto w = t.poll(t.a, t.a.scq, 2);
    t.expect(w.size() == 2 && w[0].status == WcStatus::LOC_QP_OP_ERR &&
                 w[1].status == WcStatus::WR_FLUSH_ERR,
             w.size() == 2 ? wc_str(w[0]) + " / " + wc_str(w[1]) : "CQEs missing");
    t.expect(state_of(t.a) == dev::QpState::SQE, "not in SQE");
    // In SQE the QP still receives.
    t.post(t.b, WrOpcode::RDMA_WRITE, 3, 8192, 4096, drv::kSendSignaled, 0, 0, 8192);
    auto wb = t.poll(t.b, t.b.scq, 1);
    t.expect(wb.size() == 1 && wb[0].status == WcStatus::SUCCESS, "b's WRITE");
    t.a.h->cpu(5 * kUs);
    t.expect(t.same(t.b, 8192, t.a, 8192, 4096), "received in SQE");
    // SQE -> RTS (TIMEOUT is not a UC attribute: refused), then sends work again.
    drv::QpAttr at;
    at.qp_state = dev::QpState::RTS;
    t.expect(t.a.d->modify_qp(t.a.qp, at, mask({A::STATE, A::TIMEOUT})) != 0,
             "SQE -> RTS with TIMEOUT accepted");
    t.expect(t.a.d->modify_qp(t.a.qp, at, mask({A::STATE})) == 0,
             "SQE -> RTS: " + t.a.d->last_error());
    t.post(t.a, WrOpcode::RDMA_WRITE, 4, 0, 4096, drv::kSendSignaled, 0, 0, 0);
    w = t.poll(t.a, t.a.scq, 1);
    t.expect(w.size() == 1 && w[0].status == WcStatus::SUCCESS && w[0].wr_id == 4,
             w.empty() ? "no CQE" : wc_str(w[0]));
    t.b.h->cpu(5 * kUs);
    t.expect(t.same(t.a, 0, t.b, 0, 4096), "WRITE after RTS");
  });
  t.report();
}
