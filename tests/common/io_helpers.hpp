// io_helpers.hpp: small helpers the interop tests share: an owning handle, test data, a
// checked write-then-read, a poll loop that cannot hang, and pausing a server.
#pragma once

#include <gtest/gtest.h>
#include <libnbd.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace nbd_test {

// A handle closed when the test ends.
struct Handle {
  nbd_handle* h = nbd_create();
  Handle() { EXPECT_NE(h, nullptr) << nbd_get_error(); }
  ~Handle() { nbd_close(h); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  operator nbd_handle*() const { return h; }
};

inline std::vector<char> random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<char> v(n);
  for (auto& c : v) c = static_cast<char>(rng());
  return v;
}

// Takes ownership of a string returned by the library.
inline std::string take(char* s) {
  EXPECT_NE(s, nullptr) << nbd_get_error();
  std::string out = s != nullptr ? s : "";
  std::free(s);
  return out;
}

// Writes random data at offset through the synchronous API and reads it back.
inline void round_trip(nbd_handle* h, uint64_t offset, size_t n, unsigned seed) {
  auto data = random_bytes(n, seed);
  ASSERT_EQ(nbd_pwrite(h, data.data(), n, offset, 0), 0) << nbd_get_error();
  std::vector<char> back(n);
  ASSERT_EQ(nbd_pread(h, back.data(), n, offset, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, data);
}

// Polls until pred() holds; false if a poll fails or 10 s pass without any event (no hang).
inline bool poll_until(nbd_handle* h, const std::function<bool()>& pred) {
  for (int i = 0; i < 100000; ++i) {
    if (pred()) return true;  // pred may retire a command: call it once per round
    const int r = nbd_poll(h, 10000);
    if (r == 0) return false;
    if (r == -1) return pred();
  }
  return false;
}

// Stops our child pid (a server) and waits until it is stopped, so that it reads nothing more:
// a way to fill the socket without sleeping.
inline bool stop_child(pid_t pid) {
  if (kill(pid, SIGSTOP) != 0) return false;
  int status = 0;
  return waitpid(pid, &status, WUNTRACED) == pid && WIFSTOPPED(status);
}

// SIGCONT for a server that a test stopped, however the test ends.
struct Resume {
  pid_t pid;
  ~Resume() { kill(pid, SIGCONT); }
};

}  // namespace nbd_test
