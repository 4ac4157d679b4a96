// The memory check of the security attack matrix (docs/security.md): a digest of every page of
// both simulated hosts' memory, taken before an attack and compared after it. Two kinds of bytes
// may change and are left out of the digest:
//  - each host's DMA-coherent region [SimHost::kDmaBase, SimHost::kPageBase): the driver's
//    command block, event queue, CQ rings, send and receive rings and staged page lists. The NIC
//    reaches them only through addresses the driver programs into its contexts, never through a
//    key; the driver writes WQEs there and the NIC writes CQEs and EQEs there;
//  - the ranges of an application buffer a test permits (permit()): a successful access's data.
// Everything else (every application page, registered or not, and any other memory) must read
// exactly as before, byte for byte (page_digests treats a page of zeros as absent, so a page the
// attack merely allocated with zeros counts as unchanged).
#pragma once
#include <fmt/core.h>

#include <string>
#include <vector>

#include "testbench/system/device_bench.h"

namespace rn::test {

class MemGuard {
 public:
  explicit MemGuard(Bench& t) : t_(t) {}
  // Permits [off, off + len) of p's application buffer to change (call before take()).
  void permit(Peer& p, uint64_t off, uint64_t len) { permit_va(p, p.buf + off, len); }
  // Permits the application virtual range [va, va + len) of p's host (any buffer it allocated).
  void permit_va(Peer& p, uint64_t va, uint64_t len) {
    std::vector<Range>& skip = skip_[index(p)];
    for (uint64_t a = va; a < va + len;) {  // page by page: the frames are scattered
      const uint64_t next = std::min(va + len, (a | (kPage - 1)) + 1);
      skip.push_back(Range{p.h->translate(a), next - a});
      a = next;
    }
  }
  // The digests before the attack.
  void take() {
    for (int i = 0; i < 2; ++i) before_[i] = digest(i);
    taken_ = true;
  }
  // After the attack: every page outside what may change reads as before. Failures go to the
  // bench (naming the host and the first page that differs).
  void check(const std::string& when = "after the attack") {
    if (!taken_) return t_.expect(false, "MemGuard::check before take()");
    for (int i = 0; i < 2; ++i) {
      const std::vector<Digest> now = digest(i);
      if (now == before_[i]) continue;
      t_.expect(false, fmt::format("host{} memory changed {} outside what is permitted: {}", i,
                                   when, first_difference(before_[i], now)));
    }
  }

 private:
  using Range = hostmem::HostMemory::Range;
  using Digest = hostmem::HostMemory::PageDigest;
  static constexpr uint64_t kPage = hostmem::kPageSize;
  int index(const Peer& p) const { return &p == &t_.a ? 0 : 1; }
  Peer& peer(int i) { return i ? t_.b : t_.a; }
  std::vector<Digest> digest(int i) {
    std::vector<Range> skip = skip_[i];
    skip.push_back(
        Range{host::SimHost::kDmaBase, host::SimHost::kPageBase - host::SimHost::kDmaBase});
    return peer(i).h->memory().page_digests(skip);
  }
  static std::string first_difference(const std::vector<Digest>& a, const std::vector<Digest>& b) {
    size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
    if (i < a.size() && i < b.size())
      return fmt::format("page {:#x} (before: page {:#x})", b[i].addr, a[i].addr);
    if (i < b.size()) return fmt::format("page {:#x} written", b[i].addr);
    return fmt::format("page {:#x} now reads as zeros", a[i].addr);
  }
  Bench& t_;
  std::vector<Range> skip_[2];
  std::vector<Digest> before_[2];
  bool taken_ = false;
};

}  // namespace rn::test
