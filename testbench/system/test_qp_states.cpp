// The QP state machine beyond RTS: SQD (drain, its event, back to RTS, attributes changed while
// drained), and the transitions MODIFY_QP refuses.
#include "testbench/system/device_bench.h"

using namespace rn;
using namespace rn::test;

namespace {
using A = dev::QpAttr;
constexpr uint32_t kAll = kLW | kRW | kRR;

int to_state(Peer& p, dev::QpState s, uint32_t extra = 0, drv::QpAttr at = {}) {
  at.qp_state = s;
  return p.d->modify_qp(p.qp, at, mask({A::STATE}) | extra);
}
}  // namespace

TEST_CASE("SQD finishes the WQEs started and starts no other, tells when drained, and RTS resumes",
          "[qp_state][sqd]") {
  Bench t;
  t.attr.path_mtu = dev::Mtu::MTU_1024;
  constexpr uint32_t kLen = 300000;  // 293 packets (about 25 us) each: SQD comes during the first
  t.run([&] {
    if (!t.setup(kAll, kAll, 16, 2, 1 << 20)) return;
    t.fill(t.a, 0, 3 * kLen, 5);
    for (uint32_t i = 0; i < 3; ++i)
      t.post(t.a, WrOpcode::RDMA_WRITE, i + 1, i * kLen, kLen, drv::kSendSignaled, 0, 0, i * kLen);
    t.a.h->cpu(2 * kUs);
    const uint64_t sent = t.stat_now("host0.nic.req", "wqes_started");
    t.expect(to_state(t.a, dev::QpState::SQD, static_cast<uint32_t>(A::EN_SQD_ASYNC_NOTIFY)) == 0,
             "RTS -> SQD: " + t.a.d->last_error());
    drv::Driver::AsyncEvent ev{};
    t.expect(t.a.d->get_async_event(&ev, 1'000'000) == 0, "no SQ_DRAINED event");
    t.expect(ev.type == dev::EqeType::SQ_DRAINED && ev.obj == t.a.qp->qpn,
             fmt::format("event {} obj {}", dev::to_string(ev.type), ev.obj));
    const uint64_t started = t.stat_now("host0.nic.req", "wqes_started");
    t.expect(started >= 1 && started < 3 && started >= sent,
             fmt::format("{} WQEs started (before SQD: {})", started, sent));
    // The started ones completed; nothing of the others reached the peer.
    auto w = t.poll(t.a, t.a.scq, 3);
    t.expect(w.size() == started, fmt::format("{} CQEs for {} started", w.size(), started));
    t.b.h->cpu(5 * kUs);
    for (const auto& c : w) t.expect(c.status == WcStatus::SUCCESS, wc_str(c));
    t.expect(t.same(t.a, 0, t.b, 0, started * kLen), "the started WRITEs' data");
    t.expect(t.untouched(t.b, started * kLen, (3 - started) * kLen), "a WQE started in SQD");
    // Drained: attributes may change (a longer timeout), then back to RTS: the rest goes.
    drv::QpAttr at;
    at.timeout = 16;
    t.expect(to_state(t.a, dev::QpState::SQD, static_cast<uint32_t>(A::TIMEOUT), at) == 0,
             "SQD -> SQD: " + t.a.d->last_error());
    t.expect(to_state(t.a, dev::QpState::RTS) == 0, "SQD -> RTS: " + t.a.d->last_error());
    auto rest = t.poll(t.a, t.a.scq, 3 - started);
    t.expect(rest.size() == 3 - started, fmt::format("{} more CQEs", rest.size()));
    t.b.h->cpu(5 * kUs);
    t.expect(t.same(t.a, 0, t.b, 0, 3 * kLen), "all data after RTS");
  });
  t.report();
}

TEST_CASE("An idle QP entering SQD is drained at once, and without notify no event comes",
          "[qp_state][sqd]") {
  Bench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    t.expect(to_state(t.a, dev::QpState::SQD, static_cast<uint32_t>(A::EN_SQD_ASYNC_NOTIFY)) == 0,
             "a: RTS -> SQD: " + t.a.d->last_error());
    drv::Driver::AsyncEvent ev{};
    t.expect(t.a.d->get_async_event(&ev, 100'000) == 0 && ev.type == dev::EqeType::SQ_DRAINED,
             "no SQ_DRAINED for an idle QP");
    t.expect(to_state(t.b, dev::QpState::SQD) == 0, "b: RTS -> SQD: " + t.b.d->last_error());
    t.expect(t.b.d->get_async_event(&ev, 100'000) != 0, "an event without EN_SQD_ASYNC_NOTIFY");
  });
  t.report();
}

TEST_CASE("A QP in SQD still receives, and queues what is posted until RTS", "[qp_state][sqd]") {
  Bench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    t.fill(t.a, 0, 4096, 9);
    t.fill(t.b, 8192, 4096, 10);
    t.expect(to_state(t.b, dev::QpState::SQD) == 0, "b: RTS -> SQD: " + t.b.d->last_error());
    // a WRITEs to b (b's responder works in SQD); b posts a WRITE to a, held until RTS.
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 4096, drv::kSendSignaled, 0, 0, 0);
    t.expect(t.post(t.b, WrOpcode::RDMA_WRITE, 2, 8192, 4096, drv::kSendSignaled, 0, 0, 8192) == 0,
             "post_send in SQD: " + t.b.d->last_error());
    auto wa = t.poll(t.a, t.a.scq, 1);
    t.expect(wa.size() == 1 && wa[0].status == WcStatus::SUCCESS, "a's WRITE to b in SQD");
    t.b.h->cpu(5 * kUs);  // the ACK may come before the data has landed at b
    t.expect(t.same(t.a, 0, t.b, 0, 4096), "data received in SQD");
    auto wb = t.poll(t.b, t.b.scq, 1);
    t.expect(wb.empty(), "a WQE posted in SQD was sent");
    t.expect(t.untouched(t.a, 8192, 4096), "a WQE posted in SQD reached the peer");
    t.expect(to_state(t.b, dev::QpState::RTS) == 0, "b: SQD -> RTS: " + t.b.d->last_error());
    wb = t.poll(t.b, t.b.scq, 1);
    t.expect(wb.size() == 1 && wb[0].status == WcStatus::SUCCESS, "b's WRITE after RTS");
    t.a.h->cpu(5 * kUs);
    t.expect(t.same(t.b, 8192, t.a, 8192, 4096), "b's data after RTS");
  });
  t.report();
}

TEST_CASE("MODIFY_QP refuses SQD from states other than RTS, and SQD -> SQD before drained",
          "[qp_state][sqd]") {
  Bench t;
  t.attr.path_mtu = dev::Mtu::MTU_256;
  t.run([&] {
    if (!t.create(kAll)) return;
    // RESET and INIT -> SQD: refused (BAD_STATE), the QP unchanged.
    t.expect(
        to_state(t.a, dev::QpState::SQD) != 0 && t.a.d->last_status() == dev::CmdStatus::BAD_STATE,
        "RESET -> SQD accepted");
    if (!t.connect(t.a, t.b, kAll) || !t.connect(t.b, t.a, kAll)) return;
    // A long WRITE, then SQD and at once SQD -> SQD: not drained yet.
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 65536, drv::kSendSignaled);
    t.a.h->cpu(1 * kUs);
    t.expect(to_state(t.a, dev::QpState::SQD) == 0, "RTS -> SQD: " + t.a.d->last_error());
    drv::QpAttr at;
    at.timeout = 16;
    t.expect(to_state(t.a, dev::QpState::SQD, static_cast<uint32_t>(A::TIMEOUT), at) != 0 &&
                 t.a.d->last_status() == dev::CmdStatus::BAD_STATE,
             "SQD -> SQD accepted while draining");
    // SQD -> SQD with an attribute not allowed there (RQ_PSN): refused.
    auto w = t.poll(t.a, t.a.scq, 1);
    t.expect(w.size() == 1 && w[0].status == WcStatus::SUCCESS, "the WRITE completes in SQD");
    at.rq_psn = 5;
    t.expect(to_state(t.a, dev::QpState::SQD, static_cast<uint32_t>(A::RQ_PSN), at) != 0 &&
                 t.a.d->last_status() == dev::CmdStatus::BAD_PARAM,
             "SQD -> SQD with RQ_PSN accepted");
    // SQD -> ERR flushes as from RTS.
    t.expect(to_state(t.a, dev::QpState::ERR) == 0, "SQD -> ERR: " + t.a.d->last_error());
  });
  t.report();
}
