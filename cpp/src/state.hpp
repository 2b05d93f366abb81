// state.hpp: the connection states, each declared once in NBD_STATES, and the public groups
// the API checks against.
#pragma once

#include <cstdint>

namespace nbd {

// Public state groups, as bits matching the `states:` masks generated from api.yaml.
enum StateBit : uint32_t {
  kCreated = 1,
  kConnecting = 2,
  kNegotiating = 4,
  kConnected = 8,
  kClosed = 16,
  kDead = 32,
};

// Every state of the machine, in one place, one entry each:
//   NBD_STATE(enumerator, group, direction, handler, NAME, description)
//   enumerator   its State below
//   group        its public group (a StateBit)
//   direction    what it waits for from the socket: kNone, kRead, kWrite, or a function of the
//                handle where that depends on the connection (state/machine.cpp)
//   handler      the function that runs one step of it (h_<group>_<state>, in state/ by protocol
//                phase); the states that only wait for the caller's next call run
//                h_wait_for_caller, which blocks
//   NAME, description  what nbd_connection_state returns, as "NAME: description"
// Derived from it: enum class State, the names and groups (state.cpp), the handlers'
// declarations (state/machine.hpp), dispatch and direction (state/machine.cpp).  So no state
// can lack one of them: a missing column is a wrong number of macro arguments, an empty one
// does not compile or fails a static_assert (state.cpp), and a handler named here but not
// written fails to link.  A macro, because an enum cannot be derived from a constexpr table.
//
// The groups in order: Created; Connecting (the socket, then the handshake up to the end of
// option haggling); Negotiating (opt mode: waiting for the caller's next nbd_opt_* call);
// Connected (transmission: Ready with no command in flight, Processing with some, both stepped
// by h_transmit, whose reader has the sub-states of ReplyState below; and Reconnect, waiting
// for the next attempt to connect again after the connection was lost, whose read direction is
// the timer of that attempt; state/reconnect.cpp); Closed; Dead.
#define NBD_STATES(NBD_STATE)                                                                      \
  NBD_STATE(Created, kCreated, kNone, h_wait_for_caller,                                           \
            "START", "the handle is new and not connected")                                        \
  NBD_STATE(ConnectWait, kConnecting, kWrite, h_connect_wait,                                      \
            "CONNECT", "connecting to the server")                                                 \
  NBD_STATE(RecvGreeting, kConnecting, kRead, h_magic_recv_greeting,                               \
            "RECV_GREETING", "receiving the server's greeting")                                    \
  NBD_STATE(RecvOldstyle, kConnecting, kRead, h_magic_recv_oldstyle,                               \
            "RECV_OLDSTYLE", "receiving an oldstyle handshake")                                    \
  NBD_STATE(RecvHandshakeFlags, kConnecting, kRead, h_newstyle_recv_flags,                         \
            "RECV_HANDSHAKE_FLAGS", "receiving the newstyle flags")                                \
  NBD_STATE(OptSend, kConnecting, kWrite, h_newstyle_opt_send,                                     \
            "OPT_SEND", "sending a handshake option")                                              \
  NBD_STATE(OptRecvHeader, kConnecting, kRead, h_newstyle_opt_recv_header,                         \
            "OPT_RECV_HEADER", "receiving an option reply")                                        \
  NBD_STATE(OptRecvPayload, kConnecting, kRead, h_newstyle_opt_recv_payload,                       \
            "OPT_RECV_PAYLOAD", "receiving an option reply's payload")                             \
  NBD_STATE(ExportNameReply, kConnecting, kRead, h_newstyle_export_name_reply,                     \
            "EXPORT_NAME_REPLY", "receiving the export's size and flags")                          \
  NBD_STATE(TlsHandshake, kConnecting, tls_handshake_direction, h_tls_handshake,                   \
            "TLS_HANDSHAKE", "setting up TLS with the server")                                     \
  NBD_STATE(Negotiating, kNegotiating, kNone, h_wait_for_caller,                                   \
            "NEGOTIATING", "waiting for the next option (opt mode)")                               \
  NBD_STATE(Ready, kConnected, transmit_direction, h_transmit,                                     \
            "READY", "connected, ready for commands (replies may be awaited)")                     \
  NBD_STATE(Processing, kConnected, transmit_direction, h_transmit,                                \
            "PROCESSING", "connected, in the middle of sending or receiving")                      \
  NBD_STATE(Reconnect, kConnected, kRead, h_reconnect,                                             \
            "RECONNECT", "the connection was lost; connecting to the server again")               \
  NBD_STATE(Closed, kClosed, kNone, h_wait_for_caller,                                             \
            "CLOSED", "the connection was shut down")                                              \
  NBD_STATE(Dead, kDead, kNone, h_wait_for_caller,                                                 \
            "DEAD", "the connection failed")

// Where the state machine is.
enum class State : uint8_t {
#define NBD_STATE_ENUMERATOR(state, group, direction, handler, name, description) state,
  NBD_STATES(NBD_STATE_ENUMERATOR)
#undef NBD_STATE_ENUMERATOR
};

// The sub-states of the connected states' reader (Ready and Processing): where in a reply it
// is.  reply_step (state/reply.cpp) steps through them; the public state does not show them.
enum class ReplyState : uint8_t {
  Header,      // the first 16 bytes of the next reply (a simple reply header)
  Structured,  // the last 4 bytes of a structured reply header
  ReadData,    // payload straight into the caller's read buffer
  Payload,     // a chunk payload into h.payload
};

uint32_t state_group(State s);
const char* state_name(State s);
const char* state_summary(State s);  // "NAME: description"

}  // namespace nbd
