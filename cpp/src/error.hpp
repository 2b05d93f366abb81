// error.hpp: the thread-local last error ("nbd_<call>: <text>" plus errno) behind nbd_get_error.
#pragma once

namespace nbd {

// Records an error for the current thread, prefixed by the public call in progress, and sets
// errno.  Returns -1 so bodies can write `return set_error(EINVAL, "...");`.
int set_error(int errnum, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// The message and errno of the last error on this thread (nullptr and 0 before any error).
const char* last_error();
int last_errno();

// e if it is non-zero, otherwise fallback.
inline int errno_or(int e, int fallback) { return e != 0 ? e : fallback; }

// The public call in progress on this thread, or nullptr.
const char* current_call();

// Names the public call in progress on this thread for as long as it lives; nests, so a call
// made from inside a callback restores the outer name when it returns.
class ApiScope {
 public:
  explicit ApiScope(const char* name);
  ~ApiScope();
  ApiScope(const ApiScope&) = delete;
  ApiScope& operator=(const ApiScope&) = delete;

 private:
  const char* saved_;
};

}  // namespace nbd
