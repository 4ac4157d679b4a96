// What the PCIe bridge's DMA reaches: a host's memory, by bus address. Two implementations:
// HostMemory (host_memory.h), the sparse simulated memory of standalone runs, and ProcessMemory
// (process_memory.h), the memory of real processes attached to the virtual device. The bridge
// calls HostMemory directly when it has one (its speed hooks are on the per-packet path) and
// this interface otherwise.
#pragma once
#include <cstddef>
#include <cstdint>

namespace rn::hostmem {

class Memory {
 public:
  virtual ~Memory() = default;
  // A DMA read of [addr, addr + len) into dst. Memory that is not there reads as all ones (what a
  // failed PCIe completion returns) and is counted by the implementation.
  virtual void dma_read(uint64_t addr, void* dst, size_t len) = 0;
  // A DMA write of src to [addr, addr + len). Where there is no memory, nothing is written.
  virtual void dma_write(uint64_t addr, const void* src, size_t len) = 0;
};

}  // namespace rn::hostmem
