// sender.hpp: the sending side of a connection, in one of three ways chosen once, when a
// concurrent writer is set: straight to the socket from the handle's thread (the default),
// through the application's writer callback (nbd_set_concurrent_writer), or through the
// ready-made writer thread (nbd_start_concurrent_writer).  The socket transport (and TLS above
// it) sends every byte through the handle's Sender; nothing above transport/ asks which one
// it is.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "closure.hpp"
#include "event_fd.hpp"
#include "libnbd.h"
#include "transport/send_queue.hpp"
#include "transport/transport.hpp"

namespace nbd {

// What a concurrent writer reports from outside the handle's lock: the first failure of its
// sends (nbd_concurrent_writer_error, from any thread), and wake-ups for a thread polling the
// handle (through an eventfd, made with the writer).
class WriterSignal {
 public:
  // Makes the eventfd if there is none yet.  -1 with the error recorded.
  int enable() { return wake_.make(); }
  // The eventfd to poll for POLLIN, or -1 before enable().
  int fd() const { return wake_.fd(); }
  // The connection's socket, once connected: a failure shuts it down.
  void watch(int sock_fd) { sock_fd_.store(sock_fd, std::memory_order_release); }
  // Keeps err (non-zero) if it is the first failure, and wakes the handle: through the
  // eventfd, and by shutting the socket down, which wakes an event loop polling it (the
  // connection is lost anyway) and ends a send blocked in a writer's thread.  Takes no lock;
  // the socket's descriptor stays open while a writer is set (Sender::connection_over).
  void fail(int err);
  // The first failure reported, or 0.
  int error() const { return error_.load(std::memory_order_acquire); }
  // Makes fd() readable, and clear() makes it not.
  void wake() { wake_.signal(); }
  void clear() { wake_.drain(); }

 private:
  std::atomic<int> error_{0};
  EventFd wake_;
  std::atomic<int> sock_fd_{-1};
};

class Sender {
 public:
  virtual ~Sender() = default;

  // Sends bytes the caller owns only during the call, such as TLS records, as far as it can
  // without blocking: how many it took, or -1 with errno (EAGAIN: none now).
  virtual ssize_t send_raw(int fd, const struct iovec* iov, int iovcnt) = 0;
  // Moves the bytes of q on, consuming what it took (see Transport::send).  q's referenced
  // payloads may still be used after they are consumed, until released() says otherwise.
  virtual Io send(int fd, SendQueue& q) = 0;
  // Whether the referenced payloads of the stream q carries, up to stream offset end, are no
  // longer in use, so the commands they belong to may complete.  wake_when_released asks for
  // a WriterSignal wake-up once released(end) turns true.
  virtual bool released(uint64_t end) const = 0;
  virtual void wake_when_released(uint64_t end) = 0;
  // The socket fd has connected: the sender may set its mode.
  virtual void connected(int fd) = 0;
  // After NBD_CMD_DISC, with nothing left in q: ends the sending side of fd if nothing of the
  // stream can still be on its way.
  virtual void shut_writes(int fd) = 0;
  // The connection is over: afterwards nothing is sent from memory the stream referenced and
  // nothing queued is left.  t, the socket's transport, is closed, or kept shut down until
  // the sender is destroyed if another thread may still hold its descriptor.
  virtual void connection_over(std::unique_ptr<Transport> t) = 0;
};

// One non-blocking sendmsg of iov to fd (MSG_NOSIGNAL | MSG_DONTWAIT, retried on EINTR):
// bytes sent, or -1 with errno.
ssize_t send_now(int fd, const struct iovec* iov, int iovcnt);

// Sends from the handle's own thread, never blocking (the default).
std::unique_ptr<Sender> make_direct_sender();
// Hands every byte to the application's writer callback; failures are reported to signal.
// The socket is made blocking once connected, for the application's writing thread.
std::unique_ptr<Sender> make_callback_sender(Closure<nbd_writer_callback> writer, WriterSignal& signal);
// Starts the ready-made writer thread, or returns nullptr with the error recorded.
std::unique_ptr<Sender> start_thread_sender(WriterSignal& signal);

}  // namespace nbd
