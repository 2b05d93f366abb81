/* benchutil.h: small helpers shared by the benchmark programs (nbdbench, sockrate). */
#ifndef NBDPP_BENCHUTIL_H
#define NBDPP_BENCHUTIL_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
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

#endif
