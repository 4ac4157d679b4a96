#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "bridge/host_memory/host_memory.h"

using rn::hostmem::HostMemory;
using rn::hostmem::kPageSize;
using rn::hostmem::pattern_byte;

namespace {
// Reference CRC-32 (reflected IEEE), bit at a time.
uint32_t ref_crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}
}  // namespace

TEST_CASE("unwritten memory reads zero and allocates nothing", "[hostmem]") {
  HostMemory m;
  std::vector<uint8_t> buf(10000, 0xaa);
  m.read(0x123456789abcULL, buf.data(), buf.size());
  for (auto b : buf) REQUIRE(b == 0);
  REQUIRE(m.pages_allocated() == 0);
  REQUIRE(m.bytes_read() == 10000);
  REQUIRE(m.page_ptr_for_read(0x1000) == nullptr);
  m.fill(0x5000, 3 * kPageSize, 0);  // zero fill of untouched pages allocates nothing
  REQUIRE(m.pages_allocated() == 0);
  REQUIRE(m.checksum(0, 0) == 0);
}

TEST_CASE("write then read back, sparse high addresses", "[hostmem]") {
  HostMemory m;
  const uint64_t top = ~uint64_t(0) - 4095;  // 2^64 - 4096: the last page
  std::vector<uint8_t> data(4096);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + 3);
  m.write(top, data.data(), data.size());
  m.write(0, data.data(), 16);
  m.write(uint64_t(1) << 63, data.data(), 16);
  REQUIRE(m.pages_allocated() == 3);
  std::vector<uint8_t> back(4096);
  m.read(top, back.data(), back.size());
  REQUIRE(back == data);
  uint8_t last = 0;
  m.read(~uint64_t(0), &last, 1);  // the very last byte of the address space
  REQUIRE(last == data.back());
  REQUIRE(m.bytes_written() == 4096 + 32);
}

TEST_CASE("accesses spanning pages", "[hostmem]") {
  HostMemory m;
  std::vector<uint8_t> data(3 * kPageSize + 100);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i ^ (i >> 8));
  const uint64_t a = 0x7fff0000ULL + kPageSize - 50;  // starts 50 bytes before a boundary
  m.write(a, data.data(), data.size());
  REQUIRE(m.pages_allocated() == 5);
  std::vector<uint8_t> back(data.size());
  m.read(a, back.data(), back.size());
  REQUIRE(back == data);
  // Partial read across one boundary, including unwritten bytes before the start.
  std::vector<uint8_t> part(200);
  m.read(a - 100, part.data(), part.size());
  for (int i = 0; i < 100; ++i) REQUIRE(part[i] == 0);
  for (int i = 100; i < 200; ++i) REQUIRE(part[i] == data[i - 100]);
  // Zero-copy pointer covers the rest of the page.
  REQUIRE(HostMemory::span_in_page(a) == 50);
  uint8_t* p = m.page_ptr_for_write(a);
  REQUIRE(std::memcmp(p, data.data(), 50) == 0);
  REQUIRE(m.page_ptr_for_read(a) == p);
}

TEST_CASE("large writes, cold pages (non-temporal stores) and hot ones, store the same bytes",
          "[hostmem]") {
  // The first large write into a page goes around the CPU cache, a rewrite soon after through
  // it: the bytes must be the same either way, at any alignment of source and destination.
  HostMemory m;
  std::vector<uint8_t> src(3 * kPageSize + 64);
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 7 + round * 13);
    for (uint64_t off : {uint64_t(0), uint64_t(1), uint64_t(15), uint64_t(2048 - 3)}) {
      const uint64_t a = 0x100000 * (off + 1) + off;
      const size_t len = 2 * kPageSize + 33;
      m.write(a, src.data() + (off & 7), len);  // source misaligned too
      std::vector<uint8_t> back(len + 2);
      m.read(a - 1, back.data(), back.size());
      INFO("round " << round << ", offset " << off);
      REQUIRE(std::memcmp(back.data() + 1, src.data() + (off & 7), len) == 0);
      REQUIRE(back.front() == 0);
      REQUIRE(back.back() == 0);
    }
  }
}

TEST_CASE("prefetch hints change nothing and allocate nothing", "[hostmem]") {
  HostMemory m;
  std::vector<uint8_t> data(2 * kPageSize);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 31);
  m.write(0x10000, data.data(), data.size());
  const uint64_t pages = m.pages_allocated(), rd = m.bytes_read(), wr = m.bytes_written();
  // Written pages, never-written pages, a range running to the end of the address space, a range
  // that would wrap it, and more pages than the prefetch queue holds.
  m.prefetch_for_read(0x10000, data.size());
  m.prefetch_for_read(0x900000, 3 * kPageSize);
  m.prefetch_for_read(~uint64_t(0) - 100, 101);
  m.prefetch_for_read(~uint64_t(0) - 100, 200);
  m.prefetch_for_read(0, 64 * kPageSize);
  m.prefetch_for_read(0, 0);  // runs the queued line prefetches
  m.prefetch_for_write(0x20000, 5 * kPageSize);
  m.prefetch_for_write(~uint64_t(0) - 10, 11);
  m.prefetch_for_write(~uint64_t(0) - 10, 50);
  CHECK(m.pages_allocated() == pages);
  CHECK(m.bytes_read() == rd);
  CHECK(m.bytes_written() == wr);
  std::vector<uint8_t> back(data.size());
  m.read(0x10000, back.data(), back.size());
  CHECK(back == data);
  std::vector<uint8_t> zeros(kPageSize, 1);
  m.read(0x900000, zeros.data(), zeros.size());
  CHECK(std::all_of(zeros.begin(), zeros.end(), [](uint8_t b) { return b == 0; }));
}

TEST_CASE("fill and pattern", "[hostmem]") {
  HostMemory m;
  m.fill(100, 5000, 0x5a);
  std::vector<uint8_t> b(5002);
  m.read(99, b.data(), b.size());
  REQUIRE(b.front() == 0);
  REQUIRE(b.back() == 0);
  for (size_t i = 1; i <= 5000; ++i) REQUIRE(b[i] == 0x5a);

  const uint64_t seed = 42;
  const uint64_t a = 0x10000 + 3;  // unaligned start, crosses pages
  m.fill_pattern(a, 9000, seed);
  std::vector<uint8_t> p(9000);
  m.read(a, p.data(), p.size());
  for (size_t i = 0; i < p.size(); ++i) REQUIRE(p[i] == pattern_byte(seed, i));
  REQUIRE_FALSE(m.first_mismatch_with_pattern(a, 9000, seed).has_value());
  REQUIRE(m.first_mismatch_with_pattern(a, 9000, seed + 1).value() < 8);
  // The pattern is a function of the offset, not the address.
  m.fill_pattern(0xabc000000ULL + 5, 9000, seed);
  REQUIRE(m.equals(a, m, 0xabc000000ULL + 5, 9000, nullptr));
  // Corrupt one byte and find it.
  uint8_t x = static_cast<uint8_t>(pattern_byte(seed, 4321) ^ 1);
  m.write(a + 4321, &x, 1);
  REQUIRE(m.first_mismatch_with_pattern(a, 9000, seed).value() == 4321);
  REQUIRE(m.first_mismatch_with_pattern(a, 4321, seed) == std::nullopt);
  // Different seeds give different data.
  int same = 0;
  for (uint64_t i = 0; i < 1000; ++i) same += pattern_byte(1, i) == pattern_byte(2, i);
  REQUIRE(same < 20);
}

TEST_CASE("checksum is the reflected CRC-32 across pages and holes", "[hostmem]") {
  HostMemory m;
  const uint64_t a = 3 * kPageSize - 777;
  m.fill_pattern(a, 5000, 7);
  // Include a never-written hole after the data.
  std::vector<uint8_t> ref(5000 + 3000, 0);
  for (size_t i = 0; i < 5000; ++i) ref[i] = pattern_byte(7, i);
  REQUIRE(m.checksum(a, ref.size()) == ref_crc32(ref.data(), ref.size()));
  const uint8_t check[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
  m.write(0x900000, check, sizeof(check));
  REQUIRE(m.checksum(0x900000, sizeof(check)) == 0xcbf43926u);  // the CRC-32 check value
}

TEST_CASE("equals reports the first differing offset", "[hostmem]") {
  HostMemory m1, m2;
  m1.fill_pattern(0x1000 - 10, 10000, 9);
  m2.fill_pattern(0x555000 + 1, 10000, 9);
  uint64_t diff = 12345;
  REQUIRE(m1.equals(0x1000 - 10, m2, 0x555000 + 1, 10000, &diff));
  REQUIRE(diff == 12345);  // untouched on success
  uint8_t z = static_cast<uint8_t>(pattern_byte(9, 7777) + 1);
  m2.write(0x555000 + 1 + 7777, &z, 1);
  REQUIRE_FALSE(m1.equals(0x1000 - 10, m2, 0x555000 + 1, 10000, &diff));
  REQUIRE(diff == 7777);
  // Unwritten regions on both sides are equal; written vs unwritten compares to zeros.
  REQUIRE(m1.equals(0x40000000, m2, 0x80000000, 100000, nullptr));
  REQUIRE_FALSE(m1.equals(0x1000 - 10, m2, 0x90000000, 100, &diff));
  uint64_t expect = 0;
  while (pattern_byte(9, expect) == 0) ++expect;
  REQUIRE(diff == expect);
  REQUIRE(m1.pages_allocated() == 4);
  REQUIRE(m2.pages_allocated() == 3);
}

TEST_CASE("accesses past 2^64 throw out_of_range naming addr and len", "[hostmem]") {
  HostMemory m;
  uint8_t buf[16] = {};
  const uint64_t top = ~uint64_t(0);
  REQUIRE_NOTHROW(m.write(top - 15, buf, 16));  // ends exactly at 2^64
  REQUIRE_NOTHROW(m.read(top, buf, 1));
  REQUIRE_NOTHROW(m.read(top, buf, 0));
  REQUIRE_THROWS_AS(m.write(top - 14, buf, 16), std::out_of_range);
  REQUIRE_THROWS_AS(m.read(top, buf, 2), std::out_of_range);
  REQUIRE_THROWS_AS(m.fill(top, 2, 1), std::out_of_range);
  REQUIRE_THROWS_AS(m.fill_pattern(top - 100, 200, 1), std::out_of_range);
  REQUIRE_THROWS_AS(m.checksum(2, ~size_t(0)), std::out_of_range);
  try {
    m.read(0xfffffffffffffff0ULL, buf, 17);
    FAIL("no throw");
  } catch (const std::out_of_range& e) {
    std::string msg = e.what();
    INFO(msg);
    REQUIRE(msg.find("fffffffffffffff0") != std::string::npos);
    REQUIRE(msg.find("17") != std::string::npos);
  }
  REQUIRE(m.pages_allocated() == 1);
}

TEST_CASE("shared pages: each memory sees its own writes only, references keep their bytes",
          "[hostmem][sharing]") {
  auto pool = std::make_shared<rn::hostmem::PagePool>();
  HostMemory a(pool), b(pool);
  const uint64_t pa = 0x10000, pb = 0x7000;
  a.fill_pattern(pa, kPageSize, 1);
  rn::PageRef r = a.ref_page(pa);
  REQUIRE(r);
  REQUIRE(b.map_shared(pb, r));
  CHECK(b.first_mismatch_with_pattern(pb, kPageSize, 1) == std::nullopt);
  CHECK(b.pages_mapped_shared() == 1);
  CHECK(b.bytes_written() == kPageSize);
  CHECK(pool->pages_in_use() == 1);  // one page, mapped twice and referenced once
  // a writes one byte: a gets a copy; b and the reference keep the old bytes.
  uint8_t x = static_cast<uint8_t>(pattern_byte(1, 100) ^ 0xFF);
  a.write(pa + 100, &x, 1);
  CHECK(a.pages_copied_on_write() == 1);
  CHECK(a.first_mismatch_with_pattern(pa, kPageSize, 1) == std::optional<uint64_t>(100));
  CHECK(b.first_mismatch_with_pattern(pb, kPageSize, 1) == std::nullopt);
  for (size_t i = 0; i < kPageSize; ++i) REQUIRE(r.page[i] == pattern_byte(1, i));
  CHECK(pool->pages_in_use() == 2);
  // b overwrites all of it: a new page without a copy; the reference still holds the old bytes.
  b.fill(pb, kPageSize, 0x33);
  CHECK(b.pages_copied_on_write() == 1);
  for (size_t i = 0; i < kPageSize; ++i) REQUIRE(r.page[i] == pattern_byte(1, i));
  CHECK(pool->pages_in_use() == 3);
  r.release();  // nobody maps the original page any more: back to the pool
  CHECK(pool->pages_in_use() == 2);
  CHECK(!r);
  // Zeros into a shared page copy it too (fill with 0 must not touch the other side).
  rn::PageRef r2 = b.ref_page(pb);
  REQUIRE(a.map_shared(pa + kPageSize, r2));
  r2.release();
  a.fill(pa + kPageSize + 10, 20, 0);
  uint8_t v[2];
  b.read(pb + 10, v, 1);
  a.read(pa + kPageSize + 10, v + 1, 1);
  CHECK(v[0] == 0x33);
  CHECK(v[1] == 0);
}

TEST_CASE("a page reference carries the CRC of the bytes it holds, also after rewrites",
          "[hostmem][sharing]") {
  HostMemory m;
  std::vector<uint8_t> page(kPageSize);
  for (size_t i = 0; i < kPageSize; ++i) page[i] = static_cast<uint8_t>(i * 7);
  m.write(0x3000, page.data(), page.size());
  for (int round = 0; round < 3; ++round) {
    rn::PageRef r = m.ref_page(0x3000);
    REQUIRE(r);
    CHECK(r.crc == ref_crc32(page.data(), kPageSize));
    rn::PageRef again = m.ref_page(0x3000);  // the CRC known: same answer
    CHECK(again.crc == r.crc);
    again.release();
    r.release();
    // Unshared again: written in place, and the next reference has the new CRC.
    page[100 + round] ^= 0x5A;
    m.write(0x3000 + 100 + round, &page[100 + round], 1);
    page[4000] = static_cast<uint8_t>(round);
    m.write(0x3000 + 4000, &page[4000], 1);  // a second write to the page: its fast path
  }
  CHECK(m.pages_copied_on_write() == 0);
  rn::PageRef last = m.ref_page(0x3000);
  CHECK(last.crc == ref_crc32(page.data(), kPageSize));
  last.release();
}

TEST_CASE("a write right after sharing its page, with no other access between, still copies",
          "[hostmem][sharing]") {
  // The last page written is cached as unshared; sharing it (a reference taken, or another page
  // mapped over it) must make the next write to it check again.
  auto pool = std::make_shared<rn::hostmem::PagePool>();
  HostMemory a(pool), b(pool);
  uint8_t one = 1, two = 2, three = 3, v = 0;
  a.write(0x1000, &one, 1);
  rn::PageRef r = a.ref_page(0x1000);  // a's last page, now shared with r
  a.write(0x1000, &two, 1);            // copy-on-write: r keeps 1
  CHECK(r.page[0] == 1);
  b.write(0x5000, &three, 1);        // b's last page: 0x5000
  REQUIRE(b.map_shared(0x5000, r));  // another page mapped over b's last page
  b.read(0x5000, &v, 1);
  CHECK(v == 1);
  b.write(0x5000, &three, 1);  // must copy: r and the mapping share the page
  CHECK(r.page[0] == 1);
  b.read(0x5000, &v, 1);
  CHECK(v == 3);
  a.read(0x1000, &v, 1);
  CHECK(v == 2);
  CHECK(a.pages_copied_on_write() == 1);
  CHECK(b.pages_copied_on_write() == 1);
  r.release();
}

TEST_CASE("map_shared refuses what it cannot share, and changes nothing then",
          "[hostmem][sharing]") {
  auto pool = std::make_shared<rn::hostmem::PagePool>();
  HostMemory a(pool), b(pool), other;  // `other` has a pool of its own
  a.fill(0x1000, kPageSize, 0x11);
  b.fill(0x2000, kPageSize, 0x22);
  CHECK(!a.ref_page(0x1001));  // not page-aligned
  CHECK(!a.ref_page(0x5000));  // never written
  rn::PageRef r = a.ref_page(0x1000);
  CHECK(!b.map_shared(0x2001, r));      // destination not aligned
  CHECK(!other.map_shared(0x2000, r));  // another pool
  CHECK(!b.map_shared(0x2000, rn::PageRef{}));
  uint8_t v = 0;
  b.read(0x2000, &v, 1);
  CHECK(v == 0x22);
  CHECK(other.pages_allocated() == 0);
  CHECK(b.pages_mapped_shared() == 0);
  r.release();
}

TEST_CASE("random writes, fills, shares and references against a flat model",
          "[hostmem][sharing]") {
  // Two memories of one pool and a reference model of each (plain byte arrays over 16 pages).
  // Random operations; after each, every byte of both memories and of every held reference
  // must equal the model.
  constexpr size_t kPages = 16;
  auto pool = std::make_shared<rn::hostmem::PagePool>();
  std::vector<HostMemory> mem;
  mem.emplace_back(pool);
  mem.emplace_back(pool);
  std::vector<std::vector<uint8_t>> model(2, std::vector<uint8_t>(kPages * kPageSize, 0));
  struct Held {
    rn::PageRef ref;
    std::vector<uint8_t> bytes;
  };
  std::vector<Held> held;
  uint64_t s = 12345;
  auto rnd = [&](uint64_t n) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (s >> 33) % n;
  };
  for (int step = 0; step < 3000; ++step) {
    const int m = static_cast<int>(rnd(2));
    switch (rnd(6)) {
      case 0: {  // write a random range (may span pages, may be a whole page)
        size_t len = rnd(3) == 0 ? kPageSize : 1 + rnd(6000);
        uint64_t addr = rnd(kPages * kPageSize - len + 1);
        if (rnd(3) == 0) addr &= ~(kPageSize - 1);  // page-aligned (still inside)
        std::vector<uint8_t> src(len);
        for (auto& c : src) c = static_cast<uint8_t>(rnd(256));
        mem[m].write(addr, src.data(), len);
        std::copy(src.begin(), src.end(), model[m].begin() + static_cast<long>(addr));
        break;
      }
      case 1: {  // fill with a byte (0 included)
        size_t len = 1 + rnd(9000);
        uint64_t addr = rnd(kPages * kPageSize - len + 1);
        uint8_t byte = static_cast<uint8_t>(rnd(2) ? 0 : rnd(256));
        mem[m].fill(addr, len, byte);
        std::fill_n(model[m].begin() + static_cast<long>(addr), len, byte);
        break;
      }
      case 2:
      case 3: {  // a reference from one memory, mapped into either (maybe the same one)
        uint64_t from = rnd(kPages) * kPageSize, to = rnd(kPages) * kPageSize;
        const int dst = static_cast<int>(rnd(2));
        rn::PageRef r = mem[m].ref_page(from);
        if (!r) break;  // never written
        REQUIRE(r.crc == ref_crc32(model[m].data() + from, kPageSize));
        REQUIRE(mem[dst].map_shared(to, r));
        std::copy_n(model[m].begin() + static_cast<long>(from), kPageSize,
                    model[dst].begin() + static_cast<long>(to));
        if (rnd(2)) {
          held.push_back({r, std::vector<uint8_t>(model[m].begin() + static_cast<long>(from),
                                                  model[m].begin() + static_cast<long>(from) +
                                                      static_cast<long>(kPageSize))});
        } else {
          r.release();
        }
        break;
      }
      case 4:  // let a held reference go
        if (!held.empty()) {
          size_t k = rnd(held.size());
          held[k].ref.release();
          held.erase(held.begin() + static_cast<long>(k));
        }
        break;
      case 5: {  // pattern fill of a whole page
        uint64_t addr = rnd(kPages) * kPageSize;
        uint64_t seed = rnd(1000);
        mem[m].fill_pattern(addr, kPageSize, seed);
        for (size_t i = 0; i < kPageSize; ++i) model[m][addr + i] = pattern_byte(seed, i);
        break;
      }
    }
    // Checked at random steps, one page at a time in random order: the memories' last-page
    // caches carry over from one operation to the next, as in a run.
    if (rnd(4) == 0) {
      for (int k = 0; k < 2; ++k) {
        uint64_t first = rnd(kPages);
        for (uint64_t i = 0; i < kPages; ++i) {
          uint64_t pg = (first + i * 7) % kPages;  // 7 is prime to 16: every page once
          std::vector<uint8_t> got(kPageSize);
          mem[k].read(pg * kPageSize, got.data(), kPageSize);
          INFO("step " << step << " memory " << k << " page " << pg);
          REQUIRE(std::equal(got.begin(), got.end(), model[k].begin() + long(pg * kPageSize)));
        }
      }
    }
    for (const auto& h : held) {
      REQUIRE(std::equal(h.bytes.begin(), h.bytes.end(), h.ref.page));
      REQUIRE(h.ref.crc == ref_crc32(h.bytes.data(), kPageSize));
    }
  }
  std::vector<uint8_t> got(kPages * kPageSize);
  for (int k = 0; k < 2; ++k) {
    mem[k].read(0, got.data(), got.size());
    REQUIRE(got == model[k]);
  }
  for (auto& h : held) h.ref.release();
  // Every page in use is mapped by one of the memories: none is lost, none kept for nothing.
  CHECK(pool->pages_in_use() <= mem[0].pages_allocated() + mem[1].pages_allocated());
  mem.clear();
  CHECK(pool->pages_in_use() == 0);
}

TEST_CASE("discard gives back whole pages only and leaves shared pages to their other users",
          "[hostmem][discard]") {
  auto pool = std::make_shared<rn::hostmem::PagePool>();
  HostMemory a(pool), b(pool);
  const uint64_t base = 0x40000;
  a.fill_pattern(base, 4 * kPageSize, 9);  // pages 0..3
  REQUIRE(a.pages_allocated() == 4);
  // [base + 100, base + 3 pages + 100): only pages 1 and 2 lie wholly inside.
  CHECK(a.discard(base + 100, 3 * kPageSize) == 2);
  CHECK(a.pages_allocated() == 2);
  CHECK(pool->pages_in_use() == 2);
  CHECK(a.first_mismatch_with_pattern(base, 100, 9) == std::nullopt);
  uint8_t z[2 * kPageSize];
  a.read(base + kPageSize, z, sizeof z);  // zeros again, and reading allocates nothing
  CHECK(std::all_of(z, z + sizeof z, [](uint8_t x) { return x == 0; }));
  a.read(base + 3 * kPageSize, z, kPageSize);  // page 3 kept
  bool kept = true;
  for (size_t i = 0; i < kPageSize; ++i) kept &= z[i] == pattern_byte(9, 3 * kPageSize + i);
  CHECK(kept);
  // A page given back can be written again (the last-page cache must not keep the old one).
  a.fill(base + kPageSize + 5, 3, 0x77);
  a.read(base + kPageSize + 4, z, 5);
  CHECK((z[0] == 0 && z[1] == 0x77 && z[3] == 0x77 && z[4] == 0));
  CHECK(pool->pages_in_use() == 3);
  // A page shared with b: a's discard drops a's mapping, b keeps its bytes.
  rn::PageRef r = a.ref_page(base);
  REQUIRE(b.map_shared(0x9000, r));
  r.release();
  CHECK(a.discard(base, kPageSize) == 1);
  CHECK(b.first_mismatch_with_pattern(0x9000, kPageSize, 9) == std::nullopt);
  CHECK(pool->pages_in_use() == 3);  // b's page, a's page 1, a's page 3
  // Empty and partial ranges give nothing back; a range wider than the memory walks its pages.
  CHECK(a.discard(base + 3 * kPageSize + 1, kPageSize - 1) == 0);
  CHECK(a.discard(base, 0) == 0);
  CHECK(a.discard(0, ~uint64_t(0)) == 2);
  CHECK(a.pages_allocated() == 0);
  CHECK(pool->pages_in_use() == 1);
}

TEST_CASE("page_digests sees every change outside the skipped ranges, and only those",
          "[hostmem]") {
  using D = std::vector<HostMemory::PageDigest>;
  HostMemory m;
  REQUIRE(m.page_digests().empty());
  m.fill_pattern(0x10000, 3 * kPageSize, 5);  // three pages
  m.fill(0x40000, kPageSize, 0);              // zeros allocate nothing ...
  std::vector<uint8_t> z(kPageSize, 0);
  m.write(0x50000, z.data(), z.size());  // ... and an allocated page of zeros is not listed
  const D all = m.page_digests();
  REQUIRE(all.size() == 3);
  REQUIRE(all[0].addr == 0x10000);
  REQUIRE(all[2].addr == 0x12000);
  REQUIRE(all[1].crc == m.checksum(0x11000, kPageSize));

  // Skipped bytes count as zeros: a page wholly skipped disappears, a partly skipped one changes.
  const std::vector<HostMemory::Range> skip{{0x11000, kPageSize}, {0x12010, 16}};
  const D some = m.page_digests(skip);
  REQUIRE(some.size() == 2);
  REQUIRE(some[0] == all[0]);
  REQUIRE(some[1].addr == 0x12000);
  REQUIRE(some[1].crc != all[2].crc);

  // A change inside a skipped range is not seen; one byte outside is, in its own page only.
  const uint8_t x = 0x5A;
  m.write(0x11800, &x, 1);
  m.write(0x12015, &x, 1);
  REQUIRE(m.page_digests(skip) == some);
  REQUIRE(m.page_digests() != all);
  m.write(0x12020, &x, 1);
  const D after = m.page_digests(skip);
  REQUIRE(after.size() == 2);
  REQUIRE(after[0] == some[0]);
  REQUIRE(after[1].crc != some[1].crc);

  // A byte written into memory never written before shows as a new page.
  m.write(0x7000, &x, 1);
  const D more = m.page_digests(skip);
  REQUIRE(more.size() == 3);
  REQUIRE(more[0].addr == 0x7000);
  // A range reaching the top of memory is handled (no overflow).
  m.write(~uint64_t(0), &x, 1);
  REQUIRE(m.page_digests(skip).size() == 4);
  REQUIRE(m.page_digests({{~uint64_t(0) - 15, 16}, {0x7000, 1}}).size() == 3);
}
