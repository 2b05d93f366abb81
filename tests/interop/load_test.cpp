// load_test.cpp: many threads, many handles and many commands in flight against nbdkit memory.
#include <libnbd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/mixed_load.hpp"
#include "common/servers.hpp"

namespace {

constexpr uint64_t kDisk = 64 << 20;

void fill_random(std::mt19937& rng, char* p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = static_cast<char>(rng());
}

}  // namespace

// 4 threads share one handle; each does 200 synchronous pwrite+pread in its own 16M region.
TEST(Load, ThreadsShareOneHandle) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "64M"});
  ASSERT_TRUE(srv);
  nbd_handle* h = nbd_create();
  ASSERT_NE(h, nullptr) << nbd_get_error();
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_get_size(h), int64_t(kDisk));

  constexpr int kThreads = 4, kOps = 200;
  std::atomic<int> failures{0}, done{0};
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      const uint64_t region = kDisk / kThreads, base = region * t;
      std::vector<char> out(65536), in(65536);
      for (int i = 0; i < kOps; i++) {
        const size_t len = 4096 + rng() % (65536 - 4096 + 1);
        const uint64_t off = base + rng() % (region - len + 1);
        fill_random(rng, out.data(), len);
        if (nbd_pwrite(h, out.data(), len, off, 0) != 0) {
          errors[t] = std::string("pwrite: ") + nbd_get_error();
          failures++;
          return;
        }
        std::memset(in.data(), 0, len);
        if (nbd_pread(h, in.data(), len, off, 0) != 0) {
          errors[t] = std::string("pread: ") + nbd_get_error();
          failures++;
          return;
        }
        if (std::memcmp(in.data(), out.data(), len) != 0) {
          errors[t] = "data mismatch at op " + std::to_string(i) + " off " + std::to_string(off) +
                      " len " + std::to_string(len);
          failures++;
          return;
        }
        done++;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; t++) EXPECT_EQ(errors[t], "") << "thread " << t;
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(done.load(), kThreads * kOps);
  EXPECT_EQ(nbd_aio_in_flight(h), 0);
  EXPECT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  nbd_close(h);
}

// 4 handles, each in its own thread with 256 aio commands in flight, driven by nbd_poll.
TEST(Load, HandlesWithManyAioCommandsInFlight) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "64M"});
  ASSERT_TRUE(srv);
  constexpr int kHandles = 4;
  std::vector<std::string> results(kHandles);
  std::vector<std::thread> threads;
  for (int t = 0; t < kHandles; t++)
    threads.emplace_back([&, t] { results[t] = nbd_test::drive_mixed_load(srv->uri(), uint64_t(t) * (16 << 20), 200 + t); });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kHandles; t++) EXPECT_EQ(results[t], "") << "handle " << t;
}

// 500 aio reads issued before any poll, then polled to completion.
TEST(Load, FiveHundredReadsBeforePolling) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"pattern", "64M"});
  ASSERT_TRUE(srv);
  nbd_handle* h = nbd_create();
  ASSERT_NE(h, nullptr) << nbd_get_error();
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  constexpr int kReads = 500;
  std::vector<std::vector<char>> bufs(kReads, std::vector<char>(4096));
  std::vector<std::atomic<int>> calls(kReads), frees(kReads);
  struct Ud {
    std::vector<std::atomic<int>>* calls;
    std::vector<std::atomic<int>>* frees;
    int i;
  };
  std::vector<Ud> uds;
  uds.reserve(kReads);
  std::vector<int64_t> cookies;
  for (int i = 0; i < kReads; i++) {
    uds.push_back(Ud{&calls, &frees, i});
    nbd_completion_callback cb{[](void* ud, int* error) {
                                 auto* u = static_cast<Ud*>(ud);
                                 (*u->calls)[u->i]++;
                                 EXPECT_EQ(*error, 0);
                                 return 1;
                               },
                               &uds.back(), [](void* ud) {
                                 auto* u = static_cast<Ud*>(ud);
                                 (*u->frees)[u->i]++;
                               }};
    const int64_t c = nbd_aio_pread(h, bufs[i].data(), 4096, uint64_t(i) * 4096 * 7, cb, 0);
    ASSERT_GT(c, 0) << nbd_get_error();
    cookies.push_back(c);
  }
  EXPECT_EQ(nbd_aio_in_flight(h), kReads);
  int polls = 0;
  while (nbd_aio_in_flight(h) > 0) {
    ASSERT_GE(nbd_poll(h, 10000), 0) << nbd_get_error();
    ASSERT_LT(++polls, 100000);
  }
  EXPECT_EQ(nbd_aio_in_flight(h), 0);
  for (int i = 0; i < kReads; i++) {
    EXPECT_EQ(calls[i].load(), 1) << i;
    EXPECT_EQ(frees[i].load(), 1) << i;
    // Already retired by the callback returning 1: libnbd 1.14 answers 0 (false), not an error.
    EXPECT_EQ(nbd_aio_command_completed(h, cookies[i]), 0) << i;
    // nbdkit pattern: each 8-byte word is its big-endian offset.
    const uint64_t off = uint64_t(i) * 4096 * 7;
    for (size_t w = 0; w < 4096; w += 8) {
      uint64_t v = 0;
      for (int b = 0; b < 8; b++) v = (v << 8) | static_cast<unsigned char>(bufs[i][w + b]);
      if (v != off + w) {
        ADD_FAILURE() << "read " << i << " word " << w << ": " << v << " != " << off + w;
        break;
      }
    }
  }
  for (size_t i = 1; i < cookies.size(); i++) EXPECT_GT(cookies[i], cookies[i - 1]);
  EXPECT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  nbd_close(h);
}
