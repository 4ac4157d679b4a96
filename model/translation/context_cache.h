// The NIC's on-chip caches of its translation tables (CAPS.icm): the memory-key table (MPT) lives
// in host memory the driver gave the device (MAP_ICM), each region's page list (MTT) where the
// driver wrote it for CREATE_MR. An access by key looks the key up in the MPT cache and each page
// it touches in the MTT cache; a miss is a 64-byte DMA read of the entry or the MTT line through
// the bridge (and the IOMMU, if any), and the access answers kPending until it lands: the engines
// stall that work and ask again when the stage wakes them (xlate::Stage). The checks themselves
// are MrTable's, on its own copy of each entry: the caches decide what costs a miss.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "bridge/pcie/pcie_bridge.h"
#include "model/core/sim.h"
#include "model/core/tag_array.h"
#include "model/translation/mr_table.h"

namespace rn::xlate {

struct CacheParams {
  bool enabled = false;          // off: MrTable answers every lookup (no context memory)
  uint32_t mpt_entries = 1024;   // memory keys on chip
  uint32_t mpt_ways = 4;         // associativity (entries / ways sets, a power of two)
  uint32_t mtt_entries = 8192;   // page translations on chip, in lines of 8
  uint32_t mtt_ways = 4;         // associativity of the MTT lines
  uint32_t misses = 16;          // misses in flight at once (miss status registers)
  bool memo = true;              // speed only (sim.cache_memo): the last lookup remembered
  std::string validate() const;  // "" or what is wrong, naming the key (nic.cache.*)
};

class ContextCache final : public Stage {
 public:
  static constexpr uint32_t kLine = 64;  // bytes: one MptEntry, or 8 MTT entries
  ContextCache(Sim& sim, const std::string& name, const CacheParams& p, MrTable& table,
               pcie::DmaPort& dma);
  ~ContextCache() override;

  // The context memory (MAP_ICM): MPT entry i at base + 64 i. 0: none (after a reset).
  void set_mpt_base(uint64_t base) { mpt_base_ = base; }
  uint64_t mpt_base() const { return mpt_base_; }
  // A key's entry changed (CREATE_MR, DESTROY_MR): drops it, and the lines of the page list of
  // region r (if given), from the caches; a fill of them in flight is not kept.
  void invalidate(uint32_t key, const Region* r);
  // A device reset: every line, and every fill in flight, forgotten.
  void reset();

  Status lookup(uint32_t key, uint32_t pdn, uint64_t va, uint64_t len, uint32_t need, SegList* out,
                Tick* ready) override;
  void prefetch(uint32_t key) const override { table_.prefetch(key); }

 private:
  enum Kind : uint8_t { kMpt, kMtt };
  struct Fill {
    bool busy = false;
    bool keep = true;  // false once invalidated while in flight
    Kind kind = kMpt;
    uint64_t tag = 0;
    Tick start = 0;
    alignas(8) uint8_t buf[kLine] = {};
  };
  // The line `tag` of `kind` is not on chip: starts its fill (unless one is under way or every
  // miss register is busy; then the access waits for the next fill to land).
  void miss(Kind kind, uint64_t tag, uint64_t addr);
  void land(uint32_t slot);
  // Looks `tag` up; counts a hit or a miss. Returns the line, or null (and starts its fill).
  TagArray::Line* touch(Kind kind, uint64_t tag, uint64_t addr);

  // Speed only (results are the same without it; see the README): the last lookup that hit
  // everything it needed, while no line has changed since. Asking it again (the same key, and
  // the same MTT lines or none) finds its lines most recently used already: the tag arrays are
  // not searched, only the hits counted.
  struct Memo {
    uint32_t key = 0;  // 0: none
    uint32_t pdn = 0, access = 0;
    uint8_t shift = 0;
    bool lines = false;  // l0..l1 were looked up (an access that needed addresses)
    uint64_t iova = 0, length = 0, mtt_addr = 0, l0 = 0, l1 = 0;
    uint64_t epoch = 0;
  };
  Memo memo_;
  uint64_t epoch_ = 1;  // advanced whenever a line is filled or dropped

  Sim& sim_;
  CacheParams p_;
  MrTable& table_;
  pcie::DmaPort& dma_;
  uint64_t mpt_base_ = 0;
  TagArray mpt_, mtt_;
  std::vector<Fill> fills_;
  stats::Group stats_;
  uint64_t& mpt_hits_;
  uint64_t& mpt_misses_;
  uint64_t& mtt_hits_;
  uint64_t& mtt_misses_;
  uint64_t& reads_;
  uint64_t& evictions_;
  uint64_t& waits_full_;
  uint64_t& read_faults_;
  uint64_t& invalidations_;
  stats::Histogram& miss_latency_;
};

}  // namespace rn::xlate
