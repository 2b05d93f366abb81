// util.hpp: small helpers shared by the core.
#pragma once

#include <sys/types.h>

#include <cstdarg>
#include <string>

namespace nbd {

// Owns a file descriptor and closes it once.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other)
      reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A malloc'd copy for calls that return a string the caller frees; nullptr (ENOMEM) on failure.
char* dup_string(const std::string& s);

// Empties a container and frees its storage (c = {} would keep a vector's capacity).
template <class C>
void release_storage(C& c) {
  C().swap(c);
}

// printf into a std::string, for messages of any length.
std::string vformat(const char* fmt, va_list ap) __attribute__((format(printf, 1, 0)));

}  // namespace nbd
