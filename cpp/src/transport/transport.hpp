// transport.hpp: where the core's bytes go and come from.  The plain socket is the base and
// TLS (GnuTLS) decorates it; the socket's sending side is a Sender (sender.hpp), chosen when a
// concurrent writer is set, which nothing above transport/ needs to know about.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <memory>

namespace nbd {

class SendQueue;
class Sender;
class TlsTransport;

// How a step of sending or receiving went.
enum class Io {
  Done,   // the request is complete
  Again,  // the socket would block; wait for it
  Eof,    // the peer closed the connection
  Error,  // error recorded with set_error
};

class Transport {
 public:
  virtual ~Transport() = default;

  // The descriptor to poll.
  virtual int fd() const = 0;
  // The connection is established: called once, before the first byte is sent.
  virtual void connected() = 0;
  // Non-blocking receive (whatever mode the descriptor is in): bytes read, 0 at end of
  // stream, or -1 with errno (EAGAIN: try later).
  virtual ssize_t recv(void* buf, size_t len) = 0;
  // Moves q's bytes towards the server without blocking, consuming what went: Done once q
  // is empty, Again when the socket is full (wait for POLLOUT), Error (recorded) when the
  // connection failed.
  virtual Io send(SendQueue& q) = 0;
  // Sends bytes the caller owns only during the call, without blocking: how many went, or -1
  // with errno (EAGAIN: none now).  For decorators, whose records go to the transport below.
  virtual ssize_t send_raw(const struct iovec* iov, int iovcnt) = 0;
  // Stops sending (after NBD_CMD_DISC), keeping the receive side open for the last replies,
  // where the sender can (nothing of the stream may still be on its way).
  virtual void shut_writes() = 0;
  // From now on every byte the socket sends goes through sender (decorators pass it down).
  virtual void use_sender(Sender& sender) = 0;
  // Ends the connection in both directions without closing the descriptor, so a writer thread
  // still holding it fails cleanly instead of writing to a reused descriptor.
  virtual void shut_down() = 0;
  // The TLS session this transport is (tls.hpp), or nullptr for a plain socket: what the
  // handshake states drive, reached through the transport that owns it.
  virtual TlsTransport* tls() { return nullptr; }
};

// Owns a connected (or connecting) stream socket, made non-blocking; sender sends for it.
std::unique_ptr<Transport> make_socket_transport(int fd, Sender& sender);

}  // namespace nbd
