#include "model/qp/tx_port.h"

#include <algorithm>

#include "model/wire/transport.h"

namespace rn::qp {

TxPort::TxPort(const NicEnv& env, net::FramePool& pool, const PortFraming& framing)
    : env_(env),
      pool_(pool),
      framing_(framing),
      stats_(env.sim.stats, env.name + ".tx", "transmit port: packet pipeline and control frames"),
      frames_(stats_.counter("frames", "count", "packets sent through the pipeline")),
      control_frames_(stats_.counter("control_frames", "count", "ACKs and NAKs sent")),
      stalls_link_(stats_.counter("stalls_link", "count", "pipeline waits: link queue full")) {
  ring_.resize(std::max<uint32_t>(1, env.params.tx_pipeline_depth));
}

TxPort::~TxPort() {
  env_.sim.stats.remove(&stats_);
  for (uint32_t i = head_; i != tail_; ++i)
    if (net::Frame* f = ring_[i % ring_.size()].f) pool_.put(f);
}

void TxPort::kick() {
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
      Source* src = nullptr;
      for (size_t k = 0; k < sources_.size() && !src; ++k) {
        Source* s = sources_[(next_source_ + k) % sources_.size()];
        if (s->has_work()) {
          src = s;
          next_source_ = (next_source_ + k + 1) % sources_.size();
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

uint32_t TxPort::claim(net::Frame* f, uint32_t tlen, const wire::PathInfo& path, bool ready,
                       Source* owner) {
  const uint32_t idx = tail_++ % ring_.size();
  Slot& s = ring_[idx];
  s.f = f;
  s.tlen = tlen;
  s.path = path;
  s.ready = ready;
  s.owner = owner;
  return idx;
}

void TxPort::landed(uint32_t idx) {
  Slot& s = ring_[idx];
  // A whole page read by reference: its bytes stay in the page (4096, no pad, at the end).
  if (s.f->payload_page) s.f->ext_off = static_cast<uint16_t>(framing_.headroom() + s.tlen - 4096);
  s.ready = true;
  drain();
}

void TxPort::drain() {
  bool sent = false;
  while (head_ != tail_) {
    Slot& s = ring_[head_ % ring_.size()];
    if (!s.ready) break;
    wrap(s.f, s.tlen, s.path);
    link_->send(side_, s.f, now() + env_.params.tx_pipeline_latency);
    ++frames_;
    if (s.owner) s.owner->sent();
    s.f = nullptr;
    s.ready = false;
    ++head_;
    sent = true;
  }
  if (sent) kick();
}

void TxPort::send_control(net::Frame* f, size_t tlen, const wire::PathInfo& path, Tick ready) {
  wrap(f, tlen, path);
  ++control_frames_;
  link_->send(side_, f, ready);
}

void TxPort::wrap(net::Frame* f, size_t tlen, const wire::PathInfo& path) const {
  wire::ExtPayload ext;
  if (f->payload_external())
    ext = {f->payload_page.page, f->ext_off, 4096, true, f->payload_page.crc};
  f->len = static_cast<uint32_t>(framing_.wrap(f->data, tlen, path, ext));
  f->icrc_sealed = f->len != 0;
}

}  // namespace rn::qp
