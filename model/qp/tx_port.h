// The NIC's one transmit port. Two ways out onto the link:
//  - the packet pipeline: sources (the requester; later READ responses) put packets into an
//    in-order pipeline of nic.tx_pipeline_depth slots when it has room and the link is not
//    booked more than nic.tx_queue_frames frames ahead; a slot waits for its payload's DMA read
//    and leaves for the wire in order, nic.tx_pipeline_latency after it is complete. Sources take
//    turns (round robin).
//  - control frames (ACK, NAK; later CNP), built whole by their sender, go straight to the link,
//    ahead of the pipeline, at the time their sender gives.
// A frame for the NIC's own IPv4 address (a QP connected to a QP of the same NIC) loops back inside
// the port to the NIC's receive side, at the link's rate, and never reaches the wire.
// The port frames every packet (Ethernet, IPv4, UDP, ICRC) and seals its ICRC.
#pragma once
#include <vector>

#include "model/core/stats.h"
#include "model/net/frame.h"
#include "model/net/link.h"
#include "model/qp/qp_context.h"
#include "model/wire/framing.h"

namespace rn::qp {

class TxPort {
 public:
  // A producer of pipeline packets.
  class Source {
   public:
    virtual ~Source() = default;
    virtual bool has_work() const = 0;
    // Puts packets into the pipeline (claim()) while it has room: one turn of the source.
    virtual void produce() = 0;
    // A packet it claimed with itself as owner has left for the wire.
    virtual void sent() {}
  };

  TxPort(const NicEnv& env, net::FramePool& pool, const PortFraming& framing);
  ~TxPort();
  void attach(net::Link* link, int side) {
    link_ = link;
    side_ = side;
  }
  void add_source(Source* s) { sources_.push_back(s); }
  // Where frames to the NIC's own address go (its receive demultiplexer).
  void set_loopback(net::FrameSink* self) { loop_ = self; }

  // A source may have work: fills the pipeline while it has room. Re-entrant calls (from a
  // source's produce()) are folded into the running one.
  void kick();
  bool has_room() const { return tail_ - head_ < depth_; }
  net::Frame* new_frame() { return pool_.get(); }
  size_t headroom() const { return framing_.headroom(); }
  // Claims the next pipeline slot for frame f, whose transport bytes (tlen) are in place except
  // perhaps the payload (ready == false until landed()). Returns the slot's index.
  uint32_t claim(net::Frame* f, uint32_t tlen, const wire::PathInfo& path, bool ready,
                 Source* owner = nullptr) {
    const uint32_t idx = tail_++ & mask_;
    Slot& s = ring_[idx];
    s.f = f;
    s.tlen = tlen;
    s.path = path;
    s.ready = ready;
    s.owner = owner;
    return idx;
  }
  // The payload of slot `idx` is in its frame (or referenced by page: Frame::payload_page).
  void landed(uint32_t idx) {
    Slot& s = ring_[idx];
    // A whole page read by reference: its bytes stay in the page (4096, no pad, at the end).
    if (s.f->payload_page)
      s.f->ext_off = static_cast<uint16_t>(framing_.headroom() + s.tlen - 4096);
    s.ready = true;
    drain();
  }
  // The payload of slot `idx` could not be read (its DMA read failed): the slot's frame is
  // dropped when it reaches the head, never sent (its owner is told as if it had left).
  void dropped(uint32_t idx) {
    ring_[idx].drop = true;
    ring_[idx].ready = true;
    drain();
  }
  // Sends every complete slot at the pipeline's head.
  void drain();
  // A control frame (tlen transport bytes in place in f): framed and sent at `ready` or later.
  void send_control(net::Frame* f, size_t tlen, const wire::PathInfo& path, Tick ready);
  // Frames f (tlen transport bytes in place) and seals its ICRC (net::Frame::icrc_sealed).
  // f->len is 0 if tlen is too large for the framing.
  void wrap(net::Frame* f, size_t tlen, const wire::PathInfo& path) const;
  // Sends a framed frame to the link, or back to this NIC if it is addressed to it.
  void out(net::Frame* f, const wire::PathInfo& path, Tick ready) {
    if (path.dst_ip == env_.params.ipv4 && loop_) return loop_back(f, ready);
    link_->send(side_, f, ready);
  }
  void loop_back(net::Frame* f, Tick ready);

 private:
  struct Slot {
    net::Frame* f = nullptr;
    uint32_t tlen = 0;
    bool ready = false;
    bool drop = false;        // dropped(): freed at the head, not sent
    Source* owner = nullptr;  // told when the packet leaves (Source::sent), if set
    wire::PathInfo path;
  };
  // What kick() is doing: not running, running, or running and asked to run again.
  enum class Kick : uint8_t { kIdle, kRunning, kAgain };
  Tick now() const { return env_.now(); }

  const NicEnv& env_;
  net::FramePool& pool_;
  const PortFraming& framing_;
  net::Link* link_ = nullptr;
  net::FrameSink* loop_ = nullptr;
  Tick loop_busy_ = 0;  // the loopback path is serializing until then
  int side_ = 0;
  std::vector<Source*> sources_;
  size_t next_source_ = 0;
  std::vector<Slot> ring_;         // 2^k slots, indexed by mask
  uint32_t depth_ = 1, mask_ = 0;  // nic.tx_pipeline_depth slots in use
  uint32_t head_ = 0, tail_ = 0;   // free-running
  Kick kick_ = Kick::kIdle;
  bool wake_pending_ = false;  // a kick is booked for when the link's queue has room
  Tick backlog_limit_ = 0;

  stats::Group stats_;
  uint64_t& frames_;
  uint64_t& control_frames_;
  uint64_t& stalls_link_;
  uint64_t& loopback_frames_;
  uint64_t& dropped_;
};

}  // namespace rn::qp
