// state.cpp: the names and groups of the connection states, derived from NBD_STATES.
#include "state.hpp"

#include <bit>

namespace nbd {
namespace {

// Every state has one public group, a name and a description.
#define NBD_STATE_CHECK(state, group, direction, handler, name, description)                   \
  static_assert(std::has_single_bit(static_cast<uint32_t>(group)) && sizeof(name) > 1 &&        \
                    sizeof(description) > 1,                                                    \
                "state " #state " needs one group, a name and a description");
NBD_STATES(NBD_STATE_CHECK)
#undef NBD_STATE_CHECK

struct StateInfo {
  uint32_t group;
  const char* name;
  const char* summary;  // "NAME: description", as nbd_connection_state returns it
};

constexpr StateInfo kStates[] = {
#define NBD_STATE_INFO(state, group, direction, handler, name, description) {group, name, name ": " description},
    NBD_STATES(NBD_STATE_INFO)
#undef NBD_STATE_INFO
};

const StateInfo& info(State s) { return kStates[static_cast<unsigned>(s)]; }

}  // namespace

uint32_t state_group(State s) { return info(s).group; }
const char* state_name(State s) { return info(s).name; }
const char* state_summary(State s) { return info(s).summary; }

}  // namespace nbd
