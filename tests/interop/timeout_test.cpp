// timeout_test.cpp: nbd_set_timeout and nbd_interrupt against nbdkit (issue 21): a synchronous
// command that runs out of time or is interrupted returns ETIMEDOUT or ECANCELED, never
// touches the caller's buffer afterwards, and leaves the handle usable; a connect that runs
// out of time leaves it dead.
#include <libnbd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/servers.hpp"

using nbd_test::last_error_is;

namespace {

using Clock = std::chrono::steady_clock;

long ms_since(Clock::time_point t) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

// nbdkit's memory plugin, reads delayed by rdelay seconds (the delay filter).
class Timeout : public ::testing::Test {
 protected:
  void start(const std::string& rdelay) {
    NBD_TEST_REQUIRE_PROGRAM("nbdkit");
    server_ = nbd_test::start_nbdkit({"--filter=delay", "memory", "32M", "rdelay=" + rdelay});
    ASSERT_TRUE(server_);
    h_ = nbd_create();
    ASSERT_NE(h_, nullptr);
    ASSERT_EQ(nbd_connect_uri(h_, server_->uri().c_str()), 0) << nbd_get_error();
  }
  void TearDown() override { nbd_close(h_); }

  // After an abandoned read: the call zeroed buf as it returned (nbd_set_pread_initialize, on
  // by default); the handle works, the late reply is thrown away, and buf, refilled by the
  // caller, is never written again.
  void expect_usable_and_untouched(std::vector<char>& buf) {
    EXPECT_EQ(buf, std::vector<char>(buf.size(), '\0'));
    std::fill(buf.begin(), buf.end(), '\xaa');
    ASSERT_EQ(nbd_set_timeout(h_, 0), 0);
    std::vector<char> data(4096, 'd');
    ASSERT_EQ(nbd_pwrite(h_, data.data(), data.size(), 8192, 0), 0) << nbd_get_error();
    std::vector<char> back(4096);
    ASSERT_EQ(nbd_pread(h_, back.data(), back.size(), 8192, 0), 0) << nbd_get_error();
    EXPECT_EQ(back, data);
    while (nbd_aio_in_flight(h_) > 0)  // the abandoned read's reply, if still to come
      ASSERT_GE(nbd_poll(h_, 5000), 0) << nbd_get_error();
    EXPECT_EQ(nbd_aio_is_ready(h_), 1) << nbd_connection_state(h_);
    EXPECT_EQ(buf, std::vector<char>(buf.size(), '\xaa'));
  }

  std::unique_ptr<nbd_test::Server> server_;
  nbd_handle* h_ = nullptr;
};

TEST_F(Timeout, DefaultIsNoLimitAndTheValueReadsBack) {
  nbd_handle* h = nbd_create();
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(nbd_get_timeout(h), 0u);
  EXPECT_EQ(nbd_set_timeout(h, 1500), 0);
  EXPECT_EQ(nbd_get_timeout(h), 1500u);
  EXPECT_EQ(nbd_interrupt(h), 0);  // nothing in progress: nothing happens
  nbd_close(h);
}

TEST_F(Timeout, SlowReadTimesOutAndIsAbandoned) {
  start("1");
  std::vector<char> buf(65536, '\xaa');
  ASSERT_EQ(nbd_set_timeout(h_, 200), 0);
  const auto t0 = Clock::now();
  EXPECT_EQ(nbd_pread(h_, buf.data(), buf.size(), 0, 0), -1);
  const long took = ms_since(t0);
  EXPECT_TRUE(last_error_is(ETIMEDOUT, "nbd_pread: timed out after 200 ms"));
  EXPECT_GE(took, 190);
  EXPECT_LT(took, 900);
  EXPECT_EQ(nbd_aio_in_flight(h_), 1);  // abandoned, not forgotten: its reply will come
  EXPECT_EQ(nbd_aio_is_ready(h_), 1) << nbd_connection_state(h_);
  expect_usable_and_untouched(buf);
}

TEST_F(Timeout, InterruptFromAnotherThreadCancelsARead) {
  start("2");
  std::vector<char> buf(4096, '\xaa');
  EXPECT_EQ(nbd_interrupt(h_), 0);  // before the call: no effect on it
  std::thread interrupter([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    nbd_interrupt(h_);
  });
  const auto t0 = Clock::now();
  EXPECT_EQ(nbd_pread(h_, buf.data(), buf.size(), 0, 0), -1);
  const long took = ms_since(t0);
  interrupter.join();
  EXPECT_TRUE(last_error_is(ECANCELED, "nbd_pread: interrupted by nbd_interrupt"));
  EXPECT_GE(took, 140);
  EXPECT_LT(took, 1500);
  expect_usable_and_untouched(buf);
}

// The server stops reading (SIGSTOP) while a 16 MiB write is being sent: the write times out
// with most of its payload still queued, the caller overwrites its buffer, and what reaches
// the server once it runs again is the data as it was when the write was made.
TEST_F(Timeout, AbandonedWriteSendsACopyOfItsPayload) {
  start("0");
  constexpr size_t kSize = 16 << 20;
  std::vector<char> data(kSize);
  for (size_t i = 0; i < kSize; ++i)
    data[i] = static_cast<char>(i * 7 + 3);
  const std::vector<char> expected = data;
  ASSERT_EQ(kill(server_->pid(), SIGSTOP), 0);
  ASSERT_EQ(nbd_set_timeout(h_, 300), 0);
  EXPECT_EQ(nbd_pwrite(h_, data.data(), kSize, 0, 0), -1);
  EXPECT_TRUE(last_error_is(ETIMEDOUT, "nbd_pwrite: timed out after 300 ms"));
  std::fill(data.begin(), data.end(), 'x');  // the caller's memory is the caller's again
  data.clear();
  data.shrink_to_fit();
  ASSERT_EQ(kill(server_->pid(), SIGCONT), 0);
  ASSERT_EQ(nbd_set_timeout(h_, 0), 0);
  // The abandoned write goes on and retires by itself (before the read-back, which nbdkit
  // might otherwise serve first: it runs requests in parallel).
  while (nbd_aio_in_flight(h_) > 0)
    ASSERT_GE(nbd_poll(h_, 10000), 1) << nbd_get_error();
  EXPECT_EQ(nbd_aio_peek_command_completed(h_), -1);  // nothing left for the caller to retire
  std::vector<char> back(kSize);
  ASSERT_EQ(nbd_pread(h_, back.data(), kSize, 0, 0), 0) << nbd_get_error();
  EXPECT_TRUE(back == expected) << "the server got other bytes than the write's";
}

// A server that accepts the connection but never speaks: the connect call runs out of time
// in the handshake, which cannot be resumed, so the handle is dead.
TEST(TimeoutConnect, HandshakeTimeoutLeavesTheHandleDead) {
  nbd_test::TmpDir dir;
  const std::string path = dir.path() + "/silent.sock";
  const int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(lfd, 0);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(bind(lfd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(lfd, 1), 0);  // never accepted: the kernel completes the connect anyway
  nbd_handle* h = nbd_create();
  ASSERT_NE(h, nullptr);
  ASSERT_EQ(nbd_set_timeout(h, 200), 0);
  const auto t0 = Clock::now();
  EXPECT_EQ(nbd_connect_unix(h, path.c_str()), -1);
  EXPECT_LT(ms_since(t0), 1500);
  EXPECT_TRUE(last_error_is(ETIMEDOUT, "nbd_connect_unix: timed out after 200 ms"));
  EXPECT_EQ(nbd_aio_is_dead(h), 1);
  nbd_close(h);
  close(lfd);
}

}  // namespace
