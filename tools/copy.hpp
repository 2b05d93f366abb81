// copy.hpp: `nbdpp copy`: between NBD exports, server commands, files, block devices and pipes.
#pragma once

#include <string>
#include <vector>

namespace nbdpp {

extern const char kCopyUsage[];

// Runs `nbdpp copy ARGS...`; returns the exit status (throws UsageError or Failure).
int run_copy(std::vector<std::string> args);

}  // namespace nbdpp
