// sender_thread.cpp: the ready-made concurrent writer (nbd_start_concurrent_writer): a thread
// that drains a queue of its own into the socket while the handle goes on issuing commands
// and reading replies.  The queue and its lock belong to this sender alone.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "error.hpp"
#include "transport/sender.hpp"
#include "util.hpp"

// ThreadSanitizer cannot see that a write payload's completion (the server's reply) comes
// after the kernel has copied the payload in sendmsg, and would report the caller reusing its
// buffer as a race with that copy.  The send is ordered through the socket, so it is hidden.
#if defined(__SANITIZE_THREAD__)
#define NBD_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NBD_TSAN 1
#endif
#endif
#ifdef NBD_TSAN
extern "C" void __tsan_ignore_thread_begin();  // in the ThreadSanitizer runtime
extern "C" void __tsan_ignore_thread_end();
#endif

namespace nbd {
namespace {

constexpr int kMaxIov = 64;

ssize_t send_ordered_by_socket(int fd, const struct iovec* iov, int iovcnt) {
#ifdef NBD_TSAN
  __tsan_ignore_thread_begin();
#endif
  const ssize_t r = send_now(fd, iov, iovcnt);
#ifdef NBD_TSAN
  const int saved = errno;
  __tsan_ignore_thread_end();
  errno = saved;
#endif
  return r;
}

// Write payloads are not copied: the thread sends them where they are, and a command whose
// payload the thread has not finished sending does not complete (released()).  Everything
// else (request headers, options, TLS records) is copied into the thread's queue.
class ThreadSender final : public Sender {
 public:
  ThreadSender(WriterSignal& signal, UniqueFd stop) : signal_(signal), stop_fd_(std::move(stop)) {}
  ThreadSender(const ThreadSender&) = delete;
  ThreadSender& operator=(const ThreadSender&) = delete;

  // Starts the thread; false with the error recorded.
  bool start() {
    try {
      thread_ = std::thread([this] { loop(); });
    } catch (const std::system_error& e) {
      set_error(errno_or(e.code().value(), EAGAIN), "cannot start the writer thread");
      return false;
    }
    return true;
  }

  ~ThreadSender() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    interrupt();  // ends a wait for POLLOUT
    cv_.notify_all();
    if (thread_.joinable())
      thread_.join();
  }

  ssize_t send_raw(int fd, const struct iovec* iov, int iovcnt) override {
    fd_.store(fd, std::memory_order_release);
    std::unique_lock<std::mutex> lock(mu_);
    size_t skip = 0;
    if (idle()) {
      lock.unlock();
      const ssize_t r = send_now(fd, iov, iovcnt);
      skip = r > 0 ? static_cast<size_t>(r) : 0;
      lock.lock();
    }
    size_t total = 0;
    for (int i = 0; i < iovcnt; ++i) {
      const size_t len = iov[i].iov_len;
      total += len;
      if (skip >= len) {
        skip -= len;
        continue;
      }
      queue_.append_copy(static_cast<const char*>(iov[i].iov_base) + skip, len - skip);
      skip = 0;
    }
    wake_thread();
    return static_cast<ssize_t>(total);
  }

  Io send(int fd, SendQueue& q) override {
    fd_.store(fd, std::memory_order_release);
    std::unique_lock<std::mutex> lock(mu_);
    if (idle() && !q.empty()) {
      // The thread sleeps: send from here what the socket takes now, which spares a wake-up
      // and a switch to the thread per request when the socket keeps up.  A failure (the
      // socket full, or broken) leaves the bytes to the thread, which waits for room or
      // reports the error.
      lock.unlock();
      struct iovec iov[kMaxIov];
      const ssize_t r = send_now(fd, iov, q.gather(iov, kMaxIov));
      if (r > 0)
        q.consume(static_cast<size_t>(r));
      lock.lock();
    }
    while (!q.empty()) {
      struct iovec iov[kMaxIov];
      bool referenced[kMaxIov];
      const int n = q.gather(iov, kMaxIov, referenced);
      uint64_t at = q.sent_offset();
      size_t taken = 0;
      for (int i = 0; i < n; ++i) {
        if (referenced[i]) {
          queue_.append_ref(iov[i].iov_base, iov[i].iov_len);
          if (refs_.empty())
            released_below_.store(at, std::memory_order_release);
          refs_.push_back({at, queue_.end_offset()});
        } else {
          queue_.append_copy(iov[i].iov_base, iov[i].iov_len);
        }
        at += iov[i].iov_len;
        taken += iov[i].iov_len;
      }
      q.consume(taken);
    }
    wake_thread();
    return Io::Done;  // queued is as good as sent
  }

  // Asked at every command's completion: no lock.
  bool released(uint64_t end) const override {
    return end <= released_below_.load(std::memory_order_acquire);
  }

  void wake_when_released(uint64_t end) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (released_locked(end))
      signal_.wake();
    else
      wake_at_ = std::max(wake_at_, end);
  }

  void connected(int fd) override { signal_.watch(fd); }
  void shut_writes(int) override {}  // the thread may still hold data

  void connection_over(std::unique_ptr<Transport> t) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      dropping_ = true;  // what fails from now on is our doing, not the writer's
    }
    t->shut_down();  // a send in the thread fails now
    interrupt();     // and so does a wait for POLLOUT
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !busy_; });  // brief: the socket is shut down
    queue_.clear();
    refs_.clear();
    released_below_.store(kAllReleased, std::memory_order_release);
    wake_at_ = 0;
    failed_ = false;
    dropping_ = false;
    uint64_t count;
    (void)!::read(stop_fd_.get(), &count, sizeof count);
    // The descriptor stays open (shut down) until the sender goes: the thread read it
    // without the lock and may be about to use it.
    parked_.push_back(std::move(t));
  }

 private:
  // A write payload handed to the thread: it starts at offset start of the handle's stream,
  // and the thread has sent it once its queue's sent offset reaches done_at.
  struct Ref {
    uint64_t start;
    uint64_t done_at;
  };

  // Whether the thread sleeps with nothing queued, so the handle may send itself (mu_ held).
  bool idle() const { return waiting_ && queue_.empty() && !dropping_ && !stopping_; }

  void wake_thread() {
    if (waiting_ && !queue_.empty())
      cv_.notify_one();
  }

  void interrupt() {
    const uint64_t one = 1;
    (void)!::write(stop_fd_.get(), &one, sizeof one);
  }

  bool released_locked(uint64_t end) const { return end <= released_below_.load(std::memory_order_relaxed); }

  // n more bytes of the queue are gone (sent, or dropped): payloads the thread is done with
  // are released, and the handle woken if it waits for that (mu_ held).
  void progress_locked(size_t n) {
    queue_.consume(n);
    if (!refs_.empty() && refs_.front().done_at <= queue_.sent_offset()) {
      do
        refs_.pop_front();
      while (!refs_.empty() && refs_.front().done_at <= queue_.sent_offset());
      // After the send that took those payloads: a handle that sees this may free them.
      released_below_.store(refs_.empty() ? kAllReleased : refs_.front().start, std::memory_order_release);
    }
    if (wake_at_ != 0 && released_locked(wake_at_)) {
      wake_at_ = 0;
      signal_.wake();
    }
  }

  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      waiting_ = true;
      cv_.wait(lock, [this] { return stopping_ || (!queue_.empty() && !dropping_); });
      waiting_ = false;
      if (stopping_)
        return;
      struct iovec iov[kMaxIov];
      const int n = queue_.gather(iov, kMaxIov);
      size_t left = 0;
      for (int i = 0; i < n; ++i)
        left += iov[i].iov_len;
      if (!failed_) {
        busy_ = true;
        lock.unlock();
        const int r = send_all(iov, n, left);
        const int err = errno;
        lock.lock();
        busy_ = false;
        if (r == -1) {
          failed_ = true;
          if (!dropping_ && !stopping_)
            signal_.fail(errno_or(err, EIO));
        }
        cv_.notify_all();  // connection_over may be waiting for this
      }
      // After a failure the connection is dying: what comes is dropped.
      if (left > 0)
        progress_locked(left);
      if (queue_.empty())
        queue_.trim();  // what a burst grew goes back
    }
  }

  // Sends iov in full, waiting for POLLOUT when the socket is full, and reports each part sent
  // as it goes (left counts down what is still to send); -1 with errno on failure (ESHUTDOWN
  // when interrupted).  Runs without mu_.
  int send_all(struct iovec* iov, int n, size_t& left) {
    const int fd = fd_.load(std::memory_order_acquire);
    while (n > 0) {
      const ssize_t r = send_ordered_by_socket(fd, iov, n);
      if (r == -1) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
          return -1;
        struct pollfd pfd[2] = {{fd, POLLOUT, 0}, {stop_fd_.get(), POLLIN, 0}};
        if (::poll(pfd, 2, -1) == -1 && errno != EINTR)
          return -1;
        if (pfd[1].revents != 0) {
          errno = ESHUTDOWN;
          return -1;
        }
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        progress_locked(static_cast<size_t>(r));  // the handle may now release what went
      }
      left -= static_cast<size_t>(r);
      // Step over what went out: whole iovecs, then into the first partial one.
      auto sent = static_cast<size_t>(r);
      while (n > 0 && sent >= iov->iov_len) {
        sent -= iov->iov_len;
        ++iov;
        --n;
      }
      if (n > 0) {
        iov->iov_base = static_cast<char*>(iov->iov_base) + sent;
        iov->iov_len -= sent;
      }
    }
    return 0;
  }

  WriterSignal& signal_;
  UniqueFd stop_fd_;  // an eventfd: readable while the thread must stop sending
  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_.
  SendQueue queue_;
  std::deque<Ref> refs_;  // payloads not yet sent, oldest first
  // Where the oldest of refs_ starts (kAllReleased when there is none): every payload below
  // it is released.  Written under mu_, read without it.
  static constexpr uint64_t kAllReleased = UINT64_MAX;
  std::atomic<uint64_t> released_below_{kAllReleased};
  uint64_t wake_at_ = 0;  // wake the handle once released(wake_at_)
  bool waiting_ = false;  // the thread sleeps in loop()
  bool busy_ = false;     // the thread sends from iovecs into queue_
  bool failed_ = false;   // a send failed: drop the rest of this connection's data
  bool dropping_ = false;
  bool stopping_ = false;
  std::atomic<int> fd_{-1};
  std::vector<std::unique_ptr<Transport>> parked_;
  std::thread thread_;  // last: it starts after everything it uses
};

}  // namespace

std::unique_ptr<Sender> start_thread_sender(WriterSignal& signal) {
  UniqueFd stop{eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  if (!stop) {
    set_error(errno, "eventfd");
    return nullptr;
  }
  auto s = std::make_unique<ThreadSender>(signal, std::move(stop));
  if (!s->start())
    return nullptr;
  return s;
}

}  // namespace nbd
