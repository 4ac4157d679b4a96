// net::ProtocolChecker on hand-built frames (encoded with the wire module): for each rule, a
// stream that keeps it (no violation) and one that breaks it (that violation, once).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "model/core/stats.h"
#include "model/net/protocol_checker.h"
#include "testbench/unit/net/roce_frames.h"

using namespace rn;
using net::CheckRule;
using test::Pkt;
using wire::Opcode;

namespace {

constexpr uint32_t kReqQp = 0x10;  // the requester's QP, on side 0
constexpr uint32_t kRspQp = 17;    // the responder's QP, on side 1

struct Checker {
  stats::Registry reg;
  net::ProtocolChecker c{reg, "link0.check"};
  uint64_t frames = 0;
  // A packet from side 0 to the responder's QP (a request) or from side 1 to the requester's
  // (a response), with the UDP source port of its sender's QP.
  void send(int side, Pkt p) {
    if (side == 0) {
      p.qp = kRspQp;
      p.src_qp = kReqQp;
    } else {
      p.qp = kReqQp;
      p.src_qp = kRspQp;
    }
    const auto b = test::frame_bytes(p);
    ++frames;
    c.check(side, b.data(), b.size(), frames * 1000, frames, frames);
  }
  void req(Opcode op, uint32_t psn, uint32_t payload, bool ack_req = false, uint32_t reth_len = 0) {
    Pkt p;
    p.op = op;
    p.psn = psn;
    p.payload = payload;
    p.ack_req = ack_req;
    p.reth_len = reth_len;
    send(0, p);
  }
  void ack(uint32_t psn, uint32_t msn, uint8_t syndrome = wire::kAethSynAck,
           Opcode op = Opcode::RC_ACKNOWLEDGE, uint32_t payload = 0) {
    Pkt p;
    p.op = op;
    p.psn = psn;
    p.msn = msn;
    p.syndrome = syndrome;
    p.payload = payload;
    send(1, p);
  }
  // A whole WRITE of `len` bytes at path MTU `mtu` from `psn`: returns the next PSN.
  uint32_t write(uint32_t psn, uint32_t len, uint32_t mtu) {
    if (len <= mtu) {
      req(Opcode::RC_RDMA_WRITE_ONLY, psn, len, true, len);
      return wire::psn_add(psn, 1);
    }
    req(Opcode::RC_RDMA_WRITE_FIRST, psn, mtu, false, len);
    uint32_t left = len - mtu;
    psn = wire::psn_add(psn, 1);
    for (; left > mtu; left -= mtu, psn = wire::psn_add(psn, 1))
      req(Opcode::RC_RDMA_WRITE_MIDDLE, psn, mtu);
    req(Opcode::RC_RDMA_WRITE_LAST, psn, left, true);
    return wire::psn_add(psn, 1);
  }
  uint32_t send_msg(uint32_t psn, uint32_t len, uint32_t mtu) {
    if (len <= mtu) {
      req(Opcode::RC_SEND_ONLY, psn, len, true);
      return wire::psn_add(psn, 1);
    }
    req(Opcode::RC_SEND_FIRST, psn, mtu);
    uint32_t left = len - mtu;
    psn = wire::psn_add(psn, 1);
    for (; left > mtu; left -= mtu, psn = wire::psn_add(psn, 1))
      req(Opcode::RC_SEND_MIDDLE, psn, mtu);
    req(Opcode::RC_SEND_LAST, psn, left, true);
    return wire::psn_add(psn, 1);
  }
  std::vector<CheckRule> rules() const {
    std::vector<CheckRule> v;
    for (const auto& x : c.violations()) v.push_back(x.rule);
    return v;
  }
  std::string all() const {
    std::string s;
    for (const auto& x : c.violations()) s += x.text() + "\n";
    return s;
  }
};

#define CHECK_NONE(k)           \
  do {                          \
    INFO((k).all());            \
    CHECK((k).rules().empty()); \
  } while (0)

#define CHECK_ONLY(k, rule)                             \
  do {                                                  \
    INFO((k).all());                                    \
    CHECK((k).rules() == std::vector<CheckRule>{rule}); \
  } while (0)

}  // namespace

TEST_CASE(
    "checker: WRITE, SEND and READ streams with their ACKs and responses pass, "
    "PSNs wrapping",
    "[net][checker]") {
  Checker k;
  uint32_t psn = 0xFFFFFD;  // wraps inside the first message
  psn = k.write(psn, 10000, 4096);
  k.ack(wire::psn_add(psn, wire::kPsnMask), 1);
  psn = k.send_msg(psn, 64, 4096);
  psn = k.send_msg(psn, 8192, 4096);  // a LAST of exactly the MTU
  psn = k.write(psn, 0, 4096);        // zero-length WRITE_ONLY
  k.ack(wire::psn_add(psn, wire::kPsnMask), 4);
  // A READ of 9000 bytes takes 3 PSNs at 4096: its responses carry them.
  const uint32_t rd = psn;
  k.req(Opcode::RC_RDMA_READ_REQUEST, rd, 0, true, 9000);
  psn = wire::psn_add(rd, 3);
  psn = k.send_msg(psn, 100, 4096);  // the next request after the READ's PSNs
  k.ack(rd, 5, wire::kAethSynAck, Opcode::RC_RDMA_READ_RESPONSE_FIRST, 4096);
  k.ack(wire::psn_add(rd, 1), 0, 0, Opcode::RC_RDMA_READ_RESPONSE_MIDDLE, 4096);
  k.ack(wire::psn_add(rd, 2), 5, wire::kAethSynAck, Opcode::RC_RDMA_READ_RESPONSE_LAST, 808);
  k.ack(psn - 1, 6);
  // A one-packet READ and its ONLY response; an RNR NAK and a sequence NAK are valid syndromes.
  k.req(Opcode::RC_RDMA_READ_REQUEST, psn, 0, true, 10);
  k.ack(psn, 7, wire::kAethSynAck, Opcode::RC_RDMA_READ_RESPONSE_ONLY, 10);
  k.ack(psn, 7, wire::aeth_rnr_nak(14));
  k.ack(psn, 7, wire::kAethSynNakPsnSeq);
  CHECK_NONE(k);
  CHECK(k.c.frames_checked() == k.frames);
  CHECK(k.c.count(CheckRule::kPsnSequence) == 0);
}

TEST_CASE("checker: psn_sequence: a new request skipping a PSN", "[net][checker]") {
  Checker ok, bad;
  ok.send_msg(100, 10, 4096);
  ok.send_msg(101, 10, 4096);
  CHECK_NONE(ok);
  bad.send_msg(100, 10, 4096);
  bad.send_msg(102, 10, 4096);  // 101 never sent
  CHECK_ONLY(bad, CheckRule::kPsnSequence);
  // Only once: the stream goes on from there.
  bad.send_msg(103, 10, 4096);
  CHECK(bad.c.violation_count() == 1);
  // Before the first PSN ever sent to that QP.
  Checker early;
  early.send_msg(100, 10, 4096);
  early.send_msg(99, 10, 4096);
  CHECK_ONLY(early, CheckRule::kPsnSequence);
}

TEST_CASE("checker: retransmission: go-back-N must resend what was sent at that PSN",
          "[net][checker]") {
  Checker ok;
  uint32_t next = ok.write(10, 3 * 1024, 1024);    // PSNs 10 FIRST, 11 MIDDLE, 12 LAST
  next = ok.send_msg(next, 10, 1024);              // 13
  ok.req(Opcode::RC_RDMA_WRITE_MIDDLE, 11, 1024);  // go back to 11 (a NAK said 11)
  ok.req(Opcode::RC_RDMA_WRITE_LAST, 12, 1024, true);
  ok.send_msg(13, 10, 1024);
  ok.send_msg(14, 10, 1024);     // and on with new PSNs
  ok.write(10, 3 * 1024, 1024);  // from the start of the WRITE
  CHECK_NONE(ok);
  CHECK(ok.c.resends() == 6);
  Checker bad;
  bad.write(10, 3 * 1024, 1024);
  bad.req(Opcode::RC_RDMA_WRITE_FIRST, 11, 1024, false, 3 * 1024);  // 11 was a MIDDLE
  CHECK_ONLY(bad, CheckRule::kRetransmission);
  Checker kind;
  kind.write(10, 3 * 1024, 1024);
  kind.req(Opcode::RC_SEND_ONLY, 12, 10, true);  // 12 was the WRITE's LAST
  CHECK_ONLY(kind, CheckRule::kRetransmission);
}

TEST_CASE("checker: opcode_sequence: FIRST MIDDLE* LAST of one kind, no interleaving",
          "[net][checker]") {
  Checker ok;
  ok.send_msg(0, 3000, 1024);
  ok.write(3, 3000, 1024);
  CHECK_NONE(ok);
  Checker orphan;
  orphan.req(Opcode::RC_SEND_FIRST, 0, 1024);
  orphan.req(Opcode::RC_SEND_LAST, 1, 10, true);
  orphan.req(Opcode::RC_SEND_MIDDLE, 2, 1024);  // no FIRST before it
  CHECK_ONLY(orphan, CheckRule::kOpcodeSequence);
  Checker mixed;
  mixed.req(Opcode::RC_SEND_FIRST, 0, 1024);
  mixed.req(Opcode::RC_RDMA_WRITE_LAST, 1, 10, true);  // a WRITE's LAST in a SEND
  CHECK_ONLY(mixed, CheckRule::kOpcodeSequence);
  Checker interleaved;
  interleaved.req(Opcode::RC_SEND_FIRST, 0, 1024);
  interleaved.req(Opcode::RC_SEND_ONLY, 1, 10, true);  // a new message before the LAST
  CHECK_ONLY(interleaved, CheckRule::kOpcodeSequence);
}

TEST_CASE("checker: payload_length: FIRST and MIDDLE the path MTU, LAST 1..MTU", "[net][checker]") {
  Checker ok;
  ok.send_msg(0, 2048 + 1, 1024);  // learns 1024 from the FIRST
  ok.send_msg(3, 1024, 1024);      // ONLY of exactly the MTU
  CHECK_NONE(ok);
  Checker middle;
  middle.req(Opcode::RC_SEND_FIRST, 0, 1024);
  middle.req(Opcode::RC_SEND_MIDDLE, 1, 1000);  // not the MTU
  middle.req(Opcode::RC_SEND_LAST, 2, 10, true);
  CHECK_ONLY(middle, CheckRule::kPayloadLength);
  Checker last;
  last.req(Opcode::RC_SEND_FIRST, 0, 1024);
  last.req(Opcode::RC_SEND_LAST, 1, 1028, true);  // over the MTU
  CHECK_ONLY(last, CheckRule::kPayloadLength);
  Checker empty;
  empty.req(Opcode::RC_SEND_FIRST, 0, 1024);
  empty.req(Opcode::RC_SEND_LAST, 1, 0, true);
  CHECK_ONLY(empty, CheckRule::kPayloadLength);
  Checker given;  // the path MTU given: a FIRST of another valid size is wrong
  given.c.set_path_mtu(4096);
  given.req(Opcode::RC_SEND_FIRST, 0, 1024);
  given.req(Opcode::RC_SEND_LAST, 1, 10, true);
  CHECK_ONLY(given, CheckRule::kPayloadLength);
  Checker odd;  // 1000 bytes is no path MTU
  odd.req(Opcode::RC_SEND_FIRST, 0, 1000);
  odd.req(Opcode::RC_SEND_LAST, 1, 10, true);
  CHECK_ONLY(odd, CheckRule::kPayloadLength);
}

TEST_CASE("checker: write_length: a WRITE's payloads add up to its RETH DMA length",
          "[net][checker]") {
  Checker ok;
  ok.write(0, 5000, 1024);
  ok.write(5, 77, 1024);
  CHECK_NONE(ok);
  Checker shortw;
  shortw.req(Opcode::RC_RDMA_WRITE_FIRST, 0, 1024, false, 5000);
  shortw.req(Opcode::RC_RDMA_WRITE_LAST, 1, 100, true);  // 1124 of 5000 bytes
  CHECK_ONLY(shortw, CheckRule::kWriteLength);
  Checker only;
  only.req(Opcode::RC_RDMA_WRITE_ONLY, 0, 64, true, 65);
  CHECK_ONLY(only, CheckRule::kWriteLength);
}

TEST_CASE("checker: pad_count: PadCnt is (-payload) & 3", "[net][checker]") {
  Checker ok;
  ok.req(Opcode::RC_SEND_ONLY, 0, 5, true);  // pad 3
  CHECK_NONE(ok);
  Checker bad;
  Pkt p;
  p.op = Opcode::RC_SEND_ONLY;
  p.psn = 0;
  p.payload = 5;
  p.ack_req = true;
  p.pad = 1;
  bad.send(0, p);
  CHECK_ONLY(bad, CheckRule::kPadCount);
}

TEST_CASE("checker: ack_req: set on the last packet of every message", "[net][checker]") {
  Checker ok;
  ok.req(Opcode::RC_SEND_FIRST, 0, 1024, true);  // AckReq mid-message: allowed
  ok.req(Opcode::RC_SEND_LAST, 1, 10, true);
  CHECK_NONE(ok);
  Checker bad;
  bad.req(Opcode::RC_SEND_FIRST, 0, 1024);
  bad.req(Opcode::RC_SEND_LAST, 1, 10, false);
  CHECK_ONLY(bad, CheckRule::kAckReq);
}

TEST_CASE("checker: READ requests take ceil(len / MTU) PSNs, and their responses carry them",
          "[net][checker]") {
  Checker ok;
  ok.c.set_path_mtu(1024);
  ok.req(Opcode::RC_RDMA_READ_REQUEST, 50, 0, true, 3000);  // PSNs 50, 51, 52
  ok.req(Opcode::RC_RDMA_READ_REQUEST, 53, 0, true, 0);     // 0 bytes: one PSN
  ok.send_msg(54, 10, 1024);
  ok.ack(50, 1, wire::kAethSynAck, Opcode::RC_RDMA_READ_RESPONSE_FIRST, 1024);
  ok.ack(51, 0, 0, Opcode::RC_RDMA_READ_RESPONSE_MIDDLE, 1024);
  ok.ack(52, 1, wire::kAethSynAck, Opcode::RC_RDMA_READ_RESPONSE_LAST, 952);
  ok.ack(53, 2, wire::kAethSynAck, Opcode::RC_RDMA_READ_RESPONSE_ONLY, 0);
  CHECK_NONE(ok);
  Checker span;  // the next request one PSN after a 3-PSN READ
  span.c.set_path_mtu(1024);
  span.req(Opcode::RC_RDMA_READ_REQUEST, 50, 0, true, 3000);
  span.send_msg(51, 10, 1024);
  CHECK(!span.rules().empty());
  Checker end;  // a LAST one PSN early
  end.c.set_path_mtu(1024);
  end.req(Opcode::RC_RDMA_READ_REQUEST, 50, 0, true, 3000);
  end.ack(50, 1, wire::kAethSynAck, Opcode::RC_RDMA_READ_RESPONSE_FIRST, 1024);
  end.ack(51, 1, wire::kAethSynAck, Opcode::RC_RDMA_READ_RESPONSE_LAST, 952);
  CHECK_ONLY(end, CheckRule::kReadResponse);
  Checker ghost;  // a response to no READ
  ghost.send_msg(50, 10, 1024);
  ghost.ack(50, 1, wire::kAethSynAck, Opcode::RC_RDMA_READ_RESPONSE_ONLY, 10);
  CHECK_ONLY(ghost, CheckRule::kReadResponse);
  Checker length;  // ONLY with the wrong length
  length.req(Opcode::RC_RDMA_READ_REQUEST, 50, 0, true, 100);
  length.ack(50, 1, wire::kAethSynAck, Opcode::RC_RDMA_READ_RESPONSE_ONLY, 96);
  CHECK_ONLY(length, CheckRule::kReadResponse);
}

TEST_CASE("checker: READ span learned when the path MTU is not known yet", "[net][checker]") {
  Checker ok;  // 3000 bytes: 1 PSN at 4096 up to 12 at 256; the next request says 3 (1024)
  ok.req(Opcode::RC_RDMA_READ_REQUEST, 50, 0, true, 3000);
  ok.send_msg(53, 10, 1024);
  ok.ack(53, 1);
  CHECK_NONE(ok);
  Checker far;
  far.req(Opcode::RC_RDMA_READ_REQUEST, 50, 0, true, 3000);
  far.send_msg(63, 10, 1024);  // 13 PSNs: more than even 256-byte packets take
  CHECK_ONLY(far, CheckRule::kPsnSequence);
}

TEST_CASE("checker: aeth_syndrome: reserved syndromes, and NAKs where an ACK must be",
          "[net][checker]") {
  Checker ok;
  ok.send_msg(0, 10, 1024);
  ok.ack(0, 1, wire::aeth_ack(5));  // with credits
  ok.ack(0, 1, wire::kAethSynNakRemAccess);
  CHECK_NONE(ok);
  for (uint8_t syn : {uint8_t(0x65), uint8_t(0x40), uint8_t(0x9F)}) {
    INFO("syndrome " << int(syn));
    Checker bad;
    bad.send_msg(0, 10, 1024);
    bad.ack(0, 1, syn);
    CHECK_ONLY(bad, CheckRule::kAethSyndrome);
  }
  Checker read;
  read.req(Opcode::RC_RDMA_READ_REQUEST, 0, 0, true, 10);
  read.ack(0, 1, wire::kAethSynNakRemAccess, Opcode::RC_RDMA_READ_RESPONSE_ONLY, 10);
  CHECK_ONLY(read, CheckRule::kAethSyndrome);
}

TEST_CASE("checker: ack_psn: an ACK's PSN among the PSNs sent to that QP", "[net][checker]") {
  Checker ok;
  ok.send_msg(100, 5000, 1024);  // 100..104
  ok.ack(104, 1);
  ok.ack(102, 1, wire::kAethSynNakPsnSeq);  // NAK: expected 102
  CHECK_NONE(ok);
  Checker ahead;
  ahead.send_msg(100, 5000, 1024);
  ahead.ack(105, 1);  // 105 was never sent
  CHECK_ONLY(ahead, CheckRule::kAckPsn);
  Checker behind;
  behind.send_msg(100, 10, 1024);
  behind.ack(99, 1);
  CHECK_ONLY(behind, CheckRule::kAckPsn);
  // An ACK toward another QP (another UDP port pair) is not compared with this stream.
  Checker other;
  other.send_msg(100, 10, 1024);
  Pkt p;
  p.op = Opcode::RC_ACKNOWLEDGE;
  p.psn = 5000;
  p.qp = 99;
  p.src_qp = 98;
  const auto b = test::frame_bytes(p);
  other.c.check(1, b.data(), b.size());
  CHECK_NONE(other);
}

TEST_CASE("checker: msn: never decreasing", "[net][checker]") {
  Checker ok;
  ok.send_msg(0, 10, 1024);
  ok.send_msg(1, 10, 1024);
  ok.ack(0, 1);
  ok.ack(0, 1);  // the same again (a duplicate's re-ACK)
  ok.ack(1, 2);
  CHECK_NONE(ok);
  Checker bad;
  bad.send_msg(0, 10, 1024);
  bad.send_msg(1, 10, 1024);
  bad.ack(1, 2);
  bad.ack(1, 1);
  CHECK_ONLY(bad, CheckRule::kMsn);
}

TEST_CASE(
    "checker: malformed frames are violations, frames that are not RoCEv2 RC or UD are not "
    "checked",
    "[net][checker]") {
  Checker k;
  auto b = test::frame_bytes(Pkt{});
  b[24] ^= 1;  // IPv4 header checksum
  k.c.check(0, b.data(), b.size());
  auto t = test::frame_bytes(Pkt{});
  t[43] |= 1;  // BTH TVer != 0
  k.c.check(0, t.data(), t.size());
  CHECK(k.rules() == std::vector<CheckRule>{CheckRule::kMalformed, CheckRule::kMalformed});
  Checker n;
  auto v6 = test::frame_bytes(Pkt{});
  v6[12] = 0x86;
  v6[13] = 0xDD;
  n.c.check(0, v6.data(), v6.size());
  Pkt uc;
  uc.op = Opcode::UC_SEND_ONLY;
  uc.payload = 8;
  const auto u = test::frame_bytes(uc);
  n.c.check(0, u.data(), u.size());
  CHECK_NONE(n);
  CHECK(n.reg.to_json()["link0.check"]["unchecked"]["value"] == 2);
}

TEST_CASE("checker: UD datagrams in any PSN order pass, one over the MTU or badly padded fails",
          "[net][checker]") {
  Checker k;
  k.c.set_path_mtu(1024);
  for (uint32_t psn : {5u, 3u, 900u, 3u}) {  // datagrams have no PSN order
    Pkt ud;
    ud.op = psn == 900 ? Opcode::UD_SEND_ONLY_WITH_IMMEDIATE : Opcode::UD_SEND_ONLY;
    ud.psn = psn;
    ud.payload = psn == 900 ? 1024 : 7;
    k.send(0, ud);
  }
  CHECK_NONE(k);
  Pkt big;
  big.op = Opcode::UD_SEND_ONLY;
  big.payload = 1025;
  k.send(0, big);
  Pkt pad;
  pad.op = Opcode::UD_SEND_ONLY;
  pad.payload = 6;
  pad.pad = 0;
  k.send(0, pad);
  CHECK(k.rules() == std::vector<CheckRule>{CheckRule::kPayloadLength, CheckRule::kPadCount});
  CHECK(k.reg.to_json()["link0.check"]["ud_datagrams"]["value"] == 6);
  CHECK(k.reg.to_json()["link0.check"]["unchecked"]["value"] == 0);
}

TEST_CASE("checker: violations name the frame, side, QP, PSN and rule, statistics count them",
          "[net][checker]") {
  Checker k;
  k.send_msg(7, 10, 1024);
  k.send_msg(9, 10, 1024);
  REQUIRE(k.c.violations().size() == 1);
  const auto& v = k.c.violations()[0];
  CHECK(v.frame == 2);
  CHECK(v.pcap_frame == 2);
  CHECK(v.time == 2000);
  CHECK(v.side == 0);
  CHECK(v.qp == kRspQp);
  CHECK(v.psn == 9);
  CHECK(v.opcode == 0x04);
  CHECK(v.rule == CheckRule::kPsnSequence);
  CHECK(v.text().find("frame 2 (pcap 2), side 0, QP 17, PSN 9, RC_SEND_ONLY: psn_sequence") == 0);
  const auto j = k.reg.to_json()["link0.check"];
  CHECK(j["violations"]["value"] == 1);
  CHECK(j["violations"]["unit"] == "count");
  CHECK(j["violations_psn_sequence"]["value"] == 1);
  CHECK(j["frames"]["value"] == 2);
  CHECK(j["requests"]["value"] == 2);
}

TEST_CASE("checker: forget() drops every QP's state (QP numbers reused with new PSNs)",
          "[net][checker]") {
  Checker k;
  k.send_msg(1000, 10, 1024);
  k.c.forget();
  k.send_msg(5, 10, 1024);  // a new QP with the same number
  k.ack(5, 1);
  CHECK_NONE(k);
  Checker no;
  no.send_msg(1000, 10, 1024);
  no.send_msg(5, 10, 1024);
  CHECK_ONLY(no, CheckRule::kPsnSequence);
}
