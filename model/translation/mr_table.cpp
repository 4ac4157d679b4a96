#include "model/translation/mr_table.h"

#include <algorithm>

#include "model/core/hot.h"

namespace rn::xlate {

const char* to_string(Status s) {
  switch (s) {
    case Status::kOk:
      return "ok";
    case Status::kBadKey:
      return "no region with this key";
    case Status::kPdMismatch:
      return "region belongs to another protection domain";
    case Status::kAccess:
      return "region does not grant the access";
    case Status::kBounds:
      return "range outside the region";
    case Status::kTooManySegments:
      return "range spans too many pages for one access";
    case Status::kPending:
      return "not known yet (the stage will wake its engines)";
  }
  return "?";
}

MrTable::MrTable(Sim& sim, const std::string& name, const Params& p)
    : sim_(sim),
      p_(p),
      stats_(sim.stats, name, "memory regions: key, PD, access and bounds checks, MTT translation"),
      lookups_(stats_.counter("lookups", "count", "translations requested")),
      faults_key_(stats_.counter("faults_bad_key", "count", "refused: unknown or stale key")),
      faults_pd_(stats_.counter("faults_pd", "count", "refused: protection domain mismatch")),
      faults_access_(stats_.counter("faults_access", "count", "refused: access not granted")),
      faults_bounds_(stats_.counter("faults_bounds", "count", "refused: outside the region")),
      faults_segments_(
          stats_.counter("faults_segments", "count",
                         "refused: one access spanning more pages than a DMA can carry")) {
  stats_.formula("regions", "count", "registered regions at the end of the run",
                 [this] { return double(live_); });
  // Index 0 is never used so that key 0 is always invalid.
  regions_.resize(1);
  variant_.resize(1);
}

MrTable::~MrTable() { sim_.stats.remove(&stats_); }

uint32_t MrTable::add(uint32_t pdn, uint32_t access, uint64_t iova, uint64_t length,
                      uint8_t page_shift, std::vector<uint64_t> pages, uint64_t mtt_addr) {
  if (live_ >= p_.max_mrs) return 0;
  // The page list must cover the region, or translate() would read past it.
  if (page_shift < 12 || page_shift > 30) return 0;
  if (length > 0) {
    if (length - 1 > ~uint64_t(0) - iova) return 0;  // past 2^64
    uint64_t needed = ((iova + length - 1) >> page_shift) - (iova >> page_shift) + 1;
    if (pages.size() < needed) return 0;
  }
  uint32_t idx;
  if (!free_.empty()) {
    idx = free_.back();
    free_.pop_back();
  } else {
    if (regions_.size() > 0xFFFFFF) return 0;
    idx = static_cast<uint32_t>(regions_.size());
    regions_.emplace_back();
    variant_.push_back(0);
  }
  uint8_t var = ++variant_[idx];
  Region& r = regions_[idx];
  r.valid = true;
  r.key = (idx << 8) | var;
  r.pdn = pdn;
  r.access = access;
  r.iova = iova;
  r.length = length;
  r.page_shift = page_shift;
  r.mtt_addr = mtt_addr;
  r.pages = std::move(pages);
  for (size_t i = 0; i < Region::kInlinePages; ++i)
    r.first_pages[i] = i < r.pages.size() ? r.pages[i] : 0;
  ++live_;
  ++per_pd_[pdn];
  return r.key;
}

bool MrTable::remove(uint32_t key) {
  uint32_t idx = key >> 8;
  if (idx == 0 || idx >= regions_.size()) return false;
  Region& r = regions_[idx];
  if (!r.valid || r.key != key) return false;
  r.valid = false;
  if (--per_pd_[r.pdn] == 0) per_pd_.erase(r.pdn);
  r.pages.clear();
  r.pages.shrink_to_fit();
  free_.push_back(idx);
  --live_;
  return true;
}

size_t MrTable::remove_all() {
  size_t n = 0;
  for (const Region& r : regions_)
    if (r.valid && remove(r.key)) ++n;
  return n;
}

const Region* MrTable::find(uint32_t key) const {
  uint32_t idx = key >> 8;
  if (idx == 0 || idx >= regions_.size()) return nullptr;
  const Region& r = regions_[idx];
  return (r.valid && r.key == key) ? &r : nullptr;
}

size_t MrTable::count_in_pd(uint32_t pdn) const {
  auto it = per_pd_.find(pdn);
  return it == per_pd_.end() ? 0 : it->second;
}

RN_HOT Status MrTable::translate(uint32_t key, uint32_t pdn, uint64_t va, uint64_t len,
                                 uint32_t need, SegList* out) {
  ++lookups_;
  const Region* r = find(key);
  if (!r) {
    ++faults_key_;
    return Status::kBadKey;
  }
  if (r->pdn != pdn) {
    ++faults_pd_;
    return Status::kPdMismatch;
  }
  if ((r->access & need) != need) {
    ++faults_access_;
    return Status::kAccess;
  }
  if (va < r->iova || len > r->length || va - r->iova > r->length - len) {
    ++faults_bounds_;
    return Status::kBounds;
  }
  if (!out) return Status::kOk;  // a check of the whole range, no translation
  const uint64_t page = uint64_t(1) << r->page_shift;
  const uint64_t base = r->iova & ~(page - 1);
  uint64_t off = va - base;
  while (len > 0) {
    uint64_t pi = off >> r->page_shift;
    uint64_t in_page = off & (page - 1);
    uint64_t chunk = std::min(len, page - in_page);
    uint64_t pa = r->page(pi) + in_page;
    if (out->n > 0 && out->seg[out->n - 1].addr + out->seg[out->n - 1].len == pa &&
        out->seg[out->n - 1].len + chunk <= 0xFFFFFFFFu) {
      out->seg[out->n - 1].len += static_cast<uint32_t>(chunk);  // physically contiguous: merge
    } else {
      if (out->n == SegList::kMax) {
        ++faults_segments_;
        return Status::kTooManySegments;
      }
      out->seg[out->n++] = Segment{pa, static_cast<uint32_t>(chunk)};
    }
    off += chunk;
    len -= chunk;
  }
  return Status::kOk;
}

}  // namespace rn::xlate
