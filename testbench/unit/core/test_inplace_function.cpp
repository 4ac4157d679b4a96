// Unit tests of rn::InplaceFunction (model/core/inplace_function.h): call results, moves, and that
// the captured state is destroyed exactly once.
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <utility>

#include "model/core/inplace_function.h"

using rn::InplaceFunction;

namespace {

// Counts the live copies of a captured object, and how many times the "real" one (not a
// moved-from shell) was destroyed.
struct Counts {
  int constructed = 0;      // every constructor, moves included
  int destroyed = 0;        // every destructor
  int owner_destroyed = 0;  // destructors of an object that still owned the state
  int live() const { return constructed - destroyed; }
};

class Tracker {
 public:
  explicit Tracker(Counts* c, int v = 0) : c_(c), value_(v) { ++c_->constructed; }
  Tracker(Tracker&& o) noexcept : c_(o.c_), value_(o.value_), owner_(o.owner_) {
    o.owner_ = false;
    ++c_->constructed;
  }
  Tracker(const Tracker&) = delete;  // a copy would be a second owner
  Tracker& operator=(Tracker&&) = delete;
  Tracker& operator=(const Tracker&) = delete;
  ~Tracker() {
    ++c_->destroyed;
    if (owner_) ++c_->owner_destroyed;
  }
  int value() const { return value_; }
  bool owner() const { return owner_; }

 private:
  Counts* c_;
  int value_;
  bool owner_ = true;
};

int add3(int x) { return x + 3; }

}  // namespace

TEST_CASE("inplace_function: calls return the callable's result", "[inplace_function]") {
  InplaceFunction<int(int, int)> sum = [](int a, int b) { return a + b; };
  CHECK(sum(2, 3) == 5);
  CHECK(sum(-7, 7) == 0);

  int k = 6;
  InplaceFunction<int(int)> times = [k](int x) { return x * k; };
  CHECK(times(7) == 42);

  InplaceFunction<int(int)> fp = add3;  // a plain function
  CHECK(fp(4) == 7);

  InplaceFunction<std::string(const std::string&)> greet = [](const std::string& s) {
    return "hello " + s;
  };
  CHECK(greet("nic") == "hello nic");

  // Arguments by reference reach the callable.
  InplaceFunction<void(int&)> inc = [](int& x) { ++x; };
  int v = 1;
  inc(v);
  inc(v);
  CHECK(v == 3);

  // Move-only arguments are forwarded.
  InplaceFunction<int(std::unique_ptr<int>)> take = [](std::unique_ptr<int> p) { return *p; };
  CHECK(take(std::make_unique<int>(99)) == 99);

  // A mutable callable keeps its state between calls.
  InplaceFunction<int()> counter = [n = 0]() mutable { return ++n; };
  CHECK(counter() == 1);
  CHECK(counter() == 2);
  CHECK(counter() == 3);
}

TEST_CASE("inplace_function: empty, non-empty, moved-from and reset states", "[inplace_function]") {
  InplaceFunction<int()> empty;
  CHECK_FALSE(static_cast<bool>(empty));
  InplaceFunction<int()> f = [] { return 1; };
  CHECK(static_cast<bool>(f));
  InplaceFunction<int()> g(std::move(f));
  CHECK_FALSE(static_cast<bool>(f));  // NOLINT(bugprone-use-after-move): moved-from is empty
  REQUIRE(static_cast<bool>(g));
  CHECK(g() == 1);
  g.reset();
  CHECK_FALSE(static_cast<bool>(g));
  // Moving an empty function gives an empty function.
  InplaceFunction<int()> h(std::move(empty));
  CHECK_FALSE(static_cast<bool>(h));
}

TEST_CASE("inplace_function: move construction moves the state and keeps calls working",
          "[inplace_function]") {
  Counts c;
  {
    InplaceFunction<int()> f = [t = Tracker(&c, 41)] { return t.value() + 1; };
    CHECK(c.live() == 1);
    CHECK(c.owner_destroyed == 0);
    InplaceFunction<int()> g(std::move(f));
    CHECK(c.live() == 1);  // the moved-from copy inside f was destroyed by the move
    CHECK(c.owner_destroyed == 0);
    CHECK(g() == 42);
    InplaceFunction<int()> h(std::move(g));
    CHECK(h() == 42);
    CHECK(c.live() == 1);
    CHECK(c.owner_destroyed == 0);
  }
  CHECK(c.live() == 0);
  CHECK(c.owner_destroyed == 1);
}

TEST_CASE("inplace_function: move assignment destroys the old target exactly once",
          "[inplace_function]") {
  Counts a, b;
  {
    InplaceFunction<int()> f = [t = Tracker(&a, 1)] { return t.value(); };
    InplaceFunction<int()> g = [t = Tracker(&b, 2)] { return t.value(); };
    g = std::move(f);
    CHECK(b.live() == 0);
    CHECK(b.owner_destroyed == 1);  // g's old state, once
    CHECK(a.live() == 1);
    CHECK(a.owner_destroyed == 0);
    CHECK(g() == 1);
    CHECK_FALSE(static_cast<bool>(f));  // NOLINT(bugprone-use-after-move)

    // Self-move-assignment leaves the function unchanged.
    InplaceFunction<int()>& alias = g;
    g = std::move(alias);
    CHECK(static_cast<bool>(g));
    CHECK(g() == 1);
    CHECK(a.live() == 1);
    CHECK(a.owner_destroyed == 0);

    // Assigning an empty function empties the target and destroys its state.
    InplaceFunction<int()> empty;
    g = std::move(empty);
    CHECK_FALSE(static_cast<bool>(g));
    CHECK(a.live() == 0);
    CHECK(a.owner_destroyed == 1);
  }
  CHECK(a.owner_destroyed == 1);
  CHECK(b.owner_destroyed == 1);
  CHECK(a.live() == 0);
  CHECK(b.live() == 0);
}

TEST_CASE("inplace_function: reset and destruction each destroy the state exactly once",
          "[inplace_function]") {
  Counts c;
  {
    InplaceFunction<void()> f = [t = Tracker(&c)] { (void)t; };
    f.reset();
    CHECK(c.live() == 0);
    CHECK(c.owner_destroyed == 1);
    f.reset();  // twice is harmless
    CHECK(c.destroyed == c.constructed);
  }
  CHECK(c.owner_destroyed == 1);
  CHECK(c.live() == 0);

  Counts d;
  {
    InplaceFunction<void()> f = [t = Tracker(&d)] { (void)t; };
    f();
    f();
    CHECK(d.owner_destroyed == 0);  // calling does not destroy
  }
  CHECK(d.owner_destroyed == 1);
  CHECK(d.live() == 0);

  // A callable that holds a shared_ptr releases its reference exactly once.
  auto sp = std::make_shared<int>(5);
  {
    InplaceFunction<int()> f = [sp] { return *sp; };
    CHECK(sp.use_count() == 2);
    InplaceFunction<int()> g(std::move(f));
    CHECK(sp.use_count() == 2);
    CHECK(g() == 5);
  }
  CHECK(sp.use_count() == 1);
}

TEST_CASE("inplace_function: a callable as large as the capacity fits", "[inplace_function]") {
  struct Big {
    long long v[6];  // 48 bytes: exactly the default capacity
    long long operator()() const { return v[0] + v[5]; }
  };
  static_assert(sizeof(Big) == 48);
  InplaceFunction<long long()> f = Big{{1, 2, 3, 4, 5, 6}};
  CHECK(f() == 7);
  InplaceFunction<long long()> g(std::move(f));
  CHECK(g() == 7);
}

TEST_CASE("inplace_function: trivially copyable captures survive moves into reused storage",
          "[inplace_function]") {
  // Captures of pointers and numbers are moved as bytes (no move or destroy function): the state
  // must still arrive whole, through several moves and into storage that held another callable.
  int target = 0;
  int* p = &target;
  const long long big = 0x1234567890LL;
  InplaceFunction<long long()> f = [p, big, k = 3] {
    *p += k;
    return big + *p;
  };
  InplaceFunction<long long()> g = [] { return -1LL; };
  g = std::move(f);
  InplaceFunction<long long()> h(std::move(g));
  CHECK(h() == big + 3);
  CHECK(h() == big + 6);
  CHECK(target == 6);
  CHECK_FALSE(static_cast<bool>(g));  // NOLINT(bugprone-use-after-move)
}
