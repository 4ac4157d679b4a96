// rnicsim trace show|check|convert|schema: verb traces (docs/traces.md) from the command line.
#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bridge/host/trace_replay.h"
#include "bridge/trace/trace.h"
#include "model/system/system.h"
#include "tools/rnicsim/commands.h"

namespace {

constexpr const char* kUsage =
    "usage: rnicsim trace show TRACE [--from N] [--count N]\n"
    "       rnicsim trace check TRACE...\n"
    "       rnicsim trace convert IN OUT [--to jsonl|binary]\n"
    "       rnicsim trace schema\n"
    "TRACE is a verb trace in either form (docs/traces.md): JSON Lines or binary.\n"
    "  show     one line per record: number, time, thread, call, fields, -> return value\n"
    "  check    validate every record (fields, types, objects' lives, the end record)\n"
    "  convert  to the other form (by OUT's name: .jsonl is JSON Lines, else binary), lossless\n"
    "  schema   the calls and their fields, as a Markdown table\n";

int usage_error(const std::string& why) {
  fmt::print(stderr, "rnicsim trace: {}\n{}", why, kUsage);
  return 2;
}

bool parse_count(const std::string& s, uint64_t* out) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 18)
    return false;
  *out = std::stoull(s);
  return true;
}

}  // namespace

int trace_main(int argc, char** argv) {
  using namespace rn::trace;
  if (argc < 3) return usage_error("missing a subcommand (show, check, convert, schema)");
  const std::string sub = argv[2];
  std::vector<std::string> args(argv + 3, argv + argc);
  if (sub == "--help" || sub == "-h") {
    fmt::print("{}", kUsage);
    return 0;
  }
  try {
    if (sub == "schema") {
      fmt::print("{}", schema_markdown());
      return 0;
    }
    if (sub == "show") {
      std::string path;
      uint64_t from = 1, count = UINT64_MAX;
      for (size_t i = 0; i < args.size(); ++i) {
        if ((args[i] == "--from" || args[i] == "--count") && i + 1 < args.size()) {
          if (!parse_count(args[i + 1], args[i] == "--from" ? &from : &count))
            return usage_error(fmt::format("{} '{}': give a number", args[i], args[i + 1]));
          ++i;
        } else if (path.empty() && args[i][0] != '-') {
          path = args[i];
        } else {
          return usage_error(fmt::format("unexpected argument '{}'", args[i]));
        }
      }
      if (path.empty()) return usage_error("missing TRACE");
      Reader r(path);
      Validator v(path);
      Json rec;
      uint64_t shown = 0;
      while (r.next(&rec)) {
        v.check(rec, r.record());
        if (r.record() >= from && shown < count) {
          fmt::print("{}\n", show_line(rec, r.record()));
          if (++shown == count) break;
        }
      }
      if (shown < count && !v.finish(r.record()))
        fmt::print("TRUNCATED: {}\n",
                   r.truncated() ? r.truncation()
                                 : fmt::format("no end record after record {}", r.record()));
      return 0;
    }
    if (sub == "check") {
      if (args.empty()) return usage_error("missing TRACE");
      int status = 0;
      for (const auto& path : args) {
        try {
          // One record at a time: traces of any length.
          Reader r(path);
          Validator v(path);
          Json rec;
          while (r.next(&rec)) v.check(rec, r.record());
          if (!v.finish(r.record())) {
            fmt::print("{}: TRUNCATED after {} records: {}\n", path, r.record(),
                       r.truncated() ? r.truncation()
                                     : fmt::format("no end record after record {}", r.record()));
            status = 1;
          } else {
            fmt::print("{}: OK: {} records ({}, version {}, pid {}, payload {})\n", path,
                       r.record(), to_string(r.form()), v.header()["version"].get<uint64_t>(),
                       v.header()["pid"].get<uint64_t>(), v.header()["payload"].get<std::string>());
          }
        } catch (const TraceError& e) {
          fmt::print(stderr, "rnicsim trace check: {}\n", e.what());
          status = 1;
        }
      }
      return status;
    }
    if (sub == "convert") {
      std::vector<std::string> paths;
      std::string to;
      for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--to" && i + 1 < args.size())
          to = args[++i];
        else if (args[i].rfind("--to=", 0) == 0)
          to = args[i].substr(5);
        else if (args[i][0] != '-')
          paths.push_back(args[i]);
        else
          return usage_error(fmt::format("unexpected argument '{}'", args[i]));
      }
      if (paths.size() != 2) return usage_error("convert takes IN and OUT");
      if (!to.empty() && to != "jsonl" && to != "binary")
        return usage_error(fmt::format("--to '{}': give jsonl or binary", to));
      Form form = to.empty()      ? form_for_path(paths[1])
                  : to == "jsonl" ? Form::kJsonl
                                  : Form::kBinary;
      Reader r(paths[0]);
      Validator v(paths[0]);
      Writer w(paths[1], form);
      Json rec;
      uint64_t n = 0;
      while (r.next(&rec)) {
        v.check(rec, r.record());
        w.write(rec);
        ++n;
      }
      w.close();
      bool ended = v.finish(r.record());
      fmt::print("{} ({}) -> {} ({}): {} records{}\n", paths[0], to_string(r.form()), paths[1],
                 to_string(form), n,
                 ended ? "" : " (TRUNCATED: the input has no end record; neither has the output)");
      return 0;
    }
  } catch (const TraceError& e) {
    fmt::print(stderr, "rnicsim trace {}: {}\n", sub, e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "rnicsim trace {}: error: {}\n", sub, e.what());
    return 1;
  }
  return usage_error(fmt::format("unknown subcommand '{}'", sub));
}

// ---- rnicsim replay -----------------------------------------------------------------------------

namespace {

// The p-th percentile of v (nearest rank), "-" if v is empty.
std::string percentile(std::vector<int64_t> v, double p) {
  if (v.empty()) return "-";
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return std::to_string(v[std::min(i, v.size() - 1)]);
}

}  // namespace

int replay_main(const rn::cfg::Config& cfg, const ReplayArgs& a) {
  using namespace rn;
  host::ReplayOptions o;
  if (std::string e = host::parse_timing(a.timing, &o); !e.empty()) {
    fmt::print(stderr, "rnicsim replay: {}\n", e);
    return 2;
  }
  o.cross_order = a.cross_order;
  std::vector<host::ReplayTrace> traces;
  try {
    for (const auto& t : a.traces) traces.push_back(host::load_trace(t));
  } catch (const trace::TraceError& e) {
    fmt::print(stderr, "rnicsim replay: {}\n", e.what());
    return 2;
  }
  system::System sys(cfg, a.config, system::HostMode::kSimulated, false);
  std::vector<host::ReplayHost> hosts;
  for (int i = 0; i < 2; ++i) {
    system::Node& n = sys.node(i);
    hosts.push_back(host::ReplayHost{n.host.get(), n.driver.get(), n.mac, n.ipv4});
  }
  const size_t sides = traces.size();
  host::TraceReplay rp(sys.sim(), hosts, std::move(traces), o);
  if (std::string e = rp.check(cfg); !e.empty()) {
    fmt::print(stderr, "rnicsim replay: {}\n", e);
    return 2;
  }
  for (size_t i = 0; i < sides; ++i)
    if (rp.trace(static_cast<int>(i)).truncated)
      fmt::print("  note: {} is truncated ({}): replayed up to its last whole record\n",
                 rp.trace(static_cast<int>(i)).file, rp.trace(static_cast<int>(i)).truncation);
  auto side = [&rp](int i) { return [&rp, i] { rp.run_side(i); }; };
  auto r = sys.run_custom(side(0), sides > 1 ? side(1) : std::function<void()>(), a.out);
  const std::string where = rp.where();
  bool ok = r.ok && rp.ok() && where.empty();
  std::string error = !rp.ok() ? rp.error() : !where.empty() ? "replay stopped: " + where : r.error;

  fmt::print("\nrnicsim replay on {} ({} timing{})\n", a.config, a.timing,
             a.cross_order ? ", cross order" : "");
  std::map<std::string, std::vector<int64_t>> model, rec;
  for (const auto& op : rp.ops()) {
    if (op.model_ns >= 0) model[op.op].push_back(op.model_ns);
    if (op.rec_ns >= 0) rec[op.op].push_back(op.rec_ns);
  }
  for (size_t i = 0; i < sides; ++i) {
    const auto& res = rp.result(static_cast<int>(i));
    const auto& tr = rp.trace(static_cast<int>(i));
    fmt::print("\n  {}: {} ({} records{})\n", sys.node(static_cast<int>(i)).name, tr.file,
               tr.records(), tr.truncated ? ", truncated" : "");
    fmt::print("    replayed {} calls ({} skipped: they failed when recorded){}\n", res.records,
               res.skipped,
               res.finished ? "" : fmt::format(", stopped at record {}", res.stopped_at));
    fmt::print(
        "    posted {} send WRs ({} bytes), {} receive WRs; polled {} completions, {} "
        "differing from the recording\n",
        res.wrs, res.bytes, res.recv_wrs, res.completions, res.completion_mismatches);
    if (res.memory_checks)
      fmt::print("    memory: {} regions compared at dereg_mr, {} differ\n", res.memory_checks,
                 res.memory_mismatches);
    if (res.unmapped_keys)
      fmt::print("    {} keys named no region (posted as invalid keys)\n", res.unmapped_keys);
    if (res.waits_for_peer)
      fmt::print("    {} calls waited for the peer's setup\n", res.waits_for_peer);
    for (const auto& n : res.notes) fmt::print("    {}\n", n);
    if (res.end > res.start)
      fmt::print("    simulated {:.3f} us from the first call to the last; goodput {:.2f} Gb/s\n",
                 ticks_to_ns(res.end - res.start) / 1e3,
                 static_cast<double>(res.bytes) * 8 / ticks_to_ns(res.end - res.start));
  }
  if (!model.empty() || !rec.empty()) {
    fmt::print("\n  completion latency, post to poll (ns): recorded | model\n");
    std::set<std::string> ops;
    for (const auto& [k, v] : model) ops.insert(k);
    for (const auto& [k, v] : rec) ops.insert(k);
    for (const auto& k : ops)
      fmt::print("    {:<10} {:>7} ops  p50 {:>10} | {:>10}   p99 {:>10} | {:>10}\n", k,
                 std::max(model[k].size(), rec[k].size()), percentile(rec[k], 50),
                 percentile(model[k], 50), percentile(rec[k], 99), percentile(model[k], 99));
  }
  uint64_t records = 0;
  for (size_t i = 0; i < sides; ++i) records += rp.result(static_cast<int>(i)).records;
  fmt::print(
      "\n  simulated time {:.3f} us   wall time {:.3f} s   {} packets   {:.0f} records and {:.0f} "
      "packets per wall-second\n",
      ticks_to_ns(r.sim_time) / 1e3, r.wall_seconds, r.packets,
      r.wall_seconds > 0 ? static_cast<double>(records) / r.wall_seconds : 0,
      r.wall_seconds > 0 ? static_cast<double>(r.packets) / r.wall_seconds : 0);
  std::vector<std::string> files = r.outputs;
  if (!a.out.empty()) {
    const std::string csv = a.out + "/replay_latency.csv";
    if (std::string e = rp.write_csv(csv); !e.empty()) {
      fmt::print(stderr, "rnicsim: error: {}\n", e);
      ok = false;
    } else {
      files.push_back(csv);
    }
  }
  for (const auto& e : r.output_errors) fmt::print(stderr, "rnicsim: error: {}\n", e);
  if (!files.empty()) {
    std::string list;
    for (const auto& f : files) list += (list.empty() ? "" : ", ") + f;
    fmt::print("  wrote {} in {}\n", list, a.out);
  }
  fmt::print("  result: {}\n", ok ? "OK" : "FAILED: " + error);
  if (a.plots && ok && !a.out.empty()) plot("plot_replay.py", a.out);
  return ok ? 0 : 1;
}
