#include "model/wire/transport.h"

#include "model/core/hot.h"

namespace rn::wire {

RN_HOT size_t encode_transport_header(const TransportHeader& h, uint8_t* buf) {
  const OpInfo& info = op_info(h.opcode);
  if (!info.valid) return 0;
  uint8_t* p = buf;

  // BTH
  p[0] = h.opcode;
  p[1] = static_cast<uint8_t>((h.se ? kBthSe : 0) | (h.mig_req ? kBthMigReq : 0) |
                              ((h.pad_cnt & 3u) << kBthPadShift));  // TVer = 0
  store_be16(p + 2, h.pkey);
  p[4] = static_cast<uint8_t>((h.fecn ? kBthFecn : 0) | (h.becn ? kBthBecn : 0));
  store_be24(p + 5, h.dest_qp & 0xFFFFFFu);
  p[8] = h.ack_req ? kBthAckReq : 0;
  store_be24(p + 9, h.psn & kPsnMask);
  p += kBthLen;

  const uint8_t m = info.ext_mask;
  if (m & kExtDeth) {
    store_be32(p, h.deth_qkey);
    p[4] = 0;
    store_be24(p + 5, h.deth_src_qp & 0xFFFFFFu);
    p += kDethLen;
  }
  if (m & kExtReth) {
    store_be64(p, h.reth_va);
    store_be32(p + 8, h.reth_rkey);
    store_be32(p + 12, h.reth_len);
    p += kRethLen;
  }
  if (m & kExtAtomicEth) {
    store_be64(p, h.atomic_va);
    store_be32(p + 8, h.atomic_rkey);
    store_be64(p + 12, h.atomic_swap_add);
    store_be64(p + 20, h.atomic_compare);
    p += kAtomicEthLen;
  }
  if (m & kExtAeth) {
    p[0] = h.aeth_syndrome;
    store_be24(p + 1, h.aeth_msn & kMsnMask);
    p += kAethLen;
  }
  if (m & kExtAtomicAckEth) {
    store_be64(p, h.atomic_ack_orig);
    p += kAtomicAckEthLen;
  }
  if (m & kExtImmDt) {
    store_be32(p, h.imm);
    p += kImmDtLen;
  }
  if (m & kExtIeth) {
    store_be32(p, h.ieth_rkey);
    p += kIethLen;
  }
  if (m & kExtCnpRsvd) {
    for (size_t i = 0; i < kCnpRsvdLen; ++i) p[i] = 0;
    p += kCnpRsvdLen;
  }
  return static_cast<size_t>(p - buf);
}

const char* to_string(ParseError e) {
  switch (e) {
    case ParseError::None:
      return "None";
    case ParseError::Truncated:
      return "Truncated";
    case ParseError::BadTver:
      return "BadTver";
    case ParseError::UnknownOpcode:
      return "UnknownOpcode";
    case ParseError::BadPadding:
      return "BadPadding";
    case ParseError::UnexpectedPayload:
      return "UnexpectedPayload";
  }
  return "?";
}

RN_HOT ParseError decode_transport(const uint8_t* buf, size_t len, TransportHeader* out,
                                   size_t* hdr_len, size_t* payload_len) {
  if (len < kBthLen) return ParseError::Truncated;
  const uint8_t opcode = buf[0];
  const uint8_t flags = buf[1];
  if ((flags & kBthTverMask) != 0) return ParseError::BadTver;
  const OpInfo& info = op_info(opcode);
  if (!info.valid) return ParseError::UnknownOpcode;
  const size_t hlen = info.hdr_len;
  if (len < hlen) return ParseError::Truncated;
  const uint8_t pad = static_cast<uint8_t>((flags & kBthPadMask) >> kBthPadShift);
  const size_t rest = len - hlen;
  if (pad > rest) return ParseError::BadPadding;
  if (!info.has_payload && rest != 0) return ParseError::UnexpectedPayload;

  TransportHeader& h = *out;  // written only once every check above has passed
  h = TransportHeader{};      // all fields zero except pkey: overwritten below
  h.opcode = opcode;
  h.se = (flags & kBthSe) != 0;
  h.mig_req = (flags & kBthMigReq) != 0;
  h.pad_cnt = pad;
  h.pkey = load_be16(buf + 2);
  h.fecn = (buf[4] & kBthFecn) != 0;
  h.becn = (buf[4] & kBthBecn) != 0;
  h.dest_qp = load_be24(buf + 5);
  h.ack_req = (buf[8] & kBthAckReq) != 0;
  h.psn = load_be24(buf + 9);

  const uint8_t* p = buf + kBthLen;
  const uint8_t m = info.ext_mask;
  if (m & kExtDeth) {
    h.deth_qkey = load_be32(p);
    h.deth_src_qp = load_be24(p + 5);
    p += kDethLen;
  }
  if (m & kExtReth) {
    h.reth_va = load_be64(p);
    h.reth_rkey = load_be32(p + 8);
    h.reth_len = load_be32(p + 12);
    p += kRethLen;
  }
  if (m & kExtAtomicEth) {
    h.atomic_va = load_be64(p);
    h.atomic_rkey = load_be32(p + 8);
    h.atomic_swap_add = load_be64(p + 12);
    h.atomic_compare = load_be64(p + 20);
    p += kAtomicEthLen;
  }
  if (m & kExtAeth) {
    h.aeth_syndrome = p[0];
    h.aeth_msn = load_be24(p + 1);
    p += kAethLen;
  }
  if (m & kExtAtomicAckEth) {
    h.atomic_ack_orig = load_be64(p);
    p += kAtomicAckEthLen;
  }
  if (m & kExtImmDt) {
    h.imm = load_be32(p);
    p += kImmDtLen;
  }
  if (m & kExtIeth) {
    h.ieth_rkey = load_be32(p);
    p += kIethLen;
  }
  if (m & kExtCnpRsvd) p += kCnpRsvdLen;  // reserved: ignored on receive

  *hdr_len = hlen;
  *payload_len = rest - pad;
  return ParseError::None;
}

}  // namespace rn::wire
