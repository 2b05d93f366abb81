// nbd_ext_server.cpp: an NBD server for tests that speaks NBD_OPT_EXTENDED_HEADERS, which no server
// packaged in Debian 12 does; its command line, listening socket and connection threads.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "server.hpp"

namespace {

using ext_server::Bad;
using ext_server::Config;

constexpr const char* kUsage =
    "usage: nbd_ext_server {--unix PATH | --port N | --stdio} [options]\n"
    "  --unix PATH             listen on a Unix socket\n"
    "  --port N                listen on 127.0.0.1:N (0: any free port, see --port-file)\n"
    "  --stdio                 serve one connection on stdin/stdout, then exit\n"
    "  --port-file PATH        write the TCP port and a newline once listening\n"
    "  --pid-file PATH         write the pid and a newline once listening (after --port-file)\n"
    "  --exit-with-parent      exit when the parent process does\n"
    "  --size BYTES            export size (suffixes K M G T; default 64M)\n"
    "  --export NAME           an export (repeatable; default one export \"\"; \"\" names the first)\n"
    "  --max-payload BYTES     advertised maximum payload (default 32M)\n"
    "  --read-only             export read-only\n"
    "  --no-extended-headers   answer NBD_OPT_EXTENDED_HEADERS with NBD_REP_ERR_UNSUP\n"
    "  --no-structured-replies answer NBD_OPT_STRUCTURED_REPLY with NBD_REP_ERR_UNSUP\n"
    "  --require-extended      fail NBD_OPT_INFO/GO with NBD_REP_ERR_EXT_HEADER_REQD, and hang up on\n"
    "                          NBD_OPT_EXPORT_NAME, until extended headers are negotiated\n"
    "  --block-status-payload  advertise NBD_FLAG_BLOCK_STATUS_PAYLOAD and accept its payload form\n"
    "  --bad=NAME              misbehave (repeatable): simple-reply-in-extended-mode,\n"
    "                          structured-reply-in-extended-mode, wrong-reply-offset,\n"
    "                          compact-block-status-in-extended-mode, ext-block-status-count-mismatch,\n"
    "                          reply-length-too-large, block-status-ext-in-structured-mode,\n"
    "                          block-status-ignores-payload-filter\n"
    "  --log FILE              log each option, request and client violation, a line each\n";

struct Options {
  Config config;
  std::vector<std::string> exports;
  std::string unix_path;
  long port = -1;
  bool stdio = false;
  std::string port_file;
  std::string pid_file;
  std::string log_file;
  bool exit_with_parent = false;
};

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr, "nbd_ext_server: %s\n%s", what.c_str(), kUsage);
  std::exit(2);
}

// BYTES with an optional binary suffix K, M, G or T.
uint64_t parse_size(const std::string& text, uint64_t max) {
  char* end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  int shift = 0;
  if (end != text.c_str() && *end != '\0' && end[1] == '\0') {
    const char* suffixes = "KMGT";
    const char* at = std::strchr(suffixes, *end);
    shift = at != nullptr ? 10 * static_cast<int>(at - suffixes + 1) : -1;
    ++end;
  }
  if (errno != 0 || end == text.c_str() || *end != '\0' || text[0] == '-' || shift < 0 ||
      value > (max >> shift))
    usage_error("bad size \"" + text + "\"");
  return static_cast<uint64_t>(value) << shift;
}

Options parse_args(int argc, char** argv) {
  Options opts;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    const size_t eq = arg.find('=');
    const bool inline_value = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    }
    const auto next = [&]() {
      if (inline_value)
        return value;
      if (i + 1 >= argc)
        usage_error(arg + " needs a value");
      return std::string(argv[++i]);
    };
    Config& c = opts.config;
    if (arg == "--unix") {
      opts.unix_path = next();
    } else if (arg == "--port") {
      opts.port = static_cast<long>(parse_size(next(), 65535));
    } else if (arg == "--stdio") {
      opts.stdio = true;
    } else if (arg == "--port-file") {
      opts.port_file = next();
    } else if (arg == "--pid-file") {
      opts.pid_file = next();
    } else if (arg == "--exit-with-parent") {
      opts.exit_with_parent = true;
    } else if (arg == "--size") {
      c.size = parse_size(next(), INT64_MAX);  // proto.md: clients reject sizes over 2^63 - 1
    } else if (arg == "--export") {
      opts.exports.push_back(next());
    } else if (arg == "--max-payload") {
      // proto.md "Size constraints": at least the preferred block size, and 32 bits.
      c.max_payload = static_cast<uint32_t>(parse_size(next(), UINT32_MAX));
      if (c.max_payload < 4096)
        usage_error("--max-payload must be at least 4096");
    } else if (arg == "--read-only") {
      c.read_only = true;
    } else if (arg == "--no-extended-headers") {
      c.extended_headers = false;
    } else if (arg == "--no-structured-replies") {
      c.structured_replies = false;
    } else if (arg == "--require-extended") {
      c.require_extended = true;
    } else if (arg == "--block-status-payload") {
      c.block_status_payload = true;
    } else if (arg == "--bad") {
      const std::string name = next();
      bool known = false;
      for (const auto& entry : ext_server::kBadNames) {
        if (name == entry.name) {
          c.bad.push_back(entry.bad);
          known = true;
        }
      }
      if (!known)
        usage_error("unknown --bad=" + name);
    } else if (arg == "--log") {
      opts.log_file = next();
    } else if (arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      usage_error("unknown option " + arg);
    }
  }
  if (int{!opts.unix_path.empty()} + int{opts.port >= 0} + int{opts.stdio} != 1)
    usage_error("give exactly one of --unix, --port and --stdio");
  if (opts.exports.empty())
    opts.exports.push_back("");
  return opts;
}

// Writes text to path through a temporary name and rename(2), so a reader never sees half of it.
bool write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return false;
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  return ::close(fd) == 0 && written && ::rename(tmp.c_str(), path.c_str()) == 0;
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "nbd_ext_server: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

int listen_socket(const Options& opts, long& port) {
  int fd = -1;
  if (!opts.unix_path.empty()) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    if (opts.unix_path.size() >= sizeof sun.sun_path)
      usage_error("socket path too long: " + opts.unix_path);
    std::memcpy(sun.sun_path, opts.unix_path.c_str(), opts.unix_path.size());
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&sun), sizeof sun) != 0)
      fail("cannot bind " + opts.unix_path);
  } else {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(static_cast<uint16_t>(opts.port));
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    if (fd < 0 || ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::bind(fd, reinterpret_cast<const sockaddr*>(&sin), sizeof sin) != 0)
      fail("cannot bind 127.0.0.1:" + std::to_string(opts.port));
    socklen_t len = sizeof sin;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len) != 0)
      fail("getsockname");
    port = ntohs(sin.sin_port);
  }
  if (::listen(fd, SOMAXCONN) != 0)
    fail("listen");
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opts = parse_args(argc, argv);
  if (opts.exit_with_parent && (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || ::getppid() == 1))
    return 1;
  // A client hanging up mid-reply is an EPIPE from write(2), not a reason to die.
  ::signal(SIGPIPE, SIG_IGN);

  int log_fd = -1;
  if (!opts.log_file.empty()) {
    log_fd = ::open(opts.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0)
      fail("cannot open " + opts.log_file);
  }
  ext_server::Log log(log_fd);
  std::vector<ext_server::Export> exports;
  for (const std::string& name : opts.exports)
    exports.push_back({name, "in-memory export \"" + name + "\" of nbd_ext_server",
                       std::make_unique<ext_server::Store>(opts.config.size)});

  if (opts.stdio) {
    ext_server::serve_connection(opts.config, exports, log, 0, 1);
    return 0;
  }

  // SIGTERM and SIGINT arrive on a signalfd, polled with the listening socket: the process then
  // exits at once, with the connections' threads still in their reads.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  if (::pthread_sigmask(SIG_BLOCK, &stop, nullptr) != 0)
    fail("pthread_sigmask");
  const int sig_fd = ::signalfd(-1, &stop, SFD_CLOEXEC);
  if (sig_fd < 0)
    fail("signalfd");

  long port = 0;
  const int listen_fd = listen_socket(opts, port);
  if (!opts.port_file.empty() && !write_file_atomically(opts.port_file, std::to_string(port) + "\n"))
    fail("cannot write " + opts.port_file);
  if (!opts.pid_file.empty() && !write_file_atomically(opts.pid_file, std::to_string(::getpid()) + "\n"))
    fail("cannot write " + opts.pid_file);

  for (;;) {
    pollfd fds[2] = {{listen_fd, POLLIN, 0}, {sig_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      fail("poll");
    }
    if (fds[1].revents != 0)
      break;
    const int conn = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0)
      continue;  // the client gave up already, or a transient shortage: keep serving
    std::thread([&opts, &exports, &log, conn]() {
      ext_server::serve_connection(opts.config, exports, log, conn, conn);
      ::close(conn);
    }).detach();
  }
  if (!opts.unix_path.empty())
    ::unlink(opts.unix_path.c_str());
  // Connection threads may still be running: leave without destructors they could race with.
  std::_Exit(0);
}
