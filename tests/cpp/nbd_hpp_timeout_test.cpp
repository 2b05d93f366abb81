// nbd_hpp_timeout_test.cpp: issue 21 through the C++ wrapper: a read past set_timeout throws
// nbd::Error with ETIMEDOUT and leaves the handle usable, and set_reconnect_delay carries a handle
// over an nbdkit killed with SIGKILL and started again on the same socket.
#include <nbd/nbd.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/servers.hpp"

namespace {

bool have_nbdkit() { return std::system("command -v nbdkit >/dev/null 2>&1") == 0; }

std::vector<std::byte> pattern(size_t size, int seed) {
  std::vector<std::byte> v(size);
  for (size_t i = 0; i < size; ++i)
    v[i] = static_cast<std::byte>((i * 7 + static_cast<size_t>(seed)) & 0xff);
  return v;
}

TEST(Timeout, ReadPastTheLimitThrowsEtimedoutAndTheHandleGoesOn) {
  if (!have_nbdkit())
    GTEST_SKIP() << "nbdkit not installed";
  nbd::Handle h;
  // Reads take 500 ms; writes are not delayed.  The buffer is not zeroed when the read is issued,
  // so that any write into it shows.
  h.set_pread_initialize(false);
  h.connect_command({"nbdkit", "-s", "--exit-with-parent", "--filter=delay", "memory", "1M", "rdelay=500ms"});
  h.set_timeout(100);
  EXPECT_EQ(h.get_timeout(), 100u);
  const std::vector<std::byte> untouched(4096, std::byte{0x3f});
  std::vector<std::byte> buf = untouched;
  const auto start = std::chrono::steady_clock::now();
  try {
    h.pread(buf, 0);
    ADD_FAILURE() << "the read did not time out";
  } catch (const nbd::Error& e) {
    EXPECT_EQ(e.errnum(), ETIMEDOUT) << e.what();
    EXPECT_FALSE(e.handle_dead());
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(400));
  // The read is abandoned: still in flight, and the handle goes on.
  EXPECT_EQ(h.aio_in_flight(), 1);
  h.pwrite(pattern(4096, 1), 8192);
  h.flush();
  // Its reply, when it comes, is thrown away: the buffer is never written.
  while (h.aio_in_flight() > 0)
    ASSERT_EQ(h.poll(5000), 1);
  EXPECT_EQ(buf, untouched);
}

TEST(Reconnect, NbdkitKilledAndRestartedOnTheSameSocket) {
  if (!have_nbdkit())
    GTEST_SKIP() << "nbdkit not installed";
  nbd_test::TmpDir dir;
  const std::string image = dir.path() + "/disk";
  std::ofstream(image).close();
  std::filesystem::resize_file(image, 1 << 20);
  auto server = nbd_test::start_nbdkit({"file", image});
  ASSERT_TRUE(server);
  nbd::Handle h;
  h.set_reconnect_delay(5000);
  EXPECT_EQ(h.get_reconnect_delay(), 5000u);
  h.connect_uri(server->uri());
  const std::vector<std::byte> before = pattern(65536, 2);
  h.pwrite(before, 0);
  ASSERT_TRUE(server->restart());
  // The next commands find the connection gone, connect again and are sent again.
  const std::vector<std::byte> after = pattern(65536, 3);
  h.pwrite(after, 65536);
  std::vector<std::byte> back(65536);
  h.pread(back, 0);
  EXPECT_EQ(back, before);
  h.pread(back, 65536);
  EXPECT_EQ(back, after);
  EXPECT_EQ(h.stats_reconnections(), 1u);
  h.shutdown();
}

}  // namespace
