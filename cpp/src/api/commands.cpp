// commands.cpp: the transmission calls.  Each sync call is its aio form plus a wait; the wire
// flags equal the LIBNBD_CMD_FLAG_* values (proto.md "Command flags").
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cmd/issue.hpp"
#include "error.hpp"
#include "protocol.hpp"
#include "state/machine.hpp"
#include "unlocked.hpp"

namespace nbd {
namespace {

using namespace nbd::proto;
using Completion = Closure<nbd_completion_callback>;

int64_t aio(nbd_handle& h, uint16_t type, uint64_t offset, uint64_t count, void* data, uint32_t flags,
            Completion* completion, Closure<nbd_chunk_callback>* chunk = nullptr) {
  return issue_command(h, CommandSpec{type, flags, offset, count, data}, {completion, chunk});
}

// Block status, with 32-bit or 64-bit extents, for every context or (contexts) some.
template <class Extent>
int64_t aio_block_status(nbd_handle& h, uint64_t offset, uint64_t count, char** contexts,
                         Closure<Extent>& extent, Completion* completion, uint32_t flags) {
  CommandClosures closures{completion};
  if constexpr (std::is_same_v<Extent, nbd_extent_callback>)
    closures.extent = &extent;
  else
    closures.extent64 = &extent;
  return issue_command(h, CommandSpec{kCmdBlockStatus, flags, offset, count, nullptr, contexts}, closures);
}

int sync(nbd_handle& h, int64_t cookie) {
  return cookie == -1 ? -1 : wait_for_command(h, cookie);
}

}  // namespace

int unlocked_pread(nbd_handle& h, void* buf, size_t count, uint64_t offset, uint32_t flags) {
  return sync(h, aio(h, kCmdRead, offset, count, buf, flags, nullptr));
}

int unlocked_pread_structured(nbd_handle& h, void* buf, size_t count, uint64_t offset,
                              Closure<nbd_chunk_callback>& chunk_callback, uint32_t flags) {
  return sync(h, aio(h, kCmdRead, offset, count, buf, flags, nullptr, &chunk_callback));
}

int unlocked_pwrite(nbd_handle& h, const void* buf, size_t count, uint64_t offset, uint32_t flags) {
  return sync(h, aio(h, kCmdWrite, offset, count, const_cast<void*>(buf), flags, nullptr));
}

int unlocked_flush(nbd_handle& h, uint32_t flags) {
  return sync(h, aio(h, kCmdFlush, 0, 0, nullptr, flags, nullptr));
}

int unlocked_trim(nbd_handle& h, uint64_t count, uint64_t offset, uint32_t flags) {
  return sync(h, aio(h, kCmdTrim, offset, count, nullptr, flags, nullptr));
}

int unlocked_cache(nbd_handle& h, uint64_t count, uint64_t offset, uint32_t flags) {
  return sync(h, aio(h, kCmdCache, offset, count, nullptr, flags, nullptr));
}

int unlocked_zero(nbd_handle& h, uint64_t count, uint64_t offset, uint32_t flags) {
  return sync(h, aio(h, kCmdWriteZeroes, offset, count, nullptr, flags, nullptr));
}

int unlocked_block_status(nbd_handle& h, uint64_t count, uint64_t offset,
                          Closure<nbd_extent_callback>& extent_callback, uint32_t flags) {
  return sync(h, aio_block_status(h, offset, count, nullptr, extent_callback, nullptr, flags));
}

int unlocked_block_status_64(nbd_handle& h, uint64_t count, uint64_t offset,
                             Closure<nbd_extent64_callback>& extent64_callback, uint32_t flags) {
  return sync(h, aio_block_status(h, offset, count, nullptr, extent64_callback, nullptr, flags));
}

int unlocked_block_status_filter(nbd_handle& h, uint64_t count, uint64_t offset, char** contexts,
                                 Closure<nbd_extent64_callback>& extent64_callback, uint32_t flags) {
  return sync(h, aio_block_status(h, offset, count, contexts, extent64_callback, nullptr, flags));
}

int64_t unlocked_aio_pread(nbd_handle& h, void* buf, size_t count, uint64_t offset,
                           Completion& completion_callback, uint32_t flags) {
  return aio(h, kCmdRead, offset, count, buf, flags, &completion_callback);
}

int64_t unlocked_aio_pread_structured(nbd_handle& h, void* buf, size_t count, uint64_t offset,
                                      Closure<nbd_chunk_callback>& chunk_callback,
                                      Completion& completion_callback, uint32_t flags) {
  return aio(h, kCmdRead, offset, count, buf, flags, &completion_callback, &chunk_callback);
}

int64_t unlocked_aio_pwrite(nbd_handle& h, const void* buf, size_t count, uint64_t offset,
                            Completion& completion_callback, uint32_t flags) {
  return aio(h, kCmdWrite, offset, count, const_cast<void*>(buf), flags, &completion_callback);
}

int64_t unlocked_aio_flush(nbd_handle& h, Completion& completion_callback, uint32_t flags) {
  return aio(h, kCmdFlush, 0, 0, nullptr, flags, &completion_callback);
}

int64_t unlocked_aio_trim(nbd_handle& h, uint64_t count, uint64_t offset, Completion& completion_callback,
                          uint32_t flags) {
  return aio(h, kCmdTrim, offset, count, nullptr, flags, &completion_callback);
}

int64_t unlocked_aio_cache(nbd_handle& h, uint64_t count, uint64_t offset, Completion& completion_callback,
                           uint32_t flags) {
  return aio(h, kCmdCache, offset, count, nullptr, flags, &completion_callback);
}

int64_t unlocked_aio_zero(nbd_handle& h, uint64_t count, uint64_t offset, Completion& completion_callback,
                          uint32_t flags) {
  return aio(h, kCmdWriteZeroes, offset, count, nullptr, flags, &completion_callback);
}

int64_t unlocked_aio_block_status(nbd_handle& h, uint64_t count, uint64_t offset,
                                  Closure<nbd_extent_callback>& extent_callback,
                                  Completion& completion_callback, uint32_t flags) {
  return aio_block_status(h, offset, count, nullptr, extent_callback, &completion_callback, flags);
}

int64_t unlocked_aio_block_status_64(nbd_handle& h, uint64_t count, uint64_t offset,
                                     Closure<nbd_extent64_callback>& extent64_callback,
                                     Completion& completion_callback, uint32_t flags) {
  return aio_block_status(h, offset, count, nullptr, extent64_callback, &completion_callback, flags);
}

int64_t unlocked_aio_block_status_filter(nbd_handle& h, uint64_t count, uint64_t offset, char** contexts,
                                         Closure<nbd_extent64_callback>& extent64_callback,
                                         Completion& completion_callback, uint32_t flags) {
  return aio_block_status(h, offset, count, contexts, extent64_callback, &completion_callback, flags);
}

int unlocked_aio_disconnect(nbd_handle& h, uint32_t flags) {
  if (h.disconnect_requested)
    return set_error(EINVAL, "cannot request more commands after NBD_CMD_DISC");
  h.disconnect_requested = true;
  h.disconnect_flags = flags;
  // Sent now if nothing is in flight, otherwise once the last reply has come.
  if (!queue_disconnect_if_idle(h))
    return 0;
  return send_queued(h);
}

namespace {

// Drops the commands whose requests have not started to go out (still whole in h.out): they
// complete with ENOTCONN, as in libnbd.  Commands handed to a concurrent writer count as sent.
void abandon_unsent(nbd_handle& h) {
  if (!sends_pending(h))
    return;
  const uint64_t sent = h.out.sent_offset();
  uint64_t cut = h.out.end_offset();
  std::vector<uint64_t> unsent;
  h.cmds.for_each([&](const Command& cmd) {
    if (cmd.wire_offset >= sent) {
      unsent.push_back(cmd.cookie);
      cut = std::min(cut, cmd.wire_offset);
    }
  });
  h.out.truncate(cut);
  for (uint64_t cookie : unsent) {
    h.cmds.find(cookie)->error = ENOTCONN;
    complete_command(h, cookie);
  }
}

}  // namespace

int unlocked_shutdown(nbd_handle& h, uint32_t flags) {
  // Still negotiating (opt mode): end that gracefully, as libnbd 1.18+ does.
  if (state_group(h.state) == kNegotiating)
    return unlocked_opt_abort(h);
  if ((flags & LIBNBD_SHUTDOWN_ABANDON_PENDING) != 0 && !h.disconnect_requested)
    abandon_unsent(h);
  if (!h.disconnect_requested && unlocked_aio_disconnect(h, 0) == -1)
    return -1;
  return wait_until(h, [](nbd_handle& hh) { return (state_group(hh.state) & (kClosed | kDead)) != 0; });
}

int unlocked_aio_command_completed(nbd_handle& h, uint64_t cookie) {
  // Cookies start at 1, so 0 is a caller's mistake; any other cookie still in flight, or
  // unknown, is "not completed" (0), as libnbd reports both.
  if (cookie == 0)
    return set_error(EINVAL, "invalid aio cookie 0");
  return retire_command(h, cookie);
}

int64_t unlocked_aio_peek_command_completed(nbd_handle& h) {
  if (!h.cmds_done.empty())
    return static_cast<int64_t>(h.cmds_done.front()->cookie);
  if (!h.cmds.empty())
    return 0;
  return set_error(EINVAL, "no commands are in flight");
}

int unlocked_aio_in_flight(nbd_handle& h) {
  // As in libnbd, NBD_CMD_DISC counts until the server has closed the connection.
  const bool disc = h.disconnect_requested && state_group(h.state) == kConnected;
  return static_cast<int>(h.cmds.size()) + (disc ? 1 : 0);
}

}  // namespace nbd
