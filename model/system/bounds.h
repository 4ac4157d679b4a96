// What a configuration implies before it runs, for System::validate: lower bounds of simulated
// times (a driver command, a message's trip, the waits that host.driver_timeout limits, a whole
// run against sim.max_time) and an estimate of the memory a run takes. Each comes with its parts
// and the keys they grow with, so that an error can name the keys to change.
//
// The time bounds add only latencies that lie one after the other on the model's path (see
// docs/architecture.md): a run whose bound exceeds a limit cannot succeed, and a run that passes
// may still time out a little above its bound (then the run's error names the limit).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "bridge/host/perftest.h"
#include "model/core/config.h"

namespace rn::system {

struct Part {
  std::string what;               // e.g. "2 x link.propagation_delay"
  std::vector<std::string> keys;  // the keys it grows with
  double value = 0;               // ps, or bytes for memory
};

struct Bound {
  double value = 0;  // ps, or bytes
  std::vector<Part> parts;
  void add(std::string what, std::vector<std::string> keys, double v);
  // The keys of the parts, largest part first, each once.
  std::vector<std::string> keys() const;
  // "A 120ms, B 2.5us, ..." for the largest `n` parts (times, or bytes if `bytes`).
  std::string describe(size_t n, bool bytes = false) const;
};

// The effective key of a PCIe parameter of host `host` ("pcie.gen" or "host1.pcie.gen").
using PcieKey = std::string (*)(const cfg::Config& c, int host, const std::string& leaf);

class Bounds {
 public:
  Bounds(const cfg::Config& c, PcieKey pcie_key) : c_(c), key_(pcie_key) {}
  // The wait of host `h` for its longest driver command (reg_mr: with its page list read).
  Bound command_wait(int h) const;
  // Driver commands a workload's side runs (setup and teardown) and the time each takes at least.
  uint64_t commands(const host::WorkloadParams& p, bool client) const;
  Bound command_time(int h) const;
  // Doorbell on host `from` to the message's last byte in host `to`'s memory.
  Bound one_way(const host::WorkloadParams& p, int from, int to) const;
  // The longest wait for one completion or message of a workload (host.driver_timeout limits
  // every wait).
  Bound longest_wait(const host::WorkloadParams& p) const;
  // Simulated time of a whole workload (setup, traffic, teardown).
  Bound workload_time(const host::WorkloadParams& p) const;
  // Bytes the simulator holds during a workload (its buffers, rings, queue state, samples).
  Bound workload_memory(const host::WorkloadParams& p) const;
  // Bytes of the process besides workloads: the program, SystemC and the model's tables.
  static constexpr double kBaseMemory = 32.0 * 1024 * 1024;
  // Physical memory of this machine, bytes (0 if unknown).
  static uint64_t physical_memory();

 private:
  double t(const std::string& key) const;
  double wire_time(const host::WorkloadParams& p, uint64_t messages) const;
  // A message's way from host `from`'s doorbell to the other host's NIC (`messages` of them on
  // the wire), without landing in memory.
  Bound to_receiver(const host::WorkloadParams& p, int from, uint64_t messages) const;
  // DMA reads a message certainly needs before it leaves (0..2: its WQE and its payload).
  int dma_reads(const host::WorkloadParams& p) const;
  // Both ways, and `turns` times the answering side's CPU between them.
  Bound round_trip(const host::WorkloadParams& p, int turns) const;
  // A READ or atomic from host 0's doorbell until its completion is in host 0's memory: the WQE
  // fetch, the request, host 1's NIC reading the data, the responses (`messages` of them on the
  // wire), the data and the CQE landing.
  Bound read_trip(const host::WorkloadParams& p, uint64_t messages) const;
  // The time host 1's NIC spends on each atomic (it executes one at a time).
  Bound atomic_unit() const;
  // mixed: the wait for its first completion (longest_wait).
  Bound mixed_wait(const host::WorkloadParams& p) const;
  // The first completion's way back: the ACK over the link, the CQE up to host memory.
  void add_ack_and_cqe(Bound& b) const;
  // The client's time posting its first WQEs (every QP's queue filled) before it waits.
  double first_posting(const host::WorkloadParams& p) const;
  const cfg::Config& c_;
  PcieKey key_;
};

std::string human_time(double ps);
std::string human_bytes(double b);

}  // namespace rn::system
