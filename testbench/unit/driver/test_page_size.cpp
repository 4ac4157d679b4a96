// The page size the driver gives a memory region (drv::best_page_shift) and its page list
// (drv::page_list): the largest page whose bus pages are contiguous and aligned as the virtual
// ones, as Linux's ib_umem_find_best_pgsz picks it.
#include <catch2/catch.hpp>
#include <vector>

#include "bridge/driver/driver.h"

using namespace rn;

namespace {
constexpr uint64_t k4K = 4096, k2M = 2ull << 20, k1G = 1ull << 30;

// The 4 KiB bus pages of [va, va + len) when the bus address of va is `bus` and everything is
// contiguous.
std::vector<uint64_t> contiguous(uint64_t va, uint64_t len, uint64_t bus) {
  std::vector<uint64_t> p;
  const uint64_t first = va & ~(k4K - 1), b0 = bus & ~(k4K - 1);
  for (uint64_t v = first; v < va + len; v += k4K) p.push_back(b0 + (v - first));
  return p;
}
}  // namespace

TEST_CASE("driver: a region of scattered 4 KiB pages keeps 4 KiB pages", "[driver]") {
  const std::vector<uint64_t> pages = {0x40000000, 0x40009000, 0x40003000};
  CHECK(drv::best_page_shift(0x7F0000001000, pages) == 12);
  CHECK(drv::page_list(0x7F0000001000, pages, 12) == pages);
}

TEST_CASE("driver: huge pages aligned as their virtual addresses give huge MTT pages", "[driver]") {
  // 3 MiB from the middle of a 2 MiB page: two 2 MiB pages, the second elsewhere on the bus.
  const uint64_t va = 0x7F0000000000 + k2M + 0x100000;
  std::vector<uint64_t> p = contiguous(va, k2M / 2, 0x10000000000 + 0x100000);
  const std::vector<uint64_t> second = contiguous(va + k2M / 2, 2 * 1024 * 1024, 0x10000A00000);
  p.insert(p.end(), second.begin(), second.end());
  CHECK(drv::best_page_shift(va, p) == 21);
  CHECK(drv::page_list(va, p, 21) == std::vector<uint64_t>{0x10000000000, 0x10000A00000});
  // One contiguous gigabyte, aligned: 1 GiB pages.
  CHECK(drv::best_page_shift(k1G * 5, contiguous(k1G * 5, k1G, k1G * 9)) == 30);
  // Contiguous but at another offset in a 2 MiB page on the bus than virtually: 4 KiB only...
  CHECK(drv::best_page_shift(k2M * 3, contiguous(k2M * 3, 4 * k2M, k2M * 8 + 0x3000)) == 12);
  // ... and 64 KiB pages where the offsets agree in their low 16 bits.
  CHECK(drv::best_page_shift(k2M * 3, contiguous(k2M * 3, 4 * k2M, k2M * 8 + 0x10000)) == 16);
  // Never above the device's largest (1 GiB), however far the contiguity goes.
  CHECK(drv::best_page_shift(0, contiguous(0, 4 * k1G, 0)) == dev::kMaxPageShift);
}
