// SplitMix64's output function: a bijective 64-bit mix, for counter-based draws (the value for
// item i depends only on the seed and i, never on what else was drawn) and seeded patterns.
#pragma once
#include <cstdint>

namespace rn {

constexpr uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace rn
