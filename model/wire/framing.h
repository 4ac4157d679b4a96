// Framing layer: wraps transport bytes (BTH .. pad) into a frame and unwraps received frames.
// RoCEv2 over IPv4 now; IPv6 and native InfiniBand framings come later behind Framing.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "model/wire/headers.h"

namespace rn::wire {

struct PathInfo {
  std::array<uint8_t, 6> src_mac{};
  std::array<uint8_t, 6> dst_mac{};
  uint32_t src_ip = 0;  // host order: 10.0.0.1 == 0x0A000001
  uint32_t dst_ip = 0;
  uint8_t tos = 0;  // DSCP 7:2, ECN 1:0 (traffic class)
  uint8_t ttl = 64;
  uint16_t udp_sport = 0xC000;
  uint16_t ip_id = 0;
};

enum class FrameError : uint8_t {
  None,
  Truncated,      // frame shorter than its headers or than the IP total length says
  NotIpv4,        // EtherType is not 0x0800 (VLAN tags are not supported either)
  BadIpHeader,    // IP version != 4 or IHL != 5 (options are not used by RoCEv2)
  Fragmented,     // MF set or fragment offset != 0
  BadIpChecksum,  // IPv4 header checksum wrong
  NotUdp,         // IP protocol != 17
  NotRoceV2Port,  // UDP destination port != 4791
  BadLength,      // IP total length / UDP length inconsistent or too short for BTH + ICRC
  BadIcrc,        // ICRC mismatch (a receiver drops silently, no NAK)
};
const char* to_string(FrameError e);

// Transport bytes kept outside the frame buffer: `len` bytes at `bytes` stand for the buffer's
// [off, off + len) (counted from the buffer's start), which wrap() does not read. With has_crc,
// `crc` is crc32_refl(0, bytes, len), and wrap() does not read `bytes` either.
struct ExtPayload {
  const uint8_t* bytes = nullptr;
  size_t off = 0;
  size_t len = 0;
  bool has_crc = false;
  uint32_t crc = 0;
};

class Framing {
 public:
  virtual ~Framing() = default;
  virtual size_t headroom() const = 0;  // bytes before the BTH
  virtual size_t tailroom() const = 0;  // bytes after the pad (ICRC)
  // Frame length wrap() returns for tlen transport bytes (Ethernet frames are padded to 60
  // bytes): the buffer given to wrap() must hold this many bytes.
  virtual size_t frame_len(size_t tlen) const = 0;
  // buf: a frame buffer whose transport bytes (BTH .. pad, tlen bytes) are already at
  // buf + headroom(). Writes the headers in front and the ICRC after; returns the frame length
  // (no Ethernet FCS), or 0 if tlen is too large for the framing. With `ext`, the part of the
  // transport bytes it names is read from ext.bytes instead of the buffer.
  virtual size_t wrap(uint8_t* buf, size_t tlen, const PathInfo& path,
                      const ExtPayload& ext = {}) const = 0;
  // Validates a received frame (lengths, IPv4 checksum, UDP port 4791, ICRC) and locates the
  // transport bytes: frame + *t_off, *t_len bytes (BTH .. pad). `seen` (may be null) gets the
  // addresses, TOS, TTL, UDP source port and IP id of the frame. Bytes after the IP datagram
  // (Ethernet padding) are ignored. icrc_sealed: the caller knows the ICRC field was computed by
  // wrap() over exactly these bytes and nothing changed them since (net::Frame::icrc_sealed);
  // recomputing it would give the same answer, so it is not recomputed. Every other check runs.
  virtual FrameError unwrap(const uint8_t* frame, size_t len, size_t* t_off, size_t* t_len,
                            PathInfo* seen, bool icrc_sealed = false) const = 0;
};

// Ethernet II + IPv4 (DF, no options, real header checksum) + UDP (dport 4791, checksum 0)
// + transport + ICRC. IP total length and UDP length include the ICRC.
class RoceV2Ipv4Framing final : public Framing {
 public:
  static constexpr size_t kHeadroom = kEthHdrLen + kIpv4HdrLen + kUdpHdrLen;  // 42
  static constexpr size_t kTailroom = kIcrcLen;                               // 4
  static constexpr size_t kMaxTransportLen = 0xFFFF - kIpv4HdrLen - kUdpHdrLen - kIcrcLen;

  size_t headroom() const override { return kHeadroom; }
  size_t tailroom() const override { return kTailroom; }
  size_t frame_len(size_t tlen) const override {
    const size_t n = kHeadroom + tlen + kTailroom;
    return n < kEthMinFrame ? kEthMinFrame : n;
  }
  size_t wrap(uint8_t* buf, size_t tlen, const PathInfo& path,
              const ExtPayload& ext = {}) const override;
  FrameError unwrap(const uint8_t* frame, size_t len, size_t* t_off, size_t* t_len, PathInfo* seen,
                    bool icrc_sealed = false) const override;
  // The ICRC check of unwrap() alone, for a frame unwrap() accepted with icrc_sealed (t_len as it
  // returned): whether the ICRC field holds the ICRC of the frame's bytes.
  bool icrc_ok(const uint8_t* frame, size_t t_len) const;
};

// IPv4 header checksum (ones' complement of the ones' complement sum) of a 20-byte header
// whose checksum field is taken as zero.
uint16_t ipv4_header_checksum(const uint8_t* ip_hdr);

// UDP source port for a QP, as rxe: 0xC000 | (hash_32(qpn, 14) & 0x3FFF), where
// hash_32(v, 14) = (v * 0x61C88647) >> 18 (Linux's golden-ratio multiplicative hash).
constexpr uint16_t roce_udp_sport(uint32_t qpn) {
  return static_cast<uint16_t>(0xC000u | (((qpn * 0x61C88647u) >> 18) & 0x3FFFu));
}

}  // namespace rn::wire
