// The QP engine: owns every QP's life. It creates QP contexts, applies MODIFY_QP with the
// InfiniBand transition rules (required and optional attributes per transition), moves QPs to
// ERR when an engine reports an error (flushing both queues), resets and destroys them. The
// requester and the responder own the queues' progress; only this engine changes a QP's state.
#pragma once
#include <cstddef>
#include <deque>

#include "model/qp/completion.h"
#include "model/qp/qp_table.h"
#include "model/qp/requester.h"
#include "model/qp/responder.h"

namespace rn::qp {

// Offset of field `f` of command arguments struct T inside CmdIn, for CmdOut.syndrome.
#define RN_FIELD_OFF(T, f) static_cast<uint32_t>(offsetof(dev::CmdIn, args) + offsetof(T, f))

// A command's outcome, as the command processor reports it (CmdOut.status and .syndrome, the
// offset in CmdIn of the offending field).
struct CmdResult {
  dev::CmdStatus status = dev::CmdStatus::OK;
  uint32_t syndrome = 0;
};

class QpEngine : public QpLife {
 public:
  QpEngine(const NicEnv& env, QpTable& t, Requester& req, Responder& resp, Completion& comp);
  CmdResult create(const dev::CreateQpIn& a, uint32_t* qpn);
  CmdResult modify(const dev::ModifyQpIn& a);
  CmdResult query(uint32_t qpn, dev::QueryQpOut* out);
  CmdResult destroy(uint32_t qpn);
  // Doorbells, already checked by the device (QP exists, state, index range).
  void sq_doorbell(QpCtx& q, uint32_t pi) { req_.sq_doorbell(q, pi); }
  void sq_doorbell_wqe(QpCtx& q, uint32_t pi, const uint8_t* wqe, uint32_t len) {
    req_.sq_doorbell_wqe(q, pi, wqe, len);
  }
  void rq_doorbell(QpCtx& q, uint32_t pi) { resp_.rq_doorbell(q, pi); }
  void srq_doorbell(SrqCtx& s, uint32_t pi) { resp_.srq_doorbell(s, pi); }
  // QpLife: an error the NIC found. A UC QP's send errors stop its send queue only (SQE); other
  // errors move the QP to ERR.
  void fail(QpCtx& q) override;

 private:
  // Moves the QP to ERR and flushes both queues. An error found by the NIC (async_event) also
  // reports QP_FATAL on the event queue; MODIFY_QP to ERR does not.
  void enter_error(QpCtx& q, bool async_event);
  void reset(QpCtx& q);
  // SQE (UC): the send queue is flushed; the receive queue goes on.
  void enter_sq_error(QpCtx& q);

  const NicEnv& env_;
  QpTable& t_;
  Requester& req_;
  Responder& resp_;
  Completion& comp_;
  // QPNs freed by DESTROY_QP, oldest first: creation takes one in O(1), and a destroyed QP's
  // number is reused as late as possible.
  std::deque<uint32_t> free_qps_;
};

}  // namespace rn::qp
