/* nbdbench.c: one NBD workload through the libnbd C ABI, timed.  The same binary runs on our
 * libnbd.so.0 and on Debian's (chosen with LD_LIBRARY_PATH); nbdpp's extensions are looked up
 * at run time, so the binary needs nothing beyond libnbd 1.14.
 *
 * Usage: nbdbench --uri URI --op read|write|mixed|randread|randwrite|randmixed
 *                 [--bs BYTES] [--depth N] [--bytes TOTAL | --requests N]
 *                 [--connections N] [--writer] [--span BYTES]
 * Prints one JSON object: the library, the workload, bytes moved, wall and CPU seconds.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <libnbd.h>

struct options {
  const char *uri;
  const char *op;
  uint64_t bs, span, total_requests;
  unsigned depth, connections;
  bool writer;
};

struct conn {
  struct nbd_handle *nbd;
  char **bufs;                  /* one buffer per slot */
  bool *busy;
  uint64_t issued;              /* requests issued on this connection */
};

struct slot_ctx {
  bool *busy;
  int *error;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
next_random (void)
{
  /* xorshift64*: cheap and the same sequence on every library. */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ULL;
}

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
cpu_seconds (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void
die (const char *what)
{
  fprintf (stderr, "nbdbench: %s: %s\n", what, nbd_get_error () ? nbd_get_error () : strerror (errno));
  exit (1);
}

static int
completed (void *user_data, int *error)
{
  struct slot_ctx *c = user_data;
  if (*error != 0 && *c->error == 0)
    *c->error = *error;
  *c->busy = false;
  return 1;
}

/* Whether request number n of this workload is a write, and at which offset. */
static bool
is_write (const struct options *o, uint64_t n)
{
  if (strcmp (o->op, "write") == 0 || strcmp (o->op, "randwrite") == 0)
    return true;
  if (strcmp (o->op, "mixed") == 0 || strcmp (o->op, "randmixed") == 0)
    return n % 2 == 0;
  return false;
}

static uint64_t
offset_of (const struct options *o, uint64_t n)
{
  uint64_t blocks = o->span / o->bs;
  if (strncmp (o->op, "rand", 4) == 0)
    return (next_random () % blocks) * o->bs;
  return (n % blocks) * o->bs;
}

/* A byte count with an optional K, M or G suffix (powers of 1024). */
static uint64_t
parse_size (const char *arg)
{
  char *end;
  uint64_t v = strtoull (arg, &end, 0);
  switch (*end) {
  case 'K': case 'k': return v << 10;
  case 'M': case 'm': return v << 20;
  case 'G': case 'g': return v << 30;
  case '\0': return v;
  default:
    fprintf (stderr, "nbdbench: bad size: %s\n", arg);
    exit (2);
  }
}

static void
usage (void)
{
  fprintf (stderr,
           "usage: nbdbench --uri URI --op read|write|mixed|randread|randwrite|randmixed\n"
           "                [--bs BYTES] [--depth N] [--bytes TOTAL | --requests N]\n"
           "                [--connections N] [--writer] [--span BYTES]\n");
  exit (2);
}

static void
parse (int argc, char *argv[], struct options *o)
{
  static const struct option longopts[] = {
    { "uri", required_argument, NULL, 'u' },
    { "op", required_argument, NULL, 'o' },
    { "bs", required_argument, NULL, 'b' },
    { "depth", required_argument, NULL, 'd' },
    { "bytes", required_argument, NULL, 'B' },
    { "requests", required_argument, NULL, 'r' },
    { "connections", required_argument, NULL, 'c' },
    { "span", required_argument, NULL, 's' },
    { "writer", no_argument, NULL, 'w' },
    { NULL, 0, NULL, 0 },
  };
  uint64_t bytes = 0;
  int c;

  *o = (struct options) { .op = "read", .bs = 262144, .depth = 16, .connections = 1 };
  while ((c = getopt_long (argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'u': o->uri = optarg; break;
    case 'o': o->op = optarg; break;
    case 'b': o->bs = parse_size (optarg); break;
    case 'd': o->depth = (unsigned) strtoul (optarg, NULL, 0); break;
    case 'B': bytes = parse_size (optarg); break;
    case 'r': o->total_requests = strtoull (optarg, NULL, 0); break;
    case 'c': o->connections = (unsigned) strtoul (optarg, NULL, 0); break;
    case 's': o->span = parse_size (optarg); break;
    case 'w': o->writer = true; break;
    default: usage ();
    }
  }
  if (o->uri == NULL || o->bs == 0 || o->depth == 0 || o->connections == 0 || optind != argc)
    usage ();
  if (o->total_requests == 0)
    o->total_requests = bytes ? (bytes + o->bs - 1) / o->bs : 1024;
}

int
main (int argc, char *argv[])
{
  struct options o;
  struct conn *conns;
  struct slot_ctx *ctxs;
  struct pollfd *pfds;
  int (*start_writer) (struct nbd_handle *) = NULL;
  uint64_t issued = 0, done_requests;
  unsigned c, s;
  int error = 0;
  double t0, c0, wall, cpu;
  int64_t size;

  parse (argc, argv, &o);
  if (o.writer) {
    /* nbdpp only: absent from libnbd, so looked up instead of linked. */
    *(void **) &start_writer = dlsym (RTLD_DEFAULT, "nbd_start_concurrent_writer");
    if (start_writer == NULL) {
      fprintf (stderr, "nbdbench: --writer needs nbdpp's nbd_start_concurrent_writer\n");
      return 3;
    }
  }
  conns = calloc (o.connections, sizeof *conns);
  ctxs = calloc ((size_t) o.connections * o.depth, sizeof *ctxs);
  pfds = calloc (o.connections, sizeof *pfds);
  if (conns == NULL || ctxs == NULL || pfds == NULL)
    die ("calloc");
  for (c = 0; c < o.connections; c++) {
    struct conn *cn = &conns[c];
    cn->nbd = nbd_create ();
    /* TLS URIs name certificate or PSK files. */
    if (cn->nbd == NULL || nbd_set_uri_allow_local_file (cn->nbd, true) == -1 ||
        nbd_connect_uri (cn->nbd, o.uri) == -1)
      die ("connect");
    if (start_writer && start_writer (cn->nbd) == -1)
      die ("nbd_start_concurrent_writer");
    cn->bufs = calloc (o.depth, sizeof *cn->bufs);
    cn->busy = calloc (o.depth, sizeof *cn->busy);
    if (cn->bufs == NULL || cn->busy == NULL)
      die ("calloc");
    for (s = 0; s < o.depth; s++) {
      uint64_t j;
      cn->bufs[s] = malloc (o.bs);
      if (cn->bufs[s] == NULL)
        die ("malloc");
      for (j = 0; j + 8 <= o.bs; j += 8) {
        uint64_t v = next_random ();
        memcpy (cn->bufs[s] + j, &v, 8);
      }
      ctxs[c * o.depth + s] = (struct slot_ctx) { &cn->busy[s], &error };
    }
  }
  size = nbd_get_size (conns[0].nbd);
  if (size == -1)
    die ("nbd_get_size");
  if (o.span == 0 || o.span > (uint64_t) size)
    o.span = (uint64_t) size;
  if (o.span < o.bs) {
    fprintf (stderr, "nbdbench: export smaller than one request\n");
    return 1;
  }

  t0 = now ();
  c0 = cpu_seconds ();
  for (;;) {
    unsigned in_flight = 0;
    /* Fill every free slot, connection by connection. */
    for (c = 0; c < o.connections; c++) {
      struct conn *cn = &conns[c];
      for (s = 0; s < o.depth && issued < o.total_requests; s++) {
        nbd_completion_callback cb;
        int64_t r;
        if (cn->busy[s])
          continue;
        cb = (nbd_completion_callback) { .callback = completed,
                                         .user_data = &ctxs[c * o.depth + s] };
        cn->busy[s] = true;
        if (is_write (&o, issued))
          r = nbd_aio_pwrite (cn->nbd, cn->bufs[s], o.bs, offset_of (&o, issued), cb, 0);
        else
          r = nbd_aio_pread (cn->nbd, cn->bufs[s], o.bs, offset_of (&o, issued), cb, 0);
        if (r == -1)
          die ("issuing a request");
        issued++;
      }
      in_flight += (unsigned) nbd_aio_in_flight (cn->nbd);
    }
    if (error != 0) {
      errno = error;
      die ("a request failed");
    }
    if (in_flight == 0 && issued >= o.total_requests)
      break;
    if (o.connections == 1) {
      if (nbd_poll (conns[0].nbd, -1) == -1)
        die ("nbd_poll");
      continue;
    }
    for (c = 0; c < o.connections; c++) {
      unsigned dir = nbd_aio_get_direction (conns[c].nbd);
      pfds[c] = (struct pollfd) { .fd = nbd_aio_get_fd (conns[c].nbd), .events = 0 };
      if (dir & LIBNBD_AIO_DIRECTION_READ)
        pfds[c].events |= POLLIN;
      if (dir & LIBNBD_AIO_DIRECTION_WRITE)
        pfds[c].events |= POLLOUT;
    }
    if (poll (pfds, o.connections, -1) == -1 && errno != EINTR)
      die ("poll");
    for (c = 0; c < o.connections; c++) {
      if ((pfds[c].revents & (POLLIN | POLLHUP | POLLERR)) && nbd_aio_notify_read (conns[c].nbd) == -1)
        die ("nbd_aio_notify_read");
      if ((pfds[c].revents & POLLOUT) && nbd_aio_notify_write (conns[c].nbd) == -1)
        die ("nbd_aio_notify_write");
    }
  }
  wall = now () - t0;
  cpu = cpu_seconds () - c0;
  done_requests = issued;

  printf ("{\"library\": \"%s %s\", \"op\": \"%s\", \"bs\": %" PRIu64 ", \"depth\": %u, "
          "\"connections\": %u, \"writer\": %s, \"requests\": %" PRIu64 ", \"bytes\": %" PRIu64 ", "
          "\"seconds\": %.6f, \"cpu_seconds\": %.6f}\n",
          nbd_get_package_name (conns[0].nbd), nbd_get_version (conns[0].nbd), o.op, o.bs,
          o.depth, o.connections, o.writer ? "true" : "false", done_requests,
          done_requests * o.bs, wall, cpu);
  for (c = 0; c < o.connections; c++) {
    if (nbd_shutdown (conns[c].nbd, 0) == -1)
      die ("nbd_shutdown");
    nbd_close (conns[c].nbd);
    for (s = 0; s < o.depth; s++)
      free (conns[c].bufs[s]);
    free (conns[c].bufs);
    free (conns[c].busy);
  }
  free (conns);
  free (ctxs);
  free (pfds);
  return 0;
}
