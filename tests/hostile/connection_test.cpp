// connection_test.cpp: hostile timing: the server hangs up mid-reply, drip-feeds every byte, or
// answers a request before the client has sent it.
#include <libnbd.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/closure_counter.hpp"
#include "common/io_helpers.hpp"
#include "hostile/hostile_fixture.hpp"

using namespace hostile;
using nbd_test::Counter;
using nbd_test::last_error_is;

namespace {

// A one-shot signal from the test to its script (a pipe), for "the client has now done X".
class Signal {
 public:
  Signal() {
    if (::pipe(fds_) != 0)
      throw std::runtime_error("pipe");
  }
  ~Signal() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;
  void raise() { EXPECT_EQ(::write(fds_[1], "x", 1), 1); }
  void wait() const {
    struct pollfd p {fds_[0], POLLIN, 0};
    if (::poll(&p, 1, FakeServer::timeout_ms()) != 1)
      throw ScriptError("timed out waiting for the test's signal");
  }

 private:
  int fds_[2];
};

// ---------------------------------------------------------------------------------------------
// Transmission: the connection ends or misbehaves in time

TEST_F(Hostile, CloseMidReplyWithCommandsInFlight) {
  connect_ok(sr_export(), [](Peer& p) {
    const Request r = p.read_request();
    p.read_request();
    p.read_request();
    p.send(Bytes().u32(STRUCTURED_REPLY_MAGIC).u16(0).u16(REPLY_TYPE_OFFSET_DATA).u64(r.cookie)
               .u32(8 + 512).u64(r.offset).fill(100, 'x'));  // 100 of 512 data bytes
    p.hangup();
  });
  Guarded buf(512);
  const auto data = pattern(4096, 5);
  Completion c[3];
  int64_t k[3];
  k[0] = nbd_aio_pread(h, buf.data(), 512, 0, c[0].closure(), 0);
  k[1] = nbd_aio_pwrite(h, data.data(), data.size(), 4096, c[1].closure(), 0);
  k[2] = nbd_aio_flush(h, c[2].closure(), 0);
  for (int64_t cookie : k)
    ASSERT_GT(cookie, 0) << nbd_get_error();
  EXPECT_TRUE(nbd_test::poll_until(h, [&] { return dead(); }));
  EXPECT_TRUE(last_error_is(ENOTCONN, "nbd_poll: server closed the connection unexpectedly"));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c[i].counter.calls, 1) << i;
    EXPECT_EQ(c[i].error, ENOTCONN) << i;
    EXPECT_EQ(nbd_aio_command_completed(h, static_cast<uint64_t>(k[i])), -1) << i;
    EXPECT_EQ(nbd_get_errno(), ENOTCONN) << i;
  }
  EXPECT_EQ(nbd_aio_in_flight(h), 0);
  EXPECT_TRUE(buf.guards_intact());
  close_handle();
  for (auto& ci : c)
    EXPECT_EQ(ci.counter.frees, 1);
}

TEST_F(Hostile, CloseMidSimpleReadPayload) {
  connect_ok(simple_export(), [](Peer& p) {
    const Request r = p.read_request();
    p.simple_reply(r.cookie, 0, Bytes().fill(100, 'x'));  // 100 of 512 bytes
    p.hangup();
  });
  Guarded buf(512);
  EXPECT_EQ(nbd_pread(h, buf.data(), 512, 0, 0), -1);
  EXPECT_TRUE(last_error_is(ENOTCONN, "nbd_pread: server closed the connection unexpectedly"));
  EXPECT_TRUE(dead());
  EXPECT_TRUE(buf.guards_intact());
}

TEST_F(Hostile, DripFedSession) {
  // A whole valid session with every byte from the server on its own, from the greeting to the
  // disconnect: option replies, structured data, hole and block status chunks, a simple reply.
  ASSERT_EQ(nbd_add_meta_context(h, "base:allocation"), 0);
  const auto data = pattern(4096, 6);
  const auto written = pattern(1024, 7);
  ASSERT_EQ(connect([data, written](Peer& p) {
              p.set_drip(true);
              Export e = sr_export();
              e.block_size = {512, 4096, 1 << 20};
              p.handshake(e);
              Request r = p.read_request();
              if (r.type != CMD_READ || r.length != 4096)
                throw ScriptError("expected a 4096-byte read");
              p.offset_data(r.cookie, r.offset + 2048, Bytes().raw(data.data() + 2048, 2048), 0);
              p.offset_hole(r.cookie, r.offset + 1024, 1024, 0);
              p.offset_data(r.cookie, r.offset, Bytes().raw(data.data(), 1024), 0);
              p.none_chunk(r.cookie);
              r = p.read_request();
              if (r.type != CMD_WRITE || r.data != written)
                throw ScriptError("the write's payload differs");
              p.simple_reply(r.cookie, 0);
              r = p.read_request();
              if (r.type != CMD_BLOCK_STATUS)
                throw ScriptError("expected NBD_CMD_BLOCK_STATUS");
              p.block_status(r.cookie, 7, {{1024, 0}, {1024, 3}, {2048, 0}});
              r = p.read_request();
              if (r.type != CMD_DISC)
                throw ScriptError("expected NBD_CMD_DISC");
              p.hangup();
            }),
            0)
      << nbd_get_error();
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_PREFERRED), 4096);
  EXPECT_EQ(nbd_can_meta_context(h, "base:allocation"), 1);
  Guarded buf(4096);
  Counter chunks;
  ASSERT_EQ(nbd_pread_structured(h, buf.data(), 4096, 8192, nbd_test::chunk_closure(chunks), 0), 0)
      << nbd_get_error();
  auto expect = data;
  std::fill(expect.begin() + 1024, expect.begin() + 2048, 0);
  EXPECT_EQ(buf.contents(), expect);
  EXPECT_EQ(chunks.calls, 3);
  EXPECT_EQ(chunks.frees, 1);
  EXPECT_TRUE(buf.guards_intact());
  ASSERT_EQ(nbd_pwrite(h, written.data(), written.size(), 0, 0), 0) << nbd_get_error();
  Extents ext;
  ASSERT_EQ(nbd_block_status(h, 4096, 0, ext.closure(), 0), 0) << nbd_get_error();
  EXPECT_EQ(ext.entries, (std::vector<uint32_t>{1024, 0, 1024, 3, 2048, 0}));
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_closed(h), 1);
  close_handle();
  EXPECT_EQ(ext.counter.frees, 1);
}

TEST_F(Hostile, DripFedHandshake) {
  // Every handshake byte on its own, through the aio connect and nbd_poll.
  ASSERT_EQ(nbd_add_meta_context(h, "base:allocation"), 0);
  ASSERT_EQ(nbd_set_full_info(h, true), 0);
  const int fd = serve([](Peer& p) {
    p.set_drip(true);
    p.greeting_newstyle();
    p.expect_client_flags(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    Export e = sr_export();
    e.block_size = {512, 4096, 1 << 20};
    for (;;) {
      const Option o = p.expect_option();
      if (o.code == OPT_GO) {
        p.opt_reply(OPT_GO, REP_INFO, Bytes().u16(INFO_NAME).str("canonical"));
        p.opt_reply(OPT_GO, REP_INFO, Bytes().u16(INFO_DESCRIPTION).str("a dripping disk"));
        p.opt_reply(OPT_GO, REP_INFO, Bytes().u16(77).str("unknown info, ignored"));
        p.opt_info_block_size(OPT_GO, 512, 4096, 1 << 20);
        p.opt_info_export(OPT_GO, e.size, e.eflags);
        p.opt_ack(OPT_GO);
        break;
      }
      if (o.code == OPT_STRUCTURED_REPLY) {
        p.opt_ack(o.code);
      } else if (o.code == OPT_SET_META_CONTEXT) {
        p.opt_reply(o.code, REP_META_CONTEXT, Bytes().u32(7).str("base:allocation"));
        p.opt_ack(o.code);
      } else {
        p.opt_error(o.code, REP_ERR_UNSUP);
      }
    }
    const Request r = p.read_request();
    p.simple_reply(r.cookie, 0);
  });
  ASSERT_EQ(nbd_aio_connect_socket(h, fd), 0) << nbd_get_error();
  EXPECT_TRUE(nbd_test::poll_until(h, [&] { return nbd_aio_is_connecting(h) == 0; }));
  ASSERT_EQ(nbd_aio_is_ready(h), 1) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 1 << 20);
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM), 512);
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM), 1 << 20);
  EXPECT_EQ(nbd_can_meta_context(h, "base:allocation"), 1);
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h), 1);
  EXPECT_EQ(nbd_test::take(nbd_get_canonical_export_name(h)), "canonical");
  EXPECT_EQ(nbd_test::take(nbd_get_export_description(h)), "a dripping disk");
  EXPECT_EQ(nbd_flush(h, 0), 0) << nbd_get_error();
}

TEST_F(Hostile, ReplyBeforeTheRequestWasFullySent) {
  // The server answers a large write after reading only its header.  The library must not
  // retire the command (handing the buffer back to the caller) while it still sends from that
  // buffer: it takes the early reply for the protocol error it is.  The completion scribbles
  // over the buffer and the server checks every byte it reads afterwards, in case it comes.
  constexpr size_t kSize = 4 << 20;
  const auto data = pattern(kSize, 8);
  std::vector<unsigned char> buf = data;
  Export e = simple_export();
  e.size = 64 << 20;
  connect_ok(e, [data](Peer& p) {
    const auto hdr = p.read_exact(28);
    if (Bytes().raw(hdr.data() + 6, 10).vec() != Bytes().u16(CMD_WRITE).u64(1).vec())
      throw ScriptError("expected a write with cookie 1");
    p.simple_reply(1, 0);
    // Nothing more of the payload can leave the client before it has read the reply.
    p.wait_until_read();
    for (size_t done = 0; done < kSize;) {
      std::vector<unsigned char> piece;
      try {
        piece = p.read_exact(std::min<size_t>(64 * 1024, kSize - done));
      } catch (const ScriptError&) {
        return;  // the client hung up: it took the early reply for a protocol error
      }
      if (!std::equal(piece.begin(), piece.end(), data.begin() + static_cast<std::ptrdiff_t>(done)))
        throw ScriptError("the write's payload changed after byte " + std::to_string(done) +
                          ": the buffer was still being sent after the command completed");
      done += piece.size();
    }
  });
  struct Scribble {
    std::vector<unsigned char>* buf;
    int calls = 0, frees = 0;
  } s{&buf};
  nbd_completion_callback cb{[](void* ud, int*) {
                               auto* self = static_cast<Scribble*>(ud);
                               ++self->calls;
                               std::fill(self->buf->begin(), self->buf->end(), 0xee);
                               return 1;  // retired: the caller owns the buffer again
                             },
                             &s, [](void* ud) { ++static_cast<Scribble*>(ud)->frees; }};
  const int64_t cookie = nbd_aio_pwrite(h, buf.data(), buf.size(), 0, cb, 0);
  ASSERT_EQ(cookie, 1) << nbd_get_error();
  // (Before 9ee894f the reply retired the write while most of its payload was still queued,
  // and the library went on sending the scribbled buffer.)
  EXPECT_TRUE(nbd_test::poll_until(h, [&] { return s.calls == 1; }));
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_poll: reply for cookie 1 before its request was sent"));
  EXPECT_TRUE(dead());
  finish_server();
  EXPECT_EQ(s.frees, 1);
}

TEST_F(Hostile, ReplyToARequestNotYetSent) {
  // The server guesses the next cookie and answers a write the client has only queued (a
  // bigger write ahead of it fills the socket).  The library must not retire a command whose
  // request has not been sent: the caller would reuse its buffer, and the library would then
  // send freed or reused memory to the server.
  constexpr size_t kBig = 4 << 20, kSmall = 4096;
  const auto big = pattern(kBig, 9);
  const auto small = pattern(kSmall, 10);
  std::vector<unsigned char> small_buf = small;
  auto queued = std::make_shared<Signal>();
  Export e = simple_export();
  e.size = 64 << 20;
  connect_ok(e, [big, small, queued](Peer& p) {
    queued->wait();
    p.simple_reply(2, 0);  // for the small write, not yet sent
    p.wait_until_read();
    try {
      const Request a = p.read_request();
      const Request b = p.read_request();
      if (a.cookie != 1 || a.data != big || b.cookie != 2)
        throw ScriptError("unexpected requests");
      if (b.data != small)
        throw ScriptError("the small write's payload was sent after the command had completed "
                          "and its buffer had been reused");
      p.simple_reply(1, 0);
    } catch (const ScriptError& err) {
      if (std::string(err.what()).find("closed the connection") == std::string::npos)
        throw;  // the client hung up: it took the reply for a protocol error
    }
  });
  Completion ca;
  struct Scribble {
    std::vector<unsigned char>* buf;
    int calls = 0, frees = 0;
  } s{&small_buf};
  nbd_completion_callback cb{[](void* ud, int*) {
                               auto* self = static_cast<Scribble*>(ud);
                               ++self->calls;
                               std::fill(self->buf->begin(), self->buf->end(), 0xee);
                               return 1;
                             },
                             &s, [](void* ud) { ++static_cast<Scribble*>(ud)->frees; }};
  ASSERT_EQ(nbd_aio_pwrite(h, big.data(), big.size(), 0, ca.closure(), 0), 1) << nbd_get_error();
  ASSERT_EQ(nbd_aio_pwrite(h, small_buf.data(), small_buf.size(), kBig, cb, 0), 2) << nbd_get_error();
  queued->raise();
  // (Before 9ee894f the reply retired the small write while its request was still queued, and
  // the library then sent the scribbled buffer.)
  EXPECT_TRUE(nbd_test::poll_until(h, [&] { return ca.counter.calls == 1 && s.calls == 1; }));
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_poll: reply for cookie 2 before its request was sent"));
  EXPECT_TRUE(dead());
  EXPECT_EQ(ca.error, ENOTCONN);
  finish_server();
  EXPECT_EQ(s.frees, 1);
  EXPECT_EQ(ca.counter.frees, 1);
}

}  // namespace
