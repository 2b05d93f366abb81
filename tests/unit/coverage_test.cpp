// coverage_test.cpp: tracking which bytes of a structured read the server's chunks covered.
#include <gtest/gtest.h>

#include "cmd/command.hpp"

namespace {

TEST(Coverage, InOrderChunksComplete) {
  nbd::Coverage c;
  c.reset(1000);
  EXPECT_TRUE(c.add(1000, 10));
  EXPECT_FALSE(c.complete(1020));
  EXPECT_TRUE(c.add(1010, 10));
  EXPECT_TRUE(c.complete(1020));
}

TEST(Coverage, OutOfOrderChunksComplete) {
  nbd::Coverage c;
  c.reset(0);
  EXPECT_TRUE(c.add(20, 10));
  EXPECT_TRUE(c.add(10, 10));
  EXPECT_FALSE(c.complete(30));  // [0, 10) is missing
  EXPECT_TRUE(c.add(0, 10));
  EXPECT_TRUE(c.complete(30));
}

TEST(Coverage, OverlapsAreRefused) {
  nbd::Coverage c;
  c.reset(0);
  EXPECT_TRUE(c.add(0, 10));
  EXPECT_FALSE(c.add(5, 10));   // into the covered prefix
  EXPECT_TRUE(c.add(20, 10));
  EXPECT_FALSE(c.add(25, 2));   // inside a later run
  EXPECT_FALSE(c.add(15, 10));  // across the start of a later run
  EXPECT_FALSE(c.add(10, 30));  // over a whole later run
  EXPECT_TRUE(c.add(10, 10));
  EXPECT_TRUE(c.complete(30));
}

TEST(Coverage, MissingBytesAreNotComplete) {
  nbd::Coverage c;
  c.reset(0);
  EXPECT_TRUE(c.add(0, 10));
  EXPECT_TRUE(c.add(20, 10));
  EXPECT_FALSE(c.complete(30));
}

}  // namespace
