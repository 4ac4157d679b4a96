// Replays verb traces (docs/traces.md) through the simulated NICs: each trace's calls are made,
// in order, by a software thread of one simulated host through the project's driver, on objects
// rebuilt there (PDs, MRs in simulated memory, CQs, QPs, SRQs, AHs), with recorded addresses
// mapped into the simulated memory and the two sides of each connection joined by the QP numbers
// and keys they exchanged. Dependencies are kept: a poll that got N completions waits for N in the
// model, so what followed it waits too; and a call does not start before the peer's setup calls
// (creations, modify_qp, posted receives) that had returned before it in the recording.
#pragma once
#ifndef SC_INCLUDE_DYNAMIC_PROCESSES
#define SC_INCLUDE_DYNAMIC_PROCESSES
#endif
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <systemc>
#include <vector>

#include "bridge/driver/driver.h"
#include "bridge/host/sim_host.h"
#include "bridge/trace/trace.h"
#include "model/core/config.h"
#include "model/core/latency_histogram.h"

namespace rn::host {

// One signaled send WR: its completion latency (post entry to the poll that returned it) as
// recorded and in the model.
struct ReplayOp {
  int side = 0;
  uint64_t record = 0;  // the post_send record (numbered from 1, as in the file)
  uint32_t wr = 0;      // index in its `wr`
  uint32_t qp = 0;      // the recorded QP number
  uint64_t wr_id = 0;
  std::string op;
  uint64_t bytes = 0;
  std::string rec_status, model_status;  // "" if no completion
  int64_t rec_ns = -1, model_ns = -1;    // -1 if no completion
};

// What replay knows of one side's trace before it runs, from one validating pass over it: a
// few bytes per record, so that traces of any length replay (the records themselves are read
// again, one at a time, while replaying).
struct ReplayTrace {
  std::string file;
  trace::Json header;
  bool truncated = false;
  std::string truncation;                      // why, if truncated
  std::vector<uint64_t> t, d;                  // per record: its recorded entry and duration (ns)
  size_t records() const { return t.size(); }  // whole records, the header included
  // Per record, for cross order: a setup or teardown call that succeeded, or another.
  enum Kind : uint8_t { kOther, kSetup, kTeardown };
  std::vector<uint8_t> kind;
  std::set<uint32_t> rkeys, qpns;  // every rkey and QP number the trace makes
  std::string unsupported;         // the first call the model cannot replay, "" if none
  // The most the trace holds at once or asks for, by the configuration key limiting it, and the
  // record and field that first asked for that much.
  struct Peak {
    uint64_t value = 0, record = 0;
    std::string field, what;
  };
  std::map<std::string, Peak> peaks;
  std::vector<ReplayOp> ops;                            // its signaled send WRs, recorded half
  std::map<std::pair<size_t, uint32_t>, size_t> op_of;  // (record index, wr) -> index in ops
};
// Reads and validates a trace (throws trace::TraceError).
ReplayTrace load_trace(const std::string& path);

enum class ReplayTiming {
  kRecorded,  // the recorded gap between a call's return and the next call's entry is kept
  kAsap,      // no gaps: each call as soon as its dependencies allow
  kScaled     // the recorded gaps times ReplayOptions::scale
};
struct ReplayOptions {
  ReplayTiming timing = ReplayTiming::kRecorded;
  double scale = 1.0;
  // A call waits for the peer's setup calls that returned before it was entered (by the traces'
  // clocks, t0_real + t); false: only the objects it names must exist.
  bool cross_order = true;
};
// Parses --timing: "recorded", "asap" or "scale:K" (K > 0). "" or what is wrong.
std::string parse_timing(const std::string& s, ReplayOptions* o);

// A host the replay runs on.
struct ReplayHost {
  SimHost* host;
  drv::Driver* driver;
  std::array<uint8_t, 6> mac;
  uint32_t ipv4;
};

struct ReplaySideResult {
  uint64_t records = 0;   // calls replayed
  uint64_t skipped = 0;   // calls that failed when recorded (not replayed)
  uint64_t wrs = 0;       // send WRs posted
  uint64_t bytes = 0;     // their bytes
  uint64_t recv_wrs = 0;  // receive WRs posted
  uint64_t completions = 0;
  uint64_t completion_mismatches = 0;  // status, opcode or byte count differs from the recording
  uint64_t memory_checks = 0, memory_mismatches = 0;  // regions compared at dereg_mr
  uint64_t unmapped_keys = 0;      // rkeys or lkeys that named no region (posted as invalid keys)
  uint64_t waits_for_peer = 0;     // calls that waited for the peer's setup
  std::vector<std::string> notes;  // the first mismatches, each naming its record
  Tick start = 0, end = 0;
  bool finished = false;    // replayed to the end of its trace
  uint64_t stopped_at = 0;  // the record it is at (stopped at, if not finished)
};

class TraceReplay {
 public:
  TraceReplay(Sim& sim, std::vector<ReplayHost> hosts, std::vector<ReplayTrace> traces,
              const ReplayOptions& o);
  ~TraceReplay();
  // Before the run: anything the model cannot replay, or that the configured NIC cannot hold
  // (QPs, CQs, PDs, MRs, SRQs at once; entries; region sizes), naming the file, record, field,
  // the limit and its key. "" if none.
  std::string check(const cfg::Config& c) const;
  // Runs side i's trace (in a thread of its host; opens the driver first).
  void run_side(int i);
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  size_t sides() const { return sides_.size(); }
  const ReplaySideResult& result(int i) const;
  const ReplayTrace& trace(int i) const;
  const std::vector<ReplayOp>& ops() const { return ops_; }
  // Writes the ops as CSV (host,record,wr,qp,wr_id,op,bytes,recorded_status,model_status,
  // recorded_ns,model_ns). Returns "" or what went wrong.
  std::string write_csv(const std::string& path) const;
  // Where each side stopped when the run ended early (for the error), e.g. "host0 waits at
  // record 12 (poll_cq) for 1 completion".
  std::string where() const;

 private:
  struct Side;
  void fail(Side& s, uint64_t recno, const std::string& field, const std::string& what);
  bool step(Side& s, size_t idx, const trace::Json& r);
  bool wait_peer(Side& s, size_t idx);
  // Waits until the peer has made an object `exists` finds (false if the peer stopped first).
  bool wait_object(Side& s, uint64_t recno, const std::function<bool()>& exists,
                   const std::string& what);
  void gap(Side& s, size_t idx);
  bool do_post_send(Side& s, const trace::Json& r, uint64_t recno);
  bool do_post_recv(Side& s, const trace::Json& r, uint64_t recno, bool srq);
  bool do_poll(Side& s, const trace::Json& r, uint64_t recno);
  void map_sges(Side& s, const trace::Json& sge, std::vector<drv::Sge>* out);
  Side* peer(Side& s);

  Sim& sim_;
  ReplayOptions o_;
  std::vector<std::unique_ptr<Side>> sides_;
  std::vector<ReplayOp> ops_;
  std::vector<Tick> post_tick_;  // per op: when the model's post was made
  std::string error_;
};

}  // namespace rn::host
