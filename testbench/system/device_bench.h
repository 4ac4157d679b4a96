// A two-host bench for device-interface tests: each host's driver, a PD, CQs, a QP and a
// registered buffer per side, helpers to connect, post, poll and compare memory. Failures found
// inside the simulation are collected and asserted after it (REQUIRE inside an SC_THREAD would
// throw through the kernel).
#pragma once
#include <fmt/core.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "testbench/system/harness.h"

namespace rn::test {

using dev::WcOpcode;
using dev::WcStatus;
using dev::WrOpcode;

inline constexpr uint32_t kLW = static_cast<uint32_t>(dev::Access::LOCAL_WRITE);
inline constexpr uint32_t kRW = static_cast<uint32_t>(dev::Access::REMOTE_WRITE);
inline constexpr uint32_t kRR = static_cast<uint32_t>(dev::Access::REMOTE_READ);
inline constexpr uint32_t kRA = static_cast<uint32_t>(dev::Access::REMOTE_ATOMIC);

// The value of statistic `name` of group `group` in a run's stats JSON.
inline uint64_t stat(const nlohmann::json& st, const std::string& group, const std::string& name) {
  return st.at(group).at(name).at("value").get<uint64_t>();
}

inline uint32_t mask(std::initializer_list<dev::QpAttr> l) {
  uint32_t v = 0;
  for (auto a : l) v |= static_cast<uint32_t>(a);
  return v;
}

struct Peer {
  system::Node* n = nullptr;
  drv::Driver* d = nullptr;
  host::SimHost* h = nullptr;
  uint32_t pdn = 0;
  drv::Cq* scq = nullptr;
  drv::Cq* rcq = nullptr;
  drv::Qp* qp = nullptr;
  uint64_t buf = 0;
  uint64_t len = 0;
  drv::Mr mr;
  drv::Ah* ah = nullptr;  // UD: the address handle of the peer (connect())
};

// Commands written by hand, as a driver that is not ours would: the block anywhere in physical
// memory (even at its top), read back from the memory model itself.
struct RawCommands {
  Peer& p;
  uint32_t token = 0x100;
  // The command block the device uses now (the driver's, unless set_block changed it).
  uint64_t block() {
    return p.h->mmio_read32(dev::reg::CMD_ADDR_LO) |
           uint64_t(p.h->mmio_read32(dev::reg::CMD_ADDR_HI)) << 32;
  }
  // CREATE_MR's arguments for a region of n 4 KiB pages at iova, its page list at `list`.
  static dev::CreateMrIn mr_args(uint32_t pdn, uint32_t access, uint64_t iova, uint32_t n,
                                 uint64_t list) {
    dev::CreateMrIn in{};
    in.pdn = pdn;
    in.access = access;
    in.iova = iova;
    in.length = uint64_t(n) * 4096;
    in.mtt_addr = list;
    in.n_pages = n;
    in.page_shift = 12;
    return in;
  }
  void set_block(uint64_t blk) {
    p.h->mmio_write32(dev::reg::CMD_ADDR_LO, static_cast<uint32_t>(blk));
    p.h->mmio_write32(dev::reg::CMD_ADDR_HI, static_cast<uint32_t>(blk >> 32));
  }
  // Bytes at bus address addr: through the host's IOMMU, if it has one (an unmapped IOVA is
  // skipped), else physical.
  template <typename F>
  void each_piece(uint64_t addr, size_t len, F&& f) {
    p.n->bridge->sync();
    for (size_t done = 0; done < len;) {
      const uint64_t a = addr + done;
      uint64_t pa = a, span = len - done;
      const bool mapped = !p.n->iommu || p.n->iommu->lookup(a, &pa, &span);
      if (!mapped) span = 4096 - (a & 4095);
      const size_t n = static_cast<size_t>(std::min<uint64_t>(span, len - done));
      if (mapped) f(pa, done, n);
      done += n;
    }
  }
  void poke(uint64_t addr, const void* src, size_t len) {
    each_piece(addr, len, [&](uint64_t pa, size_t off, size_t n) {
      p.n->mem->write(pa, static_cast<const uint8_t*>(src) + off, n);
    });
  }
  void peek(uint64_t addr, void* dst, size_t len) {
    each_piece(addr, len, [&](uint64_t pa, size_t off, size_t n) {
      p.n->mem->read(pa, static_cast<uint8_t*>(dst) + off, n);
    });
  }
  // Runs one command in the block at blk; returns its output (token 0 if it never completed).
  template <typename In>
  dev::CmdOut run(uint64_t blk, dev::CmdOp op, const In& args) {
    dev::CmdIn in{};
    in.opcode = static_cast<uint16_t>(op);
    static_assert(sizeof args <= sizeof in.args);
    std::memcpy(in.args, &args, sizeof args);
    dev::CmdOut out{};
    poke(blk, &in, sizeof in);
    poke(blk + sizeof in, &out, sizeof out);
    set_block(blk);
    p.h->mmio_write32(dev::reg::CMD_DOORBELL, ++token);
    for (int i = 0; i < 100 && out.token != token; ++i) {
      p.h->cpu(1 * kUs);
      peek(blk + sizeof in, &out, sizeof out);
    }
    if (out.token != token) out = dev::CmdOut{};
    return out;
  }
};

// Everything a test body sees: two peers, connected or not.
struct Bench {
  std::unique_ptr<cfg::Config> cfg;
  std::unique_ptr<system::System> sys;
  Peer a, b;
  std::vector<std::string> failures;  // collected inside the simulation, asserted after it
  std::string out;                    // where the run writes stats.json and wire.pcap ("": none)
  // The attributes connect() gives both QPs besides state, address, QPN and PSNs: change before
  // setup() (timeout, retry_cnt, rnr_retry, min_rnr_timer, path_mtu ...).
  drv::QpAttr attr;
  dev::QpType qp_type = dev::QpType::RC;  // of the QPs create() makes (RC, UC or UD)
  // UD: the Q_Key connect() gives both QPs, and the one post() puts in each WR (a test may make
  // them differ, or set bit 31: the sending QP's own).
  uint32_t qkey = 0x11111111;
  uint32_t wr_qkey = 0x11111111;
  uint32_t start_psn = 100;  // both QPs' first PSN (connect())
  // The inline payload create() asks each QP to take (QpCap::max_inline_data): change before
  // setup().
  uint32_t max_inline_data = 0;

  explicit Bench(std::vector<std::string> sets = {}, std::string out_dir = "")
      : out(std::move(out_dir)) {
    sets.push_back(out.empty() ? "capture.pcap=false" : "capture.max_packets=0");
    cfg = test::make_config(sets);
    sys = test::make_system(*cfg);
    for (int i = 0; i < 2; ++i) {
      Peer& p = i ? b : a;
      p.n = &sys->node(i);
      p.d = p.n->driver.get();
      p.h = p.n->host.get();
    }
  }
  void expect(bool cond, const std::string& what) {
    if (!cond) failures.push_back(what);
  }
  // Opens both drivers and creates PD, CQs, a QP and a 64 KiB buffer on each side.
  bool setup(uint32_t qp_access = kLW | kRW, uint32_t mr_access = kLW | kRW, uint32_t depth = 16,
             uint32_t sges = 2, uint64_t buf_len = 65536) {
    return create(mr_access, depth, sges, buf_len) && connect(a, b, qp_access) &&
           connect(b, a, qp_access);
  }
  // The objects of setup() on both sides, the QPs left in RESET.
  bool create(uint32_t mr_access = kLW | kRW, uint32_t depth = 16, uint32_t sges = 2,
              uint64_t buf_len = 65536) {
    for (Peer* p : {&a, &b}) {
      if (p->d->open() || p->d->alloc_pd(&p->pdn) || p->d->create_cq(64, &p->scq) ||
          p->d->create_cq(64, &p->rcq)) {
        failures.push_back("setup: " + p->d->last_error());
        return false;
      }
      drv::QpCap cap;
      cap.max_send_wr = depth;
      cap.max_recv_wr = depth;
      cap.max_send_sge = std::min<uint32_t>(sges, 30);
      cap.max_recv_sge = sges;
      cap.qp_type = qp_type;
      cap.max_inline_data = max_inline_data;
      if (p->d->create_qp(p->pdn, p->scq, p->rcq, cap, false, &p->qp)) {
        failures.push_back("create_qp: " + p->d->last_error());
        return false;
      }
      p->len = buf_len;
      p->buf = p->h->alloc_buffer(p->len);
      std::vector<uint8_t> poison(p->len, 0xEE);
      p->h->app_write(p->buf, poison.data(), p->len);
      if (p->d->reg_mr(p->pdn, p->buf, p->len, mr_access, &p->mr)) {
        failures.push_back("reg_mr: " + p->d->last_error());
        return false;
      }
    }
    return true;
  }
  bool connect(Peer& me, Peer& peer, uint32_t access) {
    if (qp_type == dev::QpType::UD) return connect_ud(me, peer);
    drv::QpAttr at = attr;
    at.qp_state = dev::QpState::INIT;
    at.qp_access_flags = access;
    using A = dev::QpAttr;
    int e = me.d->modify_qp(me.qp, at, mask({A::STATE, A::PKEY_INDEX, A::PORT, A::ACCESS_FLAGS}));
    at.qp_state = dev::QpState::RTR;
    at.dest_qp_num = peer.qp->qpn;
    at.rq_psn = start_psn;
    at.ah.dest_ipv4 = peer.n->ipv4;
    std::memcpy(at.ah.dest_mac, peer.n->mac.data(), 6);
    // UC has no rd_atomic limits, timeouts or retries.
    const bool uc = qp_type == dev::QpType::UC;
    if (!e)
      e = me.d->modify_qp(me.qp, at,
                          mask({A::STATE, A::AV, A::PATH_MTU, A::DEST_QPN, A::RQ_PSN}) |
                              (uc ? 0 : mask({A::MAX_DEST_RD_ATOMIC, A::MIN_RNR_TIMER})));
    at.qp_state = dev::QpState::RTS;
    at.sq_psn = start_psn;
    if (!e)
      e = me.d->modify_qp(
          me.qp, at,
          mask({A::STATE, A::SQ_PSN}) |
              (uc ? 0 : mask({A::TIMEOUT, A::RETRY_CNT, A::RNR_RETRY, A::MAX_QP_RD_ATOMIC})));
    if (e) failures.push_back("connect: " + me.d->last_error());
    return e == 0;
  }
  // UD: RESET -> INIT (P_Key index, port, Q_Key) -> RTR -> RTS (SQ PSN), and an address handle
  // for the peer.
  bool connect_ud(Peer& me, Peer& peer) {
    using A = dev::QpAttr;
    drv::QpAttr at = attr;
    at.qp_state = dev::QpState::INIT;
    at.qkey = qkey;
    int e = me.d->modify_qp(me.qp, at, mask({A::STATE, A::PKEY_INDEX, A::PORT, A::QKEY}));
    at.qp_state = dev::QpState::RTR;
    if (!e) e = me.d->modify_qp(me.qp, at, mask({A::STATE}));
    at.qp_state = dev::QpState::RTS;
    at.sq_psn = start_psn;
    if (!e) e = me.d->modify_qp(me.qp, at, mask({A::STATE, A::SQ_PSN}));
    drv::AddressVector av;
    av.dest_ipv4 = peer.n->ipv4;
    std::memcpy(av.dest_mac, peer.n->mac.data(), 6);
    if (!e) e = me.d->create_ah(me.pdn, av, &me.ah);
    if (e) failures.push_back("connect_ud: " + me.d->last_error());
    return e == 0;
  }
  // Polls until n completions arrive or nothing comes for 1 ms of simulated time.
  std::vector<drv::Wc> poll(Peer& p, drv::Cq* cq, size_t n) {
    std::vector<drv::Wc> out;
    drv::Wc wc[16];
    while (out.size() < n) {
      int got = p.d->poll_cq(cq, 16, wc);
      for (int i = 0; i < got; ++i) out.push_back(wc[i]);
      if (got == 0) {
        uint64_t slot = cq->ring + uint64_t(cq->ci & (cq->size - 1)) * sizeof(dev::Cqe);
        if (!p.h->wait_write(slot, sizeof(dev::Cqe), 1 * kMs)) break;
      }
    }
    return out;
  }
  int post(Peer& p, WrOpcode op, uint64_t wr_id, uint64_t off, uint32_t len, uint32_t flags,
           uint32_t imm = 0, int64_t rkey_delta = 0, uint64_t remote_off = 0, uint32_t lkey = 0) {
    Peer& peer = (&p == &a) ? b : a;
    drv::Sge sg{p.buf + off, len, lkey ? lkey : p.mr.lkey};
    drv::SendWr wr;
    wr.wr_id = wr_id;
    wr.sg_list = &sg;
    wr.num_sge = 1;
    wr.opcode = op;
    wr.send_flags = flags;
    wr.imm_data = imm;
    wr.remote_addr = peer.buf + remote_off;
    wr.rkey = static_cast<uint32_t>(peer.mr.rkey + rkey_delta);
    wr.ah = p.ah;  // UD
    wr.remote_qpn = peer.qp->qpn;
    wr.remote_qkey = wr_qkey;
    const drv::SendWr* bad = nullptr;
    return p.d->post_send(p.qp, &wr, &bad);
  }
  // An inline WRITE or SEND from p of the bytes in its buffer at off (the SGE's lkey is 0: an
  // inline payload needs none), gathered from `pieces` SGEs.
  int post_inline(Peer& p, WrOpcode op, uint64_t wr_id, uint64_t off, uint32_t len,
                  uint32_t flags = drv::kSendSignaled, uint32_t imm = 0, uint64_t remote_off = 0,
                  int pieces = 1) {
    Peer& peer = (&p == &a) ? b : a;
    drv::Sge sg[4];
    const uint32_t piece = len / static_cast<uint32_t>(pieces);
    for (int i = 0; i < pieces; ++i)
      sg[i] =
          drv::Sge{p.buf + off + uint64_t(piece) * i, i + 1 == pieces ? len - piece * i : piece, 0};
    drv::SendWr wr;
    wr.wr_id = wr_id;
    wr.sg_list = sg;
    wr.num_sge = pieces;
    wr.opcode = op;
    wr.send_flags = flags | drv::kSendInline;
    wr.imm_data = imm;
    wr.remote_addr = peer.buf + remote_off;
    wr.rkey = peer.mr.rkey;
    wr.ah = p.ah;  // UD
    wr.remote_qpn = peer.qp->qpn;
    wr.remote_qkey = wr_qkey;
    const drv::SendWr* bad = nullptr;
    return p.d->post_send(p.qp, &wr, &bad);
  }
  // An atomic from p: its 8-byte original value to p's buffer at `off`, on the peer's buffer at
  // remote_off (len: the local SGE's length, 8 unless a test wants it wrong).
  int atomic(Peer& p, WrOpcode op, uint64_t wr_id, uint64_t off, uint64_t remote_off,
             uint64_t compare_add, uint64_t swap = 0, uint32_t flags = drv::kSendSignaled,
             uint32_t len = 8, int64_t rkey_delta = 0) {
    Peer& peer = (&p == &a) ? b : a;
    drv::Sge sg{p.buf + off, len, p.mr.lkey};
    drv::SendWr wr;
    wr.wr_id = wr_id;
    wr.sg_list = &sg;
    wr.num_sge = 1;
    wr.opcode = op;
    wr.send_flags = flags;
    wr.remote_addr = peer.buf + remote_off;
    wr.rkey = static_cast<uint32_t>(peer.mr.rkey + rkey_delta);
    wr.compare_add = compare_add;
    wr.swap = swap;
    const drv::SendWr* bad = nullptr;
    return p.d->post_send(p.qp, &wr, &bad);
  }
  // The 8 bytes at p's buffer + off, in host order; and storing them.
  static uint64_t u64(Peer& p, uint64_t off) {
    uint64_t v = 0;
    p.h->app_read(p.buf + off, reinterpret_cast<uint8_t*>(&v), sizeof v);
    return v;
  }
  static void set_u64(Peer& p, uint64_t off, uint64_t v) {
    p.h->app_write(p.buf + off, reinterpret_cast<const uint8_t*>(&v), sizeof v);
  }
  int recv(Peer& p, uint64_t wr_id, uint64_t off, uint32_t len) {
    drv::Sge sg{p.buf + off, len, p.mr.lkey};
    drv::RecvWr wr;
    wr.wr_id = wr_id;
    wr.sg_list = &sg;
    wr.num_sge = 1;
    const drv::RecvWr* bad = nullptr;
    return p.d->post_recv(p.qp, &wr, &bad);
  }
  // len bytes of peer p's buffer from off.
  static std::vector<uint8_t> mem(Peer& p, uint64_t off, size_t len) {
    std::vector<uint8_t> v(len);
    p.h->app_read(p.buf + off, v.data(), len);
    return v;
  }
  bool untouched(Peer& p, uint64_t off, uint64_t len) {
    std::vector<uint8_t> v(len);
    p.h->app_read(p.buf + off, v.data(), len);
    for (uint8_t x : v)
      if (x != 0xEE) return false;
    return true;
  }
  void fill(Peer& p, uint64_t off, uint64_t len, uint64_t seed) {
    p.h->app_fill_pattern(p.buf + off, len, seed);
  }
  bool same(Peer& src, uint64_t soff, Peer& dst, uint64_t doff, uint64_t len) {
    std::vector<uint8_t> x(len), y(len);
    src.h->app_read(src.buf + soff, x.data(), len);
    dst.h->app_read(dst.buf + doff, y.data(), len);
    return x == y;
  }
  // Sends a hand-built packet (its transport header h and payload; pad filled in here, and the
  // destination QP: `to`'s, unless h names one) from peer `from`'s NIC to peer `to`'s QP, now,
  // framed as `from`'s NIC frames its own packets (its QP's address vector). The P_Key is h's
  // (TransportHeader's default, 0xFFFF, unless a test sets another).
  void inject(Peer& from, Peer& to, wire::TransportHeader h, const std::vector<uint8_t>& payload) {
    nic::Nic& n = *from.n->nic;
    const qp::QpCtx* q = n.table().qp(from.qp->qpn);
    net::Frame* f = n.port().new_frame();
    if (h.dest_qp == 0) h.dest_qp = to.qp->qpn;
    h.pad_cnt = wire::pad_for(payload.size());
    uint8_t* tp = f->data + n.port().headroom();
    size_t hl = wire::encode_transport_header(h, tp);
    if (!payload.empty()) std::memcpy(tp + hl, payload.data(), payload.size());
    std::memset(tp + hl + payload.size(), 0, h.pad_cnt);
    wire::PathInfo path = q->path;
    if (path.dst_ip == 0) {  // a UD QP's path has no destination: the peer's
      path.dst_ip = to.n->ipv4;
      path.dst_mac = to.n->mac;
    }
    n.port().send_control(f, hl + payload.size() + h.pad_cnt, path, n.env().now());
  }
  // A statistic's value now, during the run.
  uint64_t stat_now(const std::string& group, const std::string& name) {
    return stat(sys->sim().stats.to_json(), group, name);
  }
  nlohmann::json stats;  // of the last run
  void run(std::function<void()> body) {
    auto r = sys->run_custom(std::move(body), nullptr, out);
    if (!r.ok) failures.push_back("run: " + r.error);
    stats = r.json["stats"];
  }
  void report() {
    for (const auto& f : failures) FAIL_CHECK(f);
    CHECK(failures.empty());
  }
};

inline std::string wc_str(const drv::Wc& w) {
  return fmt::format("wr_id {} op {} status {} len {} imm {:#x} flags {} qp {} src {}", w.wr_id,
                     dev::to_string(w.opcode), dev::to_string(w.status), w.byte_len, w.imm_data,
                     w.wc_flags, w.qp_num, w.src_qp);
}

}  // namespace rn::test
