// writer.cpp: the concurrent writer: registering one, reporting its failures, and the
// ready-made one (a buffer and a thread per handle) behind nbd_start_concurrent_writer.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "error.hpp"
#include "state/machine.hpp"
#include "unlocked.hpp"
#include "util.hpp"

namespace nbd {
namespace {

// The ready-made writer.  The handle (holding its lock) appends bytes to pending_; the thread
// swaps the buffer out and writes it to the socket, so copying in and sending out overlap.
// The descriptor stays open until the handle has freed this writer (nbd_close frees the
// writer before it closes the socket), so the thread never writes to a reused descriptor.
class WriterThread {
 public:
  // A started writer, or nullptr with the error recorded.
  static WriterThread* start(nbd_handle& h) {
    UniqueFd stop{eventfd(0, EFD_CLOEXEC)};
    if (!stop) {
      set_error(errno, "eventfd");
      return nullptr;
    }
    auto* w = new WriterThread(h, std::move(stop));
    try {
      w->thread_ = std::thread([w] { w->loop(); });
    } catch (const std::system_error& e) {
      delete w;
      set_error(errno_or(e.code().value(), EAGAIN), "cannot start the writer thread");
      return nullptr;
    }
    return w;
  }

  ~WriterThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    const uint64_t one = 1;
    (void)!::write(stop_fd_.get(), &one, sizeof one);  // wakes a thread waiting for POLLOUT
    if (thread_.joinable())
      thread_.join();
  }

  WriterThread(const WriterThread&) = delete;
  WriterThread& operator=(const WriterThread&) = delete;

  // The writer callback: runs with the handle locked, so h_.sock is safe to read.
  int accept(const void* buf, size_t len) {
    if (failed_.load(std::memory_order_acquire))
      return 0;  // already reported through nbd_concurrent_writer_error; the handle dies
    const auto* p = static_cast<const unsigned char*>(buf);
    {
      std::lock_guard<std::mutex> lock(mu_);
      fd_ = h_.sock->fd();
      pending_.insert(pending_.end(), p, p + len);
    }
    cv_.notify_one();
    return 0;
  }

  static int callback(void* self, const void* buf, size_t len) {
    return static_cast<WriterThread*>(self)->accept(buf, len);
  }
  static void free(void* self) { delete static_cast<WriterThread*>(self); }

 private:
  WriterThread(nbd_handle& h, UniqueFd stop) : h_(h), stop_fd_(std::move(stop)) {}

  void loop() {
    std::vector<unsigned char> sending;
    for (;;) {
      int fd;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
        if (stopping_)
          return;
        sending.swap(pending_);
        fd = fd_;
      }
      if (!failed_.load(std::memory_order_relaxed) && send_all(fd, sending) == -1) {
        failed_.store(true, std::memory_order_release);  // later data is dropped
        unlocked_concurrent_writer_error(h_, errno_or(errno, EIO));
      }
      sending.clear();
    }
  }

  // Writes all of buf to the (non-blocking) socket, waiting for POLLOUT when it is full.
  // Returns -1 with errno set on failure, or when the handle is being closed.
  int send_all(int fd, const std::vector<unsigned char>& buf) {
    size_t done = 0;
    while (done < buf.size()) {
      const ssize_t r = ::send(fd, buf.data() + done, buf.size() - done, MSG_NOSIGNAL);
      if (r >= 0) {
        done += static_cast<size_t>(r);
        continue;
      }
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        return -1;
      struct pollfd pfd[2] = {{fd, POLLOUT, 0}, {stop_fd_.get(), POLLIN, 0}};
      if (::poll(pfd, 2, -1) == -1 && errno != EINTR)
        return -1;
      if (pfd[1].revents != 0) {
        errno = ESHUTDOWN;
        return -1;
      }
    }
    return 0;
  }

  nbd_handle& h_;
  UniqueFd stop_fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<unsigned char> pending_;  // guarded by mu_
  int fd_ = -1;                          // guarded by mu_
  bool stopping_ = false;                // guarded by mu_
  std::atomic<bool> failed_{false};
  std::thread thread_;
};

}  // namespace

int unlocked_set_concurrent_writer(nbd_handle& h, Closure<nbd_writer_callback>& writer) {
  // Swapping sinks under a live byte stream could reorder it; one writer per handle.
  if (!h.writer.empty())
    return set_error(EINVAL, "concurrent writer was already set for this handle");
  // A writer failure must wake a thread sleeping in nbd_poll, which watches this too.
  const int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake == -1)
    return set_error(errno, "eventfd");
  h.wake_fd.store(wake, std::memory_order_release);
  h.writer = std::move(writer);
  // Bytes already queued follow the earlier ones through the writer, so the stream stays in
  // order however far the connection has got.
  if (h.sock)
    divert_to_writer(h);
  return 0;
}

int unlocked_start_concurrent_writer(nbd_handle& h) {
  WriterThread* w = WriterThread::start(h);
  if (w == nullptr)
    return -1;
  Closure<nbd_writer_callback> closure{
      nbd_writer_callback{&WriterThread::callback, w, &WriterThread::free}};
  return unlocked_set_concurrent_writer(h, closure);  // frees w (joining it) if that fails
}

int unlocked_concurrent_writer_error(nbd_handle& h, int err) {
  if (err == 0)
    return set_error(EINVAL, "err must be non-zero");
  // No lock is held here (locked: false): keep only the first error, atomically, and wake a
  // thread polling the handle so the handle dies now rather than at its next call.
  int expected = 0;
  if (h.writer_error.compare_exchange_strong(expected, err, std::memory_order_acq_rel)) {
    const int wake = h.wake_fd.load(std::memory_order_acquire);
    const uint64_t one = 1;
    if (wake != -1)
      (void)!::write(wake, &one, sizeof one);
  }
  return 0;
}

void divert_to_writer(nbd_handle& h) {
  h.sock->divert_sends([&h](const void* buf, size_t len) { return h.writer(buf, len); });
}

}  // namespace nbd
