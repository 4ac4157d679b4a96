// Workloads modelled on perftest (ib_write_bw, ib_send_bw, ib_read_bw, ib_atomic_bw and their _lat
// twins), run as host software over the driver on two simulated hosts: the client on one, the
// server on the other, connected out of band (as perftest's TCP exchange) at zero simulated cost.
#pragma once
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bridge/driver/driver.h"
#include "bridge/host/sim_host.h"
#include "model/core/latency_histogram.h"

namespace rn::host {

// The workload kinds, as perftest's programs ib_<verb>_<bw|lat>: bandwidth tests first; then
// `mixed`, ours: seeded random operations and sizes over several QPs, every byte and every
// completion checked.
constexpr const char* kWorkloadKinds[] = {"write_bw",  "send_bw",  "read_bw",  "atomic_bw",
                                          "write_lat", "send_lat", "read_lat", "atomic_lat",
                                          "mixed",     "dma_bench"};
bool is_workload_kind(const std::string& kind);
std::string workload_kinds();  // "write_bw, send_bw, ...": for messages and descriptions
// What a kind's client asks of the server (the part of the name before '_').
enum class Verb { kWrite, kSend, kRead, kAtomic };
Verb verb_of(const std::string& kind);
bool is_lat(const std::string& kind);  // a latency test (else a bandwidth test)
bool is_send(const std::string& kind);
bool is_mixed(const std::string& kind);  // the `mixed` workload
// `dma_bench`, like pcie-bench: the device's DMA engine alone against host 0's memory
// (bridge/host/dma_bench.h).
bool is_dma_bench(const std::string& kind);
// A WRITE or SEND latency test: both sides send in turn, and a sample is half a round trip (one
// way, as ib_write_lat and ib_send_lat report). READ and atomic latency tests time one request's
// whole round trip, from post to completion, as ib_read_lat and ib_atomic_lat report.
bool ping_pong(const std::string& kind);

// READs and atomics in flight per QP: max_rd_atomic and max_dest_rd_atomic of the QPs of READ and
// atomic tests, the NIC's largest value (model/qp, MODIFY_QP), as perftest's -o/--outs default
// (the device's maximum). The other tests leave both at 1.
constexpr uint8_t kOutstandingReads = 16;

// Atomic tests: which atomic the client posts (perftest's -A/--atomic_type).
enum class AtomicType { kFetchAndAdd, kCmpAndSwap };
const char* to_string(AtomicType t);  // "FETCH_AND_ADD", "CMP_AND_SWAP"
constexpr uint64_t kAtomicSize = 8;   // an atomic's operand and the value it returns, bytes
constexpr uint64_t kAtomicAdd = 1;    // FETCH_AND_ADD's addend (perftest's ATOMIC_ADD_VALUE)

// `<w>.qp_type`: the transport of the QPs of write_bw, write_lat, send_bw and send_lat (UD: the
// SEND tests only, as perftest allows). UD QPs use perftest's Q_Key, and each receive buffer
// holds the 40-byte GRH area in front of the message.
bool has_qp_type(const std::string& kind);  // the workload has the key
constexpr uint32_t kUdQkey = 0x11111111;    // perftest's DEF_QKEY
constexpr uint64_t kUdGrhBytes = 40;

// The operations of the `mixed` workload, in the order of kMixedOpNames.
enum class MixedOp : uint8_t { kWrite, kWriteImm, kSend, kSendImm, kRead, kFetchAdd, kCmpSwap };
constexpr size_t kMixedOps = 7;
constexpr const char* kMixedOpNames[kMixedOps] = {"write", "write_imm", "send",    "send_imm",
                                                  "read",  "fetch_add", "cmp_swap"};
using MixedWeights = std::array<uint32_t, kMixedOps>;
constexpr uint32_t kMaxMixedWeight = 1000000;
// Parses `mixed.ops`: operation names separated by commas, each with an optional `:weight` (an
// integer 0..kMaxMixedWeight; 1 if absent), e.g. "write:4,read,fetch_add:0". Operations not
// named get weight 0. Returns "" or what is wrong (an unknown or repeated name, a bad weight, all
// weights 0).
std::string parse_mixed_ops(const std::string& text, MixedWeights* out);
std::string mixed_ops_text(const MixedWeights& w);  // "write:1,read:4" (weights > 0 only)
// An operation consumes a receive WQE at the server (SEND, SEND and WRITE with immediate).
bool consumes_recv(MixedOp op);

struct WorkloadParams {
  std::string kind;            // one of kWorkloadKinds
  uint64_t size = 65536;       // message size, bytes
  uint64_t iterations = 1000;  // messages per QP (bandwidth) or round trips (latency)
  uint64_t warmup = 0;         // latency: round trips not counted
  uint32_t qps = 1;
  uint32_t tx_depth = 128;   // outstanding send WQEs per QP
  uint32_t rx_depth = 512;   // posted receive WQEs per QP (send tests)
  uint32_t cq_mod = 100;     // bandwidth: signal every cq_mod-th WQE
  uint32_t mtu = 4096;       // path MTU, bytes
  uint32_t sges = 1;         // scatter/gather entries per message (split evenly)
  bool imm = false;          // use the WITH_IMM opcodes; the server checks every value
  uint32_t inline_size = 0;  // messages up to this size are posted inline (perftest's -I)
  bool verify = true;        // check every received byte against the sender's pattern
  // send_bw (perftest's --use_srq): the server's QPs share one SRQ of rx_depth WQEs, in place of
  // a receive queue each. Every client QP then sends the same pattern (a message lands in the
  // buffer of whichever WQE its QP took), and the server counts each QP's messages by qp_num.
  bool use_srq = false;
  AtomicType atomic_type = AtomicType::kFetchAndAdd;  // atomic tests
  // read_bw: the server's source region, in bytes (0: one message). Each READ reads a slot of
  // `size` bytes drawn at random (from pattern_seed, the QP and the message) from it, as Kalia
  // et al. read at random over large regions: the NIC's MTT then has many pages to cover.
  uint64_t region = 0;
  uint32_t pattern_seed = 1;
  uint64_t keep_samples = 0;  // latency: the first samples kept one by one (for a CSV)
  // The QPs' local ACK timeout (4.096 us x 2^timeout; 0: none) and retries (perftest's -u and
  // its fixed 7).
  uint8_t timeout = 14, retry_cnt = 7;
  // mixed: the weight of each operation, and the seed of the draws (operation, size, READ
  // offset, atomic operands) of every message.
  MixedWeights mix{1, 1, 1, 1, 1, 1, 1};
  uint64_t seed = 1;
  // write_bw, write_lat, send_bw, send_lat: RC, UC or UD (send_* only). UC and UD lose what the
  // link loses: a bandwidth server counts what arrived (WorkloadResult::receives).
  dev::QpType qp_type = dev::QpType::RC;
  // dma_bench: the device reads (or writes) `size` bytes `iterations` times at offsets in a
  // window of host memory (sequential, or drawn from `seed`), `outstanding` requests at once; the
  // window's pages are of page_size (0: host.page_size).
  bool dma_write = false;
  bool dma_random = true;
  uint64_t window = 1 << 20;
  uint32_t outstanding = 32;
  uint64_t page_size = 0;
};
// Bytes of the GRH area in front of each received message (UD: 40; else 0).
inline uint64_t grh_bytes(const WorkloadParams& p) {
  return p.qp_type == dev::QpType::UD ? kUdGrhBytes : 0;
}

// mixed: message i of QP q, drawn from (seed, q, i) alone (the same on both sides, in any order).
struct MixedMsg {
  MixedOp op;
  uint64_t len;     // bytes: 0..size, log-uniform; 8 for atomics
  uint64_t offset;  // READ: where in the server's source it reads (0..size - len)
  uint64_t r;       // atomics: operands (FETCH_AND_ADD's addend, CMP_AND_SWAP's swap value)
  bool cas_hit;     // CMP_AND_SWAP: compares with the target's value (else with another: fails)
};
MixedMsg mixed_msg(const WorkloadParams& p, uint32_t q, uint64_t i);

struct WorkloadResult {
  WorkloadParams params;
  bool ok = false;
  std::string error;
  Tick start = 0, end = 0;
  uint64_t messages = 0, bytes = 0;
  double goodput_gbps = 0, msg_rate_mpps = 0;
  // Latency tests: the latency of every counted iteration (one way, half a round trip, for WRITE
  // and SEND; the whole round trip for READ and atomics: see ping_pong), and the first
  // params.keep_samples of them in order.
  LatencyHistogram latency;
  std::vector<Tick> latency_samples;
  uint64_t verified_bytes = 0;
  uint64_t completions = 0;
  // mixed: messages and bytes per operation (kMixedOpNames), receive completions at the server
  // (also of UC and UD bandwidth tests: messages that arrived, lost ones not counted).
  std::array<uint64_t, kMixedOps> op_messages{}, op_bytes{};
  uint64_t receives = 0;
  // The traffic phase in wall-clock terms: how fast the simulator ran it.
  double wall_seconds = 0;
  uint64_t packets = 0;  // frames on the wire during the traffic phase
  double percentile_ns(double p) const { return latency.percentile_ns(p); }
};

// What one side of a workload holds on its NIC and in its memory at once (System::validate checks
// these against the NIC's limits before a run, and estimates memory from them).
uint64_t cq_entries(const WorkloadParams& p);  // entries asked for each of the side's two CQs
// A source buffer holds data the NIC reads and sends (the WRITE or SEND sender's, the READ
// server's); a destination buffer is written by the NIC (the WRITE or SEND receiver's, the READ
// client's, the atomic server's target and the atomic client's returned values).
bool sends_from(const WorkloadParams& p, bool client);     // the side has a source buffer per QP
bool receives_into(const WorkloadParams& p, bool client);  // ... a destination buffer per QP
bool posts_sends(const WorkloadParams& p, bool client);    // the side posts send-queue WQEs
uint64_t src_bytes(const WorkloadParams& p);               // bytes of a source buffer
// Bytes of a destination buffer (without its guard zone): a message, except for atomics: the
// server's 8-byte target, and on the client one 8-byte slot per send WQE (tx_depth) for the
// values returned.
uint64_t dst_bytes(const WorkloadParams& p, bool client);
uint32_t mrs_per_qp(const WorkloadParams& p, bool client);
// Atomic tests: the value QP q's target holds before its atomic number i (counted from 0,
// warm-up included), so the value that atomic returns. FETCH_AND_ADD: the server's pattern's
// first word plus i x kAtomicAdd. CMP_AND_SWAP: word i of the pattern (distinct from word i+1);
// atomic i compares with it and swaps in word i+1, so each succeeds against what the one before
// it wrote, and any atomic executed twice, lost or out of order breaks the chain.
uint64_t atomic_value(const WorkloadParams& p, uint32_t q, uint64_t i);
constexpr uint32_t kCqsPerSide = 2, kPdsPerSide = 1;
constexpr uint64_t kGuardBytes = 64;  // after each destination buffer, checked unchanged

// One connection's worth of shared out-of-band state between the two sides.
struct Exchange;
struct ConnInfo;

// What the system runs: a workload with a client on host 0 and a server on host 1 (perftest's
// programs, `mixed`), or a device-side microbenchmark (dma_bench: its client only).
class Workload {
 public:
  virtual ~Workload() = default;
  // Run in a thread of the client host and of the server host respectively.
  virtual void run_client() = 0;
  virtual void run_server() = 0;
  // Marks the workload failed before it could run (e.g. the driver did not open).
  virtual void fail(const std::string& why) = 0;
  // After the run: marks the workload failed if it did not run to its end, or if what it checks
  // was not checked. True if it is ok.
  virtual bool verify() = 0;
  virtual const WorkloadResult& result() const = 0;
  // Counts frames on the wire (both directions), sampled when the traffic starts and ends.
  void set_packet_counter(std::function<uint64_t()> f) { packets_ = std::move(f); }
  // How far the client is: operations completed (round trips, for latency tests, warm-up
  // included) of `total`, and whether its traffic has started. For progress displays only.
  struct Progress {
    uint64_t done = 0, total = 0;
    bool started = false;
  };
  const Progress& progress() const { return progress_; }

 protected:
  std::function<uint64_t()> packets_;
  Progress progress_;
};

class Perftest final : public Workload {
 public:
  Perftest(SimHost& client_host, drv::Driver& client, SimHost& server_host, drv::Driver& server,
           const WorkloadParams& p, const std::vector<uint8_t>& client_mac, uint32_t client_ip,
           const std::vector<uint8_t>& server_mac, uint32_t server_ip);
  ~Perftest() override;
  void run_client() override;
  void run_server() override;
  void fail(const std::string& why) override;
  // Each side checks received bytes itself (params.verify), as soon as its last message has
  // arrived and before its buffers are freed.
  bool verify() override;
  const WorkloadResult& result() const override { return res_; }
  bool finished() const;

 private:
  struct Side;
  bool setup(Side& s, bool is_client);
  // The head of both setups: the side's PD and its two CQs.
  bool setup_pd_and_cqs(Side& s);
  // A driver call's result e: 0, or the run fails naming the call and the error.
  bool driver_ok(Side& s, int e, const char* what);
  // What this side tells its peer of QP i (its number, its first PSN, a buffer and its key).
  static ConnInfo conn_info(uint32_t qpn, uint32_t i, bool is_client, uint32_t rkey, uint64_t va);
  bool connect(Side& s, bool is_client);
  bool connect_ud(Side& s, bool is_client);
  // UC and UD bandwidth servers: waits for receive completions (as wait_cq) until the client has
  // sent everything and none came for a while: then *got is 0 (the rest was lost).
  bool wait_arrivals(Side& s, drv::Wc* wc, int n, int* got);
  void teardown(Side& s);
  void check_received(Side& s);
  // The client's WQE for message i of QP q (bandwidth tests; READ and atomic latency tests).
  void make_wr(uint32_t q, uint64_t i, drv::SendWr* wr, drv::Sge* sg) const;
  // Atomic tests: checks the values atomics [from, to) of QP q returned (with params.verify).
  bool check_returned(uint32_t q, uint64_t from, uint64_t to);
  void client_bw();
  void client_lat();
  // mixed (perftest_mixed.cpp).
  struct Mixed;
  bool mixed_setup(Side& s, bool is_client);
  void mixed_teardown(Side& s);
  void client_mixed();
  void server_mixed();
  bool mixed_check_completion(const drv::Wc& wc, uint32_t q, uint64_t i);
  void mixed_final_checks(Side& s);
  void server_bw();
  void server_lat();
  bool lat_post_recv(Side& s, uint64_t id);
  bool lat_send(Side& s, uint64_t i, const ConnInfo& peer);
  bool lat_await(Side& s, uint64_t i, uint64_t n, uint64_t* recv_posted);
  bool sync(int me, int stage);
  // Every completion of wc[0..got) succeeded; else the run fails naming the first that did not.
  bool all_succeeded(Side& s, const drv::Wc* wc, int got);
  bool wait_cq(Side& s, drv::Cq* cq, drv::Wc* wc, int n, int* got);
  void set_error(const std::string& e);

  void traffic_begin();
  void traffic_end();
  WorkloadParams p_;
  Verb verb_;
  bool lat_, ping_pong_;
  dev::WrOpcode op_;  // the client's opcode (bandwidth tests; READ and atomic latency tests)
  WorkloadResult res_;
  std::chrono::steady_clock::time_point wall0_;
  uint64_t packets0_ = 0;
  std::unique_ptr<Side> c_, s_;
  std::unique_ptr<Exchange> x_;
  std::unique_ptr<Mixed> m_;
};

}  // namespace rn::host
