// The tags of a set-associative cache with LRU replacement: which lines are on chip, not their
// data (the model keeps the data elsewhere; a cache decides only what costs a miss). A line is
// named by a 64-bit tag; its set is a hash of the tag (as hardware hashes its index bits, so that
// tables whose entries lie at aligned addresses do not crowd into a few sets). Used by the NIC's
// context caches.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rn {

// "" if `entries` lines (1..max) in sets of `ways` make a power-of-two number of sets; else what
// is wrong, naming the keys.
inline std::string check_tag_array(const char* key, uint32_t entries, const char* ways_key,
                                   uint32_t ways, uint32_t max = 65536) {
  auto pow2 = [](uint32_t v) { return v && !(v & (v - 1)); };
  if (entries < 1 || entries > max)
    return std::string(key) + ": " + std::to_string(entries) + " is not in 1.." +
           std::to_string(max);
  if (ways < 1 || ways > entries || entries % ways || !pow2(entries / ways))
    return std::string(ways_key) + ": " + std::to_string(ways) + " does not divide " + key + " = " +
           std::to_string(entries) + " into a power-of-two number of sets";
  return "";
}

class TagArray {
 public:
  struct Line {
    uint64_t tag = 0;
    uint64_t used = 0;  // LRU stamp
    bool valid = false;
    bool fresh = false;  // filled and not looked at since (its first hit is the miss's own)
    bool bad = false;    // its fill failed (the memory read returned an error)
  };
  // `entries` lines in sets of `ways`; entries / ways must be a power of two.
  void reset(uint32_t entries, uint32_t ways) {
    ways_ = ways;
    sets_ = entries / ways;
    set_bits_ = 0;
    while ((1u << set_bits_) < sets_) ++set_bits_;
    lines_.assign(entries, Line{});
    clock_ = 0;
  }
  // The line holding tag (marked most recently used), or null.
  Line* find(uint64_t tag) {
    Line* set = set_of(tag);
    for (uint32_t w = 0; w < ways_; ++w)
      if (set[w].valid && set[w].tag == tag) {
        set[w].used = ++clock_;
        return &set[w];
      }
    return nullptr;
  }
  // Puts tag in its set (an invalid line, else the least recently used); returns the line.
  // Returns true in *evicted if a valid line made room.
  Line* insert(uint64_t tag, bool* evicted) {
    Line* set = set_of(tag);
    Line* victim = &set[0];
    for (uint32_t w = 0; w < ways_; ++w) {
      if (set[w].valid && set[w].tag == tag) {
        victim = &set[w];
        break;
      }
      if (!set[w].valid) {
        victim = &set[w];
        break;
      }
      if (set[w].used < victim->used) victim = &set[w];
    }
    *evicted = victim->valid && victim->tag != tag;
    *victim = Line{tag, ++clock_, true, false, false};
    return victim;
  }
  // Drops every line whose tag is in [lo, hi); returns how many.
  uint64_t drop(uint64_t lo, uint64_t hi) {
    uint64_t n = 0;
    if (hi - lo <= 4ull * ways_ * sets_) {  // a few tags: their sets only
      for (uint64_t t = lo; t < hi; ++t) {
        Line* set = set_of(t);
        for (uint32_t w = 0; w < ways_; ++w)
          if (set[w].valid && set[w].tag == t) {
            set[w].valid = false;
            ++n;
          }
      }
      return n;
    }
    for (Line& l : lines_)
      if (l.valid && l.tag >= lo && l.tag < hi) {
        l.valid = false;
        ++n;
      }
    return n;
  }
  void clear() {
    for (Line& l : lines_) l.valid = false;
  }
  uint32_t entries() const { return static_cast<uint32_t>(lines_.size()); }

 private:
  Line* set_of(uint64_t tag) {
    if (set_bits_ == 0) return lines_.data();
    const uint64_t h = tag * 0x9E3779B97F4A7C15ull;  // Fibonacci hashing: the top bits
    return &lines_[(h >> (64 - set_bits_)) * ways_];
  }
  std::vector<Line> lines_;
  uint32_t sets_ = 1, ways_ = 1, set_bits_ = 0;
  uint64_t clock_ = 0;
};

}  // namespace rn
