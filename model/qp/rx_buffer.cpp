#include "model/qp/rx_buffer.h"

#include <algorithm>

#include "model/core/hot.h"
#include "model/core/log.h"

namespace rn::qp {

RxBuffer::RxBuffer(const NicEnv& env)
    : env_(env),
      stats_(env.sim.stats, env.name + ".rx_buffer",
             "receive buffer: frames held from arrival until their payload is in host memory"),
      drops_(stats_.counter("drops", "count", "frames dropped on arrival: the buffer was full")),
      drop_bytes_(
          stats_.counter("drop_bytes", "B", "bytes of the frames dropped for want of room")),
      peak_(stats_.counter("peak", "B", "most bytes held at once")) {
  ring_.resize(256);
}

RxBuffer::~RxBuffer() { env_.sim.stats.remove(&stats_); }

bool RxBuffer::refuse(uint32_t bytes) {
  // No room: the frame is lost, as at a port without flow control.
  ++drops_;
  drop_bytes_ += bytes;
  RN_LOG(env_.sim, LogCat::kError, env_.name,
         "receive buffer full ({} of {} B held): frame dropped", held_bytes_,
         env_.params.rx_buffer_bytes);
  return false;
}

void RxBuffer::grow() {
  std::vector<Held> bigger(ring_.size() * 2);
  for (size_t i = 0; i < count_; ++i) bigger[i] = ring_[(head_ + i) & (ring_.size() - 1)];
  ring_.swap(bigger);
  head_ = 0;
}

RN_HOT Tick RxBuffer::place(pcie::DmaPort& dma, const xlate::SegList& segs, net::Frame* f,
                            uint32_t off, uint32_t len, Tick at, net::FramePool& pool) {
  (void)len;  // the segments cover exactly the payload
  const Tick landed = dma.dma_write_borrowed(
      reinterpret_cast<const pcie::SgEntry*>(segs.seg), segs.n, f->data + off, at,
      [&pool, f] { pool.put(f); }, &f->payload_page);
  hold_until(landed, f->len);
  return landed;
}

}  // namespace rn::qp
