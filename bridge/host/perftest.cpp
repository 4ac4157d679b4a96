#include "bridge/host/perftest.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>

namespace rn::host {

using dev::WcStatus;

struct ConnInfo {
  uint32_t qpn, psn, rkey;
  uint64_t addr;
};

struct Exchange {
  sc_core::sc_event ev;
  int stage[2] = {0, 0};  // [0] client, [1] server
  std::vector<ConnInfo> info[2];
  bool failed = false;
  bool done[2] = {false, false};
};

struct Perftest::Side {
  SimHost& h;
  drv::Driver& d;
  std::vector<uint8_t> mac;
  uint32_t ip;
  int idx;  // 0 client, 1 server
  uint32_t pdn = 0;
  drv::Cq* scq = nullptr;
  drv::Cq* rcq = nullptr;
  std::vector<drv::Qp*> qps;
  // Per QP; 0 (and an empty Mr) where this side has no such buffer: a bandwidth client only
  // sends from src, its server only receives into dst.
  std::vector<uint64_t> src, dst;
  std::vector<drv::Mr> src_mr, dst_mr;
  uint64_t buf_len = 0;  // bytes of each src buffer; dst buffers have kGuard more
  bool checked = false;  // the received bytes were checked (see check_received)
  Side(SimHost& host, drv::Driver& drv, std::vector<uint8_t> m, uint32_t i, int x)
      : h(host), d(drv), mac(std::move(m)), ip(i), idx(x) {}
};

Perftest::Perftest(SimHost& ch, drv::Driver& c, SimHost& sh, drv::Driver& s,
                   const WorkloadParams& p, const std::vector<uint8_t>& cmac, uint32_t cip,
                   const std::vector<uint8_t>& smac, uint32_t sip)
    : p_(p),
      c_(std::make_unique<Side>(ch, c, cmac, cip, 0)),
      s_(std::make_unique<Side>(sh, s, smac, sip, 1)),
      x_(std::make_unique<Exchange>()) {
  res_.params = p;
}

Perftest::~Perftest() = default;

void Perftest::traffic_begin() {
  res_.start = c_->h.now();
  wall0_ = std::chrono::steady_clock::now();
  packets0_ = packets_ ? packets_() : 0;
  progress_.started = true;
}

void Perftest::traffic_end() {
  res_.end = c_->h.now();
  res_.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0_).count();
  res_.packets = (packets_ ? packets_() : 0) - packets0_;
}

bool Perftest::finished() const { return x_->done[0] && x_->done[1]; }

void Perftest::set_error(const std::string& e) {
  if (res_.error.empty()) res_.error = e;
  x_->failed = true;
  x_->ev.notify(sc_core::SC_ZERO_TIME);
}

namespace {
uint64_t seed_for(const WorkloadParams& p, int side, uint32_t qp) {
  return uint64_t(p.pattern_seed) * 1000003ull + uint64_t(side) * 65537ull + qp;
}
constexpr uint64_t kGuard = kGuardBytes;

// The complement of the pattern: differs from the expected data at every byte.
void poison_bytes(uint8_t* b, uint64_t len, uint64_t seed, uint64_t offset) {
  hostmem::pattern_fill(b, len, seed, offset);
  for (uint64_t i = 0; i < len; ++i) b[i] = static_cast<uint8_t>(~b[i]);
}

// Writes and reads buffers a page at a time: no copy of a whole message.
constexpr uint64_t kChunk = 4096;

void poison(SimHost& h, uint64_t va, uint64_t len, uint64_t seed) {
  uint8_t b[kChunk];
  for (uint64_t off = 0; off < len; off += kChunk) {
    uint64_t n = std::min(kChunk, len - off);
    poison_bytes(b, n, seed, off);
    h.app_write(va + off, b, n);
  }
}

// First offset in [va+from, va+to) that no longer holds the poison, if any.
std::optional<uint64_t> poison_changed(SimHost& h, uint64_t va, uint64_t from, uint64_t to,
                                       uint64_t seed) {
  uint8_t b[kChunk], want[kChunk];
  for (uint64_t off = from; off < to; off += kChunk) {
    uint64_t n = std::min(kChunk, to - off);
    h.app_read(va + off, b, n);
    poison_bytes(want, n, seed, off);
    for (uint64_t i = 0; i < n; ++i)
      if (b[i] != want[i]) return off + i;
  }
  return std::nullopt;
}

// Latency tests: the last byte of each message carries a marker the receiver polls for.
uint8_t marker(uint64_t i) { return static_cast<uint8_t>(i % 255 + 1); }

bool is_send(const std::string& k) { return k == "send_bw" || k == "send_lat"; }
// kSendInline if messages of this size go inline on qp (perftest: size <= -I), else 0.
uint32_t inline_flag(const WorkloadParams& p, const drv::Qp* qp) {
  const uint64_t most = std::min<uint64_t>(p.inline_size, qp->max_inline_data);
  return most > 0 && p.size <= most ? uint32_t(drv::kSendInline) : 0u;
}
bool is_lat(const std::string& k) { return k == "write_lat" || k == "send_lat"; }
// Splits [addr, addr+len) into n SGEs (the last takes the remainder).
int make_sges(uint64_t addr, uint64_t len, uint32_t lkey, uint32_t n, drv::Sge* out) {
  if (len == 0) {
    out[0] = drv::Sge{addr, 0, lkey};
    return 1;
  }
  n = static_cast<uint32_t>(std::min<uint64_t>(n, len));
  uint64_t piece = len / n;
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t l = (i + 1 == n) ? len - piece * (n - 1) : piece;
    out[i] = drv::Sge{addr + piece * i, static_cast<uint32_t>(l), lkey};
  }
  return static_cast<int>(n);
}
}  // namespace

uint64_t cq_entries(const WorkloadParams& p) {
  return uint64_t(p.qps) * std::max(p.tx_depth, p.rx_depth) * 2;
}
// Latency tests send both ways; a bandwidth client only sends, its server only receives.
bool sends_from(const WorkloadParams& p, bool client) { return is_lat(p.kind) || client; }
bool receives_into(const WorkloadParams& p, bool client) { return is_lat(p.kind) || !client; }
uint32_t mrs_per_qp(const WorkloadParams& p, bool client) {
  return (sends_from(p, client) ? 1 : 0) + (receives_into(p, client) ? 1 : 0);
}

bool Perftest::setup(Side& s, bool is_client) {
  drv::Driver& d = s.d;
  auto check = [&](int e, const char* what) {
    if (e)
      set_error(fmt::format("{}: {} failed: {} ({})", s.h.name(), what, std::strerror(e),
                            d.last_error()));
    return e == 0;
  };
  if (!check(d.alloc_pd(&s.pdn), "alloc_pd")) return false;
  // System::validate keeps this within the driver's and the NIC's CQ sizes.
  const uint64_t cqe = cq_entries(p_);
  if (cqe > uint64_t(std::numeric_limits<int>::max())) {
    set_error(fmt::format("{}: a CQ of {} entries is too large", s.h.name(), cqe));
    return false;
  }
  if (!check(d.create_cq(static_cast<int>(cqe), &s.scq), "create_cq")) return false;
  if (!check(d.create_cq(static_cast<int>(cqe), &s.rcq), "create_cq")) return false;
  uint64_t len = std::max<uint64_t>(p_.size, 1);
  s.buf_len = len;
  const uint32_t lw = static_cast<uint32_t>(dev::Access::LOCAL_WRITE);
  const uint32_t rw = static_cast<uint32_t>(dev::Access::REMOTE_WRITE);
  const bool need_src = sends_from(p_, is_client), need_dst = receives_into(p_, is_client);
  for (uint32_t i = 0; i < p_.qps; ++i) {
    drv::QpCap cap;
    cap.max_send_wr = p_.tx_depth;
    cap.max_recv_wr = p_.rx_depth;
    cap.max_send_sge = std::max<uint32_t>(1, p_.sges);
    cap.max_recv_sge = std::max<uint32_t>(1, p_.sges);
    // As perftest's -I, as far as the device and driver offer inline data (none with a
    // version-1 driver).
    if (sends_from(p_, is_client))
      cap.max_inline_data = std::min(p_.inline_size, d.caps().max_inline_data);
    drv::Qp* qp = nullptr;
    if (!check(d.create_qp(s.pdn, s.scq, s.rcq, cap, false, &qp), "create_qp")) return false;
    s.qps.push_back(qp);
    s.src.push_back(0);
    s.dst.push_back(0);
    s.src_mr.emplace_back();
    s.dst_mr.emplace_back();
    if (need_src) {
      s.src[i] = s.h.alloc_buffer(len);
      s.h.app_fill_pattern(s.src[i], len, seed_for(p_, s.idx, i));
      if (!check(d.reg_mr(s.pdn, s.src[i], len, lw, &s.src_mr[i]), "reg_mr")) return false;
    }
    if (need_dst) {
      // Poison the destination and a guard zone after it with the complement of the expected
      // bytes: every byte the NIC must write has to change, and the guard must not.
      s.dst[i] = s.h.alloc_buffer(len + kGuard);
      poison(s.h, s.dst[i], len + kGuard, seed_for(p_, 1 - s.idx, i));
      if (!check(d.reg_mr(s.pdn, s.dst[i], len, lw | rw, &s.dst_mr[i]), "reg_mr")) return false;
    }
    x_->info[s.idx].push_back(ConnInfo{qp->qpn,
                                       (0x1000u * (i + 1) + (is_client ? 7u : 3u)) & 0xFFFFFF,
                                       s.dst_mr[i].rkey, s.dst[i]});
  }
  return true;
}

bool Perftest::connect(Side& s, bool is_client) {
  drv::Driver& d = s.d;
  Side& peer = is_client ? *s_ : *c_;
  const auto& mine = x_->info[s.idx];
  const auto& theirs = x_->info[1 - s.idx];
  dev::Mtu mtu = dev::Mtu::MTU_4096;
  for (int c = 1; c <= 5; ++c)
    if ((128u << c) == p_.mtu) mtu = static_cast<dev::Mtu>(c);
  for (uint32_t i = 0; i < p_.qps; ++i) {
    drv::QpAttr a;
    a.qp_state = dev::QpState::INIT;
    a.qp_access_flags = static_cast<uint32_t>(dev::Access::REMOTE_WRITE) |
                        static_cast<uint32_t>(dev::Access::LOCAL_WRITE);
    using A = dev::QpAttr;
    auto m = [](std::initializer_list<A> l) {
      uint32_t v = 0;
      for (A x : l) v |= static_cast<uint32_t>(x);
      return v;
    };
    int e = d.modify_qp(s.qps[i], a, m({A::STATE, A::PKEY_INDEX, A::PORT, A::ACCESS_FLAGS}));
    if (!e) {
      a.qp_state = dev::QpState::RTR;
      a.path_mtu = mtu;
      a.dest_qp_num = theirs[i].qpn;
      a.rq_psn = theirs[i].psn;
      a.ah.dest_ipv4 = peer.ip;
      std::memcpy(a.ah.dest_mac, peer.mac.data(), 6);
      e = d.modify_qp(s.qps[i], a,
                      m({A::STATE, A::AV, A::PATH_MTU, A::DEST_QPN, A::RQ_PSN,
                         A::MAX_DEST_RD_ATOMIC, A::MIN_RNR_TIMER}));
    }
    if (!e) {
      a.qp_state = dev::QpState::RTS;
      a.sq_psn = mine[i].psn;
      e = d.modify_qp(
          s.qps[i], a,
          m({A::STATE, A::SQ_PSN, A::TIMEOUT, A::RETRY_CNT, A::RNR_RETRY, A::MAX_QP_RD_ATOMIC}));
    }
    if (e) {
      set_error(fmt::format("{}: modify_qp failed: {}", s.h.name(), d.last_error()));
      return false;
    }
  }
  return true;
}

void Perftest::teardown(Side& s) {
  for (auto* qp : s.qps) s.d.destroy_qp(qp);
  for (auto& m : s.src_mr)
    if (m.length) s.d.dereg_mr(m);
  for (auto& m : s.dst_mr)
    if (m.length) s.d.dereg_mr(m);
  if (s.scq) s.d.destroy_cq(s.scq);
  if (s.rcq) s.d.destroy_cq(s.rcq);
  if (s.pdn) s.d.dealloc_pd(s.pdn);
  // The workload is over (its received bytes checked): its buffers go back before the next one.
  for (uint64_t va : s.src)
    if (va) s.h.free_buffer(va, s.buf_len);
  for (uint64_t va : s.dst)
    if (va) s.h.free_buffer(va, s.buf_len + kGuard);
  s.src.clear();
  s.dst.clear();
}

bool Perftest::wait_cq(Side& s, drv::Cq* cq, drv::Wc* wc, int n, int* got) {
  for (;;) {
    *got = s.d.poll_cq(cq, n, wc);
    if (*got > 0) {
      s.h.cpu(s.h.params().poll_cost);
      for (int i = 0; i < *got; ++i)
        if (wc[i].status != WcStatus::SUCCESS) {
          set_error(fmt::format("{}: completion wr_id {} on QP {} failed: {} (vendor_err {})",
                                s.h.name(), wc[i].wr_id, wc[i].qp_num, dev::to_string(wc[i].status),
                                wc[i].vendor_err));
          return false;
        }
      return true;
    }
    if (x_->failed) return false;
    uint64_t slot = cq->ring + uint64_t(cq->ci & (cq->size - 1)) * sizeof(dev::Cqe);
    if (!s.h.wait_write(slot, sizeof(dev::Cqe), s.h.params().driver_timeout)) {
      if (!x_->failed) {
        set_error(fmt::format(
            "{}: no completion within {} ns (host.driver_timeout; CQ {}, {} polled so far)",
            s.h.name(), ticks_to_ns(s.h.params().driver_timeout), cq->cqn, cq->ci));
        return false;
      }
    }
  }
}

bool Perftest::sync(int me, int stage) {
  x_->stage[me] = std::max(x_->stage[me], stage);
  x_->ev.notify(sc_core::SC_ZERO_TIME);
  while (x_->stage[1 - me] < stage && !x_->failed) sc_core::wait(x_->ev);
  return !x_->failed;
}

// Stages: 1 resources created and published, 2 connected (server's receives posted), 3 client
// traffic complete, 4 server complete.
void Perftest::run_client() {
  bool ok = setup(*c_, true) && sync(0, 1) && connect(*c_, true) && sync(0, 2);
  if (ok) {
    if (is_lat(p_.kind)) {
      client_lat();
    } else {
      client_bw();
    }
    if (is_lat(p_.kind) && res_.ok && p_.verify) check_received(*c_);
    sync(0, 3);
    sync(0, 4);
  }
  teardown(*c_);
  x_->done[0] = true;
  x_->stage[0] = 99;
  x_->ev.notify(sc_core::SC_ZERO_TIME);
}

void Perftest::run_server() {
  bool ok = setup(*s_, false) && sync(1, 1) && connect(*s_, false);
  if (ok) {
    if (is_lat(p_.kind)) {
      if (sync(1, 2)) server_lat();
    } else {
      server_bw();
    }
    if (sync(1, 3) && res_.ok && p_.verify) check_received(*s_);
    sync(1, 4);
  }
  teardown(*s_);
  x_->done[1] = true;
  x_->stage[1] = 99;
  x_->ev.notify(sc_core::SC_ZERO_TIME);
}

void Perftest::fail(const std::string& why) { set_error(why); }

bool Perftest::verify() {
  if (res_.error.empty() && !res_.ok) res_.error = "the workload did not run to its end";
  if (res_.error.empty() && p_.verify && (!s_->checked || (is_lat(p_.kind) && !c_->checked)))
    res_.error = "the run stopped before the received bytes were checked";
  if (!res_.error.empty()) res_.ok = false;
  return res_.ok;
}

// In the side's thread, once its last message has arrived: every DMA write in flight lands, then
// each received buffer must hold the peer's pattern, and its guard zone the poison.
void Perftest::check_received(Side& s) {
  s.checked = true;
  const char* who = s.idx == 0 ? "client" : "server";
  const char* peer = s.idx == 0 ? "server" : "client";
  for (uint32_t q = 0; q < s.dst.size(); ++q) {
    if (!s.dst[q]) continue;
    const uint64_t seed = seed_for(p_, 1 - s.idx, q);
    s.h.wait_writes_landed(s.dst[q], s.buf_len + kGuard);
    // Latency tests: the last byte carries the round-trip marker, not the pattern.
    uint64_t n = is_lat(p_.kind) ? (p_.size ? p_.size - 1 : 0) : p_.size;
    if (auto bad = s.h.app_check_pattern(s.dst[q], n, seed)) {
      res_.ok = false;
      if (res_.error.empty())
        res_.error = fmt::format("{} QP {}: received byte {} of {} differs from the {}'s data", who,
                                 q, *bad, p_.size, peer);
      return;
    }
    if (auto g = poison_changed(s.h, s.dst[q], p_.size, s.buf_len + kGuard, seed)) {
      res_.ok = false;
      if (res_.error.empty())
        res_.error =
            fmt::format("{} QP {}: byte {} past the end of the {}-byte message was overwritten",
                        who, q, *g, p_.size);
      return;
    }
    res_.verified_bytes += n;
  }
}

void Perftest::client_bw() {
  Side& s = *c_;
  const bool send = is_send(p_.kind);
  const uint32_t nq = p_.qps;
  std::vector<uint64_t> posted(nq, 0), completed(nq, 0);
  const uint64_t total = p_.iterations * nq;
  uint64_t done = 0;
  std::vector<drv::Wc> wc(64);
  drv::Sge sg[32];
  const auto& peer = x_->info[1];
  // The QPs that may have room for more WQEs: every QP at first, then those that got a
  // completion, in QP order (the order a scan of every QP would post them in). The others are
  // full or done: no scan of every QP per batch of completions.
  std::vector<uint32_t> ready(nq);
  std::iota(ready.begin(), ready.end(), 0u);
  std::vector<uint8_t> queued(nq, 1);
  progress_.total = total;
  traffic_begin();
  while (done < total) {
    for (uint32_t q : ready) {
      queued[q] = 0;
      while (posted[q] < p_.iterations && posted[q] - completed[q] < p_.tx_depth) {
        drv::SendWr wr;
        wr.wr_id = (uint64_t(q) << 40) | posted[q];
        wr.num_sge = make_sges(s.src[q], p_.size, s.src_mr[q].lkey, p_.sges, sg);
        wr.sg_list = sg;
        wr.opcode = send
                        ? (p_.imm ? dev::WrOpcode::SEND_WITH_IMM : dev::WrOpcode::SEND)
                        : (p_.imm ? dev::WrOpcode::RDMA_WRITE_WITH_IMM : dev::WrOpcode::RDMA_WRITE);
        wr.imm_data = static_cast<uint32_t>(0xA5000000u | (posted[q] & 0xFFFFFF));
        wr.remote_addr = peer[q].addr;
        wr.rkey = peer[q].rkey;
        bool last = posted[q] + 1 == p_.iterations;
        if (last || posted[q] % p_.cq_mod == p_.cq_mod - 1) wr.send_flags = drv::kSendSignaled;
        wr.send_flags |= inline_flag(p_, s.qps[q]);
        s.h.cpu(s.h.params().wqe_write_cost);
        const drv::SendWr* bad = nullptr;
        if (int e = s.d.post_send(s.qps[q], &wr, &bad)) {
          set_error(fmt::format("client: post_send failed: {}", s.d.last_error()));
          (void)e;
          return;
        }
        ++posted[q];
      }
    }
    ready.clear();
    int got = 0;
    if (!wait_cq(s, s.scq, wc.data(), static_cast<int>(wc.size()), &got)) return;
    for (int i = 0; i < got; ++i) {
      uint32_t q = static_cast<uint32_t>(wc[i].wr_id >> 40);
      uint64_t n = (wc[i].wr_id & ((1ull << 40) - 1)) + 1;
      if (q >= nq || n <= completed[q]) {
        set_error(fmt::format("client: unexpected completion wr_id {:#x}", wc[i].wr_id));
        return;
      }
      done += n - completed[q];
      completed[q] = n;
      progress_.done = done;
      ++res_.completions;
      if (!queued[q] && posted[q] < p_.iterations) {
        queued[q] = 1;
        ready.push_back(q);
      }
    }
    std::sort(ready.begin(), ready.end());
  }
  traffic_end();
  res_.messages = total;
  res_.bytes = total * p_.size;
  Tick dt = res_.end - res_.start;
  if (dt) {
    res_.goodput_gbps = static_cast<double>(res_.bytes) * 8.0 / static_cast<double>(dt) * 1e3;
    res_.msg_rate_mpps = static_cast<double>(res_.messages) / static_cast<double>(dt) * 1e6;
  }
  res_.ok = true;
}

void Perftest::server_bw() {
  Side& s = *s_;
  const int me = 1;
  const bool send = is_send(p_.kind);
  const bool recv_needed = send || p_.imm;
  const uint32_t nq = p_.qps;
  drv::Sge sg[32];
  auto post_recv = [&](uint32_t q, uint64_t id) {
    drv::RecvWr wr;
    wr.wr_id = (uint64_t(q) << 40) | id;
    wr.num_sge = make_sges(s.dst[q], p_.size, s.dst_mr[q].lkey, p_.sges, sg);
    wr.sg_list = sg;
    const drv::RecvWr* bad = nullptr;
    return s.d.post_recv(s.qps[q], &wr, &bad);
  };
  std::vector<uint64_t> posted(nq, 0), got_msgs(nq, 0);
  if (recv_needed) {
    for (uint32_t q = 0; q < nq; ++q)
      for (uint32_t k = 0; k < p_.rx_depth && posted[q] < p_.iterations; ++k)
        if (post_recv(q, posted[q]++)) {
          set_error(fmt::format("server: post_recv failed: {}", s.d.last_error()));
          return;
        }
  }
  if (!sync(me, 2)) return;
  if (recv_needed) {
    std::vector<drv::Wc> wc(64);
    uint64_t total = p_.iterations * nq, done = 0;
    while (done < total) {
      int got = 0;
      if (!wait_cq(s, s.rcq, wc.data(), static_cast<int>(wc.size()), &got)) return;
      for (int i = 0; i < got; ++i) {
        const drv::Wc& w = wc[i];
        uint32_t q = static_cast<uint32_t>(w.wr_id >> 40);
        uint64_t expected_len = p_.size;
        dev::WcOpcode want = send ? dev::WcOpcode::RECV : dev::WcOpcode::RECV_RDMA_WITH_IMM;
        std::string bad;
        if (q >= nq)
          bad = "unknown wr_id";
        else if (w.opcode != want)
          bad = fmt::format("opcode {}", dev::to_string(w.opcode));
        else if (w.byte_len != expected_len)
          bad = fmt::format("byte_len {}", w.byte_len);
        else if (p_.imm && (!(w.wc_flags & drv::kWcWithImm) ||
                            w.imm_data != (0xA5000000u | (got_msgs[q] & 0xFFFFFF))))
          bad = fmt::format("imm {:#x} (expected {:#x})", w.imm_data,
                            0xA5000000u | (got_msgs[q] & 0xFFFFFF));
        else if (!p_.imm && (w.wc_flags & drv::kWcWithImm))
          bad = "unexpected immediate";
        if (!bad.empty()) {
          set_error(fmt::format("server: bad receive completion (QP {}, message {}): {}", w.qp_num,
                                q < nq ? got_msgs[q] : 0, bad));
          return;
        }
        ++got_msgs[q];
        ++done;
        ++res_.completions;
        if (posted[q] < p_.iterations) {
          if (post_recv(q, posted[q]++)) {
            set_error(fmt::format("server: post_recv failed: {}", s.d.last_error()));
            return;
          }
        }
      }
    }
  }
}

// Ping-pong: the client writes (or sends) to the server, which answers as soon as it sees the
// message; one-way latency = round trip / 2, as perftest reports it.
bool Perftest::lat_post_recv(Side& s, uint64_t id) {
  drv::Sge sg[32];
  drv::RecvWr wr;
  wr.wr_id = id;
  wr.num_sge = make_sges(s.dst[0], p_.size, s.dst_mr[0].lkey, p_.sges, sg);
  wr.sg_list = sg;
  const drv::RecvWr* bad = nullptr;
  if (s.d.post_recv(s.qps[0], &wr, &bad) == 0) return true;
  set_error(s.h.name() + ": post_recv failed: " + s.d.last_error());
  return false;
}

bool Perftest::lat_send(Side& s, uint64_t i, const ConnInfo& peer) {
  const bool send = is_send(p_.kind);
  uint8_t m = marker(i);
  if (p_.size > 0) s.h.app_write(s.src[0] + p_.size - 1, &m, 1);
  drv::Sge sg[32];
  drv::SendWr wr;
  wr.wr_id = i;
  wr.num_sge = make_sges(s.src[0], p_.size, s.src_mr[0].lkey, p_.sges, sg);
  wr.sg_list = sg;
  wr.opcode = send ? dev::WrOpcode::SEND : dev::WrOpcode::RDMA_WRITE;
  wr.remote_addr = peer.addr;
  wr.rkey = peer.rkey;
  wr.send_flags = drv::kSendSignaled | inline_flag(p_, s.qps[0]);
  s.h.cpu(s.h.params().wqe_write_cost);
  const drv::SendWr* bad = nullptr;
  if (s.d.post_send(s.qps[0], &wr, &bad) == 0) return true;
  set_error(s.h.name() + ": post_send failed: " + s.d.last_error());
  return false;
}

// Waits for round trip i's message from the peer: a receive completion (SEND), or the marker
// byte landing at the end of the buffer (WRITE). Reposts the receive if more are to come.
bool Perftest::lat_await(Side& s, uint64_t i, uint64_t n, uint64_t* recv_posted) {
  if (is_send(p_.kind)) {
    drv::Wc wc[1];
    int got = 0;
    if (!wait_cq(s, s.rcq, wc, 1, &got)) return false;
    if (wc[0].byte_len != p_.size) {
      set_error(
          fmt::format("{}: received {} bytes, expected {}", s.h.name(), wc[0].byte_len, p_.size));
      return false;
    }
    return i + 1 >= n || lat_post_recv(s, (*recv_posted)++);
  }
  uint64_t last = s.dst[0] + p_.size - 1;
  for (;;) {
    uint8_t b = 0;
    s.h.app_read(last, &b, 1);
    if (b == marker(i)) break;
    if (!s.h.wait_write(last, 1, s.h.params().driver_timeout)) {
      set_error(fmt::format("{}: round trip {} did not arrive within {} ns", s.h.name(), i,
                            ticks_to_ns(s.h.params().driver_timeout)));
      return false;
    }
  }
  s.h.cpu(s.h.params().poll_cost);
  return true;
}

void Perftest::client_lat() {
  Side& s = *c_;
  drv::Wc wc[16];
  const uint64_t n = p_.warmup + p_.iterations;
  uint64_t recv_posted = 0;
  res_.latency_samples.reserve(std::min(p_.keep_samples, p_.iterations));
  if (is_send(p_.kind) && !lat_post_recv(s, recv_posted++)) return;
  progress_.total = n;
  traffic_begin();
  for (uint64_t i = 0; i < n; ++i) {
    progress_.done = i;
    Tick t0 = s.h.now();
    if (!lat_send(s, i, x_->info[1][0]) || !lat_await(s, i, n, &recv_posted)) return;
    Tick t1 = s.h.now();
    if (i >= p_.warmup) {
      res_.latency.add((t1 - t0) / 2);
      if (res_.latency_samples.size() < p_.keep_samples)
        res_.latency_samples.push_back((t1 - t0) / 2);
    }
    // Reap our send completion (it arrived before the answer could).
    int got = 0;
    if (!wait_cq(s, s.scq, wc, 16, &got)) return;
    ++res_.completions;
  }
  traffic_end();
  res_.messages = p_.iterations;
  res_.bytes = p_.iterations * p_.size;
  res_.ok = true;
}

void Perftest::server_lat() {
  Side& s = *s_;
  drv::Wc wc[16];
  const uint64_t n = p_.warmup + p_.iterations;
  uint64_t recv_posted = 0;
  if (is_send(p_.kind) && !lat_post_recv(s, recv_posted++)) return;
  for (uint64_t i = 0; i < n; ++i) {
    if (!lat_await(s, i, n, &recv_posted) || !lat_send(s, i, x_->info[0][0])) return;
    int got = 0;
    if (!wait_cq(s, s.scq, wc, 16, &got)) return;
  }
}

}  // namespace rn::host
