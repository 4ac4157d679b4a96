// RN_HOT marks a function on the per-packet path. GCC places such functions together
// (.text.hot), so the packet path's code shares few instruction-cache sets with the rest of the
// simulator: measured with callgrind's cache simulation, docs/performance.md.
#pragma once

#if defined(__GNUC__)
#define RN_HOT __attribute__((hot))
#else
#define RN_HOT
#endif

// A function called from the packet path for a rarer case (another transport): kept out of line,
// so that the hot path's size, and the compiler's inlining choices in it, stay as they were.
#if defined(__GNUC__)
#define RN_NOINLINE __attribute__((noinline))
#define RN_INLINE inline __attribute__((always_inline))
#else
#define RN_NOINLINE
#define RN_INLINE inline
#endif
