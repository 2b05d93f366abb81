// tls_test.cpp: TLS through the public C API against nbdkit, qemu-nbd and nbd-server: X.509
// certificates and pre-shared keys over Unix sockets and TCP, every command and parallel load over
// TLS, multi-conn, the concurrent writer, each way of failing (errno, message, dead handle), and
// downgrade attempts by a scripted fake server, none of which may end in plaintext.
#include <libnbd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/api_fixture.hpp"
#include "common/io_helpers.hpp"
#include "common/mixed_load.hpp"
#include "common/servers.hpp"
#include "common/tls_pki.hpp"

namespace {

using nbd_test::ApiTest;
using nbd_test::Handle;
using nbd_test::last_error_is;
using nbd_test::Pki;
using nbd_test::poll_until;
using nbd_test::random_bytes;
using nbd_test::round_trip;
using nbd_test::Server;
using nbd_test::start_nbdkit;
using nbd_test::take;

constexpr uint64_t kMiB = 1024 * 1024;

// RFC 3986 percent-encoding for a URI query value or path (keeps '/').
std::string uri_escape(const std::string& text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : text) {
    const auto byte = static_cast<unsigned char>(ch);
    if (std::isalnum(byte) != 0 || std::strchr("-._~/", ch) != nullptr) {
      out += ch;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 15];
    }
  }
  return out;
}

// The nbds URI of a server: nbds+unix:///EXPORT?socket=S&QUERY, or
// nbds://[USER@]HOST:PORT/EXPORT?QUERY (HOST is localhost unless given: the name the server
// certificate carries).  query holds key=value pairs joined by '&', values already escaped.
std::string tls_uri(const Server& s, const std::string& query, const std::string& user = "",
                    const std::string& host = "localhost", const std::string& export_name = "") {
  const std::string userinfo = user.empty() ? "" : user + "@";
  if (!s.unix_socket().empty()) {
    return "nbds+unix://" + userinfo + "/" + uri_escape(export_name) + "?socket=" +
           uri_escape(s.unix_socket()) + (query.empty() ? "" : "&" + query);
  }
  return "nbds://" + userinfo + host + ":" + s.port() + "/" + uri_escape(export_name) +
         (query.empty() ? "" : "?" + query);
}

// The whole file, or "" when it is missing.
std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string certs_query(const std::string& dir) { return "tls-certificates=" + uri_escape(dir); }
std::string psk_query(const std::string& file) { return "tls-psk-file=" + uri_escape(file); }

// Connects h to s over its transport with the settings already on h (TCP by host name).
int connect_plain_call(nbd_handle* h, const Server& s, const char* host = "localhost") {
  if (!s.unix_socket().empty())
    return nbd_connect_unix(h, s.unix_socket().c_str());
  return nbd_connect_tcp(h, host, s.port().c_str());
}

// After a successful connect: TLS is up, data survives a trip through it, and the handle
// shuts down politely.  qemu-nbd and nbd-server close
// or reset the connection without their own TLS close once ours was sent: that is the normal
// end of the connection, not an error (libnbd treats it so, and Debian's nbdcopy relies on it).
void expect_tls_round_trip(nbd_handle* h, unsigned seed) {
  EXPECT_EQ(nbd_get_tls_negotiated(h), 1) << nbd_get_error();
  round_trip(h, 4096, 64 * 1024, seed);
  round_trip(h, 3 * kMiB + 512, 4096, seed + 1);
  EXPECT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_closed(h), 1) << nbd_connection_state(h);
}

// The connect call failed as expected and left the handle dead, never connected in plaintext.
void expect_refused(nbd_handle* h, int rc, int errnum, const std::string& prefix) {
  EXPECT_EQ(rc, -1) << "connected although it should not have";
  EXPECT_TRUE(last_error_is(errnum, prefix));
  EXPECT_EQ(nbd_aio_is_dead(h), 1);
  EXPECT_EQ(nbd_aio_is_ready(h), 0);
}

// The same for a server that hangs up: the client sees ECONNRESET or, when it was sending at
// that moment, EPIPE; which one is a race.
// The server hung up during the handshake: one errno, whether the client saw a reset, a
// broken pipe or the end of the stream.
void expect_hung_up(nbd_handle* h, int rc, const std::string& prefix) {
  expect_refused(h, rc, ECONNRESET, prefix);
}

// A fresh handle and the test PKI for every test; skipped without certtool/psktool.  The
// handle is closed before the test's server stops, or the server would wait for it to leave.
class TlsTest : public ApiTest {
 protected:
  void TearDown() override {
    ApiTest::TearDown();
    server.reset();
  }

  void SetUp() override {
    ApiTest::SetUp();
    if (!nbd_test::have_pki_tools())
      GTEST_SKIP() << "certtool and psktool (gnutls-bin) not installed";
    pki = nbd_test::test_pki();
    ASSERT_NE(pki, nullptr);
    ASSERT_EQ(nbd_supports_tls(h), 1);
  }

  // Settings for certificates from dir, with TLS required.
  void use_certificates(const std::string& dir) {
    ASSERT_EQ(nbd_set_tls(h, LIBNBD_TLS_REQUIRE), 0) << nbd_get_error();
    ASSERT_EQ(nbd_set_tls_certificates(h, dir.c_str()), 0) << nbd_get_error();
  }

  // Settings for a pre-shared key from file as user, with TLS required.
  void use_psk(const std::string& file, const char* user) {
    ASSERT_EQ(nbd_set_tls(h, LIBNBD_TLS_REQUIRE), 0) << nbd_get_error();
    ASSERT_EQ(nbd_set_tls_psk_file(h, file.c_str()), 0) << nbd_get_error();
    ASSERT_EQ(nbd_set_tls_username(h, user), 0) << nbd_get_error();
  }

  // nbd_connect_uri with local files allowed (tls-certificates=, tls-psk-file=).
  int connect_uri(const std::string& uri) {
    EXPECT_EQ(nbd_set_uri_allow_local_file(h, true), 0) << nbd_get_error();
    return nbd_connect_uri(h, uri.c_str());
  }

  const Pki* pki = nullptr;
  std::unique_ptr<Server> server;  // started by the test (NBD_START_*)
};

// nbdkit's memory plugin behind TLS (options: --tls=..., --tls-certificates=..., etc.).
class TlsNbdkit : public TlsTest {
 protected:
  // nbdkit OPTIONS... memory 64M PARAMS...
  std::unique_ptr<Server> start(std::vector<std::string> options, bool tcp,
                                const std::vector<std::string>& params = {}) {
    options.insert(options.end(), {"memory", "64M"});
    options.insert(options.end(), params.begin(), params.end());
    return start_nbdkit(std::move(options), tcp);
  }
  static std::vector<std::string> certs_from(const std::string& dir) {
    return {"--tls=require", "--tls-certificates=" + dir};
  }
  std::vector<std::string> certs() const { return certs_from(pki->dir); }
  std::vector<std::string> psk() const { return {"--tls=require", "--tls-psk=" + pki->psk_file}; }
};

// Starts the fixture's server, or skips the test without nbdkit.
#define NBD_START_NBDKIT(args, tcp)   \
  NBD_TEST_REQUIRE_PROGRAM("nbdkit"); \
  server = start(args, tcp);          \
  ASSERT_TRUE(server)

// ---- Success with nbdkit ----

// The server's log filter confirms TLS from its side.
TEST_F(TlsNbdkit, CertificatesOverUnix) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  nbd_test::TmpDir logs;
  std::vector<std::string> options = certs();
  options.push_back("--filter=log");
  server = start(options, false, {"logfile=" + logs.path() + "/log"});
  ASSERT_TRUE(server);
  use_certificates(pki->dir);
  EXPECT_EQ(nbd_get_tls(h), LIBNBD_TLS_REQUIRE);
  EXPECT_EQ(nbd_get_tls_verify_peer(h), 1);  // the default
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  expect_tls_round_trip(h, 1);
  EXPECT_EQ(nbd_get_tls(h), LIBNBD_TLS_REQUIRE);
  EXPECT_NE(read_text(logs.path() + "/log").find(" Connect export=\"\" tls=1 "), std::string::npos);
}

TEST_F(TlsNbdkit, CertificatesOverUnixUri) {
  NBD_START_NBDKIT(certs(), false);
  ASSERT_EQ(connect_uri(tls_uri(*server, certs_query(pki->dir))), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_tls(h), LIBNBD_TLS_REQUIRE);  // chosen by the nbds scheme
  EXPECT_EQ(nbd_get_tls_verify_peer(h), 1);
  expect_tls_round_trip(h, 2);
}

TEST_F(TlsNbdkit, CertificatesOverTcpUri) {
  NBD_START_NBDKIT(certs(), true);
  ASSERT_EQ(connect_uri(tls_uri(*server, certs_query(pki->dir))), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_tls(h), LIBNBD_TLS_REQUIRE);
  expect_tls_round_trip(h, 3);
}

// The certificate names 127.0.0.1 as an IP address, which is checked as such.
TEST_F(TlsNbdkit, CertificatesOverTcpByAddress) {
  NBD_START_NBDKIT(certs(), true);
  use_certificates(pki->dir);
  ASSERT_EQ(connect_plain_call(h, *server, "127.0.0.1"), 0) << nbd_get_error();
  expect_tls_round_trip(h, 4);
}

TEST_F(TlsNbdkit, CertificatesOverTcpByName) {
  NBD_START_NBDKIT(certs(), true);
  use_certificates(pki->dir);
  ASSERT_EQ(connect_plain_call(h, *server, "localhost"), 0) << nbd_get_error();
  expect_tls_round_trip(h, 5);
}

// nbdkit --tls-verify-peer refuses clients without a certificate from its CA.
TEST_F(TlsNbdkit, ClientCertificateRequired) {
  std::vector<std::string> args = certs();
  args.push_back("--tls-verify-peer");
  for (const bool tcp : {false, true}) {
    SCOPED_TRACE(tcp ? "tcp" : "unix");
    NBD_START_NBDKIT(args, tcp);
    Handle c;
    ASSERT_EQ(nbd_set_uri_allow_local_file(c, true), 0);
    ASSERT_EQ(nbd_connect_uri(c, tls_uri(*server, certs_query(pki->dir)).c_str()), 0) << nbd_get_error();
    expect_tls_round_trip(c, 6);
  }
}

TEST_F(TlsNbdkit, PskOverUnix) {
  NBD_START_NBDKIT(psk(), false);
  use_psk(pki->psk_file, nbd_test::kPskUser);
  EXPECT_EQ(take(nbd_get_tls_username(h)), nbd_test::kPskUser);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  expect_tls_round_trip(h, 7);
}

TEST_F(TlsNbdkit, PskOverUnixUri) {
  NBD_START_NBDKIT(psk(), false);
  ASSERT_EQ(connect_uri(tls_uri(*server, psk_query(pki->psk_file), nbd_test::kPskUser)), 0)
      << nbd_get_error();
  EXPECT_EQ(nbd_get_tls(h), LIBNBD_TLS_REQUIRE);
  EXPECT_EQ(take(nbd_get_tls_username(h)), nbd_test::kPskUser);  // from the URI's user part
  expect_tls_round_trip(h, 8);
}

TEST_F(TlsNbdkit, PskOverTcpUri) {
  NBD_START_NBDKIT(psk(), true);
  ASSERT_EQ(connect_uri(tls_uri(*server, psk_query(pki->psk_file), nbd_test::kPskUser)), 0)
      << nbd_get_error();
  EXPECT_EQ(take(nbd_get_tls_username(h)), nbd_test::kPskUser);
  expect_tls_round_trip(h, 9);
}

// nbd_get_uri carries everything needed to reach the export again the same way: the nbds
// scheme, the PSK user name, the key or certificate directory (and, for libnbd 1.22's
// readers, a peer check that was turned off).
TEST_F(TlsNbdkit, GetUriConnectsAgain) {
  struct Variant {
    bool psk, tcp;
  };
  for (const Variant v : {Variant{true, false}, Variant{false, true}}) {
    SCOPED_TRACE(v.psk ? "psk over unix" : "certificates over tcp");
    NBD_START_NBDKIT(v.psk ? psk() : certs(), v.tcp);
    Handle c;
    ASSERT_EQ(nbd_set_tls(c, LIBNBD_TLS_REQUIRE), 0);
    if (v.psk) {
      ASSERT_EQ(nbd_set_tls_psk_file(c, pki->psk_file.c_str()), 0);
      ASSERT_EQ(nbd_set_tls_username(c, nbd_test::kPskUser), 0);
      ASSERT_EQ(nbd_set_tls_verify_peer(c, false), 0);  // no certificates to check with PSK
    } else {
      ASSERT_EQ(nbd_set_tls_certificates(c, pki->dir.c_str()), 0);
    }
    ASSERT_EQ(connect_plain_call(c, *server), 0) << nbd_get_error();
    const std::string uri = take(nbd_get_uri(c));
    if (v.psk) {
      EXPECT_EQ(uri, "nbds+unix://alice@/?socket=" + uri_escape(server->unix_socket()) +
                         "&tls-psk-file=" + uri_escape(pki->psk_file) + "&tls-verify-peer=false");
    } else {
      EXPECT_EQ(uri, "nbds://localhost:" + server->port() + "/?tls-certificates=" + uri_escape(pki->dir));
    }
    Handle again;
    ASSERT_EQ(nbd_set_uri_allow_local_file(again, true), 0);
    ASSERT_EQ(nbd_connect_uri(again, uri.c_str()), 0) << uri << ": " << nbd_get_error();
    expect_tls_round_trip(again, 50);
  }
}

TEST_F(TlsNbdkit, PskOverTcp) {
  NBD_START_NBDKIT(psk(), true);
  use_psk(pki->psk_file, nbd_test::kPskUser);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  expect_tls_round_trip(h, 10);
}

// TLS allowed and offered (nbdkit --tls=on): it is used.
TEST_F(TlsNbdkit, AllowedAndOffered) {
  NBD_START_NBDKIT((std::vector<std::string>{"--tls=on", "--tls-certificates=" + pki->dir}), false);
  ASSERT_EQ(nbd_set_tls(h, LIBNBD_TLS_ALLOW), 0);
  ASSERT_EQ(nbd_set_tls_certificates(h, pki->dir.c_str()), 0);
  EXPECT_EQ(nbd_get_tls(h), LIBNBD_TLS_ALLOW);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  expect_tls_round_trip(h, 11);
  EXPECT_EQ(nbd_get_tls(h), LIBNBD_TLS_ALLOW);
}

// In opt mode TLS can be started by hand (libnbd 1.16): the automatic handshake did not ask
// (TLS disabled), nbd_opt_starttls does, and what was agreed in plaintext is negotiated again.
TEST_F(TlsNbdkit, OptStarttlsByHand) {
  NBD_START_NBDKIT((std::vector<std::string>{"--tls=on", "--tls-certificates=" + pki->dir}), false);
  ASSERT_EQ(nbd_set_tls_certificates(h, pki->dir.c_str()), 0);
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_tls_negotiated(h), 0);
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h), 1);
  EXPECT_EQ(nbd_opt_starttls(h), 1) << nbd_get_error();
  EXPECT_EQ(nbd_get_tls_negotiated(h), 1);
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h), 0);  // to be asked for again under TLS
  EXPECT_EQ(nbd_opt_structured_reply(h), 1) << nbd_get_error();
  // A second STARTTLS: nbdkit refuses it, which is an answer, not a failure.
  EXPECT_EQ(nbd_opt_starttls(h), 0) << nbd_get_error();
  ASSERT_EQ(nbd_opt_go(h), 0) << nbd_get_error();
  expect_tls_round_trip(h, 31);
}

TEST_F(TlsNbdkit, AioOptStarttlsCompletesOnce) {
  NBD_START_NBDKIT((std::vector<std::string>{"--tls=on", "--tls-certificates=" + pki->dir}), false);
  ASSERT_EQ(nbd_set_tls_certificates(h, pki->dir.c_str()), 0);
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  struct Done {
    int calls = 0, frees = 0, error = -1;
  } done;
  nbd_completion_callback cb{[](void* ud, int* err) {
                               auto* d = static_cast<Done*>(ud);
                               ++d->calls;
                               d->error = *err;
                               return 1;
                             },
                             &done, [](void* ud) { ++static_cast<Done*>(ud)->frees; }};
  ASSERT_EQ(nbd_aio_opt_starttls(h, cb), 0) << nbd_get_error();
  ASSERT_TRUE(nbd_test::poll_until(h, [&] { return nbd_aio_is_connecting(h) == 0; })) << nbd_get_error();
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.error, 0);
  EXPECT_EQ(done.frees, 1);
  EXPECT_EQ(nbd_get_tls_negotiated(h), 1);
  ASSERT_EQ(nbd_opt_go(h), 0) << nbd_get_error();
  expect_tls_round_trip(h, 32);
}

// TLS allowed, and the server accepts STARTTLS, but the handshake fails: there is no going back
// to plaintext once STARTTLS was accepted.
TEST_F(TlsNbdkit, AllowedButHandshakeFails) {
  NBD_START_NBDKIT((std::vector<std::string>{"--tls=on", "--tls-certificates=" + pki->dir}), false);
  ASSERT_EQ(nbd_set_tls(h, LIBNBD_TLS_ALLOW), 0);
  ASSERT_EQ(nbd_set_tls_certificates(h, pki->other_ca_dir.c_str()), 0);
  const int rc = connect_plain_call(h, *server);
  expect_refused(h, rc, EACCES, "nbd_connect_unix: TLS: the server's certificate was not accepted: ");
}

// TLS allowed against a server without TLS: plaintext, and the handle says so.
TEST_F(TlsNbdkit, AllowedAgainstPlaintextServer) {
  NBD_START_NBDKIT({}, false);
  ASSERT_EQ(nbd_set_tls(h, LIBNBD_TLS_ALLOW), 0);
  ASSERT_EQ(nbd_set_tls_certificates(h, pki->dir.c_str()), 0);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_tls_negotiated(h), 0);
  round_trip(h, 0, 4096, 12);
}

// tls-verify-peer=false in the URI (an nbdpp key; libnbd 1.14 ignores it): no certificate
// directory needed, the server is not checked, and the traffic is still encrypted.
TEST_F(TlsNbdkit, VerifyPeerOffInUri) {
  NBD_START_NBDKIT(certs(), true);
  ASSERT_EQ(nbd_connect_uri(h, tls_uri(*server, "tls-verify-peer=false").c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_tls_verify_peer(h), 0);
  expect_tls_round_trip(h, 13);
}

// ---- Every command, parallel load, multi-conn, the concurrent writer ----

struct Chunks {
  std::vector<char> data;  // assembled from the chunks, by offset
  int calls = 0;
};

TEST_F(TlsNbdkit, EveryCommand) {
  NBD_START_NBDKIT(certs(), false);
  use_certificates(pki->dir);
  ASSERT_EQ(nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 0) << nbd_get_error();
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  ASSERT_EQ(nbd_get_tls_negotiated(h), 1);
  ASSERT_EQ(nbd_get_structured_replies_negotiated(h), 1);
  ASSERT_EQ(nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION), 1);
  ASSERT_EQ(nbd_can_fua(h), 1);
  ASSERT_EQ(nbd_can_flush(h), 1);
  ASSERT_EQ(nbd_can_trim(h), 1);
  ASSERT_EQ(nbd_can_zero(h), 1);
  ASSERT_EQ(nbd_can_cache(h), 1);

  const size_t n = 256 * 1024;
  const auto data = random_bytes(n, 14);
  ASSERT_EQ(nbd_pwrite(h, data.data(), n, 0, LIBNBD_CMD_FLAG_FUA), 0) << nbd_get_error();
  ASSERT_EQ(nbd_flush(h, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_cache(h, n, 0, 0), 0) << nbd_get_error();
  std::vector<char> back(n);
  ASSERT_EQ(nbd_pread(h, back.data(), n, 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, data);

  Chunks chunks;
  chunks.data.resize(n);
  nbd_chunk_callback chunk_cb{[](void* ud, const void* sub, size_t count, uint64_t off, unsigned status,
                                 int*) {
                                auto* c = static_cast<Chunks*>(ud);
                                ++c->calls;
                                if (status == LIBNBD_READ_DATA && off + count <= c->data.size())
                                  std::memcpy(c->data.data() + off, sub, count);
                                return 0;
                              },
                              &chunks, nullptr};
  ASSERT_EQ(nbd_pread_structured(h, back.data(), n, 0, chunk_cb, 0), 0) << nbd_get_error();
  EXPECT_GE(chunks.calls, 1);
  EXPECT_EQ(chunks.data, data);
  EXPECT_EQ(back, data);

  // Trim and zero the second half; it then reads as zeroes, the first half unchanged.
  ASSERT_EQ(nbd_trim(h, 64 * 1024, n / 2, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_zero(h, n / 2 - 64 * 1024, n / 2 + 64 * 1024, LIBNBD_CMD_FLAG_FUA), 0) << nbd_get_error();
  ASSERT_EQ(nbd_pread(h, back.data(), n, 0, 0), 0) << nbd_get_error();
  EXPECT_TRUE(std::equal(data.begin(), data.begin() + n / 2, back.begin()));
  EXPECT_TRUE(std::all_of(back.begin() + n / 2, back.end(), [](char c) { return c == 0; }));

  struct Extents {
    std::vector<std::pair<uint32_t, uint32_t>> entries;
    std::string context;
  } extents;
  nbd_extent_callback extent_cb{[](void* ud, const char* ctx, uint64_t, uint32_t* e, size_t count, int*) {
                                  auto* x = static_cast<Extents*>(ud);
                                  x->context = ctx;
                                  for (size_t i = 0; i + 1 < count; i += 2)
                                    x->entries.emplace_back(e[i], e[i + 1]);
                                  return 0;
                                },
                                &extents, nullptr};
  ASSERT_EQ(nbd_block_status(h, 4 * kMiB, 0, extent_cb, 0), 0) << nbd_get_error();
  EXPECT_EQ(extents.context, LIBNBD_CONTEXT_BASE_ALLOCATION);
  ASSERT_FALSE(extents.entries.empty());
  EXPECT_EQ(extents.entries.front().second & LIBNBD_STATE_HOLE, 0u);  // the data at offset 0
  EXPECT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
}

// n aio writes of 4 KiB at offsets base + i*4 KiB, all queued before any completes, then n aio
// reads of the same blocks, each checked.
void aio_burst(nbd_handle* h, uint64_t base, int n, unsigned seed) {
  struct Done {
    int count = 0;
    int errors = 0;
  } done;
  nbd_completion_callback cb{[](void* ud, int* error) {
                               auto* d = static_cast<Done*>(ud);
                               ++d->count;
                               d->errors += *error != 0 ? 1 : 0;
                               return 1;
                             },
                             &done, nullptr};
  std::vector<std::vector<char>> blocks, reads(static_cast<size_t>(n), std::vector<char>(4096));
  for (int i = 0; i < n; ++i) {
    blocks.push_back(random_bytes(4096, seed + static_cast<unsigned>(i)));
    const uint64_t off = base + 4096 * static_cast<uint64_t>(i);
    ASSERT_NE(nbd_aio_pwrite(h, blocks.back().data(), 4096, off, cb, 0), -1) << nbd_get_error();
  }
  EXPECT_GE(nbd_aio_in_flight(h) + done.count, n);
  ASSERT_TRUE(poll_until(h, [&] { return done.count == n; })) << nbd_get_error();
  for (int i = 0; i < n; ++i) {
    ASSERT_NE(nbd_aio_pread(h, reads[static_cast<size_t>(i)].data(), 4096,
                            base + 4096 * static_cast<uint64_t>(i), cb, 0),
              -1)
        << nbd_get_error();
  }
  ASSERT_TRUE(poll_until(h, [&] { return done.count == 2 * n; })) << nbd_get_error();
  EXPECT_EQ(done.errors, 0);
  EXPECT_EQ(reads, blocks);
}

// 4 threads share one TLS handle while another TLS handle keeps 256 aio commands in flight
// (drive_mixed_load): every byte checked on both.
TEST_F(TlsNbdkit, ParallelLoad) {
  NBD_START_NBDKIT(certs(), false);
  use_certificates(pki->dir);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  // drive_mixed_load connects by URI on a handle of its own, with no way to allow local files
  // (tls-certificates=), so it skips the certificate check instead; the traffic is still TLS.
  std::string load_error = "not run";
  const std::string load_uri = tls_uri(*server, "tls-verify-peer=false");
  std::thread load([&] { load_error = nbd_test::drive_mixed_load(load_uri, 32 * kMiB, 15); });
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (unsigned t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const uint64_t base = t * 4 * kMiB;
      for (unsigned i = 0; i < 40; ++i) {
        const size_t n = 4096 * (1 + (i % 16));
        const auto data = random_bytes(n, 100 * t + i);
        std::vector<char> back(n);
        const uint64_t off = base + (i % 8) * 256 * 1024;
        if (nbd_pwrite(h, data.data(), n, off, 0) != 0 || nbd_pread(h, back.data(), n, off, 0) != 0 ||
            back != data)
          ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  load.join();
  EXPECT_EQ(failures.load(), 0) << nbd_get_error();
  EXPECT_EQ(load_error, "");
  EXPECT_EQ(nbd_get_tls_negotiated(h), 1);
}

TEST_F(TlsNbdkit, AioBurst) {
  NBD_START_NBDKIT(certs(), true);
  use_certificates(pki->dir);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  ASSERT_EQ(nbd_get_tls_negotiated(h), 1);
  aio_burst(h, 8 * kMiB, 200, 16);
}

// Four TLS connections at once to a multi-conn server: each sees what the others wrote.
TEST_F(TlsNbdkit, MultiConn) {
  NBD_START_NBDKIT(certs(), true);
  std::vector<std::unique_ptr<Handle>> hs;
  for (int i = 0; i < 4; ++i) {
    hs.push_back(std::make_unique<Handle>());
    nbd_handle* c = *hs.back();
    ASSERT_EQ(nbd_set_uri_allow_local_file(c, true), 0);
    ASSERT_EQ(nbd_connect_uri(c, tls_uri(*server, certs_query(pki->dir)).c_str()), 0) << nbd_get_error();
    ASSERT_EQ(nbd_get_tls_negotiated(c), 1);
    ASSERT_EQ(nbd_can_multi_conn(c), 1);
  }
  std::vector<std::vector<char>> data;
  for (size_t i = 0; i < hs.size(); ++i) {
    data.push_back(random_bytes(64 * 1024, 17 + static_cast<unsigned>(i)));
    ASSERT_EQ(nbd_pwrite(*hs[i], data[i].data(), data[i].size(), i * kMiB, 0), 0) << nbd_get_error();
  }
  for (auto& c : hs) ASSERT_EQ(nbd_flush(*c, 0), 0) << nbd_get_error();
  for (auto& c : hs) {
    for (size_t i = 0; i < data.size(); ++i) {
      std::vector<char> back(data[i].size());
      ASSERT_EQ(nbd_pread(*c, back.data(), back.size(), i * kMiB, 0), 0) << nbd_get_error();
      EXPECT_EQ(back, data[i]);
    }
  }
}

// The ready-made concurrent writer started before connecting carries the TLS handshake too.
TEST_F(TlsNbdkit, ConcurrentWriterBeforeConnect) {
  for (const bool tcp : {false, true}) {
    SCOPED_TRACE(tcp ? "tcp" : "unix");
    NBD_START_NBDKIT(certs(), tcp);
    Handle c;
    ASSERT_EQ(nbd_start_concurrent_writer(c), 0) << nbd_get_error();
    ASSERT_EQ(nbd_set_uri_allow_local_file(c, true), 0);
    ASSERT_EQ(nbd_connect_uri(c, tls_uri(*server, certs_query(pki->dir)).c_str()), 0) << nbd_get_error();
    aio_burst(c, 8 * kMiB, 200, 19);
    expect_tls_round_trip(c, 18);
  }
}

TEST_F(TlsNbdkit, ConcurrentWriterBeforeConnectPsk) {
  NBD_START_NBDKIT(psk(), false);
  ASSERT_EQ(nbd_start_concurrent_writer(h), 0) << nbd_get_error();
  use_psk(pki->psk_file, nbd_test::kPskUser);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  aio_burst(h, 8 * kMiB, 200, 21);
  expect_tls_round_trip(h, 20);
}

TEST_F(TlsNbdkit, ConcurrentWriterAfterConnect) {
  NBD_START_NBDKIT(certs(), false);
  use_certificates(pki->dir);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  round_trip(h, 0, 4096, 22);
  ASSERT_EQ(nbd_start_concurrent_writer(h), 0) << nbd_get_error();
  aio_burst(h, 8 * kMiB, 200, 24);
  expect_tls_round_trip(h, 23);
}

TEST_F(TlsNbdkit, ConcurrentWriterMixedLoad) {
  NBD_START_NBDKIT(certs(), false);
  const std::string err = nbd_test::drive_mixed_load(
      tls_uri(*server, "tls-verify-peer=false"), 0, 25, [](nbd_handle* c) -> std::string {
        if (nbd_get_tls_negotiated(c) != 1)
          return "TLS not negotiated";
        if (nbd_start_concurrent_writer(c) != 0)
          return nbd_get_error();
        return "";
      });
  EXPECT_EQ(err, "");
}

// ---- Failures against nbdkit ----
// libnbd 1.14 reports every GnuTLS failure with errno 0, so the errnos below are nbdpp's own,
// except where libnbd has one (named in each test).

// The server's certificate is from a CA the client does not trust.
TEST_F(TlsNbdkit, WrongCaOverTcp) {
  NBD_START_NBDKIT(certs(), true);
  const int rc = connect_uri(tls_uri(*server, certs_query(pki->other_ca_dir)));
  expect_refused(h, rc, EACCES, "nbd_connect_uri: TLS: the server's certificate was not accepted: ");
}

// Unlike libnbd 1.14, which accepts any certificate on a Unix socket, the chain is checked.
TEST_F(TlsNbdkit, WrongCaOverUnix) {
  NBD_START_NBDKIT(certs(), false);
  const int rc = connect_uri(tls_uri(*server, certs_query(pki->other_ca_dir)));
  expect_refused(h, rc, EACCES, "nbd_connect_uri: TLS: the server's certificate was not accepted: ");
}

// The same server and client settings with verification off: the failure above was the check.
TEST_F(TlsNbdkit, WrongCaAcceptedWithVerifyPeerOff) {
  NBD_START_NBDKIT(certs(), false);
  use_certificates(pki->other_ca_dir);
  ASSERT_EQ(nbd_set_tls_verify_peer(h, false), 0);
  EXPECT_EQ(nbd_get_tls_verify_peer(h), 0);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  expect_tls_round_trip(h, 26);
}

TEST_F(TlsNbdkit, ExpiredCertificate) {
  for (const bool tcp : {true, false}) {
    SCOPED_TRACE(tcp ? "tcp" : "unix");
    NBD_START_NBDKIT(certs_from(pki->expired_dir), tcp);
    Handle c;
    ASSERT_EQ(nbd_set_uri_allow_local_file(c, true), 0);
    const int rc = nbd_connect_uri(c, tls_uri(*server, certs_query(pki->dir)).c_str());
    expect_refused(c, rc, EACCES, "nbd_connect_uri: TLS: the server's certificate was not accepted: ");
    EXPECT_NE(std::string(nbd_get_error()).find("expired"), std::string::npos) << nbd_get_error();
  }
}

// The certificate names wrong.example: refused over TCP by name and by address, accepted on a
// Unix socket (no host name to compare) and over TCP with verification off.
TEST_F(TlsNbdkit, WrongHostName) {
  NBD_START_NBDKIT(certs_from(pki->wrong_host_dir), true);
  for (const char* host : {"localhost", "127.0.0.1"}) {
    SCOPED_TRACE(host);
    Handle c;
    ASSERT_EQ(nbd_set_uri_allow_local_file(c, true), 0);
    int rc = nbd_connect_uri(c, tls_uri(*server, certs_query(pki->dir), "", host).c_str());
    expect_refused(c, rc, EACCES, "nbd_connect_uri: TLS: the server's certificate was not accepted: ");
    Handle d;
    ASSERT_EQ(nbd_set_tls(d, LIBNBD_TLS_REQUIRE), 0);
    ASSERT_EQ(nbd_set_tls_certificates(d, pki->dir.c_str()), 0);
    rc = nbd_connect_tcp(d, host, server->port().c_str());
    expect_refused(d, rc, EACCES, "nbd_connect_tcp: TLS: the server's certificate was not accepted: ");
  }
  use_certificates(pki->dir);
  ASSERT_EQ(nbd_set_tls_verify_peer(h, false), 0);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  expect_tls_round_trip(h, 27);
}

TEST_F(TlsNbdkit, WrongHostNameAcceptedOverUnix) {
  NBD_START_NBDKIT(certs_from(pki->wrong_host_dir), false);
  use_certificates(pki->dir);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  expect_tls_round_trip(h, 28);
}

// ---- nbd_set_tls_hostname (libnbd 1.22) ----

// The certificate names wrong.example only: connecting to 127.0.0.1 is refused until the name
// the certificate must carry is set, with the call or with tls-hostname= in the URI.
TEST_F(TlsNbdkit, TlsHostnameIsCheckedInsteadOfTheAddress) {
  NBD_START_NBDKIT(certs_from(pki->wrong_host_dir), true);
  {
    Handle c;
    ASSERT_EQ(nbd_set_tls(c, LIBNBD_TLS_REQUIRE), 0);
    ASSERT_EQ(nbd_set_tls_certificates(c, pki->dir.c_str()), 0);
    const int rc = nbd_connect_tcp(c, "127.0.0.1", server->port().c_str());
    expect_refused(c, rc, EACCES, "nbd_connect_tcp: TLS: the server's certificate was not accepted: ");
  }
  use_certificates(pki->dir);
  ASSERT_EQ(nbd_set_tls_hostname(h, "wrong.example"), 0) << nbd_get_error();
  EXPECT_EQ(take(nbd_get_tls_hostname(h)), "wrong.example");
  ASSERT_EQ(nbd_connect_tcp(h, "127.0.0.1", server->port().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(take(nbd_get_tls_hostname(h)), "wrong.example");
  // The URI of the connection carries the name, so it connects the same way again.
  EXPECT_EQ(take(nbd_get_uri(h)), "nbds://127.0.0.1:" + server->port() + "/?tls-certificates=" +
                                      uri_escape(pki->dir) + "&tls-hostname=wrong.example");
  expect_tls_round_trip(h, 61);
}

TEST_F(TlsNbdkit, TlsHostnameInUri) {
  NBD_START_NBDKIT(certs_from(pki->wrong_host_dir), true);
  const std::string uri = tls_uri(*server, certs_query(pki->dir) + "&tls-hostname=wrong.example", "", "127.0.0.1");
  ASSERT_EQ(connect_uri(uri), 0) << nbd_get_error();
  EXPECT_EQ(take(nbd_get_tls_hostname(h)), "wrong.example");
  EXPECT_EQ(take(nbd_get_uri(h)), uri);
  expect_tls_round_trip(h, 62);
}

// The name set wins over the host connected to, even where the host would have matched.
TEST_F(TlsNbdkit, TlsHostnameOverridesAMatchingHost) {
  NBD_START_NBDKIT(certs(), true);
  use_certificates(pki->dir);
  ASSERT_EQ(nbd_set_tls_hostname(h, "wrong.example"), 0) << nbd_get_error();
  const int rc = nbd_connect_tcp(h, "localhost", server->port().c_str());
  expect_refused(h, rc, EACCES, "nbd_connect_tcp: TLS: the server's certificate was not accepted: ");
}

// On a Unix socket there is no host to check, unless a name is set: then it is checked there too.
TEST_F(TlsNbdkit, TlsHostnameIsCheckedOverUnix) {
  NBD_START_NBDKIT(certs(), false);  // the certificate names localhost
  {
    Handle c;
    ASSERT_EQ(nbd_set_tls(c, LIBNBD_TLS_REQUIRE), 0);
    ASSERT_EQ(nbd_set_tls_certificates(c, pki->dir.c_str()), 0);
    ASSERT_EQ(nbd_set_tls_hostname(c, "wrong.example"), 0);
    const int rc = nbd_connect_unix(c, server->unix_socket().c_str());
    expect_refused(c, rc, EACCES, "nbd_connect_unix: TLS: the server's certificate was not accepted: ");
  }
  use_certificates(pki->dir);
  ASSERT_EQ(nbd_set_tls_hostname(h, "localhost"), 0) << nbd_get_error();
  ASSERT_EQ(nbd_connect_unix(h, server->unix_socket().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(take(nbd_get_tls_hostname(h)), "localhost");
  expect_tls_round_trip(h, 63);
}

// nbd_get_tls_hostname with none set, as libnbd answers: "" before connecting and on a Unix
// socket (no host), the host name given to nbd_connect_tcp or in an nbds:// URI; never an error.
TEST_F(TlsNbdkit, GetTlsHostnameWithoutOneSet) {
  EXPECT_EQ(take(nbd_get_tls_hostname(h)), "");
  NBD_START_NBDKIT(certs(), true);
  use_certificates(pki->dir);
  ASSERT_EQ(nbd_connect_tcp(h, "localhost", server->port().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(take(nbd_get_tls_hostname(h)), "localhost");
  expect_tls_round_trip(h, 64);
  {
    Handle c;
    ASSERT_EQ(nbd_set_uri_allow_local_file(c, true), 0);
    ASSERT_EQ(nbd_connect_uri(c, tls_uri(*server, certs_query(pki->dir)).c_str()), 0) << nbd_get_error();
    EXPECT_EQ(take(nbd_get_tls_hostname(c)), "localhost");
    // Setting is for the created state only, as every TLS setting.
    EXPECT_EQ(nbd_set_tls_hostname(c, "other.example"), -1);
    EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_tls_hostname: invalid state"));
    EXPECT_EQ(take(nbd_get_tls_hostname(c)), "localhost");
  }
  auto unix_server = start(certs(), false);
  ASSERT_TRUE(unix_server);
  Handle u;
  ASSERT_EQ(nbd_set_tls(u, LIBNBD_TLS_REQUIRE), 0);
  ASSERT_EQ(nbd_set_tls_certificates(u, pki->dir.c_str()), 0);
  ASSERT_EQ(nbd_connect_unix(u, unix_server->unix_socket().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(take(nbd_get_tls_hostname(u)), "");
  EXPECT_EQ(nbd_shutdown(u, 0), 0) << nbd_get_error();
}

TEST_F(TlsNbdkit, WrongPsk) {
  for (const bool tcp : {false, true}) {
    SCOPED_TRACE(tcp ? "tcp" : "unix");
    NBD_START_NBDKIT(psk(), tcp);
    Handle c;
    ASSERT_EQ(nbd_set_uri_allow_local_file(c, true), 0);
    const int rc =
        nbd_connect_uri(c, tls_uri(*server, psk_query(pki->wrong_psk_file), nbd_test::kPskUser).c_str());
    // nbdkit hangs up on a bad key; GnuTLS then says "The TLS connection was non-properly
    // terminated."
    expect_refused(c, rc, ECONNREFUSED, "nbd_connect_uri: TLS handshake failed: ");
  }
}

// The user is not in the client's own key file: found out before anything is sent.  libnbd:
// EINVAL, "FILE: username bob was not found in PSK file".
TEST_F(TlsNbdkit, UnknownPskUserInClientFile) {
  NBD_START_NBDKIT(psk(), false);
  use_psk(pki->psk_file, nbd_test::kUnknownPskUser);
  const int rc = connect_plain_call(h, *server);
  expect_refused(h, rc, EINVAL, "nbd_connect_unix: TLS: username bob was not found in the PSK file ");
}

// The user has a key of its own, but the server does not know the user.
TEST_F(TlsNbdkit, UnknownPskUserOnServer) {
  NBD_START_NBDKIT(psk(), false);
  const int rc = connect_uri(
      tls_uri(*server, psk_query(pki->unknown_user_psk_file), nbd_test::kUnknownPskUser));
  expect_refused(h, rc, ECONNREFUSED, "nbd_connect_uri: TLS handshake failed: ");  // GnuTLS's reason follows
}

// nbdkit --tls-verify-peer and a client without a certificate, or with one from another CA.
// With TLS 1.3 the client finishes its half of the handshake before the server has checked the
// client certificate, so the refusal arrives as the server hanging up on the next option.
TEST_F(TlsNbdkit, ClientCertificateMissing) {
  std::vector<std::string> args = certs();
  args.push_back("--tls-verify-peer");
  for (const bool tcp : {false, true}) {
    for (const std::string* dir : {&pki->no_client_cert_dir, &pki->foreign_client_dir}) {
      SCOPED_TRACE(std::string(tcp ? "tcp " : "unix ") + *dir);
      NBD_START_NBDKIT(args, tcp);
      Handle c;
      ASSERT_EQ(nbd_set_uri_allow_local_file(c, true), 0);
      const int rc = nbd_connect_uri(c, tls_uri(*server, certs_query(*dir)).c_str());
      // TLS 1.3 lets the client finish its side first; the server then hangs up.  libnbd:
      // "gnutls_record_recv: Error in the pull function." (errno 0).
      expect_hung_up(c, rc, "nbd_connect_uri: handshake: the server closed the connection after TLS");
    }
  }
}

// A server without TLS while the client requires it: refused, never plaintext.  libnbd: ENOTSUP
// "handshake: server refused TLS, but handle TLS setting is 'require' (2)".
// The server's log filter shows the client arriving (Preconnect) but never opening the export
// (Connect), which nbdkit logs when the handshake completes.
TEST_F(TlsNbdkit, PlaintextServerWhileRequired) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  for (const bool tcp : {false, true}) {
    SCOPED_TRACE(tcp ? "tcp" : "unix");
    nbd_test::TmpDir logs;
    server = start({"--filter=log"}, tcp, {"logfile=" + logs.path() + "/log"});
    ASSERT_TRUE(server);
    {
      Handle c;
      ASSERT_EQ(nbd_set_uri_allow_local_file(c, true), 0);
      const int rc = nbd_connect_uri(c, tls_uri(*server, certs_query(pki->dir)).c_str());
      expect_refused(c, rc, ENOTSUP,
                     "nbd_connect_uri: handshake: TLS is required but the server refused NBD_OPT_STARTTLS");
    }
    server.reset();  // nbdkit has written everything then
    const std::string log = read_text(logs.path() + "/log");
    EXPECT_NE(log.find(" Preconnect "), std::string::npos) << log;
    EXPECT_EQ(log.find(" Connect "), std::string::npos) << log;
  }
}

// libnbd: ENOTSUP "handshake: server is oldstyle, but handle TLS setting is 'require' (2)".
TEST_F(TlsNbdkit, OldstyleServerWhileRequired) {
  NBD_START_NBDKIT({"--oldstyle"}, false);
  use_certificates(pki->dir);
  const int rc = connect_plain_call(h, *server);
  expect_refused(h, rc, ENOTSUP,
                 "nbd_connect_unix: handshake: server uses the oldstyle protocol, so TLS cannot be used");
}

// The other way round: the server insists on TLS, the client has it disabled.  libnbd: ENOTSUP
// "handshake: server requires TLS encryption first".
TEST_F(TlsNbdkit, TlsServerWhileDisabled) {
  NBD_START_NBDKIT(certs(), false);
  const int rc = nbd_connect_unix(h, server->unix_socket().c_str());
  expect_refused(h, rc, ENOTSUP, "nbd_connect_unix: handshake: the server requires TLS first");
}

// ---- qemu-nbd ----

class TlsQemuNbd : public TlsTest {
 protected:
  // qemu-nbd serving a 64 MiB raw image with the given tls-creds object.
  std::unique_ptr<Server> start(const std::string& creds, bool tcp) {
    std::ofstream(image_.path() + "/disk.img").close();
    std::filesystem::resize_file(image_.path() + "/disk.img", 64 * kMiB);
    return nbd_test::start_qemu_nbd(image_.path() + "/disk.img", "raw",
                                    {"--object", creds, "--tls-creds", "tls0"}, tcp);
  }
  std::string x509(bool verify_peer = false) const {
    return "tls-creds-x509,id=tls0,dir=" + pki->dir + ",endpoint=server,verify-peer=" +
           (verify_peer ? "on" : "off");
  }
  std::string psk() const { return "tls-creds-psk,id=tls0,dir=" + pki->psk_dir + ",endpoint=server"; }

  nbd_test::TmpDir image_;
};

#define NBD_START_QEMU_NBD(creds, tcp)  \
  NBD_TEST_REQUIRE_PROGRAM("qemu-nbd"); \
  server = start(creds, tcp);           \
  ASSERT_TRUE(server)

TEST_F(TlsQemuNbd, CertificatesOverUnix) {
  NBD_START_QEMU_NBD(x509(), false);
  ASSERT_EQ(connect_uri(tls_uri(*server, certs_query(pki->dir))), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_tls(h), LIBNBD_TLS_REQUIRE);
  EXPECT_EQ(nbd_get_tls_verify_peer(h), 1);
  expect_tls_round_trip(h, 30);
}

TEST_F(TlsQemuNbd, CertificatesOverTcp) {
  NBD_START_QEMU_NBD(x509(), true);
  use_certificates(pki->dir);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  expect_tls_round_trip(h, 31);
}

TEST_F(TlsQemuNbd, ClientCertificateRequired) {
  NBD_START_QEMU_NBD(x509(true), false);
  use_certificates(pki->dir);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  expect_tls_round_trip(h, 32);
}

TEST_F(TlsQemuNbd, PskOverUnix) {
  NBD_START_QEMU_NBD(psk(), false);
  use_psk(pki->psk_file, nbd_test::kPskUser);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  EXPECT_EQ(take(nbd_get_tls_username(h)), nbd_test::kPskUser);
  expect_tls_round_trip(h, 33);
}

TEST_F(TlsQemuNbd, PskOverTcpUri) {
  NBD_START_QEMU_NBD(psk(), true);
  ASSERT_EQ(connect_uri(tls_uri(*server, psk_query(pki->psk_file), nbd_test::kPskUser)), 0)
      << nbd_get_error();
  EXPECT_EQ(take(nbd_get_tls_username(h)), nbd_test::kPskUser);
  expect_tls_round_trip(h, 34);
}

TEST_F(TlsQemuNbd, WrongCaOverUnix) {
  NBD_START_QEMU_NBD(x509(), false);
  const int rc = connect_uri(tls_uri(*server, certs_query(pki->other_ca_dir)));
  expect_refused(h, rc, EACCES, "nbd_connect_uri: TLS: the server's certificate was not accepted: ");
}

TEST_F(TlsQemuNbd, WrongPsk) {
  NBD_START_QEMU_NBD(psk(), false);
  use_psk(pki->wrong_psk_file, nbd_test::kPskUser);
  const int rc = connect_plain_call(h, *server);
  expect_refused(h, rc, ECONNREFUSED, "nbd_connect_unix: TLS handshake failed: ");  // GnuTLS's reason follows
}

// ---- nbd-server (TLS with a client certificate, which it requires once cacertfile is set) ----

class TlsNbdServer : public TlsTest {
 protected:
  std::unique_ptr<Server> start(bool unix_socket) {
    const std::string image = image_.path() + "/disk.img";
    std::ofstream(image).close();
    std::filesystem::resize_file(image, 64 * kMiB);
    return nbd_test::start_nbd_server({{"disk1", image}}, unix_socket,
                                      {"certfile = " + pki->dir + "/server-cert.pem",
                                       "keyfile = " + pki->dir + "/server-key.pem",
                                       "cacertfile = " + pki->dir + "/ca-cert.pem", "force_tls = true"});
  }
  nbd_test::TmpDir image_;
};

#define NBD_START_NBD_SERVER(unix_socket) \
  NBD_TEST_REQUIRE_PROGRAM("nbd-server");  \
  server = start(unix_socket);             \
  ASSERT_TRUE(server)

TEST_F(TlsNbdServer, ClientCertificateOverTcp) {
  NBD_START_NBD_SERVER(false);
  ASSERT_EQ(connect_uri(tls_uri(*server, certs_query(pki->dir), "", "localhost", "disk1")), 0)
      << nbd_get_error();
  EXPECT_EQ(nbd_get_tls(h), LIBNBD_TLS_REQUIRE);
  expect_tls_round_trip(h, 40);
}

TEST_F(TlsNbdServer, ClientCertificateOverUnix) {
  NBD_START_NBD_SERVER(true);
  ASSERT_EQ(nbd_set_export_name(h, "disk1"), 0);
  use_certificates(pki->dir);
  ASSERT_EQ(connect_plain_call(h, *server), 0) << nbd_get_error();
  expect_tls_round_trip(h, 41);
}

TEST_F(TlsNbdServer, ClientCertificateMissing) {
  NBD_START_NBD_SERVER(false);
  const int rc =
      connect_uri(tls_uri(*server, certs_query(pki->no_client_cert_dir), "", "localhost", "disk1"));
  // libnbd says "recv: server disconnected unexpectedly".
  expect_hung_up(h, rc, "nbd_connect_uri: ");
}

TEST_F(TlsNbdServer, PlaintextClientRefused) {
  NBD_START_NBD_SERVER(false);
  const int rc = nbd_connect_uri(h, server->uri().c_str());
  expect_refused(h, rc, ENOTSUP, "nbd_connect_uri: handshake: the server requires TLS first");
}

// ---- Downgrade attempts by a scripted server ----

// Protocol constants (proto.md "Newstyle negotiation", "Option types", "Option reply types").
constexpr uint64_t kNbdMagic = 0x4e42444d41474943;  // "NBDMAGIC"
constexpr uint64_t kIHaveOpt = 0x49484156454f5054;  // "IHAVEOPT"
constexpr uint64_t kOptReplyMagic = 0x3e889045565a9;
constexpr uint16_t kFlagFixedNewstyle = 1;
constexpr uint16_t kFlagNoZeroes = 2;
constexpr uint32_t kOptAbort = 2;
constexpr uint32_t kOptStartTls = 5;
constexpr uint32_t kOptStructuredReply = 8;
constexpr uint32_t kRepAck = 1;
constexpr uint32_t kRepErrUnsup = 0x80000001;
constexpr uint32_t kRepErrPolicy = 0x80000002;
constexpr uint32_t kRepErrInvalid = 0x80000003;

std::string be(uint64_t v, int bytes) {
  std::string out;
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

uint64_t from_be(const std::string& s, size_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(s[pos + static_cast<size_t>(i)]);
  return v;
}

std::string option_reply(uint32_t option, uint32_t type, const std::string& data = "") {
  return be(kOptReplyMagic, 8) + be(option, 4) + be(type, 4) + be(data.size(), 4) + data;
}

// A server on one end of a socketpair, run by a thread of the test: the script plays the server's
// part of the handshake, then the thread reads whatever else the client sends until it hangs up.
// The client's end goes to nbd_connect_socket, which owns it from then on.
class FakeServer {
 public:
  using Script = std::function<void(FakeServer&)>;

  explicit FakeServer(Script script) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      ADD_FAILURE() << "socketpair: " << std::strerror(errno);
      return;
    }
    client_fd_ = fds[0];
    fd_ = fds[1];
    thread_ = std::thread([this, script = std::move(script)] {
      script(*this);
      std::string rest;
      while (recv_exact(1, &rest)) {
      }
    });
  }
  // If the test ends early, while the client still holds its end, shutting ours down wakes the
  // thread.
  ~FakeServer() {
    if (fd_ >= 0)
      ::shutdown(fd_, SHUT_RDWR);
    join();
    if (fd_ >= 0)
      ::close(fd_);
    if (client_fd_ >= 0)
      ::close(client_fd_);
  }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  int take_client_fd() { return std::exchange(client_fd_, -1); }

  // Ends the conversation from the server's side (the client sees the connection close).
  void hang_up() { ::shutdown(fd_, SHUT_RDWR); }

  // Waits for the thread, which ends when the client has closed its end (nbd_close).
  void join() {
    if (thread_.joinable())
      thread_.join();
  }

  // Everything the client sent, in order (after join()).
  const std::string& received() const { return received_; }

  // The options the client sent in plaintext: those after the 4 bytes of client flags, up to
  // the first bytes that are not an option header (the TLS ClientHello, say).
  std::vector<uint32_t> plaintext_options() const {
    std::vector<uint32_t> options;
    size_t pos = 4;
    while (pos + 16 <= received_.size() && from_be(received_, pos, 8) == kIHaveOpt) {
      options.push_back(static_cast<uint32_t>(from_be(received_, pos + 8, 4)));
      pos += 16 + from_be(received_, pos + 12, 4);
    }
    return options;
  }

  // For scripts.
  bool send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  void send_greeting(uint16_t flags) { send(be(kNbdMagic, 8) + be(kIHaveOpt, 8) + be(flags, 2)); }
  bool recv_exact(size_t n, std::string* out) {
    std::string buf(n, '\0');
    size_t got = 0;
    while (got < n) {
      const ssize_t r = ::recv(fd_, buf.data() + got, n - got, 0);
      if (r <= 0 && !(r < 0 && errno == EINTR))
        return false;
      if (r > 0)
        got += static_cast<size_t>(r);
    }
    received_ += buf;
    *out = std::move(buf);
    return true;
  }
  // The client's next option: its code, or -1 at EOF or when it is not an option.
  int64_t recv_option() {
    std::string header, data;
    if (!recv_exact(16, &header))
      return -1;
    if (from_be(header, 0, 8) != kIHaveOpt)
      return -1;
    if (!recv_exact(from_be(header, 12, 4), &data))
      return -1;
    return static_cast<int64_t>(from_be(header, 8, 4));
  }
  bool recv_client_flags() {
    std::string flags;
    return recv_exact(4, &flags);
  }

 private:
  int fd_ = -1;
  int client_fd_ = -1;
  std::string received_;
  std::thread thread_;
};

class TlsDowngrade : public TlsTest {
 protected:
  // Connects h to fake with TLS required and good certificates; nbd_connect_socket's result.
  int connect_to(FakeServer& fake) {
    use_certificates(pki->dir);
    return nbd_connect_socket(h, fake.take_client_fd());
  }
  // Closes h, which ends fake's thread; fake.received() is complete then.
  void finish(FakeServer& fake) {
    close_handle();
    fake.join();
  }
};

// Sent in plaintext after the server's answer to STARTTLS: nothing but perhaps NBD_OPT_ABORT.
void expect_nothing_after_starttls(const FakeServer& fake) {
  const std::vector<uint32_t> options = fake.plaintext_options();
  ASSERT_GE(options.size(), 1u);
  EXPECT_EQ(options[0], kOptStartTls);
  for (size_t i = 1; i < options.size(); ++i) EXPECT_EQ(options[i], kOptAbort) << "option " << i;
  // No option header anywhere later either (say, after a failed TLS handshake).
  EXPECT_EQ(fake.received().find(be(kIHaveOpt, 8), 4 + 16), fake.received().npos);
}

// The server (or a man in the middle) refuses STARTTLS in each way it could.
TEST_F(TlsDowngrade, StartTlsRefused) {
  for (const uint32_t reply : {kRepErrUnsup, kRepErrPolicy, kRepErrInvalid}) {
    SCOPED_TRACE(reply);
    FakeServer fake([reply](FakeServer& s) {
      s.send_greeting(kFlagFixedNewstyle | kFlagNoZeroes);
      if (!s.recv_client_flags())
        return;
      for (int64_t opt; (opt = s.recv_option()) != -1;) {
        if (opt == kOptAbort) {
          s.send(option_reply(kOptAbort, kRepAck));
          return;
        }
        s.send(option_reply(static_cast<uint32_t>(opt), opt == kOptStartTls ? reply : kRepErrUnsup));
      }
    });
    const int rc = connect_to(fake);
    // libnbd: ENOTSUP "handshake: server refused TLS, but handle TLS setting is 'require' (2)".
    expect_refused(h, rc, ENOTSUP,
                   "nbd_connect_socket: handshake: TLS is required but the server refused NBD_OPT_STARTTLS");
    finish(fake);
    expect_nothing_after_starttls(fake);
    ASSERT_NO_FATAL_FAILURE(ApiTest::SetUp());  // a new handle for the next round
  }
}

// The name set with nbd_set_tls_hostname goes out as SNI (RFC 6066 server_name) in the
// ClientHello, also on a socket that names no host at all.
TEST_F(TlsDowngrade, TlsHostnameIsSentAsSni) {
  FakeServer fake([](FakeServer& s) {
    s.send_greeting(kFlagFixedNewstyle | kFlagNoZeroes);
    if (!s.recv_client_flags() || s.recv_option() != kOptStartTls)
      return;
    s.send(option_reply(kOptStartTls, kRepAck));
    std::string header, hello;
    if (s.recv_exact(5, &header))  // TLS record header: type, version, length
      s.recv_exact(from_be(header, 3, 2), &hello);
    s.hang_up();
  });
  ASSERT_EQ(nbd_set_tls_hostname(h, "sni.example"), 0) << nbd_get_error();
  const int rc = connect_to(fake);
  EXPECT_EQ(rc, -1);
  finish(fake);
  // host_name (0), length 11, the name.
  EXPECT_NE(fake.received().find(std::string("\x00\x00\x0bsni.example", 14)), std::string::npos);
}

// A server that hides its fixed-newstyle flag cannot be asked for STARTTLS.
TEST_F(TlsDowngrade, NotFixedNewstyle) {
  FakeServer fake([](FakeServer& s) { s.send_greeting(kFlagNoZeroes); });
  const int rc = connect_to(fake);
  // libnbd: ENOTSUP "handshake: server is not using fixed newstyle ...".
  expect_refused(h, rc, ENOTSUP,
                 "nbd_connect_socket: handshake: TLS is required but the server is not fixed newstyle");
  finish(fake);
  // At most the client flags and an NBD_OPT_ABORT; never NBD_OPT_EXPORT_NAME in plaintext.
  const std::vector<uint32_t> options = fake.plaintext_options();
  for (const uint32_t opt : options) EXPECT_EQ(opt, kOptAbort);
}

// STARTTLS accepted, and plaintext injected right behind the acceptance.
TEST_F(TlsDowngrade, PlaintextRightAfterAck) {
  FakeServer fake([](FakeServer& s) {
    s.send_greeting(kFlagFixedNewstyle | kFlagNoZeroes);
    if (!s.recv_client_flags() || s.recv_option() != kOptStartTls)
      return;
    // One write, so the client receives both at once.
    s.send(option_reply(kOptStartTls, kRepAck) + option_reply(kOptStructuredReply, kRepAck));
  });
  const int rc = connect_to(fake);
  expect_refused(h, rc, EPROTO,
                 "nbd_connect_socket: handshake: the server sent data after accepting NBD_OPT_STARTTLS");
  finish(fake);
  expect_nothing_after_starttls(fake);
}

// STARTTLS accepted, then the server answers the ClientHello in plaintext, as if TLS were up.
TEST_F(TlsDowngrade, PlaintextInsteadOfServerHello) {
  std::atomic<bool> saw_client_hello{false};
  FakeServer fake([&saw_client_hello](FakeServer& s) {
    s.send_greeting(kFlagFixedNewstyle | kFlagNoZeroes);
    if (!s.recv_client_flags() || s.recv_option() != kOptStartTls)
      return;
    s.send(option_reply(kOptStartTls, kRepAck));
    std::string record;
    if (!s.recv_exact(5, &record))
      return;
    saw_client_hello = record[0] == 0x16;  // a TLS handshake record
    s.send(option_reply(kOptStructuredReply, kRepAck));
  });
  const int rc = connect_to(fake);
  // Plaintext where TLS records belong is a protocol violation (libnbd: errno 0).
  expect_refused(h, rc, EPROTO, "nbd_connect_socket: TLS handshake failed: An unexpected TLS packet");
  finish(fake);
  EXPECT_TRUE(saw_client_hello);
  expect_nothing_after_starttls(fake);
}

// The reply to STARTTLS is for another option.
TEST_F(TlsDowngrade, ReplyForAnotherOption) {
  FakeServer fake([](FakeServer& s) {
    s.send_greeting(kFlagFixedNewstyle | kFlagNoZeroes);
    if (!s.recv_client_flags() || s.recv_option() != kOptStartTls)
      return;
    s.send(option_reply(kOptStructuredReply, kRepAck));
  });
  const int rc = connect_to(fake);
  expect_refused(h, rc, EPROTO, "nbd_connect_socket: handshake: option reply is for a different option");
  finish(fake);
  expect_nothing_after_starttls(fake);
}

}  // namespace
