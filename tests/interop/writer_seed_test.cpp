// writer_seed_test.cpp: the concurrent writer used exactly as the seed's four steps describe it,
// with the simplest writer thread there is: it takes a buffer off a ring and writes it with a
// plain blocking send(2) loop, with no poll and no EAGAIN handling, and reports a failed send
// with nbd_concurrent_writer_error.  The main loop is step 4's: poll the handle's descriptor
// for its direction, notify_read / notify_write.  Against nbdkit, in plaintext and under TLS,
// with the writer installed before connecting (it carries the handshake) or after.
#include <fcntl.h>
#include <libnbd.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/servers.hpp"
#include "common/tls_pki.hpp"

using nbd_test::last_error_is;

namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kSlots = 32;  // one command in flight per 1 MiB slot of the export
constexpr uint64_t kExport = kSlots * kMiB;

// Steps 2 and 3: the callback copies the buffer onto a ring and kicks the thread; the thread
// learns the descriptor once the connection exists (set_fd), then sends each item with
// blocking send(2) calls.  With fail_at > 0 the fail_at-th item is not sent: the thread
// reports fail_errno instead and drops everything after it.
class NaiveWriter {
 public:
  explicit NaiveWriter(nbd_handle* h, int fail_at = 0, int fail_errno = 0)
      : h_(h), fail_at_(fail_at), fail_errno_(fail_errno), thread_([this] { loop(); }) {}
  ~NaiveWriter() { stop(); }
  NaiveWriter(const NaiveWriter&) = delete;
  NaiveWriter& operator=(const NaiveWriter&) = delete;

  nbd_writer_callback closure() {
    return {[](void* ud, const void* buf, size_t len) {
              static_cast<NaiveWriter*>(ud)->push(buf, len);
              return 0;
            },
            this, [](void* ud) {
              auto* w = static_cast<NaiveWriter*>(ud);
              w->frees++;
              w->stop();  // the handle is going: the thread must not touch it any more
            }};
  }

  void set_fd(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    fd_ = fd;
    cv_.notify_one();
  }

  std::atomic<int> frees{0};
  std::atomic<int> failed_sends{0};  // send(2) returned -1 (EAGAIN would land here)

 private:
  void push(const void* buf, size_t len) {
    const auto* p = static_cast<const char*>(buf);
    std::lock_guard<std::mutex> lock(mu_);
    ring_.emplace_back(p, p + len);
    cv_.notify_one();
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable())
      thread_.join();
  }

  void loop() {
    int items = 0;
    bool failed = false;
    for (;;) {
      std::vector<char> item;
      int fd;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || (!ring_.empty() && fd_ != -1); });
        if (stopping_)
          return;
        item = std::move(ring_.front());
        ring_.pop_front();
        fd = fd_;
      }
      if (failed)
        continue;
      if (++items == fail_at_) {
        failed = true;
        nbd_concurrent_writer_error(h_, fail_errno_);
        continue;
      }
      size_t done = 0;
      while (done < item.size()) {
        const ssize_t r = ::send(fd, item.data() + done, item.size() - done, MSG_NOSIGNAL);
        if (r == -1) {
          failed_sends++;
          failed = true;
          nbd_concurrent_writer_error(h_, errno);
          break;
        }
        done += static_cast<size_t>(r);
      }
    }
  }

  nbd_handle* h_;
  int fail_at_;
  int fail_errno_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<char>> ring_;
  int fd_ = -1;
  bool stopping_ = false;
  std::thread thread_;  // last: it starts after the members it uses
};

// Step 4: one round of the main loop.  False when the handle has nothing to wait for.
bool step(nbd_handle* h) {
  const unsigned dir = nbd_aio_get_direction(h);
  if (dir == 0)
    return false;
  struct pollfd pfd = {nbd_aio_get_fd(h), 0, 0};
  if (dir & LIBNBD_AIO_DIRECTION_READ)
    pfd.events |= POLLIN;
  if (dir & LIBNBD_AIO_DIRECTION_WRITE)
    pfd.events |= POLLOUT;
  if (::poll(&pfd, 1, 10000) <= 0) {
    ADD_FAILURE() << "nothing happened for 10 s in state " << nbd_connection_state(h);
    return false;
  }
  // The writer thread can always take more, so WRITE is notified unconditionally.
  if (dir & LIBNBD_AIO_DIRECTION_WRITE)
    nbd_aio_notify_write(h);
  if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
    nbd_aio_notify_read(h);
  return true;
}

// One slot of the export with at most one command in flight; shadow is what it must hold.
struct Slot {
  std::vector<char> shadow = std::vector<char>(kMiB, 0);
  std::vector<char> buf = std::vector<char>(kMiB);
  uint64_t offset = 0, count = 0;
  bool busy = false, is_read = false;
  int error = 0;
  bool mismatch = false;
};

struct Load {
  std::vector<Slot> slots = std::vector<Slot>(kSlots);
  std::atomic<int> completions{0};
  std::vector<int> errors;  // of failed commands
};

nbd_completion_callback on_done(Load& load, Slot& s) {
  struct Ctx {
    Load* load;
    Slot* slot;
  };
  return {[](void* ud, int* error) {
            auto* c = static_cast<Ctx*>(ud);
            Slot& slot = *c->slot;
            if (*error != 0) {
              c->load->errors.push_back(*error);
            } else if (slot.is_read &&
                       std::memcmp(slot.buf.data(), slot.shadow.data() + slot.offset, slot.count) != 0) {
              slot.mismatch = true;
            }
            slot.busy = false;
            c->load->completions++;
            return 1;
          },
          new Ctx{&load, &s}, [](void* ud) { delete static_cast<Ctx*>(ud); }};
}

// Issues the next command of slot i: a write of up to 1 MiB (large ones fill the socket, so
// the thread's send really blocks), a read, a zero, a trim or a flush.
int64_t issue(nbd_handle* h, Load& load, uint64_t i, std::mt19937& rng) {
  Slot& s = load.slots[i];
  const uint64_t base = i * kMiB;
  s.count = std::uniform_int_distribution<uint64_t>(1, 256)(rng) * 4096;
  s.offset = std::uniform_int_distribution<uint64_t>(0, (kMiB - s.count) / 512)(rng) * 512;
  s.is_read = false;
  s.busy = true;
  switch (rng() % 8) {
    case 0:
    case 1:
    case 2: {
      for (uint64_t k = 0; k < s.count; ++k)
        s.buf[k] = static_cast<char>(rng());
      std::memcpy(s.shadow.data() + s.offset, s.buf.data(), s.count);
      return nbd_aio_pwrite(h, s.buf.data(), s.count, base + s.offset, on_done(load, s), 0);
    }
    case 3:
    case 4:
    case 5:
      s.is_read = true;
      return nbd_aio_pread(h, s.buf.data(), s.count, base + s.offset, on_done(load, s), 0);
    case 6:
      std::memset(s.shadow.data() + s.offset, 0, s.count);
      return nbd_aio_zero(h, s.count, base + s.offset, on_done(load, s), 0);
    default:
      return nbd_aio_flush(h, on_done(load, s), 0);
  }
}

struct SeedCase {
  bool tls;
  bool before_connect;  // install the writer in the created state (it carries the handshake)
};

class WriterSeed : public ::testing::TestWithParam<SeedCase> {
 protected:
  void SetUp() override {
    NBD_TEST_REQUIRE_PROGRAM("nbdkit");
    std::vector<std::string> args;
    if (GetParam().tls) {
      if (!nbd_test::have_pki_tools())
        GTEST_SKIP() << "certtool/psktool (gnutls-bin) not installed";
      pki_ = nbd_test::test_pki();
      ASSERT_NE(pki_, nullptr);
      args = {"--tls=require", "--tls-certificates=" + pki_->dir};
    }
    args.insert(args.end(), {"memory", std::to_string(kExport)});
    server_ = nbd_test::start_nbdkit(args);
    ASSERT_TRUE(server_);
    h_ = nbd_create();
    ASSERT_NE(h_, nullptr);
  }
  // The handle goes first: closing it frees the writer's closure, exactly once.
  void TearDown() override {
    nbd_close(h_);
    if (w_) {
      EXPECT_EQ(w_->frees.load(), 1);
      w_.reset();
    }
  }

  // Steps 1 (before or after connecting) and the connection, driven by step 4's loop.
  void connect(int fail_at = 0, int fail_errno = 0) {
    w_ = std::make_unique<NaiveWriter>(h_, fail_at, fail_errno);
    NaiveWriter& w = *w_;
    if (GetParam().tls) {
      ASSERT_EQ(nbd_set_tls(h_, LIBNBD_TLS_REQUIRE), 0) << nbd_get_error();
      ASSERT_EQ(nbd_set_tls_certificates(h_, pki_->dir.c_str()), 0) << nbd_get_error();
    }
    if (GetParam().before_connect) {
      ASSERT_EQ(nbd_set_concurrent_writer(h_, w.closure()), 0) << nbd_get_error();
    }
    ASSERT_EQ(nbd_aio_connect_unix(h_, server_->unix_socket().c_str()), 0) << nbd_get_error();
    w.set_fd(nbd_aio_get_fd(h_));
    while (nbd_aio_is_connecting(h_) && step(h_)) {
    }
    ASSERT_EQ(nbd_aio_is_ready(h_), 1) << nbd_connection_state(h_) << ": " << nbd_get_error();
    EXPECT_EQ(nbd_get_tls_negotiated(h_), GetParam().tls ? 1 : 0);
    if (!GetParam().before_connect) {
      ASSERT_EQ(nbd_set_concurrent_writer(h_, w.closure()), 0) << nbd_get_error();
    }
    // What nbd_set_concurrent_writer(3) promises the writer thread.
    const int fl = fcntl(nbd_aio_get_fd(h_), F_GETFL);
    EXPECT_EQ(fl & O_NONBLOCK, 0) << "the descriptor must be blocking for the writer thread";
  }

  const nbd_test::Pki* pki_ = nullptr;
  std::unique_ptr<nbd_test::Server> server_;
  nbd_handle* h_ = nullptr;
  std::unique_ptr<NaiveWriter> w_;
};

// Hundreds of mixed commands, up to kSlots in flight, every read checked when it completes and
// the whole export read back at the end; the blocking thread never failed a send.
TEST_P(WriterSeed, BlockingSendThreadCarriesMixedLoad) {
  connect();
  Load load;
  std::mt19937 rng(GetParam().tls * 2 + GetParam().before_connect);
  constexpr int kCommands = 600;
  int issued = 0;
  while (issued < kCommands || nbd_aio_in_flight(h_) > 0) {
    for (uint64_t i = 0; i < kSlots && issued < kCommands; ++i) {
      if (!load.slots[i].busy) {
        ASSERT_GT(issue(h_, load, i, rng), 0) << nbd_get_error();
        ++issued;
      }
    }
    ASSERT_TRUE(step(h_)) << nbd_get_error();
  }
  EXPECT_EQ(load.completions.load(), kCommands);
  EXPECT_TRUE(load.errors.empty()) << load.errors.size() << " commands failed, first errno "
                                   << load.errors.front();
  for (const Slot& s : load.slots)
    EXPECT_FALSE(s.mismatch);
  // Sync calls work through the same writer: read everything back.
  std::vector<char> back(kMiB);
  for (uint64_t i = 0; i < kSlots; ++i) {
    ASSERT_EQ(nbd_pread(h_, back.data(), kMiB, i * kMiB, 0), 0) << nbd_get_error();
    EXPECT_TRUE(back == load.slots[i].shadow) << "slot " << i << " differs";
  }
  EXPECT_EQ(w_->failed_sends.load(), 0);
  EXPECT_EQ(nbd_shutdown(h_, 0), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_closed(h_), 1) << nbd_connection_state(h_);
  EXPECT_EQ(w_->frees.load(), 0);  // the handle keeps the writer until it is closed
}

// The thread reports EPIPE in place of its 40th send (60th with the handshake): every command in flight completes once
// with EPIPE, the handle is dead, and the next call says so.
TEST_P(WriterSeed, InjectedFailureReachesEveryCommand) {
  connect(GetParam().before_connect ? 60 : 40, EPIPE);
  Load load;
  std::mt19937 rng(7);
  int issued = 0;
  for (uint64_t i = 0; i < kSlots; ++i, ++issued)
    ASSERT_GT(issue(h_, load, i, rng), 0) << nbd_get_error();
  // Commands keep coming until the failure: the item the thread fails belongs to one of them,
  // so some are in flight then.
  while (!nbd_aio_is_dead(h_) && issued < 5000) {
    for (uint64_t i = 0; i < kSlots; ++i) {
      if (!load.slots[i].busy && issue(h_, load, i, rng) > 0)
        ++issued;
    }
    if (!step(h_))
      break;
  }
  EXPECT_EQ(nbd_aio_is_dead(h_), 1) << nbd_connection_state(h_);
  EXPECT_EQ(nbd_aio_in_flight(h_), 0);
  EXPECT_EQ(load.completions.load(), issued);
  EXPECT_FALSE(load.errors.empty());
  for (int e : load.errors)
    EXPECT_EQ(e, EPIPE);
  char buf[512];
  EXPECT_EQ(nbd_pread(h_, buf, sizeof buf, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread: invalid state"));
}

INSTANTIATE_TEST_SUITE_P(Seed, WriterSeed,
                         ::testing::Values(SeedCase{false, false}, SeedCase{false, true},
                                           SeedCase{true, false}, SeedCase{true, true}),
                         [](const ::testing::TestParamInfo<SeedCase>& p) {
                           return std::string(p.param.tls ? "Tls" : "Plain") +
                                  (p.param.before_connect ? "WriterFirst" : "WriterAfterConnect");
                         });

}  // namespace
