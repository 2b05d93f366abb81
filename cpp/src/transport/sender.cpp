// sender.cpp: WriterSignal, and the two senders that keep nothing of their own: straight to the
// socket, and through the application's writer callback.
#include "transport/sender.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "error.hpp"

namespace nbd {

void WriterSignal::fail(int err) {
  int none = 0;
  if (!error_.compare_exchange_strong(none, err, std::memory_order_acq_rel))
    return;
  const int sock = sock_fd_.load(std::memory_order_acquire);
  if (sock != -1)
    ::shutdown(sock, SHUT_RDWR);
  wake();
}

ssize_t send_now(int fd, const struct iovec* iov, int iovcnt) {
  struct msghdr msg {};
  msg.msg_iov = const_cast<struct iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(iovcnt);
  // MSG_NOSIGNAL: a server that hangs up must give EPIPE, not kill the process.
  // MSG_DONTWAIT: the descriptor may be blocking for an application's writer thread.
  ssize_t r;
  do
    r = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (r == -1 && errno == EINTR);
  return r;
}

namespace {

constexpr int kMaxIov = 64;

size_t iov_bytes(const struct iovec* iov, int n) {
  size_t total = 0;
  for (int i = 0; i < n; ++i)
    total += iov[i].iov_len;
  return total;
}

// A sender that keeps no reference to the stream's memory once it has taken the bytes.
class PassingSender : public Sender {
 public:
  bool released(uint64_t) const override { return true; }
  void wake_when_released(uint64_t) override {}

 protected:
  // Hands q's bytes to send_raw until q is empty (Done) or send_raw takes less than offered
  // or would block (Again, if may_block); a failure is recorded as "failed: ...".
  Io send_by_raw(int fd, SendQueue& q, const char* failed, bool may_block) {
    while (!q.empty()) {
      struct iovec iov[kMaxIov];
      const int n = q.gather(iov, kMaxIov);
      const ssize_t r = send_raw(fd, iov, n);
      if (r == -1) {
        if (may_block && (errno == EAGAIN || errno == EWOULDBLOCK))
          return Io::Again;
        set_error(errno, "%s", failed);
        return Io::Error;
      }
      q.consume(static_cast<size_t>(r));
      // A socket that took less than offered is full: another try would fail.
      if (static_cast<size_t>(r) < iov_bytes(iov, n))
        return Io::Again;
    }
    return Io::Done;
  }
};

class DirectSender final : public PassingSender {
 public:
  ssize_t send_raw(int fd, const struct iovec* iov, int iovcnt) override {
    return send_now(fd, iov, iovcnt);
  }

  Io send(int fd, SendQueue& q) override { return send_by_raw(fd, q, "send", true); }

  void connected(int) override {}
  void shut_writes(int fd) override { ::shutdown(fd, SHUT_WR); }
  void connection_over(std::unique_ptr<Transport> t) override { t.reset(); }
};

class CallbackSender final : public PassingSender {
 public:
  CallbackSender(Closure<nbd_writer_callback> writer, WriterSignal& signal)
      : writer_(std::move(writer)), signal_(signal) {}

  // The callback takes everything at once (it queues a copy), so this never blocks.
  ssize_t send_raw(int, const struct iovec* iov, int iovcnt) override {
    for (int i = 0; i < iovcnt; ++i) {
      if (writer_(iov[i].iov_base, iov[i].iov_len) == -1) {
        const int err = errno_or(errno, EIO);  // it may have left errno at 0
        signal_.fail(err);                     // commands in flight fail with it too
        errno = err;
        return -1;
      }
    }
    return static_cast<ssize_t>(iov_bytes(iov, iovcnt));
  }

  // The callback takes all it is given; whatever errno it fails with ends the connection.
  Io send(int fd, SendQueue& q) override {
    return send_by_raw(fd, q, "concurrent writer: the writer callback failed", false);
  }

  // The application's thread writes with plain blocking calls; the library's own receives
  // and sends say MSG_DONTWAIT, so they never block whatever the mode.
  void connected(int fd) override {
    const int fl = fcntl(fd, F_GETFL);
    if (fl != -1)
      fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    signal_.watch(fd);
  }

  // Data may still be on its way through the application's thread.
  void shut_writes(int) override {}

  // The application's thread may still write to the descriptor: it is shut down, so those
  // writes fail, and kept until the handle is closed, so its number is not reused meanwhile.
  void connection_over(std::unique_ptr<Transport> t) override {
    t->shut_down();
    parked_.push_back(std::move(t));
  }

 private:
  // parked_ goes last: the writer is freed (its thread told to end) before the descriptor
  // is closed.
  std::vector<std::unique_ptr<Transport>> parked_;
  Closure<nbd_writer_callback> writer_;
  WriterSignal& signal_;
};

}  // namespace

std::unique_ptr<Sender> make_direct_sender() { return std::make_unique<DirectSender>(); }

std::unique_ptr<Sender> make_callback_sender(Closure<nbd_writer_callback> writer, WriterSignal& signal) {
  return std::make_unique<CallbackSender>(std::move(writer), signal);
}

}  // namespace nbd
