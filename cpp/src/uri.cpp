// uri.cpp: parsing NBD URIs (RFC 3986 + doc/uri.md), hand-written and bounds-checked: the
// scheme, the authority (user name, host or vsock CID, port), the export name and the query
// parameters.  The formatter is in uri_format.cpp, what both use in uri_syntax.cpp.
#include "uri.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <string>
#include <utility>

#include "error.hpp"
#include "uri_syntax.hpp"

namespace nbd {

using namespace uri_syntax;

namespace {

constexpr uint32_t kDefaultPortNumber = 10809;
// VMADDR_CID_HOST: libnbd connects "nbd+vsock:///" to the hypervisor, as its man page shows.
constexpr uint32_t kVsockCidHost = 2;

// A non-empty run of decimal digits no greater than max; leading zeros are allowed (RFC 3986
// port = *DIGIT).  Overflow is caught digit by digit, so any length of input is safe.
std::optional<uint32_t> parse_decimal(std::string_view s, uint32_t max) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
    if (v > max) return std::nullopt;
  }
  return static_cast<uint32_t>(v);
}

// An IANA service name (RFC 6335 5.1): 1-15 letters, digits and hyphens, at least one letter,
// no hyphen at either end or twice in a row.  Accepted because nbd_connect_tcp takes a port name,
// so format_uri may emit one and parse_uri must read it back.
bool is_service_name(std::string_view s) {
  if (s.empty() || s.size() > 15 || s.front() == '-' || s.back() == '-') return false;
  bool letter = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (is_alpha(c))
      letter = true;
    else if (c == '-' && s[i - 1] == '-')  // i > 0: s.front() is not '-'
      return false;
    else if (!is_digit(c) && c != '-')
      return false;
  }
  return letter;
}

// A TCP port: empty means the default (RFC 3986 3.2.3 allows "host:"), a number must be
// 1..65535, and anything else must be a service name.  Numbers come back without leading zeros.
std::optional<std::string> parse_tcp_port(std::string_view raw, std::string_view default_port) {
  if (raw.empty()) return std::string(default_port);
  bool numeric = true;
  for (char c : raw) numeric = numeric && is_digit(c);
  if (numeric) {
    std::optional<uint32_t> n = parse_decimal(raw, 65535);
    if (n && *n != 0) return std::to_string(*n);
  } else if (is_service_name(raw)) {
    return std::string(raw);
  }
  set_error(EINVAL, "invalid port in URI: %s", printable(raw).c_str());
  return std::nullopt;
}

// The inside of "[...]" (RFC 3986 3.2.2, RFC 6874): an IPv6 address, optionally followed by a
// zone as "%25" + ZoneID.  inet_pton does the address grammar.  Returns the host as getaddrinfo
// wants it: "addr" or "addr%zone".  (IPvFuture "v1.x" literals are refused: nothing resolves them.)
std::optional<std::string> parse_ipv6_literal(std::string_view literal) {
  std::string_view addr = literal;
  std::string zone;
  size_t pct = literal.find('%');
  if (pct != std::string_view::npos) {
    addr = literal.substr(0, pct);
    std::string_view zone_raw = literal.substr(pct);
    if (!zone_raw.starts_with("%25") || zone_raw.size() == 3) {
      set_error(EINVAL, "invalid IPv6 zone in URI (write it as %%25 followed by the zone): %s",
                printable(zone_raw).c_str());
      return std::nullopt;
    }
    std::optional<std::string> z = decode(zone_raw.substr(3), "IPv6 zone", is_unreserved);
    if (!z) return std::nullopt;
    zone = std::move(*z);
  }
  std::string addr_str(addr);
  in6_addr scratch{};
  if (inet_pton(AF_INET6, addr_str.c_str(), &scratch) != 1) {
    set_error(EINVAL, "invalid IPv6 address in URI: %s", printable(addr).c_str());
    return std::nullopt;
  }
  if (!zone.empty()) {
    addr_str += '%';
    addr_str += zone;
  }
  return addr_str;
}

// tls-verify-peer takes the usual spellings of a boolean, in any case, and the one-letter
// forms libnbd 1.22 reads too (t/f, y/n).
std::optional<bool> parse_bool(std::string_view s) {
  for (std::string_view t : {"true", "yes", "on", "1", "t", "y"})
    if (equals_ignore_case(s, t)) return true;
  for (std::string_view f : {"false", "no", "off", "0", "f", "n"})
    if (equals_ignore_case(s, f)) return false;
  return std::nullopt;
}

// The parts of an authority ("[user@]host[:port]") before any transport-specific meaning.
struct Authority {
  std::optional<std::string> username;
  std::string host;  // decoded; IPv6 without brackets
  bool ipv6 = false;
  std::string_view port;  // raw (ports have no escapes)
};

std::optional<Authority> parse_authority(std::string_view raw) {
  Authority a;
  std::string_view hostport = raw;
  size_t at = raw.find('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = raw.substr(0, at);
    hostport = raw.substr(at + 1);
    if (userinfo.find(':') != std::string_view::npos) {
      set_error(EINVAL, "passwords in URIs are not supported (user:password@)");
      return std::nullopt;
    }
    a.username = decode(userinfo, "user name", is_userinfo_char);
    if (!a.username) return std::nullopt;
  }

  std::string_view after_host;
  if (!hostport.empty() && hostport.front() == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) {
      set_error(EINVAL, "unterminated IPv6 address in URI: %s", printable(hostport).c_str());
      return std::nullopt;
    }
    std::optional<std::string> host = parse_ipv6_literal(hostport.substr(1, close - 1));
    if (!host) return std::nullopt;
    a.host = std::move(*host);
    a.ipv6 = true;
    after_host = hostport.substr(close + 1);
    if (!after_host.empty() && after_host.front() != ':') {
      set_error(EINVAL, "invalid character after IPv6 address in URI: '%s'",
                printable(after_host.substr(0, 1)).c_str());
      return std::nullopt;
    }
  } else {
    size_t colon = hostport.find(':');
    std::string_view host_raw = hostport.substr(0, colon);
    if (colon != std::string_view::npos) after_host = hostport.substr(colon);
    // Host names take no percent escapes: no DNS name or IPv4 address needs one, and a decoded
    // '/', ':' or '@' would only smuggle a delimiter past this check.
    for (char c : host_raw) {
      if (!is_reg_name_char(c)) {
        set_error(EINVAL, "invalid character in URI host: '%s'",
                  printable(std::string_view(&c, 1)).c_str());
        return std::nullopt;
      }
    }
    a.host = host_raw;
  }
  if (!after_host.empty()) {  // starts with ':'
    a.port = after_host.substr(1);
  }
  return a;
}

}  // namespace

bool is_uri(std::string_view uri) {
  for (const Scheme& s : kSchemes) {
    const size_t n = s.name.size();
    if (uri.size() >= n + 3 && equals_ignore_case(uri.substr(0, n), s.name) &&
        uri.substr(n, 3) == "://")
      return true;
  }
  return false;
}

std::optional<ParsedUri> parse_uri(std::string_view uri) {
  // Control characters (and NUL, which only a C++ caller can pass) are never valid in a URI
  // (RFC 3986 2), and echoing them into messages or logs is unsafe; find them before anything.
  for (size_t i = 0; i < uri.size(); ++i) {
    auto b = static_cast<unsigned char>(uri[i]);
    if (b < 0x20 || b == 0x7f) {
      set_error(EINVAL, "control character in URI at offset %zu", i);
      return std::nullopt;
    }
  }

  // Scheme (RFC 3986 3.1): ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).  Compared without
  // case (RFC 3986 3.1; libnbd since 1.16): "NBD://" is "nbd://".
  size_t colon = uri.find(':');
  std::string_view scheme_raw = colon == std::string_view::npos ? "" : uri.substr(0, colon);
  bool scheme_ok = !scheme_raw.empty() && is_alpha(scheme_raw.front());
  for (char c : scheme_raw) scheme_ok = scheme_ok && is_scheme_char(c);
  if (!scheme_ok) {
    set_error(EINVAL,
              "missing URI scheme: NBD URIs start with nbd://, nbds://, nbd+unix:// "
              "or nbd+vsock://");
    return std::nullopt;
  }
  const Scheme* scheme = nullptr;
  for (const Scheme& s : kSchemes)
    if (equals_ignore_case(scheme_raw, s.name)) scheme = &s;
  if (scheme == nullptr) {
    set_error(EINVAL, "unknown NBD URI scheme: %s", printable(scheme_raw).c_str());
    return std::nullopt;
  }
  const char* sname = scheme->name.data();  // the table's literals are NUL-terminated

  // libnbd insists on scheme://[authority][/path][?query]; "nbd:/x" and "nbd:x" have no
  // agreed meaning as NBD URIs.
  std::string_view rest = uri.substr(colon + 1);
  if (!rest.starts_with("//")) {
    set_error(EINVAL, "%s: URIs must start with %s://", sname, sname);
    return std::nullopt;
  }
  rest.remove_prefix(2);
  // A fragment has no NBD meaning; like libnbd, ignore it (a '#' in a value is written %23).
  rest = rest.substr(0, rest.find('#'));
  size_t qmark = rest.find('?');
  std::string_view query = qmark == std::string_view::npos ? "" : rest.substr(qmark + 1);
  std::string_view hier = rest.substr(0, qmark);
  size_t slash = hier.find('/');
  std::string_view authority_raw = hier.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : hier.substr(slash);

  ParsedUri p;
  p.transport = scheme->transport;
  p.tls = scheme->tls;

  std::optional<Authority> auth = parse_authority(authority_raw);
  if (!auth) return std::nullopt;
  p.username = std::move(auth->username);

  switch (p.transport) {
    case Transport::Tcp: {
      // No host means this machine, as in libnbd ("nbd://" is localhost:10809).
      std::optional<std::string> port = parse_tcp_port(auth->port, kDefaultPort);
      if (!port) return std::nullopt;
      p.host = auth->host.empty() ? "localhost" : std::move(auth->host);
      p.port = std::move(*port);
      break;
    }
    case Transport::Ssh: {
      // The authority names the ssh server, which has no default (libnbd: "SSH transport
      // requires a server name"); the port is ssh's.  A host starting with '-' would reach
      // ssh as an option (-oProxyCommand=... runs a command), so it is refused.
      if (auth->host.empty()) {
        set_error(EINVAL, "%s: URIs need the name of the ssh server", sname);
        return std::nullopt;
      }
      if (auth->host.front() == '-') {
        set_error(EINVAL, "invalid ssh server name in URI (it must not start with '-'): %s",
                  printable(auth->host).c_str());
        return std::nullopt;
      }
      std::optional<std::string> port = parse_tcp_port(auth->port, kDefaultSshPort);
      if (!port) return std::nullopt;
      p.host = std::move(auth->host);
      p.port = std::move(*port);
      break;
    }
    case Transport::Unix:
      // doc/uri.md leaves a Unix authority to the client; libnbd ignores it, and so do we.
      break;
    case Transport::Vsock: {
      // The CID is the host part, a decimal number; empty means the hypervisor, as in libnbd.
      if (auth->ipv6) {
        set_error(EINVAL, "invalid vsock CID in URI: [%s]", printable(auth->host).c_str());
        return std::nullopt;
      }
      uint32_t cid = kVsockCidHost;
      if (!auth->host.empty()) {
        std::optional<uint32_t> n = parse_decimal(auth->host, UINT32_MAX);
        if (!n) {
          set_error(EINVAL, "invalid vsock CID in URI: %s", printable(auth->host).c_str());
          return std::nullopt;
        }
        cid = *n;
      }
      uint32_t port = kDefaultPortNumber;
      if (!auth->port.empty()) {
        std::optional<uint32_t> n = parse_decimal(auth->port, UINT32_MAX);
        if (!n) {
          set_error(EINVAL, "invalid vsock port in URI: %s", printable(auth->port).c_str());
          return std::nullopt;
        }
        port = *n;
      }
      p.vsock_cid = cid;
      p.vsock_port = port;
      p.port = std::to_string(port);
      break;
    }
  }

  // Export name: the path without its single leading '/' (doc/uri.md "export name").
  if (!path.empty()) path.remove_prefix(1);
  std::optional<std::string> export_name = decode(path, "export name", is_path_char);
  if (!export_name) return std::nullopt;
  p.export_name = std::move(*export_name);

  // Query: key[=value] pairs separated by '&' or ';' (libnbd accepts both).  A key without '='
  // has the empty value; empty pairs are skipped; unknown keys are ignored and a repeated key
  // takes its last value, as in libnbd; escapes must be well formed everywhere.  Keys compare
  // without case, as libnbd's do.
  bool have_socket = false;
  while (!query.empty()) {
    size_t end = query.find_first_of("&;");
    std::string_view pair = query.substr(0, end);
    query = end == std::string_view::npos ? "" : query.substr(end + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::optional<std::string> key = decode(pair.substr(0, eq), "query", is_query_char);
    if (!key) return std::nullopt;
    std::optional<std::string> value =
        decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), "query", is_query_char);
    if (!value) return std::nullopt;

    if (equals_ignore_case(*key, "socket")) {
      have_socket = true;
      p.socket = std::move(*value);
    } else if (equals_ignore_case(*key, "tls-certificates")) {
      p.tls_certificates = std::move(*value);
    } else if (equals_ignore_case(*key, "tls-psk-file")) {
      p.tls_psk_file = std::move(*value);
    } else if (equals_ignore_case(*key, "tls-hostname")) {
      p.tls_hostname = std::move(*value);
    } else if (equals_ignore_case(*key, "tls-verify-peer")) {
      p.tls_verify_peer = parse_bool(*value);
      if (!p.tls_verify_peer) {
        set_error(EINVAL,
                  "invalid tls-verify-peer value in URI (expected true/false, yes/no, "
                  "on/off or 1/0): %s",
                  printable(*value).c_str());
        return std::nullopt;
      }
    }
  }

  if (p.transport == Transport::Unix || (p.transport == Transport::Ssh && have_socket)) {
    // socket= is required for Unix, optional for Ssh (the remote side's socket).
    if (!have_socket) {
      set_error(EINVAL, "%s: URIs need a socket= query parameter", sname);
      return std::nullopt;
    }
    if (p.socket.empty()) {
      set_error(EINVAL, "%s: the socket= query parameter must not be empty", sname);
      return std::nullopt;
    }
  } else if (have_socket && p.transport != Transport::Ssh) {
    set_error(EINVAL, "%s: URIs must not have a socket= query parameter (did you mean %s+unix://?)",
              sname, p.tls ? "nbds" : "nbd");
    return std::nullopt;
  }
  return p;
}

}  // namespace nbd
