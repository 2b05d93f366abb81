// event_fd.hpp: EventFd, an eventfd made on first use and closed with its owner, which other
// threads (and signal handlers) may signal without a lock.
#pragma once

#include <atomic>

namespace nbd {

class EventFd {
 public:
  EventFd() = default;
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;
  ~EventFd();

  // Makes the eventfd (non-blocking) unless it exists: 0, or -1 with the error recorded.
  int make();
  // The descriptor to poll for POLLIN, or -1 before make().
  int fd() const { return fd_.load(std::memory_order_acquire); }
  // Makes fd() readable; async-signal-safe (write(2) only), and nothing before make().
  void signal();
  // Makes fd() not readable again.
  void drain();

 private:
  std::atomic<int> fd_{-1};
};

}  // namespace nbd
