// The NIC core with a frame injector (qp_bench.h): the responder's PSN, opcode-sequence and length
// rules and the requester's ACK handling, each driven by hand-built frames and judged on the wire,
// in host memory and in the CQEs.
#include "testbench/unit/qp/qp_bench.h"

using namespace rn;
using namespace rn::test;
using wire::Opcode;

TEST_CASE("A duplicate request is acknowledged again and not executed again", "[qp][psn]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    t.inject(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 100, 0, 256), bytes(256, 1));
    t.wait(3 * kUs);
    t.inject(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 100, 0, 256), bytes(256, 2));
    t.wait(3 * kUs);
    const auto& s = t.probe.sent;
    t.expect(s.size() == 2, "two ACKs expected:" + t.wire_log());
    for (const Sent& x : s)
      t.expect(x.h.opcode == wire::to_u8(Opcode::RC_ACKNOWLEDGE) &&
                   x.h.aeth_syndrome == wire::kAethSynAck && x.h.psn == 100,
               "ACK of PSN 100 expected:" + t.wire_log());
    t.expect(Bench::mem(t.dut(), 0, 256) == bytes(256, 1), "the duplicate's payload was written");
    t.expect(t.dut_state() == dev::QpState::RTS, "QP left RTS");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "duplicates") == 1);
  t.report();
}

TEST_CASE("A PSN gap draws one NAK, and the missing packets are then accepted", "[qp][psn]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    t.inject(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 102, 2048, 64), bytes(64, 3));
    t.inject(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 103, 3072, 64), bytes(64, 4));
    t.wait(3 * kUs);
    t.inject(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 100, 0, 64), bytes(64, 5));
    t.inject(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 101, 1024, 64), bytes(64, 6));
    t.wait(3 * kUs);
    t.inject(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 103, 3072, 64), bytes(64, 7));
    t.wait(3 * kUs);
    const auto& s = t.probe.sent;
    struct Want {
      uint8_t syn;
      uint32_t psn;
    };
    const Want want[] = {{wire::kAethSynNakPsnSeq, 100},
                         {wire::kAethSynAck, 100},
                         {wire::kAethSynAck, 101},
                         {wire::kAethSynNakPsnSeq, 102}};
    t.expect(s.size() == 4, "NAK, ACK, ACK, NAK expected:" + t.wire_log());
    for (size_t i = 0; i < std::min<size_t>(4, s.size()); ++i)
      t.expect(s[i].h.aeth_syndrome == want[i].syn && s[i].h.psn == want[i].psn,
               fmt::format("frame {}:", i) + t.wire_log());
    t.expect(
        Bench::mem(t.dut(), 0, 64) == bytes(64, 5) && Bench::mem(t.dut(), 1024, 64) == bytes(64, 6),
        "the packets in sequence were not placed");
    t.expect(t.untouched(t.dut(), 2048, 64) && t.untouched(t.dut(), 3072, 64),
             "a packet out of sequence was placed");
    t.expect(t.dut_state() == dev::QpState::RTS, "QP left RTS");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "seq_naks") == 2);
  t.report();
}

namespace {
// Injects `pkts` into the DUT and expects one NAK invalid request for `nak_psn`, the QP in ERR and
// the buffer untouched.
void expect_refused(QpBench& t, const std::vector<std::pair<wire::TransportHeader, size_t>>& pkts,
                    uint32_t nak_psn) {
  for (const auto& [h, len] : pkts) t.inject(h, bytes(len, 9));
  t.wait(5 * kUs);
  const auto& s = t.probe.sent;
  t.expect(!s.empty() && s.back().h.aeth_syndrome == wire::kAethSynNakInvReq &&
               s.back().h.psn == nak_psn,
           fmt::format("NAK invalid request for PSN {} expected:", nak_psn) + t.wire_log());
  t.expect(t.dut_state() == dev::QpState::ERR, "QP not in ERR");
}
}  // namespace

TEST_CASE("A FIRST packet shorter than the path MTU is refused", "[qp][length]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    expect_refused(t, {{t.write_req(Opcode::RC_RDMA_WRITE_FIRST, 100, 0, 8192), 4000}}, 100);
    t.expect(t.untouched(t.dut(), 0, 65536), "memory written");
  });
  t.report();
}

TEST_CASE("A WRITE whose packets do not add up to its RETH length is refused", "[qp][length]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    // FIRST carries 4096 of 6000 bytes; LAST brings 2000 instead of 1904.
    expect_refused(t,
                   {{t.write_req(Opcode::RC_RDMA_WRITE_FIRST, 100, 0, 6000), 4096},
                    {QpBench::req(Opcode::RC_RDMA_WRITE_LAST, 101), 2000}},
                   101);
    t.expect(t.untouched(t.dut(), 4096, 4096), "the refused LAST was placed");
  });
  t.report();
}

TEST_CASE("A MIDDLE packet without a FIRST is refused", "[qp][sequence]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    expect_refused(t, {{QpBench::req(Opcode::RC_SEND_MIDDLE, 100), 4096}}, 100);
  });
  t.report();
}

TEST_CASE("A payload larger than the path MTU is refused", "[qp][length]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    t.recv(t.dut(), 1, 0, 65536);
    expect_refused(t, {{QpBench::req(Opcode::RC_SEND_ONLY, 100), 4100}}, 100);
  });
  t.report();
}

TEST_CASE("ACKs reach the requester while requests wait for a receive WQE", "[qp][demux]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    Peer& d = t.dut();
    // The DUT sends a WRITE; its ACK is injected right behind a SEND that must wait for the
    // receive WQE fetch, posted a moment before (its DMA read is still on its way).
    t.fill(d, 8192, 512, 3);
    t.post(d, WrOpcode::RDMA_WRITE, 7, 8192, 512, drv::kSendSignaled);
    t.wait(3 * kUs);
    t.recv(d, 8, 0, 4096);
    // Inject once the doorbell has reached the NIC and while its WQE fetch is on its way.
    const qp::QpCtx* q = d.n->nic->table().qp(d.qp->qpn);
    for (int i = 0; i < 1000 && q->rq.pi == 0; ++i) t.wait(10 * kNs);
    t.expect(q->rq.pi == 1 && q->rq.fetched == 0, "the receive WQE is not being fetched");
    t.inject(QpBench::req(Opcode::RC_SEND_ONLY, 100), bytes(100, 1));
    t.inject(QpBench::ack(100, wire::kAethSynAck, 1));
    const Tick t0 = d.h->now();
    auto sc = t.poll(d, d.scq, 1);
    const Tick t_send = d.h->now();
    auto rc = t.poll(d, d.rcq, 1);
    const Tick t_recv = d.h->now();
    t.expect(sc.size() == 1 && sc[0].wr_id == 7 && sc[0].status == WcStatus::SUCCESS,
             sc.empty() ? "no send CQE" : wc_str(sc[0]));
    t.expect(rc.size() == 1 && rc[0].wr_id == 8 && rc[0].byte_len == 100,
             rc.empty() ? "no receive CQE" : wc_str(rc[0]));
    // The send completion does not wait for the receive WQE fetch (about a microsecond).
    t.expect(t_send < t_recv,
             fmt::format("send CQE at +{} ps, receive CQE at +{} ps", t_send - t0, t_recv - t0));
  });
  CHECK(stat(t.stats, "host1.nic.resp", "stalls") == 1);
  t.report();
}

TEST_CASE("The requester's WRITE on the wire: opcodes, PSNs, AckReq, RETH and payload",
          "[qp][requester]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    Peer& d = t.dut();
    t.fill(d, 0, 10000, 11);
    t.post(d, WrOpcode::RDMA_WRITE, 1, 0, 10000, drv::kSendSignaled, 0, 0, 4096);
    t.wait(5 * kUs);
    const auto& s = t.probe.sent;
    t.expect(s.size() == 3, "three packets expected:" + t.wire_log());
    if (s.size() != 3) return;
    const Opcode ops[] = {Opcode::RC_RDMA_WRITE_FIRST, Opcode::RC_RDMA_WRITE_MIDDLE,
                          Opcode::RC_RDMA_WRITE_LAST};
    const std::vector<uint8_t> src = Bench::mem(d, 0, 10000);
    for (uint32_t i = 0; i < 3; ++i) {
      t.expect(s[i].h.opcode == wire::to_u8(ops[i]) && s[i].h.psn == 100 + i,
               fmt::format("packet {}:", i) + t.wire_log());
      t.expect(s[i].h.dest_qp == t.a.qp->qpn, "destination QP");
      t.expect(s[i].h.ack_req == (i == 2), fmt::format("AckReq on packet {}", i));
      const size_t off = i * 4096, len = std::min<size_t>(4096, 10000 - off);
      t.expect(s[i].payload == std::vector<uint8_t>(src.begin() + off, src.begin() + off + len),
               fmt::format("payload of packet {}", i));
    }
    t.expect(s[0].h.reth_va == t.a.buf + 4096 && s[0].h.reth_len == 10000 &&
                 s[0].h.reth_rkey == t.a.mr.rkey,
             "RETH");
    t.expect(t.poll(d, d.scq, 1).empty(), "completed before its ACK");
    t.inject(QpBench::ack(101));  // acknowledges two of three packets: not yet complete
    t.expect(t.poll(d, d.scq, 1).empty(), "completed on a partial ACK");
    t.inject(QpBench::ack(102));
    auto c = t.poll(d, d.scq, 1);
    t.expect(c.size() == 1 && c[0].status == WcStatus::SUCCESS && c[0].wr_id == 1,
             c.empty() ? "no CQE" : wc_str(c[0]));
  });
  t.report();
}

TEST_CASE("A NAK fails the WQE it names, and the WQEs after it are flushed", "[qp][requester]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    Peer& d = t.dut();
    for (int i = 0; i < 3; ++i) t.post(d, WrOpcode::RDMA_WRITE, 1 + i, 0, 64, drv::kSendSignaled);
    t.wait(3 * kUs);
    t.inject(QpBench::ack(100));  // the first completes
    t.inject(QpBench::ack(101, wire::kAethSynNakRemAccess));
    auto c = t.poll(d, d.scq, 3);
    const WcStatus want[] = {WcStatus::SUCCESS, WcStatus::REM_ACCESS_ERR, WcStatus::WR_FLUSH_ERR};
    t.expect(c.size() == 3, fmt::format("{} CQEs, 3 expected", c.size()));
    for (size_t i = 0; i < std::min<size_t>(3, c.size()); ++i)
      t.expect(c[i].wr_id == 1 + i && c[i].status == want[i], wc_str(c[i]));
    t.expect(t.dut_state() == dev::QpState::ERR, "QP not in ERR");
  });
  t.report();
}

TEST_CASE("ACKs for PSNs never sent are ignored", "[qp][requester]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    Peer& d = t.dut();
    t.post(d, WrOpcode::RDMA_WRITE, 1, 0, 64, drv::kSendSignaled);
    t.wait(3 * kUs);
    t.inject(QpBench::ack(500));  // ahead of everything sent
    t.inject(QpBench::ack(99));   // behind it
    t.wait(3 * kUs);
    t.expect(t.poll(d, d.scq, 1).empty(), "a stale ACK completed the WQE");
    t.inject(QpBench::ack(100));
    auto c = t.poll(d, d.scq, 1);
    t.expect(c.size() == 1 && c[0].status == WcStatus::SUCCESS,
             c.empty() ? "no CQE" : wc_str(c[0]));
    t.expect(t.dut_state() == dev::QpState::RTS, "QP left RTS");
  });
  CHECK(stat(t.stats, "host1.nic.req", "stale_acks") == 2);
  t.report();
}
