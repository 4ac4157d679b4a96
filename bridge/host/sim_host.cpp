#include "bridge/host/sim_host.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "model/core/hot.h"

namespace rn::host {

namespace {
constexpr uint64_t kPage = 4096;
// Frame numbers of each page size (pcie::kPageShifts): 2^26 of 4 KiB, 2^16 of 2 MiB, 2^9 of 1 GiB.
constexpr unsigned kFrameBits[3] = {26, 16, 9};
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
      iommu_(bridge.iommu()),
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

uint64_t SimHost::frame(int size, uint64_t k) const {
  // Frames handed out in a scrambled order: consecutive virtual pages are never physically
  // adjacent, so every translation path (MTT, page splits) is exercised. Multiplying by an odd
  // constant modulo 2^bits is a bijection: no frame is handed out twice.
  static constexpr uint64_t kBase[3] = {kPageBase, kHugeBase, kGiantBase};
  const uint64_t n = p_.scatter_pages ? (k * 0x9E3779B1ull) & ((1ull << kFrameBits[size]) - 1) : k;
  return kBase[size] + (n << pcie::kPageShifts[size]);
}

uint64_t SimHost::alloc_buffer(uint64_t len, uint64_t page_size) {
  if (len == 0) len = 1;
  if (page_size == 0) page_size = p_.page_size;
  const int size = pcie::page_size_index(page_size);
  if (size < 0)
    throw std::invalid_argument(
        fmt::format("{}: page size {} is not 4 KiB, 2 MiB or 1 GiB", name_, page_size));
  const uint64_t pg = uint64_t(1) << pcie::kPageShifts[size];
  const uint64_t n = (len + pg - 1) / pg;
  if (frames_next_[size] + n > (1ull << kFrameBits[size]))
    throw std::length_error(
        fmt::format("{}: out of application page frames of {} bytes", name_, page_size));
  const uint64_t va = (app_next_ + pg - 1) & ~(pg - 1);
  app_next_ = va + n * pg + kPage;  // a guard page between buffers
  buffers_[va] = Buffer{n * pg, size, frames_next_[size]};
  frames_next_[size] += n;
  app_pages_ += n * (pg / kPage);
  return va;
}

const SimHost::Buffer* SimHost::buffer_at(uint64_t va, uint64_t* base) const {
  auto it = buffers_.upper_bound(va);
  if (it == buffers_.begin()) return nullptr;
  --it;
  if (va - it->first >= it->second.len) return nullptr;
  *base = it->first;
  return &it->second;
}

void SimHost::free_buffer(uint64_t va, uint64_t len) {
  (void)len;       // the whole buffer allocated at va goes
  bridge_.sync();  // writes that have landed go first: none may land in a page given back
  auto it = buffers_.find(va);
  if (it == buffers_.end()) return;
  const Buffer b = it->second;
  const uint64_t pg = uint64_t(1) << pcie::kPageShifts[b.size];
  for (uint64_t i = 0; i < b.len / pg; ++i) mem_.discard(frame(b.size, b.first + i), pg);
  buffers_.erase(it);
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
  if (iommu_ && va >= kIovaBase && va < kIovaEnd) {
    uint64_t pa, span;
    if (!iommu_->lookup(va, &pa, &span))
      throw std::out_of_range(fmt::format("{}: IOVA {:#x} is not mapped", name_, va));
    return pa;
  }
  if (va < kAppBase) return va;
  uint64_t base;
  const Buffer* b = buffer_at(va, &base);
  if (!b)
    throw std::out_of_range(fmt::format("{}: virtual address {:#x} is not mapped", name_, va));
  const unsigned shift = pcie::kPageShifts[b->size];
  const uint64_t off = va - base;
  return frame(b->size, b->first + (off >> shift)) + (off & ((uint64_t(1) << shift) - 1));
}

uint64_t SimHost::page_size_at(uint64_t va) const {
  uint64_t base;
  const Buffer* b = va >= kAppBase ? buffer_at(va, &base) : nullptr;
  return b ? uint64_t(1) << pcie::kPageShifts[b->size] : kPage;
}

template <typename F>
void SimHost::for_each_phys(uint64_t addr, size_t len, F&& fn) const {
  if (addr < kAppBase) {
    fn(addr, len);
    return;
  }
  while (len > 0) {  // 4 KiB at a time: no piece crosses a page of any size
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

uint64_t SimHost::iova_map(uint64_t pa, uint64_t len, int size) {
  const uint64_t pg = uint64_t(1) << pcie::kPageShifts[size];
  const uint64_t iova = (iova_next_ + pg - 1) & ~(pg - 1);
  if (iova + len > kIovaEnd || !iommu_->map(iova, pa, len, size))
    throw std::length_error(fmt::format("{}: out of IOVA space", name_));
  iova_next_ = iova + len;
  iova_ranges_[iova] = len;
  return iova;
}

uint64_t SimHost::dma_alloc(size_t len, size_t align) {
  if (len == 0 || (align & (align - 1))) return 0;
  align = std::max<size_t>(align, 64);
  uint64_t a = (dma_next_ + align - 1) & ~uint64_t(align - 1);
  dma_next_ = a + len;
  mem_.fill(a, len, 0);
  dma_bytes_ += len;
  if (!iommu_) return a;
  // Mapped page by page at a fresh IOVA (the device sees nothing else of the allocator's pages).
  const uint64_t first = a & ~(kPage - 1), end = (a + len + kPage - 1) & ~(kPage - 1);
  return iova_map(first, end - first, 0) + (a - first);
}

void SimHost::dma_free(uint64_t bus_addr, size_t len) {
  // Bump allocator: freed DMA addresses are not reused (the address space is 64-bit and sparse),
  // but the pages wholly inside the allocation go back.
  if (len == 0) return;
  bridge_.sync();
  uint64_t pa = bus_addr;
  if (iommu_) {
    auto it = iova_ranges_.find(bus_addr & ~(kPage - 1));
    if (it == iova_ranges_.end()) return;
    pa = translate(bus_addr);
    iommu_->unmap(it->first, it->second);
    iova_ranges_.erase(it);
    cpu(iommu_->params().invalidate_latency);
  }
  mem_.discard(pa, len);
}

void SimHost::mem_write(uint64_t addr, const void* src, size_t len) { app_write(addr, src, len); }
void SimHost::mem_read(uint64_t addr, void* dst, size_t len) { app_read(addr, dst, len); }

bool SimHost::pin_pages(uint64_t va, uint64_t len, std::vector<uint64_t>* pages) {
  pages->clear();
  if (len == 0 || va + len < va) return false;
  uint64_t first = va / kPage, last = (va + len - 1) / kPage;
  if (iommu_ && va >= kIovaBase && va < kIovaEnd) {
    // DMA memory of this host, already mapped: its IOVAs.
    for (uint64_t p = first; p <= last; ++p) {
      uint64_t pa, span;
      if (!iommu_->lookup(p * kPage, &pa, &span)) return false;
      pages->push_back(p * kPage);
    }
    return true;
  }
  if (va < kAppBase) {
    // Below the application's space: only DMA memory this host allocated is the process's own
    // (identity mapped); everything else is not mapped, as for reg_mr of a stray pointer.
    if (iommu_ || va < kDmaBase || va + len > dma_next_ || va + len > kAppBase) return false;
    for (uint64_t p = first; p <= last; ++p) pages->push_back(p * kPage);
    return true;
  }
  // Every page must be mapped, each buffer's at its own page size.
  for (uint64_t a = va & ~(kPage - 1); a <= last * kPage;) {
    uint64_t base;
    const Buffer* b = buffer_at(a, &base);
    if (!b) return false;
    a = base + b->len;
  }
  if (!iommu_) {
    for (uint64_t p = first; p <= last; ++p) pages->push_back(translate(p * kPage));
    return true;
  }
  // With the IOMMU, the range's pages are mapped at one run of IOVAs (as dma_map_sg merges them),
  // each of its buffer's size, so that the IOVA range is aligned as the virtual one.
  const uint64_t big = page_size_at(va);
  const uint64_t lo = va & ~(big - 1);
  const uint64_t hi = ((va + len - 1) | (kPage - 1)) + 1;
  const uint64_t iova = (iova_next_ + big - 1) & ~(big - 1);
  for (uint64_t a = lo; a < hi;) {
    const uint64_t pg = page_size_at(a);
    const uint64_t at = iova + (a - lo);
    if ((at & (pg - 1)) ||
        !iommu_->map(at, translate(a & ~(pg - 1)), pg, pcie::page_size_index(pg)))
      throw std::logic_error(
          fmt::format("{}: IOMMU mapping of {:#x} at IOVA {:#x} failed", name_, a, at));
    a = (a & ~(pg - 1)) + pg;
  }
  const uint64_t end = iova + (((hi - lo) + big - 1) & ~(big - 1));
  iova_next_ = end;
  iova_ranges_[iova] = end - iova;
  pins_.emplace(std::make_pair(va, len), iova);
  for (uint64_t p = first; p <= last; ++p) pages->push_back(iova + (p * kPage - lo));
  return true;
}

void SimHost::unpin_pages(uint64_t va, uint64_t len) {
  if (!iommu_) return;
  auto it = pins_.find(std::make_pair(va, len));
  if (it == pins_.end()) return;
  bridge_.sync();
  auto r = iova_ranges_.find(it->second);
  if (r != iova_ranges_.end()) {
    iommu_->unmap(r->first, r->second);
    iova_ranges_.erase(r);
  }
  pins_.erase(it);
  cpu(iommu_->params().invalidate_latency);
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
