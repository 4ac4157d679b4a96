// The rnicsim host driver: plain C++ over DeviceAccess, speaking to the device only through MMIO
// and host memory, as docs/device-interface.md describes. Its API mirrors the verbs (alloc PD,
// register MR, create CQ/QP, modify QP, post send/recv, poll CQ, request and get CQ events), call
// for call, so the simulated host's workloads, the trace replayer and our libibverbs all use it.
// Calls return 0 or a positive errno value, as verbs do.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "bridge/driver/device_access.h"
#include "model/device/device_interface.h"

namespace rn::drv {

// ibv_send_flags values.
enum SendFlags : uint32_t {
  kSendFence = 1,
  kSendSignaled = 2,
  kSendSolicited = 4,
  kSendInline = 8
};
// ibv_wc_flags values.
enum WcFlags : uint32_t { kWcGrh = 1, kWcWithImm = 2 };

struct Ah;
struct Sge {
  uint64_t addr;
  uint32_t length;
  uint32_t lkey;
};
struct SendWr {
  uint64_t wr_id = 0;
  SendWr* next = nullptr;
  const Sge* sg_list = nullptr;
  int num_sge = 0;
  dev::WrOpcode opcode = dev::WrOpcode::SEND;
  uint32_t send_flags = 0;
  uint32_t imm_data = 0;     // host order; sent big-endian
  uint64_t remote_addr = 0;  // RDMA and atomics (8-byte aligned for atomics)
  uint32_t rkey = 0;
  uint64_t compare_add = 0;  // atomics: CMP_AND_SWP's compare value, FETCH_AND_ADD's addend
  uint64_t swap = 0;         // atomics: CMP_AND_SWP's new value
  // UD: where the datagram goes (ibv_send_wr.wr.ud): an address handle from create_ah, the
  // remote QP and its Q_Key (bit 31 set: the sending QP's own Q_Key is sent instead).
  const Ah* ah = nullptr;
  uint32_t remote_qpn = 0;
  uint32_t remote_qkey = 0;
};
struct RecvWr {
  uint64_t wr_id = 0;
  RecvWr* next = nullptr;
  const Sge* sg_list = nullptr;
  int num_sge = 0;
};
struct Wc {
  uint64_t wr_id;
  dev::WcStatus status;
  dev::WcOpcode opcode;
  uint32_t vendor_err;
  uint32_t byte_len;
  uint32_t imm_data;
  uint32_t qp_num;
  uint32_t src_qp;
  uint32_t wc_flags;
};
struct DeviceAttr {
  uint32_t fw_version, vendor_id, vendor_part_id;
  uint32_t max_qp, max_cq, max_pd, max_qp_wr, max_cqe, max_sge, max_recv_sge;
  uint64_t max_mr_size;
  // Shared receive queues (CAPS.srq; all 0 without).
  uint32_t max_srq = 0, max_srq_wr = 0, max_srq_sge = 0;
  uint32_t max_mr = 0;  // memory regions
};
struct PortAttr {
  uint8_t state, max_mtu, active_mtu, link_layer;
  uint32_t speed_mbps;
  uint8_t mac[6];
  uint32_t ipv4;
};
struct Mr {
  uint32_t lkey = 0, rkey = 0;
  uint64_t addr = 0, length = 0;
  uint32_t pdn = 0;
  uint8_t page_shift = 12;  // log2 of its MTT's page size
  // CAPS.icm: the page list the device reads on MTT cache misses, freed after DESTROY_MR.
  uint64_t mtt_addr = 0;
  size_t mtt_len = 0;
};

// The page size reg_mr gives a region, as Linux's ib_umem_find_best_pgsz: the largest 2^shift
// (dev::kPageShift..dev::kMaxPageShift) such that the region's pages, 4 KiB each at bus addresses
// `pages` from the one holding `va`, make whole pages of 2^shift bytes that are contiguous on the
// bus and lie at the same offset in a page as their virtual addresses.
uint8_t best_page_shift(uint64_t va, const std::vector<uint64_t>& pages);
// The region's page list in pages of 2^shift bytes: the bus address of each (aligned to it).
std::vector<uint64_t> page_list(uint64_t va, const std::vector<uint64_t>& pages, uint8_t shift);
struct Srq;
struct QpCap {
  uint32_t max_send_wr = 128, max_recv_wr = 128, max_send_sge = 1, max_recv_sge = 1;
  dev::QpType qp_type = dev::QpType::RC;  // RC, UC or UD
  // Inline payload bytes a send WR may carry (kSendInline): the send WQE stride holds them.
  // More than the device offers (CAPS.max_inline_data; none with device interface v1) is refused.
  uint32_t max_inline_data = 0;
  // The SRQ the QP receives into (as ibv_qp_init_attr.srq; same PD), or none: then max_recv_wr
  // and max_recv_sge size its own receive queue, else they are ignored.
  Srq* srq = nullptr;
};
// ibv_srq_init_attr / ibv_srq_attr.
struct SrqAttr {
  uint32_t max_wr = 128, max_sge = 1;
  uint32_t srq_limit = 0;  // 0: not armed
};
// A shared receive queue. WQEs [taken, pi) may still be the SRQ's: taken follows the receive
// completions of its QPs (each carries its WQE's index in the SRQ; QPs take WQEs in order).
struct Srq {
  uint32_t srqn = 0;
  uint32_t pdn = 0;
  uint64_t ring = 0;
  uint32_t size = 0;
  uint8_t log_size = 0, shift = 4;
  uint32_t max_sge = 0;
  uint32_t pi = 0, taken = 0;  // free-running
  int users = 0;               // QPs attached
  bool destroyed = false;      // destroy_srq succeeded: any further use is refused
};
struct DriverOptions {
  // The highest device interface version the driver uses. 1 is a version-1 driver: it never reads
  // CAPS, refuses kSendInline and rings 4-byte doorbells only; 2 uses inline data and WQE
  // doorbells where CAPS offers them.
  uint32_t interface = static_cast<uint32_t>(dev::kVersion);
  // Write a lone send WQE of up to wqe_db_stride bytes with its doorbell (WQE_DOORBELL) where the
  // device offers it; false rings the 4-byte doorbell and lets the device fetch every WQE (as
  // mlx5's MLX5_SHUT_UP_BF=1 turns BlueFlame off).
  bool wqe_doorbell = true;
  // Where CAPS.device_control offers it (and `interface` is 2 or more: a version-1 driver never
  // reads CAPS), open() writes DRIVER_VERSION with the version it speaks (the lower of
  // `interface` and VERSION) and checks that the device took it.
  bool handshake = true;
};
struct AddressVector {
  uint32_t dest_ipv4 = 0;
  uint8_t dest_mac[6] = {};
  uint8_t traffic_class = 0;
  uint8_t hop_limit = 64;
};
struct QpAttr {
  dev::QpState qp_state = dev::QpState::RESET;
  dev::QpState cur_qp_state = dev::QpState::RESET;
  dev::Mtu path_mtu = dev::Mtu::MTU_4096;
  uint32_t qp_access_flags = 0;
  uint32_t dest_qp_num = 0, rq_psn = 0, sq_psn = 0;
  uint8_t timeout = 14, retry_cnt = 7, rnr_retry = 7, min_rnr_timer = 12;
  uint8_t max_rd_atomic = 1, max_dest_rd_atomic = 1, port_num = 1;
  uint16_t pkey_index = 0;
  uint32_t qkey = 0;  // UD (with QKEY)
  AddressVector ah;
};
// An address handle (ibv_ah): the address vector of UD sends, kept by the driver (the device
// needs no command for it: each UD WQE carries the address, as mlx5's do).
struct Ah {
  uint32_t pdn = 0;
  AddressVector av;
};

struct Cq {
  uint32_t cqn = 0;
  uint64_t ring = 0;
  uint32_t size = 0;
  uint8_t log_size = 0;
  uint32_t ci = 0;     // free-running consumer index
  uint32_t db_ci = 0;  // last consumer index told to the device
  int users = 0;
};
struct Qp {
  uint32_t qpn = 0;
  uint32_t pdn = 0;
  Cq* send_cq = nullptr;
  Cq* recv_cq = nullptr;
  uint64_t sq = 0, rq = 0;
  uint32_t sq_size = 0, rq_size = 0;
  uint8_t sq_shift = 6, rq_shift = 4;
  uint32_t max_send_sge = 0, max_recv_sge = 0;
  uint32_t max_inline_data = 0;  // inline payload bytes a send WR may carry (0: none)
  dev::QpType type = dev::QpType::RC;
  uint32_t sq_pi = 0, sq_ci = 0;  // free-running; sq_ci from send CQEs
  uint32_t rq_pi = 0, rq_ci = 0;
  dev::QpState state = dev::QpState::RESET;
  bool sq_sig_all = false;
  Srq* srq = nullptr;  // receives into this SRQ (no receive queue of its own)
};

class Driver {
 public:
  // With `kernel`, commands and events go through it (a user-space provider): open() then only
  // reads the identity registers, and the driver never touches the command block, the event
  // queue or MSI-X.
  explicit Driver(DeviceAccess& io, uint64_t cmd_timeout_ns = kDefaultTimeoutNs,
                  const DriverOptions& opts = {}, KernelPath* kernel = nullptr);
  ~Driver();
  // Checks the device identity (ID, and VERSION 1 or later), reads CAPS if the device and the
  // driver's options go to version 2, sets up the command block, the event queue and MSI-X.
  int open();
  // CAPS.icm: gives the device the context memory it asks for (QUERY_DEVICE page 2, MAP_ICM).
  int map_icm();
  // What the driver uses of the device beyond version 1 (after open(); all clear for a
  // version-1 device or driver, wqe_doorbell clear if the options turn it off).
  const dev::CapsBits& caps() const { return caps_; }
  // CAPS.icm: where the device's context memory is (0: none given).
  uint64_t icm() const { return icm_; }
  uint32_t device_version() const { return device_version_; }
  const DriverOptions& options() const { return opts_; }

  int query_device(DeviceAttr* out);
  int query_port(uint8_t port, PortAttr* out);
  int alloc_pd(uint32_t* pdn);
  int dealloc_pd(uint32_t pdn);
  int reg_mr(uint32_t pdn, uint64_t addr, uint64_t length, uint32_t access, Mr* out);
  int dereg_mr(const Mr& mr);
  int create_cq(int min_cqe, Cq** out);
  int destroy_cq(Cq* cq);
  int create_qp(uint32_t pdn, Cq* send_cq, Cq* recv_cq, const QpCap& cap, bool sq_sig_all,
                Qp** out);
  int modify_qp(Qp* qp, const QpAttr& attr, uint32_t attr_mask);
  int query_qp(Qp* qp, dev::QueryQpOut* out);
  int destroy_qp(Qp* qp);
  // Shared receive queues (CAPS.srq), as ibv_create_srq, ibv_modify_srq (IBV_SRQ_LIMIT: arms the
  // limit; SRQ_LIMIT_REACHED then comes through get_async_event), ibv_query_srq and
  // ibv_destroy_srq (EBUSY while a QP uses it). A destroyed SRQ's object stays valid (destroyed
  // set) until the driver goes, so that a late post to it is refused, not a crash.
  int create_srq(uint32_t pdn, const SrqAttr& attr, Srq** out);
  int modify_srq(Srq* srq, uint32_t srq_limit);
  int query_srq(Srq* srq, SrqAttr* out);
  int destroy_srq(Srq* srq);
  int post_srq_recv(Srq* srq, const RecvWr* wr, const RecvWr** bad_wr);
  // Address handles for UD sends (ibv_create_ah): host-side only; a unicast MAC and an IPv4
  // address other than 0 are required.
  int create_ah(uint32_t pdn, const AddressVector& av, Ah** out);
  int destroy_ah(Ah* ah);

  // Fast path: host memory writes plus one doorbell per call.
  int post_send(Qp* qp, const SendWr* wr, const SendWr** bad_wr);
  int post_recv(Qp* qp, const RecvWr* wr, const RecvWr** bad_wr);
  // Returns the number of completions (>= 0), as ibv_poll_cq.
  int poll_cq(Cq* cq, int n, Wc* wc);
  int req_notify_cq(Cq* cq, bool solicited_only);
  // Blocks until a completion event arrives (or timeout); returns the CQ.
  int get_cq_event(Cq** cq, uint64_t timeout_ns);

  // Events other than completions (QP_FATAL, CQ_ERROR, SQ_DRAINED, SRQ_LIMIT_REACHED with obj =
  // SRQN, QP_LAST_WQE_REACHED with obj = QPN) seen while waiting for
  // completion events, oldest first; the caller may clear the vector.
  struct AsyncEvent {
    dev::EqeType type;
    uint32_t obj;
  };
  std::vector<AsyncEvent>& async_events() { return async_events_; }
  // Blocks until an event other than a completion arrives (or timeout), as
  // ibv_get_async_event; completion events met meanwhile wait for get_cq_event.
  int get_async_event(AsyncEvent* out, uint64_t timeout_ns);

  // The last command's device status and syndrome (offset of the refused field), for diagnostics.
  dev::CmdStatus last_status() const { return last_status_; }
  uint32_t last_syndrome() const { return last_syndrome_; }
  const std::string& last_error() const { return last_error_; }
  DeviceAccess& io() { return io_; }

  // The live QPs and CQs, by number (nullptr if none), and how many there are.
  Qp* find_qp(uint32_t qpn) const;
  Cq* find_cq(uint32_t cqn) const;
  size_t qp_count() const { return qps_.size(); }
  size_t cq_count() const { return cqs_.size(); }

 private:
  int exec(dev::CmdOp op, const void* in, size_t in_len, void* out, size_t out_len);
  int finish_command(dev::CmdOp op, const dev::CmdOut& co, void* out, size_t out_len);
  void update_cq_db(Cq* cq, bool arm, bool solicited);
  // Removes the CQEs of QP qpn not yet polled from cq (at destroy_qp).
  void clean_cq(Cq* cq, uint32_t qpn);
  int fail(int err, std::string why);

  DeviceAccess& io_;
  KernelPath* kernel_;
  uint64_t cmd_timeout_ns_;
  DriverOptions opts_;
  uint32_t device_version_ = 0;
  dev::CapsBits caps_{};
  uint64_t cmd_block_ = 0;
  uint64_t icm_ = 0;
  uint32_t token_ = 0;
  uint64_t eq_ = 0;
  uint32_t eq_size_ = 0, eq_ci_ = 0;
  dev::CmdStatus last_status_ = dev::CmdStatus::OK;
  uint32_t last_syndrome_ = 0;
  std::string last_error_;
  std::vector<AsyncEvent> async_events_;
  std::vector<uint32_t> cq_events_;  // CQNs of completion events read by get_async_event
  // Takes the next valid EQE, if there is one (consumer index moved on, the device told).
  bool next_eqe(dev::Eqe* e);
  // Waits up to timeout_ns for an event to take with next_eqe (arms the event queue first).
  bool wait_eqe(uint64_t timeout_ns);
  // The live QPs and CQs, owned, by number: creation and destruction are O(1).
  std::unordered_map<uint32_t, std::unique_ptr<Qp>> qps_;
  std::unordered_map<uint32_t, std::unique_ptr<Cq>> cqs_;
  std::unordered_map<uint32_t, std::unique_ptr<Srq>> srqs_;
  std::vector<std::unique_ptr<Srq>> dead_srqs_;  // destroyed: kept for late calls to refuse
  // Writes one receive WQE (header and SGEs) into a ring slot of 2^shift bytes.
  void write_recv_wqe(uint64_t slot, uint8_t shift, const RecvWr& wr);
  std::unordered_map<const Ah*, std::unique_ptr<Ah>> ahs_;
};

}  // namespace rn::drv
