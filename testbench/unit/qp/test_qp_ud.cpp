// UD (unreliable datagram) QPs at the NIC core, with the frame injector (qp_bench.h): the
// datagram on the wire (one SEND_ONLY with a DETH: Q_Key and source QP), the Q_Key rule, the
// GRH area and the CQE of a datagram received, and what the NIC refuses.
#include "testbench/unit/qp/qp_bench.h"

using namespace rn;
using namespace rn::test;
using wire::Opcode;

namespace {
using A = dev::QpAttr;

// A UD datagram from "host 0" (peer a's QP) for the DUT: Q_Key qkey, with or without immediate.
wire::TransportHeader ud_send(QpBench& t, uint32_t psn, uint32_t qkey, bool imm = false) {
  wire::TransportHeader h =
      QpBench::req(imm ? Opcode::UD_SEND_ONLY_WITH_IMMEDIATE : Opcode::UD_SEND_ONLY, psn, false);
  h.deth_qkey = qkey;
  h.deth_src_qp = t.a.qp->qpn;
  return h;
}

// Writes a send WQE into the DUT's ring by hand and rings its doorbell: what a driver that
// skipped its own checks would post (the NIC must refuse it itself).
void raw_post(Peer& p, const dev::SendWqe& h, const dev::UdSeg& u, const dev::Sge& s) {
  drv::Qp& q = *p.qp;
  uint8_t buf[dev::kSendWqeMaxBytes] = {};
  std::memcpy(buf, &h, sizeof h);
  std::memcpy(buf + sizeof h, &u, sizeof u);
  std::memcpy(buf + sizeof h + sizeof u, &s, sizeof s);
  const uint64_t slot = q.sq + (uint64_t(q.sq_pi & (q.sq_size - 1)) << q.sq_shift);
  p.d->io().mem_write(slot, buf, size_t(1) << q.sq_shift);
  ++q.sq_pi;
  p.d->io().mmio_write32(dev::kQpDbBase + dev::kQpDbStride * q.qpn + dev::reg::QP_DOORBELL_SQ_WORD,
                         dev::QpDoorbellBits{q.sq_pi}.pack());
}
}  // namespace

TEST_CASE("A UD SEND leaves as one SEND_ONLY with a DETH and completes when sent", "[qp][ud]") {
  QpBench t;
  t.qp_type = dev::QpType::UD;
  t.run([&] {
    if (!t.setup()) return;
    t.fill(t.dut(), 0, 4096, 3);
    t.post(t.dut(), WrOpcode::SEND, 1, 0, 300, drv::kSendSignaled);
    t.post(t.dut(), WrOpcode::SEND_WITH_IMM, 2, 1000, 4096, drv::kSendSignaled, 0xABCD);
    auto w = t.poll(t.dut(), t.dut().scq, 2);
    t.expect(w.size() == 2, fmt::format("{} send CQEs of 2", w.size()));
    for (size_t i = 0; i < w.size(); ++i)
      t.expect(w[i].status == WcStatus::SUCCESS && w[i].wr_id == i + 1, wc_str(w[i]));
    t.wait(2 * kUs);
    const auto& s = t.probe.sent;
    t.expect(s.size() == 2, "two datagrams expected:" + t.wire_log());
    if (s.size() != 2) return;
    t.expect(s[0].h.opcode == 0x64 && s[1].h.opcode == 0x65, "opcodes:" + t.wire_log());
    for (const Sent& x : s) {
      t.expect(x.h.dest_qp == t.a.qp->qpn, fmt::format("DestQP {}", x.h.dest_qp));
      t.expect(x.h.deth_qkey == 0x11111111, fmt::format("Q_Key {:#x}", x.h.deth_qkey));
      t.expect(x.h.deth_src_qp == t.dut().qp->qpn, fmt::format("SrcQP {}", x.h.deth_src_qp));
      t.expect(!x.h.ack_req, "AckReq set on a datagram");
    }
    t.expect(s[0].payload == Bench::mem(t.dut(), 0, 300), "first payload");
    t.expect(s[1].payload == Bench::mem(t.dut(), 1000, 4096) && s[1].h.imm == 0xABCD,
             "second payload (a whole MTU) or its immediate");
  });
  CHECK(stat(t.stats, "host1.nic.req", "acks") == 0);
  t.report();
}

TEST_CASE("A UD WR whose Q_Key has bit 31 set sends the QP's own Q_Key", "[qp][ud]") {
  QpBench t;
  t.qp_type = dev::QpType::UD;
  t.qkey = 0x00C0FFEE;
  t.run([&] {
    if (!t.setup()) return;
    t.wr_qkey = 0x80001234;  // bit 31: the QP's
    t.post(t.dut(), WrOpcode::SEND, 1, 0, 8, drv::kSendSignaled);
    t.wr_qkey = 0x7FFF0001;  // sent as it is
    t.post(t.dut(), WrOpcode::SEND, 2, 0, 8, drv::kSendSignaled);
    t.poll(t.dut(), t.dut().scq, 2);
    t.wait(2 * kUs);
    const auto& s = t.probe.sent;
    t.expect(s.size() == 2, "two datagrams expected:" + t.wire_log());
    if (s.size() == 2) {
      t.expect(s[0].h.deth_qkey == 0x00C0FFEE, fmt::format("first Q_Key {:#x}", s[0].h.deth_qkey));
      t.expect(s[1].h.deth_qkey == 0x7FFF0001, fmt::format("second Q_Key {:#x}", s[1].h.deth_qkey));
    }
    dev::QueryQpOut qq{};
    t.dut().d->query_qp(t.dut().qp, &qq);
    t.expect(qq.qkey == 0x00C0FFEE && qq.qp_type == static_cast<uint8_t>(dev::QpType::UD),
             fmt::format("QUERY_QP qkey {:#x} type {}", qq.qkey, qq.qp_type));
  });
  t.report();
}

TEST_CASE("A UD datagram lands behind its 40-byte GRH area, its CQE names the source QP",
          "[qp][ud]") {
  QpBench t;
  t.qp_type = dev::QpType::UD;
  t.run([&] {
    if (!t.setup()) return;
    t.recv(t.dut(), 7, 0, 1000);
    t.wait(2 * kUs);                                               // the doorbell reaches the NIC
    wire::TransportHeader h = ud_send(t, 5555, 0x11111111, true);  // any PSN is taken
    h.imm = 0x1234;
    t.inject(h, bytes(201, 9));
    auto r = t.poll(t.dut(), t.dut().rcq, 1);
    t.expect(r.size() == 1, "no receive CQE");
    if (r.size() == 1) {
      const drv::Wc& w = r[0];
      t.expect(w.status == WcStatus::SUCCESS && w.wr_id == 7 && w.opcode == WcOpcode::RECV &&
                   w.byte_len == 241 && w.src_qp == t.a.qp->qpn && w.imm_data == 0x1234 &&
                   (w.wc_flags & drv::kWcGrh) && (w.wc_flags & drv::kWcWithImm),
               wc_str(w));
    }
    t.wait(2 * kUs);
    t.expect(t.untouched(t.dut(), 0, 20), "the GRH area's first 20 bytes were written");
    const auto ip = Bench::mem(t.dut(), 20, 20);
    uint32_t src = 0, dst = 0;
    for (int i = 0; i < 4; ++i) {
      src = src << 8 | ip[12 + i];
      dst = dst << 8 | ip[16 + i];
    }
    t.expect(ip[0] == 0x45 && ip[9] == 17 && src == t.a.n->ipv4 && dst == t.dut().n->ipv4 &&
                 (ip[2] << 8 | ip[3]) == 20 + 8 + 12 + 8 + 4 + 201 + 3 + 4 &&
                 wire::ipv4_header_checksum(ip.data()) == (ip[10] << 8 | ip[11]),
             "bytes 20..39 are not the packet's IPv4 header");
    t.expect(Bench::mem(t.dut(), 40, 201) == bytes(201, 9), "payload not at byte 40");
    t.expect(t.untouched(t.dut(), 241, 100), "written past the datagram");
    t.expect(t.probe.sent.empty(), "a UD receive answered on the wire:" + t.wire_log());
  });
  t.report();
}

TEST_CASE("A UD datagram with a wrong Q_Key is dropped and counted", "[qp][ud]") {
  QpBench t;
  t.qp_type = dev::QpType::UD;
  t.run([&] {
    if (!t.setup()) return;
    t.recv(t.dut(), 1, 0, 1000);
    t.inject(ud_send(t, 1, 0x11111112), bytes(64, 1));
    t.wait(3 * kUs);
    t.inject(ud_send(t, 2, 0x11111111), bytes(64, 2));
    auto r = t.poll(t.dut(), t.dut().rcq, 2);
    t.expect(r.size() == 1 && r[0].wr_id == 1 && r[0].byte_len == 104,
             fmt::format("{} receive CQEs of 1", r.size()));
    t.wait(2 * kUs);
    t.expect(Bench::mem(t.dut(), 40, 64) == bytes(64, 2), "the good datagram's payload");
    t.expect(t.probe.sent.empty(), "something sent:" + t.wire_log());
    t.expect(t.dut_state() == dev::QpState::RTS, "QP left RTS");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "ud_qkey_drops") == 1);
  t.report();
}

TEST_CASE("A UD datagram with no receive WQE is dropped without RNR NAK", "[qp][ud]") {
  QpBench t;
  t.qp_type = dev::QpType::UD;
  t.run([&] {
    if (!t.setup()) return;
    t.inject(ud_send(t, 1, 0x11111111), bytes(64, 1));
    t.wait(3 * kUs);
    t.recv(t.dut(), 1, 0, 1000);
    t.wait(2 * kUs);  // the doorbell reaches the NIC
    t.inject(ud_send(t, 2, 0x11111111), bytes(64, 2));
    auto r = t.poll(t.dut(), t.dut().rcq, 2);
    t.expect(r.size() == 1, fmt::format("{} receive CQEs of 1", r.size()));
    t.wait(2 * kUs);
    t.expect(Bench::mem(t.dut(), 40, 64) == bytes(64, 2), "the second datagram's payload");
    t.expect(t.probe.sent.empty(), "something sent (NAK?):" + t.wire_log());
  });
  CHECK(stat(t.stats, "host1.nic.resp", "ud_no_wqe_drops") == 1);
  CHECK(stat(t.stats, "host1.nic.resp", "rnr_naks") == 0);
  t.report();
}

TEST_CASE("A UD receive buffer shorter than the datagram and 40 completes with LOC_LEN_ERR",
          "[qp][ud]") {
  QpBench t;
  t.qp_type = dev::QpType::UD;
  t.run([&] {
    if (!t.setup()) return;
    t.recv(t.dut(), 1, 0, 100);  // 64 + 40 > 100
    t.recv(t.dut(), 2, 1000, 104);
    t.wait(2 * kUs);  // the doorbells reach the NIC
    t.inject(ud_send(t, 1, 0x11111111), bytes(64, 1));
    t.wait(2 * kUs);
    t.inject(ud_send(t, 2, 0x11111111), bytes(64, 2));
    auto r = t.poll(t.dut(), t.dut().rcq, 2);
    t.expect(r.size() == 2, fmt::format("{} receive CQEs of 2", r.size()));
    if (r.size() == 2) {
      t.expect(r[0].wr_id == 1 && r[0].status == WcStatus::LOC_LEN_ERR, wc_str(r[0]));
      t.expect(r[1].wr_id == 2 && r[1].status == WcStatus::SUCCESS && r[1].byte_len == 104,
               wc_str(r[1]));
    }
    t.wait(2 * kUs);
    t.expect(t.untouched(t.dut(), 0, 100), "the short buffer was written");
    t.expect(Bench::mem(t.dut(), 1040, 64) == bytes(64, 2), "the second datagram's payload");
    t.expect(t.dut_state() == dev::QpState::RTS, "QP left RTS");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "ud_dropped") == 1);
  t.report();
}

TEST_CASE("A UD SEND longer than the MTU fails with LOC_LEN_ERR, the QP to SQE and back",
          "[qp][ud]") {
  QpBench t;
  t.qp_type = dev::QpType::UD;
  t.run([&] {
    if (!t.setup()) return;
    t.fill(t.dut(), 0, 8192, 5);
    t.post(t.dut(), WrOpcode::SEND, 1, 0, 4097, drv::kSendSignaled);
    t.post(t.dut(), WrOpcode::SEND, 2, 0, 64, drv::kSendSignaled);
    auto w = t.poll(t.dut(), t.dut().scq, 2);
    t.expect(w.size() == 2 && w[0].status == WcStatus::LOC_LEN_ERR && w[0].vendor_err == 8 &&
                 w[1].status == WcStatus::WR_FLUSH_ERR,
             w.size() == 2 ? wc_str(w[0]) + " / " + wc_str(w[1]) : "CQEs missing");
    t.expect(t.dut_state() == dev::QpState::SQE, "not in SQE");
    t.wait(2 * kUs);
    t.expect(t.probe.sent.empty(), "something sent:" + t.wire_log());
    drv::QpAttr at;
    at.qp_state = dev::QpState::RTS;
    t.expect(t.dut().d->modify_qp(t.dut().qp, at, mask({A::STATE})) == 0,
             "SQE -> RTS: " + t.dut().d->last_error());
    t.post(t.dut(), WrOpcode::SEND, 3, 0, 4096, drv::kSendSignaled);
    w = t.poll(t.dut(), t.dut().scq, 1);
    t.expect(w.size() == 1 && w[0].status == WcStatus::SUCCESS && w[0].wr_id == 3,
             w.empty() ? "no CQE" : wc_str(w[0]));
    t.wait(2 * kUs);
    t.expect(t.probe.sent.size() == 1 && t.probe.sent[0].payload == Bench::mem(t.dut(), 0, 4096),
             "the MTU-sized datagram:" + t.wire_log());
  });
  t.report();
}

TEST_CASE("A WRITE on a UD QP is refused by the driver, and by the NIC with LOC_QP_OP_ERR",
          "[qp][ud]") {
  QpBench t;
  t.qp_type = dev::QpType::UD;
  t.run([&] {
    if (!t.setup()) return;
    const int e = t.post(t.dut(), WrOpcode::RDMA_WRITE, 1, 0, 64, drv::kSendSignaled);
    t.expect(e == EINVAL && t.dut().d->last_error().find("UD") != std::string::npos,
             fmt::format("post_send: {} {}", e, t.dut().d->last_error()));
    // A WR without an address handle: refused too.
    drv::Sge sg{t.dut().buf, 8, t.dut().mr.lkey};
    drv::SendWr wr;
    wr.sg_list = &sg;
    wr.num_sge = 1;
    wr.opcode = WrOpcode::SEND;
    const drv::SendWr* bad = nullptr;
    t.expect(t.dut().d->post_send(t.dut().qp, &wr, &bad) == EINVAL && bad == &wr,
             "a UD SEND without an address handle was taken");
    // Past the driver, the NIC refuses a WRITE itself.
    dev::SendWqe h{};
    h.opcode = static_cast<uint8_t>(WrOpcode::RDMA_WRITE);
    h.flags = static_cast<uint8_t>(dev::WqeFlags::SIGNALED);
    h.num_sge = 1;
    h.wr_id = 9;
    dev::UdSeg u{};
    std::memcpy(u.dest_mac, t.a.n->mac.data(), 6);
    u.dest_ipv4 = t.a.n->ipv4;
    u.remote_qpn = t.a.qp->qpn;
    raw_post(t.dut(), h, u, dev::Sge{t.dut().buf, 64, t.dut().mr.lkey});
    auto w = t.poll(t.dut(), t.dut().scq, 1);
    t.expect(w.size() == 1 && w[0].wr_id == 9 && w[0].status == WcStatus::LOC_QP_OP_ERR,
             w.empty() ? "no CQE" : wc_str(w[0]));
    t.expect(t.dut_state() == dev::QpState::SQE, "not in SQE");
    t.wait(2 * kUs);
    t.expect(t.probe.sent.empty(), "something sent:" + t.wire_log());
  });
  t.report();
}

TEST_CASE("UD QPs follow UD's transition table: Q_Key to INIT, no address vector", "[qp][ud]") {
  QpBench t;
  t.run([&] {
    if (!t.create()) return;  // both QPs RC, in RESET
    drv::Driver& d = *t.dut().d;
    drv::QpCap cap;
    cap.qp_type = dev::QpType::UD;
    drv::Qp* q = nullptr;
    if (d.create_qp(t.dut().pdn, t.dut().scq, t.dut().rcq, cap, false, &q)) {
      t.expect(false, "create_qp UD: " + d.last_error());
      return;
    }
    drv::QpAttr at;
    at.qp_state = dev::QpState::INIT;
    at.qkey = 0x42;
    t.expect(d.modify_qp(q, at, mask({A::STATE, A::PKEY_INDEX, A::PORT})) != 0 &&
                 d.last_status() == dev::CmdStatus::BAD_STATE,
             "RESET -> INIT without QKEY accepted");
    t.expect(
        d.modify_qp(q, at, mask({A::STATE, A::PKEY_INDEX, A::PORT, A::ACCESS_FLAGS, A::QKEY})) != 0,
        "RESET -> INIT with ACCESS_FLAGS accepted");
    t.expect(d.modify_qp(q, at, mask({A::STATE, A::PKEY_INDEX, A::PORT, A::QKEY})) == 0,
             "RESET -> INIT: " + d.last_error());
    at.qp_state = dev::QpState::RTR;
    at.ah.dest_ipv4 = t.a.n->ipv4;
    t.expect(d.modify_qp(q, at, mask({A::STATE, A::AV})) != 0, "INIT -> RTR with AV accepted");
    t.expect(d.modify_qp(q, at, mask({A::STATE})) == 0, "INIT -> RTR: " + d.last_error());
    at.qp_state = dev::QpState::RTS;
    t.expect(d.modify_qp(q, at, mask({A::STATE})) != 0, "RTR -> RTS without SQ_PSN accepted");
    at.qkey = 0x43;
    t.expect(d.modify_qp(q, at, mask({A::STATE, A::SQ_PSN, A::QKEY})) == 0,
             "RTR -> RTS: " + d.last_error());
    dev::QueryQpOut qq{};
    d.query_qp(q, &qq);
    t.expect(qq.qkey == 0x43 && qq.qp_state == static_cast<uint8_t>(dev::QpState::RTS),
             fmt::format("QUERY_QP qkey {:#x} state {}", qq.qkey, qq.qp_state));
    // An RC QP has no Q_Key.
    at = drv::QpAttr{};
    at.qp_state = dev::QpState::INIT;
    t.expect(
        t.a.d->modify_qp(t.a.qp, at,
                         mask({A::STATE, A::PKEY_INDEX, A::PORT, A::ACCESS_FLAGS, A::QKEY})) != 0,
        "an RC QP took a Q_Key");
  });
  t.report();
}
