// starttls.cpp: NBD_OPT_STARTTLS and the TLS handshake that follows its acknowledgement
// (proto.md "TLS support"): the socket is wrapped in TLS, and whatever was agreed in plaintext
// is negotiated again over it.
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <string>

#include "debug.hpp"
#include "error.hpp"
#include "protocol.hpp"
#include "state/handshake.hpp"
#include "transport/tls.hpp"

namespace nbd {

using namespace nbd::proto;

namespace {

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
  h.forget_negotiation();
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

// Refused TLS: fine when it was only allowed; required, the connection ends here.
Transition starttls_refused(nbd_handle& h, const Refusal& r) {
  if (!tls_required(h)) {
    if (h.debug_enabled())
      debug(h, "the server refused TLS; continuing without it");
    return option_done(h, r.harmless_errno());
  }
  set_error(ENOTSUP, "handshake: TLS is required but the server refused NBD_OPT_STARTTLS%s%s", r.separator(),
            r.message.c_str());
  return Transition::Fail;
}

}  // namespace

const OptionHandler kStartTlsOption = {
    .opt = kOptStartTls,
    .ack = start_tls,
    .refused = starttls_refused,
};

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

}  // namespace nbd
