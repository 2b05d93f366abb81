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
struct nbd_handle * unlocked_create (void);
int unlocked_set_mode (nbd_handle& h, int mode);
int unlocked_get_mode (nbd_handle& h);
int unlocked_get_errno (void);
const char * unlocked_get_version (nbd_handle& h);
int unlocked_pread (nbd_handle& h, void *buf, size_t count, uint64_t offset, uint32_t flags);
int unlocked_set_debug_callback (nbd_handle& h, nbd::Closure<nbd_debug_callback>& debug_callback);
int unlocked_block_status_64 (nbd_handle& h, uint64_t count, uint64_t offset, char **contexts,
                              nbd::Closure<nbd_extent64_callback>& extent64_callback);
char * unlocked_get_name (nbd_handle& h);
uint64_t unlocked_stats_bytes_sent (nbd_handle& h);
int unlocked_connect_vsock (nbd_handle& h, uint32_t cid, uint32_t port);
int unlocked_set_debug (nbd_handle& h, bool debug);
int unlocked_get_debug (nbd_handle& h);
int unlocked_set_handle_name (nbd_handle& h, const char *handle_name);
int unlocked_set_strict_mode (nbd_handle& h, uint32_t flags);
uint32_t unlocked_get_strict_mode (nbd_handle& h);
uintptr_t unlocked_set_private_data (nbd_handle& h, uintptr_t private_data);
int unlocked_connect_unix (nbd_handle& h, const char *unixsocket);
int unlocked_connect_socket (nbd_handle& h, int sock);
int unlocked_aio_connect (nbd_handle& h, const struct sockaddr *addr, socklen_t addrlen);
const char * unlocked_get_protocol (nbd_handle& h);
int64_t unlocked_get_size (nbd_handle& h);
ssize_t unlocked_get_nr_meta_contexts (nbd_handle& h);
char * unlocked_get_meta_context (nbd_handle& h, size_t i);
int unlocked_pwrite (nbd_handle& h, const void *buf, size_t count, uint64_t offset, uint32_t flags);
int64_t unlocked_aio_pwrite (nbd_handle& h, const void *buf, size_t count, uint64_t offset,
                             nbd::Closure<nbd_completion_callback>& completion_callback,
                             uint32_t flags);
int unlocked_poll (nbd_handle& h, int timeout);
int unlocked_aio_get_fd (nbd_handle& h);
unsigned unlocked_aio_get_direction (nbd_handle& h);
int unlocked_set_concurrent_writer (nbd_handle& h, nbd::Closure<nbd_writer_callback>& writer);
int unlocked_concurrent_writer_error (nbd_handle& h, int err);

// Calls still marked `status: pending` in api.yaml fail with ENOTSUP before reaching the core.
// Their bodies, once written, take these signatures (drop the status to declare them here):
// int64_t unlocked_aio_pread (nbd_handle& h, void *buf, size_t count, uint64_t offset,
//                             nbd::Closure<nbd_chunk_callback>& chunk_callback,
//                             nbd::Closure<nbd_completion_callback>& completion_callback,
//                             uint32_t flags);
}  // namespace nbd
