// Latency samples of a workload, kept as a histogram of bounded size instead of one entry per
// sample (a latency test may run 1e9 round trips). Bins are 1 ns wide up to 131.072 us, then
// 1/65536 of the value wide (HDR-style: 65536 bins per power of two). Percentiles are exact to
// that resolution: the value reported for a percentile is the lower edge of the bin that holds
// the nearest-rank sample (clamped to the exact minimum and maximum), at most one bin width below
// the exact sample. The minimum, maximum, mean and count are exact.
// Memory: a block of 65536 counters (512 KiB) per power of two actually used, the first one
// covering 0 to 65.536 us; at most 40 of them (samples up to 2^64 ps).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "model/core/units.h"

namespace rn {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 16;
  static constexpr uint64_t kSub = uint64_t(1) << kSubBits;  // bins per block
  // Largest value with 1 ns bins, in ns (exclusive): 2^(kSubBits+1).
  static constexpr uint64_t kLinearNs = kSub << 1;

  void add(Tick t);
  uint64_t count() const { return count_; }
  // Exact, in ns (0 without samples).
  double min_ns() const { return count_ ? ticks_to_ns(min_) : 0; }
  double max_ns() const { return count_ ? ticks_to_ns(max_) : 0; }
  double mean_ns() const;
  // Nearest rank: the smallest sample with at least p% of the samples at or below it, to the
  // resolution above (p <= 0: the minimum, p >= 100: the maximum). 0 without samples.
  double percentile_ns(double p) const;
  // Width of the bin holding a value of v_ns nanoseconds: the resolution there.
  static uint64_t bin_width_ns(uint64_t v_ns);
  // Every non-empty bin in increasing order: (lower edge in ns, samples).
  std::vector<std::pair<uint64_t, uint64_t>> bins() const;

 private:
  static uint64_t bin_of(uint64_t v_ns);
  static uint64_t bin_lo_ns(uint64_t bin);
  // blocks_[k] holds bins [k * kSub, (k + 1) * kSub); empty until a sample falls in it.
  std::vector<std::vector<uint64_t>> blocks_;
  uint64_t count_ = 0;
  Tick min_ = ~Tick(0), max_ = 0;
  uint64_t sum_lo_ = 0, sum_hi_ = 0;  // sum of the samples in ps, 128 bits
};

}  // namespace rn
