// api.cpp: the C entry points of libnbd.so.0, one per call in api.yaml.
// GENERATED from api.yaml by generator/generate.py: DO NOT EDIT.
// Each entry point is the single checkpoint in front of the core: error context, lock, debug trace,
// read buffers zeroed, state check, pointer/enum/flag checks, core call, leftover closures freed,
// public state published, unlock.  No exception crosses it.  Calls that take no lock (locked:
// false) print no trace: the debug settings they would read belong to the lock holder.

// The header's nonnull attributes would let the compiler delete our NULL checks.
#define LIBNBD_ATTRIBUTE_NONNULL(...)

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <new>

#include "libnbd.h"
#include "api_support.hpp"
#include "handle.hpp"
#include "unlocked.hpp"

#define NBD_API extern "C" __attribute__((visibility("default")))

NBD_API void nbd_close (struct nbd_handle *h)
{
nbd::unlocked_close(h);
}

NBD_API int nbd_set_mode (struct nbd_handle *h, int mode)
{
  nbd::ApiScope scope{"nbd_set_mode"};
  nbd::HandleLock lock{h};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: mode=%d", mode);
    bool ok = nbd::check_state(*h, 1, "newly created");
    if (ok && mode != 0 && mode != 1)
      ok = nbd::fail_enum("mode", mode);
    if (ok)
      ret = nbd::unlocked_set_mode(*h, mode);
    if (h->debug_enabled()) {
      if (ret != -1)
        nbd::debug(*h, "leave: ret=%d", ret);
      else
        nbd::debug_leave_error(*h);
    }
  } catch (const std::bad_alloc&) {
    nbd::set_error(ENOMEM, "out of memory");
    ret = -1;
  }
  return ret;
}

NBD_API int nbd_get_mode (struct nbd_handle *h)
{
  nbd::HandleLock lock{h};
  return nbd::unlocked_get_mode(*h);
}

NBD_API int nbd_pread (struct nbd_handle *h, void *buf, size_t count, uint64_t offset, uint32_t flags)
{
  nbd::ApiScope scope{"nbd_pread"};
  nbd::HandleLock lock{h};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: buf=<buf> count=%zu offset=%" PRIu64 " flags=0x%" PRIx32 "", count, offset, flags);
    bool ok = nbd::check_state(*h, 8, "connected with the server");
    if (ok && buf == nullptr)
      ok = nbd::fail_null("buf");
    if (ok && (flags & ~0x4U) != 0 && ((h->strict & LIBNBD_STRICT_FLAGS) != 0 || flags > 0xffffU))
      ok = nbd::fail_flags("flags", flags);
    if (ok)
      ret = nbd::unlocked_pread(*h, buf, count, offset, flags);
    if (h->debug_enabled()) {
      if (ret != -1)
        nbd::debug(*h, "leave: ret=%d", ret);
      else
        nbd::debug_leave_error(*h);
    }
  } catch (const std::bad_alloc&) {
    nbd::set_error(ENOMEM, "out of memory");
    ret = -1;
  }
  // A read the call refused leaves no stale memory in the buffer; one the server failed has
  // been zeroed by the core (a read that succeeds writes every byte, so nothing is zeroed
  // up front).
  if (ret == -1 && h->pread_initialize && buf != nullptr)
    std::memset(buf, 0, count);
  return ret;
}

NBD_API int64_t nbd_aio_pread (struct nbd_handle *h, void *buf, size_t count, uint64_t offset,
                       nbd_chunk_callback chunk_callback,
                       nbd_completion_callback completion_callback, uint32_t flags)
{
  nbd::ApiScope scope{"nbd_aio_pread"};
  nbd::HandleLock lock{h};
  nbd::Closure<nbd_chunk_callback> chunk_callback_owned{chunk_callback};
  nbd::Closure<nbd_completion_callback> completion_callback_owned{completion_callback};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int64_t ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: buf=<buf> count=%zu offset=%" PRIu64 " chunk_callback=<fun> completion_callback=<fun> flags=0x%" PRIx32 "", count, offset, flags);
    bool ok = nbd::check_state(*h, 8, "connected with the server");
    if (ok && buf == nullptr)
      ok = nbd::fail_null("buf");
    if (ok && chunk_callback_owned.empty())
      ok = nbd::fail_null("chunk_callback");
    if (ok && (flags & ~0x5U) != 0)
      ok = nbd::fail_flags("flags", flags);
    if (ok)
      nbd::not_implemented();
    if (h->debug_enabled()) {
      if (ret != -1)
        nbd::debug(*h, "leave: ret=%" PRIi64 "", ret);
      else
        nbd::debug_leave_error(*h);
    }
  } catch (const std::bad_alloc&) {
    nbd::set_error(ENOMEM, "out of memory");
    ret = -1;
  }
  // A read the call refused leaves no stale memory in the buffer; one the server failed has
  // been zeroed by the core (a read that succeeds writes every byte, so nothing is zeroed
  // up front).
  if (ret == -1 && h->pread_initialize && buf != nullptr)
    std::memset(buf, 0, count);
  chunk_callback_owned.reset();
  completion_callback_owned.reset();
  return ret;
}

NBD_API int nbd_set_debug_callback (struct nbd_handle *h, nbd_debug_callback debug_callback)
{
  nbd::ApiScope scope{"nbd_set_debug_callback"};
  nbd::HandleLock lock{h};
  nbd::Closure<nbd_debug_callback> debug_callback_owned{debug_callback};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: debug_callback=<fun>");
    bool ok = true;
    if (ok && debug_callback_owned.empty())
      ok = nbd::fail_null("debug_callback");
    if (ok)
      ret = nbd::unlocked_set_debug_callback(*h, debug_callback_owned);
    if (h->debug_enabled()) {
      if (ret != -1)
        nbd::debug(*h, "leave: ret=%d", ret);
      else
        nbd::debug_leave_error(*h);
    }
  } catch (const std::bad_alloc&) {
    nbd::set_error(ENOMEM, "out of memory");
    ret = -1;
  }
  debug_callback_owned.reset();
  return ret;
}

NBD_API int nbd_block_status_64 (struct nbd_handle *h, uint64_t count, uint64_t offset, char **contexts,
                         nbd_extent64_callback extent64_callback)
{
  nbd::ApiScope scope{"nbd_block_status_64"};
  nbd::HandleLock lock{h};
  nbd::Closure<nbd_extent64_callback> extent64_callback_owned{extent64_callback};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: count=%" PRIu64 " offset=%" PRIu64 " contexts=<list> extent64_callback=<fun>", count, offset);
    bool ok = nbd::check_state(*h, 8, "connected with the server");
    if (ok && contexts == nullptr)
      ok = nbd::fail_null("contexts");
    if (ok && extent64_callback_owned.empty())
      ok = nbd::fail_null("extent64_callback");
    if (ok)
      ret = nbd::unlocked_block_status_64(*h, count, offset, contexts, extent64_callback_owned);
    if (h->debug_enabled()) {
      if (ret != -1)
        nbd::debug(*h, "leave: ret=%d", ret);
      else
        nbd::debug_leave_error(*h);
    }
  } catch (const std::bad_alloc&) {
    nbd::set_error(ENOMEM, "out of memory");
    ret = -1;
  }
  extent64_callback_owned.reset();
  return ret;
}

NBD_API char * nbd_get_name (struct nbd_handle *h)
{
  nbd::ApiScope scope{"nbd_get_name"};
  if (h == nullptr)
    return nbd::fail_null_handle(), nullptr;
  char * ret = nullptr;
  try {
    bool ok = true;
    if (ok)
      ret = nbd::unlocked_get_name(*h);
  } catch (const std::bad_alloc&) {
    nbd::set_error(ENOMEM, "out of memory");
    ret = nullptr;
  }
  return ret;
}

NBD_API uint64_t nbd_stats_bytes_sent (struct nbd_handle *h)
{
  nbd::HandleLock lock{h};
  return nbd::unlocked_stats_bytes_sent(*h);
}

NBD_API int nbd_connect_vsock (struct nbd_handle *h, uint32_t cid, uint32_t port)
{
  nbd::ApiScope scope{"nbd_connect_vsock"};
  nbd::HandleLock lock{h};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: cid=%" PRIu32 " port=%" PRIu32 "", cid, port);
    bool ok = nbd::check_state(*h, 1, "newly created");
    if (ok)
      ret = nbd::unlocked_connect_vsock(*h, cid, port);
    if (h->debug_enabled()) {
      if (ret != -1)
        nbd::debug(*h, "leave: ret=%d", ret);
      else
        nbd::debug_leave_error(*h);
    }
  } catch (const std::bad_alloc&) {
    nbd::set_error(ENOMEM, "out of memory");
    ret = -1;
  }
  return ret;
}
