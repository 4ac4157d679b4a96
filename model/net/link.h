// A full-duplex point-to-point Ethernet link. Each direction serialises frames at the line rate,
// counting preamble, start delimiter and inter-frame gap (20 B) and the FCS (4 B) on top of the
// frame bytes, then delivers them after the propagation delay: one event per frame, at its
// computed arrival time. Frames larger than the MTU (mtu_drops) or shorter than an Ethernet header
// (runt_drops) are dropped and counted. An optional pcap tap records every frame at the time its
// first bit leaves the sender. An optional observer (a protocol checker) sees every frame sent.
// Optional fault injection (off by default): frames lost, corrupted, duplicated or reordered at
// random (seeded, one stream per direction) or by deterministic rules; decided when the frame is
// sent, listed in a bounded log.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "model/core/sim.h"
#include "model/net/fault_rule.h"
#include "model/net/frame.h"
#include "model/wire/pcap_writer.h"

namespace rn::net {

// The defaults are the configuration's defaults too (link.*): the schema takes them from here.
struct LinkParams {
  double rate_bps = 100e9;
  Tick propagation_delay = 25 * kNs;  // about 5 m of copper
  uint32_t mtu = 4200;                // largest IP packet (Ethernet payload), bytes
  uint32_t overhead_bytes = 24;       // preamble+SFD (8) + IFG (12) + FCS (4)
  // Fault injection: probabilities per frame sent, each in [0, 1]. All 0: off.
  double loss = 0;       // the frame is dropped
  double corrupt = 0;    // one bit of the frame is flipped (see Link::corrupt_frame)
  double duplicate = 0;  // a second copy follows it on the wire
  double reorder = 0;    // held back, delivered after the next frame of its direction
  // Longest a held (reordered) frame waits for the next frame of its direction; then it is
  // delivered alone, this much after its own arrival time.
  Tick reorder_delay = 1 * kUs;
  uint64_t seed = 1;  // random faults: same seed and traffic, same faults
  bool faults() const { return loss > 0 || corrupt > 0 || duplicate > 0 || reorder > 0; }
};

// Sees every frame a link accepts, when it is sent, before any fault: a protocol checker.
class LinkObserver {
 public:
  virtual ~LinkObserver() = default;
  // `frame`: the link's number of the frame (1-based, both directions, in send order);
  // `pcap_frame`: its number in the tap's file (1-based, as Wireshark numbers), 0 if not recorded.
  // The frame's payload may be external (Frame::ext_off): read headers only.
  virtual void on_send(int side, const Frame& f, Tick start, uint64_t frame,
                       uint64_t pcap_frame) = 0;
};

// One fault the link applied, as the fault log lists it.
struct FaultRecord {
  uint64_t frame = 0;       // the link's number of the frame (see LinkObserver::on_send)
  uint64_t pcap_frame = 0;  // its number in the pcap, 0 if not recorded
  Tick time = 0;            // when its first bit left the sender
  uint8_t side = 0;         // the sending side
  FaultAction action = FaultAction::kDrop;
  int32_t rule = -1;  // index of the rule that applied it (0-based), -1: random
  FrameFields fields;
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
    tap_written_ = 0;
  }
  // Every frame sent is shown to `o` (null: none). One observer at a time.
  void set_observer(LinkObserver* o) { observer_ = o; }
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

  // Fault rules, applied in the order added, besides the random faults of LinkParams. Returns
  // the rule's index; its hits are counted in the statistic rule<index+1>_hits.
  size_t add_rule(const FaultRule& r);
  uint64_t rule_hits(size_t index) const { return *rules_.at(index).hits; }
  bool faults_on() const { return faults_on_; }
  // Frames the faults of kind `a` were applied to, both directions (0 with faults off).
  uint64_t fault_count(FaultAction a) const;
  // The faults applied, in the order of the frames' sending, at most `max` of them (the first
  // ones; faults_unlisted() counts the others). Memory for them all is taken when faults are
  // turned on (sizeof(FaultRecord), 48 B, each).
  static constexpr size_t kFaultLogDefault = 100000;
  void set_fault_log_limit(size_t max);
  const std::vector<FaultRecord>& fault_log() const { return log_; }
  uint64_t faults_unlisted() const { return unlisted_ ? *unlisted_ : 0; }

 private:
  struct Dir {
    Tick busy_until = 0;
    int lane = 0;  // arrivals are in order: an event-queue lane
    uint64_t* frames;
    uint64_t* bytes;
    uint64_t* busy_ps;
    uint64_t* mtu_drops;
    uint64_t* runt_drops;
    // Fault injection (counters registered when faults are turned on).
    uint64_t key = 0;   // of this direction's random stream
    uint64_t sent = 0;  // frames sent so far: the index into the stream
    uint64_t* dropped = nullptr;
    uint64_t* corrupted = nullptr;
    uint64_t* duplicated = nullptr;
    uint64_t* reordered = nullptr;
    Frame* held = nullptr;  // a reordered frame waiting for the next one
    FrameSink* held_sink = nullptr;
    Tick held_until = 0;  // its deadline: delivered alone then
    uint64_t held_gen = 0;
    int hold_lane = 0;
  };
  struct Rule {
    FaultRule r;
    uint64_t matches = 0;
    uint64_t* hits = nullptr;
  };
  Tick now() const { return sim_.now(); }
  void enable_faults();
  Tick send_with_faults(int side, Frame* f, Tick start, Tick arrive, uint64_t frame,
                        uint64_t pcap_frame);
  void corrupt_frame(Frame* f, uint64_t r);
  void note(int side, FaultAction a, int rule, uint64_t frame, uint64_t pcap_frame, Tick start,
            const FrameFields& fields);
  Sim& sim_;
  std::string name_;
  LinkParams p_;
  FramePool& pool_;
  std::array<FrameSink*, 2> sink_{nullptr, nullptr};
  std::array<Dir, 2> dir_{};
  wire::PcapWriter* tap_ = nullptr;
  uint64_t tap_limit_ = 0;
  uint64_t tap_count_ = 0;    // frames recorded since set_tap() or restart_capture()
  uint64_t tap_written_ = 0;  // frames recorded since set_tap(): the last one's pcap number
  uint64_t* tapped_ = nullptr;
  uint64_t sent_ = 0;  // frames accepted by send(), both directions: the last one's number
  LinkObserver* observer_ = nullptr;
  bool faults_on_ = false;
  std::vector<Rule> rules_;
  std::vector<FaultRecord> log_;
  size_t log_limit_ = kFaultLogDefault;
  uint64_t* unlisted_ = nullptr;
  stats::Group stats_;
};

}  // namespace rn::net
