// RDMA READ between two hosts: data, completions, several READs outstanding, refusals.
#include "testbench/system/device_bench.h"

using namespace rn;
using namespace rn::test;

namespace {
constexpr uint32_t kAll = kLW | kRW | kRR;
}  // namespace

TEST_CASE("READ brings the remote bytes into local memory, at every size", "[read]") {
  Bench t;
  t.attr.path_mtu = dev::Mtu::MTU_1024;
  t.run([&] {
    if (!t.setup(kAll, kAll, 16, 2, 262144)) return;
    t.fill(t.b, 0, 262144, 21);
    struct Case {
      uint64_t off;
      uint32_t len;
    };
    // Empty, one byte, one MTU exactly, one MTU and a byte, many MTUs, unaligned.
    const Case cases[] = {{0, 0}, {10, 1}, {100, 1024}, {3000, 1025}, {7, 100003}};
    uint64_t id = 1;
    for (const Case& c : cases) {
      t.post(t.a, WrOpcode::RDMA_READ, id, c.off + 140000, c.len, drv::kSendSignaled, 0, 0, c.off);
      auto w = t.poll(t.a, t.a.scq, 1);
      t.expect(w.size() == 1 && w[0].status == WcStatus::SUCCESS && w[0].wr_id == id &&
                   w[0].opcode == WcOpcode::RDMA_READ && w[0].byte_len == c.len,
               w.empty() ? "no CQE" : wc_str(w[0]));
      t.expect(t.same(t.b, c.off, t.a, c.off + 140000, c.len),
               fmt::format("{} bytes at {}", c.len, c.off));
      ++id;
    }
    t.expect(t.untouched(t.a, 0, 140000), "READs wrote outside their buffers");
    t.expect(t.untouched(t.a, 140000 + 7 + 100003, 1000), "a READ wrote past its end");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "read_requests") == 5);
  CHECK(stat(t.stats, "host1.nic.resp", "read_bytes") == 0 + 1 + 1024 + 1025 + 100003);
  CHECK(stat(t.stats, "host0.nic.req", "retransmitted") == 0);
  t.report();
}

TEST_CASE("READs, WRITEs and SENDs mixed on one QP complete in order", "[read]") {
  Bench t;
  t.attr.max_rd_atomic = 4;
  t.attr.max_dest_rd_atomic = 4;
  t.run([&] {
    if (!t.setup(kAll, kAll, 64, 2, 262144)) return;
    t.fill(t.a, 0, 131072, 31);
    t.fill(t.b, 131072, 131072, 32);
    for (int i = 0; i < 6; ++i) t.recv(t.b, 100 + i, 0, 4096);
    uint64_t id = 1;
    for (int i = 0; i < 6; ++i) {
      t.post(t.a, WrOpcode::RDMA_READ, id++, 131072 + i * 20000, 20000, drv::kSendSignaled, 0, 0,
             131072 + i * 20000);
      t.post(t.a, WrOpcode::RDMA_WRITE, id++, i * 10000, 10000, drv::kSendSignaled, 0, 0,
             65536 + i * 10000);
      t.post(t.a, WrOpcode::SEND, id++, i * 1000, 1000, drv::kSendSignaled);
    }
    auto w = t.poll(t.a, t.a.scq, 18);
    t.expect(w.size() == 18, fmt::format("{} CQEs of 18", w.size()));
    for (size_t i = 0; i < w.size(); ++i)
      t.expect(w[i].wr_id == i + 1 && w[i].status == WcStatus::SUCCESS, wc_str(w[i]));
    auto r = t.poll(t.b, t.b.rcq, 6);
    t.expect(r.size() == 6, fmt::format("{} receive CQEs of 6", r.size()));
    t.b.h->cpu(5 * kUs);
    t.expect(t.same(t.b, 131072, t.a, 131072, 120000), "READ data");
    t.expect(t.same(t.a, 0, t.b, 65536, 60000), "WRITE data");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "read_requests") == 6);
  t.report();
}

TEST_CASE("A READ to a QP without remote read is refused with REM_INV_REQ_ERR", "[read]") {
  Bench t;
  t.run([&] {
    // The responder's QP lacks REMOTE_READ: NAK invalid request.
    if (!t.setup(kLW | kRW, kAll)) return;
    t.post(t.a, WrOpcode::RDMA_READ, 1, 0, 64, drv::kSendSignaled);
    auto w = t.poll(t.a, t.a.scq, 1);
    t.expect(w.size() == 1 && w[0].status == WcStatus::REM_INV_REQ_ERR,
             w.empty() ? "no CQE" : wc_str(w[0]));
    t.expect(t.untouched(t.a, 0, 65536), "a refused READ wrote memory");
  });
  t.report();
}

TEST_CASE("A READ with a bad rkey is refused with REM_ACCESS_ERR", "[read]") {
  Bench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    t.post(t.a, WrOpcode::RDMA_READ, 1, 0, 64, drv::kSendSignaled, 0, 0x100);
    auto w = t.poll(t.a, t.a.scq, 1);
    t.expect(w.size() == 1 && w[0].status == WcStatus::REM_ACCESS_ERR,
             w.empty() ? "no CQE" : wc_str(w[0]));
    t.expect(t.untouched(t.a, 0, 65536), "a refused READ wrote memory");
  });
  CHECK(stat(t.stats, "host1.nic.resp", "read_requests") == 0);
  t.report();
}

TEST_CASE("A READ from a region without remote read is refused with REM_ACCESS_ERR", "[read]") {
  Bench t;
  t.run([&] {
    if (!t.setup(kAll, kLW | kRW)) return;
    t.post(t.a, WrOpcode::RDMA_READ, 1, 0, 64, drv::kSendSignaled);
    auto w = t.poll(t.a, t.a.scq, 1);
    t.expect(w.size() == 1 && w[0].status == WcStatus::REM_ACCESS_ERR,
             w.empty() ? "no CQE" : wc_str(w[0]));
  });
  t.report();
}

TEST_CASE("PSNs wrap from 0xFFFFFF to 0 inside WRITEs and READs, with a loss at the wrap",
          "[read][psn]") {
  // Both QPs start 20 PSNs below the wrap; the first packet after it (PSN 0) is dropped once: the
  // requester goes back across the wrap, and the READ's responses are numbered across it too.
  Bench t({"link.rule=action=drop side=0 psn=0 count=1"});
  t.start_psn = 0xFFFFEC;
  t.attr.path_mtu = dev::Mtu::MTU_1024;
  t.attr.timeout = 8;
  t.run([&] {
    if (!t.setup(kAll, kAll, 16, 2, 262144)) return;
    t.fill(t.a, 0, 60000, 41);
    t.fill(t.b, 100000, 60000, 42);
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 40000, drv::kSendSignaled, 0, 0, 0);  // 40 PSNs
    t.post(t.a, WrOpcode::RDMA_READ, 2, 100000, 50000, drv::kSendSignaled, 0, 0, 100000);
    auto w = t.poll(t.a, t.a.scq, 2);
    t.expect(w.size() == 2, fmt::format("{} CQEs of 2", w.size()));
    for (const auto& c : w) t.expect(c.status == WcStatus::SUCCESS, wc_str(c));
    t.b.h->cpu(5 * kUs);
    t.expect(t.same(t.a, 0, t.b, 0, 40000), "WRITE across the wrap");
    t.expect(t.same(t.b, 100000, t.a, 100000, 50000), "READ across the wrap");
  });
  CHECK(stat(t.stats, "host0.nic.req", "retransmitted") > 0);
  CHECK(stat(t.stats, "link0", "a_to_b_dropped") == 1);
  t.report();
}
