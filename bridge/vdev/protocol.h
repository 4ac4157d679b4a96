// The virtual device's wire protocol between a process (our libibverbs, through ClientDevice) and
// `rnicsim serve`, which hosts the simulated NICs: one Unix SOCK_SEQPACKET connection per
// attached process for its requests (posted MMIO writes, MMIO reads, commands through the kernel
// path), and a second one on which serve pushes the process's events. Every message is one
// packet: a Header, then the body its type names. Shared by both ends; docs/virtual-device.md
// describes it.
#pragma once
#include <cstddef>
#include <cstdint>

#include "model/device/device_interface.h"

namespace rn::vdev::proto {

constexpr uint32_t kMagic = 0x44564E52;  // "RNVD"
constexpr uint32_t kVersion = 1;

// A bus address of the virtual device: the attached process's slot above bit 48, its virtual
// address below (x86-64 user addresses are below 2^47). The host memory model finds the process
// from the slot; a DMA to a slot nobody holds is a fault.
constexpr unsigned kSlotShift = 48;
constexpr uint64_t kVaMask = (uint64_t(1) << kSlotShift) - 1;
constexpr uint32_t kMaxSlot = 0xFFFE;     // process slots are 1..kMaxSlot
constexpr uint32_t kKernelSlot = 0xFFFF;  // serve's own memory (command block, event queue)
constexpr uint64_t bus_address(uint32_t slot, uint64_t va) {
  return (uint64_t(slot) << kSlotShift) | (va & kVaMask);
}
constexpr uint32_t slot_of(uint64_t bus) { return static_cast<uint32_t>(bus >> kSlotShift); }
constexpr uint64_t va_of(uint64_t bus) { return bus & kVaMask; }

enum class Msg : uint16_t {
  HELLO = 1,         // c->s, first on the request connection: Hello, SCM_RIGHTS [memfd]
  WELCOME = 2,       // s->c: Welcome
  HELLO_EVENTS = 3,  // c->s, first on the event connection: HelloEvents
  MMIO_WRITE = 4,    // c->s: MmioWrite (posted: no reply)
  MMIO_READ = 5,     // c->s: MmioRead -> MMIO_VALUE
  MMIO_VALUE = 6,    // s->c: MmioValue
  COMMAND = 7,       // c->s: Command -> COMMAND_DONE
  COMMAND_DONE = 8,  // s->c: CommandDone
  EVENT = 9,         // s->c on the event connection: Event
  BYE = 10,          // c->s: the process detaches (closing the connection does the same)
};

struct Header {
  uint16_t type;  // Msg
  uint16_t rsvd;
  uint32_t len;  // body bytes after the header
};

struct Hello {
  uint32_t magic, version;
  int32_t pid;
  uint32_t rsvd;
  uint64_t dma_va, dma_len;  // where the process mapped the memfd it passes (its DMA memory)
};
struct Welcome {
  int32_t status;  // 0, or an errno value with `error` saying why
  uint32_t slot;   // the process's slot: its bus addresses are bus_address(slot, va)
  uint32_t host_index;
  uint32_t ipv4;  // the host's address (host order)
  uint8_t mac[6];
  uint8_t rsvd[2];
  uint64_t cookie;  // given back in HelloEvents
  char error[200];
};
struct HelloEvents {
  uint32_t magic, slot;
  uint64_t cookie;
};
struct MmioWrite {
  uint64_t offset;
  uint32_t len;  // 4, or a burst of up to 256 (a WQE with its doorbell)
  uint32_t rsvd;
  uint8_t data[256];
};
struct MmioRead {
  uint64_t offset;
};
struct MmioValue {
  uint32_t value, rsvd;
};
struct Command {
  dev::CmdIn in;
};
struct CommandDone {
  int32_t status;  // 0: `out` is the device's (or the kernel's) answer; else an errno value
  uint32_t rsvd;
  dev::CmdOut out;
};
struct Event {
  dev::Eqe eqe;
};

constexpr size_t kMaxMessage = sizeof(Header) + sizeof(MmioWrite) > sizeof(Header) + sizeof(Welcome)
                                   ? sizeof(Header) + sizeof(MmioWrite)
                                   : sizeof(Header) + sizeof(Welcome);

}  // namespace rn::vdev::proto
