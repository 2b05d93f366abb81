// state.cpp: names and groups of the connection states.
#include "state.hpp"

namespace nbd {
namespace {

struct StateInfo {
  uint32_t group;
  const char* name;
  const char* summary;  // "NAME: description", as nbd_connection_state returns it
};

// In the order of enum class State.
constexpr StateInfo kStates[] = {
    {kCreated, "START", "START: the handle is new and not connected"},
    {kConnecting, "CONNECT", "CONNECT: connecting to the server"},
    {kConnecting, "RECV_GREETING", "RECV_GREETING: receiving the server's greeting"},
    {kConnecting, "RECV_OLDSTYLE", "RECV_OLDSTYLE: receiving an oldstyle handshake"},
    {kConnecting, "RECV_HANDSHAKE_FLAGS", "RECV_HANDSHAKE_FLAGS: receiving the newstyle flags"},
    {kConnecting, "OPT_SEND", "OPT_SEND: sending a handshake option"},
    {kConnecting, "OPT_RECV_HEADER", "OPT_RECV_HEADER: receiving an option reply"},
    {kConnecting, "OPT_RECV_PAYLOAD", "OPT_RECV_PAYLOAD: receiving an option reply's payload"},
    {kConnecting, "EXPORT_NAME_REPLY", "EXPORT_NAME_REPLY: receiving the export's size and flags"},
    {kConnecting, "TLS_HANDSHAKE", "TLS_HANDSHAKE: setting up TLS with the server"},
    {kNegotiating, "NEGOTIATING", "NEGOTIATING: waiting for the next option (opt mode)"},
    {kConnected, "READY", "READY: connected, ready for commands (replies may be awaited)"},
    {kConnected, "PROCESSING", "PROCESSING: connected, in the middle of sending or receiving"},
    {kConnected, "RECONNECT", "RECONNECT: the connection was lost; connecting to the server again"},
    {kClosed, "CLOSED", "CLOSED: the connection was shut down"},
    {kDead, "DEAD", "DEAD: the connection failed"},
};

const StateInfo& info(State s) { return kStates[static_cast<unsigned>(s)]; }

}  // namespace

uint32_t state_group(State s) { return info(s).group; }
const char* state_name(State s) { return info(s).name; }
const char* state_summary(State s) { return info(s).summary; }

}  // namespace nbd
