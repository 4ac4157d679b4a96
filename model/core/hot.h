// RN_HOT marks a function on the per-packet path. GCC places such functions together
// (.text.hot), so the packet path's code shares few instruction-cache sets with the rest of the
// simulator: measured with callgrind's cache simulation, docs/performance.md.
#pragma once

#if defined(__GNUC__)
#define RN_HOT __attribute__((hot))
#else
#define RN_HOT
#endif
