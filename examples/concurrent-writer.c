/* concurrent-writer.c: copy a local file into an NBD export through a concurrent writer
 * thread, then read it back and compare.
 *
 * Usage: concurrent-writer FILE URI
 *   e.g. concurrent-writer disk.img "nbd+unix:///?socket=/tmp/sock"
 *
 * The four steps of a concurrent writer, as the application writes them:
 *   1. a ring of buffers that the writer callback fills (writer_callback),
 *   2. a thread that empties the ring into the socket (writer_thread),
 *   3. errors from that thread reported with nbd_concurrent_writer_error,
 *   4. a main loop that only ever waits for the socket to become readable.
 * (nbd_start_concurrent_writer does all of this in one call; this program shows the parts.)
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <libnbd.h>

#define CHUNK (256 * 1024)
#define MAX_IN_FLIGHT 64

/* Step 1: the ring.  The callback copies each buffer in; the thread takes them out in order. */
struct item {
  void *data;
  size_t len;
};

struct writer {
  struct nbd_handle *nbd;
  int fd;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct item *ring;
  size_t cap, head, count;
  bool stopping;
  pthread_t thread;
};

/* Runs with the handle locked: it must not block or call libnbd on this handle. */
static int
writer_callback (void *user_data, const void *buf, size_t len)
{
  struct writer *w = user_data;
  struct item it = { malloc (len), len };

  if (it.data == NULL)
    return -1;                  /* errno is ENOMEM: the send fails */
  memcpy (it.data, buf, len);
  pthread_mutex_lock (&w->lock);
  if (w->count == w->cap) {     /* grow, keeping the order */
    size_t newcap = w->cap ? 2 * w->cap : 64, i;
    struct item *r = malloc (newcap * sizeof *r);
    if (r == NULL) {
      pthread_mutex_unlock (&w->lock);
      free (it.data);
      errno = ENOMEM;
      return -1;
    }
    for (i = 0; i < w->count; i++)
      r[i] = w->ring[(w->head + i) % w->cap];
    free (w->ring);
    w->ring = r;
    w->cap = newcap;
    w->head = 0;
  }
  w->ring[(w->head + w->count) % w->cap] = it;
  w->count++;
  pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->lock);
  return 0;
}

/* Writes all of buf to the non-blocking socket, waiting for room when it is full. */
static int
send_all (int fd, const char *buf, size_t len)
{
  while (len > 0) {
    ssize_t r = send (fd, buf, len, MSG_NOSIGNAL);
    if (r >= 0) {
      buf += r;
      len -= (size_t) r;
    }
    else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      struct pollfd pfd = { .fd = fd, .events = POLLOUT };
      if (poll (&pfd, 1, -1) == -1 && errno != EINTR)
        return -1;
    }
    else if (errno != EINTR)
      return -1;
  }
  return 0;
}

/* Step 2: the thread.  Step 3: its failures go to nbd_concurrent_writer_error, which is safe
 * to call without the handle's lock; the handle then dies and fails every command.
 */
static void *
writer_thread (void *arg)
{
  struct writer *w = arg;
  bool failed = false;

  for (;;) {
    struct item it;

    pthread_mutex_lock (&w->lock);
    while (w->count == 0 && !w->stopping)
      pthread_cond_wait (&w->cond, &w->lock);
    if (w->count == 0) {        /* stopping, and nothing left */
      pthread_mutex_unlock (&w->lock);
      return NULL;
    }
    it = w->ring[w->head];
    w->head = (w->head + 1) % w->cap;
    w->count--;
    pthread_mutex_unlock (&w->lock);

    if (!failed && send_all (w->fd, it.data, it.len) == -1) {
      failed = true;
      nbd_concurrent_writer_error (w->nbd, errno);
    }
    free (it.data);
  }
}

/* The closure's free function: nbd_close calls it once, before it closes the socket. */
static void
writer_free (void *user_data)
{
  struct writer *w = user_data;
  size_t i;

  pthread_mutex_lock (&w->lock);
  w->stopping = true;
  pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->lock);
  pthread_join (w->thread, NULL);
  for (i = 0; i < w->count; i++)
    free (w->ring[(w->head + i) % w->cap].data);
  free (w->ring);
  pthread_cond_destroy (&w->cond);
  pthread_mutex_destroy (&w->lock);
  free (w);
}

static int
start_writer (struct nbd_handle *nbd)
{
  struct writer *w = calloc (1, sizeof *w);
  nbd_writer_callback cb = { .callback = writer_callback, .free = writer_free };

  if (w == NULL)
    return -1;
  w->nbd = nbd;
  w->fd = nbd_aio_get_fd (nbd);
  pthread_mutex_init (&w->lock, NULL);
  pthread_cond_init (&w->cond, NULL);
  if (w->fd == -1 || pthread_create (&w->thread, NULL, writer_thread, w) != 0) {
    pthread_cond_destroy (&w->cond);
    pthread_mutex_destroy (&w->lock);
    free (w);
    return -1;
  }
  cb.user_data = w;
  return nbd_set_concurrent_writer (nbd, cb); /* on failure writer_free runs */
}

/* Step 4: the main loop.  With the writer installed sending never blocks, so the handle
 * only waits to read; a WRITE direction (left over from before the writer) is answered with
 * nbd_aio_notify_write straight away.
 */
static int
run_once (struct nbd_handle *nbd)
{
  struct pollfd pfd = { .fd = nbd_aio_get_fd (nbd), .events = POLLIN };
  unsigned dir = nbd_aio_get_direction (nbd);

  if (dir & LIBNBD_AIO_DIRECTION_WRITE)
    return nbd_aio_notify_write (nbd);
  if (poll (&pfd, 1, -1) == -1)
    return errno == EINTR ? 0 : -1;
  if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
    return nbd_aio_notify_read (nbd);
  return 0;
}

/* Completion callback: keeps the first error any command saw. */
static int
completed (void *user_data, int *error)
{
  int *first_error = user_data;
  if (*error != 0 && *first_error == 0)
    *first_error = *error;
  return 1;                     /* retire the command here */
}

/* Issues one aio command per chunk of [0, size), at most MAX_IN_FLIGHT at a time, and waits
 * for all of them.
 */
static int
copy_all (struct nbd_handle *nbd, char *buf, uint64_t size, bool write)
{
  int first_error = 0;
  uint64_t off = 0;

  while (off < size || nbd_aio_in_flight (nbd) > 0) {
    while (off < size && nbd_aio_in_flight (nbd) < MAX_IN_FLIGHT) {
      size_t n = size - off < CHUNK ? size - off : CHUNK;
      nbd_completion_callback cb = { .callback = completed, .user_data = &first_error };
      int64_t c = write ? nbd_aio_pwrite (nbd, buf + off, n, off, cb, 0)
                        : nbd_aio_pread (nbd, buf + off, n, off, cb, 0);
      if (c == -1)
        return -1;
      off += n;
    }
    if (run_once (nbd) == -1)
      return -1;
  }
  if (first_error != 0) {
    fprintf (stderr, "a command failed: %s\n", strerror (first_error));
    return -1;
  }
  return 0;
}

static char *
read_file (const char *path, uint64_t *size)
{
  FILE *fp = fopen (path, "rb");
  struct stat st;
  char *buf;

  if (fp == NULL || fstat (fileno (fp), &st) == -1) {
    perror (path);
    if (fp)
      fclose (fp);
    return NULL;
  }
  buf = malloc (st.st_size ? (size_t) st.st_size : 1);
  if (buf == NULL || fread (buf, 1, (size_t) st.st_size, fp) != (size_t) st.st_size) {
    perror (path);
    free (buf);
    fclose (fp);
    return NULL;
  }
  fclose (fp);
  *size = (uint64_t) st.st_size;
  return buf;
}

int
main (int argc, char *argv[])
{
  struct nbd_handle *nbd;
  char *data, *back;
  uint64_t size;
  int64_t export_size;
  int ret = 1;

  if (argc != 3) {
    fprintf (stderr, "usage: %s FILE URI\n", argv[0]);
    return 2;
  }
  data = read_file (argv[1], &size);
  if (data == NULL)
    return 1;
  back = malloc (size ? size : 1);
  nbd = nbd_create ();
  if (back == NULL || nbd == NULL) {
    fprintf (stderr, "out of memory\n");
    return 1;
  }
  if (nbd_connect_uri (nbd, argv[2]) == -1 || (export_size = nbd_get_size (nbd)) == -1)
    goto error;
  if ((uint64_t) export_size < size) {
    fprintf (stderr, "%s: export is %" PRIi64 " bytes, file is %" PRIu64 "\n",
             argv[0], export_size, size);
    goto out;
  }
  if (start_writer (nbd) == -1 ||
      copy_all (nbd, data, size, true) == -1 ||
      copy_all (nbd, back, size, false) == -1)
    goto error;
  if (memcmp (data, back, size) != 0) {
    fprintf (stderr, "%s: data read back differs from %s\n", argv[0], argv[1]);
    goto out;
  }
  if (nbd_shutdown (nbd, 0) == -1)
    goto error;
  printf ("copied and verified %" PRIu64 " bytes through the concurrent writer\n", size);
  ret = 0;
  goto out;

 error:
  fprintf (stderr, "%s: %s\n", argv[0], nbd_get_error () ? nbd_get_error () : "failed");
 out:
  nbd_close (nbd);              /* stops the writer thread through writer_free */
  free (data);
  free (back);
  return ret;
}
