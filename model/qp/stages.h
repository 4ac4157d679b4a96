// The NIC's swappable receive stages: the header parser and the ICRC engine. (The third, the key
// and translation lookup, is xlate::Stage.) Each sits behind a small interface whose answer may
// come later than the question: `ready` is when it is known. The behavioural models answer at
// once (their time is part of nic.rx_pipeline_latency); a Verilated RTL block would answer after
// its cycles. The receive demultiplexer keeps frames in order and acts on each at its ready time.
#pragma once
#include "model/net/frame.h"
#include "model/qp/qp_context.h"
#include "model/wire/transport.h"

namespace rn::qp {

// A received packet, parsed: its frame, its transport header, and where its payload is.
struct RxPacket {
  net::Frame* f = nullptr;
  wire::TransportHeader h;
  uint32_t payload_off = 0;  // in f->data
  uint32_t plen = 0;         // payload bytes (without pad)
};

// Frame bytes in; Ethernet/IPv4/UDP checks (all but the ICRC) and the transport headers out.
class HeaderParser {
 public:
  struct Result {
    wire::FrameError frame = wire::FrameError::None;      // framing checks
    wire::ParseError transport = wire::ParseError::None;  // BTH and extension headers
    uint32_t t_off = 0, t_len = 0;                        // the transport bytes (for the ICRC)
    Tick ready = 0;
  };
  virtual ~HeaderParser() = default;
  // Fills p->h, p->payload_off and p->plen when both verdicts are None.
  virtual Result parse(const net::Frame& f, RxPacket* p) = 0;
};

// Whether a received frame's ICRC is right.
class IcrcEngine {
 public:
  virtual ~IcrcEngine() = default;
  // f passed the parser's framing checks; its transport bytes are t_len bytes from t_off.
  virtual bool check(net::Frame& f, uint32_t t_off, uint32_t t_len, Tick* ready) = 0;
};

// The behavioural parser: wire::RoceV2Ipv4Framing::unwrap and wire::decode_transport.
class ModelParser final : public HeaderParser {
 public:
  ModelParser(const NicEnv& env, const PortFraming& framing) : env_(env), framing_(framing) {}
  Result parse(const net::Frame& f, RxPacket* p) override {
    Result r;
    r.ready = env_.now();
    size_t toff = 0, tlen = 0;
    // The ICRC is the ICRC engine's to check.
    r.frame = framing_.unwrap(f.data, f.len, &toff, &tlen, nullptr, /*icrc_sealed=*/true);
    if (r.frame != wire::FrameError::None) return r;
    r.t_off = static_cast<uint32_t>(toff);
    r.t_len = static_cast<uint32_t>(tlen);
    size_t hl = 0, pl = 0;
    r.transport = wire::decode_transport(f.data + toff, tlen, &p->h, &hl, &pl);
    p->payload_off = static_cast<uint32_t>(toff + hl);
    p->plen = static_cast<uint32_t>(pl);
    return r;
  }

 private:
  const NicEnv& env_;
  const PortFraming& framing_;
};

// The behavioural ICRC engine. Speed trick (sim.icrc_seal, on by default): a frame whose ICRC
// this simulator's own sender computed over exactly these bytes (net::Frame::icrc_sealed) is
// not recomputed: the same function over the same bytes gives the same answer. Off, every
// frame's ICRC is computed (its payload copied out of a shared page first).
class ModelIcrc final : public IcrcEngine {
 public:
  ModelIcrc(const NicEnv& env, const PortFraming& framing, bool trust_seal)
      : env_(env), framing_(framing), trust_seal_(trust_seal) {}
  bool check(net::Frame& f, uint32_t, uint32_t t_len, Tick* ready) override {
    *ready = env_.now();
    if (trust_seal_ && f.icrc_sealed) return true;
    f.materialize();  // the ICRC covers every byte
    return framing_.icrc_ok(f.data, t_len);
  }

 private:
  const NicEnv& env_;
  const PortFraming& framing_;
  bool trust_seal_;
};

}  // namespace rn::qp
