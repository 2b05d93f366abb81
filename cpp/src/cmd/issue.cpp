// issue.cpp: creating, completing and retiring commands (proto.md "Request message").
#include "cmd/issue.hpp"

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <vector>

#include "debug.hpp"
#include "error.hpp"
#include "protocol.hpp"
#include "state/machine.hpp"

namespace nbd {
namespace {

using namespace nbd::proto;

// No request may move more data than this (a limit every server honours; libnbd's too).
constexpr uint64_t kMaxRequest = 64 * 1024 * 1024;

// Bytes of a filtered block status payload: the 64-bit effect length and 32-bit ids.
uint64_t filter_payload_size(size_t nids) { return BlockStatusFilter::wire_size(nids); }

const char* command_name(uint16_t type) {
  switch (type) {
    case kCmdRead:
      return "read";
    case kCmdWrite:
      return "write";
    case kCmdFlush:
      return "flush";
    case kCmdTrim:
      return "trim";
    case kCmdCache:
      return "cache";
    case kCmdWriteZeroes:
      return "zero";
    case kCmdBlockStatus:
      return "block-status";
    default:
      return "command";
  }
}

// The server flag a command type needs, or 0.
uint16_t needed_flag(uint16_t type) {
  switch (type) {
    case kCmdFlush:
      return kFlagSendFlush;
    case kCmdTrim:
      return kFlagSendTrim;
    case kCmdCache:
      return kFlagSendCache;
    case kCmdWriteZeroes:
      return kFlagSendWriteZeroes;
    default:
      return 0;
  }
}

// Requests that change data: past the end they fail with ENOSPC, as a write to a full disk
// would; reads fail with EINVAL.
bool writes_data(uint16_t type) {
  return type == kCmdWrite || type == kCmdTrim || type == kCmdWriteZeroes;
}

// NBD_CMD_FLAG_PAYLOAD_LEN follows what was negotiated (LIBNBD_STRICT_AUTO_FLAG): a write
// carries it exactly when extended headers are in use, a filtered block status always (and
// needs extended headers for it).
int auto_payload_flag(nbd_handle& h, CommandSpec& s) {
  if ((h.strict & LIBNBD_STRICT_AUTO_FLAG) == 0)
    return 0;
  if (s.type == kCmdWrite) {
    s.flags = h.extended_headers ? s.flags | LIBNBD_CMD_FLAG_PAYLOAD_LEN
                                 : s.flags & ~uint32_t{LIBNBD_CMD_FLAG_PAYLOAD_LEN};
  } else if (s.contexts != nullptr) {
    if (!h.extended_headers)
      return set_error(ENOTSUP, "server does not support extended headers");
    s.flags |= LIBNBD_CMD_FLAG_PAYLOAD_LEN;
  }
  return 0;
}

// The ids of the contexts a filtered block status names; each must have been negotiated.
int filter_ids(nbd_handle& h, char** contexts, std::vector<uint32_t>& ids) {
  for (char** name = contexts; *name != nullptr; ++name) {
    const auto* found = h.meta_valid ? h.meta_context_named(*name) : nullptr;
    if (found == nullptr)
      return set_error(EINVAL, "context %s not negotiated", *name);
    ids.push_back(found->id);
  }
  return 0;
}

// The checks of a request against its limits and (in strict mode) against what the server said
// it supports, in libnbd's order, so each mistake gets the errno libnbd gives it.  Sets the
// automatic flags and, for a filtered block status, the context ids of its payload.
int check_request(nbd_handle& h, CommandSpec& s, std::vector<uint32_t>& ids) {
  const char* name = command_name(s.type);
  const uint32_t strict = h.strict;
  // Block status needs negotiated contexts before anything else is looked at.
  if ((strict & LIBNBD_STRICT_COMMANDS) != 0 && s.type == kCmdBlockStatus) {
    if (!h.structured_replies)
      return set_error(ENOTSUP, "server does not support structured replies");
    if (!h.meta_valid || h.meta_contexts.empty())
      return set_error(ENOTSUP, "no metadata context was negotiated: request one with "
                                "nbd_add_meta_context before connecting (or the server lacks them)");
  }
  if (auto_payload_flag(h, s) == -1)
    return -1;
  const bool payload_len = (s.flags & LIBNBD_CMD_FLAG_PAYLOAD_LEN) != 0;
  // What the server supports comes first, then the disconnect (libnbd's order): a write to a
  // read-only export fails with EPERM even after nbd_aio_disconnect.  Flags the server did
  // not advertise count as unsupported commands (LIBNBD_STRICT_COMMANDS, as in libnbd);
  // LIBNBD_STRICT_FLAGS is about flags unknown to the call, checked by the generated layer.
  if ((strict & LIBNBD_STRICT_COMMANDS) != 0) {
    const uint16_t need = needed_flag(s.type);
    if (need != 0 && (h.eflags & need) == 0)
      return set_error(EINVAL, "server does not support %s operations", name);
    if (writes_data(s.type) && (h.eflags & kFlagReadOnly) != 0)
      return set_error(EPERM, "server does not support %s operations", name);
    if ((s.flags & LIBNBD_CMD_FLAG_FUA) != 0 && (h.eflags & kFlagSendFua) == 0)
      return set_error(EINVAL, "server does not support the FUA flag");
    if ((s.flags & LIBNBD_CMD_FLAG_DF) != 0 && (h.eflags & kFlagSendDf) == 0)
      return set_error(EINVAL, "server does not support the DF flag");
    if ((s.flags & LIBNBD_CMD_FLAG_FAST_ZERO) != 0 && (h.eflags & kFlagSendFastZero) == 0)
      return set_error(EINVAL, "server does not support the FAST_ZERO flag");
    if (s.contexts != nullptr && (h.eflags & kFlagBlockStatusPayload) == 0)
      return set_error(EINVAL, "server does not support the block status payload flag");
    if ((s.type == kCmdWrite && payload_len != h.extended_headers) ||
        (s.contexts != nullptr && !payload_len))
      return set_error(EINVAL, "incorrect setting for PAYLOAD_LEN flag");
  }
  if (s.contexts != nullptr && filter_ids(h, s.contexts, ids) == -1)
    return -1;
  if (h.disconnect_requested)
    return set_error(EINVAL, "cannot request more commands after NBD_CMD_DISC");
  if ((strict & LIBNBD_STRICT_ZERO_SIZE) != 0 && s.count == 0 && s.type != kCmdFlush)
    return set_error(EINVAL, "count cannot be 0");
  if ((strict & LIBNBD_STRICT_BOUNDS) != 0 && s.type != kCmdFlush &&
      (s.offset > h.exportsize || s.count > h.exportsize - s.offset))
    return set_error(writes_data(s.type) ? ENOSPC : EINVAL, "request out of bounds");
  if ((strict & LIBNBD_STRICT_ALIGN) != 0 && h.block_minimum > 1 && s.type != kCmdFlush &&
      (s.offset % h.block_minimum != 0 || s.count % h.block_minimum != 0))
    return set_error(EINVAL, "request is unaligned");
  // The size limits: no server takes more than 64 MiB of data in one request, nor (with
  // LIBNBD_STRICT_PAYLOAD) a payload over its own maximum; without extended headers the
  // wire has 32 bits for the count.
  const bool strict_payload = (strict & LIBNBD_STRICT_PAYLOAD) != 0;
  if (s.type == kCmdWrite && strict_payload && s.count > h.payload_maximum())
    return set_error(ERANGE, "request too large: maximum payload size is %" PRIu32, h.payload_maximum());
  if ((s.type == kCmdRead || s.type == kCmdWrite) && s.count > kMaxRequest)
    return set_error(ERANGE, "request too large: maximum request size is %" PRIu64, kMaxRequest);
  if (s.contexts != nullptr) {
    const uint64_t bytes = filter_payload_size(ids.size());
    if (bytes > kMaxRequest || (strict_payload && bytes > h.payload_maximum()))
      return set_error(ERANGE, "filter set too large");
  } else if (!h.extended_headers && s.count > UINT32_MAX) {
    return set_error(ERANGE, "request too large: %s requests are limited to 32 bits", name);
  }
  return 0;
}

// Queues a request header (proto.md "Request message"): compact, or extended once extended
// headers were negotiated; then length is the payload's when flags has PAYLOAD_LEN.
void append_request(nbd_handle& h, uint16_t flags, uint16_t type, uint64_t cookie, uint64_t offset,
                    uint64_t length) {
  unsigned char req[kExtendedRequestSize];
  const size_t size = RequestHeader{flags, type, cookie, offset, length}.encode(req, h.extended_headers);
  h.out.append_copy(req, size);
  ++h.chunks_sent;
}

// The payload of a filtered block status: the effect length, then the context ids.
void append_filter(nbd_handle& h, uint64_t count, const std::vector<uint32_t>& ids) {
  unsigned char b[BlockStatusFilter::kSize];
  BlockStatusFilter::encode_length(b, count);
  h.out.append_copy(b, BlockStatusFilter::kSize);
  for (const uint32_t id : ids) {
    BlockStatusFilter::encode_id(b, id);
    h.out.append_copy(b, BlockStatusFilter::kIdSize);
  }
}

// While the handle reconnects, what it knows of the export is what the lost connection had
// (h.reconnect.before), for the checks of the commands issued meanwhile: swapped in for the
// scope of this object.  Costs a test otherwise.
class FactsOfLostConnection {
 public:
  explicit FactsOfLostConnection(nbd_handle& h) : h_(h), swapped_(h.reconnect.active) {
    if (swapped_) [[unlikely]]
      swap_export_facts(h_, h_.reconnect.before);
  }
  ~FactsOfLostConnection() {
    if (swapped_) [[unlikely]]
      swap_export_facts(h_, h_.reconnect.before);
  }
  FactsOfLostConnection(const FactsOfLostConnection&) = delete;
  FactsOfLostConnection& operator=(const FactsOfLostConnection&) = delete;

 private:
  nbd_handle& h_;
  bool swapped_;
};

// Queues c's request and payload (queue_request), inlined into issue_command.
[[gnu::always_inline]] inline void encode_request(nbd_handle& h, Command& c) {
  c.wire_offset = h.out.end_offset();
  // With PAYLOAD_LEN (extended headers only) the length is the payload's.
  const bool payload_len = (c.flags & kCmdFlagPayloadLen) != 0 && h.extended_headers;
  uint64_t length = c.count;
  if (payload_len && c.filtered)
    length = filter_payload_size(c.filter_ids.size());
  append_request(h, c.flags, c.type, c.cookie, c.offset, length);
  if (c.type == kCmdWrite)
    h.out.append_ref(c.data, c.count);
  else if (c.filtered)
    append_filter(h, c.count, c.filter_ids);
  c.wire_end = h.out.end_offset();
}

}  // namespace

void queue_request(nbd_handle& h, Command& c) { encode_request(h, c); }

void update_connected_state(nbd_handle& h) {
  // As in libnbd, "processing" means in the middle of sending requests or receiving a reply;
  // commands merely waiting for their replies leave the handle ready.
  if (state_group(h.state) != kConnected || h.reconnect.active)
    return;
  const bool mid_reply = !at_reply_start(h);
  h.state = sends_pending(h) || mid_reply ? State::Processing : State::Ready;
}

int64_t issue_command(nbd_handle& h, CommandSpec spec, const CommandClosures& closures) {
  // A filtered block status's context ids go straight into the command.
  std::unique_ptr<Command> cmd = h.cmd_pool.get();
  Command& c = *cmd;
  {
    FactsOfLostConnection facts(h);
    if (check_request(h, spec, c.filter_ids) == -1) {
      h.cmd_pool.put(std::move(cmd));
      return -1;
    }
  }
  c.cookie = h.next_cookie++;
  c.type = spec.type;
  c.flags = static_cast<uint16_t>(spec.flags);
  c.offset = spec.offset;
  c.count = spec.count;
  c.data = spec.data;
  c.zero_on_failure = c.type == kCmdRead && h.pread_initialize && c.data != nullptr;
  c.covered.reset(c.offset);
  if (closures.completion != nullptr)
    c.completion = std::move(*closures.completion);
  if (closures.chunk != nullptr)
    c.chunk = std::move(*closures.chunk);
  if (closures.extent != nullptr)
    c.extent = std::move(*closures.extent);
  if (closures.extent64 != nullptr)
    c.extent64 = std::move(*closures.extent64);

  c.filtered = spec.contexts != nullptr;
  // While the handle reconnects the request waits: the reconnection sends every command.
  if (!h.reconnect.active) [[likely]]
    encode_request(h, c);
  const auto cookie = static_cast<int64_t>(c.cookie);
  h.cmds.insert(std::move(cmd));  // c may be retired (and recycled) from here on
  // Send now, as far as the socket takes it; replies wait for the caller's next poll or
  // notify (as in libnbd, no callback runs inside an aio call).  A connection that dies here
  // completes the command with the error, which the caller collects through the cookie.
  send_queued(h);
  return cookie;
}

bool queue_disconnect_if_idle(nbd_handle& h) {
  if (!h.disconnect_requested || h.disconnect_queued || !h.cmds.empty())
    return false;
  append_request(h, static_cast<uint16_t>(h.disconnect_flags), kCmdDisc, h.next_cookie++, 0, 0);
  h.disconnect_queued = true;
  return true;
}

void complete_command(nbd_handle& h, uint64_t cookie) {
  std::unique_ptr<Command> cmd = h.cmds.take(cookie);
  if (!cmd)
    return;
  if (h.rcmd == cmd.get())
    h.rcmd = nullptr;
  if (h.debug_enabled())
    debug(h, "command %" PRIu64 " (%s) complete: %s", cookie, command_name(cmd->type),
          cmd->error != 0 ? std::strerror(cmd->error) : "success");
  if (cmd->abandoned) {  // nobody waits for it: it retires now
    h.cmd_pool.put(std::move(cmd));
    if (h.cmds.empty())
      h.release_idle_memory();
    return;
  }
  if (cmd->error != 0 && cmd->zero_on_failure)
    std::memset(cmd->data, 0, cmd->count);  // no stale memory is left in a failed read's buffer
  // Every closure of the command (completion, chunk, extent) lives until the command is
  // retired: by nbd_aio_command_completed, by the completion returning 1, or at close.
  if (cmd->completion.has_callback()) {
    int err = cmd->error;
    const int r = cmd->completion(&err);
    if (r == -1 && err != 0)
      cmd->error = err;  // replaces the error recorded so far, as in libnbd
    if (r == 1)  // retired by its callback: its closures are freed here
      h.cmd_pool.put(std::move(cmd));
  }
  if (cmd)
    h.cmds_done.push_back(std::move(cmd));
  if (h.cmds.empty())
    h.release_idle_memory();
}

void command_answered(nbd_handle& h, Command& c) {
  if (h.sender->released(c.wire_end)) {
    complete_command(h, c.cookie);
    return;
  }
  // The ready-made writer's thread still holds the payload (the server answered between
  // its send and its report of it): the caller must not get the buffer back yet.
  c.answered = true;
  if (h.rcmd == &c)
    h.rcmd = nullptr;
  h.unreleased.push_back(c.cookie);
  h.sender->wake_when_released(c.wire_end);
}

void complete_released(nbd_handle& h) {
  // Completion callbacks may issue commands but never complete others, so the list only
  // grows meanwhile: walk it by index.
  size_t kept = 0;
  for (size_t i = 0; i < h.unreleased.size(); ++i) {
    const uint64_t cookie = h.unreleased[i];
    const Command* c = h.cmds.find(cookie);
    if (c != nullptr && h.sender->released(c->wire_end))
      complete_command(h, cookie);
    else if (c != nullptr)
      h.unreleased[kept++] = cookie;
  }
  h.unreleased.resize(kept);
}

namespace {

// The synchronous call waiting for c gave up (err: ETIMEDOUT or ECANCELED) with the
// connection still up: c stays in flight, for the protocol's sake, but nothing of the
// caller's is used again.
void abandon_command(nbd_handle& h, Command& c, int err) {
  c.abandoned = true;
  c.free_closures();  // freed now, never called
  if (h.reconnect.active) {
    // Not sent on any connection now, so it need not be: it retires at once.
    complete_command(h, c.cookie);
    return;
  }
  if (c.type == kCmdRead && c.count > 0) {
    // The reply's data goes to memory of the command's own, also where it is arriving now.
    c.discard = std::make_unique_for_overwrite<unsigned char[]>(c.count);
    auto* old = static_cast<unsigned char*>(c.data);
    if (h.rcmd == &c && h.rbuf >= old && h.rbuf <= old + c.count)
      h.rbuf = c.discard.get() + (h.rbuf - old);
    c.data = c.discard.get();
  }
  if (c.type == kCmdWrite && c.count > 0) {
    // The payload still queued is copied; one a writer thread is sending cannot be taken
    // back, so the connection ends, which waits for the thread to let go of it.
    if (h.out.sent_offset() < c.wire_end)
      h.out.copy_referenced(c.wire_offset, c.wire_end);
    if (!h.sender->released(c.wire_end))
      kill_connection(h, err);
  }
}

}  // namespace

int wait_for_command(nbd_handle& h, int64_t cookie) {
  const auto id = static_cast<uint64_t>(cookie);
  if (wait_until(h, [id](nbd_handle& hh) { return hh.cmds.find(id) == nullptr; }, true) == -1) {
    // Still in flight: the call timed out or was interrupted.
    if (Command* c = h.cmds.find(id)) {
      abandon_command(h, *c, last_errno());
      return -1;
    }
    // The connection failed: its error (say "recv: Connection reset by peer") says more than
    // the command's ENOTCONN, so it stays the one reported.
    retire_command(h, id, false);
    return -1;
  }
  return retire_command(h, id) == -1 ? -1 : 0;
}

int retire_command(nbd_handle& h, uint64_t cookie, bool report) {
  std::unique_ptr<Command> cmd = h.cmds_done.take(cookie);
  if (!cmd)
    return 0;
  const int err = cmd->error;
  const char* what = command_name(cmd->type);
  h.cmd_pool.put(std::move(cmd));
  if (err != 0)
    return report ? set_error(err, "%s: command failed", what) : -1;
  return 1;
}

}  // namespace nbd
