// closure_test.cpp: nbd::Closure frees its C closure exactly once, wherever ownership ends.
#include "closure.hpp"

#include <gtest/gtest.h>

#include <utility>

#include "../common/closure_counter.hpp"

using nbd_test::Counter;

TEST(Closure, FreedOnceOnDestruction) {
  Counter c;
  { nbd::Closure<nbd_completion_callback> cl{nbd_test::completion_closure(c)}; }
  EXPECT_EQ(c.frees, 1);
}

TEST(Closure, MoveTransfersOwnership) {
  Counter c;
  nbd::Closure<nbd_completion_callback> outer;
  {
    nbd::Closure<nbd_completion_callback> inner{nbd_test::completion_closure(c)};
    outer = std::move(inner);
    EXPECT_TRUE(inner.empty());
  }
  EXPECT_EQ(c.frees, 0);
  int err = 0;
  EXPECT_EQ(outer(&err), 0);
  EXPECT_EQ(c.calls, 1);
  outer.reset();
  EXPECT_EQ(c.frees, 1);
  outer.reset();
  EXPECT_EQ(c.frees, 1);
}

TEST(Closure, AssignmentFreesThePrevious) {
  Counter a, b;
  nbd::Closure<nbd_debug_callback> cl{nbd_test::debug_closure(a)};
  cl = nbd::Closure<nbd_debug_callback>{nbd_test::debug_closure(b)};
  EXPECT_EQ(a.frees, 1);
  EXPECT_EQ(b.frees, 0);
}

TEST(Closure, FreeOnlyHasNoCallback) {
  Counter c;
  nbd::Closure<nbd_list_callback> cl{nbd_test::free_only<nbd_list_callback>(c)};
  EXPECT_FALSE(cl.has_callback());
  EXPECT_FALSE(cl.empty());
}
