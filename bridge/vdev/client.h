// A process's side of the virtual device: attaches to one host's NIC in `rnicsim serve` and gives
// the project's driver (drv::Driver) what it needs, as a kernel would give a user-space provider:
//  - MMIO to the NIC's doorbells and registers (messages to serve, posted writes not waited for);
//  - DMA memory (rings, the driver's page lists) in a memfd shared with serve, so the NIC's
//    writes into it are seen at once; application buffers are the process's own memory, which
//    serve's host-memory model reaches through process_vm_readv/writev;
//  - the kernel path (drv::KernelPath): commands and events go through serve, which checks that
//    every object named is this process's own.
// Bus addresses are proto::bus_address(slot, va). Thread-safe: requests are serialized by a mutex,
// events are read from their own connection. No SystemC: this is linked into our libibverbs.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bridge/driver/device_access.h"
#include "bridge/vdev/protocol.h"

namespace rn::vdev {

// One simulated host as serve offers it (from DIR/hosts.json).
struct HostInfo {
  std::string name;    // "host0"
  uint32_t index = 0;  // its position in serve's configuration
  std::string socket;  // DIR/host0.sock
  uint8_t mac[6] = {};
  uint32_t ipv4 = 0;  // host order
};

// The serve folder: $RNICSIM_SERVE if set, else default_serve_dir().
std::string serve_dir();
std::string default_serve_dir();  // /tmp/rnicsim-serve-<uid>
// The hosts of the serve in `dir`; empty with *err set if there is no serve there.
std::vector<HostInfo> serve_hosts(const std::string& dir, std::string* err);

class ClientDevice final : public drv::DeviceAccess, public drv::KernelPath {
 public:
  // Bytes of DMA memory (the memfd) a process gets: rings, command data and page lists.
  static constexpr uint64_t kDmaBytes = uint64_t(256) << 20;
  // Attaches this process to host h's NIC. Null with *err set (naming the socket) on failure.
  static std::unique_ptr<ClientDevice> attach(const HostInfo& h, std::string* err);
  ~ClientDevice() override;  // detaches (serve then destroys what the process left)

  const HostInfo& host() const { return host_; }
  uint32_t slot() const { return slot_; }
  // False once serve has gone (every call then fails: MMIO reads return all ones, commands EIO).
  bool connected() const { return connected_; }
  // Readable when an event may be waiting (the event connection): for poll() in a library thread.
  int event_fd() const { return ev_fd_; }

  // drv::DeviceAccess
  void mmio_write32(uint64_t offset, uint32_t value) override;
  void mmio_write(uint64_t offset, const void* data, size_t len) override;
  uint32_t mmio_read32(uint64_t offset) override;
  uint64_t dma_alloc(size_t len, size_t align) override;
  void dma_free(uint64_t bus_addr, size_t len) override;
  void mem_write(uint64_t addr, const void* src, size_t len) override;
  void mem_read(uint64_t addr, void* dst, size_t len) override;
  bool pin_pages(uint64_t va, uint64_t len, std::vector<uint64_t>* pages) override;
  // Nothing to undo: pin_pages takes no IOMMU mapping (the simulator reaches the process's pages
  // by its own address).
  void unpin_pages(uint64_t, uint64_t) override {}
  // Polls the memory (it is the process's own) until its bytes change or timeout_ns of wall
  // time passes.
  bool wait_device_write(uint64_t addr, size_t len, uint64_t timeout_ns) override;
  uint64_t msi_address() const override { return 0; }  // the kernel owns MSI-X
  bool wait_interrupt(uint64_t timeout_ns) override;   // waits for an event (wall time)

  // drv::KernelPath (timeouts are wall-clock time)
  int command(const dev::CmdIn& in, dev::CmdOut* out, uint64_t timeout_ns) override;
  bool next_event(dev::Eqe* e, uint64_t timeout_ns) override;

  // The local pointer of a bus or virtual address (this process's own memory).
  static void* local(uint64_t addr) { return reinterpret_cast<void*>(proto::va_of(addr)); }

 private:
  ClientDevice() = default;
  bool send_msg(proto::Msg type, const void* body, size_t len);
  // Waits for the reply of type `want` on the request connection.
  bool recv_msg(proto::Msg want, void* body, size_t len, uint64_t timeout_ns);
  void lost(const char* why);

  HostInfo host_;
  int fd_ = -1, ev_fd_ = -1;
  uint32_t slot_ = 0;
  bool connected_ = false;
  std::mutex mu_;     // requests and their replies
  std::mutex ev_mu_;  // the event connection
  // The DMA memory: a memfd mapped here and in serve; a first-fit allocator over it.
  int memfd_ = -1;
  uint8_t* dma_ = nullptr;
  std::mutex dma_mu_;
  std::map<uint64_t, uint64_t> dma_free_;  // offset -> length of each free block
};

}  // namespace rn::vdev
