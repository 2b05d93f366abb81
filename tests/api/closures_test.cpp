// closures_test.cpp: every closure kind is freed exactly once, whether its call fails or succeeds.
// These tests pass NULL on purpose: drop the header's nonnull attributes so the compiler
// (and UBSan) let the library's own checks answer.
#define LIBNBD_ATTRIBUTE_NONNULL(...)

#include <gtest/gtest.h>
#include <libnbd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "../common/api_fixture.hpp"
#include "../common/closure_counter.hpp"

using nbd_test::ApiTest;
using nbd_test::Counter;
using nbd_test::last_error_is;

TEST_F(ApiTest, ChunkAndCompletionFreedWhenCallFails) {
  Counter chunk, completion;
  char buf[512];
  EXPECT_EQ(nbd_pread_structured(h, buf, sizeof buf, 0, nbd_test::chunk_closure(chunk), 0), -1);
  EXPECT_EQ(chunk.frees, 1);
  EXPECT_EQ(nbd_aio_pread_structured(h, buf, sizeof buf, 0, nbd_test::chunk_closure(chunk),
                                     nbd_test::completion_closure(completion), 0),
            -1);
  EXPECT_EQ(chunk.frees, 2);
  EXPECT_EQ(completion.frees, 1);
  EXPECT_EQ(nbd_aio_pwrite(h, buf, sizeof buf, 0, nbd_test::completion_closure(completion), 0), -1);
  EXPECT_EQ(completion.frees, 2);
  EXPECT_EQ(nbd_aio_flush(h, nbd_test::completion_closure(completion), 0), -1);
  EXPECT_EQ(completion.frees, 3);
  EXPECT_EQ(chunk.calls + completion.calls, 0);
}

TEST_F(ApiTest, ExtentListContextFreedWhenCallFails) {
  Counter extent, list, context, completion;
  EXPECT_EQ(nbd_block_status(h, 512, 0, nbd_test::extent_closure(extent), 0), -1);
  EXPECT_EQ(nbd_aio_block_status(h, 512, 0, nbd_test::extent_closure(extent),
                                 nbd_test::completion_closure(completion), 0),
            -1);
  EXPECT_EQ(nbd_opt_list(h, nbd_test::list_closure(list)), -1);
  EXPECT_EQ(nbd_aio_opt_list(h, nbd_test::list_closure(list), nbd_test::completion_closure(completion)), -1);
  EXPECT_EQ(nbd_opt_list_meta_context(h, nbd_test::context_closure(context)), -1);
  EXPECT_EQ(nbd_aio_opt_list_meta_context(h, nbd_test::context_closure(context),
                                          nbd_test::completion_closure(completion)),
            -1);
  EXPECT_EQ(extent.frees, 2);
  EXPECT_EQ(list.frees, 2);
  EXPECT_EQ(context.frees, 2);
  EXPECT_EQ(completion.frees, 3);
}

TEST_F(ApiTest, FreeOnlyClosuresFreedWhenCallFails) {
  Counter list, chunk;
  char buf[512];
  EXPECT_EQ(nbd_opt_list(h, nbd_test::free_only<nbd_list_callback>(list)), -1);
  EXPECT_EQ(list.frees, 1);
  EXPECT_EQ(nbd_pread_structured(h, buf, sizeof buf, 0, nbd_test::free_only<nbd_chunk_callback>(chunk), 0),
            -1);
  EXPECT_EQ(chunk.frees, 1);
}

TEST_F(ApiTest, DebugClosureFreedOnReplaceClearAndClose) {
  Counter a, b, c;
  EXPECT_EQ(nbd_set_debug_callback(h, nbd_test::debug_closure(a)), 0);
  EXPECT_EQ(a.frees, 0);
  EXPECT_EQ(nbd_set_debug_callback(h, nbd_test::debug_closure(b)), 0);
  EXPECT_EQ(a.frees, 1);
  EXPECT_EQ(nbd_clear_debug_callback(h), 0);
  EXPECT_EQ(b.frees, 1);
  EXPECT_EQ(nbd_clear_debug_callback(h), 0);
  EXPECT_EQ(b.frees, 1);
  EXPECT_EQ(nbd_set_debug_callback(h, nbd_test::debug_closure(c)), 0);
  nbd_close(h);
  h = nullptr;
  EXPECT_EQ(c.frees, 1);
  EXPECT_EQ(a.frees + b.frees, 2);
}

TEST(Closures, DebugClosureFreedWhenHandleIsNull) {
  Counter a;
  EXPECT_EQ(nbd_set_debug_callback(nullptr, nbd_test::debug_closure(a)), -1);
  EXPECT_TRUE(last_error_is(EFAULT, "nbd_set_debug_callback: handle cannot be NULL"));
  EXPECT_EQ(a.frees, 1);
}

TEST_F(ApiTest, FreeOnlyCompletionIsValid) {
  Counter completion;
  char buf[512];
  EXPECT_EQ(nbd_aio_pread(h, buf, sizeof buf, 0, nbd_test::free_only<nbd_completion_callback>(completion), 0),
            -1);
  EXPECT_TRUE(last_error_is(ENOTCONN, "nbd_aio_pread: invalid state"));
  EXPECT_EQ(completion.frees, 1);
  EXPECT_EQ(nbd_aio_pread(h, buf, sizeof buf, 0, NBD_NULL_COMPLETION, 0), -1);
}

TEST_F(ApiTest, WriterSetTwiceIsEinvalAndEachFreedOnce) {
  Counter first, second;
  EXPECT_EQ(nbd_set_concurrent_writer(h, nbd_test::writer_closure(first)), 0);
  EXPECT_EQ(nbd_set_concurrent_writer(h, nbd_test::writer_closure(second)), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_concurrent_writer: concurrent writer was already set"));
  EXPECT_EQ(second.frees, 1);
  EXPECT_EQ(first.frees, 0);
  nbd_close(h);
  h = nullptr;
  EXPECT_EQ(first.frees, 1);
}

TEST_F(ApiTest, DebugCallbackSeesEnterAndLeave) {
  struct Log {
    std::vector<std::string> lines;
  } log;
  nbd_debug_callback cb{[](void* ud, const char* context, const char* msg) {
                          static_cast<Log*>(ud)->lines.push_back(std::string(context) + ": " + msg);
                          return 0;
                        },
                        &log, nullptr};
  ASSERT_EQ(nbd_set_debug_callback(h, cb), 0);
  ASSERT_EQ(nbd_set_debug(h, true), 0);
  ASSERT_EQ(nbd_set_export_name(h, "exp"), 0);
  ASSERT_EQ(nbd_set_tls(h, 9), -1);
  const std::vector<std::string> want{
      "nbd_set_debug: leave: ret=0",
      "nbd_set_export_name: enter: export_name=\"exp\"",
      "nbd_set_export_name: leave: ret=0",
      "nbd_set_tls: enter: tls=9",
      "nbd_set_tls: leave: error=\"nbd_set_tls: tls: invalid value for parameter: 9: Invalid argument\"",
  };
  EXPECT_EQ(log.lines, want);
  // The callback does not disturb the error the caller sees.
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_set_tls: tls: invalid value"));
  ASSERT_EQ(nbd_clear_debug_callback(h), 0);  // log dies before the fixture closes h
}
