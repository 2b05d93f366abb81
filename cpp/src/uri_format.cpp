// uri_format.cpp: the canonical text of a parsed NBD URI (format_uri, as nbd_get_uri returns
// it) and the ssh command line of an nbd+ssh URI (ssh_command).
#include <string>

#include "uri.hpp"
#include "uri_syntax.hpp"

namespace nbd {

using namespace uri_syntax;

namespace {

std::string_view scheme_of(Transport t, bool tls) {
  for (const Scheme& s : kSchemes)
    if (s.transport == t && s.tls == tls) return s.name;
  return "nbd";  // unreachable: every pair is in the table
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
