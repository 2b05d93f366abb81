// greeting.cpp: the start of the handshake: the server's greeting, the oldstyle handshake, and
// the newstyle handshake flags, which decide the options the handshake sends (proto.md
// "Oldstyle negotiation", "Newstyle negotiation").
#include <cerrno>

#include "error.hpp"
#include "protocol.hpp"
#include "state/handshake.hpp"

namespace nbd {

using namespace nbd::proto;

Transition start_handshake(nbd_handle& h) {
  // A new connection knows nothing of what an earlier one agreed (a reconnection's, or one
  // that failed part way through its handshake).
  h.forget_negotiation();
  h.forget_export_info();
  h.protocol = nullptr;
  h.gflags = 0;
  h.tls_negotiated = false;
  h.opt_todo.clear();
  h.opt_current = 0;
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

bool fixed_newstyle(const nbd_handle& h) { return (h.gflags & kFlagFixedNewstyle) != 0; }

}  // namespace nbd
