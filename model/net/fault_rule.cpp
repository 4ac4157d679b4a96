#include "model/net/fault_rule.h"

#include <fmt/core.h>

#include <cctype>
#include <sstream>

#include "model/wire/headers.h"
#include "model/wire/opcodes.h"

namespace rn::net {

namespace w = wire;

const char* to_string(FaultAction a) {
  switch (a) {
    case FaultAction::kDrop:
      return "drop";
    case FaultAction::kCorrupt:
      return "corrupt";
    case FaultAction::kDuplicate:
      return "duplicate";
    case FaultAction::kReorder:
      return "reorder";
  }
  return "?";
}

FrameFields frame_fields(const uint8_t* d, uint32_t len) {
  FrameFields f;
  if (len < w::kOffBthV4 + w::kBthLen) return f;
  if (w::load_be16(d + offsetof(w::EthHdr, ethertype)) != w::kEtherTypeIpv4) return f;
  const uint8_t* ip = d + w::kOffIpv4;
  if (ip[offsetof(w::Ipv4Hdr, ver_ihl)] != 0x45) return f;
  if (ip[offsetof(w::Ipv4Hdr, protocol)] != w::kIpProtoUdp) return f;
  if (w::load_be16(d + w::kOffUdpV4 + offsetof(w::UdpHdr, dport)) != w::kRoceV2Port) return f;
  const uint8_t* bth = d + w::kOffBthV4;
  f.roce = true;
  f.opcode = bth[offsetof(w::Bth, opcode)];
  f.dest_qp = w::load_be24(bth + offsetof(w::Bth, dest_qp));
  f.psn = w::load_be24(bth + offsetof(w::Bth, psn));
  return f;
}

std::string FaultRule::text() const {
  std::string s = fmt::format("action={}", to_string(action));
  if (side >= 0) s += fmt::format(" side={}", side);
  if (qp >= 0) s += fmt::format(" qp={}", qp);
  if (opcode >= 0) {
    const w::OpInfo& i = w::op_info(static_cast<uint8_t>(opcode));
    s += i.valid ? fmt::format(" opcode={}", i.name) : fmt::format(" opcode={:#x}", opcode);
  }
  if (psn >= 0) s += fmt::format(" psn={}", psn);
  if (nth) s += fmt::format(" nth={}", nth);
  if (every != 1) s += fmt::format(" every={}", every);
  if (count) s += fmt::format(" count={}", count);
  return s;
}

namespace {

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

// A decimal integer without sign or leading zero, at most `max`; false if it is not one.
bool parse_uint(const std::string& v, uint64_t max, uint64_t* out) {
  if (v.empty() || v.size() > 20) return false;
  if (v.size() > 1 && v[0] == '0') return false;
  uint64_t x = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (x > (max - d) / 10) return false;
    x = x * 10 + d;
  }
  *out = x;
  return true;
}

int parse_opcode(const std::string& v) {
  if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
    uint64_t x = 0;
    for (size_t i = 2; i < v.size(); ++i) {
      const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(v[i])));
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0 || x > 0xFF) return -1;
      x = x * 16 + static_cast<uint64_t>(d);
    }
    return x <= 0xFF && w::op_info(static_cast<uint8_t>(x)).valid ? static_cast<int>(x) : -1;
  }
  uint64_t x = 0;
  if (parse_uint(v, 0xFF, &x)) return w::op_info(static_cast<uint8_t>(x)).valid ? int(x) : -1;
  for (int op = 0; op < 256; ++op) {
    const w::OpInfo& i = w::op_info(static_cast<uint8_t>(op));
    if (!i.valid) continue;
    const std::string name = i.name;
    if (v == name || (name.rfind("RC_", 0) == 0 && v == name.substr(3))) return op;
  }
  return -1;
}

FaultRule parse_one(const std::string& text, size_t index) {
  auto fail = [&](const std::string& why) {
    return FaultRuleError(index, fmt::format("rule {} ('{}'): {}", index, text, why));
  };
  FaultRule r;
  bool have_action = false;
  std::vector<std::string> seen;
  std::istringstream in(text);
  std::string tok;
  while (in >> tok) {
    const size_t eq = tok.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == tok.size())
      throw fail(fmt::format("'{}' is not key=value", tok));
    const std::string k = tok.substr(0, eq), v = tok.substr(eq + 1);
    for (const auto& s : seen)
      if (s == k) throw fail(fmt::format("'{}' is given twice", k));
    seen.push_back(k);
    uint64_t x = 0;
    auto number = [&](uint64_t lo, uint64_t hi, const char* what) {
      if (!parse_uint(v, UINT64_MAX, &x) || x < lo || x > hi)
        throw fail(
            fmt::format("{}={}: {} must be a decimal integer in [{}, {}]", k, v, what, lo, hi));
      return x;
    };
    if (k == "action") {
      if (v == "drop")
        r.action = FaultAction::kDrop;
      else if (v == "corrupt")
        r.action = FaultAction::kCorrupt;
      else if (v == "duplicate")
        r.action = FaultAction::kDuplicate;
      else if (v == "reorder")
        r.action = FaultAction::kReorder;
      else
        throw fail(fmt::format("action={}: must be one of drop, corrupt, duplicate, reorder", v));
      have_action = true;
    } else if (k == "side") {
      r.side = static_cast<int>(number(0, 1, "side (the sending side)"));
    } else if (k == "qp") {
      r.qp = static_cast<int64_t>(number(0, 0xFFFFFF, "the destination QP"));
    } else if (k == "psn") {
      r.psn = static_cast<int64_t>(number(0, 0xFFFFFF, "a PSN"));
    } else if (k == "opcode") {
      r.opcode = parse_opcode(v);
      if (r.opcode < 0)
        throw fail(fmt::format(
            "opcode={}: unknown opcode (a name of model/wire/opcodes.h such as RC_ACKNOWLEDGE or "
            "RC_RDMA_WRITE_ONLY, or the number of a valid opcode such as 0x11)",
            v));
    } else if (k == "nth") {
      r.nth = number(1, UINT64_MAX, "nth (the first match acted on, from 1)");
    } else if (k == "every") {
      r.every = number(1, UINT64_MAX, "every");
    } else if (k == "count") {
      r.count = number(0, UINT64_MAX, "count (0: no limit)");
    } else {
      throw fail(fmt::format(
          "unknown field '{}' (fields: action, side, qp, opcode, psn, nth, every, count)", k));
    }
  }
  if (!have_action) throw fail("no action (action=drop, corrupt, duplicate or reorder)");
  return r;
}

}  // namespace

std::vector<FaultRule> parse_fault_rules(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const size_t end = text.find(';', start);
    parts.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  std::vector<FaultRule> out;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string one = trim(parts[i]);
    if (one.empty()) {
      if (i + 1 == parts.size()) continue;  // nothing at all, or after a final ';'
      throw FaultRuleError(i + 1, fmt::format("rule {} is empty", i + 1));
    }
    out.push_back(parse_one(one, i + 1));
  }
  return out;
}

}  // namespace rn::net
