// util.hpp: small helpers shared by the core.
#pragma once

#include <cstdarg>
#include <string>

namespace nbd {

// A malloc'd copy for calls that return a string the caller frees; nullptr (ENOMEM) on failure.
char* dup_string(const std::string& s);

// printf into a std::string, for messages of any length.
std::string vformat(const char* fmt, va_list ap) __attribute__((format(printf, 1, 0)));

}  // namespace nbd
