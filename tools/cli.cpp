// cli.cpp: the nbdpp command's argument reader and operand classification.
#include "cli.hpp"

#include <charconv>
#include <cstdio>
#include <limits>

namespace nbdpp {

std::string Operand::display() const {
  if (kind != Kind::Command)
    return text;
  std::string s = "[";
  for (const auto& a : argv)
    s += " " + a;
  return s + " ]";
}

Operand classify_operand(std::string text) {
  Operand op;
  if (text == "-") {
    op.kind = Operand::Kind::Stdio;
  } else if (text.starts_with("nbd") && text.find("://") != std::string::npos &&
             text.find('/') > text.find("://")) {
    // nbd://, nbds://, nbd+unix://, nbds+vsock://...: the scheme is everything before "://",
    // and a path like "nbd-disk/x://y" is not one (its first '/' comes earlier).
    op.kind = Operand::Kind::Uri;
  } else {
    op.kind = Operand::Kind::Path;
  }
  op.text = std::move(text);
  return op;
}

bool ArgReader::next() {
  operand_.reset();
  if (pos_ >= args_.size())
    return false;
  current_ = args_[pos_++];
  if (!options_done_ && current_ == "--") {
    options_done_ = true;
    return next();
  }
  if (current_ == "[") {
    Operand op;
    op.kind = Operand::Kind::Command;
    while (pos_ < args_.size() && args_[pos_] != "]")
      op.argv.push_back(args_[pos_++]);
    if (pos_ >= args_.size())
      throw UsageError("missing \"]\" after the server command");
    ++pos_;  // the "]"
    if (op.argv.empty())
      throw UsageError("empty server command \"[ ]\"");
    operand_ = std::move(op);
    return true;
  }
  if (options_done_ || current_ == "-" || !current_.starts_with("-"))
    operand_ = classify_operand(current_);
  return true;
}

bool ArgReader::flag(std::string_view long_name, char short_name) {
  if (operand_)
    return false;
  if (current_ == long_name)
    return true;
  return short_name != 0 && current_.size() == 2 && current_[0] == '-' && current_[1] == short_name;
}

std::optional<std::string> ArgReader::value(std::string_view long_name, char short_name) {
  if (operand_)
    return std::nullopt;
  std::string_view cur = current_;
  if (cur.starts_with(long_name) && cur.size() > long_name.size() && cur[long_name.size()] == '=')
    return std::string{cur.substr(long_name.size() + 1)};
  if (!flag(long_name, short_name))
    return std::nullopt;
  if (pos_ >= args_.size())
    throw UsageError("option " + current_ + " needs a value");
  return args_[pos_++];
}

std::optional<std::string> ArgReader::optional_value(std::string_view long_name,
                                                     std::string_view dflt) {
  if (operand_)
    return std::nullopt;
  std::string_view cur = current_;
  if (cur == long_name)
    return std::string{dflt};
  if (cur.starts_with(long_name) && cur.size() > long_name.size() && cur[long_name.size()] == '=')
    return std::string{cur.substr(long_name.size() + 1)};
  return std::nullopt;
}

uint64_t parse_size(std::string_view option, std::string_view text) {
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  std::string_view suffix{end, static_cast<size_t>(text.data() + text.size() - end)};
  unsigned shift = 0;
  if (suffix == "K" || suffix == "k")
    shift = 10;
  else if (suffix == "M" || suffix == "m")
    shift = 20;
  else if (suffix == "G" || suffix == "g")
    shift = 30;
  if (ec != std::errc{} || end == text.data() || (!suffix.empty() && shift == 0) ||
      v > (std::numeric_limits<uint64_t>::max() >> shift))
    throw UsageError(std::string{option} + ": not a size: \"" + std::string{text} +
                     "\" (bytes, or a number with K, M or G)");
  return v << shift;
}

unsigned parse_count(std::string_view option, std::string_view text, unsigned max) {
  unsigned v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v == 0 || v > max)
    throw UsageError(std::string{option} + ": expected a number from 1 to " + std::to_string(max) +
                     ", not \"" + std::string{text} + "\"");
  return v;
}

uint64_t parse_milliseconds(std::string_view option, std::string_view text) {
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  // poll(2) takes an int: a longer time is no use and would overflow the deadlines.
  if (ec != std::errc{} || text.empty() || end != text.data() + text.size() ||
      v > static_cast<uint64_t>(std::numeric_limits<int>::max()))
    throw UsageError(std::string{option} + ": expected milliseconds (a whole number from 0 to " +
                     std::to_string(std::numeric_limits<int>::max()) + "), not \"" +
                     std::string{text} + "\"");
  return v;
}

void print_usage(const char* command_usage) {
  std::fputs(command_usage, stdout);
  std::fputs(
      "      --timeout MS       fail when the server has not answered for MS\n"
      "                         milliseconds (default 0: wait as long as it takes)\n"
      "      --reconnect-delay MS  when a connection is lost, connect again for up to\n"
      "                         MS milliseconds, then send the requests again\n"
      "                         (default 0: a lost connection is an error)\n"
      "  -h, --help             show this help\n",
      stdout);
}

bool limit_option(ArgReader& r, Limits& limits) {
  if (auto v = r.value("--timeout")) {
    limits.timeout_ms = parse_milliseconds("--timeout", *v);
    return true;
  }
  if (auto v = r.value("--reconnect-delay")) {
    limits.reconnect_delay_ms = parse_milliseconds("--reconnect-delay", *v);
    return true;
  }
  return false;
}

}  // namespace nbdpp
