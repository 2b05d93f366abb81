// cli.hpp: the nbdpp command's argument reader, operands (URIs, paths, `[ CMD ARGS ]`) and
// the two kinds of failure it reports (usage: exit 2, runtime: exit 1).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace nbdpp {

// A bad command line: printed as "nbdpp: MESSAGE" plus a hint, exit status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Anything that goes wrong while running: printed as "nbdpp: MESSAGE", exit status 1.
class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// One operand of a subcommand.
struct Operand {
  enum class Kind {
    Uri,      // nbd://, nbds://, nbd+unix://, ... (anything libnbd's connect_uri takes)
    Command,  // [ CMD ARGS ]: a server the program starts itself
    Stdio,    // "-": standard input or output
    Path,     // a local file or block device
  };
  Kind kind = Kind::Path;
  std::string text;               // the URI or path as written
  std::vector<std::string> argv;  // Command only

  bool is_nbd() const { return kind == Kind::Uri || kind == Kind::Command; }
  // How messages name it: the URI, the path, "-", or "[ nbdkit -s memory 1G ]".
  std::string display() const;
};

// Reads a subcommand's arguments in order.  Options may come before or after operands until a
// "--", after which everything is an operand.  "[" starts a command operand that runs to the
// next "]" argument, and what is between them is never taken as an option, so a server's own
// options need no "--" (though `nbdpp info -- [ nbdkit -s memory 1G ]` works too).
class ArgReader {
 public:
  explicit ArgReader(std::vector<std::string> args) : args_(std::move(args)) {}

  // Moves to the next argument; false at the end.
  bool next();

  // The current argument is an operand: take it (throws UsageError for an unclosed "[").
  bool is_operand() const { return operand_.has_value(); }
  Operand take_operand() { return std::move(*operand_); }

  // The current argument is this option without a value (--json, or -p for short "p").
  bool flag(std::string_view long_name, char short_name = 0);
  // The current argument is this option with a value: "--name=V", "--name V", "-x V".
  std::optional<std::string> value(std::string_view long_name, char short_name = 0);
  // The current argument is this option with an optional value, given only as "--name=V".
  std::optional<std::string> optional_value(std::string_view long_name, std::string_view dflt);

  // The current argument as written, for "unknown option" messages.
  const std::string& current() const { return current_; }

 private:
  std::vector<std::string> args_;
  size_t pos_ = 0;
  bool options_done_ = false;
  std::string current_;
  std::optional<Operand> operand_;
};

// Classifies an operand written as text (not a bracketed command).
Operand classify_operand(std::string text);

// What --timeout and --reconnect-delay ask of every handle, in milliseconds (0: none).
struct Limits {
  uint64_t timeout_ms = 0;
  uint64_t reconnect_delay_ms = 0;
};

// The current argument is --timeout or --reconnect-delay: reads its value into limits.
bool limit_option(ArgReader& r, Limits& limits);

// Prints a command's help text on stdout: its own part (usage line, description, options),
// then the options every command has (--timeout, --reconnect-delay, --help).
void print_usage(const char* command_usage);

// "256K", "1M", "4096", "1G" (powers of 1024), with an option name for the error message.
uint64_t parse_size(std::string_view option, std::string_view text);
// A positive integer no larger than max.
unsigned parse_count(std::string_view option, std::string_view text, unsigned max);
// A time in whole milliseconds, 0 included (--timeout, --reconnect-delay).
uint64_t parse_milliseconds(std::string_view option, std::string_view text);

}  // namespace nbdpp
