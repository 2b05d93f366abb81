// libnbd_1_16_test.cpp: the calls libnbd added in 1.16 and 1.18 that work without extended
// headers (statistics, the option calls of opt mode, the meta context requests), against real
// servers.
#include <gtest/gtest.h>
#include <libnbd.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/io_helpers.hpp"
#include "common/servers.hpp"

namespace {

using nbd_test::ApiTest;
using nbd_test::last_error_is;

// Relays a connection between the library (one end of a socketpair) and a server's Unix
// socket, counting the bytes that cross in each direction.
class CountingProxy {
 public:
  explicit CountingProxy(const std::string& server_socket) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
      throw std::runtime_error("socketpair");
    client_fd_ = sv[0];
    near_ = sv[1];
    far_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, server_socket.c_str(), sizeof addr.sun_path - 1);
    if (::connect(far_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("connect to the server");
    thread_ = std::thread([this] { relay(); });
  }
  ~CountingProxy() {
    ::shutdown(near_, SHUT_RDWR);
    ::shutdown(far_, SHUT_RDWR);
    thread_.join();
    ::close(near_);
    ::close(far_);
  }
  // The library's end; nbd_connect_socket takes it over.
  int client_fd() const { return client_fd_; }
  // Waits until both sides have hung up, then gives the counts.
  void wait_closed() { thread_.join(), thread_ = std::thread([] {}); }
  uint64_t to_server = 0, to_client = 0;

 private:
  void relay() {
    bool open_near = true, open_far = true;
    while (open_near || open_far) {
      pollfd p[2] = {{near_, POLLIN, 0}, {far_, POLLIN, 0}};
      if (::poll(p, 2, 10000) <= 0)
        return;
      char buf[65536];
      for (int i = 0; i < 2; ++i) {
        if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
          continue;
        const ssize_t n = ::read(p[i].fd, buf, sizeof buf);
        if (n <= 0) {
          ::shutdown(i == 0 ? far_ : near_, SHUT_WR);
          (i == 0 ? open_near : open_far) = false;
          if (!open_near && !open_far)
            return;
          continue;
        }
        (i == 0 ? to_server : to_client) += static_cast<uint64_t>(n);
        const int out = i == 0 ? far_ : near_;
        for (ssize_t done = 0; done < n;) {
          const ssize_t w = ::write(out, buf + done, static_cast<size_t>(n - done));
          if (w <= 0)
            return;
          done += w;
        }
      }
    }
  }
  int client_fd_ = -1, near_ = -1, far_ = -1;
  std::thread thread_;
};

struct Stats {
  uint64_t bytes_sent, chunks_sent, bytes_received, chunks_received;
  bool operator==(const Stats&) const = default;
};
Stats stats(nbd_handle* h) {
  return {nbd_stats_bytes_sent(h), nbd_stats_chunks_sent(h), nbd_stats_bytes_received(h),
          nbd_stats_chunks_received(h)};
}
std::ostream& operator<<(std::ostream& os, const Stats& s) {
  return os << "sent " << s.bytes_sent << "/" << s.chunks_sent << " received " << s.bytes_received << "/"
            << s.chunks_received;
}

// The counters match what crossed the socket.  Chunks are what libnbd 1.22 counts on the same
// session (checked by hand against /opt/libnbd-new): the greeting and every reply header in,
// every option and request out.
TEST_F(ApiTest, StatsCountWhatCrossedTheSocket) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  EXPECT_EQ(stats(h), (Stats{0, 0, 0, 0}));
  CountingProxy proxy(srv->unix_socket());
  ASSERT_EQ(nbd_connect_socket(h, proxy.client_fd()), 0) << nbd_get_error();
  // Options: NBD_OPT_EXTENDED_HEADERS (refused), _STRUCTURED_REPLY, _GO; in: the greeting.
  Stats s = stats(h);
  EXPECT_EQ(s.chunks_sent, 3u);
  EXPECT_EQ(s.chunks_received, 1u);
  std::vector<char> buf(4096, 'a');
  ASSERT_EQ(nbd_pwrite(h, buf.data(), buf.size(), 0, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), 0) << nbd_get_error();
  s = stats(h);
  EXPECT_EQ(s.chunks_sent, 5u);
  EXPECT_EQ(s.chunks_received, 3u);  // a simple reply to the write, one data chunk
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  proxy.wait_closed();
  s = stats(h);
  EXPECT_EQ(s.chunks_sent, 6u);  // and NBD_CMD_DISC
  EXPECT_EQ(s.bytes_sent, proxy.to_server);
  EXPECT_EQ(s.bytes_received, proxy.to_client);
  EXPECT_EQ(s, (Stats{4240, 6, 4250, 3}));  // libnbd 1.22's figures for this session
}

TEST_F(ApiTest, OptModeNegotiatesStepByStep) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(nbd_set_request_structured_replies(h, false), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h), 0);
  // nbdkit 1.32 refuses extended headers and TLS (none configured), accepts structured replies.
  EXPECT_EQ(nbd_opt_extended_headers(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_extended_headers_negotiated(h), 0);
  EXPECT_EQ(nbd_opt_starttls(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_tls_negotiated(h), 0);
  EXPECT_EQ(nbd_opt_structured_reply(h), 1) << nbd_get_error();
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h), 1);
  // The aio form reports the refusal through its completion.
  int err = -1;
  nbd_completion_callback done{[](void* ud, int* e) {
                                 *static_cast<int*>(ud) = *e;
                                 return 1;
                               },
                               &err, nullptr};
  ASSERT_EQ(nbd_aio_opt_extended_headers(h, done), 0) << nbd_get_error();
  ASSERT_TRUE(nbd_test::poll_until(h, [&] { return err != -1; }));
  EXPECT_EQ(err, ENOTSUP);
  ASSERT_EQ(nbd_opt_go(h), 0) << nbd_get_error();
  nbd_test::round_trip(h, 0, 4096, 7);
}

TEST_F(ApiTest, OptCallsNeedFixedNewstyle) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"--mask-handshake=0", "memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_opt_structured_reply(h), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_opt_structured_reply: server is not using fixed newstyle protocol"));
  EXPECT_EQ(nbd_opt_extended_headers(h), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_opt_extended_headers: server is not using fixed newstyle protocol"));
  EXPECT_EQ(nbd_opt_starttls(h), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_opt_starttls: server is not using fixed newstyle protocol"));
}

// Counts the contexts a listing or selection reports.
struct Contexts {
  std::vector<std::string> names;
  int frees = 0;
  nbd_context_callback closure() {
    return {[](void* ud, const char* name) {
              static_cast<Contexts*>(ud)->names.emplace_back(name);
              return 0;
            },
            this, [](void* ud) { ++static_cast<Contexts*>(ud)->frees; }};
  }
};

TEST_F(ApiTest, MetaContextQueriesAndSelection) {
  NBD_TEST_REQUIRE_PROGRAM("qemu-nbd");
  NBD_TEST_REQUIRE_PROGRAM("qemu-img");
  nbd_test::TmpDir dir;
  const std::string img = dir.path() + "/disk.img";
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "raw", img, "1M"}));
  auto srv = nbd_test::start_qemu_nbd(img, "raw", {"-A"});  // base:allocation, qemu:allocation-depth
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();

  // An explicit list instead of the handle's.
  const char* qemu[] = {"qemu:", nullptr};
  Contexts listed;
  EXPECT_EQ(nbd_opt_list_meta_context_queries(h, const_cast<char**>(qemu), listed.closure()), 1)
      << nbd_get_error();
  EXPECT_EQ(listed.names, std::vector<std::string>{"qemu:allocation-depth"});
  EXPECT_EQ(listed.frees, 1);

  // Select the other one only, and keep nbd_opt_go from selecting the handle's list again.
  ASSERT_EQ(nbd_set_request_meta_context(h, false), 0);
  EXPECT_EQ(nbd_get_request_meta_context(h), 0);
  const char* depth[] = {"qemu:allocation-depth", nullptr};
  Contexts selected;
  EXPECT_EQ(nbd_opt_set_meta_context_queries(h, const_cast<char**>(depth), selected.closure()), 1)
      << nbd_get_error();
  EXPECT_EQ(selected.names, std::vector<std::string>{"qemu:allocation-depth"});
  EXPECT_EQ(nbd_can_meta_context(h, "qemu:allocation-depth"), 1);
  EXPECT_EQ(nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
  ASSERT_EQ(nbd_opt_go(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_can_meta_context(h, "qemu:allocation-depth"), 1);
  EXPECT_EQ(nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
}

TEST_F(ApiTest, RequestMetaContextSelectsBeforeGo) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  // Before any request the answer is not known.
  EXPECT_EQ(nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_can_meta_context: need a successful server meta context request first"));
  Contexts selected;
  EXPECT_EQ(nbd_opt_set_meta_context(h, selected.closure()), 1) << nbd_get_error();
  EXPECT_EQ(selected.names, std::vector<std::string>{LIBNBD_CONTEXT_BASE_ALLOCATION});
  EXPECT_EQ(nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 1);
  ASSERT_EQ(nbd_opt_go(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 1);
  int calls = 0;
  nbd_extent_callback count{[](void* ud, const char*, uint64_t, uint32_t*, size_t, int*) {
                              ++*static_cast<int*>(ud);
                              return 0;
                            },
                            &calls, nullptr};
  ASSERT_EQ(nbd_block_status(h, 4096, 0, count, 0), 0) << nbd_get_error();
  EXPECT_EQ(calls, 1);
}

TEST_F(ApiTest, NoMetaContextWhenNotRequested) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_request_meta_context(h, false), 0);
  ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_can_meta_context: need a successful server meta context request first"));
  int calls = 0;
  nbd_extent_callback count{[](void* ud, const char*, uint64_t, uint32_t*, size_t, int*) {
                              ++*static_cast<int*>(ud);
                              return 0;
                            },
                            &calls, nullptr};
  EXPECT_EQ(nbd_block_status(h, 4096, 0, count, 0), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_block_status: no metadata context was negotiated"));
}

// libnbd 1.18: nbd_shutdown while negotiating in opt mode ends the negotiation
// (NBD_OPT_ABORT) instead of failing for the state.
TEST_F(ApiTest, ShutdownInOptModeEndsTheNegotiation) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_aio_is_negotiating(h), 1);
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_closed(h), 1) << nbd_connection_state(h);
}

}  // namespace
