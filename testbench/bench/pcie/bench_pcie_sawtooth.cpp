// Bandwidth vs transfer size through rn::pcie::LinkTiming (the "sawtooth").
// Usage: bench_pcie_sawtooth [out.csv] [gen] [lanes] [mps] [mrrs]   (default Gen3 x16, 256/512)
// Then: /usr/bin/python3 testbench/bench/pcie/plot_sawtooth.py out.csv out.png
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bridge/pcie/link_timing.h"

using namespace rn;
using namespace rn::pcie;

namespace {

constexpr int kN = 120, kWarm = 20;  // steady state between DMA kWarm and kN

template <bool kRead>
double gbps(const Params& p, uint64_t size, uint64_t misalign) {
  LinkTiming lt(p);
  uint64_t stride = (size + 8191) / 4096 * 4096;
  Tick t1 = 0, t2 = 0;
  for (int i = 1; i <= kN; ++i) {
    uint64_t a = uint64_t(i) * stride + misalign;
    Tick t = kRead ? lt.dma_read(0, a, size) : lt.dma_write(0, a, size);
    if (i == kWarm) t1 = t;
    if (i == kN) t2 = t;
  }
  return double(kN - kWarm) * double(size) * 8.0 / double(t2 - t1) * 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* out = argc > 1 ? argv[1] : "pcie_sawtooth.csv";
  Params p;
  if (argc > 2) p.gen = std::atoi(argv[2]);
  if (argc > 3) p.lanes = std::atoi(argv[3]);
  if (argc > 4) p.mps = static_cast<uint32_t>(std::atoi(argv[4]));
  if (argc > 5) p.mrrs = static_cast<uint32_t>(std::atoi(argv[5]));
  p.read_tags = kMaxReadTags;  // the link, not tags or credits, is the bottleneck
  p.ph_credits = p.pd_credits = p.nph_credits = 0;
  if (std::string err = p.validate(); !err.empty()) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 2;
  }
  std::FILE* f = std::fopen(out, "w");
  if (!f) {
    std::perror(out);
    return 1;
  }
  LinkTiming lt(p);
  std::fprintf(f, "# Gen%d x%d MPS %u MRRS %u RCB %u: raw %.2f Gb/s, TLP layer %.2f Gb/s\n", p.gen,
               p.lanes, p.mps, p.mrrs, p.rcb, lt.raw_gbps(), lt.tlp_gbps());
  std::fprintf(f,
               "size,write_aligned,write_misalign1,write_misalign64,"
               "read_aligned,read_misalign1,read_misalign64\n");
  for (uint64_t s = 1; s <= 8192; ++s) {
    std::fprintf(f, "%llu,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f\n", static_cast<unsigned long long>(s),
                 gbps<false>(p, s, 0), gbps<false>(p, s, 1), gbps<false>(p, s, 64),
                 gbps<true>(p, s, 0), gbps<true>(p, s, 1), gbps<true>(p, s, 64));
  }
  std::fclose(f);
  std::printf("wrote %s (Gen%d x%d, TLP layer %.2f Gb/s)\n", out, p.gen, p.lanes, lt.tlp_gbps());
  return 0;
}
