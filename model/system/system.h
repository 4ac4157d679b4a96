// Builds a whole simulated system from a configuration: hosts (memory, PCIe bridge, OS, driver),
// NICs and the network between them; runs the configured workloads and reports the results.
// One System per process (SystemC elaborates once per process).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bridge/driver/driver.h"
#include "bridge/host/perftest.h"
#include "bridge/host/sim_host.h"
#include "bridge/host_memory/host_memory.h"
#include "bridge/host_memory/process_memory.h"
#include "bridge/pcie/pcie_bridge.h"
#include "model/core/config.h"
#include "model/net/link.h"
#include "model/net/protocol_checker.h"
#include "model/nic/nic.h"
#include "model/wire/pcap_writer.h"

namespace rn::system {

struct Node {
  std::string name;
  std::array<uint8_t, 6> mac{};
  uint32_t ipv4 = 0;
  std::unique_ptr<hostmem::HostMemory> mem;      // simulated hosts
  std::unique_ptr<hostmem::ProcessMemory> pmem;  // the virtual device: attached processes
  std::unique_ptr<pcie::Iommu> iommu;            // iommu.enabled
  std::unique_ptr<pcie::Bridge> bridge;
  std::unique_ptr<nic::Nic> nic;
  std::unique_ptr<host::SimHost> host;  // simulated hosts only
  std::unique_ptr<drv::Driver> driver;  // simulated hosts only
};

struct RunReport {
  bool ok = false;
  std::string error;
  Tick sim_time = 0;
  double wall_seconds = 0;
  uint64_t events = 0;
  uint64_t packets = 0;
  std::vector<host::WorkloadResult> workloads;
  nlohmann::json json;  // the whole stats.json document
  // Files written into out_dir, and one message (naming the path) per file that could not be
  // written: a run with any is not ok.
  std::vector<std::string> outputs;
  std::vector<std::string> output_errors;
  // Lines for the report on what the link did besides carrying frames: the faults it injected,
  // its protocol checker's verdict (none when both are off).
  std::vector<std::string> notes;
};

// Where a host's software runs: simulated in SystemC threads over simulated memory (runs and
// tests), or in real processes attached to the NIC over their own memory (`rnicsim serve`).
enum class HostMode { kSimulated, kProcess };

class System {
 public:
  // Validates the configuration (cross-parameter rules; throws cfg::ConfigError naming the keys)
  // and builds the system.
  // With `workloads` false the configured workloads are neither checked nor run (serve and
  // replay run other software on the hosts).
  explicit System(const cfg::Config& c, const std::string& config_name = "",
                  HostMode mode = HostMode::kSimulated, bool workloads = true);
  ~System();

  // Runs the configured workloads to completion (or sim.max_time). Writes stats.json and, if
  // enabled, wire.pcap into out_dir ("" = write nothing). A file that cannot be written makes
  // the report not ok (RunReport::output_errors); one that cannot be opened before the run
  // starts throws std::runtime_error naming it.
  RunReport run(const std::string& out_dir);
  // Shows the run's progress on `out` (a terminal) while run() runs: the workload, simulated
  // time, share done, packets per wall-second and time left, on one line redrawn in place about
  // four times a second, erased at the end. Null (the default): nothing is shown. It costs one
  // calendar callback per tick, whose interval adapts to about 50 ms of wall time; the ticks are
  // not counted in run.events and change no simulated result.
  void show_progress(std::FILE* out) { progress_out_ = out; }

  // Runs custom host software instead of the configured workloads: fn0 on host 0, fn1 on host 1
  // (each may be empty). Used by tests.
  RunReport run_custom(std::function<void()> fn0, std::function<void()> fn1,
                       const std::string& out_dir = "");

  // For `rnicsim serve` (HostMode::kProcess), which drives the calendar itself: opens the pcap
  // in out_dir ("" = none) before the first event, and at the end writes stats.json and the
  // pcap as run() does (wall: the wall-clock seconds served).
  void open_outputs(const std::string& out_dir) { open_pcap(out_dir); }
  RunReport finish_outputs(const std::string& out_dir, double wall) {
    return finish(out_dir, wall, true);
  }
  EventQueue& calendar() { return *eq_; }
  size_t nodes() const { return nodes_.size(); }

  Sim& sim() { return *sim_; }
  Node& node(int i) { return nodes_.at(i); }
  net::Link& link() { return *link_; }
  net::FramePool& frame_pool() { return pool_; }
  // The link's protocol checker (link.check), null when off.
  net::ProtocolChecker* checker() { return checker_.get(); }
  const cfg::Config& config() const { return cfg_; }
  static std::vector<std::string> workload_list(const cfg::Config& c);
  static host::WorkloadParams workload_params(const cfg::Config& c, const std::string& kind);
  // Host `host`'s PCIe link: each hostN.pcie.X set in the configuration, else pcie.X.
  static pcie::Params host_pcie(const cfg::Config& c, int host);
  static pcie::IommuParams iommu_params(const cfg::Config& c);
  static xlate::CacheParams cache_params(const cfg::Config& c);
  // The key host `host` takes PCIe parameter `leaf` ("gen", "lanes", ...) from.
  static std::string pcie_key(const cfg::Config& c, int host, const std::string& leaf);

 private:
  void validate() const;
  RunReport finish(const std::string& out_dir, double wall, bool all_done);
  void open_pcap(const std::string& out_dir);
  // The context caches' and the IOMMUs' hit rates, from the statistics: report lines.
  void translation_notes(const nlohmann::json& stats, RunReport* r) const;
  void link_notes(RunReport* r) const;
  void write_link_csvs(const std::string& out_dir, RunReport* r) const;

  const cfg::Config& cfg_;
  std::string config_name_;
  bool workloads_ = true;
  std::unique_ptr<EventQueue> eq_;
  std::unique_ptr<Sim> sim_;
  // The pages of both hosts' memories (they may share pages: sim.share_pages). Declared before
  // the frame pool and the hosts: frames and memories holding references to its pages go first.
  std::shared_ptr<hostmem::PagePool> pages_ = std::make_shared<hostmem::PagePool>();
  net::FramePool pool_;
  std::vector<Node> nodes_;
  std::unique_ptr<net::Link> link_;
  std::unique_ptr<net::ProtocolChecker> checker_;
  std::unique_ptr<wire::PcapWriter> pcap_;
  std::vector<std::unique_ptr<host::Workload>> tests_;
  void progress_tick();
  std::FILE* progress_out_ = nullptr;
  Tick progress_interval_ = 10 * kUs;
  uint64_t progress_ticks_ = 0;
  double progress_last_tick_ = 0, progress_last_print_ = 0;  // wall-clock seconds
  const host::Workload* progress_w_ = nullptr;               // the workload shown, and since when
  uint64_t progress_frames0_ = 0, progress_done0_ = 0;
  double progress_wall0_ = 0;
  int threads_done_ = 0;
  int threads_total_ = 0;
};

}  // namespace rn::system
