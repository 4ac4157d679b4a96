// Unit tests of rn::LatencyHistogram (model/core/latency_histogram.h): every percentile against
// the exact nearest-rank sample of the sorted values, to the documented resolution (1 ns up to
// 131.072 us, 1/65536 of the value above); exact count, min, max and mean; the bins listing.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "model/core/latency_histogram.h"

using rn::LatencyHistogram;
using rn::Tick;

namespace {

// The documented resolution at v nanoseconds, written out independently of the class.
double resolution_ns(double v_ns) { return v_ns < 131072.0 ? 1.0 : v_ns / 65536.0; }

// Nearest rank of the sorted samples, in ns.
double exact_ns(const std::vector<Tick>& sorted, double p) {
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return static_cast<double>(sorted[rank - 1]) / 1e3;
}

void check_against_sorted(std::vector<Tick> v) {
  LatencyHistogram h;
  long double sum = 0;
  for (Tick t : v) {
    h.add(t);
    sum += static_cast<long double>(t);
  }
  std::sort(v.begin(), v.end());
  REQUIRE(h.count() == v.size());
  CHECK(h.min_ns() == static_cast<double>(v.front()) / 1e3);
  CHECK(h.max_ns() == static_cast<double>(v.back()) / 1e3);
  CHECK(h.percentile_ns(0) == h.min_ns());
  CHECK(h.percentile_ns(100) == h.max_ns());
  double mean = static_cast<double>(sum / static_cast<long double>(v.size()) / 1e3);
  CHECK(h.mean_ns() == Approx(mean).epsilon(1e-12));
  for (double p : {0.001, 0.1, 1.0, 10.0, 25.0, 50.0, 66.6, 90.0, 99.0, 99.9, 99.99, 99.999}) {
    const double want = exact_ns(v, p);
    const double got = h.percentile_ns(p);
    INFO("p" << p << ": histogram " << got << " ns, exact " << want << " ns");
    // The lower edge of the bin holding the sample: never above it, less than a bin below.
    CHECK(got <= want);
    CHECK(want - got < resolution_ns(want));
  }
}

}  // namespace

TEST_CASE("latency histogram: percentiles of random latencies near a microsecond", "[latency]") {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> d(1800e3, 150e3);  // ps: 1.8 us, sub-ns parts included
  std::vector<Tick> v(200000);
  for (auto& t : v) t = static_cast<Tick>(std::max(1.0, d(rng)));
  check_against_sorted(v);
}

TEST_CASE("latency histogram: percentiles over many decades (log bins)", "[latency]") {
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<double> e(std::log(1.0), std::log(1e15));  // 1 ps .. 1000 s
  std::vector<Tick> v(100000);
  for (auto& t : v) t = static_cast<Tick>(std::exp(e(rng)));
  check_against_sorted(v);
}

TEST_CASE("latency histogram: a heavy tail past the 1 ns range", "[latency]") {
  std::mt19937_64 rng(3);
  std::exponential_distribution<double> d(1.0 / 50e6);  // ps: mean 50 us
  std::vector<Tick> v(100000);
  for (auto& t : v) t = 100000000 + static_cast<Tick>(d(rng));
  check_against_sorted(v);
}

TEST_CASE("latency histogram: few samples, equal samples, extremes", "[latency]") {
  check_against_sorted({1704000});
  check_against_sorted({5, 5, 5, 5});
  check_against_sorted({0, ~Tick(0), 1000, 131072000, 131073000, 131071999});
  LatencyHistogram empty;
  CHECK(empty.count() == 0);
  CHECK(empty.percentile_ns(50) == 0);
  CHECK(empty.mean_ns() == 0);
  CHECK(empty.bins().empty());
}

TEST_CASE("latency histogram: bins list every sample once, in order", "[latency]") {
  LatencyHistogram h;
  std::vector<Tick> v = {1500, 1999, 2000, 2000, 999, 200000000, 200000000};
  for (Tick t : v) h.add(t);
  auto b = h.bins();
  uint64_t total = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    total += b[i].second;
    if (i) CHECK(b[i - 1].first < b[i].first);
  }
  CHECK(total == v.size());
  REQUIRE(b.size() == 4);
  CHECK(b[0] == std::make_pair(uint64_t(0), uint64_t(1)));  // 999 ps
  CHECK(b[1] == std::make_pair(uint64_t(1), uint64_t(2)));  // 1500, 1999 ps
  CHECK(b[2] == std::make_pair(uint64_t(2), uint64_t(2)));  // 2000 ps twice
  CHECK(b[3].first <= 200000);                              // 200 us, a log bin
  CHECK(b[3].first + LatencyHistogram::bin_width_ns(200000) > 200000);
  CHECK(LatencyHistogram::bin_width_ns(200000) == 2);
}
