// extended_headers_test.cpp: the client side of the EXTENDED_HEADERS extension (libnbd 1.18's
// calls) against tests/extserver's nbd_ext_server, the only server here that speaks it, and
// the fall-back to compact headers against every real server.
#include <gtest/gtest.h>
#include <libnbd.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/io_helpers.hpp"
#include "common/servers.hpp"

namespace {

using nbd_test::ApiTest;
using nbd_test::ext_server_log_lines;
using nbd_test::ext_server_wire_log;
using nbd_test::last_error_is;
using nbd_test::Server;
using nbd_test::start_ext_server;
using nbd_test::wait_for_ext_server_log;

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kGiB = 1024 * kMiB;
constexpr uint64_t kBit40 = uint64_t{1} << 40;  // set in every status of nbdpp:test

// Every extent a 64-bit callback saw, per context, with the *error it saw last.
struct Extents64 {
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> seen;
  int calls = 0;
  int frees = 0;
  nbd_extent64_callback closure() {
    return {[](void* ud, const char* ctx, uint64_t, nbd_extent* e, size_t n, int*) {
              auto* self = static_cast<Extents64*>(ud);
              ++self->calls;
              for (size_t i = 0; i < n; ++i)
                self->seen[ctx].emplace_back(e[i].length, e[i].flags);
              return 0;
            },
            this, [](void* ud) { ++static_cast<Extents64*>(ud)->frees; }};
  }
};

class ExtendedHeaders : public ApiTest {
 protected:
  // Starts nbd_ext_server with args and connects with both of its contexts requested.
  void connect(std::vector<std::string> args) {
    server = start_ext_server(std::move(args));
    ASSERT_TRUE(server);
    ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
    ASSERT_EQ(nbd_add_meta_context(h, "nbdpp:test"), 0);
    ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  }
  bool dead() const { return nbd_aio_is_dead(h) == 1; }
  std::unique_ptr<Server> server;
};

TEST_F(ExtendedHeaders, RequestedByDefaultAndUsedOnTheWire) {
  EXPECT_EQ(nbd_get_request_extended_headers(h), 1);
  connect({});
  EXPECT_EQ(nbd_get_extended_headers_negotiated(h), 1);
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h), 1);  // extended headers include them
  nbd_test::round_trip(h, 12345, 70000, 3);
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  ASSERT_TRUE(wait_for_ext_server_log(*server, "req magic=0x21e41c71 type=2 "));
  // NBD_OPT_STRUCTURED_REPLY is not asked for once extended headers are in use.
  EXPECT_EQ(ext_server_log_lines(*server, "opt 8").size(), 0u) << ext_server_wire_log(*server);
  EXPECT_EQ(ext_server_log_lines(*server, "req magic=0x25609513").size(), 0u);
  EXPECT_EQ(ext_server_log_lines(*server, "req magic=0x21e41c71 type=1 flags=0x20 offset=12345 length=70000").size(), 1u)
      << ext_server_wire_log(*server);
}

TEST_F(ExtendedHeaders, RefusedFallsBackToStructuredReplies) {
  connect({"--no-extended-headers"});
  EXPECT_EQ(nbd_get_extended_headers_negotiated(h), 0);
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h), 1);
  nbd_test::round_trip(h, 0, 4096, 4);
  EXPECT_EQ(ext_server_log_lines(*server, "req magic=0x21e41c71").size(), 0u) << ext_server_wire_log(*server);
}

TEST_F(ExtendedHeaders, NotRequestedWhenTurnedOff) {
  ASSERT_EQ(nbd_set_request_extended_headers(h, false), 0);
  EXPECT_EQ(nbd_get_request_extended_headers(h), 0);
  connect({});
  EXPECT_EQ(nbd_get_extended_headers_negotiated(h), 0);
  EXPECT_EQ(ext_server_log_lines(*server, "opt 11").size(), 0u) << ext_server_wire_log(*server);
  // Nor without structured replies, which they extend.
  nbd_handle* h2 = nbd_create();
  ASSERT_EQ(nbd_set_request_structured_replies(h2, false), 0);
  ASSERT_EQ(nbd_connect_uri(h2, server->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_extended_headers_negotiated(h2), 0);
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h2), 0);
  nbd_close(h2);
}

TEST_F(ExtendedHeaders, SettingOnlyBeforeConnecting) {
  connect({});
  EXPECT_EQ(nbd_set_request_extended_headers(h, false), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_request_extended_headers: invalid state"));
}

TEST_F(ExtendedHeaders, SixtyFourBitStatusesReachTheWideCallback) {
  connect({});
  std::vector<char> data(64 * 1024, 'x');
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 64 * 1024, 0), 0) << nbd_get_error();
  Extents64 ext;
  ASSERT_EQ(nbd_block_status_64(h, 256 * 1024, 0, ext.closure(), 0), 0) << nbd_get_error();
  EXPECT_EQ(ext.frees, 1);
  const auto& test = ext.seen["nbdpp:test"];
  ASSERT_FALSE(test.empty());
  for (const auto& [length, flags] : test)
    EXPECT_NE(flags & kBit40, 0u) << length;  // the high half arrived intact
  // The server describes no more than was asked for.
  const std::vector<std::pair<uint64_t, uint64_t>> alloc{{64 * 1024, 3}, {64 * 1024, 0}, {128 * 1024, 3}};
  EXPECT_EQ(ext.seen[LIBNBD_CONTEXT_BASE_ALLOCATION], alloc);
}

TEST_F(ExtendedHeaders, SixtyFourBitStatusesOverflowTheNarrowCallback) {
  connect({});
  int calls = 0;
  nbd_extent_callback narrow{[](void* ud, const char* ctx, uint64_t, uint32_t*, size_t, int* error) {
                               if (std::string(ctx) == "nbdpp:test") {
                                 EXPECT_EQ(*error, EOVERFLOW);
                               }
                               ++*static_cast<int*>(ud);
                               return 0;
                             },
                             &calls, nullptr};
  EXPECT_EQ(nbd_block_status(h, 4096, 0, narrow, 0), -1);
  EXPECT_TRUE(last_error_is(EOVERFLOW, "nbd_block_status: block-status: command failed"));
  EXPECT_EQ(calls, 2);  // both contexts still reported
  EXPECT_FALSE(dead());
}

TEST_F(ExtendedHeaders, EffectLengthsOver32Bits) {
  connect({"--size", "8G"});
  // One request zeroes 5 GiB: possible only with 64-bit lengths.
  ASSERT_EQ(nbd_zero(h, 5 * kGiB, kGiB, 0), 0) << nbd_get_error();
  EXPECT_EQ(ext_server_log_lines(*server, "req magic=0x21e41c71 type=6 flags=0x0 offset=1073741824 length=5368709120").size(), 1u)
      << ext_server_wire_log(*server);
  Extents64 ext;
  ASSERT_EQ(nbd_block_status_64(h, 8 * kGiB, 0, ext.closure(), 0), 0) << nbd_get_error();
  ASSERT_FALSE(ext.seen[LIBNBD_CONTEXT_BASE_ALLOCATION].empty());
  EXPECT_EQ(ext.seen[LIBNBD_CONTEXT_BASE_ALLOCATION][0].first, 8 * kGiB);  // one extent, wider than 32 bits
}

TEST_F(ExtendedHeaders, EffectLengthsOver32BitsNeedExtendedHeaders) {
  connect({"--size", "8G", "--no-extended-headers"});
  EXPECT_EQ(nbd_zero(h, 5 * kGiB, kGiB, 0), -1);
  EXPECT_TRUE(last_error_is(ERANGE, "nbd_zero: request too large"));
  EXPECT_FALSE(dead());
}

TEST_F(ExtendedHeaders, BlockStatusFilterSendsThePayloadForm) {
  connect({"--block-status-payload"});
  EXPECT_EQ(nbd_can_block_status_payload(h), 1);
  const char* only_test[] = {"nbdpp:test", nullptr};
  Extents64 ext;
  ASSERT_EQ(nbd_block_status_filter(h, 4096, 0, const_cast<char**>(only_test), ext.closure(), 0), 0)
      << nbd_get_error();
  EXPECT_EQ(ext.calls, 1);
  EXPECT_EQ(ext.seen.count(LIBNBD_CONTEXT_BASE_ALLOCATION), 0u);
  EXPECT_EQ(ext.seen.count("nbdpp:test"), 1u);
  // NBD_CMD_BLOCK_STATUS with NBD_CMD_FLAG_PAYLOAD_LEN: 8 bytes of effect length, one id.
  EXPECT_EQ(ext_server_log_lines(*server, "req magic=0x21e41c71 type=7 flags=0x20 offset=0 length=12").size(), 1u)
      << ext_server_wire_log(*server);
}

TEST_F(ExtendedHeaders, BlockStatusFilterRefusals) {
  const char* unknown[] = {"nbdpp:nope", nullptr};
  const char* only_test[] = {"nbdpp:test", nullptr};
  Extents64 ext;
  connect({"--block-status-payload"});
  EXPECT_EQ(nbd_block_status_filter(h, 4096, 0, const_cast<char**>(unknown), ext.closure(), 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_block_status_filter: context nbdpp:nope not negotiated"));
  EXPECT_EQ(ext.calls, 0);
  EXPECT_EQ(ext.frees, 1);
  close_handle();
  server.reset();

  // A server that does not advertise the payload form.
  h = nbd_create();
  connect({});
  EXPECT_EQ(nbd_can_block_status_payload(h), 0);
  EXPECT_EQ(nbd_block_status_filter(h, 4096, 0, const_cast<char**>(only_test), ext.closure(), 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_block_status_filter: server does not support the block status payload flag"));
  close_handle();
  server.reset();

  // Without extended headers there is no payload to send.
  h = nbd_create();
  connect({"--block-status-payload", "--no-extended-headers"});
  EXPECT_EQ(nbd_can_block_status_payload(h), 0);
  EXPECT_EQ(nbd_block_status_filter(h, 4096, 0, const_cast<char**>(only_test), ext.closure(), 0), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_block_status_filter: server does not support extended headers"));
  EXPECT_FALSE(dead());
}

TEST_F(ExtendedHeaders, PayloadLenFlagFollowsStrictAutoFlag) {
  connect({});
  std::vector<char> data(512, 'p');
  // By default the library sets NBD_CMD_FLAG_PAYLOAD_LEN itself, whatever the caller passed.
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, LIBNBD_CMD_FLAG_PAYLOAD_LEN), 0) << nbd_get_error();
  ASSERT_EQ(nbd_set_strict_mode(h, nbd_get_strict_mode(h) & ~LIBNBD_STRICT_AUTO_FLAG), 0);
  EXPECT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pwrite: incorrect setting for PAYLOAD_LEN flag"));
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 512, LIBNBD_CMD_FLAG_PAYLOAD_LEN), 0) << nbd_get_error();
  EXPECT_EQ(ext_server_log_lines(*server, "violation").size(), 0u) << ext_server_wire_log(*server);
}

TEST_F(ExtendedHeaders, PayloadSizeLimit) {
  connect({"--max-payload", "4M"});
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM), int64_t(4 * kMiB));
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_PAYLOAD), int64_t(4 * kMiB));
  std::vector<char> data(4 * kMiB + 512, 'q');
  EXPECT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), -1);
  EXPECT_TRUE(last_error_is(ERANGE, "nbd_pwrite: request too large: maximum payload size is 4194304"));
  ASSERT_EQ(nbd_pwrite(h, data.data(), 4 * kMiB, 0, 0), 0) << nbd_get_error();
  EXPECT_FALSE(dead());
}

// Each misbehaviour of the extension server meets its check: the stream out of step kills the
// connection (EPROTO); a reply that is only wrong fails its command and the handle goes on.
TEST_F(ExtendedHeaders, SimpleReplyInExtendedModeIsFatal) {
  connect({"--bad=simple-reply-in-extended-mode"});
  EXPECT_EQ(nbd_flush(h, 0), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_flush: invalid reply magic 0x67446698: extended headers are in use"));
  EXPECT_TRUE(dead());
}

TEST_F(ExtendedHeaders, StructuredReplyInExtendedModeIsFatal) {
  connect({"--bad=structured-reply-in-extended-mode"});
  EXPECT_EQ(nbd_flush(h, 0), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_flush: invalid reply magic 0x668e33ef: extended headers are in use"));
  EXPECT_TRUE(dead());
}

TEST_F(ExtendedHeaders, ReplyLengthTooLargeIsFatal) {
  connect({"--bad=reply-length-too-large"});
  EXPECT_EQ(nbd_flush(h, 0), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_flush: reply chunk too large"));
  EXPECT_TRUE(dead());
}

TEST_F(ExtendedHeaders, WrongReplyOffsetFailsTheCommand) {
  connect({"--bad=wrong-reply-offset"});
  std::vector<char> buf(4096, 'z');
  const std::vector<char> before = buf;
  EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), 8192, 0), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_pread: read: command failed"));
  EXPECT_FALSE(dead());
  // Every reply names the wrong offset, so every command fails the same way, and the handle
  // stays in step: a second command gets its own reply.
  EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_pread: read: command failed"));
  EXPECT_FALSE(dead());
}

TEST_F(ExtendedHeaders, CompactBlockStatusInExtendedModeFailsTheCommand) {
  connect({"--bad=compact-block-status-in-extended-mode"});
  Extents64 ext;
  EXPECT_EQ(nbd_block_status_64(h, 4096, 0, ext.closure(), 0), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_block_status_64: block-status: command failed"));
  EXPECT_EQ(ext.calls, 2);  // still readable, so still delivered
  EXPECT_FALSE(dead());
}

TEST_F(ExtendedHeaders, DescriptorCountMismatchFailsTheCommand) {
  connect({"--bad=ext-block-status-count-mismatch"});
  Extents64 ext;
  EXPECT_EQ(nbd_block_status_64(h, 4096, 0, ext.closure(), 0), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_block_status_64: block-status: command failed"));
  EXPECT_EQ(ext.calls, 0);
  nbd_test::round_trip(h, 0, 4096, 5);  // the handle goes on
}

TEST_F(ExtendedHeaders, WideBlockStatusWithoutExtendedHeadersFailsTheCommand) {
  connect({"--bad=block-status-ext-in-structured-mode", "--no-extended-headers"});
  Extents64 ext;
  EXPECT_EQ(nbd_block_status_64(h, 4096, 0, ext.closure(), 0), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_block_status_64: block-status: command failed"));
  EXPECT_FALSE(dead());
}

// Every real server refuses NBD_OPT_EXTENDED_HEADERS today; each connection falls back and
// works as before.
TEST_F(ApiTest, ExtendedHeadersRefusedByRealServers) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  NBD_TEST_REQUIRE_PROGRAM("qemu-nbd");
  NBD_TEST_REQUIRE_PROGRAM("nbd-server");
  NBD_TEST_REQUIRE_PROGRAM("qemu-img");
  nbd_test::TmpDir dir;
  const std::string img = dir.path() + "/disk.img";
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "raw", img, "1M"}));
  std::vector<std::pair<std::unique_ptr<Server>, std::string>> servers;
  servers.emplace_back(nbd_test::start_nbdkit({"memory", "1M"}), "");
  servers.emplace_back(nbd_test::start_qemu_nbd(img, "raw"), "");
  servers.emplace_back(nbd_test::start_nbd_server({{"disk", img, false}}), "disk");
  for (const auto& [srv, name] : servers) {
    ASSERT_TRUE(srv);
    const std::string uri = name.empty() ? srv->uri() : srv->export_uri(name);
    nbd_handle* c = nbd_create();
    ASSERT_EQ(nbd_connect_uri(c, uri.c_str()), 0) << uri << ": " << nbd_get_error();
    EXPECT_EQ(nbd_get_extended_headers_negotiated(c), 0) << uri;
    nbd_test::round_trip(c, 4096, 8192, 6);
    EXPECT_EQ(nbd_shutdown(c, 0), 0) << nbd_get_error();
    nbd_close(c);
  }
}

}  // namespace
