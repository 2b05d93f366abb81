// state_test.cpp: every call in each api.yaml state it does not permit.
#include "misuse/misuse_support.hpp"

#include <cerrno>
#include <string>

namespace misuse {
namespace {

// "negotiating, or connected with the server": the words of the generated state error.
std::string state_words(const CallInfo& c) {
  std::string out;
  for (const std::string& s : c.states) {
    for (const StateInfo& st : model_states())
      if (st.name == s) out += (out.empty() ? "" : ", or ") + st.words;
  }
  return out;
}

// The state name the library reports ("READY" of "READY: connected, ...").
std::string state_name(nbd_handle* h) {
  const char* s = nbd_connection_state(h);
  if (s == nullptr) return "?";
  const std::string full = s;
  return full.substr(0, full.find(':'));
}

// A call in a state it does not permit: ENOTCONN while the handle is newly created, otherwise
// EINVAL, with "nbd_CALL: invalid state: NAME: the handle must be WORDS" (the words of
// api.yaml's states); closures freed and not called; the handle unchanged and still usable.
class WrongState : public InState {};

TEST_P(WrongState, IsTheStateError) {
  const std::string name = state_name(sh->h);
  Args a(c);
  expect_refused(c, sh->h, a, p.state == "created" ? ENOTCONN : EINVAL,
                 c.c_name() + ": invalid state: " + name + ": the handle must be " + state_words(c));
  expect_usable(*sh);
}

INSTANTIATE_TEST_SUITE_P(Calls, WrongState, ::testing::ValuesIn(wrong_state_cases()), case_name);

}  // namespace
}  // namespace misuse
