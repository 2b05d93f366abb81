// subprocess.cpp: starting and reaping the servers the connect calls run, and removing socket
// activation's directory.
#include "subprocess.hpp"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <string_view>
#include <utility>

extern char** environ;

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

constexpr const char kListenPid[] = "LISTEN_PID=";
constexpr size_t kPidDigits = 20;
// The socket activation variables the child gets from us, and never from our environment.
constexpr std::string_view kListenVars[] = {"LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES="};
// What sd_listen_fds_with_names(3) reports for a socket without a name: libnbd passes it
// when no name was set, so an inherited LISTEN_FDNAMES never reaches the child.
constexpr const char kUnnamedSocket[] = "unknown";

// Pointers to the strings of v, ending with nullptr, as exec takes them.
std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> p;
  for (std::string& s : v)
    p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

// Forks and execs argv.  child_fd becomes stdin and stdout (nbd_connect_command); listen_fd
// becomes fd 3 with LISTEN_PID set in env (socket activation).  Between fork and exec only
// async-signal-safe calls run, so everything is prepared beforehand, env with room for the pid.
pid_t spawn(std::vector<std::string> argv, int child_fd, int listen_fd, std::vector<std::string>* env) {
  std::vector<char*> args = c_strings(argv);
  std::vector<char*> envp;
  if (env != nullptr)
    envp = c_strings(*env);
  const pid_t pid = fork();
  if (pid != 0)
    return pid;
  if (child_fd >= 0) {
    dup2(child_fd, 0);
    dup2(child_fd, 1);
  }
  if (listen_fd >= 0) {
    if (listen_fd != 3)
      dup2(listen_fd, 3);
    fcntl(3, F_SETFD, 0);
    char* p = envp[0] + sizeof kListenPid - 1;
    char digits[kPidDigits];
    int n = 0;
    for (pid_t v = getpid(); v > 0; v /= 10)
      digits[n++] = static_cast<char>('0' + v % 10);
    while (n > 0)
      *p++ = digits[--n];
    *p = '\0';
  }
  signal(SIGPIPE, SIG_DFL);
  if (env != nullptr)
    execvpe(args[0], args.data(), envp.data());
  else
    execvp(args[0], args.data());
  _exit(127);
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

pid_t spawn_on_socket(const std::vector<std::string>& argv, int sock) {
  return spawn(argv, sock, -1, nullptr);
}

pid_t spawn_socket_activated(const std::vector<std::string>& argv, int listen_fd, const std::string& fd_name) {
  // The environment of sd_listen_fds(3), as libnbd builds it: LISTEN_PID first (filled in by
  // the child), LISTEN_FDS, LISTEN_FDNAMES, then ours without those three.
  std::vector<std::string> env{std::string(kListenPid) + std::string(kPidDigits, '0'), "LISTEN_FDS=1",
                               "LISTEN_FDNAMES=" + (fd_name.empty() ? std::string(kUnnamedSocket) : fd_name)};
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view var(*e);
    if (std::none_of(std::begin(kListenVars), std::end(kListenVars),
                     [&](std::string_view p) { return var.starts_with(p); }))
      env.emplace_back(var);
  }
  return spawn(argv, -1, listen_fd, &env);
}

}  // namespace nbd
