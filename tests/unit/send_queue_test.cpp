// send_queue_test.cpp: the outgoing queue's bookkeeping (copies, references, partial sends,
// truncation of unsent bytes).
#include <gtest/gtest.h>
#include <sys/uio.h>

#include <string>

#include "transport/send_queue.hpp"

namespace {

// Everything still queued, in order.
std::string queued(const nbd::SendQueue& q) {
  struct iovec iov[64];
  const int n = q.gather(iov, 64);
  std::string out;
  for (int i = 0; i < n; ++i) out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  return out;
}

TEST(SendQueue, CopiesMergeAndReferencesStayInPlace) {
  nbd::SendQueue q;
  const std::string payload = "PAYLOAD";
  q.append_copy("ab", 2);
  q.append_copy("cd", 2);
  q.append_ref(payload.data(), payload.size());
  q.append_copy("ef", 2);
  struct iovec iov[8];
  bool referenced[8];
  ASSERT_EQ(q.gather(iov, 8, referenced), 3);  // "abcd" is one segment
  EXPECT_EQ(iov[1].iov_base, payload.data());
  EXPECT_FALSE(referenced[0]);
  EXPECT_TRUE(referenced[1]);  // a sender may keep using it after consuming it
  EXPECT_FALSE(referenced[2]);
  EXPECT_EQ(queued(q), "abcdPAYLOADef");
  EXPECT_EQ(q.end_offset(), 13u);
}

TEST(SendQueue, PartialSendsAdvanceTheOffsets) {
  nbd::SendQueue q;
  q.append_copy("0123456789", 10);
  q.consume(3);
  EXPECT_EQ(q.sent_offset(), 3u);
  EXPECT_EQ(queued(q), "3456789");
  q.consume(7);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.sent_offset(), 10u);
}

TEST(SendQueue, TruncateDropsOnlyUnsentBytes) {
  nbd::SendQueue q;
  const std::string payload = "PAYLOAD";
  q.append_copy("head", 4);       // [0, 4)
  q.append_ref(payload.data(), 7);  // [4, 11)
  q.append_copy("tail", 4);       // [11, 15)
  q.consume(2);                   // "he" went out
  q.truncate(11);
  EXPECT_EQ(queued(q), "adPAYLOAD");
  q.truncate(6);  // inside the reference
  EXPECT_EQ(queued(q), "adPA");
  q.truncate(2);  // exactly what was sent: nothing left, and the queue still works
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.end_offset(), 2u);
  q.append_copy("new", 3);
  EXPECT_EQ(queued(q), "new");
  EXPECT_EQ(q.end_offset(), 5u);
}

TEST(SendQueue, SmallChunksAndTrimGivesBackWhatALoadGrew) {
  nbd::SendQueue q;
  EXPECT_EQ(q.chunk_capacity(), 0u);
  q.append_copy("abc", 3);
  const size_t usual = q.chunk_capacity();
  EXPECT_GT(usual, 3u);
  const std::string big(usual + 100, 'b');  // a chunk of its own
  q.append_copy(big.data(), big.size());
  EXPECT_EQ(q.chunk_capacity(), big.size());
  q.trim();  // bytes are queued: nothing changes
  EXPECT_EQ(queued(q), "abc" + big);
  EXPECT_EQ(q.chunk_capacity(), big.size());
  q.consume(3 + big.size());
  q.trim();
  EXPECT_EQ(q.chunk_capacity(), 0u);
  q.append_copy("de", 2);
  EXPECT_EQ(q.chunk_capacity(), usual);
  EXPECT_EQ(queued(q), "de");
  q.consume(2);
  q.trim();  // the usual chunk stays for the next request
  EXPECT_EQ(q.chunk_capacity(), usual);
  // Copies that pile up spill into further chunks; a segment ring grown under load shrinks once
  // empty; the queue goes on.
  const std::string payload = "0123456789";
  for (size_t i = 0; i < usual; ++i) {
    q.append_ref(payload.data() + i % 10, 1);
    q.append_copy("-", 1);
  }
  EXPECT_EQ(queued(q).substr(0, 6), "0-1-2-");  // (queued shows the first 64 pieces)
  q.consume(2 * usual - 1);
  EXPECT_EQ(queued(q), "-");
  q.trim();
  q.consume(1);
  q.trim();
  q.trim();
  EXPECT_TRUE(q.empty());
  q.append_ref(payload.data(), 3);
  q.append_copy("x", 1);
  EXPECT_EQ(queued(q), "012x");
  EXPECT_EQ(q.sent_offset(), big.size() + 5 + 2 * usual);
}

}  // namespace
