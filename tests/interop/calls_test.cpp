// calls_test.cpp: the calls the scenario tests do not reach, each against a real nbdkit.
#include <libnbd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "common/api_fixture.hpp"
#include "common/io_helpers.hpp"
#include "common/servers.hpp"

using nbd_test::ApiTest;
using nbd_test::last_error_is;
using nbd_test::take;

// A caller-driven event loop: aio_connect with a raw sockaddr, then aio_get_fd,
// aio_get_direction and aio_notify_read/write until the handshake is done.
TEST_F(ApiTest, AioConnectDrivenByTheCallersLoop) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  struct sockaddr_un sun {};
  sun.sun_family = AF_UNIX;
  std::strncpy(sun.sun_path, srv->unix_socket().c_str(), sizeof sun.sun_path - 1);
  ASSERT_EQ(nbd_aio_connect(h, reinterpret_cast<struct sockaddr*>(&sun), sizeof sun), 0) << nbd_get_error();
  int loops = 0;
  while (nbd_aio_is_connecting(h)) {
    const int fd = nbd_aio_get_fd(h);
    ASSERT_GE(fd, 0) << nbd_get_error();
    const unsigned dir = nbd_aio_get_direction(h);
    ASSERT_NE(dir, 0u);
    struct pollfd pfd {fd, static_cast<short>(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                                              ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0)), 0};
    ASSERT_EQ(poll(&pfd, 1, 10000), 1);
    if (pfd.revents & (POLLIN | POLLHUP)) {
      ASSERT_EQ(nbd_aio_notify_read(h), 0) << nbd_get_error();
    } else if (pfd.revents & POLLOUT) {
      ASSERT_EQ(nbd_aio_notify_write(h), 0) << nbd_get_error();
    }
    ASSERT_LT(++loops, 1000);
  }
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
  EXPECT_EQ(nbd_get_size(h), 1048576);
  EXPECT_EQ(nbd_aio_get_direction(h), unsigned{LIBNBD_AIO_DIRECTION_READ});
}

TEST_F(ApiTest, FullInfoGivesNameAndDescription) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"--filter=exportname", "memory", "1M", "exportdesc=fixed:scratch disk"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_full_info(h, true), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(take(nbd_get_export_description(h)), "scratch disk");
  EXPECT_EQ(take(nbd_get_canonical_export_name(h)), "");
  EXPECT_EQ(nbd_get_tls_negotiated(h), 0);
}

TEST_F(ApiTest, NoDescriptionWithoutFullInfo) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"--filter=exportname", "memory", "1M", "exportdesc=fixed:scratch disk"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_export_description(h), nullptr);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_get_export_description: "));
}

TEST_F(ApiTest, BlockSizeConstraintsAndStrictAlignment) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"--filter=blocksize-policy", "memory", "1M", "blocksize-minimum=512",
                                     "blocksize-preferred=4096", "blocksize-maximum=65536"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM), 512);
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_PREFERRED), 4096);
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM), 65536);
  char buf[512];
  ASSERT_EQ(nbd_set_strict_mode(h, nbd_get_strict_mode(h) | LIBNBD_STRICT_ALIGN), 0);
  EXPECT_EQ(nbd_pread(h, buf, 100, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread: request is unaligned"));
  EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 512, 0), 0) << nbd_get_error();
  close_handle();
}

TEST_F(ApiTest, WithoutRequestingBlockSizeNoneIsKnown) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"--filter=blocksize-policy", "memory", "1M", "blocksize-minimum=512"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_request_block_size(h, false), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  // nbdkit sends the constraints only when asked (or when it must).
  EXPECT_GE(nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM), 0);
}

TEST_F(ApiTest, UriAllowListsRefuseBeforeConnecting) {
  ASSERT_EQ(nbd_set_uri_allow_transports(h, LIBNBD_ALLOW_TRANSPORT_TCP), 0);
  EXPECT_EQ(nbd_connect_uri(h, "nbd+unix:///?socket=/nonexistent"), -1);
  EXPECT_TRUE(last_error_is(EPERM, "nbd_connect_uri: URI transport is not permitted"));
  EXPECT_EQ(nbd_aio_is_created(h), 1);  // nothing was attempted
  ASSERT_EQ(nbd_set_uri_allow_tls(h, LIBNBD_TLS_DISABLE), 0);
  EXPECT_EQ(nbd_connect_uri(h, "nbds://localhost/"), -1);
  EXPECT_TRUE(last_error_is(EPERM, "nbd_connect_uri: URI requires TLS"));
  ASSERT_EQ(nbd_set_uri_allow_transports(h, LIBNBD_ALLOW_TRANSPORT_MASK), 0);
  ASSERT_EQ(nbd_set_uri_allow_local_file(h, false), 0);
  EXPECT_EQ(nbd_connect_uri(h, "nbd+unix:///?socket=/x&tls-psk-file=/etc/passwd"), -1);
  EXPECT_TRUE(last_error_is(EPERM, "nbd_connect_uri: local file access (tls-psk-file) is not permitted"));
  EXPECT_EQ(nbd_connect_uri(h, "nbd+unix:///?socket=/x&tls-certificates=/etc"), -1);
  EXPECT_TRUE(last_error_is(EPERM, "nbd_connect_uri: local file access (tls-certificates) is not permitted"));
  EXPECT_EQ(nbd_aio_is_created(h), 1);
}

TEST_F(ApiTest, TlsRequiredIsRefusedNeverPlaintext) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_tls(h, LIBNBD_TLS_REQUIRE), 0);
  EXPECT_EQ(nbd_connect_unix(h, srv->unix_socket().c_str()), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_connect_unix: handshake: TLS"));
  EXPECT_EQ(nbd_aio_is_dead(h), 1);
}

TEST_F(ApiTest, TlsAllowedFallsBackToPlaintext) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_tls(h, LIBNBD_TLS_ALLOW), 0);
  ASSERT_EQ(nbd_connect_unix(h, srv->unix_socket().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_tls_negotiated(h), 0);
}

TEST_F(ApiTest, VsockFailsCleanly) {
  // No vsock transport here: the call must fail with a clear error and a dead handle.
  EXPECT_EQ(nbd_connect_vsock(h, 1, 10809), -1);
  EXPECT_TRUE(last_error_is(nbd_get_errno(), "nbd_connect_vsock: "));
  EXPECT_NE(nbd_get_errno(), 0);
  EXPECT_EQ(nbd_aio_is_dead(h), 1);
  // The aio form either fails at once or, like libnbd, leaves a non-blocking connect in
  // progress (vsock to the local CID times out); closing such a handle must not hang.
  nbd_handle* h2 = nbd_create();
  ASSERT_NE(h2, nullptr);
  const int r = nbd_aio_connect_vsock(h2, 1, 10809);
  if (r == -1)
    EXPECT_TRUE(last_error_is(nbd_get_errno(), "nbd_aio_connect_vsock: "));
  else
    EXPECT_EQ(nbd_aio_is_connecting(h2), 1);
  nbd_close(h2);
}

TEST_F(ApiTest, AioOptInfoRunsItsCompletion) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  struct Seen {
    int calls = 0, frees = 0, error = -1;
  } seen;
  nbd_completion_callback cb{[](void* ud, int* error) {
                               auto* s = static_cast<Seen*>(ud);
                               ++s->calls;
                               s->error = *error;
                               return 1;
                             },
                             &seen, [](void* ud) { ++static_cast<Seen*>(ud)->frees; }};
  ASSERT_EQ(nbd_aio_opt_info(h, cb), 0) << nbd_get_error();
  while (!nbd_aio_is_negotiating(h))
    ASSERT_GE(nbd_poll(h, 10000), 0) << nbd_get_error();
  EXPECT_EQ(seen.calls, 1);
  EXPECT_EQ(seen.frees, 1);
  EXPECT_EQ(seen.error, 0);
  EXPECT_EQ(nbd_get_size(h), 1048576);
  ASSERT_EQ(nbd_aio_opt_go(h, NBD_NULL_COMPLETION), 0);
  while (!nbd_aio_is_ready(h))
    ASSERT_GE(nbd_poll(h, 10000), 0) << nbd_get_error();
  ASSERT_EQ(nbd_aio_opt_abort(h), -1);  // no longer negotiating
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_aio_opt_abort: invalid state: READY"));
}

TEST_F(ApiTest, AioOptListAndAbort) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  int names = 0, contexts = 0;
  nbd_list_callback list{[](void* ud, const char*, const char*) {
                           ++*static_cast<int*>(ud);
                           return 0;
                         },
                         &names, nullptr};
  ASSERT_EQ(nbd_aio_opt_list(h, list, NBD_NULL_COMPLETION), 0);
  while (!nbd_aio_is_negotiating(h))
    ASSERT_GE(nbd_poll(h, 10000), 0) << nbd_get_error();
  EXPECT_EQ(names, 1);
  nbd_context_callback ctx{[](void* ud, const char*) {
                             ++*static_cast<int*>(ud);
                             return 0;
                           },
                           &contexts, nullptr};
  ASSERT_EQ(nbd_aio_opt_list_meta_context(h, ctx, NBD_NULL_COMPLETION), 0);
  while (!nbd_aio_is_negotiating(h))
    ASSERT_GE(nbd_poll(h, 10000), 0) << nbd_get_error();
  EXPECT_GE(contexts, 1);
  ASSERT_EQ(nbd_aio_opt_abort(h), 0);
  while (!nbd_aio_is_closed(h) && !nbd_aio_is_dead(h))
    ASSERT_GE(nbd_poll(h, 10000), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_closed(h), 1);
}

TEST_F(ApiTest, CapabilitiesOfAFullServer) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_can_fast_zero(h), 1);
  EXPECT_EQ(nbd_can_df(h), 1);
  EXPECT_EQ(nbd_can_cache(h), 1);
  EXPECT_EQ(nbd_is_rotational(h), 0);
  EXPECT_EQ(nbd_zero(h, 4096, 0, LIBNBD_CMD_FLAG_FAST_ZERO | LIBNBD_CMD_FLAG_NO_HOLE), 0) << nbd_get_error();
  EXPECT_EQ(nbd_cache(h, 4096, 0, 0), 0) << nbd_get_error();
  char buf[4096];
  int chunks = 0;
  nbd_chunk_callback chunk{[](void* ud, const void*, size_t, uint64_t, unsigned, int*) {
                             ++*static_cast<int*>(ud);
                             return 0;
                           },
                           &chunks, nullptr};
  EXPECT_EQ(nbd_pread_structured(h, buf, sizeof buf, 0, chunk, LIBNBD_CMD_FLAG_DF), 0) << nbd_get_error();
  EXPECT_EQ(chunks, 1);  // DF: one chunk for the whole read
  close_handle();
}

TEST_F(ApiTest, KillSubprocessEndsTheConnection) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  char* argv[] = {const_cast<char*>("nbdkit"), const_cast<char*>("-s"), const_cast<char*>("--exit-with-parent"),
                  const_cast<char*>("memory"), const_cast<char*>("1M"), nullptr};
  ASSERT_EQ(nbd_connect_command(h, argv), 0) << nbd_get_error();
  char buf[512];
  ASSERT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_kill_subprocess(h, 0), 0) << nbd_get_error();
  // The signal is asynchronous: nbdkit may answer a few more reads (or refuse them with
  // ESHUTDOWN) before it exits; then the connection is dead and reads fail for good.
  for (int i = 0; i < 100000 && nbd_aio_is_dead(h) != 1; ++i)
    nbd_pread(h, buf, sizeof buf, 0, 0);
  EXPECT_EQ(nbd_aio_is_dead(h), 1);
  EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread: invalid state"));
  EXPECT_EQ(nbd_get_uri(h), nullptr);  // a command has no URI
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_get_uri: cannot construct a URI"));
}

// ---- Calls of libnbd 1.16-1.22 with bodies of their own ----

TEST_F(ApiTest, SubprocessPidIsTheServers) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  char* argv[] = {const_cast<char*>("nbdkit"), const_cast<char*>("-s"), const_cast<char*>("--exit-with-parent"),
                  const_cast<char*>("memory"), const_cast<char*>("1M"), nullptr};
  ASSERT_EQ(nbd_connect_command(h, argv), 0) << nbd_get_error();
  const int64_t pid = nbd_get_subprocess_pid(h);
  ASSERT_GT(pid, 0) << nbd_get_error();
  EXPECT_NE(pid, static_cast<int64_t>(getpid()));
  // The process is the nbdkit we started: a child of this test, running nbdkit.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string self, comm, state;
  long ppid = 0;
  ASSERT_TRUE(stat >> self >> comm >> state >> ppid);
  EXPECT_EQ(comm, "(nbdkit)");
  EXPECT_EQ(ppid, static_cast<long>(getpid()));
  EXPECT_EQ(nbd_get_subprocess_pid(h), pid);  // stable while the handle lives
}

TEST_F(ApiTest, Poll2WakesForTheCallersDescriptor) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  const int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(efd, 0);
  // Nothing in flight and the eventfd quiet: the timeout expires.
  EXPECT_EQ(nbd_poll2(h, efd, 0), 0) << nbd_get_error();
  // The eventfd alone wakes a wait that would otherwise never end; nbd_poll2 leaves it readable.
  const uint64_t one = 1;
  ASSERT_EQ(write(efd, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  EXPECT_EQ(nbd_poll2(h, efd, -1), 1) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
  pollfd pfd{efd, POLLIN, 0};
  EXPECT_EQ(poll(&pfd, 1, 0), 1);
  uint64_t value = 0;
  ASSERT_EQ(read(efd, &value, sizeof value), static_cast<ssize_t>(sizeof value));
  EXPECT_EQ(value, 1u);
  // A command in flight: nbd_poll2 drives it to completion like nbd_poll, with or without fd.
  char buf[512];
  for (int fd : {efd, -1}) {
    const int64_t cookie = nbd_aio_pread(h, buf, sizeof buf, 0, NBD_NULL_COMPLETION, 0);
    ASSERT_GT(cookie, 0) << nbd_get_error();
    int r = 0;
    for (int i = 0; i < 1000 && (r = nbd_aio_command_completed(h, cookie)) == 0; ++i)
      ASSERT_EQ(nbd_poll2(h, fd, 10000), 1) << nbd_get_error();
    EXPECT_EQ(r, 1) << nbd_get_error();
  }
  close(efd);
}

TEST_F(ApiTest, Libnbd116SettingsRefusedOnceConnected) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_aio_is_negotiating(h), 1);
  // Negotiating: only the meta context request may still change.
  EXPECT_EQ(nbd_set_request_meta_context(h, false), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_request_meta_context(h), 0);
  EXPECT_EQ(nbd_set_request_extended_headers(h, false), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_request_extended_headers: invalid state"));
  EXPECT_EQ(nbd_set_tls_hostname(h, "example.com"), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_tls_hostname: invalid state"));
  EXPECT_EQ(nbd_set_socket_activation_name(h, "sock"), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_socket_activation_name: invalid state"));
  ASSERT_EQ(nbd_opt_go(h), 0) << nbd_get_error();
  // Connected: none of them; the getters still answer.
  EXPECT_EQ(nbd_set_request_meta_context(h, true), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_request_meta_context: invalid state"));
  EXPECT_EQ(nbd_get_request_meta_context(h), 0);
  EXPECT_EQ(nbd_get_request_extended_headers(h), 1);
  EXPECT_EQ(take(nbd_get_socket_activation_name(h)), "");
}

TEST_F(ApiTest, PayloadLimitAndPayloadLenFlag) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  // The server announces a 1 MiB maximum, so the payload limit is 1 MiB.
  auto srv = nbd_test::start_nbdkit({"--filter=blocksize-policy", "memory", "8M",
                                     "blocksize-maximum=1M", "blocksize-error-policy=error"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM), 1 << 20);
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_PAYLOAD), 1 << 20);
  std::string data(2 << 20, 'p');
  EXPECT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), -1);
  EXPECT_TRUE(last_error_is(ERANGE, "nbd_pwrite: request too large: maximum payload size is 1048576"));
  // Without LIBNBD_STRICT_PAYLOAD the request goes out and the server refuses it itself.
  ASSERT_EQ(nbd_set_strict_mode(h, LIBNBD_STRICT_MASK & ~LIBNBD_STRICT_PAYLOAD), 0);
  EXPECT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), -1);
  EXPECT_EQ(nbd_get_errno(), EINVAL) << nbd_get_error();
  // PAYLOAD_LEN without extended headers: dropped by LIBNBD_STRICT_AUTO_FLAG, else refused.
  EXPECT_EQ(nbd_pwrite(h, data.data(), 4096, 0, LIBNBD_CMD_FLAG_PAYLOAD_LEN), 0) << nbd_get_error();
  ASSERT_EQ(nbd_set_strict_mode(h, LIBNBD_STRICT_MASK & ~LIBNBD_STRICT_AUTO_FLAG), 0);
  EXPECT_EQ(nbd_pwrite(h, data.data(), 4096, 0, LIBNBD_CMD_FLAG_PAYLOAD_LEN), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pwrite: incorrect setting for PAYLOAD_LEN flag"));
  EXPECT_EQ(nbd_aio_pwrite(h, data.data(), 4096, 0, NBD_NULL_COMPLETION, LIBNBD_CMD_FLAG_PAYLOAD_LEN), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_aio_pwrite: incorrect setting for PAYLOAD_LEN flag"));
}

TEST_F(ApiTest, PayloadLimitWithoutAServerMaximum) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  const int64_t maximum = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
  const int64_t want = maximum == 0 ? 32 << 20 : std::clamp<int64_t>(maximum, 1 << 20, 64 << 20);
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_PAYLOAD), want);
}
