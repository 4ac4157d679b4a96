// Our libibverbs.so.1 without a serve: its exports against what the installed binaries import,
// its loading into them, and clean failures. The binaries and pyverbs come from Debian packages
// (perftest, ibverbs-utils, python3-pyverbs; tools/install-deps.sh); a missing one is reported
// and skipped.
#include <glob.h>
#include <infiniband/verbs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

namespace {

const std::string kDir = RN_VERBS_DIR;

struct Run {
  int rc = -1;
  std::string out;  // stdout and stderr together
};
Run run(const std::string& cmd) {
  Run r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::vector<std::string> glob_all(const std::vector<std::string>& patterns) {
  std::vector<std::string> out;
  for (const auto& pat : patterns) {
    glob_t g{};
    if (glob(pat.c_str(), 0, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
    globfree(&g);
  }
  return out;
}

// The programs that must run on our library.
std::vector<std::string> targets() {
  return glob_all({"/usr/bin/ib_*", "/usr/bin/ibv_*", "/usr/lib/python3/dist-packages/pyverbs/*.so",
                   "/usr/lib/x86_64-linux-gnu/librdmacm.so.1"});
}

// "VERSION name" of each dynamic symbol of `file` whose version starts with `prefix`: the
// undefined ones (imports) or the defined ones (exports).
std::set<std::string> symbols(const std::string& file, const std::string& prefix, bool undefined) {
  std::set<std::string> out;
  Run r = run("objdump -T '" + file + "'");
  size_t at = 0;
  while (at < r.out.size()) {
    size_t end = r.out.find('\n', at);
    if (end == std::string::npos) end = r.out.size();
    std::string line = r.out.substr(at, end - at);
    at = end + 1;
    if ((line.find("*UND*") != std::string::npos) != undefined) continue;
    // The last two fields: the version (in parentheses for imports) and the name.
    std::vector<std::string> f;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
      if (j > i) f.push_back(line.substr(i, j - i));
      i = j;
    }
    if (f.size() < 2) continue;
    std::string ver = f[f.size() - 2];
    if (!ver.empty() && ver.front() == '(') ver = ver.substr(1, ver.size() - 2);
    if (ver.rfind(prefix, 0) != 0) continue;
    out.insert(ver + " " + f.back());
  }
  return out;
}

bool have_objdump() { return run("objdump --version").rc == 0; }

}  // namespace

TEST_CASE("every libibverbs symbol the target binaries import is exported with its version") {
  if (!have_objdump()) {
    WARN("objdump missing: skipped");
    return;
  }
  const auto ours = symbols(kDir + "/libibverbs.so.1", "IBVERBS_", false);
  REQUIRE(ours.size() > 60);
  auto files = targets();
  if (files.empty()) WARN("no target binaries installed (perftest, ibverbs-utils, pyverbs)");
  size_t checked = 0;
  for (const auto& f : files) {
    for (const auto& s : symbols(f, "IBVERBS_", true)) {
      INFO(f << " imports " << s);
      CHECK(ours.count(s) == 1);
      ++checked;
    }
  }
  INFO("imports checked: " << checked);
  CHECK((files.empty() || checked > 0));
}

TEST_CASE("the stubs export the mlx5dv and efadv symbols perftest imports") {
  if (!have_objdump()) {
    WARN("objdump missing: skipped");
    return;
  }
  const auto mlx5 = symbols(kDir + "/libmlx5.so.1", "MLX5_", false);
  const auto efa = symbols(kDir + "/libefa.so.1", "EFA_", false);
  for (const auto& f : glob_all({"/usr/bin/ib_*"})) {
    for (const auto& s : symbols(f, "MLX5_", true)) {
      INFO(f << " imports " << s);
      CHECK(mlx5.count(s) == 1);
    }
    for (const auto& s : symbols(f, "EFA_", true)) {
      INFO(f << " imports " << s);
      CHECK(efa.count(s) == 1);
    }
  }
}

TEST_CASE("our library loads into every target program with every symbol bound") {
  const std::string env = "LD_LIBRARY_PATH='" + kDir + "' LD_BIND_NOW=1 ";
  for (const auto& f : glob_all({"/usr/bin/ib_*", "/usr/bin/ibv_*"})) {
    // -h prints the usage (perftest), or an unknown-option complaint: either way the program
    // ran, which it cannot with an unresolved symbol.
    Run r = run(env + f + " -h");
    INFO(f << " -h: rc " << r.rc << "\n" << r.out);
    CHECK(r.out.find("symbol lookup error") == std::string::npos);
    CHECK(r.out.find("version `") == std::string::npos);  // "version `X' not found"
    CHECK(r.out.find("error while loading shared libraries") == std::string::npos);
    CHECK(r.rc != 127);
    // ldd names our copies of the libraries we replace.
    Run l = run("LD_LIBRARY_PATH='" + kDir + "' ldd " + f);
    INFO(l.out);
    CHECK(l.out.find(kDir + "/libibverbs.so.1") != std::string::npos);
  }
}

TEST_CASE("ibv_devices with no serve lists no device and succeeds") {
  if (access("/usr/bin/ibv_devices", X_OK) != 0) {
    WARN("ibv_devices missing: skipped");
    return;
  }
  Run r = run("LD_LIBRARY_PATH='" + kDir + "' LD_BIND_NOW=1 ibv_devices");
  INFO(r.out);
  CHECK(r.rc == 0);
  CHECK(r.out.find("node GUID") != std::string::npos);
  CHECK(r.out.find("rnsim_") == std::string::npos);
  CHECK(r.out.find("rnicsim libibverbs: no simulated NIC") != std::string::npos);
}

TEST_CASE("pyverbs imports on our library and lists no device") {
  if (access("/usr/lib/python3/dist-packages/pyverbs/device.cpython-311-x86_64-linux-gnu.so",
             R_OK) != 0) {
    WARN("pyverbs missing: skipped");
    return;
  }
  Run r = run("LD_LIBRARY_PATH='" + kDir +
              "' LD_BIND_NOW=1 /usr/bin/python3 -c 'import pyverbs.device as d, pyverbs.pd, "
              "pyverbs.mr, pyverbs.cq, pyverbs.qp, pyverbs.srq, pyverbs.addr, pyverbs.wr, "
              "pyverbs.xrcd, pyverbs.flow, pyverbs.wq, pyverbs.dmabuf, pyverbs.cmid; "
              "print(\"devices\", d.get_device_list())'");
  INFO(r.out);
  CHECK(r.rc == 0);
  CHECK(r.out.find("devices []") != std::string::npos);
}

// In process (this test links our library): no device, and bad calls fail as verbs do.
TEST_CASE("no device: empty list, and bad calls return errors") {
  int n = -1;
  errno = 0;
  ibv_device** list = ibv_get_device_list(&n);
  REQUIRE(list != nullptr);
  CHECK(n == 0);
  CHECK(list[0] == nullptr);
  ibv_free_device_list(list);

  errno = 0;
  CHECK(ibv_open_device(nullptr) == nullptr);
  CHECK(errno == EINVAL);
  ibv_device bogus{};
  errno = 0;
  CHECK(ibv_open_device(&bogus) == nullptr);
  CHECK(errno == EINVAL);
  CHECK(ibv_get_device_name(nullptr) == nullptr);
  CHECK(ibv_get_device_index(&bogus) == -1);
  CHECK(ibv_close_device(nullptr) == EINVAL);
  CHECK(ibv_alloc_pd(nullptr) == nullptr);
  CHECK(ibv_dealloc_pd(nullptr) == EINVAL);
  CHECK(ibv_reg_mr_iova2(nullptr, nullptr, 0, 0, 0) == nullptr);
  CHECK(ibv_dereg_mr(nullptr) == EINVAL);
  CHECK(ibv_create_cq(nullptr, 16, nullptr, nullptr, 0) == nullptr);
  CHECK(ibv_destroy_cq(nullptr) == EINVAL);
  CHECK(ibv_create_qp(nullptr, nullptr) == nullptr);
  ibv_qp_init_attr qa{};
  errno = 0;
  CHECK(ibv_create_qp(nullptr, &qa) == nullptr);
  CHECK(errno == EINVAL);
  CHECK(ibv_modify_qp(nullptr, nullptr, 0) == EINVAL);
  CHECK(ibv_query_qp(nullptr, nullptr, 0, nullptr) == EINVAL);
  CHECK(ibv_destroy_qp(nullptr) == EINVAL);
  CHECK(ibv_create_srq(nullptr, nullptr) == nullptr);
  CHECK(ibv_destroy_srq(nullptr) == EINVAL);
  CHECK(ibv_create_ah(nullptr, nullptr) == nullptr);
  CHECK(ibv_destroy_ah(nullptr) == EINVAL);
  CHECK(ibv_create_comp_channel(nullptr) == nullptr);
  CHECK(ibv_destroy_comp_channel(nullptr) == EINVAL);
  CHECK(ibv_query_device(nullptr, nullptr) == EINVAL);
  ibv_gid gid;
  CHECK(ibv_query_gid(nullptr, 1, 0, &gid) == -1);
  CHECK(ibv_qp_to_qp_ex(nullptr) == nullptr);
  ibv_async_event ev;
  CHECK(ibv_get_async_event(nullptr, &ev) == -1);
  ibv_cq* cq = nullptr;
  CHECK(ibv_get_cq_event(nullptr, &cq, nullptr) == -1);
  CHECK(ibv_resize_cq(nullptr, 4) == EOPNOTSUPP);
  CHECK(ibv_attach_mcast(nullptr, nullptr, 0) == EOPNOTSUPP);
  errno = 0;
  CHECK(ibv_import_device(3) == nullptr);
  CHECK(errno == EOPNOTSUPP);
  CHECK(ibv_fork_init() == 0);
  CHECK(ibv_is_fork_initialized() == IBV_FORK_UNNEEDED);
}

TEST_CASE("string and rate helpers") {
  CHECK(std::string(ibv_wc_status_str(IBV_WC_SUCCESS)) == "success");
  CHECK(std::string(ibv_wc_status_str(IBV_WC_WR_FLUSH_ERR)) == "Work Request Flushed Error");
  CHECK(std::string(ibv_port_state_str(IBV_PORT_ACTIVE)) == "PORT_ACTIVE");
  CHECK(std::string(ibv_node_type_str(IBV_NODE_CA)) == "InfiniBand channel adapter");
  CHECK(std::string(ibv_event_type_str(IBV_EVENT_QP_FATAL)).size() > 0);
  CHECK(ibv_rate_to_mult(IBV_RATE_10_GBPS) == 4);
  CHECK(mult_to_ibv_rate(4) == IBV_RATE_10_GBPS);
  CHECK(ibv_rate_to_mbps(IBV_RATE_100_GBPS) == 103125);
  CHECK(mbps_to_ibv_rate(103125) == IBV_RATE_100_GBPS);
}
