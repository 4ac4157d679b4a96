#include "bridge/host/sim_host.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "model/core/hot.h"

namespace rn::host {

namespace {
constexpr uint64_t kPage = 4096;
// Bytes from va to the end of its (virtual) page.
uint64_t page_rest(uint64_t va) { return kPage - (va % kPage); }
sc_core::sc_time ps(Tick t) { return sc_core::sc_time::from_value(t); }
}  // namespace

SimHost::SimHost(Sim& sim, const std::string& name, const HostParams& p, hostmem::HostMemory& mem,
                 pcie::Bridge& bridge)
    : sim_(sim),
      name_(name),
      p_(p),
      mem_(mem),
      bridge_(bridge),
      stats_(sim.stats, name, "simulated host: OS memory, interrupts"),
      interrupts_(stats_.counter("interrupts", "count", "MSI-X messages received")),
      bad_msi_(
          stats_.counter("stray_msi", "count", "MSI-X writes to an address nobody listens on")),
      app_pages_(stats_.counter("app_pages", "count", "application pages mapped")),
      dma_bytes_(stats_.counter("dma_alloc_bytes", "B", "DMA-coherent memory allocated")) {
  bridge_.attach_host(this);
  // The memory model's own bookkeeping (simulator speed; the bytes are the same either way).
  stats_.formula("mem_pages", "count", "4 KiB pages of physical memory written so far",
                 [this] { return double(mem_.pages_allocated()); });
  stats_.formula("mem_pages_mapped_shared", "count",
                 "whole-page DMA writes done by mapping the page the bytes came from "
                 "(sim.share_pages)",
                 [this] { return double(mem_.pages_mapped_shared()); });
  stats_.formula("mem_pages_copied_on_write", "count",
                 "writes into a shared page that first copied it (sim.share_pages)",
                 [this] { return double(mem_.pages_copied_on_write()); });
}

SimHost::~SimHost() { sim_.stats.remove(&stats_); }

void SimHost::spawn(const std::string& name, std::function<void()> fn) {
  sc_core::sc_spawn_options opt;
  sc_core::sc_spawn(std::move(fn), (name_ + "_" + name).c_str(), &opt);
}

void SimHost::cpu(Tick t) {
  if (t) sc_core::wait(ps(t));
}

uint64_t SimHost::alloc_buffer(uint64_t len) {
  if (len == 0) len = 1;
  uint64_t n = (len + kPage - 1) / kPage;
  uint64_t va = app_next_;
  app_next_ += (n + 1) * kPage;  // a guard page between buffers
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t frame;
    if (p_.scatter_pages) {
      // Frames handed out in a scrambled order: consecutive virtual pages are never physically
      // adjacent, so every translation path (MTT, page splits) is exercised. Multiplying by an
      // odd constant modulo 2^26 is a bijection: no frame is handed out twice.
      uint64_t k = frames_next_++;
      if (k >= (1ull << 26)) throw std::length_error(name_ + ": out of application page frames");
      frame = kPageBase + ((k * 0x9E3779B1ull) & ((1ull << 26) - 1)) * kPage;
    } else {
      frame = kPageBase + frames_next_++ * kPage;
    }
    page_table_[(va / kPage) + i] = frame;
  }
  app_pages_ += n;
  return va;
}

void SimHost::free_buffer(uint64_t va, uint64_t len) {
  if (len == 0) len = 1;
  const uint64_t n = (len + kPage - 1) / kPage;
  bridge_.sync();  // writes that have landed go first: none may land in a page given back
  for (uint64_t i = 0; i < n; ++i) {
    auto it = page_table_.find(va / kPage + i);
    if (it == page_table_.end()) continue;
    mem_.discard(it->second, kPage);
    page_table_.erase(it);
  }
}

void SimHost::wait_writes_landed(uint64_t va, uint64_t len) {
  for (;;) {
    Tick due = kTickNever;
    for_each_phys(va, len, [&](uint64_t pa, size_t n) {
      due = std::min(due, bridge_.pending_write_time(pa, n));
    });
    if (due == kTickNever) return;
    if (due > now()) cpu(due - now());
    bridge_.sync();
  }
}

uint64_t SimHost::translate(uint64_t va) const {
  if (va < kAppBase) return va;
  auto it = page_table_.find(va / kPage);
  if (it == page_table_.end())
    throw std::out_of_range(fmt::format("{}: virtual address {:#x} is not mapped", name_, va));
  return it->second + (va % kPage);
}

template <typename F>
void SimHost::for_each_phys(uint64_t addr, size_t len, F&& fn) const {
  if (addr < kAppBase) {
    fn(addr, len);
    return;
  }
  while (len > 0) {
    size_t chunk = std::min<uint64_t>(len, page_rest(addr));
    fn(translate(addr), chunk);
    addr += chunk;
    len -= chunk;
  }
}

void SimHost::app_write(uint64_t va, const void* src, size_t len) {
  bridge_.sync();  // device writes that landed before this store come first
  auto* s = static_cast<const uint8_t*>(src);
  for_each_phys(va, len, [&](uint64_t pa, size_t n) {
    mem_.write(pa, s, n);
    s += n;
  });
}

void SimHost::app_read(uint64_t va, void* dst, size_t len) {
  bridge_.sync();  // see every device write that has landed by now
  auto* d = static_cast<uint8_t*>(dst);
  for_each_phys(va, len, [&](uint64_t pa, size_t n) {
    mem_.read(pa, d, n);
    d += n;
  });
}

void SimHost::app_fill_pattern(uint64_t va, uint64_t len, uint64_t seed) {
  uint8_t buf[kPage];  // a page at a time, on the stack: no allocation per buffer
  for (uint64_t off = 0; off < len;) {
    size_t n = std::min<uint64_t>(page_rest(va + off), len - off);
    hostmem::pattern_fill(buf, n, seed, off);
    app_write(va + off, buf, n);
    off += n;
  }
}

std::optional<uint64_t> SimHost::app_check_pattern(uint64_t va, uint64_t len, uint64_t seed) {
  uint8_t buf[kPage], want[kPage];
  for (uint64_t off = 0; off < len;) {
    size_t n = std::min<uint64_t>(page_rest(va + off), len - off);
    app_read(va + off, buf, n);
    hostmem::pattern_fill(want, n, seed, off);
    if (std::memcmp(buf, want, n) != 0)
      for (size_t i = 0; i < n; ++i)
        if (buf[i] != want[i]) return off + i;
    off += n;
  }
  return std::nullopt;
}

RN_HOT void SimHost::on_dma_write(uint64_t addr, uint64_t len) {
  for (const Watch& w : watches_)
    if (addr < w.hi && addr + len > w.lo) sim_.eq.notify(*w.ev);
}

RN_HOT bool SimHost::watching(uint64_t addr, uint64_t len) const {
  for (const Watch& w : watches_)
    if (addr < w.hi && addr + len > w.lo) return true;
  return false;
}

void SimHost::on_msi(uint64_t addr, uint32_t data) {
  if (addr != kMsiAddr) {
    ++bad_msi_;
    return;
  }
  ++interrupts_;
  ++irq_pending_;
  sim_.eq.notify(irq_);
}

bool SimHost::wait_write(uint64_t addr, size_t len, Tick timeout) {
  // Events come from a pool: constructing an sc_event allocates (its generated name).
  std::unique_ptr<sc_core::sc_event> owned;
  if (event_pool_.empty()) {
    owned = std::make_unique<sc_core::sc_event>();
  } else {
    owned = std::move(event_pool_.back());
    event_pool_.pop_back();
  }
  sc_core::sc_event& ev = *owned;
  Tick due = kTickNever;
  for_each_phys(addr, len, [&](uint64_t pa, size_t n) {
    watches_.push_back(Watch{pa, pa + n, &ev});
    due = std::min(due, bridge_.pending_write_time(pa, n));
  });
  // A write already in flight to this memory was issued before anyone watched it: have the
  // bridge deliver it at its completion time.
  if (due != kTickNever) sim_.eq.at(std::max(due, now()), [this] { bridge_.sync(); });
  Tick t0 = now();
  sc_core::wait(ps(timeout), ev);
  bool fired = now() - t0 < timeout;
  // Remove this wait's watches (others may have been added after them by other threads).
  watches_.erase(
      std::remove_if(watches_.begin(), watches_.end(), [&](const Watch& w) { return w.ev == &ev; }),
      watches_.end());
  ev.cancel();  // a notification still pending must not wake the next user
  event_pool_.push_back(std::move(owned));
  if (fired) cpu(p_.wakeup_latency);
  return fired;
}

void SimHost::mmio_write32(uint64_t offset, uint32_t value) {
  bridge_.mmio_write32(offset, value);
  cpu(p_.mmio_write_cost);
}

void SimHost::mmio_write(uint64_t offset, const void* data, size_t len) {
  bridge_.mmio_write(offset, data, len);
  cpu(p_.mmio_write_cost);
}

uint32_t SimHost::mmio_read32(uint64_t offset) { return bridge_.mmio_read32(offset); }

uint64_t SimHost::dma_alloc(size_t len, size_t align) {
  if (len == 0 || (align & (align - 1))) return 0;
  align = std::max<size_t>(align, 64);
  uint64_t a = (dma_next_ + align - 1) & ~uint64_t(align - 1);
  dma_next_ = a + len;
  mem_.fill(a, len, 0);
  dma_bytes_ += len;
  return a;
}

void SimHost::dma_free(uint64_t bus_addr, size_t len) {
  // Bump allocator: freed DMA addresses are not reused (the address space is 64-bit and sparse),
  // but the pages wholly inside the allocation go back.
  if (len == 0) return;
  bridge_.sync();
  mem_.discard(bus_addr, len);
}

void SimHost::mem_write(uint64_t addr, const void* src, size_t len) { app_write(addr, src, len); }
void SimHost::mem_read(uint64_t addr, void* dst, size_t len) { app_read(addr, dst, len); }

bool SimHost::pin_pages(uint64_t va, uint64_t len, std::vector<uint64_t>* pages) {
  pages->clear();
  if (len == 0 || va + len < va) return false;
  uint64_t first = va / kPage, last = (va + len - 1) / kPage;
  if (va < kAppBase) {
    // Below the application's space: only DMA memory this host allocated is the process's own
    // (identity mapped); everything else is not mapped, as for reg_mr of a stray pointer.
    if (va < kDmaBase || va + len > dma_next_ || va + len > kAppBase) return false;
    for (uint64_t p = first; p <= last; ++p) pages->push_back(p * kPage);
    return true;
  }
  for (uint64_t p = first; p <= last; ++p) {
    auto it = page_table_.find(p);
    if (it == page_table_.end()) return false;
    pages->push_back(it->second);
  }
  return true;
}

bool SimHost::wait_device_write(uint64_t addr, size_t len, uint64_t timeout_ns) {
  return wait_write(addr, len, std::min<uint64_t>(timeout_ns * kNs, p_.driver_timeout));
}

bool SimHost::wait_interrupt(uint64_t timeout_ns) {
  if (irq_pending_ == 0) {
    Tick t0 = now();
    Tick to = std::min<uint64_t>(timeout_ns * kNs, p_.driver_timeout);
    sc_core::wait(ps(to), irq_);
    if (now() - t0 >= to && irq_pending_ == 0) return false;
  }
  if (irq_pending_ == 0) return false;
  --irq_pending_;
  cpu(p_.wakeup_latency);
  return true;
}

}  // namespace rn::host
