// Transport layer of a RoCEv2 packet: the BTH and the extension headers that the opcode
// implies. Works on the transport bytes only (BTH .. pad, ICRC excluded): it never touches
// Ethernet/IP/UDP bytes, so the same code serves every framing (RoCEv2/IPv4, IPv6, IB).
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/wire/headers.h"
#include "model/wire/opcodes.h"

namespace rn::wire {

// Decoded BTH + extension headers, in host byte order. Only the fields of the extension
// headers present for `opcode` are meaningful (see op_info(opcode).ext_mask); decode sets the
// others to 0.
struct TransportHeader {
  // BTH
  uint8_t opcode = 0;
  bool se = false;
  bool mig_req = false;
  uint8_t pad_cnt = 0;  // 0..3
  uint16_t pkey = kDefaultPkey;
  bool fecn = false;
  bool becn = false;
  uint32_t dest_qp = 0;  // 24 bits
  bool ack_req = false;
  uint32_t psn = 0;  // 24 bits
  // RETH
  uint64_t reth_va = 0;
  uint32_t reth_rkey = 0;
  uint32_t reth_len = 0;
  // ImmDt (the 4 wire bytes read big-endian)
  uint32_t imm = 0;
  // AETH
  uint8_t aeth_syndrome = 0;
  uint32_t aeth_msn = 0;  // 24 bits
  // AtomicETH
  uint64_t atomic_va = 0;
  uint32_t atomic_rkey = 0;
  uint64_t atomic_swap_add = 0;
  uint64_t atomic_compare = 0;
  // AtomicAckETH
  uint64_t atomic_ack_orig = 0;
  // IETH
  uint32_t ieth_rkey = 0;
  // DETH
  uint32_t deth_qkey = 0;
  uint32_t deth_src_qp = 0;  // 24 bits
};

// BTH + extension headers for this opcode; 0 if the opcode is not valid.
inline size_t transport_header_len(uint8_t opcode) { return op_info(opcode).hdr_len; }

// Transport bytes (BTH .. pad) of the largest request packet of a path MTU: a WRITE_ONLY with
// immediate carries the most headers (RETH and ImmDt) with a full MTU of payload.
inline size_t largest_packet(size_t mtu) {
  return transport_header_len(to_u8(Opcode::RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE)) + mtu;
}

// Pad bytes after a payload of payload_len bytes: (-len) & 3.
inline uint8_t pad_for(size_t payload_len) { return static_cast<uint8_t>((0u - payload_len) & 3u); }

// Writes BTH + extension headers for h.opcode at buf (which must hold
// transport_header_len(h.opcode) bytes); returns the bytes written, 0 if the opcode is invalid.
// PadCnt is taken from h.pad_cnt; TVer and all reserved bits are written as 0; 24-bit fields
// are masked. The caller appends payload and pad_cnt zero bytes.
size_t encode_transport_header(const TransportHeader& h, uint8_t* buf);

enum class ParseError : uint8_t {
  None,
  Truncated,          // shorter than the BTH or than the headers the opcode requires
  BadTver,            // BTH TVer != 0
  UnknownOpcode,      // opcode not in the table (RD, reserved, vendor-specific ...)
  BadPadding,         // PadCnt larger than the bytes after the headers
  UnexpectedPayload,  // bytes after the headers on an opcode that carries no payload
};
const char* to_string(ParseError e);

// Decodes transport bytes (BTH .. pad, ICRC excluded). On success fills *out, *hdr_len
// (BTH + extension headers) and *payload_len (without pad), with
// hdr_len + payload_len + out->pad_cnt == len. Never reads outside [buf, buf + len), never
// trusts a length field, never allocates. On error *out may be partly written.
ParseError decode_transport(const uint8_t* buf, size_t len, TransportHeader* out, size_t* hdr_len,
                            size_t* payload_len);

}  // namespace rn::wire
