// reply.cpp: the connected states: sending queued requests and receiving replies
// (proto.md "Transmission", "Simple reply message", "Structured reply chunk message").
// Sending and receiving progress independently, so a reply arriving slowly never holds back
// new requests.  Every length, offset and count is checked against the command before a
// byte reaches the caller's buffer.  Reply headers and read data are read here; the payloads
// of the other structured chunks are parsed in chunks.cpp.
#include <cerrno>
#include <cinttypes>

#include "cmd/issue.hpp"
#include "debug.hpp"
#include "error.hpp"
#include "protocol.hpp"
#include "state/reply.hpp"
#include "util.hpp"

namespace nbd {
namespace {

using namespace nbd::proto;

// Largest structured chunk payload we accept beyond read data: block status for 64 MiB of
// 512-byte extents, with room to spare.
constexpr uint32_t kMaxChunk = 64 * 1024 * 1024 + 4096;

// The first piece of every reply: with extended headers the whole 32-byte header; else 16
// bytes (a whole simple reply header, most of a structured one).
size_t first_read(const nbd_handle& h) {
  return h.extended_headers ? ExtendedReplyHeader::kSize : SimpleReply::kSize;
}

void expect_header(nbd_handle& h) {
  h.rstate = ReplyState::Header;
  h.rbuf = h.scratch;
  h.rlen = first_read(h);
}

// Where the 8-byte offset of a data chunk is received: after the header in scratch.
unsigned char* data_offset_field(nbd_handle& h) {
  return h.scratch + chunk_header_size(h.extended_headers);
}

// Whether the whole request (and a write's payload) has left the handle: a server cannot
// answer what it has not received.
bool request_sent(const nbd_handle& h, const nbd::Command& c) { return h.out.sent_offset() >= c.wire_end; }

// The command a reply is for: in flight and not answered yet.
nbd::Command* find_command(nbd_handle& h, uint64_t cookie) {
  nbd::Command* c = h.cmds.find(cookie);
  return c != nullptr && !c->answered ? c : nullptr;
}

}  // namespace

Transition reply_protocol_error(const char* fmt, uint64_t cookie) {
  set_error(EPROTO, fmt, cookie);
  return Transition::Fail;
}

Transition finish_chunk(nbd_handle& h) {
  nbd::Command* c = h.rcmd;
  const bool done = (h.rflags & kReplyFlagDone) != 0;
  expect_header(h);
  if (done) {
    if (c->type == kCmdRead && c->error == 0 && h.structured_replies &&
        !c->covered.complete(c->offset + c->count))
      command_error(*c, EIO);  // the server's chunks did not cover the whole read
    command_answered(h, *c);
  }
  return Transition::Next;
}

namespace {

// Makes the command a reply names h.rcmd: true, or false with a protocol error recorded if no
// command in flight has that cookie or its request has not all been sent yet.
[[gnu::always_inline]] inline bool find_replied_command(nbd_handle& h, uint64_t cookie) {
  h.rcmd = find_command(h, cookie);
  if (h.rcmd == nullptr) [[unlikely]] {
    reply_protocol_error("reply for unknown cookie %" PRIu64, cookie);
    return false;
  }
  if (!request_sent(h, *h.rcmd)) [[unlikely]] {
    reply_protocol_error("reply for cookie %" PRIu64 " before its request was sent", cookie);
    return false;
  }
  return true;
}

// A chunk header has been parsed into h.rflags, h.rtype and h.rlength: finds its command and
// decides where the payload goes.  offset_ok is false when an extended header names another
// offset than the request's: the chunk is then read and dropped, failing the command.
Transition chunk_header(nbd_handle& h, uint64_t cookie, bool offset_ok) {
  if (!find_replied_command(h, cookie))
    return Transition::Fail;
  nbd::Command& c = *h.rcmd;
  if (h.rtype == kReplyTypeNone && h.rlength != 0)
    return reply_protocol_error("NBD_REPLY_TYPE_NONE with a payload (cookie %" PRIu64 ")", cookie);
  h.rskip = !offset_ok;
  if (h.rtype == kReplyTypeOffsetData && offset_ok) {
    // Data goes straight into the caller's buffer after its 8-byte offset is checked.
    if (c.type != kCmdRead || h.rlength <= OffsetDataChunk::kSize)
      return reply_protocol_error("data chunk with a bad length or for a non-read (cookie %" PRIu64 ")", cookie);
    h.rbuf = data_offset_field(h);
    h.rlen = OffsetDataChunk::kSize;
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

// The whole structured reply header is in scratch[0..20).
Transition structured_header(nbd_handle& h) {
  const StructuredReplyHeader head = StructuredReplyHeader::decode(h.scratch);
  h.rflags = head.flags;
  h.rtype = head.type;
  const uint64_t cookie = head.cookie;
  h.rlength = head.length;
  if (!h.structured_replies)
    return reply_protocol_error("structured reply without negotiating it (cookie %" PRIu64 ")", cookie);
  return chunk_header(h, cookie, true);
}

// A whole extended reply header is in scratch[0..32) (proto.md, extended headers: "Extended
// reply chunk message"); its offset must be the request's.
Transition extended_header(nbd_handle& h) {
  const ExtendedReplyHeader head = ExtendedReplyHeader::decode(h.scratch);
  h.rflags = head.flags;
  h.rtype = head.type;
  const uint64_t cookie = head.cookie;
  const uint64_t offset = head.offset;
  const uint64_t length = head.length;
  if (length > kMaxChunk)
    return reply_protocol_error("reply chunk too large (cookie %" PRIu64 ")", cookie);
  h.rlength = static_cast<uint32_t>(length);
  const nbd::Command* c = find_command(h, cookie);
  const bool offset_ok = c == nullptr || c->offset == offset;
  if (!offset_ok && h.debug_enabled())
    debug(h, "reply for cookie %" PRIu64 " names offset %" PRIu64 ", not the request's %" PRIu64
          ": dropping it", cookie, offset, c->offset);
  return chunk_header(h, cookie, offset_ok);
}

// The payload of a chunk has arrived (for data chunks: its offset, in scratch).
Transition payload_done(nbd_handle& h) {
  nbd::Command& c = *h.rcmd;
  if (h.rskip) {
    command_error(c, EPROTO);
    return finish_chunk(h);
  }
  if (h.rtype != kReplyTypeOffsetData)
    return structured_payload(h);
  if (h.rstate == ReplyState::ReadData) {
    unsigned char* dst = static_cast<unsigned char*>(c.data) + (h.roffset - c.offset);
    const uint32_t n = h.rlength - static_cast<uint32_t>(OffsetDataChunk::kSize);
    if (c.chunk.has_callback())
      run_callback(c, c.chunk, static_cast<const void*>(dst), size_t{n}, h.roffset, unsigned{LIBNBD_READ_DATA});
    return finish_chunk(h);
  }
  h.roffset = OffsetDataChunk::decode(data_offset_field(h)).offset;
  const uint32_t n = h.rlength - static_cast<uint32_t>(OffsetDataChunk::kSize);
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

// The whole simple reply header is in scratch[0..16).
Transition simple_header(nbd_handle& h) {
  const SimpleReply reply = SimpleReply::decode(h.scratch);
  const uint32_t error = reply.error;
  const uint64_t cookie = reply.cookie;
  if (!find_replied_command(h, cookie))
    return Transition::Fail;
  nbd::Command& c = *h.rcmd;
  h.rflags = kReplyFlagDone;
  h.rtype = kReplyTypeNone;
  if (error != 0) {
    command_error(c, errno_of_wire(error));
    expect_header(h);
    command_answered(h, c);
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
    h.rlength = static_cast<uint32_t>(c.count + OffsetDataChunk::kSize);
    h.rbuf = static_cast<unsigned char*>(c.data);
    h.rlen = c.count;
    h.rstate = ReplyState::ReadData;
    return Transition::Next;
  }
  expect_header(h);
  command_answered(h, c);
  return Transition::Next;
}

// With extended headers a reply header is 32 bytes; a simple or structured one that arrives
// instead is shorter, and the rest of it might never come.  So its magic is checked as soon
// as it is in, rather than waiting for the whole header (as libnbd does).
bool wrong_magic_so_far(const nbd_handle& h) {
  return h.extended_headers && h.rstate == ReplyState::Header && h.rbuf >= h.scratch + kReplyMagicSize &&
         reply_magic(h.scratch) != kExtendedReplyMagic;
}

// One step of the reader.
Transition reply_step(nbd_handle& h) {
  const Io io = recv_into_rbuf(h);
  if (io == Io::Again) {
    if (wrong_magic_so_far(h)) {
      set_error(EPROTO, "invalid reply magic 0x%08x: extended headers are in use", reply_magic(h.scratch));
      return Transition::Fail;
    }
    return Transition::Block;
  }
  // Once NBD_CMD_DISC (and under TLS our close_notify) is on its way, a server that hangs up
  // without its own TLS close (qemu-nbd, nbd-server) or with a reset has ended the
  // connection normally.  Nothing is lost: the disconnect waited for every reply.  (Whether
  // the bytes have left h.out does not matter: a writer's thread may send them only after
  // the handle has looked.)
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
      const uint32_t magic = reply_magic(h.scratch);
      ++h.chunks_received;
      // With extended headers every reply has the extended header; anything else means the
      // stream is out of step (proto.md: simple replies "MUST NOT be used").
      if (h.extended_headers) {
        if (magic == kExtendedReplyMagic)
          return extended_header(h);
        set_error(EPROTO, "invalid reply magic 0x%08x: extended headers are in use", magic);
        return Transition::Fail;
      }
      if (magic == kExtendedReplyMagic) {
        set_error(EPROTO, "extended reply header although extended headers were not negotiated");
        return Transition::Fail;
      }
      if (magic == kSimpleReplyMagic)
        return simple_header(h);
      if (magic == kStructuredReplyMagic) {
        h.rbuf = h.scratch + SimpleReply::kSize;
        h.rlen = StructuredReplyHeader::kSize - SimpleReply::kSize;
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
  return h.rstate == ReplyState::Header && h.rlen == first_read(h);
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
    debug(h, "connected: size %" PRIu64 ", flags 0x%x, %s, %s", h.exportsize, h.eflags, h.protocol,
          h.extended_headers ? "extended headers" : h.structured_replies ? "structured replies" : "simple replies");
}

namespace {

Io send_step(nbd_handle& h) {
  if (h.out.empty())
    return Io::Done;
  const Io io = send_from_wbuf(h);
  if (io == Io::Done && h.disconnect_queued)
    h.sock->shut_writes();
  return io;
}

}  // namespace

int send_queued(nbd_handle& h) {
  // While the handle reconnects nothing is queued (State::Reconnect) or the handshake's
  // states are not kConnected.
  if (state_group(h.state) != kConnected)
    return 0;
  if (h.send_full || send_step(h) != Io::Error) {
    update_connected_state(h);  // processing only while bytes still wait for the socket
    return 0;
  }
  return connection_failed(h);
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
