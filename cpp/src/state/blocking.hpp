// blocking.hpp: what bounds a call that blocks: its deadline (nbd_set_timeout) and its
// interruption from another thread (nbd_interrupt).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "event_fd.hpp"

namespace nbd {

// nbd_interrupt's side of a handle.  request() takes no lock and is async-signal-safe (atomics
// and write(2) only); it reaches only a blocking call in progress, between begin() and end(),
// so that an interrupt nobody waited for cannot fail an unrelated later call.
class Interrupt {
 public:
  // A blocking call starts (handle locked): earlier requests are forgotten.  -1 with the error
  // recorded if the eventfd cannot be made.
  int begin();
  void end() { active_.store(false, std::memory_order_release); }
  // nbd_interrupt.
  void request();
  bool requested() const { return requested_.load(std::memory_order_acquire); }
  // Readable once requested (-1 outside a blocking call).
  int fd() const { return active_.load(std::memory_order_acquire) ? event_.fd() : -1; }

 private:
  EventFd event_;
  std::atomic<bool> active_{false};
  std::atomic<bool> requested_{false};
};

// Interrupt::begin and end around one blocking call; false if begin failed.
class InterruptScope {
 public:
  explicit InterruptScope(Interrupt& i) : i_(i), ok_(i.begin() == 0) {}
  ~InterruptScope() {
    if (ok_)
      i_.end();
  }
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
  explicit operator bool() const { return ok_; }

 private:
  Interrupt& i_;
  bool ok_;
};

// The deadline of one blocking call; none when timeout_ms is 0.
class Deadline {
 public:
  explicit Deadline(uint64_t timeout_ms)
      : limited_(timeout_ms != 0),
        at_(std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms)) {}
  // What poll(2) may wait: -1 (no limit) or the milliseconds left, rounded up.
  int poll_ms() const;
  bool passed() const { return limited_ && std::chrono::steady_clock::now() >= at_; }

 private:
  bool limited_;
  std::chrono::steady_clock::time_point at_;
};

}  // namespace nbd
