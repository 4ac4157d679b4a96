// The NIC's context caches in whole systems (nic.cache.*, CAPS.icm; model/translation
// context_cache.h): workloads verify every byte with the caches on (with and without the IOMMU);
// working sets that fit miss once per key and line, working sets that do not miss again and
// again; huge pages shrink the MTT's working set; the context memory and its MPT entries are as
// docs/device-interface.md says. Each TEST_CASE is one simulation (one process).
#include <fmt/core.h>

#include <catch2/catch.hpp>

#include "testbench/system/device_bench.h"
#include "testbench/system/harness.h"

using namespace rn;

namespace {

using test::only;
using test::run;
using test::stat;

// write_bw of `qps` QPs, `iters` messages of `size` each, with the caches on.
system::RunReport write_bw(int qps, int iters, const std::string& size,
                           std::vector<std::string> more) {
  more.insert(
      more.end(),
      {"run.workloads=write_bw", "nic.cache.enabled=true", "write_bw.qps=" + std::to_string(qps),
       "write_bw.iterations=" + std::to_string(iters), "write_bw.size=" + size});
  return run(more);
}

}  // namespace

void perftest_with_caches(bool iommu) {
  auto r = run({"run.workloads=write_bw,read_bw,send_lat,atomic_bw", "nic.cache.enabled=true",
                fmt::format("iommu.enabled={}", iommu), "write_bw.iterations=200",
                "read_bw.iterations=200", "send_lat.iterations=100", "atomic_bw.iterations=200"});
  INFO("run error: " << r.error);
  REQUIRE(r.ok);
  for (const auto& w : r.workloads) CHECK(w.verified_bytes > 0);
  // A miss delays; it never loses a packet for good: no ACK timeout had to recover one.
  for (const char* h : {"host0.nic.req", "host1.nic.req"}) CHECK(stat(r, h, "timeouts") == 0);
  for (const char* h : {"host0.nic.cache", "host1.nic.cache"}) {
    CHECK(stat(r, h, "mpt_misses") > 0);
    CHECK(stat(r, h, "mpt_hits") > stat(r, h, "mpt_misses"));
    CHECK(stat(r, h, "mtt_misses") > 0);
    CHECK(stat(r, h, "read_faults") == 0);
    CHECK(stat(r, h, "evictions") == 0);  // a few regions: everything fits
    // Every region was created and destroyed: two invalidations each.
    CHECK(stat(r, h, "invalidations") % 2 == 0);
  }
  if (iommu)
    for (const char* h : {"host0.iommu", "host1.iommu"}) CHECK(stat(r, h, "faults") == 0);
  // The report says how the caches did, per host.
  int lines = 0;
  for (const auto& n : r.notes) {
    lines += n.rfind("host0 context caches: MPT ", 0) == 0 ||
             n.rfind("host1 context caches: MPT ", 0) == 0;
    if (iommu)
      lines += n.rfind("host0 IOMMU: ", 0) == 0 && n.find(", 0 faults") != std::string::npos;
  }
  CHECK(lines == (iommu ? 3 : 2));
}

TEST_CASE("cache: perftest workloads verify every byte with the context caches on", "[cache]") {
  perftest_with_caches(false);
}

TEST_CASE("cache: context memory and page lists are read through the IOMMU", "[cache]") {
  perftest_with_caches(true);
}

TEST_CASE("cache: keys that fit the MPT cache miss once each", "[cache]") {
  auto r = write_bw(32, 100, "64KiB", {});
  const auto& w = only(r);
  CHECK(w.verified_bytes > 0);
  // 32 source regions on host0, 32 destination regions on host1: each key's entry is read once,
  // each region's page list (16 pages: 2 lines) twice.
  for (const char* h : {"host0.nic.cache", "host1.nic.cache"}) {
    CHECK(stat(r, h, "mpt_misses") == 32);
    CHECK(stat(r, h, "mtt_misses") == 64);
    CHECK(stat(r, h, "evictions") == 0);
  }
}

TEST_CASE("cache: more keys than the MPT cache holds miss again on every turn", "[cache]") {
  // 32 QPs served round robin, 8 keys on chip (LRU, one set): a QP's key is always gone by its
  // next turn.
  auto r = write_bw(32, 100, "64KiB", {"nic.cache.mpt_entries=8", "nic.cache.mpt_ways=8"});
  const auto& w = only(r);
  CHECK(w.verified_bytes > 0);
  const uint64_t messages = 32 * 100;
  for (const char* h : {"host0.nic.cache", "host1.nic.cache"}) {
    CHECK(stat(r, h, "mpt_misses") >= messages);
    CHECK(stat(r, h, "evictions") > 0);
  }
}

TEST_CASE("cache: with 4 KiB pages a 1 MiB message misses MTT lines for all its pages", "[cache]") {
  // One line on chip (8 page addresses), messages of 1 MiB: 256 pages, 32 lines, each message.
  auto r = write_bw(1, 20, "1MiB", {"nic.cache.mtt_entries=8", "nic.cache.mtt_ways=1"});
  CHECK(only(r).verified_bytes > 0);
  for (const char* h : {"host0.nic.cache", "host1.nic.cache"})
    CHECK(stat(r, h, "mtt_misses") >= 20 * 32);
}

TEST_CASE("cache: with 2 MiB pages a 1 MiB region needs one MTT line", "[cache]") {
  auto r = write_bw(1, 20, "1MiB",
                    {"nic.cache.mtt_entries=8", "nic.cache.mtt_ways=1", "host.page_size=2MiB"});
  CHECK(only(r).verified_bytes > 0);
  for (const char* h : {"host0.nic.cache", "host1.nic.cache"}) CHECK(stat(r, h, "mtt_misses") == 1);
}

TEST_CASE("cache: READs at random in a region beyond the MTT cache's reach miss on most READs",
          "[cache]") {
  // 64 MiB of 4 KiB pages: 16384 page addresses, 64 on chip.
  auto r = run({"run.workloads=read_bw", "nic.cache.enabled=true", "nic.cache.mtt_entries=64",
                "read_bw.size=64", "read_bw.region=64MiB", "read_bw.iterations=2000"});
  CHECK(only(r).verified_bytes == 64);
  CHECK(stat(r, "host1.nic.cache", "mtt_misses") >= 1800);
  // The requester's destination lookups missed too (its first): the READs went again, and no
  // ACK timeout was needed.
  CHECK(stat(r, "host0.nic.req", "timeouts") == 0);
  CHECK(stat(r, "host1.nic.cache", "read_faults") == 0);
}

TEST_CASE("cache: the same READs with 2 MiB pages need 32 page addresses, all on chip", "[cache]") {
  auto r = run({"run.workloads=read_bw", "nic.cache.enabled=true", "nic.cache.mtt_entries=64",
                "read_bw.size=64", "read_bw.region=64MiB", "read_bw.iterations=2000",
                "host.page_size=2MiB"});
  CHECK(only(r).verified_bytes == 64);
  CHECK(stat(r, "host1.nic.cache", "mtt_misses") <= 4);  // 32 entries: 4 lines
}

TEST_CASE("cache: the context memory, MAP_ICM and MPT entries are as the interface says",
          "[cache]") {
  test::Bench t({"nic.cache.enabled=true", "nic.max_mrs=1024"});
  t.run([&] {
    test::Peer& a = t.a;
    if (!t.setup()) return;
    t.expect(a.d->caps().icm, "CAPS.icm is set");
    const uint64_t icm = a.d->icm();
    t.expect(icm != 0 && (icm & 4095) == 0, fmt::format("context memory at {:#x}", icm));
    // The MPT entry of the bench's region, written by CREATE_MR.
    test::RawCommands c{a};
    const uint32_t key = a.mr.lkey;
    dev::MptEntry e{};
    c.peek(icm + 64ull * (key >> 8), &e, sizeof e);
    t.expect(e.valid == 1 && e.key == key && e.pdn == a.pdn && e.iova == a.mr.addr &&
                 e.length == a.mr.length && e.mtt_addr == a.mr.mtt_addr &&
                 e.page_shift == a.mr.page_shift && e.n_pages == a.mr.mtt_len / 8,
             fmt::format("MptEntry key {:#x} pdn {} iova {:#x} length {} mtt {:#x} n {}", e.key,
                         e.pdn, e.iova, e.length, e.mtt_addr, e.n_pages));
    // The page list stays as the driver wrote it: the first page's bus address.
    uint64_t first = 0;
    c.peek(a.mr.mtt_addr, &first, 8);
    t.expect(first != 0, "page list kept");
    // DESTROY_MR zeroes the entry.
    t.expect(a.d->dereg_mr(a.mr) == 0, "dereg_mr");
    a.mr = drv::Mr{};
    c.peek(icm + 64ull * (key >> 8), &e, sizeof e);
    t.expect(e.valid == 0 && e.key == 0, "MptEntry zeroed by DESTROY_MR");
    // Commands by hand from here on (a block of their own).
    const uint64_t blk = a.h->dma_alloc(256, 64);
    dev::QueryDeviceIn q{};
    q.page = 2;
    dev::CmdOut o = c.run(blk, dev::CmdOp::QUERY_DEVICE, q);
    dev::QueryDeviceIcmOut qi{};
    std::memcpy(&qi, o.result, sizeof qi);
    t.expect(o.status == 0 && qi.icm_bytes == 1024 * 64 && qi.mpt_entry_bytes == 64,
             fmt::format("QUERY_DEVICE page 2: status {} icm_bytes {}", o.status, qi.icm_bytes));
    dev::MapIcmIn m{};
    m.addr = icm;
    m.bytes = qi.icm_bytes;
    o = c.run(blk, dev::CmdOp::MAP_ICM, m);
    t.expect(o.status == static_cast<uint8_t>(dev::CmdStatus::BUSY), "a second MAP_ICM: BUSY");
    // After a reset the device has none: CREATE_MR is refused until MAP_ICM, which checks its
    // arguments.
    a.h->mmio_write32(dev::reg::CTRL, dev::CtrlBits{true, true, false}.pack());
    for (int i = 0; i < 1000 && !dev::StatusBits::unpack(a.h->mmio_read32(dev::reg::STATUS)).ready;
         ++i)
      a.h->cpu(1 * kUs);
    o = c.run(blk, dev::CmdOp::CREATE_PD, dev::HandleIn{});
    dev::CreatePdOut pd{};
    std::memcpy(&pd, o.result, sizeof pd);
    const uint64_t list = a.h->dma_alloc(64, 64);
    const uint64_t page = a.h->dma_alloc(4096, 4096);
    c.poke(list, &page, 8);
    const dev::CreateMrIn mr = test::RawCommands::mr_args(pd.pdn, test::kLW, page, 1, list);
    o = c.run(blk, dev::CmdOp::CREATE_MR, mr);
    t.expect(o.status == static_cast<uint8_t>(dev::CmdStatus::NO_RESOURCES),
             fmt::format("CREATE_MR before MAP_ICM: status {}", o.status));
    m.bytes = qi.icm_bytes - 64;
    o = c.run(blk, dev::CmdOp::MAP_ICM, m);
    t.expect(o.status == static_cast<uint8_t>(dev::CmdStatus::BAD_PARAM) &&
                 o.syndrome == offsetof(dev::CmdIn, args) + offsetof(dev::MapIcmIn, bytes),
             fmt::format("MAP_ICM too small: status {} syndrome {}", o.status, o.syndrome));
    m.bytes = qi.icm_bytes;
    m.addr = icm + 64;
    o = c.run(blk, dev::CmdOp::MAP_ICM, m);
    t.expect(o.status == static_cast<uint8_t>(dev::CmdStatus::BAD_PARAM) &&
                 o.syndrome == offsetof(dev::CmdIn, args) + offsetof(dev::MapIcmIn, addr),
             fmt::format("MAP_ICM unaligned: status {} syndrome {}", o.status, o.syndrome));
    m.addr = icm;
    o = c.run(blk, dev::CmdOp::MAP_ICM, m);
    t.expect(o.status == 0, fmt::format("MAP_ICM: status {}", o.status));
    o = c.run(blk, dev::CmdOp::CREATE_MR, mr);
    t.expect(o.status == 0, fmt::format("CREATE_MR after MAP_ICM: status {}", o.status));
  });
  t.report();
}
