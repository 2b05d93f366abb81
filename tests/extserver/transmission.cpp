// transmission.cpp: requests and their simple, structured or extended replies (proto.md
// "Transmission", "Request types", "Structured reply types").
#include <algorithm>
#include <cstdio>

#include "session.hpp"
#include "wire.hpp"

namespace ext_server {
namespace {

// proto.md NBD_REPLY_TYPE_BLOCK_STATUS: no more than 2^20 descriptors in a chunk.
constexpr size_t kMaxDescriptors = size_t{1} << 20;

}  // namespace

void Session::transmission() {
  for (;;) {
    Request req;
    if (!read_request(req) || req.type == kCmdDisc || !command(req))
      return;
  }
}

bool Session::read_request(Request& req) {
  // The header the negotiated mode calls for, in one read(2) as a real server would; a header
  // of the other mode shows in its magic as soon as that is in (the rest may never come), and
  // is logged as what it is before hanging up.
  char buf[kExtendedRequestSize] = {};
  const uint32_t want_magic = extended_ ? kExtendedRequestMagic : kRequestMagic;
  const size_t want = extended_ ? kExtendedRequestSize : kCompactRequestSize;
  size_t got = 0;
  while (got < want && (got < 4 || get32(buf) == want_magic)) {
    const size_t n = read_some(buf + got, want - got);
    if (n == 0)
      return false;
    got += n;
  }
  req.magic = get32(buf);
  const bool extended = req.magic == kExtendedRequestMagic;
  req.flags = get16(buf + 4);
  req.type = get16(buf + 6);
  req.cookie = get64(buf + 8);
  req.offset = get64(buf + 16);
  req.length = extended ? get64(buf + 24) : get32(buf + 24);
  char line[160];
  std::snprintf(line, sizeof line, "req magic=0x%08x type=%u flags=0x%x offset=%llu length=%llu", req.magic,
                unsigned{req.type}, unsigned{req.flags}, static_cast<unsigned long long>(req.offset),
                static_cast<unsigned long long>(req.length));
  log_.line(line);
  if (req.magic != kRequestMagic && !extended) {
    violation("request magic is neither NBD_REQUEST_MAGIC nor NBD_EXTENDED_REQUEST_MAGIC");
    return false;
  }
  if (extended != extended_) {
    violation(extended_ ? "compact request header after extended headers were negotiated"
                        : "extended request header without NBD_OPT_EXTENDED_HEADERS");
    return false;
  }
  return true;
}

bool Session::command(const Request& req) {
  // Read any payload first, so that even an error reply leaves the stream in step (proto.md
  // "Request message": consume the payload, then fail with NBD_EINVAL if it was not expected).
  const bool has_payload = extended_ ? (req.flags & kCmdFlagPayloadLen) != 0 : req.type == kCmdWrite;
  std::string payload;
  if (has_payload) {
    // proto.md: a server SHOULD hang up on a payload over its advertised maximum.
    if (req.length > config_.max_payload) {
      violation("payload of " + std::to_string(req.length) + " bytes is over the maximum payload " +
                std::to_string(config_.max_payload));
      return false;
    }
    if (!read_string(payload, req.length))
      return false;
  }

  if (req.type > kCmdBlockStatus)
    return send_error(req, kEinval, "unknown command " + std::to_string(req.type));
  if ((req.flags & ~allowed_flags(req.type)) != 0) {
    // PAYLOAD_LEN in a compact request breaks a MUST (proto.md "Request message").
    if (!extended_ && (req.flags & kCmdFlagPayloadLen) != 0)
      violation("NBD_CMD_FLAG_PAYLOAD_LEN in a compact request");
    char text[80];
    std::snprintf(text, sizeof text, "command flags 0x%x are not valid for command %u", unsigned{req.flags},
                  unsigned{req.type});
    return send_error(req, kEinval, text);
  }
  switch (req.type) {
    case kCmdRead:
      return cmd_read(req);
    case kCmdWrite:
      return cmd_write(req, payload);
    case kCmdFlush:
      // proto.md NBD_CMD_FLUSH: offset and length are reserved and MUST be zero.
      if (req.offset != 0 || req.length != 0)
        return send_error(req, kEinval, "NBD_CMD_FLUSH with nonzero offset or length");
      return send_ok(req);
    case kCmdBlockStatus:
      return cmd_block_status(req, payload);
    default:  // trim, cache, write zeroes: effect lengths, 64-bit with extended headers
      break;
  }
  const bool zeroes = req.type == kCmdWriteZeroes;
  if (req.type != kCmdCache && config_.read_only)
    return send_error(req, kEperm, "the export is read-only");
  // proto.md "Error values": NBD_ENOSPC for writing past the end, NBD_EINVAL for the others.
  if (!in_bounds(req.offset, req.length))
    return send_error(req, zeroes ? kEnospc : kEinval, "request beyond the end of the export");
  if (zeroes)
    export_->store->zero(req.offset, req.length, (req.flags & kCmdFlagNoHole) != 0);
  else if (req.type == kCmdTrim)
    export_->store->trim(req.offset, req.length);
  return send_ok(req);
}

// The command flags valid for a command given what was negotiated (proto.md "Command flags");
// NBD_CMD_FLAG_FUA is valid on all of them once NBD_FLAG_SEND_FUA is advertised.
uint16_t Session::allowed_flags(uint16_t type) const {
  switch (type) {
    case kCmdRead:
      return kCmdFlagFua | ((tflags_ & kFlagSendDf) != 0 ? kCmdFlagDf : 0);
    case kCmdWrite:
      return kCmdFlagFua | (extended_ ? kCmdFlagPayloadLen : 0);
    case kCmdWriteZeroes:
      return kCmdFlagFua | kCmdFlagNoHole | kCmdFlagFastZero;
    case kCmdBlockStatus:
      return kCmdFlagFua | kCmdFlagReqOne | ((tflags_ & kFlagBlockStatusPayload) != 0 ? kCmdFlagPayloadLen : 0);
    default:
      return kCmdFlagFua;
  }
}

bool Session::in_bounds(uint64_t offset, uint64_t length) const {
  const uint64_t size = export_->store->size();
  return offset <= size && length <= size - offset;
}

bool Session::cmd_read(const Request& req) {
  if (req.length > config_.max_payload)
    return send_error(req, kEoverflow, "read of " + std::to_string(req.length) + " bytes is over the maximum payload");
  if (!in_bounds(req.offset, req.length))
    return send_error(req, kEinval, "read beyond the end of the export");
  std::string data(req.length, '\0');
  const std::vector<Store::Run> runs = export_->store->read(req.offset, data.data(), req.length);
  if (mode_ == Mode::Simple || simple_in_extended())
    return send_simple(req, 0, data);
  if (req.length == 0)
    return send_ok(req);
  std::string head;
  // proto.md NBD_CMD_FLAG_DF: a single content chunk, holes included as zeroes.
  if ((req.flags & kCmdFlagDf) != 0) {
    put64(head, req.offset);
    return send_chunk(req, kReplyFlagDone, kReplyTypeOffsetData, head, data);
  }
  // One chunk per run: data as OFFSET_DATA, zeroes as OFFSET_HOLE; the last chunk ends the reply.
  uint64_t pos = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const Store::Run& run = runs[i];
    const uint16_t flags = i + 1 == runs.size() ? kReplyFlagDone : 0;
    head.clear();
    put64(head, req.offset + pos);
    bool sent = false;
    if (run.kind == Store::Kind::Data) {
      sent = send_chunk(req, flags, kReplyTypeOffsetData, head, std::string_view(data).substr(pos, run.length));
    } else {
      put32(head, static_cast<uint32_t>(run.length));  // <= the maximum payload
      sent = send_chunk(req, flags, kReplyTypeOffsetHole, head);
    }
    if (!sent)
      return false;
    pos += run.length;
  }
  return true;
}

bool Session::cmd_write(const Request& req, const std::string& payload) {
  // proto.md NBD_CMD_FLAG_PAYLOAD_LEN: with extended headers a write MUST carry the flag; without it
  // the length is an effect length and no payload follows, so the stream is still in step.
  if (extended_ && (req.flags & kCmdFlagPayloadLen) == 0) {
    violation("NBD_CMD_WRITE without NBD_CMD_FLAG_PAYLOAD_LEN in extended mode");
    return send_error(req, kEinval, "NBD_CMD_WRITE needs NBD_CMD_FLAG_PAYLOAD_LEN with extended headers");
  }
  if (config_.read_only)
    return send_error(req, kEperm, "the export is read-only");
  if (!in_bounds(req.offset, payload.size()))
    return send_error(req, kEnospc, "write beyond the end of the export");
  export_->store->write(req.offset, payload.data(), payload.size());
  return send_ok(req);
}

bool Session::cmd_block_status(const Request& req, const std::string& payload) {
  if (meta_.empty())
    return send_error(req, kEinval, "no metadata context was negotiated");
  uint64_t length = req.length;
  std::vector<const MetaContext*> wanted = meta_;
  if ((req.flags & kCmdFlagPayloadLen) != 0) {
    // proto.md NBD_CMD_BLOCK_STATUS payload form: 64-bit effect length, then n 32-bit context ids.
    if (payload.size() < 12 || (payload.size() - 8) % 4 != 0)
      return send_error(req, kEinval, "block status payload is not 8 + 4n bytes with n > 0");
    length = get64(payload.data());
    wanted.clear();
    for (size_t pos = 8; pos < payload.size(); pos += 4) {
      const uint32_t id = get32(payload.data() + pos);
      const auto it = std::find_if(meta_.begin(), meta_.end(), [&](const MetaContext* c) { return c->id == id; });
      if (it == meta_.end())
        return send_error(req, kEinval, "metadata context id " + std::to_string(id) + " was not negotiated");
      if (std::find(wanted.begin(), wanted.end(), *it) != wanted.end())
        return send_error(req, kEinval, "metadata context id " + std::to_string(id) + " appears twice");
      wanted.push_back(*it);
    }
    if (config_.has(Bad::BlockStatusIgnoresPayloadFilter))
      wanted = meta_;
  }
  if (length == 0)
    return send_error(req, kEinval, "block status of length 0");
  if (!in_bounds(req.offset, length))
    return send_error(req, kEinval, "block status beyond the end of the export");
  for (size_t i = 0; i < wanted.size(); ++i)
    if (!send_status_chunk(req, *wanted[i], length, i + 1 == wanted.size()))
      return false;
  return true;
}

bool Session::send_status_chunk(const Request& req, const MetaContext& ctx, uint64_t length, bool last) {
  // NBD_REPLY_TYPE_BLOCK_STATUS_EXT exactly when extended headers are in use, unless told to err.
  const bool ext = mode_ == Mode::Extended ? !config_.has(Bad::CompactBlockStatusInExtendedMode)
                                           : config_.has(Bad::BlockStatusExtInStructuredMode);
  size_t max = std::min(kMaxDescriptors, size_t{(config_.max_payload - 8) / (ext ? 16 : 8)});
  if ((req.flags & kCmdFlagReqOne) != 0)
    max = 1;
  // Extents never reach past the request, so with compact headers each fits in 32 bits.
  std::vector<std::pair<uint64_t, uint64_t>> extents;  // length, status
  if (ctx.wide) {
    const uint64_t end = req.offset + length;
    for (uint64_t pos = req.offset; pos < end && extents.size() < max;) {
      const uint64_t next = std::min(end, (pos / Store::kBlockSize + 1) * Store::kBlockSize);
      extents.emplace_back(next - pos, pos | kTestContextBit);
      pos = next;
    }
  } else {
    for (const Store::Run& run : export_->store->runs(req.offset, length, max)) {
      const uint64_t status = run.kind == Store::Kind::Hole   ? kStateHole | kStateZero
                              : run.kind == Store::Kind::Zero ? kStateZero
                                                              : 0;
      extents.emplace_back(run.length, status);
    }
  }
  std::string body;
  put32(body, ctx.id);
  if (ext) {
    const size_t count = extents.size() + (config_.has(Bad::ExtBlockStatusCountMismatch) ? 1 : 0);
    put32(body, static_cast<uint32_t>(count));
    for (const auto& [len, status] : extents) {
      put64(body, len);
      put64(body, status);
    }
  } else {
    for (const auto& [len, status] : extents) {
      put32(body, static_cast<uint32_t>(std::min<uint64_t>(len, UINT32_MAX)));
      put32(body, static_cast<uint32_t>(status));
    }
  }
  return send_chunk(req, last ? kReplyFlagDone : 0, ext ? kReplyTypeBlockStatusExt : kReplyTypeBlockStatus, body);
}

bool Session::send_chunk(const Request& req, uint16_t flags, uint16_t type, std::string_view head,
                         std::string_view data) {
  const uint64_t length = head.size() + data.size();
  std::string out;
  if (mode_ == Mode::Extended && !config_.has(Bad::StructuredReplyInExtendedMode)) {
    put32(out, kExtendedReplyMagic);
    put16(out, flags);
    put16(out, type);
    put64(out, req.cookie);
    // proto.md "Extended reply chunk message": offset MUST match the request's.
    put64(out, config_.has(Bad::WrongReplyOffset) ? req.offset + 1 : req.offset);
    put64(out, config_.has(Bad::ReplyLengthTooLarge) ? length + (uint64_t{1} << 32) : length);
  } else {
    put32(out, kStructuredReplyMagic);
    put16(out, flags);
    put16(out, type);
    put64(out, req.cookie);
    put32(out, static_cast<uint32_t>(length));
  }
  out += head;
  out += data;
  return write_all(out);
}

bool Session::send_simple(const Request& req, uint32_t error, std::string_view data) {
  std::string out;
  put32(out, kSimpleReplyMagic);
  put32(out, error);
  put64(out, req.cookie);
  out += data;
  return write_all(out);
}

// Success without data: a simple reply unless extended headers forbid it (proto.md "Simple reply
// message"); with structured replies both are allowed, and the simple one exercises a client's
// handling of the mix.
bool Session::send_ok(const Request& req) {
  if (mode_ == Mode::Extended && !simple_in_extended())
    return send_chunk(req, kReplyFlagDone, kReplyTypeNone, {});
  return send_simple(req, 0);
}

// Errors go in an NBD_REPLY_TYPE_ERROR chunk with a message whenever chunks are allowed: always
// for a read with structured replies (proto.md "Structured reply chunk message").
bool Session::send_error(const Request& req, uint32_t error, const std::string& message) {
  if (mode_ == Mode::Simple || simple_in_extended())
    return send_simple(req, error);
  std::string body;
  put32(body, error);
  put16(body, static_cast<uint16_t>(message.size()));
  body += message;
  return send_chunk(req, kReplyFlagDone, kReplyTypeError, body);
}

}  // namespace ext_server
