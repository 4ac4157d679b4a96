// The device interface of the NIC (docs/device-interface.md): BAR0 registers, per-QP and per-CQ
// doorbells, WQEs written with their doorbell (interface version 2), and the command processor that
// creates and modifies PDs, MRs, CQs and QPs. A bad register write or doorbell is refused and
// reported in ERR_CODE; a malformed command completes with an error status naming the offending
// field. Neither touches host memory or crashes.
#pragma once
#include <deque>
#include <vector>

#include "bridge/pcie/pcie_bridge.h"
#include "model/qp/completion.h"
#include "model/qp/qp_engine.h"
#include "model/qp/qp_table.h"
#include "model/translation/context_cache.h"
#include "model/translation/mr_table.h"

namespace rn::device {

class Device : public pcie::MmioTarget {
 public:
  Device(const qp::NicEnv& env, qp::QpTable& t, xlate::MrTable& mrs, qp::Completion& comp,
         qp::QpEngine& qps, pcie::DmaPort& dma, uint64_t max_mr_size);
  ~Device() override;
  void mmio_write32(uint64_t offset, uint32_t value) override;
  uint32_t mmio_read32(uint64_t offset) override;
  // A write-combined burst: a WQE with its doorbell (WQE_DOORBELL), or a 4-byte register write.
  void mmio_write(uint64_t offset, const uint8_t* data, uint32_t len) override;
  // What CAPS reads (device interface version 2).
  dev::CapsBits caps() const;
  // The context caches (CAPS.icm), or none: MrTable alone, no context memory.
  void use_cache(xlate::ContextCache* c) { cache_ = c; }

 private:
  using Result = qp::CmdResult;
  void reg_error(dev::RegError e, uint64_t offset);
  void qp_doorbell(uint64_t offset, uint32_t value);
  // The SQ producer index a doorbell's low bits (pi mod 2^16) extend to, if the QP may take it:
  // false (the write refused) if not.
  bool sq_producer(qp::QpCtx& q, uint32_t low, uint64_t offset, uint32_t* pi);
  void wqe_doorbell(uint64_t offset, const uint8_t* data, uint32_t len);
  void cq_doorbell(uint64_t offset, uint32_t value);
  void srq_doorbell(uint64_t offset, uint32_t value);
  void start_command(uint32_t token);
  // CAPS.icm: the context memory MAP_ICM must give, and a key's MptEntry written there by DMA
  // (zeroes without a region).
  uint64_t icm_bytes() const;
  void write_mpt(uint32_t key, const xlate::Region* r);
  // Runs the command read into cmd_in_ (DMA_ERROR without running it if its read failed), then
  // writes its CmdOut.
  void finish_command(uint64_t addr, uint64_t gen, bool read_failed = false);
  // Device control (CAPS.device_control): CTRL, STATUS, CMD_ABORT, DRIVER_VERSION.
  // A write while a reset runs or the device is disabled: false if refused (the slow path: only
  // taken while gate_ is set).
  bool gate(uint64_t offset);
  void update_gate() { gate_ = resetting_ || !enabled_; }
  void write_ctrl(uint32_t value);
  void start_reset();
  // CMD_ABORT: ends the running command unless its output is already on its way.
  void abort_command();
  void set_quiesce(bool on);
  // Work the device has taken and not finished (STATUS.quiesced): a command, a send WQE not
  // completed, a READ or atomic response owed, a DMA write not yet in host memory.
  bool in_flight() const;
  // A doorbell accepted while quiesced: applied when quiesce is cleared.
  enum class HeldKind : uint8_t { kSq, kRq, kSrq };
  struct Held {
    HeldKind kind;
    uint32_t num, epoch, pi;
  };
  void hold(HeldKind kind, uint32_t num, uint32_t epoch, uint32_t pi) {
    held_.push_back({kind, num, epoch, pi});
  }
  bool v1() const { return driver_version_ == 1; }  // DRIVER_VERSION 1: the version-1 device
  Result execute(const dev::CmdIn& in, dev::CmdOut* out);
  // Every check of a CREATE_MR but the page list's contents (read only once these pass).
  Result check_mr(const dev::CreateMrIn& a) const;
  Result create_mr(const dev::CreateMrIn& a, dev::CmdOut* out);
  Result create_cq(const dev::CreateCqIn& a, dev::CmdOut* out);
  Result create_srq(const dev::CreateSrqIn& a, dev::CmdOut* out);
  Result modify_srq(const dev::ModifySrqIn& a);
  uint32_t max_srq_wr() const;  // WQEs per SRQ
  Tick now() const { return env_.now(); }

  const qp::NicEnv& env_;
  qp::QpTable& t_;
  xlate::MrTable& mrs_;
  xlate::ContextCache* cache_ = nullptr;
  qp::Completion& comp_;
  qp::QpEngine& qps_;
  pcie::DmaPort& dma_;
  uint64_t max_mr_size_;
  uint64_t cmd_addr_ = 0;
  bool cmd_busy_ = false;
  bool cmd_out_issued_ = false;  // the running command's CmdOut write is issued: too late to abort
  uint64_t cmd_gen_ = 0;         // renewed per command, abort and reset: older callbacks are stale
  bool gate_ = false;            // resetting_ or disabled: writes take the slow path (gate())
  bool resetting_ = false;       // a reset runs: STATUS.ready 0
  bool enabled_ = true;          // CTRL.enable
  bool quiesce_ = false;         // CTRL.quiesce
  uint32_t reset_gen_ = 0;
  uint32_t driver_version_ = 0;  // DRIVER_VERSION (0: no handshake)
  std::vector<Held> held_;       // doorbells held while quiesced, in arrival order
  uint32_t cmd_last_status_ = 0, cmd_last_token_ = 0;
  uint32_t eq_addr_lo_ = 0, eq_addr_hi_ = 0;
  uint32_t err_code_ = 0, err_info_ = 0, err_count_ = 0;
  dev::CmdIn cmd_in_{};             // the command being executed (one at a time)
  std::vector<uint64_t> mr_pages_;  // the page list of the CREATE_MR being executed
  // Numbers freed by DESTROY_PD and DESTROY_CQ, oldest first: creation takes one in O(1).
  std::deque<uint32_t> free_pds_, free_cqs_, free_srqs_;
  uint32_t srq_epochs_ = 0;  // last SRQ epoch handed out

  stats::Group stats_;
  uint64_t& commands_;
  uint64_t& command_errors_;
  uint64_t& sq_doorbells_;
  uint64_t& wqe_doorbells_;
  uint64_t& rq_doorbells_;
  uint64_t& srq_doorbells_;
  uint64_t& cq_doorbells_;
  uint64_t& reg_errors_;
  uint64_t& resets_;
  uint64_t& command_aborts_;
};

}  // namespace rn::device
