// value_test.cpp: every enum argument given a value outside its set, and every flags argument
// bits outside its set or outside those the call accepts.
#include "misuse/misuse_support.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace misuse {
namespace {

// v as the flag error writes it: 0x10000.
std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// An enum argument outside its set: EINVAL "nbd_CALL: ARG: invalid value for parameter: N".
class BadEnum : public InState {};

TEST_P(BadEnum, IsEinval) {
  const ArgInfo& arg = c.args[p.arg];
  const auto [lo, hi] = std::minmax_element(arg.values.begin(), arg.values.end());
  for (int64_t v : {*hi + 1, *lo - 1, int64_t{INT_MAX}, int64_t{INT_MIN}}) {
    SCOPED_TRACE("value " + std::to_string(v));
    Args a(c);
    a.fault(p.arg, Fault::Value, v);
    expect_refused(c, sh->h, a, EINVAL,
                   c.c_name() + ": " + arg.name + ": invalid value for parameter: " + std::to_string(v));
  }
  expect_usable(*sh);
}

INSTANTIATE_TEST_SUITE_P(Calls, BadEnum, ::testing::ValuesIn(arg_cases([](const ArgInfo& a) {
                           return a.kind == ArgKind::Enum;
                         })),
                         case_name);

// Flags outside the set (the lowest unknown bit, the top bit) and, for calls that accept only
// some of the set, each known bit they do not accept (with the default strict mode):
// EINVAL "nbd_CALL: ARG: invalid value for flag: 0xN".  With LIBNBD_STRICT_FLAGS off, bits
// beyond the protocol's 16 are still refused.
class BadFlags : public InState {};

TEST_P(BadFlags, IsEinval) {
  const ArgInfo& arg = c.args[p.arg];
  ASSERT_NE(nbd_get_strict_mode(sh->h) & LIBNBD_STRICT_FLAGS, 0u) << "the default strict mode checks flags";
  std::vector<uint32_t> bad;
  for (uint32_t bit = 1; bit != 0; bit <<= 1)
    if ((arg.mask & bit) == 0) {
      bad.push_back(bit);
      break;
    }
  ASSERT_EQ(arg.mask & 0x80000000U, 0u);
  bad.push_back(0x80000000U);
  if (arg.has_allowed)
    for (int64_t v : arg.values)
      if ((arg.allowed & static_cast<uint32_t>(v)) == 0) bad.push_back(static_cast<uint32_t>(v));
  auto refuse_flags = [&](uint32_t v) {
    SCOPED_TRACE("flags " + hex(v));
    Args a(c);
    a.fault(p.arg, Fault::Value, v);
    expect_refused(c, sh->h, a, EINVAL, c.c_name() + ": " + arg.name + ": invalid value for flag: " + hex(v));
  };
  for (uint32_t v : bad) refuse_flags(v);
  if (arg.has_allowed) {
    const uint32_t strict = nbd_get_strict_mode(sh->h);
    ASSERT_EQ(nbd_set_strict_mode(sh->h, strict & ~LIBNBD_STRICT_FLAGS), 0) << nbd_get_error();
    refuse_flags(0x80000000U);
    refuse_flags(0x10000U);
    ASSERT_EQ(nbd_set_strict_mode(sh->h, strict), 0) << nbd_get_error();
  }
  expect_usable(*sh);
}

INSTANTIATE_TEST_SUITE_P(Calls, BadFlags, ::testing::ValuesIn(arg_cases([](const ArgInfo& a) {
                           return a.kind == ArgKind::Flags;
                         })),
                         case_name);

}  // namespace
}  // namespace misuse
