// soak_test.cpp: many handles on several threads, each keeping up to 64 mixed aio commands in
// flight against nbdkit's file plugin, with the server killed and restarted on the same socket
// in every epoch; every byte checked against a shadow copy, every callback counted, and no
// growth in open descriptors or memory from one epoch to the last.
//
// The run lasts about 20 s (NBD_SOAK_SECONDS=N for longer), split into epochs of about 5 s.
// In each epoch the worker threads open their handles, drive them, see them die when the
// server is killed mid-epoch, reconnect once it is back, and at the end drain, read their whole
// region back and close everything, so that between epochs the process holds no handle and no
// worker thread: descriptors, threads, RSS and heap are measured there, after the first
// (warm-up) epoch and after the last.
#include <libnbd.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/servers.hpp"

extern char** environ;

namespace {

constexpr int kHandles = 8;
constexpr int kThreads = 4;
constexpr int kSlots = 64;                   // commands in flight per handle, at most
constexpr size_t kSlotSize = 64 * 1024;      // each command stays inside its slot
constexpr size_t kRegion = kSlots * kSlotSize;  // one handle's region of the export
constexpr uint64_t kExportSize = uint64_t{kHandles} * kRegion;

// GCC defines __SANITIZE_*__; clang reports the sanitizers through __has_feature.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define NBD_SOAK_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(NBD_SOAK_SANITIZED)
constexpr bool kSanitized = true;  // the sanitizers keep freed memory: RSS says nothing then
#else
constexpr bool kSanitized = false;
#endif

// Entries in a /proc directory, without . and ..
int count_entries(const char* dir) {
  int n = 0;
  DIR* d = opendir(dir);
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') ++n;
  closedir(d);
  return n;
}

int open_fds() {
  return count_entries("/proc/self/fd") - 1;  // the directory's own descriptor
}

// Threads of this process: a writer thread that outlived its handle would show here.
int live_threads() { return count_entries("/proc/self/task"); }

// Resident memory, after giving free heap pages back (malloc_trim), so that what is compared is
// memory in use rather than how the allocator's arenas happen to be fragmented.
long rss_kib() {
  malloc_trim(0);
  std::ifstream in("/proc/self/statm");
  long size = 0, resident = 0;
  in >> size >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// Heap bytes in use, over every malloc arena.
long heap_kib() {
  const struct mallinfo2 mi = mallinfo2();
  return static_cast<long>((mi.uordblks + mi.hblkhd) / 1024);
}

// ---------------------------------------------------------------- the server

// nbdkit's file plugin on DIR/disk.img, listening on DIR/sock, as our child.  kill_and_restart
// SIGKILLs it, reaps it and starts a new one on the same socket path; the file (and so the
// data) survives.  Started and restarted from the test's main thread (--exit-with-parent).
class FileServer {
 public:
  explicit FileServer(const std::string& dir) : dir_(dir) {
    const std::string img = dir_ + "/disk.img";
    {
      std::ofstream f(img);
    }
    if (truncate(img.c_str(), static_cast<off_t>(kExportSize)) != 0)
      ADD_FAILURE() << "truncate: " << std::strerror(errno);
    start();
  }
  ~FileServer() { stop(SIGTERM); }
  FileServer(const FileServer&) = delete;
  FileServer& operator=(const FileServer&) = delete;

  std::string uri() const { return "nbd+unix:///?socket=" + dir_ + "/sock"; }
  bool running() const { return pid_ > 0; }

  void kill_and_restart() {
    stop(SIGKILL);
    start();
  }

 private:
  void start() {
    const std::string sock = dir_ + "/sock", pidfile = dir_ + "/pid", img = dir_ + "/disk.img";
    unlink(sock.c_str());  // nbdkit leaves both behind when killed
    unlink(pidfile.c_str());
    std::vector<std::string> args{"nbdkit", "-f", "--exit-with-parent", "-P", pidfile, "-U", sock, "file", img};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawnp(&pid, "nbdkit", nullptr, nullptr, argv.data(), environ) != 0) {
      ADD_FAILURE() << "posix_spawnp nbdkit failed";
      return;
    }
    pid_ = pid;
    // Ready once the pidfile has content (nbdkit writes it after it listens).
    for (long i = 0;; ++i) {
      struct stat st;
      if (stat(pidfile.c_str(), &st) == 0 && st.st_size > 0) return;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        ADD_FAILURE() << "nbdkit exited during startup, status " << status;
        pid_ = 0;
        return;
      }
      if (i > 2000000) {
        ADD_FAILURE() << "nbdkit never wrote its pidfile";
        return;
      }
      sched_yield();
    }
  }

  void stop(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
  }

  std::string dir_;
  pid_t pid_ = 0;
};

// ---------------------------------------------------------------- shared bookkeeping

struct Stats {
  std::atomic<uint64_t> issued{0};          // aio calls that returned a cookie
  std::atomic<uint64_t> issue_failures{0};  // aio calls that failed (the handle had just died)
  std::atomic<uint64_t> completions{0};     // completion callbacks run
  std::atomic<uint64_t> frees{0};           // completion closures freed
  std::atomic<uint64_t> freed_uncalled{0};  // ... without their callback having run
  std::atomic<uint64_t> aux_issued{0};      // chunk and extent closures handed over
  std::atomic<uint64_t> aux_frees{0};
  std::atomic<uint64_t> succeeded{0};
  std::atomic<uint64_t> failed{0};
  std::atomic<uint64_t> bytes_verified{0};
  std::atomic<uint64_t> deaths{0};
  std::atomic<uint64_t> reconnects{0};
  std::atomic<uint64_t> rewrites{0};  // slots rewritten after a failed write left them unknown
  std::mutex mu;
  std::map<int, uint64_t> failure_errnos;
  std::vector<std::string> errors;  // anything wrong; the test fails if not empty

  void error(const std::string& e) {
    std::lock_guard<std::mutex> lock(mu);
    if (errors.size() < 20) errors.push_back(e);
  }
};

// One byte of the shadow: its value, and whether the server may instead hold zero (after a
// trim: the file plugin punches a hole, but the protocol lets it keep the data) or anything
// at all (a write, zero or trim that failed with the connection: it may or may not have
// landed).
enum : uint8_t { kKnown = 0, kTrimmed = 1, kUnknown = 2 };

struct Region {
  std::vector<char> data = std::vector<char>(kRegion, 0);
  std::vector<uint8_t> state = std::vector<uint8_t>(kRegion, kKnown);
};

// Checks n bytes read at region offset off against the shadow and learns what trimmed bytes
// turned out to be.  False (with the first mismatch in what) if they disagree.
bool check_and_learn(Region& r, size_t off, const char* got, size_t n, std::string& what) {
  for (size_t i = 0; i < n; ++i) {
    const size_t k = off + i;
    switch (r.state[k]) {
      case kKnown:
        if (got[i] != r.data[k]) {
          what = "byte " + std::to_string(k) + " of the region";
          return false;
        }
        break;
      case kTrimmed:
        if (got[i] != r.data[k] && got[i] != 0) {
          what = "trimmed byte " + std::to_string(k) + " is neither old data nor zero";
          return false;
        }
        r.data[k] = got[i];
        r.state[k] = kKnown;
        break;
      default:
        break;  // unknown until rewritten
    }
  }
  return true;
}

enum class Op { Read, ReadStructured, Write, Zero, Trim, Flush, BlockStatus };

struct Worker;
struct HandleState;

struct Slot {
  std::vector<char> buf = std::vector<char>(kSlotSize);
  bool busy = false;
};

// One command in flight; owned by its completion closure (freed by its .free).
struct Cmd {
  HandleState* hs;
  int slot;
  Op op;
  size_t off;  // in the region
  size_t len;
  int calls = 0;
  uint64_t chunk_bytes = 0;
  int extent_calls = 0;
};

struct HandleState {
  int index = 0;
  nbd_handle* h = nullptr;
  uint64_t base = 0;  // the region's offset in the export
  Region* region = nullptr;
  Slot slots[kSlots];
  int busy = 0;
  uint64_t generation = 0;  // the server generation it connected to
  bool writer = false;      // uses nbd_start_concurrent_writer
  Stats* stats = nullptr;
  std::mt19937_64 rng;
};

// The chunk or extent closure of a command: its own user_data, since it may be freed after the
// command's Cmd (the callbacks themselves all run before the completion).
struct Aux {
  Cmd* cmd;
  Stats* stats;
};

int on_chunk(void* ud, const void*, size_t count, uint64_t, unsigned status, int*) {
  Cmd* c = static_cast<Aux*>(ud)->cmd;
  if (status == LIBNBD_READ_DATA || status == LIBNBD_READ_HOLE) c->chunk_bytes += count;
  return 0;
}

int on_extent(void* ud, const char*, uint64_t offset, uint32_t* entries, size_t n, int*) {
  Cmd* c = static_cast<Aux*>(ud)->cmd;
  ++c->extent_calls;
  if (offset != c->hs->base + c->off || n == 0 || n % 2 != 0 || entries[0] == 0)
    c->hs->stats->error("extent callback out of its request");
  return 0;
}

void free_aux(void* ud) {
  auto* a = static_cast<Aux*>(ud);
  a->stats->aux_frees++;
  delete a;
}

int on_complete(void* ud, int* error) {
  auto* c = static_cast<Cmd*>(ud);
  HandleState& hs = *c->hs;
  Stats& st = *hs.stats;
  st.completions++;
  if (++c->calls != 1) st.error("completion called twice");
  Slot& s = hs.slots[c->slot];
  Region& r = *hs.region;
  if (!s.busy) st.error("completion for an idle slot");
  if (*error == 0) {
    st.succeeded++;
    std::string what;
    switch (c->op) {
      case Op::Read:
      case Op::ReadStructured:
        if (c->op == Op::ReadStructured && c->chunk_bytes != c->len)
          st.error("structured read chunks cover " + std::to_string(c->chunk_bytes) + " of " + std::to_string(c->len));
        if (!check_and_learn(r, c->off, s.buf.data(), c->len, what))
          st.error("handle " + std::to_string(hs.index) + ": read mismatch at " + what);
        st.bytes_verified += c->len;
        break;
      case Op::Write:
        std::memcpy(r.data.data() + c->off, s.buf.data(), c->len);
        std::fill_n(r.state.begin() + static_cast<long>(c->off), c->len, kKnown);
        break;
      case Op::Zero:
        std::fill_n(r.data.begin() + static_cast<long>(c->off), c->len, 0);
        std::fill_n(r.state.begin() + static_cast<long>(c->off), c->len, kKnown);
        break;
      case Op::Trim:
        for (size_t i = c->off; i < c->off + c->len; ++i)
          if (r.state[i] == kKnown) r.state[i] = kTrimmed;
        break;
      case Op::BlockStatus:
        if (c->extent_calls != 1) st.error("block status: " + std::to_string(c->extent_calls) + " extent calls");
        break;
      case Op::Flush:
        break;
    }
  } else {
    st.failed++;
    {
      std::lock_guard<std::mutex> lock(st.mu);
      st.failure_errnos[*error]++;
    }
    if (c->op == Op::Write || c->op == Op::Zero || c->op == Op::Trim)
      std::fill_n(r.state.begin() + static_cast<long>(c->off), c->len, kUnknown);
  }
  s.busy = false;
  hs.busy--;
  return 1;  // retire
}

// A closure freed without its callback having run belongs to an aio call that failed; the
// test checks that there were exactly as many of those.
void free_cmd(void* ud) {
  auto* c = static_cast<Cmd*>(ud);
  c->hs->stats->frees++;
  if (c->calls == 0) c->hs->stats->freed_uncalled++;
  delete c;
}

// ---------------------------------------------------------------- one worker thread

struct Shared {
  std::atomic<bool> epoch_over{false};
  std::atomic<uint64_t> server_generation{0};
  std::atomic<int> connected_handles{0};
  std::string uri;
};

struct Worker {
  Shared* shared;
  Stats* stats;
  std::vector<HandleState*> handles;

  bool connect(HandleState& hs) {
    const uint64_t gen = shared->server_generation.load();
    nbd_handle* h = nbd_create();
    if (h == nullptr) {
      stats->error(std::string("nbd_create: ") + nbd_get_error());
      return false;
    }
    if ((hs.writer && nbd_start_concurrent_writer(h) != 0) ||
        nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0 || nbd_connect_uri(h, shared->uri.c_str()) != 0) {
      // The server may be between its death and its restart.
      nbd_close(h);
      return false;
    }
    hs.h = h;
    hs.generation = gen;
    shared->connected_handles++;
    // Slots that a failed write may or may not have changed get new data, written whole.
    for (int i = 0; i < kSlots; ++i) {
      const size_t off = size_t(i) * kSlotSize;
      if (std::none_of(hs.region->state.begin() + static_cast<long>(off),
                       hs.region->state.begin() + static_cast<long>(off + kSlotSize),
                       [](uint8_t s) { return s == kUnknown; }))
        continue;
      std::vector<char> fresh(kSlotSize);
      for (auto& b : fresh) b = static_cast<char>(hs.rng());
      if (nbd_pwrite(h, fresh.data(), fresh.size(), hs.base + off, 0) != 0) {  // died again
        disconnect(hs);
        return false;
      }
      std::memcpy(hs.region->data.data() + off, fresh.data(), kSlotSize);
      std::fill_n(hs.region->state.begin() + static_cast<long>(off), kSlotSize, kKnown);
      stats->rewrites++;
    }
    return true;
  }

  void disconnect(HandleState& hs) {
    if (hs.h == nullptr) return;
    nbd_close(hs.h);
    hs.h = nullptr;
    shared->connected_handles--;
  }

  // Issues one command on a free slot; false if the handle refused it (it just died).
  bool issue(HandleState& hs, int slot_index) {
    Slot& s = hs.slots[slot_index];
    const uint64_t pick = hs.rng() % 100;
    Op op = pick < 30 ? Op::Read
            : pick < 45 ? Op::ReadStructured
            : pick < 78 ? Op::Write
            : pick < 87 ? Op::Zero
            : pick < 95 ? Op::Trim
            : pick < 97 ? Op::Flush
                        : Op::BlockStatus;
    const size_t len = 1 + hs.rng() % kSlotSize;
    const size_t off = size_t(slot_index) * kSlotSize + hs.rng() % (kSlotSize - len + 1);
    auto* c = new Cmd{&hs, slot_index, op, off, len};
    nbd_completion_callback done{on_complete, c, free_cmd};
    const uint64_t at = hs.base + off;
    s.busy = true;
    hs.busy++;
    int64_t cookie = -1;
    switch (op) {
      case Op::Read:
        cookie = nbd_aio_pread(hs.h, s.buf.data(), len, at, done, 0);
        break;
      case Op::ReadStructured:
        stats->aux_issued++;
        cookie = nbd_aio_pread_structured(hs.h, s.buf.data(), len, at, {on_chunk, new Aux{c, stats}, free_aux},
                                          done, 0);
        break;
      case Op::Write:
        for (size_t i = 0; i < len; ++i) s.buf[i] = static_cast<char>(hs.rng());
        cookie = nbd_aio_pwrite(hs.h, s.buf.data(), len, at, done, (hs.rng() % 8 == 0) ? LIBNBD_CMD_FLAG_FUA : 0);
        break;
      case Op::Zero:
        cookie = nbd_aio_zero(hs.h, len, at, done, 0);
        break;
      case Op::Trim:
        cookie = nbd_aio_trim(hs.h, len, at, done, 0);
        break;
      case Op::Flush:
        cookie = nbd_aio_flush(hs.h, done, 0);
        break;
      case Op::BlockStatus:
        stats->aux_issued++;
        cookie = nbd_aio_block_status(hs.h, len, at, {on_extent, new Aux{c, stats}, free_aux}, done, 0);
        break;
    }
    if (cookie == -1) {
      // The closure was freed by the failed call (free_cmd counted it); the slot is idle again.
      stats->issue_failures++;
      s.busy = false;
      hs.busy--;
      if (nbd_aio_is_dead(hs.h) != 1 && nbd_aio_is_closed(hs.h) != 1)
        stats->error(std::string("aio call failed on a live handle: ") + nbd_get_error());
      return false;
    }
    stats->issued++;
    return true;
  }

  // After the handle died: everything it had in flight has completed (with an error).
  void after_death(HandleState& hs) {
    stats->deaths++;
    if (hs.busy != 0) stats->error("handle " + std::to_string(hs.index) + " died with " + std::to_string(hs.busy) +
                                   " commands never completed");
    disconnect(hs);
  }

  void fill(HandleState& hs) {
    for (int i = 0; i < kSlots && hs.h != nullptr; ++i)
      if (!hs.slots[i].busy && !issue(hs, i)) break;
  }

  // One round of the event loop over this worker's handles.
  void step(bool issuing) {
    std::vector<pollfd> pfds;
    std::vector<HandleState*> who;
    for (HandleState* hs : handles) {
      if (hs->h == nullptr) {
        if (issuing && shared->server_generation.load() > hs->generation && connect(*hs)) stats->reconnects++;
        if (hs->h == nullptr) continue;
      }
      if (nbd_aio_is_dead(hs->h) == 1) {
        after_death(*hs);
        continue;
      }
      if (issuing) fill(*hs);
      if (hs->h == nullptr || nbd_aio_is_dead(hs->h) == 1) continue;
      const int fd = nbd_aio_get_fd(hs->h);
      const unsigned dir = nbd_aio_get_direction(hs->h);
      if (fd < 0 || dir == 0) continue;
      short events = 0;
      if (dir & LIBNBD_AIO_DIRECTION_READ) events |= POLLIN;
      if (dir & LIBNBD_AIO_DIRECTION_WRITE) events |= POLLOUT;
      pfds.push_back({fd, events, 0});
      who.push_back(hs);
    }
    if (pfds.empty()) {
      std::this_thread::yield();
      return;
    }
    // The timeout only paces the loop while handles wait for the server to come back.
    if (poll(pfds.data(), pfds.size(), 50) < 0 && errno != EINTR)
      stats->error(std::string("poll: ") + std::strerror(errno));
    for (size_t i = 0; i < pfds.size(); ++i) {
      HandleState& hs = *who[i];
      if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) nbd_aio_notify_read(hs.h);
      else if ((pfds[i].revents & POLLOUT) && nbd_aio_is_dead(hs.h) != 1) nbd_aio_notify_write(hs.h);
      if (nbd_aio_is_dead(hs.h) == 1) after_death(hs);
    }
  }

  // Reads the whole region back and checks every byte against the shadow.
  void verify(HandleState& hs) {
    std::vector<char> all(kRegion);
    if (nbd_pread(hs.h, all.data(), all.size(), hs.base, 0) != 0) {
      stats->error(std::string("final pread: ") + nbd_get_error());
      return;
    }
    std::string what;
    if (std::any_of(hs.region->state.begin(), hs.region->state.end(), [](uint8_t s) { return s == kUnknown; }))
      stats->error("handle " + std::to_string(hs.index) + ": bytes left unknown at the end of an epoch");
    if (!check_and_learn(*hs.region, 0, all.data(), all.size(), what))
      stats->error("handle " + std::to_string(hs.index) + ": final mismatch at " + what);
    stats->bytes_verified += kRegion;
  }

  void run() {
    for (HandleState* hs : handles)
      if (!connect(*hs)) stats->error("handle " + std::to_string(hs->index) + ": first connect failed");
    while (!shared->epoch_over.load()) step(true);
    // Drain: nothing new, until every command has completed; reconnect a handle that died
    // late, so that its region can be read back.
    for (;;) {
      bool pending = false;
      for (HandleState* hs : handles) pending = pending || hs->busy > 0 || hs->h == nullptr;
      if (!pending) break;
      for (HandleState* hs : handles)
        if (hs->h == nullptr && hs->busy == 0 && shared->server_generation.load() > hs->generation && connect(*hs))
          stats->reconnects++;
      step(false);
    }
    for (HandleState* hs : handles) {
      verify(*hs);
      if (nbd_shutdown(hs->h, 0) != 0) stats->error(std::string("shutdown: ") + nbd_get_error());
      disconnect(*hs);
    }
  }
};

unsigned soak_seconds() {
  const char* s = std::getenv("NBD_SOAK_SECONDS");
  const long v = s != nullptr ? std::strtol(s, nullptr, 10) : 0;
  return v > 0 ? static_cast<unsigned>(v) : 20;
}

TEST(Soak, HandlesThreadsRestartsNoGrowth) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  // RSS should measure memory in use, not how glibc's allocator happens to hold freed pages.
  // glibc gives new threads new malloc arenas, up to 8 per core, each keeping some pages: with
  // threads started every epoch (ours and the library's writer threads) RSS then creeps up
  // for several epochs with no more heap in use, so two arenas only.  And the 64 KiB command
  // buffers, below glibc's default mmap threshold, left 4-8 MiB of freed pages resident in the
  // second arena in some epochs and not others (malloc_trim did not return them), with heap in
  // use the same to the KiB; mapped on their own they go back to the kernel when freed, and RSS
  // then varies by under 200 KiB between epochs.
  mallopt(M_ARENA_MAX, 2);
  mallopt(M_MMAP_THRESHOLD, 32 * 1024);
  const unsigned seconds = soak_seconds();
  const int epochs = std::max(2, static_cast<int>(seconds / 5));
  const auto epoch_length = std::chrono::milliseconds(seconds * 1000 / static_cast<unsigned>(epochs));

  nbd_test::TmpDir dir;
  FileServer server(dir.path());
  ASSERT_TRUE(server.running());
  Stats stats;
  Shared shared;
  shared.uri = server.uri();
  std::vector<Region> regions(kHandles);
  std::vector<std::unique_ptr<HandleState>> states;
  for (int i = 0; i < kHandles; ++i) {
    auto hs = std::make_unique<HandleState>();
    hs->index = i;
    hs->base = uint64_t(i) * kRegion;
    hs->region = &regions[static_cast<size_t>(i)];
    hs->writer = i % 2 == 1;
    hs->stats = &stats;
    hs->rng.seed(1000 + static_cast<unsigned>(i));
    states.push_back(std::move(hs));
  }

  int fds_after_warmup = 0, fds_end = 0, threads_after_warmup = 0, threads_end = 0;
  long rss_after_warmup = 0, rss_end = 0, heap_after_warmup = 0, heap_end = 0;
  std::ostringstream per_epoch;
  int restarts = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int epoch = 0; epoch < epochs; ++epoch) {
    shared.epoch_over = false;
    for (auto& hs : states) hs->generation = shared.server_generation.load();
    std::vector<Worker> workers(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      workers[static_cast<size_t>(t)].shared = &shared;
      workers[static_cast<size_t>(t)].stats = &stats;
      for (int i = t; i < kHandles; i += kThreads)
        workers[static_cast<size_t>(t)].handles.push_back(states[static_cast<size_t>(i)].get());
    }
    std::vector<std::thread> threads;
    for (auto& w : workers) threads.emplace_back([&w] { w.run(); });
    // Mid-epoch, with every handle busy, the server dies and comes back on the same socket.
    // (The sleeps only pace the run; nothing waits on them for a result.)
    std::this_thread::sleep_for(epoch_length / 2);
    server.kill_and_restart();
    ++restarts;
    shared.server_generation++;
    std::this_thread::sleep_for(epoch_length / 2);
    shared.epoch_over = true;
    for (auto& t : threads) t.join();
    EXPECT_TRUE(server.running());
    fds_end = open_fds();
    threads_end = live_threads();
    rss_end = rss_kib();
    heap_end = heap_kib();
    per_epoch << " [" << fds_end << " fds, " << threads_end << " threads, " << rss_end << " KiB RSS, " << heap_end << " KiB heap]";
    if (epoch == 0) {
      fds_after_warmup = fds_end;
      threads_after_warmup = threads_end;
      rss_after_warmup = rss_end;
      heap_after_warmup = heap_end;
    }
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::ostringstream figures;
  figures << "handles " << kHandles << ", threads " << kThreads << ", epochs " << epochs << ", wall " << wall
          << " s\n"
          << "commands issued " << stats.issued << " (+" << stats.issue_failures << " refused by dead handles), "
          << "completed ok " << stats.succeeded << ", failed " << stats.failed << "\n"
          << "completion callbacks " << stats.completions << ", completion frees " << stats.frees
          << ", chunk/extent closures " << stats.aux_issued << " freed " << stats.aux_frees << "\n"
          << "bytes verified " << stats.bytes_verified << ", restarts " << restarts << ", handle deaths "
          << stats.deaths << ", reconnects " << stats.reconnects << ", slots rewritten " << stats.rewrites << "\n"
          << "open fds after warm-up " << fds_after_warmup << ", at end " << fds_end << "; RSS after warm-up "
          << rss_after_warmup << " KiB, at end " << rss_end << " KiB; heap in use after warm-up "
          << heap_after_warmup << " KiB, at end " << heap_end << " KiB\n"
          << "after each epoch:" << per_epoch.str() << "\n"
          << "failure errnos:";
  for (const auto& [e, n] : stats.failure_errnos) figures << " " << strerrorname_np(e) << "=" << n;
  std::cout << figures.str() << std::endl;
  RecordProperty("figures", figures.str());

  for (const std::string& e : stats.errors) ADD_FAILURE() << e;
  // Every closure handed over was freed once, and every issued command completed exactly once
  // (a second call is caught in on_complete, a missing one in free_cmd).
  EXPECT_EQ(stats.completions.load(), stats.issued.load());
  EXPECT_EQ(stats.frees.load(), stats.issued.load() + stats.issue_failures.load());
  EXPECT_EQ(stats.freed_uncalled.load(), stats.issue_failures.load());
  EXPECT_EQ(stats.aux_frees.load(), stats.aux_issued.load());
  EXPECT_EQ(stats.succeeded.load() + stats.failed.load(), stats.issued.load());
  EXPECT_GT(stats.succeeded.load(), 1000u);
  // Each restart killed every handle (all busy), and each came back.
  EXPECT_EQ(stats.deaths.load(), uint64_t(kHandles) * static_cast<uint64_t>(restarts));
  EXPECT_EQ(stats.reconnects.load(), stats.deaths.load());
  EXPECT_GT(stats.failed.load(), 0u);
  for (const auto& [e, n] : stats.failure_errnos)
    EXPECT_TRUE(e == ENOTCONN || e == ECONNRESET || e == EPIPE || e == ESHUTDOWN)
        << "commands failed with " << strerrorname_np(e) << " (" << n << ")";
  EXPECT_GE(stats.bytes_verified.load(), uint64_t(epochs) * kExportSize);
  // No growth once warmed up: the same descriptors and threads, RSS within 4 MiB, heap in use
  // within 256 KiB (the sanitizers' allocators keep freed memory, so RSS and heap are not
  // checked there).
  EXPECT_EQ(fds_end, fds_after_warmup);
  EXPECT_EQ(threads_end, threads_after_warmup);
  if (!kSanitized) {
    EXPECT_LE(rss_end - rss_after_warmup, 4 * 1024) << "RSS grew by " << rss_end - rss_after_warmup << " KiB";
    EXPECT_LE(heap_end - heap_after_warmup, 256) << "heap grew by " << heap_end - heap_after_warmup << " KiB";
  }
}

}  // namespace
