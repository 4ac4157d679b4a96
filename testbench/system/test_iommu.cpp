// The IOMMU in whole systems (iommu.*), huge pages (host.page_size) and the dma_bench workload:
// every workload's bytes checked with DMA addresses that are IOVAs, translations counted where
// the IOTLB's reach says they must miss or hit, and faults never. (Mistakes in the configuration:
// testbench/unit/cli, iommu_and_page_sizes.) Each TEST_CASE is one simulation (one process).
#include <catch2/catch.hpp>

#include "testbench/system/harness.h"

using namespace rn;

namespace {

using test::only;
using test::run;
using test::stat;

// dma_bench of `n` 64-byte random reads over `window` with the IOMMU on.
system::RunReport dma(const std::string& window, const std::string& page, uint64_t n) {
  return run({"run.workloads=dma_bench", "iommu.enabled=true", "dma_bench.window=" + window,
              "dma_bench.page_size=" + page, "dma_bench.iterations=" + std::to_string(n)});
}

}  // namespace

// write_bw, read_bw and send_lat through the IOMMU with application pages of `page`.
void perftest_through_iommu(const std::string& page) {
  auto r = run({"run.workloads=write_bw,read_bw,send_lat", "iommu.enabled=true",
                "host.page_size=" + page, "write_bw.iterations=200", "read_bw.iterations=200",
                "send_lat.iterations=100"});
  INFO("run error: " << r.error);
  REQUIRE(r.ok);
  for (const auto& w : r.workloads) CHECK(w.verified_bytes > 0);
  for (const char* h : {"host0.iommu", "host1.iommu"}) {
    CHECK(stat(r, h, "translations") > 0);
    CHECK(stat(r, h, "faults") == 0);
    // The workloads' buffers were unmapped when their regions were deregistered.
    CHECK(stat(r, h, "unmapped_pages") > 0);
  }
}

TEST_CASE("iommu: perftest workloads verify every byte through the IOMMU with 4 KiB pages",
          "[iommu]") {
  perftest_through_iommu("4KiB");
}

TEST_CASE("iommu: perftest workloads verify every byte through the IOMMU with 2 MiB pages",
          "[iommu]") {
  perftest_through_iommu("2MiB");
}

TEST_CASE("iommu: with ATS the device translates and the root complex only answers its requests",
          "[iommu]") {
  auto r = run({"run.workloads=write_bw", "iommu.enabled=true", "iommu.ats=true",
                "write_bw.iterations=200"});
  const auto& w = only(r);
  CHECK(w.verified_bytes > 0);
  const uint64_t atc_misses = stat(r, "host0.iommu", "atc_misses");
  CHECK(stat(r, "host0.iommu", "atc_hits") > 0);
  CHECK(atc_misses > 0);
  CHECK(stat(r, "host0.iommu", "translations") == atc_misses);  // each one a translation request
  CHECK(stat(r, "host0.iommu", "faults") == 0);
}

// 64 KiB: 16 pages of 4 KiB, fewer than the 64 entries: each misses once, the rest hits.
TEST_CASE("iommu: dma_bench reads within the IOTLB reach hit", "[iommu]") {
  auto r = dma("64KiB", "4KiB", 20000);
  CHECK(only(r).messages == 20000);
  CHECK(stat(r, "host0.iommu", "iotlb_hits") + 64 >= 20000);
  CHECK(stat(r, "host0.iommu", "faults") == 0);
}

// 64 MiB of 4 KiB pages: 16384 pages drawn at random through 64 entries: nearly all miss.
TEST_CASE("iommu: dma_bench reads beyond the IOTLB reach miss", "[iommu]") {
  const uint64_t n = 20000;
  auto r = dma("64MiB", "4KiB", n);
  CHECK(only(r).messages == n);
  CHECK(stat(r, "host0.iommu", "iotlb_misses") * 10 >= n * 9);
  CHECK(stat(r, "host0.iommu", "faults") == 0);
  const auto& j = r.json["run"]["workloads"]["dma_bench"];  // the benchmark's figures
  CHECK(j["requests"].get<uint64_t>() == n);
  CHECK(j["op"] == "read");
  CHECK(j["latency_ns"]["samples"].get<uint64_t>() == n);
  CHECK(j["bandwidth_gbps"].get<double>() > 0);
}

// The same window of 2 MiB pages: 32 entries cover it.
TEST_CASE("iommu: dma_bench reads of huge pages hit", "[iommu]") {
  auto r = dma("64MiB", "2MiB", 20000);
  CHECK(only(r).messages == 20000);
  CHECK(stat(r, "host0.iommu", "iotlb_hits") + 64 >= 20000);
}

// Every written range is checked after the run, and the rest of the window must still be zero.
void dma_writes(const std::string& pattern, const std::string& mmu) {
  auto r = run({"run.workloads=dma_bench", "iommu.enabled=" + mmu, "dma_bench.op=write",
                "dma_bench.size=200", "dma_bench.window=1MiB", "dma_bench.pattern=" + pattern,
                "dma_bench.iterations=3000"});
  const auto& w = only(r);
  CHECK(w.messages == 3000);
  CHECK(w.bytes == 3000 * 200);
  CHECK(w.latency.count() == 3000);
}

TEST_CASE("iommu: dma_bench sequential writes land where the host finds them", "[iommu]") {
  dma_writes("sequential", "false");
}

TEST_CASE("iommu: dma_bench random writes through the IOMMU land where the host finds them",
          "[iommu]") {
  dma_writes("random", "true");
}
