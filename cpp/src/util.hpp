// util.hpp: small helpers shared by the core.
#pragma once

#include <string>

namespace nbd {

// A malloc'd copy for calls that return a string the caller frees; nullptr (ENOMEM) on failure.
char* dup_string(const std::string& s);

}  // namespace nbd
