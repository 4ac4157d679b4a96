// One RDMA NIC: the device interface (BAR0, doorbells, commands), the RC requester and
// responder, the completion engine and the translation stage, wired around shared QP/CQ state.
// It meets the host through a PCIe bridge (MMIO in, DMA and MSI-X out) and the network through
// one Ethernet port (whole frames as bytes).
#pragma once
#include <memory>
#include <string>

#include "model/device/device.h"
#include "model/qp/completion.h"
#include "model/qp/qp_context.h"
#include "model/qp/requester.h"
#include "model/qp/responder.h"

namespace rn::nic {

struct NicConfig {
  qp::NicParams nic;
  xlate::Params xlate;
  uint64_t max_mr_size = 64ull << 30;
};

class Nic : public pcie::MmioTarget, public net::FrameSink {
 public:
  Nic(Sim& sim, const std::string& name, const NicConfig& cfg, pcie::DmaPort& dma,
      net::FramePool& pool);
  ~Nic() override;
  // Connects the NIC's port to one side of a link.
  void attach_link(net::Link* link, int side);

  void mmio_write32(uint64_t offset, uint32_t value) override { dev_->mmio_write32(offset, value); }
  uint32_t mmio_read32(uint64_t offset) override { return dev_->mmio_read32(offset); }
  void receive(net::Frame* f) override { resp_->receive(f); }
  void on_the_way(const net::Frame* f) override { resp_->on_the_way(f); }

  const std::string& name() const { return state_.name; }
  qp::NicState& state() { return state_; }

 private:
  qp::NicState state_;
  std::unique_ptr<qp::Completion> comp_;
  std::unique_ptr<qp::Requester> req_;
  std::unique_ptr<qp::Responder> resp_;
  std::unique_ptr<device::Device> dev_;
};

}  // namespace rn::nic
