// How a transfer is cut into TLPs. Header-only, no allocation.
#pragma once

#include <algorithm>
#include <cstdint>

namespace rn::pcie {

constexpr uint64_t k4K = 4096;

// Length of the first TLP of [addr, addr + len) when TLPs end at multiples of
// max_size (a power of two; MPS-/MRRS-aligned splitting as DMA engines do) and
// never cross a 4 KB boundary. len > 0.
inline uint32_t first_tlp_len(uint64_t addr, uint64_t len, uint32_t max_size) {
  // Sizes are powers of two (Params::validate): masks instead of divisions, which would
  // dominate the per-TLP cost.
  uint64_t to_max = max_size - (addr & (max_size - 1));
  uint64_t to_4k = k4K - (addr & (k4K - 1));
  return static_cast<uint32_t>(std::min({len, to_max, to_4k}));
}

// Calls f(addr, len) for every TLP of the transfer, in address order.
template <class F>
inline void for_each_tlp(uint64_t addr, uint64_t len, uint32_t max_size, F&& f) {
  while (len) {
    uint32_t n = first_tlp_len(addr, len, max_size);
    f(addr, n);
    addr += n;
    len -= n;
  }
}

// The TLPs of the transfer as runs of equal length, in address order: f(count, len) for a
// partial first TLP, the full ones, a partial last one (at most three calls). max_size <= 4 KB, so
// every TLP after the first starts on a max_size boundary. len > 0.
template <class F>
inline void for_each_tlp_run(uint64_t addr, uint64_t len, uint32_t max_size, F&& f) {
  uint32_t first = first_tlp_len(addr, len, max_size);
  uint64_t rest = len - first;
  const int shift = __builtin_ctz(max_size);
  uint64_t full = rest >> shift;
  uint32_t tail = static_cast<uint32_t>(rest & (max_size - 1));
  if (first == max_size) {
    f(full + 1, first);
  } else {
    f(1, first);
    if (full) f(full, max_size);
  }
  if (tail) f(1, tail);
}

// Number of TLPs of the transfer (closed form, O(1)).
inline uint64_t count_tlps(uint64_t addr, uint64_t len, uint32_t max_size) {
  if (len == 0) return 0;
  uint64_t unit = std::min<uint64_t>(max_size, k4K);  // 4 KB is a multiple of max_size if smaller
  uint64_t first = addr / unit, last = (addr + len - 1) / unit;
  return last - first + 1;
}

// Completions of one read request [addr, addr + len) as a root complex returns
// them: each at most mps bytes; if split, every completion but the last ends on
// an RCB boundary. rcb_chunks: cut at every RCB boundary (older chipsets);
// otherwise the largest such completion (<= mps) is sent each time.
inline uint32_t first_cpl_len(uint64_t addr, uint64_t len, uint32_t mps, uint32_t rcb,
                              bool rcb_chunks) {
  if (rcb_chunks) return static_cast<uint32_t>(std::min<uint64_t>(len, rcb - (addr & (rcb - 1))));
  if (len <= mps) return static_cast<uint32_t>(len);
  uint64_t end = addr + mps;
  end &= ~uint64_t(rcb - 1);  // round down to an RCB boundary (> addr since mps >= rcb)
  return static_cast<uint32_t>(end - addr);
}

template <class F>
inline void for_each_cpl(uint64_t addr, uint64_t len, uint32_t mps, uint32_t rcb, bool rcb_chunks,
                         F&& f) {
  while (len) {
    uint32_t n = first_cpl_len(addr, len, mps, rcb, rcb_chunks);
    f(addr, n);
    addr += n;
    len -= n;
  }
}

inline uint64_t count_cpls(uint64_t addr, uint64_t len, uint32_t mps, uint32_t rcb,
                           bool rcb_chunks) {
  uint64_t n = 0;
  for_each_cpl(addr, len, mps, rcb, rcb_chunks, [&](uint64_t, uint32_t) { ++n; });
  return n;
}

}  // namespace rn::pcie
