// io.hpp: the only ways the state machine moves bytes: recv_into_rbuf and send_from_wbuf.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <span>

struct nbd_handle;

namespace nbd {

class Transport;

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
// appends to it (see share()).  An iovec handed out stays valid until those bytes are consumed.
class OutQueue {
 public:
  OutQueue() = default;
  OutQueue(const OutQueue&) = delete;
  OutQueue& operator=(const OutQueue&) = delete;
  ~OutQueue();

  // From now on a second thread (the writer thread) drains the queue: every method takes the
  // queue's lock.  Until then only the handle's thread touches it and no lock is taken.  Call
  // before the other thread first sees the queue.  With direct_sends, appends no longer wake
  // the writer thread: the handle calls flush after appending, which sends what it can itself
  // while the thread sleeps and wakes the thread only for what the socket did not take.
  void share(bool direct_sends) {
    shared_ = true;
    direct_sends_ = direct_sends;
  }
  // The handle's side of direct sends: see share().  t is the plain, non-blocking socket.
  void flush(Transport& t);

  void append_copy(const void* p, size_t len);
  void append_ref(const void* p, size_t len);
  bool empty() const { return shared_ ? empty_shared() : segs_.empty(); }
  // Fills at most max iovecs with the next unsent bytes; returns how many.
  int gather(struct iovec* iov, int max) const;
  void consume(size_t n);
  // Drops everything queued.  With a writer thread, call stop_taking first.
  void clear();
  // Gives back the memory that only queued bytes need (a chunk larger than usual, a segment
  // ring grown for a load that has passed), if nothing is queued now: for a handle going
  // idle.  Called by the handle's thread (the only one that moves tail_), often: what usually
  // has nothing to do costs a test.
  void trim() {
    if ((tail_ != nullptr && tail_->cap != kChunk) || segs_.grown())
      trim_slow();
  }
  // The capacity of the chunk copies go to now (0: none yet).
  size_t chunk_capacity() const { return tail_ != nullptr ? tail_->cap : 0; }
  // Offsets in the stream of everything ever appended: the end of it, and how much has been
  // sent.  Bytes in [sent_offset(), end_offset()) are queued.
  uint64_t end_offset() const { return shared_ ? end_offset_shared() : appended_; }
  uint64_t sent_offset() const { return shared_ ? sent_offset_shared() : consumed_; }
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
  // Copies go into small chunks (or one of its own for a larger piece): while requests pile
  // up a chunk fills and the next is taken, and each is freed once sent, so a stream keeps
  // about what is queued rather than walking through a large buffer (resident then in full).
  // A chunk and its bytes are one allocation: make(len), then delete.
  struct Chunk {
    static Chunk* make(size_t len) {
      const size_t cap = std::max(len, kChunk);
      return new (cap) Chunk(cap);
    }
    static void* operator new(size_t size, size_t bytes) { return ::operator new(size + bytes); }
    static void operator delete(void* p) { ::operator delete(p); }
    unsigned char* data() { return reinterpret_cast<unsigned char*>(this + 1); }
    size_t cap;
    size_t used = 0;
    size_t refs = 0;  // segments pointing into it

   private:
    explicit Chunk(size_t c) : cap(c) {}
  };
  struct Seg {
    const unsigned char* p;
    size_t len;
    Chunk* chunk;  // nullptr: referenced bytes
  };
  // Holds mu_ if the queue is shared.
  class Guard {
   public:
    explicit Guard(const OutQueue& q) : mu_(q.shared_ ? &q.mu_ : nullptr) {
      if (mu_ != nullptr)
        mu_->lock();
    }
    ~Guard() {
      if (mu_ != nullptr)
        mu_->unlock();
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    std::mutex* mu_;
  };
  bool empty_shared() const;
  uint64_t end_offset_shared() const;
  uint64_t sent_offset_shared() const;
  int gather_locked(struct iovec* iov, int max) const;
  void consume_locked(size_t n);
  void drop_ref(Chunk* c);
  void trim_slow();

  // 36 request headers.
  static constexpr size_t kChunk = 1024;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // The queued segments, oldest first: a ring over a power-of-two array, which grows when
  // full (a deque allocates and walks its blocks on every push and pop).
  class SegRing {
   public:
    SegRing() = default;
    SegRing(const SegRing&) = delete;  // buf_ may point into the ring itself
    SegRing& operator=(const SegRing&) = delete;
    bool empty() const { return size_ == 0; }
    size_t size() const { return size_; }
    Seg& operator[](size_t i) { return buf_[(head_ + i) & (buf_.size() - 1)]; }
    const Seg& operator[](size_t i) const { return buf_[(head_ + i) & (buf_.size() - 1)]; }
    Seg& front() { return (*this)[0]; }
    Seg& back() { return (*this)[size_ - 1]; }
    void push_back(const Seg& s) {
      if (size_ == buf_.size())
        grow();
      (*this)[size_++] = s;
      peak_ = std::max(peak_, size_);
    }
    void pop_front() {
      head_ = (head_ + 1) & (buf_.size() - 1);
      --size_;
    }
    void pop_back() { --size_; }
    bool grown() const { return buf_.size() > kFirstSize; }
    // Goes back to the first array if empty, grown, and four times what was needed since the
    // last call: a handle that stays as busy keeps what it uses.
    void shrink() {
      if (size_ == 0 && buf_.size() > kFirstSize && peak_ * 4 <= buf_.size()) {
        buf_ = first_;
        grown_.reset();
        head_ = 0;
      }
      peak_ = size_;
    }

   private:
    static constexpr size_t kFirstSize = 8;
    void grow() {
      const size_t n = buf_.size() * 2;
      auto bigger = std::make_unique_for_overwrite<Seg[]>(n);
      for (size_t i = 0; i < size_; ++i)
        bigger[i] = (*this)[i];
      grown_ = std::move(bigger);
      buf_ = {grown_.get(), n};
      head_ = 0;
    }
    Seg first_[kFirstSize];  // the first array is inside the ring
    std::unique_ptr<Seg[]> grown_;
    std::span<Seg> buf_{first_};  // first_ or grown_
    size_t head_ = 0;
    size_t size_ = 0;
    size_t peak_ = 0;  // the largest size_ since the last shrink()
  };
  SegRing segs_;
  size_t head_done_ = 0;  // bytes of segs_.front() already sent
  uint64_t appended_ = 0;  // bytes ever appended
  uint64_t consumed_ = 0;  // bytes ever consumed (or cleared)
  Chunk* tail_ = nullptr;   // where copies go
  bool taking_ = false;     // the writer thread holds iovecs into the queue
  bool waiting_ = false;    // the writer thread sleeps in take
  bool stopped_ = false;
  bool shared_ = false;     // share() was called: take mu_
  bool direct_sends_ = false;  // appends leave waking the writer thread to flush
};

// Whether a failed send or receive means the peer hung up (a reset or a broken pipe).
inline bool is_hang_up(int err) { return err == ECONNRESET || err == EPIPE; }

// Receives into [h.rbuf, h.rbuf + h.rlen), advancing both; small reads go through an internal
// buffer so one recv can carry several replies.
Io recv_into_rbuf(nbd_handle& h);

// Sends as much of h.out as the socket takes now.
Io send_from_wbuf(nbd_handle& h);

}  // namespace nbd
