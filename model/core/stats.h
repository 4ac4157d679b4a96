// Statistics: named groups per block, each entry with a unit and a description. Counters are
// plain integers incremented on the hot path; formulas are evaluated when the stats are written.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rn::stats {

// Log-linear histogram with fixed memory (no allocation per sample): values are bucketed by
// power of two with 128 linear sub-buckets each, so a percentile is within 0.8% of the truth.
class Histogram {
 public:
  void add(uint64_t v);
  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const {
    return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0;
  }
  // p in [0, 100]; returns the representative value of the bucket holding that rank.
  uint64_t percentile(double p) const;
  void reset();

 private:
  static constexpr int kSub = 128;  // sub-buckets per power of two
  static constexpr int kSubBits = 7;
  static size_t bucket_of(uint64_t v);
  static uint64_t bucket_value(size_t b);
  std::vector<uint64_t> buckets_ = std::vector<uint64_t>(64 * kSub, 0);
  uint64_t count_ = 0, sum_ = 0, min_ = ~uint64_t(0), max_ = 0;
};

class Registry;

class Group {
 public:
  Group(Registry& reg, std::string name, std::string desc);
  const std::string& name() const { return name_; }
  // Returns a reference with a stable address: increment it directly on the hot path.
  uint64_t& counter(const std::string& name, const std::string& unit, const std::string& desc);
  void formula(const std::string& name, const std::string& unit, const std::string& desc,
               std::function<double()> fn);
  Histogram& histogram(const std::string& name, const std::string& unit, const std::string& desc);
  nlohmann::json to_json() const;

 private:
  struct Entry {
    std::string name, unit, desc;
    enum Kind { kCounter, kFormula, kHistogram } kind;
    uint64_t value = 0;
    std::function<double()> fn;
    std::unique_ptr<Histogram> hist;
  };
  std::string name_, desc_;
  std::deque<Entry> entries_;
};

class Registry {
 public:
  // Groups register themselves; names are made unique by the caller (instance paths).
  void add(Group* g) { groups_.push_back(g); }
  void remove(Group* g);
  nlohmann::json to_json() const;

 private:
  std::vector<Group*> groups_;
};

}  // namespace rn::stats
