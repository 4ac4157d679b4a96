// Stand-in for bridge/vdev/client.cpp while it is not in this tree (it is being written on main):
// lists no hosts and attaches to none, so that the library builds, loads and answers "no
// device". CMakeLists.txt compiles it only when client.cpp is missing.
#include <unistd.h>

#include <cstdlib>

#include "bridge/vdev/client.h"

namespace rn::vdev {

std::string default_serve_dir() { return "/tmp/rnicsim-serve-" + std::to_string(::getuid()); }
std::string serve_dir() {
  const char* d = std::getenv("RNICSIM_SERVE");
  return d && *d ? d : default_serve_dir();
}
std::vector<HostInfo> serve_hosts(const std::string& dir, std::string* err) {
  if (err)
    *err = "this libibverbs was built without the virtual-device client (no serve in " + dir + ")";
  return {};
}

std::unique_ptr<ClientDevice> ClientDevice::attach(const HostInfo& h, std::string* err) {
  if (err) *err = "built without the virtual-device client: cannot attach to " + h.socket;
  return nullptr;
}
ClientDevice::~ClientDevice() = default;
void ClientDevice::mmio_write32(uint64_t, uint32_t) {}
void ClientDevice::mmio_write(uint64_t, const void*, size_t) {}
uint32_t ClientDevice::mmio_read32(uint64_t) { return ~0u; }
uint64_t ClientDevice::dma_alloc(size_t, size_t) { return 0; }
void ClientDevice::dma_free(uint64_t, size_t) {}
void ClientDevice::mem_write(uint64_t, const void*, size_t) {}
void ClientDevice::mem_read(uint64_t, void*, size_t) {}
bool ClientDevice::pin_pages(uint64_t, uint64_t, std::vector<uint64_t>*) { return false; }
bool ClientDevice::wait_device_write(uint64_t, size_t, uint64_t) { return false; }
bool ClientDevice::wait_interrupt(uint64_t) { return false; }
int ClientDevice::command(const dev::CmdIn&, dev::CmdOut*, uint64_t) { return EIO; }
bool ClientDevice::next_event(dev::Eqe*, uint64_t) { return false; }

}  // namespace rn::vdev
