// connect.cpp: the connect calls.  Each sync call is its aio form plus a wait for the handshake.
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
#include <string>
#include <vector>

#include "error.hpp"
#include "state/machine.hpp"
#include "subprocess.hpp"
#include "unlocked.hpp"
#include "uri.hpp"
#include "util.hpp"

namespace nbd {
namespace {

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

// Connects to one address (Unix, vsock, or the caller's sockaddr), kept for reconnection.
int connect_address(nbd_handle& h, const struct sockaddr* addr, socklen_t len) {
  h.target.set_addresses();
  h.target.add_address(addr, len);
  return started(h, connect_target(h));
}

// The target of nbd_connect_command or socket activation: argv, kept for reconnection.
int set_command_target(nbd_handle& h, ConnectTarget::Kind kind, char** argv) {
  if (argv[0] == nullptr)
    return set_error(EINVAL, "argv must not be empty");
  size_t n = 0;
  while (argv[n] != nullptr)
    ++n;
  h.target.kind = kind;
  h.target.argv.assign(argv, argv + n);
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
  return connect_address(h, addr, addrlen);
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
  return connect_address(h, reinterpret_cast<struct sockaddr*>(&sun), len);
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
  // Every address is kept: a reconnection tries them again, without resolving the name anew.
  h.target.set_addresses();
  for (struct addrinfo* a = res; a != nullptr; a = a->ai_next)
    h.target.add_address(a->ai_addr, a->ai_addrlen);
  freeaddrinfo(res);
  ParsedUri u;
  u.transport = ParsedUri::Transport::Tcp;
  u.host = hostname;
  u.port = port;
  remember_uri(h, std::move(u));
  return started(h, connect_target(h));
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
  return connect_address(h, reinterpret_cast<struct sockaddr*>(&svm), sizeof svm);
}

int unlocked_aio_connect_socket(nbd_handle& h, int sock) {
  if (h.reconnect_delay_ms != 0)
    return set_error(ENOTSUP, "a connection made with nbd_connect_socket cannot be made again: "
                              "set the reconnect delay to 0 first (nbd_set_reconnect_delay)");
  h.target.kind = ConnectTarget::Kind::Socket;
  attach_socket(h, sock);
  return started(h, start_handshake(h));
}

int unlocked_aio_connect_command(nbd_handle& h, char** argv) {
  if (set_command_target(h, ConnectTarget::Kind::Command, argv) == -1)
    return failed(h);
  return started(h, connect_target(h));
}

int unlocked_aio_connect_systemd_socket_activation(nbd_handle& h, char** argv) {
  if (set_command_target(h, ConnectTarget::Kind::SocketActivation, argv) == -1)
    return failed(h);
  // nbd_get_uri names the socket (made by connect_target, which also starts the server).
  const Transition t = connect_target(h);
  if (!h.sa_dir.empty()) {
    ParsedUri u;
    u.transport = ParsedUri::Transport::Unix;
    u.socket = h.sa_dir.socket_path();
    remember_uri(h, std::move(u));
  }
  return started(h, t);
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
