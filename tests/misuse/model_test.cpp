// model_test.cpp: the generated call table the generic misuse cases are built from.
#include "misuse/misuse_support.hpp"

#include <set>
#include <string>

namespace misuse {
namespace {

// The generic cases rely on the validator's rule that a call which cannot report an error has
// nothing to check: no permitted states, no pointers, no enums, no flags.
TEST(Model, CallsThatCannotFailCheckNothing) {
  for (const CallInfo& c : model_calls()) {
    if (c.can_report_failure() && c.may_fail) continue;
    EXPECT_TRUE(c.states.empty()) << c.c_name();
    for (const ArgInfo& a : c.args)
      EXPECT_TRUE(!a.pointer && a.kind != ArgKind::Enum && a.kind != ArgKind::Flags &&
                  !(a.kind == ArgKind::Closure && !a.optional))
          << c.c_name() << " " << a.name;
  }
}

// Each generic case list is non-empty and names every call once per argument or state.
TEST(Model, TableIsComplete) {
  std::set<std::string> names;
  for (const CallInfo& c : model_calls()) EXPECT_TRUE(names.insert(c.name).second) << c.name;
  EXPECT_GE(names.size(), 126u);  // libnbd 1.14's calls, at least
  EXPECT_FALSE(null_handle_cases().empty());
  EXPECT_FALSE(arg_cases(null_checked).empty());
  EXPECT_FALSE(wrong_state_cases().empty());
}

}  // namespace
}  // namespace misuse
