// connect.cpp: the connect calls.  Each sync call is its aio form plus a wait for the handshake.
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"
#include "state/machine.hpp"
#include "subprocess.hpp"
#include "unlocked.hpp"
#include "uri.hpp"
#include "util.hpp"

extern char** environ;

namespace nbd {
namespace {

constexpr const char kListenPid[] = "LISTEN_PID=";
constexpr size_t kPidDigits = 20;
// The socket activation variables the child gets from us, and never from our environment.
constexpr std::string_view kListenVars[] = {"LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES="};
// What sd_listen_fds_with_names(3) reports for a socket without a name: libnbd passes it
// when no name was set, so an inherited LISTEN_FDNAMES never reaches the child.
constexpr const char kUnnamedSocket[] = "unknown";

// Waits for the handshake: done once the handle leaves the connecting states.
int wait_connected(nbd_handle& h) {
  if (wait_until(h, [](nbd_handle& hh) { return state_group(hh.state) != kConnecting; }) == -1)
    return -1;
  if ((state_group(h.state) & (kConnected | kNegotiating)) != 0)
    return 0;
  return set_error(ENOTCONN, "the connection was closed during the handshake");
}

// Runs the machine for a connection that was just started by t (a connect() in progress
// waits for the socket to become writable first).
int started(nbd_handle& h, Transition t) {
  if (t == Transition::Fail) {
    kill_connection(h, errno_or(last_errno(), ENOTCONN));
    return -1;
  }
  return t == Transition::Block ? 0 : run(h);
}

// The connection failed before it started: the handle is dead, like any failed connection.
int failed(nbd_handle& h) {
  kill_connection(h, errno_or(last_errno(), ENOTCONN));
  return -1;
}

int unix_address(const char* path, struct sockaddr_un& sun, socklen_t& len) {
  const size_t n = std::strlen(path);
  if (n >= sizeof sun.sun_path)
    return set_error(ENAMETOOLONG, "socket path too long: %s", path);
  std::memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path, n);
  len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return 0;
}

// Forks and execs argv.  child_fd becomes stdin and stdout (nbd_connect_command); listen_fd
// becomes fd 3 with LISTEN_PID set in env (socket activation).  Between fork and exec only
// async-signal-safe calls run, so env is prepared beforehand with room for the pid.
pid_t spawn(char** argv, int child_fd, int listen_fd, std::vector<std::string>* env) {
  std::vector<char*> envp;
  if (env != nullptr) {
    for (std::string& e : *env)
      envp.push_back(e.data());
    envp.push_back(nullptr);
  }
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
    execvpe(argv[0], argv, envp.data());
  else
    execvp(argv[0], argv);
  _exit(127);
}

int check_argv(char** argv) {
  if (argv[0] == nullptr)
    return set_error(EINVAL, "argv must not be empty");
  return 0;
}

void remember_uri(nbd_handle& h, ParsedUri u) { h.uri_info = std::move(u); }

std::optional<std::string> unless_empty(const std::string& s) {
  return s.empty() ? std::nullopt : std::optional<std::string>(s);
}

// Where a raw address leads, for nbd_get_uri: a numeric host and port (as libnbd, through
// getnameinfo), a Unix socket path or a vsock address.  Nothing for an address no URI can
// name (the abstract Unix namespace, other families).
std::optional<ParsedUri> uri_of_address(const struct sockaddr* addr, socklen_t len) {
  ParsedUri u;
  switch (addr->sa_family) {
    case AF_INET:
    case AF_INET6: {
      char host[NI_MAXHOST], serv[NI_MAXSERV];
      if (getnameinfo(addr, len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return std::nullopt;
      u.transport = ParsedUri::Transport::Tcp;
      u.host = host;
      u.port = serv;
      return u;
    }
    case AF_UNIX: {
      const auto* sun = reinterpret_cast<const struct sockaddr_un*>(addr);
      const size_t max = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
      const size_t n = strnlen(sun->sun_path, std::min(max, sizeof sun->sun_path));
      if (n == 0)
        return std::nullopt;
      u.transport = ParsedUri::Transport::Unix;
      u.socket.assign(sun->sun_path, n);
      return u;
    }
    case AF_VSOCK: {
      const auto* svm = reinterpret_cast<const struct sockaddr_vm*>(addr);
      u.transport = ParsedUri::Transport::Vsock;
      u.vsock_cid = svm->svm_cid;
      u.vsock_port = svm->svm_port;
      return u;
    }
    default:
      return std::nullopt;
  }
}

}  // namespace

int unlocked_aio_connect(nbd_handle& h, const struct sockaddr* addr, socklen_t addrlen) {
  h.uri_info = uri_of_address(addr, addrlen);
  return started(h, connect_to(h, addr, addrlen));
}

int unlocked_aio_connect_unix(nbd_handle& h, const char* unixsocket) {
  struct sockaddr_un sun;
  socklen_t len;
  if (unix_address(unixsocket, sun, len) == -1)
    return failed(h);
  ParsedUri u;
  u.transport = ParsedUri::Transport::Unix;
  u.socket = unixsocket;
  remember_uri(h, std::move(u));
  return started(h, connect_to(h, reinterpret_cast<struct sockaddr*>(&sun), len));
}

int unlocked_aio_connect_tcp(nbd_handle& h, const char* hostname, const char* port) {
  struct addrinfo hints {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* res = nullptr;
  const int r = getaddrinfo(hostname, port, &hints, &res);
  if (r != 0) {
    set_error(r == EAI_SYSTEM ? errno : ENXIO, "getaddrinfo: %s:%s: %s", hostname, port,
              gai_strerror(r));
    return failed(h);
  }
  h.addrs.clear();
  h.addrlens.clear();
  h.addr_next = 0;
  for (struct addrinfo* a = res; a != nullptr; a = a->ai_next) {
    sockaddr_storage ss{};
    std::memcpy(&ss, a->ai_addr, a->ai_addrlen);
    h.addrs.push_back(ss);
    h.addrlens.push_back(a->ai_addrlen);
  }
  freeaddrinfo(res);
  ParsedUri u;
  u.transport = ParsedUri::Transport::Tcp;
  u.host = hostname;
  u.port = port;
  remember_uri(h, std::move(u));
  return started(h, connect_next_address(h));
}

int unlocked_aio_connect_vsock(nbd_handle& h, uint32_t cid, uint32_t port) {
  struct sockaddr_vm svm {};
  svm.svm_family = AF_VSOCK;
  svm.svm_cid = cid;
  svm.svm_port = port;
  ParsedUri u;
  u.transport = ParsedUri::Transport::Vsock;
  u.vsock_cid = cid;
  u.vsock_port = port;
  remember_uri(h, std::move(u));
  return started(h, connect_to(h, reinterpret_cast<struct sockaddr*>(&svm), sizeof svm));
}

int unlocked_aio_connect_socket(nbd_handle& h, int sock) {
  attach_socket(h, sock);
  return started(h, start_handshake(h));
}

int unlocked_aio_connect_command(nbd_handle& h, char** argv) {
  if (check_argv(argv) == -1)
    return failed(h);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
    set_error(errno, "socketpair");
    return failed(h);
  }
  UniqueFd ours{sv[0]}, theirs{sv[1]};
  const pid_t pid = spawn(argv, theirs.get(), -1, nullptr);
  if (pid == -1) {
    set_error(errno, "fork");
    return failed(h);
  }
  // The server exits by itself once its end of the socketpair closes.
  h.subprocess = Subprocess(pid, false);
  attach_socket(h, ours.release());
  return started(h, start_handshake(h));
}

int unlocked_aio_connect_systemd_socket_activation(nbd_handle& h, char** argv) {
  if (check_argv(argv) == -1)
    return failed(h);
  if (h.sa_dir.make("/tmp/nbdppXXXXXX") == -1) {
    set_error(errno, "mkdtemp");
    return failed(h);
  }
  const std::string path = h.sa_dir.socket_path();
  struct sockaddr_un sun;
  socklen_t len;
  if (unix_address(path.c_str(), sun, len) == -1)
    return failed(h);
  UniqueFd lfd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (!lfd || bind(lfd.get(), reinterpret_cast<struct sockaddr*>(&sun), len) == -1 ||
      listen(lfd.get(), SOMAXCONN) == -1) {
    set_error(errno, "socket activation");
    return failed(h);
  }
  // The environment of sd_listen_fds(3), as libnbd builds it: LISTEN_PID first (filled in by
  // the child), LISTEN_FDS, LISTEN_FDNAMES, then ours without those three.
  std::vector<std::string> env{
      std::string(kListenPid) + std::string(kPidDigits, '0'), "LISTEN_FDS=1",
      "LISTEN_FDNAMES=" + (h.socket_activation_name.empty() ? std::string(kUnnamedSocket)
                                                            : h.socket_activation_name)};
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view var(*e);
    if (std::none_of(std::begin(kListenVars), std::end(kListenVars),
                     [&](std::string_view p) { return var.starts_with(p); }))
      env.emplace_back(var);
  }
  const pid_t pid = spawn(argv, -1, lfd.get(), &env);
  if (pid == -1) {
    set_error(errno, "fork");
    return failed(h);
  }
  // The server keeps listening after we close our connection: it is asked to stop at once.
  h.subprocess = Subprocess(pid, true);
  ParsedUri u;
  u.transport = ParsedUri::Transport::Unix;
  u.socket = path;
  remember_uri(h, std::move(u));
  // The socket already listens (we made it), so connecting cannot race the server's start.
  return started(h, connect_to(h, reinterpret_cast<struct sockaddr*>(&sun), len));
}

int unlocked_aio_connect_uri(nbd_handle& h, const char* uri) {
  std::optional<ParsedUri> u = parse_uri(uri);
  if (!u)
    return -1;
  uint32_t need = 0;
  switch (u->transport) {
    case ParsedUri::Transport::Tcp:
      need = LIBNBD_ALLOW_TRANSPORT_TCP;
      break;
    case ParsedUri::Transport::Unix:
      need = LIBNBD_ALLOW_TRANSPORT_UNIX;
      break;
    case ParsedUri::Transport::Vsock:
      need = LIBNBD_ALLOW_TRANSPORT_VSOCK;
      break;
    case ParsedUri::Transport::Ssh:
      need = LIBNBD_ALLOW_TRANSPORT_SSH;
      break;
  }
  if ((h.uri_allow_transports & need) == 0)
    return set_error(EPERM, "URI transport is not permitted by nbd_set_uri_allow_transports");
  if ((u->tls && h.uri_allow_tls == LIBNBD_TLS_DISABLE) ||
      (!u->tls && h.uri_allow_tls == LIBNBD_TLS_REQUIRE))
    return set_error(EPERM, "URI %s TLS, which nbd_set_uri_allow_tls does not permit",
                     u->tls ? "requires" : "does not use");
  // The message names the parameter, as libnbd's does (tls-certificates first).
  if ((u->tls_certificates || u->tls_psk_file) && !h.uri_allow_local_file)
    return set_error(EPERM, "local file access (%s) is not permitted: see nbd_set_uri_allow_local_file",
                     u->tls_certificates ? "tls-certificates" : "tls-psk-file");
  if (unlocked_set_export_name(h, u->export_name.c_str()) == -1)
    return -1;
  // An nbds URI means TLS or nothing: never fall back to plaintext.
  h.tls = u->tls ? LIBNBD_TLS_REQUIRE : h.tls;
  if (u->tls_certificates)
    h.tls_certificates = *u->tls_certificates;
  if (u->tls_psk_file)
    h.tls_psk_file = *u->tls_psk_file;
  if (u->tls_hostname)
    h.tls_hostname = *u->tls_hostname;
  if (u->tls_verify_peer)
    h.tls_verify_peer = *u->tls_verify_peer;
  if (u->username)
    h.tls_username = *u->username;
  int r;
  switch (u->transport) {
    case ParsedUri::Transport::Unix:
      r = unlocked_aio_connect_unix(h, u->socket.c_str());
      break;
    case ParsedUri::Transport::Vsock:
      r = unlocked_aio_connect_vsock(h, u->vsock_cid, u->vsock_port);
      break;
    case ParsedUri::Transport::Ssh: {
      // The tunnel is a command whose stdin and stdout are the NBD connection, exactly as
      // nbd_connect_command runs it; nbd_get_uri then gives this URI back.
      std::vector<std::string> words = ssh_command(*u);
      std::vector<char*> argv;
      for (std::string& w : words)
        argv.push_back(w.data());
      argv.push_back(nullptr);
      r = unlocked_aio_connect_command(h, argv.data());
      break;
    }
    case ParsedUri::Transport::Tcp:
      r = unlocked_aio_connect_tcp(h, u->host.c_str(), u->port.c_str());
      break;
  }
  h.uri_info = std::move(*u);
  return r;
}

int unlocked_connect_uri(nbd_handle& h, const char* uri) {
  return unlocked_aio_connect_uri(h, uri) == -1 ? -1 : wait_connected(h);
}

int unlocked_connect_unix(nbd_handle& h, const char* unixsocket) {
  return unlocked_aio_connect_unix(h, unixsocket) == -1 ? -1 : wait_connected(h);
}

int unlocked_connect_tcp(nbd_handle& h, const char* hostname, const char* port) {
  return unlocked_aio_connect_tcp(h, hostname, port) == -1 ? -1 : wait_connected(h);
}

int unlocked_connect_vsock(nbd_handle& h, uint32_t cid, uint32_t port) {
  return unlocked_aio_connect_vsock(h, cid, port) == -1 ? -1 : wait_connected(h);
}

int unlocked_connect_socket(nbd_handle& h, int sock) {
  return unlocked_aio_connect_socket(h, sock) == -1 ? -1 : wait_connected(h);
}

int unlocked_connect_command(nbd_handle& h, char** argv) {
  return unlocked_aio_connect_command(h, argv) == -1 ? -1 : wait_connected(h);
}

int unlocked_connect_systemd_socket_activation(nbd_handle& h, char** argv) {
  return unlocked_aio_connect_systemd_socket_activation(h, argv) == -1 ? -1 : wait_connected(h);
}

int unlocked_is_uri(nbd_handle& /*h*/, const char* uri) { return is_uri(uri) ? 1 : 0; }

char* unlocked_get_uri(nbd_handle& h) {
  if (!h.uri_info) {
    set_error(EINVAL, "cannot construct a URI for this connection type (a socket, a command "
                      "or an address no URI can name)");
    return nullptr;
  }
  // Everything nbd_connect_uri needs to reach the same export again the same way, as libnbd
  // writes it: the TLS user name and files, and a peer check that was turned off.
  ParsedUri u = *h.uri_info;
  u.export_name = h.export_name;
  u.tls = h.tls == LIBNBD_TLS_REQUIRE || h.tls_negotiated;
  u.username = h.tls_username;
  u.tls_certificates = unless_empty(h.tls_certificates);
  u.tls_psk_file = unless_empty(h.tls_psk_file);
  u.tls_hostname = unless_empty(h.tls_hostname);
  u.tls_verify_peer = h.tls_verify_peer ? std::nullopt : std::optional<bool>(false);
  return dup_string(format_uri(u));
}

int64_t unlocked_get_subprocess_pid(nbd_handle& h) {
  if (!h.subprocess)
    return set_error(ESRCH, "no subprocess exists");
  return h.subprocess.pid();
}

int unlocked_kill_subprocess(nbd_handle& h, int signum) {
  if (!h.subprocess)
    return set_error(ESRCH, "no subprocess exists");
  if (signum < 0)
    return set_error(EINVAL, "invalid signal number: %d", signum);
  if (kill(h.subprocess.pid(), signum == 0 ? SIGTERM : signum) == -1)
    return set_error(errno, "kill");
  return 0;
}

}  // namespace nbd
