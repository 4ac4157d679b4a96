#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bridge/pcie/link_timing.h"

using namespace rn;
using namespace rn::pcie;

namespace {

// Params with enough tags and credits that the link is the bottleneck.
Params unlimited(int gen, int lanes, uint32_t mps, uint32_t mrrs) {
  Params p;
  p.gen = gen;
  p.lanes = lanes;
  p.mps = mps;
  p.mrrs = mrrs;
  p.read_tags = kMaxReadTags;
  p.ph_credits = p.pd_credits = p.nph_credits = 0;
  return p;
}

// Steady-state Gb/s of back-to-back DMAs of `size` bytes, all issued at time 0 at
// addresses base + i * stride: bytes moved between the completion of DMA `warm`
// and of DMA `n`, over the time between them.
template <class Op>
double steady_gbps(Op op, uint64_t size, uint64_t stride, uint64_t base = 0, int n = 4000,
                   int warm = 200) {
  Tick t1 = 0, t2 = 0;
  for (int i = 1; i <= n; ++i) {
    Tick t = op(base + uint64_t(i) * stride, size);
    if (i == warm) t1 = t;
    if (i == n) t2 = t;
  }
  return double(n - warm) * double(size) * 8.0 / double(t2 - t1) * 1000.0;  // bits/ps -> Gb/s
}

double write_gbps(const Params& p, uint64_t size, uint64_t misalign = 0) {
  LinkTiming lt(p);
  uint64_t stride = (size + 8191) / 4096 * 4096;  // every DMA starts at the same alignment
  return steady_gbps([&](uint64_t a, uint64_t s) { return lt.dma_write(0, a, s); }, size, stride,
                     misalign);
}

double read_gbps(const Params& p, uint64_t size, uint64_t misalign = 0, int n = 4000) {
  LinkTiming lt(p);
  uint64_t stride = (size + 8191) / 4096 * 4096;
  return steady_gbps([&](uint64_t a, uint64_t s) { return lt.dma_read(0, a, s); }, size, stride,
                     misalign, n, n / 20);
}

void check_1pct(const char* row, const char* col, double measured, double table) {
  std::printf("%-18s %-16s measured %8.2f  table %8.1f  (%+.2f%%)\n", row, col, measured, table,
              (measured / table - 1) * 100);
  INFO(row << " " << col << ": measured " << measured << " vs table " << table);
  CHECK(std::fabs(measured / table - 1.0) < 0.01);
}

Tick ser(const LinkTiming& lt, uint32_t wire) {
  return static_cast<Tick>(std::ceil(wire * lt.ps_per_byte()));
}

}  // namespace

TEST_CASE("bandwidth table of pcie-model.md within 1%", "[pcie][table]") {
  struct Row {
    const char* name;
    int gen, lanes;
    uint32_t mps, mrrs;
    double raw, tlp, w64, wbig, r64, rbig;
    uint64_t big2;  // a second, larger size for the ">= 256 B" columns
  };
  // The Gen5 row is MPS 512 with pcie-bench's default MRRS 512 (pcie_bw.py --mrrs
  // default); the model's read bandwidth does not depend on MRRS as long as MRRS >= MPS.
  const Row rows[] = {
      {"Gen3 x8", 3, 8, 256, 512, 63.0, 57.9, 42.1, 52.9, 44.1, 53.7, 4096},
      {"Gen3 x16", 3, 16, 256, 512, 126.0, 113.7, 82.7, 104.0, 86.6, 105.5, 4096},
      {"Gen4 x16", 4, 16, 256, 512, 252.1, 227.4, 165.4, 207.9, 173.3, 210.9, 4096},
      {"Gen5 x16 MPS 512", 5, 16, 512, 512, 504.1, 458.5, 333.4, 438.0, 349.3, 441.3, 4096},
  };
  for (const Row& r : rows) {
    Params p = unlimited(r.gen, r.lanes, r.mps, r.mrrs);
    LinkTiming lt(p);
    check_1pct(r.name, "raw", lt.raw_gbps(), r.raw);
    check_1pct(r.name, "TLP layer", lt.tlp_gbps(), r.tlp);
    check_1pct(r.name, "write 64 B", write_gbps(p, 64), r.w64);
    check_1pct(r.name, "write MPS", write_gbps(p, r.mps), r.wbig);
    check_1pct(r.name, "write 4 KB", write_gbps(p, r.big2), r.wbig);
    check_1pct(r.name, "read 64 B", read_gbps(p, 64), r.r64);
    check_1pct(r.name, "read MPS", read_gbps(p, r.mps), r.rbig);
    check_1pct(r.name, "read 4 KB", read_gbps(p, r.big2), r.rbig);
  }
}

TEST_CASE("pcie-bench closed forms: write and read bandwidth for every size", "[pcie][table]") {
  // Aligned transfers: write = S / (ceil(S/MPS) * 24 + S) x TLP rate,
  // read = S / max(ceil(S/MPS) * 20 + S, ceil(S/MRRS) * 24) x TLP rate: downstream-limited
  // except for reads under 4 B, where the 24 B MRd requests saturate the upstream direction.
  Params p = unlimited(3, 8, 256, 512);
  const double tlp = LinkTiming(p).tlp_gbps();
  for (uint64_t s :
       {1, 4, 32, 63, 64, 100, 128, 255, 256, 257, 300, 511, 512, 513, 1000, 1500, 2048, 4096}) {
    double nt = std::ceil(double(s) / 256);
    double w = double(s) / (nt * 24 + double(s)) * tlp;
    double nr = std::ceil(double(s) / 512);
    double r = double(s) / std::max(nt * 20 + double(s), nr * 24) * tlp;
    INFO("size " << s);
    CHECK(write_gbps(p, s) == Approx(w).epsilon(0.002));
    CHECK(read_gbps(p, s, 0, 2000) == Approx(r).epsilon(0.002));
  }
}

TEST_CASE("sawtooth: bandwidth drops just past MPS multiples", "[pcie][sawtooth]") {
  Params p = unlimited(3, 16, 256, 512);
  REQUIRE(write_gbps(p, 257) < write_gbps(p, 256));
  REQUIRE(write_gbps(p, 513) < write_gbps(p, 512));
  REQUIRE(read_gbps(p, 257) < read_gbps(p, 256));
  REQUIRE(read_gbps(p, 513) < read_gbps(p, 512));
  // Within each MPS period, bandwidth rises with size; it falls at k*MPS+1.
  double prev = 0;
  for (uint64_t s = 1; s <= 2 * 256 + 64; ++s) {
    double bw = write_gbps(p, s);
    INFO("size " << s << " bw " << bw << " prev " << prev);
    if (s > 1 && (s - 1) % 256 == 0)
      CHECK(bw < prev);
    else
      CHECK(bw > prev);
    prev = bw;
  }
  // Misaligned by 1 byte: an extra TLP, lower bandwidth.
  REQUIRE(write_gbps(p, 256, 1) < write_gbps(p, 256, 0));
  REQUIRE(write_gbps(p, 4096, 64) < write_gbps(p, 4096, 0));
}

TEST_CASE("TLP splitting: MPS-aligned, never across 4 KB", "[pcie][split]") {
  REQUIRE(count_tlps(0, 256, 256) == 1);
  REQUIRE(count_tlps(1, 256, 256) == 2);  // unaligned: one more TLP
  REQUIRE(count_tlps(64, 4096, 256) == 17);
  REQUIRE(count_tlps(0, 4096, 4096) == 1);
  REQUIRE(count_tlps(2048, 4096, 4096) == 2);  // 4 KB boundary
  REQUIRE(count_tlps(0, 0, 256) == 0);
  uint64_t seed = 12345;
  for (int iter = 0; iter < 20000; ++iter) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t addr = (seed >> 11) & 0xffffff;
    uint64_t len = 1 + ((seed >> 40) % 20000);
    uint32_t max = 128u << ((seed >> 20) % 6);
    uint64_t n = 0, total = 0, next = addr;
    for_each_tlp(addr, len, max, [&](uint64_t a, uint32_t l) {
      CHECK(a == next);
      CHECK(l >= 1);
      CHECK(l <= max);
      CHECK(a / 4096 == (a + l - 1) / 4096);  // never crosses 4 KB
      CHECK(a / max == (a + l - 1) / max);    // MPS-aligned pieces
      next = a + l;
      total += l;
      ++n;
    });
    REQUIRE(total == len);
    REQUIRE(n == count_tlps(addr, len, max));
    // Aligned transfers need no more TLPs than unaligned ones of the same length.
    REQUIRE(count_tlps(0, len, max) <= n);
    REQUIRE(count_tlps(0, len, max) == (len + max - 1) / max);
  }
}

TEST_CASE("completion splitting by the root complex (RCB, MPS)", "[pcie][split]") {
  REQUIRE(count_cpls(0, 512, 256, 64, false) == 2);
  REQUIRE(count_cpls(0, 512, 256, 64, true) == 8);
  REQUIRE(first_cpl_len(0x41, 512, 256, 64, false) == 255);  // ends on an RCB boundary
  REQUIRE(first_cpl_len(0x20, 100, 256, 64, true) == 32);
  uint64_t next = 0x41, total = 0;
  for_each_cpl(0x41, 1000, 256, 64, false, [&](uint64_t a, uint32_t l) {
    CHECK(a == next);
    CHECK(l <= 256);
    next = a + l;
    total += l;
    if (total < 1000) CHECK(next % 64 == 0);
  });
  REQUIRE(total == 1000);
}

TEST_CASE("wire bytes per TLP", "[pcie]") {
  Params p;
  REQUIRE(mwr_wire_bytes(p, 64) == 88);
  REQUIRE(mrd_wire_bytes(p) == 24);
  REQUIRE(cpld_wire_bytes(p, 64) == 84);
  p.addr64 = false;
  p.ecrc = true;
  REQUIRE(mwr_wire_bytes(p, 64) == 8 + 12 + 64 + 4);
  REQUIRE(mrd_wire_bytes(p) == 24);
  REQUIRE(cpld_wire_bytes(p, 64) == 88);
  REQUIRE(spec_ack_limit(3, 8, 128) == 163);
  REQUIRE(spec_ack_limit(3, 8, 256) == 203);
  REQUIRE(spec_ack_limit(3, 8, 512) == 182);
  REQUIRE(spec_fc_limit(3, 16, 128) == 144);
  REQUIRE(spec_fc_limit(3, 16, 256) == 168);
  REQUIRE(spec_fc_limit(5, 16, 512) == 182);
  REQUIRE(spec_ack_limit(1, 1, 128) == 237);
  REQUIRE(spec_ack_limit(2, 32, 4096) == 327);
}

TEST_CASE("read tags limit read bandwidth at high latency", "[pcie][tags]") {
  Params p = unlimited(3, 16, 256, 512);
  p.read_latency = 5 * kUs;
  const double many = read_gbps(p, 512);
  p.read_tags = 1;
  LinkTiming lt(p);
  // One MRd in flight: period = MRd + link + read_latency + 2 CplD of 256 B + link.
  double period =
      24 * lt.ps_per_byte() + 2.0 * p.link_latency + p.read_latency + 2 * 276 * lt.ps_per_byte();
  double expect = 512 * 8.0 / period * 1000;
  double one = read_gbps(p, 512, 0, 400);
  std::printf("1 tag: %.3f Gb/s (computed %.3f); 4096 tags: %.2f Gb/s\n", one, expect, many);
  REQUIRE(one < many / 10);
  REQUIRE(one == Approx(expect).epsilon(0.01));
  // 8 tags: 8 x the one-tag rate while below the link rate.
  p.read_tags = 8;
  REQUIRE(read_gbps(p, 512, 0, 400) == Approx(8 * expect).epsilon(0.01));
  LinkTiming lt2(p);
  for (int i = 0; i < 100; ++i) lt2.dma_read(0, i * 512, 512);
  REQUIRE(lt2.stalls().tag_waits > 0);
}

TEST_CASE("posted credits limit write bandwidth when credits return slowly", "[pcie][credits]") {
  Params p = unlimited(3, 16, 256, 512);
  const double free_bw = write_gbps(p, 256);
  p.credit_return_latency = 1 * kUs;
  p.ph_credits = 4;
  LinkTiming lt(p);
  // 4 TLPs per (TLP time + link latency + credit return latency).
  double period = 280 * lt.ps_per_byte() + p.link_latency + p.credit_return_latency;
  double expect = 4 * 256 * 8.0 / period * 1000;
  double limited = write_gbps(p, 256);
  std::printf("4 PH credits: %.3f Gb/s (computed %.3f); unlimited %.2f Gb/s\n", limited, expect,
              free_bw);
  REQUIRE(limited < free_bw / 5);
  REQUIRE(limited == Approx(expect).epsilon(0.01));
  // Data credits: 32 units = 512 B = two 256 B TLPs in flight.
  p.ph_credits = 0;
  p.pd_credits = 32;
  REQUIRE(write_gbps(p, 256) == Approx(expect / 2).epsilon(0.01));
  // Non-posted header credits limit reads in the same way.
  Params q = unlimited(3, 16, 256, 512);
  q.credit_return_latency = 2 * kUs;
  q.nph_credits = 2;
  REQUIRE(read_gbps(q, 256, 0, 400) < read_gbps(unlimited(3, 16, 256, 512), 256) / 5);
  LinkTiming lt3(q);
  for (int i = 0; i < 10; ++i) lt3.dma_read(0, i * 256, 256);
  REQUIRE(lt3.stalls().credit_waits > 0);
  // With the default parameters a Gen3 x16 link is not credit-limited at 256 B.
  Params d;
  REQUIRE(write_gbps(d, 256) == Approx(free_bw).epsilon(0.001));
}

TEST_CASE("validate rejects bad parameters naming field and value", "[pcie][params]") {
  REQUIRE(Params{}.validate().empty());
  auto bad = [](auto mutate) {
    Params p;
    mutate(p);
    return p.validate();
  };
  CHECK(bad([](Params& p) { p.gen = 6; }) == "pcie.gen: 6 is not one of 1,2,3,4,5");
  CHECK(bad([](Params& p) { p.gen = 0; }).find("pcie.gen: 0") == 0);
  CHECK(bad([](Params& p) { p.lanes = 3; }) == "pcie.lanes: 3 is not one of 1,2,4,8,16,32");
  CHECK(bad([](Params& p) { p.mps = 300; }) ==
        "pcie.mps: 300 is not one of 128,256,512,1024,2048,4096");
  CHECK(bad([](Params& p) { p.mps = 8192; }).find("pcie.mps: 8192") == 0);
  CHECK(bad([](Params& p) { p.mrrs = 64; }) ==
        "pcie.mrrs: 64 is not one of 128,256,512,1024,2048,4096");
  CHECK(bad([](Params& p) { p.rcb = 32; }) == "pcie.rcb: 32 is not one of 64,128");
  CHECK(bad([](Params& p) { p.read_tags = 0; }).find("pcie.read_tags: 0") == 0);
  CHECK(bad([](Params& p) { p.pd_credits = 8; }).find("pcie.pd_credits: 8") == 0);
  CHECK(bad([](Params& p) { p.ack_limit = 8; }).find("pcie.ack_limit: 8") == 0);
  Params p;
  p.lanes = 5;
  REQUIRE_THROWS_WITH(LinkTiming(p), "pcie.lanes: 5 is not one of 1,2,4,8,16,32");
}

TEST_CASE("latencies from idle", "[pcie][latency]") {
  Params p;  // defaults: Gen3 x16
  LinkTiming lt(p);
  const Tick t0 = 1 * kUs;
  // 64 B DMA read: MRd + link + read_latency + CplD + link.
  Tick rd = lt.dma_read(t0, 0x1000, 64);
  Tick expect_rd = t0 + ser(lt, 24) + 2 * p.link_latency + p.read_latency + ser(lt, 84);
  std::printf("64 B DMA read from idle: %.2f ns\n", ticks_to_ns(rd - t0));
  REQUIRE(rd == expect_rd);
  REQUIRE(rd - t0 > p.read_latency);  // the two TLPs and the link add tens of ns
  REQUIRE(rd - t0 < p.read_latency + 60 * kNs);
  // 64 B DMA write: MWr + link + posted_write_latency.
  LinkTiming lw(p);
  REQUIRE(lw.dma_write(t0, 0x2000, 64) ==
          t0 + ser(lw, 88) + p.link_latency + p.posted_write_latency);
  // MMIO doorbell write of 8 B: cpu + MWr + link.
  LinkTiming lm(p);
  Tick mw = lm.mmio_write(t0, 8);
  REQUIRE(mw == t0 + p.mmio_cpu_latency + ser(lm, 32) + p.link_latency);
  std::printf("8 B MMIO write: %.2f ns\n", ticks_to_ns(mw - t0));
  // MMIO read of 4 B: cpu + MRd + link + device + CplD + link + cpu.
  Tick mr = lm.mmio_read(2 * t0, 4);
  REQUIRE(mr == 2 * t0 + 2 * p.mmio_cpu_latency + ser(lm, 24) + 2 * p.link_latency +
                    p.mmio_read_device_latency + ser(lm, 24));
  std::printf("4 B MMIO read round trip: %.2f ns\n", ticks_to_ns(mr - 2 * t0));
  REQUIRE(mr - 2 * t0 > 900 * kNs);
  REQUIRE(mr - 2 * t0 < 1200 * kNs);
  // MSI after a write is delivered after the write is visible (posted ordering).
  LinkTiming ls(p);
  Tick wv = ls.dma_write(t0, 0, 4096);
  Tick mv = ls.msi(t0);
  REQUIRE(mv > wv);
  REQUIRE(double(mv) == Approx(double(wv + ser(ls, 28))).margin(1));  // +-1 ps rounding
  // Larger reads take longer: serialisation of the completions.
  LinkTiming l4(p);
  REQUIRE(l4.dma_read(t0, 0, 4096) > rd);
}

TEST_CASE("statistics per direction", "[pcie][stats]") {
  Params p;
  LinkTiming lt(p);
  lt.dma_write(0, 0, 1024);  // 4 MWr of 256
  lt.dma_read(0, 0, 1024);   // 2 MRd up, 4 CplD of 256 down
  lt.mmio_write(0, 8);       // 1 MWr down
  REQUIRE(lt.up().tlps == 6);
  REQUIRE(lt.up().payload_bytes == 1024);
  REQUIRE(lt.up().wire_bytes == 4 * 280 + 2 * 24);
  REQUIRE(lt.down().tlps == 5);
  REQUIRE(lt.down().payload_bytes == 1024 + 8);
  REQUIRE(lt.down().wire_bytes == 4 * 276 + 32);
  REQUIRE(double(lt.up().busy_ps) == Approx((4 * 280 + 2 * 24) * lt.ps_per_byte()).margin(1));
  REQUIRE(lt.up_busy_until() >= lt.up().busy_ps);
  REQUIRE(lt.down_busy_until() > lt.up_busy_until());
  REQUIRE(lt.dma_write(5, 0, 0) == 5);
  REQUIRE(lt.dma_read(5, 0, 0) == 5);
}

TEST_CASE("credits: the fast path gives the timing of the per-TLP path", "[pcie][credits]") {
  // Header-credit bound: 4 posted header credits coming back 1 us after use. Every TLP needs one
  // credit whatever its size, so 256 B TLPs arrive at the same rate whether they come one per
  // DMA or four per DMA (a regression: the fast-path check once forgot credits the per-TLP path
  // still needed, delaying multi-TLP transfers).
  Params p;
  p.ph_credits = 4;
  p.credit_return_latency = 1 * kUs;
  const double one = write_gbps(p, 256);
  const double two = write_gbps(p, 512);
  const double four = write_gbps(p, 1024);
  INFO("256 B: " << one << " Gb/s, 512 B: " << two << ", 1 KiB: " << four);
  CHECK(std::fabs(two / one - 1) < 0.005);
  CHECK(std::fabs(four / one - 1) < 0.005);
  // Read tags likewise: one tag per MRd, however many MRds a DMA needs.
  Params r;
  r.read_tags = 2;
  r.read_latency = 2 * kUs;
  const double r1 = read_gbps(r, 512, 0, 400);
  const double r4 = read_gbps(r, 2048, 0, 400);
  INFO("reads 512 B: " << r1 << " Gb/s, 2 KiB: " << r4);
  CHECK(std::fabs(r4 / r1 - 1) < 0.005);
}

TEST_CASE("batched timing equals TLP-by-TLP timing, credits and tags binding or not",
          "[pcie][batched]") {
  // The batched fast path (a run of equal TLPs in one step, one pool entry per run) against the
  // reference that times every TLP on its own: the same time for every operation, the same
  // statistics, over random mixes of reads, writes, MMIO and MSI at random addresses and sizes.
  std::vector<std::pair<const char*, Params>> configs;
  configs.push_back({"defaults", Params{}});
  Params tight;
  tight.ph_credits = 4;
  tight.pd_credits = 64;
  tight.nph_credits = 3;
  tight.read_tags = 5;
  tight.cplh_credits = 6;
  tight.cpld_credits = 96;
  tight.credit_return_latency = 700 * kNs;
  configs.push_back({"tight credits and tags", tight});
  Params odd;
  odd.gen = 1;
  odd.lanes = 1;
  odd.mps = 128;
  odd.mrrs = 4096;
  odd.rcb = 128;
  odd.cpl_rcb_chunks = true;
  odd.ecrc = true;
  odd.addr64 = false;
  configs.push_back({"gen1 x1, MPS 128, MRRS 4096, RCB chunks, ECRC", odd});
  Params wide;
  wide.gen = 5;
  wide.lanes = 32;
  wide.mps = 4096;
  wide.mrrs = 128;
  wide.read_tags = 32;
  configs.push_back({"gen5 x32, MPS 4096, MRRS 128", wide});
  for (const auto& [name, p] : configs) {
    LinkTiming batched(p, true), reference(p, false);
    std::mt19937_64 rng(12345);
    Tick now = 0;
    for (int i = 0; i < 20000; ++i) {
      now += rng() % 4 == 0 ? 0 : rng() % (2 * kUs);
      uint64_t addr = rng() % (1u << 20);
      if (rng() % 2) addr &= ~uint64_t(4095);
      uint64_t len = rng() % 3 == 0 ? 4096 : rng() % (rng() % 8 == 0 ? 70000 : 9000);
      int op = static_cast<int>(rng() % 10);
      Tick a, b;
      if (op < 4) {
        a = batched.dma_write(now, addr, len);
        b = reference.dma_write(now, addr, len);
      } else if (op < 8) {
        a = batched.dma_read(now, addr, len);
        b = reference.dma_read(now, addr, len);
      } else if (op == 8) {
        uint32_t n = 4 + 4 * static_cast<uint32_t>(rng() % 16);
        a = batched.mmio_write(now, n);
        b = reference.mmio_write(now, n);
      } else {
        a = batched.msi(now);
        b = reference.msi(now);
      }
      INFO(name << ": operation " << i << " (kind " << op << ", addr " << addr << ", len " << len
                << ") at " << now);
      REQUIRE(a == b);
    }
    INFO(name);
    for (bool up : {true, false}) {
      const auto& x = up ? batched.up() : batched.down();
      const auto& y = up ? reference.up() : reference.down();
      CHECK(x.tlps == y.tlps);
      CHECK(x.payload_bytes == y.payload_bytes);
      CHECK(x.wire_bytes == y.wire_bytes);
      CHECK(x.busy_ps == y.busy_ps);
    }
    CHECK(batched.stalls().tag_waits == reference.stalls().tag_waits);
    CHECK(batched.stalls().tag_wait_ps == reference.stalls().tag_wait_ps);
    CHECK(batched.stalls().credit_waits == reference.stalls().credit_waits);
    CHECK(batched.stalls().credit_wait_ps == reference.stalls().credit_wait_ps);
    CHECK(batched.up_busy_until() == reference.up_busy_until());
    CHECK(batched.down_busy_until() == reference.down_busy_until());
  }
}

TEST_CASE("UnitRing answers as a CreditPool of single units", "[pcie][credits]") {
  for (uint32_t limit : {0u, 1u, 3u, 64u}) {
    CreditPool pool;
    UnitRing ring;
    pool.reset(limit);
    ring.reset(limit);
    std::mt19937_64 rng(limit + 7);
    Tick t = 0;
    for (int i = 0; i < 5000; ++i) {
      uint32_t k =
          limit ? 1 + static_cast<uint32_t>(rng() % limit) : 1 + static_cast<uint32_t>(rng() % 8);
      INFO("limit " << limit << ", step " << i << ", k " << k);
      REQUIRE(ring.ready(k) == pool.peek(k));
      REQUIRE(ring.ready() == pool.ready(1));
      t += rng() % 1000;  // releases in the order taken
      ring.take(t);
      pool.consume(1, t);
    }
  }
}

TEST_CASE("large transfers on a slow link: batched equals TLP-by-TLP, bandwidth as expected",
          "[pcie][batched]") {
  // 64 MiB at Gen1 x1 takes about a third of a second: sums of serialisation times must not
  // overflow (fixed-point picoseconds x 2^32 need more than 64 bits there).
  Params p;
  p.gen = 1;
  p.lanes = 1;
  p.ph_credits = p.pd_credits = p.nph_credits = 0;  // no credit limits: the batched path
  p.read_tags = kMaxReadTags;
  LinkTiming batched(p, true), reference(p, false);
  const uint64_t len = 64ull << 20;
  const Tick w = batched.dma_write(0, 0x100000000ull, len);
  REQUIRE(w == reference.dma_write(0, 0x100000000ull, len));
  const Tick r = batched.dma_read(0, 0x200000000ull, len);
  REQUIRE(r == reference.dma_read(0, 0x200000000ull, len));
  // Payload share of a 256 B MWr (24 B of overheads) at the TLP-layer rate.
  const double expect_ps = len * (256.0 + 24.0) / 256.0 * batched.ps_per_byte();
  CHECK(double(w) == Approx(expect_ps).epsilon(0.001));
  CHECK(batched.up().busy_ps == reference.up().busy_ps);
  CHECK(batched.down().busy_ps == reference.down().busy_ps);
}
