/* libnbd.h: the C interface of mini, a client library for the Network Block Device
 * protocol, compatible with libnbd 1.24.  See libnbd(3).
 *
 * GENERATED from api.yaml by generator/generate.py: DO NOT EDIT.
 */

#ifndef LIBNBD_H
#define LIBNBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define LIBNBD_GCC_VERSION \
    (__GNUC__ * 10000 + __GNUC_MINOR__ * 100 + __GNUC_PATCHLEVEL__)
#endif

#ifndef LIBNBD_ATTRIBUTE_NONNULL
#if defined(__GNUC__) && LIBNBD_GCC_VERSION >= 120000 /* gcc >= 12.0 */
#define LIBNBD_ATTRIBUTE_NONNULL(...) __attribute__((__nonnull__(__VA_ARGS__)))
#else
#define LIBNBD_ATTRIBUTE_NONNULL(...)
#endif
#endif /* ! defined LIBNBD_ATTRIBUTE_NONNULL */

#if defined(__GNUC__) && LIBNBD_GCC_VERSION >= 120000 /* gcc >= 12.0 */
#define LIBNBD_ATTRIBUTE_ALLOC_DEALLOC(fn) \
  __attribute__((__malloc__, __malloc__(fn, 1)))
#else
#define LIBNBD_ATTRIBUTE_ALLOC_DEALLOC(fn)
#endif

struct nbd_handle;
#define LIBNBD_MODE_IDLE                         0
#define LIBNBD_MODE_BUSY                         1
#define LIBNBD_CMD_FLAG_FUA                      0x01U
#define LIBNBD_CMD_FLAG_DF                       0x04U
#define LIBNBD_CMD_FLAG_MASK                     0x05U
#define LIBNBD_STRICT_COMMANDS                   0x01U
#define LIBNBD_STRICT_BOUNDS                     0x04U
#define LIBNBD_STRICT_MASK                       0x05U
#define LIBNBD_READ_DATA                         1
#define LIBNBD_READ_HOLE                         2

extern void nbd_close (struct nbd_handle *h);
#define LIBNBD_HAVE_NBD_CLOSE 1

extern struct nbd_handle *nbd_create (void)
    LIBNBD_ATTRIBUTE_ALLOC_DEALLOC(nbd_close);
#define LIBNBD_HAVE_NBD_CREATE 1

extern int nbd_get_errno (void);
#define LIBNBD_HAVE_NBD_GET_ERRNO 1

/* One extent of a 64-bit block status answer (nbd_extent64_callback): its length in bytes,
 * never more than INT64_MAX, and its status flags, whose meaning depends on the context.
 */
typedef struct {
  uint64_t length;
  uint64_t flags;
} nbd_extent;

/* Callback arguments are passed by value: {callback, user_data, free}.  free, if set, is
 * called exactly once when the library no longer needs user_data.
 */
typedef struct {
  int (*callback) (void *user_data, int *error);
  void *user_data;
  void (*free) (void *user_data);
} nbd_completion_callback;
#define LIBNBD_HAVE_NBD_COMPLETION_CALLBACK 1

typedef struct {
  int (*callback) (void *user_data, const void *subbuf, size_t count,
                   uint64_t offset, unsigned status, int *error);
  void *user_data;
  void (*free) (void *user_data);
} nbd_chunk_callback;
#define LIBNBD_HAVE_NBD_CHUNK_CALLBACK 1

typedef struct {
  int (*callback) (void *user_data, const char *context, const char *msg);
  void *user_data;
  void (*free) (void *user_data);
} nbd_debug_callback;
#define LIBNBD_HAVE_NBD_DEBUG_CALLBACK 1

typedef struct {
  int (*callback) (void *user_data, const char *metacontext, uint64_t offset,
                   uint32_t *entries, size_t nr_entries, int *error);
  void *user_data;
  void (*free) (void *user_data);
} nbd_extent_callback;
#define LIBNBD_HAVE_NBD_EXTENT_CALLBACK 1

typedef struct {
  int (*callback) (void *user_data, const void *buf, size_t len);
  void *user_data;
  void (*free) (void *user_data);
} nbd_writer_callback;
#define LIBNBD_HAVE_NBD_WRITER_CALLBACK 1

typedef struct {
  int (*callback) (void *user_data, const char *metacontext, uint64_t offset,
                   nbd_extent *entries, size_t nr_entries, int *error);
  void *user_data;
  void (*free) (void *user_data);
} nbd_extent64_callback;
#define LIBNBD_HAVE_NBD_EXTENT64_CALLBACK 1

/* NBD_NULL_* stand for "no callback" where a callback argument is optional.  C++ has no
 * compound literals, so it gets a value-initialised struct instead.
 */
#ifdef __cplusplus
#define NBD_NULL_COMPLETION (nbd_completion_callback {})
#else
#define NBD_NULL_COMPLETION ((nbd_completion_callback) { .callback = NULL })
#endif

extern int nbd_set_mode (struct nbd_handle *h, int mode)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_SET_MODE 1

extern int nbd_get_mode (struct nbd_handle *h)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_GET_MODE 1

extern const char *nbd_get_version (struct nbd_handle *h)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_GET_VERSION 1

extern int nbd_pread (struct nbd_handle *h, void *buf, size_t count,
                      uint64_t offset, uint32_t flags)
    LIBNBD_ATTRIBUTE_NONNULL(1,2);
#define LIBNBD_HAVE_NBD_PREAD 1

extern int64_t nbd_aio_pread (struct nbd_handle *h, void *buf, size_t count,
                              uint64_t offset,
                              nbd_chunk_callback chunk_callback,
                              nbd_completion_callback completion_callback,
                              uint32_t flags)
    LIBNBD_ATTRIBUTE_NONNULL(1,2);
#define LIBNBD_HAVE_NBD_AIO_PREAD 1

extern int nbd_set_debug_callback (struct nbd_handle *h,
                                   nbd_debug_callback debug_callback)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_SET_DEBUG_CALLBACK 1

extern int nbd_block_status_64 (struct nbd_handle *h, uint64_t count,
                                uint64_t offset, char **contexts,
                                nbd_extent64_callback extent64_callback)
    LIBNBD_ATTRIBUTE_NONNULL(1,4);
#define LIBNBD_HAVE_NBD_BLOCK_STATUS_64 1

extern char *nbd_get_name (struct nbd_handle *h)
    LIBNBD_ATTRIBUTE_ALLOC_DEALLOC(__builtin_free)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_GET_NAME 1

extern uint64_t nbd_stats_bytes_sent (struct nbd_handle *h)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_STATS_BYTES_SENT 1

extern int nbd_connect_vsock (struct nbd_handle *h, uint32_t cid,
                              uint32_t port)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_CONNECT_VSOCK 1

extern int nbd_set_debug (struct nbd_handle *h, bool debug)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_SET_DEBUG 1

extern int nbd_get_debug (struct nbd_handle *h)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_GET_DEBUG 1

extern int nbd_set_handle_name (struct nbd_handle *h, const char *handle_name)
    LIBNBD_ATTRIBUTE_NONNULL(1,2);
#define LIBNBD_HAVE_NBD_SET_HANDLE_NAME 1

extern int nbd_set_strict_mode (struct nbd_handle *h, uint32_t flags)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_SET_STRICT_MODE 1

extern uint32_t nbd_get_strict_mode (struct nbd_handle *h)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_GET_STRICT_MODE 1

extern uintptr_t nbd_set_private_data (struct nbd_handle *h,
                                       uintptr_t private_data)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_SET_PRIVATE_DATA 1

extern int nbd_connect_unix (struct nbd_handle *h, const char *unixsocket)
    LIBNBD_ATTRIBUTE_NONNULL(1,2);
#define LIBNBD_HAVE_NBD_CONNECT_UNIX 1

extern int nbd_connect_socket (struct nbd_handle *h, int sock)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_CONNECT_SOCKET 1

extern int nbd_aio_connect (struct nbd_handle *h, const struct sockaddr *addr,
                            socklen_t addrlen)
    LIBNBD_ATTRIBUTE_NONNULL(1,2);
#define LIBNBD_HAVE_NBD_AIO_CONNECT 1

extern const char *nbd_get_protocol (struct nbd_handle *h)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_GET_PROTOCOL 1

extern int64_t nbd_get_size (struct nbd_handle *h)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_GET_SIZE 1

extern ssize_t nbd_get_nr_meta_contexts (struct nbd_handle *h)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_GET_NR_META_CONTEXTS 1

extern char *nbd_get_meta_context (struct nbd_handle *h, size_t i)
    LIBNBD_ATTRIBUTE_ALLOC_DEALLOC(__builtin_free)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_GET_META_CONTEXT 1

extern int nbd_pwrite (struct nbd_handle *h, const void *buf, size_t count,
                       uint64_t offset, uint32_t flags)
    LIBNBD_ATTRIBUTE_NONNULL(1,2);
#define LIBNBD_HAVE_NBD_PWRITE 1

extern int64_t nbd_aio_pwrite (struct nbd_handle *h, const void *buf,
                               size_t count, uint64_t offset,
                               nbd_completion_callback completion_callback,
                               uint32_t flags)
    LIBNBD_ATTRIBUTE_NONNULL(1,2);
#define LIBNBD_HAVE_NBD_AIO_PWRITE 1

extern int nbd_poll (struct nbd_handle *h, int timeout)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_POLL 1

extern int nbd_aio_get_fd (struct nbd_handle *h)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_AIO_GET_FD 1

extern unsigned nbd_aio_get_direction (struct nbd_handle *h)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_AIO_GET_DIRECTION 1

extern int nbd_set_concurrent_writer (struct nbd_handle *h,
                                      nbd_writer_callback writer)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_SET_CONCURRENT_WRITER 1

extern int nbd_concurrent_writer_error (struct nbd_handle *h, int err)
    LIBNBD_ATTRIBUTE_NONNULL(1);
#define LIBNBD_HAVE_NBD_CONCURRENT_WRITER_ERROR 1

/* The "base" metadata namespace and its contexts. */
#define LIBNBD_NAMESPACE_BASE "base:"
#define LIBNBD_CONTEXT_BASE_ALLOCATION "base:allocation"
#define LIBNBD_CONTEXT_BASE_DIRTY_BITMAP "base:dirty-bitmap:"
/* Extent flags of "base:allocation". */
#define LIBNBD_STATE_HOLE                     1

#ifdef __cplusplus
}
#endif

#endif /* LIBNBD_H */
