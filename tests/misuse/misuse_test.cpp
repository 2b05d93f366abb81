// misuse_test.cpp: every call of api.yaml misused the ways its generated entry point checks (a
// NULL handle, NULL pointers and callbacks, unknown flags, bad enum values, each state it does
// not permit), and every closure-taking call on each path a closure can take (success, the
// server failing the request, the server killed with it in flight, nbd_close with it pending).
// The calls come from misuse_calls.hpp, generated from api.yaml at build time, so a call added
// there is misused here without being listed; the closure paths are written per call, and a
// closure-taking call without them fails ClosurePaths until they are.
//
// These tests pass NULL on purpose: drop the header's nonnull attributes so the compiler (and
// UBSan) let the library's own checks answer.
#define LIBNBD_ATTRIBUTE_NONNULL(...)

#include <libnbd.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/io_helpers.hpp"
#include "common/servers.hpp"
#include "misuse/misuse_calls.hpp"

namespace {

using misuse::Args;
using misuse::ArgInfo;
using misuse::ArgKind;
using misuse::CallInfo;
using misuse::Fault;
using misuse::HandleKind;
using misuse::Outcome;
using misuse::Tally;
using nbd_test::poll_until;
using nbd_test::Server;
using nbd_test::start_nbdkit;
using nbd_test::TmpDir;

constexpr uint64_t kExportSize = 1 << 20;  // every nbdkit here serves 1 MiB

// ---------------------------------------------------------------- the model

int arg_index(const CallInfo& c, const std::string& name) {
  for (size_t i = 0; i < c.args.size(); ++i)
    if (c.args[i].name == name) return static_cast<int>(i);
  return -1;
}

std::vector<size_t> closure_indexes(const CallInfo& c) {
  std::vector<size_t> out;
  for (size_t i = 0; i < c.args.size(); ++i)
    if (c.args[i].kind == ArgKind::Closure) out.push_back(i);
  return out;
}

bool permits(const CallInfo& c, const std::string& state) {
  return c.states.empty() || std::find(c.states.begin(), c.states.end(), state) != c.states.end();
}

// "negotiating, or connected with the server": the words of the generated state error.
std::string state_words(const CallInfo& c) {
  std::string out;
  for (const std::string& s : c.states) {
    for (const misuse::StateInfo& st : misuse::model_states())
      if (st.name == s) out += (out.empty() ? "" : ", or ") + st.words;
  }
  return out;
}

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// ---------------------------------------------------------------- servers

// nbdkit memory 1M, shared by the tests of this process (each ctest is a process of its own),
// started on first use from the test's thread and stopped after the last test.
std::unique_ptr<Server>& shared_slot() {
  static std::unique_ptr<Server> server;
  return server;
}
// nbd_ext_server's, for the calls that need extended headers (shared_server_for).
std::unique_ptr<Server>& shared_ext_slot() {
  static std::unique_ptr<Server> server;
  return server;
}

class SharedServerReaper : public ::testing::Environment {
 public:
  void TearDown() override {
    shared_slot().reset();
    shared_ext_slot().reset();
  }
};
[[maybe_unused]] ::testing::Environment* const kReaper =
    ::testing::AddGlobalTestEnvironment(new SharedServerReaper);

const Server* shared_server() {
  auto& slot = shared_slot();
  if (!slot) slot = start_nbdkit({"memory", "1M"});
  return slot.get();
}

// Calls that need extended headers (the filtered block status, NBD_OPT_EXTENDED_HEADERS
// accepted), which only tests/extserver's nbd_ext_server speaks: it serves them 1 MiB too, with
// the block status payload form.
bool needs_extended(const CallInfo& c) {
  return c.name.find("block_status_filter") != std::string::npos || c.name == "aio_opt_extended_headers";
}
std::vector<std::string> ext_server_args(std::vector<std::string> more = {}) {
  std::vector<std::string> args{"--block-status-payload", "--size", "1M"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}
// The shared server a call's success runs against, and a server of its own to stop or kill.
const Server* shared_server_for(const CallInfo& c) {
  if (!needs_extended(c))
    return shared_server();
  auto& slot = shared_ext_slot();
  if (!slot) slot = nbd_test::start_ext_server(ext_server_args());
  return slot.get();
}
std::unique_ptr<Server> own_server_for(const CallInfo& c) {
  return needs_extended(c) ? nbd_test::start_ext_server(ext_server_args()) : start_nbdkit({"memory", "1M"});
}

// A sh plugin that fails, with a different errno per request type, every data request at
// offset 0 (flush, which has no offset, always), refuses NBD_OPT_LIST, and refuses the export
// named "refuse"; other requests succeed (reads return zeroes), so a handle can show it is
// still usable after a failure.
constexpr const char* kFailingPlugin = R"(#!/bin/sh
# failing.sh: nbdkit sh plugin written by the misuse test.
case "$1" in
  get_size) echo 1M ;;
  can_write|can_flush|can_trim|can_zero|can_extents|can_fast_zero) exit 0 ;;
  can_multi_conn) exit 3 ;;
  can_cache|can_fua) echo native ;;
  open)
    if [ "$3" = refuse ]; then echo "EACCES export refused by the misuse test" >&2; exit 1; fi
    echo handle ;;
  list_exports) echo "EINVAL listing refused by the misuse test" >&2; exit 1 ;;
  pread)
    if [ "$4" -eq 0 ]; then echo "EIO read refused by the misuse test" >&2; exit 1; fi
    head -c "$3" /dev/zero ;;
  pwrite)
    cat >/dev/null
    if [ "$4" -eq 0 ]; then echo "ENOSPC write refused by the misuse test" >&2; exit 1; fi ;;
  flush) echo "ESHUTDOWN flush refused by the misuse test" >&2; exit 1 ;;
  trim) if [ "$4" -eq 0 ]; then echo "EPERM trim refused by the misuse test" >&2; exit 1; fi ;;
  zero) if [ "$4" -eq 0 ]; then echo "EINVAL zero refused by the misuse test" >&2; exit 1; fi ;;
  cache) if [ "$4" -eq 0 ]; then echo "ENOMEM cache refused by the misuse test" >&2; exit 1; fi ;;
  extents)
    if [ "$4" -eq 0 ]; then echo "EOVERFLOW extents refused by the misuse test" >&2; exit 1; fi
    echo "$4 $3 0" ;;
  *) exit 2 ;;
esac
)";

// The errno each call's request fails with on the failing server (what the plugin says,
// passed through by nbdkit and the library).  nbdkit sends EOVERFLOW only for reads with
// NBD_CMD_FLAG_DF and turns it into EINVAL for block status.
const std::map<std::string, int>& failing_errnos() {
  static const std::map<std::string, int> m = {
      {"pread", EIO},      {"pread_structured", EIO}, {"pwrite", ENOSPC}, {"flush", ESHUTDOWN},
      {"trim", EPERM},     {"zero", EINVAL},          {"cache", ENOMEM},  {"block_status", EINVAL},
      {"block_status_64", EINVAL},
  };
  return m;
}

struct FailingServer {
  std::unique_ptr<TmpDir> dir;
  std::unique_ptr<Server> server;
};

FailingServer start_failing_server() {
  FailingServer f;
  f.dir = std::make_unique<TmpDir>();
  const std::string script = f.dir->path() + "/failing.sh";
  {
    std::ofstream out(script);
    out << kFailingPlugin;
  }
  if (chmod(script.c_str(), 0755) != 0) {
    ADD_FAILURE() << "chmod " << script << ": " << std::strerror(errno);
    return f;
  }
  f.server = start_nbdkit({"sh", script});
  return f;
}

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
  std::unique_ptr<TmpDir> dir;  // connecting: the listener's socket lives here
  Fd listener;                  // connecting: listens, never accepts, never greets
  ~StateHandle() { nbd_close(h); }
};

bool in_state(nbd_handle* h, const std::string& state) {
  if (state == "created") return nbd_aio_is_created(h) == 1;
  if (state == "connecting") return nbd_aio_is_connecting(h) == 1;
  if (state == "negotiating") return nbd_aio_is_negotiating(h) == 1;
  if (state == "connected") return nbd_aio_is_ready(h) == 1 || nbd_aio_is_processing(h) == 1;
  if (state == "closed") return nbd_aio_is_closed(h) == 1;
  if (state == "dead") return nbd_aio_is_dead(h) == 1;
  return false;
}

// The handle in that state, or nullptr after a failure was added.  "connected" and
// "negotiating" talk to the shared server; "connecting" waits forever for a greeting from a
// socket that never accepts; "closed" has shut down; "dead" lost its socket in the handshake.
std::unique_ptr<StateHandle> handle_in(const std::string& state) {
  auto sh = std::make_unique<StateHandle>();
  sh->state = state;
  sh->h = nbd_create();
  if (sh->h == nullptr) {
    ADD_FAILURE() << "nbd_create: " << nbd_get_error();
    return nullptr;
  }
  const bool needs_server = state == "negotiating" || state == "connected" || state == "closed";
  const Server* srv = needs_server ? shared_server() : nullptr;
  if (needs_server && srv == nullptr) return nullptr;
  int r = 0;
  if (state == "connecting") {
    sh->dir = std::make_unique<TmpDir>();
    const std::string path = sh->dir->path() + "/listener.sock";
    sh->listener.fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    if (sh->listener.fd < 0 || ::bind(sh->listener.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        ::listen(sh->listener.fd, 8) != 0) {
      ADD_FAILURE() << "listener: " << std::strerror(errno);
      return nullptr;
    }
    r = nbd_aio_connect_unix(sh->h, path.c_str());
  } else if (state == "negotiating") {
    r = nbd_set_opt_mode(sh->h, true);
    if (r == 0) r = nbd_connect_uri(sh->h, srv->uri().c_str());
  } else if (state == "connected") {
    r = nbd_connect_uri(sh->h, srv->uri().c_str());
  } else if (state == "closed") {
    r = nbd_connect_uri(sh->h, srv->uri().c_str());
    if (r == 0) r = nbd_shutdown(sh->h, 0);
  } else if (state == "dead") {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      ADD_FAILURE() << "socketpair: " << std::strerror(errno);
      return nullptr;
    }
    ::close(sv[1]);  // the "server" hangs up before its greeting
    if (nbd_connect_socket(sh->h, sv[0]) != -1) ADD_FAILURE() << "connected to a closed socket";
  } else if (state != "created") {
    ADD_FAILURE() << "api.yaml state " << state << " is unknown to this test: teach handle_in() to reach it";
    return nullptr;
  }
  if (r != 0) {
    ADD_FAILURE() << "bringing a handle to " << state << ": " << nbd_get_error();
    return nullptr;
  }
  if (!in_state(sh->h, state)) {
    ADD_FAILURE() << "handle meant to be " << state << " is " << nbd_connection_state(sh->h);
    return nullptr;
  }
  return sh;
}

// The state name the library reports ("READY" of "READY: connected, ...").
std::string state_name(nbd_handle* h) {
  const char* s = nbd_connection_state(h);
  if (s == nullptr) return "?";
  const std::string full = s;
  return full.substr(0, full.find(':'));
}

// After a failed call the handle is as it was: still in its state, and a handle that can reach
// the server still reads and writes (created: connects first; negotiating: nbd_opt_go first).
void expect_usable(StateHandle& sh) {
  ASSERT_TRUE(in_state(sh.h, sh.state)) << "a failed call moved the handle from " << sh.state << " to "
                                        << nbd_connection_state(sh.h);
  static unsigned seed = 1;
  if (sh.state == "created") {
    ASSERT_EQ(nbd_connect_uri(sh.h, shared_server()->uri().c_str()), 0) << nbd_get_error();
  } else if (sh.state == "negotiating") {
    ASSERT_EQ(nbd_opt_go(sh.h), 0) << nbd_get_error();
  } else if (sh.state != "connected") {
    return;
  }
  nbd_test::round_trip(sh.h, (seed % 64) * 4096, 4096, seed);
  ++seed;
}

// The call failed with exactly this errno (in errno and nbd_get_errno) and message (plus the
// errno's text).
::testing::AssertionResult failed_with(const CallInfo& c, const Outcome& o, int saved_errno, int want_errno,
                                       const std::string& want_message) {
  if (!c.can_report_failure())
    return ::testing::AssertionFailure() << c.c_name() << " cannot report failure, yet a misuse test ran it";
  if (!o.failed) return ::testing::AssertionFailure() << c.c_name() << " succeeded, returning " << o.value;
  if (saved_errno != want_errno)
    return ::testing::AssertionFailure() << "errno " << saved_errno << " (" << std::strerror(saved_errno)
                                         << ") != " << want_errno << " (" << std::strerror(want_errno) << ")";
  if (nbd_get_errno() != want_errno)
    return ::testing::AssertionFailure() << "nbd_get_errno " << nbd_get_errno() << " != " << want_errno;
  // The library appends the errno's text, as libnbd does.
  const std::string want = want_message + ": " + std::strerror(want_errno);
  const char* msg = nbd_get_error();
  if (msg == nullptr || want != msg)
    return ::testing::AssertionFailure() << "message \"" << (msg ? msg : "(null)") << "\" != \"" << want << "\"";
  return ::testing::AssertionSuccess();
}

// Every closure the call was given was freed exactly once and never called.
::testing::AssertionResult closures_freed_unused(const CallInfo& c, const Args& a) {
  for (size_t i : closure_indexes(c)) {
    const Tally& t = a.tally(i);
    const int want_frees = a.null_closure(i) ? 0 : 1;
    if (t.calls != 0 || t.frees != want_frees)
      return ::testing::AssertionFailure() << c.args[i].name << ": " << t.calls << " calls (want 0), "
                                           << t.frees << " frees (want " << want_frees << ")";
  }
  return ::testing::AssertionSuccess();
}

Outcome invoke(const CallInfo& c, nbd_handle* h, Args& a, int& saved_errno) {
  errno = 0;
  Outcome o = c.invoke(h, a);
  saved_errno = errno;
  return o;
}

// Makes the call with the arguments as spoiled in a and expects it refused: err and message,
// every closure freed without being called.
void expect_refused(const CallInfo& c, nbd_handle* h, Args& a, int err, const std::string& message) {
  int saved = 0;
  const Outcome o = invoke(c, h, a, saved);
  EXPECT_TRUE(failed_with(c, o, saved, err, message));
  EXPECT_TRUE(closures_freed_unused(c, a));
}

// ---------------------------------------------------------------- the generic cases

struct Case {
  const CallInfo* call = nullptr;
  size_t arg = 0;     // the spoiled argument (arg cases only)
  std::string state;  // the state the call is made in
  std::string label;  // the test's name
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.label; }

std::string case_name(const ::testing::TestParamInfo<Case>& info) { return info.param.label; }

// The state the argument checks are tried in: one the call permits, preferring those in which
// the handle can show afterwards that it still works.
std::string arg_state(const CallInfo& c) {
  for (const char* s : {"connected", "negotiating", "created", "connecting", "closed", "dead"})
    if (permits(c, s)) return s;
  return "connected";
}

bool null_checked(const ArgInfo& a) { return a.pointer || (a.kind == ArgKind::Closure && !a.optional); }

std::vector<Case> null_handle_cases() {
  std::vector<Case> out;
  for (const CallInfo& c : misuse::model_calls())
    if (c.handle == HandleKind::Required && c.may_fail) out.push_back({&c, 0, "", c.name});
  return out;
}

std::vector<Case> arg_cases(bool (*pick)(const ArgInfo&)) {
  std::vector<Case> out;
  for (const CallInfo& c : misuse::model_calls())
    for (size_t i = 0; i < c.args.size(); ++i)
      if (pick(c.args[i])) out.push_back({&c, i, arg_state(c), c.name + "_" + c.args[i].name});
  return out;
}

std::vector<Case> wrong_state_cases() {
  std::vector<Case> out;
  for (const CallInfo& c : misuse::model_calls()) {
    if (c.states.empty()) continue;
    for (const misuse::StateInfo& s : misuse::model_states())
      if (!permits(c, s.name)) out.push_back({&c, 0, s.name, c.name + "_" + s.name});
  }
  return out;
}

// A NULL handle: EFAULT from every call that can report an error (the others dereference it,
// as in libnbd, and are not tried), and the closures it was given freed, never called.
class NullHandle : public ::testing::TestWithParam<Case> {};

TEST_P(NullHandle, IsEfault) {
  const CallInfo& c = *GetParam().call;
  Args a(c);
  expect_refused(c, nullptr, a, EFAULT, c.c_name() + ": handle cannot be NULL");
}

INSTANTIATE_TEST_SUITE_P(Calls, NullHandle, ::testing::ValuesIn(null_handle_cases()), case_name);

// nbd_close(NULL) does nothing (the one call whose handle may be NULL).
TEST(NullableHandle, AcceptsNull) {
  int n = 0;
  for (const CallInfo& c : misuse::model_calls()) {
    if (c.handle != HandleKind::Nullable) continue;
    Args a(c);
    int saved = 0;
    const Outcome o = invoke(c, nullptr, a, saved);
    EXPECT_FALSE(o.failed) << c.c_name() << ": " << nbd_get_error();
    ++n;
  }
  EXPECT_GE(n, 1);
}

// The argument and state checks below run each case on a handle brought to the case's state:
// p is the case, c its call, sh the handle (skipped without nbdkit).
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

// A NULL pointer argument, or a required closure with neither callback nor free (as in
// libnbd: one with only .free set is valid, except for kinds that need the callback, such as
// the concurrent writer, where that is refused too): EFAULT "nbd_CALL: ARG cannot be NULL" in
// a state the call permits, closures freed and not called, the handle unchanged and still
// usable.
class NullArg : public InState {};

TEST_P(NullArg, IsEfault) {
  const ArgInfo& arg = c.args[p.arg];
  Args a(c);
  a.fault(p.arg, arg.kind == ArgKind::Closure && arg.needs_callback ? Fault::NullCallback : Fault::Null);
  expect_refused(c, sh->h, a, EFAULT, c.c_name() + ": " + arg.name + " cannot be NULL");
  expect_usable(*sh);
}

INSTANTIATE_TEST_SUITE_P(Calls, NullArg, ::testing::ValuesIn(arg_cases(null_checked)), case_name);

// An enum argument outside its set: EINVAL "nbd_CALL: ARG: invalid value for parameter: N".
class BadEnum : public InState {};

TEST_P(BadEnum, IsEinval) {
  const ArgInfo& arg = c.args[p.arg];
  const auto [lo, hi] = std::minmax_element(arg.values.begin(), arg.values.end());
  for (int64_t v : {*hi + 1, *lo - 1, int64_t{INT_MAX}, int64_t{INT_MIN}}) {
    SCOPED_TRACE("value " + std::to_string(v));
    Args a(c);
    a.fault(p.arg, Fault::Value, v);
    expect_refused(c, sh->h, a, EINVAL,
                   c.c_name() + ": " + arg.name + ": invalid value for parameter: " + std::to_string(v));
  }
  expect_usable(*sh);
}

INSTANTIATE_TEST_SUITE_P(Calls, BadEnum, ::testing::ValuesIn(arg_cases([](const ArgInfo& a) {
                           return a.kind == ArgKind::Enum;
                         })),
                         case_name);

// Flags outside the set (the lowest unknown bit, the top bit) and, for calls that accept only
// some of the set, each known bit they do not accept (with the default strict mode):
// EINVAL "nbd_CALL: ARG: invalid value for flag: 0xN".  With LIBNBD_STRICT_FLAGS off, bits
// beyond the protocol's 16 are still refused.
class BadFlags : public InState {};

TEST_P(BadFlags, IsEinval) {
  const ArgInfo& arg = c.args[p.arg];
  ASSERT_NE(nbd_get_strict_mode(sh->h) & LIBNBD_STRICT_FLAGS, 0u) << "the default strict mode checks flags";
  std::vector<uint32_t> bad;
  for (uint32_t bit = 1; bit != 0; bit <<= 1)
    if ((arg.mask & bit) == 0) {
      bad.push_back(bit);
      break;
    }
  ASSERT_EQ(arg.mask & 0x80000000U, 0u);
  bad.push_back(0x80000000U);
  if (arg.has_allowed)
    for (int64_t v : arg.values)
      if ((arg.allowed & static_cast<uint32_t>(v)) == 0) bad.push_back(static_cast<uint32_t>(v));
  auto refuse_flags = [&](uint32_t v) {
    SCOPED_TRACE("flags " + hex(v));
    Args a(c);
    a.fault(p.arg, Fault::Value, v);
    expect_refused(c, sh->h, a, EINVAL, c.c_name() + ": " + arg.name + ": invalid value for flag: " + hex(v));
  };
  for (uint32_t v : bad) refuse_flags(v);
  if (arg.has_allowed) {
    const uint32_t strict = nbd_get_strict_mode(sh->h);
    ASSERT_EQ(nbd_set_strict_mode(sh->h, strict & ~LIBNBD_STRICT_FLAGS), 0) << nbd_get_error();
    refuse_flags(0x80000000U);
    refuse_flags(0x10000U);
    ASSERT_EQ(nbd_set_strict_mode(sh->h, strict), 0) << nbd_get_error();
  }
  expect_usable(*sh);
}

INSTANTIATE_TEST_SUITE_P(Calls, BadFlags, ::testing::ValuesIn(arg_cases([](const ArgInfo& a) {
                           return a.kind == ArgKind::Flags;
                         })),
                         case_name);

// A call in a state it does not permit: ENOTCONN while the handle is newly created, otherwise
// EINVAL, with "nbd_CALL: invalid state: NAME: the handle must be WORDS" (the words of
// api.yaml's states); closures freed and not called; the handle unchanged and still usable.
class WrongState : public InState {};

TEST_P(WrongState, IsTheStateError) {
  const std::string name = state_name(sh->h);
  Args a(c);
  expect_refused(c, sh->h, a, p.state == "created" ? ENOTCONN : EINVAL,
                 c.c_name() + ": invalid state: " + name + ": the handle must be " + state_words(c));
  expect_usable(*sh);
}

INSTANTIATE_TEST_SUITE_P(Calls, WrongState, ::testing::ValuesIn(wrong_state_cases()), case_name);

// The generic cases rely on the validator's rule that a call which cannot report an error has
// nothing to check: no permitted states, no pointers, no enums, no flags.
TEST(Model, CallsThatCannotFailCheckNothing) {
  for (const CallInfo& c : misuse::model_calls()) {
    if (c.can_report_failure() && c.may_fail) continue;
    EXPECT_TRUE(c.states.empty()) << c.c_name();
    for (const ArgInfo& a : c.args)
      EXPECT_TRUE(!a.pointer && a.kind != ArgKind::Enum && a.kind != ArgKind::Flags &&
                  !(a.kind == ArgKind::Closure && !a.optional))
          << c.c_name() << " " << a.name;
  }
}

// Each generic case list is non-empty and names every call once per argument or state.
TEST(Model, TableIsComplete) {
  std::set<std::string> names;
  for (const CallInfo& c : misuse::model_calls()) EXPECT_TRUE(names.insert(c.name).second) << c.name;
  EXPECT_GE(names.size(), 126u);  // libnbd 1.14's calls, at least
  EXPECT_FALSE(null_handle_cases().empty());
  EXPECT_FALSE(arg_cases(null_checked).empty());
  EXPECT_FALSE(wrong_state_cases().empty());
}

// ---------------------------------------------------------------- closure paths

// Pending: the only path of a call still marked `status: pending` in api.yaml.
enum class Path { Success, ServerFailure, KilledInFlight, CloseInFlight, Pending };
const char* path_name(Path p) {
  switch (p) {
    case Path::Pending: return "Pending";
    case Path::Success: return "Success";
    case Path::ServerFailure: return "ServerFailure";
    case Path::KilledInFlight: return "KilledInFlight";
    case Path::CloseInFlight: return "CloseInFlight";
  }
  return "?";
}

// Polls until the handle has no option or command left in its connecting phase.
bool wait_option(nbd_handle* h) {
  return poll_until(h, [&] { return nbd_aio_is_connecting(h) == 0; });
}

// Polls until the command completed, retires it and returns nbd_aio_command_completed's answer
// (1 success, -1 failure with the error recorded), 0 if polling gave up.
int wait_command(nbd_handle* h, int64_t cookie) {
  int r = 0;
  poll_until(h, [&] { return (r = nbd_aio_command_completed(h, cookie)) != 0; });
  return r;
}

// Waits until thread tid sleeps in poll(2): the request is out, and the library is waiting
// for the reply.  Counted rounds, not time: false if it never gets there.
bool wait_blocked_in_poll(pid_t tid) {
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/syscall";
  for (long i = 0; i < 5'000'000; ++i) {
    std::ifstream in(path);
    long nr = -1;
    if (in >> nr && (nr == SYS_poll || nr == SYS_ppoll)) return true;
    sched_yield();
  }
  return false;
}

// A sync call run on another thread while the server is stopped, which is killed once the
// call waits for the reply.  The result and the error are that thread's.
//
// The killed-in-flight scenarios stop the server (SIGSTOP) so that nothing is answered, issue,
// then SIGKILL and reap it (Server::kill_now); they send no SIGCONT afterwards, as its pid is no
// longer ours.  If one fails before the kill, Server's destructor kills the stopped server.
struct BlockedCall {
  int result = 0;
  int err = 0;
  std::string message;
};

BlockedCall kill_while_blocked(Server& srv, const std::function<int()>& call) {
  BlockedCall out;
  std::atomic<pid_t> tid{0};
  EXPECT_TRUE(nbd_test::stop_child(srv.pid()));
  std::thread t([&] {
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    out.result = call();
    out.err = nbd_get_errno();
    out.message = nbd_get_error() != nullptr ? nbd_get_error() : "";
  });
  while (tid.load() == 0) sched_yield();
  EXPECT_TRUE(wait_blocked_in_poll(tid.load())) << "the call never waited for a reply";
  srv.kill_now();
  t.join();
  return out;
}

// A handle for the closure paths, closed when the scenario ends unless it closed it itself.
struct Conn {
  nbd_handle* h = nbd_create();
  ~Conn() { nbd_close(h); }
  void close_now() {
    nbd_close(h);
    h = nullptr;
  }
};

// Connected to srv, in opt mode if asked, with base:allocation requested so block status works;
// in opt mode, export_name (when given) replaces the URI's once connected.
std::unique_ptr<Conn> connect_to(const Server* srv, bool opt_mode, const char* export_name = nullptr) {
  auto c = std::make_unique<Conn>();
  if (c->h == nullptr || nbd_add_meta_context(c->h, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0 ||
      nbd_set_opt_mode(c->h, opt_mode) != 0 || nbd_connect_uri(c->h, srv->uri().c_str()) != 0 ||
      (export_name != nullptr && nbd_set_export_name(c->h, export_name) != 0)) {
    ADD_FAILURE() << "connect: " << nbd_get_error();
    return nullptr;
  }
  return c;
}

// The aio commands: the closure-taking calls that need a connected handle.  Their arguments are
// set for one 512-byte request at offset.
bool is_aio_command(const CallInfo& c) {
  return c.name.rfind("aio_", 0) == 0 && c.states == std::vector<std::string>{"connected"} &&
         !closure_indexes(c).empty();
}
bool is_aio_option(const CallInfo& c) {
  return c.name.rfind("aio_opt_", 0) == 0 && !closure_indexes(c).empty();
}

void aim(const CallInfo& c, Args& a, uint64_t offset) {
  if (int i = arg_index(c, "offset"); i >= 0) a.set_u64(static_cast<size_t>(i), offset);
  if (int i = arg_index(c, "count"); i >= 0) a.set_u64(static_cast<size_t>(i), Args::kBufferSize);
  // Meta context queries and block status filters name the one context connect_to requests.
  for (const char* name : {"queries", "contexts"})
    if (int i = arg_index(c, name); i >= 0) a.set_strv(static_cast<size_t>(i), {LIBNBD_CONTEXT_BASE_ALLOCATION});
}

int completion_index(const CallInfo& c) { return arg_index(c, "completion_callback"); }

// The closures other than the completion (chunk, extent, list, context).
std::vector<size_t> other_closures(const CallInfo& c) {
  std::vector<size_t> out;
  for (size_t i : closure_indexes(c))
    if (static_cast<int>(i) != completion_index(c)) out.push_back(i);
  return out;
}

std::vector<char> pattern(unsigned seed) { return nbd_test::random_bytes(Args::kBufferSize, seed); }

// ---- aio commands

// What an aio command's success looks like in the data: set up the export before, check it
// after (and how many times its chunk or extent callback runs: one 512-byte range of nbdkit
// memory is one data chunk, one extent).
struct CommandEffect {
  std::function<void(nbd_handle*, Args&, uint64_t)> before;
  std::function<void(nbd_handle*, Args&, uint64_t)> after;
  int other_calls;
};

void write_pattern(nbd_handle* h, uint64_t off, unsigned seed) {
  auto p = pattern(seed);
  ASSERT_EQ(nbd_pwrite(h, p.data(), p.size(), off, 0), 0) << nbd_get_error();
}
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

// check_retirement: also require the closures to be kept until the command is retired (the
// FreedAtRetirement tests; the closure paths only count calls and frees).
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

// A server that fails the call's request: the failing plugin, or for the calls that need
// extended headers nbd_ext_server sending block status with a wrong descriptor count (EPROTO).
struct FailingFor {
  FailingServer fs;
  std::unique_ptr<Server> ext;
  int want = 0;
  const Server* server() const { return ext ? ext.get() : fs.server.get(); }
};
FailingFor failing_server_for(const CallInfo& c) {
  FailingFor f;
  if (needs_extended(c)) {
    f.ext = nbd_test::start_ext_server(ext_server_args({"--bad=ext-block-status-count-mismatch"}));
    f.want = EPROTO;
    return f;
  }
  f.fs = start_failing_server();
  const std::string base = c.name.rfind("aio_", 0) == 0 ? c.name.substr(4) : c.name;  // aio_pread -> pread
  if (failing_errnos().count(base))
    f.want = failing_errnos().at(base);
  else
    ADD_FAILURE() << "no errno for " << base;
  return f;
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
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.error, want) << std::strerror(done.error);
  EXPECT_EQ(done.frees, 1);
  for (size_t i : other_closures(c)) {
    EXPECT_EQ(a.tally(i).calls, 0) << c.args[i].name;
    EXPECT_EQ(a.tally(i).frees, 1) << c.args[i].name;
  }
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
  EXPECT_EQ(done.error, ENOTCONN) << std::strerror(done.error);
  if (check_retirement) {
    EXPECT_TRUE(kept_until_retired(c, a));  // BUG(report): freed at completion
  }
  EXPECT_EQ(nbd_aio_command_completed(conn->h, cookie), -1);
  EXPECT_TRUE(nbd_test::last_error_is(ENOTCONN, "nbd_aio_command_completed: ")) << nbd_get_error();
  EXPECT_EQ(done.frees, 1);
  for (size_t i : other_closures(c)) {
    EXPECT_EQ(a.tally(i).calls, 0);
    EXPECT_EQ(a.tally(i).frees, 1);
  }
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

// ---- aio options

// How many times the list or context callback runs against the shared nbdkit memory: one
// export (""), one context (base:allocation).
void aio_option_success(const CallInfo& c) {
  const Server* srv = shared_server_for(c);
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv, true);
  ASSERT_TRUE(conn);
  Args a(c);
  aim(c, a, 0);
  int saved = 0;
  const Outcome o = invoke(c, conn->h, a, saved);
  ASSERT_FALSE(o.failed) << nbd_get_error();
  ASSERT_TRUE(wait_option(conn->h)) << nbd_get_error();
  const Tally& done = a.tally(static_cast<size_t>(completion_index(c)));
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.error, 0);
  EXPECT_EQ(done.frees, 1);
  for (size_t i : other_closures(c)) {
    EXPECT_EQ(a.tally(i).calls, 1) << c.args[i].name;
    EXPECT_EQ(a.tally(i).frees, 1) << c.args[i].name;
  }
  if (c.name == "aio_opt_go") {
    EXPECT_EQ(nbd_aio_is_ready(conn->h), 1);
  } else {
    EXPECT_EQ(nbd_aio_is_negotiating(conn->h), 1);
    ASSERT_EQ(nbd_opt_go(conn->h), 0) << nbd_get_error();
  }
  nbd_test::round_trip(conn->h, 8192, 512, 5);
}

// The option refused by the server: go and info of an export the failing plugin refuses
// (NBD_REP_ERR_UNKNOWN, ENOENT), list on the failing plugin (NBD_REP_ERR_INVALID, EINVAL),
// list_meta_context of an export qemu-nbd does not have (ENOENT).  libnbd 1.14 reports ENOTSUP
// for every refused list and list_meta_context instead of the server's error.
// NBD_OPT_STARTTLS, _STRUCTURED_REPLY and _EXTENDED_HEADERS are refused by nbdkit without
// TLS, with --no-sr, and always (ENOTSUP); the meta context options of every kind like listing.
bool is_meta_context_option(const CallInfo& c) { return c.name.find("meta_context") != std::string::npos; }
bool is_refusable_option(const CallInfo& c) {
  return c.name == "aio_opt_starttls" || c.name == "aio_opt_structured_reply" || c.name == "aio_opt_extended_headers";
}

void aio_option_server_failure(const CallInfo& c) {
  FailingServer fs;
  std::unique_ptr<Server> qemu;
  std::unique_ptr<TmpDir> qdir;
  std::unique_ptr<Server> refusing;
  const Server* srv = nullptr;
  const char* export_name = "refuse";
  int want = ENOENT;
  if (is_refusable_option(c)) {
    refusing = start_nbdkit({c.name == "aio_opt_structured_reply" ? "--no-sr" : "--exit-with-parent", "memory", "1M"});
    srv = refusing.get();
    export_name = nullptr;
    want = ENOTSUP;
  } else if (is_meta_context_option(c)) {
    if (!nbd_test::have_program("qemu-nbd") || !nbd_test::have_program("qemu-img"))
      GTEST_SKIP() << "qemu-nbd not installed";
    qdir = std::make_unique<TmpDir>();
    const std::string img = qdir->path() + "/disk.img";
    ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "raw", img, "1M"}));
    qemu = nbd_test::start_qemu_nbd(img, "raw", {}, false, "exp");
    srv = qemu.get();
    export_name = "nope";
  } else {
    fs = start_failing_server();
    srv = fs.server.get();
    if (c.name == "aio_opt_list") {
      export_name = nullptr;
      want = ENOTSUP;  // a refused listing is ENOTSUP, whatever the server's reason (libnbd)
    }
  }
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv, true, export_name);
  ASSERT_TRUE(conn);
  Args a(c);
  aim(c, a, 0);
  int saved = 0;
  const Outcome o = invoke(c, conn->h, a, saved);
  ASSERT_FALSE(o.failed) << nbd_get_error();
  ASSERT_TRUE(wait_option(conn->h)) << nbd_get_error();
  const Tally& done = a.tally(static_cast<size_t>(completion_index(c)));
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.error, want) << std::strerror(done.error);
  EXPECT_EQ(done.frees, 1);
  for (size_t i : other_closures(c)) {
    EXPECT_EQ(a.tally(i).calls, 0) << c.args[i].name;
    EXPECT_EQ(a.tally(i).frees, 1) << c.args[i].name;
  }
  // Still negotiating, and a good export can be chosen and read.
  EXPECT_EQ(nbd_aio_is_negotiating(conn->h), 1) << nbd_connection_state(conn->h);
  ASSERT_EQ(nbd_set_export_name(conn->h, qemu ? "exp" : ""), 0) << nbd_get_error();
  ASSERT_EQ(nbd_opt_go(conn->h), 0) << nbd_get_error();
  std::vector<char> buf(512);
  EXPECT_EQ(nbd_pread(conn->h, buf.data(), buf.size(), 4096, 0), 0) << nbd_get_error();
}

// The server killed with the option in flight: the completion runs once, with the errno that
// ended the connection (ECONNRESET here; commands get ENOTCONN), as libnbd, and every closure
// is freed once.
void aio_option_killed(const CallInfo& c) {
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv.get(), true);
  ASSERT_TRUE(conn);
  Args a(c);
  {
    ASSERT_TRUE(nbd_test::stop_child(srv->pid()));
    int saved = 0;
    const Outcome o = invoke(c, conn->h, a, saved);
    ASSERT_FALSE(o.failed) << nbd_get_error();
    srv->kill_now();
  }
  EXPECT_TRUE(poll_until(conn->h, [&] { return nbd_aio_is_dead(conn->h) == 1; })) << nbd_get_error();
  const Tally& done = a.tally(static_cast<size_t>(completion_index(c)));
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.error, ECONNRESET) << std::strerror(done.error);
  EXPECT_EQ(done.frees, 1);
  for (size_t i : other_closures(c)) {
    EXPECT_EQ(a.tally(i).calls, 0);
    EXPECT_EQ(a.tally(i).frees, 1);
  }
}

// ---- sync calls whose closure lives for the call

// Runs the sync call c with counted closures on conn; returns its result.
int run_sync(const CallInfo& c, nbd_handle* h, Args& a) {
  int saved = 0;
  const Outcome o = invoke(c, h, a, saved);
  if (o.failed) return -1;
  return std::stoi(o.value);
}

bool sync_in_opt_mode(const CallInfo& c) { return c.name.rfind("opt_", 0) == 0; }

// One export, one context, one 512-byte data chunk, one extent.
// A pending call reached in a state it permits fails with ENOTSUP before the core, having called
// none of its closures and freed each exactly once.  Its four real paths apply once it has a body.
void pending_refused(const CallInfo& c) {
  const Server* srv = shared_server();
  ASSERT_TRUE(srv);
  const bool negotiating = std::find(c.states.begin(), c.states.end(), "negotiating") != c.states.end() &&
                           std::find(c.states.begin(), c.states.end(), "connected") == c.states.end();
  auto conn = connect_to(srv, negotiating);
  ASSERT_TRUE(conn);
  Args a(c);
  int saved = 0;
  const Outcome o = invoke(c, conn->h, a, saved);
  EXPECT_TRUE(o.failed) << o.value;
  EXPECT_EQ(saved, ENOTSUP);
  EXPECT_TRUE(nbd_test::last_error_is(ENOTSUP, c.c_name() + ": not implemented yet"));
  for (size_t i : closure_indexes(c)) {
    EXPECT_EQ(a.tally(i).calls, 0) << c.args[i].name;
    EXPECT_EQ(a.tally(i).frees, 1) << c.args[i].name;
  }
  // The refusal leaves the connection usable.
  if (negotiating) {
    ASSERT_EQ(nbd_opt_go(conn->h), 0) << nbd_get_error();
  }
  nbd_test::round_trip(conn->h, 0, 512, 13);
}

void sync_success(const CallInfo& c) {
  const Server* srv = shared_server_for(c);
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv, sync_in_opt_mode(c));
  ASSERT_TRUE(conn);
  Args a(c);
  aim(c, a, 16384);
  if (c.name == "pread_structured") write_pattern(conn->h, 16384, 9);
  const int r = run_sync(c, conn->h, a);
  ASSERT_NE(r, -1) << nbd_get_error();
  if (sync_in_opt_mode(c)) {
    EXPECT_EQ(r, 1);  // the number of exports or contexts
  }
  for (size_t i : closure_indexes(c)) {
    EXPECT_EQ(a.tally(i).calls, 1) << c.args[i].name;
    EXPECT_EQ(a.tally(i).frees, 1) << c.args[i].name;
  }
  if (c.name == "pread_structured") {
    EXPECT_EQ(std::vector<char>(a.buffer(), a.buffer() + Args::kBufferSize), pattern(9));
  }
  if (sync_in_opt_mode(c)) {
    ASSERT_EQ(nbd_opt_go(conn->h), 0) << nbd_get_error();
  }
  nbd_test::round_trip(conn->h, 0, 512, 11);
}

void sync_server_failure(const CallInfo& c) {
  FailingServer fs;
  std::unique_ptr<Server> qemu;
  std::unique_ptr<TmpDir> qdir;
  const Server* srv = nullptr;
  const char* export_name = nullptr;
  std::optional<FailingFor> failing;
  int want = 0;
  if (is_meta_context_option(c)) {
    if (!nbd_test::have_program("qemu-nbd") || !nbd_test::have_program("qemu-img"))
      GTEST_SKIP() << "qemu-nbd not installed";
    qdir = std::make_unique<TmpDir>();
    const std::string img = qdir->path() + "/disk.img";
    ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "raw", img, "1M"}));
    qemu = nbd_test::start_qemu_nbd(img, "raw", {}, false, "exp");
    srv = qemu.get();
    export_name = "nope";
    want = ENOENT;
  } else if (c.name == "opt_list") {
    fs = start_failing_server();
    srv = fs.server.get();
    want = ENOTSUP;
  } else {
    failing.emplace(failing_server_for(c));
    srv = failing->server();
    want = failing->want;
  }
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv, sync_in_opt_mode(c), export_name);
  ASSERT_TRUE(conn);
  Args a(c);
  aim(c, a, 0);
  EXPECT_EQ(run_sync(c, conn->h, a), -1);
  EXPECT_TRUE(nbd_test::last_error_is(want, c.c_name() + ": ")) << nbd_get_error();
  for (size_t i : closure_indexes(c)) {
    EXPECT_EQ(a.tally(i).calls, 0) << c.args[i].name;
    EXPECT_EQ(a.tally(i).frees, 1) << c.args[i].name;
  }
  if (sync_in_opt_mode(c)) {
    EXPECT_EQ(nbd_aio_is_negotiating(conn->h), 1);
    ASSERT_EQ(nbd_set_export_name(conn->h, qemu ? "exp" : ""), 0);
    ASSERT_EQ(nbd_opt_go(conn->h), 0) << nbd_get_error();
  }
  EXPECT_EQ(nbd_aio_is_ready(conn->h), 1);
  std::vector<char> buf(512);
  EXPECT_EQ(nbd_pread(conn->h, buf.data(), buf.size(), 4096, 0), 0) << nbd_get_error();
}

void sync_killed(const CallInfo& c) {
  auto srv = own_server_for(c);
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv.get(), sync_in_opt_mode(c));
  ASSERT_TRUE(conn);
  Args a(c);
  aim(c, a, 0);
  const BlockedCall r = kill_while_blocked(*srv, [&] { return run_sync(c, conn->h, a); });
  EXPECT_EQ(r.result, -1);
  // The connection's own error: the server's end was reset with the request unread.
  EXPECT_EQ(r.err, ECONNRESET) << r.message;
  EXPECT_EQ(r.message.rfind(c.c_name() + ": ", 0), 0u) << r.message;
  for (size_t i : closure_indexes(c)) {
    EXPECT_EQ(a.tally(i).calls, 0) << c.args[i].name;
    EXPECT_EQ(a.tally(i).frees, 1) << c.args[i].name;
  }
  EXPECT_EQ(nbd_aio_is_dead(conn->h), 1) << nbd_connection_state(conn->h);
}

// ---- persistent closures

// The debug callback: exactly one line on entry and one on leaving a traced call, kept until
// replaced, cleared or the handle is closed, and freed once then.
void debug_success(const CallInfo&) {
  Tally first, second;
  nbd_handle* h = nbd_create();
  ASSERT_NE(h, nullptr);
  ASSERT_EQ(nbd_set_debug(h, true), 0);
  const auto closure = misuse::counting_closure<nbd_debug_callback>;
  ASSERT_EQ(nbd_set_debug_callback(h, closure(first)), 0);
  first.calls = 0;  // whatever set_debug_callback itself traced
  ASSERT_EQ(nbd_set_export_name(h, "x"), 0);
  EXPECT_EQ(first.calls, 2);
  ASSERT_EQ(nbd_set_debug_callback(h, closure(second)), 0);
  EXPECT_EQ(first.frees, 1);
  const int first_calls = first.calls;
  second.calls = 0;
  ASSERT_EQ(nbd_set_export_name(h, "y"), 0);
  EXPECT_EQ(second.calls, 2);
  EXPECT_EQ(first.calls, first_calls);
  ASSERT_EQ(nbd_clear_debug_callback(h), 0);
  EXPECT_EQ(second.frees, 1);
  ASSERT_EQ(nbd_set_debug_callback(h, closure(first)), 0);
  nbd_close(h);
  EXPECT_EQ(first.frees, 2);
  EXPECT_EQ(second.frees, 1);
}

// A command in flight when the server is killed: the debug callback sees the connection die,
// and is freed once, at nbd_close.
void debug_killed(const CallInfo&) {
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv.get(), false);
  ASSERT_TRUE(conn);
  Tally t;
  ASSERT_EQ(nbd_set_debug_callback(conn->h, misuse::counting_closure<nbd_debug_callback>(t)), 0);
  ASSERT_EQ(nbd_set_debug(conn->h, true), 0);
  char buf[512];
  int64_t cookie = 0;
  {
    ASSERT_TRUE(nbd_test::stop_child(srv->pid()));
    cookie = nbd_aio_pread(conn->h, buf, sizeof buf, 0, NBD_NULL_COMPLETION, 0);
    ASSERT_GT(cookie, 0) << nbd_get_error();
    srv->kill_now();
  }
  const int before = t.calls;
  EXPECT_TRUE(poll_until(conn->h, [&] { return nbd_aio_is_dead(conn->h) == 1; }));
  EXPECT_GT(t.calls, before);
  EXPECT_EQ(nbd_aio_command_completed(conn->h, cookie), -1);
  EXPECT_EQ(t.frees, 0);
  conn->close_now();
  EXPECT_EQ(t.frees, 1);
}

void debug_close_in_flight(const CallInfo&) {
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv.get(), false);
  ASSERT_TRUE(conn);
  Tally t;
  ASSERT_EQ(nbd_set_debug_callback(conn->h, misuse::counting_closure<nbd_debug_callback>(t)), 0);
  ASSERT_EQ(nbd_set_debug(conn->h, true), 0);
  char buf[512];
  nbd_test::Resume resume{srv->pid()};
  ASSERT_TRUE(nbd_test::stop_child(srv->pid()));
  ASSERT_GT(nbd_aio_pread(conn->h, buf, sizeof buf, 0, NBD_NULL_COMPLETION, 0), 0) << nbd_get_error();
  conn->close_now();
  EXPECT_EQ(t.frees, 1);
}

// A concurrent writer of the application's: the callback only queues (as it must: it may not
// block), and the test's thread moves the queue to the socket before each poll.
struct QueueWriter {
  Tally tally;
  std::string queued;
  size_t bytes = 0;
  nbd_writer_callback closure() {
    return {[](void* ud, const void* buf, size_t len) {
              auto* w = static_cast<QueueWriter*>(ud);
              ++w->tally.calls;
              w->queued.append(static_cast<const char*>(buf), len);
              w->bytes += len;
              return 0;
            },
            this, [](void* ud) { ++static_cast<QueueWriter*>(ud)->tally.frees; }};
  }
  // Sends what is queued (blocking: the test has nothing else to do meanwhile).
  bool flush(int fd) {
    size_t done = 0;
    while (done < queued.size()) {
      const ssize_t r = ::send(fd, queued.data() + done, queued.size() - done, MSG_NOSIGNAL);
      if (r > 0) {
        done += static_cast<size_t>(r);
      } else if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        ::poll(&pfd, 1, -1);
      } else if (r == -1 && errno != EINTR) {
        return false;
      }
    }
    queued.clear();
    return true;
  }
};

// Installed on a connected handle, the writer is given each request whole (28 bytes for a
// read, 28 + 512 for a write) and nothing else; data goes through it both ways; freed once at
// nbd_close.
void writer_success(const CallInfo&) {
  const Server* srv = shared_server();
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv, false);
  ASSERT_TRUE(conn);
  QueueWriter w;
  ASSERT_EQ(nbd_set_concurrent_writer(conn->h, w.closure()), 0) << nbd_get_error();
  const int fd = nbd_aio_get_fd(conn->h);
  ASSERT_GE(fd, 0) << nbd_get_error();
  auto data = pattern(12);
  const int64_t wc = nbd_aio_pwrite(conn->h, data.data(), data.size(), 32768, NBD_NULL_COMPLETION, 0);
  ASSERT_GT(wc, 0) << nbd_get_error();
  EXPECT_EQ(w.bytes, 28u + 512u);
  ASSERT_TRUE(w.flush(fd));
  EXPECT_EQ(wait_command(conn->h, wc), 1) << nbd_get_error();
  std::vector<char> back(512);
  const int64_t rc = nbd_aio_pread(conn->h, back.data(), back.size(), 32768, NBD_NULL_COMPLETION, 0);
  ASSERT_GT(rc, 0) << nbd_get_error();
  EXPECT_EQ(w.bytes, 28u + 512u + 28u);
  ASSERT_TRUE(w.flush(fd));
  EXPECT_EQ(wait_command(conn->h, rc), 1) << nbd_get_error();
  EXPECT_EQ(back, data);
  EXPECT_GE(w.tally.calls, 2);
  EXPECT_EQ(w.tally.frees, 0);
  conn->close_now();
  EXPECT_EQ(w.tally.frees, 1);
}

// The writer's send fails (reported with nbd_concurrent_writer_error): the command in flight
// completes with that errno, the handle dies, the writer is freed once at nbd_close.
void writer_send_failure(const CallInfo&) {
  const Server* srv = shared_server();
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv, false);
  ASSERT_TRUE(conn);
  QueueWriter w;
  ASSERT_EQ(nbd_set_concurrent_writer(conn->h, w.closure()), 0) << nbd_get_error();
  char buf[512];
  Tally done;
  const int64_t c =
      nbd_aio_pread(conn->h, buf, sizeof buf, 0, misuse::counting_closure<nbd_completion_callback>(done), 0);
  ASSERT_GT(c, 0) << nbd_get_error();
  ASSERT_EQ(nbd_concurrent_writer_error(conn->h, EPIPE), 0) << nbd_get_error();
  EXPECT_TRUE(poll_until(conn->h, [&] { return nbd_aio_is_dead(conn->h) == 1; })) << nbd_get_error();
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.error, EPIPE) << std::strerror(done.error);
  EXPECT_EQ(nbd_aio_command_completed(conn->h, c), -1);
  EXPECT_TRUE(nbd_test::last_error_is(EPIPE, "nbd_aio_command_completed: ")) << nbd_get_error();
  EXPECT_EQ(done.frees, 1);
  EXPECT_EQ(w.tally.frees, 0);
  conn->close_now();
  EXPECT_EQ(w.tally.frees, 1);
}

void writer_killed(const CallInfo&) {
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv.get(), false);
  ASSERT_TRUE(conn);
  QueueWriter w;
  ASSERT_EQ(nbd_set_concurrent_writer(conn->h, w.closure()), 0) << nbd_get_error();
  const int fd = nbd_aio_get_fd(conn->h);
  char buf[512];
  Tally done;
  {
    ASSERT_TRUE(nbd_test::stop_child(srv->pid()));
    ASSERT_GT(nbd_aio_pread(conn->h, buf, sizeof buf, 0, misuse::counting_closure<nbd_completion_callback>(done), 0),
              0)
        << nbd_get_error();
    ASSERT_TRUE(w.flush(fd));
    srv->kill_now();
  }
  EXPECT_TRUE(poll_until(conn->h, [&] { return nbd_aio_is_dead(conn->h) == 1; })) << nbd_get_error();
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.error, ENOTCONN) << std::strerror(done.error);
  EXPECT_EQ(done.frees, 0);  // not retired yet: the close frees it
  EXPECT_EQ(w.tally.frees, 0);
  conn->close_now();
  EXPECT_EQ(done.frees, 1);
  EXPECT_EQ(w.tally.frees, 1);
}

void writer_close_in_flight(const CallInfo&) {
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  auto conn = connect_to(srv.get(), false);
  ASSERT_TRUE(conn);
  QueueWriter w;
  ASSERT_EQ(nbd_set_concurrent_writer(conn->h, w.closure()), 0) << nbd_get_error();
  char buf[512];
  Tally done;
  ASSERT_GT(nbd_aio_pread(conn->h, buf, sizeof buf, 0, misuse::counting_closure<nbd_completion_callback>(done), 0),
            0)
      << nbd_get_error();
  conn->close_now();  // the request never left the writer's queue
  EXPECT_EQ(done.calls, 0);
  EXPECT_EQ(done.frees, 1);
  EXPECT_EQ(w.tally.frees, 1);
}

// ---- the registry

using Scenario = std::function<void(const CallInfo&)>;

// The scenario of each closure-taking call on each path.  Calls are matched by kind first
// (every aio command, every aio option, ...), so a new call of a known kind is covered at once;
// one of a new kind fails ClosurePaths until it gets scenarios here or a reason below.
Scenario scenario_for(const CallInfo& c, Path p) {
  if (c.pending) return p == Path::Pending ? pending_refused : nullptr;
  if (is_aio_command(c)) {
    switch (p) {
      case Path::Pending: return nullptr;
      case Path::Success: return [](const CallInfo& cc) { aio_command_success(cc, false); };
      case Path::ServerFailure: return [](const CallInfo& cc) { aio_command_server_failure(cc, false); };
      case Path::KilledInFlight: return [](const CallInfo& cc) { aio_command_killed(cc, false); };
      case Path::CloseInFlight: return [](const CallInfo& cc) { aio_in_flight_at_close(cc, false); };
    }
  }
  if (is_aio_option(c)) {
    switch (p) {
      case Path::Pending: return nullptr;
      case Path::Success: return c.name == "aio_opt_starttls" ? nullptr : aio_option_success;
      case Path::ServerFailure: return aio_option_server_failure;
      case Path::KilledInFlight: return aio_option_killed;
      case Path::CloseInFlight: return [](const CallInfo& cc) { aio_in_flight_at_close(cc, true); };
    }
  }
  const std::vector<size_t> closures = closure_indexes(c);
  const bool sync_call = !closures.empty() && std::all_of(closures.begin(), closures.end(), [&](size_t i) {
    return c.args[i].lifetime == "call";
  });
  if (sync_call) {
    switch (p) {
      case Path::Pending: return nullptr;
      case Path::Success: return sync_success;
      case Path::ServerFailure: return sync_server_failure;
      case Path::KilledInFlight: return sync_killed;
      case Path::CloseInFlight: return nullptr;
    }
  }
  if (c.name == "set_debug_callback") {
    switch (p) {
      case Path::Pending: return nullptr;
      case Path::Success: return debug_success;
      case Path::KilledInFlight: return debug_killed;
      case Path::CloseInFlight: return debug_close_in_flight;
      case Path::ServerFailure: return nullptr;
    }
  }
  if (c.name == "set_concurrent_writer") {
    switch (p) {
      case Path::Pending: return nullptr;
      case Path::Success: return writer_success;
      case Path::ServerFailure: return writer_send_failure;
      case Path::KilledInFlight: return writer_killed;
      case Path::CloseInFlight: return writer_close_in_flight;
    }
  }
  return nullptr;
}

// Paths that do not exist for a call, with the reason.
const std::map<std::pair<std::string, Path>, std::string>& not_applicable() {
  static const std::map<std::pair<std::string, Path>, std::string> m = {
      {{"opt_list", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"opt_list_meta_context", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"pread_structured", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"block_status", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"block_status_64", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"block_status_filter", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"opt_list_meta_context_queries", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"opt_set_meta_context", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"opt_set_meta_context_queries", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"aio_opt_starttls", Path::Success},
       "accepting TLS needs a TLS server: tls_test's OptStarttls* cover it (here the server refuses)"},
      {{"set_debug_callback", Path::ServerFailure}, "a handle setting: no request to fail"},
  };
  return m;
}

struct PathCase {
  const CallInfo* call;
  Path path;
  std::string label;
};
void PrintTo(const PathCase& c, std::ostream* os) { *os << c.label; }

std::vector<PathCase> path_cases() {
  std::vector<PathCase> out;
  for (const CallInfo& c : misuse::model_calls()) {
    if (closure_indexes(c).empty()) continue;
    if (c.pending) {
      out.push_back({&c, Path::Pending, c.name + "_" + path_name(Path::Pending)});
      continue;
    }
    for (Path p : {Path::Success, Path::ServerFailure, Path::KilledInFlight, Path::CloseInFlight})
      if (!not_applicable().count({c.name, p})) out.push_back({&c, p, c.name + "_" + path_name(p)});
  }
  return out;
}

class ClosurePaths : public ::testing::TestWithParam<PathCase> {};

TEST_P(ClosurePaths, EachClosureCalledAsDueAndFreedOnce) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  const PathCase& p = GetParam();
  const Scenario s = scenario_for(*p.call, p.path);
  ASSERT_TRUE(s) << p.call->c_name() << " takes a closure but has no " << path_name(p.path)
                 << " scenario: write one in misuse_test.cpp, or say in not_applicable() why there is none";
  s(*p.call);
}

INSTANTIATE_TEST_SUITE_P(Calls, ClosurePaths, ::testing::ValuesIn(path_cases()),
                         [](const ::testing::TestParamInfo<PathCase>& i) { return i.param.label; });

TEST(Model, NotApplicablePathsNameClosureCalls) {
  for (const auto& [key, reason] : not_applicable()) {
    const CallInfo* c = nullptr;
    for (const CallInfo& cc : misuse::model_calls())
      if (cc.name == key.first) c = &cc;
    ASSERT_NE(c, nullptr) << key.first << " is not in api.yaml";
    EXPECT_FALSE(closure_indexes(*c).empty()) << key.first << " takes no closure";
    EXPECT_FALSE(scenario_for(*c, key.second)) << key.first << " " << path_name(key.second)
                                               << " has a scenario and a reason not to: " << reason;
  }
}

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
  for (const CallInfo& c : misuse::model_calls())
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
  for (const CallInfo& c : misuse::model_calls())
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
  for (const CallInfo& c : misuse::model_calls())
    if (!closure_indexes(c).empty() && arg_index(c, "offset") >= 0 && permits(c, "connected") && !c.states.empty() &&
        !c.pending)
      out.push_back({&c, 0, "connected", c.name});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Calls, CoreRefuses, ::testing::ValuesIn(core_refuses_cases()), case_name);

}  // namespace
