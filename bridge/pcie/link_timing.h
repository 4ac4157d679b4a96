// Timing core of the PCIe bridge: a full-duplex PCIe link between the device
// (NIC) and the root complex, timed by computation (no events, no allocation on
// the hot path). Pure C++; the SystemC wrapper turns returned times into events.
//
// Every TLP is serialised at the TLP-layer rate of its direction (raw rate minus
// ACK / UpdateFC DLLP and SKIP overhead) in call order; each direction keeps its own
// busy-until time. Flow-control credits and read tags are in-order pools of release
// times. See README.md for the formulas and what is and is not modelled.
#pragma once

#include <cstdint>
#include <vector>

#include "bridge/pcie/params.h"
#include "bridge/pcie/tlp_split.h"
#include "model/core/units.h"

namespace rn::pcie {

// Time inside the link model is fixed point: picoseconds x 2^32. Sub-picosecond remainders are
// carried exactly, so k back-to-back TLPs take exactly k times one TLP however they are grouped
// (a transfer timed in one step gives the same times as TLP by TLP). 128 bits: no overflow.
__extension__ typedef unsigned __int128 FxTime;
constexpr int kFxBits = 32;
inline FxTime to_fx(Tick t) { return static_cast<FxTime>(t) << kFxBits; }
// Rounded up to the picosecond.
inline Tick ceil_fx(FxTime f) {
  return static_cast<Tick>((f + ((static_cast<FxTime>(1) << kFxBits) - 1)) >> kFxBits);
}

// A pool of `limit` units (credits or tags) whose consumed units come back in the
// order they were consumed, each batch at a known release time (monotonic).
// A run of equal items (k TLPs, u units each) is one entry: item j comes back at
// ceil(base + j x step) + offset. Fixed capacity: storage is allocated once by reset().
class CreditPool {
 public:
  void reset(uint32_t limit);  // 0 = infinite
  // Earliest time at which k more units are available (0 if available now). k <= limit.
  // Forgets what no later call can wait for (calls alternate with consume of the same k).
  Tick ready(uint32_t k) {
    if (limit_ == 0 || consumed_ + k <= limit_) return 0;
    // Units consumed before `need` must have come back.
    uint64_t need = consumed_ + k - limit_;
    while (count_ && ring_[head_].cum_end < need) pop();
    return count_ ? release_of(ring_[head_], need) : 0;
  }
  // ready(k) without forgetting anything a later, smaller request may still need: only batches
  // that no request of one unit or more can wait for again are dropped.
  Tick peek(uint32_t k) {
    if (limit_ == 0 || consumed_ + k <= limit_) return 0;
    drop_unneeded();
    // The first batch ending at or after `need`: cum_end grows along the ring, binary search.
    uint64_t need = consumed_ + k - limit_;
    size_t lo = 0, hi = count_;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (ring_[(head_ + mid) & mask_].cum_end < need) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo < count_ ? release_of(ring_[(head_ + lo) & mask_], need) : 0;
  }
  // Take k units, returned at `release`.
  void consume(uint32_t k, Tick release) { consume_run(1, k, to_fx(release), 0, 0); }
  // Take `items` x `units`; item j comes back at ceil(base + j x step) + offset.
  void consume_run(uint64_t items, uint32_t units, FxTime base, uint64_t step, Tick offset) {
    if (limit_ == 0) return;
    consumed_ += items * units;
    drop_unneeded();  // then fewer than `limit` batches remain: room for one more
    ring_[(head_ + count_) & mask_] = Entry{consumed_, items, units, base, step, offset};
    ++count_;
  }
  bool infinite() const { return limit_ == 0; }
  // k units can be asked for at once (ready(k) is defined).
  bool fits(uint64_t k) const { return limit_ == 0 || k <= limit_; }

 private:
  struct Entry {
    uint64_t cum_end;  // total units consumed up to and including this batch
    uint64_t items;
    uint32_t units;  // per item
    FxTime base;
    uint64_t step;
    Tick offset;
  };
  // Release time of the item holding unit number `need` (cumulative, from 1) of batch e.
  static Tick release_of(const Entry& e, uint64_t need) {
    uint64_t first = e.cum_end - e.items * e.units;  // units before the batch
    uint64_t j = e.items == 1 ? 0 : (need - first - 1) / e.units;
    return ceil_fx(e.base + static_cast<FxTime>(j) * e.step) + e.offset;
  }
  void pop() {
    head_ = (head_ + 1) & mask_;
    --count_;
  }
  // Batches whose units all lie before the oldest unit any request can wait for.
  void drop_unneeded() {
    if (consumed_ + 1 <= limit_) return;
    uint64_t need1 = consumed_ + 1 - limit_;
    while (count_ && ring_[head_].cum_end < need1) pop();
  }
  std::vector<Entry> ring_;  // power-of-two capacity >= limit
  size_t mask_ = 0;
  size_t head_ = 0, count_ = 0;
  uint64_t consumed_ = 0;
  uint32_t limit_ = 0;
};

// A pool of `limit` single units, each back at a known time, in the order taken: read tags (free
// once the last completion of the request has arrived; completions arrive in order) and
// non-posted header credits (one per MRd). The same answers as a CreditPool of single units,
// with a plain ring of times. limit 0 = infinite.
class UnitRing {
 public:
  void reset(uint32_t limit);
  // Earliest time at which k more units are free (0: free now). k <= limit.
  Tick ready(uint32_t k = 1) const {
    return limit_ == 0 || count_ + k <= limit_ ? 0
                                               : ring_[(head_ + count_ + k - limit_ - 1) & mask_];
  }
  // Take one unit, free again at `release` (not earlier than any taken before).
  void take(Tick release) {
    Local l(*this);
    l.take(release);
    l.store(*this);
  }
  bool fits(uint64_t k) const { return limit_ == 0 || k <= limit_; }

  // The ring's state in locals, for a loop of ready()/take() (the same answers): the compiler
  // keeps them in registers instead of reloading them after every store into the ring. Written
  // back by store().
  class Local {
   public:
    explicit Local(UnitRing& r)
        : ring_(r.ring_.data()),
          mask_(r.mask_),
          head_(r.head_),
          count_(r.count_),
          limit_(r.limit_) {}
    Tick ready() const {
      return limit_ == 0 || count_ + 1 <= limit_ ? 0 : ring_[(head_ + count_ - limit_) & mask_];
    }
    void take(Tick release) {
      if (limit_ == 0) return;
      if (count_ == limit_) {
        head_ = (head_ + 1) & mask_;
        --count_;
      }
      ring_[(head_ + count_) & mask_] = release;
      ++count_;
    }
    void store(UnitRing& r) const {
      r.head_ = head_;
      r.count_ = count_;
    }

   private:
    Tick* ring_;
    size_t mask_, head_, count_;
    uint32_t limit_;
  };

 private:
  std::vector<Tick> ring_;  // the last `limit` units taken, oldest first
  size_t mask_ = 0, head_ = 0, count_ = 0;
  uint32_t limit_ = 0;
};

// Translation at the root complex (an IOMMU): when the translation of a request for `addr` that
// arrives at `at` is done. The request's memory access starts then.
class RcTranslation {
 public:
  virtual ~RcTranslation() = default;
  virtual Tick ready(uint64_t addr, Tick at) = 0;
};

class LinkTiming {
 public:
  // Throws std::invalid_argument with Params::validate()'s message if invalid.
  // batched = false times every TLP on its own, even when no TLP of a transfer can wait for a
  // credit or a tag (the reference the batched timing is tested against; same results).
  explicit LinkTiming(const Params& p, bool batched = true);

  const Params& params() const { return p_; }
  double raw_gbps() const;  // GT/s x encoding x lanes
  double tlp_gbps() const;  // raw x (1 - 8/AckLimit - 8/FCLimit - 4/1538)
  double ps_per_byte() const { return ps_per_byte_; }  // at the TLP-layer rate

  // Device writes host memory: posted MWr TLPs upstream, MPS-aligned, never crossing
  // 4 KB. Returns the time the last byte is visible in host memory. len 0: returns now.
  Tick dma_write(Tick now, uint64_t addr, uint64_t len);
  // Device reads host memory: MRd TLPs upstream (MRRS-aligned, never crossing 4 KB),
  // each waiting for a free read tag and a non-posted header credit; completions
  // downstream as a root complex cuts them (MPS, RCB). Returns the time the last
  // completion byte has arrived at the device. len 0: returns now.
  Tick dma_read(Tick now, uint64_t addr, uint64_t len);
  // Requests are translated at the root complex by `t` (null: none, addresses are physical).
  // Translated transfers are timed TLP by TLP; posted writes stay in order (one delayed by its
  // translation holds back the writes behind it).
  void set_translation(RcTranslation* t) { xlat_ = t; }
  // Host CPU posted MMIO write (doorbell) of len bytes: returns arrival time at the device.
  Tick mmio_write(Tick now, uint32_t len);
  // Host CPU non-posted MMIO read of len (1..4096) bytes: returns the time the data
  // is back at the CPU (full round trip).
  Tick mmio_read(Tick now, uint32_t len);
  // Device posted 4-byte MWr upstream (MSI-X message): returns delivery time at the
  // root complex's target (as for a DMA write: + posted_write_latency).
  Tick msi(Tick now);

  struct DirStats {
    uint64_t tlps = 0;
    uint64_t payload_bytes = 0;  // data bytes carried (MWr / CplD payload)
    uint64_t wire_bytes = 0;     // TLP bytes incl. framing, headers, ECRC
    Tick busy_ps = 0;            // time spent serialising TLPs
  };
  struct Stalls {
    uint64_t tag_waits = 0;     // MRd TLPs that waited for a read tag
    Tick tag_wait_ps = 0;       // total time they waited beyond the link being free
    uint64_t credit_waits = 0;  // TLPs that waited for flow-control credits
    Tick credit_wait_ps = 0;
  };
  const DirStats& up() const { return up_.snapshot(); }      // device -> host
  const DirStats& down() const { return down_.snapshot(); }  // host -> device
  const Stalls& stalls() const { return stalls_; }
  Tick up_busy_until() const { return up_.busy_until(); }
  Tick down_busy_until() const { return down_.busy_until(); }

 private:
  struct Dir {
    FxTime busy = 0;  // busy-until
    FxTime busy_total = 0;
    mutable DirStats stats;
    // busy_ps is derived from busy_total only when read.
    const DirStats& snapshot() const {
      stats.busy_ps =
          static_cast<Tick>((busy_total + (static_cast<FxTime>(1) << (kFxBits - 1))) >> kFxBits);
      return stats;
    }
    // Credits advertised by the receiver of this direction.
    CreditPool ph, pd, cplh, cpld;
    UnitRing nph;
    Tick busy_until() const { return ceil_fx(busy); }
  };
  // Serialisation time of `wire` bytes.
  FxTime ser(uint64_t wire) const { return static_cast<FxTime>(wire) * ps_per_byte_fx_; }
  // Of one TLP (at most 4 KB of payload and its overheads: fits in 64 bits at any link rate).
  uint64_t ser1(uint32_t wire) const { return static_cast<uint64_t>(wire) * ps_per_byte_fx_; }
  // Serialise k TLPs (wire and payload bytes in total) back to back, the first no earlier than
  // `ready`; returns the exact start of the first. The last ends at start + ser(wire).
  FxTime send(Dir& d, Tick ready, uint64_t k, uint64_t wire, uint64_t payload);
  // One TLP: returns the time its last byte left.
  Tick send1(Dir& d, Tick ready, uint32_t wire, uint32_t payload) {
    return ceil_fx(send(d, ready, 1, wire, payload) + ser(wire));
  }
  // dma_write and dma_read TLP by TLP: when a TLP may wait for a credit, or batching is off.
  Tick dma_write_tlps(Tick now, uint64_t addr, uint64_t len);
  Tick dma_read_tlps(Tick now, uint64_t addr, uint64_t len);
  // Earliest start for a TLP needing header credits from h and data credits from dc.
  Tick wait_credits(Dir& d, Tick ready, CreditPool& h, CreditPool* dpool, uint32_t dcred);
  // Earliest start for an MRd needing a non-posted header credit.
  Tick wait_nph(Dir& d, Tick ready);
  // How the root complex cuts the completions of read request [a, a + n): count and wire bytes;
  // returns their serialisation time.
  FxTime cpl_cut(uint64_t a, uint32_t n, uint64_t* k, uint64_t* wire) const;
  // The completions of one read request [a, a + n) whose data is ready at data_at, TLP by TLP with
  // their credits: returns the
  // time the last one has arrived at the device.
  Tick completions(uint64_t a, uint32_t n, Tick data_at);

  Params p_;
  bool batched_;
  RcTranslation* xlat_ = nullptr;
  Tick last_visible_ = 0;  // translated writes: when the last one issued is visible
  double raw_gbps_, tlp_gbps_, ps_per_byte_;
  uint64_t ps_per_byte_fx_;  // fixed point
  Dir up_, down_;
  UnitRing tags_;
  // Completions of a whole MRRS-aligned request of MRRS bytes: always cut the same way.
  uint64_t full_req_cpls_ = 0, full_req_cpl_wire_ = 0;
  FxTime full_req_cpl_ser_ = 0;
  Stalls stalls_;
};

}  // namespace rn::pcie
