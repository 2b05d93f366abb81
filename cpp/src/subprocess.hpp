// subprocess.hpp: starting the servers the connect calls run (nbd_connect_command, socket
// activation, ssh), and owners of what they create outside the process: the server's process
// and socket activation's directory.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace nbd {

// A child process we started, reaped when its owner goes: a server may take a moment to exit
// once its socket closes, so it is waited for, then asked (SIGTERM, then SIGKILL) if it
// lingers, and closing a handle never hangs on a server that ignores its closed socket.
// terminate sends SIGTERM at once, for a server that would never exit by itself (a
// socket-activated one keeps listening).
class Subprocess {
 public:
  Subprocess() = default;
  Subprocess(pid_t pid, bool terminate) : pid_(pid), terminate_(terminate) {}
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess() { reset(); }

  // The child's process id, or -1 once there is none.
  pid_t pid() const { return pid_; }
  explicit operator bool() const { return pid_ > 0; }
  // Reaps the child now (as the destructor does); there is none afterwards.
  void reset() noexcept;

 private:
  pid_t pid_ = -1;
  bool terminate_ = false;
};

// A temporary directory (mkdtemp(3)) holding at most one socket, socket_path(): both are
// removed when the owner goes.
class TmpDir {
 public:
  TmpDir() = default;
  TmpDir(const TmpDir&) = delete;
  TmpDir& operator=(const TmpDir&) = delete;
  ~TmpDir();

  // Makes the directory from a mkdtemp template ("/tmp/nbdppXXXXXX"): -1 with errno if it
  // cannot, else 0.  Called once.
  int make(std::string tmpl);
  bool empty() const { return path_.empty(); }
  const std::string& path() const { return path_; }
  // Where the directory's socket goes.
  std::string socket_path() const { return path_ + "/sock"; }

 private:
  std::string path_;
};

// Starts argv[0] (searched in PATH) with argv, sock as its stdin and stdout
// (nbd_connect_command): its pid, or -1 with errno.
pid_t spawn_on_socket(const std::vector<std::string>& argv, int sock);
// Starts argv[0] with argv, the listening socket listen_fd as its fd 3 and the environment of
// sd_listen_fds(3) naming it fd_name ("" for none): its pid, or -1 with errno.
pid_t spawn_socket_activated(const std::vector<std::string>& argv, int listen_fd, const std::string& fd_name);

}  // namespace nbd
