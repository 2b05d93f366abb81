// util.cpp: small helpers shared by the core.
#include "util.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "error.hpp"

namespace nbd {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = fd;
}

namespace {

// Polls for the child's exit for up to ms milliseconds.
bool exited_within(pid_t pid, int ms) {
  for (int waited = 0;; waited += 10) {
    const pid_t r = waitpid(pid, nullptr, WNOHANG);
    if (r == pid || (r == -1 && errno != EINTR))
      return true;
    if (waited >= ms)
      return false;
    const struct timespec ten_ms {0, 10 * 1000 * 1000};
    nanosleep(&ten_ms, nullptr);
  }
}

}  // namespace

void reap_child(pid_t pid, bool terminate) {
  if (!terminate && exited_within(pid, 2000))
    return;
  kill(pid, SIGTERM);
  if (exited_within(pid, 2000))
    return;
  kill(pid, SIGKILL);
  while (waitpid(pid, nullptr, 0) == -1 && errno == EINTR) {
  }
}

char* dup_string(const std::string& s) {
  char* copy = strdup(s.c_str());
  if (copy == nullptr)
    set_error(ENOMEM, "strdup");
  return copy;
}

std::string vformat(const char* fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  const int n = std::vsnprintf(nullptr, 0, fmt, ap);
  std::string out;
  if (n > 0) {
    out.resize(static_cast<size_t>(n) + 1);
    std::vsnprintf(out.data(), out.size(), fmt, ap2);
    out.resize(static_cast<size_t>(n));
  }
  va_end(ap2);
  return out;
}

}  // namespace nbd
