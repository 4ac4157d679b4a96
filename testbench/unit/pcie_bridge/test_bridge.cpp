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

pcie::BridgeParams sharing(bool on) {
  pcie::BridgeParams p;
  p.share_pages = on;
  return p;
}

struct Env {
  EventQueue eq{"eq"};
  Sim sim{eq};
  hostmem::HostMemory mem;
  pcie::Bridge bridge;
  Host host;
  Dev dev;
  explicit Env(const pcie::BridgeParams& p = {}) : bridge{sim, "pcie", p, mem} {
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

namespace {
// A device that takes write-combined bursts whole.
struct BurstDev : pcie::MmioTarget {
  struct Write {
    uint64_t off;
    std::vector<uint8_t> data;
    Tick at;
  };
  std::vector<Write> writes;
  Sim* sim = nullptr;
  void mmio_write32(uint64_t off, uint32_t v) override {
    std::vector<uint8_t> b(4);
    std::memcpy(b.data(), &v, 4);
    writes.push_back(Write{off, b, sim->now()});
  }
  void mmio_write(uint64_t off, const uint8_t* data, uint32_t len) override {
    writes.push_back(Write{off, std::vector<uint8_t>(data, data + len), sim->now()});
  }
  uint32_t mmio_read32(uint64_t) override { return 0; }
};
}  // namespace

TEST_CASE("bridge: an MMIO burst is one posted write of its size, copied at the call", "[bridge]") {
  Env e;
  BurstDev dev;
  dev.sim = &e.sim;
  e.bridge.attach_device(&dev);
  // Fresh links with the same parameters: one write each on an idle link.
  const Tick t128 = pcie::LinkTiming(pcie::BridgeParams{}.link).mmio_write(0, 128);
  const Tick t4 = pcie::LinkTiming(pcie::BridgeParams{}.link).mmio_write(0, 4);
  std::vector<uint8_t> data(256);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i);
  e.eq.at(0, [&] {
    e.bridge.mmio_write(0x2000100, data.data(), 128);
    std::memset(data.data(), 0, data.size());  // the caller's buffer is free at once
    e.bridge.mmio_write32(0x10, 7);
    e.bridge.mmio_write(0x2000000, data.data(), 0);    // refused: empty
    e.bridge.mmio_write(0x2000000, data.data(), 257);  // refused: longer than a burst
  });
  e.eq.start(10 * kUs);
  REQUIRE(dev.writes.size() == 2);
  CHECK(dev.writes[0].off == 0x2000100);
  CHECK(dev.writes[0].data.size() == 128);
  CHECK(dev.writes[0].data[127] == 127);
  CHECK(dev.writes[0].at == t128);  // timed as the link times a 128-byte MMIO write
  CHECK(t128 > t4);                 // the same path, longer on the wire
  CHECK(dev.writes[1].off == 0x10);
  CHECK(dev.writes[1].at > dev.writes[0].at);  // posted writes stay in order
  const auto st = e.sim.stats.to_json();
  CHECK(st["pcie"]["mmio_writes"]["value"] == 2);
  CHECK(st["pcie"]["mmio_write_bytes"]["value"] == 132);
  CHECK(st["pcie"]["mmio_errors"]["value"] == 2);
}

TEST_CASE("bridge: a device without bursts sees one as 32-bit writes", "[bridge]") {
  Env e;
  uint32_t words[3] = {1, 2, 3};
  e.eq.at(0, [&] { e.bridge.mmio_write(0x100, words, 10); });  // two whole words and a half
  e.eq.start(10 * kUs);
  REQUIRE(e.dev.writes.size() == 2);
  CHECK(e.dev.writes[0].first == 0x100);
  CHECK(e.dev.writes[1].first == 0x104);
}

namespace {
// Three DMA reads (a whole page, part of a page, a whole page at an unaligned address) asking
// for page references, then a whole-page borrowed write of the first one's bytes with its
// reference. Returns which reads got references and how the write was done.
struct ShareResult {
  bool whole = false, part = false, unaligned = false;
  uint64_t mapped = 0;
  bool bytes_ok = false;
};
ShareResult share_run(bool on) {
  Env e(sharing(on));
  e.mem.fill_pattern(0x10000, 3 * hostmem::kPageSize, 5);
  struct {
    std::vector<uint8_t> d1 = std::vector<uint8_t>(4096), d2 = std::vector<uint8_t>(100),
                         d3 = std::vector<uint8_t>(4096);
    PageRef r1, r2, r3;
  } st;
  e.eq.at(0, [&e, &st] {
    e.bridge.dma_read(0x10000, st.d1.data(), 4096, 0, {});  // no reference asked for
    pcie::SgEntry a{0x10000, 4096}, b{0x11000, 100}, c{0x11010, 4096};
    e.bridge.dma_read(&a, 1, st.d1.data(), 0, {}, &st.r1);
    e.bridge.dma_read(&b, 1, st.d2.data(), 0, {}, &st.r2);
    e.bridge.dma_read(&c, 1, st.d3.data(), 0, {}, &st.r3);
  });
  e.eq.at(5 * kUs, [&e, &st] {
    pcie::SgEntry w{0x40000, 4096};
    e.bridge.dma_write_borrowed(
        &w, 1, st.d1.data(), 0, [] {}, &st.r1);
  });
  e.eq.start(20 * kUs);
  e.bridge.sync_all();
  ShareResult res;
  res.whole = bool(st.r1);
  res.part = bool(st.r2);
  res.unaligned = bool(st.r3);
  res.mapped = e.mem.pages_mapped_shared();
  res.bytes_ok = e.mem.equals(0x40000, e.mem, 0x10000, 4096);
  st.r1.release();
  st.r2.release();
  st.r3.release();
  return res;
}

// One simulation per process: each setting is its own TEST_CASE.
void check_share(bool on) {
  ShareResult r = share_run(on);
  CHECK(r.whole == on);  // partial and unaligned pages never
  CHECK(!r.part);
  CHECK(!r.unaligned);
  CHECK(r.mapped == (on ? 1u : 0u));
  CHECK(r.bytes_ok);
}
}  // namespace

TEST_CASE("bridge: with share_pages, whole-page reads hand out references, writes map them",
          "[bridge][sharing]") {
  check_share(true);
}

TEST_CASE("bridge: without share_pages, no references and every write copies",
          "[bridge][sharing]") {
  check_share(false);
}

TEST_CASE("bridge: a write given a page reference takes the page's bytes, also where it cannot map",
          "[bridge][sharing]") {
  // The frame's own bytes (src) are junk, as in a frame whose payload stayed in the page: an
  // unaligned destination and one split over two entries must both get the page's bytes.
  Env e(sharing(true));
  e.mem.fill_pattern(0x10000, hostmem::kPageSize, 6);
  struct {
    std::vector<uint8_t> junk = std::vector<uint8_t>(4096, 0xEE);
    PageRef ref;
  } st;
  st.ref = e.mem.ref_page(0x10000);
  REQUIRE(st.ref);
  e.eq.at(0, [&e, &st] {
    pcie::SgEntry unaligned{0x20010, 4096};
    e.bridge.dma_write_borrowed(
        &unaligned, 1, st.junk.data(), 0, [] {}, &st.ref);
    pcie::SgEntry split[2] = {{0x30000, 1000}, {0x40000, 3096}};
    e.bridge.dma_write_borrowed(
        split, 2, st.junk.data(), 0, [] {}, &st.ref);
  });
  e.eq.start(20 * kUs);
  e.bridge.sync_all();
  CHECK(e.mem.pages_mapped_shared() == 0);
  CHECK(e.mem.first_mismatch_with_pattern(0x20010, 4096, 6) == std::nullopt);
  std::vector<uint8_t> got(4096);
  e.mem.read(0x30000, got.data(), 1000);
  e.mem.read(0x40000, got.data() + 1000, 3096);
  bool same = true;
  for (size_t i = 0; i < got.size(); ++i) same = same && got[i] == hostmem::pattern_byte(6, i);
  CHECK(same);
  st.ref.release();
}

TEST_CASE("bridge: DMA that ends exactly at 2^64 works and one past it is refused and counted",
          "[bridge][range]") {
  Env e;
  struct State {
    std::vector<uint8_t> out = std::vector<uint8_t>(64, 0x5A), in = std::vector<uint8_t>(64, 0),
                         wrapped = std::vector<uint8_t>(64, 0);
    bool wrote = false, read = false, bad_read = false, bad_write = false;
  } st;
  const uint64_t top = ~uint64_t(0) - 63;  // the last 64 bytes of the address space
  State* s = &st;
  pcie::Bridge* b = &e.bridge;
  e.eq.at(0, [s, b, top] {
    b->dma_write(top, s->out.data(), 64, 0, [s, b, top] {
      s->wrote = true;
      b->dma_read(top, s->in.data(), 64, 0, [s] { s->read = true; });
    });
    // 64 bytes from 32 bytes below the top wrap around to address 0: refused, all ones read.
    b->dma_read(top + 32, s->wrapped.data(), 64, 0, [s] { s->bad_read = true; });
    b->dma_write(top + 32, s->out.data(), 64, 0, [s] { s->bad_write = true; });
  });
  REQUIRE_NOTHROW(e.eq.start(100 * kUs));
  e.bridge.sync_all();
  CHECK(st.wrote);
  CHECK(st.read);
  CHECK(st.in == st.out);
  CHECK(st.bad_read);
  CHECK(st.bad_write);
  CHECK(st.wrapped == std::vector<uint8_t>(64, 0xFF));
  CHECK(read_byte(e.mem, 0) == 0);  // the refused write did not wrap to address 0
  CHECK(e.sim.stats.to_json()["pcie"]["dma_errors"]["value"] == 2);
}
