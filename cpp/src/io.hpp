// io.hpp: the only ways the state machine moves bytes: recv_into_rbuf and send_from_wbuf.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

struct nbd_handle;

namespace nbd {

enum class Io {
  Done,   // the request is complete
  Again,  // the socket would block; wait for it
  Eof,    // the peer closed the connection
  Error,  // error recorded with set_error
};

// Bytes waiting to be sent.  Small pieces (request headers, options) are copied into chunks
// whose bytes never move once written; large payloads (write data) are referenced where they
// are, so a pwrite is never copied.  Every method takes the queue's own lock, because with the
// ready-made concurrent writer a second thread drains the queue (take / sent) while the handle
// appends to it.  An iovec handed out stays valid until those bytes are consumed.
class OutQueue {
 public:
  OutQueue() = default;
  OutQueue(const OutQueue&) = delete;
  OutQueue& operator=(const OutQueue&) = delete;
  ~OutQueue();

  void append_copy(const void* p, size_t len);
  void append_ref(const void* p, size_t len);
  bool empty() const;
  // Fills at most max iovecs with the next unsent bytes; returns how many.
  int gather(struct iovec* iov, int max) const;
  void consume(size_t n);
  // Drops everything queued.  With a writer thread, call stop_taking first.
  void clear();
  // Offsets in the stream of everything ever appended: the end of it, and how much has been
  // sent.  Bytes in [sent_offset(), end_offset()) are queued.
  uint64_t end_offset() const;
  uint64_t sent_offset() const;
  // Drops the queued bytes from offset (>= sent_offset()) to the end.  Not for a queue a
  // writer thread drains.
  void truncate(uint64_t offset);

  // The writer thread's side.  take blocks until bytes are queued (then gathers them, as
  // gather does, and marks them in use) or stop_taking was called (then returns 0).  sent
  // consumes n of them and ends the use.
  int take(struct iovec* iov, int max);
  void sent(size_t n);
  // Consumes n bytes the writer thread sent while it still holds the rest of what it took.
  void progress(size_t n);
  // Whether the stream is sent up to offset, waiting (at most timeout) while the writer thread
  // is in the middle of a send that may be about to report it.
  bool wait_sent(uint64_t offset, std::chrono::milliseconds timeout);
  // Wakes take for good, then waits until the bytes it handed out are no longer in use, so
  // the buffers they point to may be freed.
  void stop_taking();

 private:
  struct Chunk {
    explicit Chunk(size_t c) : data(new unsigned char[c]), cap(c) {}
    std::unique_ptr<unsigned char[]> data;
    size_t cap;
    size_t used = 0;
    size_t refs = 0;  // segments pointing into it
  };
  struct Seg {
    const unsigned char* p;
    size_t len;
    Chunk* chunk;  // nullptr: referenced bytes
  };
  int gather_locked(struct iovec* iov, int max) const;
  void consume_locked(size_t n);
  void drop_ref(Chunk* c);
  void release(Chunk* c);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Seg> segs_;
  size_t head_done_ = 0;  // bytes of segs_.front() already sent
  uint64_t appended_ = 0;  // bytes ever appended
  uint64_t consumed_ = 0;  // bytes ever consumed (or cleared)
  Chunk* tail_ = nullptr;   // where copies go
  Chunk* spare_ = nullptr;  // an empty chunk kept for reuse
  bool taking_ = false;     // the writer thread holds iovecs into the queue
  bool waiting_ = false;    // the writer thread sleeps in take
  bool stopped_ = false;
};

// Receives into [h.rbuf, h.rbuf + h.rlen), advancing both; small reads go through an internal
// buffer so one recv can carry several replies.
Io recv_into_rbuf(nbd_handle& h);

// Sends as much of h.out as the socket takes now.
Io send_from_wbuf(nbd_handle& h);

}  // namespace nbd
