// misuse_support.cpp: the misuse suite's shared servers, handles in each state, checks of a
// refused call and generic case lists.
#include "misuse/misuse_support.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "common/io_helpers.hpp"

namespace misuse {

using nbd_test::Server;
using nbd_test::start_nbdkit;
using nbd_test::TmpDir;

namespace {

// The shared nbdkit (shared_server) and nbd_ext_server (shared_server_for), stopped after the
// last test.
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

// The failing server's sh plugin (start_failing_server, misuse_support.hpp).
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

// Whether h is in api.yaml's state.
bool in_state(nbd_handle* h, const std::string& state) {
  if (state == "created") return nbd_aio_is_created(h) == 1;
  if (state == "connecting") return nbd_aio_is_connecting(h) == 1;
  if (state == "negotiating") return nbd_aio_is_negotiating(h) == 1;
  if (state == "connected") return nbd_aio_is_ready(h) == 1 || nbd_aio_is_processing(h) == 1;
  if (state == "closed") return nbd_aio_is_closed(h) == 1;
  if (state == "dead") return nbd_aio_is_dead(h) == 1;
  return false;
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

// The state the argument checks are tried in: one the call permits, preferring those in which
// the handle can show afterwards that it still works.
std::string arg_state(const CallInfo& c) {
  for (const char* s : {"connected", "negotiating", "created", "connecting", "closed", "dead"})
    if (permits(c, s)) return s;
  return "connected";
}

}  // namespace

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

// ---------------------------------------------------------------- servers

const Server* shared_server() {
  auto& slot = shared_slot();
  if (!slot) slot = start_nbdkit({"memory", "1M"});
  return slot.get();
}

bool needs_extended(const CallInfo& c) {
  return c.name.find("block_status_filter") != std::string::npos || c.name == "aio_opt_extended_headers";
}
std::vector<std::string> ext_server_args(std::vector<std::string> more) {
  std::vector<std::string> args{"--block-status-payload", "--size", "1M"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}
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

const std::map<std::string, int>& failing_errnos() {
  static const std::map<std::string, int> m = {
      {"pread", EIO},      {"pread_structured", EIO}, {"pwrite", ENOSPC}, {"flush", ESHUTDOWN},
      {"trim", EPERM},     {"zero", EINVAL},          {"cache", ENOMEM},  {"block_status", EINVAL},
      {"block_status_64", EINVAL},
  };
  return m;
}

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

// ---------------------------------------------------------------- checks of a refused call

Outcome invoke(const CallInfo& c, nbd_handle* h, Args& a, int& saved_errno) {
  errno = 0;
  Outcome o = c.invoke(h, a);
  saved_errno = errno;
  return o;
}

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

void expect_refused(const CallInfo& c, nbd_handle* h, Args& a, int err, const std::string& message) {
  int saved = 0;
  const Outcome o = invoke(c, h, a, saved);
  EXPECT_TRUE(failed_with(c, o, saved, err, message));
  EXPECT_TRUE(closures_freed_unused(c, a));
}

// ---------------------------------------------------------------- the generic cases

void PrintTo(const Case& c, std::ostream* os) { *os << c.label; }

std::string case_name(const ::testing::TestParamInfo<Case>& info) { return info.param.label; }

bool null_checked(const ArgInfo& a) { return a.pointer || (a.kind == ArgKind::Closure && !a.optional); }

std::vector<Case> null_handle_cases() {
  std::vector<Case> out;
  for (const CallInfo& c : model_calls())
    if (c.handle == HandleKind::Required && c.may_fail) out.push_back({&c, 0, "", c.name});
  return out;
}

std::vector<Case> arg_cases(bool (*pick)(const ArgInfo&)) {
  std::vector<Case> out;
  for (const CallInfo& c : model_calls())
    for (size_t i = 0; i < c.args.size(); ++i)
      if (pick(c.args[i])) out.push_back({&c, i, arg_state(c), c.name + "_" + c.args[i].name});
  return out;
}

std::vector<Case> wrong_state_cases() {
  std::vector<Case> out;
  for (const CallInfo& c : model_calls()) {
    if (c.states.empty()) continue;
    for (const StateInfo& s : model_states())
      if (!permits(c, s.name)) out.push_back({&c, 0, s.name, c.name + "_" + s.name});
  }
  return out;
}

}  // namespace misuse
