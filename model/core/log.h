// Runtime logging by category and instance name (no compile-time switches). A disabled category
// costs one bit test; formatting happens only when enabled.
#pragma once
#include <fmt/core.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "model/core/units.h"

namespace rn {

enum class LogCat : uint32_t {
  kCmd = 1u << 0,  // device command processing
  kDoorbell = 1u << 1,
  kWqe = 1u << 2,     // WQE fetch and parsing
  kTx = 1u << 3,      // requester packet generation
  kRx = 1u << 4,      // responder and ACK processing
  kCqe = 1u << 5,     // completions and events
  kDma = 1u << 6,     // PCIe DMA and MMIO
  kWire = 1u << 7,    // link transmissions
  kDriver = 1u << 8,  // host driver
  kApp = 1u << 9,     // workload
  kError = 1u << 10,  // protocol and input errors (on by default)
};

class Logger {
 public:
  // Parses a comma-separated list of category names ("cmd,tx,rx" or "all"); throws
  // std::invalid_argument naming an unknown category.
  void enable(const std::string& list);
  bool on(LogCat c) const { return (mask_ & static_cast<uint32_t>(c)) != 0; }
  void set_file(FILE* f) { out_ = f; }
  void print(Tick now, LogCat c, const std::string& who, const std::string& msg) const;
  static const char* name(LogCat c);

 private:
  uint32_t mask_ = static_cast<uint32_t>(LogCat::kError);
  FILE* out_ = stderr;
};

}  // namespace rn

// RN_LOG(sim, LogCat::kTx, instance_name, "fmt {}", args...): `sim` is an rn::Sim.
// The formatting sits in a cold, out-of-line lambda: a hot path carries a test and a call, not
// the argument packing (keeping the packet path's code small for the instruction cache).
#define RN_LOG(sim, cat, who, ...)                                                      \
  do {                                                                                  \
    if (__builtin_expect((sim).log.on(cat), 0)) [&]() __attribute__((noinline, cold)) { \
        (sim).log.print((sim).now(), cat, who, fmt::format(__VA_ARGS__));               \
      }                                                                                 \
    ();                                                                                 \
  } while (0)
