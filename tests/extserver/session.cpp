// session.cpp: a connection's I/O, its wire log and its run from handshake to hang-up.
#include "session.hpp"

#include <unistd.h>

#include <cerrno>
#include <new>

namespace ext_server {

void Log::line(std::string_view text) {
  if (fd_ < 0)
    return;
  std::string out(text);
  out += '\n';
  std::lock_guard lock(mu_);
  // O_APPEND and one write per line: lines of concurrent connections never interleave.
  std::string_view rest = out;
  while (!rest.empty()) {
    const ssize_t n = ::write(fd_, rest.data(), rest.size());
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

size_t Session::read_some(char* buf, size_t n) {
  for (;;) {
    const ssize_t got = ::read(in_fd_, buf, n);
    if (got < 0 && errno == EINTR)
      continue;
    return got <= 0 ? 0 : static_cast<size_t>(got);
  }
}

bool Session::read_exact(char* buf, size_t n) {
  while (n > 0) {
    const size_t got = read_some(buf, n);
    if (got == 0)
      return false;
    buf += got;
    n -= got;
  }
  return true;
}

bool Session::read_string(std::string& out, uint64_t n) {
  out.resize(n);
  return read_exact(out.data(), n);
}

bool Session::write_all(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(out_fd_, data.data(), data.size());
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void Session::violation(const std::string& what) { log_.line("violation: " + what); }

void Session::run() {
  if (handshake())
    transmission();
}

void serve_connection(const Config& config, std::vector<Export>& exports, Log& log, int in_fd, int out_fd) {
  try {
    Session(config, exports, log, in_fd, out_fd).run();
  } catch (const std::bad_alloc&) {
    // A request too big for memory ends this connection only.
    log.line("error: out of memory, connection closed");
  }
}

}  // namespace ext_server
