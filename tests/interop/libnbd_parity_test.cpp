// libnbd_parity_test.cpp: regression tests for the differences from libnbd 1.14 that Debian's
// programs revealed (tests/abi): each case gives the errno and message libnbd gives.
#include <libnbd.h>

#include <cerrno>
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
    // Sent ones succeed, unless nbdkit saw the disconnect first (it then says ESHUTDOWN).
    EXPECT_TRUE(o.error == 0 || o.error == ENOTCONN || o.error == ESHUTDOWN) << o.error;
  }
  EXPECT_GE(abandoned, 16);
}
