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
char * unlocked_get_name (nbd_handle& h);
}  // namespace nbd
