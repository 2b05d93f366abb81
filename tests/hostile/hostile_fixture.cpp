// hostile_fixture.cpp: the Hostile fixture, test data and the handshake prefixes scripts share.
#include "hostile/hostile_fixture.hpp"

#include <utility>

namespace hostile {

std::vector<unsigned char> pattern(size_t n, unsigned char seed) {
  std::vector<unsigned char> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<unsigned char>(seed + i * 7 + (i >> 8));
  return v;
}

Bytes bytes(const std::vector<unsigned char>& v) { return Bytes().raw(v); }

Export sr_export() {
  Export e;
  e.contexts = {{7, "base:allocation"}};
  return e;
}

Export simple_export() {
  Export e;
  e.structured_replies = false;
  return e;
}

void greet_until_structured_reply(Peer& p) {
  p.greeting_newstyle();
  p.expect_client_flags(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
  p.expect_option(OPT_EXTENDED_HEADERS);
  p.opt_error(OPT_EXTENDED_HEADERS, REP_ERR_UNSUP);
  p.expect_option(OPT_STRUCTURED_REPLY);
}

void greet_until_go(Peer& p) {
  greet_until_structured_reply(p);
  p.opt_ack(OPT_STRUCTURED_REPLY);
  p.expect_option(OPT_GO);
}

void Hostile::SetUp() {
  h = nbd_create();
  ASSERT_NE(h, nullptr) << nbd_get_error();
}

void Hostile::finish_server() {
  close_handle();
  if (srv) {
    EXPECT_EQ(srv->finish(), "") << "the fake server's script did not run to its end";
    srv.reset();
  }
}

int Hostile::serve(FakeServer::Script s) {
  srv = std::make_unique<FakeServer>(std::move(s));
  return srv->take_client_fd();
}

void Hostile::connect_ok(const Export& e, FakeServer::Script transmission) {
  ASSERT_EQ(connect([e, transmission](Peer& p) {
              p.handshake(e);
              transmission(p);
            }),
            0)
      << nbd_get_error();
}

void Hostile::close_handle() {
  if (h != nullptr)
    nbd_close(h);
  h = nullptr;
}

}  // namespace hostile
