// writer.cpp: registering the concurrent writer and reporting its failures.
#include <cerrno>

#include "error.hpp"
#include "handle.hpp"
#include "unlocked.hpp"

namespace nbd {

int unlocked_set_concurrent_writer(nbd_handle& h, Closure<nbd_writer_callback>& writer) {
  // Swapping sinks under a live byte stream could reorder it; one writer per handle.
  if (!h.writer.empty())
    return set_error(EINVAL, "concurrent writer was already set for this handle");
  h.writer = std::move(writer);
  return 0;
}

int unlocked_concurrent_writer_error(nbd_handle& h, int err) {
  if (err == 0)
    return set_error(EINVAL, "err must be non-zero");
  // No lock is held here (locked: false): keep only the first error, atomically.
  int expected = 0;
  h.writer_error.compare_exchange_strong(expected, err, std::memory_order_acq_rel);
  return 0;
}

}  // namespace nbd
