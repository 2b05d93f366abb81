// persistent_scenarios.cpp: the closure paths of the persistent closures: the debug callback and
// the concurrent writer, kept until replaced or nbd_close.
#include "misuse/closure_scenarios.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/io_helpers.hpp"

namespace misuse {

using nbd_test::poll_until;
using nbd_test::Server;
using nbd_test::start_nbdkit;

namespace {

// A concurrent writer of the application's: the callback only queues (as it must: it may not
// block), and the test's thread moves the queue to the socket before each poll.
struct QueueWriter {
  Tally tally;
  std::string queued;
  size_t bytes = 0;
  nbd_writer_callback closure() {
    return {[](void* ud, const void* buf, size_t len) {
              auto* w = static_cast<QueueWriter*>(ud);
              ++w->tally.calls;
              w->queued.append(static_cast<const char*>(buf), len);
              w->bytes += len;
              return 0;
            },
            this, [](void* ud) { ++static_cast<QueueWriter*>(ud)->tally.frees; }};
  }
  // Sends what is queued (blocking: the test has nothing else to do meanwhile).
  bool flush(int fd) {
    size_t done = 0;
    while (done < queued.size()) {
      const ssize_t r = ::send(fd, queued.data() + done, queued.size() - done, MSG_NOSIGNAL);
      if (r > 0) {
        done += static_cast<size_t>(r);
      } else if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        ::poll(&pfd, 1, -1);
      } else if (r == -1 && errno != EINTR) {
        return false;
      }
    }
    queued.clear();
    return true;
  }
};

}  // namespace

// The debug callback: exactly one line on entry and one on leaving a traced call, kept until
// replaced, cleared or the handle is closed, and freed once then.
void debug_success(const CallInfo&) {
  Tally first, second;
  nbd_handle* h = nbd_create();
  ASSERT_NE(h, nullptr);
  ASSERT_EQ(nbd_set_debug(h, true), 0);
  const auto closure = counting_closure<nbd_debug_callback>;
  ASSERT_EQ(nbd_set_debug_callback(h, closure(first)), 0);
  first.calls = 0;  // whatever set_debug_callback itself traced
  ASSERT_EQ(nbd_set_export_name(h, "x"), 0);
  EXPECT_EQ(first.calls, 2);
  ASSERT_EQ(nbd_set_debug_callback(h, closure(second)), 0);
  EXPECT_EQ(first.frees, 1);
  const int first_calls = first.calls;
  second.calls = 0;
  ASSERT_EQ(nbd_set_export_name(h, "y"), 0);
  EXPECT_EQ(second.calls, 2);
  EXPECT_EQ(first.calls, first_calls);
  ASSERT_EQ(nbd_clear_debug_callback(h), 0);
  EXPECT_EQ(second.frees, 1);
  ASSERT_EQ(nbd_set_debug_callback(h, closure(first)), 0);
  nbd_close(h);
  EXPECT_EQ(first.frees, 2);
  EXPECT_EQ(second.frees, 1);
}

// A command in flight when the server is killed: the debug callback sees the connection die,
// and is freed once, at nbd_close.
void debug_killed(const CallInfo&) {
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv.get(), false);
  ASSERT_TRUE(conn);
  Tally t;
  ASSERT_EQ(nbd_set_debug_callback(conn->h, counting_closure<nbd_debug_callback>(t)), 0);
  ASSERT_EQ(nbd_set_debug(conn->h, true), 0);
  char buf[512];
  int64_t cookie = 0;
  {
    ASSERT_TRUE(nbd_test::stop_child(srv->pid()));
    cookie = nbd_aio_pread(conn->h, buf, sizeof buf, 0, NBD_NULL_COMPLETION, 0);
    ASSERT_GT(cookie, 0) << nbd_get_error();
    srv->kill_now();
  }
  const int before = t.calls;
  EXPECT_TRUE(poll_until(conn->h, [&] { return nbd_aio_is_dead(conn->h) == 1; }));
  EXPECT_GT(t.calls, before);
  EXPECT_EQ(nbd_aio_command_completed(conn->h, cookie), -1);
  EXPECT_EQ(t.frees, 0);
  conn->close_now();
  EXPECT_EQ(t.frees, 1);
}

void debug_close_in_flight(const CallInfo&) {
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv.get(), false);
  ASSERT_TRUE(conn);
  Tally t;
  ASSERT_EQ(nbd_set_debug_callback(conn->h, counting_closure<nbd_debug_callback>(t)), 0);
  ASSERT_EQ(nbd_set_debug(conn->h, true), 0);
  char buf[512];
  nbd_test::Resume resume{srv->pid()};
  ASSERT_TRUE(nbd_test::stop_child(srv->pid()));
  ASSERT_GT(nbd_aio_pread(conn->h, buf, sizeof buf, 0, NBD_NULL_COMPLETION, 0), 0) << nbd_get_error();
  conn->close_now();
  EXPECT_EQ(t.frees, 1);
}

// Installed on a connected handle, the writer is given each request whole (28 bytes for a
// read, 28 + 512 for a write) and nothing else; data goes through it both ways; freed once at
// nbd_close.
void writer_success(const CallInfo&) {
  const Server* srv = shared_server();
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv, false);
  ASSERT_TRUE(conn);
  QueueWriter w;
  ASSERT_EQ(nbd_set_concurrent_writer(conn->h, w.closure()), 0) << nbd_get_error();
  const int fd = nbd_aio_get_fd(conn->h);
  ASSERT_GE(fd, 0) << nbd_get_error();
  auto data = pattern(12);
  const int64_t wc = nbd_aio_pwrite(conn->h, data.data(), data.size(), 32768, NBD_NULL_COMPLETION, 0);
  ASSERT_GT(wc, 0) << nbd_get_error();
  EXPECT_EQ(w.bytes, 28u + 512u);
  ASSERT_TRUE(w.flush(fd));
  EXPECT_EQ(wait_command(conn->h, wc), 1) << nbd_get_error();
  std::vector<char> back(512);
  const int64_t rc = nbd_aio_pread(conn->h, back.data(), back.size(), 32768, NBD_NULL_COMPLETION, 0);
  ASSERT_GT(rc, 0) << nbd_get_error();
  EXPECT_EQ(w.bytes, 28u + 512u + 28u);
  ASSERT_TRUE(w.flush(fd));
  EXPECT_EQ(wait_command(conn->h, rc), 1) << nbd_get_error();
  EXPECT_EQ(back, data);
  EXPECT_GE(w.tally.calls, 2);
  EXPECT_EQ(w.tally.frees, 0);
  conn->close_now();
  EXPECT_EQ(w.tally.frees, 1);
}

// The writer's send fails (reported with nbd_concurrent_writer_error): the command in flight
// completes with that errno, the handle dies, the writer is freed once at nbd_close.
void writer_send_failure(const CallInfo&) {
  const Server* srv = shared_server();
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv, false);
  ASSERT_TRUE(conn);
  QueueWriter w;
  ASSERT_EQ(nbd_set_concurrent_writer(conn->h, w.closure()), 0) << nbd_get_error();
  char buf[512];
  Tally done;
  const int64_t c =
      nbd_aio_pread(conn->h, buf, sizeof buf, 0, counting_closure<nbd_completion_callback>(done), 0);
  ASSERT_GT(c, 0) << nbd_get_error();
  ASSERT_EQ(nbd_concurrent_writer_error(conn->h, EPIPE), 0) << nbd_get_error();
  EXPECT_TRUE(poll_until(conn->h, [&] { return nbd_aio_is_dead(conn->h) == 1; })) << nbd_get_error();
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.error, EPIPE) << std::strerror(done.error);
  EXPECT_EQ(nbd_aio_command_completed(conn->h, c), -1);
  EXPECT_TRUE(nbd_test::last_error_is(EPIPE, "nbd_aio_command_completed: ")) << nbd_get_error();
  EXPECT_EQ(done.frees, 1);
  EXPECT_EQ(w.tally.frees, 0);
  conn->close_now();
  EXPECT_EQ(w.tally.frees, 1);
}

void writer_killed(const CallInfo&) {
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv.get(), false);
  ASSERT_TRUE(conn);
  QueueWriter w;
  ASSERT_EQ(nbd_set_concurrent_writer(conn->h, w.closure()), 0) << nbd_get_error();
  const int fd = nbd_aio_get_fd(conn->h);
  char buf[512];
  Tally done;
  {
    ASSERT_TRUE(nbd_test::stop_child(srv->pid()));
    ASSERT_GT(nbd_aio_pread(conn->h, buf, sizeof buf, 0, counting_closure<nbd_completion_callback>(done), 0),
              0)
        << nbd_get_error();
    ASSERT_TRUE(w.flush(fd));
    srv->kill_now();
  }
  EXPECT_TRUE(poll_until(conn->h, [&] { return nbd_aio_is_dead(conn->h) == 1; })) << nbd_get_error();
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.error, ENOTCONN) << std::strerror(done.error);
  EXPECT_EQ(done.frees, 0);  // not retired yet: the close frees it
  EXPECT_EQ(w.tally.frees, 0);
  conn->close_now();
  EXPECT_EQ(done.frees, 1);
  EXPECT_EQ(w.tally.frees, 1);
}

void writer_close_in_flight(const CallInfo&) {
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv.get(), false);
  ASSERT_TRUE(conn);
  QueueWriter w;
  ASSERT_EQ(nbd_set_concurrent_writer(conn->h, w.closure()), 0) << nbd_get_error();
  char buf[512];
  Tally done;
  ASSERT_GT(nbd_aio_pread(conn->h, buf, sizeof buf, 0, counting_closure<nbd_completion_callback>(done), 0),
            0)
      << nbd_get_error();
  conn->close_now();  // the request never left the writer's queue
  EXPECT_EQ(done.calls, 0);
  EXPECT_EQ(done.frees, 1);
  EXPECT_EQ(w.tally.frees, 1);
}

}  // namespace misuse
