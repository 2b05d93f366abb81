// io.hpp: the only ways the state machine moves bytes: recv_into_rbuf and send_from_wbuf.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

struct nbd_handle;

namespace nbd {

enum class Io {
  Done,   // the request is complete
  Again,  // the socket would block; wait for it
  Eof,    // the peer closed the connection
  Error,  // error recorded with set_error
};

// Bytes waiting to be sent: small pieces are copied into one staging buffer, large payloads
// (write data) are referenced where they are, so a pwrite is never copied.
class OutQueue {
 public:
  void append_copy(const void* p, size_t len);
  void append_ref(const void* p, size_t len);
  bool empty() const { return segs_.empty(); }
  size_t bytes() const { return bytes_; }
  // Fills at most max iovecs with the next unsent bytes; returns how many.
  int gather(struct iovec* iov, int max) const;
  void consume(size_t n);
  void clear();

 private:
  struct Seg {
    const unsigned char* ext;  // nullptr: bytes live in staging_ at off
    size_t off;
    size_t len;
  };
  std::vector<unsigned char> staging_;
  std::deque<Seg> segs_;
  size_t head_done_ = 0;  // bytes of segs_.front() already sent
  size_t bytes_ = 0;
};

// Receives into [h.rbuf, h.rbuf + h.rlen), advancing both; small reads go through an internal
// buffer so one recv can carry several replies.
Io recv_into_rbuf(nbd_handle& h);

// Sends as much of h.out as the socket takes now.
Io send_from_wbuf(nbd_handle& h);

}  // namespace nbd
