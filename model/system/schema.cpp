#include "model/system/schema.h"

#include <fmt/core.h>

#include <string>
#include <vector>

#include "bridge/host/dma_bench.h"
#include "bridge/host/perftest.h"
#include "bridge/host/sim_host.h"
#include "bridge/pcie/iommu.h"
#include "bridge/pcie/params.h"
#include "model/net/link.h"
#include "model/nic/nic.h"

namespace rn::system {

using cfg::Kind;
using cfg::Spec;

namespace {
// Defaults of parameters that a block's parameter struct declares are taken from the struct (one
// place for each default), written as in a file.
std::string def(bool b) { return b ? "true" : "false"; }
std::string def_int(int64_t i) { return std::to_string(i); }
std::string def_time(Tick t) { return cfg::format_time(t); }
std::string def_size(uint64_t b) { return cfg::format_size(b); }
std::string def_real(double d) { return fmt::format("{}", d); }

// The QPs' ACK timeout and retries, as perftest's -u (its retry count is fixed at 7).
void add_retry(cfg::Schema& s, const std::string& k) {
  const host::WorkloadParams w{};
  s.add({k + ".timeout", Kind::kInt, def_int(w.timeout),
         "the QPs' local ACK timeout code: 4.096 us x 2^timeout without an acknowledgement before "
         "the requester resends (0: none; 14, perftest's default, is 67 ms; with link faults a "
         "lost last packet costs one timeout)",
         0, 31});
  s.add({k + ".retry_cnt", Kind::kInt, def_int(w.retry_cnt),
         "the QPs' retries after a timeout or a sequence NAK without progress before the WQE "
         "fails (RETRY_EXC_ERR)",
         0, 7});
}

// Message size and iterations differ per workload; the other defaults are the generic
// host::WorkloadParams ones.
void add_workload(cfg::Schema& s, const std::string& k, const char* size, const char* iters,
                  const char* inline_size, const char* what) {
  const host::WorkloadParams w{};
  const host::Verb v = host::verb_of(k);
  const bool reads = v == host::Verb::kRead || v == host::Verb::kAtomic;
  s.add({k + ".size", Kind::kSize, size, std::string("message size of ") + what, 0,
         1024.0 * 1024 * 1024 * 2});
  s.add({k + ".iterations", Kind::kInt, iters,
         "messages per QP (bandwidth) or counted round trips (latency)", 1, 1e9});
  s.add({k + ".warmup", Kind::kInt, def_int(w.warmup), "latency: round trips run before measuring",
         0, 1e9});
  s.add({k + ".qps", Kind::kInt, def_int(w.qps),
         "queue pairs (bandwidth tests; latency tests use 1)", 1, 65536});
  s.add({k + ".tx_depth", Kind::kInt, def_int(w.tx_depth),
         reads ? fmt::format("outstanding send WQEs per QP (the NIC has at most {} READs and "
                             "atomics of a QP in flight: max_rd_atomic, as perftest's -o)",
                             host::kOutstandingReads)
               : "outstanding send WQEs per QP",
         1, 32768});
  s.add({k + ".rx_depth", Kind::kInt, def_int(w.rx_depth),
         "posted receive WQEs per QP (SEND tests)", 1, 32768});
  s.add({k + ".cq_mod", Kind::kInt, def_int(w.cq_mod),
         "bandwidth: request a completion every N WQEs (<= tx_depth)", 1, 32768});
  s.add({k + ".mtu", Kind::kSize, std::to_string(w.mtu), "path MTU", 256, 4096, {}});
  s.add({k + ".sges", Kind::kInt, def_int(w.sges), "scatter/gather entries per message", 1, 30});
  if (k == "read_bw")
    s.add({k + ".region", Kind::kSize, "0B",
           "the server's source region (0: one message): each READ reads a message-sized slot "
           "drawn at random from it (a multiple of size)",
           0, 1024.0 * 1024 * 1024 * 1024});
  s.add({k + ".imm", Kind::kBool, def(w.imm),
         "use RDMA WRITE/SEND with immediate; the server checks each value (WRITE and SEND "
         "tests)"});
  if (!reads)  // inline data goes with WRITE and SEND only
    s.add({k + ".inline_size", Kind::kSize, inline_size,
           "messages up to this size go inline (perftest's -I: the payload is copied into the "
           "WQE at post time, the NIC reads no payload by DMA; 0: none). As far as the driver "
           "and device offer it: none with host.driver_interface = 1",
           0, static_cast<double>(dev::kMaxSendInline)});
  s.add({k + ".verify", Kind::kBool, def(w.verify),
         "check every received byte against the sender's data (atomics: every value returned, "
         "and each target's final value)"});
  if (k == "send_bw")
    s.add({k + ".use_srq", Kind::kBool, def(w.use_srq),
           "the server's QPs share one shared receive queue (SRQ) of rx_depth WQEs, as perftest's "
           "--use_srq (every client QP then sends the same pattern: a message lands in the buffer "
           "of whichever WQE its QP took)"});
  add_retry(s, k);
  if (host::has_qp_type(k))
    s.add({k + ".qp_type",
           Kind::kString,
           dev::to_string(w.qp_type),
           v == host::Verb::kSend
               ? "the QPs' transport (perftest's -c): RC, UC (no acknowledgements: a lost packet "
                 "loses its message) or UD (datagrams: one packet of at most .mtu per message, "
                 "a 40-byte GRH area in front of each received message, a lost one is lost). "
                 "With UC or UD the bandwidth server counts the messages that arrived"
               : "the QPs' transport (perftest's -c): RC or UC (no acknowledgements: a lost "
                 "packet loses its message; the server's buffer holds what arrived). UD has no "
                 "WRITE",
           0,
           0,
           {"RC", "UC", "UD"}});
  if (v == host::Verb::kAtomic)
    s.add({k + ".atomic_type",
           Kind::kString,
           host::to_string(w.atomic_type),
           "the atomic posted (as perftest's -A)",
           0,
           0,
           {host::to_string(host::AtomicType::kFetchAndAdd),
            host::to_string(host::AtomicType::kCmpAndSwap)}});
}
// The mixed workload: seeded random operations and sizes, every WQE signaled.
void add_mixed(cfg::Schema& s) {
  const std::string k = "mixed";
  const host::WorkloadParams w{};
  std::string all;
  for (const char* n : host::kMixedOpNames) all += (all.empty() ? "" : ",") + std::string(n);
  s.add({k + ".size", Kind::kSize, "64KiB",
         "the largest message: each WRITE, SEND and READ moves 0..size bytes, log-uniform (as many "
         "of 1-2 bytes as of 32-64 KiB); atomics 8",
         0, 1024.0 * 1024 * 1024 * 2});
  s.add({k + ".iterations", Kind::kInt, "1000", "messages per QP", 1, 1e9});
  s.add({k + ".qps", Kind::kInt, "4", "queue pairs", 1, 65536});
  s.add({k + ".tx_depth", Kind::kInt, "64",
         fmt::format("outstanding send WQEs per QP, each signaled (at most {} READs and atomics of "
                     "a QP in flight: max_rd_atomic)",
                     host::kOutstandingReads),
         1, 32768});
  s.add({k + ".rx_depth", Kind::kInt, "128",
         "receive WQEs posted per QP for the messages that consume one (SEND, SEND and WRITE with "
         "immediate); below 2 x tx_depth the server may run short: RNR NAKs",
         1, 32768});
  s.add({k + ".mtu", Kind::kSize, std::to_string(w.mtu), "path MTU", 256, 4096, {}});
  s.add({k + ".ops", Kind::kString, all,
         "the operations drawn, comma-separated, each with an optional :weight (an integer, 1 if "
         "absent; 0 or absent from the list: never), e.g. \"write:4,read,fetch_add\". Names: " +
             all});
  s.add({k + ".seed", Kind::kInt, def_int(static_cast<int64_t>(w.seed)),
         "seed of every draw (operation, size, READ offset, atomic operands, data): the same seed, "
         "the same run",
         0, 4294967295.0});
  s.add({k + ".verify", Kind::kBool, def(w.verify),
         "check every byte written, sent and read against its message's pattern, every atomic "
         "value, and each target's final value (completions are checked either way)"});
  add_retry(s, k);
}
// dma_bench: the device's DMA engine against host 0's memory, as pcie-bench.
void add_dma_bench(cfg::Schema& s) {
  const std::string k = "dma_bench";
  const host::WorkloadParams w{};
  s.add({k + ".op",
         Kind::kString,
         w.dma_write ? "write" : "read",
         "what each request does: read host memory into the device, or write it",
         0,
         0,
         {"read", "write"}});
  s.add({k + ".size", Kind::kSize, "64B", "bytes of each request", 1,
         static_cast<double>(host::DmaBench::kMaxSize)});
  s.add({k + ".window", Kind::kSize, def_size(w.window),
         "bytes of host memory the requests touch (an application buffer, pinned and mapped as "
         "a memory region's pages are); a multiple of .size is used",
         1, 64.0 * 1024 * 1024 * 1024});
  s.add({k + ".pattern",
         Kind::kString,
         w.dma_random ? "random" : "sequential",
         "offsets: one after the other (wrapping at the window's end), or drawn uniformly from "
         "the window's multiples of .size",
         0,
         0,
         {"random", "sequential"}});
  s.add({k + ".iterations", Kind::kInt, "100000", "requests", 1, 1e9});
  s.add({k + ".outstanding", Kind::kInt, def_int(w.outstanding),
         "requests in flight at once (1: each request alone, its latency unloaded; the link's "
         "read tags bound reads in flight too: pcie.read_tags)",
         1, 4096});
  s.add({k + ".page_size", Kind::kSize, "0B",
         "the window's page size: 4KiB, 2MiB or 1GiB (0: host.page_size); with the IOMMU on its "
         "pages are mapped at this size",
         0, 1024.0 * 1024 * 1024});
  s.add({k + ".seed", Kind::kInt, def_int(static_cast<int64_t>(w.seed)),
         "seed of the random offsets: the same seed, the same requests", 0, 4294967295.0});
}
}  // namespace

cfg::Schema make_schema() {
  cfg::Schema s;
  const net::LinkParams lk{};
  const pcie::Params pp{};
  const host::HostParams hp{};
  const drv::DriverOptions dopts{};
  const nic::NicConfig nc{};
  const qp::NicParams& np = nc.nic;
  // Run.
  s.add({"run.workloads", Kind::kString, "write_bw,send_lat",
         "comma-separated workloads run one after the other: " + host::workload_kinds()});
  s.add({"sim.max_time", Kind::kTime, "10s",
         "simulated time limit: a run not finished by then fails", 1e3, 1.8e19});
  s.add({"sim.share_pages", Kind::kBool, "true",
         "simulator speed, no effect on results: a DMA write of one whole page whose bytes a "
         "DMA read took from one whole page maps that page copy-on-write instead of copying "
         "them"});
  s.add({"sim.icrc_seal", Kind::kBool, np.icrc_seal ? "true" : "false",
         "simulator speed, no effect on results: a receiver trusts the ICRC of a frame this "
         "simulator's sender computed over exactly its bytes instead of computing it again"});
  s.add({"sim.prefetch_hints", Kind::kBool, np.prefetch_hints ? "true" : "false",
         "simulator speed, no effect on results: QP contexts and memory regions are loaded into "
         "the CPU cache ahead of use"});
  s.add({"sim.cache_memo", Kind::kBool, def(nc.cache.memo),
         "simulator speed, no effect on results: the context caches remember their last lookup "
         "that hit, and answer it again without searching their tags"});
  s.add({"sim.log", Kind::kString, "",
         "log categories (cmd,doorbell,wqe,tx,rx,cqe,dma,wire,driver,app,error or all)"});
  // Topology.
  s.add({"topology.kind",
         Kind::kString,
         "back_to_back",
         "how hosts are connected",
         0,
         0,
         {"back_to_back"}});
  // Ethernet link.
  s.add({"link.rate", Kind::kBandwidth, cfg::format_bandwidth(lk.rate_bps),
         "line rate of each direction", 1e6, 1.6e12});
  s.add({"link.propagation_delay", Kind::kTime, def_time(lk.propagation_delay),
         "cable and PHY latency (5 m of copper about 25 ns)", 0, 1e12});
  s.add({"link.mtu", Kind::kSize, def_size(lk.mtu),
         "largest Ethernet payload (IP packet) the link carries", 576, 9216});
  s.add({"link.overhead", Kind::kSize, def_size(lk.overhead_bytes),
         "per-frame bytes on the wire besides the frame: preamble+SFD 8, IFG 12, FCS 4", 0, 64});
  // Faults on the link (off by default) and its protocol checker.
  s.add({"link.loss", Kind::kReal, def_real(lk.loss),
         "probability that a frame sent (either way) is dropped; below 1 (1 lets nothing "
         "through). The random faults' stream: link.seed",
         0, 1});
  s.add({"link.corrupt", Kind::kReal, def_real(lk.corrupt),
         "probability that one bit of a frame is flipped, among the bits the receiver's checks "
         "cover (IP header checksum, ICRC), so that it drops the frame (drop_framing); below 1",
         0, 1});
  s.add({"link.duplicate", Kind::kReal, def_real(lk.duplicate),
         "probability that a copy of a frame follows it on the wire (and is delivered too)", 0, 1});
  s.add({"link.reorder", Kind::kReal, def_real(lk.reorder),
         "probability that a frame is held back and delivered right after the next frame of its "
         "direction (one held at a time; the frame that releases one is not held)",
         0, 1});
  s.add({"link.reorder_delay", Kind::kTime, def_time(lk.reorder_delay),
         "longest a held frame waits for the next frame: then it is delivered alone, this much "
         "after its own arrival",
         1e3, 1e12});
  s.add({"link.seed", Kind::kInt, def_int(static_cast<int64_t>(lk.seed)),
         "seed of the random faults: each frame's draws depend only on the seed, its direction "
         "and its index in that direction (same seed and traffic, same faults; traffic one way "
         "changes nothing the other way)",
         0, 4294967295.0});
  {
    Spec rule{"link.rule", Kind::kString, "",
              "deterministic fault rules, applied at send before the random faults: in a file "
              "`[[link.rule]]` tables (action = \"drop\", side = 0, qp = 17, opcode = "
              "\"RC_RDMA_WRITE_ONLY\", psn = 5, count = 1), or as text `action=drop side=0 "
              "opcode=RC_ACKNOWLEDGE every=3; action=corrupt psn=9`. Fields: action "
              "(drop, corrupt, duplicate, reorder; required), side (the sender, 0 or 1), qp "
              "(BTH DestQP), opcode (a name of model/wire/opcodes.h, RC_ optional, or a number), "
              "psn, nth (first match acted on), every (then each every-th match), count (at "
              "most; 0: no limit). Absent fields match anything"};
    rule.table_array = true;
    s.add(rule);
  }
  s.add({"link.check", Kind::kBool, "false",
         "check the RoCEv2 RC protocol of every frame sent on the link (PSNs, opcode order, "
         "lengths, AckReq, ACK PSNs, MSNs, READ responses): violations are counted, listed in "
         "violations.csv and fail the run"});
  // PCIe.
  s.add({"pcie.gen", Kind::kInt, def_int(pp.gen), "PCIe generation", 1, 5});
  s.add({"pcie.lanes", Kind::kInt, def_int(pp.lanes), "link width", 1, 32});
  s.add({"pcie.mps", Kind::kSize, def_size(pp.mps), "max payload size", 128, 4096});
  s.add({"pcie.mrrs", Kind::kSize, def_size(pp.mrrs), "max read request size", 128, 4096});
  s.add({"pcie.rcb", Kind::kSize, def_size(pp.rcb), "read completion boundary", 64, 128});
  s.add({"pcie.ecrc", Kind::kBool, def(pp.ecrc), "TLP digest (ECRC) on every TLP"});
  s.add({"pcie.ack_limit", Kind::kSize, def_size(pp.ack_limit),
         "bytes between ACK DLLPs (0: from the PCIe spec table)", 0, 65536});
  s.add({"pcie.fc_limit", Kind::kSize, def_size(pp.fc_limit),
         "bytes between UpdateFC DLLPs (0: from the PCIe spec table)", 0, 65536});
  s.add({"pcie.read_latency", Kind::kTime, def_time(pp.read_latency),
         "root complex: read request in to first completion out, without memory time", 0, 1e12});
  s.add({"pcie.posted_write_latency", Kind::kTime, def_time(pp.posted_write_latency),
         "root complex: posted write in to memory, without memory time", 0, 1e12});
  s.add({"pcie.link_latency", Kind::kTime, def_time(pp.link_latency),
         "one-way PHY and flight latency", 0, 1e12});
  s.add({"pcie.mmio_cpu_latency", Kind::kTime, def_time(pp.mmio_cpu_latency),
         "CPU core to root complex, each way of an MMIO access", 0, 1e12});
  s.add({"pcie.mmio_read_device_latency", Kind::kTime, def_time(pp.mmio_read_device_latency),
         "device time to answer an MMIO read", 0, 1e12});
  s.add({"pcie.read_tags", Kind::kInt, def_int(pp.read_tags),
         "outstanding read requests the device may have", 1, pcie::kMaxReadTags});
  s.add({"pcie.ph_credits", Kind::kInt, def_int(pp.ph_credits),
         "posted header credits (0 = infinite)", 0, pcie::kMaxHeaderCredits});
  s.add({"pcie.pd_credits", Kind::kInt, def_int(pp.pd_credits),
         "posted data credits, 16-byte units (0 = infinite; else at least pcie.mps / 16)", 0,
         pcie::kMaxDataCredits});
  s.add({"pcie.nph_credits", Kind::kInt, def_int(pp.nph_credits),
         "non-posted header credits (0 = infinite)", 0, pcie::kMaxHeaderCredits});
  s.add({"pcie.cplh_credits", Kind::kInt, def_int(pp.cplh_credits),
         "completion header credits (0 = infinite)", 0, pcie::kMaxHeaderCredits});
  s.add({"pcie.cpld_credits", Kind::kInt, def_int(pp.cpld_credits),
         "completion data credits, 16-byte units (0 = infinite; else at least pcie.mps / 16)", 0,
         pcie::kMaxDataCredits});
  s.add({"pcie.credit_return_latency", Kind::kTime, def_time(pp.credit_return_latency),
         "time until a consumed credit is usable again", 0, 1e12});
  // Per-host PCIe: hostN.pcie.X, where set, replaces pcie.X for host N alone.
  std::vector<Spec> shared;
  for (const auto& sp : s.all())
    if (sp.key.rfind("pcie.", 0) == 0) shared.push_back(sp);
  for (int h = 0; h < 2; ++h)
    for (Spec sp : shared) {
      const std::string leaf = sp.key.substr(5);
      sp.desc = "host" + std::to_string(h) + " only, where set (else " + sp.key + "): " + sp.desc;
      sp.key = "host" + std::to_string(h) + ".pcie." + leaf;
      s.add(sp);
    }
  // IOMMU (in each host's root complex).
  const pcie::IommuParams ip{};
  s.add({"iommu.enabled", Kind::kBool, def(ip.enabled),
         "the devices' DMA addresses are IOVAs the host maps in its IOMMU (one domain per "
         "device), translated by the root complex (or, with iommu.ats, by the device)"});
  s.add({"iommu.iotlb_entries", Kind::kInt, def_int(ip.iotlb_entries),
         "translations the IOTLB caches (pages of any size)", 1, 65536});
  s.add({"iommu.iotlb_ways", Kind::kInt, def_int(ip.iotlb_ways),
         "IOTLB associativity: iotlb_entries / iotlb_ways sets, a power of two (LRU in a set)", 1,
         65536});
  s.add({"iommu.iotlb_hit_latency", Kind::kTime, def_time(ip.iotlb_hit_latency),
         "added to each request whose translation the IOTLB holds", 0, 1e9});
  s.add({"iommu.levels", Kind::kInt, def_int(ip.levels),
         "page-table levels (4: 48-bit IOVAs, 5: 57-bit): an IOTLB miss reads levels entries for "
         "a 4 KiB page, one fewer for 2 MiB, two fewer for 1 GiB",
         3, 5});
  s.add({"iommu.walk_read_latency", Kind::kTime, def_time(ip.walk_read_latency),
         "each dependent memory read of a page walk", 0, 1e9});
  s.add({"iommu.walkers", Kind::kInt, def_int(ip.walkers), "page walks in flight at once", 1, 64});
  s.add({"iommu.invalidate_latency", Kind::kTime, def_time(ip.invalidate_latency),
         "host CPU time of an unmap's invalidation and its wait (MR deregistration, DMA free)", 0,
         1e12});
  s.add({"iommu.ats", Kind::kBool, def(ip.ats),
         "address translation services: the device asks the root complex for translations (a "
         "round trip), caches them, and sends translated requests; unmaps invalidate its cache"});
  s.add({"iommu.atc_entries", Kind::kInt, def_int(ip.atc_entries),
         "ATS: translations the device's cache holds", 1, 65536});
  s.add({"iommu.atc_ways", Kind::kInt, def_int(ip.atc_ways),
         "ATS: associativity of the device's cache (atc_entries / atc_ways sets, a power of two)",
         1, 65536});
  // Host.
  s.add({"host.mem.read_latency", Kind::kTime, "80ns", "DRAM access time added to every DMA read",
         0, 1e12});
  s.add({"host.mem.write_latency", Kind::kTime, "50ns",
         "time for a DMA write to become visible in memory", 0, 1e12});
  s.add({"host.page_alloc",
         Kind::kString,
         hp.scatter_pages ? "scattered" : "contiguous",
         "physical placement of application pages",
         0,
         0,
         {"scattered", "contiguous"}});
  s.add({"host.page_size", Kind::kSize, def_size(hp.page_size),
         "size of the pages of application buffers: 4 KiB, or huge pages of 2 MiB or 1 GiB (as "
         "mmap with MAP_HUGETLB gives); with the IOMMU on, each is mapped with pages of its size",
         4096, 1024.0 * 1024 * 1024});
  s.add({"host.cpu.mmio_write", Kind::kTime, def_time(hp.mmio_write_cost),
         "CPU time of a doorbell (posted MMIO write)", 0, 1e12});
  s.add({"host.cpu.wqe_write", Kind::kTime, def_time(hp.wqe_write_cost),
         "CPU time to build one WQE", 0, 1e12});
  s.add({"host.cpu.poll", Kind::kTime, def_time(hp.poll_cost),
         "CPU time of a poll that finds completions", 0, 1e12});
  s.add({"host.cpu.wakeup", Kind::kTime, def_time(hp.wakeup_latency),
         "delay from a DMA write landing to the polling thread seeing it", 0, 1e12});
  s.add({"host.driver_timeout", Kind::kTime, def_time(hp.driver_timeout),
         "longest wait for a command, completion or event before failing", 1e6, 1e15});
  s.add({"host.driver_interface", Kind::kInt, def_int(dopts.interface),
         "highest device interface version the drivers use: 1 is a version-1 driver (no CAPS, "
         "no inline data, 4-byte doorbells only); 2 uses inline data and WQE doorbells",
         1, static_cast<double>(dev::kVersion)});
  s.add({"host.driver_wqe_doorbell", Kind::kBool, def(dopts.wqe_doorbell),
         "the drivers write a lone send WQE of up to 256 bytes with its doorbell (WQE_DOORBELL, "
         "as mlx5's BlueFlame) where the device offers it; false: 4-byte doorbells, every WQE "
         "fetched (as MLX5_SHUT_UP_BF=1)"});
  s.add({"host.driver_handshake", Kind::kBool, def(dopts.handshake),
         "the drivers write DRIVER_VERSION at open where the device offers it "
         "(CAPS.device_control; drivers of interface 2 or later)"});
  // NIC.
  s.add({"nic.max_qps", Kind::kInt, def_int(np.max_qps), "queue pairs", 1, 131000});
  s.add({"nic.max_cqs", Kind::kInt, def_int(np.max_cqs), "completion queues", 1, 131000});
  s.add({"nic.max_pds", Kind::kInt, def_int(np.max_pds), "protection domains", 1, 1e6});
  s.add({"nic.max_srqs", Kind::kInt, def_int(np.max_srqs), "shared receive queues", 1, 65535});
  s.add({"nic.max_mrs", Kind::kInt, def_int(nc.xlate.max_mrs), "memory regions", 1, 16e6});
  s.add({"nic.max_mr_size", Kind::kSize, def_size(nc.max_mr_size), "largest memory region", 4096,
         1.0 * (1ull << 40)});
  s.add({"nic.max_qp_wr", Kind::kInt, def_int(np.max_qp_wr), "WQEs per send or receive queue", 2,
         32768});
  s.add({"nic.max_cqe", Kind::kInt, def_int(np.max_cqe), "entries per CQ", 2, 4194304});
  s.add({"nic.cmd_latency", Kind::kTime, def_time(np.cmd_latency),
         "firmware time to execute a command", 0, 1e12});
  s.add({"nic.reset_latency", Kind::kTime, def_time(np.reset_latency),
         "least time from a CTRL.reset write to STATUS.ready (the reset also waits for every DMA "
         "write issued before it to land)",
         0, 1e12});
  s.add({"nic.wqe_prefetch", Kind::kInt, def_int(np.wqe_prefetch),
         "send WQEs fetched and cached per QP", 1, 256});
  s.add({"nic.rq_prefetch", Kind::kInt, def_int(np.rq_prefetch),
         "receive WQEs fetched and cached per QP", 1, 256});
  s.add({"nic.tx_pipeline_depth", Kind::kInt, def_int(np.tx_pipeline_depth),
         "packets between payload DMA and the wire", 1, 4096});
  s.add({"nic.tx_pipeline_latency", Kind::kTime, def_time(np.tx_pipeline_latency),
         "per-packet transmit processing (headers, ICRC, MAC)", 0, 1e9});
  s.add({"nic.rx_pipeline_latency", Kind::kTime, def_time(np.rx_pipeline_latency),
         "per-packet receive processing (parse, checks, ICRC)", 0, 1e9});
  s.add({"nic.tx_queue_frames", Kind::kInt, def_int(np.tx_queue_frames),
         "MTU-sized frames the port may hold queued before the scheduler waits (must cover the "
         "payload DMA round trip)",
         1, 1024});
  s.add({"nic.max_unacked_psn", Kind::kInt, def_int(np.max_unacked_psn),
         "PSNs in flight per QP before the requester waits for an ACK", 1, 8388607});
  s.add({"nic.ack_req_every", Kind::kInt, def_int(np.ack_req_every),
         "AckReq at least every N packets (and on every message's last)", 1, 1e6});
  s.add({"nic.ack_coalesce", Kind::kTime, def_time(np.ack_coalesce),
         "ACK coalescing: the responder holds an ACK this long, answering the AckReqs of the QP "
         "that arrive meanwhile with one ACK (0: an ACK per AckReq)",
         0, 1e9});
  s.add({"nic.sched_quantum", Kind::kInt, def_int(np.sched_quantum),
         "packets a QP sends per round-robin turn", 1, 1024});
  s.add({"nic.rx_buffer", Kind::kSize, def_size(np.rx_buffer_bytes),
         "receive buffer: frames held from arrival until their payload is in host memory; a "
         "frame that does not fit is dropped (<nic>.rx_buffer.drops)",
         16384, 1024.0 * 1024 * 1024});
  s.add({"nic.translate_latency", Kind::kTime, def_time(nc.xlate.lookup_latency),
         "key check and MTT lookup per access", 0, 1e9});
  // Context caches (CAPS.icm).
  s.add({"nic.cache.enabled", Kind::kBool, def(nc.cache.enabled),
         "the NIC keeps its memory-key table (MPT) in host memory the driver gives it, reads "
         "each region's page list (MTT) from host memory, and caches both on chip: a miss is a "
         "64-byte DMA read the access waits for (false: every lookup answers from the NIC's own "
         "table after nic.translate_latency)"});
  s.add({"nic.cache.mpt_entries", Kind::kInt, def_int(nc.cache.mpt_entries),
         "memory keys the MPT cache holds", 1, 1048576});
  s.add({"nic.cache.mpt_ways", Kind::kInt, def_int(nc.cache.mpt_ways),
         "MPT cache associativity: mpt_entries / mpt_ways sets, a power of two (LRU in a set)", 1,
         1048576});
  s.add({"nic.cache.mtt_entries", Kind::kInt, def_int(nc.cache.mtt_entries),
         "page translations the MTT cache holds, in lines of 8 (a multiple of 8)", 8, 8388608});
  s.add({"nic.cache.mtt_ways", Kind::kInt, def_int(nc.cache.mtt_ways),
         "MTT cache associativity in lines: mtt_entries / 8 / mtt_ways sets, a power of two", 1,
         1048576});
  s.add({"nic.cache.misses", Kind::kInt, def_int(nc.cache.misses),
         "cache misses in flight at once (miss registers); more wait", 1, 256});
  // Capture.
  s.add({"capture.pcap", Kind::kBool, "true", "record the wire into wire.pcap"});
  s.add({"capture.snaplen", Kind::kSize, "65535B", "bytes of each frame recorded", 64, 65535});
  s.add({"capture.max_packets", Kind::kInt, "100000",
         "frames recorded at most per workload, its first ones (0: all)", 0, 1e12});
  s.add({"capture.faults_csv", Kind::kInt, def_int(net::Link::kFaultLogDefault),
         "rows of faults.csv (written when the link injects faults): the first N faults, each "
         "with the frame's number in the link and in wire.pcap (0: no CSV). The link keeps them "
         "in memory (48 B each); the statistics count them all",
         0, 1e7});
  s.add({"capture.latency_csv", Kind::kInt, "100000",
         "rows of latency_<workload>.csv: the first N latencies of each latency workload (one "
         "way for WRITE and SEND, round trip for READ and atomics) (0: no CSV). stats.json has "
         "them all, as a histogram with 1 ns bins up to 131 us and "
         "bins of 1/65536 of the value above",
         0, 1e8});
  // Workloads.
  // Inline sizes as perftest's defaults: none for bandwidth tests, 220 B for ib_write_lat and
  // 236 B for ib_send_lat (DEF_INLINE_WRITE, DEF_INLINE_SEND_RC_UC); READs and atomics have none.
  add_workload(s, "write_bw", "64KiB", "5000", "0B", "each RDMA WRITE");
  add_workload(s, "send_bw", "64KiB", "5000", "0B", "each SEND");
  add_workload(s, "read_bw", "64KiB", "1000", "0B", "each RDMA READ");
  add_workload(s, "atomic_bw", "8B", "1000", "0B", "each atomic: 8 bytes, no other size");
  add_workload(s, "write_lat", "2B", "1000", "220B", "each RDMA WRITE");
  add_workload(s, "send_lat", "2B", "1000", "236B", "each SEND");
  add_workload(s, "read_lat", "2B", "1000", "0B", "each RDMA READ");
  add_workload(s, "atomic_lat", "8B", "1000", "0B", "each atomic: 8 bytes, no other size");
  add_mixed(s);
  add_dma_bench(s);
  return s;
}

}  // namespace rn::system
