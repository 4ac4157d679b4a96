#include "model/wire/framing.h"

#include <cstring>

#include "model/core/hot.h"
#include "model/wire/icrc.h"

namespace rn::wire {

const char* to_string(FrameError e) {
  switch (e) {
    case FrameError::None:
      return "None";
    case FrameError::Truncated:
      return "Truncated";
    case FrameError::NotIpv4:
      return "NotIpv4";
    case FrameError::BadIpHeader:
      return "BadIpHeader";
    case FrameError::Fragmented:
      return "Fragmented";
    case FrameError::BadIpChecksum:
      return "BadIpChecksum";
    case FrameError::NotUdp:
      return "NotUdp";
    case FrameError::NotRoceV2Port:
      return "NotRoceV2Port";
    case FrameError::BadLength:
      return "BadLength";
    case FrameError::BadIcrc:
      return "BadIcrc";
  }
  return "?";
}

namespace {
uint32_t ones_sum20(const uint8_t* ip) {
  uint32_t sum = 0;
  for (size_t i = 0; i < kIpv4HdrLen; i += 2) sum += load_be16(ip + i);
  return sum;
}
uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xFFFFu) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}
}  // namespace

uint16_t ipv4_header_checksum(const uint8_t* ip) {
  const uint32_t sum = ones_sum20(ip) - load_be16(ip + offsetof(Ipv4Hdr, checksum));
  return static_cast<uint16_t>(~fold(sum));
}

RN_HOT size_t RoceV2Ipv4Framing::wrap(uint8_t* buf, size_t tlen, const PathInfo& path,
                                      const ExtPayload& ext) const {
  if (tlen > kMaxTransportLen) return 0;
  if (ext.bytes && (ext.off < kHeadroom + kBthLen || ext.off + ext.len > kHeadroom + tlen))
    return 0;  // the headers the ICRC masks must be in the buffer
  const uint16_t ip_total = static_cast<uint16_t>(kIpv4HdrLen + kUdpHdrLen + tlen + kIcrcLen);
  const uint16_t udp_len = static_cast<uint16_t>(kUdpHdrLen + tlen + kIcrcLen);

  uint8_t* eth = buf;
  std::memcpy(eth + offsetof(EthHdr, dst), path.dst_mac.data(), 6);
  std::memcpy(eth + offsetof(EthHdr, src), path.src_mac.data(), 6);
  store_be16(eth + offsetof(EthHdr, ethertype), kEtherTypeIpv4);

  uint8_t* ip = buf + kOffIpv4;
  ip[offsetof(Ipv4Hdr, ver_ihl)] = 0x45;
  ip[offsetof(Ipv4Hdr, tos)] = path.tos;
  store_be16(ip + offsetof(Ipv4Hdr, total_len), ip_total);
  store_be16(ip + offsetof(Ipv4Hdr, id), path.ip_id);
  store_be16(ip + offsetof(Ipv4Hdr, flags_frag), kIpv4FlagDf);
  ip[offsetof(Ipv4Hdr, ttl)] = path.ttl;
  ip[offsetof(Ipv4Hdr, protocol)] = kIpProtoUdp;
  store_be16(ip + offsetof(Ipv4Hdr, checksum), 0);
  store_be32(ip + offsetof(Ipv4Hdr, src), path.src_ip);
  store_be32(ip + offsetof(Ipv4Hdr, dst), path.dst_ip);
  store_be16(ip + offsetof(Ipv4Hdr, checksum), ipv4_header_checksum(ip));

  uint8_t* udp = buf + kOffUdpV4;
  store_be16(udp + offsetof(UdpHdr, sport), path.udp_sport);
  store_be16(udp + offsetof(UdpHdr, dport), kRoceV2Port);
  store_be16(udp + offsetof(UdpHdr, length), udp_len);
  store_be16(udp + offsetof(UdpHdr, checksum), 0);

  const size_t icrc_off = kHeadroom + tlen;
  uint32_t icrc;
  if (ext.bytes) {  // the CRC runs over the headers, the outside bytes, then the rest
    icrc = icrc_roce_v2(ip, ext.off - kOffIpv4, false);
    icrc =
        ext.has_crc ? crc32_combine(icrc, ext.crc, ext.len) : crc32_refl(icrc, ext.bytes, ext.len);
    icrc = crc32_refl(icrc, buf + ext.off + ext.len, icrc_off - ext.off - ext.len);
  } else {
    icrc = icrc_roce_v2(ip, kIpv4HdrLen + kUdpHdrLen + tlen, false);
  }
  store_le32(buf + icrc_off, icrc);
  size_t n = icrc_off + kIcrcLen;
  if (n < kEthMinFrame) {
    std::memset(buf + n, 0, kEthMinFrame - n);
    n = kEthMinFrame;
  }
  return n;
}

bool RoceV2Ipv4Framing::icrc_ok(const uint8_t* frame, size_t t_len) const {
  return load_le32(frame + kHeadroom + t_len) ==
         icrc_roce_v2(frame + kOffIpv4, kIpv4HdrLen + kUdpHdrLen + t_len, false);
}

RN_HOT FrameError RoceV2Ipv4Framing::unwrap(const uint8_t* frame, size_t len, size_t* t_off,
                                            size_t* t_len, PathInfo* seen, bool icrc_sealed) const {
  if (len < kEthHdrLen) return FrameError::Truncated;
  if (load_be16(frame + offsetof(EthHdr, ethertype)) != kEtherTypeIpv4) return FrameError::NotIpv4;
  if (len < kOffIpv4 + kIpv4HdrLen) return FrameError::Truncated;

  const uint8_t* ip = frame + kOffIpv4;
  if (ip[offsetof(Ipv4Hdr, ver_ihl)] != 0x45) return FrameError::BadIpHeader;
  if (fold(ones_sum20(ip)) != 0xFFFF) return FrameError::BadIpChecksum;
  const uint16_t ff = load_be16(ip + offsetof(Ipv4Hdr, flags_frag));
  if ((ff & (kIpv4FlagMf | kIpv4FragOffsetMask)) != 0) return FrameError::Fragmented;
  if (ip[offsetof(Ipv4Hdr, protocol)] != kIpProtoUdp) return FrameError::NotUdp;
  const size_t ip_total = load_be16(ip + offsetof(Ipv4Hdr, total_len));
  if (ip_total < kIpv4HdrLen + kUdpHdrLen) return FrameError::BadLength;
  if (len - kOffIpv4 < ip_total) return FrameError::Truncated;

  const uint8_t* udp = frame + kOffUdpV4;
  if (load_be16(udp + offsetof(UdpHdr, dport)) != kRoceV2Port) return FrameError::NotRoceV2Port;
  const size_t udp_len = load_be16(udp + offsetof(UdpHdr, length));
  if (udp_len != ip_total - kIpv4HdrLen) return FrameError::BadLength;
  if (udp_len < kUdpHdrLen + kBthLen + kIcrcLen) return FrameError::BadLength;

  const size_t tlen = udp_len - kUdpHdrLen - kIcrcLen;
  const size_t icrc_off = kHeadroom + tlen;
  if (!icrc_sealed &&
      load_le32(frame + icrc_off) != icrc_roce_v2(ip, kIpv4HdrLen + kUdpHdrLen + tlen, false))
    return FrameError::BadIcrc;

  if (seen != nullptr) {
    std::memcpy(seen->dst_mac.data(), frame + offsetof(EthHdr, dst), 6);
    std::memcpy(seen->src_mac.data(), frame + offsetof(EthHdr, src), 6);
    seen->src_ip = load_be32(ip + offsetof(Ipv4Hdr, src));
    seen->dst_ip = load_be32(ip + offsetof(Ipv4Hdr, dst));
    seen->tos = ip[offsetof(Ipv4Hdr, tos)];
    seen->ttl = ip[offsetof(Ipv4Hdr, ttl)];
    seen->udp_sport = load_be16(udp + offsetof(UdpHdr, sport));
    seen->ip_id = load_be16(ip + offsetof(Ipv4Hdr, id));
  }
  *t_off = kHeadroom;
  *t_len = tlen;
  return FrameError::None;
}

}  // namespace rn::wire
