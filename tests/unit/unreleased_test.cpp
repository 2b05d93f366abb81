// unreleased_test.cpp: a command answered while its sender still holds its write payload
// (Sender::released, as the ready-made writer's thread between its send and its report of it)
// completes only once the payload is released; the handle never waits for that.
#include <gtest/gtest.h>

#include <memory>

#include "pair_fixture.hpp"
#include "transport/sender.hpp"

namespace {

// Sends straight to the socket, like the default sender, but holds every payload it has sent
// until the test lets go.
class HeldSender final : public nbd::Sender {
 public:
  ssize_t send_raw(int fd, const struct iovec* iov, int n) override { return direct_->send_raw(fd, iov, n); }
  nbd::Io send(int fd, nbd::SendQueue& q) override { return direct_->send(fd, q); }
  bool released(uint64_t) const override { return !held; }
  void wake_when_released(uint64_t) override { ++wake_requests; }
  void connected(int fd) override { direct_->connected(fd); }
  void shut_writes(int fd) override { direct_->shut_writes(fd); }
  void connection_over(std::unique_ptr<nbd::Transport> t) override {
    held = false;  // as the thread sender, which waits for its thread to let go
    direct_->connection_over(std::move(t));
  }

  bool held = true;
  int wake_requests = 0;

 private:
  std::unique_ptr<nbd::Sender> direct_ = nbd::make_direct_sender();
};

class Unreleased : public nbd_test::PairTest {
 protected:
  Unreleased() {
    auto s = std::make_unique<HeldSender>();
    held_ = s.get();
    sender_ = std::move(s);
  }

  // An aio write of 4 KiB whose completion counts itself and records its error.
  int64_t write_4k() {
    return nbd_aio_pwrite(h, buf_, sizeof buf_, 0,
                          {[](void* ud, int* error) {
                             auto* self = static_cast<Unreleased*>(ud);
                             ++self->completions_;
                             self->error_ = *error;
                             return 0;
                           },
                           this, nullptr},
                          0);
  }
  // Runs the handle until the server's reply has been read.
  void read_reply() {
    while (held_->wake_requests == 0 && completions_ == 0)
      ASSERT_EQ(nbd_aio_notify_read(h), 0) << nbd_get_error();
  }

  HeldSender* held_ = nullptr;
  char buf_[4096] = {};
  int completions_ = 0;
  int error_ = -1;
};

TEST_F(Unreleased, CompletesOnlyOnceThePayloadIsReleased) {
  const int64_t cookie = write_4k();
  ASSERT_GT(cookie, 0) << nbd_get_error();
  serve(1);
  read_reply();
  EXPECT_EQ(held_->wake_requests, 1);  // the sender was asked to say when it lets go
  EXPECT_EQ(completions_, 0);          // answered, but its buffer is still in use
  EXPECT_EQ(nbd_aio_in_flight(h), 1);
  EXPECT_EQ(nbd_aio_command_completed(h, cookie), 0);
  // An event loop comes back as soon as the socket is writable meanwhile.
  EXPECT_EQ(nbd_aio_get_direction(h), LIBNBD_AIO_DIRECTION_BOTH);
  held_->held = false;
  ASSERT_EQ(nbd_aio_notify_write(h), 0) << nbd_get_error();
  EXPECT_EQ(completions_, 1);
  EXPECT_EQ(error_, 0);
  EXPECT_EQ(nbd_aio_command_completed(h, cookie), 1);
  EXPECT_EQ(nbd_aio_get_direction(h), LIBNBD_AIO_DIRECTION_READ);
}

// The connection ends while the payload is held: the command was answered, so it completes
// with the server's verdict, not the lost connection's ENOTCONN.
TEST_F(Unreleased, KeepsTheServersVerdictWhenTheConnectionEnds) {
  const int64_t cookie = write_4k();
  ASSERT_GT(cookie, 0) << nbd_get_error();
  serve(1);
  read_reply();
  ASSERT_EQ(completions_, 0);
  close(sv_[1]);
  sv_[1] = -1;
  EXPECT_EQ(nbd_aio_notify_read(h), -1);
  EXPECT_TRUE(nbd_test::last_error_is(ENOTCONN, "nbd_aio_notify_read: server closed the connection"));
  EXPECT_EQ(nbd_aio_is_dead(h), 1);
  EXPECT_EQ(completions_, 1);
  EXPECT_EQ(error_, 0);
  EXPECT_EQ(nbd_aio_command_completed(h, cookie), 1);
}

// A second reply for an answered command is one for an unknown cookie: the stream is out of
// step and the connection ends.
TEST_F(Unreleased, ASecondReplyForAnAnsweredCommandIsAProtocolError) {
  const int64_t cookie = write_4k();
  ASSERT_GT(cookie, 0) << nbd_get_error();
  unsigned char req[nbd::proto::kRequestSize];
  ASSERT_TRUE(read_all(req, sizeof req));
  ASSERT_TRUE(read_all(reinterpret_cast<unsigned char*>(buf_), sizeof buf_));
  unsigned char reply[nbd::proto::kSimpleReplySize] = {};
  nbd::proto::put32(reply, nbd::proto::kSimpleReplyMagic);
  std::memcpy(reply + 8, req + 8, 8);
  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(write(sv_[1], reply, sizeof reply), static_cast<ssize_t>(sizeof reply));
  while (nbd_aio_notify_read(h) == 0 && !nbd_aio_is_dead(h)) {
  }
  EXPECT_TRUE(nbd_test::last_error_is(EPROTO, "nbd_aio_notify_read: reply for unknown cookie"));
  EXPECT_EQ(nbd_aio_is_dead(h), 1);
  EXPECT_EQ(completions_, 1);
  EXPECT_EQ(error_, 0);  // its own reply had come
  EXPECT_EQ(nbd_aio_command_completed(h, cookie), 1);
}

}  // namespace
