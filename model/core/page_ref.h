// A counted reference to one 4 KiB page of simulated host memory, held by whatever must keep
// that page's bytes as they are now (a frame whose payload is a copy of the page). While any
// reference is held, a write to the page by its memory copies it first (copy-on-write), so the
// referenced bytes never change. Simulator bookkeeping: no effect on any result. A reference must
// be released before the memories and pool it comes from are destroyed (or never: dropping a
// PageRef without release() only keeps its page in use).
#pragma once
#include <cstdint>

namespace rn {

class PageOwner {
 public:
  virtual void unref(const uint8_t* page) = 0;

 protected:
  ~PageOwner() = default;
};

struct PageRef {
  PageOwner* owner = nullptr;
  const uint8_t* page = nullptr;  // the page's first byte; 4096 bytes
  uint32_t crc = 0;               // CRC-32 of the 4096 bytes (zlib's crc32(0, page, 4096))
  explicit operator bool() const { return page != nullptr; }
  void release() {
    if (owner) owner->unref(page);
    owner = nullptr;
    page = nullptr;
    crc = 0;
  }
};

}  // namespace rn
