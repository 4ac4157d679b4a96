// The verb trace format (docs/traces.md): every call of the schema written and read back in both
// forms, byte for byte; the validator names the record and the field of each mistake; a trace cut
// anywhere reads up to the cut; random garbage is refused, never a crash.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "bridge/trace/trace.h"

using rn::trace::Json;

namespace {

std::string tmp(const std::string& name) {
  return "/tmp/rn_test_trace_" + std::to_string(getpid()) + "_" + name;
}
std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
void spit(const std::string& p, const std::string& data) {
  std::ofstream f(p, std::ios::binary);
  f << data;
}

Json rec(const char* call, uint64_t t, Json fields) {
  Json r = {{"call", call}, {"t", t}, {"d", 100}, {"tid", 7}, {"ret", 0}};
  for (auto& [k, v] : fields.items()) r[k] = v;
  return r;
}

// A trace with every call of the schema, and the optional fields and byte fields.
std::vector<Json> every_call() {
  std::vector<Json> v;
  v.push_back({{"call", "trace"},
               {"version", 1},
               {"pid", 42},
               {"argv", {"prog", "-x"}},
               {"host", "h"},
               {"t0_mono", 5},
               {"t0_real", 1796000000000000000ull},
               {"payload", "full"},
               {"source", "test"},
               {"library", "/usr/lib/libibverbs.so.1"}});
  Json av = {{"dlid", 0},
             {"sl", 0},
             {"port", 1},
             {"is_global", 1},
             {"dgid", "fe800000000000000000000000000001"},
             {"sgid_index", 1},
             {"hop_limit", 64},
             {"tclass", 0},
             {"flow_label", 0}};
  uint64_t t = 1000;
  v.push_back(rec("open_device", t++, {{"dev", 1}, {"name", "rnsim_host0"}}));
  v.push_back(rec("create_comp_channel", t++, {{"dev", 1}, {"ch", 1}}));
  v.push_back(rec("alloc_pd", t++, {{"dev", 1}, {"pd", 1}}));
  v.push_back(rec("reg_mr", t++,
                  {{"pd", 1},
                   {"mr", 1},
                   {"addr", 0x7f0000001000ull},
                   {"len", 4096},
                   {"access", 15},
                   {"iova", 0},
                   {"lkey", 0x101},
                   {"rkey", 0x101},
                   {"data", "00ff10"}}));
  v.push_back(rec("create_cq", t++,
                  {{"dev", 1},
                   {"cq", 1},
                   {"cqe", 10},
                   {"cqe_out", 16},
                   {"ch", 1},
                   {"vec", 0},
                   {"ext", 1},
                   {"wc_flags", 0}}));
  v.push_back(rec("create_srq", t++,
                  {{"pd", 1}, {"srq", 1}, {"max_wr", 16}, {"max_sge", 1}, {"limit", 0}}));
  v.push_back(rec("modify_srq", t++, {{"srq", 1}, {"mask", 2}, {"limit", 4}}));
  v.push_back(rec("create_qp", t++,
                  {{"pd", 1},
                   {"qp", 77},
                   {"type", "RC"},
                   {"scq", 1},
                   {"rcq", 1},
                   {"srq", 1},
                   {"max_send_wr", 16},
                   {"max_recv_wr", 0},
                   {"max_send_sge", 2},
                   {"max_recv_sge", 1},
                   {"max_inline", 64},
                   {"sig_all", 0},
                   {"ext", 1},
                   {"send_ops", 3}}));
  v.push_back(rec("modify_qp", t++,
                  {{"qp", 77},
                   {"mask", 0x1ff},
                   {"state", "RTR"},
                   {"cur_state", "INIT"},
                   {"access", 7},
                   {"pkey_index", 0},
                   {"port", 1},
                   {"qkey", 5},
                   {"av", av},
                   {"mtu", 1024},
                   {"timeout", 14},
                   {"retry_cnt", 7},
                   {"rnr_retry", 7},
                   {"rq_psn", 1},
                   {"sq_psn", 2},
                   {"max_rd_atomic", 1},
                   {"max_dest_rd_atomic", 1},
                   {"min_rnr_timer", 12},
                   {"dest_qp", 99}}));
  v.push_back(rec("create_ah", t++, {{"pd", 1}, {"ah", 1}, {"av", av}}));
  v.push_back(
      rec("post_srq_recv", t++, {{"srq", 1}, {"wr", {{{"id", 1}, {"sge", {{1, 0, 64}}}}}}}));
  Json w = {{"id", 18446744073709551615ull},
            {"op", "WRITE_IMM"},
            {"flags", 10},
            {"sge", {{1, 8, 16}, {0, 0x1234, 8, 0xdead}}},
            {"imm", 0xdeadbeef},
            {"rkey", 0x202},
            {"raddr", 0x5000},
            {"data", "0102"}};
  Json a = {{"id", 2},       {"op", "CMP_SWP"}, {"flags", 2}, {"sge", {{1, 0, 8}}},
            {"rkey", 0x202}, {"raddr", 0x5000}, {"cmp", 1},   {"swap", 2},
            {"hash", 12345}};
  Json ud = {{"id", 3}, {"op", "SEND"}, {"flags", 0}, {"sge", Json::array()},
             {"ah", 1}, {"rqpn", 99},   {"rqkey", 5}, {"inv", 0}};
  v.push_back(rec("post_send", t++, {{"qp", 77}, {"wr", {w, a, ud}}, {"ext", 1}}));
  Json bad =
      rec("post_recv", t++, {{"qp", 77}, {"wr", {{{"id", 9}, {"sge", {{1, 0, 1}}}}}}, {"bad", 0}});
  bad["ret"] = 22;
  v.push_back(bad);
  Json poll = rec("poll_cq", t++,
                  {{"cq", 1},
                   {"n", 4},
                   {"empty", 3},
                   {"ext", 1},
                   {"wc",
                    {{{"id", 1},
                      {"status", "SUCCESS"},
                      {"op", "RECV_RDMA_WITH_IMM"},
                      {"len", 16},
                      {"qp", 77},
                      {"src_qp", 0},
                      {"imm", 1},
                      {"flags", 2},
                      {"vendor_err", 0}},
                     {{"id", 2},
                      {"status", "REM_ACCESS_ERR"},
                      {"op", "COMP_SWAP"},
                      {"len", 0},
                      {"qp", 77},
                      {"flags", 0}}}}});
  poll["ret"] = 2;
  v.push_back(poll);
  v.push_back(rec("req_notify_cq", t++, {{"cq", 1}, {"solicited", 0}}));
  v.push_back(rec("get_cq_event", t++, {{"ch", 1}, {"cq", 1}}));
  v.push_back(rec("ack_cq_events", t++, {{"cq", 1}, {"n", 1}}));
  v.push_back(rec("async_event", t++, {{"event", "QP_FATAL"}, {"qp", 77}}));
  v.push_back(rec("destroy_ah", t++, {{"ah", 1}}));
  v.push_back(rec("destroy_qp", t++, {{"qp", 77}}));
  v.push_back(rec("destroy_srq", t++, {{"srq", 1}}));
  v.push_back(rec("destroy_cq", t++, {{"cq", 1}}));
  v.push_back(rec("dereg_mr", t++, {{"mr", 1}, {"hash", 99}, {"data", "00"}}));
  v.push_back(rec("dealloc_pd", t++, {{"pd", 1}}));
  v.push_back(rec("destroy_comp_channel", t++, {{"ch", 1}}));
  v.push_back(rec("close_device", t++, {{"dev", 1}, {"x_note", "users' keys are kept"}}));
  v.push_back({{"call", "end"}, {"t", t}, {"records", v.size() - 1}, {"empty", 0}});
  return v;
}

void write(const std::string& path, const std::vector<Json>& recs, rn::trace::Form f) {
  rn::trace::Writer w(path, f);
  for (const auto& r : recs) w.write(r);
  w.close();
}

// The error reading `recs` (as JSON Lines) gives, or "" if none.
rn::trace::TraceError* error_of(const std::vector<Json>& recs) {
  static std::unique_ptr<rn::trace::TraceError> e;
  const std::string p = tmp("err.jsonl");
  write(p, recs, rn::trace::Form::kJsonl);
  try {
    rn::trace::read_all(p);
  } catch (const rn::trace::TraceError& x) {
    e = std::make_unique<rn::trace::TraceError>(x);
    std::remove(p.c_str());
    return e.get();
  }
  std::remove(p.c_str());
  return nullptr;
}

}  // namespace

TEST_CASE("every call of the schema reads back the same from both forms, byte for byte") {
  const auto recs = every_call();
  // The trace covers every call the schema knows.
  std::set<std::string> seen;
  for (const auto& r : recs) seen.insert(r["call"].get<std::string>());
  for (const auto& c : rn::trace::calls()) CHECK(seen.count(c) == 1);

  const std::string j1 = tmp("a.jsonl"), b = tmp("a.rntrace"), j2 = tmp("b.jsonl"),
                    b2 = tmp("b.rntrace");
  write(j1, recs, rn::trace::Form::kJsonl);
  bool truncated = true;
  auto back = rn::trace::read_all(j1, &truncated);
  CHECK_FALSE(truncated);
  REQUIRE(back == recs);
  write(b, back, rn::trace::Form::kBinary);
  auto from_bin = rn::trace::read_all(b, &truncated);
  CHECK_FALSE(truncated);
  CHECK(from_bin == recs);  // hex turned into CBOR byte strings and back
  write(j2, from_bin, rn::trace::Form::kJsonl);
  write(b2, rn::trace::read_all(j2), rn::trace::Form::kBinary);
  CHECK(slurp(j1) == slurp(j2));
  CHECK(slurp(b) == slurp(b2));
  CHECK(slurp(b).substr(0, 8) == "RNTRACE\n");
  CHECK(slurp(b).size() < slurp(j1).size());
  // The byte field really is a CBOR byte string (major type 2) in the binary form: "data" then
  // 0x43 (3 bytes) 00 ff 10.
  CHECK(slurp(b).find(std::string("\x64"
                                  "data\x43\x00\xff\x10",
                                  9)) != std::string::npos);
  for (const auto& p : {j1, b, j2, b2}) std::remove(p.c_str());
}

TEST_CASE("the validator names the record and the field of each mistake") {
  struct Case {
    const char* what;
    size_t index;  // record to change (0-based)
    std::function<void(Json&)> change;
    const char* field;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"unknown call", 3, [](Json& r) { r["call"] = "alloc_pdx"; }, "call", "unknown call"},
      {"unknown field", 3, [](Json& r) { r["pdd"] = 1; }, "pdd", "not a field of alloc_pd"},
      {"missing field", 4, [](Json& r) { r.erase("len"); }, "len", "missing"},
      {"wrong type", 4, [](Json& r) { r["len"] = "4096"; }, "len", "unsigned integer"},
      {"negative", 4, [](Json& r) { r["access"] = -1; }, "access", "unsigned integer"},
      {"too large", 8, [](Json& r) { r["max_send_wr"] = 1ull << 33; }, "max_send_wr",
       "at most 4294967295"},
      {"dead object", 4, [](Json& r) { r["pd"] = 2; }, "pd", "pd 2 is not live"},
      {"twice created", 3,
       [](Json& r) {
         r["dev"] = 1;
         r["pd"] = 1;
         r["call"] = "alloc_pd";
       },
       "", ""},  // the original record: fine
      {"bad enum", 9, [](Json& r) { r["state"] = "READY"; }, "state", "must be one of RESET"},
      {"bad mtu", 9, [](Json& r) { r["mtu"] = 1500; }, "mtu", "256, 512"},
      {"bad hex", 4, [](Json& r) { r["data"] = "0G"; }, "data", "hexadecimal"},
      {"bad gid", 10, [](Json& r) { r["av"]["dgid"] = "00"; }, "av.dgid", "16 bytes"},
      {"nested field", 12, [](Json& r) { r["wr"][1]["op"] = "CAS"; }, "wr[1].op", "one of WRITE"},
      {"bad sge", 12,
       [](Json& r) {
         r["wr"][0]["sge"][0] = Json::array({1, 2});
       },
       "wr[0].sge[0]", "[mr, off, len]"},
      {"sge of a dead mr", 12, [](Json& r) { r["wr"][0]["sge"][0][0] = 5; }, "wr[0].sge[0]",
       "mr 5 is not a live"},
      {"wc count", 14, [](Json& r) { r["ret"] = 1; }, "wc", "ret says 1"},
      {"ret not integer", 2, [](Json& r) { r["ret"] = "ok"; }, "ret", "integer"},
      {"end count", 27, [](Json& r) { r["records"] = 3; }, "records", "says 3 records"},
      {"bad version", 0, [](Json& r) { r["version"] = 2; }, "version", "version 2"},
      {"header not first", 0, [](Json& r) { r["call"] = "open_device"; }, "call",
       "must be the header"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    auto recs = every_call();
    REQUIRE(c.index < recs.size());
    c.change(recs[c.index]);
    auto* e = error_of(recs);
    if (!*c.field) {
      CHECK(e == nullptr);
      continue;
    }
    REQUIRE(e != nullptr);
    INFO(e->what());
    CHECK(e->record() == c.index + 1);
    CHECK(e->field() == c.field);
    CHECK(std::string(e->what()).find(c.says) != std::string::npos);
    CHECK(std::string(e->what()).find(tmp("err.jsonl")) == 0);  // the file first
  }
  // A failed creation names no object, and later records may not use it.
  auto recs = every_call();
  recs[3]["ret"] = 12;
  recs[3].erase("pd");
  auto* e = error_of(recs);
  REQUIRE(e != nullptr);
  CHECK(e->record() == 5);
  CHECK(e->field() == "pd");
}

TEST_CASE("a trace cut anywhere reads up to the cut and says it is truncated") {
  const auto recs = every_call();
  for (auto form : {rn::trace::Form::kBinary, rn::trace::Form::kJsonl}) {
    const std::string p = tmp("full"), c = tmp("cut");
    write(p, recs, form);
    const std::string all = slurp(p);
    size_t last = 0;
    for (size_t n = (form == rn::trace::Form::kBinary ? 9 : 1); n < all.size(); n += 7) {
      spit(c, all.substr(0, n));
      bool truncated = false;
      std::string why;
      std::vector<Json> got;
      try {
        got = rn::trace::read_all(c, &truncated, &why);
      } catch (const rn::trace::TraceError& e) {
        // Only before the header is whole (a trace needs its header).
        INFO(e.what());
        CHECK(std::string(e.what()).find("no header") != std::string::npos);
        continue;
      }
      INFO("cut at " << n);
      CHECK(truncated);
      CHECK_FALSE(why.empty());
      REQUIRE(got.size() <= recs.size());
      for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == recs[i]);
      CHECK(got.size() >= last);  // a longer prefix never gives fewer records
      last = got.size();
    }
    CHECK(last >= recs.size() - 1);
    std::remove(p.c_str());
    std::remove(c.c_str());
  }
}

TEST_CASE("garbage is refused with the record it is in, never a crash") {
  const auto recs = every_call();
  const std::string p = tmp("g.rntrace"), c = tmp("g2.rntrace");
  write(p, recs, rn::trace::Form::kBinary);
  const std::string all = slurp(p);
  std::mt19937_64 rng(7);
  int refused = 0, read = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string m = all;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k)
      m[8 + rng() % (m.size() - 8)] = static_cast<char>(rng());
    spit(c, m);
    try {
      rn::trace::read_all(c);
      ++read;  // a change the format allows (a value within its range)
    } catch (const rn::trace::TraceError& e) {
      ++refused;
      CHECK(std::string(e.what()).find(c) == 0);
    }
  }
  CHECK(refused > 2000);
  CHECK(read > 0);
  // Neither form.
  spit(c, "hello");
  CHECK_THROWS_WITH(rn::trace::read_all(c), Catch::Contains("not a trace"));
  spit(c, "");
  CHECK_THROWS_WITH(rn::trace::read_all(c), Catch::Contains("empty file"));
  CHECK_THROWS_WITH(rn::trace::read_all(tmp("none")), Catch::Contains("cannot open"));
  // A line that is not JSON, in the middle.
  spit(c, slurp(p).substr(0, 0));
  const std::string j = tmp("g.jsonl");
  write(j, recs, rn::trace::Form::kJsonl);
  std::string text = slurp(j);
  text.insert(text.find('\n') + 1, "{\"call\": oops}\n");
  spit(j, text);
  try {
    rn::trace::read_all(j);
    FAIL("a line that is not JSON was read");
  } catch (const rn::trace::TraceError& e) {
    CHECK(e.record() == 2);
    CHECK(std::string(e.what()).find("not JSON") != std::string::npos);
  }
  for (const auto& x : {p, c, j}) std::remove(x.c_str());
}

TEST_CASE("the payload hash is FNV-1a 64") {
  // The published test vectors of FNV-1a 64.
  CHECK(rn::trace::fnv1a("", 0) == 0xcbf29ce484222325ull);
  CHECK(rn::trace::fnv1a("a", 1) == 0xaf63dc4c8601ec8cull);
  CHECK(rn::trace::fnv1a("foobar", 6) == 0x85944171f73967e8ull);
}

TEST_CASE("names and values of the IBV enums agree both ways") {
  for (uint32_t v = 0; v < 256; ++v) {
    if (*rn::trace::wc_status_name(v))
      CHECK(rn::trace::wc_status_value(rn::trace::wc_status_name(v)) == static_cast<int>(v));
    if (*rn::trace::wc_opcode_name(v))
      CHECK(rn::trace::wc_opcode_value(rn::trace::wc_opcode_name(v)) == static_cast<int>(v));
    if (*rn::trace::wr_opcode_name(v))
      CHECK(rn::trace::wr_opcode_value(rn::trace::wr_opcode_name(v)) == static_cast<int>(v));
    if (*rn::trace::qp_state_name(v))
      CHECK(rn::trace::qp_state_value(rn::trace::qp_state_name(v)) == static_cast<int>(v));
  }
  CHECK(std::string(rn::trace::wc_status_name(13)) == "RNR_RETRY_EXC_ERR");
  CHECK(std::string(rn::trace::wr_opcode_name(1)) == "WRITE_IMM");
  CHECK(std::string(rn::trace::wc_opcode_name(129)) == "RECV_RDMA_WITH_IMM");
}
