// A bench for the NIC core (model/qp) with a frame injector: host 1's NIC is the device under
// test; the wire's other end is the test. Host 1 is set up through its driver as usual (PD, CQs,
// a QP in RTS, a registered buffer) and connected to host 0's address and QP number, but host 0's
// NIC never receives: every frame host 1 sends lands in a WireProbe, which decodes and keeps it.
// The test injects hand-built frames into host 1 (they leave through host 0's transmit port, so
// they are framed as host 0 would frame them) and observes the wire (probe), host memory (DMA)
// and completions (host 1's CQs).
#pragma once
#include <fmt/core.h>

#include <cstring>
#include <string>
#include <vector>

#include "testbench/system/device_bench.h"

namespace rn::test {

// A frame the device under test sent, decoded.
struct Sent {
  Tick at;  // when it arrived at the probe
  wire::TransportHeader h;
  std::vector<uint8_t> payload;
  const char* name() const { return wire::op_info(h.opcode).name; }
};

class WireProbe : public net::FrameSink {
 public:
  explicit WireProbe(Sim& sim, net::FramePool& pool) : sim_(sim), pool_(pool) {}
  void receive(net::Frame* f) override {
    f->materialize();
    wire::RoceV2Ipv4Framing fr;
    size_t toff = 0, tlen = 0, hl = 0, pl = 0;
    Sent s{sim_.now(), {}, {}};
    if (fr.unwrap(f->data, f->len, &toff, &tlen, nullptr) == wire::FrameError::None &&
        wire::decode_transport(f->data + toff, tlen, &s.h, &hl, &pl) == wire::ParseError::None) {
      s.payload.assign(f->data + toff + hl, f->data + toff + hl + pl);
      sent.push_back(std::move(s));
    } else {
      ++bad;
    }
    pool_.put(f);
  }
  std::vector<Sent> sent;
  int bad = 0;

 private:
  Sim& sim_;
  net::FramePool& pool_;
};

struct QpBench : Bench {
  WireProbe probe;
  // The device under test is peer b (host 1); peer a (host 0) only lends its address and QPN.
  // The link's protocol checker is off: tests inject frames that break the rules on purpose.
  explicit QpBench(std::vector<std::string> sets = {})
      : Bench(with_check_off(std::move(sets))), probe(sys->sim(), sys->frame_pool()) {
    sys->link().connect(0, &probe);
  }
  Peer& dut() { return b; }
  static std::vector<std::string> with_check_off(std::vector<std::string> sets) {
    sets.push_back("link.check=false");
    return sets;
  }
  // Sends a hand-built packet to the DUT's QP from "host 0", now.
  void inject(const wire::TransportHeader& h, const std::vector<uint8_t>& payload = {}) {
    Bench::inject(a, b, h, payload);
  }
  // A request packet of opcode op with PSN psn (AckReq set).
  static wire::TransportHeader req(wire::Opcode op, uint32_t psn, bool ack_req = true) {
    wire::TransportHeader h{};
    h.opcode = wire::to_u8(op);
    h.psn = psn;
    h.ack_req = ack_req;
    return h;
  }
  // A WRITE request's RETH aimed at the DUT's buffer.
  wire::TransportHeader write_req(wire::Opcode op, uint32_t psn, uint64_t off, uint32_t len) {
    wire::TransportHeader h = req(op, psn);
    h.reth_va = b.buf + off;
    h.reth_rkey = b.mr.rkey;
    h.reth_len = len;
    return h;
  }
  // An ACK (or NAK: syndrome) for the DUT's requester.
  static wire::TransportHeader ack(uint32_t psn, uint8_t syndrome = wire::kAethSynAck,
                                   uint32_t msn = 0) {
    wire::TransportHeader h{};
    h.opcode = wire::to_u8(wire::Opcode::RC_ACKNOWLEDGE);
    h.psn = psn;
    h.aeth_syndrome = syndrome;
    h.aeth_msn = msn;
    return h;
  }
  // Lets simulated time pass on the DUT's host.
  void wait(Tick t) { b.h->cpu(t); }
  // The frames the DUT sent from index `from` on, one line each (for failure messages).
  std::string wire_log(size_t from = 0) const {
    std::string s;
    for (size_t i = from; i < probe.sent.size(); ++i) {
      const Sent& x = probe.sent[i];
      s += fmt::format(" [{} psn {}{}]", x.name(), x.h.psn,
                       wire::op_info(x.h.opcode).kind == wire::OpInfo::Kind::Ack
                           ? fmt::format(" {}", wire::aeth_syndrome_name(x.h.aeth_syndrome))
                           : "");
    }
    return s;
  }
  // The frames the DUT sent with PSN psn, in order.
  std::vector<const Sent*> with_psn(uint32_t psn) const {
    std::vector<const Sent*> v;
    for (const Sent& s : probe.sent)
      if (s.h.psn == psn) v.push_back(&s);
    return v;
  }
  dev::QpState dut_state() {
    dev::QueryQpOut qq{};
    b.d->query_qp(b.qp, &qq);
    return static_cast<dev::QpState>(qq.qp_state);
  }
};

inline std::vector<uint8_t> bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

}  // namespace rn::test
