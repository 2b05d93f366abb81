// connect.cpp: the connect phase: a non-blocking connect(), trying each resolved address in turn.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "error.hpp"
#include "state/machine.hpp"
#include "util.hpp"

namespace nbd {
namespace {

// Starts connecting a new socket to addr; the socket becomes h.sock.  As in libnbd, the
// handle then waits for the socket to become writable (even when connect() completed at
// once, as on a Unix socket), so an event loop first sees LIBNBD_AIO_DIRECTION_WRITE.
Transition begin_connect(nbd_handle& h, const struct sockaddr* addr, socklen_t len) {
  UniqueFd fd{::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (!fd) {
    set_error(errno, "socket");
    return Transition::Fail;
  }
  int r;
  do
    r = ::connect(fd.get(), addr, len);
  while (r == -1 && errno == EINTR);
  if (r == -1 && errno != EINPROGRESS) {
    h.connect_errno = errno;
    attach_socket(h, fd.release());
    h.state = State::ConnectWait;  // h_connect_wait reports it or tries the next address
    return Transition::Next;
  }
  attach_socket(h, fd.release());
  h.connect_errno = 0;
  h.state = State::ConnectWait;
  return Transition::Block;
}

}  // namespace

void attach_socket(nbd_handle& h, int fd) { h.sock = make_socket_transport(fd, *h.sender); }

Transition connect_to(nbd_handle& h, const struct sockaddr* addr, socklen_t len) {
  h.addrs.clear();
  h.addrlens.clear();
  h.addr_next = 0;
  return begin_connect(h, addr, len);
}

Transition connect_next_address(nbd_handle& h) {
  if (h.addr_next >= h.addrs.size()) {
    const int err = errno_or(h.connect_errno, ECONNREFUSED);
    set_error(err, "connect");
    return Transition::Fail;
  }
  const size_t i = h.addr_next++;
  return begin_connect(h, reinterpret_cast<const struct sockaddr*>(&h.addrs[i]), h.addrlens[i]);
}

Transition h_connect_wait(nbd_handle& h) {
  int err = h.connect_errno;
  if (err == 0) {
    // connect() is done when the socket turns writable; SO_ERROR then says how it went.
    struct pollfd pfd {};
    pfd.fd = h.sock->fd();
    pfd.events = POLLOUT;
    if (::poll(&pfd, 1, 0) == 0)
      return Transition::Block;
    socklen_t len = sizeof err;
    if (getsockopt(h.sock->fd(), SOL_SOCKET, SO_ERROR, &err, &len) == -1)
      err = errno;
  }
  if (err != 0) {
    h.connect_errno = err;
    h.sock.reset();
    if (h.addr_next < h.addrs.size())
      return connect_next_address(h);
    set_error(err, "connect");
    return Transition::Fail;
  }
  h.addrs.clear();
  h.addrlens.clear();
  return start_handshake(h);
}

}  // namespace nbd
