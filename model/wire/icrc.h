// The RoCEv2 invariant CRC (ICRC), computed as rxe does (rxe_icrc.c) with ISA-L's
// PCLMUL-accelerated reflected CRC-32.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rn::wire {

// l3_start points at the IP header (IPv4 without options, or IPv6), followed by UDP, BTH,
// the rest of the transport headers, payload and pad; l3_len_without_icrc counts all of that
// but not the ICRC itself and must be >= IP + UDP + BTH (20+8+12 or 40+8+12), else 0 is
// returned. Returns the ICRC as a value whose little-endian bytes are the wire bytes:
// store_le32(icrc_pos, icrc_roce_v2(...)). (Scapy and tshark print the wire bytes read
// big-endian, i.e. the byte-swapped value.) Allocation-free; masks a <= 60-byte copy of the
// headers on the stack and runs the CRC over the rest in place.
uint32_t icrc_roce_v2(const uint8_t* l3_start, size_t l3_len_without_icrc, bool ipv6);

// Reflected CRC-32 (zlib/gzip convention: crc32(0, ...) of nothing is 0) over len bytes,
// continuing from prev. Exposed for tests and other blocks.
uint32_t crc32_refl(uint32_t prev, const uint8_t* data, size_t len);

// CRC-32 (as crc32_refl) of A followed by B, from crc_a = crc32_refl(0, A), crc_b =
// crc32_refl(0, B) and len_b, without reading A or B. crc32_refl(prev, B, len_b) ==
// crc32_combine(prev, crc32_refl(0, B, len_b), len_b). About 25 ns; len_b == 4096 (one page)
// takes four table lookups.
uint32_t crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

}  // namespace rn::wire
