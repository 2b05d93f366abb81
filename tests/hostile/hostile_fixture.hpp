// hostile_fixture.hpp: what the hostile suite's files share: the Hostile fixture (a handle and
// a scripted fake server), guarded read buffers, recording closures and handshake prefixes.
//
// The suite runs the library against a scripted server that breaks the protocol, one violation
// per test (proto.md).  Each test checks the errno and message, whether the command failed or
// the handle died, that nothing was written outside the caller's buffer (guard bytes; ASan in
// sanitizer builds), and that every closure was freed exactly once (valgrind in the
// hostile_valgrind test).  A script sends its violation last and in one piece: the client may
// hang up as soon as it sees it, and a send after that would fail the script.
#pragma once

#include <gtest/gtest.h>
#include <libnbd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "common/closure_counter.hpp"
#include "hostile/fake_server.hpp"

namespace hostile {

// A read buffer with guard bytes on both sides, which must survive whatever the server sends.
class Guarded {
 public:
  explicit Guarded(size_t n) : n_(n), v_(n + 2 * kGuard, kGuardByte) {}
  void* data() { return v_.data() + kGuard; }
  size_t size() const { return n_; }
  bool guards_intact() const {
    for (size_t i = 0; i < kGuard; ++i)
      if (v_[i] != kGuardByte || v_[kGuard + n_ + i] != kGuardByte)
        return false;
    return true;
  }
  std::vector<unsigned char> contents() const {
    return {v_.begin() + kGuard, v_.begin() + static_cast<std::ptrdiff_t>(kGuard + n_)};
  }

 private:
  static constexpr size_t kGuard = 64;
  static constexpr unsigned char kGuardByte = 0xa5;
  size_t n_;
  std::vector<unsigned char> v_;
};

std::vector<unsigned char> pattern(size_t n, unsigned char seed);

Bytes bytes(const std::vector<unsigned char>& v);

// The export every transmission test uses: 1 MiB, structured replies, base:allocation as id 7.
Export sr_export();

Export simple_export();

// A completion closure that records the error it was given.
struct Completion {
  nbd_test::Counter counter;
  int error = -1;
  nbd_completion_callback closure() {
    return {[](void* ud, int* err) {
              auto* self = static_cast<Completion*>(ud);
              ++self->counter.calls;
              self->error = *err;
              return 0;
            },
            this, [](void* ud) { ++static_cast<Completion*>(ud)->counter.frees; }};
  }
};

// Block status results as the extent callback saw them.
struct Extents {
  nbd_test::Counter counter;
  uint64_t offset = 0;
  std::vector<uint32_t> entries;
  int last_error = 0;  // *error on entry to the last call
  nbd_extent_callback closure() {
    return {[](void* ud, const char*, uint64_t off, uint32_t* e, size_t n, int* error) {
              auto* self = static_cast<Extents*>(ud);
              ++self->counter.calls;
              self->offset = off;
              self->entries.assign(e, e + n);
              self->last_error = *error;
              return 0;
            },
            this, [](void* ud) { ++static_cast<Extents*>(ud)->counter.frees; }};
  }
};

// The first options of a default client after the greeting: NBD_OPT_EXTENDED_HEADERS, which
// this server refuses (as every packaged server does), then NBD_OPT_STRUCTURED_REPLY.
void greet_until_structured_reply(Peer& p);

// Serves the handshake up to NBD_OPT_GO, whose replies the test sends.
void greet_until_go(Peer& p);

class Hostile : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override { finish_server(); }

  // Closes the handle, then waits for the script to end.  A test whose script refers to the
  // test's locals calls it before they go.
  void finish_server();

  // Starts the script without connecting (for the aio connect calls).
  int serve(FakeServer::Script s);
  // Starts the script and runs nbd_connect_socket against it.
  int connect(FakeServer::Script s) { return nbd_connect_socket(h, serve(std::move(s))); }
  // Connects through a standard handshake for e, then runs the transmission script.
  void connect_ok(const Export& e, FakeServer::Script transmission);
  void close_handle();
  bool dead() { return nbd_aio_is_dead(h) == 1; }

  nbd_handle* h = nullptr;
  std::unique_ptr<FakeServer> srv;
};

}  // namespace hostile
