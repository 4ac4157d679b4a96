// Wire layouts of RoCEv2 frames: Ethernet, IPv4/IPv6, UDP, the InfiniBand BTH and its
// extension headers. Every layout is defined once here, as a struct of raw bytes (all
// multi-byte fields big-endian, alignment 1, no padding), so sizeof() is the wire size.
//
// The structs document the layout and give field offsets via offsetof(); code never casts a
// buffer pointer to one of them. Field values are read and written with load_be*/store_be*,
// which are byte operations and therefore safe at any alignment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace rn::wire {

// ---------------------------------------------------------------------------------------------
// Big-endian byte access (no unaligned casts, no UB; compiles to a load + bswap).
inline constexpr uint16_t load_be16(const uint8_t* p) {
  return static_cast<uint16_t>((static_cast<uint16_t>(p[0]) << 8) | p[1]);
}
inline constexpr uint32_t load_be24(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 16) | (static_cast<uint32_t>(p[1]) << 8) | p[2];
}
inline constexpr uint32_t load_be32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | p[3];
}
inline constexpr uint64_t load_be64(const uint8_t* p) {
  return (static_cast<uint64_t>(load_be32(p)) << 32) | load_be32(p + 4);
}
inline constexpr void store_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline constexpr void store_be24(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 16);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v);
}
inline constexpr void store_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
inline constexpr void store_be64(uint8_t* p, uint64_t v) {
  store_be32(p, static_cast<uint32_t>(v >> 32));
  store_be32(p + 4, static_cast<uint32_t>(v));
}
// Little-endian, used only for the ICRC (transmitted least-significant byte first).
inline constexpr uint32_t load_le32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[3]) << 24) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[1]) << 8) | p[0];
}
inline constexpr void store_le32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
}

// ---------------------------------------------------------------------------------------------
// Constants.
inline constexpr uint16_t kRoceV2Port = 4791;
inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86DD;
inline constexpr uint16_t kEtherTypeRoceV1 = 0x8915;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;
inline constexpr uint8_t kIpProtoUdp = 17;
inline constexpr uint16_t kIpv4FlagDf = 0x4000;  // in flags_frag
inline constexpr uint16_t kIpv4FlagMf = 0x2000;
inline constexpr uint16_t kIpv4FragOffsetMask = 0x1FFF;
inline constexpr uint16_t kDefaultPkey = 0xFFFF;
inline constexpr uint32_t kGsiQkey = 0x80010000u;
inline constexpr uint32_t kMulticastQpn = 0xFFFFFF;
inline constexpr size_t kEthMinFrame = 60;  // minimum Ethernet frame without the 4-byte FCS

// ---------------------------------------------------------------------------------------------
// Layouts.
struct EthHdr {
  uint8_t dst[6];
  uint8_t src[6];
  uint8_t ethertype[2];
};

struct Ipv4Hdr {
  uint8_t ver_ihl;       // 0x45: version 4, IHL 5 words (RoCEv2 never uses options)
  uint8_t tos;           // DSCP 7:2, ECN 1:0
  uint8_t total_len[2];  // IP header + UDP + BTH .. pad + ICRC
  uint8_t id[2];
  uint8_t flags_frag[2];  // 0x4000 = DF
  uint8_t ttl;
  uint8_t protocol;  // 17 = UDP
  uint8_t checksum[2];
  uint8_t src[4];
  uint8_t dst[4];
};

struct Ipv6Hdr {
  uint8_t ver_tc_flow[4];  // version 4 bits, traffic class 8, flow label 20
  uint8_t payload_len[2];
  uint8_t next_header;
  uint8_t hop_limit;
  uint8_t src[16];
  uint8_t dst[16];
};

struct UdpHdr {
  uint8_t sport[2];
  uint8_t dport[2];
  uint8_t length[2];    // UDP header + BTH .. pad + ICRC
  uint8_t checksum[2];  // 0 on transmit (as rxe)
};

// Base Transport Header.
struct Bth {
  uint8_t opcode;
  uint8_t flags;  // SE 7, MigReq 6, PadCnt 5:4, TVer 3:0
  uint8_t pkey[2];
  uint8_t fecn_becn;  // FECN 7, BECN 6, reserved 5:0 (all ones in the ICRC)
  uint8_t dest_qp[3];
  uint8_t ack_psn_hi;  // AckReq 7, reserved 6:0
  uint8_t psn[3];
};
inline constexpr uint8_t kBthSe = 0x80;
inline constexpr uint8_t kBthMigReq = 0x40;
inline constexpr unsigned kBthPadShift = 4;
inline constexpr uint8_t kBthPadMask = 0x30;
inline constexpr uint8_t kBthTverMask = 0x0F;
inline constexpr uint8_t kBthFecn = 0x80;
inline constexpr uint8_t kBthBecn = 0x40;
inline constexpr uint8_t kBthAckReq = 0x80;

// RDMA Extended Transport Header.
struct Reth {
  uint8_t va[8];
  uint8_t rkey[4];
  uint8_t dma_len[4];
};

// ACK Extended Transport Header.
struct Aeth {
  uint8_t syndrome;
  uint8_t msn[3];
};

// Immediate data (opaque, kept in network order on the wire).
struct ImmDt {
  uint8_t imm[4];
};

// Atomic Extended Transport Header.
struct AtomicEth {
  uint8_t va[8];
  uint8_t rkey[4];
  uint8_t swap_add[8];
  uint8_t compare[8];
};

// Atomic ACK Extended Transport Header.
struct AtomicAckEth {
  uint8_t orig[8];
};

// Invalidate Extended Transport Header.
struct Ieth {
  uint8_t rkey[4];
};

// Datagram Extended Transport Header.
struct Deth {
  uint8_t qkey[4];
  uint8_t reserved;
  uint8_t src_qp[3];
};

// The 16 reserved bytes after the BTH of a RoCEv2 CNP (opcode 0x81).
struct CnpRsvd {
  uint8_t reserved[16];
};

inline constexpr size_t kEthHdrLen = 14;
inline constexpr size_t kIpv4HdrLen = 20;
inline constexpr size_t kIpv6HdrLen = 40;
inline constexpr size_t kUdpHdrLen = 8;
inline constexpr size_t kBthLen = 12;
inline constexpr size_t kRethLen = 16;
inline constexpr size_t kAethLen = 4;
inline constexpr size_t kImmDtLen = 4;
inline constexpr size_t kAtomicEthLen = 28;
inline constexpr size_t kAtomicAckEthLen = 8;
inline constexpr size_t kIethLen = 4;
inline constexpr size_t kDethLen = 8;
inline constexpr size_t kCnpRsvdLen = 16;
inline constexpr size_t kIcrcLen = 4;

#define RN_WIRE_CHECK_LAYOUT(T, N)                                         \
  static_assert(sizeof(T) == (N), #T " must be " #N " bytes on the wire"); \
  static_assert(alignof(T) == 1, #T " must have byte alignment");          \
  static_assert(std::is_standard_layout_v<T> && std::is_trivially_copyable_v<T>, #T)
RN_WIRE_CHECK_LAYOUT(EthHdr, kEthHdrLen);
RN_WIRE_CHECK_LAYOUT(Ipv4Hdr, kIpv4HdrLen);
RN_WIRE_CHECK_LAYOUT(Ipv6Hdr, kIpv6HdrLen);
RN_WIRE_CHECK_LAYOUT(UdpHdr, kUdpHdrLen);
RN_WIRE_CHECK_LAYOUT(Bth, kBthLen);
RN_WIRE_CHECK_LAYOUT(Reth, kRethLen);
RN_WIRE_CHECK_LAYOUT(Aeth, kAethLen);
RN_WIRE_CHECK_LAYOUT(ImmDt, kImmDtLen);
RN_WIRE_CHECK_LAYOUT(AtomicEth, kAtomicEthLen);
RN_WIRE_CHECK_LAYOUT(AtomicAckEth, kAtomicAckEthLen);
RN_WIRE_CHECK_LAYOUT(Ieth, kIethLen);
RN_WIRE_CHECK_LAYOUT(Deth, kDethLen);
RN_WIRE_CHECK_LAYOUT(CnpRsvd, kCnpRsvdLen);
#undef RN_WIRE_CHECK_LAYOUT

// Byte offsets of the RoCEv2-over-IPv4 frame (no VLAN tag, no IP options).
inline constexpr size_t kOffIpv4 = kEthHdrLen;               // 14
inline constexpr size_t kOffUdpV4 = kOffIpv4 + kIpv4HdrLen;  // 34
inline constexpr size_t kOffBthV4 = kOffUdpV4 + kUdpHdrLen;  // 42
inline constexpr size_t kOffIpv6 = kEthHdrLen;               // 14
inline constexpr size_t kOffUdpV6 = kOffIpv6 + kIpv6HdrLen;  // 54
inline constexpr size_t kOffBthV6 = kOffUdpV6 + kUdpHdrLen;  // 62

}  // namespace rn::wire
