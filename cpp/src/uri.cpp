// uri.cpp: a hand-written, bounds-checked NBD URI parser and formatter (RFC 3986 + doc/uri.md).
#include "uri.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cerrno>
#include <string>
#include <utility>

#include "error.hpp"

namespace nbd {
namespace {

using Transport = ParsedUri::Transport;

constexpr std::string_view kDefaultPort = "10809";  // IANA's NBD port (doc/uri.md "authority")
constexpr std::string_view kDefaultSshPort = "22";
constexpr uint32_t kDefaultPortNumber = 10809;
// VMADDR_CID_HOST: libnbd connects "nbd+vsock:///" to the hypervisor, as its man page shows.
constexpr uint32_t kVsockCidHost = 2;
// Values echoed into error messages are cut here, so a huge URI cannot make a huge message.
constexpr size_t kMaxEcho = 80;
constexpr std::string_view kHexDigits = "0123456789ABCDEF";

struct Scheme {
  std::string_view name;
  Transport transport;
  bool tls;
};

// Written in lower case: nbd_get_uri gives these back, whatever case the URI used.
constexpr std::array<Scheme, 8> kSchemes = {{
    {"nbd", Transport::Tcp, false},
    {"nbds", Transport::Tcp, true},
    {"nbd+unix", Transport::Unix, false},
    {"nbds+unix", Transport::Unix, true},
    {"nbd+vsock", Transport::Vsock, false},
    {"nbds+vsock", Transport::Vsock, true},
    {"nbd+ssh", Transport::Ssh, false},
    {"nbds+ssh", Transport::Ssh, true},
}};

// RFC 3986 section 2: the character classes the grammar below is built from.
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_unreserved(char c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}
bool is_sub_delim(char c) {
  switch (c) {
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
      return true;
    default:
      return false;
  }
}
// RFC 3986 3.2.1; ':' is left out on purpose: a password in an NBD URI has no use (TLS keys come
// from files) and would only leak, so "user:pass@" is refused rather than half understood.
bool is_userinfo_char(char c) { return is_unreserved(c) || is_sub_delim(c); }
bool is_reg_name_char(char c) { return is_unreserved(c) || is_sub_delim(c); }
bool is_pchar(char c) { return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@'; }
bool is_path_char(char c) { return is_pchar(c) || c == '/'; }
bool is_query_char(char c) { return is_pchar(c) || c == '/' || c == '?'; }
bool is_scheme_char(char c) {
  return is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.';
}

int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

// s made safe to print in an error message: bytes outside printable ASCII become \xNN, and long
// values are cut, since the text may come from anywhere (a decoded %01, a multi-megabyte URI).
std::string printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == kMaxEcho) {
      out += "...";
      break;
    }
    auto b = static_cast<unsigned char>(s[i]);
    if (b >= 0x20 && b < 0x7f) {
      out += s[i];
    } else {
      out += "\\x";
      out += kHexDigits[b >> 4];
      out += kHexDigits[b & 0xf];
    }
  }
  return out;
}

// Checks raw against the component's character class and decodes its percent escapes.  what
// names the component in messages.  A decoded NUL is refused: every value ends up in a C string
// (export name, paths, user name), where it would silently cut the value short.
std::optional<std::string> decode(std::string_view raw, const char* what, bool (*allowed)(char)) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '%') {
      if (raw.size() - i < 3 || hex_value(raw[i + 1]) < 0 || hex_value(raw[i + 2]) < 0) {
        set_error(EINVAL, "invalid percent escape in URI %s: %s", what,
                  printable(raw.substr(i, 3)).c_str());
        return std::nullopt;
      }
      int byte = hex_value(raw[i + 1]) * 16 + hex_value(raw[i + 2]);
      if (byte == 0) {
        set_error(EINVAL, "NUL byte (%%00) in URI %s", what);
        return std::nullopt;
      }
      out += static_cast<char>(byte);
      i += 2;
    } else if (allowed(c)) {
      out += c;
    } else {
      set_error(EINVAL, "invalid character in URI %s: '%s'", what,
                printable(std::string_view(&raw[i], 1)).c_str());
      return std::nullopt;
    }
  }
  return out;
}

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

std::string_view scheme_of(Transport t, bool tls) {
  for (const Scheme& s : kSchemes)
    if (s.transport == t && s.tls == tls) return s.name;
  return "nbd";  // unreachable: every pair is in the table
}

// Appends s, keeping the bytes keep() allows and percent-encoding the rest (uppercase hex,
// RFC 3986 2.1).
void append_encoded(std::string& out, std::string_view s, bool (*keep)(char)) {
  for (char c : s) {
    if (keep(c)) {
      out += c;
    } else {
      auto b = static_cast<unsigned char>(c);
      out += '%';
      out += kHexDigits[b >> 4];
      out += kHexDigits[b & 0xf];
    }
  }
}

// Query values keep the pchar set less the separators a query reader splits on ('&', ';', '=')
// and '+', which form decoders read as a space.
bool is_query_value_safe(char c) {
  return is_path_char(c) && c != '&' && c != ';' && c != '=' && c != '+';
}
bool is_ipv6_safe(char c) { return is_unreserved(c) || c == ':'; }  // '%' of a zone -> %25

void append_query(std::string& out, bool& first, std::string_view key, std::string_view value) {
  out += first ? '?' : '&';
  first = false;
  out += key;
  out += '=';
  append_encoded(out, value, is_query_value_safe);
}

// s as one word for the remote login shell: unchanged when it holds only characters no common
// shell treats specially ('=' and '%' are left out: zsh expands a leading "=word"), else in
// single quotes (a quote inside written as '\'').
std::string shell_word(std::string_view s) {
  auto plain = [](char c) {
    return is_alpha(c) || is_digit(c) || c == '/' || c == '.' || c == '_' || c == '-' ||
           c == '+' || c == ',' || c == ':' || c == '@';
  };
  bool quote = s.empty();
  for (char c : s) quote = quote || !plain(c);
  if (!quote) return std::string(s);
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  out += '\'';
  return out;
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

std::vector<std::string> ssh_command(const ParsedUri& u) {
  std::vector<std::string> argv{"ssh", "-p", u.port.empty() ? std::string(kDefaultSshPort) : u.port,
                                u.host, "nc"};
  if (u.socket.empty()) {
    argv.emplace_back("localhost");
    argv.emplace_back(kDefaultPort);
  } else {
    argv.emplace_back("-U");
    argv.push_back(shell_word(u.socket.front() == '-' ? "./" + u.socket : u.socket));
  }
  return argv;
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

std::string format_uri(const ParsedUri& u) {
  std::string out(scheme_of(u.transport, u.tls));
  out += "://";
  if (u.username) {
    append_encoded(out, *u.username, is_userinfo_char);
    out += '@';
  }
  switch (u.transport) {
    case Transport::Tcp:
    case Transport::Ssh:
      // Only an IPv6 literal can contain ':' (RFC 3986 3.2.2), so it alone needs brackets.
      if (u.host.find(':') != std::string::npos) {
        out += '[';
        append_encoded(out, u.host, is_ipv6_safe);
        out += ']';
      } else {
        append_encoded(out, u.host, is_reg_name_char);
      }
      // The port is always written, as libnbd does (nbd_get_uri callers may compare).
      out += ':';
      if (!u.port.empty())
        append_encoded(out, u.port, is_unreserved);
      else
        out += u.transport == Transport::Ssh ? kDefaultSshPort : kDefaultPort;
      break;
    case Transport::Unix:
      break;
    case Transport::Vsock:
      out += std::to_string(u.vsock_cid);
      out += ':';
      out += std::to_string(u.vsock_port);
      break;
  }
  out += '/';
  append_encoded(out, u.export_name, is_path_char);  // '?', '#', '%' get escaped

  bool first = true;
  if (u.transport == Transport::Unix || (u.transport == Transport::Ssh && !u.socket.empty()))
    append_query(out, first, "socket", u.socket);
  if (u.tls_certificates) append_query(out, first, "tls-certificates", *u.tls_certificates);
  if (u.tls_psk_file) append_query(out, first, "tls-psk-file", *u.tls_psk_file);
  if (u.tls_hostname) append_query(out, first, "tls-hostname", *u.tls_hostname);
  if (u.tls_verify_peer)
    append_query(out, first, "tls-verify-peer", *u.tls_verify_peer ? "true" : "false");
  return out;
}

}  // namespace nbd
