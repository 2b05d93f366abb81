/* nbd-info.c: connect to an NBD URI and print what the server offers.
 * Usage: nbd-info URI     e.g. nbd-info "nbd+unix:///?socket=/tmp/sock"
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <libnbd.h>

int
main (int argc, char *argv[])
{
  struct nbd_handle *nbd;
  char *name;
  int64_t size;

  if (argc != 2) {
    fprintf (stderr, "usage: %s URI\n", argv[0]);
    return 2;
  }
  nbd = nbd_create ();
  if (nbd == NULL) {
    fprintf (stderr, "%s\n", nbd_get_error ());
    return 1;
  }
  name = nbd_get_handle_name (nbd);
  printf ("library: %s %s\n", nbd_get_package_name (nbd), nbd_get_version (nbd));
  printf ("handle: %s, state: %s\n", name, nbd_connection_state (nbd));
  printf ("TLS support: %s, strict mode: 0x%" PRIx32 "\n",
          nbd_supports_tls (nbd) ? "yes" : "no", nbd_get_strict_mode (nbd));
  free (name);

  if (nbd_connect_uri (nbd, argv[1]) == -1) {
    fprintf (stderr, "%s\n", nbd_get_error ());
    nbd_close (nbd);
    return 1;
  }
  size = nbd_get_size (nbd);
  if (size == -1) {
    fprintf (stderr, "%s\n", nbd_get_error ());
    nbd_close (nbd);
    return 1;
  }
  printf ("size: %" PRIi64 " bytes\n", size);
  printf ("protocol: %s, structured replies: %d\n", nbd_get_protocol (nbd),
          nbd_get_structured_replies_negotiated (nbd));
  printf ("read-only: %d, flush: %d, fua: %d, trim: %d, zero: %d, multi-conn: %d\n",
          nbd_is_read_only (nbd), nbd_can_flush (nbd), nbd_can_fua (nbd),
          nbd_can_trim (nbd), nbd_can_zero (nbd), nbd_can_multi_conn (nbd));
  nbd_shutdown (nbd, 0);
  nbd_close (nbd);
  return 0;
}
