// The NIC's receive buffer: nic.rx_buffer bytes that hold each arriving frame from its arrival
// until its payload is in host memory (the landing time the bridge computed for the DMA write),
// or until it is processed, for frames without payload to place. A frame that does not fit is
// dropped on arrival, as at a port without flow control (PFC comes later).
#pragma once
#include <algorithm>
#include <vector>

#include "bridge/pcie/pcie_bridge.h"
#include "model/core/stats.h"
#include "model/net/frame.h"
#include "model/qp/qp_context.h"
#include "model/translation/stage.h"

namespace rn::qp {

class RxBuffer {
 public:
  explicit RxBuffer(const NicEnv& env);
  ~RxBuffer();
  // A frame of `bytes` arrives: true if it fits (it is not held yet: the caller holds it by one of
  // the calls below, or it leaves when processed), false if it is dropped (counted).
  bool admit(uint32_t bytes) {
    release_landed();
    return held_bytes_ + bytes <= env_.params.rx_buffer_bytes ? true : refuse(bytes);
  }
  // A frame whose payload lands in host memory at `until`.
  void hold_until(Tick until, uint32_t bytes) {
    if (count_ == ring_.size()) grow();
    // DMA writes land in issue order; max() keeps the ring in time order should one not.
    placed_until_ = std::max(placed_until_, until);
    ring_[(head_ + count_++) & (ring_.size() - 1)] = Held{placed_until_, bytes};
    hold(bytes);
  }
  // A frame waiting to be processed (behind a stall), and the same frame taken out again.
  void hold(uint32_t bytes) {
    held_bytes_ += bytes;
    peak_ = std::max(peak_, held_bytes_);
  }
  void unhold(uint32_t bytes) { held_bytes_ -= bytes; }
  uint64_t held() const { return held_bytes_; }
  // Writes len payload bytes of received frame f (from f->data + off) to host memory straight
  // from the frame, over segs, issued at `at`; holds the frame's bytes until the write lands and
  // gives the frame back to `pool` then. Returns when it lands.
  Tick place(pcie::DmaPort& dma, const xlate::SegList& segs, net::Frame* f, uint32_t off,
             uint32_t len, Tick at, net::FramePool& pool);

 private:
  struct Held {
    Tick until;  // the payload's DMA write lands
    uint32_t bytes;
  };
  void release_landed() {
    const Tick t = env_.now();
    while (count_ && ring_[head_].until <= t) {
      held_bytes_ -= ring_[head_].bytes;
      head_ = (head_ + 1) & (ring_.size() - 1);
      --count_;
    }
  }
  bool refuse(uint32_t bytes);  // counts a frame dropped for want of room; false
  void grow();                  // doubles the ring (while warming up; never once large enough)
  const NicEnv& env_;
  uint64_t held_bytes_ = 0;
  std::vector<Held> ring_;  // frames whose payload is on its way to memory: a ring of 2^k
  size_t head_ = 0, count_ = 0;
  Tick placed_until_ = 0;  // the last hold's landing time

  stats::Group stats_;
  uint64_t& drops_;
  uint64_t& drop_bytes_;
  uint64_t& peak_;
};

}  // namespace rn::qp
