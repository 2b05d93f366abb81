// writer_thread.hpp: the ready-made concurrent writer (nbd_start_concurrent_writer).
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <memory>
#include <thread>

#include "io.hpp"
#include "util.hpp"

struct nbd_handle;

namespace nbd {

// A thread that drains the handle's outgoing queue (h.out) into its socket while the handle
// goes on issuing commands and reading replies.  Nothing is copied: it sends the queue's own
// iovecs, write payloads included, which stay valid until they are consumed.  A send failure
// is reported as nbd_concurrent_writer_error would, and the thread then drops what comes.
class WriterThread {
 public:
  // A running writer draining q, or nullptr with the error recorded.
  static std::unique_ptr<WriterThread> start(nbd_handle& h, OutQueue& q);
  // Stops the thread and waits for it; the socket must still be open (or parked).
  ~WriterThread();
  WriterThread(const WriterThread&) = delete;
  WriterThread& operator=(const WriterThread&) = delete;

  // Drains q from now on (h.wire once TLS starts).  The old queue must be empty of bytes the
  // socket still needs, as it is once the server has answered NBD_OPT_STARTTLS.
  void switch_queue(OutQueue& q);
  // The connection is over: waits until the thread no longer uses the queue's buffers; it
  // then stops.
  void quiesce();

 private:
  WriterThread(nbd_handle& h, OutQueue& q, UniqueFd stop) : h_(h), q_(&q), stop_fd_(std::move(stop)) {}
  void loop();
  // Sends iov in full, waiting for POLLOUT when the socket is full, and reports each part sent
  // to q as it goes; -1 with errno on failure (ESHUTDOWN when the writer is being stopped).
  int send_all(int fd, struct iovec* iov, int n, OutQueue& q);

  nbd_handle& h_;
  std::atomic<OutQueue*> q_;
  std::atomic<bool> stopping_{false};
  UniqueFd stop_fd_;  // an eventfd: readable once the thread must stop
  std::thread thread_;
};

}  // namespace nbd
