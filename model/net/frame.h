// Frame buffers: whole Ethernet frames as bytes (without FCS), handed by pointer from the sender
// through the link to the receiver, so no frame is copied on the way. Pooled: no allocation once
// the pool is warm.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "model/core/page_ref.h"
#include "model/core/units.h"

namespace rn::net {

struct alignas(64) Frame {
  static constexpr size_t kCapacity = 9216 + 64;  // jumbo frames and some headroom
  uint32_t len = 0;
  // Simulator metadata: the ICRC in the frame was computed by the framing layer over exactly
  // these bytes, and nothing has changed them since. Set by the sender right after wrap(); a
  // receiver then need not recompute the ICRC (same bytes, same function, same answer: it saves
  // a CRC of every payload). Anything that changes a frame's bytes in flight (an error injector,
  // a switch rewriting headers) must clear it, and the receiver's check then runs in full.
  bool icrc_sealed = false;
  // Simulator metadata: if set, the frame's transport payload is exactly the 4096 bytes of this
  // page of a host memory (the sender's DMA read took the reference instead of the bytes), and
  // a receiver may map that page instead of copying the payload (sim.share_pages). Released when
  // the frame returns to its pool. Anything that changes the payload in flight must
  // materialize() the frame, then release it.
  PageRef payload_page;
  // If not 0: the payload's 4096 bytes were never copied into `data` (they would start at
  // data[ext_off]): they are payload_page's. Who needs them in `data` calls materialize().
  uint16_t ext_off = 0;
  bool payload_external() const { return ext_off != 0; }
  void materialize() {
    if (ext_off) std::memcpy(data + ext_off, payload_page.page, 4096);
    ext_off = 0;
  }
  // Before anything changes a frame's bytes in flight (an error injector, a switch rewriting
  // headers, a link carrying it out of the process): its payload into `data`, its page reference
  // and its seal dropped. The receiver then checks the ICRC in full and copies the payload.
  void unseal() {
    materialize();
    payload_page.release();
    icrc_sealed = false;
  }
  // data starts 10 bytes past a 64-byte boundary, so that the payload of a RoCEv2 packet over
  // IPv4 without extension headers (after Ethernet 14 + IPv4 20 + UDP 8 + BTH 12 = 54 bytes)
  // starts on one: the copies of payloads from and to host memory run faster.
  static constexpr size_t kDataAlign = 10;
  static constexpr size_t kMetaBytes = 34;  // the fields above (checked below)
  uint8_t pad_[128 + kDataAlign - kMetaBytes];
  uint8_t data[kCapacity];
};
static_assert(offsetof(Frame, pad_) == Frame::kMetaBytes, "Frame::kMetaBytes");
static_assert(offsetof(Frame, data) % 64 == Frame::kDataAlign, "payload alignment");

class FramePool {
 public:
  Frame* get() {
    if (free_.empty()) {
      all_.push_back(std::make_unique<Frame>());
      return all_.back().get();
    }
    Frame* f = free_.back();
    free_.pop_back();
    return f;
  }
  void put(Frame* f) {
    f->len = 0;
    f->icrc_sealed = false;
    f->payload_page.release();
    f->ext_off = 0;
    free_.push_back(f);
  }
  size_t allocated() const { return all_.size(); }
  size_t in_use() const { return all_.size() - free_.size(); }

 private:
  std::vector<std::unique_ptr<Frame>> all_;
  std::vector<Frame*> free_;
};

// Where a link delivers frames: a NIC port (or later a switch port). Takes ownership of the frame
// and returns it to the pool when done.
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual void receive(Frame* f) = 0;
  // A hint, called when a frame toward this sink starts out on the link (it arrives later): the
  // receiver may start loading the simulator's own state it will need for it into the CPU cache.
  // Must not change anything the model can observe.
  virtual void on_the_way(const Frame*) {}
};

}  // namespace rn::net
