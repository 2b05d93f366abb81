// issue.cpp: creating, completing and retiring commands (proto.md "Request message").
#include "cmd/issue.hpp"

#include <cerrno>
#include <cinttypes>
#include <cstring>

#include "debug.hpp"
#include "error.hpp"
#include "protocol.hpp"
#include "state/machine.hpp"

namespace nbd {
namespace {

using namespace nbd::proto;

// No request may move more data than this (a limit every server honours; libnbd's too).
constexpr uint64_t kMaxRequest = 64 * 1024 * 1024;

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

// The checks of a request against its limits and (in strict mode) against what the server said
// it supports, in libnbd's order, so each mistake gets the errno libnbd gives it.
int check_request(nbd_handle& h, const CommandSpec& s) {
  const char* name = command_name(s.type);
  const uint32_t strict = h.strict;
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
    if (s.type == kCmdBlockStatus && h.meta_contexts.empty())
      return set_error(ENOTSUP, "no metadata context was negotiated: request one with "
                                "nbd_add_meta_context before connecting (or the server lacks them)");
    if ((s.flags & LIBNBD_CMD_FLAG_FUA) != 0 && (h.eflags & kFlagSendFua) == 0)
      return set_error(EINVAL, "server does not support the FUA flag");
    if ((s.flags & LIBNBD_CMD_FLAG_DF) != 0 && (h.eflags & kFlagSendDf) == 0)
      return set_error(EINVAL, "server does not support the DF flag");
    if ((s.flags & LIBNBD_CMD_FLAG_FAST_ZERO) != 0 && (h.eflags & kFlagSendFastZero) == 0)
      return set_error(EINVAL, "server does not support the FAST_ZERO flag");
    // PAYLOAD_LEN belongs on a write exactly when extended headers are in use, which this
    // library does not negotiate yet (LIBNBD_STRICT_AUTO_FLAG has already cleared it).
    if (s.type == kCmdWrite && (s.flags & LIBNBD_CMD_FLAG_PAYLOAD_LEN) != 0)
      return set_error(EINVAL, "incorrect setting for PAYLOAD_LEN flag");
  }
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
  // The size limits hold whatever the strict mode: the wire has 32 bits for the count, and
  // no server takes more than 64 MiB of data in one request.
  if ((strict & LIBNBD_STRICT_PAYLOAD) != 0 && s.type == kCmdWrite && s.count > h.payload_maximum())
    return set_error(ERANGE, "request too large: maximum payload size is %" PRIu32,
                     h.payload_maximum());
  const bool data = s.type == kCmdRead || s.type == kCmdWrite;
  if (data && s.count > kMaxRequest)
    return set_error(ERANGE, "request too large: maximum request size is %" PRIu64, kMaxRequest);
  if (s.count > UINT32_MAX)
    return set_error(ERANGE, "request too large: %s requests are limited to 32 bits", name);
  return 0;
}

// Queues a request header (proto.md "Request message").
void append_request(nbd_handle& h, uint16_t flags, uint16_t type, uint64_t cookie, uint64_t offset,
                    uint32_t count) {
  unsigned char req[kRequestSize];
  put32(req, kRequestMagic);
  put16(req + 4, flags);
  put16(req + 6, type);
  put64(req + 8, cookie);
  put64(req + 16, offset);
  put32(req + 24, count);
  h.out.append_copy(req, sizeof req);
}

}  // namespace

void update_connected_state(nbd_handle& h) {
  // As in libnbd, "processing" means in the middle of sending requests or receiving a reply;
  // commands merely waiting for their replies leave the handle ready.
  if (state_group(h.state) != kConnected)
    return;
  const bool mid_reply = !at_reply_start(h);
  h.state = sends_pending(h) || mid_reply ? State::Processing : State::Ready;
}

int64_t issue_command(nbd_handle& h, const CommandSpec& spec, Closure<nbd_completion_callback>* completion,
                      Closure<nbd_chunk_callback>* chunk, Closure<nbd_extent_callback>* extent) {
  if (check_request(h, spec) == -1)
    return -1;
  std::unique_ptr<Command> cmd = h.cmd_pool.get();
  Command& c = *cmd;
  c.cookie = h.next_cookie++;
  c.type = spec.type;
  c.flags = static_cast<uint16_t>(spec.flags);
  c.offset = spec.offset;
  c.count = spec.count;
  c.data = spec.data;
  c.zero_on_failure = c.type == kCmdRead && h.pread_initialize && c.data != nullptr;
  c.covered.reset(c.offset);
  if (completion != nullptr)
    c.completion = std::move(*completion);
  if (chunk != nullptr)
    c.chunk = std::move(*chunk);
  if (extent != nullptr)
    c.extent = std::move(*extent);

  c.wire_offset = h.out.end_offset();
  append_request(h, c.flags, c.type, c.cookie, c.offset, static_cast<uint32_t>(c.count));
  if (c.type == kCmdWrite)
    h.out.append_ref(spec.data, spec.count);
  c.wire_end = h.out.end_offset();
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

int wait_for_command(nbd_handle& h, int64_t cookie) {
  const auto id = static_cast<uint64_t>(cookie);
  if (wait_until(h, [id](nbd_handle& hh) { return hh.cmds.find(id) == nullptr; }) == -1) {
    // The connection failed: its error (say "recv: Connection reset by peer") says more than
    // the command's ENOTCONN, so it stays the one reported.
    if (h.cmds.find(id) == nullptr)
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
