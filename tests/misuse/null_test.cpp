// null_test.cpp: every call given a NULL handle, and each NULL pointer or callback argument its
// entry point checks.
#include "misuse/misuse_support.hpp"

#include <cerrno>

namespace misuse {
namespace {

// A NULL handle: EFAULT from every call that can report an error (the others dereference it,
// as in libnbd, and are not tried), and the closures it was given freed, never called.
class NullHandle : public ::testing::TestWithParam<Case> {};

TEST_P(NullHandle, IsEfault) {
  const CallInfo& c = *GetParam().call;
  Args a(c);
  expect_refused(c, nullptr, a, EFAULT, c.c_name() + ": handle cannot be NULL");
}

INSTANTIATE_TEST_SUITE_P(Calls, NullHandle, ::testing::ValuesIn(null_handle_cases()), case_name);

// nbd_close(NULL) does nothing (the one call whose handle may be NULL).
TEST(NullableHandle, AcceptsNull) {
  int n = 0;
  for (const CallInfo& c : model_calls()) {
    if (c.handle != HandleKind::Nullable) continue;
    Args a(c);
    int saved = 0;
    const Outcome o = invoke(c, nullptr, a, saved);
    EXPECT_FALSE(o.failed) << c.c_name() << ": " << nbd_get_error();
    ++n;
  }
  EXPECT_GE(n, 1);
}

// A NULL pointer argument, or a required closure with neither callback nor free (as in
// libnbd: one with only .free set is valid, except for kinds that need the callback, such as
// the concurrent writer, where that is refused too): EFAULT "nbd_CALL: ARG cannot be NULL" in
// a state the call permits, closures freed and not called, the handle unchanged and still
// usable.
class NullArg : public InState {};

TEST_P(NullArg, IsEfault) {
  const ArgInfo& arg = c.args[p.arg];
  Args a(c);
  a.fault(p.arg, arg.kind == ArgKind::Closure && arg.needs_callback ? Fault::NullCallback : Fault::Null);
  expect_refused(c, sh->h, a, EFAULT, c.c_name() + ": " + arg.name + " cannot be NULL");
  expect_usable(*sh);
}

INSTANTIATE_TEST_SUITE_P(Calls, NullArg, ::testing::ValuesIn(arg_cases(null_checked)), case_name);

}  // namespace
}  // namespace misuse
