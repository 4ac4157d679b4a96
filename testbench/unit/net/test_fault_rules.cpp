// net::FaultRule: the text form of link.rule (parse_fault_rules), matching and firing.
#include <catch2/catch.hpp>
#include <string>

#include "model/net/fault_rule.h"
#include "model/wire/opcodes.h"
#include "testbench/unit/net/roce_frames.h"

using namespace rn;
using net::FaultAction;
using net::FaultRule;
using net::parse_fault_rules;

TEST_CASE("fault rules: every field parses, and text() writes it back", "[net][rules]") {
  auto r = parse_fault_rules(
      "action=drop side=0 qp=17 opcode=RC_RDMA_WRITE_ONLY psn=5 count=1; "
      " action=corrupt opcode=ACKNOWLEDGE every=3 ;action=duplicate nth=4;action=reorder "
      "opcode=0x0a;");
  REQUIRE(r.size() == 4);
  CHECK(r[0].action == FaultAction::kDrop);
  CHECK(r[0].side == 0);
  CHECK(r[0].qp == 17);
  CHECK(r[0].opcode == 0x0A);
  CHECK(r[0].psn == 5);
  CHECK(r[0].count == 1);
  CHECK(r[0].nth == 0);
  CHECK(r[0].every == 1);
  CHECK(r[1].action == FaultAction::kCorrupt);
  CHECK(r[1].side == -1);
  CHECK(r[1].opcode == 0x11);  // RC_ prefix optional
  CHECK(r[1].every == 3);
  CHECK(r[2].action == FaultAction::kDuplicate);
  CHECK(r[2].nth == 4);
  CHECK(r[3].action == FaultAction::kReorder);
  CHECK(r[3].opcode == 0x0A);
  CHECK(r[0].text() == "action=drop side=0 qp=17 opcode=RC_RDMA_WRITE_ONLY psn=5 count=1");
  for (const auto& x : r) {
    auto again = parse_fault_rules(x.text());
    REQUIRE(again.size() == 1);
    CHECK(again[0].text() == x.text());
  }
  CHECK(parse_fault_rules("").empty());
  CHECK(parse_fault_rules("  ").empty());
  CHECK(parse_fault_rules("opcode=17 action=drop")[0].opcode == 17);  // decimal
  CHECK(parse_fault_rules("action=drop opcode=UD_SEND_ONLY")[0].opcode == 0x64);
}

TEST_CASE("fault rules: bad rules are refused, naming the rule, the field and the value",
          "[net][rules]") {
  auto refused = [](const std::string& text, const std::string& needle) {
    INFO(text);
    try {
      parse_fault_rules(text);
      FAIL_CHECK("accepted");
    } catch (const std::invalid_argument& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
  };
  refused("side=0", "no action");
  refused("action=explode", "action=explode");
  refused("action=drop opcode=RC_BOGUS", "opcode=RC_BOGUS: unknown opcode");
  refused("action=drop opcode=0x15", "opcode=0x15: unknown opcode");  // RESYNC: not valid
  refused("action=drop opcode=0x1ff", "unknown opcode");
  refused("action=drop side=2", "side=2");
  refused("action=drop qp=16777216", "qp=16777216");
  refused("action=drop psn=16777216", "psn=16777216");
  refused("action=drop psn=-1", "psn=-1");
  refused("action=drop psn=05", "psn=05");
  refused("action=drop psn=0x5", "psn=0x5");
  refused("action=drop nth=0", "nth=0");
  refused("action=drop every=0", "every=0");
  refused("action=drop colour=red", "unknown field 'colour'");
  refused("action=drop side=0 side=1", "'side' is given twice");
  refused("action=drop psn", "'psn' is not key=value");
  refused("action=drop; ; action=drop", "rule 2 is empty");
  refused("action=drop; action=drop side=7", "rule 2 ('action=drop side=7')");
}

TEST_CASE("fault rules: matching fields and firing (nth, every, count)", "[net][rules]") {
  test::Pkt p;
  p.op = wire::Opcode::RC_ACKNOWLEDGE;
  p.qp = 9;
  p.psn = 77;
  const auto bytes = test::frame_bytes(p);
  const net::FrameFields f = net::frame_fields(bytes.data(), static_cast<uint32_t>(bytes.size()));
  REQUIRE(f.roce);
  CHECK(f.opcode == 0x11);
  CHECK(f.dest_qp == 9);
  CHECK(f.psn == 77);
  FaultRule r;
  CHECK(r.matches(0, f));
  CHECK(r.matches(1, f));
  r.side = 1;
  CHECK_FALSE(r.matches(0, f));
  CHECK(r.matches(1, f));
  r.opcode = 0x11;
  r.qp = 9;
  r.psn = 77;
  CHECK(r.matches(1, f));
  r.psn = 78;
  CHECK_FALSE(r.matches(1, f));
  // A frame that is not RoCEv2 matches only rules naming no header field.
  std::vector<uint8_t> other(bytes);
  other[12] = 0x86;  // EtherType IPv6
  const auto g = net::frame_fields(other.data(), static_cast<uint32_t>(other.size()));
  CHECK_FALSE(g.roce);
  CHECK_FALSE(r.matches(1, g));
  CHECK(FaultRule{}.matches(0, g));
  // Firing: matches 1, 2, 3, ... (m), hits so far (h).
  FaultRule every3;
  every3.every = 3;
  std::vector<uint64_t> fired;
  uint64_t hits = 0;
  for (uint64_t m = 1; m <= 10; ++m)
    if (every3.fires(m, hits)) {
      fired.push_back(m);
      ++hits;
    }
  CHECK(fired == std::vector<uint64_t>{3, 6, 9});
  FaultRule nth;
  nth.nth = 2;
  nth.every = 4;
  nth.count = 2;
  fired.clear();
  hits = 0;
  for (uint64_t m = 1; m <= 20; ++m)
    if (nth.fires(m, hits)) {
      fired.push_back(m);
      ++hits;
    }
  CHECK(fired == std::vector<uint64_t>{2, 6});
}
