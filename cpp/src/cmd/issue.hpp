// issue.hpp: creating, completing and retiring commands.
#pragma once

#include <cstdint>

#include "handle.hpp"

namespace nbd {

// The parts of a command the caller chooses.
struct CommandSpec {
  uint16_t type;
  uint32_t flags;  // LIBNBD_CMD_FLAG_*
  uint64_t offset;
  uint64_t count;
  void* data;      // read target or write source (kept valid by the caller until retired)
  // Block status only: the metadata contexts to answer for (nbd_block_status_filter), sent as
  // the request's payload; nullptr: all of them.
  char** contexts = nullptr;
};

// The callbacks a command takes, any of them null.
struct CommandClosures {
  Closure<nbd_completion_callback>* completion = nullptr;
  Closure<nbd_chunk_callback>* chunk = nullptr;
  Closure<nbd_extent_callback>* extent = nullptr;
  Closure<nbd_extent64_callback>* extent64 = nullptr;
};

// Checks the request against the server's limits (strict mode) and queues it.  Takes the
// closures it is given.  Returns the cookie, or -1 with the error recorded.
int64_t issue_command(nbd_handle& h, CommandSpec spec, const CommandClosures& closures);

// Queues NBD_CMD_DISC if it was requested and is still held back, and no command is in flight
// any more; returns whether it did.  NBD_CMD_DISC has no reply: the server hangs up after it.
bool queue_disconnect_if_idle(nbd_handle& h);

// Waits until cookie completes, then retires it: 0 on success, -1 with the command's error.
int wait_for_command(nbd_handle& h, int64_t cookie);

// Retires a completed command: 1 if it succeeded, -1 with its error recorded ("read: command
// failed: ...") unless report is false, 0 if cookie is not among the completed commands.
int retire_command(nbd_handle& h, uint64_t cookie, bool report = true);

}  // namespace nbd
