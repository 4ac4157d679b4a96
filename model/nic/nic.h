// One RDMA NIC: the device interface (BAR0, doorbells, commands), the QP engine, the RC
// requester and responder, the receive demultiplexer, the transmit port, the completion engine
// and the translation stage. Each engine is handed the few others it talks to (no shared state
// struct). The NIC meets the host through a PCIe bridge (MMIO in, DMA and MSI-X out) and the
// network through one Ethernet port (whole frames as bytes).
//
//   link -> RxDemux -> requests -> Responder --ACK/NAK--> TxPort -> link
//                   -> ACKs, responses -> Requester --packets--^
//   BAR0 -> Device -> commands -> QpEngine (QP life), tables; doorbells -> Requester, Responder
//   Requester, Responder -> Completion -> CQEs, EQEs, MSI-X (DMA)
#pragma once
#include <memory>
#include <string>

#include "model/device/device.h"
#include "model/qp/completion.h"
#include "model/qp/qp_engine.h"
#include "model/qp/qp_table.h"
#include "model/qp/requester.h"
#include "model/qp/responder.h"
#include "model/qp/rx_buffer.h"
#include "model/qp/rx_demux.h"
#include "model/qp/tx_port.h"

namespace rn::nic {

struct NicConfig {
  qp::NicParams nic;
  xlate::Params xlate;
  xlate::CacheParams cache;
  uint64_t max_mr_size = 64ull << 30;
};

class Nic : public pcie::MmioTarget, public net::FrameSink {
 public:
  Nic(Sim& sim, const std::string& name, const NicConfig& cfg, pcie::DmaPort& dma,
      net::FramePool& pool);
  ~Nic() override;
  // Connects the NIC's port to one side of a link.
  void attach_link(net::Link* link, int side);
  // Where the device reports what a driver did wrong (the driver sanitizer), or none.
  void set_driver_error_sink(qp::DriverErrorSink* s) { env_.sink = s; }

  void mmio_write32(uint64_t offset, uint32_t value) override { dev_->mmio_write32(offset, value); }
  void mmio_write(uint64_t offset, const uint8_t* data, uint32_t len) override {
    dev_->mmio_write(offset, data, len);
  }
  uint32_t mmio_read32(uint64_t offset) override { return dev_->mmio_read32(offset); }
  void receive(net::Frame* f) override { demux_->receive(f); }
  void on_the_way(const net::Frame* f) override { demux_->on_the_way(f); }

  const std::string& name() const { return env_.name; }
  const qp::NicEnv& env() const { return env_; }
  // For test benches: the tables (to look at QP contexts) and the transmit port (to send frames
  // of their own making, as if this NIC had built them).
  qp::QpTable& table() { return table_; }
  qp::TxPort& port() { return *port_; }
  // Swappable stages (before traffic; not owned): the translation lookup (default: the NIC's
  // xlate::MrTable), the header parser and the ICRC engine (default: the behavioural models).
  void use_translation(xlate::Stage& s);
  void use_parser(qp::HeaderParser& p) { demux_->use_parser(p); }
  void use_icrc(qp::IcrcEngine& e) { demux_->use_icrc(e); }
  xlate::MrTable& mrs() { return mrs_; }
  // The context caches (nic.cache.enabled), or null.
  xlate::ContextCache* cache() { return cache_.get(); }

 private:
  qp::NicEnv env_;
  qp::QpTable table_;
  qp::PortFraming framing_;
  xlate::MrTable mrs_;
  std::unique_ptr<xlate::ContextCache> cache_;
  std::unique_ptr<qp::Completion> comp_;
  std::unique_ptr<qp::TxPort> port_;
  std::unique_ptr<qp::RxBuffer> rxbuf_;
  std::unique_ptr<qp::Requester> req_;
  std::unique_ptr<qp::Responder> resp_;
  std::unique_ptr<qp::RxDemux> demux_;
  std::unique_ptr<qp::QpEngine> qps_;
  std::unique_ptr<device::Device> dev_;
};

}  // namespace rn::nic
