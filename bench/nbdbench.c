/* nbdbench.c: one NBD workload through the libnbd C ABI, timed.  The same binary runs on our
 * libnbd.so.0 and on Debian's (chosen with LD_LIBRARY_PATH); nbdpp's extensions are looked up
 * at run time, so the binary needs nothing beyond libnbd 1.14.
 *
 * Usage: nbdbench --uri URI --op read|write|mixed|randread|randwrite|randmixed
 *                 [--bs BYTES] [--depth N] [--bytes TOTAL | --requests N]
 *                 [--conns N] [--writer] [--span BYTES] [--no-pread-initialize] [--rss]
 *                 [--no-extended-headers]
 *
 * --depth is the number of requests kept in flight on each connection.  With --conns N the
 * program opens N handles and drives all of them from one poll(2) loop in this thread (the
 * same loop for both libraries).  --writer gives every handle nbdpp's ready-made concurrent
 * writer (nbd_start_concurrent_writer); it fails with exit status 3 on a library without it.
 * --no-pread-initialize calls nbd_set_pread_initialize (h, false) (both libraries have it):
 * reads then skip the library's pre-zeroing of the caller's buffer.  --rss samples the process's
 * anonymous resident memory after every poll of the request loop, for its peak (the sampling
 * costs time: do not take the throughput of such a run).  --no-extended-headers calls
 * nbd_set_request_extended_headers (h, false) before connecting (libnbd 1.18 and nbdpp; looked up
 * at run time, exit status 3 without it), so the handle negotiates compact headers.
 *
 * Prints one JSON object: the library, the workload, requests and bytes moved, wall seconds,
 * MiB/s and IOPS, the client's CPU seconds (getrusage user + sys, all threads) and CPU seconds
 * per GiB; and what the handles added to the anonymous resident memory (all buffers are
 * allocated and filled before the first handle is created): once connected, at the peak of the
 * loop (with --rss, else null) and after it; and the header mode the handles negotiated:
 * structured replies (true/false) and extended headers (true/false, or null on a library without
 * nbd_get_extended_headers_negotiated, such as libnbd 1.14, which cannot negotiate them).  Only the request loop is timed; connecting, filling the buffers and shutting down
 * are not.  Under valgrind --tool=callgrind --instr-atstart=no the same loop, and only it, is
 * instrumented (all threads), so the Ir total divided by the requests is the cost per request.
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

#include "benchutil.h"

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif
#endif
#ifndef CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#endif

enum op_kind { OP_READ, OP_WRITE, OP_MIXED };

struct options {
  const char *uri;
  const char *op;
  enum op_kind kind;
  bool random;
  uint64_t bs, span, total_requests;
  unsigned depth, connections;
  bool writer;
  bool no_pread_init;
  bool rss;
  bool no_extended_headers;
};

struct conn {
  struct nbd_handle *nbd;
  char **bufs;                  /* one buffer per slot */
  unsigned *free_slots;         /* a stack of the slots with no request in flight */
  unsigned nfree;
};

struct slot_ctx {
  struct conn *cn;
  unsigned slot;
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


/* The whole process's user and system CPU seconds, every thread included (so the writer
 * thread counts). */
static void
cpu_seconds (double *user, double *sys)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  *user = (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6;
  *sys = (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

static void
die (const char *what)
{
  die_nbd ("nbdbench", what);
}

static int
completed (void *user_data, int *error)
{
  struct slot_ctx *c = user_data;
  if (*error != 0 && *c->error == 0)
    *c->error = *error;
  c->cn->free_slots[c->cn->nfree++] = c->slot;
  return 1;                     /* retire the command: no nbd_aio_command_completed needed */
}

/* Whether request number n of this workload is a write (mixed: every other one). */
static bool
is_write (const struct options *o, uint64_t n)
{
  switch (o->kind) {
  case OP_WRITE: return true;
  case OP_MIXED: return n % 2 == 0;
  default: return false;
  }
}

static uint64_t
offset_of (const struct options *o, uint64_t n)
{
  uint64_t blocks = o->span / o->bs;
  if (o->random)
    return (next_random () % blocks) * o->bs;
  return (n % blocks) * o->bs;
}

/* The header mode a connected handle negotiated: structured replies (0 or 1) and extended headers
 * (0 or 1; -1 where the library has no nbd_get_extended_headers_negotiated to tell). */
static void
header_mode (struct nbd_handle *nbd, int (*get_extended) (struct nbd_handle *),
             int *structured, int *extended)
{
  *structured = nbd_get_structured_replies_negotiated (nbd);
  if (*structured == -1)
    die ("nbd_get_structured_replies_negotiated");
  *extended = -1;
  if (get_extended && (*extended = get_extended (nbd)) == -1)
    die ("nbd_get_extended_headers_negotiated");
}

static void
usage (void)
{
  fprintf (stderr,
           "usage: nbdbench --uri URI --op read|write|mixed|randread|randwrite|randmixed\n"
           "                [--bs BYTES] [--depth N] [--bytes TOTAL | --requests N]\n"
           "                [--conns N] [--writer] [--span BYTES] [--no-pread-initialize] [--rss]\n"
           "                [--no-extended-headers]\n");
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
    { "conns", required_argument, NULL, 'c' },
    { "connections", required_argument, NULL, 'c' },
    { "span", required_argument, NULL, 's' },
    { "writer", no_argument, NULL, 'w' },
    { "no-pread-initialize", no_argument, NULL, 'z' },
    { "rss", no_argument, NULL, 'm' },
    { "no-extended-headers", no_argument, NULL, 'x' },
    { NULL, 0, NULL, 0 },
  };
  uint64_t bytes = 0;
  const char *base;
  int c;

  *o = (struct options) { .op = "read", .bs = 262144, .depth = 16, .connections = 1 };
  while ((c = getopt_long (argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'u': o->uri = optarg; break;
    case 'o': o->op = optarg; break;
    case 'b': o->bs = parse_size ("nbdbench", optarg); break;
    case 'd': o->depth = (unsigned) strtoul (optarg, NULL, 0); break;
    case 'B': bytes = parse_size ("nbdbench", optarg); break;
    case 'r': o->total_requests = strtoull (optarg, NULL, 0); break;
    case 'c': o->connections = (unsigned) strtoul (optarg, NULL, 0); break;
    case 's': o->span = parse_size ("nbdbench", optarg); break;
    case 'w': o->writer = true; break;
    case 'z': o->no_pread_init = true; break;
    case 'm': o->rss = true; break;
    case 'x': o->no_extended_headers = true; break;
    default: usage ();
    }
  }
  if (o->uri == NULL || o->bs == 0 || o->depth == 0 || o->connections == 0 || optind != argc)
    usage ();
  o->random = strncmp (o->op, "rand", 4) == 0;
  base = o->random ? o->op + 4 : o->op;
  if (strcmp (base, "read") == 0)
    o->kind = OP_READ;
  else if (strcmp (base, "write") == 0)
    o->kind = OP_WRITE;
  else if (strcmp (base, "mixed") == 0)
    o->kind = OP_MIXED;
  else
    usage ();
  if (o->total_requests == 0)
    o->total_requests = bytes ? (bytes + o->bs - 1) / o->bs : 1024;
}

/* Keeps every slot of every connection busy until total_requests have been issued and all
 * of them have completed.  Returns the number of requests issued.  With --rss, *rss_peak is
 * raised to the anonymous resident memory seen each time the slots have been filled.  Kept out
 * of line so a profile shows it as the root of the timed work. */
static uint64_t __attribute__ ((noinline))
run_loop (const struct options *o, struct conn *conns, struct slot_ctx *ctxs,
          struct pollfd *pfds, const int *error, double *rss_peak)
{
  uint64_t issued = 0;
  unsigned c;

  for (;;) {
    unsigned in_flight = 0;
    /* Fill every free slot, connection by connection.  The free slots are kept on a stack, so
     * the program's own cost per request does not grow with the depth. */
    for (c = 0; c < o->connections; c++) {
      struct conn *cn = &conns[c];
      while (cn->nfree > 0 && issued < o->total_requests) {
        unsigned s = cn->free_slots[--cn->nfree];
        nbd_completion_callback cb = { .callback = completed,
                                       .user_data = &ctxs[c * o->depth + s] };
        int64_t r;
        if (is_write (o, issued))
          r = nbd_aio_pwrite (cn->nbd, cn->bufs[s], o->bs, offset_of (o, issued), cb, 0);
        else
          r = nbd_aio_pread (cn->nbd, cn->bufs[s], o->bs, offset_of (o, issued), cb, 0);
        if (r == -1)
          die ("issuing a request");
        issued++;
      }
      in_flight += o->depth - cn->nfree;
    }
    if (o->rss) {
      double kib = rss_anon_kib ();
      if (kib > *rss_peak)
        *rss_peak = kib;
    }
    if (*error != 0) {
      errno = *error;
      die ("a request failed");
    }
    if (in_flight == 0 && issued >= o->total_requests)
      return issued;
    if (o->connections == 1) {
      if (nbd_poll (conns[0].nbd, -1) == -1)
        die ("nbd_poll");
      continue;
    }
    for (c = 0; c < o->connections; c++) {
      unsigned dir = nbd_aio_get_direction (conns[c].nbd);
      pfds[c] = (struct pollfd) { .fd = nbd_aio_get_fd (conns[c].nbd), .events = 0 };
      if (dir & LIBNBD_AIO_DIRECTION_READ)
        pfds[c].events |= POLLIN;
      if (dir & LIBNBD_AIO_DIRECTION_WRITE)
        pfds[c].events |= POLLOUT;
    }
    if (poll (pfds, o->connections, -1) == -1) {
      if (errno == EINTR)
        continue;
      die ("poll");
    }
    for (c = 0; c < o->connections; c++) {
      /* One event per round: a handle refuses an event it no longer waits for. */
      if (pfds[c].revents & (POLLIN | POLLHUP | POLLERR)) {
        if (nbd_aio_notify_read (conns[c].nbd) == -1)
          die ("nbd_aio_notify_read");
      }
      else if ((pfds[c].revents & POLLOUT) && nbd_aio_notify_write (conns[c].nbd) == -1)
        die ("nbd_aio_notify_write");
    }
  }
}

int
main (int argc, char *argv[])
{
  struct options o;
  struct conn *conns;
  struct slot_ctx *ctxs;
  struct pollfd *pfds;
  int (*start_writer) (struct nbd_handle *) = NULL;
  int (*set_request_extended) (struct nbd_handle *, bool) = NULL;
  int (*get_extended) (struct nbd_handle *) = NULL;
  int structured, extended;
  uint64_t done_requests, bytes;
  unsigned c, s;
  int error = 0;
  double t0, u0, s0, u1, s1, wall, cpu, gib;
  double rss_base, rss_connected, rss_peak, rss_after;
  char peak[32];
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
  /* libnbd 1.18 and nbdpp; absent from Debian's 1.14, so looked up like the writer. */
  if (o.no_extended_headers) {
    *(void **) &set_request_extended = dlsym (RTLD_DEFAULT, "nbd_set_request_extended_headers");
    if (set_request_extended == NULL) {
      fprintf (stderr, "nbdbench: --no-extended-headers needs nbd_set_request_extended_headers\n");
      return 3;
    }
  }
  *(void **) &get_extended = dlsym (RTLD_DEFAULT, "nbd_get_extended_headers_negotiated");
  conns = calloc (o.connections, sizeof *conns);
  ctxs = calloc ((size_t) o.connections * o.depth, sizeof *ctxs);
  pfds = calloc (o.connections, sizeof *pfds);
  if (conns == NULL || ctxs == NULL || pfds == NULL)
    die ("calloc");
  /* The buffers first, so the memory the handles add can be told apart. */
  for (c = 0; c < o.connections; c++) {
    struct conn *cn = &conns[c];
    cn->bufs = calloc (o.depth, sizeof *cn->bufs);
    cn->free_slots = calloc (o.depth, sizeof *cn->free_slots);
    if (cn->bufs == NULL || cn->free_slots == NULL)
      die ("calloc");
    for (s = 0; s < o.depth; s++) {
      uint64_t j;
      cn->bufs[s] = malloc (o.bs);
      if (cn->bufs[s] == NULL)
        die ("malloc");
      /* Random contents, so a server that detects zeroes has nothing to skip. */
      for (j = 0; j + 8 <= o.bs; j += 8) {
        uint64_t v = next_random ();
        memcpy (cn->bufs[s] + j, &v, 8);
      }
      ctxs[c * o.depth + s] = (struct slot_ctx) { cn, s, &error };
      cn->free_slots[cn->nfree++] = o.depth - 1 - s;   /* slot 0 on top */
    }
  }
  rss_base = rss_anon_kib ();
  for (c = 0; c < o.connections; c++) {
    struct conn *cn = &conns[c];
    cn->nbd = nbd_create ();
    /* TLS URIs name certificate or PSK files. */
    if (cn->nbd == NULL || nbd_set_uri_allow_local_file (cn->nbd, true) == -1 ||
        (o.no_pread_init && nbd_set_pread_initialize (cn->nbd, false) == -1) ||
        (set_request_extended && set_request_extended (cn->nbd, false) == -1) ||
        nbd_connect_uri (cn->nbd, o.uri) == -1)
      die ("connect");
    if (start_writer && start_writer (cn->nbd) == -1)
      die ("nbd_start_concurrent_writer");
  }
  rss_connected = rss_peak = rss_anon_kib ();
  header_mode (conns[0].nbd, get_extended, &structured, &extended);
  for (c = 1; c < o.connections; c++) {
    int s2, e2;
    header_mode (conns[c].nbd, get_extended, &s2, &e2);
    if (s2 != structured || e2 != extended) {
      fprintf (stderr, "nbdbench: the connections negotiated different header modes\n");
      return 1;
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
  cpu_seconds (&u0, &s0);
  CALLGRIND_START_INSTRUMENTATION;
  done_requests = run_loop (&o, conns, ctxs, pfds, &error, &rss_peak);
  CALLGRIND_STOP_INSTRUMENTATION;
  cpu_seconds (&u1, &s1);
  wall = now () - t0;
  rss_after = rss_anon_kib ();
  cpu = (u1 - u0) + (s1 - s0);
  bytes = done_requests * o.bs;
  gib = (double) bytes / 1073741824.0;
  if (o.rss)
    snprintf (peak, sizeof peak, "%.0f", rss_peak - rss_base);
  else
    strcpy (peak, "null");

  printf ("{\"library\": \"%s %s\", \"op\": \"%s\", \"bs\": %" PRIu64 ", \"depth\": %u, "
          "\"connections\": %u, \"writer\": %s, \"pread_initialize\": %s, \"requests\": %" PRIu64 ", \"bytes\": %" PRIu64 ", "
          "\"seconds\": %.6f, \"mib_per_s\": %.3f, \"iops\": %.1f, "
          "\"cpu_seconds\": %.6f, \"cpu_user_seconds\": %.6f, \"cpu_sys_seconds\": %.6f, "
          "\"cpu_seconds_per_gib\": %.6f, \"rss_connected_kib\": %.0f, \"rss_peak_kib\": %s, "
          "\"rss_after_kib\": %.0f, \"structured_replies\": %s, \"extended_headers\": %s}\n",
          nbd_get_package_name (conns[0].nbd), nbd_get_version (conns[0].nbd), o.op, o.bs,
          o.depth, o.connections, o.writer ? "true" : "false",
          o.no_pread_init ? "false" : "true", done_requests, bytes,
          wall, (double) bytes / 1048576.0 / wall, (double) done_requests / wall,
          cpu, u1 - u0, s1 - s0, gib > 0 ? cpu / gib : 0.0,
          rss_connected - rss_base, peak, rss_after - rss_base, structured ? "true" : "false",
          extended == -1 ? "null" : extended ? "true" : "false");
  fflush (stdout);
  for (c = 0; c < o.connections; c++) {
    if (nbd_shutdown (conns[c].nbd, 0) == -1)
      die ("nbd_shutdown");
    nbd_close (conns[c].nbd);
    for (s = 0; s < o.depth; s++)
      free (conns[c].bufs[s]);
    free (conns[c].bufs);
    free (conns[c].free_slots);
  }
  free (conns);
  free (ctxs);
  free (pfds);
  return 0;
}
