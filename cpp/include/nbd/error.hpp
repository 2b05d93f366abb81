// error.hpp: nbd::Error, the exception nbd/nbd.hpp throws when a libnbd call fails.
#pragma once

#include <libnbd.h>

#include <stdexcept>
#include <string>

namespace nbd {

// A failed call: what() is libnbd's message ("nbd_pread: invalid state: ..."), errnum() its
// errno, and handle_dead() whether the handle is dead now, so the caller knows to drop it rather
// than retry.
class Error : public std::runtime_error {
 public:
  Error(const std::string& message, int errnum, bool handle_dead)
      : std::runtime_error(message), errnum_(errnum), handle_dead_(handle_dead) {}

  int errnum() const noexcept { return errnum_; }
  bool handle_dead() const noexcept { return handle_dead_; }

 private:
  int errnum_;
  bool handle_dead_;
};

namespace detail {

// Throws the error the last libnbd call on this thread recorded.  h is the handle that call
// used (nullptr for calls without one).  Must run before any other libnbd call on this thread,
// which could overwrite the thread-local message.
[[noreturn]] inline void throw_last_error(nbd_handle* h) {
  const char* message = nbd_get_error();
  const int errnum = nbd_get_errno();
  // nbd_aio_is_dead takes no lock and cannot fail, so it leaves the message alone.
  const bool dead = h != nullptr && nbd_aio_is_dead(h) != 0;
  throw Error(message != nullptr ? message : "unknown error", errnum, dead);
}

}  // namespace detail
}  // namespace nbd
