/* libnbd_h.c: libnbd.h compiles on its own (built as C99, C11 and C++20 by ctest), and code
 * written for libnbd 1.18's 64-bit block status (nbd_extent, nbd_extent64_callback) with it.
 */
#include <libnbd.h>

int compile_check (void);
int count_data (void *user_data, const char *metacontext, uint64_t offset,
                nbd_extent *entries, size_t nr_entries, int *error);

int
count_data (void *user_data, const char *metacontext, uint64_t offset,
            nbd_extent *entries, size_t nr_entries, int *error)
{
  uint64_t *data = (uint64_t *) user_data;
  size_t i;

  (void) metacontext;
  (void) offset;
  (void) error;
  for (i = 0; i < nr_entries; ++i)
    if ((entries[i].flags & LIBNBD_STATE_HOLE) == 0)
      *data += entries[i].length;
  return 0;
}

int
compile_check (void)
{
  nbd_extent64_callback extent64 = { count_data, 0, 0 };
  uint64_t (*stats) (struct nbd_handle *) = nbd_stats_bytes_sent;
  int (*poll2) (struct nbd_handle *, int, int) = nbd_poll2;
  int (*bs64) (struct nbd_handle *, uint64_t, uint64_t, nbd_extent64_callback,
               uint32_t) = nbd_block_status_64;
  nbd_completion_callback none = NBD_NULL_COMPLETION;
#ifndef __cplusplus
  return (int) LIBNBD_CMD_FLAG_MASK + (none.callback == NULL) + LIBNBD_STATE_HOLE +
         (extent64.callback != NULL) + (stats != NULL) + (poll2 != NULL) + (bs64 != NULL) +
         LIBNBD_SIZE_PAYLOAD + (int) LIBNBD_STRICT_AUTO_FLAG + LIBNBD_STATE_DIRTY;
#else
  return (int) LIBNBD_CMD_FLAG_MASK + (none.callback == nullptr) + LIBNBD_STATE_HOLE +
         (extent64.callback != nullptr) + (stats != nullptr) + (poll2 != nullptr) +
         (bs64 != nullptr) + LIBNBD_SIZE_PAYLOAD + (int) LIBNBD_STRICT_AUTO_FLAG +
         LIBNBD_STATE_DIRTY;
#endif
}
