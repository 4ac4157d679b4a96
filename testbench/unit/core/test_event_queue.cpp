// Unit tests of rn::EventQueue (model/core/event_queue.h) under sc_start. SystemC allows one
// elaboration per process: each TEST_CASE builds its own queue and is its own ctest
// (catch_discover_tests). Running the whole binary at once fails with a clear message.
#include <catch2/catch.hpp>
#include <functional>
#include <stdexcept>
#include <string>
#include <systemc>
#include <utility>
#include <vector>

#include "model/core/event_queue.h"

using namespace rn;
using Catch::Matchers::Contains;

namespace {

// One simulation per process: a second one would die with E529 inside the kernel.
void one_simulation_per_process() {
  static int n = 0;
  if (++n > 1)
    FAIL(
        "SystemC allows one elaboration per process: run each TEST_CASE on its own "
        "(ctest does; or pass the test name to the binary)");
}

struct Record {
  Tick when;
  int id;
  bool operator==(const Record& o) const { return when == o.when && id == o.id; }
};
std::ostream& operator<<(std::ostream& os, const Record& r) {
  return os << "{" << r.when << " ps, #" << r.id << "}";
}

// A module whose SC_THREAD runs a test body inside the simulation (for scheduling from a process
// that is not an EventQueue callback).
class Driver : public sc_core::sc_module {
 public:
  Driver(sc_core::sc_module_name n, std::function<void()> body)
      : sc_module(n), body_(std::move(body)) {
    SC_HAS_PROCESS(Driver);
    SC_THREAD(main);
  }

 private:
  void main() { body_(); }
  std::function<void()> body_;
};

}  // namespace

TEST_CASE("event_queue: callbacks run in time order, equal times in scheduling order",
          "[event_queue]") {
  one_simulation_per_process();
  EventQueue eq("eq");
  std::vector<Record> got;
  auto rec = [&](int id) { return [&got, &eq, id] { got.push_back({eq.now(), id}); }; };
  // Scheduled before sc_start, out of time order; ids 2, 3 and 6 share 10 ns, 4 and 7 share 1234
  // ps.
  eq.at(30 * kNs, rec(1));
  eq.at(10 * kNs, rec(2));
  eq.at(10 * kNs, rec(3));
  eq.at(1234, rec(4));
  eq.at(0, rec(5));
  eq.at(10 * kNs, rec(6));
  eq.at(1234, rec(7));
  eq.after(20 * kNs, rec(8));  // now() is 0 here
  CHECK(eq.pending() == 8);
  sc_core::sc_start();
  std::vector<Record> want = {{0, 5},        {1234, 4},     {1234, 7},     {10 * kNs, 2},
                              {10 * kNs, 3}, {10 * kNs, 6}, {20 * kNs, 8}, {30 * kNs, 1}};
  CHECK(got == want);
  CHECK(eq.pending() == 0);
  CHECK(eq.events_executed() == 8);
}

TEST_CASE("event_queue: many callbacks at random times come out sorted and stable",
          "[event_queue]") {
  one_simulation_per_process();
  EventQueue eq("eq");
  std::vector<Record> got;
  std::vector<Record> want;
  uint64_t x = 88172645463325252ull;  // xorshift: deterministic
  for (int i = 0; i < 5000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    Tick t = (x % 50) * kNs;  // many equal times
    want.push_back({t, i});
    eq.at(t, [&got, &eq, i] { got.push_back({eq.now(), i}); });
  }
  std::stable_sort(want.begin(), want.end(),
                   [](const Record& a, const Record& b) { return a.when < b.when; });
  sc_core::sc_start();
  CHECK(got == want);
  CHECK(eq.events_executed() == 5000);
}

TEST_CASE("event_queue: callbacks schedule more callbacks at the same time and later",
          "[event_queue]") {
  one_simulation_per_process();
  EventQueue eq("eq");
  std::vector<Record> got;
  auto rec = [&](int id) { return [&got, &eq, id] { got.push_back({eq.now(), id}); }; };
  eq.at(10 * kNs, [&] {
    got.push_back({eq.now(), 1});
    eq.at(eq.now(), rec(10));    // same time: after everything already due now
    eq.after(0, rec(11));        // same time, scheduled after #10
    eq.after(5 * kNs, rec(12));  // later
    eq.at(40 * kNs, rec(13));    // earlier than #3 (50 ns), already pending
    eq.after(0, [&] {            // a same-time callback that schedules another
      got.push_back({eq.now(), 14});
      eq.after(0, rec(15));
    });
  });
  eq.at(10 * kNs, rec(2));  // due at 10 ns too, scheduled before #10
  eq.at(50 * kNs, rec(3));
  sc_core::sc_start();
  std::vector<Record> want = {{10 * kNs, 1},  {10 * kNs, 2},  {10 * kNs, 10},
                              {10 * kNs, 11}, {10 * kNs, 14}, {10 * kNs, 15},
                              {15 * kNs, 12}, {40 * kNs, 13}, {50 * kNs, 3}};
  CHECK(got == want);
  CHECK(eq.events_executed() == 9);
}

TEST_CASE("event_queue: a process outside the queue can schedule earlier than the armed time",
          "[event_queue]") {
  one_simulation_per_process();
  EventQueue eq("eq");
  std::vector<Record> got;
  auto rec = [&](int id) { return [&got, &eq, id] { got.push_back({eq.now(), id}); }; };
  eq.at(100 * kNs, rec(1));  // armed for 100 ns
  Driver d("driver", [&] {
    sc_core::wait(10, sc_core::SC_NS);
    eq.at(50 * kNs, rec(2));            // earlier than the armed time: must re-arm
    eq.after(0, rec(3));                // now, from outside a callback
    sc_core::wait(60, sc_core::SC_NS);  // at 70 ns, after #2 ran
    eq.at(80 * kNs, rec(4));
    eq.at(200 * kNs, rec(5));  // later than everything pending
  });
  sc_core::sc_start();
  std::vector<Record> want = {
      {10 * kNs, 3}, {50 * kNs, 2}, {80 * kNs, 4}, {100 * kNs, 1}, {200 * kNs, 5}};
  CHECK(got == want);
  CHECK(eq.events_executed() == 5);
}

TEST_CASE("event_queue: at() in the past throws std::logic_error naming both times",
          "[event_queue]") {
  one_simulation_per_process();
  EventQueue eq("eq");
  std::string error;
  bool late_ran = false, past_ran = false, ok_ran = false;
  eq.at(100 * kNs, [&] {
    try {
      eq.at(99999, [&] { past_ran = true; });  // 1 ps in the past
    } catch (const std::logic_error& e) {
      error = e.what();
    }
    eq.at(eq.now(), [&] { ok_ran = true; });  // now is not the past
  });
  eq.at(200 * kNs, [&] { late_ran = true; });
  sc_core::sc_start();
  CHECK_THAT(error, Contains("99999") && Contains("100000") && Contains("past"));
  CHECK_FALSE(past_ran);
  CHECK(ok_ran);
  CHECK(late_ran);  // the queue keeps working after the refusal
  CHECK(eq.events_executed() == 3);
  CHECK(eq.pending() == 0);
  // After the run, now() is 200 ns: the past is still refused from outside a callback.
  CHECK_THROWS_AS(eq.at(0, [] {}), std::logic_error);
}

TEST_CASE("event_queue: events_executed and pending across partial runs, clear drops pending",
          "[event_queue]") {
  one_simulation_per_process();
  EventQueue eq("eq");
  int ran = 0;
  for (int i = 1; i <= 5; ++i) eq.at(i * 10 * kNs, [&] { ++ran; });
  CHECK(eq.events_executed() == 0);
  CHECK(eq.pending() == 5);
  sc_core::sc_start(25, sc_core::SC_NS);  // runs 10 ns and 20 ns
  CHECK(ran == 2);
  CHECK(eq.events_executed() == 2);
  CHECK(eq.pending() == 3);
  CHECK(eq.now() == 25 * kNs);
  sc_core::sc_start(10, sc_core::SC_NS);  // 30 ns
  CHECK(eq.events_executed() == 3);
  CHECK(eq.pending() == 2);
  eq.clear();
  CHECK(eq.pending() == 0);
  sc_core::sc_start(100, sc_core::SC_NS);
  CHECK(ran == 3);  // 40 ns and 50 ns were dropped
  CHECK(eq.events_executed() == 3);
  // The queue is usable after clear().
  eq.after(5 * kNs, [&] { ++ran; });
  sc_core::sc_start();
  CHECK(ran == 4);
  CHECK(eq.events_executed() == 4);
  CHECK(eq.now() == 140 * kNs);
}

TEST_CASE("event_queue: captured state is destroyed once, after running or on clear",
          "[event_queue]") {
  one_simulation_per_process();
  EventQueue eq("eq");
  struct Token {
    int* live;
    bool owner = true;
    explicit Token(int* l) : live(l) { ++*live; }
    Token(Token&& o) noexcept : live(o.live), owner(o.owner) { o.owner = false; }
    Token(const Token&) = delete;
    ~Token() {
      if (owner) --*live;
    }
  };
  int live = 0;
  int ran = 0;
  for (int i = 0; i < 100; ++i)
    eq.at((i % 7) * kNs, [t = Token(&live), &ran] {
      (void)t;
      ++ran;
    });
  for (int i = 0; i < 10; ++i)
    eq.at(1 * kSec, [t = Token(&live), &ran] {
      (void)t;
      ++ran;
    });
  CHECK(live == 110);
  sc_core::sc_start(1, sc_core::SC_US);
  CHECK(ran == 100);
  CHECK(live == 10);  // the 100 that ran were destroyed, once each (never negative)
  eq.clear();
  CHECK(live == 0);
  // Slots are reused: schedule again, all run and are destroyed.
  for (int i = 0; i < 50; ++i)
    eq.after(i * kNs, [t = Token(&live), &ran] {
      (void)t;
      ++ran;
    });
  CHECK(live == 50);
  sc_core::sc_start();
  CHECK(ran == 150);
  CHECK(live == 0);
}

TEST_CASE("event_queue: start() runs callbacks ahead of SystemC without overtaking other processes",
          "[event_queue][start]") {
  one_simulation_per_process();
  EventQueue eq("eq");
  sc_core::sc_event wake;
  std::vector<Record> got;  // id < 100: callbacks (now() inside); 100+: the thread (sc time)
  std::string past_error;
  auto rec = [&](int id) { return [&got, &eq, id] { got.push_back({eq.now(), id}); }; };
  eq.at(10 * kNs, rec(1));
  eq.at(20 * kNs, rec(2));
  eq.at(30 * kNs, [&] {
    got.push_back({eq.now(), 3});
    try {
      eq.at(29 * kNs, [] {});  // before this callback's time, whatever SystemC's clock says
    } catch (const std::logic_error& e) {
      past_error = e.what();
    }
  });
  eq.at(45 * kNs, [&] {
    got.push_back({eq.now(), 5});
    eq.notify(wake);  // wakes the thread at this callback's time
  });
  Driver d("driver", [&] {
    sc_core::wait(25, sc_core::SC_NS);
    got.push_back({EventQueue::sc_now(), 100});
    got.push_back({eq.now(), 101});  // outside a callback, now() is SystemC's time
    eq.at(eq.now() + 2 * kNs, rec(4));
    sc_core::wait(wake);
    got.push_back({EventQueue::sc_now(), 102});
  });
  eq.start(1 * kUs);
  std::vector<Record> want = {{10 * kNs, 1}, {20 * kNs, 2}, {25 * kNs, 100}, {25 * kNs, 101},
                              {27 * kNs, 4}, {30 * kNs, 3}, {45 * kNs, 5},   {45 * kNs, 102}};
  CHECK(got == want);
  CHECK_THAT(past_error, Contains("29000") && Contains("30000"));
  CHECK(eq.events_executed() == 5);
  CHECK(eq.last_time() == 45 * kNs);
  CHECK(EventQueue::sc_now() == 1 * kUs);
}

TEST_CASE("event_queue: start(duration) leaves callbacks after the duration pending",
          "[event_queue][start]") {
  one_simulation_per_process();
  EventQueue eq("eq");
  std::vector<Record> got;
  auto rec = [&](int id) { return [&got, &eq, id] { got.push_back({eq.now(), id}); }; };
  eq.at(10 * kNs, rec(1));
  eq.at(60 * kNs, rec(2));
  eq.at(100 * kNs, [&] {
    got.push_back({eq.now(), 3});
    eq.after(1 * kNs, rec(4));
  });
  eq.start(50 * kNs);
  CHECK(got == std::vector<Record>{{10 * kNs, 1}});
  CHECK(eq.events_executed() == 1);
  CHECK(eq.pending() == 2);
  CHECK(eq.last_time() == 10 * kNs);
  CHECK(eq.now() == 50 * kNs);
  eq.start(100 * kNs);
  std::vector<Record> want = {{10 * kNs, 1}, {60 * kNs, 2}, {100 * kNs, 3}, {101 * kNs, 4}};
  CHECK(got == want);
  CHECK(eq.pending() == 0);
  CHECK(eq.last_time() == 101 * kNs);
}

TEST_CASE("event_queue: lanes and the heap interleave by time, then scheduling order",
          "[event_queue]") {
  // Three lanes fed in time order (with many equal times, more entries than a lane's first ring,
  // one out-of-order entry that must fall back to the heap) and the heap fed at random: every
  // callback runs in (time, scheduling order), as if all had gone through at(when, cb).
  one_simulation_per_process();
  EventQueue eq("eq");
  const int lanes[3] = {eq.new_lane(), eq.new_lane(), eq.new_lane()};
  std::vector<Record> got, want;
  Tick lane_t[3] = {0, 0, 0};
  uint64_t x = 88172645463325252ull;
  auto rnd = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (int i = 0; i < 3000; ++i) {
    auto cb = [&got, &eq, i] { got.push_back({eq.now(), i}); };
    uint64_t r = rnd();
    Tick t;
    if (r % 4 == 3) {
      t = (rnd() % 400) * kNs;
      eq.at(t, cb);
    } else {
      int k = static_cast<int>(r % 3);
      if (i == 1500) {
        t = lane_t[k] > 5 * kNs ? lane_t[k] - 5 * kNs : 0;  // earlier than the lane's last
      } else {
        lane_t[k] += (rnd() % 3) * kNs;  // often equal to the previous
        t = lane_t[k];
      }
      eq.at(lanes[k], t, cb);
    }
    want.push_back({t, i});
  }
  CHECK(eq.pending() == 3000);
  std::stable_sort(want.begin(), want.end(),
                   [](const Record& a, const Record& b) { return a.when < b.when; });
  sc_core::sc_start();
  CHECK(got == want);
  CHECK(eq.pending() == 0);
  CHECK(eq.events_executed() == 3000);
  // clear() empties the lanes too.
  eq.at(lanes[0], eq.now() + kNs, [] {});
  eq.at(eq.now() + kNs, [] {});
  CHECK(eq.pending() == 2);
  eq.clear();
  CHECK(eq.pending() == 0);
}
