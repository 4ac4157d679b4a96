#include "bridge/host/trace_replay.h"

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <numeric>
#include <set>
#include <unordered_map>

#include "model/core/stats.h"

namespace rn::host {

using trace::Json;

namespace {

uint64_t u(const Json& r, const char* k, uint64_t def = 0) {
  auto it = r.find(k);
  return it == r.end() ? def : it->get<uint64_t>();
}
std::string str(const Json& r, const char* k) {
  auto it = r.find(k);
  return it == r.end() || !it->is_string() ? "" : it->get<std::string>();
}

// Calls the peer waits for (cross_order): they make what the peer's later calls rely on.
bool is_setup(const std::string& call) {
  return call == "open_device" || call == "alloc_pd" || call == "reg_mr" || call == "create_cq" ||
         call == "create_qp" || call == "modify_qp" || call == "create_srq" ||
         call == "modify_srq" || call == "create_ah" || call == "post_recv" ||
         call == "post_srq_recv" || call == "create_comp_channel";
}

// Calls that wait for all the peer did before them (cross order): the end of a connection,
// which real programs agree on out of band (perftest's closing handshake) as they do its start.
bool is_teardown(const std::string& call) {
  return call == "destroy_qp" || call == "dereg_mr" || call == "destroy_cq" ||
         call == "dealloc_pd" || call == "destroy_srq" || call == "destroy_ah" ||
         call == "close_device";
}

bool is_recv_opcode(const std::string& op) { return op == "RECV" || op == "RECV_RDMA_WITH_IMM"; }

dev::Mtu mtu_of(uint64_t bytes) {
  switch (bytes) {
    case 256:
      return dev::Mtu::MTU_256;
    case 512:
      return dev::Mtu::MTU_512;
    case 1024:
      return dev::Mtu::MTU_1024;
    case 2048:
      return dev::Mtu::MTU_2048;
    default:
      return dev::Mtu::MTU_4096;
  }
}

constexpr size_t kMaxNotes = 10;

// A completion by its recorded QP number and wr_id; a recorded completion.
using WcKey = std::pair<uint32_t, uint64_t>;
struct RecWc {
  uint64_t record;
  std::string status, op;
  uint64_t len;
};

// Compares the model's completion w with the recorded rw, counting and noting a difference.
void compare_wc(ReplaySideResult& res, const RecWc& rw, const WcKey& key, const drv::Wc& w) {
  const char* st = trace::wc_status_name(static_cast<uint32_t>(w.status));
  const char* op = trace::wc_opcode_name(static_cast<uint32_t>(w.opcode));
  // A failed completion's opcode and length are undefined (verbs): compare them on success.
  // byte_len is defined for receives, READs and atomics only (mlx5 leaves it 0 for SENDs and
  // WRITEs): compare it for those.
  const bool has_len = (static_cast<uint32_t>(w.opcode) & 0x80) ||
                       w.opcode == dev::WcOpcode::RDMA_READ ||
                       w.opcode == dev::WcOpcode::COMP_SWAP || w.opcode == dev::WcOpcode::FETCH_ADD;
  const bool same = rw.status == st && (w.status != dev::WcStatus::SUCCESS ||
                                        (rw.op == op && (!has_len || rw.len == w.byte_len)));
  if (same) return;
  ++res.completion_mismatches;
  if (res.notes.size() < kMaxNotes)
    res.notes.push_back(fmt::format(
        "record {}: completion of QP {}, wr_id {}: recorded {} {} {} B, model {} {} {} B",
        rw.record, key.first, key.second, rw.status, rw.op, rw.len, st, op, w.byte_len));
}

// The oldest entry of `key` in m (equal keys keep their insertion order), or m.end().
template <typename M>
typename M::iterator oldest(M& m, const WcKey& key) {
  auto it = m.lower_bound(key);
  return it != m.end() && it->first == key ? it : m.end();
}

}  // namespace

ReplayTrace load_trace(const std::string& path) {
  ReplayTrace t;
  t.file = path;
  trace::Reader rd(path);
  trace::Validator v(path);
  Json r;
  // Per kind of object: live now; per QP: sig_all and its signaled WRs not yet completed.
  std::map<std::string, uint64_t> live;
  std::unordered_map<uint32_t, std::pair<bool, std::deque<size_t>>> qps;
  std::unordered_map<size_t, uint64_t> posted;  // op -> the post's recorded entry
  auto peak = [&](const char* key, uint64_t value, uint64_t recno, const std::string& field,
                  const char* what) {
    ReplayTrace::Peak& p = t.peaks[key];
    if (value > p.value) p = ReplayTrace::Peak{value, recno, field, what};
  };
  auto unsupported = [&](uint64_t recno, const std::string& field, const std::string& what) {
    if (t.unsupported.empty())
      t.unsupported = fmt::format("{}: record {}: field '{}': {}", path, recno, field, what);
  };
  while (rd.next(&r)) {
    const uint64_t recno = rd.record();
    v.check(r, recno);
    const size_t i = recno - 1;
    const std::string call = str(r, "call");
    t.t.push_back(u(r, "t"));
    t.d.push_back(u(r, "d"));
    const bool ok = call == "poll_cq" ? r.value("ret", int64_t{-1}) >= 0 : u(r, "ret", 1) == 0;
    t.kind.push_back(ok && is_setup(call)      ? ReplayTrace::kSetup
                     : ok && is_teardown(call) ? ReplayTrace::kTeardown
                                               : ReplayTrace::kOther);
    if (i == 0) t.header = r;
    if (call == "trace" || call == "end" || !ok) continue;
    auto count = [&](const char* kind, int delta, const char* key, const char* field,
                     const char* what) {
      uint64_t& n = live[kind];
      n = delta > 0 ? n + 1 : n - std::min<uint64_t>(n, 1);
      if (delta > 0) peak(key, n, recno, field, what);
    };
    if (call == "open_device") {
      // One trace, one simulated host with one NIC.
      if (++live["dev"] > 1)
        unsupported(recno, "dev",
                    "a second device open at once: replay runs one trace on one simulated host "
                    "with one NIC (a program using two devices cannot be replayed)");
    } else if (call == "close_device") {
      live["dev"] -= std::min<uint64_t>(live["dev"], 1);
    } else if (call == "create_qp") {
      const std::string type = str(r, "type");
      if (type != "RC" && type != "UC" && type != "UD")
        unsupported(recno, "type", type + " QPs are not modelled (RC, UC and UD are)");
      count("qp", 1, "nic.max_qps", "qp", "QPs at once");
      peak("nic.max_qp_wr", u(r, "max_send_wr"), recno, "max_send_wr", "WRs in a queue");
      if (!r.contains("srq"))
        peak("nic.max_qp_wr", u(r, "max_recv_wr"), recno, "max_recv_wr", "WRs in a queue");
      peak("send_sge", u(r, "max_send_sge"), recno, "max_send_sge", "SGEs in a send WQE");
      peak("recv_sge", u(r, "max_recv_sge"), recno, "max_recv_sge", "SGEs in a receive WQE");
      t.qpns.insert(static_cast<uint32_t>(u(r, "qp")));
      qps[static_cast<uint32_t>(u(r, "qp"))] = {u(r, "sig_all") == 1, {}};
    } else if (call == "destroy_qp") {
      count("qp", -1, "", "", "");
    } else if (call == "create_cq") {
      count("cq", 1, "nic.max_cqs", "cq", "CQs at once");
      peak("nic.max_cqe", u(r, "cqe"), recno, "cqe", "entries in a CQ");
    } else if (call == "destroy_cq") {
      count("cq", -1, "", "", "");
    } else if (call == "alloc_pd") {
      count("pd", 1, "nic.max_pds", "pd", "PDs at once");
    } else if (call == "dealloc_pd") {
      count("pd", -1, "", "", "");
    } else if (call == "reg_mr") {
      count("mr", 1, "nic.max_mrs", "mr", "memory regions at once");
      peak("nic.max_mr_size", u(r, "len"), recno, "len", "bytes in one region");
      t.rkeys.insert(static_cast<uint32_t>(u(r, "rkey")));
    } else if (call == "dereg_mr") {
      count("mr", -1, "", "", "");
    } else if (call == "create_srq") {
      count("srq", 1, "nic.max_srqs", "srq", "SRQs at once");
      peak("nic.max_qp_wr", u(r, "max_wr"), recno, "max_wr", "WRs in a queue");
    } else if (call == "destroy_srq") {
      count("srq", -1, "", "", "");
    } else if (call == "post_send") {
      auto& q = qps[static_cast<uint32_t>(u(r, "qp"))];
      const Json& wrs = r["wr"];
      for (uint32_t k = 0; k < wrs.size(); ++k) {
        const Json& w = wrs[k];
        const int op = trace::wr_opcode_value(str(w, "op"));
        if (op < 0 || op > static_cast<int>(dev::WrOpcode::ATOMIC_FETCH_AND_ADD))
          unsupported(recno, fmt::format("wr[{}].op", k),
                      str(w, "op") +
                          " is not modelled (SEND, SEND_IMM, WRITE, WRITE_IMM, READ, "
                          "CMP_SWP and FETCH_ADD are)");
        if (!q.first && !(u(w, "flags") & drv::kSendSignaled)) continue;
        ReplayOp o;
        o.record = recno;
        o.wr = k;
        o.qp = static_cast<uint32_t>(u(r, "qp"));
        o.wr_id = u(w, "id");
        o.op = str(w, "op");
        for (const auto& e : w["sge"]) o.bytes += e[2].get<uint64_t>();
        posted[t.ops.size()] = u(r, "t");
        t.op_of[{i, k}] = t.ops.size();
        q.second.push_back(t.ops.size());
        t.ops.push_back(o);
      }
    } else if (call == "poll_cq") {
      // The recorded half of each op: send completions matched to the signaled WRs of their QP
      // (in order, by wr_id), as the model's will be.
      const uint64_t when = u(r, "t") + u(r, "d");
      for (const auto& w : r["wc"]) {
        if (is_recv_opcode(str(w, "op"))) continue;
        auto it = qps.find(static_cast<uint32_t>(u(w, "qp")));
        if (it == qps.end()) continue;
        auto& pend = it->second.second;
        auto m = std::find_if(pend.begin(), pend.end(),
                              [&](size_t x) { return t.ops[x].wr_id == u(w, "id"); });
        if (m == pend.end()) continue;
        ReplayOp& o = t.ops[*m];
        o.rec_status = str(w, "status");
        o.rec_ns = static_cast<int64_t>(when - posted[*m]);
        pend.erase(pend.begin(), m + 1);
      }
    }
  }
  t.truncation = rd.truncation();
  if (!v.finish(rd.record())) {
    t.truncated = true;
    if (t.truncation.empty())
      t.truncation = fmt::format("no end record after record {}", rd.record());
  }
  return t;
}

std::string parse_timing(const std::string& s, ReplayOptions* o) {
  if (s == "recorded") {
    o->timing = ReplayTiming::kRecorded;
    o->scale = 1;
    return "";
  }
  if (s == "asap") {
    o->timing = ReplayTiming::kAsap;
    return "";
  }
  if (s.rfind("scale:", 0) == 0) {
    try {
      size_t used = 0;
      double k = std::stod(s.substr(6), &used);
      if (used == s.size() - 6 && k > 0 && k <= 1e6) {
        o->timing = ReplayTiming::kScaled;
        o->scale = k;
        return "";
      }
    } catch (const std::exception&) {
    }
    return fmt::format("--timing '{}': the factor after scale: must be a number > 0 and <= 1e6", s);
  }
  return fmt::format("--timing '{}': give recorded, asap or scale:K (gaps times K)", s);
}

struct TraceReplay::Side {
  int index = 0;
  std::string name;
  ReplayHost h;
  ReplayTrace tr;
  struct Mr {
    uint64_t rec_base = 0;  // the recorded address remote offsets count from (iova, else addr)
    uint64_t len = 0;
    uint64_t buf = 0, buf_len = 0;  // the simulated buffer
    uint64_t va = 0;                // the region's simulated address
    drv::Mr mr;
    uint32_t rec_rkey = 0;
    // [from, to) offsets the NIC wrote with bytes the traces hold (received SENDs, the peer's
    // WRITEs): the ranges compared with the recording at dereg_mr.
    std::vector<std::pair<uint64_t, uint64_t>> written;
  };
  std::unordered_map<uint64_t, uint32_t> pd;
  std::unordered_map<uint64_t, Mr> mr;
  std::unordered_map<uint32_t, uint64_t> mr_by_rkey;  // recorded rkey -> live mr id
  // Receive WRs posted, by queue (recorded QP number, or SRQ id | 1 << 32) and wr_id, oldest
  // first: their SGEs (mr id, offset, length), for the ranges a receive completion wrote.
  std::multimap<std::pair<uint64_t, uint64_t>, std::vector<std::array<uint64_t, 3>>> recvs;
  std::unordered_map<const drv::Srq*, uint64_t> srq_id;
  std::unordered_map<uint64_t, drv::Cq*> cq;
  struct Qp {
    drv::Qp* q = nullptr;
    bool sig_all = false;
    bool inline_ok = true;
    std::deque<size_t> pending;  // signaled send WRs posted, not yet completed: op indices
  };
  std::unordered_map<uint32_t, Qp> qp;             // by recorded QP number
  std::unordered_map<uint32_t, uint32_t> rec_qpn;  // simulated QP number -> recorded
  std::unordered_map<uint64_t, drv::Srq*> srq;
  std::unordered_map<uint64_t, drv::Ah*> ah;
  size_t next = 1;      // the next record to replay (its index: 0 is the header)
  bool in_gap = false;  // waiting out a recorded gap
  bool done = false;
  sc_core::sc_event progress;
  std::vector<size_t> need_peer;  // per record: the peer's `next` it waits for
  ReplaySideResult res;
  Tick last_return = 0;
  std::string waiting;  // what it waits for now
  std::unique_ptr<stats::Group> stats;
  // Completions polled in the recording and in the model, not yet paired (by recorded QP and
  // wr_id, oldest first).
  std::multimap<WcKey, RecWc> rec_wcs;
  std::multimap<WcKey, drv::Wc> model_wcs;
};

TraceReplay::TraceReplay(Sim& sim, std::vector<ReplayHost> hosts, std::vector<ReplayTrace> traces,
                         const ReplayOptions& o)
    : sim_(sim), o_(o) {
  for (size_t i = 0; i < traces.size() && i < hosts.size(); ++i) {
    auto s = std::make_unique<Side>();
    s->index = static_cast<int>(i);
    s->name = hosts[i].host->name();
    s->h = hosts[i];
    s->tr = std::move(traces[i]);
    s->need_peer.assign(s->tr.records(), 0);
    Side& sr = *s;
    s->stats = std::make_unique<stats::Group>(sim.stats, s->name + ".replay",
                                              "verb trace replay: " + s->tr.file);
    auto add = [&](const char* n, const char* unit, const char* d, uint64_t ReplaySideResult::*f) {
      sr.stats->formula(n, unit, d, [&sr, f] { return static_cast<double>(sr.res.*f); });
    };
    add("records", "calls", "calls replayed", &ReplaySideResult::records);
    add("skipped", "calls", "calls that failed when recorded (not replayed)",
        &ReplaySideResult::skipped);
    add("send_wrs", "WRs", "send WRs posted", &ReplaySideResult::wrs);
    add("send_bytes", "bytes", "bytes of the send WRs posted", &ReplaySideResult::bytes);
    add("recv_wrs", "WRs", "receive WRs posted", &ReplaySideResult::recv_wrs);
    add("completions", "CQEs", "completions polled", &ReplaySideResult::completions);
    add("completion_mismatches", "CQEs",
        "completions whose status, opcode or byte count differ from the recording",
        &ReplaySideResult::completion_mismatches);
    add("memory_checks", "regions", "regions compared with the recording at dereg_mr",
        &ReplaySideResult::memory_checks);
    add("memory_mismatches", "regions", "regions whose bytes differ from the recording",
        &ReplaySideResult::memory_mismatches);
    add("unmapped_keys", "keys", "lkeys or rkeys that named no region of the replay",
        &ReplaySideResult::unmapped_keys);
    add("waits_for_peer", "calls", "calls that waited for the peer's setup (cross order)",
        &ReplaySideResult::waits_for_peer);
    sr.stats->formula("sim_time", "ns", "simulated time from the first call to the last", [&sr] {
      return sr.res.end > sr.res.start ? ticks_to_ns(sr.res.end - sr.res.start) : 0.0;
    });
    sides_.push_back(std::move(s));
  }
  // Cross order: record i of a side waits until the peer has replayed every setup call that
  // returned, by the recorded clocks, before record i was entered; a teardown call waits for
  // every call of the peer that returned before it.
  if (o_.cross_order && sides_.size() == 2) {
    for (int a = 0; a < 2; ++a) {
      Side& A = *sides_[a];
      const ReplayTrace& B = sides_[1 - a]->tr;
      const uint64_t ta = u(A.tr.header, "t0_real"), tb = u(B.header, "t0_real");
      // (aligned end, index + 1) of B's setup calls, and of all its calls, in order of their
      // end, each with the largest index + 1 up to there.
      struct Ends {
        std::vector<std::pair<uint64_t, size_t>> v;
        void finish() {
          std::sort(v.begin(), v.end());
          for (size_t k = 1; k < v.size(); ++k)
            v[k].second = std::max(v[k].second, v[k - 1].second);
        }
        size_t before(uint64_t t) const {  // B's `next` that covers every call ended before t
          auto it = std::lower_bound(v.begin(), v.end(), std::make_pair(t, size_t{0}));
          return it == v.begin() ? 0 : std::prev(it)->second;
        }
      } setup, all;
      for (size_t j = 1; j < B.records(); ++j) {
        all.v.emplace_back(tb + B.t[j] + B.d[j], j + 1);
        if (B.kind[j] == ReplayTrace::kSetup) setup.v.emplace_back(tb + B.t[j] + B.d[j], j + 1);
      }
      setup.finish();
      all.finish();
      for (size_t i = 1; i < A.tr.records(); ++i)
        A.need_peer[i] =
            (A.tr.kind[i] == ReplayTrace::kTeardown ? all : setup).before(ta + A.tr.t[i]);
    }
  }
  // Every side's ops in one list (the CSV's rows), each side's op_of moved along.
  for (auto& sp : sides_) {
    const size_t base = ops_.size();
    for (auto op : sp->tr.ops) {
      op.side = sp->index;
      ops_.push_back(op);
    }
    for (auto& [k, v] : sp->tr.op_of) v += base;
    sp->tr.ops.clear();
  }
  post_tick_.assign(ops_.size(), 0);
}

TraceReplay::~TraceReplay() = default;

const ReplaySideResult& TraceReplay::result(int i) const { return sides_.at(i)->res; }
const ReplayTrace& TraceReplay::trace(int i) const { return sides_.at(i)->tr; }

TraceReplay::Side* TraceReplay::peer(Side& s) {
  return sides_.size() == 2 ? sides_[1 - s.index].get() : nullptr;
}

std::string TraceReplay::check(const cfg::Config& c) const {
  for (const auto& sp : sides_) {
    const ReplayTrace& t = sp->tr;
    if (!t.unsupported.empty()) return t.unsupported;
    for (const auto& [key, p] : t.peaks) {
      uint64_t max;
      if (key == "send_sge")
        max = dev::kMaxSendSge;
      else if (key == "recv_sge")
        max = dev::kMaxRecvSge;
      else
        max = static_cast<uint64_t>(
            c.schema().find(key)->kind == cfg::Kind::kSize ? c.size(key) : c.integer(key));
      if (p.value <= max) continue;
      if (key == "send_sge" || key == "recv_sge")
        return fmt::format(
            "{}: record {}: field '{}': the trace asks for {} {}; the device's "
            "WQE holds {}",
            t.file, p.record, p.field, p.value, p.what, max);
      return fmt::format(
          "{}: record {}: field '{}': the trace asks for {} {}; the NIC has {} = {} (raise it "
          "with --set {}={})",
          t.file, p.record, p.field, p.value, p.what, key, max, key, p.value);
    }
  }
  return "";
}

void TraceReplay::fail(Side& s, uint64_t recno, const std::string& field, const std::string& what) {
  std::string e = fmt::format("{}: {}: record {}{}: {}", s.name, s.tr.file, recno,
                              field.empty() ? "" : fmt::format(": field '{}'", field), what);
  if (error_.empty()) error_ = e;
  RN_LOG(sim_, LogCat::kError, s.name, "replay: {}", e);
}

bool TraceReplay::wait_peer(Side& s, size_t idx) {
  Side* p = peer(s);
  const size_t need = s.need_peer[idx];
  if (!p || need == 0 || p->next >= need) return true;
  ++s.res.waits_for_peer;
  s.waiting =
      fmt::format("waits at record {} for {} to replay its record {}", idx + 1, p->name, need);
  while (p->next < need) {
    if (p->done || !error_.empty()) {
      if (error_.empty())
        fail(s, idx + 1, "",
             fmt::format("waits for {}'s record {}, but {} stopped at record {}", p->name, need,
                         p->name, p->next + 1));
      return false;
    }
    sc_core::wait(p->progress);
  }
  s.waiting.clear();
  return true;
}

bool TraceReplay::wait_object(Side& s, uint64_t recno, const std::function<bool()>& exists,
                              const std::string& what) {
  Side* p = peer(s);
  if (!p || exists()) return true;
  ++s.res.waits_for_peer;
  s.waiting = fmt::format("waits at record {} for {} to make {}", recno, p->name, what);
  while (!exists()) {
    if (p->done || !error_.empty()) return false;
    sc_core::wait(p->progress);
  }
  s.waiting.clear();
  return true;
}

void TraceReplay::gap(Side& s, size_t idx) {
  if (o_.timing == ReplayTiming::kAsap || idx < 2) return;
  const int64_t g =
      static_cast<int64_t>(s.tr.t[idx]) - static_cast<int64_t>(s.tr.t[idx - 1] + s.tr.d[idx - 1]);
  if (g <= 0) return;
  const Tick due = s.last_return + static_cast<Tick>(static_cast<double>(g) * o_.scale * kNs);
  if (due <= sim_.now()) return;
  s.in_gap = true;
  s.h.host->cpu(due - sim_.now());
  s.in_gap = false;
}

void TraceReplay::map_sges(Side& s, const Json& sge, std::vector<drv::Sge>* out) {
  out->clear();
  for (const auto& e : sge) {
    const uint64_t id = e[0].get<uint64_t>(), off = e[1].get<uint64_t>();
    const uint32_t len = static_cast<uint32_t>(e[2].get<uint64_t>());
    auto it = id ? s.mr.find(id) : s.mr.end();
    if (it == s.mr.end()) {  // a key of no region: posted as an invalid key, as it was
      ++s.res.unmapped_keys;
      out->push_back(drv::Sge{off, len, 0});
      continue;
    }
    out->push_back(drv::Sge{it->second.va + off, len, it->second.mr.lkey});
  }
}

// Writes recorded payload bytes (payload full) over the SGEs, in order.
static void write_data(SimHost& h, const std::vector<drv::Sge>& sg, const std::string& hex) {
  std::vector<uint8_t> b = trace::from_hex(hex);
  size_t at = 0;
  for (const auto& e : sg) {
    if (at >= b.size()) break;
    const size_t n = std::min<size_t>(e.length, b.size() - at);
    if (e.lkey) h.app_write(e.addr, b.data() + at, n);
    at += n;
  }
}

bool TraceReplay::do_post_send(Side& s, const Json& r, uint64_t recno) {
  const uint32_t rq = static_cast<uint32_t>(u(r, "qp"));
  auto qit = s.qp.find(rq);
  if (qit == s.qp.end()) {
    fail(s, recno, "qp", fmt::format("QP {} was not created in the replay", rq));
    return false;
  }
  Side::Qp& q = qit->second;
  Side* p = peer(s);
  const Json& wrs = r["wr"];
  std::vector<std::vector<drv::Sge>> sges(wrs.size());
  std::vector<drv::SendWr> wr(wrs.size());
  for (size_t k = 0; k < wrs.size(); ++k) {
    const Json& w = wrs[k];
    map_sges(s, w["sge"], &sges[k]);
    if (w.contains("data")) write_data(*s.h.host, sges[k], w["data"].get<std::string>());
    drv::SendWr& d = wr[k];
    d.wr_id = u(w, "id");
    d.sg_list = sges[k].data();
    d.num_sge = static_cast<int>(sges[k].size());
    d.opcode = static_cast<dev::WrOpcode>(trace::wr_opcode_value(str(w, "op")));
    d.send_flags = static_cast<uint32_t>(u(w, "flags")) &
                   (drv::kSendFence | drv::kSendSignaled | drv::kSendSolicited | drv::kSendInline);
    if (!q.inline_ok) d.send_flags &= ~uint32_t{drv::kSendInline};
    d.imm_data = static_cast<uint32_t>(u(w, "imm"));
    d.compare_add = u(w, "cmp");
    d.swap = u(w, "swap");
    if (w.contains("rkey")) {
      const uint32_t rkey = static_cast<uint32_t>(u(w, "rkey"));
      const uint64_t raddr = u(w, "raddr");
      if (p && p->tr.rkeys.count(rkey))
        wait_object(
            s, recno, [p, rkey] { return p->mr_by_rkey.count(rkey) > 0; },
            fmt::format("the region of rkey {:#x}", rkey));
      auto m = p ? p->mr_by_rkey.find(rkey) : std::unordered_map<uint32_t, uint64_t>::iterator{};
      if (p && m != p->mr_by_rkey.end()) {
        Side::Mr& pm = p->mr.at(m->second);
        d.rkey = pm.mr.rkey;
        d.remote_addr = pm.va + (raddr - pm.rec_base);
        if (d.opcode == dev::WrOpcode::RDMA_WRITE ||
            d.opcode == dev::WrOpcode::RDMA_WRITE_WITH_IMM) {
          uint64_t n = 0;
          for (const auto& e : sges[k]) n += e.length;
          pm.written.emplace_back(raddr - pm.rec_base, raddr - pm.rec_base + n);
        }
      } else {
        ++s.res.unmapped_keys;
        d.rkey = 0;  // no region has key 0: the NIC refuses it, as the peer's did
        d.remote_addr = raddr;
      }
    }
    if (w.contains("ah")) {
      auto a = s.ah.find(u(w, "ah"));
      d.ah = a == s.ah.end() ? nullptr : a->second;
      const uint32_t rqpn = static_cast<uint32_t>(u(w, "rqpn"));
      if (p && p->tr.qpns.count(rqpn))
        wait_object(
            s, recno, [p, rqpn] { return p->qp.count(rqpn) > 0; }, fmt::format("QP {}", rqpn));
      auto pq = p ? p->qp.find(rqpn) : decltype(p->qp)::iterator{};
      d.remote_qpn = p && pq != p->qp.end() ? pq->second.q->qpn : rqpn;
      d.remote_qkey = static_cast<uint32_t>(u(w, "rqkey"));
    }
    d.next = k + 1 < wrs.size() ? &wr[k + 1] : nullptr;
    s.res.bytes += std::accumulate(sges[k].begin(), sges[k].end(), uint64_t{0},
                                   [](uint64_t a, const drv::Sge& g) { return a + g.length; });
  }
  const Tick t0 = sim_.now();
  const drv::SendWr* bad = nullptr;
  if (int e = s.h.driver->post_send(q.q, wr.data(), &bad)) {
    fail(s, recno, bad ? fmt::format("wr[{}]", bad - wr.data()) : "",
         fmt::format("post_send: the driver refused: {} ({}); the recorded call succeeded",
                     std::strerror(e), s.h.driver->last_error()));
    return false;
  }
  s.res.wrs += wrs.size();
  const size_t idx = recno - 1;
  for (uint32_t k = 0; k < wrs.size(); ++k) {
    auto it = s.tr.op_of.find({idx, k});
    if (it == s.tr.op_of.end()) continue;
    q.pending.push_back(it->second);
    post_tick_[it->second] = t0;
  }
  return true;
}

bool TraceReplay::do_post_recv(Side& s, const Json& r, uint64_t recno, bool srq) {
  const Json& wrs = r["wr"];
  std::vector<std::vector<drv::Sge>> sges(wrs.size());
  std::vector<drv::RecvWr> wr(wrs.size());
  const uint64_t queue = srq ? u(r, "srq") | uint64_t{1} << 32 : u(r, "qp");
  for (size_t k = 0; k < wrs.size(); ++k) {
    map_sges(s, wrs[k]["sge"], &sges[k]);
    std::vector<std::array<uint64_t, 3>> where;
    for (const auto& e : wrs[k]["sge"])
      where.push_back({e[0].get<uint64_t>(), e[1].get<uint64_t>(), e[2].get<uint64_t>()});
    s.recvs.emplace(std::make_pair(queue, u(wrs[k], "id")), std::move(where));
    wr[k].wr_id = u(wrs[k], "id");
    wr[k].sg_list = sges[k].data();
    wr[k].num_sge = static_cast<int>(sges[k].size());
    wr[k].next = k + 1 < wrs.size() ? &wr[k + 1] : nullptr;
  }
  const drv::RecvWr* bad = nullptr;
  int e;
  if (srq) {
    auto it = s.srq.find(u(r, "srq"));
    if (it == s.srq.end()) {
      fail(s, recno, "srq", "no such SRQ in the replay");
      return false;
    }
    e = s.h.driver->post_srq_recv(it->second, wr.data(), &bad);
  } else {
    auto it = s.qp.find(static_cast<uint32_t>(u(r, "qp")));
    if (it == s.qp.end()) {
      fail(s, recno, "qp", "no such QP in the replay");
      return false;
    }
    e = s.h.driver->post_recv(it->second.q, wr.data(), &bad);
  }
  if (e) {
    fail(s, recno, "",
         fmt::format("{}: the driver refused: {} ({})", str(r, "call"), std::strerror(e),
                     s.h.driver->last_error()));
    return false;
  }
  s.res.recv_wrs += wrs.size();
  return true;
}

bool TraceReplay::do_poll(Side& s, const Json& r, uint64_t recno) {
  auto cit = s.cq.find(u(r, "cq"));
  if (cit == s.cq.end()) {
    fail(s, recno, "cq", "no such CQ in the replay");
    return false;
  }
  drv::Cq* cq = cit->second;
  const Json& rec = r["wc"];
  const size_t need = rec.size();
  std::vector<drv::Wc> got(need);
  size_t n = 0;
  while (n < need) {
    int k = s.h.driver->poll_cq(cq, static_cast<int>(need - n), &got[n]);
    if (k < 0) {
      fail(s, recno, "", fmt::format("poll_cq: the driver failed: {}", std::strerror(-k)));
      return false;
    }
    if (k > 0) {
      s.h.host->cpu(s.h.host->params().poll_cost);
      n += static_cast<size_t>(k);
      continue;
    }
    s.waiting =
        fmt::format("waits at record {} (poll_cq) for {} more completion(s)", recno, need - n);
    const uint64_t slot = cq->ring + uint64_t(cq->ci & (cq->size - 1)) * sizeof(dev::Cqe);
    const Side* p = peer(s);
    const size_t peer_at = p ? p->next : 0;
    if (!s.h.host->wait_write(slot, sizeof(dev::Cqe), s.h.host->params().driver_timeout)) {
      // The completion may wait for the peer, which may be in a recorded gap (a program's think
      // time, a TCP exchange) or still working: wait on while it moves.
      if (p && !p->done && (p->next != peer_at || p->in_gap)) continue;
      fail(s, recno, "wc",
           fmt::format("the recording polled {} completion(s) here; the model gave {} within {} "
                       "ns (host.driver_timeout) while the peer made no progress",
                       need, n, ticks_to_ns(s.h.host->params().driver_timeout)));
      return false;
    }
  }
  s.waiting.clear();
  const Tick now = sim_.now();
  // Completions are compared by QP and wr_id, whichever poll brings them: completions of
  // different QPs may come in another order in the model than they were recorded.
  for (const auto& rw : rec) {
    const WcKey key{static_cast<uint32_t>(u(rw, "qp")), u(rw, "id")};
    const RecWc here{recno, str(rw, "status"), str(rw, "op"), u(rw, "len")};
    auto m = oldest(s.model_wcs, key);
    if (m == s.model_wcs.end()) {
      s.rec_wcs.emplace(key, here);
    } else {
      compare_wc(s.res, here, key, m->second);
      s.model_wcs.erase(m);
    }
  }
  for (size_t k = 0; k < need; ++k) {
    const drv::Wc& w = got[k];
    ++s.res.completions;
    auto rq = s.rec_qpn.find(w.qp_num);
    const uint32_t qpn = rq == s.rec_qpn.end() ? w.qp_num : rq->second;
    const WcKey key{qpn, w.wr_id};
    auto m = oldest(s.rec_wcs, key);
    if (m == s.rec_wcs.end()) {
      s.model_wcs.emplace(key, w);
    } else {
      compare_wc(s.res, m->second, key, w);
      s.rec_wcs.erase(m);
    }
    const char* st = trace::wc_status_name(static_cast<uint32_t>(w.status));
    if (static_cast<uint32_t>(w.opcode) & 0x80) {  // a receive: the bytes it wrote
      auto q = s.qp.find(qpn);
      const drv::Srq* srq = q == s.qp.end() ? nullptr : q->second.q->srq;
      const uint64_t queue = srq ? s.srq_id[srq] | uint64_t{1} << 32 : qpn;
      auto rv = s.recvs.lower_bound({queue, w.wr_id});
      if (rv == s.recvs.end() || rv->first != std::make_pair(queue, w.wr_id)) continue;
      uint64_t left = w.status == dev::WcStatus::SUCCESS ? w.byte_len : 0;
      for (const auto& [mr, off, len] : rv->second) {
        auto it = s.mr.find(mr);
        const uint64_t wrote = std::min(left, len);
        if (it != s.mr.end() && wrote) it->second.written.emplace_back(off, off + wrote);
        left -= wrote;
      }
      s.recvs.erase(rv);
      continue;
    }
    auto q = s.qp.find(qpn);
    if (q == s.qp.end()) continue;
    auto& pend = q->second.pending;
    auto pm =
        std::find_if(pend.begin(), pend.end(), [&](size_t x) { return ops_[x].wr_id == w.wr_id; });
    if (pm == pend.end()) continue;
    ReplayOp& o = ops_[*pm];
    o.model_status = st;
    o.model_ns = static_cast<int64_t>(ticks_to_ns(now - post_tick_[*pm]));
    pend.erase(pend.begin(), pm + 1);
  }
  return true;
}

bool TraceReplay::step(Side& s, size_t idx, const Json& r) {
  const uint64_t recno = idx + 1;
  const std::string call = str(r, "call");
  if (call == "end") return true;
  const int64_t ret = r.value("ret", int64_t{0});
  if (call == "poll_cq" ? ret < 0 : ret != 0) {  // failed when recorded: nothing to rebuild
    ++s.res.skipped;
    return true;
  }
  if (!wait_peer(s, idx)) return false;
  // A poll's and an event wait's time is the model's: they return when it has the completion.
  if (call != "poll_cq" && call != "get_cq_event") gap(s, idx);
  if (s.res.records == 0) s.res.start = sim_.now();
  drv::Driver& d = *s.h.driver;
  SimHost& h = *s.h.host;
  auto refused = [&](const char* what, int e) {
    fail(s, recno, "",
         fmt::format("{}: the driver refused: {} ({}); the recorded call succeeded", what,
                     std::strerror(e), d.last_error()));
    return false;
  };
  auto need = [&](auto& map, const char* field) -> decltype(map.begin()->second)* {
    auto it = map.find(u(r, field));
    if (it != map.end()) return &it->second;
    fail(s, recno, field, fmt::format("{} {} does not exist in the replay", field, u(r, field)));
    return nullptr;
  };
  // A destroying call: the object `field` names, destroyed by `fn` in the driver, forgotten.
  auto destroy = [&](auto& map, const char* field, auto&& fn) {
    auto* o = need(map, field);
    if (!o) return false;
    if (int e = fn(*o)) return refused(call.c_str(), e);
    map.erase(u(r, field));
    return true;
  };
  Side* p = peer(s);
  if (call == "open_device" || call == "close_device" || call == "create_comp_channel" ||
      call == "destroy_comp_channel" || call == "ack_cq_events" || call == "async_event") {
    // The driver was opened before the first call; channels and acknowledgements have no
    // device side; async events are the model's own.
  } else if (call == "alloc_pd") {
    uint32_t pdn = 0;
    if (int e = d.alloc_pd(&pdn)) return refused("alloc_pd", e);
    s.pd[u(r, "pd")] = pdn;
  } else if (call == "dealloc_pd") {
    if (!destroy(s.pd, "pd", [&](uint32_t pdn) { return d.dealloc_pd(pdn); })) return false;
  } else if (call == "reg_mr") {
    auto* pdn = need(s.pd, "pd");
    if (!pdn) return false;
    Side::Mr m;
    const uint64_t addr = u(r, "addr"), off = addr % 4096;
    m.len = u(r, "len");
    m.rec_base = u(r, "iova", addr);
    m.rec_rkey = static_cast<uint32_t>(u(r, "rkey"));
    m.buf_len = m.len + off;
    m.buf = h.alloc_buffer(m.buf_len);
    m.va = m.buf + off;
    if (r.contains("data")) {
      std::vector<uint8_t> b = trace::from_hex(r["data"].get<std::string>());
      h.app_write(m.va, b.data(), std::min<uint64_t>(b.size(), m.len));
    }
    // IBV_ACCESS_OPTIONAL_RANGE (relaxed ordering and later bits): hints a device may ignore,
    // as libibverbs drops them for a provider that does not know them.
    constexpr uint32_t kOptionalAccess = 0x3FF00000;
    const uint32_t access = static_cast<uint32_t>(u(r, "access")) & ~kOptionalAccess;
    if (int e = d.reg_mr(*pdn, m.va, m.len, access, &m.mr)) return refused("reg_mr", e);
    s.mr_by_rkey[m.rec_rkey] = u(r, "mr");
    s.mr[u(r, "mr")] = m;
  } else if (call == "dereg_mr") {
    auto* m = need(s.mr, "mr");
    if (!m) return false;
    if (r.contains("hash") || r.contains("data")) {
      h.wait_writes_landed(m->va, m->len);
      std::vector<uint8_t> b(m->len);
      h.app_read(m->va, b.data(), b.size());
      ++s.res.memory_checks;
      std::string differs;  // where, if anywhere
      if (r.contains("data")) {
        // Only the bytes the NIC wrote from data the traces hold: the program's own stores (a
        // buffer filled after registration, a READ's source) are not verbs calls.
        const std::vector<uint8_t> want = trace::from_hex(r["data"].get<std::string>());
        if (want.size() != b.size())
          differs = fmt::format("the recording has {} bytes", want.size());
        for (const auto& [from, to] : m->written) {
          const uint64_t hi = std::min<uint64_t>(to, b.size());
          for (uint64_t x = from; x < hi && differs.empty(); ++x)
            if (want[x] != b[x])
              differs =
                  fmt::format("from byte {}: recorded {:#04x}, model {:#04x}", x, want[x], b[x]);
        }
        if (m->written.empty()) --s.res.memory_checks;  // nothing the NIC wrote to compare
      } else if (trace::fnv1a(b.data(), b.size()) != u(r, "hash")) {
        differs = "their hash";
      }
      if (!differs.empty()) {
        ++s.res.memory_mismatches;
        if (s.res.notes.size() < kMaxNotes)
          s.res.notes.push_back(fmt::format(
              "record {}: mr {} ({} bytes): its bytes at dereg_mr differ from the recording ({})",
              recno, u(r, "mr"), m->len, differs));
      }
    }
    if (int e = d.dereg_mr(m->mr)) return refused("dereg_mr", e);
    h.free_buffer(m->buf, m->buf_len);
    s.mr_by_rkey.erase(m->rec_rkey);
    s.mr.erase(u(r, "mr"));
  } else if (call == "create_cq") {
    drv::Cq* cq = nullptr;
    if (int e = d.create_cq(static_cast<int>(u(r, "cqe")), &cq)) return refused("create_cq", e);
    s.cq[u(r, "cq")] = cq;
  } else if (call == "destroy_cq") {
    if (!destroy(s.cq, "cq", [&](drv::Cq* cq) { return d.destroy_cq(cq); })) return false;
  } else if (call == "create_qp") {
    auto* pdn = need(s.pd, "pd");
    auto* scq = pdn ? need(s.cq, "scq") : nullptr;
    auto* rcq = scq ? need(s.cq, "rcq") : nullptr;
    if (!rcq) return false;
    drv::QpCap cap;
    cap.max_send_wr = static_cast<uint32_t>(u(r, "max_send_wr"));
    cap.max_recv_wr = static_cast<uint32_t>(u(r, "max_recv_wr"));
    cap.max_send_sge = std::max<uint32_t>(1, static_cast<uint32_t>(u(r, "max_send_sge")));
    cap.max_recv_sge = std::max<uint32_t>(1, static_cast<uint32_t>(u(r, "max_recv_sge")));
    cap.max_inline_data = static_cast<uint32_t>(u(r, "max_inline"));
    cap.qp_type = static_cast<dev::QpType>(trace::qp_type_value(str(r, "type")));
    if (r.contains("srq")) {
      auto* srq = need(s.srq, "srq");
      if (!srq) return false;
      cap.srq = *srq;
    }
    Side::Qp q;
    q.sig_all = u(r, "sig_all") == 1;
    int e = d.create_qp(*pdn, *scq, *rcq, cap, q.sig_all, &q.q);
    if (e == EINVAL && cap.max_inline_data > d.caps().max_inline_data) {
      // More inline data than this device takes: its WRs are posted without the flag.
      cap.max_inline_data = 0;
      q.inline_ok = false;
      e = d.create_qp(*pdn, *scq, *rcq, cap, q.sig_all, &q.q);
    }
    if (e) return refused("create_qp", e);
    const uint32_t rq = static_cast<uint32_t>(u(r, "qp"));
    s.rec_qpn[q.q->qpn] = rq;
    s.qp[rq] = std::move(q);
  } else if (call == "modify_qp") {
    const uint32_t rq = static_cast<uint32_t>(u(r, "qp"));
    auto it = s.qp.find(rq);
    if (it == s.qp.end()) {
      fail(s, recno, "qp", fmt::format("QP {} does not exist in the replay", rq));
      return false;
    }
    drv::QpAttr a;
    const uint32_t mask = static_cast<uint32_t>(u(r, "mask"));
    a.qp_state = static_cast<dev::QpState>(
        trace::qp_state_value(str(r, "state")) < 0 ? 0 : trace::qp_state_value(str(r, "state")));
    if (r.contains("cur_state"))
      a.cur_qp_state = static_cast<dev::QpState>(trace::qp_state_value(str(r, "cur_state")));
    a.path_mtu = mtu_of(u(r, "mtu", 4096));
    a.qp_access_flags = static_cast<uint32_t>(u(r, "access"));
    a.rq_psn = static_cast<uint32_t>(u(r, "rq_psn"));
    a.sq_psn = static_cast<uint32_t>(u(r, "sq_psn"));
    a.timeout = static_cast<uint8_t>(u(r, "timeout", a.timeout));
    a.retry_cnt = static_cast<uint8_t>(u(r, "retry_cnt", a.retry_cnt));
    a.rnr_retry = static_cast<uint8_t>(u(r, "rnr_retry", a.rnr_retry));
    a.min_rnr_timer = static_cast<uint8_t>(u(r, "min_rnr_timer", a.min_rnr_timer));
    a.max_rd_atomic = static_cast<uint8_t>(u(r, "max_rd_atomic", a.max_rd_atomic));
    a.max_dest_rd_atomic = static_cast<uint8_t>(u(r, "max_dest_rd_atomic", a.max_dest_rd_atomic));
    a.port_num = 1;  // the NIC's one port
    a.pkey_index = static_cast<uint16_t>(u(r, "pkey_index"));
    a.qkey = static_cast<uint32_t>(u(r, "qkey"));
    if (r.contains("dest_qp")) {
      const uint32_t dq = static_cast<uint32_t>(u(r, "dest_qp"));
      if (p && p->tr.qpns.count(dq))
        wait_object(
            s, recno, [p, dq] { return p->qp.count(dq) > 0; }, fmt::format("QP {}", dq));
      auto pq = p ? p->qp.find(dq) : decltype(p->qp)::iterator{};
      if (!p || pq == p->qp.end()) {
        fail(s, recno, "dest_qp",
             fmt::format("QP {} is not a QP of {} at this point (the peer's trace must create "
                         "it before this call)",
                         dq, p ? p->tr.file : "a peer trace (replay was given one trace)"));
        return false;
      }
      a.dest_qp_num = pq->second.q->qpn;
    }
    if (r.contains("av")) {  // the peer is the other simulated host, whatever the recorded GID
      const ReplayHost& ph = p ? p->h : s.h;
      std::copy(ph.mac.begin(), ph.mac.end(), a.ah.dest_mac);
      a.ah.dest_ipv4 = ph.ipv4;
      a.ah.hop_limit = static_cast<uint8_t>(u(r["av"], "hop_limit", 64));
      a.ah.traffic_class = static_cast<uint8_t>(u(r["av"], "tclass"));
    }
    if (int e = d.modify_qp(it->second.q, a, mask)) return refused("modify_qp", e);
  } else if (call == "destroy_qp") {
    const uint32_t rq = static_cast<uint32_t>(u(r, "qp"));
    auto it = s.qp.find(rq);
    if (it == s.qp.end()) {
      fail(s, recno, "qp", fmt::format("QP {} does not exist in the replay", rq));
      return false;
    }
    const uint32_t sim_qpn = it->second.q->qpn;
    if (int e = d.destroy_qp(it->second.q)) return refused("destroy_qp", e);
    s.rec_qpn.erase(sim_qpn);
    s.qp.erase(it);
  } else if (call == "create_srq") {
    auto* pdn = need(s.pd, "pd");
    if (!pdn) return false;
    drv::SrqAttr a;
    a.max_wr = static_cast<uint32_t>(u(r, "max_wr"));
    a.max_sge = std::max<uint32_t>(1, static_cast<uint32_t>(u(r, "max_sge")));
    a.srq_limit = static_cast<uint32_t>(u(r, "limit"));
    drv::Srq* srq = nullptr;
    if (int e = d.create_srq(*pdn, a, &srq)) return refused("create_srq", e);
    s.srq[u(r, "srq")] = srq;
    s.srq_id[srq] = u(r, "srq");
  } else if (call == "modify_srq") {
    auto* srq = need(s.srq, "srq");
    if (!srq) return false;
    if (r.contains("limit"))
      if (int e = d.modify_srq(*srq, static_cast<uint32_t>(u(r, "limit"))))
        return refused("modify_srq", e);
  } else if (call == "destroy_srq") {
    if (!destroy(s.srq, "srq", [&](drv::Srq* srq) { return d.destroy_srq(srq); })) return false;
  } else if (call == "create_ah") {
    auto* pdn = need(s.pd, "pd");
    if (!pdn) return false;
    drv::AddressVector av;
    const ReplayHost& ph = p ? p->h : s.h;
    std::copy(ph.mac.begin(), ph.mac.end(), av.dest_mac);
    av.dest_ipv4 = ph.ipv4;
    av.hop_limit = static_cast<uint8_t>(u(r["av"], "hop_limit", 64));
    av.traffic_class = static_cast<uint8_t>(u(r["av"], "tclass"));
    drv::Ah* ah = nullptr;
    if (int e = d.create_ah(*pdn, av, &ah)) return refused("create_ah", e);
    s.ah[u(r, "ah")] = ah;
  } else if (call == "destroy_ah") {
    if (!destroy(s.ah, "ah", [&](drv::Ah* ah) { return d.destroy_ah(ah); })) return false;
  } else if (call == "post_send") {
    if (!do_post_send(s, r, recno)) return false;
  } else if (call == "post_recv" || call == "post_srq_recv") {
    if (!do_post_recv(s, r, recno, call == "post_srq_recv")) return false;
  } else if (call == "poll_cq") {
    if (!do_poll(s, r, recno)) return false;
  } else if (call == "req_notify_cq") {
    auto* cq = need(s.cq, "cq");
    if (!cq) return false;
    if (int e = d.req_notify_cq(*cq, u(r, "solicited") == 1)) return refused("req_notify_cq", e);
  } else if (call == "get_cq_event") {
    drv::Cq* got = nullptr;
    s.waiting = fmt::format("waits at record {} (get_cq_event) for a completion event", recno);
    if (int e = d.get_cq_event(&got, ticks_to_ns(h.params().driver_timeout)))
      return refused("get_cq_event", e);
    s.waiting.clear();
  }
  ++s.res.records;
  s.last_return = sim_.now();
  s.res.end = s.last_return;
  return true;
}

void TraceReplay::run_side(int i) {
  Side& s = *sides_.at(i);
  if (int e = s.h.driver->open()) {
    fail(s, 1, "",
         fmt::format("driver open failed: {} ({})", std::strerror(e), s.h.driver->last_error()));
  } else {
    try {
      // The records again, one at a time (load_trace validated them): up to the truncation.
      trace::Reader rd(s.tr.file);
      Json r;
      rd.next(&r);  // the header
      for (; s.next < s.tr.records() && rd.next(&r); ++s.next) {
        s.res.stopped_at = s.next + 1;
        if (!error_.empty() || !step(s, s.next, r)) break;
        s.progress.notify(sc_core::SC_ZERO_TIME);
      }
    } catch (const trace::TraceError& err) {  // the file changed since it was checked
      fail(s, s.next + 1, "", err.what());
    }
  }
  s.res.finished = s.next >= s.tr.records();
  if (s.res.finished) {  // completions that never found their twin
    s.res.completion_mismatches += s.rec_wcs.size() + s.model_wcs.size();
    for (const auto& [k, w] : s.rec_wcs)
      if (s.res.notes.size() < kMaxNotes)
        s.res.notes.push_back(fmt::format(
            "record {}: completion of QP {}, wr_id {}: recorded {}, the model gave none", w.record,
            k.first, k.second, w.status));
    for (const auto& [k, w] : s.model_wcs)
      if (s.res.notes.size() < kMaxNotes)
        s.res.notes.push_back(
            fmt::format("the model gave a completion of QP {}, wr_id {} ({}) not recorded", k.first,
                        k.second, trace::wc_status_name(static_cast<uint32_t>(w.status))));
  }
  s.done = true;
  s.progress.notify(sc_core::SC_ZERO_TIME);
}

std::string TraceReplay::where() const {
  std::string out;
  for (const auto& sp : sides_) {
    if (sp->done) continue;
    out += fmt::format(
        "{}{} {}", out.empty() ? "" : "; ", sp->name,
        sp->waiting.empty() ? fmt::format("stopped at record {}", sp->next + 1) : sp->waiting);
  }
  return out;
}

std::string TraceReplay::write_csv(const std::string& path) const {
  std::ofstream f(path);
  if (!f) return fmt::format("{}: cannot create: {}", path, std::strerror(errno));
  f << "host,record,wr,qp,wr_id,op,bytes,recorded_status,model_status,recorded_ns,model_ns\n";
  for (const auto& o : ops_) {
    auto ns = [](int64_t v) { return v < 0 ? std::string() : std::to_string(v); };
    f << fmt::format("{},{},{},{},{},{},{},{},{},{},{}\n", sides_[o.side]->name, o.record, o.wr,
                     o.qp, o.wr_id, o.op, o.bytes, o.rec_status, o.model_status, ns(o.rec_ns),
                     ns(o.model_ns));
  }
  f.close();
  if (!f) return fmt::format("{}: write failed", path);
  return "";
}

}  // namespace rn::host
