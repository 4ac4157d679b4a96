// rnicsim: the command line (Boost.Program_options, one options table per command).
//   rnicsim run CONFIG [--set key=value]... [--out DIR] [--log CATS] [--no-plots]
//   rnicsim check CONFIG [--set key=value]... [--log CATS]
//   rnicsim params            (every parameter, as a Markdown table)
//   rnicsim serve [CONFIG] [--set key=value]... [--dir DIR] [--out DIR] [--exit-after N]
//   rnicsim attach HOST [--dir DIR] -- PROGRAM [ARGS]...
//   rnicsim capture --out FILE [--payload none|hash|full] -- PROGRAM [ARGS]...
//   rnicsim replay TRACE [TRACE] [--config CONFIG] [--timing MODE] [--out DIR] ...
//   rnicsim trace show|check|convert|schema ...
//   rnicsim --help, rnicsim COMMAND --help
// Exit status: 0 done, 1 the run failed (or an output file could not be written), 2 a usage or
// configuration error.
#include <fmt/core.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <systemc>
#include <vector>

#include "bridge/trace/trace.h"
#include "bridge/vdev/client.h"
#include "model/system/schema.h"
#include "model/system/serve.h"
#include "model/system/system.h"
#include "tools/rnicsim/commands.h"

extern char** environ;

namespace {

namespace po = boost::program_options;

struct Command {
  const char* name;
  const char* args;  // after "rnicsim NAME"
  const char* what;
};

// `what` is wrapped for a terminal: its lines are indented under the command in the usage.
constexpr Command kCommands[] = {
    {"run", "CONFIG [options]",
     "run the scenario of CONFIG: a report on screen;\nstats.json, wire.pcap, latency CSVs "
     "and plots in\nthe --out folder"},
    {"check", "CONFIG [options]",
     "validate CONFIG (every key, unit, range and\ncross-parameter rule) and exit"},
    {"params", "",
     "print every parameter: key, kind, default, allowed\nvalues and meaning (a Markdown "
     "table)"},
    {"serve", "[CONFIG] [options]",
     "host the NICs of CONFIG (default: configs/serve.toml)\nas a virtual device that real "
     "programs attach to;\nstats.json and wire.pcap in --out when it stops"},
    {"attach", "HOST [--dir DIR] -- PROGRAM [ARGS]",
     "run PROGRAM on HOST's simulated NIC (our libibverbs\nfirst on LD_LIBRARY_PATH); "
     "docs/virtual-device.md"},
    {"capture", "--out FILE [--payload MODE] -- PROGRAM [ARGS]",
     "run PROGRAM recording its verbs calls into FILE, a\nverb trace (librnicsim_capture.so "
     "preloaded);\ndocs/traces.md"},
    {"replay", "TRACE [TRACE] [options]",
     "replay verb traces through the simulated NICs (the\nfirst on host0, the second on host1): "
     "stats.json,\nreplay_latency.csv and a plot in --out"},
    {"trace", "show|check|convert|schema ...",
     "read, validate and convert verb traces (JSON Lines\nor binary); docs/traces.md"},
};

const Command* find_command(const std::string& name) {
  for (const auto& c : kCommands)
    if (name == c.name) return &c;
  return nullptr;
}

std::string indented(const std::string& text, size_t indent) {
  std::string out;
  for (char ch : text) out += ch == '\n' ? "\n" + std::string(indent, ' ') : std::string(1, ch);
  return out;
}

std::string synopsis(const Command& c) {
  return fmt::format("rnicsim {}{}{}", c.name, *c.args ? " " : "", c.args);
}

void general_usage(FILE* f) {
  fmt::print(f, "usage: rnicsim COMMAND [options]\n\ncommands:\n");
  for (const auto& c : kCommands) {
    const std::string syn = synopsis(c).substr(8);
    if (syn.size() < 24)
      fmt::print(f, "  {:<24}{}\n", syn, indented(c.what, 26));
    else  // a long synopsis on its own line, the text under it
      fmt::print(f, "  {}\n{}{}\n", syn, std::string(26, ' '), indented(c.what, 26));
  }
  fmt::print(f,
             "\n`rnicsim COMMAND --help` lists the options of a command. CONFIG is a TOML file\n"
             "(configs/default.toml is the default scenario; docs/configuration.md lists every\n"
             "key). Exit status: 0 done, 1 the run failed, 2 a usage or configuration error.\n");
}

struct Args {
  std::string cmd, config, out = "out", log, dir, timing = "recorded", cross_order = "setup";
  int exit_after = 0;
  std::vector<std::string> sets, positional;
  bool plots = true;
  bool help = false;
};

// The options of one command; `positional` collects its plain arguments.
po::options_description options_of(const std::string& cmd, Args* a) {
  po::options_description d("options");
  d.add_options()("help,h", po::bool_switch(&a->help), "print this help and exit");
  if (cmd == "replay")
    d.add_options()("config", po::value(&a->config)->value_name("CONFIG"),
                    "the system to replay on (default: configs/default.toml)")(
        "timing", po::value(&a->timing)->value_name("MODE")->default_value("recorded"),
        "recorded: the recorded gaps between calls kept; asap: none; scale:K: gaps times K")(
        "cross-order", po::value(&a->cross_order)->value_name("setup|none")->default_value("setup"),
        "setup: a call waits for the peer's setup calls (creations, modify_qp, posted receives) "
        "that returned before it in the recording (by the traces' clocks), a teardown call for "
        "all the peer's calls before it; none: only for the objects it names")(
        "out", po::value(&a->out)->value_name("DIR")->default_value("out"),
        "folder for stats.json, replay_latency.csv, wire.pcap and the plot (created)")(
        "no-plots", po::bool_switch(), "do not run tools/plot_replay.py at the end");
  if (cmd == "run" || cmd == "check" || cmd == "serve" || cmd == "replay")
    d.add_options()(
        "set", po::value(&a->sets)->value_name("KEY=VALUE"),
        "set a configuration key, over CONFIG (repeatable; also --set=KEY=VALUE; the value is "
        "written as in a file, e.g. --set link.rate=25Gbps)")(
        "log", po::value(&a->log)->value_name("CATEGORIES"),
        "trace blocks at run time (sets sim.log): comma-separated, from cmd doorbell wqe tx rx "
        "cqe dma wire driver app error, or all");
  if (cmd == "run")
    d.add_options()("out", po::value(&a->out)->value_name("DIR")->default_value("out"),
                    "folder for stats.json, wire.pcap, latency CSVs and plots (created)")(
        "no-plots", po::bool_switch(), "do not run tools/plot_run.py at the end");
  if (cmd == "serve")
    d.add_options()("dir", po::value(&a->dir)->value_name("DIR"),
                    "folder for the hosts' sockets and hosts.json (default: $RNICSIM_SERVE, else "
                    "/tmp/rnicsim-serve-UID)")(
        "out", po::value(&a->out)->value_name("DIR")->default_value("out"),
        "folder for stats.json and wire.pcap, written when serve stops (created)")(
        "exit-after", po::value(&a->exit_after)->value_name("N"),
        "stop once N processes have attached and gone (default: run until SIGINT or SIGTERM)");
  return d;
}

void command_usage(FILE* f, const Command& c, const po::options_description& d) {
  std::ostringstream o;
  o << d;
  fmt::print(f, "usage: {}\n{}\n\n{}", synopsis(c), c.what, o.str());
}

// Parses argv into *a. Returns -1 to go on, else the exit status (help printed: 0; usage error,
// reported on stderr: 2).
int parse(int argc, char** argv, Args* a) {
  if (argc < 2) {
    general_usage(stderr);
    return 2;
  }
  a->cmd = argv[1];
  if (a->cmd == "--help" || a->cmd == "-h") {
    general_usage(stdout);
    return 0;
  }
  const Command* cmd = find_command(a->cmd);
  if (cmd == nullptr) {
    fmt::print(stderr,
               "rnicsim: unknown command '{}' (commands: run, check, params, serve, attach, "
               "capture, replay, trace)\n",
               rn::cfg::excerpt(a->cmd));
    general_usage(stderr);
    return 2;
  }
  po::options_description visible = options_of(a->cmd, a);
  po::options_description all;
  all.add(visible).add_options()("positional", po::value(&a->positional));
  po::positional_options_description pos;
  pos.add("positional", -1);
  po::variables_map vm;
  auto usage_error = [&](const std::string& why) {
    fmt::print(stderr, "rnicsim {}: {}\nusage: {} (rnicsim {} --help lists the options)\n",
               cmd->name, why, synopsis(*cmd), cmd->name);
    return 2;
  };
  try {
    using namespace po::command_line_style;
    po::store(po::command_line_parser(std::vector<std::string>(argv + 2, argv + argc))
                  .options(all)
                  .positional(pos)
                  .style(default_style & ~allow_guessing)
                  .run(),
              vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(rn::cfg::excerpt(e.what()));
  }
  if (a->help) {
    command_usage(stdout, *cmd, visible);
    return 0;
  }
  if (vm.count("no-plots") && vm["no-plots"].as<bool>()) a->plots = false;
  if (a->cmd == "serve") {  // CONFIG is optional
    if (a->positional.size() > 1)
      return usage_error(
          fmt::format("unexpected argument '{}'", rn::cfg::excerpt(a->positional[1])));
    a->config = a->positional.empty() ? std::string(RNICSIM_SOURCE_DIR) + "/configs/serve.toml"
                                      : a->positional[0];
    if (vm.count("exit-after") && a->exit_after < 1)
      return usage_error(fmt::format("--exit-after {}: give 1 or more", a->exit_after));
    return -1;
  }
  if (a->cmd == "replay") {
    if (a->positional.empty() || a->positional.size() > 2)
      return usage_error(a->positional.empty() ? "missing TRACE (one per host: at most two)"
                                               : fmt::format("unexpected argument '{}' (one trace "
                                                             "per host: at most two)",
                                                             rn::cfg::excerpt(a->positional[2])));
    if (a->config.empty()) a->config = std::string(RNICSIM_SOURCE_DIR) + "/configs/default.toml";
    if (a->cross_order != "setup" && a->cross_order != "none")
      return usage_error(
          fmt::format("--cross-order '{}': give setup or none", rn::cfg::excerpt(a->cross_order)));
    return -1;
  }
  const size_t wanted = a->cmd == "params" ? 0 : 1;
  if (a->positional.size() > wanted)
    return usage_error(fmt::format("unexpected argument '{}'{}",
                                   rn::cfg::excerpt(a->positional[wanted]),
                                   wanted == 0 ? " (params takes none)" : ""));
  if (a->positional.size() < wanted)
    return usage_error("missing CONFIG (a TOML file, e.g. configs/default.toml)");
  if (wanted) a->config = a->positional[0];
  return -1;
}

}  // namespace

void plot(const std::string& name, const std::string& out_dir) {
  std::string script = std::string(RNICSIM_SOURCE_DIR) + "/tools/" + name;
  if (!std::filesystem::exists(script) || !std::filesystem::exists("/usr/bin/python3")) return;
  std::fflush(stdout);
  std::string why = run_plotter(script, out_dir);
  if (!why.empty())
    fmt::print(stderr, "rnicsim: plotting failed: {} (run /usr/bin/python3 {} DIR by hand)\n", why,
               script);
}

// Runs `/usr/bin/python3 script out_dir` as a child process (no shell: the arguments are passed
// as they are) and waits for it. Returns "" on success, else what went wrong.
std::string run_plotter(const std::string& script, const std::string& out_dir) {
  std::vector<std::string> args = {"/usr/bin/python3", script, out_dir};
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int e = posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
  if (e != 0) return fmt::format("cannot start {}: {}", args[0], std::strerror(e));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return fmt::format("waitpid: {}", std::strerror(errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
  return fmt::format("killed by signal {}", WTERMSIG(status));
}

namespace {

void print_report(const rn::system::RunReport& r, const std::string& cfg, const rn::cfg::Config& c,
                  const std::string& out) {
  using rn::ticks_to_ns;
  fmt::print("\nrnicsim report: {}\n", cfg);
  fmt::print("  two hosts back to back, each a host model + PCIe bridge + NIC\n");
  auto pcie = [](const rn::pcie::Params& p) {
    return fmt::format("Gen{} x{}, MPS {}, MRRS {}", p.gen, p.lanes, rn::cfg::format_size(p.mps),
                       rn::cfg::format_size(p.mrrs));
  };
  std::string p0 = pcie(rn::system::System::host_pcie(c, 0));
  std::string p1 = pcie(rn::system::System::host_pcie(c, 1));
  fmt::print("  link {} Gb/s, {} propagation; PCIe {}; NIC pipeline {} packets\n",
             c.bandwidth("link.rate") / 1e9, rn::cfg::format_time(c.time("link.propagation_delay")),
             p0 == p1 ? p0 : "host0 " + p0 + ", host1 " + p1, c.integer("nic.tx_pipeline_depth"));
  using rn::host::Verb;
  for (const auto& w : r.workloads) {
    const auto& p = w.params;
    if (rn::host::is_dma_bench(p.kind)) {
      fmt::print("\n  {}  ({} of {} B, {} window of {} pages, {}, {} in flight, {} requests)\n",
                 p.kind, p.dma_write ? "writes" : "reads", p.size, rn::cfg::format_size(p.window),
                 rn::cfg::format_size(p.page_size), p.dma_random ? "random" : "sequential",
                 p.outstanding, p.iterations);
      if (!w.ok) {
        fmt::print("    FAILED: {}\n", w.error);
        continue;
      }
      fmt::print("    bandwidth {:.2f} Gb/s   request rate {:.2f} M/s   ({} bytes in {:.1f} us)\n",
                 w.goodput_gbps, w.msg_rate_mpps, w.bytes, ticks_to_ns(w.end - w.start) / 1e3);
      fmt::print(
          "    latency (issue to {}, ns): min {:.1f}  p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  "
          "p99.9 {:.1f}  max {:.1f}  avg {:.1f}\n",
          p.dma_write ? "data in memory" : "data at the device", w.percentile_ns(0),
          w.percentile_ns(50), w.percentile_ns(90), w.percentile_ns(99), w.percentile_ns(99.9),
          w.percentile_ns(100), w.latency.mean_ns());
      continue;
    }
    const Verb verb = rn::host::verb_of(p.kind);
    const bool ping_pong = rn::host::ping_pong(p.kind);
    std::string extra = p.imm ? ", with immediate" : "";
    if (verb == Verb::kAtomic) extra = fmt::format(", {}", rn::host::to_string(p.atomic_type));
    const bool mixed = rn::host::is_mixed(p.kind);
    if (mixed)
      extra = fmt::format(", sizes 0..{} B, ops {}, seed {}, timeout {}, retry_cnt {}", p.size,
                          rn::host::mixed_ops_text(p.mix), p.seed, p.timeout, p.retry_cnt);
    if (p.qp_type != rn::dev::QpType::RC)
      extra += fmt::format(", {}", rn::dev::to_string(p.qp_type));
    if ((verb == Verb::kRead || verb == Verb::kAtomic || mixed) && !rn::host::is_lat(p.kind))
      extra +=
          fmt::format(", at most {} in flight per QP (max_rd_atomic)", rn::host::kOutstandingReads);
    if (mixed)
      fmt::print("\n  {}  ({} x {} QP{}, path MTU {}{})\n", p.kind, p.iterations, p.qps,
                 p.qps > 1 ? "s" : "", p.mtu, extra);
    else
      fmt::print("\n  {}  (size {} B, {} x {} QP{}, path MTU {}{})\n", p.kind, p.size, p.iterations,
                 p.qps, p.qps > 1 ? "s" : "", p.mtu, extra);
    if (!w.ok) {
      fmt::print("    FAILED: {}\n", w.error);
      continue;
    }
    if (w.latency.count()) {
      fmt::print(
          "    latency ({}, ns): min {:.1f}  p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  p99.9 {:.1f} "
          " max {:.1f}  avg {:.1f}\n",
          ping_pong ? "one way" : "round trip", w.percentile_ns(0), w.percentile_ns(50),
          w.percentile_ns(90), w.percentile_ns(99), w.percentile_ns(99.9), w.percentile_ns(100),
          w.latency.mean_ns());
    } else {
      fmt::print(
          "    goodput {:.2f} Gb/s   message rate {:.4f} Mmsg/s   ({} messages, {} bytes in {:.1f} "
          "us)\n",
          w.goodput_gbps, w.msg_rate_mpps, w.messages, w.bytes, ticks_to_ns(w.end - w.start) / 1e3);
      if (p.qp_type != rn::dev::QpType::RC && verb == Verb::kSend)
        fmt::print("    received: {} of {} messages ({}: what the link loses is lost)\n",
                   w.receives, w.messages, rn::dev::to_string(p.qp_type));
    }
    if (mixed) {
      std::string ops;
      for (size_t k = 0; k < rn::host::kMixedOps; ++k)
        if (w.op_messages[k])
          ops += fmt::format("{}{} {}", ops.empty() ? "" : ", ", rn::host::kMixedOpNames[k],
                             w.op_messages[k]);
      fmt::print("    operations: {}\n", ops);
      fmt::print("    completions: {} send, {} receive, each seen once, in order\n", w.completions,
                 w.receives);
      if (p.verify)
        fmt::print(
            "    verified: {} bytes: every byte written, sent and read against its message's "
            "pattern, every atomic value, each target's final value\n",
            w.verified_bytes);
    } else if (p.verify && verb == Verb::kAtomic)
      fmt::print(
          "    verified: {} bytes: every value returned, and each QP's remote value at the end\n",
          w.verified_bytes);
    else if (p.verify && verb == Verb::kRead)
      fmt::print("    verified: {} bytes read equal the server's bytes\n", w.verified_bytes);
    else if (p.verify && ping_pong)  // both sides' buffers checked
      fmt::print(
          "    verified: {} bytes received equal the bytes sent (both directions; the last byte of "
          "each message is the round-trip marker)\n",
          w.verified_bytes);
    else if (p.verify)
      fmt::print("    verified: {} bytes received equal the bytes sent\n", w.verified_bytes);
    if (w.wall_seconds > 0)
      fmt::print(
          "    simulator speed: {} packets in {:.3f} s wall = {:.0f} packets per wall-second\n",
          w.packets, w.wall_seconds, static_cast<double>(w.packets) / w.wall_seconds);
  }
  double pps = r.wall_seconds > 0 ? static_cast<double>(r.packets) / r.wall_seconds : 0;
  fmt::print(
      "\n  simulated time {:.3f} us   wall time {:.3f} s   events {}   packets {}   {:.0f} "
      "simulated packets per wall-second\n",
      ticks_to_ns(r.sim_time) / 1e3, r.wall_seconds, r.events, r.packets, pps);
  for (const auto& n : r.notes) fmt::print("  {}\n", n);
  if (!out.empty() && !r.outputs.empty()) {
    std::string files;
    for (const auto& f : r.outputs) files += (files.empty() ? "" : ", ") + f;
    fmt::print("  wrote {}\n", files);
  }
  fmt::print("  result: {}\n", r.ok ? "OK" : "FAILED: " + r.error);
}

}  // namespace

// The folder our libibverbs.so.1 is built into: lib/rnicsim beside this binary's bin/.
std::string verbs_lib_dir() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  return (exe.parent_path().parent_path() / "lib" / "rnicsim").string();
}

// rnicsim attach HOST [--dir DIR] -- PROGRAM [ARGS]: runs PROGRAM with our libibverbs first on
// LD_LIBRARY_PATH, RNICSIM_SERVE naming the serve and RNICSIM_HOST the host. Exit status: the
// program's, 2 on a usage error, 127 if it cannot be run.
int attach_main(int argc, char** argv) {
  const char* usage = "usage: rnicsim attach HOST [--dir DIR] -- PROGRAM [ARGS]...\n";
  std::string host, dir;
  int i = 2;
  for (; i < argc && std::string(argv[i]) != "--"; ++i) {
    std::string s = argv[i];
    if (s == "--help" || s == "-h") {
      fmt::print(
          "{}Runs PROGRAM on HOST's simulated NIC in a running `rnicsim serve`: our\n"
          "libibverbs.so.1 first on LD_LIBRARY_PATH, RNICSIM_SERVE and RNICSIM_HOST set.\n"
          "  --dir DIR  the serve's folder (default: $RNICSIM_SERVE, else {})\n",
          usage, rn::vdev::default_serve_dir());
      return 0;
    }
    if (s == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (s.rfind("--dir=", 0) == 0) {
      dir = s.substr(6);
    } else if (host.empty() && s[0] != '-') {
      host = s;
    } else {
      fmt::print(stderr, "rnicsim attach: unexpected argument '{}'\n{}", rn::cfg::excerpt(s),
                 usage);
      return 2;
    }
  }
  if (host.empty() || i + 1 >= argc) {
    fmt::print(stderr, "rnicsim attach: {}\n{}",
               host.empty() ? "missing HOST (host0, host1, ...)" : "missing -- PROGRAM", usage);
    return 2;
  }
  if (dir.empty()) dir = rn::vdev::serve_dir();
  std::string err;
  auto hosts = rn::vdev::serve_hosts(dir, &err);
  if (hosts.empty()) {
    fmt::print(stderr, "rnicsim attach: {}\n", err);
    return 2;
  }
  std::string names;
  bool found = false;
  for (const auto& h : hosts) {
    names += (names.empty() ? "" : ", ") + h.name;
    found = found || h.name == host;
  }
  if (!found) {
    fmt::print(stderr, "rnicsim attach: no host '{}' in the serve at {} (hosts: {})\n",
               rn::cfg::excerpt(host), dir, names);
    return 2;
  }
  const std::string lib = verbs_lib_dir();
  if (!std::filesystem::exists(lib + "/libibverbs.so.1"))
    fmt::print(stderr,
               "rnicsim attach: warning: {}/libibverbs.so.1 is not built: verbs programs will "
               "load the system's libibverbs, which sees no device\n",
               lib);
  const char* old = std::getenv("LD_LIBRARY_PATH");
  setenv("LD_LIBRARY_PATH", (old && *old ? lib + ":" + old : lib).c_str(), 1);
  setenv("RNICSIM_SERVE", std::filesystem::absolute(dir).c_str(), 1);
  setenv("RNICSIM_HOST", host.c_str(), 1);
  execvp(argv[i + 1], argv + i + 1);
  fmt::print(stderr, "rnicsim attach: cannot run '{}': {}\n", rn::cfg::excerpt(argv[i + 1]),
             std::strerror(errno));
  return 127;
}

// rnicsim capture --out FILE [--payload none|hash|full] -- PROGRAM [ARGS]: runs PROGRAM with
// librnicsim_capture.so (lib/ beside this binary's bin/) first in LD_PRELOAD, which records its
// verbs calls into FILE (bridge/capture). Exit status: the program's, 2 on a usage error, 127 if
// it cannot be run.
int capture_main(int argc, char** argv) {
  const char* usage =
      "usage: rnicsim capture --out FILE [--payload none|hash|full] -- PROGRAM [ARGS]...\n";
  std::string out, payload = "none";
  int i = 2;
  for (; i < argc && std::string(argv[i]) != "--"; ++i) {
    std::string s = argv[i];
    if (s == "--help" || s == "-h") {
      fmt::print(
          "{}Runs PROGRAM with librnicsim_capture.so preloaded: its verbs calls (objects,\n"
          "modify_qp, every WR posted and completion polled) go into FILE, a verb trace\n"
          "(docs/traces.md). Composes with attach: rnicsim attach host0 -- rnicsim capture\n"
          "--out x.rntrace -- PROGRAM. A child the program forks writes FILE.PID.\n"
          "  --out FILE      the trace (binary form, .rntrace)\n"
          "  --payload MODE  none (default), hash (FNV-1a 64 of each send/WRITE's bytes and\n"
          "                  each region's at reg_mr/dereg_mr), full (the bytes themselves)\n",
          usage);
      return 0;
    }
    if ((s == "--out" || s == "--payload") && i + 1 < argc) {
      (s == "--out" ? out : payload) = argv[++i];
    } else if (s.rfind("--out=", 0) == 0) {
      out = s.substr(6);
    } else if (s.rfind("--payload=", 0) == 0) {
      payload = s.substr(10);
    } else {
      fmt::print(stderr, "rnicsim capture: unexpected argument '{}'\n{}", rn::cfg::excerpt(s),
                 usage);
      return 2;
    }
  }
  if (out.empty() || i + 1 >= argc) {
    fmt::print(stderr, "rnicsim capture: {}\n{}",
               out.empty() ? "missing --out FILE (where the trace goes)" : "missing -- PROGRAM",
               usage);
    return 2;
  }
  if (rn::trace::form_for_path(out) == rn::trace::Form::kJsonl) {
    const std::string bin = std::filesystem::path(out).replace_extension(".rntrace").string();
    fmt::print(stderr,
               "rnicsim capture: --out '{}': capture writes the binary form (cheaper per call): "
               "give --out {}, then `rnicsim trace convert {} {}` makes the JSON Lines\n",
               rn::cfg::excerpt(out), rn::cfg::excerpt(bin), rn::cfg::excerpt(bin),
               rn::cfg::excerpt(out));
    return 2;
  }
  if (payload != "none" && payload != "hash" && payload != "full") {
    fmt::print(stderr, "rnicsim capture: --payload '{}' is not none, hash or full\n{}",
               rn::cfg::excerpt(payload), usage);
    return 2;
  }
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::string lib = (exe.parent_path().parent_path() / "lib" / "librnicsim_capture.so");
  if (ec || !std::filesystem::exists(lib)) {
    fmt::print(stderr,
               "rnicsim capture: {} is not built (cmake --build build --target rn_capture)\n", lib);
    return 2;
  }
  // Absolute: the program may change directory before its first verb, and a child of another
  // directory inherits the variable.
  const std::string abs_out = std::filesystem::absolute(out).string();
  // A fresh trace: the library creates FILE exclusively, and a later process of the same run
  // that finds it already there writes FILE.PID instead (bridge/capture/README.md).
  if (unlink(abs_out.c_str()) != 0 && errno != ENOENT) {
    fmt::print(stderr, "rnicsim capture: cannot replace {}: {}\n", abs_out, std::strerror(errno));
    return 2;
  }
  const char* old = std::getenv("LD_PRELOAD");
  setenv("LD_PRELOAD", (old && *old ? lib + ":" + old : lib).c_str(), 1);
  setenv("RNICSIM_CAPTURE_OUT", abs_out.c_str(), 1);
  setenv("RNICSIM_CAPTURE_PAYLOAD", payload.c_str(), 1);
  execvp(argv[i + 1], argv + i + 1);
  fmt::print(stderr, "rnicsim capture: cannot run '{}': {}\n", rn::cfg::excerpt(argv[i + 1]),
             std::strerror(errno));
  return 127;
}

int sc_main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "attach") return attach_main(argc, argv);
  if (argc >= 2 && std::string(argv[1]) == "capture") return capture_main(argc, argv);
  if (argc >= 2 && std::string(argv[1]) == "trace") return trace_main(argc, argv);
  Args a;
  if (int status = parse(argc, argv, &a); status >= 0) return status;
  rn::cfg::Schema schema = rn::system::make_schema();
  if (a.cmd == "params") {
    fmt::print("{}", schema.markdown());
    return 0;
  }
  try {
    rn::cfg::Config cfg(schema);
    if (!std::filesystem::exists(a.config)) throw rn::cfg::ConfigError(a.config + ": no such file");
    if (!std::filesystem::is_regular_file(a.config))
      throw rn::cfg::ConfigError(a.config +
                                 ": not a regular file (a configuration is a TOML file)");
    cfg.load_file(a.config);
    for (const auto& s : a.sets) cfg.apply_override(s);
    if (!a.log.empty()) cfg.apply_override("sim.log=" + a.log);
    if (a.cmd == "serve") {
      rn::system::ServeOptions o;
      o.dir = a.dir.empty() ? rn::vdev::serve_dir() : a.dir;
      o.out_dir = a.out;
      o.exit_after = a.exit_after;
      if (!o.out_dir.empty()) std::filesystem::create_directories(o.out_dir);
      return rn::system::serve(cfg, a.config, o);
    }
    if (a.cmd == "replay") {
      ReplayArgs ra{a.config, a.positional, a.out, a.timing, a.cross_order == "setup", a.plots};
      return replay_main(cfg, ra);
    }
    if (a.cmd == "check") {
      rn::system::System::workload_list(cfg);
      rn::system::System sys(cfg, a.config);
      fmt::print("{}: OK ({} parameters, workloads: {})\n", a.config, schema.all().size(),
                 cfg.str("run.workloads"));
      return 0;
    }
    rn::system::System sys(cfg, a.config);
    if (isatty(STDOUT_FILENO)) sys.show_progress(stdout);  // a terminal: show how far the run is
    auto r = sys.run(a.out);
    print_report(r, a.config, cfg, a.out);
    for (const auto& e : r.output_errors) fmt::print(stderr, "rnicsim: error: {}\n", e);
    if (a.plots && r.ok) plot("plot_run.py", a.out);
    return r.ok ? 0 : 1;
  } catch (const rn::cfg::ConfigError& e) {
    fmt::print(stderr, "rnicsim: configuration error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "rnicsim: error: {}\n", e.what());
    return 1;
  }
}
