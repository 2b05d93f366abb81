// record_main.cpp: fuzz_record SOCKET SETTINGS OUTPUT: runs the fuzzer's client session against
// the real server listening on the Unix socket SOCKET, with SETTINGS (a number, session.hpp),
// and writes a corpus file: the settings byte, then every byte the server sent.  Exits 1 if
// the session was not clean (such a recording would not replay to the same session).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "session.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s SOCKET SETTINGS OUTPUT\n", argv[0]);
    return 2;
  }
  const int real = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
  if (real == -1 || ::connect(real, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) == -1) {
    std::perror(argv[1]);
    return 1;
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
    std::perror("socketpair");
    return 1;
  }
  const auto settings = nbd_fuzz::Settings::decode(static_cast<uint8_t>(std::strtoul(argv[2], nullptr, 0)));
  nbd_fuzz::RelayServer server(sv[0], real);
  const nbd_fuzz::Outcome out = nbd_fuzz::run_session(settings, sv[1], server);
  ::close(sv[0]);
  ::close(real);
  std::ofstream f(argv[3], std::ios::binary);
  const char s = static_cast<char>(settings.encode());
  f.write(&s, 1);
  f.write(reinterpret_cast<const char*>(server.recording().data()),
          static_cast<std::streamsize>(server.recording().size()));
  std::printf("%s: %zu bytes: %s\n", argv[3], server.recording().size() + 1, out.summary().c_str());
  return out.clean() && f.good() ? 0 : 1;
}
