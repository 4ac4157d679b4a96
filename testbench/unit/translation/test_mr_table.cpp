// Unit tests of rn::xlate::MrTable (model/translation/mr_table.h): keys and stale keys, PD, access
// and bounds checks, translation split at pages and merged over physically contiguous pages.
// MrTable needs a Sim, which needs an EventQueue (an sc_module): each TEST_CASE runs in its own
// process (catch_discover_tests). No simulation is started: the table is used synchronously.
#include <catch2/catch.hpp>
#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "model/core/event_queue.h"
#include "model/core/sim.h"
#include "model/translation/mr_table.h"

using namespace rn;
using namespace rn::xlate;

namespace {

// Access flags for the tests (the table only tests (access & need) == need).
constexpr uint32_t kLocalWrite = 1, kRemoteWrite = 2, kRemoteRead = 4, kAtomic = 8;
constexpr uint64_t k4K = 4096;

struct Env {
  explicit Env(uint32_t max_mrs = 65536)
      : eq("eq"), sim(eq), mr(sim, "mr", Params{max_mrs, 20 * kNs}) {}
  EventQueue eq;
  Sim sim;
  MrTable mr;
  uint64_t stat(const char* name) {
    return sim.stats.to_json()["mr"][name]["value"].get<uint64_t>();
  }
};

using Segs = std::vector<std::pair<uint64_t, uint32_t>>;
Segs segs(const SegList& l) {
  Segs v;
  for (int i = 0; i < l.n; ++i) v.emplace_back(l.seg[i].addr, l.seg[i].len);
  return v;
}

// `n` pages at bus addresses that are never adjacent: page i at 0x10_0000_0000 + (n-i)*0x10000.
std::vector<uint64_t> scattered(size_t n) {
  std::vector<uint64_t> p;
  for (size_t i = 0; i < n; ++i) p.push_back(0x1000000000ull + (n - i) * 0x10000);
  return p;
}

}  // namespace

TEST_CASE(
    "mr_table: keys are (index << 8) | variant, non-zero and distinct, find returns the region",
    "[mr_table][keys]") {
  Env e;
  std::set<uint32_t> keys, indexes;
  for (uint32_t i = 0; i < 100; ++i) {
    uint32_t k = e.mr.add(i % 3, kRemoteWrite, 0x10000 * i, k4K, 12, {0x800000ull + i * k4K});
    REQUIRE(k != 0);
    CHECK((k >> 8) != 0);  // index 0 is never used
    CHECK((k & 0xFF) != 0);
    keys.insert(k);
    indexes.insert(k >> 8);
  }
  CHECK(keys.size() == 100);
  CHECK(indexes.size() == 100);
  CHECK(e.mr.size() == 100);
  uint32_t k = *keys.begin();
  const Region* r = e.mr.find(k);
  REQUIRE(r != nullptr);
  CHECK(r->valid);
  CHECK(r->key == k);
  CHECK(r->length == k4K);
  CHECK(e.mr.find(0) == nullptr);
  CHECK(e.mr.find(0xFFFFFF01) == nullptr);  // index beyond the table
}

TEST_CASE("mr_table: a removed key stays refused after its index is reused", "[mr_table][keys]") {
  Env e;
  const uint32_t k1 = e.mr.add(1, kRemoteWrite, 0x1000, k4K, 12, {0xA000});
  REQUIRE(k1 != 0);
  CHECK(e.mr.remove(k1));
  CHECK(e.mr.size() == 0);
  CHECK_FALSE(e.mr.remove(k1));  // twice
  CHECK(e.mr.find(k1) == nullptr);
  CHECK(e.mr.translate(k1, 1, 0x1000, 8, 0, nullptr) == Status::kBadKey);

  const uint32_t k2 = e.mr.add(1, kRemoteWrite, 0x1000, k4K, 12, {0xB000});
  REQUIRE(k2 != 0);
  CHECK((k2 >> 8) == (k1 >> 8));  // same index...
  CHECK(k2 != k1);                // ...new variant
  CHECK(e.mr.find(k1) == nullptr);
  CHECK(e.mr.translate(k1, 1, 0x1000, 8, 0, nullptr) == Status::kBadKey);
  CHECK_FALSE(e.mr.remove(k1));  // a stale key cannot remove the new region
  REQUIRE(e.mr.find(k2) != nullptr);
  SegList out;
  CHECK(e.mr.translate(k2, 1, 0x1000, 8, 0, &out) == Status::kOk);
  CHECK(segs(out) == Segs{{0xB000, 8}});

  // Many reuses of one index: every key differs from all the earlier ones (up to 255 of them).
  std::set<uint32_t> seen{k1, k2};
  uint32_t k = k2;
  for (int i = 0; i < 250; ++i) {
    REQUIRE(e.mr.remove(k));
    k = e.mr.add(1, 0, 0, k4K, 12, {0});
    REQUIRE(k != 0);
    CHECK((k >> 8) == (k1 >> 8));
    CHECK(seen.insert(k).second);
  }
  // A forged key: the live index with a variant it never had.
  uint32_t forged = (k & ~0xFFu) | ((k + 1) & 0xFF);
  CHECK(e.mr.translate(forged, 1, 0, 8, 0, nullptr) == Status::kBadKey);
  CHECK(e.mr.translate(0, 1, 0, 8, 0, nullptr) == Status::kBadKey);
  CHECK(e.stat("faults_bad_key") == 4);
}

TEST_CASE("mr_table: checks in order: key, protection domain, access, bounds",
          "[mr_table][checks]") {
  Env e;
  const uint32_t k =
      e.mr.add(7, kRemoteRead | kRemoteWrite, 0x20000, 2 * k4K, 12, {0x1000, 0x5000});
  REQUIRE(k != 0);
  CHECK(e.mr.translate(k, 7, 0x20000, 16, kRemoteWrite, nullptr) == Status::kOk);
  // PD mismatch, even when everything else is fine.
  CHECK(e.mr.translate(k, 8, 0x20000, 16, 0, nullptr) == Status::kPdMismatch);
  CHECK(e.mr.translate(k, 0, 0x20000, 16, 0, nullptr) == Status::kPdMismatch);
  // Access: every needed flag must be granted.
  CHECK(e.mr.translate(k, 7, 0x20000, 16, 0, nullptr) == Status::kOk);
  CHECK(e.mr.translate(k, 7, 0x20000, 16, kRemoteRead, nullptr) == Status::kOk);
  CHECK(e.mr.translate(k, 7, 0x20000, 16, kRemoteRead | kRemoteWrite, nullptr) == Status::kOk);
  CHECK(e.mr.translate(k, 7, 0x20000, 16, kAtomic, nullptr) == Status::kAccess);
  CHECK(e.mr.translate(k, 7, 0x20000, 16, kRemoteWrite | kAtomic, nullptr) == Status::kAccess);
  CHECK(e.mr.translate(k, 7, 0x20000, 16, kLocalWrite, nullptr) == Status::kAccess);
  // Precedence: bad key over PD, PD over access, access over bounds.
  CHECK(e.mr.translate(k + 1, 8, 0, ~0ull, kAtomic, nullptr) == Status::kBadKey);
  CHECK(e.mr.translate(k, 8, 0, ~0ull, kAtomic, nullptr) == Status::kPdMismatch);
  CHECK(e.mr.translate(k, 7, 0, ~0ull, kAtomic, nullptr) == Status::kAccess);
  CHECK(e.mr.translate(k, 7, 0, ~0ull, 0, nullptr) == Status::kBounds);
  // Each refusal is counted by kind.
  CHECK(e.stat("lookups") == 13);
  CHECK(e.stat("faults_bad_key") == 1);
  CHECK(e.stat("faults_pd") == 3);
  CHECK(e.stat("faults_access") == 4);
  CHECK(e.stat("faults_bounds") == 1);
  CHECK(std::string(to_string(Status::kPdMismatch)).find("protection domain") != std::string::npos);
}

TEST_CASE("mr_table: bounds are checked at both ends of the region", "[mr_table][bounds]") {
  Env e;
  const uint64_t iova = 0x10000123, len = 10000;  // not page aligned
  const uint32_t k = e.mr.add(1, 0, iova, len, 12, {0x1000, 0x2000, 0x3000, 0x4000});
  REQUIRE(k != 0);
  auto t = [&](uint64_t va, uint64_t n) { return e.mr.translate(k, 1, va, n, 0, nullptr); };
  CHECK(t(iova, len) == Status::kOk);              // the whole region
  CHECK(t(iova, 1) == Status::kOk);                // first byte
  CHECK(t(iova + len - 1, 1) == Status::kOk);      // last byte
  CHECK(t(iova - 1, 1) == Status::kBounds);        // one byte before
  CHECK(t(iova - 1, 2) == Status::kBounds);        // straddles the start
  CHECK(t(iova + len, 1) == Status::kBounds);      // one byte after
  CHECK(t(iova + len - 1, 2) == Status::kBounds);  // straddles the end
  CHECK(t(iova, len + 1) == Status::kBounds);
  CHECK(t(iova + 1, len) == Status::kBounds);
  CHECK(t(0, 1) == Status::kBounds);
  // va + len wraps around 2^64: must not look like a small range.
  CHECK(t(iova + 16, ~0ull - 8) == Status::kBounds);
  CHECK(t(~0ull - 15, 32) == Status::kBounds);
  CHECK(t(iova + 100, ~0ull) == Status::kBounds);
}

TEST_CASE("mr_table: a region at the top of the 64-bit address space", "[mr_table][bounds]") {
  Env e;
  const uint64_t iova = ~0ull - 2 * k4K + 1;  // the last two pages: ends exactly at 2^64
  const uint32_t k = e.mr.add(1, 0, iova, 2 * k4K, 12, {0x7000, 0x3000});
  REQUIRE(k != 0);
  auto t = [&](uint64_t va, uint64_t n, SegList* out) {
    return e.mr.translate(k, 1, va, n, 0, out);
  };
  CHECK(t(iova, 2 * k4K, nullptr) == Status::kOk);
  CHECK(t(~0ull, 1, nullptr) == Status::kOk);      // the very last byte
  CHECK(t(~0ull, 2, nullptr) == Status::kBounds);  // would wrap to address 0
  CHECK(t(iova + k4K, k4K + 1, nullptr) == Status::kBounds);
  CHECK(t(iova - 1, 1, nullptr) == Status::kBounds);
  SegList out;
  REQUIRE(t(iova + k4K - 2, 4, &out) == Status::kOk);
  CHECK(segs(out) == Segs{{0x7000 + k4K - 2, 2}, {0x3000, 2}});
  out.clear();
  REQUIRE(t(~0ull, 1, &out) == Status::kOk);
  CHECK(segs(out) == Segs{{0x3000 + k4K - 1, 1}});
}

TEST_CASE("mr_table: translation splits at page boundaries over scattered pages",
          "[mr_table][translate]") {
  Env e;
  const uint64_t iova = 0x7f0000010000;
  const uint32_t k = e.mr.add(1, kRemoteWrite, iova, 4 * k4K, 12, {0x5000, 0x1000, 0x9000, 0x3000});
  REQUIRE(k != 0);
  SegList out;
  REQUIRE(e.mr.translate(k, 1, iova + 0x800, 0x2000, kRemoteWrite, &out) == Status::kOk);
  CHECK(segs(out) == Segs{{0x5800, 0x800}, {0x1000, 0x1000}, {0x9000, 0x800}});
  out.clear();
  REQUIRE(e.mr.translate(k, 1, iova, 4 * k4K, 0, &out) == Status::kOk);
  CHECK(segs(out) == Segs{{0x5000, 0x1000}, {0x1000, 0x1000}, {0x9000, 0x1000}, {0x3000, 0x1000}});
  out.clear();
  REQUIRE(e.mr.translate(k, 1, iova + 0x2FFF, 2, 0, &out) == Status::kOk);  // straddles pages 2|3
  CHECK(segs(out) == Segs{{0x9FFF, 1}, {0x3000, 1}});
  out.clear();
  REQUIRE(e.mr.translate(k, 1, iova + 0x3ABC, 0x10, 0, &out) == Status::kOk);  // inside one page
  CHECK(segs(out) == Segs{{0x3ABC, 0x10}});
}

TEST_CASE("mr_table: a region that does not start on a page boundary", "[mr_table][translate]") {
  Env e;
  // iova 0x10100: pages[0] is the bus address of the page holding iova (0x10000..0x10FFF).
  const uint64_t iova = 0x10100;
  const uint32_t k = e.mr.add(1, 0, iova, 0x1000, 12, {0x40000, 0x80000});
  REQUIRE(k != 0);
  SegList out;
  REQUIRE(e.mr.translate(k, 1, iova, 0x1000, 0, &out) == Status::kOk);
  CHECK(segs(out) == Segs{{0x40100, 0xF00}, {0x80000, 0x100}});
}

TEST_CASE("mr_table: physically contiguous pages are merged into one segment",
          "[mr_table][translate]") {
  Env e;
  const uint64_t iova = 0x100000;
  // Pages 0-2 contiguous, 3 elsewhere, 4-5 contiguous with each other, 6 directly *below* 5
  // (adjacent, but in the wrong order: no merge).
  std::vector<uint64_t> pages = {0x20000, 0x21000, 0x22000,      0x90000,
                                 0x50000, 0x51000, 0x50000 - k4K};
  const uint32_t k = e.mr.add(1, 0, iova, pages.size() * k4K, 12, pages);
  REQUIRE(k != 0);
  SegList out;
  REQUIRE(e.mr.translate(k, 1, iova + 0x10, pages.size() * k4K - 0x20, 0, &out) == Status::kOk);
  CHECK(segs(out) == Segs{{0x20010, 3 * 0x1000 - 0x10},
                          {0x90000, 0x1000},
                          {0x50000, 0x2000},
                          {0x50000 - k4K, 0x1000 - 0x10}});
  // A fully contiguous region is one segment, however many pages it spans.
  std::vector<uint64_t> flat;
  for (int i = 0; i < 64; ++i) flat.push_back(0x4000000 + i * k4K);
  const uint32_t k2 = e.mr.add(1, 0, 0x200000, 64 * k4K, 12, flat);
  out.clear();
  REQUIRE(e.mr.translate(k2, 1, 0x200000 + 5, 64 * k4K - 5, 0, &out) == Status::kOk);
  CHECK(segs(out) == Segs{{0x4000005, 64 * 0x1000 - 5}});
}

TEST_CASE("mr_table: large pages (2 MiB) split and merge the same way", "[mr_table][translate]") {
  Env e;
  const uint64_t page = 1ull << 21;
  const uint32_t k = e.mr.add(1, 0, 0x40000000, 3 * page, 21,
                              {0x100000000ull, 0x100000000ull + page, 0x300000000ull});
  REQUIRE(k != 0);
  SegList out;
  REQUIRE(e.mr.translate(k, 1, 0x40000000 + 0x1000, 3 * page - 0x2000, 0, &out) == Status::kOk);
  CHECK(segs(out) == Segs{{0x100001000ull, static_cast<uint32_t>(2 * page - 0x1000)},
                          {0x300000000ull, static_cast<uint32_t>(page - 0x1000)}});
}

TEST_CASE("mr_table: a merged segment never exceeds 2^32-1 bytes", "[mr_table][translate]") {
  Env e;
  const uint64_t page = 1ull << 21;
  const size_t n = 2049;  // 4 GiB + 2 MiB, all contiguous
  std::vector<uint64_t> pages;
  for (size_t i = 0; i < n; ++i) pages.push_back(0x1000000000ull + i * page);
  const uint32_t k = e.mr.add(1, 0, 0, n * page, 21, pages);
  REQUIRE(k != 0);
  SegList out;
  REQUIRE(e.mr.translate(k, 1, 0, n * page, 0, &out) == Status::kOk);
  uint64_t total = 0;
  uint64_t next = 0x1000000000ull;
  for (const auto& [addr, len] : segs(out)) {
    CHECK(addr == next);  // still in order and gap-free
    next = addr + len;
    total += len;
  }
  CHECK(total == n * page);
  CHECK(out.n >= 2);
}

TEST_CASE("mr_table: translate appends to a non-empty segment list", "[mr_table][translate]") {
  Env e;
  const uint32_t k = e.mr.add(1, 0, 0, 2 * k4K, 12, {0x8000, 0x2000});
  SegList out;
  REQUIRE(e.mr.translate(k, 1, 0x1000, 0x100, 0, &out) == Status::kOk);
  REQUIRE(e.mr.translate(k, 1, 0x0, 0x100, 0, &out) == Status::kOk);
  CHECK(segs(out) == Segs{{0x2000, 0x100}, {0x8000, 0x100}});
}

TEST_CASE("mr_table: zero-length accesses inside the region succeed with no segment",
          "[mr_table][bounds]") {
  Env e;
  const uint64_t iova = 0x3000;
  const uint32_t k = e.mr.add(1, 0, iova, k4K, 12, {0x9000});
  SegList out;
  CHECK(e.mr.translate(k, 1, iova, 0, 0, &out) == Status::kOk);
  CHECK(e.mr.translate(k, 1, iova + 100, 0, 0, &out) == Status::kOk);
  CHECK(e.mr.translate(k, 1, iova + k4K, 0, 0, &out) == Status::kOk);  // at the end
  CHECK(out.n == 0);
  CHECK(e.mr.translate(k, 1, iova + k4K + 1, 0, 0, &out) == Status::kBounds);
  CHECK(e.mr.translate(k, 1, iova - 1, 0, 0, &out) == Status::kBounds);
  CHECK(e.mr.translate(k, 1, iova, 0, 0, nullptr) == Status::kOk);
  // Zero-length checks still check the key, PD and access.
  CHECK(e.mr.translate(k, 2, iova, 0, 0, &out) == Status::kPdMismatch);
  CHECK(e.mr.translate(k, 1, iova, 0, kRemoteWrite, &out) == Status::kAccess);
  CHECK(e.mr.translate(k ^ 1, 1, iova, 0, 0, &out) == Status::kBadKey);
  // A zero-length region.
  const uint32_t z = e.mr.add(1, 0, 0x5000, 0, 12, {});
  REQUIRE(z != 0);
  CHECK(e.mr.translate(z, 1, 0x5000, 0, 0, &out) == Status::kOk);
  CHECK(e.mr.translate(z, 1, 0x5000, 1, 0, &out) == Status::kBounds);
  CHECK(out.n == 0);
}

TEST_CASE("mr_table: out == nullptr only checks, even across more pages than a SegList holds",
          "[mr_table][translate]") {
  Env e;
  const size_t n = SegList::kMax + 24;
  const uint32_t k = e.mr.add(1, 0, 0, n * k4K, 12, scattered(n));
  CHECK(e.mr.translate(k, 1, 0, n * k4K, 0, nullptr) == Status::kOk);
  CHECK(e.mr.translate(k, 1, 0, n * k4K + 1, 0, nullptr) == Status::kBounds);
  SegList out;
  CHECK(e.mr.translate(k, 1, 0, n * k4K, 0, &out) == Status::kTooManySegments);
}

TEST_CASE("mr_table: SegList::kMax scattered pages fit one SegList, one more does not",
          "[mr_table][translate]") {
  Env e;
  const uint64_t m = SegList::kMax;
  const uint32_t k = e.mr.add(1, 0, 0, (m + 1) * k4K, 12, scattered(m + 1));
  SegList out;
  REQUIRE(e.mr.translate(k, 1, 0, m * k4K, 0, &out) == Status::kOk);
  CHECK(out.n == SegList::kMax);
  out.clear();
  CHECK(e.mr.translate(k, 1, 0, (m + 1) * k4K, 0, &out) == Status::kTooManySegments);
  out.clear();
  CHECK(e.mr.translate(k, 1, 100, m * k4K, 0, &out) == Status::kTooManySegments);  // touches m+1
  CHECK(e.stat("faults_segments") == 2);
  CHECK(e.stat("faults_bounds") == 0);
}

// translate() merges a page into the last segment before it checks whether the list is full: a
// range whose last page is physically contiguous with the one before needs no extra segment.
TEST_CASE(
    "mr_table: a page contiguous with the last of a full SegList merges instead of overflowing",
    "[mr_table][translate]") {
  Env e;
  const size_t n = SegList::kMax;
  std::vector<uint64_t> pages = scattered(n);
  pages.push_back(pages.back() + k4K);  // page n follows page n-1 physically
  const uint32_t k = e.mr.add(1, 0, 0, (n + 1) * k4K, 12, pages);
  SegList out;
  CHECK(e.mr.translate(k, 1, 0, (n + 1) * k4K, 0, &out) == Status::kOk);
  CHECK(out.n == SegList::kMax);
  CHECK(out.seg[SegList::kMax - 1].len == 2 * k4K);
  CHECK(e.stat("faults_segments") == 0);
}

TEST_CASE("mr_table: a full table returns key 0 until a region is removed", "[mr_table][keys]") {
  Env e(3);
  CHECK(e.mr.max_regions() == 3);
  uint32_t a = e.mr.add(1, 0, 0, k4K, 12, {0});
  uint32_t b = e.mr.add(1, 0, 0, k4K, 12, {0});
  uint32_t c = e.mr.add(1, 0, 0, k4K, 12, {0});
  REQUIRE(a != 0);
  REQUIRE(b != 0);
  REQUIRE(c != 0);
  CHECK(e.mr.size() == 3);
  CHECK(e.mr.add(1, 0, 0, k4K, 12, {0}) == 0);
  CHECK(e.mr.size() == 3);
  REQUIRE(e.mr.remove(b));
  uint32_t d = e.mr.add(2, 0, 0, k4K, 12, {0});
  CHECK(d != 0);
  CHECK(d != b);
  CHECK(e.mr.add(1, 0, 0, k4K, 12, {0}) == 0);
  // The existing regions are untouched by the refused adds.
  CHECK(e.mr.find(a) != nullptr);
  CHECK(e.mr.find(c) != nullptr);
  CHECK(e.mr.find(d) != nullptr);
}

TEST_CASE("mr_table: count_in_pd counts the live regions of a protection domain",
          "[mr_table][pd]") {
  Env e;
  std::vector<uint32_t> pd1, pd2;
  for (int i = 0; i < 5; ++i) pd1.push_back(e.mr.add(1, 0, 0, k4K, 12, {0}));
  for (int i = 0; i < 3; ++i) pd2.push_back(e.mr.add(2, 0, 0, k4K, 12, {0}));
  CHECK(e.mr.count_in_pd(1) == 5);
  CHECK(e.mr.count_in_pd(2) == 3);
  CHECK(e.mr.count_in_pd(0) == 0);  // index 0 (never used) does not count for PD 0
  CHECK(e.mr.count_in_pd(99) == 0);
  REQUIRE(e.mr.remove(pd1[1]));
  REQUIRE(e.mr.remove(pd1[3]));
  CHECK(e.mr.count_in_pd(1) == 3);
  CHECK(e.mr.count_in_pd(2) == 3);
  e.mr.add(2, 0, 0, k4K, 12, {0});  // reuses a freed index, in another PD
  CHECK(e.mr.count_in_pd(1) == 3);
  CHECK(e.mr.count_in_pd(2) == 4);
  CHECK(e.mr.size() == 7);
}

TEST_CASE("mr_table: the stats group is registered and removed with the table",
          "[mr_table][stats]") {
  EventQueue eq("eq");
  Sim sim(eq);
  {
    MrTable mr(sim, "host0.nic.mr", Params{});
    mr.add(1, 0, 0, k4K, 12, {0});
    mr.add(1, 0, 0, k4K, 12, {0});
    nlohmann::json j = sim.stats.to_json();
    REQUIRE(j.contains("host0.nic.mr"));
    CHECK(j["host0.nic.mr"]["regions"]["value"].get<double>() == 2);
    CHECK(mr.latency() == 20 * kNs);
  }
  CHECK_FALSE(sim.stats.to_json().contains("host0.nic.mr"));
}
