// pcie::Bridge (bridge/pcie/pcie_bridge.h): DMA writes land at their computed completion time,
// lazily unless someone waits for them; DMA reads see every write that landed before them; MMIO
// reaches the device after the link latency. Each TEST_CASE elaborates SystemC: one per process.
#include <catch2/catch.hpp>
#include <cstring>
#include <systemc>
#include <vector>

#include "bridge/host_memory/host_memory.h"
#include "bridge/pcie/pcie_bridge.h"
#include "model/core/event_queue.h"
#include "model/core/sim.h"

using namespace rn;

namespace {

struct Host : pcie::HostObserver {
  std::vector<std::pair<uint64_t, uint64_t>> seen;  // (addr, time) of each landed write
  uint64_t watch_lo = 0, watch_hi = 0;
  Sim* sim = nullptr;
  void on_dma_write(uint64_t addr, uint64_t) override { seen.emplace_back(addr, sim->now()); }
  void on_msi(uint64_t, uint32_t) override {}
  bool watching(uint64_t addr, uint64_t len) const override {
    return addr < watch_hi && addr + len > watch_lo;
  }
};

struct Dev : pcie::MmioTarget {
  std::vector<std::pair<uint64_t, Tick>> writes;
  Sim* sim = nullptr;
  void mmio_write32(uint64_t off, uint32_t) override { writes.emplace_back(off, sim->now()); }
  uint32_t mmio_read32(uint64_t) override { return 0x1234; }
};

struct Env {
  EventQueue eq{"eq"};
  Sim sim{eq};
  hostmem::HostMemory mem;
  pcie::Bridge bridge{sim, "pcie", pcie::BridgeParams{}, mem};
  Host host;
  Dev dev;
  Env() {
    host.sim = &sim;
    dev.sim = &sim;
    bridge.attach_host(&host);
    bridge.attach_device(&dev);
  }
};

uint8_t read_byte(const hostmem::HostMemory& m, uint64_t a) {
  uint8_t b = 0;
  m.read(a, &b, 1);
  return b;
}

}  // namespace

TEST_CASE("bridge: an unwatched DMA write lands lazily, at its completion time", "[bridge]") {
  Env e;
  std::vector<uint8_t> data(4096, 0xAB);
  // A fresh link with the same parameters computes the same completion time.
  const Tick expect = pcie::LinkTiming(pcie::BridgeParams{}.link).dma_write(0, 0x1000, 4096);
  uint8_t before = 0xFF, at_time = 0;
  e.eq.at(0, [&] { e.bridge.dma_write(0x1000, data.data(), 4096, 0, {}); });
  e.eq.at(expect - 1, [&] {
    e.bridge.sync();
    before = read_byte(e.mem, 0x1FFF);
  });
  e.eq.at(expect, [&] {
    e.bridge.sync();
    at_time = read_byte(e.mem, 0x1FFF);
  });
  e.eq.start(10 * kUs);
  CHECK(before == 0);
  CHECK(at_time == 0xAB);
  // Nobody watched it: the write had no event of its own (only the three above ran).
  CHECK(e.eq.events_executed() == 3);
  REQUIRE(e.host.seen.size() == 1);
  CHECK(e.host.seen[0] == std::make_pair(uint64_t(0x1000), uint64_t(expect)));
}

TEST_CASE("bridge: a watched DMA write lands exactly at its completion time", "[bridge]") {
  Env e;
  e.host.watch_lo = 0x2000;
  e.host.watch_hi = 0x3000;
  std::vector<uint8_t> data(64, 0x5A);
  Tick expect = pcie::LinkTiming(pcie::BridgeParams{}.link).dma_write(0, 0x2000, 64);
  e.eq.at(0, [&] { e.bridge.dma_write(0x2000, data.data(), 64, 0, {}); });
  e.eq.start(10 * kUs);
  REQUIRE(e.host.seen.size() == 1);
  CHECK(e.host.seen[0].second == expect);
  CHECK(read_byte(e.mem, 0x2000) == 0x5A);
}

TEST_CASE("bridge: a DMA read sees the writes that landed before it, not later ones", "[bridge]") {
  Env e;
  std::vector<uint8_t> w1(64, 0x11), w2(64, 0x22), got(64, 0);
  Tick read_done = 0, w2_done = 0;
  e.eq.at(0, [&] { e.bridge.dma_write(0x4000, w1.data(), 64, 0, {}); });
  e.eq.at(5 * kUs, [&] {
    e.bridge.dma_read(0x4000, got.data(), 64, 0, [&] { read_done = e.sim.now(); });
    // Issued after the read, so it cannot land before the read's data was fetched... it lands
    // later than the read completes (the read takes a round trip, the write goes one way but
    // starts after it on the same link direction).
    e.bridge.dma_write(0x4000, w2.data(), 64, e.sim.now() + 2 * kUs,
                       [&] { w2_done = e.sim.now(); });
  });
  e.eq.start(20 * kUs);
  CHECK(read_done > 5 * kUs);
  REQUIRE(w2_done > read_done);  // the premise: the second write lands after the read's data
  CHECK(got[0] == 0x11);
  e.bridge.sync_all();
  CHECK(read_byte(e.mem, 0x4000) == 0x22);
}

TEST_CASE("bridge: completion callbacks run at the computed time, zero-length writes at once",
          "[bridge]") {
  Env e;
  std::vector<uint8_t> d(256, 1);
  Tick t_cb = 0, t_zero = 0;
  Tick expect = pcie::LinkTiming(pcie::BridgeParams{}.link).dma_write(100, 0x8000, 256);
  e.eq.at(100, [&] {
    e.bridge.dma_write(0x8000, d.data(), 256, 0, [&] { t_cb = e.sim.now(); });
    e.bridge.dma_write(0x9000, d.data(), 0, 0, [&] { t_zero = e.sim.now(); });
  });
  e.eq.start(10 * kUs);
  CHECK(t_cb == expect);
  CHECK(t_zero == 100);
  CHECK(read_byte(e.mem, 0x80FF) == 1);
}

TEST_CASE("bridge: a posted MMIO write reaches the device after the link, in order", "[bridge]") {
  Env e;
  e.eq.at(0, [&] {
    e.bridge.mmio_write32(0x10, 1);
    e.bridge.mmio_write32(0x14, 2);
  });
  e.eq.start(10 * kUs);
  REQUIRE(e.dev.writes.size() == 2);
  CHECK(e.dev.writes[0].first == 0x10);
  CHECK(e.dev.writes[1].first == 0x14);
  CHECK(e.dev.writes[0].second > 0);
  CHECK(e.dev.writes[1].second > e.dev.writes[0].second);
}
