#include "bridge/host_memory/process_memory.h"

#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

namespace rn::hostmem {

void ProcessMemory::add_process(uint32_t slot, pid_t pid) {
  if (slot >= kSlots) return;
  slots_[slot] = Slot{pid == 0 ? getpid() : pid, {}};
}

void ProcessMemory::add_shared(uint32_t slot, uint64_t va, uint64_t len, uint8_t* local) {
  if (slot < kSlots && slots_[slot].pid >= 0 && len)
    slots_[slot].shared.push_back({va, len, local});
}

void ProcessMemory::remove_process(uint32_t slot) {
  if (slot < kSlots) slots_[slot] = Slot{};
}

uint8_t* ProcessMemory::shared_ptr(const Slot& s, uint64_t va, size_t len) {
  for (const Shared& r : s.shared)
    if (va >= r.va && va - r.va <= r.len && len <= r.len - (va - r.va))
      return r.local + (va - r.va);
  return nullptr;
}

void ProcessMemory::fault(uint32_t slot, uint64_t addr, size_t len, bool write) {
  ++faults_;
  if (fault_) fault_(slot, addr, len, write);
}

bool ProcessMemory::transfer(uint32_t slot, uint64_t addr, void* buf, size_t len, bool write) {
  if (len == 0) return true;
  const uint64_t va = addr & ((uint64_t(1) << kSlotShift) - 1);
  if (slot >= kSlots || slots_[slot].pid < 0 || va + len < va) return false;
  const Slot& s = slots_[slot];
  if (uint8_t* p = shared_ptr(s, va, len)) {
    if (write)
      std::memcpy(p, buf, len);
    else
      std::memcpy(buf, p, len);
    return true;
  }
  if (s.pid == getpid()) return false;  // this process's memory is reached only where shared
  iovec local{buf, len};
  iovec remote{reinterpret_cast<void*>(va), len};
  ++syscalls_;
  ssize_t n = write ? process_vm_writev(s.pid, &local, 1, &remote, 1, 0)
                    : process_vm_readv(s.pid, &local, 1, &remote, 1, 0);
  return n == static_cast<ssize_t>(len);
}

void ProcessMemory::dma_read(uint64_t addr, void* dst, size_t len) {
  const uint32_t slot = static_cast<uint32_t>(addr >> kSlotShift);
  if (transfer(slot, addr, dst, len, false)) {
    bytes_read_ += len;
    return;
  }
  std::memset(dst, 0xFF, len);
  fault(slot, addr, len, false);
}

void ProcessMemory::dma_write(uint64_t addr, const void* src, size_t len) {
  const uint32_t slot = static_cast<uint32_t>(addr >> kSlotShift);
  if (transfer(slot, addr, const_cast<void*>(src), len, true)) {
    bytes_written_ += len;
    return;
  }
  fault(slot, addr, len, true);
}

}  // namespace rn::hostmem
