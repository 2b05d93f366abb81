// idle_memory_test.cpp: buffers come from the process's pool while a handle moves bytes and go
// back when it is idle; a busy handle keeps them (issue 22).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "pair_fixture.hpp"
#include "buffer_pool.hpp"
#include "handle.hpp"
#include "protocol.hpp"
#include "state/machine.hpp"

namespace {

TEST(BufferPool, GivenBackBuffersAreKeptForReuseAndCounted) {
  const size_t used = nbd::pool_buffers_in_use();
  nbd::PoolBytes a = nbd::take_pool_buffer();
  unsigned char* const first = a.get();
  a[0] = 1;
  a[nbd::kPoolBufferSize - 1] = 2;  // the whole size is there
  EXPECT_EQ(nbd::pool_buffers_in_use(), used + 1);
  const size_t kept = nbd::pool_buffers_kept();
  ASSERT_EQ(kept, 0u);  // a process of its own
  nbd::give_pool_buffer(std::move(a));
  EXPECT_EQ(a, nullptr);  // the pool owns it now
  EXPECT_EQ(nbd::pool_buffers_in_use(), used);
  EXPECT_EQ(nbd::pool_buffers_kept(), kept + 1);
  a = nbd::take_pool_buffer();
  EXPECT_EQ(a.get(), first);  // the pool held none before: this one is taken again
  nbd::PoolBuffer b;
  EXPECT_TRUE(b.empty());
  EXPECT_NE(b.acquire(), first);
  unsigned char* held = b.data();
  EXPECT_EQ(b.acquire(), held);  // acquire holds one buffer, not more
  b.release();
  EXPECT_TRUE(b.empty());
  nbd::give_pool_buffer(std::move(a));
  nbd::give_pool_buffer(nullptr);
  EXPECT_EQ(nbd::pool_buffers_in_use(), used);
}

using IdleMemoryTest = nbd_test::PairTest;

TEST_F(IdleMemoryTest, ReadAheadGoesBackWhenTheSocketRunsDry) {
  const size_t used = nbd::pool_buffers_in_use();
  char a[4096];
  const int64_t cookie = nbd_aio_pread(h, a, sizeof a, 0, NBD_NULL_COMPLETION, 0);
  ASSERT_GT(cookie, 0);
  EXPECT_EQ(nbd::pool_buffers_in_use(), used);  // one header fits the small chunk
  serve(1);
  drain();
  EXPECT_EQ(nbd_aio_command_completed(h, cookie), 1);
  EXPECT_EQ(static_cast<unsigned char>(a[4095]), 0x5au);  // it came through the buffer
  EXPECT_EQ(nbd::pool_buffers_in_use(), used);
}

TEST_F(IdleMemoryTest, ABusyHandleKeepsItsReadAheadUntilTheLastReply) {
  const size_t used = nbd::pool_buffers_in_use();
  char a[512], b[512];
  ASSERT_GT(nbd_aio_pread(h, a, sizeof a, 0, NBD_NULL_COMPLETION, 0), 0);
  ASSERT_GT(nbd_aio_pread(h, b, sizeof b, 0, NBD_NULL_COMPLETION, 0), 0);
  serve(1);
  while (nbd_aio_in_flight(h) > 1)
    ASSERT_EQ(nbd_poll(h, -1), 1) << nbd_get_error();
  EXPECT_EQ(nbd::pool_buffers_in_use(), used + 1);  // the socket ran dry, but a reply is due
  serve(1);
  drain();
  EXPECT_EQ(nbd::pool_buffers_in_use(), used);
}

TEST_F(IdleMemoryTest, ALargeReadArrivingInPiecesNeverFillsTheReadAheadBuffer) {
  h->peek_headers = true;  // as once an earlier large read went straight to its buffer
  std::vector<char> buf(64 * 1024);
  const int64_t cookie = nbd_aio_pread(h, buf.data(), buf.size(), 0, NBD_NULL_COMPLETION, 0);
  ASSERT_GT(cookie, 0);
  unsigned char req[nbd::proto::kRequestSize];
  ASSERT_TRUE(read_all(req, sizeof req));
  std::vector<unsigned char> reply(nbd::proto::kSimpleReplySize + buf.size(), 0x5a);
  nbd::proto::put32(reply.data(), nbd::proto::kSimpleReplyMagic);
  nbd::proto::put32(reply.data() + 4, 0);
  std::memcpy(reply.data() + 8, req + 8, 8);
  // All but the last 4 KiB, then those: the tail, short as it is, goes where the rest went.
  const size_t first = reply.size() - 4096;
  ASSERT_EQ(write(sv_[1], reply.data(), first), static_cast<ssize_t>(first));
  ASSERT_EQ(nbd_poll(h, -1), 1);
  ASSERT_EQ(nbd_aio_command_completed(h, cookie), 0);
  ASSERT_EQ(write(sv_[1], reply.data() + first, 4096), 4096);
  drain();
  EXPECT_EQ(nbd_aio_command_completed(h, cookie), 1);
  EXPECT_EQ(static_cast<unsigned char>(buf.back()), 0x5au);
  EXPECT_LE(h->in_end, 28u);      // the most the buffer ever held: a peeked header
  EXPECT_TRUE(h->peek_headers);  // and headers are still peeked
}

TEST_F(IdleMemoryTest, WhatABurstGrewGoesOnceTheLoadDrops) {
  // A burst: 64 commands in flight, then answered.
  std::vector<char> bufs(64 * 512);
  for (int i = 0; i < 64; ++i)
    ASSERT_GT(nbd_aio_pread(h, &bufs[i * 512], 512, 0, NBD_NULL_COMPLETION, 0), 0);
  std::thread server([this] { serve(64); });
  drain();
  server.join();
  const size_t slots = h->cmds.slot_count();
  EXPECT_GE(slots, 128u);
  // One request at a time from now on: the first idle moment keeps what the burst used (it
  // may come again), the next one sees it unused and frees it.
  for (int i = 0; i < 2; ++i) {
    ASSERT_GT(nbd_aio_pread(h, &bufs[0], 512, 0, NBD_NULL_COMPLETION, 0), 0);
    serve(1);
    drain();
  }
  EXPECT_LT(h->cmds.slot_count(), slots);
}

TEST_F(IdleMemoryTest, ADeadConnectionHoldsNoBuffers) {
  const size_t used = nbd::pool_buffers_in_use();
  char a[64];
  ASSERT_GT(nbd_aio_pread(h, a, sizeof a, 0, NBD_NULL_COMPLETION, 0), 0);
  unsigned char req[nbd::proto::kRequestSize];
  ASSERT_TRUE(read_all(req, sizeof req));
  // A reply with a bad magic and more bytes after it: the connection dies with bytes still
  // read ahead, and they go back.
  unsigned char garbage[64];
  std::memset(garbage, 0xee, sizeof garbage);
  ASSERT_EQ(write(sv_[1], garbage, sizeof garbage), static_cast<ssize_t>(sizeof garbage));
  EXPECT_EQ(nbd_poll(h, -1), -1);
  EXPECT_TRUE(nbd_aio_is_dead(h));
  EXPECT_EQ(nbd::pool_buffers_in_use(), used);
}

}  // namespace
