// aio.cpp: the calls that let a caller run the state machine from its own event loop.
#include <cerrno>

#include "error.hpp"
#include "state/machine.hpp"
#include "unlocked.hpp"

namespace nbd {

int unlocked_poll(nbd_handle& h, int timeout) { return poll_once(h, timeout); }

// No lock is held here (locked: false): see Interrupt::request.
int unlocked_interrupt(nbd_handle& h) {
  h.interrupt.request();
  return 0;
}

int unlocked_poll2(nbd_handle& h, int fd, int timeout) { return poll_once(h, timeout, fd); }

int unlocked_aio_get_fd(nbd_handle& h) {
  const int fd = watched_fd(h);
  if (fd == -1)
    return set_error(EINVAL, "the handle has no socket in state %s", state_name(h.state));
  return fd;
}

namespace {

// As in libnbd, an event the handle is not waiting for (nbd_aio_get_direction lacks it) is
// refused: writable while nothing is queued, any event in the negotiating state, and so on.
int notify(nbd_handle& h, const char* event, unsigned direction_bit) {
  if ((direction(h) & direction_bit) == 0 || watched_fd(h) == -1)
    return set_error(EINVAL, "%s event is invalid in state %s", event, state_name(h.state));
  return run(h);
}

}  // namespace

int unlocked_aio_notify_read(nbd_handle& h) { return notify(h, "read", LIBNBD_AIO_DIRECTION_READ); }

int unlocked_aio_notify_write(nbd_handle& h) { return notify(h, "write", LIBNBD_AIO_DIRECTION_WRITE); }

}  // namespace nbd
