// debug.cpp: formatting and delivery of debug messages.
#include "debug.hpp"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <string>

#include "error.hpp"
#include "handle.hpp"
#include "util.hpp"

namespace nbd {

void debug(nbd_handle& h, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const std::string msg = vformat(fmt, ap);
  va_end(ap);

  const char* context = current_call();
  if (context == nullptr)
    context = "nbd";
  // The callback may record errors of its own; keep the caller's error intact.
  const int saved_errno = errno;
  if (h.debug_callback.has_callback())
    h.debug_callback(context, msg.c_str());
  else
    std::fprintf(stderr, "libnbd: debug: %s: %s: %s\n", h.name.c_str(), context, msg.c_str());
  errno = saved_errno;
}

void debug_leave_error(nbd_handle& h) {
  const char* err = last_error();
  debug(h, "leave: error=\"%s\"", err != nullptr ? err : "");
}

}  // namespace nbd
