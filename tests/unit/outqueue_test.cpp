// outqueue_test.cpp: the outgoing queue's bookkeeping (copies, references, partial sends,
// truncation of unsent bytes).
#include <gtest/gtest.h>
#include <sys/uio.h>

#include <string>

#include "io.hpp"

namespace {

// Everything still queued, in order.
std::string queued(const nbd::OutQueue& q) {
  struct iovec iov[64];
  const int n = q.gather(iov, 64);
  std::string out;
  for (int i = 0; i < n; ++i) out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  return out;
}

TEST(OutQueue, CopiesMergeAndReferencesStayInPlace) {
  nbd::OutQueue q;
  const std::string payload = "PAYLOAD";
  q.append_copy("ab", 2);
  q.append_copy("cd", 2);
  q.append_ref(payload.data(), payload.size());
  q.append_copy("ef", 2);
  struct iovec iov[8];
  ASSERT_EQ(q.gather(iov, 8), 3);  // "abcd" is one segment
  EXPECT_EQ(iov[1].iov_base, payload.data());
  EXPECT_EQ(queued(q), "abcdPAYLOADef");
  EXPECT_EQ(q.end_offset(), 13u);
}

TEST(OutQueue, PartialSendsAdvanceTheOffsets) {
  nbd::OutQueue q;
  q.append_copy("0123456789", 10);
  q.consume(3);
  EXPECT_EQ(q.sent_offset(), 3u);
  EXPECT_EQ(queued(q), "3456789");
  q.consume(7);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.sent_offset(), 10u);
}

TEST(OutQueue, TruncateDropsOnlyUnsentBytes) {
  nbd::OutQueue q;
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

}  // namespace
