// Device interface v2 between two hosts: inline data and WQEs written with their doorbell, through
// the driver and through hand-built MMIO writes; and a version-1 driver on the version-2 device.
#include <fmt/core.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "testbench/system/device_bench.h"

using namespace rn;
using dev::RegError;
using dev::WcOpcode;
using dev::WcStatus;
using dev::WrOpcode;
using test::Bench;
using test::stat;
using test::wc_str;

namespace {
constexpr const char* kReq0 = "host0.nic.req";

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}
}  // namespace

TEST_CASE("A version-1 driver runs every workload on the version-2 device", "[v1]") {
  auto cfg = test::make_config(
      {"host.driver_interface=1", "run.workloads=write_bw,send_bw,write_lat,send_lat",
       "write_bw.iterations=200", "write_bw.size=3000", "send_bw.iterations=200",
       "send_bw.size=100", "write_lat.iterations=50", "send_lat.iterations=50", "send_lat.size=64",
       "capture.pcap=false"});
  auto sys = test::make_system(*cfg);
  auto r = sys->run("");
  INFO(r.error);
  REQUIRE(r.ok);
  for (const auto& w : r.workloads) {
    INFO(w.params.kind << ": " << w.error);
    CHECK(w.ok);
    CHECK(w.verified_bytes > 0);
  }
  // The latency workloads ask for inline data (perftest's defaults): a version-1 driver has none
  // to give. Nothing of version 2 was used: no CAPS read, no inline WQE, no WQE doorbell.
  const auto& st = r.json["stats"];
  for (const char* h : {"host0", "host1"}) {
    INFO(h);
    CHECK(stat(st, std::string(h) + ".pcie", "mmio_reads") == 2);  // ID and VERSION
    CHECK(stat(st, std::string(h) + ".nic.req", "inline_wqes") == 0);
    CHECK(stat(st, std::string(h) + ".nic.dev", "wqe_doorbells") == 0);
    CHECK(stat(st, std::string(h) + ".nic.req", "wqes_with_doorbell") == 0);
    CHECK(stat(st, std::string(h) + ".nic.dev", "sq_doorbells") > 0);
    CHECK(stat(st, std::string(h) + ".nic.dev", "register_errors") == 0);
  }
}

TEST_CASE("A version-1 driver sees no capabilities and refuses inline data as before", "[v1]") {
  Bench t({"host.driver_interface=1"});
  t.run([&] {
    if (!t.setup()) return;
    auto& d = *t.a.d;
    t.expect(d.device_version() == 2, "the device is version 2");
    t.expect(d.caps() == dev::CapsBits{}, "a version-1 driver uses no capability");
    t.expect(t.a.qp->max_inline_data == 0, "a QP with inline room");
    t.fill(t.a, 0, 64, 1);
    t.expect(t.post_inline(t.a, WrOpcode::RDMA_WRITE, 1, 0, 16) == EINVAL &&
                 d.last_error() == "post_send: inline data is not supported by device interface v1",
             "inline post: " + d.last_error());
    drv::QpCap cap;
    cap.max_inline_data = 16;
    drv::Qp* qp = nullptr;
    t.expect(d.create_qp(t.a.pdn, t.a.scq, t.a.rcq, cap, false, &qp) == EINVAL &&
                 has(d.last_error(), "no inline data with device interface v1"),
             "create_qp with inline: " + d.last_error());
    // The same WRITE without inline: a 4-byte doorbell, the WQE fetched.
    t.expect(t.post(t.a, WrOpcode::RDMA_WRITE, 2, 0, 64, drv::kSendSignaled) == 0, "post");
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::SUCCESS, "CQE");
    t.expect(t.same(t.a, 0, t.b, 0, 64), "data");
  });
  CHECK(stat(t.stats, "host0.nic.dev", "wqe_doorbells") == 0);
  CHECK(stat(t.stats, "host0.nic.dev", "sq_doorbells") == 1);
  CHECK(stat(t.stats, kReq0, "wqe_fetches") == 1);
  t.report();
}

TEST_CASE("Inline WRITEs and SENDs arrive byte-exact, their buffers free at once", "[inline]") {
  Bench t;
  t.max_inline_data = 480;
  t.run([&] {
    if (!t.setup()) return;
    auto& d = *t.a.d;
    t.expect(d.caps().inline_data && d.caps().wqe_doorbell &&
                 d.caps().max_inline_data == dev::kMaxSendInline,
             "capabilities");
    t.expect(t.a.qp->max_inline_data == 480, "QP inline room");
    struct Msg {
      WrOpcode op;
      uint32_t len;
      int pieces;
      uint64_t dst;  // in b's buffer
    };
    const Msg msgs[] = {
        {WrOpcode::RDMA_WRITE, 1, 1, 0},
        {WrOpcode::RDMA_WRITE, 31, 1, 100},
        {WrOpcode::RDMA_WRITE_WITH_IMM, 224, 2, 200},
        {WrOpcode::SEND, 0, 1, 1000},
        {WrOpcode::SEND, 64, 1, 2000},
        {WrOpcode::SEND_WITH_IMM, 480, 3, 3000},
        {WrOpcode::RDMA_WRITE, 480, 4, 4000},
        {WrOpcode::SEND, 225, 1, 5000},
    };
    int recvs = 0;
    for (const Msg& m : msgs)
      if (m.op != WrOpcode::RDMA_WRITE) t.recv(t.b, 500 + recvs++, m.dst, 1000);
    std::vector<std::vector<uint8_t>> sent;
    for (size_t i = 0; i < std::size(msgs); ++i) {
      const Msg& m = msgs[i];
      t.fill(t.a, 8192, m.len, 100 + i);
      sent.push_back(Bench::mem(t.a, 8192, m.len));
      const bool is_write = m.op == WrOpcode::RDMA_WRITE || m.op == WrOpcode::RDMA_WRITE_WITH_IMM;
      t.expect(t.post_inline(t.a, m.op, i, 8192, m.len, drv::kSendSignaled, 0xC0DE0000u + i,
                             is_write ? m.dst : 0, m.pieces) == 0,
               fmt::format("post {}: {}", i, d.last_error()));
      t.fill(t.a, 8192, 480, 999);  // reused at once: the message must not see it
    }
    auto s = t.poll(t.a, t.a.scq, std::size(msgs));
    auto r = t.poll(t.b, t.b.rcq, recvs);  // the SENDs and the WRITE with immediate
    t.expect(s.size() == std::size(msgs), fmt::format("{} send CQEs", s.size()));
    for (size_t i = 0; i < s.size(); ++i)
      t.expect(s[i].status == WcStatus::SUCCESS && s[i].wr_id == i, "send CQE " + wc_str(s[i]));
    t.expect(r.size() == size_t(recvs), fmt::format("{} receive CQEs", r.size()));
    size_t k = 0;
    for (size_t i = 0; i < std::size(msgs); ++i) {
      const Msg& m = msgs[i];
      t.expect(Bench::mem(t.b, m.dst, m.len) == sent[i], fmt::format("message {}: bytes", i));
      if (m.op == WrOpcode::RDMA_WRITE || k >= r.size()) continue;
      const bool imm = m.op == WrOpcode::SEND_WITH_IMM || m.op == WrOpcode::RDMA_WRITE_WITH_IMM;
      t.expect(r[k].byte_len == m.len && bool(r[k].wc_flags & drv::kWcWithImm) == imm &&
                   (!imm || r[k].imm_data == 0xC0DE0000u + i),
               fmt::format("message {}: receive CQE {}", i, wc_str(r[k])));
      ++k;
    }
    t.expect(t.untouched(t.b, 1, 99) && t.untouched(t.b, 2000 + 64, 936),
             "bytes around the messages were written");
  });
  // Every message was inline; those of up to 224 bytes (a 256-byte WQE) came with the doorbell.
  CHECK(stat(t.stats, kReq0, "inline_wqes") == 8);
  CHECK(stat(t.stats, kReq0, "wqes_with_doorbell") +
            stat(t.stats, kReq0, "wqe_doorbell_fallbacks") ==
        5);
  CHECK(stat(t.stats, "host0.nic.dev", "wqe_doorbells") == 5);
  CHECK(stat(t.stats, "host0.nic.dev", "register_errors") == 0);
  t.report();
}

TEST_CASE("post_send refuses inline data it cannot carry, with a clear error", "[inline]") {
  Bench t;
  t.max_inline_data = 100;  // a 256-byte stride: 224 inline bytes
  t.run([&] {
    if (!t.setup()) return;
    auto& d = *t.a.d;
    t.expect(t.a.qp->max_inline_data == 224, "QP inline room");
    auto refused = [&](int got, int want, const std::string& part, const char* what) {
      t.expect(got == want && has(d.last_error(), part),
               fmt::format("{}: {} '{}'", what, got, d.last_error()));
    };
    refused(t.post_inline(t.a, WrOpcode::SEND, 1, 0, 225), EINVAL,
            fmt::format("225 bytes inline > max_inline_data 224 of QP {}", t.a.qp->qpn),
            "one byte too many");
    refused(t.post_inline(t.a, WrOpcode::RDMA_READ, 2, 0, 8), EINVAL,
            "inline data goes with RDMA WRITE and SEND only", "inline READ");
    {
      // Far above every application buffer: not mapped.
      drv::Sge sg{host::SimHost::kAppBase + (uint64_t(1) << 40), 8, 0};
      drv::SendWr wr;
      wr.sg_list = &sg;
      wr.num_sge = 1;
      wr.opcode = WrOpcode::SEND;
      wr.send_flags = drv::kSendInline;
      const drv::SendWr* bad = nullptr;
      refused(d.post_send(t.a.qp, &wr, &bad), EFAULT, "is not mapped", "unmapped inline data");
      t.expect(bad == &wr, "bad_wr");
    }
    drv::QpCap cap;
    cap.max_inline_data = dev::kMaxSendInline + 1;
    drv::Qp* qp = nullptr;
    refused(d.create_qp(t.a.pdn, t.a.scq, t.a.rcq, cap, false, &qp), EINVAL,
            "max_inline_data 481 > 480", "create_qp over the device's inline room");
    t.expect(t.a.qp->sq_pi == 0, "a refused WR was posted");
    // Nothing refused reached the device; the QP carries on.
    t.fill(t.a, 0, 224, 5);
    t.expect(t.post_inline(t.a, WrOpcode::RDMA_WRITE, 3, 0, 224) == 0, "post: " + d.last_error());
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::SUCCESS && s[0].wr_id == 3,
             s.empty() ? "no CQE" : wc_str(s[0]));
    t.expect(t.same(t.a, 0, t.b, 0, 224), "data");
  });
  CHECK(stat(t.stats, kReq0, "wqes_started") == 1);
  t.report();
}

TEST_CASE("The device refuses malformed WQE doorbells and carries on", "[doorbell]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;  // 16-entry send queues of 64-byte WQEs
    auto& io = *t.a.h;
    const uint32_t qpn = t.a.qp->qpn;
    const uint64_t base = dev::kWqeDbBase + dev::kWqeDbStride * qpn;
    int refusals = 0;
    auto err = [&](RegError want, uint64_t off, const char* what) {
      const uint32_t code = io.mmio_read32(dev::reg::ERR_CODE);
      const uint32_t info = io.mmio_read32(dev::reg::ERR_INFO);
      t.expect(code == static_cast<uint32_t>(want) && (want == RegError::NONE || info == off),
               fmt::format("{}: ERR_CODE {} ERR_INFO {:#x}", what,
                           dev::to_string(static_cast<RegError>(code)), info));
      if (want != RegError::NONE) ++refusals;
    };
    // A well-formed 64-byte WRITE WQE at index 0, and variations of it.
    auto wqe = [&](auto change) {
      dev::SendWqe h{};
      h.opcode = static_cast<uint8_t>(WrOpcode::RDMA_WRITE);
      h.num_sge = 1;
      h.remote_addr = t.b.buf;
      h.rkey = t.b.mr.rkey;
      change(h);
      std::vector<uint8_t> w(256, 0);
      std::memcpy(w.data(), &h, sizeof h);
      const dev::Sge g{t.a.buf, 64, t.a.mr.lkey};
      std::memcpy(w.data() + sizeof h, &g, sizeof g);
      return w;
    };
    const auto good = wqe([](dev::SendWqe&) {});
    io.mmio_write(base + 64, good.data(), 64);
    err(RegError::BAD_OFFSET, base + 64, "not at the start of the area");
    io.mmio_write(base, good.data(), 20);
    err(RegError::WIDTH, base, "shorter than a WQE header");
    io.mmio_write(base, good.data(), 34);
    err(RegError::WIDTH, base, "not whole 32-bit words");
    io.mmio_write32(base, 1);
    err(RegError::WIDTH, base, "a 32-bit write");
    io.mmio_write(base, good.data(), 300);  // longer than a burst: the bridge refuses it
    err(RegError::NONE, base, "a 300-byte burst reached the device");
    const uint64_t none = dev::kWqeDbBase + dev::kWqeDbStride * 999;
    io.mmio_write(none, good.data(), 64);
    err(RegError::NO_SUCH_QP, none, "a QP that does not exist");
    const auto more_sges = wqe([](dev::SendWqe& h) { h.num_sge = 3; });
    io.mmio_write(base, more_sges.data(), 64);
    err(RegError::BAD_WQE, base, "SGEs past the end of the write");
    const auto past_stride = wqe([](dev::SendWqe& h) { h.num_sge = 4; });
    io.mmio_write(base, past_stride.data(), 128);
    err(RegError::BAD_WQE, base, "a WQE larger than the QP's 64-byte stride");
    const auto long_inline = wqe([](dev::SendWqe& h) {
      h.flags = static_cast<uint8_t>(dev::WqeFlags::INLINE);
      h.num_sge = 0;
      h.inline_len = 100;
    });
    io.mmio_write(base, long_inline.data(), 64);
    err(RegError::BAD_WQE, base, "inline data past the end of the write");
    const auto inline_sges = wqe([](dev::SendWqe& h) {
      h.flags = static_cast<uint8_t>(dev::WqeFlags::INLINE);
      h.inline_len = 8;
    });
    io.mmio_write(base, inline_sges.data(), 64);
    err(RegError::BAD_WQE, base, "inline data and an SGE");
    const auto ahead = wqe([](dev::SendWqe& h) { h.wqe_index = 16; });
    io.mmio_write(base, ahead.data(), 64);
    err(RegError::DB_RANGE, base, "an index past the ring");
    // A QP not yet ready to send.
    drv::QpCap cap;
    drv::Qp* idle = nullptr;
    if (t.a.d->create_qp(t.a.pdn, t.a.scq, t.a.rcq, cap, false, &idle) == 0) {
      const uint64_t at = dev::kWqeDbBase + dev::kWqeDbStride * idle->qpn;
      io.mmio_write(at, good.data(), 64);
      err(RegError::QP_STATE, at, "a QP in RESET");
    }
    // Bursts to registers: 4 bytes is a register write; more is refused.
    const uint32_t data = 7;
    io.mmio_write(dev::reg::MSIX_DATA, &data, 4);
    err(RegError::NONE, dev::reg::MSIX_DATA, "a 4-byte burst to a register");
    t.expect(io.mmio_read32(dev::reg::MSIX_DATA) == 7, "MSIX_DATA by a 4-byte burst");
    io.mmio_write32(dev::reg::MSIX_DATA, 0);  // as the driver set it
    io.mmio_write(dev::reg::MSIX_DATA, good.data(), 8);
    err(RegError::WIDTH, dev::reg::MSIX_DATA, "an 8-byte burst to a register");
    t.expect(io.mmio_read32(dev::reg::ERR_COUNT) == uint32_t(refusals), "ERR_COUNT");
    t.expect(t.stat_now(kReq0, "wqes_started") == 0 && t.stat_now(kReq0, "wqe_fetches") == 0,
             "a refused write started or fetched a WQE");
    // The QP still works, with its doorbell WQEs (the driver's index is still 0).
    t.fill(t.a, 0, 64, 9);
    t.expect(t.post(t.a, WrOpcode::RDMA_WRITE, 4, 0, 64, drv::kSendSignaled) == 0, "post");
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::SUCCESS && s[0].wr_id == 4,
             s.empty() ? "no CQE after refused writes" : wc_str(s[0]));
    t.expect(t.same(t.a, 0, t.b, 0, 64), "data after refused writes");
  });
  CHECK(stat(t.stats, "host0.nic.dev", "wqe_doorbells") == 1);
  CHECK(stat(t.stats, kReq0, "wqes_with_doorbell") == 1);
  CHECK(stat(t.stats, "host0.pcie", "mmio_errors") == 1);
  t.report();
}

TEST_CASE("perftest workloads with inline data check every byte", "[inline][workload]") {
  auto cfg =
      test::make_config({"run.workloads=write_bw,send_bw,write_lat,send_lat", "write_bw.size=200",
                         "write_bw.inline_size=200", "write_bw.iterations=300", "write_bw.qps=2",
                         "send_bw.size=480", "send_bw.inline_size=480", "send_bw.iterations=300",
                         "send_bw.mtu=256", "write_lat.size=220", "write_lat.iterations=50",
                         "send_lat.size=236", "send_lat.iterations=50", "capture.pcap=false"});
  auto sys = test::make_system(*cfg);
  auto r = sys->run("");
  INFO(r.error);
  REQUIRE(r.ok);
  REQUIRE(r.workloads.size() == 4);
  for (const auto& w : r.workloads) {
    INFO(w.params.kind << ": " << w.error);
    CHECK(w.ok);
    CHECK(w.verified_bytes > 0);
  }
  const auto& st = r.json["stats"];
  // Every message of every workload went inline: 600 + 300 + 50 + 50 from the client, 100 from
  // the server (the latency tests' answers), counting warm-up round trips.
  CHECK(stat(st, kReq0, "inline_wqes") >= 1000);
  CHECK(stat(st, "host1.nic.req", "inline_wqes") >= 100);
  CHECK(stat(st, kReq0, "local_errors") == 0);
}
