// errors_test.cpp: the error contract of the generated entry points, through libnbd.so.0.
// These tests pass NULL on purpose: drop the header's nonnull attributes so the compiler
// (and UBSan) let the library's own checks answer.
#define LIBNBD_ATTRIBUTE_NONNULL(...)

#include <gtest/gtest.h>
#include <libnbd.h>

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
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_strict_mode: flags: invalid value for flag: 0x20"));
  EXPECT_EQ(nbd_set_handshake_flags(h, 0x4), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_handshake_flags: flags: invalid value for flag: 0x4"));
  EXPECT_EQ(nbd_set_uri_allow_transports(h, 0x8), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_uri_allow_transports: mask: invalid value for flag: 0x8"));
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
