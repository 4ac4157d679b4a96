// The memory floor of write_bw: what moving the payload bytes alone costs, with the simulator's
// own host-memory model and nothing else simulated. Per packet, as in a run: the sender's DMA
// read copies a packet's payload from its buffer into a frame, the receiver's DMA write copies it
// from the frame into its buffer. QPs take turns one packet at a time (nic.sched_quantum = 1),
// each with its own buffer on each side (perftest's layout), so with 1000 QPs of 64 KiB the
// bytes come from and go to 128 MiB, far more than the CPU's caches; with 1 QP they stay cached.
// As in the simulator, a packet's source is prefetched a few packets before it is read (the
// PCIe bridge does so when the DMA read is issued).
//   bench_memory_floor [QPS] [MESSAGE_BYTES] [PACKETS]
//   bench_memory_floor bandwidth    the machine's own ceiling: streaming read and write bandwidth
//                                   of one core over 256 MiB, and the packet rate it allows when
//                                   every packet reads 4 KiB from and writes 4 KiB to DRAM
#include <emmintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bridge/host_memory/host_memory.h"

using rn::hostmem::HostMemory;

namespace {

int bandwidth() {
  constexpr size_t kBytes = size_t(256) << 20, kChunk = 4096;
  auto* buf = static_cast<uint8_t*>(std::aligned_alloc(kChunk, kBytes));
  if (!buf) return 1;
  std::memset(buf, 1, kBytes);  // fault every page in first
  alignas(64) static uint8_t chunk[kChunk];
  auto gbps = [&](auto&& body) {
    auto t0 = std::chrono::steady_clock::now();
    for (size_t off = 0; off < kBytes; off += kChunk) body(buf + off);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return static_cast<double>(kBytes) / s / 1e9;
  };
  double rd = 0, wr = 0;
  for (int rep = 0; rep < 3; ++rep) {  // best of three
    rd = std::max(rd, gbps([&](uint8_t* p) { std::memcpy(chunk, p, kChunk); }));
    wr = std::max(wr, gbps([&](uint8_t* p) {
                    for (size_t i = 0; i < kChunk; i += 16)
                      _mm_stream_si128(reinterpret_cast<__m128i*>(p + i),
                                       _mm_load_si128(reinterpret_cast<const __m128i*>(chunk + i)));
                  }));
  }
  volatile uint8_t sink = chunk[kChunk - 1];
  (void)sink;
  std::free(buf);
  // One packet: 4 KiB read (the sender's payload) and 4 KiB written (the receiver's buffer).
  const double ns = 4096 / rd + 4096 / wr;
  std::printf(
      "one core streams %.1f GB/s reading and %.1f GB/s writing (non-temporal): a packet "
      "whose 4 KiB come from DRAM and go to DRAM needs %.0f ns of it = at most %.0f "
      "packets per wall-second if nothing overlaps\n",
      rd, wr, ns, 1e9 / ns);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "bandwidth") == 0) return bandwidth();
  const uint64_t qps = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 1000;
  const uint64_t msg = argc > 2 ? std::strtoull(argv[2], nullptr, 0) : 65536;
  const uint64_t packets = argc > 3 ? std::strtoull(argv[3], nullptr, 0) : 320000;
  constexpr uint64_t kMtu = 4096;
  constexpr uint64_t kAhead = 3;  // packets between a DMA read's issue and its data being read
  if (qps == 0 || msg < kMtu || msg % kMtu != 0 || packets == 0) {
    std::fprintf(stderr, "bench_memory_floor: need QPS >= 1, MESSAGE_BYTES a multiple of %llu\n",
                 static_cast<unsigned long long>(kMtu));
    return 2;
  }
  const uint64_t src_base = 0x40000000, dst_base = 0x80000000;
  HostMemory sender, receiver;
  sender.fill_pattern(src_base, qps * msg, 1);
  receiver.fill(dst_base, qps * msg, 0xA5);
  // The payload offset of a frame (after Ethernet, IPv4, UDP and BTH), 64-byte aligned as there.
  alignas(64) static uint8_t frame[64 + kMtu];
  uint8_t* payload = frame + 64;
  const uint64_t per_msg = msg / kMtu;
  auto where = [&](uint64_t k) {  // offset of packet k's payload in its QP's buffer
    uint64_t q = k % qps, turn = k / qps;
    return q * msg + (turn % per_msg) * kMtu;
  };
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t k = 0; k < packets; ++k) {
    sender.prefetch_for_read(src_base + where(k + kAhead), kMtu);
    sender.read(src_base + where(k), payload, kMtu);
    receiver.write(dst_base + where(k), payload, kMtu);
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double ns = s * 1e9 / static_cast<double>(packets);
  std::printf(
      "payload bytes alone, %llu QPs x %llu B: %.0f ns per 4 KiB packet = at most %.0f "
      "packets per wall-second with everything else free\n",
      static_cast<unsigned long long>(qps), static_cast<unsigned long long>(msg), ns, 1e9 / ns);
  return 0;
}
