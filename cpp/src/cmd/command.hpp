// command.hpp: one NBD command from issue to retirement.
#pragma once

#include <cstdint>
#include <memory>
#include <iterator>
#include <map>
#include <vector>

#include "closure.hpp"
#include "libnbd.h"

namespace nbd {

// Which bytes of a structured read the server's data and hole chunks have covered.  Chunks
// normally arrive in order, which only moves prefix_end_; runs out of order wait in rest_.
class Coverage {
 public:
  void reset(uint64_t start) {
    prefix_end_ = start;
    rest_.clear();
  }

  // Adds [off, off + len) (already checked to lie inside the request); false if it overlaps
  // bytes covered before (proto.md: chunks of one reply must not overlap).
  bool add(uint64_t off, uint64_t len) {
    const uint64_t end = off + len;
    if (off < prefix_end_)
      return false;
    auto next = rest_.lower_bound(off);
    if (next != rest_.end() && next->first < end)
      return false;
    if (next != rest_.begin() && std::prev(next)->second > off)
      return false;
    if (off != prefix_end_) {
      rest_.emplace(off, end);
      return true;
    }
    prefix_end_ = end;
    while (!rest_.empty() && rest_.begin()->first == prefix_end_) {
      prefix_end_ = rest_.begin()->second;
      rest_.erase(rest_.begin());
    }
    return true;
  }

  // Whether everything up to end is covered.
  bool complete(uint64_t end) const { return prefix_end_ == end && rest_.empty(); }

 private:
  uint64_t prefix_end_ = 0;            // [start, prefix_end_) is covered
  std::map<uint64_t, uint64_t> rest_;  // covered runs further on: start -> end
};

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
  Closure<nbd_extent_callback> extent;      // block status with 32-bit extents
  Closure<nbd_extent64_callback> extent64;  // or with 64-bit ones
  // A filtered block status (nbd_block_status_filter): the ids of its contexts, sent as its
  // payload (kept to send it again after a reconnection).
  bool filtered = false;
  std::vector<uint32_t> filter_ids;
  uint64_t wire_offset = 0;  // where its request starts in the handle's outgoing stream
  uint64_t wire_end = 0;     // and where it (with a write's payload) ends
  int error = 0;            // the first error seen; 0 while the command succeeds
  // A read issued while pread_initialize was on: if it fails, its buffer is zeroed before the
  // completion runs.  (A read that succeeds has had every byte written by the server, so the
  // buffer is not zeroed up front, which would cost a pass over it per read.)
  bool zero_on_failure = false;
  // Its reply has come in full, but the sender still uses its write payload: it waits in
  // h.unreleased, and a further reply for its cookie is one for an unknown command.
  bool answered = false;
  // A synchronous call gave up on it (nbd_set_timeout, nbd_interrupt): its closures are gone,
  // a read's data goes to discard instead of the caller's buffer, and it retires by itself.
  bool abandoned = false;
  std::unique_ptr<unsigned char[]> discard;
  Coverage covered;         // a structured read's bytes covered by data or hole chunks
  Command* next = nullptr;  // the next in the CommandList holding it

  // Frees the closures now, the completion last, as destroying the command would.
  void free_closures() {
    extent64.reset();
    extent.reset();
    chunk.reset();
    completion.reset();
  }

  // Back to a new command's state, for reuse; the closures must already be empty.
  void clear() {
    cookie = 0;
    type = flags = 0;
    offset = count = 0;
    data = nullptr;
    filtered = false;
    filter_ids.clear();
    wire_offset = wire_end = 0;
    error = 0;
    zero_on_failure = false;
    answered = false;
    abandoned = false;
    discard.reset();
    covered.reset(0);
  }
};

}  // namespace nbd
