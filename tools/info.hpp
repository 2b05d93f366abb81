// info.hpp: `nbdpp info`: what a server and its exports offer, as text or JSON.
#pragma once

#include <string>
#include <vector>

namespace nbdpp {

extern const char kInfoUsage[];

// Runs `nbdpp info ARGS...`; returns the exit status (throws UsageError or Failure).
int run_info(std::vector<std::string> args);

}  // namespace nbdpp
