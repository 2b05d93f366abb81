// aio_forms_test.cpp: every aio_connect_* form and every aio command form against a real nbdkit,
// driven with nbd_poll, with their callbacks counted and their data checked.
#include <fcntl.h>
#include <libnbd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/closure_counter.hpp"
#include "common/io_helpers.hpp"
#include "common/servers.hpp"

namespace {

using nbd_test::Counter;
using nbd_test::Handle;
using nbd_test::Resume;
using nbd_test::stop_child;
using nbd_test::last_error_is;
using nbd_test::poll_until;
using nbd_test::random_bytes;
using nbd_test::start_nbdkit;
using nbd_test::take;

// A completion callback that also keeps the error it was given; returns 0, so the command waits
// for nbd_aio_command_completed.
struct Completion {
  int calls = 0;
  int frees = 0;
  int error = -1;
};

nbd_completion_callback completion_closure(Completion& c) {
  return {[](void* ud, int* error) {
            auto* p = static_cast<Completion*>(ud);
            ++p->calls;
            p->error = *error;
            return 0;
          },
          &c, [](void* ud) { ++static_cast<Completion*>(ud)->frees; }};
}

// Polls until an aio_connect_* handshake is over; true if the handle ended up ready.
bool drive_to_ready(nbd_handle* h) {
  return poll_until(h, [&] { return nbd_aio_is_connecting(h) == 0; }) && nbd_aio_is_ready(h) == 1;
}

// Polls until the command completes, retires it and returns what nbd_aio_command_completed said:
// 1 for success, -1 for failure (the error is then this thread's), 0 if polling gave up.
int wait_for(nbd_handle* h, int64_t cookie) {
  int r = 0;
  poll_until(h, [&] { return (r = nbd_aio_command_completed(h, cookie)) != 0; });
  return r;
}

// aio_pwrite then aio_pread (one after the other: the server may reorder commands in flight),
// each completion called and freed once, and the data read back equal to the data written.
void aio_round_trip(nbd_handle* h, uint64_t offset, size_t n, unsigned seed) {
  auto data = random_bytes(n, seed);
  Completion wc, rc;
  const int64_t w = nbd_aio_pwrite(h, data.data(), n, offset, completion_closure(wc), 0);
  ASSERT_GT(w, 0) << nbd_get_error();
  ASSERT_EQ(wait_for(h, w), 1) << nbd_get_error();
  std::vector<char> back(n);
  const int64_t r = nbd_aio_pread(h, back.data(), n, offset, completion_closure(rc), 0);
  ASSERT_GT(r, 0) << nbd_get_error();
  ASSERT_EQ(wait_for(h, r), 1) << nbd_get_error();
  EXPECT_EQ(back, data);
  for (const Completion* c : {&wc, &rc}) {
    EXPECT_EQ(c->calls, 1);
    EXPECT_EQ(c->frees, 1);
    EXPECT_EQ(c->error, 0);
  }
}

bool all_equal(const char* p, size_t n, char c) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != c) return false;
  return true;
}

// ---------------------------------------------------------------- aio_connect_*

TEST(AioForms, ConnectUri) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_aio_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  ASSERT_TRUE(drive_to_ready(h)) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1048576);
  aio_round_trip(h, 4096, 65536, 1);
  EXPECT_EQ(nbd_aio_connect_uri(h, srv->uri().c_str()), -1);  // one connection per handle
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_aio_connect_uri: invalid state: READY"));
}

// libnbd 1.16: the scheme in any case, through both connect calls; nbd_get_uri answers with the
// canonical lower-case one.
TEST(AioForms, ConnectUriSchemeInAnyCase) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  const std::string lower = "nbd+unix:///?socket=" + srv->unix_socket();
  for (const char* scheme : {"NBD+UNIX", "Nbd+Unix"}) {
    SCOPED_TRACE(scheme);
    const std::string uri = scheme + lower.substr(8);
    Handle a;
    ASSERT_EQ(nbd_aio_connect_uri(a, uri.c_str()), 0) << nbd_get_error();
    ASSERT_TRUE(drive_to_ready(a)) << nbd_get_error();
    aio_round_trip(a, 0, 4096, 4);
    EXPECT_EQ(take(nbd_get_uri(a)), lower);
    Handle s;
    ASSERT_EQ(nbd_connect_uri(s, uri.c_str()), 0) << nbd_get_error();
    EXPECT_EQ(nbd_get_size(s), 1048576);
    EXPECT_EQ(take(nbd_get_uri(s)), lower);
  }
  auto tcp = start_nbdkit({"memory", "1M"}, true);
  ASSERT_TRUE(tcp);
  Handle t;
  ASSERT_EQ(nbd_connect_uri(t, ("NBD://127.0.0.1:" + tcp->port() + "/").c_str()), 0) << nbd_get_error();
  EXPECT_EQ(take(nbd_get_uri(t)), "nbd://127.0.0.1:" + tcp->port() + "/");
}

TEST(AioForms, ConnectTcp) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"}, true);
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_aio_connect_tcp(h, srv->host().c_str(), srv->port().c_str()), 0) << nbd_get_error();
  ASSERT_TRUE(drive_to_ready(h)) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1048576);
  aio_round_trip(h, 0, 4096, 2);
  aio_round_trip(h, 1048576 - 512, 512, 3);
}

// The handle owns the socket it was given: nbd_close closes it.
TEST(AioForms, ConnectSocketTakesTheFd) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(srv->unix_socket().size(), sizeof addr.sun_path);
  std::strcpy(addr.sun_path, srv->unix_socket().c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    close(fd);
    FAIL() << "connect: " << std::strerror(err);
  }
  {
    Handle h;
    ASSERT_EQ(nbd_aio_connect_socket(h, fd), 0) << nbd_get_error();
    ASSERT_TRUE(drive_to_ready(h)) << nbd_get_error();
    EXPECT_EQ(nbd_aio_get_fd(h), fd);
    EXPECT_EQ(nbd_get_size(h), 1048576);
    aio_round_trip(h, 777, 3333, 4);
  }  // nbd_close
  errno = 0;
  EXPECT_EQ(fcntl(fd, F_GETFD), -1);  // nothing in this test opens files meanwhile
  EXPECT_EQ(errno, EBADF);
}

TEST(AioForms, ConnectCommand) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  Handle h;
  const char* argv[] = {"nbdkit", "-s", "--exit-with-parent", "memory", "1M", nullptr};
  ASSERT_EQ(nbd_aio_connect_command(h, const_cast<char**>(argv)), 0) << nbd_get_error();
  ASSERT_TRUE(drive_to_ready(h)) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1048576);
  aio_round_trip(h, 65536, 131072, 5);
}

TEST(AioForms, ConnectSystemdSocketActivation) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  Handle h;
  const char* argv[] = {"nbdkit", "memory", "1M", nullptr};
  ASSERT_EQ(nbd_aio_connect_systemd_socket_activation(h, const_cast<char**>(argv)), 0) << nbd_get_error();
  ASSERT_TRUE(drive_to_ready(h)) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1048576);
  aio_round_trip(h, 0, 65536, 6);
}

// ---------------------------------------------------------------- aio commands

TEST(AioForms, PreadStructuredChunks) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_get_structured_replies_negotiated(h), 1);
  auto data = random_bytes(65536, 7);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 4096, 0), 0) << nbd_get_error();

  struct Chunks {
    int calls = 0;
    int frees = 0;
    uint64_t covered = 0;  // bytes the chunks reported
    bool in_range = true;  // each chunk inside the request, and its data where it belongs
    std::vector<char>* buf = nullptr;
  } chunks;
  std::vector<char> back(data.size());
  chunks.buf = &back;
  nbd_chunk_callback chunk{[](void* ud, const void* subbuf, size_t count, uint64_t offset, unsigned status, int*) {
                             auto* c = static_cast<Chunks*>(ud);
                             ++c->calls;
                             c->covered += count;
                             c->in_range = c->in_range && offset >= 4096 && offset + count <= 4096 + c->buf->size() &&
                                           status == LIBNBD_READ_DATA && subbuf == c->buf->data() + (offset - 4096);
                             return 0;
                           },
                           &chunks, [](void* ud) { ++static_cast<Chunks*>(ud)->frees; }};
  Completion done;
  const int64_t c = nbd_aio_pread_structured(h, back.data(), back.size(), 4096, chunk, completion_closure(done), 0);
  ASSERT_GT(c, 0) << nbd_get_error();
  ASSERT_EQ(wait_for(h, c), 1) << nbd_get_error();
  EXPECT_EQ(chunks.calls, 1);  // nbdkit answers a read with one data chunk
  EXPECT_EQ(chunks.frees, 1);
  EXPECT_EQ(chunks.covered, data.size());
  EXPECT_TRUE(chunks.in_range);
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.frees, 1);
  EXPECT_EQ(done.error, 0);
  EXPECT_EQ(back, data);

  // DF: still one chunk.
  Counter df_chunks, df_done;
  const int64_t d = nbd_aio_pread_structured(h, back.data(), back.size(), 4096, nbd_test::chunk_closure(df_chunks),
                                             nbd_test::completion_closure(df_done), LIBNBD_CMD_FLAG_DF);
  ASSERT_GT(d, 0) << nbd_get_error();
  ASSERT_EQ(wait_for(h, d), 1) << nbd_get_error();
  EXPECT_EQ(df_chunks.calls, 1);
  EXPECT_EQ(df_chunks.frees, 1);
  EXPECT_EQ(df_done.calls, 1);
  EXPECT_EQ(df_done.frees, 1);
  EXPECT_EQ(back, data);
}

TEST(AioForms, TrimZeroCacheFlush) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  auto data = random_bytes(262144, 8);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), 0) << nbd_get_error();

  // All four in flight at once, on ranges that do not overlap.
  Completion trim, zero, cache, flush;
  const int64_t t = nbd_aio_trim(h, 65536, 0, completion_closure(trim), 0);
  const int64_t z = nbd_aio_zero(h, 65536, 131072, completion_closure(zero), 0);
  const int64_t c = nbd_aio_cache(h, 65536, 65536, completion_closure(cache), 0);
  const int64_t f = nbd_aio_flush(h, completion_closure(flush), 0);
  for (int64_t cookie : {t, z, c, f}) ASSERT_GT(cookie, 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_in_flight(h), 4);
  ASSERT_TRUE(poll_until(h, [&] { return nbd_aio_in_flight(h) == 0; })) << nbd_get_error();
  for (const Completion* p : {&trim, &zero, &cache, &flush}) {
    EXPECT_EQ(p->calls, 1);
    EXPECT_EQ(p->error, 0);
  }
  for (int64_t cookie : {t, z, c, f}) EXPECT_EQ(nbd_aio_command_completed(h, cookie), 1) << nbd_get_error();
  for (const Completion* p : {&trim, &zero, &cache, &flush}) EXPECT_EQ(p->frees, 1);

  std::vector<char> back(data.size());
  ASSERT_EQ(nbd_pread(h, back.data(), back.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_TRUE(all_equal(back.data(), 65536, 0));  // trimmed: nbdkit memory reads zeros
  EXPECT_TRUE(std::equal(back.begin() + 65536, back.begin() + 131072, data.begin() + 65536));  // cached
  EXPECT_TRUE(all_equal(back.data() + 131072, 65536, 0));                                      // zeroed
  EXPECT_TRUE(std::equal(back.begin() + 196608, back.end(), data.begin() + 196608));

  // Write with FUA, then an aio flush with no completion callback.
  auto more = random_bytes(4096, 9);
  ASSERT_EQ(nbd_pwrite(h, more.data(), more.size(), 0, LIBNBD_CMD_FLAG_FUA), 0) << nbd_get_error();
  const int64_t f2 = nbd_aio_flush(h, NBD_NULL_COMPLETION, 0);
  ASSERT_GT(f2, 0) << nbd_get_error();
  EXPECT_EQ(wait_for(h, f2), 1) << nbd_get_error();
}

struct ExtentLog {
  int calls = 0;
  int frees = 0;
  std::string context;
  uint64_t offset = 0;
  std::vector<std::pair<uint32_t, uint32_t>> extents;  // length, flags

  // The flags of the extent holding off, or -1 if no extent covers it.
  int64_t flags_at(uint64_t off) const {
    uint64_t pos = offset;
    for (auto [len, flags] : extents) {
      if (off >= pos && off < pos + len) return flags;
      pos += len;
    }
    return -1;
  }
};

nbd_extent_callback extent_log_closure(ExtentLog& log) {
  return {[](void* ud, const char* context, uint64_t offset, uint32_t* entries, size_t n, int*) {
            auto* l = static_cast<ExtentLog*>(ud);
            ++l->calls;
            l->context = context;
            l->offset = offset;
            l->extents.clear();
            for (size_t i = 0; i + 1 < n; i += 2) l->extents.emplace_back(entries[i], entries[i + 1]);
            return 0;
          },
          &log, [](void* ud) { ++static_cast<ExtentLog*>(ud)->frees; }};
}

// aio_block_status over the whole disk, retired; the log holds the one context's extents.
void block_status(nbd_handle* h, ExtentLog& log) {
  Completion done;
  const int64_t c = nbd_aio_block_status(h, 1048576, 0, extent_log_closure(log), completion_closure(done), 0);
  ASSERT_GT(c, 0) << nbd_get_error();
  ASSERT_EQ(wait_for(h, c), 1) << nbd_get_error();
  EXPECT_EQ(log.calls, 1);  // once per negotiated context
  EXPECT_EQ(log.frees, 1);
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.frees, 1);
  EXPECT_EQ(done.error, 0);
  EXPECT_EQ(log.context, LIBNBD_CONTEXT_BASE_ALLOCATION);
  EXPECT_EQ(log.offset, 0u);
}

TEST(AioForms, BlockStatusAfterWrites) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0) << nbd_get_error();
  ASSERT_EQ(nbd_aio_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  ASSERT_TRUE(drive_to_ready(h)) << nbd_get_error();
  ASSERT_EQ(nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 1);

  ExtentLog before;
  block_status(h, before);
  EXPECT_EQ(before.flags_at(0), LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO);  // nothing written yet
  EXPECT_EQ(before.flags_at(1048575), LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO);

  aio_round_trip(h, 0, 65536, 10);
  Completion zero;
  const int64_t z = nbd_aio_zero(h, 65536, 65536, completion_closure(zero), 0);
  ASSERT_GT(z, 0) << nbd_get_error();
  ASSERT_EQ(wait_for(h, z), 1) << nbd_get_error();
  ExtentLog after;
  block_status(h, after);
  EXPECT_EQ(after.flags_at(0), 0);  // data
  EXPECT_EQ(after.flags_at(65535), 0);
  const int64_t zeroed = after.flags_at(65536);
  EXPECT_TRUE(zeroed >= 0 && (zeroed & LIBNBD_STATE_ZERO) != 0) << zeroed;
  EXPECT_EQ(after.flags_at(524288), LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO);
  EXPECT_EQ(after.flags_at(1048575), LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO);

  Completion trim;
  const int64_t t = nbd_aio_trim(h, 65536, 0, completion_closure(trim), 0);
  ASSERT_GT(t, 0) << nbd_get_error();
  ASSERT_EQ(wait_for(h, t), 1) << nbd_get_error();
  ExtentLog trimmed;
  block_status(h, trimmed);
  EXPECT_EQ(trimmed.flags_at(0), LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO);
}

// A command the server fails completes with the server's errno, in the callback and in
// nbd_aio_command_completed, and the callbacks are still freed once.
TEST(AioForms, FailedCommandsCompleteWithTheServersError) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"--filter=error", "memory", "1M", "error-pread=EIO", "error-pread-rate=1",
                           "error-trim=ENOSPC", "error-trim-rate=1"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  std::vector<char> buf(4096);
  Counter chunks;
  Completion read, trim;
  const int64_t r = nbd_aio_pread_structured(h, buf.data(), buf.size(), 0, nbd_test::chunk_closure(chunks),
                                             completion_closure(read), 0);
  ASSERT_GT(r, 0) << nbd_get_error();
  const int64_t t = nbd_aio_trim(h, 4096, 0, completion_closure(trim), 0);
  ASSERT_GT(t, 0) << nbd_get_error();
  ASSERT_TRUE(poll_until(h, [&] { return nbd_aio_in_flight(h) == 0; })) << nbd_get_error();
  EXPECT_EQ(read.calls, 1);
  EXPECT_EQ(read.error, EIO);
  EXPECT_EQ(trim.calls, 1);
  EXPECT_EQ(trim.error, ENOSPC);
  EXPECT_EQ(chunks.calls, 0);  // an error chunk is not data
  // As in libnbd 1.14, the message names the command ("read: command failed").
  EXPECT_EQ(nbd_aio_command_completed(h, r), -1);
  EXPECT_TRUE(last_error_is(EIO, "nbd_aio_command_completed: read: command failed"));
  EXPECT_EQ(nbd_aio_command_completed(h, t), -1);
  EXPECT_TRUE(last_error_is(ENOSPC, "nbd_aio_command_completed: trim: command failed"));
  EXPECT_EQ(chunks.frees, 1);
  EXPECT_EQ(read.frees, 1);
  EXPECT_EQ(trim.frees, 1);
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
}

// ---------------------------------------------------------------- aio_disconnect

TEST(AioForms, DisconnectFinishesInFlightThenCloses) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  // One thread: nbdkit then answers the write before it reads NBD_CMD_DISC.  With several, the
  // thread that reads NBD_CMD_DISC may close the connection before the write is answered, and the
  // write then fails with ESHUTDOWN (libnbd 1.14 too, about 1 run in 10).
  auto srv = start_nbdkit({"--threads=1", "memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_disconnect(h, 1), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_aio_disconnect: flags: invalid value for flag: 0x1"));
  auto data = random_bytes(65536, 11);
  Completion write;
  const int64_t w = nbd_aio_pwrite(h, data.data(), data.size(), 0, completion_closure(write), 0);
  ASSERT_GT(w, 0) << nbd_get_error();
  ASSERT_EQ(nbd_aio_disconnect(h, 0), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_closed(h), 0);  // closed once the server has seen NBD_CMD_DISC
  ASSERT_TRUE(poll_until(h, [&] { return nbd_aio_is_closed(h) == 1; })) << nbd_get_error();
  EXPECT_EQ(write.calls, 1);  // the server answers what came before NBD_CMD_DISC
  EXPECT_EQ(write.error, 0);
  EXPECT_EQ(nbd_aio_command_completed(h, w), 1) << nbd_get_error();
  EXPECT_EQ(write.frees, 1);
  EXPECT_EQ(nbd_aio_in_flight(h), 0);
  EXPECT_EQ(nbd_aio_is_processing(h), 0);
  EXPECT_EQ(nbd_aio_disconnect(h, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_aio_disconnect: invalid state: CLOSED"));
  Completion late;
  EXPECT_EQ(nbd_aio_flush(h, completion_closure(late), 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_aio_flush: invalid state: CLOSED"));
  EXPECT_EQ(late.calls, 0);
  EXPECT_EQ(late.frees, 1);

  // The server wrote the data before it closed.
  Handle h2;
  ASSERT_EQ(nbd_connect_uri(h2, srv->uri().c_str()), 0) << nbd_get_error();
  std::vector<char> back(data.size());
  ASSERT_EQ(nbd_pread(h2, back.data(), back.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, data);
}

// Between aio_disconnect and the close, the handle takes no more commands.
TEST(AioForms, DisconnectRefusesFurtherCommands) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_aio_disconnect(h, 0), 0) << nbd_get_error();
  // As in libnbd 1.14, NBD_CMD_DISC counts as in flight until the connection closes.
  EXPECT_EQ(nbd_aio_in_flight(h), 1);
  // A second aio_disconnect is refused (EINVAL), as in libnbd 1.14.
  EXPECT_EQ(nbd_aio_disconnect(h, 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_aio_disconnect: cannot request more commands after NBD_CMD_DISC"));
  // So is any later command, with the same errno as libnbd 1.14.
  Completion late;
  EXPECT_EQ(nbd_aio_flush(h, completion_closure(late), 0), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_aio_flush: cannot request more commands after NBD_CMD_DISC"));
  EXPECT_EQ(late.calls, 0);
  EXPECT_EQ(late.frees, 1);
  ASSERT_TRUE(poll_until(h, [&] { return nbd_aio_is_closed(h) == 1; })) << nbd_get_error();
  EXPECT_EQ(nbd_aio_in_flight(h), 0);
}

// ---------------------------------------------------------------- aio_is_processing

// libnbd is processing only while it is in the middle of writing a request or reading a reply: a
// stopped server that cannot take in a large write keeps it there.
TEST(AioForms, IsProcessingWhileAWriteIsHalfSent) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "16M"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_aio_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  ASSERT_TRUE(drive_to_ready(h)) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_processing(h), 0);
  std::vector<char> big(8 << 20, 'p');  // far more than a socket buffer holds
  Completion done;
  int64_t w = 0;
  {
    Resume resume{srv->pid()};
    ASSERT_TRUE(stop_child(srv->pid()));
    w = nbd_aio_pwrite(h, big.data(), big.size(), 0, completion_closure(done), 0);
    ASSERT_GT(w, 0) << nbd_get_error();
    EXPECT_EQ(nbd_aio_is_processing(h), 1);
    EXPECT_EQ(nbd_aio_is_ready(h), 0);
    EXPECT_NE(nbd_aio_get_direction(h) & LIBNBD_AIO_DIRECTION_WRITE, 0u);
  }
  ASSERT_EQ(wait_for(h, w), 1) << nbd_get_error();
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.frees, 1);
  EXPECT_EQ(nbd_aio_is_processing(h), 0);
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
  std::vector<char> back(4096);
  ASSERT_EQ(nbd_pread(h, back.data(), back.size(), (8 << 20) - 4096, 0), 0) << nbd_get_error();
  EXPECT_TRUE(all_equal(back.data(), back.size(), 'p'));
}

// A command that is sent and waits for its reply leaves the handle ready, not processing.
TEST(AioForms, IsProcessingNotWhileOnlyAwaitingReplies) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  auto srv = start_nbdkit({"memory", "1M"});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  char buf[512];
  Completion done;
  const int64_t c = nbd_aio_pread(h, buf, sizeof buf, 0, completion_closure(done), 0);
  ASSERT_GT(c, 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_in_flight(h), 1);
  // The request is sent and the reply not being read yet: ready, not processing (libnbd 1.14).
  EXPECT_EQ(nbd_aio_is_processing(h), 0);
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
  ASSERT_EQ(wait_for(h, c), 1) << nbd_get_error();
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(nbd_aio_is_processing(h), 0);
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
}

}  // namespace
