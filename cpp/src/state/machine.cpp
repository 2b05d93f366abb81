// machine.cpp: the loop that runs state handlers, polling, and the two ways a connection ends.
#include "state/machine.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "debug.hpp"
#include "error.hpp"

namespace nbd {
namespace {

Transition dispatch(nbd_handle& h) {
  switch (h.state) {
    case State::ConnectWait:
      return h_connect_wait(h);
    case State::RecvGreeting:
      return h_magic_recv_greeting(h);
    case State::RecvOldstyle:
      return h_magic_recv_oldstyle(h);
    case State::RecvHandshakeFlags:
      return h_newstyle_recv_flags(h);
    case State::OptSend:
      return h_newstyle_opt_send(h);
    case State::OptRecvHeader:
      return h_newstyle_opt_recv_header(h);
    case State::OptRecvPayload:
      return h_newstyle_opt_recv_payload(h);
    case State::ExportNameReply:
      return h_newstyle_export_name_reply(h);
    case State::Ready:
    case State::Processing:
      return h_transmit(h);
    case State::Created:
    case State::Negotiating:
    case State::Closed:
    case State::Dead:
      return Transition::Block;
  }
  return Transition::Block;
}

// Completes every command still in flight with err (they will get no reply now).
void fail_all_commands(nbd_handle& h, int err) {
  while (!h.cmds.empty()) {
    auto it = h.cmds.begin();
    if (it->second->error == 0)
      it->second->error = err;
    complete_command(h, it->first);
  }
}

}  // namespace

int run(nbd_handle& h) {
  for (;;) {
    const State before = h.state;
    switch (dispatch(h)) {
      case Transition::Next:
        continue;
      case Transition::Block:
        if (h.state != before)
          continue;
        return 0;
      case Transition::Fail:
        kill_connection(h, errno_or(last_errno(), ENOTCONN));
        return -1;
    }
  }
}

int poll_once(nbd_handle& h, int timeout_ms) {
  const unsigned dir = direction(h);
  if (dir == 0 || !h.sock)
    return set_error(EINVAL, "nothing to poll for in state %s", state_name(h.state));
  struct pollfd pfd {};
  pfd.fd = h.sock->fd();
  pfd.events = static_cast<short>(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                                  ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0));
  int r;
  do
    r = ::poll(&pfd, 1, timeout_ms);
  while (r == -1 && errno == EINTR);
  if (r == -1)
    return set_error(errno, "poll");
  if (r == 0)
    return 0;
  return run(h) == -1 ? -1 : 1;
}

unsigned direction(const nbd_handle& h) {
  switch (h.state) {
    case State::ConnectWait:
    case State::OptSend:
      return LIBNBD_AIO_DIRECTION_WRITE;
    case State::RecvGreeting:
    case State::RecvOldstyle:
    case State::RecvHandshakeFlags:
    case State::OptRecvHeader:
    case State::OptRecvPayload:
    case State::ExportNameReply:
      return LIBNBD_AIO_DIRECTION_READ;
    case State::Ready:
    case State::Processing:
      // Replies may arrive at any time; writing matters only while output is queued.
      return LIBNBD_AIO_DIRECTION_READ | (h.out.empty() ? 0u : LIBNBD_AIO_DIRECTION_WRITE);
    case State::Created:
    case State::Negotiating:
    case State::Closed:
    case State::Dead:
      return 0;
  }
  return 0;
}

void kill_connection(nbd_handle& h, int err) {
  if (h.debug_enabled())
    debug(h, "connection dead: %s", std::strerror(err));
  h.state = State::Dead;
  h.sock.reset();
  h.out.clear();
  fail_all_commands(h, err);
}

void close_connection(nbd_handle& h) {
  h.state = State::Closed;
  h.sock.reset();
  h.out.clear();
  fail_all_commands(h, ENOTCONN);
}

}  // namespace nbd

void nbd_handle::publish_state() {
  public_state.store(state, std::memory_order_release);
  public_direction.store(nbd::direction(*this), std::memory_order_release);
}
