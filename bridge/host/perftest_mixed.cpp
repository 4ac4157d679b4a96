// The `mixed` workload: seeded random operations (WRITE, WRITE with immediate, SEND, SEND with
// immediate, READ, FETCH_AND_ADD, CMP_AND_SWAP) and sizes over several QPs, with every byte,
// every atomic value and every completion checked. See bridge/host/README.md.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <numeric>
#include <optional>

#include "bridge/host/perftest.h"
#include "bridge/host/perftest_internal.h"

namespace rn::host {

namespace {
constexpr uint64_t kWrIdShift = 40;  // wr_id = QP << 40 | message (or receive) number
constexpr uint64_t kWrIdMask = (1ull << kWrIdShift) - 1;

// The draws of the workload: stream `what` of QP q, item i.
uint64_t draw(const WorkloadParams& p, uint64_t what, uint32_t q, uint64_t i) {
  return mix64(mix64(mix64(p.seed) ^ what) ^ (uint64_t(q) << kWrIdShift) ^ i);
}
// Pattern seeds: message i's data (WRITE, SEND), QP q's READ source, its atomic target's first
// value, message i's immediate.
uint64_t msg_seed(const WorkloadParams& p, uint32_t q, uint64_t i) { return draw(p, 1, q, i); }
uint64_t read_seed(const WorkloadParams& p, uint32_t q) { return draw(p, 2, q, 0); }
uint64_t atomic_start(const WorkloadParams& p, uint32_t q) { return draw(p, 3, q, 0); }
uint32_t msg_imm(const WorkloadParams& p, uint32_t q, uint64_t i) {
  return static_cast<uint32_t>(draw(p, 4, q, i));
}

bool is_atomic(MixedOp op) { return op == MixedOp::kFetchAdd || op == MixedOp::kCmpSwap; }
bool is_write(MixedOp op) { return op == MixedOp::kWrite || op == MixedOp::kWriteImm; }
bool is_send_op(MixedOp op) { return op == MixedOp::kSend || op == MixedOp::kSendImm; }
bool has_imm(MixedOp op) { return op == MixedOp::kWriteImm || op == MixedOp::kSendImm; }
const char* name(MixedOp op) { return kMixedOpNames[static_cast<size_t>(op)]; }

dev::WrOpcode wr_opcode(MixedOp op) {
  switch (op) {
    case MixedOp::kWrite:
      return dev::WrOpcode::RDMA_WRITE;
    case MixedOp::kWriteImm:
      return dev::WrOpcode::RDMA_WRITE_WITH_IMM;
    case MixedOp::kSend:
      return dev::WrOpcode::SEND;
    case MixedOp::kSendImm:
      return dev::WrOpcode::SEND_WITH_IMM;
    case MixedOp::kRead:
      return dev::WrOpcode::RDMA_READ;
    case MixedOp::kFetchAdd:
      return dev::WrOpcode::ATOMIC_FETCH_AND_ADD;
    case MixedOp::kCmpSwap:
      break;
  }
  return dev::WrOpcode::ATOMIC_CMP_AND_SWP;
}

dev::WcOpcode wc_opcode(MixedOp op) {
  if (is_write(op)) return dev::WcOpcode::RDMA_WRITE;
  if (is_send_op(op)) return dev::WcOpcode::SEND;
  if (op == MixedOp::kRead) return dev::WcOpcode::RDMA_READ;
  return op == MixedOp::kFetchAdd ? dev::WcOpcode::FETCH_ADD : dev::WcOpcode::COMP_SWAP;
}

constexpr uint64_t kChunk = 4096;

// Writes pattern(seed) from pattern offset `base` (or its complement: the poison) to [va, va+len).
void fill(SimHost& h, uint64_t va, uint64_t len, uint64_t seed, uint64_t base, bool complement) {
  uint8_t b[kChunk];
  for (uint64_t off = 0; off < len; off += kChunk) {
    const uint64_t n = std::min(kChunk, len - off);
    hostmem::pattern_fill(b, n, seed, base + off);
    if (complement)
      for (uint64_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(~b[i]);
    h.app_write(va + off, b, n);
  }
}

// The first byte of [va, va+len) that differs from what fill() would have written, if any.
std::optional<uint64_t> differs(SimHost& h, uint64_t va, uint64_t len, uint64_t seed, uint64_t base,
                                bool complement) {
  uint8_t b[kChunk], want[kChunk];
  for (uint64_t off = 0; off < len; off += kChunk) {
    const uint64_t n = std::min(kChunk, len - off);
    h.app_read(va + off, b, n);
    hostmem::pattern_fill(want, n, seed, base + off);
    if (complement)
      for (uint64_t i = 0; i < n; ++i) want[i] = static_cast<uint8_t>(~want[i]);
    if (std::memcmp(b, want, n) != 0)
      for (uint64_t i = 0; i < n; ++i)
        if (b[i] != want[i]) return off + i;
  }
  return std::nullopt;
}
}  // namespace

bool consumes_recv(MixedOp op) { return is_send_op(op) || op == MixedOp::kWriteImm; }

std::string parse_mixed_ops(const std::string& text, MixedWeights* out) {
  MixedWeights w{};
  bool named[kMixedOps] = {};
  size_t pos = 0;
  auto trim = [](std::string x) {
    while (!x.empty() && x.front() == ' ') x.erase(x.begin());
    while (!x.empty() && x.back() == ' ') x.pop_back();
    return x;
  };
  std::string known;
  for (const char* n : kMixedOpNames) known += (known.empty() ? "" : ", ") + std::string(n);
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = trim(text.substr(pos, comma - pos));
    pos = comma + 1;
    if (item.empty()) continue;
    const size_t colon = item.find(':');
    const std::string op = trim(item.substr(0, colon));
    size_t k = 0;
    while (k < kMixedOps && op != kMixedOpNames[k]) ++k;
    if (k == kMixedOps) return fmt::format("unknown operation '{}' (known: {})", op, known);
    if (named[k]) return fmt::format("operation '{}' is listed twice", op);
    named[k] = true;
    uint64_t weight = 1;
    if (colon != std::string::npos) {
      const std::string v = trim(item.substr(colon + 1));
      if (v.empty() || v.size() > 7 || v.find_first_not_of("0123456789") != std::string::npos ||
          std::stoull(v) > kMaxMixedWeight)
        return fmt::format("the weight of '{}' must be an integer from 0 to {}, not '{}'", op,
                           kMaxMixedWeight, v);
      weight = std::stoull(v);
    }
    w[k] = static_cast<uint32_t>(weight);
  }
  if (std::accumulate(w.begin(), w.end(), uint64_t(0)) == 0)
    return fmt::format("no operation has a weight above 0: name at least one of {}", known);
  *out = w;
  return "";
}

std::string mixed_ops_text(const MixedWeights& w) {
  std::string out;
  for (size_t k = 0; k < kMixedOps; ++k)
    if (w[k]) out += fmt::format("{}{}:{}", out.empty() ? "" : ",", kMixedOpNames[k], w[k]);
  return out;
}

MixedMsg mixed_msg(const WorkloadParams& p, uint32_t q, uint64_t i) {
  const uint64_t h = draw(p, 0, q, i);
  const uint64_t a = mix64(h + 1), b = mix64(h + 2), c = mix64(h + 3);
  MixedMsg m{};
  const uint64_t total = std::accumulate(p.mix.begin(), p.mix.end(), uint64_t(0));
  uint64_t pick = total ? a % total : 0;
  size_t k = 0;
  while (k + 1 < kMixedOps && pick >= p.mix[k]) pick -= p.mix[k++];
  m.op = static_cast<MixedOp>(k);
  if (is_atomic(m.op)) {
    m.len = kAtomicSize;
  } else if (p.size > 0) {
    // len + 1 log-uniform over [1, size + 1]: as many messages of 1..2 bytes as of 32..64 KiB.
    const double u = static_cast<double>(b >> 11) * 0x1p-53;
    const double e = std::exp2(u * std::log2(static_cast<double>(p.size) + 1.0));
    m.len = std::min<uint64_t>(p.size, static_cast<uint64_t>(e) - 1);
  }
  if (m.op == MixedOp::kRead) m.offset = c % (p.size - m.len + 1);
  m.r = mix64(h + 4);
  m.cas_hit = (c & 3) != 0;  // 3 in 4 succeed
  return m;
}

bool Perftest::mixed_setup(Side& s, bool is_client) {
  Mixed& m = *m_;
  drv::Driver& d = s.d;
  auto check = [&](int e, const char* what) { return driver_ok(s, e, what); };
  if (!setup_pd_and_cqs(s)) return false;
  m.stride = (p_.size + kGuardBytes + 63) / 64 * 64;
  using A = dev::Access;
  const uint32_t lw = static_cast<uint32_t>(A::LOCAL_WRITE);
  // A buffer of `len` bytes (at least 1), registered over `mr_len` with `access`; poisoned with
  // the complement of pattern(seed) so that nothing matches what a message brings.
  auto buffer = [&](std::vector<Mixed::Buf>& v, uint64_t len, uint64_t mr_len, uint32_t access,
                    uint64_t seed) {
    Mixed::Buf b;
    b.len = std::max<uint64_t>(len, 1);
    b.va = s.h.alloc_buffer(b.len);
    fill(s.h, b.va, b.len, seed, 0, true);
    v.push_back(b);
    return check(d.reg_mr(s.pdn, v.back().va, std::max<uint64_t>(mr_len, 1), access, &v.back().mr),
                 "reg_mr");
  };
  for (uint32_t q = 0; q < p_.qps; ++q) {
    drv::QpCap cap;
    cap.max_send_wr = p_.tx_depth;
    cap.max_recv_wr = p_.rx_depth;
    drv::Qp* qp = nullptr;
    if (!check(d.create_qp(s.pdn, s.scq, s.rcq, cap, false, &qp), "create_qp")) return false;
    s.qps.push_back(qp);
    const uint64_t tx = uint64_t(p_.tx_depth) * m.stride;
    if (is_client) {
      if (!buffer(m.c_src, tx, tx, lw, q) || !buffer(m.c_dst, tx, tx, lw, q)) return false;
    } else {
      const uint64_t rx = uint64_t(p_.rx_depth) * m.stride;
      if (!buffer(m.s_write, tx, tx, lw | static_cast<uint32_t>(A::REMOTE_WRITE), q) ||
          !buffer(m.s_recv, rx, rx, lw, q) ||
          !buffer(m.s_read, p_.size, p_.size, lw | static_cast<uint32_t>(A::REMOTE_READ), q) ||
          !buffer(m.s_atomic, kAtomicSize + kGuardBytes, kAtomicSize,
                  lw | static_cast<uint32_t>(A::REMOTE_ATOMIC), q))
        return false;
      // The READ source holds its QP's pattern; the atomic target its first value.
      s.h.app_fill_pattern(m.s_read.back().va, p_.size, read_seed(p_, q));
      const uint64_t v = atomic_start(p_, q);
      s.h.app_write(m.s_atomic.back().va, &v, sizeof v);
    }
    // The peer finds this side's buffers in m_ (out of band, as perftest's exchange).
    x_->info[s.idx].push_back(conn_info(qp->qpn, q, is_client, 0, 0));
  }
  if (is_client) {
    m.atomic_now.resize(p_.qps);
    for (uint32_t q = 0; q < p_.qps; ++q) m.atomic_now[q] = atomic_start(p_, q);
    m.atomic_expect.assign(p_.qps, std::vector<uint64_t>(p_.tx_depth, 0));
  }
  return true;
}

void Perftest::mixed_teardown(Side& s) {
  Mixed& m = *m_;
  for (auto* v : s.idx == 0 ? std::vector<std::vector<Mixed::Buf>*>{&m.c_src, &m.c_dst}
                            : std::vector<std::vector<Mixed::Buf>*>{&m.s_write, &m.s_recv,
                                                                    &m.s_read, &m.s_atomic}) {
    for (const auto& b : *v) {
      if (b.mr.length) s.d.dereg_mr(b.mr);
      s.h.free_buffer(b.va, b.len);
    }
    v->clear();
  }
}

// Client: completion of message i of QP q (its WQE's completion, polled in order): the opcode,
// and what the message left where the client can see it now that it is complete.
bool Perftest::mixed_check_completion(const drv::Wc& wc, uint32_t q, uint64_t i) {
  Mixed& m = *m_;
  const MixedMsg msg = mixed_msg(p_, q, i);
  const uint64_t slot = i % p_.tx_depth, off = slot * m.stride;
  auto fail = [&](const std::string& what) {
    set_error(
        fmt::format("client QP {}: message {} ({}, {} B): {}", q, i, name(msg.op), msg.len, what));
    return false;
  };
  if (wc.opcode != wc_opcode(msg.op))
    return fail(fmt::format("completion opcode {}, expected {}", dev::to_string(wc.opcode),
                            dev::to_string(wc_opcode(msg.op))));
  if ((msg.op == MixedOp::kRead || is_atomic(msg.op)) && wc.byte_len != msg.len)
    return fail(fmt::format("completion byte_len {}", wc.byte_len));
  if (!p_.verify) return true;
  if (is_write(msg.op)) {
    // Checked in the server's memory (a scoreboard's view): the data, then the guard.
    SimHost& h = s_->h;
    const uint64_t va = m.s_write[q].va + off;
    h.wait_writes_landed(va, msg.len + kGuardBytes);
    const uint64_t seed = msg_seed(p_, q, i);
    if (auto bad = differs(h, va, msg.len, seed, 0, false))
      return fail(fmt::format("byte {} written to the server differs from the message's", *bad));
    if (auto bad = differs(h, va + msg.len, kGuardBytes, seed, msg.len, true))
      return fail(fmt::format("byte {} past the end of the message was overwritten at the server",
                              msg.len + *bad));
    res_.verified_bytes += msg.len;
  } else if (msg.op == MixedOp::kRead) {
    SimHost& h = c_->h;
    const uint64_t va = m.c_dst[q].va + off;
    h.wait_writes_landed(va, msg.len + kGuardBytes);
    const uint64_t seed = read_seed(p_, q);
    if (auto bad = differs(h, va, msg.len, seed, msg.offset, false))
      return fail(
          fmt::format("byte {} read differs from the server's byte {}", *bad, msg.offset + *bad));
    if (auto bad = differs(h, va + msg.len, kGuardBytes, seed, msg.offset + msg.len, true))
      return fail(fmt::format("byte {} past the end of the READ was overwritten", msg.len + *bad));
    res_.verified_bytes += msg.len;
  } else if (is_atomic(msg.op)) {
    SimHost& h = c_->h;
    const uint64_t va = m.c_dst[q].va + off;
    h.wait_writes_landed(va, kAtomicSize + kGuardBytes);
    uint64_t v = 0;
    h.app_read(va, &v, sizeof v);
    const uint64_t want = m.atomic_expect[q][slot];
    if (v != want) return fail(fmt::format("returned {:#x}, expected {:#x}", v, want));
    if (auto bad = differs(h, va + kAtomicSize, kGuardBytes, msg_seed(p_, q, i), 0, true))
      return fail(fmt::format("byte {} past the 8-byte value was overwritten", kAtomicSize + *bad));
    res_.verified_bytes += kAtomicSize;
  }
  return true;
}

void Perftest::client_mixed() {
  Side& s = *c_;
  Mixed& m = *m_;
  const uint32_t nq = p_.qps;
  std::vector<uint64_t> posted(nq, 0), completed(nq, 0);
  const uint64_t total = p_.iterations * nq;
  uint64_t done = 0;
  std::vector<drv::Wc> wc(64);
  std::vector<uint32_t> ready(nq);
  std::iota(ready.begin(), ready.end(), 0u);
  std::vector<uint8_t> queued(nq, 1);
  auto post = [&](uint32_t q) {
    const uint64_t i = posted[q];
    const MixedMsg msg = mixed_msg(p_, q, i);
    const uint64_t slot = i % p_.tx_depth, off = slot * m.stride;
    drv::SendWr wr;
    drv::Sge sg;
    wr.wr_id = (uint64_t(q) << kWrIdShift) | i;
    wr.opcode = wr_opcode(msg.op);
    wr.send_flags = drv::kSendSignaled;  // every WQE: each completion is checked
    wr.sg_list = &sg;
    wr.num_sge = 1;
    const uint64_t seed = msg_seed(p_, q, i);
    if (is_write(msg.op) || is_send_op(msg.op)) {
      // The message's own bytes into its source slot (free: its last message completed).
      fill(s.h, m.c_src[q].va + off, msg.len, seed, 0, false);
      sg = drv::Sge{m.c_src[q].va + off, static_cast<uint32_t>(msg.len), m.c_src[q].mr.lkey};
      if (has_imm(msg.op)) wr.imm_data = msg_imm(p_, q, i);
      if (is_write(msg.op)) {
        // The server's slot, poisoned against this message (the scoreboard's hand in its memory;
        // its last WRITE completed).
        const Mixed::Buf& t = m.s_write[q];
        if (p_.verify) fill(s_->h, t.va + off, msg.len + kGuardBytes, seed, 0, true);
        wr.remote_addr = t.va + off;
        wr.rkey = t.mr.rkey;
      }
    } else {
      const Mixed::Buf& d = m.c_dst[q];
      sg = drv::Sge{d.va + off, static_cast<uint32_t>(msg.len), d.mr.lkey};
      if (msg.op == MixedOp::kRead) {
        if (p_.verify)
          fill(s.h, d.va + off, msg.len + kGuardBytes, read_seed(p_, q), msg.offset, true);
        wr.remote_addr = m.s_read[q].va + msg.offset;
        wr.rkey = m.s_read[q].mr.rkey;
      } else {
        // The value the atomic must return, and what it leaves in the target.
        uint64_t& now = m.atomic_now[q];
        m.atomic_expect[q][slot] = now;
        const uint64_t poison = ~now;
        s.h.app_write(d.va + off, &poison, sizeof poison);
        if (p_.verify) fill(s.h, d.va + off + kAtomicSize, kGuardBytes, seed, 0, true);
        wr.remote_addr = m.s_atomic[q].va;
        wr.rkey = m.s_atomic[q].mr.rkey;
        if (msg.op == MixedOp::kFetchAdd) {
          wr.compare_add = msg.r;
          now += msg.r;
        } else {
          wr.compare_add = msg.cas_hit ? now : ~now;
          wr.swap = msg.r;
          if (msg.cas_hit) now = msg.r;
        }
      }
    }
    s.h.cpu(s.h.params().wqe_write_cost);
    const drv::SendWr* bad = nullptr;
    if (s.d.post_send(s.qps[q], &wr, &bad)) {
      set_error(fmt::format("client: post_send failed: {}", s.d.last_error()));
      return false;
    }
    const size_t k = static_cast<size_t>(msg.op);
    ++res_.op_messages[k];
    res_.op_bytes[k] += msg.len;
    res_.bytes += msg.len;
    ++posted[q];
    return true;
  };
  progress_.total = total;
  traffic_begin();
  while (done < total) {
    for (uint32_t q : ready) {
      queued[q] = 0;
      while (posted[q] < p_.iterations && posted[q] - completed[q] < p_.tx_depth)
        if (!post(q)) return;
    }
    ready.clear();
    int got = 0;
    if (!wait_cq(s, s.scq, wc.data(), static_cast<int>(wc.size()), &got)) return;
    for (int k = 0; k < got; ++k) {
      const uint32_t q = static_cast<uint32_t>(wc[k].wr_id >> kWrIdShift);
      const uint64_t i = wc[k].wr_id & kWrIdMask;
      // Completions come in order per QP, one per WQE (each is signaled): exactly the next one.
      std::string bad;
      if (q >= nq)
        bad = "names no QP of the workload";
      else if (wc[k].qp_num != s.qps[q]->qpn)
        bad = fmt::format("arrived on QP number {}, not {}", wc[k].qp_num, s.qps[q]->qpn);
      else if (i < completed[q])
        bad = fmt::format("completes QP {}'s message {} a second time", q, i);
      else if (i >= posted[q])
        bad = fmt::format("names QP {}'s message {}, never posted ({} posted)", q, i, posted[q]);
      else if (i > completed[q])
        bad = fmt::format("came before any completion of QP {}'s message {} (missing)", q,
                          completed[q]);
      if (!bad.empty()) {
        set_error(fmt::format("client: the completion of wr_id {:#x} {}", wc[k].wr_id, bad));
        return;
      }
      if (!mixed_check_completion(wc[k], q, i)) return;
      ++completed[q];
      ++done;
      ++res_.completions;
      ++m.client_completions;
      progress_.done = done;
      if (!queued[q] && posted[q] < p_.iterations) {
        queued[q] = 1;
        ready.push_back(q);
      }
    }
    std::sort(ready.begin(), ready.end());
  }
  traffic_end();
  // No completion may follow the last one: none of the client's CQs holds another.
  for (drv::Cq* cq : {s.scq, s.rcq}) {
    const int n = s.d.poll_cq(cq, static_cast<int>(wc.size()), wc.data());
    if (n > 0) {
      set_error(
          fmt::format("client: {} completion(s) after the last message's (the first: wr_id "
                      "{:#x}, status {})",
                      n, wc[0].wr_id, dev::to_string(wc[0].status)));
      return;
    }
  }
  res_.messages = total;
  const Tick dt = res_.end - res_.start;
  if (dt) {
    res_.goodput_gbps = static_cast<double>(res_.bytes) * 8.0 / static_cast<double>(dt) * 1e3;
    res_.msg_rate_mpps = static_cast<double>(res_.messages) / static_cast<double>(dt) * 1e6;
  }
  c_->checked = true;
  res_.ok = true;
}

// Server: keeps receives posted for the messages that consume one (SEND, SEND and WRITE with
// immediate), in the order they come, and checks each receive completion: its number (each
// receive completes once, in order), opcode, byte_len, immediate and the bytes received.
void Perftest::server_mixed() {
  Side& s = *s_;
  Mixed& m = *m_;
  const uint32_t nq = p_.qps;
  // Per QP: the next message to look at for one that consumes a receive; the messages of the
  // receives posted and not yet completed, oldest first; receives posted and completed.
  std::vector<uint64_t> cursor(nq, 0), posted(nq, 0), completed(nq, 0);
  std::vector<std::deque<uint64_t>> waiting(nq);
  uint64_t total = 0;
  for (uint32_t q = 0; q < nq; ++q)
    for (uint64_t i = 0; i < p_.iterations; ++i) total += consumes_recv(mixed_msg(p_, q, i).op);
  auto post_recv = [&](uint32_t q) {
    while (cursor[q] < p_.iterations && !consumes_recv(mixed_msg(p_, q, cursor[q]).op)) ++cursor[q];
    if (cursor[q] == p_.iterations) return true;
    const uint64_t i = cursor[q]++;
    const MixedMsg msg = mixed_msg(p_, q, i);
    const uint64_t r = posted[q]++;
    const uint64_t va = m.s_recv[q].va + (r % p_.rx_depth) * m.stride;
    // Poisoned against the message it will hold (a WRITE with immediate leaves it untouched).
    const uint64_t len = is_send_op(msg.op) ? msg.len : 0;
    if (p_.verify) fill(s.h, va, len + kGuardBytes, msg_seed(p_, q, i), 0, true);
    drv::Sge sg{va, static_cast<uint32_t>(p_.size), m.s_recv[q].mr.lkey};
    drv::RecvWr wr;
    wr.wr_id = (uint64_t(q) << kWrIdShift) | r;
    wr.sg_list = &sg;
    wr.num_sge = 1;
    const drv::RecvWr* bad = nullptr;
    if (s.d.post_recv(s.qps[q], &wr, &bad)) {
      set_error(fmt::format("server: post_recv failed: {}", s.d.last_error()));
      return false;
    }
    waiting[q].push_back(i);
    return true;
  };
  for (uint32_t q = 0; q < nq; ++q)
    for (uint32_t k = 0; k < p_.rx_depth; ++k)
      if (!post_recv(q)) return;
  if (!sync(1, 2)) return;
  std::vector<drv::Wc> wc(64);
  uint64_t done = 0;
  uint64_t progress = m.client_completions;
  while (done < total) {
    int got = s.d.poll_cq(s.rcq, static_cast<int>(wc.size()), wc.data());
    if (got == 0) {
      if (x_->failed) return;
      // Receives may be far apart (the client may run only READs and atomics for a while): the
      // run fails only when nothing at all completes within host.driver_timeout.
      const uint64_t slot =
          s.rcq->ring + uint64_t(s.rcq->ci & (s.rcq->size - 1)) * sizeof(dev::Cqe);
      if (!s.h.wait_write(slot, sizeof(dev::Cqe), s.h.params().driver_timeout)) {
        if (m.client_completions != progress) {
          progress = m.client_completions;
          continue;
        }
        if (!x_->failed)
          set_error(
              fmt::format("server: no receive completion within {} ns (host.driver_timeout; "
                          "{} of {} received) and no progress of the client",
                          ticks_to_ns(s.h.params().driver_timeout), done, total));
        return;
      }
      continue;
    }
    s.h.cpu(s.h.params().poll_cost);
    for (int k = 0; k < got; ++k) {
      const drv::Wc& w = wc[k];
      const uint32_t q = static_cast<uint32_t>(w.wr_id >> kWrIdShift);
      const uint64_t r = w.wr_id & kWrIdMask;
      std::string bad;
      if (w.status != dev::WcStatus::SUCCESS)
        bad = fmt::format("status {} (vendor_err {})", dev::to_string(w.status), w.vendor_err);
      else if (q >= nq)
        bad = "names no QP of the workload";
      else if (w.qp_num != s.qps[q]->qpn)
        bad = fmt::format("arrived on QP number {}, not {}", w.qp_num, s.qps[q]->qpn);
      else if (r < completed[q])
        bad = fmt::format("completes QP {}'s receive {} a second time", q, r);
      else if (r >= posted[q])
        bad = fmt::format("names QP {}'s receive {}, never posted", q, r);
      else if (r > completed[q])
        bad = fmt::format("came before any completion of QP {}'s receive {} (missing)", q,
                          completed[q]);
      if (!bad.empty()) {
        set_error(fmt::format("server: the receive completion of wr_id {:#x} {}", w.wr_id, bad));
        return;
      }
      const uint64_t i = waiting[q].front();
      const MixedMsg msg = mixed_msg(p_, q, i);
      const dev::WcOpcode want =
          is_send_op(msg.op) ? dev::WcOpcode::RECV : dev::WcOpcode::RECV_RDMA_WITH_IMM;
      const bool imm = (w.wc_flags & drv::kWcWithImm) != 0;
      if (w.opcode != want)
        bad = fmt::format("opcode {}, expected {}", dev::to_string(w.opcode), dev::to_string(want));
      else if (w.byte_len != msg.len)
        bad = fmt::format("byte_len {}", w.byte_len);
      else if (has_imm(msg.op) && (!imm || w.imm_data != msg_imm(p_, q, i)))
        bad = fmt::format("immediate {}, expected {:#x}",
                          imm ? fmt::format("{:#x}", w.imm_data) : std::string("none"),
                          msg_imm(p_, q, i));
      else if (!has_imm(msg.op) && imm)
        bad = fmt::format("an immediate ({:#x}) on a plain SEND", w.imm_data);
      if (bad.empty() && p_.verify) {
        const uint64_t va = m.s_recv[q].va + (r % p_.rx_depth) * m.stride;
        const uint64_t len = is_send_op(msg.op) ? msg.len : 0;
        s.h.wait_writes_landed(va, len + kGuardBytes);
        const uint64_t seed = msg_seed(p_, q, i);
        if (auto b = differs(s.h, va, len, seed, 0, false))
          bad = fmt::format("received byte {} differs from the message's", *b);
        else if (auto g = differs(s.h, va + len, kGuardBytes, seed, len, true))
          bad = fmt::format("byte {} of the receive buffer past the message was overwritten",
                            len + *g);
        else
          res_.verified_bytes += len;
      }
      if (!bad.empty()) {
        set_error(fmt::format("server QP {}: receive {} (message {}: {}, {} B): {}", q, r, i,
                              name(msg.op), msg.len, bad));
        return;
      }
      waiting[q].pop_front();
      ++completed[q];
      ++done;
      ++res_.receives;
      if (!post_recv(q)) return;
    }
  }
}

// Server, once the client's traffic is complete: no completion beyond those expected, and each
// QP's atomic target holds what its atomics left, its guard untouched.
void Perftest::mixed_final_checks(Side& s) {
  Mixed& m = *m_;
  s.checked = true;
  std::vector<drv::Wc> wc(16);
  for (drv::Cq* cq : {s.scq, s.rcq}) {
    const int n = s.d.poll_cq(cq, static_cast<int>(wc.size()), wc.data());
    if (n > 0) {
      res_.ok = false;
      if (res_.error.empty())
        res_.error = fmt::format(
            "server: {} completion(s) more than expected (the first: wr_id {:#x}, opcode {})", n,
            wc[0].wr_id, dev::to_string(wc[0].opcode));
      return;
    }
  }
  for (uint32_t q = 0; q < p_.qps; ++q) {
    const uint64_t va = m.s_atomic[q].va;
    s.h.wait_writes_landed(va, kAtomicSize + kGuardBytes);
    uint64_t v = 0;
    s.h.app_read(va, &v, sizeof v);
    std::string bad;
    if (v != m.atomic_now[q])
      bad = fmt::format("the atomic target holds {:#x} at the end, expected {:#x}", v,
                        m.atomic_now[q]);
    else if (auto g = differs(s.h, va + kAtomicSize, kGuardBytes, q, kAtomicSize, true))
      bad = fmt::format("byte {} past the atomic target was overwritten", kAtomicSize + *g);
    if (!bad.empty()) {
      res_.ok = false;
      if (res_.error.empty()) res_.error = fmt::format("server QP {}: {}", q, bad);
      return;
    }
    res_.verified_bytes += kAtomicSize;
  }
}

}  // namespace rn::host
