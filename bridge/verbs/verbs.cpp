// Our libibverbs.so.1: the verbs of rdma-core's public verbs.h, each carried out by the project's
// driver (drv::Driver) over the process's ClientDevice, which reaches one simulated host's NIC in
// `rnicsim serve`. Device discovery, contexts, the event thread, PDs, MRs, CQs, QPs, SRQs, AHs,
// the fast-path ops and the small helpers; the extended API is in extended.cpp, the verbs not
// modelled in unsupported.cpp. README.md says what is modelled and what not.
#include <arpa/inet.h>
#include <fcntl.h>
#include <infiniband/sa.h>
#include <poll.h>
#include <rdma/ib_user_sa.h>
#include <rdma/ib_user_verbs.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "bridge/verbs/verbs_internal.h"

// verbs.h makes these macros (to its inline wrappers); the exported functions are defined here.
#undef ibv_query_port
#undef ibv_reg_mr
#undef ibv_reg_mr_iova

namespace rn::verbs {

// How long the driver waits for one command through serve (wall time).
constexpr uint64_t kCmdTimeoutNs = 30'000'000'000ull;

bool debug_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("RNICSIM_DEBUG");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return on;
}

bool trace_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("RNICSIM_DEBUG");
    return v && std::strcmp(v, "2") == 0;
  }();
  return on;
}

void trace(const char* verb, uint32_t num) {
  if (trace_enabled()) std::fprintf(stderr, "rnicsim verbs: %s %u\n", verb, num);
}

void debug(Context* c, const char* verb, int err) {
  if (!debug_enabled()) return;
  if (err && c && c->drv && !c->drv->last_error().empty())
    std::fprintf(stderr, "rnicsim verbs: %s: %s (%s)\n", verb, std::strerror(err),
                 c->drv->last_error().c_str());
  else if (err)
    std::fprintf(stderr, "rnicsim verbs: %s: %s\n", verb, std::strerror(err));
  else
    std::fprintf(stderr, "rnicsim verbs: %s\n", verb);
}

namespace {

// ---- Devices ----

std::mutex g_mu;                                 // the device registry
std::vector<std::unique_ptr<Device>> g_devices;  // every device ever listed (never freed)

// The device of host h: the one listed before under that name, or a new one.
Device* device_for(const vdev::HostInfo& h) {
  for (auto& d : g_devices)
    if (d->host.name == h.name) {
      d->host = h;
      return d.get();
    }
  auto d = std::make_unique<Device>();
  std::memset(&d->dev, 0, sizeof d->dev);
  d->host = h;
  d->index = static_cast<int>(g_devices.size());
  d->dev.node_type = IBV_NODE_CA;
  d->dev.transport_type = IBV_TRANSPORT_IB;
  std::snprintf(d->dev.name, sizeof d->dev.name, "rnsim_%s", h.name.c_str());
  std::snprintf(d->dev.dev_name, sizeof d->dev.dev_name, "uverbs%d", d->index);
  std::snprintf(d->dev.dev_path, sizeof d->dev.dev_path, "/sys/class/infiniband_verbs/uverbs%d",
                d->index);
  std::snprintf(d->dev.ibdev_path, sizeof d->dev.ibdev_path, "/sys/class/infiniband/%s",
                d->dev.name);
  g_devices.push_back(std::move(d));
  return g_devices.back().get();
}

bool is_our_device(ibv_device* dev) {
  std::lock_guard<std::mutex> lk(g_mu);
  for (auto& d : g_devices)
    if (&d->dev == dev) return true;
  return false;
}

// The node GUID: the EUI-64 of the port's MAC, in network order.
__be64 guid_of(const vdev::HostInfo& h) {
  uint8_t g[8] = {static_cast<uint8_t>(h.mac[0] ^ 2),
                  h.mac[1],
                  h.mac[2],
                  0xff,
                  0xfe,
                  h.mac[3],
                  h.mac[4],
                  h.mac[5]};
  __be64 v;
  std::memcpy(&v, g, 8);
  return v;
}

// GID index 0: the IPv4-mapped address of the host (RoCEv2).
void gid_of(uint32_t ipv4, ibv_gid* gid) {
  std::memset(gid, 0, sizeof *gid);
  gid->raw[10] = gid->raw[11] = 0xff;
  const uint32_t be = htonl(ipv4);
  std::memcpy(&gid->raw[12], &be, 4);
}

// The IPv4 address (host order) of an IPv4-mapped GID; false for any other GID.
bool ipv4_of(const ibv_gid& gid, uint32_t* ipv4) {
  for (int i = 0; i < 10; ++i)
    if (gid.raw[i]) return false;
  if (gid.raw[10] != 0xff || gid.raw[11] != 0xff) return false;
  uint32_t be;
  std::memcpy(&be, &gid.raw[12], 4);
  *ipv4 = ntohl(be);
  return true;
}

std::string ipv4_str(uint32_t ip) {
  char b[32];
  std::snprintf(b, sizeof b, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff,
                ip & 0xff);
  return b;
}

// The neighbour table: the MAC of the simulated host with address ipv4, from serve's host list.
bool mac_of(uint32_t ipv4, uint8_t mac[6]) {
  std::string err;
  std::vector<vdev::HostInfo> hosts;
  try {
    hosts = vdev::serve_hosts(vdev::serve_dir(), &err);
  } catch (...) {
    return false;
  }
  for (const auto& h : hosts)
    if (h.ipv4 == ipv4) {
      std::memcpy(mac, h.mac, 6);
      return true;
    }
  return false;
}

// An address (ibv_ah_attr) as the driver takes it: RoCEv2 needs the GRH, whose destination GID
// is the IPv4-mapped address of a simulated host.
int resolve_av(Context* c, const ibv_ah_attr& ah, drv::AddressVector* av) {
  if (!ah.is_global) {
    if (debug_enabled())
      std::fprintf(stderr,
                   "rnicsim verbs: address without a GRH (is_global 0): RoCE needs the "
                   "destination GID (use a GID index, e.g. -g 0 / -x 0)\n");
    return EINVAL;
  }
  uint32_t ip = 0;
  if (!ipv4_of(ah.grh.dgid, &ip)) {
    if (debug_enabled())
      std::fprintf(stderr,
                   "rnicsim verbs: destination GID is not an IPv4-mapped address "
                   "(::ffff:a.b.c.d): only RoCEv2 over IPv4 is modelled\n");
    return EINVAL;
  }
  if (!mac_of(ip, av->dest_mac)) {
    if (debug_enabled())
      std::fprintf(stderr,
                   "rnicsim verbs: no simulated host has address %s (serve's hosts in %s)\n",
                   ipv4_str(ip).c_str(), vdev::serve_dir().c_str());
    return EINVAL;
  }
  (void)c;
  av->dest_ipv4 = ip;
  av->traffic_class = ah.grh.traffic_class;
  av->hop_limit = ah.grh.hop_limit ? ah.grh.hop_limit : 64;
  return 0;
}

// Runs f, turning an exception from below (an unmapped address, a lost serve) into err.
template <typename F>
int guarded(Context* c, const char* verb, F&& f) {
  int e;
  try {
    e = f();
  } catch (const std::exception& ex) {
    if (debug_enabled()) std::fprintf(stderr, "rnicsim verbs: %s: %s\n", verb, ex.what());
    e = EFAULT;
  } catch (...) {
    e = EIO;
  }
  if (e) debug(c, verb, e);
  return e;
}

// True once serve has gone: destroying an object then frees what the library holds and succeeds
// (the device side went with serve), so that programs can clean up after IBV_EVENT_DEVICE_FATAL.
bool gone(Context* c) { return c->client && !c->client->connected(); }

// A driver destroy under the context's lock: 0 if it succeeded or serve has gone (what it held
// went with it), else the driver's error.
template <typename F>
int destroy_in_driver(Context* c, const char* verb, F&& f) {
  std::lock_guard<std::recursive_mutex> lk(c->mu);
  const int e = guarded(c, verb, std::forward<F>(f));
  return e && !gone(c) ? e : 0;
}

// Reads one count from an eventfd in semaphore mode (blocking unless O_NONBLOCK is set).
int take_count(int fd) {
  uint64_t v;
  for (;;) {
    ssize_t r = ::read(fd, &v, sizeof v);
    if (r == sizeof v) return 0;
    if (r < 0 && errno == EINTR) continue;
    return -1;
  }
}
// Takes back the count of an event removed from its queue (its object is going): the count is
// there, but another thread's read may race for it, so only if the fd is readable now.
void drop_count(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
    uint64_t v;
    ssize_t r = ::read(fd, &v, sizeof v);
    (void)r;
  }
}
void give_count(int fd) {
  uint64_t one = 1;
  ssize_t r;
  do {
    r = ::write(fd, &one, sizeof one);
  } while (r < 0 && errno == EINTR);
}

// ---- Events ----

// Hands one event from the device to its object: a completion to its CQ's channel, anything
// else to the context's async queue.
void dispatch(Context* c, const dev::Eqe& e) {
  std::lock_guard<std::mutex> lk(c->obj_mu);
  const auto type = static_cast<dev::EqeType>(e.type);
  if (type == dev::EqeType::COMPLETION) {
    auto it = c->cqs.find(e.obj);
    if (it == c->cqs.end() || !it->second->channel) return;
    Channel* ch = it->second->channel;
    {
      std::lock_guard<std::mutex> chl(ch->mu);
      ch->ready.push_back(it->second);
    }
    give_count(ch->ch.fd);
    return;
  }
  ibv_async_event ev{};
  switch (type) {
    case dev::EqeType::CQ_ERROR: {
      auto it = c->cqs.find(e.obj);
      if (it == c->cqs.end()) return;
      ev.event_type = IBV_EVENT_CQ_ERR;
      ev.element.cq = reinterpret_cast<ibv_cq*>(it->second);
      break;
    }
    case dev::EqeType::QP_FATAL:
    case dev::EqeType::SQ_DRAINED:
    case dev::EqeType::QP_LAST_WQE_REACHED: {
      auto it = c->qps.find(e.obj);
      if (it == c->qps.end()) return;
      ev.event_type = type == dev::EqeType::QP_FATAL     ? IBV_EVENT_QP_FATAL
                      : type == dev::EqeType::SQ_DRAINED ? IBV_EVENT_SQ_DRAINED
                                                         : IBV_EVENT_QP_LAST_WQE_REACHED;
      ev.element.qp = &it->second->ex.qp_base;
      break;
    }
    case dev::EqeType::SRQ_LIMIT_REACHED: {
      auto it = c->srqs.find(e.obj);
      if (it == c->srqs.end()) return;
      ev.event_type = IBV_EVENT_SRQ_LIMIT_REACHED;
      ev.element.srq = &it->second->srq;
      break;
    }
    default:
      if (debug_enabled())
        std::fprintf(stderr, "rnicsim verbs: event type %u (object %u) ignored\n", e.type, e.obj);
      return;
  }
  c->async_q.push_back(ev);
  give_count(c->vctx.context.async_fd);
}

// The context's event thread: waits on ClientDevice's event connection and dispatches what
// arrives, until the context closes (stop_fd) or serve goes (then IBV_EVENT_DEVICE_FATAL).
void event_loop(Context* c) {
  pollfd p[2] = {{c->client->event_fd(), POLLIN, 0}, {c->stop_fd, POLLIN, 0}};
  for (;;) {
    // Without an event connection to wait on, look for events every 10 ms.
    int r = ::poll(p, 2, p[0].fd < 0 ? 10 : -1);
    if (r < 0 && errno != EINTR) break;
    if (p[1].revents) return;
    bool any = false;
    dev::Eqe e;
    try {
      while (c->client->next_event(&e, 0)) {
        any = true;
        dispatch(c, e);
      }
    } catch (...) {
      break;
    }
    if (!any && ((p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) || !c->client->connected())) break;
  }
  // serve is gone: every object of the context is lost.
  if (debug_enabled()) std::fprintf(stderr, "rnicsim verbs: the connection to serve is lost\n");
  {
    std::lock_guard<std::mutex> lk(c->obj_mu);
    ibv_async_event ev{};
    ev.event_type = IBV_EVENT_DEVICE_FATAL;
    c->async_q.push_back(ev);
    give_count(c->vctx.context.async_fd);
  }
  // Wait for the stop signal, so that close_device's join returns.
  pollfd s{c->stop_fd, POLLIN, 0};
  while (::poll(&s, 1, -1) < 0 && errno == EINTR) {
  }
}

// Removes the async events naming obj not yet taken (the object is going), with their counts.
template <typename Match>
void purge_async(Context* c, Match&& match) {
  auto& q = c->async_q;
  for (auto it = q.begin(); it != q.end();) {
    if (match(*it)) {
      it = q.erase(it);
      drop_count(c->vctx.context.async_fd);
    } else {
      ++it;
    }
  }
}

// Waits until count events of an object have been acknowledged (its mutex and cond).
void wait_acks(pthread_mutex_t* mu, pthread_cond_t* cond, const uint32_t* acked,
               const uint32_t* delivered) {
  pthread_mutex_lock(mu);
  while (*acked != *delivered) pthread_cond_wait(cond, mu);
  pthread_mutex_unlock(mu);
}

// ---- Fast path (context->ops) ----

int op_poll_cq(ibv_cq* cq, int n, ibv_wc* wc) {
  if (!cq || n < 0 || (n && !wc)) return -1;
  Cq* c = cq_of(cq);
  std::lock_guard<std::recursive_mutex> lk(c->ctx->mu);
  int total = 0;
  try {
    drv::Wc buf[16];
    while (total < n) {
      const int want = std::min(16, n - total);
      const int got = c->ctx->drv->poll_cq(c->cq, want, buf);
      for (int i = 0; i < got; ++i) fill_wc(buf[i], &wc[total + i]);
      total += got;
      if (got < want) break;
    }
  } catch (...) {
    return total ? total : -1;
  }
  return total;
}

int op_req_notify_cq(ibv_cq* cq, int solicited_only) {
  if (!cq) return EINVAL;
  Cq* c = cq_of(cq);
  std::lock_guard<std::recursive_mutex> lk(c->ctx->mu);
  return guarded(c->ctx, "ibv_req_notify_cq",
                 [&] { return c->ctx->drv->req_notify_cq(c->cq, solicited_only != 0); });
}

// The driver's send WR for one of the application's; false if the opcode is not modelled.
bool convert_send(const ibv_send_wr& w, drv::SendWr* s) {
  *s = drv::SendWr{};
  s->wr_id = w.wr_id;
  s->sg_list = sges(w.sg_list);
  s->num_sge = w.num_sge;
  s->send_flags =
      w.send_flags & (IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED | IBV_SEND_INLINE);
  switch (w.opcode) {
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_WRITE_WITH_IMM:
    case IBV_WR_RDMA_READ:
      s->remote_addr = w.wr.rdma.remote_addr;
      s->rkey = w.wr.rdma.rkey;
      break;
    case IBV_WR_SEND:
    case IBV_WR_SEND_WITH_IMM:
      break;
    case IBV_WR_ATOMIC_CMP_AND_SWP:
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      s->remote_addr = w.wr.atomic.remote_addr;
      s->rkey = w.wr.atomic.rkey;
      s->compare_add = w.wr.atomic.compare_add;
      s->swap = w.wr.atomic.swap;
      break;
    default:
      return false;  // LOCAL_INV, BIND_MW, SEND_WITH_INV, TSO, ATOMIC_WRITE, DRIVER1
  }
  s->opcode = static_cast<dev::WrOpcode>(w.opcode);  // the values are ibv_wr_opcode's
  if (w.opcode == IBV_WR_RDMA_WRITE_WITH_IMM || w.opcode == IBV_WR_SEND_WITH_IMM)
    s->imm_data = ntohl(w.imm_data);
  return true;
}

int op_post_send(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad_wr) {
  if (!qp) return EINVAL;
  Qp* q = qp_of(qp);
  thread_local std::vector<drv::SendWr> ws;
  thread_local std::vector<ibv_send_wr*> orig;
  ws.clear();
  orig.clear();
  ibv_send_wr* refused = nullptr;
  for (ibv_send_wr* w = wr; w; w = w->next) {
    drv::SendWr s;
    if (!convert_send(w[0], &s)) {
      refused = w;
      break;
    }
    if (q->qp->type == dev::QpType::UD) {
      s.ah = w->wr.ud.ah ? reinterpret_cast<Ah*>(w->wr.ud.ah)->a : nullptr;
      s.remote_qpn = w->wr.ud.remote_qpn;
      s.remote_qkey = w->wr.ud.remote_qkey;
    }
    ws.push_back(s);
    orig.push_back(w);
  }
  for (size_t i = 0; i + 1 < ws.size(); ++i) ws[i].next = &ws[i + 1];
  int e = 0;
  if (!ws.empty()) {
    std::lock_guard<std::recursive_mutex> lk(q->ctx->mu);
    const drv::SendWr* bad = nullptr;
    e = guarded(q->ctx, "ibv_post_send",
                [&] { return q->ctx->drv->post_send(q->qp, ws.data(), &bad); });
    if (e) {
      if (bad_wr) *bad_wr = bad ? orig[static_cast<size_t>(bad - ws.data())] : wr;
      return e;
    }
  }
  if (refused) {
    if (debug_enabled())
      std::fprintf(stderr, "rnicsim verbs: ibv_post_send: opcode %d is not modelled\n",
                   refused->opcode);
    if (bad_wr) *bad_wr = refused;
    return EINVAL;
  }
  return 0;
}

// Converts a receive WR list; returns the number converted.
void convert_recv(ibv_recv_wr* wr, std::vector<drv::RecvWr>* ws, std::vector<ibv_recv_wr*>* orig) {
  ws->clear();
  orig->clear();
  for (ibv_recv_wr* w = wr; w; w = w->next) {
    drv::RecvWr r;
    r.wr_id = w->wr_id;
    r.sg_list = sges(w->sg_list);
    r.num_sge = w->num_sge;
    ws->push_back(r);
    orig->push_back(w);
  }
  for (size_t i = 0; i + 1 < ws->size(); ++i) (*ws)[i].next = &(*ws)[i + 1];
}

int op_post_recv(ibv_qp* qp, ibv_recv_wr* wr, ibv_recv_wr** bad_wr) {
  if (!qp) return EINVAL;
  Qp* q = qp_of(qp);
  thread_local std::vector<drv::RecvWr> ws;
  thread_local std::vector<ibv_recv_wr*> orig;
  convert_recv(wr, &ws, &orig);
  if (ws.empty()) return 0;
  std::lock_guard<std::recursive_mutex> lk(q->ctx->mu);
  const drv::RecvWr* bad = nullptr;
  int e = guarded(q->ctx, "ibv_post_recv",
                  [&] { return q->ctx->drv->post_recv(q->qp, ws.data(), &bad); });
  if (e && bad_wr) *bad_wr = bad ? orig[static_cast<size_t>(bad - ws.data())] : wr;
  return e;
}

int op_post_srq_recv(ibv_srq* srq, ibv_recv_wr* wr, ibv_recv_wr** bad_wr) {
  if (!srq) return EINVAL;
  Srq* s = reinterpret_cast<Srq*>(srq);
  thread_local std::vector<drv::RecvWr> ws;
  thread_local std::vector<ibv_recv_wr*> orig;
  convert_recv(wr, &ws, &orig);
  if (ws.empty()) return 0;
  std::lock_guard<std::recursive_mutex> lk(s->ctx->mu);
  const drv::RecvWr* bad = nullptr;
  int e = guarded(s->ctx, "ibv_post_srq_recv",
                  [&] { return s->ctx->drv->post_srq_recv(s->s, ws.data(), &bad); });
  if (e && bad_wr) *bad_wr = bad ? orig[static_cast<size_t>(bad - ws.data())] : wr;
  return e;
}

// ---- Port and device attributes ----

// The active width and speed codes of ibv_port_attr for a link of mbps: the lane count and lane
// rate whose product it is (or the nearest below).
void width_speed(uint32_t mbps, uint8_t* width, uint8_t* speed) {
  struct Lane {
    uint32_t mbps;
    uint8_t code;
  };
  static const Lane lanes[] = {{2500, 1},   {5000, 2},   {10000, 4},   {14000, 16},
                               {25000, 32}, {50000, 64}, {100000, 128}};
  static const struct {
    uint32_t n;
    uint8_t code;
  } widths[] = {{4, 2}, {1, 1}, {8, 4}, {12, 8}};  // 4X first: 100 Gb/s is 4X EDR, as mlx5 says
  uint64_t best = 0;
  *width = 1;
  *speed = 1;
  for (const auto& w : widths)
    for (const auto& l : lanes) {
      const uint64_t total = uint64_t(w.n) * l.mbps;
      if (total <= mbps && total > best) {
        best = total;
        *width = w.code;
        *speed = l.code;
      }
    }
}

int fill_port(Context* c, uint8_t port, ibv_port_attr* out) {
  if (port != 1) return EINVAL;
  drv::PortAttr p{};
  std::lock_guard<std::recursive_mutex> lk(c->mu);
  if (int e = guarded(c, "ibv_query_port", [&] { return c->drv->query_port(port, &p); })) return e;
  std::memset(out, 0, sizeof *out);
  out->state = static_cast<ibv_port_state>(p.state);
  out->max_mtu = static_cast<ibv_mtu>(p.max_mtu);
  out->active_mtu = static_cast<ibv_mtu>(p.active_mtu);
  out->gid_tbl_len = 1;
  out->port_cap_flags = 0;
  out->max_msg_sz = 1u << 31;
  out->pkey_tbl_len = 1;
  out->max_vl_num = 1;
  width_speed(p.speed_mbps, &out->active_width, &out->active_speed);
  out->phys_state = p.state == IBV_PORT_ACTIVE ? 5 : 3;  // LinkUp, or Disabled
  out->link_layer = p.link_layer;
  return 0;
}

int op_query_port(ibv_context* context, uint8_t port, ibv_port_attr* attr, size_t len) {
  if (!context || !attr) return EINVAL;
  ibv_port_attr a;
  if (int e = fill_port(ctx_of(context), port, &a)) return e;
  std::memcpy(attr, &a, std::min(len, sizeof a));
  return 0;
}

}  // namespace

void fill_wc(const drv::Wc& w, ibv_wc* out) {
  std::memset(out, 0, sizeof *out);
  out->wr_id = w.wr_id;
  out->status = static_cast<ibv_wc_status>(w.status);  // the values are ibv_wc_status's
  out->opcode = static_cast<ibv_wc_opcode>(w.opcode);  // and ibv_wc_opcode's
  out->vendor_err = w.vendor_err;
  out->byte_len = w.byte_len;
  out->imm_data = htonl(w.imm_data);
  out->qp_num = w.qp_num;
  out->src_qp = w.src_qp;
  out->wc_flags = w.wc_flags;  // GRH and WITH_IMM, as ibv_wc_flags
}

// ---- CQ and QP creation (shared with the extended API) ----

ibv_cq* make_cq(ibv_context* context, int cqe, void* cq_context, ibv_comp_channel* channel) {
  if (!context || cqe < 1 || (channel && channel->context != context)) {
    errno = EINVAL;
    return nullptr;
  }
  Context* c = ctx_of(context);
  drv::Cq* dc = nullptr;
  {
    std::lock_guard<std::recursive_mutex> lk(c->mu);
    if (int e = guarded(c, "ibv_create_cq", [&] { return c->drv->create_cq(cqe, &dc); })) {
      errno = e;
      return nullptr;
    }
  }
  Cq* q = new Cq();
  q->ctx = c;
  q->cq = dc;
  q->channel = reinterpret_cast<Channel*>(channel);
  ibv_cq_ex& x = q->ex;
  x.context = context;
  x.channel = channel;
  x.cq_context = cq_context;
  x.handle = dc->cqn;
  x.cqe = static_cast<int>(dc->size);
  pthread_mutex_init(&x.mutex, nullptr);
  pthread_cond_init(&x.cond, nullptr);
  if (channel) {
    std::lock_guard<std::mutex> chl(q->channel->mu);
    ++channel->refcnt;
  }
  std::lock_guard<std::mutex> ol(c->obj_mu);
  c->cqs[dc->cqn] = q;
  trace("create_cq", dc->cqn);
  return reinterpret_cast<ibv_cq*>(q);
}

void granted_caps(ibv_qp* qp, ibv_qp_cap* cap) {
  const drv::Qp* d = qp_of(qp)->qp;
  cap->max_send_wr = d->sq_size;
  cap->max_recv_wr = d->srq ? 0 : d->rq_size;
  cap->max_send_sge = d->max_send_sge;
  cap->max_recv_sge = d->srq ? 0 : d->max_recv_sge;
  cap->max_inline_data = d->max_inline_data;
}

ibv_qp* make_qp(ibv_pd* pd, const ibv_qp_init_attr& attr, bool with_ex) {
  if (!pd || !attr.send_cq || !attr.recv_cq) {
    errno = EINVAL;
    return nullptr;
  }
  if (attr.qp_type != IBV_QPT_RC && attr.qp_type != IBV_QPT_UC && attr.qp_type != IBV_QPT_UD) {
    if (debug_enabled())
      std::fprintf(stderr, "rnicsim verbs: ibv_create_qp: QP type %d (RC, UC and UD only)\n",
                   attr.qp_type);
    errno = EOPNOTSUPP;
    return nullptr;
  }
  Context* c = ctx_of(pd->context);
  drv::QpCap cap;
  cap.max_send_wr = std::max<uint32_t>(1, attr.cap.max_send_wr);
  cap.max_recv_wr = std::max<uint32_t>(1, attr.cap.max_recv_wr);
  cap.max_send_sge = attr.cap.max_send_sge;
  cap.max_recv_sge = attr.cap.max_recv_sge;
  cap.max_inline_data = attr.cap.max_inline_data;
  cap.qp_type = static_cast<dev::QpType>(attr.qp_type);  // the values are ibv_qp_type's
  cap.srq = attr.srq ? reinterpret_cast<Srq*>(attr.srq)->s : nullptr;
  drv::Qp* dq = nullptr;
  {
    std::lock_guard<std::recursive_mutex> lk(c->mu);
    if (int e = guarded(c, "ibv_create_qp", [&] {
          return c->drv->create_qp(reinterpret_cast<Pd*>(pd)->pdn, cq_of(attr.send_cq)->cq,
                                   cq_of(attr.recv_cq)->cq, cap, attr.sq_sig_all != 0, &dq);
        })) {
      errno = e;
      return nullptr;
    }
  }
  Qp* q = new Qp();
  q->ctx = c;
  q->qp = dq;
  q->has_ex = with_ex;
  ibv_qp& b = q->ex.qp_base;
  b.context = pd->context;
  b.qp_context = attr.qp_context;
  b.pd = pd;
  b.send_cq = attr.send_cq;
  b.recv_cq = attr.recv_cq;
  b.srq = attr.srq;
  b.handle = dq->qpn;
  b.qp_num = dq->qpn;
  b.state = IBV_QPS_RESET;
  b.qp_type = attr.qp_type;
  pthread_mutex_init(&b.mutex, nullptr);
  pthread_cond_init(&b.cond, nullptr);
  if (with_ex) set_qp_ex_ops(q);
  std::lock_guard<std::mutex> ol(c->obj_mu);
  c->qps[dq->qpn] = q;
  trace("create_qp", dq->qpn);
  return &b;
}

}  // namespace rn::verbs

using namespace rn;
using namespace rn::verbs;

// ================================ Devices and contexts ================================

RN_EXPORT ibv_device** ibv_get_device_list(int* num_devices) {
  std::string err;
  std::vector<vdev::HostInfo> hosts;
  const std::string dir = vdev::serve_dir();
  try {
    hosts = vdev::serve_hosts(dir, &err);
  } catch (const std::exception& e) {
    err = e.what();
  }
  const char* want = std::getenv("RNICSIM_HOST");
  if (want && *want) {
    std::vector<vdev::HostInfo> keep;
    for (auto& h : hosts)
      if (h.name == want) keep.push_back(h);
    if (keep.empty() && !hosts.empty()) err = std::string("no host named ") + want + " in " + dir;
    hosts = std::move(keep);
  }
  static std::once_flag warned;
  if (hosts.empty())
    std::call_once(warned, [&] {
      std::fprintf(stderr, "rnicsim libibverbs: no simulated NIC: %s\n",
                   err.empty() ? ("the serve in " + dir + " lists no hosts").c_str() : err.c_str());
    });
  auto** list = static_cast<ibv_device**>(std::calloc(hosts.size() + 1, sizeof(ibv_device*)));
  if (!list) {
    errno = ENOMEM;
    return nullptr;
  }
  std::lock_guard<std::mutex> lk(g_mu);
  for (size_t i = 0; i < hosts.size(); ++i) list[i] = &device_for(hosts[i])->dev;
  if (num_devices) *num_devices = static_cast<int>(hosts.size());
  return list;
}

RN_EXPORT void ibv_free_device_list(ibv_device** list) { std::free(list); }

RN_EXPORT const char* ibv_get_device_name(ibv_device* device) {
  if (!device) {
    errno = EINVAL;
    return nullptr;
  }
  return device->name;
}

RN_EXPORT int ibv_get_device_index(ibv_device* device) {
  if (!device || !is_our_device(device)) return -1;
  return reinterpret_cast<Device*>(device)->index;
}

RN_EXPORT __be64 ibv_get_device_guid(ibv_device* device) {
  if (!device || !is_our_device(device)) return 0;
  return guid_of(reinterpret_cast<Device*>(device)->host);
}

RN_EXPORT ibv_context* ibv_open_device(ibv_device* device) {
  if (!device || !is_our_device(device)) {
    errno = EINVAL;
    return nullptr;
  }
  Device* d = reinterpret_cast<Device*>(device);
  auto c = std::make_unique<Context>();
  std::memset(&c->vctx, 0, sizeof c->vctx);
  c->device = d;
  c->debug = debug_enabled();
  std::string err;
  try {
    c->client = vdev::ClientDevice::attach(d->host, &err);
  } catch (const std::exception& e) {
    err = e.what();
  }
  if (!c->client) {
    std::fprintf(stderr, "rnicsim libibverbs: cannot attach to %s's NIC: %s\n",
                 d->host.name.c_str(), err.c_str());
    errno = ENODEV;
    return nullptr;
  }
  c->drv = std::make_unique<drv::Driver>(*c->client, kCmdTimeoutNs, drv::DriverOptions{},
                                         /*kernel=*/c->client.get());
  if (int e = guarded(c.get(), "ibv_open_device", [&] { return c->drv->open(); })) {
    std::fprintf(stderr, "rnicsim libibverbs: %s: the driver did not open: %s\n", device->name,
                 c->drv->last_error().c_str());
    errno = e;
    return nullptr;
  }
  ibv_context& ic = c->vctx.context;
  ic.device = device;
  ic.ops.poll_cq = op_poll_cq;
  ic.ops.req_notify_cq = op_req_notify_cq;
  ic.ops.post_send = op_post_send;
  ic.ops.post_recv = op_post_recv;
  ic.ops.post_srq_recv = op_post_srq_recv;
  // No kernel device: commands go through ClientDevice. cmd_fd is still a real descriptor (an
  // idle eventfd), since programs dup it to share the context (ibv_import_device then fails).
  ic.cmd_fd = ::eventfd(0, EFD_CLOEXEC);
  ic.async_fd = ::eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE);
  ic.num_comp_vectors = 1;
  pthread_mutex_init(&ic.mutex, nullptr);
  ic.abi_compat = __VERBS_ABI_IS_EXTENDED;
  c->vctx.sz = sizeof(verbs_context);
  c->vctx.query_port = op_query_port;
  c->vctx.query_device_ex = query_device_ex;
  c->vctx.create_cq_ex = create_cq_ex;
  c->vctx.create_qp_ex = create_qp_ex;
  c->vctx.create_srq_ex = create_srq_ex;
  c->stop_fd = ::eventfd(0, EFD_CLOEXEC);
  if (ic.async_fd < 0 || c->stop_fd < 0 || ic.cmd_fd < 0) {
    for (int fd : {ic.async_fd, c->stop_fd, ic.cmd_fd})
      if (fd >= 0) ::close(fd);
    errno = EMFILE;
    return nullptr;
  }
  Context* raw = c.get();
  try {
    raw->events = std::thread(event_loop, raw);
  } catch (...) {
    ::close(ic.async_fd);
    ::close(c->stop_fd);
    ::close(ic.cmd_fd);
    errno = EAGAIN;
    return nullptr;
  }
  c.release();
  return &raw->vctx.context;
}

RN_EXPORT int ibv_close_device(ibv_context* context) {
  if (!context) return EINVAL;
  Context* c = ctx_of(context);
  give_count(c->stop_fd);
  if (c->events.joinable()) c->events.join();
  // What the process leaves (objects not destroyed) serve destroys when the client detaches.
  c->drv.reset();
  c->client.reset();
  for (auto& kv : c->cqs) delete kv.second;
  for (auto& kv : c->qps) delete kv.second;
  for (auto& kv : c->srqs) delete kv.second;
  ::close(context->async_fd);
  ::close(context->cmd_fd);
  ::close(c->stop_fd);
  pthread_mutex_destroy(&context->mutex);
  delete c;
  return 0;
}

// ================================ Async events ================================

RN_EXPORT int ibv_get_async_event(ibv_context* context, ibv_async_event* event) {
  if (!context || !event) {
    errno = EINVAL;
    return -1;
  }
  Context* c = ctx_of(context);
  for (;;) {
    if (take_count(context->async_fd)) return -1;  // errno from read (EAGAIN if non-blocking)
    std::lock_guard<std::mutex> lk(c->obj_mu);
    if (c->async_q.empty()) continue;
    *event = c->async_q.front();
    c->async_q.pop_front();
    switch (event->event_type) {
      case IBV_EVENT_CQ_ERR:
        ++cq_of(event->element.cq)->async_events;
        break;
      case IBV_EVENT_QP_FATAL:
      case IBV_EVENT_SQ_DRAINED:
      case IBV_EVENT_QP_LAST_WQE_REACHED:
        ++qp_of(event->element.qp)->async_events;
        break;
      case IBV_EVENT_SRQ_LIMIT_REACHED:
        ++reinterpret_cast<Srq*>(event->element.srq)->async_events;
        break;
      default:
        break;
    }
    return 0;
  }
}

RN_EXPORT void ibv_ack_async_event(ibv_async_event* event) {
  if (!event) return;
  pthread_mutex_t* mu = nullptr;
  pthread_cond_t* cond = nullptr;
  uint32_t* n = nullptr;
  switch (event->event_type) {
    case IBV_EVENT_CQ_ERR: {
      ibv_cq* cq = event->element.cq;
      mu = &cq->mutex, cond = &cq->cond, n = &cq->async_events_completed;
      break;
    }
    case IBV_EVENT_QP_FATAL:
    case IBV_EVENT_SQ_DRAINED:
    case IBV_EVENT_QP_LAST_WQE_REACHED:
    case IBV_EVENT_QP_REQ_ERR:
    case IBV_EVENT_QP_ACCESS_ERR:
    case IBV_EVENT_COMM_EST:
    case IBV_EVENT_PATH_MIG:
    case IBV_EVENT_PATH_MIG_ERR: {
      ibv_qp* qp = event->element.qp;
      mu = &qp->mutex, cond = &qp->cond, n = &qp->events_completed;
      break;
    }
    case IBV_EVENT_SRQ_ERR:
    case IBV_EVENT_SRQ_LIMIT_REACHED: {
      ibv_srq* srq = event->element.srq;
      mu = &srq->mutex, cond = &srq->cond, n = &srq->events_completed;
      break;
    }
    default:
      return;
  }
  pthread_mutex_lock(mu);
  ++*n;
  pthread_cond_signal(cond);
  pthread_mutex_unlock(mu);
}

// ================================ Attributes ================================

RN_EXPORT int ibv_query_device(ibv_context* context, ibv_device_attr* attr) {
  if (!context || !attr) return EINVAL;
  Context* c = ctx_of(context);
  drv::DeviceAttr d{};
  {
    std::lock_guard<std::recursive_mutex> lk(c->mu);
    if (int e = guarded(c, "ibv_query_device", [&] { return c->drv->query_device(&d); })) return e;
  }
  std::memset(attr, 0, sizeof *attr);
  std::snprintf(attr->fw_ver, sizeof attr->fw_ver, "%u.%u.%u", d.fw_version >> 16,
                (d.fw_version >> 8) & 0xff, d.fw_version & 0xff);
  attr->node_guid = guid_of(c->device->host);
  attr->sys_image_guid = attr->node_guid;
  attr->max_mr_size = d.max_mr_size;
  attr->page_size_cap = 4096;
  attr->vendor_id = d.vendor_id;
  attr->vendor_part_id = d.vendor_part_id;
  attr->max_qp = static_cast<int>(d.max_qp);
  attr->max_qp_wr = static_cast<int>(d.max_qp_wr);
  attr->device_cap_flags = IBV_DEVICE_RC_RNR_NAK_GEN;
  attr->max_sge = static_cast<int>(d.max_sge);
  attr->max_sge_rd = static_cast<int>(d.max_sge);
  attr->max_cq = static_cast<int>(d.max_cq);
  attr->max_cqe = static_cast<int>(d.max_cqe);
  attr->max_mr = static_cast<int>(d.max_mr);
  attr->max_pd = static_cast<int>(d.max_pd);
  attr->max_qp_rd_atom = 16;  // the model's limit on max_rd_atomic and max_dest_rd_atomic
  attr->max_qp_init_rd_atom = 16;
  attr->max_res_rd_atom = static_cast<int>(d.max_qp) * 16;
  attr->atomic_cap = IBV_ATOMIC_HCA;
  attr->max_srq = static_cast<int>(d.max_srq);
  attr->max_srq_wr = static_cast<int>(d.max_srq_wr);
  attr->max_srq_sge = static_cast<int>(d.max_srq_sge);
  attr->max_pkeys = 1;
  attr->local_ca_ack_delay = 16;
  attr->phys_port_cnt = 1;
  return 0;
}

// The exported query_port of old binaries (new ones reach op_query_port through verbs_context).
RN_EXPORT int ibv_query_port(ibv_context* context, uint8_t port_num,
                             struct _compat_ibv_port_attr* port_attr) {
  if (!context || !port_attr) return EINVAL;
  return fill_port(ctx_of(context), port_num, reinterpret_cast<ibv_port_attr*>(port_attr));
}

RN_EXPORT int ibv_query_gid(ibv_context* context, uint8_t port_num, int index, ibv_gid* gid) {
  if (!context || !gid || port_num != 1 || index != 0) {
    errno = EINVAL;
    return -1;
  }
  gid_of(ctx_of(context)->device->host.ipv4, gid);
  return 0;
}

RN_EXPORT int _ibv_query_gid_ex(ibv_context* context, uint32_t port_num, uint32_t gid_index,
                                ibv_gid_entry* entry, uint32_t flags, size_t entry_size) {
  if (!context || !entry || flags || port_num != 1) return EINVAL;
  if (gid_index != 0) return ENODATA;
  ibv_gid_entry g{};
  gid_of(ctx_of(context)->device->host.ipv4, &g.gid);
  g.gid_index = 0;
  g.port_num = 1;
  g.gid_type = IBV_GID_TYPE_ROCE_V2;
  g.ndev_ifindex = 0;
  std::memcpy(entry, &g, std::min(entry_size, sizeof g));
  return 0;
}

RN_EXPORT ssize_t _ibv_query_gid_table(ibv_context* context, ibv_gid_entry* entries,
                                       size_t max_entries, uint32_t flags, size_t entry_size) {
  if (!context || !entries || flags || entry_size < sizeof(ibv_gid_entry)) return -EINVAL;
  if (max_entries < 1) return -EINVAL;
  if (int e = _ibv_query_gid_ex(context, 1, 0, entries, 0, entry_size)) return -e;
  return 1;
}

// ibv_gid_type_sysfs of rdma-core's private ABI: 0 RoCE v1 (or IB), 1 RoCE v2.
RN_EXPORT int ibv_query_gid_type(ibv_context* context, uint8_t port_num, unsigned int index,
                                 int* type) {
  if (!context || !type || port_num != 1 || index != 0) {
    errno = EINVAL;
    return -1;
  }
  *type = 1;
  return 0;
}

RN_EXPORT int ibv_query_pkey(ibv_context* context, uint8_t port_num, int index, __be16* pkey) {
  if (!context || !pkey || port_num != 1 || index != 0) {
    errno = EINVAL;
    return -1;
  }
  *pkey = htons(0xffff);
  return 0;
}

RN_EXPORT int ibv_get_pkey_index(ibv_context* context, uint8_t port_num, __be16 pkey) {
  if (!context || port_num != 1 || ntohs(pkey) != 0xffff) {
    errno = EINVAL;
    return -1;
  }
  return 0;
}

// ================================ PD and MR ================================

RN_EXPORT ibv_pd* ibv_alloc_pd(ibv_context* context) {
  if (!context) {
    errno = EINVAL;
    return nullptr;
  }
  Context* c = ctx_of(context);
  uint32_t pdn = 0;
  std::lock_guard<std::recursive_mutex> lk(c->mu);
  if (int e = guarded(c, "ibv_alloc_pd", [&] { return c->drv->alloc_pd(&pdn); })) {
    errno = e;
    return nullptr;
  }
  Pd* p = new Pd();
  p->pd.context = context;
  p->pd.handle = pdn;
  p->pdn = pdn;
  trace("alloc_pd", pdn);
  return &p->pd;
}

RN_EXPORT int ibv_dealloc_pd(ibv_pd* pd) {
  if (!pd) return EINVAL;
  Context* c = ctx_of(pd->context);
  Pd* p = reinterpret_cast<Pd*>(pd);
  if (int e = destroy_in_driver(c, "ibv_dealloc_pd", [&] { return c->drv->dealloc_pd(p->pdn); }))
    return e;
  trace("dealloc_pd", p->pdn);
  delete p;
  return 0;
}

namespace {
// The access flags the device takes; the optional ones (relaxed ordering) may be dropped, as
// verbs allows; on-demand paging, zero-based and huge-page hints are not modelled.
int mr_access(int access, uint32_t* out) {
  const int unsupported = IBV_ACCESS_ZERO_BASED | IBV_ACCESS_ON_DEMAND | IBV_ACCESS_HUGETLB;
  if (access & unsupported) return EOPNOTSUPP;
  *out = static_cast<uint32_t>(access) & 0x1f;  // LOCAL_WRITE .. MW_BIND
  return 0;
}

ibv_mr* reg_mr(ibv_pd* pd, void* addr, size_t length, uint64_t iova, int access) {
  if (!pd) {
    errno = EINVAL;
    return nullptr;
  }
  Context* c = ctx_of(pd->context);
  uint32_t acc = 0;
  int e = mr_access(access, &acc);
  if (!e && iova != reinterpret_cast<uint64_t>(addr)) e = EOPNOTSUPP;  // the iova is the address
  if (e) {
    debug(c, "ibv_reg_mr: access flags or iova not modelled", e);
    errno = e;
    return nullptr;
  }
  drv::Mr m;
  {
    std::lock_guard<std::recursive_mutex> lk(c->mu);
    if ((e = guarded(c, "ibv_reg_mr", [&] {
           return c->drv->reg_mr(reinterpret_cast<Pd*>(pd)->pdn, reinterpret_cast<uint64_t>(addr),
                                 length, acc, &m);
         }))) {
      errno = e;
      return nullptr;
    }
  }
  Mr* r = new Mr();
  r->m = m;
  r->mr.context = pd->context;
  r->mr.pd = pd;
  r->mr.addr = addr;
  r->mr.length = length;
  r->mr.handle = m.lkey;
  r->mr.lkey = m.lkey;
  r->mr.rkey = m.rkey;
  trace("reg_mr", m.lkey);
  return &r->mr;
}
}  // namespace

RN_EXPORT ibv_mr* ibv_reg_mr(ibv_pd* pd, void* addr, size_t length, int access) {
  return reg_mr(pd, addr, length, reinterpret_cast<uint64_t>(addr), access);
}
RN_EXPORT ibv_mr* ibv_reg_mr_iova(ibv_pd* pd, void* addr, size_t length, uint64_t iova,
                                  int access) {
  return reg_mr(pd, addr, length, iova, access);
}
RN_EXPORT ibv_mr* ibv_reg_mr_iova2(ibv_pd* pd, void* addr, size_t length, uint64_t iova,
                                   unsigned int access) {
  return reg_mr(pd, addr, length, iova, static_cast<int>(access));
}

RN_EXPORT int ibv_dereg_mr(ibv_mr* mr) {
  if (!mr) return EINVAL;
  Context* c = ctx_of(mr->context);
  Mr* r = reinterpret_cast<Mr*>(mr);
  if (int e = destroy_in_driver(c, "ibv_dereg_mr", [&] { return c->drv->dereg_mr(r->m); }))
    return e;
  trace("dereg_mr", r->m.lkey);
  delete r;
  return 0;
}

// Re-registration keeps the MR's keys in verbs as providers do it (applications rely on that:
// the peer keeps the rkey it was given). The device has no command to change an MR in place, and
// a new registration gets new keys, so it is refused as not supported.
RN_EXPORT int ibv_rereg_mr(ibv_mr* mr, int flags, ibv_pd* pd, void* addr, size_t length,
                           int access) {
  (void)pd, (void)addr, (void)length, (void)access;
  if (!mr || !flags || (flags & ~IBV_REREG_MR_FLAGS_SUPPORTED)) return IBV_REREG_MR_ERR_INPUT;
  debug(ctx_of(mr->context), "ibv_rereg_mr: not modelled (the device cannot change an MR in place)",
        EOPNOTSUPP);
  errno = EOPNOTSUPP;  // some callers (pyverbs) read the reason from errno
  return EOPNOTSUPP;
}

// ================================ Completion channels and CQs ================================

RN_EXPORT ibv_comp_channel* ibv_create_comp_channel(ibv_context* context) {
  if (!context) {
    errno = EINVAL;
    return nullptr;
  }
  Channel* ch = new Channel();
  ch->ch.context = context;
  ch->ch.fd = ::eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE);
  ch->ch.refcnt = 0;
  if (ch->ch.fd < 0) {
    int e = errno;
    delete ch;
    errno = e;
    return nullptr;
  }
  return &ch->ch;
}

RN_EXPORT int ibv_destroy_comp_channel(ibv_comp_channel* channel) {
  if (!channel) return EINVAL;
  Channel* ch = reinterpret_cast<Channel*>(channel);
  {
    std::lock_guard<std::mutex> lk(ch->mu);
    if (channel->refcnt) return EBUSY;
  }
  ::close(channel->fd);
  delete ch;
  return 0;
}

RN_EXPORT ibv_cq* ibv_create_cq(ibv_context* context, int cqe, void* cq_context,
                                ibv_comp_channel* channel, int comp_vector) {
  if (comp_vector < 0 || comp_vector >= 1) {
    errno = EINVAL;
    return nullptr;
  }
  return make_cq(context, cqe, cq_context, channel);
}

RN_EXPORT int ibv_resize_cq(ibv_cq* cq, int cqe) {
  (void)cq;
  (void)cqe;
  return EOPNOTSUPP;
}

RN_EXPORT int ibv_destroy_cq(ibv_cq* cq) {
  if (!cq) return EINVAL;
  Cq* q = cq_of(cq);
  Context* c = q->ctx;
  if (int e = destroy_in_driver(c, "ibv_destroy_cq", [&] { return c->drv->destroy_cq(q->cq); }))
    return e;
  trace("destroy_cq", cq->handle);
  {
    std::lock_guard<std::mutex> ol(c->obj_mu);
    c->cqs.erase(cq->handle);
    purge_async(c, [cq](const ibv_async_event& ev) {
      return ev.event_type == IBV_EVENT_CQ_ERR && ev.element.cq == cq;
    });
    if (q->channel) {
      std::lock_guard<std::mutex> chl(q->channel->mu);
      auto& r = q->channel->ready;
      for (auto it = r.begin(); it != r.end();) {
        if (*it == q) {
          it = r.erase(it);
          drop_count(q->channel->ch.fd);
        } else {
          ++it;
        }
      }
      --q->channel->ch.refcnt;
    }
  }
  // As verbs: every event handed out must have been acknowledged.
  wait_acks(&cq->mutex, &cq->cond, &cq->comp_events_completed, &q->comp_events);
  wait_acks(&cq->mutex, &cq->cond, &cq->async_events_completed, &q->async_events);
  pthread_mutex_destroy(&cq->mutex);
  pthread_cond_destroy(&cq->cond);
  delete q;
  return 0;
}

RN_EXPORT int ibv_get_cq_event(ibv_comp_channel* channel, ibv_cq** cq, void** cq_context) {
  if (!channel || !cq) {
    errno = EINVAL;
    return -1;
  }
  Channel* ch = reinterpret_cast<Channel*>(channel);
  for (;;) {
    if (take_count(channel->fd)) return -1;  // errno from read (EAGAIN if non-blocking)
    std::lock_guard<std::mutex> lk(ch->mu);
    if (ch->ready.empty()) continue;  // its CQ was destroyed meanwhile
    Cq* q = ch->ready.front();
    ch->ready.pop_front();
    ++q->comp_events;
    *cq = reinterpret_cast<ibv_cq*>(q);
    if (cq_context) *cq_context = q->ex.cq_context;
    return 0;
  }
}

RN_EXPORT void ibv_ack_cq_events(ibv_cq* cq, unsigned int nevents) {
  if (!cq) return;
  pthread_mutex_lock(&cq->mutex);
  cq->comp_events_completed += nevents;
  pthread_cond_signal(&cq->cond);
  pthread_mutex_unlock(&cq->mutex);
}

// ================================ SRQs ================================

namespace rn::verbs {
ibv_srq* make_srq(ibv_pd* pd, void* srq_context, ibv_srq_attr* attr) {
  if (!pd || !attr) {
    errno = EINVAL;
    return nullptr;
  }
  Context* c = ctx_of(pd->context);
  drv::SrqAttr a;
  a.max_wr = attr->max_wr;
  a.max_sge = attr->max_sge;
  a.srq_limit = attr->srq_limit;
  drv::Srq* ds = nullptr;
  {
    std::lock_guard<std::recursive_mutex> lk(c->mu);
    if (int e = guarded(c, "ibv_create_srq", [&] {
          return c->drv->create_srq(reinterpret_cast<Pd*>(pd)->pdn, a, &ds);
        })) {
      errno = e;
      return nullptr;
    }
  }
  attr->max_wr = ds->size;
  attr->max_sge = ds->max_sge;
  Srq* s = new Srq();
  s->ctx = c;
  s->s = ds;
  s->srq.context = pd->context;
  s->srq.srq_context = srq_context;
  s->srq.pd = pd;
  s->srq.handle = ds->srqn;
  pthread_mutex_init(&s->srq.mutex, nullptr);
  pthread_cond_init(&s->srq.cond, nullptr);
  std::lock_guard<std::mutex> ol(c->obj_mu);
  c->srqs[ds->srqn] = s;
  trace("create_srq", ds->srqn);
  return &s->srq;
}
}  // namespace rn::verbs

RN_EXPORT ibv_srq* ibv_create_srq(ibv_pd* pd, ibv_srq_init_attr* attr) {
  if (!attr) {
    errno = EINVAL;
    return nullptr;
  }
  return make_srq(pd, attr->srq_context, &attr->attr);
}

RN_EXPORT int ibv_modify_srq(ibv_srq* srq, ibv_srq_attr* attr, int mask) {
  if (!srq || !attr) return EINVAL;
  if (mask & IBV_SRQ_MAX_WR) return EINVAL;  // resizing is not modelled
  if (!(mask & IBV_SRQ_LIMIT)) return 0;
  Srq* s = reinterpret_cast<Srq*>(srq);
  std::lock_guard<std::recursive_mutex> lk(s->ctx->mu);
  return guarded(s->ctx, "ibv_modify_srq",
                 [&] { return s->ctx->drv->modify_srq(s->s, attr->srq_limit); });
}

RN_EXPORT int ibv_query_srq(ibv_srq* srq, ibv_srq_attr* attr) {
  if (!srq || !attr) return EINVAL;
  Srq* s = reinterpret_cast<Srq*>(srq);
  drv::SrqAttr a;
  std::lock_guard<std::recursive_mutex> lk(s->ctx->mu);
  if (int e = guarded(s->ctx, "ibv_query_srq", [&] { return s->ctx->drv->query_srq(s->s, &a); }))
    return e;
  attr->max_wr = a.max_wr;
  attr->max_sge = a.max_sge;
  attr->srq_limit = a.srq_limit;
  return 0;
}

RN_EXPORT int ibv_destroy_srq(ibv_srq* srq) {
  if (!srq) return EINVAL;
  Srq* s = reinterpret_cast<Srq*>(srq);
  Context* c = s->ctx;
  if (int e = destroy_in_driver(c, "ibv_destroy_srq", [&] { return c->drv->destroy_srq(s->s); }))
    return e;
  {
    std::lock_guard<std::mutex> ol(c->obj_mu);
    c->srqs.erase(srq->handle);
    purge_async(c, [srq](const ibv_async_event& ev) {
      return ev.event_type == IBV_EVENT_SRQ_LIMIT_REACHED && ev.element.srq == srq;
    });
  }
  wait_acks(&srq->mutex, &srq->cond, &srq->events_completed, &s->async_events);
  pthread_mutex_destroy(&srq->mutex);
  pthread_cond_destroy(&srq->cond);
  delete s;
  return 0;
}

// ================================ QPs ================================

RN_EXPORT ibv_qp* ibv_create_qp(ibv_pd* pd, ibv_qp_init_attr* attr) {
  if (!attr) {
    errno = EINVAL;
    return nullptr;
  }
  ibv_qp* qp = make_qp(pd, *attr, false);
  if (qp) granted_caps(qp, &attr->cap);  // as verbs: the capabilities granted
  return qp;
}

RN_EXPORT ibv_qp_ex* ibv_qp_to_qp_ex(ibv_qp* qp) {
  if (!qp || !qp_of(qp)->has_ex) return nullptr;
  return &qp_of(qp)->ex;
}

RN_EXPORT int ibv_modify_qp(ibv_qp* qp, ibv_qp_attr* attr, int attr_mask) {
  if (!qp || !attr) return EINVAL;
  Qp* q = qp_of(qp);
  Context* c = q->ctx;
  const uint32_t mask = static_cast<uint32_t>(attr_mask);
  if (mask & ~0x1FFFFFu) return EOPNOTSUPP;  // rate limit and later attributes
  drv::QpAttr a;
  a.qp_state = static_cast<dev::QpState>(attr->qp_state);  // the enums are ibv's values
  a.cur_qp_state = static_cast<dev::QpState>(attr->cur_qp_state);
  a.path_mtu = static_cast<dev::Mtu>(attr->path_mtu);
  a.qp_access_flags = attr->qp_access_flags;
  a.dest_qp_num = attr->dest_qp_num;
  a.rq_psn = attr->rq_psn;
  a.sq_psn = attr->sq_psn;
  a.timeout = attr->timeout;
  a.retry_cnt = attr->retry_cnt;
  a.rnr_retry = attr->rnr_retry;
  a.min_rnr_timer = attr->min_rnr_timer;
  a.max_rd_atomic = attr->max_rd_atomic;
  a.max_dest_rd_atomic = attr->max_dest_rd_atomic;
  a.port_num = attr->port_num;
  a.pkey_index = attr->pkey_index;
  a.qkey = attr->qkey;
  if (mask & IBV_QP_AV)
    if (int e = resolve_av(c, attr->ah_attr, &a.ah)) return e;
  std::lock_guard<std::recursive_mutex> lk(c->mu);
  if (int e = guarded(c, "ibv_modify_qp", [&] { return c->drv->modify_qp(q->qp, a, mask); }))
    return e;
  if (mask & IBV_QP_STATE) qp->state = attr->qp_state;
  // Kept for ibv_query_qp.
  ibv_qp_attr& s = q->saved;
  if (mask & IBV_QP_ACCESS_FLAGS) s.qp_access_flags = attr->qp_access_flags;
  if (mask & IBV_QP_PKEY_INDEX) s.pkey_index = attr->pkey_index;
  if (mask & IBV_QP_PORT) s.port_num = attr->port_num;
  if (mask & IBV_QP_QKEY) s.qkey = attr->qkey;
  if (mask & IBV_QP_AV) s.ah_attr = attr->ah_attr;
  if (mask & IBV_QP_PATH_MTU) s.path_mtu = attr->path_mtu;
  if (mask & IBV_QP_TIMEOUT) s.timeout = attr->timeout;
  if (mask & IBV_QP_RETRY_CNT) s.retry_cnt = attr->retry_cnt;
  if (mask & IBV_QP_RNR_RETRY) s.rnr_retry = attr->rnr_retry;
  if (mask & IBV_QP_RQ_PSN) s.rq_psn = attr->rq_psn;
  if (mask & IBV_QP_MAX_QP_RD_ATOMIC) s.max_rd_atomic = attr->max_rd_atomic;
  if (mask & IBV_QP_MIN_RNR_TIMER) s.min_rnr_timer = attr->min_rnr_timer;
  if (mask & IBV_QP_SQ_PSN) s.sq_psn = attr->sq_psn;
  if (mask & IBV_QP_MAX_DEST_RD_ATOMIC) s.max_dest_rd_atomic = attr->max_dest_rd_atomic;
  if (mask & IBV_QP_DEST_QPN) s.dest_qp_num = attr->dest_qp_num;
  return 0;
}

RN_EXPORT int ibv_query_qp(ibv_qp* qp, ibv_qp_attr* attr, int attr_mask,
                           ibv_qp_init_attr* init_attr) {
  (void)attr_mask;  // everything is filled
  if (!qp || !attr) return EINVAL;
  Qp* q = qp_of(qp);
  Context* c = q->ctx;
  dev::QueryQpOut o{};
  {
    std::lock_guard<std::recursive_mutex> lk(c->mu);
    if (int e = guarded(c, "ibv_query_qp", [&] { return c->drv->query_qp(q->qp, &o); })) return e;
  }
  *attr = q->saved;
  attr->qp_state = static_cast<ibv_qp_state>(o.qp_state);
  attr->cur_qp_state = attr->qp_state;
  attr->path_mtu = static_cast<ibv_mtu>(o.path_mtu);
  attr->qp_access_flags = static_cast<int>(o.access_flags);
  attr->dest_qp_num = o.dest_qpn;
  attr->rq_psn = o.rq_psn;
  attr->sq_psn = o.sq_psn;
  if (qp->qp_type == IBV_QPT_UD) attr->qkey = o.qkey;
  if (o.dest_ipv4) {
    attr->ah_attr.is_global = 1;
    gid_of(o.dest_ipv4, &attr->ah_attr.grh.dgid);
    if (!attr->ah_attr.port_num) attr->ah_attr.port_num = 1;
  }
  const drv::Qp* d = q->qp;
  attr->cap.max_send_wr = d->sq_size;
  attr->cap.max_recv_wr = d->srq ? 0 : d->rq_size;
  attr->cap.max_send_sge = d->max_send_sge;
  attr->cap.max_recv_sge = d->srq ? 0 : d->max_recv_sge;
  attr->cap.max_inline_data = d->max_inline_data;
  if (init_attr) {
    std::memset(init_attr, 0, sizeof *init_attr);
    init_attr->qp_context = qp->qp_context;
    init_attr->send_cq = qp->send_cq;
    init_attr->recv_cq = qp->recv_cq;
    init_attr->srq = qp->srq;
    init_attr->cap = attr->cap;
    init_attr->qp_type = qp->qp_type;
    init_attr->sq_sig_all = d->sq_sig_all ? 1 : 0;
  }
  return 0;
}

RN_EXPORT int ibv_destroy_qp(ibv_qp* qp) {
  if (!qp) return EINVAL;
  Qp* q = qp_of(qp);
  Context* c = q->ctx;
  if (int e = destroy_in_driver(c, "ibv_destroy_qp", [&] { return c->drv->destroy_qp(q->qp); }))
    return e;
  trace("destroy_qp", qp->handle);
  {
    std::lock_guard<std::mutex> ol(c->obj_mu);
    c->qps.erase(qp->handle);
    purge_async(c, [qp](const ibv_async_event& ev) {
      return (ev.event_type == IBV_EVENT_QP_FATAL || ev.event_type == IBV_EVENT_SQ_DRAINED ||
              ev.event_type == IBV_EVENT_QP_LAST_WQE_REACHED) &&
             ev.element.qp == qp;
    });
  }
  wait_acks(&qp->mutex, &qp->cond, &qp->events_completed, &q->async_events);
  pthread_mutex_destroy(&qp->mutex);
  pthread_cond_destroy(&qp->cond);
  delete q;
  return 0;
}

// ================================ Address handles ================================

RN_EXPORT ibv_ah* ibv_create_ah(ibv_pd* pd, ibv_ah_attr* attr) {
  if (!pd || !attr) {
    errno = EINVAL;
    return nullptr;
  }
  Context* c = ctx_of(pd->context);
  drv::AddressVector av;
  if (int e = resolve_av(c, *attr, &av)) {
    errno = e;
    return nullptr;
  }
  drv::Ah* da = nullptr;
  std::lock_guard<std::recursive_mutex> lk(c->mu);
  if (int e = guarded(c, "ibv_create_ah",
                      [&] { return c->drv->create_ah(reinterpret_cast<Pd*>(pd)->pdn, av, &da); })) {
    errno = e;
    return nullptr;
  }
  Ah* a = new Ah();
  a->a = da;
  a->ah.context = pd->context;
  a->ah.pd = pd;
  return &a->ah;
}

RN_EXPORT int ibv_destroy_ah(ibv_ah* ah) {
  if (!ah) return EINVAL;
  Context* c = ctx_of(ah->context);
  Ah* a = reinterpret_cast<Ah*>(ah);
  std::lock_guard<std::recursive_mutex> lk(c->mu);
  if (int e = guarded(c, "ibv_destroy_ah", [&] { return c->drv->destroy_ah(a->a); })) return e;
  delete a;
  return 0;
}

// The address of a received datagram's sender: with RoCEv2 over IPv4 the GRH area holds the IPv4
// header in its last 20 bytes, whose source address becomes the IPv4-mapped destination GID.
RN_EXPORT int ibv_init_ah_from_wc(ibv_context* context, uint8_t port_num, ibv_wc* wc, ibv_grh* grh,
                                  ibv_ah_attr* ah_attr) {
  if (!context || !wc || !ah_attr || port_num != 1) {
    errno = EINVAL;
    return -1;
  }
  std::memset(ah_attr, 0, sizeof *ah_attr);
  ah_attr->port_num = port_num;
  if (!(wc->wc_flags & IBV_WC_GRH) || !grh) {
    errno = EINVAL;  // RoCE needs the sender's address from the GRH
    return -1;
  }
  const auto* raw = reinterpret_cast<const uint8_t*>(grh);
  ah_attr->is_global = 1;
  if ((raw[20] >> 4) == 4) {  // an IPv4 header in bytes 20..39
    uint32_t src;
    std::memcpy(&src, raw + 32, 4);
    gid_of(ntohl(src), &ah_attr->grh.dgid);
    ah_attr->grh.hop_limit = 0xff;
    ah_attr->grh.traffic_class = raw[21];
  } else {
    ah_attr->grh.dgid = grh->sgid;
    ah_attr->grh.hop_limit = 0xff;
  }
  ah_attr->grh.sgid_index = 0;
  return 0;
}

RN_EXPORT ibv_ah* ibv_create_ah_from_wc(ibv_pd* pd, ibv_wc* wc, ibv_grh* grh, uint8_t port_num) {
  if (!pd) {
    errno = EINVAL;
    return nullptr;
  }
  ibv_ah_attr a;
  if (ibv_init_ah_from_wc(pd->context, port_num, wc, grh, &a)) return nullptr;
  return ibv_create_ah(pd, &a);
}

RN_EXPORT int ibv_resolve_eth_l2_from_gid(ibv_context* context, ibv_ah_attr* attr,
                                          uint8_t eth_mac[6], uint16_t* vid) {
  if (!context || !attr || !eth_mac) return EINVAL;
  drv::AddressVector av;
  if (int e = resolve_av(ctx_of(context), *attr, &av)) return e;
  std::memcpy(eth_mac, av.dest_mac, 6);
  if (vid) *vid = 0xffff;  // no VLAN
  return 0;
}

// ================================ sysfs and kernel-ABI helpers ================================

namespace {
// The attribute files of our devices' made-up sysfs paths (there is no kernel device).
bool fake_sysfs(const std::string& dir, const std::string& file, std::string* out) {
  std::lock_guard<std::mutex> lk(g_mu);
  for (auto& d : g_devices) {
    if (dir != d->dev.ibdev_path && dir != d->dev.dev_path) continue;
    if (file == "node_desc")
      *out = "rnicsim " + d->host.name;
    else if (file == "board_id")
      *out = "RNICSIM";
    else if (file == "node_type")
      *out = "1: CA";
    else if (file == "hw_rev")
      *out = "0";
    else if (file == "abi_version")
      *out = "1";
    else if (file == "ibdev")
      *out = d->dev.name;
    else if (file == "ports/1/gid_attrs/types/0")
      *out = "RoCE v2";
    else if (file == "ports/1/link_layer")
      *out = "Ethernet";
    else
      return false;
    return true;
  }
  return false;
}
}  // namespace

RN_EXPORT const char* ibv_get_sysfs_path(void) { return "/sys"; }

RN_EXPORT int ibv_read_sysfs_file(const char* dir, const char* file, char* buf, size_t size) {
  if (!dir || !file || !buf || !size) {
    errno = EINVAL;
    return -1;
  }
  std::string v;
  if (fake_sysfs(dir, file, &v)) {
    const size_t n = std::min(v.size(), size - 1);
    std::memcpy(buf, v.data(), n);
    buf[n] = '\0';
    return static_cast<int>(n);
  }
  const std::string path = std::string(dir) + "/" + file;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = ::read(fd, buf, size);
  ::close(fd);
  if (n < 0) return -1;
  if (n > 0 && buf[n - 1] == '\n')
    buf[--n] = '\0';
  else if (static_cast<size_t>(n) < size)
    buf[n] = '\0';
  return static_cast<int>(n);
}

RN_EXPORT void ibv_copy_ah_attr_from_kern(ibv_ah_attr* dst, ib_uverbs_ah_attr* src) {
  std::memcpy(dst->grh.dgid.raw, src->grh.dgid, sizeof dst->grh.dgid);
  dst->grh.flow_label = src->grh.flow_label;
  dst->grh.sgid_index = src->grh.sgid_index;
  dst->grh.hop_limit = src->grh.hop_limit;
  dst->grh.traffic_class = src->grh.traffic_class;
  dst->dlid = src->dlid;
  dst->sl = src->sl;
  dst->src_path_bits = src->src_path_bits;
  dst->static_rate = src->static_rate;
  dst->is_global = src->is_global;
  dst->port_num = src->port_num;
}

RN_EXPORT void ibv_copy_qp_attr_from_kern(ibv_qp_attr* dst, ib_uverbs_qp_attr* src) {
  dst->cur_qp_state = static_cast<ibv_qp_state>(src->cur_qp_state);
  dst->path_mtu = static_cast<ibv_mtu>(src->path_mtu);
  dst->path_mig_state = static_cast<ibv_mig_state>(src->path_mig_state);
  dst->qkey = src->qkey;
  dst->rq_psn = src->rq_psn;
  dst->sq_psn = src->sq_psn;
  dst->dest_qp_num = src->dest_qp_num;
  dst->qp_access_flags = static_cast<int>(src->qp_access_flags);
  dst->cap.max_send_wr = src->max_send_wr;
  dst->cap.max_recv_wr = src->max_recv_wr;
  dst->cap.max_send_sge = src->max_send_sge;
  dst->cap.max_recv_sge = src->max_recv_sge;
  dst->cap.max_inline_data = src->max_inline_data;
  ibv_copy_ah_attr_from_kern(&dst->ah_attr, &src->ah_attr);
  ibv_copy_ah_attr_from_kern(&dst->alt_ah_attr, &src->alt_ah_attr);
  dst->pkey_index = src->pkey_index;
  dst->alt_pkey_index = src->alt_pkey_index;
  dst->en_sqd_async_notify = src->en_sqd_async_notify;
  dst->sq_draining = src->sq_draining;
  dst->max_rd_atomic = src->max_rd_atomic;
  dst->max_dest_rd_atomic = src->max_dest_rd_atomic;
  dst->min_rnr_timer = src->min_rnr_timer;
  dst->port_num = src->port_num;
  dst->timeout = src->timeout;
  dst->retry_cnt = src->retry_cnt;
  dst->rnr_retry = src->rnr_retry;
  dst->alt_port_num = src->alt_port_num;
  dst->alt_timeout = src->alt_timeout;
}

RN_EXPORT void ibv_copy_path_rec_from_kern(ibv_sa_path_rec* dst, ib_user_path_rec* src) {
  std::memcpy(dst->dgid.raw, src->dgid, sizeof dst->dgid);
  std::memcpy(dst->sgid.raw, src->sgid, sizeof dst->sgid);
  dst->dlid = src->dlid;
  dst->slid = src->slid;
  dst->raw_traffic = static_cast<int>(src->raw_traffic);
  dst->flow_label = src->flow_label;
  dst->reversible = static_cast<int>(src->reversible);
  dst->mtu = static_cast<uint8_t>(src->mtu);
  dst->pkey = src->pkey;
  dst->hop_limit = src->hop_limit;
  dst->traffic_class = src->traffic_class;
  dst->numb_path = src->numb_path;
  dst->sl = src->sl;
  dst->mtu_selector = src->mtu_selector;
  dst->rate_selector = src->rate_selector;
  dst->rate = src->rate;
  dst->packet_life_time_selector = src->packet_life_time_selector;
  dst->packet_life_time = src->packet_life_time;
  dst->preference = src->preference;
}

RN_EXPORT void ibv_copy_path_rec_to_kern(ib_user_path_rec* dst, ibv_sa_path_rec* src) {
  std::memcpy(dst->dgid, src->dgid.raw, sizeof dst->dgid);
  std::memcpy(dst->sgid, src->sgid.raw, sizeof dst->sgid);
  dst->dlid = src->dlid;
  dst->slid = src->slid;
  dst->raw_traffic = static_cast<uint32_t>(src->raw_traffic);
  dst->flow_label = src->flow_label;
  dst->reversible = static_cast<uint32_t>(src->reversible);
  dst->mtu = src->mtu;
  dst->pkey = src->pkey;
  dst->hop_limit = src->hop_limit;
  dst->traffic_class = src->traffic_class;
  dst->numb_path = src->numb_path;
  dst->sl = src->sl;
  dst->mtu_selector = src->mtu_selector;
  dst->rate_selector = src->rate_selector;
  dst->rate = src->rate;
  dst->packet_life_time_selector = src->packet_life_time_selector;
  dst->packet_life_time = src->packet_life_time;
  dst->preference = src->preference;
}
