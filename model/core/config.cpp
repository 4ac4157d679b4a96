#include "model/core/config.h"

#include <fmt/core.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <sstream>

namespace rn::cfg {

namespace {

struct Unit {
  const char* name;
  double scale;
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Length of the plain decimal number at s[i..]: digits with no leading zero, then an optional
// fraction (".5") and exponent ("e3", "E-2"). Throws ConfigError (the reason only) for a leading
// zero, hexadecimal, or a point with no digit after it; returns 0 if s[i] is not a digit.
size_t decimal_length(const std::string& s, size_t i) {
  const size_t start = i;
  if (i >= s.size() || !is_digit(s[i])) return 0;
  if (s[i] == '0' && i + 1 < s.size() && (s[i + 1] == 'x' || s[i + 1] == 'X'))
    throw ConfigError("hexadecimal is not allowed (numbers are decimal)");
  if (s[i] == '0' && i + 1 < s.size() && is_digit(s[i + 1]))
    throw ConfigError("a leading zero is not allowed (numbers are decimal, as in TOML)");
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i < s.size() && s[i] == '.') {
    if (i + 1 >= s.size() || !is_digit(s[i + 1]))
      throw ConfigError("a decimal point needs a digit after it");
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    size_t j = i + 1;
    if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
    if (j < s.size() && is_digit(s[j])) {
      while (j < s.size() && is_digit(s[j])) ++j;
      i = j;
    }
  }
  return i - start;
}

// Splits "1.5us" into 1.5 and "us". Throws ConfigError if there is no plain decimal number.
void split_number(const std::string& s, double* num, std::string* unit) {
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  if (i < s.size() && s[i] == '-') throw ConfigError("'" + excerpt(s) + "' is negative");
  if (i < s.size() && s[i] == '+')
    throw ConfigError("'" + excerpt(s) + "': no '+' sign: write the number alone");
  size_t n = 0;
  try {
    n = decimal_length(s, i);
  } catch (const ConfigError& e) {
    throw ConfigError("'" + excerpt(s) + "': " + e.what());
  }
  if (n == 0) throw ConfigError("'" + excerpt(s) + "' does not start with a decimal number");
  double v = std::strtod(s.substr(i, n).c_str(), nullptr);
  std::string u = s.substr(i + n);
  while (!u.empty() && std::isspace(static_cast<unsigned char>(u.front()))) u.erase(u.begin());
  while (!u.empty() && std::isspace(static_cast<unsigned char>(u.back()))) u.pop_back();
  if (!std::isfinite(v)) throw ConfigError("'" + excerpt(s) + "' is not a finite number");
  *num = v;
  *unit = u;
}

double apply_unit(const std::string& s, const Unit* units, size_t n, const char* what,
                  bool unitless_ok) {
  double v;
  std::string u;
  split_number(s, &v, &u);
  if (u.empty()) {
    if (unitless_ok || v == 0) return v;
    std::string all;
    for (size_t k = 0; k < n; ++k) all += std::string(k ? ", " : "") + units[k].name;
    throw ConfigError("'" + excerpt(s) + "' has no unit (a " + what + " needs one of: " + all +
                      ")");
  }
  for (size_t k = 0; k < n; ++k)
    if (u == units[k].name) return v * units[k].scale;
  std::string all;
  for (size_t k = 0; k < n; ++k) all += std::string(k ? ", " : "") + units[k].name;
  throw ConfigError("'" + excerpt(s) + "': unknown " + std::string(what) + " unit '" + excerpt(u) +
                    "' (use " + all + ")");
}

constexpr Unit kTimeUnits[] = {{"ps", 1}, {"ns", 1e3}, {"us", 1e6}, {"ms", 1e9}, {"s", 1e12}};
constexpr Unit kBwUnits[] = {
    {"bps", 1}, {"Kbps", 1e3}, {"Mbps", 1e6}, {"Gbps", 1e9}, {"Tbps", 1e12}};
constexpr Unit kSizeUnits[] = {{"B", 1},
                               {"KiB", 1024.0},
                               {"MiB", 1024.0 * 1024},
                               {"GiB", 1024.0 * 1024 * 1024},
                               {"KB", 1e3},
                               {"MB", 1e6},
                               {"GB", 1e9}};

}  // namespace

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kTime:
      return "time";
    case Kind::kBandwidth:
      return "bandwidth";
    case Kind::kSize:
      return "size";
    case Kind::kInt:
      return "integer";
    case Kind::kReal:
      return "number";
    case Kind::kBool:
      return "boolean";
    case Kind::kString:
      return "string";
  }
  return "?";
}

Tick parse_time(const std::string& s) {
  double ps = apply_unit(s, kTimeUnits, std::size(kTimeUnits), "time", false);
  if (ps > 1.8e19) throw ConfigError("'" + excerpt(s) + "' is too long a time");
  double r = std::round(ps);
  if (std::fabs(r - ps) > 1e-6 * std::max(1.0, ps))
    throw ConfigError("'" + excerpt(s) + "' is not a whole number of picoseconds");
  return static_cast<Tick>(r);
}

double parse_bandwidth(const std::string& s) {
  double v = apply_unit(s, kBwUnits, std::size(kBwUnits), "bandwidth", false);
  if (v <= 0) throw ConfigError("'" + excerpt(s) + "': a bandwidth must be positive");
  return v;
}

uint64_t parse_size(const std::string& s) {
  double v = apply_unit(s, kSizeUnits, std::size(kSizeUnits), "size", true);
  if (v > 1.8e19) throw ConfigError("'" + excerpt(s) + "' is too large");
  if (v != std::floor(v)) throw ConfigError("'" + excerpt(s) + "' is not a whole number of bytes");
  return static_cast<uint64_t>(v);
}

std::string format_time(Tick t) {
  if (t == 0) return "0ns";
  if (t % kSec == 0) return fmt::format("{}s", t / kSec);
  if (t % kMs == 0) return fmt::format("{}ms", t / kMs);
  if (t % kUs == 0) return fmt::format("{}us", t / kUs);
  if (t % kNs == 0) return fmt::format("{}ns", t / kNs);
  return fmt::format("{}ps", t);
}

std::string format_bandwidth(double bps) {
  for (const auto& u : {kBwUnits[4], kBwUnits[3], kBwUnits[2], kBwUnits[1]})
    if (bps >= u.scale && std::fmod(bps, u.scale) == 0)
      return fmt::format("{}{}", bps / u.scale, u.name);
  return fmt::format("{}bps", bps);
}

std::string excerpt(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // UTF-8 start
  return s.substr(0, cut) + fmt::format("… ({} bytes)", s.size());
}

std::string format_size(uint64_t b) {
  if (b && b % (1ull << 30) == 0) return fmt::format("{}GiB", b >> 30);
  if (b && b % (1ull << 20) == 0) return fmt::format("{}MiB", b >> 20);
  if (b && b % (1ull << 10) == 0) return fmt::format("{}KiB", b >> 10);
  return fmt::format("{}B", b);
}

void Schema::add(Spec s) {
  if (index_.count(s.key)) throw std::logic_error("parameter declared twice: " + s.key);
  index_[s.key] = specs_.size();
  specs_.push_back(std::move(s));
}

const Spec* Schema::find(const std::string& key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &specs_[it->second];
}

namespace {
// A bound of a parameter, in its unit.
std::string show_bound(const Spec& s, double x) {
  switch (s.kind) {
    case Kind::kTime:
      return format_time(static_cast<Tick>(x));
    case Kind::kSize:
      return format_size(static_cast<uint64_t>(x));
    case Kind::kBandwidth:
      return fmt::format("{}Gbps", x / 1e9);
    default:
      return fmt::format("{}", x);
  }
}
}  // namespace

std::string Schema::markdown() const {
  std::string out = "| key | kind | default | allowed | description |\n|---|---|---|---|---|\n";
  auto show = show_bound;
  for (const auto& s : specs_) {
    std::string allowed;
    if (!s.choices.empty()) {
      for (const auto& c : s.choices) allowed += (allowed.empty() ? "" : ", ") + ("`" + c + "`");
    } else if (s.kind != Kind::kBool && s.kind != Kind::kString) {
      bool lo = s.min > -1e299, hi = s.max < 1e299;
      if (lo && hi)
        allowed = show(s, s.min) + " .. " + show(s, s.max);
      else if (lo)
        allowed = ">= " + show(s, s.min);
      else if (hi)
        allowed = "<= " + show(s, s.max);
    }
    std::string def = s.def.empty() ? "(empty)" : "`" + s.def + "`";
    out += fmt::format("| `{}` | {} | {} | {} | {} |\n", s.key, kind_name(s.kind), def, allowed,
                       s.desc);
  }
  return out;
}

Config::Config(const Schema& schema) : schema_(schema) {
  for (const auto& s : schema.all()) {
    try {
      set(s.key, s.def, "default");
    } catch (const ConfigError& e) {
      throw std::logic_error(std::string("bad default: ") + e.what());
    }
  }
}

void Config::set(const std::string& key, const std::string& text, const std::string& source) {
  const Spec* sp = schema_.find(key);
  if (!sp) {
    // Suggest keys sharing the last component, to catch typos in the section.
    std::string leaf = key.substr(key.rfind('.') + 1), hint;
    for (const auto& s : schema_.all())
      if (s.key.size() > leaf.size() &&
          s.key.compare(s.key.size() - leaf.size(), leaf.size(), leaf) == 0)
        hint += (hint.empty() ? " (did you mean: " : ", ") + s.key;
    if (!hint.empty()) hint += ")";
    throw ConfigError(fmt::format("{}: unknown key '{}'{}", source, excerpt(key), hint));
  }
  Value v;
  v.text = text;
  v.source = source;
  auto fail = [&](const std::string& why) {
    return ConfigError(
        fmt::format("{}: key '{}': bad value '{}': {}", source, key, excerpt(text), why));
  };
  double base = 0;
  try {
    switch (sp->kind) {
      case Kind::kTime:
        v.t = parse_time(text);
        base = static_cast<double>(v.t);
        break;
      case Kind::kBandwidth:
        v.d = parse_bandwidth(text);
        base = v.d;
        break;
      case Kind::kSize:
        v.u = parse_size(text);
        base = static_cast<double>(v.u);
        break;
      case Kind::kInt: {
        // Decimal, as in TOML: an optional '-', digits, no leading zero, no hexadecimal.
        const size_t sign = !text.empty() && text[0] == '-' ? 1 : 0;
        size_t n = 0;
        try {
          n = decimal_length(text, sign);
        } catch (const ConfigError& e) {
          throw ConfigError(std::string("not a decimal integer: ") + e.what());
        }
        if (!text.empty() && text[0] == '+')
          throw ConfigError("not an integer: no '+' sign: write the number alone");
        if (n == 0 || sign + n != text.size() ||
            text.find_first_of(".eE", sign) != std::string::npos)
          throw ConfigError("not an integer");
        errno = 0;
        long long x = std::strtoll(text.c_str(), nullptr, 10);
        if (errno) throw ConfigError("not an integer of at most 64 bits");
        v.i = x;
        base = static_cast<double>(x);
        break;
      }
      case Kind::kReal: {
        // Plain decimal: an optional '-', digits (no leading zero), fraction, exponent.
        const size_t sign = !text.empty() && text[0] == '-' ? 1 : 0;
        size_t n = 0;
        try {
          n = decimal_length(text, sign);
        } catch (const ConfigError& e) {
          throw ConfigError(std::string("not a decimal number: ") + e.what());
        }
        if (!text.empty() && text[0] == '+')
          throw ConfigError("not a number: no '+' sign: write the number alone");
        if (n == 0 || sign + n != text.size()) throw ConfigError("not a number");
        double x = std::strtod(text.c_str(), nullptr);
        if (!std::isfinite(x)) throw ConfigError("not a finite number");
        v.d = x;
        base = x;
        break;
      }
      case Kind::kBool:
        if (text == "true" || text == "1")
          v.b = true;
        else if (text == "false" || text == "0")
          v.b = false;
        else
          throw ConfigError("not true or false");
        break;
      case Kind::kString:
        if (!sp->choices.empty()) {
          bool ok = false;
          std::string all;
          for (const auto& c : sp->choices) {
            ok |= (c == text);
            all += (all.empty() ? "" : ", ") + c;
          }
          if (!ok) throw ConfigError("must be one of: " + all);
        }
        break;
    }
  } catch (const ConfigError& e) {
    throw fail(e.what());
  }
  if (sp->kind != Kind::kBool && sp->kind != Kind::kString) {
    if (base < sp->min || base > sp->max) {
      auto show = [&](double x) { return show_bound(*sp, x); };
      std::string range = sp->max >= 1e299    ? ">= " + show(sp->min)
                          : sp->min <= -1e299 ? "<= " + show(sp->max)
                                              : "in [" + show(sp->min) + ", " + show(sp->max) + "]";
      throw fail("must be " + range);
    }
  }
  values_[key] = std::move(v);
  entry_sources_.erase(key);
}

// The files being loaded, from the top file to the current one, and how many were loaded in all.
struct Config::IncludeState {
  struct Open {
    std::string canonical;  // to recognise a file under another name
    std::string site;       // "file:line" of the include entry that loads it, "" for the top file
  };
  std::vector<Open> open;
  int loaded = 0;
};

namespace {
// An array of tables in the text form of a Spec::table_array key: "k=v k=v; k=v ...".
std::string table_array_text(const toml::array& arr, const std::string& key,
                             const std::string& path) {
  std::string text;
  for (const auto& el : arr) {
    const std::string at = fmt::format("{}:{}", path, el.source().begin.line);
    const auto* t = el.as_table();
    if (!t)
      throw ConfigError(fmt::format(
          "{}: key '{}': each entry must be a table of key = value lines ([[{}]])", at, key, key));
    std::string one;
    for (const auto& [k, v] : *t) {
      const std::string field = key + "." + std::string(k.str());
      const std::string vat = fmt::format("{}:{}", path, v.source().begin.line);
      std::string val;
      if (auto s = v.value_exact<std::string>())
        val = *s;
      else if (auto i = v.value_exact<int64_t>())
        val = std::to_string(*i);
      else if (auto d = v.value_exact<double>())
        val = fmt::format("{}", *d);
      else if (auto b = v.value_exact<bool>())
        val = *b ? "true" : "false";
      else
        throw ConfigError(
            fmt::format("{}: key '{}': unsupported value type (use a string, number or boolean)",
                        vat, excerpt(field)));
      if (val.empty() || val.find_first_of(" \t;=") != std::string::npos)
        throw ConfigError(
            fmt::format("{}: key '{}': bad value '{}': empty, or holds a space, ';' or '='", vat,
                        excerpt(field), excerpt(val)));
      one += (one.empty() ? "" : " ") + std::string(k.str()) + "=" + val;
    }
    text += (text.empty() ? "" : "; ") + one;
  }
  return text;
}
}  // namespace

void Config::load_file(const std::string& path) {
  IncludeState st;
  load_file_rec(path, "", st);
}

void Config::load_file_rec(const std::string& path, const std::string& site, IncludeState& st) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string canonical = fs::canonical(path, ec).string();
  if (ec) canonical = fs::absolute(path).lexically_normal().string();
  for (const auto& o : st.open)
    if (o.canonical == canonical)
      throw ConfigError(fmt::format(
          "{}: key 'include': include cycle: '{}' is already being loaded ({}), and is included "
          "again here",
          site, path, o.site.empty() ? "it is the top file" : "included at " + o.site));
  if (++st.loaded > kMaxFilesLoaded)
    throw ConfigError(fmt::format(
        "{}: key 'include': '{}': more than {} files to load in all, counting every include "
        "(a file included twice is loaded twice): too many includes",
        site, path, kMaxFilesLoaded));
  if (static_cast<int>(st.open.size()) > kMaxIncludeDepth)
    throw ConfigError(fmt::format("{}: key 'include': '{}': includes nested more than {} deep",
                                  site, path, kMaxIncludeDepth));
  toml::table tbl;
  try {
    tbl = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw ConfigError(fmt::format("{}:{}:{}: TOML syntax error: {}", path, b.line, b.column,
                                  std::string(e.description())));
  }
  st.open.push_back({canonical, site});
  fs::path dir = fs::path(path).parent_path();
  if (auto* inc = tbl.get("include")) {
    auto load_one = [&](const toml::node& n) {
      std::string at = fmt::format("{}:{}", path, n.source().begin.line);
      auto s = n.value<std::string>();
      if (!s) throw ConfigError(at + ": key 'include': entries must be strings (file paths)");
      fs::path p = fs::path(*s).is_absolute() ? fs::path(*s) : dir / *s;
      if (!fs::exists(p))
        throw ConfigError(fmt::format("{}: key 'include': file '{}' does not exist", at,
                                      excerpt(p.string(), 1024)));
      if (!fs::is_regular_file(p))
        throw ConfigError(fmt::format("{}: key 'include': '{}' is not a regular file", at,
                                      excerpt(p.string(), 1024)));
      load_file_rec(p.string(), at, st);
    };
    if (auto* arr = inc->as_array()) {
      for (const auto& n : *arr) load_one(n);
    } else {
      load_one(*inc);
    }
  }
  st.open.pop_back();
  // Flatten nested tables into dotted keys.
  std::function<void(const toml::table&, const std::string&)> walk =
      [&](const toml::table& t, const std::string& prefix) {
        for (const auto& [k, node] : t) {
          std::string key =
              prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
          if (prefix.empty() && key == "include") continue;
          std::string src = fmt::format("{}:{}", path, node.source().begin.line);
          const Spec* sp = schema_.find(key);
          if (const auto* sub = node.as_table()) {
            walk(*sub, key);
          } else if (const auto* arr = node.as_array(); arr && sp && sp->table_array) {
            set(key, table_array_text(*arr, key, path), src);
            std::vector<std::string> where;
            for (const auto& el : *arr)
              where.push_back(fmt::format("{}:{}", path, el.source().begin.line));
            entry_sources_[key] = std::move(where);
          } else if (auto s = node.value_exact<std::string>()) {
            set(key, *s, src);
          } else if (auto i = node.value_exact<int64_t>()) {
            set(key, std::to_string(*i), src);
          } else if (auto d = node.value_exact<double>()) {
            set(key, fmt::format("{}", *d), src);
          } else if (auto b = node.value_exact<bool>()) {
            set(key, *b ? "true" : "false", src);
          } else {
            if (!schema_.find(key)) set(key, "", src);  // reports the unknown key
            throw ConfigError(fmt::format(
                "{}: key '{}': unsupported value type (use a string, number or boolean)", src,
                excerpt(key)));
          }
        }
      };
  walk(tbl, "");
}

void Config::apply_override(const std::string& assignment) {
  auto eq = assignment.find('=');
  auto trim = [](std::string t) {
    const char* ws = " \t";
    t.erase(0, std::min(t.find_first_not_of(ws), t.size()));
    t.erase(t.find_last_not_of(ws) + 1);
    return t;
  };
  std::string key = trim(assignment.substr(0, eq));
  if (eq == std::string::npos || key.empty())
    throw ConfigError("--set '" + excerpt(assignment) + "': expected key=value");
  std::string value = trim(assignment.substr(eq + 1));
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
    value = value.substr(1, value.size() - 2);
  set(key, value, "--set");
}

const Config::Value& Config::get(const std::string& key, Kind k) const {
  const Spec* sp = schema_.find(key);
  if (!sp) throw std::logic_error("parameter not declared: " + key);
  if (sp->kind != k)
    throw std::logic_error("parameter " + key + " is a " + kind_name(sp->kind) + ", read as " +
                           kind_name(k));
  return values_.at(key);
}

Tick Config::time(const std::string& key) const { return get(key, Kind::kTime).t; }
double Config::bandwidth(const std::string& key) const { return get(key, Kind::kBandwidth).d; }
uint64_t Config::size(const std::string& key) const { return get(key, Kind::kSize).u; }
int64_t Config::integer(const std::string& key) const { return get(key, Kind::kInt).i; }
double Config::real(const std::string& key) const { return get(key, Kind::kReal).d; }
bool Config::boolean(const std::string& key) const { return get(key, Kind::kBool).b; }
const std::string& Config::str(const std::string& key) const {
  return get(key, Kind::kString).text;
}
const std::string& Config::source(const std::string& key) const { return values_.at(key).source; }
std::vector<std::string> Config::entry_sources(const std::string& key) const {
  auto it = entry_sources_.find(key);
  return it == entry_sources_.end() ? std::vector<std::string>{} : it->second;
}

nlohmann::json Config::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : values_) j[k] = v.text;
  return j;
}

}  // namespace rn::cfg
