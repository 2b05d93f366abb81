// reconnect_test.cpp: nbd_set_reconnect_delay against real servers (issue 21).  qemu-nbd and
// nbdkit are killed with SIGKILL in the middle of a stream of writes and started again on the
// same socket or port: every command completes once, successfully, and every byte reads back.
// A server that stays away longer than the delay, or comes back with a smaller export, leaves
// the handle dead with the errno and message the man page gives.
#include <libnbd.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/servers.hpp"
#include "common/tls_pki.hpp"

using nbd_test::last_error_is;

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kDelayMs = 20000;  // ample: a restart takes well under a second
constexpr size_t kBlock = 32 * 1024;
constexpr int kWrites = 192;           // 6 MiB of an 8 MiB export, in 32 KiB writes

// One write of the stream: its data, and how often its completion ran and with what.
struct Write {
  std::vector<char> data;
  int64_t cookie = 0;
  std::atomic<int> completions{0};
  std::atomic<int> error{-1};
};

int write_done(void* user_data, int* error) {
  auto* w = static_cast<Write*>(user_data);
  w->error.store(*error);
  w->completions.fetch_add(1);
  return 1;  // retired here
}

// Polls until nothing is in flight (or the handle dies).
void drain(nbd_handle* h) {
  while (nbd_aio_in_flight(h) > 0) {
    if (nbd_poll(h, 30000) == -1)
      break;
  }
}

// Reads [0, size) back and compares it with the writes (write i at i * kBlock).
void expect_data(nbd_handle* h, const std::vector<Write>& writes) {
  std::vector<char> back(kBlock);
  for (size_t i = 0; i < writes.size(); ++i) {
    ASSERT_EQ(nbd_pread(h, back.data(), back.size(), i * kBlock, 0), 0) << nbd_get_error();
    ASSERT_EQ(back, writes[i].data) << "block " << i;
  }
}

// Issues kWrites writes, the server being killed after a third of them and restarted after
// two thirds (commands issued in between wait for the new connection), then checks that each
// completed exactly once without error, that the data reads back, and that the handle
// reconnected once.
void stream_across_restart(nbd_handle* h, nbd_test::Server& server) {
  std::vector<Write> writes(kWrites);
  for (int i = 0; i < kWrites; ++i) {
    writes[i].data.assign(kBlock, static_cast<char>('A' + i % 50));
    std::memcpy(writes[i].data.data(), &i, sizeof i);
  }
  for (int i = 0; i < kWrites; ++i) {
    if (i == kWrites / 3)
      server.kill_now();
    if (i == 2 * kWrites / 3) {
      ASSERT_TRUE(server.restart());
    }
    Write& w = writes[i];
    w.cookie = nbd_aio_pwrite(h, w.data.data(), w.data.size(), static_cast<uint64_t>(i) * kBlock,
                              {write_done, &w, nullptr}, 0);
    ASSERT_GT(w.cookie, 0) << i << ": " << nbd_get_error();
    ASSERT_GE(nbd_poll(h, 0), 0) << nbd_get_error();
  }
  drain(h);
  ASSERT_EQ(nbd_aio_is_ready(h), 1) << nbd_connection_state(h) << ": " << nbd_get_error();
  for (int i = 0; i < kWrites; ++i) {
    EXPECT_EQ(writes[i].completions.load(), 1) << "write " << i;
    EXPECT_EQ(writes[i].error.load(), 0) << "write " << i;
  }
  EXPECT_EQ(nbd_stats_reconnections(h), 1u);
  expect_data(h, writes);
}

// A raw image of size (qemu-img's notation) in dir.
std::string make_image(const std::string& dir, const char* size) {
  const std::string path = dir + "/disk.img";
  EXPECT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-q", "-f", "raw", path, size}));
  return path;
}

class Reconnect : public ::testing::Test {
 protected:
  void SetUp() override {
    h_ = nbd_create();
    ASSERT_NE(h_, nullptr);
  }
  void TearDown() override { nbd_close(h_); }

  enum class Serve { NbdkitFile, QemuNbd };
  // nbdkit's file plugin or qemu-nbd serving a fresh image_ of size, and h_ connected to it
  // with a long reconnect delay; nullptr (after a failure) if it did not start.
  std::unique_ptr<nbd_test::Server> connect_to(Serve how, const char* size, bool tcp = false) {
    image_ = make_image(dir_.path(), size);
    auto server = how == Serve::QemuNbd ? nbd_test::start_qemu_nbd(image_, "raw", {}, tcp)
                                        : nbd_test::start_nbdkit({"file", image_}, tcp);
    if (!server)
      return nullptr;
    EXPECT_EQ(nbd_set_reconnect_delay(h_, kDelayMs), 0);
    EXPECT_EQ(nbd_connect_uri(h_, server->uri().c_str()), 0) << nbd_get_error();
    return server;
  }

  nbd_handle* h_ = nullptr;
  std::string image_;
  nbd_test::TmpDir dir_;
};

TEST_F(Reconnect, DefaultIsOffAndTheValueReadsBack) {
  EXPECT_EQ(nbd_get_reconnect_delay(h_), 0u);
  EXPECT_EQ(nbd_set_reconnect_delay(h_, 1500), 0);
  EXPECT_EQ(nbd_get_reconnect_delay(h_), 1500u);
  EXPECT_EQ(nbd_stats_reconnections(h_), 0u);
}

TEST_F(Reconnect, ASocketCannotBeConnectedAgain) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  ASSERT_EQ(nbd_set_reconnect_delay(h_, 1000), 0);
  EXPECT_EQ(nbd_connect_socket(h_, sv[0]), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_connect_socket: a connection made with nbd_connect_socket cannot"));
  EXPECT_EQ(nbd_aio_is_created(h_), 1);  // nothing happened: the handle is as it was
  ASSERT_EQ(nbd_set_reconnect_delay(h_, 0), 0);
  // And the other way round: once connected to a socket, no delay can be set.
  ASSERT_EQ(nbd_aio_connect_socket(h_, sv[0]), 0) << nbd_get_error();
  EXPECT_EQ(nbd_set_reconnect_delay(h_, 1000), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_set_reconnect_delay: a connection made with nbd_connect_socket"));
  EXPECT_EQ(nbd_get_reconnect_delay(h_), 0u);
  close(sv[1]);
}

TEST_F(Reconnect, AConcurrentWriterAndADelayExcludeEachOther) {
  ASSERT_EQ(nbd_set_reconnect_delay(h_, 1000), 0);
  EXPECT_EQ(nbd_start_concurrent_writer(h_), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_start_concurrent_writer: a handle with a reconnect delay"));
  ASSERT_EQ(nbd_set_reconnect_delay(h_, 0), 0);
  ASSERT_EQ(nbd_start_concurrent_writer(h_), 0) << nbd_get_error();
  EXPECT_EQ(nbd_set_reconnect_delay(h_, 1000), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_set_reconnect_delay: a handle with a concurrent writer"));
}

TEST_F(Reconnect, QemuNbdKilledAndRestartedOnTheSameSocket) {
  NBD_TEST_REQUIRE_PROGRAM("qemu-nbd");
  auto server = connect_to(Serve::QemuNbd, "8M");
  ASSERT_TRUE(server);
  stream_across_restart(h_, *server);
}

TEST_F(Reconnect, NbdkitFileKilledAndRestartedOnTheSamePort) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  NBD_TEST_REQUIRE_PROGRAM("qemu-img");
  auto server = connect_to(Serve::NbdkitFile, "8M", true);  // nbd://127.0.0.1:PORT/
  ASSERT_TRUE(server);
  stream_across_restart(h_, *server);
}

TEST_F(Reconnect, TlsIsNegotiatedAgain) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  NBD_TEST_REQUIRE_PROGRAM("qemu-img");
  if (!nbd_test::have_pki_tools())
    GTEST_SKIP() << "certtool and psktool (gnutls-bin) not installed";
  const nbd_test::Pki* pki = nbd_test::test_pki();
  ASSERT_NE(pki, nullptr);
  const std::string image = make_image(dir_.path(), "8M");
  auto server = nbd_test::start_nbdkit({"--tls=require", "--tls-psk=" + pki->psk_file, "file", image});
  ASSERT_TRUE(server);
  ASSERT_EQ(nbd_set_tls(h_, LIBNBD_TLS_REQUIRE), 0);
  ASSERT_EQ(nbd_set_tls_psk_file(h_, pki->psk_file.c_str()), 0);
  ASSERT_EQ(nbd_set_tls_username(h_, nbd_test::kPskUser), 0);
  ASSERT_EQ(nbd_set_reconnect_delay(h_, kDelayMs), 0);
  ASSERT_EQ(nbd_connect_unix(h_, server->unix_socket().c_str()), 0) << nbd_get_error();
  stream_across_restart(h_, *server);
  EXPECT_EQ(nbd_get_tls_negotiated(h_), 1);
}

TEST_F(Reconnect, AServerAwayLongerThanTheDelayLeavesTheHandleDead) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto server = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(server);
  ASSERT_EQ(nbd_set_reconnect_delay(h_, 300), 0);
  ASSERT_EQ(nbd_connect_uri(h_, server->uri().c_str()), 0) << nbd_get_error();
  server->kill_now();
  std::vector<char> buf(4096);
  const auto t0 = Clock::now();
  EXPECT_EQ(nbd_pread(h_, buf.data(), buf.size(), 0, 0), -1);
  EXPECT_TRUE(last_error_is(ENOTCONN, "nbd_pread: reconnect: no connection within 300 ms (nbd_set_reconnect_delay): "));
  EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(300));
  EXPECT_EQ(nbd_aio_is_dead(h_), 1);
  EXPECT_EQ(nbd_stats_reconnections(h_), 0u);
  EXPECT_EQ(nbd_get_reconnect_delay(h_), 300u);  // the setting stays as it was
}

TEST_F(Reconnect, ASmallerExportIsRefused) {
  NBD_TEST_REQUIRE_PROGRAM("qemu-nbd");
  auto server = connect_to(Serve::QemuNbd, "8M");
  ASSERT_TRUE(server);
  server->kill_now();
  ASSERT_EQ(truncate(image_.c_str(), 4 << 20), 0);
  ASSERT_TRUE(server->restart());
  std::vector<char> buf(4096);
  EXPECT_EQ(nbd_pread(h_, buf.data(), buf.size(), 0, 0), -1);
  EXPECT_TRUE(last_error_is(ESTALE, "nbd_pread: reconnect: the export shrank from 8388608 to 4194304 bytes"));
  EXPECT_EQ(nbd_aio_is_dead(h_), 1);
}

TEST_F(Reconnect, AnInterruptedReadLeavesTheReconnectionGoing) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  NBD_TEST_REQUIRE_PROGRAM("qemu-img");
  auto server = connect_to(Serve::NbdkitFile, "1M");
  ASSERT_TRUE(server);
  server->kill_now();
  // The read blocks while the handle tries to reconnect; another thread interrupts it.
  std::vector<char> buf(4096, '\xaa');
  std::thread interrupter([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    nbd_interrupt(h_);
  });
  EXPECT_EQ(nbd_pread(h_, buf.data(), buf.size(), 0, 0), -1);
  EXPECT_TRUE(last_error_is(ECANCELED, "nbd_pread: interrupted by nbd_interrupt"));
  interrupter.join();
  EXPECT_EQ(nbd_aio_is_processing(h_), 1) << nbd_connection_state(h_);
  EXPECT_EQ(std::string(nbd_connection_state(h_)).rfind("RECONNECT", 0), 0u) << nbd_connection_state(h_);
  EXPECT_EQ(nbd_aio_in_flight(h_), 0);  // the abandoned read went: it was on no connection
  // The server comes back: the handle works again, and the abandoned read never touches buf.
  ASSERT_TRUE(server->restart());
  std::fill(buf.begin(), buf.end(), '\x55');
  std::vector<char> data(4096, 'r');
  ASSERT_EQ(nbd_pwrite(h_, data.data(), data.size(), 0, 0), 0) << nbd_get_error();
  std::vector<char> back(4096);
  ASSERT_EQ(nbd_pread(h_, back.data(), back.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, data);
  EXPECT_EQ(buf, std::vector<char>(4096, '\x55'));
  EXPECT_EQ(nbd_stats_reconnections(h_), 1u);
}

TEST_F(Reconnect, ACommandServerIsStartedAgain) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  NBD_TEST_REQUIRE_PROGRAM("qemu-img");
  const std::string image = make_image(dir_.path(), "1M");
  ASSERT_EQ(nbd_set_reconnect_delay(h_, kDelayMs), 0);
  const char* argv[] = {"nbdkit", "-s", "--exit-with-parent", "file", image.c_str(), nullptr};
  ASSERT_EQ(nbd_connect_command(h_, const_cast<char**>(argv)), 0) << nbd_get_error();
  const int64_t first = nbd_get_subprocess_pid(h_);
  std::vector<char> data(65536, 'c');
  ASSERT_EQ(nbd_pwrite(h_, data.data(), data.size(), 4096, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_kill_subprocess(h_, SIGKILL), 0);
  std::vector<char> back(65536);
  ASSERT_EQ(nbd_pread(h_, back.data(), back.size(), 4096, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, data);
  EXPECT_NE(nbd_get_subprocess_pid(h_), first);
  EXPECT_EQ(nbd_stats_reconnections(h_), 1u);
}

TEST_F(Reconnect, SocketActivationStartsTheServerAgain) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  NBD_TEST_REQUIRE_PROGRAM("qemu-img");
  const std::string image = make_image(dir_.path(), "1M");
  ASSERT_EQ(nbd_set_reconnect_delay(h_, kDelayMs), 0);
  const char* argv[] = {"nbdkit", "--exit-with-parent", "file", image.c_str(), nullptr};
  ASSERT_EQ(nbd_connect_systemd_socket_activation(h_, const_cast<char**>(argv)), 0) << nbd_get_error();
  std::vector<char> data(4096, 's');
  ASSERT_EQ(nbd_pwrite(h_, data.data(), data.size(), 0, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_kill_subprocess(h_, SIGKILL), 0);
  std::vector<char> back(4096);
  ASSERT_EQ(nbd_pread(h_, back.data(), back.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, data);
  EXPECT_EQ(nbd_stats_reconnections(h_), 1u);
}

// Opt mode and meta contexts: the reconnection goes straight to NBD_OPT_GO, asking for the
// contexts the lost connection had, and block status works afterwards.
TEST_F(Reconnect, OptModeAndMetaContextsAreNegotiatedAgain) {
  NBD_TEST_REQUIRE_PROGRAM("qemu-nbd");
  const std::string image = make_image(dir_.path(), "8M");
  auto server = nbd_test::start_qemu_nbd(image, "raw");
  ASSERT_TRUE(server);
  ASSERT_EQ(nbd_set_reconnect_delay(h_, kDelayMs), 0);
  ASSERT_EQ(nbd_set_opt_mode(h_, true), 0);
  ASSERT_EQ(nbd_add_meta_context(h_, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
  ASSERT_EQ(nbd_connect_uri(h_, server->uri().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_opt_go(h_), 0) << nbd_get_error();
  server->kill_now();
  ASSERT_TRUE(server->restart());
  int extents = 0;
  auto count = [](void* user_data, const char* metacontext, uint64_t, uint32_t*, size_t nr, int*) {
    if (std::strcmp(metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0)
      *static_cast<int*>(user_data) += static_cast<int>(nr);
    return 0;
  };
  ASSERT_EQ(nbd_block_status(h_, 1 << 20, 0, {count, &extents, nullptr}, 0), 0) << nbd_get_error();
  EXPECT_GT(extents, 0);
  EXPECT_EQ(nbd_can_meta_context(h_, LIBNBD_CONTEXT_BASE_ALLOCATION), 1);
  EXPECT_EQ(nbd_stats_reconnections(h_), 1u);
  EXPECT_EQ(nbd_get_opt_mode(h_), 1);  // the caller's setting is back
}

// An event loop of the application's: it asks for the descriptor and direction at each step
// (the descriptor changes while the handle reconnects) and drives the handle with notify.
TEST_F(Reconnect, AnEventLoopFollowsTheDescriptor) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  NBD_TEST_REQUIRE_PROGRAM("qemu-img");
  auto server = connect_to(Serve::NbdkitFile, "1M");
  ASSERT_TRUE(server);
  server->kill_now();
  std::vector<char> data(8192, 'e');
  Write w;
  ASSERT_GT(nbd_aio_pwrite(h_, data.data(), data.size(), 0, {write_done, &w, nullptr}, 0), 0)
      << nbd_get_error();
  bool restarted = false;
  int fds_seen = 0, last_fd = -1;
  const auto give_up = Clock::now() + std::chrono::seconds(30);
  while (w.completions.load() == 0 && Clock::now() < give_up) {
    const int fd = nbd_aio_get_fd(h_);
    ASSERT_GE(fd, 0) << nbd_get_error();
    if (fd != last_fd) {
      ++fds_seen;
      last_fd = fd;
    }
    const unsigned dir = nbd_aio_get_direction(h_);
    struct pollfd pfd = {fd, static_cast<short>(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                                                ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0)), 0};
    ASSERT_GE(poll(&pfd, 1, 100), 0);
    if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      ASSERT_EQ(nbd_aio_notify_read(h_), 0) << nbd_get_error();
    } else if ((pfd.revents & POLLOUT) != 0) {
      ASSERT_EQ(nbd_aio_notify_write(h_), 0) << nbd_get_error();
    }
    if (!restarted && nbd_aio_is_processing(h_) &&
        std::string(nbd_connection_state(h_)).rfind("RECONNECT", 0) == 0) {
      ASSERT_TRUE(server->restart());
      restarted = true;
    }
  }
  EXPECT_TRUE(restarted);
  EXPECT_EQ(w.completions.load(), 1);
  EXPECT_EQ(w.error.load(), 0);
  EXPECT_GE(fds_seen, 2);  // the old socket (or the timer), then the new one
  std::vector<char> back(8192);
  ASSERT_EQ(nbd_pread(h_, back.data(), back.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, data);
}

// A server that breaks the protocol is not asked again: the handle dies at once with EPROTO.
TEST_F(Reconnect, AProtocolErrorIsNotRetried) {
  auto server = nbd_test::start_ext_server({"--size", "1M", "--bad=simple-reply-in-extended-mode"});
  ASSERT_TRUE(server);
  ASSERT_EQ(nbd_set_reconnect_delay(h_, kDelayMs), 0);
  ASSERT_EQ(nbd_connect_uri(h_, server->uri().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_get_extended_headers_negotiated(h_), 1);
  std::vector<char> buf(4096);
  const auto t0 = Clock::now();
  EXPECT_EQ(nbd_pread(h_, buf.data(), buf.size(), 0, 0), -1);
  EXPECT_EQ(nbd_get_errno(), EPROTO) << nbd_get_error();
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(kDelayMs));
  EXPECT_EQ(nbd_aio_is_dead(h_), 1);
  EXPECT_EQ(nbd_stats_reconnections(h_), 0u);
  EXPECT_EQ(nbd_test::ext_server_log_lines(*server, "transmission").size(), 1u);
}

}  // namespace
