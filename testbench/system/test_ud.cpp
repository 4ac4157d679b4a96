// UD (unreliable datagram) QPs end to end: datagrams both ways through two NICs with every byte
// checked behind the GRH area, and the send_bw and send_lat workloads over UD (and UC), the
// protocol checker on, a lossy link counting what arrived instead of waiting for ever.
#include "testbench/system/device_bench.h"

using namespace rn;
using namespace rn::test;

namespace {

system::RunReport run_checked(std::vector<std::string> sets, system::System** keep = nullptr) {
  static std::unique_ptr<cfg::Config> cfg;
  static std::unique_ptr<system::System> sys;
  sets.push_back("link.check=true");
  sets.push_back("capture.pcap=false");
  cfg = test::make_config(sets);
  sys = test::make_system(*cfg);
  if (keep) *keep = sys.get();
  return sys->run("");
}

uint64_t stat_of(const system::RunReport& r, const char* group, const char* name) {
  return r.json["stats"][group][name]["value"].get<uint64_t>();
}

void no_violations(system::System* sys) {
  REQUIRE(sys->checker() != nullptr);
  for (const auto& v : sys->checker()->violations()) FAIL_CHECK(v.text());
  CHECK(sys->checker()->violation_count() == 0);
}
}  // namespace

TEST_CASE("UD datagrams both ways: every byte behind the GRH area, the source QP in each CQE",
          "[ud]") {
  Bench t({"link.check=true"});
  t.qp_type = dev::QpType::UD;
  t.run([&] {
    if (!t.setup(kLW, kLW, 16, 2, 65536)) return;
    t.fill(t.a, 0, 8192, 11);
    t.fill(t.b, 0, 8192, 12);
    for (uint64_t i = 0; i < 4; ++i) {
      t.recv(t.b, 10 + i, 16384 + i * 8192, 4096 + 40);
      t.recv(t.a, 20 + i, 16384 + i * 8192, 4096 + 40);
    }
    t.post(t.a, WrOpcode::SEND, 1, 0, 4096, drv::kSendSignaled);
    t.post(t.a, WrOpcode::SEND_WITH_IMM, 2, 4096, 1, drv::kSendSignaled, 0xBEEF);
    t.post(t.a, WrOpcode::SEND, 3, 100, 0, drv::kSendSignaled);
    t.post(t.b, WrOpcode::SEND, 4, 7, 3001, drv::kSendSignaled | drv::kSendSolicited);
    auto wa = t.poll(t.a, t.a.scq, 3);
    auto wb = t.poll(t.b, t.b.scq, 1);
    t.expect(wa.size() == 3 && wb.size() == 1, "send CQEs missing");
    auto rb = t.poll(t.b, t.b.rcq, 3);
    auto ra = t.poll(t.a, t.a.rcq, 1);
    t.expect(rb.size() == 3 && ra.size() == 1,
             fmt::format("{} + {} receive CQEs of 3 + 1", rb.size(), ra.size()));
    if (rb.size() == 3) {
      const uint32_t lens[3] = {4136, 41, 40};
      for (int i = 0; i < 3; ++i)
        t.expect(rb[i].status == WcStatus::SUCCESS && rb[i].byte_len == lens[i] &&
                     rb[i].src_qp == t.a.qp->qpn && (rb[i].wc_flags & drv::kWcGrh),
                 wc_str(rb[i]));
      t.expect(rb[1].imm_data == 0xBEEF && (rb[1].wc_flags & drv::kWcWithImm), wc_str(rb[1]));
    }
    if (ra.size() == 1)
      t.expect(ra[0].byte_len == 3041 && ra[0].src_qp == t.b.qp->qpn, wc_str(ra[0]));
    t.b.h->cpu(5 * kUs);
    t.a.h->cpu(5 * kUs);
    t.expect(t.same(t.a, 0, t.b, 16384 + 40, 4096), "first datagram's bytes");
    t.expect(t.same(t.a, 4096, t.b, 16384 + 8192 + 40, 1), "second datagram's byte");
    t.expect(t.untouched(t.b, 16384 + 8192 + 41, 100), "written past the second datagram");
    t.expect(t.untouched(t.b, 16384 + 2 * 8192 + 40, 100), "the empty datagram wrote payload");
    t.expect(t.same(t.b, 7, t.a, 16384 + 40, 3001), "b's datagram's bytes");
    t.expect(t.untouched(t.a, 16384, 20), "GRH area's first 20 bytes written");
  });
  CHECK(stat(t.stats, "link0.check", "ud_datagrams") == 4);
  CHECK(stat(t.stats, "link0.check", "violations") == 0);
  CHECK(stat(t.stats, "host1.nic.tx", "control_frames") == 0);
  t.report();
}

TEST_CASE("send_bw over UD: every message received and every byte checked", "[ud][workload]") {
  system::System* sys = nullptr;
  auto r = run_checked({"run.workloads=send_bw", "send_bw.qp_type=UD", "send_bw.size=4096",
                        "send_bw.iterations=300", "send_bw.qps=2", "send_bw.sges=3"},
                       &sys);
  INFO(r.error);
  REQUIRE(r.ok);
  REQUIRE(r.workloads.size() == 1);
  const auto& w = r.workloads[0];
  CHECK(w.ok);
  CHECK(w.messages == 600);
  CHECK(w.receives == 600);
  CHECK(w.verified_bytes == 2 * 4096);
  CHECK(w.goodput_gbps > 50);
  CHECK(r.json["run"]["workloads"]["send_bw"]["qp_type"] == "UD");
  CHECK(r.json["run"]["workloads"]["send_bw"]["receive_completions"] == 600);
  CHECK(stat_of(r, "link0.check", "ud_datagrams") == 600);
  CHECK(stat_of(r, "link0.check", "requests") == 0);
  CHECK(stat_of(r, "host1.nic.resp", "messages") == 600);
  no_violations(sys);
}

TEST_CASE("send_lat over UD: round trips of datagrams, every byte checked", "[ud][workload]") {
  system::System* sys = nullptr;
  auto r = run_checked({"run.workloads=send_lat", "send_lat.qp_type=UD", "send_lat.size=1000",
                        "send_lat.iterations=50", "send_lat.warmup=5"},
                       &sys);
  INFO(r.error);
  REQUIRE(r.ok);
  const auto& w = r.workloads[0];
  CHECK(w.ok);
  CHECK(w.latency.count() == 50);
  CHECK(w.verified_bytes == 2 * 999);
  CHECK(stat_of(r, "link0.check", "ud_datagrams") == 110);
  no_violations(sys);
}

TEST_CASE("send_bw over UD on a lossy link counts what arrived and ends", "[ud][workload]") {
  system::System* sys = nullptr;
  auto r = run_checked({"run.workloads=send_bw", "send_bw.qp_type=UD", "send_bw.size=1024",
                        "send_bw.iterations=400", "link.loss=0.05", "link.seed=7"},
                       &sys);
  INFO(r.error);
  REQUIRE(r.ok);
  const auto& w = r.workloads[0];
  CHECK(w.ok);
  CHECK(w.messages == 400);
  CHECK(w.receives < 400);
  CHECK(w.receives > 300);
  CHECK(w.receives == stat_of(r, "host1.nic.resp", "messages"));
  CHECK(w.verified_bytes == 1024);
  no_violations(sys);
}

TEST_CASE("send_bw and write_bw over UC: messages of several packets, every byte checked",
          "[ud][uc][workload]") {
  system::System* sys = nullptr;
  auto r = run_checked({"run.workloads=send_bw,write_bw", "send_bw.qp_type=UC",
                        "send_bw.size=20000", "send_bw.iterations=60", "write_bw.qp_type=UC",
                        "write_bw.size=30000", "write_bw.iterations=60", "write_bw.imm=true"},
                       &sys);
  INFO(r.error);
  REQUIRE(r.ok);
  REQUIRE(r.workloads.size() == 2);
  for (const auto& w : r.workloads) {
    INFO(w.params.kind << ": " << w.error);
    CHECK(w.ok);
    CHECK(w.verified_bytes > 0);
    CHECK(w.receives == 60);
  }
  CHECK(stat_of(r, "host1.nic.resp", "acks") == 0);
  CHECK(stat_of(r, "host1.nic.resp", "messages") == 120);
}

TEST_CASE("send_bw over UD with use_srq: the server's UD QPs take their WQEs from one SRQ",
          "[ud][srq][workload]") {
  system::System* sys = nullptr;
  auto r = run_checked({"run.workloads=send_bw", "send_bw.qp_type=UD", "send_bw.use_srq=true",
                        "send_bw.size=2000", "send_bw.iterations=200", "send_bw.qps=3"},
                       &sys);
  INFO(r.error);
  REQUIRE(r.ok);
  REQUIRE(r.workloads.size() == 1);
  const auto& w = r.workloads[0];
  CHECK(w.ok);
  CHECK(w.messages == 600);
  CHECK(w.receives == 600);
  CHECK(w.verified_bytes == 3 * 2000);
  CHECK(stat_of(r, "host1.nic.resp", "srq_wqes_taken") == 600);
  CHECK(stat_of(r, "host1.nic.resp", "rwqe_fetches") == 0);
  CHECK(stat_of(r, "host1.nic.resp", "ud_no_wqe_drops") == 0);
  CHECK(stat_of(r, "host1.nic.resp", "messages") == 600);
  no_violations(sys);
}
