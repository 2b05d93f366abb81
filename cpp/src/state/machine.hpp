// machine.hpp: driving the state machine, and the pieces its handlers share.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstdint>

#include "handle.hpp"

namespace nbd {

// What a state handler asks for next.
enum class Transition {
  Next,   // the state changed (or made progress): run the machine again
  Block,  // waiting for the socket
  Fail,   // the connection failed; the error is recorded
};

// Runs state handlers until one blocks.  Returns -1 (error recorded) if the connection died.
int run(nbd_handle& h);

// Sends what the connected states have queued, as far as the socket takes it, and reads
// nothing: issuing a command never runs another command's callbacks.  Returns -1 (error
// recorded, connection dead) if the socket failed.
int send_queued(nbd_handle& h);

// Blocks, polling the socket, until done(h) holds.  Fails (-1, error recorded) if the
// connection dies or closes first, or when the call runs out of time (ETIMEDOUT,
// nbd_set_timeout) or is interrupted (ECANCELED, nbd_interrupt).  Then a connection outside
// transmission cannot stay in step and is ended; in transmission it is too, unless
// keep_connection (a synchronous command, which abandons its command instead).
template <class Pred>
int wait_until(nbd_handle& h, Pred done, bool keep_connection = false);
// Records why a blocking call gives up (err: ETIMEDOUT or ECANCELED) and ends the connection
// as wait_until says.  Returns -1.
int give_up(nbd_handle& h, int err, bool keep_connection);
// -1 error, 0 timeout, 1 progress or extra_fd (>= 0, polled for POLLIN) readable.
int poll_once(nbd_handle& h, int timeout_ms, int extra_fd = -1);

// Whether the reader is between replies (nothing of the next one received yet).
bool at_reply_start(const nbd_handle& h);

// Whether queued bytes wait for the socket to take them.
inline bool sends_pending(const nbd_handle& h) { return !h.out.empty(); }

// LIBNBD_AIO_DIRECTION_* the handle waits for now (0: nothing).
unsigned direction(const nbd_handle& h);

// The errno for commands in flight when the connection fails: ENOTCONN, or the concurrent
// writer's error if that is what failed.
int lost_connection_errno(const nbd_handle& h);
// The connection failed (the error is recorded): a reconnection takes it from here, or the
// connection ends (kill_connection).  Returns -1 if it ended.
int connection_failed(nbd_handle& h);
// The connection's socket goes (Sender::connection_over takes it) and with it the bytes queued
// to send and those read ahead; the commands stay.
void drop_transport(nbd_handle& h);
// Moves to Dead: the socket is closed and every command in flight completes with err.
void kill_connection(nbd_handle& h, int err);
// Moves to Closed after a clean disconnect; commands still in flight complete with ENOTCONN.
void close_connection(nbd_handle& h);

// Makes the socket fd (connected, or connecting) the handle's transport, sending through the
// handle's sender.
void attach_socket(nbd_handle& h, int fd);

// Connecting (state/connect.cpp): to h.target, as the connect calls set it, from the start
// (a reconnection does the same), or to its next address.
Transition connect_target(nbd_handle& h);
Transition connect_next_address(nbd_handle& h);
// The address of the Unix socket at path, or -1 (error recorded: the path is too long).
int unix_address(const char* path, struct sockaddr_un& sun, socklen_t& len);

// Handshake entry points (state/greeting.cpp, the option driver state/options.cpp, and
// state/option_go.cpp, starttls.cpp) and transmission (state/reply.cpp).
Transition start_handshake(nbd_handle& h);
Transition start_options(nbd_handle& h);
// Whether the server speaks fixed newstyle (and we agreed to it): only then are options other
// than NBD_OPT_EXPORT_NAME understood.
bool fixed_newstyle(const nbd_handle& h);
// Starts an option the caller asked for in opt mode (its closures are already in h).
Transition begin_user_option(nbd_handle& h, uint32_t opt);
// Ends the caller's option when the connection ends under it: its completion runs with err,
// then its closures are freed (nothing waits for nbd_close).
void abandon_user_option(nbd_handle& h, int err);
void enter_transmission(nbd_handle& h);

// The state handlers, one per state of NBD_STATES (state.hpp), which names them: in
// state/connect.cpp, handshake.cpp and reply.cpp, and h_wait_for_caller in machine.cpp.
#define NBD_STATE_HANDLER(state, group, direction, handler, name, description) Transition handler(nbd_handle& h);
NBD_STATES(NBD_STATE_HANDLER)
#undef NBD_STATE_HANDLER

// Reconnection (state/reconnect.cpp), after a connection in transmission failed with err
// (nbd_set_reconnect_delay).  begin_reconnect starts one if it can: the commands stay, the
// connection goes, and the handle waits in State::Reconnect for its first attempt.
bool begin_reconnect(nbd_handle& h, int err);
// An attempt failed (the error is recorded): true if another is scheduled, false when the
// delay has passed (the error recorded then says so) or the export changed.
bool retry_reconnect(nbd_handle& h);
// The handshake of an attempt reached transmission: checks the export and sends the commands
// again (Next), or refuses it (Fail, ESTALE recorded).
Transition finish_reconnect(nbd_handle& h);
// The reconnection is over, whichever way: the handshake settings are the caller's again.
void end_reconnect(nbd_handle& h);
// Exchanges what h knows of the export with f: commands issued during a reconnection are
// checked against the export as the lost connection had it (h.reconnect.before).
void swap_export_facts(nbd_handle& h, ExportFacts& f);
// What poll may wait during a reconnection (at most timeout_ms, -1: no limit), and whether its
// delay has passed in the middle of an attempt.
int reconnect_poll_ms(const nbd_handle& h, int timeout_ms);
bool reconnect_overdue(const nbd_handle& h);
// The descriptor the handle waits on (nbd_aio_get_fd): the socket, the timer of the next
// attempt of a reconnection, or -1.
int watched_fd(const nbd_handle& h);

// Commands (cmd/issue.cpp).
// Queues c's request (and its payload) on h.out: when issued, and again after a reconnection.
void queue_request(nbd_handle& h, Command& c);
void complete_command(nbd_handle& h, uint64_t cookie);
// A reply has answered the command in full: it completes now, or once the sender no longer
// uses its write payload (h.unreleased).
void command_answered(nbd_handle& h, Command& c);
// Completes the commands of h.unreleased the sender has released since.
void complete_released(nbd_handle& h);
void update_connected_state(nbd_handle& h);

template <class Pred>
int wait_until(nbd_handle& h, Pred done, bool keep_connection) {
  InterruptScope interruptible(h.interrupt);
  if (!interruptible)
    return -1;
  const Deadline deadline(h.timeout_ms);
  for (;;) {
    if (run(h) == -1)
      return -1;
    if (done(h))
      return 0;
    if (h.interrupt.requested())
      return give_up(h, ECANCELED, keep_connection);
    if (deadline.passed())
      return give_up(h, ETIMEDOUT, keep_connection);
    if (poll_once(h, deadline.poll_ms()) == -1)
      return -1;
  }
}

}  // namespace nbd
