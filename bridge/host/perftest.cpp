#include "bridge/host/perftest.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <unordered_map>

#include "bridge/host/perftest_internal.h"

namespace rn::host {

using dev::WcStatus;

Perftest::Perftest(SimHost& ch, drv::Driver& c, SimHost& sh, drv::Driver& s,
                   const WorkloadParams& p, const std::vector<uint8_t>& cmac, uint32_t cip,
                   const std::vector<uint8_t>& smac, uint32_t sip)
    : p_(p),
      verb_(verb_of(p.kind)),
      lat_(is_lat(p.kind)),
      ping_pong_(ping_pong(p.kind)),
      c_(std::make_unique<Side>(ch, c, cmac, cip, 0)),
      s_(std::make_unique<Side>(sh, s, smac, sip, 1)),
      x_(std::make_unique<Exchange>()),
      m_(is_mixed(p.kind) ? std::make_unique<Mixed>() : nullptr) {
  res_.params = p;
  switch (verb_) {
    case Verb::kWrite:
      op_ = p.imm ? dev::WrOpcode::RDMA_WRITE_WITH_IMM : dev::WrOpcode::RDMA_WRITE;
      break;
    case Verb::kSend:
      op_ = p.imm ? dev::WrOpcode::SEND_WITH_IMM : dev::WrOpcode::SEND;
      break;
    case Verb::kRead:
      op_ = dev::WrOpcode::RDMA_READ;
      break;
    case Verb::kAtomic:
      op_ = p.atomic_type == AtomicType::kCmpAndSwap ? dev::WrOpcode::ATOMIC_CMP_AND_SWP
                                                     : dev::WrOpcode::ATOMIC_FETCH_AND_ADD;
      break;
  }
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
  // With an SRQ a message may land in any QP's buffer: every QP sends the same pattern.
  return uint64_t(p.pattern_seed) * 1000003ull + uint64_t(side) * 65537ull + (p.use_srq ? 0 : qp);
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

// kSendInline if messages of this size go inline on qp (perftest: size <= -I), else 0.
uint32_t inline_flag(const WorkloadParams& p, const drv::Qp* qp) {
  const uint64_t most = std::min<uint64_t>(p.inline_size, qp->max_inline_data);
  return most > 0 && p.size <= most ? uint32_t(drv::kSendInline) : 0u;
}
// The access the peer's WQEs need on this side's QP and on the buffer they name.
uint32_t remote_access(Verb v) {
  switch (v) {
    case Verb::kRead:
      return static_cast<uint32_t>(dev::Access::REMOTE_READ);
    case Verb::kAtomic:
      return static_cast<uint32_t>(dev::Access::REMOTE_ATOMIC);
    default:
      return static_cast<uint32_t>(dev::Access::REMOTE_WRITE);
  }
}

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

bool is_workload_kind(const std::string& kind) {
  for (const char* k : kWorkloadKinds)
    if (kind == k) return true;
  return false;
}

std::string workload_kinds() {
  std::string out;
  for (const char* k : kWorkloadKinds) out += (out.empty() ? "" : ", ") + std::string(k);
  return out;
}

Verb verb_of(const std::string& kind) {
  const std::string v = kind.substr(0, kind.find('_'));
  if (v == "send") return Verb::kSend;
  if (v == "read") return Verb::kRead;
  if (v == "atomic") return Verb::kAtomic;
  return Verb::kWrite;
}

bool is_lat(const std::string& kind) {
  return kind.size() > 4 && kind.compare(kind.size() - 4, 4, "_lat") == 0;
}
bool is_send(const std::string& kind) { return verb_of(kind) == Verb::kSend; }
bool is_mixed(const std::string& kind) { return kind == "mixed"; }
bool is_dma_bench(const std::string& kind) { return kind == "dma_bench"; }
bool ping_pong(const std::string& kind) {
  const Verb v = verb_of(kind);
  return is_lat(kind) && (v == Verb::kWrite || v == Verb::kSend);
}

bool has_qp_type(const std::string& kind) {
  const Verb v = verb_of(kind);
  return !is_mixed(kind) && (v == Verb::kWrite || v == Verb::kSend);
}

const char* to_string(AtomicType t) {
  return t == AtomicType::kCmpAndSwap ? "CMP_AND_SWAP" : "FETCH_AND_ADD";
}

uint64_t cq_entries(const WorkloadParams& p) {
  return uint64_t(p.qps) * std::max(p.tx_depth, p.rx_depth) * 2;
}
// WRITE and SEND latency tests send both ways; a WRITE or SEND bandwidth client only sends, its
// server only receives. A READ client receives what its server's buffer holds; an atomic's target
// and its returned values are both written by a NIC.
bool sends_from(const WorkloadParams& p, bool client) {
  switch (verb_of(p.kind)) {
    case Verb::kRead:
      return !client;
    case Verb::kAtomic:
      return false;
    default:
      return is_lat(p.kind) || client;
  }
}
bool receives_into(const WorkloadParams& p, bool client) {
  switch (verb_of(p.kind)) {
    case Verb::kRead:
      return client;
    case Verb::kAtomic:
      return true;
    default:
      return is_lat(p.kind) || !client;
  }
}
bool posts_sends(const WorkloadParams& p, bool client) { return client || ping_pong(p.kind); }
uint64_t src_bytes(const WorkloadParams& p) { return std::max<uint64_t>({p.size, p.region, 1}); }
// read_bw with a region: the slot of the server's source that READ i of QP q reads, and the seed
// of the pattern it holds. Without one: slot 0, the QP's pattern.
uint64_t read_slot(const WorkloadParams& p, uint32_t q, uint64_t i) {
  if (p.region <= p.size || p.size == 0) return 0;
  return mix64(mix64(p.pattern_seed) ^ (uint64_t(q) << 40) ^ i) % (p.region / p.size);
}
uint64_t slot_seed(const WorkloadParams& p, uint32_t q, uint64_t slot) {
  return seed_for(p, 1, q) + slot * 0x100000001B3ull;
}
uint64_t dst_bytes(const WorkloadParams& p, bool client) {
  if (verb_of(p.kind) != Verb::kAtomic) return std::max<uint64_t>(p.size + grh_bytes(p), 1);
  return client ? uint64_t(p.tx_depth) * kAtomicSize : kAtomicSize;
}
uint32_t mrs_per_qp(const WorkloadParams& p, bool client) {
  // mixed: the client's sources and destinations; the server's WRITE targets, receive buffers,
  // READ source and atomic target.
  if (is_mixed(p.kind)) return client ? 2 : 4;
  return (sends_from(p, client) ? 1 : 0) + (receives_into(p, client) ? 1 : 0);
}

uint64_t atomic_value(const WorkloadParams& p, uint32_t q, uint64_t i) {
  const bool cas = p.atomic_type == AtomicType::kCmpAndSwap;
  uint8_t b[kAtomicSize];
  hostmem::pattern_fill(b, sizeof b, seed_for(p, 1, q), cas ? i * kAtomicSize : 0);
  uint64_t v;
  std::memcpy(&v, b, sizeof v);  // host order, as the NIC reads and writes it
  return cas ? v : v + i * kAtomicAdd;
}

bool Perftest::setup(Side& s, bool is_client) {
  if (is_mixed(p_.kind)) return mixed_setup(s, is_client);
  drv::Driver& d = s.d;
  auto check = [&](int e, const char* what) { return driver_ok(s, e, what); };
  if (!setup_pd_and_cqs(s)) return false;
  s.src_len = src_bytes(p_);
  s.dst_len = dst_bytes(p_, is_client);
  const uint32_t lw = static_cast<uint32_t>(dev::Access::LOCAL_WRITE);
  // The buffer the peer's WQEs name (a READ server's source, else a destination), where this
  // side is their target: registered with the remote access they need.
  const uint32_t remote = is_client && !ping_pong_ ? 0 : remote_access(verb_);
  const bool need_src = sends_from(p_, is_client), need_dst = receives_into(p_, is_client);
  if (p_.use_srq && !is_client) {  // the server's QPs share one SRQ of rx_depth WQEs
    drv::SrqAttr sa;
    sa.max_wr = p_.rx_depth;
    sa.max_sge = std::max<uint32_t>(1, p_.sges);
    if (!check(d.create_srq(s.pdn, sa, &s.srq), "create_srq")) return false;
  }
  for (uint32_t i = 0; i < p_.qps; ++i) {
    drv::QpCap cap;
    cap.max_send_wr = p_.tx_depth;
    cap.max_recv_wr = p_.rx_depth;
    cap.max_send_sge = std::max<uint32_t>(1, p_.sges);
    cap.max_recv_sge = std::max<uint32_t>(1, p_.sges);
    cap.qp_type = p_.qp_type;

    cap.srq = s.srq;
    // As perftest's -I, as far as the device and driver offer inline data (none with a
    // version-1 driver).
    // A UD WQE's address (UdSeg) takes 32 bytes of the stride's inline room.
    if (sends_from(p_, is_client))
      cap.max_inline_data = std::min({p_.inline_size, d.caps().max_inline_data,
                                      p_.qp_type == dev::QpType::UD
                                          ? uint32_t(dev::kMaxSendInline - sizeof(dev::UdSeg))
                                          : uint32_t(dev::kMaxSendInline)});
    drv::Qp* qp = nullptr;
    if (!check(d.create_qp(s.pdn, s.scq, s.rcq, cap, false, &qp), "create_qp")) return false;
    s.qps.push_back(qp);
    s.src.push_back(0);
    s.dst.push_back(0);
    s.src_mr.emplace_back();
    s.dst_mr.emplace_back();
    if (need_src) {
      s.src[i] = s.h.alloc_buffer(s.src_len);
      if (p_.region > p_.size && p_.size > 0) {
        // Only the slots the READs will read are written: a region may be far larger than
        // memory the simulator could fill (64 GiB costs nothing until touched).
        for (uint64_t m = 0; m < p_.iterations; ++m) {
          const uint64_t slot = read_slot(p_, i, m);
          s.h.app_fill_pattern(s.src[i] + slot * p_.size, p_.size, slot_seed(p_, i, slot));
        }
      } else {
        s.h.app_fill_pattern(s.src[i], s.src_len, seed_for(p_, s.idx, i));
      }
      const uint32_t acc = lw | (verb_ == Verb::kRead ? remote : 0);
      if (!check(d.reg_mr(s.pdn, s.src[i], s.src_len, acc, &s.src_mr[i]), "reg_mr")) return false;
    }
    if (need_dst) {
      // Poison the destination and a guard zone after it with the complement of the expected
      // bytes: every byte the NIC must write has to change, and the guard must not. An atomic
      // target starts with the value its first atomic expects.
      s.dst[i] = s.h.alloc_buffer(s.dst_len + kGuard);
      poison(s.h, s.dst[i], s.dst_len + kGuard, seed_for(p_, 1 - s.idx, i));
      if (verb_ == Verb::kAtomic && !is_client) {
        const uint64_t v = atomic_value(p_, i, 0);
        s.h.app_write(s.dst[i], &v, sizeof v);
      }
      const uint32_t acc = lw | (verb_ == Verb::kRead ? 0 : remote);
      if (!check(d.reg_mr(s.pdn, s.dst[i], s.dst_len, acc, &s.dst_mr[i]), "reg_mr")) return false;
    }
    const bool src_named = verb_ == Verb::kRead;
    x_->info[s.idx].push_back(conn_info(qp->qpn, i, is_client,
                                        src_named ? s.src_mr[i].rkey : s.dst_mr[i].rkey,
                                        src_named ? s.src[i] : s.dst[i]));
  }
  return true;
}

bool Perftest::driver_ok(Side& s, int e, const char* what) {
  if (e)
    set_error(fmt::format("{}: {} failed: {} ({})", s.h.name(), what, std::strerror(e),
                          s.d.last_error()));
  return e == 0;
}

bool Perftest::setup_pd_and_cqs(Side& s) {
  if (!driver_ok(s, s.d.alloc_pd(&s.pdn), "alloc_pd")) return false;
  // System::validate keeps this within the driver's and the NIC's CQ sizes.
  const uint64_t cqe = cq_entries(p_);
  if (cqe > uint64_t(std::numeric_limits<int>::max())) {
    set_error(fmt::format("{}: a CQ of {} entries is too large", s.h.name(), cqe));
    return false;
  }
  return driver_ok(s, s.d.create_cq(static_cast<int>(cqe), &s.scq), "create_cq") &&
         driver_ok(s, s.d.create_cq(static_cast<int>(cqe), &s.rcq), "create_cq");
}

ConnInfo Perftest::conn_info(uint32_t qpn, uint32_t i, bool is_client, uint32_t rkey, uint64_t va) {
  return ConnInfo{qpn, (0x1000u * (i + 1) + (is_client ? 7u : 3u)) & 0xFFFFFF, rkey, va};
}

bool Perftest::connect(Side& s, bool is_client) {
  drv::Driver& d = s.d;
  Side& peer = is_client ? *s_ : *c_;
  const auto& mine = x_->info[s.idx];
  const auto& theirs = x_->info[1 - s.idx];
  dev::Mtu mtu = dev::Mtu::MTU_4096;
  for (int c = 1; c <= 5; ++c)
    if ((128u << c) == p_.mtu) mtu = static_cast<dev::Mtu>(c);
  if (p_.qp_type == dev::QpType::UD) return connect_ud(s, is_client);
  const bool uc = p_.qp_type == dev::QpType::UC;  // no rd_atomic limits, timeouts or retries
  for (uint32_t i = 0; i < p_.qps; ++i) {
    drv::QpAttr a;
    a.qp_state = dev::QpState::INIT;
    a.qp_access_flags = static_cast<uint32_t>(dev::Access::REMOTE_WRITE) |
                        static_cast<uint32_t>(dev::Access::LOCAL_WRITE) | remote_access(verb_);
    const bool mixed = is_mixed(p_.kind);  // every operation: every remote access
    if (mixed)
      a.qp_access_flags |= static_cast<uint32_t>(dev::Access::REMOTE_READ) |
                           static_cast<uint32_t>(dev::Access::REMOTE_ATOMIC);
    if (verb_ == Verb::kRead || verb_ == Verb::kAtomic || mixed)
      a.max_rd_atomic = a.max_dest_rd_atomic = kOutstandingReads;
    a.timeout = p_.timeout;
    a.retry_cnt = p_.retry_cnt;
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
                      m({A::STATE, A::AV, A::PATH_MTU, A::DEST_QPN, A::RQ_PSN}) |
                          (uc ? 0 : m({A::MAX_DEST_RD_ATOMIC, A::MIN_RNR_TIMER})));
    }
    if (!e) {
      a.qp_state = dev::QpState::RTS;
      a.sq_psn = mine[i].psn;
      e = d.modify_qp(
          s.qps[i], a,
          m({A::STATE, A::SQ_PSN}) |
              (uc ? 0 : m({A::TIMEOUT, A::RETRY_CNT, A::RNR_RETRY, A::MAX_QP_RD_ATOMIC})));
    }
    if (e) {
      set_error(fmt::format("{}: modify_qp failed: {}", s.h.name(), d.last_error()));
      return false;
    }
  }
  return true;
}

// UD: INIT with perftest's Q_Key, RTR, RTS; one address handle for the peer (each WQE carries
// the destination QP).
bool Perftest::connect_ud(Side& s, bool is_client) {
  drv::Driver& d = s.d;
  Side& peer = is_client ? *s_ : *c_;
  const auto& mine = x_->info[s.idx];
  using A = dev::QpAttr;
  for (uint32_t i = 0; i < p_.qps; ++i) {
    drv::QpAttr a;
    a.qp_state = dev::QpState::INIT;
    a.qkey = kUdQkey;
    int e = d.modify_qp(s.qps[i], a,
                        static_cast<uint32_t>(A::STATE) | static_cast<uint32_t>(A::PKEY_INDEX) |
                            static_cast<uint32_t>(A::PORT) | static_cast<uint32_t>(A::QKEY));
    a.qp_state = dev::QpState::RTR;
    if (!e) e = d.modify_qp(s.qps[i], a, static_cast<uint32_t>(A::STATE));
    a.qp_state = dev::QpState::RTS;
    a.sq_psn = mine[i].psn;
    if (!e)
      e = d.modify_qp(s.qps[i], a,
                      static_cast<uint32_t>(A::STATE) | static_cast<uint32_t>(A::SQ_PSN));
    if (e) {
      set_error(fmt::format("{}: modify_qp failed: {}", s.h.name(), d.last_error()));
      return false;
    }
  }
  drv::AddressVector av;
  av.dest_ipv4 = peer.ip;
  std::memcpy(av.dest_mac, peer.mac.data(), 6);
  if (int e = d.create_ah(s.pdn, av, &s.ah)) {
    set_error(
        fmt::format("{}: create_ah failed: {} ({})", s.h.name(), std::strerror(e), d.last_error()));
    return false;
  }
  return true;
}

void Perftest::teardown(Side& s) {
  if (m_) mixed_teardown(s);
  if (s.ah) s.d.destroy_ah(s.ah);
  s.ah = nullptr;
  for (auto* qp : s.qps) s.d.destroy_qp(qp);
  if (s.srq) s.d.destroy_srq(s.srq);
  for (auto& m : s.src_mr)
    if (m.length) s.d.dereg_mr(m);
  for (auto& m : s.dst_mr)
    if (m.length) s.d.dereg_mr(m);
  if (s.scq) s.d.destroy_cq(s.scq);
  if (s.rcq) s.d.destroy_cq(s.rcq);
  if (s.pdn) s.d.dealloc_pd(s.pdn);
  // The workload is over (its received bytes checked): its buffers go back before the next one.
  for (uint64_t va : s.src)
    if (va) s.h.free_buffer(va, s.src_len);
  for (uint64_t va : s.dst)
    if (va) s.h.free_buffer(va, s.dst_len + kGuard);
  s.src.clear();
  s.dst.clear();
}

bool Perftest::all_succeeded(Side& s, const drv::Wc* wc, int got) {
  for (int i = 0; i < got; ++i)
    if (wc[i].status != WcStatus::SUCCESS) {
      set_error(fmt::format("{}: completion wr_id {} on QP {} failed: {} (vendor_err {})",
                            s.h.name(), wc[i].wr_id, wc[i].qp_num, dev::to_string(wc[i].status),
                            wc[i].vendor_err));
      return false;
    }
  return true;
}

bool Perftest::wait_cq(Side& s, drv::Cq* cq, drv::Wc* wc, int n, int* got) {
  for (;;) {
    *got = s.d.poll_cq(cq, n, wc);
    if (*got > 0) {
      s.h.cpu(s.h.params().poll_cost);
      return all_succeeded(s, wc, *got);
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

bool Perftest::wait_arrivals(Side& s, drv::Wc* wc, int n, int* got) {
  // Datagrams still on their way when the client is done arrive within microseconds: a quiet
  // 100 us after it means the rest were lost. Before that, host.driver_timeout without any
  // arrival is an error, as in wait_cq.
  const Tick settle = 100 * kUs, step = 10 * kUs;
  Tick idle = 0;
  for (;;) {
    *got = s.d.poll_cq(s.rcq, n, wc);
    if (*got > 0) {
      s.h.cpu(s.h.params().poll_cost);
      return all_succeeded(s, wc, *got);
    }
    if (x_->failed) return false;
    const bool client_done = x_->stage[0] >= 3;
    if (client_done && idle >= settle) return true;
    if (!client_done && idle >= s.h.params().driver_timeout) {
      set_error(
          fmt::format("{}: no message arrived within {} ns (host.driver_timeout; {} "
                      "received so far)",
                      s.h.name(), ticks_to_ns(s.h.params().driver_timeout), s.rcq->ci));
      return false;
    }
    const uint64_t slot = s.rcq->ring + uint64_t(s.rcq->ci & (s.rcq->size - 1)) * sizeof(dev::Cqe);
    if (s.h.wait_write(slot, sizeof(dev::Cqe), step))
      idle = 0;
    else
      idle += step;
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
    if (is_mixed(p_.kind)) {
      client_mixed();  // checks as it goes
    } else if (lat_) {
      client_lat();
    } else {
      client_bw();
    }
    if (receives_into(p_, true) && res_.ok && p_.verify && !m_) check_received(*c_);
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
    if (m_) {
      server_mixed();
    } else if (ping_pong_) {
      if (sync(1, 2)) server_lat();
    } else {
      server_bw();  // READ and atomic tests, latency too: nothing to do but wait
    }
    if (sync(1, 3) && res_.ok && p_.verify) {
      if (m_)
        mixed_final_checks(*s_);
      else
        check_received(*s_);
    }
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
  if (res_.error.empty() && p_.verify &&
      (!s_->checked || (receives_into(p_, true) && !c_->checked)))
    res_.error = "the run stopped before the received bytes were checked";
  if (!res_.error.empty()) res_.ok = false;
  return res_.ok;
}

// In the side's thread, once its last message has arrived: every DMA write in flight lands, then
// each received buffer must hold the peer's pattern (an atomic target: the value its last atomic
// left), and its guard zone the poison. (An atomic client's returned values were checked as they
// completed: check_returned.)
void Perftest::check_received(Side& s) {
  s.checked = true;
  const char* who = s.idx == 0 ? "client" : "server";
  const char* peer = s.idx == 0 ? "server" : "client";
  const bool atomic = verb_ == Verb::kAtomic;
  for (uint32_t q = 0; q < s.dst.size(); ++q) {
    if (!s.dst[q]) continue;
    const uint64_t seed = seed_for(p_, 1 - s.idx, q);  // of the poison, and of the data
    // read_bw with a region: the data is the last READ's slot.
    const uint64_t data_seed = p_.region > p_.size && verb_ == Verb::kRead
                                   ? slot_seed(p_, q, read_slot(p_, q, p_.iterations - 1))
                                   : seed;
    s.h.wait_writes_landed(s.dst[q], s.dst_len + kGuard);
    // Latency tests: the last byte carries the round-trip marker, not the pattern. UD: the
    // message is behind the 40-byte GRH area.
    uint64_t n = ping_pong_ ? (p_.size ? p_.size - 1 : 0) : p_.size;
    const uint64_t grh = grh_bytes(p_);
    if (atomic && s.idx == 1) {
      const uint64_t count = p_.iterations + (lat_ ? p_.warmup : 0);
      uint64_t v = 0;
      s.h.app_read(s.dst[q], &v, sizeof v);
      if (v != atomic_value(p_, q, count)) {
        res_.ok = false;
        if (res_.error.empty())
          res_.error =
              fmt::format("server QP {}: the target holds {:#x} after {} {}s, expected {:#x}", q, v,
                          count, to_string(p_.atomic_type), atomic_value(p_, q, count));
        return;
      }
      n = kAtomicSize;
    } else if (atomic) {
      n = 0;
    } else if (auto bad = s.h.app_check_pattern(s.dst[q] + grh, n, data_seed)) {
      res_.ok = false;
      if (res_.error.empty())
        res_.error = fmt::format("{} QP {}: received byte {} of {} differs from the {}'s data", who,
                                 q, *bad, p_.size, peer);
      return;
    }
    const uint64_t end = atomic ? s.dst_len : grh + p_.size;
    if (auto g = poison_changed(s.h, s.dst[q], end, s.dst_len + kGuard, seed)) {
      res_.ok = false;
      if (res_.error.empty())
        res_.error = fmt::format("{} QP {}: byte {} past the end of the {}-byte {} was overwritten",
                                 who, q, *g, end, atomic ? "buffer" : "message");
      return;
    }
    res_.verified_bytes += n;
  }
}

void Perftest::make_wr(uint32_t q, uint64_t i, drv::SendWr* wr, drv::Sge* sg) const {
  const Side& s = *c_;
  const ConnInfo& peer = x_->info[1][q];
  wr->wr_id = (uint64_t(q) << 40) | i;
  wr->opcode = op_;
  wr->sg_list = sg;
  wr->remote_addr = peer.addr + (verb_ == Verb::kRead ? read_slot(p_, q, i) * p_.size : 0);
  wr->rkey = peer.rkey;
  wr->ah = s.ah;  // UD
  wr->remote_qpn = peer.qpn;
  wr->remote_qkey = kUdQkey;
  switch (verb_) {
    case Verb::kRead:  // into the destination
      wr->num_sge = make_sges(s.dst[q], p_.size, s.dst_mr[q].lkey, p_.sges, sg);
      break;
    case Verb::kAtomic: {  // the value returned goes to slot i of the ring of tx_depth
      const uint64_t slot = i % (s.dst_len / kAtomicSize);
      sg[0] = drv::Sge{s.dst[q] + slot * kAtomicSize, kAtomicSize, s.dst_mr[q].lkey};
      wr->num_sge = 1;
      if (p_.atomic_type == AtomicType::kCmpAndSwap) {
        wr->compare_add = atomic_value(p_, q, i);
        wr->swap = atomic_value(p_, q, i + 1);
      } else {
        wr->compare_add = kAtomicAdd;
      }
      break;
    }
    default:  // WRITE, SEND: from the source
      wr->num_sge = make_sges(s.src[q], p_.size, s.src_mr[q].lkey, p_.sges, sg);
      wr->imm_data = static_cast<uint32_t>(0xA5000000u | (i & 0xFFFFFF));
      break;
  }
}

bool Perftest::check_returned(uint32_t q, uint64_t from, uint64_t to) {
  if (!p_.verify) return true;
  Side& s = *c_;
  const uint64_t slots = s.dst_len / kAtomicSize;
  for (uint64_t i = from; i < to; ++i) {
    uint64_t v = 0;
    s.h.app_read(s.dst[q] + (i % slots) * kAtomicSize, &v, sizeof v);
    const uint64_t want = atomic_value(p_, q, i);
    if (v != want) {
      set_error(fmt::format("client QP {}: {} number {} returned {:#x}, expected {:#x}", q,
                            to_string(p_.atomic_type), i, v, want));
      return false;
    }
    res_.verified_bytes += kAtomicSize;
  }
  return true;
}

void Perftest::client_bw() {
  Side& s = *c_;
  const uint32_t nq = p_.qps;
  std::vector<uint64_t> posted(nq, 0), completed(nq, 0);
  const uint64_t total = p_.iterations * nq;
  uint64_t done = 0;
  std::vector<drv::Wc> wc(64);
  drv::Sge sg[32];
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
        make_wr(q, posted[q], &wr, sg);
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
      if (verb_ == Verb::kAtomic && !check_returned(q, completed[q], n)) return;
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
  const bool send = verb_ == Verb::kSend;
  const bool recv_needed = send || (verb_ == Verb::kWrite && p_.imm);
  const uint32_t nq = p_.qps;
  drv::Sge sg[32];
  auto post_recv = [&](uint32_t q, uint64_t id) {
    drv::RecvWr wr;
    wr.wr_id = (uint64_t(q) << 40) | id;
    wr.num_sge = make_sges(s.dst[q], p_.size + grh_bytes(p_), s.dst_mr[q].lkey, p_.sges, sg);
    wr.sg_list = sg;
    const drv::RecvWr* bad = nullptr;
    return s.d.post_recv(s.qps[q], &wr, &bad);
  };
  // With an SRQ: receive number id goes to the buffer of QP id mod qps (any QP may take it), and
  // a QP's messages are counted by the qp_num of their completions.
  const uint64_t srq_total = p_.iterations * nq;
  uint64_t srq_posted = 0;
  auto post_srq = [&]() {
    const uint64_t id = srq_posted++;
    const uint32_t b = static_cast<uint32_t>(id % nq);
    drv::RecvWr wr;
    wr.wr_id = (uint64_t(nq) << 40) | id;  // q = nq: not a QP's own receive
    wr.num_sge = make_sges(s.dst[b], p_.size + grh_bytes(p_), s.dst_mr[b].lkey, p_.sges, sg);
    wr.sg_list = sg;
    const drv::RecvWr* bad = nullptr;
    return s.d.post_srq_recv(s.srq, &wr, &bad);
  };
  std::unordered_map<uint32_t, uint32_t> qp_index;  // QPN -> QP (with an SRQ)
  for (uint32_t q = 0; q < nq; ++q) qp_index[s.qps[q]->qpn] = q;
  // UC and UD: what the link (or a shortage of receive WQEs) loses is lost; the server counts
  // what arrives until the client has sent everything and nothing more comes.
  const bool unreliable = p_.qp_type != dev::QpType::RC;
  std::vector<uint64_t> posted(nq, 0), got_msgs(nq, 0);
  if (recv_needed && s.srq) {
    for (uint32_t k = 0; k < p_.rx_depth && srq_posted < srq_total; ++k)
      if (post_srq()) {
        set_error(fmt::format("server: post_srq_recv failed: {}", s.d.last_error()));
        return;
      }
  } else if (recv_needed) {
    for (uint32_t q = 0; q < nq; ++q)
      for (uint32_t k = 0; k < p_.rx_depth && posted[q] < p_.iterations; ++k)
        if (post_recv(q, posted[q]++)) {
          set_error(fmt::format("server: post_recv failed: {}", s.d.last_error()));
          return;
        }
  }
  if (!sync(me, 2)) return;
  if (unreliable && !recv_needed) {
    // A UC WRITE completes when sent, not when placed: before the buffer is checked, the last
    // packets on their way arrive (they take microseconds; what the link lost is lost).
    while (x_->stage[0] < 3 && !x_->failed) sc_core::wait(x_->ev);
    s.h.cpu(100 * kUs);
  }
  if (recv_needed) {
    std::vector<drv::Wc> wc(64);
    uint64_t total = p_.iterations * nq, done = 0;
    while (done < total) {
      int got = 0;
      if (unreliable) {
        if (!wait_arrivals(s, wc.data(), static_cast<int>(wc.size()), &got)) return;
        if (got == 0) break;  // the client is done and nothing more came: the rest was lost
      } else if (!wait_cq(s, s.rcq, wc.data(), static_cast<int>(wc.size()), &got)) {
        return;
      }
      for (int i = 0; i < got; ++i) {
        const drv::Wc& w = wc[i];
        uint32_t q = static_cast<uint32_t>(w.wr_id >> 40);
        if (s.srq) {  // the WQE was the SRQ's: the QP is the one that took it
          const auto it = qp_index.find(w.qp_num);
          q = q == nq && it != qp_index.end() ? it->second : nq;
        }
        uint64_t expected_len = p_.size + grh_bytes(p_);
        dev::WcOpcode want = send ? dev::WcOpcode::RECV : dev::WcOpcode::RECV_RDMA_WITH_IMM;
        std::string bad;
        if (q >= nq)
          bad = "unknown wr_id";
        else if (w.opcode != want)
          bad = fmt::format("opcode {}", dev::to_string(w.opcode));
        else if (w.byte_len != expected_len)
          bad = fmt::format("byte_len {}", w.byte_len);
        else if (p_.imm && !unreliable &&
                 (!(w.wc_flags & drv::kWcWithImm) ||
                  w.imm_data != (0xA5000000u | (got_msgs[q] & 0xFFFFFF))))
          bad = fmt::format("imm {:#x} (expected {:#x})", w.imm_data,
                            0xA5000000u | (got_msgs[q] & 0xFFFFFF));
        else if (!p_.imm && (w.wc_flags & drv::kWcWithImm))
          bad = "unexpected immediate";
        else if (p_.qp_type == dev::QpType::UD &&
                 (!(w.wc_flags & drv::kWcGrh) || w.src_qp != x_->info[0][q].qpn))
          bad = fmt::format("UD: wc_flags {} src_qp {} (expected GRH and {})", w.wc_flags, w.src_qp,
                            x_->info[0][q].qpn);
        else if (unreliable && p_.imm &&
                 (!(w.wc_flags & drv::kWcWithImm) || (w.imm_data >> 24) != 0xA5 ||
                  ((w.imm_data - got_msgs[q]) & 0xFFFFFF) >= 0x800000))
          bad = fmt::format("imm {:#x}: not a message at or after number {}", w.imm_data,
                            got_msgs[q]);
        if (!bad.empty()) {
          set_error(fmt::format("server: bad receive completion (QP {}, message {}): {}", w.qp_num,
                                q < nq ? got_msgs[q] : 0, bad));
          return;
        }
        // UC and UD: a lost message leaves its number out; the next one's immediate says which.
        if (unreliable && p_.imm) got_msgs[q] = (w.imm_data & 0xFFFFFF);
        ++got_msgs[q];
        ++done;
        ++res_.completions;
        ++res_.receives;
        if (s.srq) {
          if (got_msgs[q] > p_.iterations) {
            set_error(fmt::format("server: QP {} received more than its {} messages", w.qp_num,
                                  p_.iterations));
            return;
          }
          if (srq_posted < srq_total && post_srq()) {
            set_error(fmt::format("server: post_srq_recv failed: {}", s.d.last_error()));
            return;
          }
        } else if (posted[q] < p_.iterations) {
          if (post_recv(q, posted[q]++)) {
            set_error(fmt::format("server: post_recv failed: {}", s.d.last_error()));
            return;
          }
        }
      }
    }
    if (unreliable && done == 0)
      set_error(fmt::format("server: none of the {} {} messages arrived", total,
                            dev::to_string(p_.qp_type)));
  }
}

// WRITE and SEND latency: a ping-pong. The client writes (or sends) to the server, which answers
// as soon as it sees the message; one-way latency = round trip / 2, as perftest reports it.
bool Perftest::lat_post_recv(Side& s, uint64_t id) {
  drv::Sge sg[32];
  drv::RecvWr wr;
  wr.wr_id = id;
  wr.num_sge = make_sges(s.dst[0], p_.size + grh_bytes(p_), s.dst_mr[0].lkey, p_.sges, sg);
  wr.sg_list = sg;
  const drv::RecvWr* bad = nullptr;
  if (s.d.post_recv(s.qps[0], &wr, &bad) == 0) return true;
  set_error(s.h.name() + ": post_recv failed: " + s.d.last_error());
  return false;
}

bool Perftest::lat_send(Side& s, uint64_t i, const ConnInfo& peer) {
  const bool send = verb_ == Verb::kSend;
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
  wr.ah = s.ah;  // UD
  wr.remote_qpn = peer.qpn;
  wr.remote_qkey = kUdQkey;
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
  if (verb_ == Verb::kSend) {
    drv::Wc wc[1];
    int got = 0;
    if (!wait_cq(s, s.rcq, wc, 1, &got)) return false;
    if (wc[0].byte_len != p_.size + grh_bytes(p_)) {
      set_error(fmt::format("{}: received {} bytes, expected {}", s.h.name(), wc[0].byte_len,
                            p_.size + grh_bytes(p_)));
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

// WRITE and SEND: a ping-pong (above). READ and atomics: one request at a time, from before its
// WQE is written until its completion is polled: the whole round trip, as perftest reports it.
void Perftest::client_lat() {
  Side& s = *c_;
  drv::Wc wc[16];
  const uint64_t n = p_.warmup + p_.iterations;
  uint64_t recv_posted = 0;
  res_.latency_samples.reserve(std::min(p_.keep_samples, p_.iterations));
  if (verb_ == Verb::kSend && !lat_post_recv(s, recv_posted++)) return;
  progress_.total = n;
  traffic_begin();
  for (uint64_t i = 0; i < n; ++i) {
    progress_.done = i;
    Tick t0 = s.h.now();
    int got = 0;
    if (ping_pong_) {
      if (!lat_send(s, i, x_->info[1][0]) || !lat_await(s, i, n, &recv_posted)) return;
    } else {
      drv::Sge sg[32];
      drv::SendWr wr;
      make_wr(0, i, &wr, sg);
      wr.send_flags = drv::kSendSignaled;
      s.h.cpu(s.h.params().wqe_write_cost);
      const drv::SendWr* bad = nullptr;
      if (s.d.post_send(s.qps[0], &wr, &bad)) {
        set_error("client: post_send failed: " + s.d.last_error());
        return;
      }
      if (!wait_cq(s, s.scq, wc, 1, &got)) return;
    }
    Tick t1 = s.h.now();
    const Tick sample = ping_pong_ ? (t1 - t0) / 2 : t1 - t0;
    if (i >= p_.warmup) {
      res_.latency.add(sample);
      if (res_.latency_samples.size() < p_.keep_samples) res_.latency_samples.push_back(sample);
    }
    if (ping_pong_) {
      // Reap our send completion (it arrived before the answer could).
      if (!wait_cq(s, s.scq, wc, 16, &got)) return;
    } else if (verb_ == Verb::kAtomic && !check_returned(0, i, i + 1)) {
      return;
    }
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
  if (verb_ == Verb::kSend && !lat_post_recv(s, recv_posted++)) return;
  for (uint64_t i = 0; i < n; ++i) {
    if (!lat_await(s, i, n, &recv_posted) || !lat_send(s, i, x_->info[0][0])) return;
    int got = 0;
    if (!wait_cq(s, s.scq, wc, 16, &got)) return;
  }
}

}  // namespace rn::host
