// main.cpp: the nbdpp command: `nbdpp info` and `nbdpp copy`, built on libnbd.so.0 through
// the C++ API nbd/nbd.hpp.
#include <nbd/nbd.hpp>

#include <csignal>
#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"
#include "copy.hpp"
#include "info.hpp"

namespace {

constexpr char kUsage[] =
    "usage: nbdpp COMMAND [OPTIONS] ARGS...\n"
    "\n"
    "Commands:\n"
    "  info SOURCE        show what an NBD server and its exports offer\n"
    "  copy SRC DST       copy between NBD exports, files, block devices and pipes\n"
    "\n"
    "SOURCE, SRC and DST name NBD servers by URI (nbd://HOST/EXPORT,\n"
    "nbd+unix:///EXPORT?socket=PATH, nbds://... for TLS) or as a server command to run:\n"
    "[ CMD ARGS ... ], for example [ nbdkit -s memory 1G ].\n"
    "\n"
    "Options:\n"
    "  -h, --help         show this help (nbdpp COMMAND --help for a command's options)\n"
    "  -V, --version      show the package name and version\n";

int version() {
  nbd::Handle h;
  std::printf("%s %s\n", std::string{h.get_package_name()}.c_str(),
              std::string{h.get_version()}.c_str());
  return 0;
}

// Where a usage error sends the user: "nbdpp --help", or the command's own help.
std::string usage_hint = "nbdpp --help";

int dispatch(std::vector<std::string> args) {
  if (args.empty())
    throw nbdpp::UsageError("no command given");
  const std::string cmd = args.front();
  args.erase(args.begin());
  if (cmd == "info" || cmd == "copy")
    usage_hint = "nbdpp " + cmd + " --help";
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "-V" || cmd == "--version")
    return version();
  if (cmd == "info")
    return nbdpp::run_info(std::move(args));
  if (cmd == "copy")
    return nbdpp::run_copy(std::move(args));
  throw nbdpp::UsageError("unknown command \"" + cmd + "\" (commands: info, copy)");
}

}  // namespace

int main(int argc, char* argv[]) {
  // A closed stdout pipe is an error to report, not a signal to die of.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return dispatch(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const nbdpp::UsageError& e) {
    std::fprintf(stderr, "nbdpp: %s (see %s)\n", e.what(), usage_hint.c_str());
    return nbdpp::kExitUsage;
  } catch (const nbd::Error& e) {
    std::fprintf(stderr, "nbdpp: %s\n", e.what());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "nbdpp: out of memory\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nbdpp: %s\n", e.what());
  }
  return nbdpp::kExitFailure;
}
