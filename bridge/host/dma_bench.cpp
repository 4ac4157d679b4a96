#include "bridge/host/dma_bench.h"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace rn::host {

namespace {
constexpr uint64_t kPage = 4096;
}

DmaBench::DmaBench(SimHost& host, pcie::DmaPort& dma, const WorkloadParams& p)
    : h_(host), dma_(dma), p_(p) {
  res_.params = p;
  progress_.total = p.iterations;
  rng_ = p.seed * 0x9E3779B97F4A7C15ull + 1;
}

DmaBench::~DmaBench() = default;

void DmaBench::fail(const std::string& why) {
  if (res_.error.empty()) res_.error = why;
  res_.ok = false;
}

uint64_t DmaBench::next_offset() {
  const uint64_t slots = p_.window / p_.size;
  uint64_t k;
  if (p_.dma_random) {
    rng_ ^= rng_ << 13;  // xorshift64
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    k = rng_ % slots;
  } else {
    k = issued_ % slots;
  }
  return k * p_.size;
}

void DmaBench::issue(Slot& s) {
  s.offset = next_offset();
  s.issued = h_.now();
  ++issued_;
  pcie::SgEntry sg[pcie::DmaPort::kMaxSg];
  int n = 0;
  for (uint64_t o = s.offset, left = p_.size; left;) {  // page by page: bus pages need not abut
    const uint64_t k = std::min(left, kPage - (o & (kPage - 1)));
    sg[n++] = pcie::SgEntry{pages_[o / kPage] + (o & (kPage - 1)), static_cast<uint32_t>(k)};
    o += k;
    left -= k;
  }
  if (p_.dma_write) {
    hostmem::pattern_fill(s.data.data(), p_.size, p_.pattern_seed, s.offset);
    written_[s.offset / p_.size] = true;
    dma_.dma_write(sg, n, s.data.data(), 0, [this, &s] { complete(s); });
  } else {
    dma_.dma_read(sg, n, s.data.data(), 0, [this, &s] { complete(s); });
  }
}

void DmaBench::complete(Slot& s) {
  res_.latency.add(h_.now() - s.issued);
  if (!p_.dma_write) {
    hostmem::pattern_fill(want_.data(), p_.size, p_.pattern_seed, s.offset);
    if (std::memcmp(want_.data(), s.data.data(), p_.size) != 0 && res_.error.empty())
      res_.error = fmt::format(
          "a DMA read of {} bytes at window offset {} returned other bytes "
          "than the host wrote there",
          p_.size, s.offset);
  }
  progress_.done = ++done_;
  if (issued_ < p_.iterations) {
    issue(s);
  } else if (done_ == p_.iterations) {
    res_.end = h_.now();
    finished_.notify(sc_core::SC_ZERO_TIME);
  }
}

void DmaBench::run_client() {
  va_ = h_.alloc_buffer(p_.window, p_.page_size);
  // The window holds the pattern the reads check (writes find it zero: fresh memory).
  if (!p_.dma_write) h_.app_fill_pattern(va_, p_.window, p_.pattern_seed);
  if (!h_.pin_pages(va_, p_.window, &pages_)) {
    fail("the window could not be pinned");
    return;
  }
  want_.resize(p_.size);
  written_.assign(p_.window / p_.size, false);
  slots_.resize(std::min<uint64_t>(p_.outstanding, p_.iterations));
  for (Slot& s : slots_) s.data.resize(p_.size);
  res_.start = h_.now();
  progress_.started = true;
  const auto wall0 = std::chrono::steady_clock::now();
  const uint64_t packets0 = packets_ ? packets_() : 0;
  for (Slot& s : slots_) issue(s);
  sc_core::wait(finished_);
  res_.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  res_.packets = (packets_ ? packets_() : 0) - packets0;
  res_.messages = done_;
  res_.bytes = done_ * p_.size;
  const Tick dt = res_.end - res_.start;
  if (dt > 0) {
    res_.goodput_gbps = static_cast<double>(res_.bytes) * 8.0 / static_cast<double>(dt) * 1e3;
    res_.msg_rate_mpps = static_cast<double>(res_.messages) / static_cast<double>(dt) * 1e6;
  }
  if (res_.error.empty() && !check_window())
    res_.error = "the window does not hold what the DMA writes wrote";
  checked_ = true;
  h_.unpin_pages(va_, p_.window);
  h_.free_buffer(va_, p_.window);
  res_.ok = res_.error.empty();
}

// Writes: each slot written holds the pattern of its offset, every other byte is still zero.
bool DmaBench::check_window() {
  if (!p_.dma_write) return true;
  h_.wait_writes_landed(va_, p_.window);
  std::vector<uint8_t> got(p_.size), zero(p_.size, 0);
  for (uint64_t k = 0; k < written_.size(); ++k) {
    h_.app_read(va_ + k * p_.size, got.data(), p_.size);
    if (written_[k]) {
      hostmem::pattern_fill(want_.data(), p_.size, p_.pattern_seed, k * p_.size);
      if (got != want_) return false;
    } else if (got != zero) {
      return false;
    }
  }
  return true;
}

bool DmaBench::verify() {
  if (res_.error.empty() && !checked_) res_.error = "the workload did not run to its end";
  if (!res_.error.empty()) res_.ok = false;
  return res_.ok;
}

}  // namespace rn::host
