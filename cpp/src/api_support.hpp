// api_support.hpp: the pieces the generated entry points (api.cpp) are assembled from.
#pragma once

#include <cstdint>

#include "debug.hpp"
#include "error.hpp"
#include "handle.hpp"

namespace nbd {

// Holds the handle's lock for one public call (nothing when h is NULL: the call then fails
// with EFAULT) and publishes the state for the lock-free calls just before unlocking.  Always
// inlined: a call and return cost as much as the uncontended lock itself, and LTO's inlining
// heuristics otherwise flip with unrelated changes to the calls around it.
class HandleLock {
 public:
  [[gnu::always_inline]] explicit HandleLock(nbd_handle* h) : h_(h) {
    if (h_ != nullptr)
      h_->lock.lock();
  }
  [[gnu::always_inline]] ~HandleLock() {
    if (h_ != nullptr) {
      h_->publish_state();
      h_->lock.unlock();
    }
  }
  HandleLock(const HandleLock&) = delete;
  HandleLock& operator=(const HandleLock&) = delete;

 private:
  nbd_handle* h_;
};

// Each returns false after recording the error, for `ok = fail_...(...)`.
bool check_state(nbd_handle& h, uint32_t permitted, const char* words);
bool fail_null(const char* name);
bool fail_enum(const char* name, int value);
bool fail_flags(const char* name, uint32_t value);
void fail_null_handle();
void not_implemented();

}  // namespace nbd
