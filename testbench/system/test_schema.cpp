// The configuration schema against the parameter structs of the blocks: every key whose value
// System hands to a struct field has the default of that field (model/system/schema.cpp takes
// them from the structs; this checks the texts parse back to the same values, and catches a
// default written twice again).
#include <catch2/catch.hpp>

#include "bridge/host/perftest.h"
#include "bridge/host/sim_host.h"
#include "bridge/pcie/params.h"
#include "model/net/link.h"
#include "model/nic/nic.h"
#include "model/system/schema.h"
#include "model/system/system.h"

using namespace rn;

TEST_CASE("schema: each default equals the default of the struct field it configures",
          "[schema][defaults]") {
  const cfg::Schema schema = system::make_schema();
  const cfg::Config c(schema);

  const pcie::Params pp{};
  CHECK(c.integer("pcie.gen") == pp.gen);
  CHECK(c.integer("pcie.lanes") == pp.lanes);
  CHECK(c.size("pcie.mps") == pp.mps);
  CHECK(c.size("pcie.mrrs") == pp.mrrs);
  CHECK(c.size("pcie.rcb") == pp.rcb);
  CHECK(c.boolean("pcie.ecrc") == pp.ecrc);
  CHECK(c.size("pcie.ack_limit") == pp.ack_limit);
  CHECK(c.size("pcie.fc_limit") == pp.fc_limit);
  CHECK(c.time("pcie.read_latency") == pp.read_latency);
  CHECK(c.time("pcie.posted_write_latency") == pp.posted_write_latency);
  CHECK(c.time("pcie.link_latency") == pp.link_latency);
  CHECK(c.time("pcie.mmio_cpu_latency") == pp.mmio_cpu_latency);
  CHECK(c.time("pcie.mmio_read_device_latency") == pp.mmio_read_device_latency);
  CHECK(c.integer("pcie.read_tags") == pp.read_tags);
  CHECK(c.integer("pcie.ph_credits") == pp.ph_credits);
  CHECK(c.integer("pcie.pd_credits") == pp.pd_credits);
  CHECK(c.integer("pcie.nph_credits") == pp.nph_credits);
  CHECK(c.integer("pcie.cplh_credits") == pp.cplh_credits);
  CHECK(c.integer("pcie.cpld_credits") == pp.cpld_credits);
  CHECK(c.time("pcie.credit_return_latency") == pp.credit_return_latency);

  const net::LinkParams lk{};
  CHECK(c.bandwidth("link.rate") == lk.rate_bps);
  CHECK(c.time("link.propagation_delay") == lk.propagation_delay);
  CHECK(c.size("link.mtu") == lk.mtu);
  CHECK(c.size("link.overhead") == lk.overhead_bytes);
  CHECK(c.real("link.loss") == lk.loss);
  CHECK(c.real("link.corrupt") == lk.corrupt);
  CHECK(c.real("link.duplicate") == lk.duplicate);
  CHECK(c.real("link.reorder") == lk.reorder);
  CHECK(c.time("link.reorder_delay") == lk.reorder_delay);
  CHECK(c.integer("link.seed") == static_cast<int64_t>(lk.seed));
  CHECK(c.str("link.rule").empty());  // no rules: faults off by default
  CHECK_FALSE(lk.faults());
  CHECK(c.integer("capture.faults_csv") == static_cast<int64_t>(net::Link::kFaultLogDefault));

  const host::HostParams hp{};
  CHECK((c.str("host.page_alloc") == "scattered") == hp.scatter_pages);
  CHECK(c.size("host.page_size") == hp.page_size);
  const pcie::IommuParams ip{};
  const pcie::IommuParams cp = system::System::iommu_params(c);
  CHECK(cp.enabled == ip.enabled);
  CHECK(cp.iotlb_entries == ip.iotlb_entries);
  CHECK(cp.iotlb_ways == ip.iotlb_ways);
  CHECK(cp.iotlb_hit_latency == ip.iotlb_hit_latency);
  CHECK(cp.levels == ip.levels);
  CHECK(cp.walk_read_latency == ip.walk_read_latency);
  CHECK(cp.walkers == ip.walkers);
  CHECK(cp.invalidate_latency == ip.invalidate_latency);
  CHECK(cp.ats == ip.ats);
  CHECK(cp.atc_entries == ip.atc_entries);
  CHECK(cp.atc_ways == ip.atc_ways);
  CHECK(c.time("host.cpu.mmio_write") == hp.mmio_write_cost);
  CHECK(c.time("host.cpu.wqe_write") == hp.wqe_write_cost);
  CHECK(c.time("host.cpu.poll") == hp.poll_cost);
  CHECK(c.time("host.cpu.wakeup") == hp.wakeup_latency);
  CHECK(c.time("host.driver_timeout") == hp.driver_timeout);

  const nic::NicConfig nc{};
  const qp::NicParams& np = nc.nic;
  CHECK(c.integer("nic.max_qps") == np.max_qps);
  CHECK(c.integer("nic.max_cqs") == np.max_cqs);
  CHECK(c.integer("nic.max_pds") == np.max_pds);
  CHECK(c.integer("nic.max_qp_wr") == np.max_qp_wr);
  CHECK(c.integer("nic.max_cqe") == np.max_cqe);
  CHECK(c.time("nic.cmd_latency") == np.cmd_latency);
  CHECK(c.integer("nic.wqe_prefetch") == np.wqe_prefetch);
  CHECK(c.integer("nic.rq_prefetch") == np.rq_prefetch);
  CHECK(c.integer("nic.tx_pipeline_depth") == np.tx_pipeline_depth);
  CHECK(c.time("nic.tx_pipeline_latency") == np.tx_pipeline_latency);
  CHECK(c.time("nic.rx_pipeline_latency") == np.rx_pipeline_latency);
  CHECK(c.integer("nic.tx_queue_frames") == np.tx_queue_frames);
  CHECK(c.integer("nic.max_unacked_psn") == np.max_unacked_psn);
  CHECK(c.integer("nic.ack_req_every") == np.ack_req_every);
  CHECK(c.integer("nic.sched_quantum") == np.sched_quantum);
  CHECK(c.size("nic.rx_buffer") == np.rx_buffer_bytes);
  CHECK(c.boolean("sim.icrc_seal") == np.icrc_seal);
  CHECK(c.boolean("sim.prefetch_hints") == np.prefetch_hints);
  CHECK(c.bandwidth("link.rate") == np.port_rate_bps);  // the NIC's port runs at the link rate
  CHECK(c.integer("nic.max_mrs") == nc.xlate.max_mrs);
  CHECK(c.time("nic.translate_latency") == nc.xlate.lookup_latency);
  CHECK(c.size("nic.max_mr_size") == nc.max_mr_size);

  // Workloads: size and iterations are per workload; the rest are host::WorkloadParams'.
  const host::WorkloadParams w{};
  for (const std::string k : host::kWorkloadKinds) {
    INFO(k);
    const host::WorkloadParams p = system::System::workload_params(c, k);
    CHECK(p.timeout == w.timeout);
    CHECK(p.retry_cnt == w.retry_cnt);
    if (host::is_mixed(k)) {  // its own defaults; every WQE signaled
      CHECK(p.cq_mod == 1);
      CHECK(p.mix == w.mix);
      CHECK(p.seed == w.seed);
      CHECK(c.schema().find(k + ".cq_mod") == nullptr);
      continue;
    }
    if (host::is_dma_bench(k)) {  // the device's DMA engine: its own keys
      CHECK(p.dma_write == w.dma_write);
      CHECK(p.dma_random == w.dma_random);
      CHECK(p.window == w.window);
      CHECK(p.outstanding == w.outstanding);
      CHECK(p.seed == w.seed);
      CHECK(p.page_size == c.size("host.page_size"));  // dma_bench.page_size 0: the host's
      continue;
    }
    CHECK(p.warmup == w.warmup);
    CHECK(p.qps == w.qps);
    CHECK(p.tx_depth == w.tx_depth);
    CHECK(p.rx_depth == w.rx_depth);
    CHECK(p.cq_mod == w.cq_mod);
    CHECK(p.mtu == w.mtu);
    CHECK(p.sges == w.sges);
    CHECK(p.imm == w.imm);
    CHECK(p.verify == w.verify);
    CHECK(p.atomic_type == w.atomic_type);
    CHECK((c.schema().find(k + ".atomic_type") != nullptr) ==
          (host::verb_of(k) == host::Verb::kAtomic));
  }
}

TEST_CASE("schema: every default parses and is inside its own bounds", "[schema][defaults]") {
  const cfg::Schema schema = system::make_schema();
  REQUIRE_NOTHROW(cfg::Config(schema));  // a default that does not parse or is out of range
  const cfg::Config c(schema);
  for (const auto& spec : schema.all()) {
    INFO(spec.key << " = " << spec.def);
    CHECK(c.source(spec.key) == "default");
  }
  CHECK_FALSE(system::System::workload_list(c).empty());
}
