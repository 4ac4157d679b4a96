#include "bridge/trace/trace.h"

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <limits>

namespace rn::trace {

namespace {

// ---- Names (docs/traces.md: the IBV_* names without their prefix) -----------------------------

struct Named {
  uint32_t value;
  const char* name;
};
constexpr Named kWcStatus[] = {{0, "SUCCESS"},
                               {1, "LOC_LEN_ERR"},
                               {2, "LOC_QP_OP_ERR"},
                               {3, "LOC_EEC_OP_ERR"},
                               {4, "LOC_PROT_ERR"},
                               {5, "WR_FLUSH_ERR"},
                               {6, "MW_BIND_ERR"},
                               {7, "BAD_RESP_ERR"},
                               {8, "LOC_ACCESS_ERR"},
                               {9, "REM_INV_REQ_ERR"},
                               {10, "REM_ACCESS_ERR"},
                               {11, "REM_OP_ERR"},
                               {12, "RETRY_EXC_ERR"},
                               {13, "RNR_RETRY_EXC_ERR"},
                               {14, "LOC_RDD_VIOL_ERR"},
                               {15, "REM_INV_RD_REQ_ERR"},
                               {16, "REM_ABORT_ERR"},
                               {17, "INV_EECN_ERR"},
                               {18, "INV_EEC_STATE_ERR"},
                               {19, "FATAL_ERR"},
                               {20, "RESP_TIMEOUT_ERR"},
                               {21, "GENERAL_ERR"},
                               {22, "TM_ERR"},
                               {23, "TM_RNDV_INCOMPLETE"}};
constexpr Named kWcOpcode[] = {{0, "SEND"},      {1, "RDMA_WRITE"},
                               {2, "RDMA_READ"}, {3, "COMP_SWAP"},
                               {4, "FETCH_ADD"}, {5, "BIND_MW"},
                               {6, "LOCAL_INV"}, {7, "TSO"},
                               {128, "RECV"},    {129, "RECV_RDMA_WITH_IMM"}};
constexpr Named kWrOpcode[] = {{0, "WRITE"},   {1, "WRITE_IMM"}, {2, "SEND"},      {3, "SEND_IMM"},
                               {4, "READ"},    {5, "CMP_SWP"},   {6, "FETCH_ADD"}, {7, "LOCAL_INV"},
                               {8, "BIND_MW"}, {9, "SEND_INV"},  {10, "TSO"}};
constexpr Named kQpState[] = {{0, "RESET"}, {1, "INIT"}, {2, "RTR"}, {3, "RTS"},
                              {4, "SQD"},   {5, "SQE"},  {6, "ERR"}};
constexpr Named kQpType[] = {{2, "RC"},         {3, "UC"},       {4, "UD"},
                             {8, "RAW_PACKET"}, {9, "XRC_SEND"}, {10, "XRC_RECV"}};
constexpr Named kEvent[] = {{0, "CQ_ERR"},
                            {1, "QP_FATAL"},
                            {2, "QP_REQ_ERR"},
                            {3, "QP_ACCESS_ERR"},
                            {4, "COMM_EST"},
                            {5, "SQ_DRAINED"},
                            {6, "PATH_MIG"},
                            {7, "PATH_MIG_ERR"},
                            {8, "DEVICE_FATAL"},
                            {9, "PORT_ACTIVE"},
                            {10, "PORT_ERR"},
                            {11, "LID_CHANGE"},
                            {12, "PKEY_CHANGE"},
                            {13, "SM_CHANGE"},
                            {14, "SRQ_ERR"},
                            {15, "SRQ_LIMIT_REACHED"},
                            {16, "QP_LAST_WQE_REACHED"},
                            {17, "CLIENT_REREGISTER"},
                            {18, "GID_CHANGE"},
                            {19, "WQ_FATAL"}};

template <size_t N>
const char* name_of(const Named (&t)[N], uint32_t v) {
  for (const auto& n : t)
    if (n.value == v) return n.name;
  return "";
}
template <size_t N>
int value_of(const Named (&t)[N], const std::string& s) {
  for (const auto& n : t)
    if (s == n.name) return static_cast<int>(n.value);
  return -1;
}
template <size_t N>
std::string names_of(const Named (&t)[N]) {
  std::string out;
  for (const auto& n : t) out += (out.empty() ? "" : ", ") + std::string(n.name);
  return out;
}

// ---- The schema -------------------------------------------------------------------------------
//
// One line per call: its fields as `name:type`, `?` after the name if optional, and `@role.kind`
// for object ids: `new` creates an object of that kind, `del` destroys it, `ref` names a live
// one. Ids are required, and their lives checked, only for calls that succeeded (ret 0): a failed
// call may name nothing.

enum class Type {
  kU64,
  kI64,
  kU32,
  kU16,
  kU8,
  kBit,
  kStr,
  kHex,
  kGid,
  kStrs,
  kState,
  kQpType,
  kMtu,
  kEvent,
  kPayload,
  kSends,
  kRecvs,
  kWcs,
  kAv,
  kWrOp,
  kWcStatus,
  kWcOp,
  kSges
};
struct TypeName {
  Type type;
  const char* name;
};
constexpr TypeName kTypes[] = {
    {Type::kU64, "u64"},     {Type::kI64, "i64"},     {Type::kU32, "u32"},
    {Type::kU16, "u16"},     {Type::kU8, "u8"},       {Type::kBit, "bit"},
    {Type::kStr, "str"},     {Type::kHex, "hex"},     {Type::kGid, "gid"},
    {Type::kStrs, "strs"},   {Type::kState, "state"}, {Type::kQpType, "qptype"},
    {Type::kMtu, "mtu"},     {Type::kEvent, "event"}, {Type::kPayload, "payload"},
    {Type::kSends, "sends"}, {Type::kRecvs, "recvs"}, {Type::kWcs, "wcs"},
    {Type::kAv, "av"},       {Type::kWrOp, "wrop"},   {Type::kWcStatus, "wcstatus"},
    {Type::kWcOp, "wcop"},   {Type::kSges, "sges"}};

enum class Role { kNone, kNew, kRef, kDel };
struct Field {
  std::string name;
  Type type;
  bool optional = false;
  Role role = Role::kNone;
  std::string kind;
};
struct Call {
  std::string name;
  std::vector<Field> fields;
};

constexpr const char* kSchema[] = {
    "trace version:u64 pid:u64 argv:strs host:str t0_mono:u64 t0_real:u64 payload:payload "
    "source:str library?:str",
    "end t:u64 records:u64 empty?:u64",
    "open_device dev:u32@new.dev name:str",
    "close_device dev:u32@del.dev",
    "create_comp_channel dev:u32@ref.dev ch:u32@new.ch",
    "destroy_comp_channel ch:u32@del.ch",
    "alloc_pd dev:u32@ref.dev pd:u32@new.pd",
    "dealloc_pd pd:u32@del.pd",
    "reg_mr pd:u32@ref.pd mr:u32@new.mr addr:u64 len:u64 access:u32 iova?:u64 lkey:u32 rkey:u32 "
    "hash?:u64 data?:hex",
    "dereg_mr mr:u32@del.mr hash?:u64 data?:hex",
    "create_cq dev:u32@ref.dev cq:u32@new.cq cqe:u32 cqe_out:u32 ch?:u32@ref.ch vec:u32 ext?:bit "
    "wc_flags?:u64",
    "destroy_cq cq:u32@del.cq",
    "create_qp pd:u32@ref.pd qp:u32@new.qp type:qptype scq:u32@ref.cq rcq:u32@ref.cq "
    "srq?:u32@ref.srq max_send_wr:u32 max_recv_wr:u32 max_send_sge:u32 max_recv_sge:u32 "
    "max_inline:u32 sig_all:bit ext?:bit send_ops?:u64",
    "modify_qp qp:u32@ref.qp mask:u32 state?:state cur_state?:state access?:u32 pkey_index?:u16 "
    "port?:u8 qkey?:u32 av?:av mtu?:mtu timeout?:u8 retry_cnt?:u8 rnr_retry?:u8 rq_psn?:u32 "
    "sq_psn?:u32 max_rd_atomic?:u8 max_dest_rd_atomic?:u8 min_rnr_timer?:u8 dest_qp?:u32",
    "destroy_qp qp:u32@del.qp",
    "create_srq pd:u32@ref.pd srq:u32@new.srq max_wr:u32 max_sge:u32 limit:u32",
    "modify_srq srq:u32@ref.srq mask:u32 max_wr?:u32 limit?:u32",
    "destroy_srq srq:u32@del.srq",
    "create_ah pd:u32@ref.pd ah:u32@new.ah av:av",
    "destroy_ah ah:u32@del.ah",
    "post_send qp:u32@ref.qp wr:sends bad?:u32 ext?:bit",
    "post_recv qp:u32@ref.qp wr:recvs bad?:u32",
    "post_srq_recv srq:u32@ref.srq wr:recvs bad?:u32",
    "poll_cq cq:u32@ref.cq n:u32 wc:wcs empty?:u64 ext?:bit",
    "req_notify_cq cq:u32@ref.cq solicited:bit",
    "get_cq_event ch:u32@ref.ch cq:u32@ref.cq",
    "ack_cq_events cq:u32@ref.cq n:u32",
    "async_event event:event qp?:u32 cq?:u32 srq?:u32",
};
// The members of the objects inside records.
constexpr const char* kSendWr =
    "wr id:u64 op:wrop flags:u32 sge:sges imm?:u32 rkey?:u32 raddr?:u64 cmp?:u64 swap?:u64 "
    "ah?:u32@ref.ah rqpn?:u32 rqkey?:u32 inv?:u32 hash?:u64 data?:hex";
constexpr const char* kRecvWr = "wr id:u64 sge:sges";
constexpr const char* kWc =
    "wc id:u64 status:wcstatus op:wcop len:u32 qp:u32 src_qp?:u32 imm?:u32 flags:u32 "
    "vendor_err?:u32";
constexpr const char* kAvSpec =
    "av dlid:u16 sl:u8 port:u8 is_global:bit dgid?:gid sgid_index?:u8 hop_limit?:u8 tclass?:u8 "
    "flow_label?:u32";
// Keys every call record has (the header has none of them).
constexpr const char* kCommon = "common t:u64 d:u64 tid:u64 ret:i64";

Call parse_spec(const std::string& spec) {
  Call c;
  size_t i = 0;
  auto word = [&] {
    while (i < spec.size() && spec[i] == ' ') ++i;
    size_t b = i;
    while (i < spec.size() && spec[i] != ' ') ++i;
    return spec.substr(b, i - b);
  };
  c.name = word();
  for (std::string w = word(); !w.empty(); w = word()) {
    Field f;
    size_t colon = w.find(':'), at = w.find('@');
    f.name = w.substr(0, colon);
    if (!f.name.empty() && f.name.back() == '?') {
      f.optional = true;
      f.name.pop_back();
    }
    std::string type =
        w.substr(colon + 1, at == std::string::npos ? std::string::npos : at - colon - 1);
    bool found = false;
    for (const auto& t : kTypes)
      if (type == t.name) {
        f.type = t.type;
        found = true;
      }
    if (!found) throw std::logic_error("trace schema: unknown type " + type);
    if (at != std::string::npos) {
      std::string role = w.substr(at + 1);
      size_t dot = role.find('.');
      f.kind = role.substr(dot + 1);
      role = role.substr(0, dot);
      f.role = role == "new" ? Role::kNew : role == "del" ? Role::kDel : Role::kRef;
    }
    c.fields.push_back(f);
  }
  return c;
}

struct Schema {
  std::vector<Call> calls;
  Call send_wr, recv_wr, wc, av, common;
  Schema() {
    for (const char* s : kSchema) calls.push_back(parse_spec(s));
    send_wr = parse_spec(kSendWr);
    recv_wr = parse_spec(kRecvWr);
    wc = parse_spec(kWc);
    av = parse_spec(kAvSpec);
    common = parse_spec(kCommon);
    // Every call record has the common keys too (the header and the end record do not).
    for (auto& c : calls)
      if (c.name != "trace" && c.name != "end")
        c.fields.insert(c.fields.begin(), common.fields.begin(), common.fields.end());
  }
  const Call* find(const std::string& name) const {
    for (const auto& c : calls)
      if (c.name == name) return &c;
    return nullptr;
  }
};
const Schema& schema() {
  static const Schema s;
  return s;
}

bool is_hex(const std::string& s) {
  if (s.size() % 2) return false;
  for (char ch : s)
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
  return true;
}

// The byte fields: hexadecimal text in JSON, CBOR byte strings in the binary form.
bool is_byte_field(const std::string& key) { return key == "data" || key == "dgid"; }

// Turns byte strings into hex (reading the binary form) or hex into byte strings (writing it),
// wherever they are in the record.
void bytes_to_hex(Json& j) {
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) {
      if (v.is_binary())
        v = to_hex(v.get_binary());
      else
        bytes_to_hex(v);
    }
  } else if (j.is_array()) {
    for (auto& v : j) bytes_to_hex(v);
  }
}
void hex_to_bytes(Json& j) {
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) {
      if (is_byte_field(k) && v.is_string() && is_hex(v.get<std::string>()))
        v = Json::binary(from_hex(v.get<std::string>()));
      else
        hex_to_bytes(v);
    }
  } else if (j.is_array()) {
    for (auto& v : j) hex_to_bytes(v);
  }
}

// The length of the CBOR data item at p (n bytes available): 0 if it needs more bytes than
// there are, SIZE_MAX if it is not well-formed (a reserved or indefinite-length encoding).
size_t cbor_item_len(const uint8_t* p, size_t n, int depth = 0) {
  constexpr size_t kBad = std::numeric_limits<size_t>::max();
  if (n < 1) return 0;
  if (depth > 64) return kBad;
  uint8_t major = p[0] >> 5, info = p[0] & 31;
  uint64_t arg = info;
  size_t head = 1;
  if (info >= 24 && info <= 27) {
    size_t extra = size_t{1} << (info - 24);
    if (n < 1 + extra) return 0;
    arg = 0;
    for (size_t i = 0; i < extra; ++i) arg = arg << 8 | p[1 + i];
    head += extra;
  } else if (info > 27) {
    return kBad;  // indefinite lengths: the writers never use them
  }
  switch (major) {
    case 0:
    case 1:
    case 7:
      return head;
    case 2:
    case 3:
      if (arg > n - head) return 0;
      return head + arg;
    case 4:
    case 5: {
      uint64_t items = major == 5 ? arg * 2 : arg;
      size_t off = head;
      for (uint64_t i = 0; i < items; ++i) {
        size_t l = cbor_item_len(p + off, n - off, depth + 1);
        if (l == 0 || l == kBad) return l;
        off += l;
      }
      return off;
    }
    case 6: {  // a tag, then its item
      size_t l = cbor_item_len(p + head, n - head, depth + 1);
      return l == 0 || l == kBad ? l : head + l;
    }
  }
  return kBad;
}

// Whether s is well-formed UTF-8 (CBOR text strings must be; JSON Lines are read as UTF-8).
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 9;
    if (n == 9 || i + n >= s.size() + (n ? 0 : 1)) return false;
    for (size_t k = 1; k <= n; ++k)
      if ((static_cast<uint8_t>(s[i + k]) >> 6) != 2) return false;
    i += n + 1;
  }
  return true;
}
// Whether every string (value or key) in j is UTF-8.
bool all_utf8(const Json& j) {
  if (j.is_string()) return valid_utf8(j.get_ref<const std::string&>());
  if (j.is_object()) {
    for (const auto& [k, v] : j.items())
      if (!valid_utf8(k) || !all_utf8(v)) return false;
  } else if (j.is_array()) {
    for (const auto& v : j)
      if (!all_utf8(v)) return false;
  }
  return true;
}

std::string short_json(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

}  // namespace

// ---- Public names ---------------------------------------------------------------------------

std::string to_hex(const std::vector<uint8_t>& b) {
  static const char* d = "0123456789abcdef";
  std::string s(b.size() * 2, '0');
  for (size_t i = 0; i < b.size(); ++i) {
    s[2 * i] = d[b[i] >> 4];
    s[2 * i + 1] = d[b[i] & 15];
  }
  return s;
}
std::vector<uint8_t> from_hex(const std::string& s) {
  std::vector<uint8_t> b(s.size() / 2);
  auto v = [](char ch) { return ch <= '9' ? ch - '0' : ch - 'a' + 10; };
  for (size_t i = 0; i < b.size(); ++i)
    b[i] = static_cast<uint8_t>(v(s[2 * i]) << 4 | v(s[2 * i + 1]));
  return b;
}

const char* wc_status_name(uint32_t v) { return name_of(kWcStatus, v); }
const char* wc_opcode_name(uint32_t v) { return name_of(kWcOpcode, v); }
const char* wr_opcode_name(uint32_t v) { return name_of(kWrOpcode, v); }
const char* qp_state_name(uint32_t v) { return name_of(kQpState, v); }
const char* qp_type_name(uint32_t v) { return name_of(kQpType, v); }
const char* event_name(uint32_t v) { return name_of(kEvent, v); }
int wc_status_value(const std::string& s) { return value_of(kWcStatus, s); }
int wc_opcode_value(const std::string& s) { return value_of(kWcOpcode, s); }
int wr_opcode_value(const std::string& s) { return value_of(kWrOpcode, s); }
int qp_state_value(const std::string& s) { return value_of(kQpState, s); }
int qp_type_value(const std::string& s) { return value_of(kQpType, s); }

uint64_t fnv1a(const void* data, size_t len, uint64_t h) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < len; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

Form form_for_path(const std::string& path) {
  auto ends = [&](const char* suf) {
    size_t n = std::strlen(suf);
    return path.size() >= n && path.compare(path.size() - n, n, suf) == 0;
  };
  return ends(".jsonl") || ends(".json") ? Form::kJsonl : Form::kBinary;
}
const char* to_string(Form f) { return f == Form::kJsonl ? "JSON Lines" : "binary"; }

TraceError::TraceError(const std::string& file, uint64_t record, const std::string& field,
                       const std::string& what)
    : std::runtime_error(
          fmt::format("{}{}{}: {}", file, record ? fmt::format(": record {}", record) : "",
                      field.empty() ? "" : fmt::format(": field '{}'", field), what)),
      file_(file),
      record_(record),
      field_(field) {}

// ---- Reader ---------------------------------------------------------------------------------

Reader::Reader(const std::string& path) : path_(path) {
  f_ = std::fopen(path.c_str(), "rb");
  if (!f_) throw TraceError(path, 0, "", fmt::format("cannot open: {}", std::strerror(errno)));
  fill(kMagicLen);
  if (buf_.size() >= kMagicLen && std::memcmp(buf_.data(), kMagic, kMagicLen) == 0) {
    form_ = Form::kBinary;
    pos_ = kMagicLen;
  } else if (!buf_.empty() && buf_[0] == '{') {
    form_ = Form::kJsonl;
  } else if (buf_.empty()) {
    throw TraceError(path, 0, "", "empty file: not a trace");
  } else {
    throw TraceError(path, 0, "",
                     "not a trace: neither JSON Lines (a '{' first) nor the binary form (the "
                     "magic \"RNTRACE\\n\" first)");
  }
}

Reader::~Reader() {
  if (f_) std::fclose(f_);
}

bool Reader::fill(size_t need) {
  if (pos_ > (1u << 20) && pos_ * 2 > buf_.size()) {  // drop what was read
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
  }
  while (buf_.size() - pos_ < need && !eof_) {
    size_t old = buf_.size(), want = std::max<size_t>(need, 1 << 16);
    buf_.resize(old + want);
    size_t got = std::fread(buf_.data() + old, 1, want, f_);
    buf_.resize(old + got);
    if (got == 0) eof_ = true;
  }
  return buf_.size() - pos_ >= need;
}

bool Reader::next(Json* rec) {
  if (truncated()) return false;
  if (form_ == Form::kJsonl) {
    for (;;) {
      size_t nl;
      for (;;) {
        auto it = std::find(buf_.begin() + static_cast<std::ptrdiff_t>(pos_), buf_.end(), '\n');
        nl = static_cast<size_t>(it - buf_.begin());
        if (it != buf_.end() || eof_) break;
        fill(buf_.size() - pos_ + (1 << 16));
      }
      if (pos_ >= buf_.size()) return false;
      const bool last_unterminated = nl >= buf_.size();
      std::string line(buf_.begin() + static_cast<std::ptrdiff_t>(pos_),
                       buf_.begin() + static_cast<std::ptrdiff_t>(std::min(nl, buf_.size())));
      pos_ = std::min(nl + 1, buf_.size());
      ++record_;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) throw TraceError(path_, record_, "", "empty line: one record per line");
      try {
        *rec = Json::parse(line);
      } catch (const Json::parse_error& e) {
        if (last_unterminated) {  // the writer stopped mid-line
          --record_;
          truncation_ = fmt::format("record {} is cut short (no end of line)", record_ + 1);
          return false;
        }
        throw TraceError(path_, record_, "", fmt::format("not JSON: {}", e.what()));
      }
      if (!rec->is_object())
        throw TraceError(path_, record_, "", "not a JSON object: " + short_json(*rec));
      return true;
    }
  }
  fill(1 << 16);
  if (pos_ >= buf_.size()) return false;
  size_t len;
  for (;;) {
    len = cbor_item_len(buf_.data() + pos_, buf_.size() - pos_);
    if (len != 0 || eof_) break;
    fill(buf_.size() - pos_ + (1 << 20));
  }
  ++record_;
  if (len == 0) {
    --record_;
    truncation_ = fmt::format("record {} is cut short ({} bytes, then the end of the file)",
                              record_ + 1, buf_.size() - pos_);
    pos_ = buf_.size();
    return false;
  }
  if (len == std::numeric_limits<size_t>::max())
    throw TraceError(path_, record_, "",
                     fmt::format("not well-formed CBOR at byte {} of the record", 0));
  try {
    *rec = Json::from_cbor(buf_.begin() + static_cast<std::ptrdiff_t>(pos_),
                           buf_.begin() + static_cast<std::ptrdiff_t>(pos_ + len));
  } catch (const Json::exception& e) {
    throw TraceError(path_, record_, "", fmt::format("not a valid CBOR record: {}", e.what()));
  }
  pos_ += len;
  if (!rec->is_object())
    throw TraceError(path_, record_, "", "not a CBOR map: " + short_json(*rec));
  bytes_to_hex(*rec);
  return true;
}

// ---- Writer ---------------------------------------------------------------------------------

Writer::Writer(const std::string& path, Form form) : path_(path), form_(form) {
  f_ = std::fopen(path.c_str(), "wb");
  if (!f_)
    throw std::runtime_error(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  if (form_ == Form::kBinary && std::fwrite(kMagic, 1, kMagicLen, f_) != kMagicLen) failed_ = true;
}

Writer::~Writer() {
  if (f_) std::fclose(f_);
}

void Writer::write(const Json& rec) {
  if (form_ == Form::kJsonl) {
    std::string s = rec.dump();
    s += '\n';
    if (std::fwrite(s.data(), 1, s.size(), f_) != s.size()) failed_ = true;
    return;
  }
  Json b = rec;
  hex_to_bytes(b);
  std::vector<uint8_t> v = Json::to_cbor(b);
  if (std::fwrite(v.data(), 1, v.size(), f_) != v.size()) failed_ = true;
}

void Writer::close() {
  if (!f_) return;
  if (std::fclose(f_) != 0) failed_ = true;
  f_ = nullptr;
  if (failed_) throw std::runtime_error(fmt::format("{}: write failed", path_));
}

// ---- Validator ------------------------------------------------------------------------------

void Validator::fail(uint64_t recno, const std::string& field, const std::string& what) const {
  throw TraceError(file_, recno, field, what);
}

namespace {

struct Ctx {
  uint64_t recno;
  bool ok;  // the call succeeded: ids required and their lives checked
  std::map<std::string, std::set<uint64_t>>* live;
  std::function<void(const std::string&, const std::string&)> fail;
};

void check_object(const Call& spec, const Json& obj, const std::string& where, Ctx& c,
                  const std::set<std::string>& skip = {});

void check_value(const Field& f, const Json& v, const std::string& path, Ctx& c) {
  auto bad = [&](const std::string& what) {
    c.fail(path, fmt::format("{} (got {})", what, short_json(v)));
  };
  auto uint_max = [&](uint64_t max) {
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
      bad("must be an unsigned integer");
    if (v.get<uint64_t>() > max) bad(fmt::format("must be at most {}", max));
  };
  auto one_of = [&](int value, const std::string& names) {
    if (!v.is_string()) bad("must be a string");
    if (value < 0) bad("must be one of " + names);
  };
  auto str = [&]() -> std::string { return v.is_string() ? v.get<std::string>() : ""; };
  switch (f.type) {
    case Type::kU64:
      uint_max(std::numeric_limits<uint64_t>::max());
      break;
    case Type::kI64:
      if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX))
        bad("must be an integer");
      break;
    case Type::kU32:
      uint_max(0xffffffffu);
      break;
    case Type::kU16:
      uint_max(0xffff);
      break;
    case Type::kU8:
      uint_max(0xff);
      break;
    case Type::kBit:
      uint_max(1);
      break;
    case Type::kStr:
      if (!v.is_string()) bad("must be a string");
      break;
    case Type::kHex:
      if (!v.is_string() || !is_hex(str()))
        bad("must be bytes: lowercase hexadecimal, 2 digits a byte");
      break;
    case Type::kGid:
      if (!v.is_string() || !is_hex(str()) || str().size() != 32)
        bad("must be 16 bytes (32 lowercase hexadecimal digits)");
      break;
    case Type::kStrs:
      if (!v.is_array()) bad("must be an array of strings");
      for (const auto& e : v)
        if (!e.is_string()) bad("must be an array of strings");
      break;
    case Type::kState:
      one_of(qp_state_value(str()), names_of(kQpState));
      break;
    case Type::kQpType:
      one_of(qp_type_value(str()), names_of(kQpType));
      break;
    case Type::kEvent:
      one_of(value_of(kEvent, str()), names_of(kEvent));
      break;
    case Type::kWrOp:
      one_of(wr_opcode_value(str()), names_of(kWrOpcode));
      break;
    case Type::kWcStatus:
      one_of(wc_status_value(str()), names_of(kWcStatus));
      break;
    case Type::kWcOp:
      one_of(wc_opcode_value(str()), names_of(kWcOpcode));
      break;
    case Type::kPayload:
      if (str() != "none" && str() != "hash" && str() != "full") bad("must be none, hash or full");
      break;
    case Type::kMtu: {
      uint_max(4096);
      uint64_t m = v.get<uint64_t>();
      if (m != 256 && m != 512 && m != 1024 && m != 2048 && m != 4096)
        bad("must be 256, 512, 1024, 2048 or 4096");
      break;
    }
    case Type::kAv:
      if (!v.is_object()) bad("must be an object (an address vector)");
      check_object(schema().av, v, path, c);
      break;
    case Type::kSends:
    case Type::kRecvs:
    case Type::kWcs: {
      if (!v.is_array()) bad("must be an array");
      const Call& s = f.type == Type::kSends   ? schema().send_wr
                      : f.type == Type::kRecvs ? schema().recv_wr
                                               : schema().wc;
      for (size_t i = 0; i < v.size(); ++i) {
        std::string p = fmt::format("{}[{}]", path, i);
        if (!v[i].is_object()) c.fail(p, "must be an object");
        check_object(s, v[i], p, c);
      }
      break;
    }
    case Type::kSges:
      if (!v.is_array()) bad("must be an array of [mr, off, len]");
      for (size_t i = 0; i < v.size(); ++i) {
        const Json& e = v[i];
        std::string p = fmt::format("{}[{}]", path, i);
        auto all_uint = [&] {
          for (const auto& x : e)
            if (!x.is_number_unsigned()) return false;
          return true;
        };
        if (!e.is_array() || e.size() < 3 || e.size() > 4 || !all_uint())
          c.fail(p, fmt::format("must be [mr, off, len] or [0, addr, len, lkey] (got {})",
                                short_json(e)));
        uint64_t mr = e[0].get<uint64_t>();
        if (e[2].get<uint64_t>() > 0xffffffffu) c.fail(p, "len must be at most 4294967295");
        if ((mr == 0) != (e.size() == 4))
          c.fail(p, fmt::format("an entry has 4 members exactly when its mr is 0 (got {})",
                                short_json(e)));
        if (mr != 0 && c.ok && !(*c.live)["mr"].count(mr))
          c.fail(p, fmt::format("mr {} is not a live memory region", mr));
      }
      break;
  }
  if (f.role != Role::kNone && c.ok) {
    auto& ids = (*c.live)[f.kind];
    uint64_t id = v.get<uint64_t>();
    if (f.role == Role::kNew) {
      if (ids.count(id)) c.fail(path, fmt::format("{} {} is already live", f.kind, id));
    } else if (!ids.count(id)) {
      c.fail(path, fmt::format("{} {} is not live (never created, or destroyed)", f.kind, id));
    }
  }
}

void check_object(const Call& spec, const Json& obj, const std::string& where, Ctx& c,
                  const std::set<std::string>& skip) {
  auto path = [&](const std::string& k) { return where.empty() ? k : where + "." + k; };
  for (const auto& f : spec.fields) {
    auto it = obj.find(f.name);
    if (it == obj.end()) {
      bool needed = !f.optional && (f.role == Role::kNone || c.ok);
      if (needed) c.fail(path(f.name), "missing");
      continue;
    }
    check_value(f, *it, path(f.name), c);
  }
  for (const auto& [k, v] : obj.items()) {
    if (skip.count(k) || k.rfind("x_", 0) == 0) continue;
    bool known = std::any_of(spec.fields.begin(), spec.fields.end(),
                             [&](const Field& f) { return f.name == k; });
    if (!known)
      c.fail(path(k), fmt::format("not a field of {} (docs/traces.md lists them)", spec.name));
  }
}

}  // namespace

void Validator::check(const Json& rec, uint64_t recno) {
  auto it = rec.find("call");
  if (it == rec.end() || !it->is_string()) fail(recno, "call", "missing, or not a string");
  const std::string call = it->get<std::string>();
  const Call* spec = schema().find(call);
  if (!spec)
    fail(recno, "call", fmt::format("unknown call '{}' (docs/traces.md lists the calls)", call));
  if (ended_) fail(recno, "call", "a record after the end record");
  if (header_.is_null() && call != "trace")
    fail(recno, "call",
         fmt::format("the first record must be the header (call \"trace\"), not '{}'", call));
  if (!header_.is_null() && call == "trace") fail(recno, "call", "a second header");
  Ctx c{recno, true, &live_,
        [&](const std::string& field, const std::string& what) { fail(recno, field, what); }};
  if (call != "trace" && call != "end") {
    auto ret = rec.find("ret");
    if (ret == rec.end()) fail(recno, "ret", "missing");
    if (!ret->is_number_integer())
      fail(recno, "ret", "must be an integer (got " + short_json(*ret) + ")");
    c.ok = call == "poll_cq" ? ret->get<int64_t>() >= 0 : ret->get<int64_t>() == 0;
    ++calls_;
  }
  check_object(*spec, rec, "", c, {"call"});
  if (call == "trace") {
    if (rec["version"].get<uint64_t>() != kVersion)
      fail(recno, "version",
           fmt::format("version {} is not one this reader knows (it reads version {})",
                       rec["version"].get<uint64_t>(), kVersion));
    header_ = rec;
    return;
  }
  if (call == "end") {
    if (rec["records"].get<uint64_t>() != calls_)
      fail(recno, "records",
           fmt::format("says {} records, the trace has {} between its header and its end",
                       rec["records"].get<uint64_t>(), calls_));
    ended_ = true;
    return;
  }
  if (call == "poll_cq" && c.ok && rec["wc"].size() != rec["ret"].get<uint64_t>())
    fail(recno, "wc",
         fmt::format("has {} completions, ret says {}", rec["wc"].size(),
                     rec["ret"].get<int64_t>()));
  if (call == "poll_cq" && rec["wc"].size() > rec["n"].get<uint64_t>())
    fail(recno, "wc",
         fmt::format("has {} completions, more than n ({})", rec["wc"].size(),
                     rec["n"].get<uint64_t>()));
  if (!c.ok) return;
  for (const auto& f : spec->fields) {
    if (f.role == Role::kNone || !rec.contains(f.name)) continue;
    uint64_t id = rec[f.name].get<uint64_t>();
    if (f.role == Role::kNew) live_[f.kind].insert(id);
    if (f.role == Role::kDel) live_[f.kind].erase(id);
  }
}

bool Validator::finish(uint64_t last_recno) const {
  if (header_.is_null()) throw TraceError(file_, last_recno, "", "no header record: not a trace");
  return ended_;
}

std::vector<Json> read_all(const std::string& path, bool* truncated, std::string* why) {
  Reader r(path);
  Validator v(path);
  std::vector<Json> out;
  Json rec;
  while (r.next(&rec)) {
    v.check(rec, r.record());
    out.push_back(std::move(rec));
  }
  bool ended = v.finish(r.record());
  std::string reason = r.truncation();
  if (!ended && reason.empty()) reason = fmt::format("no end record after record {}", r.record());
  if (truncated) *truncated = !ended;
  if (why) *why = ended ? "" : reason;
  return out;
}

// ---- show -----------------------------------------------------------------------------------

namespace {
std::string flat(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string s;
    for (const auto& e : v) s += (s.empty() ? "" : ",") + flat(e);
    return "[" + s + "]";
  }
  if (v.is_object()) {
    std::string s;
    for (const auto& [k, e] : v.items()) s += (s.empty() ? "" : " ") + k + "=" + flat(e);
    return "{" + s + "}";
  }
  return v.dump();
}
std::string sges(const Json& v) {
  std::string s;
  for (const auto& e : v) {
    if (!s.empty()) s += ",";
    if (e.size() == 4)
      s += fmt::format("lkey{:#x}@{:#x}:{}", e[3].get<uint64_t>(), e[1].get<uint64_t>(),
                       e[2].get<uint64_t>());
    else
      s += fmt::format("mr{}+{}:{}", e[0].get<uint64_t>(), e[1].get<uint64_t>(),
                       e[2].get<uint64_t>());
  }
  return s;
}
}  // namespace

std::string show_line(const Json& rec, uint64_t recno) {
  const std::string call = rec.value("call", "?");
  if (call == "trace")
    return fmt::format("{:>7}  trace v{} pid {} ({}) on {}, payload {}, source {}", recno,
                       rec.value("version", 0), rec.value("pid", 0),
                       flat(rec.value("argv", Json::array())), rec.value("host", ""),
                       rec.value("payload", ""), rec.value("source", ""));
  std::string out = fmt::format("{:>7} {:>14.3f}us", recno,
                                static_cast<double>(rec.value("t", uint64_t{0})) / 1000.0);
  if (rec.contains("tid")) out += fmt::format(" {:>7}", rec["tid"].get<uint64_t>());
  out += "  " + call;
  for (const auto& [k, v] : rec.items()) {
    if (k == "call" || k == "t" || k == "d" || k == "tid" || k == "ret") continue;
    if (k == "wr" || k == "wc") {
      for (const auto& w : v) {
        out += " [";
        std::string inner;
        if (w.contains("op")) inner = w["op"].get<std::string>();
        if (w.contains("status") && w["status"] != "SUCCESS") inner += " " + flat(w["status"]);
        for (const auto& [wk, wv] : w.items()) {
          if (wk == "op" || wk == "status") continue;
          if (!inner.empty()) inner += " ";
          inner += wk + "=" + (wk == "sge" ? sges(wv) : flat(wv));
        }
        out += inner + "]";
      }
      continue;
    }
    std::string s = flat(v);
    if ((k == "data") && s.size() > 32) s = s.substr(0, 32) + "...";
    out += " " + k + "=" + s;
  }
  if (rec.contains("ret")) out += " -> " + rec["ret"].dump();
  if (rec.contains("d")) out += fmt::format(" ({} ns)", rec["d"].get<uint64_t>());
  return out;
}

std::vector<std::string> calls() {
  std::vector<std::string> out;
  for (const auto& c : schema().calls) out.push_back(c.name);
  return out;
}

std::string schema_markdown() {
  std::string out = "| call | fields |\n|---|---|\n";
  auto row = [&](const Call& c) {
    std::string fs;
    for (const auto& f : c.fields) {
      std::string t;
      for (const auto& tn : kTypes)
        if (tn.type == f.type) t = tn.name;
      fs += fmt::format("{}`{}`{}: {}", fs.empty() ? "" : ", ", f.name, f.optional ? "?" : "", t);
    }
    out += fmt::format("| `{}` | {} |\n", c.name, fs);
  };
  for (const auto& c : schema().calls) row(c);
  for (const Call* c : {&schema().send_wr, &schema().recv_wr, &schema().wc, &schema().av}) row(*c);
  return out;
}

}  // namespace rn::trace
