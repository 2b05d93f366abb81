// api_fixture.hpp: a fresh handle per test, and checks of the thread-local error.
#pragma once

#include <gtest/gtest.h>
#include <libnbd.h>

#include <string>

namespace nbd_test {

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    h = nbd_create();
    ASSERT_NE(h, nullptr) << nbd_get_error();
  }
  void TearDown() override { nbd_close(h); }

  // Closes the handle now, before the test's servers go: a server asked to stop waits for its
  // clients to leave (nbdkit until the harness loses patience) if the handle is still connected.
  void close_handle() {
    nbd_close(h);
    h = nullptr;
  }

  nbd_handle* h = nullptr;
};

// The last error on this thread has this errno and its message starts with this prefix.
inline ::testing::AssertionResult last_error_is(int errnum, const std::string& prefix) {
  const char* msg = nbd_get_error();
  if (msg == nullptr)
    return ::testing::AssertionFailure() << "no error recorded";
  if (nbd_get_errno() != errnum)
    return ::testing::AssertionFailure()
           << "errno " << nbd_get_errno() << " != " << errnum << " (" << msg << ")";
  if (std::string(msg).rfind(prefix, 0) != 0)
    return ::testing::AssertionFailure() << "message \"" << msg << "\" lacks prefix \"" << prefix << "\"";
  return ::testing::AssertionSuccess();
}

}  // namespace nbd_test
