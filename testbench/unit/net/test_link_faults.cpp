// net::Link fault injection: random loss, corruption, duplication and reordering (seeded, one
// stream per direction), deterministic rules, the fault log and the tap. Each TEST_CASE
// elaborates SystemC (an EventQueue): ctest runs each in a process of its own.
#include <fmt/core.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <deque>
#include <filesystem>
#include <memory>
#include <vector>

#include "bridge/host_memory/host_memory.h"
#include "model/core/event_queue.h"
#include "model/core/sim.h"
#include "model/net/link.h"
#include "testbench/unit/net/roce_frames.h"

using namespace rn;
using test::Pkt;
using wire::Opcode;

namespace {

// What a receiver got: the frame's fields, when, its bytes, and whether it passes the
// receiver's framing and ICRC check (run in full when the frame is not sealed, as the NIC does).
struct Got {
  net::FrameFields f;
  Tick at = 0;
  bool ok = false;
  bool sealed = false;
  std::vector<uint8_t> bytes;
};

struct Recorder : net::FrameSink {
  Sim* sim = nullptr;
  net::FramePool* pool = nullptr;
  bool keep_bytes = false;
  std::vector<Got> got;
  void receive(net::Frame* f) override {
    Got g;
    g.f = net::frame_fields(f->data, f->len);
    g.at = sim->now();
    g.sealed = f->icrc_sealed;
    if (!f->icrc_sealed) f->materialize();
    size_t off = 0, len = 0;
    g.ok = test::framing().unwrap(f->data, f->len, &off, &len, nullptr, f->icrc_sealed) ==
           wire::FrameError::None;
    if (keep_bytes) {
      f->materialize();
      g.bytes.assign(f->data, f->data + f->len);
    }
    got.push_back(std::move(g));
    pool->put(f);
  }
  std::vector<uint32_t> psns() const {
    std::vector<uint32_t> v;
    for (const auto& g : got) v.push_back(g.f.psn);
    return v;
  }
};

struct Bench {
  EventQueue eq{"eq"};
  Sim sim{eq};
  net::FramePool pool;
  std::vector<std::unique_ptr<net::Link>> links;
  std::vector<std::unique_ptr<Recorder>> rx;  // rx[2 * link + side]: what side `side` received
  net::Link& add(const net::LinkParams& p) {
    links.push_back(std::make_unique<net::Link>(sim, fmt::format("link{}", links.size()), p, pool));
    for (int s = 0; s < 2; ++s) {
      rx.push_back(std::make_unique<Recorder>());
      rx.back()->sim = &sim;
      rx.back()->pool = &pool;
      links.back()->connect(s, rx.back().get());
    }
    return *links.back();
  }
  Recorder& at(size_t link, int side) { return *rx[2 * link + static_cast<size_t>(side)]; }
  // Sends `p` on `link` from `side` at time `t`.
  std::deque<Pkt> planned;  // stable addresses for the callbacks
  void send_at(net::Link& link, int side, Tick t, const Pkt& p) {
    const Pkt* x = &planned.emplace_back(p);
    eq.at(t, [this, &link, side, x] { link.send(side, test::make_frame(pool, *x), 0); });
  }
  uint64_t stat(const std::string& group, const std::string& name) {
    return sim.stats.to_json()[group][name]["value"].get<uint64_t>();
  }
};

// n small packets from side 0, one every 100 ns (far apart: frames return to the pool in between),
// PSN = index.
void stream(Bench& b, net::Link& l, int side, uint32_t n, Tick t0 = 0) {
  for (uint32_t i = 0; i < n; ++i) {
    Pkt p;
    p.op = Opcode::RC_SEND_ONLY;
    p.psn = i;
    p.payload = 16;
    b.send_at(l, side, t0 + i * 100 * kNs, p);
  }
}

std::vector<uint64_t> frames_of(const net::Link& l, net::FaultAction a) {
  std::vector<uint64_t> v;
  for (const auto& x : l.fault_log())
    if (x.action == a) v.push_back(x.frame);
  return v;
}

}  // namespace

TEST_CASE("link faults: off by default, nothing added to the statistics", "[net][faults]") {
  Bench b;
  net::Link& l = b.add(net::LinkParams{});
  stream(b, l, 0, 100);
  b.eq.start(100 * kUs);
  CHECK_FALSE(l.faults_on());
  CHECK(b.at(0, 1).got.size() == 100);
  const auto j = b.sim.stats.to_json()["link0"];
  CHECK_FALSE(j.contains("a_to_b_dropped"));
  CHECK_FALSE(j.contains("faults_unlisted"));
  CHECK(l.fault_log().empty());
}

TEST_CASE("link faults: the share of frames lost is link.loss, and the lost ones are missing",
          "[net][faults]") {
  Bench b;
  net::LinkParams p;
  p.loss = 0.1;
  net::Link& l = b.add(p);
  const uint32_t n = 20000;
  stream(b, l, 0, n);
  b.eq.start(10 * kMs);
  const auto& got = b.at(0, 1).got;
  const uint64_t dropped = b.stat("link0", "a_to_b_dropped");
  // Binomial: mean n p = 2000, standard deviation 42. Five deviations either way: a loss ignored
  // (0) or doubled (4000) fails.
  const double sd = std::sqrt(n * p.loss * (1 - p.loss));
  CHECK(std::fabs(static_cast<double>(dropped) - n * p.loss) < 5 * sd);
  CHECK(got.size() + dropped == n);
  // The log lists exactly the frames that did not arrive (PSN i is link frame i + 1).
  std::vector<bool> arrived(n, false);
  for (const auto& g : got) arrived[g.f.psn] = true;
  std::vector<uint64_t> missing;
  for (uint32_t i = 0; i < n; ++i)
    if (!arrived[i]) missing.push_back(i + 1);
  CHECK(frames_of(l, net::FaultAction::kDrop) == missing);
  for (const auto& x : l.fault_log()) {
    CHECK(x.rule == -1);
    CHECK(x.side == 0);
    CHECK(x.fields.psn + 1 == x.frame);
  }
  CHECK(b.stat("link0", "b_to_a_dropped") == 0);
  CHECK(b.pool.in_use() == 0);
}

TEST_CASE("link faults: the same seed gives the same faults, another seed others",
          "[net][faults]") {
  Bench b;
  net::LinkParams p;
  p.loss = p.corrupt = p.duplicate = p.reorder = 0.05;
  p.seed = 7;
  net::Link& l0 = b.add(p);
  net::Link& l1 = b.add(p);
  p.seed = 8;
  net::Link& l2 = b.add(p);
  for (net::Link* l : {&l0, &l1, &l2}) {
    stream(b, *l, 0, 2000);
    stream(b, *l, 1, 2000, 50 * kNs);
  }
  b.eq.start(10 * kMs);
  auto faults = [](const net::Link& l) {
    std::vector<std::pair<uint64_t, int>> v;
    for (const auto& x : l.fault_log()) v.emplace_back(x.frame, static_cast<int>(x.action));
    return v;
  };
  REQUIRE(faults(l0).size() > 100);
  CHECK(faults(l0) == faults(l1));
  CHECK(b.at(0, 1).psns() == b.at(1, 1).psns());  // delivered in the same order too
  CHECK(b.at(0, 0).psns() == b.at(1, 0).psns());
  CHECK(faults(l0) != faults(l2));
  for (auto a : {net::FaultAction::kDrop, net::FaultAction::kCorrupt, net::FaultAction::kDuplicate,
                 net::FaultAction::kReorder})
    CHECK(frames_of(l0, a) != frames_of(l2, a));
}

TEST_CASE("link faults: traffic one way does not change the faults the other way",
          "[net][faults]") {
  Bench b;
  net::LinkParams p;
  p.loss = 0.2;
  p.seed = 3;
  net::Link& one_way = b.add(p);
  net::Link& both = b.add(p);
  stream(b, one_way, 0, 3000);
  stream(b, both, 0, 3000);
  stream(b, both, 1, 5000, 30 * kNs);  // more frames the other way, interleaved
  b.eq.start(10 * kMs);
  auto lost = [](const net::Link& l, int side) {
    std::vector<uint32_t> v;
    for (const auto& x : l.fault_log())
      if (x.side == side) v.push_back(x.fields.psn);
    return v;
  };
  REQUIRE(lost(one_way, 0).size() > 400);
  CHECK(lost(one_way, 0) == lost(both, 0));
  CHECK(b.at(0, 1).psns() == b.at(1, 1).psns());
  // The other direction has a stream of its own: not the same frames as this one.
  std::vector<uint32_t> first3000;
  for (uint32_t x : lost(both, 1))
    if (x < 3000) first3000.push_back(x);
  CHECK(first3000 != lost(both, 0));
}

TEST_CASE(
    "link faults: a corrupted frame has one bit flipped where the receiver's checks look, "
    "and fails them",
    "[net][faults]") {
  Bench b;
  net::LinkParams p;
  p.corrupt = 1;  // every frame
  net::Link& l = b.add(p);
  b.at(0, 1).keep_bytes = true;
  // Short (padded to 60 B), mid-sized and MTU-sized frames; one with its payload left in a
  // host-memory page (as the NIC sends them with sim.share_pages).
  std::vector<Pkt> pkts;
  for (uint32_t i = 0; i < 300; ++i) {
    Pkt x;
    x.psn = i;
    if (i % 3 == 0) {
      x.op = Opcode::RC_ACKNOWLEDGE;
    } else if (i % 3 == 1) {
      x.op = Opcode::RC_SEND_ONLY;
      x.payload = 1 + i;
    } else {
      x.op = Opcode::RC_RDMA_WRITE_MIDDLE;
      x.payload = 4096;
    }
    pkts.push_back(x);
  }
  std::vector<std::vector<uint8_t>> sent;
  for (const auto& x : pkts) sent.push_back(test::frame_bytes(x));
  auto pages = std::make_shared<hostmem::PagePool>();
  hostmem::HostMemory mem(pages);
  for (size_t i = 0; i < pkts.size(); ++i) {
    b.eq.at(i * 1 * kUs, [&, i] {
      net::Frame* f = test::make_frame(b.pool, pkts[i]);
      if (i == 2) {  // a WRITE_MIDDLE: its 4096 payload bytes from a page instead of the frame
        const size_t off = test::framing().headroom() + wire::kBthLen;
        mem.write(0x10000, f->data + off, 4096);
        f->payload_page = mem.ref_page(0x10000);
        std::memset(f->data + off, 0, 4096);
        f->ext_off = static_cast<uint16_t>(off);
      }
      l.send(0, f, 0);
    });
  }
  b.eq.start(10 * kMs);
  const auto& got = b.at(0, 1).got;
  REQUIRE(got.size() == pkts.size());
  CHECK(b.stat("link0", "a_to_b_corrupted") == pkts.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("frame " << i);
    CHECK_FALSE(got[i].sealed);
    CHECK_FALSE(got[i].ok);  // the ICRC (or the IP header checksum) check caught it
    const auto& a = sent[i];
    const auto& c = got[i].bytes;
    REQUIRE(a.size() == c.size());
    int bits = 0;
    size_t where = 0;
    for (size_t k = 0; k < a.size(); ++k)
      if (a[k] != c[k]) {
        bits += __builtin_popcount(a[k] ^ c[k]);
        where = k;
      }
    CHECK(bits == 1);
    const size_t ip_end = 14 + wire::load_be16(a.data() + 16);
    CHECK(where >= 14);     // not in the Ethernet header
    CHECK(where < ip_end);  // nor in the Ethernet padding of a short frame
    CHECK(where != 40);     // nor in the UDP checksum
    CHECK(where != 41);
    CHECK(where != 46);  // nor in BTH byte 4 (FECN, BECN, reserved)
  }
  CHECK(b.pool.in_use() == 0);
  CHECK(pages->pages_in_use() == 1);  // the page reference was released by unseal()
}

TEST_CASE("link faults: corrupted frames are exactly the ones the receiver's check refuses",
          "[net][faults]") {
  Bench b;
  net::LinkParams p;
  p.corrupt = 0.3;
  net::Link& l = b.add(p);
  for (uint32_t i = 0; i < 3000; ++i) {
    Pkt x;
    x.psn = i;
    x.op = i % 2 ? Opcode::RC_ACKNOWLEDGE : Opcode::RC_RDMA_WRITE_ONLY;
    x.payload = i % 2 ? 0 : 100 + i;
    x.reth_len = x.payload;
    b.send_at(l, 0, i * 500 * kNs, x);
  }
  b.eq.start(10 * kMs);
  // Nothing lost or reordered: the k-th frame received is the link's frame k + 1 (its PSN may be
  // the corrupted bit).
  const auto& got = b.at(0, 1).got;
  REQUIRE(got.size() == 3000);
  std::vector<uint64_t> refused;
  for (size_t k = 0; k < got.size(); ++k)
    if (!got[k].ok) refused.push_back(k + 1);
  const auto corrupted = frames_of(l, net::FaultAction::kCorrupt);
  CHECK(corrupted.size() > 700);
  CHECK(corrupted.size() < 1100);
  CHECK(refused == corrupted);
}

TEST_CASE(
    "link faults: a duplicate follows its frame one frame time later, byte for byte, "
    "from the pool",
    "[net][faults]") {
  Bench b;
  net::LinkParams p;
  p.duplicate = 0.5;
  net::Link& l = b.add(p);
  b.at(0, 1).keep_bytes = true;
  const uint32_t n = 4000;
  for (uint32_t i = 0; i < n; ++i) {
    Pkt x;
    x.psn = i;
    x.op = Opcode::RC_SEND_ONLY;
    x.payload = 1000;
    b.send_at(l, 0, i * 1 * kUs, x);
  }
  b.eq.start(10 * kMs);
  const auto& got = b.at(0, 1).got;
  const auto dup = frames_of(l, net::FaultAction::kDuplicate);
  CHECK(dup.size() > 1800);
  CHECK(dup.size() < 2200);
  REQUIRE(got.size() == n + dup.size());
  // In order: each frame, then its copy if it has one.
  size_t k = 0;
  for (uint32_t i = 0; i < n; ++i) {
    INFO("PSN " << i);
    REQUIRE(got[k].f.psn == i);
    CHECK(got[k].ok);
    if (std::binary_search(dup.begin(), dup.end(), uint64_t(i) + 1)) {
      REQUIRE(got[k + 1].f.psn == i);
      CHECK(got[k + 1].ok);
      CHECK(got[k + 1].bytes == got[k].bytes);
      CHECK(got[k + 1].at == got[k].at + l.frame_time(static_cast<uint32_t>(got[k].bytes.size())));
      ++k;
    }
    ++k;
  }
  CHECK(b.stat("link0", "a_to_b_frames") == n);  // frames the side sent
  // No allocation once warm: a handful of frames serve the whole run.
  CHECK(b.pool.allocated() <= 4);
  CHECK(b.pool.in_use() == 0);
}

TEST_CASE("link faults: a reordered frame comes right after the next frame of its direction",
          "[net][faults]") {
  Bench b;
  net::LinkParams p;
  net::Link& rule = b.add(p);
  p.reorder = 1;  // every frame that can be held
  net::Link& all = b.add(p);
  net::FaultRule r;
  r.action = net::FaultAction::kReorder;
  r.psn = 5;
  rule.add_rule(r);
  for (net::Link* l : {&rule, &all})
    for (uint32_t i = 0; i < 10; ++i) {
      Pkt x;
      x.psn = i;
      x.payload = 64;
      b.send_at(*l, 0, i * 200 * kNs, x);
    }
  b.eq.start(1 * kMs);
  CHECK(b.at(0, 1).psns() == std::vector<uint32_t>{0, 1, 2, 3, 4, 6, 5, 7, 8, 9});
  // Held, released by the next (which is not held itself), held, released...
  CHECK(b.at(1, 1).psns() == std::vector<uint32_t>{1, 0, 3, 2, 5, 4, 7, 6, 9, 8});
  // The held frame arrives with the one that released it.
  CHECK(b.at(0, 1).got[6].at == b.at(0, 1).got[5].at);
  CHECK(rule.rule_hits(0) == 1);
  CHECK(b.stat("link1", "a_to_b_reordered") == 5);
}

TEST_CASE("link faults: a held frame with no frame after it within reorder_delay comes alone",
          "[net][faults]") {
  Bench b;
  net::LinkParams p;
  p.reorder_delay = 2 * kUs;
  net::Link& l = b.add(p);
  net::Link& plain = b.add(net::LinkParams{});
  net::FaultRule r;
  r.action = net::FaultAction::kReorder;
  r.psn = 0;
  l.add_rule(r);
  for (net::Link* x : {&l, &plain}) {
    Pkt a;
    a.psn = 0;
    b.send_at(*x, 0, 0, a);
    a.psn = 1;
    b.send_at(*x, 0, 10 * kUs, a);  // long after the deadline
  }
  b.eq.start(1 * kMs);
  REQUIRE(b.at(0, 1).psns() == std::vector<uint32_t>{0, 1});
  CHECK(b.at(0, 1).got[0].at == b.at(1, 1).got[0].at + 2 * kUs);
  CHECK(b.at(0, 1).got[1].at == b.at(1, 1).got[1].at);
}

TEST_CASE("link faults: rules act on exactly the frames they match", "[net][faults]") {
  Bench b;
  net::Link& l = b.add(net::LinkParams{});
  // Drop the first WRITE_ONLY from side 0 to QP 17 with PSN 5.
  l.add_rule(net::parse_fault_rules(
      "action=drop side=0 qp=17 opcode=RC_RDMA_WRITE_ONLY psn=5 count=1")[0]);
  // Corrupt the second SEND_ONLY with PSN 9, whichever side.
  l.add_rule(net::parse_fault_rules("action=corrupt opcode=SEND_ONLY psn=9 nth=2 count=1")[0]);
  // Drop every 3rd ACK from side 1.
  l.add_rule(net::parse_fault_rules("action=drop side=1 opcode=0x11 every=3")[0]);
  struct S {
    int side;
    Opcode op;
    uint32_t qp, psn;
  };
  std::vector<S> plan = {
      {0, Opcode::RC_RDMA_WRITE_ONLY, 17, 5},   // 1: dropped (rule 1)
      {0, Opcode::RC_RDMA_WRITE_ONLY, 17, 5},   // 2: the same again: count=1, delivered
      {1, Opcode::RC_RDMA_WRITE_ONLY, 17, 5},   // 3: other side
      {0, Opcode::RC_RDMA_WRITE_ONLY, 18, 5},   // 4: other QP
      {0, Opcode::RC_RDMA_WRITE_FIRST, 17, 5},  // 5: other opcode
      {0, Opcode::RC_RDMA_WRITE_ONLY, 17, 6},   // 6: other PSN
      {0, Opcode::RC_SEND_ONLY, 17, 9},         // 7: first match of rule 2
      {1, Opcode::RC_SEND_ONLY, 3, 9},          // 8: second match: corrupted
      {0, Opcode::RC_SEND_ONLY, 17, 9},         // 9: third: count=1, delivered
  };
  for (int i = 0; i < 10; ++i) {  // ACKs 10..19 from side 1, 20..29 from side 0
    plan.push_back({1, Opcode::RC_ACKNOWLEDGE, 17, static_cast<uint32_t>(100 + i)});
  }
  for (int i = 0; i < 10; ++i) {
    plan.push_back({0, Opcode::RC_ACKNOWLEDGE, 17, static_cast<uint32_t>(200 + i)});
  }
  for (size_t i = 0; i < plan.size(); ++i) {
    Pkt x;
    x.op = plan[i].op;
    x.qp = plan[i].qp;
    x.psn = plan[i].psn;
    x.payload = wire::op_info(x.op).has_payload ? 32 : 0;
    x.reth_len = x.payload;
    b.send_at(l, plan[i].side, i * 200 * kNs, x);
  }
  b.eq.start(1 * kMs);
  std::vector<std::pair<uint64_t, net::FaultAction>> want =
      {
          {1, net::FaultAction::kDrop},  {8, net::FaultAction::kCorrupt},
          {12, net::FaultAction::kDrop}, {15, net::FaultAction::kDrop},
          {18, net::FaultAction::kDrop},  // side 1's 3rd, 6th and 9th ACK
      };
  std::vector<std::pair<uint64_t, net::FaultAction>> have;
  for (const auto& x : l.fault_log()) have.emplace_back(x.frame, x.action);
  CHECK(have == want);
  CHECK(l.fault_log()[0].rule == 0);
  CHECK(l.fault_log()[1].rule == 1);
  CHECK(l.fault_log()[2].rule == 2);
  CHECK(l.rule_hits(0) == 1);
  CHECK(l.rule_hits(1) == 1);
  CHECK(l.rule_hits(2) == 3);
  CHECK(b.stat("link0", "rule3_hits") == 3);
  CHECK(b.at(0, 1).got.size() == 6 + 10);  // side 0 sent 7 + 10, one dropped
  CHECK(b.at(0, 0).got.size() == 2 + 7);   // side 1 sent 2 + 10, three ACKs dropped
  size_t bad = 0;
  for (const auto& g : b.at(0, 0).got) bad += !g.ok;
  CHECK(bad == 1);  // the corrupted SEND
}

TEST_CASE(
    "link faults: the tap records every frame sent, lost ones too, and the log names them "
    "by pcap frame number",
    "[net][faults]") {
  Bench b;
  net::LinkParams p;
  p.loss = 0.3;
  p.duplicate = 0.1;
  net::Link& l = b.add(p);
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("rnicsim-test-link-faults-" + std::to_string(::getpid()) + ".pcap"))
                               .string();
  wire::PcapWriter tap;
  std::string err;
  REQUIRE(tap.open(path, 65535, &err));
  l.set_tap(&tap, 300);  // the first 300 frames only
  stream(b, l, 0, 500);
  stream(b, l, 1, 500, 50 * kNs);
  b.eq.start(1 * kMs);
  REQUIRE(tap.close(&err));
  // The pcap: the first 300 frames sent, in order, whatever happened to them.
  char ebuf[PCAP_ERRBUF_SIZE];
  pcap_t* pc = pcap_open_offline(path.c_str(), ebuf);
  REQUIRE(pc != nullptr);
  std::vector<uint32_t> in_pcap;  // PSNs
  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  while (pcap_next_ex(pc, &hdr, &data) == 1)
    in_pcap.push_back(net::frame_fields(data, hdr->caplen).psn);
  pcap_close(pc);
  std::filesystem::remove(path);
  REQUIRE(in_pcap.size() == 300);
  // Frames alternate: side 0 PSN i at i * 100 ns, side 1 PSN i 50 ns later.
  for (size_t k = 0; k < in_pcap.size(); ++k) CHECK(in_pcap[k] == k / 2);
  size_t with_number = 0;
  for (const auto& x : l.fault_log()) {
    INFO("frame " << x.frame);
    if (x.frame <= 300) {
      CHECK(x.pcap_frame == x.frame);
      CHECK(in_pcap[x.pcap_frame - 1] == x.fields.psn);
      ++with_number;
    } else {
      CHECK(x.pcap_frame == 0);  // not recorded
    }
  }
  CHECK(with_number > 80);
  CHECK(b.stat("link0", "pcap_frames") == 300);
}
