// chunks.cpp: the payloads of structured reply chunks other than data (proto.md "Structured
// reply types"): holes, errors and block status, whose descriptors become the extents a
// callback sees.  A chunk that breaks the rules fails its command, or the connection where
// the stream can no longer be trusted.
#include <cinttypes>
#include <cstring>
#include <vector>

#include "debug.hpp"
#include "error.hpp"
#include "protocol.hpp"
#include "state/reply.hpp"

namespace nbd {
namespace {

using namespace nbd::proto;

// Turns the descriptors of a block status chunk into the extents a callback sees, with
// libnbd's rules: the server may stop early, but a zero-length extent or one reaching past
// the export ends the list (an error if it is the first), and a 32-bit callback gets at most
// 32-bit lengths (shortened, no error) and statuses (a wider one ends the list, an error if
// it is the first).  Lengths never pass INT64_MAX.
std::vector<nbd_extent> cook_extents(const nbd_handle& h, nbd::Command& c, const unsigned char* d,
                                     size_t n, bool wide_wire) {
  constexpr uint64_t kAlign = 64 * 1024 * 1024;  // shortened lengths stay this aligned
  const bool wide_cb = !c.extent64.empty();
  const uint64_t cap = c.offset <= h.exportsize ? h.exportsize - c.offset : 0;
  uint64_t total = 0;
  std::vector<nbd_extent> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const BlockDescriptor64 wire = block_descriptor(d, i, wide_wire);
    uint64_t len = wire.length;
    uint64_t flags = wire.flags;
    bool stop = false;
    if (len > uint64_t{INT64_MAX}) {
      len = uint64_t{INT64_MAX} + 1 - kAlign;
      stop = true;
    }
    if (!wide_cb && len > UINT32_MAX) {
      len = (uint64_t{1} << 32) - kAlign;
      stop = true;
    }
    if (!wide_cb && flags > UINT32_MAX) {
      if (i > 0)
        break;
      command_error(c, EOVERFLOW);
      flags &= UINT32_MAX;
      stop = true;
    }
    if (len > cap - total) {
      len = cap - total;
      command_error(c, EPROTO);
      stop = true;
    }
    if (len == 0) {
      if (i > 0)
        break;
      command_error(c, EPROTO);
      stop = true;
    }
    total += len;
    out.push_back({len, flags});
    if (stop)
      break;
  }
  return out;
}

// NBD_REPLY_TYPE_BLOCK_STATUS(_EXT): the extents of one metadata context.  A chunk that does
// not parse fails the command (EPROTO) and the connection goes on; a context id never
// negotiated is ignored, as libnbd does.
void block_status_chunk(nbd_handle& h, nbd::Command& c, const unsigned char* p, size_t len) {
  const bool wide_wire = h.rtype == kReplyTypeBlockStatusExt;
  const size_t prefix = BlockStatusChunk::size(wide_wire), desc = block_descriptor_size(wide_wire);
  if (c.type != kCmdBlockStatus || !h.meta_valid || h.meta_contexts.empty() || len < prefix + desc ||
      (len - prefix) % desc != 0) {
    command_error(c, EPROTO);
    return;
  }
  const size_t n = (len - prefix) / desc;
  const BlockStatusChunk head = BlockStatusChunk::decode(p, wide_wire);
  if (wide_wire && head.count != n) {
    command_error(c, EPROTO);  // the descriptor count disagrees with the length
    return;
  }
  // The wrong chunk type for the headers in use is a server bug, but still readable.
  if (wide_wire != h.extended_headers)
    command_error(c, EPROTO);
  const auto* meta = h.meta_context_with_id(head.context_id);
  if (meta == nullptr) {
    if (h.debug_enabled())
      debug(h, "ignoring block status for meta context id %" PRIu32 ", never negotiated", head.context_id);
    return;
  }
  std::vector<nbd_extent> extents = cook_extents(h, c, p + prefix, n, wide_wire);
  if (!c.extent64.empty()) {
    run_callback(c, c.extent64, meta->name.c_str(), c.offset, extents.data(), extents.size());
    return;
  }
  std::vector<uint32_t> pairs;
  pairs.reserve(2 * extents.size());
  for (const nbd_extent& e : extents) {
    pairs.push_back(static_cast<uint32_t>(e.length));
    pairs.push_back(static_cast<uint32_t>(e.flags));
  }
  run_callback(c, c.extent, meta->name.c_str(), c.offset, pairs.data(), pairs.size());
}

}  // namespace

Transition structured_payload(nbd_handle& h) {
  nbd::Command& c = *h.rcmd;
  const unsigned char* p = h.payload.data();
  const size_t len = h.payload.size();
  switch (h.rtype) {
    case kReplyTypeNone:
      break;  // length already checked to be 0
    case kReplyTypeOffsetHole: {
      if (len != OffsetHoleChunk::kSize || c.type != kCmdRead)
        return reply_protocol_error("hole chunk with a bad length or for a non-read (cookie %" PRIu64 ")", c.cookie);
      const OffsetHoleChunk hole = OffsetHoleChunk::decode(p);
      const uint64_t off = hole.offset;
      const uint32_t size = hole.length;
      if (size == 0 || !within(c, off, size))
        return reply_protocol_error("hole chunk outside the request (cookie %" PRIu64 ")", c.cookie);
      unsigned char* dst = static_cast<unsigned char*>(c.data) + (off - c.offset);
      std::memset(dst, 0, size);
      if (!c.covered.add(off, size))
        command_error(c, EPROTO);  // overlaps an earlier chunk
      if (c.chunk.has_callback())
        run_callback(c, c.chunk, static_cast<const void*>(dst), size_t{size}, off, unsigned{LIBNBD_READ_HOLE});
      break;
    }
    case kReplyTypeBlockStatus:
    case kReplyTypeBlockStatusExt:
      block_status_chunk(h, c, p, len);
      break;
    case kReplyTypeError:
    case kReplyTypeErrorOffset: {
      if (len < ErrorChunk::kSize)
        return reply_protocol_error("error chunk too short (cookie %" PRIu64 ")", c.cookie);
      const ErrorChunk chunk = ErrorChunk::decode(p);
      const uint16_t msglen = chunk.message_length;
      const size_t want = ErrorChunk::kSize + msglen + (h.rtype == kReplyTypeErrorOffset ? ErrorChunk::kOffsetSize : 0u);
      if (want != len)
        return reply_protocol_error("error chunk with a bad length (cookie %" PRIu64 ")", c.cookie);
      if (h.debug_enabled() && msglen > 0)
        debug(h, "server error message: %.*s", static_cast<int>(msglen), chunk.message(p));
      const int err = errno_of_wire(chunk.error != 0 ? chunk.error : kEinval);
      if (h.rtype == kReplyTypeErrorOffset) {
        // The offset must name a byte of the request (proto.md "Structured reply types").
        const uint64_t off = chunk.offset(p);
        if (off < c.offset || off - c.offset >= c.count)
          return reply_protocol_error("error chunk offset outside the request (cookie %" PRIu64 ")", c.cookie);
        // A structured read's chunk callback hears where the read failed, with this error
        // (not an earlier one) in *error.
        if (c.type == kCmdRead && c.chunk.has_callback()) {
          const void* at = static_cast<unsigned char*>(c.data) + (off - c.offset);
          int cb_err = err;
          if (c.chunk(at, size_t{0}, off, unsigned{LIBNBD_READ_ERROR}, &cb_err) == -1 && cb_err != 0)
            command_error(c, cb_err);
        }
      }
      command_error(c, err);
      break;
    }
    default:
      if ((h.rtype & kReplyTypeErrorBit) != 0 && len >= ErrorChunk::kSize)
        command_error(c, errno_of_wire(ErrorChunk::decode(p).error));
      else
        command_error(c, EPROTO);  // unknown chunk types must not be sent; fail the command only
      break;
  }
  return finish_chunk(h);
}
}  // namespace nbd
