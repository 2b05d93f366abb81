// session.hpp: one whole client session (handshake, options, every command, disconnect) driven
// in a single thread against a server end that a Server feeds: the fuzzer's input, or a real
// server relayed and recorded (fuzz_record).  The same client calls happen in the same order
// either way, so a recording replays byte for byte.
#pragma once

#include <poll.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace nbd_fuzz {

// The client's settings, from the first byte of an input (the rest is what the server sends).
struct Settings {
  bool opt_mode = false;       // bit 0: opt mode: opt_list, opt_info, opt_list_meta_context, opt_go
  bool no_structured = false;  // bit 1: do not request structured replies
  bool no_strict = false;      // bit 2: strict mode 0: every command goes out whatever the server says
  bool export_name = false;    // bit 3: handshake flags 0, so newstyle with NBD_OPT_EXPORT_NAME
  bool full_info = false;      // bit 4: ask for the name and description too
  bool debug = false;          // bit 5: debug messages on (through a callback that reads them)

  static Settings decode(uint8_t b);
  uint8_t encode() const;
};

// The far end of the client's socket.  pump() runs once per turn of the session loop and moves
// bytes both ways; with one_byte it gives the client at most one byte (the handshake is fed one
// byte at a time, so nothing meant for later is read ahead before the client issues the
// commands it answers).
class Server {
 public:
  virtual ~Server() = default;
  virtual void pump(bool one_byte) = 0;
  // Descriptors to wait on between turns, and for how long (0: never wait).
  virtual void poll_fds(std::vector<struct pollfd>& fds) const = 0;
  virtual int wait_ms() const = 0;
};

// The fuzzer's input as the server: written into fd (the server end of a socketpair), the
// client's requests read and dropped, and the end of the stream once the input is used up.
class BufferServer final : public Server {
 public:
  BufferServer(int fd, const uint8_t* data, size_t size) : fd_(fd), data_(data), size_(size) {}
  void pump(bool one_byte) override;
  void poll_fds(std::vector<struct pollfd>&) const override {}
  int wait_ms() const override { return 0; }

 private:
  int fd_;
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  int turns_after_end_ = 0;
  bool shut_ = false;
};

// A real server as the server: its bytes are relayed to fd and recorded, the client's bytes
// relayed to it.
class RelayServer final : public Server {
 public:
  RelayServer(int fd, int real_fd) : fd_(fd), real_(real_fd) {}
  void pump(bool one_byte) override;
  void poll_fds(std::vector<struct pollfd>& fds) const override;
  int wait_ms() const override { return 1000; }
  const std::vector<uint8_t>& recording() const { return recording_; }

 private:
  int fd_;
  int real_;
  std::vector<uint8_t> recording_;
  std::vector<uint8_t> to_client_;  // received from the real server, not yet passed on
  bool real_eof_ = false;
  bool shut_ = false;
};

struct Outcome {
  bool connected = false;  // reached the transmission phase
  int issued = 0;          // commands the library accepted
  int completed = 0;       // ... whose completion ran
  int failed = 0;          // ... with an error
  bool closed = false;     // ended closed (a clean disconnect), not dead
  std::string last_error;  // the last error a call reported
  std::string summary() const;
  // The session a recording of a well-behaved server must replay to.
  bool clean() const { return connected && closed && completed == issued; }
};

// Runs the session over client_fd (taken over by the library) against server.  Aborts (a
// finding for the fuzzer) if the library breaks one of its own promises: a byte written outside
// a buffer, a chunk or extent callback pointing outside its command, a closure not freed exactly
// once, or a session that never ends.
Outcome run_session(const Settings& settings, int client_fd, Server& server);

}  // namespace nbd_fuzz
