// servers.cpp: starting real NBD servers as child processes, polling them ready, and stopping them.
#include "common/servers.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

extern char** environ;

namespace nbd_test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kStartLimit = 10s;  // a server not listening by then counts as failed
// Between SIGTERM and SIGKILL.  nbdkit waits on SIGTERM for connected clients to leave, and a
// test that stops its server before closing its handle should not pay seconds for it.
constexpr auto kStopGrace = 1s;
constexpr auto kRunLimit = 60s;    // for run_or_fail's commands
constexpr int kTcpAttempts = 3;    // free_tcp_port can race with other processes
constexpr const char* kLoopback = "127.0.0.1";
constexpr std::size_t kLogTail = 8192;  // enough of a log for a failure message

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// One step of readiness polling: servers tell us nothing, so we look at a file or a socket again.
void pause_briefly() {
  timespec ts{0, 1'000'000};
  nanosleep(&ts, nullptr);
}

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

std::string describe_status(int status) {
  if (WIFEXITED(status))
    return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

std::string join(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& arg : argv)
    out += (out.empty() ? "" : " ") + arg;
  return out;
}

// The whole file, or "" if it does not exist (yet).  O_CLOEXEC, unlike std::ifstream, so a server
// spawned by another thread meanwhile inherits nothing.
std::string read_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  std::string out;
  if (fd.get() < 0)
    return out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

bool write_file(const std::string& path, std::string_view content) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0)
    return false;
  while (!content.empty()) {
    const ssize_t n = ::write(fd.get(), content.data(), content.size());
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    content.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string log_tail(const std::string& path) {
  std::string log = read_file(path);
  if (log.size() > kLogTail)
    log = "[...]" + log.substr(log.size() - kLogTail);
  return log.empty() ? "(empty)\n" : log;
}

// The pid in a pidfile, or 0 while it is missing or half written: all three servers write "PID\n",
// so the newline marks a complete file.
pid_t read_pidfile(const std::string& path) {
  const std::string text = read_file(path);
  if (text.empty() || text.back() != '\n')
    return 0;
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str() || *end != '\n' || value <= 0 || value > INT_MAX)
    return 0;
  return static_cast<pid_t>(value);
}

std::string uri_escape(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : text) {
    const auto byte = static_cast<unsigned char>(ch);
    // RFC 3986 unreserved characters, plus '/' which is legal in paths and queries and keeps socket
    // paths readable.
    if ((byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z') || (byte >= '0' && byte <= '9') ||
        std::string_view("-._~/").find(ch) != std::string_view::npos) {
      out += ch;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 15];
    }
  }
  return out;
}

std::string tmp_base() {
  const char* env = std::getenv("TMPDIR");
  return env != nullptr && *env != '\0' ? env : "/tmp";
}

// A directory for one server.  Its socket path must fit in sockaddr_un, so a deep $TMPDIR falls back
// to /tmp.
TmpDir server_dir() {
  std::string base = std::filesystem::absolute(tmp_base()).string();
  if (base.size() + std::strlen("/nbdpp-test.XXXXXX/sock") >= sizeof(sockaddr_un::sun_path))
    base = "/tmp";
  return TmpDir(base);
}

// Starts argv from $PATH, with no shell.  stdin is /dev/null and stdout+stderr go to log_path; no
// other descriptor is inherited (closefrom: something in the test process may have opened one
// without O_CLOEXEC, and a leaked socket would keep connections alive); the signal mask and the
// dispositions a test may have changed (SIGPIPE ignored, SIGTERM blocked) are reset, or SIGTERM
// could not stop the server.  Returns the pid, or -1 with why set.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log_path, std::string& why) {
  std::vector<char*> args;
  for (const auto& arg : argv)
    args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (const int sig : {SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGCHLD, SIGUSR1, SIGUSR2})
    sigaddset(&defaults, sig);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  const int err = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) {
    why = "cannot start " + argv[0] + ": " + errno_text(err);
    return -1;
  }
  return pid;
}

// The wait status of child pid once it exits, or nothing if it is still running after limit.
std::optional<int> wait_exit(pid_t pid, Clock::duration limit) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid)
      return status;
    if (r < 0 && errno != EINTR)
      return std::nullopt;  // ECHILD: not ours; cannot happen for our own children
    if (r == 0 && Clock::now() >= deadline)
      return std::nullopt;
    if (r == 0)
      pause_briefly();
  }
}

// Reaps target (pid, or -pgid for every process of a group) within limit; true once nothing of it is
// left to reap.
bool reap_within(pid_t target, Clock::duration limit) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    const pid_t r = ::waitpid(target, nullptr, WNOHANG);
    if (r == target)
      return true;
    if (r > 0 || (r < 0 && errno == EINTR))
      continue;  // one process of the group, maybe more to come
    if (r < 0)
      return true;  // ECHILD: no child of ours left in it
    if (Clock::now() >= deadline)
      return false;
    pause_briefly();
  }
}

// Reaps target after SIGKILL, which cannot be caught, so this does not need a limit.
void reap_all(pid_t target) {
  for (;;) {
    const pid_t r = ::waitpid(target, nullptr, 0);
    if (r == target || (r < 0 && errno != EINTR))
      return;
  }
}

// Connects to host:port and waits for the NBD greeting, one non-blocking step at a time so that the
// caller can watch the server process in between.  A successful connect() alone is not enough:
// nbd-server listens 0.1-1 s before it first accepts (it computes Diffie-Hellman parameters in
// between), and a test's first handshake should not inherit that stall.
class GreetingProbe {
 public:
  enum class State { Waiting, Greeted, Failed };

  // A TCP address, or (unix_path non-empty) a Unix socket.
  GreetingProbe(std::string host, std::string port, std::string unix_path = "")
      : host_(std::move(host)), port_(std::move(port)), unix_path_(std::move(unix_path)) {}
  GreetingProbe(const GreetingProbe&) = delete;
  GreetingProbe& operator=(const GreetingProbe&) = delete;
  ~GreetingProbe() {
    if (fd_ >= 0)
      ::close(fd_);
  }

  State step() {
    if (fd_ < 0 && !connect())
      return State::Waiting;
    char buf[8];
    const ssize_t n = ::recv(fd_, buf, sizeof buf - got_.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
      return State::Waiting;
    if (n <= 0)
      return State::Failed;  // closed or reset before greeting
    got_.append(buf, static_cast<std::size_t>(n));
    if (got_.size() < sizeof buf)
      return State::Waiting;
    // proto.md "Newstyle negotiation": the server speaks first, with "NBDMAGIC".
    return got_ == "NBDMAGIC" ? State::Greeted : State::Failed;
  }

 private:
  // Loopback connect() completes or is refused at once, so a blocking socket is fine.
  bool connect() {
    if (!unix_path_.empty())
      return connect_unix();
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<uint16_t>(std::stoi(port_)));
    if (fd >= 0 && ::inet_pton(AF_INET, host_.c_str(), &sin.sin_addr) == 1 &&
        ::connect(fd, reinterpret_cast<const sockaddr*>(&sin), sizeof sin) == 0) {
      fd_ = fd;
      return true;
    }
    if (fd >= 0)
      ::close(fd);
    return false;
  }

  bool connect_unix() {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::snprintf(sun.sun_path, sizeof sun.sun_path, "%s", unix_path_.c_str());
    if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&sun), sizeof sun) == 0) {
      fd_ = fd;
      return true;
    }
    if (fd >= 0)
      ::close(fd);
    return false;
  }

  std::string host_;
  std::string port_;
  std::string unix_path_;
  int fd_ = -1;
  std::string got_;
};

// The outcome of one attempt to start a server.
struct Attempt {
  std::unique_ptr<Server> server;
  std::string failure;      // why not, with the server's log
  bool port_taken = false;  // worth another try on a fresh port
};

std::string failure_text(const char* what, const std::string& why, const std::vector<std::string>& argv,
                         const std::string& log_path) {
  return std::string(what) + " did not start: " + why + "\ncommand: " + join(argv) +
         "\n--- its output ---\n" + log_tail(log_path);
}

// Runs a server that stays in the foreground as our child and writes DIR/pid once it listens
// (nbdkit -P, qemu-nbd --pid-file: both after listen()).  With port_file, the server chose its
// own TCP port and wrote it there before its pidfile.
// Starts argv in the foreground and waits until it has written pidfile: its pid, or -1 with why
// set (it exited, or wrote nothing in time and was killed).
pid_t start_and_wait(const std::vector<std::string>& argv, const std::string& log_path,
                     const std::string& pidfile, std::string& why) {
  const pid_t pid = spawn(argv, log_path, why);
  if (pid < 0)
    return -1;
  const auto deadline = Clock::now() + kStartLimit;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      why = "exited (" + describe_status(status) + ") before it was ready";
      return -1;
    }
    if (read_pidfile(pidfile) > 0)
      return pid;
    if (Clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      reap_all(pid);
      why = "no pidfile within 10 s";
      return -1;
    }
    pause_briefly();
  }
}

Attempt start_foreground(const char* what, TmpDir dir, const std::vector<std::string>& argv,
                         Address address, const std::string& port_file = "") {
  Attempt attempt;
  const std::string log_path = dir.path() + "/log";
  const std::string pidfile = dir.path() + "/pid";
  std::string why;
  const pid_t pid = start_and_wait(argv, log_path, pidfile, why);
  if (pid > 0) {
    if (!port_file.empty()) {
      address.port = read_file(port_file);
      if (!address.port.empty() && address.port.back() == '\n')
        address.port.pop_back();
    }
    attempt.server = std::make_unique<Server>(std::move(dir), pid, false, std::move(address));
    attempt.server->set_command(argv);
    return attempt;
  }
  attempt.failure = failure_text(what, why, argv, log_path);
  attempt.port_taken = read_file(log_path).find("Address already in use") != std::string::npos;
  return attempt;
}

// Tries once, or for TCP servers up to kTcpAttempts times while another process took the port.
std::unique_ptr<Server> start_with_retries(bool tcp, const std::function<Attempt()>& try_once) {
  std::string failure;
  for (int i = 0; i < (tcp ? kTcpAttempts : 1); ++i) {
    Attempt attempt = try_once();
    if (attempt.server)
      return std::move(attempt.server);
    failure = std::move(attempt.failure);
    if (!attempt.port_taken)
      break;
  }
  ADD_FAILURE() << failure;
  return nullptr;
}

// Fills in a TCP or Unix address in dir and appends the matching server options.
bool listen_on(bool tcp, const TmpDir& dir, Address& address, std::vector<std::string>& argv,
               const char* host_opt, const char* port_opt, const char* socket_opt) {
  if (tcp) {
    address.host = kLoopback;
    address.port = free_tcp_port();
    if (address.port.empty())
      return false;
    argv.insert(argv.end(), {host_opt, address.host, port_opt, address.port});
  } else {
    address.unix_socket = dir.path() + "/sock";
    argv.insert(argv.end(), {socket_opt, address.unix_socket});
  }
  return true;
}

// Kills a daemon that failed to start, and whatever it forked, with no questions.  Its group id is
// safe to signal: it is either the daemon's own group or no group (the daemon is our unreaped child,
// so no other process can lead a group with that id).
void kill_daemon(pid_t daemon) {
  ::kill(-daemon, SIGKILL);
  ::kill(daemon, SIGKILL);
  reap_all(-daemon);
  reap_all(daemon);
}

bool valid_section_name(const std::string& name) {
  return !name.empty() && name != "generic" && name.find_first_of("[]\n") == std::string::npos;
}

Attempt start_nbd_server_once(const std::vector<NbdServerExport>& exports, bool unix_socket,
                              const std::vector<std::string>& generic_config) {
  Attempt attempt;
  TmpDir dir = server_dir();
  Address address{"", kLoopback, free_tcp_port(), exports.front().name};
  if (address.port.empty()) {
    attempt.failure = "nbd-server: no free port";
    return attempt;
  }
  std::string config = "[generic]\n    listenaddr = " + address.host + "\n    port = " + address.port +
                       "\n    allowlist = true\n";
  if (unix_socket) {
    // It listens on TCP as well; readiness is still probed there, and uri() names the socket.
    address.unix_socket = dir.path() + "/sock";
    config += "    unixsock = " + address.unix_socket + "\n";
  }
  for (const auto& line : generic_config)
    config += "    " + line + "\n";
  // nbd-server may listen on the Unix socket only, so readiness is probed where uri() points.
  for (const auto& exp : exports) {
    // The daemon runs in /, so relative paths would point elsewhere.
    config += "[" + exp.name + "]\n    exportname = " + std::filesystem::absolute(exp.file).string() + "\n";
    if (exp.readonly)
      config += "    readonly = true\n";
  }
  const std::string config_path = dir.path() + "/config";
  const std::string log_path = dir.path() + "/log";
  const std::string pidfile = dir.path() + "/pid";
  const std::vector<std::string> argv{"nbd-server", "-C", config_path, "-p", pidfile};
  if (!write_file(config_path, config)) {
    attempt.failure = "nbd-server: cannot write " + config_path + ": " + errno_text(errno);
    return attempt;
  }

  // nbd-server forks once (daemon(): setsid, then the pidfile, then bind and listen) and the
  // launcher exits.  Being a subreaper, we adopt the daemon, so waitpid works on it.
  std::string why;
  const pid_t launcher = spawn(argv, log_path, why);
  if (launcher < 0) {
    attempt.failure = failure_text("nbd-server", why, argv, log_path);
    return attempt;
  }
  // A daemon dying before it writes its pidfile would stay an unknown zombie child until we exit;
  // nothing can fail between its setsid() and that write.
  bool launcher_done = false;
  pid_t daemon = 0;
  GreetingProbe probe(address.host, address.port, address.unix_socket);
  const auto deadline = Clock::now() + kStartLimit;
  for (;;) {
    int status = 0;
    if (!launcher_done) {
      const pid_t r = ::waitpid(launcher, &status, WNOHANG);
      if (r == launcher && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        why = "exited (" + describe_status(status) + ") before it forked";
        break;
      }
      launcher_done = r == launcher;
    } else if (daemon == 0) {
      daemon = read_pidfile(pidfile);
    }
    if (daemon > 0) {
      const pid_t r = ::waitpid(daemon, &status, WNOHANG);
      if (r == daemon) {
        // After daemon() its messages go to syslog only; bind() failing is the likely cause.
        why = "its daemon exited (" + describe_status(status) + ") before accepting connections";
        attempt.port_taken = true;
        break;
      }
      if (r < 0 && errno == ECHILD) {
        // Ours by its pidfile, but not adopted, so it cannot be reaped here.
        why = "its daemon (pid " + std::to_string(daemon) + ") is not our child";
        kill_daemon(daemon);
        break;
      }
      const GreetingProbe::State state = probe.step();
      if (state == GreetingProbe::State::Failed) {
        why = "its daemon did not send the NBD greeting";
        kill_daemon(daemon);
        break;
      }
      if (state == GreetingProbe::State::Greeted) {
        // daemon() made it a session and group leader; its per-connection children share the group.
        const bool group = ::getpgid(daemon) == daemon;
        attempt.server = std::make_unique<Server>(std::move(dir), daemon, group, std::move(address));
        return attempt;
      }
    }
    if (Clock::now() >= deadline) {
      why = "no NBD greeting within 10 s";
      if (!launcher_done) {
        ::kill(launcher, SIGKILL);
        reap_all(launcher);
      }
      if (daemon > 0)
        kill_daemon(daemon);
      break;
    }
    pause_briefly();
  }
  attempt.failure = failure_text("nbd-server", why, argv, log_path);
  return attempt;
}

}  // namespace

TmpDir::TmpDir(const std::string& base) {
  const std::string templ =
      std::filesystem::absolute(base.empty() ? tmp_base() : base).string() + "/nbdpp-test.XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr)
    throw std::system_error(errno, std::generic_category(), "mkdtemp " + templ);
  path_ = buf.data();
}

TmpDir::TmpDir(TmpDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}

TmpDir::~TmpDir() {
  if (path_.empty())
    return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  if (ec)
    ADD_FAILURE() << "cannot remove " << path_ << ": " << ec.message();
}

Server::Server(TmpDir dir, pid_t pid, bool group, Address address)
    : dir_(std::move(dir)), pid_(pid), group_(group), address_(std::move(address)) {
  uri_ = export_uri(address_.export_name);
}

Server::~Server() { stop(SIGTERM); }

std::string Server::export_uri(const std::string& export_name) const {
  if (!address_.unix_socket.empty())
    return "nbd+unix:///" + uri_escape(export_name) + "?socket=" + uri_escape(address_.unix_socket);
  return "nbd://" + address_.host + ":" + address_.port + "/" + uri_escape(export_name);
}

std::string Server::log() const { return read_file(dir_.path() + "/log"); }

void Server::kill_now() { stop(SIGKILL); }

bool Server::restart() {
  stop(SIGKILL);
  if (command_.empty()) {
    ADD_FAILURE() << "only a server started in the foreground can be restarted";
    return false;
  }
  const std::string pidfile = dir_.path() + "/pid";
  ::unlink(pidfile.c_str());
  if (!address_.unix_socket.empty())
    ::unlink(address_.unix_socket.c_str());  // qemu-nbd and nbdkit bind it anew
  std::string why;
  const pid_t pid = start_and_wait(command_, dir_.path() + "/log", pidfile, why);
  if (pid < 0) {
    ADD_FAILURE() << failure_text("restarted server", why, command_, dir_.path() + "/log");
    return false;
  }
  pid_ = pid;
  running_ = true;
  return true;
}

// One signal to the server (or its whole group), then reap; SIGKILL if SIGTERM was not enough.
// The group is safe to signal: its leader is our unreaped child, so its id cannot be reused.
void Server::stop(int sig) {
  if (!running_)
    return;
  running_ = false;
  const pid_t target = group_ ? -pid_ : pid_;
  ::kill(target, sig);
  if (sig == SIGKILL || !reap_within(target, kStopGrace)) {
    ::kill(target, SIGKILL);
    reap_all(target);
  }
}

std::unique_ptr<Server> start_nbdkit(std::vector<std::string> args, bool tcp, std::string export_name) {
  return start_with_retries(tcp, [&]() {
    Attempt attempt;
    TmpDir dir = server_dir();
    Address address;
    address.export_name = export_name;
    std::vector<std::string> argv{"nbdkit", "-f", "--exit-with-parent", "-P", dir.path() + "/pid"};
    if (!listen_on(tcp, dir, address, argv, "-i", "-p", "-U")) {
      attempt.failure = "nbdkit: no free port";
      return attempt;
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return start_foreground("nbdkit", std::move(dir), argv, std::move(address));
  });
}

std::unique_ptr<Server> start_qemu_nbd(std::string image, std::string format, std::vector<std::string> extra,
                                       bool tcp, std::string export_name) {
  return start_with_retries(tcp, [&]() {
    Attempt attempt;
    TmpDir dir = server_dir();
    Address address;
    address.export_name = export_name;
    std::vector<std::string> argv{"qemu-nbd", "-f", format, "-t", "--pid-file=" + dir.path() + "/pid"};
    if (!listen_on(tcp, dir, address, argv, "-b", "-p", "-k")) {
      attempt.failure = "qemu-nbd: no free port";
      return attempt;
    }
    if (!export_name.empty())
      argv.insert(argv.end(), {"-x", export_name});
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(image);
    return start_foreground("qemu-nbd", std::move(dir), argv, std::move(address));
  });
}

std::unique_ptr<Server> start_nbd_server(std::vector<NbdServerExport> exports, bool unix_socket,
                                         std::vector<std::string> generic_config) {
  if (exports.empty()) {
    ADD_FAILURE() << "start_nbd_server: no exports";
    return nullptr;
  }
  for (const auto& exp : exports) {
    if (!valid_section_name(exp.name) || exp.file.empty() || exp.file.find('\n') != std::string::npos) {
      ADD_FAILURE() << "start_nbd_server: export \"" << exp.name << "\" (" << exp.file
                    << ") cannot be written to its config file";
      return nullptr;
    }
  }
  // Idempotent, so simply set on every call; it then stays for the life of the process (servers.hpp).
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    ADD_FAILURE() << "start_nbd_server: PR_SET_CHILD_SUBREAPER: " << errno_text(errno);
    return nullptr;
  }
  for (const auto& line : generic_config) {
    if (line.find_first_of("[]\n") != std::string::npos) {
      ADD_FAILURE() << "start_nbd_server: \"" << line << "\" cannot go into [generic]";
      return nullptr;
    }
  }
  return start_with_retries(true,
                            [&]() { return start_nbd_server_once(exports, unix_socket, generic_config); });
}

std::unique_ptr<Server> start_ext_server(std::vector<std::string> args, bool tcp, std::string export_name) {
  return start_with_retries(false, [&]() {
    TmpDir dir = server_dir();
    Address address;
    address.export_name = export_name;
    std::vector<std::string> argv{ext_server_path(), "--exit-with-parent", "--pid-file", dir.path() + "/pid",
                                  "--log", dir.path() + "/wire.log"};
    std::string port_file;
    if (tcp) {
      address.host = kLoopback;
      port_file = dir.path() + "/port";
      argv.insert(argv.end(), {"--port", "0", "--port-file", port_file});
    } else {
      address.unix_socket = dir.path() + "/sock";
      argv.insert(argv.end(), {"--unix", address.unix_socket});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return start_foreground("nbd_ext_server", std::move(dir), argv, std::move(address), port_file);
  });
}

const char* ext_server_path() { return NBD_EXT_SERVER_PATH; }

std::string ext_server_wire_log(const Server& server) { return read_file(server.dir() + "/wire.log"); }

std::vector<std::string> ext_server_log_lines(const Server& server, std::string_view prefix) {
  std::vector<std::string> out;
  std::istringstream in(ext_server_wire_log(server));
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0)
      out.push_back(line);
  return out;
}

bool wait_for_ext_server_log(const Server& server, std::string_view prefix) {
  // The log is a file: look again every millisecond, as for pidfiles.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (ext_server_log_lines(server, prefix).empty()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    const timespec ms{0, 1'000'000};
    nanosleep(&ms, nullptr);
  }
  return true;
}

bool have_program(const char* name) {
  const auto executable = [](const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
  };
  if (std::strchr(name, '/') != nullptr)
    return executable(name);
  const char* env = std::getenv("PATH");
  std::string_view path = env != nullptr ? env : "/usr/bin:/bin";
  for (;;) {
    const std::size_t colon = path.find(':');
    const std::string_view entry = path.substr(0, colon);
    // An empty entry means the current directory (POSIX).
    if (executable((entry.empty() ? std::string(".") : std::string(entry)) + "/" + name))
      return true;
    if (colon == std::string_view::npos)
      return false;
    path.remove_prefix(colon + 1);
  }
}

std::string free_tcp_port() {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sin;
  if (fd.get() < 0 || ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sin), sizeof sin) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
    ADD_FAILURE() << "free_tcp_port: " << errno_text(errno);
    return "";
  }
  return std::to_string(ntohs(sin.sin_port));
}

bool run_or_fail(const std::vector<std::string>& argv) {
  TmpDir dir;
  const std::string log_path = dir.path() + "/output";
  std::string why;
  const pid_t pid = spawn(argv, log_path, why);
  if (pid < 0) {
    ADD_FAILURE() << why;
    return false;
  }
  const std::optional<int> status = wait_exit(pid, kRunLimit);
  if (!status) {
    ::kill(pid, SIGKILL);
    reap_all(pid);
    ADD_FAILURE() << join(argv) << ": still running after 60 s, killed\n--- its output ---\n"
                  << log_tail(log_path);
    return false;
  }
  if (WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
    return true;
  ADD_FAILURE() << join(argv) << ": " << describe_status(*status) << "\n--- its output ---\n"
                << log_tail(log_path);
  return false;
}

}  // namespace nbd_test
