// tls.hpp: TLS over another transport, with GnuTLS (proto.md "TLS support").
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "transport/transport.hpp"

namespace nbd {

// What the handle asks of a TLS session.
struct TlsSettings {
  std::string certificates;  // a directory (ca-cert.pem ...); empty: the system trust store
  std::string psk_file;      // non-empty: PSK instead of certificates
  std::string username;      // the PSK identity
  bool verify_peer = true;
  std::string hostname;      // checked against the certificate, and sent as SNI, when non-empty
};

enum class TlsStep {
  Done,       // the handshake is complete
  WantRead,   // call again when the socket is readable
  WantWrite,  // call again when the socket is writable
  Error,      // error recorded with set_error
};

class TlsTransport : public Transport {
 public:
  TlsTransport* tls() final { return this; }
  // Runs the handshake as far as the socket allows.
  virtual TlsStep handshake() = 0;
  // Which way the handshake is waiting (after WantRead / WantWrite).
  virtual bool wants_write() const = 0;
};

// Wraps inner (taking it) in a client TLS session, or returns nullptr with the error recorded
// (bad certificate directory, unreadable PSK file, unknown PSK user...) and inner untouched.
std::unique_ptr<TlsTransport> make_tls_transport(std::unique_ptr<Transport>& inner,
                                                 const TlsSettings& settings);

}  // namespace nbd
