// writer.cpp: the concurrent writer: registering one, reporting its failures, and the
// ready-made one behind nbd_start_concurrent_writer (a thread that drains the handle's own
// outgoing queue).
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <system_error>
#include <thread>

#include "error.hpp"
#include "state/machine.hpp"
#include "unlocked.hpp"
#include "util.hpp"
#include "writer_thread.hpp"

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

ssize_t sendmsg_ordered_by_socket(int fd, const struct msghdr* msg) {
#ifdef NBD_TSAN
  __tsan_ignore_thread_begin();
#endif
  const ssize_t r = ::sendmsg(fd, msg, MSG_NOSIGNAL);
#ifdef NBD_TSAN
  const int saved = errno;
  __tsan_ignore_thread_end();
  errno = saved;
#endif
  return r;
}

}  // namespace

std::unique_ptr<WriterThread> WriterThread::start(nbd_handle& h, OutQueue& q) {
  UniqueFd stop{eventfd(0, EFD_CLOEXEC)};
  if (!stop) {
    set_error(errno, "eventfd");
    return nullptr;
  }
  // Before the thread exists, so it only ever sees a locking queue.  Plain connections send
  // from the handle's thread while the writer's sleeps (OutQueue::flush); under TLS the
  // handle's thread stays out of the socket, which GnuTLS owns.
  q.share(&q == &h.out);
  std::unique_ptr<WriterThread> w(new WriterThread(h, q, std::move(stop)));
  try {
    w->thread_ = std::thread([p = w.get()] { p->loop(); });
  } catch (const std::system_error& e) {
    set_error(errno_or(e.code().value(), EAGAIN), "cannot start the writer thread");
    return nullptr;
  }
  return w;
}

WriterThread::~WriterThread() {
  stopping_.store(true);
  const uint64_t one = 1;
  (void)!::write(stop_fd_.get(), &one, sizeof one);  // ends a wait for POLLOUT
  q_.load()->stop_taking();                          // ends a wait for data
  if (thread_.joinable())
    thread_.join();
}

void WriterThread::switch_queue(OutQueue& q) {
  q.share(false);
  OutQueue* old = q_.exchange(&q);
  old->stop_taking();  // the thread leaves it and picks up q
}

void WriterThread::quiesce() { q_.load()->stop_taking(); }

void WriterThread::loop() {
  bool failed = false;
  for (;;) {
    OutQueue* q = q_.load();
    struct iovec iov[64];
    const int n = q->take(iov, 64);
    if (n == 0) {
      if (stopping_.load() || q_.load() == q)
        return;  // closing, or the connection is over
      continue;  // switched to another queue
    }
    size_t done = 0;
    if (failed) {
      for (int i = 0; i < n; ++i)
        done += iov[i].iov_len;  // the handle is dying: drop the data
    } else if (send_all(h_.sock_fd.load(std::memory_order_acquire), iov, n, *q) == -1) {
      failed = true;
      unlocked_concurrent_writer_error(h_, errno_or(errno, EIO));
    }
    q->sent(done);  // what send_all sent it already reported as it went
  }
}

int WriterThread::send_all(int fd, struct iovec* iov, int n, OutQueue& q) {
  struct msghdr msg {};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(n);
  while (msg.msg_iovlen > 0) {
    const ssize_t r = sendmsg_ordered_by_socket(fd, &msg);
    if (r == -1) {
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
      continue;
    }
    q.progress(static_cast<size_t>(r));  // the handle may now release what the server has
    // Step over what went out: whole iovecs, then into the first partial one.
    auto left = static_cast<size_t>(r);
    while (msg.msg_iovlen > 0 && left >= msg.msg_iov->iov_len) {
      left -= msg.msg_iov->iov_len;
      ++msg.msg_iov;
      --msg.msg_iovlen;
    }
    if (msg.msg_iovlen > 0) {
      msg.msg_iov->iov_base = static_cast<char*>(msg.msg_iov->iov_base) + left;
      msg.msg_iov->iov_len -= left;
    }
  }
  return 0;
}

namespace {

bool has_writer(const nbd_handle& h) { return !h.writer.empty() || h.writer_thread; }

// A writer failure must wake a thread sleeping in nbd_poll, which watches this eventfd too.
int make_wake_fd(nbd_handle& h) {
  if (h.wake_fd.load(std::memory_order_relaxed) != -1)
    return 0;
  const int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake == -1)
    return set_error(errno, "eventfd");
  h.wake_fd.store(wake, std::memory_order_release);
  return 0;
}

}  // namespace

int unlocked_set_concurrent_writer(nbd_handle& h, Closure<nbd_writer_callback>& writer) {
  // Swapping sinks under a live byte stream could reorder it; one writer per handle.
  if (has_writer(h))
    return set_error(EINVAL, "concurrent writer was already set for this handle");
  if (make_wake_fd(h) == -1)
    return -1;
  h.writer = std::move(writer);
  // Bytes already queued follow the earlier ones through the writer, so the stream stays in
  // order however far the connection has got.
  if (h.sock)
    divert_to_writer(h);
  // Hand the writer what is queued now, so the handle stops waiting for POLLOUT at once.  A
  // failure here kills the connection, which the next call reports; the writer stays set.
  h.send_full = false;  // the writer takes everything: the socket being full no longer matters
  send_queued(h);
  return 0;
}

int unlocked_start_concurrent_writer(nbd_handle& h) {
  if (has_writer(h))
    return set_error(EINVAL, "concurrent writer was already set for this handle");
  if (make_wake_fd(h) == -1)
    return -1;
  // Plain connections: the thread sends the handle's queue itself, write payloads in place.
  // Under TLS: the handle encrypts, and the records go to the thread through h.wire.
  h.writer_thread = WriterThread::start(h, h.tls_session != nullptr ? wire_queue(h) : h.out);
  if (!h.writer_thread)
    return -1;
  h.send_full = false;
  if (h.tls_session != nullptr)
    divert_to_wire(h);
  return 0;
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

OutQueue& wire_queue(nbd_handle& h) {
  if (!h.wire)
    h.wire = std::make_unique<OutQueue>();
  return *h.wire;
}

void divert_to_wire(nbd_handle& h) {
  OutQueue& wire = wire_queue(h);
  h.sock->divert_sends([&wire](const void* buf, size_t len) {
    wire.append_copy(buf, len);
    return 0;
  });
}

void divert_to_writer(nbd_handle& h) {
  h.sock->divert_sends([&h](const void* buf, size_t len) { return h.writer(buf, len); });
}

}  // namespace nbd
