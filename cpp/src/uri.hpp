// uri.hpp: parsing (uri.cpp) and formatting (uri_format.cpp) of NBD URIs (NetworkBlockDevice/nbd
// doc/uri.md) without libxml2.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nbd {

// What an NBD URI names.  As parse_uri fills it, every string is percent-decoded and NUL-free.
struct ParsedUri {
  enum class Transport { Tcp, Unix, Vsock, Ssh };
  Transport transport = Transport::Tcp;
  bool tls = false;            // nbds, nbds+unix, nbds+vsock, nbds+ssh
  std::string host;            // Tcp, Ssh: host name or IP literal (IPv6 without brackets,
                               // a zone as "fe80::1%eth0"); Ssh: the ssh server
  std::string port = "10809";  // Tcp: port (name or number); Vsock: port number as text;
                               // Ssh: the ssh server's port ("22" by default)
  uint32_t vsock_cid = 0, vsock_port = 10809;
  std::string socket;  // Unix: socket path from ?socket=; Ssh: the same on the remote
                       // side, empty for the remote localhost:10809
  std::string export_name;
  std::optional<std::string> username;  // from user@
  std::optional<std::string> tls_certificates;
  std::optional<std::string> tls_psk_file;
  std::optional<std::string> tls_hostname;
  std::optional<bool> tls_verify_peer;

  bool operator==(const ParsedUri&) const = default;
};

// True when uri starts with one of the NBD schemes followed by "://", in any case (libnbd
// 1.22's nbd_is_uri): a cheap guess at whether a command-line word is a URI or a file name.
// Nothing after the scheme is looked at, so parse_uri may still refuse it.
bool is_uri(std::string_view uri);

// Parses uri.  On failure returns std::nullopt after recording the error with
// set_error(EINVAL, ...).  Only the scheme://authority/path?query form is accepted (as libnbd
// insists); unknown query keys are ignored; a repeated known key is an error, so that a filter
// and the connection can never read different values of the same key.
std::optional<ParsedUri> parse_uri(std::string_view uri);

// The command nbd_connect_uri runs for an nbd+ssh URI, as libnbd 1.22 does: ssh to u.host on
// u.port, and there nc to u.socket, or to localhost:10809 without one.  ssh hands the remote
// words to a shell, so each is quoted when it holds anything a shell would interpret, and a
// socket path that could pass for an option is given as "./-...".
std::vector<std::string> ssh_command(const ParsedUri& u);

// The canonical URI of u, as nbd_get_uri returns it: scheme from transport and tls, user@ when
// username is set, host (IPv6 in brackets) and port for Tcp and Ssh, CID:port for Vsock (the
// port always written, as libnbd does), "/" + the percent-encoded export name, then socket=
// (Unix, and Ssh when set), tls-certificates=, tls-psk-file=, tls-hostname= and
// tls-verify-peer= for the fields that are set.  parse_uri(format_uri(p)) == p
// for every p that parse_uri returned.
std::string format_uri(const ParsedUri& u);

}  // namespace nbd
