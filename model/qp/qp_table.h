// The NIC's object tables: QP contexts by QPN, CQ contexts by CQN, protection domains by PDN,
// and the landing buffers of WQE fetches. Lookups only: who may create, change or destroy an
// object is the QP engine's (QPs) and the command processor's (CQs, PDs) business.
#pragma once
#include <deque>
#include <memory>
#include <vector>

#include "model/qp/qp_context.h"

namespace rn::qp {

// Access flags the device knows (dev::Access); other bits are refused.
constexpr uint32_t kKnownAccess = 0x3F;

// The oldest freed number of a table (0 if none): a destroyed object's number is reused as late as
// possible, so that late packets and completions meant for it are less likely to meet a new one.
inline uint32_t take_oldest(std::deque<uint32_t>& free) {
  if (free.empty()) return 0;
  uint32_t n = free.front();
  free.pop_front();
  return n;
}

class QpTable {
 public:
  QpTable() {
    qps.resize(2);  // QPNs 0 and 1 are reserved, as in InfiniBand
    cqs.resize(1);  // CQN 0, SRQN 0 and PDN 0 are reserved
    srqs.resize(1);
    pds.resize(1, false);
    pd_users.resize(1, 0);
  }
  QpCtx* qp(uint32_t qpn) {
    return (qpn < qps.size() && qps[qpn] && qps[qpn]->valid) ? qps[qpn].get() : nullptr;
  }
  // The context of a QPN without reading it (null if none): for prefetching.
  const QpCtx* qp_ptr(uint32_t qpn) const { return qpn < qps.size() ? qps[qpn].get() : nullptr; }
  CqCtx* cq(uint32_t cqn) { return (cqn < cqs.size() && cqs[cqn].valid) ? &cqs[cqn] : nullptr; }
  SrqCtx* srq(uint32_t n) { return (n < srqs.size() && srqs[n].valid) ? &srqs[n] : nullptr; }
  bool pd_valid(uint32_t pdn) const { return pdn < pds.size() && pds[pdn]; }

  // Landing buffers for WQE fetches, owned by the NIC (not the QP): a QP destroyed while its
  // fetch is in flight leaves the DMA writing into a live buffer, returned when the fetch lands.
  std::vector<uint8_t>* get_fetch_buf(size_t bytes) {
    std::vector<uint8_t>* b;
    if (fetch_free_.empty()) {
      fetch_all_.push_back(std::make_unique<std::vector<uint8_t>>());
      b = fetch_all_.back().get();
    } else {
      b = fetch_free_.back();
      fetch_free_.pop_back();
    }
    if (b->size() < bytes) b->resize(bytes);
    return b;
  }
  void put_fetch_buf(std::vector<uint8_t>* b) { fetch_free_.push_back(b); }

  std::vector<std::unique_ptr<QpCtx>> qps;  // index = QPN
  std::vector<CqCtx> cqs;                   // index = CQN
  std::vector<SrqCtx> srqs;                 // index = SRQN
  std::vector<bool> pds;                    // index = PDN
  std::vector<uint32_t> pd_users;           // QPs and SRQs in each PD
  uint32_t epochs = 0;                      // last QP epoch handed out

 private:
  std::vector<std::unique_ptr<std::vector<uint8_t>>> fetch_all_;
  std::vector<std::vector<uint8_t>*> fetch_free_;
};

// What an engine tells the QP engine about a QP's life. The requester and the responder find
// errors; only the QP engine changes a QP's state.
class QpLife {
 public:
  virtual ~QpLife() = default;
  // An error the NIC found (a NAK received or sent, a local protection or length error): the QP
  // moves to ERR, every outstanding and posted WQE is flushed, and QP_FATAL goes to the event
  // queue.
  virtual void fail(QpCtx& q) = 0;
};

}  // namespace rn::qp
