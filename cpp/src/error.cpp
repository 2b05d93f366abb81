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
  const char* call = nullptr;  // static string of the public call in progress
  std::string message;
  int errnum = 0;
  bool set = false;
};

thread_local ThreadError t_error;

}  // namespace

int set_error(int errnum, const char* fmt, ...) {
  ThreadError& e = t_error;
  e.message.clear();
  if (e.call != nullptr) {
    e.message += e.call;
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

const char* current_call() { return t_error.call; }

ApiScope::ApiScope(const char* name) : saved_(t_error.call) { t_error.call = name; }

ApiScope::~ApiScope() { t_error.call = saved_; }

}  // namespace nbd
