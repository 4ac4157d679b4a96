// Simulated time and physical quantities. One tick is one picosecond.
#pragma once
#include <cstdint>

namespace rn {

// Simulated time in picoseconds. 2^64 ps is about 213 days of simulated time.
using Tick = uint64_t;
constexpr Tick kPs = 1;
constexpr Tick kNs = 1000;
constexpr Tick kUs = 1000 * kNs;
constexpr Tick kMs = 1000 * kUs;
constexpr Tick kSec = 1000 * kMs;
constexpr Tick kTickNever = ~Tick(0);

// Time to move `bytes` at `bits_per_sec`, rounded up to the next picosecond.
inline Tick bytes_time(uint64_t bytes, double bits_per_sec) {
  double ps = static_cast<double>(bytes) * 8.0 * 1e12 / bits_per_sec;
  Tick t = static_cast<Tick>(ps);
  return (static_cast<double>(t) < ps) ? t + 1 : t;
}

inline double ticks_to_ns(Tick t) { return static_cast<double>(t) / 1e3; }
inline double ticks_to_sec(Tick t) { return static_cast<double>(t) / 1e12; }

// The smallest power of two >= v (1 for 0): ring sizes indexed by mask (std::bit_ceil is C++20).
constexpr uint64_t pow2_ceil(uint64_t v) {
  uint64_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

}  // namespace rn
