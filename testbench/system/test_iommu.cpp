// The IOMMU in whole systems (iommu.*), huge pages (host.page_size) and the dma_bench workload:
// every workload's bytes checked with DMA addresses that are IOVAs, translations counted where
// the IOTLB's reach says they must miss or hit, and faults never. (Mistakes in the configuration:
// testbench/unit/cli, iommu_and_page_sizes.) Each TEST_CASE is one simulation (one process).
#include <fmt/core.h>

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

// The driver gives each region the largest page its buffer allows: 4 KiB for scattered 4 KiB
// pages, 2 MiB and 1 GiB for huge pages. With the IOMMU the region is one contiguous run of IOVAs
// aligned as the buffer: at least the buffer's page, more where the run happens to be aligned
// further (as with Linux's IOVAs).
void page_sizes(bool mmu) {
  auto cfg = test::make_config({std::string("iommu.enabled=") + (mmu ? "true" : "false")});
  auto sys = test::make_system(*cfg);
  std::vector<std::string> failures;
  auto body = [&] {
    host::SimHost& h = *sys->node(0).host;
    drv::Driver& d = *sys->node(0).driver;
    if (d.open() != 0) {
      failures.push_back("open: " + d.last_error());
      return;
    }
    uint32_t pd = 0;
    d.alloc_pd(&pd);
    const uint32_t access = static_cast<uint32_t>(dev::Access::LOCAL_WRITE);
    for (auto [page, shift] :
         {std::pair<uint64_t, int>{4096, 12}, {2ull << 20, 21}, {1ull << 30, 30}}) {
      const uint64_t len = 3 * page + 12345;  // several pages and a part
      const uint64_t va = h.alloc_buffer(len, page);
      for (uint64_t off : {uint64_t(0), page / 2}) {  // from a page's start, and its middle
        drv::Mr mr;
        if (d.reg_mr(pd, va + off, len - off, access, &mr) != 0) {
          failures.push_back(fmt::format("reg_mr of {}-byte pages: {}", page, d.last_error()));
          continue;
        }
        if (mmu ? mr.page_shift < shift : mr.page_shift != shift)
          failures.push_back(fmt::format("{}-byte pages at offset {}: page_shift {}, expected {}{}",
                                         page, off, mr.page_shift, mmu ? "at least " : "", shift));
        d.dereg_mr(mr);
      }
    }
  };
  auto r = sys->run_custom(body, {});
  INFO(r.error);
  for (const auto& f : failures) FAIL_CHECK(f);
  CHECK(failures.empty());
}

TEST_CASE("iommu: regions of huge pages get huge MTT pages", "[iommu][pages]") {
  page_sizes(false);
}

TEST_CASE("iommu: regions of huge pages get huge MTT pages through the IOMMU", "[iommu][pages]") {
  page_sizes(true);
}

// Every byte of WRITEs, READs and SENDs through MTTs of 1 GiB pages.
TEST_CASE("iommu: perftest workloads verify every byte with 1 GiB pages", "[iommu][pages]") {
  auto r = run({"run.workloads=write_bw,read_bw,send_lat", "host.page_size=1GiB",
                "write_bw.iterations=200", "read_bw.iterations=200", "send_lat.iterations=100"});
  INFO("run error: " << r.error);
  REQUIRE(r.ok);
  for (const auto& w : r.workloads) CHECK(w.verified_bytes > 0);
}
