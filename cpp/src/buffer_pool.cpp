// buffer_pool.cpp: the process-wide pool of I/O buffers.
#include "buffer_pool.hpp"

#include <algorithm>
#include <atomic>
#include <thread>

namespace nbd {
namespace {

constexpr size_t kMaxKept = 64;

// Lock-free slots, each empty or holding a buffer: a handle takes and gives back a buffer as
// often as once a request, and a mutex there cost more than the rest of the bookkeeping.  A
// buffer is a PoolBytes released into its slot, and taken out into one again.
// Trivially destructible, so it stays usable while the process exits in whatever order static
// objects go (a handle closed from another library's destructor still gives its buffers back).
struct Pool {
  std::atomic<unsigned char*> kept[kMaxKept];
  std::atomic<size_t> in_use;
  std::atomic<bool> closed;  // the process is exiting: free what comes back
};
constinit Pool g_pool{};

// Two per core: one handle receiving and one sending on each, without a malloc.  (Until this
// is initialised, while the library loads, nothing is kept.)
const size_t g_limit =
    std::clamp<size_t>(2 * size_t{std::thread::hardware_concurrency()}, 4, kMaxKept);

// At exit the pool frees what it keeps, so a memory checker finds nothing left behind.
struct Drain {
  Drain() = default;
  Drain(const Drain&) = delete;
  Drain& operator=(const Drain&) = delete;
  ~Drain() {
    g_pool.closed.store(true, std::memory_order_release);
    for (auto& slot : g_pool.kept)
      const PoolBytes freed(slot.exchange(nullptr, std::memory_order_acquire));
  }
} g_drain;

}  // namespace

PoolBytes take_pool_buffer() {
  PoolBytes p;
  for (size_t i = 0; i < g_limit && p == nullptr; ++i)
    if (g_pool.kept[i].load(std::memory_order_relaxed) != nullptr)
      p.reset(g_pool.kept[i].exchange(nullptr, std::memory_order_acquire));
  if (p == nullptr)
    p = std::make_unique_for_overwrite<unsigned char[]>(kPoolBufferSize);
  g_pool.in_use.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void give_pool_buffer(PoolBytes p) noexcept {
  if (p == nullptr)
    return;
  g_pool.in_use.fetch_sub(1, std::memory_order_relaxed);
  if (!g_pool.closed.load(std::memory_order_acquire)) {
    for (size_t i = 0; i < g_limit; ++i) {
      unsigned char* empty = nullptr;
      if (g_pool.kept[i].load(std::memory_order_relaxed) == nullptr &&
          g_pool.kept[i].compare_exchange_strong(empty, p.get(), std::memory_order_release,
                                                 std::memory_order_relaxed)) {
        (void)p.release();  // the slot holds it now
        return;
      }
    }
  }
  // p frees it: the pool is full, or closed.
}

size_t pool_buffers_in_use() { return g_pool.in_use.load(std::memory_order_relaxed); }

size_t pool_buffers_kept() {
  size_t n = 0;
  for (const auto& slot : g_pool.kept)
    n += slot.load(std::memory_order_relaxed) != nullptr ? 1 : 0;
  return n;
}

}  // namespace nbd
