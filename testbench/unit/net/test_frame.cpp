// net::Frame and net::FramePool: a payload that stays in a host-memory page (Frame::ext_off,
// Frame::payload_page), materialising it, unsealing a frame, and the pool releasing references.
#include <catch2/catch.hpp>
#include <memory>

#include "bridge/host_memory/host_memory.h"
#include "model/net/frame.h"

using rn::hostmem::HostMemory;
using rn::hostmem::kPageSize;
using rn::hostmem::PagePool;
using rn::hostmem::pattern_byte;
using rn::net::Frame;
using rn::net::FramePool;

namespace {
bool payload_is_pattern(const Frame& f, size_t off, uint64_t seed) {
  for (size_t i = 0; i < kPageSize; ++i)
    if (f.data[off + i] != pattern_byte(seed, i)) return false;
  return true;
}

// A frame from `pool` whose payload (at data[ext_off]) stays in m's page at `addr`, which holds
// pattern `seed`; sealed as a sender leaves it.
Frame* frame_on_page(FramePool& pool, HostMemory& m, uint64_t addr, uint64_t seed,
                     uint16_t ext_off) {
  m.fill_pattern(addr, kPageSize, seed);
  Frame* f = pool.get();
  f->payload_page = m.ref_page(addr);
  REQUIRE(f->payload_page);
  f->ext_off = ext_off;
  f->icrc_sealed = true;
  return f;
}
}  // namespace

TEST_CASE("a payload kept in a page: materialize copies the bytes the reference froze",
          "[net][frame]") {
  auto pages = std::make_shared<PagePool>();
  HostMemory m(pages);
  FramePool pool;
  Frame* f = frame_on_page(pool, m, 0x1000, 3, 100);
  CHECK(f->payload_external());
  m.fill_pattern(0x1000, kPageSize, 4);  // the memory moves on: its page is copied first
  CHECK(pages->pages_in_use() == 2);
  f->materialize();
  CHECK(!f->payload_external());
  CHECK(payload_is_pattern(*f, 100, 3));
  CHECK(f->payload_page);  // still the same bytes: the reference may stay
  CHECK(f->icrc_sealed);
  f->materialize();  // nothing more to do
  CHECK(payload_is_pattern(*f, 100, 3));
  pool.put(f);  // the pool lets the page go
  CHECK(pages->pages_in_use() == 1);
}

TEST_CASE("unseal: bytes in the frame, no page reference, no seal", "[net][frame]") {
  auto pages = std::make_shared<PagePool>();
  HostMemory m(pages);
  FramePool pool;
  Frame* f = frame_on_page(pool, m, 0x8000, 9, 54);
  f->unseal();
  CHECK(payload_is_pattern(*f, 54, 9));
  CHECK(!f->payload_external());
  CHECK(!f->payload_page);
  CHECK(!f->icrc_sealed);
  m.fill(0x8000, 1, 0xAB);  // unshared again: written in place
  CHECK(m.pages_copied_on_write() == 0);
  pool.put(f);
  Frame* again = pool.get();  // recycled clean
  CHECK(again == f);
  CHECK(!again->payload_page);
  CHECK(!again->payload_external());
  CHECK(!again->icrc_sealed);
  pool.put(again);
}
