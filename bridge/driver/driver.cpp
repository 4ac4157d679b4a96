#include "bridge/driver/driver.h"

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace rn::drv {

namespace {
constexpr uint32_t kEqLog = 8;

uint32_t round_pow2(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}
uint8_t log2u(uint32_t v) {
  uint8_t l = 0;
  while ((1u << l) < v) ++l;
  return l;
}
// The EQ doorbell value: the consumer index (its low bits) and the arm flag.
uint32_t eq_doorbell(uint32_t ci, bool arm) {
  dev::EqDoorbellBits db;
  db.ci = ci;
  db.arm = arm;
  return db.pack();
}
int errno_for(dev::CmdStatus s) {
  switch (s) {
    case dev::CmdStatus::OK:
      return 0;
    case dev::CmdStatus::BAD_OPCODE:
      return ENOSYS;
    case dev::CmdStatus::BAD_PARAM:
      return EINVAL;
    case dev::CmdStatus::BAD_HANDLE:
      return ENOENT;
    case dev::CmdStatus::BUSY:
      return EBUSY;
    case dev::CmdStatus::NO_RESOURCES:
      return ENOMEM;
    case dev::CmdStatus::BAD_STATE:
      return EINVAL;
    case dev::CmdStatus::DMA_ERROR:
      return EIO;
    case dev::CmdStatus::ABORTED:
      return ECANCELED;
  }
  return EIO;
}
}  // namespace

Driver::Driver(DeviceAccess& io, uint64_t cmd_timeout_ns, const DriverOptions& opts,
               KernelPath* kernel)
    : io_(io), kernel_(kernel), cmd_timeout_ns_(cmd_timeout_ns), opts_(opts) {}

Driver::~Driver() = default;

int Driver::fail(int err, std::string why) {
  last_error_ = std::move(why);
  return err;
}

int Driver::open() {
  uint32_t id = io_.mmio_read32(dev::reg::ID);
  if (id != dev::kMagic)
    return fail(ENODEV, fmt::format("device ID {:#x}, expected {:#x}", id, dev::kMagic));
  // Each version adds to the earlier ones: any version from 1 on will do, and the driver uses
  // what CAPS offers of version 2 (a version-1 driver never reads it).
  uint32_t ver = io_.mmio_read32(dev::reg::VERSION);
  if (ver < 1)
    return fail(ENODEV,
                fmt::format("device interface version {}, the driver needs 1 or later", ver));
  device_version_ = ver;
  caps_ = dev::CapsBits{};
  if (opts_.interface >= 2 && ver >= 2) {
    caps_ = dev::CapsBits::unpack(io_.mmio_read32(dev::reg::CAPS));
    if (!caps_.inline_data) caps_.max_inline_data = 0;
    if (!opts_.wqe_doorbell) caps_.wqe_doorbell = false;
  }
  // The driver-version handshake (CAPS.device_control): the device then behaves as the version
  // the driver speaks, and reads it back if it speaks it too.
  // A version-1 driver predates it (it never reads CAPS); a user-space provider leaves the
  // registers to the kernel.
  if (opts_.handshake && caps_.device_control && !kernel_) {
    const uint32_t speak = std::min<uint32_t>(opts_.interface, ver);
    io_.mmio_write32(dev::reg::DRIVER_VERSION, speak);
    const uint32_t back = io_.mmio_read32(dev::reg::DRIVER_VERSION);
    if (back != speak)
      return fail(ENODEV, fmt::format("the device refused driver interface version {} (reads {})",
                                      speak, back));
  }
  if (kernel_) return 0;  // the kernel owns the command block, the event queue and MSI-X
  cmd_block_ = io_.dma_alloc(dev::kCmdBlockBytes, 64);
  eq_size_ = 1u << kEqLog;
  eq_ = io_.dma_alloc(eq_size_ * sizeof(dev::Eqe), 64);
  if (!cmd_block_ || !eq_)
    return fail(ENOMEM, "no DMA memory for the command block or event queue");
  io_.mmio_write32(dev::reg::CMD_ADDR_LO, static_cast<uint32_t>(cmd_block_));
  io_.mmio_write32(dev::reg::CMD_ADDR_HI, static_cast<uint32_t>(cmd_block_ >> 32));
  io_.mmio_write32(dev::reg::EQ_ADDR_LO, static_cast<uint32_t>(eq_));
  io_.mmio_write32(dev::reg::EQ_ADDR_HI, static_cast<uint32_t>(eq_ >> 32));
  io_.mmio_write32(dev::reg::EQ_LOG_SIZE, kEqLog);
  uint64_t msi = io_.msi_address();
  io_.mmio_write32(dev::reg::MSIX_ADDR_LO, static_cast<uint32_t>(msi));
  io_.mmio_write32(dev::reg::MSIX_ADDR_HI, static_cast<uint32_t>(msi >> 32));
  io_.mmio_write32(dev::reg::MSIX_DATA, 0);
  io_.mmio_write32(dev::reg::MSIX_CTRL, dev::MsixCtrlBits{/*masked=*/false}.pack());
  if (caps_.icm) return map_icm();
  return 0;
}

int Driver::map_icm() {
  dev::QueryDeviceIn q{};
  q.page = 2;
  dev::QueryDeviceIcmOut r{};
  if (int e = exec(dev::CmdOp::QUERY_DEVICE, &q, sizeof q, &r, sizeof r)) return e;
  const uint64_t bytes = (r.icm_bytes + 4095) & ~uint64_t(4095);
  const uint64_t icm = io_.dma_alloc(bytes, 4096);
  if (!icm) return fail(ENOMEM, fmt::format("no DMA memory for {} bytes of context memory", bytes));
  dev::MapIcmIn in{};
  in.addr = icm;
  in.bytes = bytes;
  if (int e = exec(dev::CmdOp::MAP_ICM, &in, sizeof in, nullptr, 0)) {
    io_.dma_free(icm, bytes);
    return e;
  }
  icm_ = icm;
  return 0;
}

int Driver::exec(dev::CmdOp op, const void* in, size_t in_len, void* out, size_t out_len) {
  dev::CmdIn ci{};
  ci.opcode = static_cast<uint16_t>(op);
  if (in && in_len) std::memcpy(ci.args, in, std::min(in_len, sizeof ci.args));
  dev::CmdOut co{};
  if (kernel_) {
    if (int e = kernel_->command(ci, &co, cmd_timeout_ns_))
      return fail(e, fmt::format("command {}: the kernel path failed: {}", dev::to_string(op),
                                 std::strerror(e)));
    return finish_command(op, co, out, out_len);
  }
  uint32_t token = ++token_;
  if (token == 0) token = ++token_;
  io_.mem_write(cmd_block_, &ci, sizeof ci);
  io_.mem_write(cmd_block_ + sizeof ci, &co, sizeof co);  // clears the token
  io_.mmio_write32(dev::reg::CMD_DOORBELL, token);
  for (;;) {
    io_.mem_read(cmd_block_ + sizeof ci, &co, sizeof co);
    if (co.token == token) break;
    if (!io_.wait_device_write(cmd_block_ + sizeof ci, sizeof co, cmd_timeout_ns_)) {
      uint32_t err = io_.mmio_read32(dev::reg::ERR_CODE);
      // Ends the command, if the device can, so that it never writes the block later (see
      // "Command timeouts and abort" in docs/device-interface.md).
      if (caps_.device_control) io_.mmio_write32(dev::reg::CMD_ABORT, 1);
      return fail(ETIMEDOUT,
                  fmt::format("command {} timed out (device ERR_CODE {})", dev::to_string(op),
                              dev::to_string(static_cast<dev::RegError>(err))));
    }
  }
  return finish_command(op, co, out, out_len);
}

int Driver::finish_command(dev::CmdOp op, const dev::CmdOut& co, void* out, size_t out_len) {
  last_status_ = static_cast<dev::CmdStatus>(co.status);
  last_syndrome_ = co.syndrome;
  if (co.status != 0)
    return fail(errno_for(last_status_),
                fmt::format("command {} failed: {} (field at offset {})", dev::to_string(op),
                            dev::to_string(last_status_), co.syndrome));
  if (out) std::memcpy(out, co.result, std::min(out_len, sizeof co.result));
  return 0;
}

int Driver::query_device(DeviceAttr* out) {
  dev::QueryDeviceOut r{};
  if (int e = exec(dev::CmdOp::QUERY_DEVICE, nullptr, 0, &r, sizeof r)) return e;
  *out = DeviceAttr{r.fw_version, r.vendor_id,    r.vendor_part_id, r.max_qp,
                    r.max_cq,     r.max_pd,       r.max_qp_wr,      r.max_cqe,
                    r.max_sge,    r.max_recv_sge, r.max_mr_size};
  out->max_mr = r.max_mr;
  if (caps_.srq) {
    dev::QueryDeviceIn in{};
    in.page = 1;
    dev::QueryDeviceSrqOut s{};
    if (int e = exec(dev::CmdOp::QUERY_DEVICE, &in, sizeof in, &s, sizeof s)) return e;
    out->max_srq = s.max_srq;
    out->max_srq_wr = s.max_srq_wr;
    out->max_srq_sge = s.max_srq_sge;
  }
  return 0;
}

int Driver::query_port(uint8_t port, PortAttr* out) {
  dev::QueryPortIn in{};
  in.port = port;
  dev::QueryPortOut r{};
  if (int e = exec(dev::CmdOp::QUERY_PORT, &in, sizeof in, &r, sizeof r)) return e;
  out->state = r.state;
  out->max_mtu = r.max_mtu;
  out->active_mtu = r.active_mtu;
  out->link_layer = r.link_layer;
  out->speed_mbps = r.speed_mbps;
  std::memcpy(out->mac, r.mac, 6);
  out->ipv4 = r.ipv4;
  return 0;
}

int Driver::alloc_pd(uint32_t* pdn) {
  dev::CreatePdOut r{};
  if (int e = exec(dev::CmdOp::CREATE_PD, nullptr, 0, &r, sizeof r)) return e;
  *pdn = r.pdn;
  return 0;
}

int Driver::dealloc_pd(uint32_t pdn) {
  dev::HandleIn in{};
  in.handle = pdn;
  return exec(dev::CmdOp::DESTROY_PD, &in, sizeof in, nullptr, 0);
}

uint8_t best_page_shift(uint64_t va, const std::vector<uint64_t>& pages) {
  // Bits that must be zero in a page's size: where virtual and bus addresses differ (the offset in
  // a page is the same in both), and where the bus pages stop being contiguous (a page starts
  // there).
  constexpr uint64_t k4K = uint64_t(1) << dev::kPageShift;
  uint64_t mask = 0;
  const uint64_t v0 = va & ~(k4K - 1);
  for (size_t i = 0; i < pages.size(); ++i) {
    const uint64_t v = v0 + i * k4K;
    mask |= v ^ pages[i];
    if (i > 0 && pages[i] != pages[i - 1] + k4K) mask |= v;
  }
  uint8_t shift = static_cast<uint8_t>(dev::kMaxPageShift);
  while (shift > dev::kPageShift && (mask & ((uint64_t(1) << shift) - 1))) --shift;
  return shift;
}

std::vector<uint64_t> page_list(uint64_t va, const std::vector<uint64_t>& pages, uint8_t shift) {
  constexpr uint64_t k4K = uint64_t(1) << dev::kPageShift;
  const uint64_t page = uint64_t(1) << shift;
  const uint64_t v0 = va & ~(k4K - 1);
  std::vector<uint64_t> out;
  for (size_t i = 0; i < pages.size(); ++i) {
    const uint64_t v = v0 + i * k4K;
    if (i == 0 || (v & (page - 1)) == 0) out.push_back(pages[i] & ~(page - 1));
  }
  return out;
}

int Driver::reg_mr(uint32_t pdn, uint64_t addr, uint64_t length, uint32_t access, Mr* out) {
  if (length == 0) return fail(EINVAL, "reg_mr: length 0");
  std::vector<uint64_t> pinned;
  if (!io_.pin_pages(addr, length, &pinned))
    return fail(EFAULT, fmt::format("reg_mr: [{:#x}, +{}) is not mapped", addr, length));
  const uint8_t shift = best_page_shift(addr, pinned);
  const std::vector<uint64_t> pages = page_list(addr, pinned, shift);
  size_t mtt_len = pages.size() * 8;
  uint64_t mtt = io_.dma_alloc(mtt_len, 64);
  if (!mtt) {
    io_.unpin_pages(addr, length);
    return fail(ENOMEM, "reg_mr: no DMA memory for the page list");
  }
  io_.mem_write(mtt, pages.data(), mtt_len);
  dev::CreateMrIn in{};
  in.pdn = pdn;
  in.access = access;
  in.iova = addr;
  in.length = length;
  in.mtt_addr = mtt;
  in.n_pages = static_cast<uint32_t>(pages.size());
  in.page_shift = shift;
  dev::CreateMrOut r{};
  int e = exec(dev::CmdOp::CREATE_MR, &in, sizeof in, &r, sizeof r);
  // With context memory (CAPS.icm) the page list is the region's MTT, which the device reads
  // again on cache misses: it lives as long as the region.
  if (e || !caps_.icm) io_.dma_free(mtt, mtt_len);
  if (e) {
    io_.unpin_pages(addr, length);
    return e;
  }
  *out = Mr{r.lkey, r.rkey, addr, length, pdn, shift};
  if (caps_.icm) {
    out->mtt_addr = mtt;
    out->mtt_len = mtt_len;
  }
  return 0;
}

int Driver::dereg_mr(const Mr& mr) {
  dev::HandleIn in{};
  in.handle = mr.lkey;
  const int e = exec(dev::CmdOp::DESTROY_MR, &in, sizeof in, nullptr, 0);
  // Gone from the device: the pages are the process's again. (Still there, or a device that did
  // not answer: they stay pinned.)
  if (e == 0) {
    io_.unpin_pages(mr.addr, mr.length);
    if (mr.mtt_addr) io_.dma_free(mr.mtt_addr, mr.mtt_len);
  }
  return e;
}

int Driver::create_cq(int min_cqe, Cq** out) {
  if (min_cqe < 1 || min_cqe > (1 << 22))
    return fail(EINVAL, fmt::format("create_cq: cqe {}", min_cqe));
  uint32_t size = std::max<uint32_t>(2, round_pow2(static_cast<uint32_t>(min_cqe)));
  auto cq = std::make_unique<Cq>();
  cq->size = size;
  cq->log_size = log2u(size);
  cq->ring = io_.dma_alloc(size_t(size) * sizeof(dev::Cqe), 64);
  if (!cq->ring) return fail(ENOMEM, "create_cq: no DMA memory for the ring");
  dev::CreateCqIn in{};
  in.ring_addr = cq->ring;
  in.log_size = cq->log_size;
  dev::CreateCqOut r{};
  if (int e = exec(dev::CmdOp::CREATE_CQ, &in, sizeof in, &r, sizeof r)) {
    io_.dma_free(cq->ring, size_t(size) * sizeof(dev::Cqe));
    return e;
  }
  cq->cqn = r.cqn;
  *out = cq.get();
  cqs_[cq->cqn] = std::move(cq);
  return 0;
}

int Driver::destroy_cq(Cq* cq) {
  dev::HandleIn in{};
  in.handle = cq->cqn;
  if (int e = exec(dev::CmdOp::DESTROY_CQ, &in, sizeof in, nullptr, 0)) return e;
  io_.dma_free(cq->ring, size_t(cq->size) * sizeof(dev::Cqe));
  const uint32_t cqn = cq->cqn;  // a copy: the key must outlive the erase
  cqs_.erase(cqn);               // frees *cq
  return 0;
}

int Driver::create_qp(uint32_t pdn, Cq* send_cq, Cq* recv_cq, const QpCap& cap, bool sq_sig_all,
                      Qp** out) {
  if (!send_cq || !recv_cq) return fail(EINVAL, "create_qp: missing CQ");
  Srq* const srq = cap.srq;
  if (srq && srq->destroyed)
    return fail(EINVAL, fmt::format("create_qp: SRQ {} was destroyed", srq->srqn));
  if (srq && srq->pdn != pdn)
    return fail(EINVAL, fmt::format("create_qp: SRQ {} is in PD {}, the QP in PD {}", srq->srqn,
                                    srq->pdn, pdn));
  if (cap.max_send_wr < 1 || cap.max_send_wr > 32768 ||
      (!srq && (cap.max_recv_wr < 1 || cap.max_recv_wr > 32768)))
    return fail(EINVAL, fmt::format("create_qp: max_send_wr {} max_recv_wr {} (1..32768)",
                                    cap.max_send_wr, cap.max_recv_wr));
  const bool ud = cap.qp_type == dev::QpType::UD;
  if (cap.qp_type != dev::QpType::RC && cap.qp_type != dev::QpType::UC && !ud)
    return fail(EINVAL, fmt::format("create_qp: qp_type {} (RC, UC or UD)",
                                    static_cast<uint32_t>(cap.qp_type)));
  // A UD send WQE carries its address (UdSeg) in the room of two SGEs.
  const uint32_t seg_entries = ud ? sizeof(dev::UdSeg) / sizeof(dev::Sge) : 0;
  if (ud && (cap.max_send_sge + seg_entries > dev::kMaxSendSge ||
             cap.max_inline_data + sizeof(dev::UdSeg) > dev::kMaxSendInline))
    return fail(EINVAL,
                fmt::format("create_qp: UD max_send_sge {} (<= {}), max_inline_data {} "
                            "(<= {}): a UD WQE's address takes {} bytes of the stride",
                            cap.max_send_sge, dev::kMaxSendSge - seg_entries, cap.max_inline_data,
                            dev::kMaxSendInline - sizeof(dev::UdSeg), sizeof(dev::UdSeg)));
  if (cap.max_send_sge > dev::kMaxSendSge || (!srq && cap.max_recv_sge > dev::kMaxRecvSge))
    return fail(EINVAL, fmt::format("create_qp: max_send_sge {} (<= {}), max_recv_sge {} (<= {})",
                                    cap.max_send_sge, dev::kMaxSendSge, cap.max_recv_sge,
                                    dev::kMaxRecvSge));
  if (cap.max_inline_data > caps_.max_inline_data)
    return fail(EINVAL,
                caps_.inline_data
                    ? fmt::format("create_qp: max_inline_data {} > {}, the most the device takes",
                                  cap.max_inline_data, caps_.max_inline_data)
                    : fmt::format("create_qp: max_inline_data {}: no inline data with device "
                                  "interface v1 (the device's or the driver's)",
                                  cap.max_inline_data));
  auto qp = std::make_unique<Qp>();
  qp->pdn = pdn;
  qp->send_cq = send_cq;
  qp->recv_cq = recv_cq;
  qp->sq_size = std::max<uint32_t>(2, round_pow2(cap.max_send_wr));
  qp->rq_size = srq ? 0 : std::max<uint32_t>(2, round_pow2(cap.max_recv_wr));
  // The smallest WQE strides that hold the SGEs asked for, at least one each, and the inline
  // payload asked for.
  const uint32_t seg_bytes = seg_entries * sizeof(dev::Sge);
  qp->sq_shift =
      std::max(dev::send_wqe_shift_for(std::max<uint32_t>(1, cap.max_send_sge) + seg_entries),
               dev::send_wqe_shift_for_inline(cap.max_inline_data + seg_bytes));
  qp->rq_shift =
      srq ? srq->shift : dev::recv_wqe_shift_for(std::max<uint32_t>(1, cap.max_recv_sge));
  qp->max_send_sge = dev::max_send_sge(qp->sq_shift) - seg_entries;
  qp->max_recv_sge = dev::max_recv_sge(qp->rq_shift);
  // As verbs, what the stride holds (perhaps more than asked for).
  qp->max_inline_data =
      std::min(dev::max_send_inline(qp->sq_shift) - seg_bytes, caps_.max_inline_data);
  qp->type = cap.qp_type;
  qp->sq_sig_all = sq_sig_all;
  qp->sq = io_.dma_alloc(size_t(qp->sq_size) << qp->sq_shift, 4096);
  qp->srq = srq;
  qp->rq = srq ? 0 : io_.dma_alloc(size_t(qp->rq_size) << qp->rq_shift, 4096);
  if (!qp->sq || (!srq && !qp->rq)) return fail(ENOMEM, "create_qp: no DMA memory for the rings");
  dev::CreateQpIn in{};
  in.qp_type = static_cast<uint8_t>(cap.qp_type);
  in.sq_sig_all = sq_sig_all ? 1 : 0;
  in.log_sq_size = log2u(qp->sq_size);
  in.log_rq_size = srq ? 0 : log2u(qp->rq_size);
  in.sq_wqe_shift = qp->sq_shift;
  in.rq_wqe_shift = qp->rq_shift;
  in.pdn = pdn;
  in.send_cqn = send_cq->cqn;
  in.recv_cqn = recv_cq->cqn;
  in.sq_addr = qp->sq;
  in.rq_addr = qp->rq;
  in.srqn = srq ? srq->srqn : 0;
  dev::CreateQpOut r{};
  if (int e = exec(dev::CmdOp::CREATE_QP, &in, sizeof in, &r, sizeof r)) {
    io_.dma_free(qp->sq, size_t(qp->sq_size) << qp->sq_shift);
    if (qp->rq) io_.dma_free(qp->rq, size_t(qp->rq_size) << qp->rq_shift);
    return e;
  }
  qp->qpn = r.qpn;
  if (srq) srq->users++;
  send_cq->users++;
  recv_cq->users++;
  *out = qp.get();
  qps_[qp->qpn] = std::move(qp);
  return 0;
}

int Driver::modify_qp(Qp* qp, const QpAttr& a, uint32_t mask) {
  dev::ModifyQpIn in{};
  in.qpn = qp->qpn;
  in.attr_mask = mask;
  in.qp_state = static_cast<uint8_t>(a.qp_state);
  in.cur_qp_state = static_cast<uint8_t>(a.cur_qp_state);
  in.path_mtu = static_cast<uint8_t>(a.path_mtu);
  in.timeout = a.timeout;
  in.retry_cnt = a.retry_cnt;
  in.rnr_retry = a.rnr_retry;
  in.min_rnr_timer = a.min_rnr_timer;
  in.max_rd_atomic = a.max_rd_atomic;
  in.max_dest_rd_atomic = a.max_dest_rd_atomic;
  in.port_num = a.port_num;
  in.pkey_index = a.pkey_index;
  in.access_flags = a.qp_access_flags;
  in.dest_qpn = a.dest_qp_num;
  in.rq_psn = a.rq_psn;
  in.sq_psn = a.sq_psn;
  in.dest_ipv4 = a.ah.dest_ipv4;
  std::memcpy(in.dest_mac, a.ah.dest_mac, 6);
  in.traffic_class = a.ah.traffic_class;
  in.hop_limit = a.ah.hop_limit;
  in.qkey = a.qkey;
  if (int e = exec(dev::CmdOp::MODIFY_QP, &in, sizeof in, nullptr, 0)) return e;
  if (mask & static_cast<uint32_t>(dev::QpAttr::STATE)) {
    qp->state = a.qp_state;
    if (a.qp_state == dev::QpState::RESET) qp->sq_pi = qp->sq_ci = qp->rq_pi = qp->rq_ci = 0;
  }
  return 0;
}

int Driver::query_qp(Qp* qp, dev::QueryQpOut* out) {
  dev::HandleIn in{};
  in.handle = qp->qpn;
  return exec(dev::CmdOp::QUERY_QP, &in, sizeof in, out, sizeof *out);
}

int Driver::destroy_qp(Qp* qp) {
  dev::HandleIn in{};
  in.handle = qp->qpn;
  if (int e = exec(dev::CmdOp::DESTROY_QP, &in, sizeof in, nullptr, 0)) return e;
  io_.dma_free(qp->sq, size_t(qp->sq_size) << qp->sq_shift);
  if (qp->rq) io_.dma_free(qp->rq, size_t(qp->rq_size) << qp->rq_shift);
  if (qp->srq) qp->srq->users--;
  qp->send_cq->users--;
  qp->recv_cq->users--;
  // Its completions not yet polled go with it: a later QP given the same number must not be
  // credited with them.
  clean_cq(qp->send_cq, qp->qpn);
  if (qp->recv_cq != qp->send_cq) clean_cq(qp->recv_cq, qp->qpn);
  const uint32_t qpn = qp->qpn;  // a copy: the key must outlive the erase
  qps_.erase(qpn);               // frees *qp
  return 0;
}

int Driver::create_ah(uint32_t pdn, const AddressVector& av, Ah** out) {
  if (!out) return fail(EINVAL, "create_ah: no place for the handle");
  if (av.dest_ipv4 == 0) return fail(EINVAL, "create_ah: dest_ipv4 0 (an IPv4 address is needed)");
  if (av.dest_mac[0] & 1)
    return fail(EINVAL, fmt::format("create_ah: dest_mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} "
                                    "is a multicast address (UD to one QP needs a unicast one)",
                                    av.dest_mac[0], av.dest_mac[1], av.dest_mac[2], av.dest_mac[3],
                                    av.dest_mac[4], av.dest_mac[5]));
  auto ah = std::make_unique<Ah>();
  ah->pdn = pdn;
  ah->av = av;
  *out = ah.get();
  ahs_[ah.get()] = std::move(ah);
  return 0;
}

int Driver::destroy_ah(Ah* ah) {
  if (!ah || !ahs_.erase(ah))
    return fail(EINVAL, "destroy_ah: not an address handle of this driver");
  return 0;
}

Qp* Driver::find_qp(uint32_t qpn) const {
  auto it = qps_.find(qpn);
  return it == qps_.end() ? nullptr : it->second.get();
}

Cq* Driver::find_cq(uint32_t cqn) const {
  auto it = cqs_.find(cqn);
  return it == cqs_.end() ? nullptr : it->second.get();
}

int Driver::post_send(Qp* qp, const SendWr* wr, const SendWr** bad_wr) {
  uint8_t buf[dev::kSendWqeMaxBytes];
  int err = 0;
  uint32_t posted = 0;
  uint32_t used = 0;  // bytes the WQE in buf uses, once it is whole (0 while it is being built)
  for (; wr; wr = wr->next) {
    const bool atomic = wr->opcode == dev::WrOpcode::ATOMIC_CMP_AND_SWP ||
                        wr->opcode == dev::WrOpcode::ATOMIC_FETCH_AND_ADD;
    const bool inl = (wr->send_flags & kSendInline) != 0;
    uint64_t inline_len = 0;
    // An atomic's AtomicSeg takes the place of one SGE in the stride.
    const uint32_t max_sge = atomic ? qp->max_send_sge - 1 : qp->max_send_sge;
    const bool ud = qp->type == dev::QpType::UD;
    // As verbs: a send queue takes work from RTS on (in ERR, it is flushed); before that the
    // device would refuse the doorbell and the WQE would run later, unasked.
    if (qp->state == dev::QpState::RESET || qp->state == dev::QpState::INIT ||
        qp->state == dev::QpState::RTR) {
      err = fail(EINVAL, fmt::format("post_send: QP {} is in state {} (needs RTS, SQD, SQE or ERR)",
                                     qp->qpn, dev::to_string(qp->state)));
    } else if (wr->num_sge < 0 || static_cast<uint32_t>(wr->num_sge) > max_sge) {
      err = fail(EINVAL, fmt::format("post_send: num_sge {} > max {}{}", wr->num_sge, max_sge,
                                     atomic ? " (an atomic's operands take one)" : ""));
    } else if (qp->sq_pi - qp->sq_ci >= qp->sq_size) {
      err = fail(ENOMEM, "post_send: send queue full");
    } else if (ud && wr->opcode != dev::WrOpcode::SEND &&
               wr->opcode != dev::WrOpcode::SEND_WITH_IMM) {
      err =
          fail(EINVAL, fmt::format("post_send: {} on UD QP {} (UD has SEND and SEND_WITH_IMM only)",
                                   dev::to_string(wr->opcode), qp->qpn));
    } else if (ud && (!wr->ah || !ahs_.count(wr->ah))) {
      err = fail(EINVAL, fmt::format("post_send: UD QP {} needs an address handle from create_ah "
                                     "(wr.ah {})",
                                     qp->qpn, wr->ah ? "unknown" : "null"));
    } else if (ud && wr->remote_qpn > 0xFFFFFF) {
      err = fail(EINVAL,
                 fmt::format("post_send: remote_qpn {:#x} has more than 24 bits", wr->remote_qpn));
    }
    // A UD datagram longer than the MTU is the device's to refuse (LOC_LEN_ERR), as on mlx5.
    if (err) {
      if (bad_wr) *bad_wr = wr;
      break;
    }
    if (inl) {
      const bool write_or_send = wr->opcode == dev::WrOpcode::RDMA_WRITE ||
                                 wr->opcode == dev::WrOpcode::RDMA_WRITE_WITH_IMM ||
                                 wr->opcode == dev::WrOpcode::SEND ||
                                 wr->opcode == dev::WrOpcode::SEND_WITH_IMM;
      for (int i = 0; i < wr->num_sge; ++i) inline_len += wr->sg_list[i].length;
      if (!caps_.inline_data) {
        err = fail(EINVAL, "post_send: inline data is not supported by device interface v1");
      } else if (!write_or_send) {
        err = fail(EINVAL, fmt::format("post_send: inline data goes with RDMA WRITE and SEND only, "
                                       "not {}",
                                       dev::to_string(wr->opcode)));
      } else if (inline_len > qp->max_inline_data) {
        err = fail(EINVAL, fmt::format("post_send: {} bytes inline > max_inline_data {} of QP {}",
                                       inline_len, qp->max_inline_data, qp->qpn));
      }
    }
    if (err) {
      if (bad_wr) *bad_wr = wr;
      break;
    }
    const uint32_t stride = 1u << qp->sq_shift;
    std::memset(buf, 0, stride);
    used = 0;
    dev::SendWqe h{};
    h.opcode = static_cast<uint8_t>(wr->opcode);
    h.flags = 0;
    if (wr->send_flags & kSendSignaled) h.flags |= static_cast<uint8_t>(dev::WqeFlags::SIGNALED);
    if (wr->send_flags & kSendSolicited) h.flags |= static_cast<uint8_t>(dev::WqeFlags::SOLICITED);
    if (wr->send_flags & kSendFence) h.flags |= static_cast<uint8_t>(dev::WqeFlags::FENCE);
    h.num_sge = static_cast<uint8_t>(wr->num_sge);
    h.imm_data = wr->imm_data;
    h.wr_id = wr->wr_id;
    h.remote_addr = wr->remote_addr;
    h.rkey = wr->rkey;
    // Version 2: the WQE's index, which a WQE doorbell is checked against (a version-1 driver
    // leaves these reserved bytes 0).
    if (opts_.interface >= 2) h.wqe_index = static_cast<uint16_t>(qp->sq_pi);
    size_t at = sizeof h;
    if (ud) {  // the datagram's address, before the SGEs or the inline payload
      dev::UdSeg u{};
      std::memcpy(u.dest_mac, wr->ah->av.dest_mac, 6);
      u.traffic_class = wr->ah->av.traffic_class;
      u.hop_limit = wr->ah->av.hop_limit;
      u.dest_ipv4 = wr->ah->av.dest_ipv4;
      u.remote_qpn = wr->remote_qpn;
      u.remote_qkey = wr->remote_qkey;
      std::memcpy(buf + at, &u, sizeof u);
      at += sizeof u;
    }
    if (inl) {
      // The payload is copied now, as verbs do: the buffer may be reused once post_send returns,
      // and no lkey is needed.
      h.flags |= static_cast<uint8_t>(dev::WqeFlags::INLINE);
      h.num_sge = 0;
      h.inline_len = static_cast<uint16_t>(inline_len);
      for (int i = 0; i < wr->num_sge && !err; ++i) {
        const Sge& g = wr->sg_list[i];
        try {
          io_.mem_read(g.addr, buf + at, g.length);
        } catch (const std::out_of_range&) {
          err = fail(EFAULT, fmt::format("post_send: inline data at [{:#x}, +{}) is not mapped",
                                         g.addr, g.length));
        }
        at += g.length;
      }
      if (err) {
        if (bad_wr) *bad_wr = wr;
        break;
      }
    } else {
      if (atomic) {
        const dev::AtomicSeg a{wr->compare_add, wr->swap};
        std::memcpy(buf + at, &a, sizeof a);
        at += sizeof a;
      }
      for (int i = 0; i < wr->num_sge; ++i) {
        dev::Sge s{wr->sg_list[i].addr, wr->sg_list[i].length, wr->sg_list[i].lkey};
        std::memcpy(buf + at, &s, sizeof s);
        at += sizeof s;
      }
    }
    std::memcpy(buf, &h, sizeof h);
    uint64_t slot = qp->sq + (uint64_t(qp->sq_pi & (qp->sq_size - 1)) << qp->sq_shift);
    io_.mem_write(slot, buf, stride);
    used = static_cast<uint32_t>(at);
    ++qp->sq_pi;
    ++posted;
  }
  if (posted == 1 && used && caps_.wqe_doorbell && used <= dev::kWqeDbStride) {
    // One WQE, small enough: written with its doorbell (its used bytes, in whole 64-byte
    // write-combining lines), so the device need not fetch it. It is in the ring too.
    const uint32_t len = (used + 63) & ~63u;
    io_.mmio_write(dev::kWqeDbBase + dev::kWqeDbStride * qp->qpn, buf, len);
  } else if (posted) {
    io_.mmio_write32(dev::kQpDbBase + dev::kQpDbStride * qp->qpn + dev::reg::QP_DOORBELL_SQ_WORD,
                     dev::QpDoorbellBits{qp->sq_pi}.pack());  // the low bits of the index
  }
  return err;
}

void Driver::write_recv_wqe(uint64_t slot, uint8_t shift, const RecvWr& wr) {
  uint8_t buf[dev::kRecvWqeMaxBytes];
  const uint32_t stride = 1u << shift;
  std::memset(buf, 0, stride);
  dev::RecvWqe h{};
  h.wr_id = wr.wr_id;
  h.num_sge = static_cast<uint8_t>(wr.num_sge);
  std::memcpy(buf, &h, sizeof h);
  for (int i = 0; i < wr.num_sge; ++i) {
    dev::Sge s{wr.sg_list[i].addr, wr.sg_list[i].length, wr.sg_list[i].lkey};
    std::memcpy(buf + sizeof h + i * sizeof s, &s, sizeof s);
  }
  io_.mem_write(slot, buf, stride);
}

int Driver::create_srq(uint32_t pdn, const SrqAttr& attr, Srq** out) {
  if (!caps_.srq)
    return fail(EOPNOTSUPP,
                "create_srq: the device (or the driver's interface version) offers "
                "no shared receive queues (CAPS.srq)");
  if (attr.max_wr < 1 || attr.max_wr > 32768)
    return fail(EINVAL, fmt::format("create_srq: max_wr {} (1..32768)", attr.max_wr));
  if (attr.max_sge > dev::kMaxRecvSge)
    return fail(EINVAL,
                fmt::format("create_srq: max_sge {} (<= {})", attr.max_sge, dev::kMaxRecvSge));
  auto s = std::make_unique<Srq>();
  s->pdn = pdn;
  s->size = std::max<uint32_t>(2, round_pow2(attr.max_wr));
  s->log_size = log2u(s->size);
  s->shift = dev::recv_wqe_shift_for(std::max<uint32_t>(1, attr.max_sge));
  s->max_sge = dev::max_recv_sge(s->shift);
  if (attr.srq_limit > s->size)
    return fail(EINVAL,
                fmt::format("create_srq: srq_limit {} > its {} WQEs", attr.srq_limit, s->size));
  s->ring = io_.dma_alloc(size_t(s->size) << s->shift, 4096);
  if (!s->ring) return fail(ENOMEM, "create_srq: no DMA memory for the ring");
  dev::CreateSrqIn in{};
  in.ring_addr = s->ring;
  in.log_size = s->log_size;
  in.wqe_shift = s->shift;
  in.pdn = pdn;
  in.limit = attr.srq_limit;
  dev::CreateSrqOut r{};
  if (int e = exec(dev::CmdOp::CREATE_SRQ, &in, sizeof in, &r, sizeof r)) {
    io_.dma_free(s->ring, size_t(s->size) << s->shift);
    return e;
  }
  s->srqn = r.srqn;
  *out = s.get();
  srqs_[s->srqn] = std::move(s);
  return 0;
}

int Driver::modify_srq(Srq* srq, uint32_t srq_limit) {
  if (srq->destroyed)
    return fail(EINVAL, fmt::format("modify_srq: SRQ {} was destroyed", srq->srqn));
  dev::ModifySrqIn in{};
  in.srqn = srq->srqn;
  in.attr_mask = static_cast<uint32_t>(dev::SrqAttr::LIMIT);
  in.limit = srq_limit;
  return exec(dev::CmdOp::MODIFY_SRQ, &in, sizeof in, nullptr, 0);
}

int Driver::query_srq(Srq* srq, SrqAttr* out) {
  if (srq->destroyed)
    return fail(EINVAL, fmt::format("query_srq: SRQ {} was destroyed", srq->srqn));
  dev::HandleIn in{};
  in.handle = srq->srqn;
  dev::QuerySrqOut r{};
  if (int e = exec(dev::CmdOp::QUERY_SRQ, &in, sizeof in, &r, sizeof r)) return e;
  out->max_wr = r.max_wr;
  out->max_sge = r.max_sge;
  out->srq_limit = r.limit;
  return 0;
}

int Driver::destroy_srq(Srq* srq) {
  if (srq->destroyed)
    return fail(EINVAL, fmt::format("destroy_srq: SRQ {} was destroyed already", srq->srqn));
  dev::HandleIn in{};
  in.handle = srq->srqn;
  if (int e = exec(dev::CmdOp::DESTROY_SRQ, &in, sizeof in, nullptr, 0)) return e;
  io_.dma_free(srq->ring, size_t(srq->size) << srq->shift);
  srq->destroyed = true;
  auto it = srqs_.find(srq->srqn);
  dead_srqs_.push_back(std::move(it->second));
  srqs_.erase(it);
  return 0;
}

int Driver::post_srq_recv(Srq* srq, const RecvWr* wr, const RecvWr** bad_wr) {
  int err = 0;
  uint32_t posted = 0;
  for (; wr; wr = wr->next) {
    if (srq->destroyed) {
      err = fail(EINVAL, fmt::format("post_srq_recv: SRQ {} was destroyed", srq->srqn));
    } else if (wr->num_sge < 0 || static_cast<uint32_t>(wr->num_sge) > srq->max_sge) {
      err = fail(EINVAL, fmt::format("post_srq_recv: num_sge {} > max {} of SRQ {}", wr->num_sge,
                                     srq->max_sge, srq->srqn));
    } else if (srq->pi - srq->taken >= srq->size) {
      err = fail(ENOMEM, fmt::format("post_srq_recv: SRQ {} full ({} WQEs)", srq->srqn, srq->size));
    }
    if (err) {
      if (bad_wr) *bad_wr = wr;
      break;
    }
    write_recv_wqe(srq->ring + (uint64_t(srq->pi & (srq->size - 1)) << srq->shift), srq->shift,
                   *wr);
    ++srq->pi;
    ++posted;
  }
  if (posted)
    io_.mmio_write32(dev::kSrqDbBase + dev::kSrqDbStride * srq->srqn,
                     dev::SrqDoorbellBits{srq->pi}.pack());  // the low bits of the index
  return err;
}

int Driver::post_recv(Qp* qp, const RecvWr* wr, const RecvWr** bad_wr) {
  int err = 0;
  uint32_t posted = 0;
  if (qp->srq)
    return fail(EINVAL, fmt::format("post_recv: QP {} receives from SRQ {}: post to the SRQ",
                                    qp->qpn, qp->srq->srqn));
  for (; wr; wr = wr->next) {
    if (qp->state == dev::QpState::RESET) {
      err = fail(EINVAL, fmt::format("post_recv: QP {} is in state RESET", qp->qpn));
    } else if (wr->num_sge < 0 || static_cast<uint32_t>(wr->num_sge) > qp->max_recv_sge) {
      err = fail(EINVAL,
                 fmt::format("post_recv: num_sge {} > max {}", wr->num_sge, qp->max_recv_sge));
    } else if (qp->rq_pi - qp->rq_ci >= qp->rq_size) {
      err = fail(ENOMEM, "post_recv: receive queue full");
    }
    if (err) {
      if (bad_wr) *bad_wr = wr;
      break;
    }
    write_recv_wqe(qp->rq + (uint64_t(qp->rq_pi & (qp->rq_size - 1)) << qp->rq_shift), qp->rq_shift,
                   *wr);
    ++qp->rq_pi;
    ++posted;
  }
  if (posted)
    io_.mmio_write32(dev::kQpDbBase + dev::kQpDbStride * qp->qpn + dev::reg::QP_DOORBELL_RQ_WORD,
                     dev::QpDoorbellBits{qp->rq_pi}.pack());
  return err;
}

void Driver::clean_cq(Cq* cq, uint32_t qpn) {
  // As mlx5's cq clean: walk the unpolled CQEs from the newest down, drop the QP's, and move the
  // others up by the number dropped, so that the ring stays dense; then skip the freed slots.
  auto slot = [cq](uint32_t i) {
    return cq->ring + uint64_t(i & (cq->size - 1)) * sizeof(dev::Cqe);
  };
  auto owner = [cq](uint32_t i) { return static_cast<uint8_t>(((i >> cq->log_size) & 1) ^ 1); };
  uint32_t prod = cq->ci;
  for (dev::Cqe e; prod - cq->ci < cq->size; ++prod) {
    io_.mem_read(slot(prod), &e, sizeof e);
    if ((e.owner & 1) != owner(prod)) break;
  }
  uint32_t freed = 0;
  for (uint32_t k = prod - cq->ci; k-- > 0;) {
    const uint32_t i = cq->ci + k;
    dev::Cqe e;
    io_.mem_read(slot(i), &e, sizeof e);
    if (e.qpn == qpn) {
      ++freed;
    } else if (freed) {
      e.owner = owner(i + freed);
      io_.mem_write(slot(i + freed), &e, sizeof e);
    }
  }
  cq->ci += freed;
}

void Driver::update_cq_db(Cq* cq, bool arm, bool solicited) {
  dev::CqDoorbellBits db;
  db.ci = cq->ci;  // its low bits
  db.arm = arm;
  db.solicited = arm && solicited;
  io_.mmio_write32(dev::kCqDbBase + dev::kCqDbStride * cq->cqn, db.pack());
  cq->db_ci = cq->ci;
}

int Driver::poll_cq(Cq* cq, int n, Wc* wc) {
  int got = 0;
  while (got < n) {
    dev::Cqe e;
    uint64_t addr = cq->ring + uint64_t(cq->ci & (cq->size - 1)) * sizeof e;
    io_.mem_read(addr, &e, sizeof e);
    uint8_t want = static_cast<uint8_t>(((cq->ci >> cq->log_size) & 1) ^ 1);
    if ((e.owner & 1) != want) break;
    Wc& w = wc[got++];
    w.wr_id = e.wr_id;
    w.status = static_cast<dev::WcStatus>(e.status);
    w.opcode = static_cast<dev::WcOpcode>(e.opcode);
    w.vendor_err = e.vendor_err;
    w.byte_len = e.byte_len;
    w.imm_data = e.imm_data;
    w.qp_num = e.qpn;
    w.src_qp = e.src_qp;
    w.wc_flags =
        ((e.flags & static_cast<uint8_t>(dev::CqeFlags::WITH_IMM)) ? uint32_t(kWcWithImm) : 0u) |
        ((e.flags & static_cast<uint8_t>(dev::CqeFlags::GRH)) ? uint32_t(kWcGrh) : 0u);
    ++cq->ci;
    auto it = qps_.find(e.qpn);
    if (it != qps_.end()) {
      Qp* qp = it->second.get();
      bool recv = e.opcode >= static_cast<uint8_t>(dev::WcOpcode::RECV);
      if (recv && qp->srq) {
        // The WQE's index in the SRQ: it and every earlier one have been taken (QPs take them in
        // order, and complete them in any order).
        Srq* s = qp->srq;
        const auto d = static_cast<int16_t>(e.wqe_counter - static_cast<uint16_t>(s->taken));
        if (d >= 0) s->taken += static_cast<uint32_t>(d) + 1;
      } else {
        uint32_t& ci = recv ? qp->rq_ci : qp->sq_ci;
        // wqe_counter is the low 16 bits of the completed WQE's index: everything up to it is
        // done.
        ci += static_cast<uint16_t>(e.wqe_counter - static_cast<uint16_t>(ci)) + 1;
      }
    }
  }
  // Tell the device how far we have read at least every half ring, so it can detect overrun.
  if (got && cq->ci - cq->db_ci >= cq->size / 2) update_cq_db(cq, false, false);
  return got;
}

int Driver::req_notify_cq(Cq* cq, bool solicited_only) {
  update_cq_db(cq, true, solicited_only);
  if (!kernel_) io_.mmio_write32(dev::reg::EQ_DOORBELL, eq_doorbell(eq_ci_, true));
  return 0;
}

bool Driver::next_eqe(dev::Eqe* e) {
  if (kernel_) return kernel_->next_event(e, 0);
  uint64_t addr = eq_ + uint64_t(eq_ci_ & (eq_size_ - 1)) * sizeof *e;
  io_.mem_read(addr, e, sizeof *e);
  uint8_t want = static_cast<uint8_t>(((eq_ci_ >> kEqLog) & 1) ^ 1);
  if ((e->owner & 1) != want) return false;
  ++eq_ci_;
  io_.mmio_write32(dev::reg::EQ_DOORBELL, eq_doorbell(eq_ci_, false));
  return true;
}

bool Driver::wait_eqe(uint64_t timeout_ns) {
  if (kernel_) {  // the event waited for is taken now: kept for the next next_eqe
    dev::Eqe e;
    if (!kernel_->next_event(&e, timeout_ns)) return false;
    if (e.type == static_cast<uint8_t>(dev::EqeType::COMPLETION))
      cq_events_.push_back(e.obj);
    else
      async_events_.push_back(AsyncEvent{static_cast<dev::EqeType>(e.type), e.obj});
    return true;
  }
  io_.mmio_write32(dev::reg::EQ_DOORBELL, eq_doorbell(eq_ci_, true));
  return io_.wait_interrupt(timeout_ns);
}

int Driver::get_cq_event(Cq** out, uint64_t timeout_ns) {
  for (;;) {
    uint32_t cqn = 0;
    bool got = false;
    if (!cq_events_.empty()) {
      cqn = cq_events_.front();
      cq_events_.erase(cq_events_.begin());
      got = true;
    } else if (dev::Eqe e; next_eqe(&e)) {
      if (e.type != static_cast<uint8_t>(dev::EqeType::COMPLETION)) {
        async_events_.push_back(AsyncEvent{static_cast<dev::EqeType>(e.type), e.obj});
        continue;  // other events are kept for async_events()
      }
      cqn = e.obj;
      got = true;
    }
    if (got) {
      auto it = cqs_.find(cqn);
      if (it != cqs_.end()) {
        *out = it->second.get();
        return 0;
      }
      continue;  // a CQ destroyed since
    }
    if (!wait_eqe(timeout_ns)) return fail(ETIMEDOUT, "get_cq_event: no event");
  }
}

int Driver::get_async_event(AsyncEvent* out, uint64_t timeout_ns) {
  for (;;) {
    if (!async_events_.empty()) {
      *out = async_events_.front();
      async_events_.erase(async_events_.begin());
      return 0;
    }
    if (dev::Eqe e; next_eqe(&e)) {
      if (e.type == static_cast<uint8_t>(dev::EqeType::COMPLETION)) {
        cq_events_.push_back(e.obj);
      } else {
        async_events_.push_back(AsyncEvent{static_cast<dev::EqeType>(e.type), e.obj});
      }
      continue;
    }
    if (!wait_eqe(timeout_ns)) return fail(ETIMEDOUT, "get_async_event: no event");
  }
}

}  // namespace rn::drv
