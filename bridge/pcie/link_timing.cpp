#include "bridge/pcie/link_timing.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace rn::pcie {

// ---------------------------------------------------------------- CreditPool

void CreditPool::reset(uint32_t limit) {
  limit_ = limit;
  size_t cap = 1;
  while (cap < limit) cap <<= 1;  // at most `limit` batches can be outstanding
  ring_.assign(limit ? cap : 0, Entry{0, 0});
  mask_ = cap - 1;
  head_ = count_ = 0;
  consumed_ = 0;
}

// ---------------------------------------------------------------- LinkTiming

LinkTiming::LinkTiming(const Params& p) : p_(p) {
  std::string err = p.validate();
  if (!err.empty()) throw std::invalid_argument(err);
  raw_gbps_ = pcie::raw_gbps(p.gen, p.lanes);
  tlp_gbps_ = pcie::tlp_gbps(p);
  ps_per_byte_ = 8.0 * 1e12 / (tlp_gbps_ * 1e9);
  for (Dir* d : {&up_, &down_}) {
    d->ph.reset(p.ph_credits);
    d->pd.reset(p.pd_credits);
    d->nph.reset(p.nph_credits);
    d->cplh.reset(p.cplh_credits);
    d->cpld.reset(p.cpld_credits);
  }
  tags_.reset(p.read_tags);
}

double LinkTiming::raw_gbps() const { return raw_gbps_; }
double LinkTiming::tlp_gbps() const { return tlp_gbps_; }

Tick LinkTiming::send(Dir& d, Tick ready, uint32_t wire, uint32_t payload) {
  if (ready > d.busy) {  // link idle in between (busy + frac < busy + 1 <= ready)
    d.busy = ready;
    d.frac = 0.0;
  }
  double t = static_cast<double>(wire) * ps_per_byte_;
  double exact = d.frac + t;
  Tick whole = static_cast<Tick>(exact);  // exact >= 0: truncation is floor
  d.busy += whole;
  d.frac = exact - static_cast<double>(whole);
  d.busy_exact += t;
  d.stats.tlps++;
  d.stats.payload_bytes += payload;
  d.stats.wire_bytes += wire;
  return d.busy_until();
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

Tick LinkTiming::dma_write(Tick now, uint64_t addr, uint64_t len) {
  Tick visible = now;
  // Fast path: when the credits for every TLP of this transfer are already back by the time
  // the link is free, no TLP can wait for one, and the per-TLP credit checks are skipped. (The
  // same timing as the general path but for a sub-picosecond tie at the credit's exact return.)
  uint64_t ntlp = count_tlps(addr, len, p_.mps);
  // Data credits of all TLPs: a partial first TLP, full MPS ones, a partial last one (4 KB is a
  // multiple of MPS, so MPS boundaries are the only cuts).
  uint64_t dc_total = 0;
  if (len) {
    uint32_t first = first_tlp_len(addr, len, p_.mps);
    uint64_t rest = len - first;
    dc_total = data_credits(first) + (rest / p_.mps) * data_credits(p_.mps) +
               data_credits(static_cast<uint32_t>(rest % p_.mps));
  }
  Tick free_at = std::max(now, up_.busy_until());
  bool fast = up_.ph.fits(ntlp) && up_.pd.fits(dc_total) && up_.ph.peek(ntlp) <= free_at &&
              up_.pd.peek(static_cast<uint32_t>(dc_total)) <= free_at;
  for_each_tlp(addr, len, p_.mps, [&](uint64_t, uint32_t n) {
    uint32_t dc = data_credits(n);
    Tick ready = fast ? now : wait_credits(up_, now, up_.ph, &up_.pd, dc);
    Tick end = send(up_, ready, mwr_wire_bytes(p_, n), n);
    Tick at_rc = end + p_.link_latency;
    up_.ph.consume(1, at_rc + p_.credit_return_latency);
    up_.pd.consume(dc, at_rc + p_.credit_return_latency);
    visible = at_rc + p_.posted_write_latency;
  });
  return visible;
}

Tick LinkTiming::dma_read(Tick now, uint64_t addr, uint64_t len) {
  Tick done = now;
  // Fast path as in dma_write: tags and non-posted credits for every request already free.
  uint64_t nreq = count_tlps(addr, len, p_.mrrs);
  Tick free_at = std::max(now, up_.busy_until());
  bool fast = tags_.fits(nreq) && up_.nph.fits(nreq) &&
              tags_.peek(static_cast<uint32_t>(nreq)) <= free_at &&
              up_.nph.peek(static_cast<uint32_t>(nreq)) <= free_at;
  const bool cpl_free = down_.cplh.infinite() && down_.cpld.infinite();
  for_each_tlp(addr, len, p_.mrrs, [&](uint64_t a, uint32_t n) {
    Tick ready = now;
    if (!fast) {
      // A read tag, then a non-posted header credit of the root complex.
      Tick tag_at = tags_.ready(1);
      Tick link_free = std::max(now, up_.busy_until());
      if (tag_at > link_free) {
        stalls_.tag_waits++;
        stalls_.tag_wait_ps += tag_at - link_free;
      }
      ready = wait_credits(up_, std::max(now, tag_at), up_.nph, nullptr, 0);
    }
    Tick end = send(up_, ready, mrd_wire_bytes(p_), 0);
    Tick at_rc = end + p_.link_latency;
    up_.nph.consume(1, at_rc + p_.credit_return_latency);
    // Completions: data ready read_latency after the request; back-to-back downstream.
    Tick data_at = at_rc + p_.read_latency;
    Tick last = data_at;
    for_each_cpl(a, n, p_.mps, p_.rcb, p_.cpl_rcb_chunks, [&](uint64_t, uint32_t cn) {
      uint32_t dc = data_credits(cn);
      Tick r = cpl_free ? data_at : wait_credits(down_, data_at, down_.cplh, &down_.cpld, dc);
      Tick e = send(down_, r, cpld_wire_bytes(p_, cn), cn);
      last = e + p_.link_latency;
      down_.cplh.consume(1, last + p_.credit_return_latency);
      down_.cpld.consume(dc, last + p_.credit_return_latency);
    });
    tags_.consume(1, last);  // the tag is free once the last completion has arrived
    done = last;
  });
  return done;
}

Tick LinkTiming::mmio_write(Tick now, uint32_t len) {
  Tick t0 = now + p_.mmio_cpu_latency;
  Tick arrive = t0;
  for_each_tlp(0, len, p_.mps, [&](uint64_t, uint32_t n) {
    uint32_t dc = data_credits(n);
    Tick ready = wait_credits(down_, t0, down_.ph, &down_.pd, dc);
    Tick end = send(down_, ready, mwr_wire_bytes(p_, n), n);
    arrive = end + p_.link_latency;
    down_.ph.consume(1, arrive + p_.credit_return_latency);
    down_.pd.consume(dc, arrive + p_.credit_return_latency);
  });
  return arrive;
}

Tick LinkTiming::mmio_read(Tick now, uint32_t len) {
  if (len == 0 || len > 4096) throw std::invalid_argument("pcie.mmio_read: len must be 1..4096");
  Tick t0 = now + p_.mmio_cpu_latency;
  Tick ready = wait_credits(down_, t0, down_.nph, nullptr, 0);
  Tick end = send(down_, ready, mrd_wire_bytes(p_), 0);
  Tick at_dev = end + p_.link_latency;
  down_.nph.consume(1, at_dev + p_.credit_return_latency);
  Tick data_at = at_dev + p_.mmio_read_device_latency;
  Tick last = data_at;
  for_each_cpl(0, len, p_.mps, p_.rcb, false, [&](uint64_t, uint32_t cn) {
    uint32_t dc = data_credits(cn);
    Tick r = wait_credits(up_, data_at, up_.cplh, &up_.cpld, dc);
    Tick e = send(up_, r, cpld_wire_bytes(p_, cn), cn);
    last = e + p_.link_latency;
    up_.cplh.consume(1, last + p_.credit_return_latency);
    up_.cpld.consume(dc, last + p_.credit_return_latency);
  });
  return last + p_.mmio_cpu_latency;
}

Tick LinkTiming::msi(Tick now) {
  Tick ready = wait_credits(up_, now, up_.ph, &up_.pd, 1);
  Tick end = send(up_, ready, mwr_wire_bytes(p_, 4), 4);
  Tick at_rc = end + p_.link_latency;
  up_.ph.consume(1, at_rc + p_.credit_return_latency);
  up_.pd.consume(1, at_rc + p_.credit_return_latency);
  return at_rc + p_.posted_write_latency;
}

}  // namespace rn::pcie
