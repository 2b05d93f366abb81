/* benchutil.h: small helpers shared by the benchmark programs (nbdbench, handlebench, sockrate). */
#ifndef NBDPP_BENCHUTIL_H
#define NBDPP_BENCHUTIL_H

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Monotonic time in seconds. */
static inline double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* A byte count with an optional K, M or G suffix (powers of 1024); exits with status 2 and
 * a message naming prog on anything else. */
static inline uint64_t
parse_size (const char *prog, const char *arg)
{
  char *end;
  uint64_t v = strtoull (arg, &end, 0);
  switch (*end) {
  case 'K': case 'k': return v << 10;
  case 'M': case 'm': return v << 20;
  case 'G': case 'g': return v << 30;
  case '\0': return v;
  default:
    fprintf (stderr, "%s: bad size: %s\n", prog, arg);
    exit (2);
  }
}

#ifdef LIBNBD_H
/* For the programs on libnbd (included after libnbd.h): prints what failed with the library's
 * error (errno's if it has none) and exits with status 1. */
static inline void
die_nbd (const char *prog, const char *what)
{
  const char *msg = nbd_get_error ();
  fprintf (stderr, "%s: %s: %s\n", prog, what, msg ? msg : strerror (errno));
  exit (1);
}
#endif

/* The process's anonymous resident memory in KiB (RssAnon in /proc/self/status), or -1: what its
 * heap, stacks and other private mappings hold.  Shared code pages are left out: they belong to
 * no handle, and the kernel maps them 64 KiB at a time (fault-around) when code first runs. */
static inline double
rss_anon_kib (void)
{
  char line[256];
  double kib = -1;
  FILE *f = fopen ("/proc/self/status", "r");
  if (f == NULL)
    return -1;
  while (fgets (line, sizeof line, f) != NULL)
    if (sscanf (line, "RssAnon: %lf", &kib) == 1)
      break;
  fclose (f);
  return kib;
}

#endif
