// The commands of rnicsim that live outside main.cpp.
#pragma once
#include <string>
#include <vector>

#include "model/core/config.h"

// rnicsim trace show|check|convert|schema (trace_cmd.cpp).
int trace_main(int argc, char** argv);

// rnicsim replay TRACE [TRACE] (trace_cmd.cpp), on the system of `cfg`.
struct ReplayArgs {
  std::string config;
  std::vector<std::string> traces;
  std::string out;
  std::string timing;
  bool cross_order = true;
  bool plots = true;
};
int replay_main(const rn::cfg::Config& cfg, const ReplayArgs& a);

// Runs `/usr/bin/python3 script out_dir` and waits: "" or what went wrong (main.cpp).
std::string run_plotter(const std::string& script, const std::string& out_dir);
// Runs tools/NAME on out_dir if it and /usr/bin/python3 exist; a failure is reported on stderr.
void plot(const std::string& name, const std::string& out_dir);
