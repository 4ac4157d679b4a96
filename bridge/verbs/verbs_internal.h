// Our libibverbs.so.1's objects: each verbs object (ibv_context, ibv_pd, ibv_cq, ...) is the first
// member of our own struct, which holds the driver's object behind it, so that a pointer the
// application passes in is turned back into ours by a cast. Shared by the library's sources.
#pragma once
#include <infiniband/verbs.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bridge/driver/driver.h"
#include "bridge/vdev/client.h"

// What the library exports (with the version script, libibverbs.map): everything else is hidden.
#define RN_EXPORT extern "C" __attribute__((visibility("default")))

namespace rn::verbs {

// One device of the list: a simulated host's NIC as serve offers it. Kept for the whole process
// (a context keeps pointing at its device after ibv_free_device_list).
struct Device {
  ibv_device dev;  // first: an ibv_device* is a Device*
  vdev::HostInfo host;
  int index = 0;
};

struct Context;
struct Cq;

struct Pd {
  ibv_pd pd;  // first
  uint32_t pdn = 0;
};
struct Mr {
  ibv_mr mr;  // first
  drv::Mr m;
};
struct Ah {
  ibv_ah ah;  // first
  drv::Ah* a = nullptr;
};
// A completion channel: its fd is an eventfd (semaphore mode) counting the CQs in `ready`.
struct Channel {
  ibv_comp_channel ch;  // first
  std::mutex mu;
  std::deque<Cq*> ready;  // CQs with a completion event not yet taken by ibv_get_cq_event
};
struct Cq {
  ibv_cq_ex ex;  // first: ibv_cq is ibv_cq_ex's head, so both casts hold
  Context* ctx = nullptr;
  drv::Cq* cq = nullptr;
  Channel* channel = nullptr;
  uint32_t comp_events = 0;   // completion events handed out by ibv_get_cq_event
  uint32_t async_events = 0;  // async events naming the CQ handed out by ibv_get_async_event
  drv::Wc cur{};              // the extended API's current completion (start_poll/next_poll)
};
struct Srq {
  ibv_srq srq;  // first
  Context* ctx = nullptr;
  drv::Srq* s = nullptr;
  uint32_t async_events = 0;
};
struct Qp {
  ibv_qp_ex ex;  // first: ibv_qp is ibv_qp_ex's head, so both casts hold
  Context* ctx = nullptr;
  drv::Qp* qp = nullptr;
  bool has_ex = false;        // created with send ops flags: ibv_qp_to_qp_ex gives ex
  uint32_t async_events = 0;  // async events naming the QP handed out by ibv_get_async_event
  // The attributes last set by ibv_modify_qp, for ibv_query_qp (the device reports only some).
  ibv_qp_attr saved{};
  // The work requests being built between wr_start and wr_complete (extended API); the SGEs
  // and inline payloads are kept by index and linked at wr_complete.
  struct Pending {
    drv::SendWr wr;
    size_t sge_first = 0, sge_count = 0;
    bool inline_data = false;
  };
  std::vector<Pending> pending;
  std::vector<drv::Sge> pending_sges;
  std::vector<std::unique_ptr<uint8_t[]>> pending_inline;  // copies of the inline payloads
  int pending_err = 0;
};

// An open device: the verbs context, the driver over the process's ClientDevice, the objects by
// number for the event thread, and the event thread itself.
struct Context {
  verbs_context vctx;  // first; its last member is the ibv_context the application holds
  Device* device = nullptr;
  std::unique_ptr<vdev::ClientDevice> client;
  std::unique_ptr<drv::Driver> drv;
  // Around the driver (one per context, as the brief asks). Recursive: an application may post
  // between ibv_start_poll and ibv_end_poll, which keep it held.
  std::recursive_mutex mu;
  // The objects by device number, for the event thread (under obj_mu).
  std::mutex obj_mu;
  std::unordered_map<uint32_t, Cq*> cqs;
  std::unordered_map<uint32_t, Qp*> qps;
  std::unordered_map<uint32_t, Srq*> srqs;
  // Async events not yet taken by ibv_get_async_event; async_fd counts them.
  std::deque<ibv_async_event> async_q;
  std::thread events;
  int stop_fd = -1;  // eventfd that stops the event thread
  bool debug = false;
};

inline Context* ctx_of(ibv_context* c) {
  return reinterpret_cast<Context*>(reinterpret_cast<uint8_t*>(c) -
                                    offsetof(verbs_context, context));
}
inline Cq* cq_of(ibv_cq* c) { return reinterpret_cast<Cq*>(c); }
inline Cq* cq_of(ibv_cq_ex* c) { return reinterpret_cast<Cq*>(c); }
inline Qp* qp_of(ibv_qp* q) { return reinterpret_cast<Qp*>(q); }
inline Qp* qp_of(ibv_qp_ex* q) { return reinterpret_cast<Qp*>(q); }

// Prints a line on stderr under RNICSIM_DEBUG (with the driver's last error when err != 0).
void debug(Context* c, const char* verb, int err);
bool debug_enabled();
// Under RNICSIM_DEBUG=2, a stderr line for each object created or destroyed.
void trace(const char* verb, uint32_t num);

// The extended API (extended.cpp): the verbs_context ops and the per-object tables.
int query_device_ex(ibv_context* context, const ibv_query_device_ex_input* input,
                    ibv_device_attr_ex* attr, size_t attr_size);
ibv_cq_ex* create_cq_ex(ibv_context* context, ibv_cq_init_attr_ex* attr);
ibv_qp* create_qp_ex(ibv_context* context, ibv_qp_init_attr_ex* attr);
ibv_srq* create_srq_ex(ibv_context* context, ibv_srq_init_attr_ex* attr);
void set_qp_ex_ops(Qp* q);
void set_cq_ex_ops(Cq* c);

// Shared between the core and the extended API (verbs.cpp).
ibv_cq* make_cq(ibv_context* context, int cqe, void* cq_context, ibv_comp_channel* channel);
ibv_srq* make_srq(ibv_pd* pd, void* srq_context, ibv_srq_attr* attr);
ibv_qp* make_qp(ibv_pd* pd, const ibv_qp_init_attr& attr, bool with_ex);
// The capabilities a QP was given (what ibv_create_qp writes back into the caller's attributes).
void granted_caps(ibv_qp* qp, ibv_qp_cap* cap);
void fill_wc(const drv::Wc& w, ibv_wc* out);
// Converts one of the application's SGE lists (ibv_sge and drv::Sge share their layout).
inline const drv::Sge* sges(const ibv_sge* s) { return reinterpret_cast<const drv::Sge*>(s); }

}  // namespace rn::verbs
