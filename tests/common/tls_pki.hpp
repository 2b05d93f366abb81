// tls_pki.hpp: a throwaway X.509 and pre-shared-key setup for the TLS tests, made at run time with
// GnuTLS's certtool and psktool, once per test binary.
#pragma once

#include <string>

namespace nbd_test {

// Directories and files of the test PKI; every path is absolute.  The file names are the ones
// nbdkit, qemu-nbd and libnbd clients look for in a certificate directory: ca-cert.pem,
// server-cert.pem + server-key.pem, client-cert.pem + client-key.pem.
struct Pki {
  // The good set: the CA, a server certificate for localhost, 127.0.0.1 and ::1, and a client
  // certificate, all signed by that CA.  It serves as the servers' --tls-certificates directory
  // and as the client's tls-certificates directory alike.
  std::string dir;
  // Client directory trusting an unrelated CA only (ca-cert.pem): the server looks forged.
  std::string other_ca_dir;
  // Server directory whose certificate, from the good CA, was valid in the year 2000 only.
  std::string expired_dir;
  // Server directory whose certificate, from the good CA, names wrong.example and no addresses.
  std::string wrong_host_dir;
  // Client directory with the good ca-cert.pem and no client certificate.
  std::string no_client_cert_dir;
  // Client directory with the good ca-cert.pem and a client certificate from the unrelated CA.
  std::string foreign_client_dir;
  // Directory holding keys.psk (qemu-nbd's tls-creds-psk wants that name in its dir=).
  std::string psk_dir;
  // psk_dir/keys.psk: user kPskUser with its key (psktool format, "user:hexkey").
  std::string psk_file;
  // kPskUser with another key.
  std::string wrong_psk_file;
  // kUnknownPskUser, whom psk_file does not list, with a key of its own.
  std::string unknown_user_psk_file;
};

inline constexpr const char* kPskUser = "alice";
inline constexpr const char* kUnknownPskUser = "bob";

// Whether certtool and psktool (Debian: gnutls-bin) are on $PATH; without them there is no PKI
// and the TLS tests skip.
bool have_pki_tools();

// The PKI, made on the first call in a private directory that lasts until the process exits.
// Generation takes well under a second (ECDSA keys).  nullptr if it failed: then every call
// records an ADD_FAILURE with the tools' output, so each test that needs it fails with the reason.
const Pki* test_pki();

}  // namespace nbd_test
