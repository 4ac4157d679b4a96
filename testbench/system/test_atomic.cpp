// Atomics between two hosts: COMPARE_SWAP and FETCH_ADD, their original values, atomicity of many
// in flight, refusals, and a lost ATOMIC ACKNOWLEDGE answered from the responder's results.
#include "testbench/system/device_bench.h"

using namespace rn;
using namespace rn::test;

namespace {
constexpr uint32_t kAll = kLW | kRW | kRR | kRA;
constexpr WrOpcode kCas = WrOpcode::ATOMIC_CMP_AND_SWP;
constexpr WrOpcode kFaa = WrOpcode::ATOMIC_FETCH_AND_ADD;
}  // namespace

TEST_CASE("FETCH_ADD and COMPARE_SWAP return the original value and change the remote 8 bytes",
          "[atomic]") {
  Bench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    t.set_u64(t.b, 4096, 100);
    struct Step {
      WrOpcode op;
      uint64_t compare_add, swap;
      uint64_t orig, after;  // expected: the value returned, the remote value after
      WcOpcode wc;
    };
    const Step steps[] = {
        {kFaa, 5, 0, 100, 105, WcOpcode::FETCH_ADD},
        {kCas, 105, 7, 105, 7, WcOpcode::COMP_SWAP},         // equal: swapped
        {kCas, 1, 9, 7, 7, WcOpcode::COMP_SWAP},             // not equal: kept
        {kFaa, ~uint64_t(0), 0, 7, 6, WcOpcode::FETCH_ADD},  // wraps (adds -1)
        {kCas, 6, 0x8877665544332211, 6, 0x8877665544332211, WcOpcode::COMP_SWAP},  // all 64 bits
    };
    uint64_t id = 1;
    for (const Step& s : steps) {
      t.atomic(t.a, s.op, id, 64 * id, 4096, s.compare_add, s.swap);
      auto w = t.poll(t.a, t.a.scq, 1);
      t.expect(w.size() == 1 && w[0].status == WcStatus::SUCCESS && w[0].wr_id == id &&
                   w[0].opcode == s.wc && w[0].byte_len == 8,
               w.empty() ? "no CQE" : wc_str(w[0]));
      t.expect(Bench::u64(t.a, 64 * id) == s.orig,
               fmt::format("step {}: returned {:#x}, expected {:#x}", id, Bench::u64(t.a, 64 * id),
                           s.orig));
      t.expect(
          Bench::u64(t.b, 4096) == s.after,
          fmt::format("step {}: remote {:#x}, expected {:#x}", id, Bench::u64(t.b, 4096), s.after));
      t.expect(t.untouched(t.a, 64 * id + 8, 56), "an atomic wrote past its 8 bytes");
      ++id;
    }
    t.expect(t.untouched(t.b, 0, 4096) && t.untouched(t.b, 4104, 65536 - 4104),
             "an atomic wrote next to its 8 bytes");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "atomics") == 5);
  CHECK(stat(t.stats, "host0.nic.req", "atomic_requests") == 5);
  CHECK(stat(t.stats, "host0.nic.req", "atomic_responses") == 5);
  t.report();
}

TEST_CASE("Many FETCH_ADDs in flight on one address each see a distinct value", "[atomic]") {
  // 16 outstanding atomics reach the responder closer together than one DMA read and write of
  // host memory: without the NIC executing them one at a time, increments would be lost.
  Bench t;
  t.attr.max_rd_atomic = 16;
  t.attr.max_dest_rd_atomic = 16;
  constexpr int kN = 200;
  t.run([&] {
    if (!t.setup(kAll, kAll, 256, 2, 65536)) return;
    t.set_u64(t.b, 0, 1000);
    for (int i = 0; i < kN; ++i)
      t.expect(t.atomic(t.a, kFaa, i, 8 * (i + 1), 0, 1) == 0, "post: " + t.a.d->last_error());
    auto w = t.poll(t.a, t.a.scq, kN);
    t.expect(w.size() == kN, fmt::format("{} CQEs of {}", w.size(), kN));
    for (const auto& c : w) t.expect(c.status == WcStatus::SUCCESS, wc_str(c));
    t.expect(Bench::u64(t.b, 0) == 1000 + kN, fmt::format("sum {}", Bench::u64(t.b, 0)));
    // In order on one QP: the i-th saw 1000 + i.
    for (int i = 0; i < kN; ++i)
      t.expect(Bench::u64(t.a, 8 * (i + 1)) == uint64_t(1000 + i),
               fmt::format("atomic {} returned {}", i, Bench::u64(t.a, 8 * (i + 1))));
  });
  CHECK(stat(t.stats, "host1.nic.resp", "atomics") == kN);
  t.report();
}

namespace {
// One refused atomic (each simulation in a process of its own: one test case each).
void refused(uint32_t qp_access, uint32_t mr_access, uint64_t remote_off, uint32_t len,
             int64_t rkey_delta, WcStatus want) {
  Bench t;
  t.run([&] {
    if (!t.setup(qp_access, mr_access)) return;
    t.set_u64(t.b, 0, 42);
    t.atomic(t.a, kFaa, 1, 0, remote_off, 1, 0, drv::kSendSignaled, len, rkey_delta);
    auto w = t.poll(t.a, t.a.scq, 1);
    t.expect(w.size() == 1 && w[0].status == want && w[0].wr_id == 1,
             w.empty() ? "no CQE" : wc_str(w[0]));
    t.expect(Bench::u64(t.b, 0) == 42, "a refused atomic changed memory");
    t.expect(t.untouched(t.a, 0, 65536), "a refused atomic wrote its local buffer");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "atomics") == 0);
  t.report();
}
}  // namespace

TEST_CASE("A misaligned atomic is refused with REM_INV_REQ_ERR", "[atomic]") {
  refused(kAll, kAll, 4, 8, 0, WcStatus::REM_INV_REQ_ERR);
}
TEST_CASE("An atomic to a QP without remote atomic is refused with REM_INV_REQ_ERR", "[atomic]") {
  refused(kLW | kRW | kRR, kAll, 0, 8, 0, WcStatus::REM_INV_REQ_ERR);
}
TEST_CASE("An atomic on a region without remote atomic is refused with REM_ACCESS_ERR",
          "[atomic]") {
  refused(kAll, kLW | kRW | kRR, 0, 8, 0, WcStatus::REM_ACCESS_ERR);
}
TEST_CASE("An atomic with a bad rkey is refused with REM_ACCESS_ERR", "[atomic]") {
  refused(kAll, kAll, 0, 8, 0x100, WcStatus::REM_ACCESS_ERR);
}
TEST_CASE("An atomic past the end of its region is refused with REM_ACCESS_ERR", "[atomic]") {
  refused(kAll, kAll, 65536, 8, 0, WcStatus::REM_ACCESS_ERR);
}
TEST_CASE("An atomic whose local SGE is not 8 bytes fails with LOC_LEN_ERR", "[atomic]") {
  refused(kAll, kAll, 0, 16, 0, WcStatus::LOC_LEN_ERR);
}

TEST_CASE("A lost ATOMIC ACKNOWLEDGE is answered again from the responder's results", "[atomic]") {
  // The first ATOMIC ACKNOWLEDGE (from host 1) is dropped: the requester times out and sends the
  // request again; the responder answers with the value it kept and does not add twice.
  Bench t({"link.rule=action=drop side=1 opcode=RC_ATOMIC_ACKNOWLEDGE count=1"});
  t.attr.timeout = 8;  // 4.096 us x 2^8 = 1 ms
  t.attr.retry_cnt = 3;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    t.set_u64(t.b, 0, 10);
    t.atomic(t.a, kFaa, 1, 8, 0, 5);
    t.atomic(t.a, kCas, 2, 16, 0, 15, 99);
    auto w = t.poll(t.a, t.a.scq, 2);
    // poll() gives up after 1 ms of quiet: wait out the timeout.
    if (w.size() < 2) {
      auto more = t.poll(t.a, t.a.scq, 2 - w.size());
      w.insert(w.end(), more.begin(), more.end());
    }
    t.expect(w.size() == 2, fmt::format("{} CQEs of 2", w.size()));
    for (const auto& c : w) t.expect(c.status == WcStatus::SUCCESS, wc_str(c));
    t.expect(Bench::u64(t.a, 8) == 10, fmt::format("FETCH_ADD returned {}", Bench::u64(t.a, 8)));
    t.expect(Bench::u64(t.a, 16) == 15, fmt::format("CMP_SWAP returned {}", Bench::u64(t.a, 16)));
    t.expect(Bench::u64(t.b, 0) == 99, fmt::format("remote {}", Bench::u64(t.b, 0)));
  });
  CHECK(stat(t.stats, "host1.nic.resp", "atomics") == 2);
  CHECK(stat(t.stats, "host1.nic.resp", "atomic_replays") >= 1);
  CHECK(stat(t.stats, "host0.nic.req", "timeouts") == 1);
  t.report();
}

TEST_CASE("A FENCEd WRITE waits for an earlier atomic", "[atomic]") {
  // The WRITE carries the value the atomic returns: fenced, it must read it after it landed.
  Bench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    t.set_u64(t.b, 0, 0x1234);
    t.atomic(t.a, kFaa, 1, 0, 0, 1);
    t.post(t.a, WrOpcode::RDMA_WRITE, 2, 0, 8, drv::kSendSignaled | drv::kSendFence, 0, 0, 64);
    auto w = t.poll(t.a, t.a.scq, 2);
    t.expect(w.size() == 2 && w[0].wr_id == 1 && w[1].wr_id == 2, "two CQEs in order");
    t.expect(Bench::u64(t.b, 64) == 0x1234,
             fmt::format("the WRITE carried {:#x}", Bench::u64(t.b, 64)));
  });
  t.report();
}
