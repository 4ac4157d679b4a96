// The device interface through the driver: CQE contents and order, error completions, register
// and command errors, completion events. One host thread drives both hosts' drivers.
#include <fmt/core.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <set>

#include "model/wire/framing.h"
#include "model/wire/opcodes.h"
#include "model/wire/transport.h"
#include "testbench/system/device_bench.h"

using namespace rn;
using dev::WcOpcode;
using dev::WcStatus;
using dev::WrOpcode;

using test::Bench;
using test::kLW;
using test::kRW;
using test::mask;
using test::wc_str;

TEST_CASE("CQEs carry the right contents, in posting order", "[cqe]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    t.fill(t.a, 0, 8192, 7);
    // Receives for the SEND_WITH_IMM, the WRITE_WITH_IMM and the SEND.
    t.recv(t.b, 501, 20000, 3000);
    t.recv(t.b, 502, 30000, 100);
    t.recv(t.b, 503, 40000, 3000);
    const uint32_t sig = drv::kSendSignaled;
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 1000, sig, 0, 0, 0);
    t.post(t.a, WrOpcode::RDMA_WRITE, 2, 1000, 1000, 0, 0, 0, 1000);
    t.post(t.a, WrOpcode::SEND_WITH_IMM, 3, 2000, 2500, sig, 0xCAFE0001);
    t.post(t.a, WrOpcode::RDMA_WRITE_WITH_IMM, 4, 5000, 3000, sig, 0xCAFE0002, 0, 5000);
    t.post(t.a, WrOpcode::SEND, 5, 0, 17, sig);
    auto s = t.poll(t.a, t.a.scq, 4);
    auto r = t.poll(t.b, t.b.rcq, 3);
    t.expect(s.size() == 4, fmt::format("send CQEs: {}", s.size()));
    t.expect(r.size() == 3, fmt::format("receive CQEs: {}", r.size()));
    if (s.size() != 4 || r.size() != 3) return;
    const uint64_t ids[] = {1, 3, 4, 5};
    const WcOpcode ops[] = {WcOpcode::RDMA_WRITE, WcOpcode::SEND, WcOpcode::RDMA_WRITE,
                            WcOpcode::SEND};
    for (int i = 0; i < 4; ++i) {
      t.expect(s[i].wr_id == ids[i] && s[i].opcode == ops[i] && s[i].status == WcStatus::SUCCESS &&
                   s[i].qp_num == t.a.qp->qpn && s[i].src_qp == t.b.qp->qpn,
               "send CQE " + std::to_string(i) + ": " + wc_str(s[i]));
    }
    t.expect(r[0].wr_id == 501 && r[0].opcode == WcOpcode::RECV && r[0].byte_len == 2500 &&
                 (r[0].wc_flags & drv::kWcWithImm) && r[0].imm_data == 0xCAFE0001 &&
                 r[0].qp_num == t.b.qp->qpn && r[0].src_qp == t.a.qp->qpn,
             "recv CQE 0: " + wc_str(r[0]));
    t.expect(r[1].wr_id == 502 && r[1].opcode == WcOpcode::RECV_RDMA_WITH_IMM &&
                 r[1].byte_len == 3000 && (r[1].wc_flags & drv::kWcWithImm) &&
                 r[1].imm_data == 0xCAFE0002,
             "recv CQE 1: " + wc_str(r[1]));
    t.expect(
        r[2].wr_id == 503 && r[2].opcode == WcOpcode::RECV && r[2].byte_len == 17 && !r[2].wc_flags,
        "recv CQE 2: " + wc_str(r[2]));
    // Data: WRITEs landed at their offsets, SENDs in the receive buffers; the 100-byte receive
    // buffer of the WRITE_WITH_IMM is untouched.
    t.expect(t.same(t.a, 0, t.b, 0, 2000), "WRITE data");
    t.expect(t.same(t.a, 5000, t.b, 5000, 3000), "WRITE_WITH_IMM data");
    t.expect(t.same(t.a, 2000, t.b, 20000, 2500), "SEND_WITH_IMM data");
    t.expect(t.same(t.a, 0, t.b, 40000, 17), "SEND data");
    t.expect(t.untouched(t.b, 30000, 100), "WRITE_WITH_IMM must not touch its receive buffer");
    t.expect(t.untouched(t.b, 2000, 3000), "nothing written between the WRITEs");
    t.expect(t.untouched(t.b, 20000 + 2500, 500), "nothing past the SEND in its buffer");
    // The driver learned from the CQEs that all five send WQEs are done.
    t.expect(t.a.qp->sq_ci == 5, fmt::format("sq_ci {}", t.a.qp->sq_ci));
  });
  t.report();
}

TEST_CASE("A WRITE with a wrong rkey fails with REM_ACCESS_ERR and touches nothing", "[error]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    t.fill(t.a, 0, 4096, 3);
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 4096, drv::kSendSignaled, 0, +1);  // stale variant
    t.post(t.a, WrOpcode::RDMA_WRITE, 2, 0, 100, drv::kSendSignaled);          // flushed
    auto s = t.poll(t.a, t.a.scq, 2);
    t.expect(s.size() == 2, fmt::format("CQEs: {}", s.size()));
    if (s.size() == 2) {
      t.expect(s[0].wr_id == 1 && s[0].status == WcStatus::REM_ACCESS_ERR, wc_str(s[0]));
      t.expect(s[1].wr_id == 2 && s[1].status == WcStatus::WR_FLUSH_ERR, wc_str(s[1]));
    }
    t.expect(t.untouched(t.b, 0, 65536), "responder memory must be untouched");
    dev::QueryQpOut qa{}, qb{};
    t.a.d->query_qp(t.a.qp, &qa);
    t.b.d->query_qp(t.b.qp, &qb);
    t.expect(qa.qp_state == static_cast<uint8_t>(dev::QpState::ERR), "requester QP in ERR");
    t.expect(qb.qp_state == static_cast<uint8_t>(dev::QpState::ERR), "responder QP in ERR");
  });
  t.report();
}

TEST_CASE("A WRITE past the end of the region fails with REM_ACCESS_ERR", "[error]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 4096, drv::kSendSignaled, 0, 0, 65536 - 4095);
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::REM_ACCESS_ERR,
             s.empty() ? "no CQE" : wc_str(s[0]));
    t.expect(t.untouched(t.b, 0, 65536), "responder memory must be untouched");
  });
  t.report();
}

TEST_CASE("A WRITE to a QP without remote write access fails with REM_INV_REQ_ERR", "[error]") {
  Bench t;
  t.run([&] {
    if (!t.setup(kLW)) return;
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 64, drv::kSendSignaled);
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::REM_INV_REQ_ERR,
             s.empty() ? "no CQE" : wc_str(s[0]));
    t.expect(t.untouched(t.b, 0, 65536), "responder memory must be untouched");
  });
  t.report();
}

TEST_CASE("A WRITE into a region without REMOTE_WRITE fails with REM_ACCESS_ERR", "[error]") {
  Bench t;
  t.run([&] {
    if (!t.setup(kLW | kRW, kLW)) return;
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 64, drv::kSendSignaled);
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::REM_ACCESS_ERR,
             s.empty() ? "no CQE" : wc_str(s[0]));
    t.expect(t.untouched(t.b, 0, 65536), "responder memory must be untouched");
  });
  t.report();
}

TEST_CASE("A WRITE into a region of another protection domain fails with REM_ACCESS_ERR",
          "[error]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    // The responder registers a second buffer in a PD of its own: the QP's PD does not match.
    uint32_t other_pd = 0;
    drv::Mr other;
    uint64_t buf = t.b.h->alloc_buffer(8192);
    std::vector<uint8_t> poison(8192, 0xEE);
    t.b.h->app_write(buf, poison.data(), poison.size());
    if (t.b.d->alloc_pd(&other_pd) || t.b.d->reg_mr(other_pd, buf, 8192, kLW | kRW, &other))
      return t.expect(false, "second PD: " + t.b.d->last_error());
    drv::Sge sg{t.a.buf, 512, t.a.mr.lkey};
    drv::SendWr wr;
    wr.wr_id = 1;
    wr.sg_list = &sg;
    wr.num_sge = 1;
    wr.opcode = WrOpcode::RDMA_WRITE;
    wr.send_flags = drv::kSendSignaled;
    wr.remote_addr = buf;
    wr.rkey = other.rkey;
    const drv::SendWr* bad = nullptr;
    t.a.d->post_send(t.a.qp, &wr, &bad);
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::REM_ACCESS_ERR,
             s.empty() ? "no CQE" : wc_str(s[0]));
    std::vector<uint8_t> after(8192);
    t.b.h->app_read(buf, after.data(), after.size());
    t.expect(after == poison, "the other PD's buffer must be untouched");
  });
  t.report();
  auto st = t.sys->sim().stats.to_json();
  CHECK(st["host1.nic.mr"]["faults_pd"]["value"] == 1);
}

TEST_CASE("A bad lkey fails locally with LOC_PROT_ERR and sends nothing", "[error]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    t.post(t.a, WrOpcode::RDMA_WRITE, 1, 0, 64, drv::kSendSignaled, 0, 0, 0, t.a.mr.lkey ^ 0x100);
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::LOC_PROT_ERR,
             s.empty() ? "no CQE" : wc_str(s[0]));
    t.expect(t.untouched(t.b, 0, 65536), "responder memory must be untouched");
  });
  t.report();
  auto st = t.sys->sim().stats.to_json();
  CHECK(st["host0.nic.req"]["packets"]["value"] == 0);
}

TEST_CASE("A SEND longer than the receive buffer: REM_INV_REQ_ERR and LOC_LEN_ERR", "[error]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    t.recv(t.b, 9, 0, 1000);
    t.post(t.a, WrOpcode::SEND, 1, 0, 5000, drv::kSendSignaled);
    auto s = t.poll(t.a, t.a.scq, 1);
    auto r = t.poll(t.b, t.b.rcq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::REM_INV_REQ_ERR,
             s.empty() ? "no send CQE" : wc_str(s[0]));
    t.expect(r.size() == 1 && r[0].wr_id == 9 && r[0].status == WcStatus::LOC_LEN_ERR,
             r.empty() ? "no recv CQE" : wc_str(r[0]));
    t.expect(t.untouched(t.b, 1000, 64536), "nothing past the receive buffer");
  });
  t.report();
}

TEST_CASE("A SEND with no receive posted is retried after the RNR timer until one is posted",
          "[rnr]") {
  Bench t;
  t.attr.min_rnr_timer = 1;  // the responder asks for 10 us
  t.run([&] {
    if (!t.setup()) return;
    t.fill(t.a, 0, 100, 3);
    t.post(t.a, WrOpcode::SEND, 1, 0, 100, drv::kSendSignaled);
    t.b.h->cpu(45 * kUs);  // about four RNR NAKs, 10 us apart
    drv::Wc wc;
    t.expect(t.a.d->poll_cq(t.a.scq, 1, &wc) == 0, "the SEND completed with no receive posted");
    t.recv(t.b, 7, 1000, 4096);
    auto r = t.poll(t.b, t.b.rcq, 1);
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::SUCCESS,
             s.empty() ? "no CQE" : wc_str(s[0]));
    t.expect(r.size() == 1 && r[0].wr_id == 7 && r[0].byte_len == 100,
             r.empty() ? "no receive CQE" : wc_str(r[0]));
    t.expect(t.same(t.a, 0, t.b, 1000, 100), "SEND data");
  });
  t.report();
  auto st = t.sys->sim().stats.to_json();
  CHECK(st["host1.nic.resp"]["rnr_naks"]["value"] >= 3);
  CHECK(st["host1.nic.resp"]["rnr_naks"]["value"] <= 6);
  CHECK(st["host0.nic.req"]["rnr_retries"]["value"] == st["host1.nic.resp"]["rnr_naks"]["value"]);
}

TEST_CASE("RNR retries run out: RNR_RETRY_EXC_ERR after rnr_retry retries", "[rnr]") {
  Bench t;
  t.attr.min_rnr_timer = 1;
  t.attr.rnr_retry = 2;
  t.run([&] {
    if (!t.setup()) return;
    t.post(t.a, WrOpcode::SEND, 1, 0, 100, drv::kSendSignaled);
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::RNR_RETRY_EXC_ERR,
             s.empty() ? "no CQE" : wc_str(s[0]));
    t.expect(t.untouched(t.b, 0, 65536), "responder memory must be untouched");
  });
  t.report();
  auto st = t.sys->sim().stats.to_json();
  CHECK(st["host1.nic.resp"]["rnr_naks"]["value"] == 3);  // the first try and two retries
  CHECK(st["host0.nic.req"]["rnr_retries"]["value"] == 2);
}

TEST_CASE("Refused register writes and doorbells set ERR_CODE and change nothing", "[registers]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    auto& io = *t.a.h;
    auto err = [&](dev::RegError want, uint64_t off, const char* what) {
      uint32_t code = io.mmio_read32(dev::reg::ERR_CODE);
      uint32_t info = io.mmio_read32(dev::reg::ERR_INFO);
      t.expect(code == static_cast<uint32_t>(want) && info == off,
               fmt::format("{}: ERR_CODE {} ERR_INFO {:#x}", what,
                           dev::to_string(static_cast<dev::RegError>(code)), info));
    };
    io.mmio_write32(dev::reg::ID, 1);
    err(dev::RegError::READ_ONLY, dev::reg::ID, "write to ID");
    io.mmio_write32(0x3000, 1);
    err(dev::RegError::BAD_OFFSET, 0x3000, "write to a hole");
    io.mmio_write32(0x12, 1);
    err(dev::RegError::WIDTH, 0x12, "unaligned write");
    uint64_t db = dev::kQpDbBase + dev::kQpDbStride * 999;
    io.mmio_write32(db, 1);
    err(dev::RegError::NO_SUCH_QP, db, "doorbell of a QP that does not exist");
    uint64_t mine = dev::kQpDbBase + dev::kQpDbStride * t.a.qp->qpn;
    io.mmio_write32(mine, 17);  // 17 WQEs in a 16-entry ring
    err(dev::RegError::DB_RANGE, mine, "producer index past the ring");
    io.mmio_write32(mine, 0x10000);
    err(dev::RegError::BAD_VALUE, mine, "producer index wider than 16 bits");
    uint64_t cqdb = dev::kCqDbBase + dev::kCqDbStride * t.a.scq->cqn;
    io.mmio_write32(cqdb, 5);  // consumer index ahead of the producer
    err(dev::RegError::DB_RANGE, cqdb, "CQ consumer index past the producer");
    io.mmio_write32(dev::reg::EQ_LOG_SIZE, 40);
    err(dev::RegError::BAD_VALUE, dev::reg::EQ_LOG_SIZE, "EQ size out of range");
    io.mmio_write32(dev::reg::EQ_LOG_SIZE, static_cast<uint32_t>(dev::kMaxEqLogSize) + 1);
    err(dev::RegError::BAD_VALUE, dev::reg::EQ_LOG_SIZE, "EQ size one above the largest");
    // A reserved bit set in a register with bit fields: refused, whatever the fields say.
    auto lowest = [](uint32_t mask) { return mask & (~mask + 1); };
    io.mmio_write32(cqdb, lowest(dev::CqDoorbellBits::kReservedMask));
    err(dev::RegError::BAD_VALUE, cqdb, "CQ doorbell reserved bit");
    io.mmio_write32(
        cqdb, dev::CqDoorbellBits::kReservedMask & ~lowest(dev::CqDoorbellBits::kReservedMask));
    err(dev::RegError::BAD_VALUE, cqdb, "CQ doorbell reserved bits");
    io.mmio_write32(dev::reg::EQ_DOORBELL,
                    dev::EqDoorbellBits::kArmMask | lowest(dev::EqDoorbellBits::kReservedMask));
    err(dev::RegError::BAD_VALUE, dev::reg::EQ_DOORBELL, "EQ doorbell reserved bit");
    io.mmio_write32(dev::reg::MSIX_CTRL, 2);
    err(dev::RegError::BAD_VALUE, dev::reg::MSIX_CTRL, "MSIX_CTRL reserved bit");
    io.mmio_write32(dev::reg::EQ_ADDR_LO, 0x1000 | 8);
    err(dev::RegError::BAD_VALUE, dev::reg::EQ_ADDR_LO, "EQ ring not 64-byte aligned");
    io.mmio_write32(dev::reg::MSIX_ADDR_LO, 0x1000 | 2);
    err(dev::RegError::BAD_VALUE, dev::reg::MSIX_ADDR_LO, "MSI-X address not 4-byte aligned");
    t.expect(io.mmio_read32(dev::reg::ERR_COUNT) == 15, "ERR_COUNT counts every refusal");
    // The registers read back as the driver set them: nothing refused got through.
    t.expect(!dev::MsixCtrlBits::unpack(io.mmio_read32(dev::reg::MSIX_CTRL)).masked,
             "MSI-X still unmasked");
    t.expect(dev::EqLogSizeBits::unpack(io.mmio_read32(dev::reg::EQ_LOG_SIZE)).log_size == 8,
             "EQ_LOG_SIZE still 8");
    // The QP still works: nothing was fetched by the refused doorbells.
    t.fill(t.a, 0, 512, 11);
    t.post(t.a, WrOpcode::RDMA_WRITE, 7, 0, 512, drv::kSendSignaled);
    auto s = t.poll(t.a, t.a.scq, 1);
    t.expect(s.size() == 1 && s[0].status == WcStatus::SUCCESS && s[0].wr_id == 7,
             s.empty() ? "no CQE after refused doorbells" : wc_str(s[0]));
    t.expect(t.same(t.a, 0, t.b, 0, 512), "data after refused doorbells");
  });
  t.report();
}

TEST_CASE("Malformed commands complete with a status naming the field", "[commands]") {
  Bench t;
  t.run([&] {
    auto& d = *t.a.d;
    if (d.open()) return t.expect(false, "open: " + d.last_error());
    uint32_t pdn = 0;
    d.alloc_pd(&pdn);
    drv::Cq* cq = nullptr;
    d.create_cq(8, &cq);
    // A region asking for remote write without local write.
    uint64_t buf = t.a.h->alloc_buffer(8192);
    drv::Mr mr;
    int e = d.reg_mr(pdn, buf, 8192, kRW, &mr);
    t.expect(
        e == EINVAL && d.last_status() == dev::CmdStatus::BAD_PARAM &&
            d.last_syndrome() == offsetof(dev::CmdIn, args) + offsetof(dev::CreateMrIn, access),
        "REMOTE_WRITE without LOCAL_WRITE: " + d.last_error());
    // A QP on a CQ that does not exist.
    drv::Cq ghost = *cq;
    ghost.cqn = 77;
    drv::Qp* qp = nullptr;
    e = d.create_qp(pdn, &ghost, cq, drv::QpCap{}, false, &qp);
    t.expect(
        e == ENOENT && d.last_status() == dev::CmdStatus::BAD_HANDLE &&
            d.last_syndrome() == offsetof(dev::CmdIn, args) + offsetof(dev::CreateQpIn, send_cqn),
        "bad send CQ: " + d.last_error());
    // RESET -> RTR is not a transition.
    e = d.create_qp(pdn, cq, cq, drv::QpCap{}, false, &qp);
    t.expect(e == 0, "create_qp: " + d.last_error());
    if (e) return;
    drv::QpAttr at;
    at.qp_state = dev::QpState::RTR;
    e = d.modify_qp(qp, at, mask({dev::QpAttr::STATE}));
    t.expect(e == EINVAL && d.last_status() == dev::CmdStatus::BAD_STATE,
             "RESET->RTR: " + d.last_error());
    // INIT -> RTR without the required attributes.
    at.qp_state = dev::QpState::INIT;
    e = d.modify_qp(qp, at,
                    mask({dev::QpAttr::STATE, dev::QpAttr::PKEY_INDEX, dev::QpAttr::PORT,
                          dev::QpAttr::ACCESS_FLAGS}));
    t.expect(e == 0, "RESET->INIT: " + d.last_error());
    at.qp_state = dev::QpState::RTR;
    e = d.modify_qp(qp, at, mask({dev::QpAttr::STATE, dev::QpAttr::PATH_MTU}));
    t.expect(e == EINVAL && d.last_status() == dev::CmdStatus::BAD_STATE,
             "INIT->RTR missing attrs: " + d.last_error());
    // A path MTU code that does not exist.
    at.path_mtu = static_cast<dev::Mtu>(7);
    at.ah.dest_ipv4 = 0x0A000002;
    e = d.modify_qp(
        qp, at,
        mask({dev::QpAttr::STATE, dev::QpAttr::AV, dev::QpAttr::PATH_MTU, dev::QpAttr::DEST_QPN,
              dev::QpAttr::RQ_PSN, dev::QpAttr::MAX_DEST_RD_ATOMIC, dev::QpAttr::MIN_RNR_TIMER}));
    t.expect(
        e == EINVAL && d.last_status() == dev::CmdStatus::BAD_PARAM &&
            d.last_syndrome() == offsetof(dev::CmdIn, args) + offsetof(dev::ModifyQpIn, path_mtu),
        "path_mtu 7: " + d.last_error());
    // A PD still in use cannot go; a CQ still in use cannot go.
    e = d.dealloc_pd(pdn);
    t.expect(e == EBUSY && d.last_status() == dev::CmdStatus::BUSY,
             "dealloc busy PD: " + d.last_error());
    e = d.destroy_cq(cq);
    t.expect(e == EBUSY, "destroy busy CQ: " + d.last_error());
    t.expect(d.destroy_qp(qp) == 0, "destroy_qp: " + d.last_error());
    t.expect(d.destroy_cq(cq) == 0, "destroy_cq: " + d.last_error());
    t.expect(d.dealloc_pd(pdn) == 0, "dealloc_pd: " + d.last_error());
    // Unknown opcode, written by hand into a command block of our own.
    dev::CmdIn raw{};
    raw.opcode = 0x99;
    uint64_t blk = t.a.h->dma_alloc(128, 64);
    t.a.h->mem_write(blk, &raw, sizeof raw);
    t.a.h->mmio_write32(dev::reg::CMD_ADDR_LO, static_cast<uint32_t>(blk));
    t.a.h->mmio_write32(dev::reg::CMD_ADDR_HI, static_cast<uint32_t>(blk >> 32));
    t.a.h->mmio_write32(dev::reg::CMD_DOORBELL, 0x1234);
    t.a.h->wait_write(blk + 64, 64, 100 * kUs);
    dev::CmdOut out{};
    t.a.h->mem_read(blk + 64, &out, sizeof out);
    t.expect(out.token == 0x1234 && out.status == static_cast<uint8_t>(dev::CmdStatus::BAD_OPCODE),
             fmt::format("unknown opcode: token {:#x} status {}", out.token, out.status));
    // CMD_STATUS tells the same: not busy, the last status and the low half of its token.
    const uint32_t cs = t.a.h->mmio_read32(dev::reg::CMD_STATUS);
    const auto st = dev::CmdStatusBits::unpack(cs);
    t.expect((cs & dev::CmdStatusBits::kReservedMask) == 0 && !st.busy &&
                 st.status == static_cast<uint32_t>(dev::CmdStatus::BAD_OPCODE) &&
                 st.token == 0x1234,
             fmt::format("CMD_STATUS {:#x}", cs));
  });
  t.report();
}

TEST_CASE("Completion events arrive as MSI-X interrupts when the CQ is armed", "[events]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    t.b.d->req_notify_cq(t.b.rcq, false);
    t.recv(t.b, 1, 0, 64);
    t.post(t.a, WrOpcode::SEND, 1, 0, 64, drv::kSendSignaled);
    drv::Cq* which = nullptr;
    int e = t.b.d->get_cq_event(&which, 1'000'000);
    t.expect(e == 0 && which == t.b.rcq, "event for the receive CQ: " + t.b.d->last_error());
    auto r = t.poll(t.b, t.b.rcq, 1);
    t.expect(r.size() == 1 && r[0].status == WcStatus::SUCCESS, "the completion behind the event");
    // Not armed again: a second SEND raises no interrupt.
    t.recv(t.b, 2, 0, 64);
    t.post(t.a, WrOpcode::SEND, 2, 0, 64, drv::kSendSignaled);
    r = t.poll(t.b, t.b.rcq, 1);
    t.expect(r.size() == 1, "second completion");
  });
  t.report();
  auto st = t.sys->sim().stats.to_json();
  CHECK(st["host1"]["interrupts"]["value"] == 1);
}

TEST_CASE("A CQ armed for solicited completions wakes only for a SEND with SE, or an error",
          "[events]") {
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    for (uint64_t i = 1; i <= 3; ++i) t.recv(t.b, i, 0, 64);
    t.b.d->req_notify_cq(t.b.rcq, true);
    drv::Cq* which = nullptr;
    // A SEND without SE: its receive completion raises no event.
    t.post(t.a, WrOpcode::SEND, 1, 0, 64, drv::kSendSignaled);
    t.expect(t.b.d->get_cq_event(&which, 20'000'000) != 0, "an event for an unsolicited SEND");
    // WRITE with immediate and SE, then a SEND with SE: each an event (armed again in between).
    t.post(t.a, WrOpcode::RDMA_WRITE_WITH_IMM, 2, 0, 64, drv::kSendSignaled | drv::kSendSolicited,
           0x55);
    t.expect(t.b.d->get_cq_event(&which, 1'000'000) == 0 && which == t.b.rcq,
             "no event for a WRITE with immediate and SE: " + t.b.d->last_error());
    t.b.d->req_notify_cq(t.b.rcq, true);
    t.post(t.a, WrOpcode::SEND, 3, 0, 64, drv::kSendSignaled | drv::kSendSolicited);
    t.expect(t.b.d->get_cq_event(&which, 1'000'000) == 0 && which == t.b.rcq,
             "no event for a SEND with SE: " + t.b.d->last_error());
    auto r = t.poll(t.b, t.b.rcq, 3);
    t.expect(r.size() == 3, fmt::format("{} receive completions", r.size()));
  });
  CHECK(test::stat(t.stats, "host1", "interrupts") == 2);
  t.report();
}

namespace {

// The payloads of the RDMA WRITE packets toward QP `qpn` recorded in a pcap, in wire order,
// decoded by the wire library (framing, then transport headers).
std::vector<uint8_t> written_on_wire(const std::string& pcap_path, uint32_t qpn) {
  std::vector<uint8_t> out;
  char ebuf[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline(pcap_path.c_str(), ebuf);
  if (!p) {
    FAIL_CHECK("cannot open " << pcap_path << ": " << ebuf);
    return out;
  }
  wire::RoceV2Ipv4Framing framing;
  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  while (pcap_next_ex(p, &hdr, &data) == 1) {
    size_t toff = 0, tlen = 0, hlen = 0, plen = 0;
    wire::TransportHeader th;
    if (framing.unwrap(data, hdr->caplen, &toff, &tlen, nullptr) != wire::FrameError::None ||
        wire::decode_transport(data + toff, tlen, &th, &hlen, &plen) != wire::ParseError::None)
      continue;
    if (th.dest_qp == qpn && wire::op_info(th.opcode).kind == wire::OpInfo::Kind::Write)
      out.insert(out.end(), data + toff + hlen, data + toff + hlen + plen);
  }
  pcap_close(p);
  return out;
}

// A 64 KiB RDMA WRITE (with immediate) while the sender rewrites its buffer three times: each
// packet carries the bytes its DMA read found, and the receiver must hold exactly what the wire
// carried, with page sharing (sim.share_pages) or without. Afterwards, neither side's writes reach
// the other.
void rewrite_during_write(bool share) {
  Bench t({fmt::format("sim.share_pages={}", share)},
          test::out_dir(share ? "rewrite_share_on" : "rewrite_share_off"));
  std::vector<uint8_t> got;
  t.run([&] {
    if (!t.setup()) return;
    t.fill(t.a, 0, t.a.len, 7);
    t.recv(t.b, 2, 0, 16);  // consumed by the immediate: the receiver's completion
    t.post(t.a, WrOpcode::RDMA_WRITE_WITH_IMM, 1, 0, static_cast<uint32_t>(t.a.len),
           drv::kSendSignaled, 0x1234);
    for (uint64_t seed : {8, 9, 10}) {
      t.a.h->cpu(1500 * kNs);
      t.fill(t.a, 0, t.a.len, seed);
    }
    // The receiver's completion comes after the data (PCIe posted writes stay in order).
    auto r = t.poll(t.b, t.b.rcq, 1);
    t.expect(r.size() == 1 && r[0].status == WcStatus::SUCCESS, "the WRITE completes");
    got.resize(t.b.len);
    t.b.h->app_read(t.b.buf, got.data(), got.size());
    t.fill(t.a, 0, t.a.len, 11);
    std::vector<uint8_t> again(t.b.len);
    t.b.h->app_read(t.b.buf, again.data(), again.size());
    t.expect(again == got, "the sender's later writes do not reach the receiver's memory");
    std::vector<uint8_t> junk(t.b.len, 0x5A);
    t.b.h->app_write(t.b.buf, junk.data(), junk.size());
    t.expect(!t.a.h->app_check_pattern(t.a.buf, t.a.len, 11),
             "the receiver's writes do not reach the sender's memory");
  });
  t.report();
  REQUIRE(got.size() == 65536);
  std::vector<uint8_t> wire = written_on_wire(t.out + "/wire.pcap", t.b.qp->qpn);
  REQUIRE(wire.size() == got.size());
  auto diff = std::mismatch(wire.begin(), wire.end(), got.begin());
  INFO("first byte where the receiver's memory differs from the wire: "
       << (diff.first - wire.begin()));
  CHECK(diff.first == wire.end());
  // The premise: the rewrites happened while the data was on its way (the received pages hold
  // more than one of the patterns).
  std::set<uint64_t> seeds;
  for (size_t off = 0; off < got.size(); off += 4096)
    for (uint64_t seed = 7; seed <= 10; ++seed) {
      bool match = true;
      for (size_t i = 0; i < 4096 && match; ++i)
        match = got[off + i] == hostmem::pattern_byte(seed, off + i);
      if (match) seeds.insert(seed);
    }
  INFO("patterns among the received pages: " << seeds.size());
  CHECK(seeds.size() >= 2);
  auto value = [&](const char* host, const char* k) {
    return t.stats[host][k]["value"].get<double>();
  };
  if (share) {
    CHECK(value("host1", "mem_pages_mapped_shared") > 0);    // pages were shared...
    CHECK(value("host0", "mem_pages_copied_on_write") > 0);  // ...and rewritten while shared
  } else {
    CHECK(value("host1", "mem_pages_mapped_shared") == 0);
    CHECK(value("host0", "mem_pages_copied_on_write") == 0);
  }
}

}  // namespace

TEST_CASE("Whole-page payloads into unaligned or scattered buffers arrive intact (no pcap)",
          "[sharing]") {
  // Without a pcap nothing copies the payloads into the frames: the receiver's bridge must take
  // them from the pages the frames refer to, where it cannot map them.
  Bench t;
  t.run([&] {
    if (!t.setup()) return;
    t.fill(t.a, 0, 16384, 21);
    t.recv(t.b, 11, 40000 + 100, 4096);  // an unaligned receive buffer
    t.post(t.a, WrOpcode::SEND, 1, 0, 4096, drv::kSendSignaled);
    t.post(t.a, WrOpcode::RDMA_WRITE, 2, 4096, 8192, drv::kSendSignaled, 0, 0, 100);
    auto s = t.poll(t.a, t.a.scq, 2);
    auto r = t.poll(t.b, t.b.rcq, 1);
    t.expect(s.size() == 2 && r.size() == 1, "two send and one receive completions");
    t.b.h->cpu(2 * kUs);  // the WRITE's last bytes land after the sender's completion
    t.expect(t.same(t.a, 0, t.b, 40100, 4096), "SEND data in the unaligned receive buffer");
    t.expect(t.same(t.a, 4096, t.b, 100, 8192), "WRITE data at an unaligned address");
    t.expect(t.untouched(t.b, 0, 100) && t.untouched(t.b, 8292, 100), "nothing around the WRITE");
  });
  t.report();
  CHECK(t.stats["host1"]["mem_pages_mapped_shared"]["value"].get<double>() == 0);
}

TEST_CASE("Page sharing on: the receiver holds what the wire carried, the sides stay apart",
          "[sharing]") {
  rewrite_during_write(true);
}

TEST_CASE("Page sharing off: the receiver holds what the wire carried, the sides stay apart",
          "[sharing]") {
  rewrite_during_write(false);
}

TEST_CASE("ACK coalescing answers AckReqs that come close together with one ACK", "[ack]") {
  // 50 small WRITEs, each with AckReq (a message's last packet): with nic.ack_coalesce the
  // responder holds an ACK 2 us and answers the AckReqs arriving meanwhile with it.
  Bench t({"nic.ack_coalesce=2us"});
  t.run([&] {
    if (!t.setup(kLW | kRW, kLW | kRW, 64)) return;
    t.fill(t.a, 0, 64 * 50, 12);
    for (uint64_t i = 0; i < 50; ++i)
      t.post(t.a, WrOpcode::RDMA_WRITE, i, i * 64, 64, drv::kSendSignaled, 0, 0, i * 64);
    auto w = t.poll(t.a, t.a.scq, 50);
    t.expect(w.size() == 50, fmt::format("{} CQEs of 50", w.size()));
    for (size_t i = 0; i < w.size(); ++i)
      t.expect(w[i].status == WcStatus::SUCCESS && w[i].wr_id == i, wc_str(w[i]));
    t.b.h->cpu(5 * kUs);
    t.expect(t.same(t.a, 0, t.b, 0, 64 * 50), "data");
  });
  const uint64_t acks = test::stat(t.stats, "host1.nic.resp", "acks");
  const uint64_t coalesced = test::stat(t.stats, "host1.nic.resp", "acks_coalesced");
  CHECK(acks < 50);
  CHECK(coalesced > 0);
  CHECK(acks + coalesced == 50);
  CHECK(test::stat(t.stats, "host0.nic.req", "acks") == acks);
  t.report();
}
