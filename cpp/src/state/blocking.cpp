// blocking.cpp: Interrupt and Deadline (blocking.hpp).
#include "state/blocking.hpp"

#include <climits>

namespace nbd {

int Interrupt::begin() {
  if (event_.make() == -1)
    return -1;
  event_.drain();  // a request that came after the last call ended
  requested_.store(false, std::memory_order_release);
  active_.store(true, std::memory_order_release);
  return 0;
}

void Interrupt::request() {
  if (!active_.load(std::memory_order_acquire))
    return;
  requested_.store(true, std::memory_order_release);
  event_.signal();
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
