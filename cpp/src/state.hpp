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

// Where the state machine is.  The protocol core (cpp/src/state/) refines the middle of this
// list; every state belongs to exactly one public group.
enum class State : uint8_t {
  Created,
  Connecting,
  Negotiating,
  Ready,
  Processing,
  Closed,
  Dead,
};

uint32_t state_group(State s);
const char* state_name(State s);
const char* state_summary(State s);  // "NAME: description"

}  // namespace nbd
