// Shared receive queues through the driver and the device: two QPs of host1 share one SRQ, each
// connected to a QP of host0. The SRQ's WQEs go to the QPs in the order their SENDs arrive; its
// limit event; RNR NAK when it is empty; a QP in ERR leaves the SRQ's WQEs alone; the refusals.
#include <cstddef>

#include "testbench/system/device_bench.h"

#ifndef RN_FIELD_OFF
#define RN_FIELD_OFF(T, f) static_cast<uint32_t>(offsetof(dev::CmdIn, args) + offsetof(T, f))
#endif

namespace rn::test {
namespace {

constexpr uint32_t kSlot = 4096;  // each receive WQE's buffer: slot k of host1's buffer

struct SrqBench {
  Bench t;
  drv::Srq* srq = nullptr;
  drv::Qp* aq[2] = {};  // host0's QPs (aq[0] is the Bench's own)
  drv::Qp* bq[2] = {};  // host1's QPs, attached to the SRQ
  explicit SrqBench(std::vector<std::string> sets = {}) : t(std::move(sets)) {}

  // The Bench's objects, the SRQ (srq_wr WQEs), a second QP on host0 and two QPs on host1 using
  // the SRQ, connected pairwise.
  bool setup(uint32_t srq_wr = 16, uint64_t buf_len = 65536) {
    if (!t.create(kLW | kRW, 16, 2, buf_len)) return false;
    drv::Driver& d = *t.b.d;
    drv::SrqAttr sa;
    sa.max_wr = srq_wr;
    sa.max_sge = 2;
    if (d.create_srq(t.b.pdn, sa, &srq)) {
      t.failures.push_back("create_srq: " + d.last_error());
      return false;
    }
    drv::QpCap cap;
    cap.max_send_wr = 16;
    cap.srq = srq;
    for (auto*& q : bq)
      if (d.create_qp(t.b.pdn, t.b.scq, t.b.rcq, cap, false, &q)) {
        t.failures.push_back("create_qp with an SRQ: " + d.last_error());
        return false;
      }
    aq[0] = t.a.qp;
    drv::QpCap acap;
    acap.max_send_wr = acap.max_recv_wr = 16;
    if (t.a.d->create_qp(t.a.pdn, t.a.scq, t.a.rcq, acap, false, &aq[1])) {
      t.failures.push_back("create_qp: " + t.a.d->last_error());
      return false;
    }
    for (int i = 0; i < 2; ++i) {
      t.a.qp = aq[i];
      t.b.qp = bq[i];
      if (!t.connect(t.a, t.b, kLW | kRW) || !t.connect(t.b, t.a, kLW | kRW)) return false;
    }
    t.a.qp = aq[0];
    return true;
  }
  // Posts a receive WQE for buffer slot `slot` to the SRQ.
  int post_srq(uint64_t wr_id, uint32_t slot, uint32_t len = kSlot) {
    drv::Sge sg{t.b.buf + uint64_t(slot) * kSlot, len, t.b.mr.lkey};
    drv::RecvWr wr;
    wr.wr_id = wr_id;
    wr.sg_list = &sg;
    wr.num_sge = 1;
    const drv::RecvWr* bad = nullptr;
    return t.b.d->post_srq_recv(srq, &wr, &bad);
  }
  // A signaled SEND of len bytes from host0's buffer at off on host0's QP i, waited for.
  bool send(int i, uint64_t wr_id, uint64_t off, uint32_t len) {
    t.a.qp = aq[i];
    t.post(t.a, WrOpcode::SEND, wr_id, off, len, drv::kSendSignaled);
    auto s = t.poll(t.a, t.a.scq, 1);
    t.a.qp = aq[0];
    const bool ok = s.size() == 1 && s[0].status == WcStatus::SUCCESS && s[0].wr_id == wr_id;
    t.expect(ok,
             fmt::format("SEND {} on QP {}: {}", wr_id, i, s.empty() ? "no CQE" : wc_str(s[0])));
    return ok;
  }
  // Events other than completions that arrive within `wait` (simulated), oldest first.
  std::vector<drv::Driver::AsyncEvent> events(Tick wait = 50 * kUs) {
    std::vector<drv::Driver::AsyncEvent> v;
    drv::Driver::AsyncEvent e;
    while (t.b.d->get_async_event(&e, wait) == 0) v.push_back(e);
    return v;
  }
};

std::string events_str(const std::vector<drv::Driver::AsyncEvent>& v) {
  std::string s;
  for (const auto& e : v) s += fmt::format("{}({}) ", dev::to_string(e.type), e.obj);
  return s.empty() ? "none" : s;
}

}  // namespace

TEST_CASE("Two QPs share one SRQ: SENDs on both take its WQEs in the order they arrive", "[srq]") {
  SrqBench x;
  Bench& t = x.t;
  t.run([&] {
    if (!x.setup()) return;
    for (uint32_t k = 0; k < 5; ++k) x.post_srq(100 + k, k);
    // QP 0, QP 1, QP 1, QP 0, QP 1: each SEND takes the SRQ's next WQE, whichever QP it is on.
    const int on[5] = {0, 1, 1, 0, 1};
    for (uint32_t k = 0; k < 5; ++k) {
      t.fill(t.a, 8192 * k, 1000 + 100 * k, 40 + k);
      if (!x.send(on[k], k, 8192 * k, 1000 + 100 * k)) return;
    }
    auto r = t.poll(t.b, t.b.rcq, 5);
    t.expect(r.size() == 5, fmt::format("{} receive CQEs, expected 5", r.size()));
    for (uint32_t k = 0; k < r.size(); ++k) {
      t.expect(r[k].status == WcStatus::SUCCESS && r[k].wr_id == 100 + k &&
                   r[k].qp_num == x.bq[on[k]]->qpn && r[k].byte_len == 1000 + 100 * k &&
                   r[k].src_qp == x.aq[on[k]]->qpn,
               fmt::format("receive {}: {}", k, wc_str(r[k])));
      t.expect(t.same(t.a, 8192 * k, t.b, uint64_t(k) * kSlot, 1000 + 100 * k),
               fmt::format("SEND {} landed in slot {}", k, k));
      t.expect(t.untouched(t.b, uint64_t(k) * kSlot + 1000 + 100 * k, 64),
               fmt::format("nothing past SEND {}", k));
    }
    t.expect(t.untouched(t.b, 5 * kSlot, kSlot), "the unused slot is untouched");
    // The QPs' own receive indices say nothing of the SRQ; its query tells its state.
    drv::SrqAttr qa;
    t.expect(t.b.d->query_srq(x.srq, &qa) == 0 && qa.max_wr == 16 && qa.max_sge >= 2 &&
                 qa.srq_limit == 0,
             fmt::format("query_srq: max_wr {} max_sge {} limit {} ({})", qa.max_wr, qa.max_sge,
                         qa.srq_limit, t.b.d->last_error()));
    drv::DeviceAttr da{};
    t.expect(t.b.d->query_device(&da) == 0 && da.max_srq == 4096 && da.max_srq_wr == 32768 &&
                 da.max_srq_sge == dev::kMaxRecvSge,
             fmt::format("query_device: max_srq {} max_srq_wr {} max_srq_sge {}", da.max_srq,
                         da.max_srq_wr, da.max_srq_sge));
  });
  t.report();
  CHECK(stat(t.stats, "host1.nic.resp", "srq_wqes_taken") == 5);
  CHECK(stat(t.stats, "host1.nic.resp", "srq_wqe_fetches") >= 1);
  CHECK(stat(t.stats, "host1.nic.resp", "rwqe_fetches") == 0);
  CHECK(stat(t.stats, "host1.nic.dev", "srq_doorbells") == 5);
}

TEST_CASE(
    "The SRQ limit event fires once when its WQEs drop below the limit, again only once re-armed",
    "[srq]") {
  SrqBench x;
  Bench& t = x.t;
  t.run([&] {
    if (!x.setup()) return;
    drv::Driver& d = *t.b.d;
    for (uint32_t k = 0; k < 5; ++k) x.post_srq(k, k);
    t.expect(d.modify_srq(x.srq, 3) == 0, "modify_srq: " + d.last_error());
    drv::SrqAttr qa;
    t.expect(d.query_srq(x.srq, &qa) == 0 && qa.srq_limit == 3,
             fmt::format("armed limit {}", qa.srq_limit));
    t.fill(t.a, 0, 100, 5);
    // 5 WQEs: two SENDs leave 3 (not below the limit): no event.
    x.send(0, 1, 0, 100);
    x.send(1, 2, 0, 100);
    auto ev = x.events();
    t.expect(ev.empty(), "events with 3 WQEs left: " + events_str(ev));
    // The third leaves 2: one SRQ_LIMIT_REACHED, and the limit is disarmed.
    x.send(0, 3, 0, 100);
    ev = x.events();
    t.expect(
        ev.size() == 1 && ev[0].type == dev::EqeType::SRQ_LIMIT_REACHED && ev[0].obj == x.srq->srqn,
        "events with 2 WQEs left: " + events_str(ev));
    t.expect(d.query_srq(x.srq, &qa) == 0 && qa.srq_limit == 0,
             fmt::format("limit after the event {}", qa.srq_limit));
    // Below the limit still, but disarmed: no event.
    x.send(1, 4, 0, 100);
    ev = x.events();
    t.expect(ev.empty(), "events while disarmed: " + events_str(ev));
    // Re-armed (1 WQE left, 3 posted: 4): the next WQE taken leaves 3 < 4.
    for (uint32_t k = 5; k < 8; ++k) x.post_srq(k, k);
    t.expect(d.modify_srq(x.srq, 4) == 0, "modify_srq again: " + d.last_error());
    x.send(0, 5, 0, 100);
    ev = x.events();
    t.expect(
        ev.size() == 1 && ev[0].type == dev::EqeType::SRQ_LIMIT_REACHED && ev[0].obj == x.srq->srqn,
        "events after re-arming: " + events_str(ev));
    // Refused: a limit of 0 or above the SRQ's size, and resizing.
    t.expect(d.modify_srq(x.srq, 0) == EINVAL && d.last_status() == dev::CmdStatus::BAD_PARAM &&
                 d.last_syndrome() == RN_FIELD_OFF(dev::ModifySrqIn, limit),
             "limit 0: " + d.last_error());
    t.expect(d.modify_srq(x.srq, 17) == EINVAL && d.last_status() == dev::CmdStatus::BAD_PARAM &&
                 d.last_syndrome() == RN_FIELD_OFF(dev::ModifySrqIn, limit),
             "limit 17 of 16: " + d.last_error());
    auto r = t.poll(t.b, t.b.rcq, 5);
    t.expect(r.size() == 5, fmt::format("{} receive CQEs", r.size()));
  });
  t.report();
  CHECK(stat(t.stats, "host1.nic.resp", "srq_limit_events") == 2);
}

TEST_CASE("An empty SRQ answers a SEND with RNR NAKs until a WQE is posted to it", "[srq]") {
  SrqBench x;
  Bench& t = x.t;
  t.attr.min_rnr_timer = 1;  // 10 us
  t.run([&] {
    if (!x.setup()) return;
    t.fill(t.a, 0, 300, 9);
    t.a.qp = x.aq[1];
    t.post(t.a, WrOpcode::SEND, 1, 0, 300, drv::kSendSignaled);
    t.a.qp = x.aq[0];
    t.b.h->cpu(45 * kUs);
    drv::Wc wc;
    t.expect(t.a.d->poll_cq(t.a.scq, 1, &wc) == 0, "the SEND completed with the SRQ empty");
    x.post_srq(77, 3);
    auto r = t.poll(t.b, t.b.rcq, 1);
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::SUCCESS,
             s.empty() ? "no send CQE" : wc_str(s[0]));
    t.expect(
        r.size() == 1 && r[0].wr_id == 77 && r[0].qp_num == x.bq[1]->qpn && r[0].byte_len == 300,
        r.empty() ? "no receive CQE" : wc_str(r[0]));
    t.expect(t.same(t.a, 0, t.b, 3 * kSlot, 300), "SEND data");
  });
  t.report();
  CHECK(stat(t.stats, "host1.nic.resp", "rnr_naks") >= 3);
  CHECK(stat(t.stats, "host0.nic.req", "rnr_retries") ==
        stat(t.stats, "host1.nic.resp", "rnr_naks"));
}

TEST_CASE(
    "A QP of an SRQ in ERR flushes only the WQE it took, posts QP_LAST_WQE_REACHED, and the other "
    "QP goes on",
    "[srq]") {
  SrqBench x;
  Bench& t = x.t;
  t.attr.path_mtu = dev::Mtu::MTU_256;  // a long SEND: ~2000 packets
  t.run([&] {
    if (!x.setup(16, 1 << 20)) return;
    drv::Driver& d = *t.b.d;
    // Slot 0's buffer takes the long SEND; slots 1..3 wait in the SRQ.
    {
      drv::Sge sg{t.b.buf, 512 << 10, t.b.mr.lkey};
      drv::RecvWr wr;
      wr.wr_id = 500;
      wr.sg_list = &sg;
      wr.num_sge = 1;
      const drv::RecvWr* bad = nullptr;
      t.expect(d.post_srq_recv(x.srq, &wr, &bad) == 0, "post_srq_recv: " + d.last_error());
    }
    for (uint32_t k = 1; k < 4; ++k) x.post_srq(500 + k, 128 + k);
    t.post(t.a, WrOpcode::SEND, 1, 0, 512 << 10, drv::kSendSignaled);
    // Once its first bytes have landed, the receiving QP is moved to ERR mid-message.
    t.expect(t.b.h->wait_write(t.b.buf, 64, 1 * kMs), "the long SEND's first bytes");
    drv::QpAttr at;
    at.qp_state = dev::QpState::ERR;
    t.expect(d.modify_qp(x.bq[0], at, mask({dev::QpAttr::STATE})) == 0,
             "modify_qp ERR: " + d.last_error());
    auto r = t.poll(t.b, t.b.rcq, 1);
    t.expect(r.size() == 1 && r[0].wr_id == 500 && r[0].status == WcStatus::WR_FLUSH_ERR &&
                 r[0].qp_num == x.bq[0]->qpn,
             r.empty() ? "no flush CQE" : wc_str(r[0]));
    auto ev = x.events();
    t.expect(ev.size() == 1 && ev[0].type == dev::EqeType::QP_LAST_WQE_REACHED &&
                 ev[0].obj == x.bq[0]->qpn,
             "events: " + events_str(ev));
    // Nothing else was flushed: the SRQ's WQEs go to the other QP, in order.
    r = t.poll(t.b, t.b.rcq, 1);
    t.expect(r.empty(), r.empty() ? "" : "another CQE: " + wc_str(r[0]));
    for (uint32_t k = 1; k < 4; ++k) {
      t.fill(t.a, 600000 + 1000 * k, 500, 70 + k);
      if (!x.send(1, 10 + k, 600000 + 1000 * k, 500)) return;
    }
    r = t.poll(t.b, t.b.rcq, 3);
    t.expect(r.size() == 3, fmt::format("{} receive CQEs on the other QP", r.size()));
    for (uint32_t k = 0; k < r.size(); ++k) {
      t.expect(
          r[k].status == WcStatus::SUCCESS && r[k].wr_id == 501 + k && r[k].qp_num == x.bq[1]->qpn,
          wc_str(r[k]));
      t.expect(t.same(t.a, 600000 + 1000 * (k + 1), t.b, uint64_t(129 + k) * kSlot, 500),
               fmt::format("SEND {} data", k + 1));
    }
  });
  t.report();
  CHECK(stat(t.stats, "host1.nic.resp", "last_wqe_events") == 1);
  CHECK(stat(t.stats, "host1.nic.resp", "flushed") == 1);
}

TEST_CASE("SRQ commands and doorbells refuse bad input with the field or register named", "[srq]") {
  SrqBench x;
  Bench& t = x.t;
  t.run([&] {
    if (!x.setup(8)) return;
    drv::Driver& d = *t.b.d;
    auto& io = *t.b.h;
    // DESTROY_SRQ while QPs use it: BUSY.
    t.expect(d.destroy_srq(x.srq) == EBUSY && d.last_status() == dev::CmdStatus::BUSY,
             "destroy_srq in use: " + d.last_error());
    // Refused SRQ doorbells set ERR_CODE and change nothing.
    auto err = [&](dev::RegError want, uint64_t off, const char* what) {
      const uint32_t code = io.mmio_read32(dev::reg::ERR_CODE);
      const uint32_t info = io.mmio_read32(dev::reg::ERR_INFO);
      t.expect(code == static_cast<uint32_t>(want) && info == off,
               fmt::format("{}: ERR_CODE {} ERR_INFO {:#x}", what,
                           dev::to_string(static_cast<dev::RegError>(code)), info));
    };
    const uint32_t errs = io.mmio_read32(dev::reg::ERR_COUNT);
    const uint64_t ghost = dev::kSrqDbBase + dev::kSrqDbStride * 999;
    io.mmio_write32(ghost, 1);
    err(dev::RegError::NO_SUCH_SRQ, ghost, "doorbell of an SRQ that does not exist");
    const uint64_t db = dev::kSrqDbBase + dev::kSrqDbStride * x.srq->srqn;
    io.mmio_write32(db, 9);  // 9 WQEs in an 8-entry ring
    err(dev::RegError::DB_RANGE, db, "SRQ producer index past the ring");
    io.mmio_write32(db, 0x10000);
    err(dev::RegError::BAD_VALUE, db, "SRQ doorbell reserved bit");
    io.mmio_write32(db + 4, 1);
    err(dev::RegError::BAD_OFFSET, db + 4, "SRQ doorbell hole");
    // A QP attached to an SRQ has no receive queue: its RQ doorbell is refused.
    const uint64_t rqdb =
        dev::kQpDbBase + dev::kQpDbStride * x.bq[0]->qpn + dev::reg::QP_DOORBELL_RQ_WORD;
    io.mmio_write32(rqdb, 1);
    err(dev::RegError::DB_RANGE, rqdb, "RQ doorbell of a QP with an SRQ");
    t.expect(io.mmio_read32(dev::reg::ERR_COUNT) == errs + 5, "ERR_COUNT counts every refusal");
    // The driver refuses what the device would.
    drv::Sge sg[4] = {};
    drv::RecvWr wr;
    wr.sg_list = sg;
    wr.num_sge = static_cast<int>(x.srq->max_sge) + 1;
    const drv::RecvWr* bad = nullptr;
    t.expect(d.post_srq_recv(x.srq, &wr, &bad) == EINVAL && bad == &wr,
             "more SGEs than the SRQ's stride holds: " + d.last_error());
    for (uint32_t k = 0; k < 8; ++k) x.post_srq(k, k);
    t.expect(x.post_srq(8, 8) == ENOMEM, "a 9th WQE in an 8-entry SRQ: " + d.last_error());
    t.expect(d.post_recv(x.bq[0], &wr, &bad) == EINVAL,
             "post_recv to a QP with an SRQ: " + d.last_error());
    // Nothing refused got through: the SRQ still works, from its first WQE.
    t.fill(t.a, 0, 200, 21);
    x.send(0, 1, 0, 200);
    auto r = t.poll(t.b, t.b.rcq, 1);
    t.expect(r.size() == 1 && r[0].wr_id == 0 && r[0].status == WcStatus::SUCCESS,
             r.empty() ? "no receive CQE" : wc_str(r[0]));
    t.expect(t.same(t.a, 0, t.b, 0, 200), "SEND data after the refusals");
    // Once its QPs are gone it may go; then it is refused, not a crash.
    for (auto* q : x.bq) t.expect(d.destroy_qp(q) == 0, "destroy_qp: " + d.last_error());
    t.expect(d.destroy_srq(x.srq) == 0, "destroy_srq: " + d.last_error());
    t.expect(x.post_srq(9, 0) == EINVAL, "post to a destroyed SRQ: " + d.last_error());
    drv::QpCap cap;
    cap.srq = x.srq;
    drv::Qp* q = nullptr;
    t.expect(d.create_qp(t.b.pdn, t.b.scq, t.b.rcq, cap, false, &q) == EINVAL,
             "create_qp with a destroyed SRQ: " + d.last_error());
    io.mmio_write32(db, 1);
    err(dev::RegError::NO_SUCH_SRQ, db, "doorbell of a destroyed SRQ");
    // Commands written by hand (last: the command block is ours from here on), naming an SRQ
    // made for them.
    drv::Srq* srq2 = nullptr;
    if (d.create_srq(t.b.pdn, drv::SrqAttr{}, &srq2))
      return t.expect(false, "create_srq: " + d.last_error());
    // CREATE_QP with an SRQ and a receive queue of its own: BAD_PARAM naming log_rq_size.
    dev::CmdIn raw{};
    raw.opcode = static_cast<uint16_t>(dev::CmdOp::CREATE_QP);
    dev::CreateQpIn in{};
    in.qp_type = static_cast<uint8_t>(dev::QpType::RC);
    in.log_sq_size = 4;
    in.log_rq_size = 4;
    in.sq_wqe_shift = 6;
    in.rq_wqe_shift = 6;
    in.pdn = t.b.pdn;
    in.send_cqn = t.b.scq->cqn;
    in.recv_cqn = t.b.rcq->cqn;
    in.srqn = srq2->srqn;
    in.sq_addr = io.dma_alloc(1 << 10, 64);
    in.rq_addr = io.dma_alloc(1 << 10, 64);
    auto command = [&](const dev::CmdIn& c) {
      const uint64_t blk = io.dma_alloc(128, 64);
      io.mem_write(blk, &c, sizeof c);
      io.mmio_write32(dev::reg::CMD_ADDR_LO, static_cast<uint32_t>(blk));
      io.mmio_write32(dev::reg::CMD_ADDR_HI, static_cast<uint32_t>(blk >> 32));
      io.mmio_write32(dev::reg::CMD_DOORBELL, 0x77);
      io.wait_write(blk + 64, 64, 100 * kUs);
      dev::CmdOut out{};
      io.mem_read(blk + 64, &out, sizeof out);
      return out;
    };
    std::memcpy(raw.args, &in, sizeof in);
    dev::CmdOut out = command(raw);
    t.expect(out.status == static_cast<uint8_t>(dev::CmdStatus::BAD_PARAM) &&
                 out.syndrome == RN_FIELD_OFF(dev::CreateQpIn, log_rq_size),
             fmt::format("CREATE_QP with an SRQ and an RQ: status {} syndrome {}", out.status,
                         out.syndrome));
    // An SRQ that does not exist: BAD_HANDLE naming srqn.
    in.log_rq_size = 0;
    in.srqn = 999;
    std::memcpy(raw.args, &in, sizeof in);
    out = command(raw);
    t.expect(
        out.status == static_cast<uint8_t>(dev::CmdStatus::BAD_HANDLE) &&
            out.syndrome == RN_FIELD_OFF(dev::CreateQpIn, srqn),
        fmt::format("CREATE_QP with SRQ 999: status {} syndrome {}", out.status, out.syndrome));
    // MODIFY_SRQ asking to resize: BAD_PARAM naming max_wr.
    raw = dev::CmdIn{};
    raw.opcode = static_cast<uint16_t>(dev::CmdOp::MODIFY_SRQ);
    dev::ModifySrqIn m{};
    m.srqn = srq2->srqn;
    m.attr_mask = static_cast<uint32_t>(dev::SrqAttr::MAX_WR);
    m.max_wr = 32;
    std::memcpy(raw.args, &m, sizeof m);
    out = command(raw);
    t.expect(out.status == static_cast<uint8_t>(dev::CmdStatus::BAD_PARAM) &&
                 out.syndrome == RN_FIELD_OFF(dev::ModifySrqIn, max_wr),
             fmt::format("MODIFY_SRQ resize: status {} syndrome {}", out.status, out.syndrome));
    // CREATE_SRQ with a limit above its size: BAD_PARAM naming limit.
    raw = dev::CmdIn{};
    raw.opcode = static_cast<uint16_t>(dev::CmdOp::CREATE_SRQ);
    dev::CreateSrqIn c{};
    c.ring_addr = io.dma_alloc(1 << 10, 64);
    c.log_size = 3;
    c.wqe_shift = 5;
    c.pdn = t.b.pdn;
    c.limit = 9;
    std::memcpy(raw.args, &c, sizeof c);
    out = command(raw);
    t.expect(
        out.status == static_cast<uint8_t>(dev::CmdStatus::BAD_PARAM) &&
            out.syndrome == RN_FIELD_OFF(dev::CreateSrqIn, limit),
        fmt::format("CREATE_SRQ limit 9 of 8: status {} syndrome {}", out.status, out.syndrome));
  });
  t.report();
}

TEST_CASE("An SRQ and a QP of another protection domain do not go together", "[srq]") {
  Bench t;
  t.run([&] {
    if (!t.create()) return;
    drv::Driver& d = *t.b.d;
    uint32_t pd2 = 0;
    drv::Srq* srq = nullptr;
    if (d.alloc_pd(&pd2) || d.create_srq(pd2, drv::SrqAttr{}, &srq))
      return t.expect(false, "setup: " + d.last_error());
    drv::QpCap cap;
    cap.srq = srq;
    drv::Qp* q = nullptr;
    t.expect(d.create_qp(t.b.pdn, t.b.scq, t.b.rcq, cap, false, &q) == EINVAL,
             "create_qp in PD " + std::to_string(t.b.pdn) + ": " + d.last_error());
    // The device checks it too: a PD in use by an SRQ cannot go, and the SRQ goes when asked.
    t.expect(d.dealloc_pd(pd2) == EBUSY, "dealloc_pd of the SRQ's PD: " + d.last_error());
    t.expect(d.destroy_srq(srq) == 0, "destroy_srq: " + d.last_error());
    t.expect(d.dealloc_pd(pd2) == 0, "dealloc_pd: " + d.last_error());
  });
  t.report();
}

}  // namespace rn::test
