/* libnbd_h.c: libnbd.h compiles on its own (built as C99, C11 and C++20 by ctest). */
#include <libnbd.h>

int compile_check (void);

int
compile_check (void)
{
#ifndef __cplusplus
  nbd_completion_callback none = NBD_NULL_COMPLETION;
  return (int) LIBNBD_CMD_FLAG_MASK + (none.callback == NULL) + LIBNBD_STATE_HOLE;
#else
  nbd_completion_callback none = NBD_NULL_COMPLETION;
  return (int) LIBNBD_CMD_FLAG_MASK + (none.callback == nullptr) + LIBNBD_STATE_HOLE;
#endif
}
