// command.hpp: one NBD command from issue to retirement.
#pragma once

#include <cstdint>

#include "closure.hpp"
#include "libnbd.h"

namespace nbd {

struct Command {
  uint64_t cookie = 0;
  uint16_t type = 0;   // proto::Cmd
  uint16_t flags = 0;  // as sent on the wire
  uint64_t offset = 0;
  uint64_t count = 0;
  void* data = nullptr;  // read target (user buffer, kept valid by the caller until retired)
  // Declared first so it is destroyed last: the completion's free runs after all others.
  Closure<nbd_completion_callback> completion;
  Closure<nbd_chunk_callback> chunk;
  Closure<nbd_extent_callback> extent;
  uint64_t wire_offset = 0;  // where its request starts in the handle's outgoing stream
  int error = 0;            // the first error seen; 0 while the command succeeds
  uint64_t data_seen = 0;   // bytes of a structured read covered by data or hole chunks
};

}  // namespace nbd
