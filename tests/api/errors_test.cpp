// errors_test.cpp: the error contract of the generated entry points, through libnbd.so.0.
// These tests pass NULL on purpose: drop the header's nonnull attributes so the compiler
// (and UBSan) let the library's own checks answer.
#define LIBNBD_ATTRIBUTE_NONNULL(...)

#include <gtest/gtest.h>
#include <libnbd.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>

#include "../common/api_fixture.hpp"

using nbd_test::ApiTest;
using nbd_test::last_error_is;

TEST(Errors, NoneRecordedOnANewThread) {
  std::thread([] {
    EXPECT_EQ(nbd_get_error(), nullptr);
    EXPECT_EQ(nbd_get_errno(), 0);
  }).join();
}

TEST_F(ApiTest, WrongStateWhileCreatedIsEnotconn) {
  char buf[512];
  EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), -1);
  EXPECT_TRUE(last_error_is(ENOTCONN,
                            "nbd_pread: invalid state: START: the handle must be connected with the server"));
  EXPECT_EQ(errno, ENOTCONN);
  EXPECT_EQ(nbd_get_size(h), -1);
  EXPECT_TRUE(last_error_is(ENOTCONN, "nbd_get_size: invalid state: START: the handle must be "
                                      "negotiating, or connected with the server, or shut down"));
  EXPECT_EQ(nbd_opt_go(h), -1);
  EXPECT_TRUE(last_error_is(ENOTCONN, "nbd_opt_go: invalid state: START"));
  EXPECT_EQ(nbd_get_uri(h), nullptr);
  EXPECT_TRUE(last_error_is(ENOTCONN, "nbd_get_uri: invalid state: START"));
  EXPECT_EQ(nbd_aio_in_flight(h), -1);
  EXPECT_TRUE(last_error_is(ENOTCONN, "nbd_aio_in_flight: invalid state: START"));
}

TEST_F(ApiTest, ErrorsAreThreadLocal) {
  EXPECT_EQ(nbd_set_tls(h, 99), -1);
  std::thread([this] {
    EXPECT_EQ(nbd_get_error(), nullptr);
    EXPECT_EQ(nbd_set_handle_name(h, nullptr), -1);
    EXPECT_TRUE(last_error_is(EFAULT, "nbd_set_handle_name: "));
  }).join();
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_tls: "));
}

TEST_F(ApiTest, NullPointersAreEfault) {
  EXPECT_EQ(nbd_set_handle_name(h, nullptr), -1);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_set_handle_name: handle_name cannot be NULL"));
  EXPECT_EQ(nbd_set_export_name(h, nullptr), -1);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_set_export_name: export_name cannot be NULL"));
  EXPECT_EQ(nbd_connect_uri(h, nullptr), -1);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_connect_uri: uri cannot be NULL"));
  EXPECT_EQ(nbd_connect_tcp(h, "localhost", nullptr), -1);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_connect_tcp: port cannot be NULL"));
  EXPECT_EQ(nbd_connect_command(h, nullptr), -1);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_connect_command: argv cannot be NULL"));
  EXPECT_EQ(nbd_aio_connect(h, nullptr, 0), -1);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_aio_connect: addr cannot be NULL"));
  EXPECT_EQ(nbd_set_tls_certificates(h, nullptr), -1);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_set_tls_certificates: dir cannot be NULL"));
  EXPECT_EQ(nbd_add_meta_context(h, nullptr), -1);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_add_meta_context: name cannot be NULL"));
}

TEST(Errors, NullHandleIsEfault) {
  EXPECT_EQ(nbd_set_debug(nullptr, true), -1);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_set_debug: handle cannot be NULL"));
  EXPECT_EQ(nbd_get_handle_name(nullptr), nullptr);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_get_handle_name: handle cannot be NULL"));
  nbd_close(nullptr);  // allowed: does nothing
}

TEST_F(ApiTest, BadEnumsAreEinval) {
  EXPECT_EQ(nbd_set_tls(h, 3), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_tls: tls: invalid value for parameter: 3"));
  EXPECT_EQ(nbd_set_tls(h, -1), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_tls: tls: invalid value for parameter: -1"));
  EXPECT_EQ(nbd_set_uri_allow_tls(h, 7), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_uri_allow_tls: tls: invalid value for parameter: 7"));
  EXPECT_EQ(nbd_get_tls(h), LIBNBD_TLS_DISABLE);  // unchanged
  for (int tls : {LIBNBD_TLS_DISABLE, LIBNBD_TLS_ALLOW, LIBNBD_TLS_REQUIRE}) {
    EXPECT_EQ(nbd_set_tls(h, tls), 0);
    EXPECT_EQ(nbd_get_tls(h), tls);
  }
}

TEST_F(ApiTest, BadFlagsAreEinval) {
  EXPECT_EQ(nbd_set_strict_mode(h, LIBNBD_STRICT_MASK + 1), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_strict_mode: flags: invalid value for flag: 0x80"));
  EXPECT_EQ(nbd_set_handshake_flags(h, 0x4), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_handshake_flags: flags: invalid value for flag: 0x4"));
  EXPECT_EQ(nbd_set_uri_allow_transports(h, 0x10), -1);  // 0x8 is LIBNBD_ALLOW_TRANSPORT_SSH
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_uri_allow_transports: mask: invalid value for flag: 0x10"));
  EXPECT_EQ(nbd_get_strict_mode(h), LIBNBD_STRICT_MASK);  // unchanged
}

TEST_F(ApiTest, LimitsOfSettings) {
  std::string name(4096, 'x');
  EXPECT_EQ(nbd_set_export_name(h, name.c_str()), 0);
  name += 'x';
  EXPECT_EQ(nbd_set_export_name(h, name.c_str()), -1);
  EXPECT_TRUE(last_error_is(ENAMETOOLONG, "nbd_set_export_name: export name too long"));
  EXPECT_EQ(nbd_get_meta_context(h, 0), nullptr);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_get_meta_context: meta context request out of range"));
}

TEST_F(ApiTest, ConcurrentWriterErrorMustBeNonZero) {
  EXPECT_EQ(nbd_concurrent_writer_error(h, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_concurrent_writer_error: err must be non-zero"));
  EXPECT_EQ(nbd_concurrent_writer_error(h, EPIPE), 0);
  EXPECT_EQ(nbd_concurrent_writer_error(h, ENOSPC), 0);
}

// Who owns the socket given to nbd_(aio_)connect_socket: the caller, when the call is refused
// before its state check passes (a NULL handle, a handle not newly created); the handle from then
// on, even when the handshake fails, and then nbd_aio_is_created is false.
namespace {

// Reads the peer of a socket until end of file (at most 30 s, so that a socket left open fails
// the test rather than hanging it); true at end of file.
bool peer_sees_end_of_file(int peer) {
  char buf[256];
  for (;;) {
    pollfd p{peer, POLLIN, 0};
    if (poll(&p, 1, 30000) != 1) return false;
    const ssize_t n = read(peer, buf, sizeof buf);
    if (n <= 0) return n == 0;
  }
}

}  // namespace

TEST_F(ApiTest, RefusedSocketStaysTheCallers) {
  int first[2], second[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, first), 0);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, second), 0);
  EXPECT_EQ(nbd_aio_connect_socket(nullptr, second[0]), -1);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_aio_connect_socket: handle cannot be NULL"));
  EXPECT_NE(fcntl(second[0], F_GETFD), -1) << "refused, yet closed";
  // The handle takes the first socket and waits for a greeting that does not come.
  ASSERT_EQ(nbd_aio_connect_socket(h, first[0]), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_created(h), 0);
  EXPECT_EQ(nbd_aio_connect_socket(h, second[0]), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_aio_connect_socket: invalid state: "));
  EXPECT_EQ(nbd_connect_socket(h, second[0]), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_connect_socket: invalid state: "));
  EXPECT_NE(fcntl(second[0], F_GETFD), -1) << "refused, yet closed";
  EXPECT_EQ(close(second[0]), 0);
  EXPECT_TRUE(peer_sees_end_of_file(second[1]));
  close(second[1]);
  // The first socket is the handle's: closed with it.
  close_handle();
  EXPECT_TRUE(peer_sees_end_of_file(first[1]));
  close(first[1]);
}

TEST_F(ApiTest, SocketOfAFailedHandshakeIsTheHandles) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const char garbage[] = "not an NBD greeting at all";
  ASSERT_EQ(write(sv[1], garbage, sizeof garbage), static_cast<ssize_t>(sizeof garbage));
  EXPECT_EQ(nbd_connect_socket(h, sv[0]), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_connect_socket: handshake: server did not send NBDMAGIC"));
  EXPECT_EQ(nbd_aio_is_dead(h), 1);
  EXPECT_EQ(nbd_aio_is_created(h), 0);  // so the caller knows: sv[0] is not theirs to close
  close_handle();
  EXPECT_TRUE(peer_sees_end_of_file(sv[1]));
  close(sv[1]);
}
