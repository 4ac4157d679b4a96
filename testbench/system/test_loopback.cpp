// Loopback: two QPs of one NIC connected to each other. Their frames loop back inside the NIC's
// port and never reach the wire; every operation works as between two NICs.
#include "testbench/system/device_bench.h"

using namespace rn;
using namespace rn::test;

TEST_CASE("Two QPs of one NIC talk through the NIC's loopback, not the wire", "[loopback]") {
  Bench t;
  constexpr uint32_t kAll = kLW | kRW | kRR | kRA;
  t.attr.max_rd_atomic = 4;
  t.attr.max_dest_rd_atomic = 4;
  t.run([&] {
    if (!t.create(kAll, 16, 2, 262144)) return;
    // A second QP on host 0 (its own CQs), standing in for peer b: connect() works on Peers.
    Peer& a = t.a;
    Peer a2 = t.a;
    if (a.d->create_cq(64, &a2.scq) || a.d->create_cq(64, &a2.rcq)) {
      t.expect(false, "create_cq: " + a.d->last_error());
      return;
    }
    drv::QpCap cap;
    cap.max_send_wr = cap.max_recv_wr = 16;
    cap.max_send_sge = cap.max_recv_sge = 2;
    if (a.d->create_qp(a.pdn, a2.scq, a2.rcq, cap, false, &a2.qp)) {
      t.expect(false, "create_qp: " + a.d->last_error());
      return;
    }
    if (!t.connect(a, a2, kAll) || !t.connect(a2, a, kAll)) return;
    t.fill(a, 0, 100000, 3);
    // WRITE from the first QP to the second's half of the buffer, READ it back, a SEND, atomics.
    auto post = [&](drv::Qp* qp, WrOpcode op, uint64_t id, uint64_t off, uint32_t len,
                    uint64_t remote_off, uint64_t add = 0) {
      drv::Sge sg{a.buf + off, len, a.mr.lkey};
      drv::SendWr wr;
      wr.wr_id = id;
      wr.sg_list = &sg;
      wr.num_sge = 1;
      wr.opcode = op;
      wr.send_flags = drv::kSendSignaled;
      wr.remote_addr = a.buf + remote_off;
      wr.rkey = a.mr.rkey;
      wr.compare_add = add;
      const drv::SendWr* bad = nullptr;
      t.expect(a.d->post_send(qp, &wr, &bad) == 0, "post_send: " + a.d->last_error());
    };
    post(a.qp, WrOpcode::RDMA_WRITE, 1, 0, 50000, 131072);
    post(a.qp, WrOpcode::RDMA_READ, 2, 200000, 50000, 131072);
    drv::Sge rs{a.buf + 250000, 4096, a.mr.lkey};
    drv::RecvWr rw;
    rw.wr_id = 9;
    rw.sg_list = &rs;
    rw.num_sge = 1;
    const drv::RecvWr* rbad = nullptr;
    t.expect(a.d->post_recv(a2.qp, &rw, &rbad) == 0, "post_recv: " + a.d->last_error());
    post(a.qp, WrOpcode::SEND, 3, 0, 4096, 0);
    Bench::set_u64(a, 255000, 40);
    post(a2.qp, WrOpcode::ATOMIC_FETCH_AND_ADD, 4, 256000, 8, 255000, 2);
    auto w = t.poll(a, a.scq, 3);
    t.expect(w.size() == 3, fmt::format("{} CQEs of 3", w.size()));
    for (const auto& c : w) t.expect(c.status == WcStatus::SUCCESS, wc_str(c));
    auto r = t.poll(a2, a2.rcq, 1);
    t.expect(r.size() == 1 && r[0].status == WcStatus::SUCCESS && r[0].byte_len == 4096,
             r.empty() ? "no receive CQE" : wc_str(r[0]));
    auto x = t.poll(a2, a2.scq, 1);
    t.expect(x.size() == 1 && x[0].status == WcStatus::SUCCESS && x[0].byte_len == 8,
             x.empty() ? "no atomic CQE" : wc_str(x[0]));
    a.h->cpu(5 * kUs);
    t.expect(t.same(a, 0, a, 131072, 50000), "WRITE data");
    t.expect(t.same(a, 0, a, 200000, 50000), "READ data");
    t.expect(t.same(a, 0, a, 250000, 4096), "SEND data");
    t.expect(Bench::u64(a, 256000) == 40 && Bench::u64(a, 255000) == 42, "atomic");
  });
  CHECK(stat(t.stats, "host0.nic.tx", "loopback_frames") > 0);
  CHECK(stat(t.stats, "link0", "a_to_b_frames") == 0);
  CHECK(stat(t.stats, "link0", "b_to_a_frames") == 0);
  t.report();
}
