// servers.hpp: real NBD servers (nbdkit, qemu-nbd, nbd-server) as child processes of GoogleTest tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace nbd_test {

// A private directory made by mkdtemp under $TMPDIR (else /tmp, or under base when given), removed
// with everything in it on destruction.  Throws std::system_error if it cannot be made: gtest then
// fails the test that asked for it.
class TmpDir {
 public:
  explicit TmpDir(const std::string& base = "");
  TmpDir(TmpDir&& other) noexcept;
  TmpDir& operator=(TmpDir&&) = delete;
  TmpDir(const TmpDir&) = delete;
  TmpDir& operator=(const TmpDir&) = delete;
  ~TmpDir();

  // Always absolute, because daemons such as nbd-server chdir("/").
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Where a server listens: a Unix socket, or a TCP host and port; export_name goes into uri().
struct Address {
  std::string unix_socket;
  std::string host;
  std::string port;
  std::string export_name;
};

// A running server.  The destructor stops it (SIGTERM, SIGKILL after a bounded wait, always reaped)
// and then removes its directory, so nothing is left behind.  If the test binary itself dies, only
// nbdkit and nbd_ext_server (--exit-with-parent) go with it; qemu-nbd and nbd-server keep running.  When group is true, pid leads its own
// process group (a daemon after setsid) and every process in the group is signalled and reaped.
class Server {
 public:
  // Adopts a started process; the start_* functions below are the usual way to get one.
  Server(TmpDir dir, pid_t pid, bool group, Address address);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // "nbd+unix:///EXPORT?socket=PATH" or "nbd://127.0.0.1:PORT/EXPORT" (export percent-encoded).
  const std::string& uri() const { return uri_; }
  // The same server with another export name (nbd-server serves several).
  std::string export_uri(const std::string& export_name) const;
  const std::string& unix_socket() const { return address_.unix_socket; }  // empty for TCP servers
  const std::string& host() const { return address_.host; }                // empty for Unix servers
  const std::string& port() const { return address_.port; }                // empty for Unix servers
  // Still the server's pid after it was stopped, so tests can check that it is gone.
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_.path(); }  // for images, configs and the log
  // What the server wrote to stdout and stderr so far (nbd-server: only until it daemonized).
  std::string log() const;

  // SIGKILL and reap now, for tests of a server dying under the client; the destructor then only
  // removes the directory.
  void kill_now();
  // Stops the server with SIGKILL if it still runs and starts the same command again, on the
  // same socket or port (nbdkit and qemu-nbd, which run in the foreground): for tests of a
  // server restarted under a client.  False (after ADD_FAILURE) if it did not come back.
  bool restart();
  // The command restart() runs (the start_* functions set it).
  void set_command(std::vector<std::string> argv) { command_ = std::move(argv); }

 private:
  void stop(int sig);

  TmpDir dir_;
  pid_t pid_;
  bool group_;
  bool running_ = true;
  Address address_;
  std::string uri_;
  std::vector<std::string> command_;  // how it was started, for restart()
};

// nbdkit -f --exit-with-parent -P DIR/pid {-U DIR/sock | -i 127.0.0.1 -p PORT} ARGS...
// args start with nbdkit options or the plugin name.  Ready when the pidfile is written (nbdkit does
// that after it listens).  On failure: ADD_FAILURE with the server's log, and nullptr.
// --exit-with-parent ties nbdkit to the calling thread (PR_SET_PDEATHSIG): start it from the test's
// thread, not from a thread that exits first.
std::unique_ptr<Server> start_nbdkit(std::vector<std::string> args, bool tcp = false,
                                     std::string export_name = "");

// qemu-nbd -f FORMAT -t --pid-file=DIR/pid {-k DIR/sock | -b 127.0.0.1 -p PORT} [-x EXPORT]
// EXTRA... IMAGE, in the foreground as our child.  Ready when the pidfile is written (after listen).
// qemu-nbd serves one client at a time unless extra has --shared=N (0 means no limit).  The caller
// creates the image, e.g. run_or_fail({"qemu-img", "create", "-f", "raw", path, "1M"}).
std::unique_ptr<Server> start_qemu_nbd(std::string image, std::string format,
                                       std::vector<std::string> extra = {}, bool tcp = false,
                                       std::string export_name = "");

struct NbdServerExport {
  std::string name;  // the config section, hence the NBD export name
  std::string file;
  bool readonly = false;
};

// nbd-server on 127.0.0.1 and a free port with DIR/config ([generic] listenaddr, port,
// allowlist = true, then one section per export); uri() names the first export.  Ready when a
// connection gets the NBD greeting: nbd-server listens 0.1-1 s before it first accepts (it computes
// Diffie-Hellman parameters in between), and a test's first handshake should not wait for that.
// nbd-server always daemonizes (its -d serves a single client and exits), so this process becomes a
// child subreaper (PR_SET_CHILD_SUBREAPER, for the rest of its life): the daemon and its
// per-connection children are then reparented to us, and can be signalled as a group and reaped.
// With unix_socket, it also listens on DIR/sock, and uri() names that socket.  generic_config adds
// "key = value" lines to [generic], e.g. for TLS: certfile, keyfile, cacertfile (nbd-server then
// requires a client certificate), force_tls = true.
std::unique_ptr<Server> start_nbd_server(std::vector<NbdServerExport> exports, bool unix_socket = false,
                                         std::vector<std::string> generic_config = {});

// tests/extserver's nbd_ext_server (built with the tests), which speaks NBD_OPT_EXTENDED_HEADERS:
// nbd_ext_server --exit-with-parent --pid-file DIR/pid --log DIR/wire.log
// {--unix DIR/sock | --port 0 --port-file DIR/port} ARGS...  args are its options (--size,
// --export, --block-status-payload, --bad=NAME, ...; nbd_ext_server --help lists them).  TCP
// listens on 127.0.0.1 and a port the server picks itself, so no port can be taken meanwhile.
// Ready when the pidfile is written (after listen and the port file).  uri() names export_name,
// which should be one of its --export names or "" (its first export).  --exit-with-parent as for
// start_nbdkit: start it from the test's thread.  On failure: ADD_FAILURE with its output, nullptr.
std::unique_ptr<Server> start_ext_server(std::vector<std::string> args, bool tcp = false,
                                         std::string export_name = "");
// The path of nbd_ext_server, e.g. for nbd_connect_command(h, {path, "--stdio", ...}).
const char* ext_server_path();
// What server (from start_ext_server) has written to its wire log so far: a line per option
// ("opt 11"), per entry into transmission ("transmission mode=extended export=\"\""), per request
// ("req magic=0x21e41c71 type=1 flags=0x20 offset=0 length=4096") and per client violation
// ("violation: ...").
std::string ext_server_wire_log(const Server& server);
// The lines of that log that start with prefix.
std::vector<std::string> ext_server_log_lines(const Server& server, std::string_view prefix);
// Waits (10 s at most) until the log has a line starting with prefix: the server logs a request
// when it reads it, which can be after the client has moved on.
bool wait_for_ext_server_log(const Server& server, std::string_view prefix);

// Whether name is an executable file on $PATH (or at that path if name has a slash).
bool have_program(const char* name);

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).  Another
// process can take it before the server binds; the start_* functions retry with a new port then.
std::string free_tcp_port();

// Runs argv (no shell) with its output captured; ADD_FAILURE with that output unless it exits with
// status 0 within 60 s.  Returns whether it succeeded, for ASSERT_TRUE.
bool run_or_fail(const std::vector<std::string>& argv);

}  // namespace nbd_test

// Skips the current test (or SetUp) when a server or tool is not installed.  A macro because
// GTEST_SKIP has to return from the caller.
#define NBD_TEST_REQUIRE_PROGRAM(name)             \
  do {                                             \
    if (!::nbd_test::have_program(name))           \
      GTEST_SKIP() << (name) << " not installed"; \
  } while (0)
