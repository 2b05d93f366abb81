// aio_command_scenarios.cpp: the closure paths of the aio commands (aio_pread, aio_block_status,
// ...): success, the server failing the request, the server killed, nbd_close in flight.
#include "misuse/closure_scenarios.hpp"

#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/io_helpers.hpp"

namespace misuse {

using nbd_test::poll_until;
using nbd_test::Server;

namespace {

// What an aio command's success looks like in the data: set up the export before, check it
// after (and how many times its chunk or extent callback runs: one 512-byte range of nbdkit
// memory is one data chunk, one extent).
struct CommandEffect {
  std::function<void(nbd_handle*, Args&, uint64_t)> before;
  std::function<void(nbd_handle*, Args&, uint64_t)> after;
  int other_calls;
};

void expect_content(nbd_handle* h, uint64_t off, const std::vector<char>& want) {
  std::vector<char> back(want.size());
  ASSERT_EQ(nbd_pread(h, back.data(), back.size(), off, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, want);
}

const std::map<std::string, CommandEffect>& command_effects() {
  auto read_back = [](nbd_handle*, Args& a, uint64_t) {
    EXPECT_EQ(std::vector<char>(a.buffer(), a.buffer() + Args::kBufferSize), pattern(7));
  };
  auto fill = [](nbd_handle* h, Args&, uint64_t off) { write_pattern(h, off, 7); };
  auto zeroes = [](nbd_handle* h, Args&, uint64_t off) {
    expect_content(h, off, std::vector<char>(Args::kBufferSize, 0));
  };
  auto nothing = [](nbd_handle*, Args&, uint64_t) {};
  static const std::map<std::string, CommandEffect> m = {
      {"aio_pread", {fill, read_back, 0}},
      {"aio_pread_structured", {fill, read_back, 1}},
      {"aio_pwrite",
       {[](nbd_handle*, Args& a, uint64_t) {
          auto p = pattern(8);
          std::memcpy(a.buffer(), p.data(), p.size());
        },
        [](nbd_handle* h, Args&, uint64_t off) { expect_content(h, off, pattern(8)); }, 0}},
      {"aio_zero", {fill, zeroes, 0}},
      {"aio_trim", {fill, zeroes, 0}},
      {"aio_flush", {nothing, nothing, 0}},
      {"aio_cache", {nothing, nothing, 0}},
      {"aio_block_status", {nothing, nothing, 1}},
      {"aio_block_status_64", {nothing, nothing, 1}},
      {"aio_block_status_filter", {nothing, nothing, 1}},
  };
  return m;
}

// A command whose completion returned 0 has completed but is not retired: libnbd 1.14 keeps
// every closure of it until nbd_aio_command_completed retires it (design.md: .free runs when
// "the command retiring"), so user_data stays valid between the two.
// BUG(report): nbdpp frees the completion and chunk/extent closures as soon as the completion
// callback has run, before the command is retired.
::testing::AssertionResult kept_until_retired(const CallInfo& c, const Args& a) {
  for (size_t i : closure_indexes(c))
    if (a.tally(i).frees != 0)
      return ::testing::AssertionFailure() << c.args[i].name
                                           << " freed after completion, before the command was retired";
  return ::testing::AssertionSuccess();
}

}  // namespace

void aio_command_success(const CallInfo& c, bool check_retirement) {
  const Server* srv = shared_server_for(c);
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv, false);
  ASSERT_TRUE(conn);
  auto effect = command_effects().find(c.name);
  ASSERT_NE(effect, command_effects().end()) << "no expected effect for " << c.name;
  const uint64_t off = 65536;
  Args a(c);
  aim(c, a, off);
  effect->second.before(conn->h, a, off);
  int saved = 0;
  const Outcome o = invoke(c, conn->h, a, saved);
  ASSERT_FALSE(o.failed) << nbd_get_error();
  const int64_t cookie = std::stoll(o.value);
  ASSERT_GT(cookie, 0);
  const auto ci = static_cast<size_t>(completion_index(c));
  ASSERT_TRUE(poll_until(conn->h, [&] { return a.tally(ci).calls > 0; })) << nbd_get_error();
  EXPECT_EQ(a.tally(ci).error, 0);
  if (check_retirement) {
    EXPECT_TRUE(kept_until_retired(c, a));  // BUG(report): freed at completion
  }
  EXPECT_EQ(nbd_aio_command_completed(conn->h, cookie), 1) << nbd_get_error();
  EXPECT_EQ(a.tally(ci).calls, 1);
  EXPECT_EQ(a.tally(ci).frees, 1);
  for (size_t i : other_closures(c)) {
    EXPECT_EQ(a.tally(i).calls, effect->second.other_calls) << c.args[i].name;
    EXPECT_EQ(a.tally(i).frees, 1) << c.args[i].name;
  }
  effect->second.after(conn->h, a, off);
  EXPECT_EQ(nbd_aio_in_flight(conn->h), 0);
}

void aio_command_server_failure(const CallInfo& c, bool check_retirement) {
  const FailingFor f = failing_server_for(c);
  ASSERT_TRUE(f.server());
  auto conn = connect_to(f.server(), false);
  ASSERT_TRUE(conn);
  const int want = f.want;
  Args a(c);
  aim(c, a, 0);
  int saved = 0;
  const Outcome o = invoke(c, conn->h, a, saved);
  ASSERT_FALSE(o.failed) << nbd_get_error();
  const int64_t cookie = std::stoll(o.value);
  const Tally& done = a.tally(static_cast<size_t>(completion_index(c)));
  ASSERT_TRUE(poll_until(conn->h, [&] { return done.calls > 0; })) << nbd_get_error();
  if (check_retirement) {
    EXPECT_TRUE(kept_until_retired(c, a));  // BUG(report): freed at completion
  }
  EXPECT_EQ(nbd_aio_command_completed(conn->h, cookie), -1);
  EXPECT_TRUE(nbd_test::last_error_is(want, "nbd_aio_command_completed: ")) << nbd_get_error();
  expect_ended_once(c, a, want, 0);
  // Still connected and usable: the plugin serves reads away from offset 0.
  EXPECT_EQ(nbd_aio_is_ready(conn->h), 1);
  std::vector<char> buf(512, 'x');
  EXPECT_EQ(nbd_pread(conn->h, buf.data(), buf.size(), 4096, 0), 0) << nbd_get_error();
  EXPECT_EQ(buf, std::vector<char>(512, 0));
}

void aio_command_killed(const CallInfo& c, bool check_retirement) {
  auto srv = own_server_for(c);
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv.get(), false);
  ASSERT_TRUE(conn);
  Args a(c);
  aim(c, a, 0);
  int64_t cookie = 0;
  {
    ASSERT_TRUE(nbd_test::stop_child(srv->pid()));
    int saved = 0;
    const Outcome o = invoke(c, conn->h, a, saved);
    ASSERT_FALSE(o.failed) << nbd_get_error();
    cookie = std::stoll(o.value);
    srv->kill_now();
  }
  EXPECT_TRUE(poll_until(conn->h, [&] { return nbd_aio_is_dead(conn->h) == 1; })) << nbd_get_error();
  const Tally& done = a.tally(static_cast<size_t>(completion_index(c)));
  EXPECT_EQ(done.calls, 1);
  if (check_retirement) {
    EXPECT_TRUE(kept_until_retired(c, a));  // BUG(report): freed at completion
  }
  EXPECT_EQ(nbd_aio_command_completed(conn->h, cookie), -1);
  EXPECT_TRUE(nbd_test::last_error_is(ENOTCONN, "nbd_aio_command_completed: ")) << nbd_get_error();
  expect_ended_once(c, a, ENOTCONN, 0);
  EXPECT_EQ(nbd_aio_in_flight(conn->h), 0);
  EXPECT_EQ(done.calls, 1);  // not again
}

// nbd_close with the command in flight and its server stopped: the completion is not run (as
// in libnbd 1.14: closing abandons commands), and every closure is freed exactly once, by
// nbd_close.
void aio_in_flight_at_close(const CallInfo& c, bool opt_mode) {
  auto srv = own_server_for(c);
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv.get(), opt_mode);
  ASSERT_TRUE(conn);
  Args a(c);
  aim(c, a, 0);
  nbd_test::Resume resume{srv->pid()};
  ASSERT_TRUE(nbd_test::stop_child(srv->pid()));
  int saved = 0;
  const Outcome o = invoke(c, conn->h, a, saved);
  ASSERT_FALSE(o.failed) << nbd_get_error();
  for (size_t i : closure_indexes(c)) EXPECT_EQ(a.tally(i).frees, 0);
  conn->close_now();
  const Tally& done = a.tally(static_cast<size_t>(completion_index(c)));
  EXPECT_EQ(done.calls, 0);
  for (size_t i : closure_indexes(c)) EXPECT_EQ(a.tally(i).frees, 1) << c.args[i].name;
  for (size_t i : other_closures(c)) EXPECT_EQ(a.tally(i).calls, 0);
}

}  // namespace misuse
