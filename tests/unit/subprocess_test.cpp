// subprocess_test.cpp: the owners of what the connect calls start outside the process: a
// Subprocess reaps its child, a TmpDir removes its socket and itself.
#include "subprocess.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace {

// A child that exits at once, or waits for a signal.
pid_t start_child(bool wait_for_signal) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (wait_for_signal)
      pause();
    _exit(0);
  }
  return pid;
}

// No child pid is left to reap: it was reaped already.
bool reaped(pid_t pid) { return waitpid(pid, nullptr, WNOHANG) == -1 && errno == ECHILD; }

bool exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

TEST(Subprocess, ReapsAChildThatExitsByItself) {
  const pid_t pid = start_child(false);
  ASSERT_GT(pid, 0);
  {
    nbd::Subprocess s(pid, false);
    EXPECT_TRUE(s);
    EXPECT_EQ(s.pid(), pid);
  }
  EXPECT_TRUE(reaped(pid));
}

TEST(Subprocess, TerminateStopsAChildThatWouldNotExit) {
  const pid_t pid = start_child(true);
  ASSERT_GT(pid, 0);
  { nbd::Subprocess s(pid, true); }
  EXPECT_TRUE(reaped(pid));
}

TEST(Subprocess, MovingPassesTheChildOnAndResetReapsItOnce) {
  const pid_t pid = start_child(true);
  ASSERT_GT(pid, 0);
  nbd::Subprocess a(pid, true);
  nbd::Subprocess b;
  EXPECT_FALSE(b);
  EXPECT_EQ(b.pid(), -1);
  b = std::move(a);
  EXPECT_FALSE(a);  // a moved-from Subprocess owns nothing
  EXPECT_EQ(b.pid(), pid);
  b.reset();
  EXPECT_FALSE(b);
  EXPECT_TRUE(reaped(pid));
}

TEST(TmpDir, RemovesItsSocketAndItself) {
  std::string dir, sock;
  {
    nbd::TmpDir d;
    EXPECT_TRUE(d.empty());
    ASSERT_EQ(d.make("/tmp/nbdpp-testXXXXXX"), 0) << std::strerror(errno);
    EXPECT_FALSE(d.empty());
    dir = d.path();
    sock = d.socket_path();
    EXPECT_EQ(sock, dir + "/sock");
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_un sun {};
    sun.sun_family = AF_UNIX;
    ASSERT_LT(sock.size(), sizeof sun.sun_path);
    std::memcpy(sun.sun_path, sock.c_str(), sock.size() + 1);
    EXPECT_EQ(bind(fd, reinterpret_cast<struct sockaddr*>(&sun), sizeof sun), 0);
    close(fd);
    EXPECT_TRUE(exists(sock));
  }
  EXPECT_FALSE(exists(sock));
  EXPECT_FALSE(exists(dir));
}

TEST(TmpDir, AFailedMakeLeavesItEmpty) {
  nbd::TmpDir d;
  EXPECT_EQ(d.make("/tmp/no-template"), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_TRUE(d.empty());
}

}  // namespace
