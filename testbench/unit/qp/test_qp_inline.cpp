// The NIC core with a frame injector (qp_bench.h), device interface v2: inline payloads and WQEs
// that come with their doorbell. Judged on the wire (the probe), by the requester's and the PCIe
// bridge's counters (no payload read, no WQE fetch) and by the completions.
#include "testbench/unit/qp/qp_bench.h"

using namespace rn;
using namespace rn::test;
using wire::Opcode;

namespace {
constexpr const char* kReq = "host1.nic.req";
constexpr const char* kPcie = "host1.pcie";

// The send completion of wr_id on the DUT, after ACKing PSN `psn`.
void ack_and_complete(QpBench& t, uint32_t psn, uint64_t wr_id) {
  t.inject(QpBench::ack(psn));
  auto s = t.poll(t.dut(), t.dut().scq, 1);
  t.expect(s.size() == 1 && s[0].status == dev::WcStatus::SUCCESS && s[0].wr_id == wr_id,
           s.empty() ? "no send CQE" : "send CQE: " + wc_str(s[0]));
}
}  // namespace

TEST_CASE("An inline SEND's payload on the wire is the WQE's bytes, read by no DMA", "[inline]") {
  QpBench t;
  t.max_inline_data = 256;
  const auto data = bytes(200, 5);
  t.run([&] {
    if (!t.setup()) return;
    t.expect(t.dut().qp->max_inline_data >= 200, "the QP takes 200 inline bytes");
    t.dut().h->app_write(t.dut().buf, data.data(), data.size());
    const uint64_t reads0 = t.stat_now(kPcie, "dma_reads");
    t.expect(t.post_inline(t.dut(), WrOpcode::SEND, 1, 0, 200) == 0,
             "post_send: " + t.dut().d->last_error());
    // The buffer may be reused at once: the payload was copied into the WQE at post time.
    const auto other = bytes(200, 99);
    t.dut().h->app_write(t.dut().buf, other.data(), other.size());
    t.wait(3 * kUs);
    const auto& s = t.probe.sent;
    t.expect(
        s.size() == 1 && s[0].h.opcode == wire::to_u8(Opcode::RC_SEND_ONLY) && s[0].h.psn == 100,
        "one SEND_ONLY expected:" + t.wire_log());
    if (!s.empty()) t.expect(s[0].payload == data, "the wire's payload is not the WQE's bytes");
    // Neither the WQE (it came with its doorbell) nor the payload (inline) was read by DMA.
    t.expect(t.stat_now(kPcie, "dma_reads") == reads0, "a DMA read happened");
    ack_and_complete(t, 100, 1);
  });
  CHECK(stat(t.stats, kReq, "inline_wqes") == 1);
  CHECK(stat(t.stats, kReq, "wqes_with_doorbell") == 1);
  CHECK(stat(t.stats, kReq, "wqe_fetches") == 0);
  CHECK(stat(t.stats, kReq, "local_errors") == 0);
  t.report();
}

TEST_CASE("An inline WRITE over two packets carries the WQE's bytes in each", "[inline]") {
  QpBench t;
  t.max_inline_data = 480;
  t.attr.path_mtu = dev::Mtu::MTU_256;
  const auto data = bytes(480, 17);
  t.run([&] {
    if (!t.setup()) return;
    t.dut().h->app_write(t.dut().buf + 1000, data.data(), data.size());
    // Gathered from three SGEs, with immediate: WRITE_FIRST (256 B), WRITE_LAST_WITH_IMM (224 B).
    t.expect(t.post_inline(t.dut(), WrOpcode::RDMA_WRITE_WITH_IMM, 2, 1000, 480, drv::kSendSignaled,
                           0xABCD, 64, 3) == 0,
             "post_send: " + t.dut().d->last_error());
    t.wait(3 * kUs);
    const auto& s = t.probe.sent;
    t.expect(s.size() == 2, "two packets expected:" + t.wire_log());
    if (s.size() == 2) {
      t.expect(s[0].h.opcode == wire::to_u8(Opcode::RC_RDMA_WRITE_FIRST) &&
                   s[0].h.reth_len == 480 && s[0].h.reth_va == t.a.buf + 64,
               "WRITE_FIRST with the RETH expected:" + t.wire_log());
      t.expect(s[1].h.opcode == wire::to_u8(Opcode::RC_RDMA_WRITE_LAST_WITH_IMMEDIATE) &&
                   s[1].h.imm == 0xABCD,
               "WRITE_LAST_WITH_IMMEDIATE expected:" + t.wire_log());
      std::vector<uint8_t> got = s[0].payload;
      got.insert(got.end(), s[1].payload.begin(), s[1].payload.end());
      t.expect(got == data, "the packets' payload is not the WQE's bytes");
    }
    ack_and_complete(t, 101, 2);
  });
  CHECK(stat(t.stats, kReq, "inline_wqes") == 1);
  t.report();
}

TEST_CASE("A WQE written with its doorbell is not fetched, a chain of two is", "[doorbell]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    t.fill(t.dut(), 0, 4096, 3);
    t.expect(t.post(t.dut(), WrOpcode::RDMA_WRITE, 1, 0, 1000, drv::kSendSignaled) == 0,
             "post_send: " + t.dut().d->last_error());
    t.wait(3 * kUs);
    t.expect(t.stat_now(kReq, "wqes_with_doorbell") == 1 && t.stat_now(kReq, "wqe_fetches") == 0,
             "the lone WQE was fetched");
    ack_and_complete(t, 100, 1);
    // Two WQEs in one call: one 4-byte doorbell, one fetch of both.
    drv::Sge sg[2] = {{t.dut().buf, 100, t.dut().mr.lkey},
                      {t.dut().buf + 100, 100, t.dut().mr.lkey}};
    drv::SendWr wr[2];
    for (int i = 0; i < 2; ++i) {
      wr[i].wr_id = 2 + i;
      wr[i].sg_list = &sg[i];
      wr[i].num_sge = 1;
      wr[i].opcode = WrOpcode::RDMA_WRITE;
      wr[i].send_flags = drv::kSendSignaled;
      wr[i].remote_addr = t.a.buf;
      wr[i].rkey = 1;
    }
    wr[0].next = &wr[1];
    const drv::SendWr* bad = nullptr;
    t.expect(t.dut().d->post_send(t.dut().qp, wr, &bad) == 0, "post_send of two");
    t.wait(3 * kUs);
    t.expect(t.stat_now(kReq, "wqe_fetches") == 1 && t.stat_now(kReq, "wqes_fetched") == 2,
             "the chain of two was not fetched at once");
    t.inject(QpBench::ack(102));
    auto s = t.poll(t.dut(), t.dut().scq, 2);
    t.expect(s.size() == 2 && s[0].wr_id == 2 && s[1].wr_id == 3, "two CQEs");
    t.expect(t.probe.sent.size() == 3, "three packets:" + t.wire_log());
  });
  CHECK(stat(t.stats, "host1.nic.dev", "wqe_doorbells") == 1);
  CHECK(stat(t.stats, kReq, "wqe_doorbell_fallbacks") == 0);
  t.report();
}

TEST_CASE("A WQE doorbell out of step is a doorbell: its WQE is fetched, in order", "[doorbell]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    t.fill(t.dut(), 0, 4096, 4);
    auto& d = *t.dut().d;
    drv::Qp* qp = t.dut().qp;
    // A chain of two (a 4-byte doorbell: their fetch is in flight), then one alone at once: its
    // WQE doorbell arrives while the cache is not in step.
    drv::Sge sg[3];
    drv::SendWr wr[3];
    for (int i = 0; i < 3; ++i) {
      sg[i] = drv::Sge{t.dut().buf + 300u * i, 300, t.dut().mr.lkey};
      wr[i].wr_id = 10 + i;
      wr[i].sg_list = &sg[i];
      wr[i].num_sge = 1;
      wr[i].opcode = WrOpcode::SEND;
      wr[i].send_flags = drv::kSendSignaled;
    }
    wr[0].next = &wr[1];
    const drv::SendWr* bad = nullptr;
    t.expect(d.post_send(qp, &wr[0], &bad) == 0 && d.post_send(qp, &wr[2], &bad) == 0, "posts");
    // A WQE doorbell that skips an index (a WQE in the ring, never rung): the doorbell covers
    // both, and both are fetched.
    t.wait(3 * kUs);
    t.inject(QpBench::ack(102));
    auto s = t.poll(t.dut(), t.dut().scq, 3);
    t.expect(s.size() == 3, "three CQEs");
    const uint32_t pi = qp->sq_pi;
    for (uint32_t k = 0; k < 2; ++k) {
      dev::SendWqe h{};
      h.opcode = static_cast<uint8_t>(WrOpcode::SEND);
      h.flags = static_cast<uint8_t>(dev::WqeFlags::SIGNALED);
      h.num_sge = 1;
      h.wr_id = 20 + k;
      h.wqe_index = static_cast<uint16_t>(pi + k);
      uint8_t w[64] = {};
      std::memcpy(w, &h, sizeof h);
      const dev::Sge g{t.dut().buf + 1000u * k, 50, t.dut().mr.lkey};
      std::memcpy(w + sizeof h, &g, sizeof g);
      t.dut().h->mem_write(qp->sq + (uint64_t((pi + k) & (qp->sq_size - 1)) << qp->sq_shift), w,
                           sizeof w);
      if (k == 1) t.dut().h->mmio_write(dev::kWqeDbBase + dev::kWqeDbStride * qp->qpn, w, sizeof w);
    }
    qp->sq_pi += 2;
    t.wait(3 * kUs);
    t.inject(QpBench::ack(104));
    s = t.poll(t.dut(), t.dut().scq, 2);
    t.expect(s.size() == 2 && s[0].wr_id == 20 && s[1].wr_id == 21,
             "the skipped WQE and the one rung, in order");
    const auto& p = t.probe.sent;
    t.expect(p.size() == 5, "five SENDs:" + t.wire_log());
    for (size_t i = 0; i < std::min<size_t>(5, p.size()); ++i) {
      const uint64_t off = i < 3 ? 300 * i : 1000 * (i - 3);
      const uint32_t len = i < 3 ? 300 : 50;
      t.expect(p[i].h.psn == 100 + i && p[i].payload == Bench::mem(t.dut(), off, len),
               fmt::format("SEND {} out of order or with the wrong bytes", i));
    }
  });
  CHECK(stat(t.stats, kReq, "wqe_doorbell_fallbacks") == 2);
  CHECK(stat(t.stats, kReq, "wqes_with_doorbell") == 0);
  CHECK(stat(t.stats, "host1.nic.dev", "wqe_doorbells") == 2);
  t.report();
}

TEST_CASE("Going back, inline WQEs are fetched again and resent with the same bytes",
          "[inline][reliability]") {
  QpBench t;
  t.max_inline_data = 480;
  t.attr.path_mtu = dev::Mtu::MTU_256;
  const auto a = bytes(200, 29), b = bytes(400, 31);
  t.run([&] {
    if (!t.setup()) return;
    t.dut().h->app_write(t.dut().buf, a.data(), a.size());
    t.dut().h->app_write(t.dut().buf + 1000, b.data(), b.size());
    // A (one packet, with its doorbell: never fetched until the DUT goes back), then B (two
    // packets; too large to come with its doorbell).
    t.expect(t.post_inline(t.dut(), WrOpcode::SEND, 7, 0, 200) == 0 &&
                 t.post_inline(t.dut(), WrOpcode::SEND, 8, 1000, 400) == 0,
             "post_send: " + t.dut().d->last_error());
    const auto other = bytes(2000, 1);  // the buffer reused: no resend may see it
    t.dut().h->app_write(t.dut().buf, other.data(), other.size());
    t.wait(3 * kUs);
    // "100 is missing": everything again; then "102 is missing": B from its second packet.
    t.inject(QpBench::ack(100, wire::kAethSynNakPsnSeq));
    t.wait(3 * kUs);
    t.inject(QpBench::ack(102, wire::kAethSynNakPsnSeq));
    t.wait(3 * kUs);
    t.inject(QpBench::ack(102));
    auto c = t.poll(t.dut(), t.dut().scq, 2);
    t.expect(c.size() == 2 && c[0].wr_id == 7 && c[1].wr_id == 8 &&
                 c[0].status == dev::WcStatus::SUCCESS && c[1].status == dev::WcStatus::SUCCESS,
             "two successful CQEs");
    const std::vector<uint8_t> b0(b.begin(), b.begin() + 256), b1(b.begin() + 256, b.end());
    const std::vector<uint8_t>* want[] = {&a, &b0, &b1, &a, &b0, &b1, &b1};
    const uint32_t psn[] = {100, 101, 102, 100, 101, 102, 102};
    const auto& s = t.probe.sent;
    t.expect(s.size() == 7, "seven packets expected:" + t.wire_log());
    for (size_t i = 0; i < std::min<size_t>(7, s.size()); ++i)
      t.expect(
          s[i].h.psn == psn[i] && s[i].payload == *want[i],
          fmt::format("packet {} is not PSN {} with the WQE's bytes:", i, psn[i]) + t.wire_log());
  });
  CHECK(stat(t.stats, kReq, "inline_wqes") == 2);
  CHECK(stat(t.stats, kReq, "wqes_with_doorbell") == 1);
  CHECK(stat(t.stats, kReq, "wqe_fetches") >= 2);  // B's, and going back
  CHECK(stat(t.stats, kReq, "retransmitted") == 4);
  t.report();
}

namespace {
// Puts a hand-built send WQE (its header, then `body`) into the DUT's send queue and rings the
// 4-byte doorbell; returns the send CQE.
std::vector<drv::Wc> ring_wqe(QpBench& t, dev::SendWqe h, const std::vector<uint8_t>& body) {
  drv::Qp* qp = t.dut().qp;
  std::vector<uint8_t> w(size_t(1) << qp->sq_shift, 0);
  h.wqe_index = static_cast<uint16_t>(qp->sq_pi);
  std::memcpy(w.data(), &h, sizeof h);
  std::memcpy(w.data() + sizeof h, body.data(), std::min(body.size(), w.size() - sizeof h));
  t.dut().h->mem_write(qp->sq + (uint64_t(qp->sq_pi & (qp->sq_size - 1)) << qp->sq_shift), w.data(),
                       w.size());
  ++qp->sq_pi;
  t.dut().h->mmio_write32(dev::kQpDbBase + dev::kQpDbStride * qp->qpn,
                          dev::QpDoorbellBits{qp->sq_pi}.pack());
  return t.poll(t.dut(), t.dut().scq, 1);
}
}  // namespace

TEST_CASE("An inline WQE in the ring longer than its stride fails with LOC_LEN_ERR", "[inline]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;  // a 64-byte stride: 32 inline bytes
    dev::SendWqe h{};
    h.opcode = static_cast<uint8_t>(WrOpcode::SEND);
    h.flags = static_cast<uint8_t>(dev::WqeFlags::INLINE);
    h.inline_len = 33;
    auto s = ring_wqe(t, h, bytes(33, 1));
    t.expect(s.size() == 1 && s[0].status == dev::WcStatus::LOC_LEN_ERR && s[0].vendor_err == 7,
             s.empty() ? "no CQE" : wc_str(s[0]));
    t.expect(t.probe.sent.empty(), "something was sent:" + t.wire_log());
  });
  CHECK(stat(t.stats, kReq, "local_errors") == 1);
  t.report();
}

TEST_CASE("Inline data with an RDMA READ fails with LOC_QP_OP_ERR", "[inline]") {
  QpBench t;
  t.run([&] {
    if (!t.setup()) return;
    dev::SendWqe h{};
    h.opcode = static_cast<uint8_t>(WrOpcode::RDMA_READ);
    h.flags = static_cast<uint8_t>(dev::WqeFlags::INLINE);
    h.inline_len = 8;
    auto s = ring_wqe(t, h, bytes(8, 1));
    t.expect(s.size() == 1 && s[0].status == dev::WcStatus::LOC_QP_OP_ERR && s[0].vendor_err == 5,
             s.empty() ? "no CQE" : wc_str(s[0]));
    t.expect(t.probe.sent.empty(), "something was sent:" + t.wire_log());
  });
  t.report();
}
