// Helpers for whole-system tests. SystemC elaborates once per process: every TEST_CASE that
// builds a System runs in its own process (ctest runs each TEST_CASE separately); make_system()
// refuses a second one with a clear message instead of SystemC's E529.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/system/schema.h"
#include "model/system/system.h"

namespace rn::test {

const cfg::Schema& schema();
// Defaults plus `key=value` overrides; sim.log from RNICSIM_TEST_LOG if set. The link's protocol
// checker is on (link.check=true: a run with a violation is not ok, naming it) unless a test sets
// link.check=false or the environment has RNICSIM_TEST_CHECK=0.
std::unique_ptr<cfg::Config> make_config(const std::vector<std::string>& sets);
std::unique_ptr<system::System> make_system(const cfg::Config& c);
// Where a test writes files: a fresh folder named after the test.
std::string out_dir(const std::string& name);
// Builds the system of make_config(sets) and runs its workloads, writing nothing.
system::RunReport run(const std::vector<std::string>& sets);
// A counter of the run's statistics (stats.json): its group and name.
uint64_t stat(const system::RunReport& r, const char* group, const char* name);
// The run's one workload, which must have run and passed (REQUIREd, naming the run's error).
const host::WorkloadResult& only(const system::RunReport& r);

}  // namespace rn::test
