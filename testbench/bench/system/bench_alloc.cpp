// Counts heap allocations of a whole run (every operator new in the process). Run twice with
// different iteration counts (bench_sim_speed.sh does): the difference divided by the extra
// packets is the number of allocations per packet in steady state, which must be 0.
//   bench_alloc CONFIG [--set key=value]...
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <systemc>

#include "model/system/schema.h"
#include "model/system/system.h"

namespace {
std::atomic<uint64_t> g_allocs{0};
}

void* operator new(std::size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

int sc_main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_alloc CONFIG [--set key=value]...\n");
    return 2;
  }
  auto schema = rn::system::make_schema();
  rn::cfg::Config cfg(schema);
  cfg.load_file(argv[1]);
  for (int i = 2; i + 1 < argc; i += 2) cfg.apply_override(argv[i + 1]);
  rn::system::System sys(cfg, argv[1]);
  uint64_t before = g_allocs.load();
  auto r = sys.run("");
  uint64_t during = g_allocs.load() - before;
  std::printf("allocations %llu packets %llu ok %d\n", static_cast<unsigned long long>(during),
              static_cast<unsigned long long>(r.packets), r.ok ? 1 : 0);
  return r.ok ? 0 : 1;
}
