#include "model/system/system.h"

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bridge/host/dma_bench.h"
#include "model/system/bounds.h"
#include "model/system/schema.h"
#include "model/wire/transport.h"

namespace rn::system {

using cfg::ConfigError;

namespace {
double wall_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
using host::is_lat;
using host::Verb;
}  // namespace

std::string System::pcie_key(const cfg::Config& c, int host, const std::string& leaf) {
  std::string k = fmt::format("host{}.pcie.{}", host, leaf);
  return c.source(k) != "default" ? k : "pcie." + leaf;
}

pcie::Params System::host_pcie(const cfg::Config& c, int h) {
  auto key = [&](const char* leaf) { return pcie_key(c, h, leaf); };
  pcie::Params p;
  p.gen = static_cast<int>(c.integer(key("gen")));
  p.lanes = static_cast<int>(c.integer(key("lanes")));
  p.mps = static_cast<uint32_t>(c.size(key("mps")));
  p.mrrs = static_cast<uint32_t>(c.size(key("mrrs")));
  p.rcb = static_cast<uint32_t>(c.size(key("rcb")));
  p.ecrc = c.boolean(key("ecrc"));
  p.ack_limit = static_cast<uint32_t>(c.size(key("ack_limit")));
  p.fc_limit = static_cast<uint32_t>(c.size(key("fc_limit")));
  p.read_latency = c.time(key("read_latency"));
  p.posted_write_latency = c.time(key("posted_write_latency"));
  p.link_latency = c.time(key("link_latency"));
  p.mmio_cpu_latency = c.time(key("mmio_cpu_latency"));
  p.mmio_read_device_latency = c.time(key("mmio_read_device_latency"));
  p.read_tags = static_cast<uint32_t>(c.integer(key("read_tags")));
  p.ph_credits = static_cast<uint32_t>(c.integer(key("ph_credits")));
  p.pd_credits = static_cast<uint32_t>(c.integer(key("pd_credits")));
  p.nph_credits = static_cast<uint32_t>(c.integer(key("nph_credits")));
  p.cplh_credits = static_cast<uint32_t>(c.integer(key("cplh_credits")));
  p.cpld_credits = static_cast<uint32_t>(c.integer(key("cpld_credits")));
  p.credit_return_latency = c.time(key("credit_return_latency"));
  return p;
}

namespace {
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

pcie::IommuParams System::iommu_params(const cfg::Config& c) {
  pcie::IommuParams p;
  p.enabled = c.boolean("iommu.enabled");
  p.iotlb_entries = static_cast<uint32_t>(c.integer("iommu.iotlb_entries"));
  p.iotlb_ways = static_cast<uint32_t>(c.integer("iommu.iotlb_ways"));
  p.iotlb_hit_latency = c.time("iommu.iotlb_hit_latency");
  p.levels = static_cast<uint32_t>(c.integer("iommu.levels"));
  p.walk_read_latency = c.time("iommu.walk_read_latency");
  p.walkers = static_cast<uint32_t>(c.integer("iommu.walkers"));
  p.invalidate_latency = c.time("iommu.invalidate_latency");
  p.ats = c.boolean("iommu.ats");
  p.atc_entries = static_cast<uint32_t>(c.integer("iommu.atc_entries"));
  p.atc_ways = static_cast<uint32_t>(c.integer("iommu.atc_ways"));
  return p;
}

xlate::CacheParams System::cache_params(const cfg::Config& c) {
  xlate::CacheParams p;
  p.enabled = c.boolean("nic.cache.enabled");
  p.mpt_entries = static_cast<uint32_t>(c.integer("nic.cache.mpt_entries"));
  p.mpt_ways = static_cast<uint32_t>(c.integer("nic.cache.mpt_ways"));
  p.mtt_entries = static_cast<uint32_t>(c.integer("nic.cache.mtt_entries"));
  p.mtt_ways = static_cast<uint32_t>(c.integer("nic.cache.mtt_ways"));
  p.misses = static_cast<uint32_t>(c.integer("nic.cache.misses"));
  p.memo = c.boolean("sim.cache_memo");
  return p;
}

std::vector<std::string> System::workload_list(const cfg::Config& c) {
  std::vector<std::string> out;
  std::stringstream ss(c.str("run.workloads"));
  std::string item;
  while (std::getline(ss, item, ',')) {
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (item.empty()) continue;
    if (!host::is_workload_kind(item))
      throw ConfigError(
          fmt::format("{}: key 'run.workloads': bad value '{}': unknown workload '{}' (known: {})",
                      c.source("run.workloads"), cfg::excerpt(c.str("run.workloads")),
                      cfg::excerpt(item), host::workload_kinds()));
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
  if (host::is_dma_bench(k)) {
    p.dma_write = c.str(k + ".op") == "write";
    p.size = c.size(k + ".size");
    p.window = c.size(k + ".window");
    p.dma_random = c.str(k + ".pattern") == "random";
    p.iterations = static_cast<uint64_t>(c.integer(k + ".iterations"));
    p.outstanding = static_cast<uint32_t>(c.integer(k + ".outstanding"));
    p.page_size = c.size(k + ".page_size");
    if (p.page_size == 0) p.page_size = c.size("host.page_size");
    p.seed = static_cast<uint64_t>(c.integer(k + ".seed"));
    return p;
  }
  p.timeout = static_cast<uint8_t>(c.integer(k + ".timeout"));
  p.retry_cnt = static_cast<uint8_t>(c.integer(k + ".retry_cnt"));
  if (host::is_mixed(k)) {
    // Every WQE signaled, one SGE; the keys of the bandwidth tests it has.
    p.size = c.size(k + ".size");
    p.iterations = static_cast<uint64_t>(c.integer(k + ".iterations"));
    p.qps = static_cast<uint32_t>(c.integer(k + ".qps"));
    p.tx_depth = static_cast<uint32_t>(c.integer(k + ".tx_depth"));
    p.rx_depth = static_cast<uint32_t>(c.integer(k + ".rx_depth"));
    p.cq_mod = 1;
    p.mtu = static_cast<uint32_t>(c.size(k + ".mtu"));
    p.verify = c.boolean(k + ".verify");
    p.seed = static_cast<uint64_t>(c.integer(k + ".seed"));
    // A bad list is refused by validate(); here it leaves the default mix.
    host::parse_mixed_ops(c.str(k + ".ops"), &p.mix);
    return p;
  }
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
  if (host::has_qp_type(k)) {
    const std::string t = c.str(k + ".qp_type");
    p.qp_type = t == "UD" ? dev::QpType::UD : t == "UC" ? dev::QpType::UC : dev::QpType::RC;
  }
  const Verb verb = host::verb_of(k);
  if (verb != Verb::kRead && verb != Verb::kAtomic)  // inline data: WRITE and SEND only
    p.inline_size = static_cast<uint32_t>(c.size(k + ".inline_size"));
  p.verify = c.boolean(k + ".verify");
  if (k == "send_bw") p.use_srq = c.boolean(k + ".use_srq");
  if (k == "read_bw") p.region = c.size(k + ".region");
  if (verb == Verb::kAtomic)
    p.atomic_type = c.str(k + ".atomic_type") == host::to_string(host::AtomicType::kCmpAndSwap)
                        ? host::AtomicType::kCmpAndSwap
                        : host::AtomicType::kFetchAndAdd;
  if (is_lat(k)) p.keep_samples = static_cast<uint64_t>(c.integer("capture.latency_csv"));
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
  // A rule involving several keys blames the one the user changed most recently and most
  // specifically: set by --set, then in the configuration file itself, then in a file it
  // includes, then a default; the first listed among equals.
  auto rank = [&](const std::string& key) {
    const std::string& src = c.source(key);
    if (src == "--set") return 3;
    if (src == "default") return 0;
    if (!config_name_.empty() && src.rfind(config_name_ + ":", 0) == 0) return 2;
    return 1;
  };
  auto blame = [&](const std::vector<std::string>& keys) {
    std::string best = keys.front();
    for (const auto& k : keys)
      if (rank(k) > rank(best)) best = k;
    return best;
  };
  // A rule between two keys: blame one (above), and name both.
  auto conflict = [&](std::string a, std::string b, const std::string& why) {
    if (blame({a, b}) == b) std::swap(a, b);
    return ConfigError(fmt::format("{}: key '{}': bad value '{}': {} (key '{}' is '{}', from {})",
                                   c.source(a), a, value(a), why, b, value(b), c.source(b)));
  };
  // A lower bound over a limit: blame one of the keys the bound grows with, or the limit.
  auto exceeds = [&](const Bound& b, const std::string& limit, const std::string& what,
                     const std::string& fix) {
    std::vector<std::string> keys = b.keys();
    keys.push_back(limit);
    const std::string k = blame(keys);
    return ConfigError(fmt::format(
        "{}: key '{}': value '{}': {} takes at least {} ({}), more than {} ('{}', from {}): {}",
        c.source(k), k, value(k), what, human_time(b.value), b.describe(3), limit, value(limit),
        c.source(limit), fix));
  };
  for (int h = 0; h < 2; ++h) {
    std::string perr = host_pcie(c, h).validate();
    if (!perr.empty()) {
      std::string key = perr.substr(0, perr.find(':'));
      if (key.rfind("pcie.", 0) == 0) key = pcie_key(c, h, key.substr(5));
      if (c.schema().find(key)) throw bad(key, perr.substr(perr.find(':') + 2));
      throw ConfigError(perr);
    }
  }
  if (pcie::page_size_index(c.size("host.page_size")) < 0)
    throw bad("host.page_size", "not a page size: 4KiB, 2MiB or 1GiB");
  if (std::string e = iommu_params(c).validate(); !e.empty())
    throw bad(e.substr(0, e.find(':')), e.substr(e.find(':') + 2));
  if (std::string e = cache_params(c).validate(); !e.empty())
    throw bad(e.substr(0, e.find(':')), e.substr(e.find(':') + 2));
  try {
    Logger probe;
    probe.enable(c.str("sim.log"));
  } catch (const std::invalid_argument& e) {
    throw bad("sim.log", e.what());
  }
  // Faults on the link.
  for (const char* k : {"link.loss", "link.corrupt"})
    if (c.real(k) >= 1)
      throw bad(
          k,
          "a probability of 1 loses every frame (a corrupted frame is dropped by its "
          "receiver): nothing can get through, no run can make progress; use a value below 1");
  try {
    net::parse_fault_rules(c.str("link.rule"));
  } catch (const net::FaultRuleError& e) {
    // From [[link.rule]] tables: the line of the table at fault.
    const auto where = c.entry_sources("link.rule");
    const std::string src =
        e.index >= 1 && e.index <= where.size() ? where[e.index - 1] : c.source("link.rule");
    throw ConfigError(
        fmt::format("{}: key 'link.rule': bad value '{}': {}", src, value("link.rule"), e.what()));
  }
  // What every workload creates on each host's NIC.
  if (host::kCqsPerSide > static_cast<uint64_t>(c.integer("nic.max_cqs")))
    throw bad("nic.max_cqs", fmt::format("every workload creates {} CQs on each NIC (its send and "
                                         "receive completion queues)",
                                         host::kCqsPerSide));
  if (host::kPdsPerSide > static_cast<uint64_t>(c.integer("nic.max_pds")))
    throw bad("nic.max_pds", "every workload creates a protection domain on each NIC");
  const Bounds bounds(c, &System::pcie_key);
  for (int h = 0; h < 2; ++h) {
    Bound w = bounds.command_wait(h);
    if (w.value >= static_cast<double>(c.time("host.driver_timeout")))
      throw exceeds(w, "host.driver_timeout", fmt::format("a driver command of host{}", h),
                    "raise host.driver_timeout or lower those latencies");
  }
  // Frames the link loses (at random, or by a rule): only the ACK timeout recovers a lost last
  // packet (or its acknowledgement).
  bool lossy = c.real("link.loss") > 0 || c.real("link.corrupt") > 0;
  for (const auto& r : net::parse_fault_rules(c.str("link.rule")))
    lossy |= r.action == net::FaultAction::kDrop || r.action == net::FaultAction::kCorrupt;
  const std::string lossy_key = c.real("link.loss") > 0      ? "link.loss"
                                : c.real("link.corrupt") > 0 ? "link.corrupt"
                                                             : "link.rule";
  const auto workloads = workloads_ ? workload_list(c) : std::vector<std::string>{};
  for (const auto& k : workloads) {
    if (host::is_dma_bench(k)) {
      const auto p = workload_params(c, k);
      if (c.size(k + ".page_size") != 0 && pcie::page_size_index(p.page_size) < 0)
        throw bad(k + ".page_size", "not a page size: 4KiB, 2MiB or 1GiB (or 0: host.page_size)");
      if (p.size > p.window)
        throw conflict(k + ".size", k + ".window", "a request must fit in the window");
      continue;
    }
    if (host::is_mixed(k)) {
      host::MixedWeights w;
      const std::string err = host::parse_mixed_ops(c.str(k + ".ops"), &w);
      if (!err.empty()) throw bad(k + ".ops", err);
    }
    auto p = workload_params(c, k);
    if (p.region != 0 && (p.region < p.size || (p.size && p.region % p.size)))
      throw conflict(k + ".region", k + ".size",
                     "a region holds whole messages: a multiple of the message size, at least one");
    if (p.region > c.size("nic.max_mr_size"))
      throw conflict(k + ".region", "nic.max_mr_size", "the region is registered as one");
    const bool unreliable = p.qp_type != dev::QpType::RC;
    if (p.qp_type == dev::QpType::UD && host::verb_of(k) != Verb::kSend)
      throw bad(k + ".qp_type",
                "UD has SEND (with immediate) only, no RDMA WRITE: use RC or UC (perftest allows "
                "UD for send_bw and send_lat only)");
    if (p.qp_type == dev::QpType::UD && p.sges + 2 > dev::kMaxSendSge)
      throw bad(k + ".sges", fmt::format("a UD send WQE's address takes the room of 2 SGEs: at "
                                         "most {} with UD",
                                         dev::kMaxSendSge - 2));
    if (p.qp_type == dev::QpType::UD && p.size > p.mtu)
      throw conflict(k + ".size", k + ".mtu",
                     fmt::format("a UD message is one packet: at most the MTU ({} B)", p.mtu));
    if (unreliable && lossy && is_lat(k))
      throw conflict(k + ".qp_type", lossy_key,
                     fmt::format("{} drops what the link loses and never resends it: a lost "
                                 "message would stop the ping-pong of {}; use RC, or a link "
                                 "without loss",
                                 dev::to_string(p.qp_type), k));
    if (lossy && p.timeout == 0 && !unreliable)
      throw conflict(k + ".timeout", lossy_key,
                     "the link loses frames and a lost last packet is resent only when the ACK "
                     "timeout expires: 0 turns it off, the run would wait forever; use 1..31");
    const double ack_timeout = 4096.0 * 1e3 * std::ldexp(1.0, p.timeout);  // ps
    if (lossy && !unreliable && ack_timeout >= static_cast<double>(c.time("host.driver_timeout")))
      throw conflict(k + ".timeout", "host.driver_timeout",
                     fmt::format("with link faults a lost packet may wait one ACK timeout ({}) "
                                 "for its resend, not less than host.driver_timeout: lower {}"
                                 ".timeout or raise host.driver_timeout",
                                 human_time(ack_timeout), k));
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
    // The driver rounds a queue up to a power of two; the NIC takes up to the largest power of
    // two within nic.max_qp_wr.
    const uint64_t max_wr = static_cast<uint64_t>(c.integer("nic.max_qp_wr"));
    uint64_t max_queue = 1;
    while (max_queue * 2 <= max_wr) max_queue *= 2;
    for (const char* leaf : {"tx_depth", "rx_depth"}) {
      const uint64_t d = static_cast<uint64_t>(c.integer(k + "." + leaf));
      uint64_t q = 2;
      while (q < d) q *= 2;
      if (d > max_wr)
        throw conflict(k + "." + leaf, "nic.max_qp_wr", "more WQEs than a queue of the NIC holds");
      if (q > max_queue)
        throw conflict(k + "." + leaf, "nic.max_qp_wr",
                       fmt::format("the driver makes a queue of {} WQEs (a power of two), more "
                                   "than the NIC's largest ({})",
                                   q, max_queue));
    }
    if (p.qps > static_cast<uint64_t>(c.integer("nic.max_qps")))
      throw conflict(k + ".qps", "nic.max_qps", "more QPs than the NIC has");
    if (is_lat(k) && p.qps != 1) throw bad(k + ".qps", "latency tests use one QP");
    // Each host's two CQs take qps x max(tx_depth, rx_depth) x 2 entries, rounded up to a power
    // of two by the driver.
    const std::string depth = k + (p.rx_depth > p.tx_depth ? ".rx_depth" : ".tx_depth");
    const uint64_t cqe = host::cq_entries(p);
    uint64_t cq_size = 2;
    while (cq_size < cqe) cq_size *= 2;
    const uint64_t max_cqe = static_cast<uint64_t>(c.integer("nic.max_cqe"));
    if (cq_size > max_cqe) {
      std::vector<std::string> keys = {k + ".qps", depth, "nic.max_cqe"};
      const std::string key = blame(keys);
      throw ConfigError(fmt::format(
          "{}: key '{}': bad value '{}': {} makes CQs of {}.qps x max(tx_depth, rx_depth) x 2 = "
          "{} x {} x 2 = {} entries ({} as a power of two), more than a CQ of the NIC holds "
          "(nic.max_cqe '{}', from {}): lower {}.qps or {}",
          c.source(key), key, value(key), k, k, p.qps, std::max(p.tx_depth, p.rx_depth), cqe,
          cq_size, value("nic.max_cqe"), c.source("nic.max_cqe"), k, depth));
    }
    for (int side = 0; side < 2; ++side) {
      const uint64_t mrs = uint64_t(p.qps) * host::mrs_per_qp(p, side == 0);
      if (mrs > static_cast<uint64_t>(c.integer("nic.max_mrs")))
        throw conflict(k + ".qps", "nic.max_mrs",
                       fmt::format("{} registers {} memory regions on host{} ({} per QP: one per "
                                   "buffer), more than the NIC has",
                                   k, mrs, side, host::mrs_per_qp(p, side == 0)));
    }
    if (k == "write_lat" && p.size < 1)
      throw bad(k + ".size", "write_lat needs at least 1 byte (the receiver polls the last byte)");
    const Verb verb = host::verb_of(k);
    if (verb == Verb::kAtomic && p.size != host::kAtomicSize)
      throw bad(k + ".size", fmt::format("an atomic reads and writes {} bytes: {}.size must be {}B "
                                         "(perftest refuses another size for atomics too)",
                                         host::kAtomicSize, k, host::kAtomicSize));
    if (verb == Verb::kAtomic && p.sges != 1)
      throw bad(k + ".sges",
                "an atomic has exactly one scatter/gather entry (its 8-byte result): use 1");
    if ((verb == Verb::kRead || verb == Verb::kAtomic) && p.imm)
      throw bad(k + ".imm", fmt::format("{}s have no immediate data (only WRITE and SEND do): "
                                        "use false",
                                        verb == Verb::kRead ? "READ" : "atomic"));
    if (p.size > c.size("nic.max_mr_size"))
      throw conflict(k + ".size", "nic.max_mr_size", "larger than the largest memory region");
    if (host::is_mixed(k)) {
      // Each QP's slots (one per WQE, each the largest message and its guard) are one MR.
      const uint64_t stride = (p.size + host::kGuardBytes + 63) / 64 * 64;
      for (const char* leaf : {"tx_depth", "rx_depth"}) {
        const uint64_t d = static_cast<uint64_t>(c.integer(k + "." + leaf));
        if (d * stride > c.size("nic.max_mr_size"))
          throw conflict(k + "." + leaf, "nic.max_mr_size",
                         fmt::format("{} slots of {} B ({}.size and a {}-byte guard) make a "
                                     "memory region of {} B, larger than the largest",
                                     d, stride, k, host::kGuardBytes, d * stride));
      }
    }
    if (p.sges > 1 && p.size > 0 && p.sges > p.size)
      throw bad(k + ".sges", fmt::format("more SGEs than bytes in a {}-byte message", p.size));
    // Every wait for a completion or a message must end within host.driver_timeout.
    Bound wait = bounds.longest_wait(p);
    if (wait.value >= static_cast<double>(c.time("host.driver_timeout")))
      throw exceeds(wait, "host.driver_timeout",
                    is_lat(k) ? fmt::format("a round trip of {}", k)
                              : fmt::format("a wait for a completion of {}", k),
                    "raise host.driver_timeout, or lower the others");
  }
  // The whole run must fit in sim.max_time, and in this machine's memory.
  Bound run_time, peak;
  for (const auto& k : workloads) {
    auto p = workload_params(c, k);
    if (host::is_dma_bench(k)) {  // the window, filled (reads) or checked (writes)
      Bound m;
      m.add("dma_bench window", {k + ".window"}, static_cast<double>(p.window));
      if (m.value > peak.value) peak = m;
      continue;
    }
    for (const auto& part : bounds.workload_time(p).parts)
      run_time.add(part.what, part.keys, part.value);
    Bound m = bounds.workload_memory(p);
    if (m.value > peak.value) peak = m;  // one workload at a time: its buffers go before the next
  }
  if (run_time.value > static_cast<double>(c.time("sim.max_time")))
    throw exceeds(run_time, "sim.max_time", "the run", "raise sim.max_time, or lower the others");
  const uint64_t phys = Bounds::physical_memory();
  const double need = peak.value + Bounds::kBaseMemory;
  if (phys && need > static_cast<double>(phys)) {
    std::vector<std::string> keys = peak.keys();
    const std::string k = blame(keys);
    std::string others;
    for (const auto& x : keys)
      if (x != k) others += (others.empty() ? "" : ", ") + x;
    throw ConfigError(fmt::format(
        "{}: key '{}': value '{}': the run needs about {} of memory ({}), more than this "
        "machine's {}: lower {}{}{}",
        c.source(k), k, value(k), human_bytes(need), peak.describe(3, true),
        human_bytes(static_cast<double>(phys)), k, others.empty() ? "" : ", or one of ", others));
  }
}

System::System(const cfg::Config& c, const std::string& config_name, HostMode mode, bool workloads)
    : cfg_(c), config_name_(config_name), workloads_(workloads) {
  use_picosecond_resolution();  // before any sc_time: one Tick is one SystemC time unit
  validate();
  sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO,
                                          sc_core::SC_DO_NOTHING);
  eq_ = std::make_unique<EventQueue>("eq");
  sim_ = std::make_unique<Sim>(*eq_);
  if (!c.str("sim.log").empty()) sim_->log.enable(c.str("sim.log"));

  pcie::BridgeParams bp;
  bp.mem_read_latency = c.time("host.mem.read_latency");
  bp.mem_write_latency = c.time("host.mem.write_latency");
  bp.share_pages = c.boolean("sim.share_pages");

  host::HostParams hp;
  hp.scatter_pages = c.str("host.page_alloc") == "scattered";
  hp.page_size = c.size("host.page_size");
  hp.mmio_write_cost = c.time("host.cpu.mmio_write");
  hp.wqe_write_cost = c.time("host.cpu.wqe_write");
  hp.poll_cost = c.time("host.cpu.poll");
  hp.wakeup_latency = c.time("host.cpu.wakeup");
  hp.driver_timeout = c.time("host.driver_timeout");
  drv::DriverOptions dopts;
  dopts.interface = static_cast<uint32_t>(c.integer("host.driver_interface"));
  dopts.wqe_doorbell = c.boolean("host.driver_wqe_doorbell");
  dopts.handshake = c.boolean("host.driver_handshake");

  nic::NicConfig nc;
  qp::NicParams& np = nc.nic;
  np.max_qps = static_cast<uint32_t>(c.integer("nic.max_qps"));
  np.max_cqs = static_cast<uint32_t>(c.integer("nic.max_cqs"));
  np.max_pds = static_cast<uint32_t>(c.integer("nic.max_pds"));
  np.max_srqs = static_cast<uint32_t>(c.integer("nic.max_srqs"));
  np.max_qp_wr = static_cast<uint32_t>(c.integer("nic.max_qp_wr"));
  np.max_cqe = static_cast<uint32_t>(c.integer("nic.max_cqe"));
  np.cmd_latency = c.time("nic.cmd_latency");
  np.reset_latency = c.time("nic.reset_latency");
  np.wqe_prefetch = static_cast<uint32_t>(c.integer("nic.wqe_prefetch"));
  np.rq_prefetch = static_cast<uint32_t>(c.integer("nic.rq_prefetch"));
  np.tx_pipeline_depth = static_cast<uint32_t>(c.integer("nic.tx_pipeline_depth"));
  np.tx_pipeline_latency = c.time("nic.tx_pipeline_latency");
  np.rx_pipeline_latency = c.time("nic.rx_pipeline_latency");
  np.tx_queue_frames = static_cast<uint32_t>(c.integer("nic.tx_queue_frames"));
  np.max_unacked_psn = static_cast<uint32_t>(c.integer("nic.max_unacked_psn"));
  np.ack_req_every = static_cast<uint32_t>(c.integer("nic.ack_req_every"));
  np.ack_coalesce = c.time("nic.ack_coalesce");
  np.sched_quantum = static_cast<uint32_t>(c.integer("nic.sched_quantum"));
  np.rx_buffer_bytes = c.size("nic.rx_buffer");
  np.icrc_seal = c.boolean("sim.icrc_seal");
  np.prefetch_hints = c.boolean("sim.prefetch_hints");
  np.port_rate_bps = c.bandwidth("link.rate");
  nc.xlate.max_mrs = static_cast<uint32_t>(c.integer("nic.max_mrs"));
  nc.xlate.lookup_latency = c.time("nic.translate_latency");
  nc.max_mr_size = c.size("nic.max_mr_size");
  nc.cache = cache_params(c);

  net::LinkParams lkp;
  lkp.rate_bps = c.bandwidth("link.rate");
  lkp.propagation_delay = c.time("link.propagation_delay");
  lkp.mtu = static_cast<uint32_t>(c.size("link.mtu"));
  lkp.overhead_bytes = static_cast<uint32_t>(c.size("link.overhead"));
  lkp.loss = c.real("link.loss");
  lkp.corrupt = c.real("link.corrupt");
  lkp.duplicate = c.real("link.duplicate");
  lkp.reorder = c.real("link.reorder");
  lkp.reorder_delay = c.time("link.reorder_delay");
  lkp.seed = static_cast<uint64_t>(c.integer("link.seed"));
  link_ = std::make_unique<net::Link>(*sim_, "link0", lkp, pool_);
  link_->set_fault_log_limit(static_cast<size_t>(c.integer("capture.faults_csv")));
  for (const auto& r : net::parse_fault_rules(c.str("link.rule"))) link_->add_rule(r);
  if (c.boolean("link.check")) {
    checker_ = std::make_unique<net::ProtocolChecker>(sim_->stats, "link0.check", &sim_->log);
    link_->set_observer(checker_.get());
  }

  nodes_.resize(2);
  for (int i = 0; i < 2; ++i) {
    Node& n = nodes_[i];
    n.name = fmt::format("host{}", i);
    n.mac = {0x02, 0x00, 0x00, 0x00, 0x00, static_cast<uint8_t>(i + 1)};
    n.ipv4 = 0x0A000001u + static_cast<uint32_t>(i);  // 10.0.0.1, 10.0.0.2
    np.mac = n.mac;
    np.ipv4 = n.ipv4;
    bp.link = host_pcie(c, i);
    if (mode == HostMode::kProcess) {
      for (const char* k : {"iommu.enabled", "nic.cache.enabled"})
        if (c.boolean(k))
          throw ConfigError(
              fmt::format("{}: key '{}': bad value 'true': the virtual device has no {} model yet "
                          "(simulated hosts only: rnicsim run, replay)",
                          c.source(k), k, k[0] == 'i' ? "IOMMU" : "context-cache"));
      n.pmem = std::make_unique<hostmem::ProcessMemory>();
      n.bridge = std::make_unique<pcie::Bridge>(*sim_, n.name + ".pcie", bp, *n.pmem);
    } else {
      n.mem = std::make_unique<hostmem::HostMemory>(pages_);
      n.bridge = std::make_unique<pcie::Bridge>(*sim_, n.name + ".pcie", bp, *n.mem);
    }
    if (c.boolean("iommu.enabled")) {
      n.iommu = std::make_unique<pcie::Iommu>(*sim_, n.name + ".iommu", iommu_params(c));
      n.bridge->attach_iommu(n.iommu.get());
    }
    n.nic = std::make_unique<nic::Nic>(*sim_, n.name + ".nic", nc, *n.bridge, pool_);
    n.bridge->attach_device(n.nic.get());
    n.nic->attach_link(link_.get(), i);
    if (mode == HostMode::kProcess) continue;  // serve attaches processes to the NIC
    n.host = std::make_unique<host::SimHost>(*sim_, n.name, hp, *n.mem, *n.bridge);
    n.driver = std::make_unique<drv::Driver>(*n.host, hp.driver_timeout / kNs, dopts);
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
    if (host::is_dma_bench(k)) {
      tests_.push_back(std::make_unique<host::DmaBench>(*nodes_[0].host, *nodes_[0].bridge, p));
      continue;
    }
    std::vector<uint8_t> m0(nodes_[0].mac.begin(), nodes_[0].mac.end());
    std::vector<uint8_t> m1(nodes_[1].mac.begin(), nodes_[1].mac.end());
    tests_.push_back(std::make_unique<host::Perftest>(*nodes_[0].host, *nodes_[0].driver,
                                                      *nodes_[1].host, *nodes_[1].driver, p, m0,
                                                      nodes_[0].ipv4, m1, nodes_[1].ipv4));
  }
  for (auto& t : tests_) t->set_packet_counter([this] { return link_->frames(); });
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
            if (checker_ && !host::is_dma_bench(t->result().params.kind)) {
              // The last workload's QPs are gone: their numbers may come back.
              checker_->forget();
              checker_->set_path_mtu(t->result().params.mtu);
            }
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

void System::progress_tick() {
  ++progress_ticks_;
  const double t = wall_now();
  // About one tick per 50 ms of wall time, whatever the simulation's speed.
  const double dt = t - progress_last_tick_;
  progress_last_tick_ = t;
  if (dt < 0.02 && progress_interval_ < kSec) progress_interval_ *= 2;
  if (dt > 0.1 && progress_interval_ > kNs) progress_interval_ /= 2;
  // The workload under way: the first whose traffic has started and not ended.
  const host::Workload* w = nullptr;
  for (const auto& x : tests_)
    if (x->progress().started && x->progress().done < x->progress().total) {
      w = x.get();
      break;
    }
  if (w && w != progress_w_) {  // a new workload: its rates count from here
    progress_w_ = w;
    progress_frames0_ = link_->frames();
    progress_done0_ = w->progress().done;
    progress_wall0_ = t;
  }
  if (w && t - progress_last_print_ >= 0.25) {
    progress_last_print_ = t;
    const host::Workload::Progress& p = w->progress();
    const double spent = t - progress_wall0_;
    std::string rate = "measuring", left = "time left: estimating";
    if (spent >= 0.2 && p.done > progress_done0_) {
      rate = fmt::format("{:.2f} M packets per wall-second",
                         static_cast<double>(link_->frames() - progress_frames0_) / spent / 1e6);
      left = fmt::format("{:.1f} s left", spent * static_cast<double>(p.total - p.done) /
                                              static_cast<double>(p.done - progress_done0_));
    }
    fmt::print(progress_out_, "\r\033[K  {}  simulated {:.3f} ms  {:.1f}% done ({} of {})  {}  {}",
               w->result().params.kind, static_cast<double>(sim_->now()) / kMs,
               100.0 * static_cast<double>(p.done) / static_cast<double>(p.total), p.done, p.total,
               rate, left);
    std::fflush(progress_out_);
  }
  if (threads_done_ < threads_total_) eq_->after(progress_interval_, [this] { progress_tick(); });
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
  if (progress_out_ && !tests_.empty()) {
    progress_last_tick_ = progress_last_print_ = wall_now();
    eq_->at(progress_interval_, [this] { progress_tick(); });
  }
  eq_->start(cfg_.time("sim.max_time"));
  if (progress_out_ && progress_ticks_) {
    std::fputs("\r\033[K", progress_out_);  // erase the progress line
    std::fflush(progress_out_);
  }
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  bool all_done = threads_done_ == threads_total_;
  return finish(out_dir, wall, all_done);
}

namespace {
nlohmann::json latency_json(const LatencyHistogram& h) {
  return {{"min", h.min_ns()},
          {"p50", h.percentile_ns(50)},
          {"p90", h.percentile_ns(90)},
          {"p99", h.percentile_ns(99)},
          {"p999", h.percentile_ns(99.9)},
          {"max", h.max_ns()},
          {"samples", h.count()},
          {"avg", h.mean_ns()}};
}

// A CSV field: quoted if it holds a comma, a quote or a line break.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}
}  // namespace

// The faults the link injected and its protocol checker's verdict: report lines, and a failed
// run if the checker found violations.
void System::link_notes(RunReport* r) const {
  if (link_->faults_on()) {
    using A = net::FaultAction;
    r->notes.push_back(
        fmt::format("link faults: {} dropped, {} corrupted, {} duplicated, {} reordered{}",
                    link_->fault_count(A::kDrop), link_->fault_count(A::kCorrupt),
                    link_->fault_count(A::kDuplicate), link_->fault_count(A::kReorder),
                    cfg_.integer("capture.faults_csv") > 0 ? " (listed in faults.csv)" : ""));
  }
  if (!checker_) return;
  const uint64_t n = checker_->violation_count();
  if (n == 0) {
    r->notes.push_back(
        fmt::format("protocol check: {} frames, no violation", checker_->frames_checked()));
    return;
  }
  const auto& v = checker_->violations();
  std::string err = fmt::format("link0 protocol check: {} violation{} (violations.csv){}", n,
                                n == 1 ? "" : "s", v.empty() ? "" : "; the first: " + v[0].text());
  r->notes.push_back(err);
  r->ok = false;
  r->error = r->error.empty() ? err : err + "; " + r->error;
}

void System::translation_notes(const nlohmann::json& st, RunReport* r) const {
  auto value = [&](const std::string& g, const char* n) {
    return st.at(g).at(n).at("value").get<uint64_t>();
  };
  auto share = [](uint64_t hits, uint64_t misses) {
    return hits + misses ? 100.0 * double(hits) / double(hits + misses) : 100.0;
  };
  for (const Node& n : nodes_) {
    const std::string c = n.name + ".nic.cache";
    if (st.contains(c)) {
      const uint64_t mh = value(c, "mpt_hits"), mm = value(c, "mpt_misses");
      const uint64_t th = value(c, "mtt_hits"), tm = value(c, "mtt_misses");
      const auto& lat = st.at(c).at("miss_latency");
      r->notes.push_back(fmt::format(
          "{} context caches: MPT {:.2f}% hits ({} misses), MTT {:.2f}% hits ({} misses), "
          "miss latency mean {:.0f} ns, max {:.0f} ns",
          n.name, share(mh, mm), mm, share(th, tm), tm, lat.value("mean", 0.0) / double(kNs),
          lat.value("max", 0.0) / double(kNs)));
    }
    const std::string io = n.name + ".iommu";
    if (st.contains(io))
      r->notes.push_back(fmt::format("{} IOMMU: {} translations, IOTLB {:.2f}% hits, {} faults",
                                     n.name, value(io, "translations"),
                                     share(value(io, "iotlb_hits"), value(io, "iotlb_misses")),
                                     value(io, "faults")));
  }
}

void System::write_link_csvs(const std::string& out_dir, RunReport* r) const {
  namespace fs = std::filesystem;
  // Each file is written when its feature is on, else removed (none left from an earlier run).
  const fs::path faults = fs::path(out_dir) / "faults.csv";
  if (link_->faults_on() && cfg_.integer("capture.faults_csv") > 0) {
    std::ofstream f = open_output(faults);
    f << "frame,pcap_frame,time_ps,side,action,cause,opcode,dest_qp,psn\n";
    for (const auto& x : link_->fault_log()) {
      f << x.frame << "," << (x.pcap_frame ? std::to_string(x.pcap_frame) : "") << "," << x.time
        << "," << int(x.side) << "," << net::to_string(x.action) << ","
        << (x.rule >= 0 ? fmt::format("rule {}", x.rule + 1) : "random") << ",";
      if (x.fields.roce)
        f << wire::op_info(x.fields.opcode).name << "," << x.fields.dest_qp << "," << x.fields.psn;
      else
        f << ",,";
      f << "\n";
    }
    close_output(f, faults, r);
  } else {
    std::error_code ec;
    fs::remove(faults, ec);
  }
  const fs::path viol = fs::path(out_dir) / "violations.csv";
  if (checker_) {
    std::ofstream f = open_output(viol);
    f << "frame,pcap_frame,time_ps,side,dest_qp,psn,opcode,rule,what\n";
    for (const auto& v : checker_->violations())
      f << v.frame << "," << (v.pcap_frame ? std::to_string(v.pcap_frame) : "") << "," << v.time
        << "," << v.side << "," << v.qp << "," << v.psn << "," << wire::op_info(v.opcode).name
        << "," << net::to_string(v.rule) << "," << csv_field(v.what) << "\n";
    close_output(f, viol, r);
  } else {
    std::error_code ec;
    fs::remove(viol, ec);
  }
}

RunReport System::finish(const std::string& out_dir, double wall, bool all_done) {
  for (auto& n : nodes_) n.bridge->sync_all();  // writes still in flight land
  RunReport r;
  r.sim_time = std::max(sim_->now(), eq_->last_time());
  r.wall_seconds = wall;
  r.events = eq_->events_executed() - progress_ticks_;
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
    j["bytes"] = res.bytes;
    j["start_ps"] = res.start;
    j["end_ps"] = res.end;
    if (host::is_dma_bench(res.params.kind)) {
      const auto& p = res.params;
      j["op"] = p.dma_write ? "write" : "read";
      j["window_bytes"] = p.window;
      j["pattern"] = p.dma_random ? "random" : "sequential";
      j["outstanding"] = p.outstanding;
      j["page_size_bytes"] = p.page_size;
      j["requests"] = res.messages;
      j["bandwidth_gbps"] = res.goodput_gbps;
      j["request_rate_mtps"] = res.msg_rate_mpps;
      j["latency_ns"] = latency_json(res.latency);
      wl[p.kind] = j;
      continue;
    }
    j["iterations"] = res.params.iterations;
    j["qps"] = res.params.qps;
    j["mtu_bytes"] = res.params.mtu;
    j["messages"] = res.messages;
    j["verified_bytes"] = res.verified_bytes;
    j["traffic_wall_seconds"] = res.wall_seconds;
    j["traffic_packets"] = res.packets;
    j["traffic_packets_per_wall_second"] =
        res.wall_seconds > 0 ? static_cast<double>(res.packets) / res.wall_seconds : 0.0;
    if (host::verb_of(res.params.kind) == Verb::kAtomic)
      j["atomic_type"] = host::to_string(res.params.atomic_type);
    if (is_lat(res.params.kind)) {
      const auto& h = res.latency;
      // WRITE and SEND: one way (half a round trip); READ and atomics: the whole round trip.
      j["latency_measure"] = host::ping_pong(res.params.kind) ? "one_way" : "round_trip";
      j["latency_ns"] = latency_json(h);
      // Every sample, binned (model/core/latency_histogram.h): [lower edge in ns, samples].
      nlohmann::json bins = nlohmann::json::array();
      for (const auto& [lo, n] : h.bins()) bins.push_back({lo, n});
      j["latency_histogram"] = {{"resolution", "1 ns below 131072 ns, 1/65536 of the value above"},
                                {"bins_ns", std::move(bins)}};
    } else {
      j["goodput_gbps"] = res.goodput_gbps;
      j["msg_rate_mpps"] = res.msg_rate_mpps;
    }
    if (host::is_mixed(res.params.kind)) {
      // The mix drawn: messages and bytes of each operation; every completion checked.
      j["seed"] = res.params.seed;
      j["ops"] = host::mixed_ops_text(res.params.mix);
      nlohmann::json ops = nlohmann::json::object();
      for (size_t k = 0; k < host::kMixedOps; ++k)
        ops[host::kMixedOpNames[k]] = {{"messages", res.op_messages[k]},
                                       {"bytes", res.op_bytes[k]}};
      j["per_op"] = ops;
      j["send_completions"] = res.completions;
      j["receive_completions"] = res.receives;
      j["timeout"] = res.params.timeout;
      j["retry_cnt"] = res.params.retry_cnt;
    }
    if (res.params.qp_type != dev::QpType::RC) {
      // UC and UD lose what the link loses: what arrived of what was sent.
      j["qp_type"] = dev::to_string(res.params.qp_type);
      if (!host::is_lat(res.params.kind) && host::is_send(res.params.kind))
        j["receive_completions"] = res.receives;
    }
    wl[res.params.kind] = j;
  }
  link_notes(&r);
  translation_notes(stats, &r);
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
    write_link_csvs(out_dir, &r);
    for (const auto& res : r.workloads) {
      // The first capture.latency_csv samples; none: no file (nor one left from an earlier run).
      auto csv = std::filesystem::path(out_dir) / ("latency_" + res.params.kind + ".csv");
      if (res.latency_samples.empty()) {
        std::error_code ec;
        std::filesystem::remove(csv, ec);
        continue;
      }
      std::ofstream l = open_output(csv);
      l << "iteration,latency_ns\n";
      for (size_t i = 0; i < res.latency_samples.size(); ++i)
        l << i << "," << ticks_to_ns(res.latency_samples[i]) << "\n";
      close_output(l, csv, &r);
    }
  }
  if (!r.output_errors.empty()) {
    r.ok = false;
    for (const auto& e : r.output_errors) r.error += (r.error.empty() ? "" : "; ") + e;
  }
  return r;
}

}  // namespace rn::system
