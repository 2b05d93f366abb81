// uri_syntax.hpp: what the NBD URI parser (uri.cpp) and formatter (uri_format.cpp) share: the
// schemes and default ports, the RFC 3986 character classes, percent escapes both ways, ASCII
// case folding, and a printable form of URI text for error messages.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "uri.hpp"

namespace nbd::uri_syntax {

using Transport = ParsedUri::Transport;

inline constexpr std::string_view kDefaultPort = "10809";  // IANA's NBD port (doc/uri.md "authority")
inline constexpr std::string_view kDefaultSshPort = "22";

struct Scheme {
  std::string_view name;
  Transport transport;
  bool tls;
};

// Written in lower case: nbd_get_uri gives these back, whatever case the URI used.
inline constexpr std::array<Scheme, 8> kSchemes = {{
    {"nbd", Transport::Tcp, false},
    {"nbds", Transport::Tcp, true},
    {"nbd+unix", Transport::Unix, false},
    {"nbds+unix", Transport::Unix, true},
    {"nbd+vsock", Transport::Vsock, false},
    {"nbds+vsock", Transport::Vsock, true},
    {"nbd+ssh", Transport::Ssh, false},
    {"nbds+ssh", Transport::Ssh, true},
}};

// RFC 3986 section 2: the character classes the URI grammar is built from.
inline bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_unreserved(char c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}
inline bool is_sub_delim(char c) {
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
inline bool is_userinfo_char(char c) { return is_unreserved(c) || is_sub_delim(c); }
inline bool is_reg_name_char(char c) { return is_unreserved(c) || is_sub_delim(c); }
inline bool is_pchar(char c) { return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@'; }
inline bool is_path_char(char c) { return is_pchar(c) || c == '/'; }
inline bool is_query_char(char c) { return is_pchar(c) || c == '/' || c == '?'; }
inline bool is_scheme_char(char c) {
  return is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.';
}

// a == b, ignoring the case of ASCII letters.
bool equals_ignore_case(std::string_view a, std::string_view b);

// s made safe to print in an error message: bytes outside printable ASCII become \xNN, and long
// values are cut, since the text may come from anywhere (a decoded %01, a multi-megabyte URI).
std::string printable(std::string_view s);

// Checks raw against the component's character class and decodes its percent escapes.  what
// names the component in messages.  A decoded NUL is refused: every value ends up in a C string
// (export name, paths, user name), where it would silently cut the value short.
std::optional<std::string> decode(std::string_view raw, const char* what, bool (*allowed)(char));

// Appends s, keeping the bytes keep() allows and percent-encoding the rest (uppercase hex,
// RFC 3986 2.1).
void append_encoded(std::string& out, std::string_view s, bool (*keep)(char));

}  // namespace nbd::uri_syntax
