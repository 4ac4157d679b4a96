// The memory floor of write_bw: what moving the payload bytes alone costs, with the simulator's
// own host-memory model and nothing else simulated. Per packet, as in a run: the sender's DMA
// read copies a packet's payload from its buffer into a frame, the receiver's DMA write copies it
// from the frame into its buffer. QPs take turns one packet at a time (nic.sched_quantum = 1),
// each with its own buffer on each side (perftest's layout), so with 1000 QPs of 64 KiB the
// bytes come from and go to 128 MiB, far more than the CPU's caches; with 1 QP they stay cached.
// As in the simulator, a packet's source is prefetched a few packets before it is read (the
// PCIe bridge does so when the DMA read is issued).
//   bench_memory_floor [QPS] [MESSAGE_BYTES] [PACKETS]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bridge/host_memory/host_memory.h"

using rn::hostmem::HostMemory;

int main(int argc, char** argv) {
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
