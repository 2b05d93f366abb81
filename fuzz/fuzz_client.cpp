// fuzz_client.cpp: the libFuzzer target.  An input is one byte of client settings (session.hpp)
// followed by everything the server sends; the whole client runs against it over a socketpair,
// in this thread, deterministically.  With NBD_FUZZ_EXPECT_CLEAN=1 in the environment an input
// must also replay to a clean session (how the ctest checks the recorded corpus).
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "session.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
    return 0;
  nbd_fuzz::BufferServer server(sv[0], data + 1, size - 1);
  const nbd_fuzz::Outcome out = nbd_fuzz::run_session(nbd_fuzz::Settings::decode(data[0]), sv[1], server);
  ::close(sv[0]);
  static const bool expect_clean = [] {
    const char* s = std::getenv("NBD_FUZZ_EXPECT_CLEAN");
    return s != nullptr && *s != '\0' && std::strcmp(s, "0") != 0;
  }();
  if (expect_clean && !out.clean()) {
    std::fprintf(stderr, "nbd_fuzz: the input did not replay to a clean session: %s\n", out.summary().c_str());
    std::abort();
  }
  return 0;
}
