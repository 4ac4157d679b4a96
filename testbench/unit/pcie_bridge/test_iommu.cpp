// pcie::Iommu (bridge/pcie/iommu.h) and the bridge with it: IOVA mappings of three page sizes,
// the IOTLB (set-associative, LRU), page walks of `levels` dependent reads (fewer for huge pages)
// on a few walkers, unmaps that drop cached translations, ATS, and DMA that lands where the
// mapping says when it lands: an unmapped IOVA faults (a read returns all ones, a write is
// dropped) and not one byte of memory changes. Each TEST_CASE elaborates SystemC: one per process.
#include <catch2/catch.hpp>
#include <cstring>
#include <systemc>
#include <vector>

#include "bridge/host_memory/host_memory.h"
#include "bridge/pcie/iommu.h"
#include "bridge/pcie/pcie_bridge.h"
#include "model/core/event_queue.h"
#include "model/core/sim.h"

using namespace rn;

namespace {

constexpr uint64_t kIova = 0x800000000000ull;
constexpr uint64_t k4K = 4096, k2M = 2ull << 20, k1G = 1ull << 30;

pcie::IommuParams params(uint32_t entries = 64, uint32_t ways = 4, uint32_t walkers = 4) {
  pcie::IommuParams p;
  p.enabled = true;
  p.iotlb_entries = entries;
  p.iotlb_ways = ways;
  p.walkers = walkers;
  p.levels = 4;
  p.walk_read_latency = 50 * kNs;
  return p;
}

uint64_t stat(Sim& sim, const char* name) {
  return sim.stats.to_json()["mmu"][name]["value"].get<uint64_t>();
}

struct Env {
  EventQueue eq{"eq"};
  Sim sim{eq};
  hostmem::HostMemory mem;
  pcie::Iommu mmu;
  pcie::Bridge bridge;
  explicit Env(const pcie::IommuParams& p = params())
      : mmu{sim, "mmu", p}, bridge{sim, "pcie", pcie::BridgeParams{}, mem} {
    bridge.attach_iommu(&mmu);
  }
};

}  // namespace

TEST_CASE("iommu: the TLB replaces the least recently used entry of a set", "[iommu]") {
  pcie::Tlb t;
  t.reset(4, 2);  // 2 sets of 2 ways: pages 0, 2, 4 (4 KiB) share set 0
  t.insert(0 * k4K, 0, 0);
  t.insert(2 * k4K, 0, 0);
  REQUIRE(t.find(0 * k4K, 1) != nullptr);  // page 0 used last: page 2 is the LRU one
  t.insert(4 * k4K, 0, 0);
  CHECK(t.find(0 * k4K, 1) != nullptr);
  CHECK(t.find(2 * k4K, 1) == nullptr);
  CHECK(t.find(4 * k4K, 1) != nullptr);
  t.insert(1 * k4K, 0, 0);  // set 1: evicts nothing of set 0
  CHECK(t.find(0 * k4K, 1) != nullptr);
  // A 2 MiB entry covers every 4 KiB inside it, and is found only when asked for that size.
  t.insert(k2M, 1, 0);
  CHECK(t.find(k2M + 123 * k4K, 2) != nullptr);
  CHECK(t.find(k2M + 123 * k4K, 1) == nullptr);
  CHECK(t.invalidate(k2M + k4K, k2M + 2 * k4K) == 1);  // overlaps the 2 MiB page: dropped
  CHECK(t.find(k2M, 2) == nullptr);
}

TEST_CASE("iommu: mappings of 4 KiB, 2 MiB and 1 GiB pages, overlaps and misalignment refused",
          "[iommu]") {
  EventQueue eq{"eq"};
  Sim sim{eq};
  pcie::Iommu m(sim, "mmu", params());
  CHECK(m.map(kIova, 0x5000, 2 * k4K, 0));
  CHECK(m.map(kIova + k2M, 0x40000000, k2M, 1));
  CHECK(m.map(kIova + k1G, 0x80000000, k1G, 2));
  CHECK_FALSE(m.map(kIova + k4K, 0x9000, k4K, 0));          // mapped already
  CHECK_FALSE(m.map(kIova + k2M + k4K, 0x9000, k4K, 0));    // inside the 2 MiB page
  CHECK_FALSE(m.map(kIova + 3 * k2M + 8, 0x9000, k4K, 0));  // misaligned IOVA
  CHECK_FALSE(m.map(kIova + 4 * k2M, 0x1000, k2M, 1));      // misaligned physical address
  uint64_t pa = 0, span = 0;
  REQUIRE(m.lookup(kIova + k4K + 17, &pa, &span));
  CHECK(pa == 0x6000 + 17);
  CHECK(span == k4K - 17);
  REQUIRE(m.lookup(kIova + k2M + 0x12345, &pa, &span));
  CHECK(pa == 0x40000000 + 0x12345);
  CHECK(span == k2M - 0x12345);
  REQUIRE(m.lookup(kIova + k1G + k1G - 1, &pa, &span));
  CHECK(pa == 0x80000000 + k1G - 1);
  CHECK(span == 1);
  CHECK_FALSE(m.lookup(kIova + 2 * k4K, &pa, &span));
  // An unmap removes the pages lying wholly inside its range only.
  const uint64_t g = m.generation();
  CHECK(m.unmap(kIova + k2M, k2M - 1) == 0);
  CHECK(m.generation() == g);
  CHECK(m.unmap(kIova, k4K) == k4K);
  CHECK(m.generation() == g + 1);
  CHECK_FALSE(m.lookup(kIova, &pa, &span));
  CHECK(m.lookup(kIova + k4K, &pa, &span));
  CHECK(m.unmap(kIova + k2M, k2M) == k2M);
  CHECK_FALSE(m.lookup(kIova + k2M, &pa, &span));
}

TEST_CASE("iommu: a miss walks one read per level, fewer for huge pages, a hit costs nothing",
          "[iommu]") {
  EventQueue eq{"eq"};
  Sim sim{eq};
  pcie::Iommu m(sim, "mmu", params());
  REQUIRE(m.map(kIova, 0x5000, k4K, 0));
  REQUIRE(m.map(kIova + k2M, 0x40000000, k2M, 1));
  REQUIRE(m.map(kIova + k1G, 0x80000000, k1G, 2));
  const Tick w = 50 * kNs;
  CHECK(m.ready(kIova + 8, 1000) == 1000 + 4 * w);
  CHECK(m.ready(kIova + 16, 1000 + 10) == 1000 + 4 * w);  // the walk under way: its end
  CHECK(m.ready(kIova + 16, 1 * kUs) == 1 * kUs);         // cached: no delay
  CHECK(m.ready(kIova + k2M + 5, 2 * kUs) == 2 * kUs + 3 * w);
  CHECK(m.ready(kIova + k1G + 5, 3 * kUs) == 3 * kUs + 2 * w);
  // An IOVA nothing maps walks to the bottom and is cached nowhere: the next access walks again.
  CHECK(m.ready(kIova + 5 * k4K, 4 * kUs) == 4 * kUs + 4 * w);
  CHECK(m.ready(kIova + 5 * k4K, 5 * kUs) == 5 * kUs + 4 * w);
  CHECK(stat(sim, "iotlb_hits") == 2);
  CHECK(stat(sim, "iotlb_misses") == 5);
  // An unmap drops the cached translation.
  m.unmap(kIova, k4K);
  REQUIRE(m.map(kIova, 0x7000, k4K, 0));
  CHECK(m.ready(kIova, 6 * kUs) == 6 * kUs + 4 * w);
  CHECK(stat(sim, "invalidated_entries") == 1);
}

TEST_CASE("iommu: walkers bound the walks in flight and the IOTLB capacity bounds its hits",
          "[iommu]") {
  EventQueue eq{"eq"};
  Sim sim{eq};
  pcie::Iommu m(sim, "mmu", params(8, 8, 2));  // one set of 8 ways, two walkers
  REQUIRE(m.map(kIova, 0x100000, 16 * k4K, 0));
  const Tick w = 4 * 50 * kNs;
  CHECK(m.ready(kIova + 0 * k4K, 0) == w);
  CHECK(m.ready(kIova + 1 * k4K, 0) == w);
  CHECK(m.ready(kIova + 2 * k4K, 0) == 2 * w);  // waits for a walker
  // 9 other pages in turn through 8 entries (LRU): each access misses.
  for (int round = 0; round < 2; ++round)
    for (int p = 4; p < 13; ++p) m.ready(kIova + p * k4K, 10 * kUs);
  CHECK(stat(sim, "iotlb_hits") == 0);
  // 8 pages fit: the second round hits.
  EventQueue eq2{"eq2"};
  Sim sim2{eq2};
  pcie::Iommu m2(sim2, "mmu", params(8, 8, 2));
  REQUIRE(m2.map(kIova, 0x100000, 16 * k4K, 0));
  for (int round = 0; round < 2; ++round)
    for (int p = 0; p < 8; ++p) m2.ready(kIova + p * k4K, 10 * kUs);
  CHECK(stat(sim2, "iotlb_hits") == 8);
}

TEST_CASE("iommu: parameters are checked, naming the key", "[iommu]") {
  pcie::IommuParams p = params();
  p.iotlb_ways = 3;
  CHECK(p.validate().rfind("iommu.iotlb_ways: 3", 0) == 0);
  p = params(48, 4);  // 12 sets: not a power of two
  CHECK(p.validate().rfind("iommu.iotlb_ways", 0) == 0);
  p = params();
  p.levels = 2;
  CHECK(p.validate().rfind("iommu.levels: 2", 0) == 0);
  p = params();
  p.ats = true;
  p.atc_entries = 0;
  CHECK(p.validate().rfind("iommu.atc_entries: 0", 0) == 0);
  CHECK(params().validate().empty());
}

TEST_CASE("iommu bridge: DMA lands at the mapped address, unmapped IOVAs fault, memory unchanged",
          "[iommu]") {
  Env e;
  REQUIRE(e.mmu.map(kIova, 0x5000, k4K, 0));
  REQUIRE(e.mmu.map(kIova + k4K, 0x9000, k4K, 0));  // the next IOVA page is elsewhere
  std::vector<uint8_t> pat(k4K + 64), got(k4K + 64, 0), bad(64, 0);
  for (size_t i = 0; i < pat.size(); ++i) pat[i] = static_cast<uint8_t>(i * 7 + 1);
  e.mem.write(0xA000, pat.data(), 64);  // a page nothing maps at kIova + 2 pages
  const uint32_t before = e.mem.checksum(0, 0x20000);
  e.eq.at(0, [&] {
    // Straddles the two pages: its halves land 0x5000-page and 0x9000-page.
    e.bridge.dma_write(kIova + k4K - 32, pat.data(), 64, 0, {});
    e.bridge.dma_write(kIova + 2 * k4K, pat.data(), 64, 0, {});  // nothing maps it: dropped
    e.bridge.dma_read(kIova + 2 * k4K, bad.data(), 64, 0, {});   // all ones
  });
  e.eq.at(5 * kUs, [&] { e.bridge.dma_read(kIova + k4K - 32, got.data(), 64, 0, {}); });
  e.eq.start(20 * kUs);
  e.bridge.sync_all();
  uint8_t b[64];
  e.mem.read(0x5000 + k4K - 32, b, 32);
  CHECK(std::memcmp(b, pat.data(), 32) == 0);
  e.mem.read(0x9000, b, 32);
  CHECK(std::memcmp(b, pat.data() + 32, 32) == 0);
  CHECK(std::memcmp(got.data(), pat.data(), 64) == 0);
  CHECK(bad == std::vector<uint8_t>(64, 0xFF));
  CHECK(stat(e.sim, "faults") == 2);
  // Only the 64 mapped bytes changed: put them back and memory is as before.
  std::vector<uint8_t> zero(32, 0);
  e.mem.write(0x5000 + k4K - 32, zero.data(), 32);
  e.mem.write(0x9000, zero.data(), 32);
  CHECK(e.mem.checksum(0, 0x20000) == before);
}

TEST_CASE("iommu bridge: a write in flight when its page is unmapped is dropped", "[iommu]") {
  Env e;
  REQUIRE(e.mmu.map(kIova, 0x5000, k4K, 0));
  std::vector<uint8_t> d(256, 0xAB);
  Tick landed = 0;
  e.eq.at(0, [&] { e.bridge.dma_write(kIova, d.data(), 256, 0, [&] { landed = e.sim.now(); }); });
  e.eq.at(1, [&] { e.mmu.unmap(kIova, k4K); });  // before the write reaches memory
  e.eq.start(20 * kUs);
  e.bridge.sync_all();
  CHECK(landed > 1);
  uint8_t b = 0;
  e.mem.read(0x5000, &b, 1);
  CHECK(b == 0);
  CHECK(e.mem.checksum(0x5000, k4K) == hostmem::HostMemory().checksum(0, k4K));
  CHECK(stat(e.sim, "faults") == 1);
}

TEST_CASE("iommu bridge: a read that misses the IOTLB takes the walk longer than one that hits",
          "[iommu]") {
  Env e;
  REQUIRE(e.mmu.map(kIova, 0x40000000, k2M, 1));
  std::vector<uint8_t> d(64);
  Tick t1 = 0, t2 = 0;
  // Reference: the same link without an IOMMU, one read on an idle link.
  const Tick plain = pcie::LinkTiming(pcie::BridgeParams{}.link).dma_read(0, kIova, 64);
  e.eq.at(0, [&] { e.bridge.dma_read(kIova, d.data(), 64, 0, [&] { t1 = e.sim.now(); }); });
  e.eq.at(10 * kUs, [&] {
    e.bridge.dma_read(kIova + 4096, d.data(), 64, 0, [&] { t2 = e.sim.now() - 10 * kUs; });
  });
  e.eq.start(20 * kUs);
  CHECK(t1 == plain + 3 * 50 * kNs);  // a 2 MiB page: three levels
  CHECK(t2 == plain);                 // the same page: cached
}

TEST_CASE("iommu bridge: with ATS the device asks once per page, unmaps empty its cache",
          "[iommu]") {
  pcie::IommuParams p = params();
  p.ats = true;
  Env e(p);
  REQUIRE(e.mmu.map(kIova, 0x5000, k4K, 0));
  std::vector<uint8_t> d(64);
  Tick t1 = 0, t2 = 0, t3 = 0;
  const pcie::Params link = pcie::BridgeParams{}.link;
  const Tick plain = pcie::LinkTiming(link).dma_read(0, kIova, 64);
  e.eq.at(0, [&] { e.bridge.dma_read(kIova, d.data(), 64, 0, [&] { t1 = e.sim.now(); }); });
  e.eq.at(10 * kUs,
          [&] { e.bridge.dma_read(kIova, d.data(), 64, 0, [&] { t2 = e.sim.now() - 10 * kUs; }); });
  e.eq.at(20 * kUs, [&] {
    e.mmu.unmap(kIova, k4K);
    e.mmu.map(kIova, 0x6000, k4K, 0);
    e.bridge.dma_read(kIova, d.data(), 64, 0, [&] { t3 = e.sim.now() - 20 * kUs; });
  });
  e.eq.start(40 * kUs);
  // A translation request: the link each way and the walk at the root complex.
  CHECK(t1 == plain + 2 * link.link_latency + 4 * 50 * kNs);
  CHECK(t2 == plain);  // the device holds it: a translated request
  CHECK(t3 == t1);     // invalidated: asked again
  CHECK(stat(e.sim, "atc_hits") == 1);
  CHECK(stat(e.sim, "atc_misses") == 2);
}
