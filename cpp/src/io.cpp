// io.cpp: buffered receiving and gathered sending for the state machine.
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
  return proto::chunk_header_size(h.extended_headers) + 8;
}
constexpr int kMaxIov = 64;
// A send gathers at most this many bytes: a Unix socket's default send buffer is 208 KiB, so
// more is rarely taken, and gathering it would be walked again by the next send.
constexpr size_t kMaxGather = 256 * 1024;

size_t iov_bytes(const struct iovec* iov, int n) {
  size_t total = 0;
  for (int i = 0; i < n; ++i)
    total += iov[i].iov_len;
  return total;
}

}  // namespace

OutQueue::~OutQueue() {
  clear();
  delete tail_;
}

void OutQueue::append_copy(const void* p, size_t len) {
  if (len == 0)
    return;
  Guard lock(*this);
  if (tail_ == nullptr || tail_->cap - tail_->used < len) {
    Chunk* old = tail_;
    tail_ = Chunk::make(len);
    if (old != nullptr && old->refs == 0)
      delete old;  // else the last segment in it deletes it
  }
  unsigned char* dst = tail_->data() + tail_->used;
  std::memcpy(dst, p, len);
  tail_->used += len;
  appended_ += len;
  // Adjacent copies merge into one segment so a burst of requests is one iovec.  Growing a
  // segment the writer thread has already gathered is harmless: the bytes before stay put.
  if (!segs_.empty() && segs_.back().chunk == tail_ && segs_.back().p + segs_.back().len == dst) {
    segs_.back().len += len;
  } else {
    segs_.push_back({dst, len, tail_});
    ++tail_->refs;
  }
  if (shared_ && waiting_ && !direct_sends_)
    cv_.notify_one();
}

void OutQueue::append_ref(const void* p, size_t len) {
  if (len == 0)
    return;
  Guard lock(*this);
  segs_.push_back({static_cast<const unsigned char*>(p), len, nullptr});
  appended_ += len;
  if (shared_ && waiting_ && !direct_sends_)
    cv_.notify_one();
}

bool OutQueue::empty_shared() const {
  std::lock_guard<std::mutex> lock(mu_);
  return segs_.empty();
}

int OutQueue::gather(struct iovec* iov, int max) const {
  Guard lock(*this);
  return gather_locked(iov, max);
}

int OutQueue::gather_locked(struct iovec* iov, int max) const {
  int n = 0;
  size_t skip = head_done_;
  size_t bytes = 0;
  for (size_t i = 0; i < segs_.size(); ++i) {
    const Seg& s = segs_[i];
    // Past kMaxGather the socket would not take the bytes anyway, and a deep queue of large
    // writes would be walked again on every send.
    if (n == max || bytes >= kMaxGather)
      break;
    iov[n].iov_base = const_cast<unsigned char*>(s.p + skip);
    iov[n].iov_len = s.len - skip;
    bytes += iov[n].iov_len;
    skip = 0;
    ++n;
  }
  return n;
}

void OutQueue::consume(size_t n) {
  Guard lock(*this);
  consume_locked(n);
}

void OutQueue::consume_locked(size_t n) {
  consumed_ += n;
  while (n > 0) {
    Seg& s = segs_.front();
    const size_t left = s.len - head_done_;
    if (n < left) {
      head_done_ += n;
      return;
    }
    n -= left;
    head_done_ = 0;
    Chunk* c = s.chunk;
    segs_.pop_front();
    if (c != nullptr)
      drop_ref(c);
  }
}

void OutQueue::clear() {
  Guard lock(*this);
  consumed_ = appended_;
  while (!segs_.empty()) {
    Chunk* c = segs_.front().chunk;
    segs_.pop_front();
    if (c != nullptr)
      drop_ref(c);
  }
  head_done_ = 0;
}

void OutQueue::trim_slow() {
  Guard lock(*this);
  // With no segment queued no chunk has a reference, and the writer thread holds none.
  if (!segs_.empty() || taking_)
    return;
  if (tail_ != nullptr && tail_->cap != kChunk)
    delete std::exchange(tail_, nullptr);
  segs_.shrink();
}

uint64_t OutQueue::end_offset_shared() const {
  std::lock_guard<std::mutex> lock(mu_);
  return appended_;
}

uint64_t OutQueue::sent_offset_shared() const {
  std::lock_guard<std::mutex> lock(mu_);
  return consumed_;
}

void OutQueue::truncate(uint64_t offset) {
  Guard lock(*this);
  while (appended_ > offset && !segs_.empty()) {
    Seg& back = segs_.back();
    // The front segment's sent part stays (offset is never before what was sent).
    const size_t keepable = segs_.size() == 1 ? head_done_ : 0;
    const uint64_t excess = appended_ - offset;
    if (back.len - keepable > excess) {
      back.len -= static_cast<size_t>(excess);
      appended_ = offset;
      break;
    }
    appended_ -= back.len - keepable;
    head_done_ = segs_.size() == 1 ? 0 : head_done_;  // a front segment left with only its sent part is done
    Chunk* c = back.chunk;
    segs_.pop_back();
    if (c != nullptr)
      drop_ref(c);
  }
}

void OutQueue::drop_ref(Chunk* c) {
  if (--c->refs != 0)
    return;
  if (c == tail_)
    c->used = 0;  // nothing points into it any more: refill from the start
  else
    delete c;
}

int OutQueue::take(struct iovec* iov, int max) {
  std::unique_lock<std::mutex> lock(mu_);
  waiting_ = true;  // appends wake us only while we wait (a futex call each otherwise)
  // taking_ here means the handle's own thread is sending (flush): wait for it to finish.
  cv_.wait(lock, [this] { return stopped_ || (!segs_.empty() && !taking_); });
  waiting_ = false;
  if (stopped_)
    return 0;
  taking_ = true;
  return gather_locked(iov, max);
}

void OutQueue::sent(size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  consume_locked(n);
  taking_ = false;
  cv_.notify_all();  // stop_taking may be waiting for this
}

void OutQueue::flush(Transport& t) {
  struct iovec iov[kMaxIov];
  int n;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Busy sending, or about to look at the queue again (between two sends): the writer
    // thread gets to the new bytes by itself.
    if (segs_.empty() || taking_ || stopped_ || !waiting_)
      return;
    taking_ = true;
    n = gather_locked(iov, kMaxIov);
  }
  // The thread sleeps: send from here what the socket takes now, which spares a wake-up and
  // a switch to the thread per request when the socket keeps up.
  const ssize_t r = t.send(iov, n, false);
  std::lock_guard<std::mutex> lock(mu_);
  // A failure (the socket full, or broken) leaves the bytes to the thread, which waits for
  // room or reports the error as the writer's.
  consume_locked(r > 0 ? static_cast<size_t>(r) : 0);
  taking_ = false;
  if (!segs_.empty())
    cv_.notify_one();
}

void OutQueue::progress(size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  consume_locked(n);
  cv_.notify_all();  // wait_sent may be waiting for this
}

bool OutQueue::wait_sent(uint64_t offset, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return consumed_ >= offset || !taking_; });
  return consumed_ >= offset;
}

void OutQueue::stop_taking() {
  std::unique_lock<std::mutex> lock(mu_);
  stopped_ = true;
  cv_.notify_all();
  cv_.wait(lock, [this] { return !taking_; });
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
  if (writer_drains_out(h)) {
    // Queued is as good as sent: the writer thread drains h.out (or the socket takes it
    // from here while the thread sleeps).
    h.out.flush(*h.sock);
    return Io::Done;
  }
  while (!h.out.empty()) {
    struct iovec iov[kMaxIov];
    const int n = h.out.gather(iov, kMaxIov);
    const ssize_t r = h.sock->send(iov, n, false);
    if (r == -1) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        h.send_full = true;
        return Io::Again;
      }
      if (h.writer.empty()) {
        set_error(errno, "send");
      } else {  // the writer callback refused the data (it may have left errno at 0)
        const int err = errno_or(errno, EIO);
        int none = 0;
        h.writer_error.compare_exchange_strong(none, err);  // commands fail with it too
        set_error(err, "concurrent writer: the writer callback failed");
      }
      return Io::Error;
    }
    h.out.consume(static_cast<size_t>(r));
    // A plain socket that took less than offered is full: another try would fail.  (TLS
    // sends one record of the first iovec at a time, so a short send says nothing there.)
    if (h.tls_session == nullptr && static_cast<size_t>(r) < iov_bytes(iov, n)) {
      h.send_full = true;
      return Io::Again;
    }
  }
  h.send_full = false;
  return Io::Done;
}

}  // namespace nbd
