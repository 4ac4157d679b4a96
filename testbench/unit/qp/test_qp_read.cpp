// RDMA READ at the frame level (qp_bench.h): the responder's response packets and their order
// with ACKs, a duplicate READ executed again; the requester's placement of responses and its
// going back for a missing one.
#include "testbench/unit/qp/qp_bench.h"

using namespace rn;
using namespace rn::test;
using wire::Opcode;

namespace {
constexpr uint32_t kAll = kLW | kRW | kRR;
wire::TransportHeader read_req(const QpBench& t, uint32_t psn, uint64_t off, uint32_t len) {
  wire::TransportHeader h = QpBench::req(Opcode::RC_RDMA_READ_REQUEST, psn);
  h.reth_va = t.b.buf + off;
  h.reth_rkey = t.b.mr.rkey;
  h.reth_len = len;
  return h;
}
wire::TransportHeader response(Opcode op, uint32_t psn, uint32_t msn = 1) {
  wire::TransportHeader h{};
  h.opcode = wire::to_u8(op);
  h.psn = psn;
  h.aeth_syndrome = wire::kAethSynAck;
  h.aeth_msn = msn;
  return h;
}
}  // namespace

TEST_CASE("The responder answers a READ with its response packets, then the ACKs after it",
          "[qp][read]") {
  QpBench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& d = t.dut();
    t.fill(d, 0, 65536, 12);
    t.inject(read_req(t, 100, 1000, 5000));  // PSNs 100, 101
    t.inject(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 102, 30000, 64), bytes(64, 1));
    t.wait(5 * kUs);
    const auto& s = t.probe.sent;
    t.expect(s.size() == 3, "two responses and an ACK:" + t.wire_log());
    if (s.size() != 3) return;
    const auto src = Bench::mem(d, 1000, 5000);
    t.expect(s[0].h.opcode == wire::to_u8(Opcode::RC_RDMA_READ_RESPONSE_FIRST) &&
                 s[0].h.psn == 100 && s[0].h.aeth_syndrome == wire::kAethSynAck &&
                 s[0].h.aeth_msn == 1,
             "first response:" + t.wire_log());
    t.expect(s[1].h.opcode == wire::to_u8(Opcode::RC_RDMA_READ_RESPONSE_LAST) && s[1].h.psn == 101,
             "last response:" + t.wire_log());
    t.expect(s[0].payload == std::vector<uint8_t>(src.begin(), src.begin() + 4096) &&
                 s[1].payload == std::vector<uint8_t>(src.begin() + 4096, src.end()),
             "response payloads");
    t.expect(s[2].h.opcode == wire::to_u8(Opcode::RC_ACKNOWLEDGE) && s[2].h.psn == 102 &&
                 s[2].h.aeth_msn == 2,
             "the WRITE's ACK after the responses:" + t.wire_log());
    // The second half again, as a requester that lost PSN 101 asks for it.
    const size_t before = s.size();
    t.inject(read_req(t, 101, 1000 + 4096, 904));
    t.wait(5 * kUs);
    t.expect(s.size() == before + 1 &&
                 s[before].h.opcode == wire::to_u8(Opcode::RC_RDMA_READ_RESPONSE_ONLY) &&
                 s[before].h.psn == 101 &&
                 s[before].payload == std::vector<uint8_t>(src.begin() + 4096, src.end()),
             "the duplicate READ answered again:" + t.wire_log(before));
    t.expect(t.dut_state() == dev::QpState::RTS, "QP left RTS");
  });
  t.report();
}

TEST_CASE("The requester places READ responses and goes back for a missing one", "[qp][read]") {
  QpBench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& d = t.dut();
    const auto data = bytes(9000, 77);
    t.post(d, WrOpcode::RDMA_READ, 1, 2000, 9000, drv::kSendSignaled, 0, 0, 500);
    t.wait(3 * kUs);
    const auto& s = t.probe.sent;
    t.expect(s.size() == 1 && s[0].h.opcode == wire::to_u8(Opcode::RC_RDMA_READ_REQUEST) &&
                 s[0].h.psn == 100 && s[0].h.reth_va == t.a.buf + 500 && s[0].h.reth_len == 9000 &&
                 s[0].h.reth_rkey == t.a.mr.rkey,
             "the READ request:" + t.wire_log());
    // PSNs 100..102; 101 is lost.
    t.inject(response(Opcode::RC_RDMA_READ_RESPONSE_FIRST, 100),
             std::vector<uint8_t>(data.begin(), data.begin() + 4096));
    t.inject(response(Opcode::RC_RDMA_READ_RESPONSE_LAST, 102),
             std::vector<uint8_t>(data.begin() + 8192, data.end()));
    t.wait(3 * kUs);
    t.expect(s.size() == 2 && s[1].h.opcode == wire::to_u8(Opcode::RC_RDMA_READ_REQUEST) &&
                 s[1].h.psn == 101 && s[1].h.reth_va == t.a.buf + 500 + 4096 &&
                 s[1].h.reth_len == 9000 - 4096,
             "the rest asked for again:" + t.wire_log());
    t.expect(t.poll(d, d.scq, 1).empty(), "completed with a response missing");
    t.inject(response(Opcode::RC_RDMA_READ_RESPONSE_FIRST, 101),
             std::vector<uint8_t>(data.begin() + 4096, data.begin() + 8192));
    t.inject(response(Opcode::RC_RDMA_READ_RESPONSE_LAST, 102),
             std::vector<uint8_t>(data.begin() + 8192, data.end()));
    auto c = t.poll(d, d.scq, 1);
    t.expect(c.size() == 1 && c[0].status == WcStatus::SUCCESS &&
                 c[0].opcode == WcOpcode::RDMA_READ && c[0].byte_len == 9000,
             c.empty() ? "no CQE" : wc_str(c[0]));
    d.h->cpu(2 * kUs);
    t.expect(Bench::mem(d, 2000, 9000) == data, "the READ's data in memory");
    t.expect(t.untouched(d, 0, 2000) && t.untouched(d, 11000, 1000), "written outside");
  });
  t.report();
}

TEST_CASE("A fenced WQE waits for the READs before it, and an unfenced one does not",
          "[qp][read]") {
  QpBench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& d = t.dut();
    t.post(d, WrOpcode::RDMA_READ, 1, 0, 64, drv::kSendSignaled);                       // PSN 100
    t.post(d, WrOpcode::RDMA_WRITE, 2, 100, 64, drv::kSendSignaled);                    // 101
    t.post(d, WrOpcode::RDMA_WRITE, 3, 200, 64, drv::kSendSignaled | drv::kSendFence);  // 102
    t.wait(5 * kUs);
    const auto& s = t.probe.sent;
    t.expect(s.size() == 2, "the READ and the unfenced WRITE only:" + t.wire_log());
    t.inject(response(Opcode::RC_RDMA_READ_RESPONSE_ONLY, 100), bytes(64, 3));
    t.wait(5 * kUs);
    t.expect(s.size() == 3 && s[2].h.psn == 102, "the fenced WRITE after the READ:" + t.wire_log());
    t.inject(QpBench::ack(102));
    auto c = t.poll(d, d.scq, 3);
    t.expect(c.size() == 3, fmt::format("{} CQEs", c.size()));
  });
  t.report();
}

TEST_CASE("A READ response of the wrong length completes the READ with BAD_RESP_ERR",
          "[qp][read]") {
  QpBench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& d = t.dut();
    t.post(d, WrOpcode::RDMA_READ, 1, 2000, 9000, drv::kSendSignaled, 0, 0, 500);
    t.wait(3 * kUs);
    // The first of three responses must be a FIRST of one MTU: an ONLY of 100 bytes is not.
    t.inject(response(Opcode::RC_RDMA_READ_RESPONSE_ONLY, 100), bytes(100, 4));
    auto w = t.poll(d, d.scq, 1);
    t.expect(w.size() == 1 && w[0].status == WcStatus::BAD_RESP_ERR && w[0].wr_id == 1,
             w.empty() ? "no CQE" : wc_str(w[0]));
    t.expect(t.untouched(d, 2000, 9000), "the bad response was placed");
    t.expect(t.dut_state() == dev::QpState::ERR, "QP not in ERR");
  });
  t.report();
}

TEST_CASE("A response that arrives after a go-back acknowledges what the resend would repeat",
          "[qp][read][gbn]") {
  // A READ's response is on its way when a NAK beyond the READ sends the queue back to it. The
  // response lands before the resend starts: the queue goes on after it (the WRITE) at once,
  // not from behind the acknowledged PSN (where it had stopped for good when nothing timed it).
  QpBench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& d = t.dut();
    t.post(d, WrOpcode::RDMA_READ, 1, 0, 64, drv::kSendSignaled);     // PSN 100
    t.post(d, WrOpcode::RDMA_WRITE, 2, 100, 64, drv::kSendSignaled);  // PSN 101
    t.wait(3 * kUs);
    const size_t before = t.probe.sent.size();
    t.expect(before == 2, "the READ and the WRITE:" + t.wire_log());
    t.inject(QpBench::ack(101, wire::kAethSynNakPsnSeq));  // the READ reached the responder
    t.inject(response(Opcode::RC_RDMA_READ_RESPONSE_ONLY, 100), bytes(64, 9));
    t.wait(3 * kUs);
    t.expect(t.with_psn(100).size() == 1, "the answered READ asked for again:" + t.wire_log());
    t.expect(t.with_psn(101).size() == 2, "the WRITE not sent again:" + t.wire_log(before));
    t.inject(QpBench::ack(101));
    auto c = t.poll(d, d.scq, 2);
    t.expect(c.size() == 2 && c[0].wr_id == 1 && c[0].status == WcStatus::SUCCESS &&
                 c[1].wr_id == 2 && c[1].status == WcStatus::SUCCESS,
             fmt::format("{} CQEs", c.size()) + (c.empty() ? "" : ": " + wc_str(c[0])));
    d.h->cpu(2 * kUs);
    t.expect(Bench::mem(d, 0, 64) == bytes(64, 9), "the READ's data in memory");
  });
  t.report();
}

TEST_CASE("NAKs sent before a go-back's resend spend no retry", "[qp][read][gbn]") {
  // With a READ unanswered, a sequence NAK beyond it goes back to the READ. The responder's
  // further NAKs from packets sent before the resend: the same NAK again is ignored, a NAK
  // further on (the responder got further, out of order) goes back again without spending a
  // retry. With retry_cnt 1 either one spending a retry would fail the READ.
  QpBench t;
  t.attr.retry_cnt = 1;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& d = t.dut();
    t.post(d, WrOpcode::RDMA_READ, 1, 0, 64, drv::kSendSignaled);     // PSN 100
    t.post(d, WrOpcode::RDMA_WRITE, 2, 100, 64, drv::kSendSignaled);  // PSN 101
    t.post(d, WrOpcode::RDMA_WRITE, 3, 200, 64, drv::kSendSignaled);  // PSN 102
    t.wait(3 * kUs);
    t.expect(t.probe.sent.size() == 3, "three requests:" + t.wire_log());
    t.inject(QpBench::ack(101, wire::kAethSynNakPsnSeq));  // spends the one retry
    t.wait(3 * kUs);
    t.expect(t.with_psn(100).size() == 2, "the READ asked for again:" + t.wire_log());
    t.inject(QpBench::ack(101, wire::kAethSynNakPsnSeq));  // the same: ignored
    t.wait(3 * kUs);
    t.expect(t.with_psn(100).size() == 2, "gone back again for the same NAK:" + t.wire_log());
    t.inject(QpBench::ack(102, wire::kAethSynNakPsnSeq));  // further on: back again, free
    t.wait(3 * kUs);
    t.expect(t.with_psn(100).size() == 3, "not gone back for a further NAK:" + t.wire_log());
    t.expect(t.dut_state() == dev::QpState::RTS, "the QP left RTS");
    t.inject(response(Opcode::RC_RDMA_READ_RESPONSE_ONLY, 100), bytes(64, 5));
    t.inject(QpBench::ack(102));
    auto c = t.poll(d, d.scq, 3);
    t.expect(c.size() == 3 && c[0].status == WcStatus::SUCCESS && c[2].status == WcStatus::SUCCESS,
             fmt::format("{} CQEs", c.size()) + (c.empty() ? "" : ": " + wc_str(c[0])));
  });
  CHECK(stat(t.stats, "host1.nic.req", "naks_ignored") == 1);
  CHECK(stat(t.stats, "host1.nic.req", "seq_retries") == 2);
  t.report();
}
