// error.cpp: thread-local error state and its formatting.
#include "error.hpp"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>

#include "util.hpp"

namespace nbd {
namespace {

struct ThreadError {
  std::string message;
  int errnum = 0;
  bool set = false;
};

thread_local ThreadError t_error;
// The public call in progress (a static string), which every public call sets and restores.
// Trivial, so it needs no guard, and initial-exec: a plain %fs-relative access instead of a
// __tls_get_addr call (8 bytes fit the static TLS space kept for dlopen'ed libraries).
thread_local const char* t_call __attribute__((tls_model("initial-exec"))) = nullptr;

}  // namespace

int set_error(int errnum, const char* fmt, ...) {
  ThreadError& e = t_error;
  e.message.clear();
  if (t_call != nullptr) {
    e.message += t_call;
    e.message += ": ";
  }
  va_list ap;
  va_start(ap, fmt);
  e.message += vformat(fmt, ap);
  va_end(ap);
  // As libnbd does, the message ends with the errno's text, so tools that print only
  // nbd_get_error still say what went wrong.
  e.message += ": ";
  e.message += std::strerror(errnum);
  e.errnum = errnum;
  e.set = true;
  errno = errnum;
  return -1;
}

const char* last_error() { return t_error.set ? t_error.message.c_str() : nullptr; }

int last_errno() { return t_error.errnum; }

const char* current_call() { return t_call; }

ApiScope::ApiScope(const char* name) : saved_(t_call) { t_call = name; }

ApiScope::~ApiScope() { t_call = saved_; }

}  // namespace nbd
