// libnbd_parity_test.cpp: regression tests for the differences from libnbd 1.14 that Debian's
// programs revealed (tests/abi): each case gives the errno and message libnbd gives.
#include <arpa/inet.h>
#include <libnbd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/io_helpers.hpp"
#include "common/servers.hpp"

using nbd_test::ApiTest;
using nbd_test::last_error_is;

namespace {

// A chunk or extent callback that fails with EBADMSG.
int fail_chunk(void*, const void*, size_t, uint64_t, unsigned, int* error) {
  *error = EBADMSG;
  return -1;
}

int fail_extent(void*, const char*, uint64_t, uint32_t*, size_t, int* error) {
  *error = EBADMSG;
  return -1;
}

}  // namespace

TEST_F(ApiTest, ParityNewHandleIsInStateStart) {
  EXPECT_EQ(std::string(nbd_connection_state(h)).rfind("START: ", 0), 0u) << nbd_connection_state(h);
}

TEST_F(ApiTest, ParityMetaContextNameIsCapped) {
  EXPECT_EQ(nbd_add_meta_context(h, std::string(4097, 'x').c_str()), -1);
  EXPECT_TRUE(last_error_is(ENAMETOOLONG, "nbd_add_meta_context: meta context name too long"));
  EXPECT_EQ(nbd_get_nr_meta_contexts(h), 0);
  EXPECT_EQ(nbd_add_meta_context(h, std::string(4096, 'x').c_str()), 0) << nbd_get_error();
}

TEST_F(ApiTest, ParityOutOfBoundsErrnoFollowsTheCommand) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  char buf[512] = {};
  // Commands that change data fail like a full disk; reads like a bad argument.
  EXPECT_EQ(nbd_pwrite(h, buf, sizeof buf, 1 << 20, 0), -1);
  EXPECT_TRUE(last_error_is(ENOSPC, "nbd_pwrite: request out of bounds"));
  EXPECT_EQ(nbd_trim(h, 512, 1 << 20, 0), -1);
  EXPECT_TRUE(last_error_is(ENOSPC, "nbd_trim: request out of bounds"));
  EXPECT_EQ(nbd_zero(h, 512, 1 << 20, 0), -1);
  EXPECT_TRUE(last_error_is(ENOSPC, "nbd_zero: request out of bounds"));
  EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 1 << 20, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread: request out of bounds"));
  EXPECT_EQ(nbd_cache(h, 512, 1 << 20, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_cache: request out of bounds"));
  // Past the end comes before "too large", as in libnbd.
  std::vector<char> big((64 << 20) + 1);
  EXPECT_EQ(nbd_pread(h, big.data(), big.size(), 0, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread: request out of bounds"));
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
  close_handle();
}

TEST_F(ApiTest, ParityTrimAndZeroOnReadOnlyExportAreUnsupported) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"-r", "memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_trim(h, 512, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_trim: server does not support trim operations"));
  EXPECT_EQ(nbd_zero(h, 512, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_zero: server does not support zero operations"));
  char buf[512] = {};
  EXPECT_EQ(nbd_pwrite(h, buf, sizeof buf, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EPERM, "nbd_pwrite: server does not support write operations"));
  close_handle();
}

TEST_F(ApiTest, ParityListMetaContextNeedsStructuredReplies) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"--no-sr", "memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  int seen = 0;
  nbd_context_callback cb{[](void* ud, const char*) {
                            ++*static_cast<int*>(ud);
                            return 0;
                          },
                          &seen, nullptr};
  EXPECT_EQ(nbd_opt_list_meta_context(h, cb), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_opt_list_meta_context: server lacks structured replies"));
  EXPECT_EQ(seen, 0);
  ASSERT_EQ(nbd_opt_go(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
}

TEST_F(ApiTest, ParityCallbackErrnoFailsTheCommand) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"pattern", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  char buf[512];
  EXPECT_EQ(nbd_pread_structured(h, buf, sizeof buf, 0, nbd_chunk_callback{fail_chunk, nullptr, nullptr}, 0), -1);
  EXPECT_TRUE(last_error_is(EBADMSG, "nbd_pread_structured: read: command failed"));
  EXPECT_EQ(nbd_block_status(h, 4096, 0, nbd_extent_callback{fail_extent, nullptr, nullptr}, 0), -1);
  EXPECT_TRUE(last_error_is(EBADMSG, "nbd_block_status: "));
  EXPECT_EQ(nbd_aio_is_ready(h), 1);  // a failed command leaves the connection usable
  close_handle();
}

// Shutdown with LIBNBD_SHUTDOWN_ABANDON_PENDING: the requests still queued in the handle are
// never sent and complete with ENOTCONN; the ones already on the wire finish normally.
TEST_F(ApiTest, ParityShutdownAbandonsUnsentCommands) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "64M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  struct Outcome {
    int calls = 0, error = -1;
  };
  std::vector<Outcome> outcomes(32);
  std::vector<char> data(1 << 20, 'x');
  {
    // The server reads nothing while stopped, so most of 32 MiB stays queued in the handle.
    ASSERT_TRUE(nbd_test::stop_child(srv->pid()));
    nbd_test::Resume resume{srv->pid()};
    for (size_t i = 0; i < outcomes.size(); ++i) {
      nbd_completion_callback cb{[](void* ud, int* error) {
                                   auto* o = static_cast<Outcome*>(ud);
                                   ++o->calls;
                                   o->error = *error;
                                   return 1;
                                 },
                                 &outcomes[i], nullptr};
      ASSERT_GT(nbd_aio_pwrite(h, data.data(), data.size(), i << 20, cb, 0), 0) << nbd_get_error();
    }
  }
  ASSERT_EQ(nbd_shutdown(h, LIBNBD_SHUTDOWN_ABANDON_PENDING), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_closed(h), 1);
  int abandoned = 0;
  for (const Outcome& o : outcomes) {
    EXPECT_EQ(o.calls, 1);
    abandoned += o.error == ENOTCONN;
    // Sent ones succeed: the disconnect waits for their replies.
    EXPECT_TRUE(o.error == 0 || o.error == ENOTCONN) << o.error;
  }
  EXPECT_GE(abandoned, 16);
}

// Commands issued before nbd_aio_disconnect complete normally and their data reaches the
// server.  nbdkit handles requests on several threads and answers the ones it has read but not
// yet started with ESHUTDOWN once it reads NBD_CMD_DISC, so the disconnect must wait for every
// reply.  One round rarely shows it (about 1 in 12 with 32 writes), 200 rounds always did.
TEST_F(ApiTest, ParityWritesBeforeDisconnectReachTheServer) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();  // reads the data back
  constexpr int kWrites = 32;
  constexpr size_t kBlock = 512;
  struct Tally {
    int calls = 0, failed = 0, last_error = 0;
  };
  for (int round = 0; round < 200; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::vector<char> data = nbd_test::random_bytes(kWrites * kBlock, static_cast<unsigned>(round));
    nbd_test::Handle w;
    ASSERT_EQ(nbd_connect_uri(w, srv->uri().c_str()), 0) << nbd_get_error();
    Tally tally;
    nbd_completion_callback cb{[](void* ud, int* error) {
                                 auto* t = static_cast<Tally*>(ud);
                                 ++t->calls;
                                 if (*error != 0) {
                                   ++t->failed;
                                   t->last_error = *error;
                                 }
                                 return 1;
                               },
                               &tally, nullptr};
    for (int i = 0; i < kWrites; ++i)
      ASSERT_GT(nbd_aio_pwrite(w, data.data() + i * kBlock, kBlock, i * kBlock, cb, 0), 0) << nbd_get_error();
    ASSERT_EQ(nbd_aio_disconnect(w, 0), 0) << nbd_get_error();
    EXPECT_EQ(nbd_aio_in_flight(w), kWrites + 1);  // the disconnect counts until the server has gone
    ASSERT_TRUE(nbd_test::poll_until(w, [&] { return nbd_aio_is_closed(w) == 1; }))
        << nbd_connection_state(w) << ": " << nbd_get_error();
    ASSERT_EQ(tally.calls, kWrites);
    ASSERT_EQ(tally.failed, 0) << std::strerror(tally.last_error);
    std::vector<char> back(data.size());
    ASSERT_EQ(nbd_pread(h, back.data(), back.size(), 0, 0), 0) << nbd_get_error();
    ASSERT_EQ(back, data);
  }
  close_handle();
}

namespace {

// A chunk or extent callback's record: how often it ran and the *error each call saw; it
// fails its first call with EBADMSG.
struct CallLog {
  std::vector<int> errors_seen;
  int fail_first(int* error) {
    errors_seen.push_back(*error);
    if (errors_seen.size() > 1)
      return 0;
    *error = EBADMSG;
    return -1;
  }
};

// qemu-nbd over a 1 MiB raw image holding data at [0, 64K) and [128K, 192K), the rest holes
// (so a read of [0, 256K) comes as several data and hole chunks), with base:allocation and
// qemu:allocation-depth both negotiated.
class QemuChunks : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    if (!nbd_test::have_program("qemu-nbd") || !nbd_test::have_program("qemu-img"))
      GTEST_SKIP() << "qemu-nbd or qemu-img not installed";
    const std::string img = dir_.path() + "/disk.img";
    ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "raw", img, "1M"}));
    srv_ = nbd_test::start_qemu_nbd(img, "raw", {"-A"});
    ASSERT_TRUE(srv_);
    ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
    ASSERT_EQ(nbd_add_meta_context(h, "qemu:allocation-depth"), 0);
    ASSERT_EQ(nbd_connect_uri(h, srv_->uri().c_str()), 0) << nbd_get_error();
    const std::vector<char> data(64 * 1024, 'd');
    ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), 0) << nbd_get_error();
    ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 128 * 1024, 0), 0) << nbd_get_error();
  }
  void TearDown() override {
    close_handle();
    srv_.reset();
  }
  nbd_test::TmpDir dir_;
  std::unique_ptr<nbd_test::Server> srv_;
};

int log_chunk(void* ud, const void*, size_t, uint64_t, unsigned, int* error) {
  return static_cast<CallLog*>(ud)->fail_first(error);
}

int log_extent(void* ud, const char*, uint64_t, uint32_t*, size_t, int* error) {
  return static_cast<CallLog*>(ud)->fail_first(error);
}

}  // namespace

// After a chunk callback fails, it is still called for every later chunk, with the command's
// error in *error; the command fails with the callback's errno.
TEST_F(QemuChunks, ChunkCallbackRunsForEveryChunkAfterAFailure) {
  std::vector<char> buf(256 * 1024);
  CallLog log;
  EXPECT_EQ(nbd_pread_structured(h, buf.data(), buf.size(), 0, nbd_chunk_callback{log_chunk, &log, nullptr}, 0), -1);
  EXPECT_TRUE(last_error_is(EBADMSG, "nbd_pread_structured: "));
  ASSERT_GE(log.errors_seen.size(), 3u);  // data, hole, data (and a hole)
  EXPECT_EQ(log.errors_seen[0], 0);
  for (size_t i = 1; i < log.errors_seen.size(); ++i)
    EXPECT_EQ(log.errors_seen[i], EBADMSG) << "call " << i;
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
}

// The same for block status: every other context's extents still reach the callback.
TEST_F(QemuChunks, ExtentCallbackRunsForEveryContextAfterAFailure) {
  CallLog log;
  EXPECT_EQ(nbd_block_status(h, 256 * 1024, 0, nbd_extent_callback{log_extent, &log, nullptr}, 0), -1);
  EXPECT_TRUE(last_error_is(EBADMSG, "nbd_block_status: "));
  ASSERT_EQ(log.errors_seen.size(), 2u);  // one chunk per context
  EXPECT_EQ(log.errors_seen[0], 0);
  EXPECT_EQ(log.errors_seen[1], EBADMSG);
}

// A completion callback that returns -1 with *error set replaces the error recorded so far.
TEST_F(QemuChunks, CompletionErrorReplacesTheCommandsError) {
  std::vector<char> buf(256 * 1024);
  CallLog log;
  int completion_saw = -1;
  nbd_completion_callback completion{[](void* ud, int* error) {
                                       *static_cast<int*>(ud) = *error;
                                       *error = ENOSPC;
                                       return -1;
                                     },
                                     &completion_saw, nullptr};
  const int64_t cookie = nbd_aio_pread_structured(h, buf.data(), buf.size(), 0,
                                                  nbd_chunk_callback{log_chunk, &log, nullptr}, completion, 0);
  ASSERT_GT(cookie, 0) << nbd_get_error();
  ASSERT_TRUE(nbd_test::poll_until(h, [&] { return completion_saw != -1; })) << nbd_get_error();
  EXPECT_EQ(completion_saw, EBADMSG);
  EXPECT_EQ(nbd_aio_command_completed(h, static_cast<uint64_t>(cookie)), -1);
  EXPECT_TRUE(last_error_is(ENOSPC, "nbd_aio_command_completed: "));
}

// A required closure with only .free set is valid (libnbd calls a closure missing only when
// callback and free are both NULL): the call works, the callback is never called and free
// runs once.
TEST_F(ApiTest, ParityFreeOnlyClosuresAreValid) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"pattern", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  int frees = 0;
  auto count_free = [](void* ud) { ++*static_cast<int*>(ud); };
  EXPECT_EQ(nbd_opt_list(h, nbd_list_callback{nullptr, &frees, count_free}), 1) << nbd_get_error();
  EXPECT_EQ(frees, 1);
  ASSERT_EQ(nbd_opt_go(h), 0) << nbd_get_error();
  char buf[512];
  std::memset(buf, 0xff, sizeof buf);
  EXPECT_EQ(nbd_pread_structured(h, buf, sizeof buf, 4096, nbd_chunk_callback{nullptr, &frees, count_free}, 0), 0)
      << nbd_get_error();
  EXPECT_EQ(frees, 2);
  EXPECT_EQ(buf[6], 0x10);  // pattern: each 8-byte word holds its offset, big-endian (0x1000)
  EXPECT_EQ(nbd_block_status(h, 4096, 0, nbd_extent_callback{nullptr, &frees, count_free}, 0), 0)
      << nbd_get_error();
  EXPECT_EQ(frees, 3);
  // Past the end, the bounds check answers, not a NULL check.
  EXPECT_EQ(nbd_pread_structured(h, buf, sizeof buf, 1 << 20, nbd_chunk_callback{nullptr, &frees, count_free}, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread_structured: request out of bounds"));
  EXPECT_EQ(frees, 4);
  close_handle();
}

// Opt mode against a plain (not fixed) newstyle server: connecting stops in the negotiating
// state; the options such a server cannot understand fail with ENOTSUP and leave the handle
// negotiating; nbd_opt_go chooses the export with NBD_OPT_EXPORT_NAME; nbd_opt_abort succeeds
// and leaves the handle dead (the server would not understand NBD_OPT_ABORT).
TEST_F(ApiTest, ParityOptModeWithPlainNewstyleServer) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"--mask-handshake=0", "pattern", "1M"});
  ASSERT_TRUE(srv);
  auto negotiating = [&](nbd_handle* c) {
    EXPECT_EQ(nbd_set_opt_mode(c, true), 0);
    EXPECT_EQ(nbd_connect_uri(c, srv->uri().c_str()), 0) << nbd_get_error();
    EXPECT_EQ(nbd_aio_is_negotiating(c), 1) << nbd_connection_state(c);
    EXPECT_STREQ(nbd_get_protocol(c), "newstyle");
  };
  negotiating(h);
  int calls = 0;
  nbd_list_callback list{[](void* ud, const char*, const char*) { return ++*static_cast<int*>(ud), 0; }, &calls,
                         nullptr};
  EXPECT_EQ(nbd_opt_list(h, list), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_opt_list: server is not using fixed newstyle protocol"));
  EXPECT_EQ(nbd_opt_info(h), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_opt_info: server is not using fixed newstyle protocol"));
  nbd_context_callback context{[](void* ud, const char*) { return ++*static_cast<int*>(ud), 0; }, &calls, nullptr};
  EXPECT_EQ(nbd_opt_list_meta_context(h, context), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_opt_list_meta_context: server is not using fixed newstyle protocol"));
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(nbd_aio_is_negotiating(h), 1);
  int go_error = -1;
  nbd_completion_callback done{[](void* ud, int* error) { return *static_cast<int*>(ud) = *error, 1; }, &go_error,
                               nullptr};
  ASSERT_EQ(nbd_aio_opt_go(h, done), 0) << nbd_get_error();
  ASSERT_TRUE(nbd_test::poll_until(h, [&] { return go_error != -1; })) << nbd_get_error();
  EXPECT_EQ(go_error, 0);
  ASSERT_EQ(nbd_aio_is_ready(h), 1) << nbd_connection_state(h);
  EXPECT_EQ(nbd_get_size(h), 1 << 20);
  char buf[8];
  ASSERT_EQ(nbd_pread(h, buf, sizeof buf, 8, 0), 0) << nbd_get_error();
  EXPECT_EQ(buf[7], 8);  // pattern: the offset, big-endian
  close_handle();

  nbd_test::Handle c;
  negotiating(c);
  EXPECT_EQ(nbd_opt_abort(c), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_dead(c), 1) << nbd_connection_state(c);
}

// nbd_get_uri after nbd_aio_connect with a raw address names that address (numerically, as
// libnbd does); where no URI can describe the connection (a command) it fails with EINVAL.
TEST_F(ApiTest, ParityGetUriOfRawAddressesAndCommands) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto unix_srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(unix_srv);
  struct sockaddr_un sun {};
  sun.sun_family = AF_UNIX;
  std::strncpy(sun.sun_path, unix_srv->unix_socket().c_str(), sizeof sun.sun_path - 1);
  ASSERT_EQ(nbd_aio_connect(h, reinterpret_cast<struct sockaddr*>(&sun), sizeof sun), 0) << nbd_get_error();
  ASSERT_TRUE(nbd_test::poll_until(h, [&] { return nbd_aio_is_connecting(h) != 1; }));
  ASSERT_EQ(nbd_aio_is_ready(h), 1) << nbd_get_error();
  EXPECT_EQ(nbd_test::take(nbd_get_uri(h)), "nbd+unix:///?socket=" + unix_srv->unix_socket());

  auto tcp_srv = nbd_test::start_nbdkit({"memory", "1M"}, true);
  ASSERT_TRUE(tcp_srv);
  nbd_test::Handle t;
  struct sockaddr_in sin {};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(std::stoi(tcp_srv->port())));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(nbd_aio_connect(t, reinterpret_cast<struct sockaddr*>(&sin), sizeof sin), 0) << nbd_get_error();
  ASSERT_TRUE(nbd_test::poll_until(t, [&] { return nbd_aio_is_connecting(t) != 1; }));
  ASSERT_EQ(nbd_aio_is_ready(t), 1) << nbd_get_error();
  EXPECT_EQ(nbd_test::take(nbd_get_uri(t)), "nbd://127.0.0.1:" + tcp_srv->port() + "/");

  nbd_test::Handle c;
  const char* argv[] = {"nbdkit", "-s", "--exit-with-parent", "memory", "1M", nullptr};
  ASSERT_EQ(nbd_connect_command(c, const_cast<char**>(argv)), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_uri(c), nullptr);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_get_uri: cannot construct a URI for this connection type"));
  close_handle();
}

// Command flags the server did not advertise are refused under LIBNBD_STRICT_COMMANDS (as
// libnbd), not LIBNBD_STRICT_FLAGS, which is about flags foreign to the call.
TEST_F(ApiTest, ParityUnadvertisedFlagsFollowStrictCommands) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"eval", "get_size=echo 1048576", "pread=head -c $3 /dev/zero",
                                     "pwrite=cat >/dev/null", "can_write=exit 0", "can_fua=echo none"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_can_fua(h), 0);
  char buf[512] = {};
  ASSERT_EQ(nbd_set_strict_mode(h, LIBNBD_STRICT_MASK & ~LIBNBD_STRICT_FLAGS), 0);
  EXPECT_EQ(nbd_pwrite(h, buf, sizeof buf, 0, LIBNBD_CMD_FLAG_FUA), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pwrite: server does not support the FUA flag"));
  // Without LIBNBD_STRICT_COMMANDS the request goes out, and the server answers.
  ASSERT_EQ(nbd_set_strict_mode(h, LIBNBD_STRICT_MASK & ~LIBNBD_STRICT_COMMANDS), 0);
  EXPECT_EQ(nbd_pwrite(h, buf, sizeof buf, 0, LIBNBD_CMD_FLAG_FUA), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pwrite: write: command failed"));
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
  close_handle();
}

// What the server supports is checked before the disconnect: a write to a read-only export
// after nbd_aio_disconnect fails with EPERM, as in libnbd; other commands with EINVAL.
TEST_F(ApiTest, ParityReadOnlyCheckedBeforeTheDisconnect) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"-r", "memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_aio_disconnect(h, 0), 0) << nbd_get_error();
  char buf[512] = {};
  EXPECT_EQ(nbd_pwrite(h, buf, sizeof buf, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EPERM, "nbd_pwrite: server does not support write operations"));
  EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread: cannot request more commands after NBD_CMD_DISC"));
  close_handle();
}

// An option's list or context callback is freed before its completion callback, as a
// command's other callbacks are.
TEST_F(ApiTest, ParityOptionCompletionIsFreedLast) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  std::string order;
  nbd_list_callback list{[](void*, const char*, const char*) { return 0; }, &order,
                         [](void* ud) { *static_cast<std::string*>(ud) += "list "; }};
  nbd_completion_callback done{[](void*, int*) { return 0; }, &order,
                               [](void* ud) { *static_cast<std::string*>(ud) += "completion "; }};
  ASSERT_EQ(nbd_aio_opt_list(h, list, done), 0) << nbd_get_error();
  ASSERT_TRUE(nbd_test::poll_until(h, [&] { return nbd_aio_is_negotiating(h) == 1; })) << nbd_get_error();
  EXPECT_EQ(order, "list completion ");
  close_handle();
}
