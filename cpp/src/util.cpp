// util.cpp: small helpers shared by the core.
#include "util.hpp"

#include <cerrno>
#include <cstring>

#include "error.hpp"

namespace nbd {

char* dup_string(const std::string& s) {
  char* copy = strdup(s.c_str());
  if (copy == nullptr)
    set_error(ENOMEM, "strdup");
  return copy;
}

}  // namespace nbd
