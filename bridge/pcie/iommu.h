// The host's IOMMU, in the root complex: the device's DMA addresses are I/O virtual addresses
// (IOVAs) that the IOMMU translates to physical addresses through the page tables the host's
// IOMMU driver keeps (one domain: the device's). Translations are cached in an IOTLB (entries,
// associativity, LRU, pages of 4 KiB, 2 MiB and 1 GiB); a miss costs a page walk of dependent
// memory reads, a few walks in flight at once. Optionally the device caches translations itself
// (ATS: an address translation cache, filled by translation requests over the link, emptied by
// the IOMMU's invalidations), and its requests then arrive translated.
//
// Two halves. The functional one (map, unmap, lookup) says where a DMA lands, at the moment it
// lands: an IOVA unmapped by then faults (a read returns all ones, a write is dropped), so a DMA
// never reaches a page its mapping no longer names. The timing one (ready, ats_ready) says when a
// request's translation is done, computed when the request is issued, as the link timing is: no
// event of its own.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "bridge/pcie/link_timing.h"
#include "model/core/sim.h"

namespace rn::pcie {

// The page sizes an IOMMU (and the host's memory) offers: 4 KiB, 2 MiB, 1 GiB (x86-64).
constexpr unsigned kPageShifts[3] = {12, 21, 30};
int page_size_index(uint64_t bytes);  // 0, 1, 2; -1 if not one of the three

// The defaults are the configuration's (iommu.*): the schema takes them from here.
struct IommuParams {
  bool enabled = false;
  uint32_t iotlb_entries = 64;        // translations cached (pcie-bench: about 64)
  uint32_t iotlb_ways = 4;            // associativity (entries / ways sets, a power of two)
  Tick iotlb_hit_latency = 0;         // added to every translation that hits
  uint32_t levels = 4;                // page-table levels of a 4 KiB page (4: 48-bit IOVAs; 5: 57)
  Tick walk_read_latency = 58 * kNs;  // each dependent read of a page walk
  uint32_t walkers = 4;               // page walks in flight at once
  Tick invalidate_latency = 1 * kUs;  // host CPU time of an invalidation and its wait
  bool ats = false;                   // the device translates ahead (ATS) and caches translations
  uint32_t atc_entries = 64;          // the device's address translation cache
  uint32_t atc_ways = 4;
  std::string validate() const;  // "" or what is wrong, naming the key (iommu.*)
};

// A set-associative translation cache with LRU replacement; each entry caches one page of one of
// the three sizes. An entry filled by a translation still under way holds the time it is ready.
class Tlb {
 public:
  void reset(uint32_t entries, uint32_t ways);
  struct Entry {
    uint64_t page = ~uint64_t(0);  // address >> shift
    uint8_t size = 0;              // index into kPageShifts
    bool valid = false;
    uint64_t used = 0;  // LRU stamp
    Tick ready = 0;
  };
  // The entry holding addr among the sizes whose bits are set in `sizes`, or null.
  Entry* find(uint64_t addr, unsigned sizes);
  void insert(uint64_t addr, int size, Tick ready);
  // Drops every entry overlapping [lo, hi); returns how many.
  uint64_t invalidate(uint64_t lo, uint64_t hi);

 private:
  Entry* set_of(uint64_t page) { return &e_[(page & (sets_ - 1)) * ways_]; }
  std::vector<Entry> e_;
  uint32_t sets_ = 1, ways_ = 1;
  uint64_t clock_ = 0;
};

class Iommu final : public RcTranslation {
 public:
  Iommu(Sim& sim, const std::string& name, const IommuParams& p);
  ~Iommu() override;
  const IommuParams& params() const { return p_; }

  // The IOMMU driver. Maps [iova, iova + len) to [pa, pa + len) with pages of size index `size`:
  // all three aligned to the page. False (nothing mapped) if a page is mapped already.
  bool map(uint64_t iova, uint64_t pa, uint64_t len, int size);
  // Unmaps every page lying in [iova, iova + len) and drops their cached translations (the
  // IOTLB's and, with ATS, the device's). Returns the bytes unmapped.
  uint64_t unmap(uint64_t iova, uint64_t len);
  // Counts the unmaps that removed a page: a translation taken at one value holds while it stays.
  uint64_t generation() const { return gen_; }

  // Where the byte at iova is: its physical address, and *span bytes from it to its page's end.
  // False if no page maps it.
  bool lookup(uint64_t iova, uint64_t* pa, uint64_t* span) const;
  // A DMA found no mapping where it landed: counted and logged.
  void fault(uint64_t iova, uint64_t len, bool write);

  // Timing. A request for iova arriving at the root complex at `at`: when its translation is
  // done (RcTranslation; requests the device translated itself, with ATS, pass at once).
  Tick ready(uint64_t iova, Tick at) override;
  // ATS: when the device holds the translation of iova, looked up at `at` in its cache; a miss
  // asks the root complex, `link_latency` each way.
  Tick ats_ready(uint64_t iova, Tick at, Tick link_latency);

 private:
  // The IOTLB, or a walk: the time the translation is ready (a fault walks too).
  Tick translate(uint64_t iova, Tick at);
  int size_of(uint64_t iova) const;  // the size index of the page holding iova, or -1

  Sim& sim_;
  std::string name_;
  IommuParams p_;
  std::unordered_map<uint64_t, uint64_t> pages_[3];  // page number -> physical page address
  unsigned sizes_ = 0;                               // bit i: some page of size i is mapped
  uint64_t gen_ = 0;
  Tlb iotlb_, atc_;
  std::vector<Tick> walker_free_;
  stats::Group stats_;
  uint64_t& translations_;
  uint64_t& hits_;
  uint64_t& misses_;
  uint64_t& faults_;
  uint64_t& invalidated_;
  uint64_t& mapped_;
  uint64_t& unmapped_;
  uint64_t& atc_hits_;
  uint64_t& atc_misses_;
  stats::Histogram& walk_latency_;
};

}  // namespace rn::pcie
