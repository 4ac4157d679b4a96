// Perftest's internals shared by its source files (perftest.cpp, perftest_mixed.cpp): the
// out-of-band exchange between the two sides and what each side holds.
#pragma once
#include <systemc>

#include "bridge/host/perftest.h"
#include "model/core/mix.h"

namespace rn::host {

struct ConnInfo {
  uint32_t qpn, psn, rkey;
  uint64_t addr;
};

struct Exchange {
  sc_core::sc_event ev;
  int stage[2] = {0, 0};  // [0] client, [1] server
  std::vector<ConnInfo> info[2];
  bool failed = false;
  bool done[2] = {false, false};
};

struct Perftest::Side {
  SimHost& h;
  drv::Driver& d;
  std::vector<uint8_t> mac;
  uint32_t ip;
  int idx;  // 0 client, 1 server
  uint32_t pdn = 0;
  drv::Cq* scq = nullptr;
  drv::Cq* rcq = nullptr;
  std::vector<drv::Qp*> qps;
  drv::Srq* srq = nullptr;  // send_bw with use_srq: the server's QPs share it
  drv::Ah* ah = nullptr;    // UD: the address handle of the peer
  // Per QP; 0 (and an empty Mr) where this side has no such buffer (sends_from, receives_into):
  // a WRITE or SEND bandwidth client only sends from src, its server only receives into dst; a
  // READ server only has src, its client dst.
  std::vector<uint64_t> src, dst;
  std::vector<drv::Mr> src_mr, dst_mr;
  uint64_t src_len = 0, dst_len = 0;  // bytes of each buffer; dst buffers have kGuard more
  bool checked = false;               // the received bytes were checked (see check_received)
  Side(SimHost& host, drv::Driver& drv, std::vector<uint8_t> m, uint32_t i, int x)
      : h(host), d(drv), mac(std::move(m)), ip(i), idx(x) {}
};

// The `mixed` workload's buffers and state, both sides (perftest_mixed.cpp). Slots are `stride`
// bytes apart: the largest message and its guard zone, rounded up to 64 bytes.
struct Perftest::Mixed {
  uint64_t stride = 0;
  struct Buf {
    uint64_t va = 0, len = 0;  // len: the bytes allocated (the MR may cover fewer)
    drv::Mr mr;
  };
  // Per QP. The client: its sources (slot i mod tx_depth for message i: WRITE, SEND) and
  // destinations (READ data, an atomic's value). The server: WRITE targets (slot i mod tx_depth),
  // receive buffers (slot r mod rx_depth for receive r), a READ source of `size` bytes holding a
  // pattern, an 8-byte atomic target.
  std::vector<Buf> c_src, c_dst, s_write, s_recv, s_read, s_atomic;
  // The client: each QP's atomic target as the atomics posted so far leave it, and the value
  // each atomic in flight must return (by slot).
  std::vector<uint64_t> atomic_now;
  std::vector<std::vector<uint64_t>> atomic_expect;
  uint64_t client_completions = 0;  // the server's wait counts them as progress
};

}  // namespace rn::host
