// The security attack matrix (docs/security.md), the rows that need hand-built frames: a packet
// for a QP that does not exist or from another address than the QP's peer, a P_Key that is not
// the QP's, PSNs far outside the window, WRITE payloads that disagree with their RETH, a READ
// longer than 2 GiB, responses nobody asked for or longer than asked, a forged rkey on UC, a UD
// datagram of another Q_Key. The remote peer is the test (qp_bench.h: host 1's NIC is the device
// under test, DUT); each case checks what the DUT sent back, its QP's state, its counters, and that
// no byte of either host's memory changed outside what is permitted (mem_guard.h).
#include "testbench/system/mem_guard.h"
#include "testbench/unit/qp/qp_bench.h"

using namespace rn;
using namespace rn::test;
using wire::Opcode;

namespace {

constexpr uint32_t kAll = kLW | kRW | kRR | kRA;

uint32_t psn_plus(uint32_t psn, int32_t d) { return static_cast<uint32_t>(psn + d) & 0xFFFFFF; }

// The DUT sent exactly one ACKNOWLEDGE, with this syndrome and PSN.
void expect_one_ack(QpBench& t, uint8_t syndrome, uint32_t psn) {
  const auto& s = t.probe.sent;
  t.expect(s.size() == 1 && s[0].h.opcode == wire::to_u8(Opcode::RC_ACKNOWLEDGE) &&
               s[0].h.aeth_syndrome == syndrome && s[0].h.psn == psn,
           fmt::format("one {} for PSN {} expected:", wire::aeth_syndrome_name(syndrome), psn) +
               t.wire_log());
}

wire::TransportHeader response(Opcode op, uint32_t psn) {
  wire::TransportHeader h{};
  h.opcode = wire::to_u8(op);
  h.psn = psn;
  h.aeth_syndrome = wire::kAethSynAck;
  h.aeth_msn = 1;
  return h;
}

}  // namespace

// Row 12: a request for a QPN that does not exist is dropped silently and counted; the QP it
// might have been meant for neither answers nor moves its PSN.
TEST_CASE("no_such_qp", "[security][qpn]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    Peer& d = t.dut();
    const uint32_t ghost = d.qp->qpn + 1000;
    t.expect(d.n->nic->table().qp(ghost) == nullptr, "the ghost QP exists");
    MemGuard g(t);
    g.permit(d, 0, 64);  // the genuine WRITE below
    g.take();
    wire::TransportHeader h = t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 100, 0, 64);
    h.dest_qp = ghost;
    t.inject(h, bytes(64, 1));
    t.wait(5 * kUs);
    t.expect(t.probe.sent.empty(), "the DUT answered:" + t.wire_log());
    t.expect(t.untouched(d, 0, 64), "the dropped WRITE was placed");
    // The same PSN to the real QP is taken: the dropped packet used none.
    t.inject(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 100, 0, 64), bytes(64, 2));
    t.wait(5 * kUs);
    expect_one_ack(t, wire::kAethSynAck, 100);
    t.expect(Bench::mem(d, 0, 64) == bytes(64, 2), "the genuine WRITE was not placed");
    t.expect(t.dut_state() == dev::QpState::RTS, "QP left RTS");
    g.check();
  });
  CHECK(stat(t.stats, "host1.nic.rx", "drop_no_qp") == 1);
  CHECK(stat(t.stats, "host1.nic.resp", "placed_bytes") == 64);
  t.report();
}

// Row 12b: a request from another address than the QP's peer (an off-path host that knows the
// QPN, the PSN and an rkey) is dropped silently and counted; the QP stays in RTS.
TEST_CASE("foreign_source_address", "[security][address]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    Peer& d = t.dut();
    // A second QP of the DUT, connected to a host at 10.9.9.9 that does not exist here.
    drv::QpCap cap;
    cap.max_send_wr = cap.max_recv_wr = 16;
    drv::Qp* q2 = nullptr;
    if (d.d->create_qp(d.pdn, d.scq, d.rcq, cap, false, &q2))
      return t.expect(false, "create_qp: " + d.d->last_error());
    system::Node stranger_node;
    stranger_node.ipv4 = 0x0A090909;
    stranger_node.mac = {0x02, 0, 0, 0, 0x09, 0x09};
    Peer stranger = t.a;  // its QP number: host 0's
    stranger.n = &stranger_node;
    Peer other = d;
    other.qp = q2;
    if (!t.connect(other, stranger, kLW | kRW)) return;
    MemGuard g(t);
    g.permit(d, 0, 64);  // the genuine WRITE below
    g.take();
    t.Bench::inject(t.a, other, t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 100, 0, 64), bytes(64, 1));
    t.wait(5 * kUs);
    t.expect(t.probe.sent.empty(), "the DUT answered:" + t.wire_log());
    t.expect(t.untouched(d, 0, 64), "a packet from a stranger's address was placed");
    dev::QueryQpOut qq{};
    d.d->query_qp(q2, &qq);
    t.expect(qq.qp_state == static_cast<uint8_t>(dev::QpState::RTS), "the QP left RTS");
    // From its peer's address, the same request to the QP connected to host 0 is taken.
    t.inject(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 100, 0, 64), bytes(64, 2));
    t.wait(5 * kUs);
    expect_one_ack(t, wire::kAethSynAck, 100);
    t.expect(Bench::mem(d, 0, 64) == bytes(64, 2), "the genuine WRITE was not placed");
    g.check();
  });
  CHECK(stat(t.stats, "host1.nic.rx", "drop_source") == 1);
  CHECK(stat(t.stats, "host1.nic.resp", "placed_bytes") == 64);
  t.report();
}

// Row 13: a P_Key that does not match the QP's (the one-entry table's 0xFFFF) is dropped silently
// and counted (IBA 10.9.3: low 15 bits equal and not zero, one side a full member). 0x7FFF, a
// limited member of the same partition, matches.
TEST_CASE("pkey_mismatch", "[security][pkey]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    Peer& d = t.dut();
    MemGuard g(t);
    g.permit(d, 0, 64);  // the matching WRITE below
    g.take();
    for (uint16_t pkey : {uint16_t(0x1234), uint16_t(0x8000), uint16_t(0x0000), uint16_t(0xFFFE)}) {
      wire::TransportHeader h = t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 100, 0, 64);
      h.pkey = pkey;
      t.inject(h, bytes(64, 1));
    }
    t.wait(5 * kUs);
    t.expect(t.probe.sent.empty(), "the DUT answered:" + t.wire_log());
    t.expect(t.untouched(d, 0, 64), "a packet of another partition was placed");
    t.expect(t.dut_state() == dev::QpState::RTS, "QP left RTS");
    wire::TransportHeader h = t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 100, 0, 64);
    h.pkey = 0x7FFF;
    t.inject(h, bytes(64, 2));
    t.wait(5 * kUs);
    expect_one_ack(t, wire::kAethSynAck, 100);
    t.expect(Bench::mem(d, 0, 64) == bytes(64, 2), "the matching WRITE was not placed");
    g.check();
  });
  CHECK(stat(t.stats, "host1.nic.rx", "drop_pkey") == 4);
  CHECK(stat(t.stats, "host1.nic.resp", "placed_bytes") == 64);
  t.report();
}

// Row 14: PSNs far ahead of the expected one: one PSN sequence error NAK carrying the expected
// PSN, then silence; nothing executed, the QP stays in RTS.
TEST_CASE("psn_far_ahead", "[security][psn]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    Peer& d = t.dut();
    MemGuard g(t);
    g.take();
    t.inject(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, psn_plus(100, 0x400000), 0, 64), bytes(64, 1));
    t.inject(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, psn_plus(100, 0x7FFFFF), 64, 64),
             bytes(64, 2));
    t.wait(5 * kUs);
    expect_one_ack(t, wire::kAethSynNakPsnSeq, 100);
    t.expect(t.untouched(d, 0, 128), "a packet out of sequence was placed");
    t.expect(t.dut_state() == dev::QpState::RTS, "QP left RTS");
    g.check();
  });
  CHECK(stat(t.stats, "host1.nic.resp", "seq_naks") == 1);
  CHECK(stat(t.stats, "host1.nic.resp", "placed_bytes") == 0);
  t.report();
}

// Row 14: PSNs far behind: duplicates. A duplicate WRITE is acknowledged again (the last PSN
// received) and not executed; a duplicate atomic with no result kept is dropped, not executed.
TEST_CASE("psn_far_behind", "[security][psn]") {
  QpBench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& d = t.dut();
    Bench::set_u64(d, 256, 1000);
    MemGuard g(t);
    g.take();
    t.inject(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, psn_plus(100, -0x400000), 0, 64),
             bytes(64, 1));
    wire::TransportHeader fa = QpBench::req(Opcode::RC_FETCH_ADD, psn_plus(100, -0x300000));
    fa.atomic_va = d.buf + 256;
    fa.atomic_rkey = d.mr.rkey;
    fa.atomic_swap_add = 5;
    t.inject(fa);
    t.wait(5 * kUs);
    expect_one_ack(t, wire::kAethSynAck, 99);
    t.expect(t.untouched(d, 0, 64), "a duplicate WRITE was executed");
    t.expect(Bench::u64(d, 256) == 1000, "a duplicate atomic was executed");
    t.expect(t.dut_state() == dev::QpState::RTS, "QP left RTS");
    g.check();
  });
  CHECK(stat(t.stats, "host1.nic.resp", "duplicates") == 2);
  CHECK(stat(t.stats, "host1.nic.resp", "atomic_duplicates_dropped") == 1);
  CHECK(stat(t.stats, "host1.nic.resp", "atomics") == 0);
  CHECK(stat(t.stats, "host1.nic.resp", "placed_bytes") == 0);
  t.report();
}

// Row 15: a WRITE whose payload disagrees with its RETH DMA length: NAK invalid request, the QP
// in ERR, nothing placed. `build` makes the packet once the DUT is set up (its header, and the
// payload's length); want_lookups: the translations the DUT's MR table did before refusing.
namespace {
using Build = std::function<std::pair<wire::TransportHeader, size_t>(QpBench&)>;
void write_len_refused(const Build& build, uint64_t want_lookups) {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    MemGuard g(t);
    g.take();
    const auto [h, len] = build(t);
    t.inject(h, bytes(len, 7));
    t.wait(5 * kUs);
    expect_one_ack(t, wire::kAethSynNakInvReq, 100);
    t.expect(t.dut_state() == dev::QpState::ERR, "QP not in ERR");
    g.check();
  });
  CHECK(stat(t.stats, "host1.nic.resp", "naks") == 1);
  CHECK(stat(t.stats, "host1.nic.resp", "placed_bytes") == 0);
  CHECK(stat(t.stats, "host1.nic.mr", "lookups") == want_lookups);
  t.report();
}
}  // namespace

TEST_CASE("write_len_mismatch.short_payload", "[security][length]") {
  write_len_refused(  // 64 bytes of a 100-byte WRITE ONLY
      [](QpBench& t) {
        return std::make_pair(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 100, 0, 100), size_t(64));
      },
      1);
}
TEST_CASE("write_len_mismatch.long_payload", "[security][length]") {
  write_len_refused(  // 100 bytes in a 64-byte WRITE ONLY
      [](QpBench& t) {
        return std::make_pair(t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 100, 0, 64), size_t(100));
      },
      1);
}
TEST_CASE("write_len_mismatch.zero_length_reth", "[security][length]") {
  // A DMA length of 0 skips the rkey check (IBA: no memory is touched) ... so a payload with it
  // must be refused: here with a key that names nothing at all.
  write_len_refused(
      [](QpBench& t) {
        wire::TransportHeader h = t.write_req(Opcode::RC_RDMA_WRITE_ONLY, 100, 0, 0);
        h.reth_rkey = 0;
        return std::make_pair(h, size_t(64));
      },
      0);
}
TEST_CASE("write_len_mismatch.first_is_all", "[security][length]") {
  // A FIRST of one MTU (4096) for a 4096-byte WRITE: nothing would be left for its LAST.
  write_len_refused(
      [](QpBench& t) {
        return std::make_pair(t.write_req(Opcode::RC_RDMA_WRITE_FIRST, 100, 0, 4096), size_t(4096));
      },
      1);
}

// Row 15, READ: a DMA length over 2 GiB (the largest message) is an invalid request, refused
// before any translation.
TEST_CASE("read_len_over_2gib", "[security][length]") {
  QpBench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& d = t.dut();
    MemGuard g(t);
    g.take();
    wire::TransportHeader h = QpBench::req(Opcode::RC_RDMA_READ_REQUEST, 100);
    h.reth_va = d.buf;
    h.reth_rkey = d.mr.rkey;
    h.reth_len = 0x80000001u;
    t.inject(h);
    t.wait(5 * kUs);
    expect_one_ack(t, wire::kAethSynNakInvReq, 100);
    t.expect(t.dut_state() == dev::QpState::ERR, "QP not in ERR");
    g.check();
  });
  CHECK(stat(t.stats, "host1.nic.resp", "read_bytes") == 0);
  CHECK(stat(t.stats, "host1.nic.mr", "lookups") == 0);
  t.report();
}

// Row 16: responses for requests never sent (a READ response, an atomic acknowledgement, an ACK
// of a PSN never used) are discarded and counted; the QP carries on in RTS, nothing is placed.
TEST_CASE("ghost_responses", "[security][response]") {
  QpBench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& d = t.dut();
    MemGuard g(t);
    g.take();
    t.inject(response(Opcode::RC_RDMA_READ_RESPONSE_ONLY, 100), bytes(256, 1));
    wire::TransportHeader aa = response(Opcode::RC_ATOMIC_ACKNOWLEDGE, 100);
    aa.atomic_ack_orig = 0x1122334455667788ull;
    t.inject(aa);
    t.inject(QpBench::ack(100));
    t.wait(5 * kUs);
    t.expect(t.probe.sent.empty(), "the DUT answered:" + t.wire_log());
    t.expect(t.dut_state() == dev::QpState::RTS, "QP left RTS");
    drv::Wc wc[4];
    t.expect(d.d->poll_cq(d.scq, 4, wc) == 0, "a CQE for nothing posted");
    g.check();
  });
  CHECK(stat(t.stats, "host1.nic.req", "ghost_responses") == 2);
  CHECK(stat(t.stats, "host1.nic.req", "stale_acks") == 1);
  CHECK(stat(t.stats, "host1.nic.req", "read_responses") == 0);
  t.report();
}

// Row 16: a READ response longer than the READ asked for must not overflow its buffer: the READ
// completes with BAD_RESP_ERR (vendor_err: the response's opcode), nothing is placed.
TEST_CASE("read_response_too_long", "[security][response]") {
  QpBench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& d = t.dut();
    MemGuard g(t);
    g.take();
    t.post(d, WrOpcode::RDMA_READ, 5, 0, 100, drv::kSendSignaled);  // PSN 100, into [0, 100)
    t.wait(3 * kUs);
    t.expect(t.probe.sent.size() == 1 &&
                 t.probe.sent[0].h.opcode == wire::to_u8(Opcode::RC_RDMA_READ_REQUEST),
             "the READ request:" + t.wire_log());
    t.inject(response(Opcode::RC_RDMA_READ_RESPONSE_ONLY, 100), bytes(4096, 3));
    auto w = t.poll(d, d.scq, 1);
    t.expect(w.size() == 1 && w[0].wr_id == 5 && w[0].status == WcStatus::BAD_RESP_ERR &&
                 w[0].vendor_err == wire::to_u8(Opcode::RC_RDMA_READ_RESPONSE_ONLY),
             w.empty() ? "no CQE" : wc_str(w[0]));
    t.wait(3 * kUs);
    t.expect(t.dut_state() == dev::QpState::ERR, "QP not in ERR");
    g.check();
  });
  CHECK(stat(t.stats, "host1.nic.req", "read_responses") == 0);
  t.report();
}

// Row 1 on UC: a forged rkey has no NAK in UC. The message is dropped silently and counted, the
// QP stays in RTS, nothing is placed.
TEST_CASE("uc_forged_rkey", "[security][rkey][uc]") {
  QpBench t;
  t.qp_type = dev::QpType::UC;
  t.run([&] {
    if (!t.setup()) return;
    Peer& d = t.dut();
    MemGuard g(t);
    g.take();
    wire::TransportHeader h = t.write_req(Opcode::UC_RDMA_WRITE_ONLY, 100, 0, 64);
    h.ack_req = false;
    h.reth_rkey = (d.mr.rkey & ~0xFFu) | ((d.mr.rkey + 1) & 0xFFu);  // same index, other variant
    t.inject(h, bytes(64, 1));
    t.wait(5 * kUs);
    t.expect(t.probe.sent.empty(), "the DUT answered:" + t.wire_log());
    t.expect(t.dut_state() == dev::QpState::RTS, "QP left RTS");
    g.check();
  });
  CHECK(stat(t.stats, "host1.nic.resp", "uc_dropped") == 1);
  CHECK(stat(t.stats, "host1.nic.mr", "faults_bad_key") == 1);
  CHECK(stat(t.stats, "host1.nic.resp", "placed_bytes") == 0);
  t.report();
}

// A UD datagram with another Q_Key than the QP's: dropped silently and counted; the receive WQE
// posted stays for the next datagram (no CQE), nothing is placed.
TEST_CASE("ud_wrong_qkey", "[security][qkey][ud]") {
  QpBench t;
  t.qp_type = dev::QpType::UD;
  t.run([&] {
    if (!t.setup()) return;
    Peer& d = t.dut();
    t.recv(d, 1, 0, 1000);
    t.wait(2 * kUs);  // the doorbell reaches the NIC
    MemGuard g(t);
    g.take();
    wire::TransportHeader h = QpBench::req(Opcode::UD_SEND_ONLY, 1, false);
    h.deth_qkey = t.qkey ^ 1;
    h.deth_src_qp = t.a.qp->qpn;
    t.inject(h, bytes(64, 1));
    t.wait(5 * kUs);
    drv::Wc wc[2];
    t.expect(d.d->poll_cq(d.rcq, 2, wc) == 0, "a receive CQE for a datagram of another Q_Key");
    t.expect(t.probe.sent.empty(), "the DUT answered:" + t.wire_log());
    t.expect(t.dut_state() == dev::QpState::RTS, "QP left RTS");
    g.check();
  });
  CHECK(stat(t.stats, "host1.nic.resp", "ud_qkey_drops") == 1);
  CHECK(stat(t.stats, "host1.nic.resp", "placed_bytes") == 0);
  t.report();
}
