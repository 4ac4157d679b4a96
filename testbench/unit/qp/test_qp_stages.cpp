// The swappable stages (model/qp/stages.h, model/translation/stage.h): stages that answer later
// than they are asked, as a cache that misses or an RTL block would, change when things happen,
// never what happens.
#include <set>

#include "testbench/unit/qp/qp_bench.h"

using namespace rn;
using namespace rn::test;

namespace {

// A translation stage with a cold cache: the first lookup of each key answers kPending and the
// key is known `delay` later; then the NIC's own table answers.
class ColdStage final : public xlate::Stage {
 public:
  ColdStage(Sim& sim, xlate::Stage& table, Tick delay) : sim_(sim), table_(table), delay_(delay) {}
  xlate::Status lookup(uint32_t key, uint32_t pdn, uint64_t va, uint64_t len, uint32_t need,
                       xlate::SegList* out, Tick* ready) override {
    if (warm_.count(key)) return table_.lookup(key, pdn, va, len, need, out, ready);
    ++pending;
    if (filling_.insert(key).second)
      sim_.eq.after(delay_, [this, key] {
        filling_.erase(key);
        warm_.insert(key);
        wake();
      });
    return xlate::Status::kPending;
  }
  int pending = 0;

 private:
  Sim& sim_;
  xlate::Stage& table_;
  Tick delay_;
  std::set<uint32_t> warm_, filling_;
};

// A parser and an ICRC engine that answer `delay` after they are asked (their verdicts are the
// behavioural models').
class SlowParser final : public qp::HeaderParser {
 public:
  SlowParser(const qp::NicEnv& env, Tick delay) : model_(env, framing_), env_(env), delay_(delay) {}
  Result parse(const net::Frame& f, qp::RxPacket* p) override {
    Result r = model_.parse(f, p);
    r.ready = env_.now() + delay_;
    return r;
  }

 private:
  qp::PortFraming framing_;
  qp::ModelParser model_;
  const qp::NicEnv& env_;
  Tick delay_;
};
class SlowIcrc final : public qp::IcrcEngine {
 public:
  SlowIcrc(const qp::NicEnv& env, Tick delay)
      : model_(env, framing_, false), env_(env), delay_(delay) {}
  bool check(net::Frame& f, uint32_t t_off, uint32_t t_len, Tick* ready) override {
    const bool ok = model_.check(f, t_off, t_len, ready);
    *ready = env_.now() + delay_;
    ++checked;
    return ok;
  }
  int checked = 0;

 private:
  qp::PortFraming framing_;
  qp::ModelIcrc model_;
  const qp::NicEnv& env_;
  Tick delay_;
};
}  // namespace

TEST_CASE("A translation stage that answers later changes no byte and no completion",
          "[qp][stages]") {
  Bench t;
  ColdStage cold_a(t.sys->sim(), t.a.n->nic->mrs(), 3 * kUs);
  ColdStage cold_b(t.sys->sim(), t.b.n->nic->mrs(), 3 * kUs);
  t.a.n->nic->use_translation(cold_a);
  t.b.n->nic->use_translation(cold_b);
  t.run([&] {
    if (!t.setup()) return;
    t.fill(t.a, 0, 65536, 5);
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 20000, drv::kSendSignaled, 0, 0, 100);
    t.recv(t.b, 2, 40000, 20000);
    t.post(t.a, WrOpcode::SEND_WITH_IMM, 3, 30000, 9000, drv::kSendSignaled, 0x1234);
    auto s = t.poll(t.a, t.a.scq, 2);
    auto r = t.poll(t.b, t.b.rcq, 1);
    t.expect(s.size() == 2 && s[0].status == WcStatus::SUCCESS && s[1].status == WcStatus::SUCCESS,
             fmt::format("{} send CQEs", s.size()) + (s.empty() ? "" : ": " + wc_str(s[0])));
    t.expect(r.size() == 1 && r[0].byte_len == 9000 && r[0].imm_data == 0x1234,
             r.empty() ? "no receive CQE" : wc_str(r[0]));
    t.b.h->cpu(5 * kUs);
    t.expect(t.same(t.a, 0, t.b, 100, 20000), "WRITE data");
    t.expect(t.same(t.a, 30000, t.b, 40000, 9000), "SEND data");
    // A bad rkey is still refused once the stage knows the key.
    t.post(t.a, WrOpcode::RDMA_WRITE, 4, 0, 64, drv::kSendSignaled, 0, 0x100);
    auto e = t.poll(t.a, t.a.scq, 1);
    t.expect(e.size() == 1 && e[0].status == WcStatus::REM_ACCESS_ERR,
             e.empty() ? "no CQE for the bad rkey" : wc_str(e[0]));
  });
  CHECK(cold_a.pending > 0);
  CHECK(cold_b.pending > 0);
  CHECK(stat(t.stats, "host0.nic.req", "stalls_translation") > 0);
  CHECK(stat(t.stats, "host1.nic.resp", "stalls_translation") > 0);
  t.report();
}

TEST_CASE("A parser and an ICRC engine that answer later delay each frame by their time, in order",
          "[qp][stages]") {
  Bench t;
  const Tick delay = 700 * kNs;
  SlowParser parser(t.b.n->nic->env(), delay);
  SlowIcrc icrc(t.b.n->nic->env(), delay / 2);
  t.run([&] {
    if (!t.setup()) return;
    // The time of a small WRITE's round trip, with the models and then with the slow stages at
    // the receiver of the request (its ACK is only held back by them there).
    auto round_trip = [&](uint64_t id) {
      const Tick t0 = t.a.h->now();
      t.post(t.a, WrOpcode::RDMA_WRITE, id, 0, 64, drv::kSendSignaled);
      auto c = t.poll(t.a, t.a.scq, 1);
      t.expect(c.size() == 1 && c[0].status == WcStatus::SUCCESS,
               c.empty() ? "no CQE" : wc_str(c[0]));
      return t.a.h->now() - t0;
    };
    t.fill(t.a, 0, 65536, 8);
    round_trip(1);  // warms the WQE path
    const Tick before = round_trip(2);
    t.b.n->nic->use_parser(parser);
    t.b.n->nic->use_icrc(icrc);
    const Tick after = round_trip(3);
    t.expect(after >= before + delay && after < before + delay + 200 * kNs,
             fmt::format("round trip {} ps with the models, {} ps with stages {} ps slower", before,
                         after, delay));
    // Many packets in a row: every one held, none overtaking another.
    t.post(t.a, WrOpcode::RDMA_WRITE, 4, 0, 65536, drv::kSendSignaled, 0, 0, 0);
    auto c = t.poll(t.a, t.a.scq, 1);
    t.expect(c.size() == 1 && c[0].status == WcStatus::SUCCESS,
             c.empty() ? "no CQE" : wc_str(c[0]));
    t.b.h->cpu(5 * kUs);
    t.expect(t.same(t.a, 0, t.b, 0, 65536), "data through the slow stages");
  });
  CHECK(icrc.checked >= 17);
  CHECK(stat(t.stats, "host1.nic.rx", "deferred") >= 17);
  CHECK(stat(t.stats, "host1.nic.rx", "drop_framing") == 0);
  t.report();
}
