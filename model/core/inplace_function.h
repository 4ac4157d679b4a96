// A move-only callable with fixed inline storage: never allocates. Used for event callbacks on the
// hot path, where std::function could allocate.
#pragma once
#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace rn {

template <typename Sig, size_t Cap = 48>
class InplaceFunction;

template <typename R, typename... Args, size_t Cap>
class InplaceFunction<R(Args...), Cap> {
 public:
  InplaceFunction() = default;
  template <typename F,
            typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, InplaceFunction>>>
  InplaceFunction(F&& f) {  // NOLINT(google-explicit-constructor)
    using T = std::decay_t<F>;
    static_assert(sizeof(T) <= Cap, "callable too large for InplaceFunction: raise Cap");
    static_assert(alignof(T) <= alignof(std::max_align_t), "over-aligned callable");
    new (&buf_) T(std::forward<F>(f));
    ops_ = &kOps<T>;
  }
  InplaceFunction(InplaceFunction&& o) noexcept { move_from(o); }
  InplaceFunction& operator=(InplaceFunction&& o) noexcept {
    if (this != &o) {
      reset();
      move_from(o);
    }
    return *this;
  }
  InplaceFunction(const InplaceFunction&) = delete;
  InplaceFunction& operator=(const InplaceFunction&) = delete;
  ~InplaceFunction() { reset(); }

  explicit operator bool() const { return ops_ != nullptr; }
  R operator()(Args... args) { return ops_->call(&buf_, std::forward<Args>(args)...); }
  void reset() {
    if (ops_ && ops_->destroy) ops_->destroy(&buf_);
    ops_ = nullptr;
  }

 private:
  // move and destroy are null for trivially copyable callables (most lambdas: they capture
  // pointers and numbers): moving is then a copy of the bytes and destroying is nothing, with no
  // indirect call (an event costs a move, a call and a destruction).
  struct Ops {
    R (*call)(void*, Args&&...);
    void (*move)(void* dst, void* src);
    void (*destroy)(void*);
  };
  template <typename T>
  static constexpr bool kTrivial =
      std::is_trivially_copyable_v<T>&& std::is_trivially_destructible_v<T>;
  template <typename T>
  static constexpr Ops kOps = {
      [](void* p, Args&&... a) -> R { return (*static_cast<T*>(p))(std::forward<Args>(a)...); },
      kTrivial<T> ? nullptr
                  : +[](void* d, void* s) {
                      new (d) T(std::move(*static_cast<T*>(s)));
                      static_cast<T*>(s)->~T();
                    },
      kTrivial<T> ? nullptr : +[](void* p) { static_cast<T*>(p)->~T(); }};

  void move_from(InplaceFunction& o) {
    if (o.ops_) {
      if (o.ops_->move)
        o.ops_->move(&buf_, &o.buf_);
      else
        std::memcpy(&buf_, &o.buf_, Cap);
      ops_ = o.ops_;
      o.ops_ = nullptr;
    }
  }

  alignas(std::max_align_t) unsigned char buf_[Cap];
  const Ops* ops_ = nullptr;
};

}  // namespace rn
