// servers_test.cpp: self-tests of the harness: each server starts, speaks NBD and leaves nothing behind.
#include "common/servers.hpp"

#include <arpa/inet.h>
#include <gtest/gtest-spi.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace nbd_test {
namespace {

namespace fs = std::filesystem;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  ~Fd() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// A plain socket to the server, no NBD client involved; get() < 0 if it refuses.  A receive timeout
// keeps a broken server from hanging the test.
Fd connect_to(const Server& server) {
  const bool unix_socket = !server.unix_socket().empty();
  Fd fd(::socket(unix_socket ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sun{};
  sockaddr_in sin{};
  int rc = -1;
  if (unix_socket) {
    sun.sun_family = AF_UNIX;
    std::strncpy(sun.sun_path, server.unix_socket().c_str(), sizeof sun.sun_path - 1);
    rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sun), sizeof sun);
  } else {
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<uint16_t>(std::stoi(server.port())));
    ::inet_pton(AF_INET, server.host().c_str(), &sin.sin_addr);
    rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sin), sizeof sin);
  }
  if (rc != 0)
    return Fd();
  const timeval tv{10, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Up to n bytes, fewer if the peer closes, fails or times out.
std::string read_bytes(const Fd& fd, std::size_t n) {
  std::string out(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd.get(), out.data() + got, n - got, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += static_cast<std::size_t>(r);
  }
  out.resize(got);
  return out;
}

// Whether the server ended the connection: reads what is left of its handshake up to EOF or a reset;
// a timeout means it is still open.
bool sees_eof(const Fd& fd) {
  char buf[4096];
  for (;;) {
    const ssize_t r = ::recv(fd.get(), buf, sizeof buf, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0 || (r < 0 && errno == ECONNRESET))
      return true;
    if (r < 0)
      return false;
  }
}

// Every newstyle server opens with the 8 bytes "NBDMAGIC" (proto.md "Newstyle negotiation").
void expect_greeting(const Server& server) {
  const Fd fd = connect_to(server);
  ASSERT_GE(fd.get(), 0) << "cannot connect to " << server.uri() << ": " << std::strerror(errno);
  EXPECT_EQ(read_bytes(fd, 8), "NBDMAGIC") << server.uri();
}

// kill(pid, 0) fails with ESRCH only once the process is reaped; a zombie still counts as present.
bool process_gone(pid_t pid) { return ::kill(pid, 0) == -1 && errno == ESRCH; }

// Destroying the server stops its process (reaped, not a zombie) and removes its directory.
void expect_clean_stop(std::unique_ptr<Server> server) {
  const pid_t pid = server->pid();
  const std::string dir = server->dir();
  server.reset();
  EXPECT_TRUE(process_gone(pid)) << "pid " << pid;
  EXPECT_FALSE(fs::exists(dir)) << dir;
}

// The children of pid, from /proc/PID/task/*/children (any of its threads may have forked).
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "children");
    for (pid_t child; in >> child;)
      out.push_back(child);
  }
  return out;
}

std::string make_file(const std::string& path, off_t size) {
  const Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  EXPECT_GE(fd.get(), 0) << path << ": " << std::strerror(errno);
  EXPECT_EQ(::ftruncate(fd.get(), size), 0) << path << ": " << std::strerror(errno);
  return path;
}

// Points $TMPDIR at a fresh directory for one test, to see what the harness leaves in it.
class ScopedTmpdir {
 public:
  ScopedTmpdir() {
    if (const char* old = std::getenv("TMPDIR"))
      old_ = old;
    ::setenv("TMPDIR", dir_.path().c_str(), 1);
  }
  ~ScopedTmpdir() {
    if (old_)
      ::setenv("TMPDIR", old_->c_str(), 1);
    else
      ::unsetenv("TMPDIR");
  }
  const std::string& path() const { return dir_.path(); }
  bool empty() const { return fs::is_empty(dir_.path()); }

 private:
  TmpDir dir_;
  std::optional<std::string> old_;
};

TEST(TmpDir, IsPrivateAbsoluteAndRemovedWithItsContents) {
  std::string path;
  {
    TmpDir dir;
    path = dir.path();
    EXPECT_TRUE(fs::path(path).is_absolute()) << path;
    EXPECT_EQ(fs::status(path).permissions() & fs::perms::all, fs::perms::owner_all);
    fs::create_directories(path + "/a/b");
    make_file(path + "/a/b/file", 4096);
    TmpDir inner(path);
    EXPECT_EQ(inner.path().rfind(path + "/", 0), 0u) << inner.path();
  }
  EXPECT_FALSE(fs::exists(path)) << path;
}

TEST(TmpDir, FollowsTmpdir) {
  ScopedTmpdir tmp;
  std::string path;
  {
    TmpDir dir;
    path = dir.path();
    EXPECT_EQ(fs::path(path).parent_path(), fs::path(tmp.path()));
  }
  EXPECT_TRUE(tmp.empty());
}

TEST(HaveProgram, SearchesPath) {
  EXPECT_TRUE(have_program("sh"));
  EXPECT_TRUE(have_program("/bin/sh"));
  EXPECT_FALSE(have_program("nbdpp-no-such-program"));
  EXPECT_FALSE(have_program("/nbdpp/no/such/program"));
  EXPECT_FALSE(have_program("/tmp"));  // a directory is not a program
}

TEST(FreeTcpPort, CanBeBound) {
  const std::string port = free_tcp_port();
  ASSERT_FALSE(port.empty());
  const Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(std::stoi(port)));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sin), sizeof sin), 0) << std::strerror(errno);
}

TEST(RunOrFail, ReportsExitStatusAndOutput) {
  EXPECT_TRUE(run_or_fail({"true"}));
  bool ok = true;
  EXPECT_NONFATAL_FAILURE(ok = run_or_fail({"sh", "-c", "echo oops >&2; exit 3"}), "exit status 3");
  EXPECT_FALSE(ok);
  EXPECT_NONFATAL_FAILURE(ok = run_or_fail({"sh", "-c", "echo oops >&2; exit 3"}), "oops");
  EXPECT_NONFATAL_FAILURE(ok = run_or_fail({"nbdpp-no-such-program"}), "cannot start nbdpp-no-such-program");
  EXPECT_FALSE(ok);
}

TEST(Nbdkit, UnixSocket) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto server = start_nbdkit({"memory", "1M"});
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->unix_socket(), server->dir() + "/sock");
  EXPECT_EQ(server->uri(), "nbd+unix:///?socket=" + server->unix_socket());
  EXPECT_EQ(server->export_uri("a b"), "nbd+unix:///a%20b?socket=" + server->unix_socket());
  EXPECT_TRUE(server->host().empty());
  EXPECT_TRUE(server->port().empty());
  expect_greeting(*server);
  expect_greeting(*server);  // serves more than one client
  expect_clean_stop(std::move(server));
}

TEST(Nbdkit, TcpWithExportName) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto server = start_nbdkit({"memory", "1M"}, true, "foo");
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(server->unix_socket().empty());
  EXPECT_EQ(server->host(), "127.0.0.1");
  EXPECT_EQ(server->uri(), "nbd://127.0.0.1:" + server->port() + "/foo");
  expect_greeting(*server);
  EXPECT_FALSE(process_gone(server->pid()));
  expect_clean_stop(std::move(server));
}

TEST(Nbdkit, KillNow) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto server = start_nbdkit({"memory", "1M"});
  ASSERT_NE(server, nullptr);
  const Fd client = connect_to(*server);
  ASSERT_GE(client.get(), 0);
  EXPECT_EQ(read_bytes(client, 8), "NBDMAGIC");
  EXPECT_FALSE(process_gone(server->pid()));
  server->kill_now();
  EXPECT_TRUE(process_gone(server->pid()));
  EXPECT_TRUE(sees_eof(client));  // the client sees the connection end
  EXPECT_LT(connect_to(*server).get(), 0);
  server->kill_now();  // a second time does nothing
  expect_clean_stop(std::move(server));
}

TEST(Nbdkit, FailureShowsTheLogAndLeavesNothing) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  ScopedTmpdir tmp;
  std::unique_ptr<Server> server;
  EXPECT_NONFATAL_FAILURE(server = start_nbdkit({"nbdpp-no-such-plugin"}), "cannot open plugin");
  EXPECT_EQ(server, nullptr);
  EXPECT_NONFATAL_FAILURE(server = start_nbdkit({"memory", "1M", "nbdpp-bad=1"}, true), "unknown parameter");
  EXPECT_EQ(server, nullptr);
  EXPECT_TRUE(tmp.empty());
}

TEST(QemuNbd, RawImageOverUnixAndTcp) {
  NBD_TEST_REQUIRE_PROGRAM("qemu-nbd");
  NBD_TEST_REQUIRE_PROGRAM("qemu-img");
  TmpDir images;
  const std::string image = images.path() + "/disk.img";
  ASSERT_TRUE(run_or_fail({"qemu-img", "create", "-q", "-f", "raw", image, "1M"}));

  auto unix_server = start_qemu_nbd(image, "raw", {"--shared=0"});
  ASSERT_NE(unix_server, nullptr);
  EXPECT_EQ(unix_server->uri(), "nbd+unix:///?socket=" + unix_server->unix_socket());
  expect_greeting(*unix_server);
  expect_greeting(*unix_server);

  auto tcp_server = start_qemu_nbd(image, "raw", {"-r"}, true, "disk");
  ASSERT_NE(tcp_server, nullptr);
  EXPECT_EQ(tcp_server->uri(), "nbd://127.0.0.1:" + tcp_server->port() + "/disk");
  expect_greeting(*tcp_server);

  expect_clean_stop(std::move(unix_server));
  expect_clean_stop(std::move(tcp_server));
}

TEST(QemuNbd, KillNowAndBadImage) {
  NBD_TEST_REQUIRE_PROGRAM("qemu-nbd");
  NBD_TEST_REQUIRE_PROGRAM("qemu-img");
  TmpDir images;
  const std::string image = images.path() + "/disk.qcow2";
  ASSERT_TRUE(run_or_fail({"qemu-img", "create", "-q", "-f", "qcow2", image, "1M"}));
  auto server = start_qemu_nbd(image, "qcow2");
  ASSERT_NE(server, nullptr);
  EXPECT_FALSE(process_gone(server->pid()));
  server->kill_now();
  EXPECT_TRUE(process_gone(server->pid()));
  expect_clean_stop(std::move(server));

  std::unique_ptr<Server> bad;
  EXPECT_NONFATAL_FAILURE(bad = start_qemu_nbd(images.path() + "/missing.img", "raw"), "missing.img");
  EXPECT_EQ(bad, nullptr);
}

TEST(NbdServer, TwoExportsAndConnectionChildren) {
  NBD_TEST_REQUIRE_PROGRAM("nbd-server");
  TmpDir files;
  auto server = start_nbd_server({{"disk1", make_file(files.path() + "/disk1.img", 1 << 20)},
                                  {"ro", make_file(files.path() + "/ro.img", 1 << 20), true}});
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->uri(), "nbd://127.0.0.1:" + server->port() + "/disk1");
  EXPECT_EQ(server->export_uri("ro"), "nbd://127.0.0.1:" + server->port() + "/ro");
  expect_greeting(*server);

  // A client still connected at the end has its own nbd-server process, which must go too.
  const Fd client = connect_to(*server);
  ASSERT_GE(client.get(), 0);
  EXPECT_EQ(read_bytes(client, 8), "NBDMAGIC");
  const std::vector<pid_t> children = children_of(server->pid());
  EXPECT_FALSE(children.empty());
  expect_clean_stop(std::move(server));
  for (const pid_t child : children)
    EXPECT_TRUE(process_gone(child)) << "connection process " << child;
  EXPECT_TRUE(sees_eof(client));
}

TEST(NbdServer, KillNow) {
  NBD_TEST_REQUIRE_PROGRAM("nbd-server");
  TmpDir files;
  auto server = start_nbd_server({{"disk", make_file(files.path() + "/disk.img", 1 << 20)}});
  ASSERT_NE(server, nullptr);
  const Fd client = connect_to(*server);
  ASSERT_GE(client.get(), 0);
  EXPECT_EQ(read_bytes(client, 8), "NBDMAGIC");
  const std::vector<pid_t> children = children_of(server->pid());
  EXPECT_FALSE(process_gone(server->pid()));
  server->kill_now();
  EXPECT_TRUE(process_gone(server->pid()));
  for (const pid_t child : children)
    EXPECT_TRUE(process_gone(child)) << "connection process " << child;
  EXPECT_TRUE(sees_eof(client));
  EXPECT_LT(connect_to(*server).get(), 0);
  expect_clean_stop(std::move(server));
}

TEST(NbdServer, RejectsExportsItCannotWrite) {
  std::unique_ptr<Server> server;
  EXPECT_NONFATAL_FAILURE(server = start_nbd_server({}), "no exports");
  EXPECT_NONFATAL_FAILURE(server = start_nbd_server({{"generic", "/dev/null"}}), "config file");
  EXPECT_NONFATAL_FAILURE(server = start_nbd_server({{"a]b", "/dev/null"}}), "config file");
  EXPECT_EQ(server, nullptr);
}

// The URIs are right for a real client: Debian's nbdinfo (libnbd 1.14) reads each export's size.
TEST(Uris, WorkWithNbdinfo) {
  NBD_TEST_REQUIRE_PROGRAM("nbdinfo");
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  NBD_TEST_REQUIRE_PROGRAM("qemu-nbd");
  NBD_TEST_REQUIRE_PROGRAM("nbd-server");
  TmpDir files;
  const std::string image = make_file(files.path() + "/disk.img", 1 << 20);
  std::vector<std::string> uris;
  auto nbdkit_unix = start_nbdkit({"memory", "1M"});
  auto nbdkit_tcp = start_nbdkit({"memory", "1M"}, true, "any name");
  auto qemu = start_qemu_nbd(image, "raw", {}, false, "q");
  auto nbd_server = start_nbd_server({{"one", image}, {"two", image, true}});
  ASSERT_TRUE(nbdkit_unix && nbdkit_tcp && qemu && nbd_server);
  for (const auto& uri : {nbdkit_unix->uri(), nbdkit_tcp->uri(), qemu->uri(), nbd_server->uri(),
                          nbd_server->export_uri("two")})
    EXPECT_TRUE(run_or_fail({"nbdinfo", "--size", uri}));
}

}  // namespace
}  // namespace nbd_test
