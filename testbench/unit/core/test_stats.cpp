// Unit tests of rn::stats (model/core/stats.h): the log-linear Histogram against exact sorted
// values, count/min/max/mean, reset; Group and Registry JSON.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "model/core/stats.h"

using rn::stats::Group;
using rn::stats::Histogram;
using rn::stats::Registry;

namespace {

// Compares every percentile of `h` with the exact value from the sorted samples. The rank used is
// p/100*(n-1); the histogram may pick the sample on either side of it, each within `tol`.
void check_percentiles(const Histogram& h, std::vector<uint64_t> v, double tol) {
  std::sort(v.begin(), v.end());
  const double n1 = static_cast<double>(v.size() - 1);
  for (double p :
       {0.1, 1.0, 5.0, 10.0, 25.0, 33.3, 50.0, 66.6, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99}) {
    double x = p / 100.0 * n1;
    uint64_t lo = v[static_cast<size_t>(std::floor(x))];
    uint64_t hi = v[static_cast<size_t>(std::ceil(x))];
    uint64_t got = h.percentile(p);
    INFO("p" << p << ": histogram " << got << ", exact between " << lo << " and " << hi
             << ", tolerance " << tol * 100 << "%");
    CHECK(static_cast<double>(got) >= static_cast<double>(lo) * (1 - tol));
    CHECK(static_cast<double>(got) <= static_cast<double>(hi) * (1 + tol));
  }
  CHECK(h.percentile(0) == v.front());
  CHECK(h.percentile(100) == v.back());
}

std::vector<uint64_t> log_uniform(std::mt19937_64& rng, size_t n, double lo, double hi) {
  std::uniform_real_distribution<double> e(std::log(lo), std::log(hi));
  std::vector<uint64_t> v(n);
  for (auto& x : v) x = static_cast<uint64_t>(std::llround(std::exp(e(rng))));
  return v;
}

}  // namespace

TEST_CASE("histogram: percentiles within 0.8% of the exact values over 1..1e12",
          "[stats][histogram]") {
  for (uint64_t seed : {1ull, 2ull, 3ull, 12345ull}) {
    std::mt19937_64 rng(seed);
    std::vector<std::vector<uint64_t>> sets;
    sets.push_back(log_uniform(rng, 20000, 1, 1e12));  // spans every power of two up to 2^40
    sets.push_back(log_uniform(rng, 777, 1, 1e12));    // few samples: sparse buckets
    {
      std::uniform_int_distribution<uint64_t> u(1, 1000000000000ull);
      std::vector<uint64_t> v(10000);
      for (auto& x : v) x = u(rng);
      sets.push_back(v);
    }
    {
      // Latency-like: a tight cluster around 1.2 us (in ps) with a long tail.
      std::lognormal_distribution<double> ln(std::log(1.2e6), 0.3);
      std::vector<uint64_t> v(10000);
      for (auto& x : v) x = static_cast<uint64_t>(std::min(1e12, std::max(1.0, ln(rng))));
      sets.push_back(v);
    }
    for (size_t k = 0; k < sets.size(); ++k) {
      INFO("seed " << seed << ", data set " << k);
      Histogram h;
      for (auto x : sets[k]) h.add(x);
      check_percentiles(h, sets[k], 0.008);
    }
  }
}

TEST_CASE("histogram: a percentile is the middle of its bucket, within 0.4% (model/core/README.md)",
          "[stats][histogram]") {
  // A value v between a smaller minimum and a larger maximum: the median is v's bucket value,
  // not clamped. Bucket edges (2^k and 2^k + j*2^(k-7)) are the worst cases.
  std::mt19937_64 rng(7);
  std::vector<uint64_t> values = log_uniform(rng, 3000, 2, 1e12);
  for (int k = 8; k < 40; ++k)
    for (uint64_t j : {0, 1, 63, 127}) {
      uint64_t lo = (uint64_t(1) << k) + j * (uint64_t(1) << (k - 7));
      values.push_back(lo);
      values.push_back(lo + (uint64_t(1) << (k - 7)) - 1);  // last value of the bucket
    }
  for (uint64_t v : values) {
    Histogram h;
    h.add(1);
    for (int i = 0; i < 3; ++i) h.add(v);
    h.add(uint64_t(1) << 50);
    uint64_t got = h.percentile(50);
    INFO("value " << v << ", median " << got);
    CHECK(std::fabs(static_cast<double>(got) - static_cast<double>(v)) <=
          0.004 * static_cast<double>(v));
  }
  // And over a dense random data set, against the sorted samples.
  auto dense = log_uniform(rng, 100000, 1000, 1e9);
  Histogram h;
  for (auto x : dense) h.add(x);
  check_percentiles(h, dense, 0.004);
}

TEST_CASE("histogram: values below 128 are exact", "[stats][histogram]") {
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<uint64_t> u(0, 127);
  std::vector<uint64_t> v(3000);
  for (auto& x : v) x = u(rng);
  Histogram h;
  for (auto x : v) h.add(x);
  check_percentiles(h, v, 0.0);
}

TEST_CASE("histogram: one value, or all equal: every percentile is that value",
          "[stats][histogram]") {
  for (uint64_t x : {uint64_t(0), uint64_t(1), uint64_t(127), uint64_t(128), uint64_t(1000),
                     uint64_t(123456789), uint64_t(999999999999), ~uint64_t(0)}) {
    Histogram h;
    h.add(x);
    h.add(x);
    h.add(x);
    for (double p : {0.0, 1.0, 50.0, 99.0, 100.0}) CHECK(h.percentile(p) == x);
    CHECK(h.min() == x);
    CHECK(h.max() == x);
  }
}

TEST_CASE("histogram: count, min, max and mean are exact", "[stats][histogram]") {
  Histogram h;
  CHECK(h.count() == 0);
  CHECK(h.min() == 0);
  CHECK(h.max() == 0);
  CHECK(h.mean() == 0);
  CHECK(h.percentile(50) == 0);
  std::mt19937_64 rng(5);
  auto v = log_uniform(rng, 10001, 1, 1e12);
  long double sum = 0;
  for (auto x : v) {
    h.add(x);
    sum += x;
  }
  CHECK(h.count() == v.size());
  CHECK(h.min() == *std::min_element(v.begin(), v.end()));
  CHECK(h.max() == *std::max_element(v.begin(), v.end()));
  CHECK(h.mean() == Approx(static_cast<double>(sum / v.size())).epsilon(1e-12));

  Histogram small;
  for (uint64_t x : {10, 20, 30, 41}) small.add(x);
  CHECK(small.count() == 4);
  CHECK(small.min() == 10);
  CHECK(small.max() == 41);
  CHECK(small.mean() == Approx(25.25));
}

TEST_CASE("histogram: reset forgets every sample", "[stats][histogram]") {
  Histogram h;
  for (uint64_t x : {100, 1000, 10000, 100000}) h.add(x);
  h.reset();
  CHECK(h.count() == 0);
  CHECK(h.min() == 0);
  CHECK(h.max() == 0);
  CHECK(h.mean() == 0);
  CHECK(h.percentile(50) == 0);
  // New samples after a reset: min, max, mean and percentiles only see them.
  for (uint64_t x : {5000, 6000, 7000}) h.add(x);
  CHECK(h.count() == 3);
  CHECK(h.min() == 5000);
  CHECK(h.max() == 7000);
  CHECK(h.mean() == Approx(6000));
  CHECK(h.percentile(0) == 5000);
  CHECK(h.percentile(1) == Approx(5000).epsilon(0.008));
  CHECK(h.percentile(50) == Approx(6000).epsilon(0.008));
  CHECK(h.percentile(100) == 7000);
}

TEST_CASE("stats: groups write counters, formulas and histograms to JSON", "[stats][registry]") {
  Registry reg;
  Group g(reg, "host0.nic", "a NIC");
  uint64_t& pkts = g.counter("packets", "count", "packets sent");
  double factor = 2.0;
  g.formula("doubled", "count", "twice the packets",
            [&] { return factor * static_cast<double>(pkts); });
  Histogram& lat = g.histogram("latency", "ps", "per packet");
  pkts += 21;
  for (uint64_t x : {100, 200, 300}) lat.add(x);
  // Counter references stay valid while more entries are added.
  for (int i = 0; i < 100; ++i) g.counter("extra" + std::to_string(i), "count", "");
  ++pkts;

  nlohmann::json j = reg.to_json();
  REQUIRE(j.contains("host0.nic"));
  const auto& n = j["host0.nic"];
  CHECK(n["packets"]["value"] == 22);
  CHECK(n["packets"]["unit"] == "count");
  CHECK(n["packets"]["desc"] == "packets sent");
  CHECK(n["doubled"]["value"].get<double>() == Approx(44));  // evaluated when written
  CHECK(n["latency"]["count"] == 3);
  CHECK(n["latency"]["min"] == 100);
  CHECK(n["latency"]["max"] == 300);
  CHECK(n["latency"]["p50"] == 200);
  CHECK(n["latency"]["mean"].get<double>() == Approx(200));
  for (const char* k : {"p99", "p999", "unit", "desc"}) CHECK(n["latency"].contains(k));
}

TEST_CASE("stats: duplicate group names throw, removed groups disappear", "[stats][registry]") {
  Registry reg;
  Group a(reg, "same", "");
  {
    Group b(reg, "same", "");
    CHECK_THROWS_AS(reg.to_json(), std::logic_error);
    reg.remove(&b);
  }
  nlohmann::json j = reg.to_json();
  CHECK(j.size() == 1);
  reg.remove(&a);
  CHECK(reg.to_json().empty());
}
