// io.cpp: buffered receiving, and sending through the transport, for the state machine.
#include "io.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "buffer_pool.hpp"
#include "error.hpp"
#include "handle.hpp"
#include "protocol.hpp"
#include "state/machine.hpp"
#include "transport/transport.hpp"

namespace nbd {
namespace {

// Reads at least this long go straight into the caller's buffer (a pread payload) instead of
// through the internal buffer.
constexpr size_t kDirectRead = 16 * 1024;
// What comes before a payload: a reply header (structured, or extended once extended headers
// are in use) and a data chunk's offset.
size_t peek_size(const nbd_handle& h) {
  return proto::chunk_header_size(h.extended_headers) + proto::OffsetDataChunk::kSize;
}
}  // namespace

Io recv_into_rbuf(nbd_handle& h) {
  while (h.rlen > 0) {
    if (h.in_pos < h.in_end) {
      const size_t n = std::min(h.rlen, h.in_end - h.in_pos);
      std::memcpy(h.rbuf, h.inbuf.data() + h.in_pos, n);
      h.in_pos += n;
      h.rbuf += n;
      h.rlen -= n;
      continue;
    }
    // The tail of a large payload that arrived in pieces goes where the rest went, however
    // short: through the buffer it would turn read-ahead on and fill it.
    const bool direct = h.rlen >= kDirectRead || h.direct_rest;
    void* target = direct ? static_cast<void*>(h.rbuf) : h.inbuf.acquire();
    // Reading ahead batches small replies into one recv, but the bytes it takes of a large
    // payload then have to be copied out of the buffer.  So while large payloads come (the
    // last one went straight to its buffer), headers are read with a short peek that stops
    // about where a payload starts; a small payload turns read-ahead back on.
    size_t want;
    if (direct) {
      want = h.rlen;
      h.peek_headers = true;
    } else if (h.peek_headers && h.rlen <= peek_size(h)) {
      want = peek_size(h);
    } else {
      want = kPoolBufferSize;
      h.peek_headers = false;
    }
    const ssize_t r = h.sock->recv(target, want);
    if (r == -1) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        // Everything read ahead has been used (a recv comes only then): with no command
        // left to answer, the buffer goes back to the pool.  (A busy handle keeps it rather
        // than take it again at every reply.)
        if (h.cmds.empty())
          h.inbuf.release();
        return Io::Again;
      }
      set_error(errno, "recv");
      return Io::Error;
    }
    if (r == 0)
      return Io::Eof;
    const auto got = static_cast<size_t>(r);
    h.bytes_received += got;
    if (direct) {
      h.rbuf += got;
      h.rlen -= got;
      h.direct_rest = true;
    } else {
      h.in_pos = 0;
      h.in_end = got;
    }
  }
  h.direct_rest = false;
  return Io::Done;
}

Io send_from_wbuf(nbd_handle& h) {
  const Io io = h.sock->send(h.out);
  h.send_full = io == Io::Again;
  return io;
}

}  // namespace nbd
