#include "model/nic/nic.h"

namespace rn::nic {

Nic::Nic(Sim& sim, const std::string& name, const NicConfig& cfg, pcie::DmaPort& dma,
         net::FramePool& pool)
    : env_{sim, name, cfg.nic}, mrs_(sim, name + ".mr", cfg.xlate) {
  comp_ = std::make_unique<qp::Completion>(env_, table_, dma);
  port_ = std::make_unique<qp::TxPort>(env_, pool, framing_);
  rxbuf_ = std::make_unique<qp::RxBuffer>(env_);
  req_ = std::make_unique<qp::Requester>(env_, table_, dma, *port_, *comp_, *rxbuf_, pool);
  resp_ = std::make_unique<qp::Responder>(env_, table_, dma, *port_, *comp_, *rxbuf_, pool);
  demux_ = std::make_unique<qp::RxDemux>(env_, table_, framing_, pool, *rxbuf_, *req_, *resp_);
  port_->set_loopback(demux_.get());
  if (cfg.cache.enabled) {
    cache_ = std::make_unique<xlate::ContextCache>(sim, name + ".cache", cfg.cache, mrs_, dma);
    use_translation(*cache_);
  } else {
    use_translation(mrs_);
  }
  qps_ = std::make_unique<qp::QpEngine>(env_, table_, *req_, *resp_, *comp_);
  req_->bind(*qps_);
  resp_->bind(*qps_);
  dev_ = std::make_unique<device::Device>(env_, table_, mrs_, *comp_, *qps_, dma, cfg.max_mr_size);
  dev_->use_cache(cache_.get());
}

Nic::~Nic() = default;

void Nic::use_translation(xlate::Stage& s) {
  req_->use_translation(s);
  resp_->use_translation(s);
  demux_->use_translation(s);
}

void Nic::attach_link(net::Link* link, int side) {
  port_->attach(link, side);
  link->connect(side, this);
}

}  // namespace rn::nic
