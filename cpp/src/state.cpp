// state.cpp: names and groups of the connection states.
#include "state.hpp"

namespace nbd {
namespace {

struct StateInfo {
  uint32_t group;
  const char* name;
  const char* summary;  // "NAME: description", as nbd_connection_state returns it
};

constexpr StateInfo kStates[] = {
    {kCreated, "CREATED", "CREATED: the handle is new and not connected"},
    {kConnecting, "CONNECTING", "CONNECTING: connecting to the server"},
    {kNegotiating, "NEGOTIATING", "NEGOTIATING: negotiating options with the server"},
    {kConnected, "READY", "READY: connected and idle, ready for commands"},
    {kConnected, "PROCESSING", "PROCESSING: connected, with commands in flight"},
    {kClosed, "CLOSED", "CLOSED: the connection was shut down"},
    {kDead, "DEAD", "DEAD: the connection failed"},
};

const StateInfo& info(State s) { return kStates[static_cast<unsigned>(s)]; }

}  // namespace

uint32_t state_group(State s) { return info(s).group; }
const char* state_name(State s) { return info(s).name; }
const char* state_summary(State s) { return info(s).summary; }

}  // namespace nbd
