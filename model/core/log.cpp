#include "model/core/log.h"

#include <sstream>
#include <stdexcept>

namespace rn {

namespace {
struct CatName {
  LogCat cat;
  const char* name;
};
constexpr CatName kCats[] = {{LogCat::kCmd, "cmd"},       {LogCat::kDoorbell, "doorbell"},
                             {LogCat::kWqe, "wqe"},       {LogCat::kTx, "tx"},
                             {LogCat::kRx, "rx"},         {LogCat::kCqe, "cqe"},
                             {LogCat::kDma, "dma"},       {LogCat::kWire, "wire"},
                             {LogCat::kDriver, "driver"}, {LogCat::kApp, "app"},
                             {LogCat::kError, "error"}};
}  // namespace

const char* Logger::name(LogCat c) {
  for (const auto& n : kCats)
    if (n.cat == c) return n.name;
  return "?";
}

void Logger::enable(const std::string& list) {
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (item.empty()) continue;
    if (item == "all") {
      mask_ = ~0u;
      continue;
    }
    if (item == "none") {
      mask_ = 0;
      continue;
    }
    bool found = false;
    for (const auto& n : kCats) {
      if (item == n.name) {
        mask_ |= static_cast<uint32_t>(n.cat);
        found = true;
      }
    }
    if (!found) {
      std::string all;
      for (const auto& n : kCats) all += std::string(all.empty() ? "" : ",") + n.name;
      throw std::invalid_argument("unknown log category '" + item + "' (known: " + all +
                                  ",all,none)");
    }
  }
}

void Logger::print(Tick now, LogCat c, const std::string& who, const std::string& msg) const {
  fmt::print(out_, "{:>14.3f} ns [{}] {}: {}\n", ticks_to_ns(now), name(c), who, msg);
}

}  // namespace rn
