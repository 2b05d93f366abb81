/* handlebench.c: what a connection costs: the memory of each connected, idle handle and the time
 * to connect and to close one.  The same binary runs on our libnbd.so.0 and on Debian's (chosen
 * with LD_LIBRARY_PATH); nbdpp's ready-made writer is looked up at run time.
 *
 * Usage: handlebench --uri URI [--handles N] [--read BYTES] [--writer]
 *
 * First one handle is connected, read from and kept open, so what every process pays once (the
 * library's first allocations, malloc's arenas, with --writer the first thread) is in the
 * baseline.  Then N handles are created and connected one after another (each timed from
 * nbd_create to the end of nbd_connect_uri), each given nbd_start_concurrent_writer under
 * --writer, and each reads BYTES (default 4096) with nbd_pread.  The growth of the process's
 * anonymous resident memory (RssAnon) over those N handles, divided by N, is the memory of one
 * idle connected handle; the growth of malloc's bytes in use (mallinfo2), divided by N, its heap
 * alone, exact to the byte.  Then the N handles are closed, connected and used again, and closed
 * once more: the first close and the second connect loops measure the process's CPU time per
 * handle (what connecting costs the client, whatever the server and the machine's load add to
 * the wait), the last close loop times each nbd_close.
 *
 * Prints one JSON object: the library, the handles, the anonymous resident memory before and
 * after in KiB, KiB and heap bytes per handle, microseconds per handle to connect and to close
 * (mean and median of the wall times) and CPU microseconds per handle to connect and to close.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <libnbd.h>

#include "benchutil.h"

static int (*start_writer) (struct nbd_handle *);

static void
die (const char *what)
{
  die_nbd ("handlebench", what);
}

static double
rss_or_die (void)
{
  double kib = rss_anon_kib ();
  if (kib < 0)
    die ("no RssAnon in /proc/self/status");
  return kib;
}

/* Bytes malloc has handed out and not taken back, all arenas and mmapped blocks: exact where
 * the resident memory moves a page at a time. */
static double
heap_bytes (void)
{
  struct mallinfo2 mi = mallinfo2 ();
  return (double) mi.uordblks + (double) mi.hblkhd;
}

static struct nbd_handle *
connect_handle (const char *uri)
{
  struct nbd_handle *h = nbd_create ();
  if (h == NULL || nbd_connect_uri (h, uri) == -1)
    die ("connect");
  return h;
}

/* Gives h its writer (with --writer) and reads `bytes` at offset once: h is then idle. */
static void
use_handle (struct nbd_handle *h, char *buf, size_t bytes, uint64_t offset)
{
  if (start_writer && start_writer (h) == -1)
    die ("nbd_start_concurrent_writer");
  if (bytes > 0 && nbd_pread (h, buf, bytes, offset, 0) == -1)
    die ("nbd_pread");
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

/* Sorts v (n > 0) and returns its median. */
static double
median (double *v, size_t n)
{
  qsort (v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The process's CPU seconds (user + system, all threads), from the scheduler's own count. */
static double
cpu_seconds (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double
sum (const double *v, size_t n)
{
  double s = 0;
  size_t i;
  for (i = 0; i < n; i++)
    s += v[i];
  return s;
}

static void
usage (void)
{
  fprintf (stderr, "usage: handlebench --uri URI [--handles N] [--read BYTES] [--writer]\n");
  exit (2);
}

int
main (int argc, char *argv[])
{
  static const struct option longopts[] = {
    { "uri", required_argument, NULL, 'u' },
    { "handles", required_argument, NULL, 'n' },
    { "read", required_argument, NULL, 'r' },
    { "writer", no_argument, NULL, 'w' },
    { NULL, 0, NULL, 0 },
  };
  const char *uri = NULL;
  size_t n = 100, bytes = 4096, i;
  bool writer = false;
  struct nbd_handle *warm, **hs;
  double *connect_s, *close_s, base, after, heap_base, heap_after, t, cpu0, cpu1, cpu2;
  struct rlimit rl;
  char *buf;
  int c;

  while ((c = getopt_long (argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'u': uri = optarg; break;
    case 'n': n = strtoul (optarg, NULL, 0); break;
    case 'r': bytes = parse_size ("handlebench", optarg); break;
    case 'w': writer = true; break;
    default: usage ();
    }
  }
  if (uri == NULL || n == 0 || optind != argc)
    usage ();
  if (writer) {
    /* nbdpp only: absent from libnbd, so looked up instead of linked. */
    *(void **) &start_writer = dlsym (RTLD_DEFAULT, "nbd_start_concurrent_writer");
    if (start_writer == NULL) {
      fprintf (stderr, "handlebench: --writer needs nbdpp's nbd_start_concurrent_writer\n");
      return 3;
    }
  }
  /* One descriptor per handle (three with the writer: its two eventfds), beyond the usual 1024. */
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit (RLIMIT_NOFILE, &rl);
  }
  hs = calloc (n, sizeof *hs);
  connect_s = calloc (n, sizeof *connect_s);
  close_s = calloc (n, sizeof *close_s);
  buf = calloc (1, bytes ? bytes : 1);
  if (hs == NULL || connect_s == NULL || close_s == NULL || buf == NULL)
    die ("calloc");

  warm = connect_handle (uri);
  use_handle (warm, buf, bytes, 0);
  t = now ();                   /* the first call maps the vDSO's data pages */
  base = rss_or_die ();
  heap_base = heap_bytes ();
  for (i = 0; i < n; i++) {
    t = now ();
    hs[i] = connect_handle (uri);
    connect_s[i] = now () - t;
    use_handle (hs[i], buf, bytes, 0);
  }
  after = rss_or_die ();
  heap_after = heap_bytes ();
  /* CPU time is not spent waiting for the server (or for a core, on a busy machine). */
  cpu0 = cpu_seconds ();
  for (i = 0; i < n; i++)
    nbd_close (hs[i]);
  cpu1 = cpu_seconds ();
  for (i = 0; i < n; i++)
    hs[i] = connect_handle (uri);
  cpu2 = cpu_seconds ();
  for (i = 0; i < n; i++)
    use_handle (hs[i], buf, bytes, 0);
  for (i = 0; i < n; i++) {
    t = now ();
    nbd_close (hs[i]);
    close_s[i] = now () - t;
  }

  printf ("{\"library\": \"%s %s\", \"handles\": %zu, \"writer\": %s, \"read_bytes\": %zu, "
          "\"rss_anon_base_kib\": %.0f, \"rss_anon_kib\": %.0f, \"rss_per_handle_kib\": %.3f, "
          "\"heap_per_handle_bytes\": %.1f, "
          "\"connect_us_mean\": %.3f, \"connect_us_median\": %.3f, "
          "\"close_us_mean\": %.3f, \"close_us_median\": %.3f, "
          "\"connect_cpu_us\": %.3f, \"close_cpu_us\": %.3f}\n",
          nbd_get_package_name (warm), nbd_get_version (warm), n, writer ? "true" : "false",
          bytes, base, after, (after - base) / (double) n, (heap_after - heap_base) / (double) n,
          sum (connect_s, n) / (double) n * 1e6, median (connect_s, n) * 1e6,
          sum (close_s, n) / (double) n * 1e6, median (close_s, n) * 1e6,
          (cpu2 - cpu1) / (double) n * 1e6, (cpu1 - cpu0) / (double) n * 1e6);
  nbd_close (warm);
  free (hs);
  free (connect_s);
  free (close_s);
  free (buf);
  return 0;
}
