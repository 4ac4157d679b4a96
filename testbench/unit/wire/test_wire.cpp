// Unit tests of the wire block (rn_wire): layouts, opcode table, transport codec, ICRC,
// RoCEv2/IPv4 framing and the pcap writer.
#include <pcap/pcap.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/wire/framing.h"
#include "model/wire/headers.h"
#include "model/wire/icrc.h"
#include "model/wire/opcodes.h"
#include "model/wire/pcap_writer.h"
#include "model/wire/transport.h"

using namespace rn::wire;

namespace {

// roce-v2.md test vector: RC RDMA_WRITE_ONLY, payload "hello", PadCnt 3, AckReq, PSN 0x123456.
const std::vector<uint8_t> kRefVector = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,  // eth
    0x45, 0x02, 0x00, 0x44, 0x00, 0x01, 0x40, 0x00, 0x40, 0x11, 0x26, 0xa4, 0x0a, 0x00,  // ip
    0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,                                                  //
    0xc1, 0x23, 0x12, 0xb7, 0x00, 0x30, 0x00, 0x00,                                      // udp
    0x0a, 0x30, 0xff, 0xff, 0x00, 0x00, 0x00, 0x11, 0x80, 0x12, 0x34, 0x56,              // bth
    0x00, 0x00, 0x7f, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x00,  // reth
    0x00, 0x05,                                                                          //
    0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x00, 0x00, 0x00,                                      // hello
    0x10, 0x2e, 0xd4, 0x57};                                                             // icrc

// Scapy test/contrib/roce.uts "RoCE layer": UC SEND_ONLY over IPv4 (UDP checksum non-zero),
// rebuilt with Scapy 2.5.0 (first 78 bytes; the IP datagram ends there).
const std::vector<uint8_t> kScapyUcVector = {
    0x24, 0x8a, 0x07, 0xa8, 0xfa, 0x22, 0x24, 0x8a, 0x07, 0xa8, 0xfa, 0x22, 0x08, 0x00, 0x45, 0x01,
    0x00, 0x40, 0x04, 0x78, 0x40, 0x00, 0x40, 0x11, 0xb4, 0xd5, 0xc0, 0xa8, 0x00, 0x07, 0xc0, 0xa8,
    0x00, 0x07, 0xc0, 0x00, 0x12, 0xb7, 0x00, 0x2c, 0xac, 0xa2, 0x24, 0x60, 0xff, 0xff, 0x00, 0x00,
    0x00, 0xd3, 0x00, 0xcf, 0x17, 0x10, 0x46, 0x30, 0x81, 0x8b, 0xe2, 0x89, 0x35, 0xd9, 0x0e, 0x9a,
    0x95, 0x50, 0x54, 0x01, 0xbe, 0x88, 0x5e, 0x50, 0x00, 0x00, 0x78, 0xf3, 0x53, 0xf3};

// Scapy roce.uts "RoCE CNP captured on ConnectX-4 Lx": a real hardware ICRC.
const std::vector<uint8_t> kCx4CnpVector = {
    0xe4, 0x1d, 0x2d, 0xab, 0x2b, 0xc2, 0x7c, 0xfe, 0x90, 0x64, 0x3b, 0x32, 0x08, 0x00, 0x45,
    0xc2, 0x00, 0x3c, 0x71, 0x8c, 0x40, 0x00, 0x40, 0x11, 0x91, 0x61, 0x0a, 0x00, 0x11, 0x01,
    0x0a, 0x00, 0x12, 0x01, 0x00, 0x00, 0x12, 0xb7, 0x00, 0x28, 0x00, 0x00, 0x81, 0x00, 0xff,
    0xff, 0x40, 0x00, 0x01, 0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x82, 0xfd, 0x00, 0x2a};

// RoCEv2 over IPv6 (traffic class 0x2a, flow label 0x12345, UDP checksum 0x1234), RC SEND_ONLY
// "abcdef", pad 2, FECN set; ICRC computed with Python zlib per the roce-v2.md recipe.
const std::vector<uint8_t> kIpv6Vector = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd, 0x62,
    0xa1, 0x23, 0x45, 0x00, 0x20, 0x11, 0x40, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xc0, 0x01, 0x12, 0xb7, 0x00, 0x20,
    0x12, 0x34, 0x04, 0xa0, 0xff, 0xff, 0x80, 0x00, 0x00, 0x42, 0x80, 0x00, 0x00, 0x01, 0x61,
    0x62, 0x63, 0x64, 0x65, 0x66, 0x00, 0x00, 0x32, 0xea, 0x1f, 0xd3};

PathInfo ref_path() {
  PathInfo p;
  p.src_mac = {0x02, 0, 0, 0, 0, 0x01};
  p.dst_mac = {0x02, 0, 0, 0, 0, 0x02};
  p.src_ip = 0x0A000001;
  p.dst_ip = 0x0A000002;
  p.tos = 0x02;
  p.ttl = 64;
  p.ip_id = 1;
  p.udp_sport = 0xc123;
  return p;
}

TransportHeader ref_header() {
  TransportHeader h;
  h.opcode = to_u8(Opcode::RC_RDMA_WRITE_ONLY);
  h.pad_cnt = 3;
  h.pkey = 0xFFFF;
  h.dest_qp = 0x11;
  h.ack_req = true;
  h.psn = 0x123456;
  h.reth_va = 0x00007f0000001000ull;
  h.reth_rkey = 0x1234;
  h.reth_len = 5;
  return h;
}

const RoceV2Ipv4Framing kV4;

// Builds a whole frame: transport header + payload + pad, then wrap().
std::vector<uint8_t> build_frame(TransportHeader h, const uint8_t* payload, size_t n,
                                 const PathInfo& path) {
  h.pad_cnt = pad_for(n);
  const size_t hl = transport_header_len(h.opcode);
  const size_t tlen = hl + n + h.pad_cnt;
  std::vector<uint8_t> f(kV4.frame_len(tlen), 0xEE);
  REQUIRE(encode_transport_header(h, f.data() + kV4.headroom()) == hl);
  if (n) std::memcpy(f.data() + kV4.headroom() + hl, payload, n);
  std::memset(f.data() + kV4.headroom() + hl + n, 0, h.pad_cnt);
  REQUIRE(kV4.wrap(f.data(), tlen, path) == f.size());
  return f;
}

uint32_t icrc_wire_be(const std::vector<uint8_t>& f, size_t frame_len) {
  return load_be32(f.data() + frame_len - 4);
}

void require_same_header(const TransportHeader& a, const TransportHeader& b) {
  const OpInfo& info = op_info(a.opcode);
  REQUIRE(a.opcode == b.opcode);
  REQUIRE(a.se == b.se);
  REQUIRE(a.mig_req == b.mig_req);
  REQUIRE(a.pad_cnt == b.pad_cnt);
  REQUIRE(a.pkey == b.pkey);
  REQUIRE(a.fecn == b.fecn);
  REQUIRE(a.becn == b.becn);
  REQUIRE(a.dest_qp == b.dest_qp);
  REQUIRE(a.ack_req == b.ack_req);
  REQUIRE(a.psn == b.psn);
  auto pick = [](bool present, auto v) { return present ? v : decltype(v){}; };
  const bool reth = info.has(kExtReth), aeth = info.has(kExtAeth), imm = info.has(kExtImmDt);
  const bool at = info.has(kExtAtomicEth), ack = info.has(kExtAtomicAckEth);
  const bool ieth = info.has(kExtIeth), deth = info.has(kExtDeth);
  REQUIRE(pick(reth, a.reth_va) == b.reth_va);
  REQUIRE(pick(reth, a.reth_rkey) == b.reth_rkey);
  REQUIRE(pick(reth, a.reth_len) == b.reth_len);
  REQUIRE(pick(imm, a.imm) == b.imm);
  REQUIRE(pick(aeth, a.aeth_syndrome) == b.aeth_syndrome);
  REQUIRE(pick(aeth, a.aeth_msn) == b.aeth_msn);
  REQUIRE(pick(at, a.atomic_va) == b.atomic_va);
  REQUIRE(pick(at, a.atomic_rkey) == b.atomic_rkey);
  REQUIRE(pick(at, a.atomic_swap_add) == b.atomic_swap_add);
  REQUIRE(pick(at, a.atomic_compare) == b.atomic_compare);
  REQUIRE(pick(ack, a.atomic_ack_orig) == b.atomic_ack_orig);
  REQUIRE(pick(ieth, a.ieth_rkey) == b.ieth_rkey);
  REQUIRE(pick(deth, a.deth_qkey) == b.deth_qkey);
  REQUIRE(pick(deth, a.deth_src_qp) == b.deth_src_qp);
}

TransportHeader random_header(uint8_t opcode, std::mt19937_64& rng) {
  TransportHeader h;
  auto r = [&rng]() { return rng(); };
  h.opcode = opcode;
  h.se = r() & 1;
  h.mig_req = r() & 1;
  h.pkey = static_cast<uint16_t>(r());
  h.fecn = r() & 1;
  h.becn = r() & 1;
  h.dest_qp = r() & 0xFFFFFF;
  h.ack_req = r() & 1;
  h.psn = r() & kPsnMask;
  h.reth_va = r();
  h.reth_rkey = static_cast<uint32_t>(r());
  h.reth_len = static_cast<uint32_t>(r());
  h.imm = static_cast<uint32_t>(r());
  h.aeth_syndrome = static_cast<uint8_t>(r());
  h.aeth_msn = r() & kMsnMask;
  h.atomic_va = r();
  h.atomic_rkey = static_cast<uint32_t>(r());
  h.atomic_swap_add = r();
  h.atomic_compare = r();
  h.atomic_ack_orig = r();
  h.ieth_rkey = static_cast<uint32_t>(r());
  h.deth_qkey = static_cast<uint32_t>(r());
  h.deth_src_qp = r() & 0xFFFFFF;
  return h;
}

}  // namespace

// ------------------------------------------------------------------------------------------
TEST_CASE("byte helpers are big-endian and alignment-free", "[wire][headers]") {
  uint8_t b[16] = {};
  store_be64(b + 1, 0x0102030405060708ull);
  REQUIRE(b[1] == 0x01);
  REQUIRE(b[8] == 0x08);
  REQUIRE(load_be64(b + 1) == 0x0102030405060708ull);
  REQUIRE(load_be32(b + 1) == 0x01020304u);
  REQUIRE(load_be24(b + 1) == 0x010203u);
  REQUIRE(load_be16(b + 3) == 0x0304u);
  store_le32(b + 3, 0x11223344u);
  REQUIRE(b[3] == 0x44);
  REQUIRE(load_le32(b + 3) == 0x11223344u);
  store_be16(b, 0xBEEF);
  REQUIRE(load_be16(b) == 0xBEEF);
  store_be24(b + 5, 0xABCDEF);
  REQUIRE(load_be24(b + 5) == 0xABCDEFu);
  REQUIRE(offsetof(Ipv4Hdr, checksum) == 10);
  REQUIRE(offsetof(Bth, psn) == 9);
  REQUIRE(offsetof(AtomicEth, compare) == 20);
  REQUIRE(offsetof(Deth, src_qp) == 5);
}

TEST_CASE("opcode table matches roce-v2.md", "[wire][opcodes]") {
  int valid = 0;
  for (int op = 0; op < 256; ++op) valid += op_info(static_cast<uint8_t>(op)).valid;
  REQUIRE(valid == 23 + 12 + 2 + 1);  // RC + UC + UD + CNP

  struct Row {
    Opcode op;
    size_t hdr;
    bool payload;
    OpInfo::Pos pos;
    OpInfo::Kind kind;
  };
  using P = OpInfo::Pos;
  using K = OpInfo::Kind;
  const Row rows[] = {
      {Opcode::RC_SEND_FIRST, 12, true, P::First, K::Send},
      {Opcode::RC_SEND_MIDDLE, 12, true, P::Middle, K::Send},
      {Opcode::RC_SEND_LAST_WITH_IMMEDIATE, 16, true, P::Last, K::Send},
      {Opcode::RC_SEND_ONLY_WITH_IMMEDIATE, 16, true, P::Only, K::Send},
      {Opcode::RC_RDMA_WRITE_FIRST, 28, true, P::First, K::Write},
      {Opcode::RC_RDMA_WRITE_MIDDLE, 12, true, P::Middle, K::Write},
      {Opcode::RC_RDMA_WRITE_LAST_WITH_IMMEDIATE, 16, true, P::Last, K::Write},
      {Opcode::RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE, 32, true, P::Only, K::Write},
      {Opcode::RC_RDMA_READ_REQUEST, 28, false, P::Only, K::ReadReq},
      {Opcode::RC_RDMA_READ_RESPONSE_FIRST, 16, true, P::First, K::ReadResp},
      {Opcode::RC_RDMA_READ_RESPONSE_MIDDLE, 12, true, P::Middle, K::ReadResp},
      {Opcode::RC_RDMA_READ_RESPONSE_LAST, 16, true, P::Last, K::ReadResp},
      {Opcode::RC_RDMA_READ_RESPONSE_ONLY, 16, true, P::Only, K::ReadResp},
      {Opcode::RC_ACKNOWLEDGE, 16, false, P::None, K::Ack},
      {Opcode::RC_ATOMIC_ACKNOWLEDGE, 24, false, P::None, K::AtomicAck},
      {Opcode::RC_COMPARE_SWAP, 40, false, P::Only, K::CmpSwap},
      {Opcode::RC_FETCH_ADD, 40, false, P::Only, K::FetchAdd},
      {Opcode::RC_SEND_LAST_WITH_INVALIDATE, 16, true, P::Last, K::Send},
      {Opcode::RC_SEND_ONLY_WITH_INVALIDATE, 16, true, P::Only, K::Send},
      {Opcode::UC_SEND_FIRST, 12, true, P::First, K::Send},
      {Opcode::UC_RDMA_WRITE_ONLY_WITH_IMMEDIATE, 32, true, P::Only, K::Write},
      {Opcode::UD_SEND_ONLY, 20, true, P::Only, K::Send},
      {Opcode::UD_SEND_ONLY_WITH_IMMEDIATE, 24, true, P::Only, K::Send},
      {Opcode::CNP, 28, false, P::None, K::Cnp},
  };
  for (const Row& r : rows) {
    const OpInfo& i = op_info(r.op);
    INFO(i.name);
    REQUIRE(i.valid);
    REQUIRE(transport_header_len(to_u8(r.op)) == r.hdr);
    REQUIRE(i.has_payload == r.payload);
    REQUIRE(i.pos == r.pos);
    REQUIRE(i.kind == r.kind);
  }
  REQUIRE(std::string(op_info(0x0A).name) == "RC_RDMA_WRITE_ONLY");
  REQUIRE(std::string(op_info(0x2A).name) == "UC_RDMA_WRITE_ONLY");
  REQUIRE(std::string(op_info(0x64).name) == "UD_SEND_ONLY");
  REQUIRE(op_info(0x12).ext_mask == (kExtAeth | kExtAtomicAckEth));
  REQUIRE(op_info(0x65).ext_mask == (kExtDeth | kExtImmDt));
  REQUIRE(op_info(0x0B).ext_mask == (kExtReth | kExtImmDt));
  // UC has no READ, ACK or atomics; RD and vendor opcodes are not modelled.
  for (uint8_t op : {0x2C, 0x2D, 0x31, 0x33, 0x34, 0x36, 0x37, 0x40, 0x4A, 0x60, 0x80, 0x15, 0xC0})
    REQUIRE_FALSE(op_info(op).valid);
  REQUIRE(op_info(0x24).transport == Transport::UC);
  REQUIRE(op_info(0x64).transport == Transport::UD);
  REQUIRE(op_info(0x81).transport == Transport::CNP);
  REQUIRE(transport_header_len(0x40) == 0);
}

TEST_CASE("AETH syndrome helpers", "[wire][opcodes]") {
  REQUIRE(aeth_ack() == 0x1F);
  REQUIRE(aeth_is_ack(kAethSynAck));
  REQUIRE(aeth_rnr_nak(14) == 0x2E);
  REQUIRE(aeth_is_rnr_nak(0x2E));
  REQUIRE(aeth_value(0x2E) == 14);
  REQUIRE(aeth_nak(NakCode::PsnSeqError) == 0x60);
  REQUIRE(aeth_nak(NakCode::InvalidRequest) == 0x61);
  REQUIRE(aeth_nak(NakCode::RemoteAccessError) == 0x62);
  REQUIRE(aeth_nak(NakCode::RemoteOpError) == 0x63);
  REQUIRE(aeth_nak(NakCode::InvalidRdRequest) == 0x64);
  REQUIRE(aeth_is_nak(0x63));
  REQUIRE(aeth_type(0x40) == AethType::Reserved);
  REQUIRE(std::string(aeth_syndrome_name(0x62)) == "NAK_REM_ACCESS_ERR");
  REQUIRE(std::string(aeth_syndrome_name(0x1F)) == "ACK");
  REQUIRE(aeth_credit_count(0) == 0);
  REQUIRE(aeth_credit_count(5) == 6);
  REQUIRE(aeth_credit_count(30) == 32768);
  REQUIRE(aeth_credit_count(31) == kCreditsUnlimited);
  REQUIRE(aeth_credit_code(0) == 0);
  REQUIRE(aeth_credit_code(7) == 5);
  REQUIRE(aeth_credit_code(100000) == 30);
  for (uint8_t c = 0; c < 31; ++c) REQUIRE(aeth_credit_code(aeth_credit_count(c)) == c);
  REQUIRE(rnr_timer_us(0) == 655360);
  REQUIRE(rnr_timer_us(1) == 10);
  REQUIRE(rnr_timer_us(12) == 640);
  REQUIRE(rnr_timer_us(31) == 491520);
  REQUIRE(rnr_timer_code_for_us(10) == 1);
  REQUIRE(rnr_timer_code_for_us(11) == 2);
  REQUIRE(rnr_timer_code_for_us(600000) == 0);
}

TEST_CASE("PSN arithmetic wraps at 24 bits", "[wire][opcodes]") {
  REQUIRE(psn_add(0xFFFFFF, 1) == 0);
  REQUIRE(psn_add(0xFFFFF0, 0x20) == 0x10);
  REQUIRE(psn_cmp(5, 3) > 0);
  REQUIRE(psn_cmp(3, 5) < 0);
  REQUIRE(psn_cmp(7, 7) == 0);
  REQUIRE(psn_cmp(0x000002, 0xFFFFFE) > 0);  // across the wrap
  REQUIRE(psn_cmp(0xFFFFFE, 0x000002) < 0);
  REQUIRE(psn_diff(0x000002, 0xFFFFFE) == 4);
  REQUIRE(psn_diff(0xFFFFFE, 0x000002) == -4);
  REQUIRE(psn_diff(0x7FFFFF, 0) == 0x7FFFFF);
  REQUIRE(psn_diff(0x800000, 0) == -0x800000);
}

// ------------------------------------------------------------------------------------------
TEST_CASE("roce-v2.md vector: encode + wrap byte for byte", "[wire][vector]") {
  const uint8_t hello[] = {'h', 'e', 'l', 'l', 'o'};
  const auto f = build_frame(ref_header(), hello, sizeof(hello), ref_path());
  REQUIRE(f.size() == kRefVector.size());
  for (size_t i = 0; i < f.size(); ++i) {
    INFO("byte " << i);
    REQUIRE(int(f[i]) == int(kRefVector[i]));
  }
  REQUIRE(icrc_wire_be(f, f.size()) == 0x102ed457u);
  REQUIRE(icrc_roce_v2(kRefVector.data() + 14, kRefVector.size() - 14 - 4, false) == 0x57d42e10u);
}

TEST_CASE("roce-v2.md vector: unwrap + decode gives back every field", "[wire][vector]") {
  size_t t_off = 0, t_len = 0;
  PathInfo seen;
  REQUIRE(kV4.unwrap(kRefVector.data(), kRefVector.size(), &t_off, &t_len, &seen) ==
          FrameError::None);
  REQUIRE(t_off == 42);
  REQUIRE(t_len == 36);
  const PathInfo p = ref_path();
  REQUIRE(seen.src_mac == p.src_mac);
  REQUIRE(seen.dst_mac == p.dst_mac);
  REQUIRE(seen.src_ip == p.src_ip);
  REQUIRE(seen.dst_ip == p.dst_ip);
  REQUIRE(seen.tos == p.tos);
  REQUIRE(seen.ttl == p.ttl);
  REQUIRE(seen.ip_id == p.ip_id);
  REQUIRE(seen.udp_sport == p.udp_sport);

  TransportHeader h;
  size_t hl = 0, pl = 0;
  REQUIRE(decode_transport(kRefVector.data() + t_off, t_len, &h, &hl, &pl) == ParseError::None);
  REQUIRE(hl == 28);
  REQUIRE(pl == 5);
  REQUIRE(std::memcmp(kRefVector.data() + t_off + hl, "hello", 5) == 0);
  const TransportHeader want = ref_header();
  require_same_header(want, h);
  REQUIRE(h.reth_va == 0x00007f0000001000ull);
  REQUIRE(h.reth_rkey == 0x1234);
  REQUIRE(h.reth_len == 5);
  REQUIRE(h.pad_cnt == 3);
  REQUIRE(h.ack_req);
  REQUIRE(h.psn == 0x123456);
  REQUIRE(h.dest_qp == 0x11);
  REQUIRE_FALSE(h.se);
  REQUIRE_FALSE(h.fecn);
  REQUIRE_FALSE(h.becn);
}

TEST_CASE("Scapy roce.uts IPv4 UC vector", "[wire][vector]") {
  const auto& v = kScapyUcVector;
  REQUIRE(icrc_wire_be(v, v.size()) == 0x78f353f3u);
  REQUIRE(load_le32(v.data() + v.size() - 4) == icrc_roce_v2(v.data() + 14, v.size() - 18, false));
  size_t t_off = 0, t_len = 0;
  PathInfo seen;
  REQUIRE(kV4.unwrap(v.data(), v.size(), &t_off, &t_len, &seen) == FrameError::None);
  REQUIRE(seen.tos == 0x01);
  REQUIRE(seen.ip_id == 1144);
  REQUIRE(seen.udp_sport == 49152);
  REQUIRE(seen.src_ip == 0xC0A80007u);
  TransportHeader h;
  size_t hl = 0, pl = 0;
  REQUIRE(decode_transport(v.data() + t_off, t_len, &h, &hl, &pl) == ParseError::None);
  REQUIRE(h.opcode == to_u8(Opcode::UC_SEND_ONLY));
  REQUIRE(h.mig_req);
  REQUIRE(h.pad_cnt == 2);
  REQUIRE(h.pkey == 0xFFFF);
  REQUIRE(h.dest_qp == 211);
  REQUIRE(h.psn == 13571856);
  REQUIRE(hl == 12);
  REQUIRE(pl == 18);

  // Re-encoding the decoded header + payload reproduces the transport bytes.
  std::vector<uint8_t> t(t_len);
  REQUIRE(encode_transport_header(h, t.data()) == 12);
  std::memcpy(t.data() + 12, v.data() + t_off + 12, t_len - 12);
  REQUIRE(std::memcmp(t.data(), v.data() + t_off, t_len) == 0);
}

TEST_CASE("ConnectX-4 Lx CNP capture (hardware ICRC)", "[wire][vector]") {
  const auto& v = kCx4CnpVector;
  REQUIRE(icrc_wire_be(v, v.size()) == 0x82fd002au);
  size_t t_off = 0, t_len = 0;
  PathInfo seen;
  REQUIRE(kV4.unwrap(v.data(), v.size(), &t_off, &t_len, &seen) == FrameError::None);
  REQUIRE(seen.tos == 0xC2);
  REQUIRE(seen.udp_sport == 0);
  TransportHeader h;
  size_t hl = 0, pl = 0;
  REQUIRE(decode_transport(v.data() + t_off, t_len, &h, &hl, &pl) == ParseError::None);
  REQUIRE(h.opcode == 0x81);
  REQUIRE(h.becn);
  REQUIRE_FALSE(h.fecn);
  REQUIRE(h.dest_qp == 0x118);
  REQUIRE(h.psn == 0);
  REQUIRE(hl == 28);
  REQUIRE(pl == 0);

  // Our own CNP with the same fields and path gives the same frame.
  TransportHeader c;
  c.opcode = to_u8(Opcode::CNP);
  c.becn = true;
  c.dest_qp = 0x118;
  PathInfo p = seen;
  const auto f = build_frame(c, nullptr, 0, p);
  REQUIRE(f == v);
}

TEST_CASE("IPv6 ICRC masks traffic class, flow label and hop limit", "[wire][icrc]") {
  const auto& v = kIpv6Vector;
  const uint32_t want = load_le32(v.data() + v.size() - 4);
  REQUIRE(icrc_roce_v2(v.data() + 14, v.size() - 18, true) == want);
  // Masked fields do not change the ICRC; unmasked ones do.
  auto m = v;
  m[14] = 0x6F;  // traffic class high nibble
  m[15] = 0x00;
  m[17] = 0x99;
  m[21] = 0x01;   // hop limit
  m[60] = 0;      // UDP checksum
  m[66] ^= 0xC0;  // FECN/BECN
  REQUIRE(icrc_roce_v2(m.data() + 14, m.size() - 18, true) == want);
  m[20] ^= 1;  // next header
  REQUIRE(icrc_roce_v2(m.data() + 14, m.size() - 18, true) != want);
  REQUIRE(icrc_roce_v2(v.data() + 14, 59, true) == 0);  // too short: 0
}

TEST_CASE("ICRC chaining equals a one-shot CRC-32 over the masked copy", "[wire][icrc]") {
  std::mt19937_64 rng(7);
  for (int n : {0, 1, 3, 4, 64, 1000, 4096, 9000}) {
    std::vector<uint8_t> l3(40 + n);
    for (auto& b : l3) b = static_cast<uint8_t>(rng());
    std::vector<uint8_t> all(8 + l3.size(), 0xFF);
    std::memcpy(all.data() + 8, l3.data(),
                l3.size());  // (vector::insert trips GCC 12 -Warray-bounds)
    all[8 + 1] = all[8 + 8] = all[8 + 10] = all[8 + 11] = 0xFF;  // tos ttl csum
    all[8 + 26] = all[8 + 27] = 0xFF;                            // udp csum
    all[8 + 32] = 0xFF;                                          // bth byte 4
    REQUIRE(icrc_roce_v2(l3.data(), l3.size(), false) == crc32_refl(0, all.data(), all.size()));
  }
  const uint8_t check[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
  REQUIRE(crc32_refl(0, check, 9) == 0xCBF43926u);  // the CRC-32 check value
}

TEST_CASE("crc32_combine equals the CRC of the concatenation", "[wire][icrc]") {
  std::mt19937_64 rng(99);
  for (size_t la : {0, 1, 7, 60, 4096}) {
    for (size_t lb : {0, 1, 2, 3, 100, 4095, 4096, 4097, 9000}) {
      std::vector<uint8_t> ab(la + lb + 1);
      for (auto& b : ab) b = static_cast<uint8_t>(rng());
      const uint32_t whole = crc32_refl(0, ab.data(), la + lb);
      const uint32_t a = crc32_refl(0, ab.data(), la), b = crc32_refl(0, ab.data() + la, lb);
      INFO("len a " << la << ", len b " << lb);
      REQUIRE(crc32_combine(a, b, lb) == whole);
      if (a != 0) REQUIRE(crc32_combine(a, b, lb + 1) != whole);  // the length matters
    }
  }
}

TEST_CASE("wrap with the payload outside the buffer gives the same frame", "[wire][icrc]") {
  // A WRITE MIDDLE with 4096 payload bytes: framed whole, then with the payload outside the
  // buffer (its bytes given, then only its CRC); the buffers' payload areas hold junk then.
  std::mt19937_64 rng(5);
  TransportHeader h = ref_header();
  h.opcode = to_u8(Opcode::RC_RDMA_WRITE_MIDDLE);
  h.pad_cnt = 0;
  std::vector<uint8_t> payload(4096);
  for (auto& b : payload) b = static_cast<uint8_t>(rng());
  const auto whole = build_frame(h, payload.data(), payload.size(), ref_path());
  RoceV2Ipv4Framing fr;
  const size_t hl = transport_header_len(h.opcode);
  const size_t off = fr.headroom() + hl;
  for (bool with_crc : {false, true}) {
    std::vector<uint8_t> buf(whole.size() + 64, 0xA5);
    encode_transport_header(h, buf.data() + fr.headroom());
    ExtPayload ext{payload.data(), off, payload.size(), with_crc,
                   crc32_refl(0, payload.data(), payload.size())};
    if (with_crc) ext.bytes = buf.data();  // not read: the CRC stands for it
    const size_t n = fr.wrap(buf.data(), hl + payload.size(), ref_path(), ext);
    REQUIRE(n == whole.size());
    std::memcpy(buf.data() + off, payload.data(), payload.size());  // what materialising does
    INFO("with_crc " << with_crc);
    REQUIRE(std::equal(whole.begin(), whole.end(), buf.begin()));
  }
  // The outside bytes may not cover the headers the ICRC masks, nor run past the transport.
  std::vector<uint8_t> buf(whole.size() + 64);
  CHECK(fr.wrap(buf.data(), hl + 4096, ref_path(), ExtPayload{payload.data(), 50, 4096}) == 0);
  CHECK(fr.wrap(buf.data(), hl + 4096, ref_path(), ExtPayload{payload.data(), off + 1, 4096}) == 0);
}

// ------------------------------------------------------------------------------------------
TEST_CASE("round trip of every valid opcode with random fields", "[wire][transport]") {
  std::mt19937_64 rng(12345);
  PathInfo path = ref_path();
  int tested = 0;
  for (int opi = 0; opi < 256; ++opi) {
    const uint8_t op = static_cast<uint8_t>(opi);
    const OpInfo& info = op_info(op);
    if (!info.valid) continue;
    for (int iter = 0; iter < 40; ++iter) {
      TransportHeader h = random_header(op, rng);
      size_t n = 0;
      if (info.has_payload) {
        const size_t choices[] = {0, 1, 2, 3, 4, 5, 255, 256, 1023, 1024, 4095, 4096};
        n = iter < 12 ? choices[iter] : rng() % 4200;
      }
      std::vector<uint8_t> payload(n);
      for (auto& b : payload) b = static_cast<uint8_t>(rng());
      path.udp_sport = roce_udp_sport(h.dest_qp);
      path.tos = static_cast<uint8_t>(rng());
      path.ip_id = static_cast<uint16_t>(rng());
      h.pad_cnt = pad_for(n);
      const auto f = build_frame(h, payload.data(), n, path);

      size_t t_off = 0, t_len = 0;
      PathInfo seen;
      REQUIRE(kV4.unwrap(f.data(), f.size(), &t_off, &t_len, &seen) == FrameError::None);
      REQUIRE(seen.tos == path.tos);
      REQUIRE(seen.ip_id == path.ip_id);
      REQUIRE(seen.udp_sport == path.udp_sport);
      TransportHeader d;
      size_t hl = 0, pl = 0;
      INFO(info.name << " payload " << n);
      REQUIRE(decode_transport(f.data() + t_off, t_len, &d, &hl, &pl) == ParseError::None);
      REQUIRE(hl == transport_header_len(op));
      REQUIRE(pl == n);
      REQUIRE(hl + pl + d.pad_cnt == t_len);
      require_same_header(h, d);
      if (n) REQUIRE(std::memcmp(f.data() + t_off + hl, payload.data(), n) == 0);
      ++tested;
    }
  }
  REQUIRE(tested == 38 * 40);
}

TEST_CASE("decode rejects truncated input at every length", "[wire][transport]") {
  std::mt19937_64 rng(99);
  for (int opi = 0; opi < 256; ++opi) {
    const uint8_t op = static_cast<uint8_t>(opi);
    const OpInfo& info = op_info(op);
    if (!info.valid) continue;
    TransportHeader h = random_header(op, rng);
    const size_t n = info.has_payload ? 7 : 0;
    h.pad_cnt = pad_for(n);
    const size_t hl = transport_header_len(op);
    const size_t full = hl + n + h.pad_cnt;
    // Decode from a heap buffer of exactly len bytes, so ASan would catch an over-read.
    for (size_t len = 0; len <= full; ++len) {
      std::vector<uint8_t> src(full);
      encode_transport_header(h, src.data());
      std::unique_ptr<uint8_t[]> buf(new uint8_t[len ? len : 1]);
      std::memcpy(buf.get(), src.data(), len);
      TransportHeader d;
      size_t dh = 0, dp = 0;
      const ParseError e = decode_transport(buf.get(), len, &d, &dh, &dp);
      INFO(info.name << " len " << len);
      if (len < hl) {
        REQUIRE(e == ParseError::Truncated);
      } else if (len < hl + h.pad_cnt) {
        REQUIRE(e == ParseError::BadPadding);
      } else {
        REQUIRE(e == ParseError::None);  // shorter payload is still a well-formed packet
        REQUIRE(dh + dp + d.pad_cnt == len);
      }
    }
  }
}

TEST_CASE("decode rejects bad TVer, unknown opcodes, bad pad, unexpected payload",
          "[wire][transport]") {
  uint8_t b[64] = {};
  TransportHeader h;
  h.opcode = to_u8(Opcode::RC_SEND_ONLY);
  REQUIRE(encode_transport_header(h, b) == 12);
  TransportHeader d;
  size_t hl = 0, pl = 0;
  REQUIRE(decode_transport(b, 12, &d, &hl, &pl) == ParseError::None);
  for (uint8_t tver = 1; tver < 16; ++tver) {
    b[1] = tver;
    REQUIRE(decode_transport(b, 12, &d, &hl, &pl) == ParseError::BadTver);
  }
  b[1] = 0;
  for (int op = 0; op < 256; ++op) {
    b[0] = static_cast<uint8_t>(op);
    const ParseError e = decode_transport(b, sizeof(b), &d, &hl, &pl);
    if (!op_info(b[0]).valid) {
      REQUIRE(e == ParseError::UnknownOpcode);
    } else {
      REQUIRE(e != ParseError::UnknownOpcode);
    }
  }
  REQUIRE(encode_transport_header(TransportHeader{0x40}, b) == 0);  // invalid opcode

  // Pad larger than what follows the headers.
  h.pad_cnt = 3;
  encode_transport_header(h, b);
  REQUIRE(decode_transport(b, 14, &d, &hl, &pl) == ParseError::BadPadding);
  REQUIRE(decode_transport(b, 15, &d, &hl, &pl) == ParseError::None);
  REQUIRE(pl == 0);
  // ACK with trailing bytes; ACK with a pad count.
  TransportHeader a;
  a.opcode = to_u8(Opcode::RC_ACKNOWLEDGE);
  encode_transport_header(a, b);
  REQUIRE(decode_transport(b, 16, &d, &hl, &pl) == ParseError::None);
  REQUIRE(decode_transport(b, 20, &d, &hl, &pl) == ParseError::UnexpectedPayload);
  a.pad_cnt = 1;
  encode_transport_header(a, b);
  REQUIRE(decode_transport(b, 16, &d, &hl, &pl) == ParseError::BadPadding);
  for (auto e : {ParseError::None, ParseError::Truncated, ParseError::BadTver,
                 ParseError::UnknownOpcode, ParseError::BadPadding, ParseError::UnexpectedPayload})
    REQUIRE(std::string(to_string(e)) != "?");
}

TEST_CASE("encode writes reserved bits and TVer as zero and masks 24-bit fields",
          "[wire][transport]") {
  TransportHeader h;
  h.opcode = to_u8(Opcode::UD_SEND_ONLY_WITH_IMMEDIATE);
  h.dest_qp = 0xFF123456;
  h.psn = 0xAB654321;
  h.deth_src_qp = 0xEE000001;
  h.deth_qkey = kGsiQkey;
  h.imm = 0xDEADBEEF;
  h.pad_cnt = 7;  // only 2 bits are kept
  uint8_t b[24];
  std::memset(b, 0xA5, sizeof(b));
  REQUIRE(encode_transport_header(h, b) == 24);
  REQUIRE(b[1] == 0x30);
  REQUIRE(b[4] == 0x00);
  REQUIRE(load_be24(b + 5) == 0x123456u);
  REQUIRE(b[8] == 0x00);
  REQUIRE(load_be24(b + 9) == 0x654321u);
  REQUIRE(load_be32(b + 12) == kGsiQkey);
  REQUIRE(b[16] == 0);
  REQUIRE(load_be24(b + 17) == 1u);
  REQUIRE(load_be32(b + 20) == 0xDEADBEEFu);
}

// ------------------------------------------------------------------------------------------
TEST_CASE("unwrap rejects bad frames", "[wire][framing]") {
  const uint8_t hello[] = {'h', 'e', 'l', 'l', 'o'};
  const auto good = build_frame(ref_header(), hello, sizeof(hello), ref_path());
  size_t o = 0, l = 0;
  auto unwrap = [&](const std::vector<uint8_t>& f) {
    return kV4.unwrap(f.data(), f.size(), &o, &l, nullptr);
  };
  REQUIRE(unwrap(good) == FrameError::None);

  SECTION("bad IP checksum") {
    auto f = good;
    f[24] ^= 0x01;
    REQUIRE(unwrap(f) == FrameError::BadIpChecksum);
  }
  SECTION("wrong UDP port") {
    auto f = good;
    store_be16(f.data() + 36, 4790);
    REQUIRE(unwrap(f) == FrameError::NotRoceV2Port);
  }
  SECTION("corrupted payload byte") {
    auto f = good;
    f[72] ^= 0x20;
    REQUIRE(unwrap(f) == FrameError::BadIcrc);
  }
  SECTION("corrupted ICRC") {
    auto f = good;
    f.back() ^= 0x80;
    REQUIRE(unwrap(f) == FrameError::BadIcrc);
  }
  SECTION("a sealed frame skips only the ICRC recomputation") {
    // Sealed means the sender vouches the ICRC matches the bytes (net::Frame::icrc_sealed); a
    // frame changed in flight must be unsealed by whoever changed it. Every other check runs.
    auto f = good;
    f.back() ^= 0x80;
    REQUIRE(kV4.unwrap(f.data(), f.size(), &o, &l, nullptr, true) == FrameError::None);
    f[24] ^= 0x01;
    REQUIRE(kV4.unwrap(f.data(), f.size(), &o, &l, nullptr, true) == FrameError::BadIpChecksum);
  }
  SECTION("not IPv4") {
    auto f = good;
    store_be16(f.data() + 12, kEtherTypeIpv6);
    REQUIRE(unwrap(f) == FrameError::NotIpv4);
    store_be16(f.data() + 12, kEtherTypeVlan);
    REQUIRE(unwrap(f) == FrameError::NotIpv4);
  }
  SECTION("IP options / version") {
    auto f = good;
    f[14] = 0x46;
    REQUIRE(unwrap(f) == FrameError::BadIpHeader);
    f[14] = 0x65;
    REQUIRE(unwrap(f) == FrameError::BadIpHeader);
  }
  // Helpers that change an IP field and fix the checksum so that the intended check fires.
  auto fix_csum = [](std::vector<uint8_t>& f) {
    store_be16(f.data() + 24, 0);
    store_be16(f.data() + 24, ipv4_header_checksum(f.data() + 14));
  };
  SECTION("not UDP") {
    auto f = good;
    f[23] = 6;
    fix_csum(f);
    REQUIRE(unwrap(f) == FrameError::NotUdp);
  }
  SECTION("fragments") {
    auto f = good;
    store_be16(f.data() + 20, 0x2000);
    fix_csum(f);
    REQUIRE(unwrap(f) == FrameError::Fragmented);
    store_be16(f.data() + 20, 0x0001);
    fix_csum(f);
    REQUIRE(unwrap(f) == FrameError::Fragmented);
  }
  SECTION("length fields") {
    auto f = good;
    store_be16(f.data() + 38, static_cast<uint16_t>(load_be16(f.data() + 38) - 4));
    REQUIRE(unwrap(f) == FrameError::BadLength);  // UDP length != IP total - 20
    f = good;
    store_be16(f.data() + 16, static_cast<uint16_t>(load_be16(f.data() + 16) + 4));
    fix_csum(f);
    REQUIRE(unwrap(f) == FrameError::Truncated);  // IP says more than the frame has
    f = good;
    store_be16(f.data() + 16, 27);
    fix_csum(f);
    REQUIRE(unwrap(f) == FrameError::BadLength);
    f = good;
    store_be16(f.data() + 16, 20 + 8 + 12 + 3);  // BTH + 3 bytes: no room for the ICRC
    store_be16(f.data() + 38, 8 + 12 + 3);
    fix_csum(f);
    REQUIRE(unwrap(f) == FrameError::BadLength);
  }
  SECTION("trailing Ethernet padding is ignored") {
    auto f = good;
    f.resize(f.size() + 20, 0);
    REQUIRE(unwrap(f) == FrameError::None);
    REQUIRE(l == 36);
  }
  SECTION("truncated at every length, from an exact-size heap buffer") {
    for (size_t len = 0; len < good.size(); ++len) {
      std::unique_ptr<uint8_t[]> b(new uint8_t[len ? len : 1]);
      std::memcpy(b.get(), good.data(), len);
      INFO("len " << len);
      REQUIRE(kV4.unwrap(b.get(), len, &o, &l, nullptr) == FrameError::Truncated);
    }
  }
  SECTION("every single-bit flip is caught unless the field is not protected") {
    for (size_t i = 0; i < good.size(); ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        auto f = good;
        f[i] ^= static_cast<uint8_t>(1u << bit);
        const FrameError e = unwrap(f);
        INFO("byte " << i << " bit " << bit << " -> " << to_string(e));
        // MACs (0..11), UDP checksum (40, 41) and BTH FECN/BECN/resv (46) are outside the
        // ICRC; none of the other bytes may be changed undetected.
        const bool unprotected = i < 12 || i == 40 || i == 41 || i == 46;
        if (unprotected)
          REQUIRE(e == FrameError::None);
        else
          REQUIRE(e != FrameError::None);
      }
    }
  }
  for (auto e :
       {FrameError::None, FrameError::Truncated, FrameError::NotIpv4, FrameError::BadIpHeader,
        FrameError::Fragmented, FrameError::BadIpChecksum, FrameError::NotUdp,
        FrameError::NotRoceV2Port, FrameError::BadLength, FrameError::BadIcrc})
    REQUIRE(std::string(to_string(e)) != "?");
}

TEST_CASE("wrap pads short frames to 60 bytes and writes DF, TTL, checksum 0", "[wire][framing]") {
  TransportHeader h;
  h.opcode = to_u8(Opcode::RC_SEND_ONLY);  // 12-byte transport, 58-byte frame before padding
  PathInfo p = ref_path();
  p.ttl = 17;
  const auto f = build_frame(h, nullptr, 0, p);
  REQUIRE(f.size() == kEthMinFrame);
  REQUIRE(kV4.frame_len(12) == 60);
  REQUIRE(kV4.frame_len(100) == 146);
  REQUIRE(load_be16(f.data() + 16) == 20 + 8 + 12 + 4);
  REQUIRE(load_be16(f.data() + 20) == kIpv4FlagDf);
  REQUIRE(f[22] == 17);
  REQUIRE(load_be16(f.data() + 40) == 0);
  REQUIRE(f[58] == 0);
  REQUIRE(f[59] == 0);
  size_t o = 0, l = 0;
  REQUIRE(kV4.unwrap(f.data(), f.size(), &o, &l, nullptr) == FrameError::None);
  REQUIRE(l == 12);
  std::vector<uint8_t> big(70000);
  REQUIRE(kV4.wrap(big.data(), RoceV2Ipv4Framing::kMaxTransportLen + 1, p) == 0);
  REQUIRE(kV4.wrap(big.data(), RoceV2Ipv4Framing::kMaxTransportLen, p) == 65535 + 14);
}

TEST_CASE("UDP source port: rxe hash, dynamic range, fixed per QP", "[wire][framing]") {
  REQUIRE(roce_udp_sport(0) == 0xC000);
  // hash_32(0x11, 14) = (0x11 * 0x61C88647 mod 2^32) >> 18
  REQUIRE(roce_udp_sport(0x11) == (0xC000 | ((0x11u * 0x61C88647u) >> 18)));
  int distinct = 0;
  uint16_t prev = 0;
  for (uint32_t q = 1; q < 2000; ++q) {
    const uint16_t s = roce_udp_sport(q);
    REQUIRE(s >= 0xC000);
    REQUIRE(s == roce_udp_sport(q));
    distinct += s != prev;
    prev = s;
  }
  REQUIRE(distinct > 1990);
}

// ------------------------------------------------------------------------------------------
TEST_CASE("PcapWriter writes a nanosecond pcap that libpcap reads back", "[wire][pcap]") {
  char path[] = "/tmp/rn_wire_pcap_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  std::string err;
  {
    PcapWriter w;
    REQUIRE_FALSE(w.open("/nonexistent-dir/x.pcap", 256, &err));
    REQUIRE_FALSE(err.empty());
    REQUIRE(w.open(path, 64, &err));
    w.write(1'234'567'890'123'456ull, kRefVector.data(), kRefVector.size());  // 1234.567890123 s
    w.write(999, kCx4CnpVector.data(), kCx4CnpVector.size());                 // 0 ns
    PcapWriter moved = std::move(w);
    REQUIRE_FALSE(w.is_open());
    moved.write(2'000'000'000'000ull, kScapyUcVector.data(), kScapyUcVector.size());
    REQUIRE(moved.packets() == 3);
  }
  char ebuf[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, ebuf);
  REQUIRE(p != nullptr);
  REQUIRE(pcap_datalink(p) == DLT_EN10MB);
  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  REQUIRE(pcap_next_ex(p, &hdr, &data) == 1);
  REQUIRE(hdr->ts.tv_sec == 1234);
  REQUIRE(hdr->ts.tv_usec == 567890123);
  REQUIRE(hdr->len == kRefVector.size());
  REQUIRE(hdr->caplen == 64);  // snaplen
  REQUIRE(std::memcmp(data, kRefVector.data(), 64) == 0);
  REQUIRE(pcap_next_ex(p, &hdr, &data) == 1);
  REQUIRE(hdr->ts.tv_sec == 0);
  REQUIRE(hdr->ts.tv_usec == 0);
  REQUIRE(hdr->caplen == 64);
  REQUIRE(hdr->len == kCx4CnpVector.size());
  REQUIRE(pcap_next_ex(p, &hdr, &data) == 1);
  REQUIRE(hdr->ts.tv_sec == 2);
  REQUIRE(pcap_next_ex(p, &hdr, &data) == PCAP_ERROR_BREAK);
  pcap_close(p);
  std::remove(path);
}

TEST_CASE("PcapWriter: many frames through the writer thread, in order, byte for byte",
          "[wire][pcap]") {
  // 6000 frames of up to 4 KiB: several 4 MiB hand-overs to the writer thread. flush() must leave
  // every frame written so far readable while the writer is still open; close() the rest.
  char path[] = "/tmp/rn_wire_pcap_many_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  auto frame_of = [](int i) {
    std::vector<uint8_t> f(60 + (i * 37) % 4037);
    for (size_t k = 0; k < f.size(); ++k) f[k] = static_cast<uint8_t>(i * 7 + k * 13);
    return f;
  };
  auto check = [&](int upto) {
    char ebuf[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    REQUIRE(p != nullptr);
    pcap_pkthdr* hdr = nullptr;
    const u_char* data = nullptr;
    int n = 0;
    while (pcap_next_ex(p, &hdr, &data) == 1) {
      const auto f = frame_of(n);
      INFO("frame " << n);
      REQUIRE(hdr->caplen == f.size());
      REQUIRE(hdr->ts.tv_usec == static_cast<long>(n));  // n ns
      REQUIRE(std::memcmp(data, f.data(), f.size()) == 0);
      ++n;
    }
    pcap_close(p);
    CHECK(n == upto);
  };
  std::string err;
  PcapWriter w;
  REQUIRE(w.open(path, 65535, &err));
  for (int i = 0; i < 3000; ++i)
    w.write(uint64_t(i) * 1000, frame_of(i).data(), frame_of(i).size());
  w.flush();
  check(3000);
  for (int i = 3000; i < 6000; ++i)
    w.write(uint64_t(i) * 1000, frame_of(i).data(), frame_of(i).size());
  CHECK(w.packets() == 6000);
  w.close();
  check(6000);
  std::remove(path);
}

TEST_CASE("PcapWriter: close reports a failed write (disk full) instead of a short file",
          "[wire][pcap]") {
  std::vector<uint8_t> frame(1500, 0xA5);
  std::string err;
  {
    // /dev/full takes the open and refuses every write with ENOSPC.
    PcapWriter w;
    REQUIRE(w.open("/dev/full", 65535, &err));
    for (int i = 0; i < 10; ++i) w.write(uint64_t(i) * 1000, frame.data(), frame.size());
    CHECK_FALSE(w.close(&err));
    CHECK(err == std::strerror(ENOSPC));
    CHECK(w.close(&err));  // closed: nothing left to fail
  }
  {
    // Past the writer thread's chunks too (several MiB).
    PcapWriter w;
    REQUIRE(w.open("/dev/full", 65535, &err));
    for (int i = 0; i < 5000; ++i) w.write(uint64_t(i) * 1000, frame.data(), frame.size());
    err.clear();
    CHECK_FALSE(w.close(&err));
    CHECK(err == std::strerror(ENOSPC));
  }
  {
    char path[] = "/tmp/rnicsim_pcap_ok_XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    PcapWriter w;
    REQUIRE(w.open(path, 65535, &err));
    w.write(0, frame.data(), frame.size());
    CHECK(w.close(&err));
    std::remove(path);
  }
}
