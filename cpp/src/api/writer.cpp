// writer.cpp: the concurrent writer calls: choosing the handle's sender (transport/sender.hpp)
// and reporting a writer's failure.
#include <cerrno>

#include "error.hpp"
#include "state/machine.hpp"
#include "unlocked.hpp"

namespace nbd {
namespace {

// Makes sender the handle's for good (one writer per handle: swapping senders under a live
// byte stream could reorder it).  Bytes already queued follow the earlier ones through it, so
// the stream stays in order however far the connection has got.
int use_writer(nbd_handle& h, std::unique_ptr<Sender> sender) {
  if (!sender)
    return -1;
  if (h.sock)
    h.sock->use_sender(*sender);
  h.sender = std::move(sender);
  h.has_writer = true;
  // Hand the writer what is queued now, so the handle stops waiting for POLLOUT at once.  A
  // failure here kills the connection, which the next call reports; the writer stays set.
  h.send_full = false;
  send_queued(h);
  return 0;
}

int check_no_writer(nbd_handle& h) {
  if (h.has_writer)
    return set_error(EINVAL, "concurrent writer was already set for this handle");
  // The writer's side is bound to one socket (the application writes to it): a handle that
  // would connect again cannot have one.
  if (h.reconnect_delay_ms != 0)
    return set_error(ENOTSUP, "a handle with a reconnect delay cannot have a concurrent writer: "
                              "set the delay to 0 first (nbd_set_reconnect_delay)");
  // A writer's failure must wake a thread sleeping in nbd_poll, which watches this too.
  return h.writer_signal.enable();
}

}  // namespace

int unlocked_set_concurrent_writer(nbd_handle& h, Closure<nbd_writer_callback>& writer) {
  if (check_no_writer(h) == -1)
    return -1;
  return use_writer(h, make_callback_sender(std::move(writer), h.writer_signal));
}

int unlocked_start_concurrent_writer(nbd_handle& h) {
  if (check_no_writer(h) == -1)
    return -1;
  return use_writer(h, start_thread_sender(h.writer_signal));
}

int unlocked_concurrent_writer_error(nbd_handle& h, int err) {
  if (err == 0)
    return set_error(EINVAL, "err must be non-zero");
  // No lock is held here (locked: false): only the first error is kept, atomically, and a
  // thread polling the handle is woken so the handle dies now rather than at its next call.
  h.writer_signal.fail(err);
  return 0;
}

}  // namespace nbd
