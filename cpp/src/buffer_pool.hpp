// buffer_pool.hpp: the read-ahead buffers every handle of the process shares.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>

namespace nbd {

// A handle needs its 64 KiB read-ahead buffer only while replies are due.  It takes one from
// this process-wide pool when it starts reading and gives it back when the socket runs dry with
// no command in flight, so idle handles hold none (a thousand idle connections cost no
// buffers), while one used a request at a time finds a buffer waiting instead of calling
// malloc: the pool keeps the buffers last given back, up to a few per core.
constexpr size_t kPoolBufferSize = 64 * 1024;

// A buffer of kPoolBufferSize bytes, contents unspecified.  Throws std::bad_alloc.
using PoolBytes = std::unique_ptr<unsigned char[]>;
PoolBytes take_pool_buffer();
// Gives back a buffer from take_pool_buffer (nullptr: nothing).  Any thread, any time, even
// while the process exits.
void give_pool_buffer(PoolBytes p) noexcept;
// How many buffers are taken and not given back, and how many the pool keeps for reuse.
size_t pool_buffers_in_use();
size_t pool_buffers_kept();

// Holds one pool buffer, or none.
class PoolBuffer {
 public:
  PoolBuffer() = default;
  ~PoolBuffer() { release(); }
  PoolBuffer(const PoolBuffer&) = delete;
  PoolBuffer& operator=(const PoolBuffer&) = delete;

  unsigned char* data() const { return p_.get(); }
  bool empty() const { return p_ == nullptr; }
  // Takes a buffer from the pool unless one is held already.
  unsigned char* acquire() {
    if (p_ == nullptr)
      p_ = take_pool_buffer();
    return p_.get();
  }
  void release() noexcept { give_pool_buffer(std::move(p_)); }

 private:
  PoolBytes p_;
};

}  // namespace nbd
