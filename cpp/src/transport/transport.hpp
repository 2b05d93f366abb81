// transport.hpp: where the core's bytes go and come from.  The plain socket is the base; TLS
// (GnuTLS) decorates it and the concurrent writer replaces its sending side.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <functional>
#include <memory>

namespace nbd {

// Takes bytes a transport would have sent (the concurrent writer): 0 once they are queued, or
// -1 with errno set.  It never blocks.
using SendSink = std::function<int(const void* buf, size_t len)>;

class Transport {
 public:
  virtual ~Transport() = default;

  // The descriptor to poll.
  virtual int fd() const = 0;
  // Non-blocking receive: bytes read, 0 at end of stream, or -1 with errno (EAGAIN: try later).
  virtual ssize_t recv(void* buf, size_t len) = 0;
  // Non-blocking gathered send: bytes sent, or -1 with errno (EAGAIN: try later).  more says
  // further data follows at once, so the kernel may hold back a partial packet.
  virtual ssize_t send(const struct iovec* iov, int iovcnt, bool more) = 0;
  // Stops sending (after NBD_CMD_DISC), keeping the receive side open for the last replies.
  // Does nothing once sends are diverted: the sink may still hold unsent data.
  virtual void shut_writes() = 0;
  // From now on every byte the innermost socket would send goes to sink instead (decorators
  // such as TLS pass this on to the transport they wrap, so their records go there too).
  virtual void divert_sends(SendSink sink) = 0;
  // Ends the connection in both directions without closing the descriptor, so a writer thread
  // still holding it fails cleanly instead of writing to a reused descriptor.
  virtual void shut_down() = 0;
};

// Owns a connected stream socket, made non-blocking.
std::unique_ptr<Transport> make_socket_transport(int fd);

}  // namespace nbd
