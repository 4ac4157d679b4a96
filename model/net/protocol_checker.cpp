#include "model/net/protocol_checker.h"

#include <fmt/core.h>

#include <algorithm>

#include "model/wire/framing.h"
#include "model/wire/opcodes.h"
#include "model/wire/transport.h"

namespace rn::net {

namespace w = wire;
using Kind = w::OpInfo::Kind;
using Pos = w::OpInfo::Pos;

namespace {
constexpr uint32_t kMaxPathMtu = 4096;
bool is_path_mtu(size_t n) { return n == 256 || n == 512 || n == 1024 || n == 2048 || n == 4096; }
uint32_t div_up(uint32_t a, uint32_t b) { return (a + b - 1) / b; }
// PSNs a READ of `len` bytes takes at path MTU `mtu`.
uint32_t read_span(uint32_t len, uint32_t mtu) { return std::max<uint32_t>(1, div_up(len, mtu)); }
const char* pos_name(Pos p) {
  switch (p) {
    case Pos::First:
      return "FIRST";
    case Pos::Middle:
      return "MIDDLE";
    case Pos::Last:
      return "LAST";
    case Pos::Only:
      return "ONLY";
    case Pos::None:
      break;
  }
  return "-";
}
const char* kind_name(uint8_t k) {
  switch (static_cast<Kind>(k)) {
    case Kind::Send:
      return "SEND";
    case Kind::Write:
      return "RDMA WRITE";
    case Kind::ReadReq:
      return "RDMA READ";
    case Kind::CmpSwap:
      return "COMPARE_SWAP";
    case Kind::FetchAdd:
      return "FETCH_ADD";
    default:
      return "response";
  }
}
const w::RoceV2Ipv4Framing kFraming;
}  // namespace

const char* to_string(CheckRule r) {
  switch (r) {
    case CheckRule::kMalformed:
      return "malformed";
    case CheckRule::kPsnSequence:
      return "psn_sequence";
    case CheckRule::kRetransmission:
      return "retransmission";
    case CheckRule::kOpcodeSequence:
      return "opcode_sequence";
    case CheckRule::kPayloadLength:
      return "payload_length";
    case CheckRule::kWriteLength:
      return "write_length";
    case CheckRule::kPadCount:
      return "pad_count";
    case CheckRule::kAckReq:
      return "ack_req";
    case CheckRule::kReadResponse:
      return "read_response";
    case CheckRule::kAethSyndrome:
      return "aeth_syndrome";
    case CheckRule::kAckPsn:
      return "ack_psn";
    case CheckRule::kMsn:
      return "msn";
    case CheckRule::kCount:
      break;
  }
  return "?";
}

std::string ProtocolViolation::text() const {
  return fmt::format("frame {}{}, side {}, QP {}, PSN {}, {}: {}: {}", frame,
                     pcap_frame ? fmt::format(" (pcap {})", pcap_frame) : std::string(), side, qp,
                     psn, w::op_info(opcode).name, to_string(rule), what);
}

struct ProtocolChecker::Ctx {
  int side = 0;
  uint64_t frame = 0, pcap_frame = 0;
  Tick time = 0;
  w::TransportHeader h;
  const w::OpInfo* info = nullptr;
  uint32_t payload = 0;
  uint16_t sport = 0;
};

template <class T>
void ProtocolChecker::Ring<T>::push(const T& x) {
  if (n == v.size()) {
    if (!v.empty() && v.size() >= max) {
      pop_front();
    } else {
      std::vector<T> bigger(v.empty() ? 8 : v.size() * 2);
      for (size_t i = 0; i < n; ++i) bigger[i] = at(i);
      v.swap(bigger);
      head = 0;
    }
  }
  v[(head + n) & (v.size() - 1)] = x;
  ++n;
}

ProtocolChecker::ProtocolChecker(stats::Registry& reg, const std::string& name, const Logger* log,
                                 size_t max_listed)
    : log_(log),
      name_(name),
      max_listed_(max_listed),
      reg_(reg),
      stats_(reg, name, "RoCEv2 RC protocol checker of the frames a link sends") {
  frames_ = &stats_.counter("frames", "count", "frames seen (sent on the link)");
  requests_ = &stats_.counter("requests", "count", "RC request packets checked");
  resent_ = &stats_.counter("resent", "count",
                            "requests resent (a PSN behind the next new one: go-back-N)");
  responses_ =
      &stats_.counter("responses", "count", "RC ACK/NAK and READ/atomic responses checked");
  unchecked_ = &stats_.counter("unchecked", "count",
                               "frames not checked: not RoCEv2, or not RC or UD (UC, CNP)");
  datagrams_ =
      &stats_.counter("ud_datagrams", "count",
                      "UD datagrams checked (DETH, PadCnt, one packet of at most the MTU)");
  violations_ = &stats_.counter("violations", "count", "violations of any rule");
  for (size_t i = 0; i < static_cast<size_t>(CheckRule::kCount); ++i) {
    const auto r = static_cast<CheckRule>(i);
    per_rule_[i] = &stats_.counter(std::string("violations_") + to_string(r), "count",
                                   std::string("violations of rule ") + to_string(r));
  }
}

ProtocolChecker::~ProtocolChecker() { reg_.remove(&stats_); }

void ProtocolChecker::forget() {
  flows_.clear();
  pairs_.clear();
}

ProtocolChecker::Flow& ProtocolChecker::flow(int side, uint32_t qp) {
  return flows_[static_cast<uint32_t>(side) << 24 | (qp & 0xFFFFFF)];
}

// The request stream a response sent from `side` to `qp` from UDP port `sport` answers: sent
// from the other side, from the port of `qp`, to the QP whose port is `sport`.
ProtocolChecker::Flow* ProtocolChecker::peer_of(int side, uint32_t qp, uint16_t sport) {
  const uint32_t key = static_cast<uint32_t>(side ^ 1) << 28 |
                       static_cast<uint32_t>(w::roce_udp_sport(qp) & 0x3FFF) << 14 |
                       (sport & 0x3FFFu);
  auto it = pairs_.find(key);
  return it == pairs_.end() ? nullptr : it->second;
}

void ProtocolChecker::violate(const Ctx& c, CheckRule rule, std::string what) {
  ++*violations_;
  ++*per_rule_[static_cast<size_t>(rule)];
  ProtocolViolation v;
  v.frame = c.frame;
  v.pcap_frame = c.pcap_frame;
  v.time = c.time;
  v.side = c.side;
  v.qp = c.h.dest_qp;
  v.psn = c.h.psn;
  v.opcode = c.h.opcode;
  v.rule = rule;
  v.what = std::move(what);
  if (log_ && log_->on(LogCat::kError))
    log_->print(c.time, LogCat::kError, name_, "protocol violation: " + v.text());
  if (listed_.size() < max_listed_) listed_.push_back(std::move(v));
}

void ProtocolChecker::check(int side, const uint8_t* data, size_t len, Tick time, uint64_t frame,
                            uint64_t pcap_frame) {
  ++*frames_;
  Ctx c;
  c.side = side;
  c.frame = frame;
  c.pcap_frame = pcap_frame;
  c.time = time;
  size_t toff = 0, tlen = 0;
  w::PathInfo seen;
  // The ICRC is not checked (taken as sealed): the checker reads headers only.
  const w::FrameError fe = kFraming.unwrap(data, len, &toff, &tlen, &seen, true);
  if (fe == w::FrameError::NotIpv4 || fe == w::FrameError::NotUdp ||
      fe == w::FrameError::NotRoceV2Port) {
    ++*unchecked_;
    return;
  }
  if (fe != w::FrameError::None) {
    violate(c, CheckRule::kMalformed, fmt::format("framing: {}", w::to_string(fe)));
    return;
  }
  size_t hl = 0, pl = 0;
  const w::ParseError pe = w::decode_transport(data + toff, tlen, &c.h, &hl, &pl);
  if (pe != w::ParseError::None) {
    if (tlen >= w::kBthLen) {
      c.h.opcode = data[toff];
      c.h.dest_qp = w::load_be24(data + toff + offsetof(w::Bth, dest_qp));
      c.h.psn = w::load_be24(data + toff + offsetof(w::Bth, psn));
    }
    violate(c, CheckRule::kMalformed, fmt::format("transport headers: {}", w::to_string(pe)));
    return;
  }
  c.info = &w::op_info(c.h.opcode);
  c.payload = static_cast<uint32_t>(pl);
  c.sport = seen.udp_sport;
  if (c.info->transport == w::Transport::UD) return datagram(c);
  if (c.info->transport != w::Transport::RC) {
    ++*unchecked_;
    return;
  }
  Flow& fl = flow(side, c.h.dest_qp);
  if (c.h.pad_cnt != w::pad_for(pl))
    violate(c, CheckRule::kPadCount,
            fmt::format("PadCnt {} with {} B of payload: should be {}", c.h.pad_cnt, pl,
                        w::pad_for(pl)));
  switch (c.info->kind) {
    case Kind::Ack:
    case Kind::AtomicAck:
    case Kind::ReadResp:
      ++*responses_;
      response(c, fl);
      break;
    default:
      ++*requests_;
      request(c, fl);
      break;
  }
}

void ProtocolChecker::datagram(Ctx& c) {
  // UD: each datagram stands alone (no PSN order, no acknowledgement). It decoded, so its DETH is
  // there (the opcode table says UD SEND_ONLY carries one); one packet of at most the path MTU
  // (the port's 4096 if none was given).
  ++*datagrams_;
  const uint32_t mtu = mtu_ ? mtu_ : 4096;
  if (c.h.pad_cnt != w::pad_for(c.payload))
    violate(c, CheckRule::kPadCount,
            fmt::format("PadCnt {} with {} B of payload: should be {}", c.h.pad_cnt, c.payload,
                        w::pad_for(c.payload)));
  if (c.payload > mtu)
    violate(c, CheckRule::kPayloadLength,
            fmt::format("a UD datagram of {} B: more than the MTU {}", c.payload, mtu));
}

void ProtocolChecker::request(Ctx& c, Flow& fl) {
  Req& r = fl.req;
  const w::TransportHeader& h = c.h;
  const w::OpInfo& info = *c.info;
  if (!r.started) {
    r.started = true;
    r.sport = c.sport;
    r.first_psn = h.psn;
    r.next = h.psn;
    r.msgs.max = 1024;
    r.reads.max = 64;
    const uint32_t key = static_cast<uint32_t>(c.side) << 28 |
                         static_cast<uint32_t>(c.sport & 0x3FFF) << 14 |
                         (w::roce_udp_sport(h.dest_qp) & 0x3FFFu);
    auto [it, fresh] = pairs_.emplace(key, &fl);
    if (!fresh && it->second != &fl) it->second = nullptr;  // two streams alike: no pairing
  }
  if (info.is_last() && !h.ack_req)
    violate(c, CheckRule::kAckReq,
            "the last packet of a message without AckReq (this NIC asks for an ACK on each)");
  const uint32_t mtu = mtu_of(r.mtu), pl = c.payload;
  if (info.has_payload) {
    if (info.pos == Pos::First || info.pos == Pos::Middle) {
      if (mtu == 0) {
        if (is_path_mtu(pl))
          r.mtu = pl;
        else
          violate(c, CheckRule::kPayloadLength,
                  fmt::format("{} B of payload in a {}: not a path MTU (256, 512, 1024, 2048, "
                              "4096)",
                              pl, pos_name(info.pos)));
      } else if (pl != mtu) {
        violate(c, CheckRule::kPayloadLength,
                fmt::format("{} B of payload in a {}: must be the path MTU, {} B", pl,
                            pos_name(info.pos), mtu));
      }
    } else if (info.pos == Pos::Last && pl == 0) {
      violate(c, CheckRule::kPayloadLength, "an empty LAST (a LAST carries 1..MTU bytes)");
    }
    if ((info.pos == Pos::Last || info.pos == Pos::Only) && pl > (mtu ? mtu : kMaxPathMtu))
      violate(c, CheckRule::kPayloadLength,
              fmt::format("{} B of payload in a {}: more than the path MTU, {} B", pl,
                          pos_name(info.pos), mtu ? mtu : kMaxPathMtu));
  }
  // A READ whose span was not known: the first new PSN after it tells.
  if (r.span_unknown && w::psn_diff(h.psn, r.next) >= 0 && w::psn_diff(h.psn, r.span_hi) <= 0) {
    Msg& m = r.msgs.back();
    m.npsn = static_cast<uint32_t>(w::psn_diff(h.psn, m.start));
    r.next = h.psn;
    r.span_unknown = false;
  }
  const int32_t d = w::psn_diff(h.psn, r.next);
  if (d == 0) {
    new_request(c, r);
  } else if (d < 0 && w::psn_diff(h.psn, r.first_psn) >= 0) {
    ++*resent_;
    resent_request(c, r);
  } else if (d > 0) {
    violate(c, CheckRule::kPsnSequence,
            fmt::format("PSN {} skips {} PSNs: the next new PSN is {}", h.psn, d, r.next));
    r.next = h.psn;  // go on from here: one violation, not one per later packet
    r.span_unknown = false;
    new_request(c, r);
  } else {
    violate(c, CheckRule::kPsnSequence,
            fmt::format("PSN {} is before the first PSN sent to this QP, {}", h.psn, r.first_psn));
  }
}

void ProtocolChecker::new_request(Ctx& c, Req& r) {
  const w::TransportHeader& h = c.h;
  const w::OpInfo& info = *c.info;
  const auto kind = static_cast<uint8_t>(info.kind);
  const uint32_t mtu = mtu_of(r.mtu), pl = c.payload;
  const bool write = info.kind == Kind::Write;
  auto open_since = [&] { return r.msgs.n ? r.msgs.back().start : 0u; };
  switch (info.pos) {
    case Pos::First: {
      if (r.open)
        violate(c, CheckRule::kOpcodeSequence,
                fmt::format("a FIRST while the {} message from PSN {} is not finished "
                            "(messages interleaved)",
                            kind_name(r.kind), open_since()));
      r.open = true;
      r.kind = kind;
      r.bytes = pl;
      r.reth_len = h.reth_len;
      if (write && mtu && h.reth_len <= mtu)
        violate(c, CheckRule::kWriteLength,
                fmt::format("RDMA_WRITE_FIRST of a {} B message, which fits one packet (path MTU "
                            "{} B): that is a WRITE_ONLY",
                            h.reth_len, mtu));
      r.msgs.push(Msg{h.psn, 1, write ? h.reth_len : 0, kind, false});
      r.next = w::psn_add(h.psn, 1);
      break;
    }
    case Pos::Middle:
    case Pos::Last: {
      r.next = w::psn_add(h.psn, 1);
      if (!r.open || r.kind != kind) {
        violate(c, CheckRule::kOpcodeSequence,
                !r.open ? fmt::format("a {} with no message under way (no FIRST before it)",
                                      pos_name(info.pos))
                        : fmt::format("a {} {} inside the {} message from PSN {}", kind_name(kind),
                                      pos_name(info.pos), kind_name(r.kind), open_since()));
        r.open = false;
        break;
      }
      r.bytes += pl;
      Msg& m = r.msgs.back();
      ++m.npsn;
      if (info.pos == Pos::Middle) {
        if (write && r.bytes >= r.reth_len)
          violate(c, CheckRule::kWriteLength,
                  fmt::format("this MIDDLE brings the WRITE from PSN {} to {} B of its {} B DMA "
                              "length: its last packet must be a LAST",
                              m.start, r.bytes, r.reth_len));
      } else {
        r.open = false;
        m.complete = true;
        if (write && r.bytes != r.reth_len)
          violate(c, CheckRule::kWriteLength,
                  fmt::format("the WRITE from PSN {} carried {} B; its RETH DMA length is {} B",
                              m.start, r.bytes, r.reth_len));
      }
      break;
    }
    case Pos::Only: {
      if (r.open) {
        violate(c, CheckRule::kOpcodeSequence,
                fmt::format("an ONLY while the {} message from PSN {} is not finished (messages "
                            "interleaved)",
                            kind_name(r.kind), open_since()));
        r.open = false;
      }
      uint32_t span = 1;
      if (info.kind == Kind::ReadReq) {
        if (mtu) {
          span = read_span(h.reth_len, mtu);
          r.reads.push(ReadReq{h.psn, span, h.reth_len});
        } else {
          // The path MTU is not known yet: between the spans at 4096 and at 256 bytes.
          span = read_span(h.reth_len, kMaxPathMtu);
          const uint32_t hi = read_span(h.reth_len, 256);
          r.reads.push(ReadReq{h.psn, span == hi ? span : 0, h.reth_len});
          if (hi != span) {
            r.span_unknown = true;
            r.span_hi = w::psn_add(h.psn, hi);
          }
        }
      }
      if (write && pl != h.reth_len)
        violate(c, CheckRule::kWriteLength,
                fmt::format("RDMA_WRITE_ONLY with {} B of payload; its RETH DMA length is {} B", pl,
                            h.reth_len));
      r.msgs.push(
          Msg{h.psn, span, (write || info.kind == Kind::ReadReq) ? h.reth_len : 0, kind, true});
      r.next = w::psn_add(h.psn, span);
      break;
    }
    case Pos::None:
      break;
  }
}

void ProtocolChecker::resent_request(Ctx& c, Req& r) {
  const w::TransportHeader& h = c.h;
  const w::OpInfo& info = *c.info;
  const uint32_t mtu = mtu_of(r.mtu), pl = c.payload;
  Msg* m = nullptr;
  for (size_t i = r.msgs.n; i-- > 0;) {
    Msg& x = r.msgs.at(i);
    const int32_t off = w::psn_diff(h.psn, x.start);
    if (off >= 0 && static_cast<uint32_t>(off) < x.npsn) {
      m = &x;
      break;
    }
  }
  if (!m) {  // acknowledged and forgotten, or older than what is kept: nothing to compare
    // A READ acknowledged (an ACK or NAK beyond it) whose responses were lost is requested
    // again (an implied NAK): its responses are expected.
    if (info.kind == Kind::ReadReq)
      r.reads.push(ReadReq{h.psn, mtu ? read_span(h.reth_len, mtu) : 0, h.reth_len});
    return;
  }
  const auto off = static_cast<uint32_t>(w::psn_diff(h.psn, m->start));
  if (static_cast<uint8_t>(info.kind) != m->kind) {
    violate(c, CheckRule::kRetransmission,
            fmt::format("resent PSN {} as a {}: it belongs to the {} message from PSN {}", h.psn,
                        kind_name(static_cast<uint8_t>(info.kind)), kind_name(m->kind), m->start));
    return;
  }
  if (info.kind == Kind::ReadReq) {
    // A READ is requested again from any of its PSNs: from where its responses stopped.
    if (mtu && off > 0 && h.reth_len != m->reth_len - std::min(m->reth_len, off * mtu))
      violate(c, CheckRule::kRetransmission,
              fmt::format("READ re-requested from PSN {} ({} PSNs into the READ of {} B from PSN "
                          "{}) for {} B: {} B remain",
                          h.psn, off, m->reth_len, m->start, h.reth_len,
                          m->reth_len - std::min(m->reth_len, off * mtu)));
    r.reads.push(ReadReq{h.psn, mtu ? read_span(h.reth_len, mtu) : 0, h.reth_len});
    return;
  }
  Pos want = Pos::Middle;
  if (m->complete && m->npsn == 1)
    want = Pos::Only;
  else if (off == 0)
    want = Pos::First;
  else if (m->complete && off + 1 == m->npsn)
    want = Pos::Last;
  if (info.pos != want) {
    violate(c, CheckRule::kRetransmission,
            fmt::format("resent PSN {} as a {}: it was the {} of the {} message from PSN {}", h.psn,
                        pos_name(info.pos), pos_name(want), kind_name(m->kind), m->start));
    return;
  }
  if (info.kind != Kind::Write) return;
  if (info.has(w::kExtReth) && h.reth_len != m->reth_len)
    violate(c, CheckRule::kRetransmission,
            fmt::format("resent with RETH DMA length {} B; PSN {} was sent with {} B", h.reth_len,
                        h.psn, m->reth_len));
  else if (info.pos == Pos::Only && pl != m->reth_len)
    violate(c, CheckRule::kWriteLength,
            fmt::format("RDMA_WRITE_ONLY with {} B of payload; its RETH DMA length is {} B", pl,
                        m->reth_len));
  else if (info.pos == Pos::Last && mtu && uint64_t(off) * mtu + pl != m->reth_len)
    violate(c, CheckRule::kWriteLength,
            fmt::format("the resent WRITE from PSN {} ends with {} B; its RETH DMA length is {} B",
                        m->start, uint64_t(off) * mtu + pl, m->reth_len));
}

// Messages acknowledged up to `psn` (inclusive), or up to the one before (a NAK's PSN is the one
// expected next): forgotten.
void ProtocolChecker::acknowledged(Req& r, uint32_t psn, bool inclusive) {
  while (r.msgs.n) {
    const Msg& m = r.msgs.at(0);
    if (!m.complete) break;
    const int32_t d = w::psn_diff(w::psn_add(m.start, m.npsn - 1), psn);
    if (inclusive ? d > 0 : d >= 0) break;
    r.msgs.pop_front();
  }
}

void ProtocolChecker::response(Ctx& c, Flow& fl) {
  Resp& s = fl.resp;
  const w::TransportHeader& h = c.h;
  const w::OpInfo& info = *c.info;
  if (!s.peer) s.peer = peer_of(c.side, h.dest_qp, c.sport);
  Req* req = s.peer && s.peer->req.started ? &s.peer->req : nullptr;
  const uint8_t syn = h.aeth_syndrome;
  if (info.has(w::kExtAeth)) {
    if ((syn & 0x80) || w::aeth_type(syn) == w::AethType::Reserved ||
        (w::aeth_is_nak(syn) && w::aeth_value(syn) > 3))
      violate(c, CheckRule::kAethSyndrome,
              fmt::format("AETH syndrome {:#04x} is reserved (bit 7 set, type 10b, or a NAK code "
                          "other than 0x60..0x63)",
                          syn));
    else if (info.kind != Kind::Ack && !w::aeth_is_ack(syn))
      violate(c, CheckRule::kAethSyndrome,
              fmt::format("syndrome {:#04x} ({}): READ responses and atomic ACKs carry an ACK", syn,
                          w::aeth_syndrome_name(syn)));
    if (s.have_msn && w::psn_cmp(h.aeth_msn, s.msn) < 0) {
      violate(c, CheckRule::kMsn,
              fmt::format("MSN {} after MSN {} (the MSN never decreases)", h.aeth_msn, s.msn));
    } else {
      s.msn = h.aeth_msn;
      s.have_msn = true;
    }
  }
  if (info.kind != Kind::ReadResp) {  // ACK, NAK, ATOMIC ACKNOWLEDGE
    if (!req) return;
    const uint32_t next = req->span_unknown ? w::psn_add(req->span_hi, 1) : req->next;
    const uint32_t highest = w::psn_add(next, w::kPsnMask);
    if (w::psn_diff(h.psn, highest) > 0) {
      violate(c, CheckRule::kAckPsn,
              fmt::format("{} of PSN {}: the highest PSN sent to the responder is {}",
                          w::aeth_syndrome_name(syn), h.psn, highest));
    } else if (w::psn_diff(h.psn, req->first_psn) < 0) {
      violate(c, CheckRule::kAckPsn,
              fmt::format("{} of PSN {}: before the first PSN sent to the responder, {}",
                          w::aeth_syndrome_name(syn), h.psn, req->first_psn));
    } else if (w::aeth_is_ack(syn)) {
      acknowledged(*req, h.psn, true);
    } else if (syn == w::kAethSynNakPsnSeq) {
      acknowledged(*req, h.psn, false);
    }
    return;
  }
  // READ responses.
  const uint32_t mtu = mtu_of(s.mtu), pl = c.payload;
  const bool first = info.pos == Pos::First, only = info.pos == Pos::Only;
  if (first) {
    if (mtu == 0) {
      if (is_path_mtu(pl))
        s.mtu = pl;
      else
        violate(c, CheckRule::kPayloadLength,
                fmt::format("{} B of payload in a READ response FIRST: not a path MTU", pl));
    } else if (pl != mtu) {
      violate(c, CheckRule::kPayloadLength,
              fmt::format("{} B of payload in a READ response FIRST: must be the path MTU, {} B",
                          pl, mtu));
    }
  } else if (info.pos == Pos::Middle && mtu && pl != mtu) {
    violate(c, CheckRule::kPayloadLength,
            fmt::format("{} B of payload in a READ response MIDDLE: must be the path MTU, {} B", pl,
                        mtu));
  } else if (info.pos == Pos::Last && pl == 0) {
    violate(c, CheckRule::kPayloadLength, "an empty READ response LAST");
  }
  if ((info.pos == Pos::Last || only) && pl > (mtu ? mtu : kMaxPathMtu))
    violate(c, CheckRule::kPayloadLength,
            fmt::format("{} B of payload in a READ response {}: more than the path MTU, {} B", pl,
                        pos_name(info.pos), mtu ? mtu : kMaxPathMtu));
  if (first || only) {
    const ReadReq* rr = nullptr;
    if (req)
      for (size_t i = req->reads.n; i-- > 0;)
        if (req->reads.at(i).psn == h.psn) {
          rr = &req->reads.at(i);
          break;
        }
    s.in_read = false;
    if (req && !rr) {
      violate(c, CheckRule::kReadResponse,
              fmt::format("READ response {} at PSN {}: no READ request was sent at that PSN",
                          pos_name(info.pos), h.psn));
      return;
    }
    if (only) {
      if (rr && rr->span > 1)
        violate(c, CheckRule::kReadResponse,
                fmt::format("READ response ONLY for the READ of {} B from PSN {}, which takes {} "
                            "PSNs",
                            rr->len, rr->psn, rr->span));
      else if (rr && pl != rr->len)
        violate(c, CheckRule::kReadResponse,
                fmt::format("{} B of READ response for the READ of {} B", pl, rr->len));
      if (req) acknowledged(*req, h.psn, true);
      return;
    }
    if (rr && rr->span == 1) {
      violate(c, CheckRule::kReadResponse,
              fmt::format("READ response FIRST for the READ of {} B from PSN {}, which fits one "
                          "packet",
                          rr->len, rr->psn));
      return;
    }
    s.in_read = true;
    s.len_known = rr != nullptr;
    s.end_known = rr && rr->span;
    s.read_end = s.end_known ? w::psn_add(h.psn, rr->span - 1) : 0;
    s.read_len = rr ? rr->len : 0;
    s.read_next = w::psn_add(h.psn, 1);
    s.read_bytes = pl;
    return;
  }
  // MIDDLE, LAST.
  if (!s.in_read) {
    violate(c, CheckRule::kReadResponse,
            fmt::format("READ response {} with no READ response under way (no FIRST)",
                        pos_name(info.pos)));
    return;
  }
  if (h.psn != s.read_next) {
    violate(c, CheckRule::kReadResponse,
            fmt::format("READ response {} at PSN {}: the response under way is at PSN {}",
                        pos_name(info.pos), h.psn, s.read_next));
    s.in_read = false;
    return;
  }
  s.read_bytes += pl;
  s.read_next = w::psn_add(h.psn, 1);
  if (info.pos == Pos::Middle) {
    if (s.end_known && h.psn == s.read_end)
      violate(c, CheckRule::kReadResponse,
              fmt::format("a MIDDLE at PSN {}, the READ's last PSN: it must be a LAST", h.psn));
    return;
  }
  s.in_read = false;
  if (s.end_known && h.psn != s.read_end)
    violate(c, CheckRule::kReadResponse,
            fmt::format("a LAST at PSN {}: the READ's responses end at PSN {}", h.psn, s.read_end));
  else if (s.len_known && s.read_bytes != s.read_len)
    violate(c, CheckRule::kReadResponse,
            fmt::format("{} B of READ response for the READ of {} B", s.read_bytes, s.read_len));
  if (req) acknowledged(*req, h.psn, true);
}

}  // namespace rn::net
