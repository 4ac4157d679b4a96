#include "model/net/link.h"

#include <algorithm>

namespace rn::net {

Link::Link(Sim& sim, const std::string& name, const LinkParams& p, FramePool& pool)
    : sim_(sim),
      name_(name),
      p_(p),
      pool_(pool),
      stats_(sim.stats, name, "point-to-point Ethernet link") {
  tapped_ = &stats_.counter("pcap_frames", "count", "frames recorded into the pcap file");
  for (int s = 0; s < 2; ++s) {
    std::string d = s == 0 ? "a_to_b_" : "b_to_a_";
    dir_[s].lane = sim_.eq.new_lane();
    dir_[s].frames = &stats_.counter(d + "frames", "count", "frames delivered");
    dir_[s].bytes = &stats_.counter(d + "bytes", "B", "frame bytes delivered (without FCS)");
    dir_[s].busy_ps = &stats_.counter(d + "busy", "ps", "time spent serialising, with overheads");
    dir_[s].mtu_drops =
        &stats_.counter(d + "mtu_drops", "count", "frames dropped: larger than the MTU");
    dir_[s].runt_drops = &stats_.counter(d + "runt_drops", "count",
                                         "frames dropped: shorter than an Ethernet header (14 B)");
    stats_.formula(d + "utilisation", "ratio", "busy time / simulated time", [this, s] {
      Tick t = sim_.now();
      return t ? static_cast<double>(*dir_[s].busy_ps) / static_cast<double>(t) : 0.0;
    });
  }
}

Link::~Link() { sim_.stats.remove(&stats_); }

Tick Link::backlog(int side) const {
  Tick b = dir_[side].busy_until, t = now();
  return b > t ? b - t : 0;
}

Tick Link::send(int side, Frame* f, Tick ready) {
  Dir& d = dir_[side];
  // Ethernet payload = frame minus the 14-byte header.
  if (f->len < 14 || f->len - 14 > p_.mtu) {
    ++*(f->len < 14 ? d.runt_drops : d.mtu_drops);
    pool_.put(f);
    return now();
  }
  Tick start = std::max({now(), ready, d.busy_until});
  Tick ser = frame_time(f->len);
  d.busy_until = start + ser;
  *d.busy_ps += ser;
  ++*d.frames;
  *d.bytes += f->len;
  if (tap_ && (tap_limit_ == 0 || tap_count_ < tap_limit_)) {
    f->materialize();  // the recorded bytes are the frame's, payload included
    tap_->write(start, f->data, f->len);
    ++tap_count_;
    ++*tapped_;
  }
  FrameSink* sink = sink_[side ^ 1];
  if (sink) sink->on_the_way(f);
  Tick arrive = d.busy_until + p_.propagation_delay;
  sim_.eq.at(d.lane, arrive, [this, sink, f] {
    if (sink) {
      sink->receive(f);
    } else {
      pool_.put(f);
    }
  });
  return d.busy_until;
}

}  // namespace rn::net
