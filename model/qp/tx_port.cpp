#include "model/qp/tx_port.h"

#include <algorithm>

#include "model/core/hot.h"
#include "model/wire/transport.h"

namespace rn::qp {

TxPort::TxPort(const NicEnv& env, net::FramePool& pool, const PortFraming& framing)
    : env_(env),
      pool_(pool),
      framing_(framing),
      stats_(env.sim.stats, env.name + ".tx", "transmit port: packet pipeline and control frames"),
      frames_(stats_.counter("frames", "count", "packets sent through the pipeline")),
      control_frames_(stats_.counter("control_frames", "count", "ACKs and NAKs sent")),
      stalls_link_(stats_.counter("stalls_link", "count", "pipeline waits: link queue full")),
      loopback_frames_(stats_.counter("loopback_frames", "count",
                                      "frames to the NIC's own address, looped back inside")),
      dropped_(stats_.counter("dropped", "count",
                              "pipeline packets not sent: their payload's DMA read failed")) {
  depth_ = std::max<uint32_t>(1, env.params.tx_pipeline_depth);
  ring_.resize(pow2_ceil(depth_));
  mask_ = static_cast<uint32_t>(ring_.size() - 1);
}

TxPort::~TxPort() {
  env_.sim.stats.remove(&stats_);
  for (uint32_t i = head_; i != tail_; ++i)
    if (net::Frame* f = ring_[i & mask_].f) pool_.put(f);
}

RN_HOT void TxPort::kick() {
  if (kick_ != Kick::kIdle) {
    kick_ = Kick::kAgain;
    return;
  }
  kick_ = Kick::kRunning;
  if (backlog_limit_ == 0 && link_)
    backlog_limit_ =
        env_.params.tx_queue_frames *
        link_->frame_time(static_cast<uint32_t>(framing_.frame_len(wire::largest_packet(4096))));
  do {
    kick_ = Kick::kRunning;
    while (has_room()) {
      Source* src = nullptr;  // the next source with work, round robin
      const size_t n = sources_.size();
      for (size_t k = 0, i = next_source_; k < n; ++k) {
        Source* s = sources_[i];
        if (++i == n) i = 0;
        if (s->has_work()) {
          src = s;
          next_source_ = i;
          break;
        }
      }
      if (!src) break;
      if (link_->backlog(side_) > backlog_limit_) {
        ++stalls_link_;
        if (!wake_pending_) {
          wake_pending_ = true;
          env_.sim.eq.at(link_->busy_until(side_) - backlog_limit_, [this] {
            wake_pending_ = false;
            kick();
          });
        }
        break;
      }
      src->produce();
    }
  } while (kick_ == Kick::kAgain);
  kick_ = Kick::kIdle;
}

RN_HOT void TxPort::drain() {
  bool sent = false;
  while (head_ != tail_) {
    Slot& s = ring_[head_ & mask_];
    if (!s.ready) break;
    if (s.drop) {
      pool_.put(s.f);
      ++dropped_;
      s.drop = false;
    } else {
      wrap(s.f, s.tlen, s.path);
      out(s.f, s.path, now() + env_.params.tx_pipeline_latency);
      ++frames_;
    }
    if (s.owner) s.owner->sent();
    s.f = nullptr;
    s.ready = false;
    ++head_;
    sent = true;
  }
  if (sent) kick();
}

RN_HOT void TxPort::send_control(net::Frame* f, size_t tlen, const wire::PathInfo& path,
                                 Tick ready) {
  wrap(f, tlen, path);
  ++control_frames_;
  out(f, path, ready);
}

void TxPort::loop_back(net::Frame* f, Tick ready) {
  // The frame takes the port's time at the link's rate, then arrives at the receive side.
  ++loopback_frames_;
  const Tick start = std::max({ready, loop_busy_, now()});
  loop_busy_ = start + link_->frame_time(f->len);
  env_.sim.eq.at(loop_busy_, [this, f] { loop_->receive(f); });
}

void TxPort::wrap(net::Frame* f, size_t tlen, const wire::PathInfo& path) const {
  wire::ExtPayload ext;
  if (f->payload_external())
    ext = {f->payload_page.page, f->ext_off, 4096, true, f->payload_page.crc};
  f->len = static_cast<uint32_t>(framing_.wrap(f->data, tlen, path, ext));
  f->icrc_sealed = f->len != 0;
}

}  // namespace rn::qp
