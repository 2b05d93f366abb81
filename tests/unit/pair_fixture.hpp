// pair_fixture.hpp: a connected handle whose server is the other end of a socketpair, played
// by the test (unit tests of the core's reading, sending and memory).
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

#include "../common/api_fixture.hpp"
#include "handle.hpp"
#include "protocol.hpp"
#include "state/machine.hpp"

namespace nbd_test {

// A connected handle whose server is the other end of a socketpair, played by the test with
// simple replies.
class PairTest : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv_), 0);
    if (sender_)
      h->sender = std::move(sender_);  // a test's own, set before SetUp
    h->sock = nbd::make_socket_transport(sv_[0], *h->sender);
    h->have_info = true;
    h->exportsize = 64 << 20;
    nbd::enter_transmission(*h);
  }
  void TearDown() override {
    ApiTest::TearDown();
    close(sv_[1]);
  }

  // Reads n requests (and write payloads) and answers each with a simple reply, with the data
  // of reads.
  void serve(int n) {
    for (int i = 0; i < n; ++i) {
      unsigned char req[nbd::proto::kRequestSize];
      ASSERT_TRUE(read_all(req, sizeof req));
      const uint16_t type = nbd::proto::get16(req + 6);
      const uint32_t count = nbd::proto::get32(req + 24);
      std::vector<unsigned char> data(count);
      if (type == nbd::proto::kCmdWrite)
        ASSERT_TRUE(read_all(data.data(), count));
      std::vector<unsigned char> reply(nbd::proto::kSimpleReplySize, 0);
      nbd::proto::put32(reply.data(), nbd::proto::kSimpleReplyMagic);
      std::memcpy(reply.data() + 8, req + 8, 8);  // the cookie
      if (type == nbd::proto::kCmdRead)
        reply.insert(reply.end(), count, 0x5a);
      ASSERT_EQ(write(sv_[1], reply.data(), reply.size()), static_cast<ssize_t>(reply.size()));
    }
  }
  bool read_all(unsigned char* p, size_t len) {
    while (len > 0) {
      const ssize_t r = read(sv_[1], p, len);
      if (r <= 0)
        return false;
      p += r;
      len -= static_cast<size_t>(r);
    }
    return true;
  }
  // Polls until no command is in flight.
  void drain() {
    while (nbd_aio_in_flight(h) > 0)
      ASSERT_EQ(nbd_poll(h, -1), 1) << nbd_get_error();
  }

  int sv_[2] = {-1, -1};
  std::unique_ptr<nbd::Sender> sender_;
};

}  // namespace nbd_test
