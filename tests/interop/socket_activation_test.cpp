// socket_activation_test.cpp: the environment nbd_connect_systemd_socket_activation gives its child
// (sd_listen_fds(3)): LISTEN_PID, LISTEN_FDS=1 and LISTEN_FDNAMES first, the name set with
// nbd_set_socket_activation_name or "unknown" (libnbd 1.16), then the rest of ours.  The child is a
// shell script that copies its environment as it was exec'd (/proc/$$/environ: in the order the
// library built it, which `env` in a shell would not keep) and its pid, then execs nbdkit on the
// inherited socket under the same pid.
#include <libnbd.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/io_helpers.hpp"
#include "common/servers.hpp"

namespace {

using nbd_test::ApiTest;
using nbd_test::last_error_is;
using nbd_test::round_trip;
using nbd_test::take;

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

// Sets an environment variable for one test and puts back what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) {
      had_ = true;
      old_ = old;
    }
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_)
      ::setenv(name_.c_str(), old_.c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_, old_;
  bool had_ = false;
};

class SocketActivation : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    NBD_TEST_REQUIRE_PROGRAM("nbdkit");
    script_ = dir_.path() + "/record-env";
    env_file_ = dir_.path() + "/env";
    pid_file_ = dir_.path() + "/pid";
    std::ofstream out(script_);
    out << "#!/bin/sh\ntr '\\000' '\\n' < /proc/$$/environ > " << env_file_ << "\necho $$ > "
        << pid_file_ << "\nexec nbdkit memory 1M\n";
    out.close();
    ASSERT_TRUE(out);
    ASSERT_EQ(::chmod(script_.c_str(), 0755), 0);
  }

  // Connects through the script, checks the connection works, and returns the child's
  // environment, one variable a line, in the order the child received it.
  std::vector<std::string> connect_and_record() {
    char* argv[] = {script_.data(), nullptr};
    EXPECT_EQ(nbd_connect_systemd_socket_activation(h, argv), 0) << nbd_get_error();
    EXPECT_EQ(nbd_get_size(h), 1048576);
    round_trip(h, 0, 4096, 51);
    EXPECT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
    return lines_of(env_file_);
  }

  static size_t count_prefix(const std::vector<std::string>& env, const std::string& prefix) {
    size_t n = 0;
    for (const auto& e : env)
      n += e.rfind(prefix, 0) == 0 ? 1 : 0;
    return n;
  }

  nbd_test::TmpDir dir_;
  std::string script_, env_file_, pid_file_;
};

// No name set: the server sees LISTEN_FDNAMES=unknown (what sd_listen_fds_with_names reports for
// an unnamed socket), so an inherited LISTEN_FDNAMES never leaks through; the three variables
// come first, as libnbd puts them, and other LISTEN_* variables of ours pass unchanged.
TEST_F(SocketActivation, DefaultNameIsUnknown) {
  ScopedEnv inherited("LISTEN_FDNAMES", "inherited");
  ScopedEnv fds("LISTEN_FDS", "7");
  ScopedEnv other("LISTEN_OTHER", "kept");
  EXPECT_EQ(take(nbd_get_socket_activation_name(h)), "");
  const std::vector<std::string> env = connect_and_record();
  ASSERT_GE(env.size(), 3u);
  const std::vector<std::string> pid = lines_of(pid_file_);
  ASSERT_EQ(pid.size(), 1u);
  EXPECT_EQ(env[0], "LISTEN_PID=" + pid[0]);  // the child's own pid
  EXPECT_EQ(env[1], "LISTEN_FDS=1");
  EXPECT_EQ(env[2], "LISTEN_FDNAMES=unknown");
  EXPECT_EQ(count_prefix(env, "LISTEN_PID="), 1u);
  EXPECT_EQ(count_prefix(env, "LISTEN_FDS="), 1u);
  EXPECT_EQ(count_prefix(env, "LISTEN_FDNAMES="), 1u);
  EXPECT_EQ(count_prefix(env, "LISTEN_OTHER=kept"), 1u);
}

// A name set on the handle reaches the server exactly.
TEST_F(SocketActivation, NameSetIsPassed) {
  ASSERT_EQ(nbd_set_socket_activation_name(h, "disk0"), 0) << nbd_get_error();
  EXPECT_EQ(take(nbd_get_socket_activation_name(h)), "disk0");
  const std::vector<std::string> env = connect_and_record();
  ASSERT_GE(env.size(), 3u);
  EXPECT_EQ(env[2], "LISTEN_FDNAMES=disk0");
  EXPECT_EQ(count_prefix(env, "LISTEN_FDNAMES="), 1u);
}

// Setting the empty string goes back to the default.
TEST_F(SocketActivation, EmptyNameRestoresTheDefault) {
  ASSERT_EQ(nbd_set_socket_activation_name(h, "x"), 0) << nbd_get_error();
  ASSERT_EQ(nbd_set_socket_activation_name(h, ""), 0) << nbd_get_error();
  EXPECT_EQ(take(nbd_get_socket_activation_name(h)), "");
  const std::vector<std::string> env = connect_and_record();
  ASSERT_GE(env.size(), 3u);
  EXPECT_EQ(env[2], "LISTEN_FDNAMES=unknown");
}

// libnbd's man page: a short alphanumeric string (api/settings_test.cpp has the full table).  A
// refused name leaves the one in effect unchanged, and it reaches the server; only before
// connecting.
TEST_F(SocketActivation, SetterRestrictions) {
  ASSERT_EQ(nbd_set_socket_activation_name(h, std::string(32, 'a').c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_set_socket_activation_name(h, std::string(33, 'b').c_str()), -1);
  EXPECT_TRUE(last_error_is(ENAMETOOLONG, "nbd_set_socket_activation_name: socket activation name "
                                          "should be <= 32 characters"));
  // ':' would split LISTEN_FDNAMES into two names (sd_listen_fds_with_names(3)).
  EXPECT_EQ(nbd_set_socket_activation_name(h, "a:b"), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_socket_activation_name: socket activation name "
                                    "should contain only alphanumeric ASCII characters"));
  EXPECT_EQ(take(nbd_get_socket_activation_name(h)), std::string(32, 'a'));
  ASSERT_EQ(nbd_set_socket_activation_name(h, "Disk0"), 0) << nbd_get_error();
  const std::vector<std::string> env = connect_and_record();
  ASSERT_GE(env.size(), 3u);
  EXPECT_EQ(env[2], "LISTEN_FDNAMES=Disk0");
  EXPECT_EQ(nbd_set_socket_activation_name(h, "late"), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_socket_activation_name: invalid state"));
  EXPECT_EQ(take(nbd_get_socket_activation_name(h)), "Disk0");
}

}  // namespace
