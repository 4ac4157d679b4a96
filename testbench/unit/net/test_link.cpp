// net::Link: which frames are delivered and which are dropped, counted by cause. Elaborates
// SystemC (an EventQueue): one TEST_CASE in this file, each ctest runs in a process of its own.
#include <catch2/catch.hpp>
#include <vector>

#include "model/core/event_queue.h"
#include "model/core/sim.h"
#include "model/net/frame.h"
#include "model/net/link.h"

using namespace rn;

namespace {
struct Sink : net::FrameSink {
  net::FramePool* pool = nullptr;
  std::vector<uint32_t> lens;
  void receive(net::Frame* f) override {
    lens.push_back(f->len);
    pool->put(f);
  }
};
}  // namespace

TEST_CASE(
    "link: runt frames (under 14 B) and frames over the MTU are dropped, each counted as such",
    "[net][link]") {
  EventQueue eq{"eq"};
  Sim sim{eq};
  net::FramePool pool;
  net::LinkParams p;
  p.mtu = 1500;
  net::Link link(sim, "link0", p, pool);
  Sink b;
  b.pool = &pool;
  link.connect(1, &b);
  auto send = [&](int side, uint32_t len) {
    net::Frame* f = pool.get();
    f->len = len;
    link.send(side, f, 0);
  };
  eq.at(0, [&] {
    for (uint32_t len : {0u, 1u, 13u}) send(0, len);  // runts: no room for the Ethernet header
    send(0, 14);                                      // a header and no payload: carried
    send(0, 14 + 1500);                               // exactly the MTU: carried
    send(0, 14 + 1501);                               // one byte over the MTU
    send(1, 5);                                       // a runt the other way
  });
  eq.start(10 * kUs);
  CHECK(b.lens == std::vector<uint32_t>{14, 1514});
  const auto j = sim.stats.to_json()["link0"];
  CHECK(j["a_to_b_frames"]["value"] == 2);
  CHECK(j["a_to_b_runt_drops"]["value"] == 3);
  CHECK(j["a_to_b_mtu_drops"]["value"] == 1);
  CHECK(j["b_to_a_runt_drops"]["value"] == 1);
  CHECK(j["b_to_a_mtu_drops"]["value"] == 0);
  CHECK(j["b_to_a_frames"]["value"] == 0);
}
