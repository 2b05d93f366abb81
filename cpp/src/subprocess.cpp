// subprocess.cpp: reaping the servers we start, and removing socket activation's directory.
#include "subprocess.hpp"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace nbd {
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

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), terminate_(other.terminate_) {}

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    reset();
    pid_ = std::exchange(other.pid_, -1);
    terminate_ = other.terminate_;
  }
  return *this;
}

void Subprocess::reset() noexcept {
  const pid_t pid = std::exchange(pid_, -1);
  if (pid <= 0)
    return;
  if (!terminate_ && exited_within(pid, 2000))
    return;
  kill(pid, SIGTERM);
  if (exited_within(pid, 2000))
    return;
  kill(pid, SIGKILL);
  while (waitpid(pid, nullptr, 0) == -1 && errno == EINTR) {
  }
}

TmpDir::~TmpDir() {
  if (path_.empty())
    return;
  unlink(socket_path().c_str());
  rmdir(path_.c_str());
}

int TmpDir::make(std::string tmpl) {
  if (mkdtemp(tmpl.data()) == nullptr)
    return -1;
  path_ = std::move(tmpl);
  return 0;
}

}  // namespace nbd
