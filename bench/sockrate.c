/* sockrate.c: the raw rate of a Unix stream socket between two processes, the ceiling for any
 * NBD client reading from a server on the same machine.
 *
 * Usage: sockrate [--bs BYTES] [--bytes TOTAL] [--buffers N]
 *
 * Forks; the child writes TOTAL bytes in BS-sized write(2) calls into one end of a socketpair
 * (AF_UNIX, SOCK_STREAM, default buffer sizes, as nbdkit's Unix socket has), the parent reads
 * them with read(2) into N buffers of BS bytes in turn (default 1), filling each before moving
 * on.  N = an NBD client's queue depth gives the same cache footprint as the client's N read
 * buffers.  Prints one JSON object with bytes, wall seconds (from the parent's first read to
 * its last byte), GiB/s, MiB/s and both processes' CPU seconds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"


static double
rusage_seconds (int who)
{
  struct rusage ru;
  getrusage (who, &ru);
  return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 +
         (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}


static void
usage (void)
{
  fprintf (stderr, "usage: sockrate [--bs BYTES] [--bytes TOTAL] [--buffers N]\n");
  exit (2);
}

/* The child: write total bytes, then exit. */
static void
writer (int fd, const char *buf, size_t bs, uint64_t total)
{
  uint64_t sent = 0;
  while (sent < total) {
    size_t want = total - sent < bs ? (size_t) (total - sent) : bs;
    ssize_t n = write (fd, buf, want);
    if (n == -1) {
      if (errno == EINTR)
        continue;
      perror ("sockrate: write");
      _exit (1);
    }
    sent += (uint64_t) n;
  }
  _exit (0);
}

int
main (int argc, char *argv[])
{
  static const struct option longopts[] = {
    { "bs", required_argument, NULL, 'b' },
    { "bytes", required_argument, NULL, 'B' },
    { "buffers", required_argument, NULL, 'n' },
    { NULL, 0, NULL, 0 },
  };
  size_t bs = 262144, nbufs = 1, cur = 0, filled = 0;
  uint64_t total = 4ULL << 30, got = 0;
  int sv[2], c, status;
  pid_t pid;
  char *buf, *rbuf;
  double t0 = 0, wall, parent_cpu, child_cpu;

  while ((c = getopt_long (argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'b': bs = (size_t) parse_size ("sockrate", optarg); break;
    case 'B': total = parse_size ("sockrate", optarg); break;
    case 'n': nbufs = (size_t) strtoul (optarg, NULL, 0); break;
    default: usage ();
    }
  }
  if (bs == 0 || total == 0 || nbufs == 0 || optind != argc)
    usage ();
  /* The writer's buffer, then the reader's nbufs buffers; every page touched before timing. */
  buf = malloc (bs * (nbufs + 1));
  if (buf == NULL) {
    perror ("sockrate: malloc");
    return 1;
  }
  memset (buf, 0x5a, bs * (nbufs + 1));
  rbuf = buf + bs;
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
    perror ("sockrate: socketpair");
    return 1;
  }
  pid = fork ();
  if (pid == -1) {
    perror ("sockrate: fork");
    return 1;
  }
  if (pid == 0) {
    close (sv[0]);
    writer (sv[1], buf, bs, total);
  }
  close (sv[1]);
  while (got < total) {
    ssize_t n = read (sv[0], rbuf + cur * bs + filled, bs - filled);
    if (n == -1) {
      if (errno == EINTR)
        continue;
      perror ("sockrate: read");
      kill (pid, SIGTERM);
      return 1;
    }
    if (n == 0) {
      fprintf (stderr, "sockrate: writer stopped early\n");
      return 1;
    }
    if (got == 0)
      t0 = now ();             /* the writer is running: start the clock at the first data */
    got += (uint64_t) n;
    filled += (size_t) n;
    if (filled == bs) {
      filled = 0;
      cur = (cur + 1) % nbufs;
    }
  }
  wall = now () - t0;
  parent_cpu = rusage_seconds (RUSAGE_SELF);
  if (waitpid (pid, &status, 0) == -1 || !WIFEXITED (status) || WEXITSTATUS (status) != 0) {
    fprintf (stderr, "sockrate: writer failed\n");
    return 1;
  }
  child_cpu = rusage_seconds (RUSAGE_CHILDREN);
  printf ("{\"bs\": %zu, \"buffers\": %zu, \"bytes\": %" PRIu64 ", \"seconds\": %.6f, "
          "\"gib_per_s\": %.4f, \"mib_per_s\": %.1f, \"reader_cpu_seconds\": %.6f, "
          "\"writer_cpu_seconds\": %.6f}\n",
          bs, nbufs, got, wall, (double) got / 1073741824.0 / wall, (double) got / 1048576.0 / wall,
          parent_cpu, child_cpu);
  free (buf);
  return 0;
}
