// The simulated host: its physical memory, a small OS (a DMA-coherent allocator for driver rings
// and an application address space whose pages are scattered in physical memory, as after a real
// system has run for a while), an interrupt controller for MSI-X, and software threads (SC_THREADs)
// that run the driver and the workload at simulated times. It implements drv::DeviceAccess over
// the PCIe bridge, so the driver reaches the device only by MMIO and shared memory.
#pragma once
#ifndef SC_INCLUDE_DYNAMIC_PROCESSES
#define SC_INCLUDE_DYNAMIC_PROCESSES
#endif
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <systemc>
#include <unordered_map>
#include <vector>

#include "bridge/driver/device_access.h"
#include "bridge/host_memory/host_memory.h"
#include "bridge/pcie/pcie_bridge.h"
#include "model/core/sim.h"

namespace rn::host {

// The defaults are the configuration's defaults too (host.*): the schema takes them from here.
struct HostParams {
  bool scatter_pages = true;         // application pages physically scattered (else contiguous)
  uint64_t page_size = 4096;         // application pages: 4 KiB, or huge pages of 2 MiB or 1 GiB
  Tick mmio_write_cost = 100 * kNs;  // CPU time of a posted MMIO write (doorbell, WQE burst)
  Tick wqe_write_cost = 20 * kNs;    // CPU time to write one WQE
  Tick poll_cost = 30 * kNs;         // CPU time of one poll of a CQ or buffer that finds work
  Tick wakeup_latency = 50 * kNs;    // from a DMA write landing to the polling thread noticing it
  Tick driver_timeout = drv::kDefaultTimeoutNs * kNs;  // longest wait for a command or event
};

class SimHost : public pcie::HostObserver, public drv::DeviceAccess {
 public:
  // Application virtual addresses live here; everything below is physical (identity mapped).
  static constexpr uint64_t kAppBase = 0x7F0000000000ull;
  static constexpr uint64_t kDmaBase = 0x100000000ull;      // DMA-coherent allocations
  static constexpr uint64_t kPageBase = 0x4000000000ull;    // application page frames of 4 KiB
  static constexpr uint64_t kHugeBase = 0x10000000000ull;   // of 2 MiB (2^16 of them)
  static constexpr uint64_t kGiantBase = 0x40000000000ull;  // of 1 GiB (2^9 of them)
  // With an IOMMU (the bridge's), the device's DMA addresses are IOVAs the host maps from here
  // (48-bit: a 4-level IOMMU page table), each allocation aligned to its pages.
  static constexpr uint64_t kIovaBase = 0x800000000000ull;
  static constexpr uint64_t kIovaEnd = 0x1000000000000ull;
  static constexpr uint64_t kMsiAddr = 0xFEE00000ull;

  SimHost(Sim& sim, const std::string& name, const HostParams& p, hostmem::HostMemory& mem,
          pcie::Bridge& bridge);
  ~SimHost() override;
  const std::string& name() const { return name_; }

  // Starts a software thread at time 0 (before sc_start) or now.
  void spawn(const std::string& name, std::function<void()> fn);
  // Spends CPU time in the calling thread.
  void cpu(Tick t);

  // Application memory: virtual buffers aligned to their pages, of page_size bytes (4 KiB, 2 MiB
  // or 1 GiB; 0: host.page_size), as a process gets from mmap (with MAP_HUGETLB for huge pages).
  uint64_t alloc_buffer(uint64_t len, uint64_t page_size = 0);
  // Unmaps a buffer of alloc_buffer(len) and gives its pages back (its frames are not reused:
  // the frame numbers are plentiful).
  void free_buffer(uint64_t va, uint64_t len);
  // Waits until every DMA write in flight to [va, va+len) has landed in memory.
  void wait_writes_landed(uint64_t va, uint64_t len);
  void app_write(uint64_t va, const void* src, size_t len);
  void app_read(uint64_t va, void* dst, size_t len);
  void app_fill_pattern(uint64_t va, uint64_t len, uint64_t seed);
  // First offset at which [va, va+len) differs from pattern(seed), if any.
  std::optional<uint64_t> app_check_pattern(uint64_t va, uint64_t len, uint64_t seed);
  // Physical address of an application virtual address, or of an IOVA this host mapped (for
  // tests). Throws std::out_of_range if nothing maps it.
  uint64_t translate(uint64_t va) const;
  // The size of the page holding an application virtual address (4 KiB below kAppBase).
  uint64_t page_size_at(uint64_t va) const;

  // Waits until the device writes into [addr, addr+len) (virtual or physical) or timeout.
  bool wait_write(uint64_t addr, size_t len, Tick timeout);

  // pcie::HostObserver
  void on_dma_write(uint64_t addr, uint64_t len) override;
  void on_msi(uint64_t addr, uint32_t data) override;
  bool watching(uint64_t addr, uint64_t len) const override;

  // drv::DeviceAccess
  void mmio_write32(uint64_t offset, uint32_t value) override;
  void mmio_write(uint64_t offset, const void* data, size_t len) override;
  uint32_t mmio_read32(uint64_t offset) override;
  uint64_t dma_alloc(size_t len, size_t align) override;
  void dma_free(uint64_t bus_addr, size_t len) override;
  void mem_write(uint64_t addr, const void* src, size_t len) override;
  void mem_read(uint64_t addr, void* dst, size_t len) override;
  bool pin_pages(uint64_t va, uint64_t len, std::vector<uint64_t>* pages) override;
  void unpin_pages(uint64_t va, uint64_t len) override;
  bool wait_device_write(uint64_t addr, size_t len, uint64_t timeout_ns) override;
  uint64_t msi_address() const override { return kMsiAddr; }
  bool wait_interrupt(uint64_t timeout_ns) override;

  const HostParams& params() const { return p_; }
  // Simulated time as this host's software sees it.
  Tick now() const { return sim_.now(); }
  hostmem::HostMemory& memory() { return mem_; }

 private:
  struct Watch {
    uint64_t lo, hi;  // physical
    sc_core::sc_event* ev;
  };
  // An application buffer: `pages` pages of size index `size` (pcie::kPageShifts), the i-th in
  // frame number first + i of that size.
  struct Buffer {
    uint64_t len;
    int size;
    uint64_t first;
  };
  const Buffer* buffer_at(uint64_t va, uint64_t* base) const;
  uint64_t frame(int size, uint64_t k) const;  // physical address of frame number k
  // IOMMU mappings: maps [pa, pa + len) (aligned to pages of `size`) at fresh IOVAs.
  uint64_t iova_map(uint64_t pa, uint64_t len, int size);
  // Calls fn(phys, len) for each physically contiguous piece of [addr, addr+len).
  template <typename F>
  void for_each_phys(uint64_t addr, size_t len, F&& fn) const;

  Sim& sim_;
  std::string name_;
  HostParams p_;
  hostmem::HostMemory& mem_;
  pcie::Bridge& bridge_;
  uint64_t dma_next_ = kDmaBase;
  uint64_t app_next_ = kAppBase;
  uint64_t frames_next_[3] = {0, 0, 0};  // frames handed out, of each page size
  std::map<uint64_t, Buffer> buffers_;   // by virtual address
  pcie::Iommu* iommu_;                   // the bridge's, or null
  uint64_t iova_next_ = kIovaBase;
  // IOVA ranges mapped (by their first byte: length), and the pins of application memory (by
  // virtual range: their IOVA ranges, several if a range is registered more than once).
  std::map<uint64_t, uint64_t> iova_ranges_;
  std::multimap<std::pair<uint64_t, uint64_t>, uint64_t> pins_;
  std::vector<Watch> watches_;
  std::vector<std::unique_ptr<sc_core::sc_event>> event_pool_;
  sc_core::sc_event irq_;
  uint64_t irq_pending_ = 0;
  stats::Group stats_;
  uint64_t& interrupts_;
  uint64_t& bad_msi_;
  uint64_t& app_pages_;
  uint64_t& dma_bytes_;
};

}  // namespace rn::host
