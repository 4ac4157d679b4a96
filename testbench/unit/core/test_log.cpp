// Unit tests of rn::Logger (model/core/log.h): categories on and off, unknown names, output.
#include <catch2/catch.hpp>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "model/core/log.h"

using Catch::Matchers::Contains;
using rn::LogCat;
using rn::Logger;

namespace {
constexpr LogCat kAll[] = {LogCat::kCmd,    LogCat::kDoorbell, LogCat::kWqe,  LogCat::kTx,
                           LogCat::kRx,     LogCat::kCqe,      LogCat::kDma,  LogCat::kWire,
                           LogCat::kDriver, LogCat::kApp,      LogCat::kError};
}  // namespace

TEST_CASE("logger: only 'error' is on by default", "[log]") {
  Logger l;
  for (LogCat c : kAll) CHECK(l.on(c) == (c == LogCat::kError));
}

TEST_CASE("logger: enable a list of categories, all and none", "[log]") {
  Logger l;
  l.enable("cmd,tx");
  CHECK(l.on(LogCat::kCmd));
  CHECK(l.on(LogCat::kTx));
  CHECK(l.on(LogCat::kError));
  CHECK_FALSE(l.on(LogCat::kRx));
  CHECK_FALSE(l.on(LogCat::kWqe));
  l.enable("rx");  // adds to what is on
  CHECK(l.on(LogCat::kRx));
  CHECK(l.on(LogCat::kCmd));
  l.enable("none");  // disables everything, error included
  for (LogCat c : kAll) CHECK_FALSE(l.on(c));
  l.enable("all");
  for (LogCat c : kAll) CHECK(l.on(c));
  l.enable("none,wire");  // processed left to right
  for (LogCat c : kAll) CHECK(l.on(c) == (c == LogCat::kWire));
  l.enable("");        // nothing
  l.enable(",,dma,");  // empty items are skipped
  CHECK(l.on(LogCat::kDma));
  CHECK(l.on(LogCat::kWire));
  CHECK_FALSE(l.on(LogCat::kCmd));
}

TEST_CASE("logger: every category can be enabled by its name", "[log]") {
  for (LogCat c : kAll) {
    Logger l;
    l.enable("none");
    l.enable(Logger::name(c));
    for (LogCat d : kAll) CHECK(l.on(d) == (d == c));
  }
  CHECK(std::string(Logger::name(LogCat::kDoorbell)) == "doorbell");
}

TEST_CASE("logger: an unknown category throws naming it and the known ones", "[log]") {
  Logger l;
  CHECK_THROWS_AS(l.enable("cmd,bogus"), std::invalid_argument);
  CHECK_THROWS_WITH(l.enable("tx,bogus,rx"), Contains("unknown log category 'bogus'") &&
                                                 Contains("cmd") && Contains("doorbell") &&
                                                 Contains("error") && Contains("all") &&
                                                 Contains("none"));
  CHECK_THROWS_WITH(l.enable("TX"), Contains("'TX'"));         // names are lower case
  CHECK_NOTHROW(l.enable("cmd, tx"));                          // blanks around names are trimmed
  CHECK_THROWS_WITH(l.enable("cmd, t x"), Contains("'t x'"));  // but not inside them
}

TEST_CASE("logger: print writes time in ns, category, instance and message", "[log]") {
  Logger l;
  FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  l.set_file(f);
  l.print(31616638, LogCat::kTx, "host0.nic", "qp 2 psn 7");
  std::rewind(f);
  char buf[256] = {};
  size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  std::string line(buf, n);
  CHECK_THAT(line, Contains("31616.638 ns [tx] host0.nic: qp 2 psn 7\n"));
}
