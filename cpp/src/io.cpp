// io.cpp: buffered receiving and gathered sending for the state machine.
#include "io.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "error.hpp"
#include "handle.hpp"

namespace nbd {
namespace {

// Reads at least this long go straight into the caller's buffer (a pread payload) instead of
// through the internal buffer.
constexpr size_t kDirectRead = 16 * 1024;
constexpr int kMaxIov = 64;

}  // namespace

void OutQueue::append_copy(const void* p, size_t len) {
  if (len == 0)
    return;
  const size_t off = staging_.size();
  const auto* bytes = static_cast<const unsigned char*>(p);
  staging_.insert(staging_.end(), bytes, bytes + len);
  // Adjacent copies merge into one segment so a burst of requests is one iovec.
  if (!segs_.empty() && segs_.back().ext == nullptr &&
      segs_.back().off + segs_.back().len == off)
    segs_.back().len += len;
  else
    segs_.push_back({nullptr, off, len});
  bytes_ += len;
}

void OutQueue::append_ref(const void* p, size_t len) {
  if (len == 0)
    return;
  segs_.push_back({static_cast<const unsigned char*>(p), 0, len});
  bytes_ += len;
}

int OutQueue::gather(struct iovec* iov, int max) const {
  int n = 0;
  size_t skip = head_done_;
  for (const Seg& s : segs_) {
    if (n == max)
      break;
    const unsigned char* base = s.ext != nullptr ? s.ext : staging_.data() + s.off;
    iov[n].iov_base = const_cast<unsigned char*>(base + skip);
    iov[n].iov_len = s.len - skip;
    skip = 0;
    ++n;
  }
  return n;
}

void OutQueue::consume(size_t n) {
  bytes_ -= n;
  while (n > 0) {
    Seg& s = segs_.front();
    const size_t left = s.len - head_done_;
    if (n < left) {
      head_done_ += n;
      return;
    }
    n -= left;
    head_done_ = 0;
    segs_.pop_front();
  }
  if (segs_.empty())
    staging_.clear();
}

void OutQueue::clear() {
  segs_.clear();
  staging_.clear();
  head_done_ = 0;
  bytes_ = 0;
}

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
    const bool direct = h.rlen >= kDirectRead;
    if (!direct && h.inbuf.empty())
      h.inbuf.resize(64 * 1024);
    void* target = direct ? static_cast<void*>(h.rbuf) : h.inbuf.data();
    const size_t want = direct ? h.rlen : h.inbuf.size();
    const ssize_t r = h.sock->recv(target, want);
    if (r == -1) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return Io::Again;
      set_error(errno, "recv");
      return Io::Error;
    }
    if (r == 0)
      return Io::Eof;
    const auto got = static_cast<size_t>(r);
    if (direct) {
      h.rbuf += got;
      h.rlen -= got;
    } else {
      h.in_pos = 0;
      h.in_end = got;
    }
  }
  return Io::Done;
}

Io send_from_wbuf(nbd_handle& h) {
  while (!h.out.empty()) {
    struct iovec iov[kMaxIov];
    const int n = h.out.gather(iov, kMaxIov);
    const ssize_t r = h.sock->send(iov, n, false);
    if (r == -1) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return Io::Again;
      if (h.writer.empty())
        set_error(errno, "send");
      else  // the writer callback refused the data (it may have left errno at 0)
        set_error(errno_or(errno, EIO), "concurrent writer: the writer callback failed");
      return Io::Error;
    }
    h.out.consume(static_cast<size_t>(r));
  }
  return Io::Done;
}

}  // namespace nbd
