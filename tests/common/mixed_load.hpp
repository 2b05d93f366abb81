// mixed_load.hpp: one handle driven with hundreds of mixed aio reads and writes in flight,
// every byte checked, for the load and concurrent-writer tests.
#pragma once

#include <libnbd.h>

#include <cstdint>
#include <functional>
#include <string>

namespace nbd_test {

// Connects a new handle to uri, runs setup(h) if given (it returns "" or an error), then keeps
// 256 random 4-64 KiB aio reads and writes in flight in the 16 MiB region at base until 3000
// have completed, checking each read against what was written, that all 256 were in flight at
// once and that no completion ran inside an aio call; finally reads the region back and shuts
// down.  Returns "" on success, else what went wrong.
std::string drive_mixed_load(const std::string& uri, uint64_t base, unsigned seed,
                             const std::function<std::string(nbd_handle*)>& setup = {});

}  // namespace nbd_test
