// The host memory of the virtual device (`rnicsim serve`): the memory of the real processes
// attached to a simulated host's NIC. A bus address carries the process's slot above bit 48 and
// its virtual address below (vdev::proto::bus_address). Each process's DMA memory (its rings, a
// memfd it shares with serve) is mapped here too and reached by memcpy; everything else
// (registered application buffers) through process_vm_readv/writev on the process.
//
// A DMA to a slot nobody holds, or to an address the process has no memory at (a buffer freed
// while registered, say), touches nothing: a read gets all ones. Each is counted as a fault and
// reported through the fault handler, which serve's driver sanitizer names.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bridge/host_memory/memory.h"

namespace rn::hostmem {

class ProcessMemory final : public Memory {
 public:
  static constexpr unsigned kSlotShift = 48;
  static constexpr uint32_t kSlots = 1u << 16;

  // Slot `slot` is process `pid` (0: this process, reached by memcpy). Replaces what it held.
  void add_process(uint32_t slot, pid_t pid);
  // [va, va + len) of the slot's process is mapped in this process at `local`: reached by memcpy.
  void add_shared(uint32_t slot, uint64_t va, uint64_t len, uint8_t* local);
  // The slot holds nothing any more: DMA to it faults.
  void remove_process(uint32_t slot);
  bool held(uint32_t slot) const { return slot < kSlots && slots_[slot].pid >= 0; }

  void dma_read(uint64_t addr, void* dst, size_t len) override;
  void dma_write(uint64_t addr, const void* src, size_t len) override;

  // Called for each fault: the slot, the bus address, the length, and whether it was a write.
  using FaultHandler = std::function<void(uint32_t slot, uint64_t addr, size_t len, bool write)>;
  void on_fault(FaultHandler h) { fault_ = std::move(h); }
  uint64_t faults() const { return faults_; }
  uint64_t bytes_read() const { return bytes_read_; }
  uint64_t bytes_written() const { return bytes_written_; }
  uint64_t syscalls() const { return syscalls_; }  // process_vm_readv/writev calls

 private:
  struct Shared {
    uint64_t va, len;
    uint8_t* local;
  };
  struct Slot {
    pid_t pid = -1;  // -1: free
    std::vector<Shared> shared;
  };
  // The local pointer of [va, va + len) if it lies in one shared region, else null.
  static uint8_t* shared_ptr(const Slot& s, uint64_t va, size_t len);
  bool transfer(uint32_t slot, uint64_t addr, void* buf, size_t len, bool write);
  void fault(uint32_t slot, uint64_t addr, size_t len, bool write);

  std::vector<Slot> slots_ = std::vector<Slot>(kSlots);
  FaultHandler fault_;
  uint64_t faults_ = 0, bytes_read_ = 0, bytes_written_ = 0, syscalls_ = 0;
};

}  // namespace rn::hostmem
