// Writes a pcap of varied RoCEv2/IPv4 frames built with rn_wire, for independent checks by
// Scapy (check_icrc_scapy.py) and tshark (check_pcap_tshark.sh).
//
//   wire_dump_frames [--corrupt-icrc | --malformed | --unknown-opcode] OUT.pcap
//
// The options add one deliberately broken frame, so that the checkers can be shown to fail.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "model/wire/framing.h"
#include "model/wire/opcodes.h"
#include "model/wire/pcap_writer.h"
#include "model/wire/transport.h"

using namespace rn::wire;

namespace {

struct Spec {
  Opcode op;
  size_t payload;
  TransportHeader h;  // opcode/pad are filled in
};

TransportHeader hdr(uint32_t qp, uint32_t psn, bool ack_req = false) {
  TransportHeader h;
  h.dest_qp = qp;
  h.psn = psn;
  h.ack_req = ack_req;
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode, out;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--", 0) == 0)
      mode = a;
    else
      out = a;
  }
  if (out.empty() || (!mode.empty() && mode != "--corrupt-icrc" && mode != "--malformed" &&
                      mode != "--unknown-opcode")) {
    std::fprintf(stderr, "usage: %s [--corrupt-icrc|--malformed|--unknown-opcode] OUT.pcap\n",
                 argv[0]);
    return 2;
  }

  std::vector<Spec> specs;
  auto add = [&specs](Opcode op, size_t n, TransportHeader h) { specs.push_back({op, n, h}); };
  const uint32_t qp = 0x11, qp2 = 0x12;

  add(Opcode::RC_SEND_FIRST, 1024, hdr(qp, 100));
  add(Opcode::RC_SEND_MIDDLE, 1024, hdr(qp, 101));
  add(Opcode::RC_SEND_LAST, 1, hdr(qp, 102, true));  // pad 3
  TransportHeader se = hdr(qp, 103, true);
  se.se = true;
  add(Opcode::RC_SEND_ONLY, 0, se);                  // 58 bytes -> padded to 60
  add(Opcode::RC_SEND_ONLY, 2, hdr(qp, 104, true));  // pad 2
  TransportHeader imm = hdr(qp, 105, true);
  imm.imm = 0xCAFEF00D;
  add(Opcode::RC_SEND_ONLY_WITH_IMMEDIATE, 3, imm);  // pad 1
  add(Opcode::RC_SEND_LAST_WITH_IMMEDIATE, 4095, imm);
  TransportHeader inv = hdr(qp, 106, true);
  inv.ieth_rkey = 0x00000A07;
  add(Opcode::RC_SEND_ONLY_WITH_INVALIDATE, 100, inv);
  TransportHeader wr = hdr(qp, 200);
  wr.reth_va = 0x00007f1234560000ull;
  wr.reth_rkey = 0x1234;
  wr.reth_len = 4096 * 2 + 17;
  add(Opcode::RC_RDMA_WRITE_FIRST, 4096, wr);
  add(Opcode::RC_RDMA_WRITE_MIDDLE, 4096, hdr(qp, 201));
  add(Opcode::RC_RDMA_WRITE_LAST, 17, hdr(qp, 202, true));
  TransportHeader wo = wr;
  wo.psn = 203;
  wo.ack_req = true;
  wo.reth_len = 5;
  add(Opcode::RC_RDMA_WRITE_ONLY, 5, wo);
  wo.reth_len = 0;
  add(Opcode::RC_RDMA_WRITE_ONLY, 0, wo);  // zero-length WRITE
  TransportHeader woi = wo;
  woi.reth_len = 64;
  woi.imm = 0x01020304;
  add(Opcode::RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE, 64, woi);
  TransportHeader rd = wr;
  rd.psn = 300;
  rd.reth_len = 2500;
  add(Opcode::RC_RDMA_READ_REQUEST, 0, rd);
  TransportHeader rr = hdr(qp2, 300);
  rr.aeth_syndrome = kAethSynAck;
  rr.aeth_msn = 7;
  add(Opcode::RC_RDMA_READ_RESPONSE_FIRST, 1024, rr);
  rr.psn = 301;
  add(Opcode::RC_RDMA_READ_RESPONSE_MIDDLE, 1024, rr);
  rr.psn = 302;
  add(Opcode::RC_RDMA_READ_RESPONSE_LAST, 452, rr);
  rr.psn = 303;
  add(Opcode::RC_RDMA_READ_RESPONSE_ONLY, 7, rr);
  TransportHeader ack = hdr(qp2, 203);
  ack.aeth_syndrome = kAethSynAck;
  ack.aeth_msn = 8;
  add(Opcode::RC_ACKNOWLEDGE, 0, ack);
  ack.aeth_syndrome = aeth_rnr_nak(14);
  add(Opcode::RC_ACKNOWLEDGE, 0, ack);
  ack.aeth_syndrome = aeth_nak(NakCode::PsnSeqError);
  add(Opcode::RC_ACKNOWLEDGE, 0, ack);
  TransportHeader at = hdr(qp, 400, true);
  at.atomic_va = 0x00007f0000002000ull;
  at.atomic_rkey = 0x1234;
  at.atomic_swap_add = 0x1111222233334444ull;
  at.atomic_compare = 0x5555666677778888ull;
  add(Opcode::RC_COMPARE_SWAP, 0, at);
  at.psn = 401;
  add(Opcode::RC_FETCH_ADD, 0, at);
  TransportHeader aa = hdr(qp2, 401);
  aa.aeth_syndrome = kAethSynAck;
  aa.aeth_msn = 9;
  aa.atomic_ack_orig = 0x0123456789ABCDEFull;
  add(Opcode::RC_ATOMIC_ACKNOWLEDGE, 0, aa);
  add(Opcode::UC_SEND_ONLY, 33, hdr(0x20, 5));
  TransportHeader ucw = wr;
  ucw.dest_qp = 0x20;
  ucw.psn = 6;
  ucw.reth_len = 1500;
  add(Opcode::UC_RDMA_WRITE_ONLY, 1500, ucw);
  // Not to QP1: tshark would dissect the arbitrary payload as a MAD.
  TransportHeader ud = hdr(0x40, 0);
  ud.deth_qkey = 0x11111111;
  ud.deth_src_qp = 0x41;
  add(Opcode::UD_SEND_ONLY, 256, ud);
  ud.imm = 0xABCDEF01;
  ud.dest_qp = 0x30;
  ud.deth_qkey = 0x11111111;
  ud.deth_src_qp = 0x31;
  add(Opcode::UD_SEND_ONLY_WITH_IMMEDIATE, 9, ud);
  TransportHeader cnp = hdr(qp, 0);
  cnp.becn = true;
  add(Opcode::CNP, 0, cnp);

  PcapWriter w;
  std::string err;
  if (!w.open(out, 65535, &err)) {
    std::fprintf(stderr, "wire_dump_frames: %s\n", err.c_str());
    return 1;
  }
  const RoceV2Ipv4Framing fr;
  PathInfo a2b;
  a2b.src_mac = {0x02, 0, 0, 0, 0, 0x01};
  a2b.dst_mac = {0x02, 0, 0, 0, 0, 0x02};
  a2b.src_ip = 0x0A000001;
  a2b.dst_ip = 0x0A000002;
  a2b.tos = 0x02;  // ECT(0)
  PathInfo b2a = a2b;
  std::swap(b2a.src_mac, b2a.dst_mac);
  std::swap(b2a.src_ip, b2a.dst_ip);

  std::vector<uint8_t> buf(70000);
  uint64_t t_ps = 0;
  uint16_t ip_id = 0;
  for (const Spec& s : specs) {
    TransportHeader h = s.h;
    h.opcode = to_u8(s.op);
    h.pad_cnt = pad_for(s.payload);
    const OpInfo& info = op_info(h.opcode);
    // Responses (ACK, READ response, atomic ACK) travel b -> a.
    const bool response = info.kind == OpInfo::Kind::Ack || info.kind == OpInfo::Kind::ReadResp ||
                          info.kind == OpInfo::Kind::AtomicAck;
    PathInfo p = response ? b2a : a2b;
    p.ip_id = ip_id++;
    p.udp_sport = roce_udp_sport(response ? qp2 : h.dest_qp);
    uint8_t* t = buf.data() + fr.headroom();
    const size_t hl = encode_transport_header(h, t);
    for (size_t i = 0; i < s.payload; ++i) t[hl + i] = static_cast<uint8_t>(i * 7 + 1);
    std::memset(t + hl + s.payload, 0, h.pad_cnt);
    const size_t n = fr.wrap(buf.data(), hl + s.payload + h.pad_cnt, p);
    w.write(t_ps, buf.data(), n);
    t_ps += 100'000 + n * 80;  // ~100 ns gap + 100 Gb/s serialization
  }

  if (!mode.empty()) {
    // One broken frame at the end.
    TransportHeader h = hdr(qp, 999, true);
    h.opcode = to_u8(Opcode::RC_SEND_ONLY);
    uint8_t* t = buf.data() + fr.headroom();
    size_t tlen = encode_transport_header(h, t);
    std::memcpy(t + tlen, "brokenframe!", 12);
    tlen += 12;
    if (mode == "--malformed") {
      // A WRITE_ONLY whose RETH is cut short: BTH + 8 bytes, lengths and ICRC consistent.
      t[0] = to_u8(Opcode::RC_RDMA_WRITE_ONLY);
      tlen = kBthLen + 8;
    } else if (mode == "--unknown-opcode") {
      t[0] = 0xC7;  // manufacturer-specific range
    }
    size_t n = fr.wrap(buf.data(), tlen, a2b);
    if (mode == "--corrupt-icrc") buf[n - 1] ^= 0x01;
    w.write(t_ps, buf.data(), n);
  }
  w.close();
  std::printf("wire_dump_frames: wrote %zu frames to %s%s%s\n", specs.size() + !mode.empty(),
              out.c_str(), mode.empty() ? "" : " with ", mode.c_str());
  return 0;
}
