#include "model/net/link.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>

#include "model/core/hot.h"
#include "model/core/mix.h"
#include "model/wire/headers.h"
#include "model/wire/opcodes.h"

namespace rn::net {

namespace {
// mix64 (model/core/mix.h) is the random faults' counter-based generator: the draws of a frame
// depend only on the seed, the direction, the frame's index in its direction and the draw's
// number, never on what else was drawn.
// Uniform in [0, 1) from the top 53 bits.
double unit(uint64_t r) { return static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0); }
// The draws of each frame, by number.
enum Draw : uint64_t { kDrawLoss, kDrawCorrupt, kDrawDuplicate, kDrawReorder, kDrawBit };
}  // namespace

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
  if (p_.faults()) enable_faults();
}

Link::~Link() { sim_.stats.remove(&stats_); }

void Link::enable_faults() {
  if (faults_on_) return;
  faults_on_ = true;
  for (int s = 0; s < 2; ++s) {
    Dir& d = dir_[s];
    const std::string n = s == 0 ? "a_to_b_" : "b_to_a_";
    d.key = mix64(mix64(p_.seed) + static_cast<uint64_t>(s) + 1);
    d.hold_lane = sim_.eq.new_lane();
    d.dropped = &stats_.counter(n + "dropped", "count", "frames dropped by fault injection");
    d.corrupted = &stats_.counter(n + "corrupted", "count", "frames with one bit flipped");
    d.duplicated =
        &stats_.counter(n + "duplicated", "count", "frames delivered twice (a copy followed)");
    d.reordered = &stats_.counter(n + "reordered", "count",
                                  "frames held back and delivered after the next frame");
  }
  unlisted_ = &stats_.counter("faults_unlisted", "count",
                              "faults applied but not listed in the fault log (it was full)");
  log_.reserve(log_limit_);
}

void Link::set_fault_log_limit(size_t max) {
  log_limit_ = max;
  if (!faults_on_) return;
  std::vector<FaultRecord> fresh;
  fresh.reserve(max);
  fresh.insert(fresh.end(), log_.begin(), log_.begin() + std::min(log_.size(), max));
  log_.swap(fresh);
}

size_t Link::add_rule(const FaultRule& r) {
  enable_faults();
  Rule x;
  x.r = r;
  x.hits = &stats_.counter(fmt::format("rule{}_hits", rules_.size() + 1), "count",
                           "frames acted on by fault rule " + r.text());
  rules_.push_back(x);
  return rules_.size() - 1;
}

uint64_t Link::fault_count(FaultAction a) const {
  if (!faults_on_) return 0;
  uint64_t n = 0;
  for (const Dir& d : dir_) {
    switch (a) {
      case FaultAction::kDrop:
        n += *d.dropped;
        break;
      case FaultAction::kCorrupt:
        n += *d.corrupted;
        break;
      case FaultAction::kDuplicate:
        n += *d.duplicated;
        break;
      case FaultAction::kReorder:
        n += *d.reordered;
        break;
    }
  }
  return n;
}

RN_HOT Tick Link::backlog(int side) const {
  Tick b = dir_[side].busy_until, t = now();
  return b > t ? b - t : 0;
}

RN_HOT Tick Link::send(int side, Frame* f, Tick ready) {
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
  const uint64_t frame = ++sent_;
  uint64_t pcap_frame = 0;
  if (tap_ && (tap_limit_ == 0 || tap_count_ < tap_limit_)) {
    f->materialize();  // the recorded bytes are the frame's, payload included
    tap_->write(start, f->data, f->len);
    ++tap_count_;
    ++*tapped_;
    pcap_frame = ++tap_written_;
  }
  if (observer_) observer_->on_send(side, *f, start, frame, pcap_frame);
  Tick arrive = d.busy_until + p_.propagation_delay;
  if (faults_on_) return send_with_faults(side, f, start, arrive, frame, pcap_frame);
  FrameSink* sink = sink_[side ^ 1];
  if (sink) sink->on_the_way(f);
  sim_.eq.at(d.lane, arrive, [this, sink, f] {
    if (sink) {
      sink->receive(f);
    } else {
      pool_.put(f);
    }
  });
  return d.busy_until;
}

Tick Link::send_with_faults(int side, Frame* f, Tick start, Tick arrive, uint64_t frame,
                            uint64_t pcap_frame) {
  Dir& d = dir_[side];
  const Tick end = d.busy_until;  // the frame's last bit
  const uint64_t base = mix64(d.key ^ d.sent++);
  auto draw = [base](uint64_t j) { return mix64(base + j); };
  const FrameFields ff = frame_fields(f->data, f->len);  // headers: always in data
  // Rules first, in order; then the random faults.
  std::array<bool, 4> act{};
  std::array<int, 4> by{-1, -1, -1, -1};
  for (size_t k = 0; k < rules_.size(); ++k) {
    Rule& r = rules_[k];
    if (!r.r.matches(side, ff)) continue;
    ++r.matches;
    if (!r.r.fires(r.matches, *r.hits)) continue;
    ++*r.hits;
    const auto a = static_cast<size_t>(r.r.action);
    if (!act[a]) {
      act[a] = true;
      by[a] = static_cast<int>(k);
    }
  }
  const double prob[4] = {p_.loss, p_.corrupt, p_.duplicate, p_.reorder};
  for (size_t a = 0; a < 4; ++a)
    if (!act[a] && prob[a] > 0 && unit(draw(a)) < prob[a]) act[a] = true;
  auto noted = [&](FaultAction a) {
    note(side, a, by[static_cast<size_t>(a)], frame, pcap_frame, start, ff);
  };
  if (act[static_cast<size_t>(FaultAction::kDrop)]) {
    noted(FaultAction::kDrop);
    ++*d.dropped;
    pool_.put(f);
    return end;
  }
  if (act[static_cast<size_t>(FaultAction::kCorrupt)]) {
    corrupt_frame(f, draw(kDrawBit));
    noted(FaultAction::kCorrupt);
    ++*d.corrupted;
  }
  FrameSink* sink = sink_[side ^ 1];
  Frame* copy = nullptr;
  Tick copy_arrive = 0;
  if (act[static_cast<size_t>(FaultAction::kDuplicate)]) {
    // The copy follows the frame on the wire: it takes its serialisation time too.
    copy = pool_.get();
    copy->len = f->len;
    std::memcpy(copy->data, f->data, f->len);
    if (f->payload_external()) std::memcpy(copy->data + f->ext_off, f->payload_page.page, 4096);
    copy->icrc_sealed = f->icrc_sealed;
    const Tick ser = frame_time(copy->len);
    d.busy_until += ser;
    *d.busy_ps += ser;
    copy_arrive = d.busy_until + p_.propagation_delay;
    noted(FaultAction::kDuplicate);
    ++*d.duplicated;
  }
  // A held frame goes right after this one if this one arrives before the held one's deadline.
  Frame* rel = nullptr;
  if (d.held && arrive <= d.held_until) {
    rel = d.held;
    d.held = nullptr;
  }
  // At most one frame is held per direction, and the frame that releases it is not held.
  const bool hold = act[static_cast<size_t>(FaultAction::kReorder)] && !d.held && !rel;
  if (sink) sink->on_the_way(f);
  if (hold) {
    d.held = f;
    d.held_sink = sink;
    d.held_until = arrive + p_.reorder_delay;
    const uint64_t gen = ++d.held_gen;
    sim_.eq.at(d.hold_lane, d.held_until, [this, side, f, gen] {
      Dir& h = dir_[side];
      if (h.held != f || h.held_gen != gen) return;  // released by the next frame
      h.held = nullptr;
      if (h.held_sink) {
        h.held_sink->receive(f);
      } else {
        pool_.put(f);
      }
    });
    noted(FaultAction::kReorder);
    ++*d.reordered;
  } else if (rel) {
    FrameSink* rs = d.held_sink;
    sim_.eq.at(d.lane, arrive, [this, sink, f, rs, rel] {
      if (sink) {
        sink->receive(f);
      } else {
        pool_.put(f);
      }
      if (rs) {
        rs->receive(rel);
      } else {
        pool_.put(rel);
      }
    });
  } else {
    sim_.eq.at(d.lane, arrive, [this, sink, f] {
      if (sink) {
        sink->receive(f);
      } else {
        pool_.put(f);
      }
    });
  }
  if (copy) {
    sim_.eq.at(d.lane, copy_arrive, [this, sink, copy] {
      if (sink) {
        sink->receive(copy);
      } else {
        pool_.put(copy);
      }
    });
  }
  return end;
}

// Flips one bit, chosen uniformly among the bits that the receiver's checks cover: of an IPv4
// frame, the IP packet (IP header to ICRC; not the Ethernet header, whose MAC addresses nobody
// checks, nor the Ethernet padding of a short frame), except, on a RoCEv2 frame, the three bytes
// neither the IP header checksum nor the ICRC covers: the UDP checksum and BTH byte 4 (FECN, BECN,
// reserved). Another frame: any bit after the Ethernet header (of a bare header: any bit). The
// frame is unsealed first, so the receiver recomputes the ICRC.
void Link::corrupt_frame(Frame* f, uint64_t r) {
  namespace w = wire;
  f->unseal();
  uint32_t lo = w::kEthHdrLen, hi = f->len;
  std::array<uint32_t, 3> skip{};
  size_t nskip = 0;
  if (f->len >= w::kOffUdpV4 &&
      w::load_be16(f->data + offsetof(w::EthHdr, ethertype)) == w::kEtherTypeIpv4) {
    const uint32_t ip_end = static_cast<uint32_t>(w::kOffIpv4) +
                            w::load_be16(f->data + w::kOffIpv4 + offsetof(w::Ipv4Hdr, total_len));
    if (ip_end > lo && ip_end <= f->len) hi = ip_end;
    if (frame_fields(f->data, f->len).roce && hi > w::kOffBthV4 + offsetof(w::Bth, fecn_becn)) {
      skip = {static_cast<uint32_t>(w::kOffUdpV4 + offsetof(w::UdpHdr, checksum)),
              static_cast<uint32_t>(w::kOffUdpV4 + offsetof(w::UdpHdr, checksum) + 1),
              static_cast<uint32_t>(w::kOffBthV4 + offsetof(w::Bth, fecn_becn))};
      nskip = 3;
    }
  }
  if (hi <= lo) lo = 0;
  const uint32_t n = hi - lo - static_cast<uint32_t>(nskip);
  if (n == 0) return;
  uint32_t at = lo + static_cast<uint32_t>((r >> 3) % n);
  for (size_t i = 0; i < nskip; ++i)
    if (at >= skip[i]) ++at;
  f->data[at] ^= static_cast<uint8_t>(1u << (r & 7));
}

void Link::note(int side, FaultAction a, int rule, uint64_t frame, uint64_t pcap_frame, Tick start,
                const FrameFields& fields) {
  if (log_.size() < log_limit_) {
    FaultRecord x;
    x.frame = frame;
    x.pcap_frame = pcap_frame;
    x.time = start;
    x.side = static_cast<uint8_t>(side);
    x.action = a;
    x.rule = rule;
    x.fields = fields;
    log_.push_back(x);
  } else {
    ++*unlisted_;
  }
  RN_LOG(sim_, LogCat::kWire, name_, "fault: {} frame {} (pcap {}) from side {}{}{}", to_string(a),
         frame, pcap_frame, side,
         fields.roce ? fmt::format(": {} QP {} PSN {}", wire::op_info(fields.opcode).name,
                                   fields.dest_qp, fields.psn)
                     : std::string(),
         rule >= 0 ? fmt::format(" (rule {})", rule + 1) : std::string(" (random)"));
}

}  // namespace rn::net
