// The link in whole runs: its protocol checker watching every workload, and a run with faults
// ending cleanly (the RC transport does not retransmit yet). Each TEST_CASE is its own
// simulation (its own process under ctest).
#include <fmt/core.h>
#include <pcap/pcap.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "testbench/system/harness.h"

using namespace rn;

TEST_CASE("Protocol checker: every workload keeps the RC rules", "[link][check]") {
  auto cfg = test::make_config(
      {"link.check=true", "run.workloads=write_bw,send_bw,write_lat,send_lat",
       "write_bw.iterations=40", "write_bw.qps=3", "write_bw.size=10007", "write_bw.mtu=1024",
       "write_bw.imm=true", "send_bw.iterations=40", "send_bw.size=70000", "send_bw.sges=3",
       "send_bw.mtu=2048", "write_lat.iterations=30", "write_lat.size=5000",
       "send_lat.iterations=30", "send_lat.size=64", "capture.pcap=false"});
  auto sys = test::make_system(*cfg);
  REQUIRE(sys->checker() != nullptr);
  auto r = sys->run("");
  INFO(r.error);
  CHECK(r.ok);
  const net::ProtocolChecker& c = *sys->checker();
  for (const auto& v : c.violations()) FAIL_CHECK(v.text());
  CHECK(c.violation_count() == 0);
  CHECK(c.frames_checked() == r.packets);  // every frame sent was seen
  const auto j = r.json["stats"]["link0.check"];
  CHECK(j["requests"]["value"].get<uint64_t>() > 1000);
  CHECK(j["responses"]["value"].get<uint64_t>() > 100);
  CHECK(j["unchecked"]["value"] == 0);
  REQUIRE(r.workloads.size() == 4);
  for (const auto& w : r.workloads) CHECK(w.ok);
}

TEST_CASE(
    "A run with link.loss > 0 recovers every loss, and faults.csv names the lost frames in the "
    "pcap",
    "[link][faults]") {
  const std::string out = test::out_dir("link_loss");
  auto cfg = test::make_config({"link.loss=0.01", "link.seed=5", "run.workloads=write_bw",
                                "write_bw.iterations=300", "write_bw.size=16KiB",
                                "capture.max_packets=0"});
  auto sys = test::make_system(*cfg);
  auto r = sys->run(out);
  INFO(r.error);
  // Every loss is recovered by going back (sequence NAKs, the ACK timeout); every byte checked.
  CHECK(r.ok);
  CHECK(r.json["stats"]["host0.nic.req"]["retransmitted"]["value"].get<uint64_t>() > 0);
  const uint64_t lost = r.json["stats"]["link0"]["a_to_b_dropped"]["value"].get<uint64_t>() +
                        r.json["stats"]["link0"]["b_to_a_dropped"]["value"].get<uint64_t>();
  REQUIRE(lost > 0);
  bool noted = false;
  for (const auto& n : r.notes)
    noted |= n.find(fmt::format("{} dropped", lost)) != std::string::npos;
  CHECK(noted);
  // The pcap holds every frame sent, lost ones too: each row of faults.csv names one by number.
  std::vector<std::pair<uint8_t, uint32_t>> frames;  // (opcode, PSN)
  char ebuf[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline((out + "/wire.pcap").c_str(), ebuf);
  REQUIRE(p != nullptr);
  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  while (pcap_next_ex(p, &hdr, &data) == 1)
    frames.emplace_back(data[42],
                        (uint32_t(data[51]) << 16) | (uint32_t(data[52]) << 8) | data[53]);
  pcap_close(p);
  CHECK(frames.size() == r.packets);
  std::ifstream csv(out + "/faults.csv");
  REQUIRE(csv.good());
  std::string line;
  std::getline(csv, line);
  CHECK(line == "frame,pcap_frame,time_ps,side,action,cause,opcode,dest_qp,psn");
  uint64_t rows = 0;
  while (std::getline(csv, line)) {
    INFO(line);
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string x;
    while (std::getline(ss, x, ',')) f.push_back(x);
    REQUIRE(f.size() == 9);
    CHECK(f[0] == f[1]);  // every frame recorded: the pcap number is the link's
    CHECK(f[4] == "drop");
    CHECK(f[5] == "random");
    const size_t n = std::stoul(f[1]);
    REQUIRE(n >= 1);
    REQUIRE(n <= frames.size());
    CHECK(wire::op_info(frames[n - 1].first).name == f[6]);
    CHECK(std::to_string(frames[n - 1].second) == f[8]);
    ++rows;
  }
  CHECK(rows == lost);
}
