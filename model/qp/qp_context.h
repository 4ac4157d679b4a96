// NIC-side state of queue pairs, completion queues and protection domains: plain data (context
// structs), no process per QP, so thousands of QPs cost memory, not events. Shared by the
// requester, the responder, the completion engine and the command processor.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bridge/pcie/pcie_bridge.h"
#include "model/core/prefetch.h"
#include "model/core/sim.h"
#include "model/device/device_interface.h"
#include "model/net/frame.h"
#include "model/net/link.h"
#include "model/translation/mr_table.h"
#include "model/wire/framing.h"
#include "model/wire/transport.h"

namespace rn::qp {

struct NicParams {
  uint32_t max_qps = 16384;
  uint32_t max_cqs = 16384;
  uint32_t max_pds = 4096;
  uint32_t max_qp_wr = 32768;           // ring entries per SQ/RQ
  uint32_t max_cqe = 4194304;           // entries per CQ
  Tick cmd_latency = 2 * kUs;           // firmware time to execute a command
  uint32_t wqe_prefetch = 8;            // send WQEs the NIC fetches and caches per QP
  uint32_t rq_prefetch = 8;             // receive WQEs the NIC fetches and caches per QP
  uint32_t tx_pipeline_depth = 32;      // packets between payload DMA issue and the wire
  Tick tx_pipeline_latency = 40 * kNs;  // header build, ICRC and MAC, per packet
  Tick rx_pipeline_latency = 40 * kNs;  // parse, checks and ICRC, per packet
  uint32_t tx_queue_frames = 4;    // MTU frames the link may have queued before the scheduler waits
  uint32_t max_unacked_psn = 128;  // PSNs in flight per QP before the requester waits for ACKs
  uint32_t ack_req_every = 64;     // AckReq at least every N packets (and on each message's last)
  uint32_t sched_quantum = 1;      // packets a QP sends per turn of the round-robin scheduler
  uint64_t rx_buffer_bytes = 256 << 10;  // receive buffer: frames held until placed in memory
  std::array<uint8_t, 6> mac{};          // port MAC
  uint32_t ipv4 = 0;                     // port IPv4 address (host order)
  double port_rate_bps = 100e9;
};

// A cached, decoded send WQE.
struct SendWqeCache {
  dev::SendWqe hdr;
  dev::Sge sge[(512 - 32) / 16];
};
struct RecvWqeCache {
  dev::RecvWqe hdr;
  dev::Sge sge[(512 - 16) / 16];
};

// Copies n fetched WQEs (2^shift bytes each, back to back at `buf`) into a WQE cache ring from
// index `first` on: the header, then at most max_sge of the scatter/gather entries it announces.
template <typename Cache, typename Ring>
void unpack_wqes(const uint8_t* buf, uint32_t n, uint8_t shift, Ring& ring, uint32_t first,
                 uint32_t max_sge) {
  for (uint32_t i = 0; i < n; ++i) {
    Cache& c = ring[(first + i) % ring.size()];
    const uint8_t* src = buf + (size_t(i) << shift);
    std::memcpy(&c.hdr, src, sizeof c.hdr);
    const uint32_t ns = std::min<uint32_t>(c.hdr.num_sge, max_sge);
    std::memcpy(c.sge, src + sizeof c.hdr, ns * sizeof(dev::Sge));
  }
}

// A send WQE started but not yet acknowledged.
struct Outstanding {
  uint32_t idx;  // free-running WQE index
  uint32_t last_psn;
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

enum class RxOp : uint8_t { kNone, kSend, kWrite };

struct QpCtx {
  bool valid = false;
  uint32_t qpn = 0;
  uint8_t type = 2;
  dev::QpState state = dev::QpState::RESET;
  uint32_t pdn = 0;
  uint32_t send_cqn = 0, recv_cqn = 0;
  bool sig_all = false;
  uint64_t sq_addr = 0, rq_addr = 0;
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
  wire::PathInfo path;  // built when the address vector is set

  // Send queue: free-running 32-bit indices (the doorbell carries the low 16 bits).
  uint32_t sq_pi = 0;       // posted
  uint32_t sq_fetched = 0;  // fetched into the cache
  uint32_t sq_next = 0;     // next to start sending
  uint32_t sq_done = 0;     // completed (acknowledged, or flushed)
  bool sq_fetching = false;
  std::vector<SendWqeCache> sq_cache;  // wqe_prefetch slots, index % size
  // The WQE being sent (copied out of the cache when started; sq_next is already past it).
  SendWqeCache cur;
  uint32_t cur_idx = 0;
  bool cur_active = false;
  bool sq_blocked = false;  // a local error stopped the send queue (pending ERR)
  uint32_t cur_len = 0, cur_off = 0;
  uint32_t cur_sge = 0, cur_sge_off = 0;
  uint32_t sq_psn = 0;                   // next PSN to send
  uint32_t unacked_psn = 0;              // oldest PSN not yet acknowledged
  uint32_t since_ackreq = 0;             // packets sent since the last AckReq
  std::vector<Outstanding> outstanding;  // ring of sq size
  uint32_t out_head = 0, out_tail = 0;   // free-running

  // Receive queue.
  uint32_t rq_pi = 0, rq_fetched = 0, rq_ci = 0;
  bool rq_fetching = false;
  std::vector<RecvWqeCache> rq_cache;

  // Responder.
  uint32_t epsn = 0;  // expected PSN
  uint32_t msn = 0;   // messages completed
  bool seq_nak_sent = false;
  RxOp rx_op = RxOp::kNone;
  uint32_t rx_off = 0;  // bytes of the current message received
  uint64_t w_va = 0;
  uint32_t w_rkey = 0, w_len = 0;
  bool recv_active = false;  // the WQE at rq_ci holds the current SEND

  // A NIC-wide unique number, renewed at creation and on every move to RESET: DMA completions
  // captured under another epoch are stale.
  uint32_t epoch = 0;
  // Scheduler.
  bool in_ready = false;
  uint32_t sq_size() const { return 1u << log_sq; }
  uint32_t rq_size() const { return 1u << log_rq; }
};

// Starts loading a QP context into the CPU cache (a hint for the simulator's speed: with many QPs
// the contexts do not all stay cached).
inline void prefetch_ctx(const QpCtx* q) { prefetch_object(q, sizeof *q); }

class Requester;
class Responder;
class Completion;

// Everything the NIC's engines share.
struct NicState {
  NicState(Sim& s, const std::string& n, const NicParams& p, pcie::DmaPort& d, net::FramePool& fp,
           const xlate::Params& xp)
      : sim(s), name(n), params(p), dma(d), pool(fp), mrs(s, n + ".mr", xp) {}
  Sim& sim;
  std::string name;
  NicParams params;
  pcie::DmaPort& dma;
  net::FramePool& pool;
  xlate::MrTable mrs;
  wire::RoceV2Ipv4Framing framing;
  net::Link* link = nullptr;
  int link_side = 0;

  std::vector<std::unique_ptr<QpCtx>> qps;  // index = QPN; 0 and 1 reserved as in InfiniBand
  std::vector<CqCtx> cqs;                   // index = CQN; 0 reserved
  std::vector<bool> pds;                    // index = PDN; 0 reserved
  std::vector<uint32_t> pd_users;

  uint32_t epochs = 0;  // last QP epoch handed out

  // Landing buffers for WQE fetches, owned by the NIC (not the QP): a QP destroyed while its
  // fetch is in flight leaves the DMA writing into a live buffer, returned when the fetch lands.
  std::vector<uint8_t>* get_fetch_buf(size_t bytes) {
    std::vector<uint8_t>* b;
    if (fetch_free.empty()) {
      fetch_all.push_back(std::make_unique<std::vector<uint8_t>>());
      b = fetch_all.back().get();
    } else {
      b = fetch_free.back();
      fetch_free.pop_back();
    }
    if (b->size() < bytes) b->resize(bytes);
    return b;
  }
  void put_fetch_buf(std::vector<uint8_t>* b) { fetch_free.push_back(b); }
  std::vector<std::unique_ptr<std::vector<uint8_t>>> fetch_all;
  std::vector<std::vector<uint8_t>*> fetch_free;
  Requester* req = nullptr;
  Responder* resp = nullptr;
  Completion* comp = nullptr;

  Tick now() const { return sim.now(); }
  QpCtx* qp(uint32_t qpn) {
    return (qpn < qps.size() && qps[qpn] && qps[qpn]->valid) ? qps[qpn].get() : nullptr;
  }
  // The context of a QPN without reading it (null if none): for prefetching.
  const QpCtx* qp_ptr(uint32_t qpn) const { return qpn < qps.size() ? qps[qpn].get() : nullptr; }
  CqCtx* cq(uint32_t cqn) { return (cqn < cqs.size() && cqs[cqn].valid) ? &cqs[cqn] : nullptr; }
  // Frames f, whose transport bytes (tlen) are in place, and seals its ICRC for the receiver
  // (net::Frame::icrc_sealed). f->len is 0 if tlen is too large for the framing.
  void wrap(net::Frame* f, size_t tlen, const wire::PathInfo& path) {
    wire::ExtPayload ext;
    if (f->payload_external())
      ext = {f->payload_page.page, f->ext_off, 4096, true, f->payload_page.crc};
    f->len = static_cast<uint32_t>(framing.wrap(f->data, tlen, path, ext));
    f->icrc_sealed = f->len != 0;
  }
  // Sends a control frame (ACK/NAK) built by the caller in f, at `ready` or later.
  void send_frame(net::Frame* f, Tick ready) { link->send(link_side, f, ready); }
};

uint32_t mtu_bytes(uint8_t code);  // dev::Mtu code -> bytes, 0 if invalid

}  // namespace rn::qp
