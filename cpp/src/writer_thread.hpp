// writer_thread.hpp: the ready-made concurrent writer (nbd_start_concurrent_writer).
#pragma once

#include <sys/uio.h>

#include <memory>
#include <thread>

#include "util.hpp"

struct nbd_handle;

namespace nbd {

// A thread that drains the handle's outgoing queue (h.out) into its socket while the handle
// goes on issuing commands and reading replies.  Nothing is copied: it sends the queue's own
// iovecs, write payloads included, which stay valid until they are consumed.  A send failure
// is reported as nbd_concurrent_writer_error would, and the thread then drops what comes.
class WriterThread {
 public:
  // A running writer, or nullptr with the error recorded.
  static std::unique_ptr<WriterThread> start(nbd_handle& h);
  // Stops the thread and waits for it; the socket must still be open (or parked).
  ~WriterThread();
  WriterThread(const WriterThread&) = delete;
  WriterThread& operator=(const WriterThread&) = delete;

 private:
  WriterThread(nbd_handle& h, UniqueFd stop) : h_(h), stop_fd_(std::move(stop)) {}
  void loop();
  // Sends iov in full, waiting for POLLOUT when the socket is full; -1 with errno on failure
  // (ESHUTDOWN when the writer is being stopped).  Returns the bytes sent through *sent.
  int send_all(int fd, struct iovec* iov, int n, size_t* sent);

  nbd_handle& h_;
  UniqueFd stop_fd_;  // an eventfd: readable once the thread must stop
  std::thread thread_;
};

}  // namespace nbd
