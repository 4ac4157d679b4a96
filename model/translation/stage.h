// What the NIC's engines see of the translation stage: one lookup, whose answer may come later
// than the question. The behavioural table (MrTable) answers at once, valid `lookup_latency`
// later. A cache that misses, or a Verilated RTL block, may instead answer kPending: the engine
// stalls that work, and the stage calls every waker (add_waker) once answers that were pending
// can be had; the engines then ask again. The translation issue's caches and IOMMU, and the RTL
// issue's translation cache, plug in here.
#pragma once
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "model/core/units.h"

namespace rn::xlate {

enum class Status : uint8_t {
  kOk,
  kBadKey,
  kPdMismatch,
  kAccess,
  kBounds,
  kTooManySegments,
  kPending,  // not known yet: ask again after the stage's wakers are called
};
const char* to_string(Status s);

struct Segment {
  uint64_t addr;
  uint32_t len;
};

// A fixed-capacity list of physical segments: no allocation on the per-packet path. One packet
// carries at most 4096 bytes from at most 31 SGEs (a 512-byte receive WQE); the piece of each
// SGE in it is at most 4096 bytes and so crosses at most one page boundary: at most 62 segments.
struct SegList {
  static constexpr int kMax = 64;
  Segment seg[kMax];
  int n = 0;
  void clear() { n = 0; }
};

class Stage {
 public:
  virtual ~Stage() = default;
  // Checks and translates [va, va+len) of the region named by key: the key exists, belongs to PD
  // pdn, grants the access flags `need` (0 for local reads) and covers the range. Appends the bus
  // segments to `out` (null: only checks). On kOk, *ready is when the answer is valid (>= now).
  virtual Status lookup(uint32_t key, uint32_t pdn, uint64_t va, uint64_t len, uint32_t need,
                        SegList* out, Tick* ready) = 0;
  // A hint for the simulator's speed (load the key's entry into the CPU cache); no effect.
  virtual void prefetch(uint32_t) const {}
  // `w` is called whenever lookups that answered kPending may be asked again.
  void add_waker(std::function<void()> w) { wakers_.push_back(std::move(w)); }

 protected:
  void wake() const {
    for (const auto& w : wakers_) w();
  }

 private:
  std::vector<std::function<void()>> wakers_;
};

}  // namespace rn::xlate
