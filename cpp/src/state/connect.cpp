// connect.cpp: the connect phase, from the handle's ConnectTarget: a non-blocking connect(),
// trying each resolved address in turn, or a server started on a socketpair or by socket
// activation.  A reconnection (state/reconnect.cpp) starts here again.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "error.hpp"
#include "state/machine.hpp"
#include "subprocess.hpp"
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

// nbd_connect_command: the server's stdin and stdout are our socketpair's other end.  The
// server of a lost connection is reaped first; it exits by itself once its end closes.
Transition start_command(nbd_handle& h) {
  h.subprocess.reset();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
    set_error(errno, "socketpair");
    return Transition::Fail;
  }
  UniqueFd ours{sv[0]}, theirs{sv[1]};
  const pid_t pid = spawn_on_socket(h.target.argv, theirs.get());
  if (pid == -1) {
    set_error(errno, "fork");
    return Transition::Fail;
  }
  h.subprocess = Subprocess(pid, false);
  attach_socket(h, ours.release());
  return start_handshake(h);
}

// Socket activation: we make and bind the listening socket, in a directory of our own, and
// the server inherits it.  The server keeps listening after our connection closes: it is asked
// to stop (before another is started, on a reconnection).
Transition start_socket_activation(nbd_handle& h) {
  h.subprocess.reset();
  if (h.sa_dir.empty() && h.sa_dir.make("/tmp/nbdppXXXXXX") == -1) {
    set_error(errno, "mkdtemp");
    return Transition::Fail;
  }
  const std::string path = h.sa_dir.socket_path();
  struct sockaddr_un sun;
  socklen_t len;
  if (unix_address(path.c_str(), sun, len) == -1)
    return Transition::Fail;
  unlink(path.c_str());  // the socket of an earlier server
  UniqueFd lfd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (!lfd || bind(lfd.get(), reinterpret_cast<struct sockaddr*>(&sun), len) == -1 ||
      listen(lfd.get(), SOMAXCONN) == -1) {
    set_error(errno, "socket activation");
    return Transition::Fail;
  }
  const pid_t pid = spawn_socket_activated(h.target.argv, lfd.get(), h.socket_activation_name);
  if (pid == -1) {
    set_error(errno, "fork");
    return Transition::Fail;
  }
  h.subprocess = Subprocess(pid, true);
  // The socket already listens (we made it), so connecting cannot race the server's start.
  return begin_connect(h, reinterpret_cast<struct sockaddr*>(&sun), len);
}

}  // namespace

void ConnectTarget::add_address(const struct sockaddr* addr, socklen_t len) {
  sockaddr_storage ss{};
  std::memcpy(&ss, addr, len);
  addrs.push_back(ss);
  addrlens.push_back(len);
}

int unix_address(const char* path, struct sockaddr_un& sun, socklen_t& len) {
  const size_t n = std::strlen(path);
  if (n >= sizeof sun.sun_path)
    return set_error(ENAMETOOLONG, "socket path too long: %s", path);
  std::memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path, n);
  len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return 0;
}

void attach_socket(nbd_handle& h, int fd) { h.sock = make_socket_transport(fd, *h.sender); }

Transition connect_target(nbd_handle& h) {
  switch (h.target.kind) {
    case ConnectTarget::Kind::Addresses:
      h.target.addr_next = 0;
      return connect_next_address(h);
    case ConnectTarget::Kind::Command:
      return start_command(h);
    case ConnectTarget::Kind::SocketActivation:
      return start_socket_activation(h);
    case ConnectTarget::Kind::None:
    case ConnectTarget::Kind::Socket:
      break;
  }
  set_error(ENOTSUP, "this connection cannot be made again (a socket passed to nbd_connect_socket)");
  return Transition::Fail;
}

Transition connect_next_address(nbd_handle& h) {
  ConnectTarget& t = h.target;
  if (t.addr_next >= t.addrs.size()) {
    const int err = errno_or(h.connect_errno, ECONNREFUSED);
    set_error(err, "connect");
    return Transition::Fail;
  }
  const size_t i = t.addr_next++;
  return begin_connect(h, reinterpret_cast<const struct sockaddr*>(&t.addrs[i]), t.addrlens[i]);
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
    if (h.target.kind == ConnectTarget::Kind::Addresses && h.target.addr_next < h.target.addrs.size())
      return connect_next_address(h);
    set_error(err, "connect");
    return Transition::Fail;
  }
  return start_handshake(h);
}

}  // namespace nbd
