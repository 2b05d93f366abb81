// blocking.cpp: Interrupt and Deadline (blocking.hpp).
#include "state/blocking.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "error.hpp"

namespace nbd {

Interrupt::~Interrupt() {
  const int fd = fd_.load(std::memory_order_relaxed);
  if (fd != -1)
    ::close(fd);
}

int Interrupt::begin() {
  int fd = fd_.load(std::memory_order_relaxed);
  if (fd == -1) {
    fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd == -1)
      return set_error(errno, "eventfd");
    fd_.store(fd, std::memory_order_release);
  }
  uint64_t count;
  (void)!::read(fd, &count, sizeof count);  // a request that came after the last call ended
  requested_.store(false, std::memory_order_release);
  active_.store(true, std::memory_order_release);
  return 0;
}

void Interrupt::request() {
  if (!active_.load(std::memory_order_acquire))
    return;
  requested_.store(true, std::memory_order_release);
  const int fd = fd_.load(std::memory_order_acquire);
  const uint64_t one = 1;
  if (fd != -1)
    (void)!::write(fd, &one, sizeof one);
}

int Deadline::poll_ms() const {
  if (!limited_)
    return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(at_ - std::chrono::steady_clock::now());
  if (left.count() <= 0)
    return 0;
  return left.count() > INT_MAX ? INT_MAX : static_cast<int>(left.count());
}

}  // namespace nbd
