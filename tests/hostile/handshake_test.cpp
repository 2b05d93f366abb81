// handshake_test.cpp: hostile handshakes: a bad greeting, STARTTLS abused, option replies that lie.
#include <libnbd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "common/api_fixture.hpp"
#include "common/closure_counter.hpp"
#include "common/io_helpers.hpp"
#include "hostile/hostile_fixture.hpp"

using namespace hostile;
using nbd_test::Counter;
using nbd_test::last_error_is;

namespace {

// ---------------------------------------------------------------------------------------------
// Handshake: greeting

TEST_F(Hostile, BadGreetingMagic) {
  EXPECT_EQ(connect([](Peer& p) { p.send(Bytes().str("NBDMAGIX").u64(IHAVEOPT).u16(3)); }), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_connect_socket: handshake: server did not send NBDMAGIC"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, UnknownHandshakeVersion) {
  EXPECT_EQ(connect([](Peer& p) { p.send(Bytes().u64(NBDMAGIC).u64(0x0123456789abcdef)); }), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_connect_socket: handshake: unknown handshake version"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, OldstyleWithTlsRequired) {
  ASSERT_EQ(nbd_set_tls(h, LIBNBD_TLS_REQUIRE), 0) << nbd_get_error();
  EXPECT_EQ(connect([](Peer& p) {
              p.greeting_oldstyle(1 << 20, kAllFlags);
              p.expect_eof();  // nothing travels in plaintext
            }),
            -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_connect_socket: handshake: server uses the oldstyle protocol"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, NonFixedNewstyleWithTlsRequired) {
  ASSERT_EQ(nbd_set_tls(h, LIBNBD_TLS_REQUIRE), 0) << nbd_get_error();
  EXPECT_EQ(connect([](Peer& p) {
              // The client may send its flags and hang up, nothing more.
              p.greeting_newstyle(0);
            }),
            -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_connect_socket: handshake: TLS is required but the server is not fixed newstyle"));
  EXPECT_TRUE(dead());
}

// ---------------------------------------------------------------------------------------------
// Handshake: STARTTLS

TEST_F(Hostile, StartTlsRefusedWithTlsRequired) {
  ASSERT_EQ(nbd_set_tls(h, LIBNBD_TLS_REQUIRE), 0) << nbd_get_error();
  EXPECT_EQ(connect([](Peer& p) {
              p.greeting_newstyle();
              p.expect_client_flags(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
              p.expect_option(OPT_STARTTLS);
              p.opt_error(OPT_STARTTLS, REP_ERR_POLICY, "no TLS here");
              p.expect_eof();  // no fallback to plaintext options
            }),
            -1);
  EXPECT_TRUE(last_error_is(ENOTSUP, "nbd_connect_socket: handshake: TLS is required but the server refused NBD_OPT_STARTTLS: no TLS here"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, StartTlsAckedThenPlaintextInTheSameSegment) {
  // A man in the middle acknowledges STARTTLS and appends plaintext for the client to take as
  // if it had arrived under TLS (the CVE-2021-3716 family).
  ASSERT_EQ(nbd_set_tls(h, LIBNBD_TLS_REQUIRE), 0) << nbd_get_error();
  EXPECT_EQ(connect([](Peer& p) {
              p.greeting_newstyle();
              p.expect_client_flags(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
              p.expect_option(OPT_STARTTLS);
              p.send(Bytes().u64(OPT_REPLY_MAGIC).u32(OPT_STARTTLS).u32(REP_ACK).u32(0)
                         .u64(OPT_REPLY_MAGIC).u32(OPT_STRUCTURED_REPLY).u32(REP_ACK).u32(0));
            }),
            -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_connect_socket: handshake: the server sent data after accepting NBD_OPT_STARTTLS"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, StartTlsAckedThenPlaintextInsteadOfTls) {
  ASSERT_EQ(nbd_set_tls(h, LIBNBD_TLS_REQUIRE), 0) << nbd_get_error();
  // PSK credentials, so the test needs no certificates (not even the system's trust store).
  struct PskFile {
    char path[32] = "/tmp/hostile-psk-XXXXXX";
    int fd = ::mkstemp(path);
    ~PskFile() { ::unlink(path); }
  } psk;
  ASSERT_NE(psk.fd, -1);
  const std::string key = "hostile:0123456789abcdef0123456789abcdef\n";
  ASSERT_EQ(::write(psk.fd, key.data(), key.size()), static_cast<ssize_t>(key.size()));
  ::close(psk.fd);
  ASSERT_EQ(nbd_set_tls_psk_file(h, psk.path), 0) << nbd_get_error();
  ASSERT_EQ(nbd_set_tls_username(h, "hostile"), 0) << nbd_get_error();
  EXPECT_EQ(connect([](Peer& p) {
              p.greeting_newstyle();
              p.expect_client_flags(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
              p.expect_option(OPT_STARTTLS);
              p.opt_ack(OPT_STARTTLS);
              // The ClientHello record: 5-byte header, then its length.
              const auto rec = p.read_exact(5);
              if (rec[0] != 0x16)
                throw ScriptError("expected a TLS handshake record after STARTTLS");
              p.read_exact(static_cast<size_t>(rec[3] << 8 | rec[4]));
              // Plaintext NBD instead of a ServerHello.
              p.opt_ack(OPT_STRUCTURED_REPLY);
              p.hangup();
            }),
            -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_connect_socket: TLS handshake failed"));
  EXPECT_TRUE(dead());
}

// ---------------------------------------------------------------------------------------------
// Handshake: option replies

TEST_F(Hostile, OptionReplyTruncatedMidHeader) {
  EXPECT_EQ(connect([](Peer& p) {
              greet_until_structured_reply(p);
              p.send(Bytes().u64(OPT_REPLY_MAGIC).u16(0));  // 10 of 20 bytes
              p.hangup();
            }),
            -1);
  EXPECT_TRUE(last_error_is(ECONNRESET, "nbd_connect_socket: server closed the connection during the handshake"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, OptionReplyTruncatedMidPayload) {
  EXPECT_EQ(connect([](Peer& p) {
              greet_until_structured_reply(p);
              p.opt_reply_header(OPT_STRUCTURED_REPLY, REP_ERR_UNSUP, 100);
              p.send(Bytes().fill(50, 'x'));
              p.hangup();
            }),
            -1);
  EXPECT_TRUE(last_error_is(ECONNRESET, "nbd_connect_socket: server closed the connection during the handshake"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, OptionReplyOversizedLength) {
  EXPECT_EQ(connect([](Peer& p) {
              greet_until_structured_reply(p);
              // One send: the client may hang up as soon as it has the header.
              p.send(Bytes().u64(OPT_REPLY_MAGIC).u32(OPT_STRUCTURED_REPLY).u32(REP_ERR_UNSUP)
                         .u32(0xffffffff).fill(64, 'x'));
            }),
            -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_connect_socket: handshake: option reply is too large"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, OptionReplyForTheWrongOption) {
  EXPECT_EQ(connect([](Peer& p) {
              greet_until_structured_reply(p);
              p.opt_ack(OPT_GO);
            }),
            -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_connect_socket: handshake: option reply is for a different option"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, OptionReplyBadMagic) {
  EXPECT_EQ(connect([](Peer& p) {
              greet_until_structured_reply(p);
              p.send(Bytes().u64(OPT_REPLY_MAGIC + 1).u32(OPT_STRUCTURED_REPLY).u32(REP_ACK).u32(0));
            }),
            -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_connect_socket: handshake: bad option reply magic"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, OptionAckWithPayload) {
  EXPECT_EQ(connect([](Peer& p) {
              greet_until_structured_reply(p);
              p.opt_reply(OPT_STRUCTURED_REPLY, REP_ACK, Bytes().u32(0));
            }),
            -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_connect_socket: handshake: NBD_REP_ACK with a payload"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, OptListServerNameOverrunsItsReply) {
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(connect([](Peer& p) {
              greet_until_structured_reply(p);
              p.opt_ack(OPT_STRUCTURED_REPLY);
              p.expect_option(OPT_LIST);
              p.opt_reply(OPT_LIST, REP_SERVER, Bytes().u32(100).str("short"));
            }),
            0)
      << nbd_get_error();
  ASSERT_EQ(nbd_aio_is_negotiating(h), 1);
  Counter list;
  EXPECT_EQ(nbd_opt_list(h, nbd_test::list_closure(list)), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_opt_list: handshake: NBD_REP_SERVER name overruns its reply"));
  EXPECT_TRUE(dead());
  EXPECT_EQ(list.calls, 0);
  // BUG(report): the option's closures are kept until nbd_close when the connection dies during
  // the option; libnbd 1.14 retires the option then (completion with the error, then frees).
  EXPECT_EQ(list.frees, 1);
  close_handle();  // its closures point at this test's locals
}

TEST_F(Hostile, OptionCompletesWhenTheConnectionDies) {
  // An option in flight when the connection fails completes with an error, as a command does
  // (libnbd 1.14: the completion runs with the errno, then the option's closures are freed).
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(connect([](Peer& p) {
              greet_until_structured_reply(p);
              p.opt_ack(OPT_STRUCTURED_REPLY);
              p.expect_option(OPT_LIST);
              p.opt_reply(OPT_LIST, REP_SERVER, Bytes().u32(3).str("one"));
              p.send(Bytes().u64(OPT_REPLY_MAGIC).u32(OPT_LIST));  // half a header, then gone
              p.hangup();
            }),
            0)
      << nbd_get_error();
  Counter list;
  Completion done;
  ASSERT_EQ(nbd_aio_opt_list(h, nbd_test::list_closure(list), done.closure()), 0) << nbd_get_error();
  EXPECT_TRUE(nbd_test::poll_until(h, [&] { return dead(); }));
  // The hang-up is seen by nbd_poll, or already by the aio call if the bytes came quickly (which
  // returns 0 all the same: the option was queued, and its completion reports the failure).
  EXPECT_TRUE(last_error_is(ECONNRESET, "nbd_poll: server closed the connection during the handshake") ||
              last_error_is(ECONNRESET, "nbd_aio_opt_list: server closed the connection during the handshake"))
      << nbd_get_error();
  EXPECT_EQ(list.calls, 1);
  // BUG(report): the completion never runs, and both closures wait for nbd_close.
  EXPECT_EQ(done.counter.calls, 1);
  EXPECT_EQ(done.error, ECONNRESET);  // the connection's errno, as libnbd (commands get ENOTCONN)
  EXPECT_EQ(list.frees, 1);
  EXPECT_EQ(done.counter.frees, 1);
  close_handle();
  EXPECT_EQ(list.frees, 1);
  EXPECT_EQ(done.counter.frees, 1);
}

}  // namespace
