// aio_option_scenarios.cpp: the closure paths of the aio options (aio_opt_go, aio_opt_list, ...):
// success, the server refusing the option, the server killed with it in flight.
#include "misuse/closure_scenarios.hpp"

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/io_helpers.hpp"

namespace misuse {

using nbd_test::poll_until;
using nbd_test::Server;
using nbd_test::start_nbdkit;
using nbd_test::TmpDir;

namespace {

// The options nbdkit refuses (ENOTSUP): NBD_OPT_STARTTLS without TLS, _STRUCTURED_REPLY with
// --no-sr, _EXTENDED_HEADERS always.
bool is_refusable_option(const CallInfo& c) {
  return c.name == "aio_opt_starttls" || c.name == "aio_opt_structured_reply" || c.name == "aio_opt_extended_headers";
}

}  // namespace

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
  expect_ended_once(c, a, 0, 1);
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
// NBD_OPT_STARTTLS, _STRUCTURED_REPLY and _EXTENDED_HEADERS are refused (is_refusable_option);
// the meta context options of every kind like listing.
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
  expect_ended_once(c, a, want, 0);
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
  expect_ended_once(c, a, ECONNRESET, 0);
}

}  // namespace misuse
