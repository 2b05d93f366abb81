// reconnect.hpp: where a handle connected, so that it can connect there again, and what a
// reconnection after a lost connection keeps (nbd_set_reconnect_delay).
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "util.hpp"

namespace nbd {

// What the connect calls connect to, kept for as long as the handle lives so that a lost
// connection can be made again the same way.
struct ConnectTarget {
  enum class Kind : uint8_t {
    None,              // not connected yet
    Addresses,         // TCP (every address resolved), Unix or vsock: tried in turn
    Command,           // nbd_connect_command (and ssh URIs): a server on a socketpair
    SocketActivation,  // nbd_connect_systemd_socket_activation
    Socket,            // nbd_connect_socket: the caller's socket, which cannot be made again
  };
  Kind kind = Kind::None;
  std::vector<sockaddr_storage> addrs;
  std::vector<socklen_t> addrlens;
  size_t addr_next = 0;          // the next address to try
  std::vector<std::string> argv;  // Command, SocketActivation

  bool redoable() const { return kind != Kind::None && kind != Kind::Socket; }
  void set_addresses() {
    kind = Kind::Addresses;
    addrs.clear();
    addrlens.clear();
    addr_next = 0;
  }
  void add_address(const struct sockaddr* addr, socklen_t len);
};

// A meta context the server agreed to, by the id its replies use.
struct MetaContext {
  uint32_t id;
  std::string name;
};

// What the commands of a connection rely on: checked again after a reconnection.
struct ExportFacts {
  uint64_t size = 0;
  uint16_t eflags = 0;
  bool structured_replies = false;
  bool extended_headers = false;
  bool tls = false;
  uint32_t block_minimum = 0;
  uint32_t block_maximum = 0;
  bool meta_valid = false;
  std::vector<MetaContext> contexts;  // the meta contexts negotiated
};

// The handshake settings a reconnection sets for its own handshake, and gives back after.
struct HandshakeSettings {
  bool opt_mode = false;
  bool request_meta_context = true;
  std::vector<std::string> meta_contexts;
  bool structured_replies = true;
  bool extended_headers = true;
  int tls = 0;
};

// A reconnection in progress (active), from the moment the connection was lost until the
// handshake of a new one has been checked, or the delay has passed.
struct Reconnection {
  bool active = false;
  bool refused = false;  // the new connection's export changed: no further attempt
  std::string lost_error;  // the error that ended the lost connection
  std::chrono::steady_clock::time_point deadline;
  std::chrono::steady_clock::time_point next_attempt;
  uint32_t backoff_ms = 0;
  ExportFacts before;
  HandshakeSettings saved;
  UniqueFd timer;  // a timerfd readable at next_attempt, for event loops (made on first use)
};

}  // namespace nbd
