#include "model/device/device.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <deque>

#include "model/wire/framing.h"

namespace rn::device {

using dev::CmdStatus;
using dev::QpAttr;
using dev::QpState;
using dev::RegError;

namespace {
constexpr uint32_t bit(QpAttr a) { return static_cast<uint32_t>(a); }
// Offset of field `f` of args struct T inside CmdIn, for CmdOut.syndrome.
#define FIELD_OFF(T, f) static_cast<uint32_t>(offsetof(dev::CmdIn, args) + offsetof(T, f))

constexpr uint32_t kKnownAccess = 0x3F;

struct Transition {
  QpState from, to;
  uint32_t required, optional;
};
const uint32_t kAv = bit(QpAttr::AV);
const Transition kRcTransitions[] = {
    {QpState::RESET, QpState::INIT,
     bit(QpAttr::PKEY_INDEX) | bit(QpAttr::PORT) | bit(QpAttr::ACCESS_FLAGS), 0},
    {QpState::INIT, QpState::INIT, 0,
     bit(QpAttr::PKEY_INDEX) | bit(QpAttr::PORT) | bit(QpAttr::ACCESS_FLAGS)},
    {QpState::INIT, QpState::RTR,
     kAv | bit(QpAttr::PATH_MTU) | bit(QpAttr::DEST_QPN) | bit(QpAttr::RQ_PSN) |
         bit(QpAttr::MAX_DEST_RD_ATOMIC) | bit(QpAttr::MIN_RNR_TIMER),
     bit(QpAttr::ALT_PATH) | bit(QpAttr::ACCESS_FLAGS) | bit(QpAttr::PKEY_INDEX)},
    {QpState::RTR, QpState::RTS,
     bit(QpAttr::SQ_PSN) | bit(QpAttr::TIMEOUT) | bit(QpAttr::RETRY_CNT) | bit(QpAttr::RNR_RETRY) |
         bit(QpAttr::MAX_QP_RD_ATOMIC),
     bit(QpAttr::CUR_STATE) | bit(QpAttr::ACCESS_FLAGS) | bit(QpAttr::MIN_RNR_TIMER) |
         bit(QpAttr::ALT_PATH) | bit(QpAttr::PATH_MIG_STATE)},
    {QpState::RTS, QpState::RTS, 0,
     bit(QpAttr::CUR_STATE) | bit(QpAttr::ACCESS_FLAGS) | bit(QpAttr::MIN_RNR_TIMER) |
         bit(QpAttr::ALT_PATH) | bit(QpAttr::PATH_MIG_STATE)},
};

uint32_t log2_floor(uint64_t v) { return v ? 63 - static_cast<uint32_t>(__builtin_clzll(v)) : 0; }

// The oldest freed number of a table (0 if none): a destroyed object's number is reused as late as
// possible, so that late packets and completions meant for it are less likely to meet a new one.
uint32_t take_free(std::deque<uint32_t>& free) {
  if (free.empty()) return 0;
  uint32_t n = free.front();
  free.pop_front();
  return n;
}
}  // namespace

Device::Device(qp::NicState& s, uint64_t max_mr_size)
    : s_(s),
      max_mr_size_(max_mr_size),
      stats_(s.sim.stats, s.name + ".dev", "device interface: registers, doorbells, commands"),
      commands_(stats_.counter("commands", "count", "commands executed")),
      command_errors_(
          stats_.counter("command_errors", "count", "commands completed with an error status")),
      sq_doorbells_(stats_.counter("sq_doorbells", "count", "send queue doorbells accepted")),
      rq_doorbells_(stats_.counter("rq_doorbells", "count", "receive queue doorbells accepted")),
      cq_doorbells_(stats_.counter("cq_doorbells", "count", "CQ doorbells accepted")),
      reg_errors_(
          stats_.counter("register_errors", "count", "refused register and doorbell writes")) {
  cmd_buf_.resize(sizeof(dev::CmdIn));
}

Device::~Device() { s_.sim.stats.remove(&stats_); }

void Device::reg_error(RegError e, uint64_t offset) {
  err_code_ = static_cast<uint32_t>(e);
  err_info_ = static_cast<uint32_t>(offset);
  ++err_count_;
  ++reg_errors_;
  RN_LOG(s_.sim, LogCat::kError, s_.name, "register write at {:#x} refused: {}", offset,
         dev::to_string(e));
}

uint32_t Device::mmio_read32(uint64_t off) {
  switch (off) {
    case dev::reg::ID:
      return static_cast<uint32_t>(dev::kMagic);
    case dev::reg::VERSION:
      return static_cast<uint32_t>(dev::kVersion);
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
      return dev::EqLogSizeBits{s_.comp->eq_log_size}.pack();
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
      return static_cast<uint32_t>(s_.comp->msix_addr);
    case dev::reg::MSIX_ADDR_HI:
      return static_cast<uint32_t>(s_.comp->msix_addr >> 32);
    case dev::reg::MSIX_DATA:
      return s_.comp->msix_data;
    case dev::reg::MSIX_CTRL:
      return dev::MsixCtrlBits{s_.comp->msix_masked}.pack();
    default:
      return 0;
  }
}

void Device::mmio_write32(uint64_t off, uint32_t v) {
  if (off & 3) return reg_error(RegError::WIDTH, off);
  qp::Completion& c = *s_.comp;
  if (off >= dev::kQpDbBase && off < dev::kQpDbBase + dev::kMaxQpDoorbells * dev::kQpDbStride)
    return qp_doorbell(off, v);
  if (off >= dev::kCqDbBase && off < dev::kCqDbBase + dev::kMaxCqDoorbells * dev::kCqDbStride)
    return cq_doorbell(off, v);
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
      c.eq_addr = (uint64_t(eq_addr_hi_) << 32) | eq_addr_lo_;
      return;
    case dev::reg::EQ_ADDR_HI:
      eq_addr_hi_ = v;
      c.eq_addr = (uint64_t(eq_addr_hi_) << 32) | eq_addr_lo_;
      return;
    case dev::reg::EQ_LOG_SIZE: {
      const auto r = dev::EqLogSizeBits::unpack(v);
      if ((v & dev::EqLogSizeBits::kReservedMask) || r.log_size > dev::kMaxEqLogSize)
        return reg_error(RegError::BAD_VALUE, off);
      if (r.log_size &&
          !pcie::in_address_space(c.eq_addr, (uint64_t(1) << r.log_size) * sizeof(dev::Eqe)))
        return reg_error(RegError::ADDR_RANGE, off);
      c.eq_log_size = static_cast<uint8_t>(r.log_size);
      c.eq_pi = c.eq_ci = 0;
      c.eq_armed = false;
      return;
    }
    case dev::reg::EQ_DOORBELL: {
      using Db = dev::EqDoorbellBits;
      if (c.eq_log_size == 0) return reg_error(RegError::BAD_VALUE, off);
      if (v & Db::kReservedMask) return reg_error(RegError::BAD_VALUE, off);
      const Db db = Db::unpack(v);
      uint32_t ci = c.eq_ci + ((db.ci - c.eq_ci) & Db::kCiMax);  // the free-running index
      if (ci - c.eq_ci > c.eq_pi - c.eq_ci) return reg_error(RegError::DB_RANGE, off);
      c.eq_ci = ci;
      if (db.arm) {
        c.eq_armed = true;
        if (c.eq_pi != c.eq_ci) c.interrupt(now());  // events already waiting: interrupt now
      }
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
    case dev::reg::ID:
    case dev::reg::VERSION:
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
  qp::QpCtx* q = s_.qp(qpn);
  if (!q) return reg_error(RegError::NO_SUCH_QP, off);
  if (v & Db::kReservedMask) return reg_error(RegError::BAD_VALUE, off);
  const uint32_t low = Db::unpack(v).pi;  // the low bits of the free-running producer index
  if (rq) {
    if (q->state == QpState::RESET) return reg_error(RegError::QP_STATE, off);
    uint32_t pi = q->rq_pi + ((low - q->rq_pi) & Db::kPiMax);
    if (pi - q->rq_ci > q->rq_size()) return reg_error(RegError::DB_RANGE, off);
    ++rq_doorbells_;
    RN_LOG(s_.sim, LogCat::kDoorbell, s_.name, "qp {} RQ doorbell pi {}", qpn, pi);
    s_.resp->rq_doorbell(*q, pi);
  } else {
    if (q->state != QpState::RTS && q->state != QpState::SQD && q->state != QpState::ERR)
      return reg_error(RegError::QP_STATE, off);
    uint32_t pi = q->sq_pi + ((low - q->sq_pi) & Db::kPiMax);
    if (pi - q->sq_done > q->sq_size()) return reg_error(RegError::DB_RANGE, off);
    ++sq_doorbells_;
    RN_LOG(s_.sim, LogCat::kDoorbell, s_.name, "qp {} SQ doorbell pi {}", qpn, pi);
    s_.req->sq_doorbell(*q, pi);
  }
}

void Device::cq_doorbell(uint64_t off, uint32_t v) {
  uint64_t rel = off - dev::kCqDbBase;
  if (rel % dev::kCqDbStride) return reg_error(RegError::BAD_OFFSET, off);
  uint32_t cqn = static_cast<uint32_t>(rel / dev::kCqDbStride);
  qp::CqCtx* cq = s_.cq(cqn);
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
      s_.comp->post_eqe(dev::EqeType::COMPLETION, cqn, 0, now());
    }
  }
}

void Device::start_command(uint32_t token) {
  if (cmd_busy_) return reg_error(RegError::CMD_BUSY, dev::reg::CMD_DOORBELL);
  if (cmd_addr_ & 63) return reg_error(RegError::CMD_ADDR_ALIGN, dev::reg::CMD_DOORBELL);
  if (!pcie::in_address_space(cmd_addr_, dev::kCmdBlockBytes))
    return reg_error(RegError::ADDR_RANGE, dev::reg::CMD_DOORBELL);
  cmd_busy_ = true;
  cmd_last_token_ = token;
  uint64_t addr = cmd_addr_;
  s_.dma.dma_read(addr, cmd_buf_.data(), sizeof(dev::CmdIn), now(), [this, addr, token] {
    dev::CmdIn& in = cmd_in_;
    std::memcpy(&in, cmd_buf_.data(), sizeof in);
    in.token = token;
    mr_pages_.clear();
    mr_pages_.shrink_to_fit();  // a page list is handed to its region, never kept here
    if (in.opcode == static_cast<uint16_t>(dev::CmdOp::CREATE_MR)) {
      dev::CreateMrIn a;
      std::memcpy(&a, in.args, sizeof a);
      // The page list is read only once everything else about the region checks out: its length
      // then follows from the region, and execute() finds the list complete.
      if (check_mr(a).status == CmdStatus::OK) {
        mr_pages_.resize(a.n_pages);
        s_.dma.dma_read(a.mtt_addr, reinterpret_cast<uint8_t*>(mr_pages_.data()), a.n_pages * 8u,
                        now(), [this, addr] { finish_command(addr); });
        return;
      }
    }
    finish_command(addr);
  });
}

void Device::finish_command(uint64_t addr) {
  s_.sim.eq.after(s_.params.cmd_latency, [this, addr] {
    const dev::CmdIn& in = cmd_in_;
    dev::CmdOut out{};
    Result r = execute(in, &out);
    out.status = static_cast<uint8_t>(r.status);
    out.syndrome = r.syndrome;
    out.token = in.token;
    ++commands_;
    if (r.status != CmdStatus::OK) ++command_errors_;
    cmd_last_status_ = out.status;
    RN_LOG(s_.sim, LogCat::kCmd, s_.name, "command {} -> {} (syndrome {})",
           dev::to_string(static_cast<dev::CmdOp>(in.opcode)), dev::to_string(r.status),
           r.syndrome);
    s_.dma.dma_write(addr + sizeof(dev::CmdIn), reinterpret_cast<const uint8_t*>(&out), sizeof out,
                     now(), [this] { cmd_busy_ = false; });
  });
}

Device::Result Device::execute(const dev::CmdIn& in, dev::CmdOut* out) {
  auto arg = [&in](auto* a) { std::memcpy(a, in.args, sizeof *a); };
  auto result = [out](const auto& r) {
    static_assert(sizeof r <= sizeof out->result);
    std::memcpy(out->result, &r, sizeof r);
  };
  const auto& p = s_.params;
  switch (static_cast<dev::CmdOp>(in.opcode)) {
    case dev::CmdOp::QUERY_DEVICE: {
      dev::QueryDeviceOut r{};
      r.fw_version = 0x00010000;
      r.vendor_id = static_cast<uint32_t>(dev::kVendorId);
      r.vendor_part_id = static_cast<uint32_t>(dev::kVendorPartId);
      r.max_qp = p.max_qps;
      r.max_cq = p.max_cqs;
      r.max_mr = s_.mrs.max_regions();
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
      if (a.port != 1) return {CmdStatus::BAD_PARAM, FIELD_OFF(dev::QueryPortIn, port)};
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
      uint32_t pdn = take_free(free_pds_);
      if (pdn == 0) {
        if (s_.pds.size() > p.max_pds) return {CmdStatus::NO_RESOURCES, 0};
        pdn = static_cast<uint32_t>(std::max<size_t>(1, s_.pds.size()));  // 0 is reserved
        s_.pds.resize(pdn + 1, false);
        s_.pd_users.resize(pdn + 1, 0);
      }
      s_.pds[pdn] = true;
      s_.pd_users[pdn] = 0;
      dev::CreatePdOut r{};
      r.pdn = pdn;
      result(r);
      return {};
    }
    case dev::CmdOp::DESTROY_PD: {
      dev::HandleIn a;
      arg(&a);
      if (a.handle >= s_.pds.size() || !s_.pds[a.handle])
        return {CmdStatus::BAD_HANDLE, FIELD_OFF(dev::HandleIn, handle)};
      if (s_.pd_users[a.handle] || s_.mrs.count_in_pd(a.handle))
        return {CmdStatus::BUSY, FIELD_OFF(dev::HandleIn, handle)};
      s_.pds[a.handle] = false;
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
      if (!s_.mrs.remove(a.handle))
        return {CmdStatus::BAD_HANDLE, FIELD_OFF(dev::HandleIn, handle)};
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
      qp::CqCtx* cq = s_.cq(a.handle);
      if (!cq) return {CmdStatus::BAD_HANDLE, FIELD_OFF(dev::HandleIn, handle)};
      if (cq->users) return {CmdStatus::BUSY, FIELD_OFF(dev::HandleIn, handle)};
      *cq = qp::CqCtx{};
      free_cqs_.push_back(a.handle);
      return {};
    }
    case dev::CmdOp::CREATE_QP: {
      dev::CreateQpIn a;
      arg(&a);
      return create_qp(a, out);
    }
    case dev::CmdOp::MODIFY_QP: {
      dev::ModifyQpIn a;
      arg(&a);
      return modify_qp(a);
    }
    case dev::CmdOp::QUERY_QP: {
      dev::HandleIn a;
      arg(&a);
      qp::QpCtx* q = s_.qp(a.handle);
      if (!q) return {CmdStatus::BAD_HANDLE, FIELD_OFF(dev::HandleIn, handle)};
      dev::QueryQpOut r{};
      r.qp_state = static_cast<uint8_t>(q->state);
      r.path_mtu = q->mtu_code;
      r.qp_type = q->type;
      r.access_flags = q->access;
      r.dest_qpn = q->dest_qpn;
      r.rq_psn = q->epsn;
      r.sq_psn = q->sq_psn;
      r.dest_ipv4 = q->dest_ipv4;
      r.sq_pi = static_cast<uint16_t>(q->sq_pi);
      r.sq_ci = static_cast<uint16_t>(q->sq_done);
      r.rq_pi = static_cast<uint16_t>(q->rq_pi);
      r.rq_ci = static_cast<uint16_t>(q->rq_ci);
      result(r);
      return {};
    }
    case dev::CmdOp::DESTROY_QP: {
      dev::HandleIn a;
      arg(&a);
      return destroy_qp(a.handle);
    }
  }
  return {CmdStatus::BAD_OPCODE, static_cast<uint32_t>(offsetof(dev::CmdIn, opcode))};
}

Device::Result Device::check_mr(const dev::CreateMrIn& a) const {
  using M = dev::CreateMrIn;
  if (a.pdn >= s_.pds.size() || !s_.pds[a.pdn]) return {CmdStatus::BAD_HANDLE, FIELD_OFF(M, pdn)};
  if (a.access & ~kKnownAccess) return {CmdStatus::BAD_PARAM, FIELD_OFF(M, access)};
  const uint32_t lw = static_cast<uint32_t>(dev::Access::LOCAL_WRITE);
  const uint32_t needs_lw = static_cast<uint32_t>(dev::Access::REMOTE_WRITE) |
                            static_cast<uint32_t>(dev::Access::REMOTE_ATOMIC);
  if ((a.access & needs_lw) && !(a.access & lw))
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, access)};
  if (a.access & static_cast<uint32_t>(dev::Access::ZERO_BASED))
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, access)};  // zero-based MRs: not yet
  if (a.page_shift != 12) return {CmdStatus::BAD_PARAM, FIELD_OFF(M, page_shift)};
  if (a.length == 0 || a.length > max_mr_size_) return {CmdStatus::BAD_PARAM, FIELD_OFF(M, length)};
  if (!pcie::in_address_space(a.iova, a.length)) return {CmdStatus::BAD_PARAM, FIELD_OFF(M, iova)};
  const uint64_t page = uint64_t(1) << a.page_shift;
  uint64_t first = a.iova & ~(page - 1);
  uint64_t last = (a.iova + a.length - 1) & ~(page - 1);
  uint64_t need = (last - first) / page + 1;
  if (a.n_pages != need) return {CmdStatus::BAD_PARAM, FIELD_OFF(M, n_pages)};
  if (a.mtt_addr & 7) return {CmdStatus::BAD_PARAM, FIELD_OFF(M, mtt_addr)};
  if (!pcie::in_address_space(a.mtt_addr, uint64_t(a.n_pages) * 8))
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, mtt_addr)};
  return {};
}

Device::Result Device::create_mr(const dev::CreateMrIn& a, dev::CmdOut* out) {
  using M = dev::CreateMrIn;
  if (Result r = check_mr(a); r.status != CmdStatus::OK) return r;
  // The page list was read by start_command (check_mr passed there too: nothing has changed).
  if (mr_pages_.size() != a.n_pages) return {CmdStatus::DMA_ERROR, FIELD_OFF(M, mtt_addr)};
  const uint64_t page = uint64_t(1) << a.page_shift;
  for (uint64_t pa : mr_pages_)
    if (pa & (page - 1)) return {CmdStatus::BAD_PARAM, FIELD_OFF(M, mtt_addr)};
  uint32_t key = s_.mrs.add(a.pdn, a.access, a.iova, a.length, a.page_shift, std::move(mr_pages_));
  mr_pages_.clear();
  if (key == 0) return {CmdStatus::NO_RESOURCES, 0};
  dev::CreateMrOut r{};
  r.lkey = r.rkey = key;
  std::memcpy(out->result, &r, sizeof r);
  return {};
}

Device::Result Device::create_cq(const dev::CreateCqIn& a, dev::CmdOut* out) {
  using C = dev::CreateCqIn;
  if (a.log_size < 1 || a.log_size > 22 || (1u << a.log_size) > s_.params.max_cqe)
    return {CmdStatus::BAD_PARAM, FIELD_OFF(C, log_size)};
  if (a.ring_addr == 0 || (a.ring_addr & 63) ||
      !pcie::in_address_space(a.ring_addr, (uint64_t(1) << a.log_size) * sizeof(dev::Cqe)))
    return {CmdStatus::BAD_PARAM, FIELD_OFF(C, ring_addr)};
  uint32_t cqn = take_free(free_cqs_);
  if (cqn == 0) {
    if (s_.cqs.size() > s_.params.max_cqs) return {CmdStatus::NO_RESOURCES, 0};
    cqn = static_cast<uint32_t>(std::max<size_t>(1, s_.cqs.size()));  // 0 is reserved
    s_.cqs.resize(cqn + 1);
  }
  qp::CqCtx& cq = s_.cqs[cqn];
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

Device::Result Device::create_qp(const dev::CreateQpIn& a, dev::CmdOut* out) {
  using Q = dev::CreateQpIn;
  const auto& p = s_.params;
  if (a.qp_type != static_cast<uint8_t>(dev::QpType::RC))
    return {CmdStatus::BAD_PARAM, FIELD_OFF(Q, qp_type)};
  if (a.sq_sig_all > 1) return {CmdStatus::BAD_PARAM, FIELD_OFF(Q, sq_sig_all)};
  const uint32_t max_log = log2_floor(p.max_qp_wr);
  if (a.log_sq_size < 1 || a.log_sq_size > std::min<uint32_t>(15, max_log))
    return {CmdStatus::BAD_PARAM, FIELD_OFF(Q, log_sq_size)};
  if (a.log_rq_size < 1 || a.log_rq_size > std::min<uint32_t>(15, max_log))
    return {CmdStatus::BAD_PARAM, FIELD_OFF(Q, log_rq_size)};
  if (!dev::valid_send_wqe_shift(a.sq_wqe_shift))
    return {CmdStatus::BAD_PARAM, FIELD_OFF(Q, sq_wqe_shift)};
  if (!dev::valid_recv_wqe_shift(a.rq_wqe_shift))
    return {CmdStatus::BAD_PARAM, FIELD_OFF(Q, rq_wqe_shift)};
  if (a.pdn >= s_.pds.size() || !s_.pds[a.pdn]) return {CmdStatus::BAD_HANDLE, FIELD_OFF(Q, pdn)};
  if (!s_.cq(a.send_cqn)) return {CmdStatus::BAD_HANDLE, FIELD_OFF(Q, send_cqn)};
  if (!s_.cq(a.recv_cqn)) return {CmdStatus::BAD_HANDLE, FIELD_OFF(Q, recv_cqn)};
  if (a.sq_addr == 0 || (a.sq_addr & 63) ||
      !pcie::in_address_space(a.sq_addr, uint64_t(1) << (a.log_sq_size + a.sq_wqe_shift)))
    return {CmdStatus::BAD_PARAM, FIELD_OFF(Q, sq_addr)};
  if (a.rq_addr == 0 || (a.rq_addr & 63) ||
      !pcie::in_address_space(a.rq_addr, uint64_t(1) << (a.log_rq_size + a.rq_wqe_shift)))
    return {CmdStatus::BAD_PARAM, FIELD_OFF(Q, rq_addr)};
  uint32_t qpn = take_free(free_qps_);
  if (qpn == 0) {
    uint32_t n = static_cast<uint32_t>(std::max<size_t>(2, s_.qps.size()));
    if (n >= p.max_qps + 2 || n >= dev::kMaxQpDoorbells) return {CmdStatus::NO_RESOURCES, 0};
    s_.qps.resize(n + 1);
    qpn = n;
  }
  auto q = std::make_unique<qp::QpCtx>();
  q->valid = true;
  q->qpn = qpn;
  q->epoch = ++s_.epochs;  // a reused QPN must not accept the old QP's DMA completions
  q->type = a.qp_type;
  q->pdn = a.pdn;
  q->send_cqn = a.send_cqn;
  q->recv_cqn = a.recv_cqn;
  q->sig_all = a.sq_sig_all;
  q->sq_addr = a.sq_addr;
  q->rq_addr = a.rq_addr;
  q->log_sq = a.log_sq_size;
  q->log_rq = a.log_rq_size;
  q->sq_shift = a.sq_wqe_shift;
  q->rq_shift = a.rq_wqe_shift;
  uint32_t sp = std::max<uint32_t>(1, std::min(p.wqe_prefetch, q->sq_size()));
  uint32_t rp = std::max<uint32_t>(1, std::min(p.rq_prefetch, q->rq_size()));
  q->sq_cache.resize(sp);
  q->rq_cache.resize(rp);
  q->outstanding.resize(q->sq_size());
  s_.qps[qpn] = std::move(q);
  s_.cqs[a.send_cqn].users++;
  s_.cqs[a.recv_cqn].users++;
  s_.pd_users[a.pdn]++;
  dev::CreateQpOut r{};
  r.qpn = qpn;
  std::memcpy(out->result, &r, sizeof r);
  return {};
}

Device::Result Device::destroy_qp(uint32_t qpn) {
  qp::QpCtx* q = s_.qp(qpn);
  if (!q) return {CmdStatus::BAD_HANDLE, FIELD_OFF(dev::HandleIn, handle)};
  s_.cqs[q->send_cqn].users--;
  s_.cqs[q->recv_cqn].users--;
  s_.pd_users[q->pdn]--;
  s_.qps[qpn].reset();
  free_qps_.push_back(qpn);
  return {};
}

Device::Result Device::modify_qp(const dev::ModifyQpIn& a) {
  using M = dev::ModifyQpIn;
  qp::QpCtx* qq = s_.qp(a.qpn);
  if (!qq) return {CmdStatus::BAD_HANDLE, FIELD_OFF(M, qpn)};
  qp::QpCtx& q = *qq;
  const uint32_t mask = a.attr_mask;
  const uint32_t known = (bit(QpAttr::DEST_QPN) << 1) - 1;
  if (mask & ~known) return {CmdStatus::BAD_PARAM, FIELD_OFF(M, attr_mask)};
  QpState cur = q.state;
  if (mask & bit(QpAttr::CUR_STATE)) {
    if (a.cur_qp_state > 6) return {CmdStatus::BAD_PARAM, FIELD_OFF(M, cur_qp_state)};
    if (static_cast<QpState>(a.cur_qp_state) != cur)
      return {CmdStatus::BAD_STATE, FIELD_OFF(M, cur_qp_state)};
  }
  QpState to = cur;
  if (mask & bit(QpAttr::STATE)) {
    if (a.qp_state > 6) return {CmdStatus::BAD_PARAM, FIELD_OFF(M, qp_state)};
    to = static_cast<QpState>(a.qp_state);
  }
  const uint32_t attrs = mask & ~(bit(QpAttr::STATE) | bit(QpAttr::CUR_STATE));
  if (to == QpState::RESET || to == QpState::ERR) {
    if (to == QpState::ERR && cur == QpState::RESET)
      return {CmdStatus::BAD_STATE, FIELD_OFF(M, qp_state)};
    if (attrs) return {CmdStatus::BAD_PARAM, FIELD_OFF(M, attr_mask)};
    if (to == QpState::ERR) {
      s_.req->enter_error(q, false);
    } else {
      q.epoch = ++s_.epochs;
      s_.req->reset(q);
      s_.resp->reset(q);
      q.state = QpState::RESET;
      q.sq_psn = q.unacked_psn = 0;
    }
    return {};
  }
  const Transition* t = nullptr;
  for (const auto& tr : kRcTransitions)
    if (tr.from == cur && tr.to == to) t = &tr;
  if (!t) return {CmdStatus::BAD_STATE, FIELD_OFF(M, qp_state)};
  if ((attrs & t->required) != t->required) return {CmdStatus::BAD_STATE, FIELD_OFF(M, attr_mask)};
  if (attrs & ~(t->required | t->optional)) return {CmdStatus::BAD_PARAM, FIELD_OFF(M, attr_mask)};

  // Validate every attribute given before changing anything.
  if ((attrs & bit(QpAttr::ACCESS_FLAGS)) && (a.access_flags & ~kKnownAccess))
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, access_flags)};
  if ((attrs & bit(QpAttr::PORT)) && a.port_num != 1)
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, port_num)};
  if ((attrs & bit(QpAttr::PKEY_INDEX)) && a.pkey_index != 0)
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, pkey_index)};
  if ((attrs & bit(QpAttr::PATH_MTU)) && qp::mtu_bytes(a.path_mtu) == 0)
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, path_mtu)};
  if ((attrs & bit(QpAttr::DEST_QPN)) && a.dest_qpn > 0xFFFFFF)
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, dest_qpn)};
  if ((attrs & bit(QpAttr::RQ_PSN)) && a.rq_psn > 0xFFFFFF)
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, rq_psn)};
  if ((attrs & bit(QpAttr::SQ_PSN)) && a.sq_psn > 0xFFFFFF)
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, sq_psn)};
  if ((attrs & bit(QpAttr::TIMEOUT)) && a.timeout > 31)
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, timeout)};
  if ((attrs & bit(QpAttr::RETRY_CNT)) && a.retry_cnt > 7)
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, retry_cnt)};
  if ((attrs & bit(QpAttr::RNR_RETRY)) && a.rnr_retry > 7)
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, rnr_retry)};
  if ((attrs & bit(QpAttr::MIN_RNR_TIMER)) && a.min_rnr_timer > 31)
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, min_rnr_timer)};
  if ((attrs & bit(QpAttr::MAX_QP_RD_ATOMIC)) && a.max_rd_atomic > 16)
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, max_rd_atomic)};
  if ((attrs & bit(QpAttr::MAX_DEST_RD_ATOMIC)) && a.max_dest_rd_atomic > 16)
    return {CmdStatus::BAD_PARAM, FIELD_OFF(M, max_dest_rd_atomic)};
  if ((attrs & kAv) && (a.dest_mac[0] & 1)) return {CmdStatus::BAD_PARAM, FIELD_OFF(M, dest_mac)};
  if ((attrs & kAv) && a.dest_ipv4 == 0) return {CmdStatus::BAD_PARAM, FIELD_OFF(M, dest_ipv4)};

  if (attrs & bit(QpAttr::ACCESS_FLAGS)) q.access = a.access_flags;
  if (attrs & bit(QpAttr::PATH_MTU)) {
    q.mtu_code = a.path_mtu;
    q.mtu = qp::mtu_bytes(a.path_mtu);
  }
  if (attrs & bit(QpAttr::DEST_QPN)) q.dest_qpn = a.dest_qpn;
  if (attrs & bit(QpAttr::RQ_PSN)) q.epsn = a.rq_psn;
  if (attrs & bit(QpAttr::SQ_PSN)) q.sq_psn = q.unacked_psn = a.sq_psn;
  if (attrs & bit(QpAttr::TIMEOUT)) q.timeout = a.timeout;
  if (attrs & bit(QpAttr::RETRY_CNT)) q.retry_cnt = a.retry_cnt;
  if (attrs & bit(QpAttr::RNR_RETRY)) q.rnr_retry = a.rnr_retry;
  if (attrs & bit(QpAttr::MIN_RNR_TIMER)) q.min_rnr_timer = a.min_rnr_timer;
  if (attrs & bit(QpAttr::MAX_QP_RD_ATOMIC)) q.max_rd_atomic = a.max_rd_atomic;
  if (attrs & bit(QpAttr::MAX_DEST_RD_ATOMIC)) q.max_dest_rd_atomic = a.max_dest_rd_atomic;
  if (attrs & kAv) {
    q.dest_ipv4 = a.dest_ipv4;
    std::memcpy(q.dest_mac.data(), a.dest_mac, 6);
    q.tos = a.traffic_class;
    q.ttl = a.hop_limit ? a.hop_limit : 64;
    q.path.src_mac = s_.params.mac;
    q.path.dst_mac = q.dest_mac;
    q.path.src_ip = s_.params.ipv4;
    q.path.dst_ip = q.dest_ipv4;
    q.path.tos = q.tos;
    q.path.ttl = q.ttl;
    q.path.udp_sport = wire::roce_udp_sport(q.qpn);
  }
  q.state = to;
  if (to == QpState::RTS) s_.req->schedule(q);
  return {};
}

}  // namespace rn::device
