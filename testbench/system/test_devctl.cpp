// Device control through BAR0 (docs/device-interface.md): reset and the reset value of every
// register, quiesce and enable, command abort, the driver-version handshake, event queue
// overflow and interrupt moderation. Each test drives the registers itself where the driver does
// not, and checks host memory and the statistics.
#include <fmt/core.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "testbench/system/device_bench.h"

using namespace rn;
using dev::WcStatus;
using dev::WrOpcode;
using test::Bench;
using test::stat;
using test::wc_str;

namespace {

uint32_t rd(test::Peer& p, uint64_t off) { return p.h->mmio_read32(off); }
void wr(test::Peer& p, uint64_t off, uint32_t v) { p.h->mmio_write32(off, v); }

// The ERR_CODE of the last refused write (reading clears it).
dev::RegError err_code(test::Peer& p) {
  return static_cast<dev::RegError>(rd(p, dev::reg::ERR_CODE));
}

// Resets the device and waits, polling STATUS as a driver does, until the reset completes.
// False if it never does (within 1000 polls 1 µs apart: far more than nic.reset_latency).
bool reset_device(test::Peer& p) {
  wr(p, dev::reg::CTRL, dev::CtrlBits{true, true, false}.pack());
  for (int i = 0; i < 1000; ++i) {
    if (dev::StatusBits::unpack(rd(p, dev::reg::STATUS)).ready) return true;
    p.h->cpu(1 * kUs);
  }
  return false;
}

// Lets simulated time pass on the host thread.
void idle(test::Peer& p, Tick t) { p.h->cpu(t); }

uint32_t cq_doorbell_arm(const drv::Cq* cq) {
  dev::CqDoorbellBits db;
  db.ci = cq->ci;
  db.arm = true;
  return db.pack();
}
uint64_t cq_db(const drv::Cq* cq) { return dev::kCqDbBase + dev::kCqDbStride * cq->cqn; }
uint32_t eq_doorbell(uint32_t ci, bool arm) {
  dev::EqDoorbellBits db;
  db.ci = ci;
  db.arm = arm;
  return db.pack();
}
uint64_t eq_ring(test::Peer& p) {
  return (uint64_t(rd(p, dev::reg::EQ_ADDR_HI)) << 32) | rd(p, dev::reg::EQ_ADDR_LO);
}
// The EQEs valid in the first pass through a zeroed ring of 2^log entries.
std::vector<dev::Eqe> valid_eqes(test::Peer& p, uint64_t ring, uint32_t log) {
  std::vector<dev::Eqe> out;
  for (uint32_t i = 0; i < (1u << log); ++i) {
    dev::Eqe e;
    p.h->mem_read(ring + i * sizeof e, &e, sizeof e);
    if ((e.owner & 1) != 1) break;
    out.push_back(e);
  }
  return out;
}
// Restarts the event queue at the same ring, zeroed, with 2^log entries.
void restart_eq(test::Peer& p, uint64_t ring, uint32_t log) {
  std::vector<uint8_t> zero((1u << log) * sizeof(dev::Eqe), 0);
  p.h->mem_write(ring, zero.data(), zero.size());
  wr(p, dev::reg::EQ_LOG_SIZE, log);
}

// One completion waiting on B's receive CQ, not consumed: every arming write of its doorbell
// then raises a COMPLETION event at once (the way these tests make events on demand).
bool completion_waiting(Bench& t) {
  t.recv(t.b, 1, 0, 64);
  t.post(t.a, WrOpcode::SEND, 1, 0, 64, drv::kSendSignaled);
  auto s = t.poll(t.a, t.a.scq, 1);
  if (s.size() != 1 || s[0].status != WcStatus::SUCCESS) return false;
  const uint64_t slot = t.b.rcq->ring;  // its first CQE
  dev::Cqe c;
  t.b.h->mem_read(slot, &c, sizeof c);
  return (c.owner & 1) == 1;
}

}  // namespace

TEST_CASE("Device reset: every register reads its reset value from device_interface.toml",
          "[devctl][reset]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    auto& a = t.a;
    // Change every writable register from its reset value first.
    wr(a, dev::reg::EQ_MODERATION, dev::EqModerationBits{4, 1000}.pack());
    wr(a, dev::reg::CTRL, dev::CtrlBits{true, false, true}.pack());
    wr(a, dev::reg::ID, 0);  // refused: ERR_CODE, ERR_INFO and ERR_COUNT are not 0
    t.expect(rd(a, dev::reg::DRIVER_VERSION) == dev::kVersion, "the driver made the handshake");
    t.expect(rd(a, dev::reg::CTRL) != dev::reg::CTRL_RESET, "CTRL changed");

    // While the reset runs: not ready, CTRL.reset reads 1, other writes refused.
    wr(a, dev::reg::CTRL, dev::CtrlBits{true, true, false}.pack());
    const auto st = dev::StatusBits::unpack(rd(a, dev::reg::STATUS));
    t.expect(!st.ready, "STATUS.ready is 0 while the reset runs");
    t.expect(dev::CtrlBits::unpack(rd(a, dev::reg::CTRL)).reset, "CTRL.reset reads 1 meanwhile");
    wr(a, dev::reg::MSIX_DATA, 5);
    t.expect(err_code(a) == dev::RegError::NOT_READY, "a write during the reset: NOT_READY");
    t.expect(rd(a, dev::reg::MSIX_DATA) == dev::reg::MSIX_DATA_RESET, "and it changed nothing");
    bool ready = false;
    for (int i = 0; i < 1000 && !ready; ++i) {
      ready = dev::StatusBits::unpack(rd(a, dev::reg::STATUS)).ready;
      if (!ready) idle(a, 1 * kUs);
    }
    t.expect(ready, "the reset completes");
    // The refused write above set the error registers: reset again, touching nothing.
    t.expect(reset_device(a), "the second reset completes");
    for (const auto& r : dev::reg::kResetValues) {
      const uint32_t v = rd(a, r.offset);
      t.expect(v == r.value, fmt::format("{} at {:#x} reads {:#x} after reset, the TOML says {:#x}",
                                         r.name, r.offset, v, r.value));
    }
  });
  t.report();
  auto st = t.sys->sim().stats.to_json();
  CHECK(stat(st, "host0.nic.dev", "resets") == 2);
}

TEST_CASE("Device reset: objects are gone, in-flight work is abandoned, the device works again",
          "[devctl][reset]") {
  // No least reset time: the reset completes as soon as the writes issued before it are in
  // host memory, while the READs' responses are still on their way.
  Bench t({"nic.reset_latency=0ns"});
  t.run([&] {
    constexpr uint32_t kAccess = test::kLW | test::kRW | test::kRR;
    if (!t.setup(kAccess, kAccess, 16, 2, 1 << 20)) return;
    auto& a = t.a;
    // A's READs in flight (1 MiB: tens of µs on the link): their responses arrive after the
    // reset, and must not land.
    t.fill(t.b, 0, 1 << 20, 3);
    for (uint64_t i = 0; i < 8; ++i)
      t.post(a, WrOpcode::RDMA_READ, i, i << 17, 1 << 17, drv::kSendSignaled, 0, 0, i << 17);
    t.expect(reset_device(a), "the reset completes");
    // Host memory as the reset left it: nothing the device had may be written from now on.
    std::vector<uint8_t> buf(a.len), ring(a.scq->size * sizeof(dev::Cqe));
    a.h->app_read(a.buf, buf.data(), buf.size());
    a.h->mem_read(a.scq->ring, ring.data(), ring.size());
    idle(a, 1 * kMs);
    std::vector<uint8_t> buf2(a.len), ring2(ring.size());
    a.h->app_read(a.buf, buf2.data(), buf2.size());
    a.h->mem_read(a.scq->ring, ring2.data(), ring2.size());
    t.expect(buf == buf2, "no READ response data written after the reset completed");
    t.expect(ring == ring2, "no CQE written after the reset completed");
    // Every object is gone.
    const uint64_t db = dev::kQpDbBase + dev::kQpDbStride * a.qp->qpn;
    wr(a, db, 1);
    t.expect(err_code(a) == dev::RegError::NO_SUCH_QP, "the QP is gone");
    wr(a, cq_db(a.scq), 0);
    t.expect(err_code(a) == dev::RegError::NO_SUCH_CQ, "the CQ is gone");
    // The device works again once the driver sets it up anew.
    t.expect(a.d->open() == 0, "open after reset: " + a.d->last_error());
    uint32_t pdn = 0;
    drv::Cq* cq = nullptr;
    t.expect(a.d->alloc_pd(&pdn) == 0 && a.d->create_cq(16, &cq) == 0,
             "objects after reset: " + a.d->last_error());
  });
  t.report();
}

TEST_CASE("CMD_ABORT ends a running command: no effect, its CmdOut never written",
          "[devctl][commands]") {
  Bench t;
  t.run([&] {
    auto& a = t.a;
    if (a.d->open()) return t.expect(false, "open: " + a.d->last_error());
    const uint32_t lo = rd(a, dev::reg::CMD_ADDR_LO), hi = rd(a, dev::reg::CMD_ADDR_HI);
    const uint64_t blk = a.h->dma_alloc(dev::kCmdBlockBytes, 64);
    dev::CmdIn in{};
    in.opcode = static_cast<uint16_t>(dev::CmdOp::CREATE_PD);
    dev::CmdOut out{};
    a.h->mem_write(blk, &in, sizeof in);
    a.h->mem_write(blk + sizeof in, &out, sizeof out);
    wr(a, dev::reg::CMD_ADDR_LO, static_cast<uint32_t>(blk));
    wr(a, dev::reg::CMD_ADDR_HI, static_cast<uint32_t>(blk >> 32));
    wr(a, dev::reg::CMD_DOORBELL, 0x77);
    t.expect(dev::CmdStatusBits::unpack(rd(a, dev::reg::CMD_STATUS)).busy, "busy after doorbell");
    wr(a, dev::reg::CMD_ABORT, 1);
    auto cs = dev::CmdStatusBits::unpack(rd(a, dev::reg::CMD_STATUS));
    t.expect(
        !cs.busy && cs.status == static_cast<uint32_t>(dev::CmdStatus::ABORTED) && cs.token == 0x77,
        fmt::format("CMD_STATUS after abort: busy {} status {} token {:#x}", cs.busy, cs.status,
                    cs.token));
    idle(a, 100 * kUs);  // far past the command's time
    a.h->mem_read(blk + sizeof in, &out, sizeof out);
    t.expect(out.token == 0, "the aborted command's CmdOut is never written");
    // Too late to abort: a command whose CmdOut is written completes.
    wr(a, dev::reg::CMD_DOORBELL, 0x78);
    t.expect(a.h->wait_device_write(blk + sizeof in, sizeof out, 1'000'000), "second command");
    wr(a, dev::reg::CMD_ABORT, 1);
    a.h->mem_read(blk + sizeof in, &out, sizeof out);
    cs = dev::CmdStatusBits::unpack(rd(a, dev::reg::CMD_STATUS));
    t.expect(out.token == 0x78 && out.status == 0 && !cs.busy && cs.status == 0,
             "a finished command is not aborted");
    dev::CreatePdOut pd;
    std::memcpy(&pd, out.result, sizeof pd);
    // The aborted CREATE_PD made no PD: the one after it got the first number.
    t.expect(pd.pdn == 1, fmt::format("PD {} (the aborted command made none: 1)", pd.pdn));
    wr(a, dev::reg::CMD_ADDR_LO, lo);
    wr(a, dev::reg::CMD_ADDR_HI, hi);
    uint32_t pdn = 0;
    t.expect(a.d->alloc_pd(&pdn) == 0 && pdn == 2, "the driver's commands go on");
  });
  t.report();
  auto st = t.sys->sim().stats.to_json();
  CHECK(stat(st, "host0.nic.dev", "command_aborts") == 1);
}

TEST_CASE("Driver-version handshake: the device takes the versions it speaks, and acts as 1",
          "[devctl][version]") {
  Bench t({"host.driver_wqe_doorbell=false"});
  t.max_inline_data = 64;
  t.run([&] {
    if (!t.create()) return;
    auto& a = t.a;
    t.expect(rd(a, dev::reg::DRIVER_VERSION) == dev::kVersion, "open() wrote DRIVER_VERSION 2");
    for (uint32_t bad : {0u, 3u, 7u}) {
      wr(a, dev::reg::DRIVER_VERSION, bad);
      t.expect(err_code(a) == dev::RegError::BAD_VALUE, fmt::format("version {} refused", bad));
      t.expect(rd(a, dev::reg::DRIVER_VERSION) == 0, fmt::format("reads 0 after {}", bad));
    }
    t.expect(rd(a, dev::reg::CAPS) == dev::reg::CAPS_RESET, "no handshake: every capability");
    wr(a, dev::reg::DRIVER_VERSION, 1);
    t.expect(rd(a, dev::reg::DRIVER_VERSION) == 1 && rd(a, dev::reg::CAPS) == 0,
             "version 1: CAPS reads 0");
    // What version 1 does not have is refused.
    const uint64_t wdb = dev::kWqeDbBase + dev::kWqeDbStride * a.qp->qpn;
    std::vector<uint8_t> wqe(64, 0);
    a.h->mmio_write(wdb, wqe.data(), wqe.size());
    t.expect(err_code(a) == dev::RegError::BAD_OFFSET, "WQE_DOORBELL: BAD_OFFSET");
    wr(a, dev::kSrqDbBase + dev::kSrqDbStride * 1, 1);
    t.expect(err_code(a) == dev::RegError::BAD_OFFSET, "SRQ_DOORBELL: BAD_OFFSET");
    drv::SrqAttr sa;
    sa.max_wr = 8;
    sa.max_sge = 1;
    drv::Srq* srq = nullptr;
    t.expect(
        a.d->create_srq(a.pdn, sa, &srq) != 0 && a.d->last_status() == dev::CmdStatus::BAD_OPCODE,
        "CREATE_SRQ: BAD_OPCODE");
    // A QP created now refuses inline WQEs (the driver, which read CAPS before, posts one).
    drv::QpCap cap;
    cap.max_send_wr = cap.max_recv_wr = 16;
    cap.max_send_sge = cap.max_recv_sge = 2;
    cap.max_inline_data = 64;
    drv::Qp* qp = nullptr;
    if (a.d->create_qp(a.pdn, a.scq, a.rcq, cap, false, &qp))
      return t.expect(false, "create_qp: " + a.d->last_error());
    a.qp = qp;
    if (!t.connect(t.a, t.b, test::kLW | test::kRW) || !t.connect(t.b, t.a, test::kLW | test::kRW))
      return;
    t.post(a, WrOpcode::RDMA_WRITE, 9, 0, 32, drv::kSendSignaled | drv::kSendInline);
    auto s = t.poll(a, a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::LOC_QP_OP_ERR &&
                 s[0].vendor_err == static_cast<uint32_t>(dev::VendorErr::INLINE_V1),
             s.empty() ? "no CQE" : wc_str(s[0]));
  });
  t.report();
}

TEST_CASE("A version-1 driver makes no handshake", "[devctl][version]") {
  Bench t({"host.driver_interface=1"});
  t.run([&] {
    if (!t.setup()) return;
    t.expect(rd(t.a, dev::reg::DRIVER_VERSION) == 0, "DRIVER_VERSION untouched");
  });
  t.report();
}

TEST_CASE("Quiesce holds new doorbells, lets what was taken finish, and reports quiesced",
          "[devctl][quiesce]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    auto& a = t.a;
    auto quiesced = [&] { return dev::StatusBits::unpack(rd(a, dev::reg::STATUS)).quiesced; };
    // Taken before the quiesce: it finishes.
    t.fill(a, 0, 65536, 5);
    for (uint64_t i = 0; i < 8; ++i)
      t.post(a, WrOpcode::RDMA_WRITE, i, i * 4096, 4096, drv::kSendSignaled, 0, 0, i * 4096);
    wr(a, dev::reg::CTRL, dev::CtrlBits{true, false, true}.pack());
    t.expect(!quiesced(), "work in flight: not quiesced yet");
    auto s = t.poll(a, a.scq, 8);
    t.expect(s.size() == 8,
             fmt::format("{} of 8 WQEs taken before the quiesce completed", s.size()));
    for (int i = 0; i < 1000 && !quiesced(); ++i) idle(a, 1 * kUs);
    t.expect(quiesced(), "quiesced once they completed");
    t.expect(t.same(a, 0, t.b, 0, 32768), "the data of the WQEs taken before arrived");
    // Posted while quiesced: held, nothing fetched or sent.
    t.fill(a, 0, 65536, 6);
    for (uint64_t i = 0; i < 4; ++i)
      t.post(a, WrOpcode::RDMA_WRITE, 10 + i, i * 4096, 4096, drv::kSendSignaled, 0, 0, i * 4096);
    s = t.poll(a, a.scq, 1);
    t.expect(s.empty(), "no completion while quiesced");
    t.expect(quiesced(), "still quiesced: the doorbells are held");
    t.expect(!t.same(a, 0, t.b, 0, 4096), "nothing sent while quiesced");
    // Released: they run.
    wr(a, dev::reg::CTRL, dev::CtrlBits{true, false, false}.pack());
    s = t.poll(a, a.scq, 4);
    t.expect(s.size() == 4 && s[0].wr_id == 10 && s[3].wr_id == 13,
             fmt::format("{} of 4 held WQEs completed after the release", s.size()));
    for (const auto& w : s)
      t.expect(w.status == WcStatus::SUCCESS, "held WQE completion: " + wc_str(w));
    idle(a, 10 * kUs);  // the responder's posted writes land after its ACK left
    t.expect(t.same(a, 0, t.b, 0, 16384), "their data arrived");
    t.expect(!quiesced(), "not quiesced once released");
  });
  t.report();
}

TEST_CASE("CTRL.enable 0 refuses new work, CQ and EQ doorbells still taken", "[devctl][enable]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    auto& a = t.a;
    wr(a, dev::reg::CTRL, 0);
    t.expect(!dev::StatusBits::unpack(rd(a, dev::reg::STATUS)).enabled, "STATUS.enabled 0");
    wr(a, dev::reg::CMD_DOORBELL, 1);
    t.expect(err_code(a) == dev::RegError::NOT_ENABLED, "CMD_DOORBELL: NOT_ENABLED");
    t.post(a, WrOpcode::RDMA_WRITE, 1, 0, 64, drv::kSendSignaled);
    t.expect(err_code(a) == dev::RegError::NOT_ENABLED, "send doorbell: NOT_ENABLED");
    wr(a, cq_db(a.scq), cq_doorbell_arm(a.scq));
    t.expect(err_code(a) == dev::RegError::NONE, "CQ doorbell taken");
    wr(a, dev::reg::CTRL, dev::CtrlBits{true, false, false}.pack());
    t.expect(rd(a, dev::reg::CTRL) == dev::reg::CTRL_RESET, "enabled again");
  });
  t.report();
}

TEST_CASE("Event queue overflow: events dropped, STATUS.eq_overrun, recovery by restarting",
          "[devctl][events]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    if (!completion_waiting(t)) return t.expect(false, "a completion waiting on B");
    auto& b = t.b;
    const uint64_t ring = eq_ring(b);
    restart_eq(b, ring, 1);  // 2 entries
    for (int i = 0; i < 5; ++i) wr(b, cq_db(b.rcq), cq_doorbell_arm(b.rcq));
    idle(b, 20 * kUs);
    auto e = valid_eqes(b, ring, 1);
    t.expect(e.size() == 2 && e[0].obj == b.rcq->cqn && e[1].obj == b.rcq->cqn,
             fmt::format("{} EQEs in the 2-entry queue", e.size()));
    t.expect(dev::StatusBits::unpack(rd(b, dev::reg::STATUS)).eq_overrun, "STATUS.eq_overrun");
    // Recovery: restart the (zeroed) queue; the flag clears and events flow again.
    restart_eq(b, ring, 1);
    t.expect(!dev::StatusBits::unpack(rd(b, dev::reg::STATUS)).eq_overrun, "cleared by restart");
    wr(b, cq_db(b.rcq), cq_doorbell_arm(b.rcq));
    idle(b, 20 * kUs);
    e = valid_eqes(b, ring, 1);
    t.expect(e.size() == 1 && e[0].type == static_cast<uint8_t>(dev::EqeType::COMPLETION),
             fmt::format("{} EQEs after the restart", e.size()));
  });
  t.report();
  auto st = t.sys->sim().stats.to_json();
  CHECK(stat(st, "host1.nic.cq", "eq_overruns") == 3);
}

TEST_CASE("Interrupt moderation: fewer MSI-X messages, every event still arrives",
          "[devctl][events]") {
  Bench t;
  std::vector<int> msis;
  t.run([&] {
    if (!t.setup()) return;
    if (!completion_waiting(t)) return t.expect(false, "a completion waiting on B");
    auto& b = t.b;
    const uint64_t ring = eq_ring(b);
    constexpr uint32_t kEvents = 18;
    // A driver that handles each interrupt at once: consumes every event written and re-arms.
    auto run = [&](uint32_t max_events, uint32_t period_ns) {
      wr(b, dev::reg::EQ_MODERATION, dev::EqModerationBits{max_events, period_ns}.pack());
      restart_eq(b, ring, 8);
      wr(b, dev::reg::EQ_DOORBELL, eq_doorbell(0, true));
      int n = 0;
      uint32_t ci = 0;
      for (uint32_t i = 0; i < kEvents; ++i) {
        wr(b, cq_db(b.rcq), cq_doorbell_arm(b.rcq));
        if (b.h->wait_interrupt(5000)) {
          ++n;
          ci = static_cast<uint32_t>(valid_eqes(b, ring, 8).size());
          wr(b, dev::reg::EQ_DOORBELL, eq_doorbell(ci, true));
        }
      }
      if (ci < kEvents && b.h->wait_interrupt(10'000'000)) ++n;  // the rest, by the timer
      idle(b, 5 * kUs);
      auto e = valid_eqes(b, ring, 8);
      t.expect(e.size() == kEvents, fmt::format("moderation {}/{}: {} of {} events arrived",
                                                max_events, period_ns, e.size(), kEvents));
      for (const auto& x : e)
        t.expect(x.obj == b.rcq->cqn && x.type == static_cast<uint8_t>(dev::EqeType::COMPLETION),
                 "a COMPLETION event of the CQ");
      msis.push_back(n);
    };
    run(0, 0);        // the reset value: one interrupt per event
    run(4, 100'000);  // one per 4 events; the last 2 by the 100 µs timer
  });
  t.report();
  REQUIRE(msis.size() == 2);
  CHECK(msis[0] == 18);
  CHECK(msis[1] == 5);
}

TEST_CASE("EQ_MODERATION refuses a count without a timer", "[devctl][events]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    wr(t.a, dev::reg::EQ_MODERATION, dev::EqModerationBits{4, 0}.pack());
    t.expect(err_code(t.a) == dev::RegError::BAD_VALUE, "max_events 4 with period 0: BAD_VALUE");
    t.expect(rd(t.a, dev::reg::EQ_MODERATION) == 0, "unchanged");
  });
  t.report();
}

TEST_CASE("vendor_err names why a send WQE failed (dev::VendorErr)", "[devctl][vendor_err]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 64, drv::kSendSignaled, 0, 0, 0, t.a.mr.lkey ^ 0x100);
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::LOC_PROT_ERR &&
                 s[0].vendor_err == static_cast<uint32_t>(dev::VendorErr::XLATE_BAD_KEY),
             s.empty() ? "no CQE" : wc_str(s[0]));
  });
  t.report();
}
