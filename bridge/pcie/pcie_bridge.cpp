#include "bridge/pcie/pcie_bridge.h"

#include <fmt/core.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <stdexcept>

#include "model/core/hot.h"

namespace rn::pcie {

namespace {
Params with_memory(const BridgeParams& p) {
  Params l = p.link;
  l.read_latency += p.mem_read_latency;
  l.posted_write_latency += p.mem_write_latency;
  return l;
}
// Bytes from a to the end of its 4 KiB page.
uint64_t page_rest(uint64_t a) { return hostmem::kPageSize - (a & hostmem::kPageMask); }
}  // namespace

Bridge::Bridge(Sim& sim, const std::string& name, const BridgeParams& p, hostmem::Memory& mem)
    : sim_(sim),
      name_(name),
      p_(p),
      mem_(mem),
      sparse_(dynamic_cast<hostmem::HostMemory*>(&mem)),
      timing_(with_memory(p)),
      read_lane_(sim.eq.new_lane()),
      stats_(sim.stats, name, "PCIe link and root complex"),
      dma_reads_(stats_.counter("dma_reads", "count", "device DMA read requests")),
      dma_read_bytes_(stats_.counter("dma_read_bytes", "B", "bytes read from host memory")),
      dma_writes_(stats_.counter("dma_writes", "count", "device DMA write requests")),
      dma_write_bytes_(stats_.counter("dma_write_bytes", "B", "bytes written to host memory")),
      mmio_writes_(
          stats_.counter("mmio_writes", "count", "host MMIO writes (doorbells, registers)")),
      mmio_write_bytes_(stats_.counter("mmio_write_bytes", "B",
                                       "bytes of host MMIO writes (4 per register write)")),
      mmio_errors_(stats_.counter("mmio_errors", "count",
                                  "host MMIO bursts refused: length 0 or over 256 bytes")),
      mmio_reads_(stats_.counter("mmio_reads", "count", "host MMIO reads")),
      msis_(stats_.counter("msi", "count", "MSI-X messages sent upstream")),
      dma_errors_(stats_.counter("dma_errors", "count",
                                 "DMA requests refused: range past the end of the address space")),
      read_latency_(
          stats_.histogram("dma_read_latency", "ps", "issue to last byte at the device")) {
  if (!sparse_) p_.share_pages = false;  // page references are the simulated memory's
  auto util = [this](bool up) {
    Tick t = sim_.now();
    if (t == 0) return 0.0;
    const auto& d = up ? timing_.up() : timing_.down();
    return static_cast<double>(d.busy_ps) / static_cast<double>(t);
  };
  stats_.formula("up_tlps", "count", "TLPs device to host",
                 [this] { return double(timing_.up().tlps); });
  stats_.formula("down_tlps", "count", "TLPs host to device",
                 [this] { return double(timing_.down().tlps); });
  stats_.formula("up_wire_bytes", "B", "bytes on the link device to host, with TLP overheads",
                 [this] { return double(timing_.up().wire_bytes); });
  stats_.formula("down_wire_bytes", "B", "bytes on the link host to device, with TLP overheads",
                 [this] { return double(timing_.down().wire_bytes); });
  stats_.formula("up_utilisation", "ratio", "busy time / simulated time, device to host",
                 [util] { return util(true); });
  stats_.formula("down_utilisation", "ratio", "busy time / simulated time, host to device",
                 [util] { return util(false); });
  stats_.formula("tlp_layer_gbps", "Gb/s", "link rate after DLLP and SKIP overheads",
                 [this] { return timing_.tlp_gbps(); });
}

Bridge::~Bridge() { sim_.stats.remove(&stats_); }

void Bridge::attach_iommu(Iommu* m) {
  iommu_ = m;
  // Requests the device translated itself (ATS) pass the root complex untranslated.
  timing_.set_translation(m && !m->params().ats ? m : nullptr);
  if (m) p_.share_pages = false;  // page references are by physical page: not with IOVAs
}

void Bridge::map_pieces(Job* j) {
  j->gen = iommu_->generation();
  j->pieces.clear();
  for (int i = 0; i < j->n; ++i) {
    uint64_t a = j->sg[i].addr, left = j->sg[i].len;
    while (left) {
      uint64_t pa = kUnmapped, span = left;
      if (!iommu_->lookup(a, &pa, &span)) {
        pa = kUnmapped;
        span = page_rest(a);  // faults page by page
      }
      const uint32_t k = static_cast<uint32_t>(std::min(span, left));
      j->pieces.push_back(Job::Piece{pa, a, k});
      a += k;
      left -= k;
    }
  }
}

void Bridge::read_pieces(Job* j) {
  if (j->gen != iommu_->generation()) map_pieces(j);  // unmapped since: as it is now
  uint8_t* d = j->dst;
  for (const Job::Piece& p : j->pieces) {
    if (p.pa == kUnmapped) {
      std::memset(d, 0xFF, p.len);  // an Unsupported Request completion: all ones
      iommu_->fault(p.iova, p.len, false);
      j->failed = true;
    } else if (sparse_) {
      sparse_->read(p.pa, d, p.len);
    } else {
      mem_.dma_read(p.pa, d, p.len);
    }
    d += p.len;
  }
}

void Bridge::write_pieces(Job* j, const uint8_t* s) {
  if (j->gen != iommu_->generation()) map_pieces(j);
  for (const Job::Piece& p : j->pieces) {
    if (p.pa == kUnmapped) {
      iommu_->fault(p.iova, p.len, true);  // dropped
    } else {
      if (sparse_)
        sparse_->write(p.pa, s, p.len);
      else
        mem_.dma_write(p.pa, s, p.len);
    }
    s += p.len;
  }
}

Tick Bridge::ats_ready(const SgEntry* sg, int n, Tick start) {
  Tick t = start;
  for (int i = 0; i < n; ++i) {
    uint64_t a = sg[i].addr, left = sg[i].len;
    while (left) {  // each page the entry touches
      t = std::max(t, iommu_->ats_ready(a, start, p_.link.link_latency));
      uint64_t pa, span;
      if (!iommu_->lookup(a, &pa, &span)) span = page_rest(a);
      const uint64_t k = std::min(span, left);
      a += k;
      left -= k;
    }
  }
  return t;
}

RN_HOT Bridge::Job* Bridge::get_job() {
  if (free_jobs_.empty()) {
    all_jobs_.push_back(std::make_unique<Job>());
    return all_jobs_.back().get();
  }
  Job* j = free_jobs_.back();
  free_jobs_.pop_back();
  return j;
}

RN_HOT void Bridge::put_job(Job* j) {
  j->done.reset();
  j->release.reset();
  j->borrowed = nullptr;
  j->share_out = nullptr;
  j->share_in = nullptr;
  j->has_event = false;
  j->failed = false;
  j->n = 0;
  free_jobs_.push_back(j);
}

RN_HOT bool Bridge::check_sg(const SgEntry* sg, int n, const char* what) {
  if (n < 0 || n > kMaxSg)  // a model bug, not something a driver can cause
    throw std::logic_error(
        fmt::format("{}: {} with {} scatter/gather entries (max {})", name_, what, n, int(kMaxSg)));
  for (int i = 0; i < n; ++i)
    if (!in_address_space(sg[i].addr, sg[i].len)) {
      // Devices check what drivers give them before they DMA; should one not, the root complex
      // refuses the request (Unsupported Request) and the simulation goes on.
      ++dma_errors_;
      RN_LOG(sim_, LogCat::kError, name_,
             "{} at {:#x}+{} runs past the end of the address space: refused", what, sg[i].addr,
             sg[i].len);
      return false;
    }
  return true;
}

void Bridge::mmio_write32(uint64_t offset, uint32_t value) {
  ++mmio_writes_;
  mmio_write_bytes_ += 4;
  Tick arrive = timing_.mmio_write(now(), 4);
  sim_.eq.at(arrive, [this, offset, value] {
    if (device_) device_->mmio_write32(offset, value);
  });
}

void Bridge::mmio_write(uint64_t offset, const void* data, size_t size) {
  if (size == 0 || size > kMaxMmioBurst) {
    ++mmio_errors_;
    RN_LOG(sim_, LogCat::kError, name_, "MMIO burst of {} bytes at {:#x} refused (1..{})", size,
           offset, kMaxMmioBurst);
    return;
  }
  const uint32_t len = static_cast<uint32_t>(size);
  ++mmio_writes_;
  mmio_write_bytes_ += len;
  Burst* b = nullptr;
  if (free_bursts_.empty()) {
    all_bursts_.push_back(std::make_unique<Burst>());
    b = all_bursts_.back().get();
  } else {
    b = free_bursts_.back();
    free_bursts_.pop_back();
  }
  std::memcpy(b->data, data, len);
  Tick arrive = timing_.mmio_write(now(), len);
  sim_.eq.at(arrive, [this, offset, b, len] {
    if (device_) device_->mmio_write(offset, b->data, len);
    free_bursts_.push_back(b);
  });
}

uint32_t Bridge::mmio_read32(uint64_t offset) {
  ++mmio_reads_;
  Tick t0 = now();
  Tick back = timing_.mmio_read(t0, 4);
  // The device answers half way: its register value is sampled then.
  Tick sample = t0 + (back - t0) / 2;
  sc_core::wait(sc_core::sc_time::from_value(sample - t0));
  uint32_t v = device_ ? device_->mmio_read32(offset) : ~0u;
  sc_core::wait(sc_core::sc_time::from_value(back - sample));
  return v;
}

void Bridge::mmio_read32(uint64_t offset, std::function<void(uint32_t)> done) {
  ++mmio_reads_;
  Tick t0 = now();
  Tick back = timing_.mmio_read(t0, 4);
  auto* d = new std::function<void(uint32_t)>(std::move(done));  // not on the packet path
  sim_.eq.at(t0 + (back - t0) / 2, [this, offset, back, d] {
    uint32_t v = device_ ? device_->mmio_read32(offset) : ~0u;
    sim_.eq.at(back, [d, v] {
      (*d)(v);
      delete d;
    });
  });
}

RN_HOT void Bridge::dma_read(const SgEntry* sg, int n, uint8_t* dst, Tick not_before, Callback done,
                             PageRef* share) {
  if (!check_sg(sg, n, "DMA read")) {  // refused: all ones, as a failed completion reads
    for (int i = 0; i < n; ++i) {
      std::memset(dst, 0xFF, sg[i].len);
      dst += sg[i].len;
    }
    if (done) sim_.eq.at(std::max(now(), not_before), std::move(done));
    return;
  }
  Tick start = std::max(now(), not_before);
  if (iommu_ && iommu_->params().ats) start = ats_ready(sg, n, start);
  Tick end = start;
  uint64_t total = 0;
  Job* j = get_job();
  for (int i = 0; i < n; ++i) {
    j->sg[i] = sg[i];
    total += sg[i].len;
    if (sg[i].len) end = std::max(end, timing_.dma_read(start, sg[i].addr, sg[i].len));
  }
  j->n = n;
  j->dst = dst;
  j->done = std::move(done);
  assert((!share || !*share) && "DMA read into a page reference already held");
  j->share_out = p_.share_pages && share && whole_page(sg, n) ? share : nullptr;
  if (iommu_) {
    map_pieces(j);
  } else if (j->share_out) {
    sparse_->prefetch_for_ref(sg[0].addr);  // referenced at `end`
  } else if (sparse_) {
    for (int i = 0; i < n; ++i) sparse_->prefetch_for_read(sg[i].addr, sg[i].len);  // read at `end`
  }
  ++dma_reads_;
  dma_read_bytes_ += total;
  read_latency_.add(end - now());
  sim_.eq.at(read_lane_, end, [this, j] {
    sync();  // the read sees every write that completed before it
    if (j->share_out) *j->share_out = sparse_->ref_page(j->sg[0].addr);
    if (iommu_) {
      read_pieces(j);
    } else if (!j->share_out || !*j->share_out) {  // no reference (never written): the bytes
      uint8_t* d = j->dst;
      for (int i = 0; i < j->n; ++i) {
        if (sparse_)
          sparse_->read(j->sg[i].addr, d, j->sg[i].len);
        else
          mem_.dma_read(j->sg[i].addr, d, j->sg[i].len);
        d += j->sg[i].len;
      }
    }
    Callback cb = std::move(j->done);
    const bool failed = j->failed;
    put_job(j);
    if (!cb) return;
    read_failed_ = failed;
    cb();
    read_failed_ = false;
  });
}

void Bridge::dma_write(const SgEntry* sg, int n, const uint8_t* src, Tick not_before,
                       Callback done) {
  queue_write(sg, n, src, not_before, std::move(done), {}, nullptr);
}

RN_HOT Tick Bridge::dma_write_borrowed(const SgEntry* sg, int n, const uint8_t* src,
                                       Tick not_before, Callback release, const PageRef* share) {
  return queue_write(sg, n, src, not_before, {}, std::move(release), share);
}

RN_HOT Tick Bridge::queue_write(const SgEntry* sg, int n, const uint8_t* src, Tick not_before,
                                Callback done, Callback release, const PageRef* share) {
  if (!check_sg(sg, n, "DMA write")) {  // refused: nothing is written
    const Tick t = std::max(now(), not_before);
    if (release) release();
    if (done) sim_.eq.at(t, std::move(done));
    return t;
  }
  sync();
  Tick start = std::max(now(), not_before);
  if (iommu_ && iommu_->params().ats) start = ats_ready(sg, n, start);
  Tick end = start;
  uint64_t total = 0;
  bool watched = false;
  for (int i = 0; i < n; ++i) {
    total += sg[i].len;
    if (sg[i].len) end = std::max(end, timing_.dma_write(start, sg[i].addr, sg[i].len));
    if (iommu_) continue;  // physical addresses: below
    if (host_ && host_->watching(sg[i].addr, sg[i].len)) watched = true;
    if (sparse_) sparse_->prefetch_for_write(sg[i].addr, sg[i].len);  // applied at `end` or later
  }
  if (share && *share && total != hostmem::kPageSize)
    throw std::logic_error(
        fmt::format("{}: DMA write of {} bytes from a page reference (4096)", name_, total));
  if (total == 0) {  // nothing to write: complete now (keeps the in-flight FIFO in time order)
    if (release) release();
    if (done) sim_.eq.at(start, std::move(done));
    return start;
  }
  Job* j = get_job();
  std::copy(sg, sg + n, j->sg);
  j->n = n;
  if (iommu_) {
    map_pieces(j);
    for (const Job::Piece& p : j->pieces)
      if (p.pa != kUnmapped && host_ && host_->watching(p.pa, p.len)) watched = true;
  }
  if (release) {
    j->borrowed = src;
    j->release = std::move(release);
    j->share_in = share && *share ? share : nullptr;
  } else {
    j->data.assign(src, src + total);
  }
  j->done = std::move(done);
  j->when = end;
  ++dma_writes_;
  dma_write_bytes_ += total;
  // Posted writes complete in issue order (one direction, one latency): a FIFO.
  pending_.push_back(j);
  // An event only when someone needs the exact moment: a completion callback, or a host thread
  // waiting for this memory. Otherwise the write is applied by the next sync().
  j->has_event = j->done || watched;
  if (j->has_event) {
    sim_.eq.at(end, [this, j] {
      sync();
      Callback cb = std::move(j->done);
      put_job(j);
      if (cb) cb();
    });
  }
  return end;
}

RN_HOT void Bridge::apply(Job* j) {
  const uint8_t* s = j->borrowed ? j->borrowed : j->data.data();
  if (j->share_in) s = j->share_in->page;
  if (iommu_) {
    write_pieces(j, s);
  } else if (!j->share_in || !p_.share_pages || !whole_page(j->sg, j->n) ||
             !sparse_->map_shared(j->sg[0].addr, *j->share_in)) {
    for (int i = 0; i < j->n; ++i) {
      if (sparse_)
        sparse_->write(j->sg[i].addr, s, j->sg[i].len);
      else
        mem_.dma_write(j->sg[i].addr, s, j->sg[i].len);
      s += j->sg[i].len;
    }
  }
  if (j->release) {
    Callback r = std::move(j->release);
    j->borrowed = nullptr;
    r();
  }
  if (!host_) return;
  if (iommu_) {
    for (const Job::Piece& p : j->pieces)
      if (p.pa != kUnmapped) host_->on_dma_write(p.pa, p.len);
    return;
  }
  for (int i = 0; i < j->n; ++i) host_->on_dma_write(j->sg[i].addr, j->sg[i].len);
}

RN_HOT void Bridge::sync() { apply_until(now()); }

void Bridge::sync_all() { apply_until(kTickNever); }

void Bridge::apply_until(Tick t) {
  while (pending_head_ < pending_.size() && pending_[pending_head_]->when <= t) {
    Job* j = pending_[pending_head_++];
    apply(j);
    if (!j->has_event) put_job(j);  // else its event recycles it
  }
  if (pending_head_ == pending_.size()) {
    pending_.clear();
    pending_head_ = 0;
  }
}

Tick Bridge::pending_write_time(uint64_t addr, uint64_t len) const {
  for (size_t i = pending_head_; i < pending_.size(); ++i) {
    const Job* j = pending_[i];
    if (iommu_) {
      for (const Job::Piece& p : j->pieces)
        if (p.pa != kUnmapped && addr < p.pa + p.len && p.pa < addr + len) return j->when;
      continue;
    }
    for (int k = 0; k < j->n; ++k)
      if (addr < j->sg[k].addr + j->sg[k].len && j->sg[k].addr < addr + len) return j->when;
  }
  return kTickNever;
}

Tick Bridge::writes_done() const {
  // Posted writes complete in issue order: the last one queued is the last to land.
  Tick t = std::max(now(), last_msi_);
  if (pending_head_ < pending_.size()) t = std::max(t, pending_.back()->when);
  return t;
}

void Bridge::msi(uint64_t addr, uint32_t data, Tick not_before) {
  ++msis_;
  Tick t = timing_.msi(std::max(now(), not_before));
  last_msi_ = std::max(last_msi_, t);
  sim_.eq.at(t, [this, addr, data] {
    if (host_) host_->on_msi(addr, data);
  });
}

}  // namespace rn::pcie
