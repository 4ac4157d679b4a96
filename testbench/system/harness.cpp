#include "testbench/system/harness.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace rn::test {

const cfg::Schema& schema() {
  static const cfg::Schema s = system::make_schema();
  return s;
}

std::unique_ptr<cfg::Config> make_config(const std::vector<std::string>& sets) {
  auto c = std::make_unique<cfg::Config>(schema());
  const char* check = std::getenv("RNICSIM_TEST_CHECK");
  if (!check || std::string(check) != "0") c->apply_override("link.check=true");
  for (const auto& s : sets) c->apply_override(s);
  if (const char* log = std::getenv("RNICSIM_TEST_LOG"))
    c->apply_override(std::string("sim.log=") + log);
  return c;
}

std::unique_ptr<system::System> make_system(const cfg::Config& c) {
  static int built = 0;
  if (built++)
    throw std::logic_error(
        "one SystemC simulation per process: run each TEST_CASE on its own (ctest does)");
  return std::make_unique<system::System>(c, "test");
}

std::string out_dir(const std::string& name) {
  // The process id keeps two test runs on one machine (a developer's and CI's) apart.
  static std::vector<std::string> made;
  std::string d = (std::filesystem::temp_directory_path() /
                   ("rnicsim-test-" + name + "-" + std::to_string(::getpid())))
                      .string();
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  if (made.empty() && !std::getenv("RNICSIM_KEEP_TEST_OUT")) {
    std::atexit([] {
      std::error_code ec;
      for (const auto& m : made) std::filesystem::remove_all(m, ec);
    });
  }
  made.push_back(d);
  return d;
}

system::RunReport run(const std::vector<std::string>& sets) {
  auto cfg = make_config(sets);
  auto sys = make_system(*cfg);
  return sys->run("");
}

uint64_t stat(const system::RunReport& r, const char* group, const char* name) {
  return r.json["stats"][group][name]["value"].get<uint64_t>();
}

const host::WorkloadResult& only(const system::RunReport& r) {
  INFO("run error: " << r.error);
  REQUIRE(r.ok);
  REQUIRE(r.workloads.size() == 1);
  REQUIRE(r.workloads[0].ok);
  return r.workloads[0];
}

}  // namespace rn::test
