// aio.cpp: the calls that let a caller run the state machine from its own event loop.
#include <cerrno>

#include "error.hpp"
#include "state/machine.hpp"
#include "unlocked.hpp"

namespace nbd {

int unlocked_poll(nbd_handle& h, int timeout) { return poll_once(h, timeout); }

int unlocked_aio_get_fd(nbd_handle& h) {
  if (!h.sock)
    return set_error(EINVAL, "the handle has no socket in state %s", state_name(h.state));
  return h.sock->fd();
}

namespace {

int notify(nbd_handle& h, const char* event) {
  if ((state_group(h.state) & (kConnecting | kNegotiating | kConnected)) == 0 || !h.sock)
    return set_error(EINVAL, "%s event is invalid in state %s", event, state_name(h.state));
  return run(h);
}

}  // namespace

int unlocked_aio_notify_read(nbd_handle& h) { return notify(h, "read"); }

int unlocked_aio_notify_write(nbd_handle& h) { return notify(h, "write"); }

}  // namespace nbd
