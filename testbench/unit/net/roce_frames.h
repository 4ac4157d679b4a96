// Real RoCEv2/IPv4 frames for the link and checker tests, built with the wire module (transport
// header encoded, payload, pad, then wrap(): Ethernet, IPv4, UDP and ICRC), sealed as a NIC
// leaves them.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "model/net/frame.h"
#include "model/wire/framing.h"
#include "model/wire/opcodes.h"
#include "model/wire/transport.h"

namespace rn::test {

// A packet's transport fields, with the defaults of a request from QP 0x10 (UDP port from it).
struct Pkt {
  wire::Opcode op = wire::Opcode::RC_SEND_ONLY;
  uint32_t qp = 17;  // destination
  uint32_t psn = 0;
  uint32_t payload = 0;  // bytes, pattern-filled
  bool ack_req = false;
  uint32_t reth_len = 0;
  uint8_t syndrome = wire::kAethSynAck;
  uint32_t msn = 0;
  uint32_t src_qp = 0x10;  // gives the UDP source port, as the NIC does
  int pad = -1;            // PadCnt; -1: the right one
};

inline const wire::RoceV2Ipv4Framing& framing() {
  static const wire::RoceV2Ipv4Framing f;
  return f;
}

// The frame's bytes (without FCS).
inline std::vector<uint8_t> frame_bytes(const Pkt& p) {
  wire::TransportHeader h;
  h.opcode = wire::to_u8(p.op);
  h.dest_qp = p.qp;
  h.psn = p.psn;
  h.ack_req = p.ack_req;
  h.reth_len = p.reth_len;
  h.reth_va = 0x1000;
  h.reth_rkey = 0x55;
  h.aeth_syndrome = p.syndrome;
  h.aeth_msn = p.msn;
  h.pad_cnt = p.pad >= 0 ? static_cast<uint8_t>(p.pad) : wire::pad_for(p.payload);
  std::vector<uint8_t> buf(net::Frame::kCapacity, 0);
  const size_t hr = framing().headroom();
  const size_t hl = wire::encode_transport_header(h, buf.data() + hr);
  for (uint32_t i = 0; i < p.payload; ++i)
    buf[hr + hl + i] = static_cast<uint8_t>(p.psn * 7 + i * 13 + 1);
  const size_t tlen = hl + p.payload + h.pad_cnt;
  wire::PathInfo path;
  path.src_mac = {2, 0, 0, 0, 0, 1};
  path.dst_mac = {2, 0, 0, 0, 0, 2};
  path.src_ip = 0x0A000001;
  path.dst_ip = 0x0A000002;
  path.udp_sport = wire::roce_udp_sport(p.src_qp);
  const size_t len = framing().wrap(buf.data(), tlen, path);
  buf.resize(len);
  return buf;
}

inline net::Frame* make_frame(net::FramePool& pool, const Pkt& p) {
  const std::vector<uint8_t> b = frame_bytes(p);
  net::Frame* f = pool.get();
  std::memcpy(f->data, b.data(), b.size());
  f->len = static_cast<uint32_t>(b.size());
  f->icrc_sealed = true;
  return f;
}

}  // namespace rn::test
