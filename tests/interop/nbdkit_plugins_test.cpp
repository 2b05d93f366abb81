// nbdkit_plugins_test.cpp: capability flags and injected errors through nbdkit's eval plugin
// (each callback a shell snippet), and the null plugin.
#include <libnbd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/servers.hpp"

using nbd_test::ApiTest;
using nbd_test::last_error_is;

namespace {

// eval callbacks: exit 0 is "true"/success, exit 3 is "false"/"not implemented"; an error is
// "ERRNO message" on stderr with exit 1.
const std::vector<std::string> kFlagsOff = {
    "eval",          "get_size=echo 1M", "pread=dd if=/dev/zero count=$3 iflag=count_bytes 2>/dev/null",
    "can_write=exit 0", "pwrite=cat >/dev/null", "can_flush=exit 3", "can_trim=exit 3",
    "can_fua=echo none", "can_cache=echo none", "can_multi_conn=exit 0", "is_rotational=exit 0"};

}  // namespace

TEST_F(ApiTest, EvalCapabilityFlagsAreReported) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit(kFlagsOff);
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1 << 20);
  EXPECT_EQ(nbd_is_read_only(h), 0);
  EXPECT_EQ(nbd_can_flush(h), 0);
  EXPECT_EQ(nbd_can_trim(h), 0);
  EXPECT_EQ(nbd_can_zero(h), 1);  // nbdkit emulates zeroing with pwrite for every plugin
  EXPECT_EQ(nbd_can_fua(h), 0);
  EXPECT_EQ(nbd_can_cache(h), 0);
  EXPECT_EQ(nbd_can_multi_conn(h), 1);
  EXPECT_EQ(nbd_is_rotational(h), 1);
  // Strict mode refuses what the server did not offer, before sending anything.
  EXPECT_EQ(nbd_flush(h, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_flush: server does not support flush operations"));
  EXPECT_EQ(nbd_trim(h, 512, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_trim: server does not support trim operations"));
  EXPECT_EQ(nbd_cache(h, 512, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_cache: server does not support cache operations"));
  char buf[512] = {1};
  EXPECT_EQ(nbd_pwrite(h, buf, sizeof buf, 0, LIBNBD_CMD_FLAG_FUA), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pwrite: server does not support the FUA flag"));
  EXPECT_EQ(nbd_pwrite(h, buf, sizeof buf, 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(buf[0], 0);
  close_handle();
}

// Each errno the server sends fails that command alone, with that errno.
TEST_F(ApiTest, EvalInjectedErrorsFailOnlyTheirCommand) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit(
      {"eval", "get_size=echo 1M", "pread=echo EIO the disk is gone >&2; exit 1",
       "pwrite=echo ENOSPC the disk is full >&2; exit 1", "can_write=exit 0", "can_trim=exit 0",
       "trim=echo EPERM not allowed >&2; exit 1", "can_zero=exit 0",
       "zero=echo EINVAL cannot zero >&2; exit 1", "can_flush=exit 0", "flush=exit 0"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  char buf[4096] = {};
  EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EIO, "nbd_pread: read: command failed"));
  EXPECT_EQ(nbd_pwrite(h, buf, sizeof buf, 0, 0), -1);
  EXPECT_TRUE(last_error_is(ENOSPC, "nbd_pwrite: write: command failed"));
  EXPECT_EQ(nbd_trim(h, 4096, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EPERM, "nbd_trim: trim: command failed"));
  EXPECT_EQ(nbd_zero(h, 4096, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_zero: zero: command failed"));
  EXPECT_EQ(nbd_flush(h, 0), 0) << nbd_get_error();  // the connection survived them all
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
  close_handle();
}

TEST_F(ApiTest, NullPluginReadsZeroesAndDiscardsWrites) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"null", "8M"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 8 << 20);
  std::vector<char> buf(1 << 20, 'x');
  EXPECT_EQ(nbd_pwrite(h, buf.data(), buf.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(buf, std::vector<char>(1 << 20, 0));
  struct Seen {
    int calls = 0;
    uint32_t flags = 0;
  } seen;
  nbd_extent_callback cb{[](void* ud, const char*, uint64_t, uint32_t* entries, size_t n, int*) {
                           auto* s = static_cast<Seen*>(ud);
                           ++s->calls;
                           if (n >= 2) s->flags = entries[1];
                           return 0;
                         },
                         &seen, nullptr};
  EXPECT_EQ(nbd_block_status(h, 1 << 20, 0, cb, 0), 0) << nbd_get_error();
  EXPECT_EQ(seen.calls, 1);
  EXPECT_EQ(seen.flags, LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO);
  close_handle();
}
