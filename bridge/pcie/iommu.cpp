#include "bridge/pcie/iommu.h"

#include <fmt/core.h>

#include <algorithm>

#include "model/core/tag_array.h"

namespace rn::pcie {

int page_size_index(uint64_t bytes) {
  for (int i = 0; i < 3; ++i)
    if (bytes == (uint64_t(1) << kPageShifts[i])) return i;
  return -1;
}

namespace {
uint64_t page_bytes(int size) { return uint64_t(1) << kPageShifts[size]; }

}  // namespace

std::string IommuParams::validate() const {
  std::string e =
      check_tag_array("iommu.iotlb_entries", iotlb_entries, "iommu.iotlb_ways", iotlb_ways);
  if (e.empty() && ats)
    e = check_tag_array("iommu.atc_entries", atc_entries, "iommu.atc_ways", atc_ways);
  if (e.empty() && (levels < 3 || levels > 5))
    e = fmt::format("iommu.levels: {} is not 3, 4 or 5 (a 1 GiB page needs 3)", levels);
  if (e.empty() && (walkers < 1 || walkers > 64))
    e = fmt::format("iommu.walkers: {} is not in 1..64", walkers);
  return e;
}

void Tlb::reset(uint32_t entries, uint32_t ways) {
  ways_ = ways;
  sets_ = entries / ways;
  e_.assign(entries, Entry{});
  clock_ = 0;
}

Tlb::Entry* Tlb::find(uint64_t addr, unsigned sizes) {
  for (int s = 0; s < 3; ++s) {
    if (!(sizes & (1u << s))) continue;
    const uint64_t page = addr >> kPageShifts[s];
    Entry* set = set_of(page);
    for (uint32_t w = 0; w < ways_; ++w)
      if (set[w].valid && set[w].size == s && set[w].page == page) {
        set[w].used = ++clock_;
        return &set[w];
      }
  }
  return nullptr;
}

void Tlb::insert(uint64_t addr, int size, Tick ready) {
  const uint64_t page = addr >> kPageShifts[size];
  Entry* set = set_of(page);
  Entry* victim = &set[0];
  for (uint32_t w = 0; w < ways_; ++w) {
    if (!set[w].valid) {
      victim = &set[w];
      break;
    }
    if (set[w].used < victim->used) victim = &set[w];
  }
  *victim = Entry{page, static_cast<uint8_t>(size), true, ++clock_, ready};
}

uint64_t Tlb::invalidate(uint64_t lo, uint64_t hi) {
  uint64_t n = 0;
  for (Entry& e : e_) {
    if (!e.valid) continue;
    const uint64_t a = e.page << kPageShifts[e.size], b = a + page_bytes(e.size);
    if (a < hi && lo < b) {
      e.valid = false;
      ++n;
    }
  }
  return n;
}

Iommu::Iommu(Sim& sim, const std::string& name, const IommuParams& p)
    : sim_(sim),
      name_(name),
      p_(p),
      stats_(sim.stats, name, "IOMMU: IOVA translation, IOTLB and page walks (and ATS)"),
      translations_(stats_.counter("translations", "count",
                                   "requests translated (at the root complex, or ATS requests)")),
      hits_(stats_.counter("iotlb_hits", "count", "translations found in the IOTLB")),
      misses_(stats_.counter("iotlb_misses", "count", "translations that walked the page tables")),
      faults_(stats_.counter("faults", "count",
                             "DMA pieces that found no mapping: reads returned all ones, writes "
                             "were dropped")),
      invalidated_(stats_.counter("invalidated_entries", "count",
                                  "cached translations dropped by unmaps (IOTLB and ATC)")),
      mapped_(stats_.counter("mapped_pages", "count", "pages mapped by the host")),
      unmapped_(stats_.counter("unmapped_pages", "count", "pages unmapped by the host")),
      atc_hits_(stats_.counter("atc_hits", "count", "ATS: translations the device had cached")),
      atc_misses_(stats_.counter("atc_misses", "count",
                                 "ATS: translation requests the device sent to the root complex")),
      walk_latency_(stats_.histogram("walk_latency", "ps",
                                     "IOTLB miss: arrival to translation done (waiting for a "
                                     "walker, then the walk)")) {
  if (std::string e = p_.validate(); !e.empty()) throw std::invalid_argument(e);
  iotlb_.reset(p_.iotlb_entries, p_.iotlb_ways);
  if (p_.ats) atc_.reset(p_.atc_entries, p_.atc_ways);
  walker_free_.assign(p_.walkers, 0);
}

Iommu::~Iommu() { sim_.stats.remove(&stats_); }

bool Iommu::map(uint64_t iova, uint64_t pa, uint64_t len, int size) {
  if (size < 0 || size > 2) return false;
  const uint64_t pg = page_bytes(size);
  if ((iova | pa | len) & (pg - 1) || len == 0) return false;
  for (uint64_t off = 0; off < len; off += pg)
    if (size_of(iova + off) >= 0) return false;
  for (uint64_t off = 0; off < len; off += pg)
    pages_[size][(iova + off) >> kPageShifts[size]] = pa + off;
  sizes_ |= 1u << size;
  mapped_ += len / pg;
  return true;
}

uint64_t Iommu::unmap(uint64_t iova, uint64_t len) {
  uint64_t bytes = 0;
  for (int s = 0; s < 3; ++s) {
    const uint64_t pg = page_bytes(s);
    if (!(sizes_ & (1u << s)) || len < pg) continue;
    const uint64_t first = (iova + pg - 1) >> kPageShifts[s], end = (iova + len) >> kPageShifts[s];
    for (uint64_t p = first; p < end; ++p)
      if (pages_[s].erase(p)) {
        bytes += pg;
        ++unmapped_;
      }
  }
  if (bytes) ++gen_;
  invalidated_ += iotlb_.invalidate(iova, iova + len);
  if (p_.ats) invalidated_ += atc_.invalidate(iova, iova + len);
  return bytes;
}

int Iommu::size_of(uint64_t iova) const {
  for (int s = 0; s < 3; ++s)
    if ((sizes_ & (1u << s)) && pages_[s].count(iova >> kPageShifts[s])) return s;
  return -1;
}

bool Iommu::lookup(uint64_t iova, uint64_t* pa, uint64_t* span) const {
  for (int s = 0; s < 3; ++s) {
    if (!(sizes_ & (1u << s))) continue;
    auto it = pages_[s].find(iova >> kPageShifts[s]);
    if (it == pages_[s].end()) continue;
    const uint64_t off = iova & (page_bytes(s) - 1);
    *pa = it->second + off;
    *span = page_bytes(s) - off;
    return true;
  }
  return false;
}

void Iommu::fault(uint64_t iova, uint64_t len, bool write) {
  ++faults_;
  RN_LOG(sim_, LogCat::kError, name_, "DMA {} of {} bytes at IOVA {:#x}: no mapping (fault)",
         write ? "write" : "read", len, iova);
}

Tick Iommu::translate(uint64_t iova, Tick at) {
  ++translations_;
  if (Tlb::Entry* e = iotlb_.find(iova, sizes_)) {
    ++hits_;
    return std::max(at + p_.iotlb_hit_latency, e->ready);  // a walk under way: its end
  }
  ++misses_;
  // The walk reads one entry per level down to the page's: fewer for larger pages. An IOVA that
  // maps nothing walks to the bottom and faults.
  const int s = size_of(iova);
  const uint32_t reads = p_.levels - static_cast<uint32_t>(s > 0 ? s : 0);
  auto w = std::min_element(walker_free_.begin(), walker_free_.end());
  const Tick start = std::max(at, *w);
  const Tick end = start + reads * p_.walk_read_latency;
  *w = end;
  walk_latency_.add(end - at);
  if (s >= 0) iotlb_.insert(iova, s, end);
  return end;
}

Tick Iommu::ready(uint64_t iova, Tick at) { return translate(iova, at); }

Tick Iommu::ats_ready(uint64_t iova, Tick at, Tick link_latency) {
  if (Tlb::Entry* e = atc_.find(iova, sizes_)) {
    ++atc_hits_;
    return std::max(at, e->ready);
  }
  ++atc_misses_;
  const Tick done = translate(iova, at + link_latency) + link_latency;
  const int s = size_of(iova);
  if (s >= 0) atc_.insert(iova, s, done);
  return done;
}

}  // namespace rn::pcie
