// send_queue.cpp: the single-threaded queue of outgoing bytes.
#include "transport/send_queue.hpp"

#include <cstring>
#include <utility>

namespace nbd {
namespace {

// A send gathers at most this many bytes: a Unix socket's default send buffer is 208 KiB, so
// more is rarely taken, and gathering it would be walked again by the next send.
constexpr size_t kMaxGather = 256 * 1024;

}  // namespace

SendQueue::~SendQueue() {
  clear();
  delete tail_;
}

void SendQueue::append_copy(const void* p, size_t len) {
  if (len == 0)
    return;
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
  // Adjacent copies merge into one segment so a burst of requests is one iovec.
  if (!segs_.empty() && segs_.back().chunk == tail_ && segs_.back().p + segs_.back().len == dst) {
    segs_.back().len += len;
  } else {
    segs_.push_back({dst, len, tail_});
    ++tail_->refs;
  }
}

void SendQueue::append_ref(const void* p, size_t len) {
  if (len == 0)
    return;
  segs_.push_back({static_cast<const unsigned char*>(p), len, nullptr});
  appended_ += len;
}

int SendQueue::gather(struct iovec* iov, int max, bool* referenced) const {
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
    if (referenced != nullptr)
      referenced[n] = s.chunk == nullptr;
    bytes += iov[n].iov_len;
    skip = 0;
    ++n;
  }
  return n;
}

void SendQueue::consume(size_t n) {
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

void SendQueue::clear() {
  consumed_ = appended_;
  while (!segs_.empty()) {
    Chunk* c = segs_.front().chunk;
    segs_.pop_front();
    if (c != nullptr)
      drop_ref(c);
  }
  head_done_ = 0;
}

void SendQueue::trim_slow() {
  // With no segment queued no chunk has a reference.
  if (!segs_.empty())
    return;
  if (tail_ != nullptr && tail_->cap != kChunk)
    delete std::exchange(tail_, nullptr);
  segs_.shrink();
}

void SendQueue::truncate(uint64_t offset) {
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

void SendQueue::copy_referenced(uint64_t from, uint64_t to) {
  uint64_t at = consumed_ - head_done_;  // where the front segment starts in the stream
  for (size_t i = 0; i < segs_.size(); ++i) {
    Seg& s = segs_[i];
    const uint64_t start = at;
    at += s.len;
    if (s.chunk != nullptr || at <= from || start >= to)
      continue;
    // A chunk of its own (never tail_), freed when the segment is consumed.
    Chunk* c = Chunk::make(s.len);
    std::memcpy(c->data(), s.p, s.len);
    c->used = s.len;
    c->refs = 1;
    s.p = c->data();
    s.chunk = c;
  }
}

void SendQueue::drop_ref(Chunk* c) {
  if (--c->refs != 0)
    return;
  if (c == tail_)
    c->used = 0;  // nothing points into it any more: refill from the start
  else
    delete c;
}

}  // namespace nbd
