#include "model/qp/stages.h"

namespace rn::qp {

HeaderParser::Result ModelParser::parse(const net::Frame& f, RxPacket* p) {
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

bool ModelIcrc::check(net::Frame& f, uint32_t, uint32_t t_len, Tick* ready) {
  *ready = env_.now();
  if (trust_seal_ && f.icrc_sealed) return true;
  f.materialize();  // the ICRC covers every byte
  return framing_.icrc_ok(f.data, t_len);
}

}  // namespace rn::qp
