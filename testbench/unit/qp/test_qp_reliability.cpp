// The requester's reliability with a frame injector (qp_bench.h): go-back-N on a sequence NAK,
// the local ACK timeout and retry_cnt, RNR retry after the NAK's timer. The wire shows what is
// sent again and when; the CQEs what became of each WQE.
#include "testbench/unit/qp/qp_bench.h"

using namespace rn;
using namespace rn::test;
using wire::Opcode;

TEST_CASE("A sequence NAK sends again from its PSN, in the middle of a message", "[qp][gbn]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    Peer& d = t.dut();
    t.fill(d, 0, 10100, 4);
    t.post(d, WrOpcode::RDMA_WRITE, 1, 0, 10000, drv::kSendSignaled);    // PSN 100..102
    t.post(d, WrOpcode::RDMA_WRITE, 2, 10000, 100, drv::kSendSignaled);  // PSN 103
    t.wait(5 * kUs);
    const size_t sent_before = t.probe.sent.size();
    t.expect(sent_before == 4, "four packets first:" + t.wire_log());
    t.inject(QpBench::ack(101, wire::kAethSynNakPsnSeq));
    t.wait(5 * kUs);
    const auto& s = t.probe.sent;
    const Opcode again[] = {Opcode::RC_RDMA_WRITE_MIDDLE, Opcode::RC_RDMA_WRITE_LAST,
                            Opcode::RC_RDMA_WRITE_ONLY};
    t.expect(s.size() == sent_before + 3, "PSNs 101..103 again:" + t.wire_log(sent_before));
    for (uint32_t i = 0; i < 3 && sent_before + i < s.size(); ++i) {
      const Sent& x = s[sent_before + i];
      t.expect(x.h.psn == 101 + i && x.h.opcode == wire::to_u8(again[i]),
               fmt::format("again {}:", i) + t.wire_log(sent_before));
      t.expect(x.payload == s[1 + i].payload, fmt::format("payload of PSN {} differs", 101 + i));
    }
    t.inject(QpBench::ack(103));
    auto c = t.poll(d, d.scq, 2);
    t.expect(c.size() == 2 && c[0].status == WcStatus::SUCCESS && c[1].status == WcStatus::SUCCESS,
             fmt::format("{} CQEs", c.size()) + (c.empty() ? "" : ": " + wc_str(c[0])));
  });
  CHECK(stat(t.stats, "host1.nic.req", "seq_retries") == 1);
  CHECK(stat(t.stats, "host1.nic.req", "retransmitted") == 3);
  t.report();
}

TEST_CASE("Without an ACK the request goes again after the local ACK timeout", "[qp][timeout]") {
  QpBench t;
  t.attr.timeout = 3;  // 4.096 us x 8 = 32.768 us
  t.run([&] {
    if (!t.setup()) return;
    Peer& d = t.dut();
    t.post(d, WrOpcode::RDMA_WRITE, 1, 0, 64, drv::kSendSignaled);
    t.wait(50 * kUs);
    auto tries = t.with_psn(100);
    t.expect(tries.size() == 2, "sent twice:" + t.wire_log());
    if (tries.size() == 2) {
      const Tick gap = tries[1]->at - tries[0]->at;
      t.expect(gap >= 32768 * kNs && gap < 33768 * kNs,
               fmt::format("sent again {} ns after the first time", gap / kNs));
    }
    t.inject(QpBench::ack(100));
    auto c = t.poll(d, d.scq, 1);
    t.expect(c.size() == 1 && c[0].status == WcStatus::SUCCESS,
             c.empty() ? "no CQE" : wc_str(c[0]));
  });
  CHECK(stat(t.stats, "host1.nic.req", "timeouts") == 1);
  t.report();
}

TEST_CASE("When retry_cnt retries time out too, the WQE fails with RETRY_EXC_ERR",
          "[qp][timeout]") {
  QpBench t;
  t.attr.timeout = 3;
  t.attr.retry_cnt = 2;
  t.run([&] {
    if (!t.setup()) return;
    Peer& d = t.dut();
    t.post(d, WrOpcode::RDMA_WRITE, 1, 0, 64, drv::kSendSignaled);
    t.post(d, WrOpcode::RDMA_WRITE, 2, 0, 64, drv::kSendSignaled);
    auto c = t.poll(d, d.scq, 2);
    t.expect(c.size() == 2 && c[0].wr_id == 1 && c[0].status == WcStatus::RETRY_EXC_ERR &&
                 c[1].status == WcStatus::WR_FLUSH_ERR,
             fmt::format("{} CQEs", c.size()) + (c.empty() ? "" : ": " + wc_str(c[0])));
    t.expect(t.with_psn(100).size() == 3, "PSN 100 sent once and retried twice:" + t.wire_log());
    t.expect(t.dut_state() == dev::QpState::ERR, "QP not in ERR");
  });
  CHECK(stat(t.stats, "host1.nic.req", "timeouts") == 3);
  t.report();
}

TEST_CASE("An RNR NAK sends the request again after the timer it names", "[qp][rnr]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    Peer& d = t.dut();
    t.post(d, WrOpcode::SEND, 1, 0, 64, drv::kSendSignaled);
    t.wait(3 * kUs);
    // 20 us, then the WQE is fetched again (about 1 us) and sent.
    t.inject(QpBench::ack(100, wire::aeth_rnr_nak(2)));
    const Tick nak_at = d.h->now();
    t.wait(30 * kUs);
    auto tries = t.with_psn(100);
    t.expect(tries.size() == 2, "sent twice:" + t.wire_log());
    if (tries.size() == 2)
      t.expect(tries[1]->at - nak_at >= 20 * kUs && tries[1]->at - nak_at < 23 * kUs,
               fmt::format("sent again {} ns after the RNR NAK", (tries[1]->at - nak_at) / kNs));
    t.inject(QpBench::ack(100));
    auto c = t.poll(d, d.scq, 1);
    t.expect(c.size() == 1 && c[0].status == WcStatus::SUCCESS,
             c.empty() ? "no CQE" : wc_str(c[0]));
  });
  CHECK(stat(t.stats, "host1.nic.req", "rnr_retries") == 1);
  t.report();
}

TEST_CASE("An ACK for more than is being sent again ends the going back there", "[qp][gbn]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    Peer& d = t.dut();
    for (int i = 0; i < 4; ++i) t.post(d, WrOpcode::RDMA_WRITE, 1 + i, 0, 64, drv::kSendSignaled);
    t.wait(5 * kUs);
    // A NAK for 101, then (as if the responder had them all) an ACK for 103, before the port
    // could send much again.
    t.inject(QpBench::ack(101, wire::kAethSynNakPsnSeq));
    t.inject(QpBench::ack(103));
    auto c = t.poll(d, d.scq, 4);
    t.expect(c.size() == 4, fmt::format("{} CQEs", c.size()));
    for (const auto& w : c) t.expect(w.status == WcStatus::SUCCESS, wc_str(w));
    t.wait(5 * kUs);
    t.expect(t.with_psn(104).empty(), "a PSN never posted was sent:" + t.wire_log());
    t.expect(t.dut_state() == dev::QpState::RTS, "QP left RTS");
  });
  t.report();
}
