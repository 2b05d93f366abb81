// settings_test.cpp: every call that only stores or reads a setting, through libnbd.so.0.
#include <gtest/gtest.h>
#include <libnbd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "../common/api_fixture.hpp"
#include "../common/io_helpers.hpp"

using nbd_test::ApiTest;
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
  // Consumers parse the leading MAJOR.MINOR to enable features: it must be the 1.14 ABI level.
  EXPECT_EQ(std::strncmp(nbd_get_version(h), "1.14.", 5), 0) << nbd_get_version(h);
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
