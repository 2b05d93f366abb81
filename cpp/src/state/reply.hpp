// reply.hpp: what the reply reader's files share: reply.cpp (reply headers, read data, the
// connected states) and chunks.cpp (the payloads of the other structured chunks).
#pragma once

#include <cerrno>
#include <cstdint>

#include "state/machine.hpp"

namespace nbd {

// Records EPROTO with fmt, which names the reply's cookie once, and returns Fail.
Transition reply_protocol_error(const char* fmt, uint64_t cookie);

// Records the first error of a command.
inline void command_error(Command& c, int err) {
  if (c.error == 0)
    c.error = err;
}

// Is [off, off+len) inside the command's [offset, offset+count)?  Written to be free of
// wraparound near 2^64.
inline bool within(const Command& c, uint64_t off, uint64_t len) {
  return off >= c.offset && off - c.offset <= c.count && len <= c.count - (off - c.offset);
}

// Runs a chunk or extent callback, as libnbd does: for every chunk, even after an earlier
// one failed, with the command's error so far in *error; -1 from it fails the command with
// the errno it stored (EPROTO if none).  The errno is read only after the call returns.
template <class Callback, class... Args>
void run_callback(Command& c, const Callback& cb, Args... args) {
  int err = c.error;
  if (cb(args..., &err) == -1)
    command_error(c, err != 0 ? err : EPROTO);
}

// The current chunk has been read: the reader waits for the next reply header, and the
// command is answered if this was its last chunk (reply.cpp).
Transition finish_chunk(nbd_handle& h);

// A structured chunk other than data, whose payload sits in h.payload: hole, block status,
// error, or a type unknown to us (chunks.cpp).
Transition structured_payload(nbd_handle& h);

}  // namespace nbd
