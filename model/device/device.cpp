#include "model/device/device.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <deque>
#include <memory>

#include "model/wire/framing.h"

namespace rn::device {

using dev::CmdStatus;
using dev::QpState;
using dev::RegError;
using qp::kKnownAccess;

namespace {}  // namespace

Device::Device(const qp::NicEnv& env, qp::QpTable& t, xlate::MrTable& mrs, qp::Completion& comp,
               qp::QpEngine& qps, pcie::DmaPort& dma, uint64_t max_mr_size)
    : env_(env),
      t_(t),
      mrs_(mrs),
      comp_(comp),
      qps_(qps),
      dma_(dma),
      max_mr_size_(max_mr_size),
      stats_(env.sim.stats, env.name + ".dev", "device interface: registers, doorbells, commands"),
      commands_(stats_.counter("commands", "count", "commands executed")),
      command_errors_(
          stats_.counter("command_errors", "count", "commands completed with an error status")),
      sq_doorbells_(stats_.counter("sq_doorbells", "count", "send queue doorbells accepted")),
      wqe_doorbells_(stats_.counter("wqe_doorbells", "count",
                                    "WQE_DOORBELL writes accepted (a send WQE with its doorbell)")),
      rq_doorbells_(stats_.counter("rq_doorbells", "count", "receive queue doorbells accepted")),
      srq_doorbells_(stats_.counter("srq_doorbells", "count",
                                    "shared receive queue (SRQ) doorbells accepted")),
      cq_doorbells_(stats_.counter("cq_doorbells", "count", "CQ doorbells accepted")),
      reg_errors_(
          stats_.counter("register_errors", "count", "refused register and doorbell writes")),
      resets_(stats_.counter("resets", "count", "device resets (CTRL.reset)")),
      command_aborts_(stats_.counter("command_aborts", "count",
                                     "commands aborted (CMD_ABORT, or a reset) before executing")) {
}

Device::~Device() { env_.sim.stats.remove(&stats_); }

void Device::reg_error(RegError e, uint64_t offset) {
  err_code_ = static_cast<uint32_t>(e);
  err_info_ = static_cast<uint32_t>(offset);
  ++err_count_;
  ++reg_errors_;
  RN_LOG(env_.sim, LogCat::kError, env_.name, "register write at {:#x} refused: {}", offset,
         dev::to_string(e));
  env_.driver_error(qp::DriverError::kRegister, offset,
                    "write to BAR0 offset {:#x} refused: {} (ERR_CODE {})", offset,
                    dev::to_string(e), static_cast<uint32_t>(e));
}

uint32_t Device::mmio_read32(uint64_t off) {
  switch (off) {
    case dev::reg::ID:
      return static_cast<uint32_t>(dev::kMagic);
    case dev::reg::VERSION:
      return static_cast<uint32_t>(dev::kVersion);
    case dev::reg::CAPS:
      return v1() ? 0 : caps().pack();
    case dev::reg::CMD_ADDR_LO:
      return static_cast<uint32_t>(cmd_addr_);
    case dev::reg::CMD_ADDR_HI:
      return static_cast<uint32_t>(cmd_addr_ >> 32);
    case dev::reg::CMD_STATUS: {
      dev::CmdStatusBits s;
      s.busy = cmd_busy_;
      s.status = cmd_last_status_;
      s.token = cmd_last_token_;  // its low 16 bits
      return s.pack();
    }
    case dev::reg::EQ_ADDR_LO:
      return eq_addr_lo_;
    case dev::reg::EQ_ADDR_HI:
      return eq_addr_hi_;
    case dev::reg::EQ_LOG_SIZE:
      return dev::EqLogSizeBits{comp_.eq_log_size()}.pack();
    case dev::reg::ERR_CODE: {
      uint32_t v = err_code_;
      err_code_ = 0;
      return v;
    }
    case dev::reg::ERR_INFO:
      return err_info_;
    case dev::reg::ERR_COUNT:
      return err_count_;
    case dev::reg::MSIX_ADDR_LO:
      return static_cast<uint32_t>(comp_.msix_addr);
    case dev::reg::MSIX_ADDR_HI:
      return static_cast<uint32_t>(comp_.msix_addr >> 32);
    case dev::reg::MSIX_DATA:
      return comp_.msix_data;
    case dev::reg::MSIX_CTRL:
      return dev::MsixCtrlBits{comp_.msix_masked}.pack();
    case dev::reg::CTRL:
      return dev::CtrlBits{enabled_, resetting_, quiesce_}.pack();
    case dev::reg::STATUS: {
      dev::StatusBits s;
      s.ready = !resetting_;
      s.enabled = enabled_;
      s.quiesced = quiesce_ && !resetting_ && !in_flight();
      s.eq_overrun = comp_.eq_overrun();
      return s.pack();
    }
    case dev::reg::DRIVER_VERSION:
      return driver_version_;
    case dev::reg::EQ_MODERATION:
      return dev::EqModerationBits{comp_.moderation_events(),
                                   static_cast<uint32_t>(comp_.moderation_period() / kNs)}
          .pack();
    default:
      return 0;
  }
}

dev::CapsBits Device::caps() const {
  dev::CapsBits c;
  c.inline_data = true;
  c.wqe_doorbell = true;
  c.srq = true;
  c.device_control = true;
  c.eq_moderation = true;
  c.icm = cache_ != nullptr;
  c.max_inline_data = dev::kMaxSendInline;
  return c;
}

namespace {
bool in_wqe_doorbells(uint64_t off) {
  return off >= dev::kWqeDbBase && off < dev::kWqeDbBase + dev::kMaxQpDoorbells * dev::kWqeDbStride;
}
}  // namespace

void Device::mmio_write(uint64_t off, const uint8_t* data, uint32_t len) {
  if (in_wqe_doorbells(off)) {
    if (gate_ && !gate(off)) return;
    return wqe_doorbell(off, data, len);
  }
  if (len != 4) return reg_error(RegError::WIDTH, off);  // registers take 32-bit writes only
  uint32_t v;
  std::memcpy(&v, data, sizeof v);
  mmio_write32(off, v);
}

void Device::mmio_write32(uint64_t off, uint32_t v) {
  if (off & 3) return reg_error(RegError::WIDTH, off);
  if (gate_ && !gate(off)) return;  // a reset runs, or the device is disabled
  if (in_wqe_doorbells(off)) {
    uint8_t b[4];
    std::memcpy(b, &v, sizeof b);
    return wqe_doorbell(off, b, sizeof b);  // refused: too short for a WQE
  }
  qp::Completion& c = comp_;
  if (off >= dev::kQpDbBase && off < dev::kQpDbBase + dev::kMaxQpDoorbells * dev::kQpDbStride)
    return qp_doorbell(off, v);
  if (off >= dev::kCqDbBase && off < dev::kCqDbBase + dev::kMaxCqDoorbells * dev::kCqDbStride)
    return cq_doorbell(off, v);
  if (off >= dev::kSrqDbBase && off < dev::kSrqDbBase + dev::kMaxSrqDoorbells * dev::kSrqDbStride)
    return srq_doorbell(off, v);
  switch (off) {
    case dev::reg::CMD_ADDR_LO:
      cmd_addr_ = (cmd_addr_ & ~0xFFFFFFFFull) | v;
      return;
    case dev::reg::CMD_ADDR_HI:
      cmd_addr_ = (cmd_addr_ & 0xFFFFFFFFull) | (uint64_t(v) << 32);
      return;
    case dev::reg::CMD_DOORBELL:
      return start_command(v);
    case dev::reg::EQ_ADDR_LO:
      if (v & dev::EqAddrLoBits::kReservedMask) return reg_error(RegError::BAD_VALUE, off);
      eq_addr_lo_ = v;
      c.set_eq_addr((uint64_t(eq_addr_hi_) << 32) | eq_addr_lo_);
      return;
    case dev::reg::EQ_ADDR_HI:
      eq_addr_hi_ = v;
      c.set_eq_addr((uint64_t(eq_addr_hi_) << 32) | eq_addr_lo_);
      return;
    case dev::reg::EQ_LOG_SIZE: {
      const auto r = dev::EqLogSizeBits::unpack(v);
      if ((v & dev::EqLogSizeBits::kReservedMask) || r.log_size > dev::kMaxEqLogSize)
        return reg_error(RegError::BAD_VALUE, off);
      if (r.log_size &&
          !pcie::in_address_space(c.eq_addr(), (uint64_t(1) << r.log_size) * sizeof(dev::Eqe)))
        return reg_error(RegError::ADDR_RANGE, off);
      c.start_eq(static_cast<uint8_t>(r.log_size));
      return;
    }
    case dev::reg::EQ_DOORBELL: {
      using Db = dev::EqDoorbellBits;
      if (c.eq_log_size() == 0) return reg_error(RegError::BAD_VALUE, off);
      if (v & Db::kReservedMask) return reg_error(RegError::BAD_VALUE, off);
      const Db db = Db::unpack(v);
      if (!c.eq_doorbell(db.ci, db.arm)) return reg_error(RegError::DB_RANGE, off);
      return;
    }
    case dev::reg::MSIX_ADDR_LO:
      if (v & dev::MsixAddrLoBits::kReservedMask) return reg_error(RegError::BAD_VALUE, off);
      c.msix_addr = (c.msix_addr & ~0xFFFFFFFFull) | v;
      return;
    case dev::reg::MSIX_ADDR_HI:
      c.msix_addr = (c.msix_addr & 0xFFFFFFFFull) | (uint64_t(v) << 32);
      return;
    case dev::reg::MSIX_DATA:
      c.msix_data = v;
      return;
    case dev::reg::MSIX_CTRL:
      if (v & dev::MsixCtrlBits::kReservedMask) return reg_error(RegError::BAD_VALUE, off);
      c.msix_masked = dev::MsixCtrlBits::unpack(v).masked;
      return;
    case dev::reg::CTRL:
      if (v & dev::CtrlBits::kReservedMask) return reg_error(RegError::BAD_VALUE, off);
      return write_ctrl(v);
    case dev::reg::DRIVER_VERSION:
      if (v < 1 || v > dev::kVersion) {
        driver_version_ = 0;  // reads back 0: the driver sees its version was refused
        return reg_error(RegError::BAD_VALUE, off);
      }
      driver_version_ = v;
      RN_LOG(env_.sim, LogCat::kCmd, env_.name, "driver speaks interface version {}", v);
      return;
    case dev::reg::CMD_ABORT:
      return abort_command();
    case dev::reg::EQ_MODERATION: {
      using B = dev::EqModerationBits;
      const B b = B::unpack(v);
      if ((v & B::kReservedMask) || (b.max_events > 1 && b.period == 0))
        return reg_error(RegError::BAD_VALUE, off);
      c.set_moderation(b.max_events, Tick(b.period) * kNs);
      return;
    }
    case dev::reg::STATUS:
    case dev::reg::ID:
    case dev::reg::VERSION:
    case dev::reg::CAPS:
    case dev::reg::CMD_STATUS:
    case dev::reg::ERR_CODE:
    case dev::reg::ERR_INFO:
    case dev::reg::ERR_COUNT:
      return reg_error(RegError::READ_ONLY, off);
    default:
      return reg_error(RegError::BAD_OFFSET, off);
  }
}

void Device::qp_doorbell(uint64_t off, uint32_t v) {
  uint64_t rel = off - dev::kQpDbBase;
  uint32_t qpn = static_cast<uint32_t>(rel / dev::kQpDbStride);
  bool rq = (rel % dev::kQpDbStride) == dev::reg::QP_DOORBELL_RQ_WORD;
  using Db = dev::QpDoorbellBits;
  qp::QpCtx* q = t_.qp(qpn);
  if (!q) return reg_error(RegError::NO_SUCH_QP, off);
  if (v & Db::kReservedMask) return reg_error(RegError::BAD_VALUE, off);
  const uint32_t low = Db::unpack(v).pi;  // the low bits of the free-running producer index
  if (rq) {
    if (q->state == QpState::RESET) return reg_error(RegError::QP_STATE, off);
    if (q->srqn != 0) return reg_error(RegError::DB_RANGE, off);  // no RQ: its WQEs are the SRQ's
    uint32_t pi = q->rq.pi + ((low - q->rq.pi) & Db::kPiMax);
    if (pi - q->rq.ci > q->rq_size()) return reg_error(RegError::DB_RANGE, off);
    ++rq_doorbells_;
    RN_LOG(env_.sim, LogCat::kDoorbell, env_.name, "qp {} RQ doorbell pi {}", qpn, pi);
    if (quiesce_) return hold(HeldKind::kRq, qpn, q->epoch, pi);
    qps_.rq_doorbell(*q, pi);
  } else {
    uint32_t pi = 0;
    if (!sq_producer(*q, low, off, &pi)) return;
    ++sq_doorbells_;
    RN_LOG(env_.sim, LogCat::kDoorbell, env_.name, "qp {} SQ doorbell pi {}", qpn, pi);
    if (quiesce_) return hold(HeldKind::kSq, qpn, q->epoch, pi);
    qps_.sq_doorbell(*q, pi);
  }
}

bool Device::sq_producer(qp::QpCtx& q, uint32_t low, uint64_t off, uint32_t* pi) {
  using Db = dev::QpDoorbellBits;
  if (q.state != QpState::RTS && q.state != QpState::SQD && q.state != QpState::ERR &&
      q.state != QpState::SQE) {
    reg_error(RegError::QP_STATE, off);
    return false;
  }
  *pi = q.sq.pi + ((low - q.sq.pi) & Db::kPiMax);
  if (*pi - q.sq.done > q.sq_size()) {
    reg_error(RegError::DB_RANGE, off);
    return false;
  }
  return true;
}

void Device::wqe_doorbell(uint64_t off, const uint8_t* data, uint32_t len) {
  if (v1()) return reg_error(RegError::BAD_OFFSET, off);  // no WQE_DOORBELL in version 1
  const uint64_t rel = off - dev::kWqeDbBase;
  if (rel % dev::kWqeDbStride) return reg_error(RegError::BAD_OFFSET, off);
  if (len % 4 || len < sizeof(dev::SendWqe) || len > dev::kWqeDbStride)
    return reg_error(RegError::WIDTH, off);
  const uint32_t qpn = static_cast<uint32_t>(rel / dev::kWqeDbStride);
  qp::QpCtx* q = t_.qp(qpn);
  if (!q) return reg_error(RegError::NO_SUCH_QP, off);
  dev::SendWqe h;
  std::memcpy(&h, data, sizeof h);
  // Every byte the WQE uses must be in the write and in the QP's stride: it is cached from the
  // write as it would be from the queue.
  const bool inl = qp::is_inline(h);
  const uint64_t used = sizeof h + (q->ud() ? sizeof(dev::UdSeg) : 0) +
                        (inl ? h.inline_len
                             : (qp::is_atomic(h.opcode) ? sizeof(dev::AtomicSeg) : 0) +
                                   uint64_t(h.num_sge) * sizeof(dev::Sge));
  if (used > len || used > (uint64_t(1) << q->sq_shift) ||
      (inl && (h.num_sge != 0 || h.inline_len > caps().max_inline_data)))
    return reg_error(RegError::BAD_WQE, off);
  uint32_t pi = 0;
  if (!sq_producer(*q, (h.wqe_index + 1u) & dev::QpDoorbellBits::kPiMax, off, &pi)) return;
  ++wqe_doorbells_;
  RN_LOG(env_.sim, LogCat::kDoorbell, env_.name, "qp {} WQE doorbell pi {} ({} bytes)", qpn, pi,
         len);
  // Quiesced: held as an SQ doorbell; the WQE is fetched from the send queue once released.
  if (quiesce_) return hold(HeldKind::kSq, qpn, q->epoch, pi);
  qps_.sq_doorbell_wqe(*q, pi, data, len);
}

void Device::srq_doorbell(uint64_t off, uint32_t v) {
  if (v1()) return reg_error(RegError::BAD_OFFSET, off);  // no SRQs in version 1
  const uint64_t rel = off - dev::kSrqDbBase;
  if (rel % dev::kSrqDbStride) return reg_error(RegError::BAD_OFFSET, off);
  const uint32_t srqn = static_cast<uint32_t>(rel / dev::kSrqDbStride);
  qp::SrqCtx* s = t_.srq(srqn);
  if (!s) return reg_error(RegError::NO_SUCH_SRQ, off);
  using Db = dev::SrqDoorbellBits;
  if (v & Db::kReservedMask) return reg_error(RegError::BAD_VALUE, off);
  const uint32_t pi = s->pi + ((Db::unpack(v).pi - s->pi) & Db::kPiMax);  // free-running
  if (pi - s->taken > s->size()) return reg_error(RegError::DB_RANGE, off);
  ++srq_doorbells_;
  RN_LOG(env_.sim, LogCat::kDoorbell, env_.name, "SRQ {} doorbell pi {}", srqn, pi);
  if (quiesce_) return hold(HeldKind::kSrq, srqn, s->epoch, pi);
  qps_.srq_doorbell(*s, pi);
}

void Device::cq_doorbell(uint64_t off, uint32_t v) {
  uint64_t rel = off - dev::kCqDbBase;
  if (rel % dev::kCqDbStride) return reg_error(RegError::BAD_OFFSET, off);
  uint32_t cqn = static_cast<uint32_t>(rel / dev::kCqDbStride);
  qp::CqCtx* cq = t_.cq(cqn);
  if (!cq) return reg_error(RegError::NO_SUCH_CQ, off);
  using Db = dev::CqDoorbellBits;
  if (v & Db::kReservedMask) return reg_error(RegError::BAD_VALUE, off);
  const Db db = Db::unpack(v);
  uint32_t ci = cq->ci + ((db.ci - cq->ci) & Db::kCiMax);  // the free-running index
  if (ci - cq->ci > cq->pi - cq->ci) return reg_error(RegError::DB_RANGE, off);
  ++cq_doorbells_;
  cq->ci = ci;
  cq->overrun = false;
  if (db.arm) {
    cq->armed = true;
    cq->solicited_only = db.solicited;
    if (cq->pi != cq->ci && !cq->solicited_only) {  // completions already waiting
      cq->armed = false;
      comp_.post_eqe(dev::EqeType::COMPLETION, cqn, 0, now());
    }
  }
}

void Device::start_command(uint32_t token) {
  if (cmd_busy_) return reg_error(RegError::CMD_BUSY, dev::reg::CMD_DOORBELL);
  if (cmd_addr_ & 63) return reg_error(RegError::CMD_ADDR_ALIGN, dev::reg::CMD_DOORBELL);
  if (!pcie::in_address_space(cmd_addr_, dev::kCmdBlockBytes))
    return reg_error(RegError::ADDR_RANGE, dev::reg::CMD_DOORBELL);
  cmd_busy_ = true;
  cmd_out_issued_ = false;
  cmd_last_token_ = token;
  uint64_t addr = cmd_addr_;
  const uint64_t gen = ++cmd_gen_;
  // The DMA lands in a buffer of this command's own: an aborted command's read may land late.
  auto buf = std::make_shared<dev::CmdIn>();
  dma_.dma_read(
      addr, reinterpret_cast<uint8_t*>(buf.get()), sizeof(dev::CmdIn), now(),
      [this, addr, token, gen, buf] {
        if (gen != cmd_gen_) return;  // aborted (CMD_ABORT or a reset)
        dev::CmdIn& in = cmd_in_;
        in = *buf;
        in.token = token;
        if (dma_.read_failed())  // the block is not mapped: no command to run
          return finish_command(addr, gen, /*read_failed=*/true);
        mr_pages_.clear();
        mr_pages_.shrink_to_fit();  // a page list is handed to its region, never kept here
        if (in.opcode == static_cast<uint16_t>(dev::CmdOp::CREATE_MR)) {
          dev::CreateMrIn a;
          std::memcpy(&a, in.args, sizeof a);
          // The page list is read only once everything else about the region checks out: its length
          // then follows from the region, and execute() finds the list complete.
          if (check_mr(a).status == CmdStatus::OK) {
            auto pages = std::make_shared<std::vector<uint64_t>>(a.n_pages);
            dma_.dma_read(a.mtt_addr, reinterpret_cast<uint8_t*>(pages->data()), a.n_pages * 8u,
                          now(), [this, addr, gen, pages] {
                            if (gen != cmd_gen_) return;
                            // A list that did not arrive is no list (DMA_ERROR).
                            if (!dma_.read_failed()) mr_pages_ = std::move(*pages);
                            finish_command(addr, gen);
                          });
            return;
          }
        }
        finish_command(addr, gen);
      });
}

void Device::finish_command(uint64_t addr, uint64_t gen, bool read_failed) {
  env_.sim.eq.after(env_.params.cmd_latency, [this, addr, gen, read_failed] {
    if (gen != cmd_gen_) return;  // aborted while it waited
    const dev::CmdIn& in = cmd_in_;
    dev::CmdOut out{};
    Result r = read_failed ? Result{CmdStatus::DMA_ERROR, 0} : execute(in, &out);
    out.status = static_cast<uint8_t>(r.status);
    out.syndrome = r.syndrome;
    out.token = in.token;
    ++commands_;
    if (r.status != CmdStatus::OK) ++command_errors_;
    cmd_last_status_ = out.status;
    RN_LOG(env_.sim, LogCat::kCmd, env_.name, "command {} -> {} (syndrome {})",
           dev::to_string(static_cast<dev::CmdOp>(in.opcode)), dev::to_string(r.status),
           r.syndrome);
    cmd_out_issued_ = true;
    dma_.dma_write(addr + sizeof(dev::CmdIn), reinterpret_cast<const uint8_t*>(&out), sizeof out,
                   now(), [this, gen] {
                     if (gen == cmd_gen_) cmd_busy_ = false;
                   });
  });
}

Device::Result Device::execute(const dev::CmdIn& in, dev::CmdOut* out) {
  auto arg = [&in](auto* a) { std::memcpy(a, in.args, sizeof *a); };
  auto result = [out](const auto& r) {
    static_assert(sizeof r <= sizeof out->result);
    std::memcpy(out->result, &r, sizeof r);
  };
  const auto& p = env_.params;
  const auto op = static_cast<dev::CmdOp>(in.opcode);
  if (v1() && (op == dev::CmdOp::CREATE_SRQ || op == dev::CmdOp::MODIFY_SRQ ||
               op == dev::CmdOp::QUERY_SRQ || op == dev::CmdOp::DESTROY_SRQ))
    return {CmdStatus::BAD_OPCODE, static_cast<uint32_t>(offsetof(dev::CmdIn, opcode))};
  switch (op) {
    case dev::CmdOp::QUERY_DEVICE: {
      dev::QueryDeviceIn a;
      arg(&a);
      if (a.page == 1 && !v1()) {
        dev::QueryDeviceSrqOut r{};
        r.max_srq = p.max_srqs;
        r.max_srq_wr = max_srq_wr();
        r.max_srq_sge = dev::kMaxRecvSge;
        result(r);
        return {};
      }
      if (a.page == 2 && cache_ && !v1()) {
        dev::QueryDeviceIcmOut r{};
        r.icm_bytes = icm_bytes();
        r.mpt_entry_bytes = sizeof(dev::MptEntry);
        result(r);
        return {};
      }
      if (a.page != 0) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(dev::QueryDeviceIn, page)};
      dev::QueryDeviceOut r{};
      r.fw_version = 0x00010000;
      r.vendor_id = static_cast<uint32_t>(dev::kVendorId);
      r.vendor_part_id = static_cast<uint32_t>(dev::kVendorPartId);
      r.max_qp = p.max_qps;
      r.max_cq = p.max_cqs;
      r.max_mr = mrs_.max_regions();
      r.max_pd = p.max_pds;
      r.max_qp_wr = p.max_qp_wr;
      r.max_cqe = p.max_cqe;
      r.max_sge = dev::kMaxSendSge;
      r.max_recv_sge = dev::kMaxRecvSge;
      r.max_mr_size = max_mr_size_;
      result(r);
      return {};
    }
    case dev::CmdOp::QUERY_PORT: {
      dev::QueryPortIn a;
      arg(&a);
      if (a.port != 1) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(dev::QueryPortIn, port)};
      dev::QueryPortOut r{};
      r.state = 4;
      r.max_mtu = static_cast<uint8_t>(dev::Mtu::MTU_4096);
      r.active_mtu = static_cast<uint8_t>(dev::Mtu::MTU_4096);
      r.link_layer = 2;
      r.speed_mbps = static_cast<uint32_t>(p.port_rate_bps / 1e6);
      std::memcpy(r.mac, p.mac.data(), 6);
      r.ipv4 = p.ipv4;
      result(r);
      return {};
    }
    case dev::CmdOp::CREATE_PD: {
      uint32_t pdn = qp::take_oldest(free_pds_);
      if (pdn == 0) {
        if (t_.pds.size() > p.max_pds) return {CmdStatus::NO_RESOURCES, 0};
        pdn = static_cast<uint32_t>(std::max<size_t>(1, t_.pds.size()));  // 0 is reserved
        t_.pds.resize(pdn + 1, false);
        t_.pd_users.resize(pdn + 1, 0);
      }
      t_.pds[pdn] = true;
      t_.pd_users[pdn] = 0;
      dev::CreatePdOut r{};
      r.pdn = pdn;
      result(r);
      return {};
    }
    case dev::CmdOp::DESTROY_PD: {
      dev::HandleIn a;
      arg(&a);
      if (a.handle >= t_.pds.size() || !t_.pds[a.handle])
        return {CmdStatus::BAD_HANDLE, RN_FIELD_OFF(dev::HandleIn, handle)};
      if (t_.pd_users[a.handle] || mrs_.count_in_pd(a.handle))
        return {CmdStatus::BUSY, RN_FIELD_OFF(dev::HandleIn, handle)};
      t_.pds[a.handle] = false;
      free_pds_.push_back(a.handle);
      return {};
    }
    case dev::CmdOp::CREATE_MR: {
      dev::CreateMrIn a;
      arg(&a);
      return create_mr(a, out);
    }
    case dev::CmdOp::DESTROY_MR: {
      dev::HandleIn a;
      arg(&a);
      const xlate::Region* r = mrs_.find(a.handle);
      if (!r) return {CmdStatus::BAD_HANDLE, RN_FIELD_OFF(dev::HandleIn, handle)};
      if (cache_) {
        cache_->invalidate(a.handle, r);
        write_mpt(a.handle, nullptr);
      }
      mrs_.remove(a.handle);
      return {};
    }
    case dev::CmdOp::MAP_ICM: {
      if (!cache_ || v1()) return {CmdStatus::BAD_OPCODE, 0};
      dev::MapIcmIn a;
      arg(&a);
      if (cache_->mpt_base()) return {CmdStatus::BUSY, 0};
      if (a.addr == 0 || (a.addr & 4095) || !pcie::in_address_space(a.addr, a.bytes))
        return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(dev::MapIcmIn, addr)};
      if (a.bytes < icm_bytes()) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(dev::MapIcmIn, bytes)};
      cache_->set_mpt_base(a.addr);
      return {};
    }
    case dev::CmdOp::CREATE_CQ: {
      dev::CreateCqIn a;
      arg(&a);
      return create_cq(a, out);
    }
    case dev::CmdOp::DESTROY_CQ: {
      dev::HandleIn a;
      arg(&a);
      qp::CqCtx* cq = t_.cq(a.handle);
      if (!cq) return {CmdStatus::BAD_HANDLE, RN_FIELD_OFF(dev::HandleIn, handle)};
      if (cq->users) return {CmdStatus::BUSY, RN_FIELD_OFF(dev::HandleIn, handle)};
      *cq = qp::CqCtx{};
      free_cqs_.push_back(a.handle);
      return {};
    }
    case dev::CmdOp::CREATE_QP: {
      dev::CreateQpIn a;
      arg(&a);
      if (v1() && a.srqn != 0) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(dev::CreateQpIn, srqn)};
      dev::CreateQpOut r{};
      Result res = qps_.create(a, &r.qpn);
      if (res.status == CmdStatus::OK) {
        t_.qp(r.qpn)->no_inline = v1();
        result(r);
      }
      return res;
    }
    case dev::CmdOp::MODIFY_QP: {
      dev::ModifyQpIn a;
      arg(&a);
      return qps_.modify(a);
    }
    case dev::CmdOp::QUERY_QP: {
      dev::HandleIn a;
      arg(&a);
      dev::QueryQpOut r{};
      Result res = qps_.query(a.handle, &r);
      if (res.status == CmdStatus::OK) result(r);
      return res;
    }
    case dev::CmdOp::DESTROY_QP: {
      dev::HandleIn a;
      arg(&a);
      return qps_.destroy(a.handle);
    }
    case dev::CmdOp::CREATE_SRQ: {
      dev::CreateSrqIn a;
      arg(&a);
      return create_srq(a, out);
    }
    case dev::CmdOp::MODIFY_SRQ: {
      dev::ModifySrqIn a;
      arg(&a);
      return modify_srq(a);
    }
    case dev::CmdOp::QUERY_SRQ: {
      dev::HandleIn a;
      arg(&a);
      const qp::SrqCtx* s = t_.srq(a.handle);
      if (!s) return {CmdStatus::BAD_HANDLE, RN_FIELD_OFF(dev::HandleIn, handle)};
      dev::QuerySrqOut r{};
      r.limit = s->limit;
      r.max_wr = s->size();
      r.max_sge = dev::max_recv_sge(s->shift);
      r.pdn = s->pdn;
      r.pi = static_cast<uint16_t>(s->pi);
      r.taken = static_cast<uint16_t>(s->taken);
      r.users = s->users;
      result(r);
      return {};
    }
    case dev::CmdOp::DESTROY_SRQ: {
      dev::HandleIn a;
      arg(&a);
      qp::SrqCtx* s = t_.srq(a.handle);
      if (!s) return {CmdStatus::BAD_HANDLE, RN_FIELD_OFF(dev::HandleIn, handle)};
      if (s->users) return {CmdStatus::BUSY, RN_FIELD_OFF(dev::HandleIn, handle)};
      t_.pd_users[s->pdn]--;
      *s = qp::SrqCtx{};  // a fetch still in flight finds it gone (its epoch is 0 now)
      free_srqs_.push_back(a.handle);
      return {};
    }
  }
  return {CmdStatus::BAD_OPCODE, static_cast<uint32_t>(offsetof(dev::CmdIn, opcode))};
}

Device::Result Device::check_mr(const dev::CreateMrIn& a) const {
  using M = dev::CreateMrIn;
  if (!t_.pd_valid(a.pdn)) return {CmdStatus::BAD_HANDLE, RN_FIELD_OFF(M, pdn)};
  if (a.access & ~kKnownAccess) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, access)};
  const uint32_t lw = static_cast<uint32_t>(dev::Access::LOCAL_WRITE);
  const uint32_t needs_lw = static_cast<uint32_t>(dev::Access::REMOTE_WRITE) |
                            static_cast<uint32_t>(dev::Access::REMOTE_ATOMIC);
  if ((a.access & needs_lw) && !(a.access & lw))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, access)};
  if (a.access & static_cast<uint32_t>(dev::Access::ZERO_BASED))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, access)};  // zero-based MRs: not yet
  if (a.page_shift < dev::kPageShift || a.page_shift > dev::kMaxPageShift)
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, page_shift)};
  if (a.length == 0 || a.length > max_mr_size_)
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, length)};
  if (!pcie::in_address_space(a.iova, a.length))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, iova)};
  const uint64_t page = uint64_t(1) << a.page_shift;
  uint64_t first = a.iova & ~(page - 1);
  uint64_t last = (a.iova + a.length - 1) & ~(page - 1);
  uint64_t need = (last - first) / page + 1;
  if (a.n_pages != need) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, n_pages)};
  if (a.mtt_addr & 7) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, mtt_addr)};
  if (!pcie::in_address_space(a.mtt_addr, uint64_t(a.n_pages) * 8))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, mtt_addr)};
  return {};
}

Device::Result Device::create_mr(const dev::CreateMrIn& a, dev::CmdOut* out) {
  using M = dev::CreateMrIn;
  if (Result r = check_mr(a); r.status != CmdStatus::OK) return r;
  // The page list was read by start_command (check_mr passed there too: nothing has changed).
  if (mr_pages_.size() != a.n_pages) return {CmdStatus::DMA_ERROR, RN_FIELD_OFF(M, mtt_addr)};
  const uint64_t page = uint64_t(1) << a.page_shift;
  for (uint64_t pa : mr_pages_)
    if (pa & (page - 1)) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, mtt_addr)};
  if (cache_ && !cache_->mpt_base()) return {CmdStatus::NO_RESOURCES, 0};  // before MAP_ICM
  uint32_t key = mrs_.add(a.pdn, a.access, a.iova, a.length, a.page_shift, std::move(mr_pages_),
                          cache_ ? a.mtt_addr : 0);
  mr_pages_.clear();
  if (key == 0) return {CmdStatus::NO_RESOURCES, 0};
  if (cache_) {
    cache_->invalidate(key, nullptr);
    write_mpt(key, mrs_.find(key));
  }
  dev::CreateMrOut r{};
  r.lkey = r.rkey = key;
  std::memcpy(out->result, &r, sizeof r);
  return {};
}

uint64_t Device::icm_bytes() const { return uint64_t(mrs_.max_regions()) * sizeof(dev::MptEntry); }

void Device::write_mpt(uint32_t key, const xlate::Region* r) {
  dev::MptEntry e{};
  if (r) {
    e.key = r->key;
    e.pdn = r->pdn;
    e.access = r->access;
    e.page_shift = r->page_shift;
    e.valid = 1;
    e.iova = r->iova;
    e.length = r->length;
    e.mtt_addr = r->mtt_addr;
    e.n_pages = static_cast<uint32_t>(r->pages.size());
  }
  dma_.dma_write(cache_->mpt_base() + uint64_t(key >> 8) * sizeof e,
                 reinterpret_cast<const uint8_t*>(&e), sizeof e, now(), [] {});
}

Device::Result Device::create_cq(const dev::CreateCqIn& a, dev::CmdOut* out) {
  using C = dev::CreateCqIn;
  if (a.log_size < 1 || a.log_size > 22 || (1u << a.log_size) > env_.params.max_cqe)
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(C, log_size)};
  if (a.ring_addr == 0 || (a.ring_addr & 63) ||
      !pcie::in_address_space(a.ring_addr, (uint64_t(1) << a.log_size) * sizeof(dev::Cqe)))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(C, ring_addr)};
  uint32_t cqn = qp::take_oldest(free_cqs_);
  if (cqn == 0) {
    if (t_.cqs.size() > env_.params.max_cqs) return {CmdStatus::NO_RESOURCES, 0};
    cqn = static_cast<uint32_t>(std::max<size_t>(1, t_.cqs.size()));  // 0 is reserved
    t_.cqs.resize(cqn + 1);
  }
  qp::CqCtx& cq = t_.cqs[cqn];
  cq = qp::CqCtx{};
  cq.valid = true;
  cq.cqn = cqn;
  cq.ring = a.ring_addr;
  cq.log_size = a.log_size;
  dev::CreateCqOut r{};
  r.cqn = cqn;
  std::memcpy(out->result, &r, sizeof r);
  return {};
}

}  // namespace rn::device

namespace rn::device {

uint32_t Device::max_srq_wr() const {
  // The largest power of two within max_qp_wr, at most 2^15 (the doorbell's 16-bit index).
  uint32_t w = 1;
  while (w * 2 <= std::min<uint32_t>(env_.params.max_qp_wr, 1u << 15)) w *= 2;
  return w;
}

Device::Result Device::create_srq(const dev::CreateSrqIn& a, dev::CmdOut* out) {
  using S = dev::CreateSrqIn;
  if (a.log_size < 1 || a.log_size > 15 || (1u << a.log_size) > max_srq_wr())
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(S, log_size)};
  if (!dev::valid_recv_wqe_shift(a.wqe_shift))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(S, wqe_shift)};
  if (!t_.pd_valid(a.pdn)) return {CmdStatus::BAD_HANDLE, RN_FIELD_OFF(S, pdn)};
  if (a.limit > (1u << a.log_size)) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(S, limit)};
  if (a.ring_addr == 0 || (a.ring_addr & 63) ||
      !pcie::in_address_space(a.ring_addr, uint64_t(1) << (a.log_size + a.wqe_shift)))
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(S, ring_addr)};
  uint32_t srqn = qp::take_oldest(free_srqs_);
  if (srqn == 0) {
    const size_t n = std::max<size_t>(1, t_.srqs.size());  // 0 is reserved
    if (n > env_.params.max_srqs || n >= dev::kMaxSrqDoorbells) return {CmdStatus::NO_RESOURCES, 0};
    srqn = static_cast<uint32_t>(n);
    t_.srqs.resize(n + 1);
  }
  qp::SrqCtx& s = t_.srqs[srqn];
  s = qp::SrqCtx{};
  s.valid = true;
  s.srqn = srqn;
  s.epoch = ++srq_epochs_;
  s.pdn = a.pdn;
  s.ring = a.ring_addr;
  s.log_size = a.log_size;
  s.shift = a.wqe_shift;
  s.limit = a.limit;
  s.cache.resize(std::max<uint32_t>(1, std::min(env_.params.rq_prefetch, s.size())));
  t_.pd_users[a.pdn]++;
  dev::CreateSrqOut r{};
  r.srqn = srqn;
  std::memcpy(out->result, &r, sizeof r);
  return {};
}

Device::Result Device::modify_srq(const dev::ModifySrqIn& a) {
  using M = dev::ModifySrqIn;
  qp::SrqCtx* s = t_.srq(a.srqn);
  if (!s) return {CmdStatus::BAD_HANDLE, RN_FIELD_OFF(M, srqn)};
  const uint32_t max_wr = static_cast<uint32_t>(dev::SrqAttr::MAX_WR);
  const uint32_t limit = static_cast<uint32_t>(dev::SrqAttr::LIMIT);
  if (a.attr_mask & ~(max_wr | limit)) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, attr_mask)};
  if (a.attr_mask & max_wr)  // resizing an SRQ is not supported
    return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, max_wr)};
  if (!(a.attr_mask & limit)) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, attr_mask)};
  if (a.limit == 0 || a.limit > s->size()) return {CmdStatus::BAD_PARAM, RN_FIELD_OFF(M, limit)};
  s->limit = a.limit;
  return {};
}

}  // namespace rn::device

namespace rn::device {

bool Device::gate(uint64_t off) {
  if (resetting_) {
    if (off == dev::reg::CTRL) return true;
    reg_error(RegError::NOT_READY, off);
    return false;
  }
  // Disabled: no new work (CQ and EQ doorbells only move consumer indices and arm).
  const bool work =
      off == dev::reg::CMD_DOORBELL ||
      (off >= dev::kQpDbBase && off < dev::kQpDbBase + dev::kMaxQpDoorbells * dev::kQpDbStride) ||
      (off >= dev::kSrqDbBase &&
       off < dev::kSrqDbBase + dev::kMaxSrqDoorbells * dev::kSrqDbStride) ||
      in_wqe_doorbells(off);
  if (!enabled_ && work) {
    reg_error(RegError::NOT_ENABLED, off);
    return false;
  }
  return true;
}

void Device::write_ctrl(uint32_t v) {
  const auto b = dev::CtrlBits::unpack(v);
  if (b.reset) return start_reset();
  enabled_ = b.enable;
  update_gate();
  set_quiesce(b.quiesce);
}

void Device::set_quiesce(bool on) {
  if (quiesce_ == on) return;
  quiesce_ = on;
  RN_LOG(env_.sim, LogCat::kCmd, env_.name, "quiesce {} ({} doorbells held)", on ? "on" : "off",
         held_.size());
  if (on) return;
  // Released: each held doorbell takes effect, in the order it came (a queue reset or destroyed
  // since has a new epoch or none: its doorbell is dropped; one behind an index already taken,
  // as a later doorbell of a confused driver may be, is dropped too).
  std::vector<Held> held;
  held.swap(held_);
  auto ahead = [](uint32_t pi, uint32_t cur) { return static_cast<int32_t>(pi - cur) > 0; };
  for (const Held& h : held) {
    if (h.kind == HeldKind::kSrq) {
      qp::SrqCtx* s = t_.srq(h.num);
      if (s && s->epoch == h.epoch && ahead(h.pi, s->pi)) qps_.srq_doorbell(*s, h.pi);
      continue;
    }
    qp::QpCtx* q = t_.qp(h.num);
    if (!q || q->epoch != h.epoch) continue;
    if (h.kind == HeldKind::kSq) {
      if (ahead(h.pi, q->sq.pi)) qps_.sq_doorbell(*q, h.pi);
    } else if (ahead(h.pi, q->rq.pi)) {
      qps_.rq_doorbell(*q, h.pi);
    }
  }
}

bool Device::in_flight() const {
  if (cmd_busy_ || dma_.writes_done() > now()) return true;
  for (const auto& q : t_.qps)
    if (q && q->valid && (q->sq.done != q->sq.pi || q->rs.reads_queued != 0)) return true;
  return false;
}

void Device::abort_command() {
  if (!cmd_busy_ || cmd_out_issued_) return;  // nothing to abort, or too late: it completes
  ++cmd_gen_;                                 // its callbacks still to come do nothing
  cmd_busy_ = false;
  cmd_last_status_ = static_cast<uint32_t>(CmdStatus::ABORTED);
  mr_pages_.clear();
  ++command_aborts_;
  RN_LOG(env_.sim, LogCat::kCmd, env_.name, "command (token {:#x}) aborted", cmd_last_token_);
}

void Device::start_reset() {
  ++resets_;
  RN_LOG(env_.sim, LogCat::kCmd, env_.name, "device reset");
  // The command processor: a running command is abandoned (its CmdOut is never written, unless
  // that write was already issued: it lands before the reset completes).
  if (cmd_busy_ && !cmd_out_issued_) ++command_aborts_;
  ++cmd_gen_;
  cmd_busy_ = cmd_out_issued_ = false;
  cmd_addr_ = 0;
  cmd_last_status_ = cmd_last_token_ = 0;
  mr_pages_.clear();
  held_.clear();
  quiesce_ = false;
  enabled_ = true;
  driver_version_ = 0;
  // Every object, QPs first (they hold their CQs, SRQs and PDs). Each goes as its DESTROY
  // command would take it, whatever it is doing: its epoch makes the callbacks in flight for it
  // stale, so nothing more is fetched, sent or written for it.
  for (uint32_t n = 0; n < t_.qps.size(); ++n)
    if (t_.qp(n)) qps_.destroy(n);
  for (uint32_t n = 0; n < t_.srqs.size(); ++n) {
    if (qp::SrqCtx* s = t_.srq(n)) {
      t_.pd_users[s->pdn]--;
      *s = qp::SrqCtx{};
      free_srqs_.push_back(n);
    }
  }
  for (uint32_t n = 0; n < t_.cqs.size(); ++n) {
    if (t_.cq(n)) {
      t_.cqs[n] = qp::CqCtx{};
      free_cqs_.push_back(n);
    }
  }
  mrs_.remove_all();
  if (cache_) cache_->reset();  // the context memory too: the driver maps it again
  for (uint32_t n = 1; n < t_.pds.size(); ++n) {
    if (t_.pds[n]) {
      t_.pds[n] = false;
      free_pds_.push_back(n);
    }
    t_.pd_users[n] = 0;
  }
  // The event queue, MSI-X, moderation and error registers.
  comp_.reset();
  eq_addr_lo_ = eq_addr_hi_ = 0;
  err_code_ = err_info_ = err_count_ = 0;
  // Complete once every DMA write issued before now is in host memory, and no sooner than
  // nic.reset_latency: nothing the device does from now on writes host memory for what it had.
  resetting_ = true;
  update_gate();
  const uint32_t gen = ++reset_gen_;
  env_.sim.eq.at(std::max(now() + env_.params.reset_latency, dma_.writes_done()), [this, gen] {
    if (gen != reset_gen_) return;  // reset again meanwhile: that one completes
    resetting_ = false;
    update_gate();
    RN_LOG(env_.sim, LogCat::kCmd, env_.name, "device reset complete");
  });
}

}  // namespace rn::device
