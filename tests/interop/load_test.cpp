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

namespace {

// One slot of a region: owned by at most one command at a time.
struct Slot {
  std::vector<char> expected = std::vector<char>(65536, 0);  // what the server holds
  std::vector<char> buf = std::vector<char>(65536);          // the in-flight command's buffer
  bool busy = false;
  bool is_read = false;
  size_t off_in_slot = 0, len = 0;
};

struct Driver {
  std::vector<Slot> slots;
  int completed = 0;
  int verified_reads = 0;
  int verified_writes = 0;
  std::string error;
};

struct Ctx {
  Driver* d;
  size_t slot;
};

int on_complete(void* ud, int* error) {
  auto* c = static_cast<Ctx*>(ud);
  Driver& d = *c->d;
  Slot& s = d.slots[c->slot];
  if (!s.busy && d.error.empty()) d.error = "completion for idle slot " + std::to_string(c->slot);
  if (*error != 0 && d.error.empty()) d.error = "command error " + std::to_string(*error);
  if (*error == 0) {
    if (s.is_read) {
      if (std::memcmp(s.buf.data(), s.expected.data() + s.off_in_slot, s.len) != 0 && d.error.empty())
        d.error = "read mismatch in slot " + std::to_string(c->slot);
      d.verified_reads++;
    } else {
      std::memcpy(s.expected.data() + s.off_in_slot, s.buf.data(), s.len);
      d.verified_writes++;
    }
  }
  s.busy = false;
  d.completed++;
  return 1;  // retire
}

void free_ctx(void* ud) { delete static_cast<Ctx*>(ud); }

// Drives one handle with kSlots commands in flight, kTotal commands in all; returns an error or "".
std::string drive_handle(const std::string& uri, uint64_t base, unsigned seed) {
  constexpr size_t kSlots = 256;
  constexpr int kTotal = 3000;
  nbd_handle* h = nbd_create();
  if (h == nullptr) return std::string("create: ") + nbd_get_error();
  struct Closer {
    nbd_handle* h;
    ~Closer() { nbd_close(h); }
  } closer{h};
  if (nbd_connect_uri(h, uri.c_str()) != 0) return std::string("connect: ") + nbd_get_error();
  Driver d;
  d.slots.resize(kSlots);
  std::mt19937 rng(seed);
  int issued = 0, max_in_flight = 0;
  int issued_in_call = 0;  // completions fired from inside nbd_aio_pread/pwrite
  while (d.completed < kTotal) {
    // Sweep until no slot is free: with nbdpp, commands can complete inside the issuing call.
    bool again = true;
    while (again) {
    again = false;
    for (size_t i = 0; i < kSlots && issued < kTotal; i++) {
      Slot& s = d.slots[i];
      if (s.busy) continue;
      s.busy = true;
      s.is_read = rng() % 2 == 0;
      s.len = 4096 + rng() % (65536 - 4096 + 1);
      s.off_in_slot = rng() % (65536 - s.len + 1);
      const uint64_t off = base + i * 65536 + s.off_in_slot;
      auto* ctx = new Ctx{&d, i};
      nbd_completion_callback cb{on_complete, ctx, free_ctx};
      int64_t cookie;
      if (s.is_read) {
        std::memset(s.buf.data(), 0xee, s.len);
        cookie = nbd_aio_pread(h, s.buf.data(), s.len, off, cb, 0);
      } else {
        fill_random(rng, s.buf.data(), s.len);
        cookie = nbd_aio_pwrite(h, s.buf.data(), s.len, off, cb, 0);
      }
      if (cookie < 0) return std::string("aio issue: ") + nbd_get_error();
      issued++;
      if (!s.busy) {
        issued_in_call++;
        again = true;
      }
    }
    }
    max_in_flight = std::max(max_in_flight, nbd_aio_in_flight(h));
    if (!d.error.empty()) return d.error;
    if (d.completed >= kTotal) break;
    if (nbd_aio_in_flight(h) == 0) return "nothing in flight but only " + std::to_string(d.completed) + " completed";
    const int pr = nbd_poll(h, 10000);
    if (pr < 0) return std::string("poll: ") + nbd_get_error();
    if (pr == 0)
      return "nbd_poll timed out after 10 s: in_flight " + std::to_string(nbd_aio_in_flight(h)) + " issued " +
             std::to_string(issued) + " completed " + std::to_string(d.completed) + " direction " +
             std::to_string(nbd_aio_get_direction(h));
  }
  if (!d.error.empty()) return d.error;
  if (nbd_aio_in_flight(h) != 0) return "in flight after all completed: " + std::to_string(nbd_aio_in_flight(h));
  // libnbd 1.14 runs completion callbacks only from nbd_poll / aio_notify_* / sync calls, never from
  // inside nbd_aio_pread/pwrite, so all kSlots commands are in flight after the first sweep.
  if (max_in_flight != int(kSlots) || issued_in_call != 0)
    return "max in flight " + std::to_string(max_in_flight) + " (want " + std::to_string(kSlots) + "), " +
           std::to_string(issued_in_call) + " completion callbacks ran inside nbd_aio_pread/pwrite";
  // Every byte of the region read back synchronously matches.
  std::vector<char> all(kSlots * 65536);
  if (nbd_pread(h, all.data(), all.size(), base, 0) != 0) return std::string("final pread: ") + nbd_get_error();
  for (size_t i = 0; i < kSlots; i++)
    if (std::memcmp(all.data() + i * 65536, d.slots[i].expected.data(), 65536) != 0)
      return "final mismatch in slot " + std::to_string(i);
  if (d.verified_reads + d.verified_writes != kTotal) return "verified count wrong";
  if (nbd_shutdown(h, 0) != 0) return std::string("shutdown: ") + nbd_get_error();
  return "";
}

}  // namespace

// 4 handles, each in its own thread with 256 aio commands in flight, driven by nbd_poll.
TEST(Load, HandlesWithManyAioCommandsInFlight) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = nbd_test::start_nbdkit({"memory", "64M"});
  ASSERT_TRUE(srv);
  constexpr int kHandles = 4;
  std::vector<std::string> results(kHandles);
  std::vector<std::thread> threads;
  for (int t = 0; t < kHandles; t++)
    threads.emplace_back([&, t] { results[t] = drive_handle(srv->uri(), uint64_t(t) * (16 << 20), 200 + t); });
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
