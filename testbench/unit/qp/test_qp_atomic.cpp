// Atomics at the frame level (qp_bench.h): the responder's ATOMIC ACKNOWLEDGE and its order with
// READ responses and ACKs, duplicates answered from the QP's results (never executed twice), the
// requester's atomic request and its placement of the original value, an implied NAK.
#include "testbench/unit/qp/qp_bench.h"

using namespace rn;
using namespace rn::test;
using wire::Opcode;

namespace {
constexpr uint32_t kAll = kLW | kRW | kRR | kRA;
wire::TransportHeader atomic_req(const QpBench& t, Opcode op, uint32_t psn, uint64_t off,
                                 uint64_t swap_add, uint64_t compare = 0) {
  wire::TransportHeader h = QpBench::req(op, psn);
  h.atomic_va = t.b.buf + off;
  h.atomic_rkey = t.b.mr.rkey;
  h.atomic_swap_add = swap_add;
  h.atomic_compare = compare;
  return h;
}
}  // namespace

TEST_CASE("The responder answers atomics with the original value, in order with other replies",
          "[qp][atomic]") {
  QpBench t;
  t.attr.max_dest_rd_atomic = 4;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& d = t.dut();
    Bench::set_u64(d, 800, 1000);
    t.inject(atomic_req(t, Opcode::RC_FETCH_ADD, 100, 800, 7));
    wire::TransportHeader rd = QpBench::req(Opcode::RC_RDMA_READ_REQUEST, 101);
    rd.reth_va = d.buf;
    rd.reth_rkey = d.mr.rkey;
    rd.reth_len = 16;
    t.inject(rd);
    t.inject(atomic_req(t, Opcode::RC_COMPARE_SWAP, 102, 800, 55, 1007));
    t.inject(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 103, 30000, 64), bytes(64, 1));
    t.wait(5 * kUs);
    const auto& s = t.probe.sent;
    t.expect(s.size() == 4, "four replies:" + t.wire_log());
    if (s.size() != 4) return;
    t.expect(s[0].h.opcode == wire::to_u8(Opcode::RC_ATOMIC_ACKNOWLEDGE) && s[0].h.psn == 100 &&
                 s[0].h.atomic_ack_orig == 1000 && s[0].h.aeth_syndrome == wire::kAethSynAck &&
                 s[0].h.aeth_msn == 1,
             "FETCH_ADD answered:" + t.wire_log());
    t.expect(s[1].h.opcode == wire::to_u8(Opcode::RC_RDMA_READ_RESPONSE_ONLY) && s[1].h.psn == 101,
             "then the READ:" + t.wire_log());
    t.expect(s[2].h.opcode == wire::to_u8(Opcode::RC_ATOMIC_ACKNOWLEDGE) && s[2].h.psn == 102 &&
                 s[2].h.atomic_ack_orig == 1007 && s[2].h.aeth_msn == 3,
             "COMPARE_SWAP answered:" + t.wire_log());
    t.expect(s[3].h.opcode == wire::to_u8(Opcode::RC_ACKNOWLEDGE) && s[3].h.psn == 103,
             "the WRITE's ACK last:" + t.wire_log());
    t.expect(Bench::u64(d, 800) == 55, fmt::format("memory {}", Bench::u64(d, 800)));
  });
  CHECK(stat(t.stats, "host1.nic.resp", "atomics") == 2);
  t.report();
}

TEST_CASE("A duplicate atomic gets the same original value and is not executed again",
          "[qp][atomic]") {
  QpBench t;
  t.attr.max_dest_rd_atomic = 2;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& d = t.dut();
    Bench::set_u64(d, 0, 5);
    // One at a time (max_dest_rd_atomic = 2 would refuse a third still executing).
    for (uint32_t psn = 100; psn < 103; ++psn) {  // 5 -> 6 -> 7 -> 8
      t.inject(atomic_req(t, Opcode::RC_FETCH_ADD, psn, 0, 1));
      t.wait(3 * kUs);
    }
    const auto& s = t.probe.sent;
    t.expect(s.size() == 3 && s[2].h.atomic_ack_orig == 7, "three answers:" + t.wire_log());
    // PSN 102 and 101 again (kept: the last max_dest_rd_atomic = 2), then 100 (forgotten).
    const size_t before = s.size();
    t.inject(atomic_req(t, Opcode::RC_FETCH_ADD, 102, 0, 1));
    t.inject(atomic_req(t, Opcode::RC_FETCH_ADD, 101, 0, 1));
    t.inject(atomic_req(t, Opcode::RC_FETCH_ADD, 100, 0, 1));
    t.wait(5 * kUs);
    t.expect(s.size() == before + 2, "two replayed answers:" + t.wire_log(before));
    if (s.size() < before + 2) return;
    t.expect(s[before].h.psn == 102 && s[before].h.atomic_ack_orig == 7 &&
                 s[before + 1].h.psn == 101 && s[before + 1].h.atomic_ack_orig == 6,
             "the values kept:" + t.wire_log(before));
    t.expect(Bench::u64(d, 0) == 8, fmt::format("memory {} (executed again?)", Bench::u64(d, 0)));
    t.expect(t.dut_state() == dev::QpState::RTS, "QP left RTS");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "atomics") == 3);
  CHECK(stat(t.stats, "host1.nic.resp", "atomic_replays") == 2);
  CHECK(stat(t.stats, "host1.nic.resp", "atomic_duplicates_dropped") == 1);
  t.report();
}

TEST_CASE("More atomics outstanding than max_dest_rd_atomic are refused", "[qp][atomic]") {
  QpBench t({"host.mem.read_latency=20us"});  // the first atomics are still executing
  t.attr.max_dest_rd_atomic = 2;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    for (uint32_t i = 0; i < 3; ++i) t.inject(atomic_req(t, Opcode::RC_FETCH_ADD, 100 + i, 0, 1));
    t.wait(100 * kUs);
    const auto& s = t.probe.sent;
    bool nak = false;
    for (const auto& x : s)
      nak |= x.h.opcode == wire::to_u8(Opcode::RC_ACKNOWLEDGE) && x.h.psn == 102 &&
             x.h.aeth_syndrome == wire::kAethSynNakInvReq;
    t.expect(nak, "NAK invalid request for PSN 102:" + t.wire_log());
    t.expect(t.dut_state() == dev::QpState::ERR, "QP not in ERR");
  });
  t.report();
}

TEST_CASE("The requester sends an atomic and places the original value it gets back",
          "[qp][atomic]") {
  QpBench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& d = t.dut();
    t.atomic(d, WrOpcode::ATOMIC_CMP_AND_SWP, 9, 64, 4096, 0x1111, 0x2222);
    t.wait(3 * kUs);
    const auto& s = t.probe.sent;
    t.expect(s.size() == 1 && s[0].h.opcode == wire::to_u8(Opcode::RC_COMPARE_SWAP) &&
                 s[0].h.psn == 100 && s[0].h.ack_req && s[0].h.atomic_va == t.a.buf + 4096 &&
                 s[0].h.atomic_rkey == t.a.mr.rkey && s[0].h.atomic_compare == 0x1111 &&
                 s[0].h.atomic_swap_add == 0x2222,
             "the request:" + t.wire_log());
    wire::TransportHeader h{};
    h.opcode = wire::to_u8(Opcode::RC_ATOMIC_ACKNOWLEDGE);
    h.psn = 100;
    h.aeth_syndrome = wire::kAethSynAck;
    h.aeth_msn = 1;
    h.atomic_ack_orig = 0x0123456789abcdefull;
    t.inject(h);
    auto w = t.poll(d, d.scq, 1);
    t.expect(w.size() == 1 && w[0].status == WcStatus::SUCCESS && w[0].wr_id == 9 &&
                 w[0].opcode == WcOpcode::COMP_SWAP && w[0].byte_len == 8,
             w.empty() ? "no CQE" : wc_str(w[0]));
    t.expect(Bench::u64(d, 64) == 0x0123456789abcdefull,
             fmt::format("placed {:#x}", Bench::u64(d, 64)));
    t.expect(t.untouched(d, 72, 64), "wrote past the 8 bytes");
  });
  t.report();
}

TEST_CASE("An ACK past an atomic without its acknowledgement makes the requester ask again",
          "[qp][atomic]") {
  // The ATOMIC ACKNOWLEDGE of PSN 100 was lost; the ACK of the WRITE after it (PSN 101) implies
  // it: the requester sends the atomic again (same PSN), and the WRITE's completion waits.
  QpBench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& d = t.dut();
    t.atomic(d, WrOpcode::ATOMIC_FETCH_AND_ADD, 1, 0, 0, 1);
    t.post(d, WrOpcode::RDMA_WRITE, 2, 100, 64, drv::kSendSignaled);
    t.wait(3 * kUs);
    t.inject(QpBench::ack(101));
    t.wait(3 * kUs);
    const auto& s = t.probe.sent;
    t.expect(
        s.size() >= 3 && s[2].h.opcode == wire::to_u8(Opcode::RC_FETCH_ADD) && s[2].h.psn == 100,
        "the atomic again:" + t.wire_log());
    drv::Wc wc[2];
    t.expect(d.d->poll_cq(d.scq, 2, wc) == 0, "a completion before the atomic's acknowledgement");
  });
  CHECK(stat(t.stats, "host1.nic.req", "implied_naks") == 1);
  t.report();
}

TEST_CASE("A response of the wrong kind or length completes the WQE with BAD_RESP_ERR",
          "[qp][atomic]") {
  // A READ response where the atomic's acknowledgement is expected (its PSN), then the QP errs.
  QpBench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& d = t.dut();
    t.atomic(d, WrOpcode::ATOMIC_FETCH_AND_ADD, 1, 0, 0, 1);
    t.wait(3 * kUs);
    wire::TransportHeader h{};
    h.opcode = wire::to_u8(Opcode::RC_RDMA_READ_RESPONSE_ONLY);
    h.psn = 100;
    h.aeth_syndrome = wire::kAethSynAck;
    h.aeth_msn = 1;
    t.inject(h, bytes(8, 3));
    auto w = t.poll(d, d.scq, 1);
    t.expect(w.size() == 1 && w[0].status == WcStatus::BAD_RESP_ERR && w[0].wr_id == 1,
             w.empty() ? "no CQE" : wc_str(w[0]));
    t.expect(t.untouched(d, 0, 65536), "the bad response was placed");
    t.expect(t.dut_state() == dev::QpState::ERR, "QP not in ERR");
  });
  t.report();
}
