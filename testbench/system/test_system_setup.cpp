// How a System is set up: SystemC's time unit, each host's own PCIe link, the driver's tables of
// QPs under churn, workload buffers given back between workloads. Each TEST_CASE is its own
// simulation (its own process under ctest).
#include <fmt/core.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <set>
#include <string>

#include "bridge/pcie/params.h"
#include "testbench/system/harness.h"

using namespace rn;

TEST_CASE("SystemC's time resolution is set to 1 ps when a System is built", "[setup]") {
  auto cfg =
      test::make_config({"run.workloads=send_lat", "send_lat.iterations=5", "capture.pcap=false"});
  auto sys = test::make_system(*cfg);
  CHECK(sc_core::sc_get_time_resolution() == sc_core::sc_time(1, sc_core::SC_PS));
  // Set explicitly, not left to SystemC's default: SystemC refuses to set it a second time.
  std::string why;
  try {
    sc_core::sc_set_time_resolution(1, sc_core::SC_PS);
  } catch (const sc_core::sc_report& e) {
    why = e.what();
  }
  INFO(why);
  CHECK(why.find("already specified") != std::string::npos);
  // One Tick is one unit of SystemC time: a run's simulated time reads the same both ways.
  auto r = sys->run("");
  REQUIRE(r.ok);
  CHECK(static_cast<Tick>(sc_core::sc_time_stamp().value()) <= r.sim_time);
  CHECK(sc_core::sc_time_stamp().to_seconds() ==
        Approx(ticks_to_sec(static_cast<Tick>(sc_core::sc_time_stamp().value()))));
}

TEST_CASE("Each host has its own PCIe link: host0 Gen3, host1 Gen5", "[setup][pcie]") {
  auto cfg =
      test::make_config({"host0.pcie.gen=3", "host1.pcie.gen=5", "host1.pcie.lanes=8",
                         "run.workloads=write_bw", "write_bw.iterations=50", "capture.pcap=false"});
  auto sys = test::make_system(*cfg);
  auto r = sys->run("");
  INFO(r.error);
  REQUIRE(r.ok);
  const auto& st = r.json["stats"];
  const double g0 = st["host0.pcie"]["tlp_layer_gbps"]["value"].get<double>();
  const double g1 = st["host1.pcie"]["tlp_layer_gbps"]["value"].get<double>();
  pcie::Params p0, p1;
  p0.gen = 3;
  p0.lanes = 16;
  p1.gen = 5;
  p1.lanes = 8;
  CHECK(g0 == Approx(pcie::tlp_gbps(p0)));
  CHECK(g1 == Approx(pcie::tlp_gbps(p1)));
  CHECK(g1 > g0);
  // The effective keys: host1's own, host0 falls back to pcie.* where its key is not set.
  CHECK(system::System::pcie_key(*cfg, 1, "lanes") == "host1.pcie.lanes");
  CHECK(system::System::pcie_key(*cfg, 0, "lanes") == "pcie.lanes");
  CHECK(system::System::host_pcie(*cfg, 0).lanes == 16);
  CHECK(system::System::host_pcie(*cfg, 1).lanes == 8);
}

TEST_CASE("Both hosts take the shared pcie.* keys when no host key is set", "[setup][pcie]") {
  auto cfg = test::make_config({"pcie.gen=4", "pcie.lanes=4", "run.workloads=write_bw",
                                "write_bw.iterations=20", "capture.pcap=false"});
  auto sys = test::make_system(*cfg);
  auto r = sys->run("");
  INFO(r.error);
  REQUIRE(r.ok);
  pcie::Params p;
  p.gen = 4;
  p.lanes = 4;
  for (const char* g : {"host0.pcie", "host1.pcie"})
    CHECK(r.json["stats"][g]["tlp_layer_gbps"]["value"].get<double>() == Approx(pcie::tlp_gbps(p)));
}

TEST_CASE("Driver: QPs created and destroyed in random order keep valid numbers", "[driver]") {
  auto cfg = test::make_config({"nic.max_qps=512", "capture.pcap=false"});
  auto sys = test::make_system(*cfg);
  drv::Driver& d = *sys->node(0).driver;
  std::vector<std::string> failures;
  auto expect = [&](bool ok, const std::string& what) {
    if (!ok) failures.push_back(what);
  };
  size_t checked = 0;
  auto body = [&] {
    uint32_t pdn = 0;
    drv::Cq* cq = nullptr;
    if (d.open() || d.alloc_pd(&pdn) || d.create_cq(256, &cq)) {
      failures.push_back("setup: " + d.last_error());
      return;
    }
    std::mt19937 rng(7);
    std::vector<drv::Qp*> live;
    auto create = [&](int n) {
      for (int i = 0; i < n; ++i) {
        drv::Qp* qp = nullptr;
        drv::QpCap cap;
        cap.max_send_wr = 4;
        cap.max_recv_wr = 4;
        if (int e = d.create_qp(pdn, cq, cq, cap, false, &qp)) {
          failures.push_back(fmt::format("create_qp: {} ({})", e, d.last_error()));
          return;
        }
        live.push_back(qp);
      }
    };
    // Every live QP is found under its number, numbers are distinct and valid (>= 2: 0 and 1 are
    // reserved), the device knows each one, and nothing else is in the table.
    auto verify = [&](const std::string& when) {
      std::set<uint32_t> qpns;
      for (drv::Qp* qp : live) {
        expect(qp->qpn >= 2, fmt::format("{}: QPN {} is reserved", when, qp->qpn));
        expect(qpns.insert(qp->qpn).second, fmt::format("{}: QPN {} twice", when, qp->qpn));
        expect(d.find_qp(qp->qpn) == qp, fmt::format("{}: QPN {} not found", when, qp->qpn));
        dev::QueryQpOut q{};
        expect(d.query_qp(qp, &q) == 0,
               fmt::format("{}: query_qp({}): {}", when, qp->qpn, d.last_error()));
        ++checked;
      }
      expect(d.qp_count() == live.size(),
             fmt::format("{}: the driver has {} QPs, {} live", when, d.qp_count(), live.size()));
      expect(cq->users == static_cast<int>(2 * live.size()),
             fmt::format("{}: CQ users {}, expected {}", when, cq->users, 2 * live.size()));
    };
    create(300);
    verify("created");
    for (int round = 0; round < 4; ++round) {
      std::shuffle(live.begin(), live.end(), rng);
      const size_t drop = live.size() / 2 + static_cast<size_t>(round);
      std::set<uint32_t> gone;
      for (size_t i = 0; i < drop; ++i) {
        gone.insert(live.back()->qpn);
        if (int e = d.destroy_qp(live.back()))
          failures.push_back(fmt::format("destroy_qp: {} ({})", e, d.last_error()));
        live.pop_back();
      }
      for (uint32_t qpn : gone)
        expect(d.find_qp(qpn) == nullptr, fmt::format("destroyed QPN {} still found", qpn));
      verify(fmt::format("round {} destroyed", round));
      create(static_cast<int>(drop) + 20);  // numbers come back, some new ones
      verify(fmt::format("round {} recreated", round));
    }
    std::shuffle(live.begin(), live.end(), rng);
    while (!live.empty()) {
      d.destroy_qp(live.back());
      live.pop_back();
    }
    verify("all destroyed");
    const uint32_t cqn = cq->cqn;  // destroy_cq frees *cq
    expect(d.destroy_cq(cq) == 0 && d.find_cq(cqn) == nullptr && d.cq_count() == 0, "destroy_cq");
  };
  auto r = sys->run_custom(body, {});
  INFO(r.error);
  for (const auto& f : failures) FAIL_CHECK(f);
  CHECK(failures.empty());
  CHECK(checked > 1000);
}

TEST_CASE("Each workload's buffers are given back before the next one", "[setup][memory]") {
  // Three 64 MiB WRITE workloads one after the other: the memory holds one workload's buffers
  // (and its rings) at a time, not all three.
  const uint64_t size = 64ull << 20;
  auto cfg = test::make_config(
      {"run.workloads=write_bw,send_bw,write_lat", fmt::format("write_bw.size={}", size),
       "write_bw.iterations=2", "write_bw.cq_mod=1", fmt::format("send_bw.size={}", size),
       "send_bw.iterations=2", "send_bw.cq_mod=1", fmt::format("write_lat.size={}", size),
       "write_lat.iterations=2", "host.driver_timeout=1s", "capture.pcap=false"});
  auto sys = test::make_system(*cfg);
  auto r = sys->run("");
  INFO(r.error);
  REQUIRE(r.ok);
  // The pages still mapped once every workload is done: the rings of the driver's event queue
  // and command block, nothing of the workloads.
  const double pages = r.json["stats"]["host0"]["mem_pages"]["value"].get<double>() +
                       r.json["stats"]["host1"]["mem_pages"]["value"].get<double>();
  CHECK(pages < 64);
}

namespace {
// Runs `sets` with one byte of host `host`'s memory at virtual address `va` changed at simulated
// time `when` (during the traffic), and returns the report.
system::RunReport run_with_byte_changed(const std::vector<std::string>& sets, int host, uint64_t va,
                                        Tick when) {
  auto cfg = test::make_config(sets);
  auto sys = test::make_system(*cfg);
  host::SimHost& h = *sys->node(host).host;
  sys->sim().eq.at(when, [&h, va] {
    uint8_t b = 0;
    h.app_read(va, &b, 1);
    b = static_cast<uint8_t>(~b);
    h.app_write(va, &b, 1);
  });
  return sys->run("");
}
}  // namespace

TEST_CASE("The server checks its received bytes in the run: a changed guard byte fails write_bw",
          "[setup][verify]") {
  // The server's first buffer is QP 0's destination: 64 KiB, then the 64 guard bytes.
  auto r = run_with_byte_changed(
      {"run.workloads=write_bw", "write_bw.iterations=200", "capture.pcap=false"}, 1,
      host::SimHost::kAppBase + 65536 + 10, 500 * kUs);
  REQUIRE(r.workloads.size() == 1);
  INFO(r.workloads[0].error);
  CHECK(!r.ok);
  CHECK(r.workloads[0].error.find("server QP 0: byte 65546 past the end of the 65536-byte message "
                                  "was overwritten") != std::string::npos);
}

TEST_CASE("A latency client checks its received bytes and guard too", "[setup][verify]") {
  // The client's buffers: QP 0's source (one page, then an unmapped guard page), then its
  // destination, whose guard bytes follow the 64-byte message.
  auto r = run_with_byte_changed({"run.workloads=send_lat", "send_lat.size=64",
                                  "send_lat.iterations=200", "capture.pcap=false"},
                                 0, host::SimHost::kAppBase + 2 * 4096 + 64 + 3, 200 * kUs);
  REQUIRE(r.workloads.size() == 1);
  INFO(r.workloads[0].error);
  CHECK(!r.ok);
  CHECK(r.workloads[0].error.find("client QP 0: byte 67 past the end") != std::string::npos);
}
