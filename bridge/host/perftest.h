// Workloads modelled on perftest (ib_write_bw, ib_send_bw, ib_write_lat, ib_send_lat), run as
// host software over the driver on two simulated hosts: the client on one, the server on the
// other, connected out of band (as perftest's TCP exchange) at zero simulated cost.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bridge/driver/driver.h"
#include "bridge/host/sim_host.h"
#include "model/core/latency_histogram.h"

namespace rn::host {

struct WorkloadParams {
  std::string kind;            // write_bw, send_bw, write_lat, send_lat
  uint64_t size = 65536;       // message size, bytes
  uint64_t iterations = 1000;  // messages per QP (bandwidth) or round trips (latency)
  uint64_t warmup = 0;         // latency: round trips not counted
  uint32_t qps = 1;
  uint32_t tx_depth = 128;   // outstanding send WQEs per QP
  uint32_t rx_depth = 512;   // posted receive WQEs per QP (send tests)
  uint32_t cq_mod = 100;     // bandwidth: signal every cq_mod-th WQE
  uint32_t mtu = 4096;       // path MTU, bytes
  uint32_t sges = 1;         // scatter/gather entries per message (split evenly)
  bool imm = false;          // use the WITH_IMM opcodes; the server checks every value
  uint32_t inline_size = 0;  // messages up to this size are posted inline (perftest's -I)
  bool verify = true;        // check every received byte against the sender's pattern
  uint32_t pattern_seed = 1;
  uint64_t keep_samples = 0;  // latency: the first samples kept one by one (for a CSV)
};

struct WorkloadResult {
  WorkloadParams params;
  bool ok = false;
  std::string error;
  Tick start = 0, end = 0;
  uint64_t messages = 0, bytes = 0;
  double goodput_gbps = 0, msg_rate_mpps = 0;
  // Latency tests: one-way latency (half a round trip) of every counted iteration, and the first
  // params.keep_samples of them in order.
  LatencyHistogram latency;
  std::vector<Tick> latency_samples;
  uint64_t verified_bytes = 0;
  uint64_t completions = 0;
  // The traffic phase in wall-clock terms: how fast the simulator ran it.
  double wall_seconds = 0;
  uint64_t packets = 0;  // frames on the wire during the traffic phase
  double percentile_ns(double p) const { return latency.percentile_ns(p); }
};

// What one side of a workload holds on its NIC and in its memory at once (System::validate checks
// these against the NIC's limits before a run, and estimates memory from them).
uint64_t cq_entries(const WorkloadParams& p);  // entries asked for each of the side's two CQs
bool sends_from(const WorkloadParams& p, bool client);     // the side has a source buffer per QP
bool receives_into(const WorkloadParams& p, bool client);  // ... a destination buffer per QP
uint32_t mrs_per_qp(const WorkloadParams& p, bool client);
constexpr uint32_t kCqsPerSide = 2, kPdsPerSide = 1;
constexpr uint64_t kGuardBytes = 64;  // after each destination buffer, checked unchanged

// One connection's worth of shared out-of-band state between the two sides.
struct Exchange;
struct ConnInfo;

class Perftest {
 public:
  Perftest(SimHost& client_host, drv::Driver& client, SimHost& server_host, drv::Driver& server,
           const WorkloadParams& p, const std::vector<uint8_t>& client_mac, uint32_t client_ip,
           const std::vector<uint8_t>& server_mac, uint32_t server_ip);
  ~Perftest();
  // Run in a thread of the client host and of the server host respectively.
  void run_client();
  void run_server();
  // Marks the workload failed before it could run (e.g. the driver did not open).
  void fail(const std::string& why);
  // After the run: marks the workload failed if it did not run to its end, or (with
  // params.verify) if the run stopped before its received bytes were checked. Each side checks
  // them itself, as soon as its last message has arrived and before its buffers are freed.
  bool verify();
  const WorkloadResult& result() const { return res_; }
  // Counts frames on the wire (both directions), sampled when the traffic starts and ends.
  void set_packet_counter(std::function<uint64_t()> f) { packets_ = std::move(f); }
  bool finished() const;
  // How far the client is: messages completed (round trips, for latency tests, warm-up
  // included) of `total`, and whether its traffic has started. For progress displays only.
  struct Progress {
    uint64_t done = 0, total = 0;
    bool started = false;
  };
  const Progress& progress() const { return progress_; }

 private:
  struct Side;
  bool setup(Side& s, bool is_client);
  bool connect(Side& s, bool is_client);
  void teardown(Side& s);
  void check_received(Side& s);
  void client_bw();
  void client_lat();
  void server_bw();
  void server_lat();
  bool lat_post_recv(Side& s, uint64_t id);
  bool lat_send(Side& s, uint64_t i, const ConnInfo& peer);
  bool lat_await(Side& s, uint64_t i, uint64_t n, uint64_t* recv_posted);
  bool sync(int me, int stage);
  bool wait_cq(Side& s, drv::Cq* cq, drv::Wc* wc, int n, int* got);
  void set_error(const std::string& e);

  void traffic_begin();
  void traffic_end();
  WorkloadParams p_;
  WorkloadResult res_;
  std::function<uint64_t()> packets_;
  std::chrono::steady_clock::time_point wall0_;
  uint64_t packets0_ = 0;
  Progress progress_;
  std::unique_ptr<Side> c_, s_;
  std::unique_ptr<Exchange> x_;
};

}  // namespace rn::host
