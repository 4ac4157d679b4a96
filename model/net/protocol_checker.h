// A passive RoCEv2 RC protocol checker on a link: decodes every frame a link sends (at send time,
// before any fault) and checks the rules of the RC transport per direction and per destination
// QP, written from the RoCEv2/IBA rules (docs: model/net/README.md), independently of the NIC
// model. It changes nothing: it only counts and lists violations.
//
// Checked, per direction and destination QP:
//  - requests: a new request has the next PSN (24-bit, wrapping); a PSN behind it is a resend
//    (go-back-N) and must be the packet sent at that PSN (same kind, same place in its message);
//    READ requests take max(1, ceil(len / path MTU)) PSNs;
//  - opcode order: FIRST MIDDLE* LAST or ONLY, one kind (SEND, WRITE) at a time, no interleaving;
//  - payloads: FIRST and MIDDLE exactly the path MTU (given, or learned from the first FIRST),
//    LAST 1..MTU, ONLY at most the MTU; WRITE payloads add up to the RETH DMA length; PadCnt is
//    (-payload) & 3; AckReq set on the last packet of every message;
//  - responses (to the requester's QP, from the other direction): AETH syndrome valid (not
//    reserved; NAK codes 0x60..0x63 on RC; READ responses and atomic ACKs carry an ACK); an ACK's
//    or NAK's PSN within the PSNs sent to the responder's QP; MSN never decreasing; READ
//    responses FIRST MIDDLE* LAST or ONLY with the PSNs and the length of a READ request.
// A response is paired with the request stream it answers by the UDP source ports: each side
// sends from 0xC000 | hash_14(its own QPN) (rxe's rule, which this NIC follows: roce-v2.md), so
// the responder's port names the request's destination QP and the requester's port the
// response's. Without such a pair (other ports) the response-to-request checks are skipped.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/core/log.h"
#include "model/core/stats.h"
#include "model/net/link.h"

namespace rn::net {

enum class CheckRule : uint8_t {
  kMalformed,       // a RoCEv2 frame whose framing or transport headers do not decode
  kPsnSequence,     // a request PSN ahead of the next one, or behind the first one sent
  kRetransmission,  // a resent request that is not what was sent at its PSN
  kOpcodeSequence,  // FIRST/MIDDLE/LAST/ONLY out of order, or two messages interleaved
  kPayloadLength,   // FIRST/MIDDLE not the path MTU, LAST empty or over it, ONLY over it
  kWriteLength,     // a WRITE's payloads do not add up to its RETH DMA length
  kPadCount,        // PadCnt is not (-payload length) & 3
  kAckReq,          // the last packet of a message without AckReq
  kReadResponse,    // READ response PSNs, opcodes or length not those of a READ request
  kAethSyndrome,    // a reserved AETH syndrome, or a NAK where an ACK must be
  kAckPsn,          // an ACK/NAK PSN outside the PSNs sent to that QP
  kMsn,             // an MSN lower than an earlier one
  kCount
};
const char* to_string(CheckRule r);  // "psn_sequence", ...

struct ProtocolViolation {
  uint64_t frame = 0;       // the link's frame number (1-based, both directions)
  uint64_t pcap_frame = 0;  // its number in the pcap (as Wireshark numbers), 0 if not recorded
  Tick time = 0;            // when it was sent
  int side = 0;             // the sending side
  uint32_t qp = 0;          // BTH DestQP
  uint32_t psn = 0;
  uint8_t opcode = 0;
  CheckRule rule = CheckRule::kMalformed;
  std::string what;  // what was expected and what came
  std::string text() const;
};

class ProtocolChecker final : public LinkObserver {
 public:
  // Statistics into group `name` of `reg`; each violation logged (category error) to `log` if
  // given; the first `max_listed` violations kept for violations() (all are counted).
  ProtocolChecker(stats::Registry& reg, const std::string& name, const Logger* log = nullptr,
                  size_t max_listed = 1000);
  ~ProtocolChecker() override;
  ProtocolChecker(const ProtocolChecker&) = delete;
  ProtocolChecker& operator=(const ProtocolChecker&) = delete;

  void on_send(int side, const Frame& f, Tick start, uint64_t frame, uint64_t pcap_frame) override {
    check(side, f.data, f.len, start, frame, pcap_frame);
  }
  // Checks one frame sent from `side` (its bytes up to the payload; the payload is not read).
  void check(int side, const uint8_t* data, size_t len, Tick time = 0, uint64_t frame = 0,
             uint64_t pcap_frame = 0);
  // The path MTU of every QP (256..4096); 0 (the default): each stream learns it from its first
  // FIRST packet.
  void set_path_mtu(uint32_t mtu) { mtu_ = mtu; }
  // Forgets every QP's state (QPs were destroyed: their numbers may come back with new PSNs).
  // Violations and counters stay.
  void forget();

  const std::vector<ProtocolViolation>& violations() const { return listed_; }
  uint64_t violation_count() const { return *violations_; }
  uint64_t count(CheckRule r) const { return *per_rule_[static_cast<size_t>(r)]; }
  uint64_t frames_checked() const { return *frames_; }
  uint64_t resends() const { return *resent_; }

 private:
  // A ring of the last entries (capacity grows by doubling up to `max`, then the oldest go).
  template <class T>
  struct Ring {
    std::vector<T> v;
    size_t head = 0, n = 0, max = 0;
    void push(const T& x);
    T& at(size_t i) { return v[(head + i) & (v.size() - 1)]; }  // 0: oldest
    T& back() { return at(n - 1); }
    void pop_front() {
      head = (head + 1) & (v.size() - 1);
      --n;
    }
  };
  struct Msg {  // a request message, for resends and acknowledgements
    uint32_t start = 0;
    uint32_t npsn = 0;      // PSNs it took so far
    uint32_t reth_len = 0;  // WRITE, READ: the RETH DMA length
    uint8_t kind = 0;       // wire::OpInfo::Kind
    bool complete = false;  // its LAST (or ONLY) was sent
  };
  struct ReadReq {  // a READ request, for its responses
    uint32_t psn = 0;
    uint32_t span = 0;  // PSNs (0: not known, the MTU was not)
    uint32_t len = 0;
  };
  struct Req {  // requests toward one QP
    bool started = false;
    uint16_t sport = 0;
    uint32_t first_psn = 0;
    uint32_t next = 0;  // the next new PSN (one past the highest sent)
    // A READ whose span was not known: the next new PSN is in [next, span_hi].
    bool span_unknown = false;
    uint32_t span_hi = 0;
    uint32_t mtu = 0;
    // The message being sent at the front (highest PSNs).
    bool open = false;
    uint8_t kind = 0;
    uint64_t bytes = 0;
    uint32_t reth_len = 0;
    Ring<Msg> msgs;
    Ring<ReadReq> reads;
  };
  struct Flow;
  struct Resp {  // responses toward one QP
    bool have_msn = false;
    uint32_t msn = 0;
    uint32_t mtu = 0;
    bool in_read = false;    // a READ response is under way
    bool end_known = false;  // read_end: the READ's span was known
    bool len_known = false;  // read_len: its READ request was found
    uint32_t read_next = 0, read_end = 0, read_len = 0;
    uint64_t read_bytes = 0;
    Flow* peer = nullptr;  // the request stream it answers, once found
  };
  struct Flow {
    Req req;
    Resp resp;
  };
  struct Ctx;
  Flow& flow(int side, uint32_t qp);
  Flow* peer_of(int side, uint32_t qp, uint16_t sport);
  uint32_t mtu_of(uint32_t learned) const { return mtu_ ? mtu_ : learned; }
  void request(Ctx& c, Flow& fl);
  void datagram(Ctx& c);  // a UD datagram
  void new_request(Ctx& c, Req& r);
  void resent_request(Ctx& c, Req& r);
  void response(Ctx& c, Flow& fl);
  void acknowledged(Req& r, uint32_t psn, bool inclusive);
  void violate(const Ctx& c, CheckRule rule, std::string what);

  const Logger* log_;
  std::string name_;
  size_t max_listed_;
  uint32_t mtu_ = 0;
  std::unordered_map<uint32_t, Flow> flows_;  // key: side << 24 | destination QP
  // Request flows by (side, their source port, the port of their destination QP); null when two
  // flows share the key (no pairing then).
  std::unordered_map<uint32_t, Flow*> pairs_;
  std::vector<ProtocolViolation> listed_;
  stats::Registry& reg_;
  stats::Group stats_;
  uint64_t* frames_;
  uint64_t* requests_;
  uint64_t* resent_;
  uint64_t* responses_;
  uint64_t* unchecked_;
  uint64_t* datagrams_;
  uint64_t* violations_;
  uint64_t* per_rule_[static_cast<size_t>(CheckRule::kCount)];
};

}  // namespace rn::net
