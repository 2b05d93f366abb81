// fast_mutex.hpp: the handle's lock, a futex mutex whose uncontended lock and unlock are one
// atomic instruction each (std::mutex goes through pthread_mutex_lock's checks of the mutex
// type on every call, which is most of a small aio call's locking cost).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

namespace nbd {

// States: 0 free, 1 held, 2 held with (possibly) a thread waiting.  A contended lock marks
// the word 2 and sleeps in futex_wait until an unlock that finds 2 wakes one waiter.
class FastMutex {
 public:
  void lock() {
    int expected = 0;
    if (!word_.compare_exchange_strong(expected, 1, std::memory_order_acquire, std::memory_order_relaxed))
      lock_contended(expected);
  }
  void unlock() {
    if (word_.exchange(0, std::memory_order_release) == 2)
      futex(FUTEX_WAKE_PRIVATE, 1);
  }

 private:
  void lock_contended(int seen) {
    if (seen != 2)
      seen = word_.exchange(2, std::memory_order_acquire);
    while (seen != 0) {
      futex(FUTEX_WAIT_PRIVATE, 2);
      seen = word_.exchange(2, std::memory_order_acquire);
    }
  }
  void futex(int op, int val) {
    static_assert(sizeof(std::atomic<int>) == sizeof(int) && std::atomic<int>::is_always_lock_free);
    syscall(SYS_futex, reinterpret_cast<int*>(&word_), op, val, nullptr, nullptr, 0);
  }

  std::atomic<int> word_{0};
};

}  // namespace nbd
