// unlocked.hpp: prototypes of the core bodies behind each public call.
// GENERATED from api.yaml by generator/generate.py: DO NOT EDIT.
// The generated entry points (api.cpp) have already taken the lock, checked the state and checked
// every pointer, enum and flag before calling these.
#pragma once

#include <cstddef>
#include <cstdint>

#include <sys/socket.h>
#include <sys/types.h>

#include "libnbd.h"
#include "closure.hpp"

namespace nbd {
void unlocked_close (nbd_handle* h);
int unlocked_set_mode (nbd_handle& h, int mode);
int unlocked_get_mode (nbd_handle& h);
int unlocked_pread (nbd_handle& h, void *buf, size_t count, uint64_t offset, uint32_t flags);
int unlocked_set_debug_callback (nbd_handle& h, nbd::Closure<nbd_debug_callback>& debug_callback);
int unlocked_block_status_64 (nbd_handle& h, uint64_t count, uint64_t offset, char **contexts,
                              nbd::Closure<nbd_extent64_callback>& extent64_callback);
char * unlocked_get_name (nbd_handle& h);
uint64_t unlocked_stats_bytes_sent (nbd_handle& h);
int unlocked_connect_vsock (nbd_handle& h, uint32_t cid, uint32_t port);

// Calls still marked `status: pending` in api.yaml fail with ENOTSUP before reaching the core.
// Their bodies, once written, take these signatures (drop the status to declare them here):
// int64_t unlocked_aio_pread (nbd_handle& h, void *buf, size_t count, uint64_t offset,
//                             nbd::Closure<nbd_chunk_callback>& chunk_callback,
//                             nbd::Closure<nbd_completion_callback>& completion_callback,
//                             uint32_t flags);
}  // namespace nbd
