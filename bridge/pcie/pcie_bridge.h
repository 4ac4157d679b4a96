// The root complex and the PCIe link between one host and one device, as the rest of the system
// sees them: MMIO from the host's CPU to the device's BAR, DMA from the device to host memory, and
// MSI-X messages. Timing comes from LinkTiming (pure computation: each direction's busy-until
// time); each MMIO or DMA costs one event, at its computed completion time.
#pragma once
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bridge/host_memory/host_memory.h"
#include "bridge/pcie/iommu.h"
#include "bridge/pcie/link_timing.h"
#include "model/core/sim.h"

namespace rn::pcie {

// Implemented by a device: its BAR0 as seen from the bus. Called at the time a TLP arrives.
class MmioTarget {
 public:
  virtual ~MmioTarget() = default;
  virtual void mmio_write32(uint64_t offset, uint32_t value) = 0;
  virtual uint32_t mmio_read32(uint64_t offset) = 0;
  // A posted write of len bytes (1..Bridge::kMaxMmioBurst) at once: a CPU's write-combined
  // burst. data is valid during the call only. A device without bursts of its own sees the
  // burst's whole 32-bit words as consecutive 32-bit writes (and nothing of a last partial word).
  virtual void mmio_write(uint64_t offset, const uint8_t* data, uint32_t len) {
    for (uint32_t i = 0; i + 4 <= len; i += 4) {
      uint32_t v;
      std::memcpy(&v, data + i, 4);
      mmio_write32(offset + i, v);
    }
  }
};

// Implemented by the host: told when device writes land in memory and when MSI-X messages arrive.
class HostObserver {
 public:
  virtual ~HostObserver() = default;
  virtual void on_dma_write(uint64_t addr, uint64_t len) = 0;
  // True if a host thread waits for device writes into [addr, addr+len): the bridge then
  // delivers such a write at its exact completion time.
  virtual bool watching(uint64_t addr, uint64_t len) const = 0;
  virtual void on_msi(uint64_t addr, uint32_t data) = 0;
};

struct SgEntry {
  uint64_t addr;
  uint32_t len;
};

// True if [addr, addr+len) lies inside the 64-bit address space; a range may end exactly at 2^64.
constexpr bool in_address_space(uint64_t addr, uint64_t len) {
  return len == 0 || addr <= ~uint64_t(0) - (len - 1);
}

// What a device uses to reach host memory. `not_before` lets a caller add its own pipeline
// latency without an event of its own. Completion callbacks run at the computed completion time.
class DmaPort {
 public:
  static constexpr int kMaxSg = 64;  // every segment of one packet (xlate::SegList)
  virtual ~DmaPort() = default;
  // Reads the entries, concatenated, into dst (valid until done runs). With `share` not null and
  // page sharing on, a read of exactly one whole page of memory written before stores into
  // *share (empty before) a reference to that page instead, and leaves dst as it is: the bytes
  // read are the page's, frozen while the reference is held (see dma_write_borrowed).
  virtual void dma_read(const SgEntry* sg, int n, uint8_t* dst, Tick not_before, Callback done,
                        PageRef* share = nullptr) = 0;
  // Writes src, scattered over the entries. src is copied at once: the caller may reuse it.
  virtual void dma_write(const SgEntry* sg, int n, const uint8_t* src, Tick not_before,
                         Callback done) = 0;
  // Like dma_write, without copying: src must stay valid until `release` runs, which happens
  // once the data is in host memory (no later than the end of the run). Saves a copy per packet.
  // `share`, if not null, must stay valid as long as src; if it refers to a page, the data are
  // that page's 4096 bytes and src is not read. A write of exactly one whole page then maps that
  // page (copy-on-write) instead of copying, if sharing is on and the page is of the same pool.
  // Returns the time the data is in host memory (`release` may run later: writes nobody waits
  // for are applied lazily).
  virtual Tick dma_write_borrowed(const SgEntry* sg, int n, const uint8_t* src, Tick not_before,
                                  Callback release, const PageRef* share = nullptr) = 0;
  // MSI-X message: a 4-byte posted write upstream.
  virtual void msi(uint64_t addr, uint32_t data, Tick not_before) = 0;
  // Inside a dma_read's `done`: true if the read's completions carried an error (its IOMMU found
  // no mapping for part of it): the data is not memory's (all ones where it failed).
  virtual bool read_failed() const { return false; }
  // The time every DMA write and MSI-X message issued so far is in host memory (now, if none is
  // in flight): what a device reset waits for before it reports itself complete.
  virtual Tick writes_done() const = 0;
  void dma_read(uint64_t addr, uint8_t* dst, uint32_t len, Tick not_before, Callback done) {
    SgEntry e{addr, len};
    dma_read(&e, 1, dst, not_before, std::move(done));
  }
  void dma_write(uint64_t addr, const uint8_t* src, uint32_t len, Tick not_before, Callback done) {
    SgEntry e{addr, len};
    dma_write(&e, 1, src, not_before, std::move(done));
  }
};

struct BridgeParams {
  Params link;                 // PCIe link (generation, width, MPS, latencies, tags, credits)
  Tick mem_read_latency = 0;   // host memory access time added to every DMA read
  Tick mem_write_latency = 0;  // added to every DMA write before it is visible
  // Simulator speed, no effect on results: whole-page DMA reads hand out page references, and
  // whole-page DMA writes of bytes with one map the page instead of copying them.
  bool share_pages = false;
};

class Bridge final : public DmaPort {
 public:
  // `mem` is the host's memory: the simulated one (hostmem::HostMemory, whose speed hooks the
  // bridge then uses, and page sharing) or another (the virtual device's process memory).
  Bridge(Sim& sim, const std::string& name, const BridgeParams& p, hostmem::Memory& mem);
  ~Bridge() override;
  void attach_device(MmioTarget* d) { device_ = d; }
  void attach_host(HostObserver* h) { host_ = h; }
  // DMA addresses are IOVAs this IOMMU translates (null: physical addresses, the default).
  void attach_iommu(Iommu* m);
  Iommu* iommu() const { return iommu_; }

  // The largest posted MMIO write the host issues at once (write-combining: x86's
  // MOVDIR64B or four 64-byte WC buffers, as mlx5 BlueFlame writes a WQE).
  static constexpr uint32_t kMaxMmioBurst = 256;
  // Host side. A posted write: the caller goes on at once; the device sees it when it arrives.
  void mmio_write32(uint64_t offset, uint32_t value);
  // Host side: a posted write of len bytes (1..kMaxMmioBurst), timed as one MMIO write of that
  // size; data is copied at once. Any other length is refused (counted in mmio_errors, logged).
  void mmio_write(uint64_t offset, const void* data, size_t len);
  // Host side, non-posted: must be called from an SC_THREAD; blocks for the round trip.
  uint32_t mmio_read32(uint64_t offset);
  // Host side, non-posted, from outside SystemC threads (the virtual device's serve): `done` gets
  // the value when the completion is back.
  void mmio_read32(uint64_t offset, std::function<void(uint32_t)> done);

  // Device side (DmaPort).
  void dma_read(const SgEntry* sg, int n, uint8_t* dst, Tick not_before, Callback done,
                PageRef* share = nullptr) override;
  void dma_write(const SgEntry* sg, int n, const uint8_t* src, Tick not_before,
                 Callback done) override;
  Tick dma_write_borrowed(const SgEntry* sg, int n, const uint8_t* src, Tick not_before,
                          Callback release, const PageRef* share = nullptr) override;
  void msi(uint64_t addr, uint32_t data, Tick not_before) override;
  Tick writes_done() const override;
  bool read_failed() const override { return read_failed_; }
  using DmaPort::dma_read;
  using DmaPort::dma_write;

  // DMA writes land in host memory at their computed completion time. Those nobody waits for
  // are applied lazily, without an event of their own: sync() applies every write whose time
  // has come. The host calls it before each CPU access to memory; the bridge before each DMA.
  void sync();
  // End of a run: applies every write still in flight.
  void sync_all();
  // Completion time of the earliest write in flight that overlaps the (physical) range, or
  // kTickNever.
  Tick pending_write_time(uint64_t addr, uint64_t len) const;

  const LinkTiming& timing() const { return timing_; }
  hostmem::Memory& memory() { return mem_; }

 private:
  struct Job {
    SgEntry sg[kMaxSg];
    int n = 0;
    uint8_t* dst = nullptr;
    std::vector<uint8_t> data;  // keeps its capacity across reuse: no allocation once warm
    Callback done;
    const uint8_t* borrowed = nullptr;  // data still in the caller's buffer (no copy)
    Callback release;                   // gives the caller's buffer back once applied
    PageRef* share_out = nullptr;       // read: where to put a reference to the page read
    const PageRef* share_in = nullptr;  // write: the page whose bytes are borrowed
    Tick when = 0;
    bool has_event = false;
    // With an IOMMU: where the entries land, page by page (pa kUnmapped: a fault), as the
    // mappings were at `gen`; translated again if they changed before the access.
    struct Piece {
      uint64_t pa, iova;
      uint32_t len;
    };
    std::vector<Piece> pieces;
    uint64_t gen = 0;
    bool failed = false;  // a read: a piece found no mapping
  };
  static constexpr uint64_t kUnmapped = ~uint64_t(0);
  // The IOMMU path: translates j's entries into j->pieces (now, and again if the mappings
  // changed since), reads or writes them, and reports the pieces that found no mapping.
  void map_pieces(Job* j);
  void read_pieces(Job* j);
  void write_pieces(Job* j, const uint8_t* src);
  // ATS: when the device holds the translations of every page of the entries.
  Tick ats_ready(const SgEntry* sg, int n, Tick start);
  void apply(Job* j);
  void apply_until(Tick t);
  std::vector<Job*> pending_;  // DMA writes in flight, in completion order
  size_t pending_head_ = 0;
  Tick last_msi_ = 0;  // when the last MSI-X message sent arrives
  Job* get_job();
  Tick queue_write(const SgEntry* sg, int n, const uint8_t* src, Tick not_before, Callback done,
                   Callback release, const PageRef* share);
  // One whole, aligned page: what page sharing applies to.
  static bool whole_page(const SgEntry* sg, int n) {
    return n == 1 && sg[0].len == hostmem::kPageSize && (sg[0].addr & hostmem::kPageMask) == 0;
  }
  void put_job(Job* j);
  // False (counted, logged) if an entry runs past the end of the address space.
  bool check_sg(const SgEntry* sg, int n, const char* what);
  Tick now() const { return sim_.now(); }

  Sim& sim_;
  std::string name_;
  BridgeParams p_;
  hostmem::Memory& mem_;
  hostmem::HostMemory* sparse_;  // mem_, if it is the simulated memory (else null)
  LinkTiming timing_;
  int read_lane_;  // DMA reads complete in order (completions share one direction): a lane
  MmioTarget* device_ = nullptr;
  Iommu* iommu_ = nullptr;
  bool read_failed_ = false;  // during a failed read's completion callback
  HostObserver* host_ = nullptr;
  std::vector<std::unique_ptr<Job>> all_jobs_;
  std::vector<Job*> free_jobs_;
  // MMIO bursts in flight (copied at the call), their buffers reused.
  struct Burst {
    uint8_t data[kMaxMmioBurst];
  };
  std::vector<std::unique_ptr<Burst>> all_bursts_;
  std::vector<Burst*> free_bursts_;
  stats::Group stats_;
  uint64_t& dma_reads_;
  uint64_t& dma_read_bytes_;
  uint64_t& dma_writes_;
  uint64_t& dma_write_bytes_;
  uint64_t& mmio_writes_;
  uint64_t& mmio_write_bytes_;
  uint64_t& mmio_errors_;
  uint64_t& mmio_reads_;
  uint64_t& msis_;
  uint64_t& dma_errors_;
  stats::Histogram& read_latency_;
};

}  // namespace rn::pcie
