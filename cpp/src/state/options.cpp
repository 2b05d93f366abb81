// options.cpp: the option driver (proto.md "Option haggling"): it sends the queued options one
// at a time, reads each reply header and payload, and hands them to the current option's
// record (state/handshake.hpp), which says how the option ends.  The records of the options
// with nothing to read but an acknowledgement live here too: NBD_OPT_STRUCTURED_REPLY,
// NBD_OPT_EXTENDED_HEADERS and NBD_OPT_ABORT.
#include <cerrno>
#include <string>

#include "debug.hpp"
#include "error.hpp"
#include "protocol.hpp"
#include "state/handshake.hpp"

namespace nbd {

using namespace nbd::proto;

namespace {

// Largest option reply we accept: the biggest legitimate one (NBD_REP_SERVER) holds two
// 4096-byte strings.
constexpr uint32_t kMaxOptReply = 16 * 1024;

// ---- NBD_OPT_STRUCTURED_REPLY, NBD_OPT_EXTENDED_HEADERS, NBD_OPT_ABORT, client flags ----

// A refused STRUCTURED_REPLY or EXTENDED_HEADERS leaves the connection as it was: the
// caller's nbd_opt_* call reports false, the automatic handshake goes on without.
Transition refused_harmlessly(nbd_handle& h, const Refusal& r) {
  if (h.debug_enabled())
    debug(h, "the server refused %s%s%s", opt_name(h.opt_current), r.separator(), r.message.c_str());
  return option_done(h, r.harmless_errno());
}

const OptionHandler kStructuredReplyOption = {
    .opt = kOptStructuredReply,
    // Extended headers bring structured replies with them: no need to ask for those too.
    .skip = [](const nbd_handle& h) { return h.structured_replies; },
    .ack =
        [](nbd_handle& h) {
          h.structured_replies = true;
          return option_done(h, 0);
        },
    .refused = refused_harmlessly,
};

const OptionHandler kExtendedHeadersOption = {
    .opt = kOptExtendedHeaders,
    .ack =
        [](nbd_handle& h) {
          if (h.debug_enabled())
            debug(h, "extended headers negotiated");
          h.extended_headers = true;
          h.structured_replies = true;  // extended headers include them
          return option_done(h, 0);
        },
    .refused = refused_harmlessly,
};

const OptionHandler kAbortOption = {
    .opt = kOptAbort,
    // The server may reply or just hang up; either way we are done with it.
    .sent =
        [](nbd_handle& h) {
          finish_user_option(h, 0);
          close_connection(h);
          return Transition::Next;
        },
};

// Opt 0: only the client flags were queued (nothing else to send).
const OptionHandler kClientFlagsOnly = {.sent = next_option};

// Every option the handshake sends.
const OptionHandler* const kOptions[] = {
    &kClientFlagsOnly,     &kExportNameOption,     &kAbortOption,          &kListOption,
    &kStartTlsOption,      &kInfoOption,           &kGoOption,             &kStructuredReplyOption,
    &kListMetaContextOption, &kSetMetaContextOption, &kExtendedHeadersOption,
};

const OptionHandler& option_handler(uint32_t opt) {
  for (const OptionHandler* o : kOptions)
    if (o->opt == opt)
      return *o;
  return kClientFlagsOnly;  // not reached: only the options above are ever sent
}

// ---- Sending ----

void append_opt(nbd_handle& h, uint32_t opt, const std::string& data) {
  unsigned char hdr[OptionRequest::kSize];
  OptionRequest{opt, static_cast<uint32_t>(data.size())}.encode(hdr);
  h.out.append_copy(hdr, sizeof hdr);
  h.out.append_copy(data.data(), data.size());
  ++h.chunks_sent;
}

// Builds the option's request and queues it.
void send_option(nbd_handle& h, const OptionHandler& o) {
  const std::string data = o.request != nullptr ? o.request(h) : std::string();
  if (h.debug_enabled())
    debug(h, "sending %s", opt_name(o.opt));
  append_opt(h, o.opt, data);
  h.opt_current = o.opt;
  h.state = State::OptSend;
}

// Waits for the next reply header of the current option.
Transition expect_reply(nbd_handle& h) {
  expect(h, OptionReply::kSize);
  h.state = State::OptRecvHeader;
  return Transition::Next;
}

}  // namespace

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
  const OptionHandler& o = option_handler(h.opt_todo.front());
  h.opt_todo.erase(h.opt_todo.begin());
  if (!h.opt_user && o.skip != nullptr && o.skip(h))
    return next_option(h);
  // Metadata contexts are chosen per export, just before NBD_OPT_GO or NBD_OPT_INFO (unless
  // nbd_set_request_meta_context turned that off), and again each time: the option that
  // just ended was that request if opt_current still names it.
  if (o.selects_export && h.request_meta_context && h.structured_replies &&
      !h.request_meta_contexts.empty() && h.opt_current != kOptSetMetaContext) {
    h.opt_todo.insert(h.opt_todo.begin(), o.opt);
    send_option(h, kSetMetaContextOption);
    return Transition::Next;
  }
  send_option(h, o);
  return Transition::Next;
}

void finish_user_option(nbd_handle& h, int err) {
  h.opt_error = err;
  if (h.opt_user && h.opt_todo.empty()) {
    int e = err;
    if (h.opt_callbacks.completion.has_callback())
      h.opt_callbacks.completion(&e);
    h.opt_callbacks.reset();
    h.opt_user = false;
  }
}

bool ends_user_option(const nbd_handle& h) { return h.opt_user && h.opt_todo.empty(); }

Transition option_done(nbd_handle& h, int err) {
  if (!ends_user_option(h))
    return next_option(h);
  h.opt_todo.clear();
  finish_user_option(h, err);
  h.state = State::Negotiating;
  return Transition::Next;
}

int Refusal::harmless_errno() const {
  return type == kRepErrInvalid || type == kRepErrExtHeaderReqd ? EINVAL : ENOTSUP;
}

// Refusals without an errno of their own (policy, platform, unknown codes) are ENOTSUP.
int refusal_errno(uint32_t type) {
  switch (type) {
    case kRepErrUnknown:
      return ENOENT;
    case kRepErrShutdown:
      return ESHUTDOWN;
    case kRepErrInvalid:
    case kRepErrTooBig:
    case kRepErrBlockSizeReqd:
      return EINVAL;
    default:
      return ENOTSUP;
  }
}

Transition refuse_option(nbd_handle& h, const Refusal& r, int err) {
  // Options about one export name it, so "no such export" says which one was asked for.
  std::string about;
  if (option_handler(h.opt_current).selects_export)
    about = " for export \"" + h.export_name + "\"";
  if (r.type == kRepErrTlsReqd)
    set_error(err, "handshake: the server requires TLS first (see nbd_set_tls)%s%s", r.separator(),
              r.message.c_str());
  else
    set_error(err, "server replied with error to %s%s%s%s", opt_name(h.opt_current), about.c_str(),
              r.separator(), r.message.c_str());
  if (!h.opt_user)
    return Transition::Fail;  // the automatic handshake cannot go on without its export
  h.opt_todo.clear();
  finish_user_option(h, err);
  h.state = State::Negotiating;
  return Transition::Next;
}

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

Transition start_options(nbd_handle& h) { return next_option(h); }

Transition h_newstyle_opt_send(nbd_handle& h) {
  const Io io = send_from_wbuf(h);
  if (io == Io::Again)
    return Transition::Block;
  if (io == Io::Error)
    return is_hang_up(last_errno()) ? hung_up(h) : Transition::Fail;
  const OptionHandler& o = option_handler(h.opt_current);
  return o.sent != nullptr ? o.sent(h) : expect_reply(h);
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
  const OptionHandler& o = option_handler(h.opt_current);
  const std::span<const unsigned char> p(h.payload);
  if ((h.reply_type & kRepErrBit) != 0) {
    const Refusal r{h.reply_type, std::string(p.begin(), p.end())};
    return o.refused != nullptr ? o.refused(h, r) : refuse_option(h, r, refusal_errno(r.type));
  }
  bool ok;
  switch (h.reply_type) {
    case kRepAck:
      if (!p.empty())
        return protocol_error("NBD_REP_ACK with a payload");
      return o.ack != nullptr ? o.ack(h) : protocol_error("unexpected NBD_REP_ACK");
    case kRepInfo:
      if (o.read_info == nullptr)
        return protocol_error("NBD_REP_INFO for an option that does not ask for it");
      ok = o.read_info(h, p);
      break;
    case kRepServer:
      if (o.read_server == nullptr || p.size() < ServerReply::kSize)
        return protocol_error("unexpected or short NBD_REP_SERVER");
      ok = o.read_server(h, p);
      break;
    case kRepMetaContext:
      if (o.read_meta_context == nullptr || p.size() < MetaContextReply::kSize)
        return protocol_error("unexpected or short NBD_REP_META_CONTEXT");
      ok = o.read_meta_context(h, p);
      break;
    default:
      return protocol_error("unknown option reply type");
  }
  return ok ? expect_reply(h) : Transition::Fail;
}

}  // namespace nbd
