// Inputs that were once mishandled: a driver's addresses at the top of memory, a PSN window
// smaller than a message, packets of many pieces, posts before RTS, a busy QP destroyed,
// responses nobody asked for, SEND with invalidate, registering unmapped memory, a receive
// buffer that overflows, an oversized page list, page sizes out of range or misaligned. Each
// TEST_CASE is its own simulation.
#include <fmt/core.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "model/wire/opcodes.h"
#include "model/wire/transport.h"
#include "testbench/system/device_bench.h"

using namespace rn;
using dev::WcStatus;
using dev::WrOpcode;
using test::Bench;
using test::kLW;
using test::kRW;
using test::mask;
using test::Peer;
using test::RawCommands;
using test::stat;
using test::wc_str;

namespace {

constexpr uint64_t kTop = ~uint64_t(0);  // the last byte of the 64-bit address space
constexpr uint32_t kArgs = offsetof(dev::CmdIn, args);

}  // namespace

TEST_CASE("Rings, command blocks and page lists at the top of memory work or are refused",
          "[range]") {
  Bench t;
  t.run([&] {
    Peer& a = t.a;
    RawCommands c{a};
    auto err_code = [&] {
      return static_cast<dev::RegError>(a.h->mmio_read32(dev::reg::ERR_CODE));
    };
    // A command block in the last 64 bytes: its output block would wrap to address 0.
    c.set_block(kTop - 63);
    a.h->mmio_write32(dev::reg::CMD_DOORBELL, 1);
    t.expect(err_code() == dev::RegError::ADDR_RANGE, "command block at 2^64-64: no ADDR_RANGE");
    // A command block in the last 128 bytes ends exactly at 2^64: it works.
    const uint64_t top_blk = kTop - 127;
    dev::CmdOut o = c.run(top_blk, dev::CmdOp::CREATE_PD, dev::HandleIn{});
    t.expect(o.token != 0 && o.status == 0,
             fmt::format("CREATE_PD at the top: status {}", o.status));
    dev::CreatePdOut pd{};
    std::memcpy(&pd, o.result, sizeof pd);
    const uint64_t blk = 0x10000;  // an ordinary block for the rest
    // A CQ ring ending exactly at 2^64 is fine; one 16 entries further wraps.
    dev::CreateCqIn cq{};
    cq.log_size = 5;
    cq.ring_addr = kTop - 32 * sizeof(dev::Cqe) + 1;
    o = c.run(blk, dev::CmdOp::CREATE_CQ, cq);
    t.expect(o.status == 0, fmt::format("CQ ring ending at 2^64: status {}", o.status));
    dev::CreateCqOut cqo{};
    std::memcpy(&cqo, o.result, sizeof cqo);
    cq.ring_addr = kTop - 16 * sizeof(dev::Cqe) + 1;
    o = c.run(blk, dev::CmdOp::CREATE_CQ, cq);
    t.expect(o.status == static_cast<uint8_t>(dev::CmdStatus::BAD_PARAM) &&
                 o.syndrome == kArgs + offsetof(dev::CreateCqIn, ring_addr),
             fmt::format("wrapping CQ ring: status {} syndrome {}", o.status, o.syndrome));
    // A send queue that wraps.
    dev::CreateQpIn qp{};
    qp.qp_type = static_cast<uint8_t>(dev::QpType::RC);
    qp.log_sq_size = qp.log_rq_size = 4;
    qp.sq_wqe_shift = 6;
    qp.rq_wqe_shift = 5;
    qp.pdn = pd.pdn;
    qp.send_cqn = qp.recv_cqn = cqo.cqn;
    qp.sq_addr = kTop - 8 * 64 + 1;
    qp.rq_addr = 0x20000;
    o = c.run(blk, dev::CmdOp::CREATE_QP, qp);
    t.expect(o.status == static_cast<uint8_t>(dev::CmdStatus::BAD_PARAM) &&
                 o.syndrome == kArgs + offsetof(dev::CreateQpIn, sq_addr),
             fmt::format("wrapping SQ: status {} syndrome {}", o.status, o.syndrome));
    // A page list in the last 8 bytes of memory is read; one of two entries there wraps.
    const uint64_t page = 0x30000;
    c.poke(kTop - 7, &page, 8);
    dev::CreateMrIn mr{};
    mr.pdn = pd.pdn;
    mr.access = kLW;
    mr.iova = 0x7000;
    mr.length = 4096;
    mr.n_pages = 1;
    mr.page_shift = 12;
    mr.mtt_addr = kTop - 7;
    o = c.run(blk, dev::CmdOp::CREATE_MR, mr);
    t.expect(o.status == 0, fmt::format("page list in the last 8 bytes: status {}", o.status));
    mr.length = 8192;
    mr.n_pages = 2;
    o = c.run(blk, dev::CmdOp::CREATE_MR, mr);
    t.expect(o.status == static_cast<uint8_t>(dev::CmdStatus::BAD_PARAM) &&
                 o.syndrome == kArgs + offsetof(dev::CreateMrIn, mtt_addr),
             fmt::format("wrapping page list: status {} syndrome {}", o.status, o.syndrome));
    // A region whose announced page list does not match it is refused before anything is read
    // (a 128 MiB list for a 4 KiB region).
    const uint64_t read_before = stat(t.sys->sim().stats.to_json(), "host0.pcie", "dma_read_bytes");
    mr.length = 4096;
    mr.n_pages = 1u << 24;
    mr.mtt_addr = 0x40000;
    o = c.run(blk, dev::CmdOp::CREATE_MR, mr);
    t.expect(o.status == static_cast<uint8_t>(dev::CmdStatus::BAD_PARAM) &&
                 o.syndrome == kArgs + offsetof(dev::CreateMrIn, n_pages),
             fmt::format("oversized page list: status {} syndrome {}", o.status, o.syndrome));
    const uint64_t read = stat(t.sys->sim().stats.to_json(), "host0.pcie", "dma_read_bytes");
    t.expect(read - read_before < 4096,
             fmt::format("the refused page list was read: {} bytes", read - read_before));
    // Page sizes outside 4 KiB..1 GiB, and a page list entry not aligned to its page size.
    mr.mtt_addr = kTop - 7;
    mr.n_pages = 1;
    for (uint8_t shift : {uint8_t(11), uint8_t(31), uint8_t(63)}) {
      mr.page_shift = shift;
      o = c.run(blk, dev::CmdOp::CREATE_MR, mr);
      t.expect(o.status == static_cast<uint8_t>(dev::CmdStatus::BAD_PARAM) &&
                   o.syndrome == kArgs + offsetof(dev::CreateMrIn, page_shift),
               fmt::format("page_shift {}: status {} syndrome {}", shift, o.status, o.syndrome));
    }
    mr.page_shift = 21;  // the entry (0x30000) is not aligned to 2 MiB
    mr.iova = 0x200000;
    o = c.run(blk, dev::CmdOp::CREATE_MR, mr);
    t.expect(o.status == static_cast<uint8_t>(dev::CmdStatus::BAD_PARAM) &&
                 o.syndrome == kArgs + offsetof(dev::CreateMrIn, mtt_addr),
             fmt::format("a 2 MiB page at 0x30000: status {} syndrome {}", o.status, o.syndrome));
    const uint64_t huge = 0x200000;  // aligned: taken
    c.poke(kTop - 7, &huge, 8);
    o = c.run(blk, dev::CmdOp::CREATE_MR, mr);
    t.expect(o.status == 0, fmt::format("a 2 MiB page at 0x200000: status {}", o.status));
    // An event queue whose ring would wrap.
    a.h->mmio_write32(dev::reg::EQ_ADDR_LO, static_cast<uint32_t>(kTop - 63));
    a.h->mmio_write32(dev::reg::EQ_ADDR_HI, static_cast<uint32_t>((kTop - 63) >> 32));
    a.h->mmio_write32(dev::reg::EQ_LOG_SIZE, 4);
    t.expect(err_code() == dev::RegError::ADDR_RANGE, "wrapping EQ: no ADDR_RANGE");
    // The device still works for a real driver.
    t.expect(t.setup(), "setup after the refusals");
    t.fill(t.a, 0, 4096, 3);
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 4096, drv::kSendSignaled);
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::SUCCESS, "WRITE after the refusals");
    t.a.h->cpu(2 * kUs);  // the ACK may overtake the data's DMA write at the receiver
    t.expect(t.same(t.a, 0, t.b, 0, 4096), "data after the refusals");
  });
  // The device checked every range itself: nothing reached the bridge's last line of defence.
  CHECK(stat(t.stats, "host0.pcie", "dma_errors") == 0);
  t.report();
}

TEST_CASE("A PSN window smaller than the message and than ack_req_every does not deadlock",
          "[window]") {
  // 16 packets per 64 KiB message, 15 PSNs in flight, AckReq every 1000 packets otherwise.
  Bench t({"nic.max_unacked_psn=15", "nic.ack_req_every=1000"});
  t.run([&] {
    if (!t.setup()) return;
    t.fill(t.a, 0, 65536, 11);
    for (uint64_t i = 0; i < 3; ++i)
      t.post(t.a, WrOpcode::RDMA_WRITE, i, 0, 65536, drv::kSendSignaled);
    auto s = t.poll(t.a, t.a.scq, 3);
    t.expect(s.size() == 3, fmt::format("{} of 3 completions", s.size()));
    for (const auto& w : s) t.expect(w.status == WcStatus::SUCCESS, wc_str(w));
    t.expect(t.same(t.a, 0, t.b, 0, 65536), "data");
  });
  t.report();
}

TEST_CASE("A packet gathered from 30 SGEs and scattered into 31, every piece across a page",
          "[sge]") {
  Bench t;
  constexpr int kSend = 30, kRecv = 31;
  t.run([&] {
    if (!t.setup(kLW | kRW, kLW | kRW, 16, kRecv, 256 * 1024)) return;
    t.fill(t.a, 0, 256 * 1024, 5);
    // Each piece straddles a page boundary: 60 physical segments in one 3000-byte packet.
    drv::Sge ss[kSend], rs[kRecv];
    for (int k = 0; k < kSend; ++k) ss[k] = {t.a.buf + (k + 1) * 4096 - 50, 100, t.a.mr.lkey};
    for (int k = 0; k < kRecv; ++k) rs[k] = {t.b.buf + (k + 1) * 4096 - 48, 97, t.b.mr.lkey};
    drv::RecvWr rw;
    rw.wr_id = 9;
    rw.sg_list = rs;
    rw.num_sge = kRecv;
    t.expect(t.b.d->post_recv(t.b.qp, &rw, nullptr) == 0, "post_recv: " + t.b.d->last_error());
    drv::SendWr sw;
    sw.wr_id = 8;
    sw.sg_list = ss;
    sw.num_sge = kSend;
    sw.opcode = WrOpcode::SEND;
    sw.send_flags = drv::kSendSignaled;
    t.expect(t.a.d->post_send(t.a.qp, &sw, nullptr) == 0, "post_send: " + t.a.d->last_error());
    auto s = t.poll(t.a, t.a.scq, 1);
    auto r = t.poll(t.b, t.b.rcq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::SUCCESS,
             s.empty() ? "no send CQE" : wc_str(s[0]));
    t.expect(r.size() == 1 && r[0].status == WcStatus::SUCCESS && r[0].byte_len == 3000,
             r.empty() ? "no receive CQE" : wc_str(r[0]));
    // What the receiver's pieces hold, in order, is what the sender's pieces held.
    std::vector<uint8_t> sent, got;
    for (const auto& g : ss) {
      std::vector<uint8_t> v(g.length);
      t.a.h->app_read(g.addr, v.data(), g.length);
      sent.insert(sent.end(), v.begin(), v.end());
    }
    for (const auto& g : rs) {
      std::vector<uint8_t> v(g.length);
      t.b.h->app_read(g.addr, v.data(), g.length);
      got.insert(got.end(), v.begin(), v.end());
    }
    got.resize(sent.size());
    t.expect(got == sent, "scattered bytes differ from the gathered ones");
    // A WRITE gathered from the same 30 pieces lands contiguously.
    sw.wr_id = 10;
    sw.opcode = WrOpcode::RDMA_WRITE;
    sw.remote_addr = t.b.buf + 200 * 1024;
    sw.rkey = t.b.mr.rkey;
    t.expect(t.a.d->post_send(t.a.qp, &sw, nullptr) == 0, "post_send WRITE");
    s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::SUCCESS,
             s.empty() ? "no WRITE CQE" : wc_str(s[0]));
    t.a.h->cpu(2 * kUs);  // the ACK may overtake the data's DMA write at the receiver
    std::vector<uint8_t> w(sent.size());
    t.b.h->app_read(t.b.buf + 200 * 1024, w.data(), w.size());
    t.expect(w == sent, "WRITE of 30 pieces");
  });
  t.report();
}

TEST_CASE("Posting before RTS fails with EINVAL, and nothing posted then runs later", "[state]") {
  Bench t;
  t.run([&] {
    Peer &a = t.a, &b = t.b;
    if (!t.create()) return;
    t.fill(a, 0, 8192, 1);
    auto try_post = [&](const char* state) {
      int e = t.post(a, WrOpcode::RDMA_WRITE, 66, 4096, 512, drv::kSendSignaled, 0, 0, 4096);
      t.expect(e == EINVAL, fmt::format("post_send in {}: {} ({})", state, e, a.d->last_error()));
    };
    try_post("RESET");
    t.expect(t.recv(a, 1, 0, 64) == EINVAL, "post_recv in RESET: " + a.d->last_error());
    drv::QpAttr at;
    at.qp_state = dev::QpState::INIT;
    at.qp_access_flags = kLW | kRW;
    using A = dev::QpAttr;
    a.d->modify_qp(a.qp, at, mask({A::STATE, A::PKEY_INDEX, A::PORT, A::ACCESS_FLAGS}));
    try_post("INIT");
    t.expect(t.recv(a, 1, 0, 64) == 0, "post_recv in INIT: " + a.d->last_error());
    at.qp_state = dev::QpState::RTR;
    at.dest_qp_num = b.qp->qpn;
    at.rq_psn = 100;
    at.ah.dest_ipv4 = b.n->ipv4;
    std::memcpy(at.ah.dest_mac, b.n->mac.data(), 6);
    a.d->modify_qp(a.qp, at,
                   mask({A::STATE, A::AV, A::PATH_MTU, A::DEST_QPN, A::RQ_PSN,
                         A::MAX_DEST_RD_ATOMIC, A::MIN_RNR_TIMER}));
    try_post("RTR");
    at.qp_state = dev::QpState::RTS;
    at.sq_psn = 100;
    a.d->modify_qp(
        a.qp, at,
        mask({A::STATE, A::SQ_PSN, A::TIMEOUT, A::RETRY_CNT, A::RNR_RETRY, A::MAX_QP_RD_ATOMIC}));
    if (!t.connect(b, a, kLW | kRW)) return;
    // In RTS: one WRITE, which alone completes; the refused ones never reach the peer.
    t.post(a, WrOpcode::RDMA_WRITE, 7, 0, 512, drv::kSendSignaled);
    auto s = t.poll(a, a.scq, 4);
    t.expect(s.size() == 1 && s[0].wr_id == 7 && s[0].status == WcStatus::SUCCESS,
             fmt::format("{} completions, first: {}", s.size(), s.empty() ? "-" : wc_str(s[0])));
    t.expect(t.same(a, 0, b, 0, 512), "the WRITE posted in RTS");
    t.expect(t.untouched(b, 4096, 4096), "a WRITE refused before RTS reached the peer");
  });
  t.report();
}

TEST_CASE("A busy QP destroyed: its completions never reach the QP that gets its number",
          "[destroy]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    Peer &a = t.a, &b = t.b;
    t.fill(a, 0, 65536, 2);
    // Four signaled WRITEs, never polled; the QP goes while they are in flight.
    for (uint64_t i = 1; i <= 4; ++i)
      t.post(a, WrOpcode::RDMA_WRITE, i, 0, 16384, drv::kSendSignaled);
    a.h->cpu(3 * kUs);
    const uint32_t old_qpn = a.qp->qpn;
    t.expect(a.d->destroy_qp(a.qp) == 0, "destroy_qp: " + a.d->last_error());
    a.h->cpu(20 * kUs);
    drv::QpCap cap;
    cap.max_send_wr = cap.max_recv_wr = 16;
    if (a.d->create_qp(a.pdn, a.scq, a.rcq, cap, false, &a.qp))
      return t.expect(false, "create_qp: " + a.d->last_error());
    t.expect(a.qp->qpn == old_qpn,
             fmt::format("new QPN {} (the freed {} expected)", a.qp->qpn, old_qpn));
    drv::QpAttr at;
    at.qp_state = dev::QpState::RESET;
    b.d->modify_qp(b.qp, at, mask({dev::QpAttr::STATE}));
    if (!t.connect(a, b, kLW | kRW) || !t.connect(b, a, kLW | kRW)) return;
    // Both QPs start afresh (PSNs, MSNs): the link's protocol checker forgets the old ones.
    if (net::ProtocolChecker* c = t.sys->checker()) c->forget();
    // The new QP's queue is empty: 16 posts fit, and only their completions arrive.
    for (uint64_t i = 0; i < 16; ++i) {
      int e = t.post(a, WrOpcode::RDMA_WRITE, 100 + i, 0, 256, drv::kSendSignaled);
      t.expect(e == 0, fmt::format("post {} on the new QP: {}", i, a.d->last_error()));
    }
    auto s = t.poll(a, a.scq, 20);
    t.expect(s.size() == 16, fmt::format("{} completions, 16 expected", s.size()));
    for (const auto& w : s)
      t.expect(w.wr_id >= 100 && w.status == WcStatus::SUCCESS, "stale completion: " + wc_str(w));
  });
  t.report();
}

namespace {
// Sends a hand-built request or response from host 0's NIC to host 1's QP, through the link.
void inject(Bench& t, wire::Opcode op, uint32_t psn, const std::vector<uint8_t>& payload,
            uint32_t ieth_rkey = 0) {
  wire::TransportHeader h{};
  h.opcode = wire::to_u8(op);
  h.psn = psn;
  h.ieth_rkey = ieth_rkey;
  t.inject(t.a, t.b, h, payload);
}
}  // namespace

TEST_CASE("READ responses and atomic acknowledgements nobody asked for are discarded", "[ghost]") {
  Bench t({"link.check=false"});  // hand-built frames: not what the protocol allows
  t.run([&] {
    if (!t.setup()) return;
    // Host 1's QP expects PSN 100 next: the ghosts carry exactly that PSN.
    inject(t, wire::Opcode::RC_RDMA_READ_RESPONSE_ONLY, 100, std::vector<uint8_t>(64, 0x77));
    inject(t, wire::Opcode::RC_ATOMIC_ACKNOWLEDGE, 100, {});
    t.a.h->cpu(5 * kUs);
    dev::QueryQpOut qq{};
    t.b.d->query_qp(t.b.qp, &qq);
    t.expect(qq.qp_state == static_cast<uint8_t>(dev::QpState::RTS),
             fmt::format("QP state {} after ghost responses", qq.qp_state));
    t.expect(t.untouched(t.b, 0, 65536), "a ghost response wrote memory");
    // The QPs carry on.
    t.fill(t.a, 0, 4096, 4);
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 4096, drv::kSendSignaled);
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::SUCCESS,
             s.empty() ? "no CQE" : wc_str(s[0]));
    t.a.h->cpu(2 * kUs);  // the ACK may overtake the data's DMA write at the receiver
    t.expect(t.same(t.a, 0, t.b, 0, 4096), "WRITE after ghosts");
  });
  CHECK(stat(t.stats, "host1.nic.req", "ghost_responses") == 2);
  CHECK(stat(t.stats, "host1.nic.resp", "naks") == 0);
  t.report();
}

TEST_CASE("SEND with invalidate is refused (NAK invalid request), not taken as a plain SEND",
          "[send_inv]") {
  Bench t({"link.check=false"});  // a hand-built frame (without AckReq): not the NIC's own
  t.run([&] {
    if (!t.setup()) return;
    t.recv(t.b, 5, 0, 4096);
    inject(t, wire::Opcode::RC_SEND_ONLY_WITH_INVALIDATE, 100, std::vector<uint8_t>(64, 0x55),
           t.b.mr.rkey);
    auto r = t.poll(t.b, t.b.rcq, 1);
    t.expect(r.size() == 1 && r[0].wr_id == 5 && r[0].status != WcStatus::SUCCESS,
             r.empty() ? "no receive CQE" : "receive completed: " + wc_str(r[0]));
    dev::QueryQpOut qq{};
    t.b.d->query_qp(t.b.qp, &qq);
    t.expect(qq.qp_state == static_cast<uint8_t>(dev::QpState::ERR),
             fmt::format("QP state {} after SEND with invalidate", qq.qp_state));
    t.expect(t.untouched(t.b, 0, 65536), "the refused SEND wrote memory");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "unsupported_requests") == 1);
  t.report();
}

TEST_CASE("Registering memory that is not mapped fails with EFAULT", "[reg_mr]") {
  Bench t;
  t.run([&] {
    Peer& a = t.a;
    if (a.d->open() || a.d->alloc_pd(&a.pdn)) return t.expect(false, a.d->last_error());
    drv::Mr mr;
    const uint64_t buf = a.h->alloc_buffer(8192);
    t.expect(a.d->reg_mr(a.pdn, buf, 8192, kLW, &mr) == 0, "a mapped buffer: " + a.d->last_error());
    struct Case {
      uint64_t addr, len;
      const char* what;
    };
    for (const Case& c :
         {Case{0x1000, 4096, "low memory never allocated"}, Case{0, 4096, "address 0"},
          Case{buf + 8192, 4096, "the guard page after a buffer"},
          Case{buf, 8193, "one byte past a buffer"},
          Case{buf + (1ull << 30), 4096, "application space never allocated"},
          Case{kTop - 4095, 4096, "the top of the address space"}}) {
      int e = a.d->reg_mr(a.pdn, c.addr, c.len, kLW, &mr);
      t.expect(e == EFAULT,
               fmt::format("{} ({:#x}+{}): {} ({})", c.what, c.addr, c.len, e, a.d->last_error()));
    }
  });
  t.report();
}

TEST_CASE("Frames that do not fit the receive buffer are dropped, counted and sent again",
          "[rx_buffer]") {
  // Memory that takes 50 us to take a write: at 100 Gb/s, 600 KB arrive in that time.
  Bench t({"nic.rx_buffer=16KiB", "host.mem.write_latency=50us"});
  t.attr.timeout = 4;  // 65.5 us
  t.run([&] {
    if (!t.setup()) return;
    t.fill(t.a, 0, 65536, 6);
    // Most of the message is dropped at first; sequence NAKs and the ACK timeout send it again
    // until it is all in.
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 65536, drv::kSendSignaled);
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::SUCCESS,
             s.empty() ? "no CQE" : "completion: " + wc_str(s[0]));
    t.b.h->cpu(100 * kUs);
    t.expect(t.same(t.a, 0, t.b, 0, 65536), "data");
  });
  CHECK(stat(t.stats, "host1.nic.rx_buffer", "drops") > 0);
  CHECK(stat(t.stats, "host1.nic.rx_buffer", "peak") <= 16384);
  CHECK(stat(t.stats, "host1.nic.rx_buffer", "peak") > 4096);
  CHECK(stat(t.stats, "host0.nic.req", "retransmitted") > 0);
  t.report();
}

TEST_CASE("A receive buffer large enough for what is in flight drops nothing", "[rx_buffer]") {
  // 4 us of write latency: about 50 KB in flight at 100 Gb/s.
  Bench t({"nic.rx_buffer=128KiB", "host.mem.write_latency=4us"});
  t.run([&] {
    if (!t.setup()) return;
    t.fill(t.a, 0, 65536, 6);
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 65536, drv::kSendSignaled);
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::SUCCESS,
             s.empty() ? "no CQE" : wc_str(s[0]));
    t.a.h->cpu(10 * kUs);
    t.expect(t.same(t.a, 0, t.b, 0, 65536), "data");
  });
  CHECK(stat(t.stats, "host1.nic.rx_buffer", "drops") == 0);
  CHECK(stat(t.stats, "host1.nic.rx_buffer", "peak") > 16384);
  t.report();
}

TEST_CASE("Freed QP, CQ and PD numbers are reused oldest first", "[numbers]") {
  Bench t;
  t.run([&] {
    Peer& a = t.a;
    if (a.d->open()) return t.expect(false, a.d->last_error());
    uint32_t pd[3];
    drv::Cq* cq[3];
    for (int i = 0; i < 3; ++i)
      if (a.d->alloc_pd(&pd[i]) || a.d->create_cq(8, &cq[i])) return t.expect(false, "create");
    drv::Qp* qp[3];
    for (auto& q : qp)
      if (a.d->create_qp(pd[0], cq[0], cq[0], drv::QpCap{}, false, &q))
        return t.expect(false, "create_qp");
    const uint32_t q1 = qp[1]->qpn, q0 = qp[0]->qpn, c2 = cq[2]->cqn, c1 = cq[1]->cqn;
    a.d->destroy_qp(qp[1]);
    a.d->destroy_qp(qp[0]);
    a.d->destroy_cq(cq[2]);
    a.d->destroy_cq(cq[1]);
    a.d->dealloc_pd(pd[2]);
    a.d->dealloc_pd(pd[1]);
    drv::Qp* n0 = nullptr;
    drv::Qp* n1 = nullptr;
    drv::Cq *m0 = nullptr, *m1 = nullptr;
    uint32_t p0 = 0, p1 = 0;
    a.d->create_qp(pd[0], cq[0], cq[0], drv::QpCap{}, false, &n0);
    a.d->create_qp(pd[0], cq[0], cq[0], drv::QpCap{}, false, &n1);
    a.d->create_cq(8, &m0);
    a.d->create_cq(8, &m1);
    a.d->alloc_pd(&p0);
    a.d->alloc_pd(&p1);
    t.expect(n0 && n1 && n0->qpn == q1 && n1->qpn == q0, "QPNs not reused oldest first");
    t.expect(m0 && m1 && m0->cqn == c2 && m1->cqn == c1, "CQNs not reused oldest first");
    t.expect(p0 == pd[2] && p1 == pd[1], "PDNs not reused oldest first");
  });
  t.report();
}
