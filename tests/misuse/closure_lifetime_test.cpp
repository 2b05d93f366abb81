// closure_lifetime_test.cpp: when the closures of aio calls are freed: at retirement, when given
// with only .free, and when the core refuses the request before queueing it.
#include "misuse/closure_scenarios.hpp"

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/io_helpers.hpp"

namespace misuse {
namespace {

using nbd_test::Server;

constexpr uint64_t kExportSize = 1 << 20;  // every nbdkit here serves 1 MiB

// Every aio command keeps its closures until it is retired, after success, after the server
// failed it and after the connection died under it.
// BUG(report): nbdpp frees them as soon as the completion callback has run; libnbd 1.14 keeps
// them until nbd_aio_command_completed, so user_data stays valid until the caller retires the
// command.  Reproduce: aio_pread with a completion returning 0 and a counting .free, nbd_poll
// until the completion ran: .free has run (libnbd: not yet; it runs inside
// nbd_aio_command_completed).
class FreedAtRetirement : public ::testing::TestWithParam<Case> {};

TEST_P(FreedAtRetirement, AfterSuccessFailureAndDeath) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  const CallInfo& c = *GetParam().call;
  {
    SCOPED_TRACE("success");
    aio_command_success(c, true);
  }
  {
    SCOPED_TRACE("server failure");
    aio_command_server_failure(c, true);
  }
  {
    SCOPED_TRACE("server killed");
    aio_command_killed(c, true);
  }
}

std::vector<Case> aio_command_cases() {
  std::vector<Case> out;
  for (const CallInfo& c : model_calls())
    if (is_aio_command(c) && !c.pending) out.push_back({&c, 0, "connected", c.name});  // Pending path
  return out;
}

INSTANTIATE_TEST_SUITE_P(Calls, FreedAtRetirement, ::testing::ValuesIn(aio_command_cases()), case_name);

// An optional completion given with only .free (NULL callback) is valid: the command or option
// runs to its end and the closure is freed once, never called.  Every call with an optional
// closure, from the model.
class FreeOnlyCompletion : public ::testing::TestWithParam<Case> {};

TEST_P(FreeOnlyCompletion, FreedOnceNeverCalled) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  const CallInfo& c = *GetParam().call;
  const bool option = is_aio_option(c);
  ASSERT_TRUE(option || is_aio_command(c)) << c.c_name() << ": an optional closure on a call of a new kind";
  const Server* srv = shared_server_for(c);
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv, option);
  ASSERT_TRUE(conn);
  Args a(c);
  aim(c, a, 131072);
  const int ci = completion_index(c);
  ASSERT_GE(ci, 0);
  a.fault(static_cast<size_t>(ci), Fault::NullCallback);
  int saved = 0;
  const Outcome o = invoke(c, conn->h, a, saved);
  ASSERT_FALSE(o.failed) << nbd_get_error();
  if (option) {
    ASSERT_TRUE(wait_option(conn->h)) << nbd_get_error();
  } else {
    EXPECT_EQ(wait_command(conn->h, std::stoll(o.value)), 1) << nbd_get_error();
  }
  EXPECT_EQ(a.tally(ci).calls, 0);
  EXPECT_EQ(a.tally(ci).frees, 1);
  for (size_t i : other_closures(c)) EXPECT_EQ(a.tally(i).frees, 1);
}

std::vector<Case> optional_closure_cases() {
  std::vector<Case> out;
  for (const CallInfo& c : model_calls())
    for (const ArgInfo& a : c.args)
      if (a.kind == ArgKind::Closure && a.optional && !c.pending) {  // pending: ClosurePaths
        out.push_back({&c, 0, "", c.name});
        break;
      }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Calls, FreeOnlyCompletion, ::testing::ValuesIn(optional_closure_cases()), case_name);

// ---- immediate errors after the entry checks

// A request the core refuses before it is queued (past the end of the export, with the default
// strict mode): the call fails at once, its closures are freed, never called, and the handle
// still works.  Every closure-taking call with an offset, from the model.
class CoreRefuses : public ::testing::TestWithParam<Case> {};

TEST_P(CoreRefuses, ClosuresFreedUnused) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  const CallInfo& c = *GetParam().call;
  const Server* srv = shared_server_for(c);
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv, false);  // with base:allocation, for block status
  ASSERT_TRUE(conn);
  Args a(c);
  aim(c, a, kExportSize);
  int saved = 0;
  const Outcome o = invoke(c, conn->h, a, saved);
  // As libnbd 1.14: ENOSPC for requests that would write past the end, EINVAL for the rest.
  const bool writes = c.name.find("pwrite") != std::string::npos || c.name.find("trim") != std::string::npos ||
                      c.name.find("zero") != std::string::npos;
  const int want = writes ? ENOSPC : EINVAL;
  EXPECT_TRUE(o.failed);
  EXPECT_EQ(saved, want);
  EXPECT_TRUE(nbd_test::last_error_is(want, c.c_name() + ": request out of bounds")) << nbd_get_error();
  EXPECT_TRUE(closures_freed_unused(c, a));
  EXPECT_EQ(nbd_aio_is_ready(conn->h), 1);
  nbd_test::round_trip(conn->h, 4096, 4096, 21);
}

std::vector<Case> core_refuses_cases() {
  std::vector<Case> out;
  for (const CallInfo& c : model_calls())
    if (!closure_indexes(c).empty() && arg_index(c, "offset") >= 0 && permits(c, "connected") && !c.states.empty() &&
        !c.pending)
      out.push_back({&c, 0, "connected", c.name});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Calls, CoreRefuses, ::testing::ValuesIn(core_refuses_cases()), case_name);

}  // namespace
}  // namespace misuse
