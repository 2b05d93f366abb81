// reply.cpp: the connected states: sending queued requests and receiving replies
// (proto.md "Transmission", "Simple reply message", "Structured reply chunk message").
// Sending and receiving progress independently, so a reply arriving slowly never holds back
// new requests.  Every length, offset and count is checked against the command before a
// byte reaches the caller's buffer.
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <string>
#include <vector>

#include "cmd/issue.hpp"
#include "debug.hpp"
#include "error.hpp"
#include "protocol.hpp"
#include "state/machine.hpp"
#include "util.hpp"

namespace nbd {
namespace {

using namespace nbd::proto;

// Largest structured chunk payload we accept beyond read data: block status for 64 MiB of
// 512-byte extents, with room to spare.
constexpr uint32_t kMaxChunk = 64 * 1024 * 1024 + 4096;

Transition reply_protocol_error(const char* fmt, uint64_t cookie) {
  set_error(EPROTO, fmt, cookie);
  return Transition::Fail;
}

// Every reply starts with at least 16 bytes (a whole simple reply header, most of a
// structured one), so they are taken in one piece.
void expect_header(nbd_handle& h) {
  h.rstate = ReplyState::Header;
  h.rbuf = h.scratch;
  h.rlen = kSimpleReplySize;
}

// Whether the whole request (and a write's payload) has left the handle: a server cannot
// answer what it has not received, and the payload buffer must not be released mid-send.
bool request_sent(nbd_handle& h, const nbd::Command& c) {
  // The writer thread reports each send right after it returns; a reply can only overtake
  // that report by a moment, so wait for it briefly (a server answering an unsent request
  // makes this time out).
  if (writer_drains_out(h))
    return h.out.wait_sent(c.wire_end, std::chrono::milliseconds(1000));
  return h.out.sent_offset() >= c.wire_end;
}

nbd::Command* find_command(nbd_handle& h, uint64_t cookie) {
  return h.cmds.find(cookie);
}

// Records the first error of a command.
void command_error(nbd::Command& c, int err) {
  if (c.error == 0)
    c.error = err;
}

// Is [off, off+len) inside the command's [offset, offset+count)?  Written to be free of
// wraparound near 2^64.
bool within(const nbd::Command& c, uint64_t off, uint64_t len) {
  return off >= c.offset && off - c.offset <= c.count && len <= c.count - (off - c.offset);
}

// Runs a chunk or extent callback, as libnbd does: for every chunk, even after an earlier
// one failed, with the command's error so far in *error; -1 from it fails the command with
// the errno it stored (EPROTO if none).  The errno is read only after the call returns.
template <class Callback, class... Args>
void run_callback(nbd::Command& c, const Callback& cb, Args... args) {
  int err = c.error;
  if (cb(args..., &err) == -1)
    command_error(c, err != 0 ? err : EPROTO);
}

Transition finish_chunk(nbd_handle& h) {
  nbd::Command* c = h.rcmd;
  const bool done = (h.rflags & kReplyFlagDone) != 0;
  expect_header(h);
  if (done) {
    if (c->type == kCmdRead && c->error == 0 && h.structured_replies &&
        !c->covered.complete(c->offset + c->count))
      command_error(*c, EIO);  // the server's chunks did not cover the whole read
    complete_command(h, c->cookie);
  }
  return Transition::Next;
}

// Parses a structured chunk whose payload sits in h.payload.
Transition structured_payload(nbd_handle& h) {
  nbd::Command& c = *h.rcmd;
  const unsigned char* p = h.payload.data();
  const size_t len = h.payload.size();
  switch (h.rtype) {
    case kReplyTypeNone:
      break;  // length already checked to be 0
    case kReplyTypeOffsetHole: {
      if (len != 12 || c.type != kCmdRead)
        return reply_protocol_error("hole chunk with a bad length or for a non-read (cookie %" PRIu64 ")", c.cookie);
      const uint64_t off = get64(p);
      const uint32_t size = get32(p + 8);
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
    case kReplyTypeBlockStatus: {
      if (c.type != kCmdBlockStatus || len < 12 || (len - 4) % 8 != 0)
        return reply_protocol_error("block status chunk with a bad length (cookie %" PRIu64 ")", c.cookie);
      const uint32_t id = get32(p);
      const std::string* name = nullptr;
      for (const auto& m : h.meta_contexts)
        if (m.id == id)
          name = &m.name;
      if (name == nullptr)
        return reply_protocol_error("block status for a context never negotiated (cookie %" PRIu64 ")", c.cookie);
      std::vector<uint32_t> entries((len - 4) / 4);
      for (size_t i = 0; i < entries.size(); ++i)
        entries[i] = get32(p + 4 + 4 * i);
      // Every extent must make progress and start inside the request, and together they must
      // stay inside the export (proto.md "Block status": the last may run past the request).
      uint64_t covered = 0;
      bool valid = c.offset <= h.exportsize;  // (strict mode off lets a request start past it)
      for (size_t i = 0; i < entries.size() && valid; i += 2) {
        const bool starts_inside = covered < c.count;  // only the last may end past the request
        covered += entries[i];
        valid = entries[i] != 0 && starts_inside && covered <= h.exportsize - c.offset;
      }
      // With NBD_CMD_FLAG_REQ_ONE a chunk holds exactly one extent, no longer than the request.
      if ((c.flags & LIBNBD_CMD_FLAG_REQ_ONE) != 0 && (entries.size() != 2 || entries[0] > c.count))
        valid = false;
      if (!valid) {
        command_error(c, EPROTO);
        break;
      }
      if (c.extent.has_callback())
        run_callback(c, c.extent, name->c_str(), c.offset, entries.data(), entries.size());
      break;
    }
    case kReplyTypeError:
    case kReplyTypeErrorOffset: {
      if (len < 6)
        return reply_protocol_error("error chunk too short (cookie %" PRIu64 ")", c.cookie);
      const uint32_t error = get32(p);
      const uint16_t msglen = get16(p + 4);
      const size_t want = 6u + msglen + (h.rtype == kReplyTypeErrorOffset ? 8u : 0u);
      if (want != len)
        return reply_protocol_error("error chunk with a bad length (cookie %" PRIu64 ")", c.cookie);
      if (h.debug_enabled() && msglen > 0)
        debug(h, "server error message: %.*s", static_cast<int>(msglen), p + 6);
      const int err = errno_of_wire(error != 0 ? error : kEinval);
      if (h.rtype == kReplyTypeErrorOffset) {
        // The offset must name a byte of the request (proto.md "Structured reply types").
        const uint64_t off = get64(p + 6 + msglen);
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
      if ((h.rtype & kReplyTypeErrorBit) != 0 && len >= 6)
        command_error(c, errno_of_wire(get32(p)));
      else
        command_error(c, EPROTO);  // unknown chunk types must not be sent; fail the command only
      break;
  }
  return finish_chunk(h);
}

// The rest of a structured reply header is in scratch[4..20).
Transition structured_header(nbd_handle& h) {
  const unsigned char* s = h.scratch;
  h.rflags = get16(s + 4);
  h.rtype = get16(s + 6);
  const uint64_t cookie = get64(s + 8);
  h.rlength = get32(s + 16);
  if (!h.structured_replies)
    return reply_protocol_error("structured reply without negotiating it (cookie %" PRIu64 ")", cookie);
  h.rcmd = find_command(h, cookie);
  if (h.rcmd == nullptr)
    return reply_protocol_error("reply for unknown cookie %" PRIu64, cookie);
  if (!request_sent(h, *h.rcmd))
    return reply_protocol_error("reply for cookie %" PRIu64 " before its request was sent", cookie);
  nbd::Command& c = *h.rcmd;
  if (h.rtype == kReplyTypeNone && h.rlength != 0)
    return reply_protocol_error("NBD_REPLY_TYPE_NONE with a payload (cookie %" PRIu64 ")", cookie);
  if (h.rtype == kReplyTypeOffsetData) {
    // Data goes straight into the caller's buffer after its 8-byte offset is checked.
    if (c.type != kCmdRead || h.rlength < 9)
      return reply_protocol_error("data chunk with a bad length or for a non-read (cookie %" PRIu64 ")", cookie);
    h.rbuf = h.scratch + kStructuredReplySize;  // after the header, parsed by now
    h.rlen = 8;
    h.rstate = ReplyState::Payload;
    return Transition::Next;
  }
  if (h.rlength > kMaxChunk)
    return reply_protocol_error("reply chunk too large (cookie %" PRIu64 ")", cookie);
  h.payload.resize(h.rlength);
  h.rbuf = h.payload.data();
  h.rlen = h.rlength;
  h.rstate = ReplyState::Payload;
  return Transition::Next;
}

// The payload of a chunk has arrived (for data chunks: its offset, in scratch).
Transition payload_done(nbd_handle& h) {
  nbd::Command& c = *h.rcmd;
  if (h.rtype != kReplyTypeOffsetData)
    return structured_payload(h);
  if (h.rstate == ReplyState::ReadData) {
    unsigned char* dst = static_cast<unsigned char*>(c.data) + (h.roffset - c.offset);
    const uint32_t n = h.rlength - 8;
    if (c.chunk.has_callback())
      run_callback(c, c.chunk, static_cast<const void*>(dst), size_t{n}, h.roffset, unsigned{LIBNBD_READ_DATA});
    return finish_chunk(h);
  }
  h.roffset = get64(h.scratch + kStructuredReplySize);
  const uint32_t n = h.rlength - 8;
  if (!within(c, h.roffset, n))
    return reply_protocol_error("data chunk outside the request (cookie %" PRIu64 ")", c.cookie);
  // Overlapping data still lands inside the caller's buffer, but the read fails.
  if (!c.covered.add(h.roffset, n))
    command_error(c, EPROTO);
  h.rbuf = static_cast<unsigned char*>(c.data) + (h.roffset - c.offset);
  h.rlen = n;
  h.rstate = ReplyState::ReadData;
  return Transition::Next;
}

// The rest of a simple reply header is in scratch[4..16).
Transition simple_header(nbd_handle& h) {
  const uint32_t error = get32(h.scratch + 4);
  const uint64_t cookie = get64(h.scratch + 8);
  h.rcmd = find_command(h, cookie);
  if (h.rcmd == nullptr)
    return reply_protocol_error("reply for unknown cookie %" PRIu64, cookie);
  if (!request_sent(h, *h.rcmd))
    return reply_protocol_error("reply for cookie %" PRIu64 " before its request was sent", cookie);
  nbd::Command& c = *h.rcmd;
  h.rflags = kReplyFlagDone;
  h.rtype = kReplyTypeNone;
  if (error != 0) {
    command_error(c, errno_of_wire(error));
    expect_header(h);
    complete_command(h, cookie);
    return Transition::Next;
  }
  if (c.type == kCmdRead) {
    // With structured replies a read's data must come in chunks (proto.md "Structured
    // replies"); only an error may be a simple reply.
    if (h.structured_replies)
      return reply_protocol_error("simple reply with data to a read (cookie %" PRIu64
                                  ") although structured replies were negotiated", cookie);
    // A simple reply to a read carries exactly the requested bytes.
    h.rtype = kReplyTypeOffsetData;
    h.roffset = c.offset;
    h.rlength = static_cast<uint32_t>(c.count + 8);
    h.rbuf = static_cast<unsigned char*>(c.data);
    h.rlen = c.count;
    h.rstate = ReplyState::ReadData;
    return Transition::Next;
  }
  expect_header(h);
  complete_command(h, cookie);
  return Transition::Next;
}

// One step of the reader.
Transition reply_step(nbd_handle& h) {
  const Io io = recv_into_rbuf(h);
  if (io == Io::Again)
    return Transition::Block;
  // Once NBD_CMD_DISC (and under TLS our close_notify) is on its way, a server that hangs up
  // without its own TLS close (qemu-nbd, nbd-server) or with a reset has ended the
  // connection normally.  Nothing is lost: the disconnect waited for every reply.  (Whether
  // the bytes have left h.out does not matter: the ready-made writer's thread may report its
  // send only after the server has already seen it and hung up.)
  const bool disconnected = h.disconnect_queued && at_reply_start(h);
  if (io == Io::Error && !(disconnected && is_hang_up(last_errno())))
    return Transition::Fail;
  if (io != Io::Done) {
    if (disconnected) {
      close_connection(h);
      return Transition::Next;
    }
    set_error(ENOTCONN, "server closed the connection unexpectedly");
    return Transition::Fail;
  }
  switch (h.rstate) {
    case ReplyState::Header: {
      const uint32_t magic = get32(h.scratch);
      if (magic == kSimpleReplyMagic)
        return simple_header(h);
      if (magic == kStructuredReplyMagic) {
        h.rbuf = h.scratch + kSimpleReplySize;
        h.rlen = kStructuredReplySize - kSimpleReplySize;
        h.rstate = ReplyState::Structured;
      } else {
        set_error(EPROTO, "invalid reply magic 0x%08x", magic);
        return Transition::Fail;
      }
      return Transition::Next;
    }
    case ReplyState::Structured:
      return structured_header(h);
    case ReplyState::ReadData:
    case ReplyState::Payload:
      return payload_done(h);
  }
  return Transition::Block;
}

}  // namespace

bool at_reply_start(const nbd_handle& h) {
  return h.rstate == ReplyState::Header && h.rlen == kSimpleReplySize;
}

void enter_transmission(nbd_handle& h) {
  release_storage(h.opt_todo);
  release_storage(h.payload);  // the handshake's: replies need it only for chunks other than data
  h.opt_current = 0;
  expect_header(h);
  h.state = State::Ready;
  update_connected_state(h);
  h.release_idle_memory();  // what the handshake used
  if (h.debug_enabled())
    debug(h, "connected: size %" PRIu64 ", flags 0x%x, %s, structured replies %s", h.exportsize,
          h.eflags, h.protocol, h.structured_replies ? "on" : "off");
}

namespace {

Io send_step(nbd_handle& h) {
  if (h.out.empty())
    return Io::Done;
  const Io io = send_from_wbuf(h);
  if (io == Io::Done && h.disconnect_queued && !h.writer_thread)  // the thread may still hold data
    h.sock->shut_writes();
  return io;
}

}  // namespace

int send_queued(nbd_handle& h) {
  if (state_group(h.state) != kConnected)
    return 0;
  if (h.send_full || send_step(h) != Io::Error) {
    update_connected_state(h);  // processing only while bytes still wait for the socket
    return 0;
  }
  kill_connection(h, lost_connection_errno(h));
  return -1;
}

Transition h_transmit(nbd_handle& h) {
  queue_disconnect_if_idle(h);
  if (send_step(h) == Io::Error)
    return Transition::Fail;
  // Replies are read whenever they come, whether or not requests are still queued.
  for (;;) {
    const State before = h.state;
    const Transition t = reply_step(h);
    if (t != Transition::Next || h.state != before) {
      // The last reply a held-back NBD_CMD_DISC waited for has come: run again to send it.
      if (t == Transition::Block && queue_disconnect_if_idle(h))
        return Transition::Next;
      return t;
    }
  }
}

}  // namespace nbd
