// The driver's only window on the world: MMIO to the device's BAR0, and the host memory it shares
// with the device. The simulated host implements it over the PCIe bridge and the host-memory model;
// later the trace replayer and our libibverbs implement it over a process's own memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/device/device_interface.h"

namespace rn::drv {

// How long a driver waits for a command or an event by default: the default of
// host.driver_timeout (host::HostParams), declared once here.
inline constexpr uint64_t kDefaultTimeoutNs = 100'000'000;

class DeviceAccess {
 public:
  virtual ~DeviceAccess() = default;
  // Posted 32-bit write to BAR0 (doorbells, registers): returns at once.
  virtual void mmio_write32(uint64_t offset, uint32_t value) = 0;
  // Posted write of len bytes (a multiple of 4, at most 256) to BAR0 as one burst, as a CPU's
  // write-combining buffers send it: a WQE with its doorbell (device interface v2). Returns at
  // once.
  virtual void mmio_write(uint64_t offset, const void* data, size_t len) = 0;
  // Non-posted 32-bit read from BAR0: a full round trip. Avoid on fast paths.
  virtual uint32_t mmio_read32(uint64_t offset) = 0;
  // Physically contiguous, zeroed memory the device can reach; returns its bus address, 0 on
  // failure. align is a power of two.
  virtual uint64_t dma_alloc(size_t len, size_t align) = 0;
  virtual void dma_free(uint64_t bus_addr, size_t len) = 0;
  // CPU loads and stores to memory shared with the device (by bus address for DMA memory, by
  // virtual address for application buffers: in the simulated host both are the same space).
  // An address that is not mapped throws std::out_of_range (where a process would fault).
  virtual void mem_write(uint64_t addr, const void* src, size_t len) = 0;
  virtual void mem_read(uint64_t addr, void* dst, size_t len) = 0;
  // Pins [va, va+len) and returns the bus address of each 4 KiB page, from the page holding va.
  // Returns false if part of the range is not mapped.
  virtual bool pin_pages(uint64_t va, uint64_t len, std::vector<uint64_t>* pages) = 0;
  // Undoes one pin_pages(va, len) once the device no longer uses the pages (their IOMMU mappings
  // go, with their cached translations).
  virtual void unpin_pages(uint64_t va, uint64_t len) = 0;
  // Waits until the device writes into [addr, addr+len), or `timeout_ns` passes; returns false on
  // timeout. (A real process spins on the memory; the simulated one sleeps until the DMA lands.)
  virtual bool wait_device_write(uint64_t addr, size_t len, uint64_t timeout_ns) = 0;
  // Address and data the device should use for its MSI-X message, and a wait for it.
  virtual uint64_t msi_address() const = 0;
  virtual bool wait_interrupt(uint64_t timeout_ns) = 0;
};

// The privileged half of a driver: the command interface and the event queue, which a kernel
// driver owns. A user-space provider (our libibverbs on the virtual device) reaches them through
// the kernel (there: `rnicsim serve`), which checks that every object a command names belongs to
// the caller, and hands each process the events of its own objects. Without one, the driver owns
// the command block and the event queue itself (the simulated host's driver).
class KernelPath {
 public:
  virtual ~KernelPath() = default;
  // Executes one command (in.token is the kernel's to set). Returns 0 with *out filled (its
  // status may be an error the device or the kernel gave), or an errno value if the command
  // could not be delivered or did not complete within timeout_ns.
  virtual int command(const dev::CmdIn& in, dev::CmdOut* out, uint64_t timeout_ns) = 0;
  // The caller's next event (completion or other), oldest first; waits up to timeout_ns (0: only
  // looks). False if there is none, or the kernel is gone.
  virtual bool next_event(dev::Eqe* e, uint64_t timeout_ns) = 0;
};

}  // namespace rn::drv
