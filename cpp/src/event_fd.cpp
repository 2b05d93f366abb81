// event_fd.cpp: EventFd (event_fd.hpp).
#include "event_fd.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "error.hpp"

namespace nbd {

EventFd::~EventFd() {
  const int fd = fd_.load(std::memory_order_relaxed);
  if (fd != -1)
    ::close(fd);
}

int EventFd::make() {
  if (fd() != -1)
    return 0;
  const int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd == -1)
    return set_error(errno, "eventfd");
  fd_.store(fd, std::memory_order_release);
  return 0;
}

void EventFd::signal() {
  const int fd = this->fd();
  const uint64_t one = 1;
  if (fd != -1)
    (void)!::write(fd, &one, sizeof one);
}

void EventFd::drain() {
  const int fd = this->fd();
  uint64_t count;
  if (fd != -1)
    (void)!::read(fd, &count, sizeof count);
}

}  // namespace nbd
