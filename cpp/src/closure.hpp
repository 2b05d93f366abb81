// closure.hpp: owning wrapper for a C callback struct {callback, user_data, free}.
#pragma once

#include <utility>

namespace nbd {

// Owns one C closure and calls its .free exactly once: on reset(), on destruction, or never if
// ownership moved on.  Moving leaves the source empty, so whoever holds the closure last frees it
// (api.cpp frees what the core did not take, with no conditions).
template <class C>
class Closure {
 public:
  Closure() = default;
  explicit Closure(const C& c) : c_(c) {}
  Closure(Closure&& other) noexcept : c_(std::exchange(other.c_, C{})) {}
  Closure& operator=(Closure&& other) noexcept {
    if (this != &other) {
      reset();
      c_ = std::exchange(other.c_, C{});
    }
    return *this;
  }
  Closure(const Closure&) = delete;
  Closure& operator=(const Closure&) = delete;
  ~Closure() { reset(); }

  // Runs .free (if any) and leaves the closure empty.
  void reset() {
    C old = std::exchange(c_, C{});
    if (old.free != nullptr)
      old.free(old.user_data);
  }

  bool has_callback() const { return c_.callback != nullptr; }
  bool empty() const { return c_.callback == nullptr && c_.free == nullptr; }

  // Calls the callback; a closure with only .free set (valid, as in libnbd) is never called
  // and counts as returning 0.
  template <class... Args>
  int operator()(Args... args) const {
    return c_.callback != nullptr ? c_.callback(c_.user_data, args...) : 0;
  }

 private:
  C c_{};
};

}  // namespace nbd
