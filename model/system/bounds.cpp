#include "model/system/bounds.h"

#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "bridge/driver/driver.h"
#include "model/qp/qp_context.h"
#include "model/wire/headers.h"

namespace rn::system {

namespace {
using host::is_lat;
using host::is_send;
using host::ping_pong;
// READ and atomic tests: the client's requests are answered by the server's NIC alone.
bool reads(const host::WorkloadParams& p) {
  if (host::is_mixed(p.kind)) return true;  // some of its messages are
  const host::Verb v = host::verb_of(p.kind);
  return v == host::Verb::kRead || v == host::Verb::kAtomic;
}
uint64_t pow2_at_least(uint64_t v, uint64_t floor) {
  uint64_t p = floor;
  while (p < v) p <<= 1;
  return p;
}
double pages(double bytes) { return std::ceil(bytes / 4096.0); }
// Bookkeeping of one application page: its entries in the host's page table and in the memory
// model's page map (hash-map nodes and buckets), and its page-list entries in the driver and
// the NIC's translation table.
constexpr double kPageBookkeeping = 96;
// A latency histogram's first block (model/core/latency_histogram.h), kept by the workload and
// by the run's report.
constexpr double kHistogramBytes = 2.0 * LatencyHistogram::kSub * sizeof(uint64_t);
}  // namespace

void Bound::add(std::string what, std::vector<std::string> keys, double v) {
  if (v <= 0) return;
  value += v;
  for (auto& p : parts)
    if (p.what == what) {
      p.value += v;
      return;
    }
  parts.push_back(Part{std::move(what), std::move(keys), v});
}

std::vector<std::string> Bound::keys() const {
  std::vector<Part> sorted = parts;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Part& a, const Part& b) { return a.value > b.value; });
  std::vector<std::string> out;
  for (const auto& p : sorted)
    for (const auto& k : p.keys)
      if (std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
  return out;
}

std::string Bound::describe(size_t n, bool bytes) const {
  std::vector<Part> sorted = parts;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Part& a, const Part& b) { return a.value > b.value; });
  std::string out;
  for (size_t i = 0; i < sorted.size() && i < n; ++i) {
    if (i) out += ", ";
    out += sorted[i].what + ": " +
           (bytes ? human_bytes(sorted[i].value) : human_time(sorted[i].value));
  }
  if (sorted.size() > n) out += ", ...";
  return out;
}

std::string human_time(double ps) {
  if (ps >= 1e12) return fmt::format("{:.3g}s", ps / 1e12);
  if (ps >= 1e9) return fmt::format("{:.3g}ms", ps / 1e9);
  if (ps >= 1e6) return fmt::format("{:.3g}us", ps / 1e6);
  return fmt::format("{:.3g}ns", ps / 1e3);
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (b >= 1024 && u < 6) {
    b /= 1024;
    ++u;
  }
  return fmt::format("{:.3g} {}", b, units[u]);
}

double Bounds::t(const std::string& key) const { return static_cast<double>(c_.time(key)); }

double Bounds::wire_time(const host::WorkloadParams& p, uint64_t messages) const {
  // Each packet: Ethernet, IPv4, UDP, BTH and ICRC headers, and the link's per-frame overhead.
  const double per_packet =
      static_cast<double>(wire::kEthHdrLen + wire::kIpv4HdrLen + wire::kUdpHdrLen + wire::kBthLen +
                          wire::kIcrcLen + c_.size("link.overhead"));
  const double packets = std::max(1.0, std::ceil(static_cast<double>(p.size) / p.mtu));
  const double bytes = static_cast<double>(p.size) + packets * per_packet;
  return static_cast<double>(messages) * bytes * 8.0 / c_.bandwidth("link.rate") * 1e12;
}

Bound Bounds::command_time(int h) const {
  // Doorbell (CPU to root complex, then the link), the NIC reads the command block (a DMA read
  // round trip), executes it, writes the status back (a posted write to memory).
  Bound b;
  auto add = [&](const std::string& key, int n) {
    b.add(n > 1 ? fmt::format("{} x {}", n, key) : key, {key}, n * t(key));
  };
  add(key_(c_, h, "mmio_cpu_latency"), 1);
  add(key_(c_, h, "link_latency"), 4);
  add(key_(c_, h, "read_latency"), 1);
  add("host.mem.read_latency", 1);
  add("nic.cmd_latency", 1);
  add(key_(c_, h, "posted_write_latency"), 1);
  add("host.mem.write_latency", 1);
  return b;
}

Bound Bounds::command_wait(int h) const {
  // reg_mr: the NIC reads the page list too (another DMA read round trip). The driver starts
  // waiting once its doorbell write has cost the CPU host.cpu.mmio_write.
  Bound b = command_time(h);
  const std::string link = key_(c_, h, "link_latency");
  b.add("2 x " + link + " (page list)", {link}, 2 * t(link));
  b.add(key_(c_, h, "read_latency") + " (page list)", {key_(c_, h, "read_latency")},
        t(key_(c_, h, "read_latency")));
  b.add("host.mem.read_latency (page list)", {"host.mem.read_latency"}, t("host.mem.read_latency"));
  b.value = std::max(0.0, b.value - t("host.cpu.mmio_write"));
  return b;
}

uint64_t Bounds::commands(const host::WorkloadParams& p, bool client) const {
  // Setup: a PD, two CQs, per QP create, its MRs, three modify_qp; teardown: per QP destroy and
  // its MRs deregistered, the CQs, the PD.
  const uint64_t mrs = host::mrs_per_qp(p, client);
  return 2 * (host::kPdsPerSide + host::kCqsPerSide) + uint64_t(p.qps) * (1 + mrs + 3 + 1 + mrs);
}

Bound Bounds::one_way(const host::WorkloadParams& p, int from, int to) const {
  Bound b = to_receiver(p, from, 1);
  auto add = [&](const std::string& key, int n) {
    b.add(n > 1 ? fmt::format("{} x {}", n, key) : key, {key}, n * t(key));
  };
  add(key_(c_, to, "link_latency"), 1);
  add(key_(c_, to, "posted_write_latency"), 1);
  add("host.mem.write_latency", 1);
  return b;
}

int Bounds::dma_reads(const host::WorkloadParams& p) const {
  // The WQE, then the payload; with device interface v2 perhaps neither: a payload that may go
  // inline is not read, and a WQE that may come with its doorbell is not fetched (at least).
  const bool v2 = c_.integer("host.driver_interface") >= 2;
  const bool inl =
      v2 && p.inline_size > 0 && p.size <= std::min<uint64_t>(p.inline_size, dev::kMaxSendInline);
  const uint64_t wqe_bytes =
      sizeof(dev::SendWqe) +
      (inl ? p.size : uint64_t(std::max<uint32_t>(1, p.sges)) * sizeof(dev::Sge));
  const bool with_doorbell =
      v2 && c_.boolean("host.driver_wqe_doorbell") && wqe_bytes <= dev::kWqeDbStride;
  return (with_doorbell ? 0 : 1) + (p.size > 0 && !inl ? 1 : 0);
}

Bound Bounds::to_receiver(const host::WorkloadParams& p, int from, uint64_t messages) const {
  Bound b;
  auto add = [&](const std::string& key, int n) {
    b.add(n > 1 ? fmt::format("{} x {}", n, key) : key, {key}, n * t(key));
  };
  const int reads = dma_reads(p);
  add(key_(c_, from, "mmio_cpu_latency"), 1);
  add(key_(c_, from, "link_latency"), 1 + 2 * reads);
  if (reads > 0) {
    add(key_(c_, from, "read_latency"), reads);
    add("host.mem.read_latency", reads);
  }
  add("nic.tx_pipeline_latency", 1);
  b.add(messages > 1 ? fmt::format("{} messages of {} B on the wire", messages, p.size)
                     : fmt::format("{} B on the wire", p.size),
        {p.kind + ".size", "link.rate"}, wire_time(p, messages));
  add("link.propagation_delay", 1);
  add("nic.rx_pipeline_latency", 1);
  return b;
}

Bound Bounds::round_trip(const host::WorkloadParams& p, int turns) const {
  // The answering side wakes up, polls and builds its WQE before its doorbell.
  Bound b = one_way(p, 0, 1);
  for (const auto& part : one_way(p, 1, 0).parts) b.add(part.what, part.keys, part.value);
  for (const char* k : {"host.cpu.wakeup", "host.cpu.poll", "host.cpu.wqe_write"})
    b.add(turns > 1 ? fmt::format("{} x {}", turns, k) : std::string(k), {k}, turns * t(k));
  return b;
}

Bound Bounds::read_trip(const host::WorkloadParams& p, uint64_t messages) const {
  Bound b;
  auto add = [&](const std::string& key, int n, const char* why) {
    b.add(fmt::format("{}{} ({})", n > 1 ? fmt::format("{} x ", n) : "", key, why), {key},
          n * t(key));
  };
  // The doorbell, the WQE fetched by a DMA read; the request to host 1's NIC.
  add(key_(c_, 0, "mmio_cpu_latency"), 1, "doorbell");
  add(key_(c_, 0, "link_latency"), 3, "doorbell, WQE read");
  add(key_(c_, 0, "read_latency"), 1, "WQE read");
  add("host.mem.read_latency", 1, "WQE read");
  add("nic.tx_pipeline_latency", 1, "request");
  add("link.propagation_delay", 1, "request");
  add("nic.rx_pipeline_latency", 1, "request");
  // Host 1's NIC reads the data (the atomic's target), and its responses come back.
  if (p.size > 0 || host::verb_of(p.kind) == host::Verb::kAtomic) {
    add(key_(c_, 1, "link_latency"), 2, "data read");
    add(key_(c_, 1, "read_latency"), 1, "data read");
    add("host.mem.read_latency", 1, "data read");
  }
  add("nic.tx_pipeline_latency", 1, "response");
  b.add(messages > 1 ? fmt::format("{} responses of {} B on the wire", messages, p.size)
                     : fmt::format("{} B of response on the wire", p.size),
        {p.kind + ".size", "link.rate"}, wire_time(p, messages));
  add("link.propagation_delay", 1, "response");
  add("nic.rx_pipeline_latency", 1, "response");
  // The data lands in host 0's memory, then the CQE.
  add(key_(c_, 0, "link_latency"), 2, "data, CQE");
  add(key_(c_, 0, "posted_write_latency"), 2, "data, CQE");
  add("host.mem.write_latency", 2, "data, CQE");
  return b;
}

void Bounds::add_ack_and_cqe(Bound& b) const {
  b.add("link.propagation_delay (ACK)", {"link.propagation_delay"}, t("link.propagation_delay"));
  b.add(key_(c_, 0, "link_latency") + " (CQE)", {key_(c_, 0, "link_latency")},
        t(key_(c_, 0, "link_latency")));
  b.add(key_(c_, 0, "posted_write_latency") + " (CQE)", {key_(c_, 0, "posted_write_latency")},
        t(key_(c_, 0, "posted_write_latency")));
  b.add("host.mem.write_latency (CQE)", {"host.mem.write_latency"}, t("host.mem.write_latency"));
}

double Bounds::first_posting(const host::WorkloadParams& p) const {
  return static_cast<double>(p.qps) *
         static_cast<double>(std::min<uint64_t>(p.tx_depth, p.iterations)) *
         (t("host.cpu.wqe_write") + t("host.cpu.mmio_write"));
}

Bound Bounds::atomic_unit() const {
  // One atomic at a time per NIC: a DMA read of the target, then a DMA write of its new value
  // (every atomic of a test changes it), landed before the next starts.
  Bound b;
  const std::string link = key_(c_, 1, "link_latency"), rd = key_(c_, 1, "read_latency"),
                    wr = key_(c_, 1, "posted_write_latency");
  b.add("3 x " + link, {link}, 3 * t(link));
  for (const std::string& k :
       {rd, wr, std::string("host.mem.read_latency"), std::string("host.mem.write_latency")})
    b.add(k, {k}, t(k));
  return b;
}

Bound Bounds::longest_wait(const host::WorkloadParams& p) const {
  if (is_lat(p.kind)) {
    // The client waits from its doorbell for the answer: its message, the server's turn, the
    // answer (WRITE, SEND); the response to its request (READ, atomics).
    Bound b = ping_pong(p.kind) ? round_trip(p, 1) : read_trip(p, 1);
    b.value = std::max(0.0, b.value - t("host.cpu.mmio_write"));
    return b;
  }
  if (host::is_mixed(p.kind)) return mixed_wait(p);
  const uint64_t between = std::min<uint64_t>(p.cq_mod, p.iterations);
  const std::string count_key =
      p.cq_mod <= p.iterations ? p.kind + ".cq_mod" : p.kind + ".iterations";
  // Steady state: the messages between two completions pass the wire one after the other,
  // less the time the client takes to poll and post as many again before it waits.
  // (Atomics: or as many executed one at a time by the server's NIC, if longer.)
  Bound steady;
  const Bound unit = host::verb_of(p.kind) == host::Verb::kAtomic ? atomic_unit() : Bound{};
  if (static_cast<double>(between) * unit.value > wire_time(p, between)) {
    std::vector<std::string> keys = unit.keys();
    keys.push_back(count_key);
    steady.add(fmt::format("{} atomics executed one at a time", between), keys,
               static_cast<double>(between) * unit.value);
  } else {
    steady.add(fmt::format("{} messages of {} B on the wire", between, p.size),
               {p.kind + ".size", count_key, "link.rate"}, wire_time(p, between));
  }
  steady.value -= t("host.cpu.poll") + static_cast<double>(between) *
                                           (t("host.cpu.wqe_write") + t("host.cpu.mmio_write"));
  // The first completion: the first signaled message reaches the server's NIC, its ACK comes
  // back, the CQE is written; less the time the client spends posting before it waits.
  // (READ, atomics: the responses to the first signaled request, landed and completed.)
  Bound first = reads(p) ? read_trip(p, between) : to_receiver(p, 0, between);
  if (!reads(p)) {
    add_ack_and_cqe(first);
  }
  const double posting = first_posting(p);
  first.value -= posting - t("host.cpu.wqe_write");
  Bound best = first.value > steady.value ? first : steady;
  if (!reads(p) && (is_send(p.kind) || p.imm)) {
    // The server waits from before the client's first post for its first receive.
    Bound server = one_way(p, 0, 1);
    if (server.value > best.value) best = server;
  }
  best.value = std::max(0.0, best.value);
  return best;
}

Bound Bounds::mixed_wait(const host::WorkloadParams& p) const {
  // Every WQE is signaled. The first completion the client waits for is its first message's
  // (QP 0's message 0, known from the seed), less the time the client spends posting the others
  // before it waits; its size and operation vary with the seed, so the bound does too.
  const host::MixedMsg m0 = host::mixed_msg(p, 0, 0);
  host::WorkloadParams one = p;
  one.size = m0.len;
  const bool req = m0.op == host::MixedOp::kRead || m0.op == host::MixedOp::kFetchAdd ||
                   m0.op == host::MixedOp::kCmpSwap;
  if (m0.op != host::MixedOp::kRead && req) one.kind = "atomic_bw";  // read_trip: a target read
  Bound first = req ? read_trip(one, 1) : to_receiver(one, 0, 1);
  if (!req) {
    add_ack_and_cqe(first);
  }
  const double posting = first_posting(p);
  first.value = std::max(0.0, first.value - (posting - t("host.cpu.wqe_write")));
  return first;
}

Bound Bounds::workload_time(const host::WorkloadParams& p) const {
  Bound b;
  // Both sides set up and tear down at once, each one command after another.
  double cmds = 0;
  uint64_t n_cmds = 0;
  for (int side = 0; side < 2; ++side) {
    const uint64_t n = commands(p, side == 0);
    const double v = static_cast<double>(n) * command_time(side).value;
    if (v > cmds) {
      cmds = v;
      n_cmds = n;
    }
  }
  b.add(fmt::format("{}: {} driver commands", p.kind, n_cmds), {p.kind + ".qps", "nic.cmd_latency"},
        cmds);
  if (host::is_mixed(p.kind)) {
    // The client's CPU builds each WQE and rings a doorbell; each message takes at least an
    // empty packet on the wire (the sizes are drawn: the bound does not add them up).
    host::WorkloadParams empty = p;
    empty.size = 0;
    const double n = static_cast<double>(p.iterations) * p.qps;
    const double wire = wire_time(empty, 1),
                 cpu = t("host.cpu.wqe_write") + t("host.cpu.mmio_write");
    std::vector<std::string> keys = {p.kind + ".iterations", p.kind + ".qps"};
    if (wire >= cpu)
      keys.push_back("link.rate");
    else
      keys.insert(keys.end(), {"host.cpu.mmio_write", "host.cpu.wqe_write"});
    b.add(
        fmt::format("{}: {:.0f} messages of at least {} each ({})", p.kind, n,
                    human_time(std::max(wire, cpu)),
                    wire >= cpu ? "an empty packet on the wire" : "the client's CPU posting them"),
        keys, n * std::max(wire, cpu));
  } else if (is_lat(p.kind)) {
    const uint64_t n = p.warmup + p.iterations;
    // WRITE, SEND: both ways, each side's CPU between; READ, atomics: the request and its
    // response, then the client's CPU before the next.
    Bound rt = ping_pong(p.kind) ? round_trip(p, 2) : read_trip(p, 1);
    if (!ping_pong(p.kind))
      for (const char* k : {"host.cpu.wakeup", "host.cpu.poll", "host.cpu.wqe_write"})
        rt.add(k, {k}, t(k));
    std::vector<std::string> keys = {p.kind + ".iterations"};
    if (p.warmup) keys.push_back(p.kind + ".warmup");
    for (const auto& k : rt.keys()) keys.push_back(k);
    b.add(fmt::format("{}: {} round trips of at least {} each", p.kind, n, human_time(rt.value)),
          keys, static_cast<double>(n) * rt.value);
  } else {
    // The wire carries each message; the client's CPU builds each WQE and rings a doorbell; the
    // server's NIC executes atomics one at a time.
    const double n = static_cast<double>(p.iterations) * p.qps;
    const double wire = wire_time(p, 1), cpu = t("host.cpu.wqe_write") + t("host.cpu.mmio_write");
    const Bound unit = host::verb_of(p.kind) == host::Verb::kAtomic ? atomic_unit() : Bound{};
    const double each = std::max({wire, cpu, unit.value});
    std::vector<std::string> keys = {p.kind + ".iterations", p.kind + ".qps"};
    const char* what = "on the wire";
    if (each == unit.value) {
      what = "the server's NIC executing them one at a time";
      for (const auto& k : unit.keys()) keys.push_back(k);
    } else if (wire >= cpu) {
      keys.insert(keys.end(), {p.kind + ".size", "link.rate"});
    } else {
      what = "the client's CPU posting them";
      keys.insert(keys.end(), {"host.cpu.mmio_write", "host.cpu.wqe_write"});
    }
    b.add(fmt::format("{}: {:.0f} messages of at least {} each ({})", p.kind, n, human_time(each),
                      what),
          keys, n * each);
  }
  return b;
}

Bound Bounds::workload_memory(const host::WorkloadParams& p) const {
  Bound b;
  const double qps = p.qps;
  const double len = static_cast<double>(std::max<uint64_t>(p.size, 1));
  const uint64_t sq_size = pow2_at_least(p.tx_depth, 2), rq_size = pow2_at_least(p.rx_depth, 2);
  const uint64_t sges = std::max<uint32_t>(1, p.sges);
  const uint64_t sq_stride = pow2_at_least(32 + 16 * sges, 64);
  const uint64_t rq_stride = pow2_at_least(16 + 16 * sges, 32);
  const double msgs = static_cast<double>(p.iterations + (is_lat(p.kind) ? p.warmup : 0));
  const std::vector<std::string> depth_keys = {p.kind + ".qps", p.kind + ".tx_depth",
                                               p.kind + ".rx_depth"};
  for (int side = 0; side < 2; ++side) {
    const bool client = side == 0;
    // Application buffers: a source of size bytes, a destination with a guard zone after it.
    double buf_pages = 0;
    if (host::is_mixed(p.kind)) {
      // A slot per WQE, each the largest message and its guard: the client's sources and
      // destinations; the server's WRITE targets and receive buffers, a READ source, a target.
      const double stride = static_cast<double>((p.size + host::kGuardBytes + 63) / 64 * 64);
      buf_pages = client ? 2 * pages(p.tx_depth * stride)
                         : pages(p.tx_depth * stride) + pages(p.rx_depth * stride) + pages(len) +
                               pages(host::kAtomicSize + host::kGuardBytes);
    } else {
      if (host::sends_from(p, client)) buf_pages += pages(len);
      if (host::receives_into(p, client))
        buf_pages += pages(static_cast<double>(host::dst_bytes(p, client) + host::kGuardBytes));
    }
    b.add(fmt::format("{} buffers ({} QPs x {} B)", p.kind, p.qps, p.size),
          {p.kind + ".size", p.kind + ".qps"}, qps * buf_pages * (4096 + kPageBookkeeping));
    // Rings in host memory: the pages written (WQEs posted, CQEs written).
    const bool posts = host::posts_sends(p, client);
    const bool recvs = is_lat(p.kind)
                           ? is_send(p.kind)
                           : (!client && (is_send(p.kind) || p.imm || host::is_mixed(p.kind)));
    double ring = 0;
    if (posts) ring += pages(std::min<double>(sq_size, msgs) * sq_stride) * 4096;
    if (recvs) ring += pages(std::min<double>(rq_size, msgs) * rq_stride) * 4096;
    const double cq_size = static_cast<double>(pow2_at_least(host::cq_entries(p), 2));
    const double cqes = std::min(cq_size, msgs * qps);
    b.add(fmt::format("{} rings", p.kind),
          host::is_mixed(p.kind) ? std::vector<std::string>{p.kind + ".qps", p.kind + ".tx_depth",
                                                            p.kind + ".rx_depth"}
                                 : std::vector<std::string>{p.kind + ".qps", p.kind + ".tx_depth",
                                                            p.kind + ".rx_depth", p.kind + ".sges"},
          qps * ring + host::kCqsPerSide * pages(cqes * sizeof(dev::Cqe)) * 4096);
    // Queue state in the NIC and the driver.
    const double prefetch_sq = std::min<uint64_t>(c_.integer("nic.wqe_prefetch"), sq_size);
    const double prefetch_rq = std::min<uint64_t>(c_.integer("nic.rq_prefetch"), rq_size);
    const double per_qp = sizeof(qp::QpCtx) + prefetch_sq * sizeof(qp::SendWqeCache) +
                          prefetch_rq * sizeof(qp::RecvWqeCache) +
                          static_cast<double>(sq_size) * sizeof(qp::Outstanding) + sizeof(drv::Qp) +
                          64 + (reads(p) ? host::kOutstandingReads * sizeof(qp::ReadCtx) : 0);
    b.add(fmt::format("{} queue state", p.kind), depth_keys, qps * per_qp);
  }
  if (is_lat(p.kind)) {
    const double kept = static_cast<double>(std::min(p.keep_samples, p.iterations));
    b.add(fmt::format("{} latency samples for the CSV", p.kind), {"capture.latency_csv"},
          2 * kept * sizeof(Tick));
    b.add(fmt::format("{} latency histogram", p.kind), {}, kHistogramBytes);
  }
  return b;
}

uint64_t Bounds::physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
}

}  // namespace rn::system
