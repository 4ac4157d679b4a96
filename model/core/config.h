// Configuration: typed, unit-bearing parameters declared once in a schema (key, kind, default,
// description), loaded from TOML files and `--set key=value` overrides, validated before the
// simulation starts. Every error names the file, the key and the bad value.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/core/units.h"

namespace rn::cfg {

enum class Kind { kTime, kBandwidth, kSize, kInt, kReal, kBool, kString };
const char* kind_name(Kind k);

struct Spec {
  Spec(std::string k, Kind kd, std::string d, std::string ds, double mn = -1e300, double mx = 1e300,
       std::vector<std::string> ch = {})
      : key(std::move(k)),
        kind(kd),
        def(std::move(d)),
        desc(std::move(ds)),
        min(mn),
        max(mx),
        choices(std::move(ch)) {}
  std::string key;  // dotted: "nic.link.rate"
  Kind kind;
  std::string def;  // default, written as in a config file ("100Gbps", "4KiB", "16", "true")
  std::string desc;
  double min, max;                   // inclusive bounds on the value in base units (ps, bit/s, B)
  std::vector<std::string> choices;  // for strings: allowed values (empty = any)
  // For strings: a TOML file may also give the key as an array of tables (`[[link.rule]]`
  // sections, or `rule = [{...}, ...]`). Each table becomes "k=v k=v ..." (its keys in the
  // file's order), the tables joined by "; ": the value's text form, as `--set` takes it.
  bool table_array = false;
};

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parsers for unit-bearing values; throw ConfigError with `what` naming the problem. The number is
// plain decimal: digits (no leading zero), an optional fraction and exponent ("1.5e3ns"); no
// sign, no hexadecimal, no "inf" or "nan".
Tick parse_time(const std::string& s);         // "500ns", "1.5us", "0"
double parse_bandwidth(const std::string& s);  // bits/s: "100Gbps", "25Gbps", "400Mbps"
uint64_t parse_size(const std::string& s);     // bytes: "4KiB", "1MiB", "64", "1GiB", "9000B"
std::string format_time(Tick t);
std::string format_size(uint64_t b);
std::string format_bandwidth(double bps);  // "100Gbps", "2500Mbps"
// A value or key as error messages quote it: itself, or if longer than `max` bytes its first
// `max` bytes and "… (N bytes)".
std::string excerpt(const std::string& s, size_t max = 60);

class Schema {
 public:
  void add(Spec s);
  const Spec* find(const std::string& key) const;
  const std::vector<Spec>& all() const { return specs_; }
  // Markdown table of every parameter, for docs.
  std::string markdown() const;

 private:
  std::vector<Spec> specs_;
  std::map<std::string, size_t> index_;
};

class Config {
 public:
  explicit Config(const Schema& schema);
  // Loads a TOML file. A top-level `include = ["a.toml", ...]` (paths relative to the including
  // file) is loaded first, so presets compose; later values override earlier ones. Includes nest
  // at most kMaxIncludeDepth deep, at most kMaxFilesLoaded files are loaded in all (a file
  // included twice counts twice), and a file that includes itself (directly or not) is an error.
  void load_file(const std::string& path);
  static constexpr int kMaxIncludeDepth = 8;
  static constexpr int kMaxFilesLoaded = 100;
  // "key=value" from the command line; value written as in a file. Spaces around the key and
  // the value are ignored ("key = value").
  void apply_override(const std::string& assignment);

  Tick time(const std::string& key) const;
  double bandwidth(const std::string& key) const;
  uint64_t size(const std::string& key) const;
  int64_t integer(const std::string& key) const;
  double real(const std::string& key) const;
  bool boolean(const std::string& key) const;
  const std::string& str(const std::string& key) const;
  // Where a value came from: "default", a file path, or "--set".
  const std::string& source(const std::string& key) const;
  // For a Spec::table_array key given as an array of tables: where each table is ("file:line"),
  // in order. Otherwise empty.
  std::vector<std::string> entry_sources(const std::string& key) const;

  // Effective configuration, every key with its value as text.
  nlohmann::json to_json() const;
  const Schema& schema() const { return schema_; }

 private:
  struct Value {
    std::string text;
    std::string source;
    Tick t = 0;
    double d = 0;
    uint64_t u = 0;
    int64_t i = 0;
    bool b = false;
  };
  void set(const std::string& key, const std::string& text, const std::string& source);
  const Value& get(const std::string& key, Kind k) const;
  struct IncludeState;
  void load_file_rec(const std::string& path, const std::string& site, IncludeState& st);

  const Schema& schema_;
  std::map<std::string, Value> values_;
  std::map<std::string, std::vector<std::string>> entry_sources_;
};

}  // namespace rn::cfg
