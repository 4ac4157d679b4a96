// A full-duplex point-to-point Ethernet link. Each direction serialises frames at the line rate,
// counting preamble, start delimiter and inter-frame gap (20 B) and the FCS (4 B) on top of the
// frame bytes, then delivers them after the propagation delay: one event per frame, at its
// computed arrival time. Frames larger than the MTU (mtu_drops) or shorter than an Ethernet header
// (runt_drops) are dropped and counted. An optional pcap tap records every frame at the time its
// first bit leaves the sender.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "model/core/sim.h"
#include "model/net/frame.h"
#include "model/wire/pcap_writer.h"

namespace rn::net {

// The defaults are the configuration's defaults too (link.*): the schema takes them from here.
struct LinkParams {
  double rate_bps = 100e9;
  Tick propagation_delay = 25 * kNs;  // about 5 m of copper
  uint32_t mtu = 4200;                // largest IP packet (Ethernet payload), bytes
  uint32_t overhead_bytes = 24;       // preamble+SFD (8) + IFG (12) + FCS (4)
};

class Link {
 public:
  Link(Sim& sim, const std::string& name, const LinkParams& p, FramePool& pool);
  ~Link();
  // side 0 and side 1 are the two ends.
  void connect(int side, FrameSink* sink) { sink_[side] = sink; }
  // Records frames into `tap`, at most max_frames of them (0: all) from now or from the last
  // restart_capture().
  void set_tap(wire::PcapWriter* tap, uint64_t max_frames) {
    tap_ = tap;
    tap_limit_ = max_frames;
    tap_count_ = 0;
  }
  // Sends a frame from `side`, no earlier than `ready` (the sender's pipeline latency), taking
  // ownership of it. Returns the time its last bit leaves.
  Tick send(int side, Frame* f, Tick ready);
  // How far ahead of now the direction leaving `side` is booked.
  Tick backlog(int side) const;
  // The next max_frames frames are recorded again (a new workload starts).
  void restart_capture() { tap_count_ = 0; }
  Tick busy_until(int side) const { return dir_[side].busy_until; }
  // Frames sent so far, both directions.
  uint64_t frames() const { return *dir_[0].frames + *dir_[1].frames; }
  const LinkParams& params() const { return p_; }
  Tick frame_time(uint32_t len) const { return bytes_time(len + p_.overhead_bytes, p_.rate_bps); }

 private:
  struct Dir {
    Tick busy_until = 0;
    int lane = 0;  // arrivals are in order: an event-queue lane
    uint64_t* frames;
    uint64_t* bytes;
    uint64_t* busy_ps;
    uint64_t* mtu_drops;
    uint64_t* runt_drops;
  };
  Tick now() const { return sim_.now(); }
  Sim& sim_;
  std::string name_;
  LinkParams p_;
  FramePool& pool_;
  std::array<FrameSink*, 2> sink_{nullptr, nullptr};
  std::array<Dir, 2> dir_{};
  wire::PcapWriter* tap_ = nullptr;
  uint64_t tap_limit_ = 0;
  uint64_t tap_count_ = 0;  // frames recorded since set_tap() or restart_capture()
  uint64_t* tapped_ = nullptr;
  stats::Group stats_;
};

}  // namespace rn::net
