// Unit tests of rn::cfg (model/core/config.h): unit parsing, range checks, unknown keys, TOML types
// and syntax errors, includes and override order, --set parsing, sources, to_json.
// Most tests use a small schema of their own; the TOML files go into a temp dir unique per test.
#include <fmt/core.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "model/core/config.h"

using namespace rn;
using namespace rn::cfg;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

// A directory of its own for each test (pid + counter + test tag), removed at the end.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static std::atomic<int> n{0};
    path_ = fs::temp_directory_path() /
            ("rnicsim_cfg_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  // Writes `text` to `name` (relative to the dir, subdirectories created) and returns the path.
  std::string write(const std::string& name, const std::string& text) const {
    fs::path p = path_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// A small schema with one parameter of every kind.
Schema test_schema() {
  Schema s;
  s.add({"a.time", Kind::kTime, "1us", "a time", 0, 1e12});               // [0, 1s]
  s.add({"a.bw", Kind::kBandwidth, "10Gbps", "a bandwidth", 1e6, 1e12});  // [1Mbps, 1Tbps]
  s.add({"a.size", Kind::kSize, "4KiB", "a size", 64, 1024.0 * 1024});    // [64B, 1MiB]
  s.add({"a.count", Kind::kInt, "16", "an integer", 1, 1024});
  s.add({"a.ratio", Kind::kReal, "0.5", "a number", 0, 1});
  s.add({"a.flag", Kind::kBool, "false", "a boolean"});
  s.add({"a.mode", Kind::kString, "fast", "a choice", 0, 0, {"fast", "slow"}});
  s.add({"b.name", Kind::kString, "", "a free string"});
  s.add({"b.nested.depth", Kind::kInt, "3", "a key two tables deep", 0, 100});
  s.add({"c.rate", Kind::kBandwidth, "1Gbps", "another bandwidth", 1e6, 1e12});
  s.add({"c.lo", Kind::kInt, "5", "an integer with a lower bound only", 2});
  return s;
}

// The message of the ConfigError thrown by `f`; fails the test if nothing (or something else) is
// thrown.
template <typename F>
std::string config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL("no ConfigError thrown");
  return "";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Unit parsing

TEST_CASE("config: parse_time accepts every unit, decimals and a bare 0", "[config][units]") {
  CHECK(parse_time("1ps") == 1);
  CHECK(parse_time("1ns") == 1000);
  CHECK(parse_time("1us") == 1000 * 1000);
  CHECK(parse_time("1ms") == 1000ull * 1000 * 1000);
  CHECK(parse_time("1s") == 1000ull * 1000 * 1000 * 1000);
  CHECK(parse_time("500ns") == 500 * kNs);
  CHECK(parse_time("1.5us") == 1500 * kNs);
  CHECK(parse_time("2.5ns") == 2500);
  CHECK(parse_time("0.001ns") == 1);
  CHECK(parse_time("0") == 0);
  CHECK(parse_time("0ns") == 0);
  CHECK(parse_time("100s") == 100 * kSec);
}

TEST_CASE("config: parse_time rejects bad text, negatives, missing units and fractions of a ps",
          "[config][units]") {
  CHECK_THROWS_AS(parse_time("5 parsecs"), ConfigError);
  CHECK_THROWS_WITH(parse_time("5 parsecs"), Contains("'5 parsecs'") && Contains("'parsecs'") &&
                                                 Contains("ps, ns, us, ms, s"));
  CHECK_THROWS_WITH(parse_time("-1ns"), Contains("'-1ns'"));
  CHECK_THROWS_WITH(parse_time("fast"), Contains("'fast'") && Contains("number"));
  CHECK_THROWS_WITH(parse_time(""), Contains("number"));
  CHECK_THROWS_WITH(parse_time("100"), Contains("'100'") && Contains("no unit"));
  CHECK_THROWS_WITH(parse_time("1.5"), Contains("no unit"));
  CHECK_THROWS_AS(parse_time("100NS"), ConfigError);    // units are case-sensitive
  CHECK_THROWS_AS(parse_time("0.5ps"), ConfigError);    // not a whole number of ps
  CHECK_THROWS_AS(parse_time("1e400ns"), ConfigError);  // infinite
  CHECK_THROWS_AS(parse_time("nan ns"), ConfigError);
  CHECK_THROWS_AS(parse_time("1000000000s"), ConfigError);  // 1e24 ps does not fit a Tick
}

TEST_CASE("config: parse_bandwidth accepts every unit and refuses zero and missing units",
          "[config][units]") {
  CHECK(parse_bandwidth("1bps") == Approx(1));
  CHECK(parse_bandwidth("1Kbps") == Approx(1e3));
  CHECK(parse_bandwidth("400Mbps") == Approx(4e8));
  CHECK(parse_bandwidth("100Gbps") == Approx(1e11));
  CHECK(parse_bandwidth("1.6Tbps") == Approx(1.6e12));
  CHECK(parse_bandwidth("2.5Gbps") == Approx(2.5e9));
  CHECK_THROWS_WITH(parse_bandwidth("100Gbs"), Contains("'100Gbs'") && Contains("'Gbs'") &&
                                                   Contains("bps, Kbps, Mbps, Gbps, Tbps"));
  CHECK_THROWS_WITH(parse_bandwidth("100"), Contains("no unit"));
  CHECK_THROWS_WITH(parse_bandwidth("0"), Contains("positive"));
  CHECK_THROWS_WITH(parse_bandwidth("0Gbps"), Contains("positive"));
  CHECK_THROWS_AS(parse_bandwidth("-1Gbps"), ConfigError);
  CHECK_THROWS_AS(parse_bandwidth("fast"), ConfigError);
  CHECK_THROWS_AS(parse_bandwidth("5 parsecs"), ConfigError);
}

TEST_CASE("config: parse_size accepts every unit, bare bytes and whole-byte decimals",
          "[config][units]") {
  CHECK(parse_size("64") == 64);
  CHECK(parse_size("0") == 0);
  CHECK(parse_size("9000B") == 9000);
  CHECK(parse_size("4KiB") == 4096);
  CHECK(parse_size("1MiB") == 1024 * 1024);
  CHECK(parse_size("1GiB") == 1024ull * 1024 * 1024);
  CHECK(parse_size("2KB") == 2000);
  CHECK(parse_size("3MB") == 3000000);
  CHECK(parse_size("1GB") == 1000000000ull);
  CHECK(parse_size("1.5KiB") == 1536);
  CHECK_THROWS_WITH(parse_size("1.5B"), Contains("'1.5B'") && Contains("whole number of bytes"));
  CHECK_THROWS_WITH(parse_size("-1B"), Contains("'-1B'"));
  CHECK_THROWS_WITH(parse_size("4kib"), Contains("'kib'") && Contains("KiB"));
  CHECK_THROWS_AS(parse_size("fast"), ConfigError);
  CHECK_THROWS_AS(parse_size("5 parsecs"), ConfigError);
  CHECK_THROWS_AS(parse_size("100000000000GiB"), ConfigError);  // > 2^64
}

TEST_CASE("config: format_time, format_size and format_bandwidth pick the largest exact unit",
          "[config][units]") {
  CHECK(format_time(0) == "0ns");
  CHECK(format_time(1) == "1ps");
  CHECK(format_time(1500 * kNs) == "1500ns");
  CHECK(format_time(2 * kUs) == "2us");
  CHECK(format_time(3 * kSec) == "3s");
  CHECK(format_size(0) == "0B");
  CHECK(format_size(100) == "100B");
  CHECK(format_size(4096) == "4KiB");
  CHECK(format_size(3u << 20) == "3MiB");
  CHECK(format_size(1ull << 30) == "1GiB");
  CHECK(format_bandwidth(100e9) == "100Gbps");
  CHECK(format_bandwidth(2.5e9) == "2500Mbps");
  CHECK(format_bandwidth(1.6e12) == "1600Gbps");
  CHECK(format_bandwidth(2e12) == "2Tbps");
  CHECK(format_bandwidth(10) == "10bps");
  // Round trips.
  for (Tick t : {Tick(1), Tick(999), 1500 * kNs, 7 * kMs}) CHECK(parse_time(format_time(t)) == t);
  for (double b : {1.0, 999.0, 25e9, 2.5e9, 100e9, 1.6e12, 123456789.0})
    CHECK(parse_bandwidth(format_bandwidth(b)) == b);
  for (uint64_t b : {uint64_t(1), uint64_t(1000), uint64_t(4096), uint64_t(5) << 30})
    CHECK(parse_size(format_size(b)) == b);
}

// ---------------------------------------------------------------------------------------------
// Config: defaults, kinds, ranges

TEST_CASE("config: defaults are parsed and typed accessors return them", "[config]") {
  Schema s = test_schema();
  Config c(s);
  CHECK(c.time("a.time") == kUs);
  CHECK(c.bandwidth("a.bw") == Approx(1e10));
  CHECK(c.size("a.size") == 4096);
  CHECK(c.integer("a.count") == 16);
  CHECK(c.real("a.ratio") == Approx(0.5));
  CHECK_FALSE(c.boolean("a.flag"));
  CHECK(c.str("a.mode") == "fast");
  CHECK(c.str("b.name").empty());
  CHECK(c.source("a.count") == "default");
  // Reading a parameter as the wrong kind or an undeclared one is a programming error.
  CHECK_THROWS_AS(c.integer("a.time"), std::logic_error);
  CHECK_THROWS_AS(c.integer("nope"), std::logic_error);
}

TEST_CASE("config: a schema refuses a key declared twice and a default that does not parse",
          "[config]") {
  Schema s;
  s.add({"x", Kind::kInt, "1", "x"});
  CHECK_THROWS_AS(s.add({"x", Kind::kInt, "2", "x again"}), std::logic_error);
  Schema bad;
  bad.add({"t", Kind::kTime, "100", "a time default without a unit"});
  CHECK_THROWS_AS(Config(bad), std::logic_error);
}

TEST_CASE("config: --set values of every kind", "[config][set]") {
  Schema s = test_schema();
  Config c(s);
  c.apply_override("a.time=250ns");
  c.apply_override("a.bw=25Gbps");
  c.apply_override("a.size=1MiB");
  c.apply_override("a.count=1024");
  c.apply_override("a.ratio=0.25");
  c.apply_override("a.flag=true");
  c.apply_override("a.mode=slow");
  c.apply_override("b.name=hello world");
  CHECK(c.time("a.time") == 250 * kNs);
  CHECK(c.bandwidth("a.bw") == Approx(25e9));
  CHECK(c.size("a.size") == 1024 * 1024);
  CHECK(c.integer("a.count") == 1024);
  CHECK(c.real("a.ratio") == Approx(0.25));
  CHECK(c.boolean("a.flag"));
  CHECK(c.str("a.mode") == "slow");
  CHECK(c.str("b.name") == "hello world");
  c.apply_override("a.flag=0");
  CHECK_FALSE(c.boolean("a.flag"));
  c.apply_override("a.flag=1");
  CHECK(c.boolean("a.flag"));
}

TEST_CASE("config: integers are decimal, as in TOML: leading zeros and hexadecimal are refused",
          "[config][numbers]") {
  Schema s = test_schema();
  Config c(s);
  c.apply_override("a.count=10");
  CHECK(c.integer("a.count") == 10);
  c.apply_override("b.nested.depth=0");
  CHECK(c.integer("b.nested.depth") == 0);
  // strtoll(.., 0) read these as 8 and 16.
  std::string m = config_error([&] { c.apply_override("a.count=010"); });
  CHECK_THAT(m, Contains("--set") && Contains("'a.count'") && Contains("'010'") &&
                    Contains("leading zero"));
  m = config_error([&] { c.apply_override("a.count=0x10"); });
  CHECK_THAT(m, Contains("'a.count'") && Contains("'0x10'") && Contains("hexadecimal"));
  CHECK_THAT(config_error([&] { c.apply_override("a.count=0X1F"); }), Contains("hexadecimal"));
  CHECK_THAT(config_error([&] { c.apply_override("a.count=00"); }), Contains("leading zero"));
  CHECK_THAT(config_error([&] { c.apply_override("a.count=+5"); }), Contains("'+'"));
  CHECK_THAT(config_error([&] { c.apply_override("a.count=1e2"); }), Contains("not an integer"));
  CHECK_THAT(config_error([&] { c.apply_override("a.count=5 5"); }), Contains("not an integer"));
  CHECK(c.integer("a.count") == 10);  // every refused value left it alone
  // A negative integer is read as such and meets the bounds check.
  CHECK_THAT(config_error([&] { c.apply_override("c.lo=-3"); }),
             Contains("'-3'") && Contains("must be >= 2"));
}

TEST_CASE("config: numbers and the numbers of unit values are plain decimal", "[config][numbers]") {
  Schema s = test_schema();
  Config c(s);
  c.apply_override("a.ratio=0.25");
  CHECK(c.real("a.ratio") == Approx(0.25));
  c.apply_override("a.ratio=2.5e-1");
  CHECK(c.real("a.ratio") == Approx(0.25));
  for (const char* bad : {"0x0.8p0", "inf", "nan", "+0.5", ".5", "5.", "00.5", "0.5x"})
    CHECK_THAT(config_error([&] { c.apply_override(std::string("a.ratio=") + bad); }),
               Contains("'a.ratio'") && Contains(std::string("'") + bad + "'"));
  // strtod read "0x64Gbps" as 100 Gb/s.
  std::string m = config_error([&] { c.apply_override("a.bw=0x64Gbps"); });
  CHECK_THAT(m, Contains("'a.bw'") && Contains("'0x64Gbps'") && Contains("hexadecimal"));
  CHECK_THAT(config_error([&] { c.apply_override("a.time=010ns"); }),
             Contains("'010ns'") && Contains("leading zero"));
  CHECK_THAT(config_error([&] { c.apply_override("a.size=0x100"); }), Contains("hexadecimal"));
  CHECK_THAT(config_error([&] { c.apply_override("a.time=infns"); }), Contains("decimal number"));
  CHECK_THAT(config_error([&] { c.apply_override("a.bw=+10Gbps"); }), Contains("'+'"));
  CHECK_THAT(config_error([&] { c.apply_override("a.time=1.ns"); }), Contains("decimal point"));
  CHECK_THROWS_WITH(parse_time("nanns"), Contains("decimal number"));
  CHECK_THROWS_WITH(parse_size("0b101"), Contains("'0b101'"));
  // Decimal forms that stay accepted: a fraction, an exponent, a space before the unit, 0.
  CHECK(parse_time("1.5e3ns") == 1500 * kNs);
  CHECK(parse_time("0.5 us") == 500 * kNs);
  CHECK(parse_bandwidth("1E1Gbps") == Approx(10e9));
  CHECK(parse_size("0") == 0);
  CHECK(parse_size("0.5KiB") == 512);
}

TEST_CASE("config: values outside [min, max] are refused with the range in the key's unit",
          "[config][range]") {
  Schema s = test_schema();
  Config c(s);
  std::string m = config_error([&] { c.apply_override("a.count=0"); });
  CHECK_THAT(m, Contains("--set") && Contains("'a.count'") && Contains("'0'") &&
                    Contains("must be in [1, 1024]"));
  m = config_error([&] { c.apply_override("a.count=1025"); });
  CHECK_THAT(m, Contains("'1025'") && Contains("must be in [1, 1024]"));
  m = config_error([&] { c.apply_override("a.time=2s"); });
  CHECK_THAT(m, Contains("'a.time'") && Contains("'2s'") && Contains("must be in [0ns, 1s]"));
  m = config_error([&] { c.apply_override("a.size=32B"); });
  CHECK_THAT(m, Contains("'a.size'") && Contains("'32B'") && Contains("must be in [64B, 1MiB]"));
  m = config_error([&] { c.apply_override("a.size=2MiB"); });
  CHECK_THAT(m, Contains("must be in [64B, 1MiB]"));
  m = config_error([&] { c.apply_override("a.bw=2Tbps"); });
  CHECK_THAT(m, Contains("'a.bw'") && Contains("'2Tbps'") && Contains("must be in [") &&
                    Contains("1000Gbps]"));
  m = config_error([&] { c.apply_override("a.ratio=1.5"); });
  CHECK_THAT(m, Contains("'a.ratio'") && Contains("must be in [0, 1]"));
  m = config_error([&] { c.apply_override("c.lo=1"); });
  CHECK_THAT(m, Contains("'c.lo'") && Contains("must be >= 2"));
  // The bounds themselves are inside.
  c.apply_override("a.count=1");
  c.apply_override("a.count=1024");
  c.apply_override("a.size=64B");
  c.apply_override("a.size=1MiB");
  c.apply_override("a.time=0");
  c.apply_override("a.time=1s");
  CHECK(c.time("a.time") == kSec);
  // A refused value leaves the previous one in place.
  CHECK_THROWS_AS(c.apply_override("a.count=5000"), ConfigError);
  CHECK(c.integer("a.count") == 1024);
}

TEST_CASE("config: bad values of each kind name the key, the value and the reason", "[config]") {
  Schema s = test_schema();
  Config c(s);
  CHECK_THAT(config_error([&] { c.apply_override("a.count=many"); }),
             Contains("'a.count'") && Contains("'many'") && Contains("not an integer"));
  CHECK_THAT(config_error([&] { c.apply_override("a.count=1.5"); }), Contains("not an integer"));
  CHECK_THAT(config_error([&] { c.apply_override("a.count=99999999999999999999999"); }),
             Contains("not an integer"));
  CHECK_THAT(config_error([&] { c.apply_override("a.ratio=half"); }), Contains("not a number"));
  CHECK_THAT(config_error([&] { c.apply_override("a.flag=yes"); }),
             Contains("'a.flag'") && Contains("'yes'") && Contains("not true or false"));
  CHECK_THAT(config_error([&] { c.apply_override("a.mode=medium"); }),
             Contains("'a.mode'") && Contains("'medium'") && Contains("fast, slow"));
  CHECK_THAT(config_error([&] { c.apply_override("a.time=100"); }),
             Contains("'a.time'") && Contains("no unit"));
  CHECK_THAT(config_error([&] { c.apply_override("a.bw=100"); }),
             Contains("'a.bw'") && Contains("no unit"));
  CHECK_THAT(config_error([&] { c.apply_override("a.size=1.5B"); }),
             Contains("'a.size'") && Contains("'1.5B'"));
}

// ---------------------------------------------------------------------------------------------
// --set parsing

TEST_CASE("config: --set parsing: key=value, quotes, '=' in the value, missing '='",
          "[config][set]") {
  Schema s = test_schema();
  Config c(s);
  c.apply_override("a.mode=\"slow\"");  // the quotes of a shell-quoted TOML string are removed
  CHECK(c.str("a.mode") == "slow");
  c.apply_override("b.name=\"\"");
  CHECK(c.str("b.name").empty());
  c.apply_override("b.name=x=y");  // only the first '=' separates
  CHECK(c.str("b.name") == "x=y");
  c.apply_override("a.time=\"2us\"");
  CHECK(c.time("a.time") == 2 * kUs);
  CHECK(c.source("a.time") == "--set");

  CHECK_THAT(config_error([&] { c.apply_override("a.count"); }),
             Contains("--set 'a.count'") && Contains("expected key=value"));
  CHECK_THAT(config_error([&] { c.apply_override("=5"); }), Contains("expected key=value"));
  CHECK_THAT(config_error([&] { c.apply_override(""); }), Contains("expected key=value"));
  CHECK_THAT(config_error([&] { c.apply_override("a.count="); }), Contains("not an integer"));
  CHECK_THAT(config_error([&] { c.apply_override("nope=1"); }),
             Contains("--set") && Contains("unknown key 'nope'"));
}

TEST_CASE("config: --set ignores spaces around the key and the value", "[config][set]") {
  Schema s = test_schema();
  Config c(s);
  c.apply_override("a.bw = 25Gbps");
  CHECK(c.bandwidth("a.bw") == Approx(25e9));
  c.apply_override(" a.count\t=\t12 ");
  CHECK(c.integer("a.count") == 12);
  c.apply_override("a.mode = \"slow\"");  // quotes inside the spaces are removed too
  CHECK(c.str("a.mode") == "slow");
  c.apply_override("b.name = two words ");  // spaces inside the value stay
  CHECK(c.str("b.name") == "two words");
  CHECK_THAT(config_error([&] { c.apply_override(" = 5"); }), Contains("expected key=value"));
  CHECK_THAT(config_error([&] { c.apply_override("a.count = "); }), Contains("not an integer"));
}

TEST_CASE("config: long values and keys are cut in error messages", "[config][long]") {
  CHECK(excerpt("short") == "short");
  CHECK(excerpt(std::string(60, 'x')) == std::string(60, 'x'));
  CHECK(excerpt(std::string(61, 'x')) == std::string(60, 'x') + "\u2026 (61 bytes)");
  // A cut never splits a UTF-8 character: 59 ASCII bytes, then 2-byte characters.
  std::string utf = std::string(59, 'a') + "\u00e9\u00e9\u00e9";
  CHECK(excerpt(utf) == std::string(59, 'a') + "\u2026 (65 bytes)");

  TempDir d("long");
  Schema s = test_schema();
  Config c(s);
  const std::string big(10 * 1000 * 1000, '7');
  for (const std::string& set : {"a.count=" + big, "a.size=" + big + "B", "a.mode=" + big,
                                 "a.time=" + big + "x", big + "=1", big}) {
    std::string m = config_error([&] { c.apply_override(set); });
    CHECK(m.size() < 400);
    CHECK_THAT(
        m, Contains("\u2026 (1000000") && Contains(" bytes)") && !Contains(std::string(61, '7')));
  }
  // The same from a file.
  std::string f = d.write("big.toml", "[a]\nmode = \"" + big + "\"\n");
  std::string m = config_error([&] { c.load_file(f); });
  CHECK(m.size() < 400);
  CHECK_THAT(m, Contains(f + ":2") && Contains("'a.mode'") && Contains("(10000000 bytes)"));
}

// ---------------------------------------------------------------------------------------------
// Files

TEST_CASE("config: a file sets values, nested tables become dotted keys, source is file:line",
          "[config][file]") {
  TempDir d("file");
  std::string f = d.write("cfg.toml",
                          "# comment\n"
                          "[a]\n"
                          "time = \"1.5us\"\n"
                          "count = 7\n"
                          "ratio = 0.75\n"
                          "flag = true\n"
                          "\n"
                          "[b.nested]\n"
                          "depth = 42\n"
                          "[c]\n"
                          "rate = \"25Gbps\"\n");
  Schema s = test_schema();
  Config c(s);
  c.load_file(f);
  CHECK(c.time("a.time") == 1500 * kNs);
  CHECK(c.integer("a.count") == 7);
  CHECK(c.real("a.ratio") == Approx(0.75));
  CHECK(c.boolean("a.flag"));
  CHECK(c.integer("b.nested.depth") == 42);
  CHECK(c.bandwidth("c.rate") == Approx(25e9));
  CHECK(c.source("a.time") == f + ":3");
  CHECK(c.source("a.count") == f + ":4");
  CHECK(c.source("b.nested.depth") == f + ":9");
  CHECK(c.source("c.rate") == f + ":11");
  CHECK(c.source("a.size") == "default");
  // --set overrides a file value and becomes the source.
  c.apply_override("a.count=9");
  CHECK(c.integer("a.count") == 9);
  CHECK(c.source("a.count") == "--set");
}

TEST_CASE("config: dotted keys and inline tables in TOML", "[config][file]") {
  TempDir d("dotted");
  std::string f = d.write("cfg.toml", "a.count = 3\nb = { nested = { depth = 4 } }\n");
  Schema s = test_schema();
  Config c(s);
  c.load_file(f);
  CHECK(c.integer("a.count") == 3);
  CHECK(c.integer("b.nested.depth") == 4);
}

TEST_CASE("config: unknown keys are refused with file:line and a did-you-mean hint",
          "[config][file][unknown]") {
  TempDir d("unknown");
  Schema s = test_schema();
  {
    std::string f = d.write("typo_section.toml", "[a]\ncount = 2\n[x]\nrate = \"1Gbps\"\n");
    Config c(s);
    std::string m = config_error([&] { c.load_file(f); });
    CHECK_THAT(m, Contains(f + ":4") && Contains("unknown key 'x.rate'") &&
                      Contains("did you mean: c.rate"));
  }
  {
    std::string f = d.write("no_hint.toml", "[a]\ncuont = 2\n");
    Config c(s);
    std::string m = config_error([&] { c.load_file(f); });
    CHECK_THAT(m, Contains(f + ":2") && Contains("unknown key 'a.cuont'"));
    CHECK_THAT(m, !Contains("did you mean"));
  }
  {
    // An unknown key whose value has an unsupported type is still reported as unknown.
    std::string f = d.write("unknown_array.toml", "[z]\nlist = [1, 2]\n");
    Config c(s);
    CHECK_THAT(config_error([&] { c.load_file(f); }),
               Contains(f + ":2") && Contains("unknown key 'z.list'"));
  }
  {
    Config c(s);
    CHECK_THAT(config_error([&] { c.apply_override("x.count=1"); }),
               Contains("unknown key 'x.count'") && Contains("did you mean: a.count"));
  }
}

TEST_CASE("config: wrong TOML value types are refused naming file:line, key and value",
          "[config][file][types]") {
  TempDir d("types");
  Schema s = test_schema();
  auto load_error = [&](const std::string& name, const std::string& text) {
    std::string f = d.write(name, text);
    Config c(s);
    return std::make_pair(f, config_error([&] { c.load_file(f); }));
  };
  {
    auto [f, m] = load_error("str_for_int.toml", "[a]\n\ncount = \"many\"\n");
    CHECK_THAT(m, Contains(f + ":3") && Contains("'a.count'") && Contains("'many'") &&
                      Contains("not an integer"));
  }
  {
    auto [f, m] = load_error("float_for_int.toml", "[a]\ncount = 1.5\n");
    CHECK_THAT(m, Contains(f + ":2") && Contains("'a.count'") && Contains("'1.5'"));
  }
  {
    auto [f, m] = load_error("int_for_time.toml", "[a]\ntime = 5\n");
    CHECK_THAT(
        m, Contains(f + ":2") && Contains("'a.time'") && Contains("'5'") && Contains("no unit"));
  }
  {
    auto [f, m] = load_error("str_for_bool.toml", "[a]\nflag = \"yes\"\n");
    CHECK_THAT(m, Contains(f + ":2") && Contains("'a.flag'") && Contains("'yes'"));
  }
  {
    auto [f, m] = load_error("bool_for_int.toml", "[a]\ncount = true\n");
    CHECK_THAT(m, Contains(f + ":2") && Contains("'a.count'") && Contains("'true'"));
  }
  {
    auto [f, m] = load_error("array.toml", "[a]\ncount = [1, 2]\n");
    CHECK_THAT(m,
               Contains(f + ":2") && Contains("'a.count'") && Contains("unsupported value type"));
  }
  {
    auto [f, m] = load_error("date.toml", "[a]\ntime = 1979-05-27\n");
    CHECK_THAT(m, Contains(f + ":2") && Contains("'a.time'") && Contains("unsupported value type"));
  }
  {
    auto [f, m] = load_error("range.toml", "[a]\ncount = 2000\n");
    CHECK_THAT(m, Contains(f + ":2") && Contains("'a.count'") && Contains("'2000'") &&
                      Contains("must be in [1, 1024]"));
  }
  {
    auto [f, m] = load_error("unit.toml", "[c]\nrate = \"100Gbs\"\n");
    CHECK_THAT(m, Contains(f + ":2") && Contains("'c.rate'") && Contains("'100Gbs'") &&
                      Contains("unknown bandwidth unit 'Gbs'"));
  }
}

TEST_CASE("config: TOML syntax errors report file:line:col", "[config][file][syntax]") {
  TempDir d("syntax");
  Schema s = test_schema();
  {
    std::string f = d.write("header.toml", "[a]\ncount = 2\n[b\n");
    Config c(s);
    std::string m = config_error([&] { c.load_file(f); });
    CHECK_THAT(m, Contains(f + ":3:") && Contains("TOML syntax error"));
  }
  {
    //                                       col: 123456789
    std::string f = d.write("value.toml", "[a]\n\ncount = = 2\n");
    Config c(s);
    std::string m = config_error([&] { c.load_file(f); });
    CHECK_THAT(m, Contains(f + ":3:9:") && Contains("TOML syntax error"));
  }
  {
    std::string f = d.write("dup.toml", "[a]\ncount = 2\ncount = 3\n");
    Config c(s);
    std::string m = config_error([&] { c.load_file(f); });
    CHECK_THAT(m, Contains(f + ":3:") && Contains("TOML syntax error"));
  }
}

TEST_CASE("config: loading a file that does not exist is an error naming it", "[config][file]") {
  TempDir d("missing");
  Schema s = test_schema();
  Config c(s);
  std::string f = d.file("nope.toml");
  std::string m = config_error([&] { c.load_file(f); });
  CHECK_THAT(m, Contains(f));
}

TEST_CASE("config: include composes presets, later files and the including file override",
          "[config][file][include]") {
  TempDir d("include");
  std::string base = d.write("presets/base.toml",
                             "[a]\n"
                             "count = 1\n"        // 2: overridden by mid.toml
                             "size = \"128B\"\n"  // 3: overridden by other.toml
                             "time = \"3us\"\n"   // 4: kept
                             "ratio = 0.1\n");    // 5: overridden by --set
  std::string mid = d.write("presets/mid.toml",
                            "include = \"base.toml\"\n"  // a plain string works too
                            "[a]\n"
                            "count = 2\n"          // 3: overridden by top.toml
                            "mode = \"slow\"\n");  // 4: kept
  std::string other = d.write("other.toml", "[a]\nsize = \"256B\"\ncount = 5\n");
  std::string top = d.write("top.toml",
                            "include = [\"presets/mid.toml\", \"other.toml\"]\n"
                            "[a]\n"
                            "count = 3\n");
  Schema s = test_schema();
  Config c(s);
  c.load_file(top);
  c.apply_override("a.ratio=0.9");
  CHECK(c.integer("a.count") == 3);
  CHECK(c.source("a.count") == top + ":3");
  CHECK(c.size("a.size") == 256);
  CHECK(c.source("a.size") == other + ":2");
  CHECK(c.time("a.time") == 3 * kUs);
  CHECK(c.source("a.time") == base + ":4");
  CHECK(c.str("a.mode") == "slow");
  CHECK(c.source("a.mode") == mid + ":4");
  CHECK(c.real("a.ratio") == Approx(0.9));
  CHECK(c.source("a.ratio") == "--set");
  CHECK(c.source("a.flag") == "default");

  // Order of the include list matters: the last one wins.
  std::string rev = d.write("rev.toml", "include = [\"other.toml\", \"presets/mid.toml\"]\n");
  Config c2(s);
  c2.load_file(rev);
  CHECK(c2.integer("a.count") == 2);
  CHECK(c2.source("a.count") == mid + ":3");
  CHECK(c2.size("a.size") == 128);
}

TEST_CASE("config: include paths are relative to the including file", "[config][file][include]") {
  TempDir d("relinclude");
  d.write("x/common.toml", "[a]\ncount = 11\n");
  d.write("x/y/leaf.toml", "include = [\"../common.toml\"]\n[a]\nflag = true\n");
  std::string top = d.write("top.toml", "include = [\"x/y/leaf.toml\"]\n");
  Schema s = test_schema();
  Config c(s);
  c.load_file(top);
  CHECK(c.integer("a.count") == 11);
  CHECK(c.boolean("a.flag"));
}

TEST_CASE("config: include errors: missing file, non-string entry, loop, error inside an include",
          "[config][file][include]") {
  TempDir d("includeerr");
  Schema s = test_schema();
  {
    std::string f = d.write("missing.toml", "include = [\"nope.toml\"]\n");
    Config c(s);
    std::string m = config_error([&] { c.load_file(f); });
    CHECK_THAT(m, Contains(f) && Contains("include") && Contains("nope.toml") &&
                      Contains("does not exist"));
  }
  {
    std::string f = d.write("notstring.toml", "include = [5]\n");
    Config c(s);
    CHECK_THAT(config_error([&] { c.load_file(f); }), Contains(f) && Contains("include"));
  }
  {
    std::string f = d.write("loop_a.toml", "include = [\"loop_b.toml\"]\n");
    std::string b = d.write("loop_b.toml", "\ninclude = [\"loop_a.toml\"]\n");
    Config c(s);
    CHECK_THAT(config_error([&] { c.load_file(f); }),
               Contains(b + ":2") && Contains("include cycle") && Contains("top file"));
  }
  {
    std::string inner = d.write("inner.toml", "[a]\n\ncount = 0\n");
    std::string f = d.write("outer.toml", "include = [\"inner.toml\"]\n");
    Config c(s);
    CHECK_THAT(config_error([&] { c.load_file(f); }),
               Contains(inner + ":3") && Contains("'a.count'") && Contains("'0'"));
  }
}

TEST_CASE("config: include errors name the file and line of the include entry",
          "[config][file][include]") {
  TempDir d("includeline");
  Schema s = test_schema();
  d.write("ok.toml", "[a]\ncount = 2\n");
  {
    std::string f = d.write("missing.toml", "[a]\n# x\n\ninclude_not = 1\n");
    f = d.write("missing2.toml", "include = [\n  \"ok.toml\",\n  \"nope.toml\",\n]\n");
    Config c(s);
    CHECK_THAT(config_error([&] { c.load_file(f); }), Contains(f + ":3: key 'include'") &&
                                                          Contains("nope.toml") &&
                                                          Contains("does not exist"));
  }
  {
    std::string f = d.write("notstring.toml", "\n\ninclude = [\"ok.toml\", 5]\n");
    Config c(s);
    CHECK_THAT(config_error([&] { c.load_file(f); }), Contains(f + ":3: key 'include'"));
  }
  {
    d.write("sub/dir.toml/x", "");
    std::string f = d.write("dir.toml", "include = \"sub/dir.toml\"\n");
    Config c(s);
    CHECK_THAT(config_error([&] { c.load_file(f); }),
               Contains(f + ":1: key 'include'") && Contains("not a regular file"));
  }
}

TEST_CASE("config: a file included twice on one include path is a cycle naming both includes",
          "[config][file][include]") {
  TempDir d("cycle");
  Schema s = test_schema();
  // top -> a (top:2) -> b (a:1) -> a (b:3): a is included at top:2 and again at b:3.
  std::string top = d.write("top.toml", "[a]\ninclude_ok = 0\n");
  top = d.write("top.toml", "\ninclude = [\"x/a.toml\"]\n");
  std::string a = d.write("x/a.toml", "include = [\"b.toml\"]\n");
  std::string b = d.write("x/b.toml", "[a]\n\n\n");
  b = d.write("x/b.toml", "\n\ninclude = [\"../x/./a.toml\"]\n");  // another name of a.toml
  Config c(s);
  std::string m = config_error([&] { c.load_file(top); });
  CHECK_THAT(m, Contains(b + ":3") && Contains(top + ":2") && Contains("include cycle") &&
                    Contains("a.toml"));
  // A file included twice on two different paths (a diamond) is no cycle.
  std::string leaf = d.write("d/leaf.toml", "[a]\ncount = 4\n");
  d.write("d/l.toml", "include = \"leaf.toml\"\n");
  d.write("d/r.toml", "include = \"leaf.toml\"\n");
  std::string diamond =
      d.write("d/top.toml", "include = [\"l.toml\", \"r.toml\", \"leaf.toml\"]\n");
  Config c2(s);
  c2.load_file(diamond);
  CHECK(c2.integer("a.count") == 4);
  CHECK(c2.source("a.count") == leaf + ":2");
}

TEST_CASE("config: include fan-out is bounded: many includes of includes are an error, not a hang",
          "[config][file][include]") {
  TempDir d("fanout");
  Schema s = test_schema();
  // f0 includes f1 ten times, f1 includes f2 ten times, ...: 10^k loads at depth k. Unbounded,
  // four levels are 1111 parses (eight are 10^7, which never finishes).
  auto make = [&](int levels) {
    for (int i = 0; i < levels; ++i) {
      std::string inc;
      for (int k = 0; k < 10; ++k) inc += fmt::format("{}\"f{}.toml\"", k ? ", " : "", i + 1);
      d.write(fmt::format("f{}.toml", i), "include = [" + inc + "]\n");
    }
    d.write(fmt::format("f{}.toml", levels), "[a]\ncount = 3\n");
    return d.file("f0.toml");
  };
  std::string f0 = make(3);
  Config c(s);
  std::string m = config_error([&] { c.load_file(f0); });
  CHECK_THAT(m, Contains("key 'include'") && Contains("f3.toml") &&
                    Contains(std::to_string(Config::kMaxFilesLoaded)));
  // 2 levels of 10: 111 loads is too many as well, 1 level of 10 (11 loads) is fine.
  d.write("g0.toml", "include = [\"f2.toml\", \"f2.toml\"]\n");
  Config c2(s);
  c2.load_file(d.file("g0.toml"));
  CHECK(c2.integer("a.count") == 3);
  // Nesting is limited as well: a chain of 10 files is refused, naming the include entry.
  for (int i = 0; i < 10; ++i)
    d.write(fmt::format("chain{}.toml", i), fmt::format("include = \"chain{}.toml\"\n", i + 1));
  d.write("chain10.toml", "");
  Config c3(s);
  CHECK_THAT(config_error([&] { c3.load_file(d.file("chain0.toml")); }),
             Contains(d.file("chain8.toml") + ":1") && Contains("nested more than 8 deep"));
}

TEST_CASE("config: to_json lists every key with its effective value as text", "[config][json]") {
  TempDir d("json");
  std::string f = d.write("cfg.toml", "[a]\ncount = 12\ntime = \"2us\"\n");
  Schema s = test_schema();
  Config c(s);
  c.load_file(f);
  c.apply_override("a.mode=slow");
  nlohmann::json j = c.to_json();
  REQUIRE(j.is_object());
  CHECK(j.size() == s.all().size());
  for (const auto& spec : s.all()) CHECK(j.contains(spec.key));
  CHECK(j["a.count"] == "12");
  CHECK(j["a.time"] == "2us");
  CHECK(j["a.mode"] == "slow");
  CHECK(j["a.size"] == "4KiB");  // default, as written in the schema
  CHECK(j["b.nested.depth"] == "3");
}

TEST_CASE("config: Schema::markdown has one row per parameter with kind, default and choices",
          "[config][markdown]") {
  Schema s = test_schema();
  std::string md = s.markdown();
  CHECK_THAT(md, Contains("| key | kind | default | allowed | description |"));
  CHECK_THAT(md, Contains("| `a.time` | time | `1us` | 0ns .. 1s | a time |"));
  CHECK_THAT(md, Contains("| `a.mode` | string | `fast` | `fast`, `slow` | a choice |"));
  CHECK_THAT(md, Contains("| `c.lo` | integer | `5` | >= 2 |"));
  size_t rows = 0;
  for (size_t p = md.find("\n| `"); p != std::string::npos; p = md.find("\n| `", p + 1)) ++rows;
  CHECK(rows == s.all().size());
}

TEST_CASE("config: a table_array key takes an array of tables from a file, text from --set",
          "[config][file][table_array]") {
  TempDir d("table_array");
  Schema s = test_schema();
  Spec rules{"r.rule", Kind::kString, "", "rules"};
  rules.table_array = true;
  s.add(rules);
  {
    Config c(s);
    const std::string f = d.write("a.toml",
                                  "[r]\n\n[[r.rule]]\nb = 2\na = \"x\"\n\n[[r.rule]]\nflag = true\n"
                                  "n = 0x10\n");
    c.load_file(f);
    // Each table "k=v ..." (toml++ lists a table's keys in order of name), joined by "; ".
    CHECK(c.str("r.rule") == "a=x b=2; flag=true n=16");
    CHECK(c.source("r.rule") == f + ":3");
    CHECK(c.entry_sources("r.rule") == std::vector<std::string>{f + ":3", f + ":7"});
    // --set replaces it, as text; no table lines then.
    c.apply_override("r.rule=a=y");
    CHECK(c.str("r.rule") == "a=y");
    CHECK(c.entry_sources("r.rule").empty());
  }
  {
    Config c(s);
    c.load_file(d.write("inline.toml", "[r]\nrule = [{a = \"x\"}, {a = \"y\", b = 1.5}]\n"));
    CHECK(c.str("r.rule") == "a=x; a=y b=1.5");
    CHECK(c.entry_sources("r.rule").size() == 2);
  }
  auto load_error = [&](const std::string& name, const std::string& text) {
    std::string f = d.write(name, text);
    Config c(s);
    return std::make_pair(f, config_error([&] { c.load_file(f); }));
  };
  {
    auto [f, m] = load_error("not_table.toml", "[r]\nrule = [1, 2]\n");
    CHECK_THAT(m, Contains(f + ":2") && Contains("'r.rule'") && Contains("must be a table"));
  }
  {
    auto [f, m] = load_error("nested.toml", "[[r.rule]]\na = \"x\"\nb = [1]\n");
    CHECK_THAT(m,
               Contains(f + ":3") && Contains("'r.rule.b'") && Contains("unsupported value type"));
  }
  {
    auto [f, m] = load_error("space.toml", "[[r.rule]]\na = \"x y\"\n");
    CHECK_THAT(m, Contains(f + ":2") && Contains("'r.rule.a'") && Contains("'x y'"));
  }
  {
    // Any other key: an array is still refused.
    auto [f, m] = load_error("plain.toml", "[[b.name]]\na = 1\n");
    CHECK_THAT(m, Contains(f + ":1") && Contains("'b.name'") && Contains("unsupported value type"));
  }
}
