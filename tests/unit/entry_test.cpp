// entry_test.cpp: the generated entry points in states a handle cannot reach without a server,
// These tests pass NULL on purpose: drop the header's nonnull attributes so the compiler
// (and UBSan) let the library's own checks answer.
#define LIBNBD_ATTRIBUTE_NONNULL(...)

// reached by setting the state directly (the core is linked statically here).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "../common/api_fixture.hpp"
#include "../common/closure_counter.hpp"
#include "handle.hpp"
#include "state/machine.hpp"

using nbd_test::ApiTest;
using nbd_test::Counter;
using nbd_test::last_error_is;

TEST_F(ApiTest, WrongStateAfterCreatedIsEinval) {
  h->state = nbd::State::Dead;
  char buf[16];
  EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread: invalid state: DEAD: the handle must be connected with the server"));
  EXPECT_EQ(nbd_set_tls(h, LIBNBD_TLS_ALLOW), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_tls: invalid state: DEAD: the handle must be newly created"));
  h->state = nbd::State::Ready;
  EXPECT_EQ(nbd_opt_go(h), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_opt_go: invalid state: READY: the handle must be negotiating"));
}

TEST_F(ApiTest, StateIsPublishedWhenALockedCallReturns) {
  h->state = nbd::State::Dead;
  EXPECT_EQ(nbd_aio_is_dead(h), 0);  // nothing published yet
  EXPECT_EQ(nbd_get_debug(h), 0);
  EXPECT_EQ(nbd_aio_is_dead(h), 1);
  EXPECT_EQ(nbd_aio_is_created(h), 0);
}

TEST_F(ApiTest, FlagsOutsideTheCallsSubset) {
  // A connected handle whose "server" is the other end of a socketpair we read ourselves.
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  h->sock = nbd::make_socket_transport(sv[0], *h->sender);
  h->have_info = true;
  h->exportsize = 1 << 20;
  h->eflags = 0xffff;
  nbd::enter_transmission(*h);
  char buf[16];
  // Strict flag checking (the default) refuses FUA on a read.
  EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 0, LIBNBD_CMD_FLAG_FUA), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread: flags: invalid value for flag: 0x1"));
  EXPECT_EQ(nbd_trim(h, 512, 0, LIBNBD_CMD_FLAG_REQ_ONE), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_trim: flags: invalid value for flag: 0x8"));
  // Without it, unknown flags within the protocol's 16 bits reach the wire (for testing servers).
  ASSERT_EQ(nbd_set_strict_mode(h, 0), 0);
  EXPECT_EQ(nbd_aio_pread(h, buf, sizeof buf, 0, NBD_NULL_COMPLETION, LIBNBD_CMD_FLAG_FUA | 0x100), 1);
  unsigned char req[28];
  ASSERT_EQ(read(sv[1], req, sizeof req), 28);
  EXPECT_EQ(req[4] << 8 | req[5], 0x101);  // flags field of the request
  EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0x10000), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread: flags: invalid value for flag: 0x10000"));
  // Flags with no subset are always checked against their whole set.
  EXPECT_EQ(nbd_shutdown(h, 0x1), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_shutdown: flags: invalid value for flag: 0x1"));
  close(sv[1]);
}

TEST_F(ApiTest, BadEnumInAConnectedState) {
  h->state = nbd::State::Ready;
  EXPECT_EQ(nbd_get_block_size(h, 4), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_get_block_size: size_type: invalid value for parameter: 4"));
}

// As in libnbd, a required closure is missing only when both callback and free are NULL.
TEST_F(ApiTest, RequiredClosureWithNeitherCallbackNorFreeIsEfault) {
  h->state = nbd::State::Negotiating;
  EXPECT_EQ(nbd_opt_list(h, nbd_list_callback{nullptr, nullptr, nullptr}), -1);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_opt_list: list_callback cannot be NULL"));
  h->state = nbd::State::Ready;
  char buf[16];
  EXPECT_EQ(nbd_pread_structured(h, buf, sizeof buf, 0, nbd_chunk_callback{nullptr, nullptr, nullptr}, 0), -1);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_pread_structured: chunk_callback cannot be NULL"));
  EXPECT_EQ(nbd_pread(h, nullptr, 16, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_pread: buf cannot be NULL"));
}

// One with only .free set is valid: the call goes on to its other checks (here the bounds of
// an export of size 0), and free runs once.  The concurrent writer, which cannot work without
// its callback, refuses it.
TEST_F(ApiTest, FreeOnlyRequiredClosureIsValid) {
  h->state = nbd::State::Ready;
  Counter chunk;
  char buf[16];
  EXPECT_EQ(nbd_pread_structured(h, buf, sizeof buf, 0, nbd_test::free_only<nbd_chunk_callback>(chunk), 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread_structured: request out of bounds"));
  EXPECT_EQ(chunk.frees, 1);
  Counter extent;
  EXPECT_EQ(nbd_block_status(h, 16, 0, nbd_test::free_only<nbd_extent_callback>(extent), 0), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_block_status: server does not support structured replies"));
  EXPECT_EQ(extent.frees, 1);
  h->state = nbd::State::Created;
  Counter writer;
  EXPECT_EQ(nbd_set_concurrent_writer(h, nbd_test::free_only<nbd_writer_callback>(writer)), -1);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_set_concurrent_writer: writer cannot be NULL"));
  EXPECT_EQ(writer.frees, 1);
}

TEST_F(ApiTest, ReadBuffersAreZeroedBeforeTheCallRuns) {
  char buf[64];
  std::memset(buf, 0xff, sizeof buf);
  EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), -1);  // fails: not connected
  for (char c : buf)
    ASSERT_EQ(c, 0);
  ASSERT_EQ(nbd_set_pread_initialize(h, false), 0);
  std::memset(buf, 0xff, sizeof buf);
  EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), -1);
  EXPECT_EQ(static_cast<unsigned char>(buf[0]), 0xffu);
}

TEST_F(ApiTest, ConcurrentWriterKeepsTheFirstError) {
  EXPECT_EQ(nbd_concurrent_writer_error(h, EPIPE), 0);
  EXPECT_EQ(nbd_concurrent_writer_error(h, ENOSPC), 0);
  EXPECT_EQ(h->writer_signal.error(), EPIPE);
}
