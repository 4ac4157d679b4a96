// The READ and atomic workloads (read_bw, read_lat, atomic_bw, atomic_lat, as perftest's
// ib_read_* and ib_atomic_*) through System: every byte read and every value returned checked,
// completions and the responder's counters against the messages, and a changed byte or value
// failing the run. Each TEST_CASE is its own simulation (its own process under ctest).
#include <fmt/core.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <catch2/catch.hpp>

#include "testbench/system/harness.h"

using namespace rn;

namespace {

using test::only;
using test::run;
using test::stat;

// A bandwidth workload: every message counted, goodput and message rate in the report and in
// stats.json.
void check_bw(const system::RunReport& r, const host::WorkloadResult& w, uint64_t messages) {
  CHECK(w.messages == messages);
  CHECK(w.bytes == messages * w.params.size);
  CHECK(w.completions > 0);
  CHECK(w.goodput_gbps > 0);
  CHECK(w.msg_rate_mpps > 0);
  const auto& j = r.json["run"]["workloads"][w.params.kind];
  CHECK(j["goodput_gbps"].get<double>() == w.goodput_gbps);
  CHECK(j["msg_rate_mpps"].get<double>() == w.msg_rate_mpps);
  CHECK(j["messages"].get<uint64_t>() == messages);
}

// Runs `sets` with one byte of host `host`'s memory at virtual address `va` changed from
// simulated time `when` on (during the traffic), and returns the report. The CPU flips one bit of
// it, another every 250 ns, four in all: an atomic's write-back that lands after a flip undoes it
// (the NIC read the target before), but not the flips after it, so the change holds whenever the
// target's read-modify-writes fall.
system::RunReport run_with_byte_changed(const std::vector<std::string>& sets, int host, uint64_t va,
                                        Tick when) {
  auto cfg = test::make_config(sets);
  auto sys = test::make_system(*cfg);
  host::SimHost& h = *sys->node(host).host;
  for (int k = 0; k < 4; ++k)
    sys->sim().eq.at(when + k * 250 * kNs, [&h, va, k] {
      uint8_t b = 0;
      h.app_read(va, &b, 1);
      b = static_cast<uint8_t>(b ^ (1u << k));
      h.app_write(va, &b, 1);
    });
  return sys->run("");
}

}  // namespace

TEST_CASE("read_bw: every byte read from the server is checked, over several QPs and SGEs",
          "[workload][read]") {
  // 32 WQEs outstanding per QP, of which the NIC keeps 16 READs in flight (max_rd_atomic);
  // 10007 bytes at a 1024-byte MTU: 10 responses each, scattered over 3 SGEs.
  auto r = run({"run.workloads=read_bw", "read_bw.qps=3", "read_bw.size=10007", "read_bw.mtu=1024",
                "read_bw.sges=3", "read_bw.iterations=50", "read_bw.tx_depth=32",
                "read_bw.cq_mod=10", "capture.pcap=false"});
  const auto& w = only(r);
  check_bw(r, w, 150);
  CHECK(w.verified_bytes == 10007u * 3);
  CHECK(stat(r, "host0.nic.req", "read_requests") == 150);
  CHECK(stat(r, "host1.nic.resp", "read_requests") == 150);
  CHECK(stat(r, "host1.nic.resp", "read_responses") == 150 * 10);
  CHECK(stat(r, "host1.nic.resp", "read_bytes") == 150 * 10007u);
  CHECK(stat(r, "host1.nic.resp", "atomics") == 0);
  CHECK(stat(r, "host1.nic.resp", "naks") == 0);
}

TEST_CASE("read_bw keeps 16 READs in flight per QP (max_rd_atomic), no more", "[workload][read]") {
  // The client's CPU costs nothing and the NIC caches 64 WQEs: only max_rd_atomic holds the
  // READs back. On the wire, READ requests sent less READ responses sent reach 16, never 17.
  const std::string out = test::out_dir("read_in_flight");
  auto cfg = test::make_config(
      {"run.workloads=read_bw", "read_bw.size=64", "read_bw.iterations=400", "read_bw.tx_depth=64",
       "read_bw.cq_mod=16", "nic.wqe_prefetch=64", "host.cpu.mmio_write=0ns",
       "host.cpu.wqe_write=0ns", "host.cpu.poll=0ns", "capture.max_packets=0"});
  auto sys = test::make_system(*cfg);
  auto r = sys->run(out);
  only(r);
  char ebuf[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline((out + "/wire.pcap").c_str(), ebuf);
  REQUIRE(p != nullptr);
  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  int requests = 0, responses = 0, most = 0;
  while (pcap_next_ex(p, &hdr, &data) == 1) {
    REQUIRE(hdr->caplen > 42);
    const uint8_t op = data[42];  // BTH opcode after Ethernet, IPv4 and UDP
    if (op == 0x0C) ++requests;   // RC RDMA READ Request
    if (op == 0x10) ++responses;  // RC RDMA READ Response Only (64 bytes: one packet)
    most = std::max(most, requests - responses);
  }
  pcap_close(p);
  CHECK(requests == 400);
  CHECK(responses == 400);
  CHECK(most == host::kOutstandingReads);
}

TEST_CASE("read_bw of 0 and 1 byte messages", "[workload][read]") {
  auto r =
      run({"run.workloads=read_bw,read_lat", "read_bw.size=0", "read_bw.iterations=20",
           "read_bw.cq_mod=4", "read_lat.size=1", "read_lat.iterations=20", "capture.pcap=false"});
  INFO(r.error);
  REQUIRE(r.ok);
  REQUIRE(r.workloads.size() == 2);
  CHECK(r.workloads[0].messages == 20);
  CHECK(r.workloads[0].verified_bytes == 0);
  CHECK(r.workloads[1].verified_bytes == 1);
  CHECK(stat(r, "host1.nic.resp", "read_requests") == 40);
}

TEST_CASE("read_lat reports the whole round trip of a READ, write_lat half of its own",
          "[workload][read][lat]") {
  // 100 us of cable each way: a READ's round trip takes more than 200 us, a WRITE's one way
  // (half a ping-pong) a little more than 100 us.
  auto r = run({"run.workloads=read_lat,write_lat", "link.propagation_delay=100us",
                "read_lat.size=3000", "read_lat.iterations=30", "read_lat.warmup=3",
                "write_lat.size=3000", "write_lat.iterations=30", "capture.pcap=false"});
  INFO(r.error);
  REQUIRE(r.ok);
  REQUIRE(r.workloads.size() == 2);
  const auto& rd = r.workloads[0];
  const auto& wr = r.workloads[1];
  CHECK(rd.latency.count() == 30);
  CHECK(rd.completions == 33);
  CHECK(rd.verified_bytes == 3000);  // no marker byte: all of it is the server's data
  CHECK(rd.percentile_ns(0) > 200e3);
  CHECK(wr.percentile_ns(0) > 100e3);
  CHECK(wr.percentile_ns(100) < 150e3);
  const auto& j = r.json["run"]["workloads"];
  CHECK(j["read_lat"]["latency_measure"] == "round_trip");
  CHECK(j["write_lat"]["latency_measure"] == "one_way");
  CHECK(j["read_lat"]["latency_ns"]["samples"].get<uint64_t>() == 30);
  CHECK(stat(r, "host1.nic.resp", "read_requests") == 33);
}

TEST_CASE("atomic_bw FETCH_AND_ADD: each QP's values returned in order, its sum at the end",
          "[workload][atomic]") {
  auto r = run({"run.workloads=atomic_bw", "atomic_bw.qps=4", "atomic_bw.iterations=100",
                "atomic_bw.tx_depth=32", "atomic_bw.cq_mod=8", "capture.pcap=false"});
  const auto& w = only(r);
  check_bw(r, w, 400);
  CHECK(w.params.atomic_type == host::AtomicType::kFetchAndAdd);
  // 400 values returned and 4 final values, 8 bytes each.
  CHECK(w.verified_bytes == 8 * (400 + 4));
  CHECK(stat(r, "host0.nic.req", "atomic_requests") == 400);
  CHECK(stat(r, "host1.nic.resp", "atomics") == 400);
  CHECK(stat(r, "host1.nic.resp", "read_requests") == 0);
  CHECK(r.json["run"]["workloads"]["atomic_bw"]["atomic_type"] == "FETCH_AND_ADD");
}

TEST_CASE("atomic_bw CMP_AND_SWAP: each swap succeeds against the value the one before wrote",
          "[workload][atomic]") {
  auto r = run({"run.workloads=atomic_bw", "atomic_bw.atomic_type=CMP_AND_SWAP", "atomic_bw.qps=3",
                "atomic_bw.iterations=100", "atomic_bw.tx_depth=16", "atomic_bw.cq_mod=16",
                "capture.pcap=false"});
  const auto& w = only(r);
  check_bw(r, w, 300);
  CHECK(w.params.atomic_type == host::AtomicType::kCmpAndSwap);
  CHECK(w.verified_bytes == 8 * (300 + 3));
  CHECK(stat(r, "host1.nic.resp", "atomics") == 300);
  CHECK(r.json["run"]["workloads"]["atomic_bw"]["atomic_type"] == "CMP_AND_SWAP");
}

TEST_CASE("atomic_lat FETCH_AND_ADD reports round trips and checks every value",
          "[workload][atomic][lat]") {
  auto r = run({"run.workloads=atomic_lat,read_lat", "atomic_lat.iterations=40",
                "atomic_lat.warmup=5", "read_lat.iterations=10", "capture.pcap=false"});
  INFO(r.error);
  REQUIRE(r.ok);
  REQUIRE(r.workloads.size() == 2);
  const auto& w = r.workloads[0];
  CHECK(w.latency.count() == 40);
  CHECK(w.completions == 45);
  CHECK(w.verified_bytes == 8 * (45 + 1));  // warm-up values too, and the final value
  CHECK(stat(r, "host1.nic.resp", "atomics") == 45);
  CHECK(stat(r, "host1.nic.resp", "read_requests") == 10);
  CHECK(r.json["run"]["workloads"]["atomic_lat"]["latency_measure"] == "round_trip");
  CHECK(r.json["run"]["workloads"]["atomic_lat"]["atomic_type"] == "FETCH_AND_ADD");
}

TEST_CASE("atomic_lat CMP_AND_SWAP", "[workload][atomic][lat]") {
  auto r = run({"run.workloads=atomic_lat", "atomic_lat.atomic_type=CMP_AND_SWAP",
                "atomic_lat.iterations=40", "capture.pcap=false"});
  const auto& w = only(r);
  CHECK(w.latency.count() == 40);
  CHECK(w.verified_bytes == 8 * (40 + 1));
  CHECK(stat(r, "host1.nic.resp", "atomics") == 40);
}

TEST_CASE("All eight workloads in one run keep the RC rules", "[workload][check]") {
  auto cfg = test::make_config(
      {"link.check=true",
       "run.workloads=write_bw,send_bw,read_bw,atomic_bw,write_lat,send_lat,read_lat,atomic_lat",
       "write_bw.iterations=20", "send_bw.iterations=20", "read_bw.iterations=40", "read_bw.qps=2",
       "read_bw.size=20000", "read_bw.mtu=2048", "atomic_bw.iterations=40", "atomic_bw.qps=2",
       "write_lat.iterations=10", "send_lat.iterations=10", "read_lat.iterations=10",
       "atomic_lat.iterations=10", "capture.pcap=false"});
  auto sys = test::make_system(*cfg);
  auto r = sys->run("");
  INFO(r.error);
  CHECK(r.ok);
  REQUIRE(sys->checker() != nullptr);
  for (const auto& v : sys->checker()->violations()) FAIL_CHECK(v.text());
  CHECK(sys->checker()->violation_count() == 0);
  REQUIRE(r.workloads.size() == 8);
  for (const auto& w : r.workloads) {
    INFO(w.params.kind << ": " << w.error);
    CHECK(w.ok);
    CHECK(w.verified_bytes > 0);
  }
  // READs: 80 + 10, atomics: 80 + 10, each executed once.
  CHECK(stat(r, "host1.nic.resp", "read_requests") == 90);
  CHECK(stat(r, "host1.nic.resp", "atomics") == 90);
}

TEST_CASE("read_bw fails when the server's data changes under it", "[workload][read][verify]") {
  // The server's first buffer is QP 0's source: byte 100 changed after a few of the 200 READs.
  auto r =
      run_with_byte_changed({"run.workloads=read_bw", "read_bw.size=4096", "read_bw.iterations=200",
                             "read_bw.cq_mod=1", "read_bw.tx_depth=4", "capture.pcap=false"},
                            1, host::SimHost::kAppBase + 100, 100 * kUs);
  REQUIRE(r.workloads.size() == 1);
  INFO(r.workloads[0].error);
  CHECK(!r.ok);
  CHECK(r.workloads[0].error.find("client QP 0: received byte 100 of 4096 differs from the "
                                  "server's data") != std::string::npos);
}

TEST_CASE("atomic_bw fails when a value returned is not the one expected",
          "[workload][atomic][verify]") {
  // The server's first buffer is QP 0's target: its lowest byte changed during the run; the next
  // FETCH_AND_ADD returns a value out of the sequence.
  auto r =
      run_with_byte_changed({"run.workloads=atomic_bw", "atomic_bw.iterations=400",
                             "atomic_bw.tx_depth=4", "atomic_bw.cq_mod=1", "capture.pcap=false"},
                            1, host::SimHost::kAppBase, 100 * kUs);
  REQUIRE(r.workloads.size() == 1);
  INFO(r.workloads[0].error);
  CHECK(!r.ok);
  CHECK(r.workloads[0].error.find("client QP 0: FETCH_AND_ADD number ") != std::string::npos);
  CHECK(r.workloads[0].error.find(" returned 0x") != std::string::npos);
}

TEST_CASE("atomic_bw CMP_AND_SWAP fails when the chain of values breaks",
          "[workload][atomic][verify]") {
  // A changed target: the next compare fails (nothing swapped), so does every one after it.
  auto r = run_with_byte_changed(
      {"run.workloads=atomic_bw", "atomic_bw.atomic_type=CMP_AND_SWAP", "atomic_bw.iterations=400",
       "atomic_bw.tx_depth=4", "atomic_bw.cq_mod=1", "capture.pcap=false"},
      1, host::SimHost::kAppBase + 3, 100 * kUs);
  REQUIRE(r.workloads.size() == 1);
  INFO(r.workloads[0].error);
  CHECK(!r.ok);
  CHECK(r.workloads[0].error.find("client QP 0: CMP_AND_SWAP number ") != std::string::npos);
}

TEST_CASE("mixed: every operation over several QPs, every byte and completion checked",
          "[workload][mixed]") {
  auto r = run({"run.workloads=mixed", "mixed.qps=3", "mixed.iterations=400", "mixed.size=20000",
                "mixed.mtu=1024", "mixed.tx_depth=16", "mixed.rx_depth=32", "mixed.seed=3",
                "capture.pcap=false"});
  const auto& w = only(r);
  CHECK(w.messages == 1200);
  CHECK(w.goodput_gbps > 0);
  CHECK(w.msg_rate_mpps > 0);
  CHECK(w.completions == 1200);  // every WQE signaled, each completion seen once
  uint64_t receivers = 0, bytes = 0, n = 0;
  for (size_t k = 0; k < host::kMixedOps; ++k) {
    INFO(host::kMixedOpNames[k]);
    CHECK(w.op_messages[k] > 100);  // each operation drawn
    n += w.op_messages[k];
    bytes += w.op_bytes[k];
    if (host::consumes_recv(static_cast<host::MixedOp>(k))) receivers += w.op_messages[k];
  }
  CHECK(n == 1200);
  CHECK(bytes == w.bytes);
  CHECK(w.receives == receivers);
  CHECK(w.verified_bytes == w.bytes + 3 * host::kAtomicSize);  // and each QP's final target
  const auto& j = r.json["run"]["workloads"]["mixed"];
  CHECK(j["per_op"]["read"]["messages"].get<uint64_t>() ==
        w.op_messages[static_cast<size_t>(host::MixedOp::kRead)]);
  CHECK(j["receive_completions"].get<uint64_t>() == receivers);
  CHECK(stat(r, "host0.nic.req", "retransmitted") == 0);  // no faults: nothing resent
}

TEST_CASE("mixed: the same seed gives the same run, another seed another", "[workload][mixed]") {
  // Draws only (no simulation): message i of QP q depends on (seed, q, i) alone.
  host::WorkloadParams p;
  p.kind = "mixed";
  p.size = 65536;
  host::WorkloadParams other = p;
  other.seed = 2;
  uint64_t same = 0, zero = 0, big = 0;
  for (uint64_t i = 0; i < 5000; ++i) {
    const auto a = host::mixed_msg(p, 1, i), b = host::mixed_msg(p, 1, i);
    CHECK((a.op == b.op && a.len == b.len && a.offset == b.offset && a.r == b.r));
    const auto c = host::mixed_msg(other, 1, i);
    same += a.op == c.op && a.len == c.len;
    zero += a.len == 0;
    big += a.len > 32768 && a.len <= 65536;
    CHECK(a.len <= 65536);
    if (a.op == host::MixedOp::kRead) CHECK(a.offset + a.len <= 65536);
  }
  CHECK(same < 500);
  CHECK(zero > 100);  // log-uniform: empty and multi-packet messages both appear
  CHECK(big > 100);
}

TEST_CASE(
    "A READ response reordered behind the next costs one retry, not one per response behind it",
    "[workload][read][faults]") {
  // Found by the mixed soak. QP 0's first READ takes PSNs 4103..4106 (16 KiB at 4 KiB); its
  // third response is held back and comes after the fourth: the requester goes back for it once.
  // The responses to the 15 READs behind it, already on their way, arrive out of sequence too:
  // each used to go back again and spend a retry, and the 8th failed the READ (RETRY_EXC_ERR).
  auto r = run({"run.workloads=read_bw", "read_bw.size=16KiB", "read_bw.iterations=64",
                "read_bw.tx_depth=16", "read_bw.cq_mod=16", "read_bw.retry_cnt=2",
                "link.rule=action=reorder side=1 opcode=RC_RDMA_READ_RESPONSE_MIDDLE psn=4105",
                "capture.pcap=false"});
  const auto& w = only(r);
  CHECK(w.messages == 64);
  CHECK(stat(r, "link0", "b_to_a_reordered") == 1);
  CHECK(stat(r, "host0.nic.req", "implied_naks") > 2);  // out-of-sequence responses, ...
  CHECK(stat(r, "host0.nic.req", "timeouts") == 0);     // ... recovered without a timeout
}

TEST_CASE("send_bw with use_srq: the server's QPs share one SRQ, every byte still checked",
          "[workload][srq]") {
  // Three QPs, one SRQ of rx_depth WQEs for all of them (perftest's --use_srq), two SGEs each.
  auto r = run({"run.workloads=send_bw", "send_bw.use_srq=true", "send_bw.qps=3",
                "send_bw.size=5000", "send_bw.mtu=1024", "send_bw.sges=2", "send_bw.iterations=100",
                "send_bw.rx_depth=64", "send_bw.cq_mod=10", "capture.pcap=false"});
  const auto& w = only(r);
  check_bw(r, w, 300);
  CHECK(w.verified_bytes == 5000u * 3);
  CHECK(stat(r, "host1.nic.resp", "srq_wqes_taken") == 300);
  CHECK(stat(r, "host1.nic.resp", "srq_wqe_fetches") > 0);
  CHECK(stat(r, "host1.nic.resp", "rwqe_fetches") == 0);
  CHECK(stat(r, "host1.nic.dev", "rq_doorbells") == 0);
  CHECK(stat(r, "host1.nic.dev", "srq_doorbells") > 0);
  CHECK(stat(r, "host1.nic.resp", "messages") == 300);
  CHECK(stat(r, "host1.nic.resp", "naks") == 0);
}

TEST_CASE("send_bw without use_srq takes no SRQ WQEs", "[workload][srq]") {
  auto r = run({"run.workloads=send_bw", "send_bw.qps=3", "send_bw.size=5000",
                "send_bw.iterations=50", "capture.pcap=false"});
  const auto& w = only(r);
  check_bw(r, w, 150);
  CHECK(w.verified_bytes == 5000u * 3);
  CHECK(stat(r, "host1.nic.resp", "srq_wqes_taken") == 0);
  CHECK(stat(r, "host1.nic.resp", "srq_wqe_fetches") == 0);
  CHECK(stat(r, "host1.nic.resp", "rwqe_fetches") > 0);
}
