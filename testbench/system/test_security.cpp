// The security attack matrix (docs/security.md), the rows two whole hosts can play: host 0's
// driver posts a mistaken or malicious request (a forged, stale or foreign rkey, an address out of
// bounds, an access the region or the responder's QP does not grant), or host 1's own driver
// gets its local buffers wrong. Each case checks the requester's CQE (status, and vendor_err: the
// NAK's AETH syndrome, or the translation's refusal), both QPs' states (QUERY_QP), the counters
// of the NIC that refused, and that no byte of either host's memory changed outside what is
// permitted (mem_guard.h). Row 22 puts an IOMMU in host 1 and unmaps a region's IOVAs behind
// its device's back. The rows that need hand-built frames are in
// testbench/unit/qp/test_qp_security.cpp. Each TEST_CASE is its own simulation.
#include "testbench/system/mem_guard.h"

using namespace rn;
using namespace rn::test;

namespace {

constexpr uint32_t kAll = kLW | kRW | kRR | kRA;
constexpr uint8_t kNakInvReq = wire::kAethSynNakInvReq;        // 0x61
constexpr uint8_t kNakRemAccess = wire::kAethSynNakRemAccess;  // 0x62

dev::QpState state_of(Peer& p) {
  dev::QueryQpOut q{};
  if (p.d->query_qp(p.qp, &q)) return dev::QpState::RESET;  // (a failed query: never expected)
  return static_cast<dev::QpState>(q.qp_state);
}

// A request from host 0 that host 1 must refuse.
struct Refused {
  uint32_t qp_access = kAll;  // both QPs' qp_access_flags
  uint32_t mr_access = kAll;  // both buffers' MRs
  WrOpcode op = WrOpcode::RDMA_WRITE;
  uint64_t remote_off = 0;  // from host 1's buffer (mod 2^64)
  uint32_t len = 64;
  // The rkey to use, once both sides are set up (host 1's own rkey when not given); it may
  // register, deregister or allocate on host 1 first. Sets *remote_off if it aims elsewhere.
  std::function<uint32_t(Bench&, uint64_t* remote_off)> rkey;
  WcStatus want = WcStatus::REM_ACCESS_ERR;
  uint8_t syndrome = kNakRemAccess;
  // The translation fault host 1's MR table must count once (host1.nic.mr), or "" when the
  // responder must refuse before any translation (its MR table then did no lookup at all).
  std::string fault;
};

void refused(const Refused& c) {
  Bench t;
  t.run([&] {
    if (!t.setup(c.qp_access, c.mr_access)) return;
    uint64_t remote_off = c.remote_off;
    const uint32_t rkey = c.rkey ? c.rkey(t, &remote_off) : t.b.mr.rkey;
    t.fill(t.a, 0, 65536, 11);  // what a WRITE would carry
    t.set_u64(t.b, 0, 42);      // what an atomic would find
    MemGuard g(t);
    g.take();
    const int64_t delta = int64_t(rkey) - int64_t(t.b.mr.rkey);
    const int e = (c.op == WrOpcode::ATOMIC_FETCH_AND_ADD || c.op == WrOpcode::ATOMIC_CMP_AND_SWP)
                      ? t.atomic(t.a, c.op, 1, 0, remote_off, 42, 7, drv::kSendSignaled, 8, delta)
                      : t.post(t.a, c.op, 1, 0, c.len, drv::kSendSignaled, 0, delta, remote_off);
    t.expect(e == 0, "post: " + t.a.d->last_error());
    auto w = t.poll(t.a, t.a.scq, 1);
    t.expect(
        w.size() == 1 && w[0].wr_id == 1 && w[0].status == c.want && w[0].vendor_err == c.syndrome,
        w.empty() ? "no CQE"
                  : fmt::format("{} (want {}, vendor_err {:#x})", wc_str(w[0]),
                                dev::to_string(c.want), c.syndrome));
    t.a.h->cpu(5 * kUs);  // anything still in flight lands
    t.expect(state_of(t.a) == dev::QpState::ERR, "requester QP not in ERR");
    t.expect(state_of(t.b) == dev::QpState::ERR, "responder QP not in ERR");
    g.check();
  });
  CHECK(stat(t.stats, "host1.nic.resp", "naks") == 1);
  CHECK(stat(t.stats, "host0.nic.req", "naks") == 1);
  CHECK(stat(t.stats, "host1.nic.resp", "placed_bytes") == 0);
  CHECK(stat(t.stats, "host1.nic.resp", "read_bytes") == 0);
  CHECK(stat(t.stats, "host1.nic.resp", "atomics") == 0);
  if (c.fault.empty()) {
    CHECK(stat(t.stats, "host1.nic.mr", "lookups") == 0);
  } else {
    CHECK(stat(t.stats, "host1.nic.mr", c.fault) == 1);
  }
  t.report();
}

Refused write(uint64_t remote_off = 0, uint32_t len = 64) {
  Refused c;
  c.remote_off = remote_off;
  c.len = len;
  return c;
}
Refused read(uint64_t remote_off = 0, uint32_t len = 64) {
  Refused c = write(remote_off, len);
  c.op = WrOpcode::RDMA_READ;
  return c;
}
Refused atomic(uint64_t remote_off = 0) {
  Refused c = write(remote_off, 8);
  c.op = WrOpcode::ATOMIC_FETCH_AND_ADD;
  return c;
}
Refused with_fault(Refused c, std::string fault) {
  c.fault = std::move(fault);
  return c;
}

// Right index, wrong 8-bit variant: keys are (index << 8) | variant.
uint32_t forged_variant(Bench& t, uint64_t*) {
  const uint32_t k = t.b.mr.rkey;
  const uint32_t forged = (k & ~0xFFu) | ((k + 1) & 0xFFu);
  t.expect(forged != k && (forged >> 8) == (k >> 8), "the forged key is not a variant");
  return forged;
}
// Host 1's region, deregistered: its rkey is stale.
uint32_t deregistered(Bench& t, uint64_t*) {
  const uint32_t k = t.b.mr.rkey;
  t.expect(t.b.d->dereg_mr(t.b.mr) == 0, "dereg_mr: " + t.b.d->last_error());
  return k;
}
// A region of host 1 in another PD than its QP's, granting everything: its rkey is genuine.
uint32_t other_pd(Bench& t, uint64_t* remote_off) {
  uint32_t pd2 = 0;
  drv::Mr mr2;
  const uint64_t buf2 = t.b.h->alloc_buffer(4096);
  std::vector<uint8_t> poison(4096, 0xEE);
  t.b.h->app_write(buf2, poison.data(), poison.size());
  if (t.b.d->alloc_pd(&pd2) || t.b.d->reg_mr(pd2, buf2, 4096, kAll, &mr2)) {
    t.expect(false, "second PD: " + t.b.d->last_error());
    return 0;
  }
  *remote_off = buf2 - t.b.buf;
  return mr2.rkey;
}

}  // namespace

// Rows 1-3: keys.
TEST_CASE("forged_rkey.write", "[security][rkey]") {
  Refused c = with_fault(write(), "faults_bad_key");
  c.rkey = forged_variant;
  refused(c);
}
TEST_CASE("forged_rkey.read", "[security][rkey]") {
  Refused c = with_fault(read(), "faults_bad_key");
  c.rkey = forged_variant;
  refused(c);
}
TEST_CASE("forged_rkey.atomic", "[security][rkey]") {
  Refused c = with_fault(atomic(), "faults_bad_key");
  c.rkey = forged_variant;
  refused(c);
}
TEST_CASE("deregistered_rkey.write", "[security][rkey]") {
  Refused c = with_fault(write(), "faults_bad_key");
  c.rkey = deregistered;
  refused(c);
}
TEST_CASE("deregistered_rkey.read", "[security][rkey]") {
  Refused c = with_fault(read(), "faults_bad_key");
  c.rkey = deregistered;
  refused(c);
}
TEST_CASE("cross_pd.write", "[security][pd]") {
  Refused c = with_fault(write(), "faults_pd");
  c.rkey = other_pd;
  refused(c);
}
TEST_CASE("cross_pd.read", "[security][pd]") {
  Refused c = with_fault(read(), "faults_pd");
  c.rkey = other_pd;
  refused(c);
}
TEST_CASE("cross_pd.atomic", "[security][pd]") {
  Refused c = with_fault(atomic(), "faults_pd");
  c.rkey = other_pd;
  refused(c);
}

// Rows 4-6: bounds. The region is host 1's 64 KiB buffer [buf, buf + 65536).
TEST_CASE("bounds_low.write", "[security][bounds]") {
  refused(with_fault(write(~uint64_t(0), 64), "faults_bounds"));  // starts 1 byte before
}
TEST_CASE("bounds_low.read", "[security][bounds]") {
  refused(with_fault(read(~uint64_t(0), 64), "faults_bounds"));
}
TEST_CASE("bounds_high.write", "[security][bounds]") {
  refused(with_fault(write(65536 - 63, 64), "faults_bounds"));  // ends 1 byte after
}
TEST_CASE("bounds_high.read", "[security][bounds]") {
  refused(with_fault(read(65536 - 63, 64), "faults_bounds"));
}
TEST_CASE("bounds_high.atomic", "[security][bounds]") {
  refused(with_fault(atomic(65536), "faults_bounds"));  // the 8 bytes right after the region
}
TEST_CASE("wrap_2_64.write", "[security][bounds]") {
  // RETH va = 2^64 - 256, length 512: va + length wraps past 2^64 (to 256).
  Refused c = with_fault(write(0, 512), "faults_bounds");
  c.rkey = [](Bench& t, uint64_t* off) {
    *off = (~uint64_t(0) - 255) - t.b.buf;
    return t.b.mr.rkey;
  };
  refused(c);
}
TEST_CASE("wrap_2_64.read", "[security][bounds]") {
  Refused c = with_fault(read(0, 512), "faults_bounds");
  c.rkey = [](Bench& t, uint64_t* off) {
    *off = (~uint64_t(0) - 255) - t.b.buf;
    return t.b.mr.rkey;
  };
  refused(c);
}
// Rows 7-9: the region's access flags.
TEST_CASE("mr_access.write_without_remote_write", "[security][access]") {
  Refused c = with_fault(write(), "faults_access");
  c.mr_access = kLW | kRR | kRA;
  refused(c);
}
TEST_CASE("mr_access.read_without_remote_read", "[security][access]") {
  Refused c = with_fault(read(), "faults_access");
  c.mr_access = kLW | kRW | kRA;
  refused(c);
}
TEST_CASE("mr_access.atomic_without_remote_atomic", "[security][access]") {
  Refused c = with_fault(atomic(), "faults_access");
  c.mr_access = kLW | kRW | kRR;
  refused(c);
}

// Row 10: a misaligned atomic is an invalid request, refused before any translation.
TEST_CASE("atomic_misaligned", "[security][atomic]") {
  Refused c = atomic(4);
  c.want = WcStatus::REM_INV_REQ_ERR;
  c.syndrome = kNakInvReq;
  refused(c);
}

// Row 11: the responder QP's qp_access_flags forbid what the region allows: invalid request,
// refused before any translation.
TEST_CASE("qp_access.write", "[security][access]") {
  Refused c = write();
  c.qp_access = kLW | kRR | kRA;
  c.want = WcStatus::REM_INV_REQ_ERR;
  c.syndrome = kNakInvReq;
  refused(c);
}
TEST_CASE("qp_access.read", "[security][access]") {
  Refused c = read();
  c.qp_access = kLW | kRW | kRA;
  c.want = WcStatus::REM_INV_REQ_ERR;
  c.syndrome = kNakInvReq;
  refused(c);
}
TEST_CASE("qp_access.atomic", "[security][access]") {
  Refused c = atomic();
  c.qp_access = kLW | kRW | kRR;
  c.want = WcStatus::REM_INV_REQ_ERR;
  c.syndrome = kNakInvReq;
  refused(c);
}

// Row 1 again, for a WRITE with immediate: it took a receive WQE at the responder, which completes
// with LOC_ACCESS_ERR (IBA, verbs: a protection error on a local buffer during an RDMA WRITE with
// immediate from the remote); the WQEs behind it are flushed.
TEST_CASE("forged_rkey.write_with_imm", "[security][rkey]") {
  Bench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    t.fill(t.a, 0, 4096, 3);
    t.recv(t.b, 70, 0, 4096);
    t.recv(t.b, 71, 4096, 4096);
    t.b.h->cpu(2 * kUs);  // the receive doorbells reach the NIC
    MemGuard g(t);
    g.take();
    uint64_t unused = 0;
    const uint32_t forged = forged_variant(t, &unused);
    t.post(t.a, WrOpcode::RDMA_WRITE_WITH_IMM, 1, 0, 256, drv::kSendSignaled, 0x1234,
           int64_t(forged) - int64_t(t.b.mr.rkey));
    auto w = t.poll(t.a, t.a.scq, 1);
    t.expect(w.size() == 1 && w[0].status == WcStatus::REM_ACCESS_ERR &&
                 w[0].vendor_err == kNakRemAccess,
             w.empty() ? "no send CQE" : wc_str(w[0]));
    auto r = t.poll(t.b, t.b.rcq, 2);
    t.expect(r.size() == 2, fmt::format("{} receive CQEs, want 2", r.size()));
    if (r.size() == 2) {
      t.expect(r[0].wr_id == 70 && r[0].status == WcStatus::LOC_ACCESS_ERR, wc_str(r[0]));
      t.expect(r[1].wr_id == 71 && r[1].status == WcStatus::WR_FLUSH_ERR, wc_str(r[1]));
    }
    t.a.h->cpu(5 * kUs);
    t.expect(state_of(t.a) == dev::QpState::ERR, "requester QP not in ERR");
    t.expect(state_of(t.b) == dev::QpState::ERR, "responder QP not in ERR");
    g.check();
  });
  CHECK(stat(t.stats, "host1.nic.mr", "faults_bad_key") == 1);
  CHECK(stat(t.stats, "host1.nic.resp", "placed_bytes") == 0);
  t.report();
}

// Row 17: a local driver's WQE whose SGE names memory it may not use. The requester refuses it
// before sending anything: LOC_PROT_ERR, vendor_err the translation's refusal, the QP in ERR; the
// peer sees nothing and stays in RTS.
namespace {
void local_refused(const std::function<void(Bench&, drv::Sge*)>& forge, dev::VendorErr want,
                   const std::string& fault) {
  Bench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    t.fill(t.a, 0, 65536, 5);
    drv::Sge sg{t.a.buf, 256, t.a.mr.lkey};
    forge(t, &sg);
    MemGuard g(t);
    g.take();
    drv::SendWr wr;
    wr.wr_id = 9;
    wr.sg_list = &sg;
    wr.num_sge = 1;
    wr.opcode = WrOpcode::RDMA_WRITE;
    wr.send_flags = drv::kSendSignaled;
    wr.remote_addr = t.b.buf;
    wr.rkey = t.b.mr.rkey;
    const drv::SendWr* bad = nullptr;
    t.expect(t.a.d->post_send(t.a.qp, &wr, &bad) == 0, "post: " + t.a.d->last_error());
    auto w = t.poll(t.a, t.a.scq, 1);
    t.expect(w.size() == 1 && w[0].wr_id == 9 && w[0].status == WcStatus::LOC_PROT_ERR &&
                 w[0].vendor_err == static_cast<uint32_t>(want),
             w.empty() ? "no CQE"
                       : fmt::format("{} (want LOC_PROT_ERR, vendor_err {})", wc_str(w[0]),
                                     static_cast<uint32_t>(want)));
    t.a.h->cpu(5 * kUs);
    t.expect(state_of(t.a) == dev::QpState::ERR, "the QP not in ERR");
    t.expect(state_of(t.b) == dev::QpState::RTS, "the peer's QP left RTS");
    g.check();
  });
  CHECK(stat(t.stats, "host0.nic.req", "packets") == 0);
  CHECK(stat(t.stats, "host0.nic.req", "local_errors") == 1);
  CHECK(stat(t.stats, "host0.nic.mr", fault) == 1);
  t.report();
}
}  // namespace

TEST_CASE("local_lkey.forged", "[security][lkey]") {
  local_refused(
      [](Bench& t, drv::Sge* sg) {
        sg->lkey = (sg->lkey & ~0xFFu) | ((sg->lkey + 1) & 0xFFu);  // same index, other variant
      },
      dev::VendorErr::XLATE_BAD_KEY, "faults_bad_key");
}
TEST_CASE("local_lkey.other_pd", "[security][lkey]") {
  local_refused(
      [](Bench& t, drv::Sge* sg) {
        uint32_t pd2 = 0;
        drv::Mr mr2;
        const uint64_t buf2 = t.a.h->alloc_buffer(4096);
        if (t.a.d->alloc_pd(&pd2) || t.a.d->reg_mr(pd2, buf2, 4096, kAll, &mr2))
          t.expect(false, "second PD: " + t.a.d->last_error());
        *sg = drv::Sge{buf2, 256, mr2.lkey};
      },
      dev::VendorErr::XLATE_PD_MISMATCH, "faults_pd");
}
TEST_CASE("local_lkey.bounds_high", "[security][lkey]") {
  local_refused([](Bench& t, drv::Sge* sg) { sg->addr = t.a.buf + 65536 - 255; },
                dev::VendorErr::XLATE_BOUNDS, "faults_bounds");
}
TEST_CASE("local_lkey.bounds_low", "[security][lkey]") {
  local_refused([](Bench& t, drv::Sge* sg) { sg->addr = t.a.buf - 1; },
                dev::VendorErr::XLATE_BOUNDS, "faults_bounds");
}

// Row 17, READ: the response's data may only go where the local SGE allows. A region without
// LOCAL_WRITE is read-only to the NIC: the READ's data is not placed, LOC_PROT_ERR.
TEST_CASE("local_lkey.read_into_read_only_region", "[security][lkey]") {
  Bench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    t.fill(t.b, 0, 4096, 8);
    const uint64_t ro = t.a.h->alloc_buffer(4096);
    std::vector<uint8_t> poison(4096, 0xEE);
    t.a.h->app_write(ro, poison.data(), poison.size());
    drv::Mr mr_ro;
    t.expect(t.a.d->reg_mr(t.a.pdn, ro, 4096, 0, &mr_ro) == 0, "reg_mr: " + t.a.d->last_error());
    MemGuard g(t);
    g.take();
    drv::Sge sg{ro, 512, mr_ro.lkey};
    drv::SendWr wr;
    wr.wr_id = 4;
    wr.sg_list = &sg;
    wr.num_sge = 1;
    wr.opcode = WrOpcode::RDMA_READ;
    wr.send_flags = drv::kSendSignaled;
    wr.remote_addr = t.b.buf;
    wr.rkey = t.b.mr.rkey;
    const drv::SendWr* bad = nullptr;
    t.expect(t.a.d->post_send(t.a.qp, &wr, &bad) == 0, "post: " + t.a.d->last_error());
    auto w = t.poll(t.a, t.a.scq, 1);
    t.expect(w.size() == 1 && w[0].wr_id == 4 && w[0].status == WcStatus::LOC_PROT_ERR &&
                 w[0].vendor_err == static_cast<uint32_t>(dev::VendorErr::XLATE_ACCESS),
             w.empty() ? "no CQE" : wc_str(w[0]));
    t.a.h->cpu(5 * kUs);
    t.expect(state_of(t.a) == dev::QpState::ERR, "the QP not in ERR");
    t.expect(state_of(t.b) == dev::QpState::RTS, "the responder's QP left RTS");
    g.check();
  });
  CHECK(stat(t.stats, "host0.nic.mr", "faults_access") == 1);
  CHECK(stat(t.stats, "host0.nic.req", "read_responses") == 0);
  t.report();
}

// Row 17, receive side: a receive WQE whose lkey is forged. The SEND is refused: the receive
// completes with LOC_PROT_ERR, NAK remote operational error, REM_OP_ERR at the sender.
TEST_CASE("local_lkey.receive_forged", "[security][lkey]") {
  Bench t;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    t.fill(t.a, 0, 4096, 6);
    drv::Sge sg{t.b.buf, 4096, (t.b.mr.lkey & ~0xFFu) | ((t.b.mr.lkey + 1) & 0xFFu)};
    drv::RecvWr rw;
    rw.wr_id = 33;
    rw.sg_list = &sg;
    rw.num_sge = 1;
    const drv::RecvWr* bad = nullptr;
    t.expect(t.b.d->post_recv(t.b.qp, &rw, &bad) == 0, "post_recv: " + t.b.d->last_error());
    t.b.h->cpu(2 * kUs);
    MemGuard g(t);
    g.take();
    t.post(t.a, WrOpcode::SEND, 1, 0, 1000, drv::kSendSignaled);
    auto w = t.poll(t.a, t.a.scq, 1);
    t.expect(w.size() == 1 && w[0].status == WcStatus::REM_OP_ERR &&
                 w[0].vendor_err == wire::kAethSynNakRemOp,
             w.empty() ? "no send CQE" : wc_str(w[0]));
    auto r = t.poll(t.b, t.b.rcq, 1);
    t.expect(r.size() == 1 && r[0].wr_id == 33 && r[0].status == WcStatus::LOC_PROT_ERR,
             r.empty() ? "no receive CQE" : wc_str(r[0]));
    t.a.h->cpu(5 * kUs);
    t.expect(state_of(t.a) == dev::QpState::ERR, "requester QP not in ERR");
    t.expect(state_of(t.b) == dev::QpState::ERR, "responder QP not in ERR");
    g.check();
  });
  CHECK(stat(t.stats, "host1.nic.mr", "faults_bad_key") == 1);
  CHECK(stat(t.stats, "host1.nic.resp", "placed_bytes") == 0);
  t.report();
}

// Row 22: DMA to an IOVA the IOMMU does not map. Both hosts have an IOMMU; `victim`'s kernel
// unmaps its region's IOVAs while the region is still registered (a driver that unpins too
// early). Host 0 then posts `op` of `len` bytes at the start of host 1's buffer. Checks the
// completion (status, vendor_err), both QPs' states, and that not one byte of either host's
// memory changed.
void unmapped_iova(bool victim_is_responder, WrOpcode op, WcStatus want, uint8_t vendor_err,
                   dev::QpState requester, dev::QpState responder,
                   const std::function<void(const nlohmann::json&)>& counters) {
  Bench t({"iommu.enabled=true"});
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    t.fill(t.a, 0, 65536, 11);
    t.fill(t.b, 0, 65536, 5);
    Peer& victim = victim_is_responder ? t.b : t.a;
    victim.h->unpin_pages(victim.mr.addr, victim.mr.length);  // the IOVAs go, the region stays
    MemGuard g(t);
    g.take();
    t.expect(t.post(t.a, op, 1, 0, 8192, drv::kSendSignaled) == 0, "post: " + t.a.d->last_error());
    auto w = t.poll(t.a, t.a.scq, 1);
    t.expect(w.size() == 1 && w[0].status == want && w[0].vendor_err == vendor_err,
             w.empty() ? "no CQE" : wc_str(w[0]));
    t.b.h->cpu(5 * kUs);  // every DMA either NIC issued has reached its IOMMU
    g.check();
    t.expect(state_of(t.a) == requester, "host 0's QP state");
    t.expect(state_of(t.b) == responder, "host 1's QP state");
  });
  counters(t.stats);
  t.report();
}

// A WRITE into host 1's unmapped region: host 1's NIC translates the rkey and writes to the IOVAs
// its MTT holds; the IOMMU finds no mapping, drops every byte and counts the faults. A posted
// write has no completion: the NIC cannot know, and host 0's WRITE completes SUCCESS, as on real
// hardware.
TEST_CASE("iommu_unmapped_iova.write", "[security][iommu]") {
  unmapped_iova(true, WrOpcode::RDMA_WRITE, WcStatus::SUCCESS, 0, dev::QpState::RTS,
                dev::QpState::RTS, [](const nlohmann::json& st) {
                  CHECK(stat(st, "host1.iommu", "faults") >= 2);  // each page's piece
                  CHECK(stat(st, "host0.iommu", "faults") == 0);
                  CHECK(stat(st, "host1.nic.resp", "placed_bytes") == 8192);  // the NIC did
                });
}

// A READ of host 1's unmapped region: the responder's payload read fails (the IOMMU answers with
// an error), so no data is sent, but NAK remote operational error (0x63), and its QP goes to
// ERR. Host 0's buffer never gets the failed read's all-ones data.
TEST_CASE("iommu_unmapped_iova.read", "[security][iommu]") {
  unmapped_iova(true, WrOpcode::RDMA_READ, WcStatus::REM_OP_ERR, wire::kAethSynNakRemOp,
                dev::QpState::ERR, dev::QpState::ERR, [](const nlohmann::json& st) {
                  CHECK(stat(st, "host1.iommu", "faults") >= 2);
                  CHECK(stat(st, "host1.nic.resp", "read_dma_errors") >= 1);
                  CHECK(stat(st, "host1.nic.resp", "naks") == 1);
                  CHECK(stat(st, "host1.nic.tx", "dropped") >= 1);
                });
}

// A WRITE from host 0's own unmapped region: its payload reads fail, no packet is sent (host 1
// never sees all-ones data), the WQE completes LOC_PROT_ERR (DMA_READ_FAULT) and host 0's QP goes
// to ERR; host 1's stays in RTS.
TEST_CASE("iommu_unmapped_iova.local_write_source", "[security][iommu]") {
  unmapped_iova(false, WrOpcode::RDMA_WRITE, WcStatus::LOC_PROT_ERR,
                static_cast<uint8_t>(dev::VendorErr::DMA_READ_FAULT), dev::QpState::ERR,
                dev::QpState::RTS, [](const nlohmann::json& st) {
                  CHECK(stat(st, "host0.iommu", "faults") >= 2);
                  CHECK(stat(st, "host0.nic.req", "dma_read_errors") == 2);
                  CHECK(stat(st, "host0.nic.tx", "dropped") == 2);
                  CHECK(stat(st, "host1.nic.resp", "placed_bytes") == 0);
                });
}

// Row 23. A page list crafted by hand (a driver that is not ours, through raw commands): host
// 1's CREATE_MR names the bench buffer's addresses, but its MTT entries are IOVAs the host never
// mapped (a terabyte past everything it maps). With the IOMMU on, every DMA the NIC makes through
// them finds no mapping: host 0's WRITE into the region lands nowhere (a posted write: its WQE
// completes), its READ gets NAK 0x63, and not one byte of either host's memory changes.
void crafted_page_list(WrOpcode op, WcStatus want, uint8_t vendor_err, dev::QpState state) {
  Bench t({"iommu.enabled=true"});
  uint32_t key = 0;
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    t.fill(t.a, 0, 65536, 11);
    t.fill(t.b, 0, 65536, 5);
    Peer& b = t.b;
    RawCommands c{b};
    const uint64_t list = b.h->dma_alloc(64, 64);  // the list itself is mapped: the device reads it
    const uint64_t nowhere = host::SimHost::kIovaBase + (uint64_t(1) << 40);
    const uint64_t pages[2] = {nowhere, nowhere + 4096};
    c.poke(list, pages, sizeof pages);
    // Commands by hand in a block of their own; then the driver's block is the device's again.
    const uint64_t driver_block = c.block();
    const dev::CmdOut o = c.run(b.h->dma_alloc(256, 64), dev::CmdOp::CREATE_MR,
                                RawCommands::mr_args(b.pdn, kAll, b.buf, 2, list));
    c.set_block(driver_block);
    dev::CreateMrOut r{};
    std::memcpy(&r, o.result, sizeof r);
    key = r.rkey;
    t.expect(o.status == 0 && key != 0, fmt::format("raw CREATE_MR: status {}", o.status));
    MemGuard g(t);
    g.take();
    const int64_t delta = int64_t(key) - int64_t(b.mr.rkey);
    t.expect(t.post(t.a, op, 1, 0, 8192, drv::kSendSignaled, 0, delta) == 0,
             "post: " + t.a.d->last_error());
    auto w = t.poll(t.a, t.a.scq, 1);
    t.expect(w.size() == 1 && w[0].status == want && w[0].vendor_err == vendor_err,
             w.empty() ? "no CQE" : wc_str(w[0]));
    b.h->cpu(5 * kUs);  // every DMA either NIC issued has reached its IOMMU
    g.check();
    t.expect(state_of(t.a) == state, "host 0's QP state");
    t.expect(state_of(t.b) == state, "host 1's QP state");
  });
  CHECK(stat(t.stats, "host1.iommu", "faults") >= 2);  // each page's piece
  CHECK(stat(t.stats, "host0.iommu", "faults") == 0);
  t.report();
}

TEST_CASE("crafted_page_list.write", "[security][iommu]") {
  crafted_page_list(WrOpcode::RDMA_WRITE, WcStatus::SUCCESS, 0, dev::QpState::RTS);
}

TEST_CASE("crafted_page_list.read", "[security][iommu]") {
  crafted_page_list(WrOpcode::RDMA_READ, WcStatus::REM_OP_ERR, wire::kAethSynNakRemOp,
                    dev::QpState::ERR);
}

// Row 22, the device's own reads. A driver frees its send queue's memory (the IOMMU unmaps it)
// and rings the doorbell for a WQE there: the fetch fails, the WQE completes LOC_QP_OP_ERR
// (vendor_err DMA_READ_FAULT) and the QP goes to ERR; nothing is sent, no byte changes.
TEST_CASE("iommu_unmapped_iova.send_queue", "[security][iommu]") {
  Bench t({"iommu.enabled=true"});
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& a = t.a;
    a.h->dma_free(a.qp->sq, size_t(a.qp->sq_size) << a.qp->sq_shift);
    MemGuard g(t);
    g.take();
    a.h->mmio_write32(dev::kQpDbBase + dev::kQpDbStride * a.qp->qpn + dev::reg::QP_DOORBELL_SQ_WORD,
                      dev::QpDoorbellBits{1}.pack());
    auto w = t.poll(a, a.scq, 1);
    t.expect(w.size() == 1 && w[0].status == WcStatus::LOC_QP_OP_ERR &&
                 w[0].vendor_err == static_cast<uint8_t>(dev::VendorErr::DMA_READ_FAULT),
             w.empty() ? "no CQE" : wc_str(w[0]));
    t.b.h->cpu(5 * kUs);
    g.check();
    t.expect(state_of(t.a) == dev::QpState::ERR, "host 0's QP state");
    t.expect(state_of(t.b) == dev::QpState::RTS, "host 1's QP state");
  });
  CHECK(stat(t.stats, "host0.nic.req", "wqe_fetch_faults") == 1);
  CHECK(stat(t.stats, "host0.iommu", "faults") >= 1);
  CHECK(stat(t.stats, "host1.nic.resp", "placed_bytes") == 0);
  t.report();
}

// A command block, and a page list, at IOVAs the host never mapped: the device reads all ones
// and knows it (CMD_STATUS: DMA_ERROR; CREATE_MR: DMA_ERROR naming mtt_addr); it creates
// nothing, and its driver's next command works.
TEST_CASE("iommu_unmapped_iova.command_and_page_list", "[security][iommu]") {
  Bench t({"iommu.enabled=true"});
  t.run([&] {
    if (!t.setup(kAll, kAll)) return;
    Peer& a = t.a;
    RawCommands c{a};
    const uint64_t nowhere = host::SimHost::kIovaBase + (uint64_t(1) << 40);
    const uint64_t driver_block = c.block();
    MemGuard g(t);
    g.take();
    c.set_block(nowhere);
    a.h->mmio_write32(dev::reg::CMD_DOORBELL, 0x77);
    a.h->cpu(20 * kUs);
    const auto s = dev::CmdStatusBits::unpack(a.h->mmio_read32(dev::reg::CMD_STATUS));
    t.expect(!s.busy && s.status == static_cast<uint8_t>(dev::CmdStatus::DMA_ERROR),
             fmt::format("CMD_STATUS busy {} status {}", s.busy, s.status));
    const dev::CmdOut o = c.run(a.h->dma_alloc(256, 64), dev::CmdOp::CREATE_MR,
                                RawCommands::mr_args(a.pdn, kAll, a.buf, 2, nowhere));
    t.expect(o.status == static_cast<uint8_t>(dev::CmdStatus::DMA_ERROR) &&
                 o.syndrome == offsetof(dev::CmdIn, args) + offsetof(dev::CreateMrIn, mtt_addr),
             fmt::format("CREATE_MR: status {} syndrome {}", o.status, o.syndrome));
    c.set_block(driver_block);
    uint32_t pdn = 0;
    t.expect(a.d->alloc_pd(&pdn) == 0, "the driver's next command: " + a.d->last_error());
    a.h->cpu(5 * kUs);
    g.check();
  });
  t.report();
}
