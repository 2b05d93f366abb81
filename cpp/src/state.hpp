// state.hpp: the handle's connection states and the public groups the API checks against.
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

// Where the state machine is.  Each state belongs to one public group; the handlers live in
// state/ grouped by protocol phase (connect.cpp, handshake.cpp, and reply.cpp for the reader
// side of the connected states).
enum class State : uint8_t {
  Created,
  // Connecting: the socket, then the handshake up to the end of option haggling.
  ConnectWait,         // non-blocking connect() in progress
  RecvGreeting,        // "NBDMAGIC" and the next 8 bytes
  RecvOldstyle,        // rest of an oldstyle greeting
  RecvHandshakeFlags,  // newstyle: the server's 16-bit flags
  OptSend,             // an option request (or the client flags) is being sent
  OptRecvHeader,       // the 20-byte option reply header
  OptRecvPayload,      // the option reply's payload
  ExportNameReply,     // the reply to NBD_OPT_EXPORT_NAME
  TlsHandshake,        // the TLS handshake after NBD_OPT_STARTTLS
  // Opt mode: waiting for the caller's next nbd_opt_* call.
  Negotiating,
  // Transmission.
  Ready,       // no command in flight
  Processing,  // commands in flight
  Reconnect,   // the connection was lost: waiting for the next attempt to connect again
  Closed,
  Dead,
};

// The reader side of the connected states: where in a reply we are.
enum class ReplyState : uint8_t {
  Header,       // the first 16 bytes of the next reply (a simple reply header)
  Structured,   // the last 4 bytes of a structured reply header
  ReadData,     // payload straight into the caller's read buffer
  Payload,      // a chunk payload into h.payload
};

uint32_t state_group(State s);
const char* state_name(State s);
const char* state_summary(State s);  // "NAME: description"

}  // namespace nbd
