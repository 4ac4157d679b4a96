// The NIC's memory-protection and translation stage: every NIC access to host memory by key
// (lkey for local buffers, rkey for remote requests) passes here. It checks key, protection domain,
// access rights and bounds, then translates the virtual range through the region's page list (MTT)
// into host bus addresses, split at page boundaries. The stage has a fixed lookup latency, counted
// by callers as a pipeline delay; caches and misses (MPT/MTT caches, IOMMU) come in later versions
// of this block, behind the same call.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/core/prefetch.h"
#include "model/core/sim.h"
#include "model/translation/stage.h"

namespace rn::xlate {

struct alignas(64) Region {  // aligned: its prefetch (MrTable::prefetch) takes 3 lines, not 4
  bool valid = false;
  uint8_t page_shift = 12;
  uint32_t key = 0;
  uint32_t pdn = 0;
  uint32_t access = 0;
  uint64_t iova = 0;
  uint64_t length = 0;
  uint64_t mtt_addr = 0;        // bus address of the page list in host memory (CAPS.icm), or 0
  std::vector<uint64_t> pages;  // bus address of each page, from the page containing iova
  // The first kInlinePages of `pages` again, inside the entry: a small region is translated from
  // the entry's own cache lines (with many regions in use, one cache miss fewer per access).
  static constexpr size_t kInlinePages = 16;
  uint64_t first_pages[kInlinePages] = {};
  uint64_t page(uint64_t i) const { return i < kInlinePages ? first_pages[i] : pages[i]; }
};
static_assert(sizeof(Region) == 192, "a region's entry is three cache lines");

struct Params {
  uint32_t max_mrs = 65536;
  Tick lookup_latency = 20 * kNs;  // key lookup + MTT read, per access (pipeline delay)
};

class MrTable final : public Stage {
 public:
  MrTable(Sim& sim, const std::string& name, const Params& p);
  ~MrTable();
  // Returns the new key, or 0 when the table is full or the page list does not cover the pages
  // of [iova, iova+length). Keys are (index << 8) | variant; the variant
  // changes each time an index is reused, so a stale key never matches a new region.
  // `mtt_addr`: where the page list lies in host memory, for the MTT cache (0: nowhere).
  uint32_t add(uint32_t pdn, uint32_t access, uint64_t iova, uint64_t length, uint8_t page_shift,
               std::vector<uint64_t> pages, uint64_t mtt_addr = 0);
  bool remove(uint32_t key);
  // Removes every region (a device reset); returns how many there were.
  size_t remove_all();
  const Region* find(uint32_t key) const;
  size_t count_in_pd(uint32_t pdn) const;
  size_t size() const { return live_; }
  uint32_t max_regions() const { return p_.max_mrs; }

  // Checks and translates [va, va+len) of the region named by key. `need` is a set of access
  // flags the region must grant (0 for local reads). Appends the bus segments to `out`, merging
  // physically contiguous pages; with out == nullptr only checks the range.
  Status translate(uint32_t key, uint32_t pdn, uint64_t va, uint64_t len, uint32_t need,
                   SegList* out);
  Tick latency() const { return p_.lookup_latency; }
  // Stage: translate(), valid lookup_latency from now. Never kPending.
  Status lookup(uint32_t key, uint32_t pdn, uint64_t va, uint64_t len, uint32_t need, SegList* out,
                Tick* ready) override {
    *ready = sim_.now() + p_.lookup_latency;
    return translate(key, pdn, va, len, need, out);
  }
  // A hint, no effect: starts loading the entry of `key` into the CPU cache (speed only).
  void prefetch(uint32_t key) const override {
    uint32_t idx = key >> 8;
    if (idx < regions_.size()) prefetch_object(&regions_[idx], sizeof(Region));
  }

 private:
  Sim& sim_;
  Params p_;
  std::vector<Region> regions_;
  std::vector<uint8_t> variant_;
  std::vector<uint32_t> free_;
  size_t live_ = 0;
  std::unordered_map<uint32_t, size_t> per_pd_;  // live regions of each PD
  stats::Group stats_;
  uint64_t& lookups_;
  uint64_t& faults_key_;
  uint64_t& faults_pd_;
  uint64_t& faults_access_;
  uint64_t& faults_bounds_;
  uint64_t& faults_segments_;
};

// An engine's handle on the translation stage in use: the behavioural table is called directly
// (MrTable is final: no virtual call per packet), any other stage through its interface.
class StageHandle {
 public:
  void use(Stage& s) {
    stage_ = &s;
    table_ = dynamic_cast<MrTable*>(&s);
  }
  Stage& stage() { return *stage_; }
  Status lookup(uint32_t key, uint32_t pdn, uint64_t va, uint64_t len, uint32_t need, SegList* out,
                Tick* ready) {
    return table_ ? table_->lookup(key, pdn, va, len, need, out, ready)
                  : stage_->lookup(key, pdn, va, len, need, out, ready);
  }
  void prefetch(uint32_t key) const {
    if (table_) {
      table_->prefetch(key);
    } else if (stage_) {
      stage_->prefetch(key);
    }
  }

 private:
  Stage* stage_ = nullptr;
  MrTable* table_ = nullptr;
};

}  // namespace rn::xlate
