// uri.hpp: parsing and formatting of NBD URIs (NetworkBlockDevice/nbd doc/uri.md) without libxml2.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nbd {

// What an NBD URI names.  As parse_uri fills it, every string is percent-decoded and NUL-free.
struct ParsedUri {
  enum class Transport { Tcp, Unix, Vsock };
  Transport transport = Transport::Tcp;
  bool tls = false;            // nbds, nbds+unix, nbds+vsock
  std::string host;            // Tcp: host name or IP literal (IPv6 without brackets,
                               // a zone as "fe80::1%eth0")
  std::string port = "10809";  // Tcp: port (name or number); Vsock: port number as text
  uint32_t vsock_cid = 0, vsock_port = 10809;
  std::string socket;  // Unix: socket path from ?socket=
  std::string export_name;
  std::optional<std::string> username;  // from user@
  std::optional<std::string> tls_certificates;
  std::optional<std::string> tls_psk_file;
  std::optional<bool> tls_verify_peer;

  bool operator==(const ParsedUri&) const = default;
};

// Parses uri.  On failure returns std::nullopt after recording the error with
// set_error(EINVAL, ...).  Only the scheme://authority/path?query form is accepted (as libnbd
// insists); unknown query keys are ignored; a repeated known key is an error, so that a filter
// and the connection can never read different values of the same key.
std::optional<ParsedUri> parse_uri(std::string_view uri);

// The canonical URI of u, as nbd_get_uri returns it: scheme from transport and tls, user@ when
// username is set, host (IPv6 in brackets) and port for Tcp, CID:port for Vsock (the port
// always written, as libnbd does), "/" + the percent-encoded export name, then socket= (Unix), tls-certificates=,
// tls-psk-file= and tls-verify-peer= for the fields that are set.  parse_uri(format_uri(p)) == p
// for every p that parse_uri returned.
std::string format_uri(const ParsedUri& u);

}  // namespace nbd
