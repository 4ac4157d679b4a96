#include "model/translation/context_cache.h"

#include <fmt/core.h>

#include "model/core/hot.h"

namespace rn::xlate {

std::string CacheParams::validate() const {
  if (mtt_entries % 8 || mtt_entries == 0)
    return fmt::format("nic.cache.mtt_entries: {} is not a multiple of 8 (a line holds 8)",
                       mtt_entries);
  std::string e = check_tag_array("nic.cache.mpt_entries", mpt_entries, "nic.cache.mpt_ways",
                                  mpt_ways, 1u << 20);
  if (e.empty())
    e = check_tag_array("nic.cache.mtt_entries / 8", mtt_entries / 8, "nic.cache.mtt_ways",
                        mtt_ways, 1u << 20);
  if (e.empty() && (misses < 1 || misses > 256))
    e = fmt::format("nic.cache.misses: {} is not in 1..256", misses);
  return e;
}

ContextCache::ContextCache(Sim& sim, const std::string& name, const CacheParams& p, MrTable& table,
                           pcie::DmaPort& dma)
    : sim_(sim),
      p_(p),
      table_(table),
      dma_(dma),
      fills_(p.misses),
      stats_(sim.stats, name,
             "context caches (CAPS.icm): memory keys (MPT) and page lists (MTT) on chip, misses "
             "read from host memory by DMA"),
      mpt_hits_(stats_.counter("mpt_hits", "count", "key lookups that found the key's entry")),
      mpt_misses_(stats_.counter("mpt_misses", "count",
                                 "key lookups that read the entry from host memory (each fill "
                                 "once; accesses waiting for a fill under way are not counted)")),
      mtt_hits_(stats_.counter("mtt_hits", "count", "page lookups that found their MTT line")),
      mtt_misses_(stats_.counter("mtt_misses", "count",
                                 "page lookups that read their MTT line (8 entries) from host "
                                 "memory (each fill once)")),
      reads_(stats_.counter("read_bytes", "bytes", "bytes the fills read from host memory")),
      evictions_(stats_.counter("evictions", "count", "valid lines a fill replaced (LRU)")),
      waits_full_(stats_.counter("waits_miss_registers", "count",
                                 "misses that found every miss register busy (nic.cache.misses) "
                                 "and waited")),
      read_faults_(stats_.counter("read_faults", "count",
                                  "fills whose DMA read failed (IOMMU): the accesses fail")),
      invalidations_(stats_.counter("invalidations", "count",
                                    "keys dropped from the caches by CREATE_MR or DESTROY_MR")),
      miss_latency_(stats_.histogram("miss_latency", "ps",
                                     "from a fill's DMA read issued to its data on chip")) {
  mpt_.reset(p.mpt_entries, p.mpt_ways);
  mtt_.reset(p.mtt_entries / 8, p.mtt_ways);
}

ContextCache::~ContextCache() { sim_.stats.remove(&stats_); }

RN_HOT TagArray::Line* ContextCache::touch(Kind kind, uint64_t tag, uint64_t addr) {
  TagArray& c = kind == kMpt ? mpt_ : mtt_;
  if (TagArray::Line* l = c.find(tag)) {
    if (l->fresh)
      l->fresh = false;  // the hit of the access that missed
    else
      ++(kind == kMpt ? mpt_hits_ : mtt_hits_);
    return l;
  }
  miss(kind, tag, addr);
  return nullptr;
}

void ContextCache::miss(Kind kind, uint64_t tag, uint64_t addr) {
  uint32_t free_slot = UINT32_MAX;
  for (uint32_t i = 0; i < fills_.size(); ++i) {
    const Fill& f = fills_[i];
    if (f.busy && f.keep && f.kind == kind && f.tag == tag) return;  // under way: wait for it
    if (!f.busy && free_slot == UINT32_MAX) free_slot = i;
  }
  if (free_slot == UINT32_MAX) {
    ++waits_full_;  // asked again when a fill lands
    return;
  }
  Fill& f = fills_[free_slot];
  f.busy = true;
  f.keep = true;
  f.kind = kind;
  f.tag = tag;
  f.start = sim_.now();
  ++(kind == kMpt ? mpt_misses_ : mtt_misses_);
  reads_ += kLine;
  dma_.dma_read(addr, f.buf, kLine, sim_.now(), [this, free_slot] { land(free_slot); });
}

void ContextCache::land(uint32_t slot) {
  Fill& f = fills_[slot];
  f.busy = false;
  const bool failed = dma_.read_failed();
  if (failed) ++read_faults_;
  miss_latency_.add(sim_.now() - f.start);
  ++epoch_;
  if (f.keep) {
    bool evicted = false;
    TagArray::Line* l = (f.kind == kMpt ? mpt_ : mtt_).insert(f.tag, &evicted);
    if (evicted) ++evictions_;
    l->fresh = true;
    l->bad = failed;
  }
  wake();
}

void ContextCache::invalidate(uint32_t key, const Region* r) {
  ++invalidations_;
  ++epoch_;
  const uint64_t idx = key >> 8;
  mpt_.drop(idx, idx + 1);
  uint64_t lo = 1, hi = 0;  // MTT lines of the region's page list
  if (r && r->mtt_addr) {
    lo = r->mtt_addr / kLine;
    hi = (r->mtt_addr + r->pages.size() * 8 + kLine - 1) / kLine;
    mtt_.drop(lo, hi);
  }
  for (Fill& f : fills_)
    if (f.busy &&
        ((f.kind == kMpt && f.tag == idx) || (f.kind == kMtt && f.tag >= lo && f.tag < hi)))
      f.keep = false;
}

void ContextCache::reset() {
  ++epoch_;
  mpt_.clear();
  mtt_.clear();
  for (Fill& f : fills_) f.keep = false;
  mpt_base_ = 0;
}

RN_HOT Status ContextCache::lookup(uint32_t key, uint32_t pdn, uint64_t va, uint64_t len,
                                   uint32_t need, SegList* out, Tick* ready) {
  const uint32_t idx = key >> 8;
  if (!mpt_base_ || idx == 0 || idx >= table_.max_regions())  // no entry to read: fails at once
    return table_.lookup(key, pdn, va, len, need, out, ready);
  // The lines of the page list the access needs, once its entry grants it (l0 > l1: none).
  auto lines = [&](uint32_t r_pdn, uint32_t r_access, uint64_t iova, uint64_t length, uint8_t shift,
                   uint64_t mtt_addr, uint64_t* l0, uint64_t* l1) {
    *l0 = 1;
    *l1 = 0;
    if (!out || !mtt_addr || !len || r_pdn != pdn || (r_access & need) != need || va < iova ||
        len > length || va - iova > length - len)
      return;
    const uint64_t p0 = iova >> shift;
    *l0 = (mtt_addr + ((va >> shift) - p0) * 8) / kLine;
    *l1 = (mtt_addr + (((va + len - 1) >> shift) - p0) * 8) / kLine;
  };
  if (memo_.key == key && memo_.epoch == epoch_) {
    uint64_t l0, l1;
    lines(memo_.pdn, memo_.access, memo_.iova, memo_.length, memo_.shift, memo_.mtt_addr, &l0, &l1);
    if (l0 > l1 || (memo_.lines && l0 == memo_.l0 && l1 == memo_.l1)) {
      ++mpt_hits_;
      if (l0 <= l1) mtt_hits_ += l1 - l0 + 1;
      return table_.lookup(key, pdn, va, len, need, out, ready);
    }
  }
  memo_.key = 0;
  // The key's entry is read (from the cache, or from host memory) before anything about the
  // key is known.
  TagArray::Line* m = touch(kMpt, idx, mpt_base_ + uint64_t(idx) * kLine);
  if (!m) return Status::kPending;
  if (m->bad) {
    *ready = sim_.now();
    return Status::kBadKey;
  }
  const Region* r = table_.find(key);
  uint64_t l0 = 1, l1 = 0;
  if (r) lines(r->pdn, r->access, r->iova, r->length, r->page_shift, r->mtt_addr, &l0, &l1);
  if (l0 <= l1 && l1 - l0 < SegList::kMax) {  // more fails in the table (too many segments)
    bool wait = false;
    for (uint64_t l = l0; l <= l1; ++l) {
      TagArray::Line* t = touch(kMtt, l, l * kLine);
      if (!t) {
        wait = true;
      } else if (t->bad) {
        *ready = sim_.now();
        return Status::kBadKey;
      }
    }
    if (wait) return Status::kPending;
  }
  if (r && p_.memo) {
    const bool looked = l0 <= l1 && l1 - l0 < SegList::kMax;
    memo_ = Memo{key,         r->pdn, r->access, r->page_shift, looked, r->iova, r->length,
                 r->mtt_addr, l0,     l1,        epoch_};
  }
  return table_.lookup(key, pdn, va, len, need, out, ready);
}

}  // namespace rn::xlate
