#include "model/nic/nic.h"

namespace rn::nic {

Nic::Nic(Sim& sim, const std::string& name, const NicConfig& cfg, pcie::DmaPort& dma,
         net::FramePool& pool)
    : state_(sim, name, cfg.nic, dma, pool, cfg.xlate) {
  comp_ = std::make_unique<qp::Completion>(state_);
  req_ = std::make_unique<qp::Requester>(state_);
  resp_ = std::make_unique<qp::Responder>(state_);
  state_.comp = comp_.get();
  state_.req = req_.get();
  state_.resp = resp_.get();
  dev_ = std::make_unique<device::Device>(state_, cfg.max_mr_size);
  state_.qps.resize(2);
  state_.cqs.resize(1);
  state_.pds.resize(1, false);
  state_.pd_users.resize(1, 0);
}

Nic::~Nic() = default;

void Nic::attach_link(net::Link* link, int side) {
  state_.link = link;
  state_.link_side = side;
  link->connect(side, this);
}

}  // namespace rn::nic
