#include "model/core/stats.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model/core/hot.h"

namespace rn::stats {

size_t Histogram::bucket_of(uint64_t v) {
  if (v < kSub) return static_cast<size_t>(v);
  int msb = 63 - __builtin_clzll(v);  // >= kSubBits
  int shift = msb - kSubBits;         // keep kSubBits+1 significant bits
  uint64_t sub = (v >> shift) & (kSub - 1);
  return static_cast<size_t>((shift + 1) * kSub + sub);
}

uint64_t Histogram::bucket_value(size_t b) {
  if (b < kSub) return b;
  size_t shift = b / kSub - 1;
  uint64_t sub = b % kSub;
  uint64_t lo = (uint64_t(kSub) + sub) << shift;
  uint64_t width = uint64_t(1) << shift;
  return lo + width / 2;  // middle of the bucket
}

RN_HOT void Histogram::add(uint64_t v) {
  ++buckets_[bucket_of(v)];
  ++count_;
  sum_ += v;
  min_ = std::min(min_, v);
  max_ = std::max(max_, v);
}

uint64_t Histogram::percentile(double p) const {
  if (count_ == 0) return 0;
  if (p <= 0) return min_;
  if (p >= 100) return max_;
  // Nearest rank: the smallest value with at least p% of the samples at or below it.
  uint64_t rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    seen += buckets_[b];
    if (seen >= rank) return std::clamp(bucket_value(b), min_, max_);
  }
  return max_;
}

void Histogram::reset() {
  std::fill(buckets_.begin(), buckets_.end(), 0);
  count_ = sum_ = max_ = 0;
  min_ = ~uint64_t(0);
}

Group::Group(Registry& reg, std::string name, std::string desc)
    : name_(std::move(name)), desc_(std::move(desc)) {
  reg.add(this);
}

uint64_t& Group::counter(const std::string& name, const std::string& unit,
                         const std::string& desc) {
  auto& e = entries_.emplace_back();
  e.name = name;
  e.unit = unit;
  e.desc = desc;
  e.kind = Entry::kCounter;
  return e.value;
}

void Group::formula(const std::string& name, const std::string& unit, const std::string& desc,
                    std::function<double()> fn) {
  auto& e = entries_.emplace_back();
  e.name = name;
  e.unit = unit;
  e.desc = desc;
  e.kind = Entry::kFormula;
  e.fn = std::move(fn);
}

Histogram& Group::histogram(const std::string& name, const std::string& unit,
                            const std::string& desc) {
  auto& e = entries_.emplace_back();
  e.name = name;
  e.unit = unit;
  e.desc = desc;
  e.kind = Entry::kHistogram;
  e.hist = std::make_unique<Histogram>();
  return *e.hist;
}

nlohmann::json Group::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& e : entries_) {
    nlohmann::json v;
    switch (e.kind) {
      case Entry::kCounter:
        v = {{"value", e.value}, {"unit", e.unit}, {"desc", e.desc}};
        break;
      case Entry::kFormula: {
        double x = e.fn();
        v = {{"value", x}, {"unit", e.unit}, {"desc", e.desc}};
        break;
      }
      case Entry::kHistogram: {
        const Histogram& h = *e.hist;
        v = {{"count", h.count()},      {"min", h.min()},          {"mean", h.mean()},
             {"p50", h.percentile(50)}, {"p99", h.percentile(99)}, {"p999", h.percentile(99.9)},
             {"max", h.max()},          {"unit", e.unit},          {"desc", e.desc}};
        break;
      }
    }
    j[e.name] = std::move(v);
  }
  return j;
}

void Registry::remove(Group* g) {
  groups_.erase(std::remove(groups_.begin(), groups_.end(), g), groups_.end());
}

nlohmann::json Registry::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const Group* g : groups_) {
    if (j.contains(g->name())) throw std::logic_error("duplicate stats group name: " + g->name());
    j[g->name()] = g->to_json();
  }
  return j;
}

}  // namespace rn::stats
