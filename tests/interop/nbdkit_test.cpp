// nbdkit_test.cpp: the C API against real nbdkit servers (plugins, filters, protocol variants).
#include <libnbd.h>
#include <dirent.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/closure_counter.hpp"
#include "common/io_helpers.hpp"
#include "common/servers.hpp"

namespace {

// Our children (alive or not yet reaped) whose command name is comm, from /proc/PID/stat.
std::vector<pid_t> children_named(const std::string& comm) {
  std::vector<pid_t> found;
  DIR* proc = opendir("/proc");
  if (proc == nullptr)
    return found;
  while (struct dirent* e = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0)
      continue;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line))
      continue;
    // pid (comm) state ppid ...; comm may hold spaces, so split at the last ')'.
    const size_t open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos)
      continue;
    std::istringstream rest(line.substr(close + 1));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == getpid() && line.substr(open + 1, close - open - 1) == comm)
      found.push_back(pid);
  }
  closedir(proc);
  return found;
}

using nbd_test::Counter;
using nbd_test::Handle;
using nbd_test::poll_until;
using nbd_test::random_bytes;
using nbd_test::round_trip;
using nbd_test::last_error_is;
using nbd_test::Server;
using nbd_test::start_nbdkit;





bool all_zero(const std::vector<char>& v) {
  for (char c : v)
    if (c != 0) return false;
  return true;
}

#define START(...)                                   \
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");                \
  auto server = start_nbdkit(__VA_ARGS__);           \
  ASSERT_NE(server, nullptr)

// ---------------------------------------------------------------- 1. memory plugin basics

TEST(Nbdkit, MemoryReadWriteAndFlags) {
  START({"memory", "1M"});
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1048576);

  for (uint64_t off : {0ul, 4096ul, 65536ul + 123, 1048576ul - 512}) round_trip(h, off, 512, off);
  round_trip(h, 200000, 70000, 7);

  // FUA write.
  auto fua = random_bytes(4096, 99);
  ASSERT_EQ(nbd_pwrite(h, fua.data(), fua.size(), 8192, LIBNBD_CMD_FLAG_FUA), 0) << nbd_get_error();
  std::vector<char> back(4096);
  ASSERT_EQ(nbd_pread(h, back.data(), back.size(), 8192, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, fua);
  EXPECT_EQ(nbd_flush(h, 0), 0) << nbd_get_error();

  // Zero, then read zeros.
  ASSERT_EQ(nbd_zero(h, 4096, 8192, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_pread(h, back.data(), back.size(), 8192, 0), 0) << nbd_get_error();
  EXPECT_TRUE(all_zero(back));
  // Trim (memory plugin: trimmed data reads as zero).
  ASSERT_EQ(nbd_trim(h, 70000, 200000, 0), 0) << nbd_get_error();
  std::vector<char> t(70000);
  ASSERT_EQ(nbd_pread(h, t.data(), t.size(), 200000, 0), 0) << nbd_get_error();
  EXPECT_TRUE(all_zero(t));
  EXPECT_EQ(nbd_cache(h, 65536, 0, 0), 0) << nbd_get_error();

  EXPECT_EQ(nbd_is_read_only(h), 0);
  EXPECT_EQ(nbd_can_flush(h), 1);
  EXPECT_EQ(nbd_can_fua(h), 1);
  EXPECT_EQ(nbd_can_trim(h), 1);
  EXPECT_EQ(nbd_can_zero(h), 1);
  EXPECT_EQ(nbd_can_fast_zero(h), 1);
  EXPECT_EQ(nbd_can_cache(h), 1);
  EXPECT_EQ(nbd_can_df(h), 1);
  EXPECT_EQ(nbd_can_multi_conn(h), 1);
  EXPECT_EQ(nbd_is_rotational(h), 0);
  EXPECT_EQ(nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0);  // not requested

  const char* proto = nbd_get_protocol(h);
  ASSERT_NE(proto, nullptr) << nbd_get_error();
  EXPECT_STREQ(proto, "newstyle-fixed");
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h), 1);
  char* uri = nbd_get_uri(h);
  ASSERT_NE(uri, nullptr) << nbd_get_error();
  EXPECT_EQ(std::string(uri).rfind("nbd+unix:///", 0), 0u) << uri;
  free(uri);
  EXPECT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
}

// ---------------------------------------------------------------- 2. block status

struct ExtentLog {
  int calls = 0;
  std::vector<std::string> contexts;
  uint64_t offset = 0;
  std::vector<std::pair<uint32_t, uint32_t>> extents;
};

int extent_log_cb(void* ud, const char* ctx, uint64_t offset, uint32_t* entries, size_t n, int*) {
  auto* e = static_cast<ExtentLog*>(ud);
  e->calls++;
  e->contexts.emplace_back(ctx);
  e->offset = offset;
  e->extents.clear();
  for (size_t i = 0; i + 1 < n; i += 2) e->extents.emplace_back(entries[i], entries[i + 1]);
  return 0;
}

int64_t flags_at(const ExtentLog& e, uint64_t off) {
  uint64_t pos = e.offset;
  for (auto [len, flags] : e.extents) {
    if (off >= pos && off < pos + len) return flags;
    pos += len;
  }
  return -1;
}

TEST(Nbdkit, BlockStatusBaseAllocation) {
  START({"memory", "1M"});
  Handle h;
  ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0) << nbd_get_error();
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 1);

  auto data = random_bytes(65536, 3);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_zero(h, 65536, 65536, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_trim(h, 65536, 131072, 0), 0) << nbd_get_error();

  ExtentLog log;
  Counter frees;
  // The free function belongs to frees; user_data is the log, so count frees separately.
  struct Both {
    ExtentLog* log;
    Counter* c;
  } both{&log, &frees};
  nbd_extent_callback cb{
      [](void* ud, const char* ctx, uint64_t off, uint32_t* e, size_t n, int* err) {
        return extent_log_cb(static_cast<Both*>(ud)->log, ctx, off, e, n, err);
      },
      &both, [](void* ud) { static_cast<Both*>(ud)->c->frees++; }};
  ASSERT_EQ(nbd_block_status(h, 1048576, 0, cb, 0), 0) << nbd_get_error();
  EXPECT_EQ(log.calls, 1);
  EXPECT_EQ(frees.frees, 1);
  ASSERT_FALSE(log.contexts.empty());
  EXPECT_EQ(log.contexts[0], LIBNBD_CONTEXT_BASE_ALLOCATION);
  EXPECT_EQ(log.offset, 0u);
  EXPECT_EQ(flags_at(log, 0), 0);
  EXPECT_EQ(flags_at(log, 65535), 0);
  EXPECT_EQ(flags_at(log, 524288), LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO);
  EXPECT_EQ(flags_at(log, 1048575), LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO);
  int64_t zeroed = flags_at(log, 100000);
  EXPECT_TRUE(zeroed >= 0 && (zeroed & LIBNBD_STATE_ZERO)) << zeroed;

  // REQ_ONE: a single extent starting at the offset.
  ExtentLog one;
  Counter f2;
  Both both2{&one, &f2};
  cb.user_data = &both2;
  ASSERT_EQ(nbd_block_status(h, 1048576, 0, cb, LIBNBD_CMD_FLAG_REQ_ONE), 0) << nbd_get_error();
  EXPECT_EQ(one.calls, 1);
  EXPECT_EQ(f2.frees, 1);
  ASSERT_EQ(one.extents.size(), 1u);
  EXPECT_EQ(one.extents[0].second, 0u);
  EXPECT_LE(one.extents[0].first, 1048576u);
  EXPECT_GE(one.extents[0].first, 4096u);

  ExtentLog hole;
  Counter f3;
  Both both3{&hole, &f3};
  cb.user_data = &both3;
  ASSERT_EQ(nbd_block_status(h, 4096, 524288, cb, LIBNBD_CMD_FLAG_REQ_ONE), 0) << nbd_get_error();
  EXPECT_EQ(hole.offset, 524288u);
  ASSERT_EQ(hole.extents.size(), 1u);
  EXPECT_EQ(hole.extents[0].second, LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO);
}

// ---------------------------------------------------------------- 3. pread_structured

struct Chunks {
  int calls = 0;
  int frees = 0;
  uint64_t total = 0;
  std::set<unsigned> statuses;
  std::vector<char>* copy = nullptr;  // rebuilt buffer from chunk data
  uint64_t base = 0;
};

nbd_chunk_callback chunks_closure(Chunks& c) {
  return {[](void* ud, const void* sub, size_t count, uint64_t off, unsigned status, int*) {
            auto* ch = static_cast<Chunks*>(ud);
            ch->calls++;
            ch->total += count;
            ch->statuses.insert(status);
            if (ch->copy && off >= ch->base && off + count <= ch->base + ch->copy->size()) {
              if (status == LIBNBD_READ_DATA)
                memcpy(ch->copy->data() + (off - ch->base), sub, count);
              else
                memset(ch->copy->data() + (off - ch->base), 0, count);
            }
            return 0;
          },
          &c, [](void* ud) { static_cast<Chunks*>(ud)->frees++; }};
}

void check_pread_structured(nbd_handle* h, bool expect_one_chunk) {
  auto data = random_bytes(65536, 5);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 4096, 0), 0) << nbd_get_error();
  std::vector<char> buf(131072), rebuilt(131072, 'x');
  Chunks c;
  c.copy = &rebuilt;
  c.base = 0;
  ASSERT_EQ(nbd_pread_structured(h, buf.data(), buf.size(), 0, chunks_closure(c), 0), 0)
      << nbd_get_error();
  EXPECT_GE(c.calls, 1);
  EXPECT_EQ(c.frees, 1);
  EXPECT_EQ(c.total, buf.size());
  for (unsigned s : c.statuses) EXPECT_TRUE(s == LIBNBD_READ_DATA || s == LIBNBD_READ_HOLE) << s;
  if (expect_one_chunk) {
    EXPECT_EQ(c.calls, 1);
    EXPECT_EQ(c.statuses, std::set<unsigned>{LIBNBD_READ_DATA});
  }
  std::vector<char> expect(131072, 0);
  memcpy(expect.data() + 4096, data.data(), data.size());
  EXPECT_EQ(buf, expect);
  EXPECT_EQ(rebuilt, expect);
}

TEST(Nbdkit, PreadStructured) {
  START({"memory", "1M"});
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  check_pread_structured(h, false);
}

TEST(Nbdkit, PreadStructuredNoStructuredReplies) {
  START({"--no-sr", "memory", "1M"});
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h), 0);
  check_pread_structured(h, true);
}

// ---------------------------------------------------------------- 4. AIO

TEST(Nbdkit, AioManyInFlight) {
  START({"memory", "1M"});
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  constexpr size_t kBlock = 4096, kN = 200;
  // Odd slots are pre-filled and read back by aio_pread; even slots are written by aio_pwrite.
  std::vector<std::vector<char>> expect(kN), bufs(kN);
  for (size_t i = 0; i < kN; ++i) {
    expect[i] = random_bytes(kBlock, 1000 + i);
    if (i % 2 == 1) {
      ASSERT_EQ(nbd_pwrite(h, expect[i].data(), kBlock, i * kBlock, 0), 0) << nbd_get_error();
    }
  }
  std::vector<int64_t> cookies(kN);
  for (size_t i = 0; i < kN; ++i) {
    if (i % 2 == 0) {
      bufs[i] = expect[i];
      cookies[i] = nbd_aio_pwrite(h, bufs[i].data(), kBlock, i * kBlock, NBD_NULL_COMPLETION, 0);
    } else {
      bufs[i].assign(kBlock, 0);
      cookies[i] = nbd_aio_pread(h, bufs[i].data(), kBlock, i * kBlock, NBD_NULL_COMPLETION, 0);
    }
    ASSERT_GT(cookies[i], 0) << nbd_get_error();
  }
  EXPECT_GT(nbd_aio_in_flight(h), 0);
  ASSERT_TRUE(poll_until(h, [&] { return nbd_aio_in_flight(h) == 0; })) << nbd_get_error();
  std::set<int64_t> distinct(cookies.begin(), cookies.end());
  EXPECT_EQ(distinct.size(), kN);
  for (size_t i = 0; i < kN; ++i) {
    EXPECT_EQ(nbd_aio_command_completed(h, cookies[i]), 1) << i << ": " << nbd_get_error();
    if (i % 2 == 1) {
      EXPECT_EQ(bufs[i], expect[i]) << i;
    }
  }
  for (size_t i = 0; i < kN; i += 2) {
    std::vector<char> back(kBlock);
    ASSERT_EQ(nbd_pread(h, back.data(), kBlock, i * kBlock, 0), 0) << nbd_get_error();
    EXPECT_EQ(back, expect[i]) << i;
  }
  EXPECT_EQ(nbd_aio_peek_command_completed(h), -1);  // nothing left
}

TEST(Nbdkit, AioCompletionCallbackAutoRetires) {
  START({"memory", "1M"});
  Counter wc, rc;  // outlive the handle
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  auto data = random_bytes(4096, 11);
  nbd_completion_callback retire{[](void* ud, int* err) {
                                   ++static_cast<Counter*>(ud)->calls;
                                   EXPECT_EQ(*err, 0);
                                   return 1;
                                 },
                                 &wc, nbd_test::count_free};
  int64_t w = nbd_aio_pwrite(h, data.data(), data.size(), 0, retire, 0);
  ASSERT_GT(w, 0) << nbd_get_error();
  std::vector<char> back(4096);
  int64_t r = nbd_aio_pread(h, back.data(), back.size(), 0, nbd_test::completion_closure(rc), 0);
  ASSERT_GT(r, 0) << nbd_get_error();
  ASSERT_TRUE(poll_until(h, [&] { return nbd_aio_in_flight(h) == 0; })) << nbd_get_error();
  EXPECT_EQ(wc.calls, 1);
  EXPECT_EQ(wc.frees, 1);
  EXPECT_EQ(rc.calls, 1);
  // The write was retired by its callback returning 1: its cookie is no longer known, and (as in
  // libnbd 1.14, lib/aio.c) an unknown positive cookie reads as "not completed", 0.
  EXPECT_EQ(nbd_aio_command_completed(h, w), 0);
  EXPECT_EQ(nbd_aio_command_completed(h, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_aio_command_completed: "));
  // The read is waiting to be retired; peek finds it.
  EXPECT_EQ(nbd_aio_peek_command_completed(h), r) << nbd_get_error();
  EXPECT_EQ(nbd_aio_command_completed(h, r), 1) << nbd_get_error();
  EXPECT_EQ(back, data);
  EXPECT_EQ(rc.frees, 1);
  EXPECT_EQ(wc.calls, 1);
  EXPECT_EQ(wc.frees, 1);
  EXPECT_EQ(nbd_aio_peek_command_completed(h), -1);
}

// ---------------------------------------------------------------- 5. opt mode

struct Names {
  std::vector<std::string> names;
  int frees = 0;
};
nbd_list_callback names_closure(Names& n) {
  return {[](void* ud, const char* name, const char*) {
            static_cast<Names*>(ud)->names.emplace_back(name);
            return 0;
          },
          &n, [](void* ud) { static_cast<Names*>(ud)->frees++; }};
}
nbd_context_callback ctx_closure(Names& n) {
  return {[](void* ud, const char* name) {
            static_cast<Names*>(ud)->names.emplace_back(name);
            return 0;
          },
          &n, [](void* ud) { static_cast<Names*>(ud)->frees++; }};
}

const std::vector<std::string> kExportArgs = {"--filter=exportname", "memory", "1M", "exportname=a",
                                              "exportname=b", "exportname-list=explicit",
                                              "exportname-strict=true"};

TEST(Nbdkit, OptModeListInfoGo) {
  START(kExportArgs, false, "a");
  Handle h;
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0) << nbd_get_error();
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_negotiating(h), 1);

  Names list;
  EXPECT_EQ(nbd_opt_list(h, names_closure(list)), 2) << nbd_get_error();
  EXPECT_EQ(list.names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(list.frees, 1);
  EXPECT_EQ(nbd_aio_is_negotiating(h), 1);

  ASSERT_EQ(nbd_set_export_name(h, "a"), 0) << nbd_get_error();
  ASSERT_EQ(nbd_opt_info(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1048576) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_negotiating(h), 1);
  // Naming the same export keeps what the server said; naming another forgets it, as in
  // libnbd (its test 230), until the next nbd_opt_info.
  ASSERT_EQ(nbd_set_export_name(h, "a"), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1048576) << nbd_get_error();
  ASSERT_EQ(nbd_set_export_name(h, "b"), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_get_size: the server has not sent export information yet"));
  EXPECT_EQ(nbd_is_read_only(h), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_is_read_only: "));
  ASSERT_EQ(nbd_set_export_name(h, "a"), 0) << nbd_get_error();
  ASSERT_EQ(nbd_opt_info(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1048576) << nbd_get_error();

  Names ctx;
  int n = nbd_opt_list_meta_context(h, ctx_closure(ctx));
  EXPECT_GE(n, 1) << nbd_get_error();
  EXPECT_EQ(static_cast<size_t>(n), ctx.names.size());
  bool found = false;
  for (auto& c : ctx.names) found |= c == LIBNBD_CONTEXT_BASE_ALLOCATION;
  EXPECT_TRUE(found);
  EXPECT_EQ(ctx.frees, 1);

  ASSERT_EQ(nbd_opt_go(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
  EXPECT_EQ(nbd_aio_is_negotiating(h), 0);
  round_trip(h, 1000, 3000, 4);
  const char* name = nbd_get_export_name(h);
  ASSERT_NE(name, nullptr);
  EXPECT_STREQ(name, "a");
  free(const_cast<char*>(name));

  Handle h2;
  ASSERT_EQ(nbd_set_opt_mode(h2, true), 0) << nbd_get_error();
  ASSERT_EQ(nbd_connect_uri(h2, server->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_negotiating(h2), 1);
  ASSERT_EQ(nbd_opt_abort(h2), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_closed(h2), 1);
}

TEST(Nbdkit, OptModeBadExportStaysNegotiating) {
  START(kExportArgs, false, "a");
  Handle h;
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0) << nbd_get_error();
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_set_export_name(h, "nope"), 0) << nbd_get_error();
  EXPECT_EQ(nbd_opt_go(h), -1);
  EXPECT_TRUE(last_error_is(ENOENT, "nbd_opt_go: "));
  EXPECT_EQ(nbd_aio_is_negotiating(h), 1);
  EXPECT_EQ(nbd_opt_info(h), -1);
  EXPECT_EQ(nbd_aio_is_negotiating(h), 1);
  ASSERT_EQ(nbd_set_export_name(h, "b"), 0) << nbd_get_error();
  ASSERT_EQ(nbd_opt_go(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
  EXPECT_EQ(nbd_get_size(h), 1048576);
  round_trip(h, 0, 512, 1);
}

// ---------------------------------------------------------------- 6. protocol variants

void variant(const std::vector<std::string>& args, const char* protocol, int sr) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto server = start_nbdkit(args);
  ASSERT_NE(server, nullptr);
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  const char* p = nbd_get_protocol(h);
  ASSERT_NE(p, nullptr) << nbd_get_error();
  EXPECT_STREQ(p, protocol);
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h), sr);
  EXPECT_EQ(nbd_get_size(h), 1048576);
  round_trip(h, 0, 4096, 1);
  round_trip(h, 500000, 100000, 2);
  // nbdkit 1.32 -o advertises SEND_FLUSH but answers NBD_CMD_FLUSH with EINVAL ("flush operation
  // not supported"); real libnbd 1.14 (nbdsh) fails the same way, so only newstyle flushes here.
  if (strcmp(protocol, "oldstyle") != 0) {
    EXPECT_EQ(nbd_flush(h, 0), 0) << nbd_get_error();
  }
  EXPECT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
}

TEST(Nbdkit, ProtocolOldstyle) { variant({"-o", "memory", "1M"}, "oldstyle", 0); }
TEST(Nbdkit, ProtocolNonFixedNewstyle) {
  variant({"--mask-handshake=0", "memory", "1M"}, "newstyle", 0);
}
TEST(Nbdkit, ProtocolNoStructuredReplies) {
  variant({"--no-sr", "memory", "1M"}, "newstyle-fixed", 0);
}

// ---------------------------------------------------------------- 7. server errors, capabilities

TEST(Nbdkit, ServerErrorEio) {
  START({"--filter=error", "memory", "1M", "error-pread=EIO", "error-pread-rate=100%"});
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  std::vector<char> buf(4096);
  EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), -1);
  EXPECT_TRUE(last_error_is(EIO, "nbd_pread: "));
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
  auto data = random_bytes(4096, 8);
  EXPECT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), 0) << nbd_get_error();
  // Async: the error is in the completion.
  int64_t c = nbd_aio_pread(h, buf.data(), buf.size(), 0, NBD_NULL_COMPLETION, 0);
  ASSERT_GT(c, 0) << nbd_get_error();
  ASSERT_TRUE(poll_until(h, [&] { return nbd_aio_in_flight(h) == 0; }));
  EXPECT_EQ(nbd_aio_command_completed(h, c), -1);
  EXPECT_EQ(nbd_get_errno(), EIO) << nbd_get_error();
}

TEST(Nbdkit, NoZeroStrictAndLax) {
  START({"--filter=nozero", "memory", "1M"});
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_can_zero(h), 0);
  EXPECT_EQ(nbd_zero(h, 4096, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_zero: "));
  std::string strict_msg = nbd_get_error();
  EXPECT_NE(strict_msg.find("not support"), std::string::npos) << strict_msg;
  EXPECT_EQ(nbd_aio_is_ready(h), 1);

  ASSERT_EQ(nbd_set_strict_mode(h, 0), 0) << nbd_get_error();
  EXPECT_EQ(nbd_zero(h, 4096, 0, 0), -1);  // reaches nbdkit, which rejects it
  EXPECT_EQ(nbd_get_errno(), EINVAL) << nbd_get_error();
  std::string lax_msg = nbd_get_error();
  EXPECT_EQ(lax_msg.rfind("nbd_zero: ", 0), 0u) << lax_msg;
  EXPECT_NE(lax_msg, strict_msg);
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
  round_trip(h, 0, 4096, 3);
}

// ---------------------------------------------------------------- 8./9. delays and death

TEST(Nbdkit, ServerDeathCompletesInFlight) {
  START({"--filter=delay", "memory", "1M", "rdelay=30000ms"});
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  std::vector<char> buf(4096);
  int64_t c = nbd_aio_pread(h, buf.data(), buf.size(), 0, NBD_NULL_COMPLETION, 0);
  ASSERT_GT(c, 0) << nbd_get_error();
  server->kill_now();
  int done = 0;
  for (int i = 0; i < 1000; ++i) {
    done = nbd_aio_command_completed(h, c);
    if (done != 0) break;
    int r = nbd_poll(h, 10000);
    if (r == 0) break;  // timeout: a hang
  }
  EXPECT_EQ(done, -1) << "command did not complete with an error";
  EXPECT_TRUE(last_error_is(ENOTCONN, "nbd_aio_command_completed: read: command failed"));
  EXPECT_EQ(nbd_aio_is_dead(h), 1);
  EXPECT_EQ(nbd_aio_in_flight(h), 0);
  EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread: invalid state"));
}

TEST(Nbdkit, SlowReadDoesNotBlockWrite) {
  START({"--filter=delay", "memory", "1M", "rdelay=3000ms"});
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  std::vector<char> rbuf(4096);
  auto data = random_bytes(4096, 9);
  int64_t r = nbd_aio_pread(h, rbuf.data(), rbuf.size(), 0, NBD_NULL_COMPLETION, 0);
  ASSERT_GT(r, 0) << nbd_get_error();
  int64_t w = nbd_aio_pwrite(h, data.data(), data.size(), 65536, NBD_NULL_COMPLETION, 0);
  ASSERT_GT(w, 0) << nbd_get_error();
  int wdone = 0;
  ASSERT_TRUE(poll_until(h, [&] { return (wdone = nbd_aio_command_completed(h, w)) != 0; }))
      << nbd_get_error();
  EXPECT_EQ(wdone, 1) << nbd_get_error();
  EXPECT_EQ(nbd_aio_command_completed(h, r), 0);  // the read is still delayed
  EXPECT_EQ(nbd_aio_in_flight(h), 1);
  int rdone = 0;
  ASSERT_TRUE(poll_until(h, [&] { return (rdone = nbd_aio_command_completed(h, r)) != 0; }));
  EXPECT_EQ(rdone, 1) << nbd_get_error();
  EXPECT_TRUE(all_zero(rbuf));
}

// ---------------------------------------------------------------- 10. connection methods

TEST(Nbdkit, ConnectCommandAndKill) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  Handle h;
  const char* argv[] = {"nbdkit", "-s", "--exit-with-parent", "memory", "1M", nullptr};
  ASSERT_EQ(nbd_connect_command(h, const_cast<char**>(argv)), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1048576);
  round_trip(h, 12345, 5000, 6);
  ASSERT_EQ(nbd_kill_subprocess(h, 0), 0) << nbd_get_error();
  // kill(2) is asynchronous: nbdkit may still answer a few requests before SIGTERM lands, and
  // while it shuts down it replies ESHUTDOWN (a server error: the handle stays ready, as with
  // libnbd 1.14).  Eventually the connection drops and the handle is dead.
  std::vector<char> buf(512);
  int tries = 0, failures = 0;
  std::string msg;
  while (tries < 200000 && nbd_aio_is_ready(h) == 1) {
    ++tries;
    if (nbd_pread(h, buf.data(), buf.size(), 0, 0) == -1) {
      ++failures;
      msg = nbd_get_error() ? nbd_get_error() : "(null)";
      int e = nbd_get_errno();
      if (nbd_aio_is_ready(h) == 1) {
        EXPECT_EQ(e, ESHUTDOWN) << msg;
      }
    }
  }
  EXPECT_GE(failures, 1);
  EXPECT_EQ(nbd_aio_is_ready(h), 0) << "after " << tries << " reads: " << msg;
  EXPECT_EQ(nbd_aio_is_dead(h), 1) << msg;
  EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), -1);  // fails cleanly, no hang
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread: invalid state"));
}

TEST(Nbdkit, ConnectSystemdSocketActivation) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  nbd_handle* h = nbd_create();
  ASSERT_NE(h, nullptr) << nbd_get_error();
  const char* argv[] = {"nbdkit", "memory", "1M", nullptr};
  ASSERT_EQ(nbd_connect_systemd_socket_activation(h, const_cast<char**>(argv)), 0)
      << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1048576);
  round_trip(h, 0, 65536, 7);
  EXPECT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  // The server keeps listening after our disconnect; nbd_close stops and reaps it.
  const std::vector<pid_t> before = children_named("nbdkit");
  EXPECT_EQ(before.size(), 1u);
  nbd_close(h);
  EXPECT_TRUE(children_named("nbdkit").empty());
  for (pid_t pid : before)
    EXPECT_NE(kill(pid, 0), 0) << "server " << pid << " outlived nbd_close";
}

TEST(Nbdkit, ConnectTcp) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto server = start_nbdkit({"memory", "1M"}, true);
  ASSERT_NE(server, nullptr);
  Handle h;
  ASSERT_EQ(nbd_connect_tcp(h, server->host().c_str(), server->port().c_str()), 0)
      << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1048576);
  round_trip(h, 4096, 4096, 8);
  Handle h2;
  ASSERT_EQ(nbd_connect_uri(h2, server->uri().c_str()), 0) << nbd_get_error();
  char* uri = nbd_get_uri(h2);
  ASSERT_NE(uri, nullptr) << nbd_get_error();
  EXPECT_EQ(std::string(uri).rfind("nbd://", 0), 0u) << uri;
  free(uri);
}

TEST(Nbdkit, ConnectSocket) {
  START({"memory", "1M"});
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(server->unix_socket().size(), sizeof addr.sun_path);
  strcpy(addr.sun_path, server->unix_socket().c_str());
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << strerror(errno);
  Handle h;
  ASSERT_EQ(nbd_connect_socket(h, fd), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1048576);
  round_trip(h, 777, 3333, 9);
}

TEST(Nbdkit, AioConnectUnixPollLoop) {
  START({"memory", "1M"});
  Handle h;
  ASSERT_EQ(nbd_aio_connect_unix(h, server->unix_socket().c_str()), 0) << nbd_get_error();
  ASSERT_TRUE(poll_until(h, [&] { return nbd_aio_is_connecting(h) == 0; })) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_ready(h), 1) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1048576);
  round_trip(h, 0, 4096, 10);
}

// ---------------------------------------------------------------- 11. limits and data

TEST(Nbdkit, Limits) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto server = start_nbdkit({"memory", "128M"});
  ASSERT_NE(server, nullptr);
  Handle h;
  std::string long_name(4097, 'x');
  EXPECT_EQ(nbd_set_export_name(h, long_name.c_str()), -1);
  EXPECT_TRUE(last_error_is(ENAMETOOLONG, "nbd_set_export_name: "));
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  std::vector<char> big(64 * 1024 * 1024 + 1);
  EXPECT_EQ(nbd_pread(h, big.data(), big.size(), 0, 0), -1);
  EXPECT_TRUE(last_error_is(ERANGE, "nbd_pread: "));
  EXPECT_EQ(nbd_pread(h, big.data(), 64 * 1024 * 1024, 0, 0), 0) << nbd_get_error();
  const uint64_t size = 128ull * 1024 * 1024;
  EXPECT_EQ(nbd_pread(h, big.data(), 512, size - 256, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread: request out of bounds"));
  EXPECT_EQ(nbd_pwrite(h, big.data(), 1, size, 0), -1);
  EXPECT_TRUE(last_error_is(ENOSPC, "nbd_pwrite: request out of bounds"));
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
}

TEST(Nbdkit, DataPluginContent) {
  START({"data", "1 2 3 @510 0x55 0xAA", "size=1024"});
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1024);
  std::vector<unsigned char> buf(1024, 0xff), expect(1024, 0);
  expect[0] = 1;
  expect[1] = 2;
  expect[2] = 3;
  expect[510] = 0x55;
  expect[511] = 0xAA;
  ASSERT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(buf, expect);
}

TEST(Nbdkit, PatternPluginContent) {
  START({"-r", "pattern", "1M"});
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_is_read_only(h), 1);
  std::vector<unsigned char> buf(65536);
  const uint64_t off = 1048576 - 65536;
  ASSERT_EQ(nbd_pread(h, buf.data(), buf.size(), off, 0), 0) << nbd_get_error();
  for (size_t i = 0; i < buf.size(); i += 8) {
    uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v = (v << 8) | buf[i + k];
    ASSERT_EQ(v, off + i) << i;
  }
  EXPECT_EQ(nbd_pwrite(h, buf.data(), 512, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EPERM, "nbd_pwrite: "));
}

}  // namespace
