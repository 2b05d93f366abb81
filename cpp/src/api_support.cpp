// api_support.cpp: error reporting shared by the generated entry points.
#include "api_support.hpp"

#include <cerrno>

#include "state/machine.hpp"

namespace nbd {

bool check_state(nbd_handle& h, uint32_t permitted, const char* words) {
  if ((public_group(h) & permitted) != 0)
    return true;
  // A handle that never connected gets ENOTCONN; one that has moved on gets EINVAL.
  set_error(h.state == State::Created ? ENOTCONN : EINVAL,
            "invalid state: %s: the handle must be %s", state_name(h.state), words);
  return false;
}

bool fail_null(const char* name) {
  set_error(EFAULT, "%s cannot be NULL", name);
  return false;
}

bool fail_enum(const char* name, int value) {
  set_error(EINVAL, "%s: invalid value for parameter: %d", name, value);
  return false;
}

bool fail_flags(const char* name, uint32_t value) {
  set_error(EINVAL, "%s: invalid value for flag: 0x%x", name, value);
  return false;
}

void fail_null_handle() { set_error(EFAULT, "handle cannot be NULL"); }

void not_implemented() {
  set_error(ENOTSUP, "not implemented yet: the protocol core does not provide this call");
}

}  // namespace nbd
