#include "bridge/pcie/link_timing.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model/core/hot.h"

namespace rn::pcie {

// ---------------------------------------------------------------- CreditPool

void CreditPool::reset(uint32_t limit) {
  limit_ = limit;
  size_t cap = 1;
  while (cap < limit) cap <<= 1;  // at most `limit` batches can be outstanding
  ring_.assign(limit ? cap : 0, Entry{0, 0, 0, 0, 0, 0});
  mask_ = cap - 1;
  head_ = count_ = 0;
  consumed_ = 0;
}

void UnitRing::reset(uint32_t limit) {
  limit_ = limit;
  size_t cap = 1;
  while (cap < limit) cap <<= 1;
  ring_.assign(limit ? cap : 0, 0);
  mask_ = cap - 1;
  head_ = count_ = 0;
}

// ---------------------------------------------------------------- LinkTiming

LinkTiming::LinkTiming(const Params& p, bool batched) : p_(p), batched_(batched) {
  std::string err = p.validate();
  if (!err.empty()) throw std::invalid_argument(err);
  raw_gbps_ = pcie::raw_gbps(p.gen, p.lanes);
  tlp_gbps_ = pcie::tlp_gbps(p);
  ps_per_byte_ = 8.0 * 1e12 / (tlp_gbps_ * 1e9);
  ps_per_byte_fx_ = static_cast<uint64_t>(std::llround(std::ldexp(ps_per_byte_, kFxBits)));
  for (Dir* d : {&up_, &down_}) {
    d->ph.reset(p.ph_credits);
    d->pd.reset(p.pd_credits);
    d->nph.reset(p.nph_credits);
    d->cplh.reset(p.cplh_credits);
    d->cpld.reset(p.cpld_credits);
  }
  tags_.reset(p.read_tags);
  for_each_cpl(0, p.mrrs, p.mps, p.rcb, p.cpl_rcb_chunks, [&](uint64_t, uint32_t cn) {
    ++full_req_cpls_;
    full_req_cpl_wire_ += cpld_wire_bytes(p, cn);
  });
  full_req_cpl_ser_ = ser(full_req_cpl_wire_);
}

double LinkTiming::raw_gbps() const { return raw_gbps_; }
double LinkTiming::tlp_gbps() const { return tlp_gbps_; }

FxTime LinkTiming::send(Dir& d, Tick ready, uint64_t k, uint64_t wire, uint64_t payload) {
  FxTime start = std::max(to_fx(ready), d.busy);
  FxTime t = ser(wire);
  d.busy = start + t;
  d.busy_total += t;
  d.stats.tlps += k;
  d.stats.payload_bytes += payload;
  d.stats.wire_bytes += wire;
  return start;
}

Tick LinkTiming::wait_credits(Dir& d, Tick ready, CreditPool& h, CreditPool* dpool,
                              uint32_t dcred) {
  Tick c = h.ready(1);
  if (dpool) c = std::max(c, dpool->ready(dcred));
  Tick free_at = std::max(ready, d.busy_until());
  if (c > free_at) {
    stalls_.credit_waits++;
    stalls_.credit_wait_ps += c - free_at;
  }
  return std::max(ready, c);
}

Tick LinkTiming::wait_nph(Dir& d, Tick ready) {
  Tick c = d.nph.ready();
  Tick free_at = std::max(ready, d.busy_until());
  if (c > free_at) {
    stalls_.credit_waits++;
    stalls_.credit_wait_ps += c - free_at;
  }
  return std::max(ready, c);
}

RN_HOT Tick LinkTiming::dma_write(Tick now, uint64_t addr, uint64_t len) {
  if (len == 0) return now;
  const Tick credit_back = p_.link_latency + p_.credit_return_latency;
  // Batched: when the credits for every TLP of this transfer are back by the time the link is
  // free, no TLP can wait for one; each run of equal TLPs is then timed in one step, and its
  // credits are one entry of each pool. Same times as TLP by TLP.
  if (batched_ && !xlat_) {
    uint64_t ntlp = count_tlps(addr, len, p_.mps);
    // Data credits of all TLPs: a partial first TLP, full MPS ones, a partial last one.
    uint64_t dc_total = 0;
    for_each_tlp_run(addr, len, p_.mps,
                     [&](uint64_t k, uint32_t n) { dc_total += k * data_credits(n); });
    FxTime free_at = std::max(to_fx(now), up_.busy);
    if (up_.ph.fits(ntlp) && up_.pd.fits(dc_total) &&
        to_fx(up_.ph.peek(static_cast<uint32_t>(ntlp))) <= free_at &&
        to_fx(up_.pd.peek(static_cast<uint32_t>(dc_total))) <= free_at) {
      FxTime end = 0;
      for_each_tlp_run(addr, len, p_.mps, [&](uint64_t k, uint32_t n) {
        uint32_t w = mwr_wire_bytes(p_, n);
        uint64_t t = ser1(w);
        FxTime start = send(up_, now, k, k * w, k * n);
        up_.ph.consume_run(k, 1, start + t, t, credit_back);
        up_.pd.consume_run(k, data_credits(n), start + t, t, credit_back);
        end = start + static_cast<FxTime>(k) * t;
      });
      return ceil_fx(end) + p_.link_latency + p_.posted_write_latency;
    }
  }
  return dma_write_tlps(now, addr, len);
}

// Out of the hot path (a TLP may wait for a credit, or batching is off): its code stays out of
// the instruction cache lines the batched path uses.
RN_NOINLINE Tick LinkTiming::dma_write_tlps(Tick now, uint64_t addr, uint64_t len) {
  Tick visible = now;
  for_each_tlp(addr, len, p_.mps, [&](uint64_t a, uint32_t n) {
    uint32_t dc = data_credits(n);
    Tick ready = wait_credits(up_, now, up_.ph, &up_.pd, dc);
    Tick end = send1(up_, ready, mwr_wire_bytes(p_, n), n);
    Tick at_rc = end + p_.link_latency;
    up_.ph.consume(1, at_rc + p_.credit_return_latency);
    up_.pd.consume(dc, at_rc + p_.credit_return_latency);
    if (xlat_) {  // translated, then in order behind every write before it
      last_visible_ = std::max(last_visible_, xlat_->ready(a, at_rc) + p_.posted_write_latency);
      visible = last_visible_;
    } else {
      visible = at_rc + p_.posted_write_latency;
    }
  });
  return visible;
}

RN_HOT FxTime LinkTiming::cpl_cut(uint64_t a, uint32_t n, uint64_t* k, uint64_t* wire) const {
  if (n == p_.mrrs && (a & (p_.mrrs - 1)) == 0) {  // a whole aligned request: computed once
    *k = full_req_cpls_;
    *wire = full_req_cpl_wire_;
    return full_req_cpl_ser_;
  }
  *k = *wire = 0;
  for_each_cpl(a, n, p_.mps, p_.rcb, p_.cpl_rcb_chunks, [&](uint64_t, uint32_t cn) {
    ++*k;
    *wire += cpld_wire_bytes(p_, cn);
  });
  return ser(*wire);
}

Tick LinkTiming::completions(uint64_t a, uint32_t n, Tick data_at) {
  Tick last = data_at;
  for_each_cpl(a, n, p_.mps, p_.rcb, p_.cpl_rcb_chunks, [&](uint64_t, uint32_t cn) {
    uint32_t dc = data_credits(cn);
    Tick r = wait_credits(down_, data_at, down_.cplh, &down_.cpld, dc);
    last = send1(down_, r, cpld_wire_bytes(p_, cn), cn) + p_.link_latency;
    down_.cplh.consume(1, last + p_.credit_return_latency);
    down_.cpld.consume(dc, last + p_.credit_return_latency);
  });
  return last;
}

RN_HOT Tick LinkTiming::dma_read(Tick now, uint64_t addr, uint64_t len) {
  if (len == 0) return now;
  const uint32_t mrd = mrd_wire_bytes(p_);
  const Tick nph_back = p_.credit_return_latency;  // after the MRd's arrival at the root complex
  Tick done = now;
  if (batched_ && !xlat_ && down_.cplh.infinite() && down_.cpld.infinite()) {
    // Batched: requests one by one (a tag or a non-posted credit may come back later, and no
    // stall is counted when none does), each request's completions in one step; link state and
    // statistics in locals, written back once. The same arithmetic as the TLP-by-TLP path below,
    // which also serves finite completion credits.
    const uint64_t t = ser1(mrd);
    FxTime up = up_.busy, down = down_.busy;
    uint64_t nreq = 0, ncpl = 0, cpl_wire = 0;
    // The loop's state in locals (the rings' too): nothing it stores can then alias what it reads.
    UnitRing::Local tags(tags_), nph(up_.nph);
    const Tick link_latency = p_.link_latency, read_latency = p_.read_latency;
    const uint32_t mrrs = p_.mrrs;
    const uint64_t full_cpls = full_req_cpls_, full_wire = full_req_cpl_wire_;
    const FxTime full_ser = full_req_cpl_ser_;
    for_each_tlp(addr, len, p_.mrrs, [&](uint64_t a, uint32_t n) {
      Tick tag_at = tags.ready();
      Tick ready = std::max(now, tag_at);
      Tick nph_at = nph.ready();
      if (tag_at > now || nph_at > now) {  // stall accounting, as in the path below
        Tick up_free = ceil_fx(up);
        Tick link_free = std::max(now, up_free);
        if (tag_at > link_free) {
          stalls_.tag_waits++;
          stalls_.tag_wait_ps += tag_at - link_free;
        }
        Tick free_at = std::max(ready, up_free);
        if (nph_at > free_at) {
          stalls_.credit_waits++;
          stalls_.credit_wait_ps += nph_at - free_at;
        }
        ready = std::max(ready, nph_at);
      }
      up = std::max(to_fx(ready), up) + t;
      ++nreq;
      Tick at_rc = ceil_fx(up) + link_latency;
      nph.take(at_rc + nph_back);
      uint64_t k = full_cpls, w = full_wire;  // a whole aligned request (cpl_cut's first case)
      const FxTime tw = n == mrrs && (a & (mrrs - 1)) == 0 ? full_ser : cpl_cut(a, n, &k, &w);
      down = std::max(to_fx(at_rc + read_latency), down) + tw;
      ncpl += k;
      cpl_wire += w;
      done = ceil_fx(down) + link_latency;
      tags.take(done);
    });
    tags.store(tags_);
    nph.store(up_.nph);
    up_.busy = up;
    up_.busy_total += static_cast<FxTime>(nreq) * t;
    up_.stats.tlps += nreq;
    up_.stats.wire_bytes += nreq * mrd;
    down_.busy = down;
    down_.busy_total += ser(cpl_wire);
    down_.stats.tlps += ncpl;
    down_.stats.wire_bytes += cpl_wire;
    down_.stats.payload_bytes += len;
    return done;
  }
  return dma_read_tlps(now, addr, len);
}

// TLP by TLP (finite completion credits, or batching off): out of the hot path, as dma_write_tlps.
RN_NOINLINE Tick LinkTiming::dma_read_tlps(Tick now, uint64_t addr, uint64_t len) {
  const uint32_t mrd = mrd_wire_bytes(p_);
  const Tick nph_back = p_.credit_return_latency;
  Tick done = now;
  for_each_tlp(addr, len, p_.mrrs, [&](uint64_t a, uint32_t n) {
    // A read tag, then a non-posted header credit of the root complex.
    Tick tag_at = tags_.ready();
    Tick link_free = std::max(now, up_.busy_until());
    if (tag_at > link_free) {
      stalls_.tag_waits++;
      stalls_.tag_wait_ps += tag_at - link_free;
    }
    Tick ready = wait_nph(up_, std::max(now, tag_at));
    Tick at_rc = send1(up_, ready, mrd, 0) + p_.link_latency;
    up_.nph.take(at_rc + nph_back);
    const Tick translated = xlat_ ? xlat_->ready(a, at_rc) : at_rc;
    done = completions(a, n, translated + p_.read_latency);
    tags_.take(done);
  });
  return done;
}

RN_HOT Tick LinkTiming::mmio_write(Tick now, uint32_t len) {
  Tick t0 = now + p_.mmio_cpu_latency;
  Tick arrive = t0;
  for_each_tlp(0, len, p_.mps, [&](uint64_t, uint32_t n) {
    uint32_t dc = data_credits(n);
    Tick ready = wait_credits(down_, t0, down_.ph, &down_.pd, dc);
    Tick end = send1(down_, ready, mwr_wire_bytes(p_, n), n);
    arrive = end + p_.link_latency;
    down_.ph.consume(1, arrive + p_.credit_return_latency);
    down_.pd.consume(dc, arrive + p_.credit_return_latency);
  });
  return arrive;
}

Tick LinkTiming::mmio_read(Tick now, uint32_t len) {
  if (len == 0 || len > 4096) throw std::invalid_argument("pcie.mmio_read: len must be 1..4096");
  Tick t0 = now + p_.mmio_cpu_latency;
  Tick ready = wait_nph(down_, t0);
  Tick end = send1(down_, ready, mrd_wire_bytes(p_), 0);
  Tick at_dev = end + p_.link_latency;
  down_.nph.take(at_dev + p_.credit_return_latency);
  Tick data_at = at_dev + p_.mmio_read_device_latency;
  Tick last = data_at;
  for_each_cpl(0, len, p_.mps, p_.rcb, false, [&](uint64_t, uint32_t cn) {
    uint32_t dc = data_credits(cn);
    Tick r = wait_credits(up_, data_at, up_.cplh, &up_.cpld, dc);
    Tick e = send1(up_, r, cpld_wire_bytes(p_, cn), cn);
    last = e + p_.link_latency;
    up_.cplh.consume(1, last + p_.credit_return_latency);
    up_.cpld.consume(dc, last + p_.credit_return_latency);
  });
  return last + p_.mmio_cpu_latency;
}

Tick LinkTiming::msi(Tick now) {
  Tick ready = wait_credits(up_, now, up_.ph, &up_.pd, 1);
  Tick end = send1(up_, ready, mwr_wire_bytes(p_, 4), 4);
  Tick at_rc = end + p_.link_latency;
  up_.ph.consume(1, at_rc + p_.credit_return_latency);
  up_.pd.consume(1, at_rc + p_.credit_return_latency);
  return at_rc + p_.posted_write_latency;
}

}  // namespace rn::pcie
