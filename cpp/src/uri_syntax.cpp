// uri_syntax.cpp: percent escapes of URI components both ways, ASCII case folding, and the
// printable form of URI text for error messages.
#include "uri_syntax.hpp"

#include <cerrno>

#include "error.hpp"

namespace nbd::uri_syntax {
namespace {

// Values echoed into error messages are cut here, so a huge URI cannot make a huge message.
constexpr size_t kMaxEcho = 80;
constexpr std::string_view kHexDigits = "0123456789ABCDEF";

int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

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

}  // namespace nbd::uri_syntax
