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

NBD_API struct nbd_handle * nbd_create (void)
{
  nbd::ApiScope scope{"nbd_create"};
  try {
    return nbd::unlocked_create();
  } catch (const std::bad_alloc&) {
    nbd::set_error(ENOMEM, "out of memory");
    return nullptr;
  }
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

NBD_API int nbd_get_errno (void)
{
return nbd::unlocked_get_errno();
}

NBD_API const char * nbd_get_version (struct nbd_handle *h)
{
  return nbd::unlocked_get_version(*h);
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
    if (ok && (flags & ~0x0U) != 0 && ((h->strict & LIBNBD_STRICT_FLAGS) != 0 || flags > 0xffffU))
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

NBD_API int nbd_set_debug (struct nbd_handle *h, bool debug)
{
  nbd::ApiScope scope{"nbd_set_debug"};
  nbd::HandleLock lock{h};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: debug=%s", debug ? "true" : "false");
    bool ok = true;
    if (ok)
      ret = nbd::unlocked_set_debug(*h, debug);
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

NBD_API int nbd_get_debug (struct nbd_handle *h)
{
  nbd::HandleLock lock{h};
  return nbd::unlocked_get_debug(*h);
}

NBD_API int nbd_set_handle_name (struct nbd_handle *h, const char *handle_name)
{
  nbd::ApiScope scope{"nbd_set_handle_name"};
  nbd::HandleLock lock{h};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: handle_name=\"%s\"", nbd::printable(handle_name));
    bool ok = true;
    if (ok && handle_name == nullptr)
      ok = nbd::fail_null("handle_name");
    if (ok)
      ret = nbd::unlocked_set_handle_name(*h, handle_name);
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

NBD_API int nbd_set_strict_mode (struct nbd_handle *h, uint32_t flags)
{
  nbd::ApiScope scope{"nbd_set_strict_mode"};
  nbd::HandleLock lock{h};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: flags=0x%" PRIx32 "", flags);
    bool ok = true;
    if (ok && (flags & ~0x5U) != 0)
      ok = nbd::fail_flags("flags", flags);
    if (ok)
      ret = nbd::unlocked_set_strict_mode(*h, flags);
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

NBD_API uint32_t nbd_get_strict_mode (struct nbd_handle *h)
{
  nbd::HandleLock lock{h};
  return nbd::unlocked_get_strict_mode(*h);
}

NBD_API uintptr_t nbd_set_private_data (struct nbd_handle *h, uintptr_t private_data)
{
  return nbd::unlocked_set_private_data(*h, private_data);
}

NBD_API int nbd_connect_unix (struct nbd_handle *h, const char *unixsocket)
{
  nbd::ApiScope scope{"nbd_connect_unix"};
  nbd::HandleLock lock{h};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: unixsocket=\"%s\"", nbd::printable(unixsocket));
    bool ok = nbd::check_state(*h, 1, "newly created");
    if (ok && unixsocket == nullptr)
      ok = nbd::fail_null("unixsocket");
    if (ok)
      ret = nbd::unlocked_connect_unix(*h, unixsocket);
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

NBD_API int nbd_connect_socket (struct nbd_handle *h, int sock)
{
  nbd::ApiScope scope{"nbd_connect_socket"};
  nbd::HandleLock lock{h};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: sock=%d", sock);
    bool ok = nbd::check_state(*h, 1, "newly created");
    if (ok)
      ret = nbd::unlocked_connect_socket(*h, sock);
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

NBD_API int nbd_aio_connect (struct nbd_handle *h, const struct sockaddr *addr, socklen_t addrlen)
{
  nbd::ApiScope scope{"nbd_aio_connect"};
  nbd::HandleLock lock{h};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: addr=<sockaddr> addrlen=%u", static_cast<unsigned>(addrlen));
    bool ok = nbd::check_state(*h, 1, "newly created");
    if (ok && addr == nullptr)
      ok = nbd::fail_null("addr");
    if (ok)
      ret = nbd::unlocked_aio_connect(*h, addr, addrlen);
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

NBD_API const char * nbd_get_protocol (struct nbd_handle *h)
{
  nbd::ApiScope scope{"nbd_get_protocol"};
  nbd::HandleLock lock{h};
  if (h == nullptr)
    return nbd::fail_null_handle(), nullptr;
  const char * ret = nullptr;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: ");
    bool ok = nbd::check_state(*h, 8, "connected with the server");
    if (ok)
      ret = nbd::unlocked_get_protocol(*h);
    if (h->debug_enabled()) {
      if (ret != nullptr)
        nbd::debug(*h, "leave: ret=\"%s\"", nbd::printable(ret));
      else
        nbd::debug_leave_error(*h);
    }
  } catch (const std::bad_alloc&) {
    nbd::set_error(ENOMEM, "out of memory");
    ret = nullptr;
  }
  return ret;
}

NBD_API int64_t nbd_get_size (struct nbd_handle *h)
{
  nbd::ApiScope scope{"nbd_get_size"};
  nbd::HandleLock lock{h};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int64_t ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: ");
    bool ok = nbd::check_state(*h, 8, "connected with the server");
    if (ok)
      ret = nbd::unlocked_get_size(*h);
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
  return ret;
}

NBD_API ssize_t nbd_get_nr_meta_contexts (struct nbd_handle *h)
{
  nbd::ApiScope scope{"nbd_get_nr_meta_contexts"};
  nbd::HandleLock lock{h};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  ssize_t ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: ");
    bool ok = true;
    if (ok)
      ret = nbd::unlocked_get_nr_meta_contexts(*h);
    if (h->debug_enabled()) {
      if (ret != -1)
        nbd::debug(*h, "leave: ret=%zd", ret);
      else
        nbd::debug_leave_error(*h);
    }
  } catch (const std::bad_alloc&) {
    nbd::set_error(ENOMEM, "out of memory");
    ret = -1;
  }
  return ret;
}

NBD_API char * nbd_get_meta_context (struct nbd_handle *h, size_t i)
{
  nbd::ApiScope scope{"nbd_get_meta_context"};
  nbd::HandleLock lock{h};
  if (h == nullptr)
    return nbd::fail_null_handle(), nullptr;
  char * ret = nullptr;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: i=%zu", i);
    bool ok = true;
    if (ok)
      ret = nbd::unlocked_get_meta_context(*h, i);
    if (h->debug_enabled()) {
      if (ret != nullptr)
        nbd::debug(*h, "leave: ret=\"%s\"", nbd::printable(ret));
      else
        nbd::debug_leave_error(*h);
    }
  } catch (const std::bad_alloc&) {
    nbd::set_error(ENOMEM, "out of memory");
    ret = nullptr;
  }
  return ret;
}

NBD_API int nbd_pwrite (struct nbd_handle *h, const void *buf, size_t count, uint64_t offset,
                uint32_t flags)
{
  nbd::ApiScope scope{"nbd_pwrite"};
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
    if (ok && (flags & ~0x1U) != 0 && ((h->strict & LIBNBD_STRICT_FLAGS) != 0 || flags > 0xffffU))
      ok = nbd::fail_flags("flags", flags);
    if (ok)
      ret = nbd::unlocked_pwrite(*h, buf, count, offset, flags);
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

NBD_API int64_t nbd_aio_pwrite (struct nbd_handle *h, const void *buf, size_t count, uint64_t offset,
                        nbd_completion_callback completion_callback, uint32_t flags)
{
  nbd::ApiScope scope{"nbd_aio_pwrite"};
  nbd::HandleLock lock{h};
  nbd::Closure<nbd_completion_callback> completion_callback_owned{completion_callback};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int64_t ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: buf=<buf> count=%zu offset=%" PRIu64 " completion_callback=<fun> flags=0x%" PRIx32 "", count, offset, flags);
    bool ok = nbd::check_state(*h, 8, "connected with the server");
    if (ok && buf == nullptr)
      ok = nbd::fail_null("buf");
    if (ok && (flags & ~0x1U) != 0 && ((h->strict & LIBNBD_STRICT_FLAGS) != 0 || flags > 0xffffU))
      ok = nbd::fail_flags("flags", flags);
    if (ok)
      ret = nbd::unlocked_aio_pwrite(*h, buf, count, offset, completion_callback_owned, flags);
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
  completion_callback_owned.reset();
  return ret;
}

NBD_API int nbd_poll (struct nbd_handle *h, int timeout)
{
  nbd::ApiScope scope{"nbd_poll"};
  nbd::HandleLock lock{h};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: timeout=%d", timeout);
    bool ok = true;
    if (ok)
      ret = nbd::unlocked_poll(*h, timeout);
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

NBD_API int nbd_aio_get_fd (struct nbd_handle *h)
{
  nbd::ApiScope scope{"nbd_aio_get_fd"};
  nbd::HandleLock lock{h};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: ");
    bool ok = true;
    if (ok)
      ret = nbd::unlocked_aio_get_fd(*h);
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

NBD_API unsigned nbd_aio_get_direction (struct nbd_handle *h)
{
  return nbd::unlocked_aio_get_direction(*h);
}

NBD_API int nbd_set_concurrent_writer (struct nbd_handle *h, nbd_writer_callback writer)
{
  nbd::ApiScope scope{"nbd_set_concurrent_writer"};
  nbd::HandleLock lock{h};
  nbd::Closure<nbd_writer_callback> writer_owned{writer};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int ret = -1;
  try {
    if (h->debug_enabled())
      nbd::debug(*h, "enter: writer=<fun>");
    bool ok = nbd::check_state(*h, 9, "newly created, or connected with the server");
    if (ok && !writer_owned.has_callback())
      ok = nbd::fail_null("writer");
    if (ok)
      ret = nbd::unlocked_set_concurrent_writer(*h, writer_owned);
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
  writer_owned.reset();
  return ret;
}

NBD_API int nbd_concurrent_writer_error (struct nbd_handle *h, int err)
{
  nbd::ApiScope scope{"nbd_concurrent_writer_error"};
  if (h == nullptr)
    return nbd::fail_null_handle(), -1;
  int ret = -1;
  try {
    bool ok = true;
    if (ok)
      ret = nbd::unlocked_concurrent_writer_error(*h, err);
  } catch (const std::bad_alloc&) {
    nbd::set_error(ENOMEM, "out of memory");
    ret = -1;
  }
  return ret;
}
