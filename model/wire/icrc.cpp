#include "model/wire/icrc.h"

#include <isa-l/crc.h>

#include <cstring>

#include "model/core/hot.h"
#include "model/wire/headers.h"

namespace rn::wire {

namespace {
// Bitwise reflected CRC-32 for constant folding the 8-byte 0xFF prefix.
constexpr uint32_t crc32_bitwise(uint32_t prev, const uint8_t* p, size_t n) {
  uint32_t c = ~prev;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}
constexpr uint8_t kLrhStandIn[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
// CRC state (zlib convention) after the 8 bytes of 0xFF that stand in for the LRH.
constexpr uint32_t kIcrcSeed = crc32_bitwise(0, kLrhStandIn, sizeof(kLrhStandIn));
// rxe starts its raw (non-inverted) register at 0xDEBB20E3 instead: the same state.
static_assert(~kIcrcSeed == 0xDEBB20E3u, "ICRC seed mismatch with rxe");
}  // namespace

uint32_t crc32_refl(uint32_t prev, const uint8_t* data, size_t len) {
  return crc32_gzip_refl(prev, data, len);
}

namespace {
// Polynomials over GF(2) modulo the CRC-32 polynomial, in the CRC's reflected bit order: bit 31
// is x^0. The CRC register's conditioning (initial and final inversion) cancels out when two
// CRCs are combined: crc(A.B) = crc(A) * x^(8 len(B)) + crc(B) (mod P).
constexpr uint32_t kPoly = 0xEDB88320u;
constexpr uint32_t mult_mod_p(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t m = 1u << 31; m != 0; m >>= 1) {
    if (a & m) product ^= b;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;  // b *= x
  }
  return product;
}
// x^(8 n) mod P, by square-and-multiply over the bits of 8 n.
constexpr uint32_t x8n_mod_p(uint64_t n) {
  uint32_t result = 1u << 31;  // x^0
  uint32_t power = 1u << 30;   // x^1, then x^2, x^4, ...
  for (uint64_t e = n * 8; e != 0; e >>= 1) {
    if (e & 1) result = mult_mod_p(result, power);
    power = mult_mod_p(power, power);
  }
  return result;
}
// Multiplication by x^(8 * 4096) is linear: one table of 256 products per byte of the factor.
struct PageShift {
  uint32_t t[4][256];
  constexpr PageShift() : t{} {
    constexpr uint32_t op = x8n_mod_p(4096);
    for (int k = 0; k < 4; ++k)
      for (uint32_t v = 0; v < 256; ++v) t[k][v] = mult_mod_p(op, v << (8 * k));
  }
};
const PageShift kPageShift;
}  // namespace

RN_HOT uint32_t crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
  if (len_b == 4096)
    return kPageShift.t[0][crc_a & 0xFF] ^ kPageShift.t[1][(crc_a >> 8) & 0xFF] ^
           kPageShift.t[2][(crc_a >> 16) & 0xFF] ^ kPageShift.t[3][crc_a >> 24] ^ crc_b;
  return mult_mod_p(x8n_mod_p(len_b), crc_a) ^ crc_b;
}

RN_HOT uint32_t icrc_roce_v2(const uint8_t* l3, size_t l3_len, bool ipv6) {
  const size_t ip_len = ipv6 ? kIpv6HdrLen : kIpv4HdrLen;
  const size_t masked_len = ip_len + kUdpHdrLen + kBthLen;
  if (l3 == nullptr || l3_len < masked_len) return 0;

  // Small packets (ACKs, CNPs, short SENDs) are copied whole so that the CRC is one ISA-L call:
  // each call has a fixed cost of about 15 ns, as much as the CRC of ~1 KiB.
  constexpr size_t kOneShotMax = 256;
  alignas(16) uint8_t hdr[kOneShotMax];
  const bool one_shot = l3_len <= kOneShotMax;
  std::memcpy(hdr, l3, one_shot ? l3_len : masked_len);
  if (ipv6) {
    // Traffic class, flow label (version nibble kept): 6F FF FF FF. Hop limit.
    hdr[0] |= 0x0F;
    hdr[1] = 0xFF;
    hdr[2] = 0xFF;
    hdr[3] = 0xFF;
    hdr[offsetof(Ipv6Hdr, hop_limit)] = 0xFF;
  } else {
    hdr[offsetof(Ipv4Hdr, tos)] = 0xFF;
    hdr[offsetof(Ipv4Hdr, ttl)] = 0xFF;
    hdr[offsetof(Ipv4Hdr, checksum)] = 0xFF;
    hdr[offsetof(Ipv4Hdr, checksum) + 1] = 0xFF;
  }
  uint8_t* udp = hdr + ip_len;
  udp[offsetof(UdpHdr, checksum)] = 0xFF;
  udp[offsetof(UdpHdr, checksum) + 1] = 0xFF;
  uint8_t* bth = udp + kUdpHdrLen;
  bth[offsetof(Bth, fecn_becn)] = 0xFF;

  if (one_shot) return crc32_gzip_refl(kIcrcSeed, hdr, l3_len);
  const uint32_t crc = crc32_gzip_refl(kIcrcSeed, hdr, masked_len);
  return crc32_gzip_refl(crc, l3 + masked_len, l3_len - masked_len);
}

}  // namespace rn::wire
