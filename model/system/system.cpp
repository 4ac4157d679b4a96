#include "model/system/system.h"

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/system/schema.h"
#include "model/wire/transport.h"

namespace rn::system {

using cfg::ConfigError;

namespace {
const char* kWorkloads[] = {"write_bw", "send_bw", "write_lat", "send_lat"};
bool is_lat(const std::string& k) { return k == "write_lat" || k == "send_lat"; }
pcie::Params pcie_params(const cfg::Config& c) {
  pcie::Params p;
  p.gen = static_cast<int>(c.integer("pcie.gen"));
  p.lanes = static_cast<int>(c.integer("pcie.lanes"));
  p.mps = static_cast<uint32_t>(c.size("pcie.mps"));
  p.mrrs = static_cast<uint32_t>(c.size("pcie.mrrs"));
  p.rcb = static_cast<uint32_t>(c.size("pcie.rcb"));
  p.ecrc = c.boolean("pcie.ecrc");
  p.ack_limit = static_cast<uint32_t>(c.size("pcie.ack_limit"));
  p.fc_limit = static_cast<uint32_t>(c.size("pcie.fc_limit"));
  p.read_latency = c.time("pcie.read_latency");
  p.posted_write_latency = c.time("pcie.posted_write_latency");
  p.link_latency = c.time("pcie.link_latency");
  p.mmio_cpu_latency = c.time("pcie.mmio_cpu_latency");
  p.mmio_read_device_latency = c.time("pcie.mmio_read_device_latency");
  p.read_tags = static_cast<uint32_t>(c.integer("pcie.read_tags"));
  p.ph_credits = static_cast<uint32_t>(c.integer("pcie.ph_credits"));
  p.pd_credits = static_cast<uint32_t>(c.integer("pcie.pd_credits"));
  p.nph_credits = static_cast<uint32_t>(c.integer("pcie.nph_credits"));
  p.cplh_credits = static_cast<uint32_t>(c.integer("pcie.cplh_credits"));
  p.cpld_credits = static_cast<uint32_t>(c.integer("pcie.cpld_credits"));
  p.credit_return_latency = c.time("pcie.credit_return_latency");
  return p;
}

// An output file of a run; close_output() says whether everything reached it.
std::ofstream open_output(const std::filesystem::path& path) {
  errno = 0;
  return std::ofstream(path);
}

void close_output(std::ofstream& f, const std::filesystem::path& path, RunReport* r) {
  if (f.is_open()) f.close();
  if (f.good()) {
    r->outputs.push_back(path.string());
    return;
  }
  const int e = errno;
  r->output_errors.push_back(fmt::format("cannot write {}: {}", path.string(),
                                         e != 0 ? std::strerror(e) : "write failed"));
}

}  // namespace

std::vector<std::string> System::workload_list(const cfg::Config& c) {
  std::vector<std::string> out;
  std::stringstream ss(c.str("run.workloads"));
  std::string item;
  while (std::getline(ss, item, ',')) {
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (item.empty()) continue;
    bool known = false;
    for (const char* k : kWorkloads) known |= item == k;
    if (!known)
      throw ConfigError(fmt::format(
          "{}: key 'run.workloads': bad value '{}': unknown workload '{}' "
          "(known: write_bw, send_bw, write_lat, send_lat)",
          c.source("run.workloads"), cfg::excerpt(c.str("run.workloads")), cfg::excerpt(item)));
    if (std::find(out.begin(), out.end(), item) != out.end())
      throw ConfigError(fmt::format(
          "{}: key 'run.workloads': bad value '{}': workload '{}' is listed twice (each workload "
          "runs once; its result in stats.json is named after it)",
          c.source("run.workloads"), cfg::excerpt(c.str("run.workloads")), item));
    out.push_back(item);
  }
  if (out.empty())
    throw ConfigError(fmt::format("{}: key 'run.workloads': empty: name at least one workload",
                                  c.source("run.workloads")));
  return out;
}

host::WorkloadParams System::workload_params(const cfg::Config& c, const std::string& k) {
  host::WorkloadParams p;
  p.kind = k;
  p.size = c.size(k + ".size");
  p.iterations = static_cast<uint64_t>(c.integer(k + ".iterations"));
  p.warmup = static_cast<uint64_t>(c.integer(k + ".warmup"));
  p.qps = static_cast<uint32_t>(c.integer(k + ".qps"));
  p.tx_depth = static_cast<uint32_t>(c.integer(k + ".tx_depth"));
  p.rx_depth = static_cast<uint32_t>(c.integer(k + ".rx_depth"));
  p.cq_mod = static_cast<uint32_t>(c.integer(k + ".cq_mod"));
  p.mtu = static_cast<uint32_t>(c.size(k + ".mtu"));
  p.sges = static_cast<uint32_t>(c.integer(k + ".sges"));
  p.imm = c.boolean(k + ".imm");
  p.verify = c.boolean(k + ".verify");
  return p;
}

void System::validate() const {
  const auto& c = cfg_;
  auto value = [&](const std::string& key) {
    return cfg::excerpt(c.to_json()[key].get<std::string>());
  };
  auto bad = [&](const std::string& key, const std::string& why) {
    return ConfigError(
        fmt::format("{}: key '{}': bad value '{}': {}", c.source(key), key, value(key), why));
  };
  // A rule between two keys: blame the one the user set (the other may be a default), and name
  // both.
  auto conflict = [&](std::string a, std::string b, const std::string& why) {
    if (c.source(a) == "default" && c.source(b) != "default") std::swap(a, b);
    return ConfigError(fmt::format("{}: key '{}': bad value '{}': {} (key '{}' is '{}', from {})",
                                   c.source(a), a, value(a), why, b, value(b), c.source(b)));
  };
  std::string perr = pcie_params(c).validate();
  if (!perr.empty()) {
    std::string key = perr.substr(0, perr.find(':'));
    if (c.schema().find(key)) throw bad(key, perr.substr(perr.find(':') + 2));
    throw ConfigError(perr);
  }
  try {
    Logger probe;
    probe.enable(c.str("sim.log"));
  } catch (const std::invalid_argument& e) {
    throw bad("sim.log", e.what());
  }
  for (const auto& k : workload_list(c)) {
    auto p = workload_params(c, k);
    if (p.mtu != 256 && p.mtu != 512 && p.mtu != 1024 && p.mtu != 2048 && p.mtu != 4096)
      throw bad(k + ".mtu", "a path MTU is one of 256, 512, 1024, 2048, 4096 bytes");
    uint64_t largest_ip =
        wire::kIpv4HdrLen + wire::kUdpHdrLen + wire::largest_packet(p.mtu) + wire::kIcrcLen;
    if (largest_ip > c.size("link.mtu"))
      throw conflict(
          "link.mtu", k + ".mtu",
          fmt::format("the link must carry the largest packet of {}: {} B of IP packet for a {} B "
                      "path MTU",
                      k, largest_ip, p.mtu));
    if (p.cq_mod > p.tx_depth)
      throw conflict(
          k + ".cq_mod", k + ".tx_depth",
          fmt::format("{}.cq_mod ({}) may not exceed {}.tx_depth ({}): the send queue would fill "
                      "with no completion requested",
                      k, p.cq_mod, k, p.tx_depth));
    if (p.tx_depth > static_cast<uint64_t>(c.integer("nic.max_qp_wr")))
      throw conflict(k + ".tx_depth", "nic.max_qp_wr", "more WQEs than a queue of the NIC holds");
    if (p.rx_depth > static_cast<uint64_t>(c.integer("nic.max_qp_wr")))
      throw conflict(k + ".rx_depth", "nic.max_qp_wr", "more WQEs than a queue of the NIC holds");
    if (p.qps > static_cast<uint64_t>(c.integer("nic.max_qps")))
      throw conflict(k + ".qps", "nic.max_qps", "more QPs than the NIC has");
    if (is_lat(k) && p.qps != 1) throw bad(k + ".qps", "latency tests use one QP");
    if ((k == "send_bw" || p.imm) && !is_lat(k) && p.rx_depth < p.tx_depth)
      throw conflict(
          k + ".rx_depth", k + ".tx_depth",
          fmt::format("{}.rx_depth ({}) is smaller than {}.tx_depth ({}): receivers would run "
                      "out, and RNR retry is not modelled yet",
                      k, p.rx_depth, k, p.tx_depth));
    // A wait for one completion (every cq_mod messages; every message in latency tests) must
    // not time out while those messages are on the wire.
    uint64_t between = is_lat(k) ? 1 : std::min<uint64_t>(p.cq_mod, p.iterations);
    double msg_ps = static_cast<double>(p.size) * 8.0 / c.bandwidth("link.rate") * 1e12 *
                    static_cast<double>(between);
    if (msg_ps > static_cast<double>(c.time("host.driver_timeout"))) {
      // Blame the first of the keys involved that the user set.
      std::string blame = "link.rate";
      for (const std::string& key : {std::string("link.rate"), k + ".size",
                                     std::string("host.driver_timeout"), k + ".cq_mod"})
        if (c.source(key) != "default") {
          blame = key;
          break;
        }
      throw ConfigError(fmt::format(
          "{}: key '{}': value '{}': the {} messages of {} B of {} between two completions take "
          "{:.3g} ms on a {} Gb/s link, more than host.driver_timeout ('{}', from {}): raise "
          "host.driver_timeout",
          c.source(blame), blame, value(blame), between, p.size, k, msg_ps / 1e9,
          c.bandwidth("link.rate") / 1e9, value("host.driver_timeout"),
          c.source("host.driver_timeout")));
    }
    if (k == "write_lat" && p.size < 1)
      throw bad(k + ".size", "write_lat needs at least 1 byte (the receiver polls the last byte)");
    if (p.size > c.size("nic.max_mr_size"))
      throw conflict(k + ".size", "nic.max_mr_size", "larger than the largest memory region");
    if (p.sges > 1 && p.size > 0 && p.sges > p.size)
      throw bad(k + ".sges", fmt::format("more SGEs than bytes in a {}-byte message", p.size));
    if (p.size > 0x80000000ull) throw bad(k + ".size", "a message is at most 2 GiB");
  }
}

System::System(const cfg::Config& c, const std::string& config_name)
    : cfg_(c), config_name_(config_name) {
  validate();
  sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO,
                                          sc_core::SC_DO_NOTHING);
  eq_ = std::make_unique<EventQueue>("eq");
  sim_ = std::make_unique<Sim>(*eq_);
  if (!c.str("sim.log").empty()) sim_->log.enable(c.str("sim.log"));

  pcie::BridgeParams bp;
  bp.link = pcie_params(c);
  bp.mem_read_latency = c.time("host.mem.read_latency");
  bp.mem_write_latency = c.time("host.mem.write_latency");
  bp.share_pages = c.boolean("sim.share_pages");

  host::HostParams hp;
  hp.scatter_pages = c.str("host.page_alloc") == "scattered";
  hp.mmio_write_cost = c.time("host.cpu.mmio_write");
  hp.wqe_write_cost = c.time("host.cpu.wqe_write");
  hp.poll_cost = c.time("host.cpu.poll");
  hp.wakeup_latency = c.time("host.cpu.wakeup");
  hp.driver_timeout = c.time("host.driver_timeout");

  nic::NicConfig nc;
  qp::NicParams& np = nc.nic;
  np.max_qps = static_cast<uint32_t>(c.integer("nic.max_qps"));
  np.max_cqs = static_cast<uint32_t>(c.integer("nic.max_cqs"));
  np.max_pds = static_cast<uint32_t>(c.integer("nic.max_pds"));
  np.max_qp_wr = static_cast<uint32_t>(c.integer("nic.max_qp_wr"));
  np.max_cqe = static_cast<uint32_t>(c.integer("nic.max_cqe"));
  np.cmd_latency = c.time("nic.cmd_latency");
  np.wqe_prefetch = static_cast<uint32_t>(c.integer("nic.wqe_prefetch"));
  np.rq_prefetch = static_cast<uint32_t>(c.integer("nic.rq_prefetch"));
  np.tx_pipeline_depth = static_cast<uint32_t>(c.integer("nic.tx_pipeline_depth"));
  np.tx_pipeline_latency = c.time("nic.tx_pipeline_latency");
  np.rx_pipeline_latency = c.time("nic.rx_pipeline_latency");
  np.tx_queue_frames = static_cast<uint32_t>(c.integer("nic.tx_queue_frames"));
  np.max_unacked_psn = static_cast<uint32_t>(c.integer("nic.max_unacked_psn"));
  np.ack_req_every = static_cast<uint32_t>(c.integer("nic.ack_req_every"));
  np.sched_quantum = static_cast<uint32_t>(c.integer("nic.sched_quantum"));
  np.port_rate_bps = c.bandwidth("link.rate");
  nc.xlate.max_mrs = static_cast<uint32_t>(c.integer("nic.max_mrs"));
  nc.xlate.lookup_latency = c.time("nic.translate_latency");
  nc.max_mr_size = c.size("nic.max_mr_size");

  net::LinkParams lkp;
  lkp.rate_bps = c.bandwidth("link.rate");
  lkp.propagation_delay = c.time("link.propagation_delay");
  lkp.mtu = static_cast<uint32_t>(c.size("link.mtu"));
  lkp.overhead_bytes = static_cast<uint32_t>(c.size("link.overhead"));
  link_ = std::make_unique<net::Link>(*sim_, "link0", lkp, pool_);

  nodes_.resize(2);
  for (int i = 0; i < 2; ++i) {
    Node& n = nodes_[i];
    n.name = fmt::format("host{}", i);
    n.mac = {0x02, 0x00, 0x00, 0x00, 0x00, static_cast<uint8_t>(i + 1)};
    n.ipv4 = 0x0A000001u + static_cast<uint32_t>(i);  // 10.0.0.1, 10.0.0.2
    np.mac = n.mac;
    np.ipv4 = n.ipv4;
    n.mem = std::make_unique<hostmem::HostMemory>(pages_);
    n.bridge = std::make_unique<pcie::Bridge>(*sim_, n.name + ".pcie", bp, *n.mem);
    n.nic = std::make_unique<nic::Nic>(*sim_, n.name + ".nic", nc, *n.bridge, pool_);
    n.bridge->attach_device(n.nic.get());
    n.nic->attach_link(link_.get(), i);
    n.host = std::make_unique<host::SimHost>(*sim_, n.name, hp, *n.mem, *n.bridge);
    n.driver = std::make_unique<drv::Driver>(*n.host, hp.driver_timeout / kNs);
  }
}

System::~System() = default;

void System::open_pcap(const std::string& out_dir) {
  if (out_dir.empty() || !cfg_.boolean("capture.pcap")) return;
  pcap_ = std::make_unique<wire::PcapWriter>();
  std::string err;
  std::string path = (std::filesystem::path(out_dir) / "wire.pcap").string();
  if (!pcap_->open(path, static_cast<uint32_t>(cfg_.size("capture.snaplen")), &err))
    throw std::runtime_error("cannot write " + path + ": " + err);
  link_->set_tap(pcap_.get(), static_cast<uint64_t>(cfg_.integer("capture.max_packets")));
}

RunReport System::run(const std::string& out_dir) {
  for (const auto& k : workload_list(cfg_)) {
    auto p = workload_params(cfg_, k);
    std::vector<uint8_t> m0(nodes_[0].mac.begin(), nodes_[0].mac.end());
    std::vector<uint8_t> m1(nodes_[1].mac.begin(), nodes_[1].mac.end());
    tests_.push_back(std::make_unique<host::Perftest>(*nodes_[0].host, *nodes_[0].driver,
                                                      *nodes_[1].host, *nodes_[1].driver, p, m0,
                                                      nodes_[0].ipv4, m1, nodes_[1].ipv4));
    tests_.back()->set_packet_counter([this] { return link_->frames(); });
  }
  auto side = [this](int i) {
    return [this, i] {
      Node& n = nodes_[i];
      if (int e = n.driver->open()) {
        std::string why = fmt::format("{}: driver open failed: {} ({})", n.name, std::strerror(e),
                                      n.driver->last_error());
        RN_LOG(*sim_, LogCat::kError, n.name, "{}", why);
        for (auto& t : tests_) t->fail(why);
      } else {
        for (auto& t : tests_) {
          if (i == 0) {
            link_->restart_capture();  // capture.max_packets counts per workload
            t->run_client();
          } else {
            t->run_server();
          }
        }
      }
      if (++threads_done_ == threads_total_) sc_core::sc_stop();
    };
  };
  return run_custom(side(0), side(1), out_dir);
}

RunReport System::run_custom(std::function<void()> fn0, std::function<void()> fn1,
                             const std::string& out_dir) {
  if (!out_dir.empty()) std::filesystem::create_directories(out_dir);
  open_pcap(out_dir);
  threads_total_ = 0;
  if (fn0) {
    ++threads_total_;
    nodes_[0].host->spawn("sw", tests_.empty() ? [this, fn0] {
      fn0();
      if (++threads_done_ == threads_total_) sc_core::sc_stop();
    } : std::function<void()>(fn0));
  }
  if (fn1) {
    ++threads_total_;
    nodes_[1].host->spawn("sw", tests_.empty() ? [this, fn1] {
      fn1();
      if (++threads_done_ == threads_total_) sc_core::sc_stop();
    } : std::function<void()>(fn1));
  }
  auto t0 = std::chrono::steady_clock::now();
  eq_->start(cfg_.time("sim.max_time"));
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  bool all_done = threads_done_ == threads_total_;
  return finish(out_dir, wall, all_done);
}

RunReport System::finish(const std::string& out_dir, double wall, bool all_done) {
  for (auto& n : nodes_) n.bridge->sync_all();  // writes still in flight land
  RunReport r;
  r.sim_time = std::max(sim_->now(), eq_->last_time());
  r.wall_seconds = wall;
  r.events = eq_->events_executed();
  nlohmann::json stats = sim_->stats.to_json();
  r.packets = stats["link0"]["a_to_b_frames"]["value"].get<uint64_t>() +
              stats["link0"]["b_to_a_frames"]["value"].get<uint64_t>();
  r.ok = all_done;
  if (!all_done)
    r.error =
        fmt::format("the run did not finish within sim.max_time ({}): {} of {} host threads done",
                    cfg::format_time(cfg_.time("sim.max_time")), threads_done_, threads_total_);
  nlohmann::json wl = nlohmann::json::object();
  for (auto& t : tests_) {
    t->verify();
    const auto& res = t->result();
    r.workloads.push_back(res);
    if (!res.ok) {
      r.ok = false;
      if (r.error.empty()) r.error = res.params.kind + ": " + res.error;
    }
    nlohmann::json j;
    j["ok"] = res.ok;
    if (!res.error.empty()) j["error"] = res.error;
    j["size_bytes"] = res.params.size;
    j["iterations"] = res.params.iterations;
    j["qps"] = res.params.qps;
    j["mtu_bytes"] = res.params.mtu;
    j["messages"] = res.messages;
    j["bytes"] = res.bytes;
    j["start_ps"] = res.start;
    j["end_ps"] = res.end;
    j["verified_bytes"] = res.verified_bytes;
    j["traffic_wall_seconds"] = res.wall_seconds;
    j["traffic_packets"] = res.packets;
    j["traffic_packets_per_wall_second"] =
        res.wall_seconds > 0 ? static_cast<double>(res.packets) / res.wall_seconds : 0.0;
    if (is_lat(res.params.kind)) {
      j["latency_ns"] = {{"min", res.percentile_ns(0)},     {"p50", res.percentile_ns(50)},
                         {"p90", res.percentile_ns(90)},    {"p99", res.percentile_ns(99)},
                         {"p999", res.percentile_ns(99.9)}, {"max", res.percentile_ns(100)},
                         {"samples", res.latencies.size()}};
      double avg = 0;
      for (Tick x : res.latencies) avg += ticks_to_ns(x);
      if (!res.latencies.empty()) avg /= static_cast<double>(res.latencies.size());
      j["latency_ns"]["avg"] = avg;
    } else {
      j["goodput_gbps"] = res.goodput_gbps;
      j["msg_rate_mpps"] = res.msg_rate_mpps;
    }
    wl[res.params.kind] = j;
  }
  nlohmann::json run;
  run["ok"] = r.ok;
  if (!r.error.empty()) run["error"] = r.error;
  run["config"] = config_name_;
  run["sim_time_ps"] = r.sim_time;
  run["wall_seconds"] = r.wall_seconds;
  run["events"] = r.events;
  run["systemc_activations"] = eq_->activations();
  run["packets"] = r.packets;
  run["packets_per_wall_second"] = wall > 0 ? static_cast<double>(r.packets) / wall : 0.0;
  run["workloads"] = wl;
  r.json = {{"run", run}, {"config", cfg_.to_json()}, {"stats", stats}};
  if (pcap_) {
    std::string err, path = (std::filesystem::path(out_dir) / "wire.pcap").string();
    if (pcap_->close(&err))
      r.outputs.push_back(path);
    else
      r.output_errors.push_back("cannot write " + path + ": " + err);
  }
  if (!out_dir.empty()) {
    std::ofstream f = open_output(std::filesystem::path(out_dir) / "stats.json");
    f << r.json.dump(2) << "\n";
    close_output(f, std::filesystem::path(out_dir) / "stats.json", &r);
    for (const auto& res : r.workloads) {
      if (res.latencies.empty()) continue;
      auto path = std::filesystem::path(out_dir) / ("latency_" + res.params.kind + ".csv");
      std::ofstream l = open_output(path);
      l << "iteration,latency_ns\n";
      for (size_t i = 0; i < res.latencies.size(); ++i)
        l << i << "," << ticks_to_ns(res.latencies[i]) << "\n";
      close_output(l, path, &r);
    }
  }
  if (!r.output_errors.empty()) {
    r.ok = false;
    for (const auto& e : r.output_errors) r.error += (r.error.empty() ? "" : "; ") + e;
  }
  return r;
}

}  // namespace rn::system
