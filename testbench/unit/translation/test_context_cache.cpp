// Unit tests of rn::TagArray (model/core/tag_array.h) and rn::xlate::ContextCache
// (model/translation/context_cache.h): LRU in a set, range drops; the MPT and MTT caches' misses
// as 64-byte DMA reads of the right addresses, kPending until they land, the wakers, the hit that
// follows, invalidation of a fill in flight, a failed read, and the miss registers. The DMA port
// is a fake whose reads land when the test says (no simulation runs).
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "model/core/event_queue.h"
#include "model/core/sim.h"
#include "model/core/tag_array.h"
#include "model/translation/context_cache.h"

using namespace rn;
using namespace rn::xlate;

namespace {

// A DMA port whose reads wait until the test lands them.
class FakeDma final : public pcie::DmaPort {
 public:
  struct Read {
    uint64_t addr;
    uint32_t len;
    Callback done;
  };
  std::vector<Read> reads;
  void dma_read(const pcie::SgEntry* sg, int n, uint8_t*, Tick, Callback done, PageRef*) override {
    REQUIRE(n == 1);
    reads.push_back({sg[0].addr, sg[0].len, std::move(done)});
  }
  void dma_write(const pcie::SgEntry*, int, const uint8_t*, Tick, Callback) override {}
  Tick dma_write_borrowed(const pcie::SgEntry*, int, const uint8_t*, Tick, Callback,
                          const PageRef*) override {
    return 0;
  }
  void msi(uint64_t, uint32_t, Tick) override {}
  bool read_failed() const override { return failing_; }
  Tick writes_done() const override { return 0; }
  // Lands read i (its done runs now), failed or not.
  void land(size_t i, bool fail = false) {
    failing_ = fail;
    Callback cb = std::move(reads[i].done);
    reads.erase(reads.begin() + static_cast<long>(i));
    cb();
    failing_ = false;
  }

 private:
  bool failing_ = false;
};

constexpr uint64_t kIcm = 0x10000000;  // context memory (MAP_ICM)
constexpr uint64_t kMtt = 0x20000040;  // a page list, its first entry in the middle of no line
constexpr uint32_t kLocalWrite = 1;

struct Env {
  explicit Env(CacheParams p = CacheParams{})
      : eq("eq"),
        sim(eq),
        mr(sim, "mr", Params{64, 20 * kNs}),
        cache(sim, "cache", with_enabled(p), mr, dma) {
    cache.set_mpt_base(kIcm);
    cache.add_waker([this] { ++wakes; });
  }
  static CacheParams with_enabled(CacheParams p) {
    p.enabled = true;
    return p;
  }
  // A region of `pages` 4 KiB pages at iova 0x1000000 whose page list lies at `mtt`.
  uint32_t add(uint64_t mtt, uint32_t pages = 64) {
    std::vector<uint64_t> pl;
    for (uint32_t i = 0; i < pages; ++i) pl.push_back(0x40000000 + uint64_t(i) * 8192);
    return mr.add(1, kLocalWrite, 0x1000000, uint64_t(pages) * 4096, 12, pl, mtt);
  }
  Status ask(uint32_t key, uint64_t va, uint64_t len) {
    segs.clear();
    Tick ready = 0;
    return cache.lookup(key, 1, va, len, 0, &segs, &ready);
  }
  uint64_t stat(const char* name) {
    return sim.stats.to_json()["cache"][name]["value"].get<uint64_t>();
  }
  EventQueue eq;
  Sim sim;
  MrTable mr;
  FakeDma dma;
  ContextCache cache;
  SegList segs;
  int wakes = 0;
};

}  // namespace

TEST_CASE("tag array: LRU replacement within a set, and drops by tag range", "[cache]") {
  TagArray t;
  t.reset(2, 2);  // one set of 2 ways
  bool ev = false;
  t.insert(0, &ev);
  t.insert(1, &ev);
  CHECK_FALSE(ev);
  REQUIRE(t.find(0));  // 0 is now the most recently used: 1 goes next
  t.insert(2, &ev);
  CHECK(ev);
  CHECK(t.find(0));
  CHECK_FALSE(t.find(1));
  CHECK(t.find(2));
  CHECK(t.drop(0, 2) == 1);  // 0
  CHECK_FALSE(t.find(0));
  CHECK(t.find(2));
  // Many sets: aligned tags (page lists at 4 KiB boundaries: every 64th line) spread over them.
  t.reset(1024, 4);
  for (uint64_t i = 0; i < 512; ++i) t.insert(i * 64, &ev);
  uint32_t held = 0;
  for (uint64_t i = 0; i < 512; ++i) held += t.find(i * 64) != nullptr;
  CHECK(held > 400);  // with the tag's low bits as the index, 4 sets: 16 lines
  CHECK(t.drop(0, 64 * 512) == held);
  CHECK(check_tag_array("a", 12, "b", 3).empty());  // 4 sets
  CHECK(check_tag_array("a", 12, "b", 4) ==
        "b: 4 does not divide a = 12 into a power-of-two number of sets");
  CHECK(check_tag_array("a", 0, "b", 1) == "a: 0 is not in 1..65536");
}

TEST_CASE("context cache: a cold key reads its MPT entry, then its MTT line, then hits",
          "[cache]") {
  Env e;
  const uint32_t key = e.add(kMtt);
  REQUIRE(key != 0);
  // The MPT entry of index key >> 8: one 64-byte read at its place in the context memory.
  CHECK(e.ask(key, 0x1000000, 100) == Status::kPending);
  REQUIRE(e.dma.reads.size() == 1);
  CHECK(e.dma.reads[0].addr == kIcm + 64 * (key >> 8));
  CHECK(e.dma.reads[0].len == 64);
  CHECK(e.ask(key, 0x1000000, 100) == Status::kPending);  // the same miss: no second read
  CHECK(e.dma.reads.size() == 1);
  e.dma.land(0);
  CHECK(e.wakes == 1);
  // Then the line of the page list holding page 0's entry (kMtt lies 64 bytes into its line).
  CHECK(e.ask(key, 0x1000000, 100) == Status::kPending);
  REQUIRE(e.dma.reads.size() == 1);
  CHECK(e.dma.reads[0].addr == kMtt);
  e.dma.land(0);
  CHECK(e.wakes == 2);
  REQUIRE(e.ask(key, 0x1000000, 100) == Status::kOk);
  REQUIRE(e.segs.n == 1);
  CHECK(e.segs.seg[0].addr == 0x40000000);
  // Pages 0..7 share the line: no read; page 8 needs the next line.
  CHECK(e.ask(key, 0x1000000 + 7 * 4096, 8) == Status::kOk);
  CHECK(e.ask(key, 0x1000000 + 8 * 4096, 8) == Status::kPending);
  REQUIRE(e.dma.reads.size() == 1);
  CHECK(e.dma.reads[0].addr == kMtt + 64);
  e.dma.land(0);
  CHECK(e.ask(key, 0x1000000 + 8 * 4096, 8) == Status::kOk);
  CHECK(e.stat("mpt_misses") == 1);
  CHECK(e.stat("mtt_misses") == 2);
  // The first ask after each fill is the miss's own, not a hit: the MPT entry's is the ask that
  // missed page 0's line; the four asks after it hit.
  CHECK(e.stat("mpt_hits") == 4);
  CHECK(e.stat("mtt_hits") == 1);
  CHECK(e.stat("read_bytes") == 3 * 64);
}

TEST_CASE("context cache: an access across two MTT lines reads both at once", "[cache]") {
  Env e;
  const uint32_t key = e.add(kMtt);
  CHECK(e.ask(key, 0x1000000, 1) == Status::kPending);
  e.dma.land(0);
  // Pages 7 and 8: entries in two lines.
  CHECK(e.ask(key, 0x1000000 + 7 * 4096 + 4000, 200) == Status::kPending);
  REQUIRE(e.dma.reads.size() == 2);
  e.dma.land(0);
  CHECK(e.ask(key, 0x1000000 + 7 * 4096 + 4000, 200) == Status::kPending);
  e.dma.land(0);
  REQUIRE(e.ask(key, 0x1000000 + 7 * 4096 + 4000, 200) == Status::kOk);
  CHECK(e.segs.n == 2);
}

TEST_CASE("context cache: keys that fail their checks never read page lists", "[cache]") {
  Env e;
  const uint32_t key = e.add(kMtt);
  CHECK(e.ask(key, 0x1000000, 1) == Status::kPending);
  e.dma.land(0);
  // Out of bounds, wrong PD: the table answers after the MPT entry alone.
  CHECK(e.ask(key, 0x1000000 + 64 * 4096, 1) == Status::kBounds);
  Tick ready = 0;
  CHECK(e.cache.lookup(key, 2, 0x1000000, 1, 0, &e.segs, &ready) == Status::kPdMismatch);
  CHECK(e.dma.reads.empty());
  // A stale variant of a cached index: the entry is on chip, the key fails.
  CHECK(e.ask(key + 1, 0x1000000, 1) == Status::kBadKey);
  // An index beyond the table: no read at all.
  CHECK(e.ask(200u << 8, 0, 1) == Status::kBadKey);
  CHECK(e.dma.reads.empty());
}

TEST_CASE("context cache: invalidation drops lines and a fill in flight is not kept", "[cache]") {
  Env e;
  const uint32_t key = e.add(kMtt);
  CHECK(e.ask(key, 0x1000000, 1) == Status::kPending);
  e.cache.invalidate(key, e.mr.find(key));  // e.g. DESTROY_MR while the entry is read
  e.dma.land(0);
  CHECK(e.wakes == 1);
  CHECK(e.ask(key, 0x1000000, 1) == Status::kPending);  // not kept: read again
  REQUIRE(e.dma.reads.size() == 1);
  e.dma.land(0);
  CHECK(e.ask(key, 0x1000000, 1) == Status::kPending);  // the MTT line
  e.dma.land(0);
  CHECK(e.ask(key, 0x1000000, 1) == Status::kOk);
  e.cache.invalidate(key, e.mr.find(key));
  CHECK(e.ask(key, 0x1000000, 1) == Status::kPending);
  e.dma.land(0);
  CHECK(e.ask(key, 0x1000000, 1) == Status::kPending);  // its MTT line went too
  CHECK(e.stat("invalidations") == 2);
}

TEST_CASE("context cache: a failed read fails the access as a bad key", "[cache]") {
  Env e;
  const uint32_t key = e.add(kMtt);
  CHECK(e.ask(key, 0x1000000, 1) == Status::kPending);
  e.dma.land(0, /*fail=*/true);
  CHECK(e.ask(key, 0x1000000, 1) == Status::kBadKey);
  CHECK(e.stat("read_faults") == 1);
  CHECK(e.dma.reads.empty());  // the failed entry stays on chip: no read storm
}

TEST_CASE("context cache: misses beyond the miss registers wait for a fill to land", "[cache]") {
  CacheParams p;
  p.misses = 2;
  Env e(p);
  std::vector<uint32_t> keys;
  for (int i = 0; i < 3; ++i) keys.push_back(e.add(kMtt + uint64_t(i) * 4096));
  for (uint32_t k : keys) CHECK(e.ask(k, 0x1000000, 1) == Status::kPending);
  CHECK(e.dma.reads.size() == 2);
  CHECK(e.stat("waits_miss_registers") == 1);
  e.dma.land(0);
  CHECK(e.ask(keys[2], 0x1000000, 1) == Status::kPending);  // a register is free: its read goes
  CHECK(e.dma.reads.size() == 2);
}

TEST_CASE("context cache: an MPT cache smaller than the keys in use evicts (LRU)", "[cache]") {
  CacheParams p;
  p.mpt_entries = 2;
  p.mpt_ways = 2;
  Env e(p);
  std::vector<uint32_t> keys;
  for (int i = 0; i < 3; ++i) keys.push_back(e.add(kMtt + uint64_t(i) * 4096));
  auto warm = [&](uint32_t k) {
    while (e.ask(k, 0x1000000, 1) == Status::kPending) e.dma.land(0);
  };
  warm(keys[0]);
  warm(keys[1]);
  CHECK(e.stat("evictions") == 0);
  warm(keys[2]);  // evicts keys[0]'s entry (least recently used)
  CHECK(e.stat("evictions") >= 1);
  CHECK(e.ask(keys[1], 0x1000000, 1) == Status::kOk);
  CHECK(e.ask(keys[0], 0x1000000, 1) == Status::kPending);
}

TEST_CASE("context cache: parameters are checked, naming the key", "[cache]") {
  CacheParams p;
  CHECK(p.validate().empty());
  p.mtt_entries = 12;
  CHECK(p.validate() == "nic.cache.mtt_entries: 12 is not a multiple of 8 (a line holds 8)");
  p = CacheParams{};
  p.mpt_ways = 3;
  CHECK(p.validate().rfind("nic.cache.mpt_ways: 3 does not divide", 0) == 0);
  p = CacheParams{};
  p.misses = 0;
  CHECK(p.validate() == "nic.cache.misses: 0 is not in 1..256");
}
