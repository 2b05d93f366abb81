// machine.cpp: the loop that runs state handlers, dispatch and direction (derived from NBD_STATES),
// polling, and the two ways a connection ends.
#include "state/machine.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cinttypes>
#include <cstring>

#include "debug.hpp"
#include "error.hpp"
#include "transport/tls.hpp"

namespace nbd {
namespace {

constexpr unsigned kNone = 0;
constexpr unsigned kRead = LIBNBD_AIO_DIRECTION_READ;
constexpr unsigned kWrite = LIBNBD_AIO_DIRECTION_WRITE;

unsigned tls_handshake_direction(const nbd_handle& h) {
  return h.sock->tls()->wants_write() ? kWrite : kRead;
}

unsigned transmit_direction(const nbd_handle& h) {
  // Replies may arrive at any time; writing matters only while output is queued, or while
  // answered commands wait for the writer thread to release their payloads (a moment: the
  // server has their data), which its wake-up reports to nbd_poll but not to an event loop of
  // the application's, which then comes back as soon as the socket is writable.
  return kRead | (sends_pending(h) || !h.unreleased.empty() ? kWrite : kNone);
}

// What a state waits for from the socket: fixed, or asked of the handle.
struct Direction {
  explicit constexpr Direction(unsigned fixed_direction) : fixed(fixed_direction) {}
  explicit constexpr Direction(unsigned (*ask_direction)(const nbd_handle&)) : ask(ask_direction) {}
  unsigned fixed = 0;
  unsigned (*ask)(const nbd_handle&) = nullptr;
};

// How each state runs, in the order of enum class State.
struct StateRun {
  Transition (*handler)(nbd_handle&);
  Direction direction;
};

constexpr StateRun kRuns[] = {
#define NBD_STATE_RUN(state, group, direction, handler, name, description) {&handler, Direction(direction)},
    NBD_STATES(NBD_STATE_RUN)
#undef NBD_STATE_RUN
};

const StateRun& run_of(State s) { return kRuns[static_cast<unsigned>(s)]; }

// Completes every command still in flight with err (they will get no reply now), and the
// option in flight with option_err.
void fail_all_commands(nbd_handle& h, int err, int option_err) {
  abandon_user_option(h, option_err);
  while (Command* c = h.cmds.any()) {
    // An answered command waiting for the writer thread to release its payload has had its
    // reply: it keeps the server's verdict.
    if (c->error == 0 && !c->answered)
      c->error = err;
    complete_command(h, c->cookie);
  }
}

// Whether the handle has a connection that kill_connection would end.
bool has_connection(const nbd_handle& h) {
  return (state_group(h.state) & (kConnecting | kNegotiating | kConnected)) != 0;
}

// A failure the concurrent writer's thread reported ends the connection at the handle's next
// step.  Returns -1 (error recorded) if it did.
int check_writer(nbd_handle& h) {
  const int err = h.writer_signal.error();
  if (err == 0 || !has_connection(h))
    return 0;
  set_error(err, "concurrent writer: sending to the server failed");
  kill_connection(h, err);
  return -1;
}

// What a connection that ended (closed or dead) leaves behind: nothing to send or read, every
// command in flight completed with err and the option in flight with option_err.
void end_connection(nbd_handle& h, int err, int option_err) {
  // The sender takes the socket: closed, or shut down and kept while a writer's thread may
  // still hold its descriptor.  Nothing is sent from the queue's memory afterwards.
  end_reconnect(h);
  drop_transport(h);
  h.unreleased.clear();  // their commands complete below
  fail_all_commands(h, err, option_err);
  h.release_idle_memory();
}

}  // namespace

int give_up(nbd_handle& h, int err, bool keep_connection) {
  if (err == ETIMEDOUT)
    set_error(err, "timed out after %" PRIu64 " ms (nbd_set_timeout)", h.timeout_ms);
  else
    set_error(err, "interrupted by nbd_interrupt");
  const bool kept = keep_connection && public_group(h) == kConnected;
  if (!kept && has_connection(h))
    kill_connection(h, err);
  return -1;
}

int lost_connection_errno(const nbd_handle& h) {
  // The error recorded says why the connection ended; the commands in flight simply lost it,
  // unless the concurrent writer failed, whose errno they then carry.
  return errno_or(h.writer_signal.error(), ENOTCONN);
}

int connection_failed(nbd_handle& h) {
  // A writer's failure shuts the socket down, so the reader may see that first: the
  // failure is what gets reported.
  if (check_writer(h) == -1)
    return -1;
  if (h.reconnect.active ? retry_reconnect(h)
                         : state_group(h.state) == kConnected && begin_reconnect(h, last_errno()))
    return 0;
  kill_connection(h, h.reconnect.refused ? ESTALE : lost_connection_errno(h));
  return -1;
}

int run(nbd_handle& h) {
  if (check_writer(h) == -1)
    return -1;
  if (!h.unreleased.empty())
    complete_released(h);
  if (h.reconnect.active && reconnect_overdue(h) && connection_failed(h) == -1)
    return -1;
  for (;;) {
    const State before = h.state;
    Transition t = run_of(h.state).handler(h);
    // The handshake of a reconnection has brought the handle back to transmission.
    if (h.reconnect.active && t != Transition::Fail && h.state == State::Ready)
      t = finish_reconnect(h);
    switch (t) {
      case Transition::Next:
        continue;
      case Transition::Block:
        if (h.state != before)
          continue;
        update_connected_state(h);
        return 0;
      case Transition::Fail:
        if (connection_failed(h) == -1)
          return -1;
        continue;
    }
  }
}

int poll_once(nbd_handle& h, int timeout_ms, int extra_fd) {
  const unsigned dir = direction(h);
  const int fd = watched_fd(h);
  if (dir == 0 || fd == -1)
    return set_error(EINVAL, "nothing to poll for in state %s", state_name(h.state));
  if (h.reconnect.active)
    timeout_ms = reconnect_poll_ms(h, timeout_ms);
  // Besides the socket: the concurrent writer's signal, which reports its thread's failure,
  // and the caller's descriptor of nbd_poll2.
  struct pollfd pfd[4] = {};
  const int wake = h.writer_signal.fd();
  // Answered commands waiting for the writer thread (see direction) are reported by its
  // wake-up here, so the socket's POLLOUT need not stand in for it.
  const bool write = (dir & LIBNBD_AIO_DIRECTION_WRITE) != 0 &&
                     (sends_pending(h) || h.unreleased.empty() || wake == -1);
  pfd[0].fd = fd;
  pfd[0].events = static_cast<short>(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) | (write ? POLLOUT : 0));
  nfds_t n = 1;
  if (wake != -1)
    pfd[n++] = {wake, POLLIN, 0};
  if (extra_fd >= 0)
    pfd[n++] = {extra_fd, POLLIN, 0};
  // nbd_interrupt of the blocking call in progress (-1 outside one): its caller looks.
  const int interrupt = h.interrupt.fd();
  if (interrupt != -1)
    pfd[n++] = {interrupt, POLLIN, 0};
  int r;
  do
    r = ::poll(pfd, n, timeout_ms);
  while (r == -1 && errno == EINTR);
  if (r == -1)
    return set_error(errno, "poll");
  if (r == 0)
    return 0;
  if (wake != -1 && pfd[1].revents != 0)
    h.writer_signal.clear();  // a failure stays recorded; a release has been seen
  // Only the caller's descriptor or an interrupt woke us: the handle has nothing to do
  // (libnbd returns 1 too).
  if (pfd[0].revents == 0 && (wake == -1 || pfd[1].revents == 0))
    return 1;
  return run(h) == -1 ? -1 : 1;
}

Transition h_wait_for_caller(nbd_handle&) { return Transition::Block; }

unsigned direction(const nbd_handle& h) {
  const Direction& d = run_of(h.state).direction;
  return d.ask != nullptr ? d.ask(h) : d.fixed;
}

void drop_transport(nbd_handle& h) {
  if (h.sock)
    h.sender->connection_over(std::move(h.sock));
  h.out.clear();
  h.send_full = false;
  h.in_pos = h.in_end = 0;  // bytes read ahead are moot now
  h.inbuf.release();
}

int watched_fd(const nbd_handle& h) {
  if (h.sock)
    return h.sock->fd();
  return h.state == State::Reconnect ? h.reconnect.timer.get() : -1;
}

void kill_connection(nbd_handle& h, int err) {
  if (h.debug_enabled())
    debug(h, "connection dead: %s", std::strerror(err));
  h.state = State::Dead;
  // An option in flight gets the error that ended the connection, as in libnbd (ECONNRESET,
  // say, where commands get ENOTCONN).
  end_connection(h, err, errno_or(last_errno(), err));
}

void close_connection(nbd_handle& h) {
  h.state = State::Closed;
  end_connection(h, ENOTCONN, ENOTCONN);
}

}  // namespace nbd

void nbd_handle::publish_state() {
  public_state.store(reconnect.active ? nbd::State::Reconnect : state, std::memory_order_release);
  public_direction.store(nbd::direction(*this), std::memory_order_release);
}
