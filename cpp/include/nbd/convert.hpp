// convert.hpp: moving strings between nbd/nbd.hpp's C++ types and the C ABI's char pointers.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nbd/error.hpp>

namespace nbd::detail {

// A C string argument may be NULL only where libnbd says so; a C++ caller gets "" instead.
inline std::string_view view(const char* s) noexcept {
  return s != nullptr ? std::string_view{s} : std::string_view{};
}

// A NUL byte would silently cut the string short on the C side, so it is refused like any other
// invalid argument, with libnbd's message format.
[[noreturn]] inline void throw_embedded_nul(const char* call, const char* arg) {
  throw Error(std::string{call} + ": " + arg + ": string contains a NUL byte", EINVAL, false);
}

// A NUL-terminated copy of a std::string_view argument, alive for the duration of the call.
class CString {
 public:
  CString(std::string_view s, const char* call, const char* arg) : s_(s) {
    if (s_.find('\0') != std::string::npos)
      throw_embedded_nul(call, arg);
  }
  const char* get() const noexcept { return s_.c_str(); }

 private:
  std::string s_;
};

// A NULL-terminated char* array for string_list arguments.  The C prototype takes char ** for
// libnbd compatibility; the strings are our own copies, so no const_cast is needed.
class CStringList {
 public:
  CStringList(const std::vector<std::string>& list, const char* call, const char* arg)
      : strings_(list) {
    pointers_.reserve(strings_.size() + 1);
    for (std::string& s : strings_) {
      if (s.find('\0') != std::string::npos)
        throw_embedded_nul(call, arg);
      pointers_.push_back(s.data());
    }
    pointers_.push_back(nullptr);
  }
  CStringList(const CStringList&) = delete;
  CStringList& operator=(const CStringList&) = delete;
  char** get() noexcept { return pointers_.data(); }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> pointers_;
};

struct FreeDeleter {
  void operator()(char* p) const noexcept { std::free(p); }
};

// A string libnbd returned with malloc, owned from the moment the call returns so that no path
// (an error, a callback's exception) can leak it.
using MallocedString = std::unique_ptr<char, FreeDeleter>;

}  // namespace nbd::detail
