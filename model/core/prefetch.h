// Cache hints for the simulator's own speed: no effect on any result.
#pragma once
#include <cstddef>
#include <cstdint>

namespace rn {

// Starts loading every 64-byte line of the object [p, p + n) into the CPU's cache, whatever its
// alignment (with many QPs, contexts and table entries do not all stay cached).
inline void prefetch_object(const void* p, size_t n) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  for (uintptr_t line = a & ~uintptr_t(63); line < a + n; line += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(line));
}

}  // namespace rn
