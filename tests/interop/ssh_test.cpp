// ssh_test.cpp: nbd+ssh:// and nbds+ssh:// URIs (libnbd 1.22) against an sshd the test starts on a
// free loopback port with its own host key, client key and authorized_keys, tunnelling to nbdkit
// on a Unix socket.  The library runs plain `ssh`, so the test puts first in PATH a wrapper that
// adds `-F <the test's ssh config>` and records the arguments it was given.
#include <fcntl.h>
#include <libnbd.h>
#include <poll.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/io_helpers.hpp"
#include "common/servers.hpp"
#include "common/tls_pki.hpp"

extern char** environ;

namespace {

using nbd_test::ApiTest;
using nbd_test::last_error_is;
using nbd_test::round_trip;
using nbd_test::Server;
using nbd_test::take;
using nbd_test::TmpDir;

constexpr const char* kSshd = "/usr/sbin/sshd";

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool write_text(const std::string& path, const std::string& text, mode_t mode = 0600) {
  std::ofstream out(path);
  out << text;
  out.close();
  return out && ::chmod(path.c_str(), mode) == 0;
}

// The first line of a file ssh-keygen wrote (a public key).
std::string first_line(const std::string& path) {
  std::string text = read_text(path);
  return text.substr(0, text.find('\n'));
}

// sshd -D -e -f CONFIG as our child, its stderr on a pipe.  ready() waits (poll, bounded) for
// "Server listening on"; the destructor stops it through Server (SIGTERM, reaped).
class Sshd {
 public:
  // Starts sshd with config; on failure returns nullptr and sets why.
  static std::unique_ptr<Sshd> start(TmpDir dir, const std::string& config, std::string& why) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) == -1) {
      why = "pipe2 failed";
      return nullptr;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
    std::vector<std::string> args{kSshd, "-D", "-e", "-f", config};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int err = posix_spawn(&pid, kSshd, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (err != 0) {
      ::close(fds[0]);
      why = std::string("cannot run ") + kSshd + ": " + std::strerror(err);
      return nullptr;
    }
    auto s = std::unique_ptr<Sshd>(new Sshd(std::move(dir), pid, fds[0]));
    if (!s->wait_listening(why))
      return nullptr;
    return s;
  }

  ~Sshd() { ::close(log_fd_); }

  std::string log() {
    drain(0);
    return log_;
  }

 private:
  Sshd(TmpDir dir, pid_t pid, int log_fd)
      : server_(std::move(dir), pid, false, nbd_test::Address{}), log_fd_(log_fd) {}

  // Reads what sshd wrote, waiting up to timeout_ms for the first bytes; false at EOF.
  bool drain(int timeout_ms) {
    struct pollfd p {log_fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0)
      return true;
    char buf[4096];
    const ssize_t n = ::read(log_fd_, buf, sizeof buf);
    if (n <= 0)
      return false;
    log_.append(buf, static_cast<size_t>(n));
    return true;
  }

  bool wait_listening(std::string& why) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (log_.find("Server listening on") == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline || !drain(1000)) {
        why = "sshd did not start listening: " + log_;
        return false;
      }
    }
    return true;
  }

  Server server_;  // first member to go: the pipe closes after sshd is reaped
  int log_fd_;
  std::string log_;
};

// One sshd, keys, ssh wrapper and nbdkit per test.  Skips (with the reason) when openssh-server,
// ssh, nc or nbdkit is missing or sshd cannot run here.
class Ssh : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    for (const char* p : {kSshd, "ssh", "ssh-keygen", "nc", "nbdkit"})
      if (!nbd_test::have_program(p))
        GTEST_SKIP() << p << " not installed (Debian: openssh-server, netcat-openbsd, nbdkit)";
    const struct passwd* pw = getpwuid(geteuid());
    ASSERT_NE(pw, nullptr);
    user_ = pw->pw_name;
    // As root, sshd insists on its privilege separation directory, which the package's service
    // creates at boot; a container never booted it.
    if (geteuid() == 0 && ::access("/run/sshd", F_OK) != 0 && ::mkdir("/run/sshd", 0755) != 0)
      GTEST_SKIP() << "sshd needs /run/sshd, which cannot be made: " << std::strerror(errno);

    TmpDir dir;
    d_ = dir.path();
    ASSERT_TRUE(nbd_test::run_or_fail({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d_ + "/host_key"}));
    ASSERT_TRUE(nbd_test::run_or_fail({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d_ + "/client_key"}));
    ASSERT_TRUE(write_text(d_ + "/authorized_keys", first_line(d_ + "/client_key.pub") + "\n"));
    port_ = nbd_test::free_tcp_port();
    ASSERT_TRUE(write_text(d_ + "/sshd_config",
                           "Port " + port_ + "\nListenAddress 127.0.0.1\nHostKey " + d_ +
                               "/host_key\nAuthorizedKeysFile " + d_ +
                               "/authorized_keys\nPidFile none\nUsePAM no\nStrictModes no\n"
                               "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                               "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
                               "AllowUsers " + user_ + "\n"));
    ASSERT_TRUE(write_text(d_ + "/known_hosts",
                           "[127.0.0.1]:" + port_ + " " + first_line(d_ + "/host_key.pub") + "\n"));
    ASSERT_TRUE(write_text(d_ + "/ssh_config",
                           "Host *\n  IdentityFile " + d_ + "/client_key\n  IdentitiesOnly yes\n"
                           "  UserKnownHostsFile " + d_ + "/known_hosts\n"
                           "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
                           "  BatchMode yes\n  User " + user_ + "\n  LogLevel ERROR\n"));
    // ssh reads ~/.ssh from the passwd entry, not $HOME, so -F is the way to use our files.
    ASSERT_EQ(::mkdir((d_ + "/bin").c_str(), 0755), 0);
    ASSERT_TRUE(write_text(d_ + "/bin/ssh",
                           "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + d_ + "/ssh-args\nexec /usr/bin/ssh -F " +
                               d_ + "/ssh_config \"$@\"\n",
                           0755));
    std::string why;
    sshd_ = Sshd::start(std::move(dir), d_ + "/sshd_config", why);
    if (!sshd_)
      GTEST_SKIP() << "sshd cannot run here: " << why;

    const char* path = std::getenv("PATH");
    old_path_ = path != nullptr ? path : "/usr/bin:/bin";
    ASSERT_EQ(::setenv("PATH", (d_ + "/bin:" + old_path_).c_str(), 1), 0);
    path_set_ = true;
  }

  void TearDown() override {
    ApiTest::TearDown();  // the handle first: closing it stops ssh
    nbd_.reset();
    if (path_set_)
      ::setenv("PATH", old_path_.c_str(), 1);
    if (HasFailure() && sshd_)
      std::cerr << "sshd log:\n" << sshd_->log();
    sshd_.reset();
  }

  // nbdkit memory 1M (plus options) on a Unix socket, the far end of the tunnel.
  void start_nbdkit(std::vector<std::string> options = {}) {
    options.insert(options.end(), {"memory", "1M"});
    nbd_ = nbd_test::start_nbdkit(std::move(options));
    ASSERT_TRUE(nbd_);
  }

  // nbd+ssh://127.0.0.1:PORT/?socket=SOCK (and more query), with the scheme given.
  std::string ssh_uri(const std::string& scheme, const std::string& query = "") const {
    return scheme + "://127.0.0.1:" + port_ + "/?socket=" + nbd_->unix_socket() + query;
  }

  // The arguments the ssh wrapper was last run with, one a line; "" if it never ran.
  std::string ssh_args() const { return read_text(d_ + "/ssh-args"); }

  std::string d_, port_, user_, old_path_;
  bool path_set_ = false;
  std::unique_ptr<Sshd> sshd_;
  std::unique_ptr<Server> nbd_;
};

// Data written through the tunnel is on the server: read back through it, and through a direct
// connection to nbdkit's socket.  The command is libnbd's; nbd_get_uri gives the URI back.
TEST_F(Ssh, TunnelsToTheRemoteUnixSocket) {
  start_nbdkit();
  const std::string uri = ssh_uri("nbd+ssh");
  ASSERT_EQ(nbd_connect_uri(h, uri.c_str()), 0) << nbd_get_error() << "\nsshd: " << sshd_->log();
  EXPECT_EQ(ssh_args(), "-p\n" + port_ + "\n127.0.0.1\nnc\n-U\n" + nbd_->unix_socket() + "\n");
  EXPECT_EQ(nbd_get_size(h), 1048576);
  EXPECT_EQ(nbd_get_tls_negotiated(h), 0);
  round_trip(h, 8192, 65536, 41);
  const auto data = nbd_test::random_bytes(4096, 42);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(take(nbd_get_uri(h)), "nbd+ssh://127.0.0.1:" + port_ + "/?socket=" + nbd_->unix_socket());
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();

  nbd_test::Handle direct;
  ASSERT_EQ(nbd_connect_unix(direct, nbd_->unix_socket().c_str()), 0) << nbd_get_error();
  std::vector<char> back(data.size());
  ASSERT_EQ(nbd_pread(direct, back.data(), back.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, data);
}

// The scheme in any case (libnbd 1.16), and an export name: nbd_get_uri answers in lower case.
TEST_F(Ssh, SchemeInAnyCaseAndExportName) {
  start_nbdkit({"-e", "disk"});
  const std::string uri = "NBD+Ssh://127.0.0.1:" + port_ + "/disk?socket=" + nbd_->unix_socket();
  ASSERT_EQ(nbd_connect_uri(h, uri.c_str()), 0) << nbd_get_error();
  round_trip(h, 0, 4096, 43);
  EXPECT_EQ(take(nbd_get_uri(h)), "nbd+ssh://127.0.0.1:" + port_ + "/disk?socket=" + nbd_->unix_socket());
  char* name = nbd_get_export_name(h);
  EXPECT_EQ(take(name), "disk");
  // netcat-openbsd keeps the tunnel open after its input ends, so without NBD_CMD_DISC nothing
  // would close it, and nbd_close would wait 2 s before it stops ssh.
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
}

// Without socket= the remote end is localhost:10809 (libnbd: "nc localhost 10809"), whatever
// listens there, if anything; only the command is asserted.
TEST_F(Ssh, WithoutSocketTheRemoteIsLocalhost10809) {
  const std::string uri = "nbd+ssh://127.0.0.1:" + port_ + "/";
  nbd_connect_uri(h, uri.c_str());
  EXPECT_EQ(ssh_args(), "-p\n" + port_ + "\n127.0.0.1\nnc\nlocalhost\n10809\n");
}

// nbds+ssh: TLS over the tunnel, required.  The certificate is checked for its chain only: the
// ssh server's name is not the NBD server's.
TEST_F(Ssh, NbdsSshRequiresTls) {
  if (!nbd_test::have_pki_tools())
    GTEST_SKIP() << "certtool and psktool (gnutls-bin) not installed";
  const nbd_test::Pki* pki = nbd_test::test_pki();
  ASSERT_NE(pki, nullptr);
  start_nbdkit({"--tls=require", "--tls-certificates=" + pki->dir});
  ASSERT_EQ(nbd_set_uri_allow_local_file(h, true), 0);
  const std::string uri = ssh_uri("nbds+ssh", "&tls-certificates=" + pki->dir);
  ASSERT_EQ(nbd_connect_uri(h, uri.c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_tls(h), LIBNBD_TLS_REQUIRE);
  EXPECT_EQ(nbd_get_tls_negotiated(h), 1);
  round_trip(h, 0, 65536, 44);
  EXPECT_EQ(take(nbd_get_uri(h)), uri);
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  close_handle();

  // Against a server without TLS: refused, never plaintext.
  nbd_.reset();
  start_nbdkit();
  nbd_test::Handle plain;
  const int rc = nbd_connect_uri(plain, ssh_uri("nbds+ssh").c_str());
  EXPECT_EQ(rc, -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_connect_uri: handshake: TLS is required but the server refused NBD_OPT_STARTTLS"));
  EXPECT_EQ(nbd_aio_is_dead(plain), 1);
}

// nbd_set_uri_allow_transports without LIBNBD_ALLOW_TRANSPORT_SSH refuses ssh URIs with the
// error every transport gets, before anything runs; so does a TLS rule they break.
TEST_F(Ssh, AllowListsRefuseBeforeRunningSsh) {
  start_nbdkit();
  ASSERT_EQ(nbd_set_uri_allow_transports(h, LIBNBD_ALLOW_TRANSPORT_TCP | LIBNBD_ALLOW_TRANSPORT_UNIX |
                                                LIBNBD_ALLOW_TRANSPORT_VSOCK),
            0);
  EXPECT_EQ(nbd_connect_uri(h, ssh_uri("nbd+ssh").c_str()), -1);
  EXPECT_TRUE(last_error_is(EPERM, "nbd_connect_uri: URI transport is not permitted by nbd_set_uri_allow_transports"));
  EXPECT_EQ(nbd_aio_is_created(h), 1);

  nbd_test::Handle tls_only;
  ASSERT_EQ(nbd_set_uri_allow_tls(tls_only, LIBNBD_TLS_REQUIRE), 0);
  EXPECT_EQ(nbd_connect_uri(tls_only, ssh_uri("nbd+ssh").c_str()), -1);
  EXPECT_TRUE(last_error_is(EPERM, "nbd_connect_uri: URI does not use TLS, which nbd_set_uri_allow_tls does not permit"));
  EXPECT_EQ(ssh_args(), "") << "ssh ran although the URI was refused";

  nbd_test::Handle allowed;
  ASSERT_EQ(nbd_set_uri_allow_transports(allowed, LIBNBD_ALLOW_TRANSPORT_SSH), 0);
  ASSERT_EQ(nbd_connect_uri(allowed, ssh_uri("nbd+ssh").c_str()), 0) << nbd_get_error();
  round_trip(allowed, 0, 512, 45);
  ASSERT_EQ(nbd_shutdown(allowed, 0), 0) << nbd_get_error();
}

// Malformed ssh URIs fail before ssh runs, with EINVAL.
TEST_F(Ssh, MalformedUrisAreRefused) {
  EXPECT_EQ(nbd_connect_uri(h, "nbd+ssh:///?socket=/s"), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_connect_uri: nbd+ssh: URIs need the name of the ssh server"));
  EXPECT_EQ(nbd_connect_uri(h, "nbd+ssh://-oProxyCommand=x/"), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_connect_uri: invalid ssh server name in URI (it must not start with '-'): "));
  EXPECT_EQ(ssh_args(), "");
}

}  // namespace
