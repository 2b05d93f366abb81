// wire_settings_test.cpp: handle settings whose effect shows on a real connection to nbdkit.
#include <fcntl.h>
#include <libnbd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/closure_counter.hpp"
#include "common/io_helpers.hpp"
#include "common/servers.hpp"

namespace {

using nbd_test::Handle;
using nbd_test::Resume;
using nbd_test::stop_child;
using nbd_test::last_error_is;
using nbd_test::poll_until;
using nbd_test::random_bytes;
using nbd_test::round_trip;
using nbd_test::start_nbdkit;
using nbd_test::take;

// Every debug message as (context, message), and the closure's frees.
struct DebugLog {
  int calls = 0;
  int frees = 0;
  std::vector<std::pair<std::string, std::string>> lines;

  // The messages logged under one context (the public call that was running).
  std::vector<std::string> of(const std::string& context) const {
    std::vector<std::string> out;
    for (const auto& [ctx, msg] : lines)
      if (ctx == context) out.push_back(msg);
    return out;
  }
};

nbd_debug_callback debug_log_closure(DebugLog& log) {
  return {[](void* ud, const char* context, const char* msg) {
            auto* l = static_cast<DebugLog*>(ud);
            ++l->calls;
            l->lines.emplace_back(context != nullptr ? context : "(null)", msg != nullptr ? msg : "(null)");
            return 0;
          },
          &log, [](void* ud) { ++static_cast<DebugLog*>(ud)->frees; }};
}

// Runs fn with this process's stderr sent to a file, and returns what was written there.
std::string capture_stderr(const std::function<void()>& fn) {
  nbd_test::TmpDir dir;
  const std::string path = dir.path() + "/stderr";
  const int file = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  EXPECT_GE(file, 0) << path;
  if (file < 0) return "";
  std::fflush(stderr);
  const int saved = dup(2);
  dup2(file, 2);
  close(file);
  fn();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string state_name(nbd_handle* h) {
  const char* s = nbd_connection_state(h);
  EXPECT_NE(s, nullptr) << nbd_get_error();
  const std::string state = s != nullptr ? s : "";
  return state.substr(0, state.find(": "));
}

// connection_state() is "NAME: description", both parts non-empty.
::testing::AssertionResult is_state_summary(const char* s) {
  if (s == nullptr) return ::testing::AssertionFailure() << "NULL: " << nbd_get_error();
  const std::string state = s;
  const size_t colon = state.find(": ");
  if (colon == std::string::npos || colon == 0 || colon + 2 == state.size())
    return ::testing::AssertionFailure() << "\"" << state << "\" is not \"NAME: description\"";
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------- debug

TEST(WireSettings, DebugCallbackSeesConnectAndCommands) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  DebugLog log;
  {
    Handle h;
    ASSERT_EQ(nbd_set_debug(h, false), 0);  // LIBNBD_DEBUG=1 in the environment turns it on
    EXPECT_EQ(nbd_get_debug(h), 0);
    ASSERT_EQ(nbd_set_debug_callback(h, debug_log_closure(log)), 0) << nbd_get_error();
    ASSERT_EQ(nbd_set_debug(h, true), 0);
    EXPECT_EQ(nbd_get_debug(h), 1);
    ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();

    // Each message is tagged with the call that was running, which enters and leaves.
    const auto connect = log.of("nbd_connect_uri");
    ASSERT_GE(connect.size(), 3u);
    EXPECT_EQ(connect.front(), "enter: uri=\"" + srv->uri() + "\"");
    EXPECT_EQ(connect.back(), "leave: ret=0");
    char buf[512];
    ASSERT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), 0) << nbd_get_error();
    const auto pread = log.of("nbd_pread");
    ASSERT_GE(pread.size(), 2u);
    EXPECT_EQ(pread.front(), "enter: buf=<buf> count=512 offset=0 flags=0x0");
    EXPECT_EQ(pread.back(), "leave: ret=0");
    for (const auto& [ctx, msg] : log.lines) EXPECT_EQ(ctx.rfind("nbd_", 0), 0u) << ctx << ": " << msg;

    // Off: the callback stays installed but hears nothing.
    ASSERT_EQ(nbd_set_debug(h, false), 0);
    EXPECT_EQ(nbd_get_debug(h), 0);
    const int calls = log.calls;
    ASSERT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), 0) << nbd_get_error();
    EXPECT_EQ(log.calls, calls);

    // Cleared: freed at once, never called again, even with debugging back on.
    ASSERT_EQ(nbd_clear_debug_callback(h), 0) << nbd_get_error();
    EXPECT_EQ(log.frees, 1);
    ASSERT_EQ(nbd_set_debug(h, true), 0);
    const std::string err = capture_stderr([&] {
      EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), 0) << nbd_get_error();
      EXPECT_EQ(nbd_set_debug(h, false), 0);
    });
    EXPECT_EQ(log.calls, calls);
    EXPECT_NE(err.find(": nbd_pread: leave: ret=0\n"), std::string::npos) << err;  // stderr instead
  }
  EXPECT_EQ(log.frees, 1);
}

TEST(WireSettings, DebugCallbackFreedAtClose) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  DebugLog log;
  {
    Handle h;
    ASSERT_EQ(nbd_set_debug_callback(h, debug_log_closure(log)), 0) << nbd_get_error();
    ASSERT_EQ(nbd_set_debug(h, true), 0);
    ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
    EXPECT_GT(log.calls, 0);
    EXPECT_EQ(log.frees, 0);
  }  // nbd_close: connected, with the callback still installed
  EXPECT_EQ(log.frees, 1);
}

TEST(WireSettings, HandleNameTagsDebugLines) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  EXPECT_EQ(take(nbd_get_handle_name(h)).rfind("nbd", 0), 0u);  // "nbd" and a counter
  ASSERT_EQ(nbd_set_handle_name(h, "wire-test"), 0) << nbd_get_error();
  EXPECT_EQ(take(nbd_get_handle_name(h)), "wire-test");
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(take(nbd_get_handle_name(h)), "wire-test");

  // The debug callback's context is the call, not the handle name: the name tags only the lines
  // written to stderr ("libnbd: debug: NAME: CALL: MESSAGE", as libnbd writes them).
  DebugLog log;
  ASSERT_EQ(nbd_set_debug_callback(h, debug_log_closure(log)), 0);
  ASSERT_EQ(nbd_set_debug(h, true), 0);
  char buf[512];
  ASSERT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), 0) << nbd_get_error();
  ASSERT_FALSE(log.lines.empty());
  for (const auto& line : log.lines) EXPECT_NE(line.first, "wire-test");
  ASSERT_EQ(nbd_clear_debug_callback(h), 0);
  const std::string err = capture_stderr([&] {
    EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), 0) << nbd_get_error();
    EXPECT_EQ(nbd_set_debug(h, false), 0);
  });
  EXPECT_NE(err.find("libnbd: debug: wire-test: nbd_pread: enter: buf=<buf> count=512 offset=0 flags=0x0\n"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("libnbd: debug: wire-test: nbd_pread: leave: ret=0\n"), std::string::npos) << err;
}

// ---------------------------------------------------------------- private data

TEST(WireSettings, PrivateDataSurvivesTheConnection) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  EXPECT_EQ(nbd_get_private_data(h), 0u);
  EXPECT_EQ(nbd_set_private_data(h, 42), 0u);  // returns the old value
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  round_trip(h, 0, 4096, 1);
  EXPECT_EQ(nbd_get_private_data(h), 42u);
  EXPECT_EQ(nbd_set_private_data(h, UINTPTR_MAX), 42u);
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_closed(h), 1);
  EXPECT_EQ(nbd_get_private_data(h), UINTPTR_MAX);  // any state
  EXPECT_EQ(nbd_set_private_data(h, 7), UINTPTR_MAX);
  EXPECT_EQ(nbd_get_private_data(h), 7u);
}

// ---------------------------------------------------------------- structured replies

TEST(WireSettings, StructuredRepliesNotRequested) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  EXPECT_EQ(nbd_get_request_structured_replies(h), 1);
  ASSERT_EQ(nbd_set_request_structured_replies(h, false), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_request_structured_replies(h), 0);
  ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h), 0);
  EXPECT_EQ(nbd_can_df(h), 0);
  EXPECT_EQ(nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);  // needs structured replies
  EXPECT_EQ(nbd_get_request_structured_replies(h), 0);

  // A simple reply: the whole read arrives as one data chunk.
  auto data = random_bytes(65536, 2);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 4096, 0), 0) << nbd_get_error();
  struct Chunks {
    int calls = 0;
    uint64_t offset = 0;
    size_t count = 0;
    unsigned status = 0;
  } chunks;
  nbd_chunk_callback chunk{[](void* ud, const void*, size_t count, uint64_t offset, unsigned status, int*) {
                             auto* c = static_cast<Chunks*>(ud);
                             ++c->calls;
                             c->offset = offset;
                             c->count = count;
                             c->status = status;
                             return 0;
                           },
                           &chunks, nullptr};
  std::vector<char> back(data.size());
  ASSERT_EQ(nbd_pread_structured(h, back.data(), back.size(), 4096, chunk, 0), 0) << nbd_get_error();
  EXPECT_EQ(chunks.calls, 1);
  EXPECT_EQ(chunks.offset, 4096u);
  EXPECT_EQ(chunks.count, data.size());
  EXPECT_EQ(chunks.status, unsigned{LIBNBD_READ_DATA});
  EXPECT_EQ(back, data);
  EXPECT_EQ(nbd_pread_structured(h, back.data(), back.size(), 4096, chunk, LIBNBD_CMD_FLAG_DF), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread_structured: server does not support the DF flag"));
  EXPECT_EQ(chunks.calls, 1);
}

// ---------------------------------------------------------------- handshake flags

// nbdkit -v logs each option it receives; the lines are written before the reply is sent.
TEST(WireSettings, WithoutFixedNewstyleOnlyExportName) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"-v", "memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  EXPECT_EQ(nbd_get_handshake_flags(h), LIBNBD_HANDSHAKE_FLAG_FIXED_NEWSTYLE | LIBNBD_HANDSHAKE_FLAG_NO_ZEROES);
  ASSERT_EQ(nbd_set_handshake_flags(h, LIBNBD_HANDSHAKE_FLAG_NO_ZEROES), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_handshake_flags(h), LIBNBD_HANDSHAKE_FLAG_NO_ZEROES);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_STREQ(nbd_get_protocol(h), "newstyle");
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h), 0);  // no options but NBD_OPT_EXPORT_NAME
  EXPECT_EQ(nbd_get_handshake_flags(h), LIBNBD_HANDSHAKE_FLAG_NO_ZEROES);
  EXPECT_EQ(nbd_get_size(h), 1048576);
  round_trip(h, 4096, 8192, 3);
  const std::string log = srv->log();
  EXPECT_NE(log.find("NBD_OPT_EXPORT_NAME"), std::string::npos) << log;
  EXPECT_EQ(log.find("NBD_OPT_GO"), std::string::npos) << log;
  EXPECT_EQ(log.find("NBD_OPT_STRUCTURED_REPLY"), std::string::npos) << log;
}

// No flags at all: NBD_OPT_EXPORT_NAME, and its reply carries 124 bytes of zero padding.
TEST(WireSettings, WithoutNoZeroesReadsThePadding) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_set_handshake_flags(h, 0), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_handshake_flags(h), 0u);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_STREQ(nbd_get_protocol(h), "newstyle");
  EXPECT_EQ(nbd_get_size(h), 1048576);
  round_trip(h, 0, 4096, 4);  // the padding was consumed, not taken for a reply
  round_trip(h, 1048576 - 512, 512, 5);
}

// After the handshake the flags are those both sides agreed on.
TEST(WireSettings, HandshakeFlagsAfterConnectAreTheAgreedOnes) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"--mask-handshake=1", "memory", "1M"});  // the server offers FIXED_NEWSTYLE only
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  // After the handshake: the flags both sides agreed on, not the requested ones (libnbd 1.14).
  EXPECT_EQ(nbd_get_handshake_flags(h), LIBNBD_HANDSHAKE_FLAG_FIXED_NEWSTYLE);
  EXPECT_STREQ(nbd_get_protocol(h), "newstyle-fixed");
  round_trip(h, 0, 4096, 6);
  EXPECT_EQ(nbd_set_handshake_flags(h, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_handshake_flags: invalid state: READY"));
  Handle h2;
  EXPECT_EQ(nbd_set_handshake_flags(h2, LIBNBD_HANDSHAKE_FLAG_MASK + 1), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_handshake_flags: flags: invalid value for flag: 0x4"));
}

// ---------------------------------------------------------------- pread_initialize

TEST(WireSettings, PreadInitializeZeroesTheBufferOfAFailedRead) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"--filter=error", "memory", "1M", "error-pread=EIO", "error-pread-rate=1"});
  ASSERT_TRUE(srv);
  Handle h;
  EXPECT_EQ(nbd_get_pread_initialize(h), 1);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  std::vector<char> buf(4096, '\xaa');
  EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), -1);
  EXPECT_TRUE(last_error_is(EIO, "nbd_pread: read: command failed"));
  EXPECT_EQ(buf, std::vector<char>(buf.size(), 0));

  // Off: the buffer is left alone (libnbd leaves it as it was), and nothing breaks.
  ASSERT_EQ(nbd_set_pread_initialize(h, false), 0) << nbd_get_error();  // allowed in any state
  EXPECT_EQ(nbd_get_pread_initialize(h), 0);
  buf.assign(buf.size(), '\xaa');
  EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), -1);
  EXPECT_TRUE(last_error_is(EIO, "nbd_pread: read: command failed"));
  EXPECT_EQ(buf, std::vector<char>(buf.size(), '\xaa'));
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
  auto data = random_bytes(4096, 7);
  EXPECT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), 0) << nbd_get_error();
}

// The buffer of a read that fails is zeroed on every path, by the time the call returns or the
// completion callback runs: refused by the call (wrong state, out of bounds), failed by the
// server, lost with the connection.  A read that succeeds is not zeroed
// first (every byte comes from the server), which the bench measures rather than this test.
struct ZeroCheck {
  std::vector<char>* buf = nullptr;
  int calls = 0;
  int error = 0;
  bool zero_in_callback = false;
};

int check_zero_in_completion(void* p, int* error) {
  auto* z = static_cast<ZeroCheck*>(p);
  ++z->calls;
  z->error = *error;
  z->zero_in_callback = *z->buf == std::vector<char>(z->buf->size(), 0);
  return 1;
}

TEST(WireSettings, PreadInitializeZeroesFailedReadsOnEveryPath) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  std::vector<char> buf(65536, '\xaa');
  const std::vector<char> zeroes(buf.size(), 0);
  {
    Handle h;  // created, not connected
    EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), -1);
    EXPECT_TRUE(last_error_is(ENOTCONN, "nbd_pread: invalid state: "));
    EXPECT_EQ(buf, zeroes);
  }
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  buf.assign(buf.size(), '\xaa');
  EXPECT_EQ(nbd_aio_pread(h, buf.data(), buf.size(), 1024 * 1024, NBD_NULL_COMPLETION, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_aio_pread: request out of bounds"));
  EXPECT_EQ(buf, zeroes);

  // Served: the data arrives whole.
  auto data = random_bytes(buf.size(), 11);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), 0) << nbd_get_error();
  buf.assign(buf.size(), '\xaa');
  ASSERT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(buf, data);
}

TEST(WireSettings, PreadInitializeZeroesReadsFailedByTheServerOrLost) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  std::vector<char> buf(65536, '\xaa');
  {
    auto srv = start_nbdkit({"--filter=error", "memory", "1M", "error-pread=EIO", "error-pread-rate=1"});
    ASSERT_TRUE(srv);
    Handle h;
    ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
    ZeroCheck z{&buf};
    ASSERT_GT(nbd_aio_pread(h, buf.data(), buf.size(), 0, {check_zero_in_completion, &z, nullptr}, 0), 0)
        << nbd_get_error();
    ASSERT_TRUE(poll_until(h, [&] { return z.calls == 1; })) << nbd_get_error();
    EXPECT_EQ(z.error, EIO);
    EXPECT_TRUE(z.zero_in_callback);
  }
  {
    // The server dies with the read in flight (each read waits 10 s in the delay filter).
    auto srv = start_nbdkit({"--filter=delay", "memory", "1M", "delay-read=10"});
    ASSERT_TRUE(srv);
    Handle h;
    ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
    buf.assign(buf.size(), '\xaa');
    ZeroCheck z{&buf};
    ASSERT_GT(nbd_aio_pread(h, buf.data(), buf.size(), 0, {check_zero_in_completion, &z, nullptr}, 0), 0)
        << nbd_get_error();
    srv->kill_now();
    ASSERT_TRUE(poll_until(h, [&] { return z.calls == 1; }));
    EXPECT_EQ(z.error, ENOTCONN);
    EXPECT_TRUE(z.zero_in_callback);
    EXPECT_EQ(nbd_aio_is_dead(h), 1);
  }
}

TEST(WireSettings, PreadInitializeOffStillReads) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_set_pread_initialize(h, false), 0) << nbd_get_error();
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_pread_initialize(h), 0);
  round_trip(h, 512, 65536, 8);
  std::vector<char> buf(4096, '\xaa');
  ASSERT_EQ(nbd_pread(h, buf.data(), buf.size(), 524288, 0), 0) << nbd_get_error();
  EXPECT_EQ(buf, std::vector<char>(buf.size(), 0));  // unwritten: the server sends zeros
}

// ---------------------------------------------------------------- opt mode

TEST(WireSettings, OptModeStopsInNegotiation) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  EXPECT_EQ(nbd_get_opt_mode(h), 0);
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_opt_mode(h), 1);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_negotiating(h), 1);
  EXPECT_EQ(nbd_get_opt_mode(h), 1);
  ASSERT_EQ(nbd_opt_go(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
  EXPECT_EQ(nbd_get_opt_mode(h), 1);  // a setting, not the state
  round_trip(h, 0, 4096, 9);
  Handle h2;
  ASSERT_EQ(nbd_connect_uri(h2, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_opt_mode(h2), 0);
  EXPECT_EQ(nbd_aio_is_ready(h2), 1);  // straight through
}

// ---------------------------------------------------------------- meta contexts

TEST(WireSettings, MetaContextListAndClear) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0) << nbd_get_error();
  ASSERT_EQ(nbd_add_meta_context(h, "nbdkit:nonexistent"), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_nr_meta_contexts(h), 2);
  EXPECT_EQ(take(nbd_get_meta_context(h, 0)), LIBNBD_CONTEXT_BASE_ALLOCATION);
  EXPECT_EQ(take(nbd_get_meta_context(h, 1)), "nbdkit:nonexistent");
  EXPECT_EQ(nbd_get_meta_context(h, 2), nullptr);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_get_meta_context: meta context request out of range"));
  ASSERT_EQ(nbd_clear_meta_contexts(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_nr_meta_contexts(h), 0);
  EXPECT_EQ(nbd_get_meta_context(h, 0), nullptr);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_get_meta_context: meta context request out of range"));

  // Nothing requested, so nothing negotiated: block status has no context to ask for.
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
  nbd_test::Counter extents;
  EXPECT_EQ(nbd_block_status(h, 65536, 0, nbd_test::extent_closure(extents), 0), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_block_status: "));
  EXPECT_EQ(extents.calls, 0);
  EXPECT_EQ(extents.frees, 1);
  EXPECT_EQ(nbd_clear_meta_contexts(h), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_clear_meta_contexts: invalid state: READY"));
}

// In opt mode the list may still change before NBD_OPT_GO, which sends what is left.
TEST(WireSettings, MetaContextsClearedWhileNegotiating) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_aio_is_negotiating(h), 1);
  EXPECT_EQ(take(nbd_get_meta_context(h, 0)), LIBNBD_CONTEXT_BASE_ALLOCATION);
  ASSERT_EQ(nbd_clear_meta_contexts(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_nr_meta_contexts(h), 0);
  ASSERT_EQ(nbd_opt_go(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);
  nbd_test::Counter extents;
  EXPECT_EQ(nbd_block_status(h, 65536, 0, nbd_test::extent_closure(extents), 0), -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_block_status: "));
  EXPECT_EQ(extents.calls, 0);
  EXPECT_EQ(extents.frees, 1);
}

// ---------------------------------------------------------------- block size, full info

TEST(WireSettings, RequestBlockSizeAndFullInfo) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"--filter=exportname", "memory", "1M", "exportdesc=fixed:wire disk"});
  ASSERT_TRUE(srv);
  Handle h;
  EXPECT_EQ(nbd_get_request_block_size(h), 1);
  EXPECT_EQ(nbd_get_full_info(h), 0);
  ASSERT_EQ(nbd_set_request_block_size(h, false), 0) << nbd_get_error();
  ASSERT_EQ(nbd_set_full_info(h, true), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_request_block_size(h), 0);
  EXPECT_EQ(nbd_get_full_info(h), 1);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_request_block_size(h), 0);
  EXPECT_EQ(nbd_get_full_info(h), 1);
  EXPECT_EQ(take(nbd_get_export_description(h)), "wire disk");
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM), 0);  // memory sends no constraints
  EXPECT_EQ(nbd_set_full_info(h, false), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_full_info: invalid state: READY"));
  EXPECT_EQ(nbd_set_request_block_size(h, true), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_request_block_size: invalid state: READY"));
}

// nbdkit's blocksize-policy with only a minimum sends (512, 4096, 0xffffffff): no maximum.
TEST(WireSettings, RequestedBlockSizeWithoutMaximum) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"--filter=blocksize-policy", "memory", "1M", "blocksize-minimum=512"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_get_request_block_size(h), 1);
  // A maximum of 0xffffffff means "no maximum" (proto.md), not a contradiction with 512.
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM), 512);
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_PREFERRED), 4096);
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM), 4294967295);
  round_trip(h, 0, 4096, 10);
}

// ---------------------------------------------------------------- connection_state

TEST(WireSettings, ConnectionStateInEachState) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "16M"});
  ASSERT_TRUE(srv);
  Handle h;
  EXPECT_TRUE(is_state_summary(nbd_connection_state(h)));
  EXPECT_EQ(state_name(h), "START");
  ASSERT_EQ(nbd_aio_connect_unix(h, srv->unix_socket().c_str()), 0) << nbd_get_error();
  if (nbd_aio_is_connecting(h) == 1) {  // libnbd: "CONNECT.START: ..."; the name is not part of the ABI
    EXPECT_TRUE(is_state_summary(nbd_connection_state(h)));
    EXPECT_NE(state_name(h), "READY");
  }
  ASSERT_TRUE(poll_until(h, [&] { return nbd_aio_is_connecting(h) == 0; })) << nbd_get_error();
  EXPECT_TRUE(is_state_summary(nbd_connection_state(h)));
  EXPECT_EQ(state_name(h), "READY");

  // A write the stopped server cannot take in: the handle is in the middle of sending it.
  {
    Resume resume{srv->pid()};
    ASSERT_TRUE(stop_child(srv->pid()));
    std::vector<char> big(8 << 20, 'w');
    const int64_t w = nbd_aio_pwrite(h, big.data(), big.size(), 0, NBD_NULL_COMPLETION, 0);
    ASSERT_GT(w, 0) << nbd_get_error();
    EXPECT_TRUE(is_state_summary(nbd_connection_state(h)));
    const std::string name = state_name(h);  // libnbd: "ISSUE_COMMAND.SEND_WRITE_PAYLOAD"
    EXPECT_TRUE(name != "READY" && name != "CLOSED" && name != "DEAD") << name;
    kill(srv->pid(), SIGCONT);
    ASSERT_TRUE(poll_until(h, [&] { return nbd_aio_command_completed(h, w) != 0; })) << nbd_get_error();
  }
  EXPECT_EQ(state_name(h), "READY");
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  EXPECT_TRUE(is_state_summary(nbd_connection_state(h)));
  EXPECT_EQ(state_name(h), "CLOSED");

  Handle negotiating;
  ASSERT_EQ(nbd_set_opt_mode(negotiating, true), 0);
  ASSERT_EQ(nbd_connect_uri(negotiating, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_TRUE(is_state_summary(nbd_connection_state(negotiating)));
  EXPECT_EQ(state_name(negotiating), "NEGOTIATING");

  Handle dead;
  EXPECT_EQ(nbd_connect_unix(dead, (srv->dir() + "/nonexistent").c_str()), -1);
  EXPECT_TRUE(last_error_is(ENOENT, "nbd_connect_unix: connect: "));
  EXPECT_TRUE(is_state_summary(nbd_connection_state(dead)));
  EXPECT_EQ(state_name(dead), "DEAD");
}

// A command sent and not yet answered: the handle waits for the server in READY.
TEST(WireSettings, ConnectionStateReadyWhileAwaitingAReply) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  char buf[512];
  const int64_t c = nbd_aio_pread(h, buf, sizeof buf, 0, NBD_NULL_COMPLETION, 0);
  ASSERT_GT(c, 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_in_flight(h), 1);
  // READY while a sent command awaits its reply; processing is only mid-request or mid-reply.
  EXPECT_EQ(state_name(h), "READY");
  ASSERT_TRUE(poll_until(h, [&] { return nbd_aio_command_completed(h, c) != 0; })) << nbd_get_error();
  EXPECT_EQ(state_name(h), "READY");
}

// ---------------------------------------------------------------- library identity

TEST(WireSettings, LibraryIdentityOnAConnectedHandle) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  const char* package = nbd_get_package_name(h);
  ASSERT_NE(package, nullptr) << nbd_get_error();
  EXPECT_STREQ(package, "nbdpp");  // libnbd says "libnbd"
  const char* version = nbd_get_version(h);
  ASSERT_NE(version, nullptr) << nbd_get_error();
  EXPECT_EQ(std::string(version).rfind("1.24.0+nbdpp.", 0), 0u) << version;
  const int tls = nbd_supports_tls(h);
  EXPECT_TRUE(tls == 0 || tls == 1) << tls;
  EXPECT_EQ(nbd_supports_uri(h), 1);  // nbd_connect_uri just worked
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  EXPECT_STREQ(nbd_get_package_name(h), package);  // any state
  EXPECT_STREQ(nbd_get_version(h), version);
}

}  // namespace
