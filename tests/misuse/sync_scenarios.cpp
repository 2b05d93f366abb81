// sync_scenarios.cpp: the closure paths of the sync calls whose closures live for the call
// (nbd_opt_list, nbd_block_status, ...), and the refusal of calls still pending.
#include "misuse/closure_scenarios.hpp"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/io_helpers.hpp"

namespace misuse {

using nbd_test::Server;
using nbd_test::TmpDir;

namespace {

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

// Runs the sync call c with counted closures on conn; returns its result.
int run_sync(const CallInfo& c, nbd_handle* h, Args& a) {
  int saved = 0;
  const Outcome o = invoke(c, h, a, saved);
  if (o.failed) return -1;
  return std::stoi(o.value);
}

bool sync_in_opt_mode(const CallInfo& c) { return c.name.rfind("opt_", 0) == 0; }

}  // namespace

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

// One export, one context, one 512-byte data chunk, one extent.
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

}  // namespace misuse
