// send_queue.hpp: SendQueue, bytes of the outgoing stream waiting to leave the handle.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace nbd {

// Bytes waiting to be sent, owned by one thread (no locking at all).  Small pieces (request
// headers, options) are copied into chunks whose bytes never move once written; large
// payloads (write data) are referenced where they are, so a pwrite is never copied.  An iovec
// handed out by gather stays valid until those bytes are consumed; a referenced payload stays
// valid until its command completes, which a Sender may hold back (Sender::released).
class SendQueue {
 public:
  SendQueue() = default;
  SendQueue(const SendQueue&) = delete;
  SendQueue& operator=(const SendQueue&) = delete;
  ~SendQueue();

  void append_copy(const void* p, size_t len);
  void append_ref(const void* p, size_t len);
  bool empty() const { return segs_.empty(); }
  // Fills at most max iovecs with the next unsent bytes and returns how many.  With
  // referenced non-null, referenced[i] says whether iov[i] is a referenced payload (valid
  // after consume) rather than copied bytes (valid until consumed).
  int gather(struct iovec* iov, int max, bool* referenced = nullptr) const;
  void consume(size_t n);
  // Drops everything queued.
  void clear();
  // Gives back the memory that only queued bytes need (a chunk larger than usual, a segment
  // ring grown for a load that has passed), if nothing is queued now: for a handle going
  // idle.  Called often: what usually has nothing to do costs a test.
  void trim() {
    if ((tail_ != nullptr && tail_->cap != kChunk) || segs_.grown())
      trim_slow();
  }
  // The capacity of the chunk copies go to now (0: none yet).
  size_t chunk_capacity() const { return tail_ != nullptr ? tail_->cap : 0; }
  // Offsets in the stream of everything ever appended: the end of it, and how much has been
  // consumed.  Bytes in [sent_offset(), end_offset()) are queued.
  uint64_t end_offset() const { return appended_; }
  uint64_t sent_offset() const { return consumed_; }
  // Drops the queued bytes from offset (>= sent_offset()) to the end.
  void truncate(uint64_t offset);
  // Copies the referenced payloads queued within [from, to) of the stream, so that their
  // owner may take the memory back.
  void copy_referenced(uint64_t from, uint64_t to);

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
  void drop_ref(Chunk* c);
  void trim_slow();

  // 36 request headers.
  static constexpr size_t kChunk = 1024;

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
  size_t head_done_ = 0;   // bytes of segs_.front() already sent
  uint64_t appended_ = 0;  // bytes ever appended
  uint64_t consumed_ = 0;  // bytes ever consumed (or cleared)
  Chunk* tail_ = nullptr;  // where copies go
};

}  // namespace nbd
