// writer_test.cpp: the concurrent writer (nbd_set_concurrent_writer, nbd_start_concurrent_writer,
// nbd_concurrent_writer_error) against nbdkit and qemu-nbd: data integrity with hundreds of
// commands in flight, the byte stream kept in order when the writer arrives mid-connection,
// injected writer failures reaching every command, and each closure freed exactly once.
#include <libnbd.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/closure_counter.hpp"
#include "common/io_helpers.hpp"
#include "common/mixed_load.hpp"
#include "common/servers.hpp"

using nbd_test::ApiTest;
using nbd_test::Counter;
using nbd_test::last_error_is;
using nbd_test::poll_until;
using nbd_test::random_bytes;
using nbd_test::round_trip;

namespace {

// The seed's recipe done by an application: the callback queues a copy and wakes a thread of
// ours that writes to the socket.  fail_after_calls > 0 makes the thread report fail_errno
// through nbd_concurrent_writer_error (and drop the data) from that callback on.
class AppWriter {
 public:
  AppWriter(nbd_handle* h, int fd, int fail_after_calls = 0, int fail_errno = 0)
      : h_(h), fd_(fd), fail_after_(fail_after_calls), fail_errno_(fail_errno) {
    thread_ = std::thread([this] { loop(); });
  }
  ~AppWriter() { stop(); }
  AppWriter(const AppWriter&) = delete;
  AppWriter& operator=(const AppWriter&) = delete;

  // The closure for nbd_set_concurrent_writer; its free stops the thread.
  nbd_writer_callback closure() {
    return {[](void* ud, const void* buf, size_t len) {
              static_cast<AppWriter*>(ud)->push(buf, len);
              return 0;
            },
            this, [](void* ud) {
              auto* w = static_cast<AppWriter*>(ud);
              w->frees++;
              w->stop();
            }};
  }

  std::atomic<int> calls{0}, frees{0};
  std::atomic<size_t> bytes_sent{0};

 private:
  void push(const void* buf, size_t len) {
    const auto* p = static_cast<const char*>(buf);
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.emplace_back(p, p + len);
      ++calls;
    }
    cv_.notify_one();
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

  void loop() {
    int seen = 0;
    bool failed = false;
    for (;;) {
      std::vector<char> item;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        item = std::move(queue_.front());
        queue_.pop_front();
      }
      if (failed) continue;
      if (fail_after_ > 0 && ++seen >= fail_after_) {
        failed = true;
        EXPECT_EQ(nbd_concurrent_writer_error(h_, fail_errno_), 0) << nbd_get_error();
        continue;
      }
      if (!send_all(item)) {
        failed = true;
        nbd_concurrent_writer_error(h_, errno);
      }
    }
  }

  bool send_all(const std::vector<char>& item) {
    size_t done = 0;
    while (done < item.size()) {
      const ssize_t r = ::send(fd_, item.data() + done, item.size() - done, MSG_NOSIGNAL);
      if (r > 0) {
        done += static_cast<size_t>(r);
        bytes_sent += static_cast<size_t>(r);
      } else if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        struct pollfd pfd = {fd_, POLLOUT, 0};
        ::poll(&pfd, 1, 1000);
      } else if (r == -1 && errno != EINTR) {
        return false;
      }
    }
    return true;
  }

  nbd_handle* h_;
  int fd_;
  int fail_after_;
  int fail_errno_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<char>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

// A Unix socket connected to path, or -1.
int connect_unix_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) return -1;
  struct sockaddr_un sun {};
  sun.sun_family = AF_UNIX;
  std::strncpy(sun.sun_path, path.c_str(), sizeof sun.sun_path - 1);
  if (::connect(fd, reinterpret_cast<struct sockaddr*>(&sun), sizeof sun) == -1) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string start_builtin_writer(nbd_handle* h) {
  return nbd_start_concurrent_writer(h) == 0 ? "" : nbd_get_error();
}

// Counts completions and the error each one saw.
struct Outcomes {
  std::atomic<int> calls{0}, frees{0}, ok{0};
  std::mutex mu;
  std::vector<int> errors;
};

nbd_completion_callback outcome_closure(Outcomes& o) {
  return {[](void* ud, int* error) {
            auto* out = static_cast<Outcomes*>(ud);
            ++out->calls;
            if (*error == 0) {
              ++out->ok;
            } else {
              std::lock_guard<std::mutex> lock(out->mu);
              out->errors.push_back(*error);
            }
            return 1;
          },
          &o, [](void* ud) { ++static_cast<Outcomes*>(ud)->frees; }};
}

}  // namespace

// ---------------------------------------------------------------- misuse

TEST_F(ApiTest, WriterSecondInstallFailsWithEinval) {
  Counter first, second;
  ASSERT_EQ(nbd_set_concurrent_writer(h, nbd_test::writer_closure(first)), 0) << nbd_get_error();
  EXPECT_EQ(nbd_set_concurrent_writer(h, nbd_test::writer_closure(second)), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_concurrent_writer: concurrent writer was already set"));
  EXPECT_EQ(second.frees, 1);  // a refused closure is freed before the call returns
  EXPECT_EQ(nbd_start_concurrent_writer(h), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_start_concurrent_writer: concurrent writer was already set"));
  EXPECT_EQ(first.frees, 0);
  nbd_close(h);
  h = nbd_create();
  EXPECT_EQ(first.frees, 1);
  EXPECT_EQ(first.calls, 0);  // never connected: nothing was sent
}

TEST_F(ApiTest, WriterErrorMustBeNonZero) {
  EXPECT_EQ(nbd_concurrent_writer_error(h, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_concurrent_writer_error: err must be non-zero"));
}

TEST_F(ApiTest, WriterRefusedOnceTheConnectionIsClosed) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  Counter c;
  EXPECT_EQ(nbd_set_concurrent_writer(h, nbd_test::writer_closure(c)), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_concurrent_writer: invalid state"));
  EXPECT_EQ(c.frees, 1);
  EXPECT_EQ(nbd_start_concurrent_writer(h), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_start_concurrent_writer: invalid state"));
}

// ---------------------------------------------------------------- data integrity

TEST(Writer, BuiltInWriterUnderMixedLoadOnNbdkit) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "32M"});
  ASSERT_TRUE(srv);
  EXPECT_EQ(nbd_test::drive_mixed_load(srv->uri(), 0, 7, start_builtin_writer), "");
}

TEST(Writer, BuiltInWriterUnderMixedLoadOnQemuNbd) {
  NBD_TEST_REQUIRE_PROGRAM("qemu-nbd");
  NBD_TEST_REQUIRE_PROGRAM("qemu-img");
  nbd_test::TmpDir dir;
  const std::string img = dir.path() + "/disk.img";
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "raw", img, "32M"}));
  auto srv = nbd_test::start_qemu_nbd(img, "raw");
  ASSERT_TRUE(srv);
  EXPECT_EQ(nbd_test::drive_mixed_load(srv->uri(), 0, 8, start_builtin_writer), "");
}

TEST(Writer, TwoHandlesWithWritersAtOnce) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "32M"});
  ASSERT_TRUE(srv);
  std::string results[2];
  std::thread t0([&] { results[0] = nbd_test::drive_mixed_load(srv->uri(), 0, 9, start_builtin_writer); });
  std::thread t1([&] { results[1] = nbd_test::drive_mixed_load(srv->uri(), 16 << 20, 10, start_builtin_writer); });
  t0.join();
  t1.join();
  EXPECT_EQ(results[0], "");
  EXPECT_EQ(results[1], "");
}

// The ready-made writer started before connecting, in opt mode with no automatic option: the
// client flags wait in the queue (appends do not wake the writer thread) until nbd_opt_go's
// send flushes them with the option, and then commands go through the writer.
TEST(Writer, BuiltInWriterCarriesAnOptModeHandshake) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "4M"});
  ASSERT_TRUE(srv);
  nbd_test::Handle h;
  ASSERT_EQ(nbd_start_concurrent_writer(h), 0) << nbd_get_error();
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0) << nbd_get_error();
  // No automatic option (no structured replies, no TLS): the client flags are the last bytes.
  ASSERT_EQ(nbd_set_request_structured_replies(h, false), 0) << nbd_get_error();
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_negotiating(h), 1);
  ASSERT_EQ(nbd_opt_go(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
  round_trip(h, 8192, 65536, 3);
  EXPECT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
}

// The application's own writer, installed before connecting: the whole handshake goes through
// it too, and the handle never waits for the socket to become writable.
TEST(Writer, AppWriterCarriesTheHandshake) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "4M"});
  ASSERT_TRUE(srv);
  std::optional<AppWriter> w;  // outlives the handle, which frees its closure at close
  nbd_test::Handle h;
  const int fd = connect_unix_socket(srv->unix_socket());
  ASSERT_NE(fd, -1);
  w.emplace(h, fd);
  ASSERT_EQ(nbd_set_concurrent_writer(h, w->closure()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_connect_socket(h, fd), 0) << nbd_get_error();  // the handle owns fd now
  EXPECT_GT(w->calls.load(), 0);
  const size_t handshake_bytes = w->bytes_sent;
  EXPECT_GT(handshake_bytes, 0u);
  round_trip(h, 8192, 65536, 1);
  EXPECT_GT(w->bytes_sent.load(), handshake_bytes + 65536);
  // 32 writes queued at once: all handed to the writer, none waiting for POLLOUT.
  std::vector<std::vector<char>> bufs;
  Outcomes o;
  for (int i = 0; i < 32; ++i) {
    bufs.push_back(random_bytes(65536, 100 + i));
    ASSERT_GT(nbd_aio_pwrite(h, bufs.back().data(), 65536, uint64_t(i) * 65536, outcome_closure(o), 0), 0)
        << nbd_get_error();
  }
  EXPECT_EQ(nbd_aio_get_direction(h) & LIBNBD_AIO_DIRECTION_WRITE, 0u);
  ASSERT_TRUE(poll_until(h, [&] { return nbd_aio_in_flight(h) == 0; })) << nbd_get_error();
  EXPECT_EQ(o.ok.load(), 32);
  std::vector<char> back(65536);
  for (int i = 0; i < 32; ++i) {
    ASSERT_EQ(nbd_pread(h, back.data(), back.size(), uint64_t(i) * 65536, 0), 0) << nbd_get_error();
    EXPECT_EQ(back, bufs[i]) << i;
  }
  EXPECT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  EXPECT_EQ(w->frees.load(), 0);
}

// A writer installed with commands queued and partly sent: the bytes still queued follow the
// ones already on the socket, so the server sees one well-formed stream.
class WriterMidStream : public ::testing::TestWithParam<bool> {};

TEST_P(WriterMidStream, KeepsTheOrder) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  const bool builtin = GetParam();
  // Four server threads that each sleep 0.1 s per write stop reading after four requests, so
  // most of the data is still queued in the handle when the writer arrives.
  auto srv = nbd_test::start_nbdkit({"--threads=4", "--filter=delay", "memory", "16M", "delay-write=100ms"});
  ASSERT_TRUE(srv);
  std::unique_ptr<AppWriter> w;  // outlives the handle, which frees its closure at close
  nbd_test::Handle h;
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  constexpr int kWrites = 32;
  constexpr size_t kLen = 256 * 1024;
  std::vector<std::vector<char>> bufs;
  Outcomes o;
  for (int i = 0; i < kWrites; ++i) {
    bufs.push_back(random_bytes(kLen, 200 + i));
    ASSERT_GT(nbd_aio_pwrite(h, bufs.back().data(), kLen, uint64_t(i) * kLen, outcome_closure(o), 0), 0)
        << nbd_get_error();
  }
  EXPECT_NE(nbd_aio_get_direction(h) & LIBNBD_AIO_DIRECTION_WRITE, 0u);  // still queued
  if (builtin) {
    ASSERT_EQ(nbd_start_concurrent_writer(h), 0) << nbd_get_error();
  } else {
    const int fd = nbd_aio_get_fd(h);
    ASSERT_NE(fd, -1) << nbd_get_error();
    w = std::make_unique<AppWriter>(h, fd);
    ASSERT_EQ(nbd_set_concurrent_writer(h, w->closure()), 0) << nbd_get_error();
  }
  EXPECT_EQ(nbd_aio_get_direction(h) & LIBNBD_AIO_DIRECTION_WRITE, 0u);  // the writer's job now
  ASSERT_TRUE(poll_until(h, [&] { return nbd_aio_in_flight(h) == 0; })) << nbd_get_error();
  EXPECT_EQ(o.ok.load(), kWrites);
  if (w) {
    EXPECT_GT(w->calls.load(), 0);
  }
  std::vector<char> back(kLen);
  for (int i = 0; i < kWrites; ++i) {
    ASSERT_EQ(nbd_pread(h, back.data(), kLen, uint64_t(i) * kLen, 0), 0) << nbd_get_error();
    EXPECT_EQ(back, bufs[i]) << i;
  }
  EXPECT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
}

INSTANTIATE_TEST_SUITE_P(Writers, WriterMidStream, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return std::string(p.param ? "ReadyMade" : "Application");
                         });

// ---------------------------------------------------------------- failures

class WriterFailure : public ::testing::TestWithParam<int> {};

// The writer's thread fails partway through 200 commands: every command completes exactly
// once, those not yet answered with the writer's errno; the handle is dead; nothing leaks.
TEST_P(WriterFailure, ReachesEveryCommandInFlight) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  const int err = GetParam();
  auto srv = nbd_test::start_nbdkit({"memory", "16M"});
  ASSERT_TRUE(srv);
  nbd_handle* h = nbd_create();
  ASSERT_NE(h, nullptr);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  const int fd = nbd_aio_get_fd(h);
  auto* w = new AppWriter(h, fd, 50, err);  // the 50th buffer handed over fails
  ASSERT_EQ(nbd_set_concurrent_writer(h, w->closure()), 0) << nbd_get_error();
  constexpr int kCommands = 200;
  std::vector<std::vector<char>> bufs(kCommands, std::vector<char>(4096, 'x'));
  Outcomes o;
  for (int i = 0; i < kCommands; ++i) {
    const int64_t c = i % 2 == 0
                          ? nbd_aio_pwrite(h, bufs[i].data(), 4096, uint64_t(i) * 4096, outcome_closure(o), 0)
                          : nbd_aio_pread(h, bufs[i].data(), 4096, uint64_t(i) * 4096, outcome_closure(o), 0);
    ASSERT_GT(c, 0) << nbd_get_error();
  }
  // nbd_poll wakes up for the writer's report even though no reply will ever come.
  int r = 0;
  while (nbd_aio_in_flight(h) > 0 && (r = nbd_poll(h, 10000)) > 0) {
  }
  EXPECT_EQ(r, -1);
  EXPECT_TRUE(last_error_is(err, "nbd_poll: concurrent writer: "));
  EXPECT_EQ(nbd_aio_in_flight(h), 0);
  EXPECT_EQ(nbd_aio_is_dead(h), 1);
  EXPECT_EQ(o.calls.load(), kCommands);
  EXPECT_EQ(o.frees.load(), kCommands);
  EXPECT_LT(o.ok.load(), kCommands);
  for (int e : o.errors) EXPECT_EQ(e, err);
  EXPECT_EQ(nbd_pread(h, bufs[0].data(), 4096, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread: invalid state"));
  EXPECT_EQ(w->frees.load(), 0);
  nbd_close(h);
  EXPECT_EQ(w->frees.load(), 1);
  delete w;
}

INSTANTIATE_TEST_SUITE_P(Errnos, WriterFailure, ::testing::Values(EPIPE, ENOSPC),
                         [](const ::testing::TestParamInfo<int>& p) {
                           return std::string(p.param == EPIPE ? "EPIPE" : "ENOSPC");
                         });

// The callback itself refuses the data: the send fails with its errno and the handle dies.
TEST(Writer, CallbackRefusalFailsTheCommand) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Counter c;  // outlives the handle, which frees the writer at close
  nbd_test::Handle h;
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  nbd_writer_callback refuse{[](void* ud, const void*, size_t) {
                               ++static_cast<Counter*>(ud)->calls;
                               errno = ENOMEM;
                               return -1;
                             },
                             &c, nbd_test::count_free};
  ASSERT_EQ(nbd_set_concurrent_writer(h, refuse), 0) << nbd_get_error();
  char buf[512] = {};
  EXPECT_EQ(nbd_pwrite(h, buf, sizeof buf, 0, 0), -1);
  EXPECT_EQ(nbd_get_errno(), ENOMEM) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_dead(h), 1);
  EXPECT_EQ(c.calls, 1);
  EXPECT_EQ(c.frees, 0);
}

// Closing with commands in flight: completion closures and the writer freed exactly once, and
// the ready-made writer's thread is joined (the test would hang or leak otherwise).
TEST(Writer, CloseWithCommandsInFlightFreesEverything) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  for (bool builtin : {true, false}) {
    auto srv = nbd_test::start_nbdkit({"--filter=delay", "memory", "16M", "delay-read=1"});
    ASSERT_TRUE(srv);
    nbd_handle* h = nbd_create();
    ASSERT_NE(h, nullptr);
    ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
    AppWriter* w = nullptr;
    if (builtin) {
      ASSERT_EQ(nbd_start_concurrent_writer(h), 0) << nbd_get_error();
    } else {
      w = new AppWriter(h, nbd_aio_get_fd(h));
      ASSERT_EQ(nbd_set_concurrent_writer(h, w->closure()), 0) << nbd_get_error();
    }
    std::vector<char> buf(16 * 4096);
    Outcomes o;
    for (int i = 0; i < 16; ++i)
      ASSERT_GT(nbd_aio_pread(h, buf.data() + i * 4096, 4096, uint64_t(i) * 4096, outcome_closure(o), 0), 0)
          << nbd_get_error();
    nbd_close(h);
    EXPECT_EQ(o.frees.load(), 16);
    EXPECT_EQ(o.calls.load(), 0);  // closing retires nothing through callbacks
    if (w != nullptr) {
      EXPECT_EQ(w->frees.load(), 1);
      delete w;
    }
  }
}
