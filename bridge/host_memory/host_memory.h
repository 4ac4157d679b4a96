// Sparse, byte-exact model of the host's 64-bit physical memory.
//
// Pages of 4 KiB are allocated on first write; reads of memory never written
// return zeros without allocating. Pure C++ (no SystemC), no timing: latency and
// bandwidth belong to the PCIe bridge (bridge/pcie).
//
// Not thread-safe: const readers update a last-page cache and counters.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "bridge/host_memory/memory.h"
#include "model/core/page_ref.h"

namespace rn::hostmem {

constexpr uint64_t kPageBits = 12;
constexpr uint64_t kPageSize = uint64_t(1) << kPageBits;  // 4096
constexpr uint64_t kPageMask = kPageSize - 1;

// Deterministic pseudo-random byte number `offset` of the pattern `seed`
// (what fill_pattern(addr, len, seed) stores at addr + offset).
uint8_t pattern_byte(uint64_t seed, uint64_t offset);
// dst[i] = pattern_byte(seed, offset + i) for i < n, eight bytes at a time.
void pattern_fill(uint8_t* dst, size_t n, uint64_t seed, uint64_t offset);

class HostMemory;

// Where pages come from. Memories built on one pool may share pages (map_shared below); each page
// counts its references (the memories that map it, and the frames whose payload is a copy of it)
// and is written only when it has one.
class PagePool final : public PageOwner {
 public:
  PagePool() = default;
  PagePool(const PagePool&) = delete;
  PagePool& operator=(const PagePool&) = delete;
  ~PagePool();
  void unref(const uint8_t* page) override;
  uint64_t pages_in_use() const { return in_use_; }

 private:
  friend class HostMemory;
  struct alignas(64) Page {
    uint8_t bytes[kPageSize];
  };
  // A slab is 2 MiB, 2 MiB-aligned: page 0 holds the metadata of pages 1 to 511 (found from a
  // page's address by masking it), the rest are handed out. A page's word: its reference count,
  // and in bit 31 whether crc holds the CRC-32 of its bytes (cleared whenever a memory may
  // write the page: when one finds it unshared, or allocates it).
  static constexpr size_t kSlabPages = 512;
  static constexpr size_t kSlabBytes = kSlabPages * sizeof(Page);
  static constexpr uint32_t kCrcValid = 1u << 31, kCount = kCrcValid - 1;
  struct SlabMeta {
    uint32_t word[kSlabPages];
    uint32_t crc[kSlabPages];
  };
  static_assert(sizeof(SlabMeta) <= sizeof(Page));
  static SlabMeta& meta(const Page* p) {
    return *reinterpret_cast<SlabMeta*>(reinterpret_cast<uintptr_t>(p) &
                                        ~(uintptr_t(kSlabBytes) - 1));
  }
  static size_t index(const Page* p) {
    return (reinterpret_cast<uintptr_t>(p) & (kSlabBytes - 1)) / sizeof(Page);
  }
  static uint32_t& word(const Page* p) { return meta(p).word[index(p)]; }
  // The CRC-32 of the page's bytes (crc32_gzip_refl(0, page, 4096)), computed once while no
  // memory may write the page.
  static uint32_t crc(const Page* p);
  Page* alloc(bool zero);  // one reference
  void ref(const Page* p) {
    assert((word(p) & kCount) < kCount && "PagePool: reference count overflow");
    ++word(p);
  }
  std::vector<Page*> slabs_;
  size_t slab_used_ = kSlabPages;
  // Pages nobody refers to: a list threaded through their first bytes (unref never allocates).
  Page* free_ = nullptr;
  uint64_t in_use_ = 0;
};

class HostMemory final : public Memory {
 public:
  // A memory of its own pool, or one that may share pages with other memories of `pool`.
  HostMemory();
  explicit HostMemory(std::shared_ptr<PagePool> pool);
  ~HostMemory() override;
  HostMemory(const HostMemory&) = delete;
  HostMemory& operator=(const HostMemory&) = delete;
  HostMemory(HostMemory&&) noexcept;
  HostMemory& operator=(HostMemory&&) noexcept;

  // Every access of len > 0 bytes must satisfy addr + len <= 2^64, else
  // std::out_of_range naming addr and len. len == 0 is a no-op.
  void read(uint64_t addr, void* dst, size_t len) const;
  void write(uint64_t addr, const void* src, size_t len);
  // Memory: the same as read and write (all of the address space is memory here).
  void dma_read(uint64_t addr, void* dst, size_t len) override { read(addr, dst, len); }
  void dma_write(uint64_t addr, const void* src, size_t len) override { write(addr, src, len); }
  // fill with byte 0 does not allocate pages that are not allocated yet.
  void fill(uint64_t addr, size_t len, uint8_t byte);
  // Byte addr + i becomes pattern_byte(seed, i).
  void fill_pattern(uint64_t addr, size_t len, uint64_t seed);

  // Gives back the pages lying wholly inside [addr, addr + len): they read as zeros again, and a
  // page shared with another memory or a frame stays with them. Partial pages at either end are
  // kept. Returns the number of pages given back.
  uint64_t discard(uint64_t addr, uint64_t len);

  // CRC-32 (reflected IEEE, same as zlib crc32(0, ...)) of [addr, addr + len).
  uint32_t checksum(uint64_t addr, size_t len) const;
  // For tests that check what an access may have changed: the CRC-32 of each page that holds a
  // byte other than zero outside the ranges `skip` (whose bytes count as zeros there), by page
  // address, in address order. Two digests are equal exactly when memory outside `skip` reads
  // the same (up to CRC collisions), whether or not a page of zeros was allocated between them.
  // Walks every allocated page: not for a hot path.
  struct Range {
    uint64_t addr, len;
  };
  struct PageDigest {
    uint64_t addr;
    uint32_t crc;
    bool operator==(const PageDigest& o) const { return addr == o.addr && crc == o.crc; }
  };
  std::vector<PageDigest> page_digests(const std::vector<Range>& skip = {}) const;
  // Compares [a, a + len) of this memory with [b, b + len) of `other` (which may
  // be *this). On mismatch returns false and, if first_diff is not null, stores
  // the OFFSET (from a and b) of the first differing byte.
  bool equals(uint64_t a, const HostMemory& other, uint64_t b, size_t len,
              uint64_t* first_diff = nullptr) const;
  // Offset (from addr) of the first byte that differs from pattern(seed), or nullopt.
  std::optional<uint64_t> first_mismatch_with_pattern(uint64_t addr, size_t len,
                                                      uint64_t seed) const;

  // Page sharing (simulator speed: the bytes read are the same as with copies).
  // A reference to the page that starts at page_addr, whose bytes then stay as they are now, with
  // their CRC-32 (computed once per page while no memory writes it); an empty one if page_addr
  // is not page-aligned or its page was never written.
  PageRef ref_page(uint64_t page_addr);
  // Makes the page at page_addr (aligned) the page `ref` refers to, as if its 4096 bytes had been
  // written there; later writes to either copy it first. False (nothing done) if `ref` is empty,
  // of another pool, or page_addr is not aligned: the caller then writes the bytes.
  bool map_shared(uint64_t page_addr, const PageRef& ref);

  // Zero-copy helpers. page_ptr_for_write returns a pointer to the byte at addr,
  // allocating its page; it is valid for span_in_page(addr) bytes, until the next
  // call of a non-const member or of ref_page (which may share the page). Writes
  // through it are not counted.
  uint8_t* page_ptr_for_write(uint64_t addr);
  // Pointer to the byte at addr, or nullptr if its page was never written (zeros); valid until the
  // next non-const call.
  const uint8_t* page_ptr_for_read(uint64_t addr) const;
  static constexpr size_t span_in_page(uint64_t addr) {
    return static_cast<size_t>(kPageSize - (addr & kPageMask));
  }

  // Hints, no effect on contents or counters (a DMA is issued well before its data moves; with
  // many QPs the buffers are far larger than the simulator's CPU cache).
  // [addr, addr + len) will be read by read() soon: starts loading the lookup entries of its
  // pages now, and, at the next two calls, the lines of those pages not read recently (by then
  // their entries are cached: no wait for them).
  void prefetch_for_read(uint64_t addr, size_t len) const;
  // [addr, addr + len) will be written by write() soon: starts loading its pages' lookup entries.
  void prefetch_for_write(uint64_t addr, size_t len) const;
  // ref_page(page_addr) will be called soon: starts loading the page's lookup entry (its bytes
  // are not read when their CRC is known).
  void prefetch_for_ref(uint64_t page_addr) const {
    __builtin_prefetch(&cache_[(page_addr >> kPageBits) & (kCacheSize - 1)], 0, 3);
  }

  // Statistics.
  uint64_t pages_allocated() const { return pages_.size(); }
  uint64_t bytes_read() const { return bytes_read_; }        // by read()
  uint64_t bytes_written() const { return bytes_written_; }  // by write/fill/fill_pattern/map
  uint64_t pages_mapped_shared() const { return pages_mapped_shared_; }  // by map_shared
  // Writes that found their page shared and took a page of their own (a copy of it, unless the
  // write covers all of it).
  uint64_t pages_copied_on_write() const { return pages_copied_on_write_; }
  void reset_counters() {
    bytes_read_ = 0;
    bytes_written_ = 0;
    pages_mapped_shared_ = 0;
    pages_copied_on_write_ = 0;
  }

 private:
  using Page = PagePool::Page;
  static_assert(sizeof(Page) == kPageSize);
  const Page* find(uint64_t page_no) const;
  // The page to write at page_no: allocated if new, copied first if shared (not copied if
  // `overwrite`: the caller writes all of it).
  Page* get_or_alloc(uint64_t page_no, bool overwrite = false);
  Page* unshare(Page** slot, bool overwrite);
  void release_pages();
  static void check_range(const char* op, uint64_t addr, size_t len);

  std::shared_ptr<PagePool> pool_;
  std::unordered_map<uint64_t, Page*> pages_;
  // Last-page cache: the common case is many accesses to the same page. last_mine_: the page was
  // found unshared when cached, and has not been referenced since (a write needs no check).
  mutable uint64_t last_page_no_ = ~uint64_t(0);
  mutable Page* last_page_ = nullptr;
  mutable bool last_mine_ = false;
  // A direct-mapped cache of recent page lookups in front of the hash map (many QPs touch many
  // pages in turn).
  static constexpr size_t kCacheSize = 65536;
  struct CacheEntry {
    uint64_t page_no = ~uint64_t(0);
    Page* page = nullptr;
    Page** slot = nullptr;  // the page's value in pages_ (node-based: stays put)
    // access_seq_ at the last large read and write of the page (mod 2^32; 0 with the entry new).
    uint32_t last_read = 0, last_write = 0;
  };
  mutable std::unique_ptr<CacheEntry[]> cache_{new CacheEntry[kCacheSize]};
  // Large accesses (most of a page: a packet's payload) are counted. A page read or written among
  // the last kHotAccesses of them is assumed to be in the simulator's CPU cache; others are
  // not. A large write into a cold page uses non-temporal stores: loading each destination line
  // before overwriting it would double the memory traffic. prefetch_for_read() skips hot pages.
  // Speed only: the bytes stored and read are the same either way.
  static constexpr size_t kLargeAccess = 2048;
  static constexpr uint32_t kHotAccesses = 2048;  // 8 MiB of pages
  mutable uint32_t access_seq_ = kHotAccesses + 1;
  // Pages whose lookup entries prefetch_for_read() has started loading; the first half of their
  // lines is prefetched at its next call, the second half at the call after.
  static constexpr size_t kPrefetchQueue = 8;
  mutable uint64_t prefetch_pages_[kPrefetchQueue] = {};
  mutable size_t prefetch_count_ = 0;
  mutable const uint8_t* second_half_[kPrefetchQueue] = {};  // lines prefetched at the next call
  mutable size_t second_half_count_ = 0;
  static void prefetch_half(const uint8_t* from);
  void prefetch_lines(uint64_t page_no) const;
  // The lookup entry of a page just found or allocated (for the marks above).
  CacheEntry* entry_of(uint64_t page_no) const {
    CacheEntry& c = cache_[page_no & (kCacheSize - 1)];
    return c.page_no == page_no ? &c : nullptr;
  }
  mutable uint64_t bytes_read_ = 0;
  uint64_t bytes_written_ = 0;
  uint64_t pages_mapped_shared_ = 0;
  uint64_t pages_copied_on_write_ = 0;
};

}  // namespace rn::hostmem
