// handshake.cpp: the greeting, oldstyle and newstyle handshakes, and option haggling
// (proto.md "Handshake", "Option haggling").  One function per state; option replies are
// parsed only after their length is checked.
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstring>
#include <optional>
#include <string>

#include "debug.hpp"
#include "error.hpp"
#include "protocol.hpp"
#include "state/machine.hpp"
#include "transport/tls.hpp"

namespace nbd {
namespace {

using namespace nbd::proto;

// Largest option reply we accept: the biggest legitimate one (NBD_REP_SERVER) holds two
// 4096-byte strings.
constexpr uint32_t kMaxOptReply = 16 * 1024;

void expect(nbd_handle& h, size_t len) {
  h.rbuf = h.scratch;
  h.rlen = len;
}

// A receive that hit the end of the stream or an error during the handshake.
// The server hung up (EOF, a reset or a broken pipe) during the handshake.  Right after TLS
// is up that is how a server refuses a client certificate under TLS 1.3 (the client's side of
// the TLS handshake already finished), so the error says so, with one errno whichever way the
// hang-up showed.
Transition hung_up(const nbd_handle& h) {
  if (h.tls_negotiated)
    set_error(ECONNRESET, "handshake: the server closed the connection after TLS was set up "
                          "(did it refuse the client certificate?)");
  else
    set_error(ECONNRESET, "server closed the connection during the handshake");
  return Transition::Fail;
}

Transition recv_failed(const nbd_handle& h, Io io) {
  if (io == Io::Eof || (io == Io::Error && is_hang_up(last_errno())))
    return hung_up(h);
  return Transition::Fail;
}

// Receives into rbuf; nullopt once it is complete, otherwise the transition to return now.
std::optional<Transition> receive(nbd_handle& h) {
  const Io io = recv_into_rbuf(h);
  if (io == Io::Done)
    return std::nullopt;
  if (io == Io::Again)
    return Transition::Block;
  return recv_failed(h, io);
}

bool tls_required(const nbd_handle& h) { return h.tls == LIBNBD_TLS_REQUIRE; }

// Records export size and flags from the handshake.
bool set_export_info(nbd_handle& h, uint64_t size, uint16_t eflags) {
  if (size > static_cast<uint64_t>(INT64_MAX)) {
    set_error(EOVERFLOW, "server export size %" PRIu64 " is larger than INT64_MAX", size);
    return false;
  }
  // NBD_FLAG_HAS_FLAGS must always be set (proto.md "Transmission flags"); as libnbd, only
  // flags of 0 are refused.
  if (eflags == 0) {
    set_error(EINVAL, "handshake: the server sent transmission flags of 0");
    return false;
  }
  // Flags that contradict each other are dropped, as libnbd does: DF needs structured
  // replies, fast zero needs write zeroes.
  if ((eflags & kFlagSendDf) != 0 && !h.structured_replies) {
    if (h.debug_enabled())
      debug(h, "the server lacks structured replies: ignoring its DF flag");
    eflags &= static_cast<uint16_t>(~kFlagSendDf);
  }
  if ((eflags & kFlagSendFastZero) != 0 && (eflags & kFlagSendWriteZeroes) == 0) {
    if (h.debug_enabled())
      debug(h, "the server lacks write zeroes: ignoring its fast zero flag");
    eflags &= static_cast<uint16_t>(~kFlagSendFastZero);
  }
  if ((eflags & kFlagBlockStatusPayload) != 0 && !h.extended_headers) {
    if (h.debug_enabled())
      debug(h, "the server lacks extended headers: ignoring its block status payload flag");
    eflags &= static_cast<uint16_t>(~kFlagBlockStatusPayload);
  }
  // With nothing to ask for, the (empty) set of contexts is as valid as a negotiated one.
  if (h.request_meta_context && (!h.structured_replies || h.request_meta_contexts.empty()))
    h.meta_valid = true;
  h.exportsize = size;
  h.eflags = eflags;
  h.have_info = true;
  return true;
}

void append_opt(nbd_handle& h, uint32_t opt, const std::string& data) {
  unsigned char hdr[OptionRequest::kSize];
  OptionRequest{opt, static_cast<uint32_t>(data.size())}.encode(hdr);
  h.out.append_copy(hdr, sizeof hdr);
  h.out.append_copy(data.data(), data.size());
  ++h.chunks_sent;
}

// Export name, then the meta context queries (NBD_OPT_{SET,LIST}_META_CONTEXT): the caller's
// explicit list (nbd_opt_*_meta_context_queries) or the handle's.
std::string meta_context_request(const nbd_handle& h) {
  return encode_meta_context_request(h.export_name, h.opt_queries ? *h.opt_queries : h.request_meta_contexts);
}

// Builds the request for opt and queues it.
void send_option(nbd_handle& h, uint32_t opt) {
  std::string data;
  switch (opt) {
    case kOptExportName:
      data = h.export_name;
      break;
    case kOptGo:
    case kOptInfo: {
      uint16_t infos[3];
      size_t n = 0;
      if (h.full_info) {
        infos[n++] = kInfoName;
        infos[n++] = kInfoDescription;
      }
      if (h.request_block_size)
        infos[n++] = kInfoBlockSize;
      data = encode_info_request(h.export_name, {infos, n});
      h.forget_export_info();
      break;
    }
    case kOptSetMetaContext:
      h.meta_contexts.clear();
      h.meta_valid = false;
      data = meta_context_request(h);
      break;
    case kOptListMetaContext:
      data = meta_context_request(h);
      break;
    default:
      break;  // NBD_OPT_STRUCTURED_REPLY, _EXTENDED_HEADERS, _LIST, _ABORT, _STARTTLS: no data
  }
  if (h.debug_enabled())
    debug(h, "sending %s", opt_name(opt));
  append_opt(h, opt, data);
  h.opt_current = opt;
  h.state = State::OptSend;
}

// Sends the next queued option, or decides what follows when none is left.
Transition next_option(nbd_handle& h) {
  if (h.opt_todo.empty()) {
    if (!h.opt_mode && !h.opt_user) {
      // The automatic handshake ends by choosing the export.
      h.opt_todo.push_back(kOptGo);
    } else if (sends_pending(h)) {
      // The client flags are still queued: send them before waiting for the caller.
      h.opt_current = 0;
      h.state = State::OptSend;
      return Transition::Next;
    } else {
      h.state = State::Negotiating;  // until the caller's next option
      h.release_idle_memory();
      return Transition::Next;
    }
  }
  const uint32_t opt = h.opt_todo.front();
  h.opt_todo.erase(h.opt_todo.begin());
  // Extended headers bring structured replies with them: no need to ask for those too.
  if (opt == kOptStructuredReply && !h.opt_user && h.structured_replies)
    return next_option(h);
  // Metadata contexts are chosen per export, just before NBD_OPT_GO or NBD_OPT_INFO (unless
  // nbd_set_request_meta_context turned that off), and again each time: the option that
  // just ended was that request if opt_current still names it.
  if ((opt == kOptGo || opt == kOptInfo) && h.request_meta_context && h.structured_replies &&
      !h.request_meta_contexts.empty() && h.opt_current != kOptSetMetaContext) {
    h.opt_todo.insert(h.opt_todo.begin(), opt);
    send_option(h, kOptSetMetaContext);
    return Transition::Next;
  }
  send_option(h, opt);
  return Transition::Next;
}

// Ends the caller's option (opt mode): runs its completion and releases its callbacks.
void finish_user_option(nbd_handle& h, int err) {
  h.opt_error = err;
  if (h.opt_user && h.opt_todo.empty()) {
    int e = err;
    if (h.opt_completion.has_callback())
      h.opt_completion(&e);
    // The completion's free runs last, as for commands.
    h.opt_list_cb.reset();
    h.opt_context_cb.reset();
    h.opt_completion.reset();
    h.opt_queries.reset();
    h.opt_user = false;
  }
}

// Whether the current option is the caller's own (opt mode), not one the handshake or the
// caller's nbd_opt_go or nbd_opt_info sends first by itself.
bool ends_user_option(const nbd_handle& h) { return h.opt_user && h.opt_todo.empty(); }

// The current option succeeded (or was refused harmlessly): the caller's option ends here,
// the automatic handshake goes on with the next one.
Transition option_done(nbd_handle& h, int err) {
  if (!ends_user_option(h))
    return next_option(h);
  h.opt_todo.clear();
  finish_user_option(h, err);
  h.state = State::Negotiating;
  return Transition::Next;
}

// An error reply to the current option.  Returns Fail when the connection cannot go on.
Transition option_error(nbd_handle& h) {
  const uint32_t opt = h.opt_current;
  const std::string msg(h.payload.begin(), h.payload.end());
  // A refused STARTTLS, STRUCTURED_REPLY or EXTENDED_HEADERS leaves the connection as it was:
  // the caller's nbd_opt_* call reports false, the automatic handshake goes on without.
  const int refused = h.reply_type == kRepErrInvalid || h.reply_type == kRepErrExtHeaderReqd ? EINVAL : ENOTSUP;
  switch (opt) {
    case kOptStartTls:
      // Refused TLS: fine when it was only allowed; required, the connection ends here.
      if (!tls_required(h)) {
        if (h.debug_enabled())
          debug(h, "the server refused TLS; continuing without it");
        return option_done(h, refused);
      }
      set_error(ENOTSUP, "handshake: TLS is required but the server refused NBD_OPT_STARTTLS%s%s",
                msg.empty() ? "" : ": ", msg.c_str());
      return Transition::Fail;
    case kOptStructuredReply:
    case kOptExtendedHeaders:
      if (h.debug_enabled())
        debug(h, "the server refused %s%s%s", opt_name(opt), msg.empty() ? "" : ": ", msg.c_str());
      return option_done(h, refused);
    case kOptSetMetaContext:
      if (!ends_user_option(h)) {  // the automatic request: go on without contexts
        h.meta_contexts.clear();
        h.meta_valid = true;
        return next_option(h);
      }
      break;
    case kOptGo:
      // NBD_REP_ERR_UNSUP here means the server predates NBD_OPT_GO: fall back to
      // NBD_OPT_EXPORT_NAME (proto.md "Option types").
      if (h.reply_type == kRepErrUnsup) {
        h.opt_todo.insert(h.opt_todo.begin(), kOptExportName);
        return next_option(h);
      }
      break;
    default:
      break;
  }
  // The errno of each refusal, as libnbd gives it: a refused listing is always ENOTSUP, and
  // refusals without an errno of their own (policy, platform, unknown codes) too.
  int err;
  switch (opt == kOptList ? kRepErrUnsup : h.reply_type) {
    case kRepErrUnknown:
      err = ENOENT;
      break;
    case kRepErrShutdown:
      err = ESHUTDOWN;
      break;
    case kRepErrInvalid:
    case kRepErrTooBig:
    case kRepErrBlockSizeReqd:
      err = EINVAL;
      break;
    default:
      err = ENOTSUP;
      break;
  }
  // Options about one export name it, so "no such export" says which one was asked for.
  std::string about;
  if (opt == kOptGo || opt == kOptInfo || opt == kOptExportName)
    about = " for export \"" + h.export_name + "\"";
  if (h.reply_type == kRepErrTlsReqd)
    set_error(err, "handshake: the server requires TLS first (see nbd_set_tls)%s%s",
              msg.empty() ? "" : ": ", msg.c_str());
  else
    set_error(err, "server replied with error to %s%s%s%s", opt_name(opt), about.c_str(),
              msg.empty() ? "" : ": ", msg.c_str());
  if (!h.opt_user)
    return Transition::Fail;  // the automatic handshake cannot go on without its export
  h.opt_todo.clear();
  finish_user_option(h, err);
  h.state = State::Negotiating;
  return Transition::Next;
}

Transition protocol_error(const char* what) {
  set_error(EPROTO, "handshake: %s", what);
  return Transition::Fail;
}

// NBD_REP_INFO: one piece of export information.
Transition option_info(nbd_handle& h) {
  const unsigned char* p = h.payload.data();
  const size_t len = h.payload.size();
  if (len < InfoReply::kSize)
    return protocol_error("NBD_REP_INFO is too short");
  switch (InfoReply::decode(p).type) {
    case kInfoExport: {
      if (len != InfoExport::kSize)
        return protocol_error("NBD_INFO_EXPORT has the wrong length");
      const InfoExport info = InfoExport::decode(p);
      if (!set_export_info(h, info.size, info.eflags))
        return Transition::Fail;
      break;
    }
    case kInfoName:
      h.canonical_name = std::string(p + InfoReply::kSize, p + len);
      break;
    case kInfoDescription:
      h.description = std::string(p + InfoReply::kSize, p + len);
      break;
    case kInfoBlockSize: {
      if (len != InfoBlockSize::kSize)
        return protocol_error("NBD_INFO_BLOCK_SIZE has the wrong length");
      const InfoBlockSize sizes = InfoBlockSize::decode(p);
      const uint32_t min = sizes.minimum, pref = sizes.preferred, max = sizes.maximum;
      // proto.md "Block size constraints": powers of two, min <= 64k, min <= pref, max a
      // multiple of min (or 0xffffffff, no limit) and at least pref.  Constraints that break
      // these rules are ignored, as libnbd does: they only ever restrict the client.
      auto pow2 = [](uint32_t v) { return v != 0 && (v & (v - 1)) == 0; };
      if (!pow2(min) || min > 65536 || !pow2(pref) || pref < min || max < pref ||
          (max != UINT32_MAX && max % min != 0)) {
        if (h.debug_enabled())
          debug(h, "ignoring contradictory block size constraints %u/%u/%u", min, pref, max);
        break;
      }
      h.block_minimum = min;
      h.block_preferred = pref;
      h.block_maximum = max;
      break;
    }
    default:
      break;  // unknown information may be ignored
  }
  expect(h, OptionReply::kSize);
  h.state = State::OptRecvHeader;
  return Transition::Next;
}

// The PSK identity: the one set, else the login name (as libnbd).
std::optional<std::string> tls_identity(const nbd_handle& h) {
  if (h.tls_username)
    return *h.tls_username;
  char name[256];
  if (getlogin_r(name, sizeof name) == 0)
    return std::string(name);
  if (const struct passwd* pw = getpwuid(geteuid()))
    return std::string(pw->pw_name);
  set_error(errno_or(errno, ENOENT), "TLS: no PSK username was set (nbd_set_tls_username) and "
                                     "the login name is unknown");
  return std::nullopt;
}

// The server accepted NBD_OPT_STARTTLS: wrap the socket in TLS and start the TLS handshake.
Transition start_tls(nbd_handle& h) {
  // Nothing may follow the reply in plaintext: bytes already buffered were sent before TLS
  // was up, by a server (or a man in the middle) trying to inject them.
  if (h.in_pos != h.in_end)
    return protocol_error("the server sent data after accepting NBD_OPT_STARTTLS, before TLS "
                          "was set up");
  if (h.tls_negotiated)
    return protocol_error("the server accepted NBD_OPT_STARTTLS a second time");
  // Nothing agreed in plaintext survives the upgrade (proto.md: options are negotiated again).
  h.structured_replies = false;
  h.extended_headers = false;
  h.meta_valid = false;
  h.meta_contexts.clear();
  h.have_info = false;
  TlsSettings s;
  s.certificates = h.tls_certificates;
  s.psk_file = h.tls_psk_file;
  s.verify_peer = h.tls_verify_peer;
  if (!s.psk_file.empty()) {
    std::optional<std::string> who = tls_identity(h);
    if (!who)
      return Transition::Fail;
    s.username = std::move(*who);
  }
  // The certificate must name the host on TCP, or the name set with nbd_set_tls_hostname
  // anywhere; a Unix socket has no host, so only the chain is checked there (libnbd 1.14
  // checks nothing on Unix sockets).
  s.hostname = tls_hostname_in_effect(h);
  std::unique_ptr<TlsTransport> t = make_tls_transport(h.sock, s);
  if (!t)
    return Transition::Fail;
  h.sock = std::move(t);  // its records go out through the socket's sender
  if (h.debug_enabled())
    debug(h, "starting the TLS handshake (%s)", s.psk_file.empty() ? "certificates" : "PSK");
  h.state = State::TlsHandshake;
  return Transition::Next;
}

// NBD_REP_ACK: the current option is complete.
Transition option_ack(nbd_handle& h) {
  switch (h.opt_current) {
    case kOptStartTls:
      return start_tls(h);
    case kOptStructuredReply:
      h.structured_replies = true;
      return option_done(h, 0);
    case kOptExtendedHeaders:
      if (h.debug_enabled())
        debug(h, "extended headers negotiated");
      h.extended_headers = true;
      h.structured_replies = true;  // extended headers include them
      return option_done(h, 0);
    case kOptSetMetaContext:
      h.meta_valid = true;
      return option_done(h, 0);
    case kOptGo:
    case kOptInfo:
      if (!h.have_info)
        return protocol_error("server did not send the export size and flags");
      finish_user_option(h, 0);
      if (h.opt_current == kOptGo) {
        enter_transmission(h);
        return Transition::Next;
      }
      h.state = State::Negotiating;
      return Transition::Next;
    case kOptList:
    case kOptListMetaContext:
      finish_user_option(h, 0);
      h.state = State::Negotiating;
      return Transition::Next;
    default:
      return protocol_error("unexpected NBD_REP_ACK");
  }
}

}  // namespace

Transition start_handshake(nbd_handle& h) {
  h.sock->connected();  // before the first byte goes out: the sender may set the socket's mode
  expect(h, Greeting::kSize);
  h.state = State::RecvGreeting;
  return Transition::Next;
}

Transition h_magic_recv_greeting(nbd_handle& h) {
  if (auto t = receive(h))
    return *t;
  const Greeting greeting = Greeting::decode(h.scratch);
  if (greeting.magic != kNbdMagic)
    return protocol_error("server did not send NBDMAGIC: not an NBD server");
  const uint64_t version = greeting.version;
  if (version == kIHaveOpt || version == kOldstyleMagic)
    ++h.chunks_received;
  if (version == kIHaveOpt) {
    expect(h, ServerFlags::kSize);
    h.state = State::RecvHandshakeFlags;
    return Transition::Next;
  }
  if (version == kOldstyleMagic) {
    // Oldstyle has no option haggling, so TLS cannot be started: never fall back to plaintext.
    if (tls_required(h)) {
      set_error(ENOTSUP, "handshake: server uses the oldstyle protocol, so TLS cannot be used");
      return Transition::Fail;
    }
    expect(h, OldstyleRest::kSize);
    h.state = State::RecvOldstyle;
    return Transition::Next;
  }
  return protocol_error("unknown handshake version after NBDMAGIC");
}

Transition h_magic_recv_oldstyle(nbd_handle& h) {
  if (auto t = receive(h))
    return *t;
  h.protocol = "oldstyle";
  const OldstyleRest rest = OldstyleRest::decode(h.scratch);
  h.gflags = rest.gflags;
  if (!set_export_info(h, rest.size, rest.eflags))
    return Transition::Fail;
  enter_transmission(h);
  return Transition::Next;
}

Transition h_newstyle_recv_flags(nbd_handle& h) {
  if (auto t = receive(h))
    return *t;
  // What both sides agree to is what counts from here on (h.gflags).
  const uint32_t cflags = h.handshake_flags & ServerFlags::decode(h.scratch).flags & (kFlagFixedNewstyle | kFlagNoZeroes);
  h.gflags = static_cast<uint16_t>(cflags);
  const bool fixed = fixed_newstyle(h);
  h.protocol = fixed ? "newstyle-fixed" : "newstyle";
  unsigned char b[ClientFlags::kSize];
  ClientFlags{cflags}.encode(b);
  h.out.append_copy(b, sizeof b);
  h.opt_todo.clear();
  if (!fixed) {
    // Plain newstyle servers understand only NBD_OPT_EXPORT_NAME, so no NBD_OPT_STARTTLS.
    if (tls_required(h)) {
      set_error(ENOTSUP, "handshake: TLS is required but the server is not fixed newstyle, "
                         "so it cannot start TLS");
      return Transition::Fail;
    }
    // In opt mode the caller's nbd_opt_go sends it (begin_user_option).
    if (!h.opt_mode)
      h.opt_todo.push_back(kOptExportName);
    return start_options(h);
  }
  // TLS comes first, before anything that could be seen or tampered with.
  if (h.tls != LIBNBD_TLS_DISABLE)
    h.opt_todo.push_back(kOptStartTls);
  // Extended headers first (they bring structured replies), as libnbd 1.18 asks; only
  // together with structured replies, which they extend.
  if (h.request_extended_headers && h.request_structured_replies)
    h.opt_todo.push_back(kOptExtendedHeaders);
  if (h.request_structured_replies)
    h.opt_todo.push_back(kOptStructuredReply);
  return start_options(h);
}

Transition h_tls_handshake(nbd_handle& h) {
  switch (h.sock->tls()->handshake()) {
    case TlsStep::Done:
      h.tls_negotiated = true;
      if (h.debug_enabled())
        debug(h, "TLS is up");
      return option_done(h, 0);
    case TlsStep::WantRead:
    case TlsStep::WantWrite:
      return Transition::Block;
    case TlsStep::Error:
      break;
  }
  return Transition::Fail;
}

bool fixed_newstyle(const nbd_handle& h) { return (h.gflags & kFlagFixedNewstyle) != 0; }

void abandon_user_option(nbd_handle& h, int err) {
  if (!h.opt_user)
    return;
  h.opt_todo.clear();
  finish_user_option(h, err);
}

Transition begin_user_option(nbd_handle& h, uint32_t opt) {
  // A plain newstyle server knows no NBD_OPT_GO: the export is chosen with
  // NBD_OPT_EXPORT_NAME, which enters transmission at once (proto.md "Newstyle negotiation").
  if (opt == kOptGo && !fixed_newstyle(h))
    opt = kOptExportName;
  h.opt_user = true;
  h.opt_error = 0;
  h.opt_count = 0;
  h.opt_current = 0;  // no earlier option counts as this one's meta context request
  h.opt_todo.assign(1, opt);
  return next_option(h);
}

Transition start_options(nbd_handle& h) {
  const uint32_t opt = h.opt_todo.empty() ? 0 : h.opt_todo.front();
  if (opt == kOptExportName) {
    h.opt_todo.erase(h.opt_todo.begin());
    send_option(h, opt);
    return Transition::Next;
  }
  return next_option(h);
}

Transition h_newstyle_opt_send(nbd_handle& h) {
  const Io io = send_from_wbuf(h);
  if (io == Io::Again)
    return Transition::Block;
  if (io == Io::Error)
    return is_hang_up(last_errno()) ? hung_up(h) : Transition::Fail;
  switch (h.opt_current) {
    case kOptExportName:
      expect(h, ExportNameReply::wire_size((h.gflags & kFlagNoZeroes) != 0));
      h.state = State::ExportNameReply;
      break;
    case kOptAbort:
      // The server may reply or just hang up; either way we are done with it.
      finish_user_option(h, 0);
      close_connection(h);
      break;
    case 0:
      // Only the client flags were queued (nothing else to send).
      return next_option(h);
    default:
      expect(h, OptionReply::kSize);
      h.state = State::OptRecvHeader;
      break;
  }
  return Transition::Next;
}

Transition h_newstyle_opt_recv_header(nbd_handle& h) {
  if (auto t = receive(h))
    return *t;
  const OptionReply reply = OptionReply::decode(h.scratch);
  if (reply.magic != kOptReplyMagic)
    return protocol_error("bad option reply magic");
  if (reply.option != h.opt_current)
    return protocol_error("option reply is for a different option");
  h.reply_type = reply.type;
  h.reply_len = reply.length;
  if (h.reply_len > kMaxOptReply)
    return protocol_error("option reply is too large");
  h.payload.resize(h.reply_len);
  h.rbuf = h.payload.data();
  h.rlen = h.reply_len;
  h.state = State::OptRecvPayload;
  return Transition::Next;
}

Transition h_newstyle_opt_recv_payload(nbd_handle& h) {
  if (auto t = receive(h))
    return *t;
  if ((h.reply_type & kRepErrBit) != 0)
    return option_error(h);
  const unsigned char* p = h.payload.data();
  const size_t len = h.payload.size();
  switch (h.reply_type) {
    case kRepAck:
      if (len != 0)
        return protocol_error("NBD_REP_ACK with a payload");
      return option_ack(h);
    case kRepInfo:
      if (h.opt_current != kOptGo && h.opt_current != kOptInfo)
        return protocol_error("NBD_REP_INFO for an option that does not ask for it");
      return option_info(h);
    case kRepServer: {
      if (h.opt_current != kOptList || len < ServerReply::kSize)
        return protocol_error("unexpected or short NBD_REP_SERVER");
      const uint32_t namelen = ServerReply::decode(p).name_length;
      if (namelen > len - ServerReply::kSize)
        return protocol_error("NBD_REP_SERVER name overruns its reply");
      const unsigned char* text = p + ServerReply::kSize;
      const std::string name(text, text + namelen);
      const std::string desc(text + namelen, p + len);
      ++h.opt_count;
      if (h.opt_list_cb.has_callback())
        h.opt_list_cb(name.c_str(), desc.c_str());
      break;
    }
    case kRepMetaContext: {
      if ((h.opt_current != kOptSetMetaContext && h.opt_current != kOptListMetaContext) ||
          len < MetaContextReply::kSize)
        return protocol_error("unexpected or short NBD_REP_META_CONTEXT");
      const std::string name(p + MetaContextReply::kSize, p + len);
      if (h.opt_current == kOptSetMetaContext)
        h.meta_contexts.push_back({MetaContextReply::decode(p).id, name});
      ++h.opt_count;
      if (h.opt_context_cb.has_callback())
        h.opt_context_cb(name.c_str());
      break;
    }
    default:
      return protocol_error("unknown option reply type");
  }
  expect(h, OptionReply::kSize);
  h.state = State::OptRecvHeader;
  return Transition::Next;
}

Transition h_newstyle_export_name_reply(nbd_handle& h) {
  const Io io = recv_into_rbuf(h);
  if (io == Io::Again)
    return Transition::Block;
  if (io == Io::Eof) {
    // After NBD_OPT_EXPORT_NAME a server can refuse only by hanging up.
    set_error(ENOENT, "server closed the connection: unknown export name \"%s\"?",
              h.export_name.c_str());
    return Transition::Fail;
  }
  if (io != Io::Done)
    return Transition::Fail;
  const ExportNameReply reply = ExportNameReply::decode(h.scratch);
  if (!set_export_info(h, reply.size, reply.eflags))
    return Transition::Fail;
  h.opt_todo.clear();
  finish_user_option(h, 0);
  enter_transmission(h);
  return Transition::Next;
}

}  // namespace nbd
