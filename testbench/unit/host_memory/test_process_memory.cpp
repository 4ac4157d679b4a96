// hostmem::ProcessMemory: DMA into another process's memory (a forked child, whose copy of a
// buffer sits at the same address), into memory shared by mapping, and the faults of addresses
// no process has.
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "bridge/host_memory/process_memory.h"

using rn::hostmem::ProcessMemory;

namespace {
constexpr uint64_t bus(uint32_t slot, const void* p) {
  return (uint64_t(slot) << ProcessMemory::kSlotShift) | reinterpret_cast<uint64_t>(p);
}

// A child process holding a copy of the parent's memory, stopped until the test ends.
struct Child {
  pid_t pid;
  Child() {
    pid = fork();
    if (pid == 0) {
      pause();
      _exit(0);
    }
  }
  ~Child() {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
};
}  // namespace

TEST_CASE("A DMA reads and writes another process's memory at its own addresses",
          "[hostmem][process]") {
  std::vector<uint8_t> buf(3 * 4096 + 100);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i * 7 + 1);
  Child c;
  for (auto& b : buf) b = 0;  // ours changes; the child's copy keeps the pattern
  ProcessMemory m;
  m.add_process(3, c.pid);
  std::vector<uint8_t> got(buf.size());
  m.dma_read(bus(3, buf.data()), got.data(), got.size());
  for (size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == static_cast<uint8_t>(i * 7 + 1));
  const char msg[] = "written by the NIC";
  m.dma_write(bus(3, buf.data() + 5000), msg, sizeof msg);
  char back[sizeof msg];
  m.dma_read(bus(3, buf.data() + 5000), back, sizeof back);
  REQUIRE(std::memcmp(back, msg, sizeof msg) == 0);
  REQUIRE(buf[5000] == 0);  // the child's memory, not ours
  REQUIRE(m.faults() == 0);
  REQUIRE(m.bytes_read() == got.size() + sizeof msg);
  REQUIRE(m.bytes_written() == sizeof msg);
}

TEST_CASE("A DMA to memory no process has faults: nothing written, all ones read",
          "[hostmem][process]") {
  ProcessMemory m;
  std::vector<uint64_t> seen;
  m.on_fault([&](uint32_t slot, uint64_t addr, size_t len, bool write) {
    seen.push_back(slot);
    seen.push_back(len);
    seen.push_back(write);
  });
  uint8_t b[16];
  // No process in slot 5.
  m.dma_read(bus(5, b), b, sizeof b);
  for (uint8_t x : b) REQUIRE(x == 0xFF);
  // A process, but an address it has no memory at (a page unmapped here before the fork).
  void* hole = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(hole != MAP_FAILED);
  munmap(hole, 4096);
  Child c;
  m.add_process(1, c.pid);
  m.dma_write(bus(1, hole), "x", 1);
  m.dma_read(bus(1, hole), b, 4);
  REQUIRE(m.faults() == 3);
  REQUIRE(seen == std::vector<uint64_t>{5, 16, 0, 1, 1, 1, 1, 4, 0});
  m.remove_process(1);
  REQUIRE(!m.held(1));
  m.dma_read(bus(1, b), b, 1);
  REQUIRE(m.faults() == 4);
}

TEST_CASE("Memory shared by mapping is reached without a system call", "[hostmem][process]") {
  std::vector<uint8_t> local(8192, 0);
  ProcessMemory m;
  m.add_process(2, 0);                      // this process: only its shared regions are reachable
  const uint64_t va = 0x7000'0000'0000ull;  // where the other process maps it
  m.add_shared(2, va, local.size(), local.data());
  m.dma_write((uint64_t(2) << 48) | (va + 100), "abc", 3);
  REQUIRE(std::memcmp(local.data() + 100, "abc", 3) == 0);
  uint8_t b[3];
  m.dma_read((uint64_t(2) << 48) | (va + 100), b, 3);
  REQUIRE(std::memcmp(b, "abc", 3) == 0);
  REQUIRE(m.syscalls() == 0);
  // Past the shared region: this process's other memory is not reachable.
  m.dma_read((uint64_t(2) << 48) | (va + 8190), b, 3);
  REQUIRE(m.faults() == 1);
}
