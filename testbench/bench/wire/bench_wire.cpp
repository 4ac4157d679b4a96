// Micro benchmark of rn_wire: ns per encode + wrap (with ICRC) and per unwrap (with ICRC
// check) + decode, for a 4096-byte and a header-only packet. Median of 7 runs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "model/wire/framing.h"
#include "model/wire/icrc.h"
#include "model/wire/transport.h"

using namespace rn::wire;

namespace {
volatile uint64_t g_sink;

template <typename F>
double ns_per_op(size_t iters, F&& f) {
  std::vector<double> runs;
  for (int r = 0; r < 7; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t acc = 0;
    for (size_t i = 0; i < iters; ++i) acc += f(i);
    const auto t1 = std::chrono::steady_clock::now();
    g_sink = g_sink + acc;
    runs.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / double(iters));
  }
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

void bench(const char* label, uint8_t opcode, size_t payload, size_t iters) {
  const RoceV2Ipv4Framing fr;
  PathInfo path;
  path.src_mac = {2, 0, 0, 0, 0, 1};
  path.dst_mac = {2, 0, 0, 0, 0, 2};
  path.src_ip = 0x0A000001;
  path.dst_ip = 0x0A000002;
  path.udp_sport = roce_udp_sport(0x11);
  TransportHeader h;
  h.opcode = opcode;
  h.dest_qp = 0x11;
  h.reth_va = 0x7f0000001000ull;
  h.reth_rkey = 0x1234;
  h.reth_len = static_cast<uint32_t>(payload);
  h.aeth_syndrome = 0x1F;
  h.pad_cnt = pad_for(payload);
  const size_t hl = transport_header_len(opcode);
  const size_t tlen = hl + payload + h.pad_cnt;
  std::vector<uint8_t> buf(fr.frame_len(tlen));
  for (size_t i = 0; i < payload; ++i) buf[fr.headroom() + hl + i] = static_cast<uint8_t>(i);

  const double tx = ns_per_op(iters, [&](size_t i) {
    h.psn = static_cast<uint32_t>(i) & kPsnMask;
    encode_transport_header(h, buf.data() + fr.headroom());
    return fr.wrap(buf.data(), tlen, path);
  });
  const double rx = ns_per_op(iters, [&](size_t) {
    size_t off = 0, len = 0, dh = 0, dp = 0;
    TransportHeader d;
    if (fr.unwrap(buf.data(), buf.size(), &off, &len, nullptr) != FrameError::None) return 0ul;
    if (decode_transport(buf.data() + off, len, &d, &dh, &dp) != ParseError::None) return 0ul;
    return dp + d.psn;
  });
  const double crc = ns_per_op(iters, [&](size_t) {
    return static_cast<size_t>(icrc_roce_v2(buf.data() + 14, buf.size() - 18, false));
  });
  std::printf(
      "%-34s frame %5zu B: encode+wrap %7.1f ns  unwrap+decode %7.1f ns  icrc %7.1f ns"
      "  (%.1f GB/s tx)\n",
      label, buf.size(), tx, rx, crc, double(buf.size()) / tx);
}
}  // namespace

int main() {
  bench("RC_RDMA_WRITE_ONLY, 4096 B payload", 0x0A, 4096, 200000);
  bench("RC_SEND_ONLY, 1024 B payload", 0x04, 1024, 500000);
  bench("RC_ACKNOWLEDGE (header only)", 0x11, 0, 2000000);
  return 0;
}
