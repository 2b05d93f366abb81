// settings_test.cpp: every call that only stores or reads a setting, through libnbd.so.0.
#include <gtest/gtest.h>
#include <libnbd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../common/api_fixture.hpp"
#include "../common/io_helpers.hpp"

using nbd_test::ApiTest;
using nbd_test::last_error_is;
using nbd_test::take;

TEST_F(ApiTest, Defaults) {
  EXPECT_EQ(nbd_get_debug(h), 0);
  EXPECT_EQ(take(nbd_get_export_name(h)), "");
  EXPECT_EQ(nbd_get_request_block_size(h), 1);
  EXPECT_EQ(nbd_get_full_info(h), 0);
  EXPECT_EQ(nbd_get_tls(h), LIBNBD_TLS_DISABLE);
  EXPECT_EQ(nbd_get_tls_verify_peer(h), 1);
  EXPECT_EQ(nbd_get_request_structured_replies(h), 1);
  EXPECT_EQ(nbd_get_handshake_flags(h), LIBNBD_HANDSHAKE_FLAG_FIXED_NEWSTYLE | LIBNBD_HANDSHAKE_FLAG_NO_ZEROES);
  EXPECT_EQ(nbd_get_pread_initialize(h), 1);
  EXPECT_EQ(nbd_get_strict_mode(h), LIBNBD_STRICT_MASK);
  EXPECT_EQ(nbd_get_opt_mode(h), 0);
  EXPECT_EQ(nbd_get_nr_meta_contexts(h), 0);
  EXPECT_EQ(nbd_get_private_data(h), 0u);
  EXPECT_EQ(nbd_aio_get_direction(h), 0u);
  EXPECT_EQ(nbd_supports_tls(h), 1);
  EXPECT_EQ(nbd_supports_uri(h), 1);
}

TEST_F(ApiTest, HandleNamesAreDistinctAndSettable) {
  const std::string first = take(nbd_get_handle_name(h));
  EXPECT_EQ(first.rfind("nbd", 0), 0u);
  nbd_handle* h2 = nbd_create();
  EXPECT_NE(take(nbd_get_handle_name(h2)), first);
  nbd_close(h2);
  EXPECT_EQ(nbd_set_handle_name(h, "disk-a"), 0);
  EXPECT_EQ(take(nbd_get_handle_name(h)), "disk-a");
}

TEST_F(ApiTest, PrivateDataReturnsTheOldValue) {
  EXPECT_EQ(nbd_set_private_data(h, 42), 0u);
  EXPECT_EQ(nbd_set_private_data(h, 7), 42u);
  EXPECT_EQ(nbd_get_private_data(h), 7u);
}

TEST_F(ApiTest, SettersRoundTrip) {
  EXPECT_EQ(nbd_set_debug(h, true), 0);
  EXPECT_EQ(nbd_get_debug(h), 1);
  EXPECT_EQ(nbd_set_debug(h, false), 0);
  EXPECT_EQ(nbd_set_export_name(h, "vol/disk1"), 0);
  EXPECT_EQ(take(nbd_get_export_name(h)), "vol/disk1");
  EXPECT_EQ(nbd_set_request_block_size(h, false), 0);
  EXPECT_EQ(nbd_get_request_block_size(h), 0);
  EXPECT_EQ(nbd_set_full_info(h, true), 0);
  EXPECT_EQ(nbd_get_full_info(h), 1);
  EXPECT_EQ(nbd_set_tls(h, LIBNBD_TLS_REQUIRE), 0);
  EXPECT_EQ(nbd_get_tls(h), LIBNBD_TLS_REQUIRE);
  EXPECT_EQ(nbd_set_tls_certificates(h, "/etc/pki/nbd"), 0);
  EXPECT_EQ(nbd_set_tls_verify_peer(h, false), 0);
  EXPECT_EQ(nbd_get_tls_verify_peer(h), 0);
  EXPECT_EQ(nbd_set_tls_username(h, "alice"), 0);
  EXPECT_EQ(take(nbd_get_tls_username(h)), "alice");
  EXPECT_EQ(nbd_set_tls_psk_file(h, "/tmp/keys.psk"), 0);
  EXPECT_EQ(nbd_set_request_structured_replies(h, false), 0);
  EXPECT_EQ(nbd_get_request_structured_replies(h), 0);
  EXPECT_EQ(nbd_set_handshake_flags(h, LIBNBD_HANDSHAKE_FLAG_FIXED_NEWSTYLE), 0);
  EXPECT_EQ(nbd_get_handshake_flags(h), LIBNBD_HANDSHAKE_FLAG_FIXED_NEWSTYLE);
  EXPECT_EQ(nbd_set_pread_initialize(h, false), 0);
  EXPECT_EQ(nbd_get_pread_initialize(h), 0);
  EXPECT_EQ(nbd_set_strict_mode(h, LIBNBD_STRICT_COMMANDS | LIBNBD_STRICT_ALIGN), 0);
  EXPECT_EQ(nbd_get_strict_mode(h), LIBNBD_STRICT_COMMANDS | LIBNBD_STRICT_ALIGN);
  EXPECT_EQ(nbd_set_opt_mode(h, true), 0);
  EXPECT_EQ(nbd_get_opt_mode(h), 1);
  EXPECT_EQ(nbd_set_uri_allow_transports(h, LIBNBD_ALLOW_TRANSPORT_UNIX), 0);
  EXPECT_EQ(nbd_set_uri_allow_tls(h, LIBNBD_TLS_DISABLE), 0);
  EXPECT_EQ(nbd_set_uri_allow_local_file(h, true), 0);
}

TEST_F(ApiTest, MetaContextRequests) {
  EXPECT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
  EXPECT_EQ(nbd_add_meta_context(h, "qemu:dirty-bitmap:b0"), 0);
  EXPECT_EQ(nbd_get_nr_meta_contexts(h), 2);
  EXPECT_EQ(take(nbd_get_meta_context(h, 0)), "base:allocation");
  EXPECT_EQ(take(nbd_get_meta_context(h, 1)), "qemu:dirty-bitmap:b0");
  EXPECT_EQ(nbd_clear_meta_contexts(h), 0);
  EXPECT_EQ(nbd_get_nr_meta_contexts(h), 0);
}

TEST_F(ApiTest, StateQueriesOfANewHandle) {
  EXPECT_EQ(nbd_aio_is_created(h), 1);
  EXPECT_EQ(nbd_aio_is_connecting(h), 0);
  EXPECT_EQ(nbd_aio_is_negotiating(h), 0);
  EXPECT_EQ(nbd_aio_is_ready(h), 0);
  EXPECT_EQ(nbd_aio_is_processing(h), 0);
  EXPECT_EQ(nbd_aio_is_dead(h), 0);
  EXPECT_EQ(nbd_aio_is_closed(h), 0);
  EXPECT_STREQ(nbd_connection_state(h), "START: the handle is new and not connected");
}

TEST_F(ApiTest, LibraryIdentity) {
  EXPECT_STREQ(nbd_get_package_name(h), "nbdpp");
  // Consumers parse the leading MAJOR.MINOR to enable features: it must be the 1.24 ABI level,
  // then ".0+nbdpp." and the project's own version (CMakeLists.txt).
  EXPECT_EQ(std::string(nbd_get_version(h)), "1.24.0+nbdpp." NBDPP_TEST_PROJECT_VERSION);
  // Empty unless CMake was given -DNBDPP_EXTRA_VERSION=...
  EXPECT_EQ(std::string(nbd_get_version_extra(h)), NBDPP_TEST_EXTRA_VERSION);
  EXPECT_EQ(nbd_supports_vsock(h), 1);
}

// ---- Settings of libnbd 1.16-1.22 ----

TEST_F(ApiTest, Libnbd116SettingsDefaults) {
  EXPECT_EQ(nbd_get_request_meta_context(h), 1);
  EXPECT_EQ(nbd_get_request_extended_headers(h), 1);
  EXPECT_EQ(take(nbd_get_socket_activation_name(h)), "");
  EXPECT_EQ(take(nbd_get_tls_hostname(h)), "");
  EXPECT_EQ(nbd_get_strict_mode(h) & (LIBNBD_STRICT_PAYLOAD | LIBNBD_STRICT_AUTO_FLAG),
            LIBNBD_STRICT_PAYLOAD | LIBNBD_STRICT_AUTO_FLAG);
  EXPECT_EQ(nbd_stats_bytes_sent(h), 0u);
  EXPECT_EQ(nbd_stats_chunks_sent(h), 0u);
  EXPECT_EQ(nbd_stats_bytes_received(h), 0u);
  EXPECT_EQ(nbd_stats_chunks_received(h), 0u);
}

TEST_F(ApiTest, Libnbd116SettersRoundTrip) {
  EXPECT_EQ(nbd_set_request_meta_context(h, false), 0);
  EXPECT_EQ(nbd_get_request_meta_context(h), 0);
  EXPECT_EQ(nbd_set_request_meta_context(h, true), 0);
  EXPECT_EQ(nbd_get_request_meta_context(h), 1);
  EXPECT_EQ(nbd_set_request_extended_headers(h, false), 0);
  EXPECT_EQ(nbd_get_request_extended_headers(h), 0);
  EXPECT_EQ(nbd_set_tls_hostname(h, "server.example.com"), 0);
  EXPECT_EQ(take(nbd_get_tls_hostname(h)), "server.example.com");
  EXPECT_EQ(nbd_set_socket_activation_name(h, "nbd0Sock"), 0);
  EXPECT_EQ(take(nbd_get_socket_activation_name(h)), "nbd0Sock");
  const std::string longest(32, 'z');
  EXPECT_EQ(nbd_set_socket_activation_name(h, longest.c_str()), 0);
  EXPECT_EQ(take(nbd_get_socket_activation_name(h)), longest);
  EXPECT_EQ(nbd_set_socket_activation_name(h, ""), 0);  // clears it
  EXPECT_EQ(take(nbd_get_socket_activation_name(h)), "");
}

TEST_F(ApiTest, SocketActivationNameIsShortAndAlphanumeric) {
  ASSERT_EQ(nbd_set_socket_activation_name(h, "keep"), 0);
  const std::string too_long(33, 'a');
  EXPECT_EQ(nbd_set_socket_activation_name(h, too_long.c_str()), -1);
  EXPECT_TRUE(last_error_is(ENAMETOOLONG,
                            "nbd_set_socket_activation_name: socket activation name should be <= 32"));
  for (const char* bad : {"a-b", "a b", "name.sock", "caf\xc3\xa9"}) {
    EXPECT_EQ(nbd_set_socket_activation_name(h, bad), -1) << bad;
    EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_socket_activation_name: socket activation name should "
                                      "contain only alphanumeric ASCII characters"))
        << bad;
  }
  EXPECT_EQ(take(nbd_get_socket_activation_name(h)), "keep");  // refused names change nothing
}

TEST_F(ApiTest, SubprocessPidWithoutSubprocessIsEsrch) {
  EXPECT_EQ(nbd_get_subprocess_pid(h), -1);
  EXPECT_TRUE(last_error_is(ESRCH, "nbd_get_subprocess_pid: no subprocess exists"));
}

TEST_F(ApiTest, Poll2OnANewHandleHasNothingToPollFor) {
  EXPECT_EQ(nbd_poll2(h, -1, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_poll2: nothing to poll for"));
}

TEST(Settings, LibnbdDebugEnvironmentEnablesDebug) {
  ASSERT_EQ(setenv("LIBNBD_DEBUG", "1", 1), 0);
  nbd_handle* h = nbd_create();
  ASSERT_EQ(unsetenv("LIBNBD_DEBUG"), 0);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(nbd_get_debug(h), 1);
  nbd_close(h);
  h = nbd_create();
  EXPECT_EQ(nbd_get_debug(h), 0);
  nbd_close(h);
}
