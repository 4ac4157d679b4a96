// Verb traces (docs/traces.md): the format's schema, defined once here; readers and writers of
// both forms (JSON Lines and the binary CBOR sequence) with lossless conversion between them; a
// validator that checks every record against the schema and the objects' lives; and the one-line
// rendering of `rnicsim trace show`. Records are ordered JSON objects in the JSON form's shape
// (byte fields as lowercase hexadecimal text); the binary form turns those into CBOR byte
// strings and back.
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace rn::trace {

using Json = nlohmann::ordered_json;

constexpr uint64_t kVersion = 1;
constexpr char kMagic[] = "RNTRACE\n";  // the binary form's first 8 bytes
constexpr size_t kMagicLen = 8;

enum class Form { kJsonl, kBinary };
// The form a path asks for by its name: ".jsonl" or ".json" is JSON Lines, anything else binary.
Form form_for_path(const std::string& path);
const char* to_string(Form f);

// What is wrong with a trace: the file, the record (from 1; 0: the file as a whole) and the field
// ("" if none), in what().
class TraceError : public std::runtime_error {
 public:
  TraceError(const std::string& file, uint64_t record, const std::string& field,
             const std::string& what);
  const std::string& file() const { return file_; }
  uint64_t record() const { return record_; }
  const std::string& field() const { return field_; }

 private:
  std::string file_;
  uint64_t record_;
  std::string field_;
};

// Reads a trace of either form, one record at a time.
class Reader {
 public:
  // Throws TraceError if the file cannot be opened or is neither form.
  explicit Reader(const std::string& path);
  ~Reader();
  // The next record, false at the end. A record that is not well-formed JSON or CBOR throws
  // TraceError; a last record cut short (the writer died) ends the trace: false, truncated().
  bool next(Json* rec);
  uint64_t record() const { return record_; }  // number of the last record returned
  Form form() const { return form_; }
  const std::string& path() const { return path_; }
  bool truncated() const { return !truncation_.empty(); }
  const std::string& truncation() const { return truncation_; }  // why, if truncated

 private:
  bool fill(size_t need);  // buffers at least `need` bytes from pos_ if the file has them
  std::string path_;
  std::FILE* f_ = nullptr;
  Form form_ = Form::kJsonl;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  uint64_t record_ = 0;
  std::string truncation_;
};

// Writes records in one form (the binary form's magic first). Buffered; close() flushes and
// throws std::runtime_error naming the path if anything could not be written.
class Writer {
 public:
  Writer(const std::string& path, Form form);
  ~Writer();
  void write(const Json& rec);
  void close();

 private:
  std::string path_;
  Form form_;
  std::FILE* f_ = nullptr;
  bool failed_ = false;
};

// Checks records against docs/traces.md, in order: the header first, every key known and of its
// type, every object named live, the end record's count. Throws TraceError.
class Validator {
 public:
  explicit Validator(std::string file) : file_(std::move(file)) {}
  void check(const Json& rec, uint64_t recno);
  // After the last record: a trace with no end record is truncated (returns false), else true.
  bool finish(uint64_t last_recno) const;
  const Json& header() const { return header_; }
  bool ended() const { return ended_; }

 private:
  [[noreturn]] void fail(uint64_t recno, const std::string& field, const std::string& what) const;
  std::string file_;
  Json header_;
  bool ended_ = false;
  uint64_t calls_ = 0;
  std::map<std::string, std::set<uint64_t>> live_;  // kind -> live ids
};

// Reads a whole trace, validating it: the records (header first), and whether it was truncated
// (then *why says where). Throws TraceError.
std::vector<Json> read_all(const std::string& path, bool* truncated = nullptr,
                           std::string* why = nullptr);

// One line per record, for `rnicsim trace show`: number, time (us), thread, call, its fields,
// "-> ret".
std::string show_line(const Json& rec, uint64_t recno);

// The schema as a Markdown table of calls and fields (for checking docs/traces.md).
std::string schema_markdown();
// The calls the format knows, in schema order.
std::vector<std::string> calls();

// IBV_* names used by the format (docs/traces.md), by value; "" if the value has none.
const char* wc_status_name(uint32_t v);
const char* wc_opcode_name(uint32_t v);
const char* wr_opcode_name(uint32_t v);  // SEND, WRITE, ...
const char* qp_state_name(uint32_t v);
const char* qp_type_name(uint32_t v);
const char* event_name(uint32_t v);
// The reverse, -1 if unknown.
int wc_status_value(const std::string& s);
int wc_opcode_value(const std::string& s);
int wr_opcode_value(const std::string& s);
int qp_state_value(const std::string& s);
int qp_type_value(const std::string& s);

// Byte fields' text in the JSON form: lowercase hexadecimal, two digits a byte (from_hex
// expects text the validator accepted).
std::string to_hex(const std::vector<uint8_t>& b);
std::vector<uint8_t> from_hex(const std::string& s);

// FNV-1a, 64 bits (the `hash` of payload bytes).
uint64_t fnv1a(const void* data, size_t len, uint64_t h = 0xcbf29ce484222325ull);

}  // namespace rn::trace
