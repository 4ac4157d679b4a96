// rnicsim: the command line.
//   rnicsim run CONFIG [--set key=value]... [--out DIR] [--log CATS] [--no-plots]
//   rnicsim check CONFIG [--set key=value]...
//   rnicsim params            (every parameter, as a Markdown table)
#include <fmt/core.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <systemc>
#include <vector>

#include "model/system/schema.h"
#include "model/system/system.h"

namespace {

void usage(FILE* f) {
  fmt::print(
      f,
      "usage:\n"
      "  rnicsim run CONFIG [--set key=value]... [--out DIR] [--log CATEGORIES] [--no-plots]\n"
      "  rnicsim check CONFIG [--set key=value]...\n"
      "  rnicsim params\n"
      "CONFIG is a TOML file (configs/default.toml is the default scenario); DIR defaults to "
      "out/.\n");
}

struct Args {
  std::string cmd, config, out = "out", log;
  std::vector<std::string> sets;
  bool plots = true;
};

bool parse(int argc, char** argv, Args* a) {
  if (argc < 2) return false;
  a->cmd = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    auto value = [&](const char* opt) -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(std::string(opt) + " needs a value");
      return argv[++i];
    };
    if (s == "--set") {
      a->sets.push_back(value("--set"));
    } else if (s.rfind("--set=", 0) == 0) {
      a->sets.push_back(s.substr(6));
    } else if (s == "--out") {
      a->out = value("--out");
    } else if (s == "--log") {
      a->log = value("--log");
    } else if (s == "--no-plots") {
      a->plots = false;
    } else if (s == "-h" || s == "--help") {
      return false;
    } else if (!s.empty() && s[0] == '-') {
      throw std::invalid_argument("unknown option " + s);
    } else if (a->config.empty()) {
      a->config = s;
    } else {
      throw std::invalid_argument("unexpected argument " + s);
    }
  }
  return true;
}

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
  for (const auto& w : r.workloads) {
    const auto& p = w.params;
    fmt::print("\n  {}  (size {} B, {} x {} QP{}, path MTU {}{})\n", p.kind, p.size, p.iterations,
               p.qps, p.qps > 1 ? "s" : "", p.mtu, p.imm ? ", with immediate" : "");
    if (!w.ok) {
      fmt::print("    FAILED: {}\n", w.error);
      continue;
    }
    if (w.latency.count()) {
      fmt::print(
          "    latency (one way, ns): min {:.1f}  p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  p99.9 {:.1f} "
          " max {:.1f}  avg {:.1f}\n",
          w.percentile_ns(0), w.percentile_ns(50), w.percentile_ns(90), w.percentile_ns(99),
          w.percentile_ns(99.9), w.percentile_ns(100), w.latency.mean_ns());
    } else {
      fmt::print(
          "    goodput {:.2f} Gb/s   message rate {:.4f} Mmsg/s   ({} messages, {} bytes in {:.1f} "
          "us)\n",
          w.goodput_gbps, w.msg_rate_mpps, w.messages, w.bytes, ticks_to_ns(w.end - w.start) / 1e3);
    }
    if (p.verify && w.latency.count())  // ping-pong: both sides' buffers checked
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
  if (!out.empty())
    fmt::print("  wrote {}/stats.json{}\n", out,
               std::filesystem::exists(out + "/wire.pcap") ? ", " + out + "/wire.pcap" : "");
  fmt::print("  result: {}\n", r.ok ? "OK" : "FAILED: " + r.error);
}

}  // namespace

int sc_main(int argc, char** argv) {
  Args a;
  try {
    if (!parse(argc, argv, &a)) {
      usage(stderr);
      return 2;
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "rnicsim: {}\n", e.what());
    usage(stderr);
    return 2;
  }
  rn::cfg::Schema schema = rn::system::make_schema();
  if (a.cmd == "params") {
    fmt::print("{}", schema.markdown());
    return 0;
  }
  if ((a.cmd != "run" && a.cmd != "check") || a.config.empty()) {
    usage(stderr);
    return 2;
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
    if (a.cmd == "check") {
      rn::system::System::workload_list(cfg);
      rn::system::System sys(cfg, a.config);
      fmt::print("{}: OK ({} parameters, workloads: {})\n", a.config, schema.all().size(),
                 cfg.str("run.workloads"));
      return 0;
    }
    rn::system::System sys(cfg, a.config);
    auto r = sys.run(a.out);
    print_report(r, a.config, cfg, a.out);
    if (a.plots && r.ok) {
      std::string script = std::string(RNICSIM_SOURCE_DIR) + "/tools/plot_run.py";
      if (std::filesystem::exists(script) && std::filesystem::exists("/usr/bin/python3")) {
        std::fflush(stdout);
        std::string cmd = "/usr/bin/python3 '" + script + "' '" + a.out + "'";
        if (std::system(cmd.c_str()) != 0)
          fmt::print(stderr, "rnicsim: plotting failed (run {} by hand)\n", cmd);
      }
    }
    return r.ok ? 0 : 1;
  } catch (const rn::cfg::ConfigError& e) {
    fmt::print(stderr, "rnicsim: configuration error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "rnicsim: error: {}\n", e.what());
    return 1;
  }
}
