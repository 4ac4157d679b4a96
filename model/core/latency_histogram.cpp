#include "model/core/latency_histogram.h"

#include <algorithm>
#include <cmath>

namespace rn {

uint64_t LatencyHistogram::bin_of(uint64_t v) {
  if (v < kSub) return v;
  const int msb = 63 - __builtin_clzll(v);  // >= kSubBits
  const int shift = msb - kSubBits;         // keep kSubBits + 1 significant bits
  return (static_cast<uint64_t>(shift) + 1) * kSub + ((v >> shift) & (kSub - 1));
}

uint64_t LatencyHistogram::bin_lo_ns(uint64_t bin) {
  if (bin < kSub) return bin;
  const uint64_t shift = bin / kSub - 1;
  return (kSub + bin % kSub) << shift;
}

uint64_t LatencyHistogram::bin_width_ns(uint64_t v) {
  if (v < kLinearNs) return 1;
  return uint64_t(1) << (63 - __builtin_clzll(v) - kSubBits);
}

void LatencyHistogram::add(Tick t) {
  const uint64_t bin = bin_of(t / kNs);
  const size_t block = static_cast<size_t>(bin / kSub);
  if (block >= blocks_.size()) blocks_.resize(block + 1);
  if (blocks_[block].empty()) blocks_[block].assign(kSub, 0);
  ++blocks_[block][bin % kSub];
  ++count_;
  min_ = std::min(min_, t);
  max_ = std::max(max_, t);
  sum_lo_ += t;
  if (sum_lo_ < t) ++sum_hi_;
}

double LatencyHistogram::mean_ns() const {
  if (!count_) return 0;
  const long double sum = static_cast<long double>(sum_hi_) * 18446744073709551616.0L +
                          static_cast<long double>(sum_lo_);
  return static_cast<double>(sum / static_cast<long double>(count_) / kNs);
}

double LatencyHistogram::percentile_ns(double p) const {
  if (!count_) return 0;
  if (p <= 0) return min_ns();
  if (p >= 100) return max_ns();
  uint64_t rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const auto& b = blocks_[k];
    for (size_t i = 0; i < b.size(); ++i) {
      seen += b[i];
      if (seen >= rank) {
        const double lo = static_cast<double>(bin_lo_ns(k * kSub + i));
        return std::clamp(lo, min_ns(), max_ns());
      }
    }
  }
  return max_ns();
}

std::vector<std::pair<uint64_t, uint64_t>> LatencyHistogram::bins() const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (size_t k = 0; k < blocks_.size(); ++k)
    for (size_t i = 0; i < blocks_[k].size(); ++i)
      if (blocks_[k][i]) out.emplace_back(bin_lo_ns(k * kSub + i), blocks_[k][i]);
  return out;
}

}  // namespace rn
