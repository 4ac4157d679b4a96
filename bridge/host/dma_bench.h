// dma_bench, a DMA microbenchmark like pcie-bench (Neugebauer et al., SIGCOMM 2018): the device's
// DMA engine alone reads or writes `size` bytes at a time at offsets in a window of host 0's
// memory, sequential or random, with `outstanding` requests in flight, through the bridge (and
// the IOMMU, when on). It reports bandwidth, request rate and the latency of every request (issue
// to the last byte at the device for a read; to the data visible in memory for a write).
//
// The host allocates the window as an application buffer (its pages of dma_bench.page_size) and
// pins it, as a driver does for a memory region: the engine uses the bus addresses (IOVAs with the
// IOMMU on) it gets. Every byte is checked: each read against the pattern the host wrote, each
// written range (and the rest of the window, untouched) after the run.
#pragma once
#include <cstdint>
#include <vector>

#include "bridge/host/perftest.h"
#include "bridge/host/sim_host.h"
#include "bridge/pcie/pcie_bridge.h"

namespace rn::host {

class DmaBench final : public Workload {
 public:
  static constexpr uint64_t kMaxSize = 64 * 1024;  // one request's bytes, at most
  DmaBench(SimHost& host, pcie::DmaPort& dma, const WorkloadParams& p);
  ~DmaBench() override;
  void run_client() override;
  void run_server() override {}
  void fail(const std::string& why) override;
  bool verify() override;
  const WorkloadResult& result() const override { return res_; }

 private:
  struct Slot {
    uint64_t offset = 0;
    Tick issued = 0;
    std::vector<uint8_t> data;
  };
  void issue(Slot& s);
  void complete(Slot& s);
  uint64_t next_offset();
  bool check_window();

  SimHost& h_;
  pcie::DmaPort& dma_;
  WorkloadParams p_;
  WorkloadResult res_;
  uint64_t va_ = 0;
  std::vector<uint64_t> pages_;  // bus address of each 4 KiB page of the window
  std::vector<Slot> slots_;
  std::vector<uint8_t> want_;  // a read's expected bytes
  std::vector<bool> written_;  // writes: the window's size-slots written
  uint64_t issued_ = 0, done_ = 0, rng_ = 0;
  sc_core::sc_event finished_;
  bool checked_ = false;
};

}  // namespace rn::host
