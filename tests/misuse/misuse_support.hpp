// misuse_support.hpp: what the misuse suite's files share: questions about the call table,
// the servers, handles brought into each state, and the checks of a refused call.
//
// The suite misuses every call of api.yaml the ways its generated entry point checks (a NULL
// handle, NULL pointers and callbacks, unknown flags, bad enum values, each state it does not
// permit), and runs every closure-taking call on each path a closure can take (success, the
// server failing the request, the server killed with it in flight, nbd_close with it pending).
// The calls come from misuse_calls.hpp, generated from api.yaml at build time, so a call added
// there is misused without being listed; the closure paths are written per kind of call
// (closure_scenarios.hpp), and a closure-taking call without them fails ClosurePaths until
// they are.
//
// These tests pass NULL on purpose: every file of the suite includes this header first, which
// drops libnbd.h's nonnull attributes so that the compiler (and UBSan) let the library's own
// checks answer.
#pragma once
#define LIBNBD_ATTRIBUTE_NONNULL(...)

#include <gtest/gtest.h>
#include <libnbd.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "common/servers.hpp"
#include "misuse/misuse_calls.hpp"

namespace misuse {

// ---------------------------------------------------------------- the model

// The index of call c's argument called name, -1 if it has none.
int arg_index(const CallInfo& c, const std::string& name);
std::vector<size_t> closure_indexes(const CallInfo& c);
bool permits(const CallInfo& c, const std::string& state);

// ---------------------------------------------------------------- servers

// nbdkit memory 1M, shared by the tests of this process (each ctest is a process of its own),
// started on first use from the test's thread and stopped after the last test.
const nbd_test::Server* shared_server();
// Calls that need extended headers (the filtered block status, NBD_OPT_EXTENDED_HEADERS
// accepted), which only tests/extserver's nbd_ext_server speaks: it serves them 1 MiB too, with
// the block status payload form.
bool needs_extended(const CallInfo& c);
std::vector<std::string> ext_server_args(std::vector<std::string> more = {});
// The shared server a call's success runs against, and a server of its own to stop or kill.
const nbd_test::Server* shared_server_for(const CallInfo& c);
std::unique_ptr<nbd_test::Server> own_server_for(const CallInfo& c);

// The errno each call's request fails with on the failing server (what the plugin says,
// passed through by nbdkit and the library).  nbdkit sends EOVERFLOW only for reads with
// NBD_CMD_FLAG_DF and turns it into EINVAL for block status.
const std::map<std::string, int>& failing_errnos();

// nbdkit running a sh plugin that fails, with a different errno per request type, every data
// request at offset 0 (flush, which has no offset, always), refuses NBD_OPT_LIST, and refuses
// the export named "refuse"; other requests succeed (reads return zeroes), so a handle can show
// it is still usable after a failure.
struct FailingServer {
  std::unique_ptr<nbd_test::TmpDir> dir;
  std::unique_ptr<nbd_test::Server> server;
};
FailingServer start_failing_server();

// ---------------------------------------------------------------- handles in each state

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// A handle brought into one of api.yaml's states, with what keeps it there.
struct StateHandle {
  std::string state;
  nbd_handle* h = nullptr;
  std::unique_ptr<nbd_test::TmpDir> dir;  // connecting: the listener's socket lives here
  Fd listener;                            // connecting: listens, never accepts, never greets
  ~StateHandle() { nbd_close(h); }
};

// The handle in that state, or nullptr after a failure was added.  "connected" and
// "negotiating" talk to the shared server; "connecting" waits forever for a greeting from a
// socket that never accepts; "closed" has shut down; "dead" lost its socket in the handshake.
std::unique_ptr<StateHandle> handle_in(const std::string& state);

// After a failed call the handle is as it was: still in its state, and a handle that can reach
// the server still reads and writes (created: connects first; negotiating: nbd_opt_go first).
void expect_usable(StateHandle& sh);

// ---------------------------------------------------------------- checks of a refused call

// Makes the call, keeping the errno it left.
Outcome invoke(const CallInfo& c, nbd_handle* h, Args& a, int& saved_errno);

// Every closure the call was given was freed exactly once and never called.
::testing::AssertionResult closures_freed_unused(const CallInfo& c, const Args& a);

// Makes the call with the arguments as spoiled in a and expects it refused: err and message
// (plus the errno's text), in errno and nbd_get_errno, every closure freed without being called.
void expect_refused(const CallInfo& c, nbd_handle* h, Args& a, int err, const std::string& message);

// ---------------------------------------------------------------- the generic cases

struct Case {
  const CallInfo* call = nullptr;
  size_t arg = 0;     // the spoiled argument (arg cases only)
  std::string state;  // the state the call is made in
  std::string label;  // the test's name
};

void PrintTo(const Case& c, std::ostream* os);

std::string case_name(const ::testing::TestParamInfo<Case>& info);

// Whether the entry point refuses a NULL for the argument: pointers and required closures.
bool null_checked(const ArgInfo& a);

// Every call with a handle that can report an error.
std::vector<Case> null_handle_cases();
// Every argument pick chooses, in a state its call permits (arg_state).
std::vector<Case> arg_cases(bool (*pick)(const ArgInfo&));
// Every call in each state it does not permit.
std::vector<Case> wrong_state_cases();

// The argument and state checks run each case on a handle brought to the case's state: p is
// the case, c its call, sh the handle (skipped without nbdkit).
class InState : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    NBD_TEST_REQUIRE_PROGRAM("nbdkit");
    sh = handle_in(p.state);
    ASSERT_TRUE(sh);
  }

  const Case& p = GetParam();
  const CallInfo& c = *p.call;
  std::unique_ptr<StateHandle> sh;
};

}  // namespace misuse
