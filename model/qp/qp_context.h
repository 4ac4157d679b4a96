// NIC-side state of queue pairs and completion queues: plain data (context structs), no process
// per QP, so thousands of QPs cost memory, not events. A QP context is split by owner: the QP
// engine keeps its identity, state and attributes; the requester its send queue (SendQueue); the
// responder its receive queue (RecvQueue) and its receive progress (RespState). A queue's progress
// is explicit: free-running ring indices mark which WQEs are posted, fetched, started and done
// (each WQE's state follows from where its index lies), and a small enum per engine says what the
// engine is doing with the QP (SqPhase, WqeFetch, RxMsg, SeqNak), in place of loose flags.
#pragma once
#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "model/core/prefetch.h"
#include "model/core/sim.h"
#include "model/device/device_interface.h"
#include "model/wire/framing.h"

namespace rn::qp {

struct NicParams {
  uint32_t max_qps = 16384;
  uint32_t max_cqs = 16384;
  uint32_t max_srqs = 4096;
  uint32_t max_pds = 4096;
  uint32_t max_qp_wr = 32768;           // ring entries per SQ/RQ
  uint32_t max_cqe = 4194304;           // entries per CQ
  Tick cmd_latency = 2 * kUs;           // firmware time to execute a command
  Tick reset_latency = 10 * kUs;        // least time from a CTRL.reset write to STATUS.ready
  uint32_t wqe_prefetch = 8;            // send WQEs the NIC fetches and caches per QP
  uint32_t rq_prefetch = 8;             // receive WQEs the NIC fetches and caches per QP
  uint32_t tx_pipeline_depth = 32;      // packets between payload DMA issue and the wire
  Tick tx_pipeline_latency = 40 * kNs;  // header build, ICRC and MAC, per packet
  Tick rx_pipeline_latency = 40 * kNs;  // parse, checks and ICRC, per packet
  uint32_t tx_queue_frames = 4;    // MTU frames the link may have queued before the scheduler waits
  uint32_t max_unacked_psn = 128;  // PSNs in flight per QP before the requester waits for ACKs
  uint32_t ack_req_every = 64;     // AckReq at least every N packets (and on each message's last)
  Tick ack_coalesce = 0;           // an ACK waits this long for later AckReqs to answer with it
  uint32_t sched_quantum = 1;      // packets a QP sends per turn of the round-robin scheduler
  uint64_t rx_buffer_bytes = 256 << 10;  // receive buffer: frames held until placed in memory
  bool icrc_seal = true;         // speed trick: trust the ICRC of frames this simulator sealed
  bool prefetch_hints = true;    // speed trick: prefetch QP contexts and regions ahead of use
  std::array<uint8_t, 6> mac{};  // port MAC
  uint32_t ipv4 = 0;             // port IPv4 address (host order)
  double port_rate_bps = 100e9;
};

// The port's framing. The concrete class (final), not the wire::Framing interface: its calls on the
// per-packet path (headroom, wrap, unwrap) then compile to direct calls, headroom() to a constant.
// Another framing (IPv6, InfiniBand) would be chosen here, or the port made a template over it.
using PortFraming = wire::RoceV2Ipv4Framing;

// What every engine of one NIC shares and never changes: the simulator, the instance name (for
// logs and statistics groups) and the parameters.
// What a driver did wrong, as the device saw it: the driver sanitizer's input. The device refuses
// each of these as the interface says (docs/device-interface.md); a sink, if one is set, is told
// in a sentence. Only error paths call it: nothing is formatted while drivers behave.
enum class DriverError {
  kRegister,     // a register or doorbell write refused (obj: its BAR0 offset)
  kWqe,          // a send WQE refused: opcode, SGE count, inline length, ... (obj: QPN)
  kLocalAccess,  // a send WQE's SGE outside what its lkey allows (obj: QPN)
  kRecvAccess,   // a receive WQE's SGE outside what its lkey allows (obj: QPN)
  kCqOverrun,    // a CQE dropped: the driver did not consume its CQ in time (obj: CQN)
};
class DriverErrorSink {
 public:
  virtual ~DriverErrorSink() = default;
  virtual void driver_error(DriverError kind, uint64_t obj, const std::string& what) = 0;
};

struct NicEnv {
  Sim& sim;
  std::string name;
  NicParams params;
  DriverErrorSink* sink = nullptr;  // the driver sanitizer (rnicsim serve), or none
  Tick now() const { return sim.now(); }
  template <typename... A>
  void driver_error(DriverError kind, uint64_t obj, fmt::format_string<A...> f, A&&... a) const {
    if (sink) sink->driver_error(kind, obj, fmt::format(f, std::forward<A>(a)...));
  }
};

// A cached, decoded send WQE.
struct SendWqeCache {
  dev::SendWqe hdr;
  dev::AtomicSeg atomic;  // an atomic WQE's operands (WrOpcode ATOMIC_*)
  dev::UdSeg ud;          // a UD QP's WQE: the datagram's address (QpType UD)
  union {
    dev::Sge sge[dev::kMaxSendSge];
    uint8_t inline_data[dev::kMaxSendInline];  // with WqeFlags::INLINE: hdr.inline_len bytes
  };
  bool fetch_failed = false;  // its DMA read failed (IOMMU): the bytes are not the driver's
};
static_assert(sizeof(dev::Sge) * dev::kMaxSendSge == dev::kMaxSendInline,
              "a WQE's SGEs and its inline payload take the same room after the header");
inline bool is_atomic(uint8_t wr_opcode) {
  return wr_opcode == static_cast<uint8_t>(dev::WrOpcode::ATOMIC_CMP_AND_SWP) ||
         wr_opcode == static_cast<uint8_t>(dev::WrOpcode::ATOMIC_FETCH_AND_ADD);
}
inline bool is_inline(const dev::SendWqe& h) {
  return (h.flags & static_cast<uint8_t>(dev::WqeFlags::INLINE)) != 0;
}
struct RecvWqeCache {
  dev::RecvWqe hdr;
  dev::Sge sge[dev::kMaxRecvSge];
};

// Entries of the send WQE stride a UD WQE's UdSeg takes (16-byte entries).
inline constexpr uint32_t kUdSegEntries = sizeof(dev::UdSeg) / sizeof(dev::Sge);
static_assert(sizeof(dev::UdSeg) % sizeof(dev::Sge) == 0, "a UdSeg takes whole SGE entries");
// The GRH area at the head of every UD receive buffer (counted in the CQE's byte_len).
inline constexpr uint32_t kUdGrhBytes = 40;

// Copies n fetched WQEs (2^shift bytes each, back to back at `buf`) into a WQE cache ring from
// index `first` on: the header, then (a UD QP's send WQE: ud) its UdSeg, then at most max_sge of
// the scatter/gather entries it announces (an atomic send WQE's AtomicSeg first, in the place of
// one of them), or an inline send WQE's payload, as much of inline_len as the stride holds.
template <typename Cache, typename Ring>
void unpack_wqes(const uint8_t* buf, uint32_t n, uint8_t shift, Ring& ring, uint32_t first,
                 uint32_t max_sge, bool ud = false) {
  for (uint32_t i = 0; i < n; ++i) {
    Cache& c = ring[(first + i) % ring.size()];
    if constexpr (std::is_same_v<Cache, SendWqeCache>) c.fetch_failed = false;
    const uint8_t* src = buf + (size_t(i) << shift);
    std::memcpy(&c.hdr, src, sizeof c.hdr);
    size_t at = sizeof c.hdr;
    uint32_t room = max_sge;
    if constexpr (std::is_same_v<Cache, SendWqeCache>) {
      if (ud) {  // its address first (the stride holds it: the smallest is 64 bytes)
        std::memcpy(&c.ud, src + at, sizeof c.ud);
        at += sizeof c.ud;
        room = max_sge > kUdSegEntries ? max_sge - kUdSegEntries : 0;
      }
      if (is_inline(c.hdr)) {  // the payload in place of the entries (start_wqe checks its length)
        const size_t len = std::min<size_t>(c.hdr.inline_len, (size_t(1) << shift) - at);
        std::memcpy(c.inline_data, src + at, std::min(len, sizeof c.inline_data));
        continue;
      }
      if (is_atomic(c.hdr.opcode)) {  // its AtomicSeg takes the first entry
        std::memcpy(&c.atomic, src + at, sizeof c.atomic);
        at += sizeof c.atomic;
        room = max_sge > 0 ? max_sge - 1 : 0;
      }
    }
    const uint32_t ns = std::min<uint32_t>(c.hdr.num_sge, room);
    std::memcpy(c.sge, src + at, ns * sizeof(dev::Sge));
  }
}

// A send WQE started but not yet acknowledged.
struct Outstanding {
  uint32_t idx;  // free-running WQE index
  uint32_t first_psn, last_psn;
  bool read;       // an RDMA READ or atomic: complete when its (last) response has landed, not by
                   // an ACK
  bool read_done;  // ... and it has: its data is in memory at done_at
  Tick done_at;
  uint64_t wr_id;
  uint32_t byte_len;
  uint8_t wc_opcode;
  bool signaled;
  dev::WcStatus status;  // SUCCESS, or a local error found when the WQE was started
  uint8_t vendor_err;
};

struct CqCtx {
  bool valid = false;
  uint32_t cqn = 0;
  uint64_t ring = 0;
  uint8_t log_size = 0;
  uint32_t pi = 0;  // next CQE index (free-running)
  uint32_t ci = 0;  // consumer index from the doorbell (24-bit, extended)
  bool armed = false;
  bool solicited_only = false;
  bool overrun = false;
  uint32_t users = 0;  // QPs using it
};

// A DMA read of WQEs into a queue's cache: none, or one in flight.
enum class WqeFetch : uint8_t { kIdle, kInFlight };

// What the requester is doing with a QP's send queue.
enum class SqPhase : uint8_t {
  kIdle,       // between messages: the next fetched WQE may start
  kInMessage,  // a WQE is being sent (SendQueue::cur); its next packet is at cur_off
  kRestart,    // going back (go-back-N): the WQE at `next` starts again at PSN resume_psn
  kStopped,    // a local error stopped the queue: the failed WQE completes, then the QP errs
};
// A send queue in SQD: still finishing what it had started, or drained (nothing outstanding).
enum class SqDrain : uint8_t { kDraining, kDrained };
// The local ACK timer of a send queue: no calendar event booked, or one booked (for
// ack_deadline or earlier: it books itself again if the deadline moved on meanwhile).
enum class AckTimer : uint8_t { kOff, kBooked };

// An RDMA READ or atomic the requester waits for responses to (a ring of max_rd_atomic per QP).
struct ReadCtx {
  uint32_t idx;  // the WQE
  bool atomic;   // an atomic: one ATOMIC ACKNOWLEDGE, whose original value goes to sge[0]
  uint32_t first_psn, last_psn;
  uint32_t next_psn;  // the response expected next
  uint32_t len, off;  // bytes asked for, bytes placed
  uint32_t num_sge;
  dev::Sge sge[dev::kMaxSendSge];  // where the data goes
};

// What a send queue waits for before it may send again (besides ACKs opening its PSN window).
enum class SqWait : uint8_t {
  kNone,
  kTranslation,  // a lookup of its payload answered kPending
  // A READ response (or atomic acknowledgement) was dropped because the lookup of its
  // destination answered kPending: the READ goes again from sq.back_psn once the stage wakes it
  // (no retry is spent: nothing was lost).
  kResponseTranslation,
  kRnrTimer,  // an RNR NAK: the refused request goes again when the RNR timer expires
};

// The send queue (the requester's). Indices are free-running 32-bit counters (the doorbell
// carries the low 16 bits): WQEs [done, next) are started and not yet complete, [next, fetched)
// are in the cache, [fetched, pi) are posted in host memory and not yet fetched.
struct SendQueue {
  uint32_t pi = 0;       // posted
  uint32_t fetched = 0;  // fetched into the cache
  uint32_t next = 0;     // next to start sending
  uint32_t done = 0;     // completed (acknowledged, or flushed)
  WqeFetch fetch = WqeFetch::kIdle;
  SqPhase phase = SqPhase::kIdle;
  SqWait wait = SqWait::kNone;
  bool scheduled = false;           // on the requester's ready list
  std::vector<SendWqeCache> cache;  // wqe_prefetch slots, index % size
  uint32_t cur_idx = 0;             // the WQE being sent (in `cur`, at the end)
  uint32_t cur_len = 0, cur_off = 0;
  uint32_t cur_sge = 0, cur_sge_off = 0;
  uint32_t psn = 0;                      // next PSN to send
  uint32_t unacked_psn = 0;              // oldest PSN not yet acknowledged
  uint32_t max_psn = 0;                  // one past the highest PSN ever sent
  uint32_t resume_first_psn = 0;         // with kRestart: the first PSN of the WQE at `next`
  uint32_t resume_psn = 0;               // with kRestart: where it starts again
  uint32_t fetch_gen = 0;                // renewed by a restart: older WQE fetches are stale
  uint32_t high_started = 0;             // WQEs below this index have been started (statistics)
  uint8_t retry_left = 0, rnr_left = 0;  // retries left (retry_cnt, rnr_retry; 7: RNR forever)
  // A go-back (sequence NAK, or a missing READ response or atomic acknowledgement) was made at
  // back_psn, and nothing has progressed since: the responses and NAKs already on their way
  // arrive after it, out of sequence too, and are dropped without going back again (each would
  // spend a retry). If the answers to the resend are lost as well, the ACK timeout resends.
  // nak_psn: the furthest sequence NAK since (back_psn after an implied NAK).
  bool gone_back = false;
  uint32_t back_psn = 0, nak_psn = 0;
  AckTimer ack_timer = AckTimer::kOff;
  SqDrain drain = SqDrain::kDrained;  // with the QP in SQD
  bool drain_event = false;           // SQ_DRAINED to be posted when drained (EN_SQD_ASYNC_NOTIFY)
  Tick ack_deadline = 0;              // the local ACK timeout expires (0: nothing to time)
  uint32_t since_ackreq = 0;          // packets sent since the last AckReq
  std::vector<Outstanding> outstanding;  // ring of the queue's size
  std::vector<ReadCtx> reads;            // READs waiting for responses: ring of max_rd_atomic
  uint32_t rd_head = 0, rd_tail = 0;     // free-running
  uint32_t out_head = 0, out_tail = 0;   // free-running
  // The WQE being sent (copied out of the cache when started; `next` is already past it). Last:
  // most of its SGE and inline room is seldom used (see kCtxHotBytes).
  SendWqeCache cur;
};

// The receive queue (the responder's): [ci, fetched) cached, [fetched, pi) posted. A QP attached
// to an SRQ has no ring of its own: its cache is one slot, the WQE it took from the SRQ for the
// message it receives (pi and fetched move on together when it takes one; srq_idx is that WQE's
// index in the SRQ, reported in its completion).
struct RecvQueue {
  uint32_t pi = 0, fetched = 0, ci = 0;
  WqeFetch fetch = WqeFetch::kIdle;
  std::vector<RecvWqeCache> cache;
  uint32_t srq_idx = 0;
};

// A shared receive queue (the responder's): a ring of receive WQEs that the QPs attached to it
// take from, one per message needing one, in the order their packets arrive. Indices are
// free-running: WQEs [taken, fetched) are in the SRQ's cache, [fetched, pi) posted in host memory
// and not yet fetched. A WQE taken leaves the SRQ for good (it is the taking QP's).
struct SrqCtx {
  bool valid = false;
  uint32_t srqn = 0;
  uint32_t epoch = 0;  // renewed at creation: a fetch landing for a destroyed SRQ is stale
  uint32_t pdn = 0;
  uint64_t ring = 0;
  uint8_t log_size = 0, shift = 4;
  uint32_t pi = 0, fetched = 0, taken = 0;
  WqeFetch fetch = WqeFetch::kIdle;
  uint32_t limit = 0;  // armed limit (0: none): an event when fewer than `limit` WQEs remain
  uint32_t users = 0;  // QPs attached
  std::vector<RecvWqeCache> cache;
  uint32_t size() const { return 1u << log_size; }
};

// The message a responder is in the middle of, for the opcode sequence check.
enum class RxMsg : uint8_t { kNone, kSend, kWrite };
// Whether the responder has NAKed the current PSN sequence error (one NAK per error).
enum class SeqNak : uint8_t { kNone, kSent };

// An atomic the responder executed (or is executing) for a QP: kept for a duplicate of its
// request, which is answered with the same original value instead of being executed again.
struct AtomicResult {
  uint32_t psn = 0;
  uint64_t orig = 0;
  bool done = false;  // executed: orig is valid
  bool valid = false;
};

// The responder's progress on a QP.
struct RespState {
  uint32_t epsn = 0;  // expected PSN
  uint32_t msn = 0;   // messages completed
  SeqNak nak = SeqNak::kNone;
  RxMsg msg = RxMsg::kNone;  // with kSend, the receive WQE at RecvQueue::ci holds it
  bool uc_dropping = false;  // UC: a message was lost; packets are dropped until a FIRST/ONLY
  // ACK coalescing (nic.ack_coalesce): an ACK owed for PSN ack_psn, to be sent when the timer
  // books it; any ACK, NAK or response sent meanwhile carries a later PSN and answers it.
  bool ack_owed = false, ack_booked = false;
  uint32_t ack_psn = 0;
  uint32_t rx_off = 0;  // bytes of the current message received
  uint64_t w_va = 0;    // the current WRITE's RETH
  uint32_t w_rkey = 0, w_len = 0;
  // READs and atomics accepted whose responses are not all sent (at most max_dest_rd_atomic new
  // ones), and of them the duplicates (executed again or replayed after the requester went back:
  // they hold no slot of max_dest_rd_atomic, their originals did).
  uint32_t reads_queued = 0, dups_queued = 0;
  // The last atomics, a ring (allocated at the QP's first atomic; its size the most
  // max_dest_rd_atomic allows): the responder's resources for replaying them.
  std::vector<AtomicResult> atomics;
  uint32_t atomics_next = 0;
};

struct alignas(64) QpCtx {  // aligned: its hot bytes (kCtxHotBytes) take the fewest cache lines
  bool valid = false;
  uint32_t qpn = 0;
  uint8_t type = 2;
  dev::QpState state = dev::QpState::RESET;
  uint32_t pdn = 0;
  uint32_t send_cqn = 0, recv_cqn = 0;
  bool sig_all = false;
  bool no_inline = false;  // created after DRIVER_VERSION = 1: inline WQEs are refused
  uint64_t sq_addr = 0, rq_addr = 0;
  uint32_t srqn = 0;  // the SRQ it receives into (0: none, its own receive queue)
  uint8_t log_sq = 0, log_rq = 0, sq_shift = 6, rq_shift = 6;

  // Attributes (MODIFY_QP).
  uint32_t access = 0;
  uint8_t mtu_code = 5;
  uint32_t mtu = 4096;
  uint32_t dest_qpn = 0;
  uint8_t timeout = 0, retry_cnt = 0, rnr_retry = 0, min_rnr_timer = 0;
  uint8_t max_rd_atomic = 0, max_dest_rd_atomic = 0;
  uint32_t dest_ipv4 = 0;
  std::array<uint8_t, 6> dest_mac{};
  uint8_t tos = 0, ttl = 64;
  uint32_t qkey = 0;    // UD: the QP's Q_Key (QpAttr QKEY)
  wire::PathInfo path;  // built when the address vector is set (UD: the source part at CREATE_QP)

  // A NIC-wide unique number, renewed at creation and on every move to RESET: DMA completions
  // captured under another epoch are stale.
  uint32_t epoch = 0;

  RecvQueue rq;
  RespState rs;
  SendQueue sq;  // last, its current WQE's room at the very end (see kCtxHotBytes)

  uint32_t sq_size() const { return 1u << log_sq; }
  uint32_t rq_size() const { return 1u << log_rq; }
  // The send queue is in error: what is posted completes with WR_FLUSH_ERR (ERR, or SQE: UC).
  bool sq_flushing() const { return state == dev::QpState::ERR || state == dev::QpState::SQE; }
  bool uc() const { return type == static_cast<uint8_t>(dev::QpType::UC); }
  bool ud() const { return type == static_cast<uint8_t>(dev::QpType::UD); }
  // Unreliable (UC or UD): nothing is acknowledged, a send error moves the QP to SQE.
  bool unreliable() const { return type != static_cast<uint8_t>(dev::QpType::RC); }
  // The send queue may transmit: in RTS, or in SQD what it had started before.
  bool sends() const { return state == dev::QpState::RTS || state == dev::QpState::SQD; }
  // The QP may receive requests (RTR and after, until an error).
  bool receives() const {
    return state == dev::QpState::RTR || state == dev::QpState::RTS || state == dev::QpState::SQD ||
           state == dev::QpState::SQE;
  }
};

// The bytes of a QP context a packet touches: all of it up to the current WQE's first two SGEs
// (the rest of its SGE and inline room, about 400 bytes, only for WQEs that use it).
inline constexpr size_t kCtxHotBytes = offsetof(QpCtx, sq) + offsetof(SendQueue, cur) +
                                       offsetof(SendWqeCache, sge) + 2 * sizeof(dev::Sge);
static_assert(kCtxHotBytes < sizeof(QpCtx), "the context's cold tail is its current WQE's room");
// Starts loading a QP context's hot bytes into the CPU cache (a hint for the simulator's speed:
// with many QPs the contexts do not all stay cached).
inline void prefetch_ctx(const QpCtx* q) { prefetch_object(q, kCtxHotBytes); }

uint32_t mtu_bytes(uint8_t code);  // dev::Mtu code -> bytes, 0 if invalid

}  // namespace rn::qp
