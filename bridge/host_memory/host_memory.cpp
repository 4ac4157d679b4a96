#include "bridge/host_memory/host_memory.h"

#include <isa-l/crc.h>

#include <algorithm>
#include <cassert>
#include <cstring>

#include "model/core/hot.h"
#include "model/core/mix.h"
#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <sstream>
#include <stdexcept>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "pattern_fill stores words little-endian");

namespace rn::hostmem {
namespace {

alignas(64) const uint8_t kZeroPage[kPageSize] = {};

// Eight pattern bytes at offsets 8*word .. 8*word+7 (little-endian in the word).
inline uint64_t pattern_word_mixed(uint64_t mixed_seed, uint64_t word) {
  return mix64(mixed_seed ^ (word * 0xd6e8feb86659fd93ULL));
}
inline uint64_t pattern_word(uint64_t seed, uint64_t word) {
  return pattern_word_mixed(mix64(seed), word);
}

// Bytes from addr to the end of its page, capped at remaining.
inline size_t chunk_len(uint64_t addr, uint64_t remaining) {
  return static_cast<size_t>(std::min<uint64_t>(remaining, kPageSize - (addr & kPageMask)));
}

// memcpy with non-temporal stores (the destination lines are not loaded into the cache). No store
// fence: the simulator is one thread, and a thread's own loads see its non-temporal stores in
// program order; a fence would only stall later stores until the lines have reached DRAM.
void stream_copy(uint8_t* dst, const uint8_t* src, size_t n) {
#if defined(__SSE2__)
  size_t i = 0;
  while (i < n && (reinterpret_cast<uintptr_t>(dst + i) & 15)) {
    dst[i] = src[i];
    ++i;
  }
  for (; i + 64 <= n; i += 64) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
    __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
    __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 48), d);
  }
  std::memcpy(dst + i, src + i, n - i);
#else
  std::memcpy(dst, src, n);
#endif
}

}  // namespace

uint8_t pattern_byte(uint64_t seed, uint64_t offset) {
  return static_cast<uint8_t>(pattern_word(seed, offset >> 3) >> ((offset & 7) * 8));
}

void pattern_fill(uint8_t* dst, size_t n, uint64_t seed, uint64_t offset) {
  size_t i = 0;
  // Head up to an 8-byte boundary of the offset, then whole words, then the tail.
  while (i < n && ((offset + i) & 7)) {
    dst[i] = pattern_byte(seed, offset + i);
    ++i;
  }
  const uint64_t mixed = mix64(seed);
  for (; i + 8 <= n; i += 8) {
    uint64_t w = pattern_word_mixed(mixed, (offset + i) >> 3);
    std::memcpy(dst + i, &w, 8);  // little-endian host: byte b of the word at offset +b
  }
  for (; i < n; ++i) dst[i] = pattern_byte(seed, offset + i);
}

PagePool::~PagePool() {
  for (Page* slab : slabs_) std::free(slab);
}

PagePool::Page* PagePool::alloc(bool zero) {
  Page* p;
  if (free_) {
    p = free_;
    std::memcpy(&free_, p->bytes, sizeof(Page*));
  } else {
    if (slab_used_ == kSlabPages) {
      slabs_.reserve(slabs_.size() + 1);  // no throw after the slab is allocated
      void* mem = std::aligned_alloc(kSlabBytes, kSlabBytes);
      if (!mem) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
      madvise(mem, kSlabBytes, MADV_HUGEPAGE);  // a hint: failure changes nothing
#endif
      slabs_.push_back(static_cast<Page*>(mem));
      std::memset(mem, 0, sizeof(Page));  // the reference counts
      slab_used_ = 1;
    }
    p = slabs_.back() + slab_used_++;
  }
  if (zero) std::memset(p->bytes, 0, kPageSize);
  word(p) = 1;  // one reference, no CRC
  ++in_use_;
  return p;
}

uint32_t PagePool::crc(const Page* p) {
  uint32_t& w = word(p);
  if (!(w & kCrcValid)) {
    meta(p).crc[index(p)] = crc32_gzip_refl(0, p->bytes, kPageSize);
    w |= kCrcValid;
  }
  return meta(p).crc[index(p)];
}

RN_HOT void PagePool::unref(const uint8_t* page) {
  auto* p = reinterpret_cast<Page*>(const_cast<uint8_t*>(page));
  assert((word(p) & kCount) > 0 && "PagePool::unref of a page nobody refers to");
  if ((--word(p) & kCount) == 0) {
    std::memcpy(p->bytes, &free_, sizeof(Page*));
    free_ = p;
    --in_use_;
  }
}

HostMemory::HostMemory() : pool_(std::make_shared<PagePool>()) {}
HostMemory::HostMemory(std::shared_ptr<PagePool> pool)
    : pool_(pool ? std::move(pool) : std::make_shared<PagePool>()) {}
HostMemory::~HostMemory() { release_pages(); }
HostMemory::HostMemory(HostMemory&& o) noexcept { *this = std::move(o); }
HostMemory& HostMemory::operator=(HostMemory&& o) noexcept {
  if (this != &o) {
    release_pages();
    pool_ = std::move(o.pool_);
    pages_ = std::move(o.pages_);
    last_page_no_ = o.last_page_no_;
    last_page_ = o.last_page_;
    last_mine_ = o.last_mine_;
    cache_ = std::move(o.cache_);
    bytes_read_ = o.bytes_read_;
    bytes_written_ = o.bytes_written_;
    pages_mapped_shared_ = o.pages_mapped_shared_;
    pages_copied_on_write_ = o.pages_copied_on_write_;
    access_seq_ = o.access_seq_;
    // Queued prefetch hints point into pages that moved with the map.
    std::copy(std::begin(o.prefetch_pages_), std::end(o.prefetch_pages_), prefetch_pages_);
    prefetch_count_ = o.prefetch_count_;
    std::copy(std::begin(o.second_half_), std::end(o.second_half_), second_half_);
    second_half_count_ = o.second_half_count_;
    o.prefetch_count_ = o.second_half_count_ = 0;
    o.pages_.clear();
    o.last_page_no_ = ~uint64_t(0);
    o.last_page_ = nullptr;
    o.last_mine_ = false;
    o.cache_.reset(new CacheEntry[kCacheSize]);  // o.pool_ is made again when o next allocates
  }
  return *this;
}

void HostMemory::release_pages() {
  // Pages shared with other memories of the pool go back to it when their last user lets go; with
  // a pool of its own, the pool goes with the memory.
  if (pool_ && pool_.use_count() > 1)
    for (auto& kv : pages_) pool_->unref(kv.second->bytes);
  pages_.clear();
}

void HostMemory::check_range(const char* op, uint64_t addr, size_t len) {
  if (len == 0) return;
  if (addr > ~uint64_t(0) - (static_cast<uint64_t>(len) - 1)) {
    std::ostringstream m;
    m << "hostmem." << op << ": addr 0x" << std::hex << addr << " + len " << std::dec << len
      << " runs past the end of the 64-bit address space";
    throw std::out_of_range(m.str());
  }
}

const HostMemory::Page* HostMemory::find(uint64_t page_no) const {
  if (page_no == last_page_no_) return last_page_;
  CacheEntry& c = cache_[page_no & (kCacheSize - 1)];
  if (c.page_no != page_no) {
    auto it = pages_.find(page_no);
    if (it == pages_.end()) return nullptr;  // not cached: the page may be allocated later
    c.page_no = page_no;
    c.page = it->second;
    c.slot = const_cast<Page**>(&it->second);
    c.last_read = c.last_write = 0;
  }
  last_page_no_ = page_no;
  last_page_ = c.page;
  last_mine_ = false;
  return last_page_;
}

HostMemory::Page* HostMemory::get_or_alloc(uint64_t page_no, bool overwrite) {
  if (page_no == last_page_no_ && last_mine_) return last_page_;
  CacheEntry& c = cache_[page_no & (kCacheSize - 1)];
  if (c.page_no != page_no) {
    auto it = pages_.find(page_no);
    if (it == pages_.end()) {  // a new page: allocated before it enters the map
      if (!pool_) pool_ = std::make_shared<PagePool>();  // moved from
      Page* p = pool_->alloc(!overwrite);
      try {
        it = pages_.emplace(page_no, p).first;
      } catch (...) {
        pool_->unref(p->bytes);
        throw;
      }
    }
    c.page_no = page_no;
    c.page = it->second;
    c.slot = &it->second;
    c.last_read = c.last_write = 0;
  }
  uint32_t& w = PagePool::word(c.page);
  if ((w & PagePool::kCount) > 1)
    c.page = unshare(c.slot, overwrite);
  else
    w &= PagePool::kCount;  // about to be written: its CRC goes
  last_page_no_ = page_no;
  last_page_ = c.page;
  last_mine_ = true;
  return last_page_;
}

HostMemory::Page* HostMemory::unshare(Page** slot, bool overwrite) {
  Page* old = *slot;
  Page* p = pool_->alloc(false);
  if (!overwrite) std::memcpy(p->bytes, old->bytes, kPageSize);
  pool_->unref(old->bytes);
  *slot = p;
  ++pages_copied_on_write_;
  return p;
}

RN_HOT PageRef HostMemory::ref_page(uint64_t page_addr) {
  if (page_addr & kPageMask) return {};
  const Page* p = find(page_addr >> kPageBits);
  if (!p) return {};
  pool_->ref(p);
  last_mine_ = false;  // the page is shared now: the next write checks it
  return {pool_.get(), p->bytes, PagePool::crc(p)};
}

RN_HOT bool HostMemory::map_shared(uint64_t page_addr, const PageRef& ref) {
  if (!ref || !pool_ || ref.owner != pool_.get() || (page_addr & kPageMask)) return false;
  const uint64_t pn = page_addr >> kPageBits;
  auto* np = reinterpret_cast<Page*>(const_cast<uint8_t*>(ref.page));
  CacheEntry& c = cache_[pn & (kCacheSize - 1)];
  if (c.page_no != pn) {
    Page*& slot = pages_[pn];
    c.page_no = pn;
    c.page = slot;
    c.slot = &slot;
    c.last_read = 0;
  }
  if (c.page != np) {
    pool_->ref(np);
    if (c.page) pool_->unref(c.page->bytes);
    *c.slot = np;
    c.page = np;
  }
  if (last_page_no_ == pn) {
    last_page_ = np;
    last_mine_ = false;
  }
  c.last_write = access_seq_++;  // the sender has just read it: in the CPU's cache
  bytes_written_ += kPageSize;
  ++pages_mapped_shared_;
  return true;
}

uint8_t* HostMemory::page_ptr_for_write(uint64_t addr) {
  return get_or_alloc(addr >> kPageBits)->bytes + (addr & kPageMask);
}

const uint8_t* HostMemory::page_ptr_for_read(uint64_t addr) const {
  const Page* p = find(addr >> kPageBits);
  return p ? p->bytes + (addr & kPageMask) : nullptr;
}

void HostMemory::read(uint64_t addr, void* dst, size_t len) const {
  check_range("read", addr, len);
  auto* out = static_cast<uint8_t*>(dst);
  uint64_t remaining = len;
  while (remaining) {
    size_t n = chunk_len(addr, remaining);
    const uint64_t pn = addr >> kPageBits;
    const Page* p = find(pn);
    if (p) {
      std::memcpy(out, p->bytes + (addr & kPageMask), n);
      if (n >= kLargeAccess)
        if (CacheEntry* c = entry_of(pn)) c->last_read = access_seq_++;
    } else {
      std::memset(out, 0, n);
    }
    out += n;
    remaining -= n;
    addr += n;  // wraps to 0 only after the last chunk
  }
  bytes_read_ += len;
}

void HostMemory::write(uint64_t addr, const void* src, size_t len) {
  check_range("write", addr, len);
  const auto* in = static_cast<const uint8_t*>(src);
  uint64_t remaining = len;
  while (remaining) {
    size_t n = chunk_len(addr, remaining);
    const uint64_t pn = addr >> kPageBits;
    uint8_t* d = get_or_alloc(pn, n == kPageSize)->bytes + (addr & kPageMask);
    bool hot = true;
    if (n >= kLargeAccess) {
      if (CacheEntry* c = entry_of(pn)) {
        hot = access_seq_ - c->last_write <= kHotAccesses ||
              access_seq_ - c->last_read <= kHotAccesses;
        c->last_write = access_seq_++;
      }
    }
    if (hot)
      std::memcpy(d, in, n);
    else
      stream_copy(d, in, n);
    in += n;
    remaining -= n;
    addr += n;
  }
  bytes_written_ += len;
}

RN_HOT void HostMemory::prefetch_lines(uint64_t pn) const {
  const Page* p = find(pn);
  const CacheEntry* c = p ? entry_of(pn) : nullptr;
  if (c && access_seq_ - c->last_read > kHotAccesses &&
      access_seq_ - c->last_write > kHotAccesses) {
    prefetch_half(p->bytes);
    if (second_half_count_ < kPrefetchQueue)
      second_half_[second_half_count_++] = p->bytes + kPageSize / 2;
  }
}

void HostMemory::prefetch_half(const uint8_t* from) {
  // Into the level-2 cache, one touch per 64-byte line.
  for (size_t off = 0; off < kPageSize / 2; off += 64) __builtin_prefetch(from + off, 0, 1);
}

RN_HOT void HostMemory::prefetch_for_read(uint64_t addr, size_t len) const {
  // Three stages, one call apart: a page's lookup entry, then the first half of its lines, then
  // the second half (32 lines at a time: a burst of 64 would wait for the CPU's miss buffers).
  for (size_t i = 0; i < second_half_count_; ++i) prefetch_half(second_half_[i]);
  second_half_count_ = 0;
  for (size_t i = 0; i < prefetch_count_; ++i) prefetch_lines(prefetch_pages_[i]);
  prefetch_count_ = 0;
  if (len == 0 || addr > ~uint64_t(0) - (static_cast<uint64_t>(len) - 1)) return;
  for (uint64_t pn = addr >> kPageBits, last = (addr + len - 1) >> kPageBits;; ++pn) {
    if (prefetch_count_ == kPrefetchQueue) break;  // a hint: the rest is read without one
    __builtin_prefetch(&cache_[pn & (kCacheSize - 1)], 0, 3);
    prefetch_pages_[prefetch_count_++] = pn;
    if (pn == last) break;
  }
}

RN_HOT void HostMemory::prefetch_for_write(uint64_t addr, size_t len) const {
  if (len == 0 || addr > ~uint64_t(0) - (static_cast<uint64_t>(len) - 1)) return;
  const uint64_t first = addr >> kPageBits, last = (addr + len - 1) >> kPageBits;
  for (uint64_t pn = first; pn - first < kPrefetchQueue; ++pn) {  // a hint: the first pages
    __builtin_prefetch(&cache_[pn & (kCacheSize - 1)], 1, 3);
    if (pn == last) break;
  }
}

void HostMemory::fill(uint64_t addr, size_t len, uint8_t byte) {
  check_range("fill", addr, len);
  uint64_t remaining = len;
  while (remaining) {
    size_t n = chunk_len(addr, remaining);
    if (byte == 0) {  // zeros into a page never written: nothing to do
      if (find(addr >> kPageBits))
        std::memset(get_or_alloc(addr >> kPageBits, n == kPageSize)->bytes + (addr & kPageMask), 0,
                    n);
    } else {
      std::memset(get_or_alloc(addr >> kPageBits, n == kPageSize)->bytes + (addr & kPageMask), byte,
                  n);
    }
    remaining -= n;
    addr += n;
  }
  bytes_written_ += len;
}

uint64_t HostMemory::discard(uint64_t addr, uint64_t len) {
  if (len == 0 || addr > ~uint64_t(0) - (len - 1)) return 0;
  const uint64_t first = (addr >> kPageBits) + ((addr & kPageMask) ? 1 : 0);  // first whole page
  const uint64_t last_byte = addr + (len - 1);
  // One past the last whole page (the page holding last_byte counts if it ends there).
  const uint64_t end = (last_byte >> kPageBits) + ((last_byte & kPageMask) == kPageMask ? 1 : 0);
  if (first >= end) return 0;
  auto drop = [&](std::unordered_map<uint64_t, Page*>::iterator it) {
    const uint64_t pn = it->first;
    CacheEntry& c = cache_[pn & (kCacheSize - 1)];
    if (c.page_no == pn) c = CacheEntry{};
    if (last_page_no_ == pn) {
      last_page_no_ = ~uint64_t(0);
      last_page_ = nullptr;
      last_mine_ = false;
    }
    pool_->unref(it->second->bytes);
    return pages_.erase(it);
  };
  uint64_t freed = 0;
  if (end - first <= pages_.size()) {
    for (uint64_t pn = first; pn < end; ++pn) {
      auto it = pages_.find(pn);
      if (it == pages_.end()) continue;
      drop(it);
      ++freed;
    }
  } else {  // a range wider than the memory: walk the pages instead
    for (auto it = pages_.begin(); it != pages_.end();) {
      if (it->first >= first && it->first < end) {
        it = drop(it);
        ++freed;
      } else {
        ++it;
      }
    }
  }
  if (freed) prefetch_count_ = second_half_count_ = 0;  // hints may name pages given back
  return freed;
}

void HostMemory::fill_pattern(uint64_t addr, size_t len, uint64_t seed) {
  check_range("fill_pattern", addr, len);
  uint64_t off = 0;
  while (off < len) {
    size_t n = chunk_len(addr + off, len - off);
    const uint64_t a = addr + off;
    pattern_fill(get_or_alloc(a >> kPageBits, n == kPageSize)->bytes + (a & kPageMask), n, seed,
                 off);
    off += n;
  }
  bytes_written_ += len;
}

uint32_t HostMemory::checksum(uint64_t addr, size_t len) const {
  check_range("checksum", addr, len);
  uint32_t crc = 0;
  uint64_t remaining = len;
  while (remaining) {
    size_t n = chunk_len(addr, remaining);
    const Page* p = find(addr >> kPageBits);
    const uint8_t* src = p ? p->bytes + (addr & kPageMask) : kZeroPage;
    crc = crc32_gzip_refl(crc, src, n);
    remaining -= n;
    addr += n;
  }
  return crc;
}

std::vector<HostMemory::PageDigest> HostMemory::page_digests(const std::vector<Range>& skip) const {
  std::vector<uint64_t> page_nos;
  page_nos.reserve(pages_.size());
  for (const auto& kv : pages_) page_nos.push_back(kv.first);
  std::sort(page_nos.begin(), page_nos.end());
  std::vector<PageDigest> out;
  alignas(64) uint8_t buf[kPageSize];
  for (uint64_t no : page_nos) {
    const uint64_t base = no << kPageBits;
    std::memcpy(buf, pages_.at(no)->bytes, kPageSize);
    for (const Range& r : skip) {  // the skipped bytes of this page read as zeros
      if (r.len == 0) continue;
      const uint64_t last = r.addr + (r.len - 1);  // inclusive: a range may end at 2^64
      if (last < base || r.addr > base + kPageMask) continue;
      const uint64_t from = std::max(r.addr, base) - base;
      const uint64_t to = std::min(last, base + kPageMask) - base;
      std::memset(buf + from, 0, to - from + 1);
    }
    if (std::all_of(buf, buf + kPageSize, [](uint8_t b) { return b == 0; })) continue;
    out.push_back(PageDigest{base, crc32_gzip_refl(0, buf, kPageSize)});
  }
  return out;
}

bool HostMemory::equals(uint64_t a, const HostMemory& other, uint64_t b, size_t len,
                        uint64_t* first_diff) const {
  check_range("equals", a, len);
  check_range("equals", b, len);
  uint64_t off = 0;
  while (off < len) {
    size_t n = std::min(chunk_len(a + off, len - off), chunk_len(b + off, len - off));
    const Page* pa = find((a + off) >> kPageBits);
    const Page* pb = other.find((b + off) >> kPageBits);
    const uint8_t* sa = pa ? pa->bytes + ((a + off) & kPageMask) : kZeroPage;
    const uint8_t* sb = pb ? pb->bytes + ((b + off) & kPageMask) : kZeroPage;
    if ((pa || pb) && std::memcmp(sa, sb, n) != 0) {
      size_t i = 0;
      while (sa[i] == sb[i]) ++i;
      if (first_diff) *first_diff = off + i;
      return false;
    }
    off += n;
  }
  return true;
}

std::optional<uint64_t> HostMemory::first_mismatch_with_pattern(uint64_t addr, size_t len,
                                                                uint64_t seed) const {
  check_range("first_mismatch_with_pattern", addr, len);
  uint64_t off = 0;
  while (off < len) {
    size_t n = chunk_len(addr + off, len - off);
    const Page* p = find((addr + off) >> kPageBits);
    const uint8_t* src = p ? p->bytes + ((addr + off) & kPageMask) : kZeroPage;
    size_t i = 0;
    while (i < n && ((off + i) & 7)) {
      if (src[i] != pattern_byte(seed, off + i)) return off + i;
      ++i;
    }
    for (; i + 8 <= n; i += 8) {
      uint64_t w = pattern_word(seed, (off + i) >> 3);
      uint64_t m = 0;
      for (int b = 0; b < 8; ++b) m |= uint64_t(src[i + b]) << (8 * b);
      if (m != w) {
        for (int b = 0; b < 8; ++b)
          if (src[i + b] != static_cast<uint8_t>(w >> (8 * b))) return off + i + b;
      }
    }
    for (; i < n; ++i)
      if (src[i] != pattern_byte(seed, off + i)) return off + i;
    off += n;
  }
  return std::nullopt;
}

}  // namespace rn::hostmem
